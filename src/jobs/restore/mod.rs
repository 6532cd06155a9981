//! `volsafe restore`: an archive back into a volume, without ever making
//! things worse.
//!
//! A wrong key fails at the age header, before anything is touched. A new
//! volume is created from the archive's records and removed again if the
//! restore fails. An existing volume is only written after the whole archive
//! was read and checked; replacing content first writes a rollback archive,
//! and a failure after that puts the old content back. The volume's lock is
//! held throughout, so no backup reads a half-restored volume.

mod rollback;
pub(crate) mod stream;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use age::secrecy::{ExposeSecret, SecretString};
use anyhow::{Context, Result};

use crate::archive::crypto::{self, Decryption};
use crate::archive::meta::Header;
use crate::engine::helper;
use crate::engine::lease::{self, Lease};
use crate::engine::volume::{self, VolumeSpec};
use crate::engine::Engine;
use crate::error::{exit_for, failed, interrupted, usage, Exit, Kind, UserError};
use crate::progress;
use crate::shutdown::Shutdown;
use crate::store;

/// How long a restore waits for a backup of the same volume to finish.
const LOCK_WAIT: Duration = Duration::from_secs(300);

/// Where the archive comes from.
#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    Dir(PathBuf),
    Stdin,
}

/// The key material, re-read on each blocking thread that needs it (age
/// identities cannot cross threads).
#[derive(Clone, Default)]
pub struct Keys {
    pub identity_files: Vec<PathBuf>,
    pub passphrase_file: Option<PathBuf>,
    /// An identity held in memory (the one-time key of a rollback archive).
    pub inline: Option<SecretString>,
}

impl Keys {
    pub fn load(&self) -> Result<Decryption> {
        if let Some(secret) = &self.inline {
            let file = age::IdentityFile::from_buffer(secret.expose_secret().as_bytes())
                .context("the one-time rollback key")?;
            let identities = file
                .into_identities()
                .map_err(|e| anyhow::anyhow!("the one-time rollback key: {e}"))?;
            return Ok(Decryption {
                identities,
                passphrase: None,
                own_recipients: Vec::new(),
                without_recipient: Vec::new(),
            });
        }
        crypto::decryption_from_args(&self.identity_files, self.passphrase_file.as_deref())
    }
}

/// A checked restore request.
pub struct Plan {
    pub source: Source,
    pub volume: Option<String>,
    pub keys: Keys,
    pub replace: bool,
    pub rollback_to: Option<PathBuf>,
    pub rollback_recipients: Vec<String>,
    pub rollback_recipient_files: Vec<PathBuf>,
    pub no_encryption: bool,
    pub driver_options: bool,
    pub daemon: Option<String>,
    pub helper_image: Option<String>,
    pub progress: progress::Mode,
}

/// Driver options that point at storage outside Docker. A tmpfs volume's
/// `device=tmpfs` is Docker's own memory, not outside storage.
fn is_external_option(key: &str, value: &str) -> bool {
    match key {
        "device" => value != "tmpfs",
        "o" => value.split(',').any(|o| o == "bind" || o == "rbind"),
        "type" => matches!(value, "cifs" | "smb" | "smb3") || value.starts_with("nfs"),
        _ => false,
    }
}

/// Whether a volume spec reaches storage outside Docker: external options,
/// or any option of a plugin driver (volsafe cannot tell what they mean).
fn is_external(driver: &str, options: &BTreeMap<String, String>) -> bool {
    let plugin = !driver.is_empty() && driver != "local";
    options
        .iter()
        .any(|(k, v)| plugin || is_external_option(k, v))
}

pub async fn run(plan: Plan, shutdown: Shutdown) -> Result<Exit> {
    run_plan(plan, shutdown).await.map_err(damage_is_a_failure)
}

/// A damaged archive fails a restore with exit 1, as any other failure:
/// exit 3 is what `verify` and `drill` report when they find damage.
fn damage_is_a_failure(mut e: anyhow::Error) -> anyhow::Error {
    if let Some(user) = e.downcast_mut::<UserError>() {
        if user.kind == Kind::Integrity {
            user.kind = Kind::Failed;
        }
    }
    e
}

