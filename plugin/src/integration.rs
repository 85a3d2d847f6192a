//! The integration object: the switches, the licensing rule, the state the host sees, and the
//! lifecycle of the engine (runtime + sign-in) that runs while Microsoft integration is on.
//!
//! Invariants:
//! - An [`Engine`] exists exactly while Microsoft integration is switched on *and* licensed,
//!   and the object has not been shut down.
//! - The `inner` lock is never held across an `.await` nor while a runtime is being stopped
//!   (its tasks may be waiting for that lock).
//! - Host calls never wait on the network; the hot paths (`caller_for`, `search`) take no lock
//!   but the directory's read lock.
//! - Every state change is reported to the host once, when it happens.

use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use abi_stable::std_types::ROption;
use host_api::{
    CallerInfo, ContactStatus, ErrorCode, HostBox, HostContext, IncomingCall, IntegrationError,
    IntegrationState, MicrosoftState, PhonebookEntry, PresenceState, SettingsUpdate, SyncReport,
};

use crate::{
    contacts::PendingCalls,
    directory::{Directory, Index, LookupOptions},
    faults::Faults,
    graph::Me,
    host::HostHandle,
    presence::{
        self,
        gate::{MIGRATION_REASON, Migration, Switch, check_upn},
    },
    session::{self, Engine, Mode, PresenceTask},
    settings::Settings,
    sync::Mailbox,
};

/// The add-on that licenses Microsoft 365 integration.
pub const LICENSE_ADDON: &str = "contact_connect";

/// Largest phonebook answer, whatever the host asks for.
pub const MAX_SEARCH_RESULTS: u32 = 200;

/// How long stopping the engine may take when a switch turns it off.
const STOP_DEADLINE: Duration = Duration::from_secs(2);

/// What the plugin knows of the host's context.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Context {
    /// Contact Desktop username.
    pub username: String,
    /// Licensed add-ons.
    pub addons: Vec<String>,
    /// Default region for numbers.
    pub country: String,
    /// This integration's own folder.
    pub data_dir: PathBuf,
    /// An earlier presence integration was configured.
    pub legacy_presence_integration: bool,
}

impl Context {
    fn from_host(c: &HostContext) -> Self {
        Self {
            username: c.username.to_string(),
            addons: c.addons.iter().map(|a| a.to_string()).collect(),
            country: c.country.to_string(),
            data_dir: PathBuf::from(c.data_dir.as_str()),
            legacy_presence_integration: c.legacy_presence_integration,
        }
    }

    /// Whether Microsoft 365 integration is licensed.
    pub fn licensed(&self) -> bool {
        self.addons.iter().any(|a| a == LICENSE_ADDON)
    }
}

/// Where the sign-in stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthPhase {
    /// Signing in (silently or interactively).
    SigningIn,
    /// Signed in.
    Active,
    /// The user must sign in (`sign_in`).
    SignInRequired,
    /// Something failed that retrying may fix; see `last_error`.
    Error,
}

/// Mutable state, behind one lock.
pub(crate) struct Inner {
    pub(crate) context: Context,
    pub(crate) settings: Settings,
    pub(crate) engine: Option<Engine>,
    reported: IntegrationState,
    pub(crate) contact_status: ContactStatus,
    pub(crate) last_error: Option<String>,
    pub(crate) shut_down: bool,
    pub(crate) auth: AuthPhase,
    pub(crate) account: Option<Me>,
    /// Bumped whenever the sign-in is restarted or forgotten: a task holding an older value
    /// must not touch the state.
    pub(crate) generation: u64,
    /// One calm `sign_in_required` notification per episode.
    pub(crate) notified_sign_in_required: bool,
    /// What was synced (the index is built from it).
    pub(crate) mailbox: Arc<Mailbox>,
    /// Teams presence last read.
    pub(crate) teams_presence: Option<(String, String)>,
    /// Rule 6 (earlier presence integration).
    migration: Migration,
    /// The blocked reason already notified (one notification per reason).
    presence_block_notified: Option<String>,
}

