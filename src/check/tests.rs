//! Tests of the rules on captured inspect JSON and on models built by hand.
//!
//! Every check ID of the catalogue (`shared/CHECKS.md`) has at least one
//! case where it fires, with its severity, and one near miss where it must
//! not. The captured inspect JSON (Engine 20.10, `tests/data/inspect/`) goes
//! through [`container_from_inspect`] and [`volume_from_engine`], so the
//! conversion is tested with the rules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::collect::{container_from_inspect, volume_from_engine};
use super::model::{Container, Host, Mount, MountKind, Port, PortRange, Volume};
use super::report::{self, Report};
use super::rules::{self, BackupAge, Context};
use super::{Finding, Severity, RULES};

// ------------------------------------------------------------ helpers

const DATA_ROOT: &str = "/var/lib/docker";
/// The CIFS password in `volumes.json`: it must never be shown.
const CIFS_PASSWORD: &str = "fixture-password-1";
const ANON: &str = "2a10b568da45b0e89006055eca8d2d55fe4852163307f450e71ab663a619dbb2";

fn fixture_path(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/inspect")
        .join(name)
}

/// The raw inspect JSON of a fixture, to edit before converting.
fn raw(name: &str) -> Value {
    let path = fixture_path(&format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// An inspect object converted into the model.
fn from_raw(v: Value) -> Container {
    let inspect: bollard::models::ContainerInspectResponse =
        serde_json::from_value(v).expect("a ContainerInspectResponse");
    container_from_inspect(&inspect)
}

/// A captured container, through `container_from_inspect`.
fn inspect(name: &str) -> Container {
    from_raw(raw(name))
}

/// The captured volumes, through `volume_from_engine`.
fn volumes_json() -> Vec<Volume> {
    let path = fixture_path("volumes.json");
    let text = std::fs::read_to_string(&path).expect("volumes.json");
    let volumes: Vec<bollard::models::Volume> =
        serde_json::from_str(&text).expect("an array of Volume");
    volumes.iter().map(volume_from_engine).collect()
}

fn captured_volume(name: &str) -> Volume {
    volumes_json()
        .into_iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no volume {name} in volumes.json"))
}

fn host(containers: Vec<Container>, volumes: Vec<Volume>) -> Host {
    Host {
        data_root: DATA_ROOT.to_owned(),
        containers,
        volumes,
        ..Host::default()
    }
}

fn eval(host: &Host) -> Vec<Finding> {
    rules::evaluate(host, &Context::default())
}

fn eval_containers(containers: Vec<Container>) -> Vec<Finding> {
    eval(&host(containers, Vec::new()))
}

fn eval_volumes(volumes: Vec<Volume>) -> Vec<Finding> {
    eval(&host(Vec::new(), volumes))
}

fn with_id<'a>(findings: &'a [Finding], id: &str) -> Vec<&'a Finding> {
    findings.iter().filter(|f| f.rule.id == id).collect()
}

/// The one finding with `id`.
#[track_caller]
fn only<'a>(findings: &'a [Finding], id: &str) -> &'a Finding {
    let found = with_id(findings, id);
    assert_eq!(
        found.len(),
        1,
        "expected one {id}, got {}",
        summary(findings)
    );
    found[0]
}

#[track_caller]
fn absent(findings: &[Finding], id: &str) {
    assert!(
        with_id(findings, id).is_empty(),
        "expected no {id}, got {}",
        summary(findings)
    );
}

/// The findings with `id` about the mount whose host side is `source`.
fn at<'a>(findings: &'a [Finding], id: &str, source: &str) -> Vec<&'a Finding> {
    findings
        .iter()
        .filter(|f| f.rule.id == id && f.source.as_deref() == Some(source))
        .collect()
}

/// The one finding with `id` about the mount from `source`.
#[track_caller]
fn only_at<'a>(findings: &'a [Finding], id: &str, source: &str) -> &'a Finding {
    let found = at(findings, id, source);
    assert_eq!(
        found.len(),
        1,
        "expected one {id} for {source}, got {}",
        summary(findings)
    );
    found[0]
}

/// The VOL001–VOL003 findings about `source`: at most one may exist.
fn path_findings<'a>(findings: &'a [Finding], source: &str) -> Vec<&'a Finding> {
    findings
        .iter()
        .filter(|f| matches!(f.rule.id, "VOL001" | "VOL002" | "VOL003"))
        .filter(|f| f.source.as_deref() == Some(source))
        .collect()
}

fn summary(findings: &[Finding]) -> String {
    let items: Vec<String> = findings
        .iter()
        .map(|f| {
            format!(
                "{} {} [{}] {}",
                f.rule.id,
                f.severity,
                f.container.as_deref().unwrap_or("-"),
                f.message
            )
        })
        .collect();
    format!("[\n  {}\n]", items.join("\n  "))
}

/// Checks a finding about one mount of a container.
#[track_caller]
fn assert_mount(
    f: &Finding,
    id: &str,
    severity: Severity,
    container: &str,
    source: Option<&str>,
    destination: &str,
) {
    assert_eq!(f.rule.id, id);
    assert_eq!(f.severity, severity, "{id}: {}", f.message);
    assert_eq!(
        f.container.as_deref(),
        Some(container),
        "{id}: {}",
        f.message
    );
    assert_eq!(f.source.as_deref(), source, "{id}: {}", f.message);
    assert_eq!(
        f.destination.as_deref(),
        Some(destination),
        "{id}: {}",
        f.message
    );
}

/// Checks a finding about a container as a whole.
#[track_caller]
fn assert_container(f: &Finding, id: &str, severity: Severity, container: &str) {
    assert_eq!(f.rule.id, id);
    assert_eq!(f.severity, severity, "{id}: {}", f.message);
    assert_eq!(
        f.container.as_deref(),
        Some(container),
        "{id}: {}",
        f.message
    );
    assert!(
        f.message.contains(container),
        "{id} message names the container: {}",
        f.message
    );
}

/// Checks a finding about a volume.
#[track_caller]
fn assert_volume(f: &Finding, id: &str, severity: Severity, volume: &str) {
    assert_eq!(f.rule.id, id);
    assert_eq!(f.severity, severity, "{id}: {}", f.message);
    assert_eq!(f.volumes, vec![volume.to_owned()], "{id}: {}", f.message);
    assert!(
        f.message.contains(volume),
        "{id} message names the volume: {}",
        f.message
    );
}

fn bind(source: &str, destination: &str, rw: bool) -> Mount {
    Mount {
        kind: MountKind::Bind,
        source: source.to_owned(),
        destination: destination.to_owned(),
        rw,
        propagation: String::new(),
        mode: String::new(),
        location: None,
    }
}

fn volume_mount(name: &str, destination: &str, rw: bool) -> Mount {
    Mount {
        kind: MountKind::Volume,
        source: name.to_owned(),
        destination: destination.to_owned(),
        rw,
        propagation: String::new(),
        mode: String::new(),
        location: None,
    }
}

fn tmpfs(destination: &str) -> Mount {
    Mount {
        kind: MountKind::Tmpfs,
        source: String::new(),
        destination: destination.to_owned(),
        rw: true,
        propagation: String::new(),
        mode: String::new(),
        location: None,
    }
}

/// A container that gives no finding of its own: read-only root,
/// no-new-privileges, a user-defined network, stopped.
fn clean(name: &str, mounts: Vec<Mount>) -> Container {
    Container {
        name: name.to_owned(),
        id: format!("{name}-id"),
        security_opt: vec!["no-new-privileges".to_owned()],
        readonly_rootfs: true,
        network_mode: "appnet".to_owned(),
        mounts,
        ..Container::default()
    }
}

/// A clean container holding one read-only named volume.
fn clean_with_volume(name: &str) -> Container {
    clean(name, vec![volume_mount("data", "/data", false)])
}

fn port(host_ip: &str, host_port: Option<u16>, container_port: u16) -> Port {
    Port {
        host_ip: host_ip.to_owned(),
        host_port: host_port.map(PortRange::one),
        container_port: PortRange::one(container_port),
        protocol: "tcp".to_owned(),
        location: None,
    }
}

fn with_ports(ports: Vec<Port>) -> Container {
    Container {
        ports,
        ..clean_with_volume("web")
    }
}

/// Driver options as `(key, value)` pairs.
type Options<'a> = &'a [(&'a str, &'a str)];

fn local_volume(name: &str, options: Options) -> Volume {
    Volume {
        name: name.to_owned(),
        driver: "local".to_owned(),
        scope: "local".to_owned(),
        options: options
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..Volume::default()
    }
}

/// Every captured container and volume on one host.
fn captured_host() -> Host {
    let containers = ["anon", "hard", "ns", "pall", "priv", "prop", "sock"]
        .into_iter()
        .map(inspect)
        .collect();
    let mut volumes = volumes_json();
    volumes.push(local_volume("vsmanual-data", &[]));
    host(containers, volumes)
}

// ------------------------------------------------------ baseline, catalogue

/// Every ID in the catalogue is one this module tests.
#[test]
fn every_catalogue_id_is_covered_here() {
    const TESTED: &[&str] = &[
        "VOL001", "VOL002", "VOL003", "VOL004", "VOL005", "VOL006", "VOL007", "VOL008", "VOL009",
        "RUN001", "RUN002", "RUN003", "RUN004", "RUN005", "RUN006", "RUN007", "NET001", "NET002",
        "NET003", "NET004", "ENG001", "BAK001", "BAK002", "BAK003", "BAK004", "BAK005",
    ];
    let ids: Vec<&str> = RULES.iter().map(|r| r.id).collect();
    assert_eq!(ids, TESTED);
}

