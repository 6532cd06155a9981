//! `volsafe prune` on a real directory of fake committed archives (prune
//! reads sidecars only, never archive bodies), with `--daemon` so that no
//! Docker daemon is needed: C08 (a gap in backups), C09 (foreign files),
//! `--dry-run`, `--rollback`, timezones, JSON output, errors.

use std::path::{Path, PathBuf};

use crate::common::{files_under, path_str, run_volsafe, volsafe, volsafe_command, Run};

const DAEMON: &str = "host-a";

/// A backup directory in a temp dir.
struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        Dir {
            tmp: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn path(&self) -> &Path {
        self.tmp.path()
    }

    fn arg(&self) -> &str {
        path_str(self.path())
    }

    fn volume_dir(&self, volume: &str) -> PathBuf {
        self.path().join(DAEMON).join(volume)
    }

    /// A committed archive of `volume` created at `created` (RFC 3339,
    /// UTC, milliseconds), written as volsafe writes one: the archive under
    /// its final name, then its sidecar.
    fn archive(&self, volume: &str, created: &str) -> PathBuf {
        self.archive_in(&self.volume_dir(volume), volume, created)
    }

    /// A rollback archive of `volume` in `<dir of volume>/rollback/`.
    fn rollback(&self, dir_of: &str, volume: &str, created: &str) -> PathBuf {
        self.archive_in(&self.volume_dir(dir_of).join("rollback"), volume, created)
    }

    fn archive_in(&self, dir: &Path, volume: &str, created: &str) -> PathBuf {
        std::fs::create_dir_all(dir).expect("mkdir");
        let stamp = created.replace(['-', ':'], "");
        let name = format!("{volume}-{stamp}.tar.zst.age");
        let path = dir.join(&name);
        std::fs::write(&path, format!("fake archive of {volume} at {created}")).expect("archive");
        let sidecar = serde_json::json!({
            "format": 1,
            "volume": volume,
            "daemon": DAEMON,
            "created": created,
            "archive": name,
            "size": 30,
            "sha256": "0".repeat(64),
            "tool": "volsafe test",
            "encrypted": true,
            "entries": 1,
        });
        std::fs::write(
            sidecar_of(&path),
            serde_json::to_vec_pretty(&sidecar).expect("json"),
        )
        .expect("sidecar");
        path
    }

    /// Runs `volsafe prune DIR --daemon host-a ARGS`.
    fn prune(&self, args: &[&str]) -> Run {
        let mut all = vec!["prune", self.arg(), "--daemon", DAEMON];
        all.extend_from_slice(args);
        volsafe(&all)
    }
}

fn sidecar_of(archive: &Path) -> PathBuf {
    PathBuf::from(format!("{}.json", archive.display()))
}

fn assert_committed(archive: &Path) {
    assert!(
        archive.is_file() && sidecar_of(archive).is_file(),
        "{} should still be there with its sidecar",
        archive.display()
    );
}

fn assert_gone(archive: &Path) {
    assert!(
        !archive.exists() && !sidecar_of(archive).exists(),
        "{} should be deleted with its sidecar",
        archive.display()
    );
}

/// C08: backups on days 1, 2, 3, then a prune on day 8 with keep-daily 3:
/// the three remain, although none is from the last 7 days.
#[test]
fn c08_a_gap_in_backups_keeps_the_three_daily_ones() {
    let dir = Dir::new();
    let days: Vec<PathBuf> = ["01", "02", "03"]
        .iter()
        .map(|d| dir.archive("db", &format!("2026-12-{d}T02:00:00.000Z")))
        .collect();

    let run = dir.prune(&["--keep-daily", "3", "--timezone", "UTC"]);
    run.assert_ok();
    for a in &days {
        assert_committed(a);
    }
    assert!(
        run.stdout.contains("daily 2026-12-01"),
        "reasons shown\n{run}"
    );
    assert!(run.stdout.contains("db: 3 kept, 0 deleted"), "{run}");

    // The day-8 backup is there too: days 8, 3 and 2 stay.
    let day8 = dir.archive("db", "2026-12-08T02:00:00.000Z");
    dir.prune(&["--keep-daily", "3", "--timezone", "UTC"])
        .assert_ok();
    assert_committed(&day8);
    assert_committed(&days[2]);
    assert_committed(&days[1]);
    assert_gone(&days[0]);
}

