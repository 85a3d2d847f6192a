//! Contact sync with Microsoft Graph: every contact folder (nested child folders included),
//! per-folder delta queries, and optionally the organization's users.
//!
//! A sync is all or nothing: the new [`Mailbox`] replaces the old one only when every folder
//! (and the directory) completed, so a failure in the middle loses nothing and the old delta
//! links stay usable. An expired delta token starts that folder over from a full read.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::graph::{Graph, GraphError, RetryPolicy};

/// The contact fields the plugin reads (`$select`): nothing more travels.
pub const CONTACT_SELECT: &str = "displayName,givenName,surname,companyName,jobTitle,businessPhones,homePhones,mobilePhone,emailAddresses";
/// The user fields read for colleagues.
pub const USER_SELECT: &str =
    "id,displayName,givenName,surname,companyName,jobTitle,businessPhones,mobilePhone,mail";
/// The largest page the plugin asks for (`Prefer: odata.maxpagesize`).
pub const MAX_PAGE: u32 = 1000;
/// The largest `$top` for users.
pub const MAX_USERS_PAGE: u32 = 999;
/// Requests in flight per mailbox (the Outlook limit is 4 per app and mailbox).
pub const MAX_IN_FLIGHT: usize = 4;
/// Pages followed for one folder before giving up (a server that never ends a round).
const MAX_PAGES: usize = 100_000;

/// A contact (or colleague) as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredContact {
    /// Graph id.
    pub id: String,
    /// `displayName`.
    pub display_name: String,
    /// `givenName`.
    pub given_name: String,
    /// `surname`.
    pub surname: String,
    /// `companyName`.
    pub company: String,
    /// `jobTitle`.
    pub job_title: String,
    /// `businessPhones`.
    pub business: Vec<String>,
    /// `homePhones`.
    pub home: Vec<String>,
    /// `mobilePhone`.
    pub mobile: Option<String>,
    /// E-mail addresses.
    pub emails: Vec<String>,
}

/// One contact folder's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Folder {
    /// Where the next delta round starts.
    pub delta_link: Option<String>,
    /// Contacts by id.
    pub contacts: BTreeMap<String, StoredContact>,
}

/// Everything synced for one account.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mailbox {
    /// The account (a snapshot of another account is never used).
    pub upn: String,
    /// Folders by id.
    pub folders: BTreeMap<String, Folder>,
    /// Colleagues by id (with the `directory` setting).
    pub colleagues: BTreeMap<String, StoredContact>,
    /// End of the last complete sync, RFC 3339.
    pub last_sync: Option<String>,
}

impl Mailbox {
    /// Outlook contacts (deduplicated by id) and colleagues.
    pub fn entries(&self) -> (Vec<&StoredContact>, Vec<&StoredContact>) {
        let mut seen = BTreeSet::new();
        let outlook = self
            .folders
            .values()
            .flat_map(|f| f.contacts.values())
            .filter(|c| seen.insert(c.id.as_str()))
            .collect();
        (outlook, self.colleagues.values().collect())
    }

    /// Entries held (as the state's `contacts`).
    pub fn len(&self) -> usize {
        let (o, c) = self.entries();
        o.len() + c.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// New entries.
    pub added: u64,
    /// Changed entries.
    pub updated: u64,
    /// Removed entries.
    pub removed: u64,
}

/// Counts the differences between two mailboxes.
pub fn diff(old: &Mailbox, new: &Mailbox) -> Changes {
    let index = |m: &Mailbox| {
        let (o, c) = m.entries();
        o.into_iter()
            .map(|x| (("o", x.id.clone()), x.clone()))
            .chain(c.into_iter().map(|x| (("d", x.id.clone()), x.clone())))
            .collect::<BTreeMap<_, _>>()
    };
    let (a, b) = (index(old), index(new));
    let mut changes = Changes::default();
    for (k, v) in &b {
        match a.get(k) {
            None => changes.added += 1,
            Some(old) if old != v => changes.updated += 1,
            _ => {}
        }
    }
    changes.removed = a.keys().filter(|k| !b.contains_key(*k)).count() as u64;
    changes
}

/// Why a sync failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncError {
    /// Graph refused the token (the caller refreshes and tries again).
    Unauthorized(String),
    /// The delta link expired: the folder must be read in full.
    ResyncRequired,
    /// Anything else.
    Failed(String),
}

