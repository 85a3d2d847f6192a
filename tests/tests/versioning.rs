//! Plugin API versioning, end to end: what loads where, and how refusals are reported.
//!
//! The fixtures are generated from the current host-api by `contact_ms365_e2e::compat`
//! (a next-minor, a next-major and a broken-layout copy), so these tests follow host-api as it
//! changes. See `tests/fixtures/README.md`.

use std::{path::Path, process::Command, time::Duration};

use contact_ms365_e2e::{
    PluginsDir, ScriptHost, build_workspace_artifacts,
    compat::{self, Variant, current_host_api_version},
    dylib_file_name, foreign_shared_library, output_with_timeout, temp_dir,
};
use serde_json::{Value, json};

const GUARD: Duration = Duration::from_secs(120);

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// Runs the next-minor fixture host on `plugin` and returns its JSON line and exit code.
fn run_compat_host(plugin: &Path) -> (Value, Option<i32>, String) {
    let data = temp_dir("e2e-compat-host-");
    let out = output_with_timeout(
        Command::new(compat::compat_host())
            .arg(plugin)
            .arg(data.path())
            .env("RUST_LOG", "debug"),
        GUARD,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "the fixture host prints one JSON line; got {stdout:?}\nstderr:\n{stderr}"
    );
    let report: Value = serde_json::from_str(lines[0])
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr:\n{stderr}", lines[0]));
    (report, out.status.code(), stderr)
}

fn context_op() -> Value {
    json!({
        "op": "context",
        "username": "alice@contoso.example",
        "addons": ["contact_connect"],
        "country": "DE",
        "legacy_presence_integration": false,
    })
}

fn assert_one_line(reason: &Value) -> &str {
    let reason = reason
        .as_str()
        .unwrap_or_else(|| panic!("reason is a string: {reason}"));
    assert!(!reason.trim().is_empty(), "empty reason");
    assert!(
        !reason.contains('\n') && !reason.contains('\r'),
        "reason is one line: {reason:?}"
    );
    reason
}

