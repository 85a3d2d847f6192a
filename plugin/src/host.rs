//! A cheap, cloneable handle on the host's callbacks.
//!
//! Callbacks are quick by contract (the host queues and returns), so they may be called from any
//! plugin thread, including the runtime's workers. Nothing here ever passes a token to the host.

use std::sync::Arc;

use abi_stable::std_types::{ROption, RString, RVec};
use host_api::{
    CallerInfo, ContactStatus, HostBox, IntegrationState, LogLevel, Notification, SsoToken,
};

/// The host's callbacks, shared by the integration and its tasks.
#[derive(Clone)]
pub struct HostHandle {
    host: Arc<HostBox>,
}

impl HostHandle {
    /// Wraps the host object handed to the constructor.
    pub fn new(host: HostBox) -> Self {
        Self {
            host: Arc::new(host),
        }
    }

    /// Logs at `level` under `target` (a module name such as `auth` or `sync`).
    pub fn log(&self, level: LogLevel, target: &str, message: &str) {
        self.host.log(level, target.into(), message.into());
    }

    /// Logs an error.
    pub fn error(&self, target: &str, message: &str) {
        self.log(LogLevel::ERROR, target, message);
    }

    /// Logs a warning.
    pub fn warn(&self, target: &str, message: &str) {
        self.log(LogLevel::WARN, target, message);
    }

    /// Logs a notable event.
    pub fn info(&self, target: &str, message: &str) {
        self.log(LogLevel::INFO, target, message);
    }

    /// Logs detail.
    pub fn debug(&self, target: &str, message: &str) {
        self.log(LogLevel::DEBUG, target, message);
    }

    /// Tells the user something.
    pub fn notify(&self, kind: &str, message: &str) {
        self.host.notify(Notification {
            kind: kind.into(),
            message: message.into(),
            ..Notification::default()
        });
    }

    /// Tells the user something with the device-code fields.
    pub fn notify_device_code(&self, message: &str, user_code: &str, verification_uri: &str) {
        self.host.notify(Notification {
            kind: "device_code".into(),
            message: message.into(),
            user_code: ROption::RSome(user_code.into()),
            verification_uri: ROption::RSome(verification_uri.into()),
            extensions: RString::new(),
        });
    }

    /// Reports a state change.
    pub fn state_changed(&self, state: IntegrationState) {
        self.host.state_changed(state);
    }

    /// Sets the Contact status (Teams → Contact).
    pub fn set_contact_status(&self, status: ContactStatus) {
        self.host.set_contact_status(status);
    }

    /// Reports a caller found after the call was answered.
    pub fn update_caller(&self, call_id: &str, caller: CallerInfo) {
        self.host.update_caller(call_id.into(), caller);
    }

    /// Asks the host to open `url` in a browser; `false` when it could not.
    pub fn open_url(&self, url: &str) -> bool {
        self.host.open_url(url.into())
    }

    /// Calls a host extension operation (JSON in, JSON out). An older host answers
    /// `unsupported`, which callers treat as "not offered here".
    pub fn extension(&self, op: &str, payload: &str) -> Option<String> {
        self.host
            .extension(op.into(), payload.into())
            .into_result()
            .ok()
            .map(|s| s.into_string())
    }

    /// An access token from the host's own Microsoft 365 login, when it has one. Blocks
    /// briefly: call it from a blocking context.
    pub fn sso_token(&self, scopes: &[&str]) -> Option<SsoToken> {
        let scopes: RVec<RString> = scopes.iter().map(|s| RString::from(*s)).collect();
        self.host.sso_token(scopes).into_option()
    }
}
