//! Concurrency of the hot paths (issue 6, item 4): many host threads call `on_incoming_call`
//! and `search_phonebook` while contact syncs replace the data and presence flows both ways.
//!
//! Run: `cargo test -p contact-ms365 --test concurrency`
//!
//! The real integration object, through the same `host_api::Integration` calls the ABI makes,
//! signed in with the host's own Microsoft 365 login (a token the emulator mints for Contact
//! Desktop's app, handed out by `sso_token`) against the in-process emulator.
//!
//! **The data.** Besides a seeded mailbox, `TAGGED` contacts carry their *generation* in every
//! field the answers show: contact `k` of generation `g` is named `Torn{k} Gen{g}`, works as
//! `Gen{g}` at `Generation {g} GmbH` and has the e-mail `torn{k}.gen{g}@…`; its number
//! (`+31 20 5…k`) never changes. The main thread moves the mailbox from generation `g` to
//! `g + 1` (one control call per contact, while no sync runs) and then asks for a sync, so the
//! plugin only ever syncs a mailbox that is entirely of one generation.
//!
//! **What is asserted**, for every answer of every reader thread:
//! - *No torn read*: a caller answer's name, company, job title, number and id all belong to
//!   the same contact of the same generation; a search answer's entries are all tagged
//!   contacts of one and the same generation, each consistent in itself (e-mail included).
//! - *Old or new, never older*: the generation answered lies between the last generation whose
//!   sync had returned before the call (`published`) and the generation the mailbox was being
//!   moved to after it (`written`).
//! - *Always answered*: a known number is always found and the search never comes back empty
//!   (the index is replaced whole, never emptied on the way).
//! - *No deadlock*: every thread (readers, host status changes, Teams presence changes) ends
//!   within a hang guard once told to stop, and every sync returns within its time-out.
//! - The test really ran concurrently: readers saw several generations, answered while a
//!   sync was in flight, and presence moved both ways meanwhile.
//!
//! **How it would fail.** Had the index been patched in place contact by contact, or a search
//! read the current index anew per entry, a 200-entry `torn` search taken during an install
//! would hold two generations, and a caller answer could pair `Torn7 Gen3` with
//! `Generation 4 GmbH`; `checker_rejects_torn_answers` shows the checks reject exactly such
//! answers. Had a reader been able to see an empty index between two installs, a known number
//! would come back unknown. A lock held across a sync (or a lock-order cycle between the
//! host-facing calls and the sync / presence tasks) would leave a thread stuck past the guard.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{ROption, RResult, RString},
};
use contact_ms365::Ms365Integration;
use host_api::{
    CallerInfo, ContactStatus, Host_TO, IncomingCall, Integration, LogLevel, MicrosoftState,
    PhonebookEntry, PresenceState,
};
use ms365_emulator::{EmulatorConfig, EmulatorHandle, tenant::ADELE_UPN};

mod support;
use support::{Seen, SsoHost, context, host_token, settings, tagged, wait_until};

/// Hang guard for the sign-in and presence sync to become active.
const GUARD: Duration = Duration::from_secs(60);

/// Generated contacts in the mailbox besides the tagged ones.
const SEEDED: usize = 2_000;
/// Contacts whose fields carry the generation.
const TAGGED: usize = 300;
/// Generation changes (each followed by a sync) while the readers run.
const GENERATIONS: u64 = 5;
/// Threads calling `on_incoming_call` and `search_phonebook`.
const READERS: usize = 8;
/// Longest a thread may take to finish once told to stop.
const HANG_GUARD: Duration = Duration::from_secs(30);
/// Longest one sync may take.
const SYNC_TIMEOUT_MS: u32 = 120_000;

/// The number of tagged contact `k` (Amsterdam: no seeded contact has a Dutch number).
fn e164(k: usize) -> String {
    format!("+31205{k:06}")
}

