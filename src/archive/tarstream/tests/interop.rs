//! The writer's archives must list and extract with GNU tar, the tool a
//! user without volsafe falls back on, and the reader must take what GNU
//! tar writes in its pax and gnu formats. Skipped, loudly, where `tar` is
//! not GNU tar.

use super::*;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

fn gnu_tar() -> Option<Command> {
    let version = Command::new("tar").arg("--version").output().ok()?;
    if !String::from_utf8_lossy(&version.stdout).contains("GNU tar") {
        eprintln!("skipped: `tar` is not GNU tar");
        return None;
    }
    let mut tar = Command::new("tar");
    tar.env("LC_ALL", "C").env("TZ", "UTC");
    Some(tar)
}

fn run(mut cmd: Command) -> Vec<u8> {
    let out = cmd.output().unwrap();
    // GNU tar's only remark on a good archive: a date before 1970.
    let complaints = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.contains("implausibly old time stamp"))
        .count();
    assert!(
        out.status.success() && complaints == 0,
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn host_path(root: &Path, name: &[u8]) -> PathBuf {
    root.join(OsStr::from_bytes(name.strip_prefix(b"./").unwrap_or(name)))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `tar -tv` prints the mode the way `ls -l` does.
fn mode_string(kind: EntryKind, mode: u32) -> String {
    let mut s = String::from(match kind {
        EntryKind::File => '-',
        EntryKind::Dir => 'd',
        EntryKind::Symlink => 'l',
        EntryKind::HardLink => 'h',
        EntryKind::Fifo => 'p',
        EntryKind::CharDevice => 'c',
        EntryKind::BlockDevice => 'b',
    });
    for (shift, special, set, unset) in [
        (6, 0o4000, 's', 'S'),
        (3, 0o2000, 's', 'S'),
        (0, 0o1000, 't', 'T'),
    ] {
        let bits = mode >> shift;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(match (bits & 1 != 0, mode & special != 0) {
            (true, true) => set,
            (false, true) => unset,
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    s
}

/// What `tar --numeric-owner --full-time -tv` should print for `e`.
fn listing_line(e: &Entry) -> Vec<u8> {
    let when = time::OffsetDateTime::from_unix_timestamp(e.mtime).unwrap();
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let size = match e.kind {
        EntryKind::CharDevice | EntryKind::BlockDevice => {
            format!("{},{}", e.dev_major, e.dev_minor)
        }
        _ => e.size.to_string(),
    };
    let head = format!(
        "{} {}/{} {} {} ",
        mode_string(e.kind, e.mode),
        e.uid,
        e.gid,
        size,
        when.format(format).unwrap()
    );
    let mut line = [head.as_bytes(), &e.path].concat();
    match (e.kind, &e.link) {
        (EntryKind::Symlink, Some(t)) => line.extend_from_slice(&[&b" -> "[..], t].concat()),
        (EntryKind::HardLink, Some(t)) => line.extend_from_slice(&[&b" link to "[..], t].concat()),
        _ => {}
    }
    line
}

/// Collapses the column padding of a listing line.
fn squeeze(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut fields = 0;
    let mut rest = line;
    while fields < 5 {
        let start = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
        rest = &rest[start..];
        let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        out.extend_from_slice(&rest[..end]);
        out.push(b' ');
        rest = &rest[(end + 1).min(rest.len())..];
        fields += 1;
    }
    out.extend_from_slice(rest);
    out
}

fn everything() -> Vec<(Entry, Vec<u8>)> {
    let deep = [&b"./d/"[..], &[b'n'; 150], b"/", &[b'm'; 120]].concat();
    let mut root = entry(b"./", EntryKind::Dir);
    (root.mode, root.uid, root.gid) = (0o700, 999, 999);
    let mut sub = entry(b"./d/", EntryKind::Dir);
    sub.mode = 0o1777;
    let mut long_dir = entry(&[&b"./d/"[..], &[b'n'; 150], b"/"].concat(), EntryKind::Dir);
    long_dir.mtime = 86_400;
    let (mut tool, tool_data) = file(b"./d/tool", b"#!/bin/sh\nexit 0\n");
    (tool.mode, tool.uid, tool.gid) = (0o4755, 1000, 1001);
    let (mut old, old_data) = file(b"./old", b"from 1960");
    old.mtime = -315_619_200;
    let (mut big_ids, _) = file(b"./ids", b"");
    (big_ids.uid, big_ids.gid) = (3_000_000_000, 3_000_000);
    let mut pipe = entry(b"./pipe", EntryKind::Fifo);
    pipe.mode = 0o600;
    let mut null = entry(b"./null", EntryKind::CharDevice);
    (null.dev_major, null.dev_minor) = (1, 3);
    let mut loop0 = entry(b"./loop0", EntryKind::BlockDevice);
    (loop0.dev_major, loop0.dev_minor) = (7, 0);
    vec![
        (root, Vec::new()),
        (sub, Vec::new()),
        (long_dir, Vec::new()),
        file(&deep, &[b'z'; 1500]),
        (tool, tool_data),
        (old, old_data),
        (big_ids, Vec::new()),
        file(b"./caf\xe9.txt", b"latin-1"),
        link(b"./deep-link", EntryKind::Symlink, &deep[2..]),
        link(b"./up", EntryKind::Symlink, b"../../var/log/app"),
        link(b"./hard", EntryKind::HardLink, &deep),
        (pipe, Vec::new()),
        (null, Vec::new()),
        (loop0, Vec::new()),
    ]
}

#[test]
fn gnu_tar_lists_writer_archive_of_every_kind() {
    let Some(mut tar) = gnu_tar() else { return };
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("a.tar");
    let entries = everything();
    fs::write(&archive, write_archive(&entries)).unwrap();

    tar.args([
        "--numeric-owner",
        "--full-time",
        "--quoting-style=literal",
        "-tvf",
    ])
    .arg(&archive);
    let listing = run(tar);
    let got: Vec<Vec<u8>> = listing
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(squeeze)
        .collect();
    let want: Vec<Vec<u8>> = entries.iter().map(|(e, _)| listing_line(e)).collect();
    for (got, want) in got.iter().zip(&want) {
        assert_eq!(String::from_utf8_lossy(got), String::from_utf8_lossy(want));
    }
    assert_eq!(got.len(), want.len());
}

#[test]
fn gnu_tar_extracts_writer_archive() {
    let Some(mut tar) = gnu_tar() else { return };
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("a.tar");
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let entries: Vec<_> = everything()
        .into_iter()
        .filter(|(e, _)| !e.kind.is_device())
        .collect();
    fs::write(&archive, write_archive(&entries)).unwrap();

    tar.args(["-p", "--numeric-owner", "-xf"])
        .arg(&archive)
        .arg("-C")
        .arg(&out);
    run(tar);
    let hard_target = entries
        .iter()
        .find(|(e, _)| e.kind == EntryKind::HardLink)
        .unwrap();
    let hard_target = host_path(&out, hard_target.0.link.as_ref().unwrap());
    for (e, data) in &entries {
        let path = host_path(&out, &e.path);
        let meta = fs::symlink_metadata(&path).unwrap();
        let name = e.path_lossy();
        match e.kind {
            EntryKind::File => assert_eq!(&fs::read(&path).unwrap(), data, "{name}"),
            EntryKind::Dir => assert!(meta.is_dir(), "{name}"),
            EntryKind::Fifo => assert!(meta.file_type().is_fifo(), "{name}"),
            EntryKind::Symlink => {
                let target = fs::read_link(&path).unwrap();
                assert_eq!(
                    target.as_os_str().as_bytes(),
                    e.link.as_deref().unwrap(),
                    "{name}"
                );
                continue;
            }
            EntryKind::HardLink => {
                assert_eq!(
                    meta.ino(),
                    fs::metadata(&hard_target).unwrap().ino(),
                    "{name}"
                );
                continue;
            }
            EntryKind::CharDevice | EntryKind::BlockDevice => unreachable!(),
        }
        assert_eq!(meta.mtime(), e.mtime, "{name}");
        if is_root() {
            assert_eq!(meta.permissions().mode() & 0o7777, e.mode, "{name}");
            assert_eq!(
                (u64::from(meta.uid()), u64::from(meta.gid())),
                (e.uid, e.gid),
                "{name}"
            );
        } else {
            assert_eq!(meta.permissions().mode() & 0o777, e.mode & 0o777, "{name}");
        }
    }
}

/// A file writer that leaves holes for runs of zeros, so that an archive
/// holding an 8 GiB file costs no disk.
struct SparseFile {
    file: fs::File,
    len: u64,
}

impl Write for SparseFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        use std::io::{Seek, SeekFrom};
        // Slice equality is a memcmp even in a debug build.
        static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
        if buf.len() <= ZEROS.len() && buf == &ZEROS[..buf.len()] {
            self.file.seek(SeekFrom::Current(buf.len() as i64))?;
        } else {
            self.file.write_all(buf)?;
        }
        self.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.set_len(self.len)
    }
}

#[test]
fn gnu_tar_lists_a_file_over_8_gib() {
    let Some(mut tar) = gnu_tar() else { return };
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("big.tar");
    let (mut big, _) = file(b"./big.img", b"");
    big.size = (8 << 30) + 1;
    let after = entry(b"./after/", EntryKind::Dir);
    let file = fs::File::create(&archive).unwrap();
    let mut w = TarWriter::new(SparseFile { file, len: 0 });
    w.append(&big, &mut io::repeat(0).take(big.size)).unwrap();
    w.append(&after, &mut io::empty()).unwrap();
    w.finish().unwrap().flush().unwrap();

    tar.args(["--numeric-owner", "--full-time", "-tvf"])
        .arg(&archive);
    let listing = run(tar);
    let got: Vec<Vec<u8>> = listing
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(squeeze)
        .collect();
    assert_eq!(got, [listing_line(&big), listing_line(&after)]);
}

/// A tree with what the reader has to get right from GNU tar.
fn make_tree(root: &Path) {
    let deep = root
        .join("d")
        .join("n".repeat(150))
        .join(format!("{}.txt", "m".repeat(150)));
    fs::create_dir_all(deep.parent().unwrap()).unwrap();
    fs::write(&deep, vec![b'z'; 1500]).unwrap();
    fs::hard_link(&deep, root.join("hard")).unwrap();
    std::os::unix::fs::symlink(deep.strip_prefix(root).unwrap(), root.join("deep-link")).unwrap();
    fs::write(root.join(OsStr::from_bytes(b"caf\xe9")), b"latin-1").unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    fs::write(root.join("tool"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(root.join("tool"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::set_permissions(root.join("d"), fs::Permissions::from_mode(0o700)).unwrap();
    let old = fs::File::create(root.join("old")).unwrap();
    old.set_modified(SystemTime::UNIX_EPOCH - Duration::from_secs(315_619_200))
        .unwrap();
    let fifo = std::ffi::CString::new(root.join("pipe").as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o640) }, 0);
}

/// Reads a GNU tar archive of `make_tree` and checks every entry against
/// the tree on disk.
fn check_gnu_tar_archive(format: &str) {
    let Some(mut tar) = gnu_tar() else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    make_tree(&root);
    let archive = dir.path().join("a.tar");
    tar.args([&format!("--format={format}"), "--sort=name", "-cf"])
        .arg(&archive)
        .arg("-C")
        .arg(&root)
        .arg(".");
    run(tar);

    let bytes = fs::read(&archive).unwrap();
    let mut r = TarReader::new(&bytes[..]);
    let mut seen = Vec::new();
    while let Some(e) = r.next_entry().unwrap() {
        let path = host_path(&root, e.path.strip_suffix(b"/").unwrap_or(&e.path));
        let meta = fs::symlink_metadata(&path).unwrap();
        let name = e.path_lossy();
        let mut data = Vec::new();
        r.copy_data(&mut data).unwrap();
        assert_eq!(e.mode, meta.permissions().mode() & 0o7777, "{name}");
        assert_eq!(e.mtime, meta.mtime(), "{name}");
        assert_eq!(
            (e.uid, e.gid),
            (u64::from(meta.uid()), u64::from(meta.gid())),
            "{name}"
        );
        match e.kind {
            EntryKind::File => assert_eq!(data, fs::read(&path).unwrap(), "{name}"),
            EntryKind::Dir => assert!(meta.is_dir() && e.path.ends_with(b"/"), "{name}"),
            EntryKind::Symlink => {
                let target = fs::read_link(&path).unwrap();
                assert_eq!(
                    e.link.as_deref(),
                    Some(target.as_os_str().as_bytes()),
                    "{name}"
                );
            }
            EntryKind::HardLink => {
                let target = host_path(&root, e.link.as_deref().unwrap());
                assert_eq!(meta.ino(), fs::metadata(target).unwrap().ino(), "{name}");
            }
            EntryKind::Fifo => assert!(meta.file_type().is_fifo(), "{name}"),
            _ => panic!("unexpected {e:?}"),
        }
        assert_eq!(e.size, data.len() as u64);
        seen.push(e.path);
    }
    seen.sort();
    let deep = [&b"./d/"[..], &[b'n'; 150], b"/", &[b'm'; 150], b".txt"].concat();
    let mut want: Vec<Vec<u8>> = [
        "./",
        "./d/",
        "./deep-link",
        "./empty",
        "./hard",
        "./old",
        "./pipe",
        "./tool",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .chain([
        b"./caf\xe9".to_vec(),
        [&b"./d/"[..], &[b'n'; 150], b"/"].concat(),
        deep,
    ])
    .collect();
    want.sort();
    assert_eq!(seen, want);
    // GNU tar pads to a 10 KiB record; the reader leaves that unread.
    let consumed = r.bytes_read() as usize;
    assert_eq!(consumed % BLOCK, 0);
    assert!(r.into_inner().iter().all(|&b| b == 0));
    assert_eq!(bytes.len() % 10240, 0);
}

#[test]
fn reader_reads_gnu_tar_pax_archive_with_long_names() {
    check_gnu_tar_archive("pax");
}

#[test]
fn reader_reads_gnu_tar_gnu_archive_with_long_names() {
    check_gnu_tar_archive("gnu");
}
