//! Containers stopped around a backup and always started again, the stop
//! journal that survives SIGKILL, and pre/post-backup hooks.

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::fixtures;
use crate::lifecycle::{wait_for, SmallFs};

/// A running container of the test image mounting `volume` at /data, with
/// labels; removed with the volume's guard.
fn running(volume: &Volume, labels: &[(&str, &str)]) -> String {
    let name = unique_name("svc");
    let mount = format!("{}:/data", volume.name());
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut args = vec![
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        "-v",
        &mount,
    ];
    for l in &labels {
        args.extend(["--label", l]);
    }
    args.extend([test_image(), "sleep", "3600"]);
    docker_ok(&args);
    name
}

fn started_at(container: &str) -> String {
    docker_ok(&["inspect", "-f", "{{.State.StartedAt}}", container])
        .trim()
        .to_owned()
}

fn is_running(container: &str) -> bool {
    docker_ok(&["inspect", "-f", "{{.State.Running}}", container]).trim() == "true"
}

fn stop_markers() -> Vec<String> {
    docker_ok(&[
        "ps",
        "-a",
        "--filter",
        "label=io.volsafe.role=stopped",
        "--format",
        "{{.Names}} {{.Label \"io.volsafe.target-name\"}}",
    ])
    .lines()
    .map(str::to_owned)
    .collect()
}

#[test]
fn stop_containers_stops_writers_and_starts_them_again() {
    let volume = Volume::new("stop");
    fill(&volume, "echo data > /v/f");
    let a = running(&volume, &[]);
    let b = running(&volume, &[]);
    let (a0, b0) = (started_at(&a), started_at(&b));
    let dest = tempfile::tempdir().unwrap();
    let run = volsafe(&[
        "backup",
        volume.name(),
        "--to",
        path_str(dest.path()),
        "--no-encryption",
        "--stop-containers",
    ]);
    run.assert_ok();
    for (c, before) in [(&a, a0), (&b, b0)] {
        assert!(is_running(c), "{c} not running again\n{run}");
        assert_ne!(started_at(c), before, "{c} was not stopped\n{run}");
    }
    assert!(run.stderr.contains("containers were stopped for"), "{run}");
    // Stopped containers write nothing: no BAK005 from the check before.
    assert!(!run.stderr.contains("BAK005"), "{run}");
    assert!(!stop_markers()
        .iter()
        .any(|m| m.contains(&a) || m.contains(&b)));
}

#[test]
fn the_label_stops_only_its_container() {
    let volume = Volume::new("label");
    fill(&volume, "echo data > /v/f");
    let labelled = running(&volume, &[("volsafe.stop-during-backup", "true")]);
    let other = running(&volume, &[]);
    let (l0, o0) = (started_at(&labelled), started_at(&other));
    let dest = tempfile::tempdir().unwrap();
    volsafe(&[
        "backup",
        volume.name(),
        "--to",
        path_str(dest.path()),
        "--no-encryption",
    ])
    .assert_ok();
    assert!(is_running(&labelled) && is_running(&other));
    assert_ne!(
        started_at(&labelled),
        l0,
        "the labelled container was not stopped"
    );
    assert_eq!(started_at(&other), o0, "the other container was stopped");
}

/// C12: a step fails after containers were stopped (the destination fills
/// up mid-stream): they run again, no helper is left.
#[test]
fn c12_containers_run_again_after_a_failed_backup() {
    let Some(fs) = SmallFs::new("size=2m") else {
        return;
    };
    let volume = Volume::new("c12");
    fill(&volume, &fixtures::random_file(8));
    let c = running(&volume, &[]);
    let c0 = started_at(&c);
    let run = volsafe(&[
        "backup",
        volume.name(),
        "--to",
        path_str(fs.0.path()),
        "--no-encryption",
        "--stop-containers",
    ]);
    run.assert_fails(1, "destination");
    assert!(is_running(&c), "{c} left stopped\n{run}");
    assert_ne!(started_at(&c), c0);
    assert_no_leftovers(volume.name());
    assert!(files_under(fs.0.path()).is_empty());
}

/// C15: a container of a Swarm service is refused, and nothing is stopped.
#[test]
fn c15_swarm_service_containers_are_refused() {
    let volume = Volume::new("swarm");
    fill(&volume, "echo data > /v/f");
    let c = running(&volume, &[("com.docker.swarm.service.name", "web")]);
    let c0 = started_at(&c);
    let dest = tempfile::tempdir().unwrap();
    volsafe(&[
        "backup",
        volume.name(),
        "--to",
        path_str(dest.path()),
        "--no-encryption",
        "--stop-containers",
    ])
    .assert_fails(1, "swarm service web");
    assert_eq!(started_at(&c), c0);
    assert!(files_under(dest.path()).is_empty());
}

