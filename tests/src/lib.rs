//! # End-to-end harness: the real cdylib, loaded by the real demo host
//!
//! `cargo test --workspace` does not produce a cdylib's `.so` nor another package's binary, so
//! every e2e test starts with [`build_workspace_artifacts`], which runs
//! `cargo build -p contact-ms365 -p demo-host` once per test process and returns both paths.
//!
//! A typical test:
//!
//! ```no_run
//! use contact_ms365_e2e::{PluginsDir, ScriptHost, build_workspace_artifacts};
//! use serde_json::json;
//!
//! let artifacts = build_workspace_artifacts();
//! let plugins = PluginsDir::new().with(&artifacts.plugin);
//! let mut host = ScriptHost::builder(&artifacts.demo_host)
//!     .plugins_dir(plugins.path())
//!     .env("RUST_LOG", "debug")
//!     .spawn();
//! host.wait_event("plugin_loaded", ScriptHost::DEFAULT_TIMEOUT);
//! let reply = host.send_ok(json!({"op": "state"}));
//! assert_eq!(reply["state"]["microsoft_integration"], "off");
//! assert!(host.quit().success());
//! ```
//!
//! Every read from the host is bounded by a timeout (a hang guard, never a timing assertion):
//! [`ScriptHost::DEFAULT_TIMEOUT`] unless the builder says otherwise; `E2E_TIMEOUT_S` overrides
//! the default for slow machines. When a test panics, dropping the [`ScriptHost`] kills the
//! child and prints its standard error and the events seen, so failures explain themselves.
//!
//! Compatibility fixtures (plugins and a host built against generated variants of host-api)
//! live in [`compat`].

pub mod compat;
pub mod story;

use std::{
    collections::VecDeque,
    ffi::{OsStr, OsString},
    fs,
    io::{BufRead, BufReader, Read, Write},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, ExitStatus, Stdio},
    sync::{
        Arc, Mutex, OnceLock,
        mpsc::{self, Receiver, RecvTimeoutError},
    },
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;
use tempfile::TempDir;

/// The workspace root (the directory of the main `Cargo.toml`).
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lies inside the workspace")
}

/// Cargo's target directory: `CARGO_TARGET_DIR` (relative to the workspace root when relative)
/// or `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace_root().join(dir),
        _ => workspace_root().join("target"),
    }
}

/// `lib<stem>.so` on Linux, `lib<stem>.dylib` on macOS, `<stem>.dll` on Windows.
pub fn dylib_file_name(stem: &str) -> String {
    format!(
        "{}{stem}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// A `cargo` command (the cargo running the tests, else `cargo` from `PATH`), run from the
/// workspace root.
pub fn cargo_command() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root()).stdin(Stdio::null());
    // Cargo sets these for the test process; build scripts (ring's, for one) declare
    // `rerun-if-env-changed` on them, so inheriting them would rebuild half the dependency
    // tree a second time inside every test binary.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || key == "CARGO_MANIFEST_DIR"
            || key == "CARGO_MANIFEST_PATH"
            || key == "CARGO_MANIFEST_LINKS"
            || key == "CARGO_CRATE_NAME"
            || key == "CARGO_PRIMARY_PACKAGE"
        {
            cmd.env_remove(key.as_ref());
        }
    }
    cmd
}

/// The real plugin and the real demo host, freshly built.
#[derive(Clone, Debug)]
pub struct Artifacts {
    /// `libcontact_ms365.so` (platform file name).
    pub plugin: PathBuf,
    /// The `demo-host` binary.
    pub demo_host: PathBuf,
}

/// Builds the plugin cdylib and the demo host (debug, as the tests) once per test process;
/// later calls return the same paths. Panics with cargo's output when the build fails.
pub fn build_workspace_artifacts() -> &'static Artifacts {
    static ARTIFACTS: OnceLock<Result<Artifacts, String>> = OnceLock::new();
    let result = ARTIFACTS.get_or_init(|| {
        let mut cmd = cargo_command();
        cmd.args(["build", "-p", "contact-ms365", "-p", "demo-host"]);
        compat::run_build(cmd)?;
        let out = target_dir().join("debug");
        let artifacts = Artifacts {
            plugin: out.join(dylib_file_name("contact_ms365")),
            demo_host: out.join(format!("demo-host{}", std::env::consts::EXE_SUFFIX)),
        };
        for file in [&artifacts.plugin, &artifacts.demo_host] {
            if !file.is_file() {
                return Err(format!(
                    "the build succeeded but {} is missing",
                    file.display()
                ));
            }
        }
        Ok(artifacts)
    });
    match result {
        Ok(a) => a,
        Err(e) => panic!("building the plugin and the demo host failed:\n{e}"),
    }
}

