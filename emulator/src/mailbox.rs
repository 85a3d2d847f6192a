//! A user's Outlook contacts: the folder tree, the contacts and the change log that contact
//! delta queries read.
//!
//! Folders: the mailbox has one default "Contacts" folder (its id is
//! [`Mailbox::default_folder_id`]; its `parentFolderId` is the mailbox root, which is not a
//! contact folder). `GET /me/contactFolders` lists the default folder's sub-folders, not the
//! default folder itself (as documented); every top-level folder and every contact of
//! `/me/contacts` carries the default folder's id as `parentFolderId`, and
//! `/me/contactFolders/{default id}` (and its `/contacts`, `/contacts/delta`, `/childFolders`)
//! work like any other folder. Well-known names (`contacts`) are not accepted in place of ids.
//!
//! Changes: every add, change or delete takes the next value of a per-mailbox sequence number.
//! Each folder keeps its live contacts by id (the listing order) and, per contact, its latest
//! change by sequence number (a tombstone once deleted). A delta round returns the changes in a
//! range of sequence numbers, so what changes during a round shows up in the next one.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

/// An e-mail address of a contact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailAddress {
    /// Address.
    pub address: String,
    /// Display name.
    pub name: String,
}

/// One Outlook contact (the properties the emulator models; others are in `extra`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Contact {
    /// Item id.
    pub id: String,
    /// Folder id.
    pub parent_folder_id: String,
    /// Version stamp, new on every change.
    pub change_key: String,
    /// Created (UTC).
    pub created: Option<OffsetDateTime>,
    /// Last modified (UTC).
    pub modified: Option<OffsetDateTime>,
    /// Sequence number of the last change.
    pub seq: u64,
    /// `displayName`.
    pub display_name: Option<String>,
    /// `givenName`.
    pub given_name: Option<String>,
    /// `middleName`.
    pub middle_name: Option<String>,
    /// `surname`.
    pub surname: Option<String>,
    /// `companyName`.
    pub company_name: Option<String>,
    /// `department`.
    pub department: Option<String>,
    /// `jobTitle`.
    pub job_title: Option<String>,
    /// `businessPhones`.
    pub business_phones: Vec<String>,
    /// `homePhones`.
    pub home_phones: Vec<String>,
    /// `mobilePhone`.
    pub mobile_phone: Option<String>,
    /// `emailAddresses`.
    pub email_addresses: Vec<EmailAddress>,
    /// `categories`.
    pub categories: Vec<String>,
    /// Any other writable contact property set through the control API (canonical name).
    pub extra: BTreeMap<String, Value>,
}

/// Every property of `microsoft.graph.contact` in the order Graph writes them.
pub const CONTACT_PROPS: &[&str] = &[
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "parentFolderId",
    "birthday",
    "fileAs",
    "displayName",
    "givenName",
    "initials",
    "middleName",
    "nickName",
    "surname",
    "title",
    "yomiGivenName",
    "yomiSurname",
    "yomiCompanyName",
    "generation",
    "imAddresses",
    "jobTitle",
    "companyName",
    "department",
    "officeLocation",
    "profession",
    "businessHomePage",
    "assistantName",
    "manager",
    "homePhones",
    "mobilePhone",
    "businessPhones",
    "spouseName",
    "personalNotes",
    "children",
    "emailAddresses",
    "homeAddress",
    "businessAddress",
    "otherAddress",
];

const ARRAY_PROPS: &[&str] = &[
    "categories",
    "imAddresses",
    "homePhones",
    "businessPhones",
    "children",
    "emailAddresses",
];
const ADDRESS_PROPS: &[&str] = &["homeAddress", "businessAddress", "otherAddress"];
const READ_ONLY: &[&str] = &[
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "parentFolderId",
];

/// Canonical spelling of a contact property (case-insensitive), if it exists.
pub fn canonical_prop(name: &str) -> Option<&'static str> {
    CONTACT_PROPS
        .iter()
        .find(|p| p.eq_ignore_ascii_case(name))
        .copied()
}

fn opt(v: &Option<String>) -> Value {
    v.as_ref().map_or(Value::Null, |s| json!(s))
}

