//! End-to-end tests: real clients against a real crosspool server on loopback.

// Reason: tests may unwrap (CONVENTIONS.md), and skipped cases say why on stderr.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod support;

mod az_cli;
mod azure_identity;
mod azure_sdk;
mod portal;
