//! Conversions between host-api types and the scripted mode's JSON objects, and strict reading
//! of request fields.
//!
//! Output objects carry exactly the fields of `demo-host-script.md` ("Objects"), plus any keys
//! of the struct's `extensions` JSON object that do not collide with them. Input fields are
//! read strictly: an unknown field or a value of the wrong type is `bad_request`.

use host_api::{
    CallerInfo, ContactStatus, IntegrationState, Notification, PhonebookEntry, SettingsUpdate,
    SyncReport,
    reexports::{ROption, RString, RVec},
};
use serde_json::{Map, Value, json};

use crate::errors::OpError;

/// The largest `limit` a search honours; larger values count as this.
pub const MAX_SEARCH_LIMIT: u64 = 200;
/// The `limit` of a search that names none.
pub const DEFAULT_SEARCH_LIMIT: u64 = 20;

/// The wire name of an open-enum value, `"unknown"` for a value this host does not know.
fn wire(name: Option<&'static str>) -> Value {
    Value::from(name.unwrap_or("unknown"))
}

fn opt_string(value: &ROption<RString>) -> Value {
    match value {
        ROption::RSome(s) => Value::from(s.as_str()),
        ROption::RNone => Value::Null,
    }
}

/// Adds the keys of `extensions` (a JSON object, or empty) that `map` does not have yet.
/// Anything that is not a JSON object is ignored (and logged at debug level).
pub fn merge_extensions(map: &mut Map<String, Value>, extensions: &str) {
    if extensions.trim().is_empty() {
        return;
    }
    match serde_json::from_str::<Value>(extensions) {
        Ok(Value::Object(extra)) => {
            for (k, v) in extra {
                map.entry(k).or_insert(v);
            }
        }
        Ok(_) | Err(_) => tracing::debug!("ignoring `extensions` that is not a JSON object"),
    }
}

/// The `state` object. `contact_status` is the host's current status (the host is the
/// authority), whatever the plugin reported.
pub fn state_json(state: &IntegrationState, contact_status: ContactStatus) -> Value {
    let teams_presence = match &state.teams_presence {
        ROption::RSome(p) => json!({
            "availability": p.availability.as_str(),
            "activity": p.activity.as_str(),
        }),
        ROption::RNone => Value::Null,
    };
    let mut map = Map::new();
    map.insert(
        "microsoft_integration".into(),
        wire(state.microsoft_integration.name()),
    );
    map.insert("signed_in_as".into(), opt_string(&state.signed_in_as));
    map.insert("contacts".into(), Value::from(state.contacts));
    map.insert("last_sync".into(), opt_string(&state.last_sync));
    map.insert(
        "presence_integration".into(),
        wire(state.presence_integration.name()),
    );
    map.insert(
        "presence_blocked_reason".into(),
        opt_string(&state.presence_blocked_reason),
    );
    map.insert("teams_presence".into(), teams_presence);
    map.insert("contact_status".into(), wire(contact_status.name()));
    map.insert("last_error".into(), opt_string(&state.last_error));
    merge_extensions(&mut map, &state.extensions);
    Value::Object(map)
}

/// The `caller` object.
pub fn caller_json(caller: &CallerInfo) -> Value {
    let mut map = Map::new();
    map.insert("display_name".into(), caller.display_name.as_str().into());
    map.insert("company".into(), caller.company.as_str().into());
    map.insert("job_title".into(), caller.job_title.as_str().into());
    map.insert("number".into(), caller.number.as_str().into());
    map.insert("number_type".into(), wire(caller.number_type.name()));
    map.insert("extension".into(), opt_string(&caller.extension));
    map.insert("source".into(), wire(caller.source.name()));
    map.insert("contact_id".into(), caller.contact_id.as_str().into());
    merge_extensions(&mut map, &caller.extensions);
    Value::Object(map)
}

/// A `results` entry.
pub fn entry_json(entry: &PhonebookEntry) -> Value {
    let numbers: Vec<Value> = entry
        .numbers
        .iter()
        .map(|n| json!({ "number": n.number.as_str(), "type": wire(n.number_type.name()) }))
        .collect();
    let emails: Vec<Value> = entry.emails.iter().map(|e| e.as_str().into()).collect();
    let mut map = Map::new();
    map.insert("display_name".into(), entry.display_name.as_str().into());
    map.insert("company".into(), entry.company.as_str().into());
    map.insert("job_title".into(), entry.job_title.as_str().into());
    map.insert("numbers".into(), Value::Array(numbers));
    map.insert("emails".into(), Value::Array(emails));
    map.insert("source".into(), wire(entry.source.name()));
    map.insert("contact_id".into(), entry.contact_id.as_str().into());
    merge_extensions(&mut map, &entry.extensions);
    Value::Object(map)
}

