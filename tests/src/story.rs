//! The shared setup of the end-to-end stories: an emulator, the plugins folder with the real
//! plugin, a demo host in scripted mode, Adele's licensed context, Microsoft integration
//! switched on against the emulator, and bounded waits on the integration state.
//!
//! ```no_run
//! use contact_ms365_e2e::story::{self, Story};
//!
//! let mut s = Story::signed_in(story::emulator());
//! let reply = s.host.send_ok(serde_json::json!({"op": "sync"}));
//! assert!(reply["contacts"].as_u64().unwrap() > 0);
//! ```

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use ms365_emulator::{
    EmulatorConfig, EmulatorHandle, RequestLogEntry,
    tenant::{ADELE_UPN, HOST_CLIENT_ID},
};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::{PluginsDir, ScriptHost, ScriptHostBuilder, build_workspace_artifacts, temp_dir};

/// Hang guard for one wait on the plugin (never a timing assertion).
pub const GUARD: Duration = Duration::from_secs(90);

/// The "browser" of the sign-in: follows authorize's redirect to the plugin's loopback.
pub const CURL_BROWSER: &str = "curl -s -L -o /dev/null";

/// An emulator with the default seeded tenant on a random loopback port.
pub fn emulator() -> EmulatorHandle {
    emulator_with(EmulatorConfig::default())
}

/// An emulator with `config`.
pub fn emulator_with(config: EmulatorConfig) -> EmulatorHandle {
    EmulatorHandle::spawn(config).expect("start the Microsoft 365 emulator on 127.0.0.1")
}

/// A fresh plugins folder holding the real plugin.
pub fn plugins() -> PluginsDir {
    PluginsDir::new().with(&build_workspace_artifacts().plugin)
}

/// A scripted demo host on `plugins` with the curl browser, `RUST_LOG=info` and no injected
/// panic; the caller adds the data folder and anything else.
pub fn host_builder(plugins: &PluginsDir) -> ScriptHostBuilder {
    ScriptHost::builder(&build_workspace_artifacts().demo_host)
        .plugins_dir(plugins.path())
        .browser(CURL_BROWSER)
        .env("RUST_LOG", "info")
        .env_remove("CONTACT_MS365_INJECT_PANIC")
}

