//! The helper image and the throwaway helper containers.
//!
//! Helpers are created and never started: the archive endpoints work on a
//! created container and see the volume mounted in it. So the image needs no
//! binary at all, and volsafe imports its own (one empty directory) instead
//! of pulling one. The exception, on a daemon on this host, is a helper
//! that streams a backup or a restore: it runs volsafe-tar from a bind
//! mount ([`super::streamer`]), still from the same image. Every helper
//! mounts its volume with `NoCopy` (so an empty volume is never filled
//! from the image), has no network, and carries the labels that tie it to
//! the run that made it.

use std::collections::HashMap;

use anyhow::Result;
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType, MountVolumeOptions};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, RemoveContainerOptions,
};
use futures_util::TryStreamExt;

use super::streamer::{self, Staging};
use super::{message_of, status_of, Engine};
use crate::archive::names::MOUNT_DIR;
use crate::error::{failed, usage};

/// volsafe's own helper image, imported on first use.
pub const HELPER_IMAGE: &str = "volsafe-helper:1";
/// Label on volsafe's image.
pub const LABEL_IMAGE: &str = "io.volsafe.image";
/// Label on every container volsafe creates: `helper`, `lock` or `lease`.
pub const LABEL_ROLE: &str = "io.volsafe.role";
/// Label naming the run (its lease) that owns a container.
pub const LABEL_OWNER: &str = "io.volsafe.owner";
/// Label naming the volume a helper or lock is for.
pub const LABEL_VOLUME: &str = "io.volsafe.volume";

/// Makes sure the helper image exists and returns its name. A user-given
/// image is never pulled: if it is missing, that is an error.
pub async fn ensure_image(engine: &Engine, custom: Option<&str>) -> Result<String> {
    if let Some(image) = custom {
        return match engine.docker.inspect_image(image).await {
            Ok(info) => {
                let declared: Vec<String> = info
                    .config
                    .and_then(|c| c.volumes)
                    .map(|v| v.into_iter().collect())
                    .unwrap_or_default();
                if declared.is_empty() {
                    Ok(image.to_owned())
                } else {
                    // Each helper would get an empty anonymous volume there:
                    // under /volume it hides the volume's own files.
                    Err(usage(
                        format!(
                            "helper image {image}: declares volumes ({}), which would hide part of the volume",
                            declared.join(", ")
                        ),
                        "use an image without VOLUME instructions, or leave out --helper-image to use volsafe's own",
                    ))
                }
            }
            Err(e) if status_of(&e) == Some(404) => Err(failed(
                format!("helper image {image}: not found on daemon {}", engine.name),
                "volsafe never pulls images: load it first, or leave out --helper-image to use volsafe's own",
            )),
            Err(e) => Err(failed(format!("helper image {image}: cannot inspect ({})", message_of(&e)), "check the daemon")),
        };
    }
    match engine.docker.inspect_image(HELPER_IMAGE).await {
        Ok(_) => return Ok(HELPER_IMAGE.to_owned()),
        Err(e) if status_of(&e) == Some(404) => {}
        Err(e) => {
            return Err(failed(
                format!(
                    "helper image {HELPER_IMAGE}: cannot inspect ({})",
                    message_of(&e)
                ),
                "check the daemon",
            ))
        }
    }
    tracing::info!(image = HELPER_IMAGE, "importing volsafe's helper image");
    let (repo, tag) = HELPER_IMAGE
        .split_once(':')
        .unwrap_or((HELPER_IMAGE, "latest"));
    let options = CreateImageOptions {
        from_src: Some("-".to_owned()),
        repo: Some(repo.to_owned()),
        tag: Some(tag.to_owned()),
        changes: vec![
            format!("LABEL {LABEL_IMAGE}=1"),
            // Helpers are never started; the Engine still wants a command.
            "CMD [\"/volsafe-helper-never-runs\"]".to_owned(),
        ],
        ..Default::default()
    };
    let body = bollard::body_full(helper_rootfs()?.into());
    engine
        .docker
        .create_image(Some(options), Some(body), None)
        .try_collect::<Vec<_>>()
        .await
        .map_err(|e| {
            failed(
                format!(
                    "helper image {HELPER_IMAGE}: cannot import ({})",
                    message_of(&e)
                ),
                "check the daemon's log",
            )
        })?;
    Ok(HELPER_IMAGE.to_owned())
}

/// The helper image's root file system: a tar with one empty directory.
fn helper_rootfs() -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_path("volsafe/")?;
    header.set_mode(0o755);
    header.set_size(0);
    header.set_mtime(0);
    header.set_cksum();
    builder.append(&header, std::io::empty())?;
    Ok(builder.into_inner()?)
}

/// What a helper container is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

/// A helper container, created and never started unless it streams.
/// Remove it with [`Helper::remove`].
#[derive(Debug)]
pub struct Helper {
    pub id: String,
    pub volume: String,
    /// Set when the helper can run volsafe-tar into a FIFO instead of
    /// being read through the archive endpoint ([`super::streamer`]).
    pub staging: Option<Staging>,
}

/// Creates a helper with `volume` mounted at `/volume`.
pub async fn create(
    engine: &Engine,
    image: &str,
    volume: &str,
    access: Access,
    owner: &str,
) -> Result<Helper> {
    let id = create_container(engine, image, volume, access, owner, None)
        .await
        .map_err(|e| {
            failed(
                format!(
                    "volume {volume}: cannot create a helper container ({})",
                    message_of(&e)
                ),
                "check the daemon's log",
            )
        })?;
    Ok(Helper {
        id,
        volume: volume.to_owned(),
        staging: None,
    })
}

