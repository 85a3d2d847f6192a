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
    if let Some(parsed) = literal_international(raw) {
        return Some(parsed);
    }
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

/// How a region writes its numbers nationally when that is plain: a trunk prefix (`0` in
/// Germany) followed by the national significant number. Lets caller ID read `089 1234567`
/// without the library (see [`plain_national`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrunkRule {
    /// The region's country calling code as digits (`49`).
    country_code: String,
    /// The trunk prefix (`0`).
    trunk: String,
}

impl TrunkRule {
    /// The rule of `region` (ISO 3166 alpha-2), derived from libphonenumber's own example numbers
    /// and kept only when the library agrees on every one of them; `None` for regions whose
    /// national numbers do not start with a plain trunk prefix (the US writes none, Italy keeps
    /// the `0` in the number) or whose numbers the library rewrites when parsing (carrier codes,
    /// inserted digits), and for unknown regions.
    ///
    /// The test: the national formats of the region's examples (one per number type) show one
    /// trunk prefix before the national significant number (or none), no national significant
    /// number starts with `0`, and the library reads the trunk prefix followed by each example's
    /// national significant number as that example.
    ///
    /// ```
    /// use contact_ms365::phone::TrunkRule;
    /// assert!(TrunkRule::for_region("DE").is_some());
    /// assert!(TrunkRule::for_region("IT").is_none()); // the 0 belongs to the number
    /// assert!(TrunkRule::for_region("US").is_none()); // no trunk prefix in national format
    /// assert!(TrunkRule::for_region("").is_none());
    /// ```
    pub fn for_region(region: &str) -> Option<TrunkRule> {
        use rlibphonenumber::{PhoneNumberType as T, get_national_significant_number_owned};
        let lib_region = region_of(region)?;
        let cc = PHONE_NUMBER_UTIL.get_country_code_for_region(lib_region)?;
        let types = [
            T::FixedLine,
            T::Mobile,
            T::TollFree,
            T::PremiumRate,
            T::SharedCost,
            T::VoIP,
            T::PersonalNumber,
            T::Pager,
            T::UAN,
            T::VoiceMail,
        ];
        let examples: Vec<_> = types
            .into_iter()
            .filter_map(|t| {
                PHONE_NUMBER_UTIL
                    .get_example_number_for_type_and_region(lib_region, t)
                    .ok()
            })
            .collect();
        // The trunk prefix, as the national formats show it (some types are formatted without).
        let mut trunk: Option<String> = None;
        for example in &examples {
            let national = example.format_as(PhoneNumberFormat::National);
            let national_digits: String = national.chars().filter(char::is_ascii_digit).collect();
            let nsn = get_national_significant_number_owned(example);
            if nsn.starts_with('0') {
                return None;
            }
            let prefix = national_digits.strip_suffix(nsn.as_str())?;
            match &trunk {
                _ if prefix.is_empty() => {}
                None => trunk = Some(prefix.to_owned()),
                Some(known) if known == prefix => {}
                Some(_) => return None,
            }
        }
        let trunk = trunk?;
        // The library must read the trunk prefix and every example's number back as that number.
        for example in &examples {
            let nsn = get_national_significant_number_owned(example);
            let back = library_parse(&format!("{trunk}{nsn}"), Some(lib_region))?;
            if back.e164 != example.format_as(PhoneNumberFormat::E164) {
                return None;
            }
        }
        Some(TrunkRule {
            country_code: cc.to_string(),
            trunk,
        })
    }
}

impl TrunkRule {
    /// `digits` (E.164 digits of this rule's country, the country code `cc_len` long) with the
    /// trunk prefix kept after the country code, as a number: what the library reads from
    /// national input when it does not remove the prefix (`49891234567` → `490891234567`).
    pub fn with_trunk_kept(&self, digits: &str, cc_len: usize) -> Option<u64> {
        let (cc, nsn) = digits.split_at_checked(cc_len)?;
        if cc != self.country_code || cc.len() + self.trunk.len() + nsn.len() > 19 {
            return None;
        }
        format!("{cc}{}{nsn}", self.trunk).parse().ok()
    }
}

