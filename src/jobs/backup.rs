//! `volsafe backup`: each volume through a read-only helper, re-framed as
//! volsafe's tar, compressed, encrypted, and committed to the destination.
//!
//! The order of a backup is what keeps its promises: the volume is inspected
//! before any helper exists (a typo is never created), the lock is held for
//! the whole run, the archive carries a final name only after fsync, and the
//! helper, the lock and any partial file are removed on every path.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bollard::query_parameters::DownloadFromContainerOptions;
use futures_util::StreamExt;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use super::bridge::{ChannelReader, DEPTH};
use crate::archive::crypto::Encryption;
use crate::archive::meta::{Header, FORMAT_VERSION};
use crate::archive::names::{self, MOUNT_DIR};
use crate::archive::tarstream::{EntryKind, TarReader};
use crate::archive::{ArchiveWriter, EntryData, Written};
use crate::engine::helper::{self, Access, Helper};
use crate::engine::lease::{self, Lease};
use crate::engine::volume::{self, VolumeSpec};
use crate::engine::{message_of, Engine};
use crate::error::{failed, interrupted, usage, Exit};
use crate::progress::{self, Progress};
use crate::shutdown::Shutdown;
use crate::store::{self, Sidecar};

/// Where archives go.
#[derive(Debug, Clone)]
pub enum Dest {
    Dir(PathBuf),
    Stdout,
}

/// A checked backup request.
pub struct Plan {
    pub volumes: Vec<String>,
    pub dest: Dest,
    pub encryption: Encryption,
    pub level: i32,
    pub allow_empty: bool,
    pub lock_wait: Duration,
    pub helper_image: Option<String>,
    pub progress: progress::Mode,
}

/// Checks what clap cannot: stdout takes one volume and never a terminal.
pub fn check_dest(volumes: &[String], to: &std::path::Path) -> Result<Dest> {
    if to.as_os_str() != "-" {
        return Ok(Dest::Dir(to.to_path_buf()));
    }
    if volumes.len() != 1 {
        return Err(usage(
            "--to -: stdout takes one volume",
            "back up several volumes into a directory, or run one command per volume",
        ));
    }
    if io::stdout().is_terminal() {
        return Err(usage(
            "--to -: refusing to write an archive to a terminal",
            "redirect stdout to a file or a pipe: volsafe backup VOL --to - > vol.tar.zst.age",
        ));
    }
    Ok(Dest::Stdout)
}

/// Runs a backup of every volume in the plan; returns the exit status after
/// reporting each volume's failure.
pub async fn run(plan: Plan, shutdown: Shutdown) -> Result<Exit> {
    let engine = crate::engine::connect().await?;
    let image = helper::ensure_image(&engine, plan.helper_image.as_deref()).await?;
    let lease = Lease::start(&engine, &image, "backup").await?;
    if let Err(e) = lease::sweep(&engine, &lease.id).await {
        tracing::warn!(error = %format!("{e:#}"), "cannot look for leftovers of earlier runs");
    }
    let mut ok = 0usize;
    let mut failed_count = 0usize;
    let mut stop = None;
    for name in &plan.volumes {
        if let Some(s) = shutdown.signal() {
            stop = Some(s);
            break;
        }
        match backup_one(&engine, &image, &lease, name, &plan, &shutdown).await {
            Ok(Some(path)) => {
                ok += 1;
                let mut out = io::stdout().lock();
                let _ = writeln!(out, "{}", path.display());
                let _ = out.flush();
            }
            Ok(None) => ok += 1,
            Err(e) => {
                if let Some(s) = shutdown.signal() {
                    stop = Some(s);
                    break;
                }
                failed_count += 1;
                crate::report_error(&e);
            }
        }
    }
    lease.end(&engine).await;
    if let Some(s) = stop {
        return Err(interrupted(s));
    }
    Ok(match (ok, failed_count) {
        (_, 0) => Exit::Success,
        (0, _) => Exit::Failed,
        _ => Exit::Partial,
    })
}

