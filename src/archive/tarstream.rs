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

use std::io::{self, Read, Write};

/// Tar's unit: headers, data and the end marker come in blocks of this size.
const BLOCK: usize = 512;

/// The largest pax or GNU long-name record the reader accepts (and the cap
/// on what a run of them, or all global records together, may add up to).
pub const MAX_EXTENSION: u64 = 1 << 20;

/// Largest value each ustar numeric field holds in octal.
const MAX_OCTAL_7: u64 = 0o7777777;
const MAX_OCTAL_11: u64 = 0o77777777777;

/// Longest uname/gname that fits the 32-byte field with its NUL.
const MAX_OWNER_NAME: usize = 31;

/// Scratch buffer for skipping and copying data.
const COPY_BUF: usize = 64 * 1024;

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
    fn typeflag(self) -> u8 {
        match self {
            EntryKind::File => b'0',
            EntryKind::HardLink => b'1',
            EntryKind::Symlink => b'2',
            EntryKind::CharDevice => b'3',
            EntryKind::BlockDevice => b'4',
            EntryKind::Dir => b'5',
            EntryKind::Fifo => b'6',
        }
    }

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
    /// Whole seconds; a pax time with a fraction is rounded down, so
    /// `-1.5` is `-2`, the seconds part of the timestamp it describes.
    pub mtime: i64,
    /// Data bytes that follow the header; always 0 for non-files.
    pub size: u64,
    /// Symlink or hard-link target.
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
    /// header, an entry's data or its padding. `last_entry` is the entry
    /// most recently returned by [`TarReader::next_entry`].
    #[error("{}", truncated_message(.last_entry, .during))]
    Truncated {
        last_entry: Option<String>,
        during: &'static str,
    },
    /// A header that is not valid tar (bad checksum, bad number, unknown
    /// entry type, bad pax record). `reason` names the offending header
    /// when it has a readable name; `last_entry` is as for `Truncated`.
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
        Some(path) => format!("tar stream ended early {during} (last entry {path:?})"),
        None => format!("tar stream ended early {during} (before any entry)"),
    }
}

