//! Microsoft Graph v1.0: `GET /me` and `GET /users/{id | userPrincipalName}`.
//!
//! Later Graph surfaces (contact folders and contacts, presence) belong in modules beside this
//! one, reusing [`authenticate`] and [`json_response`].

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde_json::{Map, Value, json};

use crate::errors::graph_error;
use crate::grants::{AccessToken, digest};
use crate::server::RequestIds;
use crate::state::Shared;
use crate::tenant::UserProfile;

type Sh = State<Arc<Shared>>;

/// Graph routes.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1.0/me", get(me))
        .route("/v1.0/users/{id}", get(user))
}

/// Properties returned when there is no `$select` (Graph's default set for users).
pub(crate) const DEFAULT_PROPS: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
];

/// Properties a token with only `User.ReadBasic.All` may read of other users.
pub(crate) const BASIC_PROPS: &[&str] = &[
    "displayName",
    "givenName",
    "id",
    "mail",
    "surname",
    "userPrincipalName",
];

/// Other `microsoft.graph.user` properties the emulator does not model: selectable, always null.
const UNMODELED_PROPS: &[&str] = &[
    "ageGroup",
    "city",
    "country",
    "createdDateTime",
    "employeeId",
    "faxNumber",
    "postalCode",
    "state",
    "streetAddress",
    "usageLocation",
    "onPremisesSamAccountName",
    "onPremisesImmutableId",
    "employeeType",
];

/// Permissions that allow reading the signed-in user's own profile.
const SELF_READ: &[&str] = &[
    "User.Read",
    "User.ReadWrite",
    "User.ReadBasic.All",
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];

/// Permissions that allow reading every property of other users.
pub(crate) const FULL_READ: &[&str] = &[
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];

/// A user property by its canonical name, or `None` if there is no such property.
pub(crate) fn property(p: &UserProfile, name: &str) -> Option<Value> {
    Some(match name {
        "id" => json!(p.id),
        "userPrincipalName" => json!(p.user_principal_name),
        "mail" => json!(p.mail),
        "displayName" => json!(p.display_name),
        "givenName" => json!(p.given_name),
        "surname" => json!(p.surname),
        "jobTitle" => json!(p.job_title),
        "businessPhones" => json!(p.business_phones),
        "mobilePhone" => json!(p.mobile_phone),
        "officeLocation" => json!(p.office_location),
        "preferredLanguage" => json!(p.preferred_language),
        "proxyAddresses" => json!(p.proxy_addresses),
        "companyName" => json!(p.company_name),
        "department" => json!(p.department),
        "mailNickname" => json!(p.mail_nickname),
        "otherMails" => json!(p.other_mails),
        "userType" => json!(p.user_type),
        "accountEnabled" => json!(p.account_enabled),
        "imAddresses" => json!([p.user_principal_name]),
        other if UNMODELED_PROPS.contains(&other) => Value::Null,
        _ => return None,
    })
}

const ALL_PROPS: &[&str] = &[
    "id",
    "userPrincipalName",
    "mail",
    "displayName",
    "givenName",
    "surname",
    "jobTitle",
    "businessPhones",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "proxyAddresses",
    "companyName",
    "department",
    "mailNickname",
    "otherMails",
    "userType",
    "accountEnabled",
    "imAddresses",
];

/// Canonical spelling of a property name (Graph matches `$select` names case-insensitively).
fn canonical(name: &str) -> Option<&'static str> {
    ALL_PROPS
        .iter()
        .chain(UNMODELED_PROPS)
        .find(|p| p.eq_ignore_ascii_case(name))
        .copied()
}

/// Checks the bearer token. `Err` is the 401 response Graph sends.
pub fn authenticate(
    sh: &Shared,
    headers: &HeaderMap,
    ids: &RequestIds,
) -> Result<AccessToken, Box<Response>> {
    let now = sh.now();
    let unauthorized = |message: &str| -> Box<Response> {
        let mut resp = graph_error(
            ids,
            now,
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            message,
        );
        let challenge = format!(
            "Bearer realm=\"\", authorization_uri=\"{}/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
            sh.base
        );
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        Box::new(resp)
    };
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized("Access token is empty."));
    };
    let value = value.to_str().unwrap_or("").trim();
    let token = match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ if value.eq_ignore_ascii_case("bearer") || value.is_empty() => "",
        _ => {
            return Err(unauthorized(
                "CompactToken parsing failed with error code: 80049217",
            ));
        }
    };
    if token.is_empty() {
        return Err(unauthorized("Access token is empty."));
    }
    if token.contains(char::is_whitespace) {
        return Err(unauthorized(
            "CompactToken parsing failed with error code: 80049217",
        ));
    }
    let found = sh.world().grants.access.get(&digest(token)).cloned();
    match found {
        None => Err(unauthorized(
            "Access token validation failure. Invalid audience.",
        )),
        Some(t) if now >= t.expires_at => Err(unauthorized(
            "Lifetime validation failed, the token is expired.",
        )),
        Some(t) => Ok(t),
    }
}

