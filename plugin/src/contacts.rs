//! Keeping the contact index current: warm start from the snapshot, the sync loop (periodic and
//! on demand), installing each complete result, and telling the host about callers that became
//! known while the phone rang.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use host_api::{ErrorCode, IntegrationError, SyncReport};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::{
    directory::{Index, LookupOptions},
    graph::{Graph, RetryPolicy},
    integration::Core,
    session::TokenCell,
    snapshot,
    sync::{self, Mailbox, SyncError, SyncRequest},
};

/// Someone waiting for the next complete sync (the `sync` op).
pub type Waiter = std::sync::mpsc::Sender<Result<SyncReport, IntegrationError>>;

/// The host extension operation that receives sync progress:
/// `{"folders_done": n, "folders": n, "items": n}`.
pub const SYNC_PROGRESS_OP: &str = "sync.progress";

/// A caller unknown when the call was answered is looked up again for this long.
pub const LATE_CALLER_WINDOW: Duration = Duration::from_secs(60);
const MAX_PENDING_CALLS: usize = 64;
/// Longest call id or number remembered for a late caller (longer ones are not remembered:
/// they are bad input, and 64 of them must not hold megabytes).
const MAX_PENDING_FIELD: usize = 256;

/// Calls still waiting for a name.
#[derive(Default)]
pub struct PendingCalls(Mutex<VecDeque<(String, String, Instant)>>);

impl PendingCalls {
    /// Remembers an unanswered call.
    pub fn push(&self, call_id: &str, number: &str) {
        if call_id.is_empty()
            || call_id.len() > MAX_PENDING_FIELD
            || number.trim().is_empty()
            || number.len() > MAX_PENDING_FIELD
        {
            return;
        }
        let mut q = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if q.len() >= MAX_PENDING_CALLS {
            q.pop_front();
        }
        q.push_back((call_id.to_owned(), number.to_owned(), Instant::now()));
    }

    fn take_recent(&self) -> Vec<(String, String)> {
        let mut q = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        q.retain(|(_, _, at)| at.elapsed() < LATE_CALLER_WINDOW);
        q.iter().map(|(c, n, _)| (c.clone(), n.clone())).collect()
    }

    fn resolved(&self, call_id: &str) {
        let mut q = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        q.retain(|(c, _, _)| c != call_id);
    }
}

/// Builds the index the calls and searches are answered from (sharing the mailbox's records).
pub fn build_index(mailbox: &Mailbox, region: &str) -> Index {
    let (records, sources) = mailbox.indexed();
    Index::from_records(records, sources, region)
}

/// Installs `mailbox` (index first, so calls see it at once) and reports late callers; returns
/// the index installed.
pub(crate) async fn install(core: &Arc<Core>, mailbox: Mailbox) -> Option<Arc<Index>> {
    install_with(core, mailbox, None).await
}

/// [`install`], then the snapshot written with the new index (when there is a data folder), so
/// that a restart starts from exactly what answers now.
pub(crate) async fn install_and_save(core: &Arc<Core>, mailbox: Mailbox) {
    let data_dir = core.lock().context.data_dir.clone();
    // Nothing is written for nobody (a rebuild while signed out).
    let wanted = !data_dir.as_os_str().is_empty() && !mailbox.upn.is_empty();
    let to_save = wanted.then(|| mailbox.clone());
    let index = install(core, mailbox).await;
    let Some(to_save) = to_save else { return };
    // Signed out (or another account) meanwhile: its contacts are not written, and a snapshot
    // written while the sign-out deleted it is deleted again.
    let account_is = |upn: &str| {
        core.lock()
            .account
            .as_ref()
            .is_some_and(|a| a.user_principal_name.eq_ignore_ascii_case(upn))
    };
    if !account_is(&to_save.upn) {
        return;
    }
    let upn = to_save.upn.clone();
    let dir = data_dir.clone();
    let saved =
        tokio::task::spawn_blocking(move || snapshot::save(&dir, &to_save, index.as_deref())).await;
    if let Ok(Err(e)) = saved {
        core.host
            .warn("snapshot", &format!("could not save the snapshot: {e}"));
    }
    if !account_is(&upn) {
        let _ = snapshot::delete(&data_dir);
    }
}

