//! The presence task: one loop that polls the user's presence, writes Contact's changes to
//! Teams at once, keeps our writes alive, backs off when Graph asks, and clears what it set on
//! the way out. All decisions are the [`PresenceMachine`]'s; this module does the I/O.
//!
//! - One request at a time: the loop awaits each request before the next (reads, writes,
//!   renewals alike), so at most one is in flight.
//! - A Contact status preempts the poll sleep and is written at once. Statuses that are
//!   already queued are fed to the machine first, so the writes go to the latest one.
//! - 429 (and 503 with `Retry-After`) pause every request for `Retry-After`; other 5xx,
//!   time-outs and broken connections pause with exponential back-off and jitter (1 s
//!   doubling up to 60 s). Statuses keep arriving during a pause; after it the machine's
//!   difference between desired and confirmed state is written: the latest state wins, with
//!   no burst of stale writes and no lost update. 401 wakes the sign-in's refresher and waits
//!   for the next poll (the refresher renews the token meanwhile).
//! - The access token is read from the shared cell for every request and never logged.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use host_api::ContactStatus;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::machine::{PresenceMachine, WriteOutcome};
use super::mapping::{Mapping, TeamsWrite, classify};
use crate::auth::TokenSource;
use crate::graph::{GraphError, RetryPolicy};
use crate::host::HostHandle;
use crate::session::TokenCell;

/// Log target.
const TARGET: &str = "presence";
/// The shortest pause after a `Retry-After` of zero.
const MIN_PAUSE: Duration = Duration::from_millis(250);
/// Writes per flush at most (two pending, two renewals, and room to spare).
const MAX_WRITES_PER_FLUSH: usize = 6;

/// The callback told of every successful read (`availability`, `activity`).
pub type OnRead = Box<dyn Fn(&str, &str) + Send + Sync>;

/// Everything the presence task needs, handed over by the integration when presence sync
/// becomes active.
pub struct PresenceParts {
    /// The plugin's HTTP client.
    pub http: reqwest::Client,
    /// Graph base URL, e.g. `https://graph.microsoft.com/v1.0`.
    pub graph_base: String,
    /// The current tokens (read for every request).
    pub tokens: TokenCell,
    /// The user's object id from `/me` (presence paths take it, never the UPN).
    pub user_id: String,
    /// Our app's client id: the `sessionId` of `setPresence`/`clearPresence`. When the token
    /// comes from the host's login, its `TokenSource::Host { client_id }` is used instead.
    pub session_id: String,
    /// `presence_poll_ms`.
    pub poll: Duration,
    /// The host's callbacks.
    pub host: HostHandle,
    /// Every `on_status_change`, in order.
    pub statuses: UnboundedReceiver<ContactStatus>,
    /// The host's status at start.
    pub initial: ContactStatus,
    /// Fires when presence sync stops (switched off, signed out, shutdown).
    pub cancel: CancellationToken,
    /// Called with `availability`, `activity` after every successful read.
    pub on_read: OnRead,
    /// Wakes the sign-in's refresher at once: Graph refused the access token (401).
    pub refresh_now: Arc<Notify>,
}

/// Expiries, renewal times and back-off. [`Timing::default`] holds the product values (see the
/// module documentation of [`crate::presence`]); tests shorten the renewal times.
#[derive(Clone, Debug)]
pub struct Timing {
    /// `expirationDuration` of our "In a call" session (Graph: PT5M..PT4H; spec: ≤ 15 min).
    pub session_expiry: Duration,
    /// Renew the session when it is this old.
    pub session_renew_after: Duration,
    /// `expirationDuration` of our preferred presence.
    pub preferred_expiry: Duration,
    /// Renew the preferred presence when it is this old.
    pub preferred_renew_after: Duration,
    /// Longest time the clean exit may take.
    pub exit_budget: Duration,
    /// Back-off after 5xx and network errors (`attempts` is not used: the loop never gives up).
    pub retry: RetryPolicy,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            session_expiry: Duration::from_secs(5 * 60),
            session_renew_after: Duration::from_secs(3 * 60),
            preferred_expiry: Duration::from_secs(60 * 60),
            preferred_renew_after: Duration::from_secs(45 * 60),
            exit_budget: Duration::from_millis(1500),
            retry: RetryPolicy {
                attempts: u32::MAX,
                base: Duration::from_secs(1),
                max: Duration::from_secs(60),
            },
        }
    }
}