impl std::fmt::Display for SyncError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncError::Unauthorized(m) => write!(f, "Microsoft Graph refused the sign-in: {m}"),
            SyncError::ResyncRequired => {
                f.write_str("the sync state expired; a full sync is needed")
            }
            SyncError::Failed(m) => f.write_str(m),
        }
    }
}

impl From<GraphError> for SyncError {
    fn from(e: GraphError) -> Self {
        match e {
            GraphError::Unauthorized(m) => SyncError::Unauthorized(m),
            other => SyncError::Failed(other.to_string()),
        }
    }
}

/// How far a sync is (for a progress bar).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Folders finished.
    pub folders_done: usize,
    /// Folders in all (known after the folder walk).
    pub folders: usize,
    /// Contacts and changes received so far.
    pub items: usize,
}

/// Receives progress reports; called from sync tasks.
pub type ProgressFn = dyn Fn(Progress) + Send + Sync;

/// What a sync needs.
pub struct SyncRequest<'a> {
    /// Graph.
    pub graph: &'a Graph,
    /// The access token.
    pub token: &'a SecretString,
    /// Also read colleagues.
    pub directory: bool,
    /// Bounds requests in flight.
    pub limiter: &'a Arc<Semaphore>,
    /// How requests are retried.
    pub policy: &'a RetryPolicy,
    /// Progress reports.
    pub progress: Arc<ProgressFn>,
}

/// Shared progress counters of one sync.
struct Counter {
    folders: usize,
    folders_done: std::sync::atomic::AtomicUsize,
    items: std::sync::atomic::AtomicUsize,
    report: Arc<ProgressFn>,
}

impl Counter {
    fn add(&self, items: usize, folder_done: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        let items = self.items.fetch_add(items, Relaxed) + items;
        let done = self
            .folders_done
            .fetch_add(usize::from(folder_done), Relaxed)
            + usize::from(folder_done);
        (self.report)(Progress {
            folders_done: done,
            folders: self.folders,
            items,
        });
    }
}

/// Runs one sync from `previous` (delta links) and returns the complete new mailbox.
pub async fn sync(req: &SyncRequest<'_>, previous: &Mailbox) -> Result<Mailbox, SyncError> {
    let folder_ids = list_folders(req).await?;
    let counter = Arc::new(Counter {
        folders: folder_ids.len(),
        folders_done: Default::default(),
        items: Default::default(),
        report: req.progress.clone(),
    });
    counter.add(0, false);
    let mut tasks = tokio::task::JoinSet::new();
    for id in folder_ids {
        let prior = previous.folders.get(&id).cloned();
        let graph = req.graph.clone();
        let token = SecretString::from(secrecy::ExposeSecret::expose_secret(req.token).to_owned());
        let limiter = req.limiter.clone();
        let policy = req.policy.clone();
        let progress = req.progress.clone();
        let counter = counter.clone();
        tasks.spawn(async move {
            let req = SyncRequest {
                graph: &graph,
                token: &token,
                directory: false,
                limiter: &limiter,
                policy: &policy,
                progress,
            };
            let folder = sync_folder(&req, &id, prior, &counter).await;
            (id, folder)
        });
    }
    let mut folders = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        let (id, folder) =
            joined.map_err(|e| SyncError::Failed(format!("sync task failed: {e}")))?;
        folders.insert(id, folder?);
    }
    let colleagues = if req.directory {
        list_users(req).await?
    } else {
        BTreeMap::new()
    };
    Ok(Mailbox {
        upn: previous.upn.clone(),
        folders,
        colleagues,
        last_sync: Some(now_rfc3339()),
    })
}

