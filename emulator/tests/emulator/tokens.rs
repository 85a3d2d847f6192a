use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ms365_emulator::tenant::{ADELE_ID, ADELE_UPN, HOST_CLIENT_ID};
use reqwest::StatusCode;
use serde_json::Value;

use crate::common::*;

fn jwt_claims(jwt: &str) -> Value {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap()
}

#[tokio::test]
async fn code_flow_issues_tokens() {
    let env = env();
    let code = env.code_with(SCOPE, &[("nonce", "n-123")]).await;
    let (status, body) = env.redeem(&code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "Contacts.Read User.Read profile openid");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["ext_expires_in"], 3599);
    assert!(body["access_token"].as_str().unwrap().len() > 40);
    assert!(body["refresh_token"].is_string());
    let claims = jwt_claims(body["id_token"].as_str().unwrap());
    assert_eq!(claims["aud"], env.emu.client_id());
    assert_eq!(claims["preferred_username"], ADELE_UPN);
    assert_eq!(claims["oid"], ADELE_ID);
    assert_eq!(claims["tid"], env.emu.tenant_id());
    assert_eq!(claims["nonce"], "n-123");
    assert_eq!(claims["ver"], "2.0");

    // Without offline_access / openid: neither refresh token nor id_token.
    let body = env.sign_in("User.Read").await;
    assert!(body.get("refresh_token").is_none() && body.get("id_token").is_none());
    // Consent accumulates: the token carries every consented Graph permission.
    assert_eq!(body["scope"], "Contacts.Read User.Read");
}

#[tokio::test]
async fn code_redemption_errors() {
    let env = env();
    let client_id = env.emu.client_id();
    let code = env.code(SCOPE).await;

    // Wrong verifier: invalid_grant, the code stays usable.
    let (status, body) = env
        .redeem(&Code {
            code: code.code.clone(),
            verifier: "x".repeat(43),
        })
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_aad_error(&body, "invalid_grant", 501481);

    // Wrong redirect URI.
    let (_, body) = env
        .token(&[
            ("client_id", &client_id),
            ("grant_type", "authorization_code"),
            ("code", &code.code),
            ("redirect_uri", "http://localhost:9999/other"),
            ("code_verifier", &code.verifier),
        ])
        .await;
    assert_aad_error(&body, "invalid_grant", 500112);

    // Another registered client cannot redeem it.
    let (_, body) = env
        .token(&[
            ("client_id", HOST_CLIENT_ID),
            ("grant_type", "authorization_code"),
            ("code", &code.code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &code.verifier),
        ])
        .await;
    assert_aad_error(&body, "invalid_grant", 70000);

    // Missing verifier.
    let (_, body) = env
        .token(&[
            ("client_id", &client_id),
            ("grant_type", "authorization_code"),
            ("code", &code.code),
            ("redirect_uri", REDIRECT),
        ])
        .await;
    assert_aad_error(&body, "invalid_request", 900144);

    // Right verifier works once; the second redemption is AADSTS54005.
    let (status, _) = env.redeem(&code).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = env.redeem(&code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_aad_error(&body, "invalid_grant", 54005);

    // Expired after 10 minutes of emulator time.
    let code = env.code(SCOPE).await;
    env.emu.control().advance_clock(601);
    let (_, body) = env.redeem(&code).await;
    assert_aad_error(&body, "invalid_grant", 70008);

    // Garbage code.
    let (_, body) = env
        .redeem(&Code {
            code: "nope".into(),
            verifier: code.verifier.clone(),
        })
        .await;
    assert_aad_error(&body, "invalid_grant", 9002313);
}

#[tokio::test]
async fn token_endpoint_request_errors() {
    let env = env();
    let client_id = env.emu.client_id();

    let resp = env
        .http
        .post(format!("{}/organizations/oauth2/v2.0/token", env.base()))
        .header("client-request-id", "0b6c7a1e-1111-4222-8333-944455556666")
        .form(&[
            ("client_id", client_id.as_str()),
            ("grant_type", "refresh_token"),
            ("refresh_token", "x"),
            ("client_secret", "s"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        resp.headers()["client-request-id"],
        "0b6c7a1e-1111-4222-8333-944455556666"
    );
    let request_id = resp.headers()["request-id"].to_str().unwrap().to_string();
    let body: Value = resp.json().await.unwrap();
    assert_aad_error(&body, "invalid_client", 700025);
    assert_eq!(
        body["correlation_id"],
        "0b6c7a1e-1111-4222-8333-944455556666"
    );
    assert_eq!(body["trace_id"], request_id);

    let (status, body) = env
        .token(&[("client_id", &client_id), ("grant_type", "password")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_aad_error(&body, "unsupported_grant_type", 70003);

    let (_, body) = env
        .token(&[
            ("client_id", "11111111-2222-3333-4444-555555555555"),
            ("grant_type", "refresh_token"),
        ])
        .await;
    assert_aad_error(&body, "unauthorized_client", 700016);

    let (_, body) = env.token(&[("grant_type", "refresh_token")]).await;
    assert_aad_error(&body, "invalid_request", 900144);

    let resp = env
        .get(&format!("{}/organizations/oauth2/v2.0/token", env.base()))
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn refresh_rotation_and_revocation() {
    let env = env();
    let first = env.sign_in(SCOPE).await;
    let rt1 = first["refresh_token"].as_str().unwrap().to_string();

    let (status, second) = env.refresh(&rt1, None).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let rt2 = second["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt1, rt2);
    assert_ne!(first["access_token"], second["access_token"]);
    assert!(second["id_token"].is_string());

    // The used token is spent.
    let (status, body) = env.refresh(&rt1, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_aad_error(&body, "invalid_grant", 70000);

    // A subset scope is fine (the token still carries all consented Graph permissions);
    // a scope never consented needs interaction.
    let (status, third) = env
        .refresh(
            &rt2,
            Some("https://graph.microsoft.com/User.Read offline_access"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{third}");
    assert_eq!(third["scope"], "Contacts.Read User.Read");
    assert!(third.get("id_token").is_none());
    let rt3 = third["refresh_token"].as_str().unwrap().to_string();
    let (_, body) = env.refresh(&rt3, Some("User.Read.All")).await;
    assert_aad_error(&body, "invalid_grant", 65001);

    // Revocation.
    let (status, _) = env
        .control("tokens/revoke", serde_json::json!({"upn": ADELE_UPN}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = env.refresh(&rt3, None).await;
    assert_aad_error(&body, "invalid_grant", 50173);
    // Tokens issued after the revocation work.
    let fresh = env.sign_in(SCOPE).await;
    let (status, _) = env
        .refresh(fresh["refresh_token"].as_str().unwrap(), None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn refresh_expiry() {
    let env = env();
    let t = env.sign_in(SCOPE).await;
    let rt = t["refresh_token"].as_str().unwrap().to_string();
    env.emu.control().expire_refresh_tokens(ADELE_UPN).unwrap();
    let (_, body) = env.refresh(&rt, None).await;
    assert_aad_error(&body, "invalid_grant", 700082);

    // Inactivity on the clock: 90 days.
    let t = env.sign_in(SCOPE).await;
    env.emu.control().advance_clock(89 * 24 * 3600);
    let (status, t2) = env
        .refresh(t["refresh_token"].as_str().unwrap(), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    env.emu.control().advance_clock(91 * 24 * 3600);
    let (_, body) = env
        .refresh(t2["refresh_token"].as_str().unwrap(), None)
        .await;
    assert_aad_error(&body, "invalid_grant", 700082);
}
