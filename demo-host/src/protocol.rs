//! The scripted mode's requests: one JSON object per line, read strictly into an [`Op`].

use host_api::{ContactStatus, SettingsUpdate};
use serde_json::{Map, Value};

use crate::errors::OpError;
use crate::json::{Fields, parse_limit, parse_settings};

/// The `wait_for` time-out when the request names none, in milliseconds.
pub const DEFAULT_WAIT_FOR_MS: u64 = 10_000;

/// Every op name, in the spec's order.
pub const OPS: &[&str] = &[
    "context",
    "settings",
    "state",
    "sign_in",
    "sign_out",
    "sync",
    "incoming_call",
    "search",
    "status",
    "wait",
    "wait_for",
    "quit",
];

/// Fields of a `context` request; `None` leaves the host's current value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContextPatch {
    /// The Contact Desktop username.
    pub username: Option<String>,
    /// Licensed add-ons.
    pub addons: Option<Vec<String>>,
    /// ISO 3166 alpha-2 default region.
    pub country: Option<String>,
    /// An earlier presence integration was configured.
    pub legacy_presence_integration: Option<bool>,
}

/// One request of the scripted mode.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Merge into the host's context and send it to every plugin.
    Context(ContextPatch),
    /// Apply settings to one plugin.
    Settings {
        /// The plugin (name or file name); `None` is the first loaded.
        plugin: Option<String>,
        /// The settings to change.
        update: Box<SettingsUpdate>,
    },
    /// Read one plugin's state.
    State {
        /// The plugin; `None` is the first loaded.
        plugin: Option<String>,
    },
    /// Start an interactive sign-in.
    SignIn {
        /// The plugin; `None` is the first loaded.
        plugin: Option<String>,
    },
    /// Sign out.
    SignOut {
        /// The plugin; `None` is the first loaded.
        plugin: Option<String>,
    },
    /// Run a contact sync and wait for it.
    Sync {
        /// The plugin; `None` is the first loaded.
        plugin: Option<String>,
    },
    /// Look up an incoming caller.
    IncomingCall {
        /// The host's id for the call.
        call_id: String,
        /// The number as delivered (empty when anonymous).
        number: String,
    },
    /// Search the phonebook.
    Search {
        /// The text to search for.
        query: String,
        /// At most this many results (already clamped to 0..=200).
        limit: u32,
    },
    /// The Contact status changed in the host.
    Status(ContactStatus),
    /// Wait this many milliseconds.
    Wait {
        /// Milliseconds.
        ms: u64,
    },
    /// Wait for an event emitted after the op was read.
    WaitFor {
        /// The event name.
        event: String,
        /// How long to wait, milliseconds.
        timeout_ms: u64,
    },
    /// Cancel everything and shut down.
    Quit,
}

impl Op {
    /// The op's name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Context(_) => "context",
            Op::Settings { .. } => "settings",
            Op::State { .. } => "state",
            Op::SignIn { .. } => "sign_in",
            Op::SignOut { .. } => "sign_out",
            Op::Sync { .. } => "sync",
            Op::IncomingCall { .. } => "incoming_call",
            Op::Search { .. } => "search",
            Op::Status(_) => "status",
            Op::Wait { .. } => "wait",
            Op::WaitFor { .. } => "wait_for",
            Op::Quit => "quit",
        }
    }
}

/// A line as read: the op name when the line had one (for the reply's `reply` field), and the
/// op or why it was refused.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// The `op` string of the line, if it had one (known or not).
    pub op_name: Option<String>,
    /// The parsed op, or `bad_request`.
    pub op: Result<Op, OpError>,
}

