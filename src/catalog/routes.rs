//! The catalog replica's HTTP routes: product reads and cache leases for the front ends, buys
//! and confirmations for the order leader, the engine's peer RPC.
//!
//! Only the leader answers the service routes; any other replica says 421 and which replica
//! leads, and a leader that cannot reach a majority says 503, so that callers move on
//! ([`crate::group_client`]).
//!
//! Every sale stays *unconfirmed* until the order leader says the key's outcome is in its log.
//! The order leader asks for the sales that have stayed unconfirmed longer than
//! [`timeouts::UNCONFIRMED_AGE`] and places an order for each one its log lacks: stock taken for
//! an order whose leader died before it logged it still ends up in the order log.

use std::sync::Arc;

use warp::http::{Method, StatusCode};

use super::book::{CatalogCommand, CatalogReply};
use super::leadership::{self, Leadership};
use super::Catalog;
use crate::http::{self, Request, Response};
use crate::raft::proposer::WriteError;
use crate::timeouts;
use crate::wire::{
    is_valid_key, BuyBatch, Confirm, LeaseGrant, LeaseRequest, PlaceOrder, StockSnapshot,
    UnconfirmedBuy, MAX_BUY_BATCH, MAX_CONFIRM_BATCH,
};

impl http::Handler for Catalog {
    const MAX_BODY: usize = http::MAX_PEER_BODY_BYTES;

    fn readings(&self) -> Vec<crate::metrics::Reading> {
        use crate::metrics::Reading;
        let shared = &self.shared;
        let disk_full = shared.disk_full.load(std::sync::atomic::Ordering::Relaxed);
        let mut readings =
            crate::raft::replica::readings(&shared.raft, "catalog", &shared.log, disk_full);
        let (products, units) = shared
            .book
            .read(|b| (b.products().len() as f64, b.units_in_stock() as f64));
        readings.push(Reading::gauge(
            "catalog_products",
            "Toys in the catalog",
            products,
        ));
        readings.push(Reading::gauge(
            "catalog_units_in_stock",
            "Units of every toy in stock, as applied at this replica",
            units,
        ));
        readings.push(Reading::counter(
            "catalog_restocks",
            "Toys restocked by restocks applied at this replica since it started",
            shared.restocked.load(std::sync::atomic::Ordering::Relaxed),
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
            (["products"], &Method::GET) => products(self).await,
            (["products"], m) => http::method_not_allowed(m, "GET"),
            (["products", name], &Method::GET) => product(self, name).await,
            (["products", _], m) => http::method_not_allowed(m, "GET"),
            (["internal", "buy"], &Method::POST) => buy(self, &request).await,
            (["internal", "buy"], m) => http::method_not_allowed(m, "POST"),
            (["internal", "stock-check"], &Method::GET) => stock_check(self).await,
            (["internal", "stock-check"], m) => http::method_not_allowed(m, "GET"),
            // The stock applied here, exactly as catalog-N.csv holds it, from any replica.
            (["internal", "stock-file"], &Method::GET) => {
                http::csv(self.shared.book.read(|b| b.to_csv()))
            }
            (["internal", "stock-file"], m) => http::method_not_allowed(m, "GET"),
            (["internal", "unconfirmed"], &Method::GET) => unconfirmed(self).await,
            (["internal", "unconfirmed"], m) => http::method_not_allowed(m, "GET"),
            (["internal", "confirm"], &Method::POST) => confirm(self, &request).await,
            (["internal", "confirm"], m) => http::method_not_allowed(m, "POST"),
            (["internal", "lease"], &Method::POST) => lease(self, &request).await,
            (["internal", "lease"], m) => http::method_not_allowed(m, "POST"),
            _ => match crate::raft::replica::peer_rpc(&self.shared.raft, &request).await {
                Some(response) => response,
                None => http::not_found(&request.path),
            },
        }
    }
}

/// This replica's leadership, checked as a read needs it, or the reply that says why not.
async fn checked(catalog: &Catalog) -> Result<Arc<Leadership>, Response> {
    leadership::check_leading(catalog)
        .await
        .map_err(|e| refusal(catalog, e))
}

fn refusal(catalog: &Catalog, e: WriteError) -> Response {
    match e {
        WriteError::NotLeader { leader } => {
            let message = match leader {
                Some(leader) => format!(
                    "catalog replica {} is not the leader; catalog replica {leader} leads",
                    catalog.id()
                ),
                None => format!(
                    "catalog replica {} is not the leader and knows of none",
                    catalog.id()
                ),
            };
            http::error(StatusCode::MISDIRECTED_REQUEST, &message)
        }
        WriteError::Unavailable(message) => http::error(StatusCode::SERVICE_UNAVAILABLE, &message),
    }
}

/// A new group's first moments, before its leader has committed the stock: 503, so that
/// the caller asks again rather than hear that no toy exists.
fn not_seeded(catalog: &Catalog) -> Option<Response> {
    (!catalog.shared.book.read(|b| b.is_seeded())).then(|| {
        http::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the catalog has no stock yet: its first leader is committing it",
        )
    })
}

