//! Compatibility fixtures, generated from the current `host-api` so they never drift from it.
//!
//! For each [`Variant`], [`build_variant`] writes a small cargo workspace under
//! `<target>/compat/<variant>/`:
//!
//! ```text
//! <target>/compat/<variant>/
//!   Cargo.toml        the main Cargo.toml with its [workspace] table replaced (members below);
//!                     [workspace.package], [workspace.dependencies] and profiles are kept
//!   Cargo.lock        copied from the main workspace: same crate versions
//!   host-api/         copy of host-api/{Cargo.toml,src}, version rewritten, variant change applied
//!   compat-plugin/    generated Cargo.toml; sources: tests/fixtures/compat-plugin/src
//!   compat-host/      next-minor only; sources: tests/fixtures/compat-host/src
//! ```
//!
//! and builds it with one shared `--target-dir` (`<target>/compat/target`), so abi_stable and
//! friends compile once for all variants. Files are only rewritten when their content changes,
//! so a second run is a no-op build. Each variant's cdylib has its own name
//! (`libcompat_plugin_<variant>.so`), so variants never overwrite each other.

use std::{
    fmt, fs,
    path::{Path, PathBuf},
    process::Command,
    sync::{Mutex, OnceLock},
};

use crate::{cargo_command, dylib_file_name, target_dir, workspace_root};

/// A version of host-api.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostApiVersion {
    /// Breaking changes.
    pub major: u64,
    /// Additions.
    pub minor: u64,
    /// Fixes.
    pub patch: u64,
}

impl fmt::Display for HostApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl HostApiVersion {
    /// `MAJOR.MINOR`, as hosts show it (`api_version` of `plugin_loaded`).
    pub fn api(&self) -> String {
        format!("{}.{}", self.major, self.minor)
    }
}

/// The version in `host-api/Cargo.toml`.
pub fn current_host_api_version() -> HostApiVersion {
    let manifest = read(&workspace_root().join("host-api/Cargo.toml"));
    let line = package_version_line(&manifest)
        .unwrap_or_else(|| panic!("no `version = \"..\"` line in host-api/Cargo.toml"));
    let v = line
        .split('"')
        .nth(1)
        .expect("quoted version in host-api/Cargo.toml");
    let mut parts = v.split('.').map(|p| {
        p.parse::<u64>()
            .unwrap_or_else(|_| panic!("host-api version `{v}` is not MAJOR.MINOR.PATCH"))
    });
    let (major, minor, patch) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap_or(0),
    );
    HostApiVersion {
        major,
        minor,
        patch,
    }
}

/// How the generated host-api differs from the current one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// `1.(minor+1).0`, with only what the versioning policy allows in a minor version: a new
    /// `ContactStatus::OUT_OF_OFFICE` constant and new extension operations
    /// (`host_api::compat_ext`). Nothing in any layout changes.
    NextMinor,
    /// `(major+1).0.0`, with a real breaking change: a field added to `IncomingCall`.
    NextMajor,
    /// The current version, but with a field added to the plain struct `CallerInfo`: what a
    /// plugin built from a locally modified host-api looks like.
    BrokenLayout,
}

impl Variant {
    /// Every variant.
    pub const ALL: [Variant; 3] = [
        Variant::NextMinor,
        Variant::NextMajor,
        Variant::BrokenLayout,
    ];

    /// `next-minor`, `next-major`, `broken-layout`: directory name and fixture feature.
    pub fn slug(self) -> &'static str {
        match self {
            Variant::NextMinor => "next-minor",
            Variant::NextMajor => "next-major",
            Variant::BrokenLayout => "broken-layout",
        }
    }

    /// The host-api version this variant declares.
    pub fn version(self) -> HostApiVersion {
        let cur = current_host_api_version();
        match self {
            Variant::NextMinor => HostApiVersion {
                minor: cur.minor + 1,
                patch: 0,
                ..cur
            },
            Variant::NextMajor => HostApiVersion {
                major: cur.major + 1,
                minor: 0,
                patch: 0,
            },
            Variant::BrokenLayout => cur,
        }
    }

    /// The fixture plugin's cargo package name.
    pub fn plugin_package(self) -> String {
        format!("compat-plugin-{}", self.slug())
    }

    /// The fixture plugin's library name (the file is `lib<name>.so` on Linux).
    pub fn plugin_lib_name(self) -> String {
        self.plugin_package().replace('-', "_")
    }
}

