//! The index written whole into the snapshot and read back, so a warm start answers calls and
//! searches without normalizing 200,000 numbers and sorting two million digit suffixes again.
//!
//! The contacts are not written here: the snapshot holds them once, and the index is read back
//! onto the records of the loaded mailbox, in the order [`crate::contacts::build_index`] gives
//! them. Everything read is checked before it is used ([`check`]): lengths, every position and
//! contact number in range, the digit text's layout, permutations. A file that passes its
//! checksum but not these checks is refused as a whole, and the index is built from the
//! contacts instead.
//!
//! **Invariant.** [`FORMAT`] names what [`Index::from_records`] computes. Any change to what it
//! computes (normalization, rules, tokens, ranking) bumps it; an index of another format is
//! rebuilt, never used. The first sync after a start builds a new index anyway.

use std::collections::HashMap;

use host_api::ContactSource;

use super::{DIGIT_END, Index, ONE_CHARS, OwnToken, Slot, SortedToken};
use crate::{
    codec::{Reader, Truncated, Writer},
    phone,
    record::Record,
};

/// What the index section holds and how it was computed; see the module invariant.
pub const FORMAT: u32 = 1;

impl Index {
    /// Writes the index (not its contacts) for [`Index::read`].
    pub fn write(&self, w: &mut Writer) {
        w.u32(FORMAT);
        w.str(&self.region);
        w.u64(self.records.len() as u64);
        w.u32s(&self.num_start);
        w.u32s(&self.num_contact);
        w.u64s(&self.num_e164);
        w.u16s(&self.num_cc);
        w.u32s(&self.num_digits);
        w.u32s(&self.prio);
        for map in [&self.by_e164, &self.by_base] {
            let (keys, slots): (Vec<u64>, Vec<u32>) = map.iter().map(|(&k, &s)| (k, s)).unzip();
            w.u64s(&keys);
            w.u32s(&slots);
        }
        let (keys, slots): (Vec<u32>, Vec<u32>) = self.last8.iter().copied().unzip();
        w.u32s(&keys);
        w.u32s(&slots);
        w.str(&self.tok_text);
        let flag = |first: bool, len: u8| u16::from(len) | (u16::from(first) << 8);
        let sorted = &self.sorted_tokens;
        w.u32s(&sorted.iter().map(|t| t.start).collect::<Vec<_>>());
        w.u32s(&sorted.iter().map(|t| t.rank).collect::<Vec<_>>());
        w.u16s(
            &sorted
                .iter()
                .map(|t| flag(t.first, t.len))
                .collect::<Vec<_>>(),
        );
        let own = &self.own_tokens;
        w.u32s(&own.iter().map(|t| t.start).collect::<Vec<_>>());
        w.u16s(&own.iter().map(|t| flag(t.first, t.len)).collect::<Vec<_>>());
        w.u32s(&self.own_start);
        w.bytes(&self.dig_text);
        w.u32s(&self.suffixes);
        w.u32s(&self.name_rank);
        w.u32s(&self.by_name);
        w.u64(self.one_char.len() as u64);
        for answers in &self.one_char {
            w.u32s(answers);
        }
    }

    /// Reads an index written by [`Index::write`] onto `records` (with their `sources`), for
    /// `region`. `Ok(None)` when it was made by another format or for another region (build
    /// it instead; the rest of the index is left unread); an error when it is damaged or does
    /// not fit the records.
    pub fn read(
        r: &mut Reader,
        records: Vec<Record>,
        sources: Vec<ContactSource>,
        region: &str,
    ) -> Result<Option<Index>, String> {
        let bad = |e: Truncated| format!("index: {e}");
        if r.u32().map_err(bad)? != FORMAT {
            return Ok(None);
        }
        let written_for = r.str().map_err(bad)?.to_owned();
        if written_for != region.trim() {
            return Ok(None);
        }
        if r.u64().map_err(bad)? != records.len() as u64 || sources.len() != records.len() {
            return Err("index: written for another number of contacts".into());
        }
        let index = read_parts(r, records, sources, &written_for).map_err(bad)?;
        check(&index).map_err(|what| format!("index: {what}"))?;
        Ok(Some(index))
    }
}

