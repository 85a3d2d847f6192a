//! Caller ID without the library ([`Index::quick`]) must answer exactly as the library path:
//! every region's example numbers, stored and delivered in every format and with digits
//! changed, added, dropped or a trunk prefix inserted, looked up both ways on indexes of
//! several host countries.

use rlibphonenumber::{PHONE_NUMBER_UTIL, PhoneNumberFormat, PhoneNumberType};

use super::*;

/// Host countries: plain trunk prefixes (DE, AT, GB, FR, NL, JP, AU, IN), none (US, IT, MX,
/// BR), a non-`0` trunk (RU, HU), and rewriting rules (AR).
const HOSTS: &[&str] = &[
    "DE", "AT", "CH", "GB", "FR", "NL", "US", "IT", "RU", "HU", "BR", "AR", "MX", "JP", "AU", "IN",
];

/// Every supported region's fixed-line, mobile and toll-free examples, as (region, number).
fn examples() -> Vec<(String, rlibphonenumber::PhoneNumber)> {
    let mut out = Vec::new();
    for region in PHONE_NUMBER_UTIL.get_supported_regions() {
        for t in [
            PhoneNumberType::FixedLine,
            PhoneNumberType::Mobile,
            PhoneNumberType::TollFree,
        ] {
            if let Ok(n) = PHONE_NUMBER_UTIL.get_example_number_for_type_and_region(region, t) {
                out.push((region.to_string(), n));
            }
        }
    }
    out
}

fn contact(id: usize, raw: String) -> Contact {
    Contact {
        id: format!("{id:06}"),
        display_name: format!("Contact {id}"),
        given_name: String::new(),
        surname: String::new(),
        company: String::new(),
        job_title: String::new(),
        numbers: vec![ContactNumber {
            raw,
            number_type: NumberType::BUSINESS,
        }],
        emails: vec![],
        source: ContactSource::OUTLOOK,
    }
}

/// Inputs derived from one example: its formats, and variants with a digit changed, digits
/// added (an extension behind a company number), the last digit dropped, a `0` after the
/// country code.
fn inputs(n: &rlibphonenumber::PhoneNumber) -> Vec<String> {
    let e164 = n.format_as(PhoneNumberFormat::E164).into_owned();
    let national = n.format_as(PhoneNumberFormat::National).into_owned();
    let international = n.format_as(PhoneNumberFormat::International).into_owned();
    let cc = n.country_code.to_string();
    let nsn = &e164[1 + cc.len()..];
    let mut out = vec![
        e164.clone(),
        international,
        national.clone(),
        format!("00{}", &e164[1..]),
        format!("+{cc} 0{nsn}"),
        format!("tel:{e164}"),
    ];
    for base in [e164.clone(), national] {
        let last = base.chars().last().and_then(|c| c.to_digit(10));
        if let Some(d) = last {
            let mut changed = base.clone();
            changed.pop();
            out.push(format!("{changed}{}", (d + 1) % 10));
            out.push(changed);
        }
        for ext in ["7", "42", "999", "12345"] {
            out.push(format!("{base}{ext}"));
        }
    }
    out
}

fn answer(c: Option<CallerInfo>) -> Option<(String, String, Option<String>)> {
    c.map(|c| {
        (
            c.contact_id.to_string(),
            c.number.to_string(),
            c.extension.into_option().map(|e| e.to_string()),
        )
    })
}

#[test]
fn quick_answers_exactly_as_the_library_does() {
    let examples = examples();
    assert!(examples.len() > 400, "{} examples", examples.len());
    let (mut quick_found, mut quick_absent, mut checked) = (0usize, 0usize, 0usize);
    for host in HOSTS {
        // Every example stored internationally; the host country's also nationally and as a
        // company number (`… -0`) with the last digits removed.
        let mut contacts = Vec::new();
        for (region, n) in &examples {
            let id = contacts.len();
            contacts.push(contact(
                id,
                n.format_as(PhoneNumberFormat::International).into(),
            ));
            if region == host {
                let national = n.format_as(PhoneNumberFormat::National).into_owned();
                let id = contacts.len();
                contacts.push(contact(id, national.clone()));
                let digits: String = national.chars().filter(char::is_ascii_digit).collect();
                if digits.len() > 6 {
                    let id = contacts.len();
                    contacts.push(contact(id, format!("{}-0", &digits[..digits.len() - 3])));
                }
            }
        }
        let index = Index::new(contacts, host);
        let options = LookupOptions {
            region: host,
            outside_line_prefixes: &[],
        };
        for (_, n) in &examples {
            for input in inputs(n) {
                let form = Form {
                    text: Cow::Borrowed(input.as_str()),
                    region: host,
                    parsed: OnceCell::new(),
                    surely_absent: false,
                };
                match index.quick(&form) {
                    Quick::Found(_) => quick_found += 1,
                    Quick::Absent => quick_absent += 1,
                    Quick::Unknown => {}
                }
                let fast = answer(index.lookup_with(&input, &options, true));
                let slow = answer(index.lookup_with(&input, &options, false));
                assert_eq!(fast, slow, "host {host}, input {input:?}");
                checked += 1;
            }
        }
    }
    // The quick path must really have answered, both ways, or this test proves nothing.
    assert!(
        quick_found > 1000 && quick_absent > 1000,
        "quick found {quick_found}, absent {quick_absent} of {checked}"
    );
}

