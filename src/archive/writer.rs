//! Writes an archive: header frame, zstd(tar), trailer frame, all inside
//! age when encrypted.
//!
//! The writer owns nothing but the chain of streams; the caller decides where
//! the bytes go and when they become durable. Every byte of the tar passes a
//! digest, so the trailer states exactly what a reader must find.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::mpsc;

use anyhow::{Context, Result};

use zstd::stream::raw::{InBuffer, OutBuffer};
use zstd::zstd_safe::{self, CCtx, CParameter, ResetDirective};

use super::digest::{Algorithm, Digest, DigestWriter};
use super::handoff::{Handoff, HANDOFF};
use super::manifest;
use super::meta::{self, FrameKind, Header, Trailer};
use super::tarstream::{Entry, EntryKind, TarWriter};

/// Where the compressed frames go: straight to the file, or through age.
enum Sink<W: Write> {
    Age(age::stream::StreamWriter<DigestWriter<W>>),
    Plain(DigestWriter<W>),
}

impl<W: Write> Write for Sink<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Age(w) => w.write(buf),
            Sink::Plain(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Age(w) => w.flush(),
            Sink::Plain(w) => w.flush(),
        }
    }
}

impl<W: Write> Sink<W> {
    fn finish(self) -> io::Result<DigestWriter<W>> {
        match self {
            Sink::Age(w) => w.finish(),
            Sink::Plain(w) => Ok(w),
        }
    }
}

/// Bytes of input per zstd worker job.
const JOB_SIZE: u32 = 2 << 20;

/// History each zstd job takes from the one before: the window >> (9 - this).
const OVERLAP_LOG: u32 = 4;
/// The highest level whose strategy (fast to lazy) re-reads 1/8 of the
/// window by default; higher levels keep their own, longer history.
const OVERLAP_MAX_LEVEL: i32 = 7;

/// Room zstd is given in the hand-off buffer at least (an eighth of it);
/// with less left, the buffer goes to the writer thread first, so zstd
/// never runs on a sliver of output space.
const OUT_ROOM: usize = HANDOFF / 8;

/// Collects the tar in large batches, each of which goes to zstd and then,
/// without a copy, to the digest thread: the tar's digest and each file's
/// BLAKE3 for the manifest are computed there, beside the parsing and
/// compression. Few large writes keep zstd's worker hand-offs (and their
/// locks) few, whatever the entry sizes.
struct Tee<Z: Write> {
    zstd: Z,
    batch: Vec<u8>,
    digest: Handoff<Digests>,
    /// Bytes of tar written so far.
    written: u64,
    /// Where each file's data lies in the tar, for the digest thread.
    files: mpsc::Sender<Span>,
}

impl<Z: Write> Tee<Z> {
    fn new(
        zstd: Z,
        algorithm: Algorithm,
    ) -> io::Result<(Self, mpsc::Receiver<(u64, blake3::Hash)>)> {
        let (files, spans) = mpsc::channel();
        let (done, digests) = mpsc::channel();
        let sink = Digests {
            tar: DigestWriter::new(io::sink(), algorithm),
            at: 0,
            spans,
            next: None,
            file: None,
            done,
        };
        let tee = Tee {
            zstd,
            batch: Vec::with_capacity(HANDOFF),
            digest: Handoff::new(sink, "volsafe-digest")?,
            written: 0,
            files,
        };
        Ok((tee, digests))
    }

    /// Announces that the next `len` bytes are a file's data; returns
    /// where they begin. The digest thread sends the file's BLAKE3 back on
    /// the channel [`Tee::new`] returned, in the order of the files. Empty
    /// files are not announced.
    fn announce_file(&mut self, len: u64) -> u64 {
        if len > 0 {
            // The span is sent before any of its bytes, so the digest
            // thread always knows it by the time they arrive. If that
            // thread is gone, its error comes out at the next hand-off.
            let _ = self.files.send(Span {
                start: self.written,
                len,
            });
        }
        self.written
    }

