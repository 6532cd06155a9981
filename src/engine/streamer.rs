//! Reading a volume through a started helper, on a daemon on this host,
//! and writing one the same way.
//!
//! The Engine's archive endpoint sends a volume through three copies: its
//! `docker-tar` process into a pipe, `dockerd` from that pipe into the HTTP
//! response, and the socket into volsafe. A helper container can instead
//! run volsafe-tar (built from `src/streamer` by build.rs and carried in
//! this binary), which writes the same tar stream straight into a FIFO that
//! volsafe reads. It is the same helper, with two more things: a read-only
//! bind mount of a private temporary directory (volsafe-tar and the FIFO)
//! at `/.volsafe-<random>`, and a command; the container runs as root with
//! no capability but reading any file (`DAC_READ_SEARCH`), no network and
//! a read-only root. (A restore's helper has the capabilities to create
//! any entry instead: see `helper.rs`.)
//!
//! This needs a daemon that sees volsafe's temporary directory, so only a
//! daemon on a unix socket is tried, and not one that remaps user ids (its
//! root could not read the volume's files). Whenever the helper cannot be
//! made or started that way, or volsafe-tar stops before it opens the
//! FIFO, volsafe reads the same helper through the endpoint instead and
//! goes on that way for the rest of the run (a volume the daemon cannot
//! mount is that volume's fault, and turns nothing off).
//! `VOLSAFE_STREAM=endpoint` makes it always do so.
//!
//! A restore runs it the other way ([`start_sink`]): a read-write helper
//! runs `volsafe-tar --extract`, which creates the entries of the tar that
//! volsafe writes into the FIFO, instead of the Engine's extraction behind
//! `PUT /archive`. volsafe opens the FIFO's write end only once the helper
//! has its read end open, so a helper on another kernel is found before a
//! byte is written. A restore whose helper never opened the FIFO goes on
//! through the endpoint, with a plain helper, into the same still empty
//! volume.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bollard::models::{HealthConfig, Mount, MountType};
use bollard::query_parameters::{LogsOptions, WaitContainerOptions};
use futures_util::{Stream, StreamExt};

use super::{message_of, Engine};
use crate::archive::names::MOUNT_DIR;

/// volsafe-tar, statically linked; empty where build.rs could not build it.
static PROGRAM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/volsafe-tar"));

/// Where the staging directory is mounted in the helper:
/// `/.volsafe-<random>`, a path no image can have prepared (a symlink there
/// would lead the mount elsewhere, over the volume itself).
const STAGE_DIR: &str = "/.volsafe-";
const PROGRAM_NAME: &str = "volsafe-tar";
/// A file in the staging directory that its run holds locked while it
/// lives (see [`sweep_once`]).
const LOCK_NAME: &str = "lock";
const FIFO_NAME: &str = "stream";

/// Staging directories are named `volsafe-stream-<pid>-<random>`.
const PREFIX: &str = "volsafe-stream-";

/// Removes, once per process, the staging directories that runs killed
/// without a chance to clean up (SIGKILL, a crash) left in the temporary
/// directory: those whose lock nobody holds. A process id alone would not
/// tell: a run in another PID namespace (volsafe in a container sharing
/// `/tmp`) looks gone from here.
fn sweep_once() {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(|| sweep(&std::env::temp_dir()));
}

fn sweep(tmp: &std::path::Path) {
    let Ok(listing) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in listing.flatten() {
        let name = entry.file_name();
        if !name.to_str().is_some_and(|n| n.starts_with(PREFIX)) {
            continue;
        }
        let lock = std::fs::File::open(entry.path().join(LOCK_NAME));
        // A directory without its lock is one whose run died while
        // making it, or one of a volsafe before the lock: gone when
        // older than a day.
        let gone = match lock {
            Ok(lock) => try_lock(&lock).unwrap_or(false),
            Err(_) => entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > std::time::Duration::from_secs(24 * 3600)),
        };
        if gone {
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => {
                    tracing::debug!(dir = %entry.path().display(), "stale staging directory removed")
                }
                Err(e) => {
                    tracing::debug!(dir = %entry.path().display(), error = %e, "cannot remove a stale staging directory")
                }
            }
        }
    }
}

