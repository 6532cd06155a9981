//! Streaming helpers (src/engine/streamer.rs): on this machine's daemon a
//! backup reads the volume from volsafe-tar through a FIFO. It must write
//! the very tar the archive endpoint gives, fall back to the endpoint when
//! the daemon cannot see volsafe's temporary directory, and leave nothing
//! behind on any path.

use std::path::Path;
use std::process::Command;

use crate::common::{
    assert_no_leftovers, files_under, fill, path_str, run_volsafe, volsafe, volsafe_command,
    AgeKey, Run, Volume,
};
use crate::fixtures;

/// What volsafe logs (`-v`) when it reads a streaming helper's FIFO, and
/// when it turns to the archive endpoint instead.
const READ_FIFO: &str = "reading the streaming helper's FIFO";
const FELL_BACK: &str = "reading volumes through the Engine's archive endpoint";

/// `volsafe backup VOLUME --to DEST -v` with `envs` set.
fn backup_with(volume: &Volume, dest: &Path, key: &AgeKey, envs: &[(&str, &str)]) -> Run {
    let args = [
        "backup",
        volume.name(),
        "--to",
        path_str(dest),
        "-r",
        &key.recipient,
        "-v",
    ];
    let mut cmd = volsafe_command(&args);
    cmd.envs(envs.iter().copied());
    run_volsafe(cmd, &args)
}

/// The `tar blake3` that `volsafe verify` prints for the run's archive.
fn tar_digest(run: &Run, key: &AgeKey) -> String {
    let archive = run.first_line();
    let verified = volsafe(&["verify", &archive, "-i", key.identity()]);
    verified.assert_ok();
    let text = format!("{}{}", verified.stdout, verified.stderr);
    let (_, rest) = text
        .split_once("tar blake3 ")
        .unwrap_or_else(|| panic!("no tar blake3 in\n{verified}"));
    rest.split_whitespace().next().unwrap().to_owned()
}

/// Staging directories left in `dir`.
fn staging_left(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("volsafe-stream-"))
        .collect()
}

/// Every kind of entry the fixtures make (C01-C04, hard links, a FIFO,
/// devices, long and non-UTF-8 names, setuid bits, old mtimes): the tar
/// re-framed from volsafe-tar's stream is byte for byte the one re-framed
/// from the archive endpoint's.
#[test]
fn streaming_helper_writes_the_endpoints_tar() {
    let src = Volume::new("stream-same");
    fill(
        &src,
        &format!(
            "{}\n{}\n{}",
            fixtures::small_fixture(),
            fixtures::many_files(300),
            // Hard links to things without data: the Engine writes them as
            // links too.
            "ln -s hard /v/hl-sym && ln /v/hl-sym /v/hl-sym2 && mkfifo /v/hl-fifo \
             && ln /v/hl-fifo /v/hl-fifo2"
        ),
    );
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let tmpdir = path_str(tmp.path());

    let streamed = backup_with(&src, dest.path(), &key, &[("TMPDIR", tmpdir)]);
    streamed.assert_ok();
    // Read from the FIFO, not from the endpoint after a fallback.
    assert!(
        streamed.stderr.contains(READ_FIFO) && !streamed.stderr.contains(FELL_BACK),
        "{streamed}"
    );
    let endpoint = backup_with(
        &src,
        dest.path(),
        &key,
        &[("TMPDIR", tmpdir), ("VOLSAFE_STREAM", "endpoint")],
    );
    endpoint.assert_ok();
    assert!(endpoint.stderr.contains("streaming=false"), "{endpoint}");
    assert!(!endpoint.stderr.contains(READ_FIFO), "{endpoint}");

    assert_eq!(tar_digest(&streamed, &key), tar_digest(&endpoint, &key));
    assert!(staging_left(tmp.path()).is_empty());
    assert_no_leftovers(src.name());
}

/// volsafe run where the daemon cannot see its temporary directory (in a
/// container, or a service with a private /tmp): here a tmpfs mounted in a
/// mount namespace of its own. The daemon refuses the bind mount, and the
/// backup goes through the archive endpoint, with the same tar.
#[test]
fn unseen_temporary_directory_falls_back_to_the_endpoint() {
    let src = Volume::new("stream-unseen");
    fill(&src, &fixtures::small_fixture());
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let private = tempfile::tempdir().unwrap();

    let args = [
        "backup",
        src.name(),
        "--no-progress",
        "--to",
        path_str(dest.path()),
        "-r",
        &key.recipient,
        "-v",
    ];
    let run = with_unseen_tmpdir(private.path(), &args);
    run.assert_ok();
    assert!(run.stderr.contains(FELL_BACK), "{run}");
    assert!(
        run.stderr.contains("bind source path does not exist"),
        "{run}"
    );
    assert!(run.stderr.contains("streaming=false"), "{run}");

    let endpoint = backup_with(&src, dest.path(), &key, &[("VOLSAFE_STREAM", "endpoint")]);
    endpoint.assert_ok();
    assert_eq!(tar_digest(&run, &key), tar_digest(&endpoint, &key));

    // A restore there goes through the endpoint too.
    let target = Volume::reserve("stream-unseen-restore");
    let archive = run.first_line();
    let args = [
        "restore",
        &archive,
        "--volume",
        target.name(),
        "-i",
        key.identity(),
        "-v",
    ];
    let restored = with_unseen_tmpdir(private.path(), &args);
    restored.assert_ok();
    assert!(restored.stderr.contains(FELL_BACK), "{restored}");
    assert!(!restored.stderr.contains(WRITE_FIFO), "{restored}");
    crate::common::digest(&src)
        .without_sockets()
        .assert_same(&crate::common::digest(&target), "restored volume");
    assert_no_leftovers(src.name());
    assert_no_leftovers(target.name());
}

