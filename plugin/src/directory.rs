//! The in-memory contact index that answers incoming calls and phonebook searches.
//!
//! Readers never wait on a writer for long: the index is an immutable `Arc<Index>` swapped whole
//! under a short lock, so an answer always comes from the old or the new data, never a mix. All
//! the work (number normalization, token and digit indexes) happens once in [`Index::new`]; a call
//! lookup or a search only reads.
//!
//! # Caller ID ([`Directory::lookup`])
//!
//! The incoming number is read with [`crate::phone::parse`] using the host's country
//! ([`LookupOptions::region`]); stored numbers were read the same way with the index's region.
//! The number is tried as delivered, then once without each outside-line prefix of
//! [`LookupOptions::outside_line_prefixes`] that it starts with (`0`, `L0#`). For each of those
//! forms, in this order:
//!
//! 1. **Exact E.164**: a valid incoming number equal to a stored valid number. An extension in the
//!    input (`;ext=22`, `x22`) is reported in [`CallerInfo::extension`].
//! 2. **Company number + extension**: a stored number whose last block is `-0`
//!    (`+49 89 1234-0`, the switchboard convention) marks the company's base number
//!    (`+49891234`). A valid incoming number that extends a base by 1 to 5 digits (and matched no
//!    number exactly) is answered with that contact and `extension` set to the extra digits
//!    (`+49 89 1234 999` → `999`). The longest matching base wins.
//!
//! Only when none of the forms is a valid number:
//!
//! 3. **Last 8 digits**: the last 8 digits of the incoming number equal the last 8 digits of
//!    exactly one stored number (counting equal numbers of several contacts once). If both sides
//!    carry a country code, it must be the same, so a number from another country never matches
//!    (`+43 89 2154 3300` is not `+49 89 2154 3300`). Inputs with `*`, `#` or letters (service
//!    codes) never get here, nor inputs with fewer than 8 digits.
//!
//! Service codes (`110`, `**21#`) are not valid numbers and have fewer than 8 digits, so they
//! never match. [`CallerInfo::number`] is the incoming number in E.164 where it is valid, else
//! as delivered.
//!
//! **Several contacts with one number**: an Outlook contact wins over a colleague from the
//! directory; among equals the contact with the smallest id (byte order) wins, and within one
//! contact its first number with that value. The choice does not depend on the order of the
//! contacts given to [`Index::new`].
//!
//! # Phonebook search ([`Directory::search`])
//!
//! Text is folded with `deunicode` and lower-cased (`Müller` → `muller`, `Zoë` → `zoe`,
//! `Łukasz` → `lukasz`) and split into words at every character that is not a letter or digit
//! (so `anna-lena.schmidt@contoso.com` gives `anna`, `lena`, `schmidt`, `contoso`, `com`). A
//! contact's words come from its shown name, display name, given name, surname, company and
//! e-mail addresses. The query is split the same way and **every** query word must match:
//!
//! - a word of letters (or letters and digits) matches a contact word it is a prefix of;
//! - a query made only of digits and punctuation (`089 1234`, `+49 89`) with at least 3 digits
//!   is one digit term, as is any query word of 3 or more digits: it matches a contact whose
//!   number (E.164 digits where it parses, else the stored digits) contains those digits, or the
//!   digits of the query read as a number in the index's region (`089 12` → `498912`).
//!
//! **Ranking**: each query word scores 0 when it equals a whole contact word (or a whole number's
//! digits), 1 when it is a prefix of the first word of the shown name, 2 otherwise (best score
//! over the contact's words). Results are ordered by the sum of scores, then by the folded shown
//! name, then by id. At most `limit` results are returned (0 gives none; the caller caps it).
//!
//! # Memory
//!
//! [`Index::index_bytes`] reports the heap used by the lookup and search structures: about
//! 476 bytes per contact for the benchmark's 100,000 contacts with 2.15 numbers each. The
//! contacts themselves are the synced mailbox's [`Record`]s, shared, not copied
//! ([`Index::contact_bytes`], about 300 bytes each with Graph's 150-character ids). The
//! largest parts are the digit suffixes (4 bytes per suffix, about 10 per number) and the word
//! index (12 bytes per word in text order plus 8 per word per contact). See `benches/lookup.rs`
//! and, for the RSS of a whole sync, `benches/sync.rs`.

use std::{
    borrow::Cow,
    cell::OnceCell,
    collections::HashMap,
    fmt,
    sync::{Arc, RwLock},
};

use abi_stable::std_types::RString;
use host_api::{CallerInfo, ContactSource, NumberType, PhoneNumber, PhonebookEntry};

use crate::{
    phone,
    record::{self, Record},
};

/// One phone number of a contact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactNumber {
    /// As stored at the source (`+49 89 1234-0`, `089 1234567`, ...).
    pub raw: String,
    /// Which field it came from.
    pub number_type: NumberType,
}

/// A contact or colleague.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contact {
    /// Id at the source.
    pub id: String,
    /// Outlook's `displayName`, or empty.
    pub display_name: String,
    /// Given name, or empty.
    pub given_name: String,
    /// Surname, or empty.
    pub surname: String,
    /// Company, or empty.
    pub company: String,
    /// Job title, or empty.
    pub job_title: String,
    /// Every phone number (all business and home phones, the mobile phone).
    pub numbers: Vec<ContactNumber>,
    /// E-mail addresses.
    pub emails: Vec<String>,
    /// Outlook or directory.
    pub source: ContactSource,
}

impl Contact {
    /// The name to show: the display name; when empty, given name and surname; else the company.
    ///
    /// ```
    /// use contact_ms365::directory::Contact;
    /// use host_api::ContactSource;
    /// let mut c = Contact {
    ///     id: "1".into(), display_name: String::new(), given_name: "Adele".into(),
    ///     surname: "Vance".into(), company: "Contoso".into(), job_title: String::new(),
    ///     numbers: vec![], emails: vec![], source: ContactSource::OUTLOOK,
    /// };
    /// assert_eq!(c.shown_name(), "Adele Vance");
    /// c.given_name.clear();
    /// c.surname.clear();
    /// assert_eq!(c.shown_name(), "Contoso");
    /// ```
    pub fn shown_name(&self) -> String {
        record::shown_name(
            &self.display_name,
            &self.given_name,
            &self.surname,
            &self.company,
        )
    }

    /// Packed, as the index keeps it.
    pub fn pack(&self) -> Record {
        let numbers: Vec<(NumberType, &str)> = self
            .numbers
            .iter()
            .map(|n| (n.number_type, n.raw.as_str()))
            .collect();
        let emails: Vec<&str> = self.emails.iter().map(String::as_str).collect();
        Record::new(
            [
                &self.id,
                &self.display_name,
                &self.given_name,
                &self.surname,
                &self.company,
                &self.job_title,
            ],
            &numbers,
            &emails,
        )
    }
}

/// Options of one caller-ID lookup.
#[derive(Clone, Copy, Debug)]
pub struct LookupOptions<'a> {
    /// The host's country (ISO 3166 alpha-2), for numbers without a country code.
    pub region: &'a str,
    /// PBX outside-line prefixes (`"0"`, `"L0#"`): a number not found as delivered is tried again
    /// without each prefix it starts with.
    pub outside_line_prefixes: &'a [String],
}

/// A position in the flat number arrays (all numbers of all contacts, contact by contact).
type Slot = u32;

/// Contact word in the search index, sorted by text.
#[derive(Clone, Copy, Debug)]
struct SortedToken {
    /// Start in `Index::tok_text`.
    start: u32,
    /// The contact's position in name order (`Index::name_rank`).
    rank: u32,
    /// Length in bytes.
    len: u8,
    /// Whether it is the first word of the shown name.
    first: bool,
}

/// A contact's own word, for checking further query words against one contact.
#[derive(Clone, Copy, Debug)]
struct OwnToken {
    start: u32,
    len: u8,
    first: bool,
}

/// Longest word kept in the search index (longer words are cut).
const MAX_TOKEN_LEN: usize = 64;
/// Longest digit term searched; no stored number is longer.
const MAX_DIGIT_TERM: usize = 20;
/// Most query words considered (a longer query finds nothing).
const MAX_QUERY_TERMS: usize = 16;
/// Longest query considered.
const MAX_QUERY_LEN: usize = 512;
/// Separator after each number in `Index::dig_text` (sorts before digits).
const DIGIT_END: u8 = b'!';
/// Bytes of a suffix compared when sorting (covers every stored number and its separator; what
/// follows the separator only breaks ties).
const SUFFIX_WINDOW: usize = 24;

