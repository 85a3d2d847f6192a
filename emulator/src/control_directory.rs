//! Control of the organization's directory: add, change and delete users, expire directory
//! delta tokens. Every change is recorded in the directory's change log, so `/users` lists the
//! new state at once and the next `/users/delta` round reports it.
//!
//! HTTP (under `/_emulator/`): `POST users {"userPrincipalName","displayName", ...user JSON}` →
//! `{"ok":true,"id"}`; `PATCH users/{id or upn} {...user JSON}`; `DELETE users/{id or upn}`
//! (soft delete, reported `@removed` `changed`; `?permanent=true`: reported `deleted`);
//! `POST users/expire-delta` (every directory delta token answers `syncStateNotFound`).
//!
//! User JSON: Graph property names; the emulator changes `displayName`, `givenName`,
//! `surname`, `jobTitle`, `businessPhones` (at most one number, as in Graph), `mobilePhone`,
//! `mail`, `officeLocation`, `preferredLanguage`, `companyName`, `department`,
//! `userPrincipalName` and `accountEnabled`; `null` clears a value. Anything else is refused.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use serde_json::{Map, Value, json};

use crate::control::{Control, ControlError, Sh, bad, control, parse, reply};
use crate::directory::Removal;
use crate::state::Shared;
use crate::tenant::{TenantUser, UserProfile};

/// An optional string property (`null` clears it).
fn opt_string(k: &str, v: &Value) -> Result<Option<String>, ControlError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(ControlError::InvalidRequest(format!(
            "'{k}' must be a string or null"
        ))),
    }
}

/// Applies Graph user JSON to `p` (PATCH semantics: the given properties only).
fn apply(p: &mut UserProfile, body: &Map<String, Value>) -> Result<(), ControlError> {
    for (k, v) in body {
        match k.as_str() {
            "displayName" => {
                p.display_name = opt_string(k, v)?.ok_or_else(|| {
                    ControlError::InvalidRequest("'displayName' cannot be null".into())
                })?;
            }
            "userPrincipalName" => {
                let upn = opt_string(k, v)?.unwrap_or_default();
                if !upn.contains('@') {
                    return Err(ControlError::InvalidRequest(
                        "'userPrincipalName' must be alias@domain".into(),
                    ));
                }
                p.user_principal_name = upn;
            }
            "givenName" => p.given_name = opt_string(k, v)?,
            "surname" => p.surname = opt_string(k, v)?,
            "jobTitle" => p.job_title = opt_string(k, v)?,
            "mobilePhone" => p.mobile_phone = opt_string(k, v)?,
            "mail" => p.mail = opt_string(k, v)?,
            "officeLocation" => p.office_location = opt_string(k, v)?,
            "preferredLanguage" => p.preferred_language = opt_string(k, v)?,
            "companyName" => p.company_name = opt_string(k, v)?,
            "department" => p.department = opt_string(k, v)?,
            "businessPhones" => {
                let phones: Vec<String> = match v {
                    Value::Null => Vec::new(),
                    Value::Array(a) => a
                        .iter()
                        .map(|x| {
                            x.as_str().map(str::to_string).ok_or_else(|| {
                                ControlError::InvalidRequest(
                                    "'businessPhones' must hold strings".into(),
                                )
                            })
                        })
                        .collect::<Result<_, _>>()?,
                    _ => {
                        return Err(ControlError::InvalidRequest(
                            "'businessPhones' must be an array".into(),
                        ));
                    }
                };
                if phones.len() > 1 {
                    return Err(ControlError::InvalidRequest(
                        "only one business phone number can be set".into(),
                    ));
                }
                p.business_phones = phones;
            }
            "accountEnabled" => {
                p.account_enabled = v.as_bool().ok_or_else(|| {
                    ControlError::InvalidRequest("'accountEnabled' must be a boolean".into())
                })?;
            }
            other => {
                return Err(ControlError::InvalidRequest(format!(
                    "the emulator cannot set the user property '{other}'"
                )));
            }
        }
    }
    Ok(())
}

fn object(v: &Value) -> Result<&Map<String, Value>, ControlError> {
    v.as_object()
        .ok_or_else(|| ControlError::InvalidRequest("the user must be a JSON object".into()))
}

