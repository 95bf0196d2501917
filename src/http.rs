//! The HTTP layer every service shares: one catch-all warp filter that hands a plain [`Request`]
//! to the service's router, a body size limit, and replies in the API's JSON shapes.
//!
//! Routing by hand (a `match` on method and path) keeps every status code of the API in one
//! readable place per service, including 404 versus 405, which warp's rejection merging blurs.

use std::future::Future;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::Serialize;
use std::sync::Arc;
use tokio::net::TcpListener;
use warp::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use warp::Filter;

use crate::tls::{Accepted, Peer, ServerSide};
use crate::wire::{ErrorBody, ErrorDetail};

pub type Response = warp::reply::Response;

/// Largest request body of the public API and the catalog; an order is a few dozen bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Largest request body between order replicas: a batch of entries or a log's tail.
pub const MAX_PEER_BODY_BYTES: usize = 4 * 1024 * 1024;

/// A request with its body already read.
#[derive(Debug)]
pub struct Request {
    pub method: Method,
    /// The path as received, still percent-encoded.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Who is at the other end: a service of the cluster proven by its certificate, or anyone.
    pub peer: Peer,
}

impl Request {
    /// The path's segments after the leading slash, still percent-encoded. Empty segments
    /// (`//health`, `/products/tux/`) are kept, so such paths match no route.
    pub fn segments(&self) -> Vec<&str> {
        let path = self.path.strip_prefix('/').unwrap_or(&self.path);
        path.split('/').collect()
    }

