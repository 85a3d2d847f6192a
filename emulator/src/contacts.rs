//! Microsoft Graph v1.0 Outlook contacts (delegated `Contacts.Read` or `Contacts.ReadWrite`):
//!
//! - `GET /me/contactFolders`: the default folder's sub-folders (not the default folder itself,
//!   as documented); `GET /me/contactFolders/{id}`; `GET /me/contactFolders/{id}/childFolders`.
//! - `GET /me/contacts` (default folder only), `GET /me/contacts/{id}`,
//!   `GET /me/contactFolders/{id}/contacts`.
//! - `GET /me/contactFolders/{id}/contacts/delta`: per-folder delta rounds.
//!
//! Lists page with `$top` (default 10; values above 1000 are capped at 1000) and
//! `@odata.nextLink` carrying `$skip` (as Outlook does); `$select` is kept in the links.
//!
//! Delta: `$select` only on the initial request (it is stored in the state tokens, and ignored
//! on later requests); `Prefer: odata.maxpagesize=N` (default 10, capped at
//! [`MAX_PAGE_SIZE`], answered with `Preference-Applied`) on any request of a round;
//! `@odata.nextLink` with an opaque `$skiptoken` while a round has more pages, the last page
//! `@odata.deltaLink` with an opaque `$deltatoken`. Deleted contacts come back as
//! `{"@odata.type":"#microsoft.graph.contact","id":..,"@removed":{"reason":"deleted"}}` (not in
//! the initial round); changed contacts come back whole in the next round. A state token that
//! is expired (`POST /_emulator/contacts/expire-delta`, a reseed), unknown or for another
//! user/folder is answered `410 Gone`, error code `syncStateNotFound`, with a `Location`
//! header holding a fresh initial delta URL for the folder (the documented "restart with a
//! full sync" signal).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::errors::graph_error;
use crate::grants::AccessToken;
use crate::graph::{authenticate, json_response};
use crate::mailbox::{Mailbox, canonical_prop};
use crate::paging::{self, MAX_PAGE_SIZE, option, url_with};
use crate::server::RequestIds;
use crate::state::Shared;

type Sh = State<Arc<Shared>>;
type Q = Query<HashMap<String, String>>;

/// Default page size of contact lists and delta pages.
pub const DEFAULT_PAGE: usize = 10;

/// Contacts routes.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1.0/me/contactFolders", get(folders))
        .route("/v1.0/me/contactFolders/{id}", get(folder))
        .route(
            "/v1.0/me/contactFolders/{id}/childFolders",
            get(child_folders),
        )
        .route(
            "/v1.0/me/contactFolders/{id}/contacts",
            get(folder_contacts),
        )
        .route("/v1.0/me/contactFolders/{id}/contacts/delta", get(delta))
        .route("/v1.0/me/contacts", get(default_contacts))
        .route("/v1.0/me/contacts/{id}", get(contact))
}

const READ: &[&str] = &["Contacts.Read", "Contacts.ReadWrite"];

type Fail = Box<Response>;

fn fail(sh: &Shared, ids: &RequestIds, status: StatusCode, code: &str, msg: &str) -> Fail {
    Box::new(graph_error(ids, sh.now(), status, code, msg))
}

fn not_found(sh: &Shared, ids: &RequestIds) -> Fail {
    fail(
        sh,
        ids,
        StatusCode::NOT_FOUND,
        "ErrorItemNotFound",
        "The specified object was not found in the store.",
    )
}

/// Authenticates and checks `Contacts.Read`.
fn auth(sh: &Shared, headers: &HeaderMap, ids: &RequestIds) -> Result<AccessToken, Fail> {
    let token = authenticate(sh, headers, ids)?;
    if !READ.iter().any(|p| token.scopes.contains(*p)) {
        return Err(fail(
            sh,
            ids,
            StatusCode::FORBIDDEN,
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
        ));
    }
    Ok(token)
}

fn parse_select(
    sh: &Shared,
    ids: &RequestIds,
    raw: Option<&str>,
) -> Result<Option<Vec<String>>, Fail> {
    let Some(raw) = raw else { return Ok(None) };
    let mut out: Vec<String> = Vec::new();
    for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let Some(c) = canonical_prop(name) else {
            return Err(fail(
                sh,
                ids,
                StatusCode::BAD_REQUEST,
                "RequestBroker--ParseUri",
                &format!(
                    "Could not find a property named '{name}' on type 'microsoft.graph.contact'."
                ),
            ));
        };
        if !out.iter().any(|o| o == c) {
            out.push(c.to_string());
        }
    }
    Ok(Some(out))
}

