//! What the checks look at: containers, their mounts and ports, and volumes,
//! in one shape whether they came from the Engine API or a compose file.
//!
//! Every field is what the source said, unjudged: the rules decide. Strings
//! are kept as found (modes, propagation, security options) so a rule can
//! match the spellings the Engine and compose accept.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// A place in a compose file, for findings and SARIF.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    /// 1-based.
    pub column: usize,
}

/// Everything the checks see at once.
#[derive(Debug, Clone, Default)]
pub struct Host {
    /// The daemon's `DockerRootDir`; `/var/lib/docker` for compose files.
    pub data_root: String,
    /// Whether the daemon runs on cgroup v2, where a private cgroup
    /// namespace is the default and `host` is a choice someone made.
    pub cgroup_v2: bool,
    /// `DOCKER_HOST` as volsafe itself uses it; `None` for compose files.
    pub docker_host: Option<String>,
    /// Whether volsafe speaks TLS to that host (`DOCKER_TLS_VERIFY`).
    pub docker_tls: bool,
    pub containers: Vec<Container>,
    pub volumes: Vec<Volume>,
    /// Names of volumes no container references (`dangling=true`).
    pub dangling: BTreeSet<String>,
}

/// A container on the host, or a service in a compose file.
#[derive(Debug, Clone, Default)]
pub struct Container {
    /// Name without the leading `/`; the service name for compose.
    pub name: String,
    /// Full ID; empty for compose.
    pub id: String,
    pub running: bool,
    /// `--rm`: anonymous volumes go with the container.
    pub auto_remove: bool,
    pub privileged: bool,
    /// As given: `SYS_ADMIN`, `cap_sys_admin`, `ALL`…
    pub cap_add: Vec<String>,
    /// As given: `seccomp=unconfined`, `no-new-privileges:true`…
    pub security_opt: Vec<String>,
    pub pid_mode: String,
    pub ipc_mode: String,
    pub uts_mode: String,
    pub userns_mode: String,
    pub cgroupns_mode: String,
    pub readonly_rootfs: bool,
    /// Host device paths (`/dev/fuse`, `/dev/sda:/dev/xvda:rwm`).
    pub devices: Vec<String>,
    pub device_cgroup_rules: Vec<String>,
    /// `default`, `bridge`, `host`, `none`, `container:…`, a network name.
    pub network_mode: String,
    /// Attached to the default `bridge` network.
    pub default_bridge: bool,
    pub ports: Vec<Port>,
    /// `-P`: every exposed port on all interfaces.
    pub publish_all: bool,
    /// Exposed container ports, for `publish_all`.
    pub exposed: Vec<PortRange>,
    pub mounts: Vec<Mount>,
    pub labels: BTreeMap<String, String>,
    /// The service's key in a compose file.
    pub location: Option<Location>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountKind {
    Bind,
    Volume,
    Tmpfs,
    /// npipe, cluster, image…: nothing the checks judge.
    Other,
}

/// One mount of a container.
#[derive(Debug, Clone)]
pub struct Mount {
    pub kind: MountKind,
    /// Host path for a bind (absolute once resolved); volume name for a
    /// volume, empty for a compose anonymous volume; empty for tmpfs.
    pub source: String,
    /// Path inside the container.
    pub destination: String,
    pub rw: bool,
    /// `rprivate`, `shared`, `rslave`…; empty when not set.
    pub propagation: String,
    /// The mode string the Engine reports (`z`, `Z`, `ro,Z`); for compose,
    /// the short-syntax options or `bind.selinux`.
    pub mode: String,
    /// The mount's entry in a compose file.
    pub location: Option<Location>,
}

/// A range of ports, inclusive; one port is `start == end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

impl PortRange {
    pub fn one(port: u16) -> Self {
        PortRange {
            start: port,
            end: port,
        }
    }

    pub fn contains(&self, port: u16) -> bool {
        (self.start..=self.end).contains(&port)
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

/// One published port.
#[derive(Debug, Clone)]
pub struct Port {
    /// As given: empty, `0.0.0.0`, `::`, `127.0.0.1`, `[::1]`…
    pub host_ip: String,
    /// `None`: the Engine picks a free port.
    pub host_port: Option<PortRange>,
    pub container_port: PortRange,
    /// `tcp`, `udp`, `sctp`.
    pub protocol: String,
    pub location: Option<Location>,
}

/// A named volume, from `GET /volumes` or a compose file's top-level
/// `volumes`.
#[derive(Debug, Clone, Default)]
pub struct Volume {
    pub name: String,
    pub driver: String,
    /// `local` or `global`.
    pub scope: String,
    /// Driver options, values as found: redact before showing them.
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// The volume's key in a compose file.
    pub location: Option<Location>,
    /// The key under the compose file's top-level `volumes` that services
    /// use to mount it, when it differs from `name`.
    pub compose_key: Option<String>,
}
