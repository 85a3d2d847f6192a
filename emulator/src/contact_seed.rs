//! Seeded Outlook mailboxes: the fixed contacts of Adele Vance (documented in
//! [`crate::tenant`]) and a deterministic generator of realistic, messy contacts (German,
//! Swiss, Austrian, US and UK numbers in many spellings, extensions, switchboards, contacts
//! without numbers, accented names).
//!
//! Every mailbox has three folders: the default "Contacts" folder, its sub-folder "Kunden"
//! and that folder's sub-folder "VIP". Generated contacts go 60 % / 25 % / 15 % into them.
//! Generated subscriber numbers never start with `1` or `2`, so they cannot collide with the
//! fixed contacts' numbers.

use time::OffsetDateTime;

use crate::mailbox::{Contact, EmailAddress, Mailbox};

/// A fixed contact: folder index (0 default, 1 Kunden, 2 VIP), given name, surname, company,
/// job title, business phones, mobile, home phones, e-mail.
type Fixed = (
    usize,
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    &'static [&'static str],
    Option<&'static str>,
    &'static [&'static str],
    Option<&'static str>,
);

/// Adele's fixed contacts, in id order (contact number 1, 2, ...).
pub const ADELE_FIXED: &[Fixed] = &[
    (
        0,
        "Anna",
        "Müller",
        Some("Müller & Söhne GmbH"),
        Some("Einkauf"),
        &["089 1234567"],
        Some("0171 2345678"),
        &[],
        Some("anna.mueller@mueller-soehne.example"),
    ),
    (
        0,
        "Zoë",
        "Ackermann",
        Some("Bäckerei Ackermann"),
        Some("Inhaberin"),
        &["(089) 123-4568"],
        None,
        &[],
        Some("zoe@baeckerei-ackermann.example"),
    ),
    (
        0,
        "François",
        "Dubois",
        Some("Société Exemple SA"),
        Some("Directeur commercial"),
        &["+33 1 42 68 53 00"],
        Some("+33 6 12 34 56 78"),
        &[],
        Some("f.dubois@societe-exemple.example"),
    ),
    (
        0,
        "Łukasz",
        "Nowak",
        None,
        None,
        &[],
        Some("+48 601 234 567"),
        &[],
        Some("lukasz.nowak@poczta.example"),
    ),
    (
        0,
        "Fabrikam",
        "Zentrale",
        Some("Fabrikam AG"),
        None,
        &["+49 89 1234-0"],
        None,
        &[],
        None,
    ),
    (
        0,
        "Jürgen",
        "Weiß",
        Some("Fabrikam AG"),
        Some("Vertrieb"),
        &["+49 89 1234567-22"],
        None,
        &[],
        Some("juergen.weiss@fabrikam.example"),
    ),
    (
        0,
        "Petra",
        "Schmidt",
        Some("Schmidt Logistik"),
        None,
        &["0049 89 2765432"],
        None,
        &["089 2123456"],
        Some("petra@schmidt-logistik.example"),
    ),
    (
        0,
        "Thomas",
        "Becker",
        None,
        None,
        &["+49 (0)89 2345678"],
        None,
        &[],
        None,
    ),
    (
        0,
        "Tom",
        "Smith",
        Some("Northwind Traders"),
        Some("Account Manager"),
        &["+1 (425) 555-0100 x22"],
        Some("+1 206 555 0123"),
        &[],
        Some("tom.smith@northwind.example"),
    ),
    (
        0,
        "Olivia",
        "Brown",
        Some("Tailspin Toys Ltd"),
        None,
        &["+44 20 7946 0018"],
        Some("07700 900123"),
        &[],
        Some("olivia.brown@tailspin.example"),
    ),
    (
        0,
        "Hanna",
        "Ohnenummer",
        Some("Litware"),
        None,
        &[],
        None,
        &[],
        Some("hanna@litware.example"),
    ),
    (
        1,
        "Reto",
        "Keller",
        Some("Keller Treuhand AG"),
        Some("Partner"),
        &["+41 44 268 18 00"],
        Some("079 212 34 56"),
        &[],
        Some("reto.keller@keller-treuhand.example"),
    ),
    (
        1,
        "Katharina",
        "Gruber",
        Some("Gruber & Partner"),
        None,
        &["+43 1 2531140"],
        None,
        &[],
        None,
    ),
    (
        1,
        "Sören",
        "Lindqvist",
        None,
        None,
        &[],
        None,
        &["030 12345678"],
        Some("soeren@lindqvist.example"),
    ),
    (
        2,
        "Renée",
        "Fischer",
        Some("Fischer Holding"),
        Some("CEO"),
        &["+49 40 2234567"],
        Some("+49 160 2988776"),
        &[],
        Some("renee.fischer@fischer-holding.example"),
    ),
];

