//! The synchronization state machine: pure, no I/O, no clock.
//!
//! It holds three things and derives every decision from them:
//! - **desired**: what our side of Teams should be ([`Target`]), from the last Contact status that
//!   was not our own echo (table 2);
//! - **confirmed**: what our writes made of Teams as far as we know (our session, the preferred
//!   presence we set), each side possibly *unknown* after a write whose outcome is not known;
//! - the **Teams view**: the last presence read, what the host shows, and whether the next read
//!   is a baseline (rule 1).
//!
//! The writes to do are always the difference between desired and confirmed
//! ([`PresenceMachine::pending`]). That difference is what makes the rules hold:
//! - *last writer wins, at most one write per action*: a Contact status changes `desired` once;
//!   a Teams change changes the host's status once and is not written back;
//! - *no lost update, no burst*: a failed write leaves `confirmed` as it was, so after an outage
//!   the driver writes the difference to the **latest** desired state, not the history;
//! - *only clear what we set*: `confirmed` only ever holds our own writes.
//!
//! A transition between two "write rows" needs one clear and one set (`in_call` →
//! `appear_away`: our session goes, our preferred Away comes). Sets come before clears, so Teams
//! never shows the automatic presence in between (a preferred presence overrides every session).

use host_api::ContactStatus;

use super::mapping::{
    IN_A_CALL, Target, TeamsWrite, same, target_for, teams_to_contact, writes_at_start,
};

/// A Graph `availability`/`activity` pair we write.
type Pair = (&'static str, &'static str);

/// One side of our Teams state, as far as we know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Known<T> {
    /// Our last write on this side succeeded (or nothing was ever written).
    Is(T),
    /// A write on this side may or may not have reached Teams.
    Unknown,
}

/// How a write ended, as the driver saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Teams took it (for `clearPresence`, a 404 counts: the session is already gone).
    Applied,
    /// Certainly not applied, worth repeating later (429, 401, cancelled before sending).
    Deferred,
    /// Maybe applied (time-out, broken connection, 5xx): repeat to reach the desired state.
    Unknown,
    /// Refused for good (400, 403): give up until the next Contact status.
    Refused,
}

/// A presence as read from Graph.
#[derive(Clone, Debug)]
struct Read {
    availability: String,
    activity: String,
    out_of_office: bool,
}

impl Read {
    fn same_as(&self, other: &Read) -> bool {
        same(&self.availability, &other.availability)
            && same(&self.activity, &other.activity)
            && self.out_of_office == other.out_of_office
    }

    fn is(&self, pair: Pair) -> bool {
        same(&self.availability, pair.0) && same(&self.activity, pair.1)
    }
}

/// Presence synchronization between one Contact user and their Teams presence.
#[derive(Clone, Debug)]
pub struct PresenceMachine {
    desired: Target,
    session: Known<bool>,
    preferred: Known<Option<Pair>>,
    /// What the host shows: the statuses it reported and those we set.
    shown: Option<ContactStatus>,
    /// A status we set on the host from Teams, until the host reports it back.
    echo: Option<ContactStatus>,
    /// The next read is the new baseline (a write of ours happened since the last read).
    baseline: bool,
    last_read: Option<Read>,
}

impl Default for PresenceMachine {
    fn default() -> Self {
        Self::new()
    }
}

impl PresenceMachine {
    /// Nothing of ours in Teams, nothing read yet.
    pub fn new() -> Self {
        Self {
            desired: Target::NONE,
            session: Known::Is(false),
            preferred: Known::Is(None),
            shown: None,
            echo: None,
            baseline: false,
            last_read: None,
        }
    }

    /// Start of sync (rule 4): the writes table 2 asks for the current Contact status, or no
    /// writes when it has no write row for it; then the first Teams read is applied to Contact
    /// (table 1), unless writes were made (the read after them is a baseline).
    pub fn start(&mut self, contact: ContactStatus) -> Vec<TeamsWrite> {
        self.shown = Some(contact);
        self.echo = None;
        if let Some(target) = target_for(contact) {
            self.desired = target;
        }
        if writes_at_start(contact) {
            self.pending()
        } else {
            Vec::new()
        }
    }

