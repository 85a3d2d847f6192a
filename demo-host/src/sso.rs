//! `--sso-command CMD`: the stand-in for Contact Desktop's own "Login with Microsoft 365".
//!
//! CMD runs through the shell with the requested scopes appended as arguments and prints one
//! JSON object `{"access_token": ..., "client_id": ..., "expires_in": <s>}`. A non-zero exit,
//! a time-out or bad output means the host has no such login. The token is never logged.

use std::time::Duration;

use host_api::SsoToken;
use serde_json::Value;

use crate::shell;

/// How long the SSO command may take.
pub const SSO_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the SSO command `cmd` for `scopes`; `None` when the host has no token to give.
pub fn token(cmd: &str, scopes: &[&str]) -> Option<SsoToken> {
    let line = shell::command_line(cmd, scopes);
    let finished = match shell::run_capture(&line, SSO_TIMEOUT) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!("the SSO command could not run: {e}");
            return None;
        }
    };
    if !finished.status.success() {
        tracing::info!(
            "the SSO command ended with {}: the host has no Microsoft 365 login",
            finished.status
        );
        return None;
    }
    match parse(&finished.stdout) {
        Ok(token) => {
            tracing::debug!(
                client_id = %token.client_id,
                expires_in_s = token.expires_in_s,
                "the SSO command gave a token"
            );
            Some(token)
        }
        Err(why) => {
            tracing::warn!("the SSO command's output is not usable: {why}");
            None
        }
    }
}

/// Parses the SSO command's output. The error message never contains the token.
pub fn parse(stdout: &[u8]) -> Result<SsoToken, String> {
    let text = std::str::from_utf8(stdout).map_err(|_| "not UTF-8".to_owned())?;
    let value: Value =
        serde_json::from_str(text.trim()).map_err(|e| format!("not one JSON object ({e})"))?;
    let Value::Object(map) = value else {
        return Err("not a JSON object".into());
    };
    let access_token = match map.get("access_token") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err("`access_token` is missing or not a non-empty string".into()),
    };
    let client_id = match map.get("client_id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err("`client_id` is missing or not a non-empty string".into()),
    };
    let expires_in_s = match map.get("expires_in") {
        Some(v) => v
            .as_u64()
            .ok_or_else(|| "`expires_in` is not a non-negative integer".to_owned())?,
        None => return Err("`expires_in` is missing".into()),
    };
    Ok(SsoToken {
        access_token: access_token.into(),
        client_id: client_id.into(),
        expires_in_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_token_object() {
        let t = parse(
            br#" {"access_token":"secret-xyz","client_id":"app","expires_in":3600}
"#,
        )
        .unwrap();
        assert_eq!(t.access_token.as_str(), "secret-xyz");
        assert_eq!(t.client_id.as_str(), "app");
        assert_eq!(t.expires_in_s, 3600);
        assert!(!format!("{t:?}").contains("secret-xyz"));
    }

    #[test]
    fn refuses_bad_output_without_echoing_the_token() {
        for bad in [
            &b"nope"[..],
            br#"[1]"#,
            br#"{"access_token":"secret-xyz","client_id":"app"}"#,
            br#"{"access_token":"secret-xyz","client_id":"app","expires_in":"1"}"#,
            br#"{"access_token":"secret-xyz","client_id":"app","expires_in":-1}"#,
            br#"{"access_token":"","client_id":"app","expires_in":1}"#,
            br#"{"access_token":"secret-xyz","expires_in":1}"#,
        ] {
            let e = parse(bad).unwrap_err();
            assert!(!e.contains("secret-xyz"), "{e}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn runs_the_command_with_the_scopes() {
        let cmd = r#"f() { [ "$1" = "User.Read" ] && [ "$2" = "Presence.ReadWrite" ] && echo '{"access_token":"t","client_id":"c","expires_in":5}'; }; f"#;
        let t = token(cmd, &["User.Read", "Presence.ReadWrite"]).unwrap();
        assert_eq!(t.client_id.as_str(), "c");
        assert!(token("exit 3", &["User.Read"]).is_none());
        assert!(token("echo garbage", &["User.Read"]).is_none());
    }
}
