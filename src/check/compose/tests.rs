//! Tests of reading a whole compose file: services, top-level volumes,
//! errors and robustness. The helpers here are shared with the tests of
//! the other compose modules, which sit next to the code they test.

use std::path::{Path, PathBuf};

use super::{load, parse};
use crate::check::model::{Container, Host, Mount, MountKind};
use crate::error::{find_user_error, Kind};

const FILE: &str = "/srv/app/docker-compose.yml";

pub(super) fn env(name: &str) -> Option<String> {
    match name {
        "HOME" => Some("/home/me".to_owned()),
        "TAG" => Some("1.2".to_owned()),
        "EMPTY" => Some(String::new()),
        "PORT" => Some("5432".to_owned()),
        "PASS" => Some("s3cret".to_owned()),
        _ => None,
    }
}

pub(super) fn host(text: &str) -> Host {
    parse(Path::new(FILE), text, &env).unwrap()
}

pub(super) fn service<'h>(host: &'h Host, name: &str) -> &'h Container {
    host.containers.iter().find(|c| c.name == name).unwrap()
}

fn usage_message(text: &str) -> String {
    let err = parse(Path::new(FILE), text, &env).unwrap_err();
    let user = find_user_error(&err).expect("a usage error");
    assert!(matches!(user.kind, Kind::Usage));
    assert!(user.hint.is_some());
    user.message.clone()
}

pub(super) fn mount<'c>(c: &'c Container, destination: &str) -> &'c Mount {
    c.mounts
        .iter()
        .find(|m| m.destination == destination)
        .unwrap_or_else(|| panic!("no mount at {destination}: {:?}", c.mounts))
}

#[test]
fn volumes_and_ports_must_be_lists() {
    let m = usage_message("services:\n  app:\n    volumes: \"notalist\"\n");
    assert!(
        m.contains("line 3") && m.contains("`volumes` must be a list"),
        "{m}"
    );
    let m = usage_message("services:\n  app:\n    ports: 80\n");
    assert!(m.contains("`ports` must be a list"), "{m}");
}

#[test]
fn tmpfs_string_and_list() {
    let h = host("services:\n  a:\n    tmpfs: /run:size=64m\n  b:\n    tmpfs:\n      - /tmp\n      - /var/cache:mode=1777\n");
    let a = service(&h, "a");
    assert_eq!(a.mounts.len(), 1);
    assert_eq!(
        (a.mounts[0].kind, a.mounts[0].destination.as_str()),
        (MountKind::Tmpfs, "/run")
    );
    let b = service(&h, "b");
    let dests: Vec<_> = b.mounts.iter().map(|m| m.destination.as_str()).collect();
    assert_eq!(dests, ["/tmp", "/var/cache"]);
    assert_eq!(b.mounts[1].location.as_ref().unwrap().line, 7);
}

#[test]
fn top_level_volumes() {
    let h = host(
        "volumes:
  nfs:
    driver: local
    driver_opts:
      type: nfs
      o: addr=10.0.0.1,rw,nfsvers=4,password=${PASS}
      device: :/export
      size: 100
      flag: true
  plain:
  named:
    name: other_name
    labels:
      - a=b
  ext:
    external: true
    driver_opts:
      type: nfs
  legacy:
    external:
      name: legacy_real
  custom:
    driver: rexray/ebs
    labels:
      team: x
",
    );
    let names: Vec<_> = h.volumes.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        ["nfs", "plain", "other_name", "ext", "legacy_real", "custom"]
    );
    let nfs = &h.volumes[0];
    assert_eq!(nfs.driver, "local");
    assert_eq!(nfs.scope, "local");
    assert_eq!(nfs.options["type"], "nfs");
    assert_eq!(
        nfs.options["o"],
        "addr=10.0.0.1,rw,nfsvers=4,password=s3cret"
    );
    assert_eq!(nfs.options["device"], ":/export");
    assert_eq!(nfs.options["size"], "100");
    assert_eq!(nfs.options["flag"], "true");
    assert_eq!(nfs.location.as_ref().unwrap().line, 2);
    assert_eq!(nfs.location.as_ref().unwrap().column, 3);
    assert_eq!(nfs.compose_key, None);
    let plain = &h.volumes[1];
    assert_eq!((plain.driver.as_str(), plain.options.len()), ("local", 0));
    let named = &h.volumes[2];
    assert_eq!(named.compose_key.as_deref(), Some("named"));
    assert_eq!(named.labels["a"], "b");
    let ext = &h.volumes[3];
    assert_eq!((ext.driver.as_str(), ext.options.len()), ("", 0));
    assert_eq!(h.volumes[4].driver, "");
    assert_eq!(h.volumes[4].compose_key.as_deref(), Some("legacy"));
    assert_eq!(h.volumes[5].driver, "rexray/ebs");
    assert_eq!(h.volumes[5].labels["team"], "x");
    assert!(h.containers.is_empty());
    assert_eq!(h.data_root, "/var/lib/docker");
    assert!(h.cgroup_v2);
    assert!(h.docker_host.is_none());
    assert!(h.dangling.is_empty());
}

