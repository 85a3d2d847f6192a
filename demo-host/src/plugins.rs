//! The plugins folder: scanning it, loading each file with [`host_api::load_plugin`],
//! constructing the integrations, and switching them off.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use host_api::{HostBox, HostContext, IntegrationBox, IntegrationError, reexports::RResult};

/// The deadline given to `Integration::shutdown`, in milliseconds.
pub const SHUTDOWN_DEADLINE_MS: u32 = 2_000;
/// How long the host waits for the plugins' `shutdown` calls before it goes on anyway.
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// Every regular file in `dir` whose extension is the platform's dynamic library suffix
/// (`std::env::consts::DLL_EXTENSION`), sorted by file name.
pub fn scan(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == std::env::consts::DLL_EXTENSION)
                && fs::metadata(path).is_ok_and(|m| m.is_file())
        })
        .collect();
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

/// A loaded and constructed integration.
pub struct PluginInstance {
    /// Its position among the plugins folder's library files (unique per file).
    pub index: usize,
    /// The file name in the plugins folder.
    pub file: String,
    /// The integration's name (from its root module).
    pub name: String,
    /// The plugin's version.
    pub version: String,
    /// `MAJOR.MINOR` of the host-api it was built against.
    pub api_version: String,
    /// Its data folder (`data_dir/<file stem>`).
    pub data_dir: PathBuf,
    integration: IntegrationBox,
    shut_down: AtomicBool,
}

impl PluginInstance {
    /// The integration object.
    pub fn integration(&self) -> &IntegrationBox {
        &self.integration
    }

    /// Whether `key` names this plugin (its name or its file name).
    pub fn is_named(&self, key: &str) -> bool {
        self.name == key || self.file == key
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    pub fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::SeqCst)
    }

    /// Calls `Integration::shutdown(2000)` once (later calls do nothing).
    pub fn shutdown(&self) {
        if self.shut_down.swap(true, Ordering::SeqCst) {
            return;
        }
        match self.integration.shutdown(SHUTDOWN_DEADLINE_MS) {
            RResult::ROk(()) => tracing::debug!(plugin = %self.name, "switched off"),
            RResult::RErr(e) => tracing::warn!(plugin = %self.name, "shutdown failed: {e}"),
        }
    }
}

/// A file that was not loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// The file name.
    pub file: String,
    /// Why, in one line.
    pub reason: String,
}

/// What loading a folder gave.
#[derive(Default)]
pub struct Loaded {
    /// The integrations, in file-name order.
    pub plugins: Vec<Arc<PluginInstance>>,
    /// The files refused, in file-name order.
    pub rejected: Vec<Rejected>,
}

