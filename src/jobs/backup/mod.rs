//! `volsafe backup`: each volume through a read-only helper, re-framed as
//! volsafe's tar, compressed, encrypted, and committed to the destination.
//!
//! The order of a backup is what keeps its promises: the volume is inspected
//! before any helper exists (a typo is never created), the lock is held for
//! the whole run, the archive carries a final name only after fsync, and the
//! helper, the lock and any partial file are removed on every path.

use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use time::OffsetDateTime;

use crate::archive::crypto::Encryption;
use crate::archive::meta::{Header, FORMAT_VERSION};
use crate::engine::helper::{self, Helper};
use crate::engine::lease::{self, Lease};
use crate::engine::volume::{self, VolumeSpec};
use crate::engine::Engine;
use crate::engine::{hooks, stop};
use crate::error::{failed, interrupted, usage, Exit};
use crate::progress::{self, Progress};
use crate::shutdown::Shutdown;
use crate::store::{self, Sidecar};

mod stream;
pub use stream::stream_volume;

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
    /// The security check run first; `None` with `--skip-check`.
    pub check: Option<PreCheck>,
    /// Stop every running container that mounts a volume (besides those
    /// labelled `volsafe.stop-during-backup=true`, always stopped).
    pub stop_containers: bool,
    /// Print each archive's path on stdout (the command does; the
    /// scheduler logs them instead).
    pub print_paths: bool,
    /// How many volumes may be read at once; shared by the scheduler's jobs.
    pub slots: Arc<tokio::sync::Semaphore>,
}

/// The pre-backup security check's settings.
pub struct PreCheck {
    pub ignores: crate::check::ignore::Ignores,
    /// Back up nothing when a finding reaches this.
    pub fail_on: Option<crate::check::Severity>,
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
///
/// Around the volumes' backups, in this order: pre-backup hooks (while
/// everything still runs), one stop window for all the containers to stop,
/// the backups, the containers started again in reverse order, post-backup
/// hooks. Once anything is stopped, every path goes through the restart;
/// a second signal does not cut it short.
pub async fn run(plan: Plan, shutdown: Shutdown) -> Result<Exit> {
    let engine = crate::engine::connect().await?;
    run_job(&engine, &plan, &shutdown).await?.exit()
}

/// What happened to one volume.
#[derive(Debug, Clone)]
pub struct VolumeResult {
    pub volume: String,
    /// The committed archive (`None` for stdout or on failure).
    pub archive: Option<PathBuf>,
    /// The archive's size in bytes.
    pub bytes: u64,
    pub duration: Duration,
    /// The error, as reported, when it failed.
    pub error: Option<String>,
}

/// What one backup command or scheduled job did.
#[derive(Debug, Default)]
pub struct Summary {
    pub volumes: Vec<VolumeResult>,
    /// How long containers were stopped, if any were.
    pub stop_window: Option<Duration>,
    /// Errors not tied to one volume (a container that did not start again).
    pub other_failures: usize,
    pub interrupted: Option<crate::error::Signal>,
}

impl Summary {
    /// The exit status of a one-shot command (DESIGN.md's table): 5 only
    /// when some volumes were backed up and others not; a container that
    /// did not start again fails the command (1).
    pub fn exit(&self) -> Result<Exit> {
        if let Some(s) = self.interrupted {
            return Err(interrupted(s));
        }
        let failed = self.volumes.iter().filter(|v| v.error.is_some()).count();
        let ok = self.volumes.iter().filter(|v| v.error.is_none()).count();
        Ok(match (ok, failed) {
            _ if self.other_failures > 0 => Exit::Failed,
            (_, 0) => Exit::Success,
            (0, _) => Exit::Failed,
            _ => Exit::Partial,
        })
    }

