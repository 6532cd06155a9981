//! The volsafe binary: parse, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;

use volsafe::cli::Cli;
use volsafe::error::{exit_for, Exit};
use volsafe::shutdown::Shutdown;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    // Before any thread starts: every thread inherits it.
    let batch = volsafe::batch_scheduling();
    volsafe::init_logging(&cli);
    if let Err(e) = batch {
        tracing::debug!(error = %e, "cannot switch to batch scheduling; carrying on");
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = cli.async_workers() {
        builder.worker_threads(n);
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("volsafe: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let exit = runtime.block_on(async {
        let shutdown = Shutdown::install();
        match volsafe::run(cli, shutdown).await {
            Ok(exit) => exit,
            Err(e) => {
                if volsafe::is_closed_stdout(&e) {
                    // Our reader went away (`volsafe list DIR | head`): no noise.
                    // A broken pipe anywhere else (the daemon's end) is reported.
                    return Exit::Failed;
                }
                volsafe::report_error(&e);
                exit_for(&e)
            }
        }
    });
    // Blocking threads may still be winding down after an interruption.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    ExitCode::from(exit.code() as u8)
}