/// Takes `file`'s exclusive lock without waiting: `false` when another
/// open file holds it.
fn try_lock(file: &File) -> io::Result<bool> {
    // SAFETY: flock on an open descriptor.
    if unsafe {
        libc::flock(
            std::os::fd::AsRawFd::as_raw_fd(file),
            libc::LOCK_EX | libc::LOCK_NB,
        )
    } == 0
    {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// The environment variable that turns streaming helpers off.
pub const ENV: &str = "VOLSAFE_STREAM";

/// volsafe-tar's exit codes (see `src/streamer/main.rs`).
const EXIT_READ: i64 = 1;
const EXIT_SHRANK: i64 = 4;
const EXIT_UNREAD: i64 = 5;
const EXIT_MISPLACED: i64 = 6;
/// `--extract`: the stream ended before its end-of-archive marker.
const EXIT_CUT: i64 = 4;

/// Set once the daemon turned a streaming helper down: the rest of the run
/// reads through the endpoint.
static TURNED_DOWN: AtomicBool = AtomicBool::new(false);

/// The pipe's buffer: fewer wake-ups of either side than the default 64 KiB.
const PIPE_SIZE: libc::c_int = 1 << 20;

/// Whether a daemon reached at `host`, with these security options, is one
/// a streaming helper may be tried on.
pub fn suits(host: &str, security_options: &[String]) -> bool {
    let remapped = security_options
        .iter()
        .any(|o| o.split(',').any(|kv| kv == "name=userns"));
    host.starts_with("unix://") && !remapped
}

/// Whether to try a streaming helper now.
pub fn wanted(engine: &Engine) -> bool {
    engine.local
        && !PROGRAM.is_empty()
        && !TURNED_DOWN.load(Ordering::Relaxed)
        && !endpoint_forced()
}

/// Whether `VOLSAFE_STREAM` asks for the endpoint. A value it does not
/// know is said once, not silently ignored.
fn endpoint_forced() -> bool {
    let Ok(value) = std::env::var(ENV) else {
        return false;
    };
    let value = value.trim().to_ascii_lowercase();
    if value == "endpoint" {
        return true;
    }
    static SAID: std::sync::Once = std::sync::Once::new();
    if !value.is_empty() {
        SAID.call_once(|| {
            tracing::warn!(value = %value, "{ENV} takes only `endpoint`; streaming helpers stay on")
        });
    }
    false
}

/// Gives up streaming helpers for the rest of the run.
pub fn turn_down(why: &str) {
    if !TURNED_DOWN.swap(true, Ordering::Relaxed) {
        tracing::info!(
            reason = why,
            "reading volumes through the Engine's archive endpoint"
        );
    }
}

/// The private directory a streaming helper mounts: volsafe-tar and the
/// FIFO. Removed when dropped.
#[derive(Debug)]
pub struct Staging {
    dir: tempfile::TempDir,
    /// Where the helper sees it.
    target: String,
    /// Held locked while this run lives.
    _lock: File,
}

impl Staging {
    /// Blocking file-system work: call it off the async runtime.
    pub fn new() -> io::Result<Staging> {
        sweep_once();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{PREFIX}{}-", std::process::id()))
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir()?;
        // Locked before it takes its name, so that a sweep never finds
        // it unlocked.
        let lock = File::create(dir.path().join("lock.new"))?;
        if !try_lock(&lock)? {
            return Err(io::Error::other("the staging directory's lock is taken"));
        }
        std::fs::rename(dir.path().join("lock.new"), dir.path().join(LOCK_NAME))?;
        let mut program = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o755)
            .open(dir.path().join(PROGRAM_NAME))?;
        io::Write::write_all(&mut program, PROGRAM)?;
        drop(program);
        let fifo = std::ffi::CString::new(
            dir.path()
                .join(FIFO_NAME)
                .into_os_string()
                .into_encoded_bytes(),
        )
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // SAFETY: a NUL-terminated path.
        if unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // Writable by the helper's root whoever runs volsafe, without
        // DAC_OVERRIDE; the directory (0700) keeps everyone else out.
        std::fs::set_permissions(
            dir.path().join(FIFO_NAME),
            std::os::unix::fs::PermissionsExt::from_mode(0o666),
        )?;
        Ok(Staging {
            dir,
            target: format!("{STAGE_DIR}{}", super::lease::random_id()),
            _lock: lock,
        })
    }

    fn fifo(&self) -> PathBuf {
        self.dir.path().join(FIFO_NAME)
    }

    /// The bind mount of the directory into the helper.
    pub fn mount(&self) -> Mount {
        Mount {
            target: Some(self.target.clone()),
            source: Some(self.dir.path().to_string_lossy().into_owned()),
            typ: Some(MountType::BIND),
            read_only: Some(true),
            ..Default::default()
        }
    }

    /// The helper's entrypoint and arguments: writing the volume into the
    /// FIFO, or, to restore, extracting what the FIFO brings into it.
    pub fn command(&self, extract: bool) -> (Vec<String>, Vec<String>) {
        let target = &self.target;
        let mut args = vec![
            format!("/{MOUNT_DIR}"),
            MOUNT_DIR.to_owned(),
            format!("{target}/{FIFO_NAME}"),
        ];
        if extract {
            args.insert(0, "--extract".to_owned());
        }
        (vec![format!("{target}/{PROGRAM_NAME}")], args)
    }

    /// No health check of the image runs in the helper.
    pub fn no_health_check() -> HealthConfig {
        HealthConfig {
            test: Some(vec!["NONE".to_owned()]),
            ..Default::default()
        }
    }
}

type Exit = std::pin::Pin<Box<dyn Stream<Item = Result<i64, String>> + Send>>;

/// A started streaming helper whose FIFO has data (or has been closed):
/// its stream, and its exit to wait for once the stream is read.
pub struct Streaming {
    pub reader: Counted,
    pub exit: Exiting,
}

pub struct Exiting {
    exit: Exit,
    engine: Engine,
    id: String,
}

/// Starts the helper `id` and waits until volsafe-tar writes. `None`: it
/// could not be started, or it stopped before writing (the reason is
/// logged, and the run goes on through the endpoint).
pub async fn start(
    engine: &Engine,
    id: &str,
    staging: &Staging,
    counter: Arc<AtomicU64>,
) -> io::Result<Option<Streaming>> {
    let receiver = tokio::net::unix::pipe::OpenOptions::new().open_receiver(staging.fifo())?;
    if !start_helper(engine, id).await {
        return Ok(None);
    }
    let mut exit = exit_of(engine, id);
    tokio::select! {
        biased;
        ready = receiver.readable() => ready?,
        code = exit.next() => {
            let code = code.unwrap_or(Err("no exit code".to_owned()));
            let said = said_or(engine, id, "no message").await;
            turn_down(&format!("the streaming helper stopped before writing ({}): {said}", describe(&code)));
            return Ok(None);
        }
    }
    let file = File::from(receiver.into_blocking_fd()?);
    enlarge_pipe(&file);
    Ok(Some(Streaming {
        reader: Counted { file, counter },
        exit: Exiting {
            exit,
            engine: engine.clone(),
            id: id.to_owned(),
        },
    }))
}

/// How long a started extracting helper has to open its FIFO. It opens
/// it first thing; one that does not is on another kernel (a daemon in a
/// VM that shares the directory).
const OPEN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A started extracting helper: the FIFO's write end, and its exit.
pub struct Sinking {
    pub writer: File,
    pub exit: Exiting,
}

/// Starts the extracting helper `id` and waits until volsafe-tar has the
/// FIFO open. `None`: it could not be started, or did not open the FIFO
/// (the reason is logged, the helper left to the caller to remove, and the
/// run goes on through the endpoint).
pub async fn start_sink(
    engine: &Engine,
    id: &str,
    staging: &Staging,
) -> io::Result<Option<Sinking>> {
    if !start_helper(engine, id).await {
        return Ok(None);
    }
    let mut exit = exit_of(engine, id);
    let fifo = staging.fifo();
    // Opening the write end without blocking fails (ENXIO) until a reader
    // has it open.
    let opened = async {
        loop {
            match tokio::net::unix::pipe::OpenOptions::new().open_sender(&fifo) {
                Ok(sender) => return Ok(sender),
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await
                }
                Err(e) => return Err(e),
            }
        }
    };
    let sender = tokio::select! {
        biased;
        sender = opened => sender?,
        code = exit.next() => {
            let code = code.unwrap_or(Err("no exit code".to_owned()));
            let said = said_or(engine, id, "no message").await;
            turn_down(&format!("the streaming helper stopped before reading ({}): {said}", describe(&code)));
            return Ok(None);
        }
        () = tokio::time::sleep(OPEN_WAIT) => {
            turn_down("the streaming helper did not open its FIFO: the daemon does not share this kernel");
            return Ok(None);
        }
    };
    let writer = File::from(sender.into_blocking_fd()?);
    enlarge_pipe(&writer);
    Ok(Some(Sinking {
        writer,
        exit: Exiting {
            exit,
            engine: engine.clone(),
            id: id.to_owned(),
        },
    }))
}

