use ms365_emulator::tenant::*;
use ms365_emulator::{EmulatorConfig, Fault, FaultRule};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;

fn token(env: &Env, scopes: &[&str]) -> String {
    env.emu
        .control()
        .mint_access_token(ADELE_UPN, PLUGIN_CLIENT_ID, scopes, 3600)
        .unwrap()
}

async fn get(env: &Env, at: &str, url: &str, prefer: Option<&str>) -> reqwest::Response {
    let url = if url.starts_with("http") {
        url.to_string()
    } else {
        format!("{}{url}", env.emu.graph_url())
    };
    let mut req = env.http.get(url).bearer_auth(at);
    if let Some(p) = prefer {
        req = req.header("Prefer", p);
    }
    req.send().await.unwrap()
}

async fn json(env: &Env, at: &str, url: &str) -> Value {
    let resp = get(env, at, url, None).await;
    assert_eq!(resp.status(), StatusCode::OK, "{url}");
    resp.json().await.unwrap()
}

/// Runs one delta round from `url`; returns (items, deltaLink, pages).
async fn round(
    env: &Env,
    at: &str,
    url: &str,
    prefer: Option<&str>,
) -> (Vec<Value>, String, usize) {
    let mut url = url.to_string();
    let mut items = Vec::new();
    let mut pages = 0;
    loop {
        let resp = get(env, at, &url, prefer).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let body: Value = resp.json().await.unwrap();
        pages += 1;
        items.extend(body["value"].as_array().unwrap().iter().cloned());
        if let Some(next) = body["@odata.nextLink"].as_str() {
            assert!(next.contains("$skiptoken="), "{next}");
            url = next.to_string();
        } else {
            let d = body["@odata.deltaLink"].as_str().unwrap();
            assert!(d.contains("$deltatoken="), "{d}");
            return (items, d.to_string(), pages);
        }
    }
}

