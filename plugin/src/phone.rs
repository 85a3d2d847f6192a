//! Phone numbers: from whatever a phone system or a contact delivers to E.164.
//!
//! Everything that knows which libphonenumber port the plugin uses sits in this module, and the
//! port itself is called in exactly one function ([`parse`] through its private helper
//! `library_parse`). [`normalize`] is the function the rest of the plugin uses; [`parse`] adds the
//! details the caller-ID rules need (country code, extension, validity).
//!
//! # Library choice: `rlibphonenumber`
//!
//! Both Rust ports of Google's libphonenumber were run on the same 75 inputs; the test
//! `differential_set` below runs both on every row and asserts the figures in this table. "right"
//! is what libphonenumber itself answers, taken from its reference port (the Python `phonenumbers`
//! 9.0.43, which follows the Java library release by release; run once by hand, not a
//! dependency). `rlib` = `rlibphonenumber` 2.2.15 (metadata 9.0.42), `pn` = `phonenumber` 0.3.10
//! (metadata 9.0.33). A trailing `!` marks a number that parses but is not valid, `—` a parse
//! error, **✗** an answer that differs from libphonenumber. Inputs are given to the libraries as
//! shown, with the region, also those starting with `+`, to show the bug; the plugin itself never
//! passes a region for those (see [`parse`]).
//!
//! | input | region | rlib | pn | right |
//! |---|---|---|---|---|
//! | `+4915112345678` | US | +4915112345678 | +495112345678 **✗** | +4915112345678 |
//! | `+33142764978` | US | +33142764978 | +3342764978! **✗** | +33142764978 |
//! | `+78005553535` | DE | +78005553535 | +78005553535 | +78005553535 |
//! | `8 800 555-35-35` | RU | +78005553535 | +7005553535! **✗** | +78005553535 |
//! | `+7 495 123-45-67` | DE | +74951234567 | +74951234567 | +74951234567 |
//! | `110` | DE | +49110! | +49110! | +49110! |
//! | `112` | DE | +49112! | +49112! | +49112! |
//! | `**21#` | DE | — | +4921 ext ! **✗** | — |
//! | `*31#` | DE | — | +4931 ext ! **✗** | — |
//! | `911` | US | +1911! | +1911! | +1911! |
//! | `+49 89 1234567` | DE | +49891234567 | +49891234567 | +49891234567 |
//! | `0049 89 1234567` | DE | +49891234567 | +49891234567 | +49891234567 |
//! | `089 1234567` | DE | +49891234567 | +49891234567 | +49891234567 |
//! | `(089) 123-4567` | DE | +49891234567 | +49891234567 | +49891234567 |
//! | `tel:+49-89-1234567` | DE | +49891234567 | +49891234567 | +49891234567 |
//! | `+49 (0)89 1234567` | DE | +49891234567 | +49891234567 | +49891234567 |
//! | `+49 89 1234567;ext=22` | DE | +49891234567 ext 22 | — **✗** | +49891234567 ext 22 |
//! | `+49 89 1234567 x22` | DE | +49891234567 ext 22 | +49891234567 ext 22 | +49891234567 ext 22 |
//! | `+49 89 1234567 ext. 22` | DE | +49891234567 ext 22 | +49891234567 ext 22 | +49891234567 ext 22 |
//! | `089 1234567-22` | DE | +4989123456722 | +4989123456722 | +4989123456722 |
//! | `06221/4567-12` | DE | +496221456712 | +496221456712 | +496221456712 |
//! | `030 1234567` | DE | +49301234567 | +49301234567 | +49301234567 |
//! | `0171 2345678` | DE | +491712345678 | +491712345678 | +491712345678 |
//! | `+49 171 2345678` | US | +491712345678 | +49712345678 **✗** | +491712345678 |
//! | `+49 89 1234-0` | DE | +498912340 | +498912340 | +498912340 |
//! | `+49 89 1234 999` | DE | +49891234999 | +49891234999 | +49891234999 |
//! | `+49 89 2154 3300` | US | +498921543300 | +498921543300 | +498921543300 |
//! | `+43 89 2154 3300` | DE | +438921543300 | +438921543300 | +438921543300 |
//! | `1234567` | DE | +491234567! | +491234567! | +491234567! |
//! | `+49 1234` | DE | +491234! | +491234! | +491234! |
//! | `+4989123456789012345` | DE | +4989123456789012345! | — **✗** | +4989123456789012345! |
//! | `044 668 18 00` | CH | +41446681800 | +41446681800 | +41446681800 |
//! | `+41 44 668 18 00` | US | +41446681800 | +41446681800 | +41446681800 |
//! | `0041 31 123 45 67` | CH | +41311234567 | +41311234567 | +41311234567 |
//! | `031 123 45 67` | CH | +41311234567 | +41311234567 | +41311234567 |
//! | `079 123 45 67` | CH | +41791234567 | +41791234567 | +41791234567 |
//! | `01 58858 0` | AT | +431588580 | +431588580 | +431588580 |
//! | `+43 1 58858-0` | DE | +431588580 | +431588580 | +431588580 |
//! | `0664 1234567` | AT | +436641234567 | +436641234567 | +436641234567 |
//! | `+43 664 1234567` | US | +436641234567 | +436641234567 | +436641234567 |
//! | `(201) 555-0123` | US | +12015550123 | +12015550123 | +12015550123 |
//! | `650 253 0000` | US | +16502530000 | +16502530000 | +16502530000 |
//! | `1-650-253-0000` | US | +16502530000 | +16502530000 | +16502530000 |
//! | `+1 650-253-0000` | DE | +16502530000 | +16502530000 | +16502530000 |
//! | `011 49 89 1234567` | US | +49891234567 | +49891234567 | +49891234567 |
//! | `+1 650 253 0000 ext. 123` | US | +16502530000 ext 123 | +16502530000 ext 123 | +16502530000 ext 123 |
//! | `(650) 253-0000 x123` | US | +16502530000 ext 123 | +16502530000 ext 123 | +16502530000 ext 123 |
//! | `020 7946 0958` | GB | +442079460958 | +442079460958 | +442079460958 |
//! | `+44 20 7946 0958` | DE | +442079460958 | +442079460958 | +442079460958 |
//! | `07700 900123` | GB | +447700900123! | +447700900123! | +447700900123! |
//! | `+44 7700 900123` | US | +447700900123! | +447700900123! | +447700900123! |
//! | `00 44 20 7946 0958` | DE | +442079460958 | +442079460958 | +442079460958 |
//! | `+33 1 42 76 49 78` | DE | +33142764978 | +33142764978 | +33142764978 |
//! | `+97233142764978` | DE | +97233142764978! | +97233142764978 **✗** | +97233142764978! |
//! | `+3367a829916` | FR | +3367829916! | +33672829916 **✗** | +3367829916! |
//! | `+81 3-1234-5678` | DE | +81312345678 | +81312345678 | +81312345678 |
//! | `+61 2 9876 5432` | DE | +61298765432 | +61298765432 | +61298765432 |
//! | `0011 61 2 9876 5432` | AU | +61298765432 | +61298765432 | +61298765432 |
//! | `+86 10 1234 5678` | DE | +861012345678 | +861012345678 | +861012345678 |
//! | `+78005553535` | RU | +78005553535 | +7005553535! **✗** | +78005553535 |
//! | `+7 800 555 35 35` | US | +78005553535 | +78005553535 | +78005553535 |
//! | `21543300` | DE | +4921543300 | +4921543300 | +4921543300 |
//! | `+49 21543300` | DE | +4921543300 | +4921543300 | +4921543300 |
//! | `+49 9 21543300` | DE | +49921543300 | +49921543300 | +49921543300 |
//! | `+43 9 2154 3300` | DE | +43921543300! | +43921543300! | +43921543300! |
//! | `+43 0 2154 3300` | DE | +4321543300! | +4321543300! | +4321543300! |
//! | `9 21543300` | DE | +49921543300 | +49921543300 | +49921543300 |
//! | `+49 89 21543300 1234567` | DE | +4989215433001234567! | — **✗** | +4989215433001234567! |
//! | `089 21543300 9` | DE | +4989215433009 | +4989215433009 | +4989215433009 |
//! | `0032 2 555 12 12` | (none) | — | — | — |
//! | `3912312312` | (none) | — | — | — |
//! | `anonymous` | DE | — | — | — |
//! | (empty) | DE | — | — | — |
//! | `+` | DE | — | — | — |
//!
//! Summary of the evidence: `rlibphonenumber` answers exactly like libphonenumber on all 75 rows;
//! `phonenumber` differs on 12. It silently corrupts international numbers when the default
//! region is `US` (`+4915112345678` and `+49 171 2345678` become other, *valid* German numbers,
//! `+33142764978` loses a digit), breaks Russian `+7 800` numbers with region `RU`, fails on
//! `;ext=`, reads service codes (`**21#`) as numbers, treats letters as keypad digits and accepts a
//! too-long Israeli number. `rlibphonenumber` is also 2–5× faster per parse (about 0.5 µs). The plugin therefore uses `rlibphonenumber`, pinned to
//! 2.2; `phonenumber` is only a dev-dependency for this comparison.
//!
//! # What [`parse`] accepts
//!
//! - Plain numbers in any common notation: `+49 89 1234567`, `0049 89 1234567`, `089 1234567`,
//!   `(089) 123-4567`, `+49 (0)89 1234567`.
//! - URIs: `tel:+49-89-1234567`, `tel:+49-89-1234567;ext=22`,
//!   `sip:+49891234567@pbx.example;user=phone` (the user part is the number).
//! - Extensions as libphonenumber recognises them (`;ext=22`, `x22`, `ext. 22`, `#22`); a trailing
//!   `-22` is part of the number unless libphonenumber says otherwise.
//!
//! Inputs starting with `+` or `00` are always parsed as international numbers, never with the
//! default region. Empty, anonymous, garbage, control characters and anything longer than
//! [`MAX_NUMBER_LEN`] characters once the URI parts are gone give `None` with bounded work.

