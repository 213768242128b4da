//! Integration tests of the IPAM domain through its public API.

// Reason: tests may unwrap (CONVENTIONS.md); helpers here are not `#[test]` functions.
#![allow(clippy::unwrap_used)]

mod oracle;
