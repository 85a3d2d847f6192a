//! Issue 6, item 1: the fault matrix. Each test injects one fault into the emulator while the
//! real plugin, loaded by the real demo host, signs in and syncs, and asserts recovery and no
//! data loss:
//!
//! - the sync that met the fault completes (or, where it cannot, fails cleanly and a later one
//!   completes without any action by the user);
//! - what was synced before still answers caller ID, and the new data is there afterwards;
//! - the snapshot on disk holds every contact exactly once;
//! - the state is `active` again with no `last_error` (never `error` for good).
//!
//! `docs/FAULTS.md` is the table: fault → behaviour → test. Waits are hang guards; the only
//! timing checks are lower bounds read from the emulator's request log (a `Retry-After` was
//! honoured), which a slow machine can only make larger.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant, UNIX_EPOCH},
};

use contact_ms365_e2e::{
    ScriptHostBuilder,
    story::{self, GUARD, Story, show},
};
use ms365_emulator::{
    EmulatorConfig, EmulatorHandle, Fault, FaultRule, RequestLogEntry,
    tenant::{ADELE_CONTACT_ANNA_ID, ADELE_CONTACTS_FOLDER_ID, ADELE_UPN},
};
use serde_json::{Value, json};

// ------------------------------------------------------------------------------------------
// Helpers

/// Requests for the default folder's contacts delta (initial, continuation and delta links;
/// the folder id's `=` is percent-encoded in the first request only, so the prefix stops
/// before it).
fn default_delta_prefix() -> String {
    format!(
        "/v1.0/me/contactFolders/{}",
        ADELE_CONTACTS_FOLDER_ID.trim_end_matches('=')
    )
}

/// The continuation pages (`$skiptoken`) of the default folder's delta rounds (a query-aware
/// prefix: matched against the decoded path and query).
fn default_delta_next_pages() -> String {
    format!("/v1.0/me/contactFolders/{ADELE_CONTACTS_FOLDER_ID}/contacts/delta?$skiptoken=")
}

fn rule(prefix: &str, count: u32, fault: Fault) -> FaultRule {
    FaultRule {
        path_prefix: prefix.to_owned(),
        method: Some("GET".into()),
        count,
        fault,
    }
}

/// Adele signed in (browser flow through curl) and a first complete sync; `None` without curl.
fn synced_story(emu: EmulatorHandle) -> Option<Story> {
    synced_story_with(emu, json!({}), |b| b)
}

fn synced_story_with(
    emu: EmulatorHandle,
    extra: Value,
    builder: impl FnOnce(ScriptHostBuilder) -> ScriptHostBuilder,
) -> Option<Story> {
    if !story::have_curl() {
        return None;
    }
    let mut s = Story::signed_in_with(emu, extra, builder);
    let reply = sync(&mut s);
    assert_eq!(reply["contacts"], expected_count(&s), "{reply}");
    Some(s)
}

fn expected_count(s: &Story) -> u64 {
    s.emu.control().contact_count(ADELE_UPN).unwrap() as u64
}

fn sync(s: &mut Story) -> Value {
    s.host.send_ok(json!({"op": "sync"}))
}

/// A contact added in the emulator (default folder) with one business number: new data that
/// must arrive once the fault is over.
fn add_contact(s: &Story, name: &str, number: &str) -> String {
    s.emu
        .control()
        .add_contact(
            ADELE_UPN,
            None,
            &json!({"displayName": name, "businessPhones": [number]}),
        )
        .unwrap()
}

fn caller(s: &mut Story, number: &str) -> Value {
    s.host
        .send_ok(json!({"op": "incoming_call", "call_id": "c-fault", "number": number}))["caller"]
        .clone()
}

/// Data synced before answers: Anna by her business number.
fn assert_old_data_answers(s: &mut Story) {
    let anna = caller(s, "089 1234567");
    assert_eq!(anna["contact_id"], ADELE_CONTACT_ANNA_ID, "{anna}");
}

