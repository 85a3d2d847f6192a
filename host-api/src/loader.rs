//! Loading one plugin file, with every check, and a one-line reason when it is refused.
//!
//! Hosts load each file on its own with this function (abi_stable's `load_from_directory`
//! remembers a single library per root-module type). Libraries are never unloaded: a file that
//! was opened stays mapped until the process ends, as abi_stable requires.

use std::{
    ffi::{CStr, c_char},
    fmt, mem,
    path::{Path, PathBuf},
};

use abi_stable::library::{LibraryError, RawLibrary, RootModuleError, lib_header_from_raw_library};

use crate::module::{API_VERSION, ApiVersion, IntegrationModuleRef, MANIFEST_SYMBOL, Manifest};

/// A plugin file that passed every check; its root module is ready to construct integrations.
#[derive(Clone, Copy)]
pub struct LoadedPlugin {
    /// The root module.
    pub module: IntegrationModuleRef,
}

impl LoadedPlugin {
    /// The integration's name.
    pub fn name(&self) -> &'static str {
        self.module.name().as_str()
    }

    /// The plugin's version.
    pub fn version(&self) -> &'static str {
        self.module.version().as_str()
    }

    /// The host-api version the plugin was built against.
    pub fn api_version(&self) -> ApiVersion {
        self.module.api_version()
    }
}

impl fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.name())
            .field("version", &self.version())
            .field("api_version", &self.api_version())
            .finish()
    }
}

/// Why a file was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    /// The file.
    pub path: PathBuf,
    /// One line for a person, e.g. "built for host-api 2.0, this host has 1.0".
    pub reason: String,
    /// The full report (abi_stable's layout report can run to thousands of lines): for the log.
    pub details: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for LoadError {}

/// Loads the plugin file at `path`.
///
/// Order of checks: the file is complete (a truncated ELF file would crash the process on
/// first use); it opens as a dynamic library; its plain-C manifest, when present,
/// names a host-api of this major version; it exports an abi_stable root module of a compatible
/// abi_stable; abi_stable's version and layout checks pass; the root module initializes.
pub fn load_plugin(path: &Path) -> Result<LoadedPlugin, LoadError> {
    let refuse = |reason: String, details: String| LoadError {
        path: path.to_owned(),
        reason,
        details,
    };

    if let Err(reason) = crate::file_check::check_complete(path) {
        return Err(refuse(reason.clone(), reason));
    }
    let raw = RawLibrary::load_at(path).map_err(|e| {
        let full = e.to_string();
        refuse(
            format!(
                "cannot be loaded as a library: {}",
                open_error_line(&full, path)
            ),
            full,
        )
    })?;

    // SAFETY: the symbol, when present, is `extern "C" fn() -> *const c_char` returning a
    // NUL-terminated static text (see `export_integration!`).
    let manifest = unsafe {
        raw.get::<extern "C" fn() -> *const c_char>(MANIFEST_SYMBOL)
            .ok()
            .and_then(|f| {
                let ptr = f();
                (!ptr.is_null()).then(|| CStr::from_ptr(ptr).to_string_lossy().into_owned())
            })
            .and_then(|text| Manifest::parse(&text))
    };

    // SAFETY: the header refers to the library's statics; the library is leaked below, so the
    // references stay valid for the rest of the process.
    let header = unsafe { lib_header_from_raw_library(&raw) };
    // Libraries are never unloaded (abi_stable keeps 'static references into them).
    mem::forget(raw);
    let header = header.map_err(|e| {
        let reason = match &e {
            LibraryError::GetSymbolError { .. } => {
                "not a Contact Desktop plugin: it exports no integration root module".to_owned()
            }
            LibraryError::InvalidAbiHeader(_) => {
                "built with an incompatible abi_stable version".to_owned()
            }
            other => first_line(&other.to_string()),
        };
        refuse(reason, e.to_string())
    })?;

    if let Some(m) = manifest
        .as_ref()
        .filter(|m| m.api_version.major != API_VERSION.major)
    {
        return Err(refuse(
            version_reason(m.api_version),
            format!("manifest: {m:?}"),
        ));
    }
    let library_api = ApiVersion::parse(&header.version_strings().version);

    match header.init_root_module::<IntegrationModuleRef>() {
        Ok(module) => Ok(LoadedPlugin { module }),
        Err(e) => {
            let details = e.to_string();
            let reason = match &e {
                LibraryError::IncompatibleVersionNumber { actual_version, .. } => {
                    version_reason(ApiVersion {
                        major: actual_version.major as u16,
                        minor: actual_version.minor as u16,
                    })
                }
                LibraryError::AbiInstability(_) => format!(
                    "its host-api {} layout does not match this host's host-api {} \
                     (built from a modified or broken host-api; abi_stable's report is in the log)",
                    library_api.map_or_else(|| "?".to_owned(), |v| v.to_string()),
                    API_VERSION
                ),
                LibraryError::RootModule {
                    err: RootModuleError::Unwound,
                    ..
                } => "its root module panicked while loading".to_owned(),
                other => first_line(&other.to_string()),
            };
            Err(refuse(reason, details))
        }
    }
}

fn version_reason(plugin: ApiVersion) -> String {
    format!(
        "built for host-api {plugin}, this host has host-api {API_VERSION} \
         (only plugins of host-api major version {} load here)",
        API_VERSION.major
    )
}

fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("unknown error")
        .to_owned()
}

/// The loader's message without the path (the caller names the file already): abi_stable
/// writes "Could not open library at: PATH because: PATH: REASON"; keep REASON.
fn open_error_line(full: &str, path: &Path) -> String {
    let shown = path.display().to_string();
    let cause = full
        .split_once("because:")
        .map_or(full, |(_, cause)| cause)
        .trim();
    let line = first_line(cause);
    line.strip_prefix(&format!("{shown}: "))
        .map(str::to_owned)
        .unwrap_or_else(|| line.replace(&shown, "the file"))
}
