//! Robustness, end to end (issue 6): shutdown with requests hanging, secrets at trace level,
//! plain-http endpoints off loopback, and bad input at the ABI with a synced index (plus a token
//! Graph refuses early, found on the way), with the real demo host and the real plugin against
//! the Microsoft 365 emulator on 127.0.0.1.
//!
//! Timing: the only elapsed-time assertions are the product's hard bound (switching off and
//! quitting finish within 2 s); every other wait is a hang guard.

use std::{
    fs,
    io::{Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use contact_ms365_e2e::{
    ScriptHost,
    story::{self, GUARD, Story, threads_named},
};
use ms365_emulator::{
    EmulatorHandle, Fault, FaultRule,
    tenant::{ADELE_ID, ADELE_UPN},
};
use serde_json::{Value, json};

/// The product's bound on switching off and on quitting.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(2);
/// The name of every thread the plugin starts (`contact_ms365::runtime::THREAD_NAME`).
const PLUGIN_THREAD: &str = "contact-ms365";
/// The file token store's file in the plugin's data folder.
const TOKEN_FILE: &str = "token.json";
/// The contacts snapshot in the plugin's data folder.
const SNAPSHOT_FILE: &str = contact_ms365::snapshot::SNAPSHOT_FILE;

// ---------------------------------------------------------------------------------------------
// A relay in front of the emulator's Graph that can turn into a black hole.

/// A TCP relay to the emulator. Until [`hole`](Relay::hole) it passes every byte both ways;
/// from then on it keeps every connection (old and new) open, reads what the plugin sends and
/// never answers: a server that never answers, with requests truly in flight.
struct Relay {
    addr: SocketAddr,
    hole: Arc<AtomicBool>,
    held: Arc<Mutex<Vec<String>>>,
}

impl Relay {
    fn to(emu: &EmulatorHandle) -> Relay {
        let upstream: SocketAddr = emu
            .base_url()
            .trim_start_matches("http://")
            .parse()
            .expect("the emulator listens on 127.0.0.1:PORT");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay");
        let addr = listener.local_addr().expect("relay address");
        let hole = Arc::new(AtomicBool::new(false));
        let held = Arc::new(Mutex::new(Vec::new()));
        let (h, r) = (hole.clone(), held.clone());
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let (hole, held) = (h.clone(), r.clone());
                thread::spawn(move || relay_connection(client, upstream, hole, held));
            }
        });
        Relay { addr, hole, held }
    }

    /// The Graph base URL through the relay.
    fn graph_url(&self) -> String {
        format!("http://{}/v1.0", self.addr)
    }

    /// From now on nothing is answered.
    fn hole(&self) {
        self.hole.store(true, Ordering::SeqCst);
    }

    /// The request lines received since the hole opened (never answered).
    fn held(&self) -> Vec<String> {
        self.held.lock().unwrap().clone()
    }

    /// Waits (bounded) until requests matching each of `wanted` are held.
    fn wait_held(&self, wanted: &[&str]) {
        let deadline = Instant::now() + GUARD;
        loop {
            let held = self.held();
            if wanted
                .iter()
                .all(|w| held.iter().any(|line| line.contains(w)))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "hang guard: no request for each of {wanted:?} reached the black hole: {held:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

fn relay_connection(
    client: TcpStream,
    upstream: SocketAddr,
    hole: Arc<AtomicBool>,
    held: Arc<Mutex<Vec<String>>>,
) {
    let server = if hole.load(Ordering::SeqCst) {
        None
    } else {
        TcpStream::connect(upstream).ok()
    };
    if let Some(server) = &server
        && let (Ok(from), Ok(to)) = (server.try_clone(), client.try_clone())
    {
        let hole = hole.clone();
        thread::spawn(move || pump(from, Some(to), &hole, None));
    }
    pump(client, server, &hole, Some(&held));
}

/// Copies `from` into `to` until `from` closes; once the hole is open, swallows everything
/// (recording request lines in `held`). The sockets stay open as long as `from` does.
fn pump(
    mut from: TcpStream,
    mut to: Option<TcpStream>,
    hole: &AtomicBool,
    held: Option<&Mutex<Vec<String>>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if hole.load(Ordering::SeqCst) {
            if let Some(held) = held {
                let text = String::from_utf8_lossy(&buf[..n]);
                let line = text.lines().next().unwrap_or_default();
                if ["GET ", "POST ", "PATCH ", "PUT ", "DELETE "]
                    .iter()
                    .any(|m| line.starts_with(m))
                {
                    held.lock().unwrap().push(line.to_owned());
                }
            }
            continue;
        }
        if let Some(out) = to.as_mut()
            && out.write_all(&buf[..n]).is_err()
        {
            break;
        }
    }
    if let Some(out) = to {
        let _ = out.shutdown(Shutdown::Write);
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// Resident memory of `pid` in KiB (`VmRSS` in `/proc/<pid>/status`).
#[cfg(target_os = "linux")]
fn rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc status")
}

fn assert_error(reply: &Value, code: &str) {
    assert_eq!(reply["ok"], false, "{reply}");
    assert_eq!(reply["error"]["code"], code, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.trim().is_empty()),
        "a message for a person: {reply}"
    );
}

/// Adele signed in with presence sync (polling every 200 ms) and Graph behind `relay`; one
/// sync done, presence active; then the relay becomes a black hole, Contact goes `in_call` (a
/// presence write that now hangs, and a session the clean exit must clear) and, with
/// `periodic_sync`, the test waits until a periodic contact sync and a presence request hang.
fn hanging_story(relay: &Relay, emu: EmulatorHandle, periodic_sync: bool) -> Story {
    let mut extra = json!({
        "graph": relay.graph_url(),
        "presence_integration": true,
        "presence_poll_ms": 200,
    });
    if periodic_sync {
        extra["sync_interval_s"] = json!(10);
    }
    let mut s = Story::signed_in_with(emu, extra, |b| b);
    let synced = s.host.send_ok(json!({"op": "sync"}));
    assert!(
        synced["contacts"].as_u64().is_some_and(|n| n > 0),
        "{synced}"
    );
    story::wait_state(&mut s.host, "presence sync active", |st| {
        st["presence_integration"] == "active" && st["teams_presence"].is_object()
    });
    relay.hole();
    s.host.send_ok(json!({"op": "status", "status": "in_call"}));
    let mut wanted = vec!["/presence"];
    if periodic_sync {
        wanted.push("/me/contact");
    }
    relay.wait_held(&wanted);
    s
}

// ---------------------------------------------------------------------------------------------
// Item 5: shutdown within 2 s with requests in flight

/// With a contact sync, a presence poll and a presence write hanging on a Graph that never
/// answers, switching Microsoft integration off answers `off` within 2 s and every plugin
/// thread is gone within 2 s; the host goes on and quits cleanly.
#[cfg(target_os = "linux")]
#[test]
fn switching_off_with_requests_hanging_takes_under_2_s_and_leaves_no_thread() {
    if !story::have_curl() {
        return;
    }
    let emu = story::emulator();
    let relay = Relay::to(&emu);
    let mut s = hanging_story(&relay, emu, true);
    let pid = s.host.pid();
    assert!(
        threads_named(pid, PLUGIN_THREAD) > 0,
        "the plugin's threads run"
    );

    let started = Instant::now();
    let reply = s
        .host
        .send_ok(json!({"op": "settings", "microsoft_integration": false}));
    let answered = started.elapsed();
    assert_eq!(reply["state"]["microsoft_integration"], "off", "{reply}");
    let gone = loop {
        if threads_named(pid, PLUGIN_THREAD) == 0 {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < GUARD,
            "hang guard: plugin threads remain after switching off"
        );
        thread::sleep(Duration::from_millis(5));
    };
    eprintln!(
        "switched off in {answered:?}, threads gone after {gone:?}; held requests: {:?}",
        relay.held()
    );
    assert!(
        answered < SHUTDOWN_BOUND,
        "switching off took {answered:?} (the bound is {SHUTDOWN_BOUND:?})"
    );
    assert!(
        gone < SHUTDOWN_BOUND,
        "plugin threads were gone only after {gone:?} (the bound is {SHUTDOWN_BOUND:?})"
    );
    // Nothing comes back, and the host still answers.
    s.host.send_ok(json!({"op": "wait", "ms": 300}));
    assert_eq!(threads_named(pid, PLUGIN_THREAD), 0, "no thread came back");
    assert_eq!(story::state(&mut s.host)["microsoft_integration"], "off");
    assert!(s.host.quit().success());
}

/// `quit` while a `sync` op waits on a contact sync hanging on a Graph that never answers
/// (presence polls and a presence write hang too): the sync is answered `cancelled`, `quit`
/// ok, and the host process exits 0 within 2 s.
#[test]
fn quitting_with_requests_hanging_exits_0_within_2_s() {
    if !story::have_curl() {
        return;
    }
    let emu = story::emulator();
    let relay = Relay::to(&emu);
    let mut s = hanging_story(&relay, emu, false);
    s.host.write_line(&json!({"op": "sync"}).to_string());
    relay.wait_held(&["/me/contact", "/presence"]);

    let started = Instant::now();
    s.host.write_line(&json!({"op": "quit"}).to_string());
    let sync = s.host.read_reply();
    assert_eq!(sync["reply"], "sync", "{sync}");
    assert_error(&sync, "cancelled");
    let quit = s.host.read_reply();
    assert_eq!(
        (quit["reply"].clone(), quit["ok"].clone()),
        (json!("quit"), json!(true))
    );
    s.host.close_stdin();
    let status = s.host.wait_exit(GUARD);
    let exited = started.elapsed();
    eprintln!("exited after {exited:?}; held requests: {:?}", relay.held());
    assert!(
        status.success(),
        "{}",
        contact_ms365_e2e::describe_exit(status)
    );
    assert!(
        exited < SHUTDOWN_BOUND,
        "quitting took {exited:?} (the bound is {SHUTDOWN_BOUND:?})"
    );
}

// ---------------------------------------------------------------------------------------------
// Item 6: secrets

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// The needles a token leak is searched by: the token, and its first and last 24 characters
/// (a shortened print of a token is still a leak).
fn needles(token: &str) -> Vec<String> {
    let chars: Vec<char> = token.chars().collect();
    let n = chars.len();
    vec![
        token.to_owned(),
        chars[..24.min(n)].iter().collect(),
        chars[n.saturating_sub(24)..].iter().collect(),
    ]
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// A host whose every reply is kept (with the events, that is all of standard output).
struct Recorded<'a> {
    host: &'a mut ScriptHost,
    replies: Vec<Value>,
}

impl Recorded<'_> {
    fn send(&mut self, op: Value) -> Value {
        let reply = self.host.send(op);
        self.replies.push(reply.clone());
        reply
    }

    fn send_ok(&mut self, op: Value) -> Value {
        let reply = self.host.send_ok(op);
        self.replies.push(reply.clone());
        reply
    }

    fn wait_state(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + GUARD;
        loop {
            let s = self.send_ok(json!({"op": "state"}))["state"].clone();
            if pred(&s) {
                return s;
            }
            if Instant::now() > deadline {
                self.host
                    .fail(&format!("hang guard: {what}; the state is {s}"));
            }
            self.send_ok(json!({"op": "wait", "ms": 50}));
        }
    }
}

