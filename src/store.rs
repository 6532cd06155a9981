//! Archives in a local backup directory, laid out as
//! `DIR/<daemon>/<volume>/<volume>-<time>.tar.zst.age` with a `.json` sidecar.
//!
//! What must stay true: no file carries a final name before all its bytes are
//! on disk (write `.<name>.partial`, fsync, rename without replacing, fsync
//! the directory), and the sidecar, written last the same way, is the commit
//! marker. Files that are not volsafe's are never touched.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::failed;

/// Extension of an encrypted archive.
pub const EXT_ENCRYPTED: &str = ".tar.zst.age";
/// Extension of an unencrypted archive.
pub const EXT_PLAIN: &str = ".tar.zst";
/// Extension of a sidecar, after the archive's name.
pub const EXT_SIDECAR: &str = ".json";
/// Extension of a file being written.
pub const EXT_PARTIAL: &str = ".partial";
/// Leftovers older than this are removed by the next backup of the volume.
pub const STALE_AFTER: Duration = Duration::from_secs(3600);
/// The rollback directory inside a volume's directory.
pub const ROLLBACK_DIR: &str = "rollback";

/// The sidecar: non-secret facts about a committed archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sidecar {
    pub format: u32,
    pub volume: String,
    pub daemon: String,
    /// RFC 3339, UTC, milliseconds.
    pub created: String,
    /// File name of the archive, in the same directory.
    pub archive: String,
    pub size: u64,
    pub sha256: String,
    pub tool: String,
    pub encrypted: bool,
    #[serde(default)]
    pub entries: u64,
}

/// `20261204T031500.123Z`: the time in archive names.
pub fn name_time(t: OffsetDateTime) -> String {
    rfc3339_millis(t).replace(['-', ':'], "")
}

/// `2026-12-04T03:15:00.123Z`: the time in headers and sidecars.
pub fn rfc3339_millis(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// The directory of one volume's archives.
pub fn volume_dir(root: &Path, daemon: &str, volume: &str) -> PathBuf {
    root.join(daemon).join(volume)
}

fn partial_of(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}{EXT_PARTIAL}"))
}

fn sidecar_of(archive: &Path) -> PathBuf {
    let mut s = archive.as_os_str().to_owned();
    s.push(EXT_SIDECAR);
    PathBuf::from(s)
}

/// Creates a directory and its parents, mode 0700 for the ones it creates.
pub fn make_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| dest_error(dir, &e))
}

/// A destination error that names the path and says what to do.
pub fn dest_error(path: &Path, e: &io::Error) -> anyhow::Error {
    let hint = match e.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) => {
            "choose a directory this user can write to, or fix its permissions"
        }
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => {
            "free space on the destination, or prune old archives"
        }
        _ => "check the destination path",
    };
    failed(format!("destination {}: {e}", path.display()), hint)
}

/// An archive being written under its partial name.
pub struct Pending {
    pub path: PathBuf,
    partial: PathBuf,
    pub file: Option<File>,
}

/// Picks a free name for a new archive and creates its partial file (mode
/// 0600, never replacing anything).
pub fn create(
    dir: &Path,
    volume: &str,
    created: OffsetDateTime,
    encrypted: bool,
) -> Result<Pending> {
    make_dir(dir)?;
    let ext = if encrypted { EXT_ENCRYPTED } else { EXT_PLAIN };
    let base = format!("{volume}-{}", name_time(created));
    for n in 1.. {
        let name = if n == 1 {
            format!("{base}{ext}")
        } else {
            format!("{base}-{n}{ext}")
        };
        let path = dir.join(&name);
        let partial = partial_of(&path);
        if path.exists() || sidecar_of(&path).exists() {
            continue;
        }
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
        {
            Ok(file) => {
                return Ok(Pending {
                    path,
                    partial,
                    file: Some(file),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(dest_error(&partial, &e)),
        }
    }
    unreachable!("the name loop only ends by returning")
}

impl Pending {
    /// Makes the archive durable under its final name, then writes the
    /// sidecar that commits it. The archive's file must be synced already.
    pub fn commit(mut self, sidecar: &Sidecar) -> Result<PathBuf> {
        drop(self.file.take());
        rename_new(&self.partial, &self.path)?;
        // From here on, Drop finds no partial file to remove; an archive
        // without its sidecar is not a backup, so it goes if the rest fails.
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let json = serde_json::to_vec_pretty(sidecar)?;
        let committed =
            sync_dir(dir).and_then(|()| write_new_durably(&sidecar_of(&self.path), &json));
        if let Err(e) = committed {
            let _ = fs::remove_file(&self.path);
            return Err(e);
        }
        Ok(self.path.clone())
    }
}

impl Drop for Pending {
    /// An archive that was not committed leaves nothing behind, whatever
    /// path (error, signal, a dropped future) got here.
    fn drop(&mut self) {
        drop(self.file.take());
        if let Err(e) = fs::remove_file(&self.partial) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %self.partial.display(), error = %e, "cannot remove a partial archive");
            }
        }
    }
}

