//! volsafe's metadata inside an archive: zstd skippable frames that carry a
//! header before the tar and a trailer after it.
//!
//! A skippable frame is `magic (u32 LE) | length (u32 LE) | payload`; zstd
//! and every conforming decoder skip it, so `zstd -d` still yields exactly
//! the tar. volsafe's payloads start with [`TAG`] and a kind byte; readers
//! skip frames whose tag or kind they do not know, which is how later
//! versions add frames (a per-entry manifest) without breaking v1 readers.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use super::digest::Algorithm;

/// The skippable-frame magic volsafe writes (any of 0x184D2A50..=0x184D2A5F is
/// skippable; volsafe uses one).
pub const SKIPPABLE_MAGIC: u32 = 0x184D_2A5E;
/// The magic number of a zstd data frame.
pub const ZSTD_MAGIC: u32 = 0xFD2F_B528;
/// The first bytes of every volsafe frame payload.
pub const TAG: &[u8; 8] = b"volsafe\0";
/// Archive format version written by this build. Format 2 differs from 1
/// only in the tar's digest: BLAKE3 (`tar_blake3`) instead of SHA-256
/// (`tar_sha256`); this build reads both.
pub const FORMAT_VERSION: u32 = 2;
/// Frames larger than this are not volsafe's metadata and are skipped unread.
pub const MAX_META_FRAME: u32 = 16 << 20;

/// Kinds of volsafe frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    Header = 1,
    Trailer = 2,
    /// A chunk of the per-entry manifest ([`super::manifest`]).
    Manifest = 3,
}

/// Written before the tar: what the archive is, and how to recreate the volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub format: u32,
    pub volume: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub driver: String,
    #[serde(default)]
    pub driver_options: BTreeMap<String, String>,
    pub daemon: String,
    /// RFC 3339, UTC, milliseconds.
    pub created: String,
    pub tool: String,
}

/// Written after the tar: totals a reader checks the tar against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trailer {
    /// Tar entries, the volume root included.
    pub entries: u64,
    /// Bytes of the tar stream, end-of-archive marker included.
    pub tar_bytes: u64,
    /// SHA-256 of the tar stream, lower-case hex (format 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tar_sha256: Option<String>,
    /// BLAKE3 of the tar stream, lower-case hex (format 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tar_blake3: Option<String>,
    /// Sum of the sizes of regular files.
    pub data_bytes: u64,
    /// The per-entry manifest's totals; absent in archives made before
    /// volsafe wrote one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<super::manifest::Totals>,
}

impl Trailer {
    /// The recorded digest of the tar made with `algorithm`, if any.
    pub fn tar_digest(&self, algorithm: Algorithm) -> Option<&str> {
        match algorithm {
            Algorithm::Sha256 => self.tar_sha256.as_deref(),
            Algorithm::Blake3 => self.tar_blake3.as_deref(),
        }
    }
}

/// The function that hashes the tar of an archive of `format` (`None`: no
/// volsafe header, an archive made by standard tools, whose digest is
/// reported as `zstd -d | sha256sum` would print it).
pub fn tar_digest_of(format: Option<u32>) -> Algorithm {
    match format {
        Some(f) if f >= 2 => Algorithm::Blake3,
        _ => Algorithm::Sha256,
    }
}

/// Writes one volsafe frame.
pub fn write_frame<W: Write>(out: &mut W, kind: FrameKind, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(TAG.len() + 1 + payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "metadata frame too large"))?;
    out.write_all(&SKIPPABLE_MAGIC.to_le_bytes())?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(TAG)?;
    out.write_all(&[kind as u8])?;
    out.write_all(payload)
}

/// Whether a 4-byte magic number opens a skippable frame.
pub fn is_skippable(magic: u32) -> bool {
    magic & 0xFFFF_FFF0 == 0x184D_2A50
}

/// A skippable frame that was read: volsafe's kind and JSON, or something to ignore.
pub enum Skippable {
    /// `payload` is JSON for the header and trailer, zstd-compressed JSON
    /// for a manifest chunk.
    Volsafe {
        kind: u8,
        payload: Vec<u8>,
    },
    Other,
}

/// Reads the rest of a skippable frame whose magic was already consumed.
pub fn read_skippable<R: Read>(input: &mut R) -> io::Result<Skippable> {
    let mut len = [0u8; 4];
    input.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len);
    if len > MAX_META_FRAME || (len as usize) < TAG.len() + 1 {
        io::copy(&mut input.take(u64::from(len)), &mut io::sink()).and_then(|n| {
            if n == u64::from(len) {
                Ok(())
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            }
        })?;
        return Ok(Skippable::Other);
    }
    let mut payload = vec![0u8; len as usize];
    input.read_exact(&mut payload)?;
    if &payload[..TAG.len()] != TAG {
        return Ok(Skippable::Other);
    }
    let kind = payload[TAG.len()];
    let payload = payload.split_off(TAG.len() + 1);
    Ok(Skippable::Volsafe { kind, payload })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trip() {
        let mut buf = Vec::new();
        write_frame(&mut buf, FrameKind::Trailer, b"{}").unwrap();
        let mut r = &buf[..];
        let mut magic = [0u8; 4];
        r.read_exact(&mut magic).unwrap();
        assert!(is_skippable(u32::from_le_bytes(magic)));
        match read_skippable(&mut r).unwrap() {
            Skippable::Volsafe { kind, payload } => {
                assert_eq!(kind, FrameKind::Trailer as u8);
                assert_eq!(payload, b"{}");
            }
            Skippable::Other => panic!("frame not recognised"),
        }
    }

    #[test]
    fn zstd_cli_skips_volsafe_frames() {
        // The property the format stands on: `zstd -d` yields only the data.
        let mut buf = Vec::new();
        write_frame(&mut buf, FrameKind::Header, b"{\"a\":1}").unwrap();
        buf.extend(zstd::encode_all(&b"hello"[..], 3).unwrap());
        write_frame(&mut buf, FrameKind::Trailer, b"{}").unwrap();
        let out = zstd::decode_all(&buf[..]).unwrap();
        assert_eq!(out, b"hello");
    }
}
