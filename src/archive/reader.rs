//! Reads an archive back: age (when encrypted), then zstd frame by frame,
//! picking up volsafe's header and trailer frames on the way, and hands the
//! tar bytes to the strict tar reader.
//!
//! Decoding is frame by frame so that the trailer after the tar is seen, and
//! so that archives of several zstd frames (pzstd, concatenated files) are
//! read whole. Every tar byte is hashed so [`walk`] can compare it with the
//! trailer; an archive whose header is volsafe's but whose trailer is missing
//! is truncated, whatever the tar looked like.

use std::io::{self, BufRead, BufReader, Read, Write};

use anyhow::{Context, Result};

use super::crypto::{decrypt_error, Decryption};
use super::digest::{Algorithm, Digest, DigestWriter};
use super::handoff::Handoff;
use super::manifest::{self, Record};
use super::meta::{self, FrameKind, Header, Skippable, Trailer};
use super::tarstream::{Entry, EntryKind, TarError, TarReader};
use crate::error::{failed, integrity};

const AGE_MAGIC: &[u8] = b"age-encryption.org/v1";
const AGE_ARMOR: &[u8] = b"-----BEGIN AGE ENCRYPTED FILE-----";
const BUFFER: usize = 256 * 1024;

/// A BufRead that can give back a few bytes it has already handed out.
struct Input {
    pushed: Vec<u8>,
    pos: usize,
    inner: Box<dyn BufRead + Send>,
}

impl Input {
    fn unread(&mut self, bytes: &[u8]) {
        self.pushed = bytes.to_vec();
        self.pos = 0;
    }

    /// The next 4-byte magic, `None` at a clean end of input.
    fn magic(&mut self) -> io::Result<Option<u32>> {
        let mut buf = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            let n = self.read(&mut buf[got..])?;
            if n == 0 {
                break;
            }
            got += n;
        }
        match got {
            0 => Ok(None),
            4 => Ok(Some(u32::from_le_bytes(buf))),
            _ => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "archive ends inside a frame header",
            )),
        }
    }
}

