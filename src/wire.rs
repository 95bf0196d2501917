//! Every request and reply body that crosses a socket, public or internal: the API in one place.

use serde::{Deserialize, Serialize};

/// `{"data": …}`, the envelope of every successful public reply.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Data<T> {
    pub data: T,
}

/// `{"error": {"code": …, "message": …}}`, the shape of every error reply.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorDetail {
    pub code: u16,
    pub message: String,
}

/// Header of a product reply saying whether the front end's cache answered it: `hit` or `miss`.
pub const CACHE_HEADER: &str = "x-cache";

/// A product as clients see it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Product {
    pub name: String,
    pub price: f64,
    pub quantity: u64,
}

/// A product as the catalog reports it to the front end: with the version that orders cache
/// fills against invalidations.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VersionedProduct {
    pub name: String,
    pub price: f64,
    pub quantity: u64,
    pub version: u64,
}

impl From<VersionedProduct> for Product {
    fn from(p: VersionedProduct) -> Self {
        Product {
            name: p.name,
            price: p.price,
            quantity: p.quantity,
        }
    }
}

/// The header a client names an order with, so that sending it again never buys twice; every
/// reply to an order carries it back.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// `POST /orders` reply.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct OrderCreated {
    pub order_number: u64,
}

/// `GET /orders/{number}` reply.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OrderInfo {
    pub number: u64,
    pub name: String,
    pub quantity: u64,
}

/// Longest product name a request may carry.
pub const MAX_NAME_LEN: usize = 128;
/// Longest idempotency key.
pub const MAX_KEY_LEN: usize = 128;
/// Largest quantity one order may ask for; far above any stock.
pub const MAX_QUANTITY: u64 = 1_000_000;

/// Whether `key` can be an idempotency key: 1 to [`MAX_KEY_LEN`] characters of A-Z, a-z, 0-9,
/// `-`, `_`, `.`, `:` (so it is safe in a CSV field and a log line).
pub fn is_valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// An order that the front end forwards to the leader, and that the leader asks the catalog to
/// buy: the key makes a retry of it harmless.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrder {
    pub key: String,
    pub name: String,
    pub quantity: u64,
}

impl PlaceOrder {
    /// The checks the front end makes of a client's order, made again by every service that
    /// takes one, so that nothing else reaches a file.
    pub fn check(&self) -> Result<(), String> {
        if !is_valid_key(&self.key) {
            return Err(format!(
                "key must be 1 to {MAX_KEY_LEN} characters of A-Z, a-z, 0-9, '-', '_', '.', ':'"
            ));
        }
        if self.name.trim().is_empty() || self.name.len() > MAX_NAME_LEN {
            return Err(format!("name must be 1 to {MAX_NAME_LEN} bytes"));
        }
        if !(1..=MAX_QUANTITY).contains(&self.quantity) {
            return Err(format!(
                "quantity must be an integer from 1 to {MAX_QUANTITY}, not {}",
                self.quantity
            ));
        }
        Ok(())
    }
}

/// The catalog's answer to a buy: the catalog's own spelling of the name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Bought {
    pub name: String,
    pub quantity: u64,
}

/// Most orders the leader sends the catalog in one buy.
pub const MAX_BUY_BATCH: usize = 128;

/// The order leader asks the catalog to buy for the orders that arrived together: one call and
/// one durable write for all of them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BuyBatch {
    pub orders: Vec<PlaceOrder>,
    /// The order leader's term: the catalog refuses a batch from a leader older than one it has
    /// heard from (that leader was deposed).
    pub term: u64,
    /// The order log's index as of which the leader saw none of these keys settled. Left out,
    /// it is 0: the oldest, which the catalog refuses once it has retired any key.
    #[serde(default)]
    pub as_of: u64,
}

/// The catalog's answer for one order of a [`BuyBatch`], in the batch's order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum BuyOutcome {
    Bought(Bought),
    Refused(Refused),
}

