//! The driver against the real emulator (loopback). Waits are bounded, never timed assertions.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{ROption, RStr, RString, RVec},
};
use host_api::{
    CallerInfo, ContactStatus as S, ContactStatus, Host, Host_TO, IntegrationState, LogLevel,
    Notification, SsoToken,
};
use ms365_emulator::{
    EmulatorConfig, EmulatorHandle, Fault, FaultRule,
    tenant::{ADELE_ID, ADELE_UPN, HOST_CLIENT_ID},
};
use secrecy::SecretString;
use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::auth::{TokenSource, Tokens};

/// Everything the driver told the host.
#[derive(Default)]
struct Recorded {
    statuses: Vec<ContactStatus>,
    logs: Vec<String>,
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Recorded>>);

impl Host for Recorder {
    fn set_contact_status(&self, status: ContactStatus) {
        self.0.lock().unwrap().statuses.push(status);
    }
    fn update_caller(&self, _call_id: RStr<'_>, _caller: CallerInfo) {}
    fn open_url(&self, _url: RStr<'_>) -> bool {
        false
    }
    fn notify(&self, _n: Notification) {}
    fn state_changed(&self, _state: IntegrationState) {}
    fn log(&self, _level: LogLevel, _target: RStr<'_>, message: RStr<'_>) {
        self.0.lock().unwrap().logs.push(message.to_string());
    }
    fn sso_token(&self, _scopes: RVec<RString>) -> ROption<SsoToken> {
        ROption::RNone
    }
}

const POLL: Duration = Duration::from_millis(200);
const SCOPES: &[&str] = &["Presence.ReadWrite", "User.Read"];

/// A running driver against a fresh emulator.
struct Rig {
    emu: EmulatorHandle,
    host: Recorder,
    statuses: UnboundedSender<ContactStatus>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    reads: Arc<Mutex<usize>>,
    tokens: TokenCell,
    token: String,
}

fn tokens(access: &str, source: TokenSource) -> Option<Tokens> {
    Some(Tokens {
        access: SecretString::from(access.to_owned()),
        expires_at: std::time::Instant::now() + Duration::from_secs(3600),
        refresh: None,
        source,
    })
}

impl Rig {
    async fn start(initial: ContactStatus) -> Rig {
        Self::start_with(initial, Timing::default(), None).await
    }

    /// `host_client`: the token comes from the host's login (that app's client id).
    async fn start_with(initial: ContactStatus, timing: Timing, host_client: Option<&str>) -> Rig {
        let emu = EmulatorHandle::spawn(EmulatorConfig::default()).unwrap();
        let client = host_client.map_or_else(|| emu.client_id(), str::to_owned);
        let token = emu
            .control()
            .mint_access_token(ADELE_UPN, &client, SCOPES, 3600)
            .unwrap();
        let source = match host_client {
            Some(c) => TokenSource::Host {
                client_id: c.to_owned(),
            },
            None => TokenSource::Own,
        };
        let cell: TokenCell = Arc::new(Mutex::new(tokens(&token, source)));
        let host = Recorder::default();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        let reads = Arc::new(Mutex::new(0usize));
        let counter = reads.clone();
        let parts = PresenceParts {
            http: crate::http::client().unwrap(),
            graph_base: emu.graph_url(),
            tokens: cell.clone(),
            user_id: ADELE_ID.to_owned(),
            session_id: emu.client_id(),
            poll: POLL,
            host: HostHandle::new(Host_TO::from_value(host.clone(), TD_Opaque)),
            statuses: rx,
            initial,
            cancel: cancel.clone(),
            on_read: Box::new(move |_, _| *counter.lock().unwrap() += 1),
            refresh_now: Default::default(),
        };
        let task = tokio::spawn(run_with(parts, timing));
        Rig {
            emu,
            host,
            statuses: tx,
            cancel,
            task,
            reads,
            tokens: cell,
            token,
        }
    }

    fn send(&self, status: ContactStatus) {
        self.statuses.send(status).unwrap();
    }

    fn presence(&self) -> Value {
        self.emu.control().presence(ADELE_UPN).unwrap()
    }

    fn aggregate(&self) -> (String, String) {
        let p = self.presence();
        let a = &p["aggregate"];
        (
            a["availability"].as_str().unwrap().to_owned(),
            a["activity"].as_str().unwrap().to_owned(),
        )
    }

    fn sessions(&self) -> usize {
        self.presence()["sessions"].as_array().unwrap().len()
    }

