use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ms365_emulator::{EmulatorConfig, EmulatorHandle};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

pub const REDIRECT: &str = "http://localhost:53100/callback";
pub const SCOPE: &str = "openid profile offline_access User.Read Contacts.Read";

pub struct Env {
    pub emu: EmulatorHandle,
    pub http: reqwest::Client,
}

pub fn config() -> EmulatorConfig {
    EmulatorConfig {
        device_poll_interval_secs: 1,
        ..Default::default()
    }
}

pub fn env() -> Env {
    env_with(config())
}

pub fn env_with(config: EmulatorConfig) -> Env {
    let emu = EmulatorHandle::spawn(config).expect("emulator starts");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    Env { emu, http }
}

pub fn pkce() -> (String, String) {
    let verifier = ms365_verifier();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn ms365_verifier() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Query (or fragment) parameters of a Location header.
pub fn location_params(resp: &reqwest::Response) -> HashMap<String, String> {
    let loc = resp
        .headers()
        .get("location")
        .expect("Location")
        .to_str()
        .unwrap();
    let url = url::Url::parse(loc).unwrap();
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub struct Code {
    pub code: String,
    pub verifier: String,
}

impl Env {
    pub fn base(&self) -> String {
        self.emu.base_url()
    }

    pub fn authorize_url(&self, pairs: &[(&str, &str)]) -> String {
        let mut url = url::Url::parse(&format!(
            "{}/organizations/oauth2/v2.0/authorize",
            self.base()
        ))
        .unwrap();
        url.query_pairs_mut().extend_pairs(pairs);
        url.to_string()
    }

    pub async fn get(&self, url: &str) -> reqwest::Response {
        self.http.get(url).send().await.unwrap()
    }

    /// Runs /authorize for the default client with PKCE and returns the code.
    pub async fn code(&self, scope: &str) -> Code {
        self.code_with(scope, &[]).await
    }

    pub async fn code_with(&self, scope: &str, extra: &[(&str, &str)]) -> Code {
        let (verifier, challenge) = pkce();
        let client_id = self.emu.client_id();
        let mut pairs = vec![
            ("client_id", client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
            ("scope", scope),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("state", "st-1"),
        ];
        pairs.extend_from_slice(extra);
        let resp = self.get(&self.authorize_url(&pairs)).await;
        assert_eq!(resp.status(), StatusCode::FOUND);
        let p = location_params(&resp);
        assert_eq!(p["state"], "st-1");
        Code {
            code: p["code"].clone(),
            verifier,
        }
    }

    pub async fn token(&self, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}/organizations/oauth2/v2.0/token", self.base()))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap())
    }

    pub async fn redeem(&self, code: &Code) -> (StatusCode, Value) {
        let client_id = self.emu.client_id();
        self.token(&[
            ("client_id", client_id.as_str()),
            ("grant_type", "authorization_code"),
            ("code", &code.code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &code.verifier),
        ])
        .await
    }

    /// Full sign-in; returns the token response.
    pub async fn sign_in(&self, scope: &str) -> Value {
        let code = self.code(scope).await;
        let (status, body) = self.redeem(&code).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    pub async fn refresh(&self, rt: &str, scope: Option<&str>) -> (StatusCode, Value) {
        let client_id = self.emu.client_id();
        let mut form = vec![
            ("client_id", client_id.as_str()),
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
        ];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        self.token(&form).await
    }

    pub async fn me(&self, token: Option<&str>, query: &str) -> reqwest::Response {
        let mut req = self.http.get(format!("{}/me{query}", self.emu.graph_url()));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }

    pub async fn control(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}/_emulator/{path}", self.base()))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap())
    }
}

/// Asserts an identity-platform error body.
pub fn assert_aad_error(body: &Value, error: &str, code: u64) {
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_codes"][0], code, "{body}");
    let desc = body["error_description"].as_str().unwrap();
    assert!(desc.starts_with(&format!("AADSTS{code}: ")), "{desc}");
    assert!(
        desc.contains("\r\nTrace ID: ")
            && desc.contains("\r\nCorrelation ID: ")
            && desc.contains("\r\nTimestamp: ")
    );
    let ts = body["timestamp"].as_str().unwrap();
    assert_eq!(ts.len(), 20, "{ts}");
    assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b' ');
    assert!(uuid::Uuid::parse_str(body["trace_id"].as_str().unwrap()).is_ok());
    assert!(uuid::Uuid::parse_str(body["correlation_id"].as_str().unwrap()).is_ok());
    assert!(
        body["error_uri"]
            .as_str()
            .unwrap()
            .contains(&code.to_string())
    );
}