impl Read for Input {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = {
            let avail = self.fill_buf()?;
            let n = avail.len().min(buf.len());
            buf[..n].copy_from_slice(&avail[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Input {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos < self.pushed.len() {
            return Ok(&self.pushed[self.pos..]);
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        if self.pos < self.pushed.len() {
            self.pos += amt;
        } else {
            self.inner.consume(amt);
        }
    }
}

enum State {
    Between(Input),
    Frame(zstd::stream::read::Decoder<'static, Input>),
    Done,
    Poisoned,
}

/// The tar bytes of an archive, as a `Read`.
pub struct ArchiveReader {
    state: State,
    header: Option<Header>,
    trailer: Option<Trailer>,
    /// The tar's digest (the function the header's format names), on a
    /// thread of its own.
    digest: Handoff<DigestWriter<io::Sink>>,
    encrypted: bool,
    manifest: ManifestSeen,
}

/// The manifest frames met so far: their count and digest, checked against
/// the trailer's.
struct ManifestSeen {
    frames: u64,
    hasher: blake3::Hasher,
}

impl ManifestSeen {
    fn add(&mut self, payload: &[u8]) {
        self.frames += 1;
        self.hasher.update(payload);
    }
}

impl ArchiveReader {
    /// Opens an archive: decrypts the age header (a wrong key fails here, at
    /// once) and reads volsafe's header frame if there is one.
    /// `source` names the archive in messages.
    pub fn open(raw: Box<dyn Read + Send>, keys: &Decryption, source: &str) -> Result<Self> {
        let mut raw = BufReader::with_capacity(BUFFER, raw);
        let start = raw
            .fill_buf()
            .with_context(|| format!("{source}: cannot read"))?;
        let (inner, encrypted): (Box<dyn BufRead + Send>, bool) = if start.starts_with(AGE_MAGIC) {
            (decrypt(raw, keys, source)?, true)
        } else if start.starts_with(AGE_ARMOR) {
            return Err(failed(
                format!("{source}: ASCII-armored age files are not supported"),
                "convert it with `age -d … | age -r … > file` or pipe `age -d` into `volsafe restore -`",
            ));
        } else if start.is_empty() {
            return Err(failed(
                format!("{source}: the file is empty"),
                "this is not an archive",
            ));
        } else {
            (Box::new(raw), false)
        };
        let mut input = Input {
            pushed: Vec::new(),
            pos: 0,
            inner,
        };
        let header = read_leading_frames(&mut input, source)?;
        let algorithm = meta::tar_digest_of(header.as_ref().map(|h| h.format));
        Ok(ArchiveReader {
            state: State::Between(input),
            header,
            trailer: None,
            digest: Handoff::new(DigestWriter::new(io::sink(), algorithm), "volsafe-digest")
                .with_context(|| format!("{source}: cannot start the digest thread"))?,
            encrypted,
            manifest: ManifestSeen {
                frames: 0,
                hasher: blake3::Hasher::new(),
            },
        })
    }

    pub fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }

    pub fn is_encrypted(&self) -> bool {
        self.encrypted
    }

    /// Reads to the end of the input, and returns the tar totals.
    pub fn finish(mut self) -> io::Result<TarTotals> {
        io::copy(&mut self, &mut io::sink())?;
        let (_, bytes, digest) = self.digest.finish()?.finish();
        Ok(TarTotals {
            bytes,
            digest,
            header: self.header,
            trailer: self.trailer,
            manifest_frames: self.manifest.frames,
            manifest_blake3: self.manifest.hasher.finalize().to_hex().to_string(),
        })
    }

    /// Reads on to the next chunk of the per-entry manifest, stepping over
    /// data frames block by block without decompressing them. `None` at the
    /// end, after the manifest was checked against the trailer. For a
    /// reader that has not handed out tar bytes.
    pub fn next_manifest(&mut self) -> io::Result<Option<Vec<Record>>> {
        let State::Between(input) = &mut self.state else {
            return match self.state {
                State::Done => Ok(None),
                _ => Err(io::Error::other("the manifest is read before the tar")),
            };
        };
        loop {
            match input.magic()? {
                None => {
                    self.state = State::Done;
                    self.check_manifest()?;
                    return Ok(None);
                }
                Some(m) if m == meta::ZSTD_MAGIC => skip_zstd_frame(input)?,
                Some(m) if meta::is_skippable(m) => {
                    let Skippable::Volsafe { kind, payload } = meta::read_skippable(input)? else {
                        continue;
                    };
                    if kind == FrameKind::Trailer as u8 {
                        self.trailer = Some(parse_trailer(&payload)?);
                    } else if kind == FrameKind::Manifest as u8 {
                        self.manifest.add(&payload);
                        let records = manifest::decode(&payload)
                            .map_err(|e| invalid(format!("unreadable manifest frame: {e}")))?;
                        return Ok(Some(records));
                    }
                }
                Some(_) => {
                    return Err(invalid("unexpected bytes between frames (damaged archive)"))
                }
            }
        }
    }

    /// The manifest frames read must be the ones the trailer describes.
    fn check_manifest(&mut self) -> io::Result<()> {
        if self.header.is_some() && self.trailer.is_none() {
            return Err(invalid("the archive ends before its trailer (truncated)"));
        }
        let Some(expected) = self.trailer.as_ref().and_then(|t| t.manifest.as_ref()) else {
            if self.manifest.frames > 0 {
                return Err(invalid(
                    "the archive has manifest frames its trailer does not record (damaged archive)",
                ));
            }
            return Ok(());
        };
        let digest = self.manifest.hasher.finalize().to_hex().to_string();
        if expected.frames != self.manifest.frames || expected.blake3 != digest {
            return Err(invalid(
                "the manifest frames differ from what the trailer records (damaged archive)",
            ));
        }
        Ok(())
    }
}

/// Reads metadata frames up to the first zstd frame, and returns volsafe's
/// header if there was one.
fn read_leading_frames(input: &mut Input, source: &str) -> Result<Option<Header>> {
    let mut header_seen = None;
    loop {
        // The first bytes after the age header: if they cannot be
        // decrypted or read, the archive is damaged at its start.
        let magic = input.magic().map_err(|e| {
            integrity(
                format!("{source}: damaged or truncated at its start ({e})"),
                "the archive is damaged; use another backup",
            )
        })?;
        match magic {
            None => {
                return Err(integrity(
                    format!("{source}: the archive holds no compressed data"),
                    "the file is truncated or not a volsafe archive",
                ))
            }
            Some(m) if m == meta::ZSTD_MAGIC => {
                input.unread(&m.to_le_bytes());
                return Ok(header_seen);
            }
            Some(m) if meta::is_skippable(m) => {
                let frame = meta::read_skippable(input).map_err(|e| {
                    integrity(
                        format!("{source}: truncated or damaged metadata frame ({e})"),
                        "the archive is damaged; use another backup",
                    )
                })?;
                if let Skippable::Volsafe { kind, payload } = frame {
                    if kind == FrameKind::Header as u8 {
                        check_format(&payload, source)?;
                        let header: Header = serde_json::from_slice(&payload)
                            .with_context(|| format!("{source}: unreadable archive header"))?;
                        header_seen = Some(header);
                    }
                }
            }
            Some(_) => return Err(failed(
                format!("{source}: not a zstd-compressed archive"),
                "volsafe reads age(zstd(tar)) or zstd(tar); compress a plain tar with `zstd` first",
            )),
        }
    }
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

fn parse_trailer(json: &[u8]) -> io::Result<Trailer> {
    serde_json::from_slice(json).map_err(|e| invalid(format!("unreadable trailer: {e}")))
}

/// Steps over one zstd frame (its magic already read) by its block headers.
fn skip_zstd_frame(input: &mut Input) -> io::Result<()> {
    fn skip(input: &mut Input, n: u64) -> io::Result<()> {
        let got = io::copy(&mut input.take(n), &mut io::sink())?;
        if got == n {
            Ok(())
        } else {
            Err(io::ErrorKind::UnexpectedEof.into())
        }
    }
    let mut descriptor = [0u8; 1];
    input.read_exact(&mut descriptor)?;
    let d = descriptor[0];
    let single_segment = d & 0x20 != 0;
    let checksum = d & 0x04 != 0;
    let window = u64::from(!single_segment);
    let dict_id = [0, 1, 2, 4][usize::from(d & 0x03)];
    let content_size = match d >> 6 {
        0 => u64::from(single_segment),
        1 => 2,
        2 => 4,
        _ => 8,
    };
    skip(input, window + dict_id + content_size)?;
    loop {
        let mut header = [0u8; 3];
        input.read_exact(&mut header)?;
        let h = u32::from(header[0]) | u32::from(header[1]) << 8 | u32::from(header[2]) << 16;
        let last = h & 1 != 0;
        let size = u64::from(h >> 3);
        match (h >> 1) & 3 {
            0 | 2 => skip(input, size)?,
            1 => skip(input, 1)?,
            _ => return Err(invalid("reserved zstd block type (damaged archive)")),
        }
        if last {
            break;
        }
    }
    if checksum {
        skip(input, 4)?;
    }
    Ok(())
}

impl Read for ArchiveReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match std::mem::replace(&mut self.state, State::Poisoned) {
                State::Frame(mut decoder) => {
                    let n = decoder.read(buf)?;
                    if n > 0 {
                        self.digest.write_all(&buf[..n])?;
                        self.state = State::Frame(decoder);
                        return Ok(n);
                    }
                    self.state = State::Between(decoder.finish());
                }
                State::Between(mut input) => match input.magic()? {
                    None => {
                        self.state = State::Done;
                        return Ok(0);
                    }
                    Some(m) if m == meta::ZSTD_MAGIC => {
                        input.unread(&m.to_le_bytes());
                        let decoder =
                            zstd::stream::read::Decoder::with_buffer(input)?.single_frame();
                        self.state = State::Frame(decoder);
                    }
                    Some(m) if meta::is_skippable(m) => {
                        if let Skippable::Volsafe { kind, payload } =
                            meta::read_skippable(&mut input)?
                        {
                            if kind == FrameKind::Trailer as u8 {
                                self.trailer = Some(parse_trailer(&payload)?);
                            } else if kind == FrameKind::Manifest as u8 {
                                self.manifest.add(&payload);
                            }
                        }
                        self.state = State::Between(input);
                    }
                    Some(_) => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "unexpected bytes after a zstd frame (damaged archive)",
                        ))
                    }
                },
                State::Done => {
                    self.state = State::Done;
                    return Ok(0);
                }
                State::Poisoned => {
                    return Err(io::Error::other("archive reader used after an error"));
                }
            }
        }
    }
}