/// Contact ids in the snapshot on disk (every folder), and how many entries it holds.
fn snapshot_ids(s: &Story) -> (BTreeSet<String>, usize) {
    let path = s.plugin_data().join(contact_ms365::snapshot::SNAPSHOT_FILE);
    let snap = contact_ms365::snapshot::read_json(&path)
        .unwrap_or_else(|e| panic!("{} is not a usable snapshot: {e}", path.display()));
    let folders = snap["mailbox"]["folders"]
        .as_object()
        .unwrap_or_else(|| panic!("snapshot without folders"));
    let mut ids = BTreeSet::new();
    let mut entries = 0;
    for f in folders.values() {
        let contacts = f["contacts"].as_object().expect("contacts by id");
        entries += contacts.len();
        ids.extend(contacts.keys().cloned());
    }
    (ids, entries)
}

/// Recovery and no data loss: active, no error, every contact of the emulator held once (in
/// memory and in the snapshot), the old data and `new` (id, number) answering caller ID.
fn assert_recovered(s: &mut Story, new: Option<(&str, &str)>) {
    let expected = expected_count(s);
    let state = story::state(&mut s.host);
    assert_eq!(state["microsoft_integration"], "active", "{state}");
    assert_eq!(state["last_error"], Value::Null, "{state}");
    assert_eq!(state["contacts"], expected, "{state}");
    assert_old_data_answers(s);
    let (ids, entries) = snapshot_ids(s);
    assert_eq!(
        ids.len() as u64,
        expected,
        "the snapshot holds every contact"
    );
    assert_eq!(entries, ids.len(), "the snapshot holds each contact once");
    assert!(ids.contains(ADELE_CONTACT_ANNA_ID));
    if let Some((id, number)) = new {
        let c = caller(s, number);
        assert_eq!(c["contact_id"], id, "{number}: {c}");
        assert!(ids.contains(id), "the snapshot holds the new contact");
    }
}

fn on_prefix<'a>(log: &'a [RequestLogEntry], prefix: &str) -> Vec<&'a RequestLogEntry> {
    log.iter().filter(|e| e.path.starts_with(prefix)).collect()
}

fn statuses(entries: &[&RequestLogEntry]) -> Vec<Option<u16>> {
    entries.iter().map(|e| e.status).collect()
}

fn is_refresh(e: &RequestLogEntry) -> bool {
    e.path.ends_with("/oauth2/v2.0/token")
        && e.form
            .as_ref()
            .and_then(|f| f.get("grant_type"))
            .is_some_and(|g| g == "refresh_token")
}

/// Seconds since the epoch of an emulator log time (RFC 3339, emulator clock).
fn log_secs(e: &RequestLogEntry) -> i64 {
    time::OffsetDateTime::parse(&e.time, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|err| panic!("log time {}: {err}", e.time))
        .unix_timestamp()
}

/// An HTTP date `secs` after the emulator's now (its clock, skewed or not).
fn emulator_http_date(emu: &EmulatorHandle, secs: i64) -> (String, i64) {
    let at = emu.control().now().unix_timestamp() + secs;
    let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(at as u64));
    (date, at)
}

