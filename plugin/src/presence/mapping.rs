//! The two tables of `shared/spec/presence-mapping.md`, as pure functions.
//!
//! - Table 1 (Microsoft Teams → Contact): [`teams_to_contact`] (and [`classify`], which also says
//!   whether a combination is one the table knows, so the driver can log unknown ones once).
//! - Table 2 (Contact → Microsoft Teams): [`TeamsWrite`] and [`target_for`], the Teams-side state
//!   a Contact status asks for; the "leaving" rows follow from comparing targets (see
//!   [`super::machine`]).
//!
//! Graph values are compared case-insensitively (the documentation shows both PascalCase and
//! lower-camel spellings).

use host_api::ContactStatus;

/// `availability`/`activity` of our "In a call" session (table 2, row `in_call`).
pub const IN_A_CALL: (&str, &str) = ("Busy", "InACall");
/// Preferred presence for `appear_away` (table 2).
pub const APPEAR_AWAY: (&str, &str) = ("Away", "Away");
/// Preferred presence for `appear_offline` (table 2).
pub const APPEAR_OFFLINE: (&str, &str) = ("Offline", "OffWork");

/// What table 1 says about a Graph presence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mapping {
    /// Show this Contact status.
    Status(ContactStatus),
    /// A row of the table that says "no synchronization" (offline, appear offline, unknown).
    NoSync,
    /// A combination the table does not list: no synchronization, logged once at debug level.
    Unlisted,
}

/// Table 1: the Contact status for a Teams presence, or `None` for "no synchronization".
///
/// ```
/// use contact_ms365::presence::teams_to_contact;
/// use host_api::ContactStatus;
/// assert_eq!(teams_to_contact("Busy", "InACall", false), Some(ContactStatus::IN_TEAMS_CALL));
/// assert_eq!(teams_to_contact("Offline", "OffWork", false), None);
/// ```
pub fn teams_to_contact(
    availability: &str,
    activity: &str,
    out_of_office: bool,
) -> Option<ContactStatus> {
    match classify(availability, activity, out_of_office) {
        Mapping::Status(s) => Some(s),
        Mapping::NoSync | Mapping::Unlisted => None,
    }
}

/// Table 1, row by row. `out_of_office` (`outOfOfficeSettings.isOutOfOffice`) does not change
/// the result: "Available, out of office" maps to `online` like "Available", and the activity
/// `OutOfOffice` under `Available` is accepted with or without the flag *(resolution: the
/// activity itself says out of office)*.
pub fn classify(availability: &str, activity: &str, out_of_office: bool) -> Mapping {
    let _ = out_of_office;
    let a = Canon::of(availability);
    let x = Canon::of(activity);
    use Canon::*;
    let status = match (a, x) {
        (Available, Available | OutOfOffice) => ContactStatus::ONLINE,
        (AvailableIdle, _) => ContactStatus::ONLINE,
        (Busy, Busy) | (BusyIdle, _) => ContactStatus::BUSY,
        (Busy, InACall | InAConferenceCall) => ContactStatus::IN_TEAMS_CALL,
        (Busy, InAMeeting) => ContactStatus::IN_CALENDAR_MEETING,
        (DoNotDisturb, DoNotDisturb | Focusing | UrgentInterruptionsOnly) => ContactStatus::BUSY,
        (DoNotDisturb, Presenting) => ContactStatus::IN_TEAMS_CALL,
        (Away, Away) | (BeRightBack, BeRightBack) => ContactStatus::AWAY,
        (Offline, OffWork | Offline) | (PresenceUnknown, _) => return Mapping::NoSync,
        _ => return Mapping::Unlisted,
    };
    Mapping::Status(status)
}

/// The Graph values table 1 names (availability and activity share one namespace here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Canon {
    Available,
    AvailableIdle,
    Away,
    BeRightBack,
    Busy,
    BusyIdle,
    DoNotDisturb,
    Offline,
    OffWork,
    PresenceUnknown,
    InACall,
    InAConferenceCall,
    InAMeeting,
    Presenting,
    Focusing,
    UrgentInterruptionsOnly,
    OutOfOffice,
    Other,
}

