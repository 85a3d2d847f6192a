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

async fn get_with(env: &Env, at: &str, url: &str, prefer: &str) -> (StatusCode, Value) {
    let url = if url.starts_with("http") {
        url.to_string()
    } else {
        format!("{}{url}", env.emu.graph_url())
    };
    let resp = env
        .http
        .get(url)
        .bearer_auth(at)
        .header("Prefer", prefer)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.json().await.unwrap())
}

/// Follows a delta round to its deltaLink: every item and the deltaLink.
async fn round(env: &Env, at: &str, start: &str) -> (Vec<Value>, String) {
    let mut items = Vec::new();
    let mut url = start.to_string();
    for _ in 0..100 {
        let (s, b) = get_with(env, at, &url, "odata.maxpagesize=2").await;
        assert_eq!(s, StatusCode::OK, "{b}");
        items.extend(b["value"].as_array().unwrap().iter().cloned());
        if let Some(next) = b["@odata.nextLink"].as_str() {
            assert!(b.get("@odata.deltaLink").is_none());
            url = next.to_string();
        } else {
            return (items, b["@odata.deltaLink"].as_str().unwrap().to_string());
        }
    }
    panic!("the round never ended");
}

fn ids(items: &[Value]) -> Vec<&str> {
    items.iter().map(|v| v["id"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn users_delta_pages_and_ignores_top() {
    let env = env();
    let at = env
        .emu
        .control()
        .mint_access_token(ADELE_UPN, PLUGIN_CLIENT_ID, &["User.Read.All"], 600)
        .unwrap();
    // `$top` is not supported on users delta: one page of the default size.
    let (_, b) = get(&env, &at, "/users/delta?$select=displayName&$top=2").await;
    assert_eq!(b["value"].as_array().unwrap().len(), 4);
    assert!(b["@odata.deltaLink"].is_string());
    assert!(b.get("@odata.nextLink").is_none());
    // `Prefer: odata.maxpagesize` pages; `$select` travels in the tokens; `id` always comes.
    let (s, b) = get_with(
        &env,
        &at,
        "/users/delta?$select=displayName,mobilePhone",
        "odata.maxpagesize=3",
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["value"].as_array().unwrap().len(), 3);
    assert_eq!(b["value"][0]["id"], ADELE_ID);
    assert_eq!(b["value"][0].as_object().unwrap().len(), 3);
    let next = b["@odata.nextLink"].as_str().unwrap();
    assert!(next.contains("$skiptoken="));
    let (_, b) = get(&env, &at, next).await;
    assert_eq!(b["value"].as_array().unwrap().len(), 1);
    assert_eq!(b["value"][0]["mobilePhone"], "0170 9876543");
    assert_eq!(b["value"][0].as_object().unwrap().len(), 3);
    let delta = b["@odata.deltaLink"].as_str().unwrap();
    assert!(delta.contains("$deltatoken="));
    // Nothing changed: an empty round.
    let (s, b) = get(&env, &at, delta).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["value"], json!([]));
    assert!(b["@odata.deltaLink"].is_string());
    let (_, b) = get(&env, &at, "/users/delta?$deltatoken=latest").await;
    assert_eq!(b["value"], json!([]));
    assert!(b["@odata.deltaLink"].is_string());
}

#[tokio::test]
async fn users_delta_reports_changes_and_removals() {
    let env = env();
    let c = env.emu.control();
    let at = c
        .mint_access_token(ADELE_UPN, PLUGIN_CLIENT_ID, &["User.Read.All"], 600)
        .unwrap();
    let start = "/users/delta?$select=displayName,businessPhones,mobilePhone";
    let (first, delta) = round(&env, &at, start).await;
    assert_eq!(ids(&first), [ADELE_ID, MEGAN_ID, ALEX_ID, LEE_ID]);
    let (_, latest) = get(&env, &at, "/users/delta?$deltatoken=latest").await;
    let latest = latest["@odata.deltaLink"].as_str().unwrap().to_string();

    c.update_user(MEGAN_UPN, &json!({"mobilePhone": "+1 206 555 0199"}))
        .unwrap();
    c.delete_user(ALEX_UPN, false).unwrap();
    c.delete_user(LEE_ID, true).unwrap();
    let new_id = c
        .add_user(&json!({
            "userPrincipalName": "nestor.wilke@contoso.example",
            "displayName": "Nestor Wilke",
            "businessPhones": ["+49 89 2030405-300"],
        }))
        .unwrap();
    assert!(c.add_user(&json!({"displayName": "No UPN"})).is_err());
    assert!(
        c.update_user(MEGAN_UPN, &json!({"businessPhones": ["1", "2"]}))
            .is_err()
    );

    // `/users` lists the new state at once.
    let (_, b) = get(&env, &at, "/users?$select=id").await;
    assert_eq!(
        ids(b["value"].as_array().unwrap()),
        [ADELE_ID, MEGAN_ID, new_id.as_str()]
    );

    let (changes, delta2) = round(&env, &at, &delta).await;
    assert_eq!(changes.len(), 4, "{changes:?}");
    let by_id = |id: &str| changes.iter().find(|v| v["id"] == id).unwrap().clone();
    assert_eq!(
        by_id(MEGAN_ID),
        json!({"id": MEGAN_ID, "displayName": "Megan Bowen",
               "businessPhones": ["+1 425 555 0109"], "mobilePhone": "+1 206 555 0199"})
    );
    assert_eq!(
        by_id(ALEX_ID),
        json!({"id": ALEX_ID, "@removed": {"reason": "changed"}})
    );
    assert_eq!(
        by_id(LEE_ID),
        json!({"id": LEE_ID, "@removed": {"reason": "deleted"}})
    );
    assert_eq!(
        by_id(&new_id)["businessPhones"],
        json!(["+49 89 2030405-300"])
    );
    // A "latest" link sees the same changes; the next round is empty.
    let (from_latest, _) = round(&env, &at, &latest).await;
    assert_eq!(from_latest.len(), 4);
    let (none, _) = round(&env, &at, &delta2).await;
    assert!(none.is_empty(), "{none:?}");
    // A fresh initial round lists only the users there are.
    let (all, _) = round(&env, &at, start).await;
    assert_eq!(ids(&all), [ADELE_ID, MEGAN_ID, new_id.as_str()]);
}

#[tokio::test]
async fn users_delta_tokens_expire() {
    let env = env();
    let c = env.emu.control();
    let at = c
        .mint_access_token(ADELE_UPN, PLUGIN_CLIENT_ID, &["User.Read.All"], 600)
        .unwrap();
    let (_, b) = get_with(&env, &at, "/users/delta?$select=id", "odata.maxpagesize=2").await;
    let skip = b["@odata.nextLink"].as_str().unwrap().to_string();
    let (_, delta) = round(&env, &at, "/users/delta?$select=id").await;

    c.expire_directory_delta_tokens();
    for stale in [
        &skip,
        &delta,
        &format!("{}/users/delta?$deltatoken=garbage", env.emu.graph_url()),
    ] {
        let (s, b) = get(&env, &at, stale).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{stale}");
        assert_eq!(b["error"]["code"], "syncStateNotFound");
    }
    // A full round works again, and its link lives 7 days on the emulator clock.
    let (all, delta) = round(&env, &at, "/users/delta?$select=id").await;
    assert_eq!(all.len(), 4);
    let at = c
        .mint_access_token(ADELE_UPN, PLUGIN_CLIENT_ID, &["User.Read.All"], 30 * 86_400)
        .unwrap();
    c.advance_clock(6 * 86_400);
    assert_eq!(get(&env, &at, &delta).await.0, StatusCode::OK);
    let (_, b) = get(&env, &at, &delta).await;
    let renewed = b["@odata.deltaLink"].as_str().unwrap().to_string();
    c.advance_clock(2 * 86_400);
    let (s, b) = get(&env, &at, &delta).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("syncStateNotFound"))
    );
    assert_eq!(get(&env, &at, &renewed).await.0, StatusCode::OK);
}

