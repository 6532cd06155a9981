//! `volsafe restore`: an archive back into a volume, without ever making
//! things worse.
//!
//! A wrong key fails at the age header, before anything is touched. A new
//! volume is created from the archive's records and removed again if the
//! restore fails. An existing volume is only written after the whole archive
//! was read and checked; replacing content first writes a rollback archive,
//! and a failure after that puts the old content back.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use bollard::query_parameters::{DownloadFromContainerOptions, UploadToContainerOptions};
use futures_util::StreamExt;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use super::backup::{self, Settings};
use super::bridge::{ChannelReader, ChannelWriter, DEPTH};
use crate::archive::crypto::{self, Decryption, Encryption};
use crate::archive::meta::Header;
use crate::archive::names::{self, MOUNT_DIR};
use crate::archive::tarstream::{EntryKind, TarReader, TarWriter};
use crate::archive::{walk, ArchiveReader, Summary};
use crate::engine::helper::{self, Access};
use crate::engine::lease::{self, Lease};
use crate::engine::volume::{self, VolumeSpec};
use crate::engine::{message_of, Engine};
use crate::error::{failed, interrupted, usage, Exit};
use crate::progress::{self, Progress};
use crate::shutdown::Shutdown;
use crate::store;

/// Where the archive comes from.
#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    Dir(PathBuf),
    Stdin,
}

/// The key material, re-read on each blocking thread that needs it (age
/// identities cannot cross threads).
#[derive(Debug, Clone, Default)]
pub struct Keys {
    pub identity_files: Vec<PathBuf>,
    pub passphrase_file: Option<PathBuf>,
}

impl Keys {
    pub fn load(&self) -> Result<Decryption> {
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
        "type" => {
            matches!(value, "nfs" | "nfs4" | "cifs" | "smb" | "smb3") || value.starts_with("nfs")
        }
        _ => false,
    }
}

pub async fn run(plan: Plan, shutdown: Shutdown) -> Result<Exit> {
    plan.keys.load()?; // usage errors in key files come first
    let engine = crate::engine::connect().await?;
    let (archive, _spool) = resolve_source(&plan, &engine).await?;
    let label = format!("archive {}", archive.display());

    // Open once: a wrong key or a file that is not an archive fails here.
    let (header, encrypted) = {
        let (archive, keys, label) = (archive.clone(), plan.keys.clone(), label.clone());
        tokio::task::spawn_blocking(move || -> Result<(Option<Header>, bool)> {
            let r = open_archive(&archive, &keys, &label, None)?;
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
    let result = restore(&ctx, &target, header.as_ref(), encrypted, &shutdown).await;
    lease.end(&engine).await;
    result.map(|()| Exit::Success)
}

struct Ctx<'a> {
    engine: &'a Engine,
    image: &'a str,
    lease: &'a Lease,
    plan: &'a Plan,
    archive: &'a Path,
    label: &'a str,
}

/// Finds the archive to read; stdin is spooled to a private temporary file.
async fn resolve_source(
    plan: &Plan,
    engine: &Engine,
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
                    tracing::info!(archive = %newest.path.display(), created = %newest.created, "restoring the newest archive");
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
            })
            .await??;
            Ok((spool.to_path_buf(), Some(spool)))
        }
    }
}

/// Opens an archive file for reading, counting raw bytes read.
fn open_archive(
    path: &Path,
    keys: &Keys,
    label: &str,
    counter: Option<Arc<AtomicU64>>,
) -> Result<ArchiveReader> {
    let file = File::open(path).map_err(|e| failed(format!("{label}: {e}"), "check the path"))?;
    let raw: Box<dyn Read + Send> = match counter {
        Some(c) => Box::new(Counting {
            inner: file,
            counter: c,
        }),
        None => Box::new(file),
    };
    ArchiveReader::open(raw, &keys.load()?, label)
}

struct Counting<R> {
    inner: R,
    counter: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
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
    volume::create(ctx.engine, &spec).await?;
    tracing::info!(volume = target, "created the volume");
    let result = restore_into_with(ctx, target, ctx.plan.keys.clone(), Some(shutdown)).await;
    if let Err(e) = &result {
        tracing::debug!(error = %format!("{e:#}"), "restore failed; removing the volume it created");
        if let Err(e) = volume::remove(ctx.engine, target).await {
            tracing::warn!(volume = target, error = %format!("{e:#}"), "cannot remove the volume this restore created");
        }
    } else {
        tracing::info!(volume = target, archive = %ctx.label, "restored");
    }
    result
}

