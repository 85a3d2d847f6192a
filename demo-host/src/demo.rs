//! `demo-host demo`: a guided tour against the embedded Microsoft 365 emulator.
//!
//! It starts the emulator on a free port, loads the plugins (with a fresh temporary data
//! folder, so no real sign-in is touched), and walks through the story Contact Desktop would:
//! context, settings, sign-in when the state asks for it (who signed in), a contact sync with
//! its progress bar and counts, calls from a seeded contact in the formats phone systems
//! deliver (and the company switchboard plus an extension), phonebook searches, and presence
//! both ways (a Contact call shown in the emulator's Teams, then a Teams change shown as the
//! Contact status). It prints what the plugin answered, whatever it is, and adapts to the
//! state it reports: a feature that answers nothing or an error is said so, and the tour goes
//! on. The "browser" is in process: an HTTP GET that follows the emulator's redirect to the
//! plugin's loopback listener. Every wait is bounded; the whole tour takes well under 30 s.

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
    progress::{Console, ProgressView, Stream},
    protocol::{ContextPatch, Op},
    session::{Fields, Session},
};

/// The Contact Desktop user of the story (the emulator's default sign-in user).
pub const DEMO_USER: &str = "adele.vance@contoso.example";
/// The incoming calls of the story: Anna Müller's business phone (`089 1234567` in Outlook) as
/// phone systems deliver it, then Fabrikam's switchboard (`+49 89 1234-0`) with extension 999.
pub const DEMO_CALLS: &[(&str, &str)] = &[
    ("089 1234567", "national"),
    ("+49 89 1234567", "international"),
    ("tel:+49-89-1234567", "tel: URI"),
    ("+49 89 1234 999", "switchboard + extension"),
];
/// A contact the tour adds to Adele's Outlook before its sync: `(given name, surname,
/// company, business phone)`; the sync brings it in and a call from it is answered.
pub const DEMO_NEW_CONTACT: (&str, &str, &str, &str) =
    ("Bernd", "Neumann", "Neumann Elektro", "+49 89 7654321");
/// The phonebook searches of the story (accents and case do not matter).
pub const DEMO_QUERIES: &[&str] = &["muller", "zoe"];
/// How long the tour waits for a sign-in to finish.
const SIGN_IN_WAIT: Duration = Duration::from_secs(10);
/// What the tour gives a contact sync, in milliseconds.
const DEMO_SYNC_MS: u32 = 15_000;
/// How long the tour waits for Teams to show a Contact status change (the plugin writes at
/// once).
const TEAMS_WAIT: Duration = Duration::from_secs(3);
/// How long the tour waits for a Teams change to reach the Contact status (the demo polls
/// presence every 500 ms).
const CONTACT_WAIT: Duration = Duration::from_secs(5);
/// The tour's presence poll interval, in milliseconds.
const DEMO_PRESENCE_POLL_MS: u64 = 500;

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

/// Prints events for a person (above the progress bar while one is drawn).
struct DemoSink {
    style: Style,
    console: Console,
}

impl LineSink for DemoSink {
    fn reply(&mut self, _: &Value) {}

    fn event(&mut self, event: &Value) {
        self.console.line(&self.style.event(&describe_event(event)));
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
    console: Console,
}

impl Tour<'_> {
    fn run(&self, op: Op) -> Result<Fields, OpError> {
        let mark = self.session.output().mark();
        self.session.execute(&op, mark, &|| false)
    }

    fn step(&self, text: &str) {
        self.console.line(&self.style.step(text));
    }

    fn good(&self, text: &str) {
        self.console.line(&self.style.good(text));
    }

