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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
}

/// The catalog's answer for one order of a [`BuyBatch`], in the batch's order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum BuyOutcome {
    Bought(Bought),
    /// Unknown product (404) or not enough stock (409), with the API's error.
    Refused(ErrorDetail),
}

/// Cache invalidations the catalog pushes to the front end after stock changes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Invalidate {
    pub items: Vec<Invalidation>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Invalidation {
    /// Lower-case product name, the cache key.
    pub name: String,
    /// The product's version after the change; cached replies older than it are stale.
    pub version: u64,
}

/// One entry of the replicated order log, as it is stored in `orders-N.csv` and sent to peers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    pub number: u64,
    pub name: String,
    pub quantity: u64,
    /// The leader term in which the entry was created; decides which log wins on reconciliation.
    pub term: u64,
    /// The idempotency key of the order.
    pub key: String,
}

/// The front end tells a replica who leads, and in which term.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeaderAnnouncement {
    pub leader_id: u32,
    pub term: u64,
}

/// Where an entry sits in a log: its number and the term it was created in.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogPosition {
    pub number: u64,
    pub term: u64,
}

/// The leader appends `entries` to a follower's log; `prev` must match the follower's entry just
/// before them, so logs that agree on a position agree on everything before it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Replicate {
    pub leader_id: u32,
    pub term: u64,
    pub prev: Option<LogPosition>,
    pub entries: Vec<Entry>,
    /// The leader's log length when it sent this.
    pub leader_len: u64,
}

/// A follower's answer to `Replicate`: on a mismatch it sends the tail of its log, so the leader can
/// find where the two agree.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReplicateReply {
    pub ok: bool,
    /// The follower's log length after the call.
    pub len: u64,
    pub tail: Vec<LogPosition>,
}

/// A replica asks a peer for the entries it lacks, sending the tail of its own log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SyncRequest {
    pub tail: Vec<LogPosition>,
}

/// The peer's answer: the logs agree on the first `common` entries, and `entries` follow them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SyncReply {
    pub common: u64,
    pub entries: Vec<Entry>,
}

/// Health and role of an order replica.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReplicaHealth {
    pub id: u32,
    pub role: Role,
    pub leader_id: Option<u32>,
    pub term: u64,
    /// False while the replica is still catching up: it may not lead yet.
    pub ready: bool,
    /// Number of orders in the log; the last order number is `len - 1`.
    pub len: u64,
    pub last_term: u64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Leader,
    Follower,
}

/// Health of the front end, with its cache counters.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FrontendHealth {
    pub leader_id: Option<u32>,
    pub cache: CacheStats,
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

/// Health of the catalog.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CatalogHealth {
    pub products: u64,
    pub units_in_stock: u64,
}