/// Builds the plugin cdylib with `--release` (for benchmarks) and returns its path.
pub fn build_release_plugin() -> PathBuf {
    let mut cmd = cargo_command();
    cmd.args(["build", "--release", "-p", "contact-ms365"]);
    if let Err(e) = compat::run_build(cmd) {
        panic!("building the release plugin failed:\n{e}");
    }
    let plugin = target_dir()
        .join("release")
        .join(dylib_file_name("contact_ms365"));
    assert!(plugin.is_file(), "{} is missing", plugin.display());
    plugin
}

/// A temporary plugins folder (deleted on drop).
#[derive(Debug)]
pub struct PluginsDir {
    dir: TempDir,
}

impl Default for PluginsDir {
    fn default() -> Self {
        Self::new()
    }
}

impl PluginsDir {
    /// An empty plugins folder.
    pub fn new() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("e2e-plugins-")
                .tempdir()
                .expect("temp plugins dir"),
        }
    }

    /// The folder, for `--plugins-dir`.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Copies `file` in under its own name; returns the copy's path.
    pub fn add(&self, file: &Path) -> PathBuf {
        let name = file.file_name().expect("a file name");
        self.add_as(file, name)
    }

    /// Copies `file` in as `name`; returns the copy's path.
    pub fn add_as(&self, file: &Path, name: impl AsRef<OsStr>) -> PathBuf {
        let dest = self.dir.path().join(name.as_ref());
        fs::copy(file, &dest)
            .unwrap_or_else(|e| panic!("copy {} to {}: {e}", file.display(), dest.display()));
        dest
    }

    /// Writes a file with `contents` (e.g. a corrupt "plugin"); returns its path.
    pub fn write(&self, name: impl AsRef<OsStr>, contents: impl AsRef<[u8]>) -> PathBuf {
        let dest = self.dir.path().join(name.as_ref());
        fs::write(&dest, contents).unwrap_or_else(|e| panic!("write {}: {e}", dest.display()));
        dest
    }

    /// Builder form of [`add`](Self::add).
    pub fn with(self, file: &Path) -> Self {
        self.add(file);
        self
    }

    /// Builder form of [`add_as`](Self::add_as).
    pub fn with_as(self, file: &Path, name: impl AsRef<OsStr>) -> Self {
        self.add_as(file, name);
        self
    }
}

/// A temporary directory for anything else (data dirs, scratch files); deleted on drop.
pub fn temp_dir(prefix: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir")
}

/// How to start the demo host in scripted mode. See [`ScriptHost::builder`].
#[derive(Debug)]
pub struct ScriptHostBuilder {
    program: PathBuf,
    plugins_dir: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    options: Vec<OsString>,
    envs: Vec<(OsString, Option<OsString>)>,
    timeout: Duration,
}

impl ScriptHostBuilder {
    /// `--plugins-dir` (required).
    pub fn plugins_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.plugins_dir = Some(dir.as_ref().to_owned());
        self
    }

    /// `--data-dir`; without it a fresh temporary folder (kept for the host's lifetime).
    pub fn data_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.data_dir = Some(dir.as_ref().to_owned());
        self
    }

    /// `--browser CMD`.
    pub fn browser(self, cmd: impl AsRef<OsStr>) -> Self {
        self.option("--browser", cmd)
    }

    /// `--sso-command CMD`.
    pub fn sso_command(self, cmd: impl AsRef<OsStr>) -> Self {
        self.option("--sso-command", cmd)
    }

    /// Any other `--flag value` before `script`.
    pub fn option(mut self, flag: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.options.push(flag.as_ref().to_owned());
        self.options.push(value.as_ref().to_owned());
        self
    }

    /// Sets an environment variable for the host (e.g. `RUST_LOG`).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Removes an environment variable for the host.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.envs.push((key.as_ref().to_owned(), None));
        self
    }

    /// The hang guard for every read (default [`ScriptHost::DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Starts `demo-host ... script` with piped standard streams.
    pub fn spawn(self) -> ScriptHost {
        let plugins_dir = self
            .plugins_dir
            .expect("ScriptHost::builder(..).plugins_dir(..) is required");
        let (data_dir, owned_data_dir) = match self.data_dir {
            Some(d) => (d, None),
            None => {
                let t = temp_dir("e2e-data-");
                (t.path().to_owned(), Some(t))
            }
        };
        let mut cmd = Command::new(&self.program);
        cmd.arg("--plugins-dir")
            .arg(&plugins_dir)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(&self.options)
            .arg("script")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.envs {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let command_line = format!("{cmd:?}");
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command_line}: {e}"));

        let (line_tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(line) => {
                        if line_tx.send(Some(line)).is_err() {
                            return;
                        }
                    }
                    Err(_) => break,
                }
            }
            let _ = line_tx.send(None);
        });

        let stderr_text = Arc::new(Mutex::new(String::new()));
        let (stderr_done_tx, stderr_done) = mpsc::channel();
        let mut stderr = child.stderr.take().expect("piped stderr");
        let sink = Arc::clone(&stderr_text);
        thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match stderr.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push_str(&String::from_utf8_lossy(&buf[..n])),
                }
            }
            let _ = stderr_done_tx.send(());
        });

        ScriptHost {
            stdin: child.stdin.take(),
            child,
            command_line,
            lines,
            stdout_closed: false,
            events: Vec::new(),
            unclaimed: VecDeque::new(),
            stderr: stderr_text,
            stderr_done,
            timeout: self.timeout,
            exit: None,
            reported: false,
            data_dir,
            _owned_data_dir: owned_data_dir,
        }
    }
}

