//! The identity platform (Entra ID v2.0): discovery, JWKS, authorize, token, device code,
//! device login page and logout.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use url::{Host, Url, form_urlencoded};

use crate::errors::{AadError, html_escape, no_store, sign_in_error_page};
use crate::grants::{
    AuthCode, ChallengeMethod, DeviceGrant, DeviceStatus, RefreshToken, digest, new_secret,
    new_user_code,
};
use crate::scopes::Requested;
use crate::server::RequestIds;
use crate::state::{Shared, World};
use crate::tenant::App;

type Sh = State<Arc<Shared>>;

/// Identity-platform routes.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(discovery),
        )
        .route("/{tenant}/discovery/v2.0/keys", get(jwks))
        .route("/{tenant}/oauth2/v2.0/authorize", get(authorize))
        .route("/{tenant}/oauth2/v2.0/token", get(post_only).post(token))
        .route(
            "/{tenant}/oauth2/v2.0/devicecode",
            get(post_only).post(devicecode),
        )
        .route("/{tenant}/oauth2/v2.0/logout", get(logout))
        .route(
            "/devicelogin",
            get(devicelogin_page).post(devicelogin_submit),
        )
        .route("/error", get(error_page))
}

/// First value of each parameter of a query string or form body.
fn params(raw: &[u8]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (k, v) in form_urlencoded::parse(raw) {
        out.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    out
}

fn non_empty<'a>(p: &'a HashMap<String, String>, key: &str) -> Option<&'a str> {
    p.get(key)
        .map(String::as_str)
        .filter(|v| !v.trim().is_empty())
}

fn unknown_tenant(tenant: &str) -> AadError {
    AadError::new(
        "invalid_request",
        90002,
        format!(
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
        ),
    )
}

fn unknown_client(client_id: &str, tenant: &str) -> AadError {
    AadError::new(
        "unauthorized_client",
        700016,
        format!(
            "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
        ),
    )
}

fn is_alias(tenant: &str) -> bool {
    tenant.eq_ignore_ascii_case("organizations") || tenant.eq_ignore_ascii_case("common")
}

// ---------------------------------------------------------------------------------------------
// Discovery and keys

async fn discovery(
    State(sh): Sh,
    Path(tenant): Path<String>,
    Extension(ids): Extension<RequestIds>,
) -> Response {
    let (accepted, tid) = {
        let w = sh.world();
        (w.tenant.accepts_segment(&tenant), w.tenant.id.clone())
    };
    if !accepted {
        let mut e = unknown_tenant(&tenant);
        e.error = "invalid_tenant";
        return e.response(&ids, sh.now(), &sh.base);
    }
    let b = &sh.base;
    let issuer_tid = if is_alias(&tenant) {
        "{tenantid}".to_string()
    } else {
        tid
    };
    let host = b.trim_start_matches("http://");
    let methods: &[&str] = if sh.config.allow_plain_pkce {
        &["plain", "S256"]
    } else {
        &["S256"]
    };
    Json(json!({
        "token_endpoint": format!("{b}/{tenant}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{b}/{tenant}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{b}/{issuer_tid}/v2.0"),
        "request_uri_parameter_supported": false,
        "authorization_endpoint": format!("{b}/{tenant}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{b}/{tenant}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{b}/{tenant}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name",
            "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid",
            "ver", "at_hash", "c_hash", "email"],
        "grant_types_supported": ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"],
        "code_challenge_methods_supported": methods,
        "tenant_region_scope": "EU",
        "cloud_instance_name": host,
        "cloud_graph_host_name": host,
        "msgraph_host": host,
        "rbac_url": b,
    }))
    .into_response()
}

async fn jwks(
    State(sh): Sh,
    Path(tenant): Path<String>,
    Extension(ids): Extension<RequestIds>,
) -> Response {
    let (accepted, tid) = {
        let w = sh.world();
        (w.tenant.accepts_segment(&tenant), w.tenant.id.clone())
    };
    if !accepted {
        return unknown_tenant(&tenant).response(&ids, sh.now(), &sh.base);
    }
    let issuer_tid = if is_alias(&tenant) {
        "{tenantid}".to_string()
    } else {
        tid
    };
    Json(sh.signer.jwks(&format!("{}/{issuer_tid}/v2.0", sh.base))).into_response()
}