/// An immutable set of contacts with everything precomputed for caller ID and search.
pub struct Index {
    /// The contacts (shared with the synced mailbox).
    records: Vec<Record>,
    /// Per contact: Outlook or directory.
    sources: Vec<ContactSource>,
    region: String,
    // ---- numbers, flat over all contacts ----
    /// Per contact: its first slot; one extra entry at the end.
    num_start: Vec<u32>,
    /// Per slot: the contact.
    num_contact: Vec<u32>,
    /// Per slot: E.164 digits as an integer when the number is valid, else 0.
    num_e164: Vec<u64>,
    /// Per slot: country code when the number parses (even if invalid), else 0.
    num_cc: Vec<u16>,
    /// Per slot: start of its digits in `dig_text` (they end at `DIGIT_END`).
    num_digits: Vec<u32>,
    /// Per contact: rank in the tie-break order (Outlook first, then id).
    prio: Vec<u32>,
    /// Valid E.164 → best slot.
    by_e164: HashMap<u64, Slot>,
    /// Company base number (E.164 of a `-0` number without its final 0) → best slot.
    by_base: HashMap<u64, Slot>,
    /// (last 8 digits, slot), sorted; numbers with at least 8 digits.
    last8: Vec<(u32, Slot)>,
    /// How the index region writes numbers nationally, when plain.
    trunk: Option<phone::TrunkRule>,
    // ---- search ----
    tok_text: String,
    sorted_tokens: Vec<SortedToken>,
    own_tokens: Vec<OwnToken>,
    /// Per contact: its first own token; one extra entry at the end.
    own_start: Vec<u32>,
    /// Digits of every number, each followed by `DIGIT_END` and its slot (4 bytes, little
    /// endian).
    dig_text: Vec<u8>,
    /// Positions in `dig_text` of every suffix of at least 3 digits, sorted by text.
    suffixes: Vec<u32>,
    /// Per contact: position in the order (folded shown name, id).
    name_rank: Vec<u32>,
    /// Inverse of `name_rank`.
    by_name: Vec<u32>,
    /// Per character of [`ONE_CHARS`]: the first [`ONE_CHAR_KEPT`] answers (name ranks).
    one_char: Vec<Vec<u32>>,
}

/// One-character queries whose answers are kept.
const ONE_CHARS: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
/// Answers kept per one-character query (a larger `limit` is computed).
const ONE_CHAR_KEPT: usize = 200;

impl fmt::Debug for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Index")
            .field("contacts", &self.records.len())
            .field("numbers", &self.num_contact.len())
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl Default for Index {
    fn default() -> Self {
        Index::new(Vec::new(), "")
    }
}

/// `deunicode`, then ASCII lower case.
fn fold(text: &str) -> String {
    let mut folded = deunicode::deunicode(text);
    folded.make_ascii_lowercase();
    folded
}

/// The words of folded text: maximal runs of ASCII letters and digits.
fn words(folded: &str) -> impl Iterator<Item = &str> {
    folded
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// The text of a digit suffix as far as sorting looks: [`SUFFIX_WINDOW`] bytes.
fn suffix_window(dig_text: &[u8], p: u32) -> &[u8] {
    let p = p as usize;
    &dig_text[p..(p + SUFFIX_WINDOW).min(dig_text.len())]
}

/// The first 16 bytes of a suffix packed 4 bits each, digits as 1 to 10 and the end marker (and
/// what follows it) as 0: ordered as the bytes up to the end marker, which are only digits.
fn suffix_key(dig_text: &[u8], p: u32) -> u64 {
    let mut key = 0u64;
    let mut ended = false;
    for i in 0..16 {
        let b = dig_text.get(p as usize + i).copied().unwrap_or(DIGIT_END);
        ended |= !b.is_ascii_digit();
        let nibble = if ended { 0 } else { u64::from(b - b'0') + 1 };
        key = (key << 4) | nibble;
    }
    key
}

/// Sorts suffix positions by their [`suffix_window`], in the same order as comparing the
/// windows, but mostly on packed keys held next to the positions (comparing windows in place
/// reads `dig_text` at random: most of an index build's time for 100,000 contacts). Done per
/// leading digit, so the keys take a tenth of the memory at a time.
fn sort_suffixes(suffixes: &mut [u32], dig_text: &[u8]) {
    suffixes.sort_unstable_by_key(|&p| dig_text[p as usize]);
    let mut keyed: Vec<(u64, u32)> = Vec::new();
    let mut rest = &mut suffixes[..];
    while let Some(&first) = rest.first() {
        let lead = dig_text[first as usize];
        let len = rest.partition_point(|&p| dig_text[p as usize] == lead);
        let (bucket, tail) = rest.split_at_mut(len);
        keyed.clear();
        keyed.extend(bucket.iter().map(|&p| (suffix_key(dig_text, p), p)));
        keyed.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| suffix_window(dig_text, a.1).cmp(suffix_window(dig_text, b.1)))
        });
        for (slot, (_, p)) in bucket.iter_mut().zip(&keyed) {
            *slot = *p;
        }
        rest = tail;
    }
}

/// `"+49891234567"` → 49891234567.
fn e164_value(e164: &str) -> Option<u64> {
    let digits = e164.strip_prefix('+')?;
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.parse().ok()
}

/// The digits of a number that are its own for rule 3: without the country code `cc` (0: none)
/// when they are E.164 digits. A number with fewer than 8 of its own then has no last 8 digits:
/// `1234567` in Germany is +49 1234567, and the `9` of its country code must not make it match
/// +49 89 1234567 (found by the `phone_lookup` fuzz target).
fn own_digits(digits: &str, cc: u16) -> &[u8] {
    let cc_len = match cc {
        0 => 0,
        cc => cc.to_string().len(),
    };
    digits.as_bytes().get(cc_len..).unwrap_or_default()
}

/// The last 8 digits of a digit string, as a number.
fn last8_of(digits: &[u8]) -> Option<u32> {
    let tail = digits.get(digits.len().checked_sub(8)?..)?;
    std::str::from_utf8(tail).ok()?.parse().ok()
}

impl Index {
    /// Builds the index. `region` (ISO 3166 alpha-2, the host's country) is used to read stored
    /// numbers written without a country code.
    ///
    /// ```
    /// use contact_ms365::directory::{Contact, ContactNumber, Index};
    /// use host_api::{ContactSource, NumberType};
    /// let c = Contact {
    ///     id: "1".into(), display_name: "Adele Vance".into(), given_name: String::new(),
    ///     surname: String::new(), company: String::new(), job_title: String::new(),
    ///     numbers: vec![ContactNumber { raw: "089 1234567".into(), number_type: NumberType::MOBILE }],
    ///     emails: vec![], source: ContactSource::OUTLOOK,
    /// };
    /// let index = Index::new(vec![c], "DE");
    /// assert_eq!(index.len(), 1);
    /// assert_eq!(index.region(), "DE");
    /// ```
    pub fn new(contacts: Vec<Contact>, region: &str) -> Index {
        let sources = contacts.iter().map(|c| c.source).collect();
        Index::from_records(
            contacts.iter().map(Contact::pack).collect(),
            sources,
            region,
        )
    }