    fn warn(&self, text: &str) {
        self.console.line(&self.style.warn(text));
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
    let console = Console::new(Stream::Stdout);
    let mut session = Session::start(
        &options,
        Output::new(DemoSink {
            style,
            console: console.clone(),
        }),
    );
    session.set_sync_timeout_ms(DEMO_SYNC_MS);
    let tour = Tour {
        session: &session,
        style,
        console,
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
        remember_login: ROption::RSome(false),
        authority: ROption::RSome(emulator.authority().into()),
        graph: ROption::RSome(emulator.graph_url().into()),
        client_id: ROption::RSome(emulator.client_id().into()),
        presence_poll_ms: ROption::RSome(DEMO_PRESENCE_POLL_MS),
        ..Default::default()
    };
    let state = tour.show_state(tour.run(Op::Settings {
        plugin: None,
        update: Box::new(update),
    }));
    let state = sign_in(tour, state);
    let signed_in = ms_state(&state) == "active";
    match state.as_ref().and_then(|s| s["signed_in_as"].as_str()) {
        Some(upn) if signed_in => tour.good(&format!("signed in as {upn}")),
        _ => tour.warn(&format!(
            "nobody is signed in (Microsoft integration {})",
            display_or(&ms_state(&state), "unknown")
        )),
    }

    if signed_in {
        sync(tour, emulator);
    } else {
        tour.warn("not signed in: skipping the contact sync (calls use what the plugin holds)");
    }
    calls(tour);
    searches(tour);
    presence(tour, emulator);
}

fn display_or<'a>(text: &'a str, fallback: &'a str) -> &'a str {
    if text.is_empty() { fallback } else { text }
}

fn ms_state(state: &Option<Value>) -> String {
    state
        .as_ref()
        .and_then(|s| s["microsoft_integration"].as_str())
        .unwrap_or("")
        .to_owned()
}

/// Signs in when the state asks for it (the emulator signs Adele in through the in-process
/// browser); answers the last state seen.
fn sign_in(tour: &Tour<'_>, mut state: Option<Value>) -> Option<Value> {
    match ms_state(&state).as_str() {
        "sign_in_required" => {
            tour.step("The integration needs a sign-in: starting it (the emulator signs Adele in)");
            if tour
                .show_state(tour.run(Op::SignIn { plugin: None }))
                .is_some()
            {
                state = tour.wait_for_sign_in();
            }
        }
        "signing_in" => {
            tour.step("A sign-in is under way: waiting for it");
            state = tour.wait_for_sign_in();
        }
        "active" => {}
        "" => tour.warn("no state to go on"),
        other => tour.warn(&format!(
            "the integration is {other}: going on with what it has"
        )),
    }
    state
}

fn sync(tour: &Tour<'_>, emulator: &EmulatorHandle) {
    let (given, surname, company, phone) = DEMO_NEW_CONTACT;
    tour.step(&format!(
        "A new Outlook contact appears in the emulator: {given} {surname}, {company}, {phone}"
    ));
    let contact = serde_json::json!({
        "givenName": given,
        "surname": surname,
        "displayName": format!("{given} {surname}"),
        "companyName": company,
        "businessPhones": [phone],
    });
    match emulator.control().add_contact(DEMO_USER, None, &contact) {
        Ok(id) => tour.good(&format!("added as {id}")),
        Err(e) => tour.warn(&format!("the emulator refused the contact: {e}")),
    }
    tour.step("Contact sync of the emulator's Outlook contacts");
    let view = ProgressView::new(Stream::Stdout, "    ");
    tour.console.set_view(Some(view.clone()));
    tour.session.set_progress_listener(Some(view.listener()));
    let answer = tour.run(Op::Sync { plugin: None });
    tour.session.flush_events();
    tour.session.set_progress_listener(None);
    view.finish();
    tour.console.set_view(None);
    match answer {
        Ok(f) => {
            tour.good(&format!(
                "{} contacts held ({} added, {} updated, {} removed by this sync)",
                f["contacts"], f["added"], f["updated"], f["removed"]
            ));
            if f["added"].as_u64() == Some(0) && f["contacts"].as_u64().unwrap_or(0) > 0 {
                tour.good("the first full sync ran right after the sign-in; this one fetched changes only");
            }
        }
        Err(e) => tour.show_error(&e),
    }
}

fn calls(tour: &Tour<'_>) {
    tour.step("Incoming calls: Anna Müller's number as phone systems deliver it, and more");
    let new_contact = [(DEMO_NEW_CONTACT.3, "the new contact")];
    for (i, (number, how)) in DEMO_CALLS.iter().chain(&new_contact).enumerate() {
        match tour.run(Op::IncomingCall {
            call_id: format!("demo-call-{}", i + 1),
            number: (*number).into(),
        }) {
            Ok(f) if f["caller"].is_object() => tour.good(&format!(
                "{number:<20} ({how}) → {}",
                describe_caller(&f["caller"])
            )),
            Ok(_) => tour.warn(&format!("{number:<20} ({how}) → unknown caller")),
            Err(e) => tour.warn(&format!(
                "{number:<20} ({how}) → the plugin answered {}: {}",
                e.code, e.message
            )),
        }
    }
}

fn searches(tour: &Tour<'_>) {
    for query in DEMO_QUERIES {
        tour.step(&format!("Phonebook search for {query:?}"));
        match tour.run(Op::Search {
            query: (*query).into(),
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
                    let company = s(&r, "company");
                    tour.good(&format!(
                        "{}{} ({}) {}",
                        s(&r, "display_name"),
                        if company.is_empty() {
                            String::new()
                        } else {
                            format!(", {company}")
                        },
                        s(&r, "source"),
                        numbers.join(", ")
                    ));
                }
            }
            Err(e) => tour.show_error(&e),
        }
    }
}

/// The emulator's aggregated Teams presence of the demo user: `(availability, activity)`.
fn teams_presence(emulator: &EmulatorHandle) -> Option<(String, String)> {
    let detail = emulator.control().presence(DEMO_USER).ok()?;
    let agg = &detail["aggregate"];
    Some((
        s(agg, "availability").to_owned(),
        s(agg, "activity").to_owned(),
    ))
}

