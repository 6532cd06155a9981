//! The tar reader and writer volsafe reads and writes archives with, built
//! from the same files.

#![allow(dead_code)]

// Also loaded by the archive module, when the unit tests compile this.
#[allow(clippy::duplicate_mod)]
#[path = "../archive/tarstream/entry.rs"]
mod entry;
#[allow(clippy::duplicate_mod)]
#[path = "../archive/tarstream/error.rs"]
mod error;
#[allow(clippy::duplicate_mod)]
#[path = "../archive/tarstream/header.rs"]
mod header;
#[allow(clippy::duplicate_mod)]
#[path = "../archive/tarstream/read.rs"]
mod read;
#[allow(clippy::duplicate_mod)]
#[path = "../archive/tarstream/write.rs"]
mod write;

pub use entry::{Entry, EntryKind};
pub use error::TarError;
pub use read::TarReader;
pub use write::TarWriter;

use entry::{padding, take_scratch, BLOCK, MAX_EXTENSION};
