//! Presence sync latency and request budget, against the emulator on loopback.
//!
//! Run: `cargo bench -p contact-ms365 --bench presence`
//!
//! Prints (no criterion: each sample takes up to a poll interval, percentiles say more):
//! - **Contact → Teams**: from sending a status to the driver (`on_status_change`) to the
//!   emulator having the write (`in_call` ⇄ `online`: `setPresence` / `clearPresence`).
//!   Target ≤ 100 ms.
//! - **Teams → Contact**: from the emulator's Teams change (`set_teams_presence`) to the
//!   host's `set_contact_status`, at a poll of 1 s. Target ≤ poll + 100 ms.
//! - **Requests per user per hour** at the default settings (poll 5 s), measured over 30 s of
//!   idle sync plus a call, extrapolated to an hour.

use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{ROption, RStr, RString, RVec},
};
use contact_ms365::{
    auth::{TokenSource, Tokens},
    host::HostHandle,
    presence::{PresenceParts, Timing, run_with},
    session::TokenCell,
};
use host_api::{
    CallerInfo, ContactStatus, Host, Host_TO, IntegrationState, LogLevel, Notification, SsoToken,
};
use ms365_emulator::{
    EmulatorConfig, EmulatorHandle,
    tenant::{ADELE_ID, ADELE_UPN},
};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

const SAMPLES: usize = 30;

/// A host that hands every status to the bench thread.
struct ChannelHost(Mutex<mpsc::Sender<ContactStatus>>);

impl Host for ChannelHost {
    fn set_contact_status(&self, status: ContactStatus) {
        let _ = self.0.lock().unwrap().send(status);
    }
    fn update_caller(&self, _call_id: RStr<'_>, _caller: CallerInfo) {}
    fn open_url(&self, _url: RStr<'_>) -> bool {
        false
    }
    fn notify(&self, _n: Notification) {}
    fn state_changed(&self, _state: IntegrationState) {}
    fn log(&self, _level: LogLevel, _target: RStr<'_>, _message: RStr<'_>) {}
    fn sso_token(&self, _scopes: RVec<RString>) -> ROption<SsoToken> {
        ROption::RNone
    }
}

/// A driver running on its own runtime against `emu`.
struct Rig {
    runtime: tokio::runtime::Runtime,
    statuses: tokio::sync::mpsc::UnboundedSender<ContactStatus>,
    host: mpsc::Receiver<ContactStatus>,
    cancel: CancellationToken,
}

fn rig(emu: &EmulatorHandle, poll: Duration) -> Rig {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let token = emu
        .control()
        .mint_access_token(ADELE_UPN, &emu.client_id(), &["Presence.ReadWrite"], 3600)
        .unwrap();
    let tokens: TokenCell = Arc::new(Mutex::new(Some(Tokens {
        access: SecretString::from(token),
        expires_at: std::time::Instant::now() + Duration::from_secs(3600),
        refresh: None,
        source: TokenSource::Own,
    })));
    let (host_tx, host_rx) = mpsc::channel();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let http = {
        let _guard = runtime.enter();
        contact_ms365::http::client().unwrap()
    };
    let parts = PresenceParts {
        http,
        graph_base: emu.graph_url(),
        tokens,
        user_id: ADELE_ID.to_owned(),
        session_id: emu.client_id(),
        poll,
        host: HostHandle::new(Host_TO::from_value(
            ChannelHost(Mutex::new(host_tx)),
            TD_Opaque,
        )),
        statuses: rx,
        initial: ContactStatus::ONLINE,
        cancel: cancel.clone(),
        on_read: Box::new(|_, _| {}),
        refresh_now: Default::default(),
    };
    runtime.spawn(run_with(parts, Timing::default()));
    Rig {
        runtime,
        statuses: tx,
        host: host_rx,
        cancel,
    }
}

fn wait_for(mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "no progress");
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn sessions(emu: &EmulatorHandle) -> usize {
    emu.control().presence(ADELE_UPN).unwrap()["sessions"]
        .as_array()
        .map_or(0, Vec::len)
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "{name:<32} n={:<3} min {:>7.1?}  p50 {:>7.1?}  p95 {:>7.1?}  max {:>7.1?}",
        samples.len(),
        samples[0],
        at(0.5),
        at(0.95),
        samples[samples.len() - 1]
    );
}

fn contact_to_teams(emu: &EmulatorHandle) {
    let r = rig(emu, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(200));
    let mut samples = Vec::new();
    for i in 0..SAMPLES * 2 {
        let (status, want) = if i % 2 == 0 {
            (ContactStatus::IN_CALL, 1)
        } else {
            (ContactStatus::ONLINE, 0)
        };
        let start = Instant::now();
        r.statuses.send(status).unwrap();
        wait_for(|| sessions(emu) == want);
        samples.push(start.elapsed());
    }
    report("contact->teams (poll 5 s)", samples);
    stop(r);
}

fn teams_to_contact(emu: &EmulatorHandle) {
    let poll = Duration::from_secs(1);
    let r = rig(emu, poll);
    std::thread::sleep(Duration::from_millis(300));
    let mut samples = Vec::new();
    for i in 0..SAMPLES {
        let (a, x, want) = if i % 2 == 0 {
            ("Busy", "Busy", ContactStatus::BUSY)
        } else {
            ("Available", "Available", ContactStatus::ONLINE)
        };
        // Change Teams at a spread of phases of the poll cycle, as a user would.
        std::thread::sleep(poll.mul_f64(((i * 37) % 100) as f64 / 100.0));
        let start = Instant::now();
        emu.control().set_teams_presence(ADELE_UPN, a, x).unwrap();
        let got = r.host.recv_timeout(Duration::from_secs(30)).unwrap();
        samples.push(start.elapsed());
        assert_eq!(got, want);
    }
    report("teams->contact (poll 1 s)", samples);
    println!(
        "{:<32} target <= {:?}",
        "",
        poll + Duration::from_millis(100)
    );
    stop(r);
}

fn budget(emu: &EmulatorHandle) {
    let window = Duration::from_secs(30);
    emu.control().clear_requests();
    let r = rig(emu, Duration::from_secs(5));
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    r.statuses.send(ContactStatus::IN_CALL).unwrap();
    std::thread::sleep(Duration::from_secs(10));
    r.statuses.send(ContactStatus::ONLINE).unwrap();
    std::thread::sleep(window.saturating_sub(start.elapsed()));
    let log = emu.control().requests();
    let count = |m: &str| {
        log.iter()
            .filter(|e| e.method == m && e.path.contains("/presence"))
            .count()
    };
    let per_hour = |n: usize| n as f64 * 3600.0 / window.as_secs_f64();
    println!(
        "requests in {window:?} at poll 5 s: {} GET, {} POST (one call) -> {:.0} GET/h + writes",
        count("GET"),
        count("POST"),
        per_hour(count("GET"))
    );
    stop(r);
}

fn stop(r: Rig) {
    r.cancel.cancel();
    r.runtime.shutdown_timeout(Duration::from_secs(3));
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        // Built and run by `cargo test --all-targets`: a minute of measuring is not a test.
        println!("presence bench: run it with `cargo bench -p contact-ms365 --bench presence`");
        return;
    }
    let emu = EmulatorHandle::spawn(EmulatorConfig::default()).unwrap();
    contact_to_teams(&emu);
    teams_to_contact(&emu);
    budget(&emu);
    emu.shutdown();
}
