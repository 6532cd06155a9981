//! `volsafe verify`: is this archive what its records say it is?
//!
//! The sidecar's size and SHA-256 are compared whenever there is a sidecar.
//! The whole content (decrypted, decompressed, parsed, and compared with the
//! trailer's totals and digest) is checked whenever it can be: always for an
//! unencrypted archive, with a key for an encrypted one. Every mismatch is
//! exit 3; an encrypted archive with no sidecar and no key leaves nothing to
//! check, which is a usage error.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use super::restore::Keys;
use crate::archive::crypto::{Decryption, PASSPHRASE_ENV};
use crate::archive::digest::{Algorithm, Digest, DigestReader};
use crate::archive::{walk, ArchiveReader};
use crate::cli::OutputFormat;
use crate::error::{failed, find_user_error, integrity, usage, Exit, Kind};
use crate::shutdown::Shutdown;
use crate::store;

const AGE_MAGIC: &[u8] = b"age-encryption.org/v1";

pub struct Plan {
    pub archive: PathBuf,
    pub keys: Keys,
    pub format: OutputFormat,
}

#[derive(Debug, Serialize)]
struct Report {
    archive: PathBuf,
    encrypted: bool,
    sidecar: Option<String>,
    content: Option<Content>,
}

#[derive(Debug, Serialize)]
struct Content {
    entries: u64,
    data_bytes: u64,
    tar_bytes: u64,
    /// Format 1 archives and archives made by standard tools.
    #[serde(skip_serializing_if = "Option::is_none")]
    tar_sha256: Option<String>,
    /// Format 2 archives.
    #[serde(skip_serializing_if = "Option::is_none")]
    tar_blake3: Option<String>,
    #[serde(skip)]
    tar_digest: Digest,
    volume: Option<String>,
    created: Option<String>,
}

/// Checks the archive. Runs on a blocking thread; once `shutdown` fires,
/// reads fail so the thread ends soon after the command has returned.
pub fn run(plan: Plan, shutdown: &Shutdown) -> Result<Exit> {
    let path = &plan.archive;
    if !path.is_file() {
        return Err(failed(
            format!("archive {}: not found", path.display()),
            "check the path",
        ));
    }
    let encrypted = starts_with_age(open(path, shutdown)?)
        .map_err(|e| failed(format!("archive {}: {e}", path.display()), "check the path"))?;
    let with_key = !plan.keys.identity_files.is_empty()
        || plan.keys.passphrase_file.is_some()
        || std::env::var(PASSPHRASE_ENV).is_ok_and(|p| !p.is_empty());
    // An unencrypted archive needs no key to be read whole.
    let whole = !encrypted || with_key;
    tracing::debug!(encrypted, with_key, whole, "what verify can check");
    let sidecar = check_sidecar(path, whole, shutdown)?;
    let content = if whole {
        let keys = if encrypted {
            plan.keys.load()?
        } else {
            no_keys()
        };
        Some(check_content(path, &keys, shutdown)?)
    } else {
        None
    };
    let report = Report {
        archive: path.clone(),
        encrypted,
        sidecar,
        content,
    };
    match plan.format {
        OutputFormat::Json => crate::out_line(serde_json::to_string_pretty(&report)?)?,
        OutputFormat::Text => {
            if let Some(s) = &report.sidecar {
                crate::out_line(format!(
                    "ok: {} matches its sidecar (sha256 {s})",
                    path.display()
                ))?;
            }
            if let Some(c) = &report.content {
                let how = if encrypted {
                    "decrypts and reads whole"
                } else {
                    "reads whole (not encrypted)"
                };
                crate::out_line(format!(
                    "ok: {} {how}: {} entries, {} bytes of file data, tar {}",
                    path.display(),
                    c.entries,
                    c.data_bytes,
                    c.tar_digest
                ))?;
            }
        }
    }
    Ok(Exit::Success)
}