/// Writes a small file under a partial name, syncs it and renames it.
fn write_new_durably(path: &Path, bytes: &[u8]) -> Result<()> {
    let partial = partial_of(path);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .map_err(|e| dest_error(&partial, &e))?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all());
    if let Err(e) = written {
        let _ = fs::remove_file(&partial);
        return Err(dest_error(&partial, &e));
    }
    if let Err(e) = rename_new(&partial, path) {
        let _ = fs::remove_file(&partial);
        return Err(e);
    }
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Renames without ever replacing an existing file.
fn rename_new(from: &Path, to: &Path) -> Result<()> {
    let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).expect("paths have no NUL");
    let (f, t) = (c(from), c(to));
    // SAFETY: both are valid NUL-terminated paths; renameat2 only reads them.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        // Filesystems without RENAME_NOREPLACE: a hard link fails if `to` exists.
        Some(libc::EINVAL) | Some(libc::ENOSYS) => {
            fs::hard_link(from, to).map_err(|e| dest_error(to, &e))?;
            fs::remove_file(from).map_err(|e| dest_error(from, &e))
        }
        _ => Err(dest_error(to, &err)),
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("destination {}: cannot sync the directory", dir.display()))
}

/// Removes partial files and uncommitted archives older than an hour in one
/// volume's directory (never anything that is not volsafe's).
pub fn clean_stale(dir: &Path, volume: &str) {
    let Ok(read) = fs::read_dir(dir) else { return };
    let now = SystemTime::now();
    for entry in read.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|age| age > STALE_AFTER);
        if !stale {
            continue;
        }
        let ours_partial = name.starts_with(&format!(".{volume}-")) && name.ends_with(EXT_PARTIAL);
        let uncommitted = archive_name_matches(&name, volume) && !sidecar_of(&path).exists();
        if ours_partial || uncommitted {
            tracing::info!(path = %path.display(), "removing an incomplete backup older than an hour");
            if let Err(e) = fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove an incomplete backup");
            }
        }
    }
}

/// Whether a file name is one of volsafe's archive names for `volume`.
pub fn archive_name_matches(name: &str, volume: &str) -> bool {
    let Some(rest) = name.strip_prefix(volume).and_then(|r| r.strip_prefix('-')) else {
        return false;
    };
    let stem = rest
        .strip_suffix(EXT_ENCRYPTED)
        .or_else(|| rest.strip_suffix(EXT_PLAIN));
    // The time part starts with a digit: `vol-a` must not match `vol`'s archives.
    stem.is_some_and(|s| {
        s.len() >= 20 && s.as_bytes()[0].is_ascii_digit() && s.as_bytes()[8] == b'T'
    })
}

/// A committed archive found in a backup directory.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub daemon: String,
    pub volume: String,
    pub created: String,
    pub size: u64,
    pub encrypted: bool,
    pub path: PathBuf,
}

/// An archive without a valid sidecar, or a partial file.
#[derive(Debug, Clone, Serialize)]
pub struct Incomplete {
    pub daemon: String,
    pub volume: String,
    pub path: PathBuf,
}

/// Every archive in `root` (rollback archives left out), newest first.
pub fn scan(
    root: &Path,
    daemon: Option<&str>,
    volume: Option<&str>,
) -> Result<(Vec<Listed>, Vec<Incomplete>)> {
    let mut listed = Vec::new();
    let mut incomplete = Vec::new();
    let daemons = fs::read_dir(root).map_err(|e| {
        failed(
            format!("backup directory {}: {e}", root.display()),
            "check the path",
        )
    })?;
    for d in daemons.flatten() {
        let dname = d.file_name().to_string_lossy().into_owned();
        if daemon.is_some_and(|x| x != dname) || !d.path().is_dir() {
            continue;
        }
        let Ok(vols) = fs::read_dir(d.path()) else {
            continue;
        };
        for v in vols.flatten() {
            let vname = v.file_name().to_string_lossy().into_owned();
            if volume.is_some_and(|x| x != vname) || !v.path().is_dir() {
                continue;
            }
            scan_volume(&v.path(), &dname, &vname, &mut listed, &mut incomplete);
        }
    }
    listed.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| b.path.cmp(&a.path)));
    Ok((listed, incomplete))
}

