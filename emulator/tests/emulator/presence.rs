use ms365_emulator::tenant::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;

struct P<'a> {
    env: &'a Env,
    at: String,
}

impl P<'_> {
    async fn get(&self) -> Value {
        let resp = self
            .env
            .http
            .get(format!("{}/me/presence", self.env.emu.graph_url()))
            .bearer_auth(&self.at)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json().await.unwrap()
    }

    async fn pair(&self) -> (String, String) {
        let v = self.get().await;
        (
            v["availability"].as_str().unwrap().into(),
            v["activity"].as_str().unwrap().into(),
        )
    }

    async fn post(&self, action: &str, body: Value) -> (StatusCode, Value) {
        let resp = self
            .env
            .http
            .post(format!(
                "{}/users/{ADELE_ID}/presence/{action}",
                self.env.emu.graph_url()
            ))
            .bearer_auth(&self.at)
            .json(&body)
            .send()
            .await
            .unwrap();
        let s = resp.status();
        let text = resp.text().await.unwrap();
        (
            s,
            if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap()
            },
        )
    }
}

fn p<'a>(env: &'a Env, scopes: &[&str]) -> P<'a> {
    P {
        env,
        at: env
            .emu
            .control()
            .mint_access_token(ADELE_UPN, PLUGIN_CLIENT_ID, scopes, 30 * 86400)
            .unwrap(),
    }
}

fn s(a: &str, b: &str) -> (String, String) {
    (a.into(), b.into())
}

