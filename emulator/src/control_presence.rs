//! Control of Teams presence: the user's own Teams client state and a detailed read-out.
//!
//! HTTP (under `/_emulator/`): `POST presence/teams {"upn","availability"?,"activity"?,
//! "signed_out"?: bool, "out_of_office"?: bool, "out_of_office_message"?: string}` sets the
//! Teams client session (as if the user clicked in Teams or joined a meeting;
//! `"signed_out": true` removes the Teams client session, any later call with a state signs
//! it in again); `GET presence/{upn}` → `{"aggregate": presence, "teams": {..},
//! "sessions": [..], "preferred": {..}|null}`.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::Value;

use crate::control::{Control, ControlError, Sh, bad, control, parse, reply};
use crate::presence::{ACTIVITY, AVAILABILITY, canonical};
use crate::state::Shared;

impl Control {
    /// Sets the user's Teams client state (any documented availability/activity, e.g.
    /// `Busy`/`InAMeeting`) and signs the Teams client in.
    pub fn set_teams_presence(
        &self,
        upn: &str,
        availability: &str,
        activity: &str,
    ) -> Result<(), ControlError> {
        let a = canonical(AVAILABILITY, availability).ok_or_else(|| {
            ControlError::InvalidRequest(format!("unknown availability '{availability}'"))
        })?;
        let b = canonical(ACTIVITY, activity).ok_or_else(|| {
            ControlError::InvalidRequest(format!("unknown activity '{activity}'"))
        })?;
        let mut w = self.shared.world();
        let id = Self::user_id(&w, upn)?;
        let p = &mut w.tenant.user_by_id_mut(&id).expect("user exists").presence;
        p.teams_signed_in = true;
        p.teams_availability = a.to_string();
        p.teams_activity = b.to_string();
        Ok(())
    }

    /// Signs the user's Teams client in or out (out: its session no longer exists).
    pub fn set_teams_signed_in(&self, upn: &str, signed_in: bool) -> Result<(), ControlError> {
        let mut w = self.shared.world();
        let id = Self::user_id(&w, upn)?;
        w.tenant
            .user_by_id_mut(&id)
            .expect("user exists")
            .presence
            .teams_signed_in = signed_in;
        Ok(())
    }

    /// Turns the user's out-of-office (automatic replies) on or off.
    pub fn set_out_of_office(
        &self,
        upn: &str,
        on: bool,
        message: Option<&str>,
    ) -> Result<(), ControlError> {
        let mut w = self.shared.world();
        let id = Self::user_id(&w, upn)?;
        let p = &mut w.tenant.user_by_id_mut(&id).expect("user exists").presence;
        p.out_of_office = on;
        p.out_of_office_message = message.map(str::to_string);
        Ok(())
    }

    /// The user's presence as Graph shows it plus the sessions and preferred presence behind
    /// it: `{"aggregate", "teams", "sessions", "preferred"}`.
    pub fn presence(&self, upn: &str) -> Result<Value, ControlError> {
        let now = self.shared.now();
        let mut w = self.shared.world();
        let id = Self::user_id(&w, upn)?;
        Ok(w.tenant
            .user_by_id_mut(&id)
            .expect("user exists")
            .presence
            .detail(&id, now))
    }
}

/// Presence control routes.
pub fn routes() -> Router<std::sync::Arc<Shared>> {
    Router::new()
        .route("/presence/teams", post(teams))
        .route("/presence/{upn}", get(detail))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Teams {
    upn: String,
    availability: Option<String>,
    activity: Option<String>,
    #[serde(default)]
    signed_out: bool,
    out_of_office: Option<bool>,
    out_of_office_message: Option<String>,
}

async fn teams(State(sh): Sh, body: axum::body::Bytes) -> Response {
    let b = match parse::<Teams>(&body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let c = control(&sh);
    let r = (|| {
        if let Some(on) = b.out_of_office {
            c.set_out_of_office(&b.upn, on, b.out_of_office_message.as_deref())?;
        }
        match (&b.availability, &b.activity) {
            (Some(a), Some(x)) => c.set_teams_presence(&b.upn, a, x)?,
            (None, None) => {}
            _ => {
                return Err(ControlError::InvalidRequest(
                    "give both 'availability' and 'activity'".into(),
                ));
            }
        }
        if b.signed_out {
            c.set_teams_signed_in(&b.upn, false)?;
        }
        c.presence(&b.upn)
    })();
    reply(r)
}

async fn detail(State(sh): Sh, Path(upn): Path<String>) -> Response {
    match control(&sh).presence(&upn) {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => bad(StatusCode::NOT_FOUND, e),
    }
}