    /// Passes the batch on; after this, zstd has every byte written so far.
    fn pass_on(&mut self) -> io::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.zstd.write_all(&self.batch)?;
        self.batch = self.digest.send_buf(std::mem::take(&mut self.batch))?;
        Ok(())
    }

    /// The inner writer, the tar's length and its digest. Every file's
    /// digest has been sent by then.
    fn finish(mut self) -> io::Result<(Z, u64, Digest)> {
        self.pass_on()?;
        let (_, bytes, digest) = self.digest.finish()?.tar.finish();
        Ok((self.zstd, bytes, digest))
    }
}

impl<Z: Write> Write for Tee<Z> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.batch.extend_from_slice(data);
        self.written += data.len() as u64;
        if self.batch.len() >= HANDOFF {
            self.pass_on()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.pass_on()?;
        self.zstd.flush()
    }
}

/// A file's data in the tar: `len` bytes from offset `start`.
#[derive(Clone, Copy)]
struct Span {
    start: u64,
    len: u64,
}

/// The digest thread's work: the tar's digest, and the BLAKE3 of each
/// file's data, sent back in the order of the files with where it began.
struct Digests {
    tar: DigestWriter<io::Sink>,
    /// Offset in the tar of the next byte written here.
    at: u64,
    spans: mpsc::Receiver<Span>,
    /// A span taken from the channel that begins past the bytes so far.
    next: Option<Span>,
    /// The file whose data is being hashed.
    file: Option<FileHash>,
    done: mpsc::Sender<(u64, blake3::Hash)>,
}

struct FileHash {
    start: u64,
    /// Where its data ends; saturated, so a size no stream can hold only
    /// leaves the file unfinished (the tar writer fails on it first).
    end: u64,
    hasher: blake3::Hasher,
}

impl Digests {
    /// The next file whose data begins before `end`, if it is known.
    fn next_file(&mut self, from: u64, end: u64) -> io::Result<Option<FileHash>> {
        let Some(span) = self.next.take().or_else(|| self.spans.try_recv().ok()) else {
            return Ok(None);
        };
        if span.start >= end {
            self.next = Some(span);
            return Ok(None);
        }
        if span.start < from {
            // A bug: refuse rather than hash the wrong bytes.
            return Err(io::Error::other("file digests: spans out of order"));
        }
        Ok(Some(FileHash {
            start: span.start,
            end: span.start.saturating_add(span.len),
            hasher: blake3::Hasher::new(),
        }))
    }
}

impl Write for Digests {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tar.write_all(buf)?;
        let end = self.at + buf.len() as u64;
        let mut pos = self.at;
        loop {
            if self.file.is_none() {
                self.file = self.next_file(pos, end)?;
            }
            let Some(file) = self.file.as_mut() else {
                break;
            };
            pos = pos.max(file.start);
            let stop = file.end.min(end);
            // pos and stop lie within `buf` here.
            file.hasher
                .update(&buf[(pos - self.at) as usize..(stop - self.at) as usize]);
            pos = stop;
            if stop < file.end {
                break;
            }
            if let Some(file) = self.file.take() {
                // The receiver only goes away with the archive writer.
                let _ = self.done.send((file.start, file.hasher.finalize()));
            }
        }
        self.at = end;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A zstd encoder that can end its frame and start another, so metadata
/// frames can sit between data frames. Parameters (level, workers, checksum)
/// carry over from frame to frame. zstd writes straight into the buffer
/// that goes to the writer thread.
struct FrameEncoder<S: Write + Send + 'static> {
    out: Handoff<S>,
    zstd: CCtx<'static>,
    /// Data went in since the frame began (an empty frame is never written).
    open: bool,
}