/// Whether presence sync may run now.
#[derive(Clone, Debug, PartialEq, Eq)]
enum PresenceGate {
    Off,
    Pending,
    Blocked(String),
    Run,
}

/// Everything shared by the integration object and its tasks.
pub(crate) struct Core {
    pub(crate) host: HostHandle,
    inner: Mutex<Inner>,
    /// Microsoft integration on and licensed: calls and searches are answered.
    serving: AtomicBool,
    pub(crate) directory: Arc<Directory>,
    /// Region and outside-line prefixes for caller lookups (read on every call).
    lookup: std::sync::RwLock<(String, Vec<String>)>,
    /// Calls that found no name yet.
    pub(crate) pending_calls: PendingCalls,
    faults: Faults,
}

/// The Microsoft 365 integration.
pub struct Ms365Integration {
    core: Arc<Core>,
}

impl Ms365Integration {
    /// Creates the integration: restores the settings kept in the data folder and, when they
    /// switch Microsoft integration on (and the add-on is licensed), starts it.
    pub fn new(host: HostBox, context: HostContext) -> Result<Self, IntegrationError> {
        Self::with_faults(host, context, Faults::from_env())
    }

    /// [`new`](Self::new) with explicit test hooks instead of the environment's.
    pub fn with_faults(
        host: HostBox,
        context: HostContext,
        faults: Faults,
    ) -> Result<Self, IntegrationError> {
        let host = HostHandle::new(host);
        let context = Context::from_host(&context);
        let (settings, note) = if context.data_dir.as_os_str().is_empty() {
            (Settings::default(), None)
        } else {
            Settings::load(&context.data_dir)
        };
        let mut migration = Migration::load(&context.data_dir);
        if context.legacy_presence_integration {
            migration.observe_start(
                settings.microsoft_integration,
                settings.presence_integration,
            );
        }
        if let Some(note) = note {
            host.warn("settings", &note);
        }
        let core = Arc::new(Core {
            host,
            inner: Mutex::new(Inner {
                context,
                settings,
                engine: None,
                reported: IntegrationState::default(),
                contact_status: ContactStatus::ONLINE,
                last_error: None,
                shut_down: false,
                auth: AuthPhase::SignInRequired,
                account: None,
                generation: 0,
                notified_sign_in_required: false,
                mailbox: Arc::new(Mailbox::default()),
                teams_presence: None,
                migration,
                presence_block_notified: None,
            }),
            serving: AtomicBool::new(false),
            directory: Arc::new(Directory::default()),
            lookup: Default::default(),
            pending_calls: PendingCalls::default(),
            faults,
        });
        core.reconcile(core.lock());
        Ok(Self { core })
    }

    /// The host's context changed.
    pub fn set_context(&self, context: &HostContext) -> Result<IntegrationState, IntegrationError> {
        let core = &self.core;
        let mut inner = core.lock_live()?;
        let was_licensed = inner.context.licensed();
        let old_country = inner.context.country.clone();
        let was_legacy = inner.context.legacy_presence_integration;
        inner.context = Context::from_host(context);
        if !was_legacy && inner.context.legacy_presence_integration {
            let (m, p) = (
                inner.settings.microsoft_integration,
                inner.settings.presence_integration,
            );
            inner.migration.observe_start(m, p);
        }
        if old_country != inner.context.country {
            session::rebuild_index(core, &inner);
        }
        if was_licensed && !inner.context.licensed() && inner.settings.microsoft_integration {
            core.host.notify(
                "unlicensed",
                "Microsoft 365 integration stopped: the Contact Connect add-on is no longer licensed.",
            );
        }
        Ok(core.reconcile(inner))
    }

