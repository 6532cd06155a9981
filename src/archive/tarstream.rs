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
mod header;
mod read;
mod write;

pub use entry::{Entry, EntryKind, MAX_EXTENSION};
pub use read::TarReader;
pub use write::TarWriter;

use entry::{padding, take_scratch, BLOCK};
use std::io;

#[derive(Debug, thiserror::Error)]
pub enum TarError {
    /// The stream ended before the end-of-archive marker, or inside a
    /// header, an entry's data or its padding. `last_entry` is the path of
    /// the entry most recently returned by [`TarReader::next_entry`].
    #[error("{}", truncated_message(.last_entry, .during))]
    Truncated {
        last_entry: Option<String>,
        during: &'static str,
    },
    /// A header that is not valid tar (bad checksum, bad number, unknown
    /// entry type, bad pax record). `reason` names the offending header
    /// when it has a name; `last_entry` is as for `Truncated`.
    #[error("{}", corrupt_message(.last_entry, .reason))]
    Corrupt {
        last_entry: Option<String>,
        reason: String,
    },
    #[error(transparent)]
    Io(#[from] io::Error),
}

fn truncated_message(last_entry: &Option<String>, during: &str) -> String {
    match last_entry {
        // "in the data of" reads on with the entry's name.
        Some(path) if during.ends_with(" of") => {
            format!("tar stream ended early {during} {path:?}")
        }
        Some(path) => {
            format!("tar stream ended early {during} (last entry {path:?})")
        }
        None => format!("tar stream ended early {during} (before any entry)"),
    }
}

fn corrupt_message(last_entry: &Option<String>, reason: &str) -> String {
    match last_entry {
        Some(path) => {
            format!("tar stream is corrupt: {reason} (last entry {path:?})")
        }
        None => format!("tar stream is corrupt: {reason} (before any entry)"),
    }
}

impl TarError {
    /// A reader that failed returns its error again on every later call;
    /// `io::Error` is not `Clone`, so this rebuilds one of the same kind.
    fn duplicate(&self) -> TarError {
        match self {
            TarError::Truncated { last_entry, during } => TarError::Truncated {
                last_entry: last_entry.clone(),
                during,
            },
            TarError::Corrupt { last_entry, reason } => TarError::Corrupt {
                last_entry: last_entry.clone(),
                reason: reason.clone(),
            },
            TarError::Io(e) => TarError::Io(io::Error::new(e.kind(), e.to_string())),
        }
    }
}

/// For `Read` implementations: a cut stream is `UnexpectedEof` and a
/// corrupt one `InvalidData`, the `TarError` inside either.
impl From<TarError> for io::Error {
    fn from(err: TarError) -> io::Error {
        match err {
            TarError::Io(e) => e,
            TarError::Truncated { .. } => io::Error::new(io::ErrorKind::UnexpectedEof, err),
            TarError::Corrupt { .. } => io::Error::new(io::ErrorKind::InvalidData, err),
        }
    }
}

#[cfg(test)]
mod tests;