/// The reply fields of `sync`: `contacts`, `added`, `updated`, `removed` (+ extensions).
pub fn sync_fields(report: &SyncReport) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("contacts".into(), report.contacts.into());
    map.insert("added".into(), report.added.into());
    map.insert("updated".into(), report.updated.into());
    map.insert("removed".into(), report.removed.into());
    merge_extensions(&mut map, &report.extensions);
    map.remove("reply");
    map.remove("ok");
    map
}

/// The fields of a `notification` event: `kind`, `message`, and `user_code` /
/// `verification_uri` when the plugin gave them.
pub fn notification_fields(n: &Notification) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("kind".into(), n.kind.as_str().into());
    map.insert("message".into(), n.message.as_str().into());
    if let ROption::RSome(code) = &n.user_code {
        map.insert("user_code".into(), code.as_str().into());
    }
    if let ROption::RSome(uri) = &n.verification_uri {
        map.insert("verification_uri".into(), uri.as_str().into());
    }
    merge_extensions(&mut map, &n.extensions);
    map
}

/// An event object: `{"event": name, ...fields}` (+ `"plugin"` when given).
pub fn event(name: &str, fields: Map<String, Value>, plugin: Option<&str>) -> Value {
    let mut map = Map::new();
    map.insert("event".into(), name.into());
    for (k, v) in fields {
        if k != "event" && k != "plugin" {
            map.insert(k, v);
        }
    }
    if let Some(p) = plugin {
        map.insert("plugin".into(), p.into());
    }
    Value::Object(map)
}

/// Strict reading of a request object: each field is taken once with its expected type, and
/// [`Fields::finish`] refuses any field left over.
pub struct Fields {
    map: Map<String, Value>,
}

impl Fields {
    /// Reads the fields of `map`.
    pub fn new(map: Map<String, Value>) -> Self {
        Self { map }
    }