/// Deterministic pseudo-random numbers (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    /// `n` digits, the first in 3..=9.
    fn digits(&mut self, n: usize) -> String {
        let mut s = String::with_capacity(n);
        s.push((b'3' + self.below(7) as u8) as char);
        for _ in 1..n {
            s.push((b'0' + self.below(10) as u8) as char);
        }
        s
    }
}

const GIVEN: &[&str] = &[
    "Anna",
    "Jürgen",
    "Zoë",
    "Łukasz",
    "François",
    "Maximilian",
    "Sophie",
    "Lukas",
    "Marie",
    "Jonas",
    "Émilie",
    "Björn",
    "Chloé",
    "Mateusz",
    "Agnieszka",
    "Søren",
    "Ines",
    "José",
    "Noémie",
    "Ömer",
    "Felix",
    "Lena",
    "Paul",
    "Clara",
    "Michael",
    "Sarah",
    "David",
    "Laura",
    "Thomas",
    "Julia",
    "Hans-Peter",
    "Anne-Marie",
    "Mia",
    "Leon",
    "Emma",
    "Ben",
    "Hannah",
    "Elias",
    "Lea",
    "Noah",
    "John",
    "Emily",
    "James",
    "Olivia",
    "Reto",
    "Ursina",
    "Gerda",
];

const SURNAMES: &[&str] = &[
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Schulz",
    "Hoffmann",
    "Schäfer",
    "Koch",
    "Bauer",
    "Richter",
    "Klein",
    "Wolf",
    "Schröder",
    "Neumann",
    "Schwarz",
    "Zimmermann",
    "Braun",
    "Krüger",
    "Hofmann",
    "Hartmann",
    "Lange",
    "Weiß",
    "Jäger",
    "Groß",
    "Kowalski",
    "Nowak",
    "Dubois",
    "Lefèvre",
    "García",
    "Núñez",
    "Østergaard",
    "Ødegård",
    "Smith",
    "Johnson",
    "Brown",
    "O'Brien",
    "Gruber",
    "Huber",
    "Keller",
    "von Bülow",
    "de la Cruz",
    "Çelik",
    "Yılmaz",
];

const COMPANIES: &[&str] = &[
    "Müller & Söhne GmbH",
    "Fabrikam AG",
    "Northwind Traders",
    "Contoso Pharma GmbH",
    "Tailspin Toys Ltd",
    "Litware Inc.",
    "Adventure Works",
    "Wide World Importers",
    "Bäckerei Schönbrunn",
    "Alpine Ski House",
    "Coho Winery",
    "Fourth Coffee",
    "Proseware Consulting",
    "Woodgrove Bank",
    "Zürcher Treuhand AG",
    "Wiener Werkstätten OG",
    "Stadtwerke Example",
    "Ingenieurbüro Groß",
    "Blue Yonder Airlines",
    "Trey Research",
];

const TITLES: &[&str] = &[
    "Einkauf",
    "Vertrieb",
    "Geschäftsführer",
    "Buchhaltung",
    "Key Account Manager",
    "Sales Manager",
    "Head of IT",
    "Assistenz der Geschäftsleitung",
    "Projektleiterin",
    "Support",
    "CFO",
    "Sachbearbeiter",
    "Consultant",
];

const DE_AREAS: &[&str] = &[
    "89", "30", "40", "69", "221", "711", "211", "341", "351", "911", "421", "511", "6221",
];
const DE_MOBILE: &[&str] = &[
    "151", "152", "160", "170", "171", "172", "175", "176", "157", "162",
];
const US_AREAS: &[&str] = &["425", "206", "212", "415", "312", "617"];
const UK_AREAS: &[&str] = &["20", "161", "131", "117", "113"];
const CH_AREAS: &[&str] = &["44", "31", "61", "22", "41"];
const AT_AREAS: &[&str] = &["1", "316", "512", "662", "732"];

fn split2(s: &str, at: usize) -> (&str, &str) {
    s.split_at(at.min(s.len()))
}