async fn run_plan(plan: Plan, shutdown: Shutdown) -> Result<Exit> {
    plan.keys.load()?; // usage errors in key files come first
    if let Some(v) = &plan.volume {
        volume::check_name(v)?;
    }
    let engine = crate::engine::connect().await?;
    let (archive, _spool) = resolve_source(&plan, &engine, &shutdown).await?;
    let label = match plan.source {
        Source::Stdin => "archive from stdin".to_owned(),
        _ => format!("archive {}", archive.display()),
    };

    // Open once: a wrong key or a file that is not an archive fails here.
    let (header, encrypted) = {
        let (archive, keys, label) = (archive.clone(), plan.keys.clone(), label.clone());
        tokio::task::spawn_blocking(move || -> Result<(Option<Header>, bool)> {
            let r = stream::open_archive(&archive, &keys, &label, None)?;
            Ok((r.header().cloned(), r.is_encrypted()))
        })
        .await??
    };
    let target = match (&plan.volume, &header) {
        (Some(v), _) => v.clone(),
        (None, Some(h)) => h.volume.clone(),
        (None, None) => {
            return Err(usage(
                format!("{label}: the archive has no volsafe header, so it names no volume"),
                "pass --volume NAME to say which volume to restore into",
            ))
        }
    };
    volume::check_name(&target)?;
    let image = helper::ensure_image(&engine, plan.helper_image.as_deref()).await?;
    let lease = Lease::start(&engine, &image, "restore").await?;
    if let Err(e) = lease::sweep(&engine, &lease.id).await {
        tracing::warn!(error = %format!("{e:#}"), "cannot look for leftovers of earlier runs");
    }
    let ctx = Ctx {
        engine: &engine,
        image: &image,
        lease: &lease,
        plan: &plan,
        archive: &archive,
        label: &label,
    };
    let result = match lease::lock(&engine, &image, &target, &lease, LOCK_WAIT, &shutdown).await {
        Ok(lock) => {
            let _writing = shutdown.protect();
            let r = restore(&ctx, &target, header.as_ref(), encrypted, &shutdown).await;
            lock.release(&engine).await;
            r
        }
        Err(e) => Err(e),
    };
    lease.end(&engine).await;
    result.map(|()| Exit::Success).map_err(as_failure)
}

/// A damaged archive makes a restore fail (exit 1); exit 3 is for `verify`.
fn as_failure(e: anyhow::Error) -> anyhow::Error {
    if exit_for(&e) != Exit::Integrity {
        return e;
    }
    let hint = crate::error::find_user_error(&e).and_then(|u| u.hint.clone());
    let mut err = UserError::new(Kind::Failed, format!("{e:#}"));
    err.hint = hint;
    err.into()
}

/// What the steps of a restore share. A drill builds one too.
pub(crate) struct Ctx<'a> {
    pub engine: &'a Engine,
    pub image: &'a str,
    pub lease: &'a Lease,
    pub plan: &'a Plan,
    pub archive: &'a Path,
    pub label: &'a str,
}

