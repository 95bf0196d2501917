//! The public API (the README's API table), plus the front end's health and invalidation endpoints.

use std::time::{Duration, Instant};

/// How long a request waits for news of the leader before it looks again.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

use bytes::Bytes;
use serde_json::Value;
use warp::http::{Method, StatusCode};

use super::{leader, Frontend};
use crate::http::{self, ApiError, Request, Response};
use crate::peer::CallError;
use crate::timeouts;
use crate::wire::{
    is_valid_key, Data, FrontendHealth, Invalidate, OrderCreated, OrderInfo, PlaceOrder, Product,
    VersionedProduct, MAX_KEY_LEN, MAX_NAME_LEN, MAX_QUANTITY,
};

impl http::Handler for Frontend {
    fn readings(&self) -> Vec<crate::metrics::Reading> {
        use crate::metrics::Reading;
        let (stats, leased) = {
            let mut cache = self.cache();
            (cache.stats(), cache.is_leased(Instant::now()))
        };
        let view = self.shared.leader.view();
        vec![
            Reading::counter(
                "cache_hits",
                "Product queries the cache answered",
                stats.hits,
            ),
            Reading::counter(
                "cache_misses",
                "Product queries sent on to the catalog",
                stats.misses,
            ),
            Reading::counter(
                "cache_evictions",
                "Replies the cache dropped for room",
                stats.evictions,
            ),
            Reading::counter(
                "cache_invalidations",
                "Invalidations the catalog pushed to this front end",
                stats.invalidations,
            ),
            Reading::gauge("cache_entries", "Replies in the cache", stats.size as f64),
            Reading::gauge(
                "cache_capacity",
                "Replies the cache holds at most",
                stats.capacity as f64,
            ),
            Reading::gauge(
                "cache_leased",
                "1 while the catalog vouches for the cache",
                u8::from(leased),
            ),
            Reading::gauge(
                "order_leader",
                "The id of the order replica this front end sends orders to (0: none known)",
                view.leader.map_or(0, |l| l.id) as f64,
            ),
            Reading::gauge(
                "order_replicas_answering",
                "Order replicas that answered the last health poll",
                view.answering as f64,
            ),
            Reading::gauge(
                "storefront_streams",
                "Storefront pages following stock changes",
                self.shared.feed.followers() as f64,
            ),
        ]
    }

    async fn handle(&self, request: Request) -> Response {
        let segments = request.segments();
        match (segments.as_slice(), &request.method) {
            ([""], &Method::GET) => http::html(STOREFRONT),
            ([""], m) => http::method_not_allowed(m, "GET"),
            (["products"], &Method::GET) => {
                let started = Instant::now();
                let reply = products(self, started).await;
                self.shared.latency.query.record(started.elapsed());
                reply
            }
            (["products"], m) => http::method_not_allowed(m, "GET"),
            (["events"], &Method::GET) => self.shared.feed.reply(),
            (["events"], m) => http::method_not_allowed(m, "GET"),
            (["products", name], &Method::GET) => {
                let started = Instant::now();
                let reply = product(self, name, started).await;
                self.shared.latency.query.record(started.elapsed());
                reply
            }
            (["products", _], m) => http::method_not_allowed(m, "GET"),
            (["orders"], &Method::POST) => {
                let started = Instant::now();
                let reply = place_order(self, &request).await;
                self.shared.latency.order.record(started.elapsed());
                reply
            }
            (["orders"], m) => http::method_not_allowed(m, "POST"),
            (["orders", number], &Method::GET) => order(self, number).await,
            (["orders", _], m) => http::method_not_allowed(m, "GET"),
            (["health"], &Method::GET) => health(self),
            (["health"], m) => http::method_not_allowed(m, "GET"),
            (["internal", ..], _) if !request.presents(&self.shared.secret) => http::unauthorized(),
            (["internal", ..], _)
                if self.shared.transport.checks_peers()
                    && !matches!(request.peer, crate::tls::Peer::Service(_)) =>
            {
                http::error(
                    StatusCode::FORBIDDEN,
                    "the front end's internal routes take only services of the cluster: call \
                     them over TLS with a certificate of the cluster's CA",
                )
            }
            (["internal", "invalidate"], &Method::POST) => invalidate(self, &request),
            (["internal", "invalidate"], m) => http::method_not_allowed(m, "POST"),
            _ => http::not_found(&request.path),
        }
    }
}

