//! Stopping the containers that write to a volume for the length of a
//! backup, and starting them again on every path.
//!
//! Each stop is written ahead in a journal on the daemon: a never-started
//! marker container (`io.volsafe.role=stopped`) naming the stopped
//! container and the run's lease, created before the stop and removed after
//! the start. A run killed with SIGKILL leaves its markers; the next run's
//! sweep finds them (their lease has expired) and starts the containers.
//! Markers also count references: a container that two backups stopped is
//! started when the last of them removes its marker.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use bollard::query_parameters::StopContainerOptions;

use super::helper::{remove_container, LABEL_OWNER, LABEL_ROLE};
use super::lease::{self, Lease};
use super::{message_of, status_of, Engine};
use crate::error::failed;

/// Role label value of a journal marker.
pub const ROLE_STOPPED: &str = "stopped";
/// The stopped container's ID, on a marker.
const LABEL_TARGET: &str = "io.volsafe.target";
/// The stopped container's name, on a marker, for messages.
const LABEL_TARGET_NAME: &str = "io.volsafe.target-name";
/// Container label: stop this container whenever a volume it mounts is
/// backed up.
pub const LABEL_STOP: &str = "volsafe.stop-during-backup";
/// Label the Engine puts on the tasks of a Swarm service.
const LABEL_SWARM_SERVICE: &str = "com.docker.swarm.service.name";

/// A container to stop.
#[derive(Debug, Clone)]
pub struct Target {
    pub id: String,
    pub name: String,
}

/// The running containers to stop around a backup of `volumes`: all that
/// mount one of them with `all`, else those labelled
/// `volsafe.stop-during-backup=true`. Refuses containers of Swarm services,
/// which Swarm would replace.
pub async fn targets(engine: &Engine, volumes: &[String], all: bool) -> Result<Vec<Target>> {
    let mut out: Vec<Target> = Vec::new();
    for volume in volumes {
        let list = super::containers_where(engine, "volume", volume)
            .await
            .map_err(|e| {
                failed(
                    format!(
                        "volume {volume}: cannot list the containers that use it ({})",
                        message_of(&e)
                    ),
                    format!("check that the daemon at {} is healthy", engine.host),
                )
            })?;
        for c in list {
            let labels = c.labels.clone().unwrap_or_default();
            if labels.contains_key(LABEL_ROLE) {
                continue;
            }
            let running = matches!(
                c.state.as_ref().map(|s| s.to_string()).as_deref(),
                Some("running" | "paused" | "restarting")
            );
            let labelled = labels.get(LABEL_STOP).is_some_and(|v| v == "true");
            if !running || !(all || labelled) {
                continue;
            }
            let id = c.id.clone().unwrap_or_default();
            let name = c
                .names
                .as_ref()
                .and_then(|n| n.first())
                .map(|n| n.trim_start_matches('/').to_owned())
                .unwrap_or_else(|| id.clone());
            if let Some(service) = labels.get(LABEL_SWARM_SERVICE) {
                return Err(failed(
                    format!("container {name}: belongs to Swarm service {service}; stopping it would make Swarm start a replacement that writes to volume {volume}"),
                    format!("scale the service to 0 around the backup (docker service scale {service}=0), or back up without stopping it"),
                ));
            }
            if !out.iter().any(|t| t.id == id) {
                out.push(Target { id, name });
            }
        }
    }
    Ok(out)
}

/// Containers this run stopped, in the order it stopped them.
pub struct Window {
    stopped: Vec<(Target, String)>,
    since: Instant,
}

impl Window {
    pub fn is_empty(&self) -> bool {
        self.stopped.is_empty()
    }

    /// Names, for messages.
    pub fn names(&self) -> Vec<String> {
        self.stopped.iter().map(|(t, _)| t.name.clone()).collect()
    }
}