/// The volume to create: driver and labels from the archive; driver options
/// that reach outside Docker only when asked for.
fn spec_from_header(target: &str, header: Option<&Header>, apply_external: bool) -> VolumeSpec {
    let Some(h) = header else {
        return VolumeSpec {
            name: target.to_owned(),
            driver: "local".to_owned(),
            labels: BTreeMap::new(),
            options: BTreeMap::new(),
        };
    };
    let external = h
        .driver_options
        .iter()
        .any(|(k, v)| is_external_option(k, v));
    let options = if external && !apply_external {
        let keys: Vec<&str> = h.driver_options.keys().map(String::as_str).collect();
        tracing::warn!(volume = target, saved_options = %keys.join(","),
            "the archive's driver options point outside Docker; creating a plain local volume (pass --driver-options to apply them)");
        BTreeMap::new()
    } else {
        h.driver_options.clone()
    };
    let driver = if external && !apply_external {
        "local".to_owned()
    } else {
        h.driver.clone()
    };
    VolumeSpec {
        name: target.to_owned(),
        driver: if driver.is_empty() {
            "local".to_owned()
        } else {
            driver
        },
        labels: h.labels.clone(),
        options,
    }
}

/// Runs a step that writes to the volume to its end even when a signal
/// arrives, then reports the interruption.
async fn guarded<F: std::future::Future<Output = Result<()>>>(
    step: F,
    shutdown: &Shutdown,
) -> Result<()> {
    let result = step.await;
    match (result, shutdown.signal()) {
        (Ok(()), Some(s)) => {
            tracing::warn!("a signal arrived during the restore; it was finished first");
            Err(interrupted(s))
        }
        (r, _) => r,
    }
}

async fn restore_existing(
    ctx: &Ctx<'_>,
    spec: VolumeSpec,
    encrypted: bool,
    shutdown: &Shutdown,
) -> Result<()> {
    let name = spec.name.clone();
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
    let empty = is_empty(ctx, &name).await?;
    if !empty && !ctx.plan.replace {
        return Err(failed(
            format!("volume {name}: not empty; refusing to restore over its content"),
            "pass --replace to replace it (a rollback archive is written first), or --volume NEW for a new volume",
        ));
    }
    if !empty && !users.is_empty() {
        let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
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
    let rollback_encryption = if empty {
        None
    } else {
        Some(rollback_encryption(ctx, encrypted)?)
    };

    tracing::info!(archive = %ctx.label, "checking the whole archive before writing to the volume");
    tokio::select! {
        r = check_archive(ctx) => { r?; }
        s = shutdown.wait() => return Err(interrupted(s)),
    }

    let Some(encryption) = rollback_encryption else {
        // Empty before: on failure or interruption, make it empty again.
        let result = restore_into_with(ctx, &name, ctx.plan.keys.clone(), Some(shutdown)).await;
        if result.is_err() && users.is_empty() {
            let _ = volume::remove(ctx.engine, &name).await;
            volume::create(ctx.engine, &spec).await?;
        }
        return result;
    };

    let rollback = write_rollback(ctx, &spec, encryption).await?;
    println!("{}", rollback.display());
    if let Some(s) = shutdown.signal() {
        return Err(interrupted(s));
    }
    tracing::info!(volume = %name, rollback = %rollback.display(), "rollback archive written");
    let step = async {
        volume::remove(ctx.engine, &name).await?;
        volume::create(ctx.engine, &spec).await?;
        restore_into(ctx, &name).await
    };
    let result = guarded(step, shutdown).await;
    if let Err(e) = &result {
        if matches!(crate::error::exit_for(e), Exit::Interrupted(_)) {
            return result;
        }
        tracing::error!(volume = %name, error = %format!("{e:#}"), "restore failed; putting the old content back from the rollback archive");
        let back_label = format!("rollback archive {}", rollback.display());
        let back = Ctx {
            archive: &rollback,
            label: &back_label,
            ..*ctx
        };
        let put_back = async {
            let _ = volume::remove(ctx.engine, &name).await;
            volume::create(ctx.engine, &spec).await?;
            restore_into_with(&back, &name, rollback_keys(ctx), None).await
        }
        .await;
        match put_back {
            Ok(()) => tracing::info!(volume = %name, "the old content is back"),
            Err(e2) => {
                tracing::error!(volume = %name, rollback = %rollback.display(), error = %format!("{e2:#}"),
                "cannot put the old content back; restore the rollback archive by hand")
            }
        }
    } else {
        tracing::info!(volume = %name, archive = %ctx.label, "restored");
    }
    result
}

/// The keys that open the rollback archive: those of the restore.
fn rollback_keys(ctx: &Ctx<'_>) -> Keys {
    ctx.plan.keys.clone()
}

/// Encryption for the rollback archive: the identities' public keys, the
/// same passphrase, or `-r`.
fn rollback_encryption(ctx: &Ctx<'_>, encrypted: bool) -> Result<Encryption> {
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
        if !list.is_empty() {
            return Ok(Encryption::Recipients(list));
        }
        if let Some(p) = keys.passphrase {
            return Ok(Encryption::Passphrase(p));
        }
        return Err(usage(
            "the rollback archive needs a recipient: the identity given has no public key volsafe can derive",
            "pass -r with the public key (for SSH keys: the .pub line)",
        ));
    }
    if !list.is_empty() {
        return Ok(Encryption::Recipients(list));
    }
    if plan.no_encryption {
        return Ok(Encryption::None);
    }
    Err(usage(
        "the archive is unencrypted, so the rollback archive has no key to be encrypted to",
        "pass -r RECIPIENT to encrypt it, or --no-encryption to write it unencrypted",
    ))
}

