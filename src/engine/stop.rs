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

/// The containers to hold stopped around a backup of `volumes`: the running
/// ones that mount one of them (all of them with `all`, else those labelled
/// `volsafe.stop-during-backup=true`), and the stopped ones that another
/// live backup holds stopped (so this one holds them too). Refuses
/// containers of Swarm services, which Swarm would replace.
pub async fn targets(engine: &Engine, volumes: &[String], all: bool) -> Result<Vec<Target>> {
    let mut out: Vec<Target> = Vec::new();
    for volume in volumes {
        for c in super::volume::containers_using(engine, volume).await? {
            let labelled = c.labels.get(LABEL_STOP).is_some_and(|v| v == "true");
            if !(all || labelled) || out.iter().any(|t| t.id == c.id) {
                continue;
            }
            if !c.running && !held_by_others(engine, &c.id, None).await.unwrap_or(true) {
                continue;
            }
            if let Some(service) = c.labels.get(LABEL_SWARM_SERVICE) {
                return Err(failed(
                    format!(
                        "container {}: belongs to Swarm service {service}; stopping it would make Swarm start a replacement that writes to volume {volume}",
                        c.name
                    ),
                    format!("scale the service to 0 around the backup (docker service scale {service}=0), or back up without stopping it"),
                ));
            }
            out.push(Target {
                id: c.id,
                name: c.name,
            });
        }
    }
    Ok(out)
}

/// Containers this run holds stopped, in the order it stopped them, each
/// with its journal marker.
pub struct Window {
    stopped: Vec<(Target, String)>,
    since: Instant,
    /// The helper image, for a marker that must outlive this run.
    image: String,
}

impl Window {
    /// Nothing held stopped.
    pub fn empty(image: &str) -> Window {
        Window {
            stopped: Vec::new(),
            since: Instant::now(),
            image: image.to_owned(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.stopped.is_empty()
    }

    /// Names, for messages.
    pub fn names(&self) -> Vec<String> {
        self.stopped.iter().map(|(t, _)| t.name.clone()).collect()
    }
}

/// Stops `targets`, each with its own stop timeout, journaling each stop
/// first. Always returns the window of what is held stopped, with the error
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
        image: image.to_owned(),
    };
    for t in targets {
        let marker = match journal(engine, image, &lease.id, t).await {
            Ok(id) => id,
            Err(e) => {
                let err = failed(
                    format!("container {}: cannot journal its stop ({e:#})", t.name),
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
            // Already stopped. Held by another backup: hold it too, so it
            // is started only when both are done. Stopped by someone else:
            // not ours to start.
            Err(e) if status_of(&e) == Some(304) => {
                if held_by_others(engine, &t.id, Some(&marker))
                    .await
                    .unwrap_or(true)
                {
                    tracing::info!(container = %t.name, "already stopped for another backup; held for this one too");
                    window.stopped.push((t.clone(), marker));
                } else {
                    remove_container(engine, &marker).await;
                }
            }
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

/// Creates a journal marker for `target`, owned by `owner`.
async fn journal(engine: &Engine, image: &str, owner: &str, target: &Target) -> Result<String> {
    let labels = HashMap::from([
        (LABEL_ROLE.to_owned(), ROLE_STOPPED.to_owned()),
        (LABEL_OWNER.to_owned(), owner.to_owned()),
        (LABEL_TARGET.to_owned(), target.id.clone()),
        (LABEL_TARGET_NAME.to_owned(), target.name.clone()),
    ]);
    let name = format!("volsafe-stopped-{}", lease::random_id());
    lease::create_marker(engine, image, &name, labels)
        .await
        .map_err(|e| anyhow::anyhow!("{}", message_of(&e)))
}

impl Window {
    /// Starts every held container again, in reverse order, unless another
    /// live backup still holds it stopped. Returns how long the containers
    /// were down; an error names each one that did not start, which stays
    /// journaled so the next run tries again.
    pub async fn restart(self, engine: &Engine) -> Result<Duration> {
        let down = self.since.elapsed();
        let mut failures = Vec::new();
        for (t, marker) in self.stopped.into_iter().rev() {
            remove_container(engine, &marker).await;
            if let Err(e) = start_unless_held(engine, &t, &marker).await {
                failures.push(format!("{}: {e:#}", t.name));
                orphan(engine, &self.image, &t).await;
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

/// Journals `target` under an owner that is no run at all: the next sweep
/// sees a dead owner and tries to start the container again.
async fn orphan(engine: &Engine, image: &str, target: &Target) {
    let owner = format!("orphan-{}", lease::random_id());
    if let Err(e) = journal(engine, image, &owner, target).await {
        tracing::error!(container = %target.name, error = %format!("{e:#}"), "cannot journal the container for a later start: start it by hand");
    }
}

/// Whether a marker other than `mine` of a live run (another job of this
/// one included) holds container `id` stopped. An error when that cannot
/// be told: the caller must not guess "no" and start it under a backup.
async fn held_by_others(engine: &Engine, id: &str, mine: Option<&str>) -> Result<bool> {
    let filter = format!("{LABEL_TARGET}={id}");
    let markers = super::containers_where(engine, "label", &filter)
        .await
        .map_err(|e| anyhow::anyhow!("cannot list stop markers ({})", message_of(&e)))?;
    for m in markers {
        if m.id.as_deref().is_some_and(|id| Some(id) == mine) {
            continue;
        }
        let Some(owner) = super::helper::owner_of(m.labels.as_ref()) else {
            continue;
        };
        if lease::alive(engine, &owner).await? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Starts `target` unless another live run's marker still holds it.
/// Called after removing the caller's own marker `mine`, which makes two
/// runs finishing together start it at least once.
async fn start_unless_held(engine: &Engine, target: &Target, mine: &str) -> Result<()> {
    let name = &target.name;
    if held_by_others(engine, &target.id, Some(mine)).await? {
        tracing::info!(container = %name, "left stopped: another backup still holds it");
        return Ok(());
    }
    match engine.docker.start_container(&target.id, None).await {
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
/// starts its container unless a live run holds it; a start that fails is
/// journaled again for the next run.
pub async fn recover(engine: &Engine, image: &str, marker: &str, labels: &HashMap<String, String>) {
    let Some(id) = labels.get(LABEL_TARGET) else {
        remove_container(engine, marker).await;
        return;
    };
    let target = Target {
        id: id.clone(),
        name: labels
            .get(LABEL_TARGET_NAME)
            .cloned()
            .unwrap_or_else(|| id.clone()),
    };
    remove_container(engine, marker).await;
    tracing::warn!(container = %target.name, "an earlier run stopped this container and did not start it again; starting it");
    if let Err(e) = start_unless_held(engine, &target, marker).await {
        tracing::error!(container = %target.name, error = %format!("{e:#}"), "cannot start it again; start it by hand with `docker start`; the next run tries again");
        orphan(engine, image, &target).await;
    }
}