/// The demo host running in scripted mode (`demo-host ... script`), driven line by line.
///
/// - [`send`](Self::send) writes one op and returns its reply; event lines read meanwhile are
///   recorded (see [`events`](Self::events)).
/// - [`wait_event`](Self::wait_event) returns the next event of a name not returned before.
/// - [`quit`](Self::quit) sends `quit` and waits for the exit status.
///
/// Any standard-output line that is not a JSON object fails the test (the scripted mode
/// promises JSON lines only). Dropping the host kills it if it is still running.
pub struct ScriptHost {
    child: Child,
    stdin: Option<ChildStdin>,
    command_line: String,
    lines: Receiver<Option<String>>,
    stdout_closed: bool,
    events: Vec<Value>,
    unclaimed: VecDeque<Value>,
    stderr: Arc<Mutex<String>>,
    stderr_done: Receiver<()>,
    timeout: Duration,
    exit: Option<ExitStatus>,
    reported: bool,
    data_dir: PathBuf,
    _owned_data_dir: Option<TempDir>,
}

/// One line the host wrote on standard output.
#[derive(Debug)]
enum Line {
    Reply(Value),
    Event(Value),
}

impl ScriptHost {
    /// The default hang guard for every read: 60 s, or `E2E_TIMEOUT_S` seconds.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

    /// Starts describing a host run of `program` (the `demo-host` binary).
    pub fn builder(program: impl AsRef<Path>) -> ScriptHostBuilder {
        let timeout = std::env::var("E2E_TIMEOUT_S")
            .ok()
            .and_then(|s| s.parse().ok())
            .map_or(Self::DEFAULT_TIMEOUT, Duration::from_secs);
        ScriptHostBuilder {
            program: program.as_ref().to_owned(),
            plugins_dir: None,
            data_dir: None,
            options: Vec::new(),
            envs: Vec::new(),
            timeout,
        }
    }

    /// The `--data-dir` the host was started with.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends one op (a JSON object) and returns its reply, whatever `ok` says.
    pub fn send(&mut self, op: Value) -> Value {
        assert!(op.is_object(), "an op is a JSON object, got {op}");
        self.send_line(&op.to_string())
    }

    /// Sends one op and returns its reply, failing the test unless `ok` is true.
    pub fn send_ok(&mut self, op: Value) -> Value {
        let reply = self.send(op.clone());
        if reply["ok"] != Value::Bool(true) {
            self.fail(&format!("op {op} was answered {reply}"));
        }
        reply
    }

    /// Sends raw text as one input line (for malformed-input tests) and returns the reply.
    pub fn send_line(&mut self, line: &str) -> Value {
        self.write_line(line);
        self.read_reply()
    }

    /// Writes one input line without waiting for its reply (pair with
    /// [`read_reply`](Self::read_reply), e.g. to queue ops or to quit during a long op).
    pub fn write_line(&mut self, line: &str) {
        assert!(!line.contains('\n'), "one line at a time: {line:?}");
        let Some(stdin) = self.stdin.as_mut() else {
            self.fail("write after standard input was closed");
        };
        if let Err(e) = writeln!(stdin, "{line}").and_then(|()| stdin.flush()) {
            self.fail(&format!("cannot write {line:?} to the host: {e}"));
        }
    }