    /// [`Index::new`] on packed contacts (shared, not copied), with the source of each.
    pub fn from_records(
        records: Vec<Record>,
        mut sources: Vec<ContactSource>,
        region: &str,
    ) -> Index {
        let n = records.len();
        sources.resize(n, ContactSource::OUTLOOK);
        // Tie-break order: Outlook before directory, then id.
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_by(|&a, &b| {
            let key = |i: u32| {
                (
                    sources[i as usize] != ContactSource::OUTLOOK,
                    records[i as usize].id(),
                )
            };
            key(a).cmp(&key(b))
        });
        let mut prio = vec![0u32; n];
        for (rank, &c) in order.iter().enumerate() {
            prio[c as usize] = rank as u32;
        }

        let total_numbers: usize = records.iter().map(Record::number_count).sum();
        let mut num_start = Vec::with_capacity(n + 1);
        let mut num_contact = Vec::with_capacity(total_numbers);
        let mut num_e164 = Vec::with_capacity(total_numbers);
        let mut num_cc = Vec::with_capacity(total_numbers);
        let mut num_digits = Vec::with_capacity(total_numbers);
        let mut dig_text: Vec<u8> = Vec::with_capacity(total_numbers * 18);
        let mut by_e164: HashMap<u64, Slot> = HashMap::with_capacity(total_numbers);
        let mut by_base: HashMap<u64, Slot> = HashMap::new();
        let mut last8: Vec<(u32, Slot)> = Vec::with_capacity(total_numbers);
        let better = |map: &mut HashMap<u64, Slot>,
                      key: u64,
                      slot: Slot,
                      contact: u32,
                      num_contact: &[u32]| {
            map.entry(key)
                .and_modify(|old| {
                    let old_contact = num_contact[*old as usize];
                    if (prio[contact as usize], slot) < (prio[old_contact as usize], *old) {
                        *old = slot;
                    }
                })
                .or_insert(slot);
        };

        for (ci, contact) in records.iter().enumerate() {
            num_start.push(num_contact.len() as u32);
            for (_, raw) in contact.numbers() {
                let slot = num_contact.len() as Slot;
                num_contact.push(ci as u32);
                let parsed = phone::parse(raw, region);
                let value = parsed.as_ref().and_then(|p| e164_value(&p.e164));
                let valid_value = parsed.as_ref().filter(|p| p.is_valid()).and(value);
                num_e164.push(valid_value.unwrap_or(0));
                num_cc.push(parsed.as_ref().map_or(0, |p| p.country_code));
                if let Some(v) = valid_value {
                    better(&mut by_e164, v, slot, ci as u32, &num_contact);
                }
                // Switchboard number `... -0`: its base is the number without the final 0.
                if let Some(v) = value {
                    let raw = raw.trim();
                    let dash_zero = raw
                        .strip_suffix('0')
                        .is_some_and(|r| r.trim_end().ends_with('-'));
                    if dash_zero && v % 10 == 0 && v >= 10 {
                        better(&mut by_base, v / 10, slot, ci as u32, &num_contact);
                    }
                }
                // Digits for search and the last-8 rule: E.164 digits where it parses, else raw.
                let digits: String = match (&parsed, value) {
                    (Some(p), Some(_)) => p.e164[1..].to_owned(),
                    _ => phone::digits(raw)
                        .filter(|d| d.len() <= MAX_DIGIT_TERM)
                        .unwrap_or_default(),
                };
                num_digits.push(dig_text.len() as u32);
                let cc = match (&parsed, value) {
                    (Some(p), Some(_)) => p.country_code,
                    _ => 0,
                };
                if let Some(key) = last8_of(own_digits(&digits, cc)) {
                    last8.push((key, slot));
                }
                dig_text.extend_from_slice(digits.as_bytes());
                dig_text.push(DIGIT_END);
                // The owner, so a search hit inside the digits finds its number without a search.
                dig_text.extend_from_slice(&slot.to_le_bytes());
            }
        }
        num_start.push(num_contact.len() as u32);
        last8.sort_unstable();

        // Suffixes of at least 3 digits, sorted by their text (allocated exactly: this is the
        // largest array of the index).
        let digit_len = |start: u32| {
            dig_text[start as usize..]
                .iter()
                .position(|&b| b == DIGIT_END)
                .unwrap_or(0)
        };
        let count = num_digits
            .iter()
            .map(|&s| digit_len(s).saturating_sub(2))
            .sum();
        let mut suffixes: Vec<u32> = Vec::with_capacity(count);
        for &start in &num_digits {
            let len = digit_len(start);
            if len >= 3 {
                suffixes.extend(start..=start + len as u32 - 3);
            }
        }
        sort_suffixes(&mut suffixes, &dig_text);
        // Words.
        let mut tok_text = String::new();
        let mut own_tokens: Vec<OwnToken> = Vec::with_capacity(n * 4);
        let mut own_start = Vec::with_capacity(n + 1);
        let mut folded_names: Vec<String> = Vec::with_capacity(n);
        let mut seen: Vec<(String, bool)> = Vec::new();
        for contact in &records {
            own_start.push(own_tokens.len() as u32);
            seen.clear();
            let shown = fold(&contact.shown_name());
            let fields = contact.names();
            let add = |word: &str, first: bool, seen: &mut Vec<(String, bool)>| {
                let word = &word[..word.len().min(MAX_TOKEN_LEN)];
                if let Some(s) = seen.iter_mut().find(|(w, _)| w == word) {
                    s.1 |= first;
                } else {
                    seen.push((word.to_owned(), first));
                }
            };
            for (i, w) in words(&shown).enumerate() {
                add(w, i == 0, &mut seen);
            }
            for field in fields.into_iter().chain(contact.emails()) {
                for w in words(&fold(field)) {
                    add(w, false, &mut seen);
                }
            }
            for (word, first) in seen.drain(..) {
                let start = tok_text.len() as u32;
                tok_text.push_str(&word);
                let len = word.len() as u8;
                own_tokens.push(OwnToken { start, len, first });
            }
            folded_names.push(shown);
        }
        own_start.push(own_tokens.len() as u32);
        let mut by_name: Vec<u32> = (0..n as u32).collect();
        by_name.sort_by(|&a, &b| {
            (&folded_names[a as usize], records[a as usize].id())
                .cmp(&(&folded_names[b as usize], records[b as usize].id()))
        });
        drop(folded_names);
        let mut name_rank = vec![0u32; n];
        for (rank, &c) in by_name.iter().enumerate() {
            name_rank[c as usize] = rank as u32;
        }
        // The same words, each with its contact's name rank, sorted by text (allocated exactly).
        let mut sorted_tokens: Vec<SortedToken> = Vec::with_capacity(own_tokens.len());
        for (ci, own) in own_start.windows(2).enumerate() {
            let tokens = &own_tokens[own[0] as usize..own[1] as usize];
            sorted_tokens.extend(tokens.iter().map(|t| SortedToken {
                start: t.start,
                rank: name_rank[ci],
                len: t.len,
                first: t.first,
            }));
        }
        {
            let text = tok_text.as_bytes();
            let of = |t: &SortedToken| &text[t.start as usize..t.start as usize + t.len as usize];
            sorted_tokens.sort_unstable_by(|a, b| of(a).cmp(of(b)).then(a.rank.cmp(&b.rank)));
        }

        let mut index = Index {
            records,
            sources,
            region: region.trim().to_owned(),
            num_start,
            num_contact,
            num_e164,
            num_cc,
            num_digits,
            prio,
            by_e164,
            by_base,
            last8,
            trunk: phone::TrunkRule::for_region(region.trim()),
            tok_text,
            sorted_tokens,
            own_tokens,
            own_start,
            dig_text,
            suffixes,
            name_rank,
            by_name,
            one_char: Vec::new(),
        };
        index.one_char = index.one_char_answers();
        index.shrink();
        index
    }

    fn shrink(&mut self) {
        self.num_start.shrink_to_fit();
        self.num_contact.shrink_to_fit();
        self.num_e164.shrink_to_fit();
        self.num_cc.shrink_to_fit();
        self.num_digits.shrink_to_fit();
        self.by_base.shrink_to_fit();
        self.last8.shrink_to_fit();
        self.tok_text.shrink_to_fit();
        self.sorted_tokens.shrink_to_fit();
        self.own_tokens.shrink_to_fit();
        self.own_start.shrink_to_fit();
        self.dig_text.shrink_to_fit();
        self.suffixes.shrink_to_fit();
    }

    /// Number of contacts held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the index holds no contacts.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The contacts, in the order given to [`Index::new`].
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Per contact: Outlook or directory.
    pub fn sources(&self) -> &[ContactSource] {
        &self.sources
    }

    /// The region stored numbers were read with.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Approximate heap bytes of the lookup and search structures (not counting the contacts'
    /// own strings, see [`Index::contact_bytes`]).
    pub fn index_bytes(&self) -> usize {
        use std::mem::size_of;
        fn vec<T>(v: &Vec<T>) -> usize {
            v.capacity() * size_of::<T>()
        }
        // hashbrown: one control byte per bucket, buckets = capacity * 8 / 7 rounded up to 2^k.
        fn map(m: &HashMap<u64, Slot>) -> usize {
            let buckets = (m.capacity() * 8 / 7).next_power_of_two();
            buckets * (size_of::<(u64, Slot)>() + 1)
        }
        vec(&self.num_start)
            + vec(&self.num_contact)
            + vec(&self.num_e164)
            + vec(&self.num_cc)
            + vec(&self.num_digits)
            + vec(&self.prio)
            + map(&self.by_e164)
            + map(&self.by_base)
            + vec(&self.last8)
            + self.tok_text.capacity()
            + vec(&self.sorted_tokens)
            + vec(&self.own_tokens)
            + vec(&self.own_start)
            + vec(&self.dig_text)
            + vec(&self.suffixes)
            + vec(&self.name_rank)
            + vec(&self.by_name)
            + self.one_char.iter().map(vec).sum::<usize>()
    }

    /// Approximate heap bytes of the contacts themselves (their packed records, shared with the
    /// synced mailbox, and the list of them).
    pub fn contact_bytes(&self) -> usize {
        use std::mem::size_of;
        self.records.capacity() * size_of::<Record>()
            + self.sources.capacity()
            + self.records.iter().map(Record::heap_bytes).sum::<usize>()
    }

    fn digits_at(&self, slot: Slot) -> &[u8] {
        let start = self.num_digits[slot as usize] as usize;
        let len = self.dig_text[start..]
            .iter()
            .position(|&b| b == DIGIT_END)
            .unwrap_or(0);
        &self.dig_text[start..start + len]
    }

    fn slot_key(&self, slot: Slot) -> (u32, Slot) {
        (self.prio[self.num_contact[slot as usize] as usize], slot)
    }

    /// Rule 3: the single stored number with these last 8 digits (and a compatible country).
    fn by_last8(&self, digits: &[u8], country_code: u16) -> Option<Slot> {
        let key = last8_of(digits)?;
        let from = self.last8.partition_point(|&(k, _)| k < key);
        let mut found: Option<Slot> = None;
        for &(k, slot) in &self.last8[from..] {
            if k != key {
                break;
            }
            let cc = self.num_cc[slot as usize];
            if country_code != 0 && cc != 0 && cc != country_code {
                continue;
            }
            match found {
                None => found = Some(slot),
                Some(prev) if self.digits_at(prev) == self.digits_at(slot) => {
                    if self.slot_key(slot) < self.slot_key(prev) {
                        found = Some(slot);
                    }
                }
                Some(_) => return None,
            }
        }
        found
    }

    fn caller(&self, slot: Slot, number: String, extension: Option<String>) -> CallerInfo {
        let ci = self.num_contact[slot as usize] as usize;
        let c = &self.records[ci];
        let ni = slot as usize - self.num_start[ci] as usize;
        let [id, display, given, surname, company, job_title] = c.fixed();
        CallerInfo {
            display_name: record::shown_name(display, given, surname, company).into(),
            company: company.into(),
            job_title: job_title.into(),
            number: number.into(),
            number_type: c.number_type(ni),
            extension: extension.map(RString::from).into(),
            source: self.sources[ci],
            contact_id: id.into(),
            extensions: RString::new(),
        }
    }