    /// Applies a settings update, all or nothing.
    pub fn set_settings(
        &self,
        update: &SettingsUpdate,
    ) -> Result<IntegrationState, IntegrationError> {
        let core = &self.core;
        let mut inner = core.lock_live()?;
        let next = inner
            .settings
            .updated(update)
            .map_err(|m| IntegrationError::new(ErrorCode::BAD_REQUEST, m))?;
        let switching_on =
            next.microsoft_integration && update.microsoft_integration == ROption::RSome(true);
        let previous = std::mem::replace(&mut inner.settings, next);
        self.track_migration(&mut inner, &previous);
        if previous.presence_poll_ms != inner.settings.presence_poll_ms
            && let Some(task) = inner.engine.as_mut().and_then(|e| e.presence.take())
        {
            // Restart presence sync with the new poll interval (after a clean exit).
            drop(inner);
            task.stop_and_wait();
            inner = core.lock_live()?;
        }
        if previous != inner.settings
            && !inner.context.data_dir.as_os_str().is_empty()
            && let Err(e) = inner.settings.save(&inner.context.data_dir)
        {
            core.host
                .warn("settings", &format!("could not save the settings: {e}"));
        }
        let endpoints_changed = previous.authority != inner.settings.authority
            || previous.client_id != inner.settings.client_id
            || previous.graph != inner.settings.graph;
        if endpoints_changed {
            // Another tenant, cloud or app: start over with the new endpoints.
            if let Some(engine) = inner.engine.take() {
                inner.generation += 1;
                drop(inner);
                engine.stop(STOP_DEADLINE);
                inner = core.lock_live()?;
            }
        }
        if previous.directory && !inner.settings.directory {
            // Colleagues are not wanted any more: they stop answering calls now, not at the
            // next sync.
            session::drop_colleagues(core, &mut inner);
        }
        if !previous.directory && inner.settings.directory && inner.auth == AuthPhase::Active {
            // Colleagues' phones need User.Read.All: ask for consent now.
            inner.generation += 1;
            session::start(core, &mut inner, Mode::Interactive);
        }
        if previous.remember_login && !inner.settings.remember_login {
            session::forget_remembered(core, &inner);
        } else if !previous.remember_login && inner.settings.remember_login {
            session::remember_current(core, &inner);
        }
        let licensed = inner.context.licensed();
        let state = core.reconcile(inner);
        if switching_on && !licensed {
            core.host.notify(
                "unlicensed",
                "Microsoft 365 integration needs the Contact Connect add-on. \
                 Ask your administrator to license it.",
            );
            return Err(unlicensed());
        }
        Ok(state)
    }

    /// Rule 6: a switch turned off and on again counts towards the move.
    fn track_migration(&self, inner: &mut Inner, previous: &Settings) {
        let mut done = false;
        if previous.microsoft_integration != inner.settings.microsoft_integration {
            done |= inner
                .migration
                .observe(Switch::Microsoft, inner.settings.microsoft_integration);
        }
        if previous.presence_integration != inner.settings.presence_integration {
            done |= inner
                .migration
                .observe(Switch::Presence, inner.settings.presence_integration);
        }
        if done && !inner.context.data_dir.as_os_str().is_empty() {
            match Migration::save(&inner.context.data_dir) {
                Ok(()) => self.core.host.info(
                    "presence",
                    "moved from the earlier presence integration; remembered",
                ),
                Err(e) => self
                    .core
                    .host
                    .warn("presence", &format!("could not remember the move: {e}")),
            }
        }
    }

    /// The state now.
    pub fn current_state(&self) -> IntegrationState {
        let inner = self.core.lock();
        self.core.compute_state(&inner)
    }

    /// Starts an interactive sign-in now.
    pub fn start_sign_in(&self) -> Result<IntegrationState, IntegrationError> {
        let core = &self.core;
        let mut inner = core.lock_live()?;
        core.require_engine(&inner)?;
        inner.generation += 1;
        session::start(core, &mut inner, Mode::Interactive);
        Ok(core.reconcile(inner))
    }

    /// Forgets the sign-in and every stored token, after clearing what it set in Teams.
    pub fn sign_out_now(&self) -> Result<IntegrationState, IntegrationError> {
        let core = &self.core;
        let mut inner = core.lock_live()?;
        if let Some(task) = inner.engine.as_mut().and_then(|e| e.presence.take()) {
            // The clean exit needs the tokens: before they are forgotten.
            drop(inner);
            task.stop_and_wait();
            inner = core.lock_live()?;
        }
        session::sign_out(core, &mut inner);
        Ok(core.reconcile(inner))
    }