#[tokio::test]
async fn read_shape_ids_and_permissions() {
    let env = env();
    let r = p(&env, &["Presence.Read"]);
    let v = r.get().await;
    assert_eq!(v["id"], ADELE_ID);
    assert_eq!(v["availability"], "Available");
    assert_eq!(v["outOfOfficeSettings"]["isOutOfOffice"], false);
    assert!(v["sequenceNumber"].is_string());
    let url = |k: &str| format!("{}/users/{k}/presence", env.emu.graph_url());
    // Own presence by object id with Presence.Read; others need Presence.Read.All.
    assert_eq!(
        env.http
            .get(url(ADELE_ID))
            .bearer_auth(&r.at)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        env.http
            .get(url(MEGAN_ID))
            .bearer_auth(&r.at)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    let all = p(&env, &["Presence.Read.All"]);
    assert_eq!(
        env.http
            .get(url(MEGAN_ID))
            .bearer_auth(&all.at)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    // UPN refused; unknown GUID 404.
    let resp = env
        .http
        .get(url(MEGAN_UPN))
        .bearer_auth(&all.at)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let b: Value = resp.json().await.unwrap();
    assert_eq!(b["error"]["code"], "BadRequest");
    let resp = env
        .http
        .get(url("00000000-0000-0000-0000-00000000dead"))
        .bearer_auth(&all.at)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // Writing needs Presence.ReadWrite.
    let (st, _) = r
        .post(
            "setPresence",
            json!({"sessionId": PLUGIN_CLIENT_ID, "availability": "Busy", "activity": "InACall"}),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let no = p(&env, &["User.Read"]);
    assert_eq!(
        env.http
            .get(url(ADELE_ID))
            .bearer_auth(&no.at)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn set_presence_rules_and_expiry() {
    let env = env();
    let c = env.emu.control();
    let w = p(&env, &["Presence.ReadWrite"]);
    for (a, b) in [
        ("Busy", "Busy"),
        ("Available", "InACall"),
        ("Busy", "InAMeeting"),
        ("Offline", "OffWork"),
    ] {
        let (st, body) = w
            .post(
                "setPresence",
                json!({"sessionId": PLUGIN_CLIENT_ID, "availability": a, "activity": b}),
            )
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{a}/{b}");
        assert_eq!(body["error"]["code"], "BadRequest");
    }
    for d in ["PT4M", "PT4H1M", "P1D", "soon"] {
        let (st, _) = w.post("setPresence", json!({"sessionId": PLUGIN_CLIENT_ID, "availability": "Busy", "activity": "InACall", "expirationDuration": d})).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{d}");
    }
    let (st, _) = w
        .post(
            "setPresence",
            json!({"sessionId": HOST_CLIENT_ID, "availability": "Busy", "activity": "InACall"}),
        )
        .await;
    assert_eq!(
        st,
        StatusCode::BAD_REQUEST,
        "sessionId must be the caller's app id"
    );
    let (st, _) = w
        .post(
            "setPresence",
            json!({"availability": "Busy", "activity": "InACall"}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    for (a, b) in [
        ("Available", "Available"),
        ("Busy", "InAConferenceCall"),
        ("Away", "Away"),
        ("DoNotDisturb", "Presenting"),
        ("Busy", "InACall"),
    ] {
        let (st, body) = w.post("setPresence", json!({"sessionId": PLUGIN_CLIENT_ID, "availability": a, "activity": b, "expirationDuration": "PT15M"})).await;
        assert_eq!(st, StatusCode::OK, "{a}/{b} {body}");
        assert_eq!(body, Value::Null, "no body");
    }
    assert_eq!(w.pair().await, s("Busy", "InACall"));
    c.advance_clock(14 * 60);
    assert_eq!(w.pair().await, s("Busy", "InACall"));
    c.advance_clock(2 * 60);
    assert_eq!(
        w.pair().await,
        s("Available", "Available"),
        "expired session: back to the Teams client"
    );
    // Default expiry 5 minutes.
    w.post(
        "setPresence",
        json!({"sessionId": PLUGIN_CLIENT_ID, "availability": "Busy", "activity": "InACall"}),
    )
    .await;
    c.advance_clock(4 * 60);
    assert_eq!(w.pair().await.1, "InACall");
    c.advance_clock(61);
    assert_eq!(w.pair().await.1, "Available");
    // clearPresence: 404 without a session, 200 with one.
    let (st, b) = w
        .post("clearPresence", json!({"sessionId": PLUGIN_CLIENT_ID}))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(b["error"]["code"].is_string());
    w.post("setPresence", json!({"sessionId": PLUGIN_CLIENT_ID, "availability": "Busy", "activity": "InACall", "expirationDuration": "PT1H"})).await;
    let (st, _) = w
        .post("clearPresence", json!({"sessionId": PLUGIN_CLIENT_ID}))
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(w.pair().await, s("Available", "Available"));
    // Only session + signed out of Teams: clearing leaves Offline.
    let (st, _) = env
        .control(
            "presence/teams",
            json!({"upn": ADELE_UPN, "signed_out": true}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(w.pair().await, s("Offline", "Offline"));
    w.post(
        "setPresence",
        json!({"sessionId": PLUGIN_CLIENT_ID, "availability": "Away", "activity": "Away"}),
    )
    .await;
    assert_eq!(w.pair().await, s("Away", "Away"));
    w.post("clearPresence", json!({"sessionId": PLUGIN_CLIENT_ID}))
        .await;
    assert_eq!(w.pair().await, s("Offline", "Offline"));
    // Writes are in the request log.
    let writes = c
        .requests()
        .iter()
        .filter(|e| e.method == "POST" && e.path.contains("/presence/"))
        .count();
    assert!(writes >= 20, "{writes}");
}

#[tokio::test]
async fn aggregation_precedence_and_available_fades() {
    let env = env();
    let c = env.emu.control();
    let w = p(&env, &["Presence.ReadWrite"]);
    // Teams Busy/InAMeeting vs app Available: Busy wins.
    c.set_teams_presence(ADELE_UPN, "Busy", "InAMeeting")
        .unwrap();
    w.post("setPresence", json!({"sessionId": PLUGIN_CLIENT_ID, "availability": "Available", "activity": "Available", "expirationDuration": "PT1H"})).await;
    assert_eq!(w.pair().await, s("Busy", "InAMeeting"));
    // App DoNotDisturb/Presenting beats Teams Busy.
    w.post("setPresence", json!({"sessionId": PLUGIN_CLIENT_ID, "availability": "DoNotDisturb", "activity": "Presenting", "expirationDuration": "PT1H"})).await;
    assert_eq!(w.pair().await, s("DoNotDisturb", "Presenting"));
    // Teams Away vs app Available: Available wins, then fades after 5 and 10 minutes.
    c.set_teams_presence(ADELE_UPN, "Away", "Away").unwrap();
    w.post("setPresence", json!({"sessionId": PLUGIN_CLIENT_ID, "availability": "Available", "activity": "Available", "expirationDuration": "PT1H"})).await;
    assert_eq!(w.pair().await, s("Available", "Available"));
    c.advance_clock(5 * 60 + 1);
    assert_eq!(w.pair().await, s("AvailableIdle", "Inactive"));
    c.advance_clock(5 * 60);
    assert_eq!(w.pair().await, s("Away", "Away"));
    // Out of office on an Available aggregate.
    c.set_teams_presence(ADELE_UPN, "Available", "Available")
        .unwrap();
    c.set_out_of_office(ADELE_UPN, true, Some("Bis Montag"))
        .unwrap();
    let v = w.get().await;
    assert_eq!(v["activity"], "OutOfOffice");
    assert_eq!(
        v["outOfOfficeSettings"],
        json!({"isOutOfOffice": true, "message": "Bis Montag"})
    );
    let seq1 = v["sequenceNumber"].as_str().unwrap().to_string();
    c.set_teams_presence(ADELE_UPN, "Busy", "Busy").unwrap();
    let seq2 = w.get().await["sequenceNumber"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(seq2 > seq1);
}

#[tokio::test]
async fn preferred_presence_overrides_and_needs_a_session() {
    let env = env();
    let c = env.emu.control();
    let w = p(&env, &["Presence.ReadWrite"]);
    for (a, b) in [
        ("Away", "InACall"),
        ("Busy", "InACall"),
        ("Offline", "Offline"),
    ] {
        let (st, _) = w
            .post(
                "setUserPreferredPresence",
                json!({"availability": a, "activity": b}),
            )
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{a}/{b}");
    }
    w.post("setPresence", json!({"sessionId": PLUGIN_CLIENT_ID, "availability": "Busy", "activity": "InACall", "expirationDuration": "PT4H"})).await;
    let (st, _) = w
        .post(
            "setUserPreferredPresence",
            json!({"availability": "Away", "activity": "Away"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        w.pair().await,
        s("Away", "Away"),
        "preferred beats sessions"
    );
    let (st, _) = w
        .post(
            "setUserPreferredPresence",
            json!({"availability": "Offline", "activity": "OffWork", "expirationDuration": "PT8H"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(w.pair().await, s("Offline", "OffWork"));
    // Without any session the preferred presence has no effect.
    c.set_teams_signed_in(ADELE_UPN, false).unwrap();
    w.post("clearPresence", json!({"sessionId": PLUGIN_CLIENT_ID}))
        .await;
    assert_eq!(w.pair().await, s("Offline", "Offline"));
    let d = c.presence(ADELE_UPN).unwrap();
    assert_eq!(d["preferred"]["effective"], false);
    c.set_teams_signed_in(ADELE_UPN, true).unwrap();
    assert_eq!(w.pair().await, s("Offline", "OffWork"));
    // Expires after its duration.
    c.advance_clock(8 * 3600 + 1);
    assert_eq!(w.pair().await, s("Available", "Available"));
    // Default expiry: 1 day for Busy/DoNotDisturb, 7 days for others.
    w.post(
        "setUserPreferredPresence",
        json!({"availability": "Busy", "activity": "Busy"}),
    )
    .await;
    c.advance_clock(86400 - 60);
    assert_eq!(w.pair().await, s("Busy", "Busy"));
    c.advance_clock(120);
    assert_eq!(w.pair().await, s("Available", "Available"));
    w.post(
        "setUserPreferredPresence",
        json!({"availability": "BeRightBack", "activity": "BeRightBack"}),
    )
    .await;
    c.advance_clock(6 * 86400);
    assert_eq!(w.pair().await.0, "BeRightBack");
    let (st, _) = w.post("clearUserPreferredPresence", json!({})).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(w.pair().await, s("Available", "Available"));
    // Control read-out over HTTP.
    let resp = env
        .http
        .get(format!("{}/_emulator/presence/{ADELE_UPN}", env.base()))
        .send()
        .await
        .unwrap();
    let d: Value = resp.json().await.unwrap();
    assert_eq!(d["aggregate"]["availability"], "Available");
    assert_eq!(d["teams"]["signedIn"], true);
    // Writing someone else's presence is forbidden.
    let resp = env
        .http
        .post(format!(
            "{}/users/{MEGAN_ID}/presence/clearUserPreferredPresence",
            env.emu.graph_url()
        ))
        .bearer_auth(&w.at)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}