    /// The host's status changed (the user or the phone): the writes to do at once (table 2).
    /// A status the plugin itself set from Teams gives no write (no echo).
    pub fn on_contact_status(&mut self, status: ContactStatus) -> Vec<TeamsWrite> {
        let was_shown = self.shown.replace(status);
        if self.echo.take() == Some(status) {
            return Vec::new();
        }
        if status == ContactStatus::IN_CALL
            && was_shown != Some(ContactStatus::IN_CALL)
            && self.session == Known::Is(true)
        {
            // A new call while our earlier session was left to lapse (Teams took the host
            // over, so it was not renewed): it may be gone by now, so it is set again.
            self.session = Known::Unknown;
        }
        if let Some(target) = target_for(status) {
            self.desired = target;
        }
        self.pending()
    }

    /// The writes that take Teams from what we confirmed to what is desired (sets first).
    pub fn pending(&self) -> Vec<TeamsWrite> {
        let mut sets = Vec::new();
        let mut clears = Vec::new();
        if self.session != Known::Is(self.desired.session) {
            if self.desired.session {
                sets.push(TeamsWrite::in_a_call());
            } else {
                clears.push(TeamsWrite::ClearSession);
            }
        }
        if self.preferred != Known::Is(self.desired.preferred) {
            match self.desired.preferred {
                Some(pair) => sets.push(TeamsWrite::preferred(pair)),
                None => clears.push(TeamsWrite::ClearPreferred),
            }
        }
        sets.extend(clears);
        sets
    }

    /// The writes that keep what we set alive (the driver repeats them before they expire):
    /// our session while the host shows `in_call`, our preferred presence while it is ours.
    pub fn renewals(&self) -> Vec<TeamsWrite> {
        let mut writes = Vec::new();
        if self.desired.session
            && self.session == Known::Is(true)
            && self.shown == Some(ContactStatus::IN_CALL)
        {
            writes.push(TeamsWrite::in_a_call());
        }
        if let Some(pair) = self.desired.preferred
            && self.preferred == Known::Is(Some(pair))
        {
            writes.push(TeamsWrite::preferred(pair));
        }
        writes
    }

    /// A write finished: `ok` when Teams took it; otherwise its outcome counts as unknown
    /// (see [`PresenceMachine::on_write_outcome`] for the finer cases). Either way the next
    /// read is the new baseline (rule 1).
    pub fn on_write_done(&mut self, write: &TeamsWrite, ok: bool) {
        let outcome = if ok {
            WriteOutcome::Applied
        } else {
            WriteOutcome::Unknown
        };
        self.on_write_outcome(write, outcome);
    }

    /// A write finished with this outcome; the next read is the new baseline (rule 1).
    ///
    /// Two writes change nothing in Teams and so make no baseline: one Teams did not take
    /// ([`WriteOutcome::Deferred`]) and a renewal (the state we confirmed, set again). A Teams
    /// change read after them is therefore never mistaken for our own.
    pub fn on_write_outcome(&mut self, write: &TeamsWrite, outcome: WriteOutcome) {
        let renewal = outcome == WriteOutcome::Applied && self.confirms(write);
        self.baseline |= outcome != WriteOutcome::Deferred && !renewal;
        match outcome {
            WriteOutcome::Applied => self.applied(write),
            WriteOutcome::Deferred => {}
            WriteOutcome::Unknown => self.unknown(write),
            WriteOutcome::Refused => self.refused(write),
        }
    }

    /// Whether `write` would leave our confirmed state as it is.
    fn confirms(&self, write: &TeamsWrite) -> bool {
        match *write {
            TeamsWrite::SetSession { .. } => self.session == Known::Is(true),
            TeamsWrite::ClearSession => self.session == Known::Is(false),
            TeamsWrite::SetPreferred {
                availability,
                activity,
            } => self.preferred == Known::Is(Some((availability, activity))),
            TeamsWrite::ClearPreferred => self.preferred == Known::Is(None),
        }
    }

