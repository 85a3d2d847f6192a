//! A running host: the loaded plugins, the host's context and status, the event dispatcher,
//! and [`Session::execute`], which carries out one [`Op`] the way Contact Desktop would.
//!
//! The scripted mode and the `demo` both drive a `Session`.

use std::{
    sync::{Arc, Mutex, PoisonError, mpsc},
    thread,
    time::{Duration, Instant},
};

use host_api::{
    ContactStatus, HostContext, IncomingCall, IntegrationError, IntegrationState,
    reexports::{ROption, RResult, RString},
};
use serde_json::{Map, Value};

use crate::{
    errors::{OpError, code},
    host_impl::{Dispatcher, HostShared, host_box},
    json,
    options::HostOptions,
    output::{EventMark, Output, WaitEnd},
    plugins::{self, LoadOutcome, PluginInstance, Rejected},
    protocol::{ContextPatch, Op},
};

/// What `sync` asks the plugin for, in milliseconds (the spec's 30 s).
pub const SYNC_TIMEOUT_MS: u32 = 30_000;
/// How much longer than the time it gave the plugin the host waits for a `sync` answer before
/// it gives up on the plugin.
pub const SYNC_GRACE: Duration = Duration::from_secs(5);

/// Reply fields of a successful op.
pub type Fields = Map<String, Value>;

/// A running host with its plugins.
pub struct Session {
    shared: Arc<HostShared>,
    plugins: Vec<Arc<PluginInstance>>,
    rejected: Vec<Rejected>,
    /// The host's context, without `data_dir` (set per plugin).
    context: Mutex<HostContext>,
    dispatcher: Dispatcher,
    /// How long `sync` may take (the spec's 30 s; the demo asks for less).
    sync_timeout_ms: u32,
}

impl Session {
    /// Loads the plugins of `options.plugins_dir`, writing `plugin_loaded` / `plugin_rejected`
    /// events to `output` (before anything else), then starts writing the plugins' events.
    pub fn start(options: &HostOptions, output: Arc<Output>) -> Self {
        let shared = HostShared::new(output.clone());
        let (tx, rx) = mpsc::channel();
        let context = HostContext::default();
        if let Err(e) = std::fs::create_dir_all(&options.data_dir) {
            tracing::warn!(
                "cannot create the data folder {}: {e}",
                options.data_dir.display()
            );
        }
        let make_host = |name: &str, index: usize| {
            host_box(name, index, &tx, &options.browser, &options.sso_command)
        };
        let loaded = plugins::load_folder(
            &options.plugins_dir,
            &options.data_dir,
            &context,
            &options.in_process,
            &make_host,
            &mut |outcome| output.event(startup_event(&outcome)),
        );
        // Events the constructors sent wait in the channel until now: after `plugin_loaded`.
        let dispatcher = Dispatcher::start(tx, rx, shared.clone(), loaded.plugins.clone());
        Self {
            shared,
            plugins: loaded.plugins,
            rejected: loaded.rejected,
            context: Mutex::new(context),
            dispatcher,
            sync_timeout_ms: SYNC_TIMEOUT_MS,
        }
    }

    /// Sets how long `sync` may take (default 30 s).
    pub fn set_sync_timeout_ms(&mut self, ms: u32) {
        self.sync_timeout_ms = ms;
    }

    /// Sets (or removes) who hears of contact sync progress (the host extension
    /// `sync.progress`; never written to the output).
    pub fn set_progress_listener(&self, listener: Option<crate::progress::ProgressListener>) {
        self.shared.set_progress_listener(listener);
    }

    /// The loaded integrations, in load order.
    pub fn plugins(&self) -> &[Arc<PluginInstance>] {
        &self.plugins
    }

    /// The files that were not loaded.
    pub fn rejected(&self) -> &[Rejected] {
        &self.rejected
    }

    /// The output this session writes to.
    pub fn output(&self) -> &Arc<Output> {
        &self.shared.output
    }

    /// The host's current Contact status.
    pub fn contact_status(&self) -> ContactStatus {
        self.shared.status()
    }

    /// Switches every plugin off (once; bounded), then writes the events still queued.
    pub fn shutdown(&self) {
        plugins::shutdown_all(&self.plugins);
        self.flush_events();
    }

    /// Waits (at most 2 s) until every event the plugins sent so far is written.
    pub fn flush_events(&self) {
        self.dispatcher.flush(Duration::from_secs(2));
    }