impl Contact {
    /// One property as Graph renders it.
    pub fn property(&self, name: &str) -> Value {
        match name {
            "id" => json!(self.id),
            "createdDateTime" => self
                .created
                .map_or(Value::Null, |t| json!(crate::clock::rfc3339(t))),
            "lastModifiedDateTime" => self
                .modified
                .map_or(Value::Null, |t| json!(crate::clock::rfc3339(t))),
            "changeKey" => json!(self.change_key),
            "parentFolderId" => json!(self.parent_folder_id),
            "displayName" => opt(&self.display_name),
            "givenName" => opt(&self.given_name),
            "middleName" => opt(&self.middle_name),
            "surname" => opt(&self.surname),
            "companyName" => opt(&self.company_name),
            "department" => opt(&self.department),
            "jobTitle" => opt(&self.job_title),
            "businessPhones" => json!(self.business_phones),
            "homePhones" => json!(self.home_phones),
            "mobilePhone" => opt(&self.mobile_phone),
            "categories" => json!(self.categories),
            "emailAddresses" => Value::Array(
                self.email_addresses
                    .iter()
                    .map(|e| json!({"name": e.name, "address": e.address}))
                    .collect(),
            ),
            "fileAs" => self.extra.get(name).cloned().unwrap_or_else(|| {
                json!(match (&self.surname, &self.given_name) {
                    (Some(s), Some(g)) => format!("{s}, {g}"),
                    _ => self.display_name.clone().unwrap_or_default(),
                })
            }),
            other => self.extra.get(other).cloned().unwrap_or_else(|| {
                if ARRAY_PROPS.contains(&other) {
                    json!([])
                } else if ADDRESS_PROPS.contains(&other) {
                    json!({})
                } else {
                    Value::Null
                }
            }),
        }
    }

    /// The contact as Graph renders it: `@odata.etag`, then all properties or the selected
    /// ones (`id` always).
    pub fn render(&self, select: Option<&[String]>) -> Value {
        let mut obj = Map::new();
        obj.insert(
            "@odata.etag".into(),
            json!(format!("W/\"{}\"", self.change_key)),
        );
        match select {
            Some(list) if !list.is_empty() => {
                obj.insert("id".into(), json!(self.id));
                for name in list {
                    obj.insert(name.clone(), self.property(name));
                }
            }
            _ => {
                for name in CONTACT_PROPS {
                    obj.insert((*name).to_string(), self.property(name));
                }
            }
        }
        Value::Object(obj)
    }

    /// Applies Graph contact JSON (a create body or a PATCH): writable properties only.
    pub fn apply(&mut self, body: &Map<String, Value>) -> Result<(), String> {
        let mut name_changed = false;
        for (key, value) in body {
            if key.starts_with('@') {
                continue;
            }
            let Some(prop) = canonical_prop(key) else {
                return Err(format!(
                    "The property '{key}' does not exist on type 'microsoft.graph.contact'."
                ));
            };
            if READ_ONLY.contains(&prop) {
                continue;
            }
            let text = |v: &Value| -> Result<Option<String>, String> {
                match v {
                    Value::Null => Ok(None),
                    Value::String(s) => Ok(Some(s.clone())),
                    _ => Err(format!("'{prop}' must be a string or null")),
                }
            };
            let list = |v: &Value| -> Result<Vec<String>, String> {
                match v {
                    Value::Null => Ok(Vec::new()),
                    Value::Array(a) => a
                        .iter()
                        .map(|x| {
                            x.as_str()
                                .map(str::to_string)
                                .ok_or_else(|| format!("'{prop}' must be an array of strings"))
                        })
                        .collect(),
                    _ => Err(format!("'{prop}' must be an array of strings")),
                }
            };
            match prop {
                "displayName" => self.display_name = text(value)?,
                "givenName" => {
                    self.given_name = text(value)?;
                    name_changed = true;
                }
                "middleName" => {
                    self.middle_name = text(value)?;
                    name_changed = true;
                }
                "surname" => {
                    self.surname = text(value)?;
                    name_changed = true;
                }
                "companyName" => self.company_name = text(value)?,
                "department" => self.department = text(value)?,
                "jobTitle" => self.job_title = text(value)?,
                "mobilePhone" => self.mobile_phone = text(value)?,
                "businessPhones" => self.business_phones = list(value)?,
                "homePhones" => self.home_phones = list(value)?,
                "categories" => self.categories = list(value)?,
                "emailAddresses" => {
                    let Value::Array(items) = value else {
                        return Err("'emailAddresses' must be an array".into());
                    };
                    let mut out = Vec::new();
                    for item in items {
                        let address = item
                            .get("address")
                            .and_then(Value::as_str)
                            .ok_or("emailAddresses items need an 'address'")?;
                        let name = item.get("name").and_then(Value::as_str).unwrap_or(address);
                        out.push(EmailAddress {
                            address: address.to_string(),
                            name: name.to_string(),
                        });
                    }
                    self.email_addresses = out;
                }
                other => {
                    self.extra.insert(other.to_string(), value.clone());
                }
            }
        }
        // Outlook builds displayName from the name parts when it is not given.
        if name_changed && !body.keys().any(|k| k.eq_ignore_ascii_case("displayName")) {
            let parts: Vec<&str> = [&self.given_name, &self.middle_name, &self.surname]
                .into_iter()
                .filter_map(|p| p.as_deref())
                .filter(|p| !p.is_empty())
                .collect();
            if !parts.is_empty() {
                self.display_name = Some(parts.join(" "));
            }
        }
        Ok(())
    }
}