impl<S: Write + Send + 'static> FrameEncoder<S> {
    fn new(out: Handoff<S>, level: i32, threads: u32) -> io::Result<Self> {
        let mut zstd =
            CCtx::try_create().ok_or_else(|| io::Error::other("cannot allocate a zstd context"))?;
        let mut set = |p| zstd.set_parameter(p).map(drop).map_err(zstd_error);
        set(CParameter::CompressionLevel(level))?;
        set(CParameter::ChecksumFlag(true))?;
        if threads > 0 {
            set(CParameter::NbWorkers(threads))?;
            // zstd's default job is 4 windows; each worker holds an input and
            // an output buffer per job. Smaller jobs keep peak memory well
            // under 64 MiB at the default level with no loss of speed here.
            set(CParameter::JobSize(JOB_SIZE))?;
            // Each job first re-reads the end of the one before it: by
            // default 1/8 of the window, at level 3 256 KiB, 1/8 of a job
            // this small. The CLI's 8 MiB jobs re-read the same 256 KiB,
            // 1/32 of a job; 1/32 of the window keeps that share.
            if level <= OVERLAP_MAX_LEVEL {
                set(CParameter::OverlapSizeLog(OVERLAP_LOG))?;
            }
            zstd = workers::start(zstd)?;
        }
        Ok(FrameEncoder {
            out,
            zstd,
            open: false,
        })
    }

    /// Ends the current data frame, if one is open.
    fn end_frame(&mut self) -> io::Result<()> {
        if !self.open {
            return Ok(());
        }
        let zstd = &mut self.zstd;
        loop {
            // 0 once the frame is complete.
            let left = self.out.fill_with(OUT_ROOM, |buf| {
                let pos = buf.len();
                zstd.end_stream(&mut OutBuffer::around_pos(buf, pos))
                    .map_err(zstd_error)
            })?;
            if left == 0 {
                break;
            }
        }
        self.zstd
            .reset(ResetDirective::SessionOnly)
            .map_err(zstd_error)?;
        self.open = false;
        Ok(())
    }

    fn get_mut(&mut self) -> &mut Handoff<S> {
        &mut self.out
    }

    fn finish(mut self) -> io::Result<Handoff<S>> {
        self.end_frame()?;
        Ok(self.out)
    }
}

impl<S: Write + Send + 'static> Write for FrameEncoder<S> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        self.open = true;
        let mut input = InBuffer::around(data);
        let zstd = &mut self.zstd;
        while input.pos() < data.len() {
            self.out.fill_with(OUT_ROOM, |buf| {
                let pos = buf.len();
                zstd.compress_stream(&mut OutBuffer::around_pos(buf, pos), &mut input)
                    .map_err(zstd_error)
            })?;
        }
        Ok(data.len())
    }

    /// Never forces a block end; what zstd handed out goes to the writer
    /// thread with its buffer.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn zstd_error(code: usize) -> io::Error {
    io::Error::other(format!("zstd: {}", zstd_safe::get_error_name(code)))
}

/// zstd's worker threads, at a lower priority than the rest of volsafe.
///
/// A backup is a chain (the daemon's `docker-tar` walks the volume on one
/// thread, `dockerd` relays it, volsafe parses it) feeding compression
/// that can run on any core at any time. When the chain waits for a CPU
/// behind a zstd job, the daemon's stream stalls; when the workers yield
/// to it, they still get every cycle the chain leaves (docs/behaviour.md).
mod workers {
    use std::io;

    use zstd::stream::raw::{InBuffer, OutBuffer};
    use zstd::zstd_safe::{CCtx, ResetDirective};

    use super::zstd_error;

    /// How much lower than volsafe's own the workers' priority is (nice).
    pub const NICER_BY: i32 = 5;

    /// The name the workers carry.
    pub const THREAD_NAME: &str = "volsafe-zstd";