/// The E.164 form of input written nationally in plain digits under `rule` (the trunk prefix,
/// then 6 to 14 digits not starting with `0`, optionally grouped with spaces, `-`, `.`, `/` or
/// parentheses; no extension), without calling the library; `None` for anything else.
///
/// Like [`plain_international`], exact for comparisons with *valid* numbers of the rule's
/// region: when the result equals a valid number, parsing the input with that region gives that
/// same number (the [`TrunkRule`] was checked against the library). A result that equals no
/// valid number proves nothing.
///
/// ```
/// use contact_ms365::phone::{TrunkRule, plain_national};
/// let de = TrunkRule::for_region("DE").unwrap();
/// assert_eq!(plain_national("(089) 123-4567", &de).as_deref(), Some("+49891234567"));
/// assert_eq!(plain_national("tel:089-1234567", &de).as_deref(), Some("+49891234567"));
/// assert_eq!(plain_national("+49 89 1234567", &de), None);
/// assert_eq!(plain_national("0049 89 1234567", &de), None);
/// assert_eq!(plain_national("089 1234567 x22", &de), None);
/// ```
pub fn plain_national(raw: &str, rule: &TrunkRule) -> Option<String> {
    let Cleaned {
        number,
        uri_extension,
    } = clean(raw)?;
    if uri_extension.is_some() {
        return None;
    }
    let mut e164 = String::with_capacity(16);
    e164.push('+');
    e164.push_str(&rule.country_code);
    let mut trunk = rule.trunk.bytes();
    let mut pending_trunk = rule.trunk.len();
    for b in number.bytes() {
        match b {
            b'0'..=b'9' if pending_trunk > 0 => {
                if trunk.next() != Some(b) {
                    return None;
                }
                pending_trunk -= 1;
            }
            b'0'..=b'9' => {
                if e164.len() == 1 + rule.country_code.len() && b == b'0' {
                    return None;
                }
                e164.push(char::from(b));
            }
            b' ' | b'-' | b'.' | b'/' | b'(' | b')' => {}
            _ => return None,
        }
    }
    let national = e164.len() - 1 - rule.country_code.len();
    (pending_trunk == 0 && (6..=14).contains(&national) && e164.len() <= 16).then_some(e164)
}

/// Country calling codes whose national significant numbers libphonenumber reads digit for
/// digit when they do not start with `0`: no national prefix, carrier code or rewriting rule of
/// these countries matches such a number, so `+<code> <digits>` (and, with the country's
/// [`TrunkRule`], `<trunk> <digits>`) parses to exactly those digits or, for the trunk form, to
/// the digits with the trunk prefix kept. Not here: among others `+1` and `+7` (a leading `1` or
/// `8` is a national prefix), `+54` (`15` mobile tokens are rewritten), `+61` and `+352`
/// (carrier codes). The test `literal_country_codes_are_read_literally` checks every code
/// against the library on every 4-digit start at several lengths.
const LITERAL_COUNTRY_CODES: &[u16] = &[
    30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49, 351, 353, 358, 420, 421,
];

/// Whether libphonenumber reads numbers of this country calling code literally (see
/// [`LITERAL_COUNTRY_CODES`]); caller ID then proves a miss without the library.
///
/// ```
/// use contact_ms365::phone::reads_literally;
/// assert!(reads_literally(49));
/// assert!(!reads_literally(1));
/// ```
pub fn reads_literally(country_code: u16) -> bool {
    LITERAL_COUNTRY_CODES.contains(&country_code)
}

/// What the library answers for a plain international number of a country it reads literally
/// (see [`LITERAL_COUNTRY_CODES`]) whose national significant number does not start with `0`
/// and has 7 to 12 digits, built without running the parser: the same E.164 form and the same
/// country code and national number (all that validation looks at).
fn literal_international(raw: &str) -> Option<Parsed> {
    let e164 = plain_international(raw)?;
    let digits = &e164[1..];
    let cc_len = country_code_len(digits)?;
    let (cc, nsn) = digits.split_at(cc_len);
    let country_code: u16 = cc.parse().ok()?;
    if !reads_literally(country_code) || nsn.starts_with('0') || !(7..=12).contains(&nsn.len()) {
        return None;
    }
    let number = rlibphonenumber::PhoneNumber {
        country_code: i32::from(country_code),
        national_number: nsn.parse().ok()?,
        ..Default::default()
    };
    Some(Parsed {
        e164,
        country_code,
        extension: None,
        number,
    })
}

