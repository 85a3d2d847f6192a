//! Microsoft Graph v1.0 directory listing: `GET /users` and `GET /users/delta`.
//!
//! Permissions: `User.ReadBasic.All` or higher (`User.Read.All`, `Directory.Read.All`, ...).
//! With only `User.ReadBasic.All` every listed user (the caller included) comes back with the
//! basic properties only: others, phones in particular, are `null` / `[]` (the rule
//! `/users/{id}` applies to other users). `$top` must be 1..999 (default 100; outside:
//! 400 `Request_BadRequest` "Invalid page size specified"), `$skip` is refused
//! (`Request_BadRequest`), paging is by `@odata.nextLink` with an opaque `$skiptoken`.
//!
//! `/users/delta` tracks changes like Graph's (`user: delta`): the directory keeps a change log
//! ([`DirectoryLog`]: every add, change or delete takes the next sequence number; per user only
//! the latest change is kept). The initial round returns every current user (soft- or
//! permanently deleted ones are left out, as documented); it pages by `@odata.nextLink`
//! (`$skiptoken`) and ends with an `@odata.deltaLink` (`$deltatoken`). A round from a
//! deltaLink returns only the users changed since, with the `$select` of the initial request
//! (it travels in the tokens; `id` is always returned); deleted users come back as
//! `{"id": ..., "@removed": {"reason": "changed"}}` (soft-deleted, restorable for 30 days) or
//! `"deleted"` (permanently deleted). What changes during a round shows up in the next one.
//! `$deltatoken=latest` starts "from now" (an empty page with a deltaLink).
//!
//! Page size of the delta: `$top` is not supported on users delta (the documentation lists only
//! `$select` and `$filter=id eq`; the service ignores `$top`), so it is ignored here too; the
//! emulator honours `Prefer: odata.maxpagesize` (at most [`MAX_TOP`], answered with
//! `Preference-Applied`) and otherwise pages by [`DEFAULT_TOP`].
//!
//! Expired state: directory delta tokens live 7 days ([`DELTA_TOKEN_LIFETIME_SECS`], on the
//! emulator clock), and [`crate::Control::expire_directory_delta_tokens`] expires all at once. An
//! expired or unknown `$deltatoken` / delta `$skiptoken` answers `400 Bad Request` with code
//! `syncStateNotFound` ("The sync state generation is not found. The delta token is expired
//! and data must be synchronized again.", as Microsoft announced for identity resources): the
//! client must start over with a full (initial) round.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::errors::graph_error;
use crate::graph::{
    BASIC_PROPS, DEFAULT_PROPS, FULL_READ, authenticate, forbidden, has_any, json_response,
    parse_select, property,
};
use crate::paging::{self, option, url_with};
use crate::server::RequestIds;
use crate::state::Shared;
use crate::tenant::{TenantUser, UserProfile};

type Sh = State<Arc<Shared>>;

/// Default page size of `/users` and `/users/delta`.
pub const DEFAULT_TOP: usize = 100;
/// Largest `$top` of `/users` (and largest `odata.maxpagesize` honoured on `/users/delta`).
pub const MAX_TOP: usize = 999;
/// Lifetime of a directory delta token: 7 days.
pub const DELTA_TOKEN_LIFETIME_SECS: i64 = 7 * 24 * 3600;

/// Why a user left the directory, as a delta round reports it in `@removed.reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    /// Soft-deleted (restorable): `"changed"`.
    Changed,
    /// Permanently deleted: `"deleted"`.
    Deleted,
}

impl Removal {
    /// The `reason` Graph writes.
    pub fn reason(self) -> &'static str {
        match self {
            Removal::Changed => "changed",
            Removal::Deleted => "deleted",
        }
    }
}

/// The directory's change log, read by `/users/delta`.
#[derive(Clone, Debug, Default)]
pub struct DirectoryLog {
    /// Last sequence number used.
    pub seq: u64,
    /// Delta tokens of an older epoch are expired.
    pub epoch: u64,
    /// Latest change per user, by sequence number: the user id and, once the user is gone,
    /// how.
    pub changes: BTreeMap<u64, (String, Option<Removal>)>,
    /// Users deleted so far (new object ids never reuse a number).
    pub removed_users: u64,
    /// Sequence number of each user's latest change.
    latest: HashMap<String, u64>,
}

impl DirectoryLog {
    /// A log in which every user of `users` was added once, in order.
    pub fn seeded(users: &[TenantUser]) -> DirectoryLog {
        let mut log = DirectoryLog {
            epoch: 1,
            ..Default::default()
        };
        for u in users {
            log.record(&u.profile.id, None);
        }
        log
    }

    /// Records a change of user `id` (added or changed: `None`; gone: how).
    pub fn record(&mut self, id: &str, removed: Option<Removal>) {
        self.seq += 1;
        if let Some(old) = self.latest.insert(id.to_string(), self.seq) {
            self.changes.remove(&old);
        }
        self.changes.insert(self.seq, (id.to_string(), removed));
    }
}

