//! Teams presence synchronization, both ways, per `shared/spec/presence-mapping.md`.
//!
//! - [`mapping`]: tables 1 and 2 as pure functions ([`teams_to_contact`], [`TeamsWrite`]).
//! - [`machine`]: the rules of section 3 as a pure state machine ([`PresenceMachine`]): no
//!   echo, baseline after our own writes, last writer wins, start of sync, clean exit.
//! - [`driver`]: the task that polls Graph, writes to it and calls the host ([`run`]).
//!
//! The UPN check (rule 3) and the earlier-integration rule (rule 6) decide whether [`run`] is
//! started at all; they live with the integration's state.
//!
//! # Expiry and renewal
//!
//! - "In a call" (`setPresence` `Busy`/`InACall`): `expirationDuration` **PT5M** (Graph's
//!   minimum), renewed every **3 minutes** while the host shows `in_call` (a 2-minute margin
//!   covers a `Retry-After` or a back-off of up to 60 s twice). A host that crashes during a
//!   call leaves "In a call" in Teams for at most 5 minutes.
//! - "Appear away" / "Appear offline" (`setUserPreferredPresence`): `expirationDuration`
//!   **PT1H**, renewed every **45 minutes** while it is ours (Graph's default would be 7 days).
//!   A crashed host leaves it for at most an hour; a choice kept all day stays in Teams.
//! - A clean exit clears both within about 1.5 s (rule 5).
//!
//! # Request budget
//!
//! Per user and hour at the default poll of 5 s (`presence_poll_ms` = 5000):
//!
//! | requests | per hour | when |
//! |---|---|---|
//! | `GET /users/{id}/presence` | **720** | always (one every 5 s, never two in flight) |
//! | `setPresence` + `clearPresence` | 2 per call | Contact calls |
//! | `setPresence` renewals | 20 | per hour spent in Contact calls |
//! | `setUserPreferredPresence` + `clearUserPreferredPresence` | 2 per choice | appear away/offline |
//! | `setUserPreferredPresence` renewals | 1.3 | per hour spent appearing away/offline |
//!
//! A typical user (a few calls and status choices an hour) makes about **730 requests per
//! hour**, a user on the phone all hour about 745. Back-off only ever lowers these figures.
//!
//! Against Microsoft's presence limit of **1,500 requests per 30 s per app and tenant**
//! (the lowest published figure, reference §3.9), shared by every user of the plugin in the
//! tenant: one user at 5 s makes 6 requests per 30 s, so the limit is reached at **250
//! concurrent users** (about 200 with headroom for writes). A tenant of **1,000 users** at 5 s
//! would make about 6,000 reads per 30 s, **four times the limit**: it needs
//! `presence_poll_ms` ≥ 20,000 just to fit (1,000 reads per 20 s = 1,500 per 30 s), and
//! **30,000** (1,000 per 30 s) to leave a third of the budget for writes and retries. In general
//! `presence_poll_ms ≥ users × 30,000 / (0.66 × 1,500)` ≈ `users × 30`. Under the newer figure of
//! 10,000 per 30 s, 1,000 users at 5 s (6,000 per 30 s) fit. A throttled tenant gets 429 with
//! `Retry-After`, which the driver honours, so overload degrades latency, not correctness.

pub mod driver;
pub mod machine;
pub mod mapping;

pub mod gate;

pub use driver::{OnRead, PresenceParts, Timing, run, run_with};
pub use machine::{PresenceMachine, WriteOutcome};
pub use mapping::{TeamsWrite, teams_to_contact};