/// A landline number in one of many real-world spellings.
fn landline(r: &mut Rng) -> String {
    match r.below(100) {
        // Germany, 55 %
        0..=54 => {
            let area = r.pick(DE_AREAS);
            let sub = r.digits(7 - area.len().min(3) + 1);
            let (a, b) = split2(&sub, 3);
            match r.below(10) {
                0 => format!("0{area} {sub}"),
                1 => format!("(0{area}) {a}-{b}"),
                2 => format!("+49 (0){area} {sub}"),
                3 => format!("0049 {area} {sub}"),
                4 => format!("+49 {area} {sub}"),
                5 => format!("+49 {area} {}-0", &sub[..4.min(sub.len())]),
                6 => format!("+49 {area} {sub}-{}", 10 + r.below(290)),
                7 => format!("0{area}/{sub}"),
                8 => format!("+49{area}{sub}"),
                _ => format!("0{area} {a} {b}"),
            }
        }
        // Switzerland, 12 %
        55..=66 => {
            let area = r.pick(CH_AREAS);
            let d = r.digits(7);
            let (x, rest) = split2(&d, 3);
            let (y, z) = split2(rest, 2);
            match r.below(3) {
                0 => format!("+41 {area} {x} {y} {z}"),
                1 => format!("0{area} {x} {y} {z}"),
                _ => format!("0041 {area} {x}{y}{z}"),
            }
        }
        // Austria, 10 %
        67..=76 => {
            let area = r.pick(AT_AREAS);
            let d = r.digits(6);
            match r.below(3) {
                0 => format!("+43 {area} {d}"),
                1 => format!("0{area} {d}-0"),
                _ => format!("+43 (0){area} {d}-{}", 10 + r.below(90)),
            }
        }
        // US, 13 %
        77..=89 => {
            let area = r.pick(US_AREAS);
            let line = r.digits(4);
            let x = 10 + r.below(900);
            match r.below(4) {
                0 => format!("+1 ({area}) 555-{line}"),
                1 => format!("({area}) 555-{line} x{x}"),
                2 => format!("{area}-555-{line}"),
                _ => format!("+1 {area} 555 {line} ext. {x}"),
            }
        }
        // UK, 10 %
        _ => {
            let area = r.pick(UK_AREAS);
            let d = r.digits(if area.len() == 2 { 8 } else { 7 });
            let (a, b) = split2(&d, d.len() - 4);
            match r.below(3) {
                0 => format!("+44 {area} {a} {b}"),
                1 => format!("0{area} {a} {b}"),
                _ => format!("+44 (0){area} {a} {b}"),
            }
        }
    }
}

fn mobile(r: &mut Rng) -> String {
    let pre = r.pick(DE_MOBILE);
    let len = 7 + r.below(2);
    let d = r.digits(len);
    match r.below(6) {
        0 => format!("0{pre} {d}"),
        1 => format!("+49 {pre} {d}"),
        2 => format!("0{pre}/{d}"),
        3 => format!("+49 (0){pre} {d}"),
        4 => format!("+41 79 {} {} {}", r.digits(3), r.digits(2), r.digits(2)),
        _ => format!("+1 206 555 {}", r.digits(4)),
    }
}

/// ASCII form for e-mail local parts and domains.
fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            'ä' | 'Ä' => out.push_str("ae"),
            'ö' | 'Ö' | 'ø' | 'Ø' => out.push_str("oe"),
            'ü' | 'Ü' => out.push_str("ue"),
            'ß' => out.push_str("ss"),
            'é' | 'è' | 'ë' | 'É' | 'ê' => out.push('e'),
            'á' | 'à' | 'å' => out.push('a'),
            'ç' | 'Ç' => out.push('c'),
            'ł' | 'Ł' => out.push('l'),
            'ñ' => out.push('n'),
            'ı' => out.push('i'),
            'ó' => out.push('o'),
            c if c.is_ascii_alphanumeric() => out.push(c.to_ascii_lowercase()),
            '-' => out.push('-'),
            _ => {}
        }
    }
    out
}

fn generated(r: &mut Rng) -> Contact {
    let given = r.pick(GIVEN);
    let surname = r.pick(SURNAMES);
    let company = r.chance(80).then(|| r.pick(COMPANIES));
    let mut c = Contact {
        given_name: Some(given.to_string()),
        surname: Some(surname.to_string()),
        display_name: Some(format!("{given} {surname}")),
        company_name: company.map(str::to_string),
        job_title: r.chance(50).then(|| r.pick(TITLES).to_string()),
        ..Default::default()
    };
    if !r.chance(8) {
        let business = r.below(100);
        if business < 85 {
            c.business_phones.push(landline(r));
            if business < 12 {
                c.business_phones.push(landline(r));
            }
        }
        if r.chance(60) {
            c.mobile_phone = Some(mobile(r));
        }
        if r.chance(20) {
            c.home_phones.push(landline(r));
        }
    }
    if r.chance(85) {
        let domain = company.map_or("example.net".to_string(), |co| {
            format!(
                "{}.example",
                fold(co.split_whitespace().next().unwrap_or("mail"))
            )
        });
        c.email_addresses.push(EmailAddress {
            address: format!("{}.{}@{domain}", fold(given), fold(surname)),
            name: format!("{given} {surname}"),
        });
    }
    c
}

