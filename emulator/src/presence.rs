//! Microsoft Teams presence (Graph v1.0): the per-user session model and the routes
//! `GET /me/presence`, `GET /users/{id}/presence`, and `POST /users/{id}/presence/`
//! `setPresence`, `clearPresence`, `setUserPreferredPresence`, `clearUserPreferredPresence`
//! (also accepted under `/me/presence/...`).
//!
//! Model (reference §3.3–3.7):
//! - The user's Teams client is a session that exists while the user is signed in to Teams
//!   (default: yes, Available/Available); the control API sets its state or signs it out.
//! - Apps own one session per user, keyed by `sessionId`, which must be the calling app's
//!   client id (the token's app; compared case-insensitively; otherwise 400 `BadRequest`).
//!   Sessions expire after `expirationDuration` (PT5M..PT4H, default PT5M) on the emulator
//!   clock and then no longer count. An `Available` app session fades: after 5 minutes it
//!   reads `AvailableIdle`/`Inactive`, after 10 minutes `Away`/`Away` (unless renewed).
//! - Aggregate: no session → `Offline`/`Offline`; a live preferred presence (with at least
//!   one session) wins; otherwise the session with the highest availability wins, ranked
//!   DoNotDisturb > Busy > BusyIdle > Available > AvailableIdle > BeRightBack > Away > Offline
//!   (ties: the Teams client first, then the most recently set session). With
//!   out-of-office on and an aggregate of `Available`/`Available`, the activity reads
//!   `OutOfOffice`.
//! - `sequenceNumber` grows whenever the aggregate changes (checked at every read).
//!
//! Permissions: reading needs `Presence.Read`, `Presence.Read.All` or `Presence.ReadWrite`
//! for oneself and `Presence.Read.All` for others; writing needs `Presence.ReadWrite` and is
//! only allowed on the signed-in user (403 otherwise). `/users/{id}/presence` needs the object
//! id: a UPN (or any non-GUID) is 400 `BadRequest`; an unknown GUID is 404 `NotFound`.
//! Invalid bodies (missing fields, pairs not allowed, bad durations) are 400 `BadRequest`
//! with Graph's error body. Successful writes answer `200 OK` without a body.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use crate::errors::graph_error;
use crate::grants::AccessToken;
use crate::graph::{authenticate, json_response};
use crate::server::RequestIds;
use crate::state::Shared;

/// Documented availability values.
pub const AVAILABILITY: &[&str] = &[
    "Available",
    "AvailableIdle",
    "Away",
    "BeRightBack",
    "Busy",
    "BusyIdle",
    "DoNotDisturb",
    "Offline",
    "PresenceUnknown",
];

/// Documented activity values.
pub const ACTIVITY: &[&str] = &[
    "Available",
    "Away",
    "BeRightBack",
    "Busy",
    "DoNotDisturb",
    "InACall",
    "InAConferenceCall",
    "Inactive",
    "InAMeeting",
    "Offline",
    "OffWork",
    "OutOfOffice",
    "PresenceUnknown",
    "Presenting",
    "UrgentInterruptionsOnly",
    "Focusing",
];

/// Pairs `setPresence` accepts.
pub const SESSION_PAIRS: &[(&str, &str)] = &[
    ("Available", "Available"),
    ("Busy", "InACall"),
    ("Busy", "InAConferenceCall"),
    ("Away", "Away"),
    ("DoNotDisturb", "Presenting"),
];

/// Pairs `setUserPreferredPresence` accepts.
pub const PREFERRED_PAIRS: &[(&str, &str)] = &[
    ("Available", "Available"),
    ("Busy", "Busy"),
    ("DoNotDisturb", "DoNotDisturb"),
    ("BeRightBack", "BeRightBack"),
    ("Away", "Away"),
    ("Offline", "OffWork"),
];

/// An app's presence session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppSession {
    /// Availability.
    pub availability: String,
    /// Activity.
    pub activity: String,
    /// When it was (last) set.
    pub set_at: OffsetDateTime,
    /// When it expires.
    pub expires_at: OffsetDateTime,
}

/// A user-preferred presence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preferred {
    /// Availability.
    pub availability: String,
    /// Activity.
    pub activity: String,
    /// When it expires.
    pub expires_at: OffsetDateTime,
}