impl Control {
    /// Adds a user to the directory (Graph user JSON with at least `userPrincipalName` and
    /// `displayName`) with an empty mailbox and default presence. Returns the new object id
    /// (deterministic: `1a2b3c4d-{n:04}-4e5f-8a9b-0c1d2e3f{n:04}` for the n-th user). The user
    /// shows up in `/users` at once and in the next `/users/delta` round.
    pub fn add_user(&self, user: &Value) -> Result<String, ControlError> {
        let body = object(user)?;
        for required in ["userPrincipalName", "displayName"] {
            if !body.get(required).is_some_and(Value::is_string) {
                return Err(ControlError::InvalidRequest(format!(
                    "missing '{required}'"
                )));
            }
        }
        let mut w = self.shared.world();
        let n = w.tenant.users.len() as u64 + w.tenant.directory.removed_users + 1;
        let id = format!("1a2b3c4d-{n:04}-4e5f-8a9b-0c1d2e3f{n:04}");
        let mut profile = UserProfile {
            id: id.clone(),
            user_principal_name: String::new(),
            mail: None,
            display_name: String::new(),
            given_name: None,
            surname: None,
            job_title: None,
            business_phones: Vec::new(),
            mobile_phone: None,
            office_location: None,
            preferred_language: None,
            proxy_addresses: Vec::new(),
            company_name: None,
            department: None,
            mail_nickname: None,
            other_mails: Vec::new(),
            user_type: "Member".to_string(),
            account_enabled: true,
        };
        apply(&mut profile, body)?;
        if w.tenant.user(&profile.user_principal_name).is_some() {
            return Err(ControlError::InvalidRequest(format!(
                "the userPrincipalName '{}' is taken",
                profile.user_principal_name
            )));
        }
        let upn = profile.user_principal_name.clone();
        profile.mail_nickname = upn.split('@').next().map(str::to_string);
        profile.proxy_addresses = vec![format!("SMTP:{upn}")];
        if !body.contains_key("mail") {
            profile.mail = Some(upn);
        }
        let tag = crate::tenant::mailbox_tag(&id).to_string();
        w.tenant.users.push(TenantUser {
            profile,
            mailbox: crate::mailbox::Mailbox::new(&tag),
            presence: Default::default(),
        });
        w.tenant.directory.record(&id, None);
        Ok(id)
    }

    /// Changes a user (object id or UPN; PATCH semantics: the given properties only). The next
    /// `/users/delta` round returns the user with the round's `$select`.
    pub fn update_user(&self, user: &str, changes: &Value) -> Result<(), ControlError> {
        let body = object(changes)?;
        let mut w = self.shared.world();
        let id = Self::user_id(&w, user)?;
        if let Some(upn) = body.get("userPrincipalName").and_then(Value::as_str)
            && w.tenant.user(upn).is_some_and(|u| u.profile.id != id)
        {
            return Err(ControlError::InvalidRequest(format!(
                "the userPrincipalName '{upn}' is taken"
            )));
        }
        let u = w.tenant.user_by_id_mut(&id).expect("user exists");
        let mut profile = u.profile.clone();
        apply(&mut profile, body)?;
        u.profile = profile;
        w.tenant.directory.record(&id, None);
        Ok(())
    }

    /// Deletes a user (object id or UPN): gone from `/users` at once; the next `/users/delta`
    /// round reports `{"id", "@removed": {"reason": "changed"}}` (a soft delete, as Entra's
    /// default delete) or, with `permanently`, `"reason": "deleted"`. The user's tokens keep
    /// working until they expire; their mailbox and presence go with them.
    pub fn delete_user(&self, user: &str, permanently: bool) -> Result<(), ControlError> {
        let mut w = self.shared.world();
        let id = Self::user_id(&w, user)?;
        w.tenant.users.retain(|u| u.profile.id != id);
        w.tenant.directory.removed_users += 1;
        let how = if permanently {
            Removal::Deleted
        } else {
            Removal::Changed
        };
        w.tenant.directory.record(&id, Some(how));
        Ok(())
    }

    /// Expires every directory delta token (and delta skip token) issued until now: the next
    /// use answers `400 syncStateNotFound`, and the client must start a full round.
    pub fn expire_directory_delta_tokens(&self) {
        self.shared.world().tenant.directory.epoch += 1;
    }
}

/// Directory control routes.
pub fn routes() -> Router<std::sync::Arc<Shared>> {
    Router::new()
        .route("/users", post(add))
        .route("/users/expire-delta", post(expire_delta))
        .route("/users/{id}", axum::routing::patch(change).delete(remove))
}

async fn add(State(sh): Sh, body: axum::body::Bytes) -> Response {
    match parse::<Value>(&body) {
        Ok(v) => reply(
            control(&sh)
                .add_user(&v)
                .map(|id| json!({"ok": true, "id": id})),
        ),
        Err(r) => *r,
    }
}

async fn change(State(sh): Sh, Path(id): Path<String>, body: axum::body::Bytes) -> Response {
    match parse::<Value>(&body) {
        Ok(v) => reply(
            control(&sh)
                .update_user(&id, &v)
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
    let permanently = match q.get("permanent").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return bad(StatusCode::BAD_REQUEST, "'permanent' must be true or false"),
    };
    reply(
        control(&sh)
            .delete_user(&id, permanently)
            .map(|_| json!({"ok": true})),
    )
}

async fn expire_delta(State(sh): Sh) -> Response {
    control(&sh).expire_directory_delta_tokens();
    reply(Ok(json!({"ok": true})))
}