#[test]
fn the_clean_container_gives_nothing() {
    let findings = eval_containers(vec![clean_with_volume("quiet")]);
    assert!(findings.is_empty(), "{}", summary(&findings));
}

#[test]
fn hardened_container_gives_nothing() {
    let hard = inspect("hard");
    assert_eq!(hard.name, "vsmanual-hard");
    assert!(hard.readonly_rootfs);
    assert!(
        !hard.default_bridge,
        "network none is not the default bridge"
    );
    let findings = eval(&host(vec![hard], vec![local_volume("vsmanual-data", &[])]));
    for id in ["RUN005", "RUN006", "NET004", "VOL006"] {
        absent(&findings, id);
    }
    assert!(findings.is_empty(), "{}", summary(&findings));
}

#[test]
fn findings_keep_the_severity_their_rule_allows() {
    let mut findings = eval(&captured_host());
    let mut h = captured_host();
    h.cgroup_v2 = true;
    h.docker_host = Some("tcp://10.0.0.5:2375".to_owned());
    findings.extend(eval(&h));
    assert!(!findings.is_empty());
    for f in &findings {
        assert!(
            f.severity <= f.rule.max,
            "{} {} above its max {}",
            f.rule.id,
            f.severity,
            f.rule.max
        );
    }
}

// ------------------------------------------------------------ VOL001

#[test]
fn vol001_docker_socket_from_inspect() {
    let findings = eval_containers(vec![inspect("sock")]);
    let f = only(&findings, "VOL001");
    assert_mount(
        f,
        "VOL001",
        Severity::Critical,
        "vsmanual-sock",
        Some("/var/run/docker.sock"),
        "/var/run/docker.sock",
    );
    assert_eq!(f.volumes, vec!["vsmanual-data".to_owned()]);
    // One finding among VOL001–VOL003 for the socket, and no BAK002.
    assert_eq!(path_findings(&findings, "/var/run/docker.sock").len(), 1);
    assert!(at(&findings, "BAK002", "/var/run/docker.sock").is_empty());
}

#[test]
fn vol001_socket_directory_from_inspect() {
    let findings = eval_containers(vec![inspect("pall")]);
    let f = only_at(&findings, "VOL001", "/run");
    assert_mount(
        f,
        "VOL001",
        Severity::Critical,
        "vsmanual-pall",
        Some("/run"),
        "/run2",
    );
    assert_eq!(path_findings(&findings, "/run").len(), 1);
}

#[test]
fn vol001_read_only_does_not_help() {
    for source in [
        "/var/run/docker.sock",
        "/run/user/1000/docker.sock",
        "/run/user/1000/podman/podman.sock",
        "/run/containerd/containerd.sock",
        "/home/me/.docker/run/docker.sock",
        "/var/run",
        "/run/user/1000",
    ] {
        let c = clean("proxy", vec![bind(source, "/sock", false)]);
        let findings = eval_containers(vec![c]);
        let f = only(&findings, "VOL001");
        assert_mount(
            f,
            "VOL001",
            Severity::Critical,
            "proxy",
            Some(source),
            "/sock",
        );
        assert_eq!(findings.len(), 1, "{source}: {}", summary(&findings));
    }
}

#[test]
fn vol001_near_misses() {
    for source in [
        "/run/secrets",
        "/run/user",
        "/srv/docker.sock.d",
        "/opt/run",
    ] {
        let c = clean("app", vec![bind(source, "/x", false)]);
        let findings = eval_containers(vec![c]);
        absent(&findings, "VOL001");
    }
    // The container side does not count.
    let c = clean("app", vec![bind("/srv/app", "/var/run/docker.sock", false)]);
    absent(&eval_containers(vec![c]), "VOL001");
    absent(&eval_containers(vec![inspect("hard")]), "VOL001");
}

// ------------------------------------------------------------ VOL002

#[test]
fn vol002_root_read_only_from_inspect_is_high() {
    let findings = eval_containers(vec![inspect("pall")]);
    let f = only_at(&findings, "VOL002", "/");
    assert_mount(
        f,
        "VOL002",
        Severity::High,
        "vsmanual-pall",
        Some("/"),
        "/host",
    );
    assert_eq!(path_findings(&findings, "/").len(), 1);
}

#[test]
fn vol002_root_read_write_is_critical() {
    let findings = eval_containers(vec![clean("c", vec![bind("/", "/host", true)])]);
    let f = only(&findings, "VOL002");
    assert_mount(f, "VOL002", Severity::Critical, "c", Some("/"), "/host");
}

#[test]
fn vol002_read_only_etc_is_medium_not_high() {
    let findings = eval_containers(vec![inspect("priv")]);
    let f = only_at(&findings, "VOL002", "/etc");
    assert_mount(
        f,
        "VOL002",
        Severity::Medium,
        "vsmanual-priv",
        Some("/etc"),
        "/host-etc",
    );

    let findings = eval_containers(vec![clean("c", vec![bind("/etc", "/host-etc", false)])]);
    assert_eq!(only(&findings, "VOL002").severity, Severity::Medium);
}

#[test]
fn vol002_system_directories_read_write_are_high() {
    let findings = eval_containers(vec![inspect("ns")]);
    let f = only(&findings, "VOL002");
    assert_mount(
        f,
        "VOL002",
        Severity::High,
        "vsmanual-ns",
        Some("/usr"),
        "/usr2",
    );

    for source in [
        "/etc",
        "/etc/ssl/",
        "/boot",
        "/proc",
        "/sys/fs",
        "/dev/sda",
        "/root",
        "/lib64",
        "/bin",
        "/sbin",
        "/srv/../etc",
    ] {
        let findings = eval_containers(vec![clean("c", vec![bind(source, "/x", true)])]);
        let f = only(&findings, "VOL002");
        assert_eq!(f.severity, Severity::High, "{source}");
        assert_eq!(path_findings(&findings, source).len(), 1);
    }
}

#[test]
fn vol002_data_directories_are_info() {
    for (source, rw) in [
        ("/srv/app", true),
        ("/home/me", false),
        ("/mnt/disk", true),
        ("/media/usb", false),
        ("/var/log", false),
    ] {
        let findings = eval_containers(vec![clean("c", vec![bind(source, "/x", rw)])]);
        let f = only(&findings, "VOL002");
        assert_mount(f, "VOL002", Severity::Info, "c", Some(source), "/x");
    }
}

#[test]
fn vol002_near_misses_from_inspect() {
    let findings = eval_containers(vec![inspect("ns")]);
    // `/etc2` and `/variable` are not under `/etc` and `/var`.
    for source in ["/etc2", "/variable"] {
        assert!(
            path_findings(&findings, source).is_empty(),
            "{source}: {}",
            summary(&findings)
        );
    }
    // A named volume at the container path `/etc/app` is judged by nothing.
    assert!(
        findings
            .iter()
            .all(|f| f.destination.as_deref() != Some("/etc/app")),
        "{}",
        summary(&findings)
    );
}

#[test]
fn vol002_judges_the_host_side_only() {
    let c = clean(
        "app",
        vec![
            bind("/srv2/app", "/etc", true),
            volume_mount("data", "/etc/app", true),
            bind("/opt/etc", "/usr", false),
        ],
    );
    let findings = eval_containers(vec![c]);
    absent(&findings, "VOL002");
    for source in ["/etc2", "/variable", "/usrdata", "/opt/etc", "relative/etc"] {
        let findings = eval_containers(vec![clean("c", vec![bind(source, "/etc", false)])]);
        absent(&findings, "VOL002");
    }
}

#[test]
fn vol002_local_volume_binding_a_sensitive_device() {
    let v = local_volume(
        "etc-vol",
        &[("type", "none"), ("o", "bind"), ("device", "/etc")],
    );
    let findings = eval_volumes(vec![v]);
    let f = only(&findings, "VOL002");
    assert_volume(f, "VOL002", Severity::High, "etc-vol");
    assert_eq!(f.source.as_deref(), Some("/etc"));

    let v = local_volume(
        "etc-ro",
        &[("type", "none"), ("o", "bind,ro"), ("device", "/etc")],
    );
    assert_eq!(
        only(&eval_volumes(vec![v]), "VOL002").severity,
        Severity::Medium
    );

    let v = local_volume("root-vol", &[("o", "rbind"), ("device", "/")]);
    assert_eq!(
        only(&eval_volumes(vec![v]), "VOL002").severity,
        Severity::Critical
    );
}

#[test]
fn vol002_volume_device_near_misses() {
    // Not a bind: the device is the remote share, not a host path.
    let v = local_volume(
        "nfs-etc",
        &[
            ("type", "nfs"),
            ("o", "addr=10.0.0.2,sec=krb5p"),
            ("device", "/etc"),
        ],
    );
    absent(&eval_volumes(vec![v]), "VOL002");
    // A bind of an ordinary directory.
    let v = local_volume(
        "app",
        &[("type", "none"), ("o", "bind"), ("device", "/etc2")],
    );
    assert!(eval_volumes(vec![v]).is_empty());
    // Another driver reads its options its own way.
    let mut v = local_volume("plugin", &[("o", "bind"), ("device", "/etc")]);
    v.driver = "some/plugin".to_owned();
    absent(&eval_volumes(vec![v]), "VOL002");
}

