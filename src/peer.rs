//! The client every service uses to call another: one pooled, keep-alive async HTTP client per
//! process, with connect and total timeouts on every call.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

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
#[derive(Clone, Debug)]
pub struct PeerClient {
    http: reqwest::Client,
}

impl PeerClient {
    pub fn new(connect_timeout: Duration, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .timeout(timeout)
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .build()
            .unwrap_or_default();
        PeerClient { http }
    }

    /// Timeouts for calls between services on one machine: a peer that does not connect within
    /// 500 ms is treated as down.
    pub fn for_services() -> Self {
        Self::new(Duration::from_millis(500), Duration::from_secs(5))
    }

    pub async fn get<T: DeserializeOwned>(&self, url: &str) -> Result<T, CallError> {
        self.send(self.http.get(url), None).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        url: &str,
        body: &B,
    ) -> Result<T, CallError> {
        self.send(self.http.post(url).json(body), None).await
    }

    /// A POST with a timeout of its own, for calls that may legitimately take longer.
    pub async fn post_with_timeout<B: Serialize, T: DeserializeOwned>(
        &self,
        url: &str,
        body: &B,
        timeout: Duration,
    ) -> Result<T, CallError> {
        self.send(self.http.post(url).json(body), Some(timeout))
            .await
    }

    pub async fn get_with_timeout<T: DeserializeOwned>(
        &self,
        url: &str,
        timeout: Duration,
    ) -> Result<T, CallError> {
        self.send(self.http.get(url), Some(timeout)).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        timeout: Option<Duration>,
    ) -> Result<T, CallError> {
        let request = match timeout {
            Some(t) => request.timeout(t),
            None => request,
        };
        let response = request
            .send()
            .await
            .map_err(|e| CallError::Unreachable(describe(&e)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| CallError::Unreachable(describe(&e)))?;
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

fn describe(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
