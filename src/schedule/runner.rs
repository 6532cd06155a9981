//! One scheduled run of one job: wait for a free slot and for the job's
//! volumes, reach the daemon (with backoff), back up, drill what was just
//! backed up (`drill = true`), prune what succeeded, record the numbers,
//! and notify on failure.
//!
//! What must stay true: two jobs that share a volume never overlap, from
//! the first pre-backup hook to the last post-backup hook (the backup's own
//! per-volume lock is taken after the pre-backup hooks, so it is not
//! enough), and a drill never overlaps either; pruning follows a
//! successful backup of that volume only, and one whose fresh archive
//! passed its drill when the job drills after backups (older archives may
//! be the last good ones); a run that fails never ends the scheduler.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::{DateTime, Utc};
use tokio::sync::{OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};

use super::config::Job;
use super::drill::{self, Drilled};
use super::notify;
use super::status::Metrics;
use super::timing::Schedule;
use crate::engine::{self, Engine};
use crate::jobs::backup::{self, VolumeResult};
use crate::shutdown::Shutdown;

/// The first wait after a failed connection; doubles up to [`BACKOFF_MAX`].
const BACKOFF_FIRST: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// What every run shares.
pub struct Shared {
    pub locks: VolumeLocks,
    pub metrics: Metrics,
    /// The first SIGTERM/SIGINT: runs not yet started give up.
    pub stop: Shutdown,
    /// Fired when the grace period is over: running backups clean up and end.
    pub abort: Shutdown,
    pub host: String,
    /// `--helper-image`, as for one-shot commands.
    pub helper_image: Option<String>,
    /// Volumes read at once, across all jobs (`parallel`).
    pub slots: Arc<Semaphore>,
}

/// In-process exclusion per volume, held for a whole run.
#[derive(Clone, Default)]
pub struct VolumeLocks(Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>);

impl VolumeLocks {
    /// Locks every volume in `volumes`, in name order so two runs can never
    /// hold one each and wait for the other's.
    pub async fn lock_all(&self, job: &str, volumes: &[String]) -> Vec<OwnedMutexGuard<()>> {
        let mut names: Vec<&String> = volumes.iter().collect();
        names.sort();
        names.dedup();
        let mutexes: Vec<(String, Arc<tokio::sync::Mutex<()>>)> = {
            let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            // Forget volumes nobody holds or waits for: the map stays small.
            map.retain(|_, m| Arc::strong_count(m) > 1);
            names
                .iter()
                .map(|n| ((*n).clone(), map.entry((*n).clone()).or_default().clone()))
                .collect()
        };
        let mut guards = Vec::with_capacity(mutexes.len());
        for (name, m) in mutexes {
            let guard = match m.clone().try_lock_owned() {
                Ok(g) => g,
                Err(_) => {
                    tracing::info!(job = %job, volume = %name, "waiting for another job that backs up or drills this volume");
                    m.lock_owned().await
                }
            };
            guards.push(guard);
        }
        guards
    }
}

/// How one run ended, for metrics, logs and the notification.
#[derive(Default)]
struct Outcome {
    daemon: String,
    /// The volumes the run was for (resolved), or the named ones if
    /// resolution failed.
    volumes: Vec<String>,
    results: Vec<VolumeResult>,
    /// An error of the whole run: no daemon, no volume, the check.
    error: Option<String>,
    /// Errors besides the volumes' (a container not started again, a prune).
    other_errors: Vec<String>,
    stop_window: Option<Duration>,
    interrupted: bool,
    /// The drill of the volumes just backed up (`drill = true`).
    drilled: Option<Drilled>,
}

impl Outcome {
    fn failed(&self) -> bool {
        self.error.is_some()
            || !self.other_errors.is_empty()
            || self.results.iter().any(|r| r.error.is_some())
    }
}

/// Runs `job` for `slot`. Returns once the run is over or given up.
pub async fn run(shared: Arc<Shared>, permits: Arc<Semaphore>, job: Arc<Job>, slot: DateTime<Utc>) {
    let started = Instant::now();
    tracing::info!(job = %job.name, volumes = %job.describe_volumes(), "run started");
    let mut outcome = attempt(&shared, &permits, &job, slot).await;
    record(&shared.metrics, &job.name, &outcome);
    report(&shared, &job, &outcome, started.elapsed()).await;
    if let Some(drilled) = outcome.drilled.take() {
        drill::finish(&shared, &job, &drilled).await;
    }
}

