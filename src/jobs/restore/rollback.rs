//! The rollback archive that `restore --replace` writes before it removes
//! anything, and the keys that open it again.
//!
//! The rollback is encrypted to what the operator can open (the identities'
//! public keys, the archive's passphrase, or `-r`), and also to a one-time
//! key held in memory, so that a failed replace can always put the old
//! content back, whatever `-r` said.

use std::path::{Path, PathBuf};

use age::secrecy::{ExposeSecret, SecretString};
use anyhow::{Context, Result};

use super::{Ctx, Keys};
use crate::archive::crypto::{self, Encryption};
use crate::engine::helper;
use crate::engine::volume::VolumeSpec;
use crate::error::usage;
use crate::jobs::backup::{self, NewArchive, Settings};
use crate::progress::Progress;
use crate::store;

/// How the rollback archive is encrypted, and the keys to put it back with.
pub struct Rollback {
    pub encryption: Encryption,
    pub put_back: Keys,
}

/// Encryption for the rollback archive: the identities' public keys, the
/// same passphrase, or `-r`, plus a one-time key for putting it back.
pub fn encryption(ctx: &Ctx<'_>, encrypted: bool) -> Result<Rollback> {
    let plan = ctx.plan;
    let mut list = Vec::new();
    for r in &plan.rollback_recipients {
        list.push(crypto::parse_recipient(r)?);
    }
    for f in &plan.rollback_recipient_files {
        list.extend(crypto::read_recipients_file(f)?);
    }
    let keys = plan.keys.load()?;
    if encrypted {
        list.extend(keys.own_recipients);
        if list.is_empty() {
            if let Some(p) = keys.passphrase {
                return Ok(Rollback {
                    encryption: Encryption::Passphrase(p),
                    put_back: plan.keys.clone(),
                });
            }
            let ssh: Vec<String> = keys
                .without_recipient
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            return Err(usage(
                format!(
                    "the rollback archive needs a recipient: volsafe cannot derive a public key from {}",
                    ssh.join(", ")
                ),
                "pass -r with the public key (for an SSH key: its .pub line)",
            ));
        }
    } else if list.is_empty() && !plan.no_encryption {
        return Err(usage(
            "the archive is unencrypted, so the rollback archive has no key to be encrypted to",
            "pass -r RECIPIENT to encrypt it, or --no-encryption to write it unencrypted",
        ));
    }
    if list.is_empty() {
        return Ok(Rollback {
            encryption: Encryption::None,
            put_back: plan.keys.clone(),
        });
    }
    let once = age::x25519::Identity::generate();
    list.push(Box::new(once.to_public()));
    let put_back = Keys {
        inline: Some(SecretString::from(
            once.to_string().expose_secret().to_owned(),
        )),
        ..Keys::default()
    };
    Ok(Rollback {
        encryption: Encryption::Recipients(list),
        put_back,
    })
}

/// Backs up the current content of the volume into the rollback directory.
pub async fn write(ctx: &Ctx<'_>, spec: &VolumeSpec, encryption: &Encryption) -> Result<PathBuf> {
    let dir = match &ctx.plan.rollback_to {
        Some(d) => d.clone(),
        None => ctx
            .archive
            .parent()
            .unwrap_or(Path::new("."))
            .join(store::ROLLBACK_DIR),
    };
    let helper =
        helper::create_for_backup(ctx.engine, ctx.image, &spec.name, &ctx.lease.id).await?;
    let progress = Progress::start(ctx.plan.progress, &format!("rollback {}", spec.name), None);
    let result = async {
        // Written while the operator waits for the restore: speed first.
        let settings = Settings {
            level: 1,
            allow_empty: true,
        };
        let job = NewArchive::new(ctx.engine, spec, encryption.encryptor()?, settings);
        backup::write_to_dir(ctx.engine, &helper, &dir, job, progress.counter()).await
    }
    .await;
    helper.remove(ctx.engine).await;
    progress.finish();
    result.context("cannot write the rollback archive; the volume was not touched")
}

/// Removes a rollback archive and its sidecar that turned out not to be
/// needed (the check failed or was interrupted, and the volume was not
/// touched); a failure only leaves them behind.
pub fn discard(archive: &Path) {
    for path in [archive.to_path_buf(), store::sidecar_path(archive)] {
        if let Err(e) = std::fs::remove_file(&path) {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove the unneeded rollback archive");
        }
    }
    // Only if nothing else is in it.
    if let Some(dir) = archive.parent() {
        let _ = std::fs::remove_dir(dir);
    }
    tracing::info!(rollback = %archive.display(), "rollback archive removed: the volume was not touched");
}
