//! Contact sync with Microsoft Graph: every contact folder (nested child folders included),
//! per-folder delta queries, and optionally the organization's users (users delta).
//!
//! A sync is all or nothing: the new [`Mailbox`] replaces the old one only when every folder
//! (and the directory) completed, so a failure in the middle loses nothing and the old delta
//! links stay usable. An expired delta token starts that folder over from a full read.
//!
//! The directory (with the `directory` setting) is tracked the same way with `/users/delta`
//! (`$select` in the first request; `$top` is not supported there, the page size is only asked
//! for with `Prefer: odata.maxpagesize`): the first round reads every user, later rounds from
//! the kept deltaLink bring only changed users and `@removed` ones (soft-deleted `changed` or
//! permanently `deleted`: both leave). An expired directory token (`400 syncStateNotFound`)
//! starts over from a full round, whose result replaces the colleagues only when it completed.
//! With the setting off, colleagues and the link are dropped.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use host_api::{ContactSource, NumberType};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::{
    graph::{Graph, GraphError, RetryPolicy},
    record::{Change, Record, Records},
};

/// The contact fields the plugin reads (`$select`): nothing more travels.
pub const CONTACT_SELECT: &str = "displayName,givenName,surname,companyName,jobTitle,businessPhones,homePhones,mobilePhone,emailAddresses";
/// The user fields read for colleagues.
pub const USER_SELECT: &str =
    "id,displayName,givenName,surname,companyName,jobTitle,businessPhones,mobilePhone,mail";
/// The largest page the plugin asks for (`Prefer: odata.maxpagesize`).
pub const MAX_PAGE: u32 = 1000;
/// The page size asked of users delta (`Prefer: odata.maxpagesize`; users delta does not
/// support `$top`, and Graph may page by less).
pub const MAX_USERS_PAGE: u32 = 999;
/// Requests in flight per mailbox (the Outlook limit is 4 per app and mailbox).
pub const MAX_IN_FLIGHT: usize = 4;
/// Pages followed for one folder before giving up (a server that never ends a round).
const MAX_PAGES: usize = 100_000;

/// A contact (or colleague) as Graph sends it, unpacked (the sync's reading of one item; it is
/// kept as a [`Record`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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

impl StoredContact {
    /// Packed for keeping; the numbers in the order business, mobile, home.
    pub fn pack(&self) -> Record {
        let numbers: Vec<(NumberType, &str)> = self
            .business
            .iter()
            .map(|n| (NumberType::BUSINESS, n.as_str()))
            .chain(self.mobile.iter().map(|n| (NumberType::MOBILE, n.as_str())))
            .chain(self.home.iter().map(|n| (NumberType::HOME, n.as_str())))
            .collect();
        let emails: Vec<&str> = self.emails.iter().map(String::as_str).collect();
        Record::new(
            [
                &self.id,
                &self.display_name,
                &self.given_name,
                &self.surname,
                &self.company,
                &self.job_title,
            ],
            &numbers,
            &emails,
        )
    }
}

impl From<&Record> for StoredContact {
    /// Unpacked; numbers of another field than business, mobile and home read as home phones.
    fn from(r: &Record) -> StoredContact {
        let mut c = StoredContact {
            id: r.id().to_owned(),
            display_name: r.display_name().to_owned(),
            given_name: r.given_name().to_owned(),
            surname: r.surname().to_owned(),
            company: r.company().to_owned(),
            job_title: r.job_title().to_owned(),
            emails: r.emails().map(str::to_owned).collect(),
            ..Default::default()
        };
        for (kind, n) in r.numbers() {
            match kind {
                NumberType::BUSINESS => c.business.push(n.to_owned()),
                NumberType::MOBILE if c.mobile.is_none() => c.mobile = Some(n.to_owned()),
                _ => c.home.push(n.to_owned()),
            }
        }
        c
    }
}

/// One contact folder's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Folder {
    /// Where the next delta round starts.
    pub delta_link: Option<String>,
    /// Contacts, by id.
    pub contacts: Records,
}

/// Everything synced for one account.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mailbox {
    /// The account (a snapshot of another account is never used).
    pub upn: String,
    /// Folders by id.
    pub folders: BTreeMap<String, Folder>,
    /// Colleagues, by id (with the `directory` setting).
    pub colleagues: Records,
    /// Where the next users delta round starts (with the `directory` setting).
    pub directory_delta_link: Option<String>,
    /// End of the last complete sync, RFC 3339.
    pub last_sync: Option<String>,
}