/// Logs how the run ended, and notifies a failure.
async fn report(shared: &Shared, job: &Job, outcome: &Outcome, took: Duration) {
    let bytes: u64 = outcome
        .results
        .iter()
        .filter(|r| r.error.is_none())
        .map(|r| r.bytes)
        .sum();
    let ok = outcome.results.iter().filter(|r| r.error.is_none()).count();
    let volumes = outcome.volumes.join(", ");
    if outcome.interrupted {
        tracing::warn!(job = %job.name, volumes = %volumes, duration_seconds = took.as_secs_f64(), "run interrupted by shutdown");
        return;
    }
    if !outcome.failed() {
        tracing::info!(job = %job.name, volumes = %volumes, duration_seconds = took.as_secs_f64(), bytes, "run finished");
        return;
    }
    tracing::warn!(
        job = %job.name,
        volumes = %volumes,
        duration_seconds = took.as_secs_f64(),
        bytes,
        succeeded = ok,
        "run failed"
    );
    let failure = notify::Failure {
        job: job.name.clone(),
        kind: "backup",
        volumes: outcome.volumes.clone(),
        errors: errors_of(outcome),
        time: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        host: shared.host.clone(),
        daemon: outcome.daemon.clone(),
    };
    notify::deliver(job.notify_url.as_deref(), &failure).await;
}

fn errors_of(o: &Outcome) -> Vec<notify::VolumeError> {
    let mut out = Vec::new();
    if let Some(e) = &o.error {
        out.push(notify::VolumeError {
            volume: None,
            error: e.clone(),
        });
    }
    for r in &o.results {
        if let Some(e) = &r.error {
            out.push(notify::VolumeError {
                volume: Some(r.volume.clone()),
                error: e.clone(),
            });
        }
    }
    for e in &o.other_errors {
        out.push(notify::VolumeError {
            volume: None,
            error: e.clone(),
        });
    }
    out
}

/// Updates the job's numbers from one run.
fn record(metrics: &Metrics, job: &str, o: &Outcome) {
    let now = Utc::now().timestamp_millis() as f64 / 1000.0;
    metrics.update(job, |stats| {
        // Volumes a label selector no longer picks leave the metrics, so
        // they stay as large as the job is.
        if !o.volumes.is_empty() {
            stats.volumes.retain(|name, _| o.volumes.contains(name));
            stats.drills.retain(|name, _| o.volumes.contains(name));
        }
        if let Some(w) = o.stop_window {
            stats.stop_window = w.as_secs_f64();
        } else if !o.interrupted {
            stats.stop_window = 0.0;
        }
        for r in &o.results {
            let v = stats.volumes.entry(r.volume.clone()).or_default();
            v.last_duration = r.duration.as_secs_f64();
            if r.error.is_none() {
                v.last_success = Some(now);
                v.last_bytes = Some(r.bytes);
                v.consecutive_failures = 0;
            } else {
                v.consecutive_failures += 1;
            }
        }
        // A run that failed as a whole failed every volume it was for.
        if o.error.is_some() {
            for name in &o.volumes {
                stats
                    .volumes
                    .entry(name.clone())
                    .or_default()
                    .consecutive_failures += 1;
            }
        }
    });
}

async fn attempt(
    shared: &Shared,
    permits: &Arc<Semaphore>,
    job: &Job,
    slot: DateTime<Utc>,
) -> Outcome {
    let mut o = Outcome {
        volumes: job.volumes.clone(),
        ..Outcome::default()
    };
    let engine = match connect(shared, &job.name, &job.schedule, slot).await {
        Ok(Some(e)) => e,
        Ok(None) => {
            o.interrupted = true;
            return o;
        }
        Err(e) => {
            crate::report_error(&e);
            o.error = Some(format!("{e:#}"));
            return o;
        }
    };
    o.daemon = engine.name.clone();
    match resolve(&engine, job).await {
        Ok(v) => o.volumes = v,
        Err(e) => {
            crate::report_error(&e);
            o.error = Some(format!("{e:#}"));
            return o;
        }
    }
    let Some(_held) = hold(shared, permits, &job.name, &o.volumes).await else {
        o.interrupted = true;
        return o;
    };
    if let Err(e) = backup_and_prune(shared, &engine, job, &mut o).await {
        let e = e.context(format!("job {}", job.name));
        crate::report_error(&e);
        o.error = Some(format!("{e:#}"));
    }
    o
}