/// Backs up one volume; the archive's path when it went to a directory.
async fn backup_one(
    engine: &Engine,
    image: &str,
    lease: &Lease,
    name: &str,
    plan: &Plan,
    shutdown: &Shutdown,
) -> Result<Option<PathBuf>> {
    let spec = volume::require(engine, name).await?;
    let lock = lease::lock(engine, image, name, lease, plan.lock_wait, shutdown).await?;
    let result = async {
        let helper = helper::create(engine, image, name, Access::ReadOnly, &lease.id).await?;
        let result = tokio::select! {
            r = write_archive(engine, &helper, &spec, plan) => r,
            s = shutdown.wait() => Err(interrupted(s)),
        };
        helper.remove(engine).await;
        result
    }
    .await;
    lock.release(engine).await;
    result
}

/// The archive's header for a volume as inspected now.
pub fn header_for(engine: &Engine, spec: &VolumeSpec, created: OffsetDateTime) -> Header {
    Header {
        format: FORMAT_VERSION,
        volume: spec.name.clone(),
        labels: spec.labels.clone(),
        driver: spec.driver.clone(),
        driver_options: spec.options.clone(),
        daemon: engine.name.clone(),
        created: store::rfc3339_millis(created),
        tool: tool_version(),
    }
}

pub fn tool_version() -> String {
    format!("volsafe {}", env!("CARGO_PKG_VERSION"))
}

async fn write_archive(
    engine: &Engine,
    helper: &Helper,
    spec: &VolumeSpec,
    plan: &Plan,
) -> Result<Option<PathBuf>> {
    let created = OffsetDateTime::now_utc();
    let header = header_for(engine, spec, created);
    let encryptor = plan.encryption.encryptor()?;
    let progress = Progress::start(plan.progress, &spec.name, None);
    let settings = Settings {
        level: plan.level,
        allow_empty: plan.allow_empty,
    };
    match &plan.dest {
        Dest::Stdout => {
            let out = Output::Stdout(io::stdout());
            stream_volume(
                engine,
                helper,
                out,
                encryptor,
                header,
                settings,
                progress.counter(),
            )
            .await?;
            progress.finish();
            Ok(None)
        }
        Dest::Dir(root) => {
            let dir = store::volume_dir(root, &engine.name, &spec.name);
            store::make_dir(&dir)?;
            store::clean_stale(&dir, &spec.name);
            let path = write_to_dir(
                engine,
                helper,
                &dir,
                header,
                encryptor,
                settings,
                progress.counter(),
                created,
            )
            .await?;
            progress.finish();
            Ok(Some(path))
        }
    }
}

/// Streams a volume into a new archive in `dir` and commits it.
#[allow(clippy::too_many_arguments)]
pub async fn write_to_dir(
    engine: &Engine,
    helper: &Helper,
    dir: &std::path::Path,
    header: Header,
    encryptor: Option<age::Encryptor>,
    settings: Settings,
    counter: Arc<AtomicU64>,
    created: OffsetDateTime,
) -> Result<PathBuf> {
    let encrypted = encryptor.is_some();
    let mut pending = store::create(dir, &helper.volume, created, encrypted)?;
    let file = pending
        .file
        .take()
        .expect("a new pending archive has its file");
    let out = Output::File(
        BufWriter::with_capacity(1 << 20, file),
        pending.path.clone(),
    );
    let volume = header.volume.clone();
    let daemon = header.daemon.clone();
    let created_s = header.created.clone();
    let written =
        match stream_volume(engine, helper, out, encryptor, header, settings, counter).await {
            Ok(w) => w,
            Err(e) => {
                pending.abort();
                return Err(e);
            }
        };
    let sidecar = Sidecar {
        format: FORMAT_VERSION,
        volume,
        daemon,
        created: created_s,
        archive: pending
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        size: written.file_bytes,
        sha256: written.file_sha256.clone(),
        tool: tool_version(),
        encrypted,
        entries: written.trailer.entries,
    };
    let path = pending.path.clone();
    match pending.commit(&sidecar) {
        Ok(p) => {
            tracing::info!(volume = %sidecar.volume, path = %p.display(), entries = written.trailer.entries,
                bytes = written.file_bytes, "backup committed");
            Ok(p)
        }
        Err(e) => {
            // The archive may already carry its final name; without a sidecar
            // it is an incomplete backup, so remove it rather than leave it.
            let _ = std::fs::remove_file(&path);
            Err(e)
        }
    }
}

/// Knobs of the archive writer.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub level: i32,
    pub allow_empty: bool,
}