/// One user's presence state.
#[derive(Clone, Debug)]
pub struct PresenceState {
    /// The user is signed in to Teams (the Teams client session exists).
    pub teams_signed_in: bool,
    /// The Teams client's availability.
    pub teams_availability: String,
    /// The Teams client's activity.
    pub teams_activity: String,
    /// App sessions by session id (lower-case).
    pub sessions: BTreeMap<String, AppSession>,
    /// Order in which sessions were last set (for ties).
    pub session_order: Vec<String>,
    /// User-preferred presence.
    pub preferred: Option<Preferred>,
    /// Out-of-office on.
    pub out_of_office: bool,
    /// Out-of-office message.
    pub out_of_office_message: Option<String>,
    /// Version counter.
    pub sequence: u64,
    /// Aggregate at the last read (to bump `sequence`).
    pub last_aggregate: (String, String),
}

impl Default for PresenceState {
    fn default() -> Self {
        PresenceState {
            teams_signed_in: true,
            teams_availability: "Available".into(),
            teams_activity: "Available".into(),
            sessions: BTreeMap::new(),
            session_order: Vec::new(),
            preferred: None,
            out_of_office: false,
            out_of_office_message: None,
            sequence: 1,
            last_aggregate: ("Available".into(), "Available".into()),
        }
    }
}

fn rank(availability: &str) -> u8 {
    match availability {
        "DoNotDisturb" => 8,
        "Busy" => 7,
        "BusyIdle" => 6,
        "Available" => 5,
        "AvailableIdle" => 4,
        "BeRightBack" => 3,
        "Away" => 2,
        "Offline" => 1,
        _ => 0,
    }
}

impl PresenceState {
    /// Drops expired app sessions and preferred presence.
    pub fn expire(&mut self, now: OffsetDateTime) {
        self.sessions.retain(|_, s| now < s.expires_at);
        let live: Vec<String> = self.sessions.keys().cloned().collect();
        self.session_order.retain(|k| live.contains(k));
        if self.preferred.as_ref().is_some_and(|p| now >= p.expires_at) {
            self.preferred = None;
        }
    }

    /// A session's state now (Available fades after 5 and 10 minutes).
    fn session_state(s: &AppSession, now: OffsetDateTime) -> (String, String) {
        if s.availability == "Available" {
            let age = now - s.set_at;
            if age >= Duration::minutes(10) {
                return ("Away".into(), "Away".into());
            }
            if age >= Duration::minutes(5) {
                return ("AvailableIdle".into(), "Inactive".into());
            }
        }
        (s.availability.clone(), s.activity.clone())
    }

    /// Whether any presence session exists.
    pub fn has_session(&self) -> bool {
        self.teams_signed_in || !self.sessions.is_empty()
    }

    /// The aggregated (availability, activity). Call [`PresenceState::expire`] first.
    pub fn aggregate(&self, now: OffsetDateTime) -> (String, String) {
        if !self.has_session() {
            return ("Offline".into(), "Offline".into());
        }
        if let Some(p) = &self.preferred {
            return (p.availability.clone(), p.activity.clone());
        }
        let mut best: Option<(String, String)> = None;
        if self.teams_signed_in {
            best = Some((self.teams_availability.clone(), self.teams_activity.clone()));
        }
        // Most recently set first among equals.
        for key in self.session_order.iter().rev() {
            if let Some(s) = self.sessions.get(key) {
                let st = Self::session_state(s, now);
                if best.as_ref().is_none_or(|b| rank(&st.0) > rank(&b.0)) {
                    best = Some(st);
                }
            }
        }
        let (a, b) = best.unwrap_or(("Offline".into(), "Offline".into()));
        if self.out_of_office && a == "Available" && b == "Available" {
            return (a, "OutOfOffice".into());
        }
        (a, b)
    }

    /// The `presence` resource (expires sessions and bumps `sequenceNumber` as needed).
    pub fn render(&mut self, user_id: &str, now: OffsetDateTime) -> Value {
        self.expire(now);
        let agg = self.aggregate(now);
        if agg != self.last_aggregate {
            self.sequence += 1;
            self.last_aggregate = agg.clone();
        }
        json!({
            "id": user_id,
            "availability": agg.0,
            "activity": agg.1,
            "sequenceNumber": format!("C{:019}", self.sequence),
            "statusMessage": null,
            "outOfOfficeSettings": {
                "message": self.out_of_office_message,
                "isOutOfOffice": self.out_of_office,
            },
            "workLocation": {"workLocationType": "unspecified", "source": "none", "placeId": null},
        })
    }

