//! Whether presence sync may run: the UPN rule (section 3, rule 3) and the earlier-integration
//! rule (rule 6) of `shared/spec/presence-mapping.md`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::graph::Me;

/// Rule 3: the Contact username must equal the account's UPN (case-insensitively, as Entra ID
/// compares UPNs). An alias (`mail` or a `proxyAddresses` entry) is refused with a reason that
/// names both values and says what to do.
///
/// ```
/// # use contact_ms365::{graph::Me, presence::gate::check_upn};
/// let me = Me {
///     user_principal_name: "adele.vance@contoso.example".into(),
///     proxy_addresses: vec!["SMTP:adele.vance@contoso.example".into(), "smtp:adele@contoso.example".into()],
///     ..Default::default()
/// };
/// assert!(check_upn("Adele.Vance@contoso.example", &me).is_ok());
/// assert!(check_upn("adele@contoso.example", &me).unwrap_err().contains("alias"));
/// ```
pub fn check_upn(username: &str, me: &Me) -> Result<(), String> {
    let username = username.trim();
    let upn = me.user_principal_name.trim();
    if username.eq_ignore_ascii_case(upn) {
        return Ok(());
    }
    let is_alias = me
        .mail
        .iter()
        .map(String::as_str)
        .chain(me.proxy_addresses.iter().map(|a| {
            a.split_once(':')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("smtp"))
                .map_or(a.as_str(), |(_, addr)| addr)
        }))
        .any(|a| a.trim().eq_ignore_ascii_case(username));
    Err(if username.is_empty() {
        format!(
            "Presence sync needs the Contact username to be the Microsoft account's UPN \
             ({upn}), but no Contact username is set."
        )
    } else if is_alias {
        format!(
            "The Contact username {username} is an alias of the Microsoft account, not its UPN \
             {upn}. Presence sync needs the Contact username to be exactly {upn}."
        )
    } else {
        format!(
            "The Contact username {username} does not match the signed-in Microsoft account's \
             UPN {upn}. Sign in with that account or change the Contact username."
        )
    })
}

/// The reason shown while rule 6 blocks presence sync.
pub const MIGRATION_REASON: &str = "An earlier presence integration was configured on this \
installation. Switch \"Integration with Microsoft\" and \"Presence integration\" off and on \
again to move to this integration.";

/// File that remembers the move is done.
pub const MIGRATION_FILE: &str = "presence-migration.json";

/// Rule 6: with an earlier presence integration, sync stays blocked until each switch has been
/// turned off and on again (in any order); afterwards the move is remembered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Migration {
    done: bool,
    /// Per switch (Microsoft, presence): seen off since the earlier integration was reported.
    off_seen: [bool; 2],
    /// Per switch: turned on again after that.
    cycled: [bool; 2],
}

#[derive(Serialize, Deserialize)]
struct Stored {
    done: bool,
}

/// One of the two switches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Switch {
    /// "Integration with Microsoft".
    Microsoft = 0,
    /// "Presence integration".
    Presence = 1,
}

impl Migration {
    /// Restores what the data folder remembers.
    pub fn load(dir: &Path) -> Self {
        let done = crate::store::read_optional(&dir.join(MIGRATION_FILE))
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice::<Stored>(&b).ok())
            .is_some_and(|s| s.done);
        Self {
            done,
            ..Self::default()
        }
    }

    /// Whether rule 6 blocks now.
    pub fn blocks(&self, legacy_reported: bool) -> bool {
        legacy_reported && !self.done
    }

    /// The switches' values when the earlier integration is (re)reported: a switch that is off
    /// already counts as turned off.
    pub fn observe_start(&mut self, microsoft_on: bool, presence_on: bool) {
        for (i, on) in [microsoft_on, presence_on].into_iter().enumerate() {
            if !on {
                self.off_seen[i] = true;
            }
        }
    }

    /// A switch changed; returns `true` when this completed the move (save it then).
    pub fn observe(&mut self, switch: Switch, on: bool) -> bool {
        if self.done {
            return false;
        }
        let i = switch as usize;
        if !on {
            self.off_seen[i] = true;
        } else if self.off_seen[i] {
            self.cycled[i] = true;
        }
        if self.cycled == [true, true] {
            self.done = true;
            return true;
        }
        false
    }

    /// Remembers the move in the data folder.
    pub fn save(dir: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(&Stored { done: true }).map_err(std::io::Error::other)?;
        crate::store::write_atomic(&dir.join(MIGRATION_FILE), &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Me {
        Me {
            id: "id".into(),
            user_principal_name: "adele.vance@contoso.example".into(),
            mail: Some("adele.vance@contoso.example".into()),
            display_name: None,
            proxy_addresses: vec![
                "SMTP:adele.vance@contoso.example".into(),
                "smtp:a.vance@contoso.example".into(),
            ],
        }
    }

    #[test]
    fn upn_rule_names_both_values() {
        assert!(check_upn("ADELE.VANCE@contoso.example", &me()).is_ok());
        let alias = check_upn("a.vance@contoso.example", &me()).unwrap_err();
        assert!(alias.contains("alias") && alias.contains("a.vance@contoso.example"));
        assert!(alias.contains("adele.vance@contoso.example"));
        let other = check_upn("megan.bowen@contoso.example", &me()).unwrap_err();
        assert!(other.contains("does not match") && other.contains("megan.bowen"));
        assert!(
            check_upn("", &me())
                .unwrap_err()
                .contains("no Contact username")
        );
    }

    #[test]
    fn both_switches_must_go_off_and_on_in_any_order() {
        let mut m = Migration::default();
        m.observe_start(true, true);
        assert!(m.blocks(true));
        assert!(
            !m.observe(Switch::Presence, true),
            "on without off first does not count"
        );
        assert!(!m.observe(Switch::Presence, false));
        assert!(!m.observe(Switch::Microsoft, false));
        assert!(!m.observe(Switch::Microsoft, true));
        assert!(m.blocks(true));
        assert!(m.observe(Switch::Presence, true));
        assert!(!m.blocks(true));
        assert!(!m.blocks(false));
    }

    #[test]
    fn a_switch_already_off_counts_as_turned_off_and_the_move_is_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Migration::load(dir.path());
        m.observe_start(false, false);
        assert!(!m.observe(Switch::Microsoft, true));
        assert!(m.observe(Switch::Presence, true));
        Migration::save(dir.path()).unwrap();
        assert!(!Migration::load(dir.path()).blocks(true));
    }
}
