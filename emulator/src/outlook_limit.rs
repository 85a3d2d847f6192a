//! The Outlook service's concurrency limit: at most [`MAX_CONCURRENT`] requests in flight per
//! app id + mailbox (reference §1.6). The server pipeline takes a slot for every contacts
//! request before it runs (and before an injected delay), so slow requests really do block
//! further ones; the fifth concurrent request is answered 429 `ApplicationThrottled` /
//! `MailboxConcurrency` with `Retry-After`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use time::OffsetDateTime;

use crate::clock::graph_date;
use crate::server::RequestIds;

/// Concurrent requests allowed per app + mailbox.
pub const MAX_CONCURRENT: usize = 4;
/// `Retry-After` (seconds) on a concurrency 429.
pub const RETRY_AFTER_SECS: u64 = 1;

/// In-flight counters.
#[derive(Debug, Default, Clone)]
pub struct Concurrency(Arc<Mutex<HashMap<(String, String), usize>>>);

/// A taken slot; released on drop.
#[derive(Debug)]
pub struct Slot {
    map: Concurrency,
    key: (String, String),
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut m = self.map.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.key);
            }
        }
    }
}

impl Concurrency {
    /// Takes a slot for (client id, mailbox user id), or `None` when all are busy.
    pub fn acquire(&self, client_id: &str, user_id: &str) -> Option<Slot> {
        let key = (client_id.to_ascii_lowercase(), user_id.to_string());
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(key.clone()).or_insert(0);
        if *n >= MAX_CONCURRENT {
            return None;
        }
        *n += 1;
        Some(Slot {
            map: self.clone(),
            key,
        })
    }
}

/// Whether a Graph path is served by the Outlook service (contacts and contact folders).
pub fn is_outlook_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/v1.0/") else {
        return false;
    };
    let lower = rest.to_ascii_lowercase();
    let after_user = if let Some(r) = lower.strip_prefix("me/") {
        r.to_string()
    } else if let Some(r) = lower.strip_prefix("users/") {
        r.split_once('/')
            .map(|(_, r)| r.to_string())
            .unwrap_or_default()
    } else {
        return false;
    };
    after_user.starts_with("contacts") || after_user.starts_with("contactfolders")
}

/// The bearer token value of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

/// Outlook's 429 for the concurrency limit.
pub fn throttled(ids: &RequestIds, now: OffsetDateTime) -> Response {
    let body = json!({
        "error": {
            "code": "ApplicationThrottled",
            "message": "Application is over its MailboxConcurrency limit.",
            "innerError": {
                "code": "MailboxConcurrency",
                "date": graph_date(now),
                "request-id": ids.request_id,
                "client-request-id": ids.client_request_id,
            }
        }
    });
    let mut resp = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    resp.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_str(&RETRY_AFTER_SECS.to_string()).expect("digits"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_slots_per_app_and_mailbox() {
        let c = Concurrency::default();
        let slots: Vec<_> = (0..4).map(|_| c.acquire("app", "u1").unwrap()).collect();
        assert!(c.acquire("app", "u1").is_none());
        assert!(c.acquire("APP", "u1").is_none());
        assert!(c.acquire("app", "u2").is_some());
        assert!(c.acquire("other", "u1").is_some());
        drop(slots);
        assert!(c.acquire("app", "u1").is_some());
    }

    #[test]
    fn outlook_paths() {
        assert!(is_outlook_path("/v1.0/me/contacts"));
        assert!(is_outlook_path("/v1.0/me/contactFolders/x/contacts/delta"));
        assert!(is_outlook_path("/v1.0/users/abc/contacts"));
        assert!(!is_outlook_path("/v1.0/me/presence"));
        assert!(!is_outlook_path("/v1.0/users"));
    }
}
