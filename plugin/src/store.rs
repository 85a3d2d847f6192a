//! Files in the data folder: written atomically (temporary file, fsync, rename) and readable by
//! the user only, so a crash leaves the old or the new content, never a torn file.
//!
//! The temporary file is `NAME.tmp-<process id>`. A process killed mid-write leaves its
//! temporary file behind; the next write of the same file removes such leftovers (those of a
//! process that no longer runs, or older than [`STALE_TEMP_AGE`]), so they never accumulate.
//! A leftover never affects reading: only `NAME` itself is ever read.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

/// A temporary file of another process untouched for this long is a leftover whatever its
/// process id says (no write takes this long; the id may have been reused).
pub const STALE_TEMP_AGE: Duration = Duration::from_secs(10 * 60);

/// Writes `bytes` to `path` atomically, with mode 0600 on Unix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, |file| file.write_all(bytes))
}

/// Writes what `fill` writes to the file to `path` atomically (temporary file, fsync, rename),
/// with mode 0600 on Unix; on any error nothing changes at `path`.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no folder"))?;
    fs::create_dir_all(dir)?;
    remove_stale_temps(path);
    let tmp = temp_path(path);
    let result = (|| {
        let mut file = open_private(&tmp)?;
        fill(&mut file)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads `path`; `Ok(None)` when it does not exist.
pub fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Moves an unreadable file aside (`NAME.corrupt-<unix time>`) so nothing is lost, and returns
/// where it went.
pub fn set_aside(path: &Path) -> io::Result<PathBuf> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let base = path.file_name().unwrap_or_default().to_os_string();
    let mut n = 0u32;
    let aside = loop {
        let mut name = base.clone();
        name.push(format!(".corrupt-{stamp}"));
        if n > 0 {
            name.push(format!("-{n}"));
        }
        let candidate = path.with_file_name(name);
        if !candidate.exists() {
            break candidate;
        }
        n += 1;
    };
    fs::rename(path, &aside)?;
    Ok(aside)
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!("{TEMP_MARK}{}", std::process::id()));
    path.with_file_name(name)
}

/// Between the file name and the process id in a temporary file's name.
const TEMP_MARK: &str = ".tmp-";

/// Removes the temporary files of `path` that a killed or crashed process left behind. Best
/// effort: a file that cannot be listed or removed is left alone.
fn remove_stale_temps(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return;
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let prefix = format!("{name}{TEMP_MARK}");
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let modified = entry.metadata().and_then(|m| m.modified()).ok();
        if is_stale(pid, modified) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Whether a temporary file written by process `pid`, last modified at `modified`, is a
/// leftover: never our own; another process's when that process is gone (where the system
/// can tell) or the file is older than [`STALE_TEMP_AGE`].
fn is_stale(pid: u32, modified: Option<SystemTime>) -> bool {
    if pid == std::process::id() {
        return false;
    }
    if process_gone(pid) {
        return true;
    }
    modified
        .and_then(|m| m.elapsed().ok())
        .is_some_and(|age| age > STALE_TEMP_AGE)
}

/// `true` only when the system says process `pid` does not exist (Linux: no `/proc/<pid>`
/// while `/proc/self` exists); `false` when it runs or nobody can tell.
fn process_gone(pid: u32) -> bool {
    #[cfg(target_os = "linux")]
    {
        Path::new("/proc/self").exists() && !Path::new(&format!("/proc/{pid}")).exists()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        false
    }
}

fn open_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_atomically_and_privately() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/settings.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(read_optional(&path).unwrap().unwrap(), b"two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[cfg(unix)]
    #[test]
    fn leftovers_of_dead_processes_are_removed_by_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("contacts.json");
        // A process that has ended (its id is free) and one that runs for sure (init).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let dead_temp = dir.path().join(format!("contacts.json{TEMP_MARK}{dead}"));
        let live_temp = dir.path().join(format!("contacts.json{TEMP_MARK}1"));
        let other_file = dir.path().join(format!("settings.json{TEMP_MARK}{dead}"));
        for f in [&dead_temp, &live_temp, &other_file] {
            fs::write(f, b"half a write").unwrap();
        }
        write_atomic(&path, b"whole").unwrap();
        assert_eq!(read_optional(&path).unwrap().unwrap(), b"whole");
        #[cfg(target_os = "linux")]
        assert!(!dead_temp.exists(), "the dead process's leftover is gone");
        assert!(
            live_temp.exists(),
            "a running process's fresh temp file is kept"
        );
        assert!(
            other_file.exists(),
            "another file's temp files are not touched"
        );
    }

    #[cfg(unix)]
    #[test]
    fn staleness_rule() {
        let now = SystemTime::now();
        assert!(!is_stale(
            std::process::id(),
            Some(now - 2 * STALE_TEMP_AGE)
        ));
        assert!(!is_stale(1, Some(now)), "init runs; a fresh file is in use");
        assert!(!is_stale(1, None));
        assert!(
            is_stale(1, Some(now - 2 * STALE_TEMP_AGE)),
            "too old to be a write"
        );
    }

    #[test]
    fn missing_file_is_none_and_corrupt_file_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        assert!(read_optional(&path).unwrap().is_none());
        fs::write(&path, b"garbage").unwrap();
        let aside = set_aside(&path).unwrap();
        assert!(!path.exists());
        assert_eq!(fs::read(aside).unwrap(), b"garbage");
    }
}
