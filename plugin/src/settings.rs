//! The integration settings: defaults, validation and persistence.
//!
//! An update is validated as a whole and applied all or nothing: one bad value and none of the
//! update takes effect (`bad_request`). Settings are kept in `settings.json` in the data folder
//! so the switches survive a restart, as a user of Contact Desktop expects.

use std::path::Path;

use host_api::SettingsUpdate;
use serde::{Deserialize, Serialize};
use url::Url;

/// The public client id of the project's app registration. A release build sets it with the
/// environment variable `CONTACT_MS365_CLIENT_ID` at compile time; README.md says how to
/// register the app.
pub const DEFAULT_CLIENT_ID: &str = match option_env!("CONTACT_MS365_CLIENT_ID") {
    Some(id) => id,
    None => "8f6e3a1c-5b2d-4e7a-9c41-2d7b0e5f9a13",
};

/// Microsoft's authority for work and school accounts.
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com/organizations/v2.0";

/// Microsoft Graph, global cloud.
pub const DEFAULT_GRAPH: &str = "https://graph.microsoft.com/v1.0";

/// How the interactive sign-in happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignInMethod {
    /// Authorization code + PKCE in the user's browser (device code if no browser opens).
    Browser,
    /// Device code: the user enters a code on another device or browser.
    DeviceCode,
}

/// Where a remembered sign-in is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenStoreKind {
    /// The OS keyring when one works, else a user-only file.
    Auto,
    /// The OS keyring only.
    Keyring,
    /// A user-only file in the data folder.
    File,
}

/// Every setting, with its value in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// "Integration with Microsoft".
    pub microsoft_integration: bool,
    /// "Presence integration".
    pub presence_integration: bool,
    /// "Do not show again".
    pub remember_login: bool,
    /// Browser or device code.
    pub sign_in_method: SignInMethod,
    /// Where a remembered sign-in is kept.
    pub token_store: TokenStoreKind,
    /// OpenID Connect authority.
    pub authority: String,
    /// Graph base URL.
    pub graph: String,
    /// Public client id.
    pub client_id: String,
    /// Also index the organization's directory.
    pub directory: bool,
    /// Periodic contact sync, seconds.
    pub sync_interval_s: u64,
    /// Presence polling, milliseconds.
    pub presence_poll_ms: u64,
    /// PBX outside-line prefixes.
    pub outside_line_prefixes: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            microsoft_integration: false,
            presence_integration: false,
            remember_login: false,
            sign_in_method: SignInMethod::Browser,
            token_store: TokenStoreKind::Auto,
            authority: DEFAULT_AUTHORITY.to_owned(),
            graph: DEFAULT_GRAPH.to_owned(),
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            directory: false,
            sync_interval_s: 300,
            presence_poll_ms: 5000,
            outside_line_prefixes: Vec::new(),
        }
    }
}

/// Bounds of the numeric settings.
pub const SYNC_INTERVAL_S: std::ops::RangeInclusive<u64> = 10..=7 * 24 * 3600;
/// Bounds of the presence poll interval.
pub const PRESENCE_POLL_MS: std::ops::RangeInclusive<u64> = 200..=3_600_000;
const MAX_PREFIXES: usize = 16;
const MAX_PREFIX_LEN: usize = 16;
const MAX_TEXT_LEN: usize = 2048;

