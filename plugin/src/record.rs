//! A contact or colleague packed in one shared allocation ([`Record`]), and a folder's contacts
//! as a list of records sorted by id ([`Records`]).
//!
//! The synced mailbox and the index hold the same records (a clone is a reference count), so a
//! contact's strings exist once in memory however many structures refer to it, and copying a
//! 100,000-contact mailbox for a delta round copies pointers, not strings.
//!
//! # Layout
//! `[numbers: u8][emails: u8][one NumberType byte per number]` then every string as a LEB128
//! length and its UTF-8 bytes, in this order: id, display name, given name, surname, company,
//! job title, the numbers, the e-mail addresses. [`Record::from_bytes`] checks all of it, so
//! a record read from disk is as sound as one built here.

use std::{fmt, sync::Arc};

use host_api::NumberType;

/// Fixed strings before the numbers: id, display name, given name, surname, company, job title.
pub const FIXED: usize = 6;
/// At most this many numbers and e-mail addresses are kept per contact (Graph allows 2 business,
/// 2 home, 1 mobile and 3 e-mail addresses).
const MAX_LIST: usize = u8::MAX as usize;

/// A contact packed in one allocation; cloning shares it.
///
/// ```
/// use contact_ms365::record::Record;
/// use host_api::NumberType;
/// let r = Record::new(
///     ["AAMk1", "Jan Müller", "Jan", "Müller", "Contoso", ""],
///     &[(NumberType::BUSINESS, "+49 89 1234-0")],
///     &["jan@contoso.example"],
/// );
/// assert_eq!(r.id(), "AAMk1");
/// assert_eq!(r.surname(), "Müller");
/// assert_eq!(r.numbers().collect::<Vec<_>>(), [(NumberType::BUSINESS, "+49 89 1234-0")]);
/// assert_eq!(Record::from_bytes(r.as_bytes()), Some(r));
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Record(Arc<[u8]>);

impl Record {
    /// Packs a contact: `fixed` is id, display name, given name, surname, company, job title.
    /// Lists longer than 255 entries are cut.
    pub fn new(fixed: [&str; FIXED], numbers: &[(NumberType, &str)], emails: &[&str]) -> Record {
        let numbers = &numbers[..numbers.len().min(MAX_LIST)];
        let emails = &emails[..emails.len().min(MAX_LIST)];
        let texts = fixed
            .iter()
            .copied()
            .chain(numbers.iter().map(|n| n.1))
            .chain(emails.iter().copied());
        let size = 2
            + numbers.len()
            + texts
                .clone()
                .map(|t| leb128_len(t.len()) + t.len())
                .sum::<usize>();
        let mut bytes = Vec::with_capacity(size);
        bytes.push(numbers.len() as u8);
        bytes.push(emails.len() as u8);
        bytes.extend(numbers.iter().map(|n| n.0.raw()));
        for text in texts {
            put_leb128(&mut bytes, text.len());
            bytes.extend_from_slice(text.as_bytes());
        }
        Record(Arc::from(bytes))
    }

    /// A record from its bytes ([`Record::as_bytes`]), checked whole; `None` unless sound.
    pub fn from_bytes(bytes: &[u8]) -> Option<Record> {
        let (&n, rest) = bytes.split_first()?;
        let (&e, rest) = rest.split_first()?;
        let mut rest = rest.get(n as usize..)?;
        for _ in 0..FIXED + n as usize + e as usize {
            let (len, after) = get_leb128(rest)?;
            let text = after.get(..len)?;
            std::str::from_utf8(text).ok()?;
            rest = &after[len..];
        }
        rest.is_empty().then(|| Record(Arc::from(bytes)))
    }

