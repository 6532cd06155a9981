//! Reading the host into the model: `GET /info`, the volumes, and an
//! inspect of every container in scope (several at a time: a host with 200
//! containers is checked in well under two seconds).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::Result;
use bollard::models::ContainerInspectResponse;
use futures_util::{stream, StreamExt, TryStreamExt};

use super::model::{Container, Host, Mount, MountKind, Port, PortRange, Volume};
use super::paths;
use crate::engine::{self, Engine};
use crate::error::failed;

/// How many inspects run at once.
const PARALLEL_INSPECTS: usize = 16;
/// The Engine answers an inspect only after a running archive copy of that
/// container ends; a container busy for longer is left out with a warning.
const INSPECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// volsafe's own helpers, locks and leases are not the configuration being
/// judged, and inspecting a helper mid-copy would wait for the copy.
fn is_volsafes(c: &bollard::models::ContainerSummary) -> bool {
    c.labels
        .as_ref()
        .is_some_and(|l| l.contains_key(crate::engine::helper::LABEL_ROLE))
}

/// Which part of the host to read.
pub enum Scope<'a> {
    /// Every volume and every container.
    All,
    /// These volumes and the containers, running or not, that mount them.
    Volumes(&'a [String]),
}

/// Reads what the checks need from the daemon.
pub async fn collect(engine: &Engine, scope: Scope<'_>) -> Result<Host> {
    let api_error = |what: &str, e: &bollard::errors::Error| {
        failed(
            format!(
                "docker daemon at {}: cannot {what}: {}",
                engine.host,
                engine::message_of(e)
            ),
            "is the daemon running and may this user use it?",
        )
    };
    let info = engine
        .docker
        .info()
        .await
        .map_err(|e| api_error("read its configuration", &e))?;
    let mut host = Host {
        data_root: info
            .docker_root_dir
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "/var/lib/docker".to_owned()),
        cgroup_v2: info.cgroup_version.is_some_and(|v| v.to_string() == "2"),
        docker_host: Some(engine.host.clone()),
        docker_tls: tls_requested(),
        ..Host::default()
    };

    let ids: Vec<String> = match scope {
        Scope::All => {
            let volumes = engine
                .docker
                .list_volumes(None::<bollard::query_parameters::ListVolumesOptions>)
                .await
                .map_err(|e| api_error("list volumes", &e))?;
            host.volumes = volumes
                .volumes
                .unwrap_or_default()
                .iter()
                .map(volume_from_engine)
                .collect();
            let dangling = bollard::query_parameters::ListVolumesOptions {
                filters: Some(HashMap::from([(
                    "dangling".to_owned(),
                    vec!["true".to_owned()],
                )])),
            };
            host.dangling = engine
                .docker
                .list_volumes(Some(dangling))
                .await
                .map_err(|e| api_error("list volumes", &e))?
                .volumes
                .unwrap_or_default()
                .into_iter()
                .map(|v| v.name)
                .collect();
            let options = bollard::query_parameters::ListContainersOptions {
                all: true,
                ..Default::default()
            };
            engine
                .docker
                .list_containers(Some(options))
                .await
                .map_err(|e| api_error("list containers", &e))?
                .into_iter()
                .filter(|c| !is_volsafes(c))
                .filter_map(|c| c.id)
                .collect()
        }
        Scope::Volumes(names) => {
            let mut ids = BTreeSet::new();
            for name in names {
                let v = engine::volume::inspect_full(engine, name)
                    .await?
                    .ok_or_else(|| engine::volume::not_found(engine, name))?;
                host.volumes.push(volume_from_engine(&v));
                for c in engine::containers_where(engine, "volume", name)
                    .await
                    .map_err(|e| api_error("list containers", &e))?
                {
                    if !is_volsafes(&c) {
                        ids.extend(c.id);
                    }
                }
            }
            ids.into_iter().collect()
        }
    };

    let inspected: Vec<Option<ContainerInspectResponse>> = stream::iter(ids)
        .map(|id| async move {
            let inspect = engine.docker.inspect_container(&id, None);
            match tokio::time::timeout(INSPECT_TIMEOUT, inspect).await {
                Ok(Ok(c)) => Ok(Some(c)),
                // Removed between the list and the inspect.
                Ok(Err(e)) if engine::status_of(&e) == Some(404) => Ok(None),
                Ok(Err(e)) => Err(e),
                Err(_) => {
                    tracing::warn!(container = %id, "not checked: the daemon did not answer its inspect in time (a copy from or into it holds it)");
                    Ok(None)
                }
            }
        })
        .buffer_unordered(PARALLEL_INSPECTS)
        .try_collect()
        .await
        .map_err(|e| api_error("inspect containers", &e))?;
    host.containers = inspected
        .iter()
        .flatten()
        .map(container_from_inspect)
        .collect();
    host.containers.sort_by(|a, b| a.name.cmp(&b.name));

    if let Scope::Volumes(names) = scope {
        // Keep only the containers that really mount them (the Engine's
        // `volume` filter also matches mount destinations).
        host.containers.retain(|c| {
            c.mounts
                .iter()
                .any(|m| m.kind == MountKind::Volume && names.contains(&m.source))
        });
        host.dangling = names
            .iter()
            .filter(|n| {
                !host
                    .containers
                    .iter()
                    .any(|c| c.mounts.iter().any(|m| &&m.source == n))
            })
            .cloned()
            .collect();
    }
    Ok(host)
}

