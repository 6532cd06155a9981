//! The archive format: a strict tar reader and a pax writer, the zstd frames
//! that carry volsafe's metadata, and age encryption. Nothing here knows about
//! Docker; `docs/format.md` describes the bytes.

pub mod crypto;
pub mod digest;
mod handoff;
pub mod manifest;
pub mod meta;
pub mod names;
pub mod reader;
pub mod tarstream;
pub mod writer;

pub use reader::{walk, ArchiveReader, EntryData, Summary};
pub use writer::{ArchiveWriter, Written};

#[cfg(test)]
mod tests;
