//! Everything the identity platform has handed out: authorization codes, device codes, access
//! and refresh tokens, and the consent each user gave each app.
//!
//! Secrets are stored only as SHA-256 digests, so nothing in a `Debug` print can leak a usable
//! value. The one exception is [`IssuedTokens`]: every access and refresh token handed out, kept
//! in clear (its `Debug` shows only the count) so that tests can check that the client under
//! test never leaks one ([`crate::Control::issued_tokens`]).

use std::collections::{BTreeSet, HashMap};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng as _;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::scopes::Requested;

/// A random URL-safe string carrying `bytes` bytes of entropy, with a fixed prefix.
pub fn new_secret(prefix: &str, bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill(&mut buf[..]);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(buf))
}

/// A device-flow user code: 9 characters from an alphabet without look-alikes.
pub fn new_user_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..9)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The key under which a secret is stored.
pub fn digest(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(secret.as_bytes()))
}

/// PKCE challenge method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChallengeMethod {
    /// `S256`.
    S256,
    /// `plain` (only when the configuration allows it).
    Plain,
}

impl ChallengeMethod {
    /// Whether `verifier` matches `challenge`.
    pub fn verify(self, verifier: &str, challenge: &str) -> bool {
        match self {
            ChallengeMethod::S256 => {
                URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == challenge
            }
            ChallengeMethod::Plain => verifier == challenge,
        }
    }
}

/// An authorization code issued by `/authorize`.
#[derive(Clone, Debug)]
pub struct AuthCode {
    /// The app it was issued to.
    pub client_id: String,
    /// The signed-in user.
    pub user_id: String,
    /// The redirect URI of the authorize request (must be repeated verbatim).
    pub redirect_uri: String,
    /// PKCE challenge.
    pub challenge: String,
    /// PKCE method.
    pub method: ChallengeMethod,
    /// Requested scopes.
    pub scopes: Requested,
    /// OpenID Connect nonce, copied into the id_token.
    pub nonce: Option<String>,
    /// Expiry (emulator clock).
    pub expires_at: OffsetDateTime,
    /// Already redeemed (single use).
    pub redeemed: bool,
}

/// Where a device-code sign-in stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceStatus {
    /// Waiting for the user.
    Pending,
    /// The user signed in and consented.
    Approved {
        /// Who.
        user_id: String,
    },
    /// The user declined.
    Declined,
    /// Tokens were issued; the device code is spent.
    Redeemed,
}

/// A device authorization from `/devicecode`.
#[derive(Clone, Debug)]
pub struct DeviceGrant {
    /// The app that asked.
    pub client_id: String,
    /// The code the user types.
    pub user_code: String,
    /// Requested scopes.
    pub scopes: Requested,
    /// When it was issued (emulator clock).
    pub created_at: OffsetDateTime,
    /// When it expires.
    pub expires_at: OffsetDateTime,
    /// Current minimum polling interval in seconds (grows by 5 on `slow_down`).
    pub interval: u64,
    /// Last poll (emulator clock).
    pub last_poll: Option<OffsetDateTime>,
    /// State.
    pub status: DeviceStatus,
}

/// An access token for Microsoft Graph.
#[derive(Clone, Debug)]
pub struct AccessToken {
    /// Signed-in user.
    pub user_id: String,
    /// App it was issued to (presence's `setPresence` checks that its `sessionId` is this id).
    pub client_id: String,
    /// Graph permissions it carries (`scp`).
    pub scopes: BTreeSet<String>,
    /// Expiry (emulator clock).
    pub expires_at: OffsetDateTime,
}

/// A refresh token.
#[derive(Clone, Debug)]
pub struct RefreshToken {
    /// User.
    pub user_id: String,
    /// App it is bound to.
    pub client_id: String,
    /// The scopes of the original request (used when a refresh omits `scope`).
    pub scopes: Requested,
    /// When it was issued.
    pub issued_at: OffsetDateTime,
    /// Expiry by inactivity (emulator clock); each rotation issues a token with a fresh window.
    pub expires_at: OffsetDateTime,
    /// Used once already and replaced by a newer token.
    pub rotated: bool,
}

/// All issued grants.
#[derive(Debug, Default)]
pub struct Grants {
    /// Authorization codes by digest.
    pub codes: HashMap<String, AuthCode>,
    /// Device grants by digest of the device code.
    pub devices: HashMap<String, DeviceGrant>,
    /// Access tokens by digest.
    pub access: HashMap<String, AccessToken>,
    /// Refresh tokens by digest.
    pub refresh: HashMap<String, RefreshToken>,
    /// Consented Graph permissions per (user id, client id).
    pub consents: HashMap<(String, String), BTreeSet<String>>,
    /// Per user: refresh tokens issued before this instant are revoked ("revoke sessions").
    pub tokens_valid_from: HashMap<String, OffsetDateTime>,
    /// Every access and refresh token handed out, for leak checks.
    pub issued: IssuedTokens,
}

