//! The in-memory contact index that answers incoming calls and phonebook searches.
//!
//! Readers never wait on a writer for long: the index is an immutable `Arc<Index>` swapped whole
//! under a short lock, so an answer always comes from the old or the new data, never a mix.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use host_api::{CallerInfo, ContactSource, NumberType, PhoneNumber, PhonebookEntry};

/// One phone number of a contact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactNumber {
    /// As stored at the source.
    pub raw: String,
    /// Comparable form (digits with a leading `+` for international numbers), if any.
    pub normalized: Option<String>,
    /// Which field it came from.
    pub number_type: NumberType,
}

/// A contact or colleague.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contact {
    /// Id at the source.
    pub id: String,
    /// Name to show.
    pub display_name: String,
    /// Company.
    pub company: String,
    /// Job title.
    pub job_title: String,
    /// Phone numbers.
    pub numbers: Vec<ContactNumber>,
    /// E-mail addresses.
    pub emails: Vec<String>,
    /// Outlook or directory.
    pub source: ContactSource,
}

/// An immutable set of contacts with a number index.
#[derive(Debug, Default)]
pub struct Index {
    contacts: Vec<Contact>,
    by_number: HashMap<String, (usize, usize)>,
}

impl Index {
    /// Builds the index. With two contacts on one number, an Outlook contact wins over a
    /// colleague, then the first one.
    pub fn new(contacts: Vec<Contact>) -> Self {
        let mut by_number: HashMap<String, (usize, usize)> = HashMap::new();
        for (ci, c) in contacts.iter().enumerate() {
            for (ni, n) in c.numbers.iter().enumerate() {
                let Some(key) = &n.normalized else { continue };
                match by_number.get(key) {
                    Some(&(prev, _))
                        if contacts[prev].source == ContactSource::OUTLOOK
                            || c.source != ContactSource::OUTLOOK => {}
                    _ => {
                        by_number.insert(key.clone(), (ci, ni));
                    }
                }
            }
        }
        Self {
            contacts,
            by_number,
        }
    }

    /// Number of contacts held.
    pub fn len(&self) -> usize {
        self.contacts.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.contacts.is_empty()
    }
}

/// The index currently answering.
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

    /// Replaces the whole index at once.
    pub fn replace(&self, index: Index) {
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(index);
    }

    /// Who is calling from `number`, if a contact has it.
    pub fn lookup(&self, number: &str) -> Option<CallerInfo> {
        let key = normalize(number)?;
        let index = self.snapshot();
        let &(ci, ni) = index.by_number.get(&key)?;
        let c = &index.contacts[ci];
        Some(CallerInfo {
            display_name: c.display_name.as_str().into(),
            company: c.company.as_str().into(),
            job_title: c.job_title.as_str().into(),
            number: key.into(),
            number_type: c.numbers[ni].number_type,
            extension: abi_stable::std_types::ROption::RNone,
            source: c.source,
            contact_id: c.id.as_str().into(),
            extensions: Default::default(),
        })
    }

    /// Contacts whose name, company or e-mail contains every word of `query` (case-insensitive),
    /// names starting with the query first, at most `limit`.
    pub fn search(&self, query: &str, limit: usize) -> Vec<PhonebookEntry> {
        let words: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
        if words.is_empty() || limit == 0 {
            return Vec::new();
        }
        let index = self.snapshot();
        let first = &words[0];
        let mut hits: Vec<(bool, &Contact)> = index
            .contacts
            .iter()
            .filter_map(|c| {
                let hay = format!(
                    "{} {} {}",
                    c.display_name.to_lowercase(),
                    c.company.to_lowercase(),
                    c.emails.join(" ").to_lowercase()
                );
                words.iter().all(|w| hay.contains(w.as_str())).then(|| {
                    (
                        !c.display_name.to_lowercase().starts_with(first.as_str()),
                        c,
                    )
                })
            })
            .collect();
        hits.sort_by(|a, b| (a.0, &a.1.display_name).cmp(&(b.0, &b.1.display_name)));
        hits.into_iter()
            .take(limit)
            .map(|(_, c)| entry(c))
            .collect()
    }
}