fn corrupt_message(last_entry: &Option<String>, reason: &str) -> String {
    match last_entry {
        Some(path) => format!("tar stream is corrupt: {reason} (last entry {path:?})"),
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

impl From<TarError> for io::Error {
    fn from(err: TarError) -> io::Error {
        match err {
            TarError::Io(e) => e,
            TarError::Truncated { .. } => io::Error::new(io::ErrorKind::UnexpectedEof, err),
            TarError::Corrupt { .. } => io::Error::new(io::ErrorKind::InvalidData, err),
        }
    }
}

enum ReadState {
    Entries,
    /// The end-of-archive marker was read.
    End,
    Failed(TarError),
}

/// Reads a tar stream strictly; see the module docs.
pub struct TarReader<R> {
    inner: R,
    state: ReadState,
    /// Data bytes of the current entry not yet read, then its padding.
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
            state: ReadState::Entries,
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
    /// end-of-archive marker (two zero blocks).
    pub fn next_entry(&mut self) -> Result<Option<Entry>, TarError> {
        match &self.state {
            ReadState::Entries => {}
            ReadState::End => return Ok(None),
            ReadState::Failed(e) => return Err(e.duplicate()),
        }
        let result = self.read_header();
        match &result {
            Ok(Some(entry)) => {
                self.entries_read += 1;
                self.last_entry = Some(entry.path_lossy());
            }
            Ok(None) => self.state = ReadState::End,
            Err(e) => self.state = ReadState::Failed(e.duplicate()),
        }
        result
    }

    /// Reads the current entry's data; `Ok(0)` at its end. A stream that
    /// ends inside the data is [`TarError::Truncated`].
    pub fn read_data(&mut self, buf: &mut [u8]) -> Result<usize, TarError> {
        if let ReadState::Failed(e) = &self.state {
            return Err(e.duplicate());
        }
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        loop {
            match self.inner.read(&mut buf[..want]) {
                Ok(0) => return Err(self.fail_truncated("in the data of")),
                Ok(n) => {
                    let n = n.min(want);
                    self.remaining -= n as u64;
                    self.bytes_read += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.fail(e.into())),
            }
        }
    }

    /// Copies the rest of the current entry's data into `out`; returns the
    /// number of bytes copied. An error writing to `out` leaves the reader
    /// usable but the bytes in flight lost.
    pub fn copy_data<W: Write + ?Sized>(&mut self, out: &mut W) -> Result<u64, TarError> {
        let mut buf = std::mem::take(&mut self.scratch);
        buf.resize(COPY_BUF, 0);
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
            let n = self
                .read_full(&mut block)
                .map_err(|e| self.fail(e.into()))?;
            if n == 0 && pending.is_empty() {
                return Err(self.fail_truncated("before the end-of-archive marker"));
            }
            if n < BLOCK {
                return Err(self.fail_truncated("in a header"));
            }
            if block.iter().all(|&b| b == 0) {
                if !pending.is_empty() {
                    return Err(self.fail_corrupt(
                        "end-of-archive marker right after an extension header".into(),
                    ));
                }
                let n = self
                    .read_full(&mut block)
                    .map_err(|e| self.fail(e.into()))?;
                if n < BLOCK {
                    return Err(self.fail_truncated("inside the end-of-archive marker"));
                }
                if block.iter().any(|&b| b != 0) {
                    return Err(self.fail_corrupt("lone zero block".into()));
                }
                return Ok(None);
            }

            let raw = RawHeader::parse(&block).map_err(|r| self.fail_corrupt(r))?;
            match raw.typeflag {
                b'x' | b'g' | b'L' | b'K' => {
                    let data = self.read_extension(&raw)?;
                    pending.bytes += data.len() as u64;
                    if pending.bytes > MAX_EXTENSION {
                        return Err(self.fail_corrupt(format!(
                            "extension headers before {:?} exceed {MAX_EXTENSION} bytes",
                            raw.name_lossy()
                        )));
                    }
                    match raw.typeflag {
                        b'x' | b'g' => {
                            let records = parse_pax(&data).map_err(|r| self.fail_corrupt(r))?;
                            let global = raw.typeflag == b'g';
                            let target = if global {
                                &mut self.globals
                            } else {
                                &mut pending.records
                            };
                            target.merge(records, global);
                        }
                        b'L' => pending.long_name = Some(until_nul(&data).to_vec()),
                        _ => pending.long_link = Some(until_nul(&data).to_vec()),
                    }
                    if self.globals.bytes > MAX_EXTENSION {
                        return Err(self.fail_corrupt(format!(
                            "global pax records exceed {MAX_EXTENSION} bytes"
                        )));
                    }
                    pending.seen = true;
                }
                _ => {
                    let entry = build_entry(raw, pending, &self.globals)
                        .map_err(|r| self.fail_corrupt(r))?;
                    if entry.kind == EntryKind::File {
                        self.remaining = entry.size;
                        self.padding = padding(entry.size);
                    }
                    return Ok(Some(entry));
                }
            }
        }
    }

    /// Reads the data of a pax or GNU long-name header, and its padding.
    fn read_extension(&mut self, raw: &RawHeader) -> Result<Vec<u8>, TarError> {
        if raw.size > MAX_EXTENSION {
            return Err(self.fail_corrupt(format!(
                "extension header {:?} of {} bytes exceeds the {MAX_EXTENSION} byte limit",
                raw.name_lossy(),
                raw.size
            )));
        }
        let len = raw.size as usize;
        let mut data = vec![0u8; len];
        let n = self.read_full(&mut data).map_err(|e| self.fail(e.into()))?;
        if n < len {
            return Err(self.fail_truncated("in an extension header"));
        }
        self.skip(padding(raw.size), "in an extension header")?;
        Ok(data)
    }

    /// Consumes `n` bytes that must be there.
    fn skip(&mut self, mut n: u64, during: &'static str) -> Result<(), TarError> {
        if n == 0 {
            return Ok(());
        }
        let mut buf = std::mem::take(&mut self.scratch);
        buf.resize(COPY_BUF, 0);
        let result = loop {
            if n == 0 {
                break Ok(());
            }
            let want = buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
            match self.read_full(&mut buf[..want]) {
                Ok(got) if got == want => n -= got as u64,
                Ok(_) => break Err(self.fail_truncated(during)),
                Err(e) => break Err(self.fail(e.into())),
            }
        };
        self.scratch = buf;
        result
    }

    /// Fills `buf` unless the stream ends first; returns the bytes read.
    fn read_full(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.inner.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => {
                    filled += n;
                    self.bytes_read += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(filled)
    }

    fn fail(&mut self, err: TarError) -> TarError {
        self.state = ReadState::Failed(err.duplicate());
        err
    }

    fn fail_truncated(&mut self, during: &'static str) -> TarError {
        let last_entry = self.last_entry.clone();
        self.fail(TarError::Truncated { last_entry, during })
    }

    fn fail_corrupt(&mut self, reason: String) -> TarError {
        let last_entry = self.last_entry.clone();
        self.fail(TarError::Corrupt { last_entry, reason })
    }
}

/// The entry's data as a byte stream, for `io::copy` and hashers.
impl<R: Read> Read for TarReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_data(buf).map_err(io::Error::from)
    }
}

fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

fn until_nul(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(end) => &bytes[..end],
        None => bytes,
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

impl Pending {
    fn is_empty(&self) -> bool {
        !self.seen
    }
}

/// Pax records in the order they came, a later one replacing an earlier
/// one with the same key.
#[derive(Default)]
struct Records {
    list: Vec<(Vec<u8>, Vec<u8>)>,
    bytes: u64,
}

impl Records {
    /// In global records an empty value deletes the keyword (POSIX); in an
    /// entry's records it is kept, to undo a global value when applied.
    /// An xattr with an empty value is a real, empty xattr either way.
    fn merge(&mut self, records: Vec<(Vec<u8>, Vec<u8>)>, global: bool) {
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

const XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";

/// Splits pax extended header data into `(key, value)` records of the
/// form "<len> <key>=<value>\n", where len counts the whole record.
fn parse_pax(mut data: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>, String> {
    let mut records = Vec::new();
    while !data.is_empty() {
        let bad = || {
            format!(
                "bad pax record {:?}",
                String::from_utf8_lossy(&data[..data.len().min(40)])
            )
        };
        let space = data.iter().position(|&b| b == b' ').ok_or_else(bad)?;
        let len = parse_decimal(&data[..space]).ok_or_else(bad)?;
        let len = usize::try_from(len).map_err(|_| bad())?;
        if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err(bad());
        }
        let record = &data[space + 1..len - 1];
        let eq = record.iter().position(|&b| b == b'=').ok_or_else(bad)?;
        if eq == 0 {
            return Err(bad());
        }
        records.push((record[..eq].to_vec(), record[eq + 1..].to_vec()));
        data = &data[len..];
    }
    Ok(records)
}

fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        if d.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        } else {
            None
        }
    })
}

/// A pax time, `[-]seconds[.fraction]`, rounded down to whole seconds.
fn parse_pax_time(value: &[u8]) -> Option<i64> {
    let (negative, value) = match value.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, value),
    };
    let (whole, fraction) = match value.iter().position(|&b| b == b'.') {
        Some(dot) => (&value[..dot], &value[dot + 1..]),
        None => (value, &b""[..]),
    };
    if !fraction.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let seconds = i64::try_from(parse_decimal(whole)?).ok()?;
    if !negative {
        return Some(seconds);
    }
    let below = fraction.iter().any(|&d| d != b'0');
    (-seconds).checked_sub(i64::from(below))
}

/// A numeric header field: octal text padded with spaces or NULs (empty is
/// 0), or GNU base-256 when the high bit of the first byte is set.
fn parse_numeric(field: &[u8]) -> Option<i64> {
    let first = *field.first()?;
    if first & 0x80 != 0 {
        // Base-256 two's complement; bit 0x40 is the sign.
        let flip = if first & 0x40 != 0 { 0xff } else { 0 };
        let mut n: u64 = 0;
        for (i, &b) in field.iter().enumerate() {
            let b = if i == 0 { (b ^ flip) & 0x7f } else { b ^ flip };
            if n >> 56 != 0 {
                return None;
            }
            n = n << 8 | u64::from(b);
        }
        let n = i64::try_from(n).ok()?;
        return Some(if flip != 0 { !n } else { n });
    }
    let text = trim_field(field);
    text.iter().try_fold(0i64, |n, &d| {
        if (b'0'..=b'7').contains(&d) {
            n.checked_mul(8)?.checked_add(i64::from(d - b'0'))
        } else {
            None
        }
    })
}