/// `GET /health`: the leader this front end knows, its cache and its latencies.
fn health(frontend: &Frontend) -> Response {
    let mut cache = frontend.cache();
    let view = frontend.shared.leader.view();
    http::data(FrontendHealth {
        leader_id: view.leader.map(|l| l.id),
        order_replicas_answering: Some(view.answering as u32),
        cache: cache.stats(),
        cache_leased: cache.is_leased(Instant::now()),
        latency: crate::wire::FrontendLatency {
            query: frontend.shared.latency.query.counts(),
            order: frontend.shared.latency.order.counts(),
        },
        tls_refused: frontend.shared.transport.refusals(),
    })
}

/// The storefront: the page a shopper's browser gets at `GET /`.
const STOREFRONT: &str = include_str!("storefront.html");

/// Every product, from the cache's list or the catalog; `now` as for [`product`].
async fn products(frontend: &Frontend, now: Instant) -> Response {
    match product_list(frontend, now).await {
        Ok((body, cache)) => with_cache_header(http::json_bytes(StatusCode::OK, body), cache),
        Err(e) => relay(e, "catalog"),
    }
}

/// The reply to `GET /products`, and whether the cache had it.
pub(super) async fn product_list(
    frontend: &Frontend,
    now: Instant,
) -> Result<(Bytes, CacheHeader), CallError> {
    let generation = {
        let mut cache = frontend.cache();
        if let Some(body) = cache.get_list(now) {
            return Ok((body, CacheHeader::Hit));
        }
        cache.generation()
    };
    let Data { data } = frontend
        .shared
        .catalog
        .get::<Data<Vec<VersionedProduct>>>("/products", catalog_patience(frontend))
        .await?;
    let version = data.iter().map(|p| p.version).max().unwrap_or(0);
    let reply = Data {
        data: data.into_iter().map(Product::from).collect::<Vec<_>>(),
    };
    let body = Bytes::from(http::json_line(&reply).unwrap_or_default());
    frontend
        .cache()
        .fill_list(version, body.clone(), generation, Instant::now());
    Ok((body, CacheHeader::Miss))
}

/// A product reply; `now` (when the request came in) decides whether the cache's lease holds.
async fn product(frontend: &Frontend, segment: &str, now: Instant) -> Response {
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
    let generation = {
        let mut cache = frontend.cache();
        if let Some(body) = cache.get(&key, now) {
            tracing::debug!(product = %key, "cache hit");
            return with_cache_header(http::json_bytes(StatusCode::OK, body), CacheHeader::Hit);
        }
        cache.generation()
    };
    tracing::debug!(product = %key, "cache miss");
    let path = format!("/products/{}", http::encode_segment(&name));
    let fetched = frontend
        .shared
        .catalog
        .get::<Data<VersionedProduct>>(&path, catalog_patience(frontend))
        .await;
    match fetched {
        Ok(Data { data: p }) => {
            let version = p.version;
            let reply = Data {
                data: Product::from(p),
            };
            let body = Bytes::from(http::json_line(&reply).unwrap_or_default());
            frontend
                .cache()
                .fill(&key, version, body.clone(), generation, Instant::now());
            with_cache_header(http::json_bytes(StatusCode::OK, body), CacheHeader::Miss)
        }
        Err(e) => relay(e, "catalog"),
    }
}

