//! The leader's calls to the catalog group's leader. Buys are batched: orders that arrive while
//! earlier calls are in flight go together in the next call. Alone, an order is sent at once;
//! under load, many share one call and one committed entry in the catalog. Confirmations (this
//! key's outcome is in the log) are batched the same way, off the order's path. Every call
//! carries this leader's term, so the catalog can tell a deposed leader's calls.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::batch::{self, send_in_batches};

use crate::group_client::GroupClient;
use crate::peer::CallError;
use crate::wire::{
    Bought, BuyBatch, BuyOutcome, Confirm, Data, PlaceOrder, Refused, UnconfirmedBuy,
    MAX_BUY_BATCH, MAX_CONFIRM_BATCH,
};

/// Calls to the catalog in flight at once. The catalog writes one entry at a time anyway, and
/// under load the machine's cores, not the pipeline, limit orders: one call at a time makes the
/// batches (and so the catalog's entries, messages and fsyncs per order) fewer and larger.
/// Measured at 32 connections: 1 call gave 1,610–1,649 orders/s, 2 gave 1,229–1,524 and 4 gave
/// 1,055–1,263, in the same runs; one connection is alone in its call whatever the number.
const CALLS_IN_FLIGHT: usize = 1;
/// How long confirmations gather after one is sent. A confirmation is an entry in the catalog's
/// log, written one entry at a time with the buys: sent at once, each would hold up the next
/// order's buy for a commit; gathered, a few entries a second carry them all. Nobody waits for
/// them (a lost one only makes the sweep check the sale against the log once more).
const CONFIRM_GATHER: std::time::Duration = std::time::Duration::from_millis(100);

/// Why an order was not bought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuyError {
    /// The catalog refused it, for good.
    Refused(Refused),
    /// The catalog group's leader has heard from a newer order leader: this one was deposed.
    Deposed(String),
    /// The catalog did not answer as it should; the order may be retried with its key.
    Unavailable(String),
}

/// An order to buy for, and who asks: the leader's term, and the order-log index as of which it
/// saw the key unsettled.
type Pending = batch::Pending<(PlaceOrder, Asker), Result<Bought, BuyError>>;

/// The order leader that asks, as the catalog's rules need it (see [`crate::catalog::book`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asker {
    pub term: u64,
    /// For a buy: the index as of which the key was not settled. For a confirmation: an index
    /// by which its outcome was applied.
    pub index: u64,
}

/// A cheap-to-clone handle to the batching tasks.
#[derive(Clone)]
pub struct Buyer {
    queue: mpsc::UnboundedSender<Pending>,
    confirmations: mpsc::UnboundedSender<(String, Asker)>,
    catalog: Arc<GroupClient>,
}

/// The batching tasks' ends of the queues, until [`Batcher::run`] is spawned.
pub struct Batcher {
    queue: mpsc::UnboundedReceiver<Pending>,
    confirmations: mpsc::UnboundedReceiver<(String, Asker)>,
    catalog: Arc<GroupClient>,
}

/// A buyer for the catalog group, and the task that must run for it to buy.
pub fn buyer(catalog: Arc<GroupClient>) -> (Buyer, Batcher) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (confirm_tx, confirm_rx) = mpsc::unbounded_channel();
    (
        Buyer {
            queue: tx,
            confirmations: confirm_tx,
            catalog: catalog.clone(),
        },
        Batcher {
            queue: rx,
            confirmations: confirm_rx,
            catalog,
        },
    )
}

impl Buyer {
    /// Buys for `order` in the catalog, as `asker`, in whatever batch it lands.
    pub async fn buy(&self, order: PlaceOrder, asker: Asker) -> Result<Bought, BuyError> {
        batch::submit(&self.queue, (order, asker), || {
            Err(BuyError::Unavailable("the replica is stopping".into()))
        })
        .await
    }

    /// Tells the catalog, soon and in a batch, that `key`'s outcome is settled in the log, as
    /// `asker` applied it.
    pub fn confirm(&self, key: String, asker: Asker) {
        // Without the task there is nobody to tell; the catalog will ask again.
        let _ = self.confirmations.send((key, asker));
    }

