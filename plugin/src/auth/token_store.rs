//! Where a remembered sign-in ("Do not show again") is kept: the OS keyring, or a file in the
//! data folder readable by the user only. Only the refresh token and what it belongs to are
//! stored; access tokens live in memory.
//!
//! `auto` uses the keyring when a probe shows it really keeps what it is given (some back-ends
//! silently keep nothing; headless Linux has none), else the file.

use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::settings::TokenStoreKind;

/// Keyring service name.
const SERVICE: &str = "contact-desktop-ms365";
/// File name in the data folder.
pub const TOKEN_FILE: &str = "token.json";

/// A remembered sign-in.
pub struct Remembered {
    /// The newest refresh token.
    pub refresh_token: SecretString,
    /// The account's UPN, for the state before the first Graph call.
    pub upn: String,
    /// The app it was issued to.
    pub client_id: String,
    /// The authority it was issued by.
    pub authority: String,
}

impl std::fmt::Debug for Remembered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remembered")
            .field("refresh_token", &"[redacted]")
            .field("upn", &self.upn)
            .field("client_id", &self.client_id)
            .field("authority", &self.authority)
            .finish()
    }
}

#[derive(Serialize)]
struct RecordOut<'a> {
    refresh_token: &'a str,
    upn: &'a str,
    client_id: &'a str,
    authority: &'a str,
}

#[derive(Deserialize)]
struct RecordIn {
    refresh_token: String,
    upn: String,
    client_id: String,
    authority: String,
}

impl Remembered {
    fn to_json(&self) -> String {
        serde_json::to_string(&RecordOut {
            refresh_token: self.refresh_token.expose_secret(),
            upn: &self.upn,
            client_id: &self.client_id,
            authority: &self.authority,
        })
        .unwrap_or_default()
    }

    fn from_json(text: &[u8]) -> Option<Self> {
        let r: RecordIn = serde_json::from_slice(text).ok()?;
        (!r.refresh_token.is_empty()).then(|| Self {
            refresh_token: SecretString::from(r.refresh_token),
            upn: r.upn,
            client_id: r.client_id,
            authority: r.authority,
        })
    }
}

/// A chosen store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenStore {
    /// The OS keyring, under an entry named after the data folder.
    Keyring {
        /// The entry's user name.
        account: String,
    },
    /// A user-only file.
    File(PathBuf),
}

impl TokenStore {
    /// Chooses per the setting. Blocking (the keyring may talk to D-Bus): call it from a
    /// blocking context. `Err` names why the keyring cannot be used when it was required.
    pub fn select(kind: TokenStoreKind, data_dir: &Path) -> Result<TokenStore, String> {
        let file = TokenStore::File(data_dir.join(TOKEN_FILE));
        let account = format!("refresh-token:{}", data_dir.display());
        match kind {
            TokenStoreKind::File => Ok(file),
            TokenStoreKind::Keyring => probe_keyring().map(|()| TokenStore::Keyring { account }),
            TokenStoreKind::Auto => Ok(match probe_keyring() {
                Ok(()) => TokenStore::Keyring { account },
                Err(_) => file,
            }),
        }
    }

    /// Where it is, for the log.
    pub fn describe(&self) -> String {
        match self {
            TokenStore::Keyring { .. } => "the OS keyring".to_owned(),
            TokenStore::File(p) => format!("{} (readable by you only)", p.display()),
        }
    }

    /// Reads the remembered sign-in. A corrupt file is set aside (nothing is lost) and reads
    /// as none.
    pub fn load(&self) -> Result<Option<Remembered>, String> {
        match self {
            TokenStore::File(path) => match crate::store::read_optional(path) {
                Ok(None) => Ok(None),
                Ok(Some(bytes)) => match Remembered::from_json(&bytes) {
                    Some(r) => Ok(Some(r)),
                    None => {
                        let _ = crate::store::set_aside(path);
                        Err(format!(
                            "the remembered sign-in in {} was unreadable and was set aside",
                            path.display()
                        ))
                    }
                },
                Err(e) => Err(format!("cannot read {}: {e}", path.display())),
            },
            TokenStore::Keyring { account } => {
                let entry = keyring::Entry::new(SERVICE, account).map_err(|e| e.to_string())?;
                match entry.get_password() {
                    Ok(text) => Ok(Remembered::from_json(text.as_bytes())),
                    Err(keyring::Error::NoEntry) => Ok(None),
                    Err(e) => Err(format!("the OS keyring failed: {e}")),
                }
            }
        }
    }

