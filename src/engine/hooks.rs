//! Pre- and post-backup hooks: commands that container labels ask volsafe
//! to run with `docker exec` in that container, around a backup of a volume
//! it mounts (a database dump, a flush, a freeze).

use std::time::Duration;

use anyhow::Result;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use futures_util::StreamExt;

use super::{message_of, Engine};
use crate::error::{failed, interrupted};
use crate::shutdown::Shutdown;

/// Run before the backup, while the container still runs.
pub const LABEL_PRE: &str = "volsafe.pre-backup";
/// Run after the backup, once stopped containers run again.
pub const LABEL_POST: &str = "volsafe.post-backup";
/// How long a hook may take (`30s`, `5m`); default [`DEFAULT_TIMEOUT`].
pub const LABEL_TIMEOUT: &str = "volsafe.hook-timeout";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// How much of a hook's output is kept for messages.
const OUTPUT_KEPT: usize = 4096;

/// One hook to run.
#[derive(Debug, Clone)]
pub struct Hook {
    pub container_id: String,
    pub container: String,
    pub command: String,
    pub timeout: Duration,
    /// `pre-backup` or `post-backup`, for messages.
    pub what: &'static str,
}

/// The hooks under `label` of the running containers that mount `volume`,
/// and only those (case C14).
pub async fn for_volume(engine: &Engine, volume: &str, label: &'static str) -> Result<Vec<Hook>> {
    let what = if label == LABEL_PRE {
        "pre-backup"
    } else {
        "post-backup"
    };
    let mut hooks = Vec::new();
    for c in super::volume::containers_using(engine, volume).await? {
        let Some(command) = c.labels.get(label).filter(|c| !c.trim().is_empty()) else {
            continue;
        };
        let name = c.name;
        if c.state != "running" {
            tracing::info!(container = %name, "{what} hook not run: the container is not running");
            continue;
        }
        let timeout = match c.labels.get(LABEL_TIMEOUT) {
            Some(t) => humantime::parse_duration(t).map_err(|e| {
                failed(
                    format!(
                        "container {name}: label {LABEL_TIMEOUT}={t:?} is not a duration ({e})"
                    ),
                    "write it like 30s, 5m or 1h",
                )
            })?,
            None => DEFAULT_TIMEOUT,
        };
        hooks.push(Hook {
            container_id: c.id,
            container: name,
            command: command.clone(),
            timeout,
            what,
        });
    }
    Ok(hooks)
}

/// Runs a hook with `sh -c` and waits for it; an error names the
/// container, the exit status and the last line of its output.
pub async fn run(engine: &Engine, hook: &Hook, shutdown: &Shutdown) -> Result<()> {
    let name = &hook.container;
    let what = hook.what;
    tracing::info!(container = %name, "running the {what} hook");
    let config = ExecConfig {
        cmd: Some(vec!["sh".into(), "-c".into(), hook.command.clone()]),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        ..Default::default()
    };
    let cannot = |e: &bollard::errors::Error| {
        failed(
            format!(
                "container {name}: cannot run the {what} hook ({})",
                message_of(e)
            ),
            format!(
                "check that the container runs and has `sh`; the hook is its {} label",
                label_of(what)
            ),
        )
    };
    let exec = engine
        .docker
        .create_exec(&hook.container_id, config)
        .await
        .map_err(|e| cannot(&e))?;
    let started = engine
        .transfer
        .start_exec(&exec.id, None::<StartExecOptions>)
        .await
        .map_err(|e| cannot(&e))?;
    let mut output = Vec::new();
    if let StartExecResults::Attached {
        output: mut stream, ..
    } = started
    {
        let read = async {
            while let Some(chunk) = stream.next().await {
                let chunk = match chunk {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(container = %name, error = %message_of(&e), "the {what} hook's output stream broke off");
                        break;
                    }
                };
                output.extend_from_slice(&chunk.into_bytes());
                if output.len() > OUTPUT_KEPT {
                    output.drain(..output.len() - OUTPUT_KEPT);
                }
            }
        };
        let bounded = tokio::time::timeout(hook.timeout, read);
        let finished = tokio::select! {
            done = bounded => done,
            s = shutdown.wait() => return Err(interrupted(s)),
        };
        if finished.is_err() {
            return Err(failed(
                format!(
                    "container {name}: the {what} hook did not finish within {}",
                    humantime::format_duration(hook.timeout)
                ),
                format!("make the hook faster, or raise the {LABEL_TIMEOUT} label; the command may still run in the container"),
            ));
        }
    }
    // The output can end a moment before the Engine records the exit.
    let mut inspect = engine
        .docker
        .inspect_exec(&exec.id)
        .await
        .map_err(|e| cannot(&e))?;
    for _ in 0..40 {
        if inspect.running != Some(true) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        inspect = engine
            .docker
            .inspect_exec(&exec.id)
            .await
            .map_err(|e| cannot(&e))?;
    }
    let text = String::from_utf8_lossy(&output);
    tracing::debug!(container = %name, output = %text.trim_end(), "{what} hook output");
    match inspect.exit_code {
        Some(0) => Ok(()),
        code => {
            let last = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("(no output)");
            let status = code.map_or("an unknown status".to_owned(), |c| format!("status {c}"));
            Err(failed(
                format!(
                    "container {name}: the {what} hook exited with {status}: {}",
                    last.trim()
                ),
                format!(
                    "run it by hand to see why: docker exec {name} sh -c '<the {} label>'",
                    label_of(what)
                ),
            ))
        }
    }
}

fn label_of(what: &str) -> &'static str {
    if what == "pre-backup" {
        LABEL_PRE
    } else {
        LABEL_POST
    }
}
