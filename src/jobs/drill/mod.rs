//! `volsafe drill`: proves that the newest backup of each volume restores
//! to exactly what it recorded, and says how long that took.
//!
//! Per volume: the newest committed archive is checked against its sidecar,
//! restored into a fresh scratch volume (plain `local`, labelled as
//! volsafe's, never created from the saved driver options), and the scratch
//! volume is read back through the Engine and compared entry by entry with
//! the manifest the archive carries. The live volume is never written,
//! stopped or mounted read-write; `--compare-live` only reads it. The
//! scratch volume goes on every path, Ctrl-C included, unless asked to stay.

mod compare;
mod report;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use time::OffsetDateTime;

use super::bridge;
use super::restore::{self, stream, Ctx, Keys};
use crate::archive::meta::Header;
use crate::archive::names::MOUNT_DIR;
use crate::check::secrets;
use crate::cli::OutputFormat;
use crate::engine::helper::{self, Access, LABEL_OWNER, LABEL_ROLE, LABEL_VOLUME};
use crate::engine::lease::{self, Lease};
use crate::engine::volume::{self, VolumeSpec};
use crate::engine::Engine;
use crate::error::{exit_for, failed, find_user_error, interrupted, Exit};
use crate::progress;
use crate::shutdown::Shutdown;
use crate::store::{self, Listed};

pub use compare::Difference;
use compare::{Manifest, Outcome, Records, Wording};
pub use report::{LiveChanges, Report, Verdict, VolumeReport};

/// The role label of scratch volumes.
pub const ROLE_DRILL: &str = "drill";
/// Marks a scratch volume kept with `--keep-scratch`: never swept.
pub const LABEL_KEEP: &str = "io.volsafe.keep";

/// A checked drill request.
#[derive(Clone)]
pub struct Plan {
    pub dir: PathBuf,
    pub volumes: Vec<String>,
    pub daemon: Option<String>,
    pub keys: Keys,
    pub compare_live: bool,
    pub keep_scratch: bool,
    pub max_age: Option<Duration>,
    pub helper_image: Option<String>,
    pub progress: progress::Mode,
}

pub async fn run(plan: Plan, format: OutputFormat, shutdown: Shutdown) -> Result<Exit> {
    plan.keys.load()?; // usage errors in key files come first
    let engine = crate::engine::connect().await?;
    let report = drill(&engine, &plan, &shutdown).await?;
    match format {
        OutputFormat::Json => crate::out_line(serde_json::to_string_pretty(&report)?)?,
        OutputFormat::Text => report::print_text(&report)?,
    }
    Ok(report.exit())
}

/// A volume to drill: its newest committed archive, if any, and the files
/// beside it that look newer but have no valid sidecar.
struct Target {
    volume: String,
    newest: Option<Listed>,
    uncommitted: Vec<PathBuf>,
}