    /// Runs a contact sync that starts after this call and waits for it, at most `timeout`.
    pub fn sync_contacts(&self, timeout: Duration) -> Result<SyncReport, IntegrationError> {
        let (reply, answer) = std::sync::mpsc::channel();
        {
            let inner = self.core.lock_live()?;
            self.core.require_engine(&inner)?;
            let sender = inner
                .engine
                .as_ref()
                .and_then(|e| e.contacts.clone())
                .filter(|_| inner.auth == AuthPhase::Active)
                .ok_or_else(|| {
                    IntegrationError::new(
                        ErrorCode::NOT_SIGNED_IN,
                        "sign in to Microsoft 365 first",
                    )
                })?;
            sender.send(reply).map_err(|_| {
                IntegrationError::new(ErrorCode::CANCELLED, "the contact sync stopped")
            })?;
        }
        match answer.recv_timeout(timeout) {
            Ok(result) => result,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(IntegrationError::new(
                ErrorCode::SYNC_FAILED,
                format!(
                    "the contact sync did not finish within {} s",
                    timeout.as_secs()
                ),
            )),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(IntegrationError::new(
                ErrorCode::CANCELLED,
                "the contact sync was stopped (switched off or signed out)",
            )),
        }
    }

    /// Who is calling, from memory.
    pub fn caller_for(&self, call: &IncomingCall) -> Option<CallerInfo> {
        self.core.faults.check("on_incoming_call");
        if !self.core.serving.load(Ordering::Acquire) {
            return None;
        }
        let (region, prefixes) = self.core.lookup_options();
        let options = LookupOptions {
            region: &region,
            outside_line_prefixes: &prefixes,
        };
        let found = self.core.directory.lookup(call.number.as_str(), &options);
        if found.is_none() {
            self.core
                .pending_calls
                .push(call.call_id.as_str(), call.number.as_str());
        }
        found
    }

    /// Phonebook search, from memory.
    pub fn search(&self, query: &str, limit: u32) -> Vec<PhonebookEntry> {
        self.core.faults.check("search_phonebook");
        if !self.core.serving.load(Ordering::Acquire) {
            return Vec::new();
        }
        self.core
            .directory
            .search(query, limit.min(MAX_SEARCH_RESULTS) as usize)
    }

    /// The host's Contact status changed.
    pub fn status_changed(&self, status: ContactStatus) -> Result<(), IntegrationError> {
        self.core.faults.check("on_status_change");
        if status.name().is_none() {
            return Err(IntegrationError::new(
                ErrorCode::BAD_REQUEST,
                format!(
                    "unknown Contact status value {} (a newer host?); ignored",
                    status.raw()
                ),
            ));
        }
        let mut inner = self.core.lock_live()?;
        inner.contact_status = status;
        if let Some(task) = inner.engine.as_ref().and_then(|e| e.presence.as_ref()) {
            // Written to Teams at once by the presence task.
            let _ = task.statuses.send(status);
        }
        self.core.reconcile(inner);
        Ok(())
    }

    /// Switches everything off and joins every plugin thread within `deadline`. Later calls
    /// answer `cancelled` or nothing.
    pub fn stop(&self, deadline: Duration) {
        let engine = {
            let mut inner = self.core.lock();
            inner.shut_down = true;
            inner.generation += 1;
            self.core.serving.store(false, Ordering::Release);
            inner.engine.take()
        };
        if let Some(engine) = engine {
            engine.stop(deadline);
            self.core.host.info("lifecycle", "stopped");
        }
    }

    /// Logs a caught panic.
    pub fn log_panic(&self, message: &str) {
        self.core.host.error("panic", message);
    }
}

impl Drop for Ms365Integration {
    fn drop(&mut self) {
        self.stop(STOP_DEADLINE);
    }
}

impl Core {
    /// Region and outside-line prefixes for lookups.
    pub(crate) fn lookup_options(&self) -> (String, Vec<String>) {
        self.lookup
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_live(&self) -> Result<MutexGuard<'_, Inner>, IntegrationError> {
        let inner = self.lock();
        if inner.shut_down {
            return Err(IntegrationError::new(
                ErrorCode::CANCELLED,
                "the integration has been shut down",
            ));
        }
        Ok(inner)
    }

