//! Shared by `tests/concurrency.rs` and `benches/concurrency.rs` (included there with
//! `#[path]`): a host whose login is a token the emulator minted for Contact Desktop's app, the
//! "generation" contacts that a sync renames, and the integration's context and settings.
// Each includer uses a different part.
#![allow(dead_code)]

use std::{
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use abi_stable::std_types::{ROption, RStr, RString, RVec};
use host_api::{
    CallerInfo, ContactStatus, Host, HostContext, IntegrationState, LogLevel, Notification,
    SettingsUpdate, SsoToken,
};
use ms365_emulator::{
    EmulatorHandle,
    tenant::{ADELE_UPN, HOST_CLIENT_ID},
};
use serde_json::{Value, json};

/// What the host was told while the load ran.
#[derive(Default)]
pub struct Seen {
    pub contact_statuses: AtomicUsize,
    pub states: AtomicUsize,
    /// Log lines at `min_level` or above.
    pub errors: Mutex<Vec<String>>,
}

/// A host whose login (`sso_token`) is `token`, minted by the emulator for the host's app.
pub struct SsoHost {
    pub token: String,
    pub seen: Arc<Seen>,
    /// Lowest log level recorded in [`Seen::errors`] (`ERROR`, or `WARN` too).
    pub min_level: LogLevel,
}

impl Host for SsoHost {
    fn set_contact_status(&self, _status: ContactStatus) {
        self.seen.contact_statuses.fetch_add(1, Ordering::Relaxed);
    }
    fn update_caller(&self, _call_id: RStr<'_>, _caller: CallerInfo) {}
    fn open_url(&self, _url: RStr<'_>) -> bool {
        false
    }
    fn notify(&self, _n: Notification) {}
    fn state_changed(&self, _state: IntegrationState) {
        self.seen.states.fetch_add(1, Ordering::Relaxed);
    }
    fn log(&self, level: LogLevel, target: RStr<'_>, message: RStr<'_>) {
        let recorded = level == LogLevel::ERROR
            || (level == LogLevel::WARN && self.min_level == LogLevel::WARN);
        if recorded {
            self.seen
                .errors
                .lock()
                .unwrap()
                .push(format!("{target}: {message}"));
        }
    }
    fn sso_token(&self, _scopes: RVec<RString>) -> ROption<SsoToken> {
        ROption::RSome(SsoToken {
            access_token: self.token.as_str().into(),
            client_id: HOST_CLIENT_ID.into(),
            expires_in_s: 3600,
        })
    }
}

/// A token the emulator minted for Contact Desktop's app, for Adele, valid for a day: the
/// login [`SsoHost`] hands out.
pub fn host_token(emu: &EmulatorHandle) -> String {
    emu.control()
        .mint_access_token(
            ADELE_UPN,
            HOST_CLIENT_ID,
            &["User.Read", "Contacts.Read", "Presence.ReadWrite"],
            24 * 3600,
        )
        .unwrap()
}

/// Contact `k` of generation `g`, as Graph contact JSON (its number never changes:
/// `+31 20 5…`, Amsterdam, which no seeded contact has).
pub fn tagged(k: usize, g: u64) -> Value {
    json!({
        "givenName": format!("Torn{k:04}"),
        "surname": format!("Gen{g}"),
        "displayName": format!("Torn{k:04} Gen{g}"),
        "companyName": format!("Generation {g} GmbH"),
        "jobTitle": format!("Gen{g}"),
        "businessPhones": [format!("+31 20 5{k:06}")],
        "emailAddresses": [{
            "address": format!("torn{k:04}.gen{g}@example.org"),
            "name": format!("Torn{k:04} Gen{g}"),
        }],
    })
}

/// Adele's licensed context, country DE, data in `dir`.
pub fn context(dir: &Path) -> HostContext {
    HostContext {
        username: ADELE_UPN.into(),
        addons: vec![RString::from("contact_connect")].into(),
        country: "DE".into(),
        data_dir: dir.to_string_lossy().as_ref().into(),
        ..HostContext::default()
    }
}

/// Microsoft integration and presence on against `emu`, presence polled every 200 ms, and only
/// the syncs the caller asks for (and the one at sign-in).
pub fn settings(emu: &EmulatorHandle) -> SettingsUpdate {
    SettingsUpdate {
        microsoft_integration: ROption::RSome(true),
        presence_integration: ROption::RSome(true),
        authority: ROption::RSome(emu.authority().into()),
        graph: ROption::RSome(emu.graph_url().into()),
        client_id: ROption::RSome(emu.client_id().into()),
        sync_interval_s: ROption::RSome(7 * 24 * 3600),
        presence_poll_ms: ROption::RSome(200),
        ..SettingsUpdate::default()
    }
}

/// Polls `check` every 20 ms until it holds; panics after `guard` (a hang guard).
pub fn wait_until(what: &str, guard: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + guard;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
