//! The checks themselves: pure functions from [`Host`] to findings.
//!
//! Containers are judged only when they hold data (a volume or a bind
//! mount): volsafe checks the configuration around the data it backs up,
//! not every container on the host (docker-bench-security does that).

use std::collections::BTreeSet;

use super::model::{Container, Host, Mount, MountKind, Port, Volume};
use super::paths::{self, HostPath};
use super::secrets;
use super::{Finding, Severity};

/// Ports whose exposure to every interface is worse than most: the Docker
/// API with TLS, and databases.
const SENSITIVE_PORTS: &[u16] = &[2376, 3306, 5432, 6379, 27017, 9200];
/// The Docker API without TLS.
const PLAIN_DOCKER_PORT: u16 = 2375;
/// Capabilities that give a container most of the host.
const DANGEROUS_CAPS: &[&str] = &[
    "SYS_ADMIN",
    "DAC_READ_SEARCH",
    "SYS_MODULE",
    "SYS_PTRACE",
    "ALL",
];

/// What the checks are run for.
#[derive(Debug, Default)]
pub struct Context {
    /// Run before a backup: host-wide history checks (BAK003) are left out.
    pub pre_backup: bool,
    /// Containers (names) the backup stops first: they do not write during
    /// it (BAK005).
    pub stopping: BTreeSet<String>,
}

/// Every finding for `host`, in a stable order.
pub fn evaluate(host: &Host, ctx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    engine_access(host, &mut out);
    for c in &host.containers {
        if c.mounts
            .iter()
            .any(|m| matches!(m.kind, MountKind::Volume | MountKind::Bind))
        {
            container(host, c, ctx, &mut out);
        }
    }
    for v in &host.volumes {
        volume(host, v, ctx, &mut out);
    }
    out
}

/// The named volumes a container mounts.
fn volumes_of(c: &Container) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for m in &c.mounts {
        if m.kind == MountKind::Volume && !m.source.is_empty() && !names.contains(&m.source) {
            names.push(m.source.clone());
        }
    }
    names
}

/// A finding about container `c` as a whole.
fn about(c: &Container, id: &str, severity: Severity, message: String) -> Finding {
    let mut f = Finding::new(id, severity, message);
    f.container = Some(c.name.clone());
    f.volumes = volumes_of(c);
    f.location = c.location.clone();
    f
}

/// A finding about one mount of container `c`.
fn about_mount(c: &Container, m: &Mount, id: &str, severity: Severity, message: String) -> Finding {
    let mut f = about(c, id, severity, message);
    if m.kind == MountKind::Volume && !m.source.is_empty() {
        f.volumes = vec![m.source.clone()];
    }
    f.source = (!m.source.is_empty()).then(|| m.source.clone());
    f.destination = Some(m.destination.clone());
    f.location = m.location.clone().or_else(|| c.location.clone());
    f
}

fn access(rw: bool) -> &'static str {
    if rw {
        "read-write"
    } else {
        "read-only"
    }
}

/// ENG001 for volsafe's own connection.
fn engine_access(host: &Host, out: &mut Vec<Finding>) {
    let Some(docker_host) = &host.docker_host else {
        return;
    };
    let plain = docker_host.starts_with("tcp://") || docker_host.starts_with("http://");
    if plain && !host.docker_tls {
        out.push(Finding::new(
            "ENG001",
            Severity::Critical,
            format!(
                "volsafe reaches the Docker API at {docker_host} over TCP without TLS: anyone who can reach that port controls the host"
            ),
        ));
    }
}