    /// Caller ID on this index; see the module documentation for the rules.
    ///
    /// ```
    /// use contact_ms365::directory::{Contact, ContactNumber, Index, LookupOptions};
    /// use host_api::{ContactSource, NumberType};
    /// let c = Contact {
    ///     id: "1".into(), display_name: "Contoso".into(), given_name: String::new(),
    ///     surname: String::new(), company: String::new(), job_title: String::new(),
    ///     numbers: vec![ContactNumber { raw: "+49 89 1234-0".into(), number_type: NumberType::BUSINESS }],
    ///     emails: vec![], source: ContactSource::OUTLOOK,
    /// };
    /// let index = Index::new(vec![c], "DE");
    /// let options = LookupOptions { region: "DE", outside_line_prefixes: &[] };
    /// let caller = index.lookup("089 1234 999", &options).unwrap();
    /// assert_eq!(caller.extension.into_option().unwrap().as_str(), "999");
    /// ```
    pub fn lookup(&self, number: &str, options: &LookupOptions) -> Option<CallerInfo> {
        self.lookup_with(number, options, true)
    }

    /// [`Index::lookup`]; `quick` allows answering plain numbers without the library (see
    /// [`Index::quick`]). Tests compare both ways on the same inputs.
    fn lookup_with(
        &self,
        number: &str,
        options: &LookupOptions,
        quick: bool,
    ) -> Option<CallerInfo> {
        if self.records.is_empty() {
            return None;
        }
        // Rules 1 and 2 on each form (as delivered, then without each outside-line prefix).
        let mut forms: Vec<Form<'_>> = Vec::new();
        let mut text = Some(Cow::Borrowed(number));
        let mut next_prefix = 0;
        while let Some(t) = text.take() {
            let mut form = Form {
                text: t,
                region: options.region,
                parsed: OnceCell::new(),
                surely_absent: false,
            };
            match if quick {
                self.quick(&form)
            } else {
                Quick::Unknown
            } {
                Quick::Found(found) => return Some(*found),
                Quick::Absent => form.surely_absent = true,
                Quick::Unknown => {
                    if let Some(found) = form.parsed().and_then(|p| self.match_valid(p)) {
                        return Some(found);
                    }
                }
            }
            forms.push(form);
            while text.is_none() && next_prefix < options.outside_line_prefixes.len() {
                let prefix = options.outside_line_prefixes[next_prefix].as_str();
                next_prefix += 1;
                text = without_prefix(number, prefix).map(Cow::Owned);
            }
        }
        // Rule 3, only when no form is a valid number (checked only once a candidate exists:
        // parsing and validation are the expensive part).
        for form in forms.iter().filter(|f| !f.surely_absent) {
            let Some(digits) = phone::digits(&form.text) else {
                continue;
            };
            let (digits, cc) = match form.parsed() {
                Some(p) => (p.e164[1..].to_owned(), p.country_code),
                None => (digits, 0),
            };
            if let Some(slot) = self.by_last8(own_digits(&digits, cc), cc) {
                if forms
                    .iter()
                    .any(|f| f.parsed().is_some_and(phone::Parsed::is_valid))
                {
                    return None;
                }
                return Some(self.caller(slot, number.trim().to_owned(), None));
            }
        }
        None
    }

    /// Rules 1 to 3 for a form written as a plain number (international, or national under the
    /// index region's [`phone::TrunkRule`]), without the library: its E.164 form is read
    /// directly. A hit is exact (see [`phone::plain_international`]). A miss is certain when
    /// the country is one the library reads literally ([`phone::reads_literally`]) and the
    /// national significant number does not start with `0`: the library then reads the same
    /// number (national input possibly with the trunk prefix kept), so
    ///
    /// - rule 1 needs that number among the stored ones (`by_e164` has neither form);
    /// - rule 2 needs a company base that it extends by 1 to 5 digits (`by_base` has none);
    /// - rule 3 needs a stored number with the same last 8 digits (`last8` has none).
    ///
    /// Anything else is [`Quick::Unknown`] and goes through the library.
    fn quick(&self, form: &Form<'_>) -> Quick {
        let international = phone::plain_international(&form.text);
        let national = international.is_none();
        let candidate = international.or_else(|| {
            let same_region = form.region.trim().eq_ignore_ascii_case(&self.region);
            let rule = self.trunk.as_ref().filter(|_| same_region)?;
            phone::plain_national(&form.text, rule)
        });
        let Some(e164) = candidate else {
            return Quick::Unknown;
        };
        let Some(value) = e164_value(&e164) else {
            return Quick::Unknown;
        };
        if let Some(&slot) = self.by_e164.get(&value) {
            return Quick::Found(Box::new(self.caller(slot, e164, None)));
        }
        let digits = &e164[1..];
        let Some(cc_len) = phone::country_code_len(digits) else {
            return Quick::Unknown;
        };
        let literal = digits[..cc_len].parse().is_ok_and(phone::reads_literally);
        if !literal || digits.as_bytes().get(cc_len) == Some(&b'0') {
            // `+49 0 89…` is `+4989…` to the library; other countries may rewrite.
            return Quick::Unknown;
        }
        // The number the library may read instead: national input with the trunk kept.
        let kept = national
            .then_some(self.trunk.as_ref())
            .flatten()
            .and_then(|rule| rule.with_trunk_kept(digits, cc_len));
        let mut readings = std::iter::once(value).chain(kept);
        let could_match = readings.any(|v| {
            if self.by_e164.contains_key(&v) {
                return true;
            }
            let mut base = v;
            for _ in 1..=5 {
                base /= 10;
                if self.by_base.contains_key(&base) {
                    return true;
                }
            }
            // Its last 8 digits (it has 8 or more), without formatting it.
            v >= 10_000_000 && self.has_last8((v % 100_000_000) as u32)
        });
        if could_match {
            Quick::Unknown
        } else {
            Quick::Absent
        }
    }

    /// Whether a stored number has these last 8 digits.
    fn has_last8(&self, key: u32) -> bool {
        let at = self.last8.partition_point(|&(k, _)| k < key);
        self.last8.get(at).is_some_and(|&(k, _)| k == key)
    }

    /// Rules 1 and 2 for a parsed number (which must be valid for either).
    fn match_valid(&self, p: &phone::Parsed) -> Option<CallerInfo> {
        let value = e164_value(&p.e164)?;
        // Equal to a stored valid number: the same number, so valid too.
        if let Some(&slot) = self.by_e164.get(&value) {
            return Some(self.caller(slot, p.e164.clone(), p.extension.clone()));
        }
        if self.by_base.is_empty() {
            return None;
        }
        let mut base = value;
        for extra in 1..=5usize {
            base /= 10;
            if base == 0 {
                break;
            }
            if let Some(&slot) = self.by_base.get(&base) {
                if !p.is_valid() {
                    return None;
                }
                let ext = &p.e164[p.e164.len() - extra..];
                return Some(self.caller(slot, p.e164.clone(), Some(ext.to_owned())));
            }
        }
        None
    }

