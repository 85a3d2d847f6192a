//! Contact sync progress: the host extension operation `sync.progress` and how the human
//! commands show it.
//!
//! A plugin reports progress through [`host_api::Host::extension`] with op
//! [`SYNC_PROGRESS_OP`] and payload `{"folders_done": n, "folders": n, "items": n}`; the host
//! answers `{}` (see [`crate::host_impl`]). The scripted mode ignores it (its events are fixed
//! by the spec); `sync` and `demo` show it with [`ProgressView`]: an `indicatif` bar when the
//! stream is a terminal, otherwise plain lines (one per finished folder).

use std::{
    io::Write,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

/// The host extension operation carrying sync progress.
pub const SYNC_PROGRESS_OP: &str = "sync.progress";

/// One progress report of a contact sync.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncProgress {
    /// Contact folders finished so far.
    pub folders_done: u64,
    /// Contact folders known so far (grows while child folders are discovered).
    pub folders: u64,
    /// Contacts (and colleagues) received so far.
    pub items: u64,
}

impl SyncProgress {
    /// Reads a `sync.progress` payload: a JSON object whose three fields are non-negative
    /// integers (a missing one counts as 0; other keys are ignored, for newer plugins).
    pub fn parse(payload: &str) -> Result<Self, String> {
        let value: Value =
            serde_json::from_str(payload).map_err(|e| format!("not valid JSON: {e}"))?;
        let Value::Object(map) = value else {
            return Err("expected a JSON object".into());
        };
        let field = |key: &str| match map.get(key) {
            None => Ok(0),
            Some(v) => v
                .as_u64()
                .ok_or_else(|| format!("`{key}` must be a non-negative integer")),
        };
        Ok(Self {
            folders_done: field("folders_done")?,
            folders: field("folders")?,
            items: field("items")?,
        })
    }

    /// One plain line for a person, e.g. `sync: 2/3 folders, 40 contacts`.
    pub fn line(&self) -> String {
        format!("sync: {}", self.counts())
    }

    /// The counts for a person, e.g. `2/3 folders, 40 contacts`.
    pub fn counts(&self) -> String {
        format!(
            "{}/{} folder{}, {} contact{}",
            self.folders_done,
            self.folders,
            if self.folders == 1 { "" } else { "s" },
            self.items,
            if self.items == 1 { "" } else { "s" }
        )
    }
}

/// Who hears of progress: called on the host's event thread with the plugin's name.
pub type ProgressListener = Arc<dyn Fn(&str, SyncProgress) + Send + Sync>;

/// Where a [`ProgressView`] draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Standard output (the `demo`'s narrative).
    Stdout,
    /// Standard error (the commands, whose standard output is the result).
    Stderr,
}

impl Stream {
    fn is_terminal(self) -> bool {
        use std::io::IsTerminal;
        match self {
            Stream::Stdout => std::io::stdout().is_terminal(),
            Stream::Stderr => std::io::stderr().is_terminal(),
        }
    }

    fn write_line(self, text: &str) {
        // A closed stream is not worth failing a sync for.
        let _ = match self {
            Stream::Stdout => writeln!(std::io::stdout(), "{text}"),
            Stream::Stderr => writeln!(std::io::stderr(), "{text}"),
        };
    }
}

enum Mode {
    Bar(ProgressBar),
    Lines {
        indent: String,
        last: Option<SyncProgress>,
    },
}

/// Shows the progress of one sync: a bar on a terminal, plain lines otherwise. Cheap to
/// share; [`ProgressView::listener`] feeds it.
pub struct ProgressView {
    stream: Stream,
    mode: Mutex<Mode>,
}

impl ProgressView {
    /// A view on `stream`: a bar when it is a terminal, else plain lines prefixed by `indent`.
    pub fn new(stream: Stream, indent: &str) -> Arc<Self> {
        let mode = if stream.is_terminal() {
            Mode::Bar(new_bar(stream))
        } else {
            Mode::Lines {
                indent: indent.to_owned(),
                last: None,
            }
        };
        Arc::new(Self {
            stream,
            mode: Mutex::new(mode),
        })
    }

    /// A view that always writes plain lines (tests, and streams that are not terminals).
    pub fn plain(stream: Stream, indent: &str) -> Arc<Self> {
        Arc::new(Self {
            stream,
            mode: Mutex::new(Mode::Lines {
                indent: indent.to_owned(),
                last: None,
            }),
        })
    }