fn container(host: &Host, c: &Container, ctx: &Context, out: &mut Vec<Finding>) {
    let name = &c.name;
    for m in &c.mounts {
        mount(host, c, m, ctx, out);
    }

    if c.privileged {
        let binds = c.mounts.iter().any(|m| m.kind == MountKind::Bind);
        let (severity, why) = if binds {
            (
                Severity::Critical,
                "and bind-mounts host paths: it can reach every device and file of the host",
            )
        } else {
            (
                Severity::High,
                "it can reach every device of the host, and the data of other volumes through them",
            )
        };
        out.push(about(
            c,
            "RUN001",
            severity,
            format!("container \"{name}\" runs privileged {why}"),
        ));
    }

    let caps: Vec<String> = c
        .cap_add
        .iter()
        .map(|cap| {
            let upper = cap.trim().to_ascii_uppercase();
            upper.strip_prefix("CAP_").unwrap_or(&upper).to_owned()
        })
        .filter(|cap| DANGEROUS_CAPS.contains(&cap.as_str()))
        .collect();
    if !caps.is_empty() {
        out.push(about(
            c,
            "RUN002",
            Severity::High,
            format!(
                "container \"{name}\" is given {}: enough to read other containers' data or leave the container",
                caps.join(", ")
            ),
        ));
    }

    let namespaces = [
        ("pid", &c.pid_mode, Severity::High),
        ("user", &c.userns_mode, Severity::High),
        ("ipc", &c.ipc_mode, Severity::Medium),
        ("uts", &c.uts_mode, Severity::Medium),
        ("cgroup", &c.cgroupns_mode, Severity::Medium),
    ];
    for (ns, mode, severity) in namespaces {
        if mode != "host" || (ns == "cgroup" && !host.cgroup_v2) {
            continue;
        }
        out.push(about(
            c,
            "RUN003",
            severity,
            format!("container \"{name}\" shares the host's {ns} namespace"),
        ));
    }

    let security = normalized_security_opts(c);
    // The Engine adds `label=disable` itself to privileged containers and to
    // those sharing the host's pid or ipc namespace: RUN001/RUN003 say it.
    let implied_label = c.privileged || c.pid_mode == "host" || c.ipc_mode == "host";
    let disabled: Vec<&str> = security
        .iter()
        .map(String::as_str)
        .filter(|o| !(implied_label && *o == "label=disable"))
        .filter(|o| {
            matches!(
                *o,
                "seccomp=unconfined"
                    | "apparmor=unconfined"
                    | "label=disable"
                    | "systempaths=unconfined"
            )
        })
        .collect();
    // Privileged containers run without any profile: RUN001 says it.
    if !disabled.is_empty() && !c.privileged {
        out.push(about(
            c,
            "RUN004",
            Severity::High,
            format!(
                "container \"{name}\" runs with {}: a protection against breaking out of the container is off",
                disabled.join(", ")
            ),
        ));
    }
    // The Engine reads the value with Go's strconv.ParseBool.
    let nnp = security.iter().any(|o| {
        o == "no-new-privileges"
            || o.strip_prefix("no-new-privileges=")
                .is_some_and(|v| matches!(v, "1" | "t" | "true"))
    });
    if !nnp {
        out.push(about(
            c,
            "RUN005",
            Severity::Low,
            format!("container \"{name}\" does not set no-new-privileges: setuid programs inside it can gain privileges"),
        ));
    }
    if !c.readonly_rootfs {
        out.push(about(
            c,
            "RUN006",
            Severity::Low,
            format!("container \"{name}\" has a writable root file system: data written outside its volumes is lost and never backed up"),
        ));
    }
    if !c.devices.is_empty() || !c.device_cgroup_rules.is_empty() {
        let what: Vec<&str> = c
            .devices
            .iter()
            .chain(&c.device_cgroup_rules)
            .map(String::as_str)
            .collect();
        out.push(about(
            c,
            "RUN007",
            Severity::Medium,
            format!(
                "container \"{name}\" is given host devices: {}",
                what.join(", ")
            ),
        ));
    }

    if c.network_mode == "host" {
        out.push(about(
            c,
            "NET001",
            Severity::High,
            format!("container \"{name}\" uses the host's network: every port it opens is open on the host"),
        ));
    } else if c.default_bridge {
        out.push(about(
            c,
            "NET004",
            Severity::Low,
            format!("container \"{name}\" is on the default bridge network, where every container reaches every other"),
        ));
    }

    let published = c.ports.iter().cloned().chain(
        c.publish_all
            .then(|| {
                c.exposed.iter().map(|p| Port {
                    host_ip: String::new(),
                    host_port: None,
                    container_port: *p,
                    protocol: "tcp".to_owned(),
                    location: c.location.clone(),
                })
            })
            .into_iter()
            .flatten(),
    );
    // With the host's network, none, or another container's, the Engine
    // publishes nothing.
    let own_network = !matches!(c.network_mode.as_str(), "host" | "none")
        && !c.network_mode.starts_with("container:");
    for p in published.filter(|_| own_network) {
        port(c, &p, out);
    }
}