// ------------------------------------------------------------ VOL003

#[test]
fn vol003_data_root_once_never_vol002_from_inspect() {
    let findings = eval_containers(vec![inspect("pall")]);
    let root = path_findings(&findings, "/var/lib/docker");
    assert_eq!(root.len(), 1, "{}", summary(&findings));
    assert_mount(
        root[0],
        "VOL003",
        Severity::High,
        "vsmanual-pall",
        Some("/var/lib/docker"),
        "/d",
    );
    // `/var` holds the data root: VOL003 as well, read-write or not.
    let var = path_findings(&findings, "/var");
    assert_eq!(var.len(), 1, "{}", summary(&findings));
    assert_mount(
        var[0],
        "VOL003",
        Severity::High,
        "vsmanual-pall",
        Some("/var"),
        "/var2",
    );
    assert!(at(&findings, "BAK002", "/var").is_empty());
}

#[test]
fn vol003_at_under_or_containing_a_runtime_root() {
    for source in [
        "/var/lib/docker/volumes/x/_data",
        "/var/lib",
        "/var/lib/containerd",
        "/var/lib/containerd/io",
    ] {
        for rw in [true, false] {
            let findings = eval_containers(vec![clean("c", vec![bind(source, "/x", rw)])]);
            let f = only(&findings, "VOL003");
            assert_mount(f, "VOL003", Severity::High, "c", Some(source), "/x");
            absent(&findings, "VOL002");
        }
    }
    // The data root the daemon reports, wherever it is.
    let mut h = host(
        vec![clean("c", vec![bind("/srv", "/srv", true)])],
        Vec::new(),
    );
    h.data_root = "/srv/docker".to_owned();
    let findings = eval(&h);
    assert_eq!(only(&findings, "VOL003").severity, Severity::High);
    absent(&findings, "VOL002");
}

#[test]
fn vol003_near_misses() {
    let findings = eval_containers(vec![clean(
        "c",
        vec![bind("/var/lib/dockerfoo", "/x", false)],
    )]);
    absent(&findings, "VOL003");
    assert_eq!(only(&findings, "VOL002").severity, Severity::Info);
    // With the data root elsewhere, /var/lib/docker is an ordinary /var/* path.
    let mut h = host(
        vec![clean("c", vec![bind("/var/lib/docker", "/x", false)])],
        Vec::new(),
    );
    h.data_root = "/srv/docker".to_owned();
    let findings = eval(&h);
    absent(&findings, "VOL003");
    assert_eq!(only(&findings, "VOL002").severity, Severity::Info);
}

#[test]
fn vol003_local_volume_binding_the_data_root() {
    let v = local_volume("dr", &[("o", "bind"), ("device", "/var/lib/docker")]);
    let findings = eval_volumes(vec![v]);
    assert_volume(only(&findings, "VOL003"), "VOL003", Severity::High, "dr");
    absent(&findings, "VOL002");
}

// ------------------------------------------------------------ VOL004

#[test]
fn vol004_requested_rshared_from_inspect_is_medium() {
    let findings = eval_containers(vec![inspect("prop")]);
    let f = only(&findings, "VOL004");
    assert_mount(
        f,
        "VOL004",
        Severity::Medium,
        "vsmanual-prop",
        Some("/srv"),
        "/srv",
    );
}

#[test]
fn vol004_engine_chosen_rslave_is_not_reported() {
    let pall = inspect("pall");
    // The Engine reports rslave for `/`, the data root and `/var`...
    let findings = eval_containers(vec![pall]);
    // ...which nobody asked for.
    absent(&findings, "VOL004");
}

#[test]
fn vol004_requested_slave_is_low() {
    // `--mount ...,bind-propagation=rslave`
    let mut v = raw("prop");
    v["HostConfig"]["Mounts"][0]["BindOptions"]["Propagation"] = "rslave".into();
    v["Mounts"][0]["Propagation"] = "rslave".into();
    let f = only(&eval_containers(vec![from_raw(v)]), "VOL004").clone();
    assert_mount(
        &f,
        "VOL004",
        Severity::Low,
        "vsmanual-prop",
        Some("/srv"),
        "/srv",
    );

    // `-v /:/host:ro,rslave` asked for what the Engine would pick anyway.
    let mut v = raw("pall");
    v["HostConfig"]["Binds"][0] = "/:/host:ro,rslave".into();
    let findings = eval_containers(vec![from_raw(v)]);
    let f = only(&findings, "VOL004");
    assert_mount(
        f,
        "VOL004",
        Severity::Low,
        "vsmanual-pall",
        Some("/"),
        "/host",
    );
}

#[test]
fn vol004_requested_in_binds_short_syntax() {
    let mut v = raw("prop");
    v["HostConfig"]["Mounts"] = Value::Null;
    v["HostConfig"]["Binds"] = serde_json::json!(["/srv:/srv:shared"]);
    v["Mounts"][0]["Propagation"] = "shared".into();
    let findings = eval_containers(vec![from_raw(v)]);
    let f = only(&findings, "VOL004");
    assert_mount(
        f,
        "VOL004",
        Severity::Medium,
        "vsmanual-prop",
        Some("/srv"),
        "/srv",
    );
}

#[test]
fn vol004_private_is_not_reported() {
    let mut v = raw("prop");
    v["HostConfig"]["Mounts"][0]["BindOptions"]["Propagation"] = "rprivate".into();
    v["Mounts"][0]["Propagation"] = "rprivate".into();
    absent(&eval_containers(vec![from_raw(v)]), "VOL004");
}

#[test]
fn vol004_hand_built() {
    for (propagation, expected) in [
        ("shared", Some(Severity::Medium)),
        ("rshared", Some(Severity::Medium)),
        ("slave", Some(Severity::Low)),
        ("rslave", Some(Severity::Low)),
        ("rprivate", None),
        ("private", None),
        ("", None),
    ] {
        let mut m = bind("/srv/app", "/app", false);
        m.propagation = propagation.to_owned();
        let findings = eval_containers(vec![clean("c", vec![m])]);
        match expected {
            Some(severity) => {
                let f = only(&findings, "VOL004");
                assert_mount(f, "VOL004", severity, "c", Some("/srv/app"), "/app");
            }
            None => absent(&findings, "VOL004"),
        }
    }
}

// ------------------------------------------------------------ VOL005

#[test]
fn vol005_relabel_of_usr_from_inspect() {
    let findings = eval_containers(vec![inspect("ns")]);
    let f = only(&findings, "VOL005");
    assert_mount(
        f,
        "VOL005",
        Severity::High,
        "vsmanual-ns",
        Some("/usr"),
        "/usr2",
    );
}

#[test]
fn vol005_hand_built() {
    for (source, mode, expected) in [
        ("/usr", "Z", true),
        ("/etc", "ro,z", true),
        ("/home", "z", true),
        ("/var/lib/docker", "Z", true),
        ("/home/me/app", "z", false),
        ("/srv/app", "Z", false),
        ("/usr", "ro", false),
        ("/usr", "", false),
    ] {
        let mut m = bind(source, "/x", false);
        m.mode = mode.to_owned();
        let findings = eval_containers(vec![clean("c", vec![m])]);
        if expected {
            let f = only(&findings, "VOL005");
            assert_mount(f, "VOL005", Severity::High, "c", Some(source), "/x");
        } else {
            absent(&findings, "VOL005");
        }
    }
}

#[test]
fn vol005_not_for_volumes() {
    // priv.json and ns.json mount named volumes with mode `z`.
    for name in ["priv", "sock"] {
        absent(&eval_containers(vec![inspect(name)]), "VOL005");
    }
    let mut m = volume_mount("data", "/etc", true);
    m.mode = "Z".to_owned();
    absent(&eval_containers(vec![clean("c", vec![m])]), "VOL005");
}

// ------------------------------------------------------------ VOL006

#[test]
fn vol006_two_writers() {
    let a = clean("a", vec![volume_mount("data", "/data", true)]);
    let b = clean("b", vec![volume_mount("data", "/srv", true)]);
    let findings = eval(&host(vec![a, b], vec![local_volume("data", &[])]));
    let f = only(&findings, "VOL006");
    assert_volume(f, "VOL006", Severity::Low, "data");
    assert_eq!(f.container.as_deref(), Some("a, b"));
}

#[test]
fn vol006_not_when_one_is_read_only() {
    let a = clean("a", vec![volume_mount("data", "/data", true)]);
    let b = clean("b", vec![volume_mount("data", "/srv", false)]);
    absent(
        &eval(&host(vec![a, b], vec![local_volume("data", &[])])),
        "VOL006",
    );
    // One container mounting it twice is one writer.
    let a = clean(
        "a",
        vec![
            volume_mount("data", "/data", true),
            volume_mount("data", "/again", true),
        ],
    );
    absent(
        &eval(&host(vec![a], vec![local_volume("data", &[])])),
        "VOL006",
    );
}

#[test]
fn vol006_from_inspect() {
    // sock, priv and ns mount vsmanual-data read-write; hard read-only.
    let h = captured_host();
    let findings = eval(&h);
    let f = only(&findings, "VOL006");
    assert_volume(f, "VOL006", Severity::Low, "vsmanual-data");
    let writers = f.container.as_deref().unwrap();
    for name in ["vsmanual-sock", "vsmanual-priv", "vsmanual-ns"] {
        assert!(writers.contains(name), "{writers}");
    }
    assert!(!writers.contains("vsmanual-hard"), "{writers}");

    // The hardened container and one writer: nothing.
    let h = host(
        vec![inspect("hard"), inspect("sock")],
        vec![local_volume("vsmanual-data", &[])],
    );
    absent(&eval(&h), "VOL006");
}

