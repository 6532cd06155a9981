//! The security checks of the volume configuration (`shared/CHECKS.md`,
//! `docs/checks.md`).
//!
//! A check is a small pure function over [`model::Host`]: the same rules run
//! on what the Engine API reports and on a parsed compose file, so every
//! rule is testable without a daemon. Findings carry what they are about
//! (container, volumes, mount) and, for compose files, where.

pub mod collect;
pub mod compose;
pub mod ignore;
pub mod model;
pub mod paths;
pub mod report;
pub mod rules;
pub mod secrets;

use std::fmt;

pub use model::Location;

/// How bad a finding is, in the order `--fail-on` compares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// The CVSS-like score GitHub code scanning reads from
    /// `security-severity` (critical > 9.0, high 7.0–8.9, medium 4.0–6.9,
    /// low 0.1–3.9).
    pub fn score(self) -> &'static str {
        match self {
            Severity::Info => "0.5",
            Severity::Low => "3.0",
            Severity::Medium => "5.5",
            Severity::High => "8.0",
            Severity::Critical => "9.5",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of the catalogue. IDs never change meaning once released.
#[derive(Debug)]
pub struct Rule {
    pub id: &'static str,
    pub title: &'static str,
    /// The highest severity this rule can give.
    pub max: Severity,
    /// What to change, in general; a finding may say it more precisely.
    pub remediation: &'static str,
    /// CIS Docker Benchmark v1.6 or another reference.
    pub reference: &'static str,
}

/// The catalogue, in ID order.
pub static RULES: &[Rule] = &[
    Rule {
        id: "VOL001",
        title: "runtime socket mounted into a container",
        max: Severity::Critical,
        remediation: "remove the socket mount; if the container needs the Docker API, give it a filtering socket proxy and ignore the finding for it with a reason",
        reference: "CIS Docker Benchmark 5.32; KICS docker-socket; trivy KSV006",
    },
    Rule {
        id: "VOL002",
        title: "sensitive host path bind-mounted",
        max: Severity::Critical,
        remediation: "mount only the directory the service needs, read-only where it can be, or use a named volume",
        reference: "CIS Docker Benchmark 5.6; KICS sensitive-host-dir; trivy KSV121",
    },
    Rule {
        id: "VOL003",
        title: "Docker data root bind-mounted",
        max: Severity::High,
        remediation: "do not bind-mount the daemon's data root or a directory holding it; use a named volume for the data the service needs",
        reference: "trivy KSV121",
    },
    Rule {
        id: "VOL004",
        title: "shared mount propagation",
        max: Severity::Medium,
        remediation: "drop the propagation option (the default is rprivate) unless the service must see or create host mounts",
        reference: "CIS Docker Benchmark 5.20",
    },
    Rule {
        id: "VOL005",
        title: "SELinux relabel of a system directory",
        max: Severity::High,
        remediation: "remove the z/Z option from this bind: relabeling a system directory can leave the host unusable; bind a dedicated directory instead",
        reference: "Docker documentation, bind mounts: \"Configure the SELinux label\"",
    },
    Rule {
        id: "VOL006",
        title: "volume writable by more than one container",
        max: Severity::Low,
        remediation: "mount the volume read-only (`:ro`) in every container that only reads it",
        reference: "KICS shared-volumes",
    },
    Rule {
        id: "VOL007",
        title: "credentials in volume driver options",
        max: Severity::High,
        remediation: "anyone who can inspect the volume reads these options: mount the share on the host with a root-only credentials file and bind-mount it, or use a volume plugin that takes secrets; then recreate the volume and change the password",
        reference: "Docker documentation, volumes: \"Create CIFS/Samba volumes\"; mount.cifs(8)",
    },
    Rule {
        id: "VOL008",
        title: "network filesystem volume without encryption",
        max: Severity::High,
        remediation: "encrypt the transport: NFS `sec=krb5p` (or `xprtsec=tls`), CIFS `seal` with `vers=3.0` or later",
        reference: "nfs(5); mount.cifs(8)",
    },
    Rule {
        id: "VOL009",
        title: "non-local or cluster volume driver",
        max: Severity::Info,
        remediation: "make sure the driver's storage is backed up and access-controlled on its own; volsafe backs up the content it sees",
        reference: "-",
    },
    Rule {
        id: "RUN001",
        title: "privileged container holds the volume",
        max: Severity::Critical,
        remediation: "drop `privileged`; add only the capabilities and devices the service needs",
        reference: "CIS Docker Benchmark 5.5; KICS privileged-containers; trivy KSV017",
    },
    Rule {
        id: "RUN002",
        title: "dangerous capabilities added",
        max: Severity::High,
        remediation: "remove the capability from cap_add; most services need none of these",
        reference: "CIS Docker Benchmark 5.4",
    },
    Rule {
        id: "RUN003",
        title: "host namespaces shared",
        max: Severity::High,
        remediation: "remove the `host` namespace mode so the container gets its own namespace",
        reference: "CIS Docker Benchmark 5.16, 5.17, 5.21, 5.31",
    },
    Rule {
        id: "RUN004",
        title: "security profile disabled",
        max: Severity::High,
        remediation: "remove the `unconfined`/`disable` security option; write a custom profile if the default one blocks the service",
        reference: "CIS Docker Benchmark 5.22",
    },
    Rule {
        id: "RUN005",
        title: "no-new-privileges not set",
        max: Severity::Low,
        remediation: "add `--security-opt no-new-privileges` (compose: `security_opt: [\"no-new-privileges:true\"]`); a daemon-wide default (`no-new-privileges` in daemon.json) is not visible to this check",
        reference: "CIS Docker Benchmark 5.26",
    },
    Rule {
        id: "RUN006",
        title: "writable root filesystem",
        max: Severity::Low,
        remediation: "run with `--read-only` (compose: `read_only: true`) and give the service tmpfs or volumes for the paths it writes",
        reference: "CIS Docker Benchmark 5.13",
    },
    Rule {
        id: "RUN007",
        title: "host devices exposed",
        max: Severity::Medium,
        remediation: "remove the device or the device cgroup rule unless the service needs it",
        reference: "CIS Docker Benchmark 5.18",
    },
    Rule {
        id: "NET001",
        title: "host network mode",
        max: Severity::High,
        remediation: "use a user-defined network and publish only the ports the service needs",
        reference: "CIS Docker Benchmark 5.10",
    },
    Rule {
        id: "NET002",
        title: "port published on all interfaces",
        max: Severity::High,
        remediation: "bind the port to one address (`127.0.0.1:PORT:PORT`) or reach the service over a user-defined network",
        reference: "CIS Docker Benchmark 5.14",
    },
    Rule {
        id: "NET003",
        title: "privileged host port (<1024)",
        max: Severity::Low,
        remediation: "publish on a host port of 1024 or above, or put a reverse proxy in front",
        reference: "CIS Docker Benchmark 5.8",
    },
    Rule {
        id: "NET004",
        title: "container on the default bridge",
        max: Severity::Low,
        remediation: "attach the container to a user-defined network; the default bridge lets every container on it reach the others",
        reference: "CIS Docker Benchmark 5.30",
    },
    Rule {
        id: "ENG001",
        title: "Docker API over plain TCP",
        max: Severity::Critical,
        remediation: "reach the daemon over its unix socket, ssh://, or TCP with TLS client certificates (port 2376, DOCKER_TLS_VERIFY=1)",
        reference: "docker-bench-security 2.7; CIS Docker Benchmark 2.6",
    },
    Rule {
        id: "BAK001",
        title: "anonymous volume holds data",
        max: Severity::High,
        remediation: "give the volume a name (`-v NAME:/path`, or a named volume in compose) so it can be backed up and survives the container",
        reference: "moby: com.docker.volume.anonymous label",
    },
    Rule {
        id: "BAK002",
        title: "data in bind or tmpfs mounts is not in any volume backup",
        max: Severity::Info,
        remediation: "back up the host directory with a file-level tool, or move the data into a named volume",
        reference: "-",
    },
    Rule {
        id: "BAK003",
        title: "dangling named volume",
        max: Severity::Info,
        remediation: "back it up and remove it if it is no longer needed (`docker volume rm`)",
        reference: "-",
    },
    Rule {
        id: "BAK004",
        title: "no recent successful backup",
        max: Severity::High,
        remediation: "back the volume up (`volsafe backup VOLUME --to DIR`) and schedule it",
        reference: "-",
    },
    Rule {
        id: "BAK005",
        title: "volume written by a running container during backup",
        max: Severity::Low,
        remediation: "stop the container for the backup (`--stop-containers` or the label volsafe.stop-during-backup=true) or dump the data with a pre-backup hook",
        reference: "-",
    },
];

/// The catalogue entry of `id`.
pub fn rule(id: &str) -> &'static Rule {
    RULES
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("unknown rule {id}"))
}

/// One thing found.
#[derive(Debug, Clone)]
pub struct Finding {
    pub rule: &'static Rule,
    pub severity: Severity,
    /// The container (or compose service) it is about.
    pub container: Option<String>,
    /// The named volumes it concerns: the one for volume findings, those the
    /// container mounts for container findings.
    pub volumes: Vec<String>,
    /// The mount's host side (bind path or volume name).
    pub source: Option<String>,
    /// The mount's container side.
    pub destination: Option<String>,
    /// What was found and why it matters, with the object named.
    pub message: String,
    /// What to change.
    pub remediation: String,
    /// Where it is in a compose file.
    pub location: Option<Location>,
    /// Set when an ignore entry matched.
    pub suppressed: Option<String>,
}

impl Finding {
    pub fn new(id: &str, severity: Severity, message: impl Into<String>) -> Self {
        let rule = rule(id);
        Finding {
            rule,
            severity,
            container: None,
            volumes: Vec::new(),
            source: None,
            destination: None,
            message: message.into(),
            remediation: rule.remediation.to_owned(),
            location: None,
            suppressed: None,
        }
    }
}

#[cfg(test)]
mod tests;