    /// Records and reports a volume's failure.
    fn failed(&mut self, volume: &str, e: &anyhow::Error, started: std::time::Instant) {
        crate::report_error(e);
        let error = crate::check::secrets::scrub(&format!("{e:#}"));
        match self.volumes.iter_mut().find(|v| v.volume == volume) {
            // A post-backup hook after the backup: both errors count.
            Some(v) => {
                v.error = Some(match v.error.take() {
                    Some(first) => format!("{first}; {error}"),
                    None => error,
                });
            }
            None => self.volumes.push(VolumeResult {
                volume: volume.to_owned(),
                archive: None,
                bytes: 0,
                duration: started.elapsed(),
                error: Some(error),
            }),
        }
    }
}

/// Runs one backup job on a connected engine: the check, hooks, the stop
/// window and every volume. Errors only for what stops the whole job
/// before any volume is read (the check's threshold, no helper image).
pub async fn run_job(engine: &Engine, plan: &Plan, shutdown: &Shutdown) -> Result<Summary> {
    // A destination that cannot be created fails now, before any container
    // is stopped or hook run.
    if let Dest::Dir(dir) = &plan.dest {
        store::make_dir(dir)?;
    }
    // The security check and the lease are independent round trips to the
    // daemon, so they run side by side; a failed check ends the lease.
    let check = async {
        let Some(check) = &plan.check else {
            return Ok(());
        };
        // Containers the backup stops do not write during it (BAK005).
        let stopping = stop::targets(engine, &plan.volumes, plan.stop_containers).await?;
        let req = super::check::BeforeBackup {
            volumes: &plan.volumes,
            ignores: &check.ignores,
            fail_on: check.fail_on,
            stopping: stopping.into_iter().map(|t| t.name).collect(),
        };
        super::check::before_backup(engine, req).await
    };
    let take_lease = async {
        let image = helper::ensure_image(engine, plan.helper_image.as_deref()).await?;
        let lease = Lease::start(engine, &image, "backup").await?;
        anyhow::Ok((image, lease))
    };
    let (image, lease) = match tokio::join!(check, take_lease) {
        (Ok(()), Ok(taken)) => taken,
        (Err(e), Ok((_, lease))) => {
            lease.end(engine).await;
            return Err(e);
        }
        (Err(e), Err(lease)) => {
            tracing::debug!(error = %format!("{lease:#}"), "no lease either");
            return Err(e);
        }
        (Ok(()), Err(e)) => return Err(e),
    };
    if let Err(e) = lease::sweep(engine, &lease.id).await {
        tracing::warn!(error = %format!("{e:#}"), "cannot look for leftovers of earlier runs");
    }
    let mut job = Job {
        engine,
        image: &image,
        lease: &lease,
        plan,
        shutdown,
        summary: Summary::default(),
        signal: None,
    };
    let hooked = job.pre_hooks().await;
    let mut ready = hooked.clone();
    // Once anything is stopped, a second signal does not cut the restart
    // short.
    let held = shutdown.protect();
    let window = job.stop_window(&mut ready).await;
    let held = (!window.is_empty()).then_some(held);
    job.back_up(&ready).await;
    job.restart(window).await;
    job.post_hooks(&hooked).await;
    drop(held);
    let Job {
        mut summary,
        signal,
        ..
    } = job;
    summary.interrupted = signal;
    lease.end(engine).await;
    Ok(summary)
}

/// One backup job on its way: what it needs, and what happened so far.
struct Job<'a> {
    engine: &'a Engine,
    image: &'a str,
    lease: &'a Lease,
    plan: &'a Plan,
    shutdown: &'a Shutdown,
    summary: Summary,
    /// The signal that ended it early.
    signal: Option<crate::error::Signal>,
}

