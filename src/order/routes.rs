//! The order replica's HTTP routes: orders for the front end, and the peer protocol.

use std::time::Duration;

use warp::http::{Method, StatusCode};

use super::buyer::BuyError;
use super::replication::AppendOutcome;
use super::Replica;
use crate::http::{self, Request, Response};
use crate::wire::{
    Entry, LeaderAnnouncement, OrderCreated, OrderInfo, PlaceOrder, Replicate, SyncRequest,
};

/// How long an order waits to be durable on a majority before the leader gives up with 503.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(10);

impl http::Handler for Replica {
    const MAX_BODY: usize = http::MAX_PEER_BODY_BYTES;

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
                    // Once the catalog has sold, the order must reach the log even if the front end
                    // stops waiting (its client went away): else stock is gone with no order for it.
                    Ok(order) => {
                        let replica = self.clone();
                        run_to_end(async move { replica.place(order).await })
                            .await
                            .unwrap_or_else(|e| http::error(StatusCode::INTERNAL_SERVER_ERROR, &e))
                    }
                    Err(e) => e.into(),
                }
            }
            (["orders"], m) => http::method_not_allowed(m, "POST"),
            (["orders", number], &Method::GET) => self.order(number).await,
            (["orders", _], m) => http::method_not_allowed(m, "GET"),
            (["internal", "leader"], &Method::POST) => {
                match http::parse_json::<LeaderAnnouncement>(&request) {
                    // Taking over leadership must finish even if the front end stops waiting.
                    Ok(a) => {
                        let replica = self.clone();
                        match run_to_end(async move { replica.announced(a).await })
                            .await
                            .and_then(|r| r)
                        {
                            Ok(()) => http::data(self.health()),
                            Err(e) => http::error(StatusCode::CONFLICT, &e),
                        }
                    }
                    Err(e) => e.into(),
                }
            }
            (["internal", "replicate"], &Method::POST) => {
                match http::parse_json::<Replicate>(&request) {
                    Ok(r) => match self.apply_replicate(r).await {
                        Ok(AppendOutcome::Applied(reply)) => http::data(reply),
                        Ok(AppendOutcome::StaleTerm(term)) => http::error(
                            StatusCode::CONFLICT,
                            &format!("stale leader: this replica is in term {term}"),
                        ),
                        Err(e) => http::error(StatusCode::BAD_REQUEST, &e),
                    },
                    Err(e) => e.into(),
                }
            }
            (["internal", "sync"], &Method::POST) => {
                match http::parse_json::<SyncRequest>(&request) {
                    Ok(r) => match self.sync_reply(&r) {
                        Some(reply) => http::data(reply),
                        None => http::error(
                            StatusCode::CONFLICT,
                            "the logs share no position in the tail sent",
                        ),
                    },
                    Err(e) => e.into(),
                }
            }
            (["internal", "leader" | "replicate" | "sync"], m) => {
                http::method_not_allowed(m, "POST")
            }
            _ => http::not_found(&request.path),
        }
    }
}

impl Replica {
    /// Leader: buys in the catalog, appends, replicates, answers once a majority has it.
    async fn place(&self, order: PlaceOrder) -> Response {
        let Some(term) = self.leading_term() else {
            return not_leader(self.id());
        };
        let _claim = self.claim_key(&order.key).await;
        let known = self.state().log.number_of(&order.key);
        if let Some(number) = known {
            return self.answer_when_committed(number).await;
        }
        let bought = match self.shared.buyer.buy(order.clone()).await {
            Ok(bought) => bought,
            Err(BuyError::Refused { status, message }) => {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::CONFLICT);
                return http::error(status, &message);
            }
            Err(BuyError::Unavailable(message)) => {
                return http::error(StatusCode::SERVICE_UNAVAILABLE, &message)
            }
        };
        crate::fault::point(crate::fault::AFTER_BUY);
        let number = {
            let mut state = self.state();
            if state.term != term || state.role != crate::wire::Role::Leader {
                return not_leader(self.id());
            }
            let number = state.log.len();
            state.log.append(Entry {
                number,
                name: bought.name,
                quantity: bought.quantity,
                term,
                key: order.key.clone(),
            });
            number
        };
        self.shared.appended.send_replace(number + 1);
        if let Err(e) = self.persist().await {
            return http::error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
        }
        self.answer_when_committed(number).await
    }

    async fn answer_when_committed(&self, number: u64) -> Response {
        if self.wait_committed(number, COMMIT_TIMEOUT).await {
            http::data(OrderCreated {
                order_number: number,
            })
        } else {
            http::error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("order {number} is not yet on a second replica; no follower answers"),
            )
        }
    }

    /// An order by number: a leader shows only committed orders, a follower what it holds.
    async fn order(&self, segment: &str) -> Response {
        let Ok(number) = segment.parse::<u64>() else {
            return http::error(
                StatusCode::BAD_REQUEST,
                &format!("order number must be a non-negative integer, not '{segment}'"),
            );
        };
        let (exists, leading) = {
            let state = self.state();
            (
                number < state.log.len(),
                state.role == crate::wire::Role::Leader,
            )
        };
        if !exists || (leading && !self.wait_committed(number, COMMIT_TIMEOUT).await) {
            return http::error(StatusCode::NOT_FOUND, &format!("no order number {number}"));
        }
        match self.state().log.get(number) {
            Some(entry) => http::data(OrderInfo {
                number: entry.number,
                name: entry.name.clone(),
                quantity: entry.quantity,
            }),
            None => http::error(StatusCode::NOT_FOUND, &format!("no order number {number}")),
        }
    }
}

/// Runs `work` on a task of its own, so that it completes even when the request is cancelled.
async fn run_to_end<T: Send + 'static>(
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T, String> {
    tokio::spawn(work)
        .await
        .map_err(|e| format!("stopped: {e}"))
}

fn not_leader(id: u32) -> Response {
    http::error(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("replica {id} is not the leader"),
    )
}