    /// The catalog's sales that have stayed unconfirmed long enough to be orphans.
    pub async fn unconfirmed(&self) -> Result<Vec<UnconfirmedBuy>, BuyError> {
        self.catalog
            .get::<Data<Vec<UnconfirmedBuy>>>(
                "/internal/unconfirmed",
                crate::timeouts::CATALOG_CALL,
            )
            .await
            .map(|d| d.data)
            .map_err(unavailable)
    }
}

impl Batcher {
    /// Sends the queued buys and confirmations in batches until every [`Buyer`] is gone.
    pub async fn run(self) {
        let Batcher {
            queue,
            confirmations,
            catalog,
        } = self;
        let confirming = confirm_in_batches(confirmations, catalog.clone());
        let buying = buy_in_batches(queue, catalog);
        tokio::join!(confirming, buying);
    }
}

async fn confirm_in_batches(
    queue: mpsc::UnboundedReceiver<(String, Asker)>,
    catalog: Arc<GroupClient>,
) {
    send_in_batches(queue, MAX_CONFIRM_BATCH, 1, |confirmations| {
        let catalog = catalog.clone();
        async move {
            let count = confirmations.len();
            let term = confirmations.iter().map(|(_, a)| a.term).max().unwrap_or(0);
            let settled_at = confirmations
                .iter()
                .map(|(_, a)| a.index)
                .max()
                .unwrap_or(0);
            let keys = confirmations.into_iter().map(|(key, _)| key).collect();
            let confirm = Confirm {
                keys,
                term,
                settled_at,
            };
            let within = crate::timeouts::CATALOG_CALL;
            if let Err(e) = catalog
                .post::<_, serde_json::Value>("/internal/confirm", &confirm, within)
                .await
            {
                // Harmless: the catalog lists the sales again later, and the leader confirms.
                tracing::debug!("confirming {count} orders to the catalog: {e}");
            }
            // The next batch gathers meanwhile.
            tokio::time::sleep(CONFIRM_GATHER).await;
        }
    })
    .await
}

async fn buy_in_batches(queue: mpsc::UnboundedReceiver<Pending>, catalog: Arc<GroupClient>) {
    send_in_batches(queue, MAX_BUY_BATCH, CALLS_IN_FLIGHT, |batch| {
        let catalog = catalog.clone();
        async move { send(&catalog, batch).await }
    })
    .await
}

async fn send(catalog: &GroupClient, batch: Vec<Pending>) {
    let (asked, reply) = batch::split(batch);
    let count = asked.len();
    // One leader asks, and its term only grows: the newest term of the batch is its own. Every
    // key was unsettled as of the oldest index of the batch.
    let term = asked.iter().map(|(_, a)| a.term).max().unwrap_or(0);
    let as_of = asked.iter().map(|(_, a)| a.index).min().unwrap_or(0);
    let orders = asked.into_iter().map(|(order, _)| order).collect();
    let answer = catalog
        .post::<_, Data<Vec<BuyOutcome>>>(
            "/internal/buy",
            &BuyBatch {
                orders,
                term,
                as_of,
            },
            crate::timeouts::CATALOG_CALL,
        )
        .await;
    let outcomes: Vec<Result<Bought, BuyError>> = match answer {
        Ok(Data { data }) if data.len() == count => data
            .into_iter()
            .map(|outcome| match outcome {
                BuyOutcome::Bought(bought) => Ok(bought),
                BuyOutcome::Refused(refused) => Err(BuyError::Refused(refused)),
            })
            .collect(),
        Ok(Data { data }) => {
            let e = format!("the catalog answered {} of {count} buys", data.len());
            vec![Err(BuyError::Unavailable(e)); count]
        }
        Err(CallError::Status {
            status: 412,
            message,
        }) => {
            vec![Err(BuyError::Deposed(message)); count]
        }
        Err(e) => {
            let e = unavailable(e);
            vec![Err(e); count]
        }
    };
    reply(outcomes);
}

fn unavailable(e: CallError) -> BuyError {
    BuyError::Unavailable(format!("the catalog did not take the order: {e}"))
}
