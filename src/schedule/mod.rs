//! `volsafe schedule`: the long-running mode. Reads a TOML file of jobs
//! (docs/schedule.md), runs each on its cron schedule, and keeps going
//! until SIGTERM or SIGINT.
//!
//! The loop wakes at the next slot, or after [`MAX_SLEEP`] at most, and
//! reads the wall clock again each time, so a clock that jumps or a host
//! that slept is noticed within a minute. Runs are tasks; the loop never
//! waits for one. What must stay true: one job never runs twice at once;
//! jobs sharing a volume never overlap ([`runner::VolumeLocks`]); on a
//! signal no new run starts, running ones get the grace period and are
//! then aborted through their own [`Shutdown`] (containers started again,
//! helpers removed, no partial archive), and the scheduler exits 0.

pub mod config;
pub mod notify;
mod runner;
pub mod status;
pub mod timing;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use chrono::Utc;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::cli::ScheduleArgs;
use crate::error::{failed, Exit};
use crate::shutdown::Shutdown;
use config::Config;
use timing::{Poll, Timer};

/// The longest the loop sleeps before it reads the wall clock again.
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// How many upcoming runs `--check-config` prints per job.
const SHOW_NEXT: usize = 5;

pub async fn run(
    args: ScheduleArgs,
    helper_image: Option<String>,
    shutdown: Shutdown,
) -> Result<Exit> {
    let config = config::load(&args.config)?;
    if args.check_config {
        print_next_runs(&config)?;
        return Ok(Exit::Success);
    }
    let metrics = status::Metrics::default();
    let server = match args.status_addr {
        Some(addr) => Some(status::serve(addr, metrics.clone()).await?),
        None => None,
    };
    sweep_leftovers().await;
    let result = Scheduler::new(config, metrics, shutdown, helper_image)
        .run()
        .await;
    if let Some(server) = server {
        server.abort();
    }
    result
}

/// Prints each job and its next runs, in the job's timezone with offset.
fn print_next_runs(config: &Config) -> Result<()> {
    let now = Utc::now();
    crate::out_line(format!(
        "{}: {} job(s), parallel {}, grace {}",
        config.file.display(),
        config.jobs.len(),
        config.parallel,
        humantime::format_duration(config.grace)
    ))?;
    for job in &config.jobs {
        crate::out_line(format!(
            "job {}: {} ({}) -> {}; volumes {}",
            job.name,
            job.schedule.expr,
            job.schedule.tz,
            job.to.display(),
            job.describe_volumes()
        ))?;
        for t in job.schedule.upcoming(now, SHOW_NEXT) {
            crate::out_line(format!("  {}", t.format("%Y-%m-%d %H:%M:%S %:z (%Z)")))?;
        }
    }
    Ok(())
}

/// Starts again the containers that a killed run left stopped, and
/// removes its helpers, before anything else (each backup sweeps too; this
/// one does not wait for the first run). A daemon that is down is only
/// logged: the runs retry it.
async fn sweep_leftovers() {
    let engine = match crate::engine::connect().await {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "cannot look for leftovers of earlier runs now; each backup will");
            return;
        }
    };
    // No real lease has this id, so nothing of a live run is taken for ours.
    let me = format!("scheduler-{}", crate::engine::lease::random_id());
    if let Err(e) = crate::engine::lease::sweep(&engine, &me).await {
        tracing::warn!(error = %format!("{e:#}"), "cannot look for leftovers of earlier runs");
    }
}

/// Changes a semaphore's size from `old` to `new` permits. Shrinking takes
/// the extra permits away as they come free.
fn resize(semaphore: &Arc<Semaphore>, old: usize, new: usize) {
    if new > old {
        semaphore.add_permits(new - old);
    } else if old > new {
        let semaphore = Arc::clone(semaphore);
        let fewer = u32::try_from(old - new).unwrap_or(u32::MAX);
        tokio::spawn(async move {
            if let Ok(permits) = semaphore.acquire_many(fewer).await {
                permits.forget();
            }
        });
    }
}

struct Scheduler {
    config: Config,
    jobs: BTreeMap<String, Arc<config::Job>>,
    timers: BTreeMap<String, Timer>,
    /// Jobs with a run going (or waiting for a slot or its volumes).
    running: Arc<Mutex<BTreeSet<String>>>,
    permits: Arc<Semaphore>,
    shared: Arc<runner::Shared>,
    abort: crate::shutdown::Trigger,
    shutdown: Shutdown,
    tasks: JoinSet<()>,
}

/// Takes a job out of the running set when its task ends, however it ends.
struct Running(Arc<Mutex<BTreeSet<String>>>, String);

impl Drop for Running {
    fn drop(&mut self) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.1);
    }
}

impl Scheduler {
    fn new(
        config: Config,
        metrics: status::Metrics,
        shutdown: Shutdown,
        helper_image: Option<String>,
    ) -> Scheduler {
        let (abort, trigger) = shutdown.linked();
        let shared = Arc::new(runner::Shared {
            locks: runner::VolumeLocks::default(),
            metrics,
            stop: shutdown.clone(),
            abort,
            host: notify::host_name(),
            helper_image,
            slots: Arc::new(Semaphore::new(config.parallel)),
        });
        let now = Utc::now();
        let mut s = Scheduler {
            permits: Arc::new(Semaphore::new(config.parallel)),
            jobs: BTreeMap::new(),
            timers: BTreeMap::new(),
            running: Arc::default(),
            shared,
            abort: trigger,
            shutdown,
            tasks: JoinSet::new(),
            config: config.clone(),
        };
        s.install(config, now);
        s
    }