    /// The packed bytes (see the module documentation).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn counts(&self) -> (usize, usize) {
        (self.0[0] as usize, self.0[1] as usize)
    }

    /// Every string in order.
    fn texts(&self) -> Texts<'_> {
        let (n, _) = self.counts();
        Texts(&self.0[2 + n..])
    }

    fn text(&self, k: usize) -> &str {
        self.texts().nth(k).unwrap_or_default()
    }

    /// Id at the source.
    pub fn id(&self) -> &str {
        self.text(0)
    }

    /// Outlook's `displayName`, or empty.
    pub fn display_name(&self) -> &str {
        self.text(1)
    }

    /// Given name, or empty.
    pub fn given_name(&self) -> &str {
        self.text(2)
    }

    /// Surname, or empty.
    pub fn surname(&self) -> &str {
        self.text(3)
    }

    /// Company, or empty.
    pub fn company(&self) -> &str {
        self.text(4)
    }

    /// Job title, or empty.
    pub fn job_title(&self) -> &str {
        self.text(5)
    }

    /// Display name, given name, surname and company, in one walk.
    pub fn names(&self) -> [&str; 4] {
        let [_, display, given, surname, company, _] = self.fixed();
        [display, given, surname, company]
    }

    /// Id, display name, given name, surname, company and job title, in one walk.
    pub fn fixed(&self) -> [&str; FIXED] {
        let mut t = self.texts();
        std::array::from_fn(|_| t.next().unwrap_or_default())
    }

    /// Every phone number with its field, in stored order.
    pub fn numbers(&self) -> impl Iterator<Item = (NumberType, &str)> + Clone {
        let (n, _) = self.counts();
        let types = &self.0[2..2 + n];
        types
            .iter()
            .map(|&t| NumberType::from_raw(t))
            .zip(self.texts().skip(FIXED))
    }

    /// How many phone numbers there are.
    pub fn number_count(&self) -> usize {
        self.counts().0
    }

    /// The field of number `k`.
    pub fn number_type(&self, k: usize) -> NumberType {
        let (n, _) = self.counts();
        if k < n {
            NumberType::from_raw(self.0[2 + k])
        } else {
            NumberType::OTHER
        }
    }

    /// E-mail addresses.
    pub fn emails(&self) -> impl Iterator<Item = &str> + Clone {
        let (n, _) = self.counts();
        self.texts().skip(FIXED + n)
    }

    /// The name to show: the display name; when empty, given name and surname; else the company.
    pub fn shown_name(&self) -> String {
        let [display, given, surname, company] = self.names();
        shown_name(display, given, surname, company)
    }

    /// Heap bytes of the shared allocation (the two reference counts included).
    pub fn heap_bytes(&self) -> usize {
        self.0.len() + 2 * std::mem::size_of::<usize>()
    }
}

/// The name to show: the display name; when empty, given name and surname; else the company.
pub fn shown_name(display: &str, given: &str, surname: &str, company: &str) -> String {
    let display = display.trim();
    if !display.is_empty() {
        return display.to_owned();
    }
    let name = format!("{} {}", given.trim(), surname.trim());
    let name = name.trim();
    if !name.is_empty() {
        return name.to_owned();
    }
    company.trim().to_owned()
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("id", &self.id())
            .field("names", &self.names())
            .field("job_title", &self.job_title())
            .field("numbers", &self.numbers().collect::<Vec<_>>())
            .field("emails", &self.emails().collect::<Vec<_>>())
            .finish()
    }
}

/// The strings of a record, in order.
#[derive(Clone)]
struct Texts<'a>(&'a [u8]);

impl<'a> Iterator for Texts<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let (len, rest) = get_leb128(self.0)?;
        let (text, rest) = rest.split_at_checked(len)?;
        self.0 = rest;
        // SAFETY: a record's bytes are made only by `Record::new` (from `&str`s) and
        // `Record::from_bytes` (which checks that every string is UTF-8 and that the layout is
        // exact), and never change after; so `text` is one of those strings, whole. Checking
        // again here took a fifth of a caller-ID lookup.
        Some(unsafe { std::str::from_utf8_unchecked(text) })
    }
}

fn leb128_len(mut v: usize) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_leb128(out: &mut Vec<u8>, mut v: usize) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A LEB128 length (at most 4 bytes: under 256 MiB) and what follows it.
fn get_leb128(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let mut v = 0usize;
    for (i, &b) in bytes.iter().enumerate().take(4) {
        v |= ((b & 0x7f) as usize) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, &bytes[i + 1..]));
        }
    }
    None
}

/// One change to a [`Records`] list: a record put in place (by its id), or an id removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Add or replace the record with this record's id.
    Put(Record),
    /// Remove the record with this id.
    Remove(String),
}

impl Change {
    fn id(&self) -> &str {
        match self {
            Change::Put(r) => r.id(),
            Change::Remove(id) => id,
        }
    }
}

/// Records sorted by id, each id once.
///
/// ```
/// use contact_ms365::record::{Change, Record, Records};
/// let r = |id: &str, name: &str| Record::new([id, name, "", "", "", ""], &[], &[]);
/// let mut list = Records::default();
/// list.apply(vec![Change::Put(r("b", "Bea")), Change::Put(r("a", "Al")), Change::Put(r("b", "Bea 2"))]);
/// assert_eq!(list.keys().collect::<Vec<_>>(), ["a", "b"]);
/// assert_eq!(list.get("b").unwrap().display_name(), "Bea 2");
/// list.apply(vec![Change::Remove("a".into())]);
/// assert_eq!(list.len(), 1);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Records(Vec<Record>);

impl Records {
    /// Applies changes in order (the last change of an id decides), in one merge.
    pub fn apply(&mut self, mut changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        // Stable: the changes of one id stay in arrival order; keep the last.
        changes.sort_by(|a, b| a.id().cmp(b.id()));
        changes.dedup_by(|later, earlier| {
            let same = later.id() == earlier.id();
            if same {
                std::mem::swap(later, earlier);
            }
            same
        });
        let old = std::mem::take(&mut self.0);
        let mut out = Vec::with_capacity(old.len() + changes.len());
        let mut old = old.into_iter().peekable();
        for change in changes {
            while let Some(r) = old.next_if(|r| r.id() < change.id()) {
                out.push(r);
            }
            old.next_if(|r| r.id() == change.id());
            if let Change::Put(r) = change {
                out.push(r);
            }
        }
        out.extend(old);
        out.shrink_to_fit();
        self.0 = out;
    }