/// Length of the country calling code at the start of E.164 digits (`49891234567` → 2);
/// `None` when no assigned code starts them. Calling codes are prefix-free, so at most one fits.
///
/// ```
/// use contact_ms365::phone::country_code_len;
/// assert_eq!(country_code_len("49891234567"), Some(2));
/// assert_eq!(country_code_len("16502530000"), Some(1));
/// assert_eq!(country_code_len("35312345678"), Some(3));
/// assert_eq!(country_code_len("0"), None);
/// ```
pub fn country_code_len(digits: &str) -> Option<usize> {
    use std::sync::OnceLock;
    static CODES: OnceLock<Vec<bool>> = OnceLock::new();
    let codes = CODES.get_or_init(|| {
        let mut codes = vec![false; 1000];
        for code in PHONE_NUMBER_UTIL.get_supported_calling_codes() {
            if let Some(slot) = usize::try_from(code).ok().and_then(|c| codes.get_mut(c)) {
                *slot = true;
            }
        }
        codes
    });
    (1..=3).find(|&len| {
        digits
            .get(..len)
            .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| d.parse::<usize>().ok())
            .is_some_and(|code| codes[code])
    })
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
            // Compared as bytes: a parameter may start with a multi-byte character, and byte 4
            // is a character boundary only once the first four bytes are ASCII `ext=`.
            (p.len() > 4 && p.as_bytes()[..4].eq_ignore_ascii_case(b"ext=")).then(|| &p[4..])
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

    /// Every code of [`LITERAL_COUNTRY_CODES`]: on every 4-digit start (not `0`) of a national
    /// significant number, at 7 to 12 digits with two different endings, the library reads
    /// `+<code> <digits>` as exactly those digits, and with the country's trunk prefix
    /// (`0<digits>` in its main region) as those digits or those digits with the prefix kept.
    #[test]
    fn literal_country_codes_are_read_literally() {
        for &cc in LITERAL_COUNTRY_CODES {
            let region = PHONE_NUMBER_UTIL
                .get_region_for_country_code(i32::from(cc))
                .unwrap_or_else(|| panic!("+{cc} has no main region"));
            let rule = TrunkRule::for_region(&region.to_string());
            let mut failures = Vec::new();
            for start in 1000..10_000u32 {
                if start.to_string().starts_with('0') {
                    continue;
                }
                for len in 7..=12usize {
                    for ending in ["3141592653", "2718281828"] {
                        let nsn = format!("{start}{}", &ending[..len - 4]);
                        let e164 = format!("+{cc}{nsn}");
                        let library = library_parse(&e164, None);
                        if let Some(p) = &library
                            && p.e164 != e164
                        {
                            failures.push(format!("{e164} → {}", p.e164));
                        }
                        let direct = literal_international(&e164);
                        let reading = |p: &Parsed| (p.e164.clone(), p.country_code, p.is_valid());
                        if direct.as_ref().map(reading) != library.as_ref().map(reading) {
                            failures.push(format!("{e164}: read directly as {direct:?}"));
                        }
                        let Some(rule) = &rule else { continue };
                        let national = format!("{}{nsn}", rule.trunk);
                        if let Some(p) = library_parse(&national, Some(region)) {
                            let kept = format!("+{cc}{}{nsn}", rule.trunk);
                            if p.e164 != e164 && p.e164 != kept {
                                failures.push(format!("{national} ({region}) → {}", p.e164));
                            }
                        }
                    }
                }
            }
            assert!(
                failures.is_empty(),
                "+{cc}: {} rewritten, e.g. {:?}",
                failures.len(),
                &failures[..failures.len().min(5)]
            );
        }
    }

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