async fn place_order(frontend: &Frontend, request: &Request) -> Response {
    let (name, quantity) = match parse_order(request) {
        Ok(order) => order,
        Err(e) => {
            // Still named in the reply, as every order's key is, when it is a key at all.
            let sent = request.header(crate::wire::IDEMPOTENCY_KEY_HEADER);
            return match sent.filter(|key| is_valid_key(key)) {
                Some(key) => with_key(e.into(), key),
                None => e.into(),
            };
        }
    };
    let key = match request.header(crate::wire::IDEMPOTENCY_KEY_HEADER) {
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
    let client = &frontend.shared.client;
    let order = &order;
    let reply = match with_leader(frontend, |url| async move {
        client
            .post_with_timeout::<_, Data<OrderCreated>>(
                &format!("{url}/orders"),
                order,
                timeouts::FRONTEND_ORDER_CALL,
            )
            .await
    })
    .await
    {
        Ok(created) => http::data(created.data),
        // The order may be placed yet (a leader that took it may still log it): the key,
        // which the front end may have made up, is what lets the client ask again safely.
        Err(e) if e.status.is_server_error() => http::error(
            e.status,
            &format!(
                "{}; the order may still be placed: retry with the same Idempotency-Key: {} \
                 to learn its outcome (it never buys twice)",
                e.message, order.key
            ),
        ),
        Err(e) => e.into(),
    };
    with_key(reply, &order.key)
}

async fn order(frontend: &Frontend, segment: &str) -> Response {
    let number = match parse_order_number(segment) {
        Ok(number) => number,
        Err(message) => return http::error(StatusCode::BAD_REQUEST, &message),
    };
    let client = &frontend.shared.client;
    let path = format!("/orders/{number}");
    let path = &path;
    let from_leader = with_leader(frontend, |url| async move {
        client
            .get_with_timeout::<Data<OrderInfo>>(
                &format!("{url}{path}"),
                timeouts::FRONTEND_ORDER_CALL,
            )
            .await
    })
    .await;
    match from_leader {
        Ok(info) => http::data(info.data),
        // No leader: any replica that holds the order can still say what it is.
        Err(unavailable) if unavailable.status == StatusCode::SERVICE_UNAVAILABLE => {
            match order_from_any_replica(frontend, path).await {
                Some(info) => http::data(info),
                None => unavailable.into(),
            }
        }
        Err(other) => other.into(),
    }
}

/// Asks every replica for an order at once; the first that holds it answers.
async fn order_from_any_replica(frontend: &Frontend, path: &str) -> Option<OrderInfo> {
    let client = &frontend.shared.client;
    let replicas = frontend.shared.leader.replicas();
    let asks = replicas.iter().map(|r| {
        Box::pin(async move {
            client
                .get_with_timeout::<Data<OrderInfo>>(
                    &format!("{}{path}", r.url),
                    timeouts::HEALTH_CALL,
                )
                .await
        })
    });
    let mut pending: Vec<_> = asks.collect();
    while !pending.is_empty() {
        let (answer, _, rest) = futures_util::future::select_all(pending).await;
        if let Ok(info) = answer {
            return Some(info.data);
        }
        pending = rest;
    }
    None
}

/// Runs `call` against the leader the replicas elected. When the leader changes while a
/// call is in flight (it was paused or cut off), the call is abandoned and made again on
/// the new leader; the idempotency key makes that safe. A replica that says it does not
/// lead makes the front end look again at once. With fewer than a majority of replicas
/// answering for [`timeouts::NO_QUORUM_FAIL`], the request fails with 503 rather than wait.
async fn with_leader<T, F, Fut>(frontend: &Frontend, call: F) -> Result<T, ApiError>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<T, CallError>>,
{
    let tracker = &frontend.shared.leader;
    let started = Instant::now();
    let deadline = started + frontend.shared.failover_timeout;
    let fail_fast_at = started + timeouts::NO_QUORUM_FAIL;
    let mut last_error = String::from("no order replica leads yet");
    let mut changes = tracker.subscribe();
    loop {
        let view = changes.borrow_and_update().clone();
        if let Some(refusal) = no_majority(frontend, &view, fail_fast_at) {
            return Err(refusal);
        }
        if Instant::now() >= deadline {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("no order replica could take the request: {last_error}"),
            ));
        }
        let Some(leader) = view.leader.clone() else {
            tracker.poll_now();
            let _ = tokio::time::timeout(RETRY_PAUSE, changes.changed()).await;
            continue;
        };
        let attempt = call(leader.url.clone());
        let Some(answer) =
            while_leading(frontend, &leader, attempt, &mut changes, fail_fast_at).await?
        else {
            continue;
        };
        match answer {
            Ok(value) => return Ok(value),
            Err(e) => last_error = worth_retrying(leader.id, e)?,
        }
        tracker.poll_now();
        let _ = tokio::time::timeout(RETRY_PAUSE, changes.changed()).await;
    }
}

/// Waits for `attempt` on `leader`: its answer, or `None` once another replica leads (the
/// attempt is dropped), or the 503 of a majority that stopped answering.
async fn while_leading<T>(
    frontend: &Frontend,
    leader: &leader::Leader,
    attempt: impl std::future::Future<Output = Result<T, CallError>>,
    changes: &mut tokio::sync::watch::Receiver<leader::View>,
    fail_fast_at: Instant,
) -> Result<Option<Result<T, CallError>>, ApiError> {
    tokio::pin!(attempt);
    loop {
        tokio::select! {
            answer = &mut attempt => return Ok(Some(answer)),
            changed = changes.changed() => {
                if changed.is_err() {
                    continue;
                }
                let view = changes.borrow_and_update().clone();
                if view.leader.as_ref().is_some_and(|l| l != leader) {
                    tracing::info!(
                        "order replica {} leads now; retrying the request there",
                        view.leader.as_ref().map_or(0, |l| l.id)
                    );
                    return Ok(None);
                }
                if let Some(refusal) = no_majority(frontend, &view, fail_fast_at) {
                    return Err(refusal);
                }
            }
            // At the fail-fast time, and every health poll after it: a missing
            // majority that outlasts a slow poll or two fails the request.
            _ = tokio::time::sleep_until(next_majority_check(fail_fast_at).into()) => {
                if let Some(refusal) = no_majority(frontend, &frontend.shared.leader.view(), fail_fast_at) {
                    return Err(refusal);
                }
            }
        }
    }
}

