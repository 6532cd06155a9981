//! The entries of a service that have a short (string) and a long
//! (mapping) syntax: ports, volume mounts and devices.
//!
//! The short syntax is where compose files get creative (Windows drive
//! letters, IPv6 addresses, port ranges, anonymous volumes with options),
//! so its parsers live here, apart from the mapping of services.

use std::collections::HashMap;
use std::rc::Rc;

use super::yaml::{Entry, Node};
use super::Ctx;
use crate::check::model::{Mount, MountKind, Port, PortRange};
use crate::check::paths::normalize;

/// Mount propagation options of the short volume syntax.
const PROPAGATION: &[&str] = &[
    "shared", "rshared", "slave", "rslave", "private", "rprivate",
];

/// Options the short volume syntax accepts after the destination.
const VOLUME_OPTIONS: &[&str] = &[
    "ro",
    "rw",
    "z",
    "Z",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "private",
    "rprivate",
    "nocopy",
    "consistent",
    "cached",
    "delegated",
];

impl Ctx<'_> {
    /// Device strings as written; the host path for the long syntax.
    pub(super) fn devices(&self, node: &Rc<Node>) -> Vec<String> {
        let mut devices = Vec::new();
        for item in Self::items(node) {
            let device = match self.entries(&item) {
                Some(long) => long
                    .iter()
                    .find(|e| e.key == "source")
                    .and_then(|e| self.text(&e.value)),
                None => self.text(&item),
            };
            match device {
                Some(d) if !d.is_empty() => devices.push(d),
                _ => self.skip(&item, "device"),
            }
        }
        devices
    }

    pub(super) fn port(&self, item: &Rc<Node>) -> Option<Port> {
        if let Some(long) = self.entries(item) {
            let field = |name: &str| {
                long.iter()
                    .find(|e| e.key == name)
                    .and_then(|e| self.text(&e.value))
                    .map(|t| t.trim().to_owned())
            };
            let container_port = parse_range(&field("target")?)?;
            let host_port = match field("published").filter(|p| !p.is_empty()) {
                Some(p) => Some(parse_range(&p)?),
                None => None,
            };
            let host_ip = field("host_ip").unwrap_or_default();
            let protocol = field("protocol")
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "tcp".to_owned());
            return Some(Port {
                host_ip: strip_brackets(&host_ip).to_owned(),
                host_port,
                container_port,
                protocol,
                location: self.location(item),
            });
        }
        let (host_ip, host_port, container_port, protocol) = parse_short_port(&self.text(item)?)?;
        Some(Port {
            host_ip,
            host_port,
            container_port,
            protocol,
            location: self.location(item),
        })
    }

    pub(super) fn mount(&self, item: &Rc<Node>, names: &HashMap<String, String>) -> Option<Mount> {
        if let Some(long) = self.entries(item) {
            return self.long_mount(item, &long, names);
        }
        let spec = self.text(item)?;
        let parts = split_volume(spec.trim());
        let (source, destination, mode) = match parts.as_slice() {
            [dst] => ("", dst.as_str(), ""),
            // `/data:ro`: an anonymous volume with options.
            [dst, mode] if dst.starts_with('/') && is_volume_mode(mode) => {
                ("", dst.as_str(), mode.as_str())
            }
            [src, dst] => (src.as_str(), dst.as_str(), ""),
            [src, dst, mode] => (src.as_str(), dst.as_str(), mode.as_str()),
            _ => return None,
        };
        if destination.is_empty() {
            return None;
        }
        let mut mount = Mount {
            kind: MountKind::Volume,
            source: String::new(),
            destination: destination.to_owned(),
            rw: true,
            propagation: String::new(),
            mode: mode.to_owned(),
            location: self.location(item),
        };
        if is_host_path(source) {
            mount.kind = MountKind::Bind;
            mount.source = self.bind_source(source);
        } else if !source.is_empty() {
            mount.source = names
                .get(source)
                .cloned()
                .unwrap_or_else(|| source.to_owned());
        }
        for option in mode.split(',').map(str::trim) {
            match option {
                "ro" => mount.rw = false,
                "rw" => mount.rw = true,
                p if PROPAGATION.contains(&p) => mount.propagation = p.to_owned(),
                _ => {}
            }
        }
        Some(mount)
    }

    fn long_mount(
        &self,
        item: &Node,
        long: &[Entry],
        names: &HashMap<String, String>,
    ) -> Option<Mount> {
        let field = |name: &str| long.iter().find(|e| e.key == name).map(|e| &e.value);
        let text = |name: &str| {
            field(name)
                .and_then(|v| self.text(v))
                .map(|t| t.trim().to_owned())
        };
        let destination = text("target").filter(|t| !t.is_empty())?;
        let source = text("source").unwrap_or_default();
        let kind = match text("type").as_deref() {
            Some("bind") => MountKind::Bind,
            Some("volume") => MountKind::Volume,
            Some("tmpfs") => MountKind::Tmpfs,
            None | Some("") if is_host_path(&source) => MountKind::Bind,
            None | Some("") => MountKind::Volume,
            Some(_) => MountKind::Other,
        };
        let mut mount = Mount {
            kind,
            source: String::new(),
            destination,
            rw: !field("read_only").is_some_and(|v| self.boolean(v)),
            propagation: String::new(),
            mode: String::new(),
            location: self.location(item),
        };
        match kind {
            MountKind::Bind if !source.is_empty() => mount.source = self.bind_source(&source),
            // A bind without a source is incomplete: compose rejects it.
            MountKind::Bind => return None,
            MountKind::Tmpfs => {}
            MountKind::Volume if !source.is_empty() => {
                mount.source = names.get(&source).cloned().unwrap_or(source);
            }
            MountKind::Volume => {}
            MountKind::Other => mount.source = source,
        }
        if let Some(bind) = field("bind").and_then(|b| self.entries(b)) {
            for option in &bind {
                match option.key.as_str() {
                    "propagation" => mount.propagation = self.string(&option.value),
                    "selinux" => mount.mode = self.string(&option.value),
                    _ => {}
                }
            }
        }
        Some(mount)
    }

    /// A bind source made absolute: `~` expanded, relative paths taken from
    /// the compose file's directory. Windows paths stay as written.
    fn bind_source(&self, source: &str) -> String {
        if source == "~" || source.starts_with("~/") {
            return match (self.env)("HOME").filter(|h| !h.is_empty()) {
                Some(home) => normalize(&format!("{home}/{}", &source[1..])),
                None => {
                    tracing::debug!(file = %self.file.display(), "HOME is not set; `~` left as written");
                    source.to_owned()
                }
            };
        }
        if source.starts_with('~') || source.starts_with('\\') || is_windows_absolute(source) {
            return source.to_owned();
        }
        if source.starts_with('/') {
            return normalize(source);
        }
        normalize(&format!("{}/{source}", self.dir))
    }
}

