//! Plain data that crosses the boundary.
//!
//! Plain `#[repr(C)]` structs can never gain fields within a major version (abi_stable rejects
//! any size or field change). Structs that are likely to grow therefore carry an `extensions`
//! field: a JSON object (or the empty string for none) where later minor versions put new
//! fields. Receivers ignore keys they do not know.

use abi_stable::{
    StableAbi,
    std_types::{ROption, RString, RVec},
};

use crate::codes::{
    ContactSource, ContactStatus, ErrorCode, MicrosoftState, NumberType, PresenceState,
};

/// What the host tells an integration about its environment. Sent at construction and again
/// whenever it changes.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, Default, PartialEq)]
pub struct HostContext {
    /// The Contact Desktop username (for presence it must equal the Microsoft account's UPN).
    pub username: RString,
    /// Licensed add-ons, e.g. `contact_connect`.
    pub addons: RVec<RString>,
    /// ISO 3166 alpha-2 country: the default region for numbers without a country code.
    pub country: RString,
    /// A folder that belongs to this integration alone (created by the host).
    pub data_dir: RString,
    /// An earlier presence integration was configured on this installation.
    pub legacy_presence_integration: bool,
    /// JSON object for fields added in later minor versions, or empty.
    pub extensions: RString,
}

impl HostContext {
    /// Whether the host reported the add-on `name` as licensed.
    ///
    /// ```
    /// # use host_api::HostContext;
    /// let ctx = HostContext { addons: vec!["contact_connect".into()].into(), ..Default::default() };
    /// assert!(ctx.has_addon("contact_connect"));
    /// ```
    pub fn has_addon(&self, name: &str) -> bool {
        self.addons.iter().any(|a| a.as_str() == name)
    }
}

/// Settings to change; `RNone` leaves a setting as it is. The plugin validates every value and
/// applies all or nothing (`bad_request` on any invalid value).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, Default, PartialEq)]
pub struct SettingsUpdate {
    /// "Integration with Microsoft".
    pub microsoft_integration: ROption<bool>,
    /// "Presence integration" (needs Microsoft integration).
    pub presence_integration: ROption<bool>,
    /// "Do not show again": keep the sign-in.
    pub remember_login: ROption<bool>,
    /// `browser` or `device_code`.
    pub sign_in_method: ROption<RString>,
    /// `auto`, `keyring` or `file`.
    pub token_store: ROption<RString>,
    /// OpenID Connect authority URL.
    pub authority: ROption<RString>,
    /// Microsoft Graph base URL.
    pub graph: ROption<RString>,
    /// Public client id of the app registration.
    pub client_id: ROption<RString>,
    /// Also find colleagues from the organization's directory.
    pub directory: ROption<bool>,
    /// Periodic contact sync, seconds (at least 10).
    pub sync_interval_s: ROption<u64>,
    /// How often Teams presence is read, milliseconds (at least 200).
    pub presence_poll_ms: ROption<u64>,
    /// Prefixes the phone system puts before external numbers.
    pub outside_line_prefixes: ROption<RVec<RString>>,
    /// JSON object of settings added in later minor versions, or empty.
    pub extensions: RString,
}

/// Teams presence as last read from Microsoft Graph.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, Default, PartialEq, Eq)]
pub struct TeamsPresence {
    /// Graph `availability`, e.g. `Busy`.
    pub availability: RString,
    /// Graph `activity`, e.g. `InACall`.
    pub activity: RString,
}

/// The integration's state, as shown in the host's integration settings.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct IntegrationState {
    /// "Integration with Microsoft".
    pub microsoft_integration: MicrosoftState,
    /// The signed-in account's UPN.
    pub signed_in_as: ROption<RString>,
    /// Entries held: Outlook contacts plus, with `directory`, colleagues.
    pub contacts: u64,
    /// End of the last complete contact sync, RFC 3339.
    pub last_sync: ROption<RString>,
    /// "Presence integration".
    pub presence_integration: PresenceState,
    /// Why presence is blocked (naming both values for a UPN mismatch).
    pub presence_blocked_reason: ROption<RString>,
    /// Teams presence last read.
    pub teams_presence: ROption<TeamsPresence>,
    /// The host's current Contact status as the plugin knows it.
    pub contact_status: ContactStatus,
    /// The last error, for a person.
    pub last_error: ROption<RString>,
    /// JSON object for fields added in later minor versions, or empty.
    pub extensions: RString,
}