/// The generation in `Torn{k} Gen{g}`, and `k`.
fn parse_name(name: &str) -> Option<(usize, u64)> {
    let rest = name.strip_prefix("Torn")?;
    let (k, g) = rest.split_once(" Gen")?;
    Some((k.parse().ok()?, g.parse().ok()?))
}

/// Checks a caller answer for tagged contact `k`; its generation.
fn check_caller(k: usize, ids: &[String], caller: &CallerInfo) -> Result<u64, String> {
    let (ck, g) = parse_name(&caller.display_name)
        .ok_or_else(|| format!("not a tagged contact: {caller:?}"))?;
    let consistent = ck == k
        && caller.company.as_str() == format!("Generation {g} GmbH")
        && caller.job_title.as_str() == format!("Gen{g}")
        && caller.number.as_str() == e164(k)
        && caller.contact_id.as_str() == ids[k];
    if consistent {
        Ok(g)
    } else {
        Err(format!("torn caller answer for contact {k}: {caller:?}"))
    }
}

/// Checks one search entry; its contact and generation.
fn check_entry(ids: &[String], e: &PhonebookEntry) -> Result<(usize, u64), String> {
    let (k, g) =
        parse_name(&e.display_name).ok_or_else(|| format!("not a tagged contact: {e:?}"))?;
    let consistent = k < ids.len()
        && e.company.as_str() == format!("Generation {g} GmbH")
        && e.job_title.as_str() == format!("Gen{g}")
        && e.emails.len() == 1
        && e.emails[0].as_str() == format!("torn{k:04}.gen{g}@example.org")
        && e.numbers.len() == 1
        && e.numbers[0].number.as_str() == e164(k)
        && e.contact_id.as_str() == ids[k];
    if consistent {
        Ok((k, g))
    } else {
        Err(format!("torn search entry: {e:?}"))
    }
}

/// Checks a search answer: at least `min` entries, all of one generation; that generation.
fn check_search(ids: &[String], entries: &[PhonebookEntry], min: usize) -> Result<u64, String> {
    if entries.len() < min {
        return Err(format!(
            "{} entries, expected at least {min}",
            entries.len()
        ));
    }
    let mut generation = None;
    for e in entries {
        let (_, g) = check_entry(ids, e)?;
        match generation {
            None => generation = Some(g),
            Some(first) if first != g => {
                return Err(format!(
                    "one search answer mixes generations {first} and {g}: {:?}",
                    entries.iter().map(|e| &e.display_name).collect::<Vec<_>>()
                ));
            }
            Some(_) => {}
        }
    }
    generation.ok_or_else(|| "empty search answer".to_owned())
}

/// The shared generation counters and what the readers saw.
#[derive(Default)]
struct Progress {
    /// The last generation whose sync had returned.
    published: AtomicU64,
    /// The generation the mailbox is being (or was) moved to.
    written: AtomicU64,
    /// Answers given while a sync for a newer generation was pending.
    during_sync: AtomicUsize,
    /// Answers per generation.
    per_generation: Mutex<Vec<usize>>,
    answers: AtomicUsize,
}

impl Progress {
    /// Checks that `g` is between the generation published before the call and the one
    /// written after it, and counts it.
    fn observe(&self, before: u64, g: u64, after: u64) -> Result<(), String> {
        if g < before || g > after {
            return Err(format!(
                "generation {g} answered, but the call started after generation {before} was \
                 synced and ended with generation {after} at most in the mailbox"
            ));
        }
        if before < after {
            self.during_sync.fetch_add(1, Ordering::Relaxed);
        }
        self.answers.fetch_add(1, Ordering::Relaxed);
        let mut per = self.per_generation.lock().unwrap();
        if per.len() <= g as usize {
            per.resize(g as usize + 1, 0);
        }
        per[g as usize] += 1;
        Ok(())
    }
}