/// Finds the archive to read; stdin is spooled to a private temporary file.
async fn resolve_source(
    plan: &Plan,
    engine: &Engine,
    shutdown: &Shutdown,
) -> Result<(PathBuf, Option<tempfile::TempPath>)> {
    match &plan.source {
        Source::File(p) => {
            if !p.is_file() {
                return Err(failed(
                    format!("archive {}: not found", p.display()),
                    "check the path, or list archives with `volsafe list DIR`",
                ));
            }
            Ok((p.clone(), None))
        }
        Source::Dir(dir) => {
            let Some(volume) = &plan.volume else {
                return Err(usage(
                    format!("{}: is a directory; which volume's archive?", dir.display()),
                    "pass --volume NAME to restore that volume's newest archive",
                ));
            };
            let daemon = plan.daemon.clone().unwrap_or_else(|| engine.name.clone());
            let (listed, _) = store::scan(dir, Some(&daemon), Some(volume))?;
            match listed.into_iter().next() {
                Some(newest) => {
                    tracing::info!(archive = %newest.path.display(), created = %newest.created,
                        "restoring the newest archive");
                    Ok((newest.path, None))
                }
                None => Err(failed(
                    format!(
                        "{}: no committed archive of volume {volume} from daemon {daemon}",
                        dir.display()
                    ),
                    "see `volsafe list DIR`; pass --daemon NAME for another host's archives",
                )),
            }
        }
        Source::Stdin => {
            if plan.replace && plan.rollback_to.is_none() {
                return Err(usage(
                    "restore from stdin with --replace needs --rollback-to DIR",
                    "say where the rollback archive of the current content goes",
                ));
            }
            let spool = tokio::task::spawn_blocking(|| -> Result<tempfile::TempPath> {
                let mut tmp = tempfile::Builder::new()
                    .prefix("volsafe-stdin-")
                    .tempfile()
                    .context("cannot create a temporary file for stdin")?;
                io::copy(&mut io::stdin().lock(), tmp.as_file_mut())
                    .context("cannot spool stdin to a temporary file")?;
                Ok(tmp.into_temp_path())
            });
            let spool = tokio::select! {
                s = spool => s??,
                s = shutdown.wait() => return Err(interrupted(s)),
            };
            Ok((spool.to_path_buf(), Some(spool)))
        }
    }
}

async fn restore(
    ctx: &Ctx<'_>,
    target: &str,
    header: Option<&Header>,
    encrypted: bool,
    shutdown: &Shutdown,
) -> Result<()> {
    match volume::inspect(ctx.engine, target).await? {
        None => restore_new(ctx, target, header, shutdown).await,
        Some(spec) => restore_existing(ctx, spec, encrypted, shutdown).await,
    }
}

/// Into a volume that does not exist: create it, remove it again on failure.
async fn restore_new(
    ctx: &Ctx<'_>,
    target: &str,
    header: Option<&Header>,
    shutdown: &Shutdown,
) -> Result<()> {
    let spec = spec_from_header(target, header, ctx.plan.driver_options);
    warn_if_tmpfs(&spec);
    volume::create(ctx.engine, &spec).await?;
    tracing::info!(volume = target, "created the volume");
    // Outside storage (a bind, NFS, a plugin) may already hold data that a
    // restore would overwrite, and removing the volume would not bring back.
    if is_external(&spec.driver, &spec.options) && !stream::look(ctx, target).await?.empty {
        let _ = volume::remove(ctx.engine, target).await;
        return Err(failed(
            format!("volume {target}: its storage outside Docker already holds data; refusing to write over it"),
            "empty that storage first, or restore without --driver-options into a plain local volume",
        ));
    }
    let result = stream::extract(
        ctx,
        ctx.archive,
        ctx.label,
        ctx.plan.keys.clone(),
        target,
        Some(shutdown),
    )
    .await;
    match &result {
        Err(e) => {
            tracing::debug!(error = %format!("{e:#}"), "restore failed; removing the volume it created");
            if let Err(e) = volume::remove(ctx.engine, target).await {
                tracing::warn!(volume = target, error = %format!("{e:#}"), "cannot remove the volume this restore created");
            }
        }
        Ok(()) => tracing::info!(volume = target, archive = %ctx.archive.display(), "restored"),
    }
    result
}

/// A tmpfs volume is Docker's memory, mounted only while a container uses
/// it: what a restore writes there is gone when its helper exits.
fn warn_if_tmpfs(spec: &VolumeSpec) {
    if spec.options.get("type").map(String::as_str) == Some("tmpfs") {
        tracing::warn!(volume = %spec.name,
            "a tmpfs volume holds data only while a container mounts it: what this restore writes is gone when its helper exits (the volume and its options remain)");
    }
}

