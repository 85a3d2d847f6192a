//! The sign-in session while Microsoft integration is on: the [`Engine`] (runtime, HTTP client,
//! current tokens) and the tasks that sign in and keep the tokens fresh.
//!
//! Order at start ("silent first"): the host's own Microsoft 365 login, if Graph accepts its
//! token; else the remembered sign-in (refresh token); else, for a first sign-in only, the
//! browser (or the device code). A remembered sign-in that Microsoft refuses leads to one calm
//! `sign_in_required` notification and waits for the user's `sign_in`: never a loop of windows.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;

use crate::{
    auth::{
        self, AuthError, TokenSource, Tokens,
        discovery::{Endpoints, discover},
        flows::{self, Granted},
        token_store::{Remembered, TokenStore, delete_everywhere},
    },
    graph::{Graph, GraphError, Me},
    integration::{AuthPhase, Core, Inner},
    runtime::PluginRuntime,
    settings::{SignInMethod, TokenStoreKind},
};

/// How long a browser sign-in may take.
pub const BROWSER_SIGN_IN_LIMIT: Duration = Duration::from_secs(5 * 60);
/// Longest wait between silent retries when Microsoft cannot be reached.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The current tokens, shared with the tasks that use Graph.
pub type TokenCell = Arc<Mutex<Option<Tokens>>>;

/// What runs while Microsoft integration is on.
pub struct Engine {
    runtime: PluginRuntime,
    /// The HTTP client (connection pool dies with the engine).
    pub http: reqwest::Client,
    /// The current tokens.
    pub tokens: TokenCell,
    /// Cancels the current sign-in task (and its refresher and sync loop).
    session: Option<CancellationToken>,
    /// Wakes the refresher at once (Graph refused the token).
    pub refresh_now: Arc<tokio::sync::Notify>,
    /// Asks the sync loop for a sync (present while signed in).
    pub contacts: Option<tokio::sync::mpsc::UnboundedSender<crate::contacts::Waiter>>,
    /// Presence sync, while it runs.
    pub(crate) presence: Option<PresenceTask>,
}

/// A running presence sync.
pub(crate) struct PresenceTask {
    cancel: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
    pub(crate) statuses: tokio::sync::mpsc::UnboundedSender<host_api::ContactStatus>,
    runtime: tokio::runtime::Handle,
}

/// How long the clean exit of presence sync may take before the runtime stops.
pub const PRESENCE_EXIT_LIMIT: Duration = Duration::from_secs(2);
/// Of a stop deadline, the part kept for stopping the runtime (joining its threads) and for
/// the host's own work after presence sync's clean exit; the clean exit may use the rest (1.3 s
/// of the host's 2 s: against a server that never answers it would otherwise use its whole
/// budget and leave the 2 s bound almost no margin).
const RUNTIME_STOP_SHARE: Duration = Duration::from_millis(700);

impl PresenceTask {
    /// Starts presence sync on the engine's runtime; `statuses` feeds the receiver in `parts`.
    pub(crate) fn start(
        engine: &Engine,
        parts: crate::presence::PresenceParts,
        statuses: tokio::sync::mpsc::UnboundedSender<host_api::ContactStatus>,
    ) -> Self {
        let cancel = parts.cancel.clone();
        let handle = engine.runtime.spawn(crate::presence::run(parts));
        Self {
            cancel,
            handle,
            statuses,
            runtime: engine.runtime.handle().clone(),
        }
    }

    /// Asks it to stop; it clears what it set in Teams, then ends on its own.
    pub(crate) fn stop(self) {
        self.cancel.cancel();
    }

    /// Stops it and waits (bounded) until Teams is cleared. From a host thread only, never
    /// from a task of the runtime.
    pub(crate) fn stop_and_wait(self) {
        self.stop_and_wait_at_most(PRESENCE_EXIT_LIMIT);
    }

    /// [`stop_and_wait`](Self::stop_and_wait), waiting at most `limit` (and never more than
    /// [`PRESENCE_EXIT_LIMIT`]).
    pub(crate) fn stop_and_wait_at_most(self, limit: Duration) {
        self.cancel.cancel();
        let handle = self.handle;
        let limit = limit.min(PRESENCE_EXIT_LIMIT);
        let _ = self
            .runtime
            .block_on(async move { tokio::time::timeout(limit, handle).await });
    }
}