/// The whole story at `RUST_LOG=trace`, with a token refresh, a contact sync, presence sync
/// with a write to Teams, a refused refresh (errors), and a sign-out: no access or refresh
/// token the emulator issued
/// appears (whole, or its first or last 24 characters) in standard output (replies, events,
/// states, errors), standard error, or any file of the data folder but the token store; the
/// token store and the snapshot are readable by the user only.
#[cfg(unix)]
#[test]
fn no_token_leaks_anywhere_at_trace_level_and_the_files_are_private() {
    if !story::have_curl() {
        return;
    }
    let mut s = Story::signed_in_with(
        story::emulator(),
        json!({"presence_integration": true, "presence_poll_ms": 200}),
        |b| b.env("RUST_LOG", "trace"),
    );
    let plugin_data = s.plugin_data();
    let data_root = s.data.path().to_owned();
    let mut h = Recorded {
        host: &mut s.host,
        replies: Vec::new(),
    };
    let synced = h.send_ok(json!({"op": "sync"}));
    assert!(
        synced["contacts"].as_u64().is_some_and(|n| n > 0),
        "{synced}"
    );
    // A refresh: Graph refuses the access token, the plugin refreshes (a new access token and a
    // rotated refresh token) and the sync goes on.
    s.emu.control().expire_access_tokens(ADELE_UPN).unwrap();
    h.send_ok(json!({"op": "sync"}));
    h.wait_state("presence sync active", |st| {
        st["presence_integration"] == "active" && st["teams_presence"].is_object()
    });
    let writes_before = s.emu.control().requests().len();
    h.send_ok(json!({"op": "status", "status": "in_call"}));
    let deadline = Instant::now() + GUARD;
    while !s.emu.control().requests()[writes_before..]
        .iter()
        .any(|r| r.method == "POST" && r.path.ends_with("/presence/setPresence"))
    {
        assert!(Instant::now() < deadline, "hang guard: no presence write");
        h.send_ok(json!({"op": "wait", "ms": 50}));
    }

    // The files while signed in: private, and no token outside the token store.
    let token_file = plugin_data.join(TOKEN_FILE);
    let snapshot = plugin_data.join(SNAPSHOT_FILE);
    assert!(
        token_file.is_file() && snapshot.is_file(),
        "both files exist"
    );
    assert_eq!(mode_of(&token_file), 0o600, "token.json");
    assert_eq!(mode_of(&snapshot), 0o600, "the snapshot");
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let keep_files = |files: &mut Vec<(String, Vec<u8>)>| {
        for f in files_under(&data_root) {
            if f == token_file {
                continue;
            }
            if let Ok(bytes) = fs::read(&f) {
                files.push((f.display().to_string(), bytes));
            }
        }
    };
    keep_files(&mut files);
    assert!(
        files.iter().any(|(name, _)| name.ends_with(SNAPSHOT_FILE)),
        "the snapshot is among the files searched"
    );

    // Errors: Graph refuses the access token and the refresh is refused (sessions revoked):
    // the next presence poll fails, then a `sign_in_required` state, notification and log
    // lines follow.
    s.emu.control().revoke_refresh_tokens(ADELE_UPN).unwrap();
    s.emu.control().expire_access_tokens(ADELE_UPN).unwrap();
    h.wait_state("sign-in required", |st| {
        st["microsoft_integration"] == "sign_in_required"
    });
    let failed = h.send(json!({"op": "sync"}));
    assert_eq!(failed["ok"], false, "{failed}");
    keep_files(&mut files);

    let out = h.send_ok(json!({"op": "sign_out"}));
    assert_eq!(
        out["state"]["microsoft_integration"], "sign_in_required",
        "{out}"
    );
    h.send_ok(json!({"op": "state"}));
    assert!(
        !token_file.exists(),
        "signing out deletes the stored sign-in"
    );
    keep_files(&mut files);
    let replies = std::mem::take(&mut h.replies);
    assert!(s.host.quit().success());
    keep_files(&mut files);

    let tokens = s.emu.control().issued_tokens();
    let access = tokens.iter().filter(|t| t.starts_with("EwB")).count();
    let refresh = tokens.iter().filter(|t| t.starts_with("1.AR")).count();
    assert!(
        access >= 2 && refresh >= 2,
        "a sign-in and a refresh: {access} access and {refresh} refresh tokens issued"
    );
    let stderr = s.host.stderr();
    assert!(
        stderr.contains("TRACE") || stderr.contains("DEBUG"),
        "verbose logging is on"
    );
    let mut haystacks: Vec<(String, String)> = vec![("standard error".into(), stderr)];
    haystacks.extend(
        s.host
            .events()
            .iter()
            .map(|e| ("an event".to_owned(), e.to_string())),
    );
    haystacks.extend(
        replies
            .iter()
            .map(|r| ("a reply".to_owned(), r.to_string())),
    );
    haystacks.extend(
        files
            .iter()
            .map(|(name, bytes)| (name.clone(), String::from_utf8_lossy(bytes).into_owned())),
    );
    for token in &tokens {
        for needle in needles(token) {
            for (place, text) in &haystacks {
                if let Some(at) = text.find(&needle) {
                    let from = text[..at].rfind('\n').map_or(0, |i| i + 1);
                    panic!(
                        "a token (or {} of its characters) appears in {place}, on the line \
                         starting: {:?}",
                        needle.len(),
                        &text[from..at.min(from + 200)]
                    );
                }
            }
        }
    }
    eprintln!(
        "{} tokens searched in {} places",
        tokens.len(),
        haystacks.len()
    );
}