/// The volume to create: driver and labels from the archive; driver options
/// that reach outside Docker only when asked for.
fn spec_from_header(target: &str, header: Option<&Header>, apply_external: bool) -> VolumeSpec {
    let plain = |labels| VolumeSpec {
        name: target.to_owned(),
        driver: "local".to_owned(),
        labels,
        options: BTreeMap::new(),
    };
    let Some(h) = header else {
        return plain(BTreeMap::new());
    };
    if is_external(&h.driver, &h.driver_options) && !apply_external {
        let saved: Vec<String> = h
            .driver_options
            .iter()
            .map(|(k, v)| {
                if k == "o" || k == "device" || k == "type" {
                    format!("{k}={}", crate::check::secrets::redact(k, v))
                } else {
                    k.clone()
                }
            })
            .collect();
        tracing::warn!(volume = target, driver = %h.driver, saved_options = %saved.join(" "),
            "the archive's driver options point outside Docker; creating a plain local volume (pass --driver-options to apply them)");
        return plain(h.labels.clone());
    }
    let driver = if h.driver.is_empty() {
        "local".to_owned()
    } else {
        h.driver.clone()
    };
    VolumeSpec {
        name: target.to_owned(),
        driver,
        labels: h.labels.clone(),
        options: h.driver_options.clone(),
    }
}