    /// Adds or replaces a record (one merge: for tests and single changes).
    pub fn insert(&mut self, record: Record) {
        self.apply(vec![Change::Put(record)]);
    }

    /// Removes the record with `id`.
    pub fn remove(&mut self, id: &str) {
        if let Ok(i) = self.0.binary_search_by(|r| r.id().cmp(id)) {
            self.0.remove(i);
        }
    }

    /// The record with `id`.
    pub fn get(&self, id: &str) -> Option<&Record> {
        let i = self.0.binary_search_by(|r| r.id().cmp(id)).ok()?;
        Some(&self.0[i])
    }

    /// Whether a record has `id`.
    pub fn contains_key(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    /// The records, by id.
    pub fn values(&self) -> std::slice::Iter<'_, Record> {
        self.0.iter()
    }

    /// The records, by id.
    pub fn as_slice(&self) -> &[Record] {
        &self.0
    }

    /// The ids, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(Record::id)
    }

    /// How many records.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Removes every record.
    pub fn clear(&mut self) {
        self.0.clear();
    }
}

impl Records {
    /// The records of `list`: kept as they are when sorted by id without repeats (as written),
    /// else sorted, the later of two records with one id kept.
    pub fn from_vec(list: Vec<Record>) -> Records {
        if list.windows(2).all(|w| w[0].id() < w[1].id()) {
            Records(list)
        } else {
            list.into_iter().collect()
        }
    }
}

impl std::ops::Index<&str> for Records {
    type Output = Record;

    /// The record with `id`; panics when there is none (as a map does).
    fn index(&self, id: &str) -> &Record {
        self.get(id)
            .unwrap_or_else(|| panic!("no record with id {id:?}"))
    }
}

impl FromIterator<Record> for Records {
    /// Sorted by id; of two records with one id, the later one is kept.
    fn from_iter<I: IntoIterator<Item = Record>>(iter: I) -> Records {
        let mut list = Records::default();
        list.apply(iter.into_iter().map(Change::Put).collect());
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_damaged_bytes() {
        let long = "x".repeat(70_000);
        let r = Record::new(
            ["id-1", "Zoë", "", "Łukasz", &long, "CEO"],
            &[
                (NumberType::BUSINESS, "+49 89 1234-0"),
                (NumberType::HOME, "089 1"),
            ],
            &["a@b.example", ""],
        );
        assert_eq!(r.company().len(), 70_000);
        assert_eq!(r.names(), ["Zoë", "", "Łukasz", long.as_str()]);
        assert_eq!(r.number_count(), 2);
        assert_eq!(r.number_type(1), NumberType::HOME);
        assert_eq!(r.emails().collect::<Vec<_>>(), ["a@b.example", ""]);
        assert_eq!(Record::from_bytes(r.as_bytes()).as_ref(), Some(&r));
        let bytes = r.as_bytes();
        for cut in [0, 1, 2, 5, bytes.len() - 1] {
            assert_eq!(Record::from_bytes(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert_eq!(Record::from_bytes(&longer), None, "trailing bytes");
        let mut bad_utf8 = bytes.to_vec();
        let at = bad_utf8.len() - 1;
        bad_utf8[at] = 0xff;
        assert_eq!(Record::from_bytes(&bad_utf8), None, "not UTF-8");
    }

    #[test]
    fn shown_name_falls_back_to_names_then_company() {
        let r = |d: &str, g: &str, s: &str, c: &str| Record::new(["1", d, g, s, c, ""], &[], &[]);
        assert_eq!(r(" Adele ", "x", "y", "z").shown_name(), "Adele");
        assert_eq!(r("", "Adele", "Vance", "z").shown_name(), "Adele Vance");
        assert_eq!(r("", "", "Vance", "z").shown_name(), "Vance");
        assert_eq!(r("", "", "", "Contoso").shown_name(), "Contoso");
    }

    #[test]
    fn apply_merges_in_arrival_order() {
        let r = |id: &str, name: &str| Record::new([id, name, "", "", "", ""], &[], &[]);
        let mut list: Records = [r("c", "C"), r("a", "A")].into_iter().collect();
        list.apply(vec![
            Change::Remove("c".into()),
            Change::Put(r("c", "C2")),
            Change::Put(r("b", "B")),
            Change::Put(r("a", "A2")),
            Change::Remove("a".into()),
            Change::Remove("zz".into()),
        ]);
        let got: Vec<_> = list.values().map(|r| (r.id(), r.display_name())).collect();
        assert_eq!(got, [("b", "B"), ("c", "C2")]);
    }
}