    fn preferred(&self) -> Option<(String, String)> {
        let p = self.presence()["preferred"].clone();
        (!p.is_null()).then(|| {
            (
                p["availability"].as_str().unwrap().to_owned(),
                p["activity"].as_str().unwrap().to_owned(),
            )
        })
    }

    fn host_statuses(&self) -> Vec<ContactStatus> {
        self.host.0.lock().unwrap().statuses.clone()
    }

    /// Successful presence writes in the emulator's log, by action.
    fn writes_ok(&self, action: &str) -> usize {
        self.emu
            .control()
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with(action) && r.status == Some(200))
            .count()
    }

    /// Waits until `n` more reads have been made (the machine has seen what Teams shows).
    async fn polls(&self, n: usize) {
        let start = *self.reads.lock().unwrap();
        until("reads", || *self.reads.lock().unwrap() >= start + n).await;
    }

    /// Cancels, waits for the clean exit, checks that no log line holds the token.
    async fn stop(mut self) -> Rig {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(20), &mut self.task)
            .await
            .expect("the driver returns after cancel")
            .unwrap();
        {
            let logs = &self.host.0.lock().unwrap().logs;
            assert!(!logs.is_empty());
            assert!(
                logs.iter().all(|l| !l.contains(&self.token)),
                "a token in the log"
            );
        }
        self
    }
}

