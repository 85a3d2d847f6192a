//! Fuzz target bodies, shared by the `cargo fuzz` targets in `fuzz/` and the regression test
//! `tests/fuzz_regressions.rs` (which replays every saved input on stable, in `cargo test`).
//!
//! Each function takes the fuzzer's raw bytes, runs the plugin code that reads untrusted input,
//! and panics when a property documented for that code does not hold (beyond "does not panic").
//! They are not part of the plugin's API.
//!
//! - [`phone_lookup`]: [`crate::phone`] and [`crate::directory::Index`] (caller ID and search).
//! - [`graph_contact_json`]: a Graph contacts delta page, [`crate::sync::apply_delta_page`] and
//!   [`crate::sync::parse_contact`], then the index built from the result.
//! - [`presence_json`]: a Graph presence body, [`crate::presence::driver::parse_presence`],
//!   table 1 and the presence machine.
//! - [`loopback_request`]: the redirect listener's request parser,
//!   [`crate::auth::loopback::parse_request`].

use std::collections::BTreeMap;

use host_api::{CallerInfo, ContactSource, NumberType};
use serde_json::{Value, json};

use crate::auth::loopback::{Outcome, Redirect, parse_request};
use crate::directory::{Contact, ContactNumber, Index, LookupOptions};
use crate::phone;
use crate::presence::{PresenceMachine, driver::parse_presence, mapping::classify};
use crate::{
    record::Records,
    sync::{Mailbox, StoredContact, apply_delta_page, parse_contact},
};

/// Most lines of a `phone_lookup` input that are used (number, region, prefixes).
const MAX_LINES: usize = 6;

fn number(raw: &str, number_type: NumberType) -> ContactNumber {
    ContactNumber {
        raw: raw.to_owned(),
        number_type,
    }
}

fn contact(id: &str, name: &str, source: ContactSource, numbers: Vec<ContactNumber>) -> Contact {
    Contact {
        id: id.to_owned(),
        display_name: name.to_owned(),
        given_name: String::new(),
        surname: String::new(),
        company: "Contoso".to_owned(),
        job_title: String::new(),
        numbers,
        emails: vec![format!("{id}@contoso.example")],
        source,
    }
}

/// The small fixed set of contacts `phone_lookup` searches, plus one contact with the input's
/// own numbers.
fn fixed_contacts(extra: &[&str]) -> Vec<Contact> {
    use NumberType as T;
    let o = ContactSource::OUTLOOK;
    vec![
        contact(
            "c-anna",
            "Anna Müller",
            o,
            vec![
                number("+49 89 1234567", T::BUSINESS),
                number("0171 2345678", T::MOBILE),
            ],
        ),
        contact(
            "c-switchboard",
            "Contoso Zentrale",
            o,
            vec![number("+49 89 2154-0", T::BUSINESS)],
        ),
        contact(
            "d-ben",
            "Ben Vance",
            ContactSource::DIRECTORY,
            vec![
                number("+49 89 1234567", T::BUSINESS),
                number("+1 650 253 0000", T::MOBILE),
            ],
        ),
        contact(
            "c-local",
            "Zoë Local",
            o,
            vec![
                number("21543300", T::BUSINESS),
                number("+43 89 2154 3300", T::HOME),
                number("tel:+44-20-7946-0958;ext=7", T::OTHER),
            ],
        ),
        contact(
            "c-invalid",
            "Łukasz Invalid",
            o,
            vec![number("12345678", T::HOME), number("**21#", T::OTHER)],
        ),
        contact(
            "c-fuzz",
            "Fuzz Input",
            o,
            extra.iter().map(|n| number(n, T::OTHER)).collect(),
        ),
    ]
}