/// Why the catalog refused a buy: the store's reason, kept in both groups' replicated state.
/// Encoded as a number, the same one every log and snapshot has held for it; the HTTP status a
/// client gets is told from it at the edge ([`RefusalReason::status`]).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(try_from = "u16", into = "u16")]
pub enum RefusalReason {
    /// No product has the name.
    UnknownProduct,
    /// Fewer units in stock than the order asks for.
    NotEnoughStock,
}

impl RefusalReason {
    /// The status of the reply that tells a client.
    pub fn status(self) -> u16 {
        u16::from(self)
    }
}

impl From<RefusalReason> for u16 {
    fn from(reason: RefusalReason) -> u16 {
        match reason {
            RefusalReason::UnknownProduct => 404,
            RefusalReason::NotEnoughStock => 409,
        }
    }
}

impl TryFrom<u16> for RefusalReason {
    type Error = String;
    fn try_from(code: u16) -> Result<Self, String> {
        match code {
            404 => Ok(RefusalReason::UnknownProduct),
            409 => Ok(RefusalReason::NotEnoughStock),
            other => Err(format!("no refusal has the code {other}")),
        }
    }
}

/// A refused buy: the reason, and the line that explains it to a person.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Refused {
    #[serde(rename = "code")]
    pub reason: RefusalReason,
    pub message: String,
}

/// The catalog's stock, the totals of every change made to it and the sales whose orders the
/// order group has not confirmed, read at one instant, so that a stock check never sees a
/// change in one and not the other.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StockSnapshot {
    pub products: Vec<VersionedProduct>,
    pub toys: Vec<ToyTotals>,
    pub unconfirmed: Vec<UnconfirmedBuy>,
}

/// Every unit of one toy the catalog ever counted: its stock is seeded + restocked − bought.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ToyTotals {
    pub name: String,
    pub seeded: u64,
    pub bought: u64,
    pub restocked: u64,
}

/// A buy the catalog made whose order the order service has not yet confirmed is in its log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UnconfirmedBuy {
    pub key: String,
    pub name: String,
    pub quantity: u64,
}

/// The order leader tells the catalog that these keys' orders are settled in its log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Confirm {
    pub keys: Vec<String>,
    /// The order leader's term, as in [`BuyBatch`].
    pub term: u64,
    /// An order-log index by which every one of these keys' outcomes was applied.
    pub settled_at: u64,
}

/// Most keys one confirmation or one list of unconfirmed buys carries.
pub const MAX_CONFIRM_BATCH: usize = 4096;

/// Cache invalidations the catalog pushes to the front end after stock changes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Invalidate {
    pub items: Vec<Invalidation>,
}

/// A front end asks the catalog to renew its cache lease.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeaseRequest {
    /// The front end's id in the cluster file.
    pub frontend: u32,
    /// The token of the last reset the front end emptied its cache for.
    #[serde(default)]
    pub emptied: Option<u64>,
}

/// The catalog's answer to a lease renewal.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeaseGrant {
    /// The front end missed an invalidation: it must empty its cache before it uses the lease,
    /// and send this token back with its next renewal to say it did.
    pub reset: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Invalidation {
    /// Lower-case product name, the cache key.
    pub name: String,
    /// The product's version after the change; cached replies older than it are stale.
    pub version: u64,
}

/// One order as a replica applied it: a row of `orders-N.csv`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    pub number: u64,
    pub name: String,
    pub quantity: u64,
    /// The leader term in which the order's outcome was committed.
    pub term: u64,
    /// The idempotency key of the order.
    pub key: String,
}

