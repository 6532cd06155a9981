//! Drills in the scheduler: the newest archive of each of a job's volumes
//! in its `to` is restored into a scratch volume and compared with what it
//! recorded, as `volsafe drill` does, after each backup (`drill = true`)
//! or on the job's own `drill_cron`.
//!
//! What must stay true: a drill holds the job's volumes and a parallel
//! slot as a backup run does ([`runner::hold`]), so a drill and a backup
//! of one volume never overlap in this scheduler; a drill that does not
//! pass is logged, recorded and notified like a failed backup, and never
//! ends the scheduler; after SIGTERM a drill gets the grace period, then
//! removes its scratch volume and helpers and ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;

use super::config::{DrillSpec, Job};
use super::notify;
use super::runner::{self, Shared};
use super::status::Metrics;
use super::timing::Schedule;
use crate::engine::Engine;
use crate::error::{exit_for, Exit};
use crate::jobs::drill::{self, Verdict, VolumeReport};

/// How one drill of a job's volumes ended.
#[derive(Default)]
pub struct Drilled {
    pub daemon: String,
    /// The volumes drilled, or meant to be.
    pub volumes: Vec<String>,
    pub reports: Vec<VolumeReport>,
    /// The drill as a whole could not be carried out (no daemon, no
    /// helper image, no backup directory).
    pub error: Option<String>,
    pub interrupted: bool,
    pub duration: Duration,
}

impl Drilled {
    /// Whether the drill of `volume` passed.
    pub fn passed(&self, volume: &str) -> bool {
        self.error.is_none()
            && self
                .reports
                .iter()
                .any(|r| r.volume == volume && r.result == Verdict::Pass)
    }

    fn failed(&self) -> bool {
        self.error.is_some() || self.reports.iter().any(|r| r.result != Verdict::Pass)
    }
}

/// Drills `volumes` of `job` through `engine`; the caller holds them.
pub async fn volumes(
    shared: &Shared,
    engine: &Engine,
    job: &Job,
    spec: &DrillSpec,
    volumes: Vec<String>,
) -> Drilled {
    let plan = drill::Plan {
        dir: job.to.clone(),
        volumes: volumes.clone(),
        daemon: None,
        keys: spec.keys(),
        compare_live: false,
        keep_scratch: false,
        max_age: spec.max_age,
        helper_image: shared.helper_image.clone(),
        progress: crate::progress::Mode::Off,
    };
    let mut d = Drilled {
        daemon: engine.name.clone(),
        volumes,
        ..Drilled::default()
    };
    tracing::info!(job = %job.name, volumes = %d.volumes.join(", "), "drill started");
    let started = Instant::now();
    match drill::drill(engine, &plan, &shared.abort).await {
        Ok(report) => d.reports = report.volumes,
        Err(e) if matches!(exit_for(&e), Exit::Interrupted(_)) => d.interrupted = true,
        Err(e) => {
            let e = e.context(format!("job {}: drill", job.name));
            crate::report_error(&e);
            d.error = Some(format!("{e:#}"));
        }
    }
    d.duration = started.elapsed();
    d
}

/// A drill on the job's `drill_cron`, for `slot`. Returns once it is over
/// or given up.
pub async fn run(shared: Arc<Shared>, permits: Arc<Semaphore>, job: Arc<Job>, slot: DateTime<Utc>) {
    let Some(spec) = &job.drill else {
        return;
    };
    let Some(schedule) = &spec.schedule else {
        return;
    };
    let d = attempt(&shared, &permits, &job, spec, schedule, slot).await;
    finish(&shared, &job, &d).await;
}

async fn attempt(
    shared: &Shared,
    permits: &Arc<Semaphore>,
    job: &Job,
    spec: &DrillSpec,
    schedule: &Schedule,
    slot: DateTime<Utc>,
) -> Drilled {
    let mut d = Drilled {
        volumes: job.volumes.clone(),
        ..Drilled::default()
    };
    let engine = match runner::connect(shared, &job.name, schedule, slot).await {
        Ok(Some(e)) => e,
        Ok(None) => {
            d.interrupted = true;
            return d;
        }
        Err(e) => {
            let e = e.context(format!("job {}: drill", job.name));
            crate::report_error(&e);
            d.error = Some(format!("{e:#}"));
            return d;
        }
    };
    d.daemon = engine.name.clone();
    match runner::resolve(&engine, job).await {
        Ok(v) => d.volumes = v,
        Err(e) => {
            let e = e.context(format!("job {}: drill", job.name));
            crate::report_error(&e);
            d.error = Some(format!("{e:#}"));
            return d;
        }
    }
    let Some(_held) = runner::hold(shared, permits, &job.name, &d.volumes).await else {
        d.interrupted = true;
        return d;
    };
    volumes(shared, &engine, job, spec, d.volumes).await
}

/// Records, logs and notifies how a drill ended.
pub async fn finish(shared: &Shared, job: &Job, d: &Drilled) {
    record(&shared.metrics, &job.name, d);
    let volumes = d.volumes.join(", ");
    let seconds = d.duration.as_secs_f64();
    if d.interrupted {
        tracing::warn!(job = %job.name, volumes = %volumes, "drill interrupted by shutdown");
        return;
    }
    if !d.failed() {
        tracing::info!(job = %job.name, volumes = %volumes, duration_seconds = seconds, "drill finished");
        return;
    }
    let passed = d
        .reports
        .iter()
        .filter(|r| r.result == Verdict::Pass)
        .count();
    tracing::warn!(job = %job.name, volumes = %volumes, duration_seconds = seconds, passed, "drill failed");
    let failure = notify::Failure {
        job: job.name.clone(),
        kind: "drill",
        volumes: d.volumes.clone(),
        errors: errors_of(d),
        time: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        host: shared.host.clone(),
        daemon: d.daemon.clone(),
    };
    notify::deliver(job.notify_url.as_deref(), &failure).await;
}