async fn post_only(State(sh): Sh, Extension(ids): Extension<RequestIds>) -> Response {
    AadError::new(
        "invalid_request",
        900561,
        "The endpoint only accepts POST requests. Received a GET request.",
    )
    .response(&ids, sh.now(), &sh.base)
}

async fn error_page(Query(q): Query<HashMap<String, String>>) -> Html<String> {
    let code = q.get("code").map(String::as_str).unwrap_or("");
    Html(format!(
        "<!DOCTYPE html><html><head><title>Error lookup</title></head><body><h1>AADSTS{}</h1>\
         <p>This is the Microsoft 365 emulator. See Microsoft's identity platform error code reference.</p></body></html>",
        html_escape(code)
    ))
}

// ---------------------------------------------------------------------------------------------
// Redirect URIs

/// Whether `uri` is acceptable for `app`: `http` on `localhost` or `127.0.0.1`, matching a
/// registered loopback URI whatever the port (RFC 8252; Microsoft ignores the port for
/// loopback). A registered URI without a path accepts any path (the emulator's registration is
/// treated as listing the paths the client uses). `[::1]`, fragments, user info and the
/// characters `! $ ' ( ) , ;` are refused, as is anything longer than 256 characters.
pub fn redirect_uri_allowed(app: &App, uri: &str) -> Option<Url> {
    if uri.len() > 256 || uri.chars().any(|c| "!$'(),;".contains(c)) {
        return None;
    }
    let url = Url::parse(uri).ok()?;
    let loopback = match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.octets() == [127, 0, 0, 1],
        _ => false,
    };
    if url.scheme() != "http" || !loopback || url.fragment().is_some() || !url.username().is_empty()
    {
        return None;
    }
    let ok = app
        .redirect_uris
        .iter()
        .filter_map(|r| Url::parse(r).ok())
        .any(|reg| {
            reg.scheme() == url.scheme()
                && reg.host_str().map(str::to_ascii_lowercase)
                    == url.host_str().map(str::to_ascii_lowercase)
                && (reg.path() == "/" || reg.path() == url.path())
        });
    ok.then_some(url)
}

// ---------------------------------------------------------------------------------------------
// Authorize

#[derive(Clone, Copy, PartialEq, Eq)]
enum ResponseMode {
    Query,
    Fragment,
    FormPost,
}

/// Sends `pairs` back to the client on its redirect URI.
fn redirect_with(uri: &Url, mode: ResponseMode, pairs: &[(&str, &str)]) -> Response {
    match mode {
        ResponseMode::Query | ResponseMode::Fragment => {
            let mut url = uri.clone();
            if mode == ResponseMode::Query {
                let mut q = url.query_pairs_mut();
                for (k, v) in pairs {
                    q.append_pair(k, v);
                }
            } else {
                let mut f = form_urlencoded::Serializer::new(String::new());
                for (k, v) in pairs {
                    f.append_pair(k, v);
                }
                url.set_fragment(Some(&f.finish()));
            }
            let mut resp = StatusCode::FOUND.into_response();
            if let Ok(v) = HeaderValue::from_str(url.as_str()) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            no_store(&mut resp);
            resp
        }
        ResponseMode::FormPost => {
            let inputs: String = pairs
                .iter()
                .map(|(k, v)| {
                    format!(
                        "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                        html_escape(k),
                        html_escape(v)
                    )
                })
                .collect();
            let html = format!(
                "<!DOCTYPE html><html><head><title>Working...</title></head><body onload=\"document.forms[0].submit()\">\
                 <form method=\"POST\" name=\"hiddenform\" action=\"{}\">{inputs}<noscript><p>Script is disabled. Click Submit to continue.</p>\
                 <input type=\"submit\" value=\"Submit\"></noscript></form></body></html>",
                html_escape(uri.as_str())
            );
            let mut resp = Html(html).into_response();
            no_store(&mut resp);
            resp
        }
    }
}