/// Whether volsafe speaks TLS to a TCP daemon: `DOCKER_TLS_VERIFY` set and
/// not empty, as in `engine::connect`.
fn tls_requested() -> bool {
    std::env::var_os("DOCKER_TLS_VERIFY").is_some_and(|v| !v.is_empty())
}

/// The model of one volume from `GET /volumes`.
pub fn volume_from_engine(v: &bollard::models::Volume) -> Volume {
    let sorted = |m: &HashMap<String, String>| -> BTreeMap<String, String> {
        m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    };
    Volume {
        name: v.name.clone(),
        driver: v.driver.clone(),
        scope: v.scope.map(|s| s.to_string()).unwrap_or_default(),
        options: sorted(&v.options),
        labels: sorted(&v.labels),
        location: None,
        compose_key: None,
    }
}

/// The model of one container from `GET /containers/{id}/json`.
pub fn container_from_inspect(c: &ContainerInspectResponse) -> Container {
    let hc = c.host_config.clone().unwrap_or_default();
    let config = c.config.clone().unwrap_or_default();
    let running = c.state.as_ref().is_some_and(|s| {
        s.running == Some(true) || s.paused == Some(true) || s.restarting == Some(true)
    });
    let network_mode = hc.network_mode.clone().unwrap_or_default();
    let on_bridge_network = c
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .is_some_and(|n| n.contains_key("bridge"));
    let default_bridge = matches!(network_mode.as_str(), "default" | "bridge") || on_bridge_network;

    let requested = requested_propagation(&hc);
    let mut mounts: Vec<Mount> = c
        .mounts
        .iter()
        .flatten()
        .map(|m| {
            let kind = match m.typ.as_deref() {
                Some("bind") => MountKind::Bind,
                Some("volume") => MountKind::Volume,
                Some("tmpfs") => MountKind::Tmpfs,
                _ => MountKind::Other,
            };
            let source = match kind {
                MountKind::Volume => m.name.clone().unwrap_or_default(),
                MountKind::Tmpfs => String::new(),
                _ => m.source.clone().unwrap_or_default(),
            };
            Mount {
                kind,
                source,
                destination: m.destination.clone().unwrap_or_default(),
                rw: m.rw.unwrap_or(true),
                propagation: effective_propagation(
                    m.propagation.as_deref().unwrap_or_default(),
                    requested.get(&paths::normalize(
                        m.destination.as_deref().unwrap_or_default(),
                    )),
                ),
                mode: m.mode.clone().unwrap_or_default(),
                location: None,
            }
        })
        .collect();
    // `--tmpfs PATH` is in HostConfig only.
    for path in hc.tmpfs.iter().flat_map(|t| t.keys()) {
        if !mounts.iter().any(|m| &m.destination == path) {
            mounts.push(Mount {
                kind: MountKind::Tmpfs,
                source: String::new(),
                destination: path.clone(),
                rw: true,
                propagation: String::new(),
                mode: String::new(),
                location: None,
            });
        }
    }

    let mut ports = Vec::new();
    for (key, bindings) in hc.port_bindings.iter().flatten() {
        let Some((container_port, protocol)) = parse_port_key(key) else {
            continue;
        };
        for b in bindings.iter().flatten() {
            let host_port = b
                .host_port
                .as_deref()
                .filter(|p| !p.is_empty())
                .and_then(parse_range);
            ports.push(Port {
                host_ip: b.host_ip.clone().unwrap_or_default(),
                host_port,
                container_port,
                protocol: protocol.clone(),
                location: None,
            });
        }
    }
    ports.sort_by_key(|p| (p.container_port.start, p.host_ip.clone()));

    Container {
        name: c
            .name
            .as_deref()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned(),
        id: c.id.clone().unwrap_or_default(),
        running,
        auto_remove: hc.auto_remove.unwrap_or(false),
        privileged: hc.privileged.unwrap_or(false),
        cap_add: hc.cap_add.clone().unwrap_or_default(),
        security_opt: security_opts(&hc),
        pid_mode: hc.pid_mode.clone().unwrap_or_default(),
        ipc_mode: hc.ipc_mode.clone().unwrap_or_default(),
        uts_mode: hc.uts_mode.clone().unwrap_or_default(),
        userns_mode: hc.userns_mode.clone().unwrap_or_default(),
        cgroupns_mode: hc.cgroupns_mode.map(|m| m.to_string()).unwrap_or_default(),
        readonly_rootfs: hc.readonly_rootfs.unwrap_or(false),
        devices: hc
            .devices
            .iter()
            .flatten()
            .map(|d| d.path_on_host.clone().unwrap_or_default())
            .collect(),
        device_cgroup_rules: hc.device_cgroup_rules.clone().unwrap_or_default(),
        network_mode,
        default_bridge,
        ports,
        publish_all: hc.publish_all_ports.unwrap_or(false),
        exposed: config
            .exposed_ports
            .iter()
            .flatten()
            .filter_map(|k| parse_port_key(k).map(|(p, _)| p))
            .collect(),
        mounts,
        labels: config
            .labels
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        location: None,
    }
}