/// Starts a streaming helper; `false` (and the reason logged) when the
/// daemon would not.
async fn start_helper(engine: &Engine, id: &str) -> bool {
    let Err(e) = engine
        .docker
        .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
        .await
    else {
        return true;
    };
    let why = message_of(&e);
    // The daemon mounts the volume at the start: a volume it cannot mount
    // fails the endpoint too, with the same message.
    if !why.contains("error while mounting volume") {
        turn_down(&format!("cannot start a streaming helper: {why}"));
    }
    false
}

/// A larger pipe buffer: fewer wake-ups of either side. Only an
/// optimisation, so a refusal is ignored.
fn enlarge_pipe(pipe: &File) {
    // SAFETY: F_SETPIPE_SZ on an open pipe descriptor.
    unsafe {
        libc::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(pipe),
            libc::F_SETPIPE_SZ,
            PIPE_SIZE,
        )
    };
}

fn exit_of(engine: &Engine, id: &str) -> Exit {
    engine
        .transfer
        .wait_container(id, None::<WaitContainerOptions>)
        .map(|r| match r {
            Ok(w) => Ok(w.status_code),
            Err(bollard::errors::Error::DockerContainerWaitError { code, .. }) => Ok(code),
            Err(e) => Err(message_of(&e)),
        })
        .boxed()
}