async fn lease(catalog: &Catalog, request: &Request) -> Response {
    let asked: LeaseRequest = match http::parse_json(request) {
        Ok(asked) => asked,
        Err(e) => return e.into(),
    };
    let leadership = match checked(catalog).await {
        Ok(leadership) => leadership,
        Err(response) => return response,
    };
    match leadership.leases.renew(asked.frontend, asked.emptied) {
        Some(reset) => {
            if reset.is_some() {
                tracing::debug!(
                    "front end {} renews its cache lease and empties its cache",
                    asked.frontend
                );
            }
            http::data(LeaseGrant { reset })
        }
        None => http::error(
            StatusCode::NOT_FOUND,
            &format!(
                "front end {} is not in the catalog's cluster file",
                asked.frontend
            ),
        ),
    }
}

/// Every product, as the leader has applied it: one consistent state of the book.
async fn products(catalog: &Catalog) -> Response {
    if let Err(response) = checked(catalog).await {
        return response;
    }
    if let Some(response) = not_seeded(catalog) {
        return response;
    }
    http::data(catalog.shared.book.read(|b| b.products()))
}

async fn product(catalog: &Catalog, segment: &str) -> Response {
    let Some(name) = http::decode_segment(segment) else {
        return http::error(StatusCode::BAD_REQUEST, "product name is not valid UTF-8");
    };
    if let Err(response) = checked(catalog).await {
        return response;
    }
    if let Some(response) = not_seeded(catalog) {
        return response;
    }
    match catalog.shared.book.read(|b| b.product(&name)) {
        Some(product) => http::data(product),
        None => http::error(StatusCode::NOT_FOUND, &format!("no product named '{name}'")),
    }
}

/// Buys for a batch of orders: each is sold or refused on its own, for good, in one
/// committed entry; the batch is answered once the entry's invalidations (and every earlier
/// one's) are in the front ends' caches or waited out.
async fn buy(catalog: &Catalog, request: &Request) -> Response {
    let batch = match buy_batch(request) {
        Ok(batch) => batch,
        Err(e) => return e.into(),
    };
    let leadership = match leadership::leading(catalog) {
        Ok(leadership) => leadership,
        Err(e) => return refusal(catalog, e),
    };
    // A key's answer is for good: none is given from a catalog without its stock.
    if let Some(response) = not_seeded(catalog) {
        return response;
    }
    let command = CatalogCommand::Buy {
        term: batch.term,
        as_of: batch.as_of,
        orders: batch.orders,
    };
    let written = match catalog.shared.proposer.propose(command).await {
        Ok(written) => written,
        Err(e) => return refusal(catalog, e),
    };
    match written.reply {
        CatalogReply::Bought { outcomes, .. } => {
            if !leadership::invalidated(catalog, written.index).await {
                return http::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the catalog could not invalidate the front ends' caches in time",
                );
            }
            tokio::time::sleep_until(leadership.earlier_leases_end).await;
            tracing::debug!(orders = outcomes.len(), "bought");
            http::data(outcomes)
        }
        CatalogReply::Stale { fence } => http::error(
            StatusCode::PRECONDITION_FAILED,
            &format!(
                "the order leader of term {} was deposed: the catalog has heard from term \
                 {fence}",
                batch.term
            ),
        ),
        CatalogReply::TooOld { floor } => http::error(
            StatusCode::PRECONDITION_FAILED,
            &format!(
                "the buy was checked against the order log at index {}, before the \
                 catalog's floor {floor}: check the keys again and ask with a fresh index",
                batch.as_of
            ),
        ),
        other => http::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("a buy was applied as {other:?}"),
        ),
    }
}