impl Mailbox {
    /// Outlook contacts and colleagues. Outlook contacts come folder by folder (folders by id),
    /// each folder's by id; an id found in several folders counts once, in the first of them.
    pub fn entries(&self) -> (Vec<&Record>, Vec<&Record>) {
        let folders: Vec<&[Record]> = self
            .folders
            .values()
            .map(|f| f.contacts.as_slice())
            .collect();
        let total = folders.iter().map(|f| f.len()).sum();
        let mut outlook = Vec::with_capacity(total);
        if folders.len() <= 1 {
            outlook.extend(folders.iter().flat_map(|f| f.iter()));
        } else {
            // Each folder is sorted by id: one merge finds the ids of several folders.
            let mut repeated: Vec<Vec<bool>> =
                folders.iter().map(|f| vec![false; f.len()]).collect();
            let mut heads: std::collections::BinaryHeap<_> = folders
                .iter()
                .enumerate()
                .filter_map(|(k, f)| Some(std::cmp::Reverse((f.first()?.id(), k, 0usize))))
                .collect();
            let mut last: Option<&str> = None;
            while let Some(std::cmp::Reverse((id, k, i))) = heads.pop() {
                if last == Some(id) {
                    repeated[k][i] = true;
                }
                last = Some(id);
                if let Some(next) = folders[k].get(i + 1) {
                    heads.push(std::cmp::Reverse((next.id(), k, i + 1)));
                }
            }
            for (f, repeated) in folders.iter().zip(&repeated) {
                outlook.extend(f.iter().zip(repeated).filter(|(_, r)| !**r).map(|(c, _)| c));
            }
        }
        (outlook, self.colleagues.values().collect())
    }

    /// The entries as the index holds them: Outlook contacts, then colleagues (shared, not
    /// copied), with the source of each.
    pub fn indexed(&self) -> (Vec<Record>, Vec<ContactSource>) {
        let (outlook, colleagues) = self.entries();
        let mut sources = vec![ContactSource::OUTLOOK; outlook.len()];
        sources.resize(outlook.len() + colleagues.len(), ContactSource::DIRECTORY);
        let records = outlook.into_iter().chain(colleagues).cloned().collect();
        (records, sources)
    }

    /// Whether colleagues or the directory's delta link are held.
    pub fn has_directory(&self) -> bool {
        !self.colleagues.is_empty() || self.directory_delta_link.is_some()
    }

