//! The OAuth 2.0 flows against the identity platform, with the `oauth2` crate: authorization
//! code + PKCE (S256) on a loopback redirect, device code, refresh.

use std::time::Duration;

use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, CsrfToken, DeviceAuthorizationResponse,
    DeviceAuthorizationUrl, DeviceCodeErrorResponseType, ExtraDeviceAuthorizationFields,
    PkceCodeChallenge, RedirectUrl, RefreshToken, RequestTokenError, Scope, TokenResponse,
    TokenUrl,
    basic::{BasicClient, BasicErrorResponseType, BasicTokenResponse},
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{
    AuthError, aadsts_summary,
    discovery::Endpoints,
    loopback::{ListenError, Loopback, Redirect},
};

/// What a successful token request gives.
pub struct Granted {
    /// The access token.
    pub access: SecretString,
    /// Its lifetime as Microsoft states it.
    pub expires_in: Option<Duration>,
    /// The (rotated) refresh token, when Microsoft sent one.
    pub refresh: Option<SecretString>,
}

impl From<BasicTokenResponse> for Granted {
    fn from(t: BasicTokenResponse) -> Self {
        Self {
            access: SecretString::from(t.access_token().secret().clone()),
            expires_in: t.expires_in(),
            refresh: t
                .refresh_token()
                .map(|r| SecretString::from(r.secret().clone())),
        }
    }
}

/// Microsoft's extra device-code field: a ready-made message for the user.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MicrosoftDeviceFields {
    /// Human text naming the page and the code.
    pub message: Option<String>,
}
impl ExtraDeviceAuthorizationFields for MicrosoftDeviceFields {}

/// The device-code prompt for the user.
pub struct DevicePrompt {
    /// Microsoft's message (or one built from the fields).
    pub message: String,
    /// The code to enter.
    pub user_code: String,
    /// Where to enter it.
    pub verification_uri: String,
}

fn scopes(list: &[&str]) -> Vec<Scope> {
    list.iter().map(|s| Scope::new((*s).to_owned())).collect()
}

fn url_err<E: std::fmt::Display>(e: E) -> AuthError {
    AuthError::Config(format!("invalid endpoint URL: {e}"))
}

/// What a browser sign-in asks for.
pub struct BrowserRequest<'a> {
    /// The authority's endpoints.
    pub endpoints: &'a Endpoints,
    /// The public client id.
    pub client_id: &'a str,
    /// The scopes.
    pub scopes: &'a [&'a str],
    /// Pre-fills the account (the Contact username).
    pub login_hint: Option<&'a str>,
    /// How long the user may take.
    pub limit: Duration,
}

/// Authorization code + PKCE in the user's browser. `open_url` asks the host to open the URL
/// and answers whether it could; `false` gives [`AuthError::NoBrowser`] at once (the caller
/// falls back to the device code).
pub async fn browser_sign_in<F>(
    http: &reqwest::Client,
    request: BrowserRequest<'_>,
    open_url: F,
    cancel: CancellationToken,
) -> Result<Granted, AuthError>
where
    F: FnOnce(String) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>,
{
    let loopback = Loopback::bind().await.map_err(|e| {
        AuthError::Config(format!("cannot open a local port for the redirect: {e:?}"))
    })?;
    let BrowserRequest {
        endpoints,
        client_id,
        scopes: scope_list,
        login_hint,
        limit,
    } = request;
    let redirect = RedirectUrl::new(loopback.redirect_uri()).map_err(url_err)?;
    let client = BasicClient::new(ClientId::new(client_id.to_owned()))
        .set_auth_uri(AuthUrl::from_url(endpoints.authorize.clone()))
        .set_token_uri(TokenUrl::from_url(endpoints.token.clone()))
        .set_redirect_uri(redirect);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(CsrfToken::new_random)
        .add_scopes(scopes(scope_list))
        .set_pkce_challenge(challenge);
    if let Some(hint) = login_hint.filter(|h| !h.is_empty()) {
        request = request.add_extra_param("login_hint", hint.to_owned());
    }
    let (url, state) = request.url();
    // Serve the redirect before the browser is asked to open: a browser command may follow the
    // redirect before `open_url` even returns.
    let expected_state = state.secret().clone();
    let waiter = tokio::spawn(async move { loopback.wait(&expected_state, limit, cancel).await });
    if !open_url(url.to_string()).await {
        waiter.abort();
        return Err(AuthError::NoBrowser);
    }
    let redirect = waiter.await.unwrap_or(Err(ListenError::Cancelled));
    let code = match redirect {
        Ok(Redirect::Code(code)) => code,
        Ok(Redirect::Error { error, description }) => {
            let summary = aadsts_summary(&description);
            return Err(match error.as_str() {
                "access_denied" => AuthError::Declined(summary),
                "temporarily_unavailable" | "server_error" => AuthError::Transient(summary),
                _ => AuthError::Config(format!("{error}: {summary}")),
            });
        }
        Err(ListenError::TimedOut) => return Err(AuthError::TimedOut),
        Err(ListenError::Cancelled) => return Err(AuthError::Cancelled),
        Err(ListenError::Io(e)) => return Err(AuthError::Transient(e)),
    };
    let token = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(http)
        .await
        .map_err(token_error)?;
    Ok(token.into())
}

/// Asks for a device code; the caller shows the prompt and then calls [`device_poll`].
pub async fn device_start(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    client_id: &str,
    scope_list: &[&str],
) -> Result<
    (
        DevicePrompt,
        DeviceAuthorizationResponse<MicrosoftDeviceFields>,
    ),
    AuthError,