fn trim_field(field: &[u8]) -> &[u8] {
    let pad = |b: &u8| *b == b' ' || *b == 0;
    let start = field.iter().position(|b| !pad(b)).unwrap_or(field.len());
    let end = field.iter().rposition(|b| !pad(b)).map_or(start, |i| i + 1);
    &field[start..end]
}

/// The fields of one header block, before pax and GNU records apply.
struct RawHeader {
    typeflag: u8,
    name: Vec<u8>,
    link: Vec<u8>,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: i64,
    uname: Vec<u8>,
    gname: Vec<u8>,
    dev_major: u32,
    dev_minor: u32,
}

impl RawHeader {
    fn parse(block: &[u8; BLOCK]) -> Result<RawHeader, String> {
        check_checksum(block)?;

        let ustar = &block[257..265] == b"ustar\x0000";
        let gnu = &block[257..265] == b"ustar  \x00";
        let mut name = until_nul(&block[0..100]).to_vec();
        if ustar {
            // star keeps atime/ctime after a shorter prefix and marks it.
            let prefix_end = if &block[508..512] == b"tar\0" {
                476
            } else {
                500
            };
            let prefix = until_nul(&block[345..prefix_end]);
            if !prefix.is_empty() {
                name = [prefix, b"/", &name].concat();
            }
        }
        let typeflag = block[156];
        let lossy = String::from_utf8_lossy(&name).into_owned();
        let number = |range: std::ops::Range<usize>, what: &str| {
            parse_numeric(&block[range])
                .ok_or_else(|| format!("bad {what} field in the header of {lossy:?}"))
        };
        let unsigned = |range: std::ops::Range<usize>, what: &str| {
            number(range, what).and_then(|n| {
                u64::try_from(n).map_err(|_| format!("negative {what} in the header of {lossy:?}"))
            })
        };
        let device = |range: std::ops::Range<usize>, what: &str| {
            if !(ustar || gnu) || !matches!(typeflag, b'3' | b'4') {
                return Ok(0);
            }
            unsigned(range, what).and_then(|n| {
                u32::try_from(n).map_err(|_| format!("bad {what} field in the header of {lossy:?}"))
            })
        };
        let owner = |range: std::ops::Range<usize>| {
            if ustar || gnu {
                until_nul(&block[range]).to_vec()
            } else {
                Vec::new()
            }
        };
        Ok(RawHeader {
            typeflag,
            link: until_nul(&block[157..257]).to_vec(),
            mode: (unsigned(100..108, "mode")? & 0o7777) as u32,
            uid: unsigned(108..116, "uid")?,
            gid: unsigned(116..124, "gid")?,
            size: unsigned(124..136, "size")?,
            mtime: number(136..148, "mtime")?,
            uname: owner(265..297),
            gname: owner(297..329),
            dev_major: device(329..337, "device major")?,
            dev_minor: device(337..345, "device minor")?,
            name,
        })
    }

    fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// Accepts the unsigned sum POSIX asks for, and the signed one that some
/// old tars wrote.
fn check_checksum(block: &[u8; BLOCK]) -> Result<(), String> {
    let stored = parse_numeric(&block[148..156]).ok_or("bad header checksum field")?;
    let (mut unsigned, mut signed) = (0i64, 0i64);
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += i64::from(b);
        signed += i64::from(b as i8);
    }
    if stored != unsigned && stored != signed {
        return Err("bad header checksum".into());
    }
    Ok(())
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
            return Err(format!(
                "unsupported entry type {shown} for {:?}",
                String::from_utf8_lossy(name)
            ));
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
    // Only regular files have data, whatever the size field says (as in
    // Go's archive/tar, which the Docker Engine uses).
    if kind != EntryKind::File {
        entry.size = 0;
    }
    Ok(entry)
}