    /// Sessions and preferred presence, for the control API.
    pub fn detail(&mut self, user_id: &str, now: OffsetDateTime) -> Value {
        let aggregate = self.render(user_id, now);
        let sessions: Vec<Value> = self
            .sessions
            .iter()
            .map(|(id, s)| {
                let (a, b) = Self::session_state(s, now);
                json!({
                    "sessionId": id,
                    "availability": a,
                    "activity": b,
                    "setAvailability": s.availability,
                    "setActivity": s.activity,
                    "expiresDateTime": crate::clock::rfc3339(s.expires_at),
                })
            })
            .collect();
        json!({
            "aggregate": aggregate,
            "teams": {
                "signedIn": self.teams_signed_in,
                "availability": self.teams_availability,
                "activity": self.teams_activity,
            },
            "sessions": sessions,
            "preferred": self.preferred.as_ref().map(|p| json!({
                "availability": p.availability,
                "activity": p.activity,
                "expiresDateTime": crate::clock::rfc3339(p.expires_at),
                "effective": self.has_session(),
            })),
        })
    }
}

/// The documented spelling of a value (case-insensitive match), if it is one.
pub fn canonical(list: &[&'static str], v: &str) -> Option<&'static str> {
    list.iter().find(|x| x.eq_ignore_ascii_case(v)).copied()
}

/// Parses an ISO 8601 duration (`PT5M`, `PT1H30M`, `P1D`, `P1DT2H`, `PT90S`, `P1W`).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim().to_ascii_uppercase();
    let rest = s.strip_prefix('P')?;
    if rest.is_empty() {
        return None;
    }
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) if !t.is_empty() => (d, t),
        Some(_) => return None,
        None => (rest, ""),
    };
    let mut total = 0f64;
    let mut parse = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut num = String::new();
        let mut idx = 0;
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                num.push(c);
            } else {
                let pos = units[idx..].iter().position(|(u, _)| *u == c)?;
                idx += pos + 1;
                let n: f64 = num.parse().ok()?;
                total += n * units[idx - 1].1;
                num.clear();
            }
        }
        num.is_empty().then_some(())
    };
    parse(
        date,
        &[
            ('Y', 365.0 * 86400.0),
            ('M', 30.0 * 86400.0),
            ('W', 7.0 * 86400.0),
            ('D', 86400.0),
        ],
    )?;
    parse(time, &[('H', 3600.0), ('M', 60.0), ('S', 1.0)])?;
    Some(Duration::milliseconds((total * 1000.0) as i64))
}

// ---------------------------------------------------------------------------------------------
// HTTP

type Sh = State<Arc<Shared>>;

/// Presence routes.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1.0/me/presence", get(get_me))
        .route("/v1.0/users/{id}/presence", get(get_user))
        .route("/v1.0/users/{id}/presence/{action}", post(action))
        .route("/v1.0/me/presence/{action}", post(action_me))
}

const READ_SELF: &[&str] = &["Presence.Read", "Presence.Read.All", "Presence.ReadWrite"];

fn err(sh: &Shared, ids: &RequestIds, status: StatusCode, code: &str, msg: &str) -> Response {
    graph_error(ids, sh.now(), status, code, msg)
}

fn bad(sh: &Shared, ids: &RequestIds, msg: &str) -> Response {
    err(sh, ids, StatusCode::BAD_REQUEST, "BadRequest", msg)
}

fn denied(sh: &Shared, ids: &RequestIds) -> Response {
    err(
        sh,
        ids,
        StatusCode::FORBIDDEN,
        "Forbidden",
        "Insufficient privileges to complete the operation.",
    )
}

fn render_for(sh: &Shared, user_id: &str) -> Option<Value> {
    let now = sh.now();
    let mut w = sh.world();
    let u = w.tenant.user_by_id_mut(user_id)?;
    let mut v = u.presence.render(user_id, now);
    v["@odata.context"] = json!(format!(
        "{}/$metadata#users('{user_id}')/presence/$entity",
        sh.graph_url()
    ));
    Some(v)
}

async fn get_me(
    State(sh): Sh,
    Extension(ids): Extension<RequestIds>,
    headers: HeaderMap,
) -> Response {
    let t = match authenticate(&sh, &headers, &ids) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    if !READ_SELF.iter().any(|p| t.scopes.contains(*p)) {
        return denied(&sh, &ids);
    }
    match render_for(&sh, &t.user_id) {
        Some(v) => json_response(v),
        None => err(
            &sh,
            &ids,
            StatusCode::NOT_FOUND,
            "NotFound",
            "User not found.",
        ),
    }
}

