//! The human commands that drive the plugins of the plugins folder: `sync`, `call`, `search`,
//! `status` and `settings`.
//!
//! Each one loads the plugins (with their data folders, so their stored settings, remembered
//! sign-in and contacts snapshot count), gives them the host context of [`crate::profile`],
//! does its one thing, prints the answer readably (or, with `--json`, the reply line the
//! scripted mode would write) and switches the plugins off. Every wait is bounded, and Ctrl-C
//! (or SIGTERM) ends a wait early and still switches the plugins off.
//!
//! Integration ops go to the first plugin loaded (as the scripted mode's default). What the
//! plugins say meanwhile (notifications, the browser they open, a status Teams sets) goes to
//! standard error; standard output has only the result.

use std::{
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use serde_json::{Map, Value};

use crate::{
    demo::describe_event,
    errors::{OpError, code},
    json::parse_settings,
    options::HostOptions,
    output::{LineSink, Output, error_reply, ok_reply, to_line},
    profile::{Profile, ProfileArgs},
    progress::{Console, ProgressView, Stream},
    protocol::Op,
    session::{Fields, Session},
};

/// How long `call` and `search` wait for a plugin to load its contacts snapshot.
const WARM_START_WAIT: Duration = Duration::from_secs(3);
/// How long `status` waits for a sign-in under way and the first Teams presence read.
const STATUS_SETTLE: Duration = Duration::from_secs(4);
/// How long `sync` waits for a silent sign-in (remembered, or the host's SSO).
const SILENT_SIGN_IN_WAIT: Duration = Duration::from_secs(15);
/// Exit code after Ctrl-C / SIGTERM.
const EXIT_INTERRUPTED: u8 = 130;

/// A human command with its own arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HumanCommand {
    /// `sync [--sign-in-timeout S]`.
    Sync {
        /// Seconds to wait for an interactive sign-in.
        sign_in_timeout_s: u64,
    },
    /// `call NUMBER`.
    Call {
        /// The number as a phone system would deliver it.
        number: String,
    },
    /// `search QUERY [--limit N]`.
    Search {
        /// The query.
        query: String,
        /// At most this many results (0..=200).
        limit: u32,
    },
    /// `status`.
    Status,
    /// `settings [KEY=VALUE ...]`.
    Settings {
        /// `KEY=VALUE` pairs.
        pairs: Vec<String>,
    },
}

/// Lines the plugins cause, for a person, on standard error (above the progress bar when one
/// is drawn).
struct HumanSink {
    console: Console,
}

impl LineSink for HumanSink {
    fn reply(&mut self, _: &Value) {}

    fn event(&mut self, event: &Value) {
        let name = event.get("event").and_then(Value::as_str).unwrap_or("");
        // Loading and state changes are what the command itself reports.
        if matches!(
            name,
            "notification" | "open_url" | "plugin_rejected" | "status_changed" | "caller_updated"
        ) {
            self.console.line(&format!("· {}", describe_event(event)));
        }
    }
}

/// Ctrl-C / SIGTERM, turned into a flag that every wait polls.
struct Interrupt {
    flag: Arc<AtomicBool>,
    ids: Vec<signal_hook::SigId>,
}

