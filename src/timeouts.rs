//! Every timeout of the cluster in one table, with the orderings they must satisfy.
//!
//! The rule behind the orderings: a caller always waits longer than the callee it waits for, so
//! a slow callee answers (with its own, precise error) before its caller gives up on it and
//! blames the wrong service. [`check`] proves the orderings at start.
//!
//! | who waits | for what | how long |
//! |---|---|---|
//! | leader | sends a heartbeat every | [`HEARTBEAT`] |
//! | follower | a heartbeat, before standing for election | the engine's lease (the window's top) plus [`election_timeout`]: 250–350 ms for the highest id, and windows in 420–590 ms for the ranks below; so 600–700 ms, 0.93–1.01 s, 1.10–1.18 s |
//! | leader | before it tries an unreachable replica again | [`HEARTBEAT`], doubling to [`PEER_BACKOFF_MAX`] |
//! | leader | a majority's answer, before it refuses new orders | [`QUORUM_LOST`] |
//! | leader | one write to commit | [`COMMIT`] |
//! | leader | the catalog's buy (asked twice at most) | [`CATALOG_CALL`] |
//! | catalog leader | a committed buy's invalidations | [`CATALOG_DURABLE`] |
//! | leader | a whole order (catch-up, buy, outcome) | [`LEADER_ORDER`] |
//! | front end | the leader's answer to one order | [`FRONTEND_ORDER_CALL`] |
//! | front end | each replica's health | [`HEALTH_CALL`], polled every [`HEALTH_POLL`] |
//! | front end | a majority to answer, before an order fails fast | [`NO_QUORUM_FAIL`] |
//! | front end | any leader, retrying with the same key | `--failover-timeout` (default [`FAILOVER`]) |
//! | leader | before it places the order of a buy the catalog has not seen confirmed | [`UNCONFIRMED_AGE`], looked for every [`FINISH_INTERVAL`] |
//! | catalog | a front end to take an invalidation | [`INVALIDATE_CALL`]; then until that front end's lease ends, at most [`LEASE`] |
//! | front end | serves from its cache for | [`LEASE`] from when it asked for it, renewed every [`LEASE_RENEW`] |
//! | any service | a client's request headers (and an idle keep-alive connection) | `--header-read-timeout` on the front end, 10 s elsewhere |
//! | any service | an idle pooled connection to another service, before closing it | [`PEER_POOL_IDLE`] |

use std::time::Duration;