/// The ASCII digits of `s`.
fn ascii_digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// Properties of [`phone::normalize`], [`phone::parse`], [`phone::digits`] and
/// [`phone::plain_international`] on one input.
fn check_phone(raw: &str, region: &str) {
    let parsed = phone::parse(raw, region);
    if let Some(p) = &parsed {
        let digits = p.e164.strip_prefix('+').expect("E.164 starts with +");
        assert!(
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()),
            "E.164 of {raw:?} is {:?}",
            p.e164
        );
        assert!(
            digits.starts_with(&p.country_code.to_string()),
            "{:?} does not start with its country code {}",
            p.e164,
            p.country_code
        );
        if let Some(ext) = &p.extension {
            assert!(!ext.is_empty(), "empty extension from {raw:?}");
        }
    }
    let normalized = phone::normalize(raw, region);
    assert_eq!(
        normalized,
        parsed.filter(phone::Parsed::is_valid).map(|p| p.e164),
        "normalize is parse + is_valid for {raw:?}"
    );
    if let Some(e164) = &normalized {
        // The E.164 form is a fixed point, in every region (international input never uses it).
        for r in [region, "", "US"] {
            assert_eq!(
                phone::normalize(e164, r).as_ref(),
                Some(e164),
                "normalize({raw:?}, {region:?}) = {e164:?} does not normalize to itself in {r:?}"
            );
        }
    }
    if let Some(d) = phone::digits(raw) {
        assert!(
            !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()),
            "digits({raw:?}) = {d:?}"
        );
    }
    if let Some(plain) = phone::plain_international(raw) {
        let digits = &plain[1..];
        assert!(
            plain.starts_with('+')
                && (7..=15).contains(&digits.len())
                && digits.bytes().all(|b| b.is_ascii_digit())
                && !digits.starts_with('0'),
            "plain_international({raw:?}) = {plain:?}"
        );
        // Documented exactness: equal to a valid number's E.164 ⇒ parsing gives that number.
        if phone::normalize(&plain, "").as_ref() == Some(&plain) {
            assert_eq!(
                phone::normalize(raw, region).as_ref(),
                Some(&plain),
                "plain_international({raw:?}) is the valid {plain:?}, parsing disagrees"
            );
        }
    }
}

/// Whether the number `n` (stored with the index region) explains `caller` by one of the three
/// caller-ID rules of [`crate::directory`].
fn explains(n: &ContactNumber, index_region: &str, caller: &CallerInfo) -> bool {
    let number = caller.number.as_str();
    let parsed = phone::parse(&n.raw, index_region);
    let extension = caller.extension.as_ref().into_option();
    // Rule 1: equal to the stored valid number.
    if let Some(p) = parsed.as_ref().filter(|p| p.is_valid())
        && p.e164 == number
    {
        return true;
    }
    // Rule 2: the stored `-0` number's base plus the extension.
    if let (Some(p), Some(ext)) = (&parsed, extension)
        && let Some(base) = p.e164.strip_suffix('0')
        && (1..=5).contains(&ext.len())
        && number.strip_prefix(base) == Some(ext.as_str())
    {
        return true;
    }
    // Rule 3: the same last 8 digits (the caller's number is then as delivered).
    if extension.is_none() {
        let stored = match &parsed {
            Some(p) => p.e164[1..].to_owned(),
            None => phone::digits(&n.raw).unwrap_or_default(),
        };
        if stored.len() >= 8 && ascii_digits(number).contains(&stored[stored.len() - 8..]) {
            return true;
        }
    }
    false
}

/// Checks a caller-ID answer against the contacts the index was built from.
fn check_caller(contacts: &[Contact], index_region: &str, input: &str, caller: &CallerInfo) {
    let id = caller.contact_id.as_str();
    let c = contacts
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("{input:?} found the unknown contact {id:?}"));
    assert_eq!(caller.display_name.as_str(), c.shown_name());
    if let Some(ext) = caller.extension.as_ref().into_option() {
        assert!(
            !ext.is_empty() && ext.bytes().all(|b| b.is_ascii_digit()),
            "extension {ext:?} for {input:?}"
        );
    }
    assert!(
        c.numbers
            .iter()
            .filter(|n| n.number_type == caller.number_type)
            .any(|n| explains(n, index_region, caller)),
        "{input:?} found {id:?} as {:?} (extension {:?}), which none of its numbers explains",
        caller.number.as_str(),
        caller.extension,
    );
}

fn same_caller(a: &Option<CallerInfo>, b: &Option<CallerInfo>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            (&a.contact_id, &a.number, &a.extension, a.number_type)
                == (&b.contact_id, &b.number, &b.extension, b.number_type)
        }
        _ => false,
    }
}