    /// Phonebook search on this index; see the module documentation for matching and ranking.
    ///
    /// ```
    /// use contact_ms365::directory::{Contact, ContactNumber, Index};
    /// use host_api::{ContactSource, NumberType};
    /// let c = Contact {
    ///     id: "1".into(), display_name: "Zoë Müller".into(), given_name: String::new(),
    ///     surname: String::new(), company: String::new(), job_title: String::new(),
    ///     numbers: vec![ContactNumber { raw: "089 1234567".into(), number_type: NumberType::MOBILE }],
    ///     emails: vec![], source: ContactSource::OUTLOOK,
    /// };
    /// let index = Index::new(vec![c], "DE");
    /// assert_eq!(index.search("muller zoe", 10).len(), 1);
    /// assert_eq!(index.search("089 123", 10)[0].numbers[0].number.as_str(), "+49891234567");
    /// ```
    pub fn search(&self, query: &str, limit: usize) -> Vec<PhonebookEntry> {
        if limit == 0 || query.len() > MAX_QUERY_LEN || self.records.is_empty() {
            return Vec::new();
        }
        let terms = self.terms(query);
        if terms.is_empty() || terms.len() > MAX_QUERY_TERMS {
            return Vec::new();
        }
        if let [Term::Text(w)] = terms.as_slice()
            && let Some(ranks) = self.one_char_ranks(w)
            && (limit <= ranks.len() || ranks.len() < ONE_CHAR_KEPT)
        {
            return ranks
                .iter()
                .take(limit)
                .map(|&rank| self.entry(self.by_name[rank as usize] as usize))
                .collect();
        }
        // Drive with the term that has the fewest index entries; check the others per contact.
        let ranges: Vec<Vec<(usize, usize)>> = terms.iter().map(|t| self.ranges(t)).collect();
        let size = |r: &Vec<(usize, usize)>| r.iter().map(|(a, b)| b - a).sum::<usize>();
        let driver = (0..terms.len())
            .min_by_key(|&i| size(&ranges[i]))
            .unwrap_or(0);

        // The driver term's hits as three bitmaps over name order, one per score.
        let words = self.records.len().div_ceil(64);
        let mut bits = [vec![0u64; words], vec![0u64; words], vec![0u64; words]];
        self.mark(&terms[driver], &ranges[driver], &mut bits);

        if terms.len() == 1 {
            return Self::single_term_ranks(&bits, limit)
                .into_iter()
                .map(|rank| self.entry(self.by_name[rank as usize] as usize))
                .collect();
        }

        // Walk the hits in name order; the other terms are checked per contact. Each total
        // score keeps its first `limit` contacts, which are then already in name order.
        let max_total = 2 * terms.len();
        let mut groups: Vec<Vec<u32>> = vec![Vec::new(); max_total + 1];
        let [b0, b1, b2] = &bits;
        'words: for (w, ((&w0, &w1), &w2)) in b0.iter().zip(b1).zip(b2).enumerate() {
            let mut any = w0 | w1 | w2;
            while any != 0 {
                let bit = any.trailing_zeros();
                any &= any - 1;
                let rank = (w * 64) as u32 + bit;
                let mask = 1u64 << bit;
                let mut total = if w0 & mask != 0 {
                    0
                } else if w1 & mask != 0 {
                    1
                } else {
                    2
                };
                let contact = self.by_name[rank as usize];
                for (i, term) in terms.iter().enumerate() {
                    if i == driver {
                        continue;
                    }
                    match self.score(term, contact) {
                        Some(s) => total += usize::from(s),
                        None => total = usize::MAX,
                    }
                    if total == usize::MAX {
                        break;
                    }
                }
                match groups.get_mut(total) {
                    Some(group) if group.len() < limit => {
                        group.push(rank);
                        // The best group is full: nothing later in name order can come before.
                        if total == 0 && group.len() == limit {
                            break 'words;
                        }
                    }
                    _ => {}
                }
            }
        }
        groups
            .into_iter()
            .flatten()
            .take(limit)
            .map(|rank| self.entry(self.by_name[rank as usize] as usize))
            .collect()
    }

    /// Query → terms (see the module documentation).
    fn terms(&self, query: &str) -> Vec<Term> {
        let folded = fold(query);
        let has_letters = folded.bytes().any(|b| b.is_ascii_alphabetic());
        let all_digits: String = folded.chars().filter(char::is_ascii_digit).collect();
        if !has_letters && all_digits.len() >= 3 {
            return self.digit_term(query, all_digits).into_iter().collect();
        }
        let mut terms = Vec::new();
        for word in words(&folded) {
            if word.len() >= 3 && word.bytes().all(|b| b.is_ascii_digit()) {
                match self.digit_term(word, word.to_owned()) {
                    Some(t) => terms.push(t),
                    None => return vec![Term::Never],
                }
            } else {
                terms.push(Term::Text(word[..word.len().min(MAX_TOKEN_LEN)].to_owned()));
            }
        }
        terms
    }

    fn digit_term(&self, text: &str, digits: String) -> Option<Term> {
        if digits.len() > MAX_DIGIT_TERM {
            return None;
        }
        let mut variants = vec![digits];
        if let Some(p) = phone::parse(text, &self.region) {
            let e164 = &p.e164[1..];
            if e164.len() >= 3 && !variants.iter().any(|v| v == e164) {
                variants.push(e164.to_owned());
            }
        }
        Some(Term::Digits(variants))
    }

    /// Ranges of `sorted_tokens` (text) or `suffixes` (digits) matching a term.
    fn ranges(&self, term: &Term) -> Vec<(usize, usize)> {
        match term {
            Term::Never => vec![(0, 0)],
            Term::Text(w) => {
                let text = self.tok_text.as_bytes();
                let of =
                    |t: &SortedToken| &text[t.start as usize..t.start as usize + t.len as usize];
                let w = w.as_bytes();
                let from = self.sorted_tokens.partition_point(|t| of(t) < w);
                let to =
                    from + self.sorted_tokens[from..].partition_point(|t| of(t).starts_with(w));
                vec![(from, to)]
            }
            Term::Digits(variants) => variants
                .iter()
                .map(|v| {
                    let v = v.as_bytes();
                    let at = |p: &u32| {
                        let p = *p as usize;
                        &self.dig_text[p..(p + v.len()).min(self.dig_text.len())]
                    };
                    let from = self.suffixes.partition_point(|p| at(p) < v);
                    let to = from + self.suffixes[from..].partition_point(|p| at(p) == v);
                    (from, to)
                })
                .collect(),
        }
    }

    /// Sets the driver term's hits in the per-score bitmaps (indexed by name rank).
    /// The name ranks a one-term query answers with, best first: the score groups in order,
    /// each in name order, at most `limit`.
    fn single_term_ranks(bits: &[Vec<u64>; 3], limit: usize) -> Vec<u32> {
        let [b0, b1, b2] = bits;
        let group0 = b0.iter().copied().enumerate();
        let group1 = b1.iter().zip(b0).map(|(w1, w0)| w1 & !w0).enumerate();
        let group2 = b2
            .iter()
            .zip(b1.iter().zip(b0))
            .map(|(w2, (w1, w0))| w2 & !w1 & !w0)
            .enumerate();
        group0
            .chain(group1)
            .chain(group2)
            .flat_map(|(w, mut word)| {
                std::iter::from_fn(move || {
                    (word != 0).then(|| {
                        let bit = word.trailing_zeros();
                        word &= word - 1;
                        (w * 64) as u32 + bit
                    })
                })
            })
            .take(limit)
            .collect()
    }

    /// The first [`ONE_CHAR_KEPT`] answers to each one-character query (`a`..`z`, `0`..`9`),
    /// computed once: those queries match the most words, so they are the slowest to answer
    /// and the most often typed (the first key press).
    fn one_char_answers(&self) -> Vec<Vec<u32>> {
        let words = self.records.len().div_ceil(64);
        ONE_CHARS
            .iter()
            .map(|&c| {
                let term = Term::Text(char::from(c).to_string());
                let ranges = self.ranges(&term);
                let mut bits = [vec![0u64; words], vec![0u64; words], vec![0u64; words]];
                self.mark(&term, &ranges, &mut bits);
                let mut ranks = Self::single_term_ranks(&bits, ONE_CHAR_KEPT);
                ranks.shrink_to_fit();
                ranks
            })
            .collect()
    }

    /// The kept answers of a one-character query word.
    fn one_char_ranks(&self, word: &str) -> Option<&[u32]> {
        let &[c] = word.as_bytes() else {
            return None;
        };
        let at = ONE_CHARS.iter().position(|&k| k == c)?;
        self.one_char.get(at).map(Vec::as_slice)
    }

    fn mark(&self, term: &Term, ranges: &[(usize, usize)], bits: &mut [Vec<u64>; 3]) {
        let mut set = |rank: u32, score: usize| {
            bits[score][rank as usize / 64] |= 1 << (rank % 64);
        };
        match term {
            Term::Never => {}
            Term::Text(w) => {
                for t in &self.sorted_tokens[ranges[0].0..ranges[0].1] {
                    let score = if t.len as usize == w.len() {
                        0
                    } else if t.first {
                        1
                    } else {
                        2
                    };
                    set(t.rank, score);
                }
            }
            Term::Digits(variants) => {
                for (v, &(from, to)) in variants.iter().zip(ranges) {
                    for &p in &self.suffixes[from..to] {
                        let p = p as usize;
                        let Some(end) = self.dig_text[p..].iter().position(|&b| b == DIGIT_END)
                        else {
                            continue;
                        };
                        let owner = self.dig_text.get(p + end + 1..p + end + 5);
                        let Some(slot) = owner.and_then(|o| <[u8; 4]>::try_from(o).ok()) else {
                            continue;
                        };
                        let slot = u32::from_le_bytes(slot) as usize;
                        let whole = self.num_digits[slot] as usize == p && end == v.len();
                        let contact = self.num_contact[slot] as usize;
                        set(self.name_rank[contact], if whole { 0 } else { 2 });
                    }
                }
            }
        }
    }

    /// A non-driver term's best score for one contact, `None` when it does not match.
    fn score(&self, term: &Term, contact: u32) -> Option<u8> {
        match term {
            Term::Never => None,
            Term::Text(w) => {
                let c = contact as usize;
                let own =
                    &self.own_tokens[self.own_start[c] as usize..self.own_start[c + 1] as usize];
                own.iter()
                    .filter_map(|t| {
                        let text = &self.tok_text.as_bytes()
                            [t.start as usize..t.start as usize + t.len as usize];
                        if !text.starts_with(w.as_bytes()) {
                            None
                        } else if text.len() == w.len() {
                            Some(0)
                        } else if t.first {
                            Some(1)
                        } else {
                            Some(2)
                        }
                    })
                    .min()
            }
            Term::Digits(variants) => {
                let c = contact as usize;
                (self.num_start[c]..self.num_start[c + 1])
                    .filter_map(|slot| {
                        let digits = self.digits_at(slot);
                        variants
                            .iter()
                            .filter_map(|v| {
                                let v = v.as_bytes();
                                if digits == v {
                                    Some(0)
                                } else if digits.windows(v.len()).any(|w| w == v) {
                                    Some(2)
                                } else {
                                    None
                                }
                            })
                            .min()
                    })
                    .min()
            }
        }
    }

    fn entry(&self, ci: usize) -> PhonebookEntry {
        let c = &self.records[ci];
        let first = self.num_start[ci] as usize;
        let [id, display, given, surname, company, job_title] = c.fixed();
        PhonebookEntry {
            display_name: record::shown_name(display, given, surname, company).into(),
            company: company.into(),
            job_title: job_title.into(),
            numbers: c
                .numbers()
                .enumerate()
                .map(|(i, (number_type, raw))| PhoneNumber {
                    number: match self.num_e164[first + i] {
                        0 => raw.into(),
                        v => format!("+{v}").into(),
                    },
                    number_type,
                })
                .collect(),
            emails: c.emails().map(Into::into).collect(),
            source: self.sources[ci],
            contact_id: id.into(),
            extensions: RString::new(),
        }
    }
}

