//! Paging helpers: opaque state tokens (`$skiptoken`, `$deltatoken`), `Prefer:
//! odata.maxpagesize` and `$top`.
//!
//! Tokens are base64url (no padding) of a small JSON object. Clients must treat them as
//! opaque, like Graph's; the emulator only needs them to be self-contained.

use std::collections::HashMap;

use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Largest `Prefer: odata.maxpagesize` honoured for contacts (larger values are capped).
pub const MAX_PAGE_SIZE: usize = 1000;

/// Encodes a state object as an opaque token.
pub fn encode<T: Serialize>(state: &T) -> String {
    let json = serde_json::to_vec(state).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

/// Decodes a token made by [`encode`]; `None` for anything else.
pub fn decode<T: DeserializeOwned>(token: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(token.trim()).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A query option, with or without the `$` (Graph accepts both), case-insensitive name.
pub fn option<'a>(q: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    q.iter()
        .find(|(k, _)| {
            let k = k.strip_prefix('$').unwrap_or(k);
            k.eq_ignore_ascii_case(name)
        })
        .map(|(_, v)| v.as_str())
}

/// `odata.maxpagesize` from the `Prefer` header: `Some((requested, applied))` when present and
/// a positive number (applied = capped at `max`).
pub fn max_page_size(headers: &HeaderMap, max: usize) -> Option<(usize, usize)> {
    for value in headers.get_all("prefer") {
        let Ok(v) = value.to_str() else { continue };
        for pref in v.split(',') {
            let Some((k, n)) = pref.split_once('=') else {
                continue;
            };
            if k.trim().eq_ignore_ascii_case("odata.maxpagesize")
                && let Ok(n) = n.trim().trim_matches('"').parse::<usize>()
                && n > 0
            {
                return Some((n, n.min(max)));
            }
        }
    }
    None
}

/// Builds `{base}?{pairs}` with `$` kept literal in the names.
pub fn url_with(base: &str, pairs: &[(&str, String)]) -> String {
    if pairs.is_empty() {
        return base.to_string();
    }
    let q: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode_component(v)))
        .collect();
    format!("{base}?{}", q.join("&"))
}

fn encode_component(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes())
        .collect::<String>()
        .replace("%2C", ",")
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let t = encode(&(1u64, "x".to_string()));
        assert_eq!(decode::<(u64, String)>(&t), Some((1, "x".to_string())));
        assert_eq!(decode::<(u64, String)>("!!"), None);
    }

    #[test]
    fn prefer_header() {
        let mut h = HeaderMap::new();
        h.insert(
            "prefer",
            "odata.track-changes, odata.maxpagesize=5000"
                .parse()
                .unwrap(),
        );
        assert_eq!(max_page_size(&h, 1000), Some((5000, 1000)));
        h.insert("prefer", "odata.maxpagesize=0".parse().unwrap());
        assert_eq!(max_page_size(&h, 1000), None);
    }
}