/// [`install`] with the index already built from `mailbox` (read from the snapshot).
async fn install_with(
    core: &Arc<Core>,
    mailbox: Mailbox,
    index: Option<Index>,
) -> Option<Arc<Index>> {
    let region = core.lookup_options().0;
    let mailbox = Arc::new(mailbox);
    let index = match index.filter(|i| i.region() == region.trim()) {
        Some(index) => index,
        None => {
            let for_index = mailbox.clone();
            tokio::task::spawn_blocking(move || build_index(&for_index, &region))
                .await
                .ok()?
        }
    };
    // Held so that no host call frees the old index (see `retire`).
    let old = core.directory.replace(index);
    let installed = core.directory.snapshot();
    {
        let mut inner = core.lock();
        inner.mailbox = mailbox;
        core.report(&mut inner);
    }
    resolve_late_callers(core);
    tokio::spawn(retire(old));
    Some(installed)
}

/// Frees a replaced index here, not on a host thread: a lookup or search that took the old
/// index just before the swap would otherwise drop the last reference and pay for freeing
/// every contact (milliseconds for tens of thousands) inside the host's call. Waits (bounded)
/// until those calls are done, then frees it on a blocking thread.
async fn retire(old: Arc<Index>) {
    let deadline = Instant::now() + Duration::from_secs(1);
    while Arc::strong_count(&old) > 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let _ = tokio::task::spawn_blocking(move || {
        drop(old);
        release_freed_memory();
    })
    .await;
}

/// Gives the memory freed by a sync and an index build back to the system. glibc's allocator
/// keeps freed memory in its arenas for later use, so without this the process would go on
/// holding some of the transient buffers of the last sync and build (measured after a
/// 100,000-contact sync: 995 → 930 bytes per contact). Elsewhere this does nothing.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only returns free memory of the C allocator to the system; it is
    // thread-safe and touches no memory in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Tells the host about callers that became known (within the window).
fn resolve_late_callers(core: &Arc<Core>) {
    let (region, prefixes) = core.lookup_options();
    let options = LookupOptions {
        region: &region,
        outside_line_prefixes: &prefixes,
    };
    for (call_id, number) in core.pending_calls.take_recent() {
        if let Some(caller) = core.directory.lookup(&number, &options) {
            core.pending_calls.resolved(&call_id);
            core.host.update_caller(&call_id, caller);
        }
    }
}

/// Answers calls from the snapshot before any network traffic.
pub(crate) async fn warm_start(core: &Arc<Core>) {
    let dir = core.lock().context.data_dir.clone();
    if dir.as_os_str().is_empty() {
        return;
    }
    let region = core.lookup_options().0;
    let loaded = tokio::task::spawn_blocking(move || snapshot::load(&dir, &region)).await;
    let Ok((loaded, note)) = loaded else { return };
    if let Some(note) = note {
        core.host.warn("snapshot", &note);
    }
    if let Some(snapshot::Loaded {
        mut mailbox,
        mut index,
    }) = loaded
    {
        // Colleagues of a snapshot written while the directory setting was on are not wanted
        // now (the setting was switched off since, and the snapshot could not be rewritten).
        let directory = core.lock().settings.directory;
        if !directory && mailbox.has_directory() {
            mailbox.drop_directory();
            index = None;
        }
        let Some(installed) = install_with(core, mailbox, index).await else {
            return;
        };
        let n = installed.len();
        core.host.info(
            "snapshot",
            &format!("answering from the snapshot: {n} entries"),
        );
    }
}

/// What the sync loop needs from the engine.
pub(crate) struct LoopParts {
    pub(crate) http: reqwest::Client,
    pub(crate) tokens: TokenCell,
    pub(crate) refresh_now: Arc<tokio::sync::Notify>,
    pub(crate) requests: mpsc::UnboundedReceiver<Waiter>,
    pub(crate) cancel: CancellationToken,
    pub(crate) generation: u64,
}

