//! The HTTP client every request uses: rustls, no redirects (an OAuth client must not follow
//! them), bounded time-outs, and error descriptions without URLs (query strings may hold codes).

use std::time::Duration;

/// Time to connect.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time for a whole request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Overrides [`REQUEST_TIMEOUT`], in milliseconds (1,000 to 300,000; other values are ignored),
/// read when the client is built: for very slow links, and for tests of the time-out path.
pub const REQUEST_TIMEOUT_ENV: &str = "CONTACT_MS365_REQUEST_TIMEOUT_MS";

/// The request time-out in force: [`REQUEST_TIMEOUT_ENV`] when set to a value in range, else
/// [`REQUEST_TIMEOUT`].
pub fn request_timeout() -> Duration {
    timeout_from(std::env::var(REQUEST_TIMEOUT_ENV).ok().as_deref())
}

fn timeout_from(value: Option<&str>) -> Duration {
    value
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| (1_000..=300_000).contains(ms))
        .map_or(REQUEST_TIMEOUT, Duration::from_millis)
}

/// Builds the client.
pub fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(request_timeout())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeout_override_is_bounded() {
        assert_eq!(timeout_from(None), REQUEST_TIMEOUT);
        assert_eq!(timeout_from(Some("2500")), Duration::from_millis(2500));
        assert_eq!(timeout_from(Some("999")), REQUEST_TIMEOUT);
        assert_eq!(timeout_from(Some("300001")), REQUEST_TIMEOUT);
        assert_eq!(timeout_from(Some("soon")), REQUEST_TIMEOUT);
    }
}