/// Every contact folder id: the default folder, its sub-folders and their children, recursively.
async fn list_folders(req: &SyncRequest<'_>) -> Result<Vec<String>, SyncError> {
    let base = req.graph.base();
    let mut ids: Vec<String> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut queue = vec![format!("{base}/me/contactFolders?$top=100")];
    let mut parents = BTreeSet::new();
    while let Some(url) = queue.pop() {
        for item in pages(req, &url, None).await? {
            let Some(id) = item.get("id").and_then(Value::as_str) else {
                continue;
            };
            if let Some(parent) = item.get("parentFolderId").and_then(Value::as_str) {
                parents.insert(parent.to_owned());
            }
            if seen.insert(id.to_owned()) {
                ids.push(id.to_owned());
                queue.push(format!(
                    "{base}/me/contactFolders/{}/childFolders?$top=100",
                    urlencode(id)
                ));
            }
        }
    }
    // The default folder is the parent of the top-level folders; without folders, ask a
    // contact of the default folder for it.
    if parents.is_empty() {
        let url = format!("{base}/me/contacts?$top=1&$select=parentFolderId");
        let page = get(req, &url, None).await?;
        if let Some(parent) = page
            .get("value")
            .and_then(Value::as_array)
            .and_then(|v| v.first())
            .and_then(|c| c.get("parentFolderId"))
            .and_then(Value::as_str)
        {
            parents.insert(parent.to_owned());
        }
    }
    for parent in parents {
        if seen.insert(parent.clone()) {
            ids.push(parent);
        }
    }
    Ok(ids)
}

/// One folder: a delta round from its link, or a full read; a stale link starts over.
async fn sync_folder(
    req: &SyncRequest<'_>,
    id: &str,
    prior: Option<Folder>,
    counter: &Counter,
) -> Result<Folder, SyncError> {
    let initial = format!(
        "{}/me/contactFolders/{}/contacts/delta?$select={CONTACT_SELECT}",
        req.graph.base(),
        urlencode(id)
    );
    if let Some(prior) = prior.filter(|p| p.delta_link.is_some()) {
        let link = prior.delta_link.clone().unwrap_or_default();
        match delta_round(req, &link, prior.contacts, counter).await {
            Err(SyncError::ResyncRequired) => {}
            other => return other,
        }
    }
    delta_round(req, &initial, BTreeMap::new(), counter).await
}

async fn delta_round(
    req: &SyncRequest<'_>,
    start: &str,
    mut contacts: BTreeMap<String, StoredContact>,
    counter: &Counter,
) -> Result<Folder, SyncError> {
    let prefer = format!("odata.maxpagesize={MAX_PAGE}");
    let mut url = start.to_owned();
    for _ in 0..MAX_PAGES {
        let page = match req
            .graph
            .get_json(&url, req.token, Some(&prefer), req.limiter, req.policy)
            .await
        {
            Ok(page) => page,
            Err(e) if needs_resync(&e) => return Err(SyncError::ResyncRequired),
            Err(e) => return Err(e.into()),
        };
        let items = page
            .get("value")
            .and_then(Value::as_array)
            .ok_or_else(|| SyncError::Failed("a contacts page without `value`".into()))?;
        for item in items {
            let Some(id) = item.get("id").and_then(Value::as_str) else {
                continue;
            };
            if item.get("@removed").is_some() {
                contacts.remove(id);
            } else {
                contacts.insert(id.to_owned(), parse_contact(item));
            }
        }
        let last = page.get("@odata.nextLink").is_none();
        counter.add(items.len(), last);
        if let Some(next) = page.get("@odata.nextLink").and_then(Value::as_str) {
            url = next.to_owned();
        } else if let Some(delta) = page.get("@odata.deltaLink").and_then(Value::as_str) {
            return Ok(Folder {
                delta_link: Some(delta.to_owned()),
                contacts,
            });
        } else {
            return Err(SyncError::Failed(
                "a delta page with neither nextLink nor deltaLink".into(),
            ));
        }
    }
    Err(SyncError::Failed(
        "too many pages in one delta round".into(),
    ))
}

/// Graph answers an expired or unknown sync state with 410 Gone, or 400 with a
/// `syncStateNotFound` / `resyncRequired` / `SyncStateInvalid` code.
fn needs_resync(e: &GraphError) -> bool {
    match e {
        GraphError::Other(410, _) => true,
        GraphError::Other(400, m) => {
            let m = m.to_ascii_lowercase();
            m.contains("syncstate") || m.contains("resync")
        }
        _ => false,
    }
}

async fn list_users(req: &SyncRequest<'_>) -> Result<BTreeMap<String, StoredContact>, SyncError> {
    let url = format!(
        "{}/users?$select={USER_SELECT}&$top={MAX_USERS_PAGE}",
        req.graph.base()
    );
    let mut users = BTreeMap::new();
    for item in pages(req, &url, None).await? {
        let Some(id) = item.get("id").and_then(Value::as_str) else {
            continue;
        };
        let mut c = parse_contact(&item);
        if let Some(mail) = item.get("mail").and_then(Value::as_str) {
            c.emails = vec![mail.to_owned()];
        }
        users.insert(id.to_owned(), c);
    }
    Ok(users)
}

