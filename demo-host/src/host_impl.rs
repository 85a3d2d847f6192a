//! The host's callbacks ([`host_api::Host`]) and the thread that turns them into events.
//!
//! Each plugin gets its own [`HostImpl`], which knows the plugin's name. A callback only
//! enqueues a [`HostEvent`] into a channel and returns (it never calls into a plugin); the
//! [`Dispatcher`] thread writes the events. Exceptions, both bounded: `open_url` runs the
//! browser (10 s at most) and `sso_token` runs the SSO command (10 s at most), because the
//! plugin needs their answers. Log lines go straight to `tracing`.
//! Every callback catches its own panics: none reaches the plugin.

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{
        Arc, Mutex, PoisonError,
        mpsc::{self, Receiver, Sender, SyncSender},
    },
    thread,
    time::Duration,
};

use host_api::{
    CallerInfo, ContactStatus, ErrorCode, Host, Host_TO, HostBox, IntegrationError,
    IntegrationState, LogLevel, Notification, SsoToken, panic_message,
    reexports::{ROption, RResult, RStr, RString, RVec, TD_Opaque},
};
use serde_json::{Map, Value};

use crate::{
    browser::Browser,
    json,
    output::Output,
    plugins::PluginInstance,
    progress::{ProgressListener, SYNC_PROGRESS_OP, SyncProgress},
};

/// How long `open_url` waits for its event to be written before it runs the browser.
const OPEN_URL_EVENT_WAIT: Duration = Duration::from_secs(1);

/// What a plugin did through a callback, on its way to the output.
pub enum HostEvent {
    /// `set_contact_status` with a status this host knows.
    StatusChanged {
        /// The plugin's name.
        plugin: Arc<str>,
        /// The plugin's [`PluginInstance::index`].
        source: usize,
        /// The status.
        status: ContactStatus,
    },
    /// `update_caller`.
    CallerUpdated {
        /// The plugin's name.
        plugin: Arc<str>,
        /// The call.
        call_id: String,
        /// The `caller` object.
        caller: Value,
    },
    /// `open_url` (acknowledged once written).
    OpenUrl {
        /// The plugin's name.
        plugin: Arc<str>,
        /// The URL.
        url: String,
        /// Told when the event is written.
        written: Option<SyncSender<()>>,
    },
    /// `notify`.
    Notification {
        /// The plugin's name.
        plugin: Arc<str>,
        /// The event's fields.
        fields: Map<String, Value>,
    },
    /// `state_changed`.
    StateChanged {
        /// The plugin's name.
        plugin: Arc<str>,
        /// The new state.
        state: Box<IntegrationState>,
    },
    /// The host extension `sync.progress` (never written as an event: the scripted mode's
    /// events are fixed; a listener set with [`HostShared::set_progress_listener`] hears it).
    SyncProgress {
        /// The plugin's name.
        plugin: Arc<str>,
        /// The report.
        progress: SyncProgress,
    },
    /// Answered once every event before it is written.
    Flush(SyncSender<()>),
    /// Ends the dispatcher thread (after the events before it).
    Stop,
}

/// What the host itself knows and every part of it shares.
pub struct HostShared {
    /// The host's current Contact status (the authority; `online` at start).
    status: Mutex<ContactStatus>,
    /// Where events go.
    pub output: Arc<Output>,
    /// Who hears of sync progress (the human commands' progress bar), if anyone.
    progress: Mutex<Option<ProgressListener>>,
}

impl HostShared {
    /// Shared state writing events to `output`.
    pub fn new(output: Arc<Output>) -> Arc<Self> {
        Arc::new(Self {
            status: Mutex::new(ContactStatus::ONLINE),
            output,
            progress: Mutex::new(None),
        })
    }

    /// Sets (or removes, with `None`) who hears of sync progress.
    pub fn set_progress_listener(&self, listener: Option<ProgressListener>) {
        *self.progress.lock().unwrap_or_else(PoisonError::into_inner) = listener;
    }