> {
    let device = endpoints.device.clone().ok_or_else(|| {
        AuthError::Config("the authority offers no device code endpoint".to_owned())
    })?;
    let client = BasicClient::new(ClientId::new(client_id.to_owned()))
        .set_device_authorization_url(DeviceAuthorizationUrl::from_url(device));
    let details: DeviceAuthorizationResponse<MicrosoftDeviceFields> = client
        .exchange_device_code()
        .add_scopes(scopes(scope_list))
        .request_async(http)
        .await
        .map_err(token_error)?;
    let user_code = details.user_code().secret().clone();
    let verification_uri = details.verification_uri().to_string();
    let message = details.extra_fields().message.clone().unwrap_or_else(|| {
        format!("To sign in, open {verification_uri} and enter the code {user_code}.")
    });
    Ok((
        DevicePrompt {
            message,
            user_code,
            verification_uri,
        },
        details,
    ))
}

/// Polls the token endpoint until the user approved, declined, or the code expired. Waits one
/// `interval` before the first poll and honours `slow_down` (5 s more each time).
pub async fn device_poll(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    client_id: &str,
    details: &DeviceAuthorizationResponse<MicrosoftDeviceFields>,
    cancel: CancellationToken,
) -> Result<Granted, AuthError> {
    let client = BasicClient::new(ClientId::new(client_id.to_owned()))
        .set_token_uri(TokenUrl::from_url(endpoints.token.clone()));
    let poll = async {
        tokio::time::sleep(details.interval()).await;
        client
            .exchange_device_access_token(details)
            .set_max_backoff_interval(Duration::from_secs(30))
            .request_async(http, tokio::time::sleep, None)
            .await
    };
    let result = tokio::select! {
        _ = cancel.cancelled() => return Err(AuthError::Cancelled),
        r = poll => r,
    };
    match result {
        Ok(token) => Ok(token.into()),
        Err(RequestTokenError::ServerResponse(e)) => {
            let summary = aadsts_summary(e.error_description().map_or("", |d| d.as_str()));
            Err(match e.error() {
                DeviceCodeErrorResponseType::AccessDenied => AuthError::Declined(summary),
                DeviceCodeErrorResponseType::ExpiredToken => AuthError::TimedOut,
                DeviceCodeErrorResponseType::Basic(BasicErrorResponseType::Extension(x))
                    if x == "authorization_declined" =>
                {
                    AuthError::Declined(summary)
                }
                DeviceCodeErrorResponseType::Basic(b) => basic_error(b, summary),
                other => AuthError::Config(format!("{other:?}: {summary}")),
            })
        }
        Err(e) => Err(request_error(e)),
    }
}

/// Redeems a refresh token; Microsoft answers with a new one (rotation).
pub async fn refresh(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    client_id: &str,
    refresh_token: &SecretString,
    scope_list: &[&str],
) -> Result<Granted, AuthError> {
    let client = BasicClient::new(ClientId::new(client_id.to_owned()))
        .set_token_uri(TokenUrl::from_url(endpoints.token.clone()));
    let token = RefreshToken::new(refresh_token.expose_secret().to_owned());
    let granted = client
        .exchange_refresh_token(&token)
        .add_scopes(scopes(scope_list))
        .request_async(http)
        .await
        .map_err(token_error)?;
    Ok(granted.into())
}

fn basic_error(kind: &BasicErrorResponseType, summary: String) -> AuthError {
    match kind {
        BasicErrorResponseType::InvalidGrant => AuthError::InteractionRequired(summary),
        BasicErrorResponseType::Extension(x)
            if matches!(
                x.as_str(),
                "interaction_required" | "consent_required" | "login_required" | "bad_token"
            ) =>
        {
            AuthError::InteractionRequired(summary)
        }
        BasicErrorResponseType::Extension(x)
            if matches!(x.as_str(), "temporarily_unavailable" | "server_error") =>
        {
            AuthError::Transient(summary)
        }
        other => AuthError::Config(format!("{}: {summary}", other.as_ref())),
    }
}

type TokenRequestError = RequestTokenError<
    oauth2::HttpClientError<reqwest::Error>,
    oauth2::StandardErrorResponse<BasicErrorResponseType>,
>;

fn token_error(e: TokenRequestError) -> AuthError {
    match e {
        RequestTokenError::ServerResponse(r) => basic_error(
            r.error(),
            aadsts_summary(r.error_description().map_or("", |d| d.as_str())),
        ),
        other => request_error(other),
    }
}

/// Transport and parse failures. The response body of a parse error is never shown: it may
/// hold a token.
fn request_error<T: oauth2::ErrorResponse + 'static>(
    e: RequestTokenError<oauth2::HttpClientError<reqwest::Error>, T>,
) -> AuthError {
    match e {
        RequestTokenError::ServerResponse(_) => {
            AuthError::Transient("the identity platform refused the request".to_owned())
        }
        RequestTokenError::Request(oauth2::HttpClientError::Reqwest(r)) => {
            AuthError::Transient(crate::http::describe(&r))
        }
        RequestTokenError::Request(_) => AuthError::Transient("request failed".to_owned()),
        RequestTokenError::Parse(p, _) => AuthError::Transient(format!(
            "unreadable answer from the identity platform (at `{}`)",
            p.path()
        )),
        RequestTokenError::Other(m) => AuthError::Transient(aadsts_summary(&m)),
    }
}
