//! What a catalog replica does while it leads: know since when it leads, check it still does
//! before a read, push every committed change's invalidations to the front ends, seed a new
//! group and restock.
//!
//! A new leader honours the leases earlier leaders granted: a front end counts its lease from
//! when it asked, and a leader grants one only after a leadership check that began after the
//! ask. So every lease of an earlier leader was asked for before this one was elected, and has
//! run out [`LEASE`] after this replica learned it leads. Until then it acknowledges no buy, and
//! its own leases begin with a reset: each front end empties its cache before it uses one.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::book::{CatalogCommand, CatalogReply};
use super::leases::{Leases, Push};
use super::Catalog;
use crate::raft::proposer::{bounded, WriteError};
use crate::raft::replica::NotLeading;
use crate::timeouts::{self, LEASE};
use crate::wire::{Invalidate, Invalidation};

/// One term of this replica's leadership.
pub struct Leadership {
    pub term: u64,
    /// When every lease an earlier leader granted has run out (see [`Leadership::new`]).
    pub earlier_leases_end: Instant,
    pub leases: Leases,
}

impl Leadership {
    /// A leadership of `term`, for a replica whose process began to open at `opened`.
    ///
    /// In any term but the group's first, an earlier leader may have granted leases: they have
    /// run out [`LEASE`] from now. In the first term, the only earlier leader can be this
    /// replica itself, in an earlier process whose leases the front ends may still hold; those
    /// have run out [`LEASE`] after this process began to open. (A replica no longer takes a
    /// leadership back from its saved vote, `LogStore::resign_saved_leadership`, so it leads
    /// again only in a later term; this stays as a second guard.)
    fn new(term: u64, opened: Instant, frontends: impl IntoIterator<Item = u32>) -> Self {
        let now = Instant::now();
        let earlier_leases_end = if term <= 1 {
            opened + LEASE
        } else {
            now + LEASE
        };
        Leadership {
            term,
            earlier_leases_end,
            leases: Leases::until(frontends, earlier_leases_end),
        }
    }
}

/// How often the leader looks whether the group needs its seed or a restock.
const DUTY_TICK: Duration = Duration::from_millis(100);

/// This replica's leadership, when it leads and hears from a majority.
pub(super) fn leading(catalog: &Catalog) -> Result<Arc<Leadership>, WriteError> {
    let term = match crate::raft::replica::leads(&catalog.shared.raft) {
        Ok(term) => term,
        Err(NotLeading::NotLeader { leader }) => return Err(WriteError::NotLeader { leader }),
        Err(NotLeading::NoQuorum { silent_ms }) => {
            return Err(WriteError::Unavailable(format!(
                "catalog replica {} leads but has not heard from a majority of its group \
                 for {silent_ms} ms",
                catalog.id()
            )))
        }
    };
    let mut current = catalog.shared.leadership.lock();
    match &*current {
        Some(leadership) if leadership.term == term => Ok(leadership.clone()),
        _ => {
            tracing::info!("catalog replica {} leads (term {term})", catalog.id());
            let frontends = catalog.shared.frontends.iter().map(|(id, _)| *id);
            let opened = catalog.shared.opened;
            let leadership = Arc::new(Leadership::new(term, opened, frontends));
            *current = Some(leadership.clone());
            catalog.shared.unconfirmed_since.lock().clear();
            Ok(leadership)
        }
    }
}

/// Succeeds once this replica has confirmed it leads at a moment no other replica can lead,
/// and has applied everything committed before: a read after it is linearizable.
///
/// A check proves that when it began, a majority still followed this replica; none of them
/// stands for election or votes for another until its election timeout has run from then.
/// So a call that arrives within [`timeouts::LEADERSHIP_REUSE`] of the beginning of the last
/// check that succeeded needs no check of its own; reads that arrive while a check runs
/// wait for it or share the next one.
pub(super) async fn check_leading(catalog: &Catalog) -> Result<Arc<Leadership>, WriteError> {
    let arrived = Instant::now();
    let leadership = leading(catalog)?;
    let recent = |last: &Option<(u64, Instant)>| {
        last.is_some_and(|(term, began)| {
            term == leadership.term && arrived < began + timeouts::LEADERSHIP_REUSE
        })
    };
    let mut last_check = catalog.shared.last_check.lock().await;
    if recent(&last_check) {
        return Ok(leadership);
    }
    let began = Instant::now();
    let raft = &catalog.shared.raft;
    bounded(catalog.id(), "confirm it leads", raft.ensure_linearizable()).await?;
    *last_check = Some((leadership.term, began));
    Ok(leadership)
}

