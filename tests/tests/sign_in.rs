//! Microsoft 365 sign-in, end to end (issue 3): the real demo host loads the real plugin, which
//! signs in against the Microsoft 365 emulator running in this test process on 127.0.0.1.
//!
//! Every wait is a hang guard (bounded), never a timing assertion. Each test starts its own
//! emulator (a random port) and its own data folder, so the tests run in parallel.

use std::{
    fs,
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use contact_ms365_e2e::{
    PluginsDir, ScriptHost, ScriptHostBuilder, build_workspace_artifacts, percent_decode, story,
};
use ms365_emulator::{
    EmulatorConfig, EmulatorHandle, RequestLogEntry,
    tenant::{ADELE_UPN, PLUGIN_CLIENT_ID},
};
use serde_json::{Value, json};

/// Hang guard for one wait.
const GUARD: Duration = Duration::from_secs(60);
/// The browser that follows the redirects: authorize (302) → the plugin's loopback.
const CURL_BROWSER: &str = "curl -s -L -o /dev/null";
/// The plugin's data folder inside the host's `--data-dir` (`<data-dir>/<file stem>`).
const PLUGIN_DATA: &str = "libcontact_ms365";
/// The remembered sign-in, in the plugin's data folder (token_store `file`).
const TOKEN_FILE: &str = "token.json";

// ------------------------------------------------------------------------------------------
// Harness helpers

fn emulator(config: EmulatorConfig) -> EmulatorHandle {
    EmulatorHandle::spawn(config).expect("start the Microsoft 365 emulator on 127.0.0.1")
}

fn plugins() -> PluginsDir {
    story::plugins()
}

fn host(plugins: &PluginsDir) -> ScriptHostBuilder {
    ScriptHost::builder(&build_workspace_artifacts().demo_host)
        .plugins_dir(plugins.path())
        .env("RUST_LOG", "info")
        .env_remove("CONTACT_MS365_INJECT_PANIC")
}

fn have_curl() -> bool {
    story::have_curl()
}

/// Waits for the plugin, then gives the host's context (licensed).
fn ready(host: &mut ScriptHost) {
    host.wait_event("plugin_loaded", GUARD);
    host.send_ok(json!({
        "op": "context",
        "username": ADELE_UPN,
        "addons": ["contact_connect"],
        "country": "DE",
        "legacy_presence_integration": false,
    }));
}

/// Switches Microsoft integration on against `emu`, with `extra` settings.
fn switch_on(host: &mut ScriptHost, emu: &EmulatorHandle, extra: Value) -> Value {
    let mut op = json!({
        "op": "settings",
        "microsoft_integration": true,
        "authority": emu.authority(),
        "graph": emu.graph_url(),
        "client_id": emu.client_id(),
    });
    if let (Some(op), Value::Object(extra)) = (op.as_object_mut(), extra) {
        op.extend(extra);
    }
    host.send_ok(op)
}

/// The next `state_changed` whose `microsoft_integration` is `wanted` (earlier ones are
/// skipped); fails on `error`, and on `sign_in_required` while waiting for `active`.
fn wait_state(host: &mut ScriptHost, wanted: &str) -> Value {
    loop {
        let event = host.wait_event("state_changed", GUARD);
        let state = event["state"].clone();
        let now = state["microsoft_integration"].as_str().unwrap_or_default();
        if now == wanted {
            return state;
        }
        if now == "error" || (now == "sign_in_required" && wanted == "active") {
            host.fail(&format!("waiting for {wanted}, the state became {state}"));
        }
    }
}

/// Waits for `active` and checks who is signed in.
fn wait_active(host: &mut ScriptHost) -> Value {
    let state = wait_state(host, "active");
    assert_eq!(state["signed_in_as"], ADELE_UPN, "{state}");
    state
}

fn plugin_data(host: &ScriptHost) -> PathBuf {
    host.data_dir().join(PLUGIN_DATA)
}

/// The refresh token stored in `token.json`, if the file exists.
fn stored_refresh_token(plugin_data: &Path) -> Option<String> {
    let text = fs::read_to_string(plugin_data.join(TOKEN_FILE)).ok()?;
    let record: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("token.json is not JSON ({e}): {} bytes", text.len()));
    let rt = record["refresh_token"].as_str()?.to_owned();
    (!rt.is_empty()).then_some(rt)
}

