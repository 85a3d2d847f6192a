//! Contact sync against the in-process Microsoft 365 emulator with a seeded 100,000-contact
//! mailbox, each figure against a baseline measured in the same run.
//!
//! Run: `cargo bench -p contact-ms365 --bench sync`
//!
//! Faster: `cargo bench -p contact-ms365 --bench sync -- --warm-up-time 1 --measurement-time 5`
//! (criterion options), `SYNC_BENCH_ROUNDS=3` (rounds of the printed interleaved comparison,
//! default 5), `SYNC_BENCH_CONTACTS=20000` (a smaller mailbox, for trying things out only: the
//! targets are stated for 100,000). A filter such as `-- warm_start` runs only matching
//! criterion groups (the printed figures always run).
//!
//! The emulator serves Adele Vance's mailbox, reseeded with 100,000 generated contacts (the
//! messy-number generator of `ms365-emulator`: German, Swiss, Austrian, US and UK numbers in many
//! notations) spread over the seeded folders "Contacts" (60 %), "Kunden" (25 %) and "VIP" (15 %).
//! A Graph access token is minted through the control API.
//!
//! - `initial_sync/plugin`: [`sync::sync`] from an empty [`Mailbox`] (folder walk, one delta
//!   round per folder with `Prefer: odata.maxpagesize=1000`, at most 4 requests in flight),
//!   against `initial_sync/bare_reqwest`: the same delta pages fetched with a bare reqwest loop
//!   (same client settings, same `Prefer`, same URLs, one task per folder and the same 4-permit
//!   semaphore as the plugin) that reads every body fully and only looks for
//!   `@odata.nextLink` with a byte search. Concurrent like the plugin because that is what
//!   the network and the emulator see from the plugin; a sequential loop would measure a
//!   different request schedule, not the plugin's own overhead. The baseline does not walk the
//!   folder tree (it is handed the folder ids), so the plugin's 3 small folder-listing requests
//!   count against it. Target: plugin ≤ 1.5 × bare.
//! - `delta_sync/10_changes`: after a full sync, 10 contacts spread over the 3 folders are
//!   changed through the control API (untimed), then [`sync::sync`] runs from the previous
//!   mailbox (timed), repeatedly. The setup checks the emulator's request log and panics unless
//!   the delta round is exactly one request per folder (plus the folder walk). Reported against
//!   the full sync.
//! - `warm_start/snapshot_load_with_index`: what the plugin does at start before it answers a
//!   call ([`contacts::warm_start`](contact_ms365::contacts)): [`snapshot::load`] of a
//!   100,000-contact snapshot with the index written by the last sync; against
//!   `warm_start/fs_read` (reading the file's bytes alone). `warm_start/build_index` is what a
//!   start costs when the index must be built from the contacts instead (the host's country
//!   changed, or another index format). Target: ≤ 300 ms.
//!
//! Before the criterion groups it prints, from interleaved runs (median of
//! `SYNC_BENCH_ROUNDS`), the initial sync against the bare fetch, the delta sync against the
//! full sync, the warm start against the file read, and the memory per contact. Memory is
//! measured in a child process (this executable run again with `SYNC_BENCH_CHILD` set) that
//! holds no emulator: it reads `VmRSS`/`VmHWM` from `/proc/self/status` once its runtime and
//! HTTP client exist, then syncs the 100,000 contacts from the parent's emulator over loopback
//! and builds the index, keeping both the mailbox and the index as the plugin does (which then
//! gives freed memory back to the system: [`contacts::release_freed_memory`]); a second child
//! does the same after a warm start from the snapshot. Target: ≤ 1 KiB per contact, after the
//! build and at the peak (`VmHWM`).

