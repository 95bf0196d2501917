//! The leader's order flow: catch up, buy in the catalog (keyed), commit the outcome. And the
//! leader's sweep that places the orders of buys the catalog holds unconfirmed and the log lacks:
//! buys whose leader died, or whose commit failed, before the outcome was in the log.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::buyer::{Asker, BuyError, Buyer};
use super::machine::OrderStore;
use super::types::{BuyResult, Command, PlaceError, Raft, Refusal, Settled, TypeConfig};
use crate::raft::proposer::{bounded, Proposer};
use crate::raft::replica::NotLeading;
use crate::timeouts;
use crate::wire::PlaceOrder;

/// What the leader's order flow needs of its replica: the engine, the applied orders, the
/// buyer and the proposer, and the keys being placed right now.
pub(super) struct Placer {
    id: u32,
    raft: Raft,
    orders: OrderStore,
    buyer: Buyer,
    proposer: Proposer<TypeConfig>,
    /// Idempotency keys being placed by this replica right now, and a bell rung when one ends.
    claims: Mutex<HashSet<String>>,
    claim_done: Notify,
    /// The term in which this replica, as leader, has applied everything earlier leaders
    /// committed; until then it must not read the book to decide an order.
    caught_up_term: AtomicU64,
}

/// An idempotency key being placed; released when dropped.
struct KeyClaim<'a> {
    placer: &'a Placer,
    key: String,
}

impl Drop for KeyClaim<'_> {
    fn drop(&mut self) {
        self.placer.claims.lock().remove(&self.key);
        self.placer.claim_done.notify_waiters();
    }
}

impl Placer {
    pub(super) fn new(
        id: u32,
        raft: Raft,
        orders: OrderStore,
        buyer: Buyer,
        proposer: Proposer<TypeConfig>,
    ) -> Self {
        Placer {
            id,
            raft,
            orders,
            buyer,
            proposer,
            claims: Mutex::new(HashSet::new()),
            claim_done: Notify::new(),
            caught_up_term: AtomicU64::new(0),
        }
    }

    fn id(&self) -> u32 {
        self.id
    }