/// Refuses an archive written in a newer format, before its header (whose
/// fields may have changed) is read as this version's.
fn check_format(json: &[u8], source: &str) -> Result<()> {
    #[derive(serde::Deserialize)]
    struct Format {
        format: u32,
    }
    let Ok(Format { format }) = serde_json::from_slice::<Format>(json) else {
        // Left to the full parse, which names what is wrong.
        return Ok(());
    };
    if format > meta::FORMAT_VERSION {
        return Err(failed(
            format!("{source}: archive format {format} is newer than this volsafe understands"),
            "upgrade volsafe",
        ));
    }
    Ok(())
}

fn decrypt(
    raw: BufReader<Box<dyn Read + Send>>,
    keys: &Decryption,
    source: &str,
) -> Result<Box<dyn BufRead + Send>> {
    let decryptor = age::Decryptor::new_buffered(raw).map_err(|e| decrypt_error(source, e))?;
    let stream = if decryptor.is_scrypt() {
        let Some(pass) = &keys.passphrase else {
            return Err(failed(
                format!("{source}: the archive is encrypted with a passphrase"),
                "pass --passphrase-file FILE or set VOLSAFE_PASSPHRASE",
            ));
        };
        let id = age::scrypt::Identity::new(pass.clone());
        decryptor
            .decrypt(std::iter::once(&id as &dyn age::Identity))
            .map_err(|e| decrypt_error(source, e))?
    } else {
        if keys.identities.is_empty() {
            return Err(failed(
                format!("{source}: the archive is encrypted and no identity was given"),
                "pass the identity file with -i FILE",
            ));
        }
        decryptor
            .decrypt(keys.identities.iter().map(|i| i.as_ref()))
            .map_err(|e| decrypt_error(source, e))?
    };
    Ok(Box::new(BufReader::with_capacity(BUFFER, stream)))
}