/// SIGKILL while containers are stopped: the journal on the daemon makes the
/// next run start them again once the dead run's lease has expired.
#[test]
fn sigkill_while_stopped_then_the_next_run_starts_them() {
    let volume = Volume::new("kill");
    fill(&volume, &fixtures::random_file(4));
    let c = running(&volume, &[]);
    // Backing up to a pipe nobody reads blocks once the pipe is full,
    // inside the stop window.
    let mut cmd = volsafe_command(&[
        "backup",
        volume.name(),
        "--to",
        "-",
        "--no-encryption",
        "--stop-containers",
    ]);
    cmd.stdout(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    wait_for(60, "the container to be stopped", || !is_running(&c));
    wait_for(60, "the stop marker", || {
        stop_markers().iter().any(|m| m.ends_with(&c))
    });
    child.kill().unwrap();
    let _ = child.wait();
    let mut out = child.stdout.take().unwrap();
    let mut sink = Vec::new();
    let _ = out.read_to_end(&mut sink);
    assert!(!is_running(&c), "stopped container started without a run");

    // Any run with a lease sweeps; the dead run's lease expires within
    // 60 s, so keep running small backups until it has.
    let other = Volume::new("kill-other");
    fill(&other, "echo x > /v/x");
    let dest = tempfile::tempdir().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !is_running(&c) {
        assert!(
            Instant::now() < deadline,
            "the next runs never started {c} again"
        );
        volsafe(&[
            "backup",
            other.name(),
            "--to",
            path_str(dest.path()),
            "--no-encryption",
            "--skip-check",
        ])
        .assert_ok();
        std::thread::sleep(Duration::from_secs(3));
    }
    assert!(!stop_markers().iter().any(|m| m.ends_with(&c)));
}

/// C14: hooks run in the containers that mount the volume being backed
/// up, and only there; pre before the backup, post after it.
#[test]
fn c14_hooks_run_in_the_right_containers_only() {
    let volume = Volume::new("hooks");
    fill(&volume, "echo data > /v/f");
    let elsewhere = Volume::new("hooks-other");
    let _user = running(
        &volume,
        &[
            ("volsafe.pre-backup", "date > /data/pre-ran"),
            ("volsafe.post-backup", "echo post > /tmp/post-ran"),
        ],
    );
    let stranger = running(
        &elsewhere,
        &[("volsafe.pre-backup", "echo no > /data/must-not-exist")],
    );
    let dest = tempfile::tempdir().unwrap();
    let run = volsafe(&[
        "backup",
        volume.name(),
        "--to",
        path_str(dest.path()),
        "--no-encryption",
    ]);
    run.assert_ok();
    // The pre-backup hook ran before the data was read: its file is in the
    // archive.
    let archive = run.first_line();
    let list = sh(&format!("zstd -dc {} | tar -tf -", quote(&archive)));
    let names = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(
        names
            .lines()
            .any(|l| l.trim_start_matches("./") == "pre-ran"),
        "{names}"
    );
    let post = docker(&["exec", &_user, "cat", "/tmp/post-ran"]);
    assert!(post.status.success(), "post-backup hook did not run\n{run}");
    let none = docker(&["exec", &stranger, "test", "-e", "/data/must-not-exist"]);
    assert!(
        !none.status.success(),
        "a hook ran in a container that does not use the volume"
    );
}

#[test]
fn a_failing_pre_backup_hook_stops_that_backup() {
    let volume = Volume::new("hookfail");
    fill(&volume, "echo data > /v/f");
    let c = running(
        &volume,
        &[("volsafe.pre-backup", "echo dump failed >&2; exit 3")],
    );
    let dest = tempfile::tempdir().unwrap();
    let run = volsafe(&[
        "backup",
        volume.name(),
        "--to",
        path_str(dest.path()),
        "--no-encryption",
        "--stop-containers",
    ]);
    run.assert_fails(1, "exited with status 3: dump failed");
    assert!(run.stderr.contains(&c), "{run}");
    assert!(files_under(dest.path()).is_empty());
    assert!(is_running(&c));
}

/// SIGTERM once the stream has started, with containers stopped: exit 143,
/// the containers run again, no helper and no partial archive is left.
#[test]
fn sigterm_mid_stream_starts_the_containers_again() {
    let volume = Volume::new("term");
    fill(&volume, &fixtures::random_file(64));
    let c = running(&volume, &[]);
    let c0 = started_at(&c);
    let dest = tempfile::tempdir().unwrap();
    let args = [
        "backup",
        volume.name(),
        "--to",
        path_str(dest.path()),
        "--no-encryption",
        "--stop-containers",
        "--level",
        "19",
    ];
    let child = volsafe_command(&args).spawn().unwrap();
    let partial = || {
        files_under(dest.path())
            .iter()
            .any(|p| p.to_string_lossy().ends_with(".partial"))
    };
    wait_for(120, "the stream to start", partial);
    assert!(!is_running(&c), "the container runs during the backup");
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(is_running(&c), "{c} left stopped\n{stderr}");
    assert_ne!(started_at(&c), c0);
    assert!(
        files_under(dest.path()).is_empty(),
        "{:?}",
        files_under(dest.path())
    );
    assert_no_leftovers(volume.name());
}

/// `--parallel 2`: three volumes, every archive committed, the paths on
/// stdout, one stop window for a container that mounts two of them.
#[test]
fn parallel_volumes_share_one_stop_window() {
    let a = Volume::new("par-a");
    let b = Volume::new("par-b");
    let c = Volume::new("par-c");
    for v in [&a, &b, &c] {
        fill(v, &fixtures::random_file(2));
    }
    let name = unique_name("svc2");
    let (ma, mb) = (format!("{}:/a", a.name()), format!("{}:/b", b.name()));
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        "-v",
        &ma,
        "-v",
        &mb,
        test_image(),
        "sleep",
        "3600",
    ]);
    let before = started_at(&name);
    let dest = tempfile::tempdir().unwrap();
    let run = volsafe(&[
        "backup",
        a.name(),
        b.name(),
        c.name(),
        "--to",
        path_str(dest.path()),
        "--no-encryption",
        "--parallel",
        "2",
        "--stop-containers",
    ]);
    run.assert_ok();
    assert_eq!(run.stdout_lines().len(), 3, "{run}");
    for v in [&a, &b, &c] {
        assert!(run.stdout.contains(&format!("/{}/", v.name())), "{run}");
    }
    assert!(is_running(&name));
    assert_ne!(started_at(&name), before);
    assert_eq!(
        run.stderr.matches("containers were stopped for").count(),
        1,
        "{run}"
    );
    docker(&["rm", "-f", &name]);
}
