//! A loopback emulator of the Microsoft identity platform (Entra ID v2.0) and Microsoft Graph
//! v1.0, for tests and the demo host.
//!
//! It answers as Microsoft documents (error bodies, status codes, token response fields) for the
//! surface the Contact Desktop Microsoft 365 plugin uses: OpenID discovery, authorization code +
//! PKCE on a loopback redirect, device code, refresh tokens with rotation, `GET /me`,
//! `GET /users/{id}`, `GET /users` (+ `/users/delta`), Outlook contact folders, contacts and
//! per-folder contact delta (with the Outlook 4-request concurrency limit), and Teams presence
//! (read, `setPresence`, `clearPresence`, preferred presence). A control API (in process through [`Control`], over HTTP under
//! `/_emulator/`) resets the seed, picks the signing-in user, revokes or expires tokens,
//! approves device codes, advances or skews the emulator clock, injects faults, reads the
//! request log, mints access tokens, edits contacts and sets the user's Teams client presence.
//! [`EmulatorHandle`] can also stop serving and serve again with the same state (a restart,
//! or the network gone for a while). `../docs/FAULTS.md` lists the faults and their tests.
//!
//! ```no_run
//! let emu = ms365_emulator::EmulatorHandle::spawn(Default::default()).unwrap();
//! println!("authority: {}", emu.authority());
//! emu.control().advance_clock(3600);
//! emu.shutdown();
//! ```

mod clock;
mod contact_seed;
mod contacts;
mod control;
mod control_contacts;
mod control_directory;
mod control_presence;
mod directory;
mod errors;
mod faults;
mod grants;
mod graph;
mod identity;
mod keys;
mod mailbox;
mod outlook_limit;
mod paging;
mod presence;
mod request_log;
mod scopes;
mod server;
mod state;
pub mod tenant;

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub use control::{Control, ControlError};
pub use faults::{Fault, FaultRule};
pub use request_log::RequestLogEntry;

use state::Shared;

/// How the emulator behaves. All durations are measured on the emulator clock.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// TCP port on 127.0.0.1; 0 lets the OS choose.
    pub port: u16,
    /// Approve a pending device code automatically (as the current sign-in user) once it is
    /// this old. `None`: only by the control call or the `/devicelogin` page.
    pub device_auto_approve_after: Option<Duration>,
    /// `interval` of the device code response, in seconds (Microsoft: 5).
    pub device_poll_interval_secs: u64,
    /// `expires_in` of the device code response, in seconds (Microsoft: 900).
    pub device_code_lifetime_secs: u64,
    /// Access token lifetime (`expires_in`), in seconds (Microsoft: typically 3599).
    pub access_token_lifetime_secs: u64,
    /// Refresh token inactivity lifetime, in seconds (Microsoft: 90 days). Every rotation
    /// starts a fresh window.
    pub refresh_token_lifetime_secs: u64,
    /// Authorization code lifetime, in seconds (Microsoft: about 10 minutes).
    pub auth_code_lifetime_secs: u64,
    /// Accept `code_challenge_method=plain`. Microsoft accepts it; the plugin's app
    /// registration is treated as requiring S256, so the default is `false`.
    pub allow_plain_pkce: bool,
    /// Contacts in every seeded mailbox (default 25: Adele's 15 fixed contacts plus generated
    /// ones; see [`tenant`]). Up to 100,000 generate in well under a second (release build).
    pub contacts_per_user: usize,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            port: 0,
            device_auto_approve_after: None,
            device_poll_interval_secs: 5,
            device_code_lifetime_secs: 900,
            access_token_lifetime_secs: 3599,
            refresh_token_lifetime_secs: 90 * 24 * 3600,
            auth_code_lifetime_secs: 600,
            allow_plain_pkce: false,
            contacts_per_user: tenant::DEFAULT_CONTACTS_PER_USER,
        }
    }
}

/// An emulator instance not yet serving: build it, keep its [`Control`], then [`serve`] it on a
/// listener of your own (for callers already inside tokio).
#[derive(Clone, Debug)]
pub struct Emulator {
    shared: Arc<Shared>,
    control: Control,
}

impl Emulator {
    /// A fresh seeded emulator that will be reachable at `base_url` (e.g.
    /// `http://127.0.0.1:8400`, no trailing slash): the URL it writes into discovery documents,
    /// device code messages and `@odata.context`.
    pub fn new(config: EmulatorConfig, base_url: impl Into<String>) -> Emulator {
        let base = base_url.into().trim_end_matches('/').to_string();
        let shared = Arc::new(Shared::new(config, base));
        Emulator {
            control: Control::new(shared.clone()),
            shared,
        }
    }

    /// The in-process control.
    pub fn control(&self) -> &Control {
        &self.control
    }
}

