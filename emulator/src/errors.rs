//! Error bodies as the identity platform and Microsoft Graph send them.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use time::OffsetDateTime;

use crate::clock::{aad_timestamp, graph_date};
use crate::server::RequestIds;

/// An identity-platform (Entra ID v2.0) protocol error: the `error` value, the AADSTS number and
/// its text.
#[derive(Debug, Clone)]
pub struct AadError {
    /// HTTP status (400, or 401 for `invalid_client`).
    pub status: StatusCode,
    /// OAuth `error` value, e.g. `invalid_grant`.
    pub error: &'static str,
    /// AADSTS number, e.g. `50173`.
    pub code: u32,
    /// Text after `AADSTSnnnnn: `.
    pub message: String,
}

impl AadError {
    /// A 400 error.
    pub fn new(error: &'static str, code: u32, message: impl Into<String>) -> Self {
        let status = if error == "invalid_client" {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        };
        AadError {
            status,
            error,
            code,
            message: message.into(),
        }
    }

    /// Same error with another HTTP status.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// `invalid_request` AADSTS900144 for a missing parameter.
    pub fn missing(param: &str) -> Self {
        AadError::new(
            "invalid_request",
            900144,
            format!("The request body must contain the following parameter: '{param}'."),
        )
    }

    /// `AADSTSnnnnn: text` (first line of `error_description`).
    pub fn headline(&self) -> String {
        format!("AADSTS{}: {}", self.code, self.message)
    }

    /// The JSON body the token, devicecode and discovery endpoints send.
    pub fn body(&self, ids: &RequestIds, now: OffsetDateTime, base: &str) -> serde_json::Value {
        let ts = aad_timestamp(now);
        json!({
            "error": self.error,
            "error_description": format!(
                "{}\r\nTrace ID: {}\r\nCorrelation ID: {}\r\nTimestamp: {}",
                self.headline(), ids.request_id, ids.correlation_id, ts
            ),
            "error_codes": [self.code],
            "timestamp": ts,
            "trace_id": ids.request_id,
            "correlation_id": ids.correlation_id,
            "error_uri": format!("{base}/error?code={}", self.code),
        })
    }

    /// The JSON error response.
    pub fn response(&self, ids: &RequestIds, now: OffsetDateTime, base: &str) -> Response {
        let mut resp = (self.status, axum::Json(self.body(ids, now, base))).into_response();
        no_store(&mut resp);
        resp
    }
}

/// Adds the identity platform's `Cache-Control: no-store, no-cache` and `Pragma: no-cache`.
pub fn no_store(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// A Graph error body: `{"error":{"code","message","innerError":{"date","request-id","client-request-id"}}}`.
pub fn graph_error_body(
    ids: &RequestIds,
    now: OffsetDateTime,
    code: &str,
    message: &str,
) -> serde_json::Value {
    json!({
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": graph_date(now),
                "request-id": ids.request_id,
                "client-request-id": ids.client_request_id,
            }
        }
    })
}

/// A Graph error response.
pub fn graph_error(
    ids: &RequestIds,
    now: OffsetDateTime,
    status: StatusCode,
    code: &str,
    message: &str,
) -> Response {
    (
        status,
        axum::Json(graph_error_body(ids, now, code, message)),
    )
        .into_response()
}

/// Graph's throttling body (429), as in the throttling documentation.
pub fn graph_throttled_body(ids: &RequestIds, now: OffsetDateTime) -> serde_json::Value {
    json!({
        "error": {
            "code": "TooManyRequests",
            "message": "Please retry again later.",
            "innerError": {
                "code": "429",
                "date": graph_date(now),
                "message": "Please retry after",
                "request-id": ids.request_id,
                "client-request-id": ids.client_request_id,
                "status": "429",
            }
        }
    })
}

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The sign-in page's error screen, for authorize errors that cannot be redirected (unknown
/// tenant or client, untrusted redirect URI). HTTP 400, HTML.
pub fn sign_in_error_page(err: &AadError, ids: &RequestIds, now: OffsetDateTime) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign in to your account</title></head>\n\
         <body><h1>Sign in</h1>\n<p>Sorry, but we’re having trouble signing you in.</p>\n\
         <p id=\"error\" data-error=\"{error}\" data-code=\"{code}\">{headline}</p>\n\
         <p>Request Id: {rid}<br>Correlation Id: {cid}<br>Timestamp: {ts}</p>\n</body></html>\n",
        error = err.error,
        code = err.code,
        headline = html_escape(&err.headline()),
        rid = ids.request_id,
        cid = ids.correlation_id,
        ts = time_iso(now),
    );
    let mut resp = (StatusCode::BAD_REQUEST, axum::response::Html(html)).into_response();
    no_store(&mut resp);
    resp
}

fn time_iso(now: OffsetDateTime) -> String {
    crate::clock::rfc3339(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> RequestIds {
        RequestIds {
            request_id: "11111111-1111-4111-8111-111111111111".into(),
            client_request_id: "22222222-2222-4222-8222-222222222222".into(),
            correlation_id: "22222222-2222-4222-8222-222222222222".into(),
        }
    }

    #[test]
    fn aad_body_shape() {
        let now = time::macros::datetime!(2025-01-02 03:04:05 UTC);
        let e = AadError::new("invalid_grant", 50173, "The provided grant has expired.");
        let b = e.body(&ids(), now, "http://127.0.0.1:1");
        assert_eq!(b["error"], "invalid_grant");
        assert_eq!(b["error_codes"][0], 50173);
        assert_eq!(b["timestamp"], "2025-01-02 03:04:05Z");
        assert_eq!(
            b["error_description"],
            "AADSTS50173: The provided grant has expired.\r\nTrace ID: 11111111-1111-4111-8111-111111111111\r\nCorrelation ID: 22222222-2222-4222-8222-222222222222\r\nTimestamp: 2025-01-02 03:04:05Z"
        );
        assert_eq!(
            AadError::new("invalid_client", 700025, "x").status,
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn graph_body_shape() {
        let now = time::macros::datetime!(2025-01-02 03:04:05 UTC);
        let b = graph_error_body(
            &ids(),
            now,
            "InvalidAuthenticationToken",
            "Access token is empty.",
        );
        assert_eq!(b["error"]["innerError"]["date"], "2025-01-02T03:04:05");
        assert_eq!(b["error"]["innerError"]["request-id"], ids().request_id);
    }

    #[test]
    fn escapes() {
        assert_eq!(
            html_escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
