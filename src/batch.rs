//! Work in batches: what arrives while earlier batches are busy goes together in the next one.
//! Alone, an item is sent at once; under load, many share one call, one write, one fsync. The
//! leader's buys, its confirmations to the catalog and its log entries are gathered this way.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::sync::{oneshot, Semaphore};

/// An item waiting for its batch, and where its answer goes.
pub struct Pending<T, R> {
    pub item: T,
    reply: oneshot::Sender<R>,
}

/// Queues `item` for the batching task behind `queue` and waits for its answer; `stopped()`
/// when that task is gone.
pub async fn submit<T, R>(
    queue: &UnboundedSender<Pending<T, R>>,
    item: T,
    stopped: impl Fn() -> R,
) -> R {
    let (reply, answer) = oneshot::channel();
    if queue.send(Pending { item, reply }).is_err() {
        return stopped();
    }
    answer.await.unwrap_or_else(|_| stopped())
}

/// Splits a batch into its items, and a function that gives each its answer, in order.
pub fn split<T, R>(batch: Vec<Pending<T, R>>) -> (Vec<T>, impl FnOnce(Vec<R>)) {
    let (items, replies): (Vec<T>, Vec<oneshot::Sender<R>>) =
        batch.into_iter().map(|p| (p.item, p.reply)).unzip();
    let answer = move |answers: Vec<R>| {
        for (reply, answer) in replies.into_iter().zip(answers) {
            // A caller that is gone has nothing to hear.
            let _ = reply.send(answer);
        }
    };
    (items, answer)
}

/// Sends what `queue` receives in batches of at most `max`, with at most `in_flight` batches
/// being sent at once, until every sender is gone. Waiting for a free slot is what lets the
/// next batch gather.
pub async fn send_in_batches<T, F, Fut>(
    mut queue: UnboundedReceiver<T>,
    max: usize,
    in_flight: usize,
    mut send: F,
) where
    F: FnMut(Vec<T>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(in_flight));
    while let Some(first) = queue.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < max {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let sending = send(batch);
        tokio::spawn(async move {
            sending.await;
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[tokio::test]
    async fn what_queues_up_while_a_batch_is_sent_goes_together() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let (release, hold) = tokio::sync::watch::channel(false);
        tx.send(0).unwrap();
        let seen = sizes.clone();
        let task = tokio::spawn(send_in_batches(rx, 3, 1, move |batch: Vec<u32>| {
            seen.lock().unwrap().push(batch.len());
            let mut hold = hold.clone();
            async move {
                let _ = hold.wait_for(|released| *released).await;
            }
        }));
        // The first batch is alone and held; five more queue up behind it.
        while sizes.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        for i in 1..=5 {
            tx.send(i).unwrap();
        }
        release.send(true).unwrap();
        drop(tx);
        task.await.unwrap();
        assert_eq!(*sizes.lock().unwrap(), vec![1, 3, 2]);
    }
}
