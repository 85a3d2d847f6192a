//! The one writer of the host's output: reply lines and event lines, never interleaved, plus
//! the log of emitted events that `wait_for` searches.
//!
//! Every line goes through [`Output`], which holds a lock over the [`LineSink`] (JSON lines for
//! the scripted mode, readable text for `demo`). Each event written gets a sequence number;
//! [`Output::mark`] takes the current number so that [`Output::wait_for_event`] can find "the
//! first such event emitted after this point".

use std::{
    collections::VecDeque,
    io::{self, Write},
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use serde_json::{Map, Value};

/// How many emitted events are kept for `wait_for` (older ones are forgotten).
const EVENT_HISTORY: usize = 10_000;

/// Where reply and event lines go.
pub trait LineSink: Send {
    /// Writes one reply (a complete reply object, `reply` first).
    fn reply(&mut self, reply: &Value);
    /// Writes one event (a complete event object, `event` first).
    fn event(&mut self, event: &Value);
}

/// One JSON object per line, flushed after each line (the scripted mode's format).
pub struct JsonLines<W: Write + Send> {
    out: W,
}

impl<W: Write + Send> JsonLines<W> {
    /// Writes lines to `out`.
    pub fn new(out: W) -> Self {
        Self { out }
    }

    fn write_line(&mut self, value: &Value) {
        let mut line = to_line(value);
        line.push('\n');
        if let Err(e) = self
            .out
            .write_all(line.as_bytes())
            .and_then(|()| self.out.flush())
        {
            tracing::warn!("cannot write to the output: {e}");
        }
    }
}

impl<W: Write + Send> LineSink for JsonLines<W> {
    fn reply(&mut self, reply: &Value) {
        self.write_line(reply);
    }

    fn event(&mut self, event: &Value) {
        self.write_line(event);
    }
}

/// Serializes `value` on one line, keeping `reply`/`event` and `ok` first for readability
/// (the other keys follow in serde_json's order).
pub fn to_line(value: &Value) -> String {
    let Value::Object(map) = value else {
        return value.to_string();
    };
    let first: &[&str] = if map.contains_key("reply") {
        &["reply", "ok"]
    } else {
        &["event"]
    };
    let mut parts = Vec::with_capacity(map.len());
    for &key in first {
        if let Some(v) = map.get(key) {
            parts.push(format!("{}:{}", Value::from(key), v));
        }
    }
    for (key, v) in map {
        if !first.contains(&key.as_str()) {
            parts.push(format!("{}:{}", Value::from(key.as_str()), v));
        }
    }
    format!("{{{}}}", parts.join(","))
}

/// A point in the event stream: events emitted after it have a larger sequence number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventMark(pub u64);

/// Why [`Output::wait_for_event`] returned without an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitEnd {
    /// The time ran out.
    TimedOut,
    /// `cancelled` returned true.
    Cancelled,
}

struct State {
    sink: Box<dyn LineSink>,
    /// Sequence number of the last event written.
    seq: u64,
    history: VecDeque<(u64, Value)>,
}

/// The host's output: a locked [`LineSink`] and the recent events.
pub struct Output {
    state: Mutex<State>,
    emitted: Condvar,
}

