//! Fault injection: rules that make the next N matching requests fail in a chosen way.

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::errors::{AadError, graph_error_body, graph_throttled_body};
use crate::server::RequestIds;

/// What happens to a matching request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Answer with this status (400..=599) instead of running the request, with the body the
    /// service would send (Graph error body under `/v1.0`, identity-platform error elsewhere).
    /// `retry_after` (seconds or an HTTP date) becomes the `Retry-After` header.
    Status {
        /// HTTP status.
        status: u16,
        /// `Retry-After` value, sent verbatim.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after: Option<String>,
    },
    /// Wait this many milliseconds, then run the request normally.
    Delay {
        /// Delay in milliseconds.
        ms: u64,
    },
    /// Close the connection without any response (the request is not processed).
    DropConnection,
    /// Run the request, then corrupt the JSON body (status and headers kept).
    MalformedJson,
    /// Run the request, then cut the body in half (a consistent `Content-Length`, incomplete JSON).
    TruncatedJson,
    /// Run the request, send the status, the headers (with the full `Content-Length`) and the
    /// first half of the body, then reset the connection: a connection lost in the middle of
    /// a page.
    ResetMidBody,
    /// Run the request, then append these items to the JSON body's `value` array: Graph may
    /// deliver an entity more than once in a delta round (a replay, or a later version of an
    /// item an earlier page already held).
    AppendItems {
        /// Items appended, in order.
        items: Vec<serde_json::Value>,
    },
}

impl Fault {
    /// Short name for the request log.
    pub fn label(&self) -> String {
        match self {
            Fault::Status { status, .. } => format!("status {status}"),
            Fault::Delay { ms } => format!("delay {ms}ms"),
            Fault::DropConnection => "drop_connection".into(),
            Fault::MalformedJson => "malformed_json".into(),
            Fault::TruncatedJson => "truncated_json".into(),
            Fault::ResetMidBody => "reset_mid_body".into(),
            Fault::AppendItems { items } => format!("append_items {}", items.len()),
        }
    }

    /// Checks the values (status range).
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Fault::Status { status, .. } if !(400..=599).contains(status) => Err(format!(
                "status {status} is not an error status (400..=599)"
            )),
            _ => Ok(()),
        }
    }
}

fn one() -> u32 {
    1
}

/// A fault rule: applies `fault` to the next `count` requests whose path starts with
/// `path_prefix` (and whose method is `method`, when given).
///
/// A `path_prefix` holding a `?` is matched against the percent-decoded path and query
/// (`path?query`), so a rule can pick, say, only the continuation pages of a delta round
/// (`/v1.0/me/contactFolders/{id}/contacts/delta?$skiptoken=`) or only delta links
/// (`...?$deltatoken=`). Without a `?` only the path counts, as sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRule {
    /// Path prefix, e.g. `/v1.0/me` or `/organizations/oauth2/v2.0/token`.
    pub path_prefix: String,
    /// HTTP method (case-insensitive); any method when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// How many requests it applies to (default 1).
    #[serde(default = "one")]
    pub count: u32,
    /// What happens.
    pub fault: Fault,
}

impl FaultRule {
    fn matches(&self, method: &Method, path: &str, query: Option<&str>) -> bool {
        let target_matches = if self.path_prefix.contains('?') {
            let target = format!(
                "{}?{}",
                percent_decode(path),
                percent_decode(query.unwrap_or(""))
            );
            target.starts_with(&self.path_prefix)
        } else {
            path.starts_with(&self.path_prefix)
        };
        target_matches
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method.as_str()))
    }
}