impl Engine {
    /// Starts the runtime and the HTTP client.
    pub fn start() -> std::io::Result<Engine> {
        let runtime = PluginRuntime::start()?;
        // reqwest's client must be built inside a runtime context for its DNS resolver.
        let http = {
            let _guard = runtime.handle().enter();
            crate::http::client().map_err(std::io::Error::other)?
        };
        Ok(Engine {
            runtime,
            http,
            tokens: Arc::new(Mutex::new(None)),
            session: None,
            refresh_now: Arc::new(tokio::sync::Notify::new()),
            contacts: None,
            presence: None,
        })
    }

    /// Stops everything within `deadline` in all (requests in flight are dropped, whatever the
    /// server does): presence sync first clears what it set in Teams (its requests need the
    /// runtime), using the deadline but [`RUNTIME_STOP_SHARE`]; then the runtime stops and its
    /// threads are joined in the time left (at least that share).
    pub fn stop(mut self, deadline: Duration) {
        let until = Instant::now() + deadline;
        if let Some(presence) = self.presence.take() {
            presence.stop_and_wait_at_most(deadline.saturating_sub(RUNTIME_STOP_SHARE));
        }
        if let Some(s) = &self.session {
            s.cancel();
        }
        let left = until.saturating_duration_since(Instant::now());
        self.runtime.stop(left.max(RUNTIME_STOP_SHARE));
    }

    /// The runtime, for spawning.
    pub fn runtime(&self) -> &PluginRuntime {
        &self.runtime
    }
}

/// Why a sign-in starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Microsoft integration was switched on (or the plugin started with it on): silent first.
    Startup,
    /// The user asked (`sign_in`): interactive now.
    Interactive,
}

/// What the tasks need, copied out of the settings when they start.
#[derive(Clone)]
struct Config {
    generation: u64,
    authority: String,
    graph: String,
    client_id: String,
    scopes: Vec<&'static str>,
    remember: bool,
    token_store: TokenStoreKind,
    data_dir: std::path::PathBuf,
    method: SignInMethod,
    login_hint: String,
    http: reqwest::Client,
    tokens: TokenCell,
}

/// Starts a sign-in task (cancelling any earlier one). Call with the lock held, after bumping
/// `inner.generation`.
pub(crate) fn start(core: &Arc<Core>, inner: &mut Inner, mode: Mode) {
    let Some(engine) = inner.engine.as_mut() else {
        return;
    };
    if let Some(previous) = engine.session.take() {
        previous.cancel();
    }
    let cancel = engine.runtime.cancel_token();
    engine.session = Some(cancel.clone());
    let config = Config {
        generation: inner.generation,
        authority: inner.settings.authority.clone(),
        graph: inner.settings.graph.clone(),
        client_id: inner.settings.client_id.clone(),
        scopes: auth::scopes(inner.settings.directory),
        remember: inner.settings.remember_login,
        token_store: inner.settings.token_store,
        data_dir: inner.context.data_dir.clone(),
        method: inner.settings.sign_in_method,
        login_hint: inner.context.username.clone(),
        http: engine.http.clone(),
        tokens: engine.tokens.clone(),
    };
    inner.auth = AuthPhase::SigningIn;
    if mode == Mode::Interactive {
        inner.last_error = None;
    }
    let core = core.clone();
    engine.runtime.spawn(async move {
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = run(&core, &config, mode, &cancel) => {}
        }
    });
}

