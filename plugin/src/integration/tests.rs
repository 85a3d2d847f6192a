use std::sync::{Arc, Mutex};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{ROption, RStr, RString, RVec},
};
use host_api::{
    CallerInfo, ContactStatus, ErrorCode, Host, Host_TO, HostContext, IncomingCall, Integration,
    IntegrationState, LogLevel, MicrosoftState, Notification, SettingsUpdate, SsoToken,
};

use super::*;
use crate::faults::Faults;

/// Everything the plugin told the host.
#[derive(Default)]
struct Recorded {
    notifications: Vec<Notification>,
    states: Vec<IntegrationState>,
    logs: Vec<(LogLevel, String)>,
}

#[derive(Clone, Default)]
struct RecordingHost(Arc<Mutex<Recorded>>);

impl Host for RecordingHost {
    fn set_contact_status(&self, _status: ContactStatus) {}
    fn update_caller(&self, _call_id: RStr<'_>, _caller: CallerInfo) {}
    fn open_url(&self, _url: RStr<'_>) -> bool {
        false
    }
    fn notify(&self, n: Notification) {
        self.0.lock().unwrap().notifications.push(n);
    }
    fn state_changed(&self, state: IntegrationState) {
        self.0.lock().unwrap().states.push(state);
    }
    fn log(&self, level: LogLevel, _target: RStr<'_>, message: RStr<'_>) {
        self.0
            .lock()
            .unwrap()
            .logs
            .push((level, message.to_string()));
    }
    fn sso_token(&self, _scopes: RVec<RString>) -> ROption<SsoToken> {
        ROption::RNone
    }
}

fn context(dir: &std::path::Path, licensed: bool) -> HostContext {
    HostContext {
        username: "adele.vance@contoso.example".into(),
        addons: if licensed {
            vec!["contact_connect".into()].into()
        } else {
            RVec::new()
        },
        country: "DE".into(),
        data_dir: dir.to_string_lossy().as_ref().into(),
        ..HostContext::default()
    }
}

fn integration(
    dir: &std::path::Path,
    licensed: bool,
    faults: Faults,
) -> (Ms365Integration, RecordingHost) {
    let host = RecordingHost::default();
    let boxed = Host_TO::from_value(host.clone(), TD_Opaque);
    let i = Ms365Integration::with_faults(boxed, context(dir, licensed), faults).unwrap();
    (i, host)
}

/// Switches Microsoft integration on against a loopback port nobody listens on: unit tests
/// never reach the internet (the sign-in attempt fails at once and is retried in the back).
fn switch_on() -> SettingsUpdate {
    SettingsUpdate {
        microsoft_integration: ROption::RSome(true),
        authority: ROption::RSome("http://127.0.0.1:9/organizations/v2.0".into()),
        graph: ROption::RSome("http://127.0.0.1:9/v1.0".into()),
        ..SettingsUpdate::default()
    }
}

fn signing_in_or_retrying(state: MicrosoftState) -> bool {
    state == MicrosoftState::SIGNING_IN || state == MicrosoftState::ERROR
}

#[test]
fn unlicensed_switch_on_is_refused_with_state_and_notification() {
    let dir = tempfile::tempdir().unwrap();
    let (i, host) = integration(dir.path(), false, Faults::default());
    let err = i.apply_settings(switch_on()).unwrap_err();
    assert_eq!(err.code, ErrorCode::UNLICENSED);
    assert_eq!(i.state().microsoft_integration, MicrosoftState::UNLICENSED);
    let rec = host.0.lock().unwrap();
    assert_eq!(
        rec.notifications.last().unwrap().kind.as_str(),
        "unlicensed"
    );
    assert_eq!(
        rec.states.last().unwrap().microsoft_integration,
        MicrosoftState::UNLICENSED
    );
    drop(rec);
    // Not signed in: everything else of Microsoft answers accordingly.
    assert_eq!(i.sync(1000).unwrap_err().code, ErrorCode::UNLICENSED);
    assert!(
        i.on_incoming_call(IncomingCall {
            number: "+4989123".into(),
            ..Default::default()
        })
        .unwrap()
        .is_none()
    );
}

#[test]
fn license_arriving_later_starts_the_integration_and_losing_it_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let (i, host) = integration(dir.path(), false, Faults::default());
    let _ = i.apply_settings(switch_on());
    let state = i.apply_context(context(dir.path(), true)).unwrap();
    assert!(signing_in_or_retrying(state.microsoft_integration));
    let state = i.apply_context(context(dir.path(), false)).unwrap();
    assert_eq!(state.microsoft_integration, MicrosoftState::UNLICENSED);
    assert!(
        host.0
            .lock()
            .unwrap()
            .notifications
            .iter()
            .any(|n| n.message.contains("no longer licensed"))
    );
}

#[test]
fn settings_are_all_or_nothing_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (i, _) = integration(dir.path(), true, Faults::default());
        let bad = SettingsUpdate {
            microsoft_integration: ROption::RSome(true),
            sync_interval_s: ROption::RSome(1),
            ..SettingsUpdate::default()
        };
        assert_eq!(
            i.apply_settings(bad).unwrap_err().code,
            ErrorCode::BAD_REQUEST
        );
        assert_eq!(i.state().microsoft_integration, MicrosoftState::OFF);
        i.apply_settings(switch_on()).unwrap();
    }
    let (i, _) = integration(dir.path(), true, Faults::default());
    assert!(signing_in_or_retrying(i.state().microsoft_integration));
}

#[test]
fn panics_become_errors_or_empty_answers_and_the_object_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let (i, host) = integration(
        dir.path(),
        true,
        Faults::panicking_in(&["on_incoming_call", "search_phonebook"]),
    );
    let err = i.on_incoming_call(IncomingCall::default()).unwrap_err();
    assert_eq!(err.code, ErrorCode::PANICKED);
    assert!(err.message.contains("injected panic"));
    assert_eq!(
        i.search_phonebook("x".into(), 5).unwrap_err().code,
        ErrorCode::PANICKED
    );
    // Still alive, and the panic was logged at error level.
    i.apply_settings(switch_on()).unwrap();
    assert!(
        host.0
            .lock()
            .unwrap()
            .logs
            .iter()
            .any(|(l, m)| *l == LogLevel::ERROR && m.contains("injected panic"))
    );
}

#[test]
fn unknown_status_from_a_newer_host_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (i, _) = integration(dir.path(), true, Faults::default());
    let err = i.on_status_change(ContactStatus::from_raw(77)).unwrap_err();
    assert_eq!(err.code, ErrorCode::BAD_REQUEST);
    i.on_status_change(ContactStatus::BUSY).unwrap();
    assert_eq!(i.state().contact_status, ContactStatus::BUSY);
}

#[test]
fn shutdown_makes_later_calls_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let (i, _) = integration(dir.path(), true, Faults::default());
    i.apply_settings(switch_on()).unwrap();
    i.shutdown(2000).unwrap();
    assert_eq!(
        i.apply_settings(switch_on()).unwrap_err().code,
        ErrorCode::CANCELLED
    );
    assert!(i.search_phonebook("a".into(), 10).unwrap().is_empty());
}