// ------------------------------------------------------------ VOL007

#[test]
fn vol007_cifs_password_from_volumes_json() {
    let findings = eval_volumes(volumes_json());
    let f = only(&findings, "VOL007");
    assert_volume(f, "VOL007", Severity::High, "vsmanual-cifs");
    assert!(f.message.contains("<redacted>"), "{}", f.message);
    assert!(!f.message.contains(CIFS_PASSWORD), "{}", f.message);
}

#[test]
fn vol007_hand_built() {
    for options in [
        vec![("password", "s3cret-value")],
        vec![("o", "addr=10.0.0.2,pass=s3cret-value")],
        vec![
            ("type", "cifs"),
            ("o", "username=u,password=s3cret-value,seal"),
        ],
    ] {
        let findings = eval_volumes(vec![local_volume("v", &options)]);
        let f = only(&findings, "VOL007");
        assert_volume(f, "VOL007", Severity::High, "v");
        assert!(!f.message.contains("s3cret-value"), "{}", f.message);
    }
}

#[test]
fn vol007_near_misses() {
    for options in [
        vec![
            ("type", "cifs"),
            ("o", "credentials=/etc/cifs-creds,seal"),
            ("device", "//h/s"),
        ],
        vec![("device", "/srv/passwords"), ("o", "bind")],
        vec![("type", "nfs"), ("o", "addr=10.0.0.2,sec=krb5p")],
    ] {
        absent(&eval_volumes(vec![local_volume("v", &options)]), "VOL007");
    }
    absent(
        &eval_volumes(vec![captured_volume("vsmanual-nfs")]),
        "VOL007",
    );
}

#[test]
fn the_cifs_password_never_appears_in_any_finding() {
    let mut h = captured_host();
    h.docker_host = Some("tcp://10.0.0.5:2375".to_owned());
    h.cgroup_v2 = true;
    h.dangling = ["vsmanual-cifs".to_owned()].into();
    for c in &mut h.containers {
        c.running = true;
    }
    let mut findings = eval(&h);
    findings.extend(rules::backup_age(
        &h.volumes,
        &BTreeMap::new(),
        time::OffsetDateTime::UNIX_EPOCH,
        BackupAge {
            medium: Duration::from_secs(86_400),
            high: Duration::from_secs(7 * 86_400),
        },
        Path::new("/backups"),
    ));
    assert!(!with_id(&findings, "VOL007").is_empty());
    assert!(
        findings
            .iter()
            .any(|f| f.volumes.contains(&"vsmanual-cifs".to_owned()) && f.rule.id != "VOL007"),
        "other findings about the CIFS volume exist too"
    );
    let report = Report {
        findings,
        notes: Vec::new(),
        scope: "test".to_owned(),
    };
    let json = report::json(&report, true);
    let shown = serde_json::to_string(&json).unwrap();
    assert!(shown.contains("vsmanual-cifs"));
    assert!(shown.contains("<redacted>"));
    assert!(!shown.contains(CIFS_PASSWORD), "{shown}");
    let text = report::text(&report, true, false);
    assert!(!text.contains(CIFS_PASSWORD), "{text}");
    for f in &report.findings {
        let debug = format!("{f:?}");
        assert!(!debug.contains(CIFS_PASSWORD), "{debug}");
    }
}

// ------------------------------------------------------------ VOL008

#[test]
fn vol008_from_volumes_json() {
    let findings = eval_volumes(volumes_json());
    let nfs: Vec<&Finding> = with_id(&findings, "VOL008")
        .into_iter()
        .filter(|f| f.volumes == ["vsmanual-nfs"])
        .collect();
    assert_eq!(nfs.len(), 1, "{}", summary(&findings));
    assert_volume(nfs[0], "VOL008", Severity::Medium, "vsmanual-nfs");
    // CIFS 3.0 without seal.
    let cifs: Vec<&Finding> = with_id(&findings, "VOL008")
        .into_iter()
        .filter(|f| f.volumes == ["vsmanual-cifs"])
        .collect();
    assert_eq!(cifs.len(), 1, "{}", summary(&findings));
    assert_volume(cifs[0], "VOL008", Severity::Medium, "vsmanual-cifs");
    assert!(!cifs[0].message.contains(CIFS_PASSWORD));
}

#[test]
fn vol008_hand_built() {
    let cases: &[(Options, Option<Severity>)] = &[
        (
            &[("type", "nfs"), ("o", "addr=10.0.0.2,rw")],
            Some(Severity::Medium),
        ),
        (
            &[("type", "nfs4"), ("o", "addr=10.0.0.2,sec=krb5")],
            Some(Severity::Medium),
        ),
        (
            &[("type", "nfs"), ("o", "addr=10.0.0.2,sec=krb5i")],
            Some(Severity::Medium),
        ),
        (&[("type", "nfs"), ("o", "addr=10.0.0.2,sec=krb5p")], None),
        (&[("type", "nfs4"), ("o", "addr=10.0.0.2,SEC=KRB5P")], None),
        (&[("type", "nfs"), ("o", "addr=10.0.0.2,xprtsec=tls")], None),
        (
            &[("type", "cifs"), ("o", "vers=1.0,username=u")],
            Some(Severity::High),
        ),
        (
            &[("type", "cifs"), ("o", "vers=1.0,seal")],
            Some(Severity::High),
        ),
        (
            &[("type", "cifs"), ("o", "vers=3.0")],
            Some(Severity::Medium),
        ),
        (&[("type", "cifs"), ("o", "seal,vers=3.1.1")], None),
        (&[("type", "cifs"), ("o", "vers=3.0,seal")], None),
        (
            &[("type", "none"), ("o", "bind"), ("device", "/srv/app")],
            None,
        ),
        (&[], None),
    ];
    for (options, expected) in cases {
        let findings = eval_volumes(vec![local_volume("net", options)]);
        match expected {
            Some(severity) => {
                assert_volume(only(&findings, "VOL008"), "VOL008", *severity, "net");
            }
            None => absent(&findings, "VOL008"),
        }
    }
}

#[test]
fn vol008_only_for_the_local_driver() {
    let mut v = local_volume("plug", &[("type", "nfs"), ("o", "addr=10.0.0.2")]);
    v.driver = "vendor/nfs".to_owned();
    absent(&eval_volumes(vec![v]), "VOL008");
}

// ------------------------------------------------------------ VOL009

#[test]
fn vol009_non_local_driver() {
    let mut v = local_volume("ebs", &[]);
    v.driver = "rexray/ebs".to_owned();
    let findings = eval_volumes(vec![v]);
    assert_volume(only(&findings, "VOL009"), "VOL009", Severity::Info, "ebs");
    assert!(only(&findings, "VOL009").message.contains("rexray/ebs"));
}

#[test]
fn vol009_global_scope() {
    let mut v = local_volume("cluster", &[]);
    v.scope = "global".to_owned();
    assert_volume(
        only(&eval_volumes(vec![v]), "VOL009"),
        "VOL009",
        Severity::Info,
        "cluster",
    );
    // Both: still one finding.
    let mut v = local_volume("both", &[]);
    v.scope = "global".to_owned();
    v.driver = "csi".to_owned();
    assert_volume(
        only(&eval_volumes(vec![v]), "VOL009"),
        "VOL009",
        Severity::Info,
        "both",
    );
}

#[test]
fn vol009_near_misses() {
    absent(&eval_volumes(volumes_json()), "VOL009");
    absent(&eval_volumes(vec![local_volume("plain", &[])]), "VOL009");
    let v = Volume {
        name: "compose-only".to_owned(),
        ..Volume::default()
    };
    absent(&eval_volumes(vec![v]), "VOL009");
}

#[test]
fn volume_conversion_from_volumes_json() {
    let volumes = volumes_json();
    assert_eq!(volumes.len(), 3);
    let cifs = &volumes[0];
    assert_eq!(cifs.name, "vsmanual-cifs");
    assert_eq!(cifs.driver, "local");
    assert_eq!(cifs.scope, "local");
    assert_eq!(cifs.options.get("type").map(String::as_str), Some("cifs"));
    // `Options: null`, `Labels: null`.
    assert!(volumes[2].options.is_empty());
    assert!(volumes[2].labels.is_empty());
    assert_eq!(volumes[2].name, ANON);
}

// ------------------------------------------------------------ RUN001

#[test]
fn run001_privileged_with_a_bind_is_critical_from_inspect() {
    let findings = eval_containers(vec![inspect("priv")]);
    let f = only(&findings, "RUN001");
    assert_container(f, "RUN001", Severity::Critical, "vsmanual-priv");
    assert_eq!(
        f.volumes,
        ["vsmanual-data", "vsmanual-cifs", "vsmanual-nfs"]
    );
    assert_eq!(f.source, None);
}

#[test]
fn run001_privileged_without_binds_is_high() {
    let c = Container {
        privileged: true,
        ..clean(
            "p",
            vec![volume_mount("data", "/data", true), tmpfs("/tmp")],
        )
    };
    let f = only(&eval_containers(vec![c]), "RUN001").clone();
    assert_container(&f, "RUN001", Severity::High, "p");
    assert_eq!(f.volumes, ["data"]);

    let c = Container {
        privileged: true,
        ..clean("p", vec![bind("/srv/app", "/app", false)])
    };
    assert_eq!(
        only(&eval_containers(vec![c]), "RUN001").severity,
        Severity::Critical
    );
}