    /// Starts the workers of `zstd` (its parameters set) at the lower
    /// priority. zstd starts a context's workers when it is first given
    /// input, on the thread that gives it, and threads inherit their
    /// priority and name from the thread that starts them: a short-lived
    /// thread at the lower priority gives it one byte and then abandons
    /// that frame. The workers stay with the context, which keeps them to
    /// itself, as zstd does by default. Should a later zstd start them
    /// elsewhere, they only run at volsafe's priority.
    pub fn start(mut zstd: CCtx<'static>) -> io::Result<CCtx<'static>> {
        let starter = std::thread::Builder::new()
            .name(THREAD_NAME.to_owned())
            .spawn(move || {
                lower_priority();
                let mut scratch = [0u8; 64];
                zstd.compress_stream(
                    &mut OutBuffer::around(&mut scratch[..]),
                    &mut InBuffer::around(&[0u8][..]),
                )
                .and_then(|_| zstd.reset(ResetDirective::SessionOnly))
                .map_err(zstd_error)?;
                Ok(zstd)
            })?;
        starter
            .join()
            .map_err(|_| io::Error::other("the thread starting zstd's workers failed"))?
    }

    /// Lowers the calling thread's priority by [`NICER_BY`], up to nice 19;
    /// on Linux the nice value belongs to the thread. A failure only costs
    /// the gain.
    fn lower_priority() {
        #[cfg(target_os = "linux")]
        {
            // -1 is a valid nice value too: errno tells an error apart.
            // SAFETY: errno is the calling thread's own.
            unsafe { *libc::__errno_location() = 0 };
            // SAFETY: a plain system call about the calling thread (who = 0).
            let now = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
            let failed = || io::Error::last_os_error().raw_os_error().unwrap_or(0) != 0;
            if now == -1 && failed() {
                tracing::debug!("cannot read volsafe's priority; zstd's workers keep it");
                return;
            }
            let nicer = (now + NICER_BY).min(19);
            // SAFETY: as above.
            if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nicer) } != 0 {
                tracing::debug!("cannot lower zstd's workers' priority; they keep volsafe's");
            }
        }
    }
}

/// What a finished archive looks like from outside and inside.
pub struct Written<W> {
    pub inner: W,
    /// Bytes of the archive file and their SHA-256 (the sidecar's fields).
    pub file_bytes: u64,
    pub file_sha256: String,
    pub trailer: Trailer,
}

impl<W> Written<W> {
    /// Separates the inner writer from the facts about what was written.
    pub fn split(self) -> (W, Written<()>) {
        let Written {
            inner,
            file_bytes,
            file_sha256,
            trailer,
        } = self;
        (
            inner,
            Written {
                inner: (),
                file_bytes,
                file_sha256,
                trailer,
            },
        )
    }
}

/// A streaming archive writer.
pub struct ArchiveWriter<W: Write + Send + 'static> {
    tar: TarWriter<Tee<FrameEncoder<Sink<W>>>>,
    data_bytes: u64,
    manifest: manifest::Builder,
    pending: PendingDigests,
}

/// Files of the open manifest chunk whose digests are being computed on
/// the digest thread.
struct PendingDigests {
    /// Digests in the order of the files, with where each file's data
    /// begins in the tar.
    digests: mpsc::Receiver<(u64, blake3::Hash)>,
    /// Each waiting file's data offset, and where its digest goes in the
    /// chunk's JSON.
    waiting: VecDeque<(u64, usize)>,
}

impl PendingDigests {
    /// Waits for every waiting digest and writes it into its record; the
    /// digest thread must have been handed all the files' bytes.
    fn settle(&mut self, manifest: &mut manifest::Builder) -> io::Result<()> {
        while let Some((start, at)) = self.waiting.pop_front() {
            let (from, digest) = self.digests.recv().map_err(|_| {
                io::Error::other("the digest thread stopped before hashing every file")
            })?;
            if from != start {
                // A bug: never a record with another file's digest.
                return Err(io::Error::other(
                    "file digests out of step with the manifest",
                ));
            }
            manifest.fill(at, digest);
        }
        Ok(())
    }
}