/// One form of an incoming number, parsed only when needed.
struct Form<'a> {
    text: Cow<'a, str>,
    region: &'a str,
    parsed: OnceCell<Option<phone::Parsed>>,
    /// [`Index::quick`] proved that no rule can match this form.
    surely_absent: bool,
}

/// What [`Index::quick`] could tell without the library.
enum Quick {
    /// Rule 1 matched exactly.
    Found(Box<CallerInfo>),
    /// No rule can match this form.
    Absent,
    /// Only the library can tell.
    Unknown,
}

impl Form<'_> {
    fn parsed(&self) -> Option<&phone::Parsed> {
        self.parsed
            .get_or_init(|| phone::parse(&self.text, self.region))
            .as_ref()
    }
}

/// One query term.
#[derive(Debug)]
enum Term {
    /// A folded word, matched as a prefix of contact words.
    Text(String),
    /// Digit strings (as typed, and read as a number), matched inside stored numbers.
    Digits(Vec<String>),
    /// A term nothing can match (too many digits).
    Never,
}

/// `number` without an outside-line `prefix` at its start (after a `tel:`/`sip:` scheme, which is
/// kept); `None` when it does not start with it.
fn without_prefix(number: &str, prefix: &str) -> Option<String> {
    if prefix.is_empty() {
        return None;
    }
    let number = number.trim();
    let scheme_len = ["tel:", "sip:", "sips:"]
        .iter()
        .find(|s| {
            number.len() >= s.len()
                && number.as_bytes()[..s.len()].eq_ignore_ascii_case(s.as_bytes())
        })
        .map_or(0, |s| s.len());
    let (scheme, rest) = number.split_at(scheme_len);
    let rest = rest.trim_start();
    let stripped = if rest.len() >= prefix.len()
        && rest.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
    {
        &rest[prefix.len()..]
    } else {
        return None;
    };
    Some(format!("{scheme}{stripped}"))
}

/// The index currently answering.
///
/// ```
/// use contact_ms365::directory::{Directory, Index, LookupOptions};
/// let directory = Directory::default();
/// let options = LookupOptions { region: "DE", outside_line_prefixes: &[] };
/// assert!(directory.lookup("+49 89 1234567", &options).is_none());
/// directory.replace(Index::new(Vec::new(), "DE"));
/// assert!(directory.search("anna", 20).is_empty());
/// ```
#[derive(Debug, Default)]
pub struct Directory {
    current: RwLock<Arc<Index>>,
}

impl Directory {
    /// The index in force now.
    pub fn snapshot(&self) -> Arc<Index> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces the whole index at once and returns the old one (freed when its last holder is
    /// done; a caller that must not free it on its own thread keeps it, see
    /// `contacts::install`).
    pub fn replace(&self, index: Index) -> Arc<Index> {
        let index = Arc::new(index);
        std::mem::replace(
            &mut *self
                .current
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            index,
        )
    }

    /// Who is calling from `number`, if a contact has it; see the module documentation.
    pub fn lookup(&self, number: &str, options: &LookupOptions) -> Option<CallerInfo> {
        self.snapshot().lookup(number, options)
    }

    /// Contacts matching every word of `query`, best first, at most `limit`; see the module
    /// documentation.
    pub fn search(&self, query: &str, limit: usize) -> Vec<PhonebookEntry> {
        self.snapshot().search(query, limit)
    }
}

mod persist;

pub use persist::FORMAT as INDEX_FORMAT;

#[cfg(test)]
mod quick_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn number(raw: &str, number_type: NumberType) -> ContactNumber {
        ContactNumber {
            raw: raw.into(),
            number_type,
        }
    }

    fn contact(id: &str, name: &str, numbers: &[&str]) -> Contact {
        Contact {
            id: id.into(),
            display_name: name.into(),
            given_name: String::new(),
            surname: String::new(),
            company: String::new(),
            job_title: String::new(),
            numbers: numbers
                .iter()
                .map(|n| number(n, NumberType::BUSINESS))
                .collect(),
            emails: Vec::new(),
            source: ContactSource::OUTLOOK,
        }
    }

