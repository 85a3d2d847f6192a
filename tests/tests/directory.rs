//! Issue 4, end to end: the organization's directory (`directory: true`) synced with users
//! delta into the real plugin, loaded by the real demo host in scripted mode: a colleague's
//! number rings with the colleague's name; a changed phone arrives with the next sync, which
//! asks Graph only for the kept users deltaLink.

use contact_ms365_e2e::story::{self, Story};
use ms365_emulator::tenant::{LEE_ID, LEE_UPN};
use serde_json::{Value, json};

/// Lee Gu's seeded mobile, as an incoming call delivers it.
const LEE_MOBILE: &str = "+491709876543";
/// The mobile number Lee gets in the test.
const LEE_NEW_MOBILE: &str = "+491705554433";

fn call(s: &mut Story, number: &str) -> Value {
    let reply = s
        .host
        .send_ok(json!({"op": "incoming_call", "call_id": "c-dir", "number": number}));
    reply["caller"].clone()
}

/// The directory requests (`/users...`) of the emulator's log since the last call, as
/// `path?query`; the log is cleared.
fn directory_requests(s: &Story) -> Vec<String> {
    let c = s.emu.control();
    let out = c
        .requests()
        .into_iter()
        .filter(|e| e.path.starts_with("/v1.0/users"))
        .map(|e| {
            format!(
                "{}?{}",
                e.path,
                contact_ms365_e2e::percent_decode(&e.query.unwrap_or_default())
            )
        })
        .collect();
    c.clear_requests();
    out
}

#[test]
fn colleague_phone_changes_arrive_with_a_users_delta_round() {
    if !story::have_curl() {
        return;
    }
    let mut s = Story::signed_in_with(story::emulator(), json!({"directory": true}), |b| b);
    // The sync after sign-in (the plugin's own, or this one if it comes first).
    let first = s.host.send_ok(json!({"op": "sync"}));
    assert!(first["contacts"].as_u64().is_some(), "{first}");
    let reqs = directory_requests(&s);
    assert!(
        reqs.first()
            .is_some_and(|r| r.starts_with("/v1.0/users/delta?")
                && r.contains("$select=")
                && !r.contains("$deltatoken=")),
        "the first round reads the whole directory with users delta: {reqs:?}"
    );
    assert!(
        reqs.iter().all(|r| r.starts_with("/v1.0/users/delta?")),
        "no plain listing: {reqs:?}"
    );

    let caller = call(&mut s, LEE_MOBILE);
    assert_eq!(caller["contact_id"], LEE_ID, "{caller}");
    assert_eq!(caller["display_name"], "Lee Gu", "{caller}");
    assert_eq!(caller["source"], "directory", "{caller}");
    assert_eq!(caller["number_type"], "mobile", "{caller}");
    assert_eq!(call(&mut s, LEE_NEW_MOBILE), Value::Null);

    s.emu
        .control()
        .update_user(LEE_UPN, &json!({"mobilePhone": "0170 5554433"}))
        .unwrap();
    let second = s.host.send_ok(json!({"op": "sync"}));
    assert_eq!(second["updated"], 1, "{second}");
    let reqs = directory_requests(&s);
    assert!(
        !reqs.is_empty(),
        "the second sync asked the directory nothing"
    );
    for r in &reqs {
        assert!(
            r.starts_with("/v1.0/users/delta?") && r.contains("$deltatoken="),
            "only the kept deltaLink, no full read: {reqs:?}"
        );
    }

    let caller = call(&mut s, LEE_NEW_MOBILE);
    assert_eq!(caller["contact_id"], LEE_ID, "{caller}");
    assert_eq!(caller["display_name"], "Lee Gu", "{caller}");
    assert_eq!(call(&mut s, LEE_MOBILE), Value::Null, "the old number");

    // Switching the directory off: colleagues stop ringing at once (the index is rebuilt in the
    // background: polled, bounded), no sync needed.
    s.emu.control().clear_requests();
    s.host
        .send_ok(json!({"op": "settings", "directory": false}));
    let mut caller = call(&mut s, LEE_NEW_MOBILE);
    for _ in 0..100 {
        if caller.is_null() {
            break;
        }
        s.host.send_ok(json!({"op": "wait", "ms": 50}));
        caller = call(&mut s, LEE_NEW_MOBILE);
    }
    assert_eq!(
        caller,
        Value::Null,
        "a colleague after the directory was switched off"
    );
    assert!(
        directory_requests(&s).is_empty(),
        "switching the directory off asks Graph nothing"
    );
    // Outlook contacts keep answering.
    let anna = call(&mut s, "+49 89 1234567");
    assert_eq!(anna["display_name"], "Anna Müller", "{anna}");

    // The snapshot is written again without colleagues, so a restart does not bring them back,
    // even before any sync: Graph does not answer any more.
    let snapshot = s.plugin_data().join(contact_ms365::snapshot::SNAPSHOT_FILE);
    let without_colleagues = || {
        contact_ms365::snapshot::read_json(&snapshot).is_ok_and(|v| {
            v["mailbox"]["colleagues"] == json!({})
                && v["mailbox"]["directory_delta_link"].is_null()
                && v["mailbox"]["folders"]
                    .as_object()
                    .is_some_and(|f| !f.is_empty())
        })
    };
    for _ in 0..200 {
        if without_colleagues() {
            break;
        }
        s.host.send_ok(json!({"op": "wait", "ms": 50}));
    }
    assert!(
        without_colleagues(),
        "the snapshot still holds colleagues after the directory was switched off"
    );
    s.emu.stop_serving();
    s.restart();
    story::wait_state(&mut s.host, "the snapshot installed", |st| {
        st["contacts"].as_u64().is_some_and(|n| n > 0)
    });
    assert_eq!(
        call(&mut s, LEE_NEW_MOBILE),
        Value::Null,
        "a colleague came back from the snapshot"
    );
    let anna = call(&mut s, "+49 89 1234567");
    assert_eq!(anna["display_name"], "Anna Müller", "{anna}");
    assert!(s.host.quit().success());
}
