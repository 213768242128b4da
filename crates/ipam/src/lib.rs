//! The IPAM domain: prefixes, exact address counts, the sizing rule, free-space decisions, the
//! in-memory pool tree and pool usage. Pure and synchronous: no I/O, no clock, no serde.

pub mod count;
pub mod error;
pub mod free;
pub mod plan;
pub mod prefix;
pub mod request;
pub mod subnet;
pub mod tree;
pub mod usage;