fn error_redirect(
    uri: &Url,
    mode: ResponseMode,
    err: &AadError,
    state: Option<&str>,
    ids: &RequestIds,
    now: OffsetDateTime,
    base: &str,
) -> Response {
    let body = err.body(ids, now, base);
    let desc = body["error_description"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut pairs: Vec<(&str, &str)> = vec![("error", err.error), ("error_description", &desc)];
    if let Some(s) = state {
        pairs.push(("state", s));
    }
    redirect_with(uri, mode, &pairs)
}

async fn authorize(
    State(sh): Sh,
    Path(tenant): Path<String>,
    Extension(ids): Extension<RequestIds>,
    RawQuery(raw): RawQuery,
) -> Response {
    let now = sh.now();
    let p = params(raw.unwrap_or_default().as_bytes());
    let mut w = sh.world();

    // Errors before the redirect URI is trusted: an error page.
    if !w.tenant.accepts_segment(&tenant) {
        return sign_in_error_page(&unknown_tenant(&tenant), &ids, now);
    }
    let Some(client_id) = non_empty(&p, "client_id") else {
        return sign_in_error_page(&AadError::missing("client_id"), &ids, now);
    };
    let Some(app) = w.tenant.app(client_id).cloned() else {
        return sign_in_error_page(&unknown_client(client_id, &tenant), &ids, now);
    };
    let Some(redirect_raw) = non_empty(&p, "redirect_uri") else {
        return sign_in_error_page(&AadError::missing("redirect_uri"), &ids, now);
    };
    let Some(redirect) = redirect_uri_allowed(&app, redirect_raw) else {
        let e = AadError::new(
            "invalid_request",
            50011,
            format!(
                "The redirect URI '{redirect_raw}' specified in the request does not match the redirect URIs configured for the application '{}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal.",
                app.client_id
            ),
        );
        return sign_in_error_page(&e, &ids, now);
    };
    let state = p.get("state").map(String::as_str);
    let mode = match p.get("response_mode").map(String::as_str) {
        None | Some("query") => ResponseMode::Query,
        Some("fragment") => ResponseMode::Fragment,
        Some("form_post") => ResponseMode::FormPost,
        Some(other) => {
            let e = AadError::new(
                "invalid_request",
                900511,
                format!(
                    "The provided value for the input parameter 'response_mode' is not valid: '{other}'."
                ),
            );
            return error_redirect(
                &redirect,
                ResponseMode::Query,
                &e,
                state,
                &ids,
                now,
                &sh.base,
            );
        }
    };
    let fail = |e: AadError| error_redirect(&redirect, mode, &e, state, &ids, now, &sh.base);

    match non_empty(&p, "response_type") {
        None => return fail(AadError::missing("response_type")),
        Some("code") => {}
        Some(other) => {
            return fail(AadError::new(
                "unsupported_response_type",
                700054,
                format!("response_type '{other}' is not enabled for the application."),
            ));
        }
    }
    let Some(scope_raw) = non_empty(&p, "scope") else {
        return fail(AadError::new(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        ));
    };
    let requested = match Requested::parse(scope_raw, &app, &tenant) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let Some(challenge) = non_empty(&p, "code_challenge") else {
        return fail(AadError::new(
            "invalid_request",
            9002325,
            "Proof Key for Code Exchange is required for this application: send code_challenge and code_challenge_method=S256.",
        ));
    };
    let method = match p.get("code_challenge_method").map(String::as_str) {
        Some("S256") => ChallengeMethod::S256,
        None | Some("plain") if sh.config.allow_plain_pkce => ChallengeMethod::Plain,
        None | Some("plain") => {
            return fail(AadError::new(
                "invalid_request",
                9002325,
                "The application requires code_challenge_method 'S256'; 'plain' is not allowed.",
            ));
        }
        Some(other) => {
            return fail(AadError::new(
                "invalid_request",
                501491,
                format!("The provided code_challenge_method '{other}' is not supported."),
            ));
        }
    };
    let size_ok = match method {
        ChallengeMethod::S256 => challenge.len() == 43,
        ChallengeMethod::Plain => (43..=128).contains(&challenge.len()),
    } && challenge
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if !size_ok {
        return fail(AadError::new(
            "invalid_request",
            501491,
            "Invalid size of Code_Challenge parameter.",
        ));
    }

    // The chosen seeded user signs in and consents.
    let user_id = w.sign_in_user.clone();
    w.grants.consent(&user_id, &app.client_id, &requested.graph);
    let code = new_secret("1.", 96);
    w.grants.codes.insert(
        digest(&code),
        AuthCode {
            client_id: app.client_id.clone(),
            user_id,
            redirect_uri: redirect_raw.to_string(),
            challenge: challenge.to_string(),
            method,
            scopes: requested,
            nonce: p.get("nonce").cloned(),
            expires_at: now + time::Duration::seconds(secs(sh.config.auth_code_lifetime_secs)),
            redeemed: false,
        },
    );
    drop(w);
    tracing::debug!("ms365 emulator: authorize -> code issued");
    let mut pairs: Vec<(&str, &str)> = vec![("code", &code)];
    if let Some(s) = state {
        pairs.push(("state", s));
    }
    redirect_with(&redirect, mode, &pairs)
}

fn secs(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX / 2)
}