/// How volsafe-tar ended, once its stream was read.
pub enum Ended {
    Done,
    /// A file shrank while it was read: reading again may succeed.
    Shrank(String),
    /// A file or directory could not be read.
    Unreadable(String),
    /// It failed otherwise.
    Failed(String),
    /// Its end could not be learnt: the daemon stopped answering.
    Lost(String),
    /// Its stream was not read to the end: volsafe's side failed first.
    Unread,
    /// It found its own FIFO in the tree: the helper image's layout put the
    /// staging mount in the volume's place.
    Misplaced(String),
}

impl Exiting {
    /// volsafe-tar's exit code, once it exits; why not, if the daemon
    /// cannot say.
    async fn code(&mut self) -> Result<i64, String> {
        self.exit
            .next()
            .await
            .unwrap_or(Err("no exit code".to_owned()))
    }

    /// Waits for volsafe-tar to exit, after its stream was read or dropped.
    pub async fn ended(mut self) -> Ended {
        let code = self.code().await;
        let (engine, id) = (&self.engine, self.id.as_str());
        match code {
            Ok(0) => Ended::Done,
            Ok(EXIT_SHRANK) => Ended::Shrank(
                said_or(
                    engine,
                    id,
                    "an entry of the volume changed while it was read",
                )
                .await,
            ),
            Ok(EXIT_READ) => Ended::Unreadable(
                said_or(
                    engine,
                    id,
                    "a file or directory of the volume could not be read",
                )
                .await,
            ),
            Ok(EXIT_UNREAD) => Ended::Unread,
            Err(e) => Ended::Lost(format!(
                "docker daemon at {}: lost while the streaming helper ran ({e})",
                engine.host
            )),
            Ok(EXIT_MISPLACED) => Ended::Misplaced(
                said_or(engine, id, "the helper's /volume is not the volume").await,
            ),
            other => Ended::Failed(format!(
                "the streaming helper ended with {}: {}",
                describe(&other),
                said_or(engine, id, "no message").await
            )),
        }
    }
}

/// How an extracting volsafe-tar ended, once its stream was written.
pub enum Extracted {
    /// With what it left out, one line each (an xattr the file system
    /// refused, a device in a user namespace).
    Done(Vec<String>),
    /// An entry could not be created; what it said names it.
    Refused(String),
    /// Its stream ended before the end-of-archive marker, or was not tar:
    /// what it said.
    Cut(String),
    /// It failed otherwise.
    Failed(String),
    /// Its end could not be learnt: the daemon stopped answering.
    Lost(String),
}

impl Exiting {
    /// Waits for an extracting volsafe-tar to exit, after its stream was
    /// written or dropped.
    pub async fn extracted(mut self) -> Extracted {
        let code = self.code().await;
        let (engine, id) = (&self.engine, self.id.as_str());
        match code {
            Ok(0) => Extracted::Done(log_lines(engine, id, "all").await),
            Ok(EXIT_READ) => Extracted::Refused(
                said_or(engine, id, "an entry of the archive could not be created").await,
            ),
            Ok(EXIT_CUT) => Extracted::Cut(
                said_or(engine, id, "its stream ended before the end of the archive").await,
            ),
            Err(e) => Extracted::Lost(format!(
                "docker daemon at {}: lost while the streaming helper ran ({e})",
                engine.host
            )),
            other => Extracted::Failed(format!(
                "the streaming helper ended with {}: {}",
                describe(&other),
                said_or(engine, id, "no message").await
            )),
        }
    }
}

