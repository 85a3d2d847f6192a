//! The ABI boundary: the only module that implements `host_api::Integration`.
//!
//! Invariant: every entry point runs inside a panic guard. A panic becomes a `panicked` error
//! (or an empty answer where the method has no error) plus a log line; it never reaches the
//! abi_stable shim, which would end the host process.

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    time::Duration,
};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{ROption, RResult, RStr, RString, RVec},
};
use host_api::{
    CallerInfo, ContactStatus, ErrorCode, HostBox, HostContext, IncomingCall, Integration,
    Integration_TO, IntegrationBox, IntegrationError, IntegrationState, MicrosoftState,
    PhonebookEntry, SettingsUpdate, SyncReport, catch_panic,
};

use crate::integration::Ms365Integration;

/// The constructor the root module exports.
pub fn new_integration(
    host: HostBox,
    context: HostContext,
) -> Result<IntegrationBox, IntegrationError> {
    let integration = Ms365Integration::new(host, context)?;
    Ok(Integration_TO::from_value(integration, TD_Opaque))
}

impl Ms365Integration {
    /// Runs `f` in the panic guard; a caught panic is logged.
    fn guarded<T>(
        &self,
        what: &str,
        f: impl FnOnce() -> Result<T, IntegrationError>,
    ) -> RResult<T, IntegrationError> {
        let result = catch_panic(what, f);
        if let RResult::RErr(e) = &result
            && e.code == ErrorCode::PANICKED
        {
            self.log_panic(&e.message);
        }
        result
    }
}

impl Integration for Ms365Integration {
    fn apply_context(&self, context: HostContext) -> RResult<IntegrationState, IntegrationError> {
        self.guarded("apply_context", || self.set_context(&context))
    }

    fn apply_settings(
        &self,
        settings: SettingsUpdate,
    ) -> RResult<IntegrationState, IntegrationError> {
        self.guarded("apply_settings", || self.set_settings(&settings))
    }

    fn state(&self) -> IntegrationState {
        match catch_unwind(AssertUnwindSafe(|| self.current_state())) {
            Ok(state) => state,
            Err(payload) => {
                let message = format!("panic in state: {}", host_api::panic_message(&*payload));
                self.log_panic(&message);
                IntegrationState {
                    microsoft_integration: MicrosoftState::ERROR,
                    last_error: ROption::RSome(message.into()),
                    ..IntegrationState::default()
                }
            }
        }
    }

    fn sign_in(&self) -> RResult<IntegrationState, IntegrationError> {
        self.guarded("sign_in", || self.start_sign_in())
    }

    fn sign_out(&self) -> RResult<IntegrationState, IntegrationError> {
        self.guarded("sign_out", || self.sign_out_now())
    }

    fn sync(&self, timeout_ms: u32) -> RResult<SyncReport, IntegrationError> {
        self.guarded("sync", || {
            self.sync_contacts(Duration::from_millis(u64::from(timeout_ms)))
        })
    }

    fn on_incoming_call(
        &self,
        call: IncomingCall,
    ) -> RResult<ROption<CallerInfo>, IntegrationError> {
        self.guarded("on_incoming_call", || Ok(self.caller_for(&call).into()))
    }

    fn search_phonebook(
        &self,
        query: RStr<'_>,
        limit: u32,
    ) -> RResult<RVec<PhonebookEntry>, IntegrationError> {
        self.guarded("search_phonebook", || {
            Ok(self.search(query.as_str(), limit).into())
        })
    }

    fn on_status_change(&self, status: ContactStatus) -> RResult<(), IntegrationError> {
        self.guarded("on_status_change", || self.status_changed(status))
    }

    fn extension(&self, op: RStr<'_>, _payload: RStr<'_>) -> RResult<RString, IntegrationError> {
        self.guarded("extension", || {
            Err(IntegrationError::unsupported(op.as_str()))
        })
    }

    fn shutdown(&self, deadline_ms: u32) -> RResult<(), IntegrationError> {
        self.guarded("shutdown", || {
            self.stop(Duration::from_millis(u64::from(deadline_ms)));
            Ok(())
        })
    }
}