/// Forgets the sign-in: tokens, account, remembered refresh token.
pub(crate) fn sign_out(core: &Arc<Core>, inner: &mut Inner) {
    inner.generation += 1;
    if let Some(engine) = inner.engine.as_mut() {
        if let Some(s) = engine.session.take() {
            s.cancel();
        }
        *lock(&engine.tokens) = None;
    }
    if let Some(engine) = inner.engine.as_mut() {
        engine.contacts = None;
    }
    inner.account = None;
    inner.auth = AuthPhase::SignInRequired;
    inner.last_error = None;
    inner.notified_sign_in_required = true; // the user asked: no notification
    forget_remembered(core, inner);
    // The synced contacts belong to the account: forget them too.
    inner.mailbox = Arc::new(crate::sync::Mailbox::default());
    core.directory
        .replace(crate::directory::Index::new(Vec::new(), ""));
    if !inner.context.data_dir.as_os_str().is_empty()
        && let Err(e) = crate::snapshot::delete(&inner.context.data_dir)
    {
        core.host
            .warn("snapshot", &format!("could not delete the snapshot: {e}"));
    }
    core.host.info("auth", "signed out; stored sign-in deleted");
}

/// Rebuilds the index from the synced contacts (the host's country changed, or colleagues were
/// dropped) and writes the snapshot with it.
pub(crate) fn rebuild_index(core: &Arc<Core>, inner: &Inner) {
    let Some(engine) = inner.engine.as_ref() else {
        return;
    };
    let mailbox = (*inner.mailbox).clone();
    let core = core.clone();
    engine.runtime.spawn(async move {
        crate::contacts::install_and_save(&core, mailbox).await;
    });
}

/// Drops the colleagues and the directory's delta link from the synced data and rebuilds the
/// index without them (the `directory` setting was switched off).
pub(crate) fn drop_colleagues(core: &Arc<Core>, inner: &mut Inner) {
    if !inner.mailbox.has_directory() {
        return;
    }
    let mut mailbox = (*inner.mailbox).clone();
    mailbox.drop_directory();
    inner.mailbox = Arc::new(mailbox);
    rebuild_index(core, inner);
}

/// Deletes the remembered sign-in (remember_login switched off, or sign-out).
pub(crate) fn forget_remembered(core: &Arc<Core>, inner: &Inner) {
    if inner.context.data_dir.as_os_str().is_empty() {
        return;
    }
    if let Err(e) = delete_everywhere(&inner.context.data_dir) {
        core.host
            .warn("auth", &format!("could not delete the stored sign-in: {e}"));
    }
}