impl Canon {
    fn of(value: &str) -> Canon {
        const NAMES: &[(&str, Canon)] = &[
            ("Available", Canon::Available),
            ("AvailableIdle", Canon::AvailableIdle),
            ("Away", Canon::Away),
            ("BeRightBack", Canon::BeRightBack),
            ("Busy", Canon::Busy),
            ("BusyIdle", Canon::BusyIdle),
            ("DoNotDisturb", Canon::DoNotDisturb),
            ("Offline", Canon::Offline),
            ("OffWork", Canon::OffWork),
            ("PresenceUnknown", Canon::PresenceUnknown),
            ("InACall", Canon::InACall),
            ("InAConferenceCall", Canon::InAConferenceCall),
            ("InAMeeting", Canon::InAMeeting),
            ("Presenting", Canon::Presenting),
            ("Focusing", Canon::Focusing),
            ("UrgentInterruptionsOnly", Canon::UrgentInterruptionsOnly),
            ("OutOfOffice", Canon::OutOfOffice),
        ];
        NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(value.trim()))
            .map_or(Canon::Other, |(_, c)| *c)
    }
}

/// Whether two Graph values are the same (case-insensitive).
pub fn same(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// A write to the user's Teams presence (table 2). `POST /users/{id}/presence/<action>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TeamsWrite {
    /// `setPresence` of our app's session (with `sessionId` and an explicit expiry).
    SetSession {
        /// Graph availability.
        availability: &'static str,
        /// Graph activity.
        activity: &'static str,
    },
    /// `clearPresence` of our app's session (404: already gone).
    ClearSession,
    /// `setUserPreferredPresence` (with an explicit expiry).
    SetPreferred {
        /// Graph availability.
        availability: &'static str,
        /// Graph activity.
        activity: &'static str,
    },
    /// `clearUserPreferredPresence`.
    ClearPreferred,
}

impl TeamsWrite {
    /// The Graph action name (the last path segment).
    pub fn action(&self) -> &'static str {
        match self {
            TeamsWrite::SetSession { .. } => "setPresence",
            TeamsWrite::ClearSession => "clearPresence",
            TeamsWrite::SetPreferred { .. } => "setUserPreferredPresence",
            TeamsWrite::ClearPreferred => "clearUserPreferredPresence",
        }
    }

    /// Our "In a call" session.
    pub fn in_a_call() -> TeamsWrite {
        TeamsWrite::SetSession {
            availability: IN_A_CALL.0,
            activity: IN_A_CALL.1,
        }
    }

    /// A preferred presence write for a pair.
    pub fn preferred(pair: (&'static str, &'static str)) -> TeamsWrite {
        TeamsWrite::SetPreferred {
            availability: pair.0,
            activity: pair.1,
        }
    }
}

/// What our side of Teams should look like for a Contact status (table 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// Our "In a call" session is set.
    pub session: bool,
    /// The preferred presence we set, if any.
    pub preferred: Option<(&'static str, &'static str)>,
}

impl Target {
    /// Nothing of ours in Teams.
    pub const NONE: Target = Target {
        session: false,
        preferred: None,
    };
}

/// Table 2: the Teams-side state a Contact status asks for, or `None` for the statuses that are
/// never written back (`in_teams_call`, `in_calendar_meeting`: they came from Teams).
///
/// `busy`, `away`, `online`, `available`, `offline` (and statuses this version does not know)
/// ask for nothing of ours: moving to them from `in_call`, `appear_away` or `appear_offline`
/// is what the "leaving" rows describe.
pub fn target_for(status: ContactStatus) -> Option<Target> {
    match status {
        ContactStatus::IN_TEAMS_CALL | ContactStatus::IN_CALENDAR_MEETING => None,
        ContactStatus::IN_CALL => Some(Target {
            session: true,
            preferred: None,
        }),
        ContactStatus::APPEAR_AWAY => Some(Target {
            session: false,
            preferred: Some(APPEAR_AWAY),
        }),
        ContactStatus::APPEAR_OFFLINE => Some(Target {
            session: false,
            preferred: Some(APPEAR_OFFLINE),
        }),
        _ => Some(Target::NONE),
    }
}

