use reqwest::StatusCode;
use serde_json::Value;

use crate::common::*;

#[tokio::test]
async fn discovery_documents() {
    let env = env();
    let base = env.base();
    let doc: Value = env
        .get(&format!(
            "{}/.well-known/openid-configuration",
            env.emu.authority()
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], format!("{base}/{{tenantid}}/v2.0"));
    assert_eq!(
        doc["authorization_endpoint"],
        format!("{base}/organizations/oauth2/v2.0/authorize")
    );
    assert_eq!(
        doc["token_endpoint"],
        format!("{base}/organizations/oauth2/v2.0/token")
    );
    assert_eq!(
        doc["device_authorization_endpoint"],
        format!("{base}/organizations/oauth2/v2.0/devicecode")
    );
    assert_eq!(
        doc["end_session_endpoint"],
        format!("{base}/organizations/oauth2/v2.0/logout")
    );
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert!(
        doc["scopes_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "offline_access")
    );
    assert!(
        doc["response_types_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "code")
    );

    let tid = env.emu.tenant_id();
    for seg in [tid.as_str(), "contoso.example"] {
        let doc: Value = env
            .get(&format!(
                "{base}/{seg}/v2.0/.well-known/openid-configuration"
            ))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(doc["issuer"], format!("{base}/{tid}/v2.0"));
    }

    let jwks: Value = env
        .get(doc["jwks_uri"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kty"], "RSA");

    let resp = env
        .get(&format!(
            "{base}/fabrikam.example/v2.0/.well-known/openid-configuration"
        ))
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.headers().contains_key("request-id"));
    let body: Value = resp.json().await.unwrap();
    assert_aad_error(&body, "invalid_tenant", 90002);
}

#[tokio::test]
async fn authorize_success_redirect() {
    let env = env();
    let (_, challenge) = pkce();
    let client_id = env.emu.client_id();
    // No state sent: none comes back. Port and path are free on a loopback redirect.
    let resp = env
        .get(&env.authorize_url(&[
            ("client_id", &client_id),
            ("response_type", "code"),
            ("redirect_uri", "http://127.0.0.1:61234/"),
            ("scope", "User.Read"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ]))
        .await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let loc = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.starts_with("http://127.0.0.1:61234/?code="), "{loc}");
    assert!(!loc.contains("state="));

    // State with odd characters is echoed verbatim.
    let code = env.code_with("User.Read", &[]).await;
    assert!(!code.code.is_empty());
    let state = "a b&c=d/é";
    let resp = env
        .get(&env.authorize_url(&[
            ("client_id", &client_id),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
            ("scope", "User.Read"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("state", state),
        ]))
        .await;
    assert_eq!(location_params(&resp)["state"], state);
}

#[tokio::test]
async fn authorize_errors() {
    let env = env();
    let (_, challenge) = pkce();
    let client_id = env.emu.client_id();
    let base_pairs = |redirect: &'static str| {
        vec![
            ("client_id", client_id.clone()),
            ("response_type", "code".to_string()),
            ("redirect_uri", redirect.to_string()),
            ("scope", "openid User.Read".to_string()),
            ("code_challenge", challenge.clone()),
            ("code_challenge_method", "S256".to_string()),
            ("state", "xyz".to_string()),
        ]
    };
    let url = |pairs: Vec<(&str, String)>| {
        let p: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        env.authorize_url(&p)
    };

    // Untrusted redirect or client: an HTML error page, no redirect.
    let mut p = base_pairs(REDIRECT);
    p[0].1 = "00000000-0000-0000-0000-000000000000".into();
    let resp = env.get(&url(p)).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(resp.text().await.unwrap().contains("AADSTS700016"));
    for bad in [
        "http://[::1]:5000/",
        "https://localhost/",
        "http://evil.example/cb",
    ] {
        let mut p = base_pairs(REDIRECT);
        p[2].1 = bad.into();
        let resp = env.get(&url(p)).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert!(resp.text().await.unwrap().contains("AADSTS50011"));
    }
    let resp = env
        .get(&format!(
            "{}/consumers/oauth2/v2.0/authorize?client_id={client_id}",
            env.base()
        ))
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.text().await.unwrap().contains("AADSTS90002"));

    // Redirectable errors go back to the client with state.
    type Pairs<'a> = Vec<(&'a str, String)>;
    let cases: Vec<(Pairs, &str, &str)> = vec![
        (
            base_pairs(REDIRECT)
                .into_iter()
                .filter(|(k, _)| *k != "code_challenge")
                .collect(),
            "invalid_request",
            "AADSTS9002325",
        ),
        (
            base_pairs(REDIRECT)
                .into_iter()
                .map(|(k, v)| {
                    if k == "code_challenge_method" {
                        (k, "plain".into())
                    } else {
                        (k, v)
                    }
                })
                .collect(),
            "invalid_request",
            "AADSTS9002325",
        ),
        (
            base_pairs(REDIRECT)
                .into_iter()
                .map(|(k, v)| {
                    if k == "code_challenge" {
                        (k, "short".into())
                    } else {
                        (k, v)
                    }
                })
                .collect(),
            "invalid_request",
            "AADSTS501491",
        ),
        (
            base_pairs(REDIRECT)
                .into_iter()
                .map(|(k, v)| {
                    if k == "response_type" {
                        (k, "token".into())
                    } else {
                        (k, v)
                    }
                })
                .collect(),
            "unsupported_response_type",
            "AADSTS700054",
        ),
        (
            base_pairs(REDIRECT)
                .into_iter()
                .map(|(k, v)| {
                    if k == "scope" {
                        (k, "openid Nope.Nothing".into())
                    } else {
                        (k, v)
                    }
                })
                .collect(),
            "invalid_scope",
            "AADSTS70011",
        ),
        (
            base_pairs(REDIRECT)
                .into_iter()
                .filter(|(k, _)| *k != "scope")
                .collect(),
            "invalid_request",
            "AADSTS900144",
        ),
    ];
    for (pairs, error, code) in cases {
        let resp = env.get(&url(pairs)).await;
        assert_eq!(resp.status(), StatusCode::FOUND, "{error}");
        let loc = resp.headers()["location"].to_str().unwrap();
        assert!(loc.starts_with(REDIRECT), "{loc}");
        let p = location_params(&resp);
        assert_eq!(p["error"], error);
        assert!(
            p["error_description"].starts_with(code),
            "{}",
            p["error_description"]
        );
        assert_eq!(p["state"], "xyz");
        assert!(!p.contains_key("code"));
    }
}

#[tokio::test]
async fn plain_pkce_when_configured() {
    let env = env_with(ms365_emulator::EmulatorConfig {
        allow_plain_pkce: true,
        ..config()
    });
    let verifier = "a".repeat(50);
    let client_id = env.emu.client_id();
    let resp = env
        .get(&env.authorize_url(&[
            ("client_id", &client_id),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
            ("scope", "User.Read"),
            ("code_challenge", &verifier),
            ("code_challenge_method", "plain"),
        ]))
        .await;
    let code = location_params(&resp)["code"].clone();
    let (status, body) = env.redeem(&Code { code, verifier }).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
