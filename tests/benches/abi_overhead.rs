//! What the stable ABI costs per call: one host → plugin call made through the loaded release
//! cdylib (abi_stable trait object: vtable shim, FFI-safe types, the plugin's panic guard)
//! against the same call on the plugin's Rust type, linked in as an rlib, in the same run.
//!
//! ```text
//! cargo bench -p contact-ms365-e2e --bench abi_overhead
//! ```
//!
//! The call is `on_incoming_call` for an unknown number, on a freshly constructed integration
//! (Microsoft integration off: the plugin answers from memory at once, so the figure is the
//! boundary's cost plus a small constant). The argument is built outside the timed section
//! (`iter_batched`); both sides drop the result inside it. At the end the benchmark prints
//! `overhead = ABI − direct` in nanoseconds and as a ratio, from criterion's estimates.

use std::{
    hint::black_box,
    path::{Path, PathBuf},
    time::SystemTime,
};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{ROption, RResult, RStr, RString, RVec},
};
use contact_ms365::Ms365Integration;
use contact_ms365_e2e::{build_release_plugin, target_dir, temp_dir};
use criterion::{BatchSize, Criterion};
use host_api::{
    CallerInfo, ContactStatus, Host, Host_TO, HostBox, HostContext, IncomingCall, Integration,
    IntegrationError, IntegrationState, LogLevel, Notification, SsoToken,
};

const GROUP: &str = "on_incoming_call_unknown";

/// A host that does nothing (the calls measured never call back anyway).
struct QuietHost;

impl Host for QuietHost {
    fn set_contact_status(&self, _status: ContactStatus) {}
    fn update_caller(&self, _call_id: RStr<'_>, _caller: CallerInfo) {}
    fn open_url(&self, _url: RStr<'_>) -> bool {
        false
    }
    fn notify(&self, _notification: Notification) {}
    fn state_changed(&self, _state: IntegrationState) {}
    fn log(&self, _level: LogLevel, _target: RStr<'_>, _message: RStr<'_>) {}
    fn sso_token(&self, _scopes: RVec<RString>) -> ROption<SsoToken> {
        ROption::RNone
    }
    fn extension(&self, op: RStr<'_>, _payload: RStr<'_>) -> RResult<RString, IntegrationError> {
        RResult::RErr(IntegrationError::unsupported(op.as_str()))
    }
}

fn host() -> HostBox {
    Host_TO::from_value(QuietHost, TD_Opaque)
}

fn context(data_dir: &Path) -> HostContext {
    HostContext {
        username: "alice@contoso.example".into(),
        addons: vec![RString::from("contact_connect")].into(),
        country: "DE".into(),
        data_dir: data_dir.to_string_lossy().as_ref().into(),
        legacy_presence_integration: false,
        extensions: RString::new(),
    }
}

fn call() -> IncomingCall {
    IncomingCall {
        call_id: "bench-call".into(),
        number: "+49 89 99999999".into(),
        extensions: RString::new(),
    }
}

fn criterion_dir() -> PathBuf {
    target_dir().join("criterion")
}

/// Criterion's estimate (ns per call) for `id`, if this run wrote one: the slope (what
/// criterion prints as `time`), else the mean.
fn estimate_ns(id: &str, since: SystemTime) -> Option<f64> {
    let file = criterion_dir()
        .join(GROUP)
        .join(id)
        .join("new/estimates.json");
    let modified = std::fs::metadata(&file).ok()?.modified().ok()?;
    if modified < since {
        return None; // left over from an earlier run (e.g. this one ran with --test)
    }
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).ok()?).ok()?;
    v["slope"]["point_estimate"]
        .as_f64()
        .or_else(|| v["mean"]["point_estimate"].as_f64())
}

fn main() {
    let started = SystemTime::now();
    let plugin_file = build_release_plugin();
    let loaded = host_api::load_plugin(&plugin_file).unwrap_or_else(|e| panic!("{e}"));
    let abi_data = temp_dir("bench-abi-");
    let through_abi = match (loaded.module.new())(host(), context(abi_data.path())) {
        RResult::ROk(i) => i,
        RResult::RErr(e) => panic!("constructing the loaded plugin: {e}"),
    };
    let direct_data = temp_dir("bench-direct-");
    let direct = Ms365Integration::new(host(), context(direct_data.path()))
        .unwrap_or_else(|e| panic!("constructing the plugin directly: {e}"));

    // Both answer the same thing before anything is timed.
    let a = through_abi.on_incoming_call(call());
    let d = Integration::on_incoming_call(&direct, call());
    assert_eq!(a, d, "the loaded plugin and the linked one disagree");
    assert!(matches!(a, RResult::ROk(ROption::RNone)), "{a:?}");

    let mut c = Criterion::default()
        .output_directory(&criterion_dir())
        .configure_from_args();
    {
        let mut group = c.benchmark_group(GROUP);
        group.bench_function("through_abi", |b| {
            b.iter_batched(
                call,
                |call| black_box(through_abi.on_incoming_call(black_box(call))),
                BatchSize::SmallInput,
            )
        });
        group.bench_function("direct", |b| {
            b.iter_batched(
                call,
                |call| black_box(Integration::on_incoming_call(&direct, black_box(call))),
                BatchSize::SmallInput,
            )
        });
        group.finish();
    }
    c.final_summary();

    let _ = through_abi.shutdown(5_000);
    let _ = Integration::shutdown(&direct, 5_000);

    match (
        estimate_ns("through_abi", started),
        estimate_ns("direct", started),
    ) {
        (Some(abi), Some(direct)) => println!(
            "\nABI overhead for {GROUP}: through ABI {abi:.1} ns, direct {direct:.1} ns, \
             overhead {:.1} ns per call, ratio {:.2}x",
            abi - direct,
            abi / direct
        ),
        _ => println!("\n(no fresh criterion estimates: overhead not computed in this mode)"),
    }
}
