//! `volsafe check` and the pre-backup check against the real daemon:
//! containers are created (never started) with the configurations the
//! catalogue names, and the IDs and severities are asserted.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::common::*;

/// A container removed (with its anonymous volumes) when dropped.
struct Container(String);

impl Container {
    /// `docker create` of the test image with `args` before the image.
    fn create(suffix: &str, args: &[&str]) -> Container {
        let name = unique_name(suffix);
        let mut all = vec!["create", "--name", &name];
        all.extend_from_slice(args);
        all.extend([test_image(), "sleep", "3600"]);
        docker_ok(&all);
        Container(name)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        docker(&["rm", "-f", "-v", &self.0]);
    }
}

/// A user-defined network for the tests about published ports (the
/// default bridge may not exist); removed when dropped.
struct Network(String);

impl Network {
    fn new() -> Network {
        let name = unique_name("net");
        docker_ok(&["network", "create", "--internal", &name]);
        Network(name)
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        docker(&["network", "rm", &self.0]);
    }
}

/// `volsafe check ARGS --format json`: the findings.
fn findings(args: &[&str]) -> Vec<Value> {
    let mut all = vec!["check"];
    all.extend_from_slice(args);
    all.extend(["--format", "json"]);
    let run = volsafe(&all);
    assert!(matches!(run.code, Some(0) | Some(4)), "{run}");
    let doc: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{run}"));
    doc["findings"].as_array().expect("findings array").clone()
}