/// Polls the emulator's request log (bounded by [`GUARD`]) until `pred` holds.
fn wait_log(emu: &EmulatorHandle, what: &str, pred: impl Fn(&[RequestLogEntry]) -> bool) {
    let deadline = Instant::now() + GUARD;
    loop {
        let log = emu.control().requests();
        if pred(&log) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "hang guard: {what}\n{}",
            show(&log)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One transient fault on the default folder's delta, `count` times: the sync retries, brings
/// the new contact, and nothing is lost. Returns the story (its request log is that sync's);
/// `None` without curl.
fn transient_fault_is_survived(fault: Fault, count: u32, number: &str) -> Option<Story> {
    let mut s = synced_story(story::emulator())?;
    let id = add_contact(&s, "Nach Störung", number);
    let control = s.emu.control().clone();
    control
        .inject_fault(rule(&default_delta_prefix(), count, fault.clone()))
        .unwrap();
    control.clear_requests();
    let reply = sync(&mut s);
    assert_eq!(reply["added"], 1, "{reply}");
    let log = control.requests();
    let faulted = log
        .iter()
        .filter(|e| e.fault.as_deref() == Some(fault.label().as_str()))
        .count();
    assert_eq!(faulted, count as usize, "the fault hit:\n{}", show(&log));
    assert_recovered(&mut s, Some((&id, number)));
    Some(s)
}

// ------------------------------------------------------------------------------------------
// Throttling

/// 429 with `Retry-After: 2` (seconds): the request is repeated no sooner, the sync completes.
#[test]
fn throttled_429_retry_after_seconds_waits_then_recovers() {
    let Some(mut s) = synced_story(story::emulator()) else {
        return;
    };
    let id = add_contact(&s, "Gedrosselt Sekunden", "+49 30 2991101");
    let control = s.emu.control().clone();
    let fault = Fault::Status {
        status: 429,
        retry_after: Some("2".into()),
    };
    control
        .inject_fault(rule(&default_delta_prefix(), 1, fault))
        .unwrap();
    control.clear_requests();
    let reply = sync(&mut s);
    assert_eq!(reply["added"], 1, "{reply}");
    let log = control.requests();
    let on_path = on_prefix(&log, &default_delta_prefix());
    assert_eq!(statuses(&on_path), [Some(429), Some(200)], "{}", show(&log));
    let gap = log_secs(on_path[1]) - log_secs(on_path[0]);
    assert!(
        gap >= 2,
        "retried {gap} s after Retry-After: 2\n{}",
        show(&log)
    );
    assert_recovered(&mut s, Some((&id, "030 2991101")));
    assert!(s.host.quit().success());
}

/// 429 with `Retry-After` as an HTTP date: the request is repeated not before that date.
#[test]
fn throttled_429_retry_after_http_date_waits_then_recovers() {
    let Some(mut s) = synced_story(story::emulator()) else {
        return;
    };
    let id = add_contact(&s, "Gedrosselt Datum", "+49 30 2991102");
    let control = s.emu.control().clone();
    let (date, until) = emulator_http_date(&s.emu, 3);
    control
        .inject_fault(rule(
            &default_delta_prefix(),
            1,
            Fault::Status {
                status: 429,
                retry_after: Some(date.clone()),
            },
        ))
        .unwrap();
    control.clear_requests();
    let reply = sync(&mut s);
    assert_eq!(reply["added"], 1, "{reply}");
    let log = control.requests();
    let on_path = on_prefix(&log, &default_delta_prefix());
    assert_eq!(statuses(&on_path), [Some(429), Some(200)], "{}", show(&log));
    // Not before the date (one second of slack for the date's own rounding).
    assert!(
        log_secs(on_path[1]) >= until - 1,
        "retried before {date}:\n{}",
        show(&log)
    );
    assert_recovered(&mut s, Some((&id, "030 2991102")));
    assert!(s.host.quit().success());
}

// ------------------------------------------------------------------------------------------
// Server errors: retried with exponential back-off

fn server_error_is_retried(status: u16, number: &str) {
    let fault = Fault::Status {
        status,
        retry_after: None,
    };
    let Some(mut s) = transient_fault_is_survived(fault, 2, number) else {
        return;
    };
    let log = s.emu.control().requests();
    let on_path = on_prefix(&log, &default_delta_prefix());
    assert_eq!(
        statuses(&on_path),
        [Some(status), Some(status), Some(200)],
        "{}",
        show(&log)
    );
    assert!(s.host.quit().success());
}

/// 500 twice on a folder's delta: backed off and retried; the sync completes.
#[test]
fn server_error_500_is_retried_and_recovers() {
    server_error_is_retried(500, "+49 30 2991103");
}

/// 502 twice on a folder's delta: backed off and retried; the sync completes.
#[test]
fn server_error_502_is_retried_and_recovers() {
    server_error_is_retried(502, "+49 30 2991104");
}

/// 503 (without `Retry-After`) twice: backed off and retried; the sync completes.
#[test]
fn server_error_503_is_retried_and_recovers() {
    server_error_is_retried(503, "+49 30 2991105");
}

/// 504 twice on a folder's delta: backed off and retried; the sync completes.
#[test]
fn server_error_504_is_retried_and_recovers() {
    server_error_is_retried(504, "+49 30 2991106");
}

// ------------------------------------------------------------------------------------------
// Broken transport and bodies

/// Status, headers and half of a page arrive, then the connection is reset: the page is asked
/// for again and nothing half-read is kept.
#[test]
fn connection_reset_in_the_middle_of_a_page_is_retried() {
    let Some(s) = transient_fault_is_survived(Fault::ResetMidBody, 1, "+49 30 2991107") else {
        return;
    };
    let log = s.emu.control().requests();
    let on_path = on_prefix(&log, &default_delta_prefix());
    assert_eq!(on_path.len(), 2, "{}", show(&log));
    assert_eq!(on_path[0].fault.as_deref(), Some("reset_mid_body"));
    assert_eq!(on_path[1].fault, None);
    assert_eq!(on_path[1].status, Some(200));
}

/// A response slower than the request time-out (here 5 s through
/// `CONTACT_MS365_REQUEST_TIMEOUT_MS`; 30 s by default): the request is abandoned and repeated.
#[test]
fn response_slower_than_the_request_timeout_is_abandoned_and_retried() {
    let Some(mut s) = synced_story_with(story::emulator(), json!({}), |b| {
        b.env("CONTACT_MS365_REQUEST_TIMEOUT_MS", "5000")
    }) else {
        return;
    };
    let id = add_contact(&s, "Langsam", "+49 30 2991108");
    let control = s.emu.control().clone();
    control
        .inject_fault(rule(
            &default_delta_prefix(),
            1,
            Fault::Delay { ms: 30_000 },
        ))
        .unwrap();
    control.clear_requests();
    let reply = sync(&mut s);
    assert_eq!(reply["added"], 1, "{reply}");
    // The slow request is still being "worked on" by the emulator (it is logged only when it
    // ends): the answer the sync used came from a second request.
    let log = control.requests();
    let on_path = on_prefix(&log, &default_delta_prefix());
    assert!(
        on_path
            .iter()
            .any(|e| e.fault.is_none() && e.status == Some(200)),
        "a repeated request answered:\n{}",
        show(&log)
    );
    assert!(
        on_path.iter().all(|e| e.fault.is_none()),
        "the sync did not wait for the slow answer:\n{}",
        show(&log)
    );
    assert_recovered(&mut s, Some((&id, "030 2991108")));
    assert!(s.host.quit().success());
}

/// A page whose JSON is malformed: read again; the sync completes.
#[test]
fn malformed_json_is_retried_and_recovers() {
    if let Some(mut s) = transient_fault_is_survived(Fault::MalformedJson, 1, "+49 30 2991109") {
        assert!(s.host.quit().success());
    }
}

/// A page cut short (a consistent `Content-Length`, incomplete JSON): read again.
#[test]
fn truncated_json_is_retried_and_recovers() {
    if let Some(mut s) = transient_fault_is_survived(Fault::TruncatedJson, 1, "+49 30 2991110") {
        assert!(s.host.quit().success());
    }
}

// ------------------------------------------------------------------------------------------
// Delta rounds

/// Graph may deliver an entity more than once in a round. Anna is on the first page of the
/// default folder's round (2,400 contacts: two pages) and again, in a later version, on the
/// second: the result holds her once, in the later version, and counts every contact once.
#[test]
fn contact_on_two_pages_is_kept_once_in_its_later_version() {
    let emu = story::emulator();
    emu.control().seed_contacts(ADELE_UPN, 2400).unwrap();
    let later = json!({
        "@odata.type": "#microsoft.graph.contact",
        "id": ADELE_CONTACT_ANNA_ID,
        "displayName": "Anna Müller-Schmidt",
        "givenName": "Anna",
        "surname": "Müller-Schmidt",
        "companyName": "Müller & Söhne GmbH",
        "jobTitle": "Einkauf",
        "businessPhones": ["089 1234567"],
        "homePhones": [],
        "mobilePhone": "0171 2345678",
        "emailAddresses": [{
            "name": "Anna Müller-Schmidt",
            "address": "anna.mueller@mueller-soehne.example",
        }],
    });
    emu.control()
        .inject_fault(rule(
            &default_delta_next_pages(),
            1,
            Fault::AppendItems {
                items: vec![later.clone()],
            },
        ))
        .unwrap();
    // The first sync (the full round) meets the duplicate.
    let Some(mut s) = synced_story(emu) else {
        return;
    };
    let control = s.emu.control().clone();
    let log = control.requests();
    let hit: Vec<_> = log
        .iter()
        .filter(|e| e.fault.as_deref() == Some("append_items 1"))
        .collect();
    assert_eq!(
        hit.len(),
        1,
        "the second page carried Anna again:\n{}",
        show(&log)
    );
    assert!(
        hit[0]
            .query
            .as_deref()
            .is_some_and(|q| q.contains("skiptoken")),
        "on a continuation page: {:?}",
        hit[0]
    );
    let anna = caller(&mut s, "089 1234567");
    assert_eq!(anna["contact_id"], ADELE_CONTACT_ANNA_ID, "{anna}");
    assert_eq!(anna["display_name"], "Anna Müller-Schmidt", "{anna}");
    let found = s
        .host
        .send_ok(json!({"op": "search", "query": "anna", "limit": 200}))["results"]
        .clone();
    let annas = found
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["contact_id"] == ADELE_CONTACT_ANNA_ID)
        .count();
    assert_eq!(annas, 1, "Anna once in the phonebook: {found}");
    assert_recovered(&mut s, None);

    // The server's own copy catches up with the later version: the next round brings nothing
    // new for Anna (the plugin already held exactly that version).
    control
        .update_contact(
            Some(ADELE_UPN),
            ADELE_CONTACT_ANNA_ID,
            &json!({"displayName": "Anna Müller-Schmidt", "surname": "Müller-Schmidt",
                    "emailAddresses": later["emailAddresses"]}),
        )
        .unwrap();
    let reply = sync(&mut s);
    assert_eq!(
        (&reply["added"], &reply["updated"], &reply["removed"]),
        (&json!(0), &json!(0), &json!(0)),
        "{reply}"
    );
    assert_recovered(&mut s, None);
    assert!(s.host.quit().success());
}

// The expired delta token row is covered by contacts.rs:
// `expired_delta_tokens_trigger_a_complete_full_resync` (410 on every folder's link, a full
// read of each, the old and the new data answering, the fresh links used next).

// ------------------------------------------------------------------------------------------
// Tokens

/// The access token expires on the server while the second page of a round is on its way
/// (Graph answers 401 to the requests still in flight): the plugin refreshes once and runs the
/// sync again; it completes.
#[test]
fn access_token_expiring_in_the_middle_of_a_sync_is_refreshed_and_the_sync_completes() {
    let emu = story::emulator();
    emu.control().seed_contacts(ADELE_UPN, 2400).unwrap();
    let Some(mut s) = synced_story(emu) else {
        return;
    };
    let control = s.emu.control().clone();
    let id = add_contact(&s, "Mitten im Abgleich", "+49 30 2991111");
    // A full round again (two pages in the default folder), its second page slowed down.
    control.expire_delta_tokens(ADELE_UPN).unwrap();
    control
        .inject_fault(rule(
            &default_delta_next_pages(),
            1,
            Fault::Delay { ms: 8000 },
        ))
        .unwrap();
    control.clear_requests();
    s.host.write_line(&json!({"op": "sync"}).to_string());
    // The first page of the default folder's full round has been answered: the second one is
    // in flight (slowed down). Now the token expires.
    let first_page = |log: &[RequestLogEntry]| {
        log.iter().any(|e| {
            e.path.starts_with(&default_delta_prefix())
                && e.status == Some(200)
                && e.query
                    .as_deref()
                    .is_some_and(|q| q.contains("select") && !q.contains("token"))
        })
    };
    wait_log(&s.emu, "the first page of the full round", first_page);
    assert!(control.expire_access_tokens(ADELE_UPN).unwrap() >= 1);
    let reply = s.host.read_reply();
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["added"], 1, "{reply}");
    let log = control.requests();
    let shown = show(&log);
    // The first 401 hit a request of the round still in flight (the slowed second page, or
    // another folder's delta asked meanwhile), after the first page had been answered.
    let first_page_at = log
        .iter()
        .position(|e| first_page(std::slice::from_ref(e)))
        .unwrap_or_else(|| panic!("the first page:\n{shown}"));
    let refused = log
        .iter()
        .position(|e| e.status == Some(401))
        .unwrap_or_else(|| panic!("a request of the round was refused:\n{shown}"));
    assert!(first_page_at < refused, "{shown}");
    assert!(log[refused].path.ends_with("/contacts/delta"), "{shown}");
    let refreshed = log
        .iter()
        .position(is_refresh)
        .unwrap_or_else(|| panic!("a refresh:\n{shown}"));
    assert!(refused < refreshed, "{shown}");
    assert!(
        log[refreshed..]
            .iter()
            .any(|e| e.path.starts_with(&default_delta_prefix()) && e.status == Some(200)),
        "the sync ran again with the new token:\n{shown}"
    );
    assert_recovered(&mut s, Some((&id, "030 2991111")));
    assert!(s.host.quit().success());
}