impl Settings {
    /// The settings after `update`, or why the update is refused (nothing applied).
    ///
    /// ```
    /// # use contact_ms365::settings::Settings;
    /// # use host_api::SettingsUpdate;
    /// # use abi_stable::std_types::ROption::RSome;
    /// let s = Settings::default();
    /// let bad = SettingsUpdate { sync_interval_s: RSome(5), ..Default::default() };
    /// assert!(s.updated(&bad).unwrap_err().contains("sync_interval_s"));
    /// ```
    pub fn updated(&self, update: &SettingsUpdate) -> Result<Settings, String> {
        let mut next = self.clone();
        if let Some(v) = update.microsoft_integration.into_option() {
            next.microsoft_integration = v;
        }
        if let Some(v) = update.presence_integration.into_option() {
            next.presence_integration = v;
        }
        if let Some(v) = update.remember_login.into_option() {
            next.remember_login = v;
        }
        if let Some(v) = update.directory.into_option() {
            next.directory = v;
        }
        if let Some(v) = update.sign_in_method.as_ref().into_option() {
            next.sign_in_method = match v.as_str() {
                "browser" => SignInMethod::Browser,
                "device_code" => SignInMethod::DeviceCode,
                other => {
                    return Err(format!(
                        "sign_in_method must be `browser` or `device_code`, not `{}`",
                        clip(other)
                    ));
                }
            };
        }
        if let Some(v) = update.token_store.as_ref().into_option() {
            next.token_store = match v.as_str() {
                "auto" => TokenStoreKind::Auto,
                "keyring" => TokenStoreKind::Keyring,
                "file" => TokenStoreKind::File,
                other => {
                    return Err(format!(
                        "token_store must be `auto`, `keyring` or `file`, not `{}`",
                        clip(other)
                    ));
                }
            };
        }
        if let Some(v) = update.authority.as_ref().into_option() {
            next.authority = checked_url("authority", v.as_str())?;
        }
        if let Some(v) = update.graph.as_ref().into_option() {
            next.graph = checked_url("graph", v.as_str())?;
        }
        if let Some(v) = update.client_id.as_ref().into_option() {
            let v = v.as_str().trim();
            if v.is_empty()
                || v.len() > 256
                || v.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err("client_id must be a non-empty id without spaces".to_owned());
            }
            next.client_id = v.to_owned();
        }
        if let Some(v) = update.sync_interval_s.into_option() {
            if !SYNC_INTERVAL_S.contains(&v) {
                return Err(format!(
                    "sync_interval_s must be between {} and {} seconds, not {v}",
                    SYNC_INTERVAL_S.start(),
                    SYNC_INTERVAL_S.end()
                ));
            }
            next.sync_interval_s = v;
        }
        if let Some(v) = update.presence_poll_ms.into_option() {
            if !PRESENCE_POLL_MS.contains(&v) {
                return Err(format!(
                    "presence_poll_ms must be between {} and {} milliseconds, not {v}",
                    PRESENCE_POLL_MS.start(),
                    PRESENCE_POLL_MS.end()
                ));
            }
            next.presence_poll_ms = v;
        }
        if let Some(v) = update.outside_line_prefixes.as_ref().into_option() {
            if v.len() > MAX_PREFIXES {
                return Err(format!(
                    "outside_line_prefixes holds at most {MAX_PREFIXES} prefixes"
                ));
            }
            let mut prefixes = Vec::with_capacity(v.len());
            for p in v.iter() {
                let p = p.as_str();
                let ok = !p.is_empty()
                    && p.len() <= MAX_PREFIX_LEN
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "*#+".contains(c));
                if !ok {
                    return Err(format!(
                        "outside line prefix `{}` must be 1 to {MAX_PREFIX_LEN} digits, letters, `*`, `#` or `+`",
                        clip(p)
                    ));
                }
                prefixes.push(p.to_owned());
            }
            next.outside_line_prefixes = prefixes;
        }
        let ext = update.extensions.as_str().trim();
        if !ext.is_empty() {
            match serde_json::from_str::<serde_json::Value>(ext) {
                Ok(serde_json::Value::Object(_)) => {} // keys of later versions: ignored
                _ => return Err("extensions must be a JSON object".to_owned()),
            }
        }
        Ok(next)
    }

    /// Loads `settings.json` from `dir`. A missing file gives the defaults; an unreadable one is
    /// set aside and the defaults are used (the returned message says so, for the log).
    pub fn load(dir: &Path) -> (Settings, Option<String>) {
        let path = dir.join(SETTINGS_FILE);
        match crate::store::read_optional(&path) {
            Ok(None) => (Settings::default(), None),
            Ok(Some(bytes)) => match serde_json::from_slice::<Settings>(&bytes) {
                Ok(s) if s.is_valid() => (s, None),
                _ => {
                    let note = match crate::store::set_aside(&path) {
                        Ok(aside) => format!(
                            "settings file was unreadable; kept it as {} and started from defaults",
                            aside.display()
                        ),
                        Err(e) => format!("settings file was unreadable ({e}); using defaults"),
                    };
                    (Settings::default(), Some(note))
                }
            },
            Err(e) => (
                Settings::default(),
                Some(format!(
                    "cannot read the settings file: {e}; using defaults"
                )),
            ),
        }
    }

    /// Saves to `settings.json` in `dir`, atomically.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::store::write_atomic(&dir.join(SETTINGS_FILE), &bytes)
    }

    /// Whether every value is in range (a hand-edited file may not be).
    fn is_valid(&self) -> bool {
        let as_update = SettingsUpdate {
            authority: abi_stable::std_types::ROption::RSome(self.authority.as_str().into()),
            graph: abi_stable::std_types::ROption::RSome(self.graph.as_str().into()),
            client_id: abi_stable::std_types::ROption::RSome(self.client_id.as_str().into()),
            sync_interval_s: abi_stable::std_types::ROption::RSome(self.sync_interval_s),
            presence_poll_ms: abi_stable::std_types::ROption::RSome(self.presence_poll_ms),
            outside_line_prefixes: abi_stable::std_types::ROption::RSome(
                self.outside_line_prefixes
                    .iter()
                    .map(|p| p.as_str().into())
                    .collect(),
            ),
            ..SettingsUpdate::default()
        };
        Settings::default().updated(&as_update).is_ok()
    }
}

