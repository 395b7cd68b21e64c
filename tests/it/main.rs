//! Integration tests: each drives the real `loggvakt` binary against real files.
//! One test crate, so the workspace links one test binary.

mod analyse;
mod bad_input;
mod conformance;
mod crash;
mod daemon;
mod duckdb;
mod ingest;
mod serve;
mod support;
mod tamper;
mod trust;
