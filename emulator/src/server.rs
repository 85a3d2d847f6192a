//! The HTTP server: routes, the request pipeline (request ids, fault injection, request log)
//! and a listener whose connections a fault can cut.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::clock::rfc3339;
use crate::errors::graph_error;
use crate::faults::{self, Fault};
use crate::grants::digest;
use crate::outlook_limit;
use crate::request_log::{RequestLogEntry, redact_form, redact_query};
use crate::state::Shared;
use crate::{contacts, control, directory, graph, identity, presence};

/// The request log keeps at most this many entries (the oldest tenth goes first).
pub const MAX_LOG_ENTRIES: usize = 20_000;

/// Ids of one request: `request-id` (also the identity platform's trace id) and
/// `client-request-id` (echoed when the client sent one; also the correlation id).
#[derive(Clone, Debug)]
pub struct RequestIds {
    /// Server-generated id.
    pub request_id: String,
    /// The client's `client-request-id`, or the request id.
    pub client_request_id: String,
    /// The identity platform's correlation id: the client's id when it is a GUID, else new.
    pub correlation_id: String,
}

impl RequestIds {
    fn from_headers(headers: &HeaderMap) -> RequestIds {
        let request_id = uuid::Uuid::new_v4().to_string();
        let sent = headers
            .get("client-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string);
        let correlation_id = sent
            .as_deref()
            .and_then(|s| uuid::Uuid::parse_str(s).ok())
            .map(|u| u.to_string())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        RequestIds {
            client_request_id: sent.unwrap_or_else(|| request_id.clone()),
            request_id,
            correlation_id,
        }
    }

    fn stamp(&self, resp: &mut Response) {
        let h = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&self.request_id) {
            h.insert("request-id", v.clone());
            h.insert("x-ms-request-id", v);
        }
        if let Ok(v) = HeaderValue::from_str(&self.client_request_id) {
            h.insert("client-request-id", v);
        }
    }
}

/// The full router.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .merge(identity::routes())
        .merge(graph::routes())
        .merge(contacts::routes())
        .merge(directory::routes())
        .merge(presence::routes())
        .merge(root_routes())
        .nest("/_emulator", control::routes())
        .route("/_emulator/", get(control::summary))
        .fallback(fallback)
        .layer(middleware::from_fn_with_state(shared.clone(), pipeline))
        .with_state(shared)
}

async fn fallback(
    State(shared): State<Arc<Shared>>,
    axum::Extension(ids): axum::Extension<RequestIds>,
    req: Request,
) -> Response {
    let path = req.uri().path();
    if let Some(rest) = path.strip_prefix("/v1.0/") {
        let segment = rest.split('/').find(|s| !s.is_empty()).unwrap_or(rest);
        return graph_error(
            &ids,
            shared.now(),
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("Resource not found for the segment '{segment}'."),
        );
    }
    (StatusCode::NOT_FOUND, "Not Found").into_response()
}

fn is_control(path: &str) -> bool {
    path == "/_emulator" || path.starts_with("/_emulator/")
}