    /// Forgets the colleagues and the directory's delta link (the `directory` setting is off).
    pub fn drop_directory(&mut self) {
        self.colleagues.clear();
        self.directory_delta_link = None;
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
    fn index(m: &Mailbox) -> std::collections::HashMap<(bool, &str), &Record> {
        let (o, c) = m.entries();
        let mut map = std::collections::HashMap::with_capacity(o.len() + c.len());
        map.extend(o.into_iter().map(|x| ((false, x.id()), x)));
        map.extend(c.into_iter().map(|x| ((true, x.id()), x)));
        map
    }
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
    let (colleagues, directory_delta_link) = if req.directory {
        let (colleagues, link) = sync_directory(req, previous).await?;
        (colleagues, Some(link))
    } else {
        (Records::default(), None)
    };
    Ok(Mailbox {
        upn: previous.upn.clone(),
        folders,
        colleagues,
        directory_delta_link,
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
    delta_round(req, &initial, Records::default(), counter).await
}

async fn delta_round(
    req: &SyncRequest<'_>,
    start: &str,
    mut contacts: Records,
    counter: &Counter,
) -> Result<Folder, SyncError> {
    let prefer = format!("odata.maxpagesize={MAX_PAGE}");
    let mut url = start.to_owned();
    // The round's changes, applied in one merge when it completed.
    let mut changes: Vec<Change> = Vec::new();
    for _ in 0..MAX_PAGES {
        // Read straight into the lenient typed page: no `Value` tree per page.
        let page: DeltaPage = match req
            .graph
            .get_parsed(&url, req.token, Some(&prefer), req.limiter, req.policy)
            .await
        {
            Ok(page) => page,
            Err(e) if needs_resync(&e) => return Err(SyncError::ResyncRequired),
            Err(e) => return Err(e.into()),
        };
        let DeltaPage {
            value,
            next_link,
            delta_link,
        } = page;
        let items = page_changes(value, &mut changes)?;
        counter.add(items, next_link.is_none());
        if let Some(next) = next_link {
            url = next;
        } else if let Some(delta) = delta_link {
            contacts.apply(changes);
            return Ok(Folder {
                delta_link: Some(delta),
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

/// Applies one page of a contacts delta round to `contacts`: items with `@removed` are taken
/// out, every other item with an `id` is (re)placed, under its trimmed id; items without an
/// `id` are skipped. Returns how many items the page had; a page without a `value` array is an
/// error. (The sync reads pages straight from the body with the same rules.)
pub fn apply_delta_page(page: &Value, contacts: &mut Records) -> Result<usize, SyncError> {
    let page = DeltaPage::deserialize(page).unwrap_or_default();
    let mut changes = Vec::new();
    let count = page_changes(page.value, &mut changes)?;
    contacts.apply(changes);
    Ok(count)
}

/// Adds a page's changes (every item with an id; `@removed` ones as removals), in order; the
/// item count, or an error for a page without a `value` array.
fn page_changes(
    items: Option<Vec<DeltaItem>>,
    changes: &mut Vec<Change>,
) -> Result<usize, SyncError> {
    let items = items.ok_or_else(|| SyncError::Failed("a contacts page without `value`".into()))?;
    let count = items.len();
    changes.extend(items.into_iter().filter_map(|item| {
        let contact = item.contact?;
        Some(if item.removed {
            Change::Remove(contact.id().to_owned())
        } else {
            Change::Put(contact)
        })
    }));
    Ok(count)
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

/// The directory: a users delta round from the kept link (changes applied to the previous
/// colleagues), or a full round; an expired link starts over with a full round. Returns the
/// colleagues and the new deltaLink.
async fn sync_directory(
    req: &SyncRequest<'_>,
    previous: &Mailbox,
) -> Result<(Records, String), SyncError> {
    if let Some(link) = &previous.directory_delta_link {
        match directory_round(req, link, previous.colleagues.clone()).await {
            Err(SyncError::ResyncRequired) => {}
            other => return other,
        }
    }
    let initial = format!("{}/users/delta?$select={USER_SELECT}", req.graph.base());
    directory_round(req, &initial, Records::default()).await
}

/// One users delta round from `start` (an initial URL or a deltaLink), applied to `colleagues`.
async fn directory_round(
    req: &SyncRequest<'_>,
    start: &str,
    mut colleagues: Records,
) -> Result<(Records, String), SyncError> {
    let prefer = format!("odata.maxpagesize={MAX_USERS_PAGE}");
    let mut url = start.to_owned();
    let mut changes = Vec::new();
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
        users_page_changes(&page, &mut changes)?;
        if let Some(next) = page.get("@odata.nextLink").and_then(Value::as_str) {
            url = next.to_owned();
        } else if let Some(delta) = page.get("@odata.deltaLink").and_then(Value::as_str) {
            colleagues.apply(changes);
            return Ok((colleagues, delta.to_owned()));
        } else {
            return Err(SyncError::Failed(
                "a users delta page with neither nextLink nor deltaLink".into(),
            ));
        }
    }
    Err(SyncError::Failed(
        "too many pages in one users delta round".into(),
    ))
}

/// Applies one page of a users delta round: users with `@removed` (whatever the reason) leave,
/// every other user with an `id` is (re)placed (`mail` as the e-mail address). Returns how many
/// items the page had; a page without a `value` array is an error.
pub fn apply_users_page(page: &Value, colleagues: &mut Records) -> Result<usize, SyncError> {
    let mut changes = Vec::new();
    let count = users_page_changes(page, &mut changes)?;
    colleagues.apply(changes);
    Ok(count)
}

/// Adds a users page's changes (see [`apply_users_page`]), in order.
fn users_page_changes(page: &Value, changes: &mut Vec<Change>) -> Result<usize, SyncError> {
    let items = page
        .get("value")
        .and_then(Value::as_array)
        .ok_or_else(|| SyncError::Failed("a users page without `value`".into()))?;
    for item in items {
        let Some(id) = item.get("id").and_then(Value::as_str) else {
            continue;
        };
        if item.get("@removed").is_some() {
            changes.push(Change::Remove(id.to_owned()));
            continue;
        }
        let mut c = parse_contact(item);
        let mail = text(item, "mail");
        if !mail.is_empty() {
            c.emails = vec![mail];
        }
        c.id = id.to_owned();
        changes.push(Change::Put(c.pack()));
    }
    Ok(items.len())
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

/// The trimmed string at `key`; empty when missing or not a string.
fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim()
        .to_owned()
}

/// A Graph contact or user; missing, null or mistyped fields read as empty.
pub fn parse_contact(v: &Value) -> StoredContact {
    DeltaItem::deserialize(v)
        .ok()
        .and_then(|i| i.contact)
        .map(|r| StoredContact::from(&r))
        .unwrap_or_default()
}

/// Lenient typed reading of Graph's JSON, straight from the response body: one pass, one
/// allocation per kept string, no `serde_json::Value` tree. Every rule of the lenient reading
/// holds: a missing, null or mistyped field reads as empty, strings are trimmed, empty list
/// entries are dropped, and for a repeated key the last one counts (as in a JSON object read
/// into a map). Nothing here fails on well-formed JSON.
mod lenient {
    use std::fmt;

    use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

    use super::{Record, StoredContact};

    /// Implements every `Visitor` method but the given ones as "ignore the value and answer
    /// `$empty`".
    macro_rules! ignore_others {
        ($empty:expr) => {
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok($empty)
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok($empty)
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok($empty)
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok($empty)
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok($empty)
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok($empty)
            }
        };
    }

    fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }

    /// A string, untouched; anything else is `None`.
    pub(super) struct Raw(pub(super) Option<String>);

    impl<'de> Deserialize<'de> for Raw {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Raw;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("any JSON value")
                }
                fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Raw, E> {
                    Ok(Raw(Some(v.to_owned())))
                }
                fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Raw, E> {
                    Ok(Raw(Some(v)))
                }
                fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Raw, A::Error> {
                    drain_seq(seq).map(|()| Raw(None))
                }
                fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Raw, A::Error> {
                    drain_map(map).map(|()| Raw(None))
                }
                ignore_others!(Raw(None));
            }
            d.deserialize_any(V)
        }
    }

    /// A string, trimmed; anything else is empty.
    pub(super) struct Text(pub(super) String);

    impl<'de> Deserialize<'de> for Text {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Text;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("any JSON value")
                }
                fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text, E> {
                    Ok(Text(v.trim().to_owned()))
                }
                fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Text, E> {
                    if v.trim().len() == v.len() {
                        Ok(Text(v))
                    } else {
                        Ok(Text(v.trim().to_owned()))
                    }
                }
                fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Text, A::Error> {
                    drain_seq(seq).map(|()| Text(String::new()))
                }
                fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Text, A::Error> {
                    drain_map(map).map(|()| Text(String::new()))
                }
                ignore_others!(Text(String::new()));
            }
            d.deserialize_any(V)
        }
    }