/// C09: foreign files and directories, partial files and incomplete
/// archives are never touched; only committed archives of the volume go.
#[test]
fn c09_only_volsafes_own_committed_archives_are_deleted() {
    let dir = Dir::new();
    let old = dir.archive("db", "2026-11-01T02:00:00.000Z");
    let newest = dir.archive("db", "2026-12-01T02:00:00.000Z");
    let vdir = dir.volume_dir("db");

    let foreign: Vec<PathBuf> = vec![
        dir.path().join("notes.txt"),
        dir.path().join(DAEMON).join("notes.txt"),
        vdir.join("notes.txt"),
        vdir.join("other/db-20261001T020000.000Z.tar.zst.age"),
        dir.path().join(DAEMON).join("other/file"),
        dir.path().join("other/file"),
        // A partial file, and an archive without sidecar (incomplete).
        vdir.join(".db-20261002T020000.000Z.tar.zst.age.partial"),
        vdir.join("db-20261003T020000.000Z.tar.zst.age"),
        // An old sidecar-less archive of a volume whose name extends db's.
        vdir.join("db-a-20261004T020000.000Z.tar.zst.age"),
        // A sidecar whose archive is gone: not an archive, left alone.
        vdir.join("db-20261005T020000.000Z.tar.zst.age.json"),
    ];
    for f in &foreign {
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, "not for prune").unwrap();
    }
    // An archive whose sidecar names another volume, and one whose sidecar
    // is not JSON: neither is a committed archive of db.
    let misfiled = dir.archive("db", "2026-10-06T02:00:00.000Z");
    std::fs::write(
        sidecar_of(&misfiled),
        std::fs::read_to_string(sidecar_of(&misfiled))
            .unwrap()
            .replace("\"volume\": \"db\"", "\"volume\": \"web\""),
    )
    .unwrap();
    let broken = dir.archive("db", "2026-10-07T02:00:00.000Z");
    std::fs::write(sidecar_of(&broken), "{ not json").unwrap();

    let before = files_under(dir.path());
    let run = dir.prune(&["--keep-last", "1"]);
    run.assert_ok();
    assert_committed(&newest);
    assert_gone(&old);
    let mut expected = before.clone();
    expected.retain(|p| *p != old && *p != sidecar_of(&old));
    assert_eq!(files_under(dir.path()), expected, "{run}");
    assert!(
        !run.stdout.contains("other:"),
        "a foreign directory is no volume\n{run}"
    );
    assert!(
        run.stderr.contains("incomplete"),
        "sidecar-less archives are reported\n{run}"
    );
}

#[test]
fn dry_run_deletes_nothing() {
    let dir = Dir::new();
    for d in 1..=5 {
        dir.archive("db", &format!("2026-12-0{d}T02:00:00.000Z"));
    }
    let before = files_under(dir.path());
    let run = dir.prune(&["--keep-last", "2", "--dry-run"]);
    run.assert_ok();
    assert_eq!(files_under(dir.path()), before);
    let would = run
        .stdout_lines()
        .iter()
        .filter(|l| l.starts_with("would delete"))
        .count();
    assert_eq!(would, 3, "{run}");
    assert!(run.stdout.contains("3 would be deleted"), "{run}");
}

