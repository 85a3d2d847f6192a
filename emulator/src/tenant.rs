//! The seeded tenant: its id and domain, the registered applications and the users.
//!
//! Everything here is deterministic: the same ids on every run, so tests in other crates can
//! name them. [`seed`] builds a fresh copy; the emulator keeps one mutable copy in its state and
//! [`crate::Control::reset`] puts the seed back.
//!
//! Extension points for later work are the per-user fields of [`TenantUser`]: Outlook contact
//! folders and contacts belong in a `mailbox` field next to `profile`, Teams presence sessions
//! in a `presence` field. Graph routes for them go in `graph.rs` (or a module of their own)
//! and read/write the user found by [`Tenant::user_by_id`].

use serde::Serialize;

/// The tenant (directory) id of the seeded organization.
pub const TENANT_ID: &str = "6c1f3e0a-2b9d-4c57-8e14-7a5d9b3f2c60";
/// The seeded tenant's verified domain.
pub const TENANT_DOMAIN: &str = "contoso.example";
/// The organization's display name.
pub const TENANT_NAME: &str = "Contoso (emulated)";

/// Client id of the registered public client that the plugin uses (`EmulatorHandle::client_id`).
pub const PLUGIN_CLIENT_ID: &str = "3f7a2c91-0b4e-4d8a-9c65-1e2f8b7d4a03";
/// Client id of a second registered public client, standing in for Contact Desktop's own
/// "Login with Microsoft 365" app (tokens from the host's SSO are issued to this app).
pub const HOST_CLIENT_ID: &str = "b85e4d17-6a3c-4f29-8e01-c94d2a7b5f18";

/// Object id of Adele Vance (the default sign-in user).
pub const ADELE_ID: &str = "1a2b3c4d-0001-4e5f-8a9b-0c1d2e3f4a01";
/// UPN of Adele Vance.
pub const ADELE_UPN: &str = "adele.vance@contoso.example";
/// Object id of Megan Bowen.
pub const MEGAN_ID: &str = "1a2b3c4d-0002-4e5f-8a9b-0c1d2e3f4a02";
/// UPN of Megan Bowen.
pub const MEGAN_UPN: &str = "megan.bowen@contoso.example";
/// Object id of Alex Wilber.
pub const ALEX_ID: &str = "1a2b3c4d-0003-4e5f-8a9b-0c1d2e3f4a03";
/// UPN of Alex Wilber.
pub const ALEX_UPN: &str = "alex.wilber@contoso.example";
/// Object id of Lee Gu.
pub const LEE_ID: &str = "1a2b3c4d-0004-4e5f-8a9b-0c1d2e3f4a04";
/// UPN of Lee Gu.
pub const LEE_UPN: &str = "lee.gu@contoso.example";

/// Delegated Microsoft Graph permissions the emulator knows (canonical spelling). A requested
/// Graph scope outside this list is `invalid_scope`.
pub const KNOWN_GRAPH_SCOPES: &[&str] = &[
    "User.Read",
    "User.ReadBasic.All",
    "User.Read.All",
    "User.ReadWrite",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
    "Contacts.Read",
    "Contacts.ReadWrite",
    "Contacts.Read.Shared",
    "People.Read",
    "People.Read.All",
    "Presence.Read",
    "Presence.Read.All",
    "Presence.ReadWrite",
    "Mail.Read",
    "Calendars.Read",
];

/// A registered application (public client).
#[derive(Clone, Debug, Serialize)]
pub struct App {
    /// Application (client) id.
    pub client_id: String,
    /// Display name, shown in consent errors.
    pub display_name: String,
    /// Registered redirect URIs (`publicClient` platform). Loopback URIs match any port and any
    /// path (see `identity::redirect_uri_allowed`).
    pub redirect_uris: Vec<String>,
    /// Graph permissions configured on the registration: what `/.default` expands to.
    pub static_permissions: Vec<String>,
}