/// `phone_lookup`: the input is text (invalid UTF-8 replaced) in lines: the incoming number, the
/// region, then outside-line prefixes, which are also stored as numbers of one more contact.
/// The whole input is also normalized as one number (so control characters reach the parser).
///
/// Properties: the phone functions' documented forms and fixed points; a caller-ID answer names
/// a contact one of whose numbers of that type explains it by one of the three rules; the answer
/// and the search results do not depend on the order of the contacts; searches respect `limit`.
pub fn phone_lookup(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let lines: Vec<&str> = text.split('\n').take(MAX_LINES).collect();
    let input = lines[0];
    let region = lines.get(1).copied().unwrap_or("DE");
    let prefixes: Vec<String> = lines.iter().skip(2).map(|s| (*s).to_owned()).collect();
    let extra: Vec<&str> = lines.iter().skip(2).copied().collect();

    check_phone(&text, region);
    check_phone(input, region);
    for p in &extra {
        check_phone(p, region);
    }

    let contacts = fixed_contacts(&extra);
    let index = Index::new(contacts.clone(), region);
    let reversed = Index::new(contacts.iter().rev().cloned().collect(), region);
    let options = LookupOptions {
        region,
        outside_line_prefixes: &prefixes,
    };
    for number in [input, text.as_ref()] {
        let found = index.lookup(number, &options);
        if let Some(caller) = &found {
            check_caller(&contacts, region, number, caller);
        }
        assert!(
            same_caller(&found, &reversed.lookup(number, &options)),
            "lookup of {number:?} depends on the order of the contacts"
        );
    }

    for limit in [1, 3, 20] {
        let results = index.search(input, limit);
        assert!(results.len() <= limit);
        let ids: Vec<&str> = results.iter().map(|e| e.contact_id.as_str()).collect();
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "{input:?} found a contact twice");
        let other: Vec<String> = reversed
            .search(input, limit)
            .iter()
            .map(|e| e.contact_id.to_string())
            .collect();
        assert_eq!(
            ids, other,
            "search {input:?} depends on the order of the contacts"
        );
    }
}

/// A stored contact as Graph would send it back (the fields [`parse_contact`] reads).
fn to_graph(c: &StoredContact) -> Value {
    json!({
        "id": c.id,
        "displayName": c.display_name,
        "givenName": c.given_name,
        "surname": c.surname,
        "companyName": c.company,
        "jobTitle": c.job_title,
        "businessPhones": c.business,
        "homePhones": c.home,
        "mobilePhone": c.mobile,
        "emailAddresses": c.emails.iter().map(|a| json!({"address": a})).collect::<Vec<_>>(),
    })
}

fn check_stored(c: &StoredContact) {
    let trimmed = |s: &str| !s.is_empty() && s.trim() == s;
    for s in [
        &c.id,
        &c.display_name,
        &c.given_name,
        &c.surname,
        &c.company,
        &c.job_title,
    ] {
        assert_eq!(s.trim(), s, "field not trimmed in {c:?}");
    }
    assert!(
        c.business
            .iter()
            .chain(&c.home)
            .chain(&c.mobile)
            .chain(&c.emails)
            .all(|s| trimmed(s)),
        "empty or untrimmed list entry in {c:?}"
    );
    // A record keeps at most 255 numbers and 255 addresses (Graph allows 5 and 3).
    let numbers = c.business.len() + c.home.len() + usize::from(c.mobile.is_some());
    if numbers <= 255 && c.emails.len() <= 255 {
        assert_eq!(
            &parse_contact(&to_graph(c)),
            c,
            "a parsed contact does not survive the way back"
        );
    }
}

/// `graph_contact_json`: the input is a Graph contacts delta page (`value`, `@removed`,
/// `@odata.nextLink` / `@odata.deltaLink`), applied to a folder that already holds two
/// contacts, and also read as one contact.
///
/// Properties: parsed contacts are trimmed, without empty entries, and survive the way back to
/// Graph's shape; after a page every contact is stored under its own id, a removed id is gone and
/// every other item with an id is there; the index built from the result finds each contact by
/// its id's words and by each valid number.
pub fn graph_contact_json(data: &[u8]) {
    let Ok(page) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    check_stored(&parse_contact(&page));

    let seed = |id: &str| StoredContact {
        id: id.to_owned(),
        display_name: format!("Seed {id}"),
        business: vec!["+49 89 1234567".to_owned()],
        ..StoredContact::default()
    };
    let mut contacts: Records = ["AAMkSeed1", "AAMkSeed2"]
        .map(|id| seed(id).pack())
        .into_iter()
        .collect();
    let Ok(count) = apply_delta_page(&page, &mut contacts) else {
        return;
    };
    let ids: Vec<&str> = contacts.keys().collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids not sorted: {ids:?}"
    );
    for c in contacts.values() {
        check_stored(&StoredContact::from(c));
    }
    let items = page.get("value").and_then(Value::as_array).cloned();
    assert_eq!(Some(count), items.as_ref().map(Vec::len));
    let mut last: BTreeMap<String, bool> = BTreeMap::new();
    for item in items.iter().flatten() {
        if let Some(id) = item.get("id").and_then(Value::as_str) {
            last.insert(id.trim().to_owned(), item.get("@removed").is_some());
        }
    }
    for (id, removed) in &last {
        assert_eq!(
            contacts.contains_key(id),
            !removed,
            "after the page, {id:?} is {}",
            if *removed { "still there" } else { "missing" }
        );
    }

    let mailbox = Mailbox {
        upn: "adele@contoso.example".to_owned(),
        folders: [(
            "folder".to_owned(),
            crate::sync::Folder {
                delta_link: None,
                contacts,
            },
        )]
        .into(),
        ..Mailbox::default()
    };
    let index = crate::contacts::build_index(&mailbox, "DE");
    assert_eq!(index.len(), mailbox.len());
    let options = LookupOptions {
        region: "DE",
        outside_line_prefixes: &[],
    };
    let all = &mailbox.folders["folder"].contacts;
    for c in all.values().take(8) {
        for (_, raw) in c.numbers().take(4) {
            let Some(e164) = phone::normalize(raw, "DE") else {
                continue;
            };
            let caller = index
                .lookup(&e164, &options)
                .unwrap_or_else(|| panic!("the stored valid number {raw:?} is not found"));
            let owner = all
                .get(caller.contact_id.as_str())
                .expect("the caller is a stored contact");
            assert!(
                owner
                    .numbers()
                    .any(|(_, n)| phone::normalize(n, "DE").as_ref() == Some(&e164)),
                "{e164} found {:?}, which does not have it",
                owner.id()
            );
        }
    }
}

