//! Backup then restore into a new volume gives back exactly the tree:
//! every byte, owner, mode and link, mtimes to the second.

use std::path::Path;
use std::time::Instant;

use crate::common::{
    assert_no_leftovers, backup, digest, digest_dir, docker_ok, fill, fill_from_host_dir, path_str,
    volsafe, AgeKey, Run, Tree, Volume,
};
use crate::fixtures;

/// `volsafe restore ARCHIVE --volume TARGET -i KEY EXTRA…`.
fn restore_to(archive: &Path, key: &AgeKey, target: &Volume, extra: &[&str]) -> Run {
    let mut args = vec!["restore", path_str(archive), "--volume", target.name()];
    args.extend(["-i", key.identity()]);
    args.extend_from_slice(extra);
    volsafe(&args)
}

/// Restores `archive` into a new volume and returns it with its tree.
fn restore_new(archive: &Path, key: &AgeKey, suffix: &str) -> (Volume, Tree) {
    let target = Volume::reserve(suffix);
    restore_to(archive, key, &target, &[]).assert_ok();
    assert_no_leftovers(target.name());
    let tree = digest(&target);
    (target, tree)
}

/// The fixture: C01–C04, C19, hard links, a FIFO, long and
/// unicode names, empty entries, 200 MB of random data, 20,000 files.
#[test]
fn big_fixture_round_trips_exactly() {
    let src = Volume::new("big");
    let started = Instant::now();
    fill(&src, &fixtures::big_fixture(200, 20_000));
    let filled = started.elapsed();
    let before = digest(&src);
    eprintln!(
        "big fixture: fill {filled:?}, digest {:?}, {} entries",
        started.elapsed() - filled,
        before.len()
    );
    assert!(
        before.entry("./sock/dev/log").is_some(),
        "fixture lacks C01"
    );

    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let archive = backup(src.name(), dest.path(), &key, &[]);
    eprintln!("big fixture: backup {:?}", started.elapsed());
    assert_no_leftovers(src.name());
    before.assert_same(&digest(&src), "source after backup");

    let started = Instant::now();
    let (_target, after) = restore_new(&archive, &key, "big-restored");
    eprintln!("big fixture: restore {:?}", started.elapsed());
    // C01: the Engine leaves sockets out; everything else comes back.
    before
        .without_sockets()
        .assert_same(&after, "restored big fixture");
}

/// The same entries without the bulk, so a failure here points at one
/// kind of entry in seconds.
#[test]
fn special_entries_round_trip_exactly() {
    let src = Volume::new("special");
    fill(&src, &fixtures::small_fixture());
    let before = digest(&src);

    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let archive = backup(src.name(), dest.path(), &key, &[]);
    let (_target, after) = restore_new(&archive, &key, "special-restored");
    before
        .without_sockets()
        .assert_same(&after, "restored special entries");
}

/// C03 with NoCopy: an empty 0700 uid-999 volume keeps its root.
#[test]
fn volume_root_mode_is_restored() {
    let src = Volume::new("root-empty");
    fill(
        &src,
        &format!(
            "{}touch -d '2020-02-20 20:20:20' /v",
            fixtures::ROOT_999_0700
        ),
    );
    let before = digest(&src);
    assert_eq!(before.len(), 1, "{}", before.listing);

    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let archive = backup(src.name(), dest.path(), &key, &["--allow-empty"]);
    let (_target, after) = restore_new(&archive, &key, "root-empty-restored");
    before.assert_same(&after, "restored empty 0700 uid-999 root");
}

/// C03 on a volume with content, C02 below it.
#[test]
fn c03_root_owner_and_mode_with_content() {
    let src = Volume::new("root-full");
    fill(
        &src,
        &format!(
            "mkdir -p /v/base/1 && echo x > /v/base/1/2 && chown -R 999:999 /v/base \
             && chmod 0700 /v/base /v/base/1 && echo 15 > /v/PG_VERSION\n{}",
            fixtures::ROOT_999_0700
        ),
    );
    let before = digest(&src);
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let archive = backup(src.name(), dest.path(), &key, &[]);
    let (_target, after) = restore_new(&archive, &key, "root-full-restored");
    before.assert_same(&after, "restored 0700 uid-999 root with content");
}