/// What the tar stream of an archive added up to.
pub struct TarTotals {
    pub bytes: u64,
    pub digest: Digest,
    pub header: Option<Header>,
    pub trailer: Option<Trailer>,
    pub manifest_frames: u64,
    pub manifest_blake3: String,
}

/// What a full read of an archive found.
#[derive(Debug, Clone)]
pub struct Summary {
    pub header: Option<Header>,
    pub trailer: Option<Trailer>,
    pub entries: u64,
    pub data_bytes: u64,
    pub tar_bytes: u64,
    /// BLAKE3 for format 2 archives, SHA-256 for format 1 and for archives
    /// without volsafe's header.
    pub tar_digest: Digest,
    pub manifest_frames: u64,
    pub manifest_blake3: String,
}

/// An entry's data, as a `Read`.
pub struct EntryData<'a, R: Read>(pub &'a mut TarReader<R>);

impl<R: Read> Read for EntryData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read_data(buf).map_err(|e| match e {
            TarError::Io(io) => io,
            other => io::Error::new(io::ErrorKind::UnexpectedEof, other),
        })
    }
}

/// Reads a whole archive, calling `visit` for every entry with its data,
/// then checks the totals against the trailer. Any error means the archive
/// must not be trusted.
pub fn walk<F>(reader: ArchiveReader, mut visit: F) -> Result<Summary>
where
    F: FnMut(&Entry, &mut dyn Read) -> Result<()>,
{
    let volsafe = reader.header().is_some();
    let mut tar = TarReader::new(reader);
    let mut data_bytes = 0u64;
    while let Some(entry) = tar.next_entry()? {
        if entry.kind == EntryKind::File {
            data_bytes += entry.size;
        }
        visit(&entry, &mut EntryData(&mut tar))?;
    }
    let entries = tar.entries_read();
    let totals = tar.into_inner().finish()?;
    let summary = Summary {
        header: totals.header,
        trailer: totals.trailer,
        entries,
        data_bytes,
        tar_bytes: totals.bytes,
        tar_digest: totals.digest,
        manifest_frames: totals.manifest_frames,
        manifest_blake3: totals.manifest_blake3,
    };
    check_trailer(&summary, volsafe)?;
    Ok(summary)
}