async fn restore_existing(
    ctx: &Ctx<'_>,
    spec: VolumeSpec,
    encrypted: bool,
    shutdown: &Shutdown,
) -> Result<()> {
    let name = spec.name.clone();
    warn_if_tmpfs(&spec);
    let users = volume::users(ctx.engine, &name).await?;
    let running: Vec<&str> = users
        .iter()
        .filter(|u| u.running)
        .map(|u| u.name.as_str())
        .collect();
    if !running.is_empty() {
        return Err(failed(
            format!(
                "volume {name}: in use by running container(s) {}",
                running.join(", ")
            ),
            format!(
                "stop them first (docker stop {}), then restore",
                running.join(" ")
            ),
        ));
    }
    let look = stream::look(ctx, &name).await?;
    if !look.empty && !ctx.plan.replace {
        return Err(failed(
            format!("volume {name}: not empty; refusing to restore over its content"),
            "pass --replace to replace it (a rollback archive is written first), or --volume NEW for a new volume",
        ));
    }
    // Replacing removes and recreates the volume, which does not remove
    // the data of a bind or of NFS: the old and the new content would mix.
    let external = is_external(&spec.driver, &spec.options);
    if !look.empty && external {
        return Err(failed(
            format!(
                "volume {name}: its storage is outside Docker (driver {}, options {}); \
                 removing the volume would not empty it, so --replace cannot replace its content",
                if spec.driver.is_empty() { "local" } else { &spec.driver },
                spec.options.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
            "restore into a new volume (--volume NEW), or empty that storage yourself and restore into the empty volume",
        ));
    }
    let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
    if !look.empty && !users.is_empty() {
        return Err(failed(
            format!(
                "volume {name}: referenced by container(s) {}; it cannot be emptied and replaced",
                names.join(", ")
            ),
            format!(
                "remove them first (docker rm {}; `docker compose down` keeps volumes)",
                names.join(" ")
            ),
        ));
    }
    let rollback = if look.empty {
        None
    } else {
        Some(rollback::encryption(ctx, encrypted)?)
    };

    tracing::info!(archive = %ctx.archive.display(), "checking the whole archive before writing to the volume");
    // A signal stops the check at once.
    let check = async {
        tokio::select! {
            r = stream::check_archive(ctx) => r.map(drop),
            s = shutdown.wait() => Err(interrupted(s)),
        }
    };

    let Some(rollback) = rollback else {
        check.await?;
        // Empty before: on failure or interruption, make it empty again. A
        // volume that containers reference cannot be emptied again, so then a
        // signal lets the extraction finish instead of cutting it short.
        let abort_on = if users.is_empty() {
            Some(shutdown)
        } else {
            None
        };
        let keys = ctx.plan.keys.clone();
        let result = stream::extract(ctx, ctx.archive, ctx.label, keys, &name, abort_on).await;
        let result = match (result, shutdown.signal()) {
            (Ok(()), Some(s)) => Err(interrupted(s)),
            (r, _) => r,
        };
        if result.is_ok() {
            tracing::info!(volume = %name, archive = %ctx.archive.display(), "restored");
        }
        if result.is_err() {
            if external {
                tracing::error!(volume = %name,
                    "the volume's storage is outside Docker: what was restored before the failure stays there; empty it by hand");
            } else if users.is_empty() {
                if let Err(e) = empty_again(ctx, &spec, look.root.as_ref()).await {
                    tracing::error!(volume = %name, error = %format!("{e:#}"), "cannot empty the volume again");
                }
            } else {
                tracing::error!(volume = %name, containers = %names.join(", "),
                    "the volume holds part of the archive; containers reference it, so it could not be emptied again");
            }
        }
        return result;
    };

    // The check reads the archive, the rollback archive the volume through
    // the daemon: they run side by side, and both end before the volume is
    // touched. The rollback archive runs to its end, as it would alone; if
    // the check failed, it is not needed and goes.
    let (checked, saved) = tokio::join!(check, rollback::write(ctx, &spec, &rollback.encryption));
    if let Err(e) = checked {
        if let Ok(saved) = &saved {
            rollback::discard(saved);
        }
        return Err(e);
    }
    let saved = saved?;
    crate::out_line(saved.display())?;
    tracing::info!(volume = %name, rollback = %saved.display(), "rollback archive written");
    if let Some(s) = shutdown.signal() {
        return Err(interrupted(s));
    }
    volume::remove(ctx.engine, &name)
        .await
        .context("the volume was not changed; its rollback archive is not needed")?;
    // From here on the old content lives only in the rollback archive: each
    // step runs to its end, and a failure puts the old content back.
    let step = async {
        volume::create(ctx.engine, &spec).await?;
        stream::extract(
            ctx,
            ctx.archive,
            ctx.label,
            ctx.plan.keys.clone(),
            &name,
            None,
        )
        .await
    };
    let result = step.await;
    if let Err(e) = &result {
        tracing::error!(volume = %name, error = %format!("{e:#}"),
            "restore failed; putting the old content back from the rollback archive");
        let label = format!("rollback archive {}", saved.display());
        let put_back = async {
            let _ = volume::remove(ctx.engine, &name).await;
            volume::create(ctx.engine, &spec).await?;
            stream::extract(ctx, &saved, &label, rollback.put_back.clone(), &name, None).await
        }
        .await;
        match put_back {
            Ok(()) => tracing::info!(volume = %name, "the old content is back"),
            Err(e2) => {
                tracing::error!(volume = %name, rollback = %saved.display(), error = %format!("{e2:#}"),
                "cannot put the old content back; restore the rollback archive by hand")
            }
        }
        return result;
    }
    tracing::info!(volume = %name, archive = %ctx.archive.display(), "restored");
    match shutdown.signal() {
        Some(s) => Err(interrupted(s)),
        None => Ok(()),
    }
}

/// Makes a volume empty again, with its root's owner and mode as before.
async fn empty_again(
    ctx: &Ctx<'_>,
    spec: &VolumeSpec,
    root: Option<&crate::archive::tarstream::Entry>,
) -> Result<()> {
    volume::remove(ctx.engine, &spec.name).await?;
    volume::create(ctx.engine, spec).await?;
    if let Some(root) = root {
        stream::put_root(ctx, &spec.name, root).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_driver_options_are_recognised() {
        assert!(is_external_option("device", "/srv/data"));
        assert!(is_external_option("o", "addr=10.0.0.1,rw,bind"));
        assert!(is_external_option("type", "nfs4"));
        assert!(is_external_option("type", "cifs"));
        assert!(!is_external_option("type", "tmpfs"));
        assert!(!is_external_option("device", "tmpfs"));
        assert!(!is_external_option("o", "size=100m"));
    }

    #[test]
    fn c11_labels_are_kept_and_external_options_need_the_flag() {
        let h = Header {
            format: 1,
            volume: "v".into(),
            labels: BTreeMap::from([("com.docker.compose.project".into(), "shop".into())]),
            driver: "local".into(),
            driver_options: BTreeMap::from([
                ("type".into(), "nfs".into()),
                ("device".into(), ":/export".into()),
            ]),
            daemon: "d".into(),
            created: String::new(),
            tool: String::new(),
        };
        let plain = spec_from_header("new", Some(&h), false);
        assert_eq!(plain.labels, h.labels);
        assert!(plain.options.is_empty());
        let full = spec_from_header("new", Some(&h), true);
        assert_eq!(full.options, h.driver_options);
        assert_eq!(full.name, "new");
    }
}