/// Real input: this machine's /usr/share/doc, copied into a volume.
#[test]
fn real_tree_usr_share_doc_round_trips() {
    let src = Volume::new("doc");
    let started = Instant::now();
    fill_from_host_dir(&src, Path::new("/usr/share/doc"));
    let before = digest(&src);
    eprintln!(
        "/usr/share/doc: fill and digest {:?}, {} entries",
        started.elapsed(),
        before.len()
    );
    assert!(before.len() > 100, "too little input:\n{}", before.listing);

    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let archive = backup(src.name(), dest.path(), &key, &[]);
    let (_target, after) = restore_new(&archive, &key, "doc-restored");
    before.assert_same(&after, "restored /usr/share/doc");
}

/// Without `--volume`, restore uses the name recorded in the archive.
#[test]
fn restore_defaults_to_recorded_volume_name() {
    let src = Volume::new("default-name");
    fill(&src, "echo hello > /v/a && mkdir /v/b && chmod 0750 /v/b");
    let before = digest(&src);
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let archive = backup(src.name(), dest.path(), &key, &[]);

    docker_ok(&["volume", "rm", src.name()]);
    volsafe(&["restore", path_str(&archive), "-i", key.identity()]).assert_ok();
    assert!(src.exists(), "volume {} not recreated", src.name());
    before.assert_same(&digest(&src), "restored under its recorded name");
}

/// `restore DIR --volume V` picks the newest committed archive of V.
#[test]
fn restore_from_dir_uses_newest_archive() {
    let src = Volume::new("newest");
    fill(&src, "echo first > /v/state");
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    backup(src.name(), dest.path(), &key, &[]);
    fill(&src, "echo second > /v/state && echo more > /v/extra");
    let second = digest(&src);
    backup(src.name(), dest.path(), &key, &[]);

    docker_ok(&["volume", "rm", src.name()]);
    volsafe(&[
        "restore",
        path_str(dest.path()),
        "--volume",
        src.name(),
        "-i",
        key.identity(),
    ])
    .assert_ok();
    second.assert_same(&digest(&src), "restored from DIR");
}

/// `--replace` writes a rollback archive of the old content (path printed)
/// before putting the archive's content in place, exactly.
#[test]
fn replace_writes_rollback_then_restores() {
    let src = Volume::new("replace-src");
    // C19 and C03 through the replace path too: the root and the links
    // that climb out of the volume.
    fill(&src, &fixtures::small_fixture());
    let wanted = digest(&src).without_sockets();
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let archive = backup(src.name(), dest.path(), &key, &[]);

    let target = Volume::new("replace-target");
    fill(&target, "echo old > /v/data && echo only-old > /v/old");
    let old = digest(&target);
    let run = volsafe(&[
        "restore",
        path_str(&archive),
        "--volume",
        target.name(),
        "-i",
        key.identity(),
        "--replace",
    ]);
    run.assert_ok();
    assert_no_leftovers(target.name());
    wanted.assert_same(&digest(&target), "replaced content");

    let rollback = run
        .stdout_lines()
        .into_iter()
        .map(Path::new)
        .find(|p| p.is_file() && p.to_string_lossy().contains("rollback"))
        .unwrap_or_else(|| panic!("no rollback path printed\n{run}"))
        .to_owned();
    let (_back, restored_old) = restore_new(&rollback, &key, "rolled-back");
    old.assert_same(&restored_old, "rollback archive content");
}

/// C11: a new volume gets the archive's labels back.
#[test]
fn c11_labels_are_recreated() {
    let labels = [
        ("com.docker.compose.project", "shop"),
        ("com.docker.compose.volume", "db-data"),
        ("com.example.note", "spaces and = signs"),
    ];
    let src = Volume::with_options("c11-labels", &labels, &[]);
    fill(&src, "echo x > /v/x");
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let archive = backup(src.name(), dest.path(), &key, &[]);
    let (target, _) = restore_new(&archive, &key, "c11-labels-restored");

    let info = target.inspect();
    for (k, v) in labels {
        assert_eq!(info["Labels"][k], v, "label {k} on {info:#}");
    }
    assert_eq!(info["Driver"], "local", "{info:#}");
}

