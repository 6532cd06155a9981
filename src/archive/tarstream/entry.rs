//! What tar is made of, apart from reading it: the block, an entry, and
//! the helpers the reader and the writer share. Needs nothing but std, so
//! that volsafe-tar (`src/streamer`), which runs inside a helper
//! container, builds the writer from the same source.

/// Tar's unit: headers, data and the end marker come in blocks of this size.
pub(super) const BLOCK: usize = 512;

/// The largest pax or GNU long-name record the reader accepts, and the cap
/// on what the extension headers before one entry, or all global pax
/// records together, may add up to. The writer refuses to exceed it.
pub const MAX_EXTENSION: u64 = 1 << 20;

/// Buffer for copying and skipping data. A file's data is hashed as it is
/// copied, and BLAKE3 hashes several 1 KiB chunks at a time but the part
/// chunk at either end of an update one 64-byte block at a time: large
/// updates leave few such ends.
pub(super) const COPY_BUF: usize = 256 * 1024;

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
    pub(super) fn is_link(self) -> bool {
        matches!(self, EntryKind::Symlink | EntryKind::HardLink)
    }

    pub(super) fn is_device(self) -> bool {
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

/// Zero bytes that bring `size` up to a whole block.
pub(super) fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// The reusable copy buffer, allocated zeroed on first use.
pub(super) fn take_scratch(scratch: &mut Vec<u8>) -> Vec<u8> {
    match std::mem::take(scratch) {
        buf if buf.len() == COPY_BUF => buf,
        _ => vec![0; COPY_BUF],
    }
}