/// Health and role of an order replica, as its engine sees them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReplicaHealth {
    pub id: u32,
    pub role: Role,
    /// The leader this replica knows of.
    pub leader_id: Option<u32>,
    pub term: u64,
    /// True once the replica knows a leader: it takes part in the cluster.
    pub ready: bool,
    /// Orders applied here; all are committed (durable on a majority). The last order number
    /// is `len - 1`.
    pub len: u64,
    /// Index of the last entry in this replica's log (entries, not orders).
    pub log_index: Option<u64>,
    /// Index of the last entry applied here.
    pub applied_index: Option<u64>,
    /// Leader only: how far each replica's log is known to match this one's.
    #[serde(default)]
    pub replicated: Vec<Replicated>,
    /// The disk is full: the replica writes nothing, so acknowledges and votes for nothing,
    /// until there is room.
    #[serde(default)]
    pub disk_full: bool,
    /// The group's members as this replica knows them (the last membership in its log).
    #[serde(default)]
    pub members: Vec<Member>,
    /// That membership is a joint one: a change of members is under way.
    #[serde(default)]
    pub changing: bool,
    /// Drawn when this replica first started (its identity); a member removed and added again
    /// under the same id is another incarnation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incarnation: Option<String>,
    /// Connections refused for their TLS (another CA, an expired certificate, a name not in
    /// the cluster, plain HTTP), when there were any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_refused: Option<crate::tls::Refusal>,
}

/// One member of a replica group.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Member {
    pub id: u32,
    /// Where the group's replicas call it.
    pub address: String,
    /// A voter counts toward a majority; a learner only receives the log.
    pub voter: bool,
}

/// How far one replica's log is known (by the leader) to match the leader's.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Replicated {
    pub id: u32,
    /// Index of the last entry known to match; `None` until the leader has learned it.
    pub index: Option<u64>,
}

/// A replica's part in the engine.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Leader,
    Follower,
    /// Standing for election.
    Candidate,
    /// Receiving the log without a vote.
    Learner,
    /// The engine has stopped (for example after a disk error).
    Stopped,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Candidate => "candidate",
            Role::Learner => "learner",
            Role::Stopped => "stopped",
        }
    }
}

/// Health of the front end, with its cache counters.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FrontendHealth {
    pub leader_id: Option<u32>,
    /// How many order replicas answered the front end's last health poll: fewer than a
    /// majority means orders through this front end fail, whatever other hosts see.
    #[serde(default)]
    pub order_replicas_answering: Option<u32>,
    pub cache: CacheStats,
    /// Whether the catalog vouches for the cache now (it holds a lease); without one, every
    /// product query goes to the catalog.
    #[serde(default)]
    pub cache_leased: bool,
    /// Every product query's and order's latency so far, as histogram counts: two readings give
    /// the latencies between them.
    #[serde(default)]
    pub latency: FrontendLatency,
    /// Connections refused for their TLS, when there were any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_refused: Option<crate::tls::Refusal>,
}

/// The front end's latency histograms, per request type.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct FrontendLatency {
    pub query: crate::histogram::Counts,
    pub order: crate::histogram::Counts,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CacheStats {
    pub capacity: u64,
    pub size: u64,
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub invalidations: u64,
}

/// Health of a catalog replica: its part in the catalog group (`len` counts the log entries
/// applied here), and the stock it has applied.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CatalogHealth {
    #[serde(flatten)]
    pub replica: ReplicaHealth,
    pub products: u64,
    pub units_in_stock: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_keep_the_encoding_older_logs_hold() {
        let logged = r#"{"code":409,"message":"not enough Tux in stock: 0 left"}"#;
        let refused: Refused = serde_json::from_str(logged).unwrap();
        assert_eq!(refused.reason, RefusalReason::NotEnoughStock);
        assert_eq!(serde_json::to_string(&refused).unwrap(), logged);
        let unknown: Refused = serde_json::from_str(r#"{"code":404,"message":"m"}"#).unwrap();
        assert_eq!(unknown.reason.status(), 404);
        let odd = serde_json::from_str::<Refused>(r#"{"code":500,"message":"m"}"#);
        assert!(odd
            .unwrap_err()
            .to_string()
            .contains("no refusal has the code 500"));
    }
}
