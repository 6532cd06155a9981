//! The pax writer: ustar headers, with a pax extended header in front of
//! any entry a ustar header cannot describe exactly, and exactly `size`
//! bytes of data per file. A writer whose stream went wrong half-way
//! refuses to go on, so that a short archive cannot be finished as if it
//! were whole. std only: volsafe-tar (`src/streamer`) builds this file
//! too, with no other crate.

use std::io::{self, Read, Write};

use super::header::{
    pax_record, typeflag, UstarFields, MAX_NAME, MAX_OCTAL_11, MAX_OCTAL_7, MAX_OWNER_NAME,
    XATTR_PREFIX,
};
use super::{padding, take_scratch, Entry, EntryKind, BLOCK, MAX_EXTENSION};

/// Writes a POSIX pax tar stream; see the module docs of `tarstream`.
pub struct TarWriter<W> {
    inner: W,
    entries_written: u64,
    bytes_written: u64,
    /// Set while an entry is being written and left set if that failed.
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
    /// of `data` and zero padding to the block; for other kinds `data` is
    /// not read. A `data` shorter than `entry.size` is an `UnexpectedEof`
    /// error, and after it, or after any write error, the writer refuses
    /// further use. An entry that cannot be written (a NUL in a name, a
    /// link without a target) is an `InvalidInput` error that writes
    /// nothing and leaves the writer usable.
    pub fn append<D: Read + ?Sized>(&mut self, entry: &Entry, data: &mut D) -> io::Result<()> {
        self.append_noting(entry, data, |_| {})
    }

    /// [`TarWriter::append`], calling `before_data` with the inner writer
    /// once a file's headers are written and before its data: whoever
    /// watches the stream learns where the data begins.
    pub fn append_noting<D, F>(
        &mut self,
        entry: &Entry,
        data: &mut D,
        before_data: F,
    ) -> io::Result<()>
    where
        D: Read + ?Sized,
        F: FnOnce(&mut W),
    {
        if self.broken {
            return Err(broken_error());
        }
        let headers = encode_headers(entry)?;
        self.broken = true;
        self.write(&headers)?;
        if entry.kind == EntryKind::File {
            before_data(&mut self.inner);
            self.copy_exact(entry, data)?;
            self.write(&[0u8; BLOCK][..padding(entry.size) as usize])?;
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
        let mut buf = take_scratch(&mut self.scratch);
        let mut left = entry.size;
        let result = loop {
            if left == 0 {
                break Ok(());
            }
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            match data.read(&mut buf[..want]) {
                Ok(0) => {
                    let path = entry.path_lossy();
                    let done = entry.size - left;
                    let msg = format!(
                        "tar entry {path:?}: data ended after {done} of {} bytes",
                        entry.size
                    );
                    break Err(io::Error::new(io::ErrorKind::UnexpectedEof, msg));
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
        let msg = format!("tar entry {:?}: {what}", entry.path_lossy());
        io::Error::new(io::ErrorKind::InvalidInput, msg)
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
    let bad_xattr = |n: &[u8]| n.is_empty() || n.contains(&0) || n.contains(&b'=');
    if entry.xattrs.iter().any(|(n, _)| bad_xattr(n)) {
        return Err(invalid("xattr name is empty or holds '=' or a NUL byte"));
    }
    let dev = if entry.kind.is_device() {
        (u64::from(entry.dev_major), u64::from(entry.dev_minor))
    } else {
        (0, 0)
    };
    if dev.0 > MAX_OCTAL_7 || dev.1 > MAX_OCTAL_7 {
        return Err(invalid("device number too large for tar"));
    }
    let size = if entry.kind == EntryKind::File {
        entry.size
    } else {
        0
    };
    let mtime = u64::try_from(entry.mtime)
        .ok()
        .filter(|&t| t <= MAX_OCTAL_11);

    let pax = pax_records(entry, link, size, mtime.is_none());
    if pax.len() as u64 > MAX_EXTENSION {
        return Err(invalid(
            "pax extended header over the 1 MiB that readers accept",
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
    // A value carried by a pax record reads 0 here, as Go's writer does.
    let fit = |value: u64, max: u64| if value > max { 0 } else { value };
    let mut header = UstarFields::new(entry.path.clone(), typeflag(entry.kind));
    header.mode = entry.mode & 0o7777;
    header.uid = fit(entry.uid, MAX_OCTAL_7);
    header.gid = fit(entry.gid, MAX_OCTAL_7);
    header.size = fit(size, MAX_OCTAL_11);
    header.mtime = mtime.unwrap_or(0);
    header.link = link.to_vec();
    header.uname = entry.uname.clone();
    header.gname = entry.gname.clone();
    header.dev = dev;
    out.extend_from_slice(&header.encode());
    Ok(out)
}

/// The pax records for what the ustar header cannot hold exactly. Names
/// that are not ASCII go there too, raw, as GNU tar writes and reads
/// them (GNU tar 1.34 warns about POSIX's `hdrcharset=BINARY`).
fn pax_records(entry: &Entry, link: &[u8], size: u64, mtime_in_pax: bool) -> Vec<u8> {
    let mut pax = Vec::new();
    let long = |name: &[u8], max: usize| name.len() > max || !name.is_ascii();
    if long(&entry.path, MAX_NAME) {
        pax_record(&mut pax, b"path", &entry.path);
    }
    if long(link, MAX_NAME) {
        pax_record(&mut pax, b"linkpath", link);
    }
    if size > MAX_OCTAL_11 {
        pax_record(&mut pax, b"size", size.to_string().as_bytes());
    }
    for (key, id) in [(&b"uid"[..], entry.uid), (b"gid", entry.gid)] {
        if id > MAX_OCTAL_7 {
            pax_record(&mut pax, key, id.to_string().as_bytes());
        }
    }
    if mtime_in_pax {
        pax_record(&mut pax, b"mtime", entry.mtime.to_string().as_bytes());
    }
    for (key, name) in [(&b"uname"[..], &entry.uname), (b"gname", &entry.gname)] {
        if long(name, MAX_OWNER_NAME) {
            pax_record(&mut pax, key, name);
        }
    }
    for (name, value) in &entry.xattrs {
        pax_record(&mut pax, &[XATTR_PREFIX, name].concat(), value);
    }
    pax
}

/// An ASCII name for the pax header, so that a tar without pax support
/// extracts it as a harmless plain file.
pub(super) fn pax_header_name(path: &[u8]) -> Vec<u8> {
    const DIR: &[u8] = b"PaxHeaders/";
    let trimmed = path.strip_suffix(b"/").unwrap_or(path);
    let base = trimmed.rsplit(|&b| b == b'/').next().unwrap_or(b"");
    let mut name: Vec<u8> = base
        .iter()
        .map(|&b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' => b,
            _ => b'_',
        })
        .take(MAX_NAME - DIR.len())
        .collect();
    if name.iter().all(|&b| b == b'.') {
        name = b"_".to_vec();
    }
    [DIR, &name].concat()
}
