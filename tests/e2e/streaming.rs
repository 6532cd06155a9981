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

    let bin = std::env::var("VOLSAFE_TEST_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_volsafe").to_owned());
    let script = r#"mount -t tmpfs -o size=16m tmpfs "$1" && TMPDIR="$1" && export TMPDIR && shift && exec "$@""#;
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
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
        .arg(private.path())
        .arg(&bin)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let run = run_volsafe(cmd, &args);
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
    assert_no_leftovers(src.name());
}

/// Ctrl-C while volsafe-tar streams: exit 130, and no helper, staging
/// directory or archive under a final name is left.
#[test]
fn ctrl_c_while_streaming_leaves_nothing() {
    use std::io::{BufRead, Read};
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
    let mut child = cmd.spawn().unwrap();
    let pid = child.id().to_string();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 {
        seen.push_str(&line);
        if line.contains(READ_FIFO) {
            std::thread::sleep(std::time::Duration::from_millis(500));
            Command::new("kill").args(["-INT", &pid]).status().unwrap();
            break;
        }
        line.clear();
    }
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    seen.push_str(&rest);
    let status = child.wait().unwrap().code();
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
