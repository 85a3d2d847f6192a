//! # contact-ms365: the Microsoft 365 integration for Contact Desktop
//!
//! Built as a `cdylib` that Contact Desktop loads from its plugins folder (and as an `rlib` for
//! tests and benchmarks). The one place that speaks the ABI is [`ffi`]: every entry point there
//! catches panics and converts between host-api types and the plugin's own.
//!
//! Module map:
//! - [`ffi`]: `impl host_api::Integration` — the boundary; panic guards; nothing else.
//! - [`integration`]: the integration object: switches, licensing, state, lifecycle.
//! - [`session`]: the engine (runtime, HTTP, tokens) and the sign-in and refresh tasks.
//! - [`settings`]: settings with defaults, validation (all or nothing) and persistence.
//! - [`runtime`]: the tokio runtime the integration owns while Microsoft integration is on.
//! - [`sync`]: contact sync with Graph (folders, delta, directory users), all or nothing.
//! - [`snapshot`]: the synced contacts and delta links on disk, for a warm start.
//! - [`contacts`]: the sync loop, installing results into the index, late callers.
//! - [`directory`]: the in-memory contact index that answers calls and searches.
//! - [`record`]: a contact packed in one shared allocation; a folder's contacts sorted by id.
//! - [`phone`]: phone numbers to E.164 (the one place that knows the libphonenumber port).
//! - [`presence`]: Teams presence sync both ways: the mapping tables, the rules, the poll loop.
//! - [`auth`]: sign-in: discovery, the OAuth flows, the loopback listener, the token store.
//! - [`graph`]: Microsoft Graph requests and their typed errors.
//! - [`http`]: the one HTTP client configuration (no redirects, time-outs).
//! - [`host`]: a cloneable handle on the host's callbacks, with logging helpers.
//! - [`store`]: atomic, user-only file writes in the data folder.
//! - [`codec`]: the little-endian binary writer and checked reader of the snapshot.
//! - [`faults`]: test hooks (injected panics), off unless an environment variable says so.
#![allow(non_local_definitions)]

pub mod auth;
pub mod codec;
pub mod contacts;
pub mod directory;
pub mod faults;
pub mod ffi;
#[doc(hidden)]
pub mod fuzzing;
pub mod graph;
pub mod host;
pub mod http;
pub mod integration;
pub mod phone;
pub mod presence;
pub mod record;
pub mod runtime;
pub mod session;
pub mod settings;
pub mod snapshot;
pub mod store;
pub mod sync;

pub use integration::Ms365Integration;

/// The integration's name, as shown in Contact Desktop's integration settings.
pub const NAME: &str = "Microsoft 365";

host_api::export_integration! {
    name: crate::NAME,
    constructor: crate::ffi::new_integration,
}
