//! # host-api: the contract between Contact Desktop and its integrations
//!
//! Contact Desktop loads integrations at run time from its plugins folder. This crate is the
//! whole contract, built on abi_stable so that a host and a plugin compiled separately (even
//! with different compiler versions) can talk safely:
//!
//! - [`IntegrationModule`] — the root module a plugin exports (with
//!   [`export_integration!`]): its name, its version, the host-api version it was built
//!   against, and a constructor taking the host's callbacks and context.
//! - [`Integration`] — the object a plugin returns (host → plugin calls).
//! - [`Host`] — the host's callbacks (plugin → host calls).
//! - Plain data ([`IncomingCall`], [`CallerInfo`], [`PhonebookEntry`], [`IntegrationState`], ...)
//!   and open enumerations ([`ContactStatus`], [`ErrorCode`], ...).
//! - [`load_plugin`] — the host side: open one file, check it, explain a refusal in one line.
//!
//! Versioning rules are in `VERSIONING.md`; in short: within a major version no layout ever
//! changes, and growth happens through open-enum constants, `extensions` JSON fields and the
//! `extension` operations. Plugin-obtained tokens never cross this API.
#![allow(non_local_definitions)] // emitted by #[sabi_trait] on current rustc
#![warn(missing_docs)]

mod codes;
mod file_check;
mod loader;
mod module;
mod traits;
mod types;

pub use codes::{
    ContactSource, ContactStatus, ErrorCode, LogLevel, MicrosoftState, NumberType, PresenceState,
};
pub use loader::{LoadError, LoadedPlugin, load_plugin};
pub use module::{
    API_VERSION, ApiVersion, IntegrationModule, IntegrationModuleRef, MANIFEST_HEADER,
    MANIFEST_SYMBOL, Manifest, catch_panic, panic_message,
};
pub use traits::{Host, Host_TO, HostBox, Integration, Integration_TO, IntegrationBox};
pub use types::{
    CallerInfo, HostContext, IncomingCall, IntegrationError, IntegrationState, Notification,
    PhoneNumber, PhonebookEntry, SettingsUpdate, SsoToken, SyncReport, TeamsPresence,
};

/// abi_stable items host and plugin authors need, re-exported so both sides use the same ones.
pub mod reexports {
    pub use abi_stable::{
        sabi_trait::TD_Opaque,
        std_types::{RBox, ROption, RResult, RStr, RString, RVec},
    };
}
