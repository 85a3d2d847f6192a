//! The request log: what clients asked and what they got, with every secret value redacted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use url::form_urlencoded;

/// Parameter names whose values are never logged.
pub const SECRET_PARAMS: &[&str] = &[
    "code",
    "code_verifier",
    "refresh_token",
    "device_code",
    "access_token",
    "id_token",
    "client_secret",
    "client_assertion",
    "assertion",
    "password",
];

/// What replaces a secret value.
pub const REDACTED: &str = "REDACTED";

/// One logged request (control routes are not logged).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RequestLogEntry {
    /// HTTP method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Query string with secret values replaced by `REDACTED`.
    pub query: Option<String>,
    /// Form body parameters (`application/x-www-form-urlencoded`), secrets redacted.
    pub form: Option<BTreeMap<String, String>>,
    /// Status sent; `None` when the connection was dropped by a fault.
    pub status: Option<u16>,
    /// The injected fault that applied, e.g. `status 429`, `drop_connection`.
    pub fault: Option<String>,
    /// Emulator time (RFC 3339).
    pub time: String,
    /// The `request-id` header of the response.
    pub request_id: String,
}

fn is_secret(key: &str) -> bool {
    SECRET_PARAMS.iter().any(|s| s.eq_ignore_ascii_case(key))
}

/// The query string with secret values redacted.
pub fn redact_query(query: &str) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if is_secret(&k) {
            out.append_pair(&k, REDACTED);
        } else {
            out.append_pair(&k, &v);
        }
    }
    out.finish()
}

/// Form parameters with secret values redacted (the first value of a repeated key wins).
pub fn redact_form(body: &[u8]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(body) {
        let v = if is_secret(&k) {
            REDACTED.to_string()
        } else {
            v.into_owned()
        };
        out.entry(k.into_owned()).or_insert(v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts() {
        let q = redact_query("code=abc123&state=s%201&Code_Verifier=xyz");
        assert_eq!(q, "code=REDACTED&state=s+1&Code_Verifier=REDACTED");
        let f = redact_form(b"grant_type=refresh_token&refresh_token=secret&client_id=c");
        assert_eq!(f["refresh_token"], "REDACTED");
        assert_eq!(f["grant_type"], "refresh_token");
        assert!(!format!("{f:?}").contains("secret"));
    }
}