/// Runs volsafe with `args` where the daemon cannot see its temporary
/// directory: `$TMPDIR` is a tmpfs mounted in a mount namespace of its own,
/// at `private`.
fn with_unseen_tmpdir(private: &Path, args: &[&str]) -> Run {
    let bin = std::env::var("VOLSAFE_TEST_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_volsafe").to_owned());
    let script = r#"mount -t tmpfs -o size=16m tmpfs "$1" && TMPDIR="$1" && export TMPDIR && shift && exec "$@""#;
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
        .arg(private)
        .arg(&bin)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    run_volsafe(cmd, args)
}

/// Runs `cmd` (a `volsafe … -v`) and sends it SIGINT `delay_ms` after its
/// log first says `needle`. Returns its exit status and all it printed on
/// standard error.
fn interrupt_after(mut cmd: Command, needle: &str, delay_ms: u64) -> (Option<i32>, String) {
    use std::io::{BufRead, Read};
    let mut child = cmd.spawn().unwrap();
    let pid = child.id().to_string();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 {
        seen.push_str(&line);
        if line.contains(needle) {
            std::thread::sleep(std::time::Duration::from_millis(delay_ms));
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

/// Ctrl-C while volsafe-tar streams: exit 130, and no helper, staging
/// directory or archive under a final name is left.
#[test]
fn ctrl_c_while_streaming_leaves_nothing() {
    let src = Volume::new("stream-ctrl-c");
    // Seconds of reading: 2 GiB of zeros, sparse on disk.
    fill(&src, "truncate -s 2G /v/big.bin && echo z > /v/zz-after");
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "backup",
        src.name(),
        "--to",
        path_str(dest.path()),
        "-r",
        &key.recipient,
        "-v",
    ];
    let mut cmd = volsafe_command(&args);
    cmd.env("TMPDIR", tmp.path());
    let (status, seen) = interrupt_after(cmd, READ_FIFO, 500);
    assert_eq!(status, Some(130), "{seen}");
    assert!(
        seen.contains(READ_FIFO) && !seen.contains(FELL_BACK),
        "{seen}"
    );
    assert_no_leftovers(src.name());
    assert!(staging_left(tmp.path()).is_empty(), "{seen}");
    let finals: Vec<_> = files_under(dest.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".age"))
        .collect();
    assert!(finals.is_empty(), "{finals:?}\n{seen}");
}

/// What volsafe logs (`-v`) when a restore writes an extracting helper's
/// FIFO.
const WRITE_FIFO: &str = "writing to the streaming helper's FIFO";

/// `volsafe restore ARCHIVE --volume TARGET -v` with `envs` set.
fn restore_with(archive: &Path, target: &str, key: &AgeKey, envs: &[(&str, &str)]) -> Run {
    let args = [
        "restore",
        path_str(archive),
        "--volume",
        target,
        "-i",
        key.identity(),
        "-v",
    ];
    let mut cmd = volsafe_command(&args);
    cmd.envs(envs.iter().copied());
    run_volsafe(cmd, &args)
}

/// The volume's directory on this host (the tests run as root beside the
/// daemon).
fn mountpoint(volume: &Volume) -> std::path::PathBuf {
    volume.inspect()["Mountpoint"]
        .as_str()
        .expect("a Mountpoint")
        .into()
}

/// A version-2 file capability: cap_net_bind_service, permitted and
/// effective.
const CAPABILITY: [u8; 20] = [
    0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00,
];

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let name = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: NUL-terminated strings, a buffer writable for its length.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n >= 0).then(|| {
        buf.truncate(n as usize);
        buf
    })
}

