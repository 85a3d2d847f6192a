//! The host context of the human commands (`sync`, `call`, `search`, `status`, `settings`):
//! the Contact Desktop username, the licensed add-ons and the country, from `--username`,
//! `--addon` and `--country`, kept in `host.json` in the data folder so later commands reuse
//! them.
//!
//! Each value comes from the command line when given, else from `host.json`, else the default
//! (username empty, add-on `contact_connect` so the demo works, country `DE`). Whenever a
//! command line gives a value, `host.json` is rewritten with the values in force. An unreadable
//! `host.json` is ignored with a warning (and replaced at the next write).

use std::{
    io,
    path::{Path, PathBuf},
};

use serde_json::{Map, Value, json};

use crate::protocol::ContextPatch;

/// The file in the data folder that keeps the profile.
pub const PROFILE_FILE: &str = "host.json";
/// The default country (ISO 3166 alpha-2).
pub const DEFAULT_COUNTRY: &str = "DE";
/// The default add-on: Contact Connect, which the Microsoft 365 integration needs.
pub const DEFAULT_ADDON: &str = "contact_connect";

/// Values given on the command line (each `None`/empty when not given).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProfileArgs {
    /// `--username`.
    pub username: Option<String>,
    /// `--country`.
    pub country: Option<String>,
    /// `--addon` (repeatable).
    pub addons: Vec<String>,
}

impl ProfileArgs {
    /// Whether the command line gave any value.
    pub fn any(&self) -> bool {
        self.username.is_some() || self.country.is_some() || !self.addons.is_empty()
    }
}

/// The values kept in `host.json` (each may be missing).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stored {
    /// The Contact Desktop username.
    pub username: Option<String>,
    /// The country.
    pub country: Option<String>,
    /// The add-ons.
    pub addons: Option<Vec<String>>,
}

impl Stored {
    /// Reads a `host.json` document. Unknown keys are ignored; a value of the wrong type is an
    /// error.
    pub fn parse(text: &str) -> Result<Self, String> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        let Value::Object(map) = value else {
            return Err("expected a JSON object".into());
        };
        let string = |key: &str| -> Result<Option<String>, String> {
            match map.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(format!("`{key}` must be a string")),
            }
        };
        let addons = match map.get("addons") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|v| v.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or("`addons` must be an array of strings")?,
            ),
            Some(_) => return Err("`addons` must be an array of strings".into()),
        };
        Ok(Self {
            username: string("username")?,
            country: string("country")?,
            addons,
        })
    }
}

/// The host context in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// The Contact Desktop username (may be empty).
    pub username: String,
    /// The country, upper case.
    pub country: String,
    /// The licensed add-ons.
    pub addons: Vec<String>,
}

impl Profile {
    /// The command line over the stored values over the defaults. A country that is not two
    /// letters is an error.
    pub fn resolve(args: &ProfileArgs, stored: &Stored) -> Result<Self, String> {
        let country = args
            .country
            .clone()
            .or_else(|| stored.country.clone())
            .unwrap_or_else(|| DEFAULT_COUNTRY.into());
        Ok(Self {
            username: args
                .username
                .clone()
                .or_else(|| stored.username.clone())
                .unwrap_or_default(),
            country: check_country(&country)?,
            addons: if args.addons.is_empty() {
                stored
                    .addons
                    .clone()
                    .unwrap_or_else(|| vec![DEFAULT_ADDON.into()])
            } else {
                args.addons.clone()
            },
        })
    }