impl Job<'_> {
    fn interrupted(&mut self) -> bool {
        if self.signal.is_none() {
            self.signal = self.shutdown.signal();
        }
        self.signal.is_some()
    }

    /// Pre-backup hooks, while everything still runs. Returns the volumes
    /// to go on with: a failing hook fails its volume only.
    async fn pre_hooks(&mut self) -> Vec<String> {
        let mut ready = Vec::new();
        for name in &self.plan.volumes {
            if self.interrupted() {
                break;
            }
            let started = std::time::Instant::now();
            match run_hooks(self.engine, name, hooks::LABEL_PRE, self.shutdown).await {
                Ok(()) => ready.push(name.clone()),
                Err(e) => {
                    if self.interrupted() {
                        break;
                    }
                    let e = e.context(format!("volume {name}: not backed up"));
                    self.summary.failed(name, &e, started);
                }
            }
        }
        ready
    }

    /// Stops the containers of the volumes still to back up, as they are
    /// now. If that fails, none is backed up: reading while writers still
    /// run is what the stop was asked to prevent.
    async fn stop_window(&mut self, ready: &mut Vec<String>) -> stop::Window {
        let targets = if self.interrupted() || ready.is_empty() {
            Ok(Vec::new())
        } else {
            stop::targets(self.engine, ready, self.plan.stop_containers).await
        };
        let (window, stopped) = match targets {
            Ok(t) => stop::stop(self.engine, self.image, self.lease, &t).await,
            Err(e) => (stop::Window::empty(self.image), Err(e)),
        };
        if let Err(e) = stopped {
            for name in ready.drain(..) {
                self.summary.failed(&name, &e, std::time::Instant::now());
            }
        }
        window
    }

    /// Backs up the volumes, as many at once as the plan's slots allow.
    async fn back_up(&mut self, ready: &[String]) {
        use futures_util::stream::{FuturesUnordered, StreamExt};
        let (engine, image, lease, plan, shutdown) = (
            self.engine,
            self.image,
            self.lease,
            self.plan,
            self.shutdown,
        );
        let mut running: FuturesUnordered<_> = ready
            .iter()
            .map(|name| async move {
                let slot = plan.slots.acquire().await;
                let started = std::time::Instant::now();
                if shutdown.signal().is_some() || slot.is_err() {
                    return (name, started, None);
                }
                let result = backup_one(engine, image, lease, name, plan, shutdown).await;
                (name, started, Some(result))
            })
            .collect();
        while let Some((name, started, result)) = running.next().await {
            let Some(result) = result else { continue };
            match result {
                Ok(archive) => {
                    if let Some(path) = archive.as_ref().filter(|_| plan.print_paths) {
                        let mut out = io::stdout().lock();
                        let _ = writeln!(out, "{}", path.display());
                        let _ = out.flush();
                    }
                    let bytes = archive
                        .as_ref()
                        .and_then(|p| std::fs::metadata(p).ok())
                        .map_or(0, |m| m.len());
                    self.summary.volumes.push(VolumeResult {
                        volume: name.clone(),
                        archive,
                        bytes,
                        duration: started.elapsed(),
                        error: None,
                    });
                }
                // Interrupted: the signal is the news, not each volume.
                Err(_) if self.interrupted() => {}
                Err(e) => self.summary.failed(name, &e, started),
            }
        }
        self.interrupted();
    }

    /// Starts the stopped containers again and records the stop window.
    async fn restart(&mut self, window: stop::Window) {
        if window.is_empty() {
            return;
        }
        let names = window.names().join(", ");
        match window.restart(self.engine).await {
            Ok(down) => {
                self.summary.stop_window = Some(down);
                tracing::info!(
                    containers = %names,
                    stop_window_seconds = down.as_secs_f64(),
                    "containers were stopped for {}",
                    humantime::format_duration(Duration::from_millis(down.as_millis() as u64))
                );
            }
            Err(e) => {
                self.summary.other_failures += 1;
                crate::report_error(&e);
            }
        }
    }

    /// Post-backup hooks of every volume whose pre-backup hooks ran, also
    /// when its backup failed or the run was interrupted: they often undo
    /// what the pre-backup hook did. Bounded by their timeouts only.
    async fn post_hooks(&mut self, hooked: &[String]) {
        let never = Shutdown::never();
        for name in hooked {
            let started = std::time::Instant::now();
            if let Err(e) = run_hooks(self.engine, name, hooks::LABEL_POST, &never).await {
                // The lookup's errors name the volume already.
                let prefix = format!("volume {name}:");
                let e = if format!("{e:#}").starts_with(&prefix) {
                    e
                } else {
                    e.context(format!("volume {name}"))
                };
                self.summary.failed(name, &e, started);
            }
        }
    }
}

