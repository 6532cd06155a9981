//! volsafe: back up Docker named volumes into `age(zstd(tar))` archives and
//! restore them exactly.
//!
//! The binary in `main.rs` only parses arguments and maps errors to exit
//! codes; everything else lives here so tests can reach it. [`run`] turns
//! what the user typed into a checked plan and hands it to one job.

pub mod archive;
pub mod check;
pub mod cli;
pub mod engine;
pub mod error;
pub mod jobs;
pub mod progress;
pub mod retention;
pub mod schedule;
pub mod shutdown;
pub mod store;

/// volsafe-tar's source (build.rs builds the program itself), compiled into
/// the unit tests too, so that they and clippy cover it.
#[cfg(test)]
#[allow(dead_code)]
#[path = "streamer/main.rs"]
mod streamer;

use std::io::Write;
use std::time::Duration;

use anyhow::Result;

use cli::{Cli, Command, LogFormat};
use error::{find_user_error, Exit};
use jobs::{backup, drill, keygen, list, restore, verify};
use shutdown::Shutdown;

/// Whether `--log-format json` is on: errors are then logged as JSON too.
static JSON_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Puts the process under Linux's `SCHED_BATCH` policy: its threads still
/// get their fair share of the CPU, but a thread of volsafe that wakes up
/// does not preempt the one running. On a busy host, a backup then does not
/// cut into a database's time slices at every hand-off between its own
/// threads, and volsafe's threads, which hand data to each other all the
/// time, switch less (docs/behaviour.md). Call before starting threads;
/// they inherit it. Needs no privilege.
pub fn batch_scheduling() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid sched_param for the whole call; pid 0
        // is the calling thread.
        if unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Sets up logging to stderr: errors only with `-q`, info by default.
