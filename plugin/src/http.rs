//! The HTTP client every request uses: rustls, no redirects (an OAuth client must not follow
//! them), bounded time-outs, and error descriptions without URLs (query strings may hold codes).

use std::time::Duration;

/// Time to connect.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time for a whole request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Builds the client.
pub fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("contact-ms365/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// What went wrong, for a person: kind and cause, never the URL.
pub fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_decode() {
        "unreadable answer"
    } else if e.is_body() {
        "connection broken while reading"
    } else {
        "request failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind} ({cause})")
    }
}