/// A reader: calls for tagged numbers (E.164 and as a German phone system spells a foreign
/// number) and searches, checking every answer, until `stop`.
fn reader(
    n: usize,
    i: &Ms365Integration,
    ids: &[String],
    progress: &Progress,
    stop: &AtomicBool,
) -> Result<(), String> {
    let mut k = n * 37;
    while !stop.load(Ordering::Acquire) {
        k = (k + 7) % ids.len();
        let before = progress.published.load(Ordering::SeqCst);
        let g = match k % 4 {
            0 | 1 => {
                let number = if k.is_multiple_of(2) {
                    e164(k)
                } else {
                    format!("0031 20 5{k:06}")
                };
                let call = IncomingCall {
                    call_id: format!("call-{n}-{k}").into(),
                    number: number.into(),
                    extensions: RString::new(),
                };
                match i.on_incoming_call(call) {
                    RResult::ROk(ROption::RSome(caller)) => check_caller(k, ids, &caller)?,
                    RResult::ROk(ROption::RNone) => {
                        return Err(format!("known number of contact {k} not found"));
                    }
                    RResult::RErr(e) => return Err(format!("on_incoming_call: {e}")),
                }
            }
            2 => match i.search_phonebook("torn".into(), 200) {
                RResult::ROk(entries) => check_search(ids, &entries, 200)?,
                RResult::RErr(e) => return Err(format!("search_phonebook: {e}")),
            },
            _ => match i.search_phonebook(format!("Torn{k:04} gen").as_str().into(), 10) {
                RResult::ROk(entries) => {
                    let g = check_search(ids, &entries, 1)?;
                    if entries.len() != 1 || entries[0].contact_id.as_str() != ids[k] {
                        return Err(format!("search for contact {k}: {entries:?}"));
                    }
                    g
                }
                RResult::RErr(e) => return Err(format!("search_phonebook: {e}")),
            },
        };
        let after = progress.written.load(Ordering::SeqCst);
        progress.observe(before, g, after)?;
    }
    Ok(())
}