/// Every kind of entry (the fixtures, hard links to a symlink and a FIFO,
/// devices, a file capability and setuid bits on files with two names): a
/// restore through the extracting helper
/// makes the very volume that the archive endpoint makes.
#[test]
fn streaming_restore_makes_the_endpoints_volume() {
    use std::os::unix::fs::MetadataExt;
    let src = Volume::new("xstream-src");
    fill(
        &src,
        &format!(
            "{}\n{}\n{}",
            fixtures::small_fixture(),
            fixtures::many_files(300),
            "ln -s hard /v/hl-sym && ln /v/hl-sym /v/hl-sym2 && mkfifo /v/hl-fifo \
             && ln /v/hl-fifo /v/hl-fifo2 && mknod /v/dev-null c 1 3 \
             && mknod /v/dev-loop b 7 200 && chmod 0620 /v/dev-null \
             && echo cap > /v/with-cap && chmod 0750 /v/with-cap \
             && ln /v/with-cap /v/with-cap2 && echo s > /v/suid-odd \
             && chown 1000:2000 /v/suid-odd && chmod 6755 /v/suid-odd \
             && ln /v/suid-odd /v/suid-odd2 \
             && touch -d '2020-02-20 20:20:20' /v"
        ),
    );
    let src_dir = mountpoint(&src);
    let capped = src_dir.join("with-cap");
    // SAFETY: NUL-terminated strings and a value readable for its length.
    let set = unsafe {
        let path = std::ffi::CString::new(capped.to_str().unwrap()).unwrap();
        libc::setxattr(
            path.as_ptr(),
            c"security.capability".as_ptr(),
            CAPABILITY.as_ptr().cast(),
            CAPABILITY.len(),
            0,
        )
    };
    assert_eq!(set, 0, "setxattr: {}", std::io::Error::last_os_error());
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let archive = crate::common::backup(src.name(), dest.path(), &key, &[]);

    let streamed = Volume::reserve("xstream-fifo");
    let run = restore_with(&archive, streamed.name(), &key, &[]);
    run.assert_ok();
    assert!(
        run.stderr.contains(WRITE_FIFO) && !run.stderr.contains(FELL_BACK),
        "{run}"
    );
    let endpoint = Volume::reserve("xstream-endpoint");
    let run = restore_with(
        &archive,
        endpoint.name(),
        &key,
        &[("VOLSAFE_STREAM", "endpoint")],
    );
    run.assert_ok();
    assert!(!run.stderr.contains(WRITE_FIFO), "{run}");

    let want = crate::common::digest(&endpoint);
    want.assert_same(&crate::common::digest(&streamed), "streamed restore");
    // And both are the source, but for its socket.
    crate::common::digest(&src)
        .without_sockets()
        .assert_same(&want, "restored volume");
    // What the digest does not show: device numbers and the capability.
    let (a, b) = (mountpoint(&streamed), mountpoint(&endpoint));
    for dev in ["dev-null", "dev-loop"] {
        let rdev = |dir: &Path| std::fs::symlink_metadata(dir.join(dev)).unwrap().rdev();
        assert_eq!(rdev(&a), rdev(&src_dir), "{dev}");
        assert_eq!(rdev(&b), rdev(&src_dir), "{dev}");
    }
    // On both names of the file: a hard link's change of owner clears it.
    let cap = Some(CAPABILITY.to_vec());
    for name in ["with-cap", "with-cap2"] {
        assert_eq!(xattr(&a.join(name), "security.capability"), cap, "{name}");
        assert_eq!(xattr(&b.join(name), "security.capability"), cap, "{name}");
    }
    assert_no_leftovers(streamed.name());
    assert_no_leftovers(endpoint.name());
}

/// A file that does not fit: the restore names it and the cause, with a
/// hint, exits 1, and leaves the (existing, empty) volume empty again.
#[test]
fn streaming_restore_names_the_file_that_did_not_fit() {
    let src = Volume::new("xstream-big");
    fill(&src, &fixtures::random_file(3));
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let archive = crate::common::backup(src.name(), dest.path(), &key, &[]);
    let small = Volume::with_options(
        "xstream-small",
        &[],
        &[("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=1m")],
    );
    let run = restore_with(&archive, small.name(), &key, &[]);
    run.assert_fails(1, "No space left on device");
    assert!(run.stderr.contains(WRITE_FIFO), "{run}");
    assert!(run.stderr.contains("\"./big.bin\""), "{run}");
    assert!(run.stderr.contains("hint:"), "{run}");
    let left = crate::common::digest(&small);
    assert_eq!(
        left.len(),
        1,
        "the volume holds more than its root: {left:?}"
    );
    assert_no_leftovers(small.name());
}

/// Ctrl-C while the extracting helper writes the volume: exit 130, the
/// volume this restore created is gone, and no helper or staging
/// directory is left.
#[test]
fn ctrl_c_while_streaming_a_restore_leaves_nothing() {
    let src = Volume::new("xstream-ctrl-c-src");
    // Seconds of writing: 2 GiB of zeros.
    fill(&src, "truncate -s 2G /v/big.bin && echo z > /v/zz-after");
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let archive = crate::common::backup(src.name(), dest.path(), &key, &[]);
    let target = Volume::reserve("xstream-ctrl-c");
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "restore",
        path_str(&archive),
        "--volume",
        target.name(),
        "-i",
        key.identity(),
        "-v",
    ];
    let mut cmd = volsafe_command(&args);
    cmd.env("TMPDIR", tmp.path());
    let (status, seen) = interrupt_after(cmd, WRITE_FIFO, 300);
    assert_eq!(status, Some(130), "{seen}");
    assert!(
        !target.exists(),
        "the half-restored volume is there\n{seen}"
    );
    assert_no_leftovers(target.name());
    assert!(staging_left(tmp.path()).is_empty(), "{seen}");
}