/// Whether table 2 has a write row for this status (used at the start of sync, rule 4).
pub fn writes_at_start(status: ContactStatus) -> bool {
    target_for(status).is_some_and(|t| t != Target::NONE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use host_api::ContactStatus as S;

    /// Table 1, one assertion per row (and per alternative within a row).
    #[test]
    fn table_1_every_row() {
        let rows: &[(&str, &str, bool, Option<S>)] = &[
            ("Available", "Available", false, Some(S::ONLINE)),
            ("Available", "Available", true, Some(S::ONLINE)),
            ("Available", "OutOfOffice", true, Some(S::ONLINE)),
            ("AvailableIdle", "Inactive", false, Some(S::ONLINE)),
            ("AvailableIdle", "Available", false, Some(S::ONLINE)),
            ("Busy", "Busy", false, Some(S::BUSY)),
            ("BusyIdle", "Inactive", false, Some(S::BUSY)),
            ("BusyIdle", "Busy", false, Some(S::BUSY)),
            ("Busy", "InACall", false, Some(S::IN_TEAMS_CALL)),
            ("Busy", "InAConferenceCall", false, Some(S::IN_TEAMS_CALL)),
            ("Busy", "InAMeeting", false, Some(S::IN_CALENDAR_MEETING)),
            ("DoNotDisturb", "DoNotDisturb", false, Some(S::BUSY)),
            ("DoNotDisturb", "Focusing", false, Some(S::BUSY)),
            (
                "DoNotDisturb",
                "UrgentInterruptionsOnly",
                false,
                Some(S::BUSY),
            ),
            ("DoNotDisturb", "Presenting", false, Some(S::IN_TEAMS_CALL)),
            ("Away", "Away", false, Some(S::AWAY)),
            ("BeRightBack", "BeRightBack", false, Some(S::AWAY)),
            ("Offline", "OffWork", false, None),
            ("Offline", "Offline", false, None),
            ("PresenceUnknown", "PresenceUnknown", false, None),
            ("PresenceUnknown", "Available", false, None),
            // Any other combination.
            ("Available", "InACall", false, None),
            ("Away", "BeRightBack", false, None),
            ("Busy", "Presenting", false, None),
            ("Teleporting", "Available", false, None),
        ];
        for (a, x, ooo, expected) in rows {
            assert_eq!(teams_to_contact(a, x, *ooo), *expected, "{a}/{x} ooo={ooo}");
        }
    }

    #[test]
    fn table_1_is_case_insensitive_and_tells_unlisted_from_no_sync() {
        assert_eq!(
            teams_to_contact("busy", "inACall", false),
            Some(S::IN_TEAMS_CALL)
        );
        assert_eq!(
            teams_to_contact("AVAILABLE", "available", false),
            Some(S::ONLINE)
        );
        assert_eq!(classify("Offline", "Offline", false), Mapping::NoSync);
        assert_eq!(classify("PresenceUnknown", "x", false), Mapping::NoSync);
        assert_eq!(
            classify("Available", "Presenting", false),
            Mapping::Unlisted
        );
        assert_eq!(classify("", "", false), Mapping::Unlisted);
    }

    /// Table 2, the target of each Contact status (the writes follow in the machine's tests).
    #[test]
    fn table_2_targets() {
        let call = Target {
            session: true,
            preferred: None,
        };
        assert_eq!(target_for(S::IN_CALL), Some(call));
        assert_eq!(
            target_for(S::APPEAR_AWAY).unwrap().preferred,
            Some(("Away", "Away"))
        );
        assert_eq!(
            target_for(S::APPEAR_OFFLINE).unwrap().preferred,
            Some(("Offline", "OffWork"))
        );
        for s in [
            S::BUSY,
            S::AWAY,
            S::ONLINE,
            S::AVAILABLE,
            S::OFFLINE,
            S::from_raw(200),
        ] {
            assert_eq!(target_for(s), Some(Target::NONE), "{s}");
            assert!(!writes_at_start(s));
        }
        for s in [S::IN_TEAMS_CALL, S::IN_CALENDAR_MEETING] {
            assert_eq!(target_for(s), None, "{s}");
            assert!(!writes_at_start(s));
        }
        for s in [S::IN_CALL, S::APPEAR_AWAY, S::APPEAR_OFFLINE] {
            assert!(writes_at_start(s));
        }
    }

    #[test]
    fn write_actions() {
        assert_eq!(TeamsWrite::in_a_call().action(), "setPresence");
        assert_eq!(TeamsWrite::ClearSession.action(), "clearPresence");
        assert_eq!(
            TeamsWrite::preferred(APPEAR_AWAY).action(),
            "setUserPreferredPresence"
        );
        assert_eq!(
            TeamsWrite::ClearPreferred.action(),
            "clearUserPreferredPresence"
        );
    }
}
