use ms365_emulator::tenant::{ADELE_ID, ADELE_UPN, HOST_CLIENT_ID, MEGAN_UPN};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;

#[tokio::test]
async fn minted_token_works_on_graph_and_expires() {
    let env = env();
    let at = env
        .emu
        .control()
        .mint_access_token(ADELE_UPN, HOST_CLIENT_ID, &["User.Read"], 600)
        .unwrap();
    let resp = env.me(Some(&at), "?$select=id").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let me: Value = resp.json().await.unwrap();
    assert_eq!(me["id"], ADELE_ID);
    env.emu.control().advance_clock(601);
    assert_eq!(
        env.me(Some(&at), "").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn mint_over_http_prints_sso_json() {
    let env = env();
    let (status, body) = env
        .control(
            "tokens/mint",
            json!({"upn": MEGAN_UPN, "client_id": HOST_CLIENT_ID, "scopes": ["https://graph.microsoft.com/User.Read"], "expires_in": 1200}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let obj = body.as_object().unwrap();
    assert_eq!(obj.len(), 3, "{body}");
    assert_eq!(body["client_id"], HOST_CLIENT_ID);
    assert_eq!(body["expires_in"], 1200);
    let at = body["access_token"].as_str().unwrap();
    assert!(at.starts_with("EwB"));
    let me: Value = env.me(Some(at), "").await.json().await.unwrap();
    assert_eq!(me["userPrincipalName"], MEGAN_UPN);

    // Default lifetime = the configured access token lifetime.
    let (_, body) = env
        .control(
            "tokens/mint",
            json!({"upn": ADELE_UPN, "client_id": HOST_CLIENT_ID, "scopes": ["User.Read"]}),
        )
        .await;
    assert_eq!(body["expires_in"], 3599);

    // Refusals.
    for bad in [
        json!({"upn": "nobody@contoso.example", "client_id": HOST_CLIENT_ID, "scopes": ["User.Read"]}),
        json!({"upn": ADELE_UPN, "client_id": "00000000-0000-0000-0000-000000000000", "scopes": ["User.Read"]}),
        json!({"upn": ADELE_UPN, "client_id": HOST_CLIENT_ID, "scopes": ["Foo.Bar"]}),
        json!({"upn": ADELE_UPN, "client_id": HOST_CLIENT_ID, "scopes": ["openid"]}),
    ] {
        let (status, body) = env.control("tokens/mint", bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body["error"].is_string());
    }
}

#[tokio::test]
async fn minted_token_carries_exactly_its_scopes_and_is_not_logged() {
    let env = env();
    let c = env.emu.control();
    let at = c
        .mint_access_token(ADELE_UPN, HOST_CLIENT_ID, &["Contacts.Read"], 600)
        .unwrap();
    // No User.Read: /me is 403.
    assert_eq!(env.me(Some(&at), "").await.status(), StatusCode::FORBIDDEN);
    let log = serde_json::to_string(&c.requests()).unwrap();
    assert!(!log.contains(&at));
}