    /// Takes a (new) config: timers of jobs that keep their name keep their
    /// position, so a reload never repeats or drops a slot.
    fn install(&mut self, config: Config, now: chrono::DateTime<Utc>) {
        let mut timers = BTreeMap::new();
        let mut jobs = BTreeMap::new();
        for job in &config.jobs {
            let timer = match self.timers.remove(&job.name) {
                Some(mut t) => {
                    t.reschedule(job.schedule.clone(), now);
                    t
                }
                None => Timer::new(job.schedule.clone(), now),
            };
            timers.insert(job.name.clone(), timer);
            jobs.insert(job.name.clone(), Arc::new(job.clone()));
        }
        if config.parallel != self.config.parallel {
            // The same semaphores, resized: runs going and runs waiting
            // count against one limit, never the old and the new together.
            for semaphore in [&self.permits, &self.shared.slots] {
                resize(semaphore, self.config.parallel, config.parallel);
            }
        }
        let names: BTreeSet<String> = jobs.keys().cloned().collect();
        self.shared.metrics.retain(&names);
        self.timers = timers;
        self.jobs = jobs;
        self.config = config;
        for (name, job) in &self.jobs {
            tracing::info!(
                job = %name,
                cron = %job.schedule.expr,
                timezone = %job.schedule.tz,
                volumes = %job.describe_volumes(),
                next = %self.timers[name].next().map_or("never".to_owned(), |t| {
                    t.with_timezone(&job.schedule.tz).to_rfc3339()
                }),
                "scheduled"
            );
        }
    }

    async fn run(mut self) -> Result<Exit> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup()).map_err(|e| {
            failed(
                format!("cannot watch for SIGHUP ({e})"),
                "this is unexpected; please report it",
            )
        })?;
        tracing::info!(config = %self.config.file.display(), jobs = self.jobs.len(), parallel = self.config.parallel, "scheduler started");
        let signal = loop {
            let now = Utc::now();
            self.poll(now);
            let wait = self
                .timers
                .values()
                .filter_map(Timer::next)
                .min()
                .map_or(MAX_SLEEP, |next| (next - now).to_std().unwrap_or_default())
                .min(MAX_SLEEP);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = hup.recv() => self.reload(),
                s = self.shutdown.wait() => break s,
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    if let Err(e) = done {
                        tracing::error!(error = %e, "a run ended abnormally");
                    }
                }
            }
        };
        self.finish(signal).await;
        Ok(Exit::Success)
    }

    /// Starts every job whose slot has come; logs the slots missed.
    fn poll(&mut self, now: chrono::DateTime<Utc>) {
        for (name, timer) in self.timers.iter_mut() {
            let job = &self.jobs[name];
            match timer.poll(now) {
                Poll::Idle => {}
                Poll::Missed { slot, more, late } => {
                    tracing::warn!(
                        job = %name,
                        slot = %slot.with_timezone(&job.schedule.tz).to_rfc3339(),
                        more_missed = more,
                        late_seconds = late.as_secs(),
                        "missed: the host slept, the clock jumped or the scheduler was held up; not caught up, next run at its time"
                    );
                }
                Poll::Run(slot) => {
                    let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
                    if !running.insert(name.clone()) {
                        tracing::warn!(job = %name, slot = %slot.to_rfc3339(), "skipped: the previous run of this job is still going");
                        continue;
                    }
                    let guard = Running(self.running.clone(), name.clone());
                    let (shared, permits, job) =
                        (self.shared.clone(), self.permits.clone(), job.clone());
                    self.tasks.spawn(async move {
                        let _guard = guard;
                        runner::run(shared, permits, job, slot).await;
                    });
                }
            }
            let next = timer.next().map(|t| t.timestamp() as f64);
            self.shared.metrics.update(name, |s| s.next_run = next);
        }
    }

    /// SIGHUP: reads the config again; a broken one keeps the old.
    fn reload(&mut self) {
        match config::load(&self.config.file) {
            Ok(config) => {
                tracing::info!(config = %config.file.display(), jobs = config.jobs.len(), "config reloaded");
                self.install(config, Utc::now());
            }
            Err(e) => {
                let hint = crate::error::find_user_error(&e)
                    .and_then(|u| u.hint.clone())
                    .unwrap_or_default();
                tracing::error!(error = %format!("{e:#}"), hint = %hint, "config not reloaded; keeping the one in use");
            }
        }
    }

    /// No new runs; the running ones get the grace period, then are aborted
    /// and cleaned up.
    async fn finish(&mut self, signal: crate::error::Signal) {
        let going = self.tasks.len();
        if going == 0 {
            tracing::info!("scheduler stopped");
            return;
        }
        let grace = self.config.grace;
        tracing::warn!(
            runs = going,
            grace_seconds = grace.as_secs(),
            "stopping: no new runs; letting running backups finish"
        );
        let deadline = tokio::time::sleep(grace);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                done = self.tasks.join_next() => if done.is_none() { break },
                _ = &mut deadline => {
                    tracing::warn!(runs = self.tasks.len(), "grace period over: aborting running backups");
                    self.abort.fire(signal);
                    while self.tasks.join_next().await.is_some() {}
                    break;
                }
            }
        }
        tracing::info!("scheduler stopped");
    }
}
