//! Issue 4, end to end: Outlook contacts synced from the emulator into the real plugin, loaded by
//! the real demo host in scripted mode; caller ID, phonebook search, delta sync, the snapshot,
//! late callers and Graph faults.
//!
//! Every test starts its own emulator (random port) and its own demo host with a fresh data
//! folder, signs Adele in through the browser flow (the "browser" is `curl` following the
//! redirects) and waits for the integration to be active. Waits are hang guards only; the only
//! timing checks are lower bounds on the emulator's request log (a `Retry-After` was honoured),
//! which a slow machine can only make larger.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use contact_ms365_e2e::{
    PluginsDir, ScriptHost, percent_decode,
    story::{self, Story, show},
};
use ms365_emulator::{
    EmulatorHandle, Fault, FaultRule, RequestLogEntry,
    tenant::{
        ADELE_CONTACT_ANNA_ID, ADELE_CONTACT_JUERGEN_ID, ADELE_CONTACT_RENEE_ID,
        ADELE_CONTACT_RETO_ID, ADELE_CONTACT_SWITCHBOARD_ID, ADELE_CONTACT_ZOE_ID,
        ADELE_CONTACTS_FOLDER_ID, ADELE_UPN, ADELE_VIP_FOLDER_ID, DEFAULT_CONTACTS_PER_USER,
    },
};
use serde_json::{Value, json};

/// Hang guard for waits on events.
const GUARD: Duration = Duration::from_secs(90);
/// Ids of Adele's fixed contacts not exported as constants (see the emulator's tenant docs).
const PETRA_ID: &str = "AAMkADAw01LTZmYWUtNDdkNC1hMDZiLTU1OGY5OTZhYmY4OABGAAAAAAAiQ8W967B7TKBjgx9rVEURBwAiIsqMbYjsT5eT7KzowPTAAAAAAEOAAAiIsqMbYjsT5eT7KzowPTAAAEGAAAAAAC00000007AAA=";
const THOMAS_ID: &str = "AAMkADAw01LTZmYWUtNDdkNC1hMDZiLTU1OGY5OTZhYmY4OABGAAAAAAAiQ8W967B7TKBjgx9rVEURBwAiIsqMbYjsT5eT7KzowPTAAAAAAEOAAAiIsqMbYjsT5eT7KzowPTAAAEGAAAAAAC00000008AAA=";
const FRANCOIS_ID: &str = "AAMkADAw01LTZmYWUtNDdkNC1hMDZiLTU1OGY5OTZhYmY4OABGAAAAAAAiQ8W967B7TKBjgx9rVEURBwAiIsqMbYjsT5eT7KzowPTAAAAAAEOAAAiIsqMbYjsT5eT7KzowPTAAAEGAAAAAAC00000003AAA=";
const LUKASZ_ID: &str = "AAMkADAw01LTZmYWUtNDdkNC1hMDZiLTU1OGY5OTZhYmY4OABGAAAAAAAiQ8W967B7TKBjgx9rVEURBwAiIsqMbYjsT5eT7KzowPTAAAAAAEOAAAiIsqMbYjsT5eT7KzowPTAAAEGAAAAAAC00000004AAA=";
const TOM_ID: &str = "AAMkADAw01LTZmYWUtNDdkNC1hMDZiLTU1OGY5OTZhYmY4OABGAAAAAAAiQ8W967B7TKBjgx9rVEURBwAiIsqMbYjsT5eT7KzowPTAAAAAAEOAAAiIsqMbYjsT5eT7KzowPTAAAEGAAAAAAC00000009AAA=";
const OLIVIA_ID: &str = "AAMkADAw01LTZmYWUtNDdkNC1hMDZiLTU1OGY5OTZhYmY4OABGAAAAAAAiQ8W967B7TKBjgx9rVEURBwAiIsqMbYjsT5eT7KzowPTAAAAAAEOAAAiIsqMbYjsT5eT7KzowPTAAAEGAAAAAAC00000010AAA=";
const KATHARINA_ID: &str = "AAMkADAw01LTZmYWUtNDdkNC1hMDZiLTU1OGY5OTZhYmY4OABGAAAAAAAiQ8W967B7TKBjgx9rVEURBwAiIsqMbYjsT5eT7KzowPTAAAAAAEOAAAiIsqMbYjsT5eT7KzowPTAAAEGAAAAAAC00000013AAA=";
const SOEREN_ID: &str = "AAMkADAw01LTZmYWUtNDdkNC1hMDZiLTU1OGY5OTZhYmY4OABGAAAAAAAiQ8W967B7TKBjgx9rVEURBwAiIsqMbYjsT5eT7KzowPTAAAAAAEOAAAiIsqMbYjsT5eT7KzowPTAAAEGAAAAAAC00000014AAA=";

// ------------------------------------------------------------------------------------------
// Setup

/// One emulator, the plugins folder with the real plugin, a data folder kept across restarts,
/// and the running demo host.
type Setup = Story;

fn spawn_host(plugins: &PluginsDir, data_dir: &Path) -> ScriptHost {
    story::host_builder(plugins).data_dir(data_dir).spawn()
}

fn context_op() -> Value {
    story::context_op()
}

fn wait_integration(host: &mut ScriptHost, want: &str) -> Value {
    story::wait_integration(host, want)
}

/// Emulator (with `prepare` applied to the tenant before anyone signs in), host, sign-in and
/// one complete `sync`; returns the setup and that sync's reply.
fn signed_in_and_synced(prepare: impl FnOnce(&EmulatorHandle)) -> (Setup, Value) {
    let emu = story::emulator();
    prepare(&emu);
    let mut setup = Story::signed_in(emu);
    let sync = setup.host.send_ok(json!({"op": "sync"}));
    let expected = setup.emu.control().contact_count(ADELE_UPN).unwrap() as u64;
    assert_eq!(sync["contacts"], expected, "{sync}");
    (setup, sync)
}

fn plugin_data_dir(data_dir: &Path) -> PathBuf {
    story::plugin_data_dir(data_dir)
}

fn snapshot_path(data_dir: &Path) -> PathBuf {
    plugin_data_dir(data_dir).join(contact_ms365::snapshot::SNAPSHOT_FILE)
}

// ------------------------------------------------------------------------------------------
// Ops

fn call(host: &mut ScriptHost, call_id: &str, number: &str) -> Value {
    let reply = host.send_ok(json!({"op": "incoming_call", "call_id": call_id, "number": number}));
    reply["caller"].clone()
}