/// The refresh token is revoked (and the access token expires): exactly one
/// `sign_in_required`, no browser on its own, calls and searches still answered from the index
/// and the snapshot. The user signs in again: the next sync brings what changed.
#[test]
fn revoked_refresh_token_asks_once_and_calls_keep_being_answered() {
    let Some(mut s) = synced_story(story::emulator()) else {
        return;
    };
    let control = s.emu.control().clone();
    let before = story::state(&mut s.host);
    let opened_before = s.host.events_named("open_url").len();
    assert!(control.revoke_refresh_tokens(ADELE_UPN).unwrap() >= 1);
    control.expire_access_tokens(ADELE_UPN).unwrap();
    let id = add_contact(&s, "Nach Widerruf", "+49 30 2991112");

    let reply = s.host.send(json!({"op": "sync"}));
    assert_eq!(reply["ok"], false, "{reply}");
    assert_eq!(reply["error"]["code"], "sync_failed", "{reply}");
    let state = story::wait_state(&mut s.host, "sign_in_required", |st| {
        st["microsoft_integration"] == "sign_in_required"
    });
    // Give a second notification (or a browser) every chance to show up before counting.
    s.host.send_ok(json!({"op": "wait", "ms": 1500}));
    let state_after = story::state(&mut s.host);
    assert_eq!(state_after["microsoft_integration"], "sign_in_required");
    let reason = state_after["last_error"].as_str().unwrap_or_default();
    assert!(
        reason.contains("AADSTS50173"),
        "the reason stays: {state_after}"
    );
    let asked: Vec<_> = s
        .host
        .events_named("notification")
        .into_iter()
        .filter(|n| n["kind"] == "sign_in_required")
        .collect();
    assert_eq!(asked.len(), 1, "exactly one notification: {asked:?}");
    assert_eq!(
        s.host.events_named("open_url").len(),
        opened_before,
        "no browser on its own"
    );
    // Calls, searches and the snapshot keep everything synced before.
    assert_eq!(state["contacts"], before["contacts"], "{state}");
    assert_old_data_answers(&mut s);
    let found = s
        .host
        .send_ok(json!({"op": "search", "query": "muller", "limit": 20}))["results"]
        .clone();
    assert!(
        found
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["contact_id"] == ADELE_CONTACT_ANNA_ID),
        "{found}"
    );
    let (ids, _) = snapshot_ids(&s);
    assert_eq!(Some(ids.len() as u64), before["contacts"].as_u64());

    // The user signs in again (the browser, as asked): active, and the next sync catches up.
    s.host.send_ok(json!({"op": "sign_in"}));
    story::wait_integration(&mut s.host, "active");
    // (The sync at sign-in may already have brought the new contact: no count asserted.)
    sync(&mut s);
    assert_recovered(&mut s, Some((&id, "030 2991112")));
    assert!(s.host.quit().success());
}