fn parse_num(
    sh: &Shared,
    ids: &RequestIds,
    q: &HashMap<String, String>,
    name: &str,
) -> Result<Option<usize>, Fail> {
    match option(q, name) {
        None => Ok(None),
        Some(v) => v.trim().parse::<usize>().map(Some).map_err(|_| {
            fail(
                sh,
                ids,
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("Invalid value '{v}' for query option '${name}'."),
            )
        }),
    }
}

/// `$top`: default 10, at least 1, capped at 1000.
fn parse_top(sh: &Shared, ids: &RequestIds, q: &HashMap<String, String>) -> Result<usize, Fail> {
    Ok(match parse_num(sh, ids, q, "top")? {
        Some(0) => {
            return Err(fail(
                sh,
                ids,
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "The value of '$top' must be at least 1.",
            ));
        }
        Some(n) => n.min(MAX_PAGE_SIZE),
        None => DEFAULT_PAGE,
    })
}

/// One page of a list, `$top`/`$skip` paging, links keep `$select`.
fn list_page(
    sh: &Shared,
    ids: &RequestIds,
    q: &HashMap<String, String>,
    base_url: &str,
    context: String,
    items: impl Iterator<Item = Value>,
) -> Result<Response, Fail> {
    let top = parse_top(sh, ids, q)?;
    let skip = parse_num(sh, ids, q, "skip")?.unwrap_or(0);
    let mut page: Vec<Value> = items.skip(skip).take(top + 1).collect();
    let more = page.len() > top;
    page.truncate(top);
    let mut body = json!({"@odata.context": context, "value": page});
    if more {
        let mut pairs = Vec::new();
        if let Some(sel) = option(q, "select") {
            pairs.push(("$select", sel.to_string()));
        }
        pairs.push(("$top", top.to_string()));
        pairs.push(("$skip", (skip + top).to_string()));
        body["@odata.nextLink"] = json!(url_with(base_url, &pairs));
    }
    Ok(json_response(body))
}

fn with_mailbox<T>(sh: &Shared, user_id: &str, f: impl FnOnce(&Mailbox) -> T) -> Option<T> {
    sh.world().tenant.user_by_id(user_id).map(|u| f(&u.mailbox))
}

fn user_ctx(sh: &Shared, user_id: &str) -> String {
    format!("{}/$metadata#users('{user_id}')", sh.graph_url())
}

fn sel_suffix(sel: &Option<Vec<String>>) -> String {
    match sel {
        Some(s) if !s.is_empty() => format!("({})", s.join(",")),
        _ => String::new(),
    }
}

