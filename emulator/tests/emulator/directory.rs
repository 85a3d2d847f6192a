use ms365_emulator::tenant::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;

async fn get(env: &Env, at: &str, url: &str) -> (StatusCode, Value) {
    let url = if url.starts_with("http") {
        url.to_string()
    } else {
        format!("{}{url}", env.emu.graph_url())
    };
    let resp = env.http.get(url).bearer_auth(at).send().await.unwrap();
    (resp.status(), resp.json().await.unwrap())
}

#[tokio::test]
async fn users_paging_select_and_phone_visibility() {
    let env = env();
    let c = env.emu.control();
    let basic = c
        .mint_access_token(ADELE_UPN, PLUGIN_CLIENT_ID, &["User.ReadBasic.All"], 600)
        .unwrap();
    let full = c
        .mint_access_token(ADELE_UPN, PLUGIN_CLIENT_ID, &["User.Read.All"], 600)
        .unwrap();
    let (s, b) = get(
        &env,
        &full,
        "/users?$select=id,displayName,businessPhones,mobilePhone&$top=3",
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["value"].as_array().unwrap().len(), 3);
    assert_eq!(
        b["value"][0]["businessPhones"],
        json!(["+49 89 2030405-100"])
    );
    assert_eq!(b["value"][0].as_object().unwrap().len(), 4);
    let next = b["@odata.nextLink"].as_str().unwrap();
    assert!(next.contains("$skiptoken="));
    let (_, b2) = get(&env, &full, next).await;
    assert_eq!(b2["value"].as_array().unwrap().len(), 1);
    assert_eq!(b2["value"][0]["id"], LEE_ID);
    assert_eq!(b2["value"][0]["mobilePhone"], "0170 9876543");
    assert_eq!(
        b2["value"][0].as_object().unwrap().len(),
        4,
        "$select kept in the skiptoken"
    );
    assert!(b2.get("@odata.nextLink").is_none());

    let (s, b) = get(&env, &basic, "/users").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["value"].as_array().unwrap().len(), 4);
    for u in b["value"].as_array().unwrap() {
        assert_eq!(u["businessPhones"], json!([]));
        assert_eq!(u["mobilePhone"], Value::Null);
        assert!(u["displayName"].is_string());
    }
    for bad in ["/users?$top=0", "/users?$top=1000", "/users?$skip=1"] {
        let (s, b) = get(&env, &full, bad).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(b["error"]["code"], "Request_BadRequest");
    }
    let me_only = c
        .mint_access_token(ADELE_UPN, PLUGIN_CLIENT_ID, &["User.Read"], 600)
        .unwrap();
    assert_eq!(get(&env, &me_only, "/users").await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn users_delta() {
    let env = env();
    let at = env
        .emu
        .control()
        .mint_access_token(ADELE_UPN, PLUGIN_CLIENT_ID, &["User.Read.All"], 600)
        .unwrap();
    let (_, b) = get(&env, &at, "/users/delta?$select=id,displayName&$top=2").await;
    let (_, b) = get(&env, &at, b["@odata.nextLink"].as_str().unwrap()).await;
    let delta = b["@odata.deltaLink"].as_str().unwrap();
    assert!(delta.contains("$deltatoken="));
    let (s, b) = get(&env, &at, delta).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["value"], json!([]));
    let (_, b) = get(&env, &at, "/users/delta?$deltatoken=latest").await;
    assert!(b["@odata.deltaLink"].is_string());
}