fn scan_volume(
    dir: &Path,
    daemon: &str,
    volume: &str,
    listed: &mut Vec<Listed>,
    incomplete: &mut Vec<Incomplete>,
) {
    let Ok(files) = fs::read_dir(dir) else { return };
    for f in files.flatten() {
        let name = f.file_name().to_string_lossy().into_owned();
        let path = f.path();
        if name.starts_with(&format!(".{volume}-")) && name.ends_with(EXT_PARTIAL) {
            incomplete.push(Incomplete {
                daemon: daemon.into(),
                volume: volume.into(),
                path,
            });
            continue;
        }
        if !archive_name_matches(&name, volume) {
            continue;
        }
        match read_sidecar(&path) {
            Some(s) if s.archive == name && s.volume == volume => listed.push(Listed {
                daemon: daemon.into(),
                volume: volume.into(),
                created: s.created,
                size: s.size,
                encrypted: s.encrypted,
                path,
            }),
            _ => incomplete.push(Incomplete {
                daemon: daemon.into(),
                volume: volume.into(),
                path,
            }),
        }
    }
}

/// Dirty bytes after which [`WriteBehind`] starts writing them back.
const WRITE_BEHIND: u64 = 8 << 20;

/// A file that writes its data back to disk while it is being written
/// (Linux `sync_file_range`), so that the fsync which commits an archive
/// finds little left to do instead of the whole file. Writeback of each
/// window of [`WRITE_BEHIND`] bytes starts as soon as it is written, and
/// the window before the previous one is waited for: at most two windows
/// are being written back at a time, and the fsync finds under 24 MiB of
/// dirty pages (those two and the tail). Durability still comes from that
/// fsync alone; this only moves the disk's work earlier, where it overlaps
/// with reading and compressing.
pub struct WriteBehind {
    file: File,
    written: u64,
    /// Writeback was started for everything before this offset…
    started: u64,
    /// …the last window started begins here…
    #[cfg(target_os = "linux")]
    window: u64,
    /// …and everything before this offset was written back (not made
    /// durable: that is the fsync's job).
    #[cfg(target_os = "linux")]
    settled: u64,
    /// The file system cannot do this: the fsync does all the work.
    #[cfg(target_os = "linux")]
    unsupported: bool,
}

impl WriteBehind {
    pub fn new(file: File) -> Self {
        WriteBehind {
            file,
            written: 0,
            started: 0,
            #[cfg(target_os = "linux")]
            window: 0,
            #[cfg(target_os = "linux")]
            settled: 0,
            #[cfg(target_os = "linux")]
            unsupported: false,
        }
    }

    pub fn into_file(self) -> File {
        self.file
    }

    #[cfg(target_os = "linux")]
    fn start_writeback(&mut self) -> io::Result<()> {
        let begin = self.started;
        self.started = self.written;
        self.sync_range(begin, self.written, libc::SYNC_FILE_RANGE_WRITE)?;
        if self.window > self.settled {
            self.sync_range(
                self.settled,
                self.window,
                libc::SYNC_FILE_RANGE_WAIT_BEFORE
                    | libc::SYNC_FILE_RANGE_WRITE
                    | libc::SYNC_FILE_RANGE_WAIT_AFTER,
            )?;
            self.settled = self.window;
        }
        self.window = begin;
        Ok(())
    }

    /// A write error that writeback found is returned: once it has been
    /// waited for here, the kernel does not report it again to the fsync.
    /// Where the file system cannot do this at all, write-behind stops.
    #[cfg(target_os = "linux")]
    fn sync_range(&mut self, from: u64, to: u64, flags: libc::c_uint) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        if self.unsupported {
            return Ok(());
        }
        let (Ok(offset), Ok(len)) = (i64::try_from(from), i64::try_from(to - from)) else {
            return Ok(());
        };
        // SAFETY: a plain system call on a descriptor this struct owns; it
        // reads and writes no memory of ours.
        let r = unsafe { libc::sync_file_range(self.file.as_raw_fd(), offset, len, flags) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINVAL | libc::ESPIPE | libc::ENOSYS | libc::EOPNOTSUPP) => {
                tracing::debug!(error = %e, "sync_file_range is not supported here; the fsync at the end does the work");
                self.unsupported = true;
                Ok(())
            }
            _ => Err(e),
        }
    }

    /// Elsewhere the fsync at the end does all the work.
    #[cfg(not(target_os = "linux"))]
    fn start_writeback(&mut self) -> io::Result<()> {
        self.started = self.written;
        Ok(())
    }
}