/// Serves `emulator` on `listener` until the future is dropped or the listener fails.
/// Bind the listener to 127.0.0.1 yourself.
pub async fn serve(listener: tokio::net::TcpListener, emulator: Emulator) -> std::io::Result<()> {
    server::serve(listener, emulator.shared).await
}

/// A running emulator on its own thread with its own tokio runtime. Stops on
/// [`EmulatorHandle::shutdown`] or drop. It can also stop serving and serve again on the same
/// port with the same state ([`EmulatorHandle::stop_serving`], [`EmulatorHandle::start_serving`]):
/// a service restarting, or the network gone for a while.
#[derive(Debug)]
pub struct EmulatorHandle {
    base: String,
    port: u16,
    emulator: Emulator,
    control: Control,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Serves `emulator` on `std_listener` on a new thread; returns the stop switch and the thread.
fn serve_on_thread(
    std_listener: std::net::TcpListener,
    emulator: Emulator,
    port: u16,
) -> std::io::Result<(tokio::sync::oneshot::Sender<()>, JoinHandle<()>)> {
    std_listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name(format!("ms365-emulator-{port}"))
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(std_listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!("ms365 emulator: cannot use listener: {e}");
                        return;
                    }
                };
                tokio::select! {
                    r = serve(listener, emulator) => {
                        if let Err(e) = r {
                            tracing::error!("ms365 emulator stopped: {e}");
                        }
                    }
                    _ = stop_rx => {}
                }
            });
            // Connections still open (and requests in flight) are cut here.
            runtime.shutdown_timeout(Duration::from_millis(500));
        })?;
    Ok((stop_tx, thread))
}

impl EmulatorHandle {
    /// Binds 127.0.0.1:`config.port` and starts serving on a new thread.
    pub fn spawn(config: EmulatorConfig) -> std::io::Result<EmulatorHandle> {
        let std_listener = std::net::TcpListener::bind(("127.0.0.1", config.port))?;
        let port = std_listener.local_addr()?.port();
        let base = format!("http://127.0.0.1:{port}");
        let emulator = Emulator::new(config, base.clone());
        let control = emulator.control.clone();
        let (stop, thread) = serve_on_thread(std_listener, emulator.clone(), port)?;
        tracing::debug!("ms365 emulator listening on {base}");
        Ok(EmulatorHandle {
            base,
            port,
            emulator,
            control,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stops serving: the port is closed (connections are refused), open connections and
    /// requests in flight are cut. Tenant, tokens, delta state, faults, clock and request log
    /// are kept for [`start_serving`](Self::start_serving). Bounded by about 2 s.
    pub fn stop_serving(&mut self) {
        self.stop_and_join();
    }

    /// Serves again on the same port with the same state (no-op while serving). Retries the
    /// bind for a few seconds while the old socket is released.
    pub fn start_serving(&mut self) -> std::io::Result<()> {
        if self.is_serving() {
            return Ok(());
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let std_listener = loop {
            match std::net::TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(l) => break l,
                Err(e) if std::time::Instant::now() < deadline => {
                    tracing::debug!("ms365 emulator: port {} not free yet: {e}", self.port);
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(e),
            }
        };
        let (stop, thread) = serve_on_thread(std_listener, self.emulator.clone(), self.port)?;
        self.stop = Some(stop);
        self.thread = Some(thread);
        tracing::debug!("ms365 emulator serving again on {}", self.base);
        Ok(())
    }

    /// Whether the emulator is serving (not stopped by [`stop_serving`](Self::stop_serving)).
    pub fn is_serving(&self) -> bool {
        self.stop.is_some()
    }

    /// A restart of the service: [`stop_serving`](Self::stop_serving), then
    /// [`start_serving`](Self::start_serving) on the same port with the same state.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.stop_serving();
        self.start_serving()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.base.clone()
    }

    /// `{base}/organizations/v2.0`: the value for the plugin's `authority` setting.
    pub fn authority(&self) -> String {
        format!("{}/organizations/v2.0", self.base)
    }

    /// `{base}/v1.0`: the value for the plugin's `graph` setting.
    pub fn graph_url(&self) -> String {
        format!("{}/v1.0", self.base)
    }

    /// The registered public client id the emulator accepts (the plugin's app).
    pub fn client_id(&self) -> String {
        tenant::PLUGIN_CLIENT_ID.to_string()
    }

    /// The seeded tenant's id.
    pub fn tenant_id(&self) -> String {
        tenant::TENANT_ID.to_string()
    }

    /// In-process control (same operations as the HTTP control API).
    pub fn control(&self) -> &Control {
        &self.control
    }

    /// Stops serving and joins the thread (bounded by about 2 s).
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let deadline = std::time::Instant::now() + Duration::from_secs(2);
            while !thread.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}
