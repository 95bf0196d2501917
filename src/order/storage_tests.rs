//! The engine's storage under test: openraft's own storage suite, then what the suite does not
//! try: reopening after a crash.

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, EntryPayload, LogId, RaftLogReader, Vote};

use super::log_file_name;

type LogStore = crate::raft::LogStore<TypeConfig>;
use super::machine::{self, StateMachine};
use super::types::{BuyResult, Command, LogEntry, Proposal, StorageError, TypeConfig};
use crate::wire::Bought;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = LogStore::open(&dir.path().join(log_file_name(1))).expect("a new log");
        let (machine, _) = machine::open(dir.path(), 1).expect("a new state machine");
        Ok((dir, log, machine))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(Builder).unwrap();
}

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 3), index)
}

fn blank(term: u64, index: u64) -> LogEntry {
    LogEntry {
        log_id: log_id(term, index),
        payload: EntryPayload::Blank,
    }
}

fn order(term: u64, index: u64, key: &str) -> Vec<LogEntry> {
    let outcome = Command::Outcome {
        key: key.into(),
        result: BuyResult::Bought(Bought {
            name: "Tux".into(),
            quantity: 1,
        }),
    };
    vec![LogEntry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(Proposal {
            commands: vec![outcome],
        }),
    }]
}

async fn indexes(log: &mut LogStore) -> Vec<u64> {
    log.try_get_log_entries(..)
        .await
        .unwrap()
        .iter()
        .map(|e| e.log_id.index)
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn vote_committed_truncate_and_purge_survive_a_reopen() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft-1.log");
        {
            let mut log = LogStore::open(&path).unwrap();
            log.save_vote(&Vote::new(4, 2)).await.unwrap();
            log.blocking_append((0..6).map(|i| blank(1, i)))
                .await
                .unwrap();
            log.truncate(log_id(1, 4)).await.unwrap();
            log.blocking_append([blank(2, 4)]).await.unwrap();
            log.purge(log_id(1, 1)).await.unwrap();
            log.save_committed(Some(log_id(2, 4))).await.unwrap();
            // Durable with the next fsync, like the committed index.
            log.blocking_append([blank(2, 5)]).await.unwrap();
        }
        let mut log = LogStore::open(&path).unwrap();
        assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(4, 2)));
        assert_eq!(log.read_committed().await.unwrap(), Some(log_id(2, 4)));
        assert_eq!(indexes(&mut log).await, vec![2, 3, 4, 5]);
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 1)));
        assert_eq!(state.last_log_id, Some(log_id(2, 5)));
        let entries = log.try_get_log_entries(4..5).await.unwrap();
        assert_eq!(
            entries[0].log_id,
            log_id(2, 4),
            "the truncated entry is replaced"
        );
    });
}

#[test]
fn a_torn_last_record_is_cut_and_damage_elsewhere_is_refused() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft-1.log");
        {
            let mut log = LogStore::open(&path).unwrap();
            log.blocking_append((0..3).map(|i| blank(1, i)))
                .await
                .unwrap();
        }
        let whole = std::fs::read(&path).unwrap();
        // A crash mid-write: part of a record, no newline.
        let mut torn = whole.clone();
        torn.extend_from_slice(b"0123abcd {\"entry\":{\"log");
        std::fs::write(&path, &torn).unwrap();
        let mut log = LogStore::open(&path).unwrap();
        assert_eq!(indexes(&mut log).await, vec![0, 1, 2]);
        drop(log);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            whole,
            "the torn bytes are cut off"
        );

        // A whole last line whose checksum fails is a torn write too.
        let mut bad_tail = whole.clone();
        bad_tail.extend_from_slice(b"00000000 {\"vote\":null}\n");
        std::fs::write(&path, &bad_tail).unwrap();
        assert!(LogStore::open(&path).is_ok());
        assert_eq!(std::fs::read(&path).unwrap(), whole);

        // The same damage in the middle is not a torn write: refuse, name the line, keep the file.
        let text = String::from_utf8(whole).unwrap();
        let damaged = text.replacen("\"index\":1", "\"index\":7", 1);
        std::fs::write(&path, &damaged).unwrap();
        let err = LogStore::open(&path).err().unwrap().to_string();
        assert!(err.contains("raft-1.log, line 2"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), damaged);
    });
}