    /// Whether the request presents the cluster's secret.
    pub fn presents(&self, secret: &crate::secret::Secret) -> bool {
        secret.admits(
            self.headers
                .get(header::AUTHORIZATION)
                .map(|v| v.as_bytes()),
        )
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A service's request router.
pub trait Handler: Clone + Send + Sync + 'static {
    /// Largest request body this service reads; larger ones get 413.
    const MAX_BODY: usize = MAX_BODY_BYTES;

    fn handle(&self, request: Request) -> impl Future<Output = Response> + Send;

    /// What this service reports at a scrape of `GET /metrics`, besides the requests and
    /// fsyncs every service records.
    fn readings(&self) -> Vec<crate::metrics::Reading> {
        Vec::new()
    }
}

/// Serves `handler` on an already-bound `listener` until `shutdown` resolves, then stops
/// accepting, closes idle connections and lets requests in flight finish. Callers bind, so
/// tests can listen on port 0.
///
/// Each connection is its own task on hyper's HTTP/1 server, so a slow or stalled client
/// holds nothing but its own connection, and only for `header_read_timeout` while it sends
/// headers: that long from the moment it connects or its previous reply was sent. A client that
/// trickles them (slowloris) is cut off after this, and so is a keep-alive connection left idle
/// that long, so each holds a descriptor for a bounded time.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: H,
    header_read_timeout: Duration,
    tls: Option<Arc<ServerSide>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    raise_open_files_limit();
    let service = TowerToHyperService::new(warp::service(routes(handler)));
    let connections = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    survive_accept_error(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let (service, watcher, tls) = (service.clone(), connections.watcher(), tls.clone());
        tokio::spawn(async move {
            let accepted = match tls {
                None => Accepted::Plain(stream),
                // The handshake runs on the connection's own task, so a slow peer holds up
                // nobody else, and gets as long as a client has to send its headers.
                Some(tls) => match tls.accept(stream, remote, header_read_timeout).await {
                    Some(accepted) => accepted,
                    None => return,
                },
            };
            let builder = http1_builder(header_read_timeout);
            let ended = match accepted {
                Accepted::Plain(stream) => {
                    let service = with_peer(service, Peer::Public);
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(connection).await
                }
                Accepted::Tls(stream, peer) => {
                    let service = with_peer(service, peer);
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(connection).await
                }
            };
            if let Err(e) = ended {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
    drop(listener);
    connections.shutdown().await;
}

/// The HTTP/1 server of one connection, cutting off a client that takes longer than
/// `header_read_timeout` to send its headers.
fn http1_builder(header_read_timeout: Duration) -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    builder
}

/// The service of one connection: every request carries who is at the other end.
fn with_peer<S>(
    service: S,
    peer: Peer,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = S::Response,
    Error = S::Error,
    Future = S::Future,
> + Clone
where
    S: hyper::service::Service<hyper::Request<hyper::body::Incoming>> + Clone,
{
    #[derive(Clone)]
    struct WithPeer<S> {
        inner: S,
        peer: Peer,
    }
    impl<S> hyper::service::Service<hyper::Request<hyper::body::Incoming>> for WithPeer<S>
    where
        S: hyper::service::Service<hyper::Request<hyper::body::Incoming>>,
    {
        type Response = S::Response;
        type Error = S::Error;
        type Future = S::Future;

        fn call(&self, mut request: hyper::Request<hyper::body::Incoming>) -> Self::Future {
            request.extensions_mut().insert(self.peer.clone());
            self.inner.call(request)
        }
    }
    WithPeer {
        inner: service,
        peer,
    }
}

/// An accept that failed for the whole listener (out of file descriptors, say) is retried after
/// a pause instead of ending the service; one that failed for one connection is just dropped.
async fn survive_accept_error(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted
    ) {
        return;
    }
    tracing::error!("cannot accept connections: {e}; trying again in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Raises the soft limit on open files to the hard one: every connection is a descriptor, and a
/// soft limit of 1024 would let a thousand idle clients lock everyone else out.
fn raise_open_files_limit() {
    // Up to the hard limit, which an unprivileged process may do; a failure leaves the soft one.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
}

/// The one warp filter of a service: every request, its body read up to the handler's limit,
/// handed to the handler.
fn routes<H: Handler>(
    handler: H,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + Send + Sync + 'static {
    let route = warp::method()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<Peer>())
        .and(warp::body::stream())
        .then(
            move |method: Method,
                  path: warp::path::FullPath,
                  headers: HeaderMap,
                  peer: Option<Peer>,
                  body| {
                let handler = handler.clone();
                async move {
                    if declared_length(&headers).is_some_and(|n| n > H::MAX_BODY as u64) {
                        return Response::from(body_too_large(H::MAX_BODY));
                    }
                    let body = match read_limited(body, H::MAX_BODY).await {
                        Ok(body) => body,
                        Err(e) => return Response::from(e),
                    };
                    let started = std::time::Instant::now();
                    let kind = crate::metrics::RequestKind::of(method.as_str(), path.as_str());
                    let request = Request {
                        // HEAD is answered as GET; hyper leaves the body out of the reply.
                        method: if method == Method::HEAD {
                            Method::GET
                        } else {
                            method
                        },
                        path: path.as_str().to_string(),
                        headers,
                        body,
                        peer: peer.unwrap_or(Peer::Public),
                    };
                    let response = if request.method == Method::GET && request.path == "/metrics" {
                        metrics_reply(&handler)
                    } else {
                        handler.handle(request).await
                    };
                    crate::metrics::record_request(
                        kind,
                        response.status().as_u16(),
                        started.elapsed(),
                    );
                    response
                }
            },
        );
    route
}

/// A scrape: the process's recorded figures and the service's readings.
fn metrics_reply<H: Handler>(handler: &H) -> Response {
    let text = crate::metrics::render(handler.readings());
    let mut response = Response::new(text.into());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    response
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

async fn read_limited<S, B>(body: S, limit: usize) -> Result<Bytes, ApiError>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>>,
    B: warp::Buf,
{
    let mut body = std::pin::pin!(body);
    let mut collected = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("unreadable body: {e}")))?;
        if collected.len() + chunk.remaining() > limit {
            return Err(body_too_large(limit));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            collected.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(collected.freeze())
}

fn body_too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body is larger than {limit} bytes"),
    )
}

/// A reply with a JSON body that is already serialised (the cache's hot path).
pub fn json_bytes(status: StatusCode, body: Bytes) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A `text/csv` reply.
/// A page of HTML embedded in the binary.
pub fn html(page: &'static str) -> Response {
    let mut response = Response::new(page.into());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

pub fn csv(body: Vec<u8>) -> Response {
    let mut response = Response::new(Bytes::from(body).into());
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv"));
    response
}

/// `value` as JSON ending in a newline, as a terminal (and `curl`) likes it.
pub fn json_line<T: Serialize>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut body = serde_json::to_vec(value)?;
    body.push(b'\n');
    Ok(body)
}

pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match json_line(value) {
        Ok(body) => json_bytes(status, body.into()),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("reply not serialisable: {e}"),
        ),
    }
}