/// `C:\…` or `C:/…`.
fn is_windows_absolute(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && (b[2] == b'\\' || b[2] == b'/')
}

/// Whether a short-syntax volume source is a host path rather than a
/// volume name. Any leading `.` counts (`./x`, `../x`, `.`, and `.x`, which
/// cannot be a volume name), as does `~`.
fn is_host_path(source: &str) -> bool {
    source.starts_with('/')
        || source.starts_with('.')
        || source.starts_with('~')
        || source.starts_with('\\')
        || is_windows_absolute(source)
}

fn is_volume_mode(mode: &str) -> bool {
    !mode.is_empty() && mode.split(',').all(|o| VOLUME_OPTIONS.contains(&o.trim()))
}

/// A short volume spec split on `:`, keeping Windows drive letters
/// (`C:\data`, and `C:/data` when more parts follow) with their path.
fn split_volume(spec: &str) -> Vec<String> {
    let raw: Vec<&str> = spec.split(':').collect();
    let mut parts = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let part = raw[i];
        let drive = part.len() == 1 && part.as_bytes()[0].is_ascii_alphabetic();
        if drive {
            if let Some(next) = raw.get(i + 1) {
                if next.starts_with('\\') || (next.starts_with('/') && raw.len() >= 3) {
                    parts.push(format!("{part}:{next}"));
                    i += 2;
                    continue;
                }
            }
        }
        parts.push(part.to_owned());
        i += 1;
    }
    parts
}

fn strip_brackets(ip: &str) -> &str {
    ip.strip_prefix('[')
        .and_then(|i| i.strip_suffix(']'))
        .unwrap_or(ip)
}

/// `80` or `8000-8010`.
fn parse_range(s: &str) -> Option<PortRange> {
    let s = s.trim();
    match s.split_once('-') {
        Some((a, b)) => {
            let start = parse_port(a)?;
            let end = parse_port(b)?;
            (start <= end).then_some(PortRange { start, end })
        }
        None => parse_port(s).map(PortRange::one),
    }
}