/// One user's directory profile: the properties `GET /users/{id}` serves.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserProfile {
    /// Object id (GUID).
    pub id: String,
    /// Sign-in name.
    pub user_principal_name: String,
    /// Primary SMTP address.
    pub mail: Option<String>,
    /// Display name.
    pub display_name: String,
    /// First name.
    pub given_name: Option<String>,
    /// Last name.
    pub surname: Option<String>,
    /// Job title.
    pub job_title: Option<String>,
    /// Business phones (Graph allows one number, stored as free text).
    pub business_phones: Vec<String>,
    /// Mobile phone (free text).
    pub mobile_phone: Option<String>,
    /// Office location.
    pub office_location: Option<String>,
    /// Preferred language, e.g. `de-DE`.
    pub preferred_language: Option<String>,
    /// Exchange proxy addresses (`SMTP:` primary, `smtp:` aliases). Only returned on `$select`.
    pub proxy_addresses: Vec<String>,
    /// Company name (`$select` only).
    pub company_name: Option<String>,
    /// Department (`$select` only).
    pub department: Option<String>,
    /// Mail nickname (`$select` only).
    pub mail_nickname: Option<String>,
    /// Additional mail addresses (`$select` only).
    pub other_mails: Vec<String>,
    /// `Member` or `Guest` (`$select` only).
    pub user_type: String,
    /// Whether the account can sign in (`$select` only).
    pub account_enabled: bool,
}

/// A user of the tenant with everything the emulator keeps for them.
#[derive(Clone, Debug)]
pub struct TenantUser {
    /// Directory profile (`/me`, `/users/{id}`).
    pub profile: UserProfile,
    // Extension point: `pub mailbox: Mailbox` (contact folders and contacts) and
    // `pub presence: PresenceState` (Teams presence sessions, preferred presence) go here.
}

/// The emulated organization.
#[derive(Clone, Debug)]
pub struct Tenant {
    /// Tenant id (GUID).
    pub id: String,
    /// Verified domain.
    pub domain: String,
    /// Display name.
    pub name: String,
    /// Registered applications.
    pub apps: Vec<App>,
    /// Users.
    pub users: Vec<TenantUser>,
}

impl Tenant {
    /// Whether `segment` names this tenant or a multi-tenant alias accepted for work accounts
    /// (`organizations`, `common`, the tenant id or its domain; case-insensitive).
    pub fn accepts_segment(&self, segment: &str) -> bool {
        segment.eq_ignore_ascii_case("organizations")
            || segment.eq_ignore_ascii_case("common")
            || segment.eq_ignore_ascii_case(&self.id)
            || segment.eq_ignore_ascii_case(&self.domain)
    }

    /// The registered application with this client id.
    pub fn app(&self, client_id: &str) -> Option<&App> {
        self.apps
            .iter()
            .find(|a| a.client_id.eq_ignore_ascii_case(client_id))
    }

    /// The user with this object id or UPN (both case-insensitive).
    pub fn user(&self, id_or_upn: &str) -> Option<&TenantUser> {
        self.users.iter().find(|u| {
            u.profile.id.eq_ignore_ascii_case(id_or_upn)
                || u.profile
                    .user_principal_name
                    .eq_ignore_ascii_case(id_or_upn)
        })
    }

