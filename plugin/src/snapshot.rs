//! The contacts snapshot in the data folder: what was synced, the delta links and the index built
//! from it, so a restart answers calls and searches at once (before any network traffic, without
//! rebuilding the index) and the next sync asks only for changes.
//!
//! Written atomically (temporary file, fsync, rename) and readable by the user only. A corrupt,
//! truncated or foreign file is set aside (renamed, logged) and a full sync runs.
//!
//! # Format (binary, little-endian; see [`crate::codec`])
//! [`MAGIC`], the format [`VERSION`] (u32), a CRC-32 of the rest (u32), then: the account,
//! the last sync, the directory's delta link, every folder (id, delta link, packed contacts),
//! the colleagues, and optionally the index ([`Index::write`]). The index is used only when it
//! was written by this index format for the host's current country; otherwise it is built
//! from the contacts.

use std::path::Path;

use host_api::ContactSource;
use serde_json::{Value, json};

use crate::{
    codec::{Reader, Truncated, Writer},
    directory::Index,
    record::{Record, Records},
    sync::{Folder, Mailbox, StoredContact},
};

/// File name in the data folder.
pub const SNAPSHOT_FILE: &str = "contacts.snapshot";
/// The JSON snapshot of earlier versions; removed when found (a full sync replaces it).
const LEGACY_FILE: &str = "contacts.snapshot.json";
/// The first bytes of a snapshot.
pub const MAGIC: &[u8; 32] = b"contact-ms365 contacts snapshot\n";
/// Format version of the file.
pub const VERSION: u32 = 2;

/// A snapshot read back.
#[derive(Debug)]
pub struct Loaded {
    /// The synced data.
    pub mailbox: Mailbox,
    /// The index written with it, when usable here (same index format, same country).
    pub index: Option<Index>,
}