/// Applies one pax record; an empty value restores the header's own value.
fn apply_record(entry: &mut Entry, base: &Entry, key: &[u8], value: &[u8]) -> Result<(), String> {
    let bad = || {
        format!(
            "bad pax {} value {:?} for {:?}",
            String::from_utf8_lossy(key),
            String::from_utf8_lossy(value),
            base.path_lossy()
        )
    };
    if let Some(name) = key.strip_prefix(XATTR_PREFIX) {
        entry.xattrs.retain(|(n, _)| n != name);
        entry.xattrs.push((name.to_vec(), value.to_vec()));
        return Ok(());
    }
    if key.starts_with(b"GNU.sparse.") {
        return Err(format!("unsupported sparse file {:?}", base.path_lossy()));
    }
    let number = || parse_decimal(value).ok_or_else(bad);
    match (key, value.is_empty()) {
        (b"path", true) => entry.path = base.path.clone(),
        (b"path", false) => entry.path = value.to_vec(),
        (b"linkpath", true) => entry.link = base.link.clone(),
        (b"linkpath", false) => entry.link = Some(value.to_vec()),
        (b"uname", true) => entry.uname = base.uname.clone(),
        (b"uname", false) => entry.uname = value.to_vec(),
        (b"gname", true) => entry.gname = base.gname.clone(),
        (b"gname", false) => entry.gname = value.to_vec(),
        (b"size", true) => entry.size = base.size,
        (b"size", false) => entry.size = number()?,
        (b"uid", true) => entry.uid = base.uid,
        (b"uid", false) => entry.uid = number()?,
        (b"gid", true) => entry.gid = base.gid,
        (b"gid", false) => entry.gid = number()?,
        (b"mtime", true) => entry.mtime = base.mtime,
        (b"mtime", false) => entry.mtime = parse_pax_time(value).ok_or_else(bad)?,
        // atime, ctime, charset, comment and vendor keywords change nothing
        // volsafe restores.
        _ => {}
    }
    Ok(())
}

/// Writes a POSIX pax tar stream; see the module docs.
pub struct TarWriter<W> {
    inner: W,
    entries_written: u64,
    bytes_written: u64,
    /// Set once a write failed half-way: the stream is then unusable.
    broken: bool,
    scratch: Vec<u8>,
}

impl<W: Write> TarWriter<W> {
    pub fn new(inner: W) -> Self {
        TarWriter {
            inner,
            entries_written: 0,
            bytes_written: 0,
            broken: false,
            scratch: Vec::new(),
        }
    }

    /// Writes one entry: a pax extended header when a value does not fit
    /// ustar, the ustar header, then for a file exactly `entry.size` bytes
    /// of `data` and zero padding to the block. A `data` shorter than
    /// `entry.size` is an `UnexpectedEof` error; after it, or any write
    /// error, the writer refuses further use. For other kinds `data` is not
    /// read. Invalid entries (a NUL in a name, a link without target) are
    /// `InvalidInput` errors and write nothing.
    pub fn append<D: Read + ?Sized>(&mut self, entry: &Entry, data: &mut D) -> io::Result<()> {
        if self.broken {
            return Err(broken_error());
        }
        let headers = encode_headers(entry)?;
        self.broken = true;
        self.write(&headers)?;
        if entry.kind == EntryKind::File {
            self.copy_exact(entry, data)?;
            let zeros = [0u8; BLOCK];
            self.write(&zeros[..padding(entry.size) as usize])?;
        }
        self.broken = false;
        self.entries_written += 1;
        Ok(())
    }

    pub fn entries_written(&self) -> u64 {
        self.entries_written
    }

    /// Bytes written to the inner writer so far; [`TarWriter::finish`]
    /// adds 1024 more.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// The inner writer; writing to it directly corrupts the stream.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Writes the end-of-archive marker (two zero blocks, nothing more)
    /// and returns the inner writer, unflushed.
    pub fn finish(mut self) -> io::Result<W> {
        if self.broken {
            return Err(broken_error());
        }
        self.write(&[0u8; 2 * BLOCK])?;
        Ok(self.inner)
    }

