//! Tests of the `crosspool` binary and of the server it runs, over real HTTPS on loopback.

// Reason: tests may unwrap (CONVENTIONS.md).
#![allow(clippy::unwrap_used)]

mod support;

mod admin;
mod arm;
mod authorize;
mod device;
mod graph;
mod identity;
