//! Every user-facing error of the issue: the exit status, a message that
//! names the problem, and nothing changed or left behind.

use std::path::Path;
use std::process::Stdio;

use crate::common::{
    assert_no_leftovers, backup, container_using, corrupt_tail, daemon_name, digest, files_under,
    fill, path_str, run_volsafe, volsafe, volsafe_command, AgeKey, Volume,
};
use crate::fixtures;

/// No archive, sidecar or partial file anywhere under `dest`.
fn assert_nothing_written(dest: &Path) {
    let files = files_under(dest);
    assert!(files.is_empty(), "files written: {files:?}");
}

/// C10: a typo'd volume name fails, and the Engine did not create it.
#[test]
fn c10_typo_volume_is_not_created() {
    let missing = Volume::reserve("typo");
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    volsafe(&[
        "backup",
        missing.name(),
        "--to",
        path_str(dest.path()),
        "-r",
        &key.recipient,
    ])
    .assert_fails(1, "not found");
    assert!(
        !missing.exists(),
        "backup created volume {}",
        missing.name()
    );
    assert_no_leftovers(missing.name());
    assert_nothing_written(dest.path());
}

/// C10 among several volumes: the good one is backed up, exit 5.
#[test]
fn c10_typo_among_several_is_partial() {
    let good = Volume::new("good");
    fill(&good, "echo ok > /v/ok");
    let missing = Volume::reserve("typo2");
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let run = volsafe(&[
        "backup",
        good.name(),
        missing.name(),
        "--to",
        path_str(dest.path()),
        "-r",
        &key.recipient,
    ]);
    run.assert_fails(5, "not found");
    assert_eq!(run.stdout_lines().len(), 1, "one archive expected\n{run}");
    assert!(
        !missing.exists(),
        "backup created volume {}",
        missing.name()
    );
    assert_no_leftovers(good.name());
}

/// C18: an empty volume needs `--allow-empty`; the message says so.
#[test]
fn c18_empty_volume_needs_allow_empty() {
    let empty = Volume::new("empty");
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let dest_str = path_str(dest.path());
    volsafe(&[
        "backup",
        empty.name(),
        "--to",
        dest_str,
        "-r",
        &key.recipient,
    ])
    .assert_fails(1, "empty")
    .assert_fails(1, "--allow-empty");
    assert_nothing_written(dest.path());
    assert_no_leftovers(empty.name());

    backup(empty.name(), dest.path(), &key, &["--allow-empty"]);
}

/// No recipient and no `--no-encryption` is a usage error.
#[test]
fn no_recipient_is_usage_error() {
    let vol = Volume::new("no-recipient");
    fill(&vol, "echo x > /v/x");
    let dest = tempfile::tempdir().unwrap();
    volsafe(&["backup", vol.name(), "--to", path_str(dest.path())]).assert_fails(2, "recipient");
    assert_nothing_written(dest.path());
    assert_no_leftovers(vol.name());
}

/// A wrong key is known from the age header: exit 1, no volume created.
#[test]
fn wrong_key_creates_nothing() {
    let src = Volume::new("wrong-key");
    fill(&src, "echo x > /v/x");
    let key = AgeKey::new();
    let other = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let archive = backup(src.name(), dest.path(), &key, &[]);

    let target = Volume::reserve("wrong-key-target");
    let run = volsafe(&[
        "restore",
        path_str(&archive),
        "--volume",
        target.name(),
        "-i",
        other.identity(),
    ]);
    assert_eq!(run.code, Some(1), "{run}");
    let err = run.stderr.to_lowercase();
    assert!(
        err.contains("key") || err.contains("identit"),
        "message does not mention the key\n{run}"
    );
    assert!(!target.exists(), "restore created {}", target.name());
    assert_no_leftovers(target.name());
}

/// A wrong key against an existing, filled volume with `--replace` leaves
/// it as it was.
#[test]
fn wrong_key_with_replace_leaves_target_unchanged() {
    let src = Volume::new("wrong-key-src");
    fill(&src, "echo x > /v/x");
    let key = AgeKey::new();
    let other = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let archive = backup(src.name(), dest.path(), &key, &[]);

    let target = Volume::new("wrong-key-filled");
    fill(&target, "echo precious > /v/precious && chmod 0700 /v");
    let before = digest(&target);
    let run = volsafe(&[
        "restore",
        path_str(&archive),
        "--volume",
        target.name(),
        "-i",
        other.identity(),
        "--replace",
    ]);
    assert_eq!(run.code, Some(1), "{run}");
    before.assert_same(&digest(&target), "target after wrong key");
    assert_no_leftovers(target.name());
}

