//! The client: concurrent sessions that query toys and buy some, then check every order they
//! were told about.

pub mod stats;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::progress::Progress;
use crate::tool_http::{agent, get, post_json};
use crate::wire::{Data, OrderCreated, OrderInfo, Product};
use stats::{Latencies, LatencySummary};

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL of the front end.
    pub frontend: String,
    pub sessions: usize,
    pub iterations: usize,
    /// Probability of ordering a toy that is in stock.
    pub p: f64,
    pub seed: u64,
    /// Toys to query.
    pub products: Vec<String>,
    /// When set, sessions stop early once it turns true (then check their orders as usual).
    pub stop: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// How long an order that failed (5xx or no reply) is retried with the same idempotency
    /// key, as a careful client would; zero means never. Every failed attempt still counts as
    /// an error seen.
    pub retry_for: Duration,
}

/// An order the store acknowledged: the key it was placed with and the number it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledged {
    pub key: String,
    pub number: u64,
    pub name: String,
    pub quantity: u64,
}

/// When one order was in flight: from its first send to its final answer, retries included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderSpan {
    pub sent: Instant,
    pub answered: Instant,
    /// Whether the store acknowledged it (rather than refusing it or failing).
    pub acknowledged: bool,
}

impl OrderSpan {
    /// Whether the order was in flight at some instant of `from..until`.
    pub fn overlaps(&self, from: Instant, until: Instant) -> bool {
        self.sent < until && self.answered > from
    }

    pub fn took(&self) -> Duration {
        self.answered.saturating_duration_since(self.sent)
    }
}

/// What one client run saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub sessions: usize,
    pub iterations: usize,
    pub p: f64,
    pub requests: u64,
    /// Replies that should not have happened: 5xx, unreachable, malformed, wrong shapes.
    pub errors: u64,
    /// The same errors, by request type.
    pub errors_by_kind: ErrorCounts,
    /// Iterations whose query was answered, and what each did next: ordered, or not.
    pub queried: u64,
    /// Iterations that did not order because the coin (p) said so.
    pub not_chosen: u64,
    /// Iterations that would have ordered but found their toy at 0 in stock: orders not tried.
    pub skipped_sold_out: u64,
    /// When a query first found its toy sold out, in seconds from the start.
    pub sold_out_after_s: Option<f64>,
    pub orders: u64,
    /// Orders refused because the toy sold out between query and order (409): expected.
    pub sold_out: u64,
    pub orders_checked: u64,
    pub mismatches: u64,
    pub elapsed_s: f64,
    pub query: LatencySummary,
    /// Product queries the front end's cache answered, and those it did not.
    pub query_hit: LatencySummary,
    pub query_miss: LatencySummary,
    pub order: LatencySummary,
    pub order_query: LatencySummary,
    /// A few of the unexpected replies, to show the user.
    pub error_samples: Vec<String>,
    /// Failed orders sent again with the same key.
    pub retries: u64,
    /// Every acknowledged order, for checks against the replicas' files.
    #[serde(skip)]
    pub acknowledged: Vec<Acknowledged>,
    /// When every order tried was in flight, for `chaos` to tell which met a fault.
    #[serde(skip)]
    pub order_spans: Vec<OrderSpan>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.errors == 0 && self.mismatches == 0
    }
}

/// The three request types of the buy loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Query,
    Order,
    OrderQuery,
}

/// Unexpected replies per request type.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct ErrorCounts {
    pub query: u64,
    pub order: u64,
    pub order_query: u64,
}

impl ErrorCounts {
    fn count(&mut self, kind: Kind) {
        match kind {
            Kind::Query => self.query += 1,
            Kind::Order => self.order += 1,
            Kind::OrderQuery => self.order_query += 1,
        }
    }

    fn merge(&mut self, other: &ErrorCounts) {
        self.query += other.query;
        self.order += other.order;
        self.order_query += other.order_query;
    }
}

#[derive(Default)]
struct SessionResult {
    queried: u64,
    not_chosen: u64,
    skipped_sold_out: u64,
    first_sold_out: Option<Instant>,
    spans: Vec<OrderSpan>,
    retries: u64,
    placed: Vec<Acknowledged>,
    requests: u64,
    errors: u64,
    errors_by_kind: ErrorCounts,
    orders: u64,
    sold_out: u64,
    checked: u64,
    mismatches: u64,
    query: Latencies,
    query_hit: Latencies,
    query_miss: Latencies,
    order: Latencies,
    order_query: Latencies,
    error_samples: Vec<String>,
}

impl SessionResult {
    /// Adds another session's counts, latencies and samples to these.
    fn merge(&mut self, other: SessionResult) {
        self.queried += other.queried;
        self.not_chosen += other.not_chosen;
        self.skipped_sold_out += other.skipped_sold_out;
        self.first_sold_out = match (self.first_sold_out, other.first_sold_out) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.spans.extend(other.spans);
        self.retries += other.retries;
        self.placed.extend(other.placed);
        self.requests += other.requests;
        self.errors += other.errors;
        self.errors_by_kind.merge(&other.errors_by_kind);
        self.orders += other.orders;
        self.sold_out += other.sold_out;
        self.checked += other.checked;
        self.mismatches += other.mismatches;
        self.query.merge(&other.query);
        self.query_hit.merge(&other.query_hit);
        self.query_miss.merge(&other.query_miss);
        self.order.merge(&other.order);
        self.order_query.merge(&other.order_query);
        let room = 5usize.saturating_sub(self.error_samples.len());
        self.error_samples
            .extend(other.error_samples.into_iter().take(room));
    }