/// What a run holds while it works: its volumes, then a parallel slot.
pub struct Held {
    _volumes: Vec<OwnedMutexGuard<()>>,
    _permit: OwnedSemaphorePermit,
}

/// Takes `volumes` for `job`, then a parallel slot. `None`: stopped while
/// waiting.
pub async fn hold(
    shared: &Shared,
    permits: &Arc<Semaphore>,
    job: &str,
    volumes: &[String],
) -> Option<Held> {
    let volumes = tokio::select! {
        g = shared.locks.lock_all(job, volumes) => g,
        _ = shared.stop.wait() => return None,
    };
    // A parallel slot only once the volumes are this run's: a run waiting
    // for another's volume does not hold up unrelated jobs.
    let permit = tokio::select! {
        p = Arc::clone(permits).acquire_owned() => p.ok()?,
        _ = shared.stop.wait() => return None,
    };
    Some(Held {
        _volumes: volumes,
        _permit: permit,
    })
}

async fn backup_and_prune(
    shared: &Shared,
    engine: &Engine,
    job: &Job,
    o: &mut Outcome,
) -> Result<()> {
    let plan = backup::Plan {
        volumes: o.volumes.clone(),
        dest: backup::Dest::Dir(job.to.clone()),
        encryption: job.encryption.build()?,
        level: job.level,
        allow_empty: job.allow_empty,
        lock_wait: job.lock_wait,
        helper_image: shared.helper_image.clone(),
        print_paths: false,
        slots: Arc::clone(&shared.slots),
        progress: crate::progress::Mode::Off,
        stop_containers: job.stop_containers,
        check: job.check.as_ref().map(|c| backup::PreCheck {
            ignores: c.ignores.clone(),
            fail_on: c.fail_on,
        }),
    };
    let summary = backup::run_job(engine, &plan, &shared.abort).await?;
    o.stop_window = summary.stop_window;
    o.interrupted = summary.interrupted.is_some();
    if summary.other_failures > 0 {
        o.other_errors.push(format!(
            "{} error(s) besides the volumes' (see the log: a container not started again, a post-backup hook)",
            summary.other_failures
        ));
    }
    for r in &summary.volumes {
        if let Some(path) = &r.archive {
            tracing::info!(job = %job.name, volume = %r.volume, bytes = r.bytes, archive = %path.display(), "archive committed");
        }
    }
    o.results = summary.volumes;
    if o.interrupted {
        return Ok(());
    }
    let backed_up: Vec<String> = o
        .results
        .iter()
        .filter(|r| r.error.is_none() && r.archive.is_some())
        .map(|r| r.volume.clone())
        .collect();
    if let Some(spec) = job.drill.as_ref().filter(|d| d.after_backup) {
        if backed_up.is_empty() {
            tracing::debug!(job = %job.name, "no drill: no volume was backed up");
        } else if shared.stop.signal().is_some() {
            tracing::info!(job = %job.name, "no drill after this run: the scheduler is stopping");
        } else {
            let drilled = drill::volumes(shared, engine, job, spec, backed_up.clone()).await;
            o.interrupted = drilled.interrupted;
            o.drilled = Some(drilled);
        }
    }
    if job.policy.is_empty() || o.interrupted {
        return Ok(());
    }
    // Prune a volume only after its own backup succeeded, and its drill.
    for volume in &backed_up {
        if o.drilled.as_ref().is_some_and(|d| !d.passed(volume)) {
            tracing::warn!(job = %job.name, volume = %volume, "not pruned: the drill of the new archive did not pass; the older archives are kept");
            continue;
        }
        // File system work (directory reads, fsync): off the async threads.
        let (to, daemon, name, policy, tz) = (
            job.to.clone(),
            engine.name.clone(),
            volume.clone(),
            job.policy,
            job.schedule.tz,
        );
        let pruned = tokio::task::spawn_blocking(move || {
            crate::jobs::prune::prune_volume(&to, &daemon, &name, &policy, tz, false, false)
        })
        .await
        .unwrap_or_else(|e| Err(anyhow::anyhow!("the prune task failed: {e}")));
        match pruned {
            Ok(p) => {
                tracing::info!(job = %job.name, volume = %volume, kept = p.kept, deleted = p.deleted, freed_bytes = p.freed_bytes, "pruned");
                for f in p.failures() {
                    let msg = format!(
                        "volume {volume}: archive {}: {}",
                        f.path.display(),
                        f.error.as_deref().unwrap_or("not deleted")
                    );
                    tracing::warn!(job = %job.name, "{msg}");
                    o.other_errors.push(msg);
                }
            }
            Err(e) => {
                let e = e.context(format!("volume {volume}: prune"));
                crate::report_error(&e);
                o.other_errors.push(format!("{e:#}"));
            }
        }
    }
    Ok(())
}

