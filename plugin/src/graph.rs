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
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
    };
    let retry_after = header(reqwest::header::RETRY_AFTER)
        .and_then(|v| retry_after_on_server_clock(v, header(reqwest::header::DATE)));
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

/// `Retry-After`, with an HTTP date measured against the response's own `Date` (the server's
/// clock), so that a server clock minutes ahead or behind ours neither makes us wait minutes
/// too long nor retry at once; without a usable `Date`, as [`parse_retry_after`].
///
/// ```
/// # use contact_ms365::graph::retry_after_on_server_clock;
/// # use std::time::Duration;
/// let server_now = "Wed, 21 Oct 2015 07:28:00 GMT";
/// let wait = retry_after_on_server_clock("Wed, 21 Oct 2015 07:28:05 GMT", Some(server_now));
/// assert_eq!(wait, Some(Duration::from_secs(5)));
/// assert_eq!(retry_after_on_server_clock("3", Some(server_now)), Some(Duration::from_secs(3)));
/// ```
pub fn retry_after_on_server_clock(value: &str, date: Option<&str>) -> Option<Duration> {
    let value = value.trim();
    if value.parse::<u64>().is_err()
        && let (Ok(when), Some(Ok(now))) = (
            httpdate::parse_http_date(value),
            date.map(|d| httpdate::parse_http_date(d.trim())),
        )
    {
        return Some(
            when.duration_since(now)
                .unwrap_or(Duration::ZERO)
                .min(Duration::from_secs(3600)),
        );
    }
    parse_retry_after(value)
}

/// How requests are retried: 429 and 503 honour `Retry-After`; other 5xx, time-outs and broken
/// connections back off exponentially with jitter; anything else is final.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts in all (the first included).
    pub attempts: u32,
    /// First back-off.
    pub base: Duration,
    /// Longest back-off (and the longest `Retry-After` honoured before giving up).
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 6,
            base: Duration::from_millis(500),
            max: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `n` (1-based retry count): `base * 2^(n-1)`, capped, with
    /// ±25 % jitter so that clients of one tenant do not retry in step.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self.base.saturating_mul(
            1u32.checked_shl(retry.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        let capped = exp.min(self.max);
        let jitter = rand::random::<f64>() * 0.5 + 0.75;
        capped.mul_f64(jitter).min(self.max)
    }
}

/// Whether an error is worth retrying, and after how long at least.
pub fn retry_after(error: &GraphError) -> Option<Option<Duration>> {
    match error {
        GraphError::Throttled(after) => Some(*after),
        GraphError::Server(_) | GraphError::Network(_) => Some(None),
        GraphError::Malformed(_) => Some(None),
        _ => None,
    }
}

impl Graph {
    /// The Graph base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET url` (absolute) with the bearer token, `Prefer` when given, and the retry policy;
    /// `limiter` bounds the requests in flight (Outlook allows 4 per app and mailbox).
    pub async fn get_json(
        &self,
        url: &str,
        token: &SecretString,
        prefer: Option<&str>,
        limiter: &tokio::sync::Semaphore,
        policy: &RetryPolicy,
    ) -> Result<serde_json::Value, GraphError> {
        self.get_parsed(url, token, prefer, limiter, policy).await
    }

    /// [`Graph::get_json`], with the body read straight into `T` (no intermediate
    /// `serde_json::Value`); a body that is not valid JSON for `T` is [`GraphError::Malformed`]
    /// and retried like one.
    pub async fn get_parsed<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        token: &SecretString,
        prefer: Option<&str>,
        limiter: &tokio::sync::Semaphore,
        policy: &RetryPolicy,
    ) -> Result<T, GraphError> {
        let mut retry = 0;
        loop {
            let result = {
                let _permit = limiter
                    .acquire()
                    .await
                    .map_err(|_| GraphError::Network("cancelled".into()))?;
                let mut request = self.http.get(url).bearer_auth(token.expose_secret());
                if let Some(p) = prefer {
                    request = request.header("Prefer", p);
                }
                match request.send().await {
                    Ok(response) => read(response).await.and_then(|body| {
                        serde_json::from_slice::<T>(&body)
                            .map_err(|e| GraphError::Malformed(e.to_string()))
                    }),
                    Err(e) => Err(GraphError::Network(crate::http::describe(&e))),
                }
            };
            match result {
                Ok(v) => return Ok(v),
                Err(e) => {
                    retry += 1;
                    let Some(after) = retry_after(&e) else {
                        return Err(e);
                    };
                    if retry >= policy.attempts {
                        return Err(e);
                    }
                    let wait = match after {
                        Some(d) if d > policy.max => return Err(e),
                        Some(d) => d,
                        None => policy.backoff(retry),
                    };
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let p = RetryPolicy {
            attempts: 10,
            base: Duration::from_millis(100),
            max: Duration::from_secs(2),
        };
        let first = p.backoff(1);
        assert!(first >= Duration::from_millis(75) && first <= Duration::from_millis(125));
        let fourth = p.backoff(4);
        assert!(fourth >= Duration::from_millis(600) && fourth <= Duration::from_millis(1000));
        assert!(p.backoff(30) <= Duration::from_secs(2));
    }

    #[test]
    fn retry_after_dates_use_the_server_clock() {
        // The server's clock is ten minutes ahead of ours (or behind): the wait is what it
        // meant, five seconds, not ten minutes and five seconds (or nothing).
        let now = std::time::SystemTime::now();
        for skew in [600i64, -600] {
            let server_now = if skew > 0 {
                now + Duration::from_secs(600)
            } else {
                now - Duration::from_secs(600)
            };
            let date = httpdate::fmt_http_date(server_now);
            let until = httpdate::fmt_http_date(server_now + Duration::from_secs(5));
            assert_eq!(
                retry_after_on_server_clock(&until, Some(&date)),
                Some(Duration::from_secs(5)),
                "skew {skew}"
            );
        }
        // A date already past on the server's clock: at once. No usable Date: our clock.
        let date = "Wed, 21 Oct 2015 07:28:00 GMT";
        assert_eq!(
            retry_after_on_server_clock("Wed, 21 Oct 2015 07:27:00 GMT", Some(date)),
            Some(Duration::ZERO)
        );
        let later = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(30));
        let wait = retry_after_on_server_clock(&later, Some("garbage")).unwrap();
        assert!(wait > Duration::from_secs(20) && wait <= Duration::from_secs(30));
        assert_eq!(retry_after_on_server_clock("soon", Some(date)), None);
    }

    #[test]
    fn only_transient_errors_are_retried() {
        assert_eq!(
            retry_after(&GraphError::Throttled(Some(Duration::from_secs(3)))),
            Some(Some(Duration::from_secs(3)))
        );
        assert_eq!(retry_after(&GraphError::Server(503)), Some(None));
        assert_eq!(retry_after(&GraphError::Unauthorized("x".into())), None);
        assert_eq!(retry_after(&GraphError::Other(404, "x".into())), None);
    }
}
