//! The reader's error. Written with std alone: volsafe-tar (build.rs)
//! reads tar with the same code and has no other crate.

use std::fmt;
use std::io;

#[derive(Debug)]
pub enum TarError {
    /// The stream ended before the end-of-archive marker, or inside a
    /// header, an entry's data or its padding. `last_entry` is the path of
    /// the entry most recently returned by `TarReader::next_entry`.
    Truncated {
        last_entry: Option<String>,
        during: &'static str,
    },
    /// A header that is not valid tar (bad checksum, bad number, unknown
    /// entry type, bad pax record). `reason` names the offending header
    /// when it has a name; `last_entry` is as for `Truncated`.
    Corrupt {
        last_entry: Option<String>,
        reason: String,
    },
    Io(io::Error),
}

impl fmt::Display for TarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TarError::Truncated { last_entry, during } => match last_entry {
                // "in the data of" reads on with the entry's name.
                Some(path) if during.ends_with(" of") => {
                    write!(f, "tar stream ended early {during} {path:?}")
                }
                Some(path) => write!(f, "tar stream ended early {during} (last entry {path:?})"),
                None => write!(f, "tar stream ended early {during} (before any entry)"),
            },
            TarError::Corrupt { last_entry, reason } => match last_entry {
                Some(path) => write!(f, "tar stream is corrupt: {reason} (last entry {path:?})"),
                None => write!(f, "tar stream is corrupt: {reason} (before any entry)"),
            },
            TarError::Io(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for TarError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // Transparent: the I/O error's own source, as its message is
            // this one's.
            TarError::Io(e) => e.source(),
            _ => None,
        }
    }
}

impl From<io::Error> for TarError {
    fn from(e: io::Error) -> TarError {
        TarError::Io(e)
    }
}

impl TarError {
    /// A reader that failed returns its error again on every later call;
    /// `io::Error` is not `Clone`, so this rebuilds one of the same kind.
    pub(super) fn duplicate(&self) -> TarError {
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