use rlibphonenumber::{PHONE_NUMBER_UTIL, PhoneNumberFormat, Region};

/// Longest number (after URI parts are removed) that is parsed at all; longer input is not a
/// phone number.
pub const MAX_NUMBER_LEN: usize = 64;

/// Longest raw input looked at; beyond this nothing is scanned (not even for a URI scheme).
const MAX_RAW_LEN: usize = 1024;

/// A number as libphonenumber understood it.
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed {
    /// E.164 form (`+` and digits), also for an invalid number.
    pub e164: String,
    /// The country calling code (`49` for Germany).
    pub country_code: u16,
    /// The extension, if the input had one (`;ext=22`, `x22`).
    pub extension: Option<String>,
    /// The library's number, for [`Parsed::is_valid`].
    number: rlibphonenumber::PhoneNumber,
}

impl Parsed {
    /// Whether libphonenumber considers the number valid (it exists in the numbering plan).
    /// Computed on demand: it costs about as much as parsing, and caller ID often does not need
    /// it (a number equal to a stored valid number is valid).
    pub fn is_valid(&self) -> bool {
        self.number.is_valid()
    }
}

/// The E.164 form of a valid phone number, `None` for anything else.
///
/// `region` is the ISO 3166 alpha-2 country used for numbers written without a country code (the
/// host's country); an empty or unknown region means such numbers do not parse. Extensions are
/// dropped. Service codes (`110`, `**21#`) and invalid numbers give `None`.
///
/// ```
/// use contact_ms365::phone::normalize;
/// assert_eq!(normalize("089 1234567", "DE").as_deref(), Some("+49891234567"));
/// assert_eq!(normalize("sip:+49891234567@pbx.example;user=phone", "US").as_deref(),
///            Some("+49891234567"));
/// assert_eq!(normalize("+4915112345678", "US").as_deref(), Some("+4915112345678"));
/// assert_eq!(normalize("110", "DE"), None);
/// assert_eq!(normalize("anonymous", "DE"), None);
/// assert_eq!(normalize("089 1234567", ""), None);
/// ```
pub fn normalize(raw: &str, region: &str) -> Option<String> {
    parse(raw, region).filter(Parsed::is_valid).map(|p| p.e164)
}