/// Connects to the daemon, retrying with backoff until the next slot of
/// `schedule` (a daemon that is down is not fatal). `Ok(None)`: stopped
/// while waiting.
pub async fn connect(
    shared: &Shared,
    job: &str,
    schedule: &Schedule,
    slot: DateTime<Utc>,
) -> Result<Option<Engine>> {
    let until = schedule.next_after(slot);
    let mut wait = BACKOFF_FIRST;
    loop {
        let err = match engine::connect().await {
            Ok(e) => return Ok(Some(e)),
            Err(e) => e,
        };
        let retry_at = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
        if until.is_none_or(|u| retry_at >= u) {
            return Err(err.context("giving up until the next scheduled run"));
        }
        tracing::warn!(job = %job, retry_in_seconds = wait.as_secs(), error = %format!("{err:#}"), "docker daemon unreachable; retrying");
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.stop.wait() => return Ok(None),
        }
        wait = (wait * 2).min(BACKOFF_MAX);
    }
}

/// The job's volumes now: those named, then those the selector matches
/// (by name), each once.
pub async fn resolve(engine: &Engine, job: &Job) -> Result<Vec<String>> {
    let mut out = job.volumes.clone();
    if let Some(selector) = &job.selector {
        let filters = HashMap::from([("label".to_owned(), vec![selector.clone()])]);
        let options = bollard::query_parameters::ListVolumesOptions {
            filters: Some(filters),
        };
        let list = engine
            .docker
            .list_volumes(Some(options))
            .await
            .map_err(|e| {
                crate::error::failed(
                    format!(
                        "job {}: cannot list volumes with label {selector} ({})",
                        job.name,
                        engine::message_of(&e)
                    ),
                    format!("check that the daemon at {} is healthy", engine.host),
                )
            })?;
        let mut found: Vec<String> = list
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect();
        found.sort();
        for v in found {
            if !out.contains(&v) {
                out.push(v);
            }
        }
    }
    if out.is_empty() {
        return Err(crate::error::failed(
            format!("job {}: no volume has the label {}", job.name, job.selector.as_deref().unwrap_or("")),
            "label the volumes to back up (docker volume create --label …), or name them in volumes = [...]",
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(volumes: &[&str]) -> Outcome {
        Outcome {
            volumes: volumes.iter().map(|v| v.to_string()).collect(),
            results: volumes
                .iter()
                .map(|v| VolumeResult {
                    volume: v.to_string(),
                    archive: None,
                    bytes: 1,
                    duration: Duration::from_secs(1),
                    error: None,
                })
                .collect(),
            ..Outcome::default()
        }
    }

    /// A volume a selector no longer picks leaves the metrics.
    #[test]
    fn metrics_follow_the_selected_volumes() {
        let metrics = Metrics::default();
        record(&metrics, "j", &done(&["old", "kept"]));
        assert!(metrics.render().contains("volume=\"old\""));
        record(&metrics, "j", &done(&["kept", "new"]));
        let text = metrics.render();
        assert!(!text.contains("volume=\"old\""), "{text}");
        assert!(
            text.contains("volume=\"kept\"") && text.contains("volume=\"new\""),
            "{text}"
        );
    }

    #[tokio::test]
    async fn jobs_sharing_a_volume_wait_for_each_other() {
        let locks = VolumeLocks::default();
        let first = locks.lock_all("a", &["v".into(), "w".into()]).await;
        let l2 = locks.clone();
        let second =
            tokio::spawn(async move { l2.lock_all("b", &["w".into(), "v".into()]).await.len() });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!second.is_finished(), "the second job did not wait");
        // Another volume is free meanwhile.
        assert_eq!(locks.lock_all("c", &["x".into()]).await.len(), 1);
        drop(first);
        assert_eq!(second.await.unwrap(), 2);
    }
}
