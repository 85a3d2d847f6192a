//! Caller ID and phonebook search on a seeded 100,000-contact index, each against a baseline
//! measured in the same run.
//!
//! Run: `cargo bench -p contact-ms365 --bench lookup -- --warm-up-time 1 --measurement-time 3`
//!
//! - `caller_id/found` (a mix of `0…`, `00…`, `tel:+…`, `sip:+…@…`), `caller_id/found_national`
//!   (`089 1234567` style, always through the parser), `caller_id/not_found` (`+49 89 …`):
//!   [`Index::lookup`] on numbers as phone systems deliver them (normalization included),
//!   against `caller_id/baseline_hashmap`: a plain
//!   `HashMap<String, usize>` lookup of an already-normalized key. `caller_id/normalize_only` is
//!   `phone::normalize` alone (parse and validate), for reference.
//! - `search/*`: [`Index::search`] (limit 50) for 1-, 2- and 3-letter and digit queries, against
//!   `search_baseline/*`: a linear scan that folds every contact per query, as a naive
//!   implementation would.
//!
//! Before the criterion groups it prints the build time, the index memory per contact and the
//! search latency percentiles (p50/p99 over many queries), which criterion does not report.

use std::{collections::HashMap, hint::black_box, time::Instant};

use contact_ms365::directory::{Contact, ContactNumber, Index, LookupOptions};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use host_api::{ContactSource, NumberType};

const CONTACTS: usize = 100_000;
const LIMIT: usize = 50;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list[self.below(list.len())]
    }
    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|i| {
                let d = self.below(10) as u8;
                // No leading zero in a subscriber number.
                char::from(b'0' + if i == 0 { 1 + d % 9 } else { d })
            })
            .collect()
    }
}

const GIVEN: &[&str] = &[
    "Thomas",
    "Anna",
    "Zoë",
    "Łukasz",
    "Jürgen",
    "Søren",
    "Maria",
    "José",
    "Émile",
    "Ana",
    "Max",
    "Sophie",
    "Lena",
    "Paul",
    "Mia",
    "Noah",
    "Ben",
    "Emma",
    "Leon",
    "Hannah",
    "Björn",
    "Ängla",
    "Chloé",
    "François",
    "Mateo",
    "Olivia",
    "Liam",
    "Ava",
    "Lucas",
    "Ida",
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
    "Koch",
    "Richter",
    "Klein",
    "Wolf",
    "Schröder",
    "Neumann",
    "Nowak",
    "Kowalski",
    "Dvořák",
    "Novák",
    "García",
    "Martínez",
    "Smith",
    "Jones",
    "Brown",
    "Taylor",
    "Gruber",
    "Huber",
    "Bauer",
    "Steiner",
    "Moser",
    "Keller",
    "Brunner",
    "Zimmermann",
    "Vance",
];
const COMPANIES: &[&str] = &[
    "Contoso GmbH",
    "Fabrikam AG",
    "Northwind Traders",
    "Müller & Söhne KG",
    "Tailspin Toys",
    "Wide World Importers",
    "Adventure Works",
    "Litware Inc.",
    "Proseware",
    "Woodgrove Bank",
    "",
    "",
    "",
];

/// A number of `country` in a randomly chosen messy notation, and its E.164 form.
fn messy_number(rng: &mut Rng, mobile: bool) -> (String, String) {
    let (cc, area, sub_len, national_prefix) = match rng.below(10) {
        0..=5 => {
            if mobile {
                ("49", rng.pick(&["151", "160", "171", "176"]), 8, "0")
            } else {
                (
                    "49",
                    rng.pick(&["89", "30", "40", "221", "6221", "711"]),
                    7,
                    "0",
                )
            }
        }
        6 => ("41", rng.pick(&["44", "31", "61"]), 7, "0"),
        7 => ("43", rng.pick(&["1", "662", "512"]), 6, "0"),
        8 => ("1", rng.pick(&["650", "212", "415"]), 7, ""),
        _ => ("44", rng.pick(&["20", "161"]), 8, "0"),
    };
    let sub = if cc == "1" {
        // NANP exchange codes start with 2-9.
        format!("{}{}", 2 + rng.below(8), rng.digits(sub_len - 1))
    } else {
        rng.digits(sub_len)
    };
    let e164 = format!("+{cc}{area}{sub}");
    let (a, b) = sub.split_at(3);
    let raw = match rng.below(7) {
        0 => format!("+{cc} {area} {sub}"),
        1 => format!("00{cc} {area} {a} {b}"),
        2 => format!("+{cc} ({national_prefix}){area} {a}-{b}"),
        3 => format!("+{cc}-{area}-{sub}"),
        4 => e164.clone(),
        5 => format!("+{cc} {area} {a} {b}"),
        _ => format!("+{cc}/{area}/{sub}"),
    };
    (raw, e164)
}