#[test]
fn run001_near_misses() {
    for name in ["hard", "ns", "sock", "pall"] {
        absent(&eval_containers(vec![inspect(name)]), "RUN001");
    }
    // A privileged container that holds no data is not volsafe's business.
    let c = Container {
        privileged: true,
        ..clean("p", vec![tmpfs("/tmp")])
    };
    assert!(eval_containers(vec![c]).is_empty());
}

// ------------------------------------------------------------ RUN002

#[test]
fn run002_from_inspect() {
    let f = only(&eval_containers(vec![inspect("ns")]), "RUN002").clone();
    assert_container(&f, "RUN002", Severity::High, "vsmanual-ns");
    assert!(f.message.contains("SYS_PTRACE"), "{}", f.message);
    assert!(!f.message.contains("NET_ADMIN"), "{}", f.message);
    let f = only(&eval_containers(vec![inspect("priv")]), "RUN002").clone();
    assert_container(&f, "RUN002", Severity::High, "vsmanual-priv");
}

#[test]
fn run002_any_spelling() {
    for cap in [
        "cap_sys_admin",
        "CAP_SYS_ADMIN",
        "SYS_ADMIN",
        "sys_admin",
        "all",
        "ALL",
        "CAP_DAC_READ_SEARCH",
        "sys_module",
        "SYS_PTRACE",
    ] {
        let c = Container {
            cap_add: vec![cap.to_owned()],
            ..clean_with_volume("c")
        };
        let findings = eval_containers(vec![c]);
        assert_container(only(&findings, "RUN002"), "RUN002", Severity::High, "c");
    }
}

#[test]
fn run002_near_misses() {
    for cap in [
        "NET_ADMIN",
        "CAP_NET_ADMIN",
        "chown",
        "SYS_ADMINISTRATOR",
        "CAP_SYS_TIME",
    ] {
        let c = Container {
            cap_add: vec![cap.to_owned()],
            ..clean_with_volume("c")
        };
        absent(&eval_containers(vec![c]), "RUN002");
    }
}

// ------------------------------------------------------------ RUN003

#[test]
fn run003_from_inspect_on_cgroup_v1() {
    let findings = eval_containers(vec![inspect("ns")]);
    let found = with_id(&findings, "RUN003");
    let mut seen: Vec<(&str, Severity)> = Vec::new();
    for f in &found {
        assert_container(f, "RUN003", f.severity, "vsmanual-ns");
        let ns = ["pid", "user", "ipc", "uts", "cgroup"]
            .into_iter()
            .find(|ns| f.message.contains(&format!("{ns} namespace")))
            .unwrap_or_else(|| panic!("which namespace? {}", f.message));
        seen.push((ns, f.severity));
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            ("ipc", Severity::Medium),
            ("pid", Severity::High),
            ("user", Severity::High),
            ("uts", Severity::Medium),
        ]
    );
}

#[test]
fn run003_cgroup_host_only_on_cgroup_v2() {
    let c = Container {
        cgroupns_mode: "host".to_owned(),
        ..clean_with_volume("c")
    };
    let mut h = host(vec![c], Vec::new());
    absent(&eval(&h), "RUN003");
    h.cgroup_v2 = true;
    let findings = eval(&h);
    let f = only(&findings, "RUN003");
    assert_container(f, "RUN003", Severity::Medium, "c");
    assert!(f.message.contains("cgroup"), "{}", f.message);

    // From inspect: ns.json gets its fifth namespace on cgroup v2.
    let mut h = host(vec![inspect("ns")], Vec::new());
    h.cgroup_v2 = true;
    assert_eq!(with_id(&eval(&h), "RUN003").len(), 5);
}

#[test]
fn run003_near_misses() {
    let c = Container {
        pid_mode: "container:abc".to_owned(),
        ipc_mode: "shareable".to_owned(),
        uts_mode: String::new(),
        userns_mode: String::new(),
        cgroupns_mode: "private".to_owned(),
        ..clean_with_volume("c")
    };
    let mut h = host(vec![c], Vec::new());
    h.cgroup_v2 = true;
    absent(&eval(&h), "RUN003");
    absent(&eval_containers(vec![inspect("sock")]), "RUN003");
}

// ------------------------------------------------------------ RUN004

#[test]
fn run004_from_inspect() {
    let findings = eval_containers(vec![inspect("ns")]);
    let f = only(&findings, "RUN004");
    assert_container(f, "RUN004", Severity::High, "vsmanual-ns");
    assert!(f.message.contains("seccomp=unconfined"), "{}", f.message);
    // `apparmor:unconfined`, the colon spelling.
    assert!(f.message.contains("apparmor=unconfined"), "{}", f.message);
    // The Engine adds label=disable itself with --pid host.
    assert!(!f.message.contains("label"), "{}", f.message);
}

#[test]
fn run004_not_for_the_engines_label_disable_on_privileged() {
    absent(&eval_containers(vec![inspect("priv")]), "RUN004");
    let c = Container {
        privileged: true,
        security_opt: vec!["label=disable".to_owned(), "no-new-privileges".to_owned()],
        ..clean_with_volume("p")
    };
    absent(&eval_containers(vec![c]), "RUN004");
    let c = Container {
        ipc_mode: "host".to_owned(),
        security_opt: vec!["label=disable".to_owned(), "no-new-privileges".to_owned()],
        ..clean_with_volume("i")
    };
    absent(&eval_containers(vec![c]), "RUN004");
}

#[test]
fn run004_hand_built() {
    for opt in [
        "seccomp:unconfined",
        "seccomp=unconfined",
        "apparmor=unconfined",
        "label=disable",
        "label:disable",
        "systempaths=unconfined",
    ] {
        let c = Container {
            security_opt: vec![opt.to_owned(), "no-new-privileges".to_owned()],
            ..clean_with_volume("c")
        };
        let findings = eval_containers(vec![c]);
        assert_container(only(&findings, "RUN004"), "RUN004", Severity::High, "c");
    }
}

#[test]
fn run004_near_misses() {
    for opt in [
        "seccomp=/etc/docker/seccomp.json",
        "apparmor=docker-default",
        "label=type:svirt_apache_t",
        "no-new-privileges",
    ] {
        let c = Container {
            security_opt: vec![opt.to_owned(), "no-new-privileges".to_owned()],
            ..clean_with_volume("c")
        };
        absent(&eval_containers(vec![c]), "RUN004");
    }
}

// ------------------------------------------------------------ RUN005

#[test]
fn run005_from_inspect() {
    let f = only(&eval_containers(vec![inspect("sock")]), "RUN005").clone();
    assert_container(&f, "RUN005", Severity::Low, "vsmanual-sock");
    assert!(
        f.remediation.contains("daemon"),
        "says a daemon-wide default is invisible"
    );
    absent(&eval_containers(vec![inspect("hard")]), "RUN005");
}

#[test]
fn run005_satisfied_by_each_spelling() {
    for opt in [
        "no-new-privileges",
        "no-new-privileges:true",
        "no-new-privileges=true",
        "No-New-Privileges=TRUE",
    ] {
        let c = Container {
            security_opt: vec![opt.to_owned()],
            ..clean_with_volume("c")
        };
        absent(&eval_containers(vec![c]), "RUN005");
    }
}

#[test]
fn run005_not_satisfied_by_false() {
    for opt in [
        "no-new-privileges:false",
        "no-new-privileges=false",
        "seccomp=unconfined",
    ] {
        let c = Container {
            security_opt: vec![opt.to_owned()],
            ..clean_with_volume("c")
        };
        let findings = eval_containers(vec![c]);
        assert_container(only(&findings, "RUN005"), "RUN005", Severity::Low, "c");
    }
    let c = Container {
        security_opt: Vec::new(),
        ..clean_with_volume("c")
    };
    assert_eq!(
        only(&eval_containers(vec![c]), "RUN005").severity,
        Severity::Low
    );
}

/// moby parses the value with Go's `strconv.ParseBool`, which takes `1`,
/// `t`, `T`, `TRUE`, `true`, `True`: `no-new-privileges=1` turns it on.
#[test]
fn run005_satisfied_by_other_true_spellings() {
    for opt in ["no-new-privileges=1", "no-new-privileges:t"] {
        let c = Container {
            security_opt: vec![opt.to_owned()],
            ..clean_with_volume("c")
        };
        absent(&eval_containers(vec![c]), "RUN005");
    }
}

// ------------------------------------------------------------ RUN006

#[test]
fn run006_writable_root() {
    let f = only(&eval_containers(vec![inspect("sock")]), "RUN006").clone();
    assert_container(&f, "RUN006", Severity::Low, "vsmanual-sock");
    let c = Container {
        readonly_rootfs: false,
        ..clean_with_volume("c")
    };
    assert_container(
        only(&eval_containers(vec![c]), "RUN006"),
        "RUN006",
        Severity::Low,
        "c",
    );
}

#[test]
fn run006_near_misses() {
    absent(&eval_containers(vec![inspect("hard")]), "RUN006");
    absent(&eval_containers(vec![clean_with_volume("c")]), "RUN006");
}

// ------------------------------------------------------------ RUN007