/// Control: the fixture plugin and the fixture host, both built against the next-minor
/// host-api, use everything that minor version added. Proves the fixtures themselves work, so
/// the cross-version tests below test versioning and nothing else.
#[test]
fn next_minor_fixture_plugin_in_next_minor_fixture_host() {
    let plugin = compat::compat_plugin(Variant::NextMinor);
    let (report, code, stderr) = run_compat_host(plugin);
    assert_eq!(code, Some(0), "{report}\n{stderr}");
    let next = Variant::NextMinor.version().api();
    assert_eq!(report["loaded"], true, "{report}");
    assert_eq!(report["host_api"], next.as_str());
    assert_eq!(report["plugin"]["api_version"], next.as_str());
    assert_eq!(report["plugin"]["name"], "Compatibility fixture");

    let calls = &report["calls"];
    for (name, call) in calls.as_object().unwrap() {
        if call.get("ok").is_some() {
            assert_eq!(call["ok"], true, "{name}: {call}");
        }
    }
    // The phonebook is built from the context (country DE normalizes 030 ... to +4930...).
    let caller = &calls["incoming_call_known"]["value"];
    assert_eq!(caller["display_name"], "Ada Lovelace", "{report}");
    assert_eq!(caller["number"], "+49301234567");
    assert_eq!(calls["incoming_call_unknown"]["value"], Value::Null);
    assert_eq!(
        calls["search_phonebook"]["value"][0]["contact_id"], "fx-1",
        "{report}"
    );
    // The plugin's new extension operation.
    assert_eq!(
        calls["extension_phonebook_size"]["value"], "{\"contacts\":3}",
        "{report}"
    );
    // The plugin knows the new status and the host's new operation.
    let ooo = report["out_of_office_raw"].clone();
    assert_eq!(
        calls["state_after"]["contact_status"]["raw"], ooo,
        "{report}"
    );
    let cb = &report["callbacks"];
    assert_eq!(cb["statuses"][0]["raw"], ooo, "{report}");
    assert_eq!(cb["extension_ops"][0]["op"], "compat.out_of_office");
    assert_eq!(cb["extension_ops"][0]["known"], true);
    let note = &cb["notifications"][0];
    assert_eq!(note["kind"], "compat_fixture", "{report}");
    assert!(
        note["message"]
            .as_str()
            .unwrap()
            .contains("ok: {\"acknowledged\":true}"),
        "{report}"
    );
    assert!(
        cb["logs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["message"] == "shut down"),
        "{report}"
    );
}

/// (a) Older plugin, newer host — the common case in the field: the real plugin, built
/// against the current host-api, loads in a host built against the next minor version and
/// answers every call; the host's new status value and new extension operation do not break
/// it (the unknown operation is answered `unsupported`).
#[test]
fn current_plugin_works_in_a_next_minor_host() {
    let artifacts = build_workspace_artifacts();
    let (report, code, stderr) = run_compat_host(&artifacts.plugin);
    assert_eq!(code, Some(0), "{report}\n{stderr}");
    assert_eq!(report["loaded"], true, "{report}\n{stderr}");
    assert_eq!(
        report["plugin"]["api_version"],
        current_host_api_version().api(),
        "{report}"
    );
    assert_eq!(report["host_api"], Variant::NextMinor.version().api());
    assert_eq!(report["constructed"]["ok"], true, "{report}");

    let calls = &report["calls"];
    for name in [
        "apply_context",
        "apply_settings",
        "incoming_call_known",
        "incoming_call_unknown",
        "search_phonebook",
        "on_status_change_busy",
        "shutdown",
    ] {
        assert_eq!(calls[name]["ok"], true, "{name}: {report}\n{stderr}");
    }
    // Signed out, no contacts: nobody is known, nothing is found.
    assert_eq!(calls["incoming_call_known"]["value"], Value::Null);
    assert_eq!(calls["incoming_call_unknown"]["value"], Value::Null);
    assert_eq!(calls["search_phonebook"]["value"], json!([]));
    assert_eq!(calls["state"]["microsoft_integration"], "off", "{report}");

    // A status added after the plugin was built: treated as unknown, never a panic.
    let ooo = &calls["on_status_change_out_of_office"];
    assert!(
        ooo["ok"] == true || ooo["error"]["code"] != "panicked",
        "new status value: {ooo}\n{stderr}"
    );
    // An extension operation the plugin does not know.
    let ext = &calls["extension_phonebook_size"];
    assert_eq!(ext["ok"], false, "{ext}");
    assert_eq!(ext["error"]["code"], report["unsupported_code"], "{ext}");
}

/// (b) Newer plugin, older host: the next-minor fixture loads in the real demo host, reports
/// API 1.(minor+1), answers calls through the scripted mode, and the status value and host
/// extension operation it uses (both unknown to this host) neither crash the host nor fail:
/// the host answers the operation `unsupported`.
#[test]
fn next_minor_plugin_works_in_the_current_demo_host() {
    let artifacts = build_workspace_artifacts();
    let fixture = compat::compat_plugin(Variant::NextMinor);
    let plugins = PluginsDir::new().with(fixture);
    let mut host = ScriptHost::builder(&artifacts.demo_host)
        .plugins_dir(plugins.path())
        .env("RUST_LOG", "debug")
        .spawn();

    let loaded = host.wait_event("plugin_loaded", GUARD);
    assert_eq!(loaded["file"], file_name(fixture), "{loaded}");
    assert_eq!(loaded["name"], "Compatibility fixture", "{loaded}");
    assert_eq!(loaded["version"], "0.3.0", "{loaded}");
    assert_eq!(
        loaded["api_version"],
        Variant::NextMinor.version().api(),
        "{loaded}"
    );

    // The context change makes the fixture send OUT_OF_OFFICE and call the host's new
    // operation; it then reports what the host answered.
    host.send_ok(context_op());
    let note = host.wait_event("notification", GUARD);
    assert_eq!(note["kind"], "compat_fixture", "{note}");
    assert_eq!(
        note["message"], "host extension compat.out_of_office: unsupported",
        "{note}"
    );

    let reply =
        host.send_ok(json!({"op": "incoming_call", "call_id": "c-1", "number": "030 1234567"}));
    let caller = &reply["caller"];
    assert_eq!(caller["display_name"], "Ada Lovelace", "{reply}");
    assert_eq!(caller["company"], "Analytical Engines Ltd", "{reply}");
    assert_eq!(caller["number"], "+49301234567", "{reply}");
    assert_eq!(caller["number_type"], "business", "{reply}");
    assert_eq!(caller["source"], "outlook", "{reply}");
    assert_eq!(caller["contact_id"], "fx-1", "{reply}");

    let reply =
        host.send_ok(json!({"op": "incoming_call", "call_id": "c-2", "number": "+49 89 99999999"}));
    assert_eq!(reply["caller"], Value::Null, "{reply}");

    let reply = host.send_ok(json!({"op": "search", "query": "babbage", "limit": 5}));
    assert_eq!(
        reply["results"][0]["display_name"], "Charles Babbage",
        "{reply}"
    );
    assert_eq!(reply["results"].as_array().unwrap().len(), 1, "{reply}");

    // The host still works after receiving a status it does not know.
    host.send_ok(json!({"op": "status", "status": "busy"}));
    let reply = host.send(json!({"op": "state"}));
    assert_eq!(reply["reply"], "state", "{reply}");
    assert!(host.quit().success(), "exit status");
    assert!(
        host.stderr()
            .contains("compat.out_of_office answered: unsupported"),
        "the fixture's log line reaches the host's log"
    );
}

/// (c) A plugin built for the next major version is refused with one line naming both
/// versions; the host goes on and exits cleanly.
#[test]
fn next_major_plugin_is_rejected_naming_both_versions() {
    let artifacts = build_workspace_artifacts();
    let fixture = compat::compat_plugin(Variant::NextMajor);
    let plugins = PluginsDir::new().with(fixture);
    let mut host = ScriptHost::builder(&artifacts.demo_host)
        .plugins_dir(plugins.path())
        .spawn();

    let rejected = host.wait_event("plugin_rejected", GUARD);
    assert_eq!(rejected["file"], file_name(fixture), "{rejected}");
    let reason = assert_one_line(&rejected["reason"]);
    let expected = format!(
        "built for host-api {}, this host has host-api {}",
        Variant::NextMajor.version().api(),
        current_host_api_version().api()
    );
    assert!(
        reason.contains(&expected),
        "{reason:?} should say {expected:?}"
    );

    let reply = host.send(json!({"op": "state"}));
    assert_eq!(reply["reply"], "state", "{reply}");
    assert!(host.quit().success());
    assert!(host.events_named("plugin_loaded").is_empty());
}

/// (d) A plugin built from a modified host-api (same version, different layout) is refused
/// with one line; abi_stable's full layout report goes to the log (stderr at debug level),
/// never into the event.
#[test]
fn broken_layout_plugin_is_rejected_with_the_report_only_in_the_log() {
    let artifacts = build_workspace_artifacts();
    let fixture = compat::compat_plugin(Variant::BrokenLayout);
    let plugins = PluginsDir::new().with(fixture);
    let mut host = ScriptHost::builder(&artifacts.demo_host)
        .plugins_dir(plugins.path())
        .env("RUST_LOG", "debug")
        .spawn();

    let rejected = host.wait_event("plugin_rejected", GUARD);
    assert_eq!(rejected["file"], file_name(fixture), "{rejected}");
    let reason = assert_one_line(&rejected["reason"]);
    assert!(reason.contains("layout"), "{reason:?}");
    assert!(
        !reason.contains("CallerInfo"),
        "the layout report stays out of the event: {reason:?}"
    );
    assert!(host.quit().success());
    let log = host.stderr();
    assert!(
        log.contains("CallerInfo"),
        "abi_stable's report (naming the changed type) is in the debug log:\n{}",
        &log[..log.len().min(4000)]
    );
}

/// (e) The real plugin and a next-minor plugin load side by side, each reporting its own API
/// version.
#[test]
fn current_and_next_minor_plugins_load_side_by_side() {
    let artifacts = build_workspace_artifacts();
    let fixture = compat::compat_plugin(Variant::NextMinor);
    let plugins = PluginsDir::new().with(&artifacts.plugin).with(fixture);
    let mut host = ScriptHost::builder(&artifacts.demo_host)
        .plugins_dir(plugins.path())
        .spawn();

    let first = host.wait_event("plugin_loaded", GUARD);
    let second = host.wait_event("plugin_loaded", GUARD);
    let mut loaded: Vec<(String, String)> = [first, second]
        .iter()
        .map(|e| {
            (
                e["file"].as_str().unwrap().to_owned(),
                e["api_version"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    loaded.sort();
    let mut expected = vec![
        (
            file_name(&artifacts.plugin),
            current_host_api_version().api(),
        ),
        (file_name(fixture), Variant::NextMinor.version().api()),
    ];
    expected.sort();
    assert_eq!(loaded, expected);

    host.send_ok(context_op());
    let reply =
        host.send(json!({"op": "incoming_call", "call_id": "c-1", "number": "+49 89 99999999"}));
    assert_eq!(reply["reply"], "incoming_call", "{reply}");
    let reply = host.send(json!({"op": "state"}));
    assert_eq!(reply["reply"], "state", "{reply}");
    assert!(host.quit().success());
    assert!(host.events_named("plugin_rejected").is_empty());
}

/// (f) A corrupt file and a foreign shared library are refused with reasons, a non-library
/// file is ignored, and the real plugin loads and answers every op; `quit` exits 0.
#[test]
fn corrupt_and_foreign_files_are_rejected_while_the_plugin_loads() {
    let artifacts = build_workspace_artifacts();
    let scratch = temp_dir("e2e-foreign-");
    let foreign = foreign_shared_library(scratch.path(), "foreign_tool");
    let plugins = PluginsDir::new().with(&artifacts.plugin).with(&foreign);
    // Bytes that are no library at all (as after a failed download or a disk error).
    let garbage: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let corrupt = plugins.write(dylib_file_name("corrupt_plugin"), &garbage);
    plugins.write("README.txt", "not a library, and not named like one");

    let mut host = ScriptHost::builder(&artifacts.demo_host)
        .plugins_dir(plugins.path())
        .spawn();
    let loaded = host.wait_event("plugin_loaded", GUARD);
    assert_eq!(loaded["file"], file_name(&artifacts.plugin), "{loaded}");
    assert_eq!(loaded["api_version"], current_host_api_version().api());

    let mut reasons = std::collections::BTreeMap::new();
    for _ in 0..2 {
        let e = host.wait_event("plugin_rejected", GUARD);
        let reason = assert_one_line(&e["reason"]).to_owned();
        reasons.insert(e["file"].as_str().unwrap().to_owned(), reason);
    }
    let foreign_reason = &reasons[&file_name(&foreign)];
    assert!(
        foreign_reason.contains("not a Contact Desktop plugin"),
        "{foreign_reason:?}"
    );
    assert!(reasons.contains_key(&file_name(&corrupt)), "{reasons:?}");

    let ops = [
        context_op(),
        json!({"op": "settings"}),
        json!({"op": "state"}),
        json!({"op": "incoming_call", "call_id": "c-1", "number": "+49 89 99999999"}),
        json!({"op": "search", "query": "nobody", "limit": 3}),
        json!({"op": "status", "status": "busy"}),
        json!({"op": "wait", "ms": 1}),
    ];
    for op in ops {
        let reply = host.send(op.clone());
        assert_eq!(reply["reply"], op["op"], "{op} answered {reply}");
        assert!(reply["ok"].is_boolean(), "{reply}");
    }
    assert_eq!(host.send_ok(json!({"op": "state"}))["reply"], "state");
    let status = host.quit();
    assert!(status.success(), "{status:?}");
    assert_eq!(host.events_named("plugin_loaded").len(), 1);
    assert_eq!(host.events_named("plugin_rejected").len(), 2);
}

/// A truncated copy of a real plugin (an interrupted download or copy: a valid ELF header
/// whose segments are missing) is refused like any corrupt file. The dynamic loader maps such
/// a file without complaint and the process dies of SIGBUS on first access, so the loader has
/// to check the file's extent before opening it.
#[test]
fn truncated_plugin_file_is_rejected_not_fatal() {
    let artifacts = build_workspace_artifacts();
    let plugins = PluginsDir::new().with(&artifacts.plugin);
    let bytes = std::fs::read(&artifacts.plugin).unwrap();
    let truncated = plugins.write(
        dylib_file_name("truncated_plugin"),
        &bytes[..bytes.len().min(64 * 1024)],
    );

    let mut host = ScriptHost::builder(&artifacts.demo_host)
        .plugins_dir(plugins.path())
        .spawn();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let e = host.wait_event_any(&["plugin_loaded", "plugin_rejected"], GUARD);
        seen.push(e);
    }
    let rejected = seen
        .iter()
        .find(|e| e["event"] == "plugin_rejected")
        .unwrap_or_else(|| panic!("no plugin_rejected: {seen:?}"));
    assert_eq!(rejected["file"], file_name(&truncated), "{rejected}");
    assert_one_line(&rejected["reason"]);
    assert!(
        seen.iter()
            .any(|e| e["event"] == "plugin_loaded" && e["file"] == file_name(&artifacts.plugin)),
        "{seen:?}"
    );
    assert_eq!(host.send(json!({"op": "state"}))["reply"], "state");
    assert!(host.quit().success());
}

/// The fixture host refuses the next-major fixture too (host-api's loader, without the demo
/// host): a different major version is never loaded, in either direction.
#[test]
fn next_minor_host_refuses_a_next_major_plugin() {
    let (report, code, _stderr) = run_compat_host(compat::compat_plugin(Variant::NextMajor));
    assert_eq!(code, Some(2), "{report}");
    assert_eq!(report["loaded"], false, "{report}");
    let reason = assert_one_line(&report["reason"]);
    let expected = format!(
        "built for host-api {}, this host has host-api {}",
        Variant::NextMajor.version().api(),
        Variant::NextMinor.version().api()
    );
    assert!(reason.contains(&expected), "{reason:?}");
}