/// Every access and refresh token handed out, in order, in clear: what a leak check searches
/// for. `Debug` shows only how many.
#[derive(Clone, Default)]
pub struct IssuedTokens(Vec<String>);

impl IssuedTokens {
    /// Records a token handed out.
    pub fn record(&mut self, token: &str) {
        self.0.push(token.to_owned());
    }

    /// The tokens, oldest first.
    pub fn all(&self) -> Vec<String> {
        self.0.clone()
    }
}

impl std::fmt::Debug for IssuedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IssuedTokens({} tokens, redacted)", self.0.len())
    }
}

impl Grants {
    /// Mints an access token (stored only as its digest) and returns its value.
    pub fn issue_access(
        &mut self,
        user_id: &str,
        client_id: &str,
        scopes: BTreeSet<String>,
        expires_at: OffsetDateTime,
    ) -> String {
        let access = new_secret("EwB", 96);
        self.issued.record(&access);
        self.access.insert(
            digest(&access),
            AccessToken {
                user_id: user_id.to_string(),
                client_id: client_id.to_string(),
                scopes,
                expires_at,
            },
        );
        access
    }

    /// Records consent and returns everything the user has consented to for this app.
    pub fn consent(
        &mut self,
        user_id: &str,
        client_id: &str,
        graph: &BTreeSet<String>,
    ) -> BTreeSet<String> {
        let set = self
            .consents
            .entry((user_id.to_string(), client_id.to_string()))
            .or_default();
        set.extend(graph.iter().cloned());
        set.clone()
    }

    /// What the user has consented to for this app.
    pub fn consented(&self, user_id: &str, client_id: &str) -> BTreeSet<String> {
        self.consents
            .get(&(user_id.to_string(), client_id.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    /// The device grant with this user code (case-insensitive, dashes and spaces ignored).
    pub fn device_by_user_code(&mut self, user_code: &str) -> Option<&mut DeviceGrant> {
        let wanted: String = user_code
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect::<String>()
            .to_ascii_uppercase();
        self.devices.values_mut().find(|d| d.user_code == wanted)
    }

    /// Revokes all of a user's refresh tokens (issued before `now`). Returns how many were live.
    pub fn revoke_user(&mut self, user_id: &str, now: OffsetDateTime) -> usize {
        self.tokens_valid_from.insert(user_id.to_string(), now);
        self.refresh
            .values()
            .filter(|r| r.user_id == user_id && !r.rotated)
            .count()
    }

    /// Whether this refresh token was issued before the user's revocation instant.
    pub fn is_revoked(&self, rt: &RefreshToken) -> bool {
        self.tokens_valid_from
            .get(&rt.user_id)
            .is_some_and(|from| rt.issued_at <= *from)
    }

    /// Marks a user's refresh tokens as expired by inactivity. Returns how many.
    pub fn expire_refresh(&mut self, user_id: &str, now: OffsetDateTime) -> usize {
        let mut n = 0;
        for r in self.refresh.values_mut().filter(|r| r.user_id == user_id) {
            r.expires_at = now - time::Duration::seconds(1);
            n += 1;
        }
        n
    }

    /// Makes a user's access tokens expired. Returns how many.
    pub fn expire_access(&mut self, user_id: &str, now: OffsetDateTime) -> usize {
        let mut n = 0;
        for a in self.access.values_mut().filter(|a| a.user_id == user_id) {
            a.expires_at = now - time::Duration::seconds(1);
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc7636_example() {
        // RFC 7636 appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(ChallengeMethod::S256.verify(verifier, challenge));
        assert!(!ChallengeMethod::S256.verify("x", challenge));
        assert!(ChallengeMethod::Plain.verify("abc", "abc"));
    }

    #[test]
    fn secrets_are_random_and_digests_stable() {
        let a = new_secret("x.", 32);
        assert_ne!(a, new_secret("x.", 32));
        assert!(a.starts_with("x."));
        assert_eq!(digest(&a), digest(&a));
        let uc = new_user_code();
        assert_eq!(uc.len(), 9);
    }

    #[test]
    fn issued_tokens_are_listed_for_leak_checks_but_never_debug_printed() {
        let mut g = Grants::default();
        let token = g.issue_access("u", "c", BTreeSet::new(), OffsetDateTime::UNIX_EPOCH);
        assert_eq!(g.issued.all(), vec![token.clone()]);
        let printed = format!("{g:?}");
        assert!(!printed.contains(&token), "{printed}");
        assert!(
            printed.contains("IssuedTokens(1 tokens, redacted)"),
            "{printed}"
        );
    }
}