    fn take(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key)
    }

    /// An optional boolean.
    pub fn opt_bool(&mut self, key: &str) -> Result<Option<bool>, OpError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(other) => Err(wrong_type(key, "a boolean", &other)),
        }
    }

    /// An optional string.
    pub fn opt_str(&mut self, key: &str) -> Result<Option<String>, OpError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(wrong_type(key, "a string", &other)),
        }
    }

    /// A required string.
    pub fn req_str(&mut self, key: &str) -> Result<String, OpError> {
        self.opt_str(key)?
            .ok_or_else(|| OpError::bad_request(format!("`{key}` is required (a string)")))
    }

    /// An optional non-negative integer.
    pub fn opt_u64(&mut self, key: &str) -> Result<Option<u64>, OpError> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| wrong_type(key, "a non-negative integer", &v)),
        }
    }

    /// A required non-negative integer.
    pub fn req_u64(&mut self, key: &str) -> Result<u64, OpError> {
        self.opt_u64(key)?.ok_or_else(|| {
            OpError::bad_request(format!("`{key}` is required (a non-negative integer)"))
        })
    }

    /// An optional array of strings.
    pub fn opt_str_array(&mut self, key: &str) -> Result<Option<Vec<String>>, OpError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s),
                    other => Err(wrong_type(key, "an array of strings", &other)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(wrong_type(key, "an array of strings", &other)),
        }
    }

    /// Refuses any field not taken yet.
    pub fn finish(self) -> Result<(), OpError> {
        match self.map.keys().next() {
            None => Ok(()),
            Some(_) => {
                let names: Vec<String> = self.map.keys().map(|k| format!("`{k}`")).collect();
                Err(OpError::bad_request(format!(
                    "unknown field{} {}",
                    if names.len() > 1 { "s" } else { "" },
                    names.join(", ")
                )))
            }
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_u64() || n.is_i64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong_type(key: &str, expected: &str, got: &Value) -> OpError {
    let got = match got {
        Value::Number(n) if n.as_i64().is_some_and(|i| i < 0) => "a negative integer",
        other => type_name(other),
    };
    OpError::bad_request(format!("`{key}` must be {expected}, not {got}"))
}

/// Reads the settings of a `settings` request (every field but `op` and `plugin`, which the
/// caller has taken) into a [`SettingsUpdate`]. Types, enumerations and ranges are checked
/// here: any bad value is `bad_request` and nothing is applied.
pub fn parse_settings(fields: &mut Fields) -> Result<SettingsUpdate, OpError> {
    fn choice(
        fields: &mut Fields,
        key: &str,
        allowed: &[&str],
    ) -> Result<ROption<RString>, OpError> {
        match fields.opt_str(key)? {
            None => Ok(ROption::RNone),
            Some(v) if allowed.contains(&v.as_str()) => Ok(ROption::RSome(v.into())),
            Some(v) => Err(OpError::bad_request(format!(
                "`{key}` must be one of {}, not {v:?}",
                allowed.join(", ")
            ))),
        }
    }
    fn http_url(fields: &mut Fields, key: &str) -> Result<ROption<RString>, OpError> {
        match fields.opt_str(key)? {
            None => Ok(ROption::RNone),
            Some(v) => match url::Url::parse(&v) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                    Ok(ROption::RSome(v.into()))
                }
                _ => Err(OpError::bad_request(format!(
                    "`{key}` must be an http(s) URL, not {v:?}"
                ))),
            },
        }
    }
    fn at_least(fields: &mut Fields, key: &str, min: u64) -> Result<ROption<u64>, OpError> {
        match fields.opt_u64(key)? {
            None => Ok(ROption::RNone),
            Some(v) if v >= min => Ok(ROption::RSome(v)),
            Some(v) => Err(OpError::bad_request(format!(
                "`{key}` must be at least {min}, not {v}"
            ))),
        }
    }

    let client_id = match fields.opt_str("client_id")? {
        Some(id) if id.trim().is_empty() => {
            return Err(OpError::bad_request("`client_id` must not be empty"));
        }
        other => other.map(RString::from).into(),
    };
    let update = SettingsUpdate {
        microsoft_integration: fields.opt_bool("microsoft_integration")?.into(),
        presence_integration: fields.opt_bool("presence_integration")?.into(),
        remember_login: fields.opt_bool("remember_login")?.into(),
        sign_in_method: choice(fields, "sign_in_method", &["browser", "device_code"])?,
        token_store: choice(fields, "token_store", &["auto", "keyring", "file"])?,
        authority: http_url(fields, "authority")?,
        graph: http_url(fields, "graph")?,
        client_id,
        directory: fields.opt_bool("directory")?.into(),
        sync_interval_s: at_least(fields, "sync_interval_s", 10)?,
        presence_poll_ms: at_least(fields, "presence_poll_ms", 200)?,
        outside_line_prefixes: fields
            .opt_str_array("outside_line_prefixes")?
            .map(|v| v.into_iter().map(RString::from).collect::<RVec<_>>())
            .into(),
        extensions: RString::new(),
    };
    Ok(update)
}

