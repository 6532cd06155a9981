//! Writes an archive: header frame, zstd(tar), trailer frame, all inside
//! age when encrypted.
//!
//! The writer owns nothing but the chain of streams; the caller decides where
//! the bytes go and when they become durable. Every byte of the tar passes a
//! digest, so the trailer states exactly what a reader must find.

use std::io::{self, Read, Write};

use anyhow::{Context, Result};

use super::digest::DigestWriter;
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
pub struct ArchiveWriter<W: Write> {
    tar: TarWriter<DigestWriter<zstd::stream::write::Encoder<'static, Sink<W>>>>,
    data_bytes: u64,
}

impl<W: Write> ArchiveWriter<W> {
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
        let out = DigestWriter::new(out);
        let mut sink = match encryptor {
            Some(enc) => Sink::Age(enc.wrap_output(out).context("cannot start encryption")?),
            None => Sink::Plain(out),
        };
        let json = serde_json::to_vec(header)?;
        meta::write_frame(&mut sink, FrameKind::Header, &json)?;
        let mut zstd = zstd::stream::write::Encoder::new(sink, level)?;
        zstd.include_checksum(true)?;
        if threads > 0 {
            zstd.multithread(threads)?;
            // zstd's default job is 4 windows; each worker holds an input and
            // an output buffer per job. Smaller jobs keep peak memory well
            // under 64 MiB at the default level with no loss of speed here.
            zstd.set_parameter(zstd::stream::raw::CParameter::JobSize(JOB_SIZE))?;
        }
        Ok(ArchiveWriter {
            tar: TarWriter::new(DigestWriter::new(zstd)),
            data_bytes: 0,
        })
    }

    /// Appends one entry and, for a regular file, exactly `entry.size` bytes of `data`.
    pub fn append<D: Read>(&mut self, entry: &Entry, data: &mut D) -> io::Result<()> {
        self.tar.append(entry, data)?;
        if entry.kind == EntryKind::File {
            self.data_bytes += entry.size;
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
        let digest = self.tar.finish()?;
        let (zstd, tar_bytes, tar_sha256) = digest.finish();
        let mut sink = zstd.finish()?;
        let trailer = Trailer {
            entries,
            tar_bytes,
            tar_sha256,
            data_bytes: self.data_bytes,
        };
        meta::write_frame(
            &mut sink,
            FrameKind::Trailer,
            &serde_json::to_vec(&trailer)?,
        )?;
        let digest = sink.finish()?;
        let (inner, file_bytes, file_sha256) = digest.finish();
        Ok(Written {
            inner,
            file_bytes,
            file_sha256,
            trailer,
        })
    }
}