fn check_trailer(s: &Summary, volsafe: bool) -> Result<()> {
    let Some(t) = &s.trailer else {
        if volsafe {
            return Err(integrity(
                "the archive ends before its trailer (truncated)",
                "this archive is incomplete; use an older one",
            ));
        }
        return Ok(());
    };
    if !volsafe {
        // volsafe writes its header first, always.
        return Err(integrity(
            "the archive has volsafe's trailer but no header (damaged at its start)",
            "the archive is damaged; use an older one",
        ));
    }
    let mut wrong = Vec::new();
    if t.entries != s.entries {
        wrong.push(format!("{} entries, trailer says {}", s.entries, t.entries));
    }
    if t.tar_bytes != s.tar_bytes {
        wrong.push(format!(
            "{} tar bytes, trailer says {}",
            s.tar_bytes, t.tar_bytes
        ));
    }
    if t.data_bytes != s.data_bytes {
        wrong.push(format!(
            "{} data bytes, trailer says {}",
            s.data_bytes, t.data_bytes
        ));
    }
    match t.tar_digest(s.tar_digest.algorithm) {
        Some(hex) if hex == s.tar_digest.hex => {}
        Some(_) => wrong.push("the tar digest differs from the trailer's".to_owned()),
        None => wrong.push(format!(
            "the trailer has no {} digest of the tar",
            s.tar_digest.algorithm.name()
        )),
    }
    let other = match s.tar_digest.algorithm {
        Algorithm::Sha256 => Algorithm::Blake3,
        Algorithm::Blake3 => Algorithm::Sha256,
    };
    if t.tar_digest(other).is_some() {
        wrong.push(format!(
            "the trailer has a {} digest, which its archive's format does not use",
            other.name()
        ));
    }
    if let Some(m) = &t.manifest {
        if m.frames != s.manifest_frames || m.blake3 != s.manifest_blake3 {
            wrong.push("the manifest frames differ from the trailer's record".to_owned());
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(integrity(
            format!(
                "the archive does not match its trailer: {}",
                wrong.join("; ")
            ),
            "the archive is damaged; use an older one",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{find_user_error, Kind};

    fn no_keys() -> Decryption {
        Decryption {
            identities: Vec::new(),
            passphrase: None,
            own_recipients: Vec::new(),
            without_recipient: Vec::new(),
        }
    }

    fn with_header(json: &str) -> Vec<u8> {
        let mut bytes = Vec::new();
        meta::write_frame(&mut bytes, FrameKind::Header, json.as_bytes()).unwrap();
        bytes.extend(zstd::encode_all(&b""[..], 3).unwrap());
        bytes
    }

    /// An archive from a later volsafe must be refused, not half understood.
    #[test]
    fn newer_format_is_refused() {
        let newer = meta::FORMAT_VERSION + 1;
        let bytes = with_header(&format!(r#"{{"format":{newer},"something":"new"}}"#));
        let err = ArchiveReader::open(Box::new(io::Cursor::new(bytes)), &no_keys(), "a.tar.zst")
            .err()
            .expect("a newer archive was accepted");
        let user = find_user_error(&err).expect("no user error");
        assert_eq!(user.kind, Kind::Failed);
        assert_eq!(
            format!("{err:#}"),
            format!("a.tar.zst: archive format {newer} is newer than this volsafe understands")
        );
        assert_eq!(user.hint.as_deref(), Some("upgrade volsafe"));
    }

    #[test]
    fn current_format_is_read() {
        let json = format!(
            r#"{{"format":{},"volume":"v","daemon":"d","created":"2026-12-04T00:00:00.000Z","tool":"t"}}"#,
            meta::FORMAT_VERSION
        );
        let reader = ArchiveReader::open(
            Box::new(io::Cursor::new(with_header(&json))),
            &no_keys(),
            "a.tar.zst",
        )
        .unwrap();
        assert_eq!(reader.header().map(|h| h.volume.as_str()), Some("v"));
    }
}