fn errors_of(d: &Drilled) -> Vec<notify::VolumeError> {
    let mut out = Vec::new();
    if let Some(e) = &d.error {
        out.push(notify::VolumeError {
            volume: None,
            error: e.clone(),
        });
    }
    for r in d.reports.iter().filter(|r| r.result != Verdict::Pass) {
        let error = if r.problems.is_empty() {
            "the drill did not pass".to_owned()
        } else {
            r.problems.join("; ")
        };
        out.push(notify::VolumeError {
            volume: Some(r.volume.clone()),
            error,
        });
    }
    out
}

/// Updates the drill numbers of the job's volumes. A drill that never got
/// to the restore leaves the last RTO as it was.
fn record(metrics: &Metrics, job: &str, d: &Drilled) {
    if d.interrupted {
        return;
    }
    let now = Utc::now().timestamp_millis() as f64 / 1000.0;
    metrics.update(job, |stats| {
        for r in &d.reports {
            let s = stats.drills.entry(r.volume.clone()).or_default();
            s.finished = now;
            s.passed = r.result == Verdict::Pass;
            if r.rto_seconds.is_some() {
                s.rto = r.rto_seconds;
            }
        }
        // A drill that failed as a whole failed every volume it was for.
        if d.error.is_some() {
            for name in &d.volumes {
                let s = stats.drills.entry(name.clone()).or_default();
                s.finished = now;
                s.passed = false;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(volume: &str, result: Verdict, rto: Option<f64>) -> VolumeReport {
        VolumeReport {
            volume: volume.to_owned(),
            result,
            archive: None,
            created: None,
            rpo_seconds: None,
            rto_seconds: rto,
            manifest: None,
            entries_checked: 0,
            bytes_checked: 0,
            mismatches: 0,
            first_mismatches: Vec::new(),
            problems: match result {
                Verdict::Pass => Vec::new(),
                _ => vec!["no committed archive".to_owned()],
            },
            notes: Vec::new(),
            live: None,
            scratch: None,
        }
    }

    fn drilled(reports: Vec<VolumeReport>) -> Drilled {
        Drilled {
            volumes: reports.iter().map(|r| r.volume.clone()).collect(),
            reports,
            ..Drilled::default()
        }
    }

    /// A pass, then a failure before the restore: success goes to 0 and
    /// the RTO of the last restore stays.
    #[test]
    fn metrics_keep_the_last_rto() {
        let metrics = Metrics::default();
        record(
            &metrics,
            "j",
            &drilled(vec![report("v", Verdict::Pass, Some(2.5))]),
        );
        let text = metrics.render();
        assert!(
            text.contains(r#"volsafe_drill_success{job="j",volume="v"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"volsafe_drill_rto_seconds{job="j",volume="v"} 2.5"#),
            "{text}"
        );
        assert!(text.contains(r#"volsafe_drill_last_timestamp_seconds{job="j",volume="v"} "#));

        record(
            &metrics,
            "j",
            &drilled(vec![report("v", Verdict::Fail, None)]),
        );
        let text = metrics.render();
        assert!(
            text.contains(r#"volsafe_drill_success{job="j",volume="v"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"volsafe_drill_rto_seconds{job="j",volume="v"} 2.5"#),
            "{text}"
        );
        // Drills give a volume no backup numbers.
        assert!(!text.contains("volsafe_consecutive_failures{"), "{text}");
    }

    #[test]
    fn a_drill_that_failed_as_a_whole_fails_every_volume() {
        let metrics = Metrics::default();
        let d = Drilled {
            volumes: vec!["a".into(), "b".into()],
            error: Some("no helper image".into()),
            ..Drilled::default()
        };
        record(&metrics, "j", &d);
        let text = metrics.render();
        for v in ["a", "b"] {
            let line = format!(r#"volsafe_drill_success{{job="j",volume="{v}"}} 0"#);
            assert!(text.contains(&line), "{text}");
        }
        assert!(!text.contains("volsafe_drill_rto_seconds{"), "{text}");
        assert!(d.failed() && !d.passed("a"));
        let errors = errors_of(&d);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].volume.is_none());
    }

    #[test]
    fn only_passed_volumes_count_as_passed() {
        let d = drilled(vec![
            report("ok", Verdict::Pass, Some(1.0)),
            report("bad", Verdict::Error, None),
        ]);
        assert!(d.passed("ok") && !d.passed("bad") && !d.passed("other"));
        assert!(d.failed());
        let errors = errors_of(&d);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].volume.as_deref(), Some("bad"));
        assert_eq!(errors[0].error, "no committed archive");
        // An interrupted drill records nothing.
        let metrics = Metrics::default();
        let stopped = Drilled {
            interrupted: true,
            ..drilled(vec![report("ok", Verdict::Pass, Some(1.0))])
        };
        record(&metrics, "j", &stopped);
        assert!(!metrics.render().contains("volsafe_drill_success{"));
    }
}
