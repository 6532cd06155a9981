//! Named volumes: inspect, create, remove, and who uses them.
//!
//! Inspecting first is what keeps a typo from becoming an empty backup: the
//! Engine creates a missing volume when a container mounts it, so no helper
//! is ever created for a volume that was not found here.

use std::collections::{BTreeMap, HashMap};

use anyhow::Result;
use bollard::models::{Volume, VolumeCreateRequest};
use bollard::query_parameters::RemoveVolumeOptions;

use super::{message_of, status_of, Engine};
use crate::error::failed;

/// The parts of a volume that an archive records and a restore recreates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSpec {
    pub name: String,
    pub driver: String,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
}

impl From<Volume> for VolumeSpec {
    fn from(v: Volume) -> Self {
        VolumeSpec {
            name: v.name,
            driver: v.driver,
            labels: v.labels.into_iter().collect(),
            options: v.options.into_iter().collect(),
        }
    }
}

/// Inspects a volume; `Ok(None)` when it does not exist.
pub async fn inspect(engine: &Engine, name: &str) -> Result<Option<VolumeSpec>> {
    Ok(inspect_full(engine, name).await?.map(Into::into))
}

/// Inspects a volume, with everything the Engine says of it.
pub async fn inspect_full(engine: &Engine, name: &str) -> Result<Option<Volume>> {
    match engine.docker.inspect_volume(name).await {
        Ok(v) => Ok(Some(v)),
        Err(e) if status_of(&e) == Some(404) => Ok(None),
        Err(e) => Err(failed(
            format!("volume {name}: cannot inspect ({})", message_of(&e)),
            format!("check that the daemon at {} is healthy", engine.host),
        )),
    }
}

/// Inspects a volume that must exist.
pub async fn require(engine: &Engine, name: &str) -> Result<VolumeSpec> {
    inspect(engine, name)
        .await?
        .ok_or_else(|| not_found(engine, name))
}

/// The error for a volume that does not exist.
pub fn not_found(engine: &Engine, name: &str) -> anyhow::Error {
    failed(
        format!("volume {name}: not found on daemon {}", engine.name),
        "check the name with `docker volume ls`; volsafe never creates a volume to back up",
    )
}

/// Creates a volume.
pub async fn create(engine: &Engine, spec: &VolumeSpec) -> Result<()> {
    let req = VolumeCreateRequest {
        name: Some(spec.name.clone()),
        driver: Some(spec.driver.clone()),
        driver_opts: Some(spec.options.clone().into_iter().collect::<HashMap<_, _>>()),
        labels: Some(spec.labels.clone().into_iter().collect::<HashMap<_, _>>()),
        ..Default::default()
    };
    engine.docker.create_volume(req).await.map_err(|e| {
        failed(
            format!("volume {}: cannot create ({})", spec.name, message_of(&e)),
            "check the driver and its options with `docker volume create`",
        )
    })?;
    Ok(())
}

/// Removes a volume.
pub async fn remove(engine: &Engine, name: &str) -> Result<()> {
    engine
        .docker
        .remove_volume(name, None::<RemoveVolumeOptions>)
        .await
        .map_err(|e| {
            let hint = if status_of(&e) == Some(409) {
                format!("a container still uses it: see `docker ps -a --filter volume={name}`")
            } else {
                "check the daemon's log".to_owned()
            };
            failed(
                format!("volume {name}: cannot remove ({})", message_of(&e)),
                hint,
            )
        })
}

/// Whether a container in this state may be using its volumes: anything but
/// created, exited and dead (a paused, restarting or unknown one counts).
fn is_running(state: &str) -> bool {
    !matches!(state, "created" | "exited" | "dead")
}

/// A container that references a volume.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub name: String,
    /// Running, paused, restarting, or in a state the daemon did not say.
    pub running: bool,
    /// The Engine's state word: `running`, `paused`, `exited`…
    pub state: String,
    pub labels: HashMap<String, String>,
    /// It mounts the volume (the Engine's `volume` filter also matches
    /// containers with a mount destination of that name).
    pub mounts_it: bool,
}

/// The containers (running or not) that reference a volume, volsafe's own
/// helpers left out.
pub async fn users(engine: &Engine, volume: &str) -> Result<Vec<User>> {
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
    Ok(list
        .into_iter()
        .filter(|c| {
            !c.labels
                .as_ref()
                .is_some_and(|l| l.contains_key(super::helper::LABEL_ROLE))
        })
        .map(|c| {
            let state = c.state.map(|s| s.to_string()).unwrap_or_default();
            User {
                name: c
                    .names
                    .and_then(|n| n.first().cloned())
                    .map(|n| n.trim_start_matches('/').to_owned())
                    .or_else(|| c.id.clone())
                    .unwrap_or_default(),
                id: c.id.unwrap_or_default(),
                // A state the daemon did not report could be any: assume running.
                running: is_running(&state),
                state,
                mounts_it: c
                    .mounts
                    .iter()
                    .flatten()
                    .any(|m| m.name.as_deref() == Some(volume)),
                labels: c.labels.unwrap_or_default(),
            }
        })
        .collect())
}

/// The containers, running or not, that mount `volume`.
pub async fn containers_using(engine: &Engine, volume: &str) -> Result<Vec<User>> {
    let mut users = users(engine, volume).await?;
    users.retain(|u| u.mounts_it);
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A paused container once counted as stopped, so restore went ahead.
    #[test]
    fn paused_and_restarting_count_as_running() {
        for s in ["running", "paused", "restarting", "removing", ""] {
            assert!(is_running(s), "{s}");
        }
        for s in ["created", "exited", "dead"] {
            assert!(!is_running(s), "{s}");
        }
    }
}

/// Checks a volume name as the Engine's local driver does
/// (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`), before anything is created: an empty
/// name would make the Engine create an anonymous volume, and other bad
/// names would fail later with a message about volsafe's lock instead.
pub fn check_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok && name.len() >= 2 && name.len() <= 200 {
        return Ok(());
    }
    Err(crate::error::usage(
        format!("volume name {name:?}: not a valid Docker volume name"),
        "use 2 to 200 letters, digits, `_`, `.` or `-`, starting with a letter or digit",
    ))
}

#[cfg(test)]
mod name_tests {
    use super::check_name;

    #[test]
    fn volume_names_are_checked_like_the_engine_does() {
        for ok in ["pgdata", "a1", "my_vol.2-x", "0abc"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a",
            "-x",
            ".x",
            "../etc",
            "a/b",
            "a b",
            "vol-é",
            &"x".repeat(201),
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