fn read_parts(
    r: &mut Reader,
    records: Vec<Record>,
    sources: Vec<ContactSource>,
    region: &str,
) -> Result<Index, Truncated> {
    let num_start = r.u32s()?;
    let num_contact = r.u32s()?;
    let num_e164 = r.u64s()?;
    let num_cc = r.u16s()?;
    let num_digits = r.u32s()?;
    let prio = r.u32s()?;
    let mut map = || -> Result<HashMap<u64, Slot>, Truncated> {
        let keys = r.u64s()?;
        let slots = r.u32s()?;
        if keys.len() != slots.len() {
            return Err(Truncated);
        }
        let mut map = HashMap::with_capacity(keys.len());
        map.extend(keys.into_iter().zip(slots));
        Ok(map)
    };
    let by_e164 = map()?;
    let by_base = map()?;
    let keys = r.u32s()?;
    let slots = r.u32s()?;
    if keys.len() != slots.len() {
        return Err(Truncated);
    }
    let last8 = keys.into_iter().zip(slots).collect();
    let tok_text = r.str()?.to_owned();
    let (starts, ranks, flags) = (r.u32s()?, r.u32s()?, r.u16s()?);
    if starts.len() != ranks.len() || starts.len() != flags.len() {
        return Err(Truncated);
    }
    let sorted_tokens = starts
        .into_iter()
        .zip(ranks)
        .zip(flags)
        .map(|((start, rank), f)| SortedToken {
            start,
            rank,
            len: f as u8,
            first: f >> 8 != 0,
        })
        .collect();
    let (starts, flags) = (r.u32s()?, r.u16s()?);
    if starts.len() != flags.len() {
        return Err(Truncated);
    }
    let own_tokens = starts
        .into_iter()
        .zip(flags)
        .map(|(start, f)| OwnToken {
            start,
            len: f as u8,
            first: f >> 8 != 0,
        })
        .collect();
    let own_start = r.u32s()?;
    let dig_text = r.bytes()?.to_vec();
    let suffixes = r.u32s()?;
    let name_rank = r.u32s()?;
    let by_name = r.u32s()?;
    let kept = r.length()?;
    let one_char = (0..kept).map(|_| r.u32s()).collect::<Result<_, _>>()?;
    Ok(Index {
        records,
        sources,
        region: region.to_owned(),
        num_start,
        num_contact,
        num_e164,
        num_cc,
        num_digits,
        prio,
        by_e164,
        by_base,
        last8,
        trunk: phone::TrunkRule::for_region(region),
        tok_text,
        sorted_tokens,
        own_tokens,
        own_start,
        dig_text,
        suffixes,
        name_rank,
        by_name,
        one_char,
    })
}

/// Whether `values` is a permutation of `0..n`.
fn permutation(values: &[u32], n: usize) -> bool {
    let mut seen = vec![false; n];
    values.len() == n
        && values
            .iter()
            .all(|&v| (v as usize) < n && !std::mem::replace(&mut seen[v as usize], true))
}

