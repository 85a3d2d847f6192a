//! `demo-host demo`: a guided tour against the embedded Microsoft 365 emulator.
//!
//! It starts the emulator on a free port, loads the plugins (with a fresh temporary data
//! folder, so no real sign-in is touched), and walks through the story Contact Desktop would:
//! context, settings, sign-in when the state asks for it, a contact sync, an incoming call, a
//! phonebook search and a status change. It prints what the plugin answered, whatever it is,
//! and adapts to the state it reports. The "browser" is in process: an HTTP GET that follows the
//! emulator's redirect to the plugin's loopback listener. Every wait is bounded; the whole tour
//! takes well under 20 s.

use std::{
    io::IsTerminal,
    process::ExitCode,
    sync::Arc,
    thread,
    time::{Duration, Instant},
};

use host_api::{ContactStatus, SettingsUpdate, reexports::ROption};
use ms365_emulator::{EmulatorConfig, EmulatorHandle};
use serde_json::Value;

use crate::{
    browser::{Browser, OpenFn},
    errors::OpError,
    options::HostOptions,
    output::{LineSink, Output},
    protocol::{ContextPatch, Op},
    session::{Fields, Session},
};

/// The Contact Desktop user of the story (the emulator's default sign-in user).
pub const DEMO_USER: &str = "adele.vance@contoso.example";
/// The incoming call of the story: Alex Wilber's business phone, as a phone system delivers it.
pub const DEMO_CALLER_NUMBER: &str = "+49 30 901820-4455";
/// The phonebook search of the story.
pub const DEMO_QUERY: &str = "Megan";
/// How long the tour waits for a sign-in to finish.
const SIGN_IN_WAIT: Duration = Duration::from_secs(8);
/// What the tour gives a contact sync, in milliseconds.
const DEMO_SYNC_MS: u32 = 6_000;

/// Text styles, used only when standard output is a terminal.
#[derive(Clone, Copy)]
struct Style {
    colour: bool,
}

impl Style {
    fn paint(self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
    fn step(self, text: &str) -> String {
        self.paint("1;36", &format!("▶ {text}"))
    }
    fn good(self, text: &str) -> String {
        self.paint("32", &format!("  ✓ {text}"))
    }
    fn warn(self, text: &str) -> String {
        self.paint("33", &format!("  ! {text}"))
    }
    fn event(self, text: &str) -> String {
        self.paint("2", &format!("  · {text}"))
    }
}

/// Prints events for a person.
struct DemoSink {
    style: Style,
}

impl LineSink for DemoSink {
    fn reply(&mut self, _: &Value) {}

