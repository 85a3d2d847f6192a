//! The contacts snapshot in the data folder: what was synced, the delta links and the index built
//! from it, so a restart answers calls and searches at once (before any network traffic, without
//! rebuilding the index) and the next sync asks only for changes.
//!
//! Written atomically (temporary file, fsync, rename) and readable by the user only. A corrupt,
//! truncated or foreign file is set aside (renamed, logged) and a full sync runs.
//!
//! # Format (binary, little-endian; see [`crate::codec`])
//! [`MAGIC`], the format [`VERSION`] (u32), then the body: the account, the last sync, the
//! directory's delta link, every folder (id, delta link, packed contacts), the colleagues, and
//! optionally the index ([`Index::write`]); last, a CRC-32 of the body (u32). The index is used
//! only when it was written by this index format for the host's current country; otherwise it
//! is built from the contacts.
//!
//! Both ways stream through a small buffer: the file is never held whole in memory beside the
//! contacts and index it holds. Nothing read is used unless the whole file checked out.

use std::{
    fs::File,
    io::{BufReader, BufWriter, Write},
    path::Path,
};

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
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (None, None),
        Err(e) => {
            return (
                None,
                Some(format!("cannot read the contacts snapshot: {e}")),
            );
        }
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let problem = match read(
        BufReader::with_capacity(256 * 1024, file),
        len,
        Some(region),
    ) {
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
    read(bytes, bytes.len() as u64, region)
}

/// Reads a snapshot of `len` bytes from `src`.
fn read(mut src: impl std::io::BufRead, len: u64, region: Option<&str>) -> Result<Loaded, String> {
    let mut header = [0u8; MAGIC.len() + 4];
    if src.read_exact(&mut header).is_err() || !header.starts_with(MAGIC) {
        return Err(if header.starts_with(MAGIC) {
            "it is truncated".to_owned()
        } else {
            "it is not a contacts snapshot".to_owned()
        });
    }
    let version = u32::from_le_bytes(header[MAGIC.len()..].try_into().unwrap_or_default());
    if version != VERSION {
        return Err(format!(
            "it has format version {version} (expected {VERSION})"
        ));
    }
    let mut r = Reader::from_stream(src, len.saturating_sub(header.len() as u64));
    let unreadable = |e: Truncated| format!("it is unreadable ({e})");
    let mailbox = read_mailbox(&mut r).map_err(unreadable)?;
    let index = match (r.u8().map_err(unreadable)?, region) {
        (0, _) | (1, None) => None,
        (1, Some(region)) => {
            let (records, sources) = mailbox.indexed();
            Index::read(&mut r, records, sources, region).map_err(|e| format!("its {e}"))?
        }
        _ => return Err(unreadable(Truncated)),
    };
    // An index not read (another country or format) still counts in the checksum.
    r.skip_to_last(4).map_err(unreadable)?;
    let computed = r.crc();
    if r.u32().map_err(unreadable)? != computed || r.left() != 0 {
        return Err("its checksum does not match (damaged or truncated)".to_owned());
    }
    Ok(Loaded { mailbox, index })
}

/// Records are read in batches of about this many bytes.
const BATCH: usize = 256 * 1024;

fn read_records(r: &mut Reader) -> Result<Records, Truncated> {
    let lengths = r.u32s()?;
    let mut records = Vec::with_capacity(lengths.len());
    let mut rest = &lengths[..];
    while !rest.is_empty() {
        // At least one record, then as many as fit in a batch.
        let mut size = rest[0] as usize;
        let mut n = 1;
        while n < rest.len() && size + rest[n] as usize <= BATCH {
            size += rest[n] as usize;
            n += 1;
        }
        let mut batch = r.raw(size)?;
        for &len in &rest[..n] {
            let (bytes, after) = batch.split_at(len as usize);
            records.push(Record::from_bytes(bytes).ok_or(Truncated)?);
            batch = after;
        }
        rest = &rest[n..];
    }
    Ok(Records::from_vec(records))
}