/// Backs up the current content of the volume into the rollback directory.
async fn write_rollback(
    ctx: &Ctx<'_>,
    spec: &VolumeSpec,
    encryption: Encryption,
) -> Result<PathBuf> {
    let dir = match (&ctx.plan.rollback_to, &ctx.plan.source) {
        (Some(d), _) => d.clone(),
        (None, _) => ctx
            .archive
            .parent()
            .unwrap_or(Path::new("."))
            .join(store::ROLLBACK_DIR),
    };
    let helper = helper::create(
        ctx.engine,
        ctx.image,
        &spec.name,
        Access::ReadOnly,
        &ctx.lease.id,
    )
    .await?;
    let created = OffsetDateTime::now_utc();
    let header = backup::header_for(ctx.engine, spec, created);
    let progress = Progress::start(ctx.plan.progress, &format!("rollback {}", spec.name), None);
    let result = async {
        let encryptor = encryption.encryptor()?;
        let settings = Settings {
            level: 3,
            allow_empty: true,
        };
        backup::write_to_dir(
            ctx.engine,
            &helper,
            &dir,
            header,
            encryptor,
            settings,
            progress.counter(),
            created,
        )
        .await
    }
    .await;
    helper.remove(ctx.engine).await;
    progress.finish();
    result.context("cannot write the rollback archive; the volume was not touched")
}

/// Whether a volume holds nothing but its root.
async fn is_empty(ctx: &Ctx<'_>, name: &str) -> Result<bool> {
    let helper =
        helper::create(ctx.engine, ctx.image, name, Access::ReadOnly, &ctx.lease.id).await?;
    let opts = DownloadFromContainerOptions {
        path: format!("/{MOUNT_DIR}"),
    };
    let (tx, rx) = mpsc::channel(DEPTH);
    let mut stream = ctx
        .engine
        .transfer
        .download_from_container(&helper.id, Some(opts));
    let pump = async move {
        while let Some(item) = stream.next().await {
            let chunk = item.map_err(|e| io::Error::other(message_of(&e)));
            let stop = chunk.is_err();
            if tx.send(chunk).await.is_err() || stop {
                break;
            }
        }
    };
    let count = tokio::task::spawn_blocking(move || -> Result<u64> {
        let mut tar = TarReader::new(ChannelReader::new(rx));
        while tar.next_entry()?.is_some() {
            if tar.entries_read() > 1 {
                break;
            }
        }
        Ok(tar.entries_read())
    });
    let ((), count) = tokio::join!(pump, count);
    helper.remove(ctx.engine).await;
    let count = count?.with_context(|| format!("volume {name}: cannot read its content"))?;
    Ok(count <= 1)
}