#[tokio::test]
async fn directory_control_over_http() {
    let env = env();
    let base = format!("{}/_emulator", env.base());
    let at = env
        .emu
        .control()
        .mint_access_token(ADELE_UPN, PLUGIN_CLIENT_ID, &["User.Read.All"], 600)
        .unwrap();
    let r = env
        .http
        .post(format!("{base}/users"))
        .json(&json!({"userPrincipalName": "nestor.wilke@contoso.example", "displayName": "Nestor Wilke"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = env
        .http
        .patch(format!("{base}/users/nestor.wilke@contoso.example"))
        .json(&json!({"mobilePhone": "0170 1111111"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (_, b) = get(&env, &at, &format!("/users/{id}?$select=mobilePhone")).await;
    assert_eq!(b["mobilePhone"], "0170 1111111");
    let r = env
        .http
        .patch(format!("{base}/users/{id}"))
        .json(&json!({"favouriteColour": "blue"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = env
        .http
        .delete(format!("{base}/users/{id}?permanent=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        get(&env, &at, &format!("/users/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    let r = env
        .http
        .delete(format!("{base}/users/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "no such user any more");
    let (_, delta) = round(&env, &at, "/users/delta").await;
    let r = env
        .http
        .post(format!("{base}/users/expire-delta"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(get(&env, &at, &delta).await.0, StatusCode::BAD_REQUEST);
}