// ---------------------------------------------------------------------------------------------
// Token issuance

/// Who gets tokens, for which app, and with which scopes. `requested` is this request's scope
/// (what the response echoes, whether an id_token is sent), `original` the scopes the grant
/// started with (kept on the refresh token).
struct Mint<'a> {
    user_id: &'a str,
    client_id: &'a str,
    requested: &'a Requested,
    original: &'a Requested,
    nonce: Option<&'a str>,
}

/// Mints an access token (and a refresh token with `offline_access`, an id_token with
/// `openid`) and answers the token response.
fn issue_tokens(sh: &Shared, w: &mut World, m: Mint<'_>, now: OffsetDateTime) -> Response {
    let Mint {
        user_id,
        client_id,
        requested,
        original,
        nonce,
    } = m;
    let granted = w.grants.consented(user_id, client_id);
    let lifetime = sh.config.access_token_lifetime_secs;
    let access = w.grants.issue_access(
        user_id,
        client_id,
        granted.clone(),
        now + time::Duration::seconds(secs(lifetime)),
    );
    let mut body = json!({
        "token_type": "Bearer",
        "scope": requested.response_scope(&granted),
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access,
    });
    if original.offline_access {
        let rt = new_secret("1.AR", 160);
        w.grants.issued.record(&rt);
        w.grants.refresh.insert(
            digest(&rt),
            RefreshToken {
                user_id: user_id.to_string(),
                client_id: client_id.to_string(),
                scopes: original.clone(),
                issued_at: now,
                expires_at: now
                    + time::Duration::seconds(secs(sh.config.refresh_token_lifetime_secs)),
                rotated: false,
            },
        );
        body["refresh_token"] = json!(rt);
    }
    if requested.openid
        && let Some(user) = w.tenant.user_by_id(user_id)
    {
        let p = &user.profile;
        let iat = now.unix_timestamp();
        let sub =
            URL_SAFE_NO_PAD.encode(Sha256::digest(format!("{}|{client_id}", p.id).as_bytes()));
        let mut claims = json!({
            "aud": client_id,
            "iss": format!("{}/{}/v2.0", sh.base, w.tenant.id),
            "iat": iat,
            "nbf": iat,
            "exp": iat + 3600,
            "name": p.display_name,
            "oid": p.id,
            "preferred_username": p.user_principal_name,
            "sub": sub,
            "tid": w.tenant.id,
            "uti": new_secret("", 16),
            "ver": "2.0",
        });
        if let Some(n) = nonce {
            claims["nonce"] = json!(n);
        }
        if requested.email
            && let Some(mail) = &p.mail
        {
            claims["email"] = json!(mail);
        }
        body["id_token"] = json!(sh.signer.sign_jwt(&claims));
    }
    let mut resp = Json(body).into_response();
    no_store(&mut resp);
    resp
}

// ---------------------------------------------------------------------------------------------
// Token endpoint

async fn token(
    State(sh): Sh,
    Path(tenant): Path<String>,
    Extension(ids): Extension<RequestIds>,
    body: Bytes,
) -> Response {
    let now = sh.now();
    let p = params(&body);
    let grant = non_empty(&p, "grant_type").unwrap_or("").to_string();
    let result = {
        let mut w = sh.world();
        token_inner(&sh, &mut w, &tenant, &p, now)
    };
    match result {
        Ok(resp) => {
            tracing::debug!("ms365 emulator: token grant={grant} -> tokens issued");
            resp
        }
        Err(e) => {
            tracing::debug!(
                "ms365 emulator: token grant={grant} -> {} AADSTS{}",
                e.error,
                e.code
            );
            e.response(&ids, now, &sh.base)
        }
    }
}

