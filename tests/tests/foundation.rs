//! The foundation, end to end (issue 2): licensing, panics at the ABI, the plugin's threads,
//! and the scripted mode's handling of cancellation and bad input, with the real demo host
//! and the real plugin. Where the plugin must reach Microsoft, it talks to the Microsoft 365
//! emulator running in this test process on 127.0.0.1.
//!
//! Every wait is a hang guard (bounded), never a timing assertion.

use std::{
    fs,
    time::{Duration, Instant},
};

use contact_ms365_e2e::{
    PluginsDir, ScriptHost, ScriptHostBuilder, build_workspace_artifacts,
    story::{self, threads_named},
};
use ms365_emulator::{EmulatorHandle, tenant::ADELE_UPN};
use serde_json::{Value, json};

/// Hang guard for one wait.
const GUARD: Duration = Duration::from_secs(60);
/// The name of every thread the plugin starts (`contact_ms365::runtime::THREAD_NAME`).
const PLUGIN_THREAD: &str = "contact-ms365";
/// Error codes of the scripted mode.
const ERROR_CODES: &[&str] = &[
    "bad_request",
    "unlicensed",
    "not_signed_in",
    "sync_failed",
    "timeout",
    "cancelled",
    "plugin_error",
];

fn emulator() -> EmulatorHandle {
    story::emulator()
}

fn plugins() -> PluginsDir {
    story::plugins()
}

fn host(plugins: &PluginsDir) -> ScriptHostBuilder {
    ScriptHost::builder(&build_workspace_artifacts().demo_host)
        .plugins_dir(plugins.path())
        .env("RUST_LOG", "info")
        .env_remove("CONTACT_MS365_INJECT_PANIC")
        // Nothing in these tests may open a real browser.
        .browser("true")
}

fn context(addons: &[&str]) -> Value {
    json!({
        "op": "context",
        "username": ADELE_UPN,
        "addons": addons,
        "country": "DE",
        "legacy_presence_integration": false,
    })
}

/// Waits for the plugin and gives a licensed context.
fn ready(host: &mut ScriptHost) {
    host.wait_event("plugin_loaded", GUARD);
    host.send_ok(context(&["contact_connect"]));
}

/// The settings op that switches Microsoft integration on against `emu`.
fn switch_on_op(emu: &EmulatorHandle) -> Value {
    json!({
        "op": "settings",
        "microsoft_integration": true,
        "authority": emu.authority(),
        "graph": emu.graph_url(),
        "client_id": emu.client_id(),
    })
}

/// The next `state_changed` whose `microsoft_integration` satisfies `wanted`.
fn wait_state(host: &mut ScriptHost, what: &str, wanted: impl Fn(&str) -> bool) -> Value {
    loop {
        let event = host.wait_event("state_changed", GUARD);
        let state = event["state"].clone();
        if wanted(state["microsoft_integration"].as_str().unwrap_or_default()) {
            return state;
        }
        if state["microsoft_integration"] == "error" {
            host.fail(&format!("waiting for {what}, the state became {state}"));
        }
    }
}

fn state_of(host: &mut ScriptHost) -> Value {
    host.send_ok(json!({"op": "state"}))["state"].clone()
}

fn assert_error(reply: &Value, code: &str) {
    assert_eq!(reply["ok"], false, "{reply}");
    assert_eq!(reply["error"]["code"], code, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.trim().is_empty()),
        "a message for a person: {reply}"
    );
}

/// An answer or a clear error: `ok: true`, or one of the documented codes with a message.
fn assert_answer_or_clear_error(reply: &Value) {
    if reply["ok"] == true {
        return;
    }
    let code = reply["error"]["code"].as_str().unwrap_or_default();
    assert!(ERROR_CODES.contains(&code), "a documented code: {reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.trim().is_empty()),
        "{reply}"
    );
}