    /// An array's non-empty trimmed strings (other entries dropped), allocated to fit;
    /// anything but an array is empty. With `EMAILS`, the entries are `{"address": ..}`
    /// objects and their addresses are taken.
    pub(super) struct List<const EMAILS: bool>(pub(super) Vec<String>);

    impl<'de, const EMAILS: bool> Deserialize<'de> for List<EMAILS> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V<const EMAILS: bool>;
            impl<'de, const EMAILS: bool> Visitor<'de> for V<EMAILS> {
                type Value = List<EMAILS>;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("any JSON value")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                    let mut out = Vec::new();
                    loop {
                        let entry = if EMAILS {
                            match seq.next_element::<Address>()? {
                                Some(a) => a.0,
                                None => break,
                            }
                        } else {
                            match seq.next_element::<Text>()? {
                                Some(t) => t.0,
                                None => break,
                            }
                        };
                        if !entry.is_empty() {
                            out.push(entry);
                        }
                    }
                    out.shrink_to_fit();
                    Ok(List(out))
                }
                fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
                    Ok(List(Vec::new()))
                }
                fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                    drain_map(map).map(|()| List(Vec::new()))
                }
                ignore_others!(List(Vec::new()));
            }
            d.deserialize_any(V::<EMAILS>)
        }
    }

    /// The trimmed `address` of an `emailAddresses` entry; empty for anything else.
    struct Address(String);

    impl<'de> Deserialize<'de> for Address {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Address;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("any JSON value")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Address, A::Error> {
                    let mut address = String::new();
                    while let Some(key) = map.next_key::<Key>()? {
                        if key == Key::Address {
                            address = map.next_value::<Text>()?.0;
                        } else {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                    Ok(Address(address))
                }
                fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Address, E> {
                    Ok(Address(String::new()))
                }
                fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Address, A::Error> {
                    drain_seq(seq).map(|()| Address(String::new()))
                }
                ignore_others!(Address(String::new()));
            }
            d.deserialize_any(V)
        }
    }

    /// The object keys read; every other key is `Other` (and its value skipped).
    #[derive(Clone, Copy, PartialEq, Eq)]
    pub(super) enum Key {
        Id,
        Removed,
        DisplayName,
        GivenName,
        Surname,
        CompanyName,
        JobTitle,
        BusinessPhones,
        HomePhones,
        MobilePhone,
        EmailAddresses,
        Address,
        Value,
        NextLink,
        DeltaLink,
        Other,
    }

    impl<'de> Deserialize<'de> for Key {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Key;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("an object key")
                }
                fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Key, E> {
                    Ok(match v {
                        "id" => Key::Id,
                        "@removed" => Key::Removed,
                        "displayName" => Key::DisplayName,
                        "givenName" => Key::GivenName,
                        "surname" => Key::Surname,
                        "companyName" => Key::CompanyName,
                        "jobTitle" => Key::JobTitle,
                        "businessPhones" => Key::BusinessPhones,
                        "homePhones" => Key::HomePhones,
                        "mobilePhone" => Key::MobilePhone,
                        "emailAddresses" => Key::EmailAddresses,
                        "address" => Key::Address,
                        "value" => Key::Value,
                        "@odata.nextLink" => Key::NextLink,
                        "@odata.deltaLink" => Key::DeltaLink,
                        _ => Key::Other,
                    })
                }
            }
            d.deserialize_identifier(V)
        }
    }

    /// One item of a contacts page (or a user): the contact when it has a string `id`, and
    /// whether it carries `@removed` (whatever its value).
    #[derive(Default)]
    pub(super) struct DeltaItem {
        /// Packed as soon as it is read, so a page's items hold one allocation each.
        pub(super) contact: Option<Record>,
        pub(super) removed: bool,
    }

    impl<'de> Deserialize<'de> for DeltaItem {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = DeltaItem;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("any JSON value")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DeltaItem, A::Error> {
                    let mut id = None;
                    let mut removed = false;
                    let mut c = StoredContact::default();
                    while let Some(key) = map.next_key::<Key>()? {
                        match key {
                            Key::Id => id = map.next_value::<Raw>()?.0,
                            Key::Removed => {
                                removed = true;
                                map.next_value::<IgnoredAny>()?;
                            }
                            Key::DisplayName => c.display_name = map.next_value::<Text>()?.0,
                            Key::GivenName => c.given_name = map.next_value::<Text>()?.0,
                            Key::Surname => c.surname = map.next_value::<Text>()?.0,
                            Key::CompanyName => c.company = map.next_value::<Text>()?.0,
                            Key::JobTitle => c.job_title = map.next_value::<Text>()?.0,
                            Key::BusinessPhones => {
                                c.business = map.next_value::<List<false>>()?.0;
                            }
                            Key::HomePhones => c.home = map.next_value::<List<false>>()?.0,
                            Key::MobilePhone => {
                                c.mobile =
                                    Some(map.next_value::<Text>()?.0).filter(|m| !m.is_empty());
                            }
                            Key::EmailAddresses => c.emails = map.next_value::<List<true>>()?.0,
                            _ => {
                                map.next_value::<IgnoredAny>()?;
                            }
                        }
                    }
                    let contact = id.map(|id| {
                        StoredContact {
                            id: if id.trim().len() == id.len() {
                                id
                            } else {
                                id.trim().to_owned()
                            },
                            ..c
                        }
                        .pack()
                    });
                    Ok(DeltaItem { contact, removed })
                }
                fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<DeltaItem, E> {
                    Ok(DeltaItem::default())
                }
                fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<DeltaItem, A::Error> {
                    drain_seq(seq).map(|()| DeltaItem::default())
                }
                ignore_others!(DeltaItem::default());
            }
            d.deserialize_any(V)
        }
    }

    /// A contacts delta page: `value` (`None` unless an array) and the links (`None` unless
    /// strings).
    #[derive(Default)]
    pub(super) struct DeltaPage {
        pub(super) value: Option<Vec<DeltaItem>>,
        pub(super) next_link: Option<String>,
        pub(super) delta_link: Option<String>,
    }

    /// `value`: the items of an array, `None` for anything else.
    struct Items(Option<Vec<DeltaItem>>);

    impl<'de> Deserialize<'de> for Items {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Items;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("any JSON value")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Items, A::Error> {
                    let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                    while let Some(item) = seq.next_element::<DeltaItem>()? {
                        items.push(item);
                    }
                    Ok(Items(Some(items)))
                }
                fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Items, E> {
                    Ok(Items(None))
                }
                fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Items, A::Error> {
                    drain_map(map).map(|()| Items(None))
                }
                ignore_others!(Items(None));
            }
            d.deserialize_any(V)
        }
    }

    impl<'de> Deserialize<'de> for DeltaPage {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = DeltaPage;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("any JSON value")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DeltaPage, A::Error> {
                    let mut page = DeltaPage::default();
                    while let Some(key) = map.next_key::<Key>()? {
                        match key {
                            Key::Value => page.value = map.next_value::<Items>()?.0,
                            Key::NextLink => page.next_link = map.next_value::<Raw>()?.0,
                            Key::DeltaLink => page.delta_link = map.next_value::<Raw>()?.0,
                            _ => {
                                map.next_value::<IgnoredAny>()?;
                            }
                        }
                    }
                    Ok(page)
                }
                fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<DeltaPage, E> {
                    Ok(DeltaPage::default())
                }
                fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<DeltaPage, A::Error> {
                    drain_seq(seq).map(|()| DeltaPage::default())
                }
                ignore_others!(DeltaPage::default());
            }
            d.deserialize_any(V)
        }
    }
}