    /// The user with this object id.
    pub fn user_by_id(&self, id: &str) -> Option<&TenantUser> {
        self.users.iter().find(|u| u.profile.id == id)
    }
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

#[allow(clippy::too_many_arguments)]
fn user(
    id: &str,
    upn: &str,
    given: &str,
    surname: &str,
    job: &str,
    business: &[&str],
    mobile: Option<&str>,
    office: &str,
    lang: &str,
    aliases: &[&str],
    department: &str,
) -> TenantUser {
    let mut proxy = vec![format!("SMTP:{upn}")];
    proxy.extend(aliases.iter().map(|a| format!("smtp:{a}")));
    TenantUser {
        profile: UserProfile {
            id: id.to_string(),
            user_principal_name: upn.to_string(),
            mail: s(upn),
            display_name: format!("{given} {surname}"),
            given_name: s(given),
            surname: s(surname),
            job_title: s(job),
            business_phones: business.iter().map(|p| p.to_string()).collect(),
            mobile_phone: mobile.map(str::to_string),
            office_location: s(office),
            preferred_language: s(lang),
            proxy_addresses: proxy,
            company_name: s("Contoso"),
            department: s(department),
            mail_nickname: upn.split('@').next().map(str::to_string),
            other_mails: Vec::new(),
            user_type: "Member".to_string(),
            account_enabled: true,
        },
    }
}

/// A fresh copy of the seeded tenant.
pub fn seed() -> Tenant {
    let graph_defaults = [
        "User.Read",
        "User.ReadBasic.All",
        "Contacts.Read",
        "People.Read",
        "Presence.Read",
        "Presence.Read.All",
        "Presence.ReadWrite",
    ];
    let loopback = vec![
        "http://localhost".to_string(),
        "http://127.0.0.1".to_string(),
    ];
    Tenant {
        id: TENANT_ID.to_string(),
        domain: TENANT_DOMAIN.to_string(),
        name: TENANT_NAME.to_string(),
        apps: vec![
            App {
                client_id: PLUGIN_CLIENT_ID.to_string(),
                display_name: "Contact Desktop Microsoft 365 integration".to_string(),
                redirect_uris: loopback.clone(),
                static_permissions: graph_defaults.iter().map(|s| s.to_string()).collect(),
            },
            App {
                client_id: HOST_CLIENT_ID.to_string(),
                display_name: "Contact Desktop".to_string(),
                redirect_uris: loopback,
                static_permissions: vec!["User.Read".to_string(), "Presence.ReadWrite".to_string()],
            },
        ],
        users: vec![
            user(
                ADELE_ID,
                ADELE_UPN,
                "Adele",
                "Vance",
                "Retail Manager",
                &["+49 89 2030405-100"],
                Some("+49 151 23456789"),
                "München 18/2111",
                "de-DE",
                &["adele@contoso.example", "a.vance@contoso.example"],
                "Retail",
            ),
            user(
                MEGAN_ID,
                MEGAN_UPN,
                "Megan",
                "Bowen",
                "Marketing Manager",
                &["+1 425 555 0109"],
                Some("+1 206 555 0144"),
                "12/1110",
                "en-US",
                &["megan@contoso.example"],
                "Marketing",
            ),
            user(
                ALEX_ID,
                ALEX_UPN,
                "Alex",
                "Wilber",
                "Marketing Assistant",
                &["+49 30 901820-4455"],
                None,
                "Berlin 131/1104",
                "de-DE",
                &["alex@contoso.example"],
                "Marketing",
            ),
            user(
                LEE_ID,
                LEE_UPN,
                "Lee",
                "Gu",
                "Director",
                &["089 2030405-200"],
                Some("0170 9876543"),
                "München 23/3101",
                "de-DE",
                &[],
                "Manufacturing",
            ),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_is_consistent() {
        let t = seed();
        assert!(t.accepts_segment("organizations"));
        assert!(t.accepts_segment("CONTOSO.example"));
        assert!(t.accepts_segment(TENANT_ID));
        assert!(!t.accepts_segment("consumers"));
        assert_eq!(
            t.user("ADELE.VANCE@contoso.example").unwrap().profile.id,
            ADELE_ID
        );
        assert_eq!(
            t.user(MEGAN_ID).unwrap().profile.user_principal_name,
            MEGAN_UPN
        );
        assert_eq!(
            t.user(ADELE_UPN).unwrap().profile.proxy_addresses,
            [
                "SMTP:adele.vance@contoso.example",
                "smtp:adele@contoso.example",
                "smtp:a.vance@contoso.example"
            ]
        );
        assert!(t.app(PLUGIN_CLIENT_ID).is_some());
    }
}