impl Interrupt {
    fn install() -> Self {
        let flag = Arc::new(AtomicBool::new(false));
        let mut ids = Vec::new();
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            match signal_hook::flag::register(signal, flag.clone()) {
                Ok(id) => ids.push(id),
                Err(e) => tracing::warn!("cannot handle signal {signal}: {e}"),
            }
        }
        Self { flag, ids }
    }

    fn raised(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

impl Drop for Interrupt {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

struct Run {
    session: Session,
    console: Console,
    interrupt: Interrupt,
    json: bool,
}

impl Run {
    fn exec(&self, op: &Op) -> Result<Fields, OpError> {
        let flag = self.interrupt.flag.clone();
        let cancelled = move || flag.load(Ordering::SeqCst);
        self.session
            .execute(op, self.session.output().mark(), &cancelled)
    }

    fn state(&self) -> Option<Value> {
        self.exec(&Op::State { plugin: None })
            .ok()
            .and_then(|mut f| f.remove("state"))
    }

    /// Polls the state every 100 ms until `done` holds, `limit` passes or Ctrl-C; answers the
    /// last state read.
    fn settle(&self, limit: Duration, done: impl Fn(&Value) -> bool) -> Option<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let state = self.state();
            let finished = state.as_ref().is_none_or(&done);
            if finished || Instant::now() >= deadline || self.interrupt.raised() {
                return state;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Prints a successful answer: the text, or the scripted mode's reply line with `--json`.
    fn print_ok(&self, op: &str, fields: Fields, text: impl FnOnce(&Fields) -> String) {
        if self.json {
            println!("{}", to_line(&ok_reply(Some(op), fields)));
        } else {
            println!("{}", text(&fields));
        }
    }

    /// Prints a failure (a reply line on standard output with `--json`, else a line on
    /// standard error) and answers the exit code.
    fn fail(&self, op: &str, e: &OpError) -> ExitCode {
        if self.json {
            println!("{}", to_line(&error_reply(Some(op), e.code, &e.message)));
        } else {
            eprintln!("demo-host: {op}: {} ({})", e.message, e.code);
        }
        if e.code == code::CANCELLED || self.interrupt.raised() {
            ExitCode::from(EXIT_INTERRUPTED)
        } else {
            ExitCode::FAILURE
        }
    }
}

/// Runs a human command: loads the plugins, applies the profile, does the command, switches the
/// plugins off.
pub fn run(options: &HostOptions, args: &ProfileArgs, json: bool, cmd: &HumanCommand) -> ExitCode {
    let profile = match Profile::load(&options.data_dir, args) {
        Ok(p) => p,
        Err(why) => {
            eprintln!("demo-host: {why}");
            return ExitCode::from(2);
        }
    };
    let console = Console::new(Stream::Stderr);
    let interrupt = Interrupt::install();
    let session = Session::start(
        options,
        Output::new(HumanSink {
            console: console.clone(),
        }),
    );
    let run = Run {
        session,
        console,
        interrupt,
        json,
    };
    let code = if run.session.plugins().is_empty() {
        let e = OpError::plugin_error(format!(
            "no plugin loaded from {} (build one with `cargo build -p contact-ms365` and copy \
             the library there, or pass --plugins-dir)",
            options.plugins_dir.display()
        ));
        run.fail(command_op(cmd), &e)
    } else {
        if let Err(e) = run.exec(&Op::Context(profile.context_patch())) {
            // `unlicensed` and the like: the state will say what it means.
            eprintln!(
                "demo-host: the plugin answered the context ({}, {:?}, {}) with {}: {}",
                display_or(&profile.username, "no username"),
                profile.addons,
                profile.country,
                e.code,
                e.message
            );
        }
        match cmd {
            HumanCommand::Sync { sign_in_timeout_s } => {
                sync(&run, Duration::from_secs(*sign_in_timeout_s))
            }
            HumanCommand::Call { number } => call(&run, number),
            HumanCommand::Search { query, limit } => search(&run, query, *limit),
            HumanCommand::Status => status(&run),
            HumanCommand::Settings { pairs } => settings(&run, pairs),
        }
    };
    run.console.set_view(None);
    run.session.shutdown();
    code
}

fn command_op(cmd: &HumanCommand) -> &'static str {
    match cmd {
        HumanCommand::Sync { .. } => "sync",
        HumanCommand::Call { .. } => "incoming_call",
        HumanCommand::Search { .. } => "search",
        HumanCommand::Status => "state",
        HumanCommand::Settings { .. } => "settings",
    }
}

fn field<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn display_or<'a>(text: &'a str, fallback: &'a str) -> &'a str {
    if text.is_empty() { fallback } else { text }
}

fn microsoft(state: &Value) -> &str {
    field(state, "microsoft_integration")
}

fn sync(run: &Run, sign_in_timeout: Duration) -> ExitCode {
    const OP: &str = "sync";
    // A remembered sign-in (or the host's SSO) goes on by itself: give it a moment.
    let mut state = run.settle(SILENT_SIGN_IN_WAIT, |s| microsoft(s) != "signing_in");
    let ms = state.as_ref().map(microsoft).unwrap_or("").to_owned();
    match ms.as_str() {
        "off" => {
            return run.fail(
                OP,
                &OpError::new(
                    code::NOT_SIGNED_IN,
                    "Microsoft integration is off: switch it on first, e.g. \
                     `demo-host settings microsoft_integration=true authority=… graph=… client_id=…`",
                ),
            );
        }
        "unlicensed" => {
            return run.fail(
                OP,
                &OpError::new(
                    code::UNLICENSED,
                    "Microsoft integration needs the contact_connect add-on (--addon contact_connect)",
                ),
            );
        }
        "sign_in_required" | "error" => {
            if !run.json {
                eprintln!(
                    "Signing in: finish it in the browser (or with the code shown); waiting at \
                     most {} s (Ctrl-C to stop).",
                    sign_in_timeout.as_secs()
                );
            }
            if let Err(e) = run.exec(&Op::SignIn { plugin: None }) {
                return run.fail(OP, &e);
            }
            state = run.settle(sign_in_timeout, |s| {
                matches!(microsoft(s), "active" | "off" | "unlicensed")
            });
        }
        _ => {}
    }
    if run.interrupt.raised() {
        return run.fail(OP, &OpError::cancelled());
    }
    if let Some(s) = &state
        && microsoft(s) != "active"
    {
        let why = match s["last_error"].as_str() {
            Some(e) => format!(
                "not signed in (Microsoft integration {}): {e}",
                microsoft(s)
            ),
            None => format!("not signed in (Microsoft integration {})", microsoft(s)),
        };
        return run.fail(OP, &OpError::new(code::NOT_SIGNED_IN, why));
    }
    if !run.json
        && let Some(upn) = state.as_ref().and_then(|s| s["signed_in_as"].as_str())
    {
        eprintln!("Signed in as {upn}.");
    }

    let view = ProgressView::new(Stream::Stderr, "  ");
    run.console.set_view(Some(view.clone()));
    run.session.set_progress_listener(Some(view.listener()));
    let answer = run.exec(&Op::Sync { plugin: None });
    // Progress reports still queued are shown before the result.
    run.session.flush_events();
    run.session.set_progress_listener(None);
    view.finish();
    run.console.set_view(None);
    match answer {
        Ok(fields) => {
            run.print_ok(OP, fields, format_sync);
            ExitCode::SUCCESS
        }
        Err(e) => run.fail(OP, &e),
    }
}

/// Waits (bounded) for a plugin that is on to load its contacts snapshot.
fn warm_start(run: &Run) {
    run.settle(WARM_START_WAIT, |s| {
        matches!(microsoft(s), "off" | "unlicensed") || s["contacts"].as_u64().unwrap_or(0) > 0
    });
}

fn call(run: &Run, number: &str) -> ExitCode {
    const OP: &str = "incoming_call";
    warm_start(run);
    match run.exec(&Op::IncomingCall {
        call_id: "demo-host-call".into(),
        number: number.into(),
    }) {
        Ok(fields) => {
            run.print_ok(OP, fields, |f| format_caller(&f["caller"], number));
            ExitCode::SUCCESS
        }
        Err(e) => run.fail(OP, &e),
    }
}

fn search(run: &Run, query: &str, limit: u32) -> ExitCode {
    const OP: &str = "search";
    warm_start(run);
    match run.exec(&Op::Search {
        query: query.into(),
        limit,
    }) {
        Ok(fields) => {
            run.print_ok(OP, fields, |f| {
                let results = f["results"].as_array().map(Vec::as_slice).unwrap_or(&[]);
                format_results(results, query)
            });
            ExitCode::SUCCESS
        }
        Err(e) => run.fail(OP, &e),
    }
}

fn status(run: &Run) -> ExitCode {
    const OP: &str = "state";
    run.settle(STATUS_SETTLE, |s| {
        microsoft(s) != "signing_in"
            && field(s, "presence_integration") != "pending"
            && (field(s, "presence_integration") != "active" || s["teams_presence"].is_object())
    });
    let plugin = run
        .session
        .plugins()
        .first()
        .map(|p| format!("{} {}", p.name, p.version))
        .unwrap_or_default();
    match run.exec(&Op::State { plugin: None }) {
        Ok(fields) => {
            run.print_ok(OP, fields, |f| {
                format!("{plugin}\n{}", format_status(&f["state"]))
            });
            ExitCode::SUCCESS
        }
        Err(e) => run.fail(OP, &e),
    }
}

fn settings(run: &Run, pairs: &[String]) -> ExitCode {
    const OP: &str = "settings";
    let op = if pairs.is_empty() {
        Op::State { plugin: None }
    } else {
        let parsed = parse_setting_pairs(pairs).and_then(|map| {
            let mut fields = crate::json::Fields::new(map);
            let update = parse_settings(&mut fields)?;
            fields.finish()?;
            Ok(update)
        });
        match parsed {
            Ok(update) => Op::Settings {
                plugin: None,
                update: Box::new(update),
            },
            Err(e) => return run.fail(OP, &e),
        }
    };
    match run.exec(&op) {
        Ok(fields) => {
            run.print_ok(OP, fields, |f| format_status(&f["state"]));
            ExitCode::SUCCESS
        }
        Err(e) => run.fail(OP, &e),
    }
}

/// Reads `KEY=VALUE` pairs into a settings object: a VALUE that is JSON (`true`, `500`,
/// `["0","L0#"]`, `"text"`) is taken as such, anything else as a string.
pub fn parse_setting_pairs(pairs: &[String]) -> Result<Map<String, Value>, OpError> {
    let mut map = Map::new();
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(OpError::bad_request(format!(
                "expected KEY=VALUE, not {pair:?}"
            )));
        };
        let key = key.trim();
        if key.is_empty() || key == "op" || key == "plugin" {
            return Err(OpError::bad_request(format!("not a setting: {pair:?}")));
        }
        let value = serde_json::from_str::<Value>(value.trim())
            .unwrap_or_else(|_| Value::from(value.trim()));
        map.insert(key.to_owned(), value);
    }
    Ok(map)
}

