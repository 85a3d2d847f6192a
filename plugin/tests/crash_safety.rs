//! Crash safety of the contacts snapshot (issue 6, item 2): a process killed with SIGKILL at
//! any point of a snapshot write leaves a snapshot that loads, equal to the old or the new
//! mailbox (with its index), never a torn or set-aside one; the temporary files such kills leave behind do not
//! disturb the next load or save, and they do not accumulate.
//!
//! The test re-executes its own binary as the writer (environment variable
//! [`CHILD_ENV`]): the child saves big snapshots (10,000 contacts, alternating between two
//! different mailboxes, each write numbered) in a loop and reports on standard output when each
//! write begins and ends. The parent kills it at many different delays after a write began
//! (spread over the measured length of a write, so most kills land inside one), then loads the
//! snapshot and checks it.

#![cfg(unix)]

use std::{
    fs,
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use contact_ms365::{
    contacts,
    directory::Index,
    record::Records,
    snapshot::{self, SNAPSHOT_FILE},
    store,
    sync::{Folder, Mailbox, StoredContact},
};

/// The host's country the index is built for.
const REGION: &str = "DE";

/// Set (to the data folder) in the child process: it writes snapshots until it is killed.
const CHILD_ENV: &str = "CONTACT_MS365_CRASH_CHILD";
/// Set in the child: the folder whose sub-folders `0` and `1` hold the two variants' snapshots
/// with their indexes (written by the parent once, so no child builds an index).
const CHILD_TEMPLATES_ENV: &str = "CONTACT_MS365_CRASH_CHILD_TEMPLATES";
/// The write number the child starts counting from.
const CHILD_START_ENV: &str = "CONTACT_MS365_CRASH_CHILD_START";
/// The name of this test (the child runs it again, alone).
const TEST_NAME: &str = "a_snapshot_write_killed_at_any_point_leaves_the_old_or_the_new_snapshot";
/// Contacts per mailbox.
const CONTACTS: usize = 10_000;
/// How many times the writer is killed.
const KILLS: usize = 50;
/// Hang guard for one wait on the child (never a timing assertion).
const GUARD: Duration = Duration::from_secs(120);
/// A child that was never killed stops on its own after this long.
const CHILD_LIFETIME: Duration = Duration::from_secs(300);

/// Mailbox `k`: variant `k % 2` of the contents (different names, numbers, folders and
/// colleagues), stamped with `k` so that every write is distinguishable.
fn mailbox(k: u64) -> Mailbox {
    stamped(&base(k % 2), k)
}

/// `base` stamped as write `k`.
fn stamped(base: &Mailbox, k: u64) -> Mailbox {
    let mut m = base.clone();
    m.last_sync = Some(format!("write {k}"));
    m
}

fn base(variant: u64) -> Mailbox {
    let folders = if variant == 0 {
        vec!["inbox-contacts", "friends"]
    } else {
        vec!["inbox-contacts", "customers", "customers/archive"]
    };
    let mut m = Mailbox {
        upn: "adele.vance@contoso.example".into(),
        ..Default::default()
    };
    for (f, name) in folders.iter().enumerate() {
        m.folders.insert(
            (*name).to_owned(),
            Folder {
                delta_link: Some(format!(
                    "http://127.0.0.1:1/v1.0/me/contactFolders/{name}/contacts/delta?$deltatoken=v{variant}-{f}"
                )),
                contacts: Records::default(),
            },
        );
    }
    for i in 0..CONTACTS {
        let folder = folders[i % folders.len()];
        let id = format!("AAMkAD{variant}-{i:06}-{}", "x".repeat(100));
        let contact = StoredContact {
            id: id.clone(),
            display_name: format!("Kontakt {i} Müller v{variant}"),
            given_name: format!("Kontakt {i}"),
            surname: format!("Müller v{variant}"),
            company: format!("Firma {} GmbH", i % 500),
            job_title: if variant == 0 { "Einkauf" } else { "Vertrieb" }.to_owned(),
            business: vec![format!("+49 89 {:07}", i * 3 + variant as usize)],
            home: if i % 3 == 0 {
                vec![format!("+49 30 {:07}", i)]
            } else {
                Vec::new()
            },
            mobile: (i % 2 == variant as usize).then(|| format!("+49 171 {:07}", i)),
            emails: vec![format!("kontakt{i}.v{variant}@example.com")],
        };
        m.folders
            .get_mut(folder)
            .expect("folder exists")
            .contacts
            .insert(contact.pack());
    }
    for i in 0..(50 + 25 * variant as usize) {
        let id = format!("colleague-{variant}-{i}");
        m.colleagues.insert(
            StoredContact {
                id,
                display_name: format!("Kollege {i}"),
                business: vec![format!("+49 89 5555 {i:03}")],
                ..Default::default()
            }
            .pack(),
        );
    }
    m
}

/// The child: writes mailbox `start`, `start + 1`, ... into `dir` until killed, printing
/// `begin K` before and `end K` after each write.
fn run_child(dir: &Path, templates: &Path, start: u64) -> ! {
    let mut variants: [Option<(Mailbox, Index)>; 2] = [None, None];
    let born = Instant::now();
    let mut out = std::io::stdout().lock();
    let mut k = start;
    while born.elapsed() < CHILD_LIFETIME {
        let (variant, index) = variants[(k % 2) as usize].get_or_insert_with(|| {
            let (loaded, note) = snapshot::load(&templates.join((k % 2).to_string()), REGION);
            assert_eq!(note, None, "the template loads");
            let snapshot::Loaded { mailbox, index } = loaded.expect("a template");
            (mailbox, index.expect("the template's index"))
        });
        let m = stamped(variant, k);
        writeln!(out, "crash-child begin {k}")
            .and_then(|()| out.flush())
            .ok();
        snapshot::save(dir, &m, Some(index)).expect("the child saves the snapshot");
        writeln!(out, "crash-child end {k}")
            .and_then(|()| out.flush())
            .ok();
        k += 1;
    }
    std::process::exit(3)
}

/// What one child reported: the last write it began and the last it finished.
#[derive(Debug, Default, Clone, Copy)]
struct Progress {
    began: Option<u64>,
    ended: Option<u64>,
}

/// Running estimates of how long a write and its file phase take (to spread the kills).
struct Estimate {
    write: Duration,
    file_phase: Duration,
}

impl Estimate {
    fn update(old: &mut Duration, seen: Duration) {
        *old = (*old * 3 + seen) / 4;
    }
}

/// What the parent saw of one child.
#[derive(Default)]
struct Watch {
    progress: Progress,
    begins: usize,
    begin_at: Option<Instant>,
    /// The write whose file phase the parent saw begin (the folder changed), and when.
    file_phase_seen: Option<(u64, Instant)>,
}

impl Watch {
    fn absorb(&mut self, marker: Marker, estimate: &mut Estimate) {
        match marker {
            Marker::Begin(k, at) => {
                self.begins += 1;
                self.progress.began = Some(k);
                self.begin_at = Some(at);
            }
            Marker::End(k, at) => {
                self.progress.ended = Some(k);
                if let Some(b) = self.begin_at {
                    Estimate::update(&mut estimate.write, at.duration_since(b));
                }
                if let Some((seen_k, t)) = self.file_phase_seen
                    && seen_k == k
                {
                    Estimate::update(&mut estimate.file_phase, at.saturating_duration_since(t));
                }
            }
        }
    }
}

enum Marker {
    Begin(u64, Instant),
    End(u64, Instant),
}

fn parse(line: &str, at: Instant) -> Option<Marker> {
    let rest = line.strip_prefix("crash-child ")?;
    let (what, k) = rest.split_once(' ')?;
    let k = k.trim().parse().ok()?;
    match what {
        "begin" => Some(Marker::Begin(k, at)),
        "end" => Some(Marker::End(k, at)),
        _ => None,
    }
}

/// What the folder holds: every file's name, size, modification time and inode.
fn folder_signature(dir: &Path) -> Vec<(String, u64, Option<std::time::SystemTime>, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut entries: Vec<_> = fs::read_dir(dir)
        .expect("list the data folder")
        .filter_map(Result::ok)
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((
                e.file_name().to_string_lossy().into_owned(),
                meta.len(),
                meta.modified().ok(),
                meta.ino(),
            ))
        })
        .collect();
    entries.sort();
    entries
}

