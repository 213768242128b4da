//! Tests of the `crosspool` binary and of the server it runs, over real HTTPS on loopback.

// Reason: tests may unwrap (CONVENTIONS.md) and say on stderr why they skip.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod support;

mod burst;
mod pg_cluster;

mod admin;
mod arm;
mod authorize;
mod backup;
mod coverage;
mod device;
mod graph;
mod hardening;
mod identity;
mod logs;
mod metrics;
mod network;
mod openapi;
mod operate;
mod outage;
mod resources;
mod security;
mod tidy;