    /// Waits until no other request on this replica is placing an order with `key`, then
    /// claims it.
    async fn claim(&self, key: &str) -> KeyClaim<'_> {
        loop {
            let done = self.claim_done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if let Some(claim) = self.try_claim(key) {
                return claim;
            }
            done.await;
        }
    }

    fn try_claim(&self, key: &str) -> Option<KeyClaim<'_>> {
        self.claims
            .lock()
            .insert(key.to_string())
            .then(|| KeyClaim {
                placer: self,
                key: key.to_string(),
            })
    }

    fn caught_up_in(&self, term: u64) -> bool {
        self.caught_up_term.load(Ordering::SeqCst) == term
    }

    /// Places `order` as leader, or gives the settlement its key already has. A key names one
    /// request: sent again with another product or quantity it is refused, and whatever the
    /// first request bought (here, or at a leader that died before logging it) is placed as
    /// that request's order.
    pub(super) async fn place(&self, order: PlaceOrder) -> Result<Settled, PlaceError> {
        let term = self.lead().await?;
        let _claim = self.claim(&order.key).await;
        let (settled, index) = self.orders.read_at(|b| b.settled(&order.key));
        let settled = match settled {
            Some(settled) => settled,
            None => self.settle(order.clone(), Asker { term, index }).await?,
        };
        match self.orders.read(|b| b.other_request(&order)) {
            Some(first) => Err(PlaceError::KeyReused(format!(
                "Idempotency-Key '{}' was used for an order of {first}, not {} × {}; use a new \
                 key for a new order",
                order.key, order.quantity, order.name
            ))),
            None => Ok(settled),
        }
    }

    /// Buys for an order as `asker`, which saw its key unsettled (keyed: the catalog's first
    /// answer to the key, if it has one), and commits the outcome.
    async fn settle(&self, order: PlaceOrder, asker: Asker) -> Result<Settled, PlaceError> {
        let (key, name, quantity) = (order.key.clone(), order.name.clone(), order.quantity);
        // A buy is keyed, so asking again is safe. Before the catalog is blamed, this replica
        // makes sure it still leads: one that was paused wakes with its timer run out and may
        // have been replaced meanwhile (then the front end retries on the new leader). Once
        // more is enough to ride out a lost answer; a catalog that is really down fails both.
        let mut answer = self.buyer.buy(order.clone(), asker).await;
        if matches!(answer, Err(BuyError::Unavailable(_))) {
            self.lead().await?;
            answer = self.buyer.buy(order, asker).await;
        }
        let result = match answer {
            Ok(bought) => BuyResult::Bought(bought),
            Err(BuyError::Refused(refused)) => BuyResult::Refused(Refusal {
                reason: refused.reason,
                message: refused.message,
                name,
                quantity,
            }),
            Err(BuyError::Unavailable(message)) => return Err(PlaceError::Catalog(message)),
            Err(BuyError::Deposed(message)) => {
                tracing::info!("order replica {} was deposed: {message}", self.id());
                return Err(PlaceError::NotLeader { leader: None });
            }
        };
        crate::fault::point(crate::fault::AFTER_BUY);
        let settled = self
            .write(Command::Outcome {
                key: key.clone(),
                result,
            })
            .await?
            .ok_or_else(|| PlaceError::Unavailable("an outcome was applied unsettled".into()))?;
        // Placed or refused, the log answers for the key from now on: the catalog may retire it
        // once the log is well past the index it was applied by.
        let (_, settled_at) = self.orders.read_at(|_| ());
        let confirmer = Asker {
            term: asker.term,
            index: settled_at,
        };
        self.buyer.confirm(key, confirmer);
        Ok(settled)
    }

    /// Commits `command` (in whatever entry the proposer puts it) and returns its key's
    /// settlement after it was applied.
    async fn write(&self, command: Command) -> Result<Option<Settled>, PlaceError> {
        let written = self.proposer.propose(command).await?;
        Ok(written.reply)
    }

    /// Succeeds, with its term, when this replica leads, hears from a majority, and has applied
    /// everything earlier leaders committed (so its book can decide an order).
    pub(super) async fn lead(&self) -> Result<u64, PlaceError> {
        let term = match crate::raft::replica::leads(&self.raft) {
            Ok(term) => term,
            Err(NotLeading::NotLeader { leader }) => return Err(PlaceError::NotLeader { leader }),
            Err(NotLeading::NoQuorum { silent_ms }) => {
                return Err(PlaceError::NoQuorum(format!(
                    "replica {} leads but has not heard from a majority of replicas for \
                     {silent_ms} ms; orders need two of three",
                    self.id()
                )))
            }
        };
        if !self.caught_up_in(term) {
            let raft = &self.raft;
            bounded(self.id(), "confirm it leads", raft.ensure_linearizable()).await?;
            self.caught_up_term.store(term, Ordering::SeqCst);
        }
        Ok(term)
    }

    /// While this replica leads: every [`timeouts::FINISH_INTERVAL`], asks the catalog for the
    /// buys it holds unconfirmed, confirms those whose orders the log holds, and places the
    /// orders of the others that no request here is placing.
    pub(super) async fn place_orphans(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(timeouts::FINISH_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Ok(term) = self.lead().await else {
                continue;
            };
            let buys = match self.buyer.unconfirmed().await {
                Ok(buys) => buys,
                Err(e) => {
                    tracing::debug!("cannot list unconfirmed buys: {e:?}");
                    continue;
                }
            };
            let placer = &*self;
            let work = buys.into_iter().filter_map(|buy| {
                let (settled, index) = self.orders.read_at(|b| b.settled(&buy.key));
                let asker = Asker { term, index };
                match settled {
                    Some(Settled::Placed { .. }) => {
                        self.buyer.confirm(buy.key, asker);
                        return None;
                    }
                    Some(Settled::Refused(_)) => {
                        tracing::error!(
                            "the catalog sold to key {} but the log refused its order; \
                             verify-logs --stock will show it",
                            buy.key
                        );
                        return None;
                    }
                    None => {}
                }
                let claim = placer.try_claim(&buy.key)?;
                let order = PlaceOrder {
                    key: buy.key,
                    name: buy.name,
                    quantity: buy.quantity,
                };
                Some(async move {
                    let key = order.key.clone();
                    let result = placer.settle(order, asker).await;
                    drop(claim);
                    match result {
                        Ok(settled) => tracing::info!("placed the orphaned buy {key}: {settled:?}"),
                        Err(e) => tracing::debug!("orphaned buy {key} still open: {e:?}"),
                    }
                })
            });
            futures_util::future::join_all(work).await;
        }
    }
}