/// Without --rollback, rollback/ is untouched; with it, only rollback/ is
/// pruned, each recorded volume on its own.
#[test]
fn rollback_archives_are_pruned_only_with_rollback_and_then_alone() {
    let dir = Dir::new();
    let main_old = dir.archive("db", "2026-11-01T02:00:00.000Z");
    let main_new = dir.archive("db", "2026-12-01T02:00:00.000Z");
    let rb_old = dir.rollback("db", "db", "2026-11-15T02:00:00.000Z");
    let rb_new = dir.rollback("db", "db", "2026-11-20T02:00:00.000Z");
    // A restore of db's archive into another volume leaves that volume's
    // rollback here: its only archive must survive db's keep-last 1.
    let rb_other = dir.rollback("db", "db2", "2026-11-10T02:00:00.000Z");

    let rollback_files: Vec<PathBuf> = files_under(&dir.volume_dir("db").join("rollback"));
    dir.prune(&["--keep-last", "1"]).assert_ok();
    assert_gone(&main_old);
    assert_committed(&main_new);
    assert_eq!(
        files_under(&dir.volume_dir("db").join("rollback")),
        rollback_files
    );

    let main_files = files_under(&dir.volume_dir("db"))
        .into_iter()
        .filter(|p| !p.starts_with(dir.volume_dir("db").join("rollback")))
        .collect::<Vec<_>>();
    let run = dir.prune(&["--keep-last", "1", "--rollback"]);
    run.assert_ok();
    assert_gone(&rb_old);
    assert_committed(&rb_new);
    assert_committed(&rb_other);
    assert_committed(&main_new);
    let main_after = files_under(&dir.volume_dir("db"))
        .into_iter()
        .filter(|p| !p.starts_with(dir.volume_dir("db").join("rollback")))
        .collect::<Vec<_>>();
    assert_eq!(main_after, main_files);
    assert!(
        run.stdout.contains("db (rollback): 2 kept, 1 deleted"),
        "{run}"
    );
}

#[test]
fn every_volume_of_the_daemon_is_pruned_or_only_the_one_named() {
    let dir = Dir::new();
    let a_old = dir.archive("a1", "2026-11-01T02:00:00.000Z");
    dir.archive("a1", "2026-12-01T02:00:00.000Z");
    let b_old = dir.archive("b1", "2026-11-01T02:00:00.000Z");
    dir.archive("b1", "2026-12-01T02:00:00.000Z");
    // Another daemon's archives in the same DIR are never pruned.
    let elsewhere = dir.archive_in(
        &dir.path().join("host-b").join("a1"),
        "a1",
        "2026-01-01T02:00:00.000Z",
    );
    dir.archive_in(
        &dir.path().join("host-b").join("a1"),
        "a1",
        "2026-12-01T02:00:00.000Z",
    );

    dir.prune(&["--keep-last", "1", "--volume", "b1"])
        .assert_ok();
    assert_gone(&b_old);
    assert_committed(&a_old);

    dir.prune(&["--keep-last", "1"]).assert_ok();
    assert_gone(&a_old);
    assert_committed(&elsewhere);
}

#[test]
fn periods_are_read_in_the_given_or_the_tz_timezone() {
    // 23:30 UTC on 1 December is 00:30 on 2 December in Berlin.
    let setup = || {
        let dir = Dir::new();
        let late = dir.archive("db", "2026-12-01T23:30:00.000Z");
        let noon = dir.archive("db", "2026-12-01T12:00:00.000Z");
        (dir, late, noon)
    };

    let (dir, late, noon) = setup();
    dir.prune(&["--keep-daily", "2", "--timezone", "UTC"])
        .assert_ok();
    assert_committed(&late);
    assert_gone(&noon);

    let (dir, _, noon) = setup();
    let run = dir.prune(&["--keep-daily", "2", "--timezone", "Europe/Berlin"]);
    run.assert_ok();
    assert_committed(&noon);
    assert!(run.stdout.contains("periods in Europe/Berlin"), "{run}");

    // No --timezone: TZ decides.
    let (dir, _, noon) = setup();
    let args = ["prune", dir.arg(), "--daemon", DAEMON, "--keep-daily", "2"];
    let mut cmd = volsafe_command(&args);
    cmd.env("TZ", "Europe/Berlin");
    run_volsafe(cmd, &args).assert_ok();
    assert_committed(&noon);
}

