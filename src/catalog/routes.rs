//! The catalog's HTTP routes: product lookups for the front end, buys for the order leader.

use warp::http::{Method, StatusCode};

use super::ledger::{Kind, Record};
use super::stock::BuyError;
use super::Catalog;
use crate::http::{self, Request, Response};
use crate::wire::{CatalogHealth, PlaceOrder};

impl http::Handler for Catalog {
    async fn handle(&self, request: Request) -> Response {
        let segments = request.segments();
        match (segments.as_slice(), &request.method) {
            (["health"], &Method::GET) => self.health(),
            (["health"], m) => http::method_not_allowed(m, "GET"),
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

    async fn buy(&self, request: &Request) -> Response {
        let order: PlaceOrder = match http::parse_json(request) {
            Ok(order) => order,
            Err(e) => return e.into(),
        };
        let outcome = {
            let mut state = self.state();
            state
                .stock
                .buy(&order.key, &order.name, order.quantity)
                .map(|purchase| {
                    // A repeated key changed nothing, but its first buy may still be on its way
                    // to disk: wait for everything made so far.
                    let seq = match purchase.invalidation {
                        Some(invalidation) => {
                            let record = Record {
                                kind: Kind::Buy,
                                key: order.key.clone(),
                                name: purchase.bought.name.clone(),
                                quantity: purchase.bought.quantity,
                            };
                            Self::changed(&mut state, [invalidation], [record])
                        }
                        None => state.changes,
                    };
                    (purchase.bought, seq)
                })
        };
        match outcome {
            Ok((bought, seq)) => match self.wait_durable(seq).await {
                Ok(()) => {
                    tracing::debug!(product = %bought.name, quantity = bought.quantity, key = %order.key, "bought");
                    http::data(bought)
                }
                Err(e) => http::error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
            },
            Err(BuyError::UnknownProduct(name)) => unknown_product(&name),
            Err(BuyError::NotEnoughStock { name, available }) => http::error(
                StatusCode::CONFLICT,
                &format!("not enough {name} in stock: {available} left"),
            ),
        }
    }
}

fn unknown_product(name: &str) -> Response {
    http::error(StatusCode::NOT_FOUND, &format!("no product named '{name}'"))
}
