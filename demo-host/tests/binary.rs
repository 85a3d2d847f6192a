//! The `demo-host` binary, without a plugin: line protocol over real pipes, signals, the human
//! commands. (End-to-end tests with the real plugin live in the workspace's `tests/` crate.)

use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

fn demo_host(dir: &tempfile::TempDir) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_demo-host"));
    c.arg("--plugins-dir")
        .arg(dir.path().join("plugins"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "warn");
    c
}

fn plugins_dir_with_junk(dir: &tempfile::TempDir) {
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let name = format!("corrupt.{}", std::env::consts::DLL_EXTENSION);
    std::fs::write(plugins.join(name), b"garbage\n").unwrap();
}

#[test]
fn script_answers_every_line_then_exits_zero_at_end_of_input() {
    let dir = tempfile::tempdir().unwrap();
    plugins_dir_with_junk(&dir);
    let mut child = demo_host(&dir)
        .arg("script")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let script = concat!(
        "{\"op\":\"state\"}\n",
        "{\"op\":\"search\",\"query\":\"x\",\"limit\":-1}\n",
        "\n",
        "{\"op\":\"status\",\"status\":\"appear_offline\"}\n",
        "{\"op\":\"wait\",\"ms\":10}\n",
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect(l))
        .collect();
    assert_eq!(lines[0]["event"], "plugin_rejected");
    assert!(lines[0]["file"].as_str().unwrap().starts_with("corrupt."));
    let replies: Vec<&Value> = lines.iter().filter(|l| l.get("reply").is_some()).collect();
    assert_eq!(replies.len(), 5);
    assert_eq!(replies[0]["error"]["code"], "plugin_error");
    assert_eq!(replies[1]["error"]["code"], "bad_request");
    assert_eq!(replies[1]["reply"], "search");
    assert_eq!(replies[2]["reply"], Value::Null);
    assert_eq!(replies[3]["ok"], true);
    assert_eq!(replies[4]["ok"], true);
}

#[cfg(unix)]
#[test]
fn sigterm_cancels_the_running_op_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = demo_host(&dir)
        .arg("script")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"{\"op\":\"wait\",\"ms\":60000}\n{\"op\":\"state\"}\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let start = Instant::now();
    let killed = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(killed.success());
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    let mut line = String::new();
    while stdout.read_line(&mut line).unwrap() > 0 {
        lines.push(serde_json::from_str::<Value>(&line).unwrap());
        line.clear();
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(start.elapsed() < Duration::from_secs(10));
    drop(stdin);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["reply"], "wait");
    assert_eq!(lines[0]["error"]["code"], "cancelled");
    assert_eq!(lines[1]["reply"], "state");
    assert_eq!(lines[1]["error"]["code"], "cancelled");
}

#[test]
fn plugins_lists_rejected_files() {
    let dir = tempfile::tempdir().unwrap();
    plugins_dir_with_junk(&dir);
    let out = demo_host(&dir).arg("plugins").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("Not loaded:") && text.contains("corrupt."),
        "{text}"
    );
}

#[test]
fn demo_without_plugins_says_so_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let out = demo_host(&dir).arg("demo").output().unwrap();
    assert!(out.status.success());
    assert!(start.elapsed() < Duration::from_secs(20));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("no plugin loaded"), "{text}");
    assert!(!text.contains('\x1b'), "no colour when not a terminal");
}

/// The plugin as `cargo build -p contact-ms365` leaves it, if it was built.
fn built_plugin() -> Option<std::path::PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let file = format!(
        "{}contact_ms365.{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_EXTENSION
    );
    let path = target.join("debug").join(file);
    path.is_file().then_some(path)
}

/// Waits for `child` at most `limit`; kills it (and fails) when it takes longer.
fn wait_bounded(mut child: std::process::Child, limit: Duration) -> std::process::Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {limit:?}; output so far:\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn demo_runs_the_tour_against_the_real_plugin() {
    let Some(plugin) = built_plugin() else {
        eprintln!(
            "note: skipping the demo against the real plugin: build it first \
             (cargo build -p contact-ms365)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(&plugin, plugins.join(plugin.file_name().unwrap())).unwrap();
    let child = demo_host(&dir)
        .arg("demo")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let out = wait_bounded(child, Duration::from_secs(90));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("signed in as adele.vance@contoso.example"),
        "the signed-in user:\n{text}"
    );
    let call = text
        .lines()
        .find(|l| l.contains("089 1234567") && l.contains("→"))
        .unwrap_or_else(|| panic!("no call line:\n{text}"));
    assert!(call.contains("Anna Müller"), "{call}\n{text}");
    eprintln!("demo took {:?}", start.elapsed());
}

#[test]
fn human_commands_without_a_plugin_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = demo_host(&dir)
        .args(["call", "+49", "89", "1234567", "--json"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["reply"], "incoming_call");
    assert_eq!(line["ok"], false);
    assert_eq!(line["error"]["code"], "plugin_error");
    // Nothing given: no host.json. A bad country is refused before anything loads.
    assert!(!dir.path().join("data/host.json").exists());
    let out = demo_host(&dir)
        .args(["status", "--country", "Germany"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--country"));
    // Values given are kept for later commands.
    let out = demo_host(&dir)
        .args(["status", "--username", "adele.vance@contoso.example"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let kept: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("data/host.json")).unwrap()).unwrap();
    assert_eq!(kept["username"], "adele.vance@contoso.example");
    assert_eq!(kept["country"], "DE");
    assert_eq!(kept["addons"][0], "contact_connect");
}
