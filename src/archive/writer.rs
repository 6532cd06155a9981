//! Writes an archive: header frame, zstd(tar), trailer frame, all inside
//! age when encrypted.
//!
//! The writer owns nothing but the chain of streams; the caller decides where
//! the bytes go and when they become durable. Every byte of the tar passes a
//! digest, so the trailer states exactly what a reader must find.

use std::io::{self, Read, Write};

use anyhow::{Context, Result};

use zstd::stream::raw::{InBuffer, OutBuffer};
use zstd::zstd_safe::{self, CCtx, CParameter, ResetDirective};

use super::digest::{Algorithm, Digest, DigestWriter};
use super::handoff::{Handoff, HANDOFF};
use super::manifest::{self, Hashing};
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
/// without a copy, to the tar's digest on a thread of its own. Few large writes keep
/// zstd's worker hand-offs (and their locks) few, whatever the entry sizes.
struct Tee<Z: Write> {
    zstd: Z,
    batch: Vec<u8>,
    digest: Handoff<DigestWriter<io::Sink>>,
}

impl<Z: Write> Tee<Z> {
    fn new(zstd: Z, algorithm: Algorithm) -> io::Result<Self> {
        Ok(Tee {
            zstd,
            batch: Vec::with_capacity(HANDOFF),
            digest: Handoff::new(DigestWriter::new(io::sink(), algorithm), "volsafe-digest")?,
        })
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

    /// The inner writer, the tar's length and its digest.
    fn finish(mut self) -> io::Result<(Z, u64, Digest)> {
        self.pass_on()?;
        let (_, bytes, digest) = self.digest.finish()?.finish();
        Ok((self.zstd, bytes, digest))
    }
}

impl<Z: Write> Write for Tee<Z> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.batch.extend_from_slice(data);
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
            if let Some(pool) = workers::pool() {
                zstd.ref_thread_pool(pool).map_err(zstd_error)?;
            }
            let mut set = |p| zstd.set_parameter(p).map(drop).map_err(zstd_error);
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

/// zstd's worker threads, one pool for every archive the process writes.
///
/// The workers run at a lower priority than the rest of volsafe: a backup
/// is a chain (the daemon's `docker-tar` walks the volume on one thread,
/// `dockerd` relays it, volsafe parses it) feeding compression that can
/// run on any core at any time. When the chain waits for a CPU behind a
/// zstd job, the daemon's stream stalls and the machine idles later; when
/// the workers yield to it, they still get every cycle the chain leaves
/// (docs/performance.md measures it). Pool threads inherit their priority
/// and name from the thread that starts them, so a short-lived thread at
/// the lower priority starts them.
mod workers {
    use std::sync::OnceLock;

    use zstd::zstd_safe::ThreadPool;

    /// How much lower than volsafe's own the workers' priority is (nice).
    pub const NICER_BY: i32 = 5;

    /// The name the pool's threads carry.
    pub const THREAD_NAME: &str = "volsafe-zstd";

    static POOL: OnceLock<Option<ThreadPool>> = OnceLock::new();

    /// The pool, one worker per core, started on first use. None if it
    /// could not be started: each encoder then starts its own workers.
    pub fn pool() -> Option<&'static ThreadPool> {
        POOL.get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let starter = std::thread::Builder::new()
                .name(THREAD_NAME.to_owned())
                .spawn(move || {
                    lower_priority();
                    ThreadPool::try_new(cores)
                });
            match starter.map(|t| t.join()) {
                Ok(Ok(pool)) => pool,
                _ => None,
            }
        })
        .as_ref()
    }

    /// Lowers the calling thread's priority by [`NICER_BY`]; on Linux the
    /// nice value belongs to the thread, and threads it starts inherit it.
    /// A failure only costs the gain.
    fn lower_priority() {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: plain system calls about the calling thread (who = 0);
            // they touch no memory of ours. errno is cleared first because
            // -1 is also a valid nice value.
            unsafe {
                *libc::__errno_location() = 0;
                let now = libc::getpriority(libc::PRIO_PROCESS, 0);
                if now == -1 && *libc::__errno_location() != 0 {
                    return;
                }
                let nicer = (now + NICER_BY).min(19);
                if libc::setpriority(libc::PRIO_PROCESS, 0, nicer) != 0 {
                    tracing::debug!("cannot lower the zstd workers' priority; carrying on");
                }
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
        Ok(ArchiveWriter {
            tar: TarWriter::new(Tee::new(zstd, meta::tar_digest_of(Some(header.format)))?),
            data_bytes: 0,
            manifest: manifest::Builder::default(),
        })
    }

    /// Appends one entry and, for a regular file, exactly `entry.size` bytes
    /// of `data`, and records it in the manifest.
    pub fn append<D: Read>(&mut self, entry: &Entry, data: &mut D) -> io::Result<()> {
        let digest = if entry.kind == EntryKind::File {
            let mut hasher = blake3::Hasher::new();
            let mut hashing = Hashing {
                inner: data,
                hasher: &mut hasher,
            };
            self.tar.append(entry, &mut hashing)?;
            self.data_bytes += entry.size;
            Some(hasher.finalize())
        } else {
            self.tar.append(entry, data)?;
            None
        };
        self.manifest.push(entry, digest)?;
        if self.manifest.full() {
            // The records describe entries whose bytes are all in zstd by
            // now: end the data frame so the manifest frame follows them.
            let tee = self.tar.get_mut();
            tee.pass_on()?;
            tee.zstd.end_frame()?;
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
        let digest = self.tar.finish()?;
        let (zstd, tar_bytes, tar_digest) = digest.finish()?;
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