    /// The plugin an integration op goes to: the one named `key`, else the first loaded.
    fn select(&self, key: Option<&str>) -> Result<&Arc<PluginInstance>, OpError> {
        let first = self.plugins.first().ok_or_else(OpError::no_plugin)?;
        match key {
            None => Ok(first),
            Some(key) => self
                .plugins
                .iter()
                .find(|p| p.is_named(key))
                .ok_or_else(|| {
                    let names: Vec<String> = self
                        .plugins
                        .iter()
                        .map(|p| format!("{:?} ({})", p.name, p.file))
                        .collect();
                    OpError::bad_request(format!(
                        "no plugin named {key:?}; loaded: {}",
                        names.join(", ")
                    ))
                }),
        }
    }

    fn state_fields(&self, state: &IntegrationState) -> Fields {
        let mut f = Fields::new();
        f.insert(
            "state".into(),
            json::state_json(state, self.shared.status()),
        );
        f
    }

    fn state_reply(
        &self,
        answer: RResult<IntegrationState, IntegrationError>,
    ) -> Result<Fields, OpError> {
        match answer {
            RResult::ROk(state) => Ok(self.state_fields(&state)),
            RResult::RErr(e) => Err(e.into()),
        }
    }

    /// Carries out `op` and answers the reply's fields. `mark` is the event stream's position
    /// when the op was read (for `wait_for`); `cancelled` is polled by every wait.
    pub fn execute(
        &self,
        op: &Op,
        mark: EventMark,
        cancelled: &(dyn Fn() -> bool + Sync),
    ) -> Result<Fields, OpError> {
        match op {
            Op::Context(patch) => self.context(patch),
            Op::Settings { plugin, update } => {
                let p = self.select(plugin.as_deref())?;
                self.state_reply(p.integration().apply_settings((**update).clone()))
            }
            Op::State { plugin } => {
                let p = self.select(plugin.as_deref())?;
                Ok(self.state_fields(&p.integration().state()))
            }
            Op::SignIn { plugin } => {
                let p = self.select(plugin.as_deref())?;
                self.state_reply(p.integration().sign_in())
            }
            Op::SignOut { plugin } => {
                let p = self.select(plugin.as_deref())?;
                self.state_reply(p.integration().sign_out())
            }
            Op::Sync { plugin } => {
                let p = self.select(plugin.as_deref())?.clone();
                self.sync(p, cancelled)
            }
            Op::IncomingCall { call_id, number } => self.incoming_call(call_id, number),
            Op::Search { query, limit } => self.search(query, *limit),
            Op::Status(status) => {
                self.status(*status);
                Ok(Fields::new())
            }
            Op::Wait { ms } => {
                sleep_unless(Duration::from_millis(*ms), cancelled)?;
                Ok(Fields::new())
            }
            Op::WaitFor { event, timeout_ms } => {
                let timeout = Duration::from_millis(*timeout_ms);
                match self
                    .shared
                    .output
                    .wait_for_event(event, mark, timeout, cancelled)
                {
                    Ok(found) => {
                        let mut f = Fields::new();
                        f.insert("event".into(), found);
                        Ok(f)
                    }
                    Err(WaitEnd::Cancelled) => Err(OpError::cancelled()),
                    Err(WaitEnd::TimedOut) => Err(OpError::new(
                        code::TIMEOUT,
                        format!("no `{event}` event within {timeout_ms} ms"),
                    )),
                }
            }
            Op::Quit => Ok(Fields::new()),
        }
    }

    fn context(&self, patch: &ContextPatch) -> Result<Fields, OpError> {
        let mut next = self
            .context
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(u) = &patch.username {
            next.username = u.as_str().into();
        }
        if let Some(a) = &patch.addons {
            next.addons = a.iter().map(|s| RString::from(s.as_str())).collect();
        }
        if let Some(c) = &patch.country {
            next.country = c.as_str().into();
        }
        if let Some(l) = patch.legacy_presence_integration {
            next.legacy_presence_integration = l;
        }
        let mut first_error: Option<OpError> = None;
        for p in &self.plugins {
            let ctx = HostContext {
                data_dir: p.data_dir.to_string_lossy().into_owned().into(),
                ..next.clone()
            };
            if let RResult::RErr(e) = p.integration().apply_context(ctx) {
                tracing::warn!(plugin = %p.name, "apply_context failed: {e}");
                first_error.get_or_insert(e.into());
            }
        }
        match first_error {
            // A refused value: the host keeps its context as it was.
            Some(e) if e.code == code::BAD_REQUEST => Err(e),
            other => {
                *self.context.lock().unwrap_or_else(PoisonError::into_inner) = next;
                other.map_or(Ok(Fields::new()), Err)
            }
        }
    }