/// Parses `raw` as delivered by a phone system or stored in a contact; `None` when it is not a
/// phone number at all. Unlike [`normalize`], an invalid number that libphonenumber can still
/// read is returned ([`Parsed::is_valid`] is false), so callers can apply rules for such numbers.
///
/// ```
/// use contact_ms365::phone::parse;
/// let p = parse("tel:+49-89-1234567;ext=22", "DE").unwrap();
/// assert_eq!(p.e164, "+49891234567");
/// assert_eq!(p.extension.as_deref(), Some("22"));
/// assert_eq!(p.country_code, 49);
/// assert!(p.is_valid());
/// assert!(!parse("+43 9 2154 3300", "DE").unwrap().is_valid());
/// assert_eq!(parse("**21#", "DE"), None);
/// ```
pub fn parse(raw: &str, region: &str) -> Option<Parsed> {
    let Cleaned {
        number,
        uri_extension,
    } = clean(raw)?;
    let significant = number.trim_start_matches(['(', ' ', '[']);
    let mut parsed = if significant.starts_with('+') {
        library_parse(number, None)
    } else if let Some(rest) = significant.strip_prefix("00") {
        // `00` is the international prefix almost everywhere; read it so in every region
        // (libphonenumber would not in, e.g., the US, where the prefix is 011).
        let mut international = String::with_capacity(rest.len() + 1);
        international.push('+');
        international.push_str(rest);
        library_parse(&international, None)
    } else {
        library_parse(number, Some(region_of(region)?))
    }?;
    if parsed.extension.is_none() {
        parsed.extension = uri_extension.map(str::to_owned);
    }
    Some(parsed)
}

