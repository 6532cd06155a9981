//! The strict reader: a tar stream is accepted only with every header,
//! data byte and padding byte in place and the whole end-of-archive marker
//! after them. Pax ('x', 'g') and GNU long-name ('L', 'K') headers are
//! folded into the entry they describe.

use std::io::{self, Read, Write};

use super::header::{self, RawHeader, Record, XATTR_PREFIX};
use super::{padding, take_scratch, Entry, EntryKind, TarError, BLOCK, MAX_EXTENSION};

enum State {
    Entries,
    /// The end-of-archive marker was read.
    End,
    Failed(TarError),
}

/// Reads a tar stream strictly; see the module docs of `tarstream`.
pub struct TarReader<R> {
    inner: R,
    state: State,
    /// Data bytes of the current entry not read yet, then its padding.
    remaining: u64,
    padding: u64,
    last_entry: Option<String>,
    /// Records of pax 'g' headers, applied to every later entry.
    globals: Records,
    entries_read: u64,
    bytes_read: u64,
    scratch: Vec<u8>,
}

impl<R: Read> TarReader<R> {
    pub fn new(inner: R) -> Self {
        TarReader {
            inner,
            state: State::Entries,
            remaining: 0,
            padding: 0,
            last_entry: None,
            globals: Records::default(),
            entries_read: 0,
            bytes_read: 0,
            scratch: Vec::new(),
        }
    }