/// Runs the hooks under `label` of the containers that mount `volume`, in
/// turn; the first failure ends it.
async fn run_hooks(
    engine: &Engine,
    volume: &str,
    label: &'static str,
    shutdown: &Shutdown,
) -> Result<()> {
    for hook in hooks::for_volume(engine, volume, label).await? {
        hooks::run(engine, &hook, shutdown).await?;
    }
    Ok(())
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
    // Lock first, then inspect: a volume removed while we waited for the
    // lock must not be recreated empty by the helper's mount.
    let lock = lease::lock(engine, image, name, lease, plan.lock_wait, shutdown).await?;
    let result = async {
        let spec = volume::require(engine, name).await?;
        let helper = helper::create_for_backup(engine, image, name, &lease.id).await?;
        let mut attempt = 1;
        let result = loop {
            let result = tokio::select! {
                r = write_archive(engine, &helper, &spec, plan) => r,
                s = shutdown.wait() => Err(interrupted(s)),
            };
            match result {
                // What went to standard output cannot be taken back.
                Err(e) if is_cut_stream(&e) && matches!(plan.dest, Dest::Stdout) => {
                    break Err(failed(
                        format!("{e:#}; the archive on standard output is incomplete"),
                        "back up to a directory (--to DIR), where volsafe tries again, \
                         or stop what writes to the volume (--stop-containers)",
                    ));
                }
                Err(e) if attempt < ATTEMPTS && is_cut_stream(&e) => {
                    tracing::warn!(volume = name, attempt, error = %format!("{e:#}"),
                        "a file changed while it was read; backing up again");
                    attempt += 1;
                }
                Err(e) if is_cut_stream(&e) => {
                    break Err(failed(
                        format!("{e:#} ({ATTEMPTS} attempts)"),
                        "stop what writes to the volume (--stop-containers), \
                         or back up when it is quiet",
                    ));
                }
                r => break r,
            }
        };
        helper.remove(engine).await;
        result
    }
    .await;
    lock.release(engine).await;
    result
}

/// How often a backup to a directory is tried when its stream is cut short.
const ATTEMPTS: u32 = 3;

/// Whether the stream was cut short: the Engine and volsafe-tar do that
/// when a file shrinks or disappears between its header and its data, and
/// the next attempt usually reads a consistent file.
fn is_cut_stream(e: &anyhow::Error) -> bool {
    use crate::archive::tarstream::TarError;
    e.chain().any(|c| {
        let tar = c.downcast_ref::<TarError>().or_else(|| {
            c.downcast_ref::<io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<TarError>())
        });
        matches!(tar, Some(TarError::Truncated { .. }))
    })
}

async fn write_archive(
    engine: &Engine,
    helper: &Helper,
    spec: &VolumeSpec,
    plan: &Plan,
) -> Result<Option<PathBuf>> {
    let encryptor = plan.encryption.encryptor()?;
    let settings = Settings {
        level: plan.level,
        allow_empty: plan.allow_empty,
    };
    let job = NewArchive::new(engine, spec, encryptor, settings);
    let progress = Progress::start(plan.progress, &spec.name, None);
    let path = match &plan.dest {
        Dest::Stdout => {
            let out = Output::Stdout(io::stdout());
            stream_volume(engine, helper, out, job, progress.counter()).await?;
            None
        }
        Dest::Dir(root) => {
            let dir = store::volume_dir(root, &engine.name, &spec.name);
            store::make_dir(&dir)?;
            store::clean_stale(&dir, &spec.name);
            Some(write_to_dir(engine, helper, &dir, job, progress.counter()).await?)
        }
    };
    progress.finish();
    Ok(path)
}

/// Everything a new archive of one volume needs besides the bytes.
pub struct NewArchive {
    pub header: Header,
    pub created: OffsetDateTime,
    pub encryptor: Option<age::Encryptor>,
    pub settings: Settings,
}

impl NewArchive {
    /// The archive of `spec` as inspected now. An unencrypted archive
    /// carries no driver option that looks like a credential.
    pub fn new(
        engine: &Engine,
        spec: &VolumeSpec,
        encryptor: Option<age::Encryptor>,
        settings: Settings,
    ) -> Self {
        let created = OffsetDateTime::now_utc();
        let mut header = Header {
            format: FORMAT_VERSION,
            volume: spec.name.clone(),
            labels: spec.labels.clone(),
            driver: spec.driver.clone(),
            driver_options: spec.options.clone(),
            daemon: engine.name.clone(),
            created: store::rfc3339_millis(created),
            tool: tool_version(),
        };
        if encryptor.is_none() {
            let before = header.driver_options.len();
            header
                .driver_options
                .retain(|k, v| !crate::check::secrets::looks_secret(k, v));
            if header.driver_options.len() != before {
                tracing::warn!(volume = %spec.name,
                    "credentials in the volume's driver options are left out of the unencrypted archive");
            }
        }
        NewArchive {
            header,
            created,
            encryptor,
            settings,
        }
    }
}