/// Runs presence sync with the product timings until `cancel` fires, then clears our session
/// and our preferred presence (within about 1.5 s) and returns.
pub async fn run(parts: PresenceParts) {
    run_with(parts, Timing::default()).await;
}

/// [`run`] with other timings (tests, benchmarks).
pub async fn run_with(parts: PresenceParts, timing: Timing) {
    let initial = parts.initial;
    Driver::new(parts, timing).run(initial).await;
}

/// ISO 8601 duration as Graph takes it (`PT5M`, `PT1H`, `PT90S`).
///
/// ```
/// # use contact_ms365::presence::driver::iso8601;
/// # use std::time::Duration;
/// assert_eq!(iso8601(Duration::from_secs(300)), "PT5M");
/// assert_eq!(iso8601(Duration::from_secs(3600)), "PT1H");
/// assert_eq!(iso8601(Duration::from_secs(90)), "PT90S");
/// ```
pub fn iso8601(d: Duration) -> String {
    let s = d.as_secs().max(1);
    if s.is_multiple_of(3600) {
        format!("PT{}H", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("PT{}M", s / 60)
    } else {
        format!("PT{s}S")
    }
}

/// The Graph `presence` fields the sync uses.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Presence {
    #[serde(default)]
    availability: Option<String>,
    #[serde(default)]
    activity: Option<String>,
    #[serde(default)]
    out_of_office_settings: Option<OutOfOffice>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OutOfOffice {
    #[serde(default)]
    is_out_of_office: Option<bool>,
}

/// The body of `GET /users/{id}/presence`, as the poll reads it: `availability`, `activity`
/// (empty when missing or null) and `outOfOfficeSettings.isOutOfOffice` (false when missing).
/// Anything but a JSON object whose fields have the right types is malformed. Public for the
/// fuzz targets.
#[doc(hidden)]
pub fn parse_presence(body: &[u8]) -> Result<(String, String, bool), GraphError> {
    let p: Presence = serde_json::from_slice(body)
        .map_err(|e| GraphError::Malformed(format!("presence: {e}")))?;
    Ok((
        p.availability.unwrap_or_default(),
        p.activity.unwrap_or_default(),
        p.out_of_office_settings
            .and_then(|o| o.is_out_of_office)
            .unwrap_or(false),
    ))
}

/// A token and the `sessionId` that goes with it.
struct Credentials {
    token: SecretString,
    session_id: String,
}

/// The presence endpoints of one user.
struct Api {
    http: reqwest::Client,
    base: String,
    user_id: String,
    session_id: String,
    tokens: TokenCell,
}

impl Api {
    /// The current token, if signed in.
    fn credentials(&self) -> Option<Credentials> {
        let cell = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        let tokens = cell.as_ref()?;
        let session_id = match &tokens.source {
            TokenSource::Host { client_id } => client_id.clone(),
            TokenSource::Own => self.session_id.clone(),
        };
        Some(Credentials {
            token: tokens.access.clone(),
            session_id,
        })
    }

    /// `GET /users/{id}/presence`.
    async fn read(&self, token: &SecretString) -> Result<(String, String, bool), GraphError> {
        let url = format!("{}/users/{}/presence", self.base, self.user_id);
        let response = self
            .http
            .get(url)
            .bearer_auth(token.expose_secret())
            .send()
            .await
            .map_err(|e| GraphError::Network(crate::http::describe(&e)))?;
        let body = crate::graph::read(response).await?;
        parse_presence(&body)
    }

    /// `POST /users/{id}/presence/<action>`.
    async fn write(
        &self,
        write: &TeamsWrite,
        credentials: &Credentials,
        timing: &Timing,
    ) -> Result<(), GraphError> {
        let url = format!(
            "{}/users/{}/presence/{}",
            self.base,
            self.user_id,
            write.action()
        );
        let response = self
            .http
            .post(url)
            .bearer_auth(credentials.token.expose_secret())
            .json(&body(write, &credentials.session_id, timing))
            .send()
            .await
            .map_err(|e| GraphError::Network(crate::http::describe(&e)))?;
        crate::graph::read(response).await.map(|_| ())
    }
}

/// The JSON body of a write.
fn body(write: &TeamsWrite, session_id: &str, timing: &Timing) -> Value {
    match *write {
        TeamsWrite::SetSession {
            availability,
            activity,
        } => json!({
            "sessionId": session_id,
            "availability": availability,
            "activity": activity,
            "expirationDuration": iso8601(timing.session_expiry),
        }),
        TeamsWrite::ClearSession => json!({ "sessionId": session_id }),
        TeamsWrite::SetPreferred {
            availability,
            activity,
        } => json!({
            "availability": availability,
            "activity": activity,
            "expirationDuration": iso8601(timing.preferred_expiry),
        }),
        TeamsWrite::ClearPreferred => json!({}),
    }
}

/// How a write ended, for the machine.
fn write_outcome(write: &TeamsWrite, result: &Result<(), GraphError>) -> WriteOutcome {
    match result {
        Ok(()) => WriteOutcome::Applied,
        Err(GraphError::Other(404, _)) if *write == TeamsWrite::ClearSession => {
            WriteOutcome::Applied
        }
        Err(GraphError::Unauthorized(_) | GraphError::Throttled(_)) => WriteOutcome::Deferred,
        Err(GraphError::Server(_) | GraphError::Network(_) | GraphError::Malformed(_)) => {
            WriteOutcome::Unknown
        }
        Err(GraphError::Forbidden(_) | GraphError::Other(..)) => WriteOutcome::Refused,
    }
}

/// What to wait for after a failed request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pause {
    /// Nothing: the failure is final, the loop goes on.
    None,
    /// The next poll (401: the refresher is woken and renews the token meanwhile).
    Poll,
    /// `Retry-After` when given, else exponential back-off.
    Backoff(Option<Duration>),
}