/// The temporary files next to the snapshot.
fn temp_files(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .expect("list the data folder")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{SNAPSHOT_FILE}.tmp-")))
        .collect()
}

/// Loads the snapshot and checks that it is one of `allowed` writes, fully equal to what was
/// written (`bases` are the two variants, unstamped); returns which.
fn check_loads_one_of(dir: &Path, allowed: &[u64], bases: &[Mailbox; 2]) -> u64 {
    let (loaded, note) = snapshot::load(dir, REGION);
    assert_eq!(
        note, None,
        "the snapshot loads without a note (nothing set aside)"
    );
    let loaded = loaded.expect("a snapshot is there");
    assert!(loaded.index.is_some(), "the index written with it is used");
    let mut loaded = loaded.mailbox;
    let stamp = loaded.last_sync.clone().unwrap_or_default();
    let k: u64 = stamp
        .strip_prefix("write ")
        .and_then(|k| k.parse().ok())
        .unwrap_or_else(|| panic!("unexpected stamp {stamp:?}"));
    assert!(
        allowed.contains(&k),
        "the snapshot is write {k}; only the old or the new write ({allowed:?}) may be there"
    );
    loaded.last_sync = None;
    assert!(
        loaded == bases[(k % 2) as usize],
        "write {k} loaded but differs from what was written"
    );
    k
}