impl Write for WriteBehind {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.written - self.started >= WRITE_BEHIND {
            self.start_writeback()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Reads the sidecar of an archive, if it has a valid one.
pub fn read_sidecar(archive: &Path) -> Option<Sidecar> {
    let bytes = fs::read(sidecar_of(archive)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The path of an archive's sidecar.
pub fn sidecar_path(archive: &Path) -> PathBuf {
    sidecar_of(archive)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where writeback cannot be started (here a character device, as a
    /// pipe or some network file systems), the writes still succeed and the
    /// fsync is left to do the work.
    #[test]
    fn write_behind_carries_on_where_it_is_not_supported() {
        let file = fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .unwrap();
        let mut w = WriteBehind::new(file);
        let block = vec![7u8; 1 << 20];
        for _ in 0..(3 * WRITE_BEHIND / (1 << 20)) {
            w.write_all(&block).unwrap();
        }
        assert_eq!(w.written, 3 * WRITE_BEHIND);
        #[cfg(target_os = "linux")]
        assert!(w.unsupported);
    }

    /// On a regular file every window is written back and the ones before
    /// the last are waited for, and every byte arrives.
    #[test]
    fn write_behind_writes_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut w = WriteBehind::new(File::create(&path).unwrap());
        let block: Vec<u8> = (0..(1u32 << 20)).map(|i| i as u8).collect();
        for _ in 0..(4 * WRITE_BEHIND / (1 << 20) + 1) {
            w.write_all(&block).unwrap();
        }
        #[cfg(target_os = "linux")]
        {
            assert!(!w.unsupported);
            assert!(w.settled >= WRITE_BEHIND, "no window was waited for");
        }
        w.into_file().sync_all().unwrap();
        let data = fs::read(&path).unwrap();
        assert_eq!(data.len() as u64, 4 * WRITE_BEHIND + (1 << 20));
        assert!(data.chunks(1 << 20).all(|c| c == &block[..]));
    }

    #[test]
    fn archive_names_belong_to_their_volume_only() {
        assert!(archive_name_matches(
            "db-20261204T031500.123Z.tar.zst.age",
            "db"
        ));
        assert!(archive_name_matches(
            "db-20261204T031500.123Z-2.tar.zst",
            "db"
        ));
        assert!(!archive_name_matches(
            "db-a-20261204T031500.123Z.tar.zst.age",
            "db"
        ));
        assert!(!archive_name_matches(
            "db-20261204T031500.123Z.tar.zst.age.json",
            "db"
        ));
        assert!(!archive_name_matches("notes.txt", "db"));
    }

    #[test]
    fn c17_same_second_backups_get_distinct_names() {
        let dir = tempfile::tempdir().unwrap();
        let t = OffsetDateTime::now_utc();
        let a = create(dir.path(), "v", t, true).unwrap();
        let b = create(dir.path(), "v", t, true).unwrap();
        assert_ne!(a.path, b.path);
        let side = |p: &Path| Sidecar {
            format: 1,
            volume: "v".into(),
            daemon: "d".into(),
            created: rfc3339_millis(t),
            archive: p.file_name().unwrap().to_string_lossy().into(),
            size: 0,
            sha256: String::new(),
            tool: "t".into(),
            encrypted: true,
            entries: 1,
        };
        let (sa, sb) = (side(&a.path), side(&b.path));
        let pa = a.commit(&sa).unwrap();
        let pb = b.commit(&sb).unwrap();
        assert_ne!(pa, pb);
        assert!(pa.exists() && pb.exists());
    }

    #[test]
    fn archive_without_its_sidecar_is_removed_when_commit_fails() {
        let dir = tempfile::tempdir().unwrap();
        let t = OffsetDateTime::now_utc();
        let mut p = create(dir.path(), "v", t, true).unwrap();
        p.file.as_mut().unwrap().write_all(b"data").unwrap();
        // Something already sits where the sidecar goes: the commit fails.
        fs::create_dir(sidecar_of(&p.path)).unwrap();
        let path = p.path.clone();
        let side = Sidecar {
            format: 1,
            volume: "v".into(),
            daemon: "d".into(),
            created: rfc3339_millis(t),
            archive: "x".into(),
            size: 4,
            sha256: String::new(),
            tool: "t".into(),
            encrypted: true,
            entries: 1,
        };
        assert!(p.commit(&side).is_err());
        assert!(!path.exists(), "an uncommitted archive kept its final name");
        assert!(!partial_of(&path).exists());
    }

    #[test]
    fn rename_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::write(&a, b"new").unwrap();
        fs::write(&b, b"old").unwrap();
        assert!(rename_new(&a, &b).is_err());
        assert_eq!(fs::read(&b).unwrap(), b"old");
    }

    #[test]
    fn name_time_has_milliseconds() {
        let t = time::macros::datetime!(2026-12-04 03:15:00.123 UTC);
        assert_eq!(name_time(t), "20261204T031500.123Z");
        assert_eq!(rfc3339_millis(t), "2026-12-04T03:15:00.123Z");
    }
}