/// `incoming_call` must find `contact_id` through its `number_type` number, reporting the
/// incoming number as `e164` and `extension`.
fn expect_caller(
    host: &mut ScriptHost,
    number: &str,
    contact_id: &str,
    number_type: &str,
    e164: &str,
    extension: Option<&str>,
) -> Value {
    let caller = call(host, "c-expect", number);
    assert!(
        caller.is_object(),
        "{number:?} should find {contact_id}, got no caller"
    );
    assert_eq!(caller["contact_id"], contact_id, "{number:?}: {caller}");
    assert_eq!(caller["number_type"], number_type, "{number:?}: {caller}");
    assert_eq!(caller["number"], e164, "{number:?}: {caller}");
    assert_eq!(
        caller["extension"],
        json!(extension),
        "{number:?}: {caller}"
    );
    assert_eq!(caller["source"], "outlook", "{number:?}: {caller}");
    caller
}

fn expect_nobody(host: &mut ScriptHost, number: &str) {
    let reply =
        host.send_ok(json!({"op": "incoming_call", "call_id": "c-nobody", "number": number}));
    assert_eq!(
        reply["caller"],
        Value::Null,
        "{number:?} should be unknown: {reply}"
    );
}

/// A number in the Fabrikam switchboard's range (`+49 89 1234-0` plus 1..5 digits) whose own
/// contact is gone: rule 2 answers it as the company with the extra digits as extension.
fn expect_switchboard_extension(host: &mut ScriptHost, number: &str, e164: &str, ext: &str) {
    expect_caller(
        host,
        number,
        ADELE_CONTACT_SWITCHBOARD_ID,
        "business",
        e164,
        Some(ext),
    );
}

fn search(host: &mut ScriptHost, query: &str, limit: u32) -> Vec<Value> {
    let reply = host.send_ok(json!({"op": "search", "query": query, "limit": limit}));
    reply["results"]
        .as_array()
        .unwrap_or_else(|| panic!("search {query:?}: {reply}"))
        .clone()
}

