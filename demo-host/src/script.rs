//! The scripted mode (`demo-host script`): JSON requests in, JSON replies and events out, as
//! specified in `demo-host-script.md`.
//!
//! Three threads cooperate:
//! - the *reader* reads input lines, parses each one at once and queues it; a `quit` line
//!   cancels at once (it is not queued);
//! - the *executor* runs the queued ops one at a time, in order, and writes each reply;
//! - the caller's thread waits until the work is over (end of input and every op answered,
//!   or a cancel), watching for SIGINT/SIGTERM and the [`Stop`] handle meanwhile.
//!
//! A cancel (quit, signal, [`Stop::request`]) answers the running op and every queued op with
//! `cancelled`, in order, then the `quit` reply (for a quit line), then switches every plugin
//! off: a plugin call still blocked (a `sync`) ends then, and its late answer is dropped: the
//! ledger below guarantees one reply per line.

use std::{
    collections::VecDeque,
    io::{BufRead, Write},
    process::ExitCode,
    sync::{
        Arc, Condvar, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    errors::OpError,
    options::HostOptions,
    output::{EventMark, Output, error_reply, ok_reply},
    protocol::{Op, parse_line},
    session::Session,
};

/// How long the host waits for a running op to notice a cancel before it exits anyway.
const EXECUTOR_GRACE: Duration = Duration::from_secs(5);

/// A handle that cancels a running script from another thread, as SIGTERM would.
#[derive(Clone, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    /// A handle not yet triggered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels the script: the running and queued ops are answered `cancelled`, the plugins
    /// are switched off, and `run` returns.
    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether [`request`](Self::request) was called (or a signal arrived).
    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// How [`run_with`] runs.
#[derive(Clone, Default)]
pub struct ScriptControl {
    /// Cancels the run from another thread.
    pub stop: Stop,
    /// Also cancel on SIGINT and SIGTERM (the binary does; tests usually do not).
    pub handle_signals: bool,
}

/// A line waiting for its turn.
struct Pending {
    op_name: Option<String>,
    op: Result<Op, OpError>,
    mark: EventMark,
}

#[derive(Default)]
struct Ledger {
    queue: VecDeque<Pending>,
    /// The op the executor is running (its name, for a `cancelled` reply).
    running: Option<Option<String>>,
    eof: bool,
    cancelled: bool,
    executor_done: bool,
}

struct Shared {
    ledger: Mutex<Ledger>,
    changed: Condvar,
    cancelled: AtomicBool,
    output: Arc<Output>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Cancels everything (once): `cancelled` replies for the running and queued ops, in order,
    /// then the `quit` reply when `quit_line`.
    fn cancel(&self, quit_line: bool) {
        let mut ledger = self.lock();
        if ledger.cancelled {
            return;
        }
        ledger.cancelled = true;
        self.cancelled.store(true, Ordering::SeqCst);
        let cancelled = OpError::cancelled();
        if let Some(name) = ledger.running.take() {
            self.output.reply(&error_reply(
                name.as_deref(),
                cancelled.code,
                &cancelled.message,
            ));
        }
        for pending in ledger.queue.drain(..) {
            // A line that was never a valid op keeps its own answer.
            let e = pending.op.err().unwrap_or_else(|| cancelled.clone());
            self.output
                .reply(&error_reply(pending.op_name.as_deref(), e.code, &e.message));
        }
        if quit_line {
            self.output
                .reply(&ok_reply(Some("quit"), serde_json::Map::new()));
        }
        drop(ledger);
        self.changed.notify_all();
    }
}

/// Runs the scripted mode without signal handling: reads requests from `input`, writes replies
/// and events to `output`, and returns once the input ended and every op was answered, or
/// after `quit`. Plugins are switched off before it returns. The exit code is always success.
pub fn run(
    options: &HostOptions,
    input: impl BufRead + Send + 'static,
    output: impl Write + Send + 'static,
) -> ExitCode {
    run_with(options, input, output, ScriptControl::default())
}

/// [`run`], with a [`Stop`] handle and optional SIGINT/SIGTERM handling.
pub fn run_with(
    options: &HostOptions,
    input: impl BufRead + Send + 'static,
    output: impl Write + Send + 'static,
    control: ScriptControl,
) -> ExitCode {
    let signal_ids = if control.handle_signals {
        register_signals(&control.stop)
    } else {
        Vec::new()
    };

    let output = Output::json_lines(output);
    let session = Arc::new(Session::start(options, output.clone()));
    let shared = Arc::new(Shared {
        ledger: Mutex::new(Ledger::default()),
        changed: Condvar::new(),
        cancelled: AtomicBool::new(false),
        output,
    });

    spawn_reader(input, shared.clone());
    spawn_executor(session.clone(), shared.clone());

    // Wait until the work is over or a stop is requested.
    {
        let mut ledger = shared.lock();
        while !ledger.cancelled && !ledger.executor_done {
            if control.stop.is_requested() {
                drop(ledger);
                tracing::info!("stop requested (signal): cancelling");
                shared.cancel(false);
                ledger = shared.lock();
                break;
            }
            ledger = shared
                .changed
                .wait_timeout(ledger, Duration::from_millis(50))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        drop(ledger);
    }

    // Switch every plugin off: this also ends a plugin call still blocked in the executor.
    session.shutdown();
    let deadline = Instant::now() + EXECUTOR_GRACE;
    let mut ledger = shared.lock();
    while !ledger.executor_done && Instant::now() < deadline {
        ledger = shared
            .changed
            .wait_timeout(ledger, Duration::from_millis(50))
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
    if !ledger.executor_done {
        tracing::warn!("an op did not end after the plugins were switched off; exiting anyway");
    }
    drop(ledger);
    session.flush_events();

    for id in signal_ids {
        signal_hook::low_level::unregister(id);
    }
    ExitCode::SUCCESS
}

fn register_signals(stop: &Stop) -> Vec<signal_hook::SigId> {
    let mut ids = Vec::new();
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        match signal_hook::flag::register(signal, stop.0.clone()) {
            Ok(id) => ids.push(id),
            Err(e) => tracing::warn!("cannot handle signal {signal}: {e}"),
        }
    }
    ids
}

fn spawn_reader(mut input: impl BufRead + Send + 'static, shared: Arc<Shared>) {
    let body = move || {
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let read = input.read_until(b'\n', &mut buf);
            if shared.cancelled.load(Ordering::SeqCst) {
                return;
            }
            match read {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("cannot read the input: {e}; treating it as its end");
                    break;
                }
            }
            let mark = shared.output.mark();
            let line = String::from_utf8_lossy(&buf);
            let line = line.strip_suffix('\n').unwrap_or(&line);
            let line = line.strip_suffix('\r').unwrap_or(line);
            let request = parse_line(line);
            if matches!(request.op, Ok(Op::Quit)) {
                shared.cancel(true);
                return;
            }
            let mut ledger = shared.lock();
            if ledger.cancelled {
                return;
            }
            ledger.queue.push_back(Pending {
                op_name: request.op_name,
                op: request.op,
                mark,
            });
            drop(ledger);
            shared.changed.notify_all();
        }
        shared.lock().eof = true;
        shared.changed.notify_all();
    };
    if let Err(e) = thread::Builder::new()
        .name("script-reader".into())
        .spawn(body)
    {
        tracing::error!("cannot start the input reader: {e}");
    }
}