fn token_inner(
    sh: &Shared,
    w: &mut World,
    tenant: &str,
    p: &HashMap<String, String>,
    now: OffsetDateTime,
) -> Result<Response, AadError> {
    if !w.tenant.accepts_segment(tenant) {
        return Err(unknown_tenant(tenant));
    }
    let grant_type = non_empty(p, "grant_type").ok_or_else(|| AadError::missing("grant_type"))?;
    let client_id = non_empty(p, "client_id").ok_or_else(|| AadError::missing("client_id"))?;
    let app = w
        .tenant
        .app(client_id)
        .cloned()
        .ok_or_else(|| unknown_client(client_id, tenant))?;
    if p.contains_key("client_secret") || p.contains_key("client_assertion") {
        return Err(AadError::new(
            "invalid_client",
            700025,
            "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
        ));
    }
    match grant_type {
        "authorization_code" => redeem_code(sh, w, &app, p, now),
        "refresh_token" => redeem_refresh(sh, w, &app, tenant, p, now),
        "urn:ietf:params:oauth:grant-type:device_code" | "device_code" => {
            redeem_device(sh, w, &app, p, now)
        }
        other => Err(AadError::new(
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{other}'."),
        )),
    }
}

fn redeem_code(
    sh: &Shared,
    w: &mut World,
    app: &App,
    p: &HashMap<String, String>,
    now: OffsetDateTime,
) -> Result<Response, AadError> {
    let code = non_empty(p, "code").ok_or_else(|| AadError::missing("code"))?;
    let redirect_uri =
        non_empty(p, "redirect_uri").ok_or_else(|| AadError::missing("redirect_uri"))?;
    let key = digest(code);
    let entry = w.grants.codes.get(&key).cloned().ok_or_else(|| {
        AadError::new(
            "invalid_grant",
            9002313,
            "Invalid request. Request is malformed or invalid.",
        )
    })?;
    if entry.redeemed {
        return Err(AadError::new(
            "invalid_grant",
            54005,
            "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
        ));
    }
    if now >= entry.expires_at {
        return Err(AadError::new(
            "invalid_grant",
            70008,
            "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.",
        ));
    }
    if !entry.client_id.eq_ignore_ascii_case(&app.client_id) {
        return Err(AadError::new(
            "invalid_grant",
            70000,
            "Provided grant is invalid or malformed: the authorization code was issued to a different client.",
        ));
    }
    if redirect_uri != entry.redirect_uri {
        return Err(AadError::new(
            "invalid_grant",
            500112,
            format!(
                "The reply address '{redirect_uri}' does not match the reply address '{}' provided when requesting Authorization code.",
                entry.redirect_uri
            ),
        ));
    }
    let verifier =
        non_empty(p, "code_verifier").ok_or_else(|| AadError::missing("code_verifier"))?;
    if !entry.method.verify(verifier, &entry.challenge) {
        return Err(AadError::new(
            "invalid_grant",
            501481,
            "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
        ));
    }
    if let Some(c) = w.grants.codes.get_mut(&key) {
        c.redeemed = true;
    }
    Ok(issue_tokens(
        sh,
        w,
        Mint {
            user_id: &entry.user_id,
            client_id: &app.client_id,
            requested: &entry.scopes,
            original: &entry.scopes,
            nonce: entry.nonce.as_deref(),
        },
        now,
    ))
}