/// The `sync` answer for a person.
pub fn format_sync(fields: &Fields) -> String {
    let n = |key: &str| fields.get(key).and_then(Value::as_u64).unwrap_or(0);
    format!(
        "Synced: {} contacts held ({} added, {} updated, {} removed)",
        n("contacts"),
        n("added"),
        n("updated"),
        n("removed")
    )
}

/// A `caller` object (or `null`) for a person; `number` is what was dialled in.
pub fn format_caller(caller: &Value, number: &str) -> String {
    if !caller.is_object() {
        return format!(
            "unknown caller ({})",
            display_or(number.trim(), "anonymous")
        );
    }
    let mut rows: Vec<(&str, String)> = Vec::new();
    for (label, key) in [("company", "company"), ("job title", "job_title")] {
        let v = field(caller, key);
        if !v.is_empty() {
            rows.push((label, v.to_owned()));
        }
    }
    rows.push((
        "number",
        format!(
            "{} ({})",
            field(caller, "number"),
            field(caller, "number_type")
        ),
    ));
    if let Some(ext) = caller["extension"].as_str() {
        rows.push(("extension", ext.to_owned()));
    }
    rows.push((
        "source",
        format!(
            "{} (contact {})",
            field(caller, "source"),
            field(caller, "contact_id")
        ),
    ));
    let mut text = display_or(field(caller, "display_name"), "(no name)").to_owned();
    for (label, value) in rows {
        text.push_str(&format!("\n  {:<10} {value}", format!("{label}:")));
    }
    text
}