impl Output {
    /// An output writing to `sink`.
    pub fn new(sink: impl LineSink + 'static) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                sink: Box::new(sink),
                seq: 0,
                history: VecDeque::new(),
            }),
            emitted: Condvar::new(),
        })
    }

    /// An output writing JSON lines to `out`.
    pub fn json_lines(out: impl Write + Send + 'static) -> Arc<Self> {
        Self::new(JsonLines::new(out))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes a reply line.
    pub fn reply(&self, reply: &Value) {
        self.lock().sink.reply(reply);
    }

    /// Writes an event line and records it for `wait_for`.
    pub fn event(&self, event: Value) {
        let mut state = self.lock();
        state.sink.event(&event);
        state.seq += 1;
        let seq = state.seq;
        state.history.push_back((seq, event));
        while state.history.len() > EVENT_HISTORY {
            state.history.pop_front();
        }
        drop(state);
        self.emitted.notify_all();
    }

    /// The current point of the event stream.
    pub fn mark(&self) -> EventMark {
        EventMark(self.lock().seq)
    }

    /// Runs `f` while holding the output lock: nothing else is written meanwhile.
    pub fn exclusive<T>(&self, f: impl FnOnce(&mut dyn LineSink) -> T) -> T {
        let mut state = self.lock();
        f(state.sink.as_mut())
    }

    /// The first event named `name` emitted after `mark`, waiting at most `timeout`; checks
    /// `cancelled` at least every 50 ms.
    pub fn wait_for_event(
        &self,
        name: &str,
        mark: EventMark,
        timeout: Duration,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Value, WaitEnd> {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        let mut searched = mark.0;
        loop {
            if let Some((_, event)) = state.history.iter().find(|(seq, event)| {
                *seq > searched && event.get("event").and_then(Value::as_str) == Some(name)
            }) {
                return Ok(event.clone());
            }
            searched = searched.max(state.seq);
            if cancelled() {
                return Err(WaitEnd::Cancelled);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(WaitEnd::TimedOut);
            }
            let slice = (deadline - now).min(Duration::from_millis(50));
            state = self
                .emitted
                .wait_timeout(state, slice)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// A reply object: `{"reply": op, "ok": true, ...fields}`.
pub fn ok_reply(op: Option<&str>, fields: Map<String, Value>) -> Value {
    let mut map = Map::new();
    map.insert("reply".into(), op.map_or(Value::Null, Value::from));
    map.insert("ok".into(), Value::Bool(true));
    for (k, v) in fields {
        if k != "reply" && k != "ok" {
            map.insert(k, v);
        }
    }
    Value::Object(map)
}

/// A failed reply: `{"reply": op, "ok": false, "error": {"code", "message"}}`.
pub fn error_reply(op: Option<&str>, code: &str, message: &str) -> Value {
    serde_json::json!({
        "reply": op,
        "ok": false,
        "error": { "code": code, "message": message },
    })
}

/// A `Write` that appends to a shared buffer: handy to capture the output of
/// [`crate::script::run`] in tests.
#[derive(Clone, Default)]
pub struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl SharedBuffer {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything written so far, as text.
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }

    /// Every line written so far, parsed as JSON (lines that are not JSON become strings).
    pub fn json_lines(&self) -> Vec<Value> {
        self.contents()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|_| Value::from(l)))
            .collect()
    }
}

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines_put_reply_and_ok_first() {
        let line = to_line(&json!({"ok": true, "a": 1, "reply": "state"}));
        assert!(line.starts_with(r#"{"reply":"state","ok":true"#), "{line}");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["a"], 1);
    }

    #[test]
    fn wait_for_sees_only_events_after_the_mark() {
        let buf = SharedBuffer::new();
        let out = Output::json_lines(buf.clone());
        out.event(json!({"event": "x", "n": 1}));
        let mark = out.mark();
        let never = || false;
        assert_eq!(
            out.wait_for_event("x", mark, Duration::from_millis(60), &never),
            Err(WaitEnd::TimedOut)
        );
        out.event(json!({"event": "y"}));
        out.event(json!({"event": "x", "n": 2}));
        let got = out
            .wait_for_event("x", mark, Duration::from_millis(10), &never)
            .unwrap();
        assert_eq!(got["n"], 2);
        assert_eq!(buf.json_lines().len(), 3);
    }

    #[test]
    fn wait_for_wakes_on_a_later_event_and_on_cancel() {
        let out = Output::json_lines(SharedBuffer::new());
        let mark = out.mark();
        let o2 = out.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            o2.event(json!({"event": "late"}));
        });
        let got = out.wait_for_event("late", mark, Duration::from_secs(5), &|| false);
        assert!(got.is_ok());
        t.join().unwrap();
        let cancelled = out.wait_for_event("none", out.mark(), Duration::from_secs(5), &|| true);
        assert_eq!(cancelled, Err(WaitEnd::Cancelled));
    }
}