/// The stock, its totals and the unconfirmed sales, at one instant of the committed state.
async fn stock_check(catalog: &Catalog) -> Response {
    if let Err(response) = checked(catalog).await {
        return response;
    }
    http::data(catalog.shared.book.read(|b| StockSnapshot {
        products: b.products(),
        toys: b.totals(),
        unconfirmed: b.unconfirmed_buys(),
    }))
}

/// Sales this leader has seen unconfirmed for longer than [`timeouts::UNCONFIRMED_AGE`],
/// oldest first.
async fn unconfirmed(catalog: &Catalog) -> Response {
    if let Err(response) = checked(catalog).await {
        return response;
    }
    let open = catalog.shared.book.read(|b| b.unconfirmed_buys());
    let now = tokio::time::Instant::now();
    let open_keys: std::collections::HashSet<&str> = open.iter().map(|b| b.key.as_str()).collect();
    let mut since = catalog.shared.unconfirmed_since.lock();
    since.retain(|key, _| open_keys.contains(key.as_str()));
    let mut old: Vec<(tokio::time::Instant, UnconfirmedBuy)> = open
        .into_iter()
        .map(|buy| (*since.entry(buy.key.clone()).or_insert(now), buy))
        .filter(|(seen, _)| now.duration_since(*seen) >= timeouts::UNCONFIRMED_AGE)
        .collect();
    drop(since);
    old.sort_by_key(|(seen, _)| *seen);
    let buys: Vec<UnconfirmedBuy> = old
        .into_iter()
        .take(MAX_CONFIRM_BATCH)
        .map(|(_, buy)| buy)
        .collect();
    http::data(buys)
}

/// The order leader holds these keys' outcomes in its log: retire them.
async fn confirm(catalog: &Catalog, request: &Request) -> Response {
    let confirm: Confirm = match http::parse_json(request) {
        Ok(confirm) => confirm,
        Err(e) => return e.into(),
    };
    if confirm.keys.len() > MAX_CONFIRM_BATCH || !confirm.keys.iter().all(|k| is_valid_key(k)) {
        return http::error(
            StatusCode::BAD_REQUEST,
            &format!("a confirmation takes up to {MAX_CONFIRM_BATCH} valid keys"),
        );
    }
    if let Err(e) = leadership::leading(catalog) {
        return refusal(catalog, e);
    }
    let count = confirm.keys.len();
    let command = CatalogCommand::Confirm {
        term: confirm.term,
        settled_at: confirm.settled_at,
        keys: confirm.keys,
    };
    match leadership::propose(catalog, command).await {
        Ok(_) => http::data(serde_json::json!({ "confirmed": count })),
        Err(e) => refusal(catalog, e),
    }
}

/// A buy's batch as the body gives it, with 1 to [`MAX_BUY_BATCH`] orders that each pass the
/// checks a front end makes; or the 400 that says what is wrong.
fn buy_batch(request: &Request) -> Result<BuyBatch, http::ApiError> {
    let batch: BuyBatch = http::parse_json(request)?;
    if batch.orders.is_empty() || batch.orders.len() > MAX_BUY_BATCH {
        return Err(http::ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("a buy takes 1 to {MAX_BUY_BATCH} orders"),
        ));
    }
    if let Some(Err(e)) = batch
        .orders
        .iter()
        .map(PlaceOrder::check)
        .find(Result::is_err)
    {
        return Err(http::ApiError::new(StatusCode::BAD_REQUEST, e));
    }
    Ok(batch)
}