/// What one variant build produced.
#[derive(Clone, Debug)]
pub struct VariantArtifacts {
    /// The fixture plugin (cdylib) built against this variant's host-api.
    pub plugin: PathBuf,
    /// The fixture host (only for [`Variant::NextMinor`]).
    pub host: Option<PathBuf>,
    /// The generated workspace.
    pub workspace: PathBuf,
}

/// `<target>/compat`.
pub fn compat_dir() -> PathBuf {
    target_dir().join("compat")
}

/// Generates and builds `variant` once per test process; later calls return the same paths.
/// Panics with cargo's output if the build fails.
pub fn build_variant(variant: Variant) -> &'static VariantArtifacts {
    static CELLS: [OnceLock<Result<VariantArtifacts, String>>; 3] =
        [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    // One build at a time in this process: the cargo lock would serialize them anyway, and
    // this keeps the generated files from being written while another build reads them.
    static BUILDING: Mutex<()> = Mutex::new(());
    let index = Variant::ALL.iter().position(|v| *v == variant).unwrap();
    let result = CELLS[index].get_or_init(|| {
        let _guard = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
        generate_and_build(variant)
    });
    match result {
        Ok(a) => a,
        Err(e) => panic!(
            "building the {} compatibility fixture failed:\n{e}",
            variant.slug()
        ),
    }
}

/// The fixture plugin built against `variant`'s host-api.
pub fn compat_plugin(variant: Variant) -> &'static Path {
    &build_variant(variant).plugin
}

/// The fixture host built against the next-minor host-api.
pub fn compat_host() -> &'static Path {
    build_variant(Variant::NextMinor)
        .host
        .as_deref()
        .expect("the next-minor build makes the fixture host")
}

