//! Test control: in process through [`Control`], over HTTP under `/_emulator/`.
//!
//! HTTP routes (JSON in, JSON out; errors are `{"error": "..."}` with 400 or 404):
//! `GET /_emulator/` (summary), `POST reset`, `POST sign-in-user {"upn"}`,
//! `POST tokens/revoke {"upn"}`, `POST tokens/expire-refresh {"upn"}`,
//! `POST tokens/expire-access {"upn"}`,
//! `POST tokens/mint {"upn","client_id","scopes":[..],"expires_in"?}` →
//! `{"access_token","client_id","expires_in"}`, `POST device/approve {"user_code"}`,
//! `POST device/decline {"user_code"}`, `POST clock/advance {"seconds"}`,
//! `POST clock/skew {"seconds"}` (signed),
//! `POST faults {FaultRule}`, `DELETE faults`, `GET requests`, `DELETE requests`.
//! Contacts (see `control_contacts.rs`): `POST contacts`, `PATCH contacts/{id}`,
//! `DELETE contacts/{id}`, `POST contacts/expire-delta`, `POST contacts/seed`.
//! Directory (see `control_directory.rs`): `POST users`, `PATCH users/{id}`,
//! `DELETE users/{id}` (`?permanent=true`), `POST users/expire-delta`.
//! Presence (see `control_presence.rs`): `POST presence/teams`, `GET presence/{upn}`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::faults::{FaultRule, rule_from_json};
use crate::identity::decide_device;
use crate::request_log::RequestLogEntry;
use crate::state::{Shared, World};

/// What a control operation can refuse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlError {
    /// No seeded user with this UPN (or object id).
    UnknownUser(String),
    /// No pending device code with this user code, or it expired or was used.
    DeviceCode(String),
    /// A fault rule that cannot apply (e.g. a non-error status).
    InvalidFault(String),
    /// Arguments the operation cannot use (unknown client id or scope, bad contact JSON, ...).
    InvalidRequest(String),
    /// No such contact or contact folder.
    NotFound(String),
}

impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlError::UnknownUser(u) => write!(f, "no seeded user '{u}'"),
            ControlError::DeviceCode(m) => f.write_str(m),
            ControlError::InvalidFault(m) => write!(f, "invalid fault: {m}"),
            ControlError::InvalidRequest(m) => f.write_str(m),
            ControlError::NotFound(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ControlError {}

/// In-process control of a running emulator. Cheap to clone; thread-safe; every method is
/// synchronous and returns at once.
#[derive(Clone, Debug)]
pub struct Control {
    pub(crate) shared: Arc<Shared>,
}

impl Control {
    pub(crate) fn new(shared: Arc<Shared>) -> Control {
        Control { shared }
    }

    pub(crate) fn user_id(w: &World, upn: &str) -> Result<String, ControlError> {
        w.tenant
            .user(upn)
            .map(|u| u.profile.id.clone())
            .ok_or_else(|| ControlError::UnknownUser(upn.to_string()))
    }

    /// Back to the seed: tenant data, sign-in user (Adele), no grants or consents, no faults,
    /// empty request log, clock at real time.
    pub fn reset(&self) {
        *self.shared.world() = World::seeded(&self.shared.config);
        self.shared.clock.reset();
    }

    /// The seeded user (UPN or object id) who signs in at the next authorize request or device
    /// code approval.
    pub fn set_sign_in_user(&self, upn: &str) -> Result<(), ControlError> {
        let mut w = self.shared.world();
        w.sign_in_user = Self::user_id(&w, upn)?;
        Ok(())
    }

    /// Revokes every refresh token of the user issued until now: the next refresh answers
    /// `invalid_grant` AADSTS50173. Access tokens stay valid until they expire (as with
    /// Microsoft, without continuous access evaluation). Returns how many live tokens were hit.
    pub fn revoke_refresh_tokens(&self, upn: &str) -> Result<usize, ControlError> {
        let now = self.shared.now();
        let mut w = self.shared.world();
        let id = Self::user_id(&w, upn)?;
        Ok(w.grants.revoke_user(&id, now))
    }

    /// Makes all of the user's refresh tokens expired by inactivity: the next refresh answers
    /// `invalid_grant` AADSTS700082. Returns how many.
    pub fn expire_refresh_tokens(&self, upn: &str) -> Result<usize, ControlError> {
        let now = self.shared.now();
        let mut w = self.shared.world();
        let id = Self::user_id(&w, upn)?;
        Ok(w.grants.expire_refresh(&id, now))
    }

    /// Makes all of the user's access tokens expired now: Graph answers 401. Returns how many.
    pub fn expire_access_tokens(&self, upn: &str) -> Result<usize, ControlError> {
        let now = self.shared.now();
        let mut w = self.shared.world();
        let id = Self::user_id(&w, upn)?;
        Ok(w.grants.expire_access(&id, now))
    }

    /// Approves the pending device code with this user code, as the current sign-in user.
    pub fn approve_device_code(&self, user_code: &str) -> Result<(), ControlError> {
        let now = self.shared.now();
        let mut w = self.shared.world();
        let user = w.sign_in_user.clone();
        decide_device(&mut w, user_code, Some(user), now).map_err(ControlError::DeviceCode)
    }

    /// Declines the pending device code with this user code (`authorization_declined`).
    pub fn decline_device_code(&self, user_code: &str) -> Result<(), ControlError> {
        let now = self.shared.now();
        let mut w = self.shared.world();
        decide_device(&mut w, user_code, None, now).map_err(ControlError::DeviceCode)
    }

    /// Issues a Graph access token for the user (UPN or object id) and the registered app
    /// `client_id`, exactly as the token endpoint would (same format, stored the same way, valid
    /// on Graph until `lifetime_secs` have passed on the emulator clock). The scopes are checked
    /// and canonicalized like a token request's `scope` (short or
    /// `https://graph.microsoft.com/`-qualified names, or `.default`); OpenID scopes are
    /// ignored. The user's consent for the app is recorded (as a sign-in would), but the token
    /// carries exactly the requested Graph permissions, so tests can mint narrow tokens.
    ///
    /// With [`crate::tenant::HOST_CLIENT_ID`] this stands in for Contact Desktop's own
    /// "Login with Microsoft 365" (the host's SSO token).
    pub fn mint_access_token(
        &self,
        upn: &str,
        client_id: &str,
        scopes: &[&str],
        lifetime_secs: u64,
    ) -> Result<String, ControlError> {
        let now = self.shared.now();
        let mut w = self.shared.world();
        let user_id = Self::user_id(&w, upn)?;
        let app = w.tenant.app(client_id).cloned().ok_or_else(|| {
            ControlError::InvalidRequest(format!("no registered application '{client_id}'"))
        })?;
        let requested = crate::scopes::Requested::parse(&scopes.join(" "), &app, "organizations")
            .map_err(|e| ControlError::InvalidRequest(e.headline()))?;
        if requested.graph.is_empty() {
            return Err(ControlError::InvalidRequest(
                "no Microsoft Graph permission among the scopes".to_string(),
            ));
        }
        w.grants.consent(&user_id, &app.client_id, &requested.graph);
        let lifetime = i64::try_from(lifetime_secs).unwrap_or(i64::MAX / 2);
        Ok(w.grants.issue_access(
            &user_id,
            &app.client_id,
            requested.graph,
            now + time::Duration::seconds(lifetime),
        ))
    }

    /// Moves the emulator clock forward. Every expiry uses this clock.
    pub fn advance_clock(&self, seconds: u64) {
        self.shared.clock.advance(seconds);
    }

    /// Moves the emulator clock by `seconds`, forward or (negative) back: a server whose clock
    /// differs from the client's (clock skew). Every expiry, timestamp and the `Date` header
    /// of Graph and identity-platform responses follow it.
    pub fn skew_clock(&self, seconds: i64) {
        self.shared.clock.shift(seconds);
    }

    /// The emulator's current time.
    pub fn now(&self) -> OffsetDateTime {
        self.shared.now()
    }

    /// Adds a fault rule (applied to the next `count` matching requests, after rules added
    /// earlier that match the same request have been used up).
    pub fn inject_fault(&self, rule: FaultRule) -> Result<(), ControlError> {
        rule.fault.validate().map_err(ControlError::InvalidFault)?;
        if rule.count > 0 {
            self.shared.world().faults.push(rule);
        }
        Ok(())
    }

    /// Removes every pending fault rule.
    pub fn clear_faults(&self) {
        self.shared.world().faults.clear();
    }

    /// Every access and refresh token the identity platform handed out (and every token
    /// minted with [`mint_access_token`](Self::mint_access_token)), oldest first, in clear: for
    /// tests that check a client never leaks one (in logs, files, errors, state). Not offered
    /// over HTTP.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.shared.world().grants.issued.all()
    }

    /// The request log (oldest first), secrets redacted.
    pub fn requests(&self) -> Vec<RequestLogEntry> {
        self.shared.world().log.clone()
    }

    /// Empties the request log.
    pub fn clear_requests(&self) {
        self.shared.world().log.clear();
    }

    fn summary(&self) -> Value {
        let w = self.shared.world();
        let sign_in = w
            .tenant
            .user_by_id(&w.sign_in_user)
            .map(|u| u.profile.user_principal_name.clone());
        json!({
            "base_url": self.shared.base,
            "authority": format!("{}/organizations/v2.0", self.shared.base),
            "graph": self.shared.graph_url(),
            "tenant_id": w.tenant.id,
            "tenant_domain": w.tenant.domain,
            "client_id": crate::tenant::PLUGIN_CLIENT_ID,
            "host_client_id": crate::tenant::HOST_CLIENT_ID,
            "sign_in_user": sign_in,
            "now": crate::clock::rfc3339(self.shared.now()),
            "users": w.tenant.users.iter().map(|u| json!({
                "id": u.profile.id,
                "userPrincipalName": u.profile.user_principal_name,
                "displayName": u.profile.display_name,
            })).collect::<Vec<_>>(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP

pub(crate) type Sh = State<Arc<Shared>>;

/// Control routes (nested under `/_emulator`).
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/", get(summary))
        .route("/reset", post(reset))
        .route("/sign-in-user", post(sign_in_user))
        .route("/tokens/revoke", post(revoke))
        .route("/tokens/expire-refresh", post(expire_refresh))
        .route("/tokens/expire-access", post(expire_access))
        .route("/tokens/mint", post(mint))
        .route("/device/approve", post(device_approve))
        .route("/device/decline", post(device_decline))
        .route("/clock/advance", post(clock_advance))
        .route("/clock/skew", post(clock_skew))
        .route("/faults", post(add_fault).delete(clear_faults))
        .route("/requests", get(requests).delete(clear_requests))
        .merge(crate::control_contacts::routes())
        .merge(crate::control_directory::routes())
        .merge(crate::control_presence::routes())
}

pub(crate) fn control(sh: &Arc<Shared>) -> Control {
    Control::new(sh.clone())
}

pub(crate) fn bad(status: StatusCode, msg: impl std::fmt::Display) -> Response {
    (status, Json(json!({"error": msg.to_string()}))).into_response()
}

pub(crate) fn reply(r: Result<Value, ControlError>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e @ (ControlError::DeviceCode(_) | ControlError::NotFound(_))) => {
            bad(StatusCode::NOT_FOUND, e)
        }
        Err(e) => bad(StatusCode::BAD_REQUEST, e),
    }
}

/// Parses a JSON body, answering 400 for anything else.
pub(crate) fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Box<Response>> {
    serde_json::from_slice(body)
        .map_err(|e| Box::new(bad(StatusCode::BAD_REQUEST, format!("bad JSON body: {e}"))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Upn {
    upn: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MintBody {
    upn: String,
    client_id: String,
    scopes: Vec<String>,
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserCode {
    user_code: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Seconds {
    seconds: u64,
}

pub(crate) async fn summary(State(sh): Sh) -> Response {
    Json(control(&sh).summary()).into_response()
}

async fn reset(State(sh): Sh) -> Response {
    control(&sh).reset();
    Json(json!({"ok": true})).into_response()
}

async fn sign_in_user(State(sh): Sh, body: axum::body::Bytes) -> Response {
    match parse::<Upn>(&body) {
        Ok(b) => reply(
            control(&sh)
                .set_sign_in_user(&b.upn)
                .map(|_| json!({"ok": true})),
        ),
        Err(r) => *r,
    }
}

async fn revoke(State(sh): Sh, body: axum::body::Bytes) -> Response {
    match parse::<Upn>(&body) {
        Ok(b) => reply(
            control(&sh)
                .revoke_refresh_tokens(&b.upn)
                .map(|n| json!({"ok": true, "tokens": n})),
        ),
        Err(r) => *r,
    }
}

async fn expire_refresh(State(sh): Sh, body: axum::body::Bytes) -> Response {
    match parse::<Upn>(&body) {
        Ok(b) => reply(
            control(&sh)
                .expire_refresh_tokens(&b.upn)
                .map(|n| json!({"ok": true, "tokens": n})),
        ),
        Err(r) => *r,
    }
}

async fn expire_access(State(sh): Sh, body: axum::body::Bytes) -> Response {
    match parse::<Upn>(&body) {
        Ok(b) => reply(
            control(&sh)
                .expire_access_tokens(&b.upn)
                .map(|n| json!({"ok": true, "tokens": n})),
        ),
        Err(r) => *r,
    }
}

async fn device_approve(State(sh): Sh, body: axum::body::Bytes) -> Response {
    match parse::<UserCode>(&body) {
        Ok(b) => reply(
            control(&sh)
                .approve_device_code(&b.user_code)
                .map(|_| json!({"ok": true})),
        ),
        Err(r) => *r,
    }
}

async fn device_decline(State(sh): Sh, body: axum::body::Bytes) -> Response {
    match parse::<UserCode>(&body) {
        Ok(b) => reply(
            control(&sh)
                .decline_device_code(&b.user_code)
                .map(|_| json!({"ok": true})),
        ),
        Err(r) => *r,
    }
}

async fn clock_advance(State(sh): Sh, body: axum::body::Bytes) -> Response {
    match parse::<Seconds>(&body) {
        Ok(b) => {
            let c = control(&sh);
            c.advance_clock(b.seconds);
            Json(json!({"ok": true, "now": crate::clock::rfc3339(c.now())})).into_response()
        }
        Err(r) => *r,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignedSeconds {
    seconds: i64,
}

async fn clock_skew(State(sh): Sh, body: axum::body::Bytes) -> Response {
    match parse::<SignedSeconds>(&body) {
        Ok(b) => {
            let c = control(&sh);
            c.skew_clock(b.seconds);
            Json(json!({"ok": true, "now": crate::clock::rfc3339(c.now())})).into_response()
        }
        Err(r) => *r,
    }
}

async fn add_fault(State(sh): Sh, body: axum::body::Bytes) -> Response {
    let v: Value = match parse(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    match rule_from_json(v) {
        Ok(rule) => reply(control(&sh).inject_fault(rule).map(|_| json!({"ok": true}))),
        Err(e) => bad(StatusCode::BAD_REQUEST, ControlError::InvalidFault(e)),
    }
}

async fn clear_faults(State(sh): Sh) -> Response {
    control(&sh).clear_faults();
    Json(json!({"ok": true})).into_response()
}

async fn requests(State(sh): Sh) -> Response {
    Json(control(&sh).requests()).into_response()
}

async fn clear_requests(State(sh): Sh) -> Response {
    control(&sh).clear_requests();
    Json(json!({"ok": true})).into_response()
}

async fn mint(State(sh): Sh, body: axum::body::Bytes) -> Response {
    let b = match parse::<MintBody>(&body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let expires_in = b.expires_in.unwrap_or(sh.config.access_token_lifetime_secs);
    let scopes: Vec<&str> = b.scopes.iter().map(String::as_str).collect();
    let client_id = sh
        .world()
        .tenant
        .app(&b.client_id)
        .map(|a| a.client_id.clone())
        .unwrap_or(b.client_id.clone());
    reply(
        control(&sh)
            .mint_access_token(&b.upn, &client_id, &scopes, expires_in)
            .map(|t| json!({"access_token": t, "client_id": client_id, "expires_in": expires_in})),
    )
}
