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

mod header;
mod read;
mod write;

pub use read::TarReader;
pub use write::TarWriter;

use std::io;

/// Tar's unit: headers, data and the end marker come in blocks of this size.
const BLOCK: usize = 512;

/// The largest pax or GNU long-name record the reader accepts, and the cap
/// on what the extension headers before one entry, or all global pax
/// records together, may add up to. The writer refuses to exceed it.
pub const MAX_EXTENSION: u64 = 1 << 20;

/// Buffer for copying and skipping data. A file's data is hashed as it is
/// copied, and BLAKE3 hashes several 1 KiB chunks at a time but the part
/// chunk at either end of an update one 64-byte block at a time: large
/// updates leave few such ends.
const COPY_BUF: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    HardLink,
    Fifo,
    CharDevice,
    BlockDevice,
}

impl EntryKind {
    fn is_link(self) -> bool {
        matches!(self, EntryKind::Symlink | EntryKind::HardLink)
    }

    fn is_device(self) -> bool {
        matches!(self, EntryKind::CharDevice | EntryKind::BlockDevice)
    }
}

/// One archive member, with every name resolved from pax and GNU records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Full name, raw bytes (may be non-UTF-8).
    pub path: Vec<u8>,
    pub kind: EntryKind,
    /// Permission bits including setuid, setgid and sticky (`0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub uname: Vec<u8>,
    pub gname: Vec<u8>,
    /// Whole seconds. A pax time with a fraction is rounded down, so
    /// `-1.5` is `-2`: the seconds part of the instant, as GNU tar and Go
    /// take it.
    pub mtime: i64,
    /// Data bytes that follow the header; always 0 for non-files.
    pub size: u64,
    /// Symlink or hard-link target; `None` for other kinds.
    pub link: Option<Vec<u8>>,
    pub dev_major: u32,
    pub dev_minor: u32,
    /// From pax `SCHILY.xattr.<name>` records, names without the prefix.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Entry {
    /// The path for messages; not to be used to name files.
    pub fn path_lossy(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
    }
}

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

/// Zero bytes that bring `size` up to a whole block.
fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// The reusable copy buffer, allocated zeroed on first use.
fn take_scratch(scratch: &mut Vec<u8>) -> Vec<u8> {
    match std::mem::take(scratch) {
        buf if buf.len() == COPY_BUF => buf,
        _ => vec![0; COPY_BUF],
    }
}

#[cfg(test)]
mod tests;
