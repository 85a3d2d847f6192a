//! Signing in to Microsoft 365 (Entra ID): discovery, the flows, the token cache.
//!
//! - [`discovery`]: endpoints from the authority's OpenID Connect document.
//! - [`flows`]: authorization code + PKCE on a loopback redirect, device code, refresh.
//! - [`loopback`]: the one-shot redirect listener.
//! - [`token_store`]: where a remembered sign-in is kept (OS keyring or a user-only file).
//!
//! Invariant: tokens are `SecretString`s from the moment they arrive; no error, log line,
//! state or panic message ever contains one.

pub mod discovery;
pub mod flows;
pub mod loopback;
pub mod token_store;

use std::{fmt, time::Duration};

use secrecy::SecretString;

/// The scopes the features need; `User.Read.All` only with the directory (it is the least
/// privilege that returns colleagues' phone numbers; `User.ReadBasic.All` does not).
///
/// ```
/// let s = contact_ms365::auth::scopes(true);
/// assert!(s.contains(&"User.Read.All") && s.contains(&"offline_access"));
/// assert!(!contact_ms365::auth::scopes(false).contains(&"User.Read.All"));
/// ```
pub fn scopes(directory: bool) -> Vec<&'static str> {
    let mut s = vec![
        "offline_access",
        "User.Read",
        "Contacts.Read",
        "Presence.ReadWrite",
    ];
    if directory {
        s.push("User.Read.All");
    }
    s
}

/// Tokens of the current sign-in.
pub struct Tokens {
    /// The bearer token for Graph.
    pub access: SecretString,
    /// When it stops working (taken a little early).
    pub expires_at: std::time::Instant,
    /// The refresh token (own sign-in only).
    pub refresh: Option<SecretString>,
    /// Whose login these are.
    pub source: TokenSource,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("access", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .field("refresh", &self.refresh.as_ref().map(|_| "[redacted]"))
            .field("source", &self.source)
            .finish()
    }
}

/// Where the tokens come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenSource {
    /// The plugin's own sign-in.
    Own,
    /// The host's Microsoft 365 login, issued to the app `client_id`.
    Host {
        /// The host app's client id (used as the presence `sessionId`).
        client_id: String,
    },
}

/// Why a sign-in step failed. Messages are for people and never contain a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// Microsoft needs the user to sign in again (`invalid_grant`, `interaction_required`,
    /// `consent_required`, `login_required`): expired, revoked, MFA, sign-in frequency.
    InteractionRequired(String),
    /// The user declined or cancelled.
    Declined(String),
    /// No browser could be opened.
    NoBrowser,
    /// Nothing came back in time.
    TimedOut,
    /// Switched off or signed out meanwhile.
    Cancelled,
    /// Microsoft or the network failed for now; retrying later may work.
    Transient(String),
    /// The app registration or the settings are wrong; retrying will not help.
    Config(String),
}

impl AuthError {
    /// Whether retrying the same request later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, AuthError::Transient(_))
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::InteractionRequired(m) => {
                write!(f, "Microsoft asks you to sign in again: {m}")
            }
            AuthError::Declined(m) => write!(f, "sign-in was declined: {m}"),
            AuthError::NoBrowser => f.write_str("no browser could be opened"),
            AuthError::TimedOut => f.write_str("sign-in timed out"),
            AuthError::Cancelled => f.write_str("sign-in was cancelled"),
            AuthError::Transient(m) => write!(f, "Microsoft 365 could not be reached: {m}"),
            AuthError::Config(m) => write!(f, "sign-in is misconfigured: {m}"),
        }
    }
}

impl std::error::Error for AuthError {}

/// How long an access token is trusted: its lifetime minus a margin, so it is refreshed before
/// Graph would refuse it (and clock skew of a few minutes does not matter).
pub fn usable_for(expires_in: Option<Duration>) -> Duration {
    let lifetime = expires_in.unwrap_or(Duration::from_secs(3600));
    let margin = (lifetime / 10).clamp(Duration::from_secs(30), Duration::from_secs(300));
    lifetime.saturating_sub(margin).max(Duration::from_secs(10))
}

/// The first line of an identity-platform error description (its `AADSTSnnnnn: text`), cut
/// to a readable length.
pub fn aadsts_summary(description: &str) -> String {
    let line = description.lines().next().unwrap_or("").trim();
    let mut s: String = line.chars().take(300).collect();
    if line.chars().count() > 300 {
        s.push('…');
    }
    s
}
