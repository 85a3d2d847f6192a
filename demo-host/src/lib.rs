//! # demo-host: a stand-in for Contact Desktop
//!
//! It loads every integration plugin of a folder through [`host_api::load_plugin`], gives each
//! one the host's callbacks ([`host_impl::HostImpl`]) and drives them:
//!
//! - [`script`]: the scripted mode, a public line protocol (JSON requests on standard input,
//!   JSON replies and events on standard output) specified in `demo-host-script.md`;
//!   [`script::run`] is the library entry point the end-to-end tests use.
//! - [`demo`]: a guided tour against the embedded Microsoft 365 emulator.
//! - [`commands`]: `plugins` (list what loads) and `emulator` (run the emulator alone).
//! - [`human`]: `sync`, `call`, `search`, `status`, `settings` against the plugins of the
//!   plugins folder, with the host context of [`profile`] (`host.json`); sync progress
//!   ([`progress`]) is shown as a bar.
//!
//! Building blocks: [`session::Session`] (loaded plugins + the host's context and status;
//! executes one [`protocol::Op`]), [`output::Output`] (the single writer of reply and event
//! lines), [`json`] (host-api types ↔ the protocol's JSON objects), [`plugins`] (folder scan and
//! loading), [`browser`] and [`sso`] (the `--browser` and `--sso-command` stand-ins).

#![warn(missing_docs)]

pub mod browser;
pub mod cli;
pub mod commands;
pub mod demo;
pub mod errors;
#[cfg(test)]
mod fake;
#[doc(hidden)]
pub mod fuzzing;
pub mod host_impl;
pub mod human;
pub mod json;
pub mod logging;
pub mod options;
pub mod output;
pub mod plugins;
pub mod profile;
pub mod progress;
pub mod protocol;
pub mod script;
pub mod session;
pub mod shell;
pub mod sso;

pub use options::HostOptions;
