//! The loopback listener that receives the authorization redirect (RFC 8252 §7.3).
//!
//! Bound to 127.0.0.1 with an OS-assigned port. It accepts exactly one redirect whose `state`
//! matches, answers the browser with a short page, ignores stray requests (a favicon, a probe)
//! with 404, refuses a wrong `state` with 400 and keeps waiting, and ends on time-out or
//! cancellation (switch-off), closing the port. It never logs the code or the full URL.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    time::timeout,
};
use tokio_util::sync::CancellationToken;
use url::Url;

/// What the redirect carried.
#[derive(Debug, PartialEq, Eq)]
pub enum Redirect {
    /// The authorization code.
    Code(String),
    /// The identity platform refused: `error` and `error_description`.
    Error {
        /// `error`, e.g. `access_denied`.
        error: String,
        /// `error_description`.
        description: String,
    },
}

/// Why no redirect arrived.
#[derive(Debug, PartialEq, Eq)]
pub enum ListenError {
    /// No matching redirect within the time-out.
    TimedOut,
    /// Switched off meanwhile.
    Cancelled,
    /// The port could not be opened.
    Io(String),
}

/// A bound listener waiting for one redirect.
pub struct Loopback {
    listener: TcpListener,
    port: u16,
}

/// Largest request head read from the browser.
const MAX_HEAD: usize = 16 * 1024;
/// How long one connection may take to send its request line.
const PER_CONNECTION: Duration = Duration::from_secs(10);

const DONE_PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>Contact Desktop</title></head>\
<body style=\"font-family:sans-serif\"><h1>You are signed in</h1>\
<p>Contact Desktop is now connected to Microsoft 365. You can close this window.</p></body></html>";
const FAILED_PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>Contact Desktop</title></head>\
<body style=\"font-family:sans-serif\"><h1>Sign-in did not complete</h1>\
<p>Microsoft did not sign you in. You can close this window and try again from Contact Desktop.</p></body></html>";

impl Loopback {
    /// Binds 127.0.0.1 on a port the OS chooses.
    pub async fn bind() -> Result<Self, ListenError> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| ListenError::Io(e.to_string()))?;
        let port = listener
            .local_addr()
            .map_err(|e| ListenError::Io(e.to_string()))?
            .port();
        Ok(Self { listener, port })
    }

    /// The redirect URI to register with the authorization request. `http://localhost` is what
    /// the app registration lists; Microsoft ignores the port of a loopback URI when matching.
    pub fn redirect_uri(&self) -> String {
        format!("http://localhost:{}/", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Waits for the one redirect whose `state` equals `expected_state`.
    pub async fn wait(
        self,
        expected_state: &str,
        limit: Duration,
        cancel: CancellationToken,
    ) -> Result<Redirect, ListenError> {
        let accept_loop = async {
            loop {
                let Ok((stream, _)) = self.listener.accept().await else {
                    continue;
                };
                if let Some(redirect) = handle(stream, expected_state).await {
                    return redirect;
                }
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => Err(ListenError::Cancelled),
            r = timeout(limit, accept_loop) => r.map_err(|_| ListenError::TimedOut),
        }
    }
}

/// Serves one connection; `Some` when it carried the matching redirect.
async fn handle(mut stream: TcpStream, expected_state: &str) -> Option<Redirect> {
    let head = match timeout(PER_CONNECTION, read_head(&mut stream)).await {
        Ok(Some(head)) => head,
        _ => return None,
    };
    let outcome = parse_request(&head, expected_state);
    let (status, body) = match &outcome {
        Outcome::Redirect(Redirect::Code(_)) => ("200 OK", DONE_PAGE),
        Outcome::Redirect(Redirect::Error { .. }) => ("200 OK", FAILED_PAGE),
        Outcome::WrongState => ("400 Bad Request", "state does not match this sign-in"),
        Outcome::Stray => ("404 Not Found", "not found"),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
    match outcome {
        Outcome::Redirect(r) => Some(r),
        _ => None,
    }
}

async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.len() >= MAX_HEAD {
            break;
        }
    }
    String::from_utf8(buf).ok()
}

/// What one request was.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The redirect of this sign-in.
    Redirect(Redirect),
    /// A redirect with another `state` (a stale tab, or a forgery).
    WrongState,
    /// Anything else.
    Stray,
}

