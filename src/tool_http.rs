//! The blocking HTTP client every tool uses (`status`, `up`'s health checks, the buy loop, the
//! bench's counters): ureq, plain HTTP, a timeout per phase, error statuses returned as replies.
//!
//! The services, and the bench's load generator, use the pooled async client in
//! [`crate::peer`] instead: they run on tokio and call each other on their hot path.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::wire::ErrorBody;

/// A blocking HTTP agent with a timeout per phase (a global timeout costs a thread per request)
/// and error statuses returned as replies rather than errors.
pub fn agent() -> ureq::Agent {
    agent_waiting(Duration::from_secs(30))
}

/// An agent for health checks: a service that does not answer within a second (paused, say)
/// is reported as not answering rather than waited for.
pub fn health_agent() -> ureq::Agent {
    agent_waiting(Duration::from_secs(1))
}

fn agent_waiting(reply: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(2).min(reply)))
        .timeout_send_request(Some(Duration::from_secs(5).min(reply)))
        .timeout_recv_response(Some(reply))
        .timeout_recv_body(Some(reply))
        .http_status_as_error(false)
        .build()
        .into()
}

/// A reply: status and body text.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    /// For a product reply, whether the front end's cache answered it (its `X-Cache` header).
    pub cache_hit: Option<bool>,
}

impl Reply {
    pub fn json<T: for<'de> Deserialize<'de>>(&self) -> Option<T> {
        serde_json::from_str(&self.body).ok()
    }

    /// The API's error message, or the raw body.
    pub fn message(&self) -> String {
        self.json::<ErrorBody>()
            .map(|e| e.error.message)
            .unwrap_or_else(|| self.body.clone())
    }
}

pub fn get(agent: &ureq::Agent, url: &str) -> Result<Reply, String> {
    get_authorized(agent, url, None)
}

/// A GET that presents the cluster's secret, for a service's internal endpoints.
pub fn get_authorized(
    agent: &ureq::Agent,
    url: &str,
    secret: Option<&crate::secret::Secret>,
) -> Result<Reply, String> {
    let mut request = agent.get(url);
    if let Some(secret) = secret {
        request = request.header("Authorization", &secret.bearer());
    }
    let response = request.call().map_err(|e| e.to_string())?;
    read(response)
}

pub fn post_json<T: Serialize>(
    agent: &ureq::Agent,
    url: &str,
    body: &T,
    idempotency_key: Option<&str>,
) -> Result<Reply, String> {
    let mut request = agent.post(url);
    if let Some(key) = idempotency_key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send_json(body).map_err(|e| e.to_string())?;
    read(response)
}

/// A POST of JSON that presents the cluster's secret, for a service's internal endpoints.
pub fn post_authorized<T: Serialize>(
    agent: &ureq::Agent,
    url: &str,
    body: &T,
    secret: &crate::secret::Secret,
) -> Result<Reply, String> {
    let response = agent
        .post(url)
        .header("Authorization", &secret.bearer())
        .send_json(body)
        .map_err(|e| e.to_string())?;
    read(response)
}

fn read(mut response: ureq::http::Response<ureq::Body>) -> Result<Reply, String> {
    let status = response.status().as_u16();
    let cache_hit = response
        .headers()
        .get(crate::wire::CACHE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|v| v == "hit");
    let body = response
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    Ok(Reply {
        status,
        body,
        cache_hit,
    })
}