fn ids(results: &[Value]) -> Vec<String> {
    results
        .iter()
        .map(|r| r["contact_id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn position(results: &[Value], id: &str) -> Option<usize> {
    results.iter().position(|r| r["contact_id"] == id)
}

fn sync(host: &mut ScriptHost) -> Value {
    host.send_ok(json!({"op": "sync"}))
}

fn counts(reply: &Value) -> (u64, u64, u64, u64) {
    let n = |k: &str| {
        reply[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} in {reply}"))
    };
    (n("contacts"), n("added"), n("updated"), n("removed"))
}

// ------------------------------------------------------------------------------------------
// Request log helpers

fn query_map(query: Option<&str>) -> BTreeMap<String, String> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn is_folder_listing(e: &RequestLogEntry) -> bool {
    e.path == "/v1.0/me/contactFolders" || e.path.ends_with("/childFolders")
}

fn is_contacts_delta(e: &RequestLogEntry) -> bool {
    e.path.ends_with("/contacts/delta")
}

fn delta_token(e: &RequestLogEntry) -> Option<String> {
    query_map(e.query.as_deref()).remove("$deltatoken")
}

/// The folders' delta links kept in the snapshot, as (decoded path, `$deltatoken`).
fn snapshot_delta_links(data_dir: &Path, base_url: &str) -> BTreeSet<(String, String)> {
    let snap = contact_ms365::snapshot::read_json(&snapshot_path(data_dir)).unwrap();
    let folders = snap["mailbox"]["folders"]
        .as_object()
        .unwrap_or_else(|| panic!("snapshot without folders: {snap}"));
    folders
        .values()
        .map(|f| {
            let link = f["delta_link"]
                .as_str()
                .unwrap_or_else(|| panic!("folder without delta link: {f}"));
            let rest = link
                .strip_prefix(base_url)
                .unwrap_or_else(|| panic!("{link} is not on {base_url}"));
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            let token = query_map(Some(query))
                .remove("$deltatoken")
                .unwrap_or_else(|| panic!("delta link without $deltatoken: {link}"));
            (percent_decode(path), token)
        })
        .collect()
}

/// Seconds since the epoch of an RFC 3339 UTC timestamp with second precision
/// (`2025-01-31T12:00:00Z`), as the emulator logs them.
fn epoch_secs(rfc3339: &str) -> i64 {
    let b = rfc3339.as_bytes();
    assert!(
        b.len() >= 20 && b[4] == b'-' && b[10] == b'T' && rfc3339.ends_with('Z'),
        "{rfc3339}"
    );
    let n = |r: std::ops::Range<usize>| rfc3339[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    let (hh, mm, ss) = (n(11..13), n(14..16), n(17..19));
    // Days from civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + hh * 3600 + mm * 60 + ss
}

/// An HTTP date (`Wed, 21 Oct 2015 07:28:00 GMT`) for `secs` since the epoch.
fn http_date(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(m - 1) as usize];
    format!(
        "{weekday}, {d:02} {month} {y} {:02}:{:02}:{:02} GMT",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

// ------------------------------------------------------------------------------------------
// Tests

/// After `sync`, every number of a contact, in every format a phone system delivers (E.164
/// with spaces, `00`, national, punctuated, `tel:`, `sip:`, with an extension, with a PBX
/// outside-line prefix), returns that contact with the field it came from (`number_type`);
/// contacts in nested folders (Kunden, VIP) count; a switchboard number `-0` plus an extension
/// is answered with the company and the extension.
#[test]
fn caller_id_finds_every_number_in_every_delivered_format() {
    let (mut s, _) = signed_in_and_synced(|_| {});
    let host = &mut s.host;

    let anna_business = "+49891234567";
    let anna_mobile = "+491712345678";
    let cases: &[(&str, &str, &str, &str)] = &[
        // Anna Müller, business `089 1234567` (stored without a country code).
        (
            "+49 89 1234567",
            ADELE_CONTACT_ANNA_ID,
            "business",
            anna_business,
        ),
        (
            "+49891234567",
            ADELE_CONTACT_ANNA_ID,
            "business",
            anna_business,
        ),
        (
            "0049 89 1234567",
            ADELE_CONTACT_ANNA_ID,
            "business",
            anna_business,
        ),
        (
            "089 1234567",
            ADELE_CONTACT_ANNA_ID,
            "business",
            anna_business,
        ),
        (
            "(089) 123-4567",
            ADELE_CONTACT_ANNA_ID,
            "business",
            anna_business,
        ),
        (
            "+49 (0)89 1234567",
            ADELE_CONTACT_ANNA_ID,
            "business",
            anna_business,
        ),
        (
            "tel:+49-89-1234567",
            ADELE_CONTACT_ANNA_ID,
            "business",
            anna_business,
        ),
        (
            "sip:+49891234567@pbx.example;user=phone",
            ADELE_CONTACT_ANNA_ID,
            "business",
            anna_business,
        ),
        // Anna Müller, mobile `0171 2345678`.
        (
            "+49 171 2345678",
            ADELE_CONTACT_ANNA_ID,
            "mobile",
            anna_mobile,
        ),
        (
            "0049 171 2345678",
            ADELE_CONTACT_ANNA_ID,
            "mobile",
            anna_mobile,
        ),
        ("0171 2345678", ADELE_CONTACT_ANNA_ID, "mobile", anna_mobile),
        (
            "(0171) 234-5678",
            ADELE_CONTACT_ANNA_ID,
            "mobile",
            anna_mobile,
        ),
        (
            "tel:+49-171-2345678",
            ADELE_CONTACT_ANNA_ID,
            "mobile",
            anna_mobile,
        ),
        (
            "sip:+491712345678@pbx.example;user=phone",
            ADELE_CONTACT_ANNA_ID,
            "mobile",
            anna_mobile,
        ),
        // Zoë Ackermann, business `(089) 123-4568`.
        (
            "+49 89 1234568",
            ADELE_CONTACT_ZOE_ID,
            "business",
            "+49891234568",
        ),
        (
            "089 1234568",
            ADELE_CONTACT_ZOE_ID,
            "business",
            "+49891234568",
        ),
        // Jürgen Weiß, business `+49 89 1234567-22`: a number of its own, not Anna's + ext.
        (
            "+49 89 1234567-22",
            ADELE_CONTACT_JUERGEN_ID,
            "business",
            "+4989123456722",
        ),
        (
            "089 123456722",
            ADELE_CONTACT_JUERGEN_ID,
            "business",
            "+4989123456722",
        ),
        // Fabrikam Zentrale, switchboard `+49 89 1234-0`, called exactly.
        (
            "+49 89 1234-0",
            ADELE_CONTACT_SWITCHBOARD_ID,
            "business",
            "+498912340",
        ),
        (
            "089 12340",
            ADELE_CONTACT_SWITCHBOARD_ID,
            "business",
            "+498912340",
        ),
        // Petra Schmidt: business `0049 89 2765432`, home `089 2123456`.
        ("+49 89 2765432", PETRA_ID, "business", "+49892765432"),
        ("tel:+49-89-2123456", PETRA_ID, "home", "+49892123456"),
        ("089 2123456", PETRA_ID, "home", "+49892123456"),
        // Thomas Becker, business `+49 (0)89 2345678`.
        ("089 2345678", THOMAS_ID, "business", "+49892345678"),
        // François Dubois: business `+33 1 42 68 53 00`, mobile `+33 6 12 34 56 78`.
        (
            "0033 1 42 68 53 00",
            FRANCOIS_ID,
            "business",
            "+33142685300",
        ),
        ("+33612345678", FRANCOIS_ID, "mobile", "+33612345678"),
        // Łukasz Nowak, mobile `+48 601 234 567`.
        ("0048 601 234 567", LUKASZ_ID, "mobile", "+48601234567"),
        // Tom Smith: business `+1 (425) 555-0100 x22`, mobile `+1 206 555 0123`.
        ("+1 425 555 0100", TOM_ID, "business", "+14255550100"),
        ("001 206 555 0123", TOM_ID, "mobile", "+12065550123"),
        // Olivia Brown, business `+44 20 7946 0018`.
        ("0044 20 7946 0018", OLIVIA_ID, "business", "+442079460018"),
        // Nested folder "Kunden": Reto Keller, Katharina Gruber, Sören Lindqvist (home).
        (
            "+41 44 268 18 00",
            ADELE_CONTACT_RETO_ID,
            "business",
            "+41442681800",
        ),
        (
            "0041 44 268 18 00",
            ADELE_CONTACT_RETO_ID,
            "business",
            "+41442681800",
        ),
        ("+43 1 2531140", KATHARINA_ID, "business", "+4312531140"),
        ("+49 30 12345678", SOEREN_ID, "home", "+493012345678"),
        ("030 12345678", SOEREN_ID, "home", "+493012345678"),
        // Nested folder "VIP" (inside Kunden): Renée Fischer.
        (
            "040 2234567",
            ADELE_CONTACT_RENEE_ID,
            "business",
            "+49402234567",
        ),
        (
            "+49 160 2988776",
            ADELE_CONTACT_RENEE_ID,
            "mobile",
            "+491602988776",
        ),
        (
            "sip:+491602988776@pbx.example;user=phone",
            ADELE_CONTACT_RENEE_ID,
            "mobile",
            "+491602988776",
        ),
    ];
    let run_all = |host: &mut ScriptHost| {
        for &(number, id, number_type, e164) in cases {
            expect_caller(host, number, id, number_type, e164, None);
        }
        // Names and fields of the answer.
        let anna = expect_caller(
            host,
            "089 1234567",
            ADELE_CONTACT_ANNA_ID,
            "business",
            anna_business,
            None,
        );
        assert_eq!(anna["display_name"], "Anna Müller", "{anna}");
        assert_eq!(anna["company"], "Müller & Söhne GmbH", "{anna}");
        let renee = call(host, "c-renee", "+49 40 2234567");
        assert_eq!(renee["display_name"], "Renée Fischer", "{renee}");
        let reto = call(host, "c-reto", "+41 44 268 18 00");
        assert_eq!(reto["display_name"], "Reto Keller", "{reto}");

        // An extension in the input is reported with the contact of the base number.
        expect_caller(
            host,
            "tel:+49-89-1234567;ext=22",
            ADELE_CONTACT_ANNA_ID,
            "business",
            anna_business,
            Some("22"),
        );
        expect_caller(
            host,
            "+49 89 1234567 x22",
            ADELE_CONTACT_ANNA_ID,
            "business",
            anna_business,
            Some("22"),
        );
        // Company number + extension: the switchboard `+49 89 1234-0` and 1..5 more digits.
        let fabrikam = expect_caller(
            host,
            "+49 89 1234 999",
            ADELE_CONTACT_SWITCHBOARD_ID,
            "business",
            "+49891234999",
            Some("999"),
        );
        assert_eq!(fabrikam["display_name"], "Fabrikam Zentrale", "{fabrikam}");
        assert_eq!(fabrikam["company"], "Fabrikam AG", "{fabrikam}");
        expect_caller(
            host,
            "tel:+49-89-1234-999",
            ADELE_CONTACT_SWITCHBOARD_ID,
            "business",
            "+49891234999",
            Some("999"),
        );
        expect_caller(
            host,
            "089 1234 999",
            ADELE_CONTACT_SWITCHBOARD_ID,
            "business",
            "+49891234999",
            Some("999"),
        );
    };
    run_all(host);

    // A PBX that puts an outside-line prefix before external numbers.
    let reply = host.send_ok(json!({"op": "settings", "outside_line_prefixes": ["0", "L0#"]}));
    assert_eq!(reply["state"]["microsoft_integration"], "active", "{reply}");
    // Everything above still works (the number as delivered is tried first) ...
    run_all(host);
    // ... and the number is found once the prefix is removed; the answer carries the number
    // as E.164 (it was matched exactly, not by its last digits).
    let prefixed: &[(&str, &str, &str, &str)] = &[
        (
            "00891234567",
            ADELE_CONTACT_ANNA_ID,
            "business",
            anna_business,
        ),
        (
            "0089 1234567",
            ADELE_CONTACT_ANNA_ID,
            "business",
            anna_business,
        ),
        ("001712345678", ADELE_CONTACT_ANNA_ID, "mobile", anna_mobile),
        (
            "0+49 89 1234567",
            ADELE_CONTACT_ANNA_ID,
            "business",
            anna_business,
        ),
        (
            "L0#0891234567",
            ADELE_CONTACT_ANNA_ID,
            "business",
            anna_business,
        ),
        (
            "L0#+491602988776",
            ADELE_CONTACT_RENEE_ID,
            "mobile",
            "+491602988776",
        ),
        (
            "tel:00891234568",
            ADELE_CONTACT_ZOE_ID,
            "business",
            "+49891234568",
        ),
    ];
    for &(number, id, number_type, e164) in prefixed {
        expect_caller(host, number, id, number_type, e164, None);
    }
    expect_caller(
        host,
        "00891234999",
        ADELE_CONTACT_SWITCHBOARD_ID,
        "business",
        "+49891234999",
        Some("999"),
    );
    assert!(s.host.quit().success());
}

/// Anonymous, empty and garbage input, service codes, and numbers nobody has give `caller:
/// null` (never an error); a valid number from another country never matches a German one
/// with the same digits.
#[test]
fn unknown_anonymous_garbage_and_foreign_numbers_give_no_caller() {
    let (mut s, _) = signed_in_and_synced(|emu| {
        emu.control()
            .add_contact(
                ADELE_UPN,
                None,
                &json!({
                    "displayName": "Exporthaus München",
                    "businessPhones": ["+49 89 2154 3300"],
                }),
            )
            .unwrap();
    });
    let host = &mut s.host;
    let long_digits = "1".repeat(5000);
    let control_chars = "089\u{0}1234567";
    for number in [
        "",
        "   ",
        "anonymous",
        "Anonymous",
        "unknown",
        "restricted",
        "private",
        "sip:anonymous@anonymous.invalid",
        "tel:",
        "sip:",
        "+",
        "0",
        "00",
        "+49",
        "**21#",
        "*31#",
        "110",
        "112",
        "abc",
        "garbage 💥 ☎",
        "😀😀😀",
        "{\"number\": 1}",
        "<script>",
        control_chars,
        long_digits.as_str(),
        // Nobody's numbers.
        "+49 89 9999999",
        "+49 30 29998877",
    ] {
        expect_nobody(host, number);
    }
    // The German number is found ...
    let found = call(host, "c-de", "+49 89 2154 3300");
    assert_eq!(found["display_name"], "Exporthaus München", "{found}");
    // ... the same digits after another country code are not (valid or not).
    for number in [
        "+43 89 2154 3300",
        "0043 89 2154 3300",
        "+43 89 1234567",
        "+44 89 1234567",
        "+33 8 91 23 45 67",
        "+41 89 1234567",
        "+1 089 1234567",
        // Reto's Swiss number with the German country code.
        "+49 44 268 18 00",
    ] {
        expect_nobody(host, number);
    }
    let state = host.send_ok(json!({"op": "state"}));
    assert_eq!(state["state"]["microsoft_integration"], "active", "{state}");
    assert!(s.host.quit().success());
}

/// Phonebook search: case- and accent-insensitive, prefixes of any word of name, company and
/// e-mail, digits in any format, `limit` honoured, ranking exact word > prefix of the first
/// word > prefix of another word, results with all numbers and e-mails, nested folders too.
#[test]
fn search_folds_accents_matches_digits_honours_limit_and_ranks() {
    let (mut s, _) = signed_in_and_synced(|emu| {
        let c = emu.control();
        for (given, surname) in [("Ann", "Example"), ("Bob", "Anners")] {
            c.add_contact(
                ADELE_UPN,
                None,
                &json!({
                    "displayName": format!("{given} {surname}"),
                    "givenName": given,
                    "surname": surname,
                }),
            )
            .unwrap();
        }
    });
    let host = &mut s.host;

    // Accents and case.
    for (query, id) in [
        ("muller", ADELE_CONTACT_ANNA_ID),
        ("Müller", ADELE_CONTACT_ANNA_ID),
        ("MULLER", ADELE_CONTACT_ANNA_ID),
        ("mül", ADELE_CONTACT_ANNA_ID),
        ("zoe", ADELE_CONTACT_ZOE_ID),
        ("ZOË", ADELE_CONTACT_ZOE_ID),
        ("lukasz", LUKASZ_ID),
        ("Łukasz", LUKASZ_ID),
        ("jurgen", ADELE_CONTACT_JUERGEN_ID),
        ("weiss", ADELE_CONTACT_JUERGEN_ID),
        ("francois", FRANCOIS_ID),
        ("societe", FRANCOIS_ID),
        ("soren", SOEREN_ID),
        // Nested folders.
        ("reto", ADELE_CONTACT_RETO_ID),
        ("keller treuhand", ADELE_CONTACT_RETO_ID),
        ("renee", ADELE_CONTACT_RENEE_ID),
        ("fischer hold", ADELE_CONTACT_RENEE_ID),
        // Company and e-mail words.
        ("backerei", ADELE_CONTACT_ZOE_ID),
        ("poczta", LUKASZ_ID),
        ("northwind", TOM_ID),
        ("anna mull", ADELE_CONTACT_ANNA_ID),
        // Digits in any format.
        ("0171 2345678", ADELE_CONTACT_ANNA_ID),
        ("+49 171 234", ADELE_CONTACT_ANNA_ID),
        ("1712345678", ADELE_CONTACT_ANNA_ID),
        ("089 1234567", ADELE_CONTACT_ANNA_ID),
        ("(089) 123-4567", ADELE_CONTACT_ANNA_ID),
        ("2765432", PETRA_ID),
        ("089 2123456", PETRA_ID),
        ("+41 44 268", ADELE_CONTACT_RETO_ID),
        ("2988776", ADELE_CONTACT_RENEE_ID),
    ] {
        let results = search(host, query, 200);
        assert!(
            position(&results, id).is_some(),
            "{query:?} should find {id}: {:?}",
            ids(&results)
        );
    }
    for query in ["nosuchname", "zzzzzz", "0000000000", "anna nosuchword"] {
        assert_eq!(search(host, query, 200), Vec::<Value>::new(), "{query:?}");
    }
    // Digits match numbers only: Anna's business digits also find Jürgen (`…1234567-22`).
    let found = search(host, "+49 89 1234567", 200);
    assert!(
        position(&found, ADELE_CONTACT_ANNA_ID).is_some(),
        "{found:?}"
    );
    assert!(
        position(&found, ADELE_CONTACT_JUERGEN_ID).is_some(),
        "{found:?}"
    );
    assert!(
        position(&found, ADELE_CONTACT_ZOE_ID).is_none(),
        "{found:?}"
    );

    // Results carry every number (E.164) and every e-mail.
    let results = search(host, "anna muller", 200);
    let anna = &results[position(&results, ADELE_CONTACT_ANNA_ID).unwrap()];
    assert_eq!(anna["display_name"], "Anna Müller", "{anna}");
    assert_eq!(anna["company"], "Müller & Söhne GmbH", "{anna}");
    assert_eq!(anna["source"], "outlook", "{anna}");
    assert_eq!(
        anna["numbers"],
        json!([
            {"number": "+49891234567", "type": "business"},
            {"number": "+491712345678", "type": "mobile"},
        ]),
        "{anna}"
    );
    assert_eq!(
        anna["emails"],
        json!(["anna.mueller@mueller-soehne.example"]),
        "{anna}"
    );
    let petra = search(host, "petra schmidt", 200);
    let petra = &petra[position(&petra, PETRA_ID).unwrap()];
    assert_eq!(
        petra["numbers"],
        json!([
            {"number": "+49892765432", "type": "business"},
            {"number": "+49892123456", "type": "home"},
        ]),
        "{petra}"
    );

    // Limit.
    let all = search(host, "a", 200);
    assert!(all.len() > 3, "{:?}", ids(&all));
    let three = search(host, "a", 3);
    assert_eq!(three.len(), 3, "{:?}", ids(&three));
    assert_eq!(ids(&three), ids(&all)[..3], "a limit cuts the same ranking");
    assert_eq!(search(host, "a", 1).len(), 1);
    assert_eq!(search(host, "anna", 0), Vec::<Value>::new());

    // Ranking: "ann" is a whole word of "Ann Example" (0), a prefix of the first word of
    // "Anna Müller" (1), a prefix of another word of "Bob Anners" (2).
    let ranked = search(host, "ann", 200);
    let pos = |name: &str| {
        ranked
            .iter()
            .position(|r| r["display_name"] == name)
            .unwrap_or_else(|| panic!("{name} not found: {ranked:?}"))
    };
    assert_eq!(pos("Ann Example"), 0, "{ranked:?}");
    assert!(pos("Anna Müller") < pos("Bob Anners"), "{ranked:?}");
    // Equal scores: alphabetical by name ("Fabrikam Zentrale" before "Jürgen Weiß", both with
    // the whole word "fabrikam").
    let fabrikam = search(host, "fabrikam", 200);
    let fz = position(&fabrikam, ADELE_CONTACT_SWITCHBOARD_ID).unwrap();
    let jw = position(&fabrikam, ADELE_CONTACT_JUERGEN_ID).unwrap();
    assert!(fz < jw, "{:?}", ids(&fabrikam));
    assert!(s.host.quit().success());
}

/// Changes in the tenant arrive with the next `sync`: a new contact (also in the nested VIP
/// folder) is found, a changed one is updated (its old number no longer matches), a deleted one
/// is gone (its numbers and its name no longer found); the counts say so.
#[test]
fn tenant_changes_arrive_with_the_next_sync() {
    let (mut s, _) = signed_in_and_synced(|_| {});
    let control = s.emu.control().clone();
    let host = &mut s.host;
    let base = DEFAULT_CONTACTS_PER_USER as u64;

    // Added.
    expect_nobody(host, "+49 30 2556677");
    let new_id = control
        .add_contact(
            ADELE_UPN,
            None,
            &json!({
                "displayName": "Neu Kontakt",
                "givenName": "Neu",
                "surname": "Kontakt",
                "businessPhones": ["+49 30 2556677"],
                "mobilePhone": "0176 21234567",
            }),
        )
        .unwrap();
    let reply = sync(host);
    assert_eq!(counts(&reply), (base + 1, 1, 0, 0), "{reply}");
    expect_caller(
        host,
        "030 2556677",
        &new_id,
        "business",
        "+49302556677",
        None,
    );
    expect_caller(
        host,
        "+49 176 21234567",
        &new_id,
        "mobile",
        "+4917621234567",
        None,
    );
    assert!(position(&search(host, "kontakt", 20), &new_id).is_some());

    // Added in a nested folder, and changed.
    let vip_id = control
        .add_contact(
            ADELE_UPN,
            Some(ADELE_VIP_FOLDER_ID),
            &json!({"displayName": "Vera Wichtig", "homePhones": ["+49 30 2667788"]}),
        )
        .unwrap();
    control
        .update_contact(
            Some(ADELE_UPN),
            ADELE_CONTACT_ZOE_ID,
            &json!({"displayName": "Zoë Ackermann-Berg", "businessPhones": ["+49 89 2776655"]}),
        )
        .unwrap();
    let reply = sync(host);
    assert_eq!(counts(&reply), (base + 2, 1, 1, 0), "{reply}");
    expect_caller(host, "030 2667788", &vip_id, "home", "+49302667788", None);
    let zoe = expect_caller(
        host,
        "089 2776655",
        ADELE_CONTACT_ZOE_ID,
        "business",
        "+49892776655",
        None,
    );
    assert_eq!(zoe["display_name"], "Zoë Ackermann-Berg", "{zoe}");
    // Her old number is no longer hers; it lies in Fabrikam's switchboard range.
    expect_switchboard_extension(host, "(089) 123-4568", "+49891234568", "568");
    assert!(position(&search(host, "berg", 20), ADELE_CONTACT_ZOE_ID).is_some());

    // Deleted.
    control
        .delete_contact(Some(ADELE_UPN), ADELE_CONTACT_ANNA_ID)
        .unwrap();
    let reply = sync(host);
    assert_eq!(counts(&reply), (base + 1, 0, 0, 1), "{reply}");
    for number in ["0171 2345678", "tel:+49-171-2345678", "+491712345678"] {
        expect_nobody(host, number);
    }
    // Her business number lies in Fabrikam's switchboard range (`+49 89 1234-0`): with Anna
    // gone it is the company plus extension 567, no longer Anna.
    for number in ["089 1234567", "+49 89 1234567"] {
        expect_switchboard_extension(host, number, "+49891234567", "567");
    }
    assert_eq!(
        position(&search(host, "muller", 200), ADELE_CONTACT_ANNA_ID),
        None
    );
    assert_eq!(
        position(&search(host, "0171 2345678", 200), ADELE_CONTACT_ANNA_ID),
        None
    );
    // Jürgen (`…1234567-22`) is still found by his own number, not by the deleted one.
    expect_caller(
        host,
        "+49 89 1234567-22",
        ADELE_CONTACT_JUERGEN_ID,
        "business",
        "+4989123456722",
        None,
    );

    // Deleted in the nested VIP folder.
    control
        .delete_contact(Some(ADELE_UPN), ADELE_CONTACT_RENEE_ID)
        .unwrap();
    let reply = sync(host);
    assert_eq!(counts(&reply), (base, 0, 0, 1), "{reply}");
    expect_nobody(host, "+49 160 2988776");
    expect_caller(host, "030 2667788", &vip_id, "home", "+49302667788", None);

    let state = host.send_ok(json!({"op": "state"}));
    assert_eq!(state["state"]["contacts"], base, "{state}");
    assert!(state["state"]["last_sync"].is_string(), "{state}");
    assert!(s.host.quit().success());
}

/// A second sync asks Graph only for the stored delta links (one request per folder, each the
/// `$deltatoken` link kept in the snapshot), plus the folder listing; no full read.
#[test]
fn second_sync_asks_graph_only_for_delta_links() {
    let (mut s, _) = signed_in_and_synced(|_| {});
    let links = snapshot_delta_links(s.data.path(), &s.emu.base_url());
    assert_eq!(links.len(), 3, "Contacts, Kunden, VIP: {links:?}");

    s.emu.control().clear_requests();
    let reply = sync(&mut s.host);
    assert_eq!(
        counts(&reply),
        (DEFAULT_CONTACTS_PER_USER as u64, 0, 0, 0),
        "{reply}"
    );
    let log = s.emu.control().requests();
    let shown = show(&log);
    assert!(!log.is_empty(), "the sync asked nothing");
    let mut asked = BTreeSet::new();
    for e in &log {
        assert_eq!(e.method, "GET", "{shown}");
        assert_eq!(e.status, Some(200), "{shown}");
        if is_folder_listing(e) {
            continue;
        }
        assert!(
            is_contacts_delta(e),
            "only folder listings and delta links:\n{shown}"
        );
        let token = delta_token(e).unwrap_or_else(|| panic!("a full read:\n{shown}"));
        asked.insert((percent_decode(&e.path), token));
    }
    assert_eq!(
        asked, links,
        "exactly the stored delta links, each once:\n{shown}"
    );
    let deltas = log.iter().filter(|e| is_contacts_delta(e)).count();
    assert_eq!(deltas, 3, "one request per folder:\n{shown}");
    assert!(
        log.iter().any(is_folder_listing),
        "the folder listing:\n{shown}"
    );

    // With a change, still one delta request per folder.
    s.emu
        .control()
        .add_contact(
            ADELE_UPN,
            None,
            &json!({"displayName": "Delta Neu", "businessPhones": ["+49 30 2778899"]}),
        )
        .unwrap();
    let links = snapshot_delta_links(s.data.path(), &s.emu.base_url());
    s.emu.control().clear_requests();
    let reply = sync(&mut s.host);
    assert_eq!(reply["added"], 1, "{reply}");
    let log = s.emu.control().requests();
    let asked: BTreeSet<_> = log
        .iter()
        .filter(|e| is_contacts_delta(e))
        .map(|e| (percent_decode(&e.path), delta_token(e).unwrap_or_default()))
        .collect();
    assert_eq!(asked, links, "{}", show(&log));
    assert_eq!(log.iter().filter(|e| is_contacts_delta(e)).count(), 3);
    assert!(s.host.quit().success());
}

/// Expired delta tokens (410 `syncStateNotFound`) make the next sync read every folder in full;
/// it succeeds and the data is complete and current; the sync after that is delta again.
#[test]
fn expired_delta_tokens_trigger_a_complete_full_resync() {
    let (mut s, _) = signed_in_and_synced(|_| {});
    let control = s.emu.control().clone();
    let new_id = control
        .add_contact(
            ADELE_UPN,
            Some(ADELE_VIP_FOLDER_ID),
            &json!({"displayName": "Nach Ablauf", "businessPhones": ["+49 30 2889900"]}),
        )
        .unwrap();
    control
        .delete_contact(Some(ADELE_UPN), ADELE_CONTACT_ZOE_ID)
        .unwrap();
    control.expire_delta_tokens(ADELE_UPN).unwrap();
    control.clear_requests();

    let reply = sync(&mut s.host);
    let base = DEFAULT_CONTACTS_PER_USER as u64;
    assert_eq!(counts(&reply), (base, 1, 0, 1), "{reply}");
    let log = control.requests();
    let shown = show(&log);
    let gone: Vec<_> = log
        .iter()
        .filter(|e| is_contacts_delta(e) && e.status == Some(410))
        .collect();
    assert_eq!(gone.len(), 3, "each folder's link expired:\n{shown}");
    assert!(gone.iter().all(|e| delta_token(e).is_some()), "{shown}");
    let full: BTreeSet<_> = log
        .iter()
        .filter(|e| is_contacts_delta(e) && e.status == Some(200) && delta_token(e).is_none())
        .filter(|e| !query_map(e.query.as_deref()).contains_key("$skiptoken"))
        .map(|e| e.path.clone())
        .collect();
    assert_eq!(full.len(), 3, "each folder read in full:\n{shown}");

    // Complete: the old, the new, and not the deleted.
    let host = &mut s.host;
    expect_caller(
        host,
        "089 1234567",
        ADELE_CONTACT_ANNA_ID,
        "business",
        "+49891234567",
        None,
    );
    expect_caller(
        host,
        "+41 44 268 18 00",
        ADELE_CONTACT_RETO_ID,
        "business",
        "+41442681800",
        None,
    );
    expect_caller(
        host,
        "+49 160 2988776",
        ADELE_CONTACT_RENEE_ID,
        "mobile",
        "+491602988776",
        None,
    );
    expect_caller(
        host,
        "030 2889900",
        &new_id,
        "business",
        "+49302889900",
        None,
    );
    // Zoë is gone: her number is now only in Fabrikam's switchboard range.
    expect_switchboard_extension(host, "(089) 123-4568", "+49891234568", "568");
    assert_eq!(
        position(&search(host, "zoe", 200), ADELE_CONTACT_ZOE_ID),
        None
    );
    let state = host.send_ok(json!({"op": "state"}));
    assert_eq!(
        state["state"]["contacts"],
        control.contact_count(ADELE_UPN).unwrap() as u64,
        "{state}"
    );

    // The fresh links work: the next sync is delta only.
    control.clear_requests();
    let reply = sync(host);
    assert_eq!(counts(&reply), (base, 0, 0, 0), "{reply}");
    let log = control.requests();
    assert!(
        log.iter()
            .filter(|e| is_contacts_delta(e))
            .all(|e| e.status == Some(200) && delta_token(e).is_some()),
        "{}",
        show(&log)
    );
    assert!(s.host.quit().success());
}

/// A restarted demo host (same data folder) answers calls and searches from the snapshot
/// before any network traffic: every request to the emulator is dropped while it does, and
/// none was answered. Once the network is back it signs in silently and syncs by delta.
#[test]
fn restarted_host_answers_from_the_snapshot_before_any_network_traffic() {
    let (s, first) = signed_in_and_synced(|_| {});
    let Setup {
        emu,
        plugins,
        data,
        mut host,
    } = s;
    let last_sync = host.send_ok(json!({"op": "state"}))["state"]["last_sync"].clone();
    assert!(last_sync.is_string(), "{last_sync}");
    assert!(host.quit().success());
    drop(host);

    // No network from now on: every request to the emulator is dropped unanswered.
    let control = emu.control().clone();
    control.clear_requests();
    control
        .inject_fault(FaultRule {
            path_prefix: "/".into(),
            method: None,
            count: 1_000_000,
            fault: Fault::DropConnection,
        })
        .unwrap();

    let mut host = spawn_host(&plugins, data.path());
    host.wait_event("plugin_loaded", GUARD);
    host.send_ok(context_op());
    // The snapshot is installed: the state reports its entries.
    let deadline = Instant::now() + GUARD;
    let state = loop {
        let state = host.send_ok(json!({"op": "state"}))["state"].clone();
        if state["contacts"] == first["contacts"] {
            break state;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        host.wait_event("state_changed", left);
    };
    assert_eq!(state["last_sync"], last_sync, "{state}");
    expect_caller(
        &mut host,
        "089 1234567",
        ADELE_CONTACT_ANNA_ID,
        "business",
        "+49891234567",
        None,
    );
    expect_caller(
        &mut host,
        "+49 160 2988776",
        ADELE_CONTACT_RENEE_ID,
        "mobile",
        "+491602988776",
        None,
    );
    expect_caller(
        &mut host,
        "+49 89 1234 999",
        ADELE_CONTACT_SWITCHBOARD_ID,
        "business",
        "+49891234999",
        Some("999"),
    );
    assert!(position(&search(&mut host, "muller", 20), ADELE_CONTACT_ANNA_ID).is_some());
    assert!(position(&search(&mut host, "reto", 20), ADELE_CONTACT_RETO_ID).is_some());
    let log = control.requests();
    assert!(
        log.iter().all(|e| e.status.is_none()),
        "no request was answered while the calls were:\n{}",
        show(&log)
    );

    // Network back: silent sign-in with the remembered login, then a delta sync.
    control.clear_faults();
    let state = wait_integration(&mut host, "active");
    assert_eq!(state["signed_in_as"], ADELE_UPN, "{state}");
    control.clear_requests();
    let reply = sync(&mut host);
    assert_eq!(counts(&reply), (counts(&first).0, 0, 0, 0), "{reply}");
    let log = control.requests();
    assert!(
        log.iter()
            .filter(|e| is_contacts_delta(e))
            .all(|e| delta_token(e).is_some()),
        "the snapshot's delta links are used:\n{}",
        show(&log)
    );
    assert!(host.quit().success());
}

/// A corrupt snapshot is set aside (a `.corrupt-` file keeps its bytes, a log line says so),
/// the restarted host starts empty, and a full sync restores everything.
#[test]
fn corrupt_snapshot_is_set_aside_and_a_full_sync_restores_the_data() {
    let (s, first) = signed_in_and_synced(|_| {});
    let Setup {
        emu,
        plugins,
        data,
        mut host,
    } = s;
    assert!(host.quit().success());
    drop(host);

    let snapshot = snapshot_path(data.path());
    assert!(snapshot.is_file(), "{}", snapshot.display());
    let garbage = b"\x00\x01 this is not a snapshot {{{";
    fs::write(&snapshot, garbage).unwrap();
    emu.control().clear_requests();

    let mut host = spawn_host(&plugins, data.path());
    host.wait_event("plugin_loaded", GUARD);
    host.send_ok(context_op());
    wait_integration(&mut host, "active");
    let reply = sync(&mut host);
    assert_eq!(reply["contacts"], first["contacts"], "{reply}");

    let dir = plugin_data_dir(data.path());
    let aside: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!(
                    "{}.corrupt-",
                    contact_ms365::snapshot::SNAPSHOT_FILE
                ))
        })
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(fs::read(&aside[0]).unwrap(), garbage);
    let restored =
        contact_ms365::snapshot::read_json(&snapshot).expect("a new, valid snapshot was written");
    assert_eq!(restored["kind"], "contact-ms365 contacts snapshot");
    let log = emu.control().requests();
    assert!(
        log.iter()
            .any(|e| is_contacts_delta(e) && e.status == Some(200) && delta_token(e).is_none()),
        "a full read after the corrupt snapshot:\n{}",
        show(&log)
    );
    expect_caller(
        &mut host,
        "089 1234567",
        ADELE_CONTACT_ANNA_ID,
        "business",
        "+49891234567",
        None,
    );
    expect_caller(
        &mut host,
        "+41 44 268 18 00",
        ADELE_CONTACT_RETO_ID,
        "business",
        "+41442681800",
        None,
    );
    assert!(host.quit().success());
    assert!(
        host.stderr().contains("set aside"),
        "a log line names the set-aside file"
    );
}

/// A caller unknown when the call was answered becomes known by the next sync: the host gets
/// `caller_updated` for that call; a call whose number stays unknown gets none.
#[test]
fn caller_unknown_while_ringing_is_reported_when_it_becomes_known() {
    let (mut s, _) = signed_in_and_synced(|_| {});
    let new_id = s
        .emu
        .control()
        .add_contact(
            ADELE_UPN,
            None,
            &json!({"displayName": "Spät Anrufer", "mobilePhone": "+49 151 21234567"}),
        )
        .unwrap();
    let host = &mut s.host;
    assert_eq!(call(host, "late-1", "0151 21234567"), Value::Null);
    assert_eq!(call(host, "never-1", "+49 30 29990001"), Value::Null);
    let reply = sync(host);
    assert_eq!(reply["added"], 1, "{reply}");
    let update = host.wait_event("caller_updated", Duration::from_secs(60));
    assert_eq!(update["call_id"], "late-1", "{update}");
    let caller = &update["caller"];
    assert_eq!(caller["contact_id"], new_id.as_str(), "{update}");
    assert_eq!(caller["display_name"], "Spät Anrufer", "{update}");
    assert_eq!(caller["number_type"], "mobile", "{update}");
    assert_eq!(caller["number"], "+4915121234567", "{update}");
    // Another sync: nothing new for either call.
    sync(host);
    host.send_ok(json!({"op": "wait", "ms": 200}));
    let updates = host.events_named("caller_updated");
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert!(s.host.quit().success());
}

/// 429 with `Retry-After` (seconds and HTTP date) and 503 on a folder's delta link are retried:
/// the sync succeeds with the change, and each retry waited at least what `Retry-After` said.
#[test]
fn throttling_and_server_errors_on_delta_links_are_retried() {
    let (mut s, _) = signed_in_and_synced(|_| {});
    let control = s.emu.control().clone();
    // The default folder's contacts delta (the only requests under this prefix: the default
    // folder's child folders are listed from the top level).
    let prefix = format!(
        "/v1.0/me/contactFolders/{}",
        ADELE_CONTACTS_FOLDER_ID.trim_end_matches('=')
    );
    let fault = |fault: Fault| FaultRule {
        path_prefix: prefix.clone(),
        method: Some("GET".into()),
        count: 1,
        fault,
    };
    control
        .inject_fault(fault(Fault::Status {
            status: 429,
            retry_after: Some("3".into()),
        }))
        .unwrap();
    control
        .inject_fault(fault(Fault::Status {
            status: 503,
            retry_after: None,
        }))
        .unwrap();
    let new_id = control
        .add_contact(
            ADELE_UPN,
            None,
            &json!({"displayName": "Gedrosselt", "businessPhones": ["+49 30 2991122"]}),
        )
        .unwrap();
    control.clear_requests();
    let reply = sync(&mut s.host);
    assert_eq!(reply["added"], 1, "{reply}");
    expect_caller(
        &mut s.host,
        "030 2991122",
        &new_id,
        "business",
        "+49302991122",
        None,
    );
    let log = control.requests();
    let shown = show(&log);
    let on_path: Vec<&RequestLogEntry> =
        log.iter().filter(|e| e.path.starts_with(&prefix)).collect();
    let statuses: Vec<Option<u16>> = on_path.iter().map(|e| e.status).collect();
    assert_eq!(
        statuses,
        [Some(429), Some(503), Some(200)],
        "retried until answered:\n{shown}"
    );
    // Retry-After: 3 was honoured (a lower bound, in whole seconds of the emulator's log).
    let gap = epoch_secs(&on_path[1].time) - epoch_secs(&on_path[0].time);
    assert!(
        gap >= 3,
        "retried {gap} s after a 429 with Retry-After: 3\n{shown}"
    );

    // Retry-After as an HTTP date.
    let until = now_secs() + 4;
    control
        .inject_fault(fault(Fault::Status {
            status: 429,
            retry_after: Some(http_date(until)),
        }))
        .unwrap();
    control.clear_requests();
    let reply = sync(&mut s.host);
    let (_, added, updated, removed) = counts(&reply);
    assert_eq!((added, updated, removed), (0, 0, 0), "{reply}");
    let log = control.requests();
    let shown = show(&log);
    let on_path: Vec<&RequestLogEntry> =
        log.iter().filter(|e| e.path.starts_with(&prefix)).collect();
    let statuses: Vec<Option<u16>> = on_path.iter().map(|e| e.status).collect();
    assert_eq!(statuses, [Some(429), Some(200)], "{shown}");
    // Not before the date (one second of slack for the date's own rounding).
    assert!(
        epoch_secs(&on_path[1].time) >= until - 1,
        "retried before {}:\n{shown}",
        http_date(until)
    );
    assert!(s.host.quit().success());
}

/// A sync that faults make fail answers `sync_failed`; the data from before still answers calls
/// and searches; the next sync without faults succeeds.
#[test]
fn failed_sync_reports_sync_failed_and_the_old_data_keeps_answering() {
    let (mut s, first) = signed_in_and_synced(|_| {});
    let control = s.emu.control().clone();
    let host = &mut s.host;
    // The folder listing fails for good (a final error, not retried).
    control
        .inject_fault(FaultRule {
            path_prefix: "/v1.0/me/contactFolders".into(),
            method: None,
            count: 1000,
            fault: Fault::Status {
                status: 400,
                retry_after: None,
            },
        })
        .unwrap();
    control
        .delete_contact(Some(ADELE_UPN), ADELE_CONTACT_ANNA_ID)
        .unwrap();
    let reply = host.send(json!({"op": "sync"}));
    assert_eq!(reply["ok"], false, "{reply}");
    assert_eq!(reply["error"]["code"], "sync_failed", "{reply}");

    // The old data answers (Anna is still known: the failed sync changed nothing).
    expect_caller(
        host,
        "089 1234567",
        ADELE_CONTACT_ANNA_ID,
        "business",
        "+49891234567",
        None,
    );
    assert!(position(&search(host, "muller", 20), ADELE_CONTACT_ANNA_ID).is_some());
    let state = host.send_ok(json!({"op": "state"}))["state"].clone();
    assert_eq!(state["contacts"], first["contacts"], "{state}");
    assert_eq!(state["microsoft_integration"], "active", "{state}");
    assert!(state["last_error"].is_string(), "{state}");

    // Throttling on every folder request for longer than the sync may take also fails, and
    // the data is still there.
    control.clear_faults();
    control
        .inject_fault(FaultRule {
            path_prefix: "/v1.0/me/contactFolders".into(),
            method: None,
            count: 1000,
            fault: Fault::Status {
                status: 429,
                retry_after: Some("3600".into()),
            },
        })
        .unwrap();
    let reply = host.send(json!({"op": "sync"}));
    assert_eq!(reply["error"]["code"], "sync_failed", "{reply}");
    expect_caller(
        host,
        "0171 2345678",
        ADELE_CONTACT_ANNA_ID,
        "mobile",
        "+491712345678",
        None,
    );

    // Faults gone: the next sync succeeds and brings the deletion.
    control.clear_faults();
    let reply = sync(host);
    assert_eq!(reply["removed"], 1, "{reply}");
    expect_nobody(host, "0171 2345678");
    expect_switchboard_extension(host, "089 1234567", "+49891234567", "567");
    let state = host.send_ok(json!({"op": "state"}))["state"].clone();
    assert_eq!(state["last_error"], Value::Null, "{state}");
    assert!(s.host.quit().success());
}

#[test]
fn helpers_convert_dates_both_ways() {
    assert_eq!(epoch_secs("1970-01-01T00:00:00Z"), 0);
    assert_eq!(epoch_secs("2015-10-21T07:28:00Z"), 1_445_412_480);
    assert_eq!(http_date(1_445_412_480), "Wed, 21 Oct 2015 07:28:00 GMT");
    assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    assert_eq!(percent_decode("%24deltatoken=a%3Db+c"), "$deltatoken=a=b c");
}