/// `seccomp:unconfined` and `seccomp=unconfined` alike, lowercase.
fn normalized_security_opts(c: &Container) -> Vec<String> {
    c.security_opt
        .iter()
        .map(|o| {
            let o = o.trim().to_ascii_lowercase();
            match o.split_once([':', '=']) {
                Some((k, v)) => format!("{k}={v}"),
                None => o,
            }
        })
        .collect()
}

fn mount(host: &Host, c: &Container, m: &Mount, ctx: &Context, out: &mut Vec<Finding>) {
    let name = &c.name;
    match m.kind {
        MountKind::Bind => {
            let class = paths::classify(&m.source, &host.data_root);
            if let Some((id, severity)) = class.finding(m.rw) {
                out.push(about_mount(
                    c,
                    m,
                    id,
                    severity,
                    format!(
                        "container \"{name}\" bind-mounts {} at {}, {}: {}",
                        m.source,
                        m.destination,
                        access(m.rw),
                        class.describe()
                    ),
                ));
            }
            let relabel = m
                .mode
                .split(',')
                .any(|o| o.trim() == "z" || o.trim() == "Z");
            if relabel && paths::relabel_is_dangerous(&m.source, &host.data_root) {
                out.push(about_mount(
                    c,
                    m,
                    "VOL005",
                    Severity::High,
                    format!(
                        "container \"{name}\" bind-mounts {} with SELinux relabeling ({}): the host's own labels on it are replaced",
                        m.source,
                        m.mode
                    ),
                ));
            }
            if m.rw && matches!(class, HostPath::Data | HostPath::Ordinary) {
                out.push(about_mount(
                    c,
                    m,
                    "BAK002",
                    Severity::Info,
                    format!(
                        "container \"{name}\" writes to the host directory {} (at {}): volume backups do not include it",
                        m.source, m.destination
                    ),
                ));
            }
        }
        MountKind::Tmpfs => {
            let mut f = about_mount(
                c,
                m,
                "BAK002",
                Severity::Info,
                format!(
                    "container \"{name}\" keeps {} in memory (tmpfs): it is in no backup and is gone when the container stops",
                    m.destination
                ),
            );
            f.remediation =
                "keep data that must survive in a named volume; a tmpfs is for scratch data only"
                    .to_owned();
            out.push(f);
        }
        MountKind::Volume => {
            if m.rw && c.running && !ctx.stopping.contains(name) {
                let volume = if m.source.is_empty() {
                    "an anonymous volume"
                } else {
                    &m.source
                };
                out.push(about_mount(
                    c,
                    m,
                    "BAK005",
                    Severity::Low,
                    format!(
                        "running container \"{name}\" can write to volume \"{volume}\" (at {}) while it is backed up: the archive is crash-consistent at best",
                        m.destination
                    ),
                ));
            }
        }
        MountKind::Other => {}
    }
    let propagation = m.propagation.trim();
    let severity = match propagation {
        "shared" | "rshared" => Some(Severity::Medium),
        "slave" | "rslave" => Some(Severity::Low),
        _ => None,
    };
    if let Some(severity) = severity {
        out.push(about_mount(
            c,
            m,
            "VOL004",
            severity,
            format!(
                "container \"{name}\" mounts {} at {} with {propagation} propagation: mounts made on one side appear on the other",
                m.source, m.destination
            ),
        ));
    }
}