/// A plain-http `authority` or `graph` that is not loopback is refused with a clear error
/// (naming https and the loopback exception) and nothing is applied; loopback forms (and
/// https anywhere) are accepted.
#[test]
fn plain_http_endpoints_off_loopback_are_refused_clearly() {
    let plugins = story::plugins();
    let data = contact_ms365_e2e::temp_dir("e2e-plain-http-");
    let mut host = story::host_builder(&plugins).data_dir(data.path()).spawn();
    host.wait_event("plugin_loaded", GUARD);
    host.send_ok(story::context_op());
    let before = story::state(&mut host);
    for (key, url) in [
        (
            "authority",
            "http://login.microsoftonline.com/organizations/v2.0",
        ),
        ("graph", "http://graph.microsoft.com/v1.0"),
        ("graph", "http://127.0.0.1.nip.io:8080/v1.0"),
        (
            "authority",
            "http://localhost.example.com/organizations/v2.0",
        ),
        ("graph", "http://10.0.0.1/v1.0"),
    ] {
        let mut op = json!({"op": "settings", "microsoft_integration": true});
        op[key] = json!(url);
        let reply = host.send(op);
        assert_error(&reply, "bad_request");
        let message = reply["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(key) && message.contains("https"),
            "the message names the setting and https: {message}"
        );
        assert_eq!(
            story::state(&mut host),
            before,
            "nothing applied after {url}"
        );
    }
    let saved = fs::read_to_string(story::plugin_data_dir(data.path()).join("settings.json"))
        .unwrap_or_default();
    assert!(
        !saved.contains("http://"),
        "no refused endpoint was saved: {saved}"
    );
    for (key, url) in [
        ("graph", "http://127.0.0.1:9/v1.0"),
        ("graph", "http://localhost:9/v1.0"),
        ("graph", "http://[::1]:9/v1.0"),
        (
            "authority",
            "https://login.microsoftonline.us/organizations/v2.0",
        ),
    ] {
        let mut op = json!({"op": "settings"});
        op[key] = json!(url);
        host.send_ok(op);
    }
    assert!(host.quit().success());
}