    fn progress_listener(&self) -> Option<ProgressListener> {
        self.progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The host's current Contact status.
    pub fn status(&self) -> ContactStatus {
        *self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the current status; answers whether it changed.
    pub fn set_status(&self, status: ContactStatus) -> bool {
        let mut current = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        let changed = *current != status;
        *current = status;
        changed
    }
}

/// The [`Host`] implementation given to one plugin.
pub struct HostImpl {
    plugin: Arc<str>,
    index: usize,
    events: Sender<HostEvent>,
    browser: Browser,
    sso_command: Option<String>,
}

impl HostImpl {
    /// Callbacks for the plugin named `plugin` (its [`PluginInstance::index`] is `index`),
    /// sending events to `events`.
    pub fn new(
        plugin: &str,
        index: usize,
        events: Sender<HostEvent>,
        browser: Browser,
        sso_command: Option<String>,
    ) -> Self {
        Self {
            plugin: Arc::from(plugin),
            index,
            events,
            browser,
            sso_command,
        }
    }

    /// Boxed for the plugin's constructor.
    pub fn into_box(self) -> HostBox {
        Host_TO::from_value(self, TD_Opaque)
    }

    fn send(&self, event: HostEvent) {
        // The receiver is gone only while the host shuts down: then the event does not matter.
        let _ = self.events.send(event);
    }

    /// Runs a callback body, catching its panics (logged) and answering `fallback` then.
    fn guard<T>(&self, what: &str, fallback: T, f: impl FnOnce() -> T) -> T {
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(v) => v,
            Err(payload) => {
                tracing::error!(
                    plugin = %self.plugin,
                    "the host's `{what}` callback panicked: {}",
                    panic_message(payload.as_ref())
                );
                fallback
            }
        }
    }
}

impl Host for HostImpl {
    fn set_contact_status(&self, status: ContactStatus) {
        self.guard("set_contact_status", (), || {
            if status.name().is_none() {
                tracing::warn!(
                    plugin = %self.plugin,
                    "ignoring a Contact status this host does not know: {status}"
                );
                return;
            }
            self.send(HostEvent::StatusChanged {
                plugin: self.plugin.clone(),
                source: self.index,
                status,
            });
        })
    }

    fn update_caller(&self, call_id: RStr<'_>, caller: CallerInfo) {
        self.guard("update_caller", (), || {
            self.send(HostEvent::CallerUpdated {
                plugin: self.plugin.clone(),
                call_id: call_id.as_str().to_owned(),
                caller: json::caller_json(&caller),
            });
        })
    }

    fn open_url(&self, url: RStr<'_>) -> bool {
        self.guard("open_url", false, || {
            let (tx, rx) = mpsc::sync_channel(1);
            self.send(HostEvent::OpenUrl {
                plugin: self.plugin.clone(),
                url: url.as_str().to_owned(),
                written: Some(tx),
            });
            let _ = rx.recv_timeout(OPEN_URL_EVENT_WAIT);
            self.browser.open(url.as_str())
        })
    }

    fn notify(&self, notification: Notification) {
        self.guard("notify", (), || {
            self.send(HostEvent::Notification {
                plugin: self.plugin.clone(),
                fields: json::notification_fields(&notification),
            });
        })
    }

    fn state_changed(&self, state: IntegrationState) {
        self.guard("state_changed", (), || {
            self.send(HostEvent::StateChanged {
                plugin: self.plugin.clone(),
                state: Box::new(state),
            });
        })
    }

    fn log(&self, level: LogLevel, target: RStr<'_>, message: RStr<'_>) {
        self.guard("log", (), || {
            let (plugin, target, message) = (&*self.plugin, target.as_str(), message.as_str());
            match level {
                LogLevel::ERROR => tracing::error!(target: "plugin", plugin, target, "{message}"),
                LogLevel::WARN => tracing::warn!(target: "plugin", plugin, target, "{message}"),
                LogLevel::DEBUG => tracing::debug!(target: "plugin", plugin, target, "{message}"),
                LogLevel::TRACE => tracing::trace!(target: "plugin", plugin, target, "{message}"),
                // INFO, and levels added by a newer host-api.
                _ => tracing::info!(target: "plugin", plugin, target, "{message}"),
            }
        })
    }

    fn sso_token(&self, scopes: RVec<RString>) -> ROption<SsoToken> {
        self.guard("sso_token", ROption::RNone, || {
            let Some(cmd) = &self.sso_command else {
                tracing::debug!(plugin = %self.plugin, "no SSO login in this host");
                return ROption::RNone;
            };
            let scopes: Vec<&str> = scopes.iter().map(RString::as_str).collect();
            crate::sso::token(cmd, &scopes).into()
        })
    }