/// Without the Contact Connect add-on, switching Microsoft integration on is refused:
/// `unlicensed` reply, an `unlicensed` notification, state `unlicensed`. When the add-on
/// arrives later (a `context` op), the integration starts on its own and signs in.
#[test]
fn unlicensed_until_the_add_on_arrives() {
    let emu = emulator();
    let plugins = plugins();
    let scratch = contact_ms365_e2e::temp_dir("e2e-license-");
    let mut host = host(&plugins)
        .sso_command(story::host_login(&emu, scratch.path()).0)
        .spawn();
    host.wait_event("plugin_loaded", GUARD);
    host.send_ok(context(&["contact_basic"]));

    let reply = host.send(switch_on_op(&emu));
    assert_error(&reply, "unlicensed");
    let note = loop {
        let n = host.wait_event("notification", GUARD);
        if n["kind"] == "unlicensed" {
            break n;
        }
    };
    assert!(
        note["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{note}"
    );
    let state = state_of(&mut host);
    assert_eq!(state["microsoft_integration"], "unlicensed", "{state}");
    assert_eq!(state["signed_in_as"], Value::Null, "{state}");
    // Other operations still answer ("not signed in" at most).
    let reply = host.send(json!({"op": "sync"}));
    assert_answer_or_clear_error(&reply);
    assert_eq!(reply["ok"], false, "{reply}");
    let reply = host.send_ok(json!({"op": "search", "query": "Anna"}));
    assert_eq!(reply["results"], json!([]), "{reply}");

    host.send_ok(context(&["contact_basic", "contact_connect"]));
    let state = wait_state(&mut host, "active", |s| s == "active");
    assert_eq!(state["signed_in_as"], ADELE_UPN, "{state}");
    assert_eq!(
        state_of(&mut host)["microsoft_integration"],
        "active",
        "the add-on started it"
    );
    assert_eq!(
        host.events_named("notification")
            .iter()
            .filter(|n| n["kind"] == "unlicensed")
            .count(),
        1
    );
    assert!(host.quit().success());
}

/// A panic inside the plugin (test hook `CONTACT_MS365_INJECT_PANIC`) is caught at the ABI:
/// the op is answered `plugin_error`, the host keeps answering later ops (including the same
/// entry point again) and exits 0.
#[test]
fn a_panicking_entry_point_answers_plugin_error_and_the_host_lives_on() {
    let plugins = plugins();
    let mut host = host(&plugins)
        .env(
            "CONTACT_MS365_INJECT_PANIC",
            "on_incoming_call,search_phonebook",
        )
        .spawn();
    ready(&mut host);

    let call = json!({"op": "incoming_call", "call_id": "c1", "number": "+49 89 1234567"});
    assert_error(&host.send(call.clone()), "plugin_error");
    assert_error(
        &host.send(json!({"op": "search", "query": "Anna", "limit": 5})),
        "plugin_error",
    );
    // The host and the plugin go on.
    let state = state_of(&mut host);
    assert_eq!(state["microsoft_integration"], "off", "{state}");
    host.send_ok(json!({"op": "status", "status": "busy"}));
    assert_eq!(state_of(&mut host)["contact_status"], "busy");
    assert_error(&host.send(call), "plugin_error");
    host.send_ok(json!({"op": "wait", "ms": 1}));
    assert!(host.quit().success());
    assert!(
        host.stderr().contains("injected panic"),
        "the panic is logged:\n{}",
        host.stderr()
    );
}

/// Polls (bounded) until the plugin thread count of `pid` satisfies `ok`; returns it.
#[cfg(target_os = "linux")]
fn poll_threads(pid: u32, what: &str, ok: impl Fn(usize) -> bool) -> usize {
    let deadline = Instant::now() + GUARD;
    loop {
        let n = threads_named(pid, PLUGIN_THREAD);
        if ok(n) {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "hang guard: {what} (now {n} threads named {PLUGIN_THREAD})"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Switching Microsoft integration on starts plugin threads (named `contact-ms365`) in the
/// demo-host process; switching it off stops every one of them, again and again (libraries
/// are never unloaded, so no thread may outlive a disable).
#[cfg(target_os = "linux")]
#[test]
fn switching_off_stops_every_plugin_thread() {
    let emu = emulator();
    let plugins = plugins();
    let mut host = host(&plugins).spawn();
    ready(&mut host);
    let pid = host.pid();
    assert_eq!(threads_named(pid, PLUGIN_THREAD), 0, "none while off");

    for round in 0..2 {
        host.send_ok(switch_on_op(&emu));
        let running = poll_threads(pid, "plugin threads start", |n| n > 0);
        // The sign-in is under way (the browser was "opened"): the plugin is really working.
        wait_state(&mut host, "signing_in", |s| s == "signing_in");
        host.wait_event("open_url", GUARD);
        let state = host.send_ok(json!({"op": "settings", "microsoft_integration": false}));
        assert_eq!(state["state"]["microsoft_integration"], "off", "{state}");
        poll_threads(pid, "every plugin thread stops", |n| n == 0);
        eprintln!("round {round}: {running} plugin threads while on, 0 after switching off");
    }
    assert!(host.quit().success());
}

/// `quit` while a long `wait` runs: the wait is answered `cancelled` at once, `quit` is
/// answered ok, and the host exits 0.
#[test]
fn quit_during_a_long_wait_cancels_it_and_exits_0() {
    let plugins = plugins();
    let mut host = host(&plugins).spawn();
    ready(&mut host);
    host.write_line(&json!({"op": "wait", "ms": 600_000}).to_string());
    host.write_line(&json!({"op": "quit"}).to_string());
    let wait = host.read_reply();
    assert_eq!(wait["reply"], "wait", "{wait}");
    assert_error(&wait, "cancelled");
    let quit = host.read_reply();
    assert_eq!(quit["reply"], "quit", "{quit}");
    assert_eq!(quit["ok"], true, "{quit}");
    host.close_stdin();
    let status = host.wait_exit(GUARD);
    assert!(
        status.success(),
        "{}",
        contact_ms365_e2e::describe_exit(status)
    );
}

/// Malformed lines (not JSON, not an object, unknown op, unknown field, wrong type, blank) are
/// each answered `bad_request` (naming the op when the line had one) and the host goes on.
#[test]
fn malformed_lines_get_bad_request_and_the_host_goes_on() {
    let plugins = plugins();
    let mut host = host(&plugins).spawn();
    ready(&mut host);
    let cases: &[(&str, Value)] = &[
        ("this is not json", Value::Null),
        ("{\"op\": \"state\"", Value::Null),
        ("[1, 2, 3]", Value::Null),
        ("\"state\"", Value::Null),
        ("", Value::Null),
        ("   ", Value::Null),
        ("{}", Value::Null),
        ("{\"op\": \"frobnicate\"}", json!("frobnicate")),
        ("{\"op\": 7}", Value::Null),
        ("{\"op\": \"state\", \"bogus\": 1}", json!("state")),
        ("{\"op\": \"wait\", \"ms\": \"ten\"}", json!("wait")),
        ("{\"op\": \"wait\", \"ms\": -1}", json!("wait")),
        ("{\"op\": \"search\", \"query\": 5}", json!("search")),
        (
            "{\"op\": \"search\", \"query\": \"a\", \"limit\": 1.5}",
            json!("search"),
        ),
        (
            "{\"op\": \"settings\", \"microsoft_integration\": \"yes\"}",
            json!("settings"),
        ),
        (
            "{\"op\": \"status\", \"status\": \"sleepy\"}",
            json!("status"),
        ),
        (
            "{\"op\": \"context\", \"addons\": \"contact_connect\"}",
            json!("context"),
        ),
    ];
    for (line, op) in cases {
        let reply = host.send_line(line);
        assert_error(&reply, "bad_request");
        assert_eq!(reply["reply"], *op, "line {line:?}: {reply}");
    }
    let state = state_of(&mut host);
    assert_eq!(state["microsoft_integration"], "off", "{state}");
    assert_eq!(state["contact_status"], "online", "{state}");
    assert!(host.quit().success());
}

/// A settings op with a value out of range (or of the wrong kind) is `bad_request` and none
/// of its settings is applied, whether the host or the plugin finds the fault: Microsoft
/// integration stays off, no state change is reported and nothing is saved.
#[test]
fn settings_out_of_range_are_refused_and_nothing_is_applied() {
    let emu = emulator();
    let plugins = plugins();
    let mut host = host(&plugins).spawn();
    ready(&mut host);
    let before = state_of(&mut host);
    let changes_before = host.events_named("state_changed").len();

    let faults = [
        json!({"sync_interval_s": 9}),
        json!({"sync_interval_s": 1_000_000_000u64}),
        json!({"presence_poll_ms": 199}),
        json!({"sign_in_method": "carrier_pigeon"}),
        json!({"token_store": "shoebox"}),
        json!({"authority": "not a url"}),
        json!({"authority": "http://login.example.com/organizations/v2.0"}),
        json!({"graph": "ftp://127.0.0.1/v1.0"}),
        json!({"client_id": ""}),
        json!({"outside_line_prefixes": "0"}),
        json!({"remember_login": 1}),
    ];
    for fault in faults {
        let mut op = switch_on_op(&emu);
        op["presence_integration"] = json!(true);
        op["remember_login"] = json!(true);
        op.as_object_mut()
            .unwrap()
            .extend(fault.as_object().unwrap().clone());
        let reply = host.send(op.clone());
        assert_error(&reply, "bad_request");
        let now = state_of(&mut host);
        assert_eq!(now, before, "nothing applied after {op}");
    }
    assert_eq!(
        host.events_named("state_changed").len(),
        changes_before,
        "no state change: {:?}",
        host.events()
    );
    let settings = host
        .data_dir()
        .join("libcontact_ms365")
        .join("settings.json");
    if let Ok(text) = fs::read_to_string(&settings) {
        let saved: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert_ne!(saved["microsoft_integration"], true, "saved: {text}");
    }
    // A valid op afterwards is applied.
    host.send_ok(json!({"op": "settings", "sync_interval_s": 10, "presence_poll_ms": 200}));
    assert_eq!(state_of(&mut host)["microsoft_integration"], "off");
    assert!(host.quit().success());
}

/// Bad input carried across the ABI while the integration is active with contacts: a 1 MB
/// number, a 1 MB query, control characters, `limit` 0 and a huge limit each get an answer
/// (or a clear error), and the plugin still identifies callers afterwards.
#[test]
fn bad_input_at_the_abi_gets_a_clear_answer_and_the_host_stays_up() {
    let emu = emulator();
    let plugins = plugins();
    let scratch = contact_ms365_e2e::temp_dir("e2e-abi-input-");
    let mut host = host(&plugins)
        .sso_command(story::host_login(&emu, scratch.path()).0)
        .spawn();
    ready(&mut host);
    host.send_ok(switch_on_op(&emu));
    wait_state(&mut host, "active", |s| s == "active");
    let synced = host.send_ok(json!({"op": "sync"}));
    assert!(
        synced["contacts"].as_u64().is_some_and(|n| n > 0),
        "{synced}"
    );
    let known = json!({"op": "incoming_call", "call_id": "known", "number": "+49 89 1234567"});
    let reply = host.send_ok(known.clone());
    assert_eq!(reply["caller"]["display_name"], "Anna Müller", "{reply}");

    let megabyte = 1 << 20;
    let huge_number = "4".repeat(megabyte);
    let reply = host.send(json!({"op": "incoming_call", "call_id": "big", "number": huge_number}));
    assert_answer_or_clear_error(&reply);
    if reply["ok"] == true {
        assert_eq!(reply["caller"], Value::Null, "no one has a 1 MB number");
    }
    let mixed = "+49 89 1234567 ".repeat(megabyte / 15);
    let reply = host.send(json!({"op": "incoming_call", "call_id": "big2", "number": mixed}));
    assert_answer_or_clear_error(&reply);

    let huge_query = "Anna ".repeat(megabyte / 5);
    let reply = host.send(json!({"op": "search", "query": huge_query, "limit": 20}));
    assert_answer_or_clear_error(&reply);
    if reply["ok"] == true {
        assert!(
            reply["results"].as_array().is_some_and(|r| r.len() <= 20),
            "limit kept"
        );
    }

    let controls = "\u{0}\u{7}\u{8}\u{1b}[31m\u{7f}\u{202e}\u{feff}";
    for number in [
        controls.to_owned(),
        format!("+49 89\u{0}1234567{controls}"),
        format!("tel:{controls}"),
        "\u{0}".repeat(1000),
    ] {
        let reply = host.send(json!({"op": "incoming_call", "call_id": "ctl", "number": number}));
        assert_answer_or_clear_error(&reply);
    }
    for query in [
        controls.to_owned(),
        format!("An{controls}na"),
        "\u{0}".repeat(1000),
    ] {
        let reply = host.send(json!({"op": "search", "query": query, "limit": 5}));
        assert_answer_or_clear_error(&reply);
        if reply["ok"] == true {
            assert!(
                reply["results"].as_array().is_some_and(|r| r.len() <= 5),
                "{reply}"
            );
        }
    }

    let reply = host.send_ok(json!({"op": "search", "query": "Anna", "limit": 0}));
    assert_eq!(reply["results"], json!([]), "limit 0 gives no results");
    let reply = host.send_ok(json!({"op": "search", "query": "Anna", "limit": 5}));
    assert!(
        reply["results"].as_array().is_some_and(|r| !r.is_empty()),
        "the same search finds Anna: {reply}"
    );
    for limit in [json!(201), json!(u32::MAX), json!(u64::MAX)] {
        let reply = host.send(json!({"op": "search", "query": "", "limit": limit}));
        assert_answer_or_clear_error(&reply);
        if reply["ok"] == true {
            let n = reply["results"].as_array().map_or(0, Vec::len);
            assert!(n <= 200, "at most 200 results for limit {limit}: {n}");
        }
        let reply = host.send_ok(json!({"op": "search", "query": "a", "limit": limit}));
        let n = reply["results"].as_array().map_or(0, Vec::len);
        assert!((1..=200).contains(&n), "limit {limit}: {n} results");
    }
    // Larger than any integer the protocol takes: the host refuses it clearly.
    let reply = host.send_line(r#"{"op":"search","query":"a","limit":1e300}"#);
    assert_error(&reply, "bad_request");

    // Still up, still identifying callers.
    let state = state_of(&mut host);
    assert_eq!(state["microsoft_integration"], "active", "{state}");
    let reply = host.send_ok(known);
    assert_eq!(reply["caller"]["display_name"], "Anna Müller", "{reply}");
    assert!(host.quit().success());
}