/// Waits until the invalidations of every entry up to `index` are pushed or waited out.
pub(super) async fn invalidated(catalog: &Catalog, index: u64) -> bool {
    let mut invalidated = catalog.shared.invalidated.subscribe();
    let reached = tokio::time::timeout(
        timeouts::CATALOG_DURABLE,
        invalidated.wait_for(|&i| i >= index),
    )
    .await;
    matches!(reached, Ok(Ok(_)))
}

/// Pushes the invalidations of committed entries, in log order, a batch at a time.
pub(super) async fn invalidate_loop(catalog: Catalog) {
    loop {
        catalog.shared.invalidate_now.notified().await;
        let batch = std::mem::take(&mut *catalog.shared.to_invalidate.lock());
        let Some(last) = batch.iter().map(|(index, _)| *index).max() else {
            continue;
        };
        let items: Vec<Invalidation> = batch.into_iter().flat_map(|(_, i)| i).collect();
        push(&catalog, items).await;
        catalog.shared.invalidated.send_if_modified(|i| {
            let moved = last > *i;
            *i = (*i).max(last);
            moved
        });
    }
}

/// Pushes `items` to every front end at once. Returns once each has taken them or, for one
/// that did not, once its cache lease has run out: from then on no front end serves what
/// the change made stale.
async fn push(catalog: &Catalog, items: Vec<Invalidation>) {
    if items.is_empty() {
        return;
    }
    let leadership = catalog.shared.leadership.lock().clone();
    // Deposed meanwhile: every lease it granted is counted from a fresh table.
    let leadership = leadership.unwrap_or_else(|| {
        let frontends = catalog.shared.frontends.iter().map(|(id, _)| *id);
        Arc::new(Leadership {
            term: 0,
            earlier_leases_end: Instant::now() + LEASE,
            leases: Leases::new(frontends),
        })
    });
    let body = Invalidate { items };
    let pushes = catalog.shared.frontends.iter().map(|(id, url)| {
        let (body, leases) = (&body, &leadership.leases);
        async move {
            if leases.push(*id) == Push::Skip {
                return None;
            }
            let url = format!("{url}/internal/invalidate");
            let reply: Result<serde_json::Value, _> = catalog
                .shared
                .client
                .post_with_timeout(&url, body, timeouts::INVALIDATE_CALL)
                .await;
            let e = reply.err()?;
            tracing::warn!("front end {id} did not take an invalidation: {e}; waiting for its cache lease to end");
            Some(leases.missed(*id))
        }
    });
    let leased_until = futures_util::future::join_all(pushes).await;
    if let Some(until) = leased_until.into_iter().flatten().max() {
        tokio::time::sleep_until(until).await;
    }
}

/// While this replica leads: commits the seed of a new group, and restocks every
/// restock interval when a toy is sold out.
pub(super) async fn duties(catalog: Catalog) {
    let mut last_restock = Instant::now();
    let mut ticker = tokio::time::interval(DUTY_TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if leading(&catalog).is_err() {
            last_restock = Instant::now();
            continue;
        }
        let (seeded, sold_out) = catalog
            .shared
            .book
            .read(|b| (b.is_seeded(), b.any_sold_out()));
        if !seeded {
            let rows = catalog.shared.seed.clone();
            match propose(&catalog, CatalogCommand::Seed { rows }).await {
                Ok(_) => tracing::info!("catalog replica {} seeded the stock", catalog.id()),
                Err(e) => tracing::debug!("seeding: {e:?}"),
            }
            continue;
        }
        if last_restock.elapsed() < catalog.shared.restock_interval {
            continue;
        }
        last_restock = Instant::now();
        if !sold_out {
            continue;
        }
        match propose(&catalog, CatalogCommand::Restock).await {
            Ok(CatalogReply::Restocked { invalidations }) => {
                for item in &invalidations {
                    tracing::info!(product = %item.name, "restocked to {}", super::seed::RESTOCK_QUANTITY);
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("restock not committed: {e:?}"),
        }
    }
}

pub(super) async fn propose(
    catalog: &Catalog,
    command: CatalogCommand,
) -> Result<CatalogReply, WriteError> {
    Ok(catalog.shared.proposer.propose(command).await?.reply)
}