/// Creates a read-only helper that a backup reads the whole volume from:
/// on a local daemon, one that can stream ([`super::streamer`]); if that
/// cannot be prepared or the daemon turns it down, a plain one.
pub async fn create_for_backup(
    engine: &Engine,
    image: &str,
    volume: &str,
    owner: &str,
) -> Result<Helper> {
    create_streaming(engine, image, volume, Access::ReadOnly, owner).await
}

/// Creates a read-write helper that a restore writes the whole volume
/// through: on a local daemon, one that extracts from a FIFO
/// ([`super::streamer`]); else a plain one.
pub async fn create_for_restore(
    engine: &Engine,
    image: &str,
    volume: &str,
    owner: &str,
) -> Result<Helper> {
    create_streaming(engine, image, volume, Access::ReadWrite, owner).await
}

async fn create_streaming(
    engine: &Engine,
    image: &str,
    volume: &str,
    access: Access,
    owner: &str,
) -> Result<Helper> {
    if streamer::wanted(engine) {
        let staging = tokio::task::spawn_blocking(Staging::new)
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match staging {
            Ok(staging) => {
                match create_container(engine, image, volume, access, owner, Some(&staging)).await {
                    Ok(id) => {
                        return Ok(Helper {
                            id,
                            volume: volume.to_owned(),
                            staging: Some(staging),
                        })
                    }
                    Err(e) => streamer::turn_down(&format!(
                        "the daemon turned a streaming helper down: {}",
                        message_of(&e)
                    )),
                }
            }
            Err(e) => streamer::turn_down(&format!("cannot prepare a streaming helper: {e}")),
        }
    }
    create(engine, image, volume, access, owner).await
}

async fn create_container(
    engine: &Engine,
    image: &str,
    volume: &str,
    access: Access,
    owner: &str,
    staging: Option<&Staging>,
) -> Result<String, bollard::errors::Error> {
    let labels = HashMap::from([
        (LABEL_ROLE.to_owned(), "helper".to_owned()),
        (LABEL_OWNER.to_owned(), owner.to_owned()),
        (LABEL_VOLUME.to_owned(), volume.to_owned()),
    ]);
    let mount = Mount {
        target: Some(format!("/{MOUNT_DIR}")),
        source: Some(volume.to_owned()),
        typ: Some(MountType::VOLUME),
        read_only: Some(access == Access::ReadOnly),
        volume_options: Some(MountVolumeOptions {
            no_copy: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut body = ContainerCreateBody {
        image: Some(image.to_owned()),
        cmd: Some(vec!["/volsafe-helper-never-runs".to_owned()]),
        labels: Some(labels),
        network_disabled: Some(true),
        host_config: Some(HostConfig {
            mounts: Some(vec![mount]),
            network_mode: Some("none".to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    };
    if let (Some(staging), Some(host)) = (staging, body.host_config.as_mut()) {
        let (entrypoint, cmd) = staging.command(access == Access::ReadWrite);
        body.entrypoint = Some(entrypoint);
        body.cmd = Some(cmd);
        body.user = Some("0:0".to_owned());
        body.healthcheck = Some(Staging::no_health_check());
        host.mounts
            .get_or_insert_with(Vec::new)
            .push(staging.mount());
        host.readonly_rootfs = Some(true);
        host.cap_drop = Some(vec!["ALL".to_owned()]);
        host.cap_add = Some(match access {
            // Reading every file of the volume whoever owns it, and
            // passing the staging directory (0700) of a volsafe that is
            // not root.
            Access::ReadOnly => vec!["DAC_READ_SEARCH".to_owned()],
            // Making entries as the Engine makes them: any owner, mode,
            // device and capability xattr, inside directories of any
            // mode (and the staging directory). All are in the set a
            // default container gets.
            Access::ReadWrite => [
                "CHOWN",
                "DAC_OVERRIDE",
                "FOWNER",
                "FSETID",
                "MKNOD",
                "SETFCAP",
            ]
            .map(str::to_owned)
            .to_vec(),
        });
        host.security_opt = Some(vec!["no-new-privileges".to_owned()]);
    }
    let name = format!("volsafe-helper-{}", super::lease::random_id());
    let created = engine
        .docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(name),
                ..Default::default()
            }),
            body,
        )
        .await?;
    tracing::debug!(volume, helper = %created.id, ?access, streaming = staging.is_some(), "helper created");
    Ok(created.id)
}

impl Helper {
    /// Removes the helper. Called on every path; a failure is logged, since
    /// the next run removes leftovers whose owner is gone.
    pub async fn remove(self, engine: &Engine) {
        remove_container(engine, &self.id).await;
    }
}

/// Force-removes a container, ignoring "already gone".
pub async fn remove_container(engine: &Engine, id: &str) {
    // With its anonymous volumes, if an image gave it any; a named volume
    // is never removed this way.
    let opts = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    match engine.docker.remove_container(id, Some(opts)).await {
        Ok(()) => {}
        Err(e) if status_of(&e) == Some(404) => {}
        Err(e) => {
            tracing::warn!(container = %id, error = %message_of(&e), "cannot remove a volsafe container")
        }
    }
}

/// Reads the owner label of a container, if any.
pub fn owner_of(labels: Option<&HashMap<String, String>>) -> Option<String> {
    labels.and_then(|l| l.get(LABEL_OWNER).cloned())
}
