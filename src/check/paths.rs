//! Judging the host side of a bind mount (the table "Matching host paths"
//! in `docs/checks.md`).
//!
//! Paths are compared lexically and by whole components, after resolving
//! `.` and `..`: `/etc2` is not under `/etc`, `/variable` is not under
//! `/var`. Only the host side is ever judged.

use super::Severity;

/// File names of container runtime API sockets, wherever they live.
const SOCKETS: &[&str] = &[
    "docker.sock",
    "podman.sock",
    "containerd.sock",
    "crio.sock",
    "cri-dockerd.sock",
    "dockershim.sock",
    "buildkitd.sock",
];

/// Directories that hold a runtime socket (besides `/run/user/<uid>`).
const SOCKET_DIRS: &[&str] = &[
    "/run",
    "/var/run",
    "/run/containerd",
    "/var/run/containerd",
    "/run/podman",
    "/var/run/podman",
    "/run/crio",
    "/var/run/crio",
    "/run/docker",
    "/var/run/docker",
];

/// System directories: their content controls the host.
const SYSTEM: &[&str] = &[
    "/etc", "/boot", "/proc", "/sys", "/dev", "/root", "/usr", "/lib", "/lib64", "/lib32",
    "/libx32", "/bin", "/sbin",
];

/// Directories of users' and services' data: worth knowing, not alarming.
const DATA: &[&str] = &["/home", "/srv", "/mnt", "/media", "/var"];

/// Other places that hold the containerd and Docker state.
const RUNTIME_ROOTS: &[&str] = &["/var/lib/containerd"];

/// Directories that must never be relabeled as a whole (VOL005) besides
/// the sensitive ones.
const RELABEL_TOPS: &[&str] = &[
    "/home", "/srv", "/mnt", "/media", "/var", "/tmp", "/opt", "/run",
];

/// What a bind mount's host source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostPath {
    /// A runtime socket or the directory holding one.
    Socket,
    /// `/` itself.
    Root,
    /// The daemon's data root, something inside it, or a directory holding it.
    DataRoot,
    /// A system directory or something inside it.
    System,
    /// Home, service data, mount points, other `/var` content.
    Data,
    /// Nothing the checks judge.
    Ordinary,
}

impl HostPath {
    /// The finding a bind of this path gives: rule ID and severity for a
    /// read-write and a read-only mount.
    pub fn finding(self, rw: bool) -> Option<(&'static str, Severity)> {
        let (id, rw_sev, ro_sev) = match self {
            HostPath::Socket => ("VOL001", Severity::Critical, Severity::Critical),
            HostPath::Root => ("VOL002", Severity::Critical, Severity::High),
            HostPath::DataRoot => ("VOL003", Severity::High, Severity::High),
            HostPath::System => ("VOL002", Severity::High, Severity::Medium),
            HostPath::Data => ("VOL002", Severity::Info, Severity::Info),
            HostPath::Ordinary => return None,
        };
        Some((id, if rw { rw_sev } else { ro_sev }))
    }

    /// Words for a message: why it matters.
    pub fn describe(self) -> &'static str {
        match self {
            HostPath::Socket => "through a container runtime API socket, whoever controls the container controls the host (read-only does not help)",
            HostPath::Root => "the container sees the host's whole file system",
            HostPath::DataRoot => "the container reaches the Docker data root: every volume, image and container file system on the host",
            HostPath::System => "the container reaches a host system directory",
            HostPath::Data => "host data outside any volume",
            HostPath::Ordinary => "a host directory",
        }
    }
}

/// `path` with `.`, `..`, repeated and trailing `/` resolved, lexically.
/// A relative path stays relative.
pub fn normalize(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_owned()
    } else {
        joined
    }
}