    fn applied(&mut self, write: &TeamsWrite) {
        match *write {
            TeamsWrite::SetSession { .. } => self.session = Known::Is(true),
            TeamsWrite::ClearSession => self.session = Known::Is(false),
            TeamsWrite::SetPreferred {
                availability,
                activity,
            } => self.preferred = Known::Is(Some((availability, activity))),
            TeamsWrite::ClearPreferred => self.preferred = Known::Is(None),
        }
    }

    fn unknown(&mut self, write: &TeamsWrite) {
        match write {
            TeamsWrite::SetSession { .. } | TeamsWrite::ClearSession => {
                self.session = Known::Unknown;
            }
            TeamsWrite::SetPreferred { .. } | TeamsWrite::ClearPreferred => {
                self.preferred = Known::Unknown;
            }
        }
    }

    /// Teams refused for good. A refused set is given up until the next Contact status; a
    /// refused clear is left to expire (every write of ours carries an expiry).
    fn refused(&mut self, write: &TeamsWrite) {
        match write {
            TeamsWrite::SetSession { .. } => {
                self.session = Known::Is(false);
                self.desired.session = false;
            }
            TeamsWrite::ClearSession => self.session = Known::Is(false),
            TeamsWrite::SetPreferred { .. } => {
                self.preferred = Known::Is(None);
                self.desired.preferred = None;
            }
            TeamsWrite::ClearPreferred => self.preferred = Known::Is(None),
        }
    }

    /// A presence read: `Some(status)` when the host's status must change to it.
    ///
    /// Nothing changes when the read is the baseline after a write of ours, when Teams shows
    /// the same as at the last read (the Contact side may have changed since: last writer
    /// wins), when it is our own session or preferred presence (no echo), when table 1 says
    /// "no synchronization", or when the host already shows the mapped status.
    pub fn on_teams_read(
        &mut self,
        availability: &str,
        activity: &str,
        out_of_office: bool,
    ) -> Option<ContactStatus> {
        let read = Read {
            availability: availability.to_owned(),
            activity: activity.to_owned(),
            out_of_office,
        };
        let previous = self.last_read.replace(read.clone());
        if std::mem::take(&mut self.baseline) {
            return None;
        }
        if previous.is_some_and(|p| p.same_as(&read)) || self.is_own_echo(&read) {
            return None;
        }
        let status = teams_to_contact(availability, activity, out_of_office)?;
        self.release_overridden_preferred();
        if self.shown == Some(status) {
            return None;
        }
        self.shown = Some(status);
        self.echo = Some(status);
        Some(status)
    }

    /// Whether a read is what our own writes show: our "In a call" session while it may be
    /// set (a Contact call never becomes `in_teams_call`), our preferred presence while it is
    /// set and not cleared.
    fn is_own_echo(&self, read: &Read) -> bool {
        if self.session != Known::Is(false) && read.is(IN_A_CALL) {
            return true;
        }
        let ours = match self.preferred {
            Known::Is(p) => p,
            Known::Unknown => self.desired.preferred,
        };
        ours.is_some_and(|pair| read.is(pair))
    }

    /// Teams shows a presence of its own while our preferred presence is set: the user changed
    /// Teams (which replaces the preferred presence). That change is carried over and our
    /// preferred presence is no longer ours to renew or clear.
    fn release_overridden_preferred(&mut self) {
        if let Known::Is(Some(_)) = self.preferred {
            self.preferred = Known::Is(None);
            self.desired.preferred = None;
        }
    }

    /// What to clear on a clean exit (rule 5): our session and the preferred presence we set
    /// (also when their state is unknown). Nothing is desired afterwards.
    pub fn clean_exit(&mut self) -> Vec<TeamsWrite> {
        self.desired = Target::NONE;
        self.pending()
    }

    /// The last presence read (`availability`, `activity`).
    pub fn last_read(&self) -> Option<(String, String)> {
        self.last_read
            .as_ref()
            .map(|r| (r.availability.clone(), r.activity.clone()))
    }