/// How often the leader tells followers it is alive.
pub const HEARTBEAT: Duration = Duration::from_millis(50);
/// Election timeout of the highest-id replica: it stands first, so it leads when it can.
pub const ELECTION_BASE: Duration = Duration::from_millis(250);
/// Width of the highest id's random window.
pub const ELECTION_SPREAD: Duration = Duration::from_millis(100);
/// Between the highest id's window and the lower ranks' windows.
pub const ELECTION_GAP: Duration = Duration::from_millis(70);
/// How much later each lower rank makes a new cluster, so the highest id that is up does.
pub const ELECTION_STEP: Duration = Duration::from_millis(200);
/// The longest a leader waits before it tries an unreachable replica again.
pub const PEER_BACKOFF_MAX: Duration = Duration::from_millis(200);
/// A leader that has not heard from a majority for this long refuses new orders at once
/// rather than let them wait.
pub const QUORUM_LOST: Duration = Duration::from_millis(1000);
/// The leader's wait for one write (an order's outcome) to commit on a majority.
pub const COMMIT: Duration = Duration::from_millis(1500);
/// The leader's wait for the catalog to answer a buy.
pub const CATALOG_CALL: Duration = Duration::from_secs(2);
/// The catalog leader's wait for a committed buy's invalidations (and every earlier entry's)
/// before it answers that it cannot.
pub const CATALOG_DURABLE: Duration = Duration::from_millis(1500);
/// The longest the leader spends on one order: catching up (a commit), the buy and its one
/// retry, the outcome (a commit).
pub const LEADER_ORDER: Duration = Duration::from_millis(1500 * 2 + 2000 * 2);
/// The front end's wait for the leader's answer to one order.
pub const FRONTEND_ORDER_CALL: Duration = Duration::from_secs(9);
/// How often the front end asks every replica who leads.
pub const HEALTH_POLL: Duration = Duration::from_millis(200);
/// How often a caller of the catalog group asks its leader for the group's voters, to follow
/// `storectl member` changes.
pub const MEMBERSHIP_POLL: Duration = Duration::from_secs(1);
/// The front end's wait for one replica's health.
pub const HEALTH_CALL: Duration = Duration::from_millis(300);
/// With fewer than two replicas answering for this long, an order fails with 503.
pub const NO_QUORUM_FAIL: Duration = Duration::from_secs(2);
/// The front end's default budget for one order or order query, across leader changes.
pub const FAILOVER: Duration = Duration::from_secs(10);
/// How often a leader asks the catalog for buys its log may lack, and places their orders.
pub const FINISH_INTERVAL: Duration = Duration::from_secs(1);
/// A buy unconfirmed for this long is one whose order the log may lack: longer than a buy's
/// answer and the commit that follows it, so orders in flight are left to their placers.
pub const UNCONFIRMED_AGE: Duration = Duration::from_secs(4);
/// The front end's wait for the catalog group's answer to a product query while fewer than a
/// majority of its replicas answer: no leader can be elected, and the query fails (503) rather
/// than hang. While a majority answers, an election is under way, and the query waits for it
/// as long as an order waits for the order group's (`--failover-timeout`).
pub const CATALOG_QUERY: Duration = Duration::from_millis(2000);
/// How long a front end may serve from its cache without hearing from the catalog. A new
/// catalog leader waits this long before it answers a buy (earlier leaders' leases may still
/// run), so it is most of a catalog failover's pause: 800 ms made the slowest order through a
/// killed catalog leader 1.8–2.0 s, against the 2 s every order must stay under.
pub const LEASE: Duration = Duration::from_millis(500);
/// How often a front end renews its cache lease (renewals go one at a time).
pub const LEASE_RENEW: Duration = Duration::from_millis(100);
/// How long a front end waits for one lease renewal: the catalog leader answers after a
/// leadership check, which a busy machine may slow. A renewal that takes all of it still
/// leaves the next one 150 ms before the lease runs out.
pub const LEASE_CALL: Duration = Duration::from_millis(250);
/// How long after a catalog leader's leadership check began its reads and lease grants need no
/// new check: well under the shortest election timeout ([`ELECTION_BASE`]), before which no
/// follower that answered the check stands for election or votes for another.
pub const LEADERSHIP_REUSE: Duration = Duration::from_millis(100);
/// The catalog's wait for one front end to take an invalidation.
pub const INVALIDATE_CALL: Duration = Duration::from_millis(300);
/// How long a service keeps an idle connection to another service. Shorter than any service's
/// header-read timeout, which closes idle connections on the server's side: the caller lets go
/// first, so a call never races the server's close.
pub const PEER_POOL_IDLE: Duration = Duration::from_secs(1);
/// A first-chunk snapshot transfer may take this long before the engine retries it.
pub const INSTALL_SNAPSHOT: Duration = Duration::from_secs(2);

/// The election timeout window of the replica ranked `rank` (0 for the highest id) in a group
/// of `replicas`.
///
/// The engine (openraft 0.9) makes a follower refuse votes for as long as the top of its own
/// window after it last heard a leader, and stand only after that plus its timeout. So every
/// window must end before the highest id first stands (the top plus the bottom of its own
/// window): a lower rank whose refusal outlasts it turns the preferred candidate away, and the
/// ranks below then stand together and split the vote (measured: 2.7 s without a leader). The
/// lower ranks share what is left below that, one window each, in order.
pub fn election_timeout(rank: usize, replicas: usize) -> (Duration, Duration) {
    let top = (ELECTION_BASE, ELECTION_BASE + ELECTION_SPREAD);
    if rank == 0 {
        return top;
    }
    let first_stand = top.0 + top.1;
    let ceiling = first_stand - Duration::from_millis(10);
    let floor = top.1 + ELECTION_GAP;
    let width = (ceiling - floor) / replicas.saturating_sub(1).max(1) as u32;
    let min = floor + width * (rank as u32 - 1);
    (min, min + width)
}

/// Two timeouts in order: the first, named, must be shorter than the second.
type Rule = (&'static str, Duration, &'static str, Duration);