    fn copy_exact<D: Read + ?Sized>(&mut self, entry: &Entry, data: &mut D) -> io::Result<()> {
        let mut buf = std::mem::take(&mut self.scratch);
        buf.resize(COPY_BUF, 0);
        let mut left = entry.size;
        let result = loop {
            if left == 0 {
                break Ok(());
            }
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            match data.read(&mut buf[..want]) {
                Ok(0) => {
                    break Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "tar entry {:?}: data ended after {} of {} bytes",
                            entry.path_lossy(),
                            entry.size - left,
                            entry.size
                        ),
                    ))
                }
                Ok(n) => {
                    let n = n.min(want);
                    if let Err(e) = self.write(&buf[..n]) {
                        break Err(e);
                    }
                    left -= n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        self.scratch = buf;
        result
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.inner.write_all(bytes)?;
        self.bytes_written += bytes.len() as u64;
        Ok(())
    }
}

fn broken_error() -> io::Error {
    io::Error::other("tar writer: an earlier write failed, the stream is incomplete")
}

/// The pax header (if needed) and the ustar header of one entry.
fn encode_headers(entry: &Entry) -> io::Result<Vec<u8>> {
    let invalid = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("tar entry {:?}: {what}", entry.path_lossy()),
        )
    };
    let link: &[u8] = match (&entry.link, entry.kind.is_link()) {
        (Some(link), true) if !link.is_empty() => link,
        (_, true) => return Err(invalid("link without a target")),
        (_, false) => b"",
    };
    if entry.path.is_empty() {
        return Err(invalid("empty path"));
    }
    let names = [&entry.path[..], link, &entry.uname, &entry.gname];
    if names.iter().any(|n| n.contains(&0)) {
        return Err(invalid("a name contains a NUL byte"));
    }
    if entry
        .xattrs
        .iter()
        .any(|(n, _)| n.is_empty() || n.contains(&0) || n.contains(&b'='))
    {
        return Err(invalid("xattr name is empty or contains '=' or a NUL byte"));
    }
    let (major, minor) = match entry.kind.is_device() {
        true => (u64::from(entry.dev_major), u64::from(entry.dev_minor)),
        false => (0, 0),
    };
    if major > MAX_OCTAL_7 || minor > MAX_OCTAL_7 {
        return Err(invalid("device number too large for tar"));
    }
    let size = if entry.kind == EntryKind::File {
        entry.size
    } else {
        0
    };

    let mut pax = Vec::new();
    let long = |name: &[u8], max: usize| name.len() > max || !name.is_ascii();
    // Non-UTF-8 values go in raw, as GNU tar writes and reads them; GNU
    // tar 1.34 warns about POSIX's `hdrcharset=BINARY`, so it is left out.
    let path_in_pax = long(&entry.path, 100);
    if path_in_pax {
        pax_record(&mut pax, b"path", &entry.path);
    }
    if long(link, 100) {
        pax_record(&mut pax, b"linkpath", link);
    }
    let size_in_pax = size > MAX_OCTAL_11;
    if size_in_pax {
        pax_record(&mut pax, b"size", size.to_string().as_bytes());
    }
    for (key, value) in [(&b"uid"[..], entry.uid), (b"gid", entry.gid)] {
        if value > MAX_OCTAL_7 {
            pax_record(&mut pax, key, value.to_string().as_bytes());
        }
    }
    let mtime = u64::try_from(entry.mtime)
        .ok()
        .filter(|&t| t <= MAX_OCTAL_11);
    if mtime.is_none() {
        pax_record(&mut pax, b"mtime", entry.mtime.to_string().as_bytes());
    }
    for (key, value) in [(&b"uname"[..], &entry.uname), (b"gname", &entry.gname)] {
        if long(value, MAX_OWNER_NAME) {
            pax_record(&mut pax, key, value);
        }
    }
    for (name, value) in &entry.xattrs {
        pax_record(&mut pax, &[XATTR_PREFIX, name].concat(), value);
    }

    if pax.len() as u64 > MAX_EXTENSION {
        return Err(invalid(
            "pax extended header over the 1 MiB limit readers accept",
        ));
    }

    let mut out = Vec::with_capacity(3 * BLOCK + pax.len());
    if !pax.is_empty() {
        let mut header = UstarFields::new(pax_header_name(&entry.path), b'x');
        header.mode = 0o644;
        header.size = pax.len() as u64;
        header.mtime = mtime.unwrap_or(0);
        out.extend_from_slice(&header.encode());
        out.extend_from_slice(&pax);
        out.resize(out.len() + padding(pax.len() as u64) as usize, 0);
    }
    let mut header = UstarFields::new(entry.path.clone(), entry.kind.typeflag());
    header.mode = entry.mode & 0o7777;
    // Values carried by pax records read 0 here, as Go's writer does.
    header.uid = if entry.uid > MAX_OCTAL_7 {
        0
    } else {
        entry.uid
    };
    header.gid = if entry.gid > MAX_OCTAL_7 {
        0
    } else {
        entry.gid
    };
    header.size = if size_in_pax { 0 } else { size };
    header.mtime = mtime.unwrap_or(0);
    header.link = link.to_vec();
    header.uname = entry.uname.clone();
    header.gname = entry.gname.clone();
    header.dev = (major, minor);
    out.extend_from_slice(&header.encode());
    Ok(out)
}

