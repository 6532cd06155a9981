//! The tar writer volsafe writes archives with, built from the same files.

#![allow(dead_code)]

#[path = "../archive/tarstream/entry.rs"]
mod entry;
#[path = "../archive/tarstream/header.rs"]
mod header;
#[path = "../archive/tarstream/write.rs"]
mod write;

pub use entry::{Entry, EntryKind};
pub use write::TarWriter;

use entry::{padding, take_scratch, BLOCK, MAX_EXTENSION};