/// The digits of a number as delivered (URI parts removed), for comparisons on digits alone;
/// `None` when the input is not a phone number (too long, control characters, letters other than
/// an extension marker, or service-code characters `*` and `#`).
///
/// ```
/// use contact_ms365::phone::digits;
/// assert_eq!(digits("tel:+49-89-1234567").as_deref(), Some("49891234567"));
/// assert_eq!(digits("**21#"), None);
/// assert_eq!(digits("anonymous"), None);
/// ```
pub fn digits(raw: &str) -> Option<String> {
    let number = clean(raw)?.number;
    if !number
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '/' | '.'))
    {
        return None;
    }
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    (!digits.is_empty()).then_some(digits)
}

/// The E.164 form of input that is already an international number in plain digits (`+` or
/// `00`, then 7 to 15 digits, optionally grouped with spaces, `-`, `.` or `/`; no extension),
/// without calling the library; `None` for anything else.
///
/// This is exact for comparisons with *valid* E.164 numbers: libphonenumber only removes such
/// punctuation, so if the result equals the E.164 form of a valid number, parsing the input gives
/// that same number. A result that equals no valid number proves nothing: libphonenumber reads
/// `+49 0 89 1234567` as `+49891234567`, so the input must then be parsed. Caller ID uses it to
/// skip the parser for the most common delivery format.
///
/// ```
/// use contact_ms365::phone::plain_international;
/// assert_eq!(plain_international("tel:+49-89-1234567").as_deref(), Some("+49891234567"));
/// assert_eq!(plain_international("sip:0049891234567@pbx").as_deref(), Some("+49891234567"));
/// assert_eq!(plain_international("089 1234567"), None);
/// assert_eq!(plain_international("+49 (0)89 1234567"), None);
/// assert_eq!(plain_international("+49 89 1234567;ext=22"), None);
/// ```
pub fn plain_international(raw: &str) -> Option<String> {
    let Cleaned {
        number,
        uri_extension,
    } = clean(raw)?;
    if uri_extension.is_some() {
        return None;
    }
    let rest = number
        .strip_prefix('+')
        .or_else(|| number.strip_prefix("00"))?;
    let mut e164 = String::with_capacity(16);
    e164.push('+');
    for b in rest.bytes() {
        match b {
            b'0'..=b'9' => e164.push(char::from(b)),
            b' ' | b'-' | b'.' | b'/' => {}
            _ => return None,
        }
    }
    let digits = e164.len() - 1;
    ((7..=15).contains(&digits) && !e164[1..].starts_with('0')).then_some(e164)
}

/// A number candidate with URI parts removed, and the extension a URI parameter (`;ext=22`) gave.
struct Cleaned<'a> {
    number: &'a str,
    uri_extension: Option<&'a str>,
}

/// Removes URI parts and rejects what cannot be a number, before any parsing.
fn clean(raw: &str) -> Option<Cleaned<'_>> {
    if raw.len() > MAX_RAW_LEN {
        return None;
    }
    let s = raw.trim();
    let has_scheme = |scheme: &str| {
        s.len() >= scheme.len()
            && s.as_bytes()[..scheme.len()].eq_ignore_ascii_case(scheme.as_bytes())
    };
    let body = if has_scheme("sip:") || has_scheme("sips:") {
        // sip:USER@HOST;params — the number is the user part (which may carry `;ext=`).
        let rest = &s[s.find(':')? + 1..];
        rest.split('@').next().unwrap_or("")
    } else if has_scheme("tel:") {
        // tel:NUMBER;params
        &s[4..]
    } else {
        // A bare `number@host`, as some systems deliver it.
        s.split('@').next().unwrap_or("")
    };
    let mut parts = body.split(';');
    let number = parts.next().unwrap_or("").trim();
    let uri_extension = parts
        .filter_map(|p| {
            let p = p.trim();
            (p.len() > 4 && p[..4].eq_ignore_ascii_case("ext=")).then(|| &p[4..])
        })
        .find(|e| e.len() <= 16 && e.bytes().all(|b| b.is_ascii_digit()));
    if number.is_empty()
        || number.len() > MAX_NUMBER_LEN
        || number.chars().any(char::is_control)
        || !number.bytes().any(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some(Cleaned {
        number,
        uri_extension,
    })
}

