//! Leases and per-volume locks, kept on the daemon itself.
//!
//! Host cron, a scheduler in a container and a manual run may not share a
//! PID namespace or a host name, but they share the daemon. So each run
//! holds a lease: a never-started container named after the run, into which
//! the run writes its expiry time (the daemon's clock plus [`LEASE_TTL`])
//! every [`RENEW_EVERY`]. A lock is a container whose unique name is the
//! volume's; it is held while its owner's lease is alive. Helpers carry the
//! owner's id too, so a later run removes exactly the leftovers of runs whose
//! lease expired, never those of a run still going.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result};
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptions, DownloadFromContainerOptions, UploadToContainerOptions,
};
use futures_util::TryStreamExt;
use time::OffsetDateTime;

use super::helper::{remove_container, LABEL_OWNER, LABEL_ROLE, LABEL_VOLUME};
use super::{message_of, status_of, Engine};
use crate::error::{failed, interrupted};
use crate::shutdown::Shutdown;

/// How long a lease lives without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(60);
/// How often a live run renews its lease.
pub const RENEW_EVERY: Duration = Duration::from_secs(15);
/// When a run writes its lease's first expiry: after the start's lock and
/// helper, and soon enough to find a lease container the daemon lost.
const FIRST_WRITE: Duration = Duration::from_secs(2);
/// How long one renewal may take, so that a hung daemon call cannot outlast
/// the lease unnoticed: the next renewal gets its turn well within the TTL.
const RENEW_TIMEOUT: Duration = Duration::from_secs(20);
const LEASE_FILE: &str = "volsafe-lease";
const LABEL_HOLDER: &str = "io.volsafe.holder";

/// A random id for a run or a container name.
pub fn random_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

fn lease_name(owner: &str) -> String {
    format!("volsafe-lease-{owner}")
}

fn lock_name(volume: &str) -> String {
    format!("volsafe-lock-{volume}")
}

/// This run's lease. End it with [`Lease::end`].
pub struct Lease {
    pub id: String,
    /// Who this run is, for the messages of runs that wait for its locks.
    holder: String,
    renew: tokio::task::JoinHandle<()>,
}

/// Who holds something, for messages: process, host and start time.
fn holder_description(what: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "?".to_owned());
    let now = OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    format!(
        "volsafe {what}, pid {} on host {host}, started {now}",
        std::process::id()
    )
}

/// The daemon's clock, so leases do not depend on clocks agreeing.
async fn daemon_now(engine: &Engine) -> Result<i64> {
    let daemon = format!("docker daemon at {}", engine.host);
    let hint = "check that the daemon is healthy (`docker info`)";
    let info = engine.docker.info().await.map_err(|e| {
        failed(
            format!("{daemon}: cannot read its clock ({})", message_of(&e)),
            hint,
        )
    })?;
    let Some(t) = info.system_time else {
        return Err(failed(format!("{daemon}: did not report its time"), hint));
    };
    let t = OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339)
        .map_err(|e| failed(format!("{daemon}: unreadable time {t:?} ({e})"), hint))?;
    Ok(t.unix_timestamp())
}

async fn write_expiry(engine: &Engine, container: &str) -> Result<()> {
    let expires = daemon_now(engine).await? + LEASE_TTL.as_secs() as i64;
    let body = expires.to_string().into_bytes();
    let mut header = tar::Header::new_ustar();
    header.set_path(LEASE_FILE)?;
    header.set_size(body.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder.append(&header, &body[..])?;
    let tar = builder.into_inner()?;
    let opts = UploadToContainerOptions {
        path: "/".to_owned(),
        ..Default::default()
    };
    engine
        .docker
        .upload_to_container(container, Some(opts), bollard::body_full(tar.into()))
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "lease container {container}: cannot write its expiry ({})",
                message_of(&e)
            )
        })
}