fn generate_and_build(variant: Variant) -> Result<VariantArtifacts, String> {
    let root = workspace_root();
    let fixtures = root.join("tests/fixtures");
    let ws = compat_dir().join(variant.slug());
    let compat_target = compat_dir().join("target");
    let with_host = variant == Variant::NextMinor;

    // The workspace root manifest: the main one, with its own [workspace] table.
    let main_manifest = read(&root.join("Cargo.toml"));
    let mut members = vec!["host-api", "compat-plugin"];
    if with_host {
        members.push("compat-host");
    }
    let members = members
        .iter()
        .map(|m| format!("\"{m}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let manifest = format!(
        "# Generated by tests/src/compat.rs ({slug} compatibility fixture). Do not edit.\n\
         [workspace]\nresolver = \"3\"\nmembers = [{members}]\n\n{rest}",
        slug = variant.slug(),
        rest = without_table(&main_manifest, "workspace"),
    );
    write_if_changed(&ws.join("Cargo.toml"), &manifest)?;
    write_if_changed(&ws.join("Cargo.lock"), &read(&root.join("Cargo.lock")))?;

    // host-api: src/ and Cargo.toml, changed as the variant says.
    let host_api = ws.join("host-api");
    let mut files = read_tree(&root.join("host-api/src"))?;
    let version = variant.version();
    let cargo_toml = set_package_version(&read(&root.join("host-api/Cargo.toml")), version)?;
    apply_variant(variant, &mut files)?;
    sync_tree(&host_api.join("src"), &files)?;
    write_if_changed(&host_api.join("Cargo.toml"), &cargo_toml)?;

    // The fixture plugin.
    let plugin_src = fixtures.join("compat-plugin/src/lib.rs");
    let features = Variant::ALL
        .iter()
        .map(|v| format!("{} = []\n", v.slug()))
        .collect::<String>();
    let plugin_manifest = format!(
        r#"# Generated by tests/src/compat.rs. Sources: tests/fixtures/compat-plugin.
[package]
name = "{package}"
version = "0.3.0"
edition.workspace = true
publish = false

[lib]
name = "{lib}"
path = {path}
crate-type = ["cdylib"]

[features]
default = ["{slug}"]
{features}
[dependencies]
host-api.workspace = true
abi_stable.workspace = true
serde_json.workspace = true
"#,
        package = variant.plugin_package(),
        lib = variant.plugin_lib_name(),
        path = toml_string(&plugin_src),
        slug = variant.slug(),
    );
    write_if_changed(&ws.join("compat-plugin/Cargo.toml"), &plugin_manifest)?;

    if with_host {
        let host_src = fixtures.join("compat-host/src/main.rs");
        let host_manifest = format!(
            r#"# Generated by tests/src/compat.rs. Sources: tests/fixtures/compat-host.
[package]
name = "compat-host"
version = "0.3.0"
edition.workspace = true
publish = false

[[bin]]
name = "compat-host"
path = {path}

[dependencies]
host-api.workspace = true
abi_stable.workspace = true
serde_json.workspace = true
"#,
            path = toml_string(&host_src),
        );
        write_if_changed(&ws.join("compat-host/Cargo.toml"), &host_manifest)?;
    }

    let mut cmd = cargo_command();
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(ws.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&compat_target)
        .args(["-p", &variant.plugin_package()]);
    if with_host {
        cmd.args(["-p", "compat-host"]);
    }
    run_build(cmd)?;

    let out = compat_target.join("debug");
    let plugin = out.join(dylib_file_name(&variant.plugin_lib_name()));
    let host = with_host.then(|| out.join(format!("compat-host{}", std::env::consts::EXE_SUFFIX)));
    for file in std::iter::once(&plugin).chain(host.iter()) {
        if !file.is_file() {
            return Err(format!(
                "the build succeeded but {} is missing",
                file.display()
            ));
        }
    }
    Ok(VariantArtifacts {
        plugin,
        host,
        workspace: ws,
    })
}

/// Runs a cargo build, returning its output as the error when it fails.
pub(crate) fn run_build(mut cmd: Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{shown} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The source change each variant makes, on `path relative to src/ -> text`.
fn apply_variant(variant: Variant, files: &mut [(PathBuf, String)]) -> Result<(), String> {
    match variant {
        Variant::NextMinor => {
            let lib = file_mut(files, "lib.rs")?;
            lib.push_str(NEXT_MINOR_ADDITIONS);
        }
        Variant::NextMajor => {
            add_field(
                file_mut(files, "types.rs")?,
                "pub struct IncomingCall {",
                "    /// Added in the next major version (a breaking change).\n    \
                 pub caller_name_hint: RString,\n",
            )?;
        }
        Variant::BrokenLayout => {
            add_field(
                file_mut(files, "types.rs")?,
                "pub struct CallerInfo {",
                "    /// Added without a major version bump: this breaks the layout.\n    \
                 pub photo_url: RString,\n",
            )?;
        }
    }
    Ok(())
}

/// What the next minor version adds: only what the versioning policy allows.
const NEXT_MINOR_ADDITIONS: &str = r#"
// ---- Added by the next-minor compatibility fixture (tests/src/compat.rs) ----

impl ContactStatus {
    /// Out of office: a status added in this minor version (the next unused value).
    pub const OUT_OF_OFFICE: ContactStatus = {
        let mut max = 0;
        let mut i = 0;
        while i < ContactStatus::KNOWN.len() {
            if ContactStatus::KNOWN[i].raw() > max {
                max = ContactStatus::KNOWN[i].raw();
            }
            i += 1;
        }
        ContactStatus::from_raw(max + 1)
    };
}

/// Extension operations added in this minor version.
pub mod compat_ext {
    /// `Host::extension`: the plugin reports the user as out of office. Payload
    /// `{"reason": ...}`; reply `{"acknowledged": true}`.
    pub const HOST_OP_OUT_OF_OFFICE: &str = "compat.out_of_office";
    /// `Integration::extension`: the host asks how many phonebook entries the plugin holds.
    /// Payload `{}`; reply `{"contacts": N}`.
    pub const PLUGIN_OP_PHONEBOOK_SIZE: &str = "compat.phonebook_size";
}
"#;

fn file_mut<'a>(files: &'a mut [(PathBuf, String)], name: &str) -> Result<&'a mut String, String> {
    files
        .iter_mut()
        .find(|(p, _)| p == Path::new(name))
        .map(|(_, text)| text)
        .ok_or_else(|| format!("host-api/src/{name} not found: update tests/src/compat.rs"))
}