#[tokio::test]
async fn folders_nested_and_default_folder() {
    let env = env();
    let at = token(&env, &["Contacts.Read"]);
    let f = json(&env, &at, "/me/contactFolders").await;
    let folders = f["value"].as_array().unwrap();
    assert_eq!(folders.len(), 1, "{f}");
    assert_eq!(folders[0]["id"], ADELE_KUNDEN_FOLDER_ID);
    assert_eq!(folders[0]["displayName"], "Kunden");
    assert_eq!(folders[0]["parentFolderId"], ADELE_CONTACTS_FOLDER_ID);
    assert!(
        f["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with(&format!("#users('{ADELE_ID}')/contactFolders"))
    );
    let c = json(
        &env,
        &at,
        &format!("/me/contactFolders/{ADELE_KUNDEN_FOLDER_ID}/childFolders"),
    )
    .await;
    assert_eq!(c["value"][0]["id"], ADELE_VIP_FOLDER_ID);
    assert_eq!(c["value"][0]["parentFolderId"], ADELE_KUNDEN_FOLDER_ID);
    let c = json(
        &env,
        &at,
        &format!("/me/contactFolders/{ADELE_VIP_FOLDER_ID}/childFolders"),
    )
    .await;
    assert_eq!(c["value"].as_array().unwrap().len(), 0);
    let d = json(
        &env,
        &at,
        &format!("/me/contactFolders/{ADELE_CONTACTS_FOLDER_ID}"),
    )
    .await;
    assert_eq!(d["displayName"], "Contacts");
    let resp = get(&env, &at, "/me/contactFolders/nope/contacts", None).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let b: Value = resp.json().await.unwrap();
    assert_eq!(b["error"]["code"], "ErrorItemNotFound");
}

#[tokio::test]
async fn list_contacts_paging_select_and_shape() {
    let env = env();
    let at = token(&env, &["Contacts.Read"]);
    let first = json(&env, &at, "/me/contacts").await;
    let page = first["value"].as_array().unwrap();
    assert_eq!(page.len(), 10);
    let anna = &page[0];
    assert_eq!(anna["id"], ADELE_CONTACT_ANNA_ID);
    assert_eq!(anna["displayName"], "Anna Müller");
    assert_eq!(anna["businessPhones"], json!(["089 1234567"]));
    assert_eq!(anna["mobilePhone"], "0171 2345678");
    assert_eq!(anna["homePhones"], json!([]));
    assert_eq!(
        anna["emailAddresses"][0]["address"],
        "anna.mueller@mueller-soehne.example"
    );
    assert_eq!(anna["parentFolderId"], ADELE_CONTACTS_FOLDER_ID);
    for k in [
        "changeKey",
        "createdDateTime",
        "lastModifiedDateTime",
        "companyName",
        "jobTitle",
        "surname",
        "givenName",
    ] {
        assert!(anna.get(k).is_some(), "{k}");
    }
    // Follow nextLinks: every contact of the default folder, all with the default folder id.
    let mut all: Vec<Value> = page.clone();
    let mut next = first["@odata.nextLink"].as_str().map(str::to_string);
    while let Some(url) = next {
        let b = json(&env, &at, &url).await;
        all.extend(b["value"].as_array().unwrap().iter().cloned());
        next = b["@odata.nextLink"].as_str().map(str::to_string);
    }
    assert!(
        all.iter()
            .all(|c| c["parentFolderId"] == ADELE_CONTACTS_FOLDER_ID)
    );
    assert!(all.len() >= 11 && all.len() < 25, "{}", all.len());
    assert!(all.iter().all(|c| c["id"] != ADELE_CONTACT_RETO_ID));

    let b = json(
        &env,
        &at,
        "/me/contacts?$select=displayName,businessPhones&$top=3",
    )
    .await;
    assert_eq!(b["value"].as_array().unwrap().len(), 3);
    let keys: Vec<&String> = b["value"][0].as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 4, "{keys:?}"); // @odata.etag, id, displayName, businessPhones
    let next = b["@odata.nextLink"].as_str().unwrap();
    assert!(
        next.contains("$select=displayName,businessPhones")
            && next.contains("$top=3")
            && next.contains("$skip=3"),
        "{next}"
    );
    assert!(
        b["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("/contacts(displayName,businessPhones)")
    );

    let vip = json(
        &env,
        &at,
        &format!("/me/contactFolders/{ADELE_VIP_FOLDER_ID}/contacts?$top=1000"),
    )
    .await;
    assert!(
        vip["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == ADELE_CONTACT_RENEE_ID)
    );

    let resp = get(&env, &at, "/me/contacts?$select=nope", None).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn scopes_401_403() {
    let env = env();
    let at = token(&env, &["User.Read"]);
    let resp = get(&env, &at, "/me/contacts", None).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let b: Value = resp.json().await.unwrap();
    assert_eq!(b["error"]["code"], "ErrorAccessDenied");
    let resp = get(&env, "garbage", "/me/contacts", None).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn delta_rounds_with_changes_removals_pagesize_and_select() {
    let env = env();
    let c = env.emu.control();
    let at = token(&env, &["Contacts.Read"]);
    let start = format!(
        "{}/me/contactFolders/{ADELE_CONTACTS_FOLDER_ID}/contacts/delta?$select=displayName,businessPhones",
        env.emu.graph_url()
    );
    // Initial round, 4 per page.
    let resp = get(&env, &at, &start, Some("odata.maxpagesize=4")).await;
    assert_eq!(resp.headers()["preference-applied"], "odata.maxpagesize=4");
    let (items, delta_link, pages) = round(&env, &at, &start, Some("odata.maxpagesize=4")).await;
    let n = items.len();
    assert!(n >= 11);
    assert_eq!(pages, n.div_ceil(4));
    assert!(
        items
            .iter()
            .all(|i| i.get("surname").is_none() && i.get("displayName").is_some())
    );
    // Default page size 10.
    let (_, _, pages10) = round(&env, &at, &start, None).await;
    assert_eq!(pages10, n.div_ceil(10));

    // Nothing changed: empty round.
    let (items, delta_link, _) = round(&env, &at, &delta_link, None).await;
    assert!(items.is_empty());

    // Add, change, delete.
    let new_id = c
        .add_contact(ADELE_UPN, None, &json!({"givenName": "Neu", "surname": "Kontakt", "businessPhones": ["+49 89 5550000"]}))
        .unwrap();
    c.update_contact(
        Some(ADELE_UPN),
        ADELE_CONTACT_ANNA_ID,
        &json!({"businessPhones": ["089 7777777"]}),
    )
    .unwrap();
    c.delete_contact(None, ADELE_CONTACT_ZOE_ID).unwrap();
    // A change in another folder does not show here.
    c.update_contact(None, ADELE_CONTACT_RETO_ID, &json!({"jobTitle": "x"}))
        .unwrap();
    let (items, delta_link, _) = round(&env, &at, &delta_link, None).await;
    assert_eq!(items.len(), 3, "{items:?}");
    let by_id = |id: &str| items.iter().find(|i| i["id"] == id).cloned().unwrap();
    assert_eq!(by_id(&new_id)["displayName"], "Neu Kontakt");
    let anna = by_id(ADELE_CONTACT_ANNA_ID);
    assert_eq!(anna["businessPhones"], json!(["089 7777777"]));
    assert!(anna.get("surname").is_none(), "$select persisted: {anna}");
    assert_eq!(
        by_id(ADELE_CONTACT_ZOE_ID),
        json!({"@odata.type": "#microsoft.graph.contact", "id": ADELE_CONTACT_ZOE_ID, "@removed": {"reason": "deleted"}})
    );

    // Maxpagesize above the cap is capped at 1000.
    let resp = get(&env, &at, &delta_link, Some("odata.maxpagesize=5000")).await;
    assert_eq!(
        resp.headers()["preference-applied"],
        "odata.maxpagesize=1000"
    );

    // Expired tokens: 410 syncStateNotFound with a Location for a fresh start.
    c.expire_delta_tokens(ADELE_UPN).unwrap();
    let resp = get(&env, &at, &delta_link, None).await;
    assert_eq!(resp.status(), StatusCode::GONE);
    let loc = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(
        loc.contains("/contacts/delta") && loc.contains("$select=displayName,businessPhones"),
        "{loc}"
    );
    let b: Value = resp.json().await.unwrap();
    assert_eq!(b["error"]["code"], "syncStateNotFound");
    let resp = get(
        &env,
        &at,
        &format!(
            "{}/me/contactFolders/{ADELE_CONTACTS_FOLDER_ID}/contacts/delta?$deltatoken=bogus",
            env.emu.graph_url()
        ),
        None,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::GONE);
    // The fresh start works.
    let (items, _, _) = round(&env, &at, &loc, None).await;
    assert_eq!(items.len(), n); // one added, one deleted
}

#[tokio::test]
async fn change_during_a_round_comes_in_the_next_round() {
    let env = env();
    let c = env.emu.control();
    let at = token(&env, &["Contacts.Read"]);
    let start = format!(
        "{}/me/contactFolders/{ADELE_CONTACTS_FOLDER_ID}/contacts/delta",
        env.emu.graph_url()
    );
    let first: Value = get(&env, &at, &start, Some("odata.maxpagesize=2"))
        .await
        .json()
        .await
        .unwrap();
    let next = first["@odata.nextLink"].as_str().unwrap().to_string();
    c.update_contact(
        None,
        ADELE_CONTACT_ANNA_ID,
        &json!({"jobTitle": "Leitung Einkauf"}),
    )
    .unwrap();
    let (rest, delta_link, _) = round(&env, &at, &next, Some("odata.maxpagesize=2")).await;
    assert!(rest.iter().all(|i| i["id"] != ADELE_CONTACT_ANNA_ID));
    let (items, _, _) = round(&env, &at, &delta_link, None).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["jobTitle"], "Leitung Einkauf");
    assert!(
        items[0].get("surname").is_some(),
        "no $select: full contact"
    );
}

#[tokio::test]
async fn outlook_concurrency_limit_429() {
    let env = env();
    let c = env.emu.control();
    let at = token(&env, &["Contacts.Read"]);
    c.inject_fault(FaultRule {
        path_prefix: "/v1.0/me/contacts".into(),
        method: None,
        count: 4,
        fault: Fault::Delay { ms: 600 },
    })
    .unwrap();
    let url = format!("{}/me/contacts", env.emu.graph_url());
    let slow: Vec<_> = (0..4)
        .map(|_| {
            let req = env.http.get(&url).bearer_auth(&at).send();
            tokio::spawn(req)
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let resp = env.http.get(&url).bearer_auth(&at).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "1");
    let b: Value = resp.json().await.unwrap();
    assert_eq!(b["error"]["code"], "ApplicationThrottled");
    assert_eq!(b["error"]["innerError"]["code"], "MailboxConcurrency");
    // Another app on the same mailbox is not affected.
    let other = c
        .mint_access_token(ADELE_UPN, HOST_CLIENT_ID, &["Contacts.Read"], 600)
        .unwrap();
    let resp = env.http.get(&url).bearer_auth(&other).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    for s in slow {
        assert_eq!(s.await.unwrap().unwrap().status(), StatusCode::OK);
    }
    // Slots are released.
    let resp = env.http.get(&url).bearer_auth(&at).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let log = c.requests();
    assert_eq!(log.iter().filter(|e| e.status == Some(429)).count(), 1);
}

#[tokio::test]
async fn control_over_http_and_large_seed() {
    let env = env_with(EmulatorConfig {
        contacts_per_user: 3,
        ..config()
    });
    assert_eq!(env.emu.control().contact_count(ADELE_UPN).unwrap(), 3);
    let (s, b) = env.control("contacts", json!({"upn": ADELE_UPN, "folder_id": ADELE_VIP_FOLDER_ID, "givenName": "Zoë", "surname": "Łukasiewicz", "mobilePhone": "+49 171 1111111"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let id = b["id"].as_str().unwrap().to_string();
    let resp = env
        .http
        .patch(format!("{}/_emulator/contacts/{id}", env.base()))
        .json(&json!({"jobTitle": "CTO"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = env
        .http
        .delete(format!("{}/_emulator/contacts/{id}", env.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = env
        .http
        .delete(format!("{}/_emulator/contacts/{id}", env.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let (s, _) = env
        .control("contacts/expire-delta", json!({"upn": ADELE_UPN}))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = env
        .control("contacts/seed", json!({"upn": MEGAN_UPN, "count": 5000}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(env.emu.control().contact_count(MEGAN_UPN).unwrap(), 5000);
    let at = env
        .emu
        .control()
        .mint_access_token(MEGAN_UPN, PLUGIN_CLIENT_ID, &["Contacts.Read"], 600)
        .unwrap();
    let b = json(&env, &at, "/me/contacts?$top=1000").await;
    assert_eq!(b["value"].as_array().unwrap().len(), 1000);
}
