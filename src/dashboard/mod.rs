//! `storectl dashboard`: what `storectl top` shows, live in a browser. A reader takes a status
//! reading of every service every interval and works it out with [`crate::top::Watch`]; the
//! page (`GET /`) follows the result as server-sent events (`GET /events`), one `view` per
//! reading with the history of the last minutes, so a page opened late still draws its charts.
//! Read-only: the site has no route that changes anything.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{Stream, StreamExt};
use serde::Serialize;
use tokio::sync::watch;
use warp::http::{Method, StatusCode};
use warp::Reply;

use crate::cluster::ServiceStatus;
use crate::http::{self, Request, Response};
use crate::services::ServiceName;
use crate::top::{Latency, View, Watch};

/// How far back the charts reach.
pub const HISTORY: Duration = Duration::from_secs(300);
/// The window rates and latencies are worked out over, as `top`'s default.
const RATE_WINDOW: Duration = Duration::from_secs(5);

const PAGE: &str = include_str!("page.html");

/// A status reading of every service, or why there is none.
pub type Reader = Box<dyn FnMut() -> Result<Vec<ServiceStatus>, String> + Send>;

/// What one `view` event carries: the newest reading, worked out, and the history.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Snapshot {
    /// Milliseconds since the epoch.
    pub at: u64,
    pub source: String,
    pub error: Option<String>,
    pub services: Vec<ServiceRow>,
    pub leaders: Leaders,
    pub history: Vec<Point>,
    pub events: Vec<EventRow>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ServiceRow {
    pub name: String,
    pub group: &'static str,
    pub address: String,
    pub alive: bool,
    pub role: Option<String>,
    pub term: Option<u64>,
    pub lag: Option<u64>,
    pub orders: Option<u64>,
    pub pid: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct Leaders {
    pub order: Option<LeaderRow>,
    pub catalog: Option<LeaderRow>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LeaderRow {
    pub name: String,
    pub term: u64,
}

/// The traffic at one reading, over the window before it.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Point {
    pub at: u64,
    pub orders_per_s: Option<f64>,
    pub queries_per_s: Option<f64>,
    pub hit_ratio: Option<f64>,
    pub query_p50_ms: Option<f64>,
    pub query_p99_ms: Option<f64>,
    pub order_p50_ms: Option<f64>,
    pub order_p99_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EventRow {
    pub at: u64,
    pub text: String,
}

/// The readings so far, worked out.
pub struct Board {
    source: String,
    watch: Watch,
    history: VecDeque<Point>,
}

impl Board {
    pub fn new(source: impl Into<String>) -> Self {
        Board {
            source: source.into(),
            watch: Watch::new(RATE_WINDOW),
            history: VecDeque::new(),
        }
    }

    /// Takes a reading made at `wall`, or notes why it failed, and returns what to show.
    pub fn observe(
        &mut self,
        reading: Result<Vec<ServiceStatus>, String>,
        at: Instant,
        wall: SystemTime,
    ) -> Snapshot {
        let error = match reading {
            Ok(rows) => {
                self.watch.observe(rows, at, wall);
                None
            }
            Err(e) => Some(e),
        };
        let view = self.watch.view();
        let point = point(&view, millis(wall));
        self.history.push_back(point);
        while self
            .history
            .front()
            .is_some_and(|p| p.at + (HISTORY.as_millis() as u64) < point.at)
        {
            self.history.pop_front();
        }
        Snapshot {
            at: point.at,
            source: self.source.clone(),
            error,
            services: view.services.iter().map(service_row).collect(),
            leaders: Leaders {
                order: view.leader.map(leader_row),
                catalog: view.catalog_leader.map(leader_row),
            },
            history: self.history.iter().copied().collect(),
            events: view
                .events
                .iter()
                .map(|e| EventRow {
                    at: millis(e.at),
                    text: e.text.clone(),
                })
                .collect(),
        }
    }
}

fn millis(wall: SystemTime) -> u64 {
    wall.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn point(view: &View, at: u64) -> Point {
    let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
    let (query, order): (&Latency, &Latency) = (&view.query, &view.order);
    Point {
        at,
        orders_per_s: view.orders_per_s,
        queries_per_s: view.queries_per_s,
        hit_ratio: view.hit_ratio,
        query_p50_ms: ms(query.p50),
        query_p99_ms: ms(query.p99),
        order_p50_ms: ms(order.p50),
        order_p99_ms: ms(order.p99),
    }
}

fn service_row(line: &crate::top::ServiceLine) -> ServiceRow {
    let status = &line.status;
    let group = match status.name {
        ServiceName::Order(_) => "order",
        ServiceName::Catalog(_) => "catalog",
        ServiceName::Frontend(_) => "frontend",
    };
    ServiceRow {
        name: status.name.to_string(),
        group,
        address: status.address.clone(),
        alive: status.alive,
        role: status.role.clone(),
        term: status.term,
        lag: line.lag,
        orders: status.orders,
        pid: status.pid,
    }
}

fn leader_row((name, term): (ServiceName, u64)) -> LeaderRow {
    LeaderRow {
        name: name.to_string(),
        term,
    }
}

/// The dashboard's web site: the page, and the stream of views.
#[derive(Clone)]
pub struct Site {
    views: watch::Receiver<Arc<String>>,
    closing: watch::Receiver<bool>,
}

impl Site {
    /// Reads every `interval` with `reader` on a thread of its own (a service that does not
    /// answer takes up to a second, and the site must not wait for it), until `closing` is set.
    pub fn start(
        source: String,
        mut reader: Reader,
        interval: Duration,
        closing: watch::Receiver<bool>,
    ) -> Site {
        let (tx, views) = watch::channel(Arc::new(String::new()));
        let board = Arc::new(Mutex::new(Board::new(source)));
        let stop = closing.clone();
        std::thread::spawn(move || {
            while !*stop.borrow() {
                let started = Instant::now();
                let reading = reader();
                let snapshot = board
                    .lock()
                    .observe(reading, Instant::now(), SystemTime::now());
                let json = serde_json::to_string(&snapshot).unwrap_or_default();
                if tx.send(Arc::new(json)).is_err() {
                    return;
                }
                std::thread::sleep(interval.saturating_sub(started.elapsed()));
            }
        });
        Site { views, closing }
    }

    /// Every view from the newest on, until the dashboard stops.
    fn events(&self) -> impl Stream<Item = Result<warp::sse::Event, Infallible>> + Send + 'static {
        let mut views = self.views.clone();
        views.mark_changed();
        let mut closing = self.closing.clone();
        let closed = async move {
            let _ = closing.wait_for(|closing| *closing).await;
        };
        futures_util::stream::unfold(views, |mut views| async move {
            loop {
                views.changed().await.ok()?;
                let json = views.borrow_and_update().clone();
                if !json.is_empty() {
                    let event = warp::sse::Event::default()
                        .event("view")
                        .data(json.as_str());
                    return Some((Ok(event), views));
                }
            }
        })
        .take_until(closed)
    }
}

impl http::Handler for Site {
    async fn handle(&self, request: Request) -> Response {
        let segments = request.segments();
        match (segments.as_slice(), &request.method) {
            ([""], &Method::GET) => http::html(PAGE),
            (["events"], &Method::GET) => warp::sse::reply(
                warp::sse::keep_alive()
                    .interval(Duration::from_secs(15))
                    .stream(self.events()),
            )
            .into_response(),
            (["view"], &Method::GET) => {
                let json = self.views.borrow().clone();
                let mut response = Response::new(json.as_str().to_owned().into());
                response.headers_mut().insert(
                    warp::http::header::CONTENT_TYPE,
                    warp::http::HeaderValue::from_static("application/json"),
                );
                response
            }
            ([""] | ["events"] | ["view"], m) => http::method_not_allowed(m, "GET"),
            _ => http::error(
                StatusCode::NOT_FOUND,
                &format!("no page at {} (the dashboard is at /)", request.path),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ServiceStatus;

    fn replica(id: u32, role: &str, term: u64, orders: u64) -> ServiceStatus {
        ServiceStatus {
            role: Some(role.into()),
            term: Some(term),
            orders: Some(orders),
            ..ServiceStatus::answering(
                ServiceName::Order(id),
                Some(100 + id),
                format!("127.0.0.1:{}", 8009 + id),
                true,
            )
        }
    }

    #[test]
    fn a_snapshot_has_the_services_the_leaders_the_history_and_the_events() {
        let mut board = Board::new("test");
        let t0 = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_secs(1_000_000);
        board.observe(
            Ok(vec![
                replica(3, "leader", 1, 10),
                replica(2, "follower", 1, 10),
            ]),
            t0,
            wall,
        );
        let failed = board.observe(
            Err("no answer".into()),
            t0 + Duration::from_secs(1),
            wall + Duration::from_secs(1),
        );
        assert_eq!(failed.error.as_deref(), Some("no answer"));
        let snapshot = board.observe(
            Ok(vec![replica(2, "leader", 2, 30)]),
            t0 + Duration::from_secs(2),
            wall + Duration::from_secs(2),
        );
        assert_eq!(snapshot.error, None);
        assert_eq!(snapshot.services.len(), 1);
        assert_eq!(snapshot.services[0].group, "order");
        assert_eq!(
            snapshot.leaders.order,
            Some(LeaderRow {
                name: "order-2".into(),
                term: 2
            })
        );
        assert_eq!(snapshot.history.len(), 3);
        assert_eq!(snapshot.history[2].orders_per_s, Some(10.0));
        assert_eq!(
            snapshot.events[0].text,
            "order-2 leads (term 2), after order-3"
        );
        // Points older than the history's reach are dropped.
        let later = board.observe(
            Ok(vec![replica(2, "leader", 2, 30)]),
            t0 + HISTORY + Duration::from_millis(1500),
            wall + HISTORY + Duration::from_millis(1500),
        );
        assert_eq!(later.history.len(), 2);
    }
}