#[test]
fn trunk_rules_of_common_host_countries() {
    for (region, trunk) in [
        ("DE", "0"),
        ("AT", "0"),
        ("GB", "0"),
        ("FR", "0"),
        ("CH", "0"),
    ] {
        let rule = phone::TrunkRule::for_region(region);
        assert!(rule.is_some(), "{region}");
        let digits = match region {
            "DE" => "891234567",
            "AT" => "1588580",
            "GB" => "2079460958",
            "FR" => "142764978",
            _ => "446681800",
        };
        let national = format!("{trunk}{digits}");
        let e164 = phone::plain_national(&national, rule.as_ref().unwrap()).unwrap();
        assert_eq!(Some(e164), phone::normalize(&national, region), "{region}");
    }
    for region in ["US", "IT", "XX", ""] {
        assert_eq!(phone::TrunkRule::for_region(region), None, "{region}");
    }
}

/// One-character searches answered from the kept answers equal the full computation, for
/// every character and limits below, at and above the kept count.
#[test]
fn kept_one_character_answers_equal_the_full_search() {
    let names = [
        "Anna Müller",
        "Mia Maier",
        "Max Mustermann",
        "Zoë Adams",
        "Łukasz Nowak",
        "M",
        "m-Tec",
        "Jürgen Baum",
        "0815 Services",
        "Émile Zola",
    ];
    let contacts: Vec<Contact> = (0..600)
        .map(|i| {
            let mut c = contact(i, format!("+49 89 {:07}", 1_000_000 + i));
            c.display_name = format!("{} {i}", names[i % names.len()]);
            c
        })
        .collect();
    let index = Index::new(contacts, "DE");
    let words = index.records.len().div_ceil(64);
    for &c in ONE_CHARS {
        let term = Term::Text(char::from(c).to_string());
        let ranges = index.ranges(&term);
        let mut bits = [vec![0u64; words], vec![0u64; words], vec![0u64; words]];
        index.mark(&term, &ranges, &mut bits);
        for limit in [
            1,
            7,
            ONE_CHAR_KEPT - 1,
            ONE_CHAR_KEPT,
            ONE_CHAR_KEPT + 1,
            700,
        ] {
            let full: Vec<String> = Index::single_term_ranks(&bits, limit)
                .into_iter()
                .map(|r| {
                    index.records[index.by_name[r as usize] as usize]
                        .id()
                        .to_owned()
                })
                .collect();
            let upper = char::from(c).to_ascii_uppercase().to_string();
            for query in [char::from(c).to_string(), upper] {
                let got: Vec<String> = index
                    .search(&query, limit)
                    .into_iter()
                    .map(|e| e.contact_id.into_string())
                    .collect();
                assert_eq!(got, full, "query {query:?}, limit {limit}");
            }
        }
    }
    // The kept answers are used: `m` has more hits than are kept.
    assert_eq!(
        index.one_char_ranks("m").map(<[u32]>::len),
        Some(ONE_CHAR_KEPT)
    );
}

/// The packed-key suffix sort gives exactly the order of comparing the windows.
#[test]
fn suffix_sort_orders_as_the_windows_compare() {
    // Numbers of 3 to 20 digits (many sharing long prefixes), each followed by the end marker
    // and a 4-byte owner, as `Index::new` lays them out.
    let mut dig_text = Vec::new();
    let mut starts = Vec::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..3000u32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = 3 + (x % 18) as usize;
        starts.push(dig_text.len());
        let prefix = if i % 3 == 0 { "4989123" } else { "" };
        let digits = format!("{prefix}{x:020}");
        dig_text.extend_from_slice(&digits.as_bytes()[..len.max(prefix.len()).min(digits.len())]);
        dig_text.push(DIGIT_END);
        dig_text.extend_from_slice(&i.to_le_bytes());
    }
    let mut suffixes: Vec<u32> = Vec::new();
    for &start in &starts {
        let len = dig_text[start..]
            .iter()
            .position(|&b| b == DIGIT_END)
            .unwrap();
        suffixes.extend((start..=start + len - 3).map(|p| p as u32));
    }
    let mut expected = suffixes.clone();
    expected.sort_by(|&a, &b| suffix_window(&dig_text, a).cmp(suffix_window(&dig_text, b)));
    sort_suffixes(&mut suffixes, &dig_text);
    let windows = |v: &[u32]| -> Vec<Vec<u8>> {
        v.iter()
            .map(|&p| suffix_window(&dig_text, p).to_vec())
            .collect()
    };
    assert_eq!(windows(&suffixes), windows(&expected));
}
