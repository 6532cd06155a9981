//! volsafe: back up Docker named volumes into `age(zstd(tar))` archives and
//! restore them exactly.
//!
//! The binary in `main.rs` only parses arguments and maps errors to exit
//! codes; everything else lives here so tests can reach it.

pub mod archive;