    const DE: LookupOptions<'static> = LookupOptions {
        region: "DE",
        outside_line_prefixes: &[],
    };

    fn who(index: &Index, number: &str, options: &LookupOptions) -> Option<String> {
        index
            .lookup(number, options)
            .map(|c| c.contact_id.into_string())
    }

    fn ext(index: &Index, number: &str) -> Option<String> {
        index
            .lookup(number, &DE)
            .and_then(|c| c.extension.into_option())
            .map(RString::into_string)
    }

    fn names(results: Vec<PhonebookEntry>) -> Vec<String> {
        results
            .into_iter()
            .map(|e| e.display_name.into_string())
            .collect()
    }

    #[test]
    fn shown_name_falls_back_to_names_then_company() {
        let mut c = contact("1", "  ", &[]);
        c.given_name = "Adele".into();
        assert_eq!(c.shown_name(), "Adele");
        c.surname = "Vance".into();
        assert_eq!(c.shown_name(), "Adele Vance");
        c.given_name.clear();
        assert_eq!(c.shown_name(), "Vance");
        c.surname.clear();
        c.company = "Contoso".into();
        assert_eq!(c.shown_name(), "Contoso");
        c.display_name = "Adele V.".into();
        assert_eq!(c.shown_name(), "Adele V.");
    }

    #[test]
    fn every_delivered_format_finds_the_contact() {
        let index = Index::new(vec![contact("a", "Adele", &["+49 89 1234567"])], "DE");
        for input in [
            "+49 89 1234567",
            "0049 89 1234567",
            "089 1234567",
            "(089) 123-4567",
            "tel:+49-89-1234567",
            "sip:+49891234567@pbx.example;user=phone",
            "+49 (0)89 1234567",
        ] {
            let c = index
                .lookup(input, &DE)
                .unwrap_or_else(|| panic!("{input:?}"));
            assert_eq!(c.contact_id.as_str(), "a");
            assert_eq!(c.number.as_str(), "+49891234567", "{input:?}");
            assert_eq!(c.display_name.as_str(), "Adele");
            assert!(c.extension.is_none(), "{input:?}");
        }
        // An explicit extension is reported.
        for input in [
            "+49 89 1234567;ext=22",
            "+49 89 1234567 x22",
            "tel:+49-89-1234567;ext=22",
        ] {
            assert_eq!(ext(&index, input).as_deref(), Some("22"), "{input:?}");
        }
        // A trailing -22 is not an extension of a German number: another number.
        assert_eq!(who(&index, "089 1234567-22", &DE), None);
    }

    #[test]
    fn stored_numbers_without_country_code_use_the_index_region() {
        let index = Index::new(vec![contact("a", "Adele", &["031 123 45 67"])], "CH");
        assert_eq!(who(&index, "+41 31 123 45 67", &DE).as_deref(), Some("a"));
        assert_eq!(
            who(
                &index,
                "031 123 45 67",
                &LookupOptions {
                    region: "CH",
                    outside_line_prefixes: &[]
                }
            )
            .as_deref(),
            Some("a")
        );
        // In Germany, 031... is another number.
        assert_eq!(who(&index, "031 123 45 67", &DE), None);
        // No region: a national number cannot be read, on either side.
        let index = Index::new(vec![contact("a", "Adele", &["031 123 45 67"])], "");
        assert_eq!(who(&index, "+41 31 123 45 67", &DE), None);
    }

    #[test]
    fn outside_line_prefixes_are_tried_after_the_number_as_delivered() {
        let index = Index::new(
            vec![
                contact("a", "Adele", &["+49 89 1234567"]),
                contact("z", "Zero", &["+49 89 01234567"]),
            ],
            "DE",
        );
        let prefixes = ["0".to_owned(), "L0#".to_owned()];
        let options = LookupOptions {
            region: "DE",
            outside_line_prefixes: &prefixes,
        };
        // As delivered, 0089... is not a valid number; only the last-8 rule finds it.
        let c = index.lookup("0089 1234567", &DE).unwrap();
        assert_eq!(c.number.as_str(), "0089 1234567");
        let c = index.lookup("0089 1234567", &options).unwrap();
        assert_eq!(c.number.as_str(), "+49891234567");
        assert_eq!(who(&index, "0089 1234567", &options).as_deref(), Some("a"));
        assert_eq!(
            who(&index, "00049891234567", &options).as_deref(),
            Some("a")
        );
        assert_eq!(
            who(&index, "L0#089 1234567", &options).as_deref(),
            Some("a")
        );
        assert_eq!(
            who(&index, "l0#+49891234567", &options).as_deref(),
            Some("a")
        );
        assert_eq!(
            who(&index, "tel:L0#089 1234567", &options).as_deref(),
            Some("a")
        );
        let c = index.lookup("L0#089 1234567", &options).unwrap();
        assert_eq!(c.number.as_str(), "+49891234567");
        // Found as delivered: the prefix is not stripped.
        assert_eq!(who(&index, "089 01234567", &options).as_deref(), Some("z"));
    }

    #[test]
    fn every_phone_field_counts_and_is_reported() {
        let mut c = contact("a", "Adele", &[]);
        c.numbers = vec![
            number("+49 89 1111111", NumberType::BUSINESS),
            number("+49 89 2222222", NumberType::BUSINESS),
            number("+49 89 3333333", NumberType::HOME),
            number("+49 89 4444444", NumberType::HOME),
            number("+49 171 5555555", NumberType::MOBILE),
        ];
        let index = Index::new(vec![c], "DE");
        for (input, t) in [
            ("089 1111111", NumberType::BUSINESS),
            ("089 2222222", NumberType::BUSINESS),
            ("089 3333333", NumberType::HOME),
            ("089 4444444", NumberType::HOME),
            ("0171 5555555", NumberType::MOBILE),
        ] {
            assert_eq!(index.lookup(input, &DE).unwrap().number_type, t, "{input}");
        }
    }

    #[test]
    fn company_base_number_plus_extension() {
        let mut company = contact("co", "Contoso", &["+49 89 1234-0"]);
        company.company = "Contoso".into();
        let index = Index::new(
            vec![
                company,
                contact("p", "Person", &["+49 89 1234-567"]),
                contact("q", "Not a switchboard", &["+49 30 5678 10"]),
            ],
            "DE",
        );
        assert_eq!(ext(&index, "+49 89 1234 999").as_deref(), Some("999"));
        assert_eq!(ext(&index, "089 1234 9").as_deref(), Some("9"));
        assert_eq!(ext(&index, "089 1234 12345").as_deref(), Some("12345"));
        assert_eq!(who(&index, "089 1234 999", &DE).as_deref(), Some("co"));
        // The switchboard itself is an exact match.
        assert_eq!(who(&index, "089 1234 0", &DE).as_deref(), Some("co"));
        assert_eq!(ext(&index, "089 1234 0"), None);
        // An exact match wins over base + extension.
        assert_eq!(who(&index, "089 1234 567", &DE).as_deref(), Some("p"));
        assert_eq!(ext(&index, "089 1234 567"), None);
        // More than 5 extra digits: not an extension.
        assert_eq!(who(&index, "089 1234 123456", &DE), None);
        // Only a final `-0` block marks a base.
        assert_eq!(who(&index, "030 5678 1999", &DE), None);
        assert_eq!(who(&index, "030 5678 101", &DE), None);
        // Another country with the same digits is not the company.
        assert_eq!(who(&index, "+43 89 1234 999", &DE), None);
        let c = index.lookup("+49 89 1234 999", &DE).unwrap();
        assert_eq!(c.number.as_str(), "+49891234999");
        assert_eq!(c.display_name.as_str(), "Contoso");
    }

    #[test]
    fn longest_base_wins() {
        let index = Index::new(
            vec![
                contact("short", "Short", &["+49 89 1234-0"]),
                contact("long", "Long", &["+49 89 12345-0"]),
            ],
            "DE",
        );
        assert_eq!(who(&index, "089 12345 77", &DE).as_deref(), Some("long"));
        assert_eq!(ext(&index, "089 12345 77").as_deref(), Some("77"));
        assert_eq!(who(&index, "089 1234 677", &DE).as_deref(), Some("short"));
    }

    #[test]
    fn last_eight_digits_only_for_invalid_numbers_and_only_when_unique() {
        let index = Index::new(
            vec![
                contact("m", "Munich", &["+49 89 2154 3300"]),
                contact("v", "Vienna", &["+43 1 9999 0000"]),
            ],
            "DE",
        );
        let nowhere = LookupOptions {
            region: "",
            outside_line_prefixes: &[],
        };
        // Without a region the national number does not parse: last 8 digits decide.
        assert_eq!(who(&index, "089 2154 3300", &nowhere).as_deref(), Some("m"));
        let c = index.lookup("089 2154 3300", &nowhere).unwrap();
        assert_eq!(c.number.as_str(), "089 2154 3300", "as delivered");
        assert!(c.extension.is_none());
        // A valid number from another country never matches.
        assert!(phone::parse("+43 89 2154 3300", "DE").unwrap().is_valid());
        assert_eq!(who(&index, "+43 89 2154 3300", &DE), None);
        // Nor an invalid one with another country code.
        assert!(!phone::parse("+43 9 2154 3300", "DE").unwrap().is_valid());
        assert_eq!(who(&index, "+43 9 2154 3300", &DE), None);
        // A valid number of the right country but another number: no fallback.
        assert_eq!(who(&index, "+49 30 2154 3300", &DE), None);
        // An invalid number of the same country: the fallback applies.
        let long = "+49 89 999999 2154 3300";
        assert!(!phone::parse(long, "DE").unwrap().is_valid());
        assert_eq!(who(&index, long, &DE).as_deref(), Some("m"));
        // Fewer than 8 digits, or service-code characters: never.
        assert_eq!(who(&index, "43300", &nowhere), None);
        assert_eq!(who(&index, "*21543300#", &nowhere), None);
        assert_eq!(who(&index, "#31#21543300", &nowhere), None);

        // Two different stored numbers with those last 8 digits: ambiguous, no answer.
        let index = Index::new(
            vec![
                contact("m", "Munich", &["+49 89 2154 3300"]),
                contact("b", "Berlin", &["+49 30 2154 3300"]),
            ],
            "DE",
        );
        assert_eq!(who(&index, "089 2154 3300", &nowhere), None);
        // One number shared by two contacts counts once; the tie-break picks.
        let index = Index::new(
            vec![
                contact("m2", "Munich 2", &["089 2154 3300"]),
                contact("m1", "Munich 1", &["+49 89 2154 3300"]),
            ],
            "DE",
        );
        assert_eq!(
            who(&index, "089 2154 3300", &nowhere).as_deref(),
            Some("m1")
        );
    }

    #[test]
    fn service_codes_garbage_and_huge_input_never_match() {
        let index = Index::new(
            vec![
                contact("p", "Police?", &["110"]),
                contact("s", "Short", &["21"]),
                contact("a", "Adele", &["+49 89 1234567"]),
            ],
            "DE",
        );
        for input in [
            "110",
            "**21#",
            "*21#",
            "anonymous",
            "",
            "   ",
            "unknown",
            "\u{0}\u{1}",
            "+49 89 1234567\u{7}",
            "sip:anonymous@anonymous.invalid",
        ] {
            assert_eq!(who(&index, input, &DE), None, "{input:?}");
        }
        assert_eq!(who(&index, &"9".repeat(1 << 20), &DE), None);
        assert_eq!(
            who(
                &index,
                &format!("+49 89 1234567{}", " ".repeat(1 << 20)),
                &DE
            ),
            None
        );
        let prefixes = vec!["0".to_owned(); 1000];
        let options = LookupOptions {
            region: "DE",
            outside_line_prefixes: &prefixes,
        };
        assert_eq!(who(&index, &"0".repeat(1 << 20), &options), None);
    }

    #[test]
    fn outlook_beats_directory_then_smallest_id() {
        let mut colleague = contact("0-colleague", "Colleague", &["+49 89 1234567"]);
        colleague.source = ContactSource::DIRECTORY;
        let contacts = [
            colleague.clone(),
            contact("b", "Outlook B", &["089 1234567"]),
            contact("a", "Outlook A", &["+49-89-1234567"]),
        ];
        for order in [[0, 1, 2], [2, 1, 0], [1, 0, 2]] {
            let list = order.iter().map(|&i| contacts[i].clone()).collect();
            let index = Index::new(list, "DE");
            let c = index.lookup("089 1234567", &DE).unwrap();
            assert_eq!(c.contact_id.as_str(), "a");
            assert_eq!(c.source, ContactSource::OUTLOOK);
        }
        let index = Index::new(vec![colleague], "DE");
        let c = index.lookup("089 1234567", &DE).unwrap();
        assert_eq!(c.source, ContactSource::DIRECTORY);
        // Same for switchboards.
        let index = Index::new(
            vec![
                contact("y", "Y", &["+49 89 1234-0"]),
                contact("x", "X", &["+49 89 1234-0"]),
            ],
            "DE",
        );
        assert_eq!(who(&index, "089 1234 55", &DE).as_deref(), Some("x"));
    }

    #[test]
    fn caller_info_fields() {
        let mut c = contact("id-1", "", &[]);
        c.given_name = "Zoë".into();
        c.surname = "Müller".into();
        c.company = "Contoso".into();
        c.job_title = "CFO".into();
        c.numbers = vec![number("0171 2345678", NumberType::MOBILE)];
        let index = Index::new(vec![c], "DE");
        let info = index.lookup("+49 171 2345678", &DE).unwrap();
        assert_eq!(info.display_name.as_str(), "Zoë Müller");
        assert_eq!(info.company.as_str(), "Contoso");
        assert_eq!(info.job_title.as_str(), "CFO");
        assert_eq!(info.number.as_str(), "+491712345678");
        assert_eq!(info.number_type, NumberType::MOBILE);
        assert_eq!(info.source, ContactSource::OUTLOOK);
        assert_eq!(info.contact_id.as_str(), "id-1");
        assert!(info.extension.is_none());
        assert!(info.extensions.is_empty());
    }

    #[test]
    fn directory_swaps_the_whole_index() {
        let d = Directory::default();
        assert!(d.lookup("089 1234567", &DE).is_none());
        assert!(d.search("adele", 10).is_empty());
        let old = d.snapshot();
        d.replace(Index::new(
            vec![contact("a", "Adele", &["089 1234567"])],
            "DE",
        ));
        assert!(old.is_empty(), "a reader keeps the index it had");
        assert_eq!(
            d.lookup("089 1234567", &DE).unwrap().contact_id.as_str(),
            "a"
        );
        assert_eq!(d.search("adele", 10).len(), 1);
        assert_eq!(d.snapshot().len(), 1);
        assert_eq!(d.snapshot().region(), "DE");
        assert_eq!(d.snapshot().records()[0].id(), "a");
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Directory>();
    }

    fn people() -> Index {
        let mut list = vec![
            contact("1", "Thomas Müller", &["+49 89 1234567"]),
            contact("2", "Zoë Adams", &["+41 31 123 45 67", "+41 79 123 45 67"]),
            contact("3", "Łukasz Nowak", &["+48 22 123 45 67"]),
            contact("4", "Anna Mullerova", &[]),
            contact("5", "Max Muster", &["(089) 555-0100"]),
            contact("6", "Muller", &[]),
            contact("7", "Hans Zimmermann", &["+49 30 1234567"]),
        ];
        list[0].emails = vec!["t.mueller@contoso-gmbh.example".into()];
        list[0].company = "Contoso GmbH".into();
        list[4].company = "Müller & Söhne".into();
        list[4].given_name = "Max".into();
        list[4].surname = "Muster".into();
        list[6].emails = vec!["hans_zimmermann@fabrikam.example".into()];
        list[6].job_title = "Anna's assistant".into();
        Index::new(list, "DE")
    }

    #[test]
    fn search_folds_case_and_accents() {
        let index = people();
        assert!(names(index.search("muller", 10)).contains(&"Thomas Müller".to_owned()));
        assert!(names(index.search("MÜLLER", 10)).contains(&"Thomas Müller".to_owned()));
        assert_eq!(names(index.search("zoe", 10)), ["Zoë Adams"]);
        assert_eq!(names(index.search("ZOË", 10)), ["Zoë Adams"]);
        assert_eq!(names(index.search("lukasz", 10)), ["Łukasz Nowak"]);
        assert_eq!(names(index.search("łukasz", 10)), ["Łukasz Nowak"]);
    }

    #[test]
    fn search_matches_word_prefixes_in_every_field() {
        let index = people();
        // Surname prefix, company word, e-mail parts, given name.
        assert_eq!(names(index.search("nowa", 10)), ["Łukasz Nowak"]);
        assert_eq!(names(index.search("gmbh", 10)), ["Thomas Müller"]);
        assert_eq!(names(index.search("mueller", 10)), ["Thomas Müller"]);
        assert_eq!(names(index.search("contoso-gmbh", 10)), ["Thomas Müller"]);
        assert_eq!(
            names(index.search("t.mueller@contoso", 10)),
            ["Thomas Müller"]
        );
        assert_eq!(names(index.search("fabrik", 10)), ["Hans Zimmermann"]);
        assert_eq!(names(index.search("zimmermann", 10)), ["Hans Zimmermann"]);
        assert_eq!(names(index.search("sohne", 10)), ["Max Muster"]);
        // Not inside a word, not the job title.
        assert!(index.search("ller", 10).is_empty());
        assert!(index.search("assistant", 10).is_empty());
        // Every query word must match.
        assert_eq!(names(index.search("muller thomas", 10)), ["Thomas Müller"]);
        assert_eq!(names(index.search("thom cont", 10)), ["Thomas Müller"]);
        assert!(index.search("thomas nowak", 10).is_empty());
        assert!(index.search("", 10).is_empty());
        assert!(index.search(" ,;- ", 10).is_empty());
        assert!(index.search(&"a".repeat(1 << 20), 10).is_empty());
    }

    #[test]
    fn search_digits_match_numbers_in_any_format() {
        let index = people();
        for q in [
            "1234567",
            "89 1234",
            "089 1234",
            "+49 89 123",
            "0049 89 123",
            "(089) 12",
        ] {
            assert!(
                names(index.search(q, 10)).contains(&"Thomas Müller".to_owned()),
                "{q:?}"
            );
        }
        assert_eq!(names(index.search("089 1234", 10)), ["Thomas Müller"]);
        assert_eq!(names(index.search("555-01", 10)), ["Max Muster"]);
        assert_eq!(names(index.search("79 123", 10)), ["Zoë Adams"]);
        assert_eq!(names(index.search("+41 79", 10)), ["Zoë Adams"]);
        assert_eq!(names(index.search("48 22", 10)), ["Łukasz Nowak"]);
        // Fewer than 3 digits is not a number search.
        assert!(index.search("12", 10).is_empty());
        // Digits and words together.
        assert_eq!(names(index.search("thomas 1234", 10)), ["Thomas Müller"]);
        assert!(index.search("hans 1234 5555", 10).is_empty());
        assert!(index.search(&"1".repeat(30), 10).is_empty());
        // Results carry every number in E.164 where it parses, and the e-mails.
        let r = index.search("zoe", 10);
        let numbers: Vec<_> = r[0].numbers.iter().map(|n| n.number.as_str()).collect();
        assert_eq!(numbers, ["+41311234567", "+41791234567"]);
        let r = index.search("thomas", 10);
        assert_eq!(r[0].emails[0].as_str(), "t.mueller@contoso-gmbh.example");
        assert_eq!(r[0].contact_id.as_str(), "1");
        assert_eq!(r[0].source, ContactSource::OUTLOOK);
        assert_eq!(r[0].company.as_str(), "Contoso GmbH");
    }

    #[test]
    fn search_results_keep_unparsable_numbers_as_stored() {
        let index = Index::new(
            vec![contact("x", "Xaver", &["ext. 4711", "+49 89 1234567"])],
            "DE",
        );
        let r = index.search("xaver", 10);
        let numbers: Vec<_> = r[0].numbers.iter().map(|n| n.number.as_str()).collect();
        assert_eq!(numbers, ["ext. 4711", "+49891234567"]);
    }

    #[test]
    fn search_ranking_exact_then_first_word_then_other_word_then_name() {
        let index = Index::new(
            vec![
                contact("1", "Ann Xavier", &[]), // first word prefix ("ann" exact here)
                contact("2", "Annabel Young", &[]), // prefix of the first word
                contact("3", "Zed Annberg", &[]), // prefix of another word
                contact("4", "Bob Ann", &[]),    // exact other word
                contact("5", "Annabel Adams", &[]), // prefix of first word, earlier name
                contact("6", "Annabel Young", &[]), // same name, larger id
            ],
            "DE",
        );
        assert_eq!(
            names(index.search("ann", 10)),
            [
                "Ann Xavier",
                "Bob Ann",
                "Annabel Adams",
                "Annabel Young",
                "Annabel Young",
                "Zed Annberg"
            ]
        );
        let ids: Vec<_> = index
            .search("ann", 10)
            .into_iter()
            .map(|e| e.contact_id.into_string())
            .collect();
        assert_eq!(ids, ["1", "4", "5", "2", "6", "3"]);
        // Alphabetical order is accent-folded.
        let index = Index::new(
            vec![
                contact("1", "Zora", &[]),
                contact("2", "Émile Zola", &[]),
                contact("3", "Eva Zoe", &[]),
            ],
            "DE",
        );
        assert_eq!(
            names(index.search("zo", 10)),
            ["Zora", "Émile Zola", "Eva Zoe"]
        );
        assert_eq!(names(index.search("e", 10)), ["Émile Zola", "Eva Zoe"]);
    }

    #[test]
    fn search_limit_is_honoured() {
        let list: Vec<_> = (0..50)
            .map(|i| contact(&format!("{i:02}"), &format!("Person {i:02}"), &[]))
            .collect();
        let index = Index::new(list, "DE");
        assert_eq!(index.search("person", 0).len(), 0);
        assert_eq!(index.search("person", 1).len(), 1);
        assert_eq!(index.search("person", 7).len(), 7);
        assert_eq!(index.search("person", 200).len(), 50);
        assert_eq!(names(index.search("person", 2)), ["Person 00", "Person 01"]);
        assert_eq!(
            names(index.search("pe 4", 3)),
            ["Person 40", "Person 41", "Person 42"]
        );
    }

    #[test]
    fn large_result_sets_keep_name_order() {
        let list: Vec<_> = (0..6000)
            .map(|i| contact(&format!("{i:05}"), &format!("Sam Sample{i}"), &[]))
            .collect();
        let index = Index::new(list, "DE");
        let r = index.search("sa", 3);
        assert_eq!(names(r), ["Sam Sample0", "Sam Sample1", "Sam Sample10"]);
        assert_eq!(index.search("sample5999", 10).len(), 1);
        assert_eq!(names(index.search("sam", 1)), ["Sam Sample0"]);
        assert!(index.index_bytes() > 0 && index.contact_bytes() > 0);
    }
}