/// A change log entry of a folder: the contact's latest change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Contact id.
    pub id: String,
    /// `true` once the contact was deleted (a tombstone).
    pub removed: bool,
}

/// A contact folder.
#[derive(Clone, Debug, Default)]
pub struct ContactFolder {
    /// Folder id.
    pub id: String,
    /// Display name.
    pub display_name: String,
    /// Parent folder id (the mailbox root for the default folder).
    pub parent_folder_id: String,
    /// Live contacts by id (listing order).
    pub contacts: BTreeMap<String, Contact>,
    /// Latest change per contact, by sequence number.
    pub changes: BTreeMap<u64, Change>,
}

impl ContactFolder {
    /// The folder as Graph renders it.
    pub fn render(&self) -> Value {
        json!({
            "id": self.id,
            "displayName": self.display_name,
            "parentFolderId": self.parent_folder_id,
        })
    }
}

/// A user's contacts.
#[derive(Clone, Debug, Default)]
pub struct Mailbox {
    /// Two-digit mailbox tag used in ids.
    pub tag: String,
    /// The mailbox root (`msgfolderroot`); parent of the default folder, not a contact folder.
    pub root_id: String,
    /// The default "Contacts" folder's id.
    pub default_folder_id: String,
    /// All contact folders, the default one first.
    pub folders: Vec<ContactFolder>,
    /// Last sequence number used.
    pub seq: u64,
    /// Delta tokens of an older epoch are expired.
    pub epoch: u64,
    /// Next contact number (ids).
    pub next_contact: u64,
    /// Next folder number (ids).
    pub next_folder: u64,
}

/// The id of contact `n` of mailbox `tag`: as long as Graph's (about 150 characters of
/// base64), so memory and transfer figures measured against the emulator are realistic.
pub fn contact_id(tag: &str, n: u64) -> String {
    format!(
        "AAMkADAw{tag}LTZmYWUtNDdkNC1hMDZiLTU1OGY5OTZhYmY4OABGAAAAAAAiQ8W967B7TKBjgx9rVEURBwAiIsqMbYjsT5eT7KzowPTAAAAAAEOAAAiIsqMbYjsT5eT7KzowPTAAAEGAAAAAAC{n:08}AAA="
    )
}

/// The id of folder `n` of mailbox `tag` (0: the default "Contacts" folder).
pub fn folder_id(tag: &str, n: u64) -> String {
    format!("AAMkADAw{tag}AAAuAAAAAAF{n:04}AAA=")
}

fn change_key(seq: u64) -> String {
    format!("EQAAABYAAAD{seq:010}")
}

impl Mailbox {
    /// An empty mailbox with its default folder.
    pub fn new(tag: &str) -> Mailbox {
        let default_folder_id = folder_id(tag, 0);
        let root_id = format!("AAMkADAw{tag}AAAuAAAAAAEBAAA=");
        Mailbox {
            tag: tag.to_string(),
            folders: vec![ContactFolder {
                id: default_folder_id.clone(),
                display_name: "Contacts".to_string(),
                parent_folder_id: root_id.clone(),
                ..Default::default()
            }],
            root_id,
            default_folder_id,
            seq: 0,
            epoch: 1,
            next_contact: 1,
            next_folder: 1,
        }
    }

    /// Adds a folder under `parent` and returns its id.
    pub fn add_folder(&mut self, parent: &str, name: &str) -> String {
        let id = folder_id(&self.tag, self.next_folder);
        self.next_folder += 1;
        self.folders.push(ContactFolder {
            id: id.clone(),
            display_name: name.to_string(),
            parent_folder_id: parent.to_string(),
            ..Default::default()
        });
        id
    }

