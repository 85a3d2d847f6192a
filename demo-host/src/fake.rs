//! A scripted in-process integration for the host's own tests (no cdylib needed).

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use host_api::{
    CallerInfo, ContactSource, ContactStatus, ErrorCode, HostBox, HostContext, IncomingCall,
    Integration, Integration_TO, IntegrationBox, IntegrationError, IntegrationState,
    MicrosoftState, Notification, NumberType, PhoneNumber, PhonebookEntry, SettingsUpdate,
    SyncReport,
    reexports::{ROption, RResult, RStr, RString, RVec, TD_Opaque},
};

use crate::plugins::InProcessPlugin;

/// What the test can observe of a fake.
#[derive(Default)]
pub struct Probe {
    pub shut_down: Mutex<bool>,
    pub changed: Condvar,
    pub statuses: Mutex<Vec<ContactStatus>>,
}

pub struct Fake {
    host: HostBox,
    probe: Arc<Probe>,
    /// The incoming number this fake knows.
    known_number: &'static str,
}

fn state(ms: MicrosoftState) -> IntegrationState {
    IntegrationState {
        microsoft_integration: ms,
        contact_status: ContactStatus::AWAY,
        extensions: r#"{"extra": 1, "contacts": 999}"#.into(),
        ..Default::default()
    }
}

impl Integration for Fake {
    fn apply_context(&self, _: HostContext) -> RResult<IntegrationState, IntegrationError> {
        RResult::ROk(state(MicrosoftState::OFF))
    }

    fn apply_settings(&self, s: SettingsUpdate) -> RResult<IntegrationState, IntegrationError> {
        let st = match s.microsoft_integration {
            ROption::RSome(true) => state(MicrosoftState::SIGN_IN_REQUIRED),
            _ => state(MicrosoftState::OFF),
        };
        self.host.state_changed(st.clone());
        RResult::ROk(st)
    }

    fn state(&self) -> IntegrationState {
        state(MicrosoftState::OFF)
    }

    fn sign_in(&self) -> RResult<IntegrationState, IntegrationError> {
        self.host.open_url("http://127.0.0.1:9/authorize".into());
        self.host.notify(Notification {
            kind: "device_code".into(),
            message: "enter the code".into(),
            user_code: ROption::RSome("ABC-123".into()),
            verification_uri: ROption::RSome("http://127.0.0.1:9/devicelogin".into()),
            extensions: RString::new(),
        });
        RResult::ROk(state(MicrosoftState::SIGNING_IN))
    }

    fn sign_out(&self) -> RResult<IntegrationState, IntegrationError> {
        RResult::RErr(IntegrationError::new(ErrorCode::PANICKED, "boom"))
    }

    fn sync(&self, timeout_ms: u32) -> RResult<SyncReport, IntegrationError> {
        // Blocks until shutdown (or the time-out), like a sync that cannot finish.
        let guard = self
            .probe
            .shut_down
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (guard, _) = self
            .probe
            .changed
            .wait_timeout_while(guard, Duration::from_millis(timeout_ms.into()), |down| {
                !*down
            })
            .unwrap_or_else(PoisonError::into_inner);
        if *guard {
            RResult::RErr(IntegrationError::new(ErrorCode::CANCELLED, "shut down"))
        } else {
            RResult::RErr(IntegrationError::new(ErrorCode::SYNC_FAILED, "no network"))
        }
    }

    fn on_incoming_call(
        &self,
        call: IncomingCall,
    ) -> RResult<ROption<CallerInfo>, IntegrationError> {
        if call.number.as_str() != self.known_number {
            return RResult::ROk(ROption::RNone);
        }
        RResult::ROk(ROption::RSome(CallerInfo {
            display_name: "Adele Vance".into(),
            company: "Contoso".into(),
            job_title: "Retail Manager".into(),
            number: call.number,
            number_type: NumberType::BUSINESS,
            extension: ROption::RSome("100".into()),
            source: ContactSource::DIRECTORY,
            contact_id: "u1".into(),
            extensions: RString::new(),
        }))
    }

    fn search_phonebook(
        &self,
        query: RStr<'_>,
        limit: u32,
    ) -> RResult<RVec<PhonebookEntry>, IntegrationError> {
        // Answers more than asked, to check that the host keeps the limit.
        let entries = (0..limit + 5)
            .map(|i| PhonebookEntry {
                display_name: format!("{} {i}", query.as_str()).into(),
                company: RString::new(),
                job_title: RString::new(),
                numbers: vec![PhoneNumber {
                    number: "+100".into(),
                    number_type: NumberType::MOBILE,
                }]
                .into(),
                emails: RVec::new(),
                source: ContactSource::OUTLOOK,
                contact_id: format!("c{i}").into(),
                extensions: RString::new(),
            })
            .collect();
        RResult::ROk(entries)
    }

    fn on_status_change(&self, status: ContactStatus) -> RResult<(), IntegrationError> {
        self.probe
            .statuses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(status);
        if status == ContactStatus::BUSY {
            // Teams answers with a call of its own.
            self.host.set_contact_status(ContactStatus::IN_TEAMS_CALL);
        }
        RResult::ROk(())
    }

    fn shutdown(&self, _deadline_ms: u32) -> RResult<(), IntegrationError> {
        *self
            .probe
            .shut_down
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = true;
        self.probe.changed.notify_all();
        RResult::ROk(())
    }
}

/// A fake named `name` (file `file`) that knows the caller `known_number`.
pub fn plugin(file: &str, name: &str, known_number: &'static str) -> (InProcessPlugin, Arc<Probe>) {
    let probe = Arc::new(Probe::default());
    let p = probe.clone();
    let constructor = Arc::new(move |host: HostBox, _ctx: HostContext| {
        let fake = Fake {
            host,
            probe: p.clone(),
            known_number,
        };
        RResult::ROk(Integration_TO::from_value(fake, TD_Opaque) as IntegrationBox)
    });
    (
        InProcessPlugin {
            file: file.into(),
            name: name.into(),
            constructor,
        },
        probe,
    )
}
