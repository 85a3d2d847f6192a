//! Scope strings: parsing what a client asks for and writing what the token response grants.

use std::collections::BTreeSet;

use crate::errors::AadError;
use crate::tenant::{App, KNOWN_GRAPH_SCOPES};

/// Microsoft Graph's application id, usable as a resource prefix in scopes.
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

/// What a client requested, normalized: Graph permissions in canonical spelling plus the
/// OpenID Connect scopes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Requested {
    /// Graph delegated permissions, canonical names (`User.Read`).
    pub graph: BTreeSet<String>,
    /// `openid`: an id_token is returned.
    pub openid: bool,
    /// `profile`.
    pub profile: bool,
    /// `email`.
    pub email: bool,
    /// `offline_access`: a refresh token is returned.
    pub offline_access: bool,
}

impl Requested {
    /// Parses a space-separated scope parameter for `app`.
    ///
    /// Accepts short Graph names (`User.Read`), resource-qualified names
    /// (`https://graph.microsoft.com/User.Read`, `00000003-.../User.Read`), and
    /// `https://graph.microsoft.com/.default` (the registration's static permissions; may not be
    /// combined with other Graph scopes).
    pub fn parse(raw: &str, app: &App, tenant: &str) -> Result<Requested, AadError> {
        let mut out = Requested::default();
        let mut saw_default = false;
        let mut saw_explicit = false;
        let tokens: Vec<&str> = raw.split_whitespace().collect();
        if tokens.is_empty() {
            return Err(AadError::new(
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'scope'.",
            ));
        }
        for tok in tokens {
            let lower = tok.to_ascii_lowercase();
            match lower.as_str() {
                "openid" => out.openid = true,
                "profile" => out.profile = true,
                "email" => out.email = true,
                "offline_access" => out.offline_access = true,
                _ => {
                    let name = strip_graph_prefix(tok).ok_or_else(|| {
                        let resource = tok.rsplit_once('/').map(|(r, _)| r).unwrap_or(tok);
                        AadError::new(
                            "invalid_resource",
                            500011,
                            format!(
                                "The resource principal named {resource} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
                            ),
                        )
                    })?;
                    if name == ".default" {
                        saw_default = true;
                        out.graph.extend(app.static_permissions.iter().cloned());
                    } else if let Some(canon) = KNOWN_GRAPH_SCOPES
                        .iter()
                        .find(|k| k.eq_ignore_ascii_case(name))
                    {
                        saw_explicit = true;
                        out.graph.insert(canon.to_string());
                    } else {
                        return Err(AadError::new(
                            "invalid_scope",
                            70011,
                            format!(
                                "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope '{tok}' does not exist on the resource."
                            ),
                        ));
                    }
                }
            }
        }
        if saw_default && saw_explicit {
            return Err(AadError::new(
                "invalid_scope",
                70011,
                "The provided value for the input parameter 'scope' is not valid. The scope .default cannot be combined with resource-specific scopes.",
            ));
        }
        Ok(out)
    }

    /// The `scope` value of a token response: the granted Graph permissions (short names,
    /// sorted) followed by `profile openid email` for those requested, as Microsoft answers.
    /// `offline_access` is never echoed.
    pub fn response_scope(&self, granted_graph: &BTreeSet<String>) -> String {
        let mut parts: Vec<&str> = granted_graph.iter().map(String::as_str).collect();
        parts.sort_by_key(|s| s.to_ascii_lowercase());
        if self.profile {
            parts.push("profile");
        }
        if self.openid {
            parts.push("openid");
        }
        if self.email {
            parts.push("email");
        }
        parts.join(" ")
    }
}

/// `User.Read` from `User.Read`, `https://graph.microsoft.com/User.Read` or
/// `00000003-0000-0000-c000-000000000000/User.Read`; `None` for another resource.
fn strip_graph_prefix(tok: &str) -> Option<&str> {
    for prefix in [
        "https://graph.microsoft.com/",
        "https://graph.microsoft.com//",
    ] {
        if tok.len() > prefix.len() && tok[..prefix.len()].eq_ignore_ascii_case(prefix) {
            return Some(&tok[prefix.len()..]);
        }
    }
    let guid_prefix = format!("{GRAPH_APP_ID}/");
    if tok.len() > guid_prefix.len() && tok[..guid_prefix.len()].eq_ignore_ascii_case(&guid_prefix)
    {
        return Some(&tok[guid_prefix.len()..]);
    }
    if tok.contains('/') || tok.contains(':') {
        return None;
    }
    Some(tok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::{PLUGIN_CLIENT_ID, seed};

    fn app() -> App {
        seed().app(PLUGIN_CLIENT_ID).unwrap().clone()
    }

    #[test]
    fn parses_and_normalizes() {
        let r = Requested::parse(
            "openid profile offline_access https://graph.microsoft.com/user.read Contacts.Read",
            &app(),
            "organizations",
        )
        .unwrap();
        assert!(r.openid && r.profile && r.offline_access && !r.email);
        assert_eq!(
            r.graph.iter().cloned().collect::<Vec<_>>(),
            ["Contacts.Read", "User.Read"]
        );
        assert_eq!(
            r.response_scope(&r.graph),
            "Contacts.Read User.Read profile openid"
        );
    }

    #[test]
    fn default_expands_and_rejects_mix() {
        let r = Requested::parse("https://graph.microsoft.com/.default", &app(), "x").unwrap();
        assert!(r.graph.contains("Presence.ReadWrite"));
        let e = Requested::parse(".default User.Read", &app(), "x").unwrap_err();
        assert_eq!(e.error, "invalid_scope");
    }

    #[test]
    fn rejects_unknown() {
        assert_eq!(
            Requested::parse("Foo.Bar", &app(), "x").unwrap_err().code,
            70011
        );
        assert_eq!(
            Requested::parse("https://outlook.office.com/Mail.Read", &app(), "x")
                .unwrap_err()
                .error,
            "invalid_resource"
        );
        assert_eq!(
            Requested::parse("  ", &app(), "x").unwrap_err().code,
            900144
        );
    }
}