/// Every structural fact lookups and searches rely on; the first one that fails.
fn check(ix: &Index) -> Result<(), &'static str> {
    let n = ix.records.len();
    // Numbers: contact by contact, as many as each record has.
    let slots = ix.records.iter().map(Record::number_count).sum::<usize>();
    if ix.num_start.len() != n + 1
        || ix.num_start.first() != Some(&0)
        || ix.num_start[n] as usize != slots
    {
        return Err("number ranges");
    }
    for (ci, (w, record)) in ix.num_start.windows(2).zip(&ix.records).enumerate() {
        if w[1] < w[0] || (w[1] - w[0]) as usize != record.number_count() {
            return Err("numbers per contact");
        }
        if ix
            .num_contact
            .get(w[0] as usize..w[1] as usize)
            .is_none_or(|owners| owners.iter().any(|&o| o as usize != ci))
        {
            return Err("number owners");
        }
    }
    if [
        ix.num_contact.len(),
        ix.num_e164.len(),
        ix.num_cc.len(),
        ix.num_digits.len(),
    ]
    .iter()
    .any(|&len| len != slots)
    {
        return Err("number arrays");
    }
    if !permutation(&ix.prio, n) || !permutation(&ix.by_name, n) || ix.name_rank.len() != n {
        return Err("contact orders");
    }
    if ix
        .by_name
        .iter()
        .enumerate()
        .any(|(rank, &c)| ix.name_rank[c as usize] as usize != rank)
    {
        return Err("name ranks");
    }
    let slot_ok = |s: &Slot| (*s as usize) < slots;
    if !ix.by_e164.values().all(slot_ok)
        || !ix.by_base.values().all(slot_ok)
        || !ix.last8.iter().all(|(_, s)| slot_ok(s))
    {
        return Err("number maps");
    }
    // Digit text: for each slot in order, its digits, the end mark and the slot; `num_digits`
    // points at each start. Suffixes start inside the digits.
    let text = &ix.dig_text;
    let mut in_digits = vec![false; text.len()];
    let mut at = 0usize;
    for slot in 0..slots {
        if ix.num_digits[slot] as usize != at {
            return Err("digit positions");
        }
        let len = text[at..]
            .iter()
            .position(|&b| b == DIGIT_END)
            .ok_or("digit text")?;
        if !text[at..at + len].iter().all(u8::is_ascii_digit) {
            return Err("digit text");
        }
        in_digits[at..at + len].fill(true);
        let owner = text.get(at + len + 1..at + len + 5).ok_or("digit text")?;
        if owner != (slot as u32).to_le_bytes() {
            return Err("digit owners");
        }
        at += len + 5;
    }
    if at != text.len()
        || !ix
            .suffixes
            .iter()
            .all(|&p| in_digits.get(p as usize) == Some(&true))
    {
        return Err("digit suffixes");
    }
    // Words: ASCII text (so any range is a valid `str`), every token inside it.
    if !ix.tok_text.is_ascii() {
        return Err("word text");
    }
    let inside = |start: u32, len: u8| start as usize + len as usize <= ix.tok_text.len();
    if !ix
        .sorted_tokens
        .iter()
        .all(|t| inside(t.start, t.len) && (t.rank as usize) < n)
        || !ix.own_tokens.iter().all(|t| inside(t.start, t.len))
    {
        return Err("words");
    }
    let own = &ix.own_start;
    if own.len() != n + 1
        || own.first() != Some(&0)
        || own[n] as usize != ix.own_tokens.len()
        || own.windows(2).any(|w| w[1] < w[0])
    {
        return Err("word ranges");
    }
    if ix.one_char.len() != ONE_CHARS.len()
        || !ix.one_char.iter().flatten().all(|&r| (r as usize) < n)
    {
        return Err("kept answers");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::{Contact, ContactNumber, LookupOptions};
    use host_api::NumberType;

    fn contacts() -> Vec<Contact> {
        let c = |id: &str, name: &str, numbers: &[&str], source| Contact {
            id: id.into(),
            display_name: name.into(),
            given_name: String::new(),
            surname: String::new(),
            company: "Contoso Müller".into(),
            job_title: String::new(),
            numbers: numbers
                .iter()
                .map(|n| ContactNumber {
                    raw: (*n).into(),
                    number_type: NumberType::BUSINESS,
                })
                .collect(),
            emails: vec![format!("{id}@contoso.example")],
            source,
        };
        vec![
            c(
                "b",
                "Zoë Adams",
                &["+49 89 1234-0", "0171 2345678"],
                ContactSource::OUTLOOK,
            ),
            c(
                "a",
                "Łukasz Brandt",
                &["089 7654321"],
                ContactSource::OUTLOOK,
            ),
            c(
                "c",
                "Colleague",
                &["+41 44 668 18 00", "12345"],
                ContactSource::DIRECTORY,
            ),
            c("d", "No Numbers", &[], ContactSource::OUTLOOK),
        ]
    }

    fn written(index: &Index) -> Vec<u8> {
        let mut w = Writer::default();
        index.write(&mut w);
        w.finish().unwrap().0
    }

    fn read(bytes: &[u8], from: &Index, region: &str) -> Result<Option<Index>, String> {
        Index::read(
            &mut Reader::new(bytes),
            from.records.clone(),
            from.sources.clone(),
            region,
        )
    }

    #[test]
    fn a_read_index_answers_as_the_built_one() {
        let built = Index::new(contacts(), "DE");
        let bytes = written(&built);
        let again = read(&bytes, &built, "DE")
            .unwrap()
            .expect("same format and region");
        let options = LookupOptions {
            region: "DE",
            outside_line_prefixes: &[],
        };
        for number in [
            "+49 89 1234 999",
            "0171 2345678",
            "089 7654321",
            "+41446681800",
            "12345",
            "0049 89 7654321",
        ] {
            assert_eq!(
                again.lookup(number, &options),
                built.lookup(number, &options),
                "{number}"
            );
        }
        for query in [
            "z", "muller", "lukasz", "contoso", "0171", "498912", "c", "1",
        ] {
            assert_eq!(again.search(query, 10), built.search(query, 10), "{query}");
        }
        assert_eq!(again.index_bytes(), built.index_bytes());
    }

    #[test]
    fn another_region_or_format_is_rebuilt_not_used() {
        let built = Index::new(contacts(), "DE");
        let bytes = written(&built);
        assert!(read(&bytes, &built, "AT").unwrap().is_none());
        let mut other = bytes.clone();
        other[..4].copy_from_slice(&(FORMAT + 1).to_le_bytes());
        assert!(read(&other, &built, "DE").unwrap().is_none());
    }

    #[test]
    fn damaged_or_unfitting_indexes_are_refused() {
        let built = Index::new(contacts(), "DE");
        let bytes = written(&built);
        // Cut anywhere: an error, never a panic.
        for cut in 0..bytes.len() {
            assert!(
                read(&bytes[..cut], &built, "DE").is_err_or_none(),
                "cut at {cut}"
            );
        }
        // Any single byte changed: refused, or an index that passes every check (a changed
        // hash key or flag); never a panic. The snapshot's checksum refuses those before.
        let options = LookupOptions {
            region: "DE",
            outside_line_prefixes: &[],
        };
        for at in 0..bytes.len() {
            let mut changed = bytes.clone();
            changed[at] ^= 0x5a;
            if let Ok(Some(index)) = read(&changed, &built, "DE") {
                for number in [
                    "+49 89 1234 999",
                    "0171 2345678",
                    "+41446681800",
                    "12345678",
                ] {
                    let _ = index.lookup(number, &options);
                }
                for query in ["z", "mu", "contoso m", "0171", "89"] {
                    let _ = index.search(query, 10);
                }
            }
        }
        // Fewer records than written for.
        let fewer = Index::new(contacts()[..3].to_vec(), "DE");
        assert!(read(&bytes, &fewer, "DE").is_err());
        // Same count, other numbers.
        let mut moved = contacts();
        moved[3].numbers = moved[0].numbers.clone();
        let moved = Index::new(moved, "DE");
        assert!(read(&bytes, &moved, "DE").is_err());
    }

    trait ErrOrNone {
        fn is_err_or_none(&self) -> bool;
    }

    impl ErrOrNone for Result<Option<Index>, String> {
        fn is_err_or_none(&self) -> bool {
            !matches!(self, Ok(Some(_)))
        }
    }
}