    /// Next entry header; skips any unread data (and padding) of the
    /// previous entry first. `Ok(None)` only after a complete
    /// end-of-archive marker (two zero blocks). After an error, every call
    /// returns that error again.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, TarError> {
        match &self.state {
            State::Entries => {}
            State::End => return Ok(None),
            State::Failed(e) => return Err(e.duplicate()),
        }
        let result = self.read_header();
        match &result {
            Ok(Some(entry)) => {
                self.entries_read += 1;
                self.last_entry = Some(entry.path_lossy());
            }
            Ok(None) => self.state = State::End,
            Err(e) => self.state = State::Failed(e.duplicate()),
        }
        result
    }

    /// Reads the current entry's data; `Ok(0)` at its end. A stream that
    /// ends inside the data is [`TarError::Truncated`].
    pub fn read_data(&mut self, buf: &mut [u8]) -> Result<usize, TarError> {
        if let State::Failed(e) = &self.state {
            return Err(e.duplicate());
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let result = loop {
            match self.inner.read(&mut buf[..want]) {
                Ok(0) => break Err(self.truncated("in the data of")),
                Ok(n) => {
                    let n = n.min(want);
                    self.remaining -= n as u64;
                    self.bytes_read += n as u64;
                    break Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(TarError::Io(e)),
            }
        };
        if let Err(e) = &result {
            self.state = State::Failed(e.duplicate());
        }
        result
    }

    /// Copies the rest of the current entry's data into `out`; returns the
    /// number of bytes copied. An error writing to `out` leaves the reader
    /// usable, but the bytes in flight are lost.
    pub fn copy_data<W: Write + ?Sized>(&mut self, out: &mut W) -> Result<u64, TarError> {
        let mut buf = take_scratch(&mut self.scratch);
        let mut copied = 0u64;
        let result = loop {
            match self.read_data(&mut buf) {
                Ok(0) => break Ok(copied),
                Ok(n) => match out.write_all(&buf[..n]) {
                    Ok(()) => copied += n as u64,
                    Err(e) => break Err(TarError::Io(e)),
                },
                Err(e) => break Err(e),
            }
        };
        self.scratch = buf;
        result
    }

    /// Entries returned so far (pax and GNU extension headers not counted).
    pub fn entries_read(&self) -> u64 {
        self.entries_read
    }

    /// Bytes consumed from the inner reader so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// The inner reader. After the end marker, whatever follows it (such
    /// as GNU tar's padding to a 10 KiB record) is still unread there.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn read_header(&mut self) -> Result<Option<Entry>, TarError> {
        self.skip(self.remaining, "in the data of")?;
        self.remaining = 0;
        self.skip(self.padding, "in the padding of")?;
        self.padding = 0;

        let mut pending = Pending::default();
        let mut block = [0u8; BLOCK];
        loop {
            let n = self.read_full(&mut block)?;
            if n == 0 && !pending.seen {
                return Err(self.truncated("before the end-of-archive marker"));
            }
            if n < BLOCK {
                return Err(self.truncated("in a header"));
            }
            if block.iter().all(|&b| b == 0) {
                if pending.seen {
                    let reason = "end-of-archive marker right after an extension header";
                    return Err(self.corrupt(reason.into()));
                }
                return self.read_second_zero_block().map(|()| None);
            }
            let raw = RawHeader::parse(&block).map_err(|r| self.corrupt(r))?;
            if !matches!(raw.typeflag, b'x' | b'g' | b'L' | b'K') {
                let entry =
                    build_entry(raw, pending, &self.globals).map_err(|r| self.corrupt(r))?;
                if entry.kind == EntryKind::File {
                    self.remaining = entry.size;
                    self.padding = padding(entry.size);
                }
                return Ok(Some(entry));
            }
            self.read_extension(&raw, &mut pending)?;
        }
    }

    /// The end marker is two zero blocks: one alone is a cut stream, or,
    /// with more after it, a corrupt one.
    fn read_second_zero_block(&mut self) -> Result<(), TarError> {
        let mut block = [0u8; BLOCK];
        if self.read_full(&mut block)? < BLOCK {
            return Err(self.truncated("inside the end-of-archive marker"));
        }
        if block.iter().any(|&b| b != 0) {
            return Err(self.corrupt("lone zero block".into()));
        }
        Ok(())
    }

    /// Reads a pax or GNU long-name header's data into `pending`, or into
    /// the global records.
    fn read_extension(&mut self, raw: &RawHeader, pending: &mut Pending) -> Result<(), TarError> {
        pending.seen = true;
        pending.bytes = pending.bytes.saturating_add(raw.size);
        if raw.size > MAX_EXTENSION || pending.bytes > MAX_EXTENSION {
            // Refused before reading, so that memory stays bounded.
            return Err(self.corrupt(format!(
                "extension headers up to {:?} exceed the limit of {MAX_EXTENSION} bytes",
                raw.name_lossy()
            )));
        }
        let mut data = vec![0u8; raw.size as usize];
        if self.read_full(&mut data)? < data.len() {
            return Err(self.truncated("in an extension header"));
        }
        self.skip(padding(raw.size), "in an extension header")?;

        match raw.typeflag {
            b'x' => pending.records.merge(self.parse_pax(&data)?, false),
            b'g' => {
                let records = self.parse_pax(&data)?;
                self.globals.merge(records, true);
                if self.globals.bytes > MAX_EXTENSION {
                    let reason = format!("global pax records exceed {MAX_EXTENSION} bytes");
                    return Err(self.corrupt(reason));
                }
            }
            b'L' => pending.long_name = Some(header::until_nul(&data).to_vec()),
            _ => pending.long_link = Some(header::until_nul(&data).to_vec()),
        }
        Ok(())
    }

    fn parse_pax(&self, data: &[u8]) -> Result<Vec<Record>, TarError> {
        header::parse_pax(data).map_err(|r| self.corrupt(r))
    }

    /// Consumes `n` bytes that must be there.
    fn skip(&mut self, mut n: u64, during: &'static str) -> Result<(), TarError> {
        if n == 0 {
            return Ok(());
        }
        let mut buf = take_scratch(&mut self.scratch);
        let result = loop {
            let want = buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
            match self.read_full(&mut buf[..want]) {
                Ok(got) if got == want => n -= got as u64,
                Ok(_) => break Err(self.truncated(during)),
                Err(e) => break Err(e),
            }
            if n == 0 {
                break Ok(());
            }
        };
        self.scratch = buf;
        result
    }

    /// Fills `buf` unless the stream ends first; returns the bytes read.
    fn read_full(&mut self, buf: &mut [u8]) -> Result<usize, TarError> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.inner.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => {
                    let n = n.min(buf.len() - filled);
                    filled += n;
                    self.bytes_read += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(TarError::Io(e)),
            }
        }
        Ok(filled)
    }

    fn truncated(&self, during: &'static str) -> TarError {
        let last_entry = self.last_entry.clone();
        TarError::Truncated { last_entry, during }
    }

    fn corrupt(&self, reason: String) -> TarError {
        let last_entry = self.last_entry.clone();
        TarError::Corrupt { last_entry, reason }
    }
}

/// The current entry's data as a byte stream, for `io::copy` and hashers.
impl<R: Read> Read for TarReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_data(buf).map_err(io::Error::from)
    }
}

/// What extension headers said about the entry that follows them.
#[derive(Default)]
struct Pending {
    seen: bool,
    bytes: u64,
    records: Records,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
}

/// Pax records in the order they came, a later one replacing an earlier
/// one with the same key.
#[derive(Default)]
struct Records {
    list: Vec<Record>,
    bytes: u64,
}