    /// The folder with this id.
    pub fn folder(&self, id: &str) -> Option<&ContactFolder> {
        self.folders.iter().find(|f| f.id == id)
    }

    fn folder_mut(&mut self, id: &str) -> Option<&mut ContactFolder> {
        self.folders.iter_mut().find(|f| f.id == id)
    }

    /// Sub-folders of `parent`, in creation order.
    pub fn children(&self, parent: &str) -> Vec<&ContactFolder> {
        self.folders
            .iter()
            .filter(|f| f.parent_folder_id == parent)
            .collect()
    }

    /// The contact with this id, wherever it is.
    pub fn contact(&self, id: &str) -> Option<&Contact> {
        self.folders.iter().find_map(|f| f.contacts.get(id))
    }

    /// Number of live contacts in all folders.
    pub fn contact_count(&self) -> usize {
        self.folders.iter().map(|f| f.contacts.len()).sum()
    }

    /// Stores a new contact in `folder` (its id, change stamp and times are assigned here)
    /// and returns its id.
    pub fn insert(
        &mut self,
        folder: &str,
        mut c: Contact,
        now: OffsetDateTime,
    ) -> Result<String, String> {
        if self.folder(folder).is_none() {
            return Err(format!("no contact folder '{folder}'"));
        }
        self.seq += 1;
        let seq = self.seq;
        c.id = contact_id(&self.tag, self.next_contact);
        self.next_contact += 1;
        c.parent_folder_id = folder.to_string();
        c.seq = seq;
        c.change_key = change_key(seq);
        c.created = Some(c.created.unwrap_or(now));
        c.modified = Some(c.modified.unwrap_or(now));
        let id = c.id.clone();
        let f = self.folder_mut(folder).expect("checked");
        f.changes.insert(
            seq,
            Change {
                id: id.clone(),
                removed: false,
            },
        );
        f.contacts.insert(id.clone(), c);
        Ok(id)
    }

    /// Applies a PATCH to a contact; it gets a new change stamp and shows up in the next delta.
    pub fn update(
        &mut self,
        id: &str,
        body: &Map<String, Value>,
        now: OffsetDateTime,
    ) -> Result<(), String> {
        self.seq += 1;
        let seq = self.seq;
        let f = self
            .folders
            .iter_mut()
            .find(|f| f.contacts.contains_key(id))
            .ok_or_else(|| format!("no contact '{id}'"))?;
        let c = f.contacts.get_mut(id).expect("found");
        let mut changed = c.clone();
        changed.apply(body)?;
        f.changes.remove(&c.seq);
        changed.seq = seq;
        changed.change_key = change_key(seq);
        changed.modified = Some(now);
        *c = changed;
        f.changes.insert(
            seq,
            Change {
                id: id.to_string(),
                removed: false,
            },
        );
        Ok(())
    }

    /// Deletes a contact (a tombstone stays in its folder's change log).
    pub fn delete(&mut self, id: &str) -> Result<(), String> {
        self.seq += 1;
        let seq = self.seq;
        let f = self
            .folders
            .iter_mut()
            .find(|f| f.contacts.contains_key(id))
            .ok_or_else(|| format!("no contact '{id}'"))?;
        let c = f.contacts.remove(id).expect("found");
        f.changes.remove(&c.seq);
        f.changes.insert(
            seq,
            Change {
                id: id.to_string(),
                removed: true,
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_log_keeps_latest_change_per_contact() {
        let now = OffsetDateTime::now_utc();
        let mut m = Mailbox::new("09");
        let d = m.default_folder_id.clone();
        let mut c = Contact::default();
        c.apply(
            json!({"givenName": "Zoë", "surname": "Å"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(c.display_name.as_deref(), Some("Zoë Å"));
        let a = m.insert(&d, c.clone(), now).unwrap();
        let b = m.insert(&d, c, now).unwrap();
        m.update(&a, json!({"jobTitle": "X"}).as_object().unwrap(), now)
            .unwrap();
        m.delete(&b).unwrap();
        let f = m.folder(&d).unwrap();
        let log: Vec<_> = f.changes.iter().map(|(s, c)| (*s, c.removed)).collect();
        assert_eq!(log, [(3, false), (4, true)]);
        assert_eq!(m.contact(&a).unwrap().job_title.as_deref(), Some("X"));
        assert!(m.update("nope", &Map::new(), now).is_err());
        assert!(
            Contact::default()
                .apply(json!({"foo": 1}).as_object().unwrap())
                .is_err()
        );
    }
}