// ---------------------------------------------------------------------------------------------
// Item 7: bad input at the ABI with a synced index

/// With a synced index: 1 MB numbers, 1 MB call ids, 1 MB queries, `limit` u32::MAX and 0,
/// empty values and control characters, 50 rounds of each: every one gets an answer (or a
/// clear error), the answers stay bounded (at most 200 results), the host's resident memory
/// does not grow with the rounds (a loose guard: under 32 MiB over all rounds, where keeping
/// each 1 MB call id for a late caller grew it by about 50 MiB), and callers are still
/// identified afterwards.
#[cfg(target_os = "linux")]
#[test]
fn bad_input_with_a_synced_index_gets_bounded_answers_and_memory_stays_bounded() {
    if !story::have_curl() {
        return;
    }
    let mut s = Story::signed_in(story::emulator());
    let synced = s.host.send_ok(json!({"op": "sync"}));
    let contacts = synced["contacts"].as_u64().unwrap_or(0);
    assert!(contacts > 0, "{synced}");
    let known = json!({"op": "incoming_call", "call_id": "known", "number": "+49 89 1234567"});
    let reply = s.host.send_ok(known.clone());
    assert_eq!(reply["caller"]["display_name"], "Anna Müller", "{reply}");

    let pid = s.host.pid();
    let megabyte = 1 << 20;
    let digits = "4".repeat(megabyte);
    let known_repeated = "+49 89 1234567".repeat(megabyte / 14);
    let letters = "Anna".repeat(megabyte / 4);
    let words = "Anna ".repeat(megabyte / 5);
    let controls = "\u{0}\u{1b}[2J\u{7f}\u{202e}".repeat(megabyte / 8);
    // One round first (allocator warm-up), then the baseline.
    let round = |host: &mut ScriptHost, i: usize| {
        for number in [&digits, &known_repeated, &controls, &String::new()] {
            let reply = host.send_ok(json!({
                "op": "incoming_call",
                "call_id": format!("big-{i}"),
                "number": number,
            }));
            assert_eq!(
                reply["caller"],
                Value::Null,
                "no one has such a number: {i}"
            );
        }
        // A 1 MB call id with a known number is still answered; with an unknown one the plugin
        // must not keep it for later.
        let reply = host.send_ok(json!({
            "op": "incoming_call", "call_id": letters, "number": "+49 89 1234567",
        }));
        assert_eq!(reply["caller"]["display_name"], "Anna Müller", "{i}");
        host.send_ok(json!({"op": "incoming_call", "call_id": letters, "number": "+1 555 0100"}));
        host.send_ok(json!({"op": "incoming_call", "call_id": "", "number": "+1 555 0101"}));
        for (query, limit) in [
            (&words, u32::MAX),
            (&letters, u32::MAX),
            (&digits, u32::MAX),
            (&controls, 20),
            (&String::new(), u32::MAX),
            (&"a".to_owned(), u32::MAX),
            (&"a".to_owned(), 0),
        ] {
            let reply = host.send_ok(json!({"op": "search", "query": query, "limit": limit}));
            let n = reply["results"].as_array().map_or(usize::MAX, Vec::len);
            assert!(n <= 200, "at most 200 results, got {n} (round {i})");
            if limit == 0 {
                assert_eq!(n, 0, "limit 0 gives none");
            }
        }
    };
    round(&mut s.host, 0);
    let baseline = rss_kib(pid);
    for i in 1..=50 {
        round(&mut s.host, i);
    }
    let after = rss_kib(pid);
    let grown_mib = after.saturating_sub(baseline) / 1024;
    eprintln!("host RSS {baseline} KiB → {after} KiB over 50 rounds");
    assert!(
        grown_mib < 32,
        "the host's memory grew by {grown_mib} MiB over 50 rounds of bad input"
    );

    // Still up and right.
    let state = story::state(&mut s.host);
    assert_eq!(state["microsoft_integration"], "active", "{state}");
    assert_eq!(state["contacts"], contacts, "{state}");
    let reply = s.host.send_ok(known);
    assert_eq!(reply["caller"]["display_name"], "Anna Müller", "{reply}");
    let reply = s
        .host
        .send_ok(json!({"op": "search", "query": "Anna", "limit": 5}));
    assert!(
        reply["results"].as_array().is_some_and(|r| !r.is_empty()),
        "{reply}"
    );
    assert!(s.host.quit().success());
}