/// Whether `path` is `base` or inside it, by whole components. Both must be
/// normalized.
pub fn is_within(path: &str, base: &str) -> bool {
    if base == "/" {
        return path.starts_with('/');
    }
    path == base
        || path
            .strip_prefix(base)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// `/run/user/1000` or `/var/run/user/1000`.
fn is_user_runtime_dir(path: &str) -> bool {
    let rest = path
        .strip_prefix("/run/user/")
        .or_else(|| path.strip_prefix("/var/run/user/"));
    rest.is_some_and(|uid| !uid.is_empty() && uid.bytes().all(|b| b.is_ascii_digit()))
}

fn is_socket(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or("");
    SOCKETS.contains(&name)
        || SOCKET_DIRS.contains(&path)
        || is_user_runtime_dir(path)
        || path.ends_with("/.docker/run")
        || (is_user_runtime_dir(path.trim_end_matches("/podman")) && path.ends_with("/podman"))
}

/// Classifies a bind mount's host source. `data_root` is the daemon's
/// `DockerRootDir`.
pub fn classify(source: &str, data_root: &str) -> HostPath {
    let path = normalize(source);
    if !path.starts_with('/') {
        return HostPath::Ordinary;
    }
    let data_root = normalize(data_root);
    if is_socket(&path) {
        return HostPath::Socket;
    }
    if path == "/" {
        return HostPath::Root;
    }
    let roots = std::iter::once(data_root.as_str()).chain(RUNTIME_ROOTS.iter().copied());
    for root in roots {
        if is_within(&path, root) || is_within(root, &path) {
            return HostPath::DataRoot;
        }
    }
    if SYSTEM.iter().any(|s| is_within(&path, s)) {
        return HostPath::System;
    }
    if DATA.iter().any(|s| is_within(&path, s)) && path != "/var" {
        return HostPath::Data;
    }
    HostPath::Ordinary
}

/// Whether relabeling this host path (`:z`/`:Z`) endangers the host: a
/// sensitive path, or a whole top-level data directory such as `/home`.
pub fn relabel_is_dangerous(source: &str, data_root: &str) -> bool {
    let path = normalize(source);
    match classify(&path, data_root) {
        HostPath::Socket | HostPath::Root | HostPath::DataRoot | HostPath::System => true,
        HostPath::Data | HostPath::Ordinary => RELABEL_TOPS.contains(&path.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "/var/lib/docker";

    #[test]
    fn normalizes_lexically() {
        assert_eq!(normalize("/etc/"), "/etc");
        assert_eq!(normalize("/srv/../etc//ssl/./"), "/etc/ssl");
        assert_eq!(normalize("/.."), "/");
        assert_eq!(normalize("//"), "/");
        assert_eq!(normalize("./data"), "data");
        assert_eq!(normalize("../x"), "../x");
    }

    #[test]
    fn whole_components_only() {
        assert!(is_within("/etc/ssl", "/etc"));
        assert!(is_within("/etc", "/etc"));
        assert!(!is_within("/etc2", "/etc"));
        assert!(!is_within("/variable", "/var"));
        assert!(is_within("/anything", "/"));
    }

    #[test]
    fn sockets_wherever_they_live() {
        for p in [
            "/var/run/docker.sock",
            "/run/docker.sock",
            "/run/user/1000/docker.sock",
            "/run/user/1000/podman/podman.sock",
            "/run/containerd/containerd.sock",
            "/home/me/.docker/run/docker.sock",
            "/home/me/.docker/run",
            "/run",
            "/var/run/",
            "/run/user/1000",
            "/run/user/1000/podman",
            "/run/containerd",
        ] {
            assert_eq!(classify(p, ROOT), HostPath::Socket, "{p}");
        }
        assert_eq!(classify("/run/user", ROOT), HostPath::Ordinary);
        assert_eq!(classify("/run/secrets", ROOT), HostPath::Ordinary);
    }

    #[test]
    fn the_table_in_order() {
        assert_eq!(classify("/", ROOT), HostPath::Root);
        assert_eq!(classify("/var/lib/docker", ROOT), HostPath::DataRoot);
        assert_eq!(
            classify("/var/lib/docker/volumes/x/_data", ROOT),
            HostPath::DataRoot
        );
        assert_eq!(classify("/var", ROOT), HostPath::DataRoot);
        assert_eq!(classify("/var/lib", ROOT), HostPath::DataRoot);
        assert_eq!(classify("/var/lib/containerd", ROOT), HostPath::DataRoot);
        assert_eq!(classify("/srv", "/srv/docker"), HostPath::DataRoot);
        assert_eq!(classify("/etc", ROOT), HostPath::System);
        assert_eq!(classify("/etc/ssl/certs", ROOT), HostPath::System);
        assert_eq!(classify("/dev/sda", ROOT), HostPath::System);
        assert_eq!(classify("/home/me/app", ROOT), HostPath::Data);
        assert_eq!(classify("/var/log", ROOT), HostPath::Data);
        assert_eq!(classify("/srv/app", ROOT), HostPath::Data);
    }

    #[test]
    fn near_misses_are_ordinary() {
        for p in [
            "/etc2",
            "/variable",
            "/opt/etc",
            "/data/var",
            "/usrdata",
            "/tmp/x",
            "relative/etc",
        ] {
            assert_eq!(classify(p, ROOT), HostPath::Ordinary, "{p}");
        }
    }

    #[test]
    fn severities() {
        assert_eq!(
            HostPath::Root.finding(true),
            Some(("VOL002", Severity::Critical))
        );
        assert_eq!(
            HostPath::Root.finding(false),
            Some(("VOL002", Severity::High))
        );
        assert_eq!(
            HostPath::System.finding(false),
            Some(("VOL002", Severity::Medium))
        );
        assert_eq!(
            HostPath::Socket.finding(false),
            Some(("VOL001", Severity::Critical))
        );
        assert_eq!(
            HostPath::DataRoot.finding(false),
            Some(("VOL003", Severity::High))
        );
        assert_eq!(HostPath::Ordinary.finding(true), None);
    }

    #[test]
    fn relabel() {
        assert!(relabel_is_dangerous("/usr", ROOT));
        assert!(relabel_is_dangerous("/home", ROOT));
        assert!(relabel_is_dangerous("/home/", ROOT));
        assert!(!relabel_is_dangerous("/home/me/app", ROOT));
        assert!(!relabel_is_dangerous("/srv/app", ROOT));
    }
}
