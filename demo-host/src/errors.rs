//! The scripted mode's error codes, and how a plugin's [`IntegrationError`] maps onto them.

use std::fmt;

use host_api::{ErrorCode, IntegrationError};

/// The error codes of the scripted mode (`demo-host-script.md`, "Lines").
pub mod code {
    /// Malformed line, unknown op or field, wrong type, value out of range.
    pub const BAD_REQUEST: &str = "bad_request";
    /// The feature needs a licensed add-on.
    pub const UNLICENSED: &str = "unlicensed";
    /// The feature needs a Microsoft 365 sign-in.
    pub const NOT_SIGNED_IN: &str = "not_signed_in";
    /// A contact sync did not complete.
    pub const SYNC_FAILED: &str = "sync_failed";
    /// Something did not happen in time.
    pub const TIMEOUT: &str = "timeout";
    /// `quit`, SIGINT or SIGTERM arrived first.
    pub const CANCELLED: &str = "cancelled";
    /// Anything else the plugin reports (or no plugin is loaded).
    pub const PLUGIN_ERROR: &str = "plugin_error";
}

/// A failed op: a code from [`code`] and a message for a person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpError {
    /// One of the [`code`] constants.
    pub code: &'static str,
    /// What happened.
    pub message: String,
}

impl OpError {
    /// An error with `code` and `message`.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// `bad_request` with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(code::BAD_REQUEST, message)
    }

    /// `plugin_error` with `message`.
    pub fn plugin_error(message: impl Into<String>) -> Self {
        Self::new(code::PLUGIN_ERROR, message)
    }

    /// `cancelled`.
    pub fn cancelled() -> Self {
        Self::new(
            code::CANCELLED,
            "cancelled: the host is shutting down (quit, SIGINT or SIGTERM)",
        )
    }

    /// `plugin_error` "no plugin loaded".
    pub fn no_plugin() -> Self {
        Self::plugin_error("no plugin loaded")
    }
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for OpError {}

impl From<IntegrationError> for OpError {
    fn from(e: IntegrationError) -> Self {
        map_plugin_error(&e)
    }
}

/// Maps a plugin's error onto the scripted mode's codes: the codes both sides know map to
/// themselves; `panicked`, `unsupported`, `plugin_error` and any code this host does not know
/// become `plugin_error`, with a message that says what.
pub fn map_plugin_error(e: &IntegrationError) -> OpError {
    let message = e.message.as_str().to_owned();
    match e.code {
        ErrorCode::BAD_REQUEST => OpError::new(code::BAD_REQUEST, message),
        ErrorCode::UNLICENSED => OpError::new(code::UNLICENSED, message),
        ErrorCode::NOT_SIGNED_IN => OpError::new(code::NOT_SIGNED_IN, message),
        ErrorCode::SYNC_FAILED => OpError::new(code::SYNC_FAILED, message),
        ErrorCode::TIMEOUT => OpError::new(code::TIMEOUT, message),
        ErrorCode::CANCELLED => OpError::new(code::CANCELLED, message),
        ErrorCode::PLUGIN_ERROR => OpError::plugin_error(message),
        ErrorCode::PANICKED => OpError::plugin_error(format!("the plugin panicked: {message}")),
        ErrorCode::UNSUPPORTED => {
            OpError::plugin_error(format!("the plugin does not support this: {message}"))
        }
        other => OpError::plugin_error(format!(
            "the plugin reported an error this host does not know (code {}): {message}",
            other.raw()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(c: ErrorCode) -> OpError {
        map_plugin_error(&IntegrationError::new(c, "boom"))
    }

    #[test]
    fn shared_codes_map_to_themselves() {
        for (c, name) in [
            (ErrorCode::BAD_REQUEST, "bad_request"),
            (ErrorCode::UNLICENSED, "unlicensed"),
            (ErrorCode::NOT_SIGNED_IN, "not_signed_in"),
            (ErrorCode::SYNC_FAILED, "sync_failed"),
            (ErrorCode::TIMEOUT, "timeout"),
            (ErrorCode::CANCELLED, "cancelled"),
            (ErrorCode::PLUGIN_ERROR, "plugin_error"),
        ] {
            let e = mapped(c);
            assert_eq!(e.code, name);
            assert_eq!(e.message, "boom");
        }
    }

    #[test]
    fn other_codes_become_plugin_error_and_say_what() {
        let p = mapped(ErrorCode::PANICKED);
        assert_eq!(p.code, "plugin_error");
        assert_eq!(p.message, "the plugin panicked: boom");
        let u = mapped(ErrorCode::UNSUPPORTED);
        assert_eq!(u.code, "plugin_error");
        assert!(u.message.contains("does not support"));
        let n = mapped(ErrorCode::from_raw(200));
        assert_eq!(n.code, "plugin_error");
        assert!(n.message.contains("200") && n.message.ends_with("boom"));
    }
}
