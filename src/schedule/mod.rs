//! `volsafe schedule`: the long-running mode. Reads a TOML file of jobs
//! (docs/schedule.md), runs each on its cron schedule (and its drills on
//! theirs), and keeps going until SIGTERM or SIGINT.
//!
//! The loop wakes at the next slot, or after [`MAX_SLEEP`] at most, and
//! reads the wall clock again each time, so a clock that jumps or a host
//! that slept is noticed within a minute. Runs are tasks; the loop never
//! waits for one. What must stay true: one job never runs twice at once,
//! nor its drills; runs and drills sharing a volume never overlap
//! ([`runner::VolumeLocks`]); on a signal no new run starts, running ones
//! get the grace period and are then aborted through their own
//! [`Shutdown`] (containers started again, helpers and scratch volumes
//! removed, no partial archive), and the scheduler exits 0.

pub mod config;
mod drill;
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
use timing::{Poll, Schedule, Timer};

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
    let show = |schedule: &Schedule| -> Result<()> {
        for t in schedule.upcoming(now, SHOW_NEXT) {
            crate::out_line(format!("  {}", t.format("%Y-%m-%d %H:%M:%S %:z (%Z)")))?;
        }
        Ok(())
    };
    for job in &config.jobs {
        let after = match &job.drill {
            Some(d) if d.after_backup => "; drilled after each backup",
            _ => "",
        };
        crate::out_line(format!(
            "job {}: {} ({}) -> {}; volumes {}{after}",
            job.name,
            job.schedule.expr,
            job.schedule.tz,
            job.to.display(),
            job.describe_volumes()
        ))?;
        show(&job.schedule)?;
        if let Some(s) = job.drill.as_ref().and_then(|d| d.schedule.as_ref()) {
            crate::out_line(format!(
                "job {} drills: {} ({}), newest archives in {}",
                job.name,
                s.expr,
                s.tz,
                job.to.display()
            ))?;
            show(s)?;
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

/// What a timer starts: a job's backup run, or a drill on its `drill_cron`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Task {
    Backup,
    Drill,
}

/// A timer's key: the job's name and what the timer starts.
type Key = (String, Task);

struct Scheduler {
    config: Config,
    jobs: BTreeMap<String, Arc<config::Job>>,
    timers: BTreeMap<Key, Timer>,
    /// Runs and drills going (or waiting for a slot or their volumes).
    running: Arc<Mutex<BTreeSet<Key>>>,
    permits: Arc<Semaphore>,
    shared: Arc<runner::Shared>,
    abort: crate::shutdown::Trigger,
    shutdown: Shutdown,
    tasks: JoinSet<()>,
}

/// Takes a run out of the running set when its task ends, however it ends.
struct Running(Arc<Mutex<BTreeSet<Key>>>, Key);

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
            let mut wanted = vec![(Task::Backup, job.schedule.clone())];
            if let Some(s) = job.drill.as_ref().and_then(|d| d.schedule.clone()) {
                wanted.push((Task::Drill, s));
            }
            for (task, schedule) in wanted {
                let key = (job.name.clone(), task);
                let timer = match self.timers.remove(&key) {
                    Some(mut t) => {
                        t.reschedule(schedule, now);
                        t
                    }
                    None => Timer::new(schedule, now),
                };
                timers.insert(key, timer);
            }
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
        // A job that no longer drills shows no stale drill results.
        for (name, job) in &jobs {
            if job.drill.is_none() {
                self.shared.metrics.update(name, |s| s.drills.clear());
            }
        }
        self.timers = timers;
        self.jobs = jobs;
        self.config = config;
        for ((name, task), timer) in &self.timers {
            let job = &self.jobs[name];
            let next = timer.next().map_or("never".to_owned(), |t| {
                t.with_timezone(&job.schedule.tz).to_rfc3339()
            });
            match task {
                Task::Backup => tracing::info!(
                    job = %name,
                    cron = %job.schedule.expr,
                    timezone = %job.schedule.tz,
                    volumes = %job.describe_volumes(),
                    drill_after_backup = job.drill.as_ref().is_some_and(|d| d.after_backup),
                    next = %next,
                    "scheduled"
                ),
                Task::Drill => tracing::info!(
                    job = %name,
                    drill_cron = %job.drill.as_ref().and_then(|d| d.schedule.as_ref()).map_or("", |s| &s.expr),
                    timezone = %job.schedule.tz,
                    next = %next,
                    "drills scheduled"
                ),
            }
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

    /// Starts every run and drill whose slot has come; logs the slots
    /// missed.
    fn poll(&mut self, now: chrono::DateTime<Utc>) {
        for ((name, task), timer) in self.timers.iter_mut() {
            let job = &self.jobs[name];
            match timer.poll(now) {
                Poll::Idle => {}
                Poll::Missed { slot, more, late } => {
                    tracing::warn!(
                        job = %name,
                        task = ?task,
                        slot = %slot.with_timezone(&job.schedule.tz).to_rfc3339(),
                        more_missed = more,
                        late_seconds = late.as_secs(),
                        "missed: the host slept, the clock jumped or the scheduler was held up; not caught up, next run at its time"
                    );
                }
                Poll::Run(slot) => {
                    let key = (name.clone(), *task);
                    let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
                    if !running.insert(key.clone()) {
                        match task {
                            Task::Backup => {
                                tracing::warn!(job = %name, slot = %slot.to_rfc3339(), "skipped: the previous run of this job is still going")
                            }
                            Task::Drill => {
                                tracing::warn!(job = %name, slot = %slot.to_rfc3339(), "drill skipped: the previous drill of this job is still going")
                            }
                        }
                        continue;
                    }
                    let guard = Running(self.running.clone(), key);
                    let (shared, permits, job, task) = (
                        self.shared.clone(),
                        self.permits.clone(),
                        job.clone(),
                        *task,
                    );
                    self.tasks.spawn(async move {
                        let _guard = guard;
                        match task {
                            Task::Backup => runner::run(shared, permits, job, slot).await,
                            Task::Drill => drill::run(shared, permits, job, slot).await,
                        }
                    });
                }
            }
            if *task == Task::Backup {
                let next = timer.next().map(|t| t.timestamp() as f64);
                self.shared.metrics.update(name, |s| s.next_run = next);
            }
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
            "stopping: no new runs; letting running backups and drills finish"
        );
        let deadline = tokio::time::sleep(grace);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                done = self.tasks.join_next() => if done.is_none() { break },
                _ = &mut deadline => {
                    tracing::warn!(runs = self.tasks.len(), "grace period over: aborting running backups and drills");
                    self.abort.fire(signal);
                    while self.tasks.join_next().await.is_some() {}
                    break;
                }
            }
        }
        tracing::info!("scheduler stopped");
    }
}