/// Checks the orderings of the table for a cluster of `replicas` and a service whose failover
/// budget is `failover` and header-read timeout `header_read`; the error names the pair that is
/// out of order.
pub fn check(replicas: usize, failover: Duration, header_read: Duration) -> Result<(), String> {
    let mut rules = heartbeat_rules();
    rules.extend(order_rules(failover));
    rules.extend(cache_rules());
    rules.push((
        "the services' idle connections",
        PEER_POOL_IDLE,
        "the header-read timeout",
        header_read,
    ));
    // A follower stands only after the engine's lease (the window's top) and its own timeout.
    let (_, slowest) = election_timeout(replicas.saturating_sub(1), replicas);
    rules.push((
        "the slowest election",
        slowest * 2,
        "fail-fast without a majority",
        NO_QUORUM_FAIL,
    ));
    first_out_of_order(rules)
}

/// A leader's heartbeats come well within a follower's patience and its own quorum check.
fn heartbeat_rules() -> Vec<Rule> {
    vec![
        (
            "3 heartbeats",
            HEARTBEAT * 3,
            "the shortest election timeout",
            ELECTION_BASE,
        ),
        (
            "3 heartbeats",
            HEARTBEAT * 3,
            "the leader's quorum check",
            QUORUM_LOST,
        ),
    ]
}

/// An order's waits, from the leader's out to the front end's failover budget.
fn order_rules(failover: Duration) -> Vec<Rule> {
    vec![
        (
            "the leader's whole order",
            COMMIT * 2 + CATALOG_CALL * 2,
            "the leader's order budget",
            LEADER_ORDER + Duration::from_millis(1),
        ),
        (
            "the leader's order budget",
            LEADER_ORDER,
            "the front end's order call",
            FRONTEND_ORDER_CALL,
        ),
        (
            "the front end's order call",
            FRONTEND_ORDER_CALL,
            "the failover budget",
            failover,
        ),
        (
            "a health call",
            HEALTH_CALL,
            "fail-fast without a majority",
            NO_QUORUM_FAIL,
        ),
        (
            "fail-fast without a majority",
            NO_QUORUM_FAIL,
            "the failover budget",
            failover,
        ),
    ]
}

/// The front ends' cache: its lease, the catalog leader's reads and its invalidations.
fn cache_rules() -> Vec<Rule> {
    vec![
        ("3 lease renewals", LEASE_RENEW * 3, "a cache lease", LEASE),
        (
            "a renewal's wait and a renewal that timed out",
            LEASE_RENEW + LEASE_CALL,
            "a cache lease",
            LEASE,
        ),
        (
            "twice a leadership check's reuse",
            LEADERSHIP_REUSE * 2,
            "the shortest election timeout",
            ELECTION_BASE,
        ),
        (
            "an invalidation call and a whole lease",
            INVALIDATE_CALL + LEASE,
            "the catalog's durability wait",
            CATALOG_DURABLE,
        ),
    ]
}

/// Fails with the first of `rules` whose first timeout is not shorter than its second.
fn first_out_of_order(rules: Vec<Rule>) -> Result<(), String> {
    for (shorter, a, longer, b) in rules {
        if a >= b {
            return Err(format!(
                "timeouts out of order: {shorter} ({} ms) must be shorter than {longer} ({} ms)",
                a.as_millis(),
                b.as_millis()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_in_order() {
        check(3, FAILOVER, Duration::from_secs(10)).unwrap();
    }

    #[test]
    fn a_header_read_timeout_within_the_pools_idle_time_is_refused() {
        let err = check(3, FAILOVER, PEER_POOL_IDLE).unwrap_err();
        assert!(err.contains("header-read"), "{err}");
    }

    #[test]
    fn a_failover_budget_shorter_than_an_order_call_is_refused() {
        let err = check(3, Duration::from_secs(5), Duration::from_secs(10)).unwrap_err();
        assert!(err.contains("failover budget"), "{err}");
    }

    #[test]
    fn ranks_stand_in_order_and_none_turns_the_highest_away() {
        for replicas in [3, 5, 7] {
            let windows: Vec<(Duration, Duration)> = (0..replicas)
                .map(|rank| election_timeout(rank, replicas))
                .collect();
            // When a follower that heard a leader first stands: its window's top, then a time
            // from its window.
            let stands = |(min, max): (Duration, Duration)| (max + min, max + max);
            let first = stands(windows[0]).0;
            for pair in windows.windows(2) {
                assert!(
                    stands(pair[0]).1 <= stands(pair[1]).0,
                    "{replicas}: {pair:?}"
                );
            }
            for &(_, max) in &windows {
                assert!(
                    max < first,
                    "{replicas}: a refusal of {max:?} outlasts {first:?}"
                );
            }
        }
    }
}
