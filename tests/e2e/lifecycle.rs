//! What a run leaves behind on the daemon and on disk: signals, locks and
//! the leftovers of runs that died.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::common::{
    assert_no_leftovers, backup, docker, docker_ok, files_under, fill, path_str, volsafe,
    volsafe_command, AgeKey, Run, Volume,
};
use crate::fixtures;

/// Polls until `cond` holds, for at most `secs` seconds.
pub(crate) fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn partial_exists(dest: &Path) -> bool {
    files_under(dest)
        .iter()
        .any(|p| p.to_string_lossy().ends_with(".partial"))
}

fn lock_exists(volume: &str) -> bool {
    docker(&["inspect", &format!("volsafe-lock-{volume}")])
        .status
        .success()
}

fn spawn_backup(volume: &str, dest: &Path, key: &AgeKey, extra: &[&str]) -> Child {
    let mut args = vec![
        "backup",
        volume,
        "--to",
        path_str(dest),
        "-r",
        &key.recipient,
    ];
    args.extend_from_slice(extra);
    volsafe_command(&args).spawn().expect("spawn volsafe")
}

fn finish(child: Child) -> (Option<i32>, String) {
    let out = child.wait_with_output().expect("wait volsafe");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Lease containers whose holder label names this process id.
fn leases_of(pid: u32) -> Vec<String> {
    let out = docker_ok(&[
        "ps",
        "-a",
        "--filter",
        "label=io.volsafe.role=lease",
        "--format",
        "{{.Names}} {{.Label \"io.volsafe.holder\"}}",
    ]);
    let needle = format!("pid {pid} ");
    out.lines()
        .filter(|l| l.contains(&needle))
        .map(str::to_owned)
        .collect()
}

/// A signal in the middle of the stream: exit 130/143 after cleanup, with no
/// partial file, no helper, no lock and no lease left.
fn signal_mid_backup(signal: &str, code: i32) {
    let volume = Volume::new("sig");
    fill(&volume, &fixtures::random_file(400));
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let child = spawn_backup(volume.name(), dest.path(), &key, &[]);
    let pid = child.id();
    wait_for(60, "the partial archive", || partial_exists(dest.path()));
    let kill = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let (status, stderr) = finish(child);
    assert_eq!(status, Some(code), "exit status after {signal}\n{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let files = files_under(dest.path());
    assert!(files.is_empty(), "files left after {signal}: {files:?}");
    assert_no_leftovers(volume.name());
    assert!(!lock_exists(volume.name()), "lock left after {signal}");
    assert!(
        leases_of(pid).is_empty(),
        "lease left: {:?}",
        leases_of(pid)
    );
}

#[test]
fn ctrl_c_mid_backup_cleans_up_and_exits_130() {
    signal_mid_backup("-INT", 130);
}

#[test]
fn sigterm_mid_backup_cleans_up_and_exits_143() {
    signal_mid_backup("-TERM", 143);
}

/// A signal while a new volume is being filled: the volume is removed again.
#[test]
fn ctrl_c_mid_restore_removes_the_new_volume() {
    let source = Volume::new("sigsrc");
    fill(&source, &fixtures::random_file(400));
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let archive = backup(source.name(), dest.path(), &key, &[]);
    let target = Volume::reserve("sigdst");
    let args = [
        "restore",
        path_str(&archive),
        "--volume",
        target.name(),
        "-i",
        key.identity(),
    ];
    let child = volsafe_command(&args).spawn().unwrap();
    let pid = child.id();
    wait_for(60, "the target volume", || target.exists());
    std::thread::sleep(Duration::from_millis(300));
    Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    let (status, stderr) = finish(child);
    if status == Some(0) {
        // The restore won the race: then it must be complete.
        return;
    }
    assert_eq!(status, Some(130), "{stderr}");
    assert!(!target.exists(), "the half-restored volume is still there");
    assert_no_leftovers(target.name());
}

/// Removes the given containers when dropped.
struct Containers(Vec<String>);

impl Drop for Containers {
    fn drop(&mut self) {
        for c in &self.0 {
            docker(&["rm", "-f", c]);
        }
    }
}

fn fake(name: &str, labels: &[(&str, &str)]) -> String {
    let mut args = vec![
        "create".to_owned(),
        "--name".to_owned(),
        name.to_owned(),
        "--network".to_owned(),
        "none".to_owned(),
    ];
    for (k, v) in labels {
        args.push("--label".to_owned());
        args.push(format!("{k}={v}"));
    }
    args.push("volsafe-helper:1".to_owned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    docker_ok(&args);
    name.to_owned()
}

/// Invariant 4: a later run removes helpers whose owner's lease is gone, and
/// never those of a run that is still alive.
#[test]
fn leftovers_of_dead_runs_are_removed_and_live_ones_kept() {
    let volume = Volume::new("sweep");
    fill(&volume, "echo x > /v/x");
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    // The first backup makes sure volsafe's helper image exists.
    backup(volume.name(), dest.path(), &key, &[]);

    let tag = crate::common::unique_name("owner").replace('-', "");
    let (dead, live) = (format!("dead{tag}"), format!("live{tag}"));
    let vol = volume.name();
    let guard = Containers(vec![
        fake(
            &format!("vstest-dead-helper-{tag}"),
            &[
                ("io.volsafe.role", "helper"),
                ("io.volsafe.owner", &dead),
                ("io.volsafe.volume", vol),
            ],
        ),
        fake(
            &format!("volsafe-lease-{live}"),
            &[("io.volsafe.role", "lease"), ("io.volsafe.owner", &live)],
        ),
        fake(
            &format!("vstest-live-helper-{tag}"),
            &[
                ("io.volsafe.role", "helper"),
                ("io.volsafe.owner", &live),
                ("io.volsafe.volume", vol),
            ],
        ),
    ]);
    backup(volume.name(), dest.path(), &key, &[]);
    let exists = |n: &str| docker(&["inspect", n]).status.success();
    assert!(
        !exists(&guard.0[0]),
        "the dead run's helper was not removed"
    );
    assert!(exists(&guard.0[1]), "a live run's lease was removed");
    assert!(exists(&guard.0[2]), "a live run's helper was removed");
}

/// C17: two backups of one volume at once take turns; both archives exist
/// under distinct names.
#[test]
fn c17_concurrent_backups_of_one_volume_take_turns() {
    let volume = Volume::new("turns");
    fill(&volume, &fixtures::random_file(150));
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let a = spawn_backup(volume.name(), dest.path(), &key, &[]);
    let b = spawn_backup(volume.name(), dest.path(), &key, &[]);
    let (oa, ob) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(
        oa.status.success(),
        "{}",
        String::from_utf8_lossy(&oa.stderr)
    );
    assert!(
        ob.status.success(),
        "{}",
        String::from_utf8_lossy(&ob.stderr)
    );
    let (pa, pb) = (
        String::from_utf8_lossy(&oa.stdout).trim().to_owned(),
        String::from_utf8_lossy(&ob.stdout).trim().to_owned(),
    );
    assert_ne!(pa, pb);
    assert!(Path::new(&pa).is_file() && Path::new(&pb).is_file());
    assert!(!lock_exists(volume.name()));
}

/// A backup that cannot get the lock in time names the holder.
#[test]
fn busy_volume_lock_names_the_holder() {
    let volume = Volume::new("busy");
    fill(&volume, &fixtures::random_file(400));
    let key = AgeKey::new();
    // The first backup writes to a pipe nobody reads yet: it holds the lock
    // until the test drains it, however fast the machine is.
    let mut cmd = volsafe_command(&["backup", volume.name(), "--to", "-", "-r", &key.recipient]);
    cmd.stdout(std::process::Stdio::piped());
    let mut first = cmd.spawn().expect("spawn volsafe");
    let pid = first.id();
    wait_for(60, "the lock", || lock_exists(volume.name()));
    let other = tempfile::tempdir().unwrap();
    let run = volsafe(&[
        "backup",
        volume.name(),
        "--to",
        path_str(other.path()),
        "-r",
        &key.recipient,
        "--lock-wait",
        "0",
    ]);
    let mut out = first.stdout.take().unwrap();
    let drained = std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let (status, stderr) = finish(first);
    drained.join().unwrap().unwrap();
    assert_eq!(status, Some(0), "{stderr}");
    run.assert_fails(1, "another backup or restore is running");
    run.assert_fails(1, &format!("pid {pid} "));
    assert!(files_under(other.path()).is_empty());
}

/// Mounts a small tmpfs, unmounted (and its directory removed) on drop.
pub(crate) struct SmallFs(pub(crate) tempfile::TempDir);

impl SmallFs {
    pub(crate) fn new(options: &str) -> Option<SmallFs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs", path_str(dir.path())])
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            Some(SmallFs(dir))
        } else {
            eprintln!("skipped: cannot mount a tmpfs here (not root?)");
            None
        }
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

/// A backup directory that fills up: exit 1 naming the destination with the
/// hint to free space, and no partial or final archive left.
#[test]
fn destination_full_directory_names_the_destination() {
    let Some(fs) = SmallFs::new("size=2m") else {
        return;
    };
    let volume = Volume::new("full");
    fill(&volume, &fixtures::random_file(8));
    let key = AgeKey::new();
    let run = volsafe(&[
        "backup",
        volume.name(),
        "--to",
        path_str(fs.0.path()),
        "-r",
        &key.recipient,
    ]);
    run.assert_fails(1, "destination")
        .assert_fails(1, "free space");
    run.assert_fails(1, path_str(fs.0.path()));
    let files = files_under(fs.0.path());
    assert!(files.is_empty(), "files left: {files:?}");
    assert_no_leftovers(volume.name());
}

/// A read-only backup directory: exit 1 naming it.
#[test]
fn destination_read_only_names_the_destination() {
    let Some(fs) = SmallFs::new("size=2m,ro") else {
        return;
    };
    let volume = Volume::new("rofs");
    fill(&volume, "echo x > /v/x");
    let key = AgeKey::new();
    volsafe(&[
        "backup",
        volume.name(),
        "--to",
        path_str(fs.0.path()),
        "-r",
        &key.recipient,
    ])
    .assert_fails(1, path_str(fs.0.path()))
    .assert_fails(1, "read-only");
    assert_no_leftovers(volume.name());
}

/// `volsafe backup VOLUME --to DEST -r KEY --helper-image IMAGE`, not
/// asserted.
fn backup_with_image(volume: &Volume, dest: &Path, key: &AgeKey, image: &str) -> Run {
    volsafe(&[
        "backup",
        volume.name(),
        "--to",
        path_str(dest),
        "-r",
        &key.recipient,
        "--helper-image",
        image,
    ])
}

/// `--helper-image` uses a local image (here one that has a `/volume`-less
/// root file system of its own) and never pulls a missing one.
#[test]
fn helper_image_flag_uses_a_local_image_and_never_pulls() {
    let volume = Volume::new("himg");
    fill(&volume, "echo x > /v/x");
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let image = crate::common::test_image();
    backup(volume.name(), dest.path(), &key, &["--helper-image", image]);
    let missing = crate::common::unique_name("no-such-image");
    backup_with_image(&volume, dest.path(), &key, &format!("{missing}:1"))
        .assert_fails(1, "not found")
        .assert_fails(1, "never pulls");
    assert_no_leftovers(volume.name());
}

/// An image that declares a VOLUME would give every helper an empty
/// anonymous volume there, hiding that part of the volume (and leaving
/// the anonymous volumes behind): refused before any container exists.
#[test]
fn helper_image_with_a_volume_is_refused() {
    let volume = Volume::new("himg-vol");
    fill(&volume, "mkdir /v/many && echo x > /v/many/x");
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let image = format!("{}:1", crate::common::unique_name("img-with-volume"));
    crate::common::sh(&format!(
        "tar -cf - -T /dev/null | docker import -c 'VOLUME [\"/volume/many\"]' \
         -c 'LABEL io.volsafe.test=1' - {image} >/dev/null"
    ));
    let run = backup_with_image(&volume, dest.path(), &key, &image);
    crate::common::docker(&["rmi", &image]);
    run.assert_fails(2, "declares volumes (/volume/many)");
    assert!(
        run.stderr.contains("hint: use an image without VOLUME"),
        "{run}"
    );
    assert_no_leftovers(volume.name());
}

/// `--log-format json`: every line on stderr is a JSON object.
#[test]
fn log_format_json_writes_json_lines() {
    let volume = Volume::new("jsonlog");
    fill(&volume, "echo x > /v/x");
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let run = volsafe(&[
        "backup",
        volume.name(),
        "--to",
        path_str(dest.path()),
        "-r",
        &key.recipient,
        "--log-format",
        "json",
    ]);
    run.assert_ok();
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(!lines.is_empty(), "no log lines\n{run}");
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v.get("level").is_some(), "{line}");
    }
}

/// Ctrl-C while an empty existing volume is being filled: it is made empty
/// again, and its root keeps its owner and mode (0700, uid 999).
#[test]
fn ctrl_c_mid_restore_into_empty_volume_keeps_its_root() {
    let source = Volume::new("rootsrc");
    fill(&source, &fixtures::random_file(400));
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let archive = backup(source.name(), dest.path(), &key, &[]);
    let target = Volume::new("rootdst");
    fill(&target, fixtures::ROOT_999_0700);
    let before = crate::common::digest(&target);
    let args = [
        "restore",
        path_str(&archive),
        "--volume",
        target.name(),
        "-i",
        key.identity(),
        "-v",
    ];
    let (status, seen) = interrupt_at_extraction(&args);
    assert_eq!(status, Some(130), "{seen}");
    before.assert_same(
        &crate::common::digest(&target),
        "target after an interrupted restore",
    );
    assert_no_leftovers(target.name());
}

/// An empty or invalid volume name is a usage error, before anything is
/// created (an empty name would make the Engine create an anonymous volume).
#[test]
fn invalid_volume_names_are_usage_errors() {
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    for bad in ["", "a", "../etc", "a b"] {
        volsafe(&[
            "backup",
            bad,
            "--to",
            path_str(dest.path()),
            "-r",
            &key.recipient,
        ])
        .assert_fails(2, "not a valid docker volume name");
    }
    let source = Volume::new("namesrc");
    fill(&source, "echo x > /v/x");
    let archive = backup(source.name(), dest.path(), &key, &[]);
    volsafe(&[
        "restore",
        path_str(&archive),
        "--volume",
        "",
        "-i",
        key.identity(),
    ])
    .assert_fails(2, "not a valid docker volume name");
}

/// Ctrl-C while an empty volume that a stopped container references is
/// being filled: it cannot be emptied again, so the restore finishes first,
/// then exits 130. Never a half-restored volume.
#[test]
fn ctrl_c_mid_restore_into_referenced_volume_finishes_it() {
    let source = Volume::new("refsrc");
    fill(&source, &fixtures::random_file(300));
    let want = crate::common::digest(&source);
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let archive = backup(source.name(), dest.path(), &key, &[]);
    let target = Volume::new("refdst");
    crate::common::container_using(&target, false);
    let args = [
        "restore",
        path_str(&archive),
        "--volume",
        target.name(),
        "-i",
        key.identity(),
        "-v",
    ];
    let (status, seen) = interrupt_at_extraction(&args);
    assert_eq!(status, Some(130), "{seen}");
    want.assert_same(
        &crate::common::digest(&target),
        "referenced target after Ctrl-C",
    );
    assert_no_leftovers(target.name());
}

/// Runs a `restore … -v` and sends SIGINT the moment its debug log names the
/// read-write helper, i.e. while the volume is being written. Returns the
/// exit status and everything it printed on stderr.
fn interrupt_at_extraction(args: &[&str]) -> (Option<i32>, String) {
    use std::io::{BufRead, Read};
    let mut child = volsafe_command(args).spawn().unwrap();
    let pid = child.id().to_string();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 {
        seen.push_str(&line);
        if line.contains("ReadWrite") {
            Command::new("kill").args(["-INT", &pid]).status().unwrap();
            break;
        }
        line.clear();
    }
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    seen.push_str(&rest);
    (child.wait().unwrap().code(), seen)
}