#[test]
fn calls_and_searches_see_one_generation_while_syncs_replace_the_data() {
    let emu = EmulatorHandle::spawn(EmulatorConfig::default()).unwrap();
    let control = emu.control().clone();
    control.seed_contacts(ADELE_UPN, SEEDED).unwrap();
    let ids: Vec<String> = (0..TAGGED)
        .map(|k| control.add_contact(ADELE_UPN, None, &tagged(k, 0)).unwrap())
        .collect();
    let token = host_token(&emu);

    let dir = tempfile::tempdir().unwrap();
    let seen = Arc::new(Seen::default());
    let host = Host_TO::from_value(
        SsoHost {
            token,
            seen: seen.clone(),
            min_level: LogLevel::ERROR,
        },
        TD_Opaque,
    );
    let i = Arc::new(Ms365Integration::new(host, context(dir.path())).unwrap());
    i.apply_settings(settings(&emu)).unwrap();
    wait_until("the sign-in", GUARD, || {
        i.state().microsoft_integration == MicrosoftState::ACTIVE
    });
    let report = i.sync(SYNC_TIMEOUT_MS).unwrap();
    assert_eq!(report.contacts as usize, SEEDED + TAGGED, "{report:?}");
    wait_until("presence sync", GUARD, || {
        i.state().presence_integration == PresenceState::ACTIVE
    });
    // Every tagged number answers with generation 0 before the load starts.
    for (k, _) in ids.iter().enumerate() {
        let call = IncomingCall {
            call_id: "setup".into(),
            number: e164(k).into(),
            extensions: RString::new(),
        };
        let caller = i.on_incoming_call(call).unwrap().into_option().unwrap();
        assert_eq!(check_caller(k, &ids, &caller), Ok(0));
    }

    let ids = Arc::new(ids);
    let progress = Arc::new(Progress::default());
    let stop = Arc::new(AtomicBool::new(false));
    let statuses_before = seen.contact_statuses.load(Ordering::Relaxed);
    let (done, finished) = mpsc::channel::<(String, Result<(), String>)>();
    // Plain threads, not scoped ones: a thread stuck in a deadlock must not keep the test from
    // failing (a scope would wait for it forever).
    {
        for n in 0..READERS {
            let (done, i, ids) = (done.clone(), i.clone(), ids.clone());
            let (progress, stop) = (progress.clone(), stop.clone());
            std::thread::spawn(move || {
                let result = reader(n, &i, &ids, &progress, &stop);
                if result.is_err() {
                    // Fail fast: the others stop too.
                    stop.store(true, Ordering::Release);
                }
                let _ = done.send((format!("reader {n}"), result));
            });
        }
        {
            // Contact status changes from the host (written to Teams by the presence task),
            // and the state the host reads.
            let (done, i, stop) = (done.clone(), i.clone(), stop.clone());
            std::thread::spawn(move || {
                // A status holds for 0.5 s: Teams changes in between reach the host (a
                // Contact change makes the next Teams read a new baseline).
                let mut result = Ok(());
                let mut tick = 0u64;
                while !stop.load(Ordering::Acquire) {
                    if tick.is_multiple_of(32) {
                        let status = if tick.is_multiple_of(64) {
                            ContactStatus::IN_CALL
                        } else {
                            ContactStatus::ONLINE
                        };
                        if let RResult::RErr(e) = i.on_status_change(status) {
                            result = Err(format!("on_status_change: {e}"));
                            break;
                        }
                    }
                    tick += 1;
                    let _ = i.state();
                    std::thread::sleep(Duration::from_millis(15));
                }
                let _ = done.send(("host status changes".into(), result));
            });
        }
        {
            // Teams presence changes (read by the presence task's poll).
            let (done, control, stop) = (done.clone(), control.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut result = Ok(());
                let mut busy = false;
                while !stop.load(Ordering::Acquire) {
                    busy = !busy;
                    let (a, x) = if busy {
                        ("Busy", "Busy")
                    } else {
                        ("Available", "Available")
                    };
                    if let Err(e) = control.set_teams_presence(ADELE_UPN, a, x) {
                        result = Err(format!("set_teams_presence: {e}"));
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(90));
                }
                let _ = done.send(("Teams presence changes".into(), result));
            });
        }
        drop(done);

        // The main thread moves the mailbox from one generation to the next and syncs.
        let mut sync_error = None;
        for g in 1..=GENERATIONS {
            if stop.load(Ordering::Acquire) {
                break;
            }
            progress.written.store(g, Ordering::SeqCst);
            for (k, id) in ids.iter().enumerate() {
                control
                    .update_contact(Some(ADELE_UPN), id, &tagged(k, g))
                    .unwrap();
            }
            match i.sync(SYNC_TIMEOUT_MS) {
                RResult::ROk(report) => {
                    assert_eq!(report.updated as usize, TAGGED, "{report:?}");
                    progress.published.store(g, Ordering::SeqCst);
                }
                RResult::RErr(e) => {
                    sync_error = Some(format!("sync to generation {g}: {e}"));
                    break;
                }
            }
        }
        // Let the readers see the last generation for a moment, then stop everyone.
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Release);
        let deadline = Instant::now() + HANG_GUARD;
        let mut failures = Vec::new();
        for _ in 0..READERS + 2 {
            let left = deadline.saturating_duration_since(Instant::now());
            match finished.recv_timeout(left) {
                Ok((_, Ok(()))) => {}
                Ok((who, Err(e))) => failures.push(format!("{who}: {e}")),
                Err(_) => panic!(
                    "deadlock: a thread did not finish within {HANG_GUARD:?} of being told to stop"
                ),
            }
        }
        if let Some(e) = sync_error {
            failures.push(e);
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }

    let per_generation = progress.per_generation.lock().unwrap().clone();
    let answers = progress.answers.load(Ordering::Relaxed);
    let during_sync = progress.during_sync.load(Ordering::Relaxed);
    println!(
        "{answers} answers, {during_sync} while a sync was pending; per generation: \
         {per_generation:?}; {} contact statuses from Teams, {} state changes",
        seen.contact_statuses.load(Ordering::Relaxed),
        seen.states.load(Ordering::Relaxed)
    );
    // The readers ran across the swaps, not only between them.
    assert_eq!(per_generation.len() as u64, GENERATIONS + 1);
    assert!(
        per_generation.iter().filter(|&&n| n > 0).count() >= 3,
        "{per_generation:?}"
    );
    assert!(during_sync > 0, "no answer while a sync was pending");
    // Presence moved both ways meanwhile.
    assert!(
        seen.contact_statuses.load(Ordering::Relaxed) > statuses_before,
        "no Teams change reached the host"
    );
    let writes = control
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.contains("/presence/"))
        .count();
    assert!(writes > 0, "no Contact status reached Teams");
    // And the integration still stops within its deadline.
    let started = Instant::now();
    i.shutdown(5000).unwrap();
    assert!(started.elapsed() < HANG_GUARD);
    let errors = seen.errors.lock().unwrap().clone();
    assert!(errors.is_empty(), "{errors:?}");
    emu.shutdown();
}