fn entry(c: &Contact) -> PhonebookEntry {
    PhonebookEntry {
        display_name: c.display_name.as_str().into(),
        company: c.company.as_str().into(),
        job_title: c.job_title.as_str().into(),
        numbers: c
            .numbers
            .iter()
            .map(|n| PhoneNumber {
                number: n.normalized.as_deref().unwrap_or(&n.raw).into(),
                number_type: n.number_type,
            })
            .collect(),
        emails: c.emails.iter().map(|e| e.as_str().into()).collect(),
        source: c.source,
        contact_id: c.id.as_str().into(),
        extensions: Default::default(),
    }
}

/// Longest input considered a phone number; anything longer is not one.
const MAX_NUMBER_LEN: usize = 64;

/// A comparable form of a phone number: `+` and digits for international numbers, digits
/// otherwise; `None` for anonymous, empty or garbage input.
pub fn normalize(number: &str) -> Option<String> {
    if number.len() > MAX_NUMBER_LEN * 4 {
        return None;
    }
    let mut s = number.trim();
    for scheme in ["tel:", "sip:", "sips:"] {
        if s.len() >= scheme.len() && s[..scheme.len()].eq_ignore_ascii_case(scheme) {
            s = &s[scheme.len()..];
        }
    }
    let s = s.split(['@', ';']).next().unwrap_or("");
    let international = s.trim_start().starts_with('+') || s.trim_start().starts_with("00");
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    let digits = if s.trim_start().starts_with("00") {
        digits[2.min(digits.len())..].to_owned()
    } else {
        digits
    };
    if digits.len() < 3 || digits.len() > MAX_NUMBER_LEN {
        return None;
    }
    Some(if international {
        format!("+{digits}")
    } else {
        digits
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(id: &str, name: &str, number: &str, source: ContactSource) -> Contact {
        Contact {
            id: id.into(),
            display_name: name.into(),
            company: "Contoso".into(),
            job_title: String::new(),
            numbers: vec![ContactNumber {
                raw: number.into(),
                normalized: normalize(number),
                number_type: NumberType::BUSINESS,
            }],
            emails: vec![format!("{id}@contoso.example")],
            source,
        }
    }

    #[test]
    fn lookup_prefers_outlook_and_answers_from_the_current_index() {
        let d = Directory::default();
        assert!(d.lookup("+49 89 1234567").is_none());
        d.replace(Index::new(vec![
            contact(
                "c1",
                "Colleague",
                "+49 89 1234567",
                ContactSource::DIRECTORY,
            ),
            contact(
                "o1",
                "Outlook Person",
                "+49-89-1234567",
                ContactSource::OUTLOOK,
            ),
        ]));
        let caller = d.lookup("tel:+49891234567").unwrap();
        assert_eq!(caller.contact_id.as_str(), "o1");
        assert_eq!(caller.number.as_str(), "+49891234567");
        assert!(d.lookup("0049 89 1234567").is_some());
        assert!(d.lookup("anonymous").is_none());
        assert!(d.lookup("").is_none());
        assert!(d.lookup(&"9".repeat(1_000_000)).is_none());
    }

    #[test]
    fn search_matches_every_word_and_respects_limit() {
        let d = Directory::default();
        d.replace(Index::new(vec![
            contact("a", "Adele Vance", "+1 555 0100", ContactSource::OUTLOOK),
            contact("b", "Megan Bowen", "+1 555 0101", ContactSource::OUTLOOK),
            contact(
                "c",
                "Vance Refrigeration",
                "+1 555 0102",
                ContactSource::OUTLOOK,
            ),
        ]));
        let names = |r: Vec<PhonebookEntry>| {
            r.into_iter()
                .map(|e| e.display_name.into_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(d.search("vance", 20)),
            ["Vance Refrigeration", "Adele Vance"]
        );
        assert_eq!(names(d.search("adele contoso", 20)), ["Adele Vance"]);
        assert_eq!(d.search("vance", 1).len(), 1);
        assert!(d.search("vance", 0).is_empty());
        assert!(d.search("   ", 5).is_empty());
    }
}
