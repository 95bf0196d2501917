//! The leader's calls to the catalog. Buys are batched: orders that arrive while earlier calls
//! are in flight go together in the next call. Alone, an order is sent at once; under load, many
//! share one call and one durable write in the catalog. Confirmations (this key's order is in
//! the log) are batched the same way, off the order's path.

use tokio::sync::mpsc;

use crate::batch::{self, send_in_batches};

use crate::peer::{CallError, PeerClient};
use crate::wire::{
    Bought, BuyBatch, BuyOutcome, Confirm, Data, PlaceOrder, UnconfirmedBuy, MAX_BUY_BATCH,
    MAX_CONFIRM_BATCH,
};

/// Calls to the catalog in flight at once: enough to keep its group commit fed while one batch
/// is being written.
const CALLS_IN_FLIGHT: usize = 4;

/// Why an order was not bought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuyError {
    /// The catalog refused it: unknown product (404) or not enough stock (409).
    Refused { status: u16, message: String },
    /// The catalog did not answer as it should; the order may be retried with its key.
    Unavailable(String),
}

type Pending = batch::Pending<PlaceOrder, Result<Bought, BuyError>>;

/// A cheap-to-clone handle to the batching tasks.
#[derive(Clone)]
pub struct Buyer {
    queue: mpsc::UnboundedSender<Pending>,
    confirmations: mpsc::UnboundedSender<String>,
    catalog: String,
    client: PeerClient,
}

/// The batching tasks' ends of the queues, until [`Batcher::run`] is spawned.
pub struct Batcher {
    queue: mpsc::UnboundedReceiver<Pending>,
    confirmations: mpsc::UnboundedReceiver<String>,
    catalog: String,
    client: PeerClient,
}

/// A buyer for the catalog at `catalog` (a base URL), and the task that must run for it to buy.
pub fn buyer(catalog: &str, client: PeerClient) -> (Buyer, Batcher) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (confirm_tx, confirm_rx) = mpsc::unbounded_channel();
    (
        Buyer {
            queue: tx,
            confirmations: confirm_tx,
            catalog: catalog.to_string(),
            client: client.clone(),
        },
        Batcher {
            queue: rx,
            confirmations: confirm_rx,
            catalog: catalog.to_string(),
            client,
        },
    )
}

impl Buyer {
    /// Buys for `order` in the catalog, in whatever batch it lands.
    pub async fn buy(&self, order: PlaceOrder) -> Result<Bought, BuyError> {
        batch::submit(&self.queue, order, || {
            Err(BuyError::Unavailable("the replica is stopping".into()))
        })
        .await
    }

    /// Tells the catalog, soon and in a batch, that `key`'s order is settled in the log.
    pub fn confirm(&self, key: String) {
        // Without the task there is nobody to tell; the catalog will ask again.
        let _ = self.confirmations.send(key);
    }

    /// The catalog's buys that have stayed unconfirmed long enough to be orphans.
    pub async fn unconfirmed(&self) -> Result<Vec<UnconfirmedBuy>, BuyError> {
        let url = format!("{}/internal/unconfirmed", self.catalog);
        self.client
            .get_with_timeout::<Data<Vec<UnconfirmedBuy>>>(&url, crate::timeouts::CATALOG_CALL)
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
            client,
        } = self;
        let confirm_url = format!("{catalog}/internal/confirm");
        let confirming = confirm_in_batches(confirmations, client.clone(), confirm_url);
        let buying = buy_in_batches(queue, client, format!("{catalog}/internal/buy"));
        tokio::join!(confirming, buying);
    }
}

async fn confirm_in_batches(
    queue: mpsc::UnboundedReceiver<String>,
    client: PeerClient,
    url: String,
) {
    send_in_batches(queue, MAX_CONFIRM_BATCH, 1, |keys| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let count = keys.len();
            let confirm = Confirm { keys };
            let timeout = crate::timeouts::CATALOG_CALL;
            if let Err(e) = client
                .post_with_timeout::<_, serde_json::Value>(&url, &confirm, timeout)
                .await
            {
                // Harmless: the catalog lists the keys again later, and the leader confirms.
                tracing::debug!("confirming {count} orders to the catalog: {e}");
            }
        }
    })
    .await
}

async fn buy_in_batches(queue: mpsc::UnboundedReceiver<Pending>, client: PeerClient, url: String) {
    send_in_batches(queue, MAX_BUY_BATCH, CALLS_IN_FLIGHT, |batch| {
        let (client, url) = (client.clone(), url.clone());
        async move { send(&client, &url, batch).await }
    })
    .await
}

async fn send(client: &PeerClient, url: &str, batch: Vec<Pending>) {
    let (orders, reply) = batch::split(batch);
    let count = orders.len();
    let answer = client
        .post_with_timeout::<_, Data<Vec<BuyOutcome>>>(
            url,
            &BuyBatch { orders },
            crate::timeouts::CATALOG_CALL,
        )
        .await;
    let outcomes: Vec<Result<Bought, BuyError>> = match answer {
        Ok(Data { data }) if data.len() == count => data
            .into_iter()
            .map(|outcome| match outcome {
                BuyOutcome::Bought(bought) => Ok(bought),
                BuyOutcome::Refused(e) => Err(BuyError::Refused {
                    status: e.code,
                    message: e.message,
                }),
            })
            .collect(),
        Ok(Data { data }) => {
            let e = format!("the catalog answered {} of {count} buys", data.len());
            vec![Err(BuyError::Unavailable(e)); count]
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