#[test]
fn run007_from_inspect() {
    let findings = eval_containers(vec![inspect("ns")]);
    let f = only(&findings, "RUN007");
    assert_container(f, "RUN007", Severity::Medium, "vsmanual-ns");
    assert!(f.message.contains("/dev/null"), "{}", f.message);
    assert!(f.message.contains("c 1:3 rmw"), "{}", f.message);
}

#[test]
fn run007_hand_built() {
    let c = Container {
        devices: vec!["/dev/fuse".to_owned()],
        ..clean_with_volume("c")
    };
    assert_container(
        only(&eval_containers(vec![c]), "RUN007"),
        "RUN007",
        Severity::Medium,
        "c",
    );
    let c = Container {
        device_cgroup_rules: vec!["b 8:* rmw".to_owned()],
        ..clean_with_volume("c")
    };
    assert_container(
        only(&eval_containers(vec![c]), "RUN007"),
        "RUN007",
        Severity::Medium,
        "c",
    );
}

#[test]
fn run007_near_misses() {
    // `Devices: []` in the captured JSON.
    for name in ["sock", "pall", "hard", "priv"] {
        absent(&eval_containers(vec![inspect(name)]), "RUN007");
    }
    // A bind under /dev is VOL002, not RUN007.
    let findings = eval_containers(vec![clean("c", vec![bind("/dev/sda", "/dev/sda", true)])]);
    absent(&findings, "RUN007");
    assert_eq!(only(&findings, "VOL002").severity, Severity::High);
}

// ------------------------------------------------------------ NET001

#[test]
fn net001_host_network_from_inspect_and_no_port_findings() {
    let findings = eval_containers(vec![inspect("priv")]);
    let f = only(&findings, "NET001");
    assert_container(f, "NET001", Severity::High, "vsmanual-priv");
    // 5432 is in PortBindings, but the Engine publishes nothing on host.
    for id in ["NET002", "NET003", "NET004", "ENG001"] {
        absent(&findings, id);
    }
}

#[test]
fn net001_hand_built() {
    let c = Container {
        network_mode: "host".to_owned(),
        ports: vec![port("", Some(2375), 2375), port("0.0.0.0", Some(80), 80)],
        publish_all: true,
        exposed: vec![PortRange::one(5432)],
        ..clean_with_volume("h")
    };
    let findings = eval_containers(vec![c]);
    assert_container(only(&findings, "NET001"), "NET001", Severity::High, "h");
    assert_eq!(findings.len(), 1, "{}", summary(&findings));
}

#[test]
fn net001_near_misses() {
    for mode in [
        "bridge",
        "default",
        "none",
        "appnet",
        "container:other",
        "hostnet",
    ] {
        let c = Container {
            network_mode: mode.to_owned(),
            ..clean_with_volume("c")
        };
        absent(&eval_containers(vec![c]), "NET001");
    }
}

// ------------------------------------------------------------ NET002

#[test]
fn net002_from_inspect_loopback_is_fine() {
    let findings = eval_containers(vec![inspect("ns")]);
    let f = only(&findings, "NET002");
    assert_container(f, "NET002", Severity::Medium, "vsmanual-ns");
    assert!(f.message.contains("80->8080"), "{}", f.message);
    // 127.0.0.1:5432 and [::1]:6379: nothing.
    for p in ["5432", "6379"] {
        assert!(
            findings.iter().all(|f| !f.message.contains(p)),
            "{p}: {}",
            summary(&findings)
        );
    }
}

#[test]
fn net002_publish_all_of_a_database_port_is_high() {
    let findings = eval_containers(vec![inspect("pall")]);
    let f = only(&findings, "NET002");
    assert_container(f, "NET002", Severity::High, "vsmanual-pall");
    assert!(f.message.contains("3306"), "{}", f.message);
}

#[test]
fn net002_hand_built() {
    let cases: &[(&str, u16, u16, Severity)] = &[
        ("", 8080, 80, Severity::Medium),
        ("0.0.0.0", 8080, 80, Severity::Medium),
        ("::", 8080, 80, Severity::Medium),
        ("[::]", 8080, 80, Severity::Medium),
        ("0.0.0.0", 2376, 2376, Severity::High),
        ("", 3306, 3306, Severity::High),
        ("", 15432, 5432, Severity::High),
        ("", 6379, 6379, Severity::High),
        ("", 27017, 27017, Severity::High),
        ("", 9200, 9200, Severity::High),
    ];
    for (ip, host_port, container_port, severity) in cases {
        let findings = eval_containers(vec![with_ports(vec![port(
            ip,
            Some(*host_port),
            *container_port,
        )])]);
        let f = only(&findings, "NET002");
        assert_container(f, "NET002", *severity, "web");
        absent(&findings, "ENG001");
    }
}

#[test]
fn net002_2376_stays_high_and_2375_is_eng001_only() {
    let findings = eval_containers(vec![with_ports(vec![port("", Some(2376), 2376)])]);
    assert_eq!(only(&findings, "NET002").severity, Severity::High);
    absent(&findings, "ENG001");

    let findings = eval_containers(vec![with_ports(vec![port("0.0.0.0", Some(2375), 2375)])]);
    assert_container(
        only(&findings, "ENG001"),
        "ENG001",
        Severity::Critical,
        "web",
    );
    absent(&findings, "NET002");
}

#[test]
fn net002_near_misses() {
    for ip in ["127.0.0.1", "[::1]", "::1", "192.168.1.5"] {
        let findings = eval_containers(vec![with_ports(vec![port(ip, Some(5432), 5432)])]);
        absent(&findings, "NET002");
    }
    // Network none: the Engine publishes nothing (prop.json binds 2375).
    let findings = eval_containers(vec![inspect("prop")]);
    for id in ["NET002", "NET003", "ENG001"] {
        absent(&findings, id);
    }
    let c = Container {
        network_mode: "container:db".to_owned(),
        ..with_ports(vec![port("", Some(8080), 80)])
    };
    absent(&eval_containers(vec![c]), "NET002");
}

// ------------------------------------------------------------ NET003

#[test]
fn net003_from_inspect() {
    let findings = eval_containers(vec![inspect("ns")]);
    let f = only(&findings, "NET003");
    assert_container(f, "NET003", Severity::Low, "vsmanual-ns");
    assert!(f.message.contains("80"), "{}", f.message);
}

#[test]
fn net003_hand_built() {
    for (ip, host_port) in [
        ("", 443),
        ("127.0.0.1", 80),
        ("[::1]", 22),
        ("0.0.0.0", 1023),
    ] {
        let findings = eval_containers(vec![with_ports(vec![port(ip, Some(host_port), 8080)])]);
        assert_container(only(&findings, "NET003"), "NET003", Severity::Low, "web");
    }
}

#[test]
fn net003_near_misses() {
    for host_port in [Some(1024), Some(8080), None] {
        let findings = eval_containers(vec![with_ports(vec![port("127.0.0.1", host_port, 80)])]);
        absent(&findings, "NET003");
    }
}

// ------------------------------------------------------------ NET004

#[test]
fn net004_default_bridge_from_inspect() {
    let sock = inspect("sock");
    assert!(sock.default_bridge);
    let findings = eval_containers(vec![sock]);
    assert_container(
        only(&findings, "NET004"),
        "NET004",
        Severity::Low,
        "vsmanual-sock",
    );
}

#[test]
fn net004_hand_built() {
    let c = Container {
        network_mode: "bridge".to_owned(),
        default_bridge: true,
        ..clean_with_volume("b")
    };
    assert_container(
        only(&eval_containers(vec![c]), "NET004"),
        "NET004",
        Severity::Low,
        "b",
    );
}

#[test]
fn net004_near_misses() {
    // A user-defined network, as the Engine reports it.
    let mut v = raw("sock");
    v["HostConfig"]["NetworkMode"] = "appnet".into();
    let bridge = v["NetworkSettings"]["Networks"]["bridge"].take();
    v["NetworkSettings"]["Networks"] = serde_json::json!({ "appnet": bridge });
    let c = from_raw(v);
    assert!(!c.default_bridge);
    absent(&eval_containers(vec![c]), "NET004");
    for name in ["hard", "priv", "prop"] {
        absent(&eval_containers(vec![inspect(name)]), "NET004");
    }
    // Host network: NET001, not NET004 too.
    let c = Container {
        network_mode: "host".to_owned(),
        default_bridge: true,
        ..clean_with_volume("h")
    };
    absent(&eval_containers(vec![c]), "NET004");
}

// ------------------------------------------------------------ ENG001

#[test]
fn eng001_docker_host_over_plain_tcp() {
    let mut h = host(Vec::new(), Vec::new());
    h.docker_host = Some("tcp://10.0.0.5:2375".to_owned());
    let findings = eval(&h);
    let f = only(&findings, "ENG001");
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(f.container, None);
    assert!(f.message.contains("tcp://10.0.0.5:2375"), "{}", f.message);
    assert_eq!(findings.len(), 1);
}

#[test]
fn eng001_not_with_tls_or_other_transports() {
    let mut h = host(Vec::new(), Vec::new());
    h.docker_host = Some("tcp://10.0.0.5:2376".to_owned());
    h.docker_tls = true;
    assert!(eval(&h).is_empty());
    for docker_host in [
        "unix:///var/run/docker.sock",
        "ssh://me@box",
        "npipe:////./pipe/docker_engine",
    ] {
        let mut h = host(Vec::new(), Vec::new());
        h.docker_host = Some(docker_host.to_owned());
        assert!(eval(&h).is_empty(), "{docker_host}");
    }
    // Compose files: no DOCKER_HOST at all.
    assert!(eval(&host(Vec::new(), Vec::new())).is_empty());
}

