use std::time::{Duration, Instant};

use ms365_emulator::tenant::{ADELE_UPN, MEGAN_UPN};
use ms365_emulator::{Fault, FaultRule};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;

fn rule(prefix: &str, fault: Fault) -> FaultRule {
    FaultRule {
        path_prefix: prefix.into(),
        method: None,
        count: 1,
        fault,
    }
}

#[tokio::test]
async fn status_faults() {
    let env = env();
    let t = env.sign_in(SCOPE).await;
    let at = t["access_token"].as_str().unwrap();

    // 429 over HTTP control, with Retry-After seconds, for two requests.
    let (status, _) = env
        .control(
            "faults",
            json!({"path_prefix": "/v1.0/me", "count": 2, "fault": {"kind": "status", "status": 429, "retry_after": "3"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    for _ in 0..2 {
        let resp = env.me(Some(at), "").await;
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()["retry-after"], "3");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "TooManyRequests");
        assert_eq!(body["error"]["innerError"]["status"], "429");
    }
    assert_eq!(env.me(Some(at), "").await.status(), StatusCode::OK);

    // 503 with an HTTP date; 500, 502, 504 without.
    let date = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(5));
    env.emu
        .control()
        .inject_fault(rule(
            "/v1.0/me",
            Fault::Status {
                status: 503,
                retry_after: Some(date.clone()),
            },
        ))
        .unwrap();
    let resp = env.me(Some(at), "").await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["retry-after"].to_str().unwrap(), date);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "serviceNotAvailable"
    );
    for s in [500u16, 502, 504] {
        env.emu
            .control()
            .inject_fault(rule(
                "/v1.0/",
                Fault::Status {
                    status: s,
                    retry_after: None,
                },
            ))
            .unwrap();
        let resp = env.me(Some(at), "").await;
        assert_eq!(resp.status().as_u16(), s);
        assert!(
            resp.json::<Value>().await.unwrap()["error"]["innerError"]["request-id"].is_string()
        );
    }

    // On the token endpoint the body is the identity platform's; a method filter applies.
    env.emu
        .control()
        .inject_fault(FaultRule {
            path_prefix: "/organizations/oauth2/v2.0/token".into(),
            method: Some("POST".into()),
            count: 1,
            fault: Fault::Status {
                status: 503,
                retry_after: Some("1".into()),
            },
        })
        .unwrap();
    let (status, body) = env
        .refresh(t["refresh_token"].as_str().unwrap(), None)
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS")
    );
    // The faulted request was not processed: the refresh token still works.
    let (status, _) = env
        .refresh(t["refresh_token"].as_str().unwrap(), None)
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, _) = env
        .control(
            "faults",
            json!({"path_prefix": "/", "fault": {"kind": "status", "status": 200}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn delay_drop_malformed_truncated() {
    let env = env();
    let t = env.sign_in(SCOPE).await;
    let at = t["access_token"].as_str().unwrap();
    let c = env.emu.control();

    c.inject_fault(rule("/v1.0/me", Fault::Delay { ms: 300 }))
        .unwrap();
    let start = Instant::now();
    assert_eq!(env.me(Some(at), "").await.status(), StatusCode::OK);
    assert!(start.elapsed() >= Duration::from_millis(300));

    c.inject_fault(rule("/v1.0/me", Fault::DropConnection))
        .unwrap();
    let err = env.me_result(at).await.unwrap_err();
    assert!(!err.is_status(), "{err:?}");
    assert_eq!(
        env.me(Some(at), "").await.status(),
        StatusCode::OK,
        "next request is served"
    );

    c.inject_fault(rule("/v1.0/me", Fault::MalformedJson))
        .unwrap();
    let resp = env.me(Some(at), "").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");

    c.inject_fault(rule("/v1.0/me", Fault::TruncatedJson))
        .unwrap();
    let resp = env.me(Some(at), "").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    assert!(text.starts_with("{\"@odata.context\""));

    let log = c.requests();
    let faults: Vec<_> = log.iter().filter_map(|e| e.fault.clone()).collect();
    assert_eq!(
        faults,
        [
            "delay 300ms",
            "drop_connection",
            "malformed_json",
            "truncated_json"
        ]
    );
    assert!(
        log.iter()
            .any(|e| e.fault.as_deref() == Some("drop_connection") && e.status.is_none())
    );
}

impl Env {
    async fn me_result(&self, at: &str) -> reqwest::Result<reqwest::Response> {
        let resp = self
            .http
            .get(format!("{}/me", self.emu.graph_url()))
            .bearer_auth(at)
            .send()
            .await?;
        resp.error_for_status()
    }
}

#[tokio::test]
async fn request_log_is_redacted() {
    let env = env();
    let code = env.code(SCOPE).await;
    let (_, t) = env.redeem(&code).await;
    let rt = t["refresh_token"].as_str().unwrap().to_string();
    let (_, t2) = env.refresh(&rt, None).await;
    let at = t2["access_token"].as_str().unwrap().to_string();
    env.me(Some(&at), "?$select=id").await;
    // A client mistakenly sending secrets in a query string.
    env.get(&format!(
        "{}/v1.0/me?access_token={at}&code={}",
        env.base(),
        code.code
    ))
    .await;
    let dc: Value = env
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
        .unwrap()
        .json()
        .await
        .unwrap();
    let device_code = dc["device_code"].as_str().unwrap();
    env.token(&[
        ("client_id", env.emu.client_id().as_str()),
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", device_code),
    ])
    .await;

    let resp = env.get(&format!("{}/_emulator/requests", env.base())).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.unwrap();
    let secrets = [
        code.code.as_str(),
        code.verifier.as_str(),
        rt.as_str(),
        t["access_token"].as_str().unwrap(),
        at.as_str(),
        t2["refresh_token"].as_str().unwrap(),
        device_code,
    ];
    for s in secrets {
        assert!(!text.contains(s), "secret leaked into the request log");
    }
    let log: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert!(
        log.iter()
            .all(|e| !e["path"].as_str().unwrap().starts_with("/_emulator"))
    );
    let redeem = log
        .iter()
        .find(|e| e["form"]["grant_type"] == "authorization_code")
        .unwrap();
    assert_eq!(redeem["form"]["code"], "REDACTED");
    assert_eq!(redeem["form"]["code_verifier"], "REDACTED");
    assert_eq!(redeem["status"], 200);
    let authorize = log
        .iter()
        .find(|e| e["path"].as_str().unwrap().ends_with("/authorize"))
        .unwrap();
    assert!(
        authorize["query"]
            .as_str()
            .unwrap()
            .contains("code_challenge=")
    );
    assert!(log.iter().any(|e| {
        e["query"]
            .as_str()
            .is_some_and(|q| q.contains("access_token=REDACTED"))
    }));

    let resp = env
        .http
        .delete(format!("{}/_emulator/requests", env.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(env.emu.control().requests().is_empty());
}

#[tokio::test]
async fn http_control_api() {
    let env = env();
    let summary: Value = env
        .get(&format!("{}/_emulator/", env.base()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(summary["client_id"], env.emu.client_id());
    assert_eq!(summary["sign_in_user"], ADELE_UPN);

    let (status, _) = env.control("sign-in-user", json!({"upn": MEGAN_UPN})).await;
    assert_eq!(status, StatusCode::OK);
    let t = env.sign_in(SCOPE).await;
    let me: Value = env
        .me(t["access_token"].as_str(), "")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["userPrincipalName"], MEGAN_UPN);

    let (status, body) = env
        .control("sign-in-user", json!({"upn": "nobody@contoso.example"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].is_string());
    let (status, _) = env.control("sign-in-user", json!({"user": "x"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, body) = env.control("clock/advance", json!({"seconds": 60})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["now"].is_string());

    let (status, body) = env
        .control("tokens/expire-refresh", json!({"upn": MEGAN_UPN}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["tokens"], 1);

    let (status, _) = env.control("reset", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let summary: Value = env
        .get(&format!("{}/_emulator/", env.base()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(summary["sign_in_user"], ADELE_UPN);
    // Tokens from before the reset are gone.
    assert_eq!(
        env.me(t["access_token"].as_str(), "").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn shutdown_is_quick() {
    let env = env();
    let base = env.base();
    assert_eq!(env.get(&format!("{base}/")).await.status(), StatusCode::OK);
    let start = Instant::now();
    env.emu.shutdown();
    assert!(start.elapsed() < Duration::from_secs(2));
    let fresh = reqwest::Client::new();
    assert!(fresh.get(format!("{base}/")).send().await.is_err());
}

/// `reset_mid_body`: status and headers (full `Content-Length`) arrive, the body breaks off.
/// `append_items` with a query-aware prefix: only the matching request gets the extra items.
#[tokio::test]
async fn reset_mid_body_and_append_items() {
    let env = env();
    let t = env.sign_in(SCOPE).await;
    let at = t["access_token"].as_str().unwrap();
    let whole = env.me(Some(at), "").await.bytes().await.unwrap();

    env.emu
        .control()
        .inject_fault(rule("/v1.0/me", Fault::ResetMidBody))
        .unwrap();
    let resp = env.me(Some(at), "").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.content_length(), Some(whole.len() as u64));
    assert!(resp.bytes().await.is_err(), "the body breaks off");
    assert_eq!(env.me(Some(at), "").await.status(), StatusCode::OK);

    let url = format!("{}/me/contacts", env.emu.graph_url());
    let get = |q: &'static str| env.http.get(format!("{url}{q}")).bearer_auth(at).send();
    env.emu
        .control()
        .inject_fault(rule(
            "/v1.0/me/contacts?$top=2&$skip=",
            Fault::AppendItems {
                items: vec![json!({"id": "replayed"})],
            },
        ))
        .unwrap();
    let first: Value = get("?$top=2").await.unwrap().json().await.unwrap();
    assert_eq!(first["value"].as_array().unwrap().len(), 2, "not matched");
    let next: Value = get("?%24top=2&%24skip=2")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = next["value"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{next}");
    assert_eq!(items[2]["id"], "replayed");
    let log = env.emu.control().requests();
    assert_eq!(
        log.iter()
            .filter_map(|e| e.fault.clone())
            .collect::<Vec<_>>(),
        ["reset_mid_body", "append_items 1"]
    );
}

/// A skewed clock shows in the `Date` header; a restart keeps every state (the token stays
/// valid) while the port refuses connections in between.
#[tokio::test]
async fn skewed_date_header_and_restart_with_the_same_state() {
    let mut env = env();
    let t = env.sign_in(SCOPE).await;
    let at = t["access_token"].as_str().unwrap().to_string();
    let date_of = |resp: &reqwest::Response| {
        httpdate::parse_http_date(resp.headers()["date"].to_str().unwrap()).unwrap()
    };
    let now = std::time::SystemTime::now();
    env.emu.control().skew_clock(-600);
    let resp = env.me(Some(&at), "").await;
    let behind = now.duration_since(date_of(&resp)).unwrap();
    assert!(behind >= Duration::from_secs(590) && behind <= Duration::from_secs(610));
    let (status, body) = env.control("clock/skew", json!({"seconds": 1200})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let resp = env.me(Some(&at), "").await;
    let ahead = date_of(&resp).duration_since(now).unwrap();
    assert!(ahead >= Duration::from_secs(590) && ahead <= Duration::from_secs(620));

    env.emu.stop_serving();
    assert!(!env.emu.is_serving());
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let refused = fresh
        .get(format!("{}/me", env.emu.graph_url()))
        .send()
        .await;
    assert!(refused.is_err_and(|e| e.is_connect()));
    // Serving again: same tokens (connections kept from before the stop are gone, so ask on
    // new ones).
    let me_url = format!("{}/me", env.emu.graph_url());
    let me = || fresh.get(&me_url).bearer_auth(&at).send();
    env.emu.start_serving().unwrap();
    assert!(env.emu.is_serving());
    assert_eq!(me().await.unwrap().status(), StatusCode::OK);
    env.emu.restart().unwrap();
    assert_eq!(me().await.unwrap().status(), StatusCode::OK);
}