impl Default for IntegrationState {
    fn default() -> Self {
        Self {
            microsoft_integration: MicrosoftState::OFF,
            signed_in_as: ROption::RNone,
            contacts: 0,
            last_sync: ROption::RNone,
            presence_integration: PresenceState::OFF,
            presence_blocked_reason: ROption::RNone,
            teams_presence: ROption::RNone,
            contact_status: ContactStatus::ONLINE,
            last_error: ROption::RNone,
            extensions: RString::new(),
        }
    }
}

/// An incoming call, as the phone system delivered it.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, Default, PartialEq, Eq)]
pub struct IncomingCall {
    /// The host's id for the call (used again in `Host::update_caller`).
    pub call_id: RString,
    /// The calling number as delivered: E.164, national, with spaces, a `tel:` or `sip:` URI,
    /// or anonymous/empty.
    pub number: RString,
    /// JSON object for fields added in later minor versions, or empty.
    pub extensions: RString,
}

/// Who is calling.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct CallerInfo {
    /// Name to show.
    pub display_name: RString,
    /// Company, or empty.
    pub company: RString,
    /// Job title, or empty.
    pub job_title: RString,
    /// The incoming number, E.164 where it parses.
    pub number: RString,
    /// Which phone field matched.
    pub number_type: NumberType,
    /// Set when the match was the company number plus an extension.
    pub extension: ROption<RString>,
    /// Where the contact comes from.
    pub source: ContactSource,
    /// The contact's id at its source.
    pub contact_id: RString,
    /// JSON object for fields added in later minor versions, or empty.
    pub extensions: RString,
}

/// One phone number of a phonebook entry.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct PhoneNumber {
    /// E.164 where it parses, else as stored.
    pub number: RString,
    /// Which field it came from.
    pub number_type: NumberType,
}

/// A phonebook search result.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct PhonebookEntry {
    /// Name to show.
    pub display_name: RString,
    /// Company, or empty.
    pub company: RString,
    /// Job title, or empty.
    pub job_title: RString,
    /// Every phone number.
    pub numbers: RVec<PhoneNumber>,
    /// Every e-mail address.
    pub emails: RVec<RString>,
    /// Where the contact comes from.
    pub source: ContactSource,
    /// The contact's id at its source.
    pub contact_id: RString,
    /// JSON object for fields added in later minor versions, or empty.
    pub extensions: RString,
}

/// What a completed contact sync did.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Entries held after the sync.
    pub contacts: u64,
    /// Entries added.
    pub added: u64,
    /// Entries changed.
    pub updated: u64,
    /// Entries removed.
    pub removed: u64,
    /// JSON object for fields added in later minor versions, or empty.
    pub extensions: RString,
}

/// Something the host should tell the user.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, Default, PartialEq, Eq)]
pub struct Notification {
    /// `device_code`, `sign_in_required`, `presence_blocked`, `unlicensed`, `error`, ...
    /// (an open set: show the message of a kind you do not know).
    pub kind: RString,
    /// Text for a person.
    pub message: RString,
    /// For `device_code`: the code the user enters.
    pub user_code: ROption<RString>,
    /// For `device_code`: where the user enters it.
    pub verification_uri: ROption<RString>,
    /// JSON object for fields added in later minor versions, or empty.
    pub extensions: RString,
}

/// An access token from the host's own Microsoft 365 login (Contact Desktop's "Login with
/// Microsoft 365"). This is the only token that ever crosses host-api, and only host → plugin.
#[repr(C)]
#[derive(StableAbi, Clone, PartialEq, Eq)]
pub struct SsoToken {
    /// The bearer token.
    pub access_token: RString,
    /// The app (client id) the token was issued to.
    pub client_id: RString,
    /// Seconds until it expires.
    pub expires_in_s: u64,
}

impl core::fmt::Debug for SsoToken {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SsoToken")
            .field("access_token", &"[redacted]")
            .field("client_id", &self.client_id)
            .field("expires_in_s", &self.expires_in_s)
            .finish()
    }
}

/// An error with a stable code and a message for a person.
///
/// ```
/// # use host_api::{ErrorCode, IntegrationError};
/// let e = IntegrationError::new(ErrorCode::BAD_REQUEST, "limit must be a number");
/// assert_eq!(e.to_string(), "bad_request: limit must be a number");
/// ```
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct IntegrationError {
    /// What kind of error; branch on this.
    pub code: ErrorCode,
    /// What happened, for a person. Never contains a token.
    pub message: RString,
}

impl IntegrationError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<RString>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// `unsupported` for an unknown `extension` operation.
    pub fn unsupported(op: &str) -> Self {
        Self::new(
            ErrorCode::UNSUPPORTED,
            format!("extension operation `{op}` is not supported"),
        )
    }
}

impl core::fmt::Display for IntegrationError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for IntegrationError {}
