//! The stream of stock changes that storefront pages follow (`GET /events`, server-sent
//! events). It is fed by what the front end already receives: each invalidation the catalog
//! pushes names the toys whose stock changed, and a page fetches only those. When changes may
//! have been missed (the cache lease was lost, or a page fell behind), the page is told to
//! fetch the whole list again. Nothing is sent, and nothing costs more than a lock, while no
//! page is open.

use std::convert::Infallible;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tokio::sync::{broadcast, watch};
use warp::Reply;

/// Changes a slow page may fall behind by before it is told to fetch everything again.
const BACKLOG: usize = 1024;
/// A comment sent this often keeps proxies and browsers from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Debug, Clone)]
enum Change {
    /// The stock of the toy with this (lower-case) name changed.
    Stock(String),
    /// Changes may have been missed: fetch every toy again.
    Reset,
}

pub struct StockFeed {
    changes: broadcast::Sender<Change>,
    /// Set when the front end shuts down, which ends every stream.
    closing: watch::Sender<bool>,
}

impl Default for StockFeed {
    fn default() -> Self {
        StockFeed {
            changes: broadcast::channel(BACKLOG).0,
            closing: watch::channel(false).0,
        }
    }
}

impl StockFeed {
    /// The stock of `name` changed.
    pub fn changed(&self, name: &str) {
        if self.changes.receiver_count() > 0 {
            let _ = self.changes.send(Change::Stock(name.to_string()));
        }
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
        Change::Stock(name) => warp::sse::Event::default()
            .event("stock")
            .data(serde_json::json!({ "name": name }).to_string()),
        Change::Reset => warp::sse::Event::default().event("reset").data("{}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_page_hears_changes_a_lag_becomes_a_reset_and_closing_ends_it() {
        let feed = StockFeed::default();
        feed.changed("nobody listens");
        let mut events = Box::pin(feed.events());
        assert_eq!(feed.followers(), 1);
        feed.changed("tux");
        let first = events.next().await.unwrap().unwrap();
        assert!(format!("{first:?}").contains("tux"), "{first:?}");
        for _ in 0..BACKLOG + 1 {
            feed.changed("whale");
        }
        let lagged = events.next().await.unwrap().unwrap();
        assert!(format!("{lagged:?}").contains("reset"), "{lagged:?}");
        feed.close();
        assert!(events.next().await.is_none(), "closing ends the stream");
    }
}
