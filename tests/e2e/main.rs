//! End-to-end tests: the `volsafe` binary against this machine's Docker
//! daemon, on real volumes that each test creates and removes.
//!
//! One integration binary with topic modules. Every test is independent and
//! parallel-safe: names carry a per-process, per-test prefix (`vstest-…`),
//! and guards remove volumes and containers on every path. Fixtures run in
//! a local busybox image built by `docker import`; nothing is pulled.

mod common;
mod fixtures;

mod changing;
mod check;
mod drill;
mod encryption;
mod errors;
mod harness;
mod interop;
mod keys;
mod layout;
mod lifecycle;
mod orchestration;
mod prune;
mod roundtrip;
mod schedule;
mod streaming;
