//! The archive format: a strict tar reader and a pax writer, the zstd frames
//! that carry volsafe's metadata, and age encryption. Nothing here knows about
//! Docker.

pub mod tarstream;