/// `DE` → the library's region; `None` for empty or unknown codes.
fn region_of(region: &str) -> Option<Region> {
    let region = Region::from_code(region.trim()).ok()?;
    PHONE_NUMBER_UTIL.get_country_code_for_region(region)?;
    Some(region)
}

/// The one call into the libphonenumber port.
fn library_parse(number: &str, region: Option<Region>) -> Option<Parsed> {
    let n = PHONE_NUMBER_UTIL.parse(number, region).ok()?;
    let country_code = u16::try_from(n.country_code).ok()?;
    let e164 = n.format_as(PhoneNumberFormat::E164).into_owned();
    let extension = n.extension.clone().filter(|e| !e.is_empty());
    Some(Parsed {
        e164,
        country_code,
        extension,
        number: n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `rlibphonenumber` says, in the table's notation (region passed even for `+` input).
    fn rlib(input: &str, region: &str) -> String {
        let region = Region::from_code(region).ok();
        match PHONE_NUMBER_UTIL.parse(input, region) {
            Ok(n) => {
                let e = n.format_as(PhoneNumberFormat::E164).into_owned();
                let ext = n
                    .extension
                    .clone()
                    .map(|x| format!(" ext {x}"))
                    .unwrap_or_default();
                if n.is_valid() {
                    format!("{e}{ext}")
                } else {
                    format!("{e}{ext}!")
                }
            }
            Err(_) => "—".to_owned(),
        }
    }

    /// What `phonenumber` says, in the table's notation.
    fn pn(input: &str, region: &str) -> String {
        let region = region.parse::<phonenumber::country::Id>().ok();
        match phonenumber::parse(region, input) {
            Ok(n) => {
                let e = n.format().mode(phonenumber::Mode::E164).to_string();
                let ext = n
                    .extension()
                    .map(|x| format!(" ext {}", &**x))
                    .unwrap_or_default();
                if phonenumber::is_valid(&n) {
                    format!("{e}{ext}")
                } else {
                    format!("{e}{ext}!")
                }
            }
            Err(_) => "—".to_owned(),
        }
    }

    /// (input, region, rlibphonenumber, phonenumber, libphonenumber reference).
    const DIFFERENTIAL: &[(&str, &str, &str, &str, &str)] = &[
        (
            "+4915112345678",
            "US",
            "+4915112345678",
            "+495112345678",
            "+4915112345678",
        ),
        (
            "+33142764978",
            "US",
            "+33142764978",
            "+3342764978!",
            "+33142764978",
        ),
        (
            "+78005553535",
            "DE",
            "+78005553535",
            "+78005553535",
            "+78005553535",
        ),
        (
            "8 800 555-35-35",
            "RU",
            "+78005553535",
            "+7005553535!",
            "+78005553535",
        ),
        (
            "+7 495 123-45-67",
            "DE",
            "+74951234567",
            "+74951234567",
            "+74951234567",
        ),
        ("110", "DE", "+49110!", "+49110!", "+49110!"),
        ("112", "DE", "+49112!", "+49112!", "+49112!"),
        ("**21#", "DE", "—", "+4921 ext !", "—"),
        ("*31#", "DE", "—", "+4931 ext !", "—"),
        ("911", "US", "+1911!", "+1911!", "+1911!"),
        (
            "+49 89 1234567",
            "DE",
            "+49891234567",
            "+49891234567",
            "+49891234567",
        ),
        (
            "0049 89 1234567",
            "DE",
            "+49891234567",
            "+49891234567",
            "+49891234567",
        ),
        (
            "089 1234567",
            "DE",
            "+49891234567",
            "+49891234567",
            "+49891234567",
        ),
        (
            "(089) 123-4567",
            "DE",
            "+49891234567",
            "+49891234567",
            "+49891234567",
        ),
        (
            "tel:+49-89-1234567",
            "DE",
            "+49891234567",
            "+49891234567",
            "+49891234567",
        ),
        (
            "+49 (0)89 1234567",
            "DE",
            "+49891234567",
            "+49891234567",
            "+49891234567",
        ),
        (
            "+49 89 1234567;ext=22",
            "DE",
            "+49891234567 ext 22",
            "—",
            "+49891234567 ext 22",
        ),
        (
            "+49 89 1234567 x22",
            "DE",
            "+49891234567 ext 22",
            "+49891234567 ext 22",
            "+49891234567 ext 22",
        ),
        (
            "+49 89 1234567 ext. 22",
            "DE",
            "+49891234567 ext 22",
            "+49891234567 ext 22",
            "+49891234567 ext 22",
        ),
        (
            "089 1234567-22",
            "DE",
            "+4989123456722",
            "+4989123456722",
            "+4989123456722",
        ),
        (
            "06221/4567-12",
            "DE",
            "+496221456712",
            "+496221456712",
            "+496221456712",
        ),
        (
            "030 1234567",
            "DE",
            "+49301234567",
            "+49301234567",
            "+49301234567",
        ),
        (
            "0171 2345678",
            "DE",
            "+491712345678",
            "+491712345678",
            "+491712345678",
        ),
        (
            "+49 171 2345678",
            "US",
            "+491712345678",
            "+49712345678",
            "+491712345678",
        ),
        (
            "+49 89 1234-0",
            "DE",
            "+498912340",
            "+498912340",
            "+498912340",
        ),
        (
            "+49 89 1234 999",
            "DE",
            "+49891234999",
            "+49891234999",
            "+49891234999",
        ),
        (
            "+49 89 2154 3300",
            "US",
            "+498921543300",
            "+498921543300",
            "+498921543300",
        ),
        (
            "+43 89 2154 3300",
            "DE",
            "+438921543300",
            "+438921543300",
            "+438921543300",
        ),
        ("1234567", "DE", "+491234567!", "+491234567!", "+491234567!"),
        ("+49 1234", "DE", "+491234!", "+491234!", "+491234!"),
        (
            "+4989123456789012345",
            "DE",
            "+4989123456789012345!",
            "—",
            "+4989123456789012345!",
        ),
        (
            "044 668 18 00",
            "CH",
            "+41446681800",
            "+41446681800",
            "+41446681800",
        ),
        (
            "+41 44 668 18 00",
            "US",
            "+41446681800",
            "+41446681800",
            "+41446681800",
        ),
        (
            "0041 31 123 45 67",
            "CH",
            "+41311234567",
            "+41311234567",
            "+41311234567",
        ),
        (
            "031 123 45 67",
            "CH",
            "+41311234567",
            "+41311234567",
            "+41311234567",
        ),
        (
            "079 123 45 67",
            "CH",
            "+41791234567",
            "+41791234567",
            "+41791234567",
        ),
        ("01 58858 0", "AT", "+431588580", "+431588580", "+431588580"),
        (
            "+43 1 58858-0",
            "DE",
            "+431588580",
            "+431588580",
            "+431588580",
        ),
        (
            "0664 1234567",
            "AT",
            "+436641234567",
            "+436641234567",
            "+436641234567",
        ),
        (
            "+43 664 1234567",
            "US",
            "+436641234567",
            "+436641234567",
            "+436641234567",
        ),
        (
            "(201) 555-0123",
            "US",
            "+12015550123",
            "+12015550123",
            "+12015550123",
        ),
        (
            "650 253 0000",
            "US",
            "+16502530000",
            "+16502530000",
            "+16502530000",
        ),
        (
            "1-650-253-0000",
            "US",
            "+16502530000",
            "+16502530000",
            "+16502530000",
        ),
        (
            "+1 650-253-0000",
            "DE",
            "+16502530000",
            "+16502530000",
            "+16502530000",
        ),
        (
            "011 49 89 1234567",
            "US",
            "+49891234567",
            "+49891234567",
            "+49891234567",
        ),
        (
            "+1 650 253 0000 ext. 123",
            "US",
            "+16502530000 ext 123",
            "+16502530000 ext 123",
            "+16502530000 ext 123",
        ),
        (
            "(650) 253-0000 x123",
            "US",
            "+16502530000 ext 123",
            "+16502530000 ext 123",
            "+16502530000 ext 123",
        ),
        (
            "020 7946 0958",
            "GB",
            "+442079460958",
            "+442079460958",
            "+442079460958",
        ),
        (
            "+44 20 7946 0958",
            "DE",
            "+442079460958",
            "+442079460958",
            "+442079460958",
        ),
        (
            "07700 900123",
            "GB",
            "+447700900123!",
            "+447700900123!",
            "+447700900123!",
        ),
        (
            "+44 7700 900123",
            "US",
            "+447700900123!",
            "+447700900123!",
            "+447700900123!",
        ),
        (
            "00 44 20 7946 0958",
            "DE",
            "+442079460958",
            "+442079460958",
            "+442079460958",
        ),
        (
            "+33 1 42 76 49 78",
            "DE",
            "+33142764978",
            "+33142764978",
            "+33142764978",
        ),
        (
            "+97233142764978",
            "DE",
            "+97233142764978!",
            "+97233142764978",
            "+97233142764978!",
        ),
        (
            "+3367a829916",
            "FR",
            "+3367829916!",
            "+33672829916",
            "+3367829916!",
        ),
        (
            "+81 3-1234-5678",
            "DE",
            "+81312345678",
            "+81312345678",
            "+81312345678",
        ),
        (
            "+61 2 9876 5432",
            "DE",
            "+61298765432",
            "+61298765432",
            "+61298765432",
        ),
        (
            "0011 61 2 9876 5432",
            "AU",
            "+61298765432",
            "+61298765432",
            "+61298765432",
        ),
        (
            "+86 10 1234 5678",
            "DE",
            "+861012345678",
            "+861012345678",
            "+861012345678",
        ),
        (
            "+78005553535",
            "RU",
            "+78005553535",
            "+7005553535!",
            "+78005553535",
        ),
        (
            "+7 800 555 35 35",
            "US",
            "+78005553535",
            "+78005553535",
            "+78005553535",
        ),
        (
            "21543300",
            "DE",
            "+4921543300",
            "+4921543300",
            "+4921543300",
        ),
        (
            "+49 21543300",
            "DE",
            "+4921543300",
            "+4921543300",
            "+4921543300",
        ),
        (
            "+49 9 21543300",
            "DE",
            "+49921543300",
            "+49921543300",
            "+49921543300",
        ),
        (
            "+43 9 2154 3300",
            "DE",
            "+43921543300!",
            "+43921543300!",
            "+43921543300!",
        ),
        (
            "+43 0 2154 3300",
            "DE",
            "+4321543300!",
            "+4321543300!",
            "+4321543300!",
        ),
        (
            "9 21543300",
            "DE",
            "+49921543300",
            "+49921543300",
            "+49921543300",
        ),
        (
            "+49 89 21543300 1234567",
            "DE",
            "+4989215433001234567!",
            "—",
            "+4989215433001234567!",
        ),
        (
            "089 21543300 9",
            "DE",
            "+4989215433009",
            "+4989215433009",
            "+4989215433009",
        ),
        ("0032 2 555 12 12", "", "—", "—", "—"),
        ("3912312312", "", "—", "—", "—"),
        ("anonymous", "DE", "—", "—", "—"),
        ("", "DE", "—", "—", "—"),
        ("+", "DE", "—", "—", "—"),
    ];

    /// The evidence behind the library choice (see the module documentation).
    #[test]
    fn differential_set() {
        let mut pn_wrong = 0;
        for &(input, region, r, p, right) in DIFFERENTIAL {
            assert_eq!(
                rlib(input, region),
                r,
                "rlibphonenumber on {input:?} ({region})"
            );
            assert_eq!(pn(input, region), p, "phonenumber on {input:?} ({region})");
            assert_eq!(
                r, right,
                "rlibphonenumber differs from libphonenumber on {input:?}"
            );
            pn_wrong += usize::from(p != right);
        }
        assert!(DIFFERENTIAL.len() >= 60);
        assert_eq!(pn_wrong, 12);
    }

    #[test]
    fn every_delivered_format_gives_the_same_number() {
        for input in [
            "+49 89 1234567",
            "0049 89 1234567",
            "089 1234567",
            "(089) 123-4567",
            "tel:+49-89-1234567",
            "TEL:+49-89-1234567",
            "sip:+49891234567@pbx.example;user=phone",
            "sips:+49891234567@pbx.example:5061;transport=tls",
            "sip:089 1234567@pbx.example",
            "+49891234567@pbx.example",
            "  +49 (0)89 1234567  ",
            "+49 89 1234567;ext=22",
            "+49 89 1234567 x22",
            "tel:+49-89-1234567;ext=22",
            "tel:+49-89-1234567;phone-context=example.com;ext=22",
        ] {
            assert_eq!(
                normalize(input, "DE").as_deref(),
                Some("+49891234567"),
                "{input:?}"
            );
        }
    }

    #[test]
    fn extensions_as_libphonenumber_reads_them() {
        for input in [
            "+49 89 1234567;ext=22",
            "+49 89 1234567 x22",
            "+49 89 1234567 ext. 22",
            "tel:+49-89-1234567;ext=22",
            "sip:+49891234567;ext=22@pbx.example",
        ] {
            let p = parse(input, "DE").unwrap();
            assert_eq!(p.e164, "+49891234567", "{input:?}");
            assert_eq!(p.extension.as_deref(), Some("22"), "{input:?}");
        }
        // A trailing `-22` is part of a German number, as libphonenumber says.
        let p = parse("089 1234567-22", "DE").unwrap();
        assert_eq!(p.e164, "+4989123456722");
        assert_eq!(p.extension, None);
    }

    #[test]
    fn international_input_never_uses_the_default_region() {
        assert_eq!(
            normalize("+4915112345678", "US").as_deref(),
            Some("+4915112345678")
        );
        assert_eq!(
            normalize("+33142764978", "US").as_deref(),
            Some("+33142764978")
        );
        assert_eq!(
            normalize("+78005553535", "RU").as_deref(),
            Some("+78005553535")
        );
        // `00` is read as the international prefix even where it is not (US: 011).
        assert_eq!(
            normalize("0049 89 1234567", "US").as_deref(),
            Some("+49891234567")
        );
        assert_eq!(
            normalize("011 49 89 1234567", "US").as_deref(),
            Some("+49891234567")
        );
        // ... and with no region at all.
        assert_eq!(
            normalize("+49 89 1234567", "").as_deref(),
            Some("+49891234567")
        );
        assert_eq!(
            normalize("0049 89 1234567", "").as_deref(),
            Some("+49891234567")
        );
    }

    #[test]
    fn national_numbers_use_the_region() {
        assert_eq!(
            normalize("031 123 45 67", "CH").as_deref(),
            Some("+41311234567")
        );
        assert_eq!(
            normalize("0664 1234567", "AT").as_deref(),
            Some("+436641234567")
        );
        assert_eq!(
            normalize("(650) 253-0000", "US").as_deref(),
            Some("+16502530000")
        );
        assert_eq!(
            normalize("020 7946 0958", "GB").as_deref(),
            Some("+442079460958")
        );
        assert_eq!(
            normalize("089 1234567", "de").as_deref(),
            Some("+49891234567")
        );
        for region in ["", "XX", "ZZ", "DEU", "1"] {
            assert_eq!(normalize("089 1234567", region), None, "{region:?}");
        }
    }

    #[test]
    fn service_codes_and_garbage_are_not_numbers() {
        for input in [
            "110",
            "112",
            "**21#",
            "*31#",
            "#31#089123",
            "anonymous",
            "Anonymous",
            "unknown",
            "restricted",
            "",
            "   ",
            "+",
            "tel:",
            "sip:@pbx.example",
            "sip:anonymous@anonymous.invalid",
            "+49 89 1234567\u{0}",
            "+49 89\n1234567",
            "\u{7f}089 1234567",
            "ÄÖÜ",
            "😀😀😀",
            "+49 1234",
        ] {
            assert_eq!(normalize(input, "DE"), None, "{input:?}");
        }
    }

    #[test]
    fn huge_input_is_rejected_quickly() {
        let huge = "9".repeat(1_000_000);
        assert_eq!(parse(&huge, "DE"), None);
        assert_eq!(digits(&huge), None);
        let long = format!("+49 {}", "1".repeat(MAX_NUMBER_LEN));
        assert_eq!(parse(&long, "DE"), None);
        let sip = format!("sip:+49891234567@{}", "a".repeat(900));
        assert_eq!(normalize(&sip, "DE").as_deref(), Some("+49891234567"));
    }

    #[test]
    fn digits_only_for_plain_numbers() {
        assert_eq!(digits("(089) 123-4567").as_deref(), Some("0891234567"));
        assert_eq!(digits("sip:0891234567@pbx").as_deref(), Some("0891234567"));
        assert_eq!(digits("L0#0891234567"), None);
        assert_eq!(digits("+49 89 1234567 x22"), None);
    }
}
