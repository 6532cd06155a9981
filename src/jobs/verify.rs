//! `volsafe verify`: is this archive what its records say it is?
//!
//! Without a key only the sidecar's size and SHA-256 can be compared. With a
//! key the whole archive is decrypted, decompressed and parsed, and the tar
//! is compared with the trailer's totals and digest. Every mismatch is exit 3.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use super::restore::Keys;
use crate::archive::{digest, walk, ArchiveReader};
use crate::cli::OutputFormat;
use crate::error::{find_user_error, integrity, Exit, Kind};
use crate::store;

pub struct Plan {
    pub archive: PathBuf,
    pub keys: Keys,
    pub format: OutputFormat,
}

#[derive(Debug, Serialize)]
struct Report {
    archive: PathBuf,
    sidecar: Option<String>,
    content: Option<Content>,
}

#[derive(Debug, Serialize)]
struct Content {
    entries: u64,
    data_bytes: u64,
    tar_bytes: u64,
    tar_sha256: String,
    volume: Option<String>,
    created: Option<String>,
}

pub fn run(plan: Plan) -> Result<Exit> {
    let path = &plan.archive;
    if !path.is_file() {
        return Err(crate::error::failed(
            format!("archive {}: not found", path.display()),
            "check the path",
        ));
    }
    let with_key = !plan.keys.identity_files.is_empty()
        || plan.keys.passphrase_file.is_some()
        || std::env::var(crate::archive::crypto::PASSPHRASE_ENV).is_ok_and(|p| !p.is_empty());
    let sidecar = check_sidecar(path, with_key)?;
    let content = if with_key {
        Some(check_content(path, &plan.keys)?)
    } else {
        None
    };
    let report = Report {
        archive: path.clone(),
        sidecar,
        content,
    };
    match plan.format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Text => {
            if let Some(s) = &report.sidecar {
                println!("ok: {} matches its sidecar (sha256 {s})", path.display());
            }
            if let Some(c) = &report.content {
                println!(
                    "ok: {} decrypts and reads whole: {} entries, {} bytes of file data, tar sha256 {}",
                    path.display(),
                    c.entries,
                    c.data_bytes,
                    c.tar_sha256
                );
            }
        }
    }
    Ok(Exit::Success)
}

/// Compares the file with its sidecar. Without a key a missing sidecar is a
/// failure, since nothing else could be checked.
fn check_sidecar(path: &Path, with_key: bool) -> Result<Option<String>> {
    let Some(side) = store::read_sidecar(path) else {
        if store::sidecar_path(path).exists() {
            return Err(integrity(
                format!(
                    "sidecar {}: unreadable",
                    store::sidecar_path(path).display()
                ),
                "the sidecar is damaged; verify with a key (-i) to check the archive itself",
            ));
        }
        if with_key {
            return Ok(None);
        }
        return Err(integrity(
            format!(
                "archive {}: no sidecar, so there is no checksum to compare without a key",
                path.display()
            ),
            "pass -i IDENTITY to decrypt and check the whole archive",
        ));
    };
    let (size, sha) = digest::sha256_file(path).map_err(|e| {
        crate::error::failed(format!("archive {}: {e}", path.display()), "check the path")
    })?;
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

fn check_content(path: &Path, keys: &Keys) -> Result<Content> {
    let label = path.display().to_string();
    let file = std::fs::File::open(path)?;
    let reader = ArchiveReader::open(Box::new(file), &keys.load()?, &label)?;
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
        tar_sha256: summary.tar_sha256,
        volume: header.as_ref().map(|h| h.volume.clone()),
        created: header.map(|h| h.created),
    })
}
