//! The client every service uses to call another: one pooled, keep-alive async HTTP client per
//! process, with connect and total timeouts on every call. The bench's load generator drives
//! the front end with it too, so the store has one async HTTP client.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::http::{header, Method, Request};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::secret::Secret;
use crate::wire::ErrorBody;

/// Why a call to another service did not give the expected reply.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Refused, reset, timed out: the peer may be down; try elsewhere or later.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The peer answered with an error status (and the API's error message when it sent one).
    #[error("{status}: {message}")]
    Status { status: u16, message: String },
    /// The peer answered 2xx with a body that is not what was expected.
    #[error("unexpected reply: {0}")]
    BadReply(String),
}

/// A cheap-to-clone handle to the process's connection pool.
///
/// hyper-util's pooled client rather than a higher-level one: calls between services are the
/// store's hot path (three per order), and it leaves out URL parsing, redirects and proxies,
/// which loopback calls never need.
#[derive(Clone, Debug)]
pub struct PeerClient {
    /// `https://` URLs go over TLS with the credentials given to [`PeerClient::new`],
    /// `http://` ones in the clear.
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
    /// `Bearer <cluster secret>`, sent on every call (none for the load generator, which only
    /// uses the public API).
    authorization: Option<hyper::http::HeaderValue>,
    /// Whether it has TLS credentials: the other services are then called at `https://`.
    tls: bool,
}

impl PeerClient {
    /// A pool that keeps up to `max_idle` idle connections to each peer, presenting `secret`
    /// when given, and speaking TLS with `tls` to `https://` URLs.
    pub fn new(
        connect_timeout: Duration,
        timeout: Duration,
        secret: Option<&Secret>,
        max_idle: usize,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        let has_tls = tls.is_some();
        // Without credentials, an `https://` URL fails at the handshake: no CA is trusted.
        let tls = tls.unwrap_or_else(|| Arc::new(untrusting_config()));
        connector.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(Arc::unwrap_or_clone(tls))
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let http = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(max_idle)
            .pool_idle_timeout(crate::timeouts::PEER_POOL_IDLE)
            .build(connector);
        // A secret is visible ASCII by construction, so it is always a valid header value.
        let authorization = secret.and_then(|secret| {
            let mut value = hyper::http::HeaderValue::from_str(&secret.bearer()).ok()?;
            value.set_sensitive(true);
            Some(value)
        });
        PeerClient {
            http,
            timeout,
            authorization,
            tls: has_tls,
        }
    }

    /// The URL of the service at `address` (`host:port`), in the scheme this client speaks.
    pub fn service_url(&self, address: &str) -> String {
        crate::config::service_url(address, self.tls)
    }

    /// Timeouts for calls between services on one machine: a peer that does not connect within
    /// 500 ms is treated as down.
    pub fn for_services(secret: &Secret, tls: Option<Arc<rustls::ClientConfig>>) -> Self {
        Self::new(
            Duration::from_millis(500),
            Duration::from_secs(5),
            Some(secret),
            64,
            tls,
        )
    }

    /// A pool for the bench's load generator: as many connections as it keeps busy, and time
    /// for a loaded front end to answer.
    pub fn for_load(connections: usize, tls: Option<Arc<rustls::ClientConfig>>) -> Self {
        Self::new(
            Duration::from_secs(2),
            Duration::from_secs(10),
            None,
            connections,
            tls,
        )
    }

    /// Sends `request` as it is and returns the reply's status, the body read and dropped: for
    /// the load generator, which counts replies rather than reads them.
    pub async fn status_of(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<hyper::http::StatusCode, CallError> {
        let (status, _) = self.exchange(request, self.timeout).await?;
        Ok(status)
    }

    pub async fn get<T: DeserializeOwned>(&self, url: &str) -> Result<T, CallError> {
        self.send(Method::GET, url, None, self.timeout).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        url: &str,
        body: &B,
    ) -> Result<T, CallError> {
        self.post_with_timeout(url, body, self.timeout).await
    }

    /// A POST with a timeout of its own, for calls that may legitimately take longer.
    pub async fn post_with_timeout<B: Serialize, T: DeserializeOwned>(
        &self,
        url: &str,
        body: &B,
        timeout: Duration,
    ) -> Result<T, CallError> {
        let body = serde_json::to_vec(body)
            .map_err(|e| CallError::BadReply(format!("request not serialisable: {e}")))?;
        self.send(Method::POST, url, Some(body), timeout).await
    }

    pub async fn get_with_timeout<T: DeserializeOwned>(
        &self,
        url: &str,
        timeout: Duration,
    ) -> Result<T, CallError> {
        self.send(Method::GET, url, None, timeout).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        url: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<T, CallError> {
        let mut request = Request::builder().method(method).uri(url);
        if let Some(authorization) = &self.authorization {
            request = request.header(header::AUTHORIZATION, authorization.clone());
        }
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| CallError::Unreachable(format!("bad address '{url}': {e}")))?;
        let (status, body) = self.exchange(request, timeout).await?;
        if !status.is_success() {
            let message = serde_json::from_slice::<ErrorBody>(&body)
                .map(|b| b.error.message)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
            return Err(CallError::Status {
                status: status.as_u16(),
                message,
            });
        }
        serde_json::from_slice(&body).map_err(|e| CallError::BadReply(e.to_string()))
    }
}

impl PeerClient {
    /// One request and its whole reply, within `timeout`.
    async fn exchange(
        &self,
        request: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<(hyper::http::StatusCode, Bytes), CallError> {
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| CallError::Unreachable(describe(&e)))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| CallError::Unreachable(describe(&e)))?
                .to_bytes();
            Ok::<_, CallError>((status, body))
        };
        tokio::time::timeout(timeout, exchange).await.map_err(|_| {
            CallError::Unreachable(format!("no reply within {} ms", timeout.as_millis()))
        })?
    }
}

/// A TLS configuration that trusts no one, for a client given no credentials.
fn untrusting_config() -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("ring supports TLS 1.3")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth()
}

/// An error with its chain of causes, which is where the useful part ("connection refused") is.
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