/// Directory routes.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1.0/users", get(list))
        .route("/v1.0/users/delta", get(delta))
}

/// What a `/users` `$skiptoken` carries.
#[derive(Serialize, Deserialize)]
struct Skip {
    /// Offset.
    o: usize,
    /// Page size.
    n: usize,
    /// `$select`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sel: Option<String>,
}

/// What a `/users/delta` `$skiptoken` / `$deltatoken` carries.
#[derive(Clone, Serialize, Deserialize)]
struct DeltaState {
    /// Directory delta epoch.
    e: u64,
    /// Issued at (unix seconds, emulator clock).
    i: i64,
    /// Changes after this sequence number belong to the round.
    s: u64,
    /// Round end (inclusive); 0 in a delta token (the next round ends wherever the log is).
    t: u64,
    /// Last sequence number delivered in this round.
    c: u64,
    /// `true` in the initial round (deleted users are left out).
    #[serde(default)]
    a: bool,
    /// `$select` of the initial request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sel: Option<String>,
}

fn bad(sh: &Shared, ids: &RequestIds, msg: &str) -> Response {
    graph_error(
        ids,
        sh.now(),
        StatusCode::BAD_REQUEST,
        "Request_BadRequest",
        msg,
    )
}

fn sync_state_not_found(sh: &Shared, ids: &RequestIds) -> Response {
    graph_error(
        ids,
        sh.now(),
        StatusCode::BAD_REQUEST,
        "syncStateNotFound",
        "The sync state generation is not found. The delta token is expired and data must be synchronized again.",
    )
}

fn render(p: &UserProfile, select: Option<&[&'static str]>, basic_only: bool) -> Value {
    let names: &[&str] = match select {
        Some(list) if !list.is_empty() => list,
        _ => DEFAULT_PROPS,
    };
    let mut obj = Map::new();
    for name in names {
        let mut v = property(p, name).unwrap_or(Value::Null);
        if basic_only && !BASIC_PROPS.contains(name) {
            v = if v.is_array() { json!([]) } else { Value::Null };
        }
        obj.insert((*name).to_string(), v);
    }
    Value::Object(obj)
}

async fn list(
    State(sh): Sh,
    Extension(ids): Extension<RequestIds>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    page(&sh, &ids, &headers, &q)
}

/// Who may list users, and whether they see the basic properties only.
fn access(sh: &Shared, ids: &RequestIds, headers: &HeaderMap) -> Result<bool, Box<Response>> {
    let token = authenticate(sh, headers, ids)?;
    if has_any(&token, FULL_READ) {
        Ok(false)
    } else if token.scopes.contains("User.ReadBasic.All") {
        Ok(true)
    } else {
        Err(Box::new(forbidden(ids, sh)))
    }
}

fn page(
    sh: &Shared,
    ids: &RequestIds,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
) -> Response {
    let basic_only = match access(sh, ids, headers) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    if option(q, "skip").is_some() {
        return bad(sh, ids, "'$skip' is not supported by the service.");
    }
    let base_url = format!("{}/users", sh.graph_url());
    // Where this page starts, its size and the selection.
    let (offset, top, sel_raw) = if let Some(raw) = option(q, "skiptoken") {
        match paging::decode::<Skip>(raw) {
            Some(s) => (s.o, s.n, s.sel),
            None => {
                return bad(
                    sh,
                    ids,
                    "The specified page token value has expired or is invalid.",
                );
            }
        }
    } else {
        let top = match option(q, "top") {
            None => DEFAULT_TOP,
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if (1..=MAX_TOP).contains(&n) => n,
                _ => {
                    return bad(
                        sh,
                        ids,
                        &format!(
                            "Invalid page size specified: '{v}'. Must be between 1 and 999 inclusive."
                        ),
                    );
                }
            },
        };
        (0, top, option(q, "select").map(str::to_string))
    };
    let select = match selection(sh, ids, sel_raw.as_deref()) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let w = sh.world();
    let users = &w.tenant.users;
    let items: Vec<Value> = users
        .iter()
        .skip(offset)
        .take(top)
        .map(|u| render(&u.profile, select.as_deref(), basic_only))
        .collect();
    let more = offset + top < users.len();
    drop(w);
    let mut body = json!({"@odata.context": context(sh, sel_raw.as_deref()), "value": items});
    if more {
        let next = Skip {
            o: offset + top,
            n: top,
            sel: sel_raw,
        };
        body["@odata.nextLink"] = json!(url_with(
            &base_url,
            &[("$skiptoken", paging::encode(&next))]
        ));
    }
    json_response(body)
}

/// A raw `$select` checked and canonicalized.
fn selection(
    sh: &Shared,
    ids: &RequestIds,
    raw: Option<&str>,
) -> Result<Option<Vec<&'static str>>, Box<Response>> {
    let q: HashMap<String, String> = raw
        .iter()
        .map(|s| ("$select".to_string(), (*s).to_string()))
        .collect();
    parse_select(&q, sh, ids)
}