/// `200 {"data": value}`.
pub fn data<T: Serialize>(value: T) -> Response {
    json(StatusCode::OK, &crate::wire::Data { data: value })
}

/// The API's error shape: `{"error":{"code":…,"message":…}}`.
pub fn error(status: StatusCode, message: &str) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code: status.as_u16(),
            message: message.to_string(),
        },
    };
    let bytes = json_line(&body).unwrap_or_default();
    json_bytes(status, bytes.into())
}

pub fn not_found(path: &str) -> Response {
    error(StatusCode::NOT_FOUND, &format!("no such resource: {path}"))
}

/// 401 for an internal endpoint called without the cluster's secret.
pub fn unauthorized() -> Response {
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        "this endpoint is for the cluster's own services: present the cluster secret as \
         'Authorization: Bearer <secret>' (storectl up keeps it in STATE_DIR/cluster-secret)",
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"storectl cluster\""),
    );
    response
}

/// 405 with the `Allow` header listing what the path does take.
pub fn method_not_allowed(method: &Method, allowed: &'static str) -> Response {
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("method {method} is not allowed here; use {allowed}"),
    );
    // Wherever GET works, HEAD does too.
    let allow = if allowed == "GET" {
        "GET, HEAD"
    } else {
        allowed
    };
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// Decodes one percent-encoded path segment; `None` when it is not UTF-8.
pub fn decode_segment(segment: &str) -> Option<String> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

/// Percent-encodes a value for use as one path segment.
pub fn encode_segment(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A refused request: the status and message of the API's error shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<ApiError> for Response {
    fn from(e: ApiError) -> Response {
        error(e.status, &e.message)
    }
}

/// Parses a JSON body, refusing with 415 when it is not declared as JSON and 400 when it is not.
pub fn parse_json<T: serde::de::DeserializeOwned>(request: &Request) -> Result<T, ApiError> {
    let Some(kind) = request.headers.get(header::CONTENT_TYPE) else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the body as JSON, with 'Content-Type: application/json'",
        ));
    };
    let kind = String::from_utf8_lossy(kind.as_bytes());
    let essence = kind.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content type must be application/json, not '{kind}'"),
        ));
    }
    serde_json::from_slice(&request.body)
        .map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")))
}

/// Resolves when the process gets SIGTERM or SIGINT: the services' graceful stop.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_paths_keep_their_empty_segments() {
        let request = |path: &str| Request {
            method: Method::GET,
            path: path.into(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            peer: Peer::Public,
        };
        assert_eq!(request("/health").segments(), ["health"]);
        assert_eq!(request("//health").segments(), ["", "health"]);
        assert_eq!(
            request("/products/tux/").segments(),
            ["products", "tux", ""]
        );
    }

    #[test]
    fn segments_round_trip() {
        assert_eq!(decode_segment("Rubik%27s%20Cube").unwrap(), "Rubik's Cube");
        assert_eq!(decode_segment(&encode_segment("a/b c")).unwrap(), "a/b c");
        assert!(decode_segment("%ff").is_none());
    }
}