fn spawn_executor(session: Arc<Session>, shared: Arc<Shared>) {
    let worker = shared.clone();
    let body = move || {
        let shared = worker;
        let cancelled = || shared.cancelled.load(Ordering::SeqCst);
        loop {
            let pending = {
                let mut ledger = shared.lock();
                loop {
                    if ledger.cancelled {
                        break None;
                    }
                    if let Some(p) = ledger.queue.pop_front() {
                        ledger.running = Some(p.op_name.clone());
                        break Some(p);
                    }
                    if ledger.eof {
                        break None;
                    }
                    ledger = shared
                        .changed
                        .wait(ledger)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            };
            let Some(pending) = pending else { break };
            let result = match &pending.op {
                Ok(op) => {
                    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        session.execute(op, pending.mark, &cancelled)
                    }));
                    run.unwrap_or_else(|payload| {
                        Err(OpError::plugin_error(format!(
                            "the host failed while running this op: {}",
                            host_api::panic_message(payload.as_ref())
                        )))
                    })
                }
                Err(e) => Err(e.clone()),
            };
            let reply: Value = match &result {
                Ok(fields) => ok_reply(pending.op_name.as_deref(), fields.clone()),
                Err(e) => error_reply(pending.op_name.as_deref(), e.code, &e.message),
            };
            let mut ledger = shared.lock();
            if ledger.cancelled {
                // Already answered `cancelled`: never a second reply.
                break;
            }
            ledger.running = None;
            shared.output.reply(&reply);
        }
        shared.lock().executor_done = true;
        shared.changed.notify_all();
    };
    let started = thread::Builder::new()
        .name("script-executor".into())
        .spawn(body);
    if let Err(e) = started {
        tracing::error!("cannot start the executor: {e}");
        shared.lock().executor_done = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::SharedBuffer;
    use std::io::Cursor;

    fn options(dir: &tempfile::TempDir) -> HostOptions {
        HostOptions {
            plugins_dir: dir.path().join("plugins"),
            data_dir: dir.path().join("data"),
            ..HostOptions::default()
        }
    }

    fn run_script(script: &str) -> Vec<Value> {
        let dir = tempfile::tempdir().unwrap();
        let buf = SharedBuffer::new();
        let code = run(&options(&dir), Cursor::new(script.to_owned()), buf.clone());
        assert_eq!(code, ExitCode::SUCCESS);
        buf.json_lines()
    }

    #[test]
    fn every_line_gets_one_reply_in_order() {
        let lines = run_script(concat!(
            "{\"op\":\"state\"}\n",
            "garbage\n",
            "\n",
            "{\"op\":\"status\",\"status\":\"busy\"}\n",
            "{\"op\":\"status\",\"status\":\"sleepy\"}\n",
            "{\"op\":\"search\",\"query\":\"a\",\"limit\":0}\n",
            "{\"op\":\"incoming_call\",\"call_id\":\"1\",\"number\":\"+4989\"}\n",
            "{\"op\":\"wait\",\"ms\":1}\n",
            "{\"op\":\"frobnicate\"}\n",
            "{\"op\":\"context\",\"username\":\"u\"}"
        ));
        let replies: Vec<(Value, Value)> = lines
            .iter()
            .map(|l| (l["reply"].clone(), l["ok"].clone()))
            .collect();
        assert_eq!(
            replies,
            [
                ("state".into(), false.into()),
                (Value::Null, false.into()),
                (Value::Null, false.into()),
                ("status".into(), true.into()),
                ("status".into(), false.into()),
                ("search".into(), true.into()),
                ("incoming_call".into(), true.into()),
                ("wait".into(), true.into()),
                ("frobnicate".into(), false.into()),
                ("context".into(), true.into()),
            ]
        );
        assert_eq!(lines[0]["error"]["code"], "plugin_error");
        assert_eq!(lines[1]["error"]["code"], "bad_request");
        assert_eq!(lines[4]["error"]["code"], "bad_request");
        assert_eq!(lines[5]["results"], Value::Array(vec![]));
        assert_eq!(lines[6]["caller"], Value::Null);
        assert_eq!(lines[8]["error"]["code"], "bad_request");
    }

    #[test]
    fn quit_cancels_the_running_and_queued_ops_at_once() {
        // The reader sees `quit` while the first wait runs: both waits are cancelled.
        let start = Instant::now();
        let lines = run_script(concat!(
            "{\"op\":\"wait\",\"ms\":60000}\n",
            "{\"op\":\"wait\",\"ms\":1}\n",
            "not json\n",
            "{\"op\":\"quit\"}\n",
            "{\"op\":\"state\"}\n",
        ));
        assert!(start.elapsed() < Duration::from_secs(10));
        let summary: Vec<(Value, Value)> = lines
            .iter()
            .map(|l| (l["reply"].clone(), l["error"]["code"].clone()))
            .collect();
        assert_eq!(
            summary,
            [
                ("wait".into(), "cancelled".into()),
                ("wait".into(), "cancelled".into()),
                (Value::Null, "bad_request".into()),
                ("quit".into(), Value::Null),
            ]
        );
        assert_eq!(lines[3]["ok"], true);
    }

    #[test]
    fn end_of_input_runs_every_op_to_the_end() {
        let start = Instant::now();
        let lines = run_script("{\"op\":\"wait\",\"ms\":300}\n{\"op\":\"wait\",\"ms\":0}\n");
        assert!(start.elapsed() >= Duration::from_millis(300));
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l["ok"] == true));
    }

    #[test]
    fn a_stop_request_cancels_like_a_signal() {
        let dir = tempfile::tempdir().unwrap();
        let buf = SharedBuffer::new();
        let control = ScriptControl::default();
        let stop = control.stop.clone();
        // Input that never ends: a pipe whose writer we keep.
        let (reader, mut writer) = std::io::pipe().unwrap();
        writer
            .write_all(b"{\"op\":\"wait_for\",\"event\":\"never\",\"timeout_ms\":60000}\n")
            .unwrap();
        let t = thread::spawn(move || {
            thread::sleep(Duration::from_millis(200));
            stop.request();
        });
        let start = Instant::now();
        run_with(
            &options(&dir),
            std::io::BufReader::new(reader),
            buf.clone(),
            control,
        );
        t.join().unwrap();
        assert!(start.elapsed() < Duration::from_secs(10));
        let lines = buf.json_lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["reply"], "wait_for");
        assert_eq!(lines[0]["error"]["code"], "cancelled");
        drop(writer);
    }

    #[test]
    fn quit_during_a_blocked_sync_answers_once_and_shuts_the_plugin_down() {
        let dir = tempfile::tempdir().unwrap();
        let (fake, probe) = crate::fake::plugin("fake", "Fake", "+1");
        let options = HostOptions {
            in_process: vec![fake],
            ..options(&dir)
        };
        let buf = SharedBuffer::new();
        let (reader, mut writer) = std::io::pipe().unwrap();
        writer
            .write_all(b"{\"op\":\"sync\"}\n{\"op\":\"state\"}\n")
            .unwrap();
        let t = thread::spawn(move || {
            thread::sleep(Duration::from_millis(300));
            writer.write_all(b"{\"op\":\"quit\"}\n").unwrap();
            thread::sleep(Duration::from_millis(1500));
            drop(writer);
        });
        let start = Instant::now();
        run(&options, std::io::BufReader::new(reader), buf.clone());
        assert!(start.elapsed() < Duration::from_secs(5));
        t.join().unwrap();
        assert!(*probe.shut_down.lock().unwrap());
        thread::sleep(Duration::from_millis(200)); // a late sync answer would show up now
        let replies: Vec<Value> = buf
            .json_lines()
            .into_iter()
            .filter(|l| l.get("reply").is_some())
            .collect();
        let summary: Vec<(Value, Value)> = replies
            .iter()
            .map(|l| (l["reply"].clone(), l["error"]["code"].clone()))
            .collect();
        assert_eq!(
            summary,
            [
                ("sync".into(), "cancelled".into()),
                ("state".into(), "cancelled".into()),
                ("quit".into(), Value::Null),
            ]
        );
    }
}