    /// What the host shows, as far as the machine knows.
    pub fn shown(&self) -> Option<ContactStatus> {
        self.shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presence::mapping::{APPEAR_AWAY, APPEAR_OFFLINE};
    use host_api::ContactStatus as S;

    const SET_CALL: TeamsWrite = TeamsWrite::SetSession {
        availability: "Busy",
        activity: "InACall",
    };
    const SET_AWAY: TeamsWrite = TeamsWrite::SetPreferred {
        availability: "Away",
        activity: "Away",
    };
    const SET_OFFLINE: TeamsWrite = TeamsWrite::SetPreferred {
        availability: "Offline",
        activity: "OffWork",
    };

    /// A machine started at `status` with Teams read once as `Available/Available`.
    fn started(status: ContactStatus) -> PresenceMachine {
        let mut m = PresenceMachine::new();
        let writes = m.start(status);
        done(&mut m, &writes);
        m.on_teams_read("Available", "Available", false);
        m
    }

    /// Reports every write as applied.
    fn done(m: &mut PresenceMachine, writes: &[TeamsWrite]) {
        for w in writes {
            m.on_write_done(w, true);
        }
    }

    /// A status change whose writes all succeed; returns the writes.
    fn act(m: &mut PresenceMachine, status: ContactStatus) -> Vec<TeamsWrite> {
        let writes = m.on_contact_status(status);
        done(m, &writes);
        writes
    }

    #[test]
    fn table_2_in_call_and_leaving_it() {
        let leaving = [
            S::ONLINE,
            S::AVAILABLE,
            S::OFFLINE,
            S::AWAY,
            S::BUSY,
            S::from_raw(200),
        ];
        for other in leaving {
            let mut m = started(S::ONLINE);
            assert_eq!(act(&mut m, S::IN_CALL), vec![SET_CALL]);
            assert_eq!(
                act(&mut m, other),
                vec![TeamsWrite::ClearSession],
                "{other}"
            );
        }
        let mut m = started(S::ONLINE);
        act(&mut m, S::IN_CALL);
        assert_eq!(
            act(&mut m, S::APPEAR_AWAY),
            vec![SET_AWAY, TeamsWrite::ClearSession]
        );
    }

    #[test]
    fn table_2_appear_away_offline_and_leaving_them() {
        let leaving = [S::ONLINE, S::AVAILABLE, S::OFFLINE, S::AWAY, S::BUSY];
        for (status, write) in [(S::APPEAR_AWAY, SET_AWAY), (S::APPEAR_OFFLINE, SET_OFFLINE)] {
            for other in leaving {
                let mut m = started(S::ONLINE);
                assert_eq!(act(&mut m, status), vec![write]);
                assert_eq!(
                    act(&mut m, other),
                    vec![TeamsWrite::ClearPreferred],
                    "{other}"
                );
            }
        }
        // Away → offline replaces the preferred presence: one write.
        let mut m = started(S::ONLINE);
        act(&mut m, S::APPEAR_AWAY);
        assert_eq!(act(&mut m, S::APPEAR_OFFLINE), vec![SET_OFFLINE]);
        assert_eq!(
            act(&mut m, S::IN_CALL),
            vec![SET_CALL, TeamsWrite::ClearPreferred]
        );
    }

    #[test]
    fn table_2_rows_without_synchronization() {
        for status in [S::BUSY, S::AWAY, S::ONLINE, S::AVAILABLE, S::OFFLINE] {
            let mut m = started(S::ONLINE);
            assert!(act(&mut m, status).is_empty(), "{status}");
        }
        // Clearing the preferred presence only if we set it.
        let m = started(S::APPEAR_AWAY);
        assert!(m.pending().is_empty());
        let mut m = started(S::BUSY);
        assert!(act(&mut m, S::ONLINE).is_empty());
    }

    #[test]
    fn teams_statuses_are_never_written_back() {
        for status in [S::IN_TEAMS_CALL, S::IN_CALENDAR_MEETING] {
            let mut m = started(S::ONLINE);
            assert!(act(&mut m, status).is_empty());
            let mut m = started(S::ONLINE);
            act(&mut m, S::APPEAR_AWAY);
            assert!(act(&mut m, status).is_empty(), "{status}");
        }
    }

    #[test]
    fn a_contact_call_never_becomes_in_teams_call() {
        let mut m = started(S::ONLINE);
        act(&mut m, S::IN_CALL);
        assert_eq!(m.on_teams_read("Busy", "InACall", false), None); // baseline
        assert_eq!(m.on_teams_read("Busy", "InACall", false), None);
        // The user presents in Teams during the call: a real Teams change.
        assert_eq!(
            m.on_teams_read("DoNotDisturb", "Presenting", false),
            Some(S::IN_TEAMS_CALL)
        );
        // Presenting ends; Teams shows our session again: not a baseline, a change from the
        // last read, and still no `in_teams_call` from it.
        assert_eq!(m.on_teams_read("Busy", "InACall", false), None);
        assert_eq!(m.shown(), Some(S::IN_TEAMS_CALL));
        // A write of unknown outcome counts as ours too.
        let mut m = started(S::ONLINE);
        let writes = m.on_contact_status(S::IN_CALL);
        m.on_write_done(&writes[0], false);
        m.on_teams_read("Available", "Available", false);
        assert_eq!(m.on_teams_read("Busy", "InACall", false), None);
    }

    #[test]
    fn our_own_preferred_away_read_back_changes_nothing() {
        for (status, pair) in [
            (S::APPEAR_AWAY, APPEAR_AWAY),
            (S::APPEAR_OFFLINE, APPEAR_OFFLINE),
        ] {
            let mut m = started(S::ONLINE);
            act(&mut m, status);
            assert_eq!(m.on_teams_read(pair.0, pair.1, false), None);
            assert_eq!(
                m.on_teams_read("Available", "Available", false),
                Some(S::ONLINE)
            );
            let mut m = started(S::ONLINE);
            act(&mut m, status);
            m.on_teams_read("Offline", "Offline", false); // baseline (no Teams client)
            assert_eq!(m.on_teams_read(pair.0, pair.1, false), None, "{status}");
            assert_eq!(m.shown(), Some(status));
        }
    }

    #[test]
    fn clearing_our_preferred_away_for_busy_does_not_turn_contact_online() {
        let mut m = started(S::ONLINE);
        act(&mut m, S::APPEAR_AWAY);
        assert_eq!(m.on_teams_read("Away", "Away", false), None);
        assert_eq!(act(&mut m, S::BUSY), vec![TeamsWrite::ClearPreferred]);
        assert_eq!(m.on_teams_read("Available", "Available", false), None); // baseline
        assert_eq!(m.on_teams_read("Available", "Available", false), None);
        assert_eq!(m.shown(), Some(S::BUSY));
        // A real change in Teams afterwards is carried over.
        assert_eq!(
            m.on_teams_read("Busy", "InAMeeting", false),
            Some(S::IN_CALENDAR_MEETING)
        );
    }

    #[test]
    fn a_teams_change_is_carried_over_once_and_not_echoed() {
        let mut m = started(S::ONLINE);
        assert_eq!(m.on_teams_read("Busy", "Busy", false), Some(S::BUSY));
        assert!(m.on_contact_status(S::BUSY).is_empty()); // the host reports it back
        assert_eq!(m.on_teams_read("Busy", "Busy", false), None);
        assert_eq!(m.on_teams_read("DoNotDisturb", "DoNotDisturb", false), None); // shown already
        assert_eq!(m.on_teams_read("Away", "Away", false), Some(S::AWAY));
    }

    #[test]
    fn last_writer_wins() {
        let mut m = started(S::ONLINE);
        // Contact changes last: Teams, unchanged, does not undo it.
        assert!(act(&mut m, S::BUSY).is_empty());
        assert_eq!(m.on_teams_read("Available", "Available", false), None);
        // Teams changes last: carried over, once, no write back.
        assert_eq!(
            m.on_teams_read("BeRightBack", "BeRightBack", false),
            Some(S::AWAY)
        );
        assert!(m.on_contact_status(S::AWAY).is_empty());
        // Contact changes last again.
        assert!(act(&mut m, S::ONLINE).is_empty());
        assert_eq!(m.on_teams_read("BeRightBack", "BeRightBack", false), None);
        assert_eq!(m.shown(), Some(S::ONLINE));
    }

    #[test]
    fn the_user_overriding_our_preferred_in_teams_is_carried_over_and_not_cleared() {
        let mut m = started(S::ONLINE);
        act(&mut m, S::APPEAR_AWAY);
        m.on_teams_read("Away", "Away", false);
        assert_eq!(m.on_teams_read("Busy", "Busy", false), Some(S::BUSY));
        assert!(m.on_contact_status(S::BUSY).is_empty()); // echo: no clear
        assert!(m.renewals().is_empty());
        assert!(m.clean_exit().is_empty());
    }

    #[test]
    fn at_most_one_write_per_user_action() {
        let mut m = started(S::ONLINE);
        let actions = [
            S::BUSY,
            S::APPEAR_AWAY,
            S::APPEAR_OFFLINE,
            S::APPEAR_AWAY,
            S::ONLINE,
            S::IN_CALL,
            S::AWAY,
            S::IN_CALL,
            S::ONLINE,
            S::APPEAR_OFFLINE,
            S::OFFLINE,
            S::AVAILABLE,
        ];
        for status in actions {
            assert!(act(&mut m, status).len() <= 1, "{status}");
            // Reading back our own write changes nothing on the Contact side.
            let read = m.last_read().unwrap();
            assert_eq!(m.on_teams_read(&read.0, &read.1, false), None);
        }
    }

    #[test]
    fn start_of_sync() {
        for (status, writes) in [
            (S::IN_CALL, vec![SET_CALL]),
            (S::APPEAR_AWAY, vec![SET_AWAY]),
            (S::APPEAR_OFFLINE, vec![SET_OFFLINE]),
        ] {
            let mut m = PresenceMachine::new();
            assert_eq!(m.start(status), writes);
            done(&mut m, &writes);
            // The read after our writes is a baseline.
            assert_eq!(m.on_teams_read("Busy", "Busy", false), None, "{status}");
        }
        for status in [S::ONLINE, S::BUSY, S::AWAY, S::IN_TEAMS_CALL, S::OFFLINE] {
            let mut m = PresenceMachine::new();
            assert!(m.start(status).is_empty());
            // Teams is read and applied.
            assert_eq!(
                m.on_teams_read("DoNotDisturb", "Presenting", false),
                Some(S::IN_TEAMS_CALL).filter(|s| *s != status)
            );
        }
        let mut m = PresenceMachine::new();
        m.start(S::BUSY);
        assert_eq!(
            m.on_teams_read("Available", "Available", false),
            Some(S::ONLINE)
        );
        let mut m = PresenceMachine::new();
        m.start(S::ONLINE);
        assert_eq!(m.on_teams_read("Available", "Available", false), None);
        assert_eq!(
            m.last_read(),
            Some(("Available".into(), "Available".into()))
        );
    }

    #[test]
    fn failed_writes_collapse_to_the_latest_state() {
        let mut m = started(S::ONLINE);
        let writes = m.on_contact_status(S::IN_CALL);
        m.on_write_outcome(&writes[0], WriteOutcome::Deferred); // 429
        assert_eq!(m.pending(), vec![SET_CALL]);
        m.on_contact_status(S::ONLINE);
        assert!(m.pending().is_empty(), "no stale write after the outage");
        m.on_contact_status(S::APPEAR_AWAY);
        assert_eq!(m.pending(), vec![SET_AWAY], "no lost update");

        // Maybe applied: the way back clears it (404 is fine), the way forward repeats it.
        let mut m = started(S::ONLINE);
        let writes = m.on_contact_status(S::IN_CALL);
        m.on_write_outcome(&writes[0], WriteOutcome::Unknown);
        assert_eq!(m.pending(), vec![SET_CALL]);
        assert_eq!(
            m.on_contact_status(S::ONLINE),
            vec![TeamsWrite::ClearSession]
        );

        // Refused: given up until the next Contact status.
        let mut m = started(S::ONLINE);
        let writes = m.on_contact_status(S::APPEAR_AWAY);
        m.on_write_outcome(&writes[0], WriteOutcome::Refused);
        assert!(m.pending().is_empty());
        assert!(m.on_contact_status(S::ONLINE).is_empty());
        assert_eq!(m.on_contact_status(S::APPEAR_AWAY), vec![SET_AWAY]);
    }

    #[test]
    fn a_new_call_after_our_session_was_left_to_lapse_sets_it_again() {
        let mut m = started(S::ONLINE);
        act(&mut m, S::IN_CALL);
        m.on_teams_read("Busy", "InACall", false);
        assert_eq!(
            m.on_teams_read("DoNotDisturb", "Presenting", false),
            Some(S::IN_TEAMS_CALL)
        );
        assert!(m.on_contact_status(S::IN_TEAMS_CALL).is_empty());
        assert_eq!(
            m.on_teams_read("Available", "Available", false),
            Some(S::ONLINE)
        );
        assert!(m.on_contact_status(S::ONLINE).is_empty());
        assert_eq!(m.on_contact_status(S::IN_CALL), vec![SET_CALL]);
    }

    #[test]
    fn renewals_while_the_call_lasts_and_the_preferred_is_ours() {
        let mut m = started(S::ONLINE);
        assert!(m.renewals().is_empty());
        act(&mut m, S::IN_CALL);
        assert_eq!(m.renewals(), vec![SET_CALL]);
        m.on_teams_read("Busy", "InACall", false);
        // Teams moved the host to a meeting: the session is left to lapse.
        assert_eq!(
            m.on_teams_read("Busy", "InAMeeting", false),
            Some(S::IN_CALENDAR_MEETING)
        );
        assert!(m.renewals().is_empty());
        assert!(m.on_contact_status(S::IN_CALENDAR_MEETING).is_empty());
        assert_eq!(
            act(&mut m, S::APPEAR_OFFLINE),
            vec![SET_OFFLINE, TeamsWrite::ClearSession]
        );
        assert_eq!(m.renewals(), vec![SET_OFFLINE]);
    }

    #[test]
    fn renewals_and_refused_writes_make_no_baseline() {
        let mut m = started(S::ONLINE);
        act(&mut m, S::IN_CALL);
        m.on_teams_read("Busy", "InACall", false);
        m.on_write_done(&SET_CALL, true); // renewal
        assert_eq!(
            m.on_teams_read("DoNotDisturb", "Presenting", false),
            Some(S::IN_TEAMS_CALL)
        );
        let mut m = started(S::ONLINE);
        let writes = m.on_contact_status(S::APPEAR_AWAY);
        m.on_write_outcome(&writes[0], WriteOutcome::Deferred);
        assert_eq!(m.on_teams_read("Busy", "Busy", false), Some(S::BUSY));
    }

    #[test]
    fn clean_exit_clears_what_we_set_only() {
        let mut m = started(S::ONLINE);
        assert!(m.clean_exit().is_empty());
        let mut m = started(S::ONLINE);
        act(&mut m, S::IN_CALL);
        assert_eq!(m.clean_exit(), vec![TeamsWrite::ClearSession]);
        let mut m = started(S::ONLINE);
        act(&mut m, S::APPEAR_OFFLINE);
        assert_eq!(m.clean_exit(), vec![TeamsWrite::ClearPreferred]);
        let mut m = started(S::ONLINE);
        let writes = m.on_contact_status(S::APPEAR_AWAY);
        m.on_write_done(&writes[0], false);
        assert_eq!(m.clean_exit(), vec![TeamsWrite::ClearPreferred]);
    }

    #[test]
    fn no_synchronization_reads_change_nothing() {
        let mut m = started(S::ONLINE);
        for (a, x) in [
            ("Offline", "OffWork"),
            ("Offline", "Offline"),
            ("PresenceUnknown", "PresenceUnknown"),
            ("Available", "Presenting"),
        ] {
            assert_eq!(m.on_teams_read(a, x, false), None, "{a}/{x}");
        }
        assert_eq!(m.shown(), Some(S::ONLINE));
    }
}