fn redeem_refresh(
    sh: &Shared,
    w: &mut World,
    app: &App,
    tenant: &str,
    p: &HashMap<String, String>,
    now: OffsetDateTime,
) -> Result<Response, AadError> {
    let rt = non_empty(p, "refresh_token").ok_or_else(|| AadError::missing("refresh_token"))?;
    let key = digest(rt);
    let entry = w.grants.refresh.get(&key).cloned().ok_or_else(|| {
        AadError::new(
            "invalid_grant",
            9002313,
            "Invalid request. Request is malformed or invalid.",
        )
    })?;
    if !entry.client_id.eq_ignore_ascii_case(&app.client_id) {
        return Err(AadError::new(
            "invalid_grant",
            70000,
            "Provided grant is invalid or malformed: the refresh token was issued to a different client.",
        ));
    }
    if w.grants.is_revoked(&entry) {
        let valid_from = w
            .grants
            .tokens_valid_from
            .get(&entry.user_id)
            .copied()
            .unwrap_or(now);
        return Err(AadError::new(
            "invalid_grant",
            50173,
            format!(
                "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '{}' and the TokensValidFrom date (before which tokens are not valid) for this user is '{}'.",
                crate::clock::rfc3339(entry.issued_at),
                crate::clock::rfc3339(valid_from)
            ),
        ));
    }
    if entry.rotated {
        return Err(AadError::new(
            "invalid_grant",
            70000,
            "Provided grant is invalid or malformed: the refresh token was already used and has been replaced by a newer one.",
        ));
    }
    if now >= entry.expires_at {
        return Err(AadError::new(
            "invalid_grant",
            700082,
            format!(
                "The refresh token has expired due to inactivity. The token was issued on {} and was inactive for {} seconds.",
                crate::clock::rfc3339(entry.issued_at),
                sh.config.refresh_token_lifetime_secs
            ),
        ));
    }
    let requested = match non_empty(p, "scope") {
        Some(raw) => Requested::parse(raw, app, tenant)?,
        None => entry.scopes.clone(),
    };
    let consented = w.grants.consented(&entry.user_id, &app.client_id);
    if !requested.graph.is_subset(&consented) {
        return Err(AadError::new(
            "invalid_grant",
            65001,
            format!(
                "The user or administrator has not consented to use the application with ID '{}' named '{}'. Send an interactive authorization request for this user and resource.",
                app.client_id, app.display_name
            ),
        ));
    }
    if let Some(r) = w.grants.refresh.get_mut(&key) {
        r.rotated = true;
    }
    Ok(issue_tokens(
        sh,
        w,
        Mint {
            user_id: &entry.user_id,
            client_id: &app.client_id,
            requested: &requested,
            original: &entry.scopes,
            nonce: None,
        },
        now,
    ))
}

fn redeem_device(
    sh: &Shared,
    w: &mut World,
    app: &App,
    p: &HashMap<String, String>,
    now: OffsetDateTime,
) -> Result<Response, AadError> {
    let dc = non_empty(p, "device_code")
        .or_else(|| non_empty(p, "code"))
        .ok_or_else(|| AadError::missing("device_code"))?;
    let key = digest(dc);
    let auto = sh.config.device_auto_approve_after;
    let sign_in_user = w.sign_in_user.clone();
    let Some(grant) = w.grants.devices.get_mut(&key) else {
        return Err(AadError::new(
            "bad_verification_code",
            70000,
            "The provided value for the input parameter 'device_code' is not valid.",
        ));
    };
    if !grant.client_id.eq_ignore_ascii_case(&app.client_id) {
        return Err(AadError::new(
            "invalid_grant",
            70000,
            "Provided grant is invalid or malformed: the device code was issued to a different client.",
        ));
    }
    if grant.status == DeviceStatus::Redeemed {
        return Err(AadError::new(
            "invalid_grant",
            54005,
            "The device code was already redeemed, please start a new device code flow or use the refresh token.",
        ));
    }
    if now >= grant.expires_at {
        return Err(AadError::new(
            "expired_token",
            70019,
            "Verification code expired.",
        ));
    }
    if grant.status == DeviceStatus::Pending
        && let Some(after) = auto
        && now >= grant.created_at + after
    {
        grant.status = DeviceStatus::Approved {
            user_id: sign_in_user,
        };
    }
    match grant.status.clone() {
        DeviceStatus::Declined => Err(AadError::new(
            "authorization_declined",
            65004,
            "User declined to consent to access the app.",
        )),
        DeviceStatus::Pending => {
            let too_fast = grant
                .last_poll
                .is_some_and(|last| now - last < time::Duration::seconds(secs(grant.interval)));
            grant.last_poll = Some(now);
            if too_fast {
                grant.interval += 5;
                return Err(AadError::new(
                    "slow_down",
                    70016,
                    format!(
                        "OAuth 2.0 device flow error. Polling too frequently: wait at least {} seconds between polls.",
                        grant.interval
                    ),
                ));
            }
            Err(AadError::new(
                "authorization_pending",
                70016,
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            ))
        }
        DeviceStatus::Approved { user_id } => {
            grant.status = DeviceStatus::Redeemed;
            let scopes = grant.scopes.clone();
            // Approval consents to the requested permissions, whichever way it happened
            // (control call, the /devicelogin page, or automatically after a delay).
            w.grants.consent(&user_id, &app.client_id, &scopes.graph);
            Ok(issue_tokens(
                sh,
                w,
                Mint {
                    user_id: &user_id,
                    client_id: &app.client_id,
                    requested: &scopes,
                    original: &scopes,
                    nonce: None,
                },
                now,
            ))
        }
        DeviceStatus::Redeemed => unreachable!("handled above"),
    }
}