/// Writes the lease's expiry. Under load the daemon has been seen to lose a
/// container soon after creating it: a lease container that is gone is
/// created again under the same name, so the run keeps its id (its locks
/// and helpers carry it).
async fn renew(engine: &Engine, image: &str, name: &str, labels: &HashMap<String, String>) {
    let Err(e) = write_expiry(engine, name).await else {
        return;
    };
    let gone = matches!(
        engine.docker.inspect_container(name, None).await,
        Err(ref e) if status_of(e) == Some(404)
    );
    if !gone {
        tracing::warn!(error = %format!("{e:#}"), "cannot renew the lease; retrying");
        return;
    }
    tracing::warn!(lease = %name, "the lease container is gone; creating it again");
    let again = match create_marker(engine, image, name, labels.clone()).await {
        Ok(_) => write_expiry(engine, name).await,
        Err(e) => Err(anyhow::anyhow!(
            "cannot create volsafe's lease container again ({})",
            message_of(&e)
        )),
    };
    if let Err(e) = again {
        tracing::warn!(error = %format!("{e:#}"), "cannot renew the lease; retrying");
    }
}

/// Creates a never-started container from `image` with the given name and labels.
pub(crate) async fn create_marker(
    engine: &Engine,
    image: &str,
    name: &str,
    labels: HashMap<String, String>,
) -> Result<String, bollard::errors::Error> {
    let body = ContainerCreateBody {
        image: Some(image.to_owned()),
        cmd: Some(vec!["/volsafe-helper-never-runs".to_owned()]),
        labels: Some(labels),
        network_disabled: Some(true),
        host_config: Some(bollard::models::HostConfig {
            network_mode: Some("none".to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let opts = CreateContainerOptions {
        name: Some(name.to_owned()),
        ..Default::default()
    };
    Ok(engine.docker.create_container(Some(opts), body).await?.id)
}

impl Lease {
    /// Takes a lease for this run and starts renewing it.
    ///
    /// The first expiry is written [`FIRST_WRITE`] after the start, in the
    /// background: until it is there, [`alive`] counts the lease alive for
    /// [`LEASE_TTL`] from the container's creation. A write makes the daemon
    /// mount the container (40-60 ms with fuse-overlayfs); written at once,
    /// it slowed the creation of the lock and the helper beside it, and a
    /// run shorter than the delay never writes at all. The write also finds
    /// a lease container the daemon lost soon after creating it (seen under
    /// load), and creates it again.
    pub async fn start(engine: &Engine, image: &str, what: &str) -> Result<Lease> {
        let holder = holder_description(what);
        let id = random_id();
        let labels = HashMap::from([
            (LABEL_ROLE.to_owned(), "lease".to_owned()),
            (LABEL_OWNER.to_owned(), id.clone()),
            (LABEL_HOLDER.to_owned(), holder.clone()),
        ]);
        let name = lease_name(&id);
        create_marker(engine, image, &name, labels.clone())
            .await
            .map_err(|e| {
                failed(
                    format!(
                        "cannot create volsafe's lease container ({})",
                        message_of(&e)
                    ),
                    "check the daemon's log",
                )
            })?;
        let renew = {
            // A renewal that hangs must give up before the lease runs out.
            let engine = Engine {
                docker: engine.docker.clone().with_timeout(RENEW_TIMEOUT),
                ..engine.clone()
            };
            let image = image.to_owned();
            tokio::spawn(async move {
                tokio::time::sleep(FIRST_WRITE).await;
                loop {
                    renew(&engine, &image, &name, &labels).await;
                    tokio::time::sleep(RENEW_EVERY).await;
                }
            })
        };
        tracing::debug!(lease = %id, "lease taken");
        Ok(Lease { id, holder, renew })
    }

    /// Stops renewing and removes the lease container, by name: a renewal
    /// may have created it again under a new container id.
    pub async fn end(self, engine: &Engine) {
        self.renew.abort();
        remove_container(engine, &lease_name(&self.id)).await;
    }
}

/// Whether the run `owner` is still alive, judged by its lease.
///
/// Only positive evidence means dead: the lease container is gone, or its
/// expiry was read and has passed, or the lease file is absent although the
/// container is older than [`LEASE_TTL`] (its owner died before the first
/// write). Anything unclear (a failed or garbled download, a daemon error)
/// counts as alive, since judging a live run dead removes its helpers.
pub(crate) async fn alive(engine: &Engine, owner: &str) -> Result<bool> {
    let name = lease_name(owner);
    let inspect = match engine.docker.inspect_container(&name, None).await {
        Ok(i) => i,
        Err(e) if status_of(&e) == Some(404) => return Ok(false),
        Err(e) => {
            return Err(anyhow::anyhow!(
                "lease container {name}: cannot inspect ({})",
                message_of(&e)
            ))
        }
    };
    let now = daemon_now(engine).await?;
    let opts = DownloadFromContainerOptions {
        path: format!("/{LEASE_FILE}"),
    };
    let download = engine
        .docker
        .download_from_container(&name, Some(opts))
        .try_fold(Vec::new(), |mut acc, b| async move {
            acc.extend_from_slice(&b);
            Ok(acc)
        })
        .await;
    match download {
        Ok(tar) => match read_expiry(&tar) {
            Some(expires) => Ok(expires > now),
            None => {
                tracing::debug!(lease = %name, "lease file unreadable; counted alive");
                Ok(true)
            }
        },
        Err(e) if status_of(&e) == Some(404) => {
            // Created, but the first expiry not yet written: young leases live.
            let created = inspect.created.and_then(|c| {
                OffsetDateTime::parse(&c, &time::format_description::well_known::Rfc3339).ok()
            });
            Ok(created.is_none_or(|c| c.unix_timestamp() + (LEASE_TTL.as_secs() as i64) > now))
        }
        Err(e) => {
            tracing::debug!(lease = %name, error = %message_of(&e), "cannot read the lease file; counted alive");
            Ok(true)
        }
    }
}

/// The expiry in a downloaded lease file (a tar of one file).
fn read_expiry(tar: &[u8]) -> Option<i64> {
    let mut archive = tar::Archive::new(tar);
    let mut entry = archive.entries().ok()?.next()?.ok()?;
    let mut s = String::new();
    std::io::Read::read_to_string(&mut entry, &mut s).ok()?;
    s.trim().parse::<i64>().ok()
}

/// Removes volsafe containers (helpers, locks, leases) whose owner's lease
/// has expired. Never touches those of a live run.
pub async fn sweep(engine: &Engine, me: &str) -> Result<()> {
    let list = super::containers_where(engine, "label", LABEL_ROLE)
        .await
        .map_err(|e| anyhow::anyhow!("{}", message_of(&e)))
        .context("cannot list volsafe's containers")?;
    /// A container of a run: ID, labels, image.
    type Left = (String, HashMap<String, String>, String);
    let mut by_owner: HashMap<String, Vec<Left>> = HashMap::new();
    for c in list {
        let (Some(id), Some(owner)) = (c.id, super::helper::owner_of(c.labels.as_ref())) else {
            continue;
        };
        if owner != me {
            by_owner.entry(owner).or_default().push((
                id,
                c.labels.unwrap_or_default(),
                c.image.unwrap_or_default(),
            ));
        }
    }
    for (owner, containers) in by_owner {
        if alive(engine, &owner).await.unwrap_or(true) {
            continue;
        }
        tracing::info!(owner = %owner, containers = containers.len(), "removing leftovers of a run that is gone");
        // Containers it stopped are started again first.
        for (id, labels, image) in &containers {
            if labels.get(LABEL_ROLE).map(String::as_str) == Some(super::stop::ROLE_STOPPED) {
                super::stop::recover(engine, image, id, labels).await;
            }
        }
        for (id, ..) in containers {
            remove_container(engine, &id).await;
        }
    }
    sweep_scratch(engine, me).await
}

/// Removes the scratch volumes of drills whose run is gone (after their
/// helpers, which the sweep of containers removed first).
async fn sweep_scratch(engine: &Engine, me: &str) -> Result<()> {
    let filter = format!("{LABEL_ROLE}={}", crate::jobs::drill::ROLE_DRILL);
    let opts = bollard::query_parameters::ListVolumesOptions {
        filters: Some(HashMap::from([("label".to_owned(), vec![filter])])),
    };
    let volumes = engine
        .docker
        .list_volumes(Some(opts))
        .await
        .map_err(|e| anyhow::anyhow!("{}", message_of(&e)))
        .context("cannot list volsafe's scratch volumes")?
        .volumes
        .unwrap_or_default();
    for v in volumes {
        let Some(owner) = v.labels.get(LABEL_OWNER) else {
            continue;
        };
        if v.labels.contains_key(crate::jobs::drill::LABEL_KEEP) {
            continue;
        }
        if owner == me || alive(engine, owner).await.unwrap_or(true) {
            continue;
        }
        tracing::info!(volume = %v.name, "removing the scratch volume of a drill that is gone");
        if let Err(e) = super::volume::remove(engine, &v.name).await {
            tracing::warn!(volume = %v.name, error = %format!("{e:#}"), "cannot remove a leftover scratch volume");
        }
    }
    Ok(())
}

/// A held per-volume lock. Release it with [`Lock::release`].
pub struct Lock {
    container: String,
}

/// Takes the lock of `volume`, waiting up to `wait` for another run to finish.
pub async fn lock(
    engine: &Engine,
    image: &str,
    volume: &str,
    lease: &Lease,
    wait: Duration,
    shutdown: &Shutdown,
) -> Result<Lock> {
    let name = lock_name(volume);
    let labels = HashMap::from([
        (LABEL_ROLE.to_owned(), "lock".to_owned()),
        (LABEL_OWNER.to_owned(), lease.id.clone()),
        (LABEL_VOLUME.to_owned(), volume.to_owned()),
        (LABEL_HOLDER.to_owned(), lease.holder.clone()),
    ]);
    let deadline = tokio::time::Instant::now() + wait;
    let mut said = false;
    loop {
        match create_marker(engine, image, &name, labels.clone()).await {
            Ok(container) => {
                tracing::debug!(volume, "lock taken");
                return Ok(Lock { container });
            }
            Err(e) if status_of(&e) == Some(409) => {}
            Err(e) => {
                return Err(failed(
                    format!("volume {volume}: cannot take the lock ({})", message_of(&e)),
                    "check the daemon's log",
                ))
            }
        }
        // Held: by a live run, or a dead one whose lock can be taken over.
        let holder = match engine.docker.inspect_container(&name, None).await {
            Ok(h) => h,
            Err(e) if status_of(&e) == Some(404) => continue,
            Err(e) => {
                return Err(failed(
                    format!(
                        "volume {volume}: cannot inspect its lock ({})",
                        message_of(&e)
                    ),
                    "check the daemon's log",
                ))
            }
        };
        let labels_of = holder
            .config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default();
        let owner = labels_of.get(LABEL_OWNER).cloned().unwrap_or_default();
        if !alive(engine, &owner).await.unwrap_or(true) {
            tracing::info!(volume, owner = %owner, "taking over the lock of a run that is gone");
            if let Some(id) = holder.id {
                remove_container(engine, &id).await;
            }
            // Its helpers still hold the volume (a restore could not remove it).
            if let Err(e) = sweep(engine, &lease.id).await {
                tracing::warn!(error = %format!("{e:#}"), "cannot remove the leftovers of the run that is gone");
            }
            continue;
        }
        let who = labels_of
            .get(LABEL_HOLDER)
            .cloned()
            .unwrap_or_else(|| format!("run {owner}"));
        if tokio::time::Instant::now() >= deadline {
            return Err(failed(
                format!("volume {volume}: another backup or restore is running ({who})"),
                "wait for it to finish or raise --lock-wait; a run that died frees its lock within a minute",
            ));
        }
        if !said {
            tracing::info!(volume, holder = %who, "waiting for another run that holds this volume");
            said = true;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            s = shutdown.wait() => return Err(interrupted(s)),
        }
    }
}

impl Lock {
    pub async fn release(self, engine: &Engine) {
        remove_container(engine, &self.container).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease_tar(body: &[u8]) -> Vec<u8> {
        let mut header = tar::Header::new_ustar();
        header.set_path(LEASE_FILE).unwrap();
        header.set_size(body.len() as u64);
        header.set_cksum();
        let mut builder = tar::Builder::new(Vec::new());
        builder.append(&header, body).unwrap();
        builder.into_inner().unwrap()
    }

    #[test]
    fn expiry_is_read_and_garbage_is_not_an_expiry() {
        assert_eq!(read_expiry(&lease_tar(b"1700000060")), Some(1_700_000_060));
        assert_eq!(read_expiry(&lease_tar(b"17000")), Some(17_000));
        assert_eq!(read_expiry(&lease_tar(b"not a time")), None);
        assert_eq!(read_expiry(b"garbled download"), None);
        assert_eq!(read_expiry(b""), None);
    }
}
