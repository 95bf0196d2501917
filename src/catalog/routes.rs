//! The catalog's HTTP routes: product lookups for the front end, buys for the order leader.
//!
//! Every new buy stays *unconfirmed* until the order leader says the key's order is settled in
//! its log. The leader asks for the buys that have stayed unconfirmed longer than
//! [`crate::timeouts::UNCONFIRMED_AGE`] and places an order for each one its log lacks: so stock
//! taken for an order whose leader died before it could log it still ends up in the log.

use warp::http::{Method, StatusCode};

use super::ledger::{Kind, Record};
use super::stock::BuyError;
use super::{Catalog, Unconfirmed};
use crate::http::{self, Request, Response};
use crate::timeouts;
use crate::wire::{
    is_valid_key, BuyBatch, BuyOutcome, CatalogHealth, Confirm, ErrorDetail, PlaceOrder,
    StockSnapshot, UnconfirmedBuy, MAX_BUY_BATCH, MAX_CONFIRM_BATCH,
};
use std::time::Instant;

impl http::Handler for Catalog {
    /// Room for a full batch of buys.
    const MAX_BODY: usize = 64 * 1024;

    async fn handle(&self, request: Request) -> Response {
        let segments = request.segments();
        match (segments.as_slice(), &request.method) {
            (["health"], &Method::GET) => self.health(),
            (["health"], m) => http::method_not_allowed(m, "GET"),
            // Everything else is for the cluster's services only.
            _ if !request.presents(&self.shared.secret) => http::unauthorized(),
            (["products", name], &Method::GET) => self.product(name),
            (["products", _], m) => http::method_not_allowed(m, "GET"),
            (["internal", "buy"], &Method::POST) => self.buy(&request).await,
            (["internal", "buy"], m) => http::method_not_allowed(m, "POST"),
            (["internal", "stock"], &Method::GET) => http::data(self.state().stock.products()),
            (["internal", "stock"], m) => http::method_not_allowed(m, "GET"),
            (["internal", "stock-check"], &Method::GET) => {
                let state = self.state();
                http::data(StockSnapshot {
                    products: state.stock.products(),
                    totals: state.totals.clone(),
                })
            }
            (["internal", "stock-check"], m) => http::method_not_allowed(m, "GET"),
            (["internal", "unconfirmed"], &Method::GET) => self.unconfirmed(),
            (["internal", "unconfirmed"], m) => http::method_not_allowed(m, "GET"),
            (["internal", "confirm"], &Method::POST) => self.confirm(&request),
            (["internal", "confirm"], m) => http::method_not_allowed(m, "POST"),
            (["internal", "lease"], &Method::POST) => self.lease(&request),
            (["internal", "lease"], m) => http::method_not_allowed(m, "POST"),
            _ => http::not_found(&request.path),
        }
    }
}

impl Catalog {
    fn lease(&self, request: &Request) -> Response {
        let asked: crate::wire::LeaseRequest = match http::parse_json(request) {
            Ok(asked) => asked,
            Err(e) => return e.into(),
        };
        match self.renew_lease(asked.frontend, asked.emptied) {
            Some(grant) => http::data(grant),
            None => http::error(
                StatusCode::NOT_FOUND,
                &format!(
                    "front end {} is not in the catalog's cluster file",
                    asked.frontend
                ),
            ),
        }
    }

    fn health(&self) -> Response {
        let state = self.state();
        http::data(CatalogHealth {
            products: state.durable.len() as u64,
            units_in_stock: state.durable.values().map(|p| p.quantity).sum(),
        })
    }

    fn product(&self, segment: &str) -> Response {
        let Some(name) = http::decode_segment(segment) else {
            return http::error(StatusCode::BAD_REQUEST, "product name is not valid UTF-8");
        };
        match self.state().durable.get(&name.to_lowercase()) {
            Some(product) => http::data(product),
            None => unknown_product(&name),
        }
    }