fn pause_for(error: &GraphError) -> Pause {
    match error {
        GraphError::Unauthorized(_) => Pause::Poll,
        GraphError::Throttled(after) => Pause::Backoff(*after),
        GraphError::Server(_) | GraphError::Network(_) | GraphError::Malformed(_) => {
            Pause::Backoff(None)
        }
        GraphError::Forbidden(_) | GraphError::Other(..) => Pause::None,
    }
}

/// Awaits `fut` unless `cancel` fires first.
async fn cancellable<T>(cancel: &CancellationToken, fut: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        biased;
        () = cancel.cancelled() => None,
        v = fut => Some(v),
    }
}

/// The running task's state.
struct Driver {
    api: Api,
    host: HostHandle,
    statuses: UnboundedReceiver<ContactStatus>,
    statuses_open: bool,
    cancel: CancellationToken,
    on_read: OnRead,
    refresh_now: Arc<Notify>,
    poll: Duration,
    timing: Timing,
    machine: PresenceMachine,
    next_poll: Instant,
    /// No request before this (back-off, `Retry-After`, 401).
    hold_until: Option<Instant>,
    failures: u32,
    renew_session_at: Option<Instant>,
    renew_preferred_at: Option<Instant>,
    unlisted_logged: HashSet<(String, String)>,
}

impl Driver {
    fn new(parts: PresenceParts, timing: Timing) -> Self {
        Self {
            api: Api {
                http: parts.http,
                base: parts.graph_base.trim_end_matches('/').to_owned(),
                user_id: parts.user_id,
                session_id: parts.session_id,
                tokens: parts.tokens,
            },
            host: parts.host,
            statuses: parts.statuses,
            statuses_open: true,
            cancel: parts.cancel,
            on_read: parts.on_read,
            refresh_now: parts.refresh_now,
            poll: parts.poll.max(Duration::from_millis(50)),
            timing,
            machine: PresenceMachine::new(),
            next_poll: Instant::now(),
            hold_until: None,
            failures: 0,
            renew_session_at: None,
            renew_preferred_at: None,
            unlisted_logged: HashSet::new(),
        }
    }