/// Polls `check` until it holds (bounded liveness wait, not a timing assertion).
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "waited too long for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_owned(), b.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_call_is_in_a_call_in_teams_and_cleared_after_it() {
    let rig = Rig::start(S::ONLINE).await;
    rig.polls(1).await;
    rig.send(S::IN_CALL);
    until("the session", || rig.aggregate() == pair("Busy", "InACall")).await;
    let session = rig.presence()["sessions"][0].clone();
    assert_eq!(session["sessionId"], rig.emu.client_id().to_lowercase());
    // Our own session read back never becomes in_teams_call.
    rig.polls(3).await;
    assert!(rig.host_statuses().is_empty());
    rig.send(S::ONLINE);
    until("the clear", || rig.sessions() == 0).await;
    assert_eq!(rig.aggregate(), pair("Available", "Available"));
    rig.polls(3).await;
    assert!(rig.host_statuses().is_empty());
    assert_eq!(rig.writes_ok("setPresence"), 1);
    assert_eq!(rig.writes_ok("clearPresence"), 1);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_call_is_renewed_past_the_expiry_and_a_crash_leaves_one_window() {
    let timing = Timing {
        session_renew_after: Duration::from_millis(300),
        ..Timing::default()
    };
    let rig = Rig::start_with(S::ONLINE, timing, None).await;
    rig.send(S::IN_CALL);
    until("the session", || rig.sessions() == 1).await;
    // Move the emulator clock 12 minutes in 4-minute steps (expiry: 5 minutes); each step,
    // wait for the renewal the driver makes in the meantime.
    for _ in 0..3 {
        let before = rig.writes_ok("setPresence");
        rig.emu.control().advance_clock(4 * 60);
        until("a renewal", || rig.writes_ok("setPresence") > before).await;
    }
    assert_eq!(rig.aggregate(), pair("Busy", "InACall"));
    // The host crashes: no clean exit. One expiry window later Teams no longer shows the call.
    rig.task.abort();
    until("the abort", || rig.task.is_finished()).await;
    rig.emu.control().advance_clock(5 * 60 + 1);
    assert_eq!(rig.sessions(), 0);
    assert_eq!(rig.aggregate(), pair("Available", "Available"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teams_change_reaches_the_host_once() {
    let rig = Rig::start(S::ONLINE).await;
    rig.polls(1).await;
    let c = rig.emu.control();
    c.set_teams_presence(ADELE_UPN, "Busy", "InAMeeting")
        .unwrap();
    until("the meeting", || rig.host_statuses().len() == 1).await;
    c.set_teams_presence(ADELE_UPN, "DoNotDisturb", "Presenting")
        .unwrap();
    until("presenting", || rig.host_statuses().len() == 2).await;
    c.set_teams_presence(ADELE_UPN, "BeRightBack", "BeRightBack")
        .unwrap();
    until("be right back", || rig.host_statuses().len() == 3).await;
    rig.polls(3).await;
    assert_eq!(
        rig.host_statuses(),
        vec![S::IN_CALENDAR_MEETING, S::IN_TEAMS_CALL, S::AWAY]
    );
    // Offline maps to no synchronization.
    c.set_teams_presence(ADELE_UPN, "Offline", "Offline")
        .unwrap();
    rig.polls(3).await;
    assert_eq!(rig.host_statuses().len(), 3);
    assert_eq!(rig.writes_ok("Presence"), 0, "nothing written back");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appear_away_is_preferred_its_echo_changes_nothing_and_busy_clears_it() {
    let rig = Rig::start(S::ONLINE).await;
    rig.polls(1).await;
    rig.send(S::APPEAR_AWAY);
    until("preferred away", || {
        rig.preferred() == Some(pair("Away", "Away"))
    })
    .await;
    let expires = rig.presence()["preferred"]["expiresDateTime"].clone();
    assert!(expires.is_string());
    rig.polls(3).await;
    assert!(rig.host_statuses().is_empty(), "our own Away is no change");
    rig.send(S::APPEAR_OFFLINE);
    until("preferred offline", || {
        rig.preferred() == Some(pair("Offline", "OffWork"))
    })
    .await;
    rig.send(S::BUSY);
    until("cleared", || rig.preferred().is_none()).await;
    rig.polls(3).await;
    assert!(
        rig.host_statuses().is_empty(),
        "busy must not turn into online"
    );
    assert_eq!(rig.writes_ok("clearUserPreferredPresence"), 1);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_of_sync_writes_or_applies() {
    let rig = Rig::start(S::IN_CALL).await;
    until("the session at start", || rig.sessions() == 1).await;
    rig.polls(2).await;
    assert!(rig.host_statuses().is_empty());
    rig.stop().await;

    let rig = Rig::start(S::BUSY).await;
    until("Teams applied", || rig.host_statuses() == vec![S::ONLINE]).await;
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_exit_clears_our_session_and_preferred_presence() {
    for (status, action) in [
        (S::IN_CALL, "clearPresence"),
        (S::APPEAR_OFFLINE, "clearUserPreferredPresence"),
    ] {
        let rig = Rig::start(S::ONLINE).await;
        rig.send(status);
        until("the write", || {
            rig.aggregate() != pair("Available", "Available")
        })
        .await;
        let rig = rig.stop().await;
        assert_eq!(rig.sessions(), 0);
        assert_eq!(rig.preferred(), None);
        assert_eq!(rig.aggregate(), pair("Available", "Available"));
        assert_eq!(rig.writes_ok(action), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_backs_off_and_the_latest_state_wins() {
    let rig = Rig::start(S::ONLINE).await;
    rig.polls(1).await;
    let c = rig.emu.control();
    c.inject_fault(FaultRule {
        path_prefix: format!("/v1.0/users/{ADELE_ID}/presence"),
        method: None,
        count: 3,
        fault: Fault::Status {
            status: 429,
            retry_after: Some("1".into()),
        },
    })
    .unwrap();
    c.clear_requests();
    rig.send(S::IN_CALL);
    rig.send(S::ONLINE);
    rig.send(S::APPEAR_AWAY);
    until("recovery", || rig.preferred() == Some(pair("Away", "Away"))).await;
    rig.polls(2).await;
    let log: Vec<_> = c
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/presence"))
        .collect();
    // Exactly the three throttled requests, one at a time, before the first success: no
    // retry storm; then the latest state only: no stale session write.
    assert!(log[..3].iter().all(|r| r.status == Some(429)), "{log:?}");
    assert_eq!(rig.writes_ok("setPresence"), 0);
    assert_eq!(rig.writes_ok("setUserPreferredPresence"), 1);
    assert_eq!(rig.sessions(), 0);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_waits_for_the_refresher() {
    let rig = Rig::start(S::ONLINE).await;
    rig.polls(1).await;
    rig.emu.control().expire_access_tokens(ADELE_UPN).unwrap();
    rig.send(S::IN_CALL);
    until("a refused write", || {
        rig.emu
            .control()
            .requests()
            .iter()
            .any(|r| r.status == Some(401))
    })
    .await;
    let fresh = rig
        .emu
        .control()
        .mint_access_token(ADELE_UPN, &rig.emu.client_id(), SCOPES, 3600)
        .unwrap();
    *rig.tokens.lock().unwrap() = tokens(&fresh, TokenSource::Own);
    until("the session", || rig.sessions() == 1).await;
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_login_uses_the_host_apps_session_id() {
    let rig = Rig::start_with(S::ONLINE, Timing::default(), Some(HOST_CLIENT_ID)).await;
    rig.send(S::IN_CALL);
    until("the session", || rig.sessions() == 1).await;
    assert_eq!(
        rig.presence()["sessions"][0]["sessionId"],
        HOST_CLIENT_ID.to_lowercase()
    );
    let rig = rig.stop().await;
    assert_eq!(rig.sessions(), 0);
}