fn seed_time(n: u64) -> OffsetDateTime {
    time::macros::datetime!(2023-03-01 08:00:00 UTC)
        + time::Duration::minutes(i64::try_from(n).unwrap_or(0) * 37)
}

/// A mailbox with the three standard folders and `count` contacts; with `fixed`, its first
/// contacts are those (in order), the rest generated. Deterministic for a given `tag`.
pub fn mailbox(tag: &str, count: usize, fixed: &[Fixed]) -> Mailbox {
    let mut m = Mailbox::new(tag);
    let default = m.default_folder_id.clone();
    let kunden = m.add_folder(&default, "Kunden");
    let vip = m.add_folder(&kunden, "VIP");
    let folders = [default, kunden, vip];
    let seed = tag.bytes().fold(0x5EED_u64, |h, b| {
        h.wrapping_mul(31).wrapping_add(u64::from(b))
    });
    let mut r = Rng(seed);
    for n in 0..count {
        let t = seed_time(n as u64);
        let (folder, c) = match fixed.get(n) {
            Some(&(f, given, surname, company, job, business, mob, home, mail)) => (
                f,
                Contact {
                    given_name: Some(given.to_string()),
                    surname: Some(surname.to_string()),
                    display_name: Some(format!("{given} {surname}")),
                    company_name: company.map(str::to_string),
                    job_title: job.map(str::to_string),
                    business_phones: business.iter().map(|s| s.to_string()).collect(),
                    mobile_phone: mob.map(str::to_string),
                    home_phones: home.iter().map(|s| s.to_string()).collect(),
                    email_addresses: mail
                        .map(|a| EmailAddress {
                            address: a.to_string(),
                            name: format!("{given} {surname}"),
                        })
                        .into_iter()
                        .collect(),
                    ..Default::default()
                },
            ),
            None => {
                let f = match r.below(100) {
                    0..=59 => 0,
                    60..=84 => 1,
                    _ => 2,
                };
                (f, generated(&mut r))
            }
        };
        let c = Contact {
            created: Some(t),
            modified: Some(t),
            ..c
        };
        m.insert(&folders[folder], c, t)
            .expect("seed folder exists");
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailbox::contact_id;

    #[test]
    fn fixed_contacts_come_first_and_generation_is_deterministic() {
        let a = mailbox("01", 25, ADELE_FIXED);
        assert_eq!(a.contact_count(), 25);
        let anna = a.contact(&contact_id("01", 1)).unwrap();
        assert_eq!(anna.display_name.as_deref(), Some("Anna Müller"));
        assert_eq!(anna.business_phones, ["089 1234567"]);
        let b = mailbox("01", 25, ADELE_FIXED);
        let id = contact_id("01", 20);
        assert_eq!(a.contact(&id), b.contact(&id));
        assert_eq!(a.folders.len(), 3);
        assert_eq!(a.folders[2].parent_folder_id, a.folders[1].id);
    }

    #[test]
    fn generated_numbers_are_messy_and_never_collide_with_fixed_ones() {
        let m = mailbox("02", 3000, &[]);
        let all: Vec<String> = m
            .folders
            .iter()
            .flat_map(|f| f.contacts.values())
            .flat_map(|c| {
                c.business_phones
                    .iter()
                    .chain(&c.home_phones)
                    .chain(&c.mobile_phone)
                    .cloned()
            })
            .collect();
        for needle in ["(0", "0049 ", "-0", "x", "/", "+41", "+43", "+44", "+1 "] {
            assert!(all.iter().any(|n| n.contains(needle)), "{needle}");
        }
        let fixed: Vec<&str> = ADELE_FIXED
            .iter()
            .flat_map(|f| f.5.iter().chain(f.6.iter()).chain(f.7.iter()).copied())
            .collect();
        assert!(!all.iter().any(|n| fixed.contains(&n.as_str())));
        let without = m
            .folders
            .iter()
            .flat_map(|f| f.contacts.values())
            .filter(|c| {
                c.business_phones.is_empty() && c.mobile_phone.is_none() && c.home_phones.is_empty()
            })
            .count();
        assert!(without > 50, "{without}");
    }

    #[test]
    fn hundred_thousand_contacts_generate_fast() {
        let t = std::time::Instant::now();
        let m = mailbox("03", 100_000, &[]);
        let took = t.elapsed();
        assert_eq!(m.contact_count(), 100_000);
        let limit = if cfg!(debug_assertions) { 15.0 } else { 1.0 };
        assert!(took.as_secs_f64() < limit, "{took:?}");
        eprintln!("100k contacts in {took:?}");
    }
}
