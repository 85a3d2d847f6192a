//! Control of Outlook contacts: add, change, delete, expire delta tokens, seed a large mailbox.
//!
//! HTTP (under `/_emulator/`): `POST contacts {"upn","folder_id"?, ...contact JSON}` →
//! `{"id"}`; `PATCH contacts/{id} {"upn"?, ...contact JSON}`; `DELETE contacts/{id}`
//! (optional `?upn=`); `POST contacts/expire-delta {"upn"}`; `POST contacts/seed
//! {"upn","count"}` → `{"ok":true,"contacts":count}`. Without `upn`, PATCH and DELETE look
//! the contact up in every mailbox.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::control::{Control, ControlError, Sh, bad, control, parse, reply};
use crate::state::{Shared, World};

impl Control {
    fn mailbox_owner(w: &World, upn: Option<&str>, contact: &str) -> Result<String, ControlError> {
        match upn {
            Some(u) => Self::user_id(w, u),
            None => w
                .tenant
                .users
                .iter()
                .find(|u| u.mailbox.contact(contact).is_some())
                .map(|u| u.profile.id.clone())
                .ok_or_else(|| ControlError::NotFound(format!("no contact '{contact}'"))),
        }
    }

    /// Adds a contact (Graph contact JSON, e.g. `{"givenName":..,"businessPhones":[..]}`) to
    /// the user's folder (`None`: the default "Contacts" folder). Returns the new id. It shows
    /// up in the folder's next delta round.
    pub fn add_contact(
        &self,
        upn: &str,
        folder_id: Option<&str>,
        contact: &Value,
    ) -> Result<String, ControlError> {
        let body = contact.as_object().ok_or_else(|| {
            ControlError::InvalidRequest("the contact must be a JSON object".into())
        })?;
        let now = self.shared.now();
        let mut w = self.shared.world();
        let id = Self::user_id(&w, upn)?;
        let u = w.tenant.user_by_id_mut(&id).expect("user exists");
        let folder = folder_id.map_or(u.mailbox.default_folder_id.clone(), str::to_string);
        if u.mailbox.folder(&folder).is_none() {
            return Err(ControlError::NotFound(format!(
                "no contact folder '{folder}'"
            )));
        }
        let mut c = crate::mailbox::Contact::default();
        c.apply(body).map_err(ControlError::InvalidRequest)?;
        u.mailbox
            .insert(&folder, c, now)
            .map_err(ControlError::NotFound)
    }

    /// Changes a contact (PATCH semantics: the given properties only). `upn`: the mailbox, or
    /// `None` to find the contact in any mailbox.
    pub fn update_contact(
        &self,
        upn: Option<&str>,
        contact_id: &str,
        changes: &Value,
    ) -> Result<(), ControlError> {
        let body = changes.as_object().ok_or_else(|| {
            ControlError::InvalidRequest("the changes must be a JSON object".into())
        })?;
        let now = self.shared.now();
        let mut w = self.shared.world();
        let owner = Self::mailbox_owner(&w, upn, contact_id)?;
        let m = &mut w
            .tenant
            .user_by_id_mut(&owner)
            .expect("user exists")
            .mailbox;
        if m.contact(contact_id).is_none() {
            return Err(ControlError::NotFound(format!("no contact '{contact_id}'")));
        }
        m.update(contact_id, body, now)
            .map_err(ControlError::InvalidRequest)
    }

    /// Deletes a contact; the folder's next delta round reports it `@removed`.
    pub fn delete_contact(&self, upn: Option<&str>, contact_id: &str) -> Result<(), ControlError> {
        let mut w = self.shared.world();
        let owner = Self::mailbox_owner(&w, upn, contact_id)?;
        let m = &mut w
            .tenant
            .user_by_id_mut(&owner)
            .expect("user exists")
            .mailbox;
        m.delete(contact_id).map_err(ControlError::NotFound)
    }