/// Reads the `limit` of a search: default 20, at most 200; a negative or non-integer value is
/// `bad_request`.
pub fn parse_limit(fields: &mut Fields) -> Result<u32, OpError> {
    let limit = fields.opt_u64("limit")?.unwrap_or(DEFAULT_SEARCH_LIMIT);
    Ok(limit.min(MAX_SEARCH_LIMIT) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use host_api::{
        ContactSource, MicrosoftState, NumberType, PhoneNumber, PresenceState, TeamsPresence,
    };

    fn fields(v: Value) -> Fields {
        match v {
            Value::Object(m) => Fields::new(m),
            _ => unreachable!(),
        }
    }

    #[test]
    fn state_has_exactly_the_spec_fields_and_the_host_status() {
        let state = IntegrationState {
            microsoft_integration: MicrosoftState::ACTIVE,
            signed_in_as: ROption::RSome("a@b.example".into()),
            contacts: 7,
            presence_integration: PresenceState::BLOCKED,
            presence_blocked_reason: ROption::RSome("x".into()),
            teams_presence: ROption::RSome(TeamsPresence {
                availability: "Busy".into(),
                activity: "InACall".into(),
            }),
            contact_status: ContactStatus::AWAY,
            extensions: r#"{"newer": 1, "contacts": 99}"#.into(),
            ..Default::default()
        };
        let v = state_json(&state, ContactStatus::BUSY);
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "contact_status",
                "contacts",
                "last_error",
                "last_sync",
                "microsoft_integration",
                "newer",
                "presence_blocked_reason",
                "presence_integration",
                "signed_in_as",
                "teams_presence"
            ]
        );
        assert_eq!(v["contact_status"], "busy");
        assert_eq!(v["contacts"], 7, "extensions never override spec keys");
        assert_eq!(v["microsoft_integration"], "active");
        assert_eq!(v["teams_presence"]["activity"], "InACall");
        assert_eq!(v["last_sync"], Value::Null);
    }

    #[test]
    fn unknown_enum_values_and_bad_extensions_do_not_break_objects() {
        let state = IntegrationState {
            microsoft_integration: MicrosoftState::from_raw(99),
            extensions: "not json".into(),
            ..Default::default()
        };
        let v = state_json(&state, ContactStatus::ONLINE);
        assert_eq!(v["microsoft_integration"], "unknown");
        assert_eq!(v.as_object().unwrap().len(), 9);
    }

    #[test]
    fn caller_and_entry_objects() {
        let caller = CallerInfo {
            display_name: "Adele Vance".into(),
            company: "Contoso".into(),
            job_title: "".into(),
            number: "+4989".into(),
            number_type: NumberType::MOBILE,
            extension: ROption::RNone,
            source: ContactSource::OUTLOOK,
            contact_id: "c1".into(),
            extensions: RString::new(),
        };
        let c = caller_json(&caller);
        assert_eq!(c["number_type"], "mobile");
        assert_eq!(c["extension"], Value::Null);
        assert_eq!(c["source"], "outlook");
        assert_eq!(c.as_object().unwrap().len(), 8);
        let entry = PhonebookEntry {
            display_name: "X".into(),
            company: "".into(),
            job_title: "".into(),
            numbers: vec![PhoneNumber {
                number: "+1".into(),
                number_type: NumberType::BUSINESS,
            }]
            .into(),
            emails: vec![RString::from("x@y")].into(),
            source: ContactSource::DIRECTORY,
            contact_id: "d".into(),
            extensions: RString::new(),
        };
        let e = entry_json(&entry);
        assert_eq!(e["numbers"], json!([{"number": "+1", "type": "business"}]));
        assert_eq!(e["emails"], json!(["x@y"]));
        assert_eq!(e["source"], "directory");
    }

    #[test]
    fn settings_are_read_strictly() {
        let mut f = fields(json!({
            "microsoft_integration": true, "sign_in_method": "device_code",
            "sync_interval_s": 10, "presence_poll_ms": 200,
            "outside_line_prefixes": ["0", "L0#"], "authority": "http://127.0.0.1:1/t/v2.0",
        }));
        let s = parse_settings(&mut f).unwrap();
        f.finish().unwrap();
        assert_eq!(s.microsoft_integration, ROption::RSome(true));
        assert_eq!(s.presence_integration, ROption::RNone);
        assert_eq!(s.sync_interval_s, ROption::RSome(10));
        assert_eq!(s.outside_line_prefixes.map(|v| v.len()), ROption::RSome(2));

        for bad in [
            json!({"microsoft_integration": "yes"}),
            json!({"sync_interval_s": 9}),
            json!({"sync_interval_s": 10.5}),
            json!({"presence_poll_ms": -1}),
            json!({"sign_in_method": "popup"}),
            json!({"token_store": 1}),
            json!({"authority": "not a url"}),
            json!({"graph": "ftp://x"}),
            json!({"client_id": ""}),
            json!({"outside_line_prefixes": [0]}),
            json!({"outside_line_prefixes": "0"}),
            json!({"directory": null}),
        ] {
            let e = parse_settings(&mut fields(bad.clone())).unwrap_err();
            assert_eq!(e.code, "bad_request", "{bad}");
        }
        let mut f = fields(json!({"presence_integration": true, "colour": "red"}));
        parse_settings(&mut f).unwrap();
        let e = f.finish().unwrap_err();
        assert!(e.message.contains("colour"), "{}", e.message);
    }

    #[test]
    fn limit_rules() {
        let limit = |v: Value| parse_limit(&mut fields(v));
        assert_eq!(limit(json!({})).unwrap(), 20);
        assert_eq!(limit(json!({"limit": 0})).unwrap(), 0);
        assert_eq!(limit(json!({"limit": 200})).unwrap(), 200);
        assert_eq!(limit(json!({"limit": 5000})).unwrap(), 200);
        assert_eq!(limit(json!({"limit": u64::MAX})).unwrap(), 200);
        for bad in [json!(-1), json!(1.5), json!("3"), json!(null)] {
            let e = limit(json!({ "limit": bad })).unwrap_err();
            assert_eq!(e.code, "bad_request");
        }
    }
}
