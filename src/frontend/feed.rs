//! The stream of stock changes that storefront pages follow (`GET /events`, server-sent
//! events). It is fed by what the front end already receives: each invalidation the catalog
//! pushes names the toys whose stock changed. The front end gathers those names and, at most
//! every [`TICK`], reads the product list once (from its cache, or the catalog) and sends every
//! page the changed toys with their new stock, so that however many pages are open and however
//! fast toys sell, the pages cost the front end a few list reads a second and ask it nothing.
//! When changes may have been missed (the cache lease was lost, or a page fell behind), pages
//! are told to fetch the whole list again. Nothing is gathered or sent while no page is open.

use parking_lot::Mutex;
use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tokio::sync::{broadcast, watch, Notify};
use warp::Reply;

/// Changes a slow page may fall behind by before it is told to fetch everything again.
const BACKLOG: usize = 1024;
/// A comment sent this often keeps proxies and browsers from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// The shortest time between two stock events: a page follows a buy within this and one read.
pub const TICK: Duration = Duration::from_millis(250);

#[derive(Debug, Clone)]
enum Change {
    /// `{"products":[…]}`: the toys whose stock changed, as they are now.
    Stock(Arc<str>),
    /// Changes may have been missed: fetch every toy again.
    Reset,
}

pub struct StockFeed {
    changes: broadcast::Sender<Change>,
    /// Set when the front end shuts down, which ends every stream.
    closing: watch::Sender<bool>,
    /// The (lower-case) names of the toys changed since the last stock event.
    changed: Mutex<BTreeSet<String>>,
    wake: Notify,
}

impl Default for StockFeed {
    fn default() -> Self {
        StockFeed {
            changes: broadcast::channel(BACKLOG).0,
            closing: watch::channel(false).0,
            changed: Mutex::new(BTreeSet::new()),
            wake: Notify::new(),
        }
    }
}

impl StockFeed {
    /// The stock of the toys `names` (lower case) changed.
    pub fn changed<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        if self.changes.receiver_count() == 0 {
            return;
        }
        self.lock().extend(names.into_iter().map(str::to_string));
        self.wake.notify_one();
    }

    /// Waits until some toy changed while a page was open, and returns the changed names.
    pub async fn next_changes(&self) -> BTreeSet<String> {
        loop {
            let woken = self.wake.notified();
            let names = std::mem::take(&mut *self.lock());
            if !names.is_empty() {
                return names;
            }
            woken.await;
        }
    }

    /// Sends every page `products`, the changed toys as they are now.
    pub fn publish(&self, products: &[crate::wire::Product]) {
        let json = serde_json::json!({ "products": products }).to_string();
        let _ = self.changes.send(Change::Stock(json.into()));
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, BTreeSet<String>> {
        self.changed.lock()
    }

    /// Changes may have been missed.
    pub fn reset(&self) {
        let _ = self.changes.send(Change::Reset);
    }

    /// Pages following the feed now.
    pub fn followers(&self) -> usize {
        self.changes.receiver_count()
    }

    /// Ends every stream, so that a shutdown does not wait for open pages.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// A page's stream: every change from now on, until the front end shuts down.
    pub fn reply(&self) -> crate::http::Response {
        let events = self.events();
        warp::sse::reply(warp::sse::keep_alive().interval(KEEP_ALIVE).stream(events))
            .into_response()
    }

    fn events(&self) -> impl Stream<Item = Result<warp::sse::Event, Infallible>> + Send + 'static {
        let receiver = self.changes.subscribe();
        let mut closing = self.closing.subscribe();
        let closed = async move {
            let _ = closing.wait_for(|closing| *closing).await;
        };
        futures_util::stream::unfold(receiver, |mut receiver| async move {
            let change = match receiver.recv().await {
                Ok(change) => change,
                Err(broadcast::error::RecvError::Lagged(_)) => Change::Reset,
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            Some((Ok(event(&change)), receiver))
        })
        .take_until(closed)
    }
}

fn event(change: &Change) -> warp::sse::Event {
    match change {
        Change::Stock(json) => warp::sse::Event::default().event("stock").data(&**json),
        Change::Reset => warp::sse::Event::default().event("reset").data("{}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_page_hears_changes_a_lag_becomes_a_reset_and_closing_ends_it() {
        let feed = StockFeed::default();
        feed.changed(["nobody listens"]);
        let mut events = Box::pin(feed.events());
        assert_eq!(feed.followers(), 1);
        feed.changed(["tux", "whale"]);
        feed.changed(["tux"]);
        let names: Vec<String> = feed.next_changes().await.into_iter().collect();
        assert_eq!(
            names,
            ["tux", "whale"],
            "gathered once each, and not before a page"
        );
        let tux = crate::wire::Product {
            name: "Tux".into(),
            price: 25.99,
            quantity: 97,
        };
        feed.publish(std::slice::from_ref(&tux));
        let first = format!("{:?}", events.next().await.unwrap().unwrap());
        assert!(first.contains("stock") && first.contains("97"), "{first}");
        for _ in 0..BACKLOG + 1 {
            feed.publish(std::slice::from_ref(&tux));
        }
        let lagged = events.next().await.unwrap().unwrap();
        assert!(format!("{lagged:?}").contains("reset"), "{lagged:?}");
        feed.close();
        assert!(events.next().await.is_none(), "closing ends the stream");
    }
}