fn read_mailbox(r: &mut Reader) -> Result<Mailbox, Truncated> {
    let upn = r.str()?.to_owned();
    let last_sync = r.opt_str()?;
    let directory_delta_link = r.opt_str()?;
    let mut mailbox = Mailbox {
        upn,
        last_sync,
        directory_delta_link,
        ..Mailbox::default()
    };
    for _ in 0..r.length()? {
        let id = r.str()?.to_owned();
        let delta_link = r.opt_str()?;
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

/// The records' lengths, then their bytes one after the other.
fn write_records(w: &mut Writer, records: &Records) {
    let lengths: Vec<u32> = records
        .values()
        .map(|r| u32::try_from(r.as_bytes().len()).unwrap_or(u32::MAX))
        .collect();
    w.u32s(&lengths);
    for record in records.values() {
        w.raw(record.as_bytes());
    }
}

/// Writes the whole snapshot to `out`. `index` is written only when it was built from exactly
/// this mailbox.
fn write(out: &mut dyn Write, mailbox: &Mailbox, index: Option<&Index>) -> std::io::Result<()> {
    out.write_all(MAGIC)?;
    out.write_all(&VERSION.to_le_bytes())?;
    let mut w = Writer::to(out);
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
    let (_, crc) = w.finish()?;
    out.write_all(&crc.to_le_bytes())
}

/// The snapshot's bytes (see [`save`]).
pub fn encode(mailbox: &Mailbox, index: Option<&Index>) -> Vec<u8> {
    let mut bytes = Vec::new();
    // Writing to memory does not fail.
    let _ = write(&mut bytes, mailbox, index);
    bytes
}

/// Whether `index` holds the mailbox's entries, in order, with their sources.
fn built_from(index: &Index, mailbox: &Mailbox) -> bool {
    let (records, sources) = mailbox.indexed();
    index.records() == records.as_slice() && index.sources() == sources.as_slice()
}

/// Writes the snapshot atomically, with the index built from `mailbox` when given.
pub fn save(dir: &Path, mailbox: &Mailbox, index: Option<&Index>) -> std::io::Result<()> {
    crate::store::write_atomic_with(&dir.join(SNAPSHOT_FILE), |file| {
        let mut out = BufWriter::with_capacity(256 * 1024, file);
        write(&mut out, mailbox, index)?;
        out.flush()
    })
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
    fn any_damaged_byte_is_refused_whole() {
        let m = mailbox();
        let bytes = encode(&m, Some(&crate::contacts::build_index(&m, "DE")));
        assert!(decode(&bytes, Some("DE")).unwrap().index.is_some());
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x20;
            for region in [Some("DE"), Some("AT"), None] {
                assert!(
                    decode(&damaged, region).is_err(),
                    "byte {at} of {} changed, read for {region:?}",
                    bytes.len()
                );
            }
        }
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut], Some("DE")).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer, Some("DE")).is_err(), "a byte too many");
    }

    /// Damage that the checksum cannot see (the checksum recomputed after each change) is
    /// refused by the structural checks, or gives data that answers without a panic.
    #[test]
    fn damage_behind_a_valid_checksum_never_panics() {
        let m = mailbox();
        let bytes = encode(&m, Some(&crate::contacts::build_index(&m, "DE")));
        let body = MAGIC.len() + 4..bytes.len() - 4;
        let options = LookupOptions {
            region: "DE",
            outside_line_prefixes: &[],
        };
        let mut refused = 0;
        for at in body.clone() {
            for flip in [0x01, 0x80] {
                let mut damaged = bytes.clone();
                damaged[at] ^= flip;
                let crc = crc32fast::hash(&damaged[body.clone()]);
                let end = damaged.len();
                damaged[end - 4..].copy_from_slice(&crc.to_le_bytes());
                let Ok(loaded) = decode(&damaged, Some("DE")) else {
                    refused += 1;
                    continue;
                };
                let index = loaded
                    .index
                    .unwrap_or_else(|| crate::contacts::build_index(&loaded.mailbox, "DE"));
                for number in ["089 1234567", "+41 44 668 18 00", "+49 89 555", "12345678"] {
                    let _ = index.lookup(number, &options);
                }
                for query in ["jan", "z", "mu", "089", "4989"] {
                    let _ = index.search(query, 10);
                }
            }
        }
        assert!(refused > 0, "some damage must be refused");
    }

    #[test]
    fn the_legacy_json_snapshot_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LEGACY_FILE), b"{}").unwrap();
        assert!(matches!(load(dir.path(), "DE"), (None, None)));
        assert!(!dir.path().join(LEGACY_FILE).exists());
    }
}
