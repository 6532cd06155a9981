//! Interoperability both ways with Debian's `age`, `zstd` and GNU `tar`: a
//! user without volsafe can unpack its archives, and volsafe restores
//! archives made by those tools (C16).

use crate::common::{
    assert_no_leftovers, backup, digest, digest_dir, fill, path_str, quote, sh, volsafe, AgeKey,
    Volume,
};
use crate::fixtures;

/// `age -d -i key F | zstd -d | tar -x -C dir` gives exactly the volume's
/// tree, root included, and nothing else.
#[test]
fn standard_tools_unpack_a_volsafe_archive() {
    let src = Volume::new("to-std");
    fill(
        &src,
        &format!(
            "{}\n{}",
            fixtures::small_fixture(),
            fixtures::random_file(8)
        ),
    );
    let before = digest(&src);
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let archive = backup(src.name(), dest.path(), &key, &[]);

    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let decrypt = format!(
        "age -d -i {} {} | zstd -d -q",
        quote(key.identity()),
        quote(path_str(&archive))
    );
    sh(&format!(
        "{decrypt} | tar -x --numeric-owner -p -C {}",
        quote(path_str(&out))
    ));
    before
        .without_sockets()
        .assert_same(&digest_dir(&out), "unpacked with age | zstd | tar");

    // Relative names, the volume root first.
    let list = sh(&format!("{decrypt} | tar -t"));
    let names = String::from_utf8_lossy(&list.stdout);
    assert_eq!(
        names.lines().next(),
        Some("./"),
        "first entry is not the root"
    );
    let absolute: Vec<&str> = names.lines().filter(|n| !n.starts_with("./")).collect();
    assert!(absolute.is_empty(), "entries not under ./: {absolute:?}");
}

/// C16: `tar -C dir -c . | zstd | age -r KEY > F` made with standard tools
/// is restored by volsafe into a new volume, exactly.
fn restore_standard_archive(tar_flags: &str, suffix: &str) {
    let key = AgeKey::new();
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    fixtures::host_tree(&tree);
    let expected = digest_dir(&tree);
    let archive = work.path().join("std.tar.zst.age");
    sh(&format!(
        "tar {tar_flags} -C {} -c . | zstd -q | age -r {} > {}",
        quote(path_str(&tree)),
        quote(&key.recipient),
        quote(path_str(&archive))
    ));

    let target = Volume::reserve(suffix);
    volsafe(&[
        "restore",
        path_str(&archive),
        "--volume",
        target.name(),
        "-i",
        key.identity(),
    ])
    .assert_ok();
    assert_no_leftovers(target.name());
    expected.assert_same(&digest(&target), "restored standard-tools archive");
}

#[test]
fn c16_restore_archive_made_by_standard_tools() {
    restore_standard_archive("", "c16-gnu");
}

#[test]
fn c16_restore_pax_archive_made_by_standard_tools() {
    restore_standard_archive("--format=posix", "c16-pax");
}

/// An archive without volsafe's header names no volume: `--volume` is
/// required, and nothing is created meanwhile.
#[test]
fn c16_standard_archive_needs_volume_flag() {
    let key = AgeKey::new();
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    std::fs::write(tree.join("a"), "a").unwrap();
    let archive = work.path().join("std.tar.zst.age");
    sh(&format!(
        "tar -C {} -c . | zstd -q | age -r {} > {}",
        quote(path_str(&tree)),
        quote(&key.recipient),
        quote(path_str(&archive))
    ));
    let run = volsafe(&["restore", path_str(&archive), "-i", key.identity()]);
    assert!(
        matches!(run.code, Some(1) | Some(2)),
        "expected exit 1 or 2\n{run}"
    );
    assert!(
        run.stderr.contains("--volume"),
        "no hint to --volume\n{run}"
    );
}