// ------------------------------------------------------------------------------------------
// The service and the network

/// The emulator restarts (port closed, connections cut, then serving again with the same
/// state) while a folder's delta is in flight: the cut request is repeated and the sync
/// completes.
#[test]
fn emulator_restarting_during_a_sync_is_survived() {
    let Some(mut s) = synced_story(story::emulator()) else {
        return;
    };
    let control = s.emu.control().clone();
    let id = add_contact(&s, "Nach Neustart", "+49 30 2991113");
    control
        .inject_fault(rule(
            &default_delta_prefix(),
            1,
            Fault::Delay { ms: 10_000 },
        ))
        .unwrap();
    control.clear_requests();
    s.host.write_line(&json!({"op": "sync"}).to_string());
    // The other folders' deltas are answered: the default folder's is in flight (slowed).
    wait_log(&s.emu, "the other folders' deltas", |log| {
        log.iter()
            .filter(|e| {
                e.path.ends_with("/contacts/delta")
                    && e.status == Some(200)
                    && !e.path.starts_with(&default_delta_prefix())
            })
            .count()
            >= 2
    });
    s.emu.restart().expect("serve again on the same port");
    let reply = s.host.read_reply();
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["added"], 1, "{reply}");
    let log = control.requests();
    assert!(
        log.iter().all(|e| e.fault.is_none()),
        "the slowed request was cut by the restart, never answered:\n{}",
        show(&log)
    );
    assert!(
        on_prefix(&log, &default_delta_prefix())
            .iter()
            .any(|e| e.status == Some(200)),
        "{}",
        show(&log)
    );
    assert_recovered(&mut s, Some((&id, "030 2991113")));
    assert!(s.host.quit().success());
}

