//! A disk for tests that loses, at a power cut, everything that was not synced: a FUSE file
//! system over a real directory (`storectl lossy-disk`), so that the store's fsyncs, directory
//! fsyncs and atomic renames are tested the way a real power loss tests them.
//!
//! [`disk`] is the bookkeeping of what a cut takes back, [`fuse`] serves it to the kernel.

pub mod disk;
pub mod fuse;
