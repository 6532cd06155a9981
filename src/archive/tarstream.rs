//! A strict streaming tar reader and a POSIX pax tar writer.
//!
//! The Docker Engine ends an archive stream early when a file shrinks while
//! it is read, and still reports success. The `tar` crate's `Archive` takes
//! such a stream for a complete one (a stream that stops on a block boundary
//! is a clean end to it, and a short last entry goes unnoticed), so volsafe
//! reads tar itself: every entry's data and padding must be there in full,
//! and only the two zero blocks of the end-of-archive marker end a stream.
//! Anything else is [`TarError::Truncated`] or [`TarError::Corrupt`], and a
//! reader that failed keeps failing, so a caller can never mistake it for a
//! clean end.
//!
//! The writer emits ustar headers, preceded by a pax extended header when a
//! value does not fit (long or non-ASCII names, files of 8 GiB and more,
//! large ids, times before 1970, xattrs). It copies exactly `size` bytes of
//! each file and fails, rather than pads, when its source runs short.
//!
//! Memory stays bounded whatever the input: pax and GNU long-name records
//! are capped at [`MAX_EXTENSION`] bytes, and data is streamed through.

mod entry;
mod error;
mod header;
mod read;
mod write;

pub use entry::{Entry, EntryKind, MAX_EXTENSION};
pub use error::TarError;
pub use read::TarReader;
pub use write::TarWriter;

use entry::{padding, take_scratch, BLOCK};

#[cfg(test)]
mod tests;