/// Takes the fault for this request from the first matching rule, using up one of its count.
pub fn take(
    rules: &mut Vec<FaultRule>,
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> Option<Fault> {
    let idx = rules
        .iter()
        .position(|r| r.count > 0 && r.matches(method, path, query))?;
    let rule = &mut rules[idx];
    rule.count -= 1;
    let fault = rule.fault.clone();
    if rule.count == 0 {
        rules.remove(idx);
    }
    Some(fault)
}

/// The response for a `Status` fault.
pub fn status_response(
    status: u16,
    retry_after: Option<&str>,
    path: &str,
    ids: &RequestIds,
    now: OffsetDateTime,
    base: &str,
) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = if path.starts_with("/v1.0") {
        match status {
            429 => graph_throttled_body(ids, now),
            503 => graph_error_body(
                ids,
                now,
                "serviceNotAvailable",
                "The service is temporarily unavailable. Please retry later.",
            ),
            504 => graph_error_body(
                ids,
                now,
                "GatewayTimeout",
                "The gateway timed out waiting for the service.",
            ),
            502 => graph_error_body(
                ids,
                now,
                "BadGateway",
                "The gateway received an invalid response from the service.",
            ),
            500 => graph_error_body(
                ids,
                now,
                "generalException",
                "An unspecified error has occurred.",
            ),
            s => graph_error_body(
                ids,
                now,
                code.canonical_reason()
                    .unwrap_or("error")
                    .replace(' ', "")
                    .as_str(),
                &format!("Injected fault: HTTP {s}."),
            ),
        }
    } else {
        let err = match status {
            429 => AadError::new(
                "temporarily_unavailable",
                90055,
                "The tenant is throttled: too many requests. Retry after the delay in the Retry-After header.",
            ),
            500 | 502 => AadError::new(
                "server_error",
                90100,
                "An unexpected error occurred on the server.",
            ),
            503 | 504 => AadError::new(
                "temporarily_unavailable",
                90024,
                "RequestBudgetExceededError: a transient error has occurred. Try again.",
            ),
            s => AadError::new(
                "invalid_request",
                90000 + u32::from(s),
                format!("Injected fault: HTTP {s}."),
            ),
        };
        err.with_status(code).body(ids, now, base)
    };
    let mut resp = (code, axum::Json(body)).into_response();
    if let Some(v) = retry_after.and_then(|v| HeaderValue::from_str(v).ok()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// The body with its first `:` turned into `=` (or `{` for an empty body): no longer JSON.
pub fn malform(body: &Bytes) -> Bytes {
    let mut v = body.to_vec();
    match v.iter().position(|b| *b == b':') {
        Some(i) => v[i] = b'=',
        None => v = b"{".to_vec(),
    }
    Bytes::from(v)
}

/// The first half of the body (at least one byte shorter than the original).
pub fn truncate(body: &Bytes) -> Bytes {
    body.slice(0..body.len() / 2)
}

/// `%XX` escapes decoded (invalid ones kept as they are); `+` stays `+`.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| char::from(c).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The JSON body with `items` appended to its `value` array (unchanged when the body is not a
/// JSON object with a `value` array).
pub fn append_items(body: &Bytes, items: &[serde_json::Value]) -> Bytes {
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return body.clone();
    };
    match v.get_mut("value").and_then(serde_json::Value::as_array_mut) {
        Some(value) => value.extend(items.iter().cloned()),
        None => return body.clone(),
    }
    Bytes::from(serde_json::to_vec(&v).unwrap_or_else(|_| body.to_vec()))
}

/// The response with its full `Content-Length` but only the first half of the body; then,
/// once that half is on the wire, the body fails, so the server aborts the connection instead
/// of finishing it.
pub fn reset_mid_body(resp: Response, body: Bytes) -> Response {
    let (mut parts, _) = resp.into_parts();
    parts
        .headers
        .insert(header::CONTENT_LENGTH, body.len().into());
    let stream = MidBody {
        half: Some(body.slice(0..body.len() / 2)),
        pause: Box::pin(tokio::time::sleep(MID_BODY_PAUSE)),
    };
    Response::from_parts(parts, Body::from_stream(stream))
}

/// How long the half body stays on the wire before the reset (the server flushes it while the
/// body waits).
const MID_BODY_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// Half a body, a pause, then an error.
struct MidBody {
    half: Option<Bytes>,
    pause: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl futures_core::Stream for MidBody {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        if let Some(half) = self.half.take() {
            return std::task::Poll::Ready(Some(Ok(half)));
        }
        std::task::ready!(self.pause.as_mut().poll(cx));
        std::task::Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset by injected fault",
        ))))
    }
}

