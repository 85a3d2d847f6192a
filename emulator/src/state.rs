//! The emulator's shared state: configuration, clock, signing key and the mutable world
//! (tenant, grants, faults, request log) behind one mutex.
//!
//! The mutex is never held across an `.await`; handlers lock, read or change, and unlock.

use std::sync::{Mutex, MutexGuard};

use time::OffsetDateTime;

use crate::EmulatorConfig;
use crate::clock::Clock;
use crate::faults::FaultRule;
use crate::grants::Grants;
use crate::keys::Signer;
use crate::request_log::RequestLogEntry;
use crate::tenant::{self, ADELE_ID, Tenant};

/// Mutable emulator world.
#[derive(Debug)]
pub struct World {
    /// The tenant (users, apps); later also mailboxes and presence.
    pub tenant: Tenant,
    /// Object id of the user who signs in at the next authorize or device approval.
    pub sign_in_user: String,
    /// Issued codes and tokens.
    pub grants: Grants,
    /// Pending fault rules, in the order they were added.
    pub faults: Vec<FaultRule>,
    /// Request log (control routes excluded).
    pub log: Vec<RequestLogEntry>,
}

impl World {
    /// The seeded world for this configuration.
    pub fn seeded(config: &EmulatorConfig) -> World {
        World {
            tenant: tenant::seed_with(config.contacts_per_user),
            sign_in_user: ADELE_ID.to_string(),
            grants: Grants::default(),
            faults: Vec::new(),
            log: Vec::new(),
        }
    }
}

/// Everything the handlers and the control share.
#[derive(Debug)]
pub struct Shared {
    /// Configuration given at start.
    pub config: EmulatorConfig,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Emulator clock.
    pub clock: Clock,
    /// id_token signer.
    pub signer: Signer,
    /// Requests in flight per (app, mailbox) for the Outlook concurrency limit.
    pub outlook: crate::outlook_limit::Concurrency,
    world: Mutex<World>,
}

impl Shared {
    /// New state for an emulator reachable at `base`.
    pub fn new(config: EmulatorConfig, base: String) -> Shared {
        let world = Mutex::new(World::seeded(&config));
        Shared {
            config,
            base,
            clock: Clock::default(),
            signer: Signer::default(),
            outlook: Default::default(),
            world,
        }
    }

    /// Locks the world (a panic in another holder does not poison it for good).
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Emulator time.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// `{base}/v1.0`.
    pub fn graph_url(&self) -> String {
        format!("{}/v1.0", self.base)
    }
}