    /// Known operations: [`SYNC_PROGRESS_OP`] (payload `{"folders_done", "folders",
    /// "items"}`, answered `{}`; a payload that does not read is `bad_request`). Any other op
    /// is `unsupported`.
    fn extension(&self, op: RStr<'_>, payload: RStr<'_>) -> RResult<RString, IntegrationError> {
        self.guard(
            "extension",
            RResult::RErr(IntegrationError::unsupported(op.as_str())),
            || match op.as_str() {
                SYNC_PROGRESS_OP => match SyncProgress::parse(payload.as_str()) {
                    Ok(progress) => {
                        self.send(HostEvent::SyncProgress {
                            plugin: self.plugin.clone(),
                            progress,
                        });
                        RResult::ROk(RString::from("{}"))
                    }
                    Err(why) => RResult::RErr(IntegrationError::new(
                        ErrorCode::BAD_REQUEST,
                        format!("`{SYNC_PROGRESS_OP}` payload: {why}"),
                    )),
                },
                other => RResult::RErr(IntegrationError::unsupported(other)),
            },
        )
    }
}

/// The thread writing the callbacks' events, in the order they came.
pub struct Dispatcher {
    events: Sender<HostEvent>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Dispatcher {
    /// Starts writing events received on `rx` (sent through `events`); `plugins` are told of a
    /// status change another plugin made.
    pub fn start(
        events: Sender<HostEvent>,
        rx: Receiver<HostEvent>,
        shared: Arc<HostShared>,
        plugins: Vec<Arc<PluginInstance>>,
    ) -> Self {
        let thread = thread::Builder::new()
            .name("host-events".into())
            .spawn(move || {
                for event in rx {
                    if matches!(event, HostEvent::Stop) {
                        break;
                    }
                    let step = catch_unwind(AssertUnwindSafe(|| {
                        dispatch(event, &shared, &plugins);
                    }));
                    if let Err(payload) = step {
                        tracing::error!(
                            "writing an event panicked: {}",
                            panic_message(payload.as_ref())
                        );
                    }
                }
            })
            .ok();
        Self { events, thread }
    }

    /// Waits (at most `timeout`) until every event sent before this call is written.
    pub fn flush(&self, timeout: Duration) {
        if self.thread.is_none() {
            return;
        }
        let (tx, rx) = mpsc::sync_channel(1);
        if self.events.send(HostEvent::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(timeout);
        }
    }

    /// Writes the events still queued and ends the thread (waiting at most `timeout`).
    pub fn stop(&mut self, timeout: Duration) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        if self.events.send(HostEvent::Stop).is_err() {
            return;
        }
        let deadline = std::time::Instant::now() + timeout;
        while !thread.is_finished() && std::time::Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        if thread.is_finished() {
            let _ = thread.join();
        }
    }
}

fn dispatch(event: HostEvent, shared: &HostShared, plugins: &[Arc<PluginInstance>]) {
    let out = &shared.output;
    match event {
        HostEvent::StatusChanged {
            plugin,
            source,
            status,
        } => {
            if !shared.set_status(status) {
                return;
            }
            let mut fields = Map::new();
            fields.insert("status".into(), status.name().unwrap_or("unknown").into());
            fields.insert("source".into(), "teams".into());
            out.event(json::event("status_changed", fields, Some(&plugin)));
            // The host's status changed: every other integration hears of it, as from the user.
            for other in plugins.iter().filter(|p| p.index != source) {
                if let RResult::RErr(e) = other.integration().on_status_change(status) {
                    tracing::warn!(plugin = %other.name, "on_status_change failed: {e}");
                }
            }
        }
        HostEvent::CallerUpdated {
            plugin,
            call_id,
            caller,
        } => {
            let mut fields = Map::new();
            fields.insert("call_id".into(), call_id.into());
            fields.insert("caller".into(), caller);
            out.event(json::event("caller_updated", fields, Some(&plugin)));
        }
        HostEvent::OpenUrl {
            plugin,
            url,
            written,
        } => {
            let mut fields = Map::new();
            fields.insert("url".into(), url.into());
            out.event(json::event("open_url", fields, Some(&plugin)));
            if let Some(tx) = written {
                let _ = tx.try_send(());
            }
        }
        HostEvent::Notification { plugin, fields } => {
            out.event(json::event("notification", fields, Some(&plugin)));
        }
        HostEvent::StateChanged { plugin, state } => {
            let mut fields = Map::new();
            fields.insert("state".into(), json::state_json(&state, shared.status()));
            out.event(json::event("state_changed", fields, Some(&plugin)));
        }
        HostEvent::SyncProgress { plugin, progress } => {
            if let Some(listener) = shared.progress_listener() {
                listener(&plugin, progress);
            }
        }
        HostEvent::Flush(tx) => {
            let _ = tx.try_send(());
        }
        HostEvent::Stop => {}
    }
}

/// A [`HostBox`] for `plugin` (a shorthand used by the loader).
pub fn host_box(
    plugin: &str,
    index: usize,
    events: &Sender<HostEvent>,
    browser: &Browser,
    sso_command: &Option<String>,
) -> HostBox {
    HostImpl::new(
        plugin,
        index,
        events.clone(),
        browser.clone(),
        sso_command.clone(),
    )
    .into_box()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::SharedBuffer;
    use host_api::{ContactSource, NumberType};

    fn setup() -> (SharedBuffer, Arc<HostShared>, Dispatcher, HostBox) {
        let buf = SharedBuffer::new();
        let shared = HostShared::new(Output::json_lines(buf.clone()));
        let (tx, rx) = mpsc::channel();
        let host =
            HostImpl::new("Test", 0, tx.clone(), Browser::Command("true".into()), None).into_box();
        let d = Dispatcher::start(tx, rx, shared.clone(), Vec::new());
        (buf, shared, d, host)
    }

    #[test]
    fn callbacks_become_events_with_the_plugin_name() {
        let (buf, shared, d, host) = setup();
        host.set_contact_status(ContactStatus::ONLINE); // no change: no event
        host.set_contact_status(ContactStatus::BUSY);
        host.set_contact_status(ContactStatus::from_raw(250)); // unknown: ignored
        host.update_caller(
            "c1".into(),
            CallerInfo {
                display_name: "A".into(),
                company: "".into(),
                job_title: "".into(),
                number: "+1".into(),
                number_type: NumberType::OTHER,
                extension: ROption::RNone,
                source: ContactSource::OUTLOOK,
                contact_id: "x".into(),
                extensions: "".into(),
            },
        );
        #[cfg(unix)]
        assert!(host.open_url("http://example.invalid/".into()));
        host.notify(Notification {
            kind: "device_code".into(),
            message: "go".into(),
            user_code: ROption::RSome("ABCD".into()),
            verification_uri: ROption::RSome("http://v".into()),
            extensions: "".into(),
        });
        host.state_changed(IntegrationState::default());
        host.log(LogLevel::from_raw(77), "t".into(), "a log line".into());
        assert!(host.sso_token(RVec::new()).is_none());
        d.flush(Duration::from_secs(5));
        assert_eq!(shared.status(), ContactStatus::BUSY);
        let lines = buf.json_lines();
        let names: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
        let mut expected = vec!["status_changed", "caller_updated"];
        if cfg!(unix) {
            expected.push("open_url");
        }
        expected.extend(["notification", "state_changed"]);
        assert_eq!(names, expected);
        assert!(lines.iter().all(|l| l["plugin"] == "Test"));
        assert_eq!(lines[0]["source"], "teams");
        assert_eq!(lines[0]["status"], "busy");
        let n = lines.iter().find(|l| l["event"] == "notification").unwrap();
        assert_eq!(n["user_code"], "ABCD");
        let s = lines
            .iter()
            .find(|l| l["event"] == "state_changed")
            .unwrap();
        assert_eq!(
            s["state"]["contact_status"], "busy",
            "the host's status wins"
        );
    }

    #[test]
    fn sync_progress_reaches_the_listener_and_never_the_output() {
        let (buf, shared, d, host) = setup();
        let heard = Arc::new(Mutex::new(Vec::new()));
        let h = heard.clone();
        shared.set_progress_listener(Some(Arc::new(move |plugin: &str, p: SyncProgress| {
            h.lock().unwrap().push((plugin.to_owned(), p));
        })));
        let ok = host.extension(
            SYNC_PROGRESS_OP.into(),
            r#"{"folders_done":1,"folders":3,"items":12}"#.into(),
        );
        assert_eq!(ok.unwrap().as_str(), "{}");
        let bad = host
            .extension(SYNC_PROGRESS_OP.into(), "[1]".into())
            .unwrap_err();
        assert_eq!(bad.code, ErrorCode::BAD_REQUEST);
        let other = host.extension("new.thing".into(), "{}".into()).unwrap_err();
        assert_eq!(other.code, ErrorCode::UNSUPPORTED);
        d.flush(Duration::from_secs(5));
        let heard = heard.lock().unwrap().clone();
        assert_eq!(heard.len(), 1);
        assert_eq!(heard[0].0, "Test");
        assert_eq!(heard[0].1.items, 12);
        assert!(
            buf.contents().is_empty(),
            "no output line: {}",
            buf.contents()
        );
        // Without a listener the report is answered and dropped.
        shared.set_progress_listener(None);
        assert!(host.extension(SYNC_PROGRESS_OP.into(), "{}".into()).is_ok());
    }
}