    fn event(&mut self, event: &Value) {
        println!("{}", self.style.event(&describe_event(event)));
    }
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// One line for a person about an event.
pub fn describe_event(e: &Value) -> String {
    let plugin = s(e, "plugin");
    match s(e, "event") {
        "plugin_loaded" => format!(
            "loaded {} {} (host-api {}) from {}",
            s(e, "name"),
            s(e, "version"),
            s(e, "api_version"),
            s(e, "file")
        ),
        "plugin_rejected" => format!("skipped {}: {}", s(e, "file"), s(e, "reason")),
        "state_changed" => format!("{plugin}: {}", describe_state(&e["state"])),
        "open_url" => format!("{plugin} opens the browser at {}", s(e, "url")),
        "notification" => {
            let mut text = format!("{plugin} says [{}]: {}", s(e, "kind"), s(e, "message"));
            if let Some(code) = e.get("user_code").and_then(Value::as_str) {
                text.push_str(&format!(" (code {code} at {})", s(e, "verification_uri")));
            }
            text
        }
        "status_changed" => format!(
            "{plugin} set the Contact status from Teams: {}",
            s(e, "status")
        ),
        "caller_updated" => format!(
            "{plugin} found the caller of call {}: {}",
            s(e, "call_id"),
            describe_caller(&e["caller"])
        ),
        _ => e.to_string(),
    }
}

/// One line for a person about a `state` object.
pub fn describe_state(state: &Value) -> String {
    let mut text = format!(
        "Microsoft integration {}",
        s(state, "microsoft_integration")
    );
    if let Some(upn) = state["signed_in_as"].as_str() {
        text.push_str(&format!(" as {upn}"));
    }
    text.push_str(&format!(
        ", {} contacts",
        state["contacts"].as_u64().unwrap_or(0)
    ));
    if let Some(t) = state["last_sync"].as_str() {
        text.push_str(&format!(" (synced {t})"));
    }
    text.push_str(&format!("; presence {}", s(state, "presence_integration")));
    if let Some(reason) = state["presence_blocked_reason"].as_str() {
        text.push_str(&format!(" ({reason})"));
    }
    if state["teams_presence"].is_object() {
        text.push_str(&format!(
            ", Teams {}/{}",
            s(&state["teams_presence"], "availability"),
            s(&state["teams_presence"], "activity")
        ));
    }
    text.push_str(&format!("; Contact status {}", s(state, "contact_status")));
    if let Some(err) = state["last_error"].as_str() {
        text.push_str(&format!("; last error: {err}"));
    }
    text
}

fn describe_caller(c: &Value) -> String {
    if !c.is_object() {
        return "unknown".into();
    }
    let mut text = s(c, "display_name").to_owned();
    for key in ["job_title", "company"] {
        if !s(c, key).is_empty() {
            text.push_str(&format!(", {}", s(c, key)));
        }
    }
    text.push_str(&format!(
        " — {} {} from {}",
        s(c, "number_type"),
        s(c, "number"),
        s(c, "source")
    ));
    if let Some(ext) = c["extension"].as_str() {
        text.push_str(&format!(" ext. {ext}"));
    }
    text
}

/// The demo's browser: follows the sign-in URL in process (on its own thread, so the plugin's
/// call returns at once), as a user's browser would.
fn in_process_browser() -> Browser {
    let open: OpenFn = Arc::new(|url: &str| {
        let url = url.to_owned();
        thread::Builder::new()
            .name("demo-browser".into())
            .spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .redirect(reqwest::redirect::Policy::limited(10))
                    .timeout(Duration::from_secs(10))
                    .build();
                match client.and_then(|c| c.get(&url).send()) {
                    Ok(resp) => tracing::info!("demo browser: {} at {}", resp.status(), resp.url()),
                    Err(e) => tracing::warn!("demo browser: {e}"),
                }
            })
            .is_ok()
    });
    Browser::InProcess(open)
}

struct Tour<'a> {
    session: &'a Session,
    style: Style,
}

impl Tour<'_> {
    fn run(&self, op: Op) -> Result<Fields, OpError> {
        let mark = self.session.output().mark();
        self.session.execute(&op, mark, &|| false)
    }

    fn step(&self, text: &str) {
        println!("{}", self.style.step(text));
    }

    fn good(&self, text: &str) {
        println!("{}", self.style.good(text));
    }

    fn warn(&self, text: &str) {
        println!("{}", self.style.warn(text));
    }

    fn show_error(&self, e: &OpError) {
        self.warn(&format!("the plugin answered {}: {}", e.code, e.message));
    }

    /// Shows a reply carrying `state`; answers the state.
    fn show_state(&self, answer: Result<Fields, OpError>) -> Option<Value> {
        match answer {
            Ok(f) => {
                let state = f.get("state").cloned().unwrap_or(Value::Null);
                self.good(&describe_state(&state));
                Some(state)
            }
            Err(e) => {
                self.show_error(&e);
                None
            }
        }
    }

    fn current_state(&self) -> Option<Value> {
        self.run(Op::State { plugin: None })
            .ok()
            .and_then(|mut f| f.remove("state"))
    }

    /// Waits (bounded) while the sign-in is under way; answers the last state seen.
    fn wait_for_sign_in(&self) -> Option<Value> {
        let deadline = Instant::now() + SIGN_IN_WAIT;
        let mut state = self.current_state();
        while Instant::now() < deadline {
            let ms = state
                .as_ref()
                .map(|s| s["microsoft_integration"].as_str().unwrap_or("").to_owned());
            if !matches!(ms.as_deref(), Some("signing_in") | Some("sign_in_required")) {
                break;
            }
            thread::sleep(Duration::from_millis(250));
            state = self.current_state();
        }
        state
    }
}