use std::{
    hint::black_box,
    io::{BufRead, Write},
    path::Path,
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use contact_ms365::{
    contacts,
    directory::Index,
    snapshot,
    sync::{self, CONTACT_SELECT, MAX_IN_FLIGHT, MAX_PAGE, Mailbox, SyncRequest},
};
use contact_ms365::{graph::Graph, graph::RetryPolicy};
use criterion::Criterion;
use ms365_emulator::{EmulatorConfig, EmulatorHandle, tenant};
use secrecy::SecretString;
use tokio::{runtime::Runtime, sync::Semaphore};

const DEFAULT_CONTACTS: usize = 100_000;
/// The region used for the index (the plugin's default comes from the host; Germany here).
const REGION: &str = "DE";
/// The environment variable that turns this executable into the memory-measuring child.
const CHILD_ENV: &str = "SYNC_BENCH_CHILD";

fn contacts_wanted() -> usize {
    std::env::var("SYNC_BENCH_CONTACTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CONTACTS)
}

fn rounds() -> usize {
    std::env::var("SYNC_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1)
}

/// The plugin's runtime shape (`runtime.rs`: multi-threaded, 2 workers).
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Everything a sync needs, owned.
struct Client {
    graph: Graph,
    http: reqwest::Client,
    token: SecretString,
    limiter: Arc<Semaphore>,
    policy: RetryPolicy,
}

impl Client {
    fn new(graph_url: &str, token: &str) -> Client {
        let http = contact_ms365::http::client().expect("http client");
        Client {
            graph: Graph::new(http.clone(), graph_url),
            http,
            token: SecretString::from(token.to_owned()),
            limiter: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            policy: RetryPolicy::default(),
        }
    }

    /// [`sync::sync`] from `previous`, as the plugin's sync loop calls it (progress reports
    /// included; here they go nowhere, in the plugin to a host callback).
    async fn sync(&self, previous: &Mailbox) -> Mailbox {
        let request = SyncRequest {
            graph: &self.graph,
            token: &self.token,
            directory: false,
            limiter: &self.limiter,
            policy: &self.policy,
            progress: Arc::new(|p: sync::Progress| {
                black_box(p);
            }),
        };
        sync::sync(&request, previous).await.expect("sync")
    }

    /// The baseline: every folder's initial delta round with a bare reqwest loop; bodies are
    /// read fully and dropped. Returns the pages and bytes received.
    async fn bare_fetch(&self, folders: &[String]) -> (usize, usize) {
        let mut tasks = tokio::task::JoinSet::new();
        for id in folders {
            let url = format!(
                "{}/me/contactFolders/{}/contacts/delta?$select={CONTACT_SELECT}",
                self.graph.base(),
                url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
            );
            let http = self.http.clone();
            let token = secrecy::ExposeSecret::expose_secret(&self.token).to_owned();
            let limiter = self.limiter.clone();
            tasks.spawn(async move {
                let prefer = format!("odata.maxpagesize={MAX_PAGE}");
                let (mut pages, mut bytes) = (0, 0);
                let mut next = Some(url);
                while let Some(url) = next.take() {
                    let body = {
                        let _permit = limiter.acquire().await.expect("semaphore");
                        let response = http
                            .get(&url)
                            .bearer_auth(&token)
                            .header("Prefer", &prefer)
                            .send()
                            .await
                            .expect("bare request");
                        assert!(response.status().is_success(), "{}", response.status());
                        response.bytes().await.expect("bare body")
                    };
                    pages += 1;
                    bytes += body.len();
                    next = next_link(&body);
                }
                (pages, bytes)
            });
        }
        let (mut pages, mut bytes) = (0, 0);
        while let Some(done) = tasks.join_next().await {
            let (p, b) = done.expect("bare task");
            pages += p;
            bytes += b;
        }
        (pages, bytes)
    }
}

/// `@odata.nextLink` found by a byte search (no JSON parsing; Graph's links hold no escapes).
fn next_link(body: &[u8]) -> Option<String> {
    const KEY: &[u8] = br#""@odata.nextLink":""#;
    let start = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let len = body[start..].iter().position(|&b| b == b'"')?;
    Some(String::from_utf8_lossy(&body[start..start + len]).into_owned())
}

fn contact_count(m: &Mailbox) -> usize {
    m.folders.values().map(|f| f.contacts.len()).sum()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// CPU time of this process (user + system; Linux `USER_HZ` is 100), emulator included.
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which ends with the last ')': state is field 3, utime 14.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

/// `VmRSS` and `VmHWM` of this process in bytes (Linux).
fn memory() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// The child: sync (mode `sync`) or load the snapshot (mode `warm`), build the index, report
/// memory as one line `rss before=.. after=.. peak=.. contacts=..` on stdout. Reads the Graph
/// URL and the token (or the snapshot folder) from stdin, so no secret is in the environment.
fn child(mode: &str) {
    let mut lines = std::io::stdin().lock().lines();
    let mut line = || lines.next().expect("stdin line").expect("stdin");
    let rt = runtime();
    let (mailbox, index, before) = match mode {
        "sync" => {
            let (graph, token) = (line(), line());
            let client = Client::new(&graph, &token);
            let (before, _) = memory().expect("/proc/self/status");
            let mailbox = rt.block_on(client.sync(&Mailbox::default()));
            let (synced, _) = memory().expect("/proc/self/status");
            println!("mailbox={synced}");
            let index = contacts::build_index(&mailbox, REGION);
            // As the plugin does once a new index is installed.
            contacts::release_freed_memory();
            (mailbox, index, before)
        }
        "warm" => {
            let dir = line();
            let (before, _) = memory().expect("/proc/self/status");
            let (mailbox, index) = warm_start(Path::new(&dir));
            contacts::release_freed_memory();
            let (loaded, _) = memory().expect("/proc/self/status");
            // The index comes with the snapshot: the mailbox alone is not measured apart.
            println!("mailbox={loaded}");
            (mailbox, index, before)
        }
        other => panic!("unknown child mode {other}"),
    };
    let (after, peak) = memory().expect("/proc/self/status");
    println!(
        "rss before={before} after={after} peak={peak} contacts={}",
        index.len()
    );
    black_box((&mailbox, &index));
}

/// What the plugin does at start before it answers a call: the snapshot read back with its
/// index (built from the contacts only when the snapshot has none for this country).
fn warm_start(dir: &Path) -> (Mailbox, Index) {
    let (loaded, note) = snapshot::load(dir, REGION);
    assert!(note.is_none(), "{note:?}");
    let snapshot::Loaded { mailbox, index } = loaded.expect("snapshot");
    let index = index.unwrap_or_else(|| contacts::build_index(&mailbox, REGION));
    (mailbox, index)
}

/// What the child measured (bytes of RSS).
struct Memory {
    /// Before syncing or loading.
    before: u64,
    /// With the mailbox only.
    mailbox: u64,
    /// With the mailbox and the index.
    after: u64,
    /// `VmHWM` at the end.
    peak: u64,
    /// Entries in the index.
    contacts: u64,
}

impl Memory {
    fn per_contact(&self, rss: u64) -> f64 {
        rss.saturating_sub(self.before) as f64 / self.contacts as f64
    }

    fn describe(&self) -> String {
        format!(
            "mailbox {:.0} B/contact, mailbox + index {:.0} B/contact, peak {:.0} B/contact (target ≤ 1024 after and at the peak: {}); baseline RSS {:.1} MB",
            self.per_contact(self.mailbox),
            self.per_contact(self.after),
            self.per_contact(self.peak),
            if self
                .per_contact(self.after)
                .max(self.per_contact(self.peak))
                <= 1024.0
            {
                "met"
            } else {
                "NOT met"
            },
            self.before as f64 / 1e6
        )
    }
}

/// Runs the child in `mode` with `input` on stdin.
fn measure_in_child(mode: &str, input: &str) -> Memory {
    let mut child = Command::new(std::env::current_exe().expect("current exe"))
        .env(CHILD_ENV, mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the measuring child");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write to the child");
    let out = child.wait_with_output().expect("child output");
    assert!(out.status.success(), "the measuring child failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let mailbox: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("mailbox="))
        .and_then(|v| v.parse().ok())
        .expect("the child's mailbox line");
    let line = text
        .lines()
        .find(|l| l.starts_with("rss "))
        .expect("the child's rss line");
    let value = |key: &str| -> u64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .expect("rss field")
    };
    Memory {
        before: value("before"),
        mailbox,
        after: value("after"),
        peak: value("peak"),
        contacts: value("contacts"),
    }
}

/// Changes 10 contacts spread over the folders (4, 3, 3 for three folders), round `round`.
fn change_ten(emu: &EmulatorHandle, mailbox: &Mailbox, round: usize) {
    let folders: Vec<_> = mailbox.folders.values().collect();
    for k in 0..10 {
        let folder = folders[k % folders.len()];
        let id = folder
            .contacts
            .keys()
            .nth((k * 997 + round * 13) % folder.contacts.len())
            .expect("a contact");
        emu.control()
            .update_contact(
                Some(tenant::ADELE_UPN),
                id,
                &serde_json::json!({ "jobTitle": format!("Changed {round}/{k}") }),
            )
            .expect("update contact");
    }
}

/// Runs one delta sync after 10 changes and checks the request log: one delta request per
/// folder, everything else the folder walk. Returns the new mailbox and a description.
fn checked_delta(
    rt: &Runtime,
    emu: &EmulatorHandle,
    client: &Client,
    previous: &Mailbox,
    round: usize,
) -> (Mailbox, Duration, Vec<String>) {
    change_ten(emu, previous, round);
    emu.control().clear_requests();
    let started = Instant::now();
    let next = rt.block_on(client.sync(previous));
    let took = started.elapsed();
    let log = emu.control().requests();
    let delta: Vec<_> = log
        .iter()
        .filter(|e| e.path.ends_with("/contacts/delta"))
        .collect();
    for id in previous.folders.keys() {
        let path = format!("/v1.0/me/contactFolders/{id}/contacts/delta");
        let n = delta.iter().filter(|e| e.path == path).count();
        assert_eq!(
            n, 1,
            "delta requests for folder {id}: {n} (expected exactly 1)"
        );
    }
    assert_eq!(delta.len(), previous.folders.len(), "delta requests");
    assert!(
        delta
            .iter()
            .all(|e| e.query.as_deref().unwrap_or("").contains("deltatoken")),
        "every delta request continues from a delta link"
    );
    assert!(
        log.iter().all(|e| e.status == Some(200)),
        "every request succeeded"
    );
    let walk = log
        .iter()
        .filter(|e| !e.path.ends_with("/contacts/delta"))
        .all(|e| e.path == "/v1.0/me/contactFolders" || e.path.ends_with("/childFolders"));
    assert!(walk, "only the folder walk besides the delta requests");
    let changed: usize = next
        .folders
        .iter()
        .map(|(id, f)| {
            f.contacts
                .values()
                .filter(|c| previous.folders[id].contacts.get(c.id()) != Some(*c))
                .count()
        })
        .sum();
    assert_eq!(changed, 10, "the delta brought the 10 changes");
    let described = log
        .iter()
        .map(|e| {
            let short = e
                .path
                .replace("%3D", "=")
                .replace(tenant::ADELE_CONTACTS_FOLDER_ID, "{Contacts}")
                .replace(tenant::ADELE_KUNDEN_FOLDER_ID, "{Kunden}")
                .replace(tenant::ADELE_VIP_FOLDER_ID, "{VIP}");
            format!("{} {short}", e.method)
        })
        .collect();
    (next, took, described)
}

fn benches(c: &mut Criterion) {
    let n = contacts_wanted();
    let emu = EmulatorHandle::spawn(EmulatorConfig::default()).expect("emulator");
    let started = Instant::now();
    emu.control()
        .seed_contacts(tenant::ADELE_UPN, n)
        .expect("seed contacts");
    println!(
        "setup: emulator seeded with {n} contacts in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let token = emu
        .control()
        .mint_access_token(
            tenant::ADELE_UPN,
            &emu.client_id(),
            &["User.Read", "Contacts.Read"],
            7 * 24 * 3600,
        )
        .expect("mint token");
    let rt = runtime();
    let client = Client::new(&emu.graph_url(), &token);

    // A first full sync (warms connections and the emulator's caches) and its folders.
    let full = rt.block_on(client.sync(&Mailbox::default()));
    assert_eq!(contact_count(&full), n, "every contact synced");
    let folders: Vec<String> = full.folders.keys().cloned().collect();
    let (pages, bytes) = rt.block_on(client.bare_fetch(&folders));
    println!(
        "initial sync: {} folders, {pages} delta pages, {:.1} MB of JSON",
        folders.len(),
        bytes as f64 / 1e6
    );

    // Initial sync against the bare fetch, interleaved.
    let rounds = rounds();
    let (mut plugin, mut bare) = (Vec::new(), Vec::new());
    let (mut plugin_cpu, mut bare_cpu) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (t, c) = (Instant::now(), cpu());
        let m = rt.block_on(client.sync(&Mailbox::default()));
        plugin.push(t.elapsed());
        plugin_cpu.push(cpu() - c);
        drop(black_box(m));
        let (t, c) = (Instant::now(), cpu());
        black_box(rt.block_on(client.bare_fetch(&folders)));
        bare.push(t.elapsed());
        bare_cpu.push(cpu() - c);
    }
    let (plugin, bare) = (median(plugin), median(bare));
    let ratio = plugin.as_secs_f64() / bare.as_secs_f64();
    println!(
        "initial sync: plugin {:.0} ms, bare reqwest fetch {:.0} ms (median of {rounds}): {ratio:.2}× (target ≤ 1.5×: {})",
        ms(plugin),
        ms(bare),
        if ratio <= 1.5 { "met" } else { "NOT met" }
    );
    println!(
        "initial sync: CPU time of the whole process (the emulator's included): plugin {:.0} ms, bare {:.0} ms (median of {rounds})",
        ms(median(plugin_cpu)),
        ms(median(bare_cpu))
    );

    // Delta with 10 changes, checked against the request log.
    let mut previous = full.clone();
    let mut deltas = Vec::new();
    let mut walk = Vec::new();
    for round in 0..rounds {
        let (next, took, log) = checked_delta(&rt, &emu, &client, &previous, round);
        deltas.push(took);
        walk = log;
        previous = next;
    }
    let delta = median(deltas);
    let clones: Vec<Duration> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            black_box(previous.clone());
            t.elapsed()
        })
        .collect();
    println!(
        "delta sync, 10 changes: {} requests, one delta request per folder (checked): {}",
        walk.len(),
        walk.join(", ")
    );
    println!(
        "delta sync, 10 changes: {:.1} ms (median of {rounds}) against the full sync {:.0} ms: {:.3}×",
        ms(delta),
        ms(plugin),
        delta.as_secs_f64() / plugin.as_secs_f64()
    );
    println!(
        "delta sync, for reference: one clone of the {n}-contact mailbox (which a delta round starts from) {:.1} ms",
        ms(median(clones))
    );

    // Warm start: snapshot load + index build against reading the file.
    let dir = tempfile::tempdir().expect("temp dir");
    let t = Instant::now();
    let full_index = contacts::build_index(&full, REGION);
    snapshot::save(dir.path(), &full, Some(&full_index)).expect("save snapshot");
    let save = t.elapsed();
    let file = dir.path().join(snapshot::SNAPSHOT_FILE);
    let size = std::fs::metadata(&file).expect("snapshot file").len();
    let (mut read, mut load, mut rebuild) = (vec![], vec![], vec![]);
    for _ in 0..rounds {
        let t = Instant::now();
        black_box(std::fs::read(&file).expect("read"));
        read.push(t.elapsed());
        let t = Instant::now();
        let (mailbox, index) = black_box(warm_start(dir.path()));
        load.push(t.elapsed());
        assert_eq!(
            index.len(),
            full_index.len(),
            "the snapshot's index is used"
        );
        let t = Instant::now();
        black_box(contacts::build_index(&mailbox, REGION));
        rebuild.push(t.elapsed());
    }
    let (read, load, rebuild) = (median(read), median(load), median(rebuild));
    println!(
        "warm start: snapshot {:.1} MB (saved in {:.0} ms); load with its index {:.0} ms (median of {rounds}; target ≤ 300 ms: {}); fs::read alone {:.1} ms: {:.1}×; for reference, building the index from the contacts instead (another country) {:.0} ms",
        size as f64 / 1e6,
        ms(save),
        ms(load),
        if load <= Duration::from_millis(300) {
            "met"
        } else {
            "NOT met"
        },
        ms(read),
        load.as_secs_f64() / read.as_secs_f64(),
        ms(rebuild)
    );

    // Memory, in a child process without the emulator.
    let synced = measure_in_child("sync", &format!("{}\n{token}\n", emu.graph_url()));
    println!(
        "memory held after the initial sync (child process, no emulator): {}",
        synced.describe()
    );
    let warm = measure_in_child("warm", &format!("{}\n", dir.path().display()));
    println!(
        "memory held after the warm start (child process): {}",
        warm.describe()
    );

    // Criterion groups.
    let mut group = c.benchmark_group("initial_sync");
    group.sample_size(10);
    group.bench_function("plugin", |b| {
        b.iter_with_large_drop(|| rt.block_on(client.sync(&Mailbox::default())))
    });
    group.bench_function("bare_reqwest", |b| {
        b.iter(|| rt.block_on(client.bare_fetch(&folders)))
    });
    group.finish();

    let mut group = c.benchmark_group("delta_sync");
    group.sample_size(10);
    let mut round = rounds;
    group.bench_function("10_changes", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                change_ten(&emu, &previous, round);
                round += 1;
                let t = Instant::now();
                let next = rt.block_on(client.sync(&previous));
                total += t.elapsed();
                previous = next;
            }
            emu.control().clear_requests();
            total
        })
    });
    group.finish();

    let mut group = c.benchmark_group("warm_start");
    group.sample_size(10);
    group.bench_function("snapshot_load_with_index", |b| {
        b.iter_with_large_drop(|| warm_start(dir.path()))
    });
    group.bench_function("build_index", |b| {
        b.iter(|| contacts::build_index(&full, REGION))
    });
    group.bench_function("fs_read", |b| {
        b.iter(|| std::fs::read(&file).expect("read"))
    });
    group.finish();
    emu.shutdown();
}

fn main() {
    if let Ok(mode) = std::env::var(CHILD_ENV) {
        child(&mode);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
}
