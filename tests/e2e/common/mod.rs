//! Helpers for the end-to-end tests: real volumes on this machine's Docker
//! daemon, a tiny local image to fill and inspect them, and a runner for the
//! `volsafe` binary.
//!
//! Everything a test creates carries the prefix `vstest-<pid>-<n>-` and is
//! removed by a guard's `Drop`, so a failing test leaves the daemon as it
//! found it. No helper here pulls an image or touches the network: every
//! container gets `--network none`.

pub mod tree;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use tree::{digest, digest_dir, Tree};

/// The local image the fixtures run in; built by [`test_image`].
pub const TEST_IMAGE: &str = "volsafe-test-busybox:1";

/// The label on [`TEST_IMAGE`], so CI can remove it afterwards.
pub const TEST_IMAGE_LABEL: &str = "io.volsafe.test=1";

/// How long one `volsafe` run may take before the test kills it.
const VOLSAFE_TIMEOUT: Duration = Duration::from_secs(600);

/// A name no other test, and no other test process, uses:
/// `vstest-<pid>-<counter>-<suffix>`.
pub fn unique_name(suffix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let suffix: String = suffix
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("vstest-{}-{n}-{suffix}", std::process::id())
}

/// Runs `docker ARGS` and returns its output, whatever the exit status.
pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("docker: cannot run the docker CLI")
}

/// Runs `docker ARGS`, panics unless it succeeds, and returns its stdout.
pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {}: {}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The Engine's `Name`, the directory level between DIR and the volume.
pub fn daemon_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        docker_ok(&["info", "--format", "{{.Name}}"])
            .trim()
            .to_owned()
    })
}

/// Makes sure [`TEST_IMAGE`] exists and returns its name.
///
/// Built once per process from the host's static busybox with
/// `docker import`, never pulled. Two processes racing here both import;
/// the later tag wins and the other image is left untagged with the same
/// label, which CI removes; the content is the same either way.
pub fn test_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        if !docker(&["image", "inspect", TEST_IMAGE]).status.success() {
            import_test_image();
        }
        let out = docker(&[
            "run",
            "--rm",
            "--network",
            "none",
            TEST_IMAGE,
            "sh",
            "-c",
            "true",
        ]);
        assert!(
            out.status.success(),
            "{TEST_IMAGE} does not run: {}\nbusybox must be statically linked \
             (apt-get install busybox-static)",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    TEST_IMAGE
}

fn busybox_path() -> PathBuf {
    if let Some(p) = std::env::var_os("VOLSAFE_TEST_BUSYBOX") {
        return PathBuf::from(p);
    }
    ["/usr/bin/busybox", "/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("busybox not found: apt-get install busybox-static")
}

fn import_test_image() {
    let busybox = busybox_path();
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("rootfs");
    for d in ["bin", "tmp", "etc"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir rootfs");
    }
    std::fs::copy(&busybox, root.join("bin/busybox"))
        .unwrap_or_else(|e| panic!("copy {}: {e}", busybox.display()));
    let list = Command::new(&busybox)
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))
                .expect("symlink applet");
        }
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777))
        .expect("chmod tmp");
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").expect("passwd");
    std::fs::write(root.join("etc/group"), "root:x:0:\n").expect("group");

    let mut tar = Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(&root)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .expect("tar");
    let import = Command::new("docker")
        .args([
            "import",
            "--change",
            &format!("LABEL {TEST_IMAGE_LABEL}"),
            "--change",
            "ENV PATH=/bin",
            "-",
            TEST_IMAGE,
        ])
        .stdin(tar.stdout.take().expect("tar stdout"))
        .output()
        .expect("docker import");
    assert!(
        tar.wait().expect("tar").success(),
        "tar of the rootfs failed"
    );
    assert!(
        import.status.success(),
        "docker import {TEST_IMAGE}: {}",
        String::from_utf8_lossy(&import.stderr)
    );
}