/// Sleep and resume: the network is gone (connections refused) for several sync attempts,
/// during which the machine "sleeps" three hours (the emulator clock jumps: the access token
/// the plugin still trusts has expired). Calls keep being answered throughout; when the
/// network is back, the next periodic sync refreshes the token and succeeds with no action.
#[test]
fn network_gone_for_a_while_then_back_recovers_on_its_own() {
    let Some(mut s) = synced_story_with(story::emulator(), json!({"sync_interval_s": 10}), |b| b)
    else {
        return;
    };
    let before = story::state(&mut s.host);
    let last_sync = before["last_sync"].clone();
    s.emu.stop_serving();
    // A periodic sync fails (after its retries); nothing is lost meanwhile.
    let state = story::wait_state(&mut s.host, "a failed periodic sync", |st| {
        st["last_error"].is_string()
    });
    assert_eq!(state["microsoft_integration"], "active", "{state}");
    assert_eq!(state["contacts"], before["contacts"], "{state}");
    assert_eq!(state["last_sync"], last_sync, "{state}");
    assert_old_data_answers(&mut s);

    // Asleep for three hours; a contact was added meanwhile.
    let control = s.emu.control().clone();
    control.advance_clock(3 * 3600);
    let id = add_contact(&s, "Nach dem Schlaf", "+49 30 2991114");
    assert_old_data_answers(&mut s);
    control.clear_requests();
    s.emu.start_serving().expect("the network is back");

    // No op from the user: the periodic sync catches up by itself.
    let target = before["contacts"].as_u64().unwrap() + 1;
    story::wait_state(&mut s.host, "the next periodic sync", |st| {
        st["contacts"] == target && st["last_error"].is_null()
    });
    let log = control.requests();
    let shown = show(&log);
    let refused = log
        .iter()
        .position(|e| e.status == Some(401))
        .unwrap_or_else(|| panic!("the stale token was refused:\n{shown}"));
    let refreshed = log
        .iter()
        .position(is_refresh)
        .unwrap_or_else(|| panic!("a refresh:\n{shown}"));
    assert!(refused < refreshed, "{shown}");
    assert_recovered(&mut s, Some((&id, "030 2991114")));
    assert!(s.host.quit().success());
}