/// Stops `targets`, each with its own stop timeout, journaling each stop
/// first. Always returns the window of what was stopped, with the error
/// that ended it early if any: the caller starts them again either way.
pub async fn stop(
    engine: &Engine,
    image: &str,
    lease: &Lease,
    targets: &[Target],
) -> (Window, Result<()>) {
    let mut window = Window {
        stopped: Vec::new(),
        since: Instant::now(),
    };
    for t in targets {
        let labels = HashMap::from([
            (LABEL_ROLE.to_owned(), ROLE_STOPPED.to_owned()),
            (LABEL_OWNER.to_owned(), lease.id.clone()),
            (LABEL_TARGET.to_owned(), t.id.clone()),
            (LABEL_TARGET_NAME.to_owned(), t.name.clone()),
        ]);
        let marker_name = format!("volsafe-stopped-{}", lease::random_id());
        let marker = match lease::create_marker(engine, image, &marker_name, labels).await {
            Ok(id) => id,
            Err(e) => {
                let err = failed(
                    format!(
                        "container {}: cannot journal its stop ({})",
                        t.name,
                        message_of(&e)
                    ),
                    "check the daemon's log; nothing was stopped for it",
                );
                return (window, Err(err));
            }
        };
        // No timeout of ours: the Engine waits the container's own stop
        // timeout, then kills it. The transfer client has no short deadline.
        let stopped = engine
            .transfer
            .stop_container(&t.id, None::<StopContainerOptions>)
            .await;
        match stopped {
            Ok(()) => {
                tracing::info!(container = %t.name, "stopped for the backup");
                window.stopped.push((t.clone(), marker));
            }
            // Already stopped: nothing to start again later.
            Err(e) if status_of(&e) == Some(304) => remove_container(engine, &marker).await,
            Err(e) => {
                remove_container(engine, &marker).await;
                let err = failed(
                    format!("container {}: cannot stop it ({})", t.name, message_of(&e)),
                    "check the container with `docker inspect`; the containers stopped so far are started again",
                );
                return (window, Err(err));
            }
        }
    }
    (window, Ok(()))
}

impl Window {
    /// Starts every stopped container again, in reverse order, unless
    /// another live backup still holds it stopped. Returns how long the
    /// containers were down; an error names each one that did not start.
    pub async fn restart(self, engine: &Engine, me: &str) -> Result<Duration> {
        let down = self.since.elapsed();
        let mut failures = Vec::new();
        for (t, marker) in self.stopped.into_iter().rev() {
            remove_container(engine, &marker).await;
            if let Err(e) = start_unless_held(engine, &t.id, &t.name, me).await {
                failures.push(format!("{}: {e:#}", t.name));
            }
        }
        if !failures.is_empty() {
            return Err(failed(
                format!("cannot start again container {}", failures.join("; ")),
                "start it by hand with `docker start`; the next volsafe run tries again",
            ));
        }
        Ok(down)
    }
}

/// Starts container `id` unless a marker of a live run (this one included,
/// for another job) still holds it stopped. Called after removing the
/// caller's own marker, which makes two runs finishing together start it
/// at least once.
async fn start_unless_held(engine: &Engine, id: &str, name: &str, me: &str) -> Result<()> {
    let filter = format!("{LABEL_TARGET}={id}");
    let markers = super::containers_where(engine, "label", &filter)
        .await
        .map_err(|e| anyhow::anyhow!("cannot list stop markers ({})", message_of(&e)))?;
    for m in markers {
        let Some(owner) = super::helper::owner_of(m.labels.as_ref()) else {
            continue;
        };
        let held = owner == me || lease::alive(engine, &owner).await.unwrap_or(true);
        if held {
            tracing::info!(container = %name, "left stopped: another backup still holds it");
            return Ok(());
        }
    }
    match engine.docker.start_container(id, None).await {
        Ok(()) => {
            tracing::info!(container = %name, "started again");
            Ok(())
        }
        // Already running (someone started it): fine.
        Err(e) if status_of(&e) == Some(304) => Ok(()),
        Err(e) => Err(anyhow::anyhow!("{}", message_of(&e))),
    }
}

/// For the sweep: a marker of a run that is gone. Removes the marker, then
/// starts its container unless a live run holds it.
pub async fn recover(engine: &Engine, marker: &str, labels: &HashMap<String, String>, me: &str) {
    let (Some(id), name) = (
        labels.get(LABEL_TARGET),
        labels.get(LABEL_TARGET_NAME).cloned().unwrap_or_default(),
    ) else {
        remove_container(engine, marker).await;
        return;
    };
    // Take this marker out of the count first, as `restart` does.
    remove_container(engine, marker).await;
    tracing::warn!(container = %name, "an earlier run stopped this container and did not start it again; starting it");
    if let Err(e) = start_unless_held(engine, id, &name, me).await {
        tracing::error!(container = %name, error = %format!("{e:#}"), "cannot start it again; start it by hand with `docker start`");
    }
}