///
/// bollard's debug log prints whole API responses, volume driver options
/// (passwords) included: a second filter drops everything below info from
/// it, whatever `VOLSAFE_LOG` says.
pub fn init_logging(cli: &Cli) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let level = if cli.global.quiet {
        "error"
    } else {
        match cli.global.verbose {
            0 => "info",
            1 => "debug",
            _ => "trace",
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("VOLSAFE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("warn,volsafe={level}")));
    let no_raw_responses = tracing_subscriber::filter::filter_fn(|meta| {
        !meta.target().starts_with("bollard") || *meta.level() <= tracing::Level::INFO
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(|| progress::LogWriter)
        .with_ansi(ansi)
        .with_target(false);
    let layer = match cli.global.log_format {
        LogFormat::Json => {
            JSON_LOGS.store(true, std::sync::atomic::Ordering::Relaxed);
            layer.json().boxed()
        }
        LogFormat::Text => layer.without_time().boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(filter).with_filter(no_raw_responses))
        .try_init();
}

/// Marks a write to stdout that failed because the reader went away or the
/// output is full; `main` exits quietly on a closed pipe.
#[derive(Debug, thiserror::Error)]
#[error("stdout: {0}")]
pub struct StdoutError(pub std::io::Error);

/// Writes one line of results to stdout. A closed pipe is an error, not a panic.
pub fn out_line(line: impl std::fmt::Display) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .map_err(|e| StdoutError(e).into())
}

/// Whether an error is stdout's reader going away (`volsafe list | head`).
pub fn is_closed_stdout(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<StdoutError>()
            .is_some_and(|e| e.0.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Prints an error the way every volsafe command does: `volsafe: ` and the
/// whole context chain on one line, then the hint.
pub fn report_error(err: &anyhow::Error) {
    if is_closed_stdout(err) {
        return;
    }
    let hint = find_user_error(err).and_then(|u| u.hint.as_deref());
    if JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed) {
        // One JSON line like every other log line, hint included.
        let error = check::secrets::scrub(&format!("{err:#}"));
        match hint {
            Some(hint) => tracing::error!(hint, "{error}"),
            None => tracing::error!("{error}"),
        }
        return;
    }
    let mut stderr = std::io::stderr().lock();
    // Engine messages are scrubbed where they are read; this catches any
    // other path that quotes a volume's mount options.
    let _ = writeln!(
        stderr,
        "volsafe: {}",
        check::secrets::scrub(&format!("{err:#}"))
    );
    if let Some(hint) = hint {
        let _ = writeln!(stderr, "  hint: {hint}");
    }
}

/// Runs the command the user asked for.
pub async fn run(cli: Cli, shutdown: Shutdown) -> Result<Exit> {
    let g = &cli.global;
    let progress = progress::Mode::detect(g.no_progress || g.quiet);
    match cli.command {
        Command::Keygen(a) => keygen::run(a.output.as_deref()),
        Command::Backup(a) => {
            for v in &a.volumes {
                engine::volume::check_name(v)?;
            }
            let dest = backup::check_dest(&a.volumes, &a.to)?;
            let encryption = archive::crypto::encryption_from_args(
                &a.recipients.recipients,
                &a.recipients.recipients_files,
                a.passphrase_file.as_deref(),
                a.no_encryption,
            )?;
            let ignores = match &a.ignore {
                Some(path) => check::ignore::load(path)?,
                None => check::ignore::Ignores::empty(),
            };
            let plan = backup::Plan {
                volumes: a.volumes,
                dest,
                encryption,
                level: a.level,
                allow_empty: a.allow_empty,
                lock_wait: Duration::from_secs(a.lock_wait),
                helper_image: g.helper_image.clone(),
                progress,
                stop_containers: a.stop_containers,
                print_paths: true,
                slots: std::sync::Arc::new(tokio::sync::Semaphore::new(a.parallel as usize)),
                check: (!a.skip_check).then_some(backup::PreCheck {
                    ignores,
                    fail_on: a.check_fail_on,
                }),
            };
            backup::run(plan, shutdown).await
        }
        Command::Restore(a) => {
            let source = if a.source.as_os_str() == "-" {
                restore::Source::Stdin
            } else if a.source.is_dir() {
                restore::Source::Dir(a.source.clone())
            } else {
                restore::Source::File(a.source.clone())
            };
            let plan = restore::Plan {
                source,
                volume: a.volume,
                keys: restore::Keys {
                    identity_files: a.identities,
                    passphrase_file: a.passphrase_file,
                    inline: None,
                },
                replace: a.replace,
                rollback_to: a.rollback_to,
                rollback_recipients: a.recipients,
                rollback_recipient_files: a.recipients_files,
                no_encryption: a.no_encryption,
                driver_options: a.driver_options,
                daemon: a.daemon,
                helper_image: g.helper_image.clone(),
                progress,
            };
            restore::run(plan, shutdown).await
        }
        Command::Check(a) => {
            for v in &a.volumes {
                engine::volume::check_name(v)?;
            }
            if a.backup_age_medium > a.backup_age_high {
                return Err(error::usage(
                    "--backup-age-medium is longer than --backup-age-high",
                    "the medium threshold comes first: e.g. --backup-age-medium 24h --backup-age-high 7d",
                ));
            }
            let ignores = match &a.ignore {
                Some(path) => check::ignore::load(path)?,
                None => check::ignore::Ignores::empty(),
            };
            let plan = jobs::check::Plan {
                volumes: a.volumes,
                compose: a.compose,
                format: a.format,
                fail_on: a.fail_on,
                ignores,
                show_suppressed: a.show_suppressed,
                backups: a.backups.map(|dir| {
                    let limits = check::rules::BackupAge {
                        medium: a.backup_age_medium,
                        high: a.backup_age_high,
                    };
                    (dir, limits)
                }),
            };
            tokio::select! {
                done = jobs::check::run(plan) => done,
                s = shutdown.wait() => Err(error::interrupted(s)),
            }
        }
        Command::Prune(a) => jobs::prune::run(a).await,
        Command::Schedule(a) => schedule::run(a, g.helper_image.clone(), shutdown).await,
        Command::Drill(a) => {
            let plan = drill::Plan {
                dir: a.dir,
                volumes: a.volumes,
                daemon: a.daemon,
                keys: restore::Keys {
                    identity_files: a.identities,
                    passphrase_file: a.passphrase_file,
                    inline: None,
                },
                compare_live: a.compare_live,
                keep_scratch: a.keep_scratch,
                max_age: a.max_age,
                helper_image: g.helper_image.clone(),
                progress,
            };
            drill::run(plan, a.format, shutdown).await
        }
        Command::List(a) => list::run(list::Plan {
            dir: a.dir,
            volume: a.volume,
            daemon: a.daemon,
            format: a.format,
        }),
        Command::Verify(a) => {
            let keys = restore::Keys {
                identity_files: a.identities,
                passphrase_file: a.passphrase_file,
                inline: None,
            };
            let plan = verify::Plan {
                archive: a.archive,
                keys,
                format: a.format,
            };
            // Reading a large archive takes a while: Ctrl-C must not wait for it.
            let stop = shutdown.clone();
            let work = tokio::task::spawn_blocking(move || verify::run(plan, &stop));
            tokio::select! {
                done = work => done?,
                s = shutdown.wait() => Err(error::interrupted(s)),
            }
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    /// The policy is per thread: set it on a thread of the test's own, then
    /// check it there and in a thread that thread starts.
    #[test]
    fn batch_scheduling_is_set_and_inherited() {
        std::thread::spawn(|| {
            super::batch_scheduling().unwrap();
            // SAFETY: no arguments; pid 0 is the calling thread.
            assert_eq!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_BATCH);
            // SAFETY: as above, in the new thread.
            let child = std::thread::spawn(|| unsafe { libc::sched_getscheduler(0) });
            assert_eq!(child.join().unwrap(), libc::SCHED_BATCH);
        })
        .join()
        .unwrap();
    }
}