#[test]
fn service_security_fields() {
    let h = host(
        "services:
  bad:
    image: x
    privileged: true
    cap_add: [SYS_ADMIN, cap_net_admin]
    security_opt:
      - seccomp=unconfined
      - no-new-privileges:true
    pid: host
    ipc: host
    uts: host
    userns_mode: host
    cgroup: host
    network_mode: host
    read_only: true
    devices:
      - /dev/fuse
      - /dev/sda:/dev/xvda:rwm
      - source: /dev/ttyUSB0
        target: /dev/ttyUSB0
    device_cgroup_rules: ['c 1:3 mr']
    labels:
      a: 1
      b:
    expose: [80]
  bridge:
    network_mode: bridge
    labels: [x=y, z]
  plain:
    image: nginx
",
    );
    let bad = service(&h, "bad");
    assert!(bad.privileged);
    assert_eq!(bad.cap_add, ["SYS_ADMIN", "cap_net_admin"]);
    assert_eq!(
        bad.security_opt,
        ["seccomp=unconfined", "no-new-privileges:true"]
    );
    assert_eq!(
        [
            &bad.pid_mode,
            &bad.ipc_mode,
            &bad.uts_mode,
            &bad.userns_mode,
            &bad.cgroupns_mode
        ],
        ["host"; 5]
    );
    assert_eq!(bad.network_mode, "host");
    assert!(!bad.default_bridge);
    assert!(bad.readonly_rootfs);
    assert_eq!(
        bad.devices,
        ["/dev/fuse", "/dev/sda:/dev/xvda:rwm", "/dev/ttyUSB0"]
    );
    assert_eq!(bad.device_cgroup_rules, ["c 1:3 mr"]);
    assert_eq!(bad.labels["a"], "1");
    assert_eq!(bad.labels["b"], "");
    assert!(bad.exposed.is_empty());
    assert_eq!(
        (
            bad.id.as_str(),
            bad.running,
            bad.auto_remove,
            bad.publish_all
        ),
        ("", false, false, false)
    );

    let bridge = service(&h, "bridge");
    assert!(bridge.default_bridge);
    assert_eq!(bridge.labels["x"], "y");
    assert_eq!(bridge.labels["z"], "");

    let plain = service(&h, "plain");
    assert!(!plain.privileged);
    assert_eq!(plain.network_mode, "");
    assert!(!plain.default_bridge);
    assert!(!plain.readonly_rootfs);
    assert_eq!(plain.location.as_ref().unwrap().line, 29);
    assert_eq!(plain.location.as_ref().unwrap().column, 3);
    assert_eq!(plain.location.as_ref().unwrap().file, PathBuf::from(FILE));
}

#[test]
fn load_reads_dotenv_and_reports_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("compose.yaml");
    std::fs::write(
        &file,
        "services:\n  a:\n    network_mode: ${VOLSAFE_TEST_COMPOSE_NET_UNSET_XYZ}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "VOLSAFE_TEST_COMPOSE_NET_UNSET_XYZ=host\n",
    )
    .unwrap();
    let h = load(&file).unwrap();
    assert_eq!(h.containers[0].network_mode, "host");

    let err = load(&dir.path().join("missing.yml")).unwrap_err();
    let user = find_user_error(&err).unwrap();
    assert!(matches!(user.kind, Kind::Usage));
    assert!(user.message.contains("missing.yml"), "{}", user.message);

    let junk = dir.path().join("junk.yml");
    std::fs::write(&junk, b"\xff\xfe\x00garbage").unwrap();
    let err = load(&junk).unwrap_err();
    assert!(matches!(find_user_error(&err).unwrap().kind, Kind::Usage));
}

#[test]
fn no_services_and_null_services() {
    assert!(host("volumes:\n  a:\n").containers.is_empty());
    assert!(host("services:\n").containers.is_empty());
    assert!(host("name: x\nx-foo: 1\n").containers.is_empty());
    // `x-` keys are extensions only where keys are not user-defined:
    // under `services`, `x-ray` is a service.
    let h = host("services:\n  empty:\n  x-ray: {privileged: true}\n");
    assert_eq!(h.containers.len(), 2);
    assert_eq!(h.containers[0].name, "empty");
    assert!(h.containers[1].privileged);
}