/// The checks above reject a torn answer: they would catch an index patched in place.
#[test]
fn checker_rejects_torn_answers() {
    let ids: Vec<String> = (0..3).map(|k| format!("id-{k}")).collect();
    let entry = |k: usize, name_g: u64, company_g: u64| PhonebookEntry {
        display_name: format!("Torn{k:04} Gen{name_g}").into(),
        company: format!("Generation {company_g} GmbH").into(),
        job_title: format!("Gen{name_g}").into(),
        numbers: vec![host_api::PhoneNumber {
            number: e164(k).into(),
            number_type: host_api::NumberType::BUSINESS,
        }]
        .into(),
        emails: vec![RString::from(format!("torn{k:04}.gen{name_g}@example.org"))].into(),
        source: host_api::ContactSource::OUTLOOK,
        contact_id: ids[k].as_str().into(),
        extensions: RString::new(),
    };
    // Consistent answers pass.
    assert_eq!(
        check_search(&ids, &[entry(0, 2, 2), entry(1, 2, 2)], 2),
        Ok(2)
    );
    // Two generations in one list, one entry torn in itself, too short a list.
    assert!(check_search(&ids, &[entry(0, 2, 2), entry(1, 3, 3)], 2).is_err());
    assert!(check_search(&ids, &[entry(0, 2, 3)], 1).is_err());
    assert!(check_search(&ids, &[entry(0, 2, 2)], 2).is_err());
    let caller = |k: usize, name_g: u64, company_g: u64, id: &str| CallerInfo {
        display_name: format!("Torn{k:04} Gen{name_g}").into(),
        company: format!("Generation {company_g} GmbH").into(),
        job_title: format!("Gen{name_g}").into(),
        number: e164(k).into(),
        number_type: host_api::NumberType::BUSINESS,
        extension: ROption::RNone,
        source: host_api::ContactSource::OUTLOOK,
        contact_id: id.into(),
        extensions: RString::new(),
    };
    assert_eq!(check_caller(1, &ids, &caller(1, 4, 4, "id-1")), Ok(4));
    assert!(check_caller(1, &ids, &caller(1, 4, 5, "id-1")).is_err());
    assert!(check_caller(1, &ids, &caller(2, 4, 4, "id-1")).is_err());
    assert!(check_caller(1, &ids, &caller(1, 4, 4, "id-2")).is_err());
    // An older generation than the one already synced, or a newer one than the mailbox held.
    let p = Progress::default();
    assert!(p.observe(3, 3, 4).is_ok());
    assert!(p.observe(3, 2, 4).is_err());
    assert!(p.observe(3, 5, 4).is_err());
}