#[test]
fn eng001_published_2375() {
    let findings = eval_containers(vec![with_ports(vec![port("", Some(2375), 2375)])]);
    let f = only(&findings, "ENG001");
    assert_container(f, "ENG001", Severity::Critical, "web");
    absent(&findings, "NET002");
    // From inspect: prop.json binds 2375 on all interfaces; with its own
    // network instead of none, the Engine publishes it.
    let mut v = raw("prop");
    v["HostConfig"]["NetworkMode"] = "appnet".into();
    let findings = eval_containers(vec![from_raw(v)]);
    assert_container(
        only(&findings, "ENG001"),
        "ENG001",
        Severity::Critical,
        "vsmanual-prop",
    );
    absent(&findings, "NET002"); // 127.0.0.1:8080->80 is not on all interfaces
}

// ------------------------------------------------------------ BAK001

#[test]
fn bak001_anonymous_volume_with_auto_remove_is_high_from_inspect() {
    let anon = inspect("anon");
    assert!(anon.auto_remove);
    let findings = eval(&host(vec![anon], volumes_json()));
    let f = only(&findings, "BAK001");
    assert_volume(f, "BAK001", Severity::High, ANON);
    assert_eq!(f.container.as_deref(), Some("vsmanual-anon"));
    assert!(f.message.contains("--rm"), "{}", f.message);
}

#[test]
fn bak001_without_auto_remove_is_medium() {
    // The volume alone.
    let findings = eval_volumes(vec![captured_volume(ANON)]);
    assert_volume(only(&findings, "BAK001"), "BAK001", Severity::Medium, ANON);
    // Its container without --rm.
    let mut v = raw("anon");
    v["HostConfig"]["AutoRemove"] = false.into();
    let findings = eval(&host(vec![from_raw(v)], vec![captured_volume(ANON)]));
    let f = only(&findings, "BAK001");
    assert_volume(f, "BAK001", Severity::Medium, ANON);
    assert_eq!(f.container.as_deref(), Some("vsmanual-anon"));
}

#[test]
fn bak001_anonymous_label() {
    let mut v = local_volume("data-for-web", &[]);
    v.labels
        .insert("com.docker.volume.anonymous".to_owned(), String::new());
    assert_volume(
        only(&eval_volumes(vec![v]), "BAK001"),
        "BAK001",
        Severity::Medium,
        "data-for-web",
    );
}

#[test]
fn bak001_near_misses() {
    let mut v = local_volume(ANON, &[]);
    v.labels
        .insert("com.docker.compose.project".to_owned(), "shop".to_owned());
    absent(&eval_volumes(vec![v]), "BAK001");
    // 63 and 65 hex digits, and not hex.
    for name in [&ANON[1..], &format!("{ANON}0"), &ANON.replace('a', "g")] {
        absent(&eval_volumes(vec![local_volume(name, &[])]), "BAK001");
    }
    for name in ["vsmanual-cifs", "vsmanual-nfs"] {
        absent(&eval_volumes(vec![captured_volume(name)]), "BAK001");
    }
}

// ------------------------------------------------------------ BAK002

#[test]
fn bak002_read_write_bind_and_tmpfs() {
    let c = clean(
        "app",
        vec![
            bind("/srv/app", "/app", true),
            tmpfs("/cache"),
            bind("/etc/localtime", "/etc/localtime", false),
        ],
    );
    let findings = eval_containers(vec![c]);
    let f = only_at(&findings, "BAK002", "/srv/app");
    assert_mount(f, "BAK002", Severity::Info, "app", Some("/srv/app"), "/app");
    let tmp: Vec<&Finding> = with_id(&findings, "BAK002")
        .into_iter()
        .filter(|f| f.destination.as_deref() == Some("/cache"))
        .collect();
    assert_eq!(tmp.len(), 1, "{}", summary(&findings));
    assert_mount(tmp[0], "BAK002", Severity::Info, "app", None, "/cache");
    // Nothing for the read-only /etc/localtime.
    assert!(at(&findings, "BAK002", "/etc/localtime").is_empty());
    assert_eq!(with_id(&findings, "BAK002").len(), 2);
}

#[test]
fn bak002_from_inspect() {
    let findings = eval_containers(vec![inspect("ns")]);
    // `--tmpfs /run/x` is in HostConfig only.
    let tmp: Vec<&Finding> = with_id(&findings, "BAK002")
        .into_iter()
        .filter(|f| f.destination.as_deref() == Some("/run/x"))
        .collect();
    assert_eq!(tmp.len(), 1, "{}", summary(&findings));
    assert_mount(
        tmp[0],
        "BAK002",
        Severity::Info,
        "vsmanual-ns",
        None,
        "/run/x",
    );
    for source in ["/etc2", "/variable"] {
        let f = only_at(&findings, "BAK002", source);
        assert_mount(
            f,
            "BAK002",
            Severity::Info,
            "vsmanual-ns",
            Some(source),
            source,
        );
    }
    // The /usr bind is VOL002 already; the named volume is backed up.
    assert!(at(&findings, "BAK002", "/usr").is_empty());
    assert!(at(&findings, "BAK002", "vsmanual-data").is_empty());
}

#[test]
fn bak002_near_misses() {
    let c = clean(
        "app",
        vec![
            bind("/srv/app", "/app", false),
            volume_mount("data", "/data", true),
        ],
    );
    absent(&eval_containers(vec![c]), "BAK002");
    // Read-only binds in pall.json, sensitive ones otherwise.
    absent(&eval_containers(vec![inspect("sock")]), "BAK002");
}

// ------------------------------------------------------------ BAK003

#[test]
fn bak003_dangling_volume() {
    let mut h = host(
        Vec::new(),
        vec![local_volume("old", &[]), local_volume("used", &[])],
    );
    h.dangling = BTreeSet::from(["old".to_owned()]);
    let findings = eval(&h);
    assert_volume(only(&findings, "BAK003"), "BAK003", Severity::Info, "old");
}

#[test]
fn bak003_not_before_a_backup() {
    let mut h = host(Vec::new(), vec![local_volume("old", &[])]);
    h.dangling = BTreeSet::from(["old".to_owned()]);
    let ctx = Context {
        pre_backup: true,
        ..Context::default()
    };
    absent(&rules::evaluate(&h, &ctx), "BAK003");
    // Not dangling: nothing.
    h.dangling.clear();
    absent(&eval(&h), "BAK003");
}

// ------------------------------------------------------------ BAK004

fn ages(newest: &[(&str, time::OffsetDateTime)], now: time::OffsetDateTime) -> Vec<Finding> {
    let volumes: Vec<Volume> = ["none", "old", "stale", "fresh", "future"]
        .into_iter()
        .map(|n| local_volume(n, &[]))
        .collect();
    let newest: BTreeMap<String, time::OffsetDateTime> =
        newest.iter().map(|(k, t)| ((*k).to_owned(), *t)).collect();
    rules::backup_age(
        &volumes,
        &newest,
        now,
        BackupAge {
            medium: Duration::from_secs(24 * 3600),
            high: Duration::from_secs(7 * 24 * 3600),
        },
        Path::new("/backups"),
    )
}

#[test]
fn bak004_backup_age() {
    let now = time::macros::datetime!(2026-12-04 12:00 UTC);
    let findings = ages(
        &[
            ("old", now - time::Duration::days(8)),
            ("stale", now - time::Duration::hours(30)),
            ("fresh", now - time::Duration::hours(2)),
            ("future", now + time::Duration::hours(2)),
        ],
        now,
    );
    let by_volume =
        |name: &str| -> Vec<&Finding> { findings.iter().filter(|f| f.volumes == [name]).collect() };
    let none = by_volume("none");
    assert_eq!(none.len(), 1);
    assert_volume(none[0], "BAK004", Severity::High, "none");
    assert!(none[0].message.contains("/backups"), "{}", none[0].message);
    let old = by_volume("old");
    assert_eq!(old.len(), 1);
    assert_volume(old[0], "BAK004", Severity::High, "old");
    let stale = by_volume("stale");
    assert_eq!(stale.len(), 1);
    assert_volume(stale[0], "BAK004", Severity::Medium, "stale");
    assert!(by_volume("fresh").is_empty());
    assert!(by_volume("future").is_empty());
    assert_eq!(findings.len(), 3);
}

// ------------------------------------------------------------ BAK005

fn running_writer() -> Container {
    Container {
        running: true,
        ..clean(
            "db",
            vec![volume_mount("pgdata", "/var/lib/postgresql/data", true)],
        )
    }
}

#[test]
fn bak005_running_container_with_a_read_write_volume() {
    let findings = eval_containers(vec![running_writer()]);
    let f = only(&findings, "BAK005");
    assert_mount(
        f,
        "BAK005",
        Severity::Low,
        "db",
        Some("pgdata"),
        "/var/lib/postgresql/data",
    );
    assert_eq!(f.volumes, ["pgdata"]);
}

#[test]
fn bak005_from_inspect() {
    let mut v = raw("sock");
    v["State"]["Running"] = true.into();
    let findings = eval_containers(vec![from_raw(v)]);
    let f = only(&findings, "BAK005");
    assert_mount(
        f,
        "BAK005",
        Severity::Low,
        "vsmanual-sock",
        Some("vsmanual-data"),
        "/data",
    );
    // Stopped as captured: nothing.
    absent(&eval_containers(vec![inspect("sock")]), "BAK005");
    // Running but read-only.
    let mut v = raw("hard");
    v["State"]["Running"] = true.into();
    absent(&eval_containers(vec![from_raw(v)]), "BAK005");
}