impl<W: Write + Send + 'static> ArchiveWriter<W> {
    /// Starts an archive: writes the age header (if encrypted) and the
    /// volsafe header frame. `threads` is the number of zstd workers (0 for
    /// single-threaded).
    pub fn new(
        out: W,
        encryptor: Option<age::Encryptor>,
        header: &Header,
        level: i32,
        threads: u32,
    ) -> Result<Self> {
        let out = DigestWriter::new(out, Algorithm::Sha256);
        let mut sink = match encryptor {
            Some(enc) => Sink::Age(enc.wrap_output(out).context("cannot start encryption")?),
            None => Sink::Plain(out),
        };
        let json = serde_json::to_vec(header)?;
        meta::write_frame(&mut sink, FrameKind::Header, &json)?;
        let zstd = FrameEncoder::new(Handoff::new(sink, "volsafe-writer")?, level, threads)?;
        let (tee, digests) = Tee::new(zstd, meta::tar_digest_of(Some(header.format)))?;
        Ok(ArchiveWriter {
            tar: TarWriter::new(tee),
            data_bytes: 0,
            manifest: manifest::Builder::default(),
            pending: PendingDigests {
                digests,
                waiting: VecDeque::new(),
            },
        })
    }

    /// Appends one entry and, for a regular file, exactly `entry.size` bytes
    /// of `data`, and records it in the manifest.
    pub fn append<D: Read>(&mut self, entry: &Entry, data: &mut D) -> io::Result<()> {
        if entry.kind == EntryKind::File {
            let mut start = 0;
            self.tar.append_noting(entry, data, |tee| {
                start = tee.announce_file(entry.size);
            })?;
            self.data_bytes += entry.size;
            if entry.size == 0 {
                self.manifest.push(entry, Some(blake3::hash(b"")))?;
            } else {
                let at = self.manifest.push_pending(entry)?;
                self.pending.waiting.push_back((start, at));
            }
        } else {
            self.tar.append(entry, data)?;
            self.manifest.push(entry, None)?;
        }
        if self.manifest.full() {
            // The records describe entries whose bytes are all in zstd by
            // now: end the data frame so the manifest frame follows them.
            let tee = self.tar.get_mut();
            tee.pass_on()?;
            self.pending.settle(&mut self.manifest)?;
            self.tar.get_mut().zstd.end_frame()?;
            self.write_manifest()?;
        }
        Ok(())
    }

    fn write_manifest(&mut self) -> io::Result<()> {
        if let Some(chunk) = self.manifest.take()? {
            let sink = self.tar.get_mut().zstd.get_mut();
            meta::write_frame(sink, FrameKind::Manifest, &chunk)?;
        }
        Ok(())
    }

    pub fn entries(&self) -> u64 {
        self.tar.entries_written()
    }

    /// Bytes of tar written so far (before compression).
    pub fn tar_bytes(&self) -> u64 {
        self.tar.bytes_written()
    }

    /// Ends the tar, the zstd frame and the age stream; writes the trailer.
    /// The caller still has to flush and sync `inner`.
    pub fn finish(self) -> Result<Written<W>> {
        let entries = self.tar.entries_written();
        let mut manifest = self.manifest;
        let mut pending = self.pending;
        let tee = self.tar.finish()?;
        let (zstd, tar_bytes, tar_digest) = tee.finish()?;
        pending.settle(&mut manifest)?;
        let mut sink = zstd.finish()?.finish()?;
        if let Some(chunk) = manifest.take()? {
            meta::write_frame(&mut sink, FrameKind::Manifest, &chunk)?;
        }
        let trailer = Trailer {
            entries,
            tar_bytes,
            tar_sha256: tar_digest.hex_if(Algorithm::Sha256),
            tar_blake3: tar_digest.hex_if(Algorithm::Blake3),
            data_bytes: self.data_bytes,
            manifest: Some(manifest.totals()),
        };
        meta::write_frame(
            &mut sink,
            FrameKind::Trailer,
            &serde_json::to_vec(&trailer)?,
        )?;
        let digest = sink.finish()?;
        let (inner, file_bytes, file_sha256) = digest.finish();
        let file_sha256 = file_sha256.hex;
        Ok(Written {
            inner,
            file_bytes,
            file_sha256,
            trailer,
        })
    }
}