/// Which volumes to drill, each with its newest archive (if any).
fn select(plan: &Plan, daemon: &str) -> Result<Vec<Target>> {
    let (listed, incomplete) = store::scan(&plan.dir, Some(daemon), None)?;
    let mut volumes: Vec<String> = if plan.volumes.is_empty() {
        let mut all: Vec<String> = listed.iter().map(|l| l.volume.clone()).collect();
        all.sort();
        all.dedup();
        if all.is_empty() {
            return Err(failed(
                format!(
                    "{}: no committed archive from daemon {daemon}",
                    plan.dir.display()
                ),
                "see `volsafe list DIR`; pass --daemon NAME for another host's archives",
            ));
        }
        all
    } else {
        plan.volumes.clone()
    };
    let mut seen = std::collections::HashSet::new();
    volumes.retain(|v| seen.insert(v.clone()));
    for i in incomplete.iter().filter(|i| volumes.contains(&i.volume)) {
        tracing::warn!(path = %i.path.display(), volume = %i.volume,
            "incomplete backup (no valid sidecar); not drilled");
    }
    Ok(volumes
        .into_iter()
        .map(|volume| {
            // Listed newest first: the first one seen is the newest.
            let newest = listed.iter().find(|l| l.volume == volume).cloned();
            let since = newest.as_ref().and_then(|l| modified(&l.path));
            let sidecar_partial = format!("{}{}", store::EXT_SIDECAR, store::EXT_PARTIAL);
            let uncommitted = incomplete
                .iter()
                .filter(|i| i.volume == volume)
                // A sidecar being written goes with an archive noted on its own.
                .filter(|i| !i.path.to_string_lossy().ends_with(&sidecar_partial))
                .filter(|i| match (since, modified(&i.path)) {
                    (Some(since), Some(m)) => m > since,
                    (None, _) | (_, None) => true,
                })
                .map(|i| i.path.clone())
                .collect();
            Target {
                volume,
                newest,
                uncommitted,
            }
        })
        .collect())
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Drills every selected volume, one after the other.
pub async fn drill(engine: &Engine, plan: &Plan, shutdown: &Shutdown) -> Result<Report> {
    for v in &plan.volumes {
        volume::check_name(v)?;
    }
    let daemon = plan.daemon.clone().unwrap_or_else(|| engine.name.clone());
    let targets = select(plan, &daemon)?;
    let image = helper::ensure_image(engine, plan.helper_image.as_deref()).await?;
    let lease = Lease::start(engine, &image, "drill").await?;
    if let Err(e) = lease::sweep(engine, &lease.id).await {
        tracing::warn!(error = %format!("{e:#}"), "cannot look for leftovers of earlier runs");
    }
    let mut volumes = Vec::new();
    let mut stopped = None;
    for target in targets {
        if let Some(s) = shutdown.signal() {
            stopped = Some(s);
            break;
        }
        let drill = Drill {
            engine,
            image: &image,
            lease: &lease,
            plan,
            shutdown,
        };
        match drill.one(target).await {
            Ok(report) => {
                log_result(&report);
                volumes.push(report);
            }
            Err(e) => {
                lease.end(engine).await;
                return Err(e);
            }
        }
    }
    lease.end(engine).await;
    if let Some(s) = stopped {
        return Err(interrupted(s));
    }
    let count = |v: Verdict| volumes.iter().filter(|r| r.result == v).count();
    Ok(Report {
        daemon,
        dir: plan.dir.clone(),
        passed: count(Verdict::Pass),
        failed: count(Verdict::Fail),
        errors: count(Verdict::Error),
        volumes,
    })
}

fn log_result(r: &VolumeReport) {
    match r.result {
        Verdict::Pass => tracing::info!(volume = %r.volume, entries = r.entries_checked,
            rto_s = r.rto_seconds.unwrap_or_default(), "drill passed"),
        _ => tracing::warn!(volume = %r.volume, result = ?r.result,
            problem = %r.problems.first().map(String::as_str).unwrap_or(""), "drill did not pass"),
    }
}

struct Drill<'a> {
    engine: &'a Engine,
    image: &'a str,
    lease: &'a Lease,
    plan: &'a Plan,
    shutdown: &'a Shutdown,
}