    fn sync(
        &self,
        plugin: Arc<PluginInstance>,
        cancelled: &(dyn Fn() -> bool + Sync),
    ) -> Result<Fields, OpError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let timeout_ms = self.sync_timeout_ms;
        let name = plugin.name.clone();
        thread::Builder::new()
            .name("plugin-sync".into())
            .spawn(move || {
                let answer = plugin.integration().sync(timeout_ms);
                let _ = tx.send(answer);
            })
            .map_err(|e| OpError::plugin_error(format!("cannot start the sync: {e}")))?;
        let limit = Duration::from_millis(u64::from(timeout_ms)) + SYNC_GRACE;
        let deadline = Instant::now() + limit;
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(RResult::ROk(report)) => return Ok(json::sync_fields(&report)),
                Ok(RResult::RErr(e)) => return Err(e.into()),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(OpError::plugin_error("the sync ended without an answer"));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if cancelled() {
                        return Err(OpError::cancelled());
                    }
                    if Instant::now() >= deadline {
                        tracing::warn!(plugin = %name, "sync did not answer in time");
                        return Err(OpError::plugin_error(format!(
                            "the plugin did not answer the sync within {} s",
                            limit.as_secs()
                        )));
                    }
                }
            }
        }
    }

    fn incoming_call(&self, call_id: &str, number: &str) -> Result<Fields, OpError> {
        let mut fields = Fields::new();
        fields.insert("caller".into(), Value::Null);
        let mut first_error = None;
        let mut answered = self.plugins.is_empty();
        for p in &self.plugins {
            let call = IncomingCall {
                call_id: call_id.into(),
                number: number.into(),
                extensions: RString::new(),
            };
            match p.integration().on_incoming_call(call) {
                RResult::ROk(ROption::RSome(caller)) => {
                    fields.insert("caller".into(), json::caller_json(&caller));
                    return Ok(fields);
                }
                RResult::ROk(ROption::RNone) => answered = true,
                RResult::RErr(e) => {
                    tracing::info!(plugin = %p.name, "on_incoming_call failed: {e}");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) if !answered => Err(e.into()),
            _ => Ok(fields),
        }
    }

    fn search(&self, query: &str, limit: u32) -> Result<Fields, OpError> {
        let mut results: Vec<Value> = Vec::new();
        let mut first_error = None;
        let mut answered = self.plugins.is_empty() || limit == 0;
        if limit > 0 {
            for p in &self.plugins {
                let remaining = limit as usize - results.len();
                if remaining == 0 {
                    break;
                }
                match p
                    .integration()
                    .search_phonebook(query.into(), remaining as u32)
                {
                    RResult::ROk(entries) => {
                        answered = true;
                        results.extend(entries.iter().take(remaining).map(json::entry_json));
                    }
                    RResult::RErr(e) => {
                        tracing::info!(plugin = %p.name, "search_phonebook failed: {e}");
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        match first_error {
            Some(e) if !answered => Err(e.into()),
            _ => {
                let mut fields = Fields::new();
                fields.insert("results".into(), Value::Array(results));
                Ok(fields)
            }
        }
    }

    fn status(&self, status: ContactStatus) {
        self.shared.set_status(status);
        for p in &self.plugins {
            if let RResult::RErr(e) = p.integration().on_status_change(status) {
                tracing::warn!(plugin = %p.name, "on_status_change failed: {e}");
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        plugins::shutdown_all(&self.plugins);
        self.dispatcher.stop(Duration::from_secs(2));
    }
}

fn startup_event(outcome: &LoadOutcome<'_>) -> Value {
    let mut f = Map::new();
    match outcome {
        LoadOutcome::Loaded(p) => {
            f.insert("file".into(), p.file.as_str().into());
            f.insert("name".into(), p.name.as_str().into());
            f.insert("version".into(), p.version.as_str().into());
            f.insert("api_version".into(), p.api_version.as_str().into());
            json::event("plugin_loaded", f, None)
        }
        LoadOutcome::Rejected(r) => {
            f.insert("file".into(), r.file.as_str().into());
            f.insert("reason".into(), r.reason.as_str().into());
            json::event("plugin_rejected", f, None)
        }
    }
}

/// Sleeps `total`, in slices of at most 50 ms; `cancelled` when `cancelled()` turns true.
fn sleep_unless(total: Duration, cancelled: &dyn Fn() -> bool) -> Result<(), OpError> {
    let deadline = Instant::now() + total;
    loop {
        if cancelled() {
            return Err(OpError::cancelled());
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(());
        }
        thread::sleep((deadline - now).min(Duration::from_millis(50)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::SharedBuffer;

    fn empty_session() -> (Session, SharedBuffer, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let options = HostOptions {
            plugins_dir: dir.path().join("plugins"),
            data_dir: dir.path().join("data"),
            ..HostOptions::default()
        };
        let buf = SharedBuffer::new();
        let s = Session::start(&options, Output::json_lines(buf.clone()));
        (s, buf, dir)
    }

    #[test]
    fn without_plugins_integration_ops_say_so() {
        let (s, _buf, _dir) = empty_session();
        let never = || false;
        let run = |op: Op| s.execute(&op, s.output().mark(), &never);
        for op in [
            Op::State { plugin: None },
            Op::SignIn { plugin: None },
            Op::SignOut {
                plugin: Some("x".into()),
            },
            Op::Sync { plugin: None },
            Op::Settings {
                plugin: None,
                update: Default::default(),
            },
        ] {
            let e = run(op).unwrap_err();
            assert_eq!(e.code, "plugin_error");
            assert_eq!(e.message, "no plugin loaded");
        }
        let c = run(Op::IncomingCall {
            call_id: "c".into(),
            number: "+1".into(),
        })
        .unwrap();
        assert_eq!(c["caller"], Value::Null);
        let r = run(Op::Search {
            query: "a".into(),
            limit: 5,
        })
        .unwrap();
        assert_eq!(r["results"], Value::Array(vec![]));
        assert!(
            run(Op::Context(ContextPatch::default()))
                .unwrap()
                .is_empty()
        );
        run(Op::Status(ContactStatus::BUSY)).unwrap();
        assert_eq!(s.contact_status(), ContactStatus::BUSY);
        run(Op::Wait { ms: 1 }).unwrap();
        let t = run(Op::WaitFor {
            event: "x".into(),
            timeout_ms: 20,
        })
        .unwrap_err();
        assert_eq!(t.code, "timeout");
        s.shutdown();
    }

    #[test]
    fn waits_end_on_cancel() {
        let (s, _buf, _dir) = empty_session();
        let start = Instant::now();
        let e = s
            .execute(&Op::Wait { ms: 60_000 }, s.output().mark(), &|| true)
            .unwrap_err();
        assert_eq!(e.code, "cancelled");
        let e = s
            .execute(
                &Op::WaitFor {
                    event: "x".into(),
                    timeout_ms: 60_000,
                },
                s.output().mark(),
                &|| true,
            )
            .unwrap_err();
        assert_eq!(e.code, "cancelled");
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    fn fake_session(
        fakes: Vec<crate::plugins::InProcessPlugin>,
    ) -> (Session, SharedBuffer, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let options = HostOptions {
            plugins_dir: dir.path().join("plugins"),
            data_dir: dir.path().join("data"),
            browser: crate::browser::Browser::InProcess(Arc::new(|_: &str| true)),
            in_process: fakes,
            ..HostOptions::default()
        };
        let buf = SharedBuffer::new();
        let s = Session::start(&options, Output::json_lines(buf.clone()));
        (s, buf, dir)
    }

    #[test]
    fn ops_reach_the_plugin_and_answers_follow_the_spec() {
        let (a, probe) = crate::fake::plugin("fake-a", "Fake", "+1");
        let (s, buf, dir) = fake_session(vec![a]);
        assert!(dir.path().join("data").join("fake-a").is_dir());
        let never = || false;
        let run = |op: Op| s.execute(&op, s.output().mark(), &never);

        let update = host_api::SettingsUpdate {
            microsoft_integration: ROption::RSome(true),
            ..Default::default()
        };
        let st = run(Op::Settings {
            plugin: Some("Fake".into()),
            update: Box::new(update),
        })
        .unwrap();
        assert_eq!(st["state"]["microsoft_integration"], "sign_in_required");
        assert_eq!(
            st["state"]["contact_status"], "online",
            "the host's status wins"
        );
        assert_eq!(st["state"]["extra"], 1);
        assert_eq!(st["state"]["contacts"], 0);

        let mark = s.output().mark();
        let si = s
            .execute(
                &Op::SignIn {
                    plugin: Some("fake-a".into()),
                },
                mark,
                &never,
            )
            .unwrap();
        assert_eq!(si["state"]["microsoft_integration"], "signing_in");
        let waited = s
            .execute(
                &Op::WaitFor {
                    event: "notification".into(),
                    timeout_ms: 2000,
                },
                mark,
                &never,
            )
            .unwrap();
        assert_eq!(waited["event"]["user_code"], "ABC-123");
        assert_eq!(waited["event"]["plugin"], "Fake");

        let e = run(Op::SignOut { plugin: None }).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            ("plugin_error", "the plugin panicked: boom")
        );
        let e = run(Op::State {
            plugin: Some("other".into()),
        })
        .unwrap_err();
        assert_eq!(e.code, "bad_request");

        let c = run(Op::IncomingCall {
            call_id: "c1".into(),
            number: "+1".into(),
        })
        .unwrap();
        assert_eq!(c["caller"]["extension"], "100");
        assert_eq!(c["caller"]["source"], "directory");
        let c = run(Op::IncomingCall {
            call_id: "c2".into(),
            number: "+2".into(),
        })
        .unwrap();
        assert_eq!(c["caller"], Value::Null);

        let r = run(Op::Search {
            query: "ad".into(),
            limit: 3,
        })
        .unwrap();
        assert_eq!(r["results"].as_array().unwrap().len(), 3);
        assert_eq!(r["results"][0]["numbers"][0]["type"], "mobile");
        let r = run(Op::Search {
            query: "ad".into(),
            limit: 0,
        })
        .unwrap();
        assert_eq!(r["results"].as_array().unwrap().len(), 0);

        // The status goes to the plugin; Teams answers through the callback.
        let mark = s.output().mark();
        run(Op::Status(ContactStatus::BUSY)).unwrap();
        let ev = s
            .execute(
                &Op::WaitFor {
                    event: "status_changed".into(),
                    timeout_ms: 2000,
                },
                mark,
                &never,
            )
            .unwrap();
        assert_eq!(ev["event"]["status"], "in_teams_call");
        assert_eq!(ev["event"]["source"], "teams");
        assert_eq!(s.contact_status(), ContactStatus::IN_TEAMS_CALL);
        assert_eq!(*probe.statuses.lock().unwrap(), [ContactStatus::BUSY]);

        // A blocked sync ends when the time given runs out (sync_failed from the plugin).
        let mut s = s;
        s.set_sync_timeout_ms(100);
        let e = s
            .execute(&Op::Sync { plugin: None }, s.output().mark(), &never)
            .unwrap_err();
        assert_eq!(e.code, "sync_failed");

        s.shutdown();
        assert!(*probe.shut_down.lock().unwrap());
        let events: Vec<String> = buf
            .json_lines()
            .iter()
            .map(|l| l["event"].as_str().unwrap_or("").to_owned())
            .collect();
        assert_eq!(events[0], "plugin_loaded");
        for name in [
            "state_changed",
            "open_url",
            "notification",
            "status_changed",
        ] {
            assert!(
                events.iter().any(|e| e == name),
                "{name} missing: {events:?}"
            );
        }
    }

    #[test]
    fn several_plugins_share_calls_and_statuses() {
        let (a, pa) = crate::fake::plugin("a", "Fake", "+1");
        let (b, pb) = crate::fake::plugin("b", "Fake", "+2");
        let (s, _buf, _dir) = fake_session(vec![a, b]);
        let never = || false;
        let run = |op: Op| s.execute(&op, s.output().mark(), &never);
        let c = run(Op::IncomingCall {
            call_id: "c".into(),
            number: "+2".into(),
        })
        .unwrap();
        assert!(c["caller"].is_object(), "the second plugin's caller");
        let r = run(Op::Search {
            query: "x".into(),
            limit: 8,
        })
        .unwrap();
        assert_eq!(r["results"].as_array().unwrap().len(), 8);
        run(Op::Status(ContactStatus::BUSY)).unwrap();
        s.flush_events();
        // Both heard `busy` from the host. Each answers with in_teams_call from Teams; the first
        // one changes the host's status and the other plugin is told (the second changes
        // nothing).
        let a_heard = pa.statuses.lock().unwrap().clone();
        let b_heard = pb.statuses.lock().unwrap().clone();
        assert_eq!(a_heard[0], ContactStatus::BUSY);
        assert_eq!(b_heard[0], ContactStatus::BUSY);
        assert_eq!(s.contact_status(), ContactStatus::IN_TEAMS_CALL);
        s.shutdown();
        assert!(*pa.shut_down.lock().unwrap() && *pb.shut_down.lock().unwrap());
    }
}