/// A Graph JSON success response with Graph's content type.
pub fn json_response(body: Value) -> Response {
    let mut resp = (StatusCode::OK, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(
            "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8",
        ),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

pub(crate) fn forbidden(ids: &RequestIds, sh: &Shared) -> Response {
    graph_error(
        ids,
        sh.now(),
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    )
}

pub(crate) fn has_any(token: &AccessToken, perms: &[&str]) -> bool {
    perms.iter().any(|p| token.scopes.contains(*p))
}

/// Parses `$select` (also accepted without `$`). `Err` is Graph's 400.
pub(crate) fn parse_select(
    q: &HashMap<String, String>,
    sh: &Shared,
    ids: &RequestIds,
) -> Result<Option<Vec<&'static str>>, Box<Response>> {
    let Some(raw) = q.get("$select").or_else(|| q.get("select")) else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match canonical(name) {
            Some(c) if !out.contains(&c) => out.push(c),
            Some(_) => {}
            None => {
                return Err(Box::new(graph_error(
                    ids,
                    sh.now(),
                    StatusCode::BAD_REQUEST,
                    "Request_BadRequest",
                    &format!(
                        "Could not find a property named '{name}' on type 'Microsoft.DirectoryServices.User'."
                    ),
                )));
            }
        }
    }
    Ok(Some(out))
}

/// The user as Graph renders it.
fn render(
    sh: &Shared,
    p: &UserProfile,
    select: Option<&[&'static str]>,
    basic_only: bool,
) -> Value {
    let mut obj = Map::new();
    let context = match select {
        Some(list) if !list.is_empty() => format!(
            "{}/$metadata#users({})/$entity",
            sh.graph_url(),
            list.join(",")
        ),
        _ => format!("{}/$metadata#users/$entity", sh.graph_url()),
    };
    obj.insert("@odata.context".into(), json!(context));
    let names: &[&str] = match select {
        Some(list) if !list.is_empty() => list,
        _ => DEFAULT_PROPS,
    };
    for name in names {
        let mut v = property(p, name).unwrap_or(Value::Null);
        if basic_only && !BASIC_PROPS.contains(name) {
            v = if v.is_array() { json!([]) } else { Value::Null };
        }
        obj.insert((*name).to_string(), v);
    }
    Value::Object(obj)
}

async fn me(
    State(sh): Sh,
    Extension(ids): Extension<RequestIds>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let token = match authenticate(&sh, &headers, &ids) {
        Ok(t) => t,
        Err(resp) => return *resp,
    };
    if !has_any(&token, SELF_READ) {
        return forbidden(&ids, &sh);
    }
    let select = match parse_select(&q, &sh, &ids) {
        Ok(s) => s,
        Err(resp) => return *resp,
    };
    let profile = sh
        .world()
        .tenant
        .user_by_id(&token.user_id)
        .map(|u| u.profile.clone());
    match profile {
        Some(p) => json_response(render(&sh, &p, select.as_deref(), false)),
        None => not_found(&sh, &ids, &token.user_id),
    }
}

fn not_found(sh: &Shared, ids: &RequestIds, key: &str) -> Response {
    graph_error(
        ids,
        sh.now(),
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        &format!(
            "Resource '{key}' does not exist or one of its queried reference-property objects are not present."
        ),
    )
}

async fn user(
    State(sh): Sh,
    Path(key): Path<String>,
    Extension(ids): Extension<RequestIds>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let token = match authenticate(&sh, &headers, &ids) {
        Ok(t) => t,
        Err(resp) => return *resp,
    };
    let select = match parse_select(&q, &sh, &ids) {
        Ok(s) => s,
        Err(resp) => return *resp,
    };
    let profile = sh.world().tenant.user(&key).map(|u| u.profile.clone());
    let is_self = profile.as_ref().is_some_and(|p| p.id == token.user_id);
    let basic_only = if is_self {
        if !has_any(&token, SELF_READ) {
            return forbidden(&ids, &sh);
        }
        false
    } else if has_any(&token, FULL_READ) {
        false
    } else if token.scopes.contains("User.ReadBasic.All") {
        true
    } else {
        return forbidden(&ids, &sh);
    };
    match profile {
        Some(p) => json_response(render(&sh, &p, select.as_deref(), basic_only)),
        None => not_found(&sh, &ids, &key),
    }
}