/// The security options as the rules read them. The Engine does not keep
/// `systempaths=unconfined` in `SecurityOpt`: it empties `MaskedPaths`
/// instead (a privileged container has none at all), so that is put back.
fn security_opts(hc: &bollard::models::HostConfig) -> Vec<String> {
    let mut opts = hc.security_opt.clone().unwrap_or_default();
    let unmasked = hc.masked_paths.as_ref().is_some_and(|m| m.is_empty());
    if unmasked && !hc.privileged.unwrap_or(false) {
        opts.push("systempaths=unconfined".to_owned());
    }
    opts
}

/// The propagation each bind asked for, by destination: from `-v`
/// options or `--mount bind-propagation=`.
fn requested_propagation(hc: &bollard::models::HostConfig) -> HashMap<String, String> {
    const MODES: &[&str] = &[
        "shared", "rshared", "slave", "rslave", "private", "rprivate",
    ];
    let mut out = HashMap::new();
    for bind in hc.binds.iter().flatten() {
        let parts: Vec<&str> = bind.split(':').collect();
        if let [_, dst, options] = parts.as_slice() {
            if let Some(mode) = options.split(',').find(|o| MODES.contains(o)) {
                out.insert(paths::normalize(dst), mode.to_owned());
            }
        }
    }
    for m in hc.mounts.iter().flatten() {
        let propagation = m
            .bind_options
            .as_ref()
            .and_then(|b| b.propagation)
            .map(|p| p.to_string())
            .filter(|p| !p.is_empty());
        if let (Some(dst), Some(p)) = (&m.target, propagation) {
            out.insert(paths::normalize(dst), p);
        }
    }
    out
}

/// The propagation the checks judge: what was asked for. The Engine picks
/// `rslave` by itself for binds of `/` or of the data root, which nobody
/// chose; it never picks `shared`.
fn effective_propagation(actual: &str, requested: Option<&String>) -> String {
    match requested {
        Some(r) => r.clone(),
        None if matches!(actual, "shared" | "rshared") => actual.to_owned(),
        None => String::new(),
    }
}

/// `5432/tcp` → (5432, "tcp").
fn parse_port_key(key: &str) -> Option<(PortRange, String)> {
    let (port, protocol) = key.split_once('/').unwrap_or((key, "tcp"));
    Some((parse_range(port)?, protocol.to_owned()))
}

/// `5432` or `8000-8010`.
fn parse_range(s: &str) -> Option<PortRange> {
    match s.split_once('-') {
        Some((a, b)) => Some(PortRange {
            start: a.trim().parse().ok()?,
            end: b.trim().parse().ok()?,
        }),
        None => s.trim().parse().ok().map(PortRange::one),
    }
}