fn parse_port(s: &str) -> Option<u16> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `[[IP:][HOST]:]CONTAINER[/PROTOCOL]` into host IP (brackets removed),
/// host port, container port and protocol.
fn parse_short_port(spec: &str) -> Option<(String, Option<PortRange>, PortRange, String)> {
    let spec = spec.trim();
    let (address, protocol) = match spec.rsplit_once('/') {
        Some((a, p)) if !p.trim().is_empty() => (a, p.trim()),
        Some(_) => return None,
        None => (spec, "tcp"),
    };
    let (ip, host, container) = if let Some(rest) = address.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        let (host, container) = after.strip_prefix(':')?.split_once(':')?;
        (ip, host, container)
    } else {
        let mut parts = address.rsplitn(3, ':');
        let container = parts.next()?;
        let host = parts.next().unwrap_or("");
        let ip = parts.next().unwrap_or("");
        (ip, host, container)
    };
    let container = parse_range(container)?;
    let host = if host.trim().is_empty() {
        None
    } else {
        Some(parse_range(host)?)
    };
    Some((
        strip_brackets(ip.trim()).to_owned(),
        host,
        container,
        protocol.to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use crate::check::compose::parse;
    use crate::check::compose::tests::{env, host, mount, service};
    use crate::check::model::MountKind;
    use crate::check::paths::normalize;

    #[test]
    fn a_bind_without_source_is_skipped() {
        let h = host("services:\n  app:\n    volumes:\n      - type: bind\n        target: /x\n");
        assert!(service(&h, "app").mounts.is_empty());
    }

    #[test]
    fn short_volume_syntax() {
        let h = host(
            "services:
  app:
    volumes:
      - /usr/src/app/node_modules
      - ./data:/data
      - ../shared/:/shared
      - .:/code
      - ~/x:/x
      - ~:/home
      - /etc:/etc:ro,Z
      - /mnt:/mnt:rshared
      - db:/var/lib/postgresql/data
      - cache:/cache:ro
      - /run/docker.sock:/var/run/docker.sock
      - /data:ro
volumes:
  db:
    name: prod_db
  cache:
",
        );
        let c = service(&h, "app");
        assert_eq!(c.mounts.len(), 12);

        let anon = mount(c, "/usr/src/app/node_modules");
        assert_eq!(anon.kind, MountKind::Volume);
        assert_eq!(anon.source, "");
        assert!(anon.rw);

        let data = mount(c, "/data");
        assert_eq!(data.kind, MountKind::Bind);
        assert_eq!(data.source, "/srv/app/data");
        assert_eq!(mount(c, "/shared").source, "/srv/shared");
        assert_eq!(mount(c, "/code").source, "/srv/app");
        assert_eq!(mount(c, "/x").source, "/home/me/x");
        assert_eq!(mount(c, "/home").source, "/home/me");

        let etc = mount(c, "/etc");
        assert_eq!(etc.kind, MountKind::Bind);
        assert!(!etc.rw);
        assert_eq!(etc.mode, "ro,Z");
        assert!(etc.mode.split(',').any(|o| o == "Z"));

        let mnt = mount(c, "/mnt");
        assert_eq!(mnt.propagation, "rshared");
        assert!(mnt.rw);

        let db = mount(c, "/var/lib/postgresql/data");
        assert_eq!(db.kind, MountKind::Volume);
        assert_eq!(db.source, "prod_db");
        let cache = mount(c, "/cache");
        assert_eq!(cache.source, "cache");
        assert!(!cache.rw);

        let sock = mount(c, "/var/run/docker.sock");
        assert_eq!(
            (sock.kind, sock.source.as_str()),
            (MountKind::Bind, "/run/docker.sock")
        );

        let anon_ro = c.mounts.last().unwrap();
        assert_eq!(
            (
                anon_ro.kind,
                anon_ro.source.as_str(),
                anon_ro.destination.as_str(),
                anon_ro.rw
            ),
            (MountKind::Volume, "", "/data", false)
        );
    }

    #[test]
    fn relative_file_path_resolves_against_cwd() {
        let h = parse(
            Path::new("docker-compose.yml"),
            "services: {a: {volumes: ['./d:/d']}}",
            &env,
        )
        .unwrap();
        let expected = normalize(&format!(
            "{}/d",
            std::env::current_dir().unwrap().to_string_lossy()
        ));
        assert_eq!(h.containers[0].mounts[0].source, expected);
        assert_eq!(
            h.containers[0].location.as_ref().unwrap().file,
            PathBuf::from("docker-compose.yml")
        );
    }

    #[test]
    fn long_volume_syntax() {
        let h = host(
            "services:
  app:
    volumes:
      - type: bind
        source: ./conf
        target: /conf
        read_only: true
        bind:
          propagation: rslave
          selinux: z
          create_host_path: true
      - type: volume
        source: db
        target: /db
        volume:
          nocopy: true
      - type: volume
        target: /anon
      - type: tmpfs
        target: /tmp
      - type: npipe
        source: \\\\.\\pipe\\docker_engine
        target: \\\\.\\pipe\\docker_engine
      - type: bind
        source: /
        target: /host
volumes:
  db:
    name: real_db
",
        );
        let c = service(&h, "app");
        let conf = mount(c, "/conf");
        assert_eq!(conf.kind, MountKind::Bind);
        assert_eq!(conf.source, "/srv/app/conf");
        assert!(!conf.rw);
        assert_eq!(conf.propagation, "rslave");
        assert_eq!(conf.mode, "z");
        let db = mount(c, "/db");
        assert_eq!(
            (db.kind, db.source.as_str(), db.rw),
            (MountKind::Volume, "real_db", true)
        );
        let anon = mount(c, "/anon");
        assert_eq!((anon.kind, anon.source.as_str()), (MountKind::Volume, ""));
        assert_eq!(mount(c, "/tmp").kind, MountKind::Tmpfs);
        assert_eq!(c.mounts[4].kind, MountKind::Other);
        assert_eq!(mount(c, "/host").source, "/");
    }

    #[test]
    fn windows_paths_do_not_crash() {
        let h = host(
            "services:\n  w:\n    volumes:\n      - 'C:\\data:/data'\n      - C:/Users/me:/me:ro\n      - 'C:\\only'\n      - 'c:\\a:c:\\b'\n",
        );
        let c = service(&h, "w");
        let data = mount(c, "/data");
        assert_eq!(
            (data.kind, data.source.as_str()),
            (MountKind::Bind, "C:\\data")
        );
        let me = mount(c, "/me");
        assert_eq!(
            (me.kind, me.source.as_str(), me.rw),
            (MountKind::Bind, "C:/Users/me", false)
        );
        assert_eq!(c.mounts.len(), 4);
    }

    #[test]
    fn ports_in_all_forms() {
        let h = host(
            r#"services:
  db:
    ports:
      - 5432
      - "5432"
      - "5433:5432"
      - "0.0.0.0:5434:5432"
      - "127.0.0.1:5435:5432"
      - "[::1]:5436:5432"
      - "::1:5437:5432"
      - "8000-8010:8000-8010"
      - "5438:5432/udp"
      - "127.0.0.1::5432"
      - "9000-9010:80"
      - 8000-8010
      - "${PORT}:5432"
      - "${NOPE}:${NOPE}"
      - "garbage"
      - "70000:80"
      - target: 80
        published: "8080"
        host_ip: 127.0.0.1
        protocol: udp
        mode: host
      - target: 443
        published: 8443-8444
        host_ip: "[::1]"
      - target: 22
      - published: 1
"#,
        );
        let c = service(&h, "db");
        let got: Vec<(String, Option<String>, String, String)> = c
            .ports
            .iter()
            .map(|p| {
                (
                    p.host_ip.clone(),
                    p.host_port.map(|r| r.to_string()),
                    p.container_port.to_string(),
                    p.protocol.clone(),
                )
            })
            .collect();
        let want = |ip: &str, host: Option<&str>, cont: &str, proto: &str| {
            (
                ip.to_owned(),
                host.map(str::to_owned),
                cont.to_owned(),
                proto.to_owned(),
            )
        };
        assert_eq!(
            got,
            vec![
                want("", None, "5432", "tcp"),
                want("", None, "5432", "tcp"),
                want("", Some("5433"), "5432", "tcp"),
                want("0.0.0.0", Some("5434"), "5432", "tcp"),
                want("127.0.0.1", Some("5435"), "5432", "tcp"),
                want("::1", Some("5436"), "5432", "tcp"),
                want("::1", Some("5437"), "5432", "tcp"),
                want("", Some("8000-8010"), "8000-8010", "tcp"),
                want("", Some("5438"), "5432", "udp"),
                want("127.0.0.1", None, "5432", "tcp"),
                want("", Some("9000-9010"), "80", "tcp"),
                want("", None, "8000-8010", "tcp"),
                want("", Some("5432"), "5432", "tcp"),
                want("127.0.0.1", Some("8080"), "80", "udp"),
                want("::1", Some("8443-8444"), "443", "tcp"),
                want("", None, "22", "tcp"),
            ]
        );
        // Locations: each port's list item.
        assert_eq!(c.ports[0].location.as_ref().unwrap().line, 4);
        assert_eq!(c.ports[4].location.as_ref().unwrap().line, 8);
        assert_eq!(c.ports[4].location.as_ref().unwrap().column, 9);
        assert_eq!(c.ports[13].location.as_ref().unwrap().line, 20);
    }
}