// ---------------------------------------------------------------------------------------------
// Found on the way: presence polling renews a token Graph refuses before its expiry

/// Graph refuses the access token long before its expiry (expired early on the server): the
/// next presence poll's 401 wakes the refresher at once (no contact sync needed), a refreshed
/// token is used, and presence reads succeed again.
#[test]
fn a_401_on_a_presence_poll_renews_the_token_at_once() {
    if !story::have_curl() {
        return;
    }
    let mut s = Story::signed_in_with(
        story::emulator(),
        json!({"presence_integration": true, "presence_poll_ms": 200}),
        |b| b,
    );
    // The first contact sync is over (the next is 300 s away) and presence sync reads Teams.
    story::wait_state(&mut s.host, "first sync done, presence sync active", |st| {
        st["last_sync"].is_string()
            && st["presence_integration"] == "active"
            && st["teams_presence"].is_object()
    });
    let from = s.emu.control().requests().len();
    s.emu.control().expire_access_tokens(ADELE_UPN).unwrap();
    let deadline = Instant::now() + GUARD;
    loop {
        let log = s.emu.control().requests();
        let since = &log[from..];
        let refreshed = since.iter().position(|r| {
            r.path.ends_with("/oauth2/v2.0/token")
                && r.form
                    .as_ref()
                    .and_then(|f| f.get("grant_type"))
                    .is_some_and(|g| g == "refresh_token")
        });
        if let Some(at) = refreshed {
            let read_again = since[at..]
                .iter()
                .any(|r| r.path.ends_with("/presence") && r.status == Some(200));
            if read_again {
                assert!(
                    !since.iter().any(|r| r.path.contains("/me/contact")),
                    "no contact sync was needed for the refresh"
                );
                break;
            }
        }
        if Instant::now() > deadline {
            s.host.fail(&format!(
                "hang guard: no refresh and successful read after the 401: {:?}",
                since
                    .iter()
                    .map(|r| format!("{} {} {:?}", r.method, r.path, r.status))
                    .collect::<Vec<_>>()
            ));
        }
        s.host.send_ok(json!({"op": "wait", "ms": 50}));
    }
    let state = story::state(&mut s.host);
    assert_eq!(state["microsoft_integration"], "active", "{state}");

    // Graph now refuses every presence read (401), also with fresh tokens: the plugin renews
    // at most once per 10 s, not at the rate of its polls. Watched for 3 s of 200 ms polls; a
    // slow machine can only make fewer requests.
    let control = s.emu.control();
    control
        .inject_fault(FaultRule {
            path_prefix: format!("/v1.0/users/{ADELE_ID}/presence"),
            method: Some("GET".into()),
            count: 10_000,
            fault: Fault::Status {
                status: 401,
                retry_after: None,
            },
        })
        .unwrap();
    let from = control.requests().len();
    s.host.send_ok(json!({"op": "wait", "ms": 3000}));
    let log = control.requests();
    let since = &log[from..];
    let refused = since
        .iter()
        .filter(|r| r.path.ends_with("/presence") && r.status == Some(401))
        .count();
    let renewals = since
        .iter()
        .filter(|r| r.path.ends_with("/oauth2/v2.0/token"))
        .count();
    assert!(refused >= 5, "the polls went on: {refused} refused reads");
    assert!(
        renewals <= 1,
        "{renewals} renewals for {refused} refused reads within 3 s"
    );
    control.clear_faults();
    assert!(s.host.quit().success());
}