fn describe(code: &Result<i64, String>) -> String {
    match code {
        Ok(c) => format!("exit code {c}"),
        Err(e) => format!("no exit code: {e}"),
    }
}

/// What volsafe-tar said (it names the entry), or what its exit code means
/// when the daemon cannot give its log back (`--log-driver none`).
async fn said_or(engine: &Engine, id: &str, meaning: &str) -> String {
    last_words(engine, id)
        .await
        .unwrap_or_else(|| format!("{meaning} (the helper's log could not be read)"))
}

/// The last line volsafe-tar wrote to its standard error, if the daemon
/// gives it back.
async fn last_words(engine: &Engine, id: &str) -> Option<String> {
    log_lines(engine, id, "1").await.pop()
}

/// The last `tail` lines (`all`: every line) volsafe-tar wrote, without
/// its name; none where the daemon does not give its log back.
async fn log_lines(engine: &Engine, id: &str, tail: &str) -> Vec<String> {
    let options = LogsOptions {
        stderr: true,
        stdout: true,
        tail: tail.to_owned(),
        ..Default::default()
    };
    let chunks: Vec<_> = engine.docker.logs(id, Some(options)).collect().await;
    let text: String = chunks
        .into_iter()
        .filter_map(Result::ok)
        .map(|l| String::from_utf8_lossy(&l.into_bytes()).into_owned())
        .collect();
    text.lines()
        .map(str::trim)
        .map(|line| line.strip_prefix("volsafe-tar: ").unwrap_or(line))
        .filter(|line| !line.is_empty())
        .map(crate::check::secrets::scrub)
        .collect()
}

/// The FIFO's read end, counting bytes for the progress display.
pub struct Counted {
    file: File,
    counter: Arc<AtomicU64>,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        self.counter.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_removes_only_directories_whose_lock_is_free() {
        let tmp = tempfile::tempdir().unwrap();
        let make = |name: &str, with_lock: bool| {
            let dir = tmp.path().join(name);
            std::fs::create_dir(&dir).unwrap();
            with_lock.then(|| File::create(dir.join(LOCK_NAME)).unwrap())
        };
        let live = make("volsafe-stream-1-live", true).unwrap();
        assert!(try_lock(&live).unwrap());
        drop(make("volsafe-stream-2-dead", true));
        make("volsafe-stream-3-young", false);
        make("not-ours", true);
        sweep(tmp.path());
        let mut left: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "not-ours",
                "volsafe-stream-1-live",
                "volsafe-stream-3-young"
            ]
        );
        drop(live);
    }

    #[test]
    fn only_local_daemons_without_remapped_users_stream() {
        let none: [String; 0] = [];
        assert!(suits("unix:///var/run/docker.sock", &none));
        assert!(suits(
            "unix:///run/user/1000/docker.sock",
            &["name=rootless".to_owned()]
        ));
        assert!(!suits("tcp://127.0.0.1:2375", &none));
        assert!(!suits("ssh://backup@db1", &none));
        assert!(!suits(
            "unix:///var/run/docker.sock",
            &[
                "name=seccomp,profile=default".to_owned(),
                "name=userns".to_owned()
            ]
        ));
    }

    #[test]
    fn the_helper_runs_volsafe_tar_from_the_staging_mount() {
        let staging = Staging::new().unwrap();
        let (entrypoint, cmd) = staging.command(false);
        let target = &staging.target;
        assert!(
            target.starts_with("/.volsafe-") && target.len() == 26,
            "{target}"
        );
        assert_ne!(target, &Staging::new().unwrap().target);
        assert_eq!(entrypoint, [format!("{target}/volsafe-tar")]);
        assert_eq!(
            cmd,
            [
                "/volume".to_owned(),
                "volume".to_owned(),
                format!("{target}/stream")
            ]
        );
        let mount = staging.mount();
        assert_eq!(
            staging.command(true).1,
            [
                "--extract".to_owned(),
                "/volume".to_owned(),
                "volume".to_owned(),
                format!("{target}/stream")
            ]
        );
        assert_eq!(mount.read_only, Some(true));
        assert_eq!(mount.target.as_ref(), Some(target));
        let dir = PathBuf::from(mount.source.unwrap());
        let mode = std::fs::metadata(&dir).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o7777,
            0o700
        );
        let program = std::fs::read(dir.join(PROGRAM_NAME)).unwrap();
        assert_eq!(program, PROGRAM);
        let fifo = std::fs::metadata(dir.join(FIFO_NAME)).unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(&fifo.file_type()));
        drop(staging);
        assert!(!dir.exists());
    }
}