/// Resolves `/users/{id}`: object ids only.
fn target(sh: &Shared, ids: &RequestIds, key: &str) -> Result<String, Box<Response>> {
    let Ok(guid) = uuid::Uuid::parse_str(key) else {
        return Err(Box::new(bad(
            sh,
            ids,
            &format!(
                "The user id '{key}' is not a valid object id. Presence takes the user's object id (GUID), not the user principal name."
            ),
        )));
    };
    let id = guid.to_string();
    if sh.world().tenant.user_by_id(&id).is_none() {
        return Err(Box::new(err(
            sh,
            ids,
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("User '{id}' was not found."),
        )));
    }
    Ok(id)
}

async fn get_user(
    State(sh): Sh,
    Path(key): Path<String>,
    Extension(ids): Extension<RequestIds>,
    headers: HeaderMap,
) -> Response {
    let t = match authenticate(&sh, &headers, &ids) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let id = match target(&sh, &ids, &key) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let allowed = if id == t.user_id {
        READ_SELF.iter().any(|p| t.scopes.contains(*p))
    } else {
        t.scopes.contains("Presence.Read.All")
    };
    if !allowed {
        return denied(&sh, &ids);
    }
    match render_for(&sh, &id) {
        Some(v) => json_response(v),
        None => err(
            &sh,
            &ids,
            StatusCode::NOT_FOUND,
            "NotFound",
            "User not found.",
        ),
    }
}

async fn action_me(
    State(sh): Sh,
    Path(action): Path<String>,
    Extension(ids): Extension<RequestIds>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let t = match authenticate(&sh, &headers, &ids) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    write(&sh, &ids, &t, &t.user_id.clone(), &action, &body)
}

async fn action(
    State(sh): Sh,
    Path((key, action)): Path<(String, String)>,
    Extension(ids): Extension<RequestIds>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let t = match authenticate(&sh, &headers, &ids) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let id = match target(&sh, &ids, &key) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    write(&sh, &ids, &t, &id, &action, &body)
}

fn field<'a>(body: &'a Value, name: &str) -> Option<&'a Value> {
    body.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn text<'a>(body: &'a Value, name: &str) -> Option<&'a str> {
    field(body, name).and_then(Value::as_str)
}

fn write(
    sh: &Shared,
    ids: &RequestIds,
    t: &AccessToken,
    id: &str,
    action: &str,
    raw: &[u8],
) -> Response {
    let known = [
        "setPresence",
        "clearPresence",
        "setUserPreferredPresence",
        "clearUserPreferredPresence",
    ];
    let Some(action) = known
        .iter()
        .find(|a| a.eq_ignore_ascii_case(action))
        .copied()
    else {
        return bad(
            sh,
            ids,
            &format!("Resource not found for the segment '{action}'."),
        );
    };
    if !t.scopes.contains("Presence.ReadWrite") {
        return denied(sh, ids);
    }
    if id != t.user_id {
        return denied(sh, ids);
    }
    let body: Value = if raw.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(raw) {
            Ok(v @ Value::Object(_)) => v,
            _ => return bad(sh, ids, "The request body is not a valid JSON object."),
        }
    };
    let now = sh.now();
    let result = match action {
        "setPresence" => set_presence(t, &body, now),
        "clearPresence" => {
            let Some(sid) = text(&body, "sessionId") else {
                return bad(sh, ids, "The 'sessionId' parameter is required.");
            };
            if !sid.eq_ignore_ascii_case(&t.client_id) {
                return bad(
                    sh,
                    ids,
                    "The sessionId must be the application (client) id of the caller.",
                );
            }
            let key = sid.to_ascii_lowercase();
            let mut w = sh.world();
            let Some(u) = w.tenant.user_by_id_mut(id) else {
                return bad(sh, ids, "unknown user");
            };
            u.presence.expire(now);
            if u.presence.sessions.remove(&key).is_none() {
                drop(w);
                return err(
                    sh,
                    ids,
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("The presence session '{sid}' was not found."),
                );
            }
            u.presence.session_order.retain(|k| *k != key);
            return ok();
        }
        "setUserPreferredPresence" => set_preferred(&body, now),
        _ => Ok(Change::ClearPreferred),
    };
    let change = match result {
        Ok(c) => c,
        Err(msg) => return bad(sh, ids, &msg),
    };
    let mut w = sh.world();
    let Some(u) = w.tenant.user_by_id_mut(id) else {
        return bad(sh, ids, "unknown user");
    };
    u.presence.expire(now);
    match change {
        Change::Session(key, s) => {
            u.presence.session_order.retain(|k| *k != key);
            u.presence.session_order.push(key.clone());
            u.presence.sessions.insert(key, s);
        }
        Change::Preferred(p) => u.presence.preferred = Some(p),
        Change::ClearPreferred => u.presence.preferred = None,
    }
    ok()
}