/// Force-removes every container that references `volume` or carries
/// volsafe's label for it (helpers, locks, leases).
pub fn remove_containers_of(volume: &str) {
    let by_volume = format!("volume={volume}");
    let by_label = format!("label=io.volsafe.volume={volume}");
    let mut ids = Vec::new();
    for filter in [&by_volume, &by_label] {
        let out = docker(&["ps", "-aq", "--filter", filter]);
        ids.extend(
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(str::to_owned),
        );
    }
    ids.sort();
    ids.dedup();
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f", "-v"];
        args.extend(ids.iter().map(String::as_str));
        docker(&args);
    }
}

/// A Docker volume owned by one test, removed (with any container that
/// uses it) when dropped.
pub struct Volume {
    name: String,
}

impl Volume {
    /// Creates a plain local volume.
    pub fn new(suffix: &str) -> Volume {
        Volume::with_options(suffix, &[], &[])
    }

    /// Creates a local volume with labels and driver options (`-o k=v`).
    pub fn with_options(
        suffix: &str,
        labels: &[(&str, &str)],
        driver_opts: &[(&str, &str)],
    ) -> Volume {
        let volume = Volume::reserve(suffix);
        let mut args = vec!["volume".to_owned(), "create".to_owned()];
        for (k, v) in labels {
            args.push("--label".to_owned());
            args.push(format!("{k}={v}"));
        }
        for (k, v) in driver_opts {
            args.push("-o".to_owned());
            args.push(format!("{k}={v}"));
        }
        args.push(volume.name.clone());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker_ok(&args);
        volume
    }