// ------------------------------------------------------------------------------------------
// Clock skew

/// The server's clock runs ten minutes ahead of ours. Access tokens live eight minutes, so the
/// token the plugin still trusts is expired for the server: 401, one refresh, the sync runs
/// again. A 429 whose `Retry-After` is a date on the server's clock is waited out as meant
/// (seconds, not ten minutes, and not given up).
#[test]
fn clock_skew_server_ten_minutes_ahead() {
    let emu = story::emulator_with(EmulatorConfig {
        access_token_lifetime_secs: 480,
        ..EmulatorConfig::default()
    });
    let Some(mut s) = synced_story(emu) else {
        return;
    };
    let control = s.emu.control().clone();
    control.skew_clock(600);
    let id = add_contact(&s, "Uhr vor", "+49 30 2991115");
    let (date, until) = emulator_http_date(&s.emu, 4);
    control
        .inject_fault(rule(
            &default_delta_prefix(),
            1,
            Fault::Status {
                status: 429,
                retry_after: Some(date.clone()),
            },
        ))
        .unwrap();
    control.clear_requests();
    let reply = sync(&mut s);
    assert_eq!(reply["added"], 1, "{reply}");
    let log = control.requests();
    let shown = show(&log);
    let refused = log
        .iter()
        .position(|e| e.status == Some(401))
        .unwrap_or_else(|| panic!("the token was expired for the server:\n{shown}"));
    let refreshed = log
        .iter()
        .position(is_refresh)
        .unwrap_or_else(|| panic!("a refresh:\n{shown}"));
    assert!(refused < refreshed, "{shown}");
    let on_path: Vec<_> = on_prefix(&log, &default_delta_prefix())
        .into_iter()
        .filter(|e| e.status != Some(401))
        .collect();
    assert_eq!(
        statuses(&on_path),
        [Some(429), Some(200)],
        "retried after the date, not given up:\n{shown}"
    );
    assert!(
        log_secs(on_path[1]) >= until - 1,
        "retried before {date}:\n{shown}"
    );
    assert_recovered(&mut s, Some((&id, "030 2991115")));
    assert!(s.host.quit().success());
}