/// Replaces a response body, dropping a stale `Content-Length`.
pub fn with_body(resp: Response, body: Bytes) -> Response {
    let (mut parts, _) = resp.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

/// Builds a fault rule as in the HTTP control API.
pub fn rule_from_json(v: serde_json::Value) -> Result<FaultRule, String> {
    let rule: FaultRule = serde_json::from_value(v).map_err(|e| e.to_string())?;
    rule.fault.validate()?;
    Ok(rule)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn _example() -> serde_json::Value {
        json!({"path_prefix": "/v1.0/me", "count": 1, "fault": {"kind": "status", "status": 429, "retry_after": "3"}})
    }

    #[test]
    fn rules_count_down_and_match() {
        let mut rules = vec![rule_from_json(_example()).unwrap()];
        assert_eq!(take(&mut rules, &Method::GET, "/v1.0/users/x", None), None);
        assert!(matches!(
            take(&mut rules, &Method::GET, "/v1.0/me", None),
            Some(Fault::Status { status: 429, .. })
        ));
        assert!(rules.is_empty());
        let mut rules = vec![FaultRule {
            path_prefix: "/".into(),
            method: Some("post".into()),
            count: 2,
            fault: Fault::DropConnection,
        }];
        assert_eq!(take(&mut rules, &Method::GET, "/a", None), None);
        assert_eq!(
            take(&mut rules, &Method::POST, "/a", None),
            Some(Fault::DropConnection)
        );
        assert_eq!(
            take(&mut rules, &Method::POST, "/a", None),
            Some(Fault::DropConnection)
        );
        assert_eq!(take(&mut rules, &Method::POST, "/a", None), None);
        assert!(
            rule_from_json(json!({"path_prefix":"/","fault":{"kind":"status","status":200}}))
                .is_err()
        );
    }

    #[test]
    fn a_prefix_with_a_query_matches_the_decoded_path_and_query() {
        let mut rules = vec![FaultRule {
            path_prefix: "/v1.0/me/contactFolders/AB=/contacts/delta?$skiptoken=".into(),
            method: None,
            count: 1,
            fault: Fault::ResetMidBody,
        }];
        let path = "/v1.0/me/contactFolders/AB%3D/contacts/delta";
        let first = Some("$select=displayName");
        assert_eq!(take(&mut rules, &Method::GET, path, first), None);
        assert_eq!(take(&mut rules, &Method::GET, path, None), None);
        let next = Some("%24skiptoken=eyJ1");
        assert_eq!(
            take(&mut rules, &Method::GET, path, next),
            Some(Fault::ResetMidBody)
        );
        assert!(rules.is_empty());
        assert_eq!(percent_decode("a%3Db%zz%4"), "a=b%zz%4");
    }

    #[test]
    fn appends_items_to_a_page() {
        let page = Bytes::from_static(br#"{"value":[{"id":"a"}],"@odata.nextLink":"x"}"#);
        let out = append_items(&page, &[json!({"id": "a", "displayName": "A2"})]);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["value"].as_array().unwrap().len(), 2);
        assert_eq!(v["value"][1]["displayName"], "A2");
        assert_eq!(v["@odata.nextLink"], "x");
        let not_a_page = Bytes::from_static(b"[1]");
        assert_eq!(append_items(&not_a_page, &[json!(1)]), not_a_page);
    }

    #[test]
    fn new_kinds_round_trip_as_json() {
        let rule =
            rule_from_json(json!({"path_prefix": "/v1.0", "fault": {"kind": "reset_mid_body"}}))
                .unwrap();
        assert_eq!(rule.fault, Fault::ResetMidBody);
        assert_eq!(rule.count, 1);
        let rule = rule_from_json(
            json!({"path_prefix": "/v1.0", "fault": {"kind": "append_items", "items": [{"id": "x"}]}}),
        )
        .unwrap();
        assert_eq!(rule.fault.label(), "append_items 1");
    }

    #[test]
    fn corrupts() {
        let b = Bytes::from_static(br#"{"a":1}"#);
        assert!(serde_json::from_slice::<serde_json::Value>(&malform(&b)).is_err());
        assert!(serde_json::from_slice::<serde_json::Value>(&truncate(&b)).is_err());
    }
}
