//! Microsoft Graph v1.0 directory listing: `GET /users` and `GET /users/delta`.
//!
//! Permissions: `User.ReadBasic.All` or higher (`User.Read.All`, `Directory.Read.All`, ...).
//! With only `User.ReadBasic.All` every listed user (the caller included) comes back with the
//! basic properties only: others, phones in particular, are `null` / `[]` (the rule
//! `/users/{id}` applies to other users). `$top` must be 1..999 (default 100; outside:
//! 400 `Request_BadRequest` "Invalid page size specified"), `$skip` is refused
//! (`Request_BadRequest`), paging is by `@odata.nextLink` with an opaque `$skiptoken`.
//!
//! `/users/delta` pages the same way and ends with an `@odata.deltaLink` (opaque
//! `$deltatoken`); since the seeded directory does not change, later rounds are empty.
//! `$deltatoken=latest` starts "from now" (an empty page with a deltaLink).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
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
use crate::tenant::UserProfile;

type Sh = State<Arc<Shared>>;

/// Default page size of `/users`.
pub const DEFAULT_TOP: usize = 100;
/// Largest `$top` of `/users`.
pub const MAX_TOP: usize = 999;

/// Directory routes.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1.0/users", get(list))
        .route("/v1.0/users/delta", get(delta))
}

#[derive(Serialize, Deserialize)]
struct Skip {
    /// Offset.
    o: usize,
    /// Page size.
    n: usize,
    /// `$select`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sel: Option<String>,
    /// Delta round (`true`) or plain list.
    #[serde(default)]
    d: bool,
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
    page(&sh, &ids, &headers, &q, false)
}

async fn delta(
    State(sh): Sh,
    Extension(ids): Extension<RequestIds>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    page(&sh, &ids, &headers, &q, true)
}

fn page(
    sh: &Shared,
    ids: &RequestIds,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
    is_delta: bool,
) -> Response {
    let token = match authenticate(sh, headers, ids) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let basic_only = if has_any(&token, FULL_READ) {
        false
    } else if token.scopes.contains("User.ReadBasic.All") {
        true
    } else {
        return forbidden(ids, sh);
    };
    if option(q, "skip").is_some() {
        return bad(sh, ids, "'$skip' is not supported by the service.");
    }
    let base_url = format!(
        "{}/users{}",
        sh.graph_url(),
        if is_delta { "/delta" } else { "" }
    );
    // Where this page starts, its size and the selection.
    let (offset, top, sel_raw) = if let Some(raw) = option(q, "skiptoken") {
        match paging::decode::<Skip>(raw) {
            Some(s) if s.d == is_delta => (s.o, s.n, s.sel),
            _ => {
                return bad(
                    sh,
                    ids,
                    "The specified page token value has expired or is invalid.",
                );
            }
        }
    } else if is_delta && let Some(raw) = option(q, "deltatoken") {
        // A directory delta token: the seeded directory has no changes since.
        if raw != "latest" && paging::decode::<Skip>(raw).is_none() {
            return graph_error(
                ids,
                sh.now(),
                StatusCode::BAD_REQUEST,
                "syncStateNotFound",
                "The delta token is invalid or expired. Restart with a full sync.",
            );
        }
        let sel = paging::decode::<Skip>(raw).and_then(|s| s.sel);
        let next = Skip {
            o: 0,
            n: 0,
            sel: sel.clone(),
            d: true,
        };
        return json_response(json!({
            "@odata.context": context(sh, sel.as_deref()),
            "value": [],
            "@odata.deltaLink": url_with(&base_url, &[("$deltatoken", paging::encode(&next))]),
        }));
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
    let sel_q: HashMap<String, String> = sel_raw
        .iter()
        .map(|s| ("$select".to_string(), s.clone()))
        .collect();
    let select = match parse_select(&sel_q, sh, ids) {
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
            d: is_delta,
        };
        body["@odata.nextLink"] = json!(url_with(
            &base_url,
            &[("$skiptoken", paging::encode(&next))]
        ));
    } else if is_delta {
        let next = Skip {
            o: 0,
            n: 0,
            sel: sel_raw,
            d: true,
        };
        body["@odata.deltaLink"] = json!(url_with(
            &base_url,
            &[("$deltatoken", paging::encode(&next))]
        ));
    }
    json_response(body)
}

fn context(sh: &Shared, sel: Option<&str>) -> String {
    match sel.filter(|s| !s.trim().is_empty()) {
        Some(s) => format!("{}/$metadata#users({s})", sh.graph_url()),
        None => format!("{}/$metadata#users", sh.graph_url()),
    }
}
