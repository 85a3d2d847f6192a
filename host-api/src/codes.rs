//! Open enumerations: `#[repr(transparent)]` integers with named constants.
//!
//! A Rust `enum` can never gain a variant without breaking the ABI, so every value set that may
//! grow (statuses, error codes, log levels, ...) is a newtype over an integer. A newer side may
//! send a value the older side does not know: [`name`](ContactStatus::name) then returns `None`
//! and the receiver must treat it as "unknown", never panic.

use abi_stable::StableAbi;

/// Defines an open enumeration: a transparent `u8` newtype with named constants and the
/// `snake_case` wire name of each (the names used by the demo host's scripted mode).
macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        pub struct $name:ident;
        $( $(#[$cmeta:meta])* $konst:ident = $value:literal => $wire:literal, )+
    ) => {
        $(#[$meta])*
        #[repr(transparent)]
        #[derive(StableAbi, Copy, Clone, PartialEq, Eq, Hash)]
        pub struct $name(u8);

        impl $name {
            $( $(#[$cmeta])* pub const $konst: Self = Self($value); )+

            /// Every value this version of host-api knows, in declaration order.
            pub const KNOWN: &'static [Self] = &[ $( Self::$konst ),+ ];

            /// Wraps a raw value, known or not (a newer peer may send values added later).
            pub const fn from_raw(raw: u8) -> Self {
                Self(raw)
            }

            /// The raw value.
            pub const fn raw(self) -> u8 {
                self.0
            }

            /// The `snake_case` name, or `None` for a value this version does not know.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $value => Some($wire), )+
                    _ => None,
                }
            }

            /// The value with this `snake_case` name, if this version knows it.
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $( $wire => Some(Self::$konst), )+
                    _ => None,
                }
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self.name() {
                    Some(name) => f.write_str(name),
                    None => write!(f, "{}({})", stringify!($name), self.0),
                }
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self.name() {
                    Some(name) => f.write_str(name),
                    None => write!(f, "unknown({})", self.0),
                }
            }
        }
    };
}

open_enum! {
    /// A Contact Desktop status, as in `shared/spec/presence-mapping.md`.
    ///
    /// ```
    /// use host_api::ContactStatus;
    /// assert_eq!(ContactStatus::from_name("in_call"), Some(ContactStatus::IN_CALL));
    /// assert_eq!(ContactStatus::from_raw(200).name(), None); // sent by a newer host
    /// ```
    pub struct ContactStatus;
    /// Logged on to Contact Desktop, idle line (automatic).
    ONLINE = 0 => "online",
    /// Not logged on to a client, reachable on a desk or mobile phone (automatic).
    AVAILABLE = 1 => "available",
    /// Not logged on anywhere (automatic).
    OFFLINE = 2 => "offline",
    /// Inactive, idle (automatic).
    AWAY = 3 => "away",
    /// On a Contact (telephony) call (automatic).
    IN_CALL = 4 => "in_call",
    /// In a Microsoft Teams call or presenting (set only by Teams sync).
    IN_TEAMS_CALL = 5 => "in_teams_call",
    /// In a meeting per the calendar (set only by Teams sync).
    IN_CALENDAR_MEETING = 6 => "in_calendar_meeting",
    /// The user chose "Appear away".
    APPEAR_AWAY = 7 => "appear_away",
    /// The user chose "Busy".
    BUSY = 8 => "busy",
    /// The user chose "Appear offline".
    APPEAR_OFFLINE = 9 => "appear_offline",
}

open_enum! {
    /// A stable error code. Hosts branch on the code, never on the message.
    pub struct ErrorCode;
    /// The request was malformed or a value was out of range; nothing was applied.
    BAD_REQUEST = 1 => "bad_request",
    /// The feature needs a licensed add-on the host did not report.
    UNLICENSED = 2 => "unlicensed",
    /// The feature needs a Microsoft 365 sign-in.
    NOT_SIGNED_IN = 3 => "not_signed_in",
    /// A contact sync did not complete.
    SYNC_FAILED = 4 => "sync_failed",
    /// The operation did not finish in time.
    TIMEOUT = 5 => "timeout",
    /// The operation was cancelled (switch-off or shutdown).
    CANCELLED = 6 => "cancelled",
    /// Anything else the plugin reports; the message says what.
    PLUGIN_ERROR = 7 => "plugin_error",
    /// The plugin panicked; the panic was caught and logged, the plugin keeps running.
    PANICKED = 8 => "panicked",
    /// An `extension` operation this side does not know.
    UNSUPPORTED = 9 => "unsupported",
}

open_enum! {
    /// The "Integration with Microsoft" part of the integration state.
    pub struct MicrosoftState;
    /// Switched off.
    OFF = 0 => "off",
    /// Switched on, but the host lacks the `contact_connect` add-on.
    UNLICENSED = 1 => "unlicensed",
    /// An interactive sign-in is under way.
    SIGNING_IN = 2 => "signing_in",
    /// Signed in and working.
    ACTIVE = 3 => "active",
    /// Switched on, but the user must sign in (again).
    SIGN_IN_REQUIRED = 4 => "sign_in_required",
    /// Switched on, but something failed; see `last_error`.
    ERROR = 5 => "error",
}

open_enum! {
    /// The "Presence integration" part of the integration state.
    pub struct PresenceState;
    /// Switched off.
    OFF = 0 => "off",
    /// Switched on, waiting for a Microsoft sign-in.
    PENDING = 1 => "pending",
    /// Synchronizing both ways.
    ACTIVE = 2 => "active",
    /// Switched on but not allowed to run; `presence_blocked_reason` says why.
    BLOCKED = 3 => "blocked",
}

open_enum! {
    /// Which phone field of a contact a number came from.
    pub struct NumberType;
    /// `businessPhones` (or a colleague's business phone).
    BUSINESS = 0 => "business",
    /// `mobilePhone`.
    MOBILE = 1 => "mobile",
    /// `homePhones`.
    HOME = 2 => "home",
    /// Any other phone field.
    OTHER = 3 => "other",
}

open_enum! {
    /// Where a contact comes from.
    pub struct ContactSource;
    /// The user's Outlook contacts (every folder).
    OUTLOOK = 0 => "outlook",
    /// The organization's directory (colleagues).
    DIRECTORY = 1 => "directory",
}

open_enum! {
    /// Severity of a log line sent to the host.
    pub struct LogLevel;
    /// Something failed.
    ERROR = 1 => "error",
    /// Something unexpected that the plugin handled.
    WARN = 2 => "warn",
    /// A notable event.
    INFO = 3 => "info",
    /// Detail for diagnosing problems.
    DEBUG = 4 => "debug",
    /// Fine-grained detail.
    TRACE = 5 => "trace",
}