/// Reads the snapshot; the index is used only if it was built for `region`. `(None,
/// Some(note))` when a file was there but unusable (it was set aside; the note is for the log).
pub fn load(dir: &Path, region: &str) -> (Option<Loaded>, Option<String>) {
    let _ = std::fs::remove_file(dir.join(LEGACY_FILE));
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
    let problem = match decode(&bytes, Some(region)) {
        Ok(loaded) => return (Some(loaded), None),
        Err(problem) => problem,
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

/// Reads a snapshot's bytes (nothing on disk changes); why not, when they are unusable. The index
/// is read for `region` (`None`: not read). An index that is damaged though the checksum holds
/// makes the whole file unusable.
pub fn decode(bytes: &[u8], region: Option<&str>) -> Result<Loaded, String> {
    let Some(rest) = bytes.strip_prefix(MAGIC.as_slice()) else {
        return Err("it is not a contacts snapshot".to_owned());
    };
    let mut r = Reader::new(rest);
    let header = (r.u32(), r.u32());
    let (Ok(version), Ok(crc)) = header else {
        return Err("it is truncated".to_owned());
    };
    if version != VERSION {
        return Err(format!(
            "it has format version {version} (expected {VERSION})"
        ));
    }
    let payload = &rest[8..];
    if crc32fast::hash(payload) != crc {
        return Err("its checksum does not match (damaged or truncated)".to_owned());
    }
    let mut r = Reader::new(payload);
    let unreadable = |e: Truncated| format!("it is unreadable ({e})");
    let mailbox = read_mailbox(&mut r).map_err(unreadable)?;
    let index = match (r.u8().map_err(unreadable)?, region) {
        (0, _) | (1, None) => None,
        (1, Some(region)) => {
            let (outlook, colleagues) = mailbox.entries();
            let mut sources = vec![ContactSource::OUTLOOK; outlook.len()];
            sources.resize(outlook.len() + colleagues.len(), ContactSource::DIRECTORY);
            let records = outlook.into_iter().chain(colleagues).cloned().collect();
            Index::read(&mut r, records, sources, region).map_err(|e| format!("its {e}"))?
        }
        _ => return Err(unreadable(Truncated)),
    };
    Ok(Loaded { mailbox, index })
}

fn read_records(r: &mut Reader) -> Result<Records, Truncated> {
    let n = r.length()?;
    let mut records = Vec::with_capacity(n);
    for _ in 0..n {
        records.push(Record::from_bytes(r.bytes()?).ok_or(Truncated)?);
    }
    Ok(Records::from_vec(records))
}

fn read_mailbox(r: &mut Reader) -> Result<Mailbox, Truncated> {
    let upn = r.str()?.to_owned();
    let last_sync = r.opt_str()?.map(str::to_owned);
    let directory_delta_link = r.opt_str()?.map(str::to_owned);
    let mut mailbox = Mailbox {
        upn,
        last_sync,
        directory_delta_link,
        ..Mailbox::default()
    };
    for _ in 0..r.length()? {
        let id = r.str()?.to_owned();
        let delta_link = r.opt_str()?.map(str::to_owned);
        let contacts = read_records(r)?;
        mailbox.folders.insert(
            id,
            Folder {
                delta_link,
                contacts,
            },
        );
    }
    mailbox.colleagues = read_records(r)?;
    Ok(mailbox)
}

fn write_records(w: &mut Writer, records: &Records) {
    w.u64(records.len() as u64);
    for record in records.values() {
        w.bytes(record.as_bytes());
    }
}

/// The snapshot's bytes. `index` is written only when it was built from exactly this mailbox.
pub fn encode(mailbox: &Mailbox, index: Option<&Index>) -> Vec<u8> {
    let size = mailbox
        .folders
        .values()
        .map(|f| &f.contacts)
        .chain([&mailbox.colleagues])
        .flat_map(Records::values)
        .map(|r| r.as_bytes().len() + 8)
        .sum::<usize>();
    let mut w = Writer::with_capacity(size + size / 2);
    w.str(&mailbox.upn);
    w.opt_str(mailbox.last_sync.as_deref());
    w.opt_str(mailbox.directory_delta_link.as_deref());
    w.u64(mailbox.folders.len() as u64);
    for (id, folder) in &mailbox.folders {
        w.str(id);
        w.opt_str(folder.delta_link.as_deref());
        write_records(&mut w, &folder.contacts);
    }
    write_records(&mut w, &mailbox.colleagues);
    match index.filter(|index| built_from(index, mailbox)) {
        Some(index) => {
            w.u8(1);
            index.write(&mut w);
        }
        None => w.u8(0),
    }
    let payload = w.into_bytes();
    let mut bytes = Vec::with_capacity(MAGIC.len() + 8 + payload.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&VERSION.to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    bytes.extend_from_slice(&payload);
    bytes
}

/// Whether `index` holds the mailbox's entries, in order, with their sources.
fn built_from(index: &Index, mailbox: &Mailbox) -> bool {
    let (outlook, colleagues) = mailbox.entries();
    let sources = std::iter::repeat_n(ContactSource::OUTLOOK, outlook.len()).chain(
        std::iter::repeat_n(ContactSource::DIRECTORY, colleagues.len()),
    );
    index.len() == outlook.len() + colleagues.len()
        && outlook.into_iter().chain(colleagues).eq(index.records())
        && sources.eq(index.sources().iter().copied())
}

/// Writes the snapshot atomically, with the index built from `mailbox` when given.
pub fn save(dir: &Path, mailbox: &Mailbox, index: Option<&Index>) -> std::io::Result<()> {
    crate::store::write_atomic(&dir.join(SNAPSHOT_FILE), &encode(mailbox, index))
}

/// Deletes the snapshot (sign-out).
pub fn delete(dir: &Path) -> std::io::Result<()> {
    let _ = std::fs::remove_file(dir.join(LEGACY_FILE));
    match std::fs::remove_file(dir.join(SNAPSHOT_FILE)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The snapshot at `path` as JSON, for diagnostics and tests: `{"kind", "version", "mailbox"}`
/// (see [`to_json`]). Nothing on disk changes.
pub fn read_json(path: &Path) -> Result<Value, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let loaded = decode(&bytes, None)?;
    let kind = std::str::from_utf8(MAGIC).unwrap_or_default().trim_end();
    Ok(json!({
        "kind": kind,
        "version": VERSION,
        "mailbox": to_json(&loaded.mailbox),
    }))
}

/// A mailbox as JSON, for diagnostics and tests: `{"upn", "last_sync", "directory_delta_link",
/// "folders": {id: {"delta_link", "contacts": {id: contact}}}, "colleagues": {id: contact}}`.
pub fn to_json(mailbox: &Mailbox) -> Value {
    let contacts = |records: &Records| {
        records
            .values()
            .map(|r| {
                let c = StoredContact::from(r);
                (
                    c.id.clone(),
                    json!({
                        "display_name": c.display_name, "given_name": c.given_name,
                        "surname": c.surname, "company": c.company, "job_title": c.job_title,
                        "business": c.business, "home": c.home, "mobile": c.mobile,
                        "emails": c.emails,
                    }),
                )
            })
            .collect::<serde_json::Map<_, _>>()
    };
    let folders = mailbox
        .folders
        .iter()
        .map(|(id, f)| {
            (
                id.clone(),
                json!({"delta_link": f.delta_link, "contacts": contacts(&f.contacts)}),
            )
        })
        .collect::<serde_json::Map<_, _>>();
    json!({
        "upn": mailbox.upn,
        "last_sync": mailbox.last_sync,
        "directory_delta_link": mailbox.directory_delta_link,
        "folders": folders,
        "colleagues": contacts(&mailbox.colleagues),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::LookupOptions;

    fn mailbox() -> Mailbox {
        let mut m = Mailbox {
            upn: "adele.vance@contoso.example".into(),
            last_sync: Some("2026-11-27T10:00:00Z".into()),
            ..Default::default()
        };
        let contact = |id: &str, name: &str, number: &str| StoredContact {
            id: id.into(),
            display_name: name.into(),
            business: vec![number.into()],
            ..Default::default()
        };
        m.folders.insert(
            "f1".into(),
            Folder {
                delta_link: Some("http://127.0.0.1/delta?$deltatoken=x".into()),
                contacts: [
                    contact("c1", "Jan Müller", "089 1234567").pack(),
                    contact("c2", "Zoë", "+41 44 668 18 00").pack(),
                ]
                .into_iter()
                .collect(),
            },
        );
        m.colleagues
            .insert(contact("u1", "Megan Bowen", "+49 89 555").pack());
        m.directory_delta_link = Some("http://127.0.0.1/users/delta?$deltatoken=y".into());
        m
    }

    #[test]
    fn round_trip_with_and_without_the_index() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(load(dir.path(), "DE"), (None, None)));
        let m = mailbox();
        let index = crate::contacts::build_index(&m, "DE");
        save(dir.path(), &m, Some(&index)).unwrap();
        let (loaded, note) = load(dir.path(), "DE");
        let loaded = loaded.unwrap();
        assert_eq!(note, None);
        assert_eq!(loaded.mailbox, m);
        let read = loaded.index.expect("the index is used in the same country");
        let options = LookupOptions {
            region: "DE",
            outside_line_prefixes: &[],
        };
        let caller = read.lookup("+49 89 1234567", &options).unwrap();
        assert_eq!(caller.contact_id.as_str(), "c1");
        assert_eq!(read.search("zoe", 5).len(), 1);
        // Another country: the contacts, without the index.
        let (loaded, _) = load(dir.path(), "AT");
        let loaded = loaded.unwrap();
        assert_eq!(loaded.mailbox, m);
        assert!(loaded.index.is_none());
        // An index of other data is not written.
        let other = crate::contacts::build_index(&Mailbox::default(), "DE");
        save(dir.path(), &m, Some(&other)).unwrap();
        assert!(load(dir.path(), "DE").0.unwrap().index.is_none());
        delete(dir.path()).unwrap();
        assert!(matches!(load(dir.path(), "DE"), (None, None)));
    }

    #[test]
    fn json_view_has_folders_contacts_and_links() {
        let v = to_json(&mailbox());
        assert_eq!(v["folders"]["f1"]["contacts"]["c2"]["display_name"], "Zoë");
        assert_eq!(
            v["folders"]["f1"]["delta_link"],
            "http://127.0.0.1/delta?$deltatoken=x"
        );
        assert_eq!(v["colleagues"]["u1"]["business"][0], "+49 89 555");
    }

    #[test]
    fn corrupt_truncated_and_foreign_files_are_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let m = mailbox();
        let index = crate::contacts::build_index(&m, "DE");
        save(dir.path(), &m, Some(&index)).unwrap();
        let full = std::fs::read(dir.path().join(SNAPSHOT_FILE)).unwrap();
        let mut flipped = full.clone();
        let at = flipped.len() / 2;
        flipped[at] ^= 1;
        let mut other_version = full.clone();
        other_version[MAGIC.len()..MAGIC.len() + 4].copy_from_slice(&99u32.to_le_bytes());
        let bad = [
            full[..full.len() / 2].to_vec(),
            full[..MAGIC.len() + 3].to_vec(),
            flipped,
            other_version,
            b"\x00\x01garbage".to_vec(),
            br#"{"kind":"contact-ms365 contacts snapshot","version":1,"mailbox":{}}"#.to_vec(),
        ];
        for bytes in &bad {
            std::fs::write(dir.path().join(SNAPSHOT_FILE), bytes).unwrap();
            let (m, note) = load(dir.path(), "DE");
            assert!(m.is_none());
            assert!(note.unwrap().contains("set aside"));
            assert!(!dir.path().join(SNAPSHOT_FILE).exists());
        }
        let aside = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(
            aside,
            bad.len(),
            "nothing is lost: every bad file is kept aside"
        );
    }

    #[test]
    fn the_legacy_json_snapshot_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LEGACY_FILE), b"{}").unwrap();
        assert!(matches!(load(dir.path(), "DE"), (None, None)));
        assert!(!dir.path().join(LEGACY_FILE).exists());
    }
}