impl Drill<'_> {
    /// One volume. `Err` only for an interruption, after cleaning up.
    async fn one(&self, target: Target) -> Result<VolumeReport> {
        let name = target.volume.as_str();
        let mut report = VolumeReport::new(name);
        for path in &target.uncommitted {
            report.notes.push(format!(
                "{} has no valid sidecar (a backup that did not finish, or one still running); it was not drilled",
                path.display()
            ));
        }
        let Some(archive) = target.newest else {
            report.fail(format!(
                "no committed archive of volume {name} in {} (archives of other daemons are left out; see `volsafe list DIR`, or pass --daemon NAME)",
                self.plan.dir.display()
            ));
            return Ok(report);
        };
        report.archive = Some(archive.path.clone());
        report.created = Some(archive.created.clone());
        let header = match self.open(&archive.path).await {
            Ok(header) => header,
            Err(e) => return stop_or_record(report, e),
        };
        // The header travels inside the archive (encrypted, when it is);
        // the sidecar beside it could have been edited.
        let created = match &header {
            Some(h) if h.created != archive.created => {
                report.fail(format!(
                    "the sidecar says the archive was made at {}, its header says {}: the sidecar was changed",
                    archive.created, h.created
                ));
                h.created.clone()
            }
            Some(h) => h.created.clone(),
            None => archive.created.clone(),
        };
        report.created = Some(created.clone());
        self.judge_age(&mut report, &created);
        let scratch = scratch_name(name);
        let mut labels: std::collections::BTreeMap<String, String> = [
            (LABEL_ROLE.to_owned(), ROLE_DRILL.to_owned()),
            (LABEL_OWNER.to_owned(), self.lease.id.clone()),
            (LABEL_VOLUME.to_owned(), name.to_owned()),
        ]
        .into();
        if self.plan.keep_scratch {
            // Kept on purpose: the sweep of leftovers leaves it alone.
            labels.insert(LABEL_KEEP.to_owned(), "true".to_owned());
        }
        let spec = VolumeSpec {
            name: scratch.clone(),
            driver: "local".to_owned(),
            labels,
            options: Default::default(),
        };
        if let Err(e) = volume::create(self.engine, &spec).await {
            return stop_or_record(report, e);
        }
        let result = self.prove(&mut report, &archive.path, &scratch).await;
        if self.plan.keep_scratch {
            tracing::info!(volume = %scratch, "scratch volume kept (--keep-scratch)");
            report.scratch = Some(scratch);
        } else if let Err(e) = volume::remove(self.engine, &scratch).await {
            tracing::warn!(volume = %scratch, error = %format!("{e:#}"),
                "cannot remove the scratch volume; the next volsafe run removes it");
        }
        if let Err(e) = result {
            return stop_or_record(report, e);
        }
        match self.shutdown.signal() {
            Some(s) => Err(interrupted(s)),
            None => Ok(report),
        }
    }

    /// RPO from `created`, and the `--max-age` verdict.
    fn judge_age(&self, report: &mut VolumeReport, created: &str) {
        let Some(age) = age_of(created) else {
            report.fail(format!(
                "cannot tell the archive's age: {created:?} is not a time"
            ));
            return;
        };
        report.rpo_seconds = Some(age.as_secs_f64());
        if let Some(max) = self.plan.max_age {
            if age > max {
                report.fail(format!(
                    "the newest archive is {} old, more than --max-age {}",
                    humantime::format_duration(Duration::from_secs(age.as_secs())),
                    humantime::format_duration(max)
                ));
            }
        }
    }

    /// Checks the file against its sidecar, then opens it: a wrong key or
    /// a damaged start fails here, before a scratch volume exists. Returns
    /// the archive's header.
    async fn open(&self, archive: &Path) -> Result<Option<Header>> {
        self.check_file(archive).await?;
        let (path, keys) = (archive.to_path_buf(), self.plan.keys.clone());
        let work = tokio::task::spawn_blocking(move || -> Result<Option<Header>> {
            let label = format!("archive {}", path.display());
            let reader = stream::open_archive(&path, &keys, &label, None)?;
            Ok(reader.header().cloned())
        });
        work.await
            .context("the archive reader stopped unexpectedly")?
    }

    /// Restore, compare, and compare with the live volume when asked.
    async fn prove(&self, report: &mut VolumeReport, archive: &Path, scratch: &str) -> Result<()> {
        let label = format!("archive {}", archive.display());
        let restore_plan = restore::Plan {
            source: restore::Source::File(archive.to_path_buf()),
            volume: Some(scratch.to_owned()),
            keys: self.plan.keys.clone(),
            replace: false,
            rollback_to: None,
            rollback_recipients: Vec::new(),
            rollback_recipient_files: Vec::new(),
            no_encryption: false,
            driver_options: false,
            daemon: None,
            helper_image: None,
            progress: self.plan.progress,
        };
        let ctx = Ctx {
            engine: self.engine,
            image: self.image,
            lease: self.lease,
            plan: &restore_plan,
            archive,
            label: &label,
        };
        let started = Instant::now();
        let summary = stream::extract_whole(
            &ctx,
            archive,
            &label,
            self.plan.keys.clone(),
            scratch,
            Some(self.shutdown),
        )
        .await
        .map_err(|e| match find_user_error(&e) {
            Some(_) => e,
            // The reader's own errors (zstd, tar, age chunks): the archive
            // does not restore, which is what a drill is there to find.
            None => crate::error::integrity(
                format!("{e:#}"),
                "the archive is damaged; use another backup, and back up again",
            ),
        })?;
        report.rto_seconds = Some(started.elapsed().as_secs_f64());

        // The restore read the archive whole and checked it against its
        // trailer, which records the manifest frames when there are any.
        let has_manifest = summary
            .trailer
            .as_ref()
            .and_then(|t| t.manifest.as_ref())
            .is_some_and(|m| m.frames > 0);
        report.manifest = Some(has_manifest);
        if let Some(h) = &summary.header {
            self.compare_settings(report, h).await;
        }
        if !has_manifest {
            report.notes.push(
                "the archive carries no per-entry manifest (made by an older volsafe): it restored whole and intact, but its entries could not be compared one by one".to_owned(),
            );
        } else {
            let words = Wording {
                missing: "in the backup, missing from the restored volume",
                added: "in the restored volume, not in the backup",
            };
            let (outcome, bytes) = self.compare_volume(archive, scratch, words).await?;
            report.entries_checked = outcome.entries;
            report.bytes_checked = bytes;
            report.mismatches = outcome.differences();
            if outcome.clamped_mtimes > 0 {
                report.notes.push(format!(
                    "{} entries have an mtime before 1970 or after 2262, which the Docker Engine restores as 1970-01-01; their mtimes were not compared",
                    outcome.clamped_mtimes
                ));
            }
            report.first_mismatches = outcome.first.clone();
            if outcome.differences() > 0 {
                report.fail(format!(
                    "{} entries of the restored volume differ from the backup's manifest",
                    outcome.differences()
                ));
            }
        }
        if self.plan.compare_live {
            self.compare_live(report, archive, has_manifest).await?;
        }
        Ok(())
    }

    /// The archive file against its sidecar (size and SHA-256), as
    /// `volsafe verify` checks it; reading stops at a signal.
    async fn check_file(&self, archive: &Path) -> Result<()> {
        let (path, shutdown) = (archive.to_path_buf(), self.shutdown.clone());
        let work = tokio::task::spawn_blocking(move || {
            super::verify::check_sidecar(&path, true, &shutdown).map(|_| ())
        });
        tokio::select! {
            r = work => r.context("the archive check stopped unexpectedly")?,
            s = self.shutdown.wait() => Err(interrupted(s)),
        }
    }

    /// Reads `volume` through a read-only helper and compares it with the
    /// archive's manifest. Returns the outcome and the content bytes hashed.
    async fn compare_volume(
        &self,
        archive: &Path,
        volume: &str,
        words: Wording,
    ) -> Result<(Outcome, u64)> {
        let helper = helper::create(
            self.engine,
            self.image,
            volume,
            Access::ReadOnly,
            &self.lease.id,
        )
        .await?;
        let (pump, input) =
            bridge::download(self.engine, &helper.id, &format!("/{MOUNT_DIR}"), None);
        let (path, keys) = (archive.to_path_buf(), self.plan.keys.clone());
        let volume_name = volume.to_owned();
        let work = tokio::task::spawn_blocking(move || -> Result<(Outcome, u64)> {
            let label = format!("archive {}", path.display());
            let reader = stream::open_archive(&path, &keys, &label, None)?;
            let mut expected = Manifest::new(reader, &label);
            let mut found = compare::Volume::new(input);
            let outcome = compare::compare(&mut expected, &mut found as &mut dyn Records, &words)
                .with_context(|| format!("volume {volume_name}"))?;
            Ok((outcome, found.bytes))
        });
        let both = async { tokio::join!(pump, work) };
        let joined = tokio::select! {
            j = both => Ok(j),
            s = self.shutdown.wait() => Err(interrupted(s)),
        };
        helper.remove(self.engine).await;
        let ((), worked) = joined?;
        // The restore already proved the archive whole, manifest included:
        // what fails here is reading the volume back, an error of the drill.
        worked
            .context("the comparison stopped unexpectedly")?
            .map_err(|e| match find_user_error(&e) {
                Some(_) => e,
                None => failed(
                    format!("volume {volume}: cannot compare it ({e:#})"),
                    "see the daemon's log, and run the drill again",
                ),
            })
    }

    /// Lists what changed in the live volume since the backup.
    async fn compare_live(
        &self,
        report: &mut VolumeReport,
        archive: &Path,
        has_manifest: bool,
    ) -> Result<()> {
        let live = &report.volume;
        if volume::inspect(self.engine, live).await?.is_none() {
            report.notes.push(format!(
                "--compare-live: volume {live} does not exist on this daemon"
            ));
            return Ok(());
        }
        if !has_manifest {
            report
                .notes
                .push("--compare-live needs a manifest; this archive has none".to_owned());
            return Ok(());
        }
        let words = Wording {
            missing: "removed since the backup",
            added: "added since the backup",
        };
        let (outcome, _) = self.compare_volume(archive, live, words).await?;
        report.live = Some(LiveChanges {
            added: outcome.added,
            removed: outcome.missing,
            changed: outcome.changed,
            first: outcome.first,
        });
        Ok(())
    }

    /// Notes where the recorded driver, labels and options differ from the
    /// live volume's (the scratch volume never uses them).
    async fn compare_settings(&self, report: &mut VolumeReport, header: &Header) {
        if header.daemon != self.engine.name {
            report.notes.push(format!(
                "the archive comes from daemon {}; the live volume compared with it is this daemon's ({}) volume of the same name",
                header.daemon, self.engine.name
            ));
        }
        let live = match volume::inspect(self.engine, &header.volume).await {
            Ok(Some(live)) => live,
            Err(e) => {
                report.notes.push(format!(
                    "cannot compare the archive's settings with volume {}: {e:#}",
                    header.volume
                ));
                return;
            }
            Ok(None) => {
                report.notes.push(format!(
                "volume {} does not exist on this daemon: a restore would create it from the archive's records (driver {}, {} labels, {} driver options)",
                header.volume,
                if header.driver.is_empty() { "local" } else { &header.driver },
                header.labels.len(),
                header.driver_options.len()
            ));
                return;
            }
        };
        if !header.driver.is_empty() && header.driver != live.driver {
            report.notes.push(format!(
                "driver: the archive records {}, the live volume uses {}",
                header.driver, live.driver
            ));
        }
        for (what, saved, now) in [
            ("label", &header.labels, &live.labels),
            ("driver option", &header.driver_options, &live.options),
        ] {
            let keys: std::collections::BTreeSet<&String> =
                saved.keys().chain(now.keys()).collect();
            for k in keys {
                let show = |v: Option<&String>| match v {
                    Some(v) => secrets::redact(k, v),
                    None => "(none)".to_owned(),
                };
                let (a, b) = (saved.get(k), now.get(k));
                if a != b {
                    report.notes.push(format!(
                        "{what} {k}: the archive records {}, the live volume has {}",
                        show(a),
                        show(b)
                    ));
                }
            }
        }
    }
}

/// Hands an interruption on (the caller stops); records anything else in
/// the report.
fn stop_or_record(mut report: VolumeReport, e: anyhow::Error) -> Result<VolumeReport> {
    if matches!(exit_for(&e), Exit::Interrupted(_)) {
        return Err(e);
    }
    report.step_failed(&e);
    Ok(report)
}

/// How old an archive made at `created` (RFC 3339) is now.
fn age_of(created: &str) -> Option<Duration> {
    let t = OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339).ok()?;
    let age = OffsetDateTime::now_utc() - t;
    Some(age.try_into().unwrap_or(Duration::ZERO))
}

/// A fresh, unique name for the scratch volume of `volume`'s drill.
fn scratch_name(volume: &str) -> String {
    let short: String = volume.chars().take(64).collect();
    format!("volsafe-drill-{short}-{}", lease::random_id())
}