/// Every item of a paged collection.
async fn pages(
    req: &SyncRequest<'_>,
    first: &str,
    prefer: Option<&str>,
) -> Result<Vec<Value>, SyncError> {
    let mut out = Vec::new();
    let mut url = first.to_owned();
    for _ in 0..MAX_PAGES {
        let mut page = get(req, &url, prefer).await?;
        if let Some(Value::Array(items)) = page.get_mut("value").map(Value::take) {
            out.extend(items);
        } else {
            return Err(SyncError::Failed("a page without `value`".into()));
        }
        match page.get("@odata.nextLink").and_then(Value::as_str) {
            Some(next) => url = next.to_owned(),
            None => return Ok(out),
        }
    }
    Err(SyncError::Failed("too many pages".into()))
}

async fn get(req: &SyncRequest<'_>, url: &str, prefer: Option<&str>) -> Result<Value, SyncError> {
    Ok(req
        .graph
        .get_json(url, req.token, prefer, req.limiter, req.policy)
        .await?)
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim()
        .to_owned()
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// A Graph contact or user; missing, null or mistyped fields read as empty.
pub fn parse_contact(v: &Value) -> StoredContact {
    let emails = v
        .get("emailAddresses")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|e| e.get("address").and_then(Value::as_str))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    StoredContact {
        id: text(v, "id"),
        display_name: text(v, "displayName"),
        given_name: text(v, "givenName"),
        surname: text(v, "surname"),
        company: text(v, "companyName"),
        job_title: text(v, "jobTitle"),
        business: strings(v, "businessPhones"),
        home: strings(v, "homePhones"),
        mobile: Some(text(v, "mobilePhone")).filter(|m| !m.is_empty()),
        emails,
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Now, RFC 3339 (UTC).
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_contacts_leniently() {
        let v: Value = serde_json::json!({
            "id": "c1", "displayName": "Müller, Jan", "givenName": null, "surname": 5,
            "businessPhones": ["+49 89 1234-0", "", null], "homePhones": "not an array",
            "mobilePhone": "0171 2345678",
            "emailAddresses": [{"address": "jan@example.com", "name": "Jan"}, {"name": "x"}]
        });
        let c = parse_contact(&v);
        assert_eq!(c.display_name, "Müller, Jan");
        assert_eq!(c.given_name, "");
        assert_eq!(c.surname, "");
        assert_eq!(c.business, ["+49 89 1234-0"]);
        assert!(c.home.is_empty());
        assert_eq!(c.mobile.as_deref(), Some("0171 2345678"));
        assert_eq!(c.emails, ["jan@example.com"]);
    }

    #[test]
    fn diff_counts_added_updated_removed_and_dedups_folders() {
        let c = |id: &str, name: &str| StoredContact {
            id: id.into(),
            display_name: name.into(),
            ..Default::default()
        };
        let mut old = Mailbox::default();
        old.folders.insert(
            "f".into(),
            Folder {
                delta_link: None,
                contacts: [("a".into(), c("a", "A")), ("b".into(), c("b", "B"))].into(),
            },
        );
        let mut new = old.clone();
        let f = new.folders.get_mut("f").unwrap();
        f.contacts.remove("a");
        f.contacts.insert("b".into(), c("b", "B2"));
        f.contacts.insert("n".into(), c("n", "N"));
        new.colleagues.insert("u".into(), c("u", "U"));
        assert_eq!(
            diff(&old, &new),
            Changes {
                added: 2,
                updated: 1,
                removed: 1
            }
        );
        assert_eq!(new.len(), 3);
    }

    #[test]
    fn recognises_expired_sync_state() {
        assert!(needs_resync(&GraphError::Other(410, "Gone".into())));
        assert!(needs_resync(&GraphError::Other(
            400,
            "syncStateNotFound x".into()
        )));
        assert!(!needs_resync(&GraphError::Other(400, "BadRequest".into())));
        assert!(!needs_resync(&GraphError::Server(503)));
    }
}