/// Classifies a request head. Only `GET /?...` (any path; Microsoft may add a trailing `/`)
/// with `state` and `code` or `error` counts as a redirect.
pub fn parse_request(head: &str, expected_state: &str) -> Outcome {
    let Some(line) = head.lines().next() else {
        return Outcome::Stray;
    };
    let mut parts = line.split(' ');
    let (Some("GET"), Some(target)) = (parts.next(), parts.next()) else {
        return Outcome::Stray;
    };
    if !target.starts_with('/') || target.len() > MAX_HEAD {
        return Outcome::Stray;
    }
    let Ok(url) = Url::parse(&format!("http://localhost{target}")) else {
        return Outcome::Stray;
    };
    let (mut code, mut state, mut error, mut description) = (None, None, None, None);
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "code" => code = Some(v.into_owned()),
            "state" => state = Some(v.into_owned()),
            "error" => error = Some(v.into_owned()),
            "error_description" => description = Some(v.into_owned()),
            _ => {}
        }
    }
    if code.is_none() && error.is_none() {
        return Outcome::Stray;
    }
    if state.as_deref() != Some(expected_state) {
        return Outcome::WrongState;
    }
    match (code, error) {
        (_, Some(error)) => Outcome::Redirect(Redirect::Error {
            error,
            description: description.unwrap_or_default(),
        }),
        (Some(code), None) => Outcome::Redirect(Redirect::Code(code)),
        (None, None) => Outcome::Stray,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_requests() {
        let get = |t: &str| format!("GET {t} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        assert_eq!(
            parse_request(&get("/?code=abc&state=s1"), "s1"),
            Outcome::Redirect(Redirect::Code("abc".into()))
        );
        assert_eq!(
            parse_request(&get("/?code=abc&state=s2"), "s1"),
            Outcome::WrongState
        );
        assert_eq!(parse_request(&get("/?code=abc"), "s1"), Outcome::WrongState);
        assert_eq!(parse_request(&get("/favicon.ico"), "s1"), Outcome::Stray);
        assert_eq!(
            parse_request(
                &get("/?error=access_denied&error_description=AADSTS65004%3A+declined&state=s1"),
                "s1"
            ),
            Outcome::Redirect(Redirect::Error {
                error: "access_denied".into(),
                description: "AADSTS65004: declined".into()
            })
        );
        assert_eq!(
            parse_request("POST /?code=a&state=s1 HTTP/1.1\r\n\r\n", "s1"),
            Outcome::Stray
        );
        assert_eq!(parse_request("", "s1"), Outcome::Stray);
        assert_eq!(parse_request("\u{0}\u{1}garbage", "s1"), Outcome::Stray);
    }

    async fn get(port: u16, target: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn accepts_exactly_the_matching_redirect() {
        let lb = Loopback::bind().await.unwrap();
        let port = lb.port();
        assert!(lb.redirect_uri().starts_with("http://localhost:"));
        let waiter = tokio::spawn(lb.wait("st", Duration::from_secs(20), CancellationToken::new()));
        assert!(get(port, "/favicon.ico").await.starts_with("HTTP/1.1 404"));
        assert!(
            get(port, "/?code=x&state=other")
                .await
                .starts_with("HTTP/1.1 400")
        );
        let page = get(port, "/?code=thecode&state=st").await;
        assert!(page.starts_with("HTTP/1.1 200") && page.contains("close this window"));
        assert_eq!(waiter.await.unwrap(), Ok(Redirect::Code("thecode".into())));
        // The port is closed once the redirect arrived.
        assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err());
    }

    #[tokio::test]
    async fn times_out_and_cancels() {
        let lb = Loopback::bind().await.unwrap();
        let r = lb
            .wait("st", Duration::from_millis(50), CancellationToken::new())
            .await;
        assert_eq!(r, Err(ListenError::TimedOut));
        let lb = Loopback::bind().await.unwrap();
        let token = CancellationToken::new();
        token.cancel();
        assert_eq!(
            lb.wait("st", Duration::from_secs(60), token).await,
            Err(ListenError::Cancelled)
        );
    }
}