    /// Stores (replaces) the remembered sign-in.
    pub fn save(&self, remembered: &Remembered) -> Result<(), String> {
        let text = remembered.to_json();
        match self {
            TokenStore::File(path) => crate::store::write_atomic(path, text.as_bytes())
                .map_err(|e| format!("cannot write {}: {e}", path.display())),
            TokenStore::Keyring { account } => keyring::Entry::new(SERVICE, account)
                .and_then(|e| e.set_password(&text))
                .map_err(|e| format!("the OS keyring failed: {e}")),
        }
    }

    /// Deletes the remembered sign-in, if any.
    pub fn delete(&self) -> Result<(), String> {
        match self {
            TokenStore::File(path) => match std::fs::remove_file(path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(format!("cannot delete {}: {e}", path.display())),
            },
            TokenStore::Keyring { account } => {
                match keyring::Entry::new(SERVICE, account).and_then(|e| e.delete_credential()) {
                    Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
                    Err(e) => Err(format!("the OS keyring failed: {e}")),
                }
            }
        }
    }
}

/// Deletes a remembered sign-in from every place it could be (the file and the keyring entry
/// of this data folder), whatever the setting is now: "forget" must not depend on it.
pub fn delete_everywhere(data_dir: &Path) -> Result<(), String> {
    let file = TokenStore::File(data_dir.join(TOKEN_FILE)).delete();
    if keyring::Entry::store_status().is_ok() {
        let keyring = TokenStore::Keyring {
            account: format!("refresh-token:{}", data_dir.display()),
        };
        keyring.delete()?;
    }
    file
}

/// Writes, reads back through a second entry, and deletes a probe value: a store that answers
/// but keeps nothing fails here.
fn probe_keyring() -> Result<(), String> {
    if let Err(e) = keyring::Entry::store_status() {
        return Err(format!("no OS keyring is available ({e})"));
    }
    let account = format!("probe-{}", std::process::id());
    let value = format!("probe-{}", rand::random::<u64>());
    let write = keyring::Entry::new(SERVICE, &account).and_then(|e| e.set_password(&value));
    if let Err(e) = write {
        return Err(format!("the OS keyring refused a test value ({e})"));
    }
    let read = keyring::Entry::new(SERVICE, &account).and_then(|e| e.get_password());
    let _ = keyring::Entry::new(SERVICE, &account).and_then(|e| e.delete_credential());
    match read {
        Ok(v) if v == value => Ok(()),
        Ok(_) => Err("the OS keyring returned another value than it was given".to_owned()),
        Err(e) => Err(format!("the OS keyring keeps nothing ({e})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Remembered {
        Remembered {
            refresh_token: SecretString::from("rt-secret-value".to_owned()),
            upn: "adele.vance@contoso.example".into(),
            client_id: "cid".into(),
            authority: "http://127.0.0.1:1/organizations/v2.0".into(),
        }
    }

    #[test]
    fn file_store_round_trip_private_and_deletable() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::select(TokenStoreKind::File, dir.path()).unwrap();
        assert!(store.load().unwrap().is_none());
        store.save(&sample()).unwrap();
        let back = store.load().unwrap().unwrap();
        assert_eq!(back.refresh_token.expose_secret(), "rt-secret-value");
        assert_eq!(back.upn, "adele.vance@contoso.example");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        store.delete().unwrap();
        assert!(store.load().unwrap().is_none());
        store.delete().unwrap();
    }

    #[test]
    fn corrupt_file_is_set_aside_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(TOKEN_FILE), b"{ truncated").unwrap();
        let store = TokenStore::File(dir.path().join(TOKEN_FILE));
        assert!(store.load().unwrap_err().contains("set aside"));
        let kept: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("corrupt"))
            .collect();
        assert_eq!(kept.len(), 1);
    }

    #[test]
    fn debug_output_redacts_the_token() {
        assert!(!format!("{:?}", sample()).contains("rt-secret-value"));
    }
}