async fn folders(
    State(sh): Sh,
    Extension(ids): Extension<RequestIds>,
    headers: HeaderMap,
    Query(q): Q,
) -> Response {
    run(|| {
        let t = auth(&sh, &headers, &ids)?;
        let items = with_mailbox(&sh, &t.user_id, |m| {
            m.children(&m.default_folder_id)
                .iter()
                .map(|f| f.render())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
        list_page(
            &sh,
            &ids,
            &q,
            &format!("{}/me/contactFolders", sh.graph_url()),
            format!("{}/contactFolders", user_ctx(&sh, &t.user_id)),
            items.into_iter(),
        )
    })
}

async fn folder(
    State(sh): Sh,
    Path(id): Path<String>,
    Extension(ids): Extension<RequestIds>,
    headers: HeaderMap,
) -> Response {
    run(|| {
        let t = auth(&sh, &headers, &ids)?;
        let f = with_mailbox(&sh, &t.user_id, |m| m.folder(&id).map(|f| f.render()))
            .flatten()
            .ok_or_else(|| not_found(&sh, &ids))?;
        let mut body = json!({"@odata.context": format!("{}/contactFolders/$entity", user_ctx(&sh, &t.user_id))});
        if let (Some(b), Some(f)) = (body.as_object_mut(), f.as_object()) {
            b.extend(f.clone());
        }
        Ok(json_response(body))
    })
}

async fn child_folders(
    State(sh): Sh,
    Path(id): Path<String>,
    Extension(ids): Extension<RequestIds>,
    headers: HeaderMap,
    Query(q): Q,
) -> Response {
    run(|| {
        let t = auth(&sh, &headers, &ids)?;
        let items = with_mailbox(&sh, &t.user_id, |m| {
            m.folder(&id).map(|_| {
                m.children(&id)
                    .iter()
                    .map(|f| f.render())
                    .collect::<Vec<_>>()
            })
        })
        .flatten()
        .ok_or_else(|| not_found(&sh, &ids))?;
        list_page(
            &sh,
            &ids,
            &q,
            &format!("{}/me/contactFolders/{id}/childFolders", sh.graph_url()),
            format!(
                "{}/contactFolders('{id}')/childFolders",
                user_ctx(&sh, &t.user_id)
            ),
            items.into_iter(),
        )
    })
}

fn contacts_of(
    sh: &Shared,
    ids: &RequestIds,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
    folder: Option<&str>,
) -> Result<Response, Fail> {
    let t = auth(sh, headers, ids)?;
    let sel = parse_select(sh, ids, option(q, "select"))?;
    let top = parse_top(sh, ids, q)?;
    let skip = parse_num(sh, ids, q, "skip")?.unwrap_or(0);
    // Render only the page (plus one to know whether there is more), not the whole folder.
    let (fid, items) = with_mailbox(sh, &t.user_id, |m| {
        let fid = folder.unwrap_or(&m.default_folder_id).to_string();
        m.folder(&fid).map(|f| {
            let items: Vec<Value> = f
                .contacts
                .values()
                .skip(skip)
                .take(top + 1)
                .map(|c| c.render(sel.as_deref()))
                .collect();
            (fid, items)
        })
    })
    .flatten()
    .ok_or_else(|| not_found(sh, ids))?;
    let (base_url, context) = match folder {
        None => (
            format!("{}/me/contacts", sh.graph_url()),
            format!("{}/contacts{}", user_ctx(sh, &t.user_id), sel_suffix(&sel)),
        ),
        Some(_) => (
            format!("{}/me/contactFolders/{fid}/contacts", sh.graph_url()),
            format!(
                "{}/contactFolders('{fid}')/contacts{}",
                user_ctx(sh, &t.user_id),
                sel_suffix(&sel)
            ),
        ),
    };
    let more = items.len() > top;
    let page: Vec<Value> = items.into_iter().take(top).collect();
    let mut body = json!({"@odata.context": context, "value": page});
    if more {
        let mut pairs = Vec::new();
        if let Some(s) = option(q, "select") {
            pairs.push(("$select", s.to_string()));
        }
        pairs.push(("$top", top.to_string()));
        pairs.push(("$skip", (skip + top).to_string()));
        body["@odata.nextLink"] = json!(url_with(&base_url, &pairs));
    }
    Ok(json_response(body))
}

async fn default_contacts(
    State(sh): Sh,
    Extension(ids): Extension<RequestIds>,
    headers: HeaderMap,
    Query(q): Q,
) -> Response {
    run(|| contacts_of(&sh, &ids, &headers, &q, None))
}

async fn folder_contacts(
    State(sh): Sh,
    Path(id): Path<String>,
    Extension(ids): Extension<RequestIds>,
    headers: HeaderMap,
    Query(q): Q,
) -> Response {
    run(|| contacts_of(&sh, &ids, &headers, &q, Some(&id)))
}

async fn contact(
    State(sh): Sh,
    Path(id): Path<String>,
    Extension(ids): Extension<RequestIds>,
    headers: HeaderMap,
    Query(q): Q,
) -> Response {
    run(|| {
        let t = auth(&sh, &headers, &ids)?;
        let sel = parse_select(&sh, &ids, option(&q, "select"))?;
        let mut body = with_mailbox(&sh, &t.user_id, |m| {
            m.contact(&id).map(|c| c.render(sel.as_deref()))
        })
        .flatten()
        .ok_or_else(|| not_found(&sh, &ids))?;
        body["@odata.context"] = json!(format!(
            "{}/contacts{}/$entity",
            user_ctx(&sh, &t.user_id),
            sel_suffix(&sel)
        ));
        Ok(json_response(body))
    })
}

fn run(f: impl FnOnce() -> Result<Response, Fail>) -> Response {
    f().unwrap_or_else(|e| *e)
}

// ---------------------------------------------------------------------------------------------
// Delta

/// What a `$skiptoken` / `$deltatoken` carries.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct DeltaState {
    /// User object id.
    u: String,
    /// Folder id.
    f: String,
    /// Mailbox delta epoch.
    e: u64,
    /// Changes after this sequence number belong to the round.
    s: u64,
    /// Round end (inclusive); 0 in a delta token (the next round ends wherever the log is).
    t: u64,
    /// Last sequence number delivered in this round.
    c: u64,
    /// `$select` of the initial request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sel: Option<Vec<String>>,
}

fn delta_url(sh: &Shared, folder: &str) -> String {
    format!(
        "{}/me/contactFolders/{folder}/contacts/delta",
        sh.graph_url()
    )
}

fn gone(sh: &Shared, ids: &RequestIds, folder: &str, sel: Option<&[String]>) -> Fail {
    let mut resp = graph_error(
        ids,
        sh.now(),
        StatusCode::GONE,
        "syncStateNotFound",
        "The sync state of this delta query was not found: it expired or is invalid. Restart with a full sync (the initial delta request).",
    );
    let mut pairs = Vec::new();
    if let Some(s) = sel.filter(|s| !s.is_empty()) {
        pairs.push(("$select", s.join(",")));
    }
    if let Ok(v) = HeaderValue::from_str(&url_with(&delta_url(sh, folder), &pairs)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Box::new(resp)
}

async fn delta(
    State(sh): Sh,
    Path(folder): Path<String>,
    Extension(ids): Extension<RequestIds>,
    headers: HeaderMap,
    Query(q): Q,
) -> Response {
    run(|| delta_inner(&sh, &ids, &headers, &q, &folder))
}

fn delta_inner(
    sh: &Shared,
    ids: &RequestIds,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
    folder: &str,
) -> Result<Response, Fail> {
    let t = auth(sh, headers, ids)?;
    let skip = option(q, "skiptoken");
    let dtok = option(q, "deltatoken");
    let preferred = paging::max_page_size(headers, MAX_PAGE_SIZE);
    let page_size = preferred.map_or(DEFAULT_PAGE, |(_, applied)| applied);

    let w = sh.world();
    let m = &w
        .tenant
        .user_by_id(&t.user_id)
        .ok_or_else(|| not_found(sh, ids))?
        .mailbox;
    let Some(f) = m.folder(folder) else {
        return Err(not_found(sh, ids));
    };
    let token = skip.or(dtok);
    let state = match token {
        Some(raw) => {
            let decoded: Option<DeltaState> = paging::decode(raw);
            let valid = decoded.as_ref().is_some_and(|st| {
                st.u == t.user_id
                    && st.f == folder
                    && st.e == m.epoch
                    && st.s <= m.seq
                    && (skip.is_some() == (st.t > 0))
            });
            if !valid {
                let sel = decoded.and_then(|d| d.sel);
                return Err(gone(sh, ids, folder, sel.as_deref()));
            }
            let mut st = decoded.expect("valid");
            if dtok.is_some() && skip.is_none() {
                st.t = m.seq;
                st.c = st.s;
            }
            st
        }
        None => {
            let sel = parse_select(sh, ids, option(q, "select"))?;
            DeltaState {
                u: t.user_id.clone(),
                f: folder.to_string(),
                e: m.epoch,
                s: 0,
                t: m.seq,
                c: 0,
                sel,
            }
        }
    };
    let initial = state.s == 0;
    let mut page = Vec::new();
    let mut last = state.c;
    let mut more = false;
    let range = if state.c < state.t {
        f.changes.range(state.c + 1..=state.t)
    } else {
        f.changes.range(0..0)
    };
    for (seq, change) in range {
        if change.removed && initial {
            continue;
        }
        if page.len() == page_size {
            more = true;
            break;
        }
        last = *seq;
        if change.removed {
            page.push(json!({
                "@odata.type": "#microsoft.graph.contact",
                "id": change.id,
                "@removed": {"reason": "deleted"},
            }));
        } else if let Some(c) = f.contacts.get(&change.id) {
            page.push(c.render(state.sel.as_deref()));
        }
    }
    let upto = state.t;
    drop(w);
    let mut body = json!({
        "@odata.context": format!("{}/$metadata#Collection(contact)", sh.graph_url()),
        "value": page,
    });
    if more {
        let next = DeltaState { c: last, ..state };
        body["@odata.nextLink"] = json!(url_with(
            &delta_url(sh, folder),
            &[("$skiptoken", paging::encode(&next))]
        ));
    } else {
        let next = DeltaState {
            s: upto,
            t: 0,
            c: 0,
            ..state
        };
        body["@odata.deltaLink"] = json!(url_with(
            &delta_url(sh, folder),
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
