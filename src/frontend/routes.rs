//! The public API of SPEC §2, plus the front end's health and invalidation endpoints.

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;
use warp::http::{Method, StatusCode};

use super::Frontend;
use crate::http::{self, ApiError, Request, Response};
use crate::peer::CallError;
use crate::wire::{
    is_valid_key, Data, FrontendHealth, Invalidate, OrderCreated, OrderInfo, PlaceOrder, Product,
    VersionedProduct, MAX_KEY_LEN, MAX_NAME_LEN, MAX_QUANTITY,
};

impl http::Handler for Frontend {
    async fn handle(&self, request: Request) -> Response {
        let segments = request.segments();
        match (segments.as_slice(), &request.method) {
            (["products", name], &Method::GET) => self.product(name).await,
            (["products", _], m) => http::method_not_allowed(m, "GET"),
            (["orders"], &Method::POST) => self.place_order(&request).await,
            (["orders"], m) => http::method_not_allowed(m, "POST"),
            (["orders", number], &Method::GET) => self.order(number).await,
            (["orders", _], m) => http::method_not_allowed(m, "GET"),
            (["health"], &Method::GET) => http::data(FrontendHealth {
                leader_id: self.shared.leader.current().map(|l| l.id),
                cache: self.cache().stats(),
            }),
            (["health"], m) => http::method_not_allowed(m, "GET"),
            (["internal", ..], _) if !request.presents(&self.shared.secret) => http::unauthorized(),
            (["internal", "invalidate"], &Method::POST) => self.invalidate(&request),
            (["internal", "invalidate"], m) => http::method_not_allowed(m, "POST"),
            _ => http::not_found(&request.path),
        }
    }
}

impl Frontend {
    async fn product(&self, segment: &str) -> Response {
        let Some(name) = http::decode_segment(segment) else {
            return http::error(StatusCode::BAD_REQUEST, "product name is not valid UTF-8");
        };
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return http::error(
                StatusCode::NOT_FOUND,
                &format!("no product named '{}'", truncate(&name)),
            );
        }
        let key = name.to_lowercase();
        if let Some(body) = self.cache().get(&key) {
            tracing::debug!(product = %key, "cache hit");
            return with_cache_header(http::json_bytes(StatusCode::OK, body), CacheHeader::Hit);
        }
        tracing::debug!(product = %key, "cache miss");
        let url = format!(
            "{}/products/{}",
            self.shared.catalog,
            http::encode_segment(&name)
        );
        match self.shared.client.get::<Data<VersionedProduct>>(&url).await {
            Ok(Data { data: p }) => {
                let reply = Data {
                    data: Product {
                        name: p.name,
                        price: p.price,
                        quantity: p.quantity,
                    },
                };
                let body = Bytes::from(serde_json::to_vec(&reply).unwrap_or_default());
                self.cache().fill(&key, p.version, body.clone());
                with_cache_header(http::json_bytes(StatusCode::OK, body), CacheHeader::Miss)
            }
            Err(e) => relay(e, "catalog"),
        }
    }

    async fn place_order(&self, request: &Request) -> Response {
        let (name, quantity) = match parse_order(request) {
            Ok(order) => order,
            Err(e) => return e.into(),
        };
        let key = match request.header("idempotency-key") {
            Some(key) => match valid_key(key) {
                Ok(key) => key.to_string(),
                Err(e) => return e.into(),
            },
            None => fresh_key(),
        };
        let order = PlaceOrder {
            key,
            name,
            quantity,
        };
        let client = &self.shared.client;
        self.with_leader(|url| {
            let order = &order;
            async move {
                client
                    .post::<_, Data<OrderCreated>>(&format!("{url}/orders"), order)
                    .await
            }
        })
        .await
        .map_or_else(|r| r, |created| http::data(created.data))
    }

    async fn order(&self, segment: &str) -> Response {
        let Ok(number) = segment.parse::<u64>() else {
            return http::error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "order number must be a non-negative integer, not '{}'",
                    truncate(segment)
                ),
            );
        };
        let client = &self.shared.client;
        self.with_leader(|url| async move {
            client
                .get::<Data<OrderInfo>>(&format!("{url}/orders/{number}"))
                .await
        })
        .await
        .map_or_else(|r| r, |info| http::data(info.data))
    }

    /// Runs `call` against the leader; when the leader fails or no longer leads, selects a new
    /// one at once and runs it again there, for up to the failover timeout.
    async fn with_leader<T, F, Fut>(&self, call: F) -> Result<T, Response>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<T, CallError>>,
    {
        let tracker = &self.shared.leader;
        let deadline = Instant::now() + self.shared.failover_timeout;
        let mut last_error = String::from("no order replica is reachable");
        while Instant::now() < deadline {
            let Some(leader) = tracker.get().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            match call(leader.url.clone()).await {
                Ok(value) => return Ok(value),
                Err(CallError::Status { status, message }) if status != 503 => {
                    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
                    return Err(http::error(status, &message));
                }
                Err(e) => {
                    tracing::warn!(
                        "leader {} failed ({e}); selecting again and retrying",
                        leader.id
                    );
                    last_error = e.to_string();
                    if tracker.reselect(Some(leader.generation)).await.is_none() {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
        Err(http::error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("no order replica reachable: {last_error}"),
        ))
    }

    fn invalidate(&self, request: &Request) -> Response {
        let invalidate: Invalidate = match http::parse_json(request) {
            Ok(i) => i,
            Err(e) => return e.into(),
        };
        let mut cache = self.cache();
        for item in &invalidate.items {
            tracing::debug!(product = %item.name, version = item.version, "invalidate");
            cache.invalidate(&item.name, item.version);
        }
        http::data(serde_json::json!({ "invalidated": invalidate.items.len() }))
    }
}

/// The `X-Cache` header of a product reply: whether the front end's cache answered it, so that
/// clients (and `storectl bench`) can tell what a hit and a miss cost.
enum CacheHeader {
    Hit,
    Miss,
}

fn with_cache_header(mut response: Response, cache: CacheHeader) -> Response {
    let value = match cache {
        CacheHeader::Hit => "hit",
        CacheHeader::Miss => "miss",
    };
    response.headers_mut().insert(
        crate::wire::CACHE_HEADER,
        warp::http::HeaderValue::from_static(value),
    );
    response
}

/// Passes a peer's 4xx on to the client; anything else means the peer is unavailable.
fn relay(error: CallError, peer: &str) -> Response {
    match error {
        CallError::Status { status, message } if (400..500).contains(&status) => http::error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            &message,
        ),
        other => http::error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("the {peer} is unavailable: {other}"),
        ),
    }
}

