//! The catalog's HTTP routes: product lookups for the front end, buys for the order leader.

use warp::http::{Method, StatusCode};

use super::ledger::{Kind, Record};
use super::stock::BuyError;
use super::Catalog;
use crate::http::{self, Request, Response};
use crate::wire::{BuyBatch, BuyOutcome, CatalogHealth, ErrorDetail, PlaceOrder, MAX_BUY_BATCH};

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
            _ => http::not_found(&request.path),
        }
    }
}

impl Catalog {
    fn health(&self) -> Response {
        let state = self.state();
        http::data(CatalogHealth {
            products: state.stock.products().len() as u64,
            units_in_stock: state.stock.units_in_stock(),
        })
    }

    fn product(&self, segment: &str) -> Response {
        let Some(name) = http::decode_segment(segment) else {
            return http::error(StatusCode::BAD_REQUEST, "product name is not valid UTF-8");
        };
        match self.state().stock.get(&name) {
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
                                records.push(Record {
                                    kind: Kind::Buy,
                                    key: order.key.clone(),
                                    name: purchase.bought.name.clone(),
                                    quantity: purchase.bought.quantity,
                                });
                            }
                            BuyOutcome::Bought(purchase.bought)
                        }
                        Err(e) => BuyOutcome::Refused(refusal(e)),
                    },
                )
                .collect();
            // With nothing new, a repeated key's first buy may still be on its way to disk:
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