/// Compares the file with its sidecar. A missing sidecar is fine when the
/// content will be checked whole; otherwise there is nothing to check.
pub(crate) fn check_sidecar(
    path: &Path,
    whole: bool,
    shutdown: &Shutdown,
) -> Result<Option<String>> {
    let side_path = store::sidecar_path(path);
    let Some(side) = store::read_sidecar(path) else {
        if side_path.exists() {
            let hint = if whole {
                "the sidecar is damaged; restore does not need it: move it aside and verify again to check the archive itself"
            } else {
                "the sidecar is damaged; restore does not need it: move it aside and verify again with -i IDENTITY to check the archive itself"
            };
            return Err(integrity(
                format!("sidecar {}: unreadable", side_path.display()),
                hint,
            ));
        }
        if whole {
            return Ok(None);
        }
        return Err(usage(
            format!(
                "archive {}: encrypted and without a sidecar, so there is nothing to check without a key",
                path.display()
            ),
            "pass -i IDENTITY (or --passphrase-file FILE) to decrypt and check the whole archive",
        ));
    };
    let mut reader = DigestReader::new(open(path, shutdown)?, Algorithm::Sha256);
    io::copy(&mut reader, &mut io::sink())
        .map_err(|e| failed(format!("archive {}: {e}", path.display()), "check the path"))?;
    let (_, size, sha) = reader.finish();
    if size != side.size {
        return Err(integrity(
            format!(
                "archive {}: {size} bytes, its sidecar says {}",
                path.display(),
                side.size
            ),
            "the archive is truncated or was changed; use another backup",
        ));
    }
    let sha = sha.hex;
    if sha != side.sha256 {
        return Err(integrity(
            format!(
                "archive {}: SHA-256 differs from its sidecar's",
                path.display()
            ),
            "the archive is damaged or was changed; use another backup",
        ));
    }
    Ok(Some(sha))
}

fn check_content(path: &Path, keys: &Decryption, shutdown: &Shutdown) -> Result<Content> {
    let label = path.display().to_string();
    let reader = ArchiveReader::open(Box::new(open(path, shutdown)?), keys, &label)?;
    let header = reader.header().cloned();
    let summary = walk(reader, |_, data| {
        std::io::copy(data, &mut std::io::sink())?;
        Ok(())
    })
    .map_err(|e| {
        // A failed read of the content is an integrity failure, whatever layer saw it.
        match find_user_error(&e).map(|u| u.kind) {
            Some(Kind::Integrity) => e,
            _ => integrity(
                format!("archive {label}: {e:#}"),
                "the archive is damaged; use another backup",
            ),
        }
    })?;
    Ok(Content {
        entries: summary.entries,
        data_bytes: summary.data_bytes,
        tar_bytes: summary.tar_bytes,
        tar_sha256: summary.tar_digest.hex_if(Algorithm::Sha256),
        tar_blake3: summary.tar_digest.hex_if(Algorithm::Blake3),
        tar_digest: summary.tar_digest,
        volume: header.as_ref().map(|h| h.volume.clone()),
        created: header.map(|h| h.created),
    })
}

/// Opens the archive for reading, naming it if that fails.
fn open(path: &Path, shutdown: &Shutdown) -> Result<Cancellable> {
    let file = std::fs::File::open(path).map_err(|e| {
        failed(
            format!("archive {}: cannot open ({e})", path.display()),
            "check the path and that this user may read it",
        )
    })?;
    Ok(Cancellable {
        inner: file,
        shutdown: shutdown.clone(),
    })
}

/// Whether a file is binary age (armored files are left to the reader,
/// which explains that they are not supported).
fn starts_with_age(mut file: impl Read) -> io::Result<bool> {
    let mut start = Vec::with_capacity(AGE_MAGIC.len());
    file.by_ref()
        .take(AGE_MAGIC.len() as u64)
        .read_to_end(&mut start)?;
    Ok(start == AGE_MAGIC)
}

fn no_keys() -> Decryption {
    Decryption {
        identities: Vec::new(),
        passphrase: None,
        own_recipients: Vec::new(),
        without_recipient: Vec::new(),
    }
}

/// A file whose reads fail once a signal has arrived, so that a verify
/// abandoned by Ctrl-C stops reading instead of holding up the exit.
struct Cancellable {
    inner: std::fs::File,
    shutdown: Shutdown,
}

impl Read for Cancellable {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.shutdown.signal().is_some() {
            return Err(io::Error::other("interrupted"));
        }
        self.inner.read(buf)
    }
}
