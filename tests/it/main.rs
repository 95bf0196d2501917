//! The integration tests, as one test binary: real `storectl` processes, real files, real
//! sockets on free ports. One binary links once, however many modules change.
//!
//! Run one area with a filter, e.g. `cargo test --test it failures::`.

mod common;

mod api;
mod architecture;
mod bench;
mod browser;
mod cluster;
mod crash_points;
mod deploy;
mod disk;
mod failures;
mod generated;
mod hostile;
mod internal;
mod limits;
mod lossy;
mod members;
mod membership;
mod netns;
mod partitions;
mod several;
mod tls;
mod top;
mod verbs;
