//! Unit tests of the extraction, on a temporary directory.

use super::super::tarstream::TarWriter;
use super::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

fn entry(path: &str, kind: EntryKind, mode: u32, mtime: i64) -> Entry {
    Entry {
        path: path.as_bytes().to_vec(),
        kind,
        mode,
        // SAFETY: neither call can fail.
        uid: u64::from(unsafe { libc::geteuid() }),
        gid: u64::from(unsafe { libc::getegid() }),
        uname: Vec::new(),
        gname: Vec::new(),
        mtime,
        size: 0,
        link: None,
        dev_major: 0,
        dev_minor: 0,
        xattrs: Vec::new(),
    }
}

/// The tar of `entries` (files hold `data`).
fn tar_of(entries: &[Entry], data: &[u8], end: bool) -> Vec<u8> {
    let mut out = TarWriter::new(Vec::new());
    for e in entries {
        let mut e = e.clone();
        if e.kind == EntryKind::File {
            e.size = data.len() as u64;
        }
        out.append(&e, &mut &data[..]).unwrap();
    }
    if end {
        out.finish().unwrap()
    } else {
        std::mem::take(out.get_mut())
    }
}

fn extract(root: &Path, tar: &[u8]) -> Result<(), Failure> {
    let mut x = Extract::new(root, b"volume")?;
    x.all(TarReader::new(tar))
}

#[test]
fn makes_each_kind_with_its_mode_and_times() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut link = entry("volume/d/link", EntryKind::Symlink, 0o777, 300);
    link.link = Some(b"../gone".to_vec());
    let mut hard = entry("volume/hard", EntryKind::HardLink, 0o4755, 0);
    hard.link = Some(b"volume/d/f".to_vec());
    let entries = [
        entry("volume/", EntryKind::Dir, 0o750, 100),
        entry("volume/d/", EntryKind::Dir, 0o2705, 200),
        entry("volume/d/f", EntryKind::File, 0o4755, 400),
        link,
        entry("volume/fifo", EntryKind::Fifo, 0o640, 500),
        hard,
        // No entry of its own for `n/`: made on the way.
        entry("volume/n/old", EntryKind::File, 0o600, -86_400),
    ];
    extract(root, &tar_of(&entries, b"data", true)).unwrap();

    let meta = |p: &str| std::fs::symlink_metadata(root.join(p)).unwrap();
    assert_eq!(meta("").mode() & 0o7777, 0o750);
    assert_eq!(meta("").mtime(), 100);
    assert_eq!(meta("d").mode() & 0o7777, 0o2705);
    assert_eq!(meta("d").mtime(), 200);
    assert_eq!(meta("d/f").mode() & 0o7777, 0o4755);
    assert_eq!(meta("d/f").mtime(), 400);
    assert_eq!(std::fs::read(root.join("d/f")).unwrap(), b"data");
    assert_eq!(
        std::fs::read_link(root.join("d/link")).unwrap(),
        Path::new("../gone")
    );
    assert_eq!(meta("d/link").mtime(), 300);
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(
        &meta("fifo").file_type()
    ));
    assert_eq!(meta("fifo").mode() & 0o7777, 0o640);
    assert_eq!(meta("hard").ino(), meta("d/f").ino());
    assert_eq!(meta("n").permissions().mode() & 0o7777, 0o755);
    assert_eq!(meta("n/old").mtime(), -86_400);
}

/// Without the end-of-archive marker nothing counts as done.
#[test]
fn a_stream_cut_before_its_end_fails() {
    let dir = tempfile::tempdir().unwrap();
    let entries = [
        entry("volume/", EntryKind::Dir, 0o755, 1),
        entry("volume/f", EntryKind::File, 0o644, 1),
    ];
    let tar = tar_of(&entries, b"data", false);
    assert!(matches!(
        extract(dir.path(), &tar),
        Err(Failure::Stream(TarError::Truncated { .. }))
    ));
}