pub fn tool_version() -> String {
    format!("volsafe {}", env!("CARGO_PKG_VERSION"))
}

/// Streams a volume into a new archive in `dir` and commits it.
pub async fn write_to_dir(
    engine: &Engine,
    helper: &Helper,
    dir: &std::path::Path,
    job: NewArchive,
    counter: Arc<AtomicU64>,
) -> Result<PathBuf> {
    let encrypted = job.encryptor.is_some();
    // File system calls off the async side: a hung destination (NFS) must
    // not hold up the other volumes, the lease's renewals or the signals.
    let mut pending = {
        let (dir, volume, created) = (dir.to_owned(), helper.volume.clone(), job.created);
        tokio::task::spawn_blocking(move || store::create(&dir, &volume, created, encrypted))
            .await??
    };
    let file = pending
        .file
        .take()
        .expect("a new pending archive has its file");
    let out = Output::File(
        BufWriter::with_capacity(1 << 20, store::WriteBehind::new(file)),
        pending.path.clone(),
    );
    let sidecar = Sidecar {
        format: FORMAT_VERSION,
        volume: job.header.volume.clone(),
        daemon: job.header.daemon.clone(),
        created: job.header.created.clone(),
        archive: pending
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        size: 0,
        sha256: String::new(),
        tool: tool_version(),
        encrypted,
        entries: 0,
    };
    // On error the pending archive is dropped, which removes the partial file.
    let written = stream_volume(engine, helper, out, job, counter).await?;
    let sidecar = Sidecar {
        size: written.file_bytes,
        sha256: written.file_sha256.clone(),
        entries: written.trailer.entries,
        ..sidecar
    };
    let (volume, entries, bytes) = (sidecar.volume.clone(), sidecar.entries, sidecar.size);
    let path = tokio::task::spawn_blocking(move || pending.commit(&sidecar)).await??;
    tracing::info!(volume = %volume, path = %path.display(), entries, bytes, "backup committed");
    Ok(path)
}

/// Knobs of the archive writer.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub level: i32,
    pub allow_empty: bool,
}

/// The bytes' destination: a file (synced at the end) or stdout.
pub enum Output {
    File(BufWriter<store::WriteBehind>, PathBuf),
    Stdout(io::Stdout),
}

/// A write to the destination failed: the destination's fault, not the
/// daemon's, whatever layer (zstd, age) it surfaced through.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
struct DestWrite {
    path: String,
    source: io::Error,
}

impl Output {
    fn dest_error(&self, e: io::Error) -> io::Error {
        let path = match self {
            Output::File(_, p) => p.display().to_string(),
            Output::Stdout(_) => "stdout".to_owned(),
        };
        io::Error::new(e.kind(), DestWrite { path, source: e })
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let r = match self {
            Output::File(f, _) => f.write(buf),
            Output::Stdout(s) => s.write(buf),
        };
        r.map_err(|e| self.dest_error(e))
    }

    fn flush(&mut self) -> io::Result<()> {
        let r = match self {
            Output::File(f, _) => f.flush(),
            Output::Stdout(s) => s.flush(),
        };
        r.map_err(|e| self.dest_error(e))
    }
}

/// Turns an error whose cause was the destination into a destination error
/// with a hint, so a full disk is not blamed on the daemon.
fn explain_dest(err: anyhow::Error) -> anyhow::Error {
    let dest = err.chain().find_map(|c| {
        c.downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<DestWrite>())
    });
    match dest {
        Some(d) if d.path == "stdout" => {
            crate::StdoutError(io::Error::new(d.source.kind(), d.source.to_string())).into()
        }
        Some(d) => store::dest_error(std::path::Path::new(&d.path), &d.source),
        None => err,
    }
}

impl Output {
    /// Flushes, and makes a file durable.
    fn finish(self) -> Result<()> {
        match self {
            Output::File(w, path) => {
                let file = w.into_inner().map_err(|e| dest_io(&path, e.error()))?;
                file.into_file().sync_all().map_err(|e| dest_io(&path, &e))
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