/// Inserts `field` right after the line `anchor` (a struct's opening line).
fn add_field(text: &mut String, anchor: &str, field: &str) -> Result<(), String> {
    let at = text
        .find(anchor)
        .ok_or_else(|| format!("`{anchor}` not found in host-api: update tests/src/compat.rs"))?;
    let line_end = at + text[at..].find('\n').unwrap_or(text.len() - at) + 1;
    text.insert_str(line_end, field);
    Ok(())
}

fn package_version_line(manifest: &str) -> Option<&str> {
    let mut in_package = false;
    for line in manifest.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            in_package = t == "[package]";
        } else if in_package && t.starts_with("version") && t.contains('"') {
            return Some(line);
        }
    }
    None
}

fn set_package_version(manifest: &str, v: HostApiVersion) -> Result<String, String> {
    let line = package_version_line(manifest)
        .ok_or("no version line in host-api/Cargo.toml's [package]")?;
    Ok(manifest.replacen(line, &format!("version = \"{v}\""), 1))
}

/// `manifest` without the table `[name]` (its header and lines up to the next header).
fn without_table(manifest: &str, name: &str) -> String {
    let header = format!("[{name}]");
    let mut out = String::new();
    let mut skipping = false;
    for line in manifest.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            skipping = t == header;
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn toml_string(path: &Path) -> String {
    // A TOML basic string (JSON string escaping is valid TOML for paths).
    serde_json::Value::String(path.to_string_lossy().into_owned()).to_string()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every file under `dir`, as (relative path, text), sorted.
fn read_tree(dir: &Path) -> Result<Vec<(PathBuf, String)>, String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(PathBuf, String)>) -> Result<(), String> {
        let entries = fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.is_dir() {
                walk(base, &path, out)?;
            } else {
                let text =
                    fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                out.push((path.strip_prefix(base).unwrap().to_owned(), text));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.sort();
    Ok(out)
}

/// Makes `dir` hold exactly `files` (removing files that are no longer in the source).
fn sync_tree(dir: &Path, files: &[(PathBuf, String)]) -> Result<(), String> {
    for (rel, text) in files {
        write_if_changed(&dir.join(rel), text)?;
    }
    if let Ok(existing) = read_tree(dir) {
        for (rel, _) in existing {
            if !files.iter().any(|(r, _)| *r == rel) {
                fs::remove_file(dir.join(&rel)).map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(())
}

/// Writes `text` to `path` unless it already holds exactly that (keeps cargo's fingerprints).
pub(crate) fn write_if_changed(path: &Path, text: &str) -> Result<(), String> {
    if fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    // Write then rename, so a concurrent reader never sees half a file.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
    fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_field_inserts_after_the_struct_line() {
        let mut text = "pub struct A {\n    pub x: u8,\n}\n".to_owned();
        add_field(&mut text, "pub struct A {", "    pub y: u8,\n").unwrap();
        assert_eq!(text, "pub struct A {\n    pub y: u8,\n    pub x: u8,\n}\n");
        assert!(add_field(&mut text, "pub struct B {", "").is_err());
    }

    #[test]
    fn versions_follow_the_current_host_api() {
        let cur = current_host_api_version();
        assert_eq!(Variant::NextMinor.version().major, cur.major);
        assert_eq!(Variant::NextMinor.version().minor, cur.minor + 1);
        assert_eq!(Variant::NextMajor.version().major, cur.major + 1);
        assert_eq!(Variant::BrokenLayout.version(), cur);
    }

    #[test]
    fn without_table_drops_only_that_table() {
        let m = "[workspace]\nmembers = [\"a\"]\n\n[workspace.package]\nedition = \"2024\"\n";
        assert_eq!(
            without_table(m, "workspace"),
            "[workspace.package]\nedition = \"2024\"\n"
        );
    }

    #[test]
    fn set_package_version_rewrites_the_package_version_only() {
        let m = "[package]\nname = \"host-api\"\nversion = \"1.0.0\"\n[dependencies]\nx = { version = \"2\" }\n";
        let v = HostApiVersion {
            major: 1,
            minor: 1,
            patch: 0,
        };
        let out = set_package_version(m, v).unwrap();
        assert!(out.contains("version = \"1.1.0\""));
        assert!(out.contains("x = { version = \"2\" }"));
    }
}