#[test]
fn json_output_lists_each_archive_and_totals() {
    let dir = Dir::new();
    let old = dir.archive("db", "2026-11-01T02:00:00.000Z");
    let new = dir.archive("db", "2026-12-01T02:00:00.000Z");
    let run = dir.prune(&["--keep-last", "1", "--format", "json"]);
    run.assert_ok();
    let out: serde_json::Value = serde_json::from_str(&run.stdout).expect("stdout is JSON");
    let vol = &out["volumes"][0];
    assert_eq!(vol["volume"], "db");
    let archives = vol["archives"].as_array().expect("archives");
    assert_eq!(archives.len(), 2);
    assert_eq!(archives[0]["path"], path_str(&new));
    assert_eq!(archives[0]["action"], "keep");
    assert_eq!(archives[0]["reasons"][0], "last 1");
    assert_eq!(archives[0]["created"], "2026-12-01T02:00:00.000Z");
    assert_eq!(archives[1]["path"], path_str(&old));
    assert_eq!(archives[1]["action"], "delete");
    assert!(archives[1]["size"].as_u64().unwrap() > 0);
    assert_eq!(out["totals"]["deleted"], 1);
    assert_eq!(out["totals"]["kept"], 1);
    assert_eq!(out["daemon"], DAEMON);
    assert_gone(&old);
}

#[test]
fn a_policy_is_required() {
    let dir = Dir::new();
    dir.archive("db", "2026-12-01T02:00:00.000Z");
    dir.prune(&[]).assert_fails(2, "--keep");
    dir.prune(&["--keep-daily", "0"]).assert_fails(2, "--keep");
}

#[test]
fn bad_timezone_is_a_usage_error_naming_it() {
    let dir = Dir::new();
    dir.prune(&["--keep-last", "1", "--timezone", "Mars/Olympus"])
        .assert_fails(2, "Mars/Olympus");
}

#[test]
fn missing_dir_daemon_or_volume_fails_with_a_hint() {
    let dir = Dir::new();
    dir.archive("db", "2026-12-01T02:00:00.000Z");
    let missing = dir.path().join("nope");
    volsafe(&[
        "prune",
        path_str(&missing),
        "--daemon",
        DAEMON,
        "--keep-last",
        "1",
    ])
    .assert_fails(1, "nope")
    .assert_fails(1, "hint:");
    volsafe(&["prune", dir.arg(), "--daemon", "host-z", "--keep-last", "1"])
        .assert_fails(1, "host-z")
        .assert_fails(1, "--daemon");
    dir.prune(&["--keep-last", "1", "--volume", "web"])
        .assert_fails(1, "volume web");
}

/// Without --daemon prune asks the daemon its name; an unreachable one
/// makes the hint point at --daemon.
#[test]
fn unreachable_daemon_without_daemon_flag_hints_at_it() {
    let dir = Dir::new();
    let socket = dir.path().join("no-daemon.sock");
    let host = format!("unix://{}", socket.display());
    let args = ["prune", dir.arg(), "--keep-last", "1"];
    let mut cmd = volsafe_command(&args);
    cmd.env("DOCKER_HOST", &host).env_remove("DOCKER_CONTEXT");
    run_volsafe(cmd, &args).assert_fails(1, "--daemon NAME");
}

/// A deletion that fails is reported with its file; the other volumes are
/// pruned and the exit status is 5 (partial). As root (whom modes do not
/// stop) volsafe runs as `nobody` through setpriv.
#[test]
fn a_failed_deletion_is_reported_and_the_rest_goes_on() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod")
    };
    let dir = Dir::new();
    let locked_old = dir.archive("a1", "2026-11-01T02:00:00.000Z");
    dir.archive("a1", "2026-12-01T02:00:00.000Z");
    let free_old = dir.archive("b1", "2026-11-01T02:00:00.000Z");
    dir.archive("b1", "2026-12-01T02:00:00.000Z");
    let locked = dir.volume_dir("a1");

    let args = ["prune", dir.arg(), "--daemon", DAEMON, "--keep-last", "1"];
    let plain = volsafe_command(&args);
    // SAFETY: geteuid has no preconditions.
    let cmd = if unsafe { libc::geteuid() } == 0 {
        for d in [
            dir.path().to_owned(),
            dir.path().join(DAEMON),
            dir.volume_dir("b1"),
        ] {
            mode(&d, 0o777);
        }
        let mut cmd = std::process::Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(plain.get_program())
            .args(plain.get_args())
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd
    } else {
        plain
    };
    mode(&locked, 0o555);
    let run = run_volsafe(cmd, &args);
    mode(&locked, 0o700);
    run.assert_fails(5, path_str(&locked_old));
    assert_committed(&locked_old);
    assert_gone(&free_old);
    assert!(run.stdout.contains("1 failed"), "{run}");
}