    /// Whether a bar is drawn (the stream is a terminal).
    pub fn is_bar(&self) -> bool {
        matches!(*self.lock(), Mode::Bar(_))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Mode> {
        self.mode.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A listener for [`crate::session::Session::set_progress_listener`].
    pub fn listener(self: &Arc<Self>) -> ProgressListener {
        let view = self.clone();
        Arc::new(move |_plugin: &str, p: SyncProgress| view.update(p))
    }

    /// Shows one report. Plain lines are written only when a folder finished or the folder
    /// count changed (not for every page), so a large mailbox gives a few lines.
    pub fn update(&self, p: SyncProgress) {
        let mut mode = self.lock();
        match &mut *mode {
            Mode::Bar(bar) => {
                // A length of 0 would draw a full bar before the folders are known.
                bar.set_length(p.folders.max(p.folders_done).max(1));
                bar.set_position(p.folders_done);
                bar.set_message(p.counts());
            }
            Mode::Lines { indent, last } => {
                if let Some(text) = plain_line(last.as_ref(), &p) {
                    self.stream.write_line(&format!("{indent}{text}"));
                }
                *last = Some(p);
            }
        }
    }

    /// Writes a line of text without tearing the bar.
    pub fn println(&self, text: &str) {
        match &*self.lock() {
            Mode::Bar(bar) => bar.suspend(|| self.stream.write_line(text)),
            Mode::Lines { .. } => self.stream.write_line(text),
        }
    }

    /// Ends the display: the bar is removed (the caller prints the result).
    pub fn finish(&self) {
        if let Mode::Bar(bar) = &*self.lock() {
            bar.finish_and_clear();
        }
    }
}

/// Lines for a person on one stream that never tear a progress bar: while a [`ProgressView`]
/// is set, lines go above it.
#[derive(Clone)]
pub struct Console {
    stream: Stream,
    view: Arc<Mutex<Option<Arc<ProgressView>>>>,
}

impl Console {
    /// A console writing to `stream`.
    pub fn new(stream: Stream) -> Self {
        Self {
            stream,
            view: Arc::default(),
        }
    }

    /// Writes one line.
    pub fn line(&self, text: &str) {
        let view = self
            .view
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match view {
            Some(v) => v.println(text),
            None => self.stream.write_line(text),
        }
    }

    /// Sets (or removes) the progress view lines must not tear.
    pub fn set_view(&self, view: Option<Arc<ProgressView>>) {
        *self.view.lock().unwrap_or_else(PoisonError::into_inner) = view;
    }
}

/// The plain line for `p` after `last`, or `None` when nothing worth a line changed.
pub fn plain_line(last: Option<&SyncProgress>, p: &SyncProgress) -> Option<String> {
    let worth = match last {
        None => true,
        Some(l) => l.folders_done != p.folders_done || l.folders != p.folders,
    };
    worth.then(|| p.line())
}

fn new_bar(stream: Stream) -> ProgressBar {
    let target = match stream {
        Stream::Stdout => ProgressDrawTarget::stdout(),
        Stream::Stderr => ProgressDrawTarget::stderr(),
    };
    let bar = ProgressBar::with_draw_target(Some(1), target);
    let style = ProgressStyle::with_template(
        "{spinner:.cyan} syncing contacts [{bar:30.cyan/blue}] {msg} ({elapsed})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message("starting");
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_read_strictly_but_tolerate_newer_keys() {
        let p =
            SyncProgress::parse(r#"{"folders_done":1,"folders":3,"items":40,"new":true}"#).unwrap();
        assert_eq!(
            p,
            SyncProgress {
                folders_done: 1,
                folders: 3,
                items: 40
            }
        );
        assert_eq!(SyncProgress::parse("{}").unwrap(), SyncProgress::default());
        for bad in ["", "[]", "null", r#"{"items":-1}"#, r#"{"folders":"3"}"#] {
            assert!(SyncProgress::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_lines_only_when_a_folder_moves() {
        let a = SyncProgress {
            folders_done: 0,
            folders: 3,
            items: 10,
        };
        assert_eq!(
            plain_line(None, &a).as_deref(),
            Some("sync: 0/3 folders, 10 contacts")
        );
        let more_items = SyncProgress { items: 20, ..a };
        assert_eq!(plain_line(Some(&a), &more_items), None);
        let done = SyncProgress {
            folders_done: 1,
            ..more_items
        };
        assert!(plain_line(Some(&more_items), &done).is_some());
        let one = SyncProgress {
            folders_done: 1,
            folders: 1,
            items: 1,
        };
        assert_eq!(one.line(), "sync: 1/1 folder, 1 contact");
    }
}