/// Syncs at once, then every `sync_interval_s`, and whenever someone asks; each request is
/// answered by a sync that started after it arrived.
pub(crate) async fn run_loop(core: Arc<Core>, mut parts: LoopParts) {
    let limiter = Arc::new(Semaphore::new(sync::MAX_IN_FLIGHT));
    let mut waiters: Vec<Waiter> = Vec::new();
    let mut next = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = parts.cancel.cancelled() => return,
            _ = tokio::time::sleep_until(next) => {}
            w = parts.requests.recv() => match w {
                Some(w) => waiters.push(w),
                None => return,
            },
        }
        while let Ok(w) = parts.requests.try_recv() {
            waiters.push(w);
        }
        let result = run_once(&core, &parts, &limiter).await;
        if core.lock().generation != parts.generation {
            return;
        }
        let interval = Duration::from_secs(core.lock().settings.sync_interval_s);
        next = tokio::time::Instant::now() + interval;
        let reply = match result {
            Ok(report) => Ok(report),
            Err(e) => {
                core.host.warn("sync", &format!("contact sync failed: {e}"));
                {
                    let mut inner = core.lock();
                    // Signed out meanwhile (a refused refresh): the state keeps saying why.
                    if inner.account.is_some() {
                        inner.last_error = Some(format!("contact sync failed: {e}"));
                        core.report(&mut inner);
                    }
                }
                // Retry sooner than the interval after a failure.
                next = tokio::time::Instant::now() + interval.min(Duration::from_secs(60));
                Err(IntegrationError::new(ErrorCode::SYNC_FAILED, e.to_string()))
            }
        };
        for w in waiters.drain(..) {
            let _ = w.send(reply.clone());
        }
    }
}

async fn run_once(
    core: &Arc<Core>,
    parts: &LoopParts,
    limiter: &Arc<Semaphore>,
) -> Result<SyncReport, SyncError> {
    let (graph_base, directory, previous, upn) = {
        let inner = core.lock();
        (
            inner.settings.graph.clone(),
            inner.settings.directory,
            inner.mailbox.clone(),
            inner
                .account
                .as_ref()
                .map(|a| a.user_principal_name.clone())
                .unwrap_or_default(),
        )
    };
    let graph = Graph::new(parts.http.clone(), &graph_base);
    let policy = RetryPolicy::default();
    // A snapshot of another account is never reused.
    let previous = if previous.upn.eq_ignore_ascii_case(&upn) {
        (*previous).clone()
    } else {
        Mailbox {
            upn: upn.clone(),
            ..Default::default()
        }
    };
    let mut attempt = 0;
    let mut synced = loop {
        let token = current_token(&parts.tokens)
            .ok_or_else(|| SyncError::Failed("not signed in".into()))?;
        let host = core.host.clone();
        let request = SyncRequest {
            graph: &graph,
            token: &token,
            directory,
            limiter,
            policy: &policy,
            progress: Arc::new(move |p: sync::Progress| {
                // Host extension `sync.progress` (host-api 1.0 growth path): a host that does
                // not know it answers `unsupported`, which changes nothing.
                let payload = format!(
                    r#"{{"folders_done":{},"folders":{},"items":{}}}"#,
                    p.folders_done, p.folders, p.items
                );
                let _ = host.extension(SYNC_PROGRESS_OP, &payload);
            }),
        };
        match sync::sync(&request, &previous).await {
            Err(SyncError::Unauthorized(m)) if attempt == 0 => {
                attempt += 1;
                core.host.info(
                    "sync",
                    &format!("Graph refused the token ({m}); refreshing"),
                );
                wait_for_new_token(parts, &token).await;
            }
            other => break other?,
        }
    };
    synced.upn = upn;
    let changes = sync::diff(&previous, &synced);
    let contacts = synced.len() as u64;
    install_and_save(core, synced).await;
    {
        let mut inner = core.lock();
        inner.last_error = None;
        core.report(&mut inner);
    }
    core.host.info(
        "sync",
        &format!(
            "contacts synced: {contacts} entries (+{} ~{} -{})",
            changes.added, changes.updated, changes.removed
        ),
    );
    Ok(SyncReport {
        contacts,
        added: changes.added,
        updated: changes.updated,
        removed: changes.removed,
        extensions: Default::default(),
    })
}

fn current_token(tokens: &TokenCell) -> Option<SecretString> {
    let t = tokens
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    t.as_ref()
        .map(|t| SecretString::from(t.access.expose_secret().to_owned()))
}

/// Asks the refresher for a new token and waits (bounded) until one differs from `old`, or
/// until there is none (the refresh was refused: sign-in required).
async fn wait_for_new_token(parts: &LoopParts, old: &SecretString) {
    parts.refresh_now.notify_one();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        match current_token(&parts.tokens) {
            Some(t) if t.expose_secret() == old.expose_secret() => {}
            _ => return,
        }
    }
}
