//! The integration object: the switches, the licensing rule, the state the host sees, and the
//! lifecycle of the runtime.
//!
//! Invariants:
//! - The runtime exists exactly while Microsoft integration is switched on *and* licensed, and
//!   the object has not been shut down.
//! - Host calls never wait on the network; the hot paths (`caller_for`, `search`) take no lock
//!   but the directory's read lock.
//! - Every state change is reported to the host once, from the thread that caused it.

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
    directory::Directory, faults::Faults, host::HostHandle, runtime::PluginRuntime,
    settings::Settings,
};

/// The add-on that licenses Microsoft 365 integration.
pub const LICENSE_ADDON: &str = "contact_connect";

/// Largest phonebook answer, whatever the host asks for.
pub const MAX_SEARCH_RESULTS: u32 = 200;

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

struct Inner {
    context: Context,
    settings: Settings,
    runtime: Option<PluginRuntime>,
    reported: IntegrationState,
    contact_status: ContactStatus,
    last_error: Option<String>,
    shut_down: bool,
}

/// The Microsoft 365 integration.
pub struct Ms365Integration {
    host: HostHandle,
    inner: Mutex<Inner>,
    /// Microsoft integration on and licensed: calls and searches are answered.
    serving: AtomicBool,
    directory: Arc<Directory>,
    faults: Faults,
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
        if let Some(note) = note {
            host.warn("settings", &note);
        }
        let integration = Self {
            host,
            inner: Mutex::new(Inner {
                context,
                settings,
                runtime: None,
                reported: IntegrationState::default(),
                contact_status: ContactStatus::ONLINE,
                last_error: None,
                shut_down: false,
            }),
            serving: AtomicBool::new(false),
            directory: Arc::new(Directory::default()),
            faults,
        };
        {
            let mut inner = integration.lock();
            integration.reconcile(&mut inner);
        }
        Ok(integration)
    }

    /// Test hooks of this object.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The host's context changed.
    pub fn set_context(&self, context: &HostContext) -> Result<IntegrationState, IntegrationError> {
        let mut inner = self.lock_live()?;
        let was_licensed = inner.context.licensed();
        inner.context = Context::from_host(context);
        if was_licensed && !inner.context.licensed() && inner.settings.microsoft_integration {
            self.host.notify(
                "unlicensed",
                "Microsoft 365 integration stopped: the Contact Connect add-on is no longer licensed.",
            );
        }
        Ok(self.reconcile(&mut inner))
    }

    /// Applies a settings update, all or nothing.
    pub fn set_settings(
        &self,
        update: &SettingsUpdate,
    ) -> Result<IntegrationState, IntegrationError> {
        let mut inner = self.lock_live()?;
        let next = inner
            .settings
            .updated(update)
            .map_err(|m| IntegrationError::new(ErrorCode::BAD_REQUEST, m))?;
        let switching_on =
            next.microsoft_integration && update.microsoft_integration == ROption::RSome(true);
        if next != inner.settings {
            if !inner.context.data_dir.as_os_str().is_empty() {
                if let Err(e) = next.save(&inner.context.data_dir) {
                    self.host
                        .warn("settings", &format!("could not save the settings: {e}"));
                }
            }
            inner.settings = next;
        }
        let state = self.reconcile(&mut inner);
        if switching_on && !inner.context.licensed() {
            self.host.notify(
                "unlicensed",
                "Microsoft 365 integration needs the Contact Connect add-on. \
                 Ask your administrator to license it.",
            );
            return Err(unlicensed());
        }
        Ok(state)
    }

    /// The state now.
    pub fn current_state(&self) -> IntegrationState {
        let inner = self.lock();
        self.compute_state(&inner)
    }

    /// Starts an interactive sign-in.
    pub fn start_sign_in(&self) -> Result<IntegrationState, IntegrationError> {
        let inner = self.lock_live()?;
        self.require_microsoft(&inner)?;
        Err(IntegrationError::new(
            ErrorCode::PLUGIN_ERROR,
            "interactive sign-in is not available in this build yet",
        ))
    }

    /// Forgets the sign-in.
    pub fn sign_out_now(&self) -> Result<IntegrationState, IntegrationError> {
        let mut inner = self.lock_live()?;
        inner.last_error = None;
        Ok(self.reconcile(&mut inner))
    }

    /// Runs a contact sync and waits for it.
    pub fn sync_contacts(&self, _timeout: Duration) -> Result<SyncReport, IntegrationError> {
        let inner = self.lock_live()?;
        self.require_microsoft(&inner)?;
        Err(IntegrationError::new(
            ErrorCode::NOT_SIGNED_IN,
            "sign in to Microsoft 365 first",
        ))
    }

    /// Who is calling, from memory.
    pub fn caller_for(&self, call: &IncomingCall) -> Option<CallerInfo> {
        self.faults.check("on_incoming_call");
        if !self.serving.load(Ordering::Acquire) {
            return None;
        }
        self.directory.lookup(call.number.as_str())
    }

    /// Phonebook search, from memory.
    pub fn search(&self, query: &str, limit: u32) -> Vec<PhonebookEntry> {
        self.faults.check("search_phonebook");
        if !self.serving.load(Ordering::Acquire) {
            return Vec::new();
        }
        self.directory
            .search(query, limit.min(MAX_SEARCH_RESULTS) as usize)
    }

    /// The host's Contact status changed.
    pub fn status_changed(&self, status: ContactStatus) -> Result<(), IntegrationError> {
        self.faults.check("on_status_change");
        if status.name().is_none() {
            return Err(IntegrationError::new(
                ErrorCode::BAD_REQUEST,
                format!(
                    "unknown Contact status value {} (a newer host?); ignored",
                    status.raw()
                ),
            ));
        }
        let mut inner = self.lock_live()?;
        inner.contact_status = status;
        self.reconcile(&mut inner);
        Ok(())
    }

    /// Switches everything off and joins every plugin thread within `deadline`. Later calls
    /// answer `cancelled` or nothing.
    pub fn stop(&self, deadline: Duration) {
        let runtime = {
            let mut inner = self.lock();
            inner.shut_down = true;
            self.serving.store(false, Ordering::Release);
            inner.runtime.take()
        };
        if let Some(runtime) = runtime {
            runtime.stop(deadline);
            self.host.info("lifecycle", "stopped");
        }
    }

    /// Logs a caught panic.
    pub fn log_panic(&self, message: &str) {
        self.host.error("panic", message);
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
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

    fn require_microsoft(&self, inner: &Inner) -> Result<(), IntegrationError> {
        if !inner.settings.microsoft_integration {
            return Err(IntegrationError::new(
                ErrorCode::NOT_SIGNED_IN,
                "Microsoft integration is switched off",
            ));
        }
        if !inner.context.licensed() {
            return Err(unlicensed());
        }
        Ok(())
    }

    /// Brings the runtime in line with the switches and the license, then reports the state
    /// if it changed.
    fn reconcile(&self, inner: &mut Inner) -> IntegrationState {
        let wanted = inner.settings.microsoft_integration && inner.context.licensed();
        if wanted && inner.runtime.is_none() && !inner.shut_down {
            match PluginRuntime::start() {
                Ok(rt) => {
                    inner.runtime = Some(rt);
                    inner.last_error = None;
                    self.host.info("lifecycle", "Microsoft integration started");
                }
                Err(e) => {
                    inner.last_error = Some(format!("could not start the plugin's runtime: {e}"));
                    self.host
                        .error("lifecycle", &format!("runtime start failed: {e}"));
                }
            }
        } else if !wanted {
            if let Some(rt) = inner.runtime.take() {
                rt.stop(Duration::from_secs(2));
                self.host.info("lifecycle", "Microsoft integration stopped");
            }
        }
        self.serving
            .store(inner.runtime.is_some(), Ordering::Release);
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
        } else if inner.runtime.is_none() {
            MicrosoftState::ERROR
        } else {
            MicrosoftState::SIGN_IN_REQUIRED
        };
        let presence = if !inner.settings.presence_integration {
            PresenceState::OFF
        } else {
            PresenceState::PENDING
        };
        IntegrationState {
            microsoft_integration: microsoft,
            signed_in_as: ROption::RNone,
            contacts: self.directory.snapshot().len() as u64,
            last_sync: ROption::RNone,
            presence_integration: presence,
            presence_blocked_reason: ROption::RNone,
            teams_presence: ROption::RNone,
            contact_status: inner.contact_status,
            last_error: inner.last_error.as_deref().map(Into::into).into(),
            extensions: Default::default(),
        }
    }
}

impl Drop for Ms365Integration {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(2));
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