/// Reads one input line (without its line end). Blank lines, non-JSON, non-objects, unknown
/// ops, unknown fields and wrong types are all `bad_request`.
pub fn parse_line(line: &str) -> Request {
    let line = line.trim();
    if line.is_empty() {
        return Request {
            op_name: None,
            op: Err(OpError::bad_request("empty line: expected a JSON object")),
        };
    }
    let map = match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(map)) => map,
        Ok(_) => {
            return Request {
                op_name: None,
                op: Err(OpError::bad_request("expected a JSON object")),
            };
        }
        Err(e) => {
            return Request {
                op_name: None,
                op: Err(OpError::bad_request(format!("not valid JSON: {e}"))),
            };
        }
    };
    let op_name = match map.get("op") {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let op = parse_object(map);
    Request { op_name, op }
}

/// Reads a request object into an [`Op`].
pub fn parse_object(map: Map<String, Value>) -> Result<Op, OpError> {
    let mut f = Fields::new(map);
    let name = match f.opt_str("op") {
        Ok(Some(name)) => name,
        Ok(None) => return Err(OpError::bad_request("`op` is required")),
        Err(e) => return Err(e),
    };
    let op = match name.as_str() {
        "context" => Op::Context(ContextPatch {
            username: f.opt_str("username")?,
            addons: f.opt_str_array("addons")?,
            country: f.opt_str("country")?,
            legacy_presence_integration: f.opt_bool("legacy_presence_integration")?,
        }),
        "settings" => {
            let plugin = f.opt_str("plugin")?;
            let update = Box::new(parse_settings(&mut f)?);
            Op::Settings { plugin, update }
        }
        "state" => Op::State {
            plugin: f.opt_str("plugin")?,
        },
        "sign_in" => Op::SignIn {
            plugin: f.opt_str("plugin")?,
        },
        "sign_out" => Op::SignOut {
            plugin: f.opt_str("plugin")?,
        },
        "sync" => Op::Sync {
            plugin: f.opt_str("plugin")?,
        },
        "incoming_call" => Op::IncomingCall {
            call_id: f.req_str("call_id")?,
            number: f.opt_str("number")?.unwrap_or_default(),
        },
        "search" => Op::Search {
            query: f.opt_str("query")?.unwrap_or_default(),
            limit: parse_limit(&mut f)?,
        },
        "status" => {
            let s = f.req_str("status")?;
            let status = ContactStatus::from_name(&s).ok_or_else(|| {
                let names: Vec<&str> = ContactStatus::KNOWN
                    .iter()
                    .filter_map(|s| s.name())
                    .collect();
                OpError::bad_request(format!(
                    "unknown Contact status {s:?} (one of {})",
                    names.join(", ")
                ))
            })?;
            Op::Status(status)
        }
        "wait" => Op::Wait {
            ms: f.req_u64("ms")?,
        },
        "wait_for" => Op::WaitFor {
            event: f.req_str("event")?,
            timeout_ms: f.opt_u64("timeout_ms")?.unwrap_or(DEFAULT_WAIT_FOR_MS),
        },
        "quit" => Op::Quit,
        other => {
            return Err(OpError::bad_request(format!(
                "unknown op {other:?} (known: {})",
                OPS.join(", ")
            )));
        }
    };
    f.finish()?;
    Ok(op)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(line: &str) -> (Option<String>, OpError) {
        let r = parse_line(line);
        let e = r.op.expect_err(line);
        assert_eq!(e.code, "bad_request", "{line}: {e}");
        (r.op_name, e)
    }

    #[test]
    fn malformed_lines_are_bad_requests_with_the_op_when_known() {
        assert_eq!(bad("").0, None);
        assert_eq!(bad("   ").0, None);
        assert_eq!(bad("nonsense").0, None);
        assert_eq!(bad("[1,2]").0, None);
        assert_eq!(bad(r#"{"no_op": 1}"#).0, None);
        assert_eq!(bad(r#"{"op": 3}"#).0, None);
        assert_eq!(bad(r#"{"op": "dance"}"#).0.as_deref(), Some("dance"));
        assert_eq!(
            bad(r#"{"op": "state", "x": 1}"#).0.as_deref(),
            Some("state")
        );
        assert_eq!(bad(r#"{"op": "wait"}"#).0.as_deref(), Some("wait"));
        assert_eq!(
            bad(r#"{"op": "wait", "ms": -5}"#).0.as_deref(),
            Some("wait")
        );
        assert_eq!(
            bad(r#"{"op": "wait", "ms": "5"}"#).0.as_deref(),
            Some("wait")
        );
        bad(r#"{"op": "status", "status": "sleeping"}"#);
        bad(r#"{"op": "status"}"#);
        bad(r#"{"op": "incoming_call", "number": "+49"}"#);
        bad(r#"{"op": "incoming_call", "call_id": "c", "number": null}"#);
        bad(r#"{"op": "context", "addons": "contact_connect"}"#);
        bad(r#"{"op": "context", "legacy_presence_integration": 1}"#);
        bad(r#"{"op": "search", "query": "a", "limit": -1}"#);
        bad(r#"{"op": "search", "query": 5}"#);
        bad(r#"{"op": "quit", "now": true}"#);
        bad(r#"{"op": "incoming_call", "call_id": "c", "plugin": "x"}"#);
        let (_, e) = bad(r#"{"op": "settings", "microsoft_integration": true, "bogus": 1}"#);
        assert!(e.message.contains("bogus"));
    }

    #[test]
    fn every_op_parses() {
        let ok = |line: &str| parse_line(line).op.expect(line);
        assert_eq!(
            ok(
                r#"{"op":"context","username":"u","addons":["contact_connect"],"country":"DE","legacy_presence_integration":false}"#
            ),
            Op::Context(ContextPatch {
                username: Some("u".into()),
                addons: Some(vec!["contact_connect".into()]),
                country: Some("DE".into()),
                legacy_presence_integration: Some(false),
            })
        );
        assert_eq!(
            ok(r#"{"op":"context"}"#),
            Op::Context(ContextPatch::default())
        );
        match ok(r#"{"op":"settings","plugin":"Microsoft 365","presence_integration":true}"#) {
            Op::Settings { plugin, update } => {
                assert_eq!(plugin.as_deref(), Some("Microsoft 365"));
                assert_eq!(update.presence_integration, Some(true).into());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(ok(r#"{"op":"state"}"#), Op::State { plugin: None });
        assert_eq!(ok(r#"{"op":"sign_in"}"#), Op::SignIn { plugin: None });
        assert_eq!(
            ok(r#"{"op":"sign_out","plugin":"p"}"#),
            Op::SignOut {
                plugin: Some("p".into())
            }
        );
        assert_eq!(ok(r#"{"op":"sync"}"#), Op::Sync { plugin: None });
        assert_eq!(
            ok(r#"{"op":"incoming_call","call_id":"c1"}"#),
            Op::IncomingCall {
                call_id: "c1".into(),
                number: String::new()
            }
        );
        assert_eq!(
            ok(r#"{"op":"search","query":"ad"}"#),
            Op::Search {
                query: "ad".into(),
                limit: 20
            }
        );
        assert_eq!(
            ok(r#"{"op":"search","query":"ad","limit":1000}"#),
            Op::Search {
                query: "ad".into(),
                limit: 200
            }
        );
        for s in ContactStatus::KNOWN {
            let line = format!(r#"{{"op":"status","status":"{}"}}"#, s.name().unwrap());
            assert_eq!(ok(&line), Op::Status(*s));
        }
        assert_eq!(ok(r#"{"op":"wait","ms":0}"#), Op::Wait { ms: 0 });
        assert_eq!(
            ok(r#"{"op":"wait_for","event":"state_changed"}"#),
            Op::WaitFor {
                event: "state_changed".into(),
                timeout_ms: DEFAULT_WAIT_FOR_MS
            }
        );
        assert_eq!(ok(" {\"op\":\"quit\"}\r"), Op::Quit);
    }
}