/// The destination cannot be written (a file stands where the daemon's
/// directory would go; root ignores permission bits): exit 1 naming it.
#[test]
fn destination_not_writable_fails() {
    let vol = Volume::new("dest-blocked");
    fill(&vol, "echo x > /v/x");
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let blocker = dest.path().join(daemon_name());
    std::fs::write(&blocker, "not a directory").unwrap();
    let run = volsafe(&[
        "backup",
        vol.name(),
        "--to",
        path_str(dest.path()),
        "-r",
        &key.recipient,
    ]);
    run.assert_fails(1, path_str(&blocker));
    assert_eq!(files_under(dest.path()), vec![blocker.clone()]);
    assert_eq!(
        std::fs::read_to_string(&blocker).unwrap(),
        "not a directory"
    );
    assert_no_leftovers(vol.name());
}

/// The destination is a regular file, not a directory.
#[test]
fn destination_is_a_file_fails() {
    let vol = Volume::new("dest-file");
    fill(&vol, "echo x > /v/x");
    let key = AgeKey::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "keep").unwrap();
    volsafe(&[
        "backup",
        vol.name(),
        "--to",
        path_str(&file),
        "-r",
        &key.recipient,
    ])
    .assert_fails(1, path_str(&file));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep");
    assert_no_leftovers(vol.name());
}

/// A full destination: `--to -` with stdout on /dev/full fails, never
/// reports success.
#[test]
fn destination_full_fails() {
    let vol = Volume::new("dest-full");
    fill(&vol, &fixtures::random_file(4));
    let key = AgeKey::new();
    let args = [
        "backup",
        vol.name(),
        "--to",
        "-",
        "-r",
        key.recipient.as_str(),
    ];
    let mut cmd = volsafe_command(&args);
    cmd.stdout(Stdio::from(std::fs::File::create("/dev/full").unwrap()));
    let run = run_volsafe(cmd, &args);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(!run.stderr.trim().is_empty(), "no message\n{run}");
    assert_no_leftovers(vol.name());
}

/// A non-empty target is refused without `--replace`, untouched.
#[test]
fn non_empty_target_needs_replace() {
    let src = Volume::new("ne-src");
    fill(&src, "echo new > /v/new");
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let archive = backup(src.name(), dest.path(), &key, &[]);

    let target = Volume::new("ne-target");
    fill(&target, "echo old > /v/old");
    let before = digest(&target);
    volsafe(&[
        "restore",
        path_str(&archive),
        "--volume",
        target.name(),
        "-i",
        key.identity(),
    ])
    .assert_fails(1, "--replace")
    .assert_fails(1, "not empty");
    before.assert_same(&digest(&target), "refused target");
    assert_no_leftovers(target.name());
}

/// An archive damaged in its last chunk (the header is intact, so only the
/// full check pass can see it) restored with `--replace` over a filled
/// volume: fails, and the volume is exactly as before.
#[test]
fn corrupt_archive_with_replace_leaves_volume_unchanged() {
    let src = Volume::new("corrupt-src");
    fill(
        &src,
        &format!("{}echo tail > /v/zz-last", fixtures::random_file(2)),
    );
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let archive = backup(src.name(), dest.path(), &key, &[]);
    corrupt_tail(&archive);

    let target = Volume::new("corrupt-target");
    fill(&target, &fixtures::small_fixture());
    let before = digest(&target);
    let run = volsafe(&[
        "restore",
        path_str(&archive),
        "--volume",
        target.name(),
        "-i",
        key.identity(),
        "--replace",
    ]);
    assert_eq!(run.code, Some(1), "{run}");
    before.assert_same(&digest(&target), "target after corrupt archive");
    assert_no_leftovers(target.name());
}

/// A corrupt archive into a new volume: the volume is not left behind.
#[test]
fn corrupt_archive_into_new_volume_creates_nothing() {
    let src = Volume::new("corrupt-new-src");
    fill(&src, &fixtures::random_file(2));
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let archive = backup(src.name(), dest.path(), &key, &[]);
    corrupt_tail(&archive);

    let target = Volume::reserve("corrupt-new-target");
    let run = volsafe(&[
        "restore",
        path_str(&archive),
        "--volume",
        target.name(),
        "-i",
        key.identity(),
    ]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        !target.exists(),
        "half-restored volume {} left",
        target.name()
    );
    assert_no_leftovers(target.name());
}

/// A truncated archive (a copy cut short) into a new volume: exit 1,
/// nothing created.
#[test]
fn truncated_archive_creates_nothing() {
    let src = Volume::new("trunc-src");
    fill(&src, &fixtures::random_file(2));
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let archive = backup(src.name(), dest.path(), &key, &[]);
    let bytes = std::fs::read(&archive).unwrap();
    std::fs::write(&archive, &bytes[..bytes.len() - 70_000]).unwrap();

    let target = Volume::reserve("trunc-target");
    let run = volsafe(&[
        "restore",
        path_str(&archive),
        "--volume",
        target.name(),
        "-i",
        key.identity(),
    ]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        !target.exists(),
        "half-restored volume {} left",
        target.name()
    );
    assert_no_leftovers(target.name());
}