#[test]
fn entries_outside_the_root_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["volume/../x", "other/x", "volumex/y"] {
        let entries = [entry(bad, EntryKind::File, 0o644, 1)];
        assert!(
            matches!(
                extract(dir.path(), &tar_of(&entries, b"", true)),
                Err(Failure::Create(_))
            ),
            "{bad}"
        );
    }
}

/// A symlink of the volume where a directory is expected is not
/// followed out of it.
#[test]
fn a_symlink_in_the_way_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("esc")).unwrap();
    let entries = [entry("volume/esc/f", EntryKind::File, 0o644, 1)];
    assert!(extract(dir.path(), &tar_of(&entries, b"x", true)).is_err());
    assert!(!outside.path().join("f").exists());
}

#[test]
fn a_duplicate_file_replaces_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let entries = [
        entry("volume/f", EntryKind::File, 0o644, 1),
        entry("volume/f", EntryKind::File, 0o600, 2),
    ];
    extract(dir.path(), &tar_of(&entries, b"again", true)).unwrap();
    let meta = std::fs::metadata(dir.path().join("f")).unwrap();
    assert_eq!((meta.mode() & 0o777, meta.mtime()), (0o600, 2));
}

#[test]
fn device_numbers_join_as_glibc_does() {
    assert_eq!(make_dev(1, 7), 0x0107);
    assert_eq!(make_dev(259, 0x12345), 0x1231_0345);
    assert_eq!(
        super::super::split_dev(make_dev(4095, 1 << 19)),
        (4095, 1 << 19)
    );
}

/// A hard link whose directory the cache drops to reach its target's:
/// it lands in its own directory, with the header's mode again after the
/// owner's change.
#[test]
fn a_hard_link_in_another_directory_lands_in_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut hard = entry("volume/x/h", EntryKind::HardLink, 0o4755, 0);
    hard.link = Some(b"volume/d/f".to_vec());
    let entries = [
        entry("volume/", EntryKind::Dir, 0o755, 1),
        entry("volume/d/", EntryKind::Dir, 0o755, 1),
        entry("volume/d/f", EntryKind::File, 0o4755, 1),
        entry("volume/x/", EntryKind::Dir, 0o755, 1),
        hard,
    ];
    extract(root, &tar_of(&entries, b"data", true)).unwrap();
    let meta = |p: &str| std::fs::symlink_metadata(root.join(p)).unwrap();
    assert_eq!(meta("x/h").ino(), meta("d/f").ino());
    assert!(!root.join("d/h").exists());
    assert_eq!(meta("d/f").mode() & 0o7777, 0o4755);
}

/// A hard link to a name that is not there fails, and makes no directory
/// on the way to it.
#[test]
fn a_hard_link_to_nothing_fails_and_makes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut hard = entry("volume/h", EntryKind::HardLink, 0o644, 0);
    hard.link = Some(b"volume/nowhere/f".to_vec());
    assert!(extract(dir.path(), &tar_of(&[hard], b"", true)).is_err());
    assert!(!dir.path().join("nowhere").exists());
}

/// A directory, then a file of the same name: the file replaces the
/// directory and all it holds, as the Engine replaces it.
#[test]
fn a_file_after_a_directory_of_its_name_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut link = entry("volume/x", EntryKind::Symlink, 0o777, 3);
    link.link = Some(b"/".to_vec());
    let entries = [
        entry("volume/", EntryKind::Dir, 0o755, 1),
        entry("volume/x/", EntryKind::Dir, 0o755, 1),
        entry("volume/x/sub/", EntryKind::Dir, 0o755, 1),
        entry("volume/x/sub/in", EntryKind::File, 0o644, 1),
        link,
    ];
    extract(dir.path(), &tar_of(&entries, b"data", true)).unwrap();
    let meta = std::fs::symlink_metadata(dir.path().join("x")).unwrap();
    assert!(meta.file_type().is_symlink());
}