/// Reads the whole archive and checks it, writing nothing.
async fn check_archive(ctx: &Ctx<'_>) -> Result<Summary> {
    let size = std::fs::metadata(ctx.archive).map(|m| m.len()).ok();
    let progress = Progress::start(
        ctx.plan.progress,
        &format!("check {}", file_name(ctx.archive)),
        size,
    );
    let (archive, keys, label, counter) = (
        ctx.archive.to_path_buf(),
        ctx.plan.keys.clone(),
        ctx.label.to_owned(),
        progress.counter(),
    );
    let summary = tokio::task::spawn_blocking(move || -> Result<Summary> {
        let reader = open_archive(&archive, &keys, &label, Some(counter))?;
        walk(reader, |entry, _| {
            names::archive_to_engine(&entry.path).map_err(|_| climbs_out(&entry.path_lossy()))?;
            Ok(())
        })
        .with_context(|| format!("archive {label}: damaged; the volume was not touched"))
    })
    .await?;
    progress.finish();
    summary
}

fn climbs_out(name: &str) -> anyhow::Error {
    failed(
        format!("archive entry {name:?} climbs out of the volume (..)"),
        "this archive was not made from a volume; extract it by hand",
    )
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

async fn restore_into(ctx: &Ctx<'_>, volume: &str) -> Result<()> {
    restore_into_with(ctx, volume, ctx.plan.keys.clone(), None).await
}

/// Streams the archive into `volume` through a read-write helper. With a
/// `shutdown`, a signal aborts the stream (the caller then puts the volume
/// back); without, the step runs to its end.
async fn restore_into_with(
    ctx: &Ctx<'_>,
    volume: &str,
    keys: Keys,
    shutdown: Option<&Shutdown>,
) -> Result<()> {
    let helper = helper::create(
        ctx.engine,
        ctx.image,
        volume,
        Access::ReadWrite,
        &ctx.lease.id,
    )
    .await?;
    let size = std::fs::metadata(ctx.archive).map(|m| m.len()).ok();
    let progress = Progress::start(ctx.plan.progress, &format!("restore {volume}"), size);
    let (tx, rx) = mpsc::channel(DEPTH);
    let (archive, label, counter) = (
        ctx.archive.to_path_buf(),
        ctx.label.to_owned(),
        progress.counter(),
    );
    let work = tokio::task::spawn_blocking(move || -> Result<Summary> {
        let mut out = TarWriter::new(ChannelWriter::new(tx));
        let result = open_archive(&archive, &keys, &label, Some(counter)).and_then(|reader| {
            walk(reader, |entry, data| {
                let mut e = entry.clone();
                e.path = names::archive_to_engine(&entry.path)
                    .map_err(|_| climbs_out(&entry.path_lossy()))?;
                if e.kind == EntryKind::HardLink {
                    if let Some(link) = &entry.link {
                        e.link = Some(
                            names::archive_to_engine(link)
                                .map_err(|_| climbs_out(&entry.path_lossy()))?,
                        );
                    }
                }
                out.append(&e, data)
                    .with_context(|| format!("entry {:?}", entry.path_lossy()))?;
                Ok(())
            })
            .with_context(|| label.clone())
        });
        // The end-of-archive marker goes out only once the whole archive
        // checked out; otherwise the daemon sees a failed stream.
        match result {
            Ok(summary) => {
                let mut chan = out.finish()?;
                chan.flush()?;
                Ok(summary)
            }
            Err(e) => {
                out.get_mut().fail(io::Error::other("archive rejected"));
                Err(e)
            }
        }
    });
    let body =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    let opts = UploadToContainerOptions {
        path: "/".to_owned(),
        ..Default::default()
    };
    let upload = ctx.engine.transfer.upload_to_container(
        &helper.id,
        Some(opts),
        bollard::body_try_stream(body),
    );
    let both = async { tokio::join!(upload, work) };
    let joined = match shutdown {
        Some(sd) => tokio::select! {
            j = both => Ok(j),
            s = sd.wait() => Err(interrupted(s)),
        },
        None => Ok(both.await),
    };
    helper.remove(ctx.engine).await;
    progress.finish();
    let (uploaded, worked) = joined?;
    let summary = worked.context("the archive reader stopped unexpectedly")??;
    uploaded.map_err(|e| {
        failed(
            format!(
                "volume {volume}: the daemon failed to extract the archive ({})",
                message_of(&e)
            ),
            "see the daemon's log",
        )
    })?;
    tracing::debug!(
        volume,
        entries = summary.entries,
        bytes = summary.data_bytes,
        "archive extracted"
    );
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