/// Runs the tour; always exits 0 unless the emulator cannot start.
pub fn run(options: &HostOptions) -> ExitCode {
    let style = Style {
        colour: std::io::stdout().is_terminal(),
    };
    println!("{}", style.step("Starting the Microsoft 365 emulator"));
    let emulator = match EmulatorHandle::spawn(EmulatorConfig {
        port: 0,
        device_auto_approve_after: Some(Duration::from_secs(1)),
        device_poll_interval_secs: 1,
        ..Default::default()
    }) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("demo-host: cannot start the emulator: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "{}",
        style.good(&format!("listening at {}", emulator.base_url()))
    );

    let data = match tempfile::Builder::new()
        .prefix("contact-desktop-demo-")
        .tempdir()
    {
        Ok(d) => d,
        Err(e) => {
            eprintln!("demo-host: cannot create a temporary data folder: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = HostOptions {
        data_dir: data.path().to_owned(),
        browser: in_process_browser(),
        ..options.clone()
    };
    println!(
        "{}",
        style.step(&format!(
            "Loading plugins from {}",
            options.plugins_dir.display()
        ))
    );
    let mut session = Session::start(&options, Output::new(DemoSink { style }));
    session.set_sync_timeout_ms(DEMO_SYNC_MS);
    let tour = Tour {
        session: &session,
        style,
    };
    if session.plugins().is_empty() {
        tour.warn(&format!(
            "no plugin loaded: build one (cargo build -p contact-ms365) and copy the library \
             into {}, or pass --plugins-dir",
            options.plugins_dir.display()
        ));
    } else {
        story(&tour, &emulator);
    }

    tour.step("Switching the plugins off");
    session.shutdown();
    drop(session);
    emulator.shutdown();
    println!("{}", style.good("done"));
    ExitCode::SUCCESS
}

fn story(tour: &Tour<'_>, emulator: &EmulatorHandle) {
    tour.step(&format!(
        "Context: user {DEMO_USER}, add-on contact_connect, country DE"
    ));
    match tour.run(Op::Context(ContextPatch {
        username: Some(DEMO_USER.into()),
        addons: Some(vec!["contact_connect".into()]),
        country: Some("DE".into()),
        legacy_presence_integration: Some(false),
    })) {
        Ok(_) => tour.good("every plugin accepted the context"),
        Err(e) => tour.show_error(&e),
    }

    tour.step("Settings: Microsoft integration and presence on, pointed at the emulator");
    let update = SettingsUpdate {
        microsoft_integration: ROption::RSome(true),
        presence_integration: ROption::RSome(true),
        authority: ROption::RSome(emulator.authority().into()),
        graph: ROption::RSome(emulator.graph_url().into()),
        client_id: ROption::RSome(emulator.client_id().into()),
        presence_poll_ms: ROption::RSome(500),
        ..Default::default()
    };
    let mut state = tour.show_state(tour.run(Op::Settings {
        plugin: None,
        update: Box::new(update),
    }));

    let ms = |state: &Option<Value>| {
        state
            .as_ref()
            .and_then(|s| s["microsoft_integration"].as_str())
            .unwrap_or("")
            .to_owned()
    };
    match ms(&state).as_str() {
        "sign_in_required" => {
            tour.step("The integration needs a sign-in: starting it (the emulator signs Adele in)");
            if tour
                .show_state(tour.run(Op::SignIn { plugin: None }))
                .is_some()
            {
                state = tour.wait_for_sign_in();
                if let Some(s) = &state {
                    tour.good(&describe_state(s));
                }
            }
        }
        "signing_in" => {
            tour.step("A sign-in is under way: waiting for it");
            state = tour.wait_for_sign_in();
            if let Some(s) = &state {
                tour.good(&describe_state(s));
            }
        }
        "active" => tour.good("already signed in"),
        "" => tour.warn("no state to go on"),
        other => tour.warn(&format!(
            "the integration is {other}: going on with what it has"
        )),
    }

    if ms(&state) == "active" {
        tour.step("Contact sync");
        match tour.run(Op::Sync { plugin: None }) {
            Ok(f) => tour.good(&format!(
                "{} contacts ({} added, {} updated, {} removed)",
                f["contacts"], f["added"], f["updated"], f["removed"]
            )),
            Err(e) => tour.show_error(&e),
        }
    } else {
        tour.warn("not signed in: skipping the contact sync");
    }

    tour.step(&format!("Incoming call from {DEMO_CALLER_NUMBER}"));
    match tour.run(Op::IncomingCall {
        call_id: "demo-call-1".into(),
        number: DEMO_CALLER_NUMBER.into(),
    }) {
        Ok(f) if f["caller"].is_object() => tour.good(&describe_caller(&f["caller"])),
        Ok(_) => tour.warn("caller unknown"),
        Err(e) => tour.show_error(&e),
    }

    tour.step(&format!("Phonebook search for {DEMO_QUERY:?}"));
    match tour.run(Op::Search {
        query: DEMO_QUERY.into(),
        limit: 5,
    }) {
        Ok(f) => {
            let results = f["results"].as_array().cloned().unwrap_or_default();
            if results.is_empty() {
                tour.warn("no results");
            }
            for r in results {
                let numbers: Vec<String> = r["numbers"]
                    .as_array()
                    .map(|ns| {
                        ns.iter()
                            .map(|n| format!("{} {}", s(n, "type"), s(n, "number")))
                            .collect()
                    })
                    .unwrap_or_default();
                tour.good(&format!(
                    "{} ({}) {}",
                    s(&r, "display_name"),
                    s(&r, "source"),
                    numbers.join(", ")
                ));
            }
        }
        Err(e) => tour.show_error(&e),
    }

    tour.step("Status change: the user takes a Contact call (in_call)");
    if let Err(e) = tour.run(Op::Status(ContactStatus::IN_CALL)) {
        tour.show_error(&e);
    }
    thread::sleep(Duration::from_millis(1500));
    tour.show_state(tour.run(Op::State { plugin: None }));
    tour.step("The call ends (online)");
    if let Err(e) = tour.run(Op::Status(ContactStatus::ONLINE)) {
        tour.show_error(&e);
    }
    thread::sleep(Duration::from_millis(500));
    tour.show_state(tour.run(Op::State { plugin: None }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_and_states_read_well() {
        let state = json!({
            "microsoft_integration": "active", "signed_in_as": "a@b", "contacts": 3,
            "last_sync": null, "presence_integration": "active",
            "presence_blocked_reason": null,
            "teams_presence": {"availability": "Busy", "activity": "InACall"},
            "contact_status": "in_call", "last_error": null,
        });
        let text = describe_state(&state);
        assert!(
            text.contains("active as a@b") && text.contains("Busy/InACall"),
            "{text}"
        );
        let e = json!({"event": "notification", "kind": "device_code", "message": "m",
                       "user_code": "XY", "verification_uri": "http://v", "plugin": "P"});
        assert!(describe_event(&e).contains("code XY at http://v"));
        let unknown = json!({"event": "new_thing", "x": 1});
        assert!(describe_event(&unknown).contains("new_thing"));
    }
}