/// Killing the snapshot writer (SIGKILL) at 50 different points, most of them inside a write,
/// always leaves a snapshot that loads and equals the last finished write or the one under
/// way; the killed writers' temporary files never break the next load or save and are cleaned
/// up by the next write.
#[test]
fn a_snapshot_write_killed_at_any_point_leaves_the_old_or_the_new_snapshot() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        let start = std::env::var(CHILD_START_ENV)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let templates = std::env::var_os(CHILD_TEMPLATES_ENV).expect("the templates folder");
        run_child(Path::new(&dir), Path::new(&templates), start);
    }

    // The two variants with their indexes, for the children to load.
    let bases = [base(0), base(1)];
    let templates = tempfile::tempdir().expect("a templates folder");
    let indexes = bases.each_ref().map(|m| contacts::build_index(m, REGION));
    for (v, (m, index)) in bases.iter().zip(&indexes).enumerate() {
        snapshot::save(&templates.path().join(v.to_string()), m, Some(index)).expect("a template");
    }

    let data = tempfile::tempdir().expect("a data folder");
    let dir = data.path();
    // The parent's own first write: the "old" snapshot of the first kill. It and a few timed
    // file writes of the same size (in a sibling folder on the same file system) seed the
    // estimates of how long a whole write takes and how long its file phase (temporary file
    // written, fsync, rename) takes.
    let first = mailbox(0);
    let started = Instant::now();
    snapshot::save(dir, &first, Some(&indexes[0])).expect("the first save");
    let whole = started.elapsed();
    let bytes = fs::read(dir.join(SNAPSHOT_FILE)).expect("read the first snapshot");
    let scratch = tempfile::tempdir_in(dir.parent().expect("a parent")).expect("scratch");
    let file_phase = (0..3)
        .map(|_| {
            let started = Instant::now();
            store::write_atomic(&scratch.path().join(SNAPSHOT_FILE), &bytes).expect("write");
            started.elapsed()
        })
        .max()
        .expect("three writes");
    drop((first, bytes, scratch));
    let mut estimate = Estimate {
        write: whole,
        file_phase,
    };
    let mut on_disk = 0u64;
    let mut next = 1u64;
    let mut inside_a_write = 0usize;
    let mut inside_the_file_phase = 0usize;
    let mut most_temps = 0usize;

    for i in 0..KILLS {
        let mut child = Command::new(std::env::current_exe().expect("the test binary"))
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir)
            .env(CHILD_START_ENV, next.to_string())
            .env(CHILD_TEMPLATES_ENV, templates.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the writer");
        let stdout = child.stdout.take().expect("piped");
        let (tx, markers) = mpsc::channel();
        let reader = thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(m) = parse(&line, Instant::now()) {
                    let _ = tx.send(m);
                }
            }
        });
        let mut watch = Watch::default();

        // Let 0 or 1 write of this child finish, then kill at a varied point of the next one:
        // even kills anywhere from its begin to a little past its expected end; odd kills
        // inside its file phase, from the moment the folder changes.
        let target_begin = 1 + (i / 2) % 2;
        let fraction = ((i * 37) % 61) as f64 / 50.0;
        let deadline = Instant::now() + GUARD;
        while watch.begins < target_begin {
            let left = deadline.saturating_duration_since(Instant::now());
            match markers.recv_timeout(left) {
                Ok(m) => watch.absorb(m, &mut estimate),
                Err(e) => {
                    let _ = child.kill();
                    panic!("kill {i}: the writer reported nothing ({e}): hang guard");
                }
            }
        }
        let began = watch.progress.began.expect("a write began");
        let (from, delay) = if i % 2 == 0 {
            (watch.begin_at, estimate.write.mul_f64(fraction))
        } else {
            // Poll for the first change in the folder (the temporary file appearing, or any
            // other change a writer makes): the sign that the file phase is under way.
            let before = folder_signature(dir);
            loop {
                if folder_signature(dir) != before {
                    watch.file_phase_seen = Some((began, Instant::now()));
                    break;
                }
                for m in markers.try_iter() {
                    watch.absorb(m, &mut estimate);
                }
                if watch.progress.ended == Some(began) {
                    break; // Missed it: kill now, between writes.
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!("kill {i}: no temporary file appeared (hang guard)");
                }
                thread::sleep(Duration::from_micros(200));
            }
            (
                watch.file_phase_seen.map(|(_, at)| at),
                estimate.file_phase.mul_f64(fraction),
            )
        };
        if let Some(from) = from {
            thread::sleep(delay.saturating_sub(from.elapsed()));
        }
        child.kill().expect("SIGKILL the writer");
        let status = child.wait().expect("reap the writer");
        assert!(
            !status.success(),
            "kill {i}: the writer ended on its own ({status})"
        );
        reader.join().expect("the reader thread");
        // Everything it printed before it died.
        for m in markers.try_iter() {
            watch.absorb(m, &mut estimate);
        }
        let progress = watch.progress;

        let began = progress.began.expect("a write began");
        let in_file_phase = watch.file_phase_seen.is_some() && progress.ended != Some(began);
        if in_file_phase {
            inside_the_file_phase += 1;
        }
        let finished = progress.ended.unwrap_or(on_disk);
        let mid_write = progress.ended != Some(began);
        if mid_write {
            inside_a_write += 1;
        }
        let allowed = if mid_write {
            vec![finished, began]
        } else {
            vec![finished]
        };
        let temps = temp_files(dir);
        most_temps = most_temps.max(temps.len());
        assert!(
            temps.len() <= 1,
            "kill {i}: temporary files accumulate: {temps:?}"
        );
        on_disk = check_loads_one_of(dir, &allowed, &bases);
        next = began + 1;
        eprintln!(
            "kill {i}: {delay:?} into {} of write {began} ({:?} for a write, {:?} for its file \
             phase); {} loaded; {} temp file(s)",
            if i % 2 == 0 {
                "the whole"
            } else {
                "the file phase"
            },
            estimate.write,
            estimate.file_phase,
            if on_disk == began { "new" } else { "old" },
            temps.len()
        );
    }

    assert!(
        inside_a_write * 3 >= KILLS && inside_the_file_phase * 4 >= KILLS,
        "only {inside_a_write} of {KILLS} kills landed inside a write, \
         {inside_the_file_phase} inside its file phase: the test did not test what it claims"
    );
    // A save and a load after all the kills work, and no leftover remains.
    let last = mailbox(next);
    let index = &indexes[(next % 2) as usize];
    snapshot::save(dir, &last, Some(index)).expect("a save after the kills");
    check_loads_one_of(dir, &[next], &bases);
    assert_eq!(temp_files(dir), Vec::<String>::new(), "no leftover remains");
    let names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec![SNAPSHOT_FILE.to_owned()],
        "nothing was set aside"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(dir.join(SNAPSHOT_FILE))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "the snapshot is readable by the user only");
    eprintln!(
        "{inside_a_write} of {KILLS} kills landed inside a write, {inside_the_file_phase} inside \
         its file phase; at most {most_temps} temp file(s) at once"
    );
}