#[test]
fn bak005_near_misses() {
    // The backup stops it first.
    let h = host(vec![running_writer()], Vec::new());
    let ctx = Context {
        stopping: BTreeSet::from(["db".to_owned()]),
        ..Context::default()
    };
    absent(&rules::evaluate(&h, &ctx), "BAK005");
    // Stopped.
    let c = Container {
        running: false,
        ..running_writer()
    };
    absent(&eval_containers(vec![c]), "BAK005");
    // Read-only.
    let c = Container {
        running: true,
        ..clean("db", vec![volume_mount("pgdata", "/data", false)])
    };
    absent(&eval_containers(vec![c]), "BAK005");
    // A bind is not a volume backup's business (BAK002 says it).
    let c = Container {
        running: true,
        ..clean("web", vec![bind("/srv/app", "/app", true)])
    };
    absent(&eval_containers(vec![c]), "BAK005");
}

// --------------------------------------------------------- conversion

#[test]
fn container_conversion_from_inspect() {
    let ns = inspect("ns");
    assert_eq!(ns.name, "vsmanual-ns");
    assert!(!ns.running);
    assert_eq!(ns.pid_mode, "host");
    assert_eq!(ns.cgroupns_mode, "host");
    assert_eq!(ns.devices, ["/dev/null"]);
    assert!(ns.default_bridge);
    let ips: Vec<&str> = ns.ports.iter().map(|p| p.host_ip.as_str()).collect();
    assert_eq!(ips.len(), 3);
    assert!(ips.contains(&"127.0.0.1") && ips.contains(&"::1") && ips.contains(&""));
    let kinds: Vec<(MountKind, &str)> = ns
        .mounts
        .iter()
        .map(|m| (m.kind, m.source.as_str()))
        .collect();
    assert!(
        kinds.contains(&(MountKind::Volume, "vsmanual-data")),
        "{kinds:?}"
    );
    assert!(kinds.contains(&(MountKind::Bind, "/usr")), "{kinds:?}");
    assert!(kinds.contains(&(MountKind::Tmpfs, "")), "{kinds:?}");

    let pall = inspect("pall");
    assert!(pall.publish_all);
    assert_eq!(pall.exposed, [PortRange::one(3306)]);
    assert!(pall.mounts.iter().all(|m| m.propagation.is_empty()));

    let prop = inspect("prop");
    assert_eq!(prop.mounts[0].propagation, "rshared");
    assert_eq!(prop.network_mode, "none");
}

/// `volumes_of` dedups without sorting: a container that mounts the same
/// volume twice with another in between lists it twice.
#[test]
fn container_findings_list_each_volume_once() {
    let c = Container {
        readonly_rootfs: false,
        ..clean(
            "c",
            vec![
                volume_mount("a", "/a", false),
                volume_mount("b", "/b", false),
                volume_mount("a", "/a2", false),
            ],
        )
    };
    let findings = eval_containers(vec![c]);
    let f = only(&findings, "RUN006");
    assert_eq!(f.volumes, ["a", "b"]);
}

// ------------------------------------------------ rules on compose snippets

/// The `(id, severity, container, line)` of every finding for a compose text.
fn compose_findings(text: &str) -> Vec<(String, Severity, Option<String>, usize)> {
    let path = Path::new("/opt/project/compose.yml");
    let host = super::compose::parse(path, text, &|_| None).expect("valid compose");
    rules::evaluate(&host, &Context::default())
        .into_iter()
        .map(|f| {
            (
                f.rule.id.to_owned(),
                f.severity,
                f.container.clone(),
                f.location.map_or(0, |l| l.line),
            )
        })
        .collect()
}

fn has_compose(
    found: &[(String, Severity, Option<String>, usize)],
    id: &str,
    severity: Severity,
    line: usize,
) -> bool {
    found
        .iter()
        .any(|(i, s, _, l)| i == id && *s == severity && *l == line)
}

#[test]
fn compose_snippet_positives_point_at_their_lines() {
    let text = r#"services:
  app:
    image: x
    privileged: true
    cap_add: [SYS_ADMIN]
    network_mode: host
    pid: host
    security_opt: ["seccomp:unconfined"]
    devices: ["/dev/fuse:/dev/fuse"]
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock:ro
      - /etc:/host-etc:ro
      - /:/host
      - type: bind
        source: /srv/shared
        target: /shared
        bind:
          propagation: rshared
      - /usr:/usr2:Z
      - data:/data
    tmpfs: /cache
  web:
    image: y
    network_mode: bridge
    ports:
      - "0.0.0.0:5432:5432"
      - "80:8080"
      - "2375:2375"
    volumes:
      - data:/data
volumes:
  data:
  secret:
    driver_opts:
      type: cifs
      o: "username=u,password=hunter2,vers=1.0"
      device: //nas/share
  nfs:
    driver_opts: {type: nfs, o: "addr=10.0.0.1,rw", device: ":/x"}
  etcbind:
    driver_opts: {type: none, o: bind, device: /etc}
  plugin:
    driver: rexray/ebs
"#;
    let found = compose_findings(text);
    for (id, severity, line) in [
        ("RUN001", Severity::Critical, 2),
        ("RUN002", Severity::High, 2),
        ("NET001", Severity::High, 2),
        ("RUN003", Severity::High, 2),
        ("RUN007", Severity::Medium, 2),
        ("VOL001", Severity::Critical, 11),
        ("VOL002", Severity::Medium, 12),
        ("VOL002", Severity::Critical, 13),
        ("VOL004", Severity::Medium, 14),
        ("VOL005", Severity::High, 19),
        ("VOL002", Severity::High, 19),
        ("NET004", Severity::Low, 22),
        ("NET002", Severity::High, 26),
        ("NET002", Severity::Medium, 27),
        ("NET003", Severity::Low, 27),
        ("ENG001", Severity::Critical, 28),
        ("VOL006", Severity::Low, 32),
        ("VOL007", Severity::High, 33),
        ("VOL008", Severity::High, 33),
        ("VOL008", Severity::Medium, 38),
        ("VOL002", Severity::High, 40),
        ("VOL009", Severity::Info, 42),
    ] {
        assert!(
            has_compose(&found, id, severity, line),
            "want {id} {severity} at line {line}, got {found:#?}"
        );
    }
    // A host network publishes nothing; a privileged container's disabled
    // profiles are RUN001's to report.
    assert!(!found.iter().any(|(i, ..)| i == "RUN004"));
    assert!(!found.iter().any(|(i, _, c, _)| i.starts_with("NET00")
        && c.as_deref() == Some("app")
        && i != "NET001"));
    // 2375 is ENG001 only.
    assert!(
        !has_compose(&found, "NET002", Severity::High, 28)
            && !has_compose(&found, "NET002", Severity::Medium, 28)
    );
    // The password is nowhere.
    let host =
        super::compose::parse(Path::new("/opt/project/compose.yml"), text, &|_| None).unwrap();
    let report = Report {
        findings: rules::evaluate(&host, &Context::default()),
        notes: Vec::new(),
        scope: "compose".into(),
    };
    let shown = format!(
        "{}{}{}",
        report::text(&report, true, false),
        report::json(&report, true),
        report::sarif(&report, true)
    );
    assert!(!shown.contains("hunter2"));
}

#[test]
fn compose_snippet_near_misses_give_nothing() {
    let text = r#"services:
  app:
    image: x
    read_only: true
    security_opt: ["no-new-privileges:true"]
    ports:
      - "127.0.0.1:5432:5432"
      - "[::1]:6379:6379"
    volumes:
      - /usr/src/app/node_modules
      - data:/etc/app
      - ./etc2:/etc2
      - /variable:/variable:ro
volumes:
  data:
"#;
    let found = compose_findings(text);
    let ids: BTreeSet<&str> = found.iter().map(|(i, ..)| i.as_str()).collect();
    for id in [
        "VOL001", "VOL002", "VOL003", "NET002", "ENG001", "BAK001", "RUN005", "RUN006", "NET004",
    ] {
        assert!(!ids.contains(id), "{id}: {found:#?}");
    }
}

/// The Engine keeps `systempaths=unconfined` only as an empty `MaskedPaths`.
#[test]
fn run004_systempaths_unconfined_from_empty_masked_paths() {
    let mut v: Value =
        serde_json::from_str(include_str!("../../tests/data/inspect/hard.json")).unwrap();
    v["HostConfig"]["MaskedPaths"] = serde_json::json!([]);
    let c = container_from_inspect(&serde_json::from_value(v).unwrap());
    assert!(
        c.security_opt.iter().any(|o| o == "systempaths=unconfined"),
        "{:?}",
        c.security_opt
    );
    let hard = container_from_inspect(
        &serde_json::from_str(include_str!("../../tests/data/inspect/hard.json")).unwrap(),
    );
    assert!(!hard
        .security_opt
        .iter()
        .any(|o| o.starts_with("systempaths")));
    let privileged = container_from_inspect(
        &serde_json::from_str(include_str!("../../tests/data/inspect/priv.json")).unwrap(),
    );
    assert!(!privileged
        .security_opt
        .iter()
        .any(|o| o.starts_with("systempaths")));
}