/// Polls (bounded) until `f` gives `Some`.
fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + GUARD;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "hang guard: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn token_requests(emu: &EmulatorHandle) -> Vec<RequestLogEntry> {
    emu.control()
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/oauth2/v2.0/token"))
        .collect()
}

fn grant_type(r: &RequestLogEntry) -> &str {
    r.form
        .as_ref()
        .and_then(|f| f.get("grant_type"))
        .map_or("", String::as_str)
}

/// The `notification` events of `kind` seen so far.
fn notifications<'a>(host: &'a ScriptHost, kind: &str) -> Vec<&'a Value> {
    host.events_named("notification")
        .into_iter()
        .filter(|n| n["kind"] == kind)
        .collect()
}

// ------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client (loopback only), to act as the browser and to call the emulator.

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Splits `http://host:port/path?query` into the port and the path with its query. `localhost`
/// is reached as 127.0.0.1.
fn split_url(url: &str) -> (u16, String) {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("not an http URL: {url}"));
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], rest[i..].to_owned()),
        None => (rest, "/".to_owned()),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path
    };
    let (host, port) = authority
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("no port in {url}"));
    assert!(
        host == "127.0.0.1" || host == "localhost",
        "loopback only: {url}"
    );
    (port.parse().expect("a port"), path)
}