impl Records {
    /// In global records an empty value deletes the keyword (POSIX); in an
    /// entry's records it is kept, to undo a global value when applied.
    /// An xattr with an empty value is a real, empty xattr either way.
    fn merge(&mut self, records: Vec<Record>, global: bool) {
        for (key, value) in records {
            if let Some(i) = self.list.iter().position(|(k, _)| *k == key) {
                let (k, v) = self.list.remove(i);
                self.bytes -= (k.len() + v.len()) as u64;
            }
            if global && value.is_empty() && !key.starts_with(XATTR_PREFIX) {
                continue;
            }
            self.bytes += (key.len() + value.len()) as u64;
            self.list.push((key, value));
        }
    }
}

fn build_entry(raw: RawHeader, pending: Pending, globals: &Records) -> Result<Entry, String> {
    let kind = match raw.typeflag {
        b'0' | b'7' => EntryKind::File,
        // Old tars marked directories only by the trailing slash.
        b'\0' if raw.name.ends_with(b"/") => EntryKind::Dir,
        b'\0' => EntryKind::File,
        b'1' => EntryKind::HardLink,
        b'2' => EntryKind::Symlink,
        b'3' => EntryKind::CharDevice,
        b'4' => EntryKind::BlockDevice,
        b'5' => EntryKind::Dir,
        b'6' => EntryKind::Fifo,
        other => {
            let shown = if other.is_ascii_graphic() {
                format!("'{}'", other as char)
            } else {
                format!("0x{other:02x}")
            };
            let name = pending.long_name.as_deref().unwrap_or(&raw.name);
            let name = String::from_utf8_lossy(name);
            return Err(format!("unsupported entry type {shown} for {name:?}"));
        }
    };
    let base = Entry {
        path: pending.long_name.unwrap_or(raw.name),
        kind,
        mode: raw.mode,
        uid: raw.uid,
        gid: raw.gid,
        uname: raw.uname,
        gname: raw.gname,
        mtime: raw.mtime,
        size: raw.size,
        link: Some(pending.long_link.unwrap_or(raw.link)),
        dev_major: raw.dev_major,
        dev_minor: raw.dev_minor,
        xattrs: Vec::new(),
    };
    let mut entry = base.clone();
    for (key, value) in globals.list.iter().chain(&pending.records.list) {
        apply_record(&mut entry, &base, key, value)?;
    }
    if entry.path.is_empty() {
        return Err("entry with an empty name".into());
    }
    if !kind.is_link() {
        entry.link = None;
    }
    // Only regular files have data, whatever the size field says, as in
    // Go's archive/tar, which the Docker Engine uses.
    if kind != EntryKind::File {
        entry.size = 0;
    }
    Ok(entry)
}

/// Applies one pax record. An empty value brings back the value of the
/// header itself (POSIX: it deletes the keyword).
fn apply_record(entry: &mut Entry, base: &Entry, key: &[u8], value: &[u8]) -> Result<(), String> {
    if let Some(name) = key.strip_prefix(XATTR_PREFIX) {
        entry.xattrs.retain(|(n, _)| n != name);
        entry.xattrs.push((name.to_vec(), value.to_vec()));
        return Ok(());
    }
    if key.starts_with(b"GNU.sparse.") {
        return Err(format!("unsupported sparse file {:?}", base.path_lossy()));
    }
    let bad = || {
        let key = String::from_utf8_lossy(key);
        let value = String::from_utf8_lossy(value);
        format!("bad pax {key} value {value:?} for {:?}", base.path_lossy())
    };
    let number = || header::parse_decimal(value).ok_or_else(bad);
    let reset = value.is_empty();
    match key {
        b"path" if reset => entry.path = base.path.clone(),
        b"path" => entry.path = value.to_vec(),
        b"linkpath" if reset => entry.link = base.link.clone(),
        b"linkpath" => entry.link = Some(value.to_vec()),
        b"uname" => entry.uname = if reset { &base.uname } else { value }.to_vec(),
        b"gname" => entry.gname = if reset { &base.gname } else { value }.to_vec(),
        b"size" => entry.size = if reset { base.size } else { number()? },
        b"uid" => entry.uid = if reset { base.uid } else { number()? },
        b"gid" => entry.gid = if reset { base.gid } else { number()? },
        b"mtime" if reset => entry.mtime = base.mtime,
        b"mtime" => entry.mtime = header::parse_pax_time(value).ok_or_else(bad)?,
        // atime, ctime, charset, comment and vendor keywords change nothing
        // volsafe restores.
        _ => {}
    }
    Ok(())
}
