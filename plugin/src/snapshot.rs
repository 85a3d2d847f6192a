//! The contacts snapshot in the data folder: what was synced and the delta links, so a restart
//! answers calls at once (before any network traffic) and the next sync asks only for changes.
//!
//! Written atomically (temporary file, fsync, rename) and readable by the user only. A corrupt,
//! truncated or foreign file is set aside (renamed, logged) and a full sync runs.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::sync::Mailbox;

/// File name in the data folder.
pub const SNAPSHOT_FILE: &str = "contacts.snapshot.json";
const KIND: &str = "contact-ms365 contacts snapshot";
const VERSION: u32 = 1;

#[derive(Serialize)]
struct FileOut<'a> {
    kind: &'a str,
    version: u32,
    mailbox: &'a Mailbox,
}

#[derive(Deserialize)]
struct FileIn {
    kind: String,
    version: u32,
    mailbox: Mailbox,
}

/// Reads the snapshot. `(None, Some(note))` when a file was there but unusable (it was set
/// aside; the note is for the log).
pub fn load(dir: &Path) -> (Option<Mailbox>, Option<String>) {
    let path = dir.join(SNAPSHOT_FILE);
    let bytes = match crate::store::read_optional(&path) {
        Ok(None) => return (None, None),
        Ok(Some(b)) => b,
        Err(e) => {
            return (
                None,
                Some(format!("cannot read the contacts snapshot: {e}")),
            );
        }
    };
    let problem = match serde_json::from_slice::<FileIn>(&bytes) {
        Ok(f) if f.kind == KIND && f.version == VERSION => return (Some(f.mailbox), None),
        Ok(f) if f.kind == KIND => {
            format!("it has format version {} (expected {VERSION})", f.version)
        }
        Ok(_) => "it is not a contacts snapshot".to_owned(),
        Err(e) => format!("it is unreadable ({e})"),
    };
    let note = match crate::store::set_aside(&path) {
        Ok(aside) => format!(
            "contacts snapshot set aside as {}: {problem}; a full sync follows",
            aside.display()
        ),
        Err(e) => format!("contacts snapshot unusable ({problem}) and could not be set aside: {e}"),
    };
    (None, Some(note))
}

/// Writes the snapshot atomically.
pub fn save(dir: &Path, mailbox: &Mailbox) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(&FileOut {
        kind: KIND,
        version: VERSION,
        mailbox,
    })
    .map_err(std::io::Error::other)?;
    crate::store::write_atomic(&dir.join(SNAPSHOT_FILE), &bytes)
}

/// Deletes the snapshot (sign-out).
pub fn delete(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(dir.join(SNAPSHOT_FILE)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::{Folder, StoredContact};

    fn mailbox() -> Mailbox {
        let mut m = Mailbox {
            upn: "adele.vance@contoso.example".into(),
            ..Default::default()
        };
        m.folders.insert(
            "f1".into(),
            Folder {
                delta_link: Some("http://127.0.0.1/delta?$deltatoken=x".into()),
                contacts: [(
                    "c1".into(),
                    StoredContact {
                        id: "c1".into(),
                        display_name: "Jan Müller".into(),
                        ..Default::default()
                    },
                )]
                .into(),
            },
        );
        m
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()), (None, None));
        save(dir.path(), &mailbox()).unwrap();
        assert_eq!(load(dir.path()), (Some(mailbox()), None));
        delete(dir.path()).unwrap();
        assert_eq!(load(dir.path()), (None, None));
    }

    #[test]
    fn corrupt_truncated_and_foreign_files_are_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &mailbox()).unwrap();
        let full = std::fs::read(dir.path().join(SNAPSHOT_FILE)).unwrap();
        for bad in [
            full[..full.len() / 2].to_vec(),
            b"\x00\x01garbage".to_vec(),
            br#"{"kind":"something else","version":1,"mailbox":{}}"#.to_vec(),
            br#"{"kind":"contact-ms365 contacts snapshot","version":99,"mailbox":{}}"#.to_vec(),
        ] {
            std::fs::write(dir.path().join(SNAPSHOT_FILE), &bad).unwrap();
            let (m, note) = load(dir.path());
            assert!(m.is_none());
            assert!(note.unwrap().contains("set aside"));
            assert!(!dir.path().join(SNAPSHOT_FILE).exists());
        }
        let aside = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(aside, 4, "nothing is lost: every bad file is kept aside");
    }
}