    /// Expires every contacts delta token (and skip token) of the user: the next use answers
    /// 410 Gone `syncStateNotFound`.
    pub fn expire_delta_tokens(&self, upn: &str) -> Result<(), ControlError> {
        let mut w = self.shared.world();
        let id = Self::user_id(&w, upn)?;
        w.tenant
            .user_by_id_mut(&id)
            .expect("user exists")
            .mailbox
            .epoch += 1;
        Ok(())
    }

    /// Replaces the user's mailbox with a freshly generated one of `count` contacts (the
    /// seed's folders and ids; Adele's fixed contacts first). Old delta tokens expire.
    pub fn seed_contacts(&self, upn: &str, count: usize) -> Result<(), ControlError> {
        if count > 1_000_000 {
            return Err(ControlError::InvalidRequest(
                "count must be at most 1000000".into(),
            ));
        }
        let id = Self::user_id(&self.shared.world(), upn)?;
        let mut fresh = crate::tenant::seed_mailbox(&id, count);
        let mut w = self.shared.world();
        let u = w.tenant.user_by_id_mut(&id).expect("user exists");
        fresh.epoch = u.mailbox.epoch + 1;
        u.mailbox = fresh;
        Ok(())
    }

    /// Number of contacts in the user's mailbox (all folders).
    pub fn contact_count(&self, upn: &str) -> Result<usize, ControlError> {
        let w = self.shared.world();
        let id = Self::user_id(&w, upn)?;
        Ok(w.tenant
            .user_by_id(&id)
            .map_or(0, |u| u.mailbox.contact_count()))
    }
}

/// Contacts control routes.
pub fn routes() -> Router<std::sync::Arc<Shared>> {
    Router::new()
        .route("/contacts", post(add))
        .route("/contacts/expire-delta", post(expire_delta))
        .route("/contacts/seed", post(seed))
        .route(
            "/contacts/{id}",
            axum::routing::patch(change).delete(remove),
        )
}

fn split(body: &[u8]) -> Result<(Option<String>, Option<String>, Value), Box<Response>> {
    let v: Value = parse(body)?;
    let Value::Object(mut m) = v else {
        return Err(Box::new(bad(
            StatusCode::BAD_REQUEST,
            "body must be a JSON object",
        )));
    };
    let take = |m: &mut Map<String, Value>, k: &str| {
        m.remove(k).and_then(|v| v.as_str().map(str::to_string))
    };
    let upn = take(&mut m, "upn");
    let folder = take(&mut m, "folder_id");
    Ok((upn, folder, Value::Object(m)))
}

async fn add(State(sh): Sh, body: axum::body::Bytes) -> Response {
    match split(&body) {
        Ok((Some(upn), folder, c)) => reply(
            control(&sh)
                .add_contact(&upn, folder.as_deref(), &c)
                .map(|id| json!({"ok": true, "id": id})),
        ),
        Ok((None, _, _)) => bad(StatusCode::BAD_REQUEST, "missing 'upn'"),
        Err(r) => *r,
    }
}

async fn change(State(sh): Sh, Path(id): Path<String>, body: axum::body::Bytes) -> Response {
    match split(&body) {
        Ok((upn, _, c)) => reply(
            control(&sh)
                .update_contact(upn.as_deref(), &id, &c)
                .map(|_| json!({"ok": true})),
        ),
        Err(r) => *r,
    }
}

async fn remove(
    State(sh): Sh,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    reply(
        control(&sh)
            .delete_contact(q.get("upn").map(String::as_str), &id)
            .map(|_| json!({"ok": true})),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Upn {
    upn: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Seed {
    upn: String,
    count: usize,
}

async fn expire_delta(State(sh): Sh, body: axum::body::Bytes) -> Response {
    match parse::<Upn>(&body) {
        Ok(b) => reply(
            control(&sh)
                .expire_delta_tokens(&b.upn)
                .map(|_| json!({"ok": true})),
        ),
        Err(r) => *r,
    }
}

async fn seed(State(sh): Sh, body: axum::body::Bytes) -> Response {
    match parse::<Seed>(&body) {
        Ok(b) => reply(
            control(&sh)
                .seed_contacts(&b.upn, b.count)
                .map(|_| json!({"ok": true, "contacts": b.count})),
        ),
        Err(r) => *r,
    }
}
