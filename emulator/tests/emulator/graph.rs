use ms365_emulator::tenant::{ADELE_ID, ADELE_UPN, ALEX_ID, MEGAN_UPN};
use reqwest::StatusCode;
use serde_json::Value;

use crate::common::*;

async fn graph_error(resp: reqwest::Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(resp.status(), status);
    let request_id = resp.headers()["request-id"].to_str().unwrap().to_string();
    assert!(resp.headers().contains_key("client-request-id"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string());
    assert_eq!(body["error"]["innerError"]["request-id"], request_id);
    let date = body["error"]["innerError"]["date"].as_str().unwrap();
    assert_eq!(date.len(), 19, "{date}");
    body
}

#[tokio::test]
async fn me_default_and_select() {
    let env = env();
    let t = env.sign_in(SCOPE).await;
    let at = t["access_token"].as_str().unwrap();

    let resp = env.me(Some(at), "").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert!(resp.headers().contains_key("request-id"));
    let me: Value = resp.json().await.unwrap();
    assert_eq!(
        me["@odata.context"],
        format!("{}/$metadata#users/$entity", env.emu.graph_url())
    );
    assert_eq!(me["id"], ADELE_ID);
    assert_eq!(me["userPrincipalName"], ADELE_UPN);
    assert_eq!(me["mail"], ADELE_UPN);
    assert_eq!(me["displayName"], "Adele Vance");
    assert!(me["businessPhones"].is_array());
    assert!(me["mobilePhone"].is_string());
    assert!(me.get("proxyAddresses").is_none(), "only on $select");
    assert_eq!(me.as_object().unwrap().len(), 12);

    let me: Value = env
        .me(Some(at), "?$select=id,userPrincipalName,proxyAddresses")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me.as_object().unwrap().len(), 4, "{me}");
    assert_eq!(
        me["@odata.context"],
        format!(
            "{}/$metadata#users(id,userPrincipalName,proxyAddresses)/$entity",
            env.emu.graph_url()
        )
    );
    assert_eq!(
        me["proxyAddresses"],
        serde_json::json!([
            "SMTP:adele.vance@contoso.example",
            "smtp:adele@contoso.example",
            "smtp:a.vance@contoso.example"
        ])
    );

    let resp = env.me(Some(at), "?$select=id,shoeSize").await;
    graph_error(resp, StatusCode::BAD_REQUEST, "Request_BadRequest").await;
}

#[tokio::test]
async fn me_authentication_failures() {
    let env = env();
    let resp = env.me(None, "").await;
    assert!(resp.headers().contains_key("www-authenticate"));
    let body = graph_error(resp, StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken").await;
    assert_eq!(body["error"]["message"], "Access token is empty.");

    let resp = env
        .http
        .get(format!("{}/me", env.emu.graph_url()))
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    graph_error(resp, StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken").await;

    let resp = env.me(Some("unknown-token"), "").await;
    graph_error(resp, StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken").await;

    // Expired by the control.
    let t = env.sign_in(SCOPE).await;
    let at = t["access_token"].as_str().unwrap();
    assert_eq!(env.me(Some(at), "").await.status(), StatusCode::OK);
    let (status, _) = env
        .control(
            "tokens/expire-access",
            serde_json::json!({"upn": ADELE_UPN}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let body = graph_error(
        env.me(Some(at), "").await,
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
    )
    .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );

    // Expired by the clock.
    let t = env.sign_in(SCOPE).await;
    let at = t["access_token"].as_str().unwrap();
    env.emu.control().advance_clock(3599);
    graph_error(
        env.me(Some(at), "").await,
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
    )
    .await;

    // client-request-id is echoed.
    let resp = env
        .http
        .get(format!("{}/me", env.emu.graph_url()))
        .header("client-request-id", "my-id-1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["client-request-id"], "my-id-1");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["innerError"]["client-request-id"], "my-id-1");
}

#[tokio::test]
async fn permissions_and_users() {
    let env = env();
    // Megan consents only to Contacts.Read: /me is forbidden.
    env.emu.control().set_sign_in_user(MEGAN_UPN).unwrap();
    let t = env.sign_in("Contacts.Read").await;
    let resp = env.me(t["access_token"].as_str(), "").await;
    graph_error(resp, StatusCode::FORBIDDEN, "Authorization_RequestDenied").await;

    // Adele with User.Read reads herself by UPN, but not others.
    env.emu.control().set_sign_in_user(ADELE_UPN).unwrap();
    let t = env.sign_in("User.Read").await;
    let at = t["access_token"].as_str().unwrap();
    let resp = env
        .http
        .get(format!("{}/users/{ADELE_UPN}", env.emu.graph_url()))
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = env
        .http
        .get(format!("{}/users/{ALEX_ID}", env.emu.graph_url()))
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    graph_error(resp, StatusCode::FORBIDDEN, "Authorization_RequestDenied").await;

    // With User.ReadBasic.All: basic properties of others only.
    let t = env.sign_in("User.Read User.ReadBasic.All").await;
    let at = t["access_token"].as_str().unwrap();
    let alex: Value = env
        .http
        .get(format!("{}/users/{ALEX_ID}", env.emu.graph_url()))
        .bearer_auth(at)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(alex["displayName"], "Alex Wilber");
    assert_eq!(alex["jobTitle"], Value::Null);
    assert_eq!(alex["businessPhones"], serde_json::json!([]));

    // With User.Read.All: everything.
    let t = env.sign_in("User.Read.All").await;
    let at = t["access_token"].as_str().unwrap();
    let alex: Value = env
        .http
        .get(format!(
            "{}/users/alex.wilber@contoso.example?$select=displayName,businessPhones",
            env.emu.graph_url()
        ))
        .bearer_auth(at)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(alex["businessPhones"][0], "+49 30 901820-4455");
    let resp = env
        .http
        .get(format!(
            "{}/users/nobody@contoso.example",
            env.emu.graph_url()
        ))
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    graph_error(resp, StatusCode::NOT_FOUND, "Request_ResourceNotFound").await;

    let resp = env
        .http
        .get(format!("{}/nothingHere", env.emu.graph_url()))
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    graph_error(resp, StatusCode::BAD_REQUEST, "BadRequest").await;
}