fn port(c: &Container, p: &Port, out: &mut Vec<Finding>) {
    let name = &c.name;
    let all_interfaces = matches!(p.host_ip.trim_matches(['[', ']']), "" | "0.0.0.0" | "::");
    let shown = match p.host_port {
        Some(h) => format!("{h}->{}/{}", p.container_port, p.protocol),
        None => format!(
            "{}/{} (on a port the Engine picks)",
            p.container_port, p.protocol
        ),
    };
    // The container port names the service (5432 is PostgreSQL whatever
    // host port it is published on).
    let any = |set: &[u16]| set.iter().any(|&q| p.container_port.contains(q));
    let mut located = |id: &str, severity: Severity, message: String| {
        let mut f = about(c, id, severity, message);
        f.location = p.location.clone().or_else(|| c.location.clone());
        out.push(f);
    };
    if all_interfaces {
        if any(&[PLAIN_DOCKER_PORT]) {
            located(
                "ENG001",
                Severity::Critical,
                format!("container \"{name}\" publishes {shown} on all interfaces: 2375 is the Docker API without TLS"),
            );
        } else {
            let severity = if any(SENSITIVE_PORTS) {
                Severity::High
            } else {
                Severity::Medium
            };
            located(
                "NET002",
                severity,
                format!("container \"{name}\" publishes {shown} on all interfaces"),
            );
        }
    }
    if let Some(h) = p.host_port {
        if h.start > 0 && h.start < 1024 {
            located(
                "NET003",
                Severity::Low,
                format!("container \"{name}\" publishes on privileged host port {h}"),
            );
        }
    }
}

/// A volume with a generated name: on Engine 20.10 anonymous volumes carry
/// no label, only a 64-hex-digit name.
fn is_anonymous(v: &Volume) -> bool {
    if v.labels.contains_key("com.docker.volume.anonymous") {
        return true;
    }
    let generated = v.name.len() == 64 && v.name.bytes().all(|b| b.is_ascii_hexdigit());
    generated
        && !v
            .labels
            .keys()
            .any(|k| k.starts_with("com.docker.compose."))
}

fn about_volume(v: &Volume, id: &str, severity: Severity, message: String) -> Finding {
    let mut f = Finding::new(id, severity, message);
    f.volumes = vec![v.name.clone()];
    f.location = v.location.clone();
    f
}

