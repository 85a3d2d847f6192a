//! The `script_line` fuzz target's body, shared by the `cargo fuzz` target in `fuzz/` and the
//! regression test `tests/fuzz_regressions.rs` (which replays every saved input on stable, in
//! `cargo test`). Not part of the demo host's interface.

use host_api::SettingsUpdate;
use serde_json::{Map, Value, json};

use crate::protocol::{Op, parse_line};

/// A request line that asks for exactly `op` (every field explicit), as a script would write it.
pub fn op_json(op: &Op) -> Value {
    let mut m = Map::new();
    m.insert("op".into(), op.name().into());
    let mut put = |k: &str, v: Value| {
        m.insert(k.into(), v);
    };
    match op {
        Op::Context(c) => {
            if let Some(v) = &c.username {
                put("username", v.as_str().into());
            }
            if let Some(v) = &c.addons {
                put("addons", json!(v));
            }
            if let Some(v) = &c.country {
                put("country", v.as_str().into());
            }
            if let Some(v) = c.legacy_presence_integration {
                put("legacy_presence_integration", v.into());
            }
        }
        Op::Settings { plugin, update } => {
            if let Some(p) = plugin {
                put("plugin", p.as_str().into());
            }
            settings_json(update, &mut put);
        }
        Op::State { plugin }
        | Op::SignIn { plugin }
        | Op::SignOut { plugin }
        | Op::Sync { plugin } => {
            if let Some(p) = plugin {
                put("plugin", p.as_str().into());
            }
        }
        Op::IncomingCall { call_id, number } => {
            put("call_id", call_id.as_str().into());
            put("number", number.as_str().into());
        }
        Op::Search { query, limit } => {
            put("query", query.as_str().into());
            put("limit", (*limit).into());
        }
        Op::Status(s) => put("status", s.name().unwrap_or("?").into()),
        Op::Wait { ms } => put("ms", (*ms).into()),
        Op::WaitFor { event, timeout_ms } => {
            put("event", event.as_str().into());
            put("timeout_ms", (*timeout_ms).into());
        }
        Op::Quit => {}
    }
    Value::Object(m)
}

fn settings_json(u: &SettingsUpdate, put: &mut impl FnMut(&str, Value)) {
    let bools = [
        ("microsoft_integration", u.microsoft_integration),
        ("presence_integration", u.presence_integration),
        ("remember_login", u.remember_login),
        ("directory", u.directory),
    ];
    for (k, v) in bools {
        if let Some(v) = v.into_option() {
            put(k, v.into());
        }
    }
    let strings = [
        ("sign_in_method", &u.sign_in_method),
        ("token_store", &u.token_store),
        ("authority", &u.authority),
        ("graph", &u.graph),
        ("client_id", &u.client_id),
    ];
    for (k, v) in strings {
        if let Some(v) = v.as_ref().into_option() {
            put(k, v.as_str().into());
        }
    }
    for (k, v) in [
        ("sync_interval_s", u.sync_interval_s),
        ("presence_poll_ms", u.presence_poll_ms),
    ] {
        if let Some(v) = v.into_option() {
            put(k, v.into());
        }
    }
    if let Some(p) = u.outside_line_prefixes.as_ref().into_option() {
        put(
            "outside_line_prefixes",
            p.iter().map(|s| Value::from(s.as_str())).collect(),
        );
    }
}

/// `script_line`: the input is what arrives on standard input, cut into lines as the scripted
/// mode's reader does (at `\n`, invalid UTF-8 replaced, a final `\r` removed).
///
/// Properties: every line is an op or `bad_request`; the reply names the op of an accepted line;
/// an accepted op written back as a request line (one line: JSON escapes line ends) reads as the
/// same op.
pub fn script_line(data: &[u8]) {
    for raw in data.split_inclusive(|&b| b == b'\n') {
        let line = String::from_utf8_lossy(raw);
        let line = line.strip_suffix('\n').unwrap_or(&line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        let request = parse_line(line);
        match &request.op {
            Ok(op) => {
                assert_eq!(request.op_name.as_deref(), Some(op.name()), "{line:?}");
                let back = op_json(op).to_string();
                assert!(!back.contains('\n'));
                assert_eq!(
                    parse_line(&back).op.as_ref(),
                    Ok(op),
                    "{line:?} read as {op:?}, written back as {back}"
                );
            }
            Err(e) => assert_eq!(e.code, crate::errors::code::BAD_REQUEST, "{line:?}: {e:?}"),
        }
    }
}
