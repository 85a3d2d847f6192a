use std::time::Duration;

use ms365_emulator::EmulatorConfig;
use ms365_emulator::tenant::MEGAN_UPN;
use reqwest::StatusCode;
use serde_json::Value;

use crate::common::*;

async fn start(env: &Env) -> Value {
    let resp = env
        .http
        .post(format!(
            "{}/organizations/oauth2/v2.0/devicecode",
            env.base()
        ))
        .form(&[
            ("client_id", env.emu.client_id().as_str()),
            ("scope", SCOPE),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

async fn poll(env: &Env, device_code: &str) -> (StatusCode, Value) {
    let client_id = env.emu.client_id();
    env.token(&[
        ("client_id", client_id.as_str()),
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", device_code),
    ])
    .await
}

#[tokio::test]
async fn pending_slow_down_approve() {
    let env = env();
    let dc = start(&env).await;
    let base = env.base();
    let user_code = dc["user_code"].as_str().unwrap();
    assert_eq!(dc["verification_uri"], format!("{base}/devicelogin"));
    assert_eq!(dc["expires_in"], 900);
    assert_eq!(dc["interval"], 1);
    assert_eq!(
        dc["message"],
        format!(
            "To sign in, use a web browser to open the page {base}/devicelogin and enter the code {user_code} to authenticate."
        )
    );
    let device_code = dc["device_code"].as_str().unwrap();

    let (status, body) = poll(&env, device_code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_aad_error(&body, "authorization_pending", 70016);
    // Polled again at once: slow_down, and the interval grows by 5 s.
    let (_, body) = poll(&env, device_code).await;
    assert_eq!(body["error"], "slow_down");
    env.emu.control().advance_clock(2);
    let (_, body) = poll(&env, device_code).await;
    assert_eq!(body["error"], "slow_down", "interval was 6 s, is now 11 s");
    env.emu.control().advance_clock(12);
    let (_, body) = poll(&env, device_code).await;
    assert_eq!(body["error"], "authorization_pending");

    env.emu.control().set_sign_in_user(MEGAN_UPN).unwrap();
    env.emu
        .control()
        .approve_device_code(&user_code.to_lowercase())
        .unwrap();
    let (status, tokens) = poll(&env, device_code).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert!(tokens["refresh_token"].is_string() && tokens["id_token"].is_string());
    let me: Value = env
        .me(tokens["access_token"].as_str(), "")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["userPrincipalName"], MEGAN_UPN);

    // Spent.
    let (_, body) = poll(&env, device_code).await;
    assert_eq!(body["error"], "invalid_grant");
    assert!(env.emu.control().approve_device_code(user_code).is_err());
}

#[tokio::test]
async fn decline_expire_and_bad_code() {
    let env = env();
    let dc = start(&env).await;
    let (status, body) = env
        .control(
            "device/decline",
            serde_json::json!({"user_code": dc["user_code"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = poll(&env, dc["device_code"].as_str().unwrap()).await;
    assert_aad_error(&body, "authorization_declined", 65004);

    let dc = start(&env).await;
    env.emu.control().advance_clock(901);
    let (_, body) = poll(&env, dc["device_code"].as_str().unwrap()).await;
    assert_aad_error(&body, "expired_token", 70019);
    let (status, _) = env
        .control(
            "device/approve",
            serde_json::json!({"user_code": dc["user_code"]}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (_, body) = poll(&env, "not-a-device-code").await;
    assert_eq!(body["error"], "bad_verification_code");
}

#[tokio::test]
async fn auto_approval_and_login_page() {
    let env = env_with(EmulatorConfig {
        device_auto_approve_after: Some(Duration::from_secs(3)),
        ..config()
    });
    let dc = start(&env).await;
    let device_code = dc["device_code"].as_str().unwrap();
    let (_, body) = poll(&env, device_code).await;
    assert_eq!(body["error"], "authorization_pending");
    env.emu.control().advance_clock(3);
    let (status, _) = poll(&env, device_code).await;
    assert_eq!(status, StatusCode::OK);

    // The page a person would use.
    let dc = start(&env).await;
    let page = env
        .get(&format!("{}/devicelogin", env.base()))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("<form") && page.contains("megan.bowen@contoso.example"));
    let resp = env
        .http
        .post(format!("{}/devicelogin", env.base()))
        .form(&[
            ("user_code", dc["user_code"].as_str().unwrap()),
            ("upn", MEGAN_UPN),
            ("action", "approve"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (status, tokens) = poll(&env, dc["device_code"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let me: Value = env
        .me(tokens["access_token"].as_str(), "")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["userPrincipalName"], MEGAN_UPN);
}