/// What a plugin folder entry became, reported as it happens (for the start-up events).
pub enum LoadOutcome<'a> {
    /// Loaded and constructed.
    Loaded(&'a PluginInstance),
    /// Refused.
    Rejected(&'a Rejected),
}

/// The constructor of an integration built into the host process.
pub type Constructor =
    Arc<dyn Fn(HostBox, HostContext) -> RResult<IntegrationBox, IntegrationError> + Send + Sync>;

/// An integration linked into the host rather than loaded from a file (used by tests to drive
/// the host with a scripted integration). It is constructed after the folder's files, with the
/// same callbacks, context and data folder rules (`file` stands for the file name).
#[derive(Clone)]
pub struct InProcessPlugin {
    /// Stands for the file name (data folder `data_dir/<file>`).
    pub file: String,
    /// The integration's name.
    pub name: String,
    /// Creates the integration.
    pub constructor: Constructor,
}

impl std::fmt::Debug for InProcessPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessPlugin")
            .field("file", &self.file)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Loads every plugin file of `plugins_dir`: each is opened with [`host_api::load_plugin`] and,
/// when accepted, constructed with `make_host(name, index)` and `context` (its `data_dir` set to
/// `data_dir/<file stem>`, created here). `report` hears of each file in order. The
/// `in_process` integrations follow the files.
pub fn load_folder(
    plugins_dir: &Path,
    data_dir: &Path,
    context: &HostContext,
    in_process: &[InProcessPlugin],
    make_host: &dyn Fn(&str, usize) -> HostBox,
    report: &mut dyn FnMut(LoadOutcome<'_>),
) -> Loaded {
    let mut loaded = Loaded::default();
    let files = scan(plugins_dir).unwrap_or_else(|e| {
        tracing::warn!(
            "cannot read the plugins folder {}: {e}; going on without plugins",
            plugins_dir.display()
        );
        Vec::new()
    });
    let sources = files
        .into_iter()
        .map(Source::File)
        .chain(in_process.iter().cloned().map(Source::InProcess));
    for (index, source) in sources.enumerate() {
        let file = match &source {
            Source::File(path) => path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            Source::InProcess(p) => p.file.clone(),
        };
        match load_one(source, index, &file, data_dir, context, make_host) {
            Ok(instance) => {
                tracing::info!(
                    "loaded {} {} (host-api {}) from {file}",
                    instance.name,
                    instance.version,
                    instance.api_version
                );
                report(LoadOutcome::Loaded(&instance));
                loaded.plugins.push(Arc::new(instance));
            }
            Err(rejected) => {
                tracing::warn!("{file} not loaded: {}", rejected.reason);
                report(LoadOutcome::Rejected(&rejected));
                loaded.rejected.push(rejected);
            }
        }
    }
    loaded
}

enum Source {
    File(PathBuf),
    InProcess(InProcessPlugin),
}

fn load_one(
    source: Source,
    index: usize,
    file: &str,
    data_dir: &Path,
    context: &HostContext,
    make_host: &dyn Fn(&str, usize) -> HostBox,
) -> Result<PluginInstance, Rejected> {
    let reject = |reason: String| Rejected {
        file: file.to_owned(),
        reason: one_line(&reason),
    };
    let (name, version, api_version, stem, constructor): (
        String,
        String,
        String,
        String,
        Constructor,
    ) = match source {
        Source::File(path) => {
            let plugin = host_api::load_plugin(&path).map_err(|e| {
                tracing::debug!("{} refused; full report:\n{}", path.display(), e.details);
                reject(e.reason)
            })?;
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| file.to_owned());
            let new = plugin.module.new();
            (
                plugin.name().to_owned(),
                plugin.version().to_owned(),
                plugin.api_version().to_string(),
                stem,
                Arc::new(move |host, ctx| new(host, ctx)),
            )
        }
        Source::InProcess(p) => (
            p.name,
            env!("CARGO_PKG_VERSION").to_owned(),
            host_api::API_VERSION.to_string(),
            p.file,
            p.constructor,
        ),
    };
    let own_dir = data_dir.join(stem);
    fs::create_dir_all(&own_dir).map_err(|e| {
        reject(format!(
            "cannot create its data folder {}: {e}",
            own_dir.display()
        ))
    })?;
    let context = HostContext {
        data_dir: own_dir.to_string_lossy().into_owned().into(),
        ..context.clone()
    };
    let integration = match constructor(make_host(&name, index), context) {
        RResult::ROk(integration) => integration,
        RResult::RErr(e) => {
            let e = crate::errors::map_plugin_error(&e);
            return Err(reject(format!("its constructor failed: {}", e.message)));
        }
    };
    Ok(PluginInstance {
        index,
        file: file.to_owned(),
        name,
        version,
        api_version,
        data_dir: own_dir,
        integration,
        shut_down: AtomicBool::new(false),
    })
}

/// Shuts every plugin down, each on its own thread, waiting at most [`SHUTDOWN_WAIT`] in all.
pub fn shutdown_all(plugins: &[Arc<PluginInstance>]) {
    let deadline = Instant::now() + SHUTDOWN_WAIT;
    let handles: Vec<_> = plugins
        .iter()
        .filter(|p| !p.is_shut_down())
        .map(|p| {
            let p = p.clone();
            thread::Builder::new()
                .name("plugin-shutdown".into())
                .spawn(move || p.shutdown())
        })
        .filter_map(Result::ok)
        .collect();
    for h in handles {
        while !h.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        if h.is_finished() {
            let _ = h.join();
        } else {
            tracing::warn!("a plugin did not finish its shutdown in time; going on");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_keeps_only_library_files_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let ext = std::env::consts::DLL_EXTENSION;
        for name in [format!("b.{ext}"), format!("a.{ext}"), "notes.txt".into()] {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        fs::create_dir(dir.path().join(format!("folder.{ext}"))).unwrap();
        let files: Vec<String> = scan(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(files, [format!("a.{ext}"), format!("b.{ext}")]);
    }

    #[test]
    fn junk_files_are_rejected_with_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        let ext = std::env::consts::DLL_EXTENSION;
        fs::write(dir.path().join(format!("corrupt.{ext}")), b"garbage\n").unwrap();
        let mut seen = Vec::new();
        let loaded = load_folder(
            dir.path(),
            data.path(),
            &HostContext::default(),
            &[],
            &|_, _| unreachable!("never constructed"),
            &mut |o| {
                if let LoadOutcome::Rejected(r) = o {
                    seen.push(r.clone());
                }
            },
        );
        assert!(loaded.plugins.is_empty());
        assert_eq!(loaded.rejected, seen);
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].file, format!("corrupt.{ext}"));
        assert!(!seen[0].reason.contains('\n'));
        assert!(!seen[0].reason.is_empty());
    }

    #[test]
    fn a_missing_folder_means_no_plugins() {
        let loaded = load_folder(
            Path::new("/no/such/folder/at/all"),
            Path::new("/tmp"),
            &HostContext::default(),
            &[],
            &|_, _| unreachable!(),
            &mut |_| {},
        );
        assert!(loaded.plugins.is_empty() && loaded.rejected.is_empty());
    }
}