/// `(id, severity)` of every finding about container `name`.
fn of_container(findings: &[Value], name: &str) -> BTreeSet<(String, String)> {
    findings
        .iter()
        .filter(|f| f["container"].as_str() == Some(name))
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_owned(),
                f["severity"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// `(id, severity)` of every finding about volume `name`.
fn of_volume(findings: &[Value], name: &str) -> BTreeSet<(String, String)> {
    findings
        .iter()
        .filter(|f| f["volumes"].as_array().unwrap().iter().any(|v| v == name))
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_owned(),
                f["severity"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn has(set: &BTreeSet<(String, String)>, id: &str, severity: &str) -> bool {
    set.contains(&(id.to_owned(), severity.to_owned()))
}

fn ids(set: &BTreeSet<(String, String)>) -> BTreeSet<&str> {
    set.iter().map(|(id, _)| id.as_str()).collect()
}

#[test]
fn catalogue_on_a_live_host() {
    let data = Volume::new("data");
    let v = format!("{}:/data", data.name());
    let net = Network::new();
    let propagated = tempfile::tempdir().unwrap();
    let rshared = format!(
        "type=bind,source={},target=/x,bind-propagation=rshared",
        path_str(propagated.path())
    );
    let none = ["--network", "none"];
    let sock = Container::create(
        "sock",
        &[
            &none[..],
            &["-v", "/var/run/docker.sock:/var/run/docker.sock", "-v", &v],
        ]
        .concat(),
    );
    let etc = Container::create(
        "etc",
        &[&none[..], &["-v", "/etc:/host-etc", "-v", &v]].concat(),
    );
    let root = Container::create("root", &[&none[..], &["-v", "/:/host", "-v", &v]].concat());
    let privileged = Container::create("priv", &[&none[..], &["--privileged", "-v", &v]].concat());
    let admin = Container::create(
        "admin",
        &[&none[..], &["--cap-add", "SYS_ADMIN", "-v", &v]].concat(),
    );
    let hostnet = Container::create("hostnet", &["--network", "host", "-v", &v]);
    let port = Container::create(
        "port",
        &["--network", &net.0, "-p", "0.0.0.0:5432:5432", "-v", &v],
    );
    let shared = Container::create(
        "shared",
        &[&none[..], &["--mount", &rshared, "-v", &v]].concat(),
    );

    let found = findings(&[data.name()]);
    let check = |c: &Container, id: &str, severity: &str| {
        let set = of_container(&found, &c.0);
        assert!(
            has(&set, id, severity),
            "{}: want {id} {severity}, got {set:?}",
            c.0
        );
    };
    check(&sock, "VOL001", "critical");
    check(&etc, "VOL002", "high");
    check(&root, "VOL002", "critical");
    check(&privileged, "RUN001", "high");
    check(&admin, "RUN002", "high");
    check(&hostnet, "NET001", "high");
    check(&port, "NET002", "high");
    check(&shared, "VOL004", "medium");
    // One finding per bind among VOL001–VOL003.
    assert_eq!(
        ids(&of_container(&found, &root.0))
            .iter()
            .filter(|i| i.starts_with("VOL00"))
            .count(),
        1,
        "{:?}",
        of_container(&found, &root.0)
    );
    // Several containers write to the volume.
    assert!(has(&of_volume(&found, data.name()), "VOL006", "low"));
    // Created, never started: nothing writes during a backup.
    assert!(!found.iter().any(|f| f["id"] == "BAK005"));
}

#[test]
fn network_volumes_and_redaction() {
    let marker = format!("pw-{}-{}", std::process::id(), unique_name("marker"));
    let password = format!("username=bob,password={marker},vers=3.0");
    let cifs = Volume::with_options(
        "cifs",
        &[],
        &[
            ("type", "cifs"),
            ("device", "//127.0.0.1/share"),
            ("o", &password),
        ],
    );
    let nfs = Volume::with_options(
        "nfs",
        &[],
        &[
            ("type", "nfs"),
            ("device", ":/export"),
            ("o", "addr=127.0.0.1,rw,nfsvers=4"),
        ],
    );
    let found = findings(&[cifs.name(), nfs.name()]);
    let c = of_volume(&found, cifs.name());
    assert!(has(&c, "VOL007", "high"), "{c:?}");
    assert!(has(&c, "VOL008", "medium"), "{c:?}");
    let n = of_volume(&found, nfs.name());
    assert!(has(&n, "VOL008", "medium"), "{n:?}");
    assert!(!ids(&n).contains("VOL007"));

    // The password never shows: in any format, at the most verbose log
    // level, or on an error path.
    let dest = tempfile::tempdir().unwrap();
    let dir = path_str(dest.path());
    let runs = [
        volsafe(&["check", cifs.name()]),
        volsafe(&["check", cifs.name(), "--format", "json", "-vv"]),
        volsafe(&["check", "--format", "sarif"]),
        volsafe(&["check", "--format", "json", "--show-suppressed"]),
        volsafe(&["check", cifs.name(), "vstest-no-such-volume"]),
        volsafe(&[
            "backup",
            cifs.name(),
            "--to",
            dir,
            "--no-encryption",
            "--check-fail-on",
            "high",
            "-vv",
        ]),
        // The daemon cannot mount the share: its error quotes the options.
        volsafe(&[
            "backup",
            cifs.name(),
            "--to",
            dir,
            "--no-encryption",
            "--skip-check",
            "-vv",
        ]),
        volsafe(&[
            "backup",
            cifs.name(),
            "--to",
            dir,
            "--no-encryption",
            "--skip-check",
            "--log-format",
            "json",
        ]),
    ];
    let traced = run_volsafe(
        {
            let mut cmd = volsafe_command(&["check", cifs.name(), "-vv"]);
            cmd.env("VOLSAFE_LOG", "trace");
            cmd
        },
        &["check", cifs.name(), "-vv"],
    );
    for run in runs.iter().chain([&traced]) {
        assert!(
            !run.stdout.contains(&marker) && !run.stderr.contains(&marker),
            "password shown\n{run}"
        );
    }
    runs[4].assert_fails(1, "vstest-no-such-volume");
    runs[5].assert_fails(4, "nothing was backed up");
    runs[6].assert_fails(1, "could not mount the volume");
    assert!(
        files_under(dest.path()).is_empty(),
        "{:?}",
        files_under(dest.path())
    );
}

#[test]
fn anonymous_volumes_are_found_by_their_generated_name() {
    let data = Volume::new("anon");
    let v = format!("{}:/data", data.name());
    let plain = Container::create("anon", &["--network", "none", "-v", "/scratch", "-v", &v]);
    let removed = Container::create(
        "anonrm",
        &["--network", "none", "--rm", "-v", "/scratch", "-v", &v],
    );
    let found = findings(&[]);
    let bak001 = |c: &Container| -> Vec<String> {
        found
            .iter()
            .filter(|f| f["id"] == "BAK001" && f["container"].as_str() == Some(&c.0))
            .map(|f| f["severity"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(bak001(&plain), ["medium"], "{found:#?}");
    assert_eq!(bak001(&removed), ["high"]);
}

#[test]
fn near_misses_give_nothing() {
    let data = Volume::new("near");
    let etc_app = format!("{}:/etc/app", data.name());
    let net = Network::new();
    let app = Container::create(
        "near",
        &[
            "--network",
            &net.0,
            "-v",
            &etc_app,
            "-v",
            "/etc2:/etc2",
            "-v",
            "/variable:/variable",
            "-p",
            "127.0.0.1:5432:5432",
            "-p",
            "[::1]:6379:6379",
        ],
    );
    let ro = Container::create(
        "ro",
        &["--network", "none", "-v", "/etc:/etc-ro:ro", "-v", &etc_app],
    );
    let root = Container::create(
        "dataroot",
        &[
            "--network",
            "none",
            "-v",
            "/var/lib/docker:/d:ro",
            "-v",
            &etc_app,
        ],
    );

    let found = findings(&[data.name()]);
    let app_findings = of_container(&found, &app.0);
    let a = ids(&app_findings);
    for id in ["VOL001", "VOL002", "VOL003", "NET002", "ENG001"] {
        assert!(
            !a.contains(id),
            "{id} for {}: {:?}",
            app.0,
            of_container(&found, &app.0)
        );
    }
    let r = of_container(&found, &ro.0);
    assert!(
        has(&r, "VOL002", "medium") && !has(&r, "VOL002", "high"),
        "{r:?}"
    );
    let d = of_container(&found, &root.0);
    assert!(has(&d, "VOL003", "high"), "{d:?}");
    assert!(
        !ids(&d).contains("VOL002") && !ids(&d).contains("VOL004"),
        "{d:?}"
    );
}

#[test]
fn fail_on_and_ignore_file() {
    let data = Volume::new("ignore");
    let v = format!("{}:/data", data.name());
    let sock = Container::create(
        "sock",
        &[
            "--network",
            "none",
            "-v",
            "/var/run/docker.sock:/run/docker.sock:ro",
            "-v",
            &v,
        ],
    );
    volsafe(&["check", data.name(), "--fail-on", "critical"]).assert_fails(4, "");
    volsafe(&["check", data.name()]).assert_ok();

    let dir = tempfile::tempdir().unwrap();
    let ignore = dir.path().join("ignore.toml");
    std::fs::write(
        &ignore,
        format!(
            "[[ignore]]\nid = \"VOL001\"\ncontainer = \"{}\"\nreason = \"socket proxy under review\"\n\n\
             [[ignore]]\nid = \"RUN006\"\nreason = \"old exception\"\nexpires = \"2020-01-01\"\n",
            sock.0
        ),
    )
    .unwrap();
    let ig = path_str(&ignore);
    let run = volsafe(&[
        "check",
        data.name(),
        "--fail-on",
        "critical",
        "--ignore",
        ig,
    ]);
    run.assert_ok();
    assert!(run.stderr.contains("expired on 2020-01-01"), "{run}");
    let shown = volsafe(&[
        "check",
        data.name(),
        "--ignore",
        ig,
        "--show-suppressed",
        "--format",
        "json",
    ]);
    let doc: Value = serde_json::from_str(&shown.stdout).unwrap();
    assert!(
        doc["suppressed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == "VOL001"),
        "{shown}"
    );

    // A bad ignore file is a usage error naming it.
    std::fs::write(&ignore, "[[ignore]]\nid = \"VOL999\"\nreason = \"x\"\n").unwrap();
    volsafe(&["check", data.name(), "--ignore", ig]).assert_fails(2, "ignore.toml");
}

#[test]
fn before_backup() {
    let data = Volume::new("pre");
    fill(&data, "echo hi > /v/f");
    let v = format!("{}:/data", data.name());
    let sock = Container::create(
        "sock",
        &[
            "--network",
            "none",
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
            "-v",
            &v,
        ],
    );
    let dest = tempfile::tempdir().unwrap();
    let dir = path_str(dest.path());

    // Default: findings reported, the backup goes on.
    let run = volsafe(&["backup", data.name(), "--to", dir, "--no-encryption"]);
    run.assert_ok();
    assert!(run.stderr.contains("VOL001 critical"), "{run}");
    let archives = files_under(dest.path()).len();
    assert!(archives > 0);

    // A threshold it reaches: nothing read, nothing written, nothing left.
    volsafe(&[
        "backup",
        data.name(),
        "--to",
        dir,
        "--no-encryption",
        "--check-fail-on",
        "critical",
    ])
    .assert_fails(4, "nothing was backed up");
    assert_eq!(files_under(dest.path()).len(), archives);
    assert_no_leftovers(data.name());

    // Suppressed with a reason, the same threshold lets it through.
    let ignore = dest.path().join("ignore.toml");
    std::fs::write(
        &ignore,
        format!(
            "[[ignore]]\nid = \"VOL001\"\ncontainer = \"{}\"\nreason = \"test\"\n",
            sock.0
        ),
    )
    .unwrap();
    let ok = volsafe(&[
        "backup",
        data.name(),
        "--to",
        dir,
        "--no-encryption",
        "--check-fail-on",
        "critical",
        "--ignore",
        path_str(&ignore),
    ]);
    ok.assert_ok();
    assert!(!ok.stderr.contains("VOL001"), "{ok}");

    // --skip-check: no check at all.
    let skipped = volsafe(&[
        "backup",
        data.name(),
        "--to",
        dir,
        "--no-encryption",
        "--skip-check",
    ]);
    skipped.assert_ok();
    assert!(!skipped.stderr.contains("check:"), "{skipped}");
}

#[test]
fn compose_file_without_a_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("compose.yml");
    std::fs::write(
        &file,
        "services:\n  app:\n    image: x\n    volumes:\n      - /usr/src/app/node_modules\n      - /var/run/docker.sock:/var/run/docker.sock\n    ports:\n      - \"127.0.0.1:5432:5432\"\n      - \"[::1]:6379:6379\"\n",
    )
    .unwrap();
    let mut cmd = volsafe_command(&["check", "--compose", path_str(&file), "--format", "sarif"]);
    cmd.env("DOCKER_HOST", "unix:///nonexistent/docker.sock");
    let run = run_volsafe(cmd, &["check", "--compose"]);
    run.assert_ok();
    let sarif: Value = serde_json::from_str(&run.stdout).unwrap();
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    let rules: Vec<&str> = results
        .iter()
        .map(|r| r["ruleId"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&"VOL001"), "{rules:?}");
    assert!(
        !rules.contains(&"NET002") && !rules.contains(&"BAK001"),
        "{rules:?}"
    );
    let vol001 = results.iter().find(|r| r["ruleId"] == "VOL001").unwrap();
    assert_eq!(
        vol001["locations"][0]["physicalLocation"]["region"]["startLine"],
        6
    );
}

#[test]
fn live_findings_point_at_the_compose_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("compose.yml");
    let data = Volume::new("composed");
    std::fs::write(
        &file,
        format!(
            "services:\n  db:\n    image: x\n    volumes:\n      - {}:/data\n      - /etc:/host-etc\n",
            data.name()
        ),
    )
    .unwrap();
    let config = format!(
        "com.docker.compose.project.config_files={}",
        path_str(&file)
    );
    let v = format!("{}:/data", data.name());
    let _db = Container::create(
        "db",
        &[
            "--network",
            "none",
            "--label",
            &config,
            "--label",
            "com.docker.compose.service=db",
            "-v",
            &v,
            "-v",
            "/etc:/host-etc",
        ],
    );
    let run = volsafe(&["check", data.name(), "--format", "sarif"]);
    run.assert_ok();
    let sarif: Value = serde_json::from_str(&run.stdout).unwrap();
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    let vol002 = results
        .iter()
        .find(|r| r["ruleId"] == "VOL002")
        .unwrap_or_else(|| panic!("{run}"));
    let location = &vol002["locations"][0]["physicalLocation"];
    assert!(location["artifactLocation"]["uri"]
        .as_str()
        .unwrap()
        .ends_with("compose.yml"));
    assert_eq!(location["region"]["startLine"], 6);
}