use lenient::{DeltaItem, DeltaPage};

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
    fn diff_counts_added_updated_removed() {
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
                contacts: [c("a", "A").pack(), c("b", "B").pack()]
                    .into_iter()
                    .collect(),
            },
        );
        let mut new = old.clone();
        let f = new.folders.get_mut("f").unwrap();
        f.contacts.remove("a");
        f.contacts.insert(c("b", "B2").pack());
        f.contacts.insert(c("n", "N").pack());
        new.colleagues.insert(c("u", "U").pack());
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
    fn entries_count_an_id_of_several_folders_once_in_its_first_folder() {
        let c = |id: String, name: &str| {
            StoredContact {
                id,
                display_name: name.into(),
                ..Default::default()
            }
            .pack()
        };
        let mut m = Mailbox::default();
        for (f, step) in [("f1", 3), ("f2", 2), ("f3", 5), ("f4", 7)] {
            m.folders.insert(
                f.into(),
                Folder {
                    delta_link: None,
                    contacts: (0..60)
                        .filter(|i| i % step == 0)
                        .map(|i| c(format!("id{i:02}"), f))
                        .collect(),
                },
            );
        }
        m.folders.insert("f5".into(), Folder::default());
        // The plain way: folder by folder, skipping ids seen before.
        let mut seen = BTreeSet::new();
        let expected: Vec<(String, String)> = m
            .folders
            .values()
            .flat_map(|f| f.contacts.values())
            .filter(|r| seen.insert(r.id().to_owned()))
            .map(|r| (r.id().to_owned(), r.display_name().to_owned()))
            .collect();
        let (outlook, colleagues) = m.entries();
        let got: Vec<(String, String)> = outlook
            .iter()
            .map(|r| (r.id().to_owned(), r.display_name().to_owned()))
            .collect();
        assert_eq!(got, expected);
        assert!(colleagues.is_empty());
        assert_eq!(m.len(), seen.len());
        assert!(got.contains(&("id30".into(), "f1".into())));
        assert!(got.contains(&("id10".into(), "f2".into())));
    }

    /// A sync against a fresh emulator, signed in as Adele with directory read rights.
    mod directory {
        use super::*;
        use ms365_emulator::tenant::{ADELE_UPN, ALEX_ID, LEE_ID, MEGAN_ID, MEGAN_UPN};
        use ms365_emulator::{EmulatorConfig, EmulatorHandle};

        struct Rig {
            emu: EmulatorHandle,
            graph: Graph,
            token: SecretString,
            limiter: Arc<Semaphore>,
            policy: RetryPolicy,
        }

        impl Rig {
            fn new() -> Rig {
                let emu = EmulatorHandle::spawn(EmulatorConfig {
                    contacts_per_user: 3,
                    ..Default::default()
                })
                .unwrap();
                let token = emu
                    .control()
                    .mint_access_token(
                        ADELE_UPN,
                        &emu.client_id(),
                        &["User.Read", "User.Read.All", "Contacts.Read"],
                        3600,
                    )
                    .unwrap();
                Rig {
                    graph: Graph::new(crate::http::client().unwrap(), &emu.graph_url()),
                    emu,
                    token: SecretString::from(token),
                    limiter: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
                    policy: RetryPolicy::default(),
                }
            }

            async fn sync(&self, previous: &Mailbox, directory: bool) -> Mailbox {
                let req = SyncRequest {
                    graph: &self.graph,
                    token: &self.token,
                    directory,
                    limiter: &self.limiter,
                    policy: &self.policy,
                    progress: Arc::new(|_| {}),
                };
                sync(&req, previous).await.expect("sync")
            }

            /// The `/users` and `/users/delta` requests since the last call, as `path?query`.
            fn directory_requests(&self) -> Vec<String> {
                let c = self.emu.control();
                let out = c
                    .requests()
                    .into_iter()
                    .filter(|r| r.path.contains("/users"))
                    .map(|r| format!("{}?{}", r.path, r.query.unwrap_or_default()))
                    .collect();
                c.clear_requests();
                out
            }
        }

        fn only_delta_link_requests(reqs: &[String]) {
            assert!(!reqs.is_empty());
            for r in reqs {
                assert!(r.contains("/users/delta?"), "{r}");
                assert!(
                    r.contains("deltatoken") || r.contains("skiptoken"),
                    "a full read: {r}"
                );
            }
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn first_round_reads_every_colleague_and_keeps_the_link() {
            let rig = Rig::new();
            let m = rig.sync(&Mailbox::default(), true).await;
            assert_eq!(m.colleagues.len(), 4);
            let megan = StoredContact::from(&m.colleagues[MEGAN_ID]);
            assert_eq!(megan.display_name, "Megan Bowen");
            assert_eq!(megan.business, ["+1 425 555 0109"]);
            assert_eq!(megan.mobile.as_deref(), Some("+1 206 555 0144"));
            assert_eq!(megan.emails, [MEGAN_UPN]);
            assert!(
                m.directory_delta_link
                    .as_deref()
                    .is_some_and(|l| l.contains("/users/delta?") && l.contains("deltatoken"))
            );
            let reqs = rig.directory_requests();
            assert_eq!(reqs.len(), 1, "{reqs:?}");
            assert!(reqs[0].contains("/users/delta?"), "{reqs:?}");
            assert!(reqs[0].contains("select="), "{reqs:?}");
            assert!(
                !reqs[0].contains("top="),
                "users delta does not support $top"
            );

            // Switching the directory off drops the colleagues and the link.
            let off = rig.sync(&m, false).await;
            assert!(off.colleagues.is_empty());
            assert_eq!(off.directory_delta_link, None);
            assert!(rig.directory_requests().is_empty());
            // On again: a full round.
            let on = rig.sync(&off, true).await;
            assert_eq!(on.colleagues, m.colleagues);
            let reqs = rig.directory_requests();
            assert!(reqs.iter().all(|r| !r.contains("deltatoken")), "{reqs:?}");
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn change_round_applies_changes_and_removals() {
            let rig = Rig::new();
            let first = rig.sync(&Mailbox::default(), true).await;
            rig.directory_requests();
            let c = rig.emu.control();
            c.update_user(
                MEGAN_UPN,
                &serde_json::json!({"mobilePhone": "+1 206 555 0199"}),
            )
            .unwrap();
            c.delete_user(ALEX_ID, false).unwrap();
            c.delete_user(LEE_ID, true).unwrap();
            let new_id = c
                .add_user(&serde_json::json!({
                    "userPrincipalName": "nestor.wilke@contoso.example",
                    "displayName": "Nestor Wilke",
                    "businessPhones": ["+49 89 2030405-300"],
                }))
                .unwrap();

            let second = rig.sync(&first, true).await;
            only_delta_link_requests(&rig.directory_requests());
            let ids: Vec<&str> = second.colleagues.keys().collect();
            let mut want = vec![ms365_emulator::tenant::ADELE_ID, MEGAN_ID, new_id.as_str()];
            want.sort_unstable();
            assert_eq!(ids, want);
            assert_eq!(
                StoredContact::from(&second.colleagues[MEGAN_ID])
                    .mobile
                    .as_deref(),
                Some("+1 206 555 0199")
            );
            assert_eq!(
                StoredContact::from(&second.colleagues[&new_id]).business,
                ["+49 89 2030405-300"]
            );
            assert_ne!(second.directory_delta_link, first.directory_delta_link);
            // The same as a full read.
            let full = rig.sync(&Mailbox::default(), true).await;
            assert_eq!(full.colleagues, second.colleagues);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn expired_link_reads_the_directory_in_full() {
            let rig = Rig::new();
            let mut first = rig.sync(&Mailbox::default(), true).await;
            // A colleague the directory no longer has, kept only in the old state: a full
            // round must not keep it.
            first.colleagues.insert(
                StoredContact {
                    id: "stale".into(),
                    display_name: "Gone Person".into(),
                    ..Default::default()
                }
                .pack(),
            );
            rig.directory_requests();
            let c = rig.emu.control();
            c.update_user(MEGAN_UPN, &serde_json::json!({"displayName": "Megan B."}))
                .unwrap();
            c.expire_directory_delta_tokens();

            let second = rig.sync(&first, true).await;
            let reqs = rig.directory_requests();
            assert_eq!(reqs.len(), 2, "{reqs:?}");
            assert!(reqs[0].contains("deltatoken"), "{reqs:?}");
            assert!(!reqs[1].contains("deltatoken"), "{reqs:?}");
            assert_eq!(second.colleagues.len(), 4);
            assert!(!second.colleagues.contains_key("stale"));
            assert_eq!(second.colleagues[MEGAN_ID].display_name(), "Megan B.");
            assert!(second.directory_delta_link.is_some());

            // A failing full round changes nothing: the sync fails as a whole.
            c.expire_directory_delta_tokens();
            // The deltaLink answers syncStateNotFound; the full round's first page fails.
            c.inject_fault(ms365_emulator::FaultRule {
                path_prefix: "/v1.0/users/delta?$select".into(),
                method: None,
                count: 1,
                fault: ms365_emulator::Fault::Status {
                    status: 404,
                    retry_after: None,
                },
            })
            .unwrap();
            let req = SyncRequest {
                graph: &rig.graph,
                token: &rig.token,
                directory: true,
                limiter: &rig.limiter,
                policy: &rig.policy,
                progress: Arc::new(|_| {}),
            };
            assert!(sync(&req, &second).await.is_err());
            let reqs = rig.directory_requests();
            assert_eq!(reqs.len(), 2, "{reqs:?}");
            assert!(reqs[1].contains("select="), "{reqs:?}");
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn full_round_follows_next_links() {
            let rig = Rig::new();
            let c = rig.emu.control();
            for n in 0..MAX_USERS_PAGE {
                c.add_user(&serde_json::json!({
                    "userPrincipalName": format!("user{n}@contoso.example"),
                    "displayName": format!("User {n}"),
                }))
                .unwrap();
            }
            let m = rig.sync(&Mailbox::default(), true).await;
            assert_eq!(m.colleagues.len(), 4 + MAX_USERS_PAGE as usize);
            let reqs = rig.directory_requests();
            assert_eq!(reqs.len(), 2, "{reqs:?}");
            assert!(reqs[1].contains("skiptoken"), "{reqs:?}");
        }
    }

    #[test]
    fn users_pages_remove_and_replace() {
        let mut colleagues = Records::default();
        let page = serde_json::json!({"value": [
            {"id": "u1", "displayName": "One", "mail": " one@contoso.example ", "mobilePhone": "0170 1"},
            {"id": "u2", "displayName": "Two", "mail": null},
            {"displayName": "no id"},
        ]});
        assert_eq!(apply_users_page(&page, &mut colleagues).unwrap(), 3);
        assert_eq!(
            colleagues["u1"].emails().collect::<Vec<_>>(),
            ["one@contoso.example"]
        );
        assert_eq!(colleagues["u2"].emails().count(), 0);
        let page = serde_json::json!({"value": [
            {"id": "u1", "@removed": {"reason": "changed"}},
            {"id": "u2", "@removed": {"reason": "deleted"}},
            {"id": "u3", "displayName": "Three"},
        ]});
        apply_users_page(&page, &mut colleagues).unwrap();
        assert_eq!(colleagues.keys().collect::<Vec<_>>(), ["u3"]);
        assert!(apply_users_page(&serde_json::json!({}), &mut colleagues).is_err());
    }

    #[test]
    fn pages_read_from_bytes_and_from_values_agree() {
        let body = br#"{"@odata.context":"x","value":[
            {"id":" c1 ","displayName":"  Anna  ","businessPhones":["089 1", " ", 7],
             "emailAddresses":[{"address":" a@x.example ","name":"A"},"bad",{"address":null}],
             "givenName":{"nested":[1,2]},"surname":"First","surname":"Last"},
            {"id":"c2","@removed":{"reason":"deleted"}},
            {"id":"c3","@removed":null},
            {"id":5,"displayName":"no string id"},
            42, "text", null, [1],
            {"id":"c4","mobilePhone":"  ","homePhones":"x","jobTitle":true}
        ],"@odata.nextLink":"http://127.0.0.1/next","@odata.deltaLink":17}"#;
        let seeded = || {
            ["c2", "c3", "c9"]
                .map(|id| {
                    let c = StoredContact {
                        id: id.into(),
                        ..Default::default()
                    };
                    c.pack()
                })
                .into_iter()
                .collect::<Records>()
        };
        let page: DeltaPage = serde_json::from_slice(body).unwrap();
        assert_eq!(page.next_link.as_deref(), Some("http://127.0.0.1/next"));
        assert_eq!(page.delta_link, None);
        let mut typed = seeded();
        let mut changes = Vec::new();
        assert_eq!(page_changes(page.value, &mut changes), Ok(9));
        typed.apply(changes);
        let mut via_value = seeded();
        let value: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(apply_delta_page(&value, &mut via_value), Ok(9));
        assert_eq!(typed, via_value);
        assert_eq!(typed.keys().collect::<Vec<_>>(), ["c1", "c4", "c9"]);
        let c1 = StoredContact::from(&typed["c1"]);
        assert_eq!(c1.id, "c1");
        assert_eq!(c1.display_name, "Anna");
        assert_eq!(c1.given_name, "");
        assert_eq!(c1.surname, "Last", "the last of repeated keys counts");
        assert_eq!(c1.business, ["089 1"]);
        assert_eq!(c1.emails, ["a@x.example"]);
        let c4 = StoredContact::from(&typed["c4"]);
        assert_eq!((c4.mobile.clone(), c4.home.len()), (None, 0));
        assert_eq!(c4.job_title, "");

        for bad in [&br#"{"value":{"id":"c1"}}"#[..], b"[1,2]", b"null", b"{}"] {
            let page: DeltaPage = serde_json::from_slice(bad).unwrap();
            assert!(page_changes(page.value, &mut Vec::new()).is_err());
        }
        assert!(serde_json::from_slice::<DeltaPage>(b"{\"value\":[").is_err());
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