#[test]
fn the_state_machine_comes_back_from_its_snapshot_and_rewrites_its_csv() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut machine, orders) = machine::open(dir.path(), 2).unwrap();
            machine.apply(order(1, 1, "a")).await.unwrap();
            machine.apply([blank(1, 2)]).await.unwrap();
            let snapshot = {
                use openraft::RaftSnapshotBuilder;
                let mut builder = machine.get_snapshot_builder().await;
                builder.build_snapshot().await.unwrap()
            };
            assert_eq!(snapshot.meta.last_log_id, Some(log_id(1, 2)));
            machine.apply(order(1, 3, "b")).await.unwrap();
            assert_eq!(orders.read(|b| b.len()), 2);
            let csv = std::fs::read_to_string(dir.path().join("orders-2.csv")).unwrap();
            assert_eq!(csv.lines().count(), 3, "{csv}");
        }
        // After a crash, the book is the snapshot's; the engine re-applies what follows it.
        let (mut machine, orders) = machine::open(dir.path(), 2).unwrap();
        let (applied, _) = machine.applied_state().await.unwrap();
        assert_eq!(applied, Some(log_id(1, 2)));
        assert_eq!(orders.read(|b| b.len()), 1);
        let csv = std::fs::read_to_string(dir.path().join("orders-2.csv")).unwrap();
        assert_eq!(csv.lines().count(), 2, "the CSV matches the book: {csv}");
        machine.apply(order(1, 3, "b")).await.unwrap();
        let again = std::fs::read_to_string(dir.path().join("orders-2.csv")).unwrap();
        assert!(again.ends_with(",1,b\n"), "{again}");
        assert_eq!(orders.read(|b| b.len()), 2);
    });
}

#[test]
fn a_snapshot_built_while_a_newer_one_is_installed_does_not_replace_it() {
    use openraft::storage::RaftSnapshotBuilder;
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (mut machine, _) = machine::open(dir.path(), 1).unwrap();
        machine.apply(order(1, 1, "a")).await.unwrap();
        // A leader's snapshot up to index 5, made on another replica.
        let other = tempfile::tempdir().unwrap();
        let (mut leader, _) = machine::open(other.path(), 2).unwrap();
        leader.apply(order(1, 1, "a")).await.unwrap();
        leader.apply(order(2, 5, "b")).await.unwrap();
        let newer = leader.build_snapshot().await.unwrap();

        // The build takes the book at index 1; the newer snapshot is installed before the build
        // has written its own (openraft runs the two at once).
        let (meta, bytes) = machine.take_snapshot().unwrap();
        machine
            .install_snapshot(&newer.meta, newer.snapshot)
            .await
            .unwrap();
        let built = machine.keep_snapshot(meta, bytes).await.unwrap();
        assert_eq!(built.meta.last_log_id, Some(log_id(1, 1)));

        let current = machine.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta.last_log_id, Some(log_id(2, 5)));
        drop(machine);
        let (mut reopened, _) = machine::open(dir.path(), 1).unwrap();
        let (applied, _) = reopened.applied_state().await.unwrap();
        assert_eq!(
            applied,
            Some(log_id(2, 5)),
            "the file keeps the newer one too"
        );
    });
}

/// A leader sends entries to its followers while its own fsync of them is in flight, so it can
/// learn an entry is committed before its own log holds it. Its book must wait for its log:
/// otherwise a snapshot, or a reply, could hold an entry that a power cut takes from the log.
#[test]
fn an_entry_is_applied_only_once_the_replicas_own_log_holds_it() {
    use futures_util::FutureExt;
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogStore::open(&dir.path().join(log_file_name(1))).unwrap();
        let (mut machine, store) = machine::open(dir.path(), 1).unwrap();
        machine.apply_only_durable(log.durable());

        {
            let mut apply = std::pin::pin!(machine.apply(order(1, 1, "k")));
            assert!(
                (&mut apply).now_or_never().is_none(),
                "applied before this replica's log holds the entry"
            );
            assert_eq!(store.read(|book| book.len()), 0);

            log.blocking_append(order(1, 1, "k")).await.unwrap();
            let replies = within_a_while(apply).await.unwrap();
            assert_eq!(replies.len(), 1);
            assert_eq!(store.read(|book| book.len()), 1);
        }

        // An entry that replaces a cut one carries a later term: it waits for its own write,
        // though the log once held a later index.
        log.blocking_append((2..5).map(|i| blank(1, i)))
            .await
            .unwrap();
        log.truncate(log_id(1, 2)).await.unwrap();
        let mut apply = std::pin::pin!(machine.apply(order(2, 2, "m")));
        assert!((&mut apply).now_or_never().is_none());
        log.blocking_append(order(2, 2, "m")).await.unwrap();
        within_a_while(apply).await.unwrap();
        assert_eq!(store.read(|book| book.len()), 2);
    });
}

/// `future`'s output, or a failed test if it has not come within a generous deadline.
async fn within_a_while<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(20), future)
        .await
        .expect("still waiting after 20 s")
}