// ---------------------------------------------------------------------------------------------
// Device code

async fn devicecode(
    State(sh): Sh,
    Path(tenant): Path<String>,
    Extension(ids): Extension<RequestIds>,
    body: Bytes,
) -> Response {
    let now = sh.now();
    let p = params(&body);
    let result = (|| {
        let mut w = sh.world();
        if !w.tenant.accepts_segment(&tenant) {
            return Err(unknown_tenant(&tenant));
        }
        let client_id = non_empty(&p, "client_id").ok_or_else(|| AadError::missing("client_id"))?;
        let app = w
            .tenant
            .app(client_id)
            .cloned()
            .ok_or_else(|| unknown_client(client_id, &tenant))?;
        if p.contains_key("client_secret") || p.contains_key("client_assertion") {
            return Err(AadError::new(
                "invalid_client",
                700025,
                "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
            ));
        }
        let scope = non_empty(&p, "scope").ok_or_else(|| AadError::missing("scope"))?;
        let requested = Requested::parse(scope, &app, &tenant)?;
        let device_code = new_secret("DAQABIQEAAA", 96);
        let user_code = loop {
            let c = new_user_code();
            if !w.grants.devices.values().any(|d| d.user_code == c) {
                break c;
            }
        };
        let lifetime = sh.config.device_code_lifetime_secs;
        let interval = sh.config.device_poll_interval_secs;
        w.grants.devices.insert(
            digest(&device_code),
            DeviceGrant {
                client_id: app.client_id.clone(),
                user_code: user_code.clone(),
                scopes: requested,
                created_at: now,
                expires_at: now + time::Duration::seconds(secs(lifetime)),
                interval,
                last_poll: None,
                status: DeviceStatus::Pending,
            },
        );
        let verification_uri = format!("{}/devicelogin", sh.base);
        Ok(json!({
            "user_code": user_code,
            "device_code": device_code,
            "verification_uri": verification_uri,
            "expires_in": lifetime,
            "interval": interval,
            "message": format!(
                "To sign in, use a web browser to open the page {verification_uri} and enter the code {user_code} to authenticate."
            ),
        }))
    })();
    match result {
        Ok(body) => {
            tracing::debug!("ms365 emulator: devicecode -> issued");
            let mut resp = Json(body).into_response();
            no_store(&mut resp);
            resp
        }
        Err(e) => e.response(&ids, now, &sh.base),
    }
}

/// Approves (as `user_id`) or declines the pending device grant with `user_code`.
pub fn decide_device(
    w: &mut World,
    user_code: &str,
    approve_as: Option<String>,
    now: OffsetDateTime,
) -> Result<(), String> {
    let grant = w
        .grants
        .device_by_user_code(user_code)
        .ok_or_else(|| format!("no device code with user code '{user_code}'"))?;
    if now >= grant.expires_at {
        return Err(format!("the code '{user_code}' has expired"));
    }
    if grant.status != DeviceStatus::Pending {
        return Err(format!("the code '{user_code}' was already used"));
    }
    let client_id = grant.client_id.clone();
    let scopes = grant.scopes.graph.clone();
    match approve_as {
        Some(user_id) => {
            grant.status = DeviceStatus::Approved {
                user_id: user_id.clone(),
            };
            w.grants.consent(&user_id, &client_id, &scopes);
        }
        None => grant.status = DeviceStatus::Declined,
    }
    Ok(())
}