#[test]
fn usage_errors_name_file_and_line() {
    let m = usage_message("");
    assert!(
        m.starts_with(&format!("compose file {FILE}: line 1:")),
        "{m}"
    );
    assert!(usage_message("# only a comment\n").contains("empty"));
    let m = usage_message("- a\n- b\n");
    assert!(m.contains("line 1") && m.contains("mapping"), "{m}");
    let m = usage_message("just a string");
    assert!(m.contains("mapping"), "{m}");
    let m = usage_message("version: '3'\n\nservices:\n  - web\n");
    assert!(m.contains("line 4") && m.contains("services"), "{m}");
    let m = usage_message("services:\n  web:\n\timage: x\n");
    assert!(m.contains("line 3"), "{m}");
    let m = usage_message("services:\n  web: [1, 2\n");
    assert!(m.contains(FILE) && m.contains("line"), "{m}");
    let m = usage_message("services:\n  web:\n    image: a\n    image: b\n");
    assert!(m.contains("line 4") && m.contains("twice"), "{m}");
    let m = usage_message("services:\n  web: just-a-string\n");
    assert!(m.contains("line 2") && m.contains("web"), "{m}");
    let m = usage_message("volumes: [a]\n");
    assert!(m.contains("volumes"), "{m}");
    let m = usage_message("a: *nope\n");
    assert!(m.contains("line 1"), "{m}");
    let m = usage_message("a: &x [*x]\n");
    assert!(m.contains("line 1"), "{m}");
    let deep = format!("a: {}{}", "[".repeat(5000), "]".repeat(5000));
    assert!(usage_message(&deep).contains("line 1"));
    let deep = format!("a: {}{}", "[".repeat(100), "]".repeat(100));
    let m = usage_message(&deep);
    assert!(m.contains("nested"), "{m}");
    let mut block = String::new();
    for depth in 0..300 {
        block.push_str(&" ".repeat(depth));
        block.push_str("- \n");
    }
    assert!(usage_message(&block.replace("- \n", "-\n")).contains("nested"));
    usage_message("\u{0}\u{1}\u{7f}\u{feff}junk: [}\n");
    usage_message("services:\n  a: !!binary \"AAEC\"\n");
}

#[test]
fn odd_values_are_skipped_not_fatal() {
    let h = host(
        "services:
  odd:
    privileged: maybe
    cap_add: {a: b}
    ports: [[1, 2], {}, {target: x}, '', ~, '[::1', '[::1]5432:5432', '1:2:3:4:5', '/tcp', '80/']
    volumes: [[a], {}, {target: ''}, '', ~, 'a:b:c:d', ':', ':/x']
    tmpfs: [{}, '']
    devices: [[], {target: /x}]
    labels: 7
    network_mode: [a]
    <<: 5
",
    );
    let odd = service(&h, "odd");
    assert!(!odd.privileged);
    assert!(odd.cap_add.is_empty());
    // ':/x' is an anonymous volume.
    assert_eq!(odd.mounts.len(), 1);
    assert_eq!(
        (
            odd.mounts[0].source.as_str(),
            odd.mounts[0].destination.as_str()
        ),
        ("", "/x")
    );
    // '1:2:3:4:5' reads as IPv6-ish host 1:2:3 best effort; nothing else parses.
    assert_eq!(odd.ports.len(), 1);
    assert!(odd.devices.is_empty());
    assert_eq!(odd.labels.len(), 1);
}

/// Random mutations of a real file: errors are fine, panics are not.
#[test]
fn fuzz_does_not_panic() {
    let seed_text = "x-c: &c\n  privileged: true\nservices:\n  web:\n    <<: *c\n    image: \"nginx:${TAG:-1}\"\n    ports: ['127.0.0.1:80:80', {target: 1, published: '2-3'}]\n    volumes:\n      - ./a:/a:ro,z\n      - {type: bind, source: ~/b, target: /b, bind: {propagation: shared}}\n    tmpfs: /t\nvolumes:\n  v: {driver_opts: {o: 'addr=1'}}\n";
    let alphabet: &[u8] = b" \t\n:-[]{}&*<>!|'\"$#,?%@`\\/.~0123456789az\x00\xc3\xa9";
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3000 {
        let mut bytes = seed_text.as_bytes().to_vec();
        let edits = 1 + next() % 6;
        for _ in 0..edits {
            let pos = (next() as usize) % (bytes.len() + 1);
            match next() % 3 {
                0 if pos < bytes.len() => {
                    bytes.remove(pos);
                }
                1 if pos < bytes.len() => {
                    bytes[pos] = alphabet[(next() as usize) % alphabet.len()];
                }
                _ => bytes.insert(pos, alphabet[(next() as usize) % alphabet.len()]),
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse(Path::new(FILE), &text, &env);
    }
}