/// One request, `Connection: close`; a redirect is returned, not followed.
fn http(method: &str, url: &str, form: Option<&str>) -> Response {
    let (port, path) = split_url(url);
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    stream.set_read_timeout(Some(GUARD)).unwrap();
    stream.set_write_timeout(Some(GUARD)).unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nAccept: */*\r\n"
    );
    if let Some(body) = form {
        request.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        request.push_str("\r\n");
    }
    stream
        .write_all(request.as_bytes())
        .unwrap_or_else(|e| panic!("send to {url}: {e}"));
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("read from {url}: {e}"));
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head from {url}: {text:?}"));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line from {url}: {head:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The decoded value of `name` in the query of `url`.
fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (percent_decode(k) == name).then(|| percent_decode(v))
    })
}

fn token_endpoint(emu: &EmulatorHandle) -> String {
    format!("{}/organizations/oauth2/v2.0/token", emu.base_url())
}

/// Asserts an identity-platform error: 400, `error` and an AADSTS code.
fn assert_aad_error(response: &Response, error: &str, aadsts: &str) {
    assert_eq!(response.status, 400, "{response:?}");
    let body = response.json();
    assert_eq!(body["error"], error, "{body}");
    let description = body["error_description"].as_str().unwrap_or_default();
    assert!(
        description.starts_with(&format!("AADSTS{aadsts}:")),
        "expected AADSTS{aadsts}: {body}"
    );
}

// ------------------------------------------------------------------------------------------
// Tests

/// The full browser sign-in through the demo host: the plugin asks the host to open the
/// authorize URL (an `open_url` event with PKCE S256, `state` and a loopback redirect), the
/// "browser" (curl) follows the emulator's redirect to the plugin's loopback listener, the
/// plugin redeems the code and reads `/me`: state `active`, signed in as Adele. Without
/// `remember_login` nothing is written to disk.
#[test]
fn browser_sign_in_through_the_demo_host() {
    if !have_curl() {
        return;
    }
    let emu = emulator(EmulatorConfig::default());
    let plugins = plugins();
    let mut host = host(&plugins).browser(CURL_BROWSER).spawn();
    ready(&mut host);
    switch_on(&mut host, &emu, json!({}));

    let open = host.wait_event("open_url", GUARD);
    let url = open["url"].as_str().expect("open_url has a url").to_owned();
    assert!(
        url.starts_with(&format!(
            "{}/organizations/oauth2/v2.0/authorize?",
            emu.base_url()
        )),
        "{url}"
    );
    assert_eq!(
        query_param(&url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(
        query_param(&url, "client_id").as_deref(),
        Some(PLUGIN_CLIENT_ID)
    );
    assert!(
        query_param(&url, "state").is_some_and(|s| s.len() >= 16),
        "{url}"
    );
    let redirect = query_param(&url, "redirect_uri").expect("a redirect_uri");
    assert!(redirect.starts_with("http://localhost:"), "{redirect}");

    wait_active(&mut host);
    let state = host.send_ok(json!({"op": "state"}))["state"].clone();
    assert_eq!(state["microsoft_integration"], "active", "{state}");
    assert_eq!(state["signed_in_as"], ADELE_UPN, "{state}");
    assert_eq!(state["last_error"], Value::Null, "{state}");
    assert_eq!(host.events_named("open_url").len(), 1);
    assert!(
        token_requests(&emu)
            .iter()
            .any(|r| grant_type(r) == "authorization_code" && r.status == Some(200)),
        "the code was redeemed: {:?}",
        emu.control().requests()
    );
    assert!(
        !plugin_data(&host).join(TOKEN_FILE).exists(),
        "without remember_login nothing is stored"
    );
    assert!(host.quit().success());
}

/// "Do not show again": with `remember_login` (token_store `file`) the refresh token is kept
/// in `token.json`, readable by the user only (0600), and a restarted demo host with the same
/// data folder signs in silently (a `refresh_token` grant) with no `open_url` at all.
#[test]
fn remembered_sign_in_survives_a_restart_without_a_browser() {
    if !have_curl() {
        return;
    }
    let emu = emulator(EmulatorConfig::default());
    let plugins = plugins();
    let data = contact_ms365_e2e::temp_dir("e2e-remember-");

    let mut first = host(&plugins)
        .data_dir(data.path())
        .browser(CURL_BROWSER)
        .spawn();
    ready(&mut first);
    switch_on(
        &mut first,
        &emu,
        json!({"remember_login": true, "token_store": "file"}),
    );
    wait_active(&mut first);
    assert_eq!(first.events_named("open_url").len(), 1);
    let token_file = plugin_data(&first).join(TOKEN_FILE);
    let stored = poll("token.json is written", || {
        stored_refresh_token(&plugin_data(&first))
    });
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&token_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "token.json mode is {:o}", mode & 0o777);
    }
    assert!(first.quit().success());
    assert!(
        token_file.exists(),
        "the sign-in stays remembered after quit"
    );

    emu.control().clear_requests();
    // `false` as the browser: any attempt to open one would show as `open_url` (and fail).
    let mut second = host(&plugins)
        .data_dir(data.path())
        .browser("false")
        .spawn();
    // The settings were kept in the data folder: the context alone starts the integration.
    ready(&mut second);
    wait_active(&mut second);
    assert!(
        second.events_named("open_url").is_empty(),
        "a remembered sign-in opens no browser: {:?}",
        second.events()
    );
    assert!(
        notifications(&second, "device_code").is_empty(),
        "{:?}",
        second.events()
    );
    let grants: Vec<String> = token_requests(&emu)
        .iter()
        .map(|r| grant_type(r).to_owned())
        .collect();
    assert!(
        grants.iter().any(|g| g == "refresh_token"),
        "signed in with the refresh token: {grants:?}"
    );
    assert!(
        grants.iter().all(|g| g == "refresh_token"),
        "no interactive grant: {grants:?}"
    );
    let rotated = poll("the rotated refresh token is stored", || {
        stored_refresh_token(&plugin_data(&second)).filter(|rt| *rt != stored)
    });
    assert_ne!(rotated, stored);
    assert!(second.quit().success());
}

/// Refresh rotation: Graph refuses an expired access token during a `sync`, the plugin
/// redeems its refresh token (a `refresh_token` grant), stores the rotated refresh token in
/// `token.json`, and the emulator refuses the old one (`invalid_grant`).
#[test]
fn refresh_rotation_stores_the_new_token_and_the_old_one_is_refused() {
    if !have_curl() {
        return;
    }
    let emu = emulator(EmulatorConfig::default());
    let plugins = plugins();
    let mut host = host(&plugins).browser(CURL_BROWSER).spawn();
    ready(&mut host);
    switch_on(
        &mut host,
        &emu,
        json!({"remember_login": true, "token_store": "file"}),
    );
    wait_active(&mut host);
    let dir = plugin_data(&host);
    let old = poll("token.json is written", || stored_refresh_token(&dir));
    // Let the first (automatic) sync finish, so the expiry below hits the next one.
    host.send_ok(json!({"op": "sync"}));
    assert!(
        !token_requests(&emu)
            .iter()
            .any(|r| grant_type(r) == "refresh_token"),
        "no refresh yet"
    );

    let expired = emu
        .control()
        .expire_access_tokens(ADELE_UPN)
        .expect("expire");
    assert!(expired >= 1, "the plugin's access token exists");
    let reply = host.send_ok(json!({"op": "sync"}));
    assert!(reply["contacts"].as_u64().is_some_and(|n| n > 0), "{reply}");

    let refreshes: Vec<RequestLogEntry> = token_requests(&emu)
        .into_iter()
        .filter(|r| grant_type(r) == "refresh_token")
        .collect();
    assert!(
        refreshes.iter().any(|r| r.status == Some(200)),
        "a refresh_token grant succeeded: {refreshes:?}"
    );
    let new = poll("the rotated refresh token is stored", || {
        stored_refresh_token(&dir).filter(|rt| *rt != old)
    });
    assert_ne!(new, old);

    // The old refresh token was revoked by the rotation.
    let refused = http(
        "POST",
        &token_endpoint(&emu),
        Some(&form(&[
            ("grant_type", "refresh_token"),
            ("client_id", PLUGIN_CLIENT_ID),
            ("refresh_token", &old),
            ("scope", "User.Read offline_access"),
        ])),
    );
    assert_aad_error(&refused, "invalid_grant", "70000");

    let state = host.send_ok(json!({"op": "state"}))["state"].clone();
    assert_eq!(state["microsoft_integration"], "active", "{state}");
    assert!(host.quit().success());
}

/// A remembered sign-in whose refresh token Microsoft revoked: after a restart the plugin
/// asks calmly, once: exactly one `sign_in_required` notification, state `sign_in_required`
/// with the reason in `last_error`, and no browser window on its own.
#[test]
fn revoked_refresh_token_leads_to_one_sign_in_required() {
    if !have_curl() {
        return;
    }
    let emu = emulator(EmulatorConfig::default());
    let plugins = plugins();
    let data = contact_ms365_e2e::temp_dir("e2e-revoked-");
    let mut first = host(&plugins)
        .data_dir(data.path())
        .browser(CURL_BROWSER)
        .spawn();
    ready(&mut first);
    switch_on(
        &mut first,
        &emu,
        json!({"remember_login": true, "token_store": "file"}),
    );
    wait_active(&mut first);
    poll("token.json is written", || {
        stored_refresh_token(&plugin_data(&first))
    });
    assert!(first.quit().success());

    let revoked = emu
        .control()
        .revoke_refresh_tokens(ADELE_UPN)
        .expect("revoke");
    assert!(revoked >= 1, "the remembered refresh token was live");

    // curl would complete a browser sign-in: if the plugin opened one, it would show.
    let mut second = host(&plugins)
        .data_dir(data.path())
        .browser(CURL_BROWSER)
        .spawn();
    ready(&mut second);
    let state = wait_state(&mut second, "sign_in_required");
    assert_eq!(state["signed_in_as"], Value::Null, "{state}");
    // Give a second notification (or a browser) every chance to show up before counting.
    second.send_ok(json!({"op": "wait", "ms": 1500}));
    let state = second.send_ok(json!({"op": "state"}))["state"].clone();
    assert_eq!(
        state["microsoft_integration"], "sign_in_required",
        "{state}"
    );
    let reason = state["last_error"].as_str().unwrap_or_default();
    assert!(reason.contains("AADSTS50173"), "the reason: {state}");
    assert_eq!(
        notifications(&second, "sign_in_required").len(),
        1,
        "exactly one notification: {:?}",
        second.events()
    );
    assert!(
        second.events_named("open_url").is_empty(),
        "no browser on its own: {:?}",
        second.events()
    );
    assert!(
        token_requests(&emu)
            .iter()
            .any(|r| grant_type(r) == "refresh_token" && r.status == Some(400)),
        "the revoked token was tried and refused"
    );
    assert!(second.quit().success());
}

/// The device code flow (`sign_in_method: device_code`): a `device_code` notification with
/// Microsoft's message, the user code and the verification URI; the user approves; the
/// plugin, polling at the emulator's interval, becomes `active`. No browser is asked for.
#[test]
fn device_code_sign_in() {
    let emu = emulator(EmulatorConfig {
        device_poll_interval_secs: 1,
        ..EmulatorConfig::default()
    });
    let plugins = plugins();
    let mut host = host(&plugins).browser("false").spawn();
    ready(&mut host);
    switch_on(&mut host, &emu, json!({"sign_in_method": "device_code"}));

    let note = wait_device_code(&mut host);
    let user_code = note["user_code"].as_str().expect("user_code").to_owned();
    assert!(!user_code.is_empty(), "{note}");
    let uri = note["verification_uri"].as_str().unwrap_or_default();
    assert!(uri.starts_with(&emu.base_url()), "{note}");
    let message = note["message"].as_str().unwrap_or_default();
    assert!(message.contains(&user_code), "{note}");

    emu.control()
        .approve_device_code(&user_code)
        .expect("approve the device code");
    wait_active(&mut host);
    assert!(
        host.events_named("open_url").is_empty(),
        "{:?}",
        host.events()
    );
    let grants: Vec<(String, Option<u16>)> = token_requests(&emu)
        .iter()
        .map(|r| (grant_type(r).to_owned(), r.status))
        .collect();
    assert!(
        grants
            .iter()
            .any(|(g, s)| g.contains("device_code") && *s == Some(200)),
        "{grants:?}"
    );
    assert!(host.quit().success());
}

/// The `device_code` notification (skipping other notifications).
fn wait_device_code(host: &mut ScriptHost) -> Value {
    loop {
        let n = host.wait_event("notification", GUARD);
        if n["kind"] == "device_code" {
            return n;
        }
    }
}

/// When the host cannot open a browser (`--browser false` exits non-zero), the plugin falls
/// back to the device code: the `open_url` attempt is followed by a `device_code`
/// notification, and approving that code completes the sign-in.
#[test]
fn browser_that_cannot_open_falls_back_to_device_code() {
    let emu = emulator(EmulatorConfig {
        device_poll_interval_secs: 1,
        ..EmulatorConfig::default()
    });
    let plugins = plugins();
    let mut host = host(&plugins).browser("false").spawn();
    ready(&mut host);
    switch_on(&mut host, &emu, json!({}));

    host.wait_event("open_url", GUARD);
    let note = wait_device_code(&mut host);
    let user_code = note["user_code"].as_str().unwrap_or_default();
    assert!(!user_code.is_empty(), "{note}");
    emu.control()
        .approve_device_code(user_code)
        .expect("approve the device code");
    wait_active(&mut host);
    assert_eq!(notifications(&host, "device_code").len(), 1);
    assert!(host.quit().success());
}

/// The device code approved by the emulator on its own after a delay
/// (`device_auto_approve_after`, as `demo-host demo` and people trying the plugin by hand
/// rely on) signs in like an approval through the control API.
#[test]
fn device_code_approved_automatically_signs_in() {
    let emu = emulator(EmulatorConfig {
        device_poll_interval_secs: 1,
        device_auto_approve_after: Some(Duration::from_secs(1)),
        ..EmulatorConfig::default()
    });
    let plugins = plugins();
    let mut host = host(&plugins).spawn();
    ready(&mut host);
    switch_on(&mut host, &emu, json!({"sign_in_method": "device_code"}));
    wait_device_code(&mut host);
    wait_active(&mut host);
    assert!(host.quit().success());
}

/// Sign-in through the host's own Microsoft 365 login (`--sso-command` prints a token the
/// emulator minted for the host's app): `active` as Adele with no browser, no token request
/// of our own and nothing stored, even with `remember_login` on.
#[test]
fn host_login_signs_in_without_browser_and_stores_nothing() {
    let emu = emulator(EmulatorConfig::default());
    let plugins = plugins();
    let scratch = contact_ms365_e2e::temp_dir("e2e-sso-");
    let (sso, _token) = story::host_login(&emu, scratch.path());
    let mut host = host(&plugins).browser("false").sso_command(&sso).spawn();
    ready(&mut host);
    switch_on(
        &mut host,
        &emu,
        json!({"remember_login": true, "token_store": "file"}),
    );
    wait_active(&mut host);
    let reply = host.send_ok(json!({"op": "sync"}));
    assert!(reply["contacts"].as_u64().is_some_and(|n| n > 0), "{reply}");

    assert!(
        host.events_named("open_url").is_empty(),
        "{:?}",
        host.events()
    );
    assert!(
        host.events_named("notification").is_empty(),
        "{:?}",
        host.events()
    );
    assert!(
        token_requests(&emu).is_empty(),
        "no sign-in of our own: {:?}",
        emu.control().requests()
    );
    let dir = plugin_data(&host);
    assert!(!dir.join(TOKEN_FILE).exists(), "nothing stored");
    assert!(host.quit().success());
    assert!(!dir.join(TOKEN_FILE).exists(), "nothing stored");
}

/// The loopback listener refuses a redirect with a wrong `state` (400) and ignores a stray
/// request (404), and keeps waiting: the genuine redirect, delivered afterwards by a browser
/// run by the test itself, completes the sign-in.
#[test]
fn wrong_state_on_the_loopback_is_refused() {
    let emu = emulator(EmulatorConfig::default());
    let plugins = plugins();
    // `true`: the host "opens" the browser, which does nothing; the test is the browser.
    let mut host = host(&plugins).browser("true").spawn();
    ready(&mut host);
    switch_on(&mut host, &emu, json!({}));
    let url = host.wait_event("open_url", GUARD)["url"]
        .as_str()
        .expect("url")
        .to_owned();
    let redirect = query_param(&url, "redirect_uri").expect("redirect_uri");
    let (port, _) = split_url(&redirect);
    let loopback = format!("http://127.0.0.1:{port}");

    let wrong = http("GET", &format!("{loopback}/?code=x&state=wrong"), None);
    assert_eq!(wrong.status, 400, "{wrong:?}");
    let stray = http("GET", &format!("{loopback}/favicon.ico"), None);
    assert_eq!(stray.status, 404, "{stray:?}");
    assert!(
        token_requests(&emu).is_empty(),
        "the wrong state reached no token request"
    );
    let state = host.send_ok(json!({"op": "state"}))["state"].clone();
    assert_eq!(state["microsoft_integration"], "signing_in", "{state}");

    // Now the real browser: authorize, then follow the redirect to the loopback.
    let authorize = http("GET", &url, None);
    assert_eq!(authorize.status, 302, "{authorize:?}");
    let location = authorize.header("location").expect("Location").to_owned();
    assert!(location.starts_with(&redirect), "{location}");
    assert_eq!(query_param(&location, "state"), query_param(&url, "state"));
    let (_, path) = split_url(&location);
    let done = http("GET", &format!("{loopback}{path}"), None);
    assert_eq!(done.status, 200, "{done:?}");
    assert!(done.body.contains("close this window"), "{}", done.body);
    wait_active(&mut host);
    assert!(host.quit().success());
}

/// A code redeemed with a `redirect_uri` on another port than the one it was issued for is
/// refused by the emulator (AADSTS500112), so a redirect to a wrong port cannot complete a
/// sign-in; with the right port the same request gets past that check (and fails only on the
/// made-up PKCE verifier).
#[test]
fn emulator_refuses_a_code_redeemed_for_another_port() {
    let emu = emulator(EmulatorConfig::default());
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let authorize = format!(
        "{}/organizations/oauth2/v2.0/authorize?{}",
        emu.base_url(),
        form(&[
            ("client_id", PLUGIN_CLIENT_ID),
            ("response_type", "code"),
            ("redirect_uri", "http://localhost:50001/"),
            ("scope", "User.Read offline_access"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
            ("state", "s1"),
        ])
    );
    let response = http("GET", &authorize, None);
    assert_eq!(response.status, 302, "{response:?}");
    let location = response.header("location").expect("Location").to_owned();
    assert!(
        location.starts_with("http://localhost:50001/"),
        "{location}"
    );
    let code = query_param(&location, "code").expect("a code");

    let redeem = |redirect: &str| {
        http(
            "POST",
            &token_endpoint(&emu),
            Some(&form(&[
                ("grant_type", "authorization_code"),
                ("client_id", PLUGIN_CLIENT_ID),
                ("code", &code),
                ("redirect_uri", redirect),
                ("code_verifier", &"v".repeat(43)),
                ("scope", "User.Read offline_access"),
            ])),
        )
    };
    assert_aad_error(
        &redeem("http://localhost:50002/"),
        "invalid_grant",
        "500112",
    );
    assert_aad_error(
        &redeem("http://localhost:50001/"),
        "invalid_grant",
        "501481",
    );
}

/// No token issued by the emulator appears anywhere in the host's standard output or
/// standard error at `RUST_LOG=trace`: the refresh tokens (before and after a rotation, read
/// from `token.json`) and the host's SSO token (minted by the emulator).
#[test]
fn no_token_appears_in_the_hosts_output_at_trace_level() {
    if !have_curl() {
        return;
    }
    let emu = emulator(EmulatorConfig::default());
    let plugins = plugins();
    let mut secrets: Vec<String> = Vec::new();
    let mut outputs: Vec<String> = Vec::new();

    // Our own sign-in: browser, remembered, then a rotation.
    let mut own = host(&plugins)
        .env("RUST_LOG", "trace")
        .browser(CURL_BROWSER)
        .spawn();
    ready(&mut own);
    outputs.push(
        switch_on(
            &mut own,
            &emu,
            json!({"remember_login": true, "token_store": "file"}),
        )
        .to_string(),
    );
    wait_active(&mut own);
    let dir = plugin_data(&own);
    let first = poll("token.json is written", || stored_refresh_token(&dir));
    outputs.push(own.send_ok(json!({"op": "sync"})).to_string());
    emu.control().expire_access_tokens(ADELE_UPN).unwrap();
    outputs.push(own.send_ok(json!({"op": "sync"})).to_string());
    let second = poll("the rotated refresh token is stored", || {
        stored_refresh_token(&dir).filter(|rt| *rt != first)
    });
    outputs.push(own.send_ok(json!({"op": "state"})).to_string());
    assert!(own.quit().success());
    secrets.extend([first, second]);
    outputs.extend(own.events().iter().map(Value::to_string));
    let own_stderr = own.stderr();
    // The plugin logs through the host: its debug lines show that verbose logging is on
    // (else this test would prove little).
    assert!(
        own_stderr.contains("DEBUG") && own_stderr.contains("access token refreshed"),
        "verbose logging is on:\n{own_stderr}"
    );
    outputs.push(own_stderr);

    // The host's login.
    let scratch = contact_ms365_e2e::temp_dir("e2e-trace-sso-");
    let (sso, minted) = story::host_login(&emu, scratch.path());
    let mut sso_host = host(&plugins)
        .env("RUST_LOG", "trace")
        .browser("false")
        .sso_command(&sso)
        .spawn();
    ready(&mut sso_host);
    outputs.push(switch_on(&mut sso_host, &emu, json!({})).to_string());
    wait_active(&mut sso_host);
    outputs.push(sso_host.send_ok(json!({"op": "sync"})).to_string());
    assert!(sso_host.quit().success());
    secrets.push(minted);
    outputs.extend(sso_host.events().iter().map(Value::to_string));
    outputs.push(sso_host.stderr());

    for secret in &secrets {
        assert!(secret.len() >= 20, "a real token: {} chars", secret.len());
        for (i, out) in outputs.iter().enumerate() {
            if let Some(at) = out.find(secret.as_str()) {
                let from = out[..at].rfind('\n').map_or(0, |i| i + 1);
                panic!(
                    "a token appears in output #{i}, on the line starting: {:?}",
                    &out[from..at.min(from + 200)]
                );
            }
        }
    }
}