/// The bytes' destination: a file (synced at the end) or stdout.
pub enum Output {
    File(BufWriter<File>, PathBuf),
    Stdout(io::Stdout),
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Output::File(f, _) => f.write(buf),
            Output::Stdout(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::File(f, _) => f.flush(),
            Output::Stdout(s) => s.flush(),
        }
    }
}

impl Output {
    /// Flushes, and makes a file durable.
    fn finish(self) -> Result<()> {
        match self {
            Output::File(w, path) => {
                let file = w.into_inner().map_err(|e| dest_io(&path, e.error()))?;
                file.sync_all().map_err(|e| dest_io(&path, &e))
            }
            Output::Stdout(mut s) => s.flush().context("stdout"),
        }
    }
}

fn dest_io(path: &std::path::Path, e: &io::Error) -> anyhow::Error {
    let hint = match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => {
            "free space on the destination, or prune old archives"
        }
        _ => "check the destination",
    };
    failed(format!("destination {}: {e}", path.display()), hint)
}

/// Streams the volume mounted in `helper` into an archive written to `out`.
pub async fn stream_volume(
    engine: &Engine,
    helper: &Helper,
    out: Output,
    encryptor: Option<age::Encryptor>,
    header: Header,
    settings: Settings,
    counter: Arc<AtomicU64>,
) -> Result<Written<()>> {
    let (tx, rx) = mpsc::channel(DEPTH);
    let volume = helper.volume.clone();
    let pump = {
        let opts = DownloadFromContainerOptions {
            path: format!("/{MOUNT_DIR}"),
        };
        let mut stream = engine
            .transfer
            .download_from_container(&helper.id, Some(opts));
        let counter = counter.clone();
        async move {
            while let Some(item) = stream.next().await {
                if let Ok(bytes) = &item {
                    counter.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                }
                let chunk = item.map_err(|e| {
                    io::Error::other(format!("the daemon's stream failed: {}", message_of(&e)))
                });
                let stop = chunk.is_err();
                if tx.send(chunk).await.is_err() || stop {
                    break;
                }
            }
        }
    };
    let work = tokio::task::spawn_blocking(move || {
        reframe(ChannelReader::new(rx), out, encryptor, &header, settings)
    });
    let ((), joined) = tokio::join!(pump, work);
    let written = joined.context("the archive writer stopped unexpectedly")?;
    written.with_context(|| format!("volume {volume}"))
}

/// Reads the Engine's tar, renames each entry relative to the volume root,
/// and writes the archive. Runs on a blocking thread.
fn reframe(
    input: ChannelReader,
    out: Output,
    encryptor: Option<age::Encryptor>,
    header: &Header,
    settings: Settings,
) -> Result<Written<()>> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1);
    let mut writer = ArchiveWriter::new(out, encryptor, header, settings.level, threads)?;
    let mut tar = TarReader::new(input);
    while let Some(mut entry) = tar
        .next_entry()
        .context("reading the volume from the daemon")?
    {
        let Some(path) = names::engine_to_archive(&entry.path) else {
            anyhow::bail!(
                "the daemon sent an entry outside the volume: {:?}",
                entry.path_lossy()
            );
        };
        let first = tar.entries_read() == 1;
        if first != (path == b"./") || (first && entry.kind != EntryKind::Dir) {
            anyhow::bail!(
                "the daemon's stream does not start with the volume root ({:?})",
                entry.path_lossy()
            );
        }
        entry.path = path;
        if entry.kind == EntryKind::HardLink {
            if let Some(link) = entry.link.as_deref().and_then(names::engine_to_archive) {
                entry.link = Some(link);
            }
        }
        writer
            .append(&entry, &mut EntryData(&mut tar))
            .with_context(|| format!("reading {:?} from the daemon", entry.path_lossy()))?;
    }
    if tar.entries_read() == 0 {
        anyhow::bail!("the daemon's stream held no entries");
    }
    if tar.entries_read() == 1 && !settings.allow_empty {
        return Err(failed(
            "the volume is empty; nothing was backed up",
            "pass --allow-empty to keep an archive of the empty volume (its root's owner and mode)",
        ));
    }
    let written = writer.finish()?;
    let Written {
        inner,
        file_bytes,
        file_sha256,
        trailer,
    } = written;
    inner.finish()?;
    Ok(Written {
        inner: (),
        file_bytes,
        file_sha256,
        trailer,
    })
}