/// C11: a tmpfs volume's options (Docker's own memory, docs/behaviour.md)
/// come back as they were. A tmpfs volume is empty whenever no container
/// mounts it, so this backs up an empty volume.
#[test]
fn c11_tmpfs_options_are_recreated() {
    let opts = [("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=10m")];
    let src = Volume::with_options("c11-tmpfs", &[("tier", "cache")], &opts);
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let archive = backup(src.name(), dest.path(), &key, &["--allow-empty"]);

    let target = Volume::reserve("c11-tmpfs-restored");
    restore_to(&archive, &key, &target, &[]).assert_ok();
    let info = target.inspect();
    for (k, v) in opts {
        assert_eq!(info["Options"][k], v, "option {k} on {info:#}");
    }
    assert_eq!(info["Labels"]["tier"], "cache", "{info:#}");
}

/// C11: options that point at storage outside Docker (a bind of a host
/// directory) are applied only with `--driver-options`; otherwise the
/// content goes into a plain local volume and the saved options are shown.
#[test]
fn c11_bind_options_only_with_flag() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    std::fs::create_dir(&data).unwrap();
    crate::fixtures::host_tree(&data);
    let device = path_str(&data).to_owned();
    let opts = [("type", "none"), ("o", "bind"), ("device", device.as_str())];
    let src = Volume::with_options("c11-bind", &[], &opts);
    let before = digest(&src);
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let archive = backup(src.name(), dest.path(), &key, &[]);

    let plain = Volume::reserve("c11-plain");
    let run = restore_to(&archive, &key, &plain, &[]);
    run.assert_ok();
    let info = plain.inspect();
    let options = &info["Options"];
    assert!(
        options.is_null() || options.as_object().is_some_and(|o| o.is_empty()),
        "options applied without --driver-options: {info:#}\n{run}"
    );
    // Keys, at least: values may hold credentials (CHECKS.md).
    for needle in ["--driver-options", "device"] {
        assert!(
            run.stderr.contains(needle),
            "no {needle} in the warning\n{run}"
        );
    }
    before.assert_same(&digest(&plain), "bind volume restored as plain");

    // The storage is re-provisioned empty; --driver-options binds it again.
    drop(src);
    std::fs::remove_dir_all(&data).unwrap();
    std::fs::create_dir(&data).unwrap();
    let bound = Volume::reserve("c11-bound");
    restore_to(&archive, &key, &bound, &["--driver-options"]).assert_ok();
    let info = bound.inspect();
    for (k, v) in opts {
        assert_eq!(info["Options"][k], v, "option {k} on {info:#}");
    }
    before.assert_same(&digest(&bound), "bind volume restored with its options");
    before.assert_same(&digest_dir(&data), "content in the bound directory");
}

/// `--replace` over a volume whose storage is outside Docker (a bind):
/// removing and recreating the volume would not empty it, and the old and
/// new content would mix. Refused, exit 1, nothing changed.
#[test]
fn replace_of_a_bind_volume_is_refused() {
    let src = Volume::new("bind-new");
    fill(&src, "echo new > /v/newfile");
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let archive = backup(src.name(), dest.path(), &key, &[]);

    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("old_only"), b"old\n").unwrap();
    let device = path_str(&data).to_owned();
    let opts = [("type", "none"), ("o", "bind"), ("device", device.as_str())];
    let target = Volume::with_options("bind-old", &[], &opts);
    let before = digest_dir(&data);
    let rollback = tempfile::tempdir().unwrap();
    let run = restore_to(
        &archive,
        &key,
        &target,
        &["--replace", "--rollback-to", path_str(rollback.path())],
    );
    run.assert_fails(1, "outside Docker");
    assert!(run.stderr.contains("hint:"), "{run}");
    before.assert_same(&digest_dir(&data), "the bound directory");
    assert_no_leftovers(target.name());
}