struct Data {
    contacts: Vec<Contact>,
    /// Every valid stored number in E.164, with its contact.
    numbers: Vec<(String, usize)>,
}

fn generate() -> Data {
    let mut rng = Rng(0x5EED_CAFE_F00D_0001);
    let mut contacts = Vec::with_capacity(CONTACTS);
    let mut numbers = Vec::new();
    for i in 0..CONTACTS {
        let given = rng.pick(GIVEN);
        let surname = rng.pick(SURNAMES);
        let company = rng.pick(COMPANIES);
        let mut list = Vec::new();
        for (kind, count) in [
            (NumberType::BUSINESS, 1 + rng.below(2)),
            (NumberType::MOBILE, rng.below(2)),
            (NumberType::HOME, rng.below(3) / 2),
        ] {
            for _ in 0..count {
                let (raw, e164) = messy_number(&mut rng, kind == NumberType::MOBILE);
                // Only valid numbers are rung (a few generated ones are not valid).
                if contact_ms365::phone::normalize(&e164, "").is_some() {
                    numbers.push((e164, i));
                }
                list.push(ContactNumber {
                    raw,
                    number_type: kind,
                });
            }
        }
        // Every 50th contact is a company switchboard `... -0`.
        if i % 50 == 0 {
            list.push(ContactNumber {
                raw: format!("+49 89 {}-0", 1000 + i / 50),
                number_type: NumberType::BUSINESS,
            });
        }
        let folded_given = deunicode::deunicode(given).to_lowercase();
        let folded_surname = deunicode::deunicode(surname).to_lowercase();
        contacts.push(Contact {
            // Graph ids are long base64 strings (about 150 characters).
            id: format!("AAMkAGI2TG93AAA{:0>135}", format!("{i:x}")),
            display_name: if i % 10 == 0 {
                String::new()
            } else {
                format!("{given} {surname}")
            },
            given_name: given.to_owned(),
            surname: surname.to_owned(),
            company: company.to_owned(),
            job_title: if i % 3 == 0 {
                "Sales".into()
            } else {
                String::new()
            },
            numbers: list,
            emails: vec![format!(
                "{folded_given}.{folded_surname}{i}@contoso.example"
            )],
            source: if i % 4 == 0 {
                ContactSource::DIRECTORY
            } else {
                ContactSource::OUTLOOK
            },
        });
    }
    Data { contacts, numbers }
}

/// Resident set size in bytes (Linux), for an approximate memory figure.
fn rss() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn fold(s: &str) -> String {
    deunicode::deunicode(s).to_lowercase()
}

/// The naive search: fold every contact for every query, prefix-match words, sort, cut.
fn linear_search(contacts: &[Contact], query: &str, limit: usize) -> Vec<usize> {
    let q = fold(query);
    let words: Vec<&str> = q
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let q_digits: String = q.chars().filter(char::is_ascii_digit).collect();
    let digit_query = q_digits.len() >= 3 && !q.bytes().any(|b| b.is_ascii_alphabetic());
    let mut hits: Vec<(u8, String, usize)> = Vec::new();
    for (i, c) in contacts.iter().enumerate() {
        let matched = if digit_query {
            c.numbers.iter().any(|n| {
                let d: String = n.raw.chars().filter(char::is_ascii_digit).collect();
                d.contains(&q_digits)
            })
        } else {
            let hay = fold(&format!(
                "{} {} {} {} {}",
                c.display_name,
                c.given_name,
                c.surname,
                c.company,
                c.emails.join(" ")
            ));
            let contact_words: Vec<&str> = hay
                .split(|ch: char| !ch.is_ascii_alphanumeric())
                .filter(|w| !w.is_empty())
                .collect();
            words
                .iter()
                .all(|w| contact_words.iter().any(|cw| cw.starts_with(w)))
        };
        if matched {
            let name = fold(&c.shown_name());
            let first = name.split(' ').next().unwrap_or("");
            let score = if words.contains(&first) {
                0
            } else if words.first().is_some_and(|w| first.starts_with(w)) {
                1
            } else {
                2
            };
            hits.push((score, name, i));
        }
    }
    hits.sort();
    hits.into_iter().take(limit).map(|h| h.2).collect()
}

fn percentiles(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize];
    (at(0.5), at(0.99))
}

