//! Writers and readers that count and hash the bytes passing through.
//!
//! The archive file is hashed with SHA-256 (the sidecar's, so that
//! `sha256sum` checks it). The tar stream is hashed with BLAKE3 in format 2
//! (several times cheaper per byte) and with SHA-256 in format 1 archives
//! and in archives that standard tools made.

use std::io::{self, Read, Write};

use sha2::{Digest as _, Sha256};

/// A hash function of the archive format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha256,
    Blake3,
}

impl Algorithm {
    /// The name used in messages and in output fields (`tar_<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Blake3 => "blake3",
        }
    }
}

/// A digest and the function that made it, as lower-case hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub algorithm: Algorithm,
    pub hex: String,
}

impl Digest {
    /// The hex digest if it was made with `algorithm`: the value of the
    /// `tar_<algorithm>` field of a trailer or a report.
    pub fn hex_if(&self, algorithm: Algorithm) -> Option<String> {
        (self.algorithm == algorithm).then(|| self.hex.clone())
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.algorithm.name(), self.hex)
    }
}

enum Hasher {
    Sha256(Sha256),
    Blake3(Box<blake3::Hasher>),
}

impl Hasher {
    fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Blake3 => Hasher::Blake3(Box::default()),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Blake3(h) => {
                h.update(bytes);
            }
        }
    }

    fn finish(self) -> Digest {
        match self {
            Hasher::Sha256(h) => Digest {
                algorithm: Algorithm::Sha256,
                hex: hex::encode(h.finalize()),
            },
            Hasher::Blake3(h) => Digest {
                algorithm: Algorithm::Blake3,
                hex: h.finalize().to_hex().to_string(),
            },
        }
    }
}

/// Counts and hashes everything written through it.
pub struct DigestWriter<W> {
    inner: W,
    hasher: Hasher,
    bytes: u64,
}

impl<W: Write> DigestWriter<W> {
    pub fn new(inner: W, algorithm: Algorithm) -> Self {
        DigestWriter {
            inner,
            hasher: Hasher::new(algorithm),
            bytes: 0,
        }
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// The inner writer, the byte count and the digest.
    pub fn finish(self) -> (W, u64, Digest) {
        (self.inner, self.bytes, self.hasher.finish())
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Counts and hashes everything read through it.
pub struct DigestReader<R> {
    inner: R,
    hasher: Hasher,
    bytes: u64,
}

impl<R: Read> DigestReader<R> {
    pub fn new(inner: R, algorithm: Algorithm) -> Self {
        DigestReader {
            inner,
            hasher: Hasher::new(algorithm),
            bytes: 0,
        }
    }

    pub fn finish(self) -> (R, u64, Digest) {
        (self.inner, self.bytes, self.hasher.finish())
    }
}

impl<R: Read> Read for DigestReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_functions_give_their_known_digests() {
        for (algorithm, hex) in [
            (
                Algorithm::Sha256,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                Algorithm::Blake3,
                "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85",
            ),
        ] {
            let mut w = DigestWriter::new(Vec::new(), algorithm);
            w.write_all(b"abc").unwrap();
            let (inner, n, digest) = w.finish();
            assert_eq!((inner.as_slice(), n), (&b"abc"[..], 3));
            assert_eq!(
                digest,
                Digest {
                    algorithm,
                    hex: hex.to_string()
                }
            );
            let mut r = DigestReader::new(&b"abc"[..], algorithm);
            io::copy(&mut r, &mut io::sink()).unwrap();
            assert_eq!(r.finish().2.hex, hex);
        }
    }
}