/// Polls the emulator's Teams presence every 100 ms until `done` holds or `limit` passes;
/// answers the last presence read and how long it took.
fn wait_for_teams(
    emulator: &EmulatorHandle,
    limit: Duration,
    done: impl Fn(&(String, String)) -> bool,
) -> (Option<(String, String)>, Duration, bool) {
    let start = Instant::now();
    loop {
        let p = teams_presence(emulator);
        let ok = p.as_ref().is_some_and(&done);
        if ok || start.elapsed() >= limit {
            return (p, start.elapsed(), ok);
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn show_teams(p: &Option<(String, String)>) -> String {
    match p {
        Some((a, b)) => format!("{a}/{b}"),
        None => "unknown (the emulator has no presence for the user)".into(),
    }
}

fn presence(tour: &Tour<'_>, emulator: &EmulatorHandle) {
    tour.step("Presence integration");
    // Give a sign-in that just finished a moment to start presence.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut state = tour.current_state();
    while Instant::now() < deadline
        && state
            .as_ref()
            .is_some_and(|s| s["presence_integration"] == "pending")
    {
        thread::sleep(Duration::from_millis(100));
        state = tour.current_state();
    }
    let presence_state = state
        .as_ref()
        .and_then(|s| s["presence_integration"].as_str())
        .unwrap_or("unknown")
        .to_owned();
    match presence_state.as_str() {
        "active" => tour.good("presence integration is active"),
        "off" | "blocked" => {
            let reason = state
                .as_ref()
                .and_then(|s| s["presence_blocked_reason"].as_str())
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            tour.warn(&format!(
                "presence integration is {presence_state}{reason}: skipping presence"
            ));
            return;
        }
        other => tour.warn(&format!(
            "presence integration is {other}: trying anyway, showing what really happens"
        )),
    }

    tour.step("Contact → Teams: the user takes a Contact call (status in_call)");
    let mut published = false;
    match tour.run(Op::Status(ContactStatus::IN_CALL)) {
        Ok(_) => {
            let (p, took, ok) =
                wait_for_teams(emulator, TEAMS_WAIT, |(a, b)| a == "Busy" && b == "InACall");
            published = ok;
            if ok {
                tour.good(&format!(
                    "Teams shows {} ({} ms after the status change)",
                    show_teams(&p),
                    took.as_millis()
                ));
            } else {
                tour.warn(&format!(
                    "Teams still shows {} after {} s: the call was not published",
                    show_teams(&p),
                    TEAMS_WAIT.as_secs()
                ));
            }
        }
        Err(e) => tour.show_error(&e),
    }

    tour.step("The call ends (status online)");
    match tour.run(Op::Status(ContactStatus::ONLINE)) {
        Ok(_) => {
            let (p, took, ok) = wait_for_teams(emulator, TEAMS_WAIT, |(_, b)| b != "InACall");
            if !published {
                tour.warn(&format!(
                    "Teams shows {} (nothing to clear)",
                    show_teams(&p)
                ));
            } else if ok {
                tour.good(&format!(
                    "Teams shows {}: the call is cleared ({} ms)",
                    show_teams(&p),
                    took.as_millis()
                ));
            } else {
                tour.warn(&format!(
                    "Teams still shows {} after {} s",
                    show_teams(&p),
                    TEAMS_WAIT.as_secs()
                ));
            }
        }
        Err(e) => tour.show_error(&e),
    }

    // The plugin takes the first Teams read after its own write (the clear above) as its new
    // baseline, not as a change made in Teams (presence rule 1). A person does not start
    // presenting within the same poll; let two polls pass, as real time would.
    std::thread::sleep(Duration::from_millis(2 * DEMO_PRESENCE_POLL_MS));
    tour.step("Teams → Contact: the user presents in a Teams meeting (DoNotDisturb/Presenting)");
    let mark = tour.session.output().mark();
    if let Err(e) = emulator
        .control()
        .set_teams_presence(DEMO_USER, "DoNotDisturb", "Presenting")
    {
        tour.warn(&format!("the emulator refused the Teams change: {e}"));
        return;
    }
    let start = Instant::now();
    match tour
        .session
        .output()
        .wait_for_event("status_changed", mark, CONTACT_WAIT, &|| false)
    {
        Ok(event) => tour.good(&format!(
            "the plugin set the Contact status to {} ({} ms after the Teams change)",
            s(&event, "status"),
            start.elapsed().as_millis()
        )),
        Err(_) => tour.warn(&format!(
            "no Contact status change within {} s (the Contact status is still {})",
            CONTACT_WAIT.as_secs(),
            tour.session.contact_status().name().unwrap_or("unknown")
        )),
    }
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
