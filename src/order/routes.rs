//! The order replica's HTTP routes: orders for the front end, and the engine's peer RPC.
//!
//! Replies to the front end say who should answer instead: 421 names the leader when this
//! replica does not lead (or, for an order query, does not hold the order), 502 means the
//! catalog failed (not this replica), 503 means the log cannot commit right now.

use warp::http::{Method, StatusCode};

use super::types::PlaceError;
use super::types::Settled;
use super::Replica;
use crate::http::{self, Request, Response};
use crate::timeouts;
use crate::wire::{OrderCreated, OrderInfo, PlaceOrder};

impl http::Handler for Replica {
    const MAX_BODY: usize = http::MAX_PEER_BODY_BYTES;

    fn readings(&self) -> Vec<crate::metrics::Reading> {
        let shared = &self.shared;
        let disk_full = shared.disk_full.load(std::sync::atomic::Ordering::Relaxed);
        let mut readings =
            crate::raft::replica::readings(&shared.raft, "order", &shared.log, disk_full);
        readings.push(crate::metrics::Reading::gauge(
            "orders",
            "Orders applied at this replica",
            shared.orders.read(|b| b.len()) as f64,
        ));
        readings
    }

    async fn handle(&self, request: Request) -> Response {
        let segments = request.segments();
        match (segments.as_slice(), &request.method) {
            (["health"], &Method::GET) => http::data(self.health()),
            (["health"], m) => http::method_not_allowed(m, "GET"),
            // Everything else is for the cluster's services only.
            _ if !request.presents(&self.shared.secret) => http::unauthorized(),
            (["orders"], &Method::POST) => {
                match http::parse_json::<PlaceOrder>(&request).and_then(|order| {
                    order.check().map_err(http::ApiError::bad_request)?;
                    Ok(order)
                }) {
                    // Once the catalog has sold, the outcome should be logged even if the front
                    // end stops waiting (its client went away), so it runs on its own task.
                    Ok(order) => {
                        let placer = self.shared.placer.clone();
                        match tokio::spawn(async move { placer.place(order).await }).await {
                            Ok(result) => placed(self.id(), result),
                            Err(e) => {
                                http::error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
                            }
                        }
                    }
                    Err(e) => e.into(),
                }
            }
            (["orders"], m) => http::method_not_allowed(m, "POST"),
            (["orders", number], &Method::GET) => order(self, number).await,
            (["orders", _], m) => http::method_not_allowed(m, "GET"),
            // The applied orders, exactly as orders-N.csv holds them, for `verify-logs --cluster`.
            (["internal", "orders"], &Method::GET) => {
                let file = self
                    .shared
                    .orders
                    .read(|book| super::orders_file::render(book.orders_from(0)));
                http::csv(file)
            }
            (["internal", "orders"], m) => http::method_not_allowed(m, "GET"),
            _ => match crate::raft::replica::peer_rpc(&self.shared.raft, &request).await {
                Some(response) => response,
                None => http::not_found(&request.path),
            },
        }
    }
}

/// The reply to an order: its number, the catalog's refusal, or who should be asked instead.
fn placed(id: u32, result: Result<Settled, PlaceError>) -> Response {
    match result {
        Ok(Settled::Placed { number }) => http::data(OrderCreated {
            order_number: number,
        }),
        Ok(Settled::Refused(refusal)) => http::error(
            StatusCode::from_u16(refusal.reason.status()).unwrap_or(StatusCode::CONFLICT),
            &refusal.message,
        ),
        Err(PlaceError::NotLeader { leader }) => not_leader(id, leader),
        Err(PlaceError::Catalog(message)) => http::error(StatusCode::BAD_GATEWAY, &message),
        Err(PlaceError::KeyReused(message)) => {
            http::error(StatusCode::UNPROCESSABLE_ENTITY, &message)
        }
        Err(PlaceError::NoQuorum(message) | PlaceError::Unavailable(message)) => {
            http::error(StatusCode::SERVICE_UNAVAILABLE, &message)
        }
    }
}

fn not_leader(id: u32, leader: Option<u64>) -> Response {
    let message = match leader {
        Some(leader) => format!("replica {id} is not the leader; replica {leader} leads"),
        None => format!("replica {id} is not the leader and knows of none"),
    };
    http::error(StatusCode::MISDIRECTED_REQUEST, &message)
}

/// An order by number, from the orders applied here. A follower that lacks it says so
/// with 421 (another replica may hold it); the leader first makes sure it is not behind,
/// and only then answers 404.
async fn order(replica: &Replica, segment: &str) -> Response {
    let Ok(number) = segment.parse::<u64>() else {
        return http::error(
            StatusCode::BAD_REQUEST,
            &format!("order number must be a non-negative integer, not '{segment}'"),
        );
    };
    let lookup = || {
        replica.shared.orders.read(|b| {
            b.order(number).map(|e| OrderInfo {
                number: e.number,
                name: e.name.clone(),
                quantity: e.quantity,
            })
        })
    };
    if let Some(info) = lookup() {
        return http::data(info);
    }
    let raft = &replica.shared.raft;
    match tokio::time::timeout(timeouts::COMMIT, raft.ensure_linearizable()).await {
        Ok(Ok(_)) => match lookup() {
            Some(info) => http::data(info),
            None => http::error(StatusCode::NOT_FOUND, &format!("no order number {number}")),
        },
        Ok(Err(e)) => match e.forward_to_leader() {
            Some(forward) => not_leader(replica.id(), forward.leader_id),
            None => http::error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        },
        Err(_) => http::error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(
                "replica {} cannot tell whether order {number} exists: no majority answers",
                replica.id()
            ),
        ),
    }
}