/// What a failed call to the order leader `leader` means: worth another try (with what to
/// say if none succeeds), or the client's answer.
fn worth_retrying(leader: u32, error: CallError) -> Result<String, ApiError> {
    match error {
        CallError::Status { status, message } => match status {
            421 | 503 => {
                tracing::debug!("replica {leader}: {message}");
                Ok(message)
            }
            // The replica is fine; the catalog is not. Only the client's retry (with the
            // same key) can help, so say so rather than wait.
            502 => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)),
            _ => {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
                Err(ApiError::new(status, message))
            }
        },
        e => {
            // Said once per leader change by the tracker; per request it is detail.
            tracing::debug!("order replica {leader} failed ({e}); looking for the leader");
            Ok(format!("replica {leader}: {e}"))
        }
    }
}

/// How long a product query looks for the catalog leader: [`timeouts::CATALOG_QUERY`]
/// without a majority of the catalog group, as long as an order waits with one.
fn catalog_patience(frontend: &Frontend) -> crate::group_client::Patience {
    crate::group_client::Patience {
        without_majority: timeouts::CATALOG_QUERY,
        with_majority: frontend.shared.failover_timeout,
    }
}

/// The 503 for a request that has waited [`timeouts::NO_QUORUM_FAIL`] while fewer than a
/// majority of replicas answer: for that long, or (for a request that has waited that long
/// already) for half of it. A single health poll that a busy machine let run out is not a
/// missing majority.
fn no_majority(
    frontend: &Frontend,
    view: &leader::View,
    fail_fast_at: Instant,
) -> Option<ApiError> {
    let tracker = &frontend.shared.leader;
    let since = view.minority_since?;
    let now = Instant::now();
    let minority_for = now.duration_since(since);
    let long_enough = if now < fail_fast_at {
        timeouts::NO_QUORUM_FAIL
    } else {
        timeouts::NO_QUORUM_FAIL / 2
    };
    if minority_for < long_enough {
        return None;
    }
    Some(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "only {} of {} order replicas answer; orders need {}",
            view.answering,
            tracker.replicas().len(),
            tracker.majority()
        ),
    ))
}

fn invalidate(frontend: &Frontend, request: &Request) -> Response {
    let invalidate: Invalidate = match http::parse_json(request) {
        Ok(i) => i,
        Err(e) => return e.into(),
    };
    {
        let mut cache = frontend.cache();
        for item in &invalidate.items {
            tracing::debug!(product = %item.name, version = item.version, "invalidate");
            cache.invalidate(&item.name, item.version);
        }
    }
    frontend
        .shared
        .feed
        .changed(invalidate.items.iter().map(|item| item.name.as_str()));
    http::data(serde_json::json!({ "invalidated": invalidate.items.len() }))
}

/// When a request in flight next looks whether a majority of replicas answers.
fn next_majority_check(fail_fast_at: Instant) -> Instant {
    let now = Instant::now();
    if now < fail_fast_at {
        fail_fast_at
    } else {
        now + timeouts::HEALTH_POLL
    }
}

/// The `X-Cache` header of a product reply: whether the front end's cache answered it, so that
/// clients (and `storectl bench`) can tell what a hit and a miss cost.
pub(super) enum CacheHeader {
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

/// Every reply to an order names the key it was placed under, the client's or one the front end
/// made up, so that a client can always ask again without buying twice.
fn with_key(mut response: Response, key: &str) -> Response {
    if let Ok(value) = warp::http::HeaderValue::from_str(key) {
        response
            .headers_mut()
            .insert(crate::wire::IDEMPOTENCY_KEY_HEADER, value);
    }
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

/// An order number: digits only (no sign, no spaces), at most `u64::MAX`.
fn parse_order_number(segment: &str) -> Result<u64, String> {
    if segment.is_empty() || !segment.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "order number must be a non-negative integer, not '{}'",
            truncate(segment)
        ));
    }
    segment.parse::<u64>().map_err(|_| {
        format!(
            "order number '{}' is too large: order numbers go up to {}",
            truncate(segment),
            u64::MAX
        )
    })
}
