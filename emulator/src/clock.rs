//! The emulator clock: real UTC time plus an offset that the control API can advance.
//!
//! Every expiry in the emulator (authorization codes, device codes, access and refresh tokens,
//! device-code polling intervals) is measured on this clock, so tests can jump forward instead
//! of sleeping.

use std::sync::atomic::{AtomicI64, Ordering};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Real time shifted by an adjustable offset.
#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    /// The emulator's current time.
    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
            + time::Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }

    /// Moves the clock forward by `seconds`.
    pub fn advance(&self, seconds: u64) {
        let ms = i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// Moves the clock by `seconds`, forward or (negative) back: a server clock that is off.
    pub fn shift(&self, seconds: i64) {
        let ms = seconds.saturating_mul(1000);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// Back to real time.
    pub fn reset(&self) {
        self.offset_ms.store(0, Ordering::SeqCst);
    }
}

/// RFC 3339 with second precision, e.g. `2025-01-31T12:00:00Z`.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

/// The identity platform's error timestamp format: `2025-01-31 12:00:00Z`.
pub fn aad_timestamp(t: OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    t.format(&f).unwrap_or_default()
}

/// Graph's `innerError.date` format: `2025-01-31T12:00:00` (UTC, no zone designator).
pub fn graph_date(t: OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    t.format(&f).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_moves_now() {
        let c = Clock::default();
        let a = c.now();
        c.advance(3600);
        let b = c.now();
        assert!(b - a >= time::Duration::seconds(3600));
        c.reset();
        assert!(c.now() - a < time::Duration::seconds(60));
        c.shift(-600);
        assert!(a - c.now() > time::Duration::seconds(590));
        c.shift(1200);
        assert!(c.now() - a > time::Duration::seconds(590));
    }

    #[test]
    fn formats() {
        let t = time::macros::datetime!(2025-03-04 05:06:07.123 UTC);
        assert_eq!(aad_timestamp(t), "2025-03-04 05:06:07Z");
        assert_eq!(graph_date(t), "2025-03-04T05:06:07");
        assert_eq!(rfc3339(t), "2025-03-04T05:06:07Z");
    }
}