fn volume(host: &Host, v: &Volume, ctx: &Context, out: &mut Vec<Finding>) {
    let name = &v.name;
    let users: Vec<&Container> = host
        .containers
        .iter()
        .filter(|c| {
            c.mounts
                .iter()
                .any(|m| m.kind == MountKind::Volume && m.source == v.name)
        })
        .collect();

    let writers: Vec<&str> = users
        .iter()
        .filter(|c| {
            c.mounts
                .iter()
                .any(|m| m.kind == MountKind::Volume && m.source == v.name && m.rw)
        })
        .map(|c| c.name.as_str())
        .collect();
    if writers.len() > 1 {
        let mut f = about_volume(
            v,
            "VOL006",
            Severity::Low,
            format!(
                "volume \"{name}\" is mounted read-write by {} containers: {}",
                writers.len(),
                writers.join(", ")
            ),
        );
        f.container = Some(writers.join(", "));
        out.push(f);
    }

    let local = v.driver == "local";
    let option = |key: &str| {
        v.options
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    };
    let mount_options: Vec<String> = option("o")
        .unwrap_or("")
        .split(',')
        .map(|o| o.trim().to_ascii_lowercase())
        .collect();
    let has = |item: &str| mount_options.iter().any(|o| o == item);

    let secret_keys: Vec<String> = v
        .options
        .iter()
        .filter(|(k, val)| secrets::looks_secret(k, val))
        .map(|(k, val)| format!("{k}={}", secrets::redact(k, val)))
        .collect();
    if !secret_keys.is_empty() {
        out.push(about_volume(
            v,
            "VOL007",
            Severity::High,
            format!(
                "volume \"{name}\" keeps a credential in its driver options ({}): `docker volume inspect` shows it to anyone with access to the daemon",
                secret_keys.join(" ")
            ),
        ));
    }

    if local {
        let fs_type = option("type").unwrap_or("").to_ascii_lowercase();
        if fs_type.starts_with("nfs") {
            let encrypted = mount_options.iter().any(|o| {
                o == "xprtsec=tls"
                    || o == "xprtsec=mtls"
                    || o.strip_prefix("sec=")
                        .is_some_and(|s| s.split(':').all(|f| f == "krb5p"))
            });
            if !encrypted {
                out.push(about_volume(
                    v,
                    "VOL008",
                    Severity::Medium,
                    format!("volume \"{name}\" is an NFS mount ({fs_type}) without sec=krb5p or xprtsec=tls: its data crosses the network in clear text"),
                ));
            }
        } else if matches!(fs_type.as_str(), "cifs" | "smb3" | "smb") {
            if has("vers=1.0") || has("vers=1") {
                out.push(about_volume(
                    v,
                    "VOL008",
                    Severity::High,
                    format!("volume \"{name}\" is a CIFS mount with SMB 1 (vers=1.0), which cannot encrypt and has known flaws"),
                ));
            } else if !has("seal") {
                out.push(about_volume(
                    v,
                    "VOL008",
                    Severity::Medium,
                    format!("volume \"{name}\" is a CIFS mount without seal: its data crosses the network in clear text"),
                ));
            }
        }
        if has("bind") || has("rbind") {
            if let Some(device) = option("device") {
                let class = paths::classify(device, &host.data_root);
                if let Some((id, severity)) = class.finding(!has("ro")) {
                    let mut f = about_volume(
                        v,
                        id,
                        severity,
                        format!(
                            "volume \"{name}\" is a bind of {device}, so every container that mounts it does too: {}",
                            class.describe()
                        ),
                    );
                    f.source = Some(device.to_owned());
                    out.push(f);
                }
            }
        }
    }

    if !v.driver.is_empty() && !local {
        out.push(about_volume(
            v,
            "VOL009",
            Severity::Info,
            format!("volume \"{name}\" uses the volume driver \"{}\": its storage lives outside this host", v.driver),
        ));
    } else if v.scope == "global" {
        out.push(about_volume(
            v,
            "VOL009",
            Severity::Info,
            format!("volume \"{name}\" is a cluster (global scope) volume"),
        ));
    }

    if is_anonymous(v) {
        let removed_with: Vec<&str> = users
            .iter()
            .filter(|c| c.auto_remove)
            .map(|c| c.name.as_str())
            .collect();
        let (severity, why) = if removed_with.is_empty() {
            (
                Severity::Medium,
                String::from("it is easy to lose and hard to tell apart"),
            )
        } else {
            (
                Severity::High,
                format!(
                    "it is removed together with container \"{}\" (--rm)",
                    removed_with.join(", ")
                ),
            )
        };
        let mut f = about_volume(
            v,
            "BAK001",
            severity,
            format!("volume \"{name}\" is anonymous: {why}"),
        );
        if let Some(c) = users.first() {
            f.container = Some(c.name.clone());
        }
        out.push(f);
    }

    if !ctx.pre_backup && host.dangling.contains(name) {
        out.push(about_volume(
            v,
            "BAK003",
            Severity::Info,
            format!("volume \"{name}\" is not used by any container"),
        ));
    }
}

/// How old a volume's newest archive may be before BAK004 speaks up.
#[derive(Debug, Clone, Copy)]
pub struct BackupAge {
    pub medium: std::time::Duration,
    pub high: std::time::Duration,
}

/// BAK004 for each volume: `newest` maps a volume to the creation time of
/// its newest committed archive in `dir` (this daemon's).
pub fn backup_age(
    volumes: &[Volume],
    newest: &std::collections::BTreeMap<String, time::OffsetDateTime>,
    now: time::OffsetDateTime,
    limits: BackupAge,
    dir: &std::path::Path,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for v in volumes {
        let name = &v.name;
        let (severity, message) = match newest.get(name) {
            None => (
                Severity::High,
                format!("volume \"{name}\" has no backup in {}", dir.display()),
            ),
            Some(t) => {
                let age = (now - *t).max(time::Duration::ZERO).unsigned_abs();
                let shown =
                    humantime::format_duration(std::time::Duration::from_secs(age.as_secs()));
                let message = format!(
                    "volume \"{name}\": the newest backup in {} is {shown} old",
                    dir.display()
                );
                if age > limits.high {
                    (Severity::High, message)
                } else if age > limits.medium {
                    (Severity::Medium, message)
                } else {
                    continue;
                }
            }
        };
        out.push(about_volume(v, "BAK004", severity, message));
    }
    out
}
