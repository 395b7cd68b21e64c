//! Integration tests: each drives the real `loggvakt` binary against real files.
//! One test crate, so the workspace links one test binary.

// Test helpers as well as tests may unwrap and print: a failing test stops there, and says why.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, clippy::print_stderr)]

mod analyse;
mod bad_input;
mod cluster;
mod conformance;
mod crash;
mod daemon;
mod duckdb;
mod ingest;
mod objects;
mod patients;
mod serve;
mod support;
mod tamper;
mod trust;