    async fn run(mut self, initial: ContactStatus) {
        let writes = self.machine.start(initial);
        self.debug(&format!(
            "presence sync starts; Contact shows {initial}; {} write(s) to Teams",
            writes.len()
        ));
        self.flush().await;
        while !self.cancel.is_cancelled() {
            let wake = self.next_wake();
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => break,
                status = self.statuses.recv(), if self.statuses_open => {
                    self.on_status(status).await;
                }
                () = tokio::time::sleep_until(wake) => self.on_timer().await,
            }
        }
        self.clean_exit().await;
    }

    fn debug(&self, message: &str) {
        self.host.debug(TARGET, message);
    }

    /// When the loop must wake up without a status: the end of a pause, else the next poll or
    /// renewal.
    fn next_wake(&self) -> Instant {
        if let Some(until) = self.hold_until {
            return until;
        }
        [self.renew_session_at, self.renew_preferred_at]
            .into_iter()
            .flatten()
            .fold(self.next_poll, Instant::min)
    }

    async fn on_status(&mut self, status: Option<ContactStatus>) {
        match status {
            Some(status) => self.take_status(status),
            None => {
                self.statuses_open = false;
                return;
            }
        }
        self.drain_statuses();
        if self.hold_until.is_none() {
            self.flush().await;
        }
    }

    fn take_status(&mut self, status: ContactStatus) {
        let writes = self.machine.on_contact_status(status);
        self.debug(&format!(
            "Contact status {status}: {} write(s) to Teams",
            writes.len()
        ));
    }

    /// Feeds the statuses already queued to the machine (the latest wins).
    fn drain_statuses(&mut self) {
        while self.statuses_open {
            match self.statuses.try_recv() {
                Ok(status) => self.take_status(status),
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => break,
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                    self.statuses_open = false;
                }
            }
        }
    }

    async fn on_timer(&mut self) {
        if let Some(until) = self.hold_until {
            if Instant::now() < until {
                return;
            }
            self.hold_until = None;
            self.debug("presence requests resume");
        }
        self.drain_statuses();
        self.flush().await;
        if self.hold_until.is_none() && Instant::now() >= self.next_poll {
            self.read().await;
        }
    }

    /// Writes what the machine asks for, then due renewals, until done or paused.
    async fn flush(&mut self) {
        for _ in 0..MAX_WRITES_PER_FLUSH {
            self.drain_statuses();
            let Some(write) = self.next_write() else {
                return;
            };
            match self.execute(&write).await {
                WriteOutcome::Applied | WriteOutcome::Refused => {}
                WriteOutcome::Deferred | WriteOutcome::Unknown => return,
            }
        }
    }

    fn next_write(&mut self) -> Option<TeamsWrite> {
        match self.machine.pending().first() {
            Some(write) => Some(*write),
            None => self.due_renewal(),
        }
    }

    /// A renewal whose time has come. One that the machine no longer wants (the host left
    /// `in_call` because of Teams, say) is looked at again a poll later.
    fn due_renewal(&mut self) -> Option<TeamsWrite> {
        let now = Instant::now();
        let renewals = self.machine.renewals();
        let recheck = now + self.poll;
        if self.renew_session_at.is_some_and(|at| at <= now) {
            match renewals
                .iter()
                .find(|w| matches!(w, TeamsWrite::SetSession { .. }))
            {
                Some(write) => return Some(*write),
                None => self.renew_session_at = Some(recheck),
            }
        }
        if self.renew_preferred_at.is_some_and(|at| at <= now) {
            match renewals
                .iter()
                .find(|w| matches!(w, TeamsWrite::SetPreferred { .. }))
            {
                Some(write) => return Some(*write),
                None => self.renew_preferred_at = Some(recheck),
            }
        }
        None
    }

    /// One write, its outcome told to the machine.
    async fn execute(&mut self, write: &TeamsWrite) -> WriteOutcome {
        let Some(credentials) = self.api.credentials() else {
            self.debug("not signed in: Teams writes wait for the next poll");
            self.pause(Pause::Poll);
            return WriteOutcome::Deferred;
        };
        let request = self.api.write(write, &credentials, &self.timing);
        let Some(result) = cancellable(&self.cancel, request).await else {
            self.machine.on_write_outcome(write, WriteOutcome::Unknown);
            return WriteOutcome::Unknown;
        };
        let outcome = write_outcome(write, &result);
        self.machine.on_write_outcome(write, outcome);
        match &result {
            Ok(()) => self.debug(&format!("{} done", describe(write))),
            Err(e) => self.debug(&format!("{} failed: {e}", describe(write))),
        }
        match result {
            Ok(()) => {}
            Err(e) => self.pause(pause_for(&e)),
        }
        if outcome == WriteOutcome::Applied {
            self.failures = 0;
            self.rearm(write);
        }
        outcome
    }

    /// Renewal timers after a successful write.
    fn rearm(&mut self, write: &TeamsWrite) {
        let now = Instant::now();
        match write {
            TeamsWrite::SetSession { .. } => {
                self.renew_session_at = Some(now + self.timing.session_renew_after);
            }
            TeamsWrite::ClearSession => self.renew_session_at = None,
            TeamsWrite::SetPreferred { .. } => {
                self.renew_preferred_at = Some(now + self.timing.preferred_renew_after);
            }
            TeamsWrite::ClearPreferred => self.renew_preferred_at = None,
        }
    }

    fn pause(&mut self, pause: Pause) {
        let wait = match pause {
            Pause::None => return,
            Pause::Poll => {
                // A token refused before its expiry (revoked, or expired early): renew it now,
                // not when it was due (which may be an hour away).
                self.refresh_now.notify_one();
                self.poll
            }
            Pause::Backoff(after) => {
                self.failures = self.failures.saturating_add(1);
                after.map_or_else(
                    || self.timing.retry.backoff(self.failures),
                    |d| d.max(MIN_PAUSE),
                )
            }
        };
        self.debug(&format!(
            "presence requests pause for {} ms",
            wait.as_millis()
        ));
        self.hold_until = Some(Instant::now() + wait);
    }

    /// One poll: read, apply to the host when the machine says so.
    async fn read(&mut self) {
        self.next_poll = Instant::now() + self.poll;
        let Some(credentials) = self.api.credentials() else {
            self.debug("not signed in: presence read waits for the next poll");
            return;
        };
        let Some(result) = cancellable(&self.cancel, self.api.read(&credentials.token)).await
        else {
            return;
        };
        match result {
            Ok(presence) => self.apply(presence),
            Err(e) => {
                self.debug(&format!("presence read failed: {e}"));
                self.pause(pause_for(&e));
            }
        }
    }

    fn apply(&mut self, (availability, activity, out_of_office): (String, String, bool)) {
        self.failures = 0;
        (self.on_read)(&availability, &activity);
        self.log_unlisted(&availability, &activity, out_of_office);
        if let Some(status) = self
            .machine
            .on_teams_read(&availability, &activity, out_of_office)
        {
            self.debug(&format!(
                "Teams shows {availability}/{activity}: Contact status {status}"
            ));
            self.host.set_contact_status(status);
        }
    }

    /// Table 1's last row: an unlisted combination is logged once.
    fn log_unlisted(&mut self, availability: &str, activity: &str, out_of_office: bool) {
        if classify(availability, activity, out_of_office) != Mapping::Unlisted {
            return;
        }
        let key = (
            availability.to_ascii_lowercase(),
            activity.to_ascii_lowercase(),
        );
        if self.unlisted_logged.insert(key) {
            self.debug(&format!(
                "Teams presence {availability}/{activity} is not in the mapping: no synchronization"
            ));
        }
    }

    /// Rule 5: clears our session and our preferred presence, bounded by the exit budget.
    async fn clean_exit(&mut self) {
        let writes = self.machine.clean_exit();
        if writes.is_empty() {
            self.debug("presence sync stops; nothing of ours in Teams");
            return;
        }
        let Some(credentials) = self.api.credentials() else {
            self.debug("presence sync stops signed out: Teams keeps our writes until they expire");
            return;
        };
        let deadline = Instant::now() + self.timing.exit_budget;
        for write in writes {
            let request = self.api.write(&write, &credentials, &self.timing);
            let Ok(result) = tokio::time::timeout_at(deadline, request).await else {
                self.debug("presence clean exit ran out of time: the rest expires on its own");
                return;
            };
            self.machine
                .on_write_outcome(&write, write_outcome(&write, &result));
            match result {
                Ok(()) => self.debug(&format!("{} done on exit", describe(&write))),
                Err(e) => self.debug(&format!("{} failed on exit: {e}", describe(&write))),
            }
        }
    }
}

/// A write, for the log.
fn describe(write: &TeamsWrite) -> String {
    match write {
        TeamsWrite::SetSession {
            availability,
            activity,
        }
        | TeamsWrite::SetPreferred {
            availability,
            activity,
        } => format!("{} {availability}/{activity}", write.action()),
        _ => write.action().to_owned(),
    }
}

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;