/// Request ids on every response; for non-control routes also faults and the request log.
async fn pipeline(State(shared): State<Arc<Shared>>, mut req: Request, next: Next) -> Response {
    let ids = RequestIds::from_headers(req.headers());
    req.extensions_mut().insert(ids.clone());
    let path = req.uri().path().to_string();
    if is_control(&path) {
        let mut resp = next.run(req).await;
        ids.stamp(&mut resp);
        return resp;
    }
    let kill = req
        .extensions()
        .get::<ConnectInfo<KillSwitch>>()
        .map(|c| c.0.clone());
    let method = req.method().clone();
    let raw_query = req.uri().query().map(str::to_string);
    let query = raw_query.as_deref().map(redact_query);
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, 1 << 20).await {
        Ok(b) => b,
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response(),
    };
    let form = (is_form && !bytes.is_empty()).then(|| redact_form(&bytes));
    let req = Request::from_parts(parts, Body::from(bytes));

    // The Outlook concurrency limit counts from arrival (before any injected delay) to the
    // response, per app + mailbox of the bearer token.
    let mut slot = None;
    let mut throttled = false;
    if outlook_limit::is_outlook_path(&path)
        && let Some(t) = outlook_limit::bearer(req.headers())
    {
        let now = shared.now();
        let key = shared
            .world()
            .grants
            .access
            .get(&digest(t))
            .filter(|a| now < a.expires_at)
            .map(|a| (a.client_id.clone(), a.user_id.clone()));
        if let Some((client, user)) = key {
            slot = shared.outlook.acquire(&client, &user);
            throttled = slot.is_none();
        }
    }
    let fault = if throttled {
        None
    } else {
        faults::take(
            &mut shared.world().faults,
            &method,
            &path,
            raw_query.as_deref(),
        )
    };
    let mut dropped = false;
    let mut resp = match &fault {
        None if throttled => outlook_limit::throttled(&ids, shared.now()),
        None => next.run(req).await,
        Some(Fault::Delay { ms }) => {
            tokio::time::sleep(std::time::Duration::from_millis(*ms)).await;
            next.run(req).await
        }
        Some(Fault::Status {
            status,
            retry_after,
        }) => faults::status_response(
            *status,
            retry_after.as_deref(),
            &path,
            &ids,
            shared.now(),
            &shared.base,
        ),
        Some(Fault::DropConnection) => {
            dropped = true;
            match &kill {
                Some(k) => k.trip(),
                None => tracing::warn!("drop_connection fault without a killable connection"),
            }
            Response::new(Body::empty())
        }
        Some(f @ (Fault::MalformedJson | Fault::TruncatedJson)) => {
            let resp = next.run(req).await;
            let (parts, body) = resp.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            let changed = if *f == Fault::MalformedJson {
                faults::malform(&bytes)
            } else {
                faults::truncate(&bytes)
            };
            faults::with_body(Response::from_parts(parts, Body::empty()), changed)
        }
        Some(f @ (Fault::ResetMidBody | Fault::AppendItems { .. })) => {
            let resp = next.run(req).await;
            let (parts, body) = resp.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            let resp = Response::from_parts(parts, Body::empty());
            match f {
                Fault::AppendItems { items } => {
                    faults::with_body(resp, faults::append_items(&bytes, items))
                }
                _ => faults::reset_mid_body(resp, bytes),
            }
        }
    };
    drop(slot);
    ids.stamp(&mut resp);
    // The server's own clock, as a skewed server would send it (hyper keeps a `Date` it is
    // given).
    if let Ok(v) = HeaderValue::from_str(&http_date(shared.now())) {
        resp.headers_mut().insert(header::DATE, v);
    }
    let status = (!dropped).then(|| resp.status().as_u16());
    tracing::debug!(
        "ms365 emulator: {method} {path} -> {}",
        status.map_or("dropped".to_string(), |s| s.to_string())
    );
    let entry = RequestLogEntry {
        method: method.to_string(),
        path,
        query,
        form,
        status,
        fault: fault.as_ref().map(Fault::label),
        time: rfc3339(shared.now()),
        request_id: ids.request_id.clone(),
    };
    let mut w = shared.world();
    if w.log.len() >= MAX_LOG_ENTRIES {
        w.log.drain(..MAX_LOG_ENTRIES / 10);
    }
    w.log.push(entry);
    drop(w);
    resp
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn http_date(t: time::OffsetDateTime) -> String {
    let secs = u64::try_from(t.unix_timestamp()).unwrap_or(0);
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

/// Serves the router on `listener` (killable connections for the `drop_connection` fault).
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) -> io::Result<()> {
    let app = router(shared).into_make_service_with_connect_info::<KillSwitch>();
    axum::serve(KillableListener(listener), app).await
}

/// Per-connection switch: once tripped, the connection fails every write and read, so the
/// server closes it without sending a response.
#[derive(Clone, Debug, Default)]
pub struct KillSwitch(Arc<AtomicBool>);

impl KillSwitch {
    fn trip(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn tripped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A TCP stream that honours its [`KillSwitch`].
pub struct KillableStream {
    inner: TcpStream,
    switch: KillSwitch,
}

fn killed() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection dropped by injected fault",
    )
}

impl AsyncRead for KillableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.switch.tripped() {
            return Poll::Ready(Err(killed()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.switch.tripped() {
            return Poll::Ready(Err(killed()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.switch.tripped() {
            return Poll::Ready(Err(killed()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A TCP listener handing out [`KillableStream`]s.
pub struct KillableListener(TcpListener);

impl Listener for KillableListener {
    type Io = KillableStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((inner, addr)) => {
                    let _ = inner.set_nodelay(true);
                    return (
                        KillableStream {
                            inner,
                            switch: KillSwitch::default(),
                        },
                        addr,
                    );
                }
                Err(e) => {
                    tracing::debug!("ms365 emulator: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

impl Connected<IncomingStream<'_, KillableListener>> for KillSwitch {
    fn connect_info(stream: IncomingStream<'_, KillableListener>) -> Self {
        stream.io().switch.clone()
    }
}

/// A tiny route to check liveness: `GET /` answers 200 text.
pub fn root_routes() -> Router<Arc<Shared>> {
    Router::new().route("/", get(|| async { "Microsoft 365 emulator" }))
}
