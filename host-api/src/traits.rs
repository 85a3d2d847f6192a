//! The two trait objects that cross the boundary: [`Integration`] (host → plugin) and [`Host`]
//! (plugin → host).
//!
//! Both are frozen for the whole major version: their vtables are prefix types, and abi_stable
//! refuses a library whose vtable has *fewer* methods than the loader's, so adding a method would
//! lock every existing plugin out of the newer host. New operations go through `extension`.

use abi_stable::{
    sabi_trait,
    std_types::{RBox, ROption, RResult, RStr, RString, RVec},
};

use crate::codes::{ContactStatus, LogLevel};
use crate::types::{
    CallerInfo, HostContext, IncomingCall, IntegrationError, IntegrationState, Notification,
    PhonebookEntry, SettingsUpdate, SsoToken, SyncReport,
};

/// An integration, as created by its plugin's root module.
///
/// Every method may be called from any host thread, concurrently. Implementations catch their
/// own panics (abi_stable ends the process if a panic reaches this boundary) and never wait on
/// the network in `on_incoming_call`, `search_phonebook`, `on_status_change` or `state`.
/// The host never calls these from inside one of its own [`Host`] callbacks.
#[sabi_trait]
pub trait Integration: Send + Sync {
    /// The host's context changed (username, add-ons, country, ...). Returns the new state.
    fn apply_context(&self, context: HostContext) -> RResult<IntegrationState, IntegrationError>;

    /// Applies settings: all of them, or none with `bad_request`. Switching Microsoft
    /// integration on without the `contact_connect` add-on answers `unlicensed` (the switch is
    /// remembered and takes effect once the add-on is licensed). Returns the new state.
    fn apply_settings(
        &self,
        settings: SettingsUpdate,
    ) -> RResult<IntegrationState, IntegrationError>;

    /// The current state, from memory.
    fn state(&self) -> IntegrationState;

    /// Starts an interactive sign-in and returns at once.
    fn sign_in(&self) -> RResult<IntegrationState, IntegrationError>;

    /// Forgets the sign-in and every stored token, clears what the plugin set in Teams.
    fn sign_out(&self) -> RResult<IntegrationState, IntegrationError>;

    /// Runs a contact sync that starts after this call and waits for it, at most `timeout_ms`.
    /// The one call that waits on the network: call it from a worker thread. `shutdown` from
    /// another thread ends the wait with `cancelled`.
    fn sync(&self, timeout_ms: u32) -> RResult<SyncReport, IntegrationError>;

    /// Who is calling, answered at once from memory. `RNone` when unknown (a caller found later
    /// is reported through [`Host::update_caller`]).
    fn on_incoming_call(
        &self,
        call: IncomingCall,
    ) -> RResult<ROption<CallerInfo>, IntegrationError>;

    /// Phonebook entries matching `query`, best first, at most `limit`, from memory.
    fn search_phonebook(
        &self,
        query: RStr<'_>,
        limit: u32,
    ) -> RResult<RVec<PhonebookEntry>, IntegrationError>;

    /// The Contact status changed in the host (the user or the phone). Returns at once.
    fn on_status_change(&self, status: ContactStatus) -> RResult<(), IntegrationError>;

    /// Operations added in later minor versions: `op` names one, `payload` is JSON.
    /// Answers `unsupported` for an operation this plugin does not know.
    fn extension(&self, op: RStr<'_>, payload: RStr<'_>) -> RResult<RString, IntegrationError> {
        let _ = payload;
        RResult::RErr(IntegrationError::unsupported(op.as_str()))
    }

    /// Switches everything off and stops every plugin thread, within `deadline_ms`: what the
    /// plugin set in Teams is cleared, its runtime is shut down. The object may be dropped next.
    #[sabi(last_prefix_field)]
    fn shutdown(&self, deadline_ms: u32) -> RResult<(), IntegrationError>;
}

/// The host's side: what a plugin may ask of Contact Desktop.
///
/// Implementations are thread-safe and quick (queue the work and return), catch their own
/// panics, and never call back into the plugin from inside a callback.
#[sabi_trait]
pub trait Host: Send + Sync {
    /// Sets the Contact status (Teams → Contact).
    fn set_contact_status(&self, status: ContactStatus);

    /// A caller unknown when the call was answered became known.
    fn update_caller(&self, call_id: RStr<'_>, caller: CallerInfo);

    /// Opens `url` in the user's browser; `false` when no browser could be opened.
    fn open_url(&self, url: RStr<'_>) -> bool;

    /// Tells the user something.
    fn notify(&self, notification: Notification);

    /// The integration state changed.
    fn state_changed(&self, state: IntegrationState);

    /// A log line for the host's log.
    fn log(&self, level: LogLevel, target: RStr<'_>, message: RStr<'_>);

    /// An access token from the host's own Microsoft 365 login for `scopes`, when it has one.
    /// May block briefly: call it from a worker thread.
    fn sso_token(&self, scopes: RVec<RString>) -> ROption<SsoToken>;

    /// Operations added in later minor versions: `op` names one, `payload` is JSON.
    /// Answers `unsupported` for an operation this host does not know.
    #[sabi(last_prefix_field)]
    fn extension(&self, op: RStr<'_>, payload: RStr<'_>) -> RResult<RString, IntegrationError> {
        let _ = payload;
        RResult::RErr(IntegrationError::unsupported(op.as_str()))
    }
}

/// An owned integration object, as returned by the root module.
pub type IntegrationBox = Integration_TO<'static, RBox<()>>;

/// An owned host object, as given to the root module.
pub type HostBox = Host_TO<'static, RBox<()>>;