    /// A name for a volume that volsafe (or nobody) will create; removed on
    /// drop if it exists by then.
    pub fn reserve(suffix: &str) -> Volume {
        Volume {
            name: unique_name(suffix),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn exists(&self) -> bool {
        docker(&["volume", "inspect", &self.name]).status.success()
    }

    /// `docker volume inspect`, the first (only) object.
    pub fn inspect(&self) -> serde_json::Value {
        let out = docker_ok(&["volume", "inspect", &self.name]);
        let mut all: Vec<serde_json::Value> =
            serde_json::from_str(&out).expect("volume inspect json");
        all.remove(0)
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        remove_containers_of(&self.name);
        docker(&["volume", "rm", "-f", &self.name]);
    }
}

/// Runs a shell script as root in the test image with `volume` at `/v`.
pub fn fill(volume: &Volume, script: &str) {
    let mount = format!("{}:/v", volume.name());
    let out = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &mount,
        test_image(),
        "sh",
        "-c",
        script,
    ]);
    assert!(
        out.status.success(),
        "fill {}: {}\nstdout: {}\nstderr: {}",
        volume.name(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A container of the test image that mounts `volume` at /data: running
/// (`sleep`) if `running`, else only created. Returns its name; the
/// volume's guard removes it.
pub fn container_using(volume: &Volume, running: bool) -> String {
    let name = unique_name("user");
    let mount = format!("{}:/data", volume.name());
    let verb = if running { "run" } else { "create" };
    let mut args = vec![verb];
    if running {
        args.push("-d");
    }
    args.extend(["--name", &name, "--network", "none", "-v", &mount]);
    args.extend([test_image(), "sleep", "3600"]);
    docker_ok(&args);
    name
}

/// Copies a host directory into `volume` (owners, modes and links kept):
/// `tar -C SRC -c . | docker run -i … tar -x -C /v`. Busybox tar restores
/// neither directory nor symlink mtimes: those are the time of the copy.
pub fn fill_from_host_dir(volume: &Volume, src: &Path) {
    let mut tar = Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(src)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .expect("tar");
    let mount = format!("{}:/v", volume.name());
    let out = Command::new("docker")
        .args(["run", "-i", "--rm", "--network", "none", "-v", &mount])
        .args([test_image(), "tar", "-x", "--numeric-owner", "-C", "/v"])
        .stdin(tar.stdout.take().expect("tar stdout"))
        .output()
        .expect("docker run");
    assert!(
        tar.wait().expect("tar").success(),
        "tar -c {}",
        src.display()
    );
    assert!(
        out.status.success(),
        "extract into {}: {}",
        volume.name(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The containers volsafe left for `volume` (label
/// `io.volsafe.volume=<volume>`), as `name role` lines.
pub fn leftovers(volume: &str) -> Vec<String> {
    let filter = format!("label=io.volsafe.volume={volume}");
    let out = docker_ok(&[
        "ps",
        "-a",
        "--filter",
        &filter,
        "--format",
        "{{.Names}} {{.Label \"io.volsafe.role\"}}",
    ]);
    out.lines().map(str::to_owned).collect()
}

pub fn assert_no_leftovers(volume: &str) {
    let left = leftovers(volume);
    assert!(left.is_empty(), "containers left for {volume}: {left:?}");
}

/// One finished `volsafe` run.
pub struct Run {
    pub args: Vec<String>,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics, showing the whole run, unless it exited with `code` and its
    /// stderr contains `needle` (case-insensitive).
    pub fn assert_fails(&self, code: i32, needle: &str) -> &Run {
        assert_eq!(self.code, Some(code), "wrong exit status\n{self}");
        assert!(
            self.stderr.to_lowercase().contains(&needle.to_lowercase()),
            "stderr lacks {needle:?}\n{self}"
        );
        self
    }

    /// Panics, showing the whole run, unless it exited 0.
    pub fn assert_ok(&self) -> &Run {
        assert_eq!(self.code, Some(0), "volsafe failed\n{self}");
        self
    }

    /// The first line of stdout (an archive path, a recipient).
    pub fn first_line(&self) -> String {
        match self.stdout_lines().first() {
            Some(line) => line.trim().to_owned(),
            None => panic!("nothing on stdout\n{self}"),
        }
    }

    /// The non-empty lines of stdout.
    pub fn stdout_lines(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "$ volsafe {}\nexit: {:?}\n--- stdout\n{}--- stderr\n{}---",
            self.args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        )
    }
}

/// A `volsafe` command with `--no-progress` and stdin null; the caller may
/// change its stdio before [`run_volsafe`]. `VOLSAFE_TEST_BIN` runs another
/// build (an installed one, say) instead of this crate's.
pub fn volsafe_command(args: &[&str]) -> Command {
    let bin = std::env::var_os("VOLSAFE_TEST_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_volsafe").into());
    let mut cmd = Command::new(bin);
    let (sub, rest) = args.split_first().expect("a subcommand");
    cmd.arg(sub).arg("--no-progress").args(rest);
    cmd.env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs `volsafe ARGS --no-progress`, capturing stdout and stderr.
pub fn volsafe(args: &[&str]) -> Run {
    run_volsafe(volsafe_command(args), args)
}

/// Runs a prepared command (see [`volsafe_command`]), killing it after
/// `VOLSAFE_TIMEOUT` so a hang fails the test instead of CI.
pub fn run_volsafe(mut cmd: Command, args: &[&str]) -> Run {
    let mut child = cmd.spawn().expect("spawn volsafe");
    let out = wait_with_timeout(&mut child, VOLSAFE_TIMEOUT);
    Run {
        args: args.iter().map(|s| s.to_string()).collect(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Output {
    fn drain<R: Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    }
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait volsafe") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let err = err.join().unwrap_or_default();
            panic!(
                "volsafe still running after {timeout:?}; killed\nstderr: {}",
                String::from_utf8_lossy(&err)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// An age X25519 identity made with Debian's `age-keygen`, independent of
/// `volsafe keygen`.
pub struct AgeKey {
    _dir: tempfile::TempDir,
    pub identity: PathBuf,
    pub recipient: String,
}

impl AgeKey {
    pub fn new() -> AgeKey {
        let dir = tempfile::tempdir().expect("tempdir");
        let identity = dir.path().join("key.txt");
        let out = Command::new("age-keygen")
            .arg("-o")
            .arg(&identity)
            .output()
            .expect("age-keygen (apt-get install age)");
        assert!(out.status.success(), "age-keygen failed");
        let recipient = std::fs::read_to_string(&identity)
            .expect("read key")
            .lines()
            .find_map(|l| l.strip_prefix("# public key: "))
            .expect("public key line")
            .trim()
            .to_owned();
        AgeKey {
            _dir: dir,
            identity,
            recipient,
        }
    }

    pub fn identity(&self) -> &str {
        self.identity.to_str().expect("utf-8 temp path")
    }
}

/// A temporary directory as a `&str` for argv.
pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// Backs `volume` up into `dest` and returns the one archive path printed.
pub fn backup(volume: &str, dest: &Path, key: &AgeKey, extra: &[&str]) -> PathBuf {
    let mut args = vec!["backup", volume, "--to", path_str(dest)];
    args.extend(["-r", key.recipient.as_str()]);
    args.extend_from_slice(extra);
    let run = volsafe(&args);
    run.assert_ok();
    let lines = run.stdout_lines();
    assert_eq!(lines.len(), 1, "one archive path expected\n{run}");
    let path = PathBuf::from(lines[0].trim());
    assert!(path.is_file(), "printed archive is not a file\n{run}");
    assert_archive_layout(&path, dest, volume);
    path
}

/// DIR/<daemon name>/<volume>/<volume>-<YYYYMMDDTHHMMSS.sssZ>[-N].tar.zst.age
/// with its `.json` sidecar beside it.
pub fn assert_archive_layout(archive: &Path, dest: &Path, volume: &str) {
    let dir = dest.join(daemon_name()).join(volume);
    let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_owned());
    assert_eq!(
        canon(archive.parent().expect("parent")),
        canon(&dir),
        "archive {} is not in {}",
        archive.display(),
        dir.display()
    );
    let name = archive.file_name().expect("name").to_string_lossy();
    let stamp = name
        .strip_prefix(&format!("{volume}-"))
        .and_then(|s| s.strip_suffix(".tar.zst.age"))
        .unwrap_or_else(|| panic!("archive name {name:?}"));
    let b = stamp.as_bytes();
    let shape_ok = b.len() >= 20
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'.'
        && b[16..19].iter().all(u8::is_ascii_digit)
        && b[19] == b'Z'
        && (b.len() == 20 || stamp[20..].starts_with('-'));
    assert!(shape_ok, "timestamp {stamp:?} in {name:?}");
    let sidecar = PathBuf::from(format!("{}.json", archive.display()));
    assert!(sidecar.is_file(), "no sidecar {}", sidecar.display());
}

/// Every regular file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                found.push(p);
            }
        }
    }
    found.sort();
    found
}

/// Single-quotes `s` for bash.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Runs a host pipeline through `sh -c` (for `age | zstd | tar`), panics
/// unless it succeeds.
pub fn sh(script: &str) -> Output {
    let out = Command::new("bash")
        .args(["-c", &format!("set -euo pipefail\n{script}")])
        .stdin(Stdio::null())
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "host script failed: {}\n{script}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Flips a few bytes of `file` inside its last 64 KiB (past the age
/// header), keeping its length.
pub fn corrupt_tail(file: &Path) {
    let mut bytes = std::fs::read(file).expect("read archive");
    let len = bytes.len();
    assert!(
        len > 256 * 1024,
        "archive too small to damage its tail only"
    );
    for back in [100, 4_000, 30_000] {
        bytes[len - back] ^= 0x5a;
    }
    let mut f = std::fs::File::create(file).expect("rewrite archive");
    f.write_all(&bytes).expect("write archive");
}

/// Scratch volumes of drills of `volume` still on the daemon.
pub fn scratch_volumes(volume: &str) -> Vec<String> {
    let filter = format!("label=io.volsafe.volume={volume}");
    docker_ok(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        "label=io.volsafe.role=drill",
        "--filter",
        &filter,
    ])
    .lines()
    .map(str::to_owned)
    .collect()
}

/// Removes any scratch volume of drills of a volume (and its containers)
/// when dropped: tests assert there are none; this keeps the daemon clean
/// when they fail.
pub struct ScratchGuard(pub String);

impl Drop for ScratchGuard {
    fn drop(&mut self) {
        for s in scratch_volumes(&self.0) {
            remove_containers_of(&s);
            docker(&["volume", "rm", "-f", &s]);
        }
    }
}
