//! Behaviour tests of the store. Every test runs on SQLite and on PostgreSQL from one body.

// Reason: tests may unwrap (CONVENTIONS.md), and a skipped PostgreSQL case says why on stderr.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod support;

mod cache;
mod concurrency;
mod crash;
mod differential;
mod open;
mod pool;
mod resource;