    /// Reads the next reply line, recording event lines on the way.
    pub fn read_reply(&mut self) -> Value {
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.next_line(deadline) {
                Some(Line::Reply(v)) => return v,
                Some(Line::Event(_)) => {}
                None => self.fail("standard output closed while waiting for a reply"),
            }
        }
    }

    /// The next event named `name` not returned by an earlier `wait_event`, reading more
    /// output for at most `timeout`. A reply line read meanwhile fails the test (no op is
    /// outstanding while waiting).
    pub fn wait_event(&mut self, name: &str, timeout: Duration) -> Value {
        self.wait_event_any(&[name], timeout)
    }

    /// Like [`wait_event`](Self::wait_event), for the first event named any of `names`.
    pub fn wait_event_any(&mut self, names: &[&str], timeout: Duration) -> Value {
        let wanted = |e: &Value| names.iter().any(|n| e["event"] == *n);
        if let Some(i) = self.unclaimed.iter().position(wanted) {
            return self.unclaimed.remove(i).expect("index in range");
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.next_line(deadline) {
                Some(Line::Event(e)) if wanted(&e) => {
                    let i = self
                        .unclaimed
                        .iter()
                        .rposition(|u| *u == e)
                        .expect("just recorded");
                    return self.unclaimed.remove(i).expect("index in range");
                }
                Some(Line::Event(_)) => {}
                Some(Line::Reply(r)) => {
                    self.fail(&format!("unexpected reply {r} while waiting for {names:?}"))
                }
                None => self.fail(&format!(
                    "standard output closed while waiting for event {names:?}"
                )),
            }
        }
    }

    /// Every event line seen so far, in order (including those returned by `wait_event`).
    pub fn events(&self) -> &[Value] {
        &self.events
    }

    /// The events named `name` seen so far.
    pub fn events_named(&self, name: &str) -> Vec<&Value> {
        self.events.iter().filter(|e| e["event"] == name).collect()
    }

    /// Everything the host wrote on standard error so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sends `quit` (which must be answered `ok: true`), then waits for the process to exit,
    /// recording events written before it did. Returns the exit status.
    pub fn quit(&mut self) -> ExitStatus {
        self.send_ok(serde_json::json!({"op": "quit"}));
        self.close_stdin();
        self.wait_exit(self.timeout)
    }

    /// Closes standard input (end of input: the host finishes the ops already read, then
    /// shuts down).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for the process to exit (at most `timeout`, then the test fails), reading the
    /// rest of its output. Replies read now are returned as events would be: recorded only if
    /// they are events; a stray reply fails the test.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(status) = self.exit {
            return status;
        }
        let deadline = Instant::now() + timeout;
        // Read output until it closes or, once the process has exited, until a short grace
        // period passes (a grandchild may hold the pipe open).
        let mut exited_at: Option<(ExitStatus, Instant)> = None;
        while !self.stdout_closed {
            if exited_at.is_some_and(|(_, at)| at.elapsed() > Duration::from_secs(2)) {
                break;
            }
            match self.poll_line(Duration::from_millis(50)) {
                Some(Line::Event(_)) => {}
                Some(Line::Reply(r)) => self.fail(&format!("unexpected reply {r} after quit")),
                None if self.stdout_closed => break,
                None => {}
            }
            if exited_at.is_none() {
                match self.child.try_wait() {
                    Ok(Some(status)) => exited_at = Some((status, Instant::now())),
                    Ok(None) if Instant::now() > deadline => {
                        self.fail("the host did not exit in time (hang guard)")
                    }
                    Ok(None) => {}
                    Err(e) => self.fail(&format!("waiting for the host: {e}")),
                }
            }
        }
        let status = match exited_at {
            Some((status, _)) => status,
            None => loop {
                match self.child.try_wait() {
                    Ok(Some(status)) => break status,
                    Ok(None) if Instant::now() < deadline => {
                        thread::sleep(Duration::from_millis(20))
                    }
                    Ok(None) => self.fail("the host did not exit in time (hang guard)"),
                    Err(e) => self.fail(&format!("waiting for the host: {e}")),
                }
            },
        };
        // Let the stderr reader finish (bounded: a grandchild may hold the pipe).
        let _ = self.stderr_done.recv_timeout(Duration::from_secs(5));
        self.exit = Some(status);
        status
    }

    /// Sends SIGTERM (Unix) to the host.
    #[cfg(unix)]
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Fails the test with `message`, the command line, the exit status if the host has
    /// exited, the events seen and the tail of its standard error.
    pub fn fail(&mut self, message: &str) -> ! {
        // When output closed, the process is usually gone or going: say how it ended.
        let mut status = None;
        if self.exit.is_none() {
            let until = Instant::now() + Duration::from_secs(2);
            while status.is_none() && Instant::now() < until {
                match self.child.try_wait() {
                    Ok(Some(s)) => status = Some(s),
                    Ok(None) if self.stdout_closed => thread::sleep(Duration::from_millis(20)),
                    _ => break,
                }
            }
        }
        if let Some(s) = status {
            self.exit = Some(s);
            let _ = self.stderr_done.recv_timeout(Duration::from_secs(2));
        }
        self.reported = true;
        let status = match self.exit {
            Some(s) => describe_exit(s),
            None => "still running".to_owned(),
        };
        panic!(
            "{message}\n--- host: {}\n--- process: {status}\n--- events seen:\n{}\n--- stderr (tail):\n{}",
            self.command_line,
            self.events
                .iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
            tail(&self.stderr(), 60)
        );
    }

    /// The next line before `deadline`; `None` when standard output closed. Fails the test at
    /// the deadline.
    fn next_line(&mut self, deadline: Instant) -> Option<Line> {
        loop {
            if self.stdout_closed {
                return None;
            }
            if let Some(line) = self.poll_line(Duration::from_millis(100)) {
                return Some(line);
            }
            if Instant::now() >= deadline && !self.stdout_closed {
                self.fail("no expected output from the host before the deadline (hang guard)");
            }
        }
    }

    /// The next line if one arrives within `wait`; `None` otherwise or when standard output
    /// closed (then `stdout_closed` is set).
    fn poll_line(&mut self, wait: Duration) -> Option<Line> {
        if self.stdout_closed {
            return None;
        }
        let text = match self.lines.recv_timeout(wait) {
            Ok(Some(text)) => text,
            Ok(None) | Err(RecvTimeoutError::Disconnected) => {
                self.stdout_closed = true;
                return None;
            }
            Err(RecvTimeoutError::Timeout) => return None,
        };
        let value: Value = match serde_json::from_str(&text) {
            Ok(v @ Value::Object(_)) => v,
            _ => self.fail(&format!(
                "standard output line is not a JSON object: {text:?}"
            )),
        };
        if value.get("reply").is_some() {
            Some(Line::Reply(value))
        } else if value.get("event").is_some() {
            self.events.push(value.clone());
            self.unclaimed.push_back(value.clone());
            Some(Line::Event(value))
        } else {
            self.fail(&format!("line is neither a reply nor an event: {text}"))
        }
    }
}