/// The settings file in the data folder.
pub const SETTINGS_FILE: &str = "settings.json";

/// An `http(s)` URL; plain `http` only for a loopback host (tokens must never travel in clear).
fn checked_url(name: &str, value: &str) -> Result<String, String> {
    if value.len() > MAX_TEXT_LEN {
        return Err(format!("{name} is too long"));
    }
    let url = check_endpoint(value.trim()).map_err(|m| format!("{name} {m}"))?;
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Parses an endpoint URL: `https`, or plain `http` only on a loopback host.
///
/// ```
/// # use contact_ms365::settings::check_endpoint;
/// assert!(check_endpoint("https://login.microsoftonline.com/x").is_ok());
/// assert!(check_endpoint("http://127.0.0.1:8080/x").is_ok());
/// assert!(check_endpoint("http://login.example.com/x").is_err());
/// ```
pub fn check_endpoint(value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|e| format!("is not a URL: {e}"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(
                "must use https (plain http is allowed only for 127.0.0.1 or localhost)".to_owned(),
            );
        }
        other => return Err(format!("must be an https URL, not `{other}:`")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host".to_owned());
    }
    Ok(url)
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// A value quoted in an error message, cut to a readable length.
fn clip(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(MAX).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi_stable::std_types::ROption::RSome;

    #[test]
    fn all_or_nothing() {
        let s = Settings::default();
        let u = SettingsUpdate {
            microsoft_integration: RSome(true),
            presence_poll_ms: RSome(100),
            ..Default::default()
        };
        assert!(s.updated(&u).is_err());
        let u = SettingsUpdate {
            microsoft_integration: RSome(true),
            presence_poll_ms: RSome(200),
            outside_line_prefixes: RSome(vec!["0".into(), "L0#".into()].into()),
            ..Default::default()
        };
        let n = s.updated(&u).unwrap();
        assert!(n.microsoft_integration);
        assert_eq!(n.presence_poll_ms, 200);
        assert_eq!(n.outside_line_prefixes, ["0", "L0#"]);
    }

    #[test]
    fn urls_must_be_https_unless_loopback() {
        let s = Settings::default();
        for (url, ok) in [
            ("https://login.microsoftonline.us/organizations/v2.0", true),
            ("http://127.0.0.1:4000/organizations/v2.0", true),
            ("http://localhost:4000/v1.0/", true),
            ("http://graph.example.com/v1.0", false),
            ("ftp://x", false),
            ("not a url", false),
        ] {
            let u = SettingsUpdate {
                graph: RSome(url.into()),
                ..Default::default()
            };
            assert_eq!(s.updated(&u).is_ok(), ok, "{url}");
        }
    }

    #[test]
    fn enumerations_and_prefixes_are_checked() {
        let s = Settings::default();
        let bad = [
            SettingsUpdate {
                sign_in_method: RSome("carrier pigeon".into()),
                ..Default::default()
            },
            SettingsUpdate {
                token_store: RSome("cloud".into()),
                ..Default::default()
            },
            SettingsUpdate {
                outside_line_prefixes: RSome(vec!["".into()].into()),
                ..Default::default()
            },
            SettingsUpdate {
                client_id: RSome("  ".into()),
                ..Default::default()
            },
            SettingsUpdate {
                extensions: "[1]".into(),
                ..Default::default()
            },
        ];
        for u in bad {
            assert!(s.updated(&u).is_err(), "{u:?}");
        }
    }

    #[test]
    fn persisted_and_restored_and_corrupt_file_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let s = Settings {
            microsoft_integration: true,
            sync_interval_s: 60,
            ..Settings::default()
        };
        s.save(dir.path()).unwrap();
        assert_eq!(Settings::load(dir.path()), (s, None));

        std::fs::write(dir.path().join(SETTINGS_FILE), b"{ not json").unwrap();
        let (loaded, note) = Settings::load(dir.path());
        assert_eq!(loaded, Settings::default());
        assert!(note.unwrap().contains("unreadable"));
        assert!(!dir.path().join(SETTINGS_FILE).exists());
    }
}