/// The server's clock runs ten minutes behind ours from the start: sign-in, sync and refresh
/// work, and a `Retry-After` date on the server's clock (ten minutes in our past) is still
/// waited out instead of hammering the server at once.
#[test]
fn clock_skew_server_ten_minutes_behind() {
    let emu = story::emulator();
    emu.control().skew_clock(-600);
    let Some(mut s) = synced_story(emu) else {
        return;
    };
    let control = s.emu.control().clone();
    let id = add_contact(&s, "Uhr nach", "+49 30 2991116");
    // A refresh on the skewed clock works too.
    control.expire_access_tokens(ADELE_UPN).unwrap();
    let (date, until) = emulator_http_date(&s.emu, 4);
    control
        .inject_fault(rule(
            &default_delta_prefix(),
            1,
            Fault::Status {
                status: 429,
                retry_after: Some(date.clone()),
            },
        ))
        .unwrap();
    control.clear_requests();
    let reply = sync(&mut s);
    assert_eq!(reply["added"], 1, "{reply}");
    let log = control.requests();
    let shown = show(&log);
    assert!(log.iter().any(is_refresh), "{shown}");
    let on_path: Vec<_> = on_prefix(&log, &default_delta_prefix())
        .into_iter()
        .filter(|e| e.status != Some(401))
        .collect();
    assert_eq!(statuses(&on_path), [Some(429), Some(200)], "{shown}");
    assert!(
        log_secs(on_path[1]) >= until - 1,
        "retried before {date} (server clock):\n{shown}"
    );
    assert_recovered(&mut s, Some((&id, "030 2991116")));
    assert!(s.host.quit().success());
}