    fn error(&mut self, kind: Kind, what: String) {
        self.errors += 1;
        self.errors_by_kind.count(kind);
        if self.error_samples.len() < 5 {
            self.error_samples.push(what);
        }
    }
}

/// Runs `config.sessions` sessions on threads; `progress` advances once per iteration and check.
pub fn run(config: &ClientConfig, progress: &dyn Progress) -> Report {
    let started = Instant::now();
    // Keys must differ between runs even when the seed repeats, or the store would rightly
    // answer a repeated key with the earlier run's order.
    let run_id: u64 = rand::random();
    let results: Vec<SessionResult> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..config.sessions)
            .map(|i| {
                scope.spawn(move || {
                    let seed = config.seed.wrapping_add(i as u64);
                    session(config, seed, &format!("{run_id:016x}-{i}"), progress)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut total = SessionResult::default();
    for r in results {
        total.merge(r);
    }
    let sold_out_after_s = total
        .first_sold_out
        .map(|at| at.duration_since(started).as_secs_f64());
    Report {
        sessions: config.sessions,
        iterations: config.iterations,
        p: config.p,
        elapsed_s: started.elapsed().as_secs_f64(),
        requests: total.requests,
        queried: total.queried,
        not_chosen: total.not_chosen,
        skipped_sold_out: total.skipped_sold_out,
        sold_out_after_s,
        order_spans: total.spans,
        errors: total.errors,
        errors_by_kind: total.errors_by_kind,
        orders: total.orders,
        sold_out: total.sold_out,
        orders_checked: total.checked,
        mismatches: total.mismatches,
        retries: total.retries,
        acknowledged: total.placed,
        query: total.query.summary(),
        query_hit: total.query_hit.summary(),
        query_miss: total.query_miss.summary(),
        order: total.order.summary(),
        order_query: total.order_query.summary(),
        error_samples: total.error_samples,
    }
}

fn session(
    config: &ClientConfig,
    seed: u64,
    key_prefix: &str,
    progress: &dyn Progress,
) -> SessionResult {
    let agent = agent();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut result = SessionResult::default();
    let mut keys = 0u64;
    for _ in 0..config.iterations {
        if config
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
        {
            break;
        }
        let name = &config.products[rng.random_range(0..config.products.len())];
        if let Some(product) = query(&agent, config, name, &mut result) {
            result.queried += 1;
            if !rng.random_bool(config.p.clamp(0.0, 1.0)) {
                result.not_chosen += 1;
            } else if product.quantity == 0 {
                result.skipped_sold_out += 1;
                result.first_sold_out.get_or_insert_with(Instant::now);
            } else {
                let quantity = rng.random_range(1..=5u64);
                keys += 1;
                let key = format!("{key_prefix}-{keys}");
                place(&agent, config, &mut result, key, &product.name, quantity);
            }
        }
        progress.advance(1);
    }
    for order in result.placed.clone() {
        progress.grow(1);
        check_order(&agent, config, &mut result, &order);
        progress.advance(1);
    }
    result
}

/// Asks the front end for the product `name`, and records the query's latency, or its error.
fn query(
    agent: &ureq::Agent,
    config: &ClientConfig,
    name: &str,
    result: &mut SessionResult,
) -> Option<Product> {
    let url = format!(
        "{}/products/{}",
        config.frontend,
        crate::http::encode_segment(name)
    );
    let started = Instant::now();
    let reply = get(agent, &url);
    result.requests += 1;
    let error = match reply {
        Ok(r) if r.status == 200 => match r.json::<Data<Product>>() {
            Some(p) => {
                let elapsed = started.elapsed();
                result.query.record(elapsed);
                match r.cache_hit {
                    Some(true) => result.query_hit.record(elapsed),
                    Some(false) => result.query_miss.record(elapsed),
                    None => {}
                }
                return Some(p.data);
            }
            None => format!("GET {url}: malformed reply {}", r.body),
        },
        Ok(r) => format!("GET {url}: {} {}", r.status, r.message()),
        Err(e) => format!("GET {url}: {e}"),
    };
    result.error(Kind::Query, error);
    None
}

/// Reads an acknowledged order back and counts a mismatch if the store has it otherwise.
fn check_order(
    agent: &ureq::Agent,
    config: &ClientConfig,
    result: &mut SessionResult,
    order: &Acknowledged,
) {
    let url = format!("{}/orders/{}", config.frontend, order.number);
    let started = Instant::now();
    let reply = get(agent, &url);
    result.requests += 1;
    result.checked += 1;
    match reply {
        Ok(r) if r.status == 200 => {
            result.order_query.record(started.elapsed());
            let expected = OrderInfo {
                number: order.number,
                name: order.name.clone(),
                quantity: order.quantity,
            };
            match r.json::<Data<OrderInfo>>() {
                Some(got) if got.data == expected => {}
                _ => {
                    result.mismatches += 1;
                    result.error(
                        Kind::OrderQuery,
                        format!(
                            "order {}: expected {expected:?}, got {}",
                            order.number, r.body
                        ),
                    );
                }
            }
        }
        Ok(r) => {
            result.mismatches += 1;
            result.error(
                Kind::OrderQuery,
                format!("GET /orders/{}: {} {}", order.number, r.status, r.message()),
            );
        }
        Err(e) => result.error(
            Kind::OrderQuery,
            format!("GET /orders/{}: {e}", order.number),
        ),
    }
}

/// Orders `quantity` of `name` under `key`, retrying a failure with the same key for
/// `config.retry_for`, and records the outcome and its span in `result`.
fn place(
    agent: &ureq::Agent,
    config: &ClientConfig,
    result: &mut SessionResult,
    key: String,
    name: &str,
    quantity: u64,
) {
    let body = serde_json::json!({ "name": name, "quantity": quantity });
    let url = format!("{}/orders", config.frontend);
    let sent = Instant::now();
    let retry_until = sent + config.retry_for;
    let acknowledged = loop {
        let reply = post_json(agent, &url, &body, Some(&key));
        result.requests += 1;
        let failure = match reply {
            Ok(r) if r.status == 200 => match r.json::<Data<OrderCreated>>() {
                Some(created) => {
                    result.order.record(sent.elapsed());
                    result.orders += 1;
                    result.placed.push(Acknowledged {
                        key,
                        number: created.data.order_number,
                        name: name.to_string(),
                        quantity,
                    });
                    break true;
                }
                None => format!("POST /orders: malformed reply {}", r.body),
            },
            Ok(r) if r.status == 409 => {
                result.order.record(sent.elapsed());
                result.sold_out += 1;
                break false;
            }
            Ok(r) if r.status < 500 => {
                let what = format!("POST /orders: {} {}", r.status, r.message());
                result.error(Kind::Order, what);
                break false;
            }
            Ok(r) => format!("POST /orders: {} {}", r.status, r.message()),
            Err(e) => format!("POST /orders: {e}"),
        };
        result.error(Kind::Order, failure);
        if Instant::now() >= retry_until {
            break false;
        }
        result.retries += 1;
        std::thread::sleep(Duration::from_millis(100));
    };
    result.spans.push(OrderSpan {
        sent,
        answered: Instant::now(),
        acknowledged,
    });
}

/// The toys of the built-in catalog, in its own spelling.
pub fn catalog_products() -> Vec<String> {
    let built_in = std::path::Path::new("the built-in catalog");
    crate::catalog::seed::parse(crate::catalog::seed::BUILT_IN, built_in)
        .map(|rows| rows.into_iter().map(|row| row.name).collect())
        .unwrap_or_default()
}

/// A human summary of a report, several lines.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    out.push_str(&format!(
        "{} session{} × {} iteration{}, p = {}: {} requests in {:.2}s\n",
        report.sessions,
        plural(report.sessions),
        report.iterations,
        plural(report.iterations),
        report.p,
        report.requests,
        report.elapsed_s
    ));
    out.push_str(&format!(
        "queries answered: {}: {} went on to order, {} did not (p = {}), {} found their toy sold \
         out and ordered nothing\n",
        report.queried,
        report.queried - report.not_chosen - report.skipped_sold_out,
        report.not_chosen,
        report.p,
        report.skipped_sold_out
    ));
    out.push_str(&format!(
        "orders: {} placed, {} refused as sold out, {} checked, {} mismatched\n",
        report.orders, report.sold_out, report.orders_checked, report.mismatches
    ));
    if let Some(after) = report.sold_out_after_s {
        out.push_str(&format!(
            "note: toys began to sell out {after:.1}s in; the orders they skipped were not \
             exercised (a new cluster with more stock: storectl up --state-dir DIR --initial-stock N)\n"
        ));
    }
    out.push_str(&format!("unexpected errors: {}\n", report.errors));
    out.push_str(&format!(
        "{:<14} {:>7} {:>9} {:>9} {:>9} {:>9}\n",
        "latency", "count", "mean", "p50", "p95", "p99"
    ));
    for (label, s) in [
        ("product query", &report.query),
        ("order", &report.order),
        ("order query", &report.order_query),
    ] {
        out.push_str(&format!(
            "{:<14} {:>7} {:>9} {:>9} {:>9} {:>9}\n",
            label,
            s.count,
            s.show(s.mean_us),
            s.show(s.p50_us as f64),
            s.show(s.p95_us as f64),
            s.show(s.p99_us as f64)
        ));
    }
    for sample in &report.error_samples {
        out.push_str(&format!("  error: {sample}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_knows_the_builtin_toys() {
        let products = catalog_products();
        assert!(products.len() >= 15);
        assert!(products.contains(&"Tux".to_string()));
        assert!(products.contains(&"Rubik's Cube".to_string()));
    }
}