/// Stores the current sign-in (remember_login switched on while signed in).
pub(crate) fn remember_current(core: &Arc<Core>, inner: &Inner) {
    let Some(engine) = inner.engine.as_ref() else {
        return;
    };
    let Some(account) = inner.account.as_ref() else {
        return;
    };
    let refresh = match lock(&engine.tokens).as_ref() {
        Some(Tokens {
            refresh: Some(r),
            source: TokenSource::Own,
            ..
        }) => SecretString::from(r.expose_secret().to_owned()),
        _ => return,
    };
    let remembered = Remembered {
        refresh_token: refresh,
        upn: account.user_principal_name.clone(),
        client_id: inner.settings.client_id.clone(),
        authority: inner.settings.authority.clone(),
    };
    let (kind, dir, core) = (
        inner.settings.token_store,
        inner.context.data_dir.clone(),
        core.clone(),
    );
    engine.runtime.spawn(async move {
        let result = tokio::task::spawn_blocking(move || {
            TokenStore::select(kind, &dir).and_then(|s| s.save(&remembered).map(|()| s))
        })
        .await;
        match result {
            Ok(Ok(store)) => core.host.info(
                "auth",
                &format!("sign-in remembered in {}", store.describe()),
            ),
            Ok(Err(e)) => core
                .host
                .warn("auth", &format!("could not remember the sign-in: {e}")),
            Err(_) => {}
        }
    });
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A finished sign-in.
struct SignedIn {
    tokens: Tokens,
    me: Me,
}

/// Why the silent steps found nothing usable.
enum Silent {
    /// Nothing remembered, no host login: a first sign-in.
    Nothing,
    /// Microsoft refused the remembered sign-in: wait for the user.
    Refused(String),
}

async fn run(core: &Arc<Core>, config: &Config, mode: Mode, cancel: &CancellationToken) {
    if mode == Mode::Startup {
        // Calls are answered from the snapshot before any network traffic.
        crate::contacts::warm_start(core).await;
    }
    let mut backoff = Duration::from_secs(2);
    let signed_in = loop {
        let attempt = attempt(core, config, mode, cancel).await;
        match attempt {
            Ok(s) => break s,
            Err(Failed {
                error: AuthError::Cancelled,
                ..
            }) => return,
            // Only silent steps are retried on their own: once the user was asked (browser or
            // device code), a failure waits for the user's `sign_in` — never a loop of windows.
            Err(Failed {
                error: e,
                interacted: false,
            }) if e.is_transient() && mode == Mode::Startup => {
                set_phase(core, config, AuthPhase::Error, Some(e.to_string()));
                core.host
                    .warn("auth", &format!("{e}; retrying in {} s", backoff.as_secs()));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(Failed { error, .. }) => {
                needs_sign_in(core, config, error.to_string());
                return;
            }
        }
    };
    if !install(core, config, signed_in, cancel) {
        return;
    }
    keep_fresh(core, config).await;
}

/// A failed sign-in attempt, and whether the user had been asked (browser or device code).
struct Failed {
    error: AuthError,
    interacted: bool,
}

impl From<AuthError> for Failed {
    fn from(error: AuthError) -> Self {
        Failed {
            error,
            interacted: false,
        }
    }
}

/// One try at signing in per `mode`.
async fn attempt(
    core: &Arc<Core>,
    config: &Config,
    mode: Mode,
    cancel: &CancellationToken,
) -> Result<SignedIn, Failed> {
    let endpoints = discover(&config.http, &config.authority).await?;
    let graph = Graph::new(config.http.clone(), &config.graph);
    if mode == Mode::Startup {
        match silent(core, config, &endpoints, &graph).await? {
            Ok(signed_in) => return Ok(signed_in),
            Err(Silent::Refused(reason)) => {
                return Err(AuthError::InteractionRequired(reason).into());
            }
            Err(Silent::Nothing) => {}
        }
    }
    interactive(core, config, &endpoints, &graph, cancel)
        .await
        .map_err(|error| Failed {
            error,
            interacted: true,
        })
}

/// The host's login, then the remembered sign-in.
async fn silent(
    core: &Arc<Core>,
    config: &Config,
    endpoints: &Endpoints,
    graph: &Graph,
) -> Result<Result<SignedIn, Silent>, AuthError> {
    if let Some(signed_in) = host_login(core, config, graph).await? {
        return Ok(Ok(signed_in));
    }
    if !config.remember {
        return Ok(Err(Silent::Nothing));
    }
    let (kind, dir) = (config.token_store, config.data_dir.clone());
    let loaded = tokio::task::spawn_blocking(move || {
        let store = TokenStore::select(kind, &dir)?;
        store.load()
    })
    .await
    .map_err(|_| AuthError::Cancelled)?;
    let remembered = match loaded {
        Ok(Some(r)) if r.client_id == config.client_id && r.authority == config.authority => r,
        Ok(Some(_)) => {
            core.host.info(
                "auth",
                "the remembered sign-in belongs to another app or authority; ignored",
            );
            return Ok(Err(Silent::Nothing));
        }
        Ok(None) => return Ok(Err(Silent::Nothing)),
        Err(e) => {
            core.host.warn("auth", &e);
            return Ok(Err(Silent::Nothing));
        }
    };
    core.host
        .debug("auth", "signing in with the remembered sign-in");
    match flows::refresh(
        &config.http,
        endpoints,
        &config.client_id,
        &remembered.refresh_token,
        &config.scopes,
    )
    .await
    {
        Ok(granted) => {
            let signed_in = with_me(graph, granted, TokenSource::Own).await?;
            store_rotated(core, config, &signed_in).await;
            Ok(Ok(signed_in))
        }
        Err(AuthError::InteractionRequired(reason)) => {
            forget_in_background(config).await;
            Ok(Err(Silent::Refused(reason)))
        }
        Err(e) => Err(e),
    }
}

/// The host's own Microsoft 365 login, if it has one that Graph accepts.
async fn host_login(
    core: &Arc<Core>,
    config: &Config,
    graph: &Graph,
) -> Result<Option<SignedIn>, AuthError> {
    let host = core.host.clone();
    let scopes = config.scopes.clone();
    let token = tokio::task::spawn_blocking(move || host.sso_token(&scopes))
        .await
        .map_err(|_| AuthError::Cancelled)?;
    let Some(token) = token else {
        return Ok(None);
    };
    let access = SecretString::from(token.access_token.into_string());
    match graph.me(&access).await {
        Ok(me) => {
            core.host.info(
                "auth",
                "signed in with Contact Desktop's Microsoft 365 login (nothing stored)",
            );
            Ok(Some(SignedIn {
                tokens: Tokens {
                    access,
                    expires_at: Instant::now()
                        + auth::usable_for(Some(Duration::from_secs(token.expires_in_s))),
                    refresh: None,
                    source: TokenSource::Host {
                        client_id: token.client_id.into_string(),
                    },
                },
                me,
            }))
        }
        Err(GraphError::Unauthorized(m)) | Err(GraphError::Forbidden(m)) => {
            core.host.info(
                "auth",
                &format!("Graph refused Contact Desktop's login ({m}); using our own sign-in"),
            );
            Ok(None)
        }
        Err(e) => Err(AuthError::Transient(e.to_string())),
    }
}

/// Browser (or device code) sign-in.
async fn interactive(
    core: &Arc<Core>,
    config: &Config,
    endpoints: &Endpoints,
    graph: &Graph,
    cancel: &CancellationToken,
) -> Result<SignedIn, AuthError> {
    set_phase(core, config, AuthPhase::SigningIn, None);
    let granted = match config.method {
        SignInMethod::Browser => {
            let host = core.host.clone();
            let open = move |url: String| {
                let host = host.clone();
                Box::pin(async move {
                    tokio::task::spawn_blocking(move || host.open_url(&url))
                        .await
                        .unwrap_or(false)
                })
                    as std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>
            };
            let request = flows::BrowserRequest {
                endpoints,
                client_id: &config.client_id,
                scopes: &config.scopes,
                login_hint: Some(&config.login_hint),
                limit: BROWSER_SIGN_IN_LIMIT,
            };
            match flows::browser_sign_in(&config.http, request, open, cancel.clone()).await {
                Err(AuthError::NoBrowser) => {
                    core.host
                        .info("auth", "no browser could be opened; using a device code");
                    device_code(core, config, endpoints, cancel).await?
                }
                other => other?,
            }
        }
        SignInMethod::DeviceCode => device_code(core, config, endpoints, cancel).await?,
    };
    let signed_in = with_me(graph, granted, TokenSource::Own).await?;
    store_rotated(core, config, &signed_in).await;
    Ok(signed_in)
}

async fn device_code(
    core: &Arc<Core>,
    config: &Config,
    endpoints: &Endpoints,
    cancel: &CancellationToken,
) -> Result<Granted, AuthError> {
    let (prompt, details) =
        flows::device_start(&config.http, endpoints, &config.client_id, &config.scopes).await?;
    core.host
        .notify_device_code(&prompt.message, &prompt.user_code, &prompt.verification_uri);
    flows::device_poll(
        &config.http,
        endpoints,
        &config.client_id,
        &details,
        cancel.clone(),
    )
    .await
}

async fn with_me(
    graph: &Graph,
    granted: Granted,
    source: TokenSource,
) -> Result<SignedIn, AuthError> {
    let me = graph.me(&granted.access).await.map_err(|e| match e {
        GraphError::Unauthorized(m) => AuthError::InteractionRequired(m),
        GraphError::Forbidden(m) => AuthError::Config(format!(
            "Microsoft Graph denied reading the signed-in user ({m}); the app needs User.Read"
        )),
        other => AuthError::Transient(other.to_string()),
    })?;
    Ok(SignedIn {
        tokens: Tokens {
            access: granted.access,
            expires_at: Instant::now() + auth::usable_for(granted.expires_in),
            refresh: granted.refresh,
            source,
        },
        me,
    })
}

/// Keeps the newest refresh token when the sign-in is remembered.
async fn store_rotated(core: &Arc<Core>, config: &Config, signed_in: &SignedIn) {
    if let Some(refresh) = &signed_in.tokens.refresh {
        save_remembered(
            core,
            config,
            refresh,
            signed_in.me.user_principal_name.clone(),
        )
        .await;
    }
}

/// Replaces the remembered refresh token (only with `remember_login`); a failure is logged.
async fn save_remembered(core: &Arc<Core>, config: &Config, refresh: &SecretString, upn: String) {
    if !config.remember {
        return;
    }
    let remembered = Remembered {
        refresh_token: SecretString::from(refresh.expose_secret().to_owned()),
        upn,
        client_id: config.client_id.clone(),
        authority: config.authority.clone(),
    };
    let (kind, dir) = (config.token_store, config.data_dir.clone());
    let result = tokio::task::spawn_blocking(move || {
        TokenStore::select(kind, &dir).and_then(|s| s.save(&remembered))
    })
    .await;
    if let Ok(Err(e)) = result {
        core.host
            .warn("auth", &format!("could not store the sign-in: {e}"));
    }
}

async fn forget_in_background(config: &Config) {
    let dir = config.data_dir.clone();
    let _ = tokio::task::spawn_blocking(move || delete_everywhere(&dir)).await;
}

/// Makes a finished sign-in current, unless it was superseded meanwhile, and starts the
/// contact sync loop.
fn install(
    core: &Arc<Core>,
    config: &Config,
    signed_in: SignedIn,
    cancel: &CancellationToken,
) -> bool {
    let mut inner = core.lock();
    if inner.generation != config.generation || inner.shut_down {
        return false;
    }
    if !inner.mailbox.upn.is_empty()
        && !inner
            .mailbox
            .upn
            .eq_ignore_ascii_case(&signed_in.me.user_principal_name)
    {
        // Another account: its contacts are not this one's.
        inner.mailbox = Arc::new(crate::sync::Mailbox::default());
        core.directory
            .replace(crate::directory::Index::new(Vec::new(), ""));
    }
    *lock(&config.tokens) = Some(signed_in.tokens);
    if let Some(engine) = inner.engine.as_mut() {
        let (sender, requests) = tokio::sync::mpsc::unbounded_channel();
        engine.contacts = Some(sender);
        let parts = crate::contacts::LoopParts {
            http: config.http.clone(),
            tokens: config.tokens.clone(),
            refresh_now: engine.refresh_now.clone(),
            requests,
            cancel: cancel.clone(),
            generation: config.generation,
        };
        engine
            .runtime
            .spawn(crate::contacts::run_loop(core.clone(), parts));
    }
    core.host.info(
        "auth",
        &format!("signed in as {}", signed_in.me.user_principal_name),
    );
    inner.account = Some(signed_in.me);
    inner.auth = AuthPhase::Active;
    inner.last_error = None;
    inner.notified_sign_in_required = false;
    if let Some(stale) = core.update_presence(&mut inner) {
        stale.stop();
    }
    core.report(&mut inner);
    true
}

fn set_phase(core: &Arc<Core>, config: &Config, phase: AuthPhase, error: Option<String>) {
    let mut inner = core.lock();
    if inner.generation != config.generation || inner.shut_down {
        return;
    }
    inner.auth = phase;
    if error.is_some() {
        inner.last_error = error;
    }
    core.report(&mut inner);
}

/// Microsoft wants the user to sign in: one calm notification, then wait for `sign_in`.
fn needs_sign_in(core: &Arc<Core>, config: &Config, reason: String) {
    let mut inner = core.lock();
    if inner.generation != config.generation || inner.shut_down {
        return;
    }
    *lock(&config.tokens) = None;
    inner.account = None;
    inner.auth = AuthPhase::SignInRequired;
    inner.last_error = Some(reason.clone());
    if !inner.notified_sign_in_required {
        inner.notified_sign_in_required = true;
        core.host.notify(
            "sign_in_required",
            &format!("Please sign in to Microsoft 365 again. {reason}"),
        );
    }
    core.host
        .warn("auth", &format!("sign-in required: {reason}"));
    core.report(&mut inner);
}

/// Shortest time between a renewal and one forced by a 401 (at most 6 a minute, whatever the
/// presence poll rate).
const MIN_FORCED_RENEWAL_GAP: Duration = Duration::from_secs(10);

/// Refreshes the access token before it expires, for as long as the session lives.
async fn keep_fresh(core: &Arc<Core>, config: &Config) {
    let mut backoff = Duration::from_secs(5);
    let mut last_renewal: Option<Instant> = None;
    loop {
        let (due, source, refresh) = {
            let tokens = lock(&config.tokens);
            let Some(t) = tokens.as_ref() else { return };
            (
                t.expires_at,
                t.source.clone(),
                t.refresh
                    .as_ref()
                    .map(|r| SecretString::from(r.expose_secret().to_owned())),
            )
        };
        let refresh_now = core
            .lock()
            .engine
            .as_ref()
            .map(|e| e.refresh_now.clone())
            .unwrap_or_default();
        let woken = tokio::select! {
            _ = tokio::time::sleep_until(due.into()) => false,
            _ = refresh_now.notified() => true,
        };
        // Woken by a 401 right after a renewal: Graph refuses fresh tokens for another reason
        // (or several requests saw the old one); never renew at the rate of the 401s.
        if let Some(earliest) = last_renewal
            .map(|at| at + MIN_FORCED_RENEWAL_GAP)
            .filter(|&earliest| woken && Instant::now() < earliest)
        {
            tokio::time::sleep_until(earliest.min(due).into()).await;
        }
        let renewed = match (&source, refresh) {
            (TokenSource::Own, Some(refresh)) => {
                match discover(&config.http, &config.authority).await {
                    Ok(endpoints) => flows::refresh(
                        &config.http,
                        &endpoints,
                        &config.client_id,
                        &refresh,
                        &config.scopes,
                    )
                    .await
                    .map(|g| (g, TokenSource::Own)),
                    Err(e) => Err(e),
                }
            }
            (TokenSource::Host { .. }, _) | (TokenSource::Own, None) => {
                let host = core.host.clone();
                let scopes = config.scopes.clone();
                match tokio::task::spawn_blocking(move || host.sso_token(&scopes)).await {
                    Ok(Some(t)) => Ok((
                        Granted {
                            access: SecretString::from(t.access_token.into_string()),
                            expires_in: Some(Duration::from_secs(t.expires_in_s)),
                            refresh: None,
                        },
                        TokenSource::Host {
                            client_id: t.client_id.into_string(),
                        },
                    )),
                    _ => Err(AuthError::InteractionRequired(
                        "Contact Desktop's Microsoft 365 login ended".to_owned(),
                    )),
                }
            }
        };
        match renewed {
            Ok((granted, source)) => {
                backoff = Duration::from_secs(5);
                last_renewal = Some(Instant::now());
                let rotated = granted
                    .refresh
                    .as_ref()
                    .map(|r| SecretString::from(r.expose_secret().to_owned()));
                {
                    let inner = core.lock();
                    if inner.generation != config.generation {
                        return;
                    }
                    *lock(&config.tokens) = Some(Tokens {
                        access: granted.access,
                        expires_at: Instant::now() + auth::usable_for(granted.expires_in),
                        refresh: granted.refresh,
                        source,
                    });
                }
                if let Some(rotated) = rotated {
                    let upn = core
                        .lock()
                        .account
                        .as_ref()
                        .map(|a| a.user_principal_name.clone())
                        .unwrap_or_default();
                    save_remembered(core, config, &rotated, upn).await;
                }
                core.host.debug("auth", "access token refreshed");
            }
            Err(AuthError::InteractionRequired(reason)) => {
                forget_in_background(config).await;
                needs_sign_in(core, config, reason);
                return;
            }
            Err(e) => {
                core.host.warn(
                    "auth",
                    &format!("refresh failed: {e}; retrying in {} s", backoff.as_secs()),
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                let mut tokens = lock(&config.tokens);
                if let Some(t) = tokens.as_mut() {
                    t.expires_at = Instant::now();
                }
            }
        }
    }
}
