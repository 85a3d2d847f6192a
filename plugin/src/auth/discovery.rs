//! OpenID Connect discovery: the authority's endpoints, so national clouds and the emulator work
//! without code changes.

use serde::Deserialize;
use url::Url;

use super::AuthError;

/// The endpoints the flows use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// `authorization_endpoint`.
    pub authorize: Url,
    /// `token_endpoint`.
    pub token: Url,
    /// `device_authorization_endpoint` (Microsoft's `/devicecode`).
    pub device: Option<Url>,
}

#[derive(Deserialize)]
struct Document {
    authorization_endpoint: String,
    token_endpoint: String,
    device_authorization_endpoint: Option<String>,
}

/// Reads `{authority}/.well-known/openid-configuration`.
pub async fn discover(http: &reqwest::Client, authority: &str) -> Result<Endpoints, AuthError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        authority.trim_end_matches('/')
    );
    let response = http.get(&url).send().await.map_err(|e| {
        AuthError::Transient(format!("discovery at {url}: {}", crate::http::describe(&e)))
    })?;
    let status = response.status();
    if status.is_server_error() || status.as_u16() == 429 {
        return Err(AuthError::Transient(format!(
            "discovery at {url} answered {status}"
        )));
    }
    if !status.is_success() {
        return Err(AuthError::Config(format!(
            "the authority {authority} has no OpenID Connect discovery document ({status})"
        )));
    }
    let doc: Document = response
        .json()
        .await
        .map_err(|_| AuthError::Transient(format!("discovery at {url}: not a valid document")))?;
    let parse = |name: &str, value: &str| {
        crate::settings::check_endpoint(value)
            .map_err(|m| AuthError::Config(format!("discovery {name}: {m}")))
    };
    Ok(Endpoints {
        authorize: parse("authorization_endpoint", &doc.authorization_endpoint)?,
        token: parse("token_endpoint", &doc.token_endpoint)?,
        device: doc
            .device_authorization_endpoint
            .as_deref()
            .map(|d| parse("device_authorization_endpoint", d))
            .transpose()?,
    })
}