    /// Buys for a batch of orders: each is taken or refused on its own, and the batch is
    /// answered once every change it made (and any earlier one) is durable and invalidated.
    async fn buy(&self, request: &Request) -> Response {
        let batch: BuyBatch = match http::parse_json(request) {
            Ok(batch) => batch,
            Err(e) => return e.into(),
        };
        if batch.orders.is_empty() || batch.orders.len() > MAX_BUY_BATCH {
            return http::error(
                StatusCode::BAD_REQUEST,
                &format!("a buy takes 1 to {MAX_BUY_BATCH} orders"),
            );
        }
        if let Some(Err(e)) = batch
            .orders
            .iter()
            .map(PlaceOrder::check)
            .find(Result::is_err)
        {
            return http::error(StatusCode::BAD_REQUEST, &e);
        }
        let (outcomes, seq) = {
            let mut state = self.state();
            let mut invalidations = Vec::new();
            let mut records = Vec::new();
            let outcomes: Vec<BuyOutcome> = batch
                .orders
                .iter()
                .map(
                    |order| match state.stock.buy(&order.key, &order.name, order.quantity) {
                        Ok(purchase) => {
                            // A repeated key changes nothing and records nothing.
                            if let Some(invalidation) = purchase.invalidation {
                                invalidations.push(invalidation);
                                state.unconfirmed.insert(
                                    order.key.clone(),
                                    Unconfirmed {
                                        name: purchase.bought.name.clone(),
                                        quantity: purchase.bought.quantity,
                                        since: Instant::now(),
                                    },
                                );
                                records.push(Record {
                                    kind: Kind::Buy,
                                    key: order.key.clone(),
                                    name: purchase.bought.name.clone(),
                                    quantity: purchase.bought.quantity,
                                });
                            }
                            BuyOutcome::Bought(purchase.bought)
                        }
                        Err(refused) => {
                            // A key's first refusal is its answer for good: recorded, so a
                            // retry after a restock cannot buy what was refused.
                            if refused.first {
                                records.push(refused.record(&order.key));
                            }
                            BuyOutcome::Refused(refusal(refused.error))
                        }
                    },
                )
                .collect();
            // With nothing new, a repeated key's first answer may still be on its way to disk:
            // wait for everything made so far.
            let seq = if records.is_empty() {
                state.changes
            } else {
                Self::changed(&mut state, invalidations, records)
            };
            (outcomes, seq)
        };
        match self.wait_durable(seq).await {
            Ok(()) => {
                tracing::debug!(orders = outcomes.len(), "bought");
                http::data(outcomes)
            }
            Err(e) => http::error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        }
    }
}

impl Catalog {
    /// Buys unconfirmed for longer than [`timeouts::UNCONFIRMED_AGE`], oldest first.
    fn unconfirmed(&self) -> Response {
        let state = self.state();
        let mut old: Vec<(&String, &Unconfirmed)> = state
            .unconfirmed
            .iter()
            .filter(|(_, u)| u.since.elapsed() >= timeouts::UNCONFIRMED_AGE)
            .collect();
        old.sort_by_key(|(_, u)| u.since);
        let buys: Vec<UnconfirmedBuy> = old
            .into_iter()
            .take(MAX_CONFIRM_BATCH)
            .map(|(key, u)| UnconfirmedBuy {
                key: key.clone(),
                name: u.name.clone(),
                quantity: u.quantity,
            })
            .collect();
        http::data(buys)
    }

    /// The order leader holds these keys' orders: forget them.
    fn confirm(&self, request: &Request) -> Response {
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
        let mut state = self.state();
        let records: Vec<Record> = confirm
            .keys
            .iter()
            .filter(|k| state.unconfirmed.remove(*k).is_some())
            .map(|key| Record {
                kind: Kind::Confirm,
                key: key.clone(),
                name: String::new(),
                quantity: 0,
            })
            .collect();
        let confirmed = records.len();
        // Into the ledger with the next flush, waited for by nobody: a confirmation a crash
        // loses only makes the order leader check that buy against its log once more.
        if !records.is_empty() {
            Self::changed(&mut state, [], records);
        }
        http::data(serde_json::json!({ "confirmed": confirmed }))
    }
}

fn refusal(error: BuyError) -> ErrorDetail {
    let (status, message) = match error {
        BuyError::UnknownProduct(name) => {
            (StatusCode::NOT_FOUND, format!("no product named '{name}'"))
        }
        BuyError::NotEnoughStock { name, available } => (
            StatusCode::CONFLICT,
            format!("not enough {name} in stock: {available} left"),
        ),
    };
    ErrorDetail {
        code: status.as_u16(),
        message,
    }
}

fn unknown_product(name: &str) -> Response {
    http::error(StatusCode::NOT_FOUND, &format!("no product named '{name}'"))
}