/// An archive cut inside its first age chunk: a restore fails with exit 1
/// (exit 3 is `verify`'s and `drill`'s), naming the damage, with a hint.
#[test]
fn archive_cut_at_its_start_fails_with_exit_1() {
    let src = Volume::new("trunc-start-src");
    fill(&src, &fixtures::random_file(2));
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let archive = backup(src.name(), dest.path(), &key, &[]);
    let bytes = std::fs::read(&archive).unwrap();
    std::fs::write(&archive, &bytes[..1_000]).unwrap();

    let target = Volume::reserve("trunc-start-target");
    let run = volsafe(&[
        "restore",
        path_str(&archive),
        "--volume",
        target.name(),
        "-i",
        key.identity(),
    ]);
    run.assert_fails(1, "truncated at its start");
    assert!(run.stderr.contains("hint:"), "{run}");
    assert!(!target.exists());
    assert_no_leftovers(target.name());
}

/// `verify`: without a key the sidecar's SHA-256 catches the damage, with
/// a key the full read does; both exit 3. An intact archive exits 0.
#[test]
fn verify_detects_corruption() {
    let src = Volume::new("verify");
    fill(&src, &fixtures::random_file(2));
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let archive = backup(src.name(), dest.path(), &key, &[]);
    let archive_str = path_str(&archive);

    volsafe(&["verify", archive_str]).assert_ok();
    volsafe(&["verify", archive_str, "-i", key.identity()]).assert_ok();

    corrupt_tail(&archive);
    let run = volsafe(&["verify", archive_str]);
    assert_eq!(run.code, Some(3), "{run}");
    let run = volsafe(&["verify", archive_str, "-i", key.identity()]);
    assert_eq!(run.code, Some(3), "{run}");
}

/// Several volumes, all missing: exit 1 (5 is for a mix).
#[test]
fn c10_all_volumes_missing_is_failure() {
    let (a, b) = (Volume::reserve("typo-a"), Volume::reserve("typo-b"));
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    volsafe(&[
        "backup",
        a.name(),
        b.name(),
        "--to",
        path_str(dest.path()),
        "-r",
        &key.recipient,
    ])
    .assert_fails(1, a.name())
    .assert_fails(1, b.name());
    assert!(!a.exists() && !b.exists(), "backup created a volume");
    assert_nothing_written(dest.path());
}

/// A volume that a running container uses is never restored into, even
/// with `--replace`; the message names the container.
#[test]
fn restore_into_volume_of_running_container_is_refused() {
    let src = Volume::new("busy-src");
    fill(&src, "echo new > /v/new");
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let archive = backup(src.name(), dest.path(), &key, &[]);

    let target = Volume::new("busy-target");
    fill(&target, "echo old > /v/old");
    let before = digest(&target);
    let user = container_using(&target, true);
    volsafe(&[
        "restore",
        path_str(&archive),
        "--volume",
        target.name(),
        "-i",
        key.identity(),
        "--replace",
    ])
    .assert_fails(1, &user);
    before.assert_same(&digest(&target), "volume of a running container");
    assert_no_leftovers(target.name());
}

/// `--replace` cannot remove a volume that a stopped container references:
/// refused, naming the container, volume unchanged.
#[test]
fn replace_refuses_when_a_stopped_container_references_the_volume() {
    let src = Volume::new("ref-src");
    fill(&src, "echo new > /v/new");
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let archive = backup(src.name(), dest.path(), &key, &[]);

    let target = Volume::new("ref-target");
    fill(&target, "echo old > /v/old");
    let before = digest(&target);
    let user = container_using(&target, false);
    volsafe(&[
        "restore",
        path_str(&archive),
        "--volume",
        target.name(),
        "-i",
        key.identity(),
        "--replace",
    ])
    .assert_fails(1, &user);
    before.assert_same(&digest(&target), "volume of a stopped container");
    assert_no_leftovers(target.name());
}

/// The daemon cannot be reached: exit 1, naming where volsafe looked. The
/// socket path is in this test's own empty temporary directory.
#[test]
fn daemon_unreachable_names_the_socket() {
    let key = AgeKey::new();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("no-docker.sock");
    let host = format!("unix://{}", socket.display());
    let dest = dir.path().join("dest");
    let args = [
        "backup",
        "vstest-unreachable",
        "--to",
        path_str(&dest),
        "-r",
        key.recipient.as_str(),
    ];
    let mut cmd = volsafe_command(&args);
    cmd.env("DOCKER_HOST", &host).env_remove("DOCKER_CONTEXT");
    run_volsafe(cmd, &args).assert_fails(1, path_str(&socket));
    assert!(files_under(dir.path()).is_empty(), "files written");
}