/// `presence_json`: the input is the body of `GET /users/{id}/presence`.
///
/// Properties: what is read survives the way back to JSON; table 1 ignores case and the
/// out-of-office flag; a fresh machine reports exactly table 1's status, and a second equal
/// read changes nothing.
pub fn presence_json(data: &[u8]) {
    let Ok(read) = parse_presence(data) else {
        return;
    };
    let (availability, activity, out_of_office) = (&read.0, &read.1, read.2);
    let back = json!({
        "availability": availability,
        "activity": activity,
        "outOfOfficeSettings": {"isOutOfOffice": out_of_office},
    });
    let again = parse_presence(back.to_string().as_bytes()).expect("our own JSON reads back");
    assert_eq!(again, read);

    let mapping = classify(availability, activity, out_of_office);
    assert_eq!(
        mapping,
        classify(
            &availability.to_ascii_uppercase(),
            &activity.to_ascii_lowercase(),
            !out_of_office
        ),
        "table 1 depends on case or the out-of-office flag for {read:?}"
    );
    let expected = crate::presence::teams_to_contact(availability, activity, out_of_office);
    let mut machine = PresenceMachine::new();
    assert_eq!(
        machine.on_teams_read(availability, activity, out_of_office),
        expected
    );
    assert_eq!(
        machine.on_teams_read(availability, activity, out_of_office),
        None
    );
}

/// The `state` the `loopback_request` target expects.
const STATE: &str = "Zm9v-state_1";

/// `loopback_request`: the input is what a browser sent (a request head), read as the listener
/// reads it (UTF-8 or nothing), classified for the state [`STATE`]; the input (lossy text, its
/// first 1,000 characters) is also used as a code, an error description and a wrong state in
/// well-formed redirects.
///
/// Properties: any code or error description, percent-encoded, comes back unchanged; any other
/// state is refused; a redirect is only ever recognized from a `GET`.
pub fn loopback_request(data: &[u8]) {
    if let Ok(head) = std::str::from_utf8(data) {
        let outcome = parse_request(head, STATE);
        if matches!(outcome, Outcome::Redirect(_) | Outcome::WrongState) {
            assert!(head.starts_with("GET /"), "{head:?} gave {outcome:?}");
        }
    }

    // At most 1,000 characters: percent-encoded, they stay far below the listener's 16 KiB
    // limit on a request head (beyond which every request is refused by design).
    let text: String = String::from_utf8_lossy(data).chars().take(1000).collect();
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let get = |query: &str| format!("GET /?{query} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let code = get(&format!("code={}&state={}", enc(&text), enc(STATE)));
    assert_eq!(
        parse_request(&code, STATE),
        Outcome::Redirect(Redirect::Code(text.clone())),
        "{code:?}"
    );
    let error = get(&format!(
        "state={}&error=access_denied&error_description={}",
        enc(STATE),
        enc(&text)
    ));
    assert_eq!(
        parse_request(&error, STATE),
        Outcome::Redirect(Redirect::Error {
            error: "access_denied".to_owned(),
            description: text.clone(),
        }),
        "{error:?}"
    );
    if text != STATE {
        let wrong = get(&format!("code=abc&state={}", enc(&text)));
        assert_eq!(
            parse_request(&wrong, STATE),
            Outcome::WrongState,
            "{wrong:?}"
        );
    }
}