    fn require_engine(&self, inner: &Inner) -> Result<(), IntegrationError> {
        if !inner.settings.microsoft_integration {
            return Err(IntegrationError::new(
                ErrorCode::NOT_SIGNED_IN,
                "Microsoft integration is switched off",
            ));
        }
        if !inner.context.licensed() {
            return Err(unlicensed());
        }
        if inner.engine.is_none() {
            return Err(IntegrationError::new(
                ErrorCode::PLUGIN_ERROR,
                inner
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "Microsoft integration is not running".to_owned()),
            ));
        }
        Ok(())
    }

    /// Brings the engine in line with the switches and the license, then reports the state if
    /// it changed. Consumes the guard: stopping an engine happens after the lock is released.
    pub(crate) fn reconcile(
        self: &Arc<Self>,
        mut inner: MutexGuard<'_, Inner>,
    ) -> IntegrationState {
        let wanted = inner.settings.microsoft_integration && inner.context.licensed();
        *self.lookup.write().unwrap_or_else(PoisonError::into_inner) = (
            inner.context.country.clone(),
            inner.settings.outside_line_prefixes.clone(),
        );
        let mut to_stop = None;
        if wanted && inner.engine.is_none() && !inner.shut_down {
            match Engine::start() {
                Ok(engine) => {
                    inner.engine = Some(engine);
                    inner.last_error = None;
                    inner.generation += 1;
                    self.host.info("lifecycle", "Microsoft integration started");
                    session::start(self, &mut inner, Mode::Startup);
                }
                Err(e) => {
                    inner.last_error = Some(format!("could not start the plugin's runtime: {e}"));
                    self.host
                        .error("lifecycle", &format!("runtime start failed: {e}"));
                }
            }
        } else if !wanted && let Some(engine) = inner.engine.take() {
            inner.generation += 1;
            inner.account = None;
            inner.auth = AuthPhase::SignInRequired;
            // Free the contacts; the snapshot brings them back at the next start.
            inner.mailbox = Arc::new(Mailbox::default());
            self.directory.replace(Index::new(Vec::new(), ""));
            to_stop = Some(engine);
        }
        self.serving
            .store(inner.engine.is_some(), Ordering::Release);
        let presence_to_stop = self.update_presence(&mut inner);
        let state = self.report(&mut inner);
        drop(inner);
        if let Some(task) = presence_to_stop {
            task.stop_and_wait();
        }
        if let Some(engine) = to_stop {
            engine.stop(STOP_DEADLINE);
            self.host.info("lifecycle", "Microsoft integration stopped");
        }
        state
    }

    fn presence_gate(&self, inner: &Inner) -> PresenceGate {
        if !inner.settings.presence_integration {
            return PresenceGate::Off;
        }
        if inner
            .migration
            .blocks(inner.context.legacy_presence_integration)
        {
            return PresenceGate::Blocked(MIGRATION_REASON.to_owned());
        }
        let account = match (&inner.engine, inner.auth, &inner.account) {
            (Some(_), AuthPhase::Active, Some(account)) => account,
            _ => return PresenceGate::Pending,
        };
        match check_upn(&inner.context.username, account) {
            Ok(()) => PresenceGate::Run,
            Err(reason) => PresenceGate::Blocked(reason),
        }
    }

    /// Starts presence sync when it may run, and hands back a running one that must stop (the
    /// caller stops it: waiting for its clean exit from a host thread, after the lock).
    pub(crate) fn update_presence(self: &Arc<Self>, inner: &mut Inner) -> Option<PresenceTask> {
        let gate = self.presence_gate(inner);
        match &gate {
            PresenceGate::Blocked(reason)
                if inner.presence_block_notified.as_deref() != Some(reason.as_str()) =>
            {
                inner.presence_block_notified = Some(reason.clone());
                self.host
                    .warn("presence", &format!("presence sync blocked: {reason}"));
                self.host.notify("presence_blocked", reason);
            }
            PresenceGate::Blocked(_) => {}
            _ => inner.presence_block_notified = None,
        }
        if gate != PresenceGate::Run {
            inner.teams_presence = None;
            return inner.engine.as_mut().and_then(|e| e.presence.take());
        }
        let engine = inner.engine.as_ref()?;
        if engine.presence.is_some() {
            return None;
        }
        let account = inner.account.as_ref()?;
        let (statuses_tx, statuses) = tokio::sync::mpsc::unbounded_channel();
        let core = self.clone();
        let parts = presence::PresenceParts {
            http: engine.http.clone(),
            graph_base: inner.settings.graph.clone(),
            tokens: engine.tokens.clone(),
            user_id: account.id.clone(),
            session_id: inner.settings.client_id.clone(),
            poll: Duration::from_millis(inner.settings.presence_poll_ms),
            host: self.host.clone(),
            statuses,
            initial: inner.contact_status,
            cancel: engine.runtime().cancel_token(),
            refresh_now: engine.refresh_now.clone(),
            on_read: Box::new(move |availability: &str, activity: &str| {
                let mut inner = core.lock();
                let read = Some((availability.to_owned(), activity.to_owned()));
                if inner.teams_presence != read {
                    inner.teams_presence = read;
                    core.report(&mut inner);
                }
            }),
        };
        let task = PresenceTask::start(engine, parts, statuses_tx);
        self.host.info("presence", "presence sync started");
        if let Some(engine) = inner.engine.as_mut() {
            engine.presence = Some(task);
        }
        None
    }

    /// Reports the state to the host if it changed since the last report.
    pub(crate) fn report(&self, inner: &mut Inner) -> IntegrationState {
        let state = self.compute_state(inner);
        if state != inner.reported {
            inner.reported = state.clone();
            self.host.state_changed(state.clone());
        }
        state
    }

    fn compute_state(&self, inner: &Inner) -> IntegrationState {
        let microsoft = if !inner.settings.microsoft_integration {
            MicrosoftState::OFF
        } else if !inner.context.licensed() {
            MicrosoftState::UNLICENSED
        } else if inner.engine.is_none() {
            MicrosoftState::ERROR
        } else {
            match inner.auth {
                AuthPhase::SigningIn => MicrosoftState::SIGNING_IN,
                AuthPhase::Active => MicrosoftState::ACTIVE,
                AuthPhase::SignInRequired => MicrosoftState::SIGN_IN_REQUIRED,
                AuthPhase::Error => MicrosoftState::ERROR,
            }
        };
        let signed_in = microsoft == MicrosoftState::ACTIVE;
        let (presence, blocked_reason) = match self.presence_gate(inner) {
            PresenceGate::Off => (PresenceState::OFF, None),
            PresenceGate::Pending => (PresenceState::PENDING, None),
            PresenceGate::Blocked(reason) => (PresenceState::BLOCKED, Some(reason)),
            PresenceGate::Run => (PresenceState::ACTIVE, None),
        };
        IntegrationState {
            microsoft_integration: microsoft,
            signed_in_as: inner
                .account
                .as_ref()
                .filter(|_| signed_in)
                .map(|a| a.user_principal_name.as_str().into())
                .into(),
            contacts: self.directory.snapshot().len() as u64,
            last_sync: inner.mailbox.last_sync.as_deref().map(Into::into).into(),
            presence_integration: presence,
            presence_blocked_reason: blocked_reason.map(Into::into).into(),
            teams_presence: inner
                .teams_presence
                .as_ref()
                .map(|(availability, activity)| host_api::TeamsPresence {
                    availability: availability.as_str().into(),
                    activity: activity.as_str().into(),
                })
                .into(),
            contact_status: inner.contact_status,
            last_error: inner.last_error.as_deref().map(Into::into).into(),
            extensions: Default::default(),
        }
    }
}

fn unlicensed() -> IntegrationError {
    IntegrationError::new(
        ErrorCode::UNLICENSED,
        "Microsoft 365 integration needs the Contact Connect add-on (contact_connect)",
    )
}

#[cfg(test)]
mod tests;