/// An ASCII name for the pax header, so that a tar without pax support
/// extracts it as a harmless plain file.
fn pax_header_name(path: &[u8]) -> Vec<u8> {
    let trimmed = path.strip_suffix(b"/").unwrap_or(path);
    let base = trimmed.rsplit(|&b| b == b'/').next().unwrap_or(b"");
    let mut name: Vec<u8> = base
        .iter()
        .map(|&b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' => b,
            _ => b'_',
        })
        .take(100 - b"PaxHeaders/".len())
        .collect();
    if name.iter().all(|&b| b == b'.') {
        name = b"_".to_vec();
    }
    [&b"PaxHeaders/"[..], &name].concat()
}

/// Appends "<len> <key>=<value>\n", where len counts itself too.
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = key.len() + value.len() + 3;
    let mut len = rest;
    loop {
        let next = rest + len.to_string().len();
        if next == len {
            break;
        }
        len = next;
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// The fields the writer sets in a ustar header; long values are cut to
/// their field, the pax header holding them whole.
struct UstarFields {
    name: Vec<u8>,
    typeflag: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    link: Vec<u8>,
    uname: Vec<u8>,
    gname: Vec<u8>,
    dev: (u64, u64),
}

impl UstarFields {
    fn new(name: Vec<u8>, typeflag: u8) -> Self {
        UstarFields {
            name,
            typeflag,
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 0,
            link: Vec::new(),
            uname: Vec::new(),
            gname: Vec::new(),
            dev: (0, 0),
        }
    }

    fn encode(&self) -> [u8; BLOCK] {
        let mut b = [0u8; BLOCK];
        put_bytes(&mut b[0..100], &self.name);
        put_octal(&mut b[100..108], u64::from(self.mode));
        put_octal(&mut b[108..116], self.uid);
        put_octal(&mut b[116..124], self.gid);
        put_octal(&mut b[124..136], self.size);
        put_octal(&mut b[136..148], self.mtime);
        b[156] = self.typeflag;
        put_bytes(&mut b[157..257], &self.link);
        b[257..265].copy_from_slice(b"ustar\x0000");
        put_bytes(&mut b[265..296], &self.uname);
        put_bytes(&mut b[297..328], &self.gname);
        put_octal(&mut b[329..337], self.dev.0);
        put_octal(&mut b[337..345], self.dev.1);
        let sum: u64 = b.iter().map(|&x| u64::from(x)).sum::<u64>() + 8 * u64::from(b' ');
        b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        b
    }
}

/// Copies as much of `value` as fits; callers checked for NUL bytes.
fn put_bytes(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// Zero-padded octal and a NUL; callers make sure the value fits.
fn put_octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    debug_assert!(text.len() == digits, "{value} does not fit a tar field");
    put_bytes(&mut field[..digits], text.as_bytes());
}

#[cfg(test)]
mod tests;