fn numbers_of(entry: &Value) -> String {
    entry["numbers"]
        .as_array()
        .map(|ns| {
            ns.iter()
                .map(|n| format!("{} {}", field(n, "number"), field(n, "type")))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn emails_of(entry: &Value) -> String {
    entry["emails"]
        .as_array()
        .map(|es| {
            es.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// Search results as a table (name, company, numbers, e-mail, source), or a line saying there
/// were none.
pub fn format_results(results: &[Value], query: &str) -> String {
    if results.is_empty() {
        return format!("no entries found for {query:?}");
    }
    let header = ["NAME", "COMPANY", "NUMBERS", "E-MAIL", "SOURCE"];
    let rows: Vec<[String; 5]> = results
        .iter()
        .map(|r| {
            [
                field(r, "display_name").to_owned(),
                field(r, "company").to_owned(),
                numbers_of(r),
                emails_of(r),
                field(r, "source").to_owned(),
            ]
        })
        .collect();
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([header[i].len()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..5).map(width).collect();
    let line = |cells: [&str; 5]| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                l.push_str(cell);
                l.push_str(&" ".repeat(pad + 2));
            }
        }
        l.trim_end().to_owned()
    };
    let mut out = vec![line(header)];
    for r in &rows {
        out.push(line([&r[0], &r[1], &r[2], &r[3], &r[4]]));
    }
    out.push(format!(
        "{} entr{}",
        rows.len(),
        if rows.len() == 1 { "y" } else { "ies" }
    ));
    out.join("\n")
}

/// A `state` object for a person: both sides of presence and the sync state.
pub fn format_status(state: &Value) -> String {
    let or_none = |key: &str| state[key].as_str().unwrap_or("none").to_owned();
    let teams = if state["teams_presence"].is_object() {
        format!(
            "{} / {}",
            field(&state["teams_presence"], "availability"),
            field(&state["teams_presence"], "activity")
        )
    } else {
        "not known".into()
    };
    let mut presence = field(state, "presence_integration").to_owned();
    if let Some(reason) = state["presence_blocked_reason"].as_str() {
        presence.push_str(&format!(" ({reason})"));
    }
    let rows = [
        ("Contact status", field(state, "contact_status").to_owned()),
        ("Teams presence", teams),
        (
            "Microsoft integration",
            field(state, "microsoft_integration").to_owned(),
        ),
        ("Presence integration", presence),
        (
            "Signed in as",
            state["signed_in_as"]
                .as_str()
                .unwrap_or("nobody")
                .to_owned(),
        ),
        (
            "Contacts held",
            state["contacts"].as_u64().unwrap_or(0).to_string(),
        ),
        (
            "Last sync",
            state["last_sync"].as_str().unwrap_or("never").to_owned(),
        ),
        ("Last error", or_none("last_error")),
    ];
    rows.iter()
        .map(|(label, value)| format!("  {:<23}{value}", format!("{label}:")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn callers_read_well() {
        let c = json!({
            "display_name": "Fabrikam Zentrale", "company": "Fabrikam AG", "job_title": "",
            "number": "+49891234999", "number_type": "business", "extension": "999",
            "source": "outlook", "contact_id": "AAMk5",
        });
        let text = format_caller(&c, "+49 89 1234 999");
        assert_eq!(
            text,
            "Fabrikam Zentrale\n  company:   Fabrikam AG\n  number:    +49891234999 (business)\n  \
             extension: 999\n  source:    outlook (contact AAMk5)"
        );
        assert_eq!(
            format_caller(&Value::Null, " 0800 "),
            "unknown caller (0800)"
        );
        assert_eq!(
            format_caller(&Value::Null, ""),
            "unknown caller (anonymous)"
        );
    }

    #[test]
    fn results_make_an_aligned_table() {
        let r = vec![
            json!({"display_name": "Anna Müller", "company": "Müller & Söhne GmbH",
                   "numbers": [{"number": "+49891234567", "type": "business"},
                               {"number": "+491712345678", "type": "mobile"}],
                   "emails": ["anna@x.example"], "source": "outlook"}),
            json!({"display_name": "Zoë A", "company": "", "numbers": [], "emails": [],
                   "source": "directory"}),
        ];
        let t = format_results(&r, "m");
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "{t}");
        assert!(lines[0].starts_with("NAME         COMPANY"), "{t}");
        assert!(lines[1].contains("+49891234567 business, +491712345678 mobile"));
        // Columns line up whatever the accents.
        assert!(lines[2].ends_with("directory"));
        assert_eq!(lines[3], "2 entries");
        let source_at =
            |l: &str| l.chars().count() - l.split_whitespace().last().unwrap().chars().count();
        assert_eq!(source_at(lines[1]), source_at(lines[2]));
        assert_eq!(format_results(&[], "zz"), "no entries found for \"zz\"");
    }

    #[test]
    fn status_shows_both_sides() {
        let s = json!({
            "microsoft_integration": "active", "signed_in_as": "adele.vance@contoso.example",
            "contacts": 25, "last_sync": "2026-01-01T00:00:00Z", "presence_integration": "blocked",
            "presence_blocked_reason": "UPN differs", "teams_presence": {"availability": "Busy",
            "activity": "InACall"}, "contact_status": "in_call", "last_error": null,
        });
        let t = format_status(&s);
        for want in [
            "Contact status:        in_call",
            "Teams presence:        Busy / InACall",
            "Presence integration:  blocked (UPN differs)",
            "Signed in as:          adele.vance@contoso.example",
            "Contacts held:         25",
            "Last error:            none",
        ] {
            assert!(t.contains(want), "{want:?} in\n{t}");
        }
        let t = format_status(&json!({"teams_presence": null, "last_sync": null}));
        assert!(t.contains("not known") && t.contains("never") && t.contains("nobody"));
    }

    #[test]
    fn setting_pairs() {
        let m = parse_setting_pairs(&[
            "microsoft_integration=true".into(),
            "presence_poll_ms=500".into(),
            "graph=http://127.0.0.1:8400/v1.0".into(),
            r#"outside_line_prefixes=["0","L0#"]"#.into(),
            "client_id=abc".into(),
        ])
        .unwrap();
        assert_eq!(m["microsoft_integration"], true);
        assert_eq!(m["presence_poll_ms"], 500);
        assert_eq!(m["graph"], "http://127.0.0.1:8400/v1.0");
        assert_eq!(m["outside_line_prefixes"][1], "L0#");
        assert_eq!(m["client_id"], "abc");
        let mut f = crate::json::Fields::new(m);
        parse_settings(&mut f).unwrap();
        f.finish().unwrap();
        for bad in ["novalue", "=1", "op=state", "plugin=x"] {
            assert!(parse_setting_pairs(&[bad.into()]).is_err(), "{bad}");
        }
        let sync = format_sync(
            &json!({"contacts": 25, "added": 25, "updated": 0, "removed": 0})
                .as_object()
                .unwrap()
                .clone(),
        );
        assert_eq!(
            sync,
            "Synced: 25 contacts held (25 added, 0 updated, 0 removed)"
        );
    }
}