/// `true` when `curl` (the sign-in's browser) is installed; prints a note when it is not.
pub fn have_curl() -> bool {
    let found = Command::new("sh")
        .args(["-c", "command -v curl"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("note: curl is not installed; this end-to-end test is skipped");
    }
    found
}

/// Adele's licensed context, country DE.
pub fn context_op() -> Value {
    json!({
        "op": "context",
        "username": ADELE_UPN,
        "addons": ["contact_connect"],
        "country": "DE",
        "legacy_presence_integration": false,
    })
}

/// The settings op that switches Microsoft integration on against `emu`, remembering the
/// sign-in in the file store, with `extra` settings merged in.
pub fn settings_op(emu: &EmulatorHandle, extra: Value) -> Value {
    let mut op = json!({
        "op": "settings",
        "microsoft_integration": true,
        "authority": emu.authority(),
        "graph": emu.graph_url(),
        "client_id": emu.client_id(),
        "remember_login": true,
        "token_store": "file",
    });
    if let (Some(op), Value::Object(extra)) = (op.as_object_mut(), extra) {
        op.extend(extra);
    }
    op
}

/// The plugin's own data folder inside the host's data folder.
pub fn plugin_data_dir(data_dir: &Path) -> PathBuf {
    let file = crate::dylib_file_name("contact_ms365");
    let stem = Path::new(&file).file_stem().unwrap().to_owned();
    data_dir.join(stem)
}

/// The plugin's state (`state` op).
pub fn state(host: &mut ScriptHost) -> Value {
    host.send_ok(json!({"op": "state"}))["state"].clone()
}

/// Polls `state` (bounded by [`GUARD`]) until `pred` holds; the `wait` op between polls keeps
/// the host's events flowing into the record.
pub fn wait_state(host: &mut ScriptHost, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + GUARD;
    loop {
        let s = state(host);
        if pred(&s) {
            return s;
        }
        if Instant::now() > deadline {
            host.fail(&format!("hang guard: {what}; the state is {s}"));
        }
        host.send_ok(json!({"op": "wait", "ms": 50}));
    }
}

/// Waits until `microsoft_integration` is `want`.
pub fn wait_integration(host: &mut ScriptHost, want: &str) -> Value {
    wait_state(host, &format!("microsoft_integration {want}"), |s| {
        s["microsoft_integration"] == want
    })
}

/// One emulator, the plugins folder, a data folder kept across restarts, and the running
/// host.
pub struct Story {
    pub emu: EmulatorHandle,
    pub plugins: PluginsDir,
    pub data: TempDir,
    pub host: ScriptHost,
}

impl Story {
    /// Adele signed in through the browser flow (curl), integration active, nothing synced
    /// by the test yet.
    pub fn signed_in(emu: EmulatorHandle) -> Story {
        Story::signed_in_with(emu, json!({}), |b| b)
    }

    /// As [`Story::signed_in`], with `extra` settings and a hook on the host builder.
    pub fn signed_in_with(
        emu: EmulatorHandle,
        extra: Value,
        builder: impl FnOnce(ScriptHostBuilder) -> ScriptHostBuilder,
    ) -> Story {
        let plugins = plugins();
        let data = temp_dir("e2e-story-");
        let mut host = builder(host_builder(&plugins).data_dir(data.path())).spawn();
        host.wait_event("plugin_loaded", GUARD);
        host.send_ok(context_op());
        host.send_ok(settings_op(&emu, extra));
        let s = wait_integration(&mut host, "active");
        assert_eq!(s["signed_in_as"], ADELE_UPN, "{s}");
        Story {
            emu,
            plugins,
            data,
            host,
        }
    }

    /// The plugin's data folder.
    pub fn plugin_data(&self) -> PathBuf {
        plugin_data_dir(self.data.path())
    }

    /// Quits the host (exit 0 asserted) and starts a new one on the same data folder and
    /// plugins, with the same context; settings come back from the plugin's settings file.
    pub fn restart(&mut self) {
        assert!(self.host.quit().success(), "the host quits cleanly");
        let mut host = host_builder(&self.plugins)
            .data_dir(self.data.path())
            .spawn();
        host.wait_event("plugin_loaded", GUARD);
        host.send_ok(context_op());
        self.host = host;
    }
}

/// The emulator's request log, one line per request (method, path, query, status, fault,
/// time), for assertion messages.
pub fn show(log: &[RequestLogEntry]) -> String {
    log.iter()
        .map(|e| {
            format!(
                "{} {}?{} -> {:?} {:?} @{}",
                e.method,
                e.path,
                e.query.as_deref().unwrap_or(""),
                e.status,
                e.fault,
                e.time
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The threads of `pid` named `name` (Linux: `/proc/<pid>/task/*/comm`; 0 elsewhere).
pub fn threads_named(pid: u32, name: &str) -> usize {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .filter(|comm| comm.trim_end() == name)
        .count()
}

/// Contact Desktop's own Microsoft 365 login for Adele: a token the emulator minted for the
/// host's app, written as the host's SSO answer into `dir`. Returns the `--sso-command` (the
/// scopes the host appends become a shell comment) and the token.
pub fn host_login(emu: &EmulatorHandle, dir: &Path) -> (String, String) {
    let token = emu
        .control()
        .mint_access_token(
            ADELE_UPN,
            HOST_CLIENT_ID,
            &["User.Read", "Contacts.Read", "Presence.ReadWrite"],
            3600,
        )
        .expect("mint a host token");
    let file = dir.join("sso.json");
    std::fs::write(
        &file,
        json!({"access_token": token, "client_id": HOST_CLIENT_ID, "expires_in": 3600}).to_string(),
    )
    .expect("write the SSO answer");
    (format!("cat '{}' #", file.display()), token)
}