fn benches(c: &mut Criterion) {
    let data = generate();
    let contacts = data.contacts.clone();
    let rss_before = rss();
    let started = Instant::now();
    let index = Index::new(data.contacts, "DE");
    let build = started.elapsed();
    let rss_after = rss();
    let n = index.len();
    println!(
        "build: {n} contacts, {} numbers in {:.2} s",
        data.numbers.len(),
        build.as_secs_f64()
    );
    println!(
        "memory: index structures {:.0} B/contact, contact data {:.0} B/contact, total {:.0} B/contact",
        index.index_bytes() as f64 / n as f64,
        index.contact_bytes() as f64 / n as f64,
        (index.index_bytes() + index.contact_bytes()) as f64 / n as f64,
    );
    if let (Some(a), Some(b)) = (rss_before, rss_after) {
        println!(
            "memory: RSS growth while building (the contacts packed into records, then the given list freed; the index) {:.0} B/contact",
            b.saturating_sub(a) as f64 / n as f64
        );
    }

    // Incoming numbers as a phone system delivers them (national, 00, tel:, sip:).
    let mut rng = Rng(42);
    let options = LookupOptions {
        region: "DE",
        outside_line_prefixes: &[],
    };
    let found: Vec<String> = (0..1000)
        .map(|_| {
            let (e164, _) = &data.numbers[rng.below(data.numbers.len())];
            match rng.below(4) {
                0 if e164.starts_with("+49") => format!("0{}", &e164[3..]),
                1 => format!("00{}", &e164[1..]),
                2 => format!("tel:{e164}"),
                _ => format!("sip:{e164}@pbx.example;user=phone"),
            }
        })
        .collect();
    for f in &found {
        assert!(index.lookup(f, &options).is_some(), "{f}");
    }
    let national: Vec<String> = data
        .numbers
        .iter()
        .filter(|(e, _)| e.starts_with("+49"))
        .take(1000)
        .map(|(e, _)| format!("0{} {}", &e[3..6], &e[6..]))
        .collect();
    for f in &national {
        assert!(index.lookup(f, &options).is_some(), "{f}");
    }
    let not_found: Vec<String> = (0..1000)
        .map(|_| format!("+49 89 {}", rng.digits(7)))
        .filter(|n| index.lookup(n, &options).is_none())
        .collect();
    let baseline: HashMap<String, usize> = data.numbers.iter().cloned().collect();
    let keys: Vec<String> = (0..1000)
        .map(|_| data.numbers[rng.below(data.numbers.len())].0.clone())
        .collect();

    let mut group = c.benchmark_group("caller_id");
    let mut i = 0;
    group.bench_function("found", |b| {
        b.iter(|| {
            i = (i + 1) % found.len();
            black_box(index.lookup(black_box(&found[i]), &options))
        })
    });
    group.bench_function("found_national", |b| {
        b.iter(|| {
            i = (i + 1) % national.len();
            black_box(index.lookup(black_box(&national[i]), &options))
        })
    });
    group.bench_function("not_found", |b| {
        b.iter(|| {
            i = (i + 1) % not_found.len();
            black_box(index.lookup(black_box(&not_found[i]), &options))
        })
    });
    group.bench_function("normalize_only", |b| {
        b.iter(|| {
            i = (i + 1) % found.len();
            black_box(contact_ms365::phone::normalize(black_box(&found[i]), "DE"))
        })
    });
    group.bench_function("baseline_hashmap", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(baseline.get(black_box(keys[i].as_str())))
        })
    });
    group.finish();

    // Latency percentiles over many different queries (criterion reports no p99).
    let letters = "abcdefghijklmnopqrstuvwxyz";
    let mut one = Vec::new();
    let mut two = Vec::new();
    let mut three = Vec::new();
    for g in GIVEN.iter().chain(SURNAMES) {
        let f = fold(g);
        one.push(f[..1].to_owned());
        two.push(f[..2].to_owned());
        three.push(f[..3].to_owned());
    }
    one.extend(letters.chars().map(String::from));
    let digits: Vec<String> = (0..100).map(|_| rng.digits(4)).collect();
    for (name, queries) in [
        ("1 letter", &one),
        ("2 letters", &two),
        ("3 letters", &three),
        ("digits", &digits),
    ] {
        let mut samples = Vec::new();
        for _ in 0..20 {
            for q in queries.iter() {
                let t = Instant::now();
                black_box(index.search(q, LIMIT));
                samples.push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
        let (p50, p99) = percentiles(samples);
        println!(
            "search {name}: p50 {p50:.1} µs, p99 {p99:.1} µs over {} queries",
            queries.len() * 20
        );
    }

    let cases = [
        ("1_letter", "m"),
        ("2_letters", "mu"),
        ("3_letters", "mül"),
        ("digits", "0891"),
    ];
    let mut group = c.benchmark_group("search");
    for (name, q) in cases {
        group.bench_with_input(BenchmarkId::from_parameter(name), q, |b, q| {
            b.iter(|| black_box(index.search(black_box(q), LIMIT)))
        });
    }
    group.finish();
    let mut group = c.benchmark_group("search_baseline");
    group.sample_size(10);
    for (name, q) in cases {
        group.bench_with_input(BenchmarkId::from_parameter(name), q, |b, q| {
            b.iter(|| black_box(linear_search(&contacts, black_box(q), LIMIT)))
        });
    }
    group.finish();
}

criterion_group!(lookup, benches);
criterion_main!(lookup);
