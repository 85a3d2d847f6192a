//! Microsoft Graph requests, with Graph's error shapes mapped to typed errors.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Why a Graph request failed. Never contains a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GraphError {
    /// 401: the token is missing, expired, revoked or for another app.
    Unauthorized(String),
    /// 403: the sign-in lacks a permission.
    Forbidden(String),
    /// 429 or 503 with `Retry-After`.
    Throttled(Option<Duration>),
    /// Another 5xx.
    Server(u16),
    /// Network failure or time-out.
    Network(String),
    /// A body that is not what Graph documents.
    Malformed(String),
    /// Any other status, with Graph's error code and message.
    Other(u16, String),
}

impl std::fmt::Display for GraphError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GraphError::Unauthorized(m) => write!(f, "Microsoft Graph refused the sign-in: {m}"),
            GraphError::Forbidden(m) => write!(f, "Microsoft Graph denied access: {m}"),
            GraphError::Throttled(Some(d)) => {
                write!(
                    f,
                    "Microsoft Graph is throttling; retry in {} s",
                    d.as_secs()
                )
            }
            GraphError::Throttled(None) => f.write_str("Microsoft Graph is throttling"),
            GraphError::Server(s) => write!(f, "Microsoft Graph failed ({s})"),
            GraphError::Network(m) => write!(f, "Microsoft Graph could not be reached: {m}"),
            GraphError::Malformed(m) => write!(f, "Microsoft Graph sent an unreadable answer: {m}"),
            GraphError::Other(s, m) => write!(f, "Microsoft Graph answered {s}: {m}"),
        }
    }
}

impl std::error::Error for GraphError {}

/// The signed-in user, from `GET /me`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    /// Object id (GUID), used for presence.
    pub id: String,
    /// The UPN.
    pub user_principal_name: String,
    /// Primary SMTP address.
    #[serde(default)]
    pub mail: Option<String>,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Every address of the mailbox (`SMTP:` primary, `smtp:` aliases).
    #[serde(default)]
    pub proxy_addresses: Vec<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorInner,
}
#[derive(Deserialize)]
struct ErrorInner {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// A Graph endpoint.
#[derive(Clone)]
pub struct Graph {
    http: reqwest::Client,
    base: String,
}

impl Graph {
    /// Graph at `base` (e.g. `https://graph.microsoft.com/v1.0`).
    pub fn new(http: reqwest::Client, base: &str) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// `GET /me` with the fields the plugin uses.
    pub async fn me(&self, token: &SecretString) -> Result<Me, GraphError> {
        let url = format!(
            "{}/me?$select=id,userPrincipalName,mail,displayName,proxyAddresses",
            self.base
        );
        let response = self
            .http
            .get(url)
            .bearer_auth(token.expose_secret())
            .send()
            .await
            .map_err(|e| GraphError::Network(crate::http::describe(&e)))?;
        let body = read(response).await?;
        let me: Me = serde_json::from_slice(&body)
            .map_err(|e| GraphError::Malformed(format!("/me: {e}")))?;
        if me.id.is_empty() || me.user_principal_name.is_empty() {
            return Err(GraphError::Malformed(
                "/me without id or userPrincipalName".into(),
            ));
        }
        Ok(me)
    }
}

/// The body of a successful response, or the typed error.
pub async fn read(response: reqwest::Response) -> Result<Vec<u8>, GraphError> {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let body = response
        .bytes()
        .await
        .map_err(|e| GraphError::Network(crate::http::describe(&e)))?;
    if status.is_success() {
        return Ok(body.to_vec());
    }
    let message = serde_json::from_slice::<ErrorBody>(&body)
        .map(|b| {
            format!("{} {}", b.error.code, b.error.message)
                .trim()
                .to_owned()
        })
        .unwrap_or_else(|_| status.to_string());
    Err(match status.as_u16() {
        401 => GraphError::Unauthorized(message),
        403 => GraphError::Forbidden(message),
        429 => GraphError::Throttled(retry_after),
        503 if retry_after.is_some() => GraphError::Throttled(retry_after),
        s @ 500..=599 => GraphError::Server(s),
        s => GraphError::Other(s, message),
    })
}

/// `Retry-After` as seconds or an HTTP date.
///
/// ```
/// # use contact_ms365::graph::parse_retry_after;
/// assert_eq!(parse_retry_after("7"), Some(std::time::Duration::from_secs(7)));
/// assert!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT").is_some());
/// assert_eq!(parse_retry_after("soon"), None);
/// ```
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs.min(3600)));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO)
            .min(Duration::from_secs(3600)),
    )
}