async fn devicelogin_page(State(sh): Sh) -> Html<String> {
    let w = sh.world();
    let options: String = w
        .tenant
        .users
        .iter()
        .map(|u| {
            let sel = if u.profile.id == w.sign_in_user {
                " selected"
            } else {
                ""
            };
            format!(
                "<option value=\"{0}\"{sel}>{1} ({0})</option>",
                html_escape(&u.profile.user_principal_name),
                html_escape(&u.profile.display_name)
            )
        })
        .collect();
    Html(format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Enter code</title></head><body>\
         <h1>Enter code</h1><p>Enter the code displayed on your app or device.</p>\
         <form method=\"POST\" action=\"/devicelogin\">\
         <p><input name=\"user_code\" placeholder=\"Code\" autofocus></p>\
         <p><label>Account <select name=\"upn\">{options}</select></label></p>\
         <p><button name=\"action\" value=\"approve\">Next</button> <button name=\"action\" value=\"decline\">Cancel sign-in</button></p>\
         </form></body></html>"
    ))
}

async fn devicelogin_submit(State(sh): Sh, body: Bytes) -> Response {
    let p = params(&body);
    let now = sh.now();
    let user_code = p.get("user_code").cloned().unwrap_or_default();
    let decline = p.get("action").is_some_and(|a| a == "decline");
    let result = {
        let mut w = sh.world();
        let user = match p.get("upn").filter(|u| !u.is_empty()) {
            Some(upn) => w
                .tenant
                .user(upn)
                .map(|u| u.profile.id.clone())
                .ok_or_else(|| format!("unknown account '{upn}'")),
            None => Ok(w.sign_in_user.clone()),
        };
        user.and_then(|uid| decide_device(&mut w, &user_code, (!decline).then_some(uid), now))
    };
    match result {
        Ok(()) if decline => Html(
            "<!DOCTYPE html><html><body><h1>Sign-in cancelled</h1><p>You can close this window.</p></body></html>".to_string(),
        )
        .into_response(),
        Ok(()) => Html(
            "<!DOCTYPE html><html><body><h1>You have signed in</h1><p>You have signed in to the application on your device. You may now close this window.</p></body></html>"
                .to_string(),
        )
        .into_response(),
        Err(msg) => (
            StatusCode::BAD_REQUEST,
            Html(format!(
                "<!DOCTYPE html><html><body><h1>That code didn't work</h1><p>{}</p><p><a href=\"/devicelogin\">Try again</a></p></body></html>",
                html_escape(&msg)
            )),
        )
            .into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// Logout

async fn logout(
    State(sh): Sh,
    Path(tenant): Path<String>,
    Extension(ids): Extension<RequestIds>,
    RawQuery(raw): RawQuery,
) -> Response {
    let now = sh.now();
    let p = params(raw.unwrap_or_default().as_bytes());
    if !sh.world().tenant.accepts_segment(&tenant) {
        return sign_in_error_page(&unknown_tenant(&tenant), &ids, now);
    }
    if let Some(target) = non_empty(&p, "post_logout_redirect_uri") {
        let apps = sh.world().tenant.apps.clone();
        if let Some(url) = apps.iter().find_map(|a| redirect_uri_allowed(a, target)) {
            let pairs: Vec<(&str, &str)> = p
                .get("state")
                .map(|s| vec![("state", s.as_str())])
                .unwrap_or_default();
            return redirect_with(&url, ResponseMode::Query, &pairs);
        }
    }
    Html("<!DOCTYPE html><html><body><h1>You signed out of your account</h1><p>It's a good idea to close all browser windows.</p></body></html>".to_string())
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::{PLUGIN_CLIENT_ID, seed};

    #[test]
    fn loopback_redirects() {
        let t = seed();
        let app = t.app(PLUGIN_CLIENT_ID).unwrap();
        assert!(redirect_uri_allowed(app, "http://localhost").is_some());
        assert!(redirect_uri_allowed(app, "http://localhost:53124/callback").is_some());
        assert!(redirect_uri_allowed(app, "http://127.0.0.1:8080/").is_some());
        assert!(redirect_uri_allowed(app, "http://[::1]:8080/").is_none());
        assert!(redirect_uri_allowed(app, "https://localhost:8080/").is_none());
        assert!(redirect_uri_allowed(app, "http://example.com/").is_none());
        assert!(redirect_uri_allowed(app, "http://localhost:1/a#frag").is_none());
        assert!(redirect_uri_allowed(app, "http://localhost:1/a(b)").is_none());
        assert!(redirect_uri_allowed(app, "http://127.0.0.2:1/").is_none());
    }
}