async fn delta(
    State(sh): Sh,
    Extension(ids): Extension<RequestIds>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    delta_page(&sh, &ids, &headers, &q).unwrap_or_else(|r| *r)
}

fn delta_page(
    sh: &Shared,
    ids: &RequestIds,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
) -> Result<Response, Box<Response>> {
    let basic_only = access(sh, ids, headers)?;
    let preferred = paging::max_page_size(headers, MAX_TOP);
    let page_size = preferred.map_or(DEFAULT_TOP, |(_, applied)| applied);
    let now = sh.now().unix_timestamp();
    let skip = option(q, "skiptoken");
    let dtok = option(q, "deltatoken");
    let base_url = format!("{}/users/delta", sh.graph_url());
    let w = sh.world();
    let log = &w.tenant.directory;
    let state = match skip.or(dtok) {
        Some(raw) if skip.is_none() && raw.trim().eq_ignore_ascii_case("latest") => {
            // "Sync from now": no data, a deltaLink at the end of the log.
            let next = DeltaState {
                e: log.epoch,
                i: now,
                s: log.seq,
                t: 0,
                c: 0,
                a: false,
                sel: option(q, "select").map(str::to_string),
            };
            drop(w);
            selection(sh, ids, next.sel.as_deref())?;
            return Ok(json_response(json!({
                "@odata.context": context(sh, next.sel.as_deref()),
                "value": [],
                "@odata.deltaLink": url_with(&base_url, &[("$deltatoken", paging::encode(&next))]),
            })));
        }
        Some(raw) => {
            let decoded = paging::decode::<DeltaState>(raw).filter(|st| {
                st.e == log.epoch
                    && now.saturating_sub(st.i) <= DELTA_TOKEN_LIFETIME_SECS
                    && st.s <= log.seq
                    && st.t <= log.seq
                    && (skip.is_some() == (st.t > 0))
            });
            let Some(mut st) = decoded else {
                drop(w);
                return Err(Box::new(sync_state_not_found(sh, ids)));
            };
            if skip.is_none() {
                // A new round from a deltaLink: the changes up to now.
                st.t = log.seq;
                st.c = st.s;
            }
            st
        }
        None => DeltaState {
            e: log.epoch,
            i: now,
            s: 0,
            t: log.seq,
            c: 0,
            a: true,
            sel: option(q, "select").map(str::to_string),
        },
    };
    let select = match selection(sh, ids, state.sel.as_deref()) {
        Ok(s) => s,
        Err(r) => {
            drop(w);
            return Err(r);
        }
    };
    let initial = state.a;
    let mut items = Vec::new();
    let mut last = state.c;
    let mut more = false;
    let range = if state.c < state.t {
        log.changes.range(state.c + 1..=state.t)
    } else {
        log.changes.range(0..0)
    };
    for (seq, (id, removed)) in range {
        if removed.is_some() && initial {
            last = *seq;
            continue;
        }
        if items.len() == page_size {
            more = true;
            break;
        }
        last = *seq;
        match removed {
            Some(how) => items.push(json!({"id": id, "@removed": {"reason": how.reason()}})),
            None => {
                if let Some(u) = w.tenant.user_by_id(id) {
                    let mut v = render(&u.profile, select.as_deref(), basic_only);
                    if let Some(obj) = v.as_object_mut()
                        && !obj.contains_key("id")
                    {
                        obj.insert("id".into(), json!(u.profile.id));
                    }
                    items.push(v);
                }
            }
        }
    }
    drop(w);
    let mut body = json!({
        "@odata.context": context(sh, state.sel.as_deref()),
        "value": items,
    });
    if more {
        let next = DeltaState {
            i: now,
            c: last,
            ..state
        };
        body["@odata.nextLink"] = json!(url_with(
            &base_url,
            &[("$skiptoken", paging::encode(&next))]
        ));
    } else {
        let next = DeltaState {
            i: now,
            s: state.t,
            t: 0,
            c: 0,
            a: false,
            ..state
        };
        body["@odata.deltaLink"] = json!(url_with(
            &base_url,
            &[("$deltatoken", paging::encode(&next))]
        ));
    }
    let mut resp = json_response(body);
    if let Some((_, applied)) = preferred
        && let Ok(v) = HeaderValue::from_str(&format!("odata.maxpagesize={applied}"))
    {
        resp.headers_mut().insert("preference-applied", v);
    }
    Ok(resp)
}

fn context(sh: &Shared, sel: Option<&str>) -> String {
    match sel.filter(|s| !s.trim().is_empty()) {
        Some(s) => format!("{}/$metadata#users({s})", sh.graph_url()),
        None => format!("{}/$metadata#users", sh.graph_url()),
    }
}