impl Drop for ScriptHost {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if thread::panicking() && !self.reported {
            eprintln!(
                "--- demo host {} stderr (tail):\n{}",
                self.command_line,
                tail(&self.stderr(), 60)
            );
        }
    }
}

/// "exited with code N" or "killed by signal N".
pub fn describe_exit(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("killed by signal {signal}");
        }
    }
    match status.code() {
        Some(code) => format!("exited with code {code}"),
        None => format!("{status}"),
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Compiles a tiny C shared library that is not a plugin (a "foreign" `.so`) into `dir` and
/// returns its path. Uses `cc` (`CC` when set).
pub fn foreign_shared_library(dir: &Path, stem: &str) -> PathBuf {
    let src = dir.join(format!("{stem}.c"));
    fs::write(
        &src,
        "int foreign_answer(void) { return 42; }\nconst char *foreign_name = \"not a plugin\";\n",
    )
    .expect("write C source");
    let out = dir.join(dylib_file_name(stem));
    let cc = std::env::var_os("CC").unwrap_or_else(|| OsString::from("cc"));
    let status = Command::new(&cc)
        .args(["-shared", "-fPIC", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cc:?} (a C compiler is needed): {e}"));
    assert!(status.success(), "{cc:?} failed to build {}", out.display());
    fs::remove_file(&src).ok();
    out
}

/// Runs `cmd` to completion with piped output, killing it after `timeout` (a hang guard).
pub fn output_with_timeout(cmd: &mut Command, timeout: Duration) -> std::process::Output {
    let shown = format!("{cmd:?}");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let out = child.wait_with_output();
        let _ = tx.send(());
        out
    });
    if rx.recv_timeout(timeout).is_err() {
        // Still running: kill it by its own pid (we started it), then collect what it wrote.
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg(pid.to_string())
            .status();
        let out = waiter.join().expect("waiter thread");
        panic!(
            "{shown} did not finish within {timeout:?} (hang guard); stderr:\n{}",
            out.map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                .unwrap_or_default()
        );
    }
    waiter
        .join()
        .expect("waiter thread")
        .unwrap_or_else(|e| panic!("waiting for {shown}: {e}"))
}

/// Decodes `%XX` escapes and `+` (as in query strings and the emulator's logged paths).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