fn ok() -> Response {
    StatusCode::OK.into_response()
}

enum Change {
    Session(String, AppSession),
    Preferred(Preferred),
    ClearPreferred,
}

fn pair(body: &Value, allowed: &[(&str, &str)], what: &str) -> Result<(String, String), String> {
    let a = text(body, "availability").ok_or("The 'availability' parameter is required.")?;
    let b = text(body, "activity").ok_or("The 'activity' parameter is required.")?;
    allowed
        .iter()
        .find(|(x, y)| x.eq_ignore_ascii_case(a) && y.eq_ignore_ascii_case(b))
        .map(|(x, y)| (x.to_string(), y.to_string()))
        .ok_or_else(|| {
            let list: Vec<String> = allowed.iter().map(|(x, y)| format!("{x}/{y}")).collect();
            format!(
                "The combination of availability '{a}' and activity '{b}' is not supported by {what}. Supported: {}.",
                list.join(", ")
            )
        })
}

fn duration(body: &Value) -> Result<Option<Duration>, String> {
    match field(body, "expirationDuration") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_duration(s).map(Some).ok_or_else(|| {
            format!("The expirationDuration '{s}' is not a valid ISO 8601 duration.")
        }),
        Some(_) => Err("The expirationDuration must be an ISO 8601 duration string.".into()),
    }
}

fn set_presence(t: &AccessToken, body: &Value, now: OffsetDateTime) -> Result<Change, String> {
    let sid = text(body, "sessionId").ok_or("The 'sessionId' parameter is required.")?;
    if !sid.eq_ignore_ascii_case(&t.client_id) {
        return Err("The sessionId must be the application (client) id of the caller.".into());
    }
    let (a, b) = pair(body, SESSION_PAIRS, "setPresence")?;
    let d = duration(body)?.unwrap_or(Duration::minutes(5));
    if d < Duration::minutes(5) || d > Duration::hours(4) {
        return Err("The expirationDuration must be between PT5M and PT4H.".into());
    }
    Ok(Change::Session(
        sid.to_ascii_lowercase(),
        AppSession {
            availability: a,
            activity: b,
            set_at: now,
            expires_at: now + d,
        },
    ))
}

fn set_preferred(body: &Value, now: OffsetDateTime) -> Result<Change, String> {
    let (a, b) = pair(body, PREFERRED_PAIRS, "setUserPreferredPresence")?;
    let default = if a == "Busy" || a == "DoNotDisturb" {
        Duration::days(1)
    } else {
        Duration::days(7)
    };
    let d = duration(body)?.unwrap_or(default);
    if d <= Duration::ZERO {
        return Err("The expirationDuration must be positive.".into());
    }
    Ok(Change::Preferred(Preferred {
        availability: a,
        activity: b,
        expires_at: now + d,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("PT5M"), Some(Duration::minutes(5)));
        assert_eq!(parse_duration("pt1h30m"), Some(Duration::minutes(90)));
        assert_eq!(parse_duration("P1D"), Some(Duration::days(1)));
        assert_eq!(parse_duration("P1DT2H"), Some(Duration::hours(26)));
        assert_eq!(parse_duration("PT90S"), Some(Duration::seconds(90)));
        for bad in ["5M", "P", "PT", "PTM", "PT5X", "PT5M5H"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn aggregation_rules() {
        let now = OffsetDateTime::now_utc();
        let mut p = PresenceState::default();
        assert_eq!(p.aggregate(now), ("Available".into(), "Available".into()));
        p.sessions.insert(
            "app".into(),
            AppSession {
                availability: "Busy".into(),
                activity: "InACall".into(),
                set_at: now,
                expires_at: now + Duration::minutes(5),
            },
        );
        p.session_order.push("app".into());
        assert_eq!(p.aggregate(now).1, "InACall");
        p.teams_availability = "DoNotDisturb".into();
        p.teams_activity = "Presenting".into();
        assert_eq!(p.aggregate(now).1, "Presenting");
        p.preferred = Some(Preferred {
            availability: "Away".into(),
            activity: "Away".into(),
            expires_at: now + Duration::days(1),
        });
        assert_eq!(p.aggregate(now).0, "Away");
        p.teams_signed_in = false;
        p.expire(now + Duration::minutes(6));
        assert!(!p.has_session());
        assert_eq!(p.aggregate(now).0, "Offline");
    }
}