/// Validates an order body: exactly `name` (a non-empty string) and `quantity` (an integer ≥ 1).
fn parse_order(request: &Request) -> Result<(String, u64), ApiError> {
    let body: Value = http::parse_json(request)?;
    let Value::Object(fields) = body else {
        return Err(ApiError::bad_request(
            "the body must be a JSON object like {\"name\":\"Tux\",\"quantity\":1}",
        ));
    };
    if let Some(extra) = fields.keys().find(|k| *k != "name" && *k != "quantity") {
        return Err(ApiError::bad_request(format!(
            "unknown field '{}'",
            truncate(extra)
        )));
    }
    let name = match fields.get("name") {
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= MAX_NAME_LEN => s.clone(),
        Some(Value::String(_)) => {
            return Err(ApiError::bad_request(format!(
                "name must be 1 to {MAX_NAME_LEN} bytes"
            )))
        }
        Some(_) => return Err(ApiError::bad_request("name must be a string")),
        None => return Err(ApiError::bad_request("missing field 'name'")),
    };
    let quantity = match fields.get("quantity") {
        Some(Value::Number(n)) => match n.as_u64() {
            Some(q) if (1..=MAX_QUANTITY).contains(&q) => q,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "quantity must be an integer from 1 to {MAX_QUANTITY}, not {n}"
                )))
            }
        },
        Some(_) => {
            return Err(ApiError::bad_request(
                "quantity must be an integer, not a string or other type",
            ))
        }
        None => return Err(ApiError::bad_request("missing field 'quantity'")),
    };
    Ok((name, quantity))
}

fn valid_key(key: &str) -> Result<&str, ApiError> {
    if is_valid_key(key) {
        Ok(key)
    } else {
        Err(ApiError::bad_request(
            format!("Idempotency-Key must be 1 to {MAX_KEY_LEN} characters of A-Z, a-z, 0-9, '-', '_', '.', ':'"),
        ))
    }
}

/// A key for an order whose client sent none, so retries on a new leader stay exactly-once.
fn fresh_key() -> String {
    format!("fe-{:032x}", rand::random::<u128>())
}

fn truncate(s: &str) -> String {
    if s.len() <= 40 {
        s.to_string()
    } else {
        let cut = (0..=40).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
        format!("{}…", &s[..cut])
    }
}