    /// The `host.json` document.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("username".into(), self.username.clone().into());
        map.insert("country".into(), self.country.clone().into());
        map.insert("addons".into(), json!(self.addons));
        Value::Object(map)
    }

    /// The `context` op that gives this profile to the plugins.
    pub fn context_patch(&self) -> ContextPatch {
        ContextPatch {
            username: Some(self.username.clone()),
            addons: Some(self.addons.clone()),
            country: Some(self.country.clone()),
            legacy_presence_integration: None,
        }
    }

    /// Loads `host.json` from `data_dir`, resolves, and writes the file back when the command
    /// line gave a value. Problems with the file are warnings on standard error.
    pub fn load(data_dir: &Path, args: &ProfileArgs) -> Result<Self, String> {
        let path = profile_path(data_dir);
        let stored = match std::fs::read_to_string(&path) {
            Ok(text) => Stored::parse(&text).unwrap_or_else(|why| {
                eprintln!("demo-host: ignoring {}: {why}", path.display());
                Stored::default()
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Stored::default(),
            Err(e) => {
                eprintln!("demo-host: cannot read {}: {e}", path.display());
                Stored::default()
            }
        };
        let profile = Self::resolve(args, &stored)?;
        if args.any()
            && let Err(e) = profile.save(data_dir)
        {
            eprintln!("demo-host: cannot write {}: {e}", path.display());
        }
        Ok(profile)
    }

    /// Writes `host.json` (through a temporary file and a rename).
    pub fn save(&self, data_dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(data_dir)?;
        let path = profile_path(data_dir);
        let tmp = path.with_extension("json.tmp");
        let mut text = serde_json::to_string_pretty(&self.to_json()).map_err(io::Error::other)?;
        text.push('\n');
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &path)
    }
}

/// Where the profile is kept.
pub fn profile_path(data_dir: &Path) -> PathBuf {
    data_dir.join(PROFILE_FILE)
}

/// A country code: two ASCII letters, answered in upper case.
pub fn check_country(country: &str) -> Result<String, String> {
    let c = country.trim();
    if c.len() == 2 && c.chars().all(|ch| ch.is_ascii_alphabetic()) {
        Ok(c.to_ascii_uppercase())
    } else {
        Err(format!(
            "--country must be an ISO 3166 alpha-2 code such as DE, not {country:?}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_over_stored_over_defaults() {
        let none = ProfileArgs::default();
        let p = Profile::resolve(&none, &Stored::default()).unwrap();
        assert_eq!(p.username, "");
        assert_eq!(p.country, "DE");
        assert_eq!(p.addons, ["contact_connect"]);

        let stored =
            Stored::parse(r#"{"username":"a@b.example","country":"at","addons":[],"later":1}"#)
                .unwrap();
        let p = Profile::resolve(&none, &stored).unwrap();
        assert_eq!(
            (p.username.as_str(), p.country.as_str()),
            ("a@b.example", "AT")
        );
        assert!(p.addons.is_empty(), "a stored empty list stays empty");

        let args = ProfileArgs {
            username: Some("c@d.example".into()),
            country: None,
            addons: vec!["x".into(), "y".into()],
        };
        let p = Profile::resolve(&args, &stored).unwrap();
        assert_eq!(p.username, "c@d.example");
        assert_eq!(p.country, "AT");
        assert_eq!(p.addons, ["x", "y"]);
    }

    #[test]
    fn bad_values_are_refused() {
        for bad in [
            "[]",
            r#"{"country":1}"#,
            r#"{"addons":"x"}"#,
            r#"{"addons":[1]}"#,
            "x",
        ] {
            assert!(Stored::parse(bad).is_err(), "{bad}");
        }
        for bad in ["D", "DEU", "1A", ""] {
            assert!(check_country(bad).is_err(), "{bad}");
        }
        assert_eq!(check_country(" ch ").unwrap(), "CH");
    }

    #[test]
    fn saved_only_when_given_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = Profile::load(dir.path(), &ProfileArgs::default()).unwrap();
        assert_eq!(p.country, "DE");
        assert!(!profile_path(dir.path()).exists(), "nothing given: no file");
        let args = ProfileArgs {
            username: Some("adele.vance@contoso.example".into()),
            ..Default::default()
        };
        Profile::load(dir.path(), &args).unwrap();
        let again = Profile::load(dir.path(), &ProfileArgs::default()).unwrap();
        assert_eq!(again.username, "adele.vance@contoso.example");
        assert_eq!(again.addons, ["contact_connect"]);
        let patch = again.context_patch();
        assert_eq!(patch.country.as_deref(), Some("DE"));
        assert_eq!(patch.legacy_presence_integration, None);
    }
}
