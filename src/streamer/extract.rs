//! `volsafe-tar --extract ROOT NAME INPUT`: a restore's streaming helper.
//!
//! It reads the tar that volsafe writes into INPUT (a FIFO) and creates
//! every entry under ROOT (the volume, empty but for its root), as the
//! Engine's archive endpoint does when the same tar is uploaded to `/`:
//! the root entry `NAME/` gives the root its owner and mode; owners as
//! numbers; modes with their setuid, setgid and sticky bits; mtimes, of
//! directories last, once nothing more is created in them; hard links to
//! an earlier name; FIFOs and devices (a device is left out where the
//! kernel refuses it, in a user namespace, as the Engine does); each
//! entry's xattrs where the file system takes them.
//!
//! Each entry is created with `O_EXCL`-style calls (`openat`, `mkdirat`,
//! `symlinkat`, `mknodat`, `linkat`) in a directory held open, reached
//! from ROOT one name at a time without following a symlink, so no entry
//! can land outside ROOT whatever the volume holds. volsafe has already
//! refused `..`, absolute hard links and entries below a symlink of the
//! archive; this is the second line.
//!
//! Only the tar's end-of-archive marker ends a restore well: volsafe
//! writes it after the whole archive checked out, so a stream that stops
//! before it (a damaged archive, a signal) ends with exit 4.
//!
//! Exit codes: 0 done, 1 an entry could not be created (the message names
//! it), 2 usage, 3 INPUT cannot be opened, 4 the stream ended early or is
//! not tar.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::raw::{c_char, c_int, c_uint, c_void};
use std::path::Path;
use std::process::ExitCode;

use super::arch::{O_DIRECTORY, O_NOFOLLOW};
use super::tarstream::{Entry, EntryKind, TarError, TarReader};
use super::{c_string, openat, show, swapped, AT_FDCWD, ENOTSUP, O_CLOEXEC, O_NONBLOCK, O_RDONLY};

const O_WRONLY: i32 = 1;
const O_CREAT: i32 = 0o100;
const O_EXCL: i32 = 0o200;
const AT_SYMLINK_NOFOLLOW: i32 = 0x100;
const AT_REMOVEDIR: i32 = 0x200;
const S_IFIFO: u32 = 0o010000;
const S_IFCHR: u32 = 0o020000;
const S_IFBLK: u32 = 0o060000;
const EPERM: i32 = 1;
const ENOENT: i32 = 2;
const EEXIST: i32 = 17;
const EISDIR: i32 = 21;
/// The same on every architecture build.rs builds for.
const O_PATH: i32 = 0o10000000;

/// Reads from the FIFO go in pieces this large.
const IN_BUF: usize = 1 << 20;

extern "C" {
    fn mkdirat(dirfd: c_int, path: *const c_char, mode: c_uint) -> c_int;
    fn symlinkat(target: *const c_char, dirfd: c_int, path: *const c_char) -> c_int;
    fn linkat(
        olddirfd: c_int,
        oldpath: *const c_char,
        newdirfd: c_int,
        newpath: *const c_char,
        flags: c_int,
    ) -> c_int;
    fn mknodat(dirfd: c_int, path: *const c_char, mode: c_uint, dev: u64) -> c_int;
    fn unlinkat(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int;
    fn fchown(fd: c_int, uid: c_uint, gid: c_uint) -> c_int;
    fn fchownat(dirfd: c_int, path: *const c_char, uid: c_uint, gid: c_uint, flags: c_int)
        -> c_int;
    fn fchmod(fd: c_int, mode: c_uint) -> c_int;
    fn fchmodat(dirfd: c_int, path: *const c_char, mode: c_uint, flags: c_int) -> c_int;
    fn futimens(fd: c_int, times: *const [i64; 4]) -> c_int;
    fn utimensat(dirfd: c_int, path: *const c_char, times: *const [i64; 4], flags: c_int) -> c_int;
    fn fsetxattr(
        fd: c_int,
        name: *const c_char,
        value: *const c_void,
        size: usize,
        flags: c_int,
    ) -> c_int;
    fn umask(mask: c_uint) -> c_uint;
}

/// Why an extraction stopped.
#[derive(Debug)]
enum Failure {
    /// An entry could not be created; the message names it.
    Create(String),
    /// The stream ended early or is not tar: volsafe stopped writing.
    Stream(TarError),
}

pub fn main(root: &Path, name: &[u8], input: &Path) -> ExitCode {
    // Modes are given exactly, not through the helper's umask.
    // SAFETY: umask only sets the process's mask and returns the old one.
    unsafe { umask(0) };
    super::raise_open_files_limit();
    let file = match File::open(input) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("volsafe-tar: cannot open {}: {e}", input.display());
            return ExitCode::from(3);
        }
    };
    let done = Extract::new(root, name)
        .and_then(|mut x| x.all(TarReader::new(BufReader::with_capacity(IN_BUF, file))));
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Create(msg)) => {
            eprintln!("volsafe-tar: {msg}");
            ExitCode::from(1)
        }
        Err(Failure::Stream(e)) => {
            eprintln!("volsafe-tar: reading the stream: {e}");
            ExitCode::from(4)
        }
    }
}

/// An open directory of the tree, by its path below the root.
struct Open {
    path: Vec<u8>,
    dir: File,
}

struct Extract {
    root: File,
    /// The stream's name for the root (`NAME`).
    name: Vec<u8>,
    /// The directories of the last entry's path, root first: the next
    /// entry, most often in the same directory, reuses them.
    open: Vec<Open>,
    /// Directories and their mtimes, set once everything is in them.
    dir_times: Vec<(Vec<u8>, i64)>,
    buf: Vec<u8>,
}

impl Extract {
    fn new(root: &Path, name: &[u8]) -> Result<Extract, Failure> {
        let unopened = |e: io::Error| {
            Failure::Create(format!("cannot open the volume at {}: {e}", root.display()))
        };
        let c_root = c_string(root.as_os_str().as_encoded_bytes()).map_err(unopened)?;
        let root = open_dir(AT_FDCWD, &c_root).map_err(unopened)?;
        Ok(Extract {
            root,
            name: name.to_vec(),
            open: Vec::new(),
            dir_times: Vec::new(),
            buf: vec![0; IN_BUF],
        })
    }

    fn all<R: io::Read>(&mut self, mut tar: TarReader<R>) -> Result<(), Failure> {
        while let Some(entry) = tar.next_entry().map_err(Failure::Stream)? {
            self.entry(&entry, &mut tar)?;
        }
        // In stream order: setting a directory's times leaves its
        // parent's alone.
        let dir_times = std::mem::take(&mut self.dir_times);
        for (path, mtime) in dir_times {
            let dir = match self.reach(&path, false) {
                Ok(dir) => dir,
                // Replaced since by a later entry of its name.
                Err((_, e)) if e.raw_os_error() == Some(ENOENT) || swapped(&e) => continue,
                Err((failed, e)) => return Err(create_error(&self.shown(&failed), &e)),
            };
            // SAFETY: an open descriptor and a valid `[timespec; 2]`.
            if unsafe { futimens(dir, &times(mtime)) } != 0 {
                return Err(Failure::Create(format!(
                    "cannot set the times of {}: {}",
                    show(&self.shown(&path)),
                    io::Error::last_os_error()
                )));
            }
        }
        Ok(())
    }

    /// The entry's path below the root, checked: no `..`, no empty or `.`
    /// names. `None` for the root itself.
    fn relative(&self, path: &[u8]) -> Result<Option<Vec<u8>>, Failure> {
        let rest = path
            .strip_prefix(self.name.as_slice())
            .filter(|r| r.is_empty() || r[0] == b'/');
        let Some(rest) = rest else {
            return Err(Failure::Create(format!(
                "{} lies outside the volume",
                show(path)
            )));
        };
        let parts: Vec<&[u8]> = rest
            .split(|&b| b == b'/')
            .filter(|p| !p.is_empty() && *p != b".")
            .collect();
        if parts.iter().any(|p| *p == b"..") {
            return Err(Failure::Create(format!(
                "{} climbs out of the volume",
                show(path)
            )));
        }
        Ok((!parts.is_empty()).then(|| parts.join(&b'/')))
    }

    /// A path below the root as the archive names it (`./rel`), for
    /// messages.
    fn shown(&self, rel: &[u8]) -> Vec<u8> {
        [b"./", rel].concat()
    }

    /// An entry's name in the stream as the archive names it.
    fn archive_name(&self, path: &[u8]) -> Vec<u8> {
        match path.strip_prefix(self.name.as_slice()) {
            Some(rest) => [b".", rest].concat(),
            None => path.to_vec(),
        }
    }

    fn entry<R: io::Read>(&mut self, entry: &Entry, tar: &mut TarReader<R>) -> Result<(), Failure> {
        let Some(rel) = self.relative(&entry.path)? else {
            if entry.kind != EntryKind::Dir {
                return Err(Failure::Create(format!(
                    "{} is the volume's root and not a directory",
                    show(&self.archive_name(&entry.path))
                )));
            }
            let root = self.root.as_raw_fd();
            self.attributes(root, entry)?;
            self.dir_times.push((Vec::new(), entry.mtime));
            return Ok(());
        };
        let (parent, leaf) = match rel.iter().rposition(|&b| b == b'/') {
            Some(i) => (&rel[..i], &rel[i + 1..]),
            None => (&rel[..0], &rel[..]),
        };
        let at = self.dir(parent, true)?;
        let c_leaf =
            c_string(leaf).map_err(|e| create_error(&self.archive_name(&entry.path), &e))?;
        let made = match entry.kind {
            EntryKind::File => self.file(at, &c_leaf, entry, tar),
            EntryKind::Dir => self.directory(at, &c_leaf, &rel, entry),
            EntryKind::Symlink => self.symlink(at, &c_leaf, entry),
            EntryKind::HardLink => self.hard_link(at, &c_leaf, entry),
            EntryKind::Fifo | EntryKind::CharDevice | EntryKind::BlockDevice => {
                self.node(at, &c_leaf, entry)
            }
        };
        made.map_err(|e| match e {
            Made::Io(e) => create_error(&self.archive_name(&entry.path), &e),
            Made::Failure(f) => f,
        })
    }

    /// The descriptor of directory `rel` below the root (`""`: the root),
    /// opened one name at a time without following symlinks; with
    /// `create`, a directory the stream did not create first is made (0755,
    /// root's), as the Engine does.
    fn dir(&mut self, rel: &[u8], create: bool) -> Result<i32, Failure> {
        self.reach(rel, create)
            .map_err(|(path, e)| create_error(&self.shown(&path), &e))
    }

    /// As [`Extract::dir`]; the error names the directory that failed.
    fn reach(&mut self, rel: &[u8], create: bool) -> Result<i32, (Vec<u8>, io::Error)> {
        if rel.is_empty() {
            self.open.clear();
            return Ok(self.root.as_raw_fd());
        }
        // Keep the open directories that lead to `rel`.
        while let Some(last) = self.open.last() {
            let leads = rel.starts_with(&last.path)
                && (rel.len() == last.path.len() || rel[last.path.len()] == b'/');
            if leads {
                break;
            }
            self.open.pop();
        }
        let mut at = self
            .open
            .last()
            .map_or(self.root.as_raw_fd(), |o| o.dir.as_raw_fd());
        let mut end = self.open.last().map_or(0, |o| o.path.len());
        while end < rel.len() {
            let start = if end == 0 { 0 } else { end + 1 };
            end = rel[start..]
                .iter()
                .position(|&b| b == b'/')
                .map_or(rel.len(), |i| start + i);
            let path = rel[..end].to_vec();
            let opened = c_string(&rel[start..end]).and_then(|c_name| {
                match open_dir(at, &c_name) {
                    Err(e) if create && e.raw_os_error() == Some(ENOENT) => {
                        // SAFETY: a NUL-terminated name in an open directory.
                        if unsafe { mkdirat(at, c_name.as_ptr(), 0o755) } != 0 {
                            return Err(io::Error::last_os_error());
                        }
                        open_dir(at, &c_name)
                    }
                    other => other,
                }
            });
            let dir = match opened {
                Ok(dir) => dir,
                Err(e) => return Err((path, e)),
            };
            at = dir.as_raw_fd();
            self.open.push(Open { path, dir });
        }
        Ok(at)
    }

    fn file<R: io::Read>(
        &mut self,
        at: i32,
        name: &CString,
        entry: &Entry,
        tar: &mut TarReader<R>,
    ) -> Result<(), Made> {
        let flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
        let fd = retry_if_taken(at, name, || {
            // SAFETY: a NUL-terminated name in an open directory; the mode
            // is the third argument O_CREAT wants.
            unsafe { openat(at, name.as_ptr(), flags, (entry.mode & 0o777) as c_uint) }
        })?;
        // SAFETY: a descriptor openat just returned, owned by nothing else.
        let mut file = unsafe { File::from_raw_fd(fd) };
        loop {
            match tar.read_data(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => file.write_all(&self.buf[..n]).map_err(Made::Io)?,
                Err(e) => return Err(Made::Failure(Failure::Stream(e))),
            }
        }
        self.attributes(fd, entry).map_err(Made::Failure)?;
        // SAFETY: an open descriptor and a valid `[timespec; 2]`.
        check(unsafe { futimens(fd, &times(entry.mtime)) })
    }

    fn directory(
        &mut self,
        at: i32,
        name: &CString,
        rel: &[u8],
        entry: &Entry,
    ) -> Result<(), Made> {
        // SAFETY: a NUL-terminated name in an open directory.
        let made = unsafe { mkdirat(at, name.as_ptr(), entry.mode & 0o777) };
        if made != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(EEXIST) {
                return Err(Made::Io(e));
            }
            // Already there: a directory keeps what it holds and takes the
            // entry's attributes; anything else goes.
            if let Err(e) = open_dir(at, name) {
                if !swapped(&e) {
                    return Err(Made::Io(e));
                }
                unlink(at, name)?;
                // SAFETY: as above.
                check(unsafe { mkdirat(at, name.as_ptr(), entry.mode & 0o777) })?;
            }
        }
        let dir = open_dir(at, name).map_err(Made::Io)?;
        self.attributes(dir.as_raw_fd(), entry)
            .map_err(Made::Failure)?;
        self.dir_times.push((rel.to_vec(), entry.mtime));
        // What follows is most often in it.
        self.open.push(Open {
            path: rel.to_vec(),
            dir,
        });
        Ok(())
    }

    fn symlink(&mut self, at: i32, name: &CString, entry: &Entry) -> Result<(), Made> {
        let target = c_string(entry.link.as_deref().unwrap_or_default()).map_err(Made::Io)?;
        retry_if_taken(at, name, || {
            // SAFETY: NUL-terminated target and name, an open directory.
            unsafe { symlinkat(target.as_ptr(), at, name.as_ptr()) }
        })?;
        own_at(at, name, entry)?;
        // SAFETY: as above, and a valid `[timespec; 2]`.
        check(unsafe { utimensat(at, name.as_ptr(), &times(entry.mtime), AT_SYMLINK_NOFOLLOW) })
    }

    /// A hard link to an earlier entry, found from the root as any other
    /// path. Its owner and mode are set as the Engine sets them (from the
    /// link's header); its times are the earlier entry's.
    fn hard_link(&mut self, at: i32, name: &CString, entry: &Entry) -> Result<(), Made> {
        let link = entry.link.as_deref().unwrap_or_default();
        let Some(target) = self.relative(link).map_err(Made::Failure)? else {
            return Err(Made::Failure(Failure::Create(format!(
                "{} is a hard link to the volume's root",
                show(&entry.path)
            ))));
        };
        let (parent, leaf) = match target.iter().rposition(|&b| b == b'/') {
            Some(i) => (&target[..i], &target[i + 1..]),
            None => (&target[..0], &target[..]),
        };
        let c_target = c_string(leaf).map_err(Made::Io)?;
        // The target's directory is opened apart from `at`, which the
        // directory cache may drop: hold `at`'s own descriptor meanwhile.
        let here_dir = dup_dir(at).map_err(Made::Io)?;
        let here = here_dir.as_raw_fd();
        let from = self.dir(parent, false).map_err(Made::Failure)?;
        retry_if_taken(here, name, || {
            // SAFETY: NUL-terminated names in open directories; a symlink
            // is linked itself, not followed.
            unsafe { linkat(from, c_target.as_ptr(), here, name.as_ptr(), 0) }
        })?;
        // The owner's change clears setuid, setgid and the capability: the
        // header's are set again after it, as for the first name.
        let kind = super::open_at(here, name, O_PATH | O_NOFOLLOW | O_CLOEXEC)?
            .metadata()?
            .file_type();
        if kind.is_file() {
            let file = super::open_at(here, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)?;
            self.attributes(file.as_raw_fd(), entry)
                .map_err(Made::Failure)?;
            // The header's mode even without special bits, as the Engine.
            // SAFETY: an open descriptor.
            check(unsafe { fchmod(file.as_raw_fd(), entry.mode) })
        } else if kind.is_symlink() {
            own_at(here, name, entry)
        } else {
            own_at(here, name, entry)?;
            // SAFETY: a NUL-terminated name in an open directory, just
            // seen not to be a symlink.
            check(unsafe { fchmodat(here, name.as_ptr(), entry.mode, 0) })
        }
    }

    /// A FIFO or a device. A device the kernel refuses to make in a user
    /// namespace (rootless Docker) is left out, as the Engine leaves it
    /// out, and said.
    fn node(&mut self, at: i32, name: &CString, entry: &Entry) -> Result<(), Made> {
        let (kind, dev) = match entry.kind {
            EntryKind::Fifo => (S_IFIFO, 0),
            EntryKind::CharDevice => (S_IFCHR, make_dev(entry.dev_major, entry.dev_minor)),
            _ => (S_IFBLK, make_dev(entry.dev_major, entry.dev_minor)),
        };
        let made = retry_if_taken(at, name, || {
            // SAFETY: a NUL-terminated name in an open directory.
            unsafe { mknodat(at, name.as_ptr(), kind | (entry.mode & 0o777), dev) }
        });
        match made {
            Err(Made::Io(e))
                if kind != S_IFIFO && e.raw_os_error() == Some(EPERM) && in_user_namespace() =>
            {
                left_out(
                    &self.archive_name(&entry.path),
                    "a device, in a user namespace",
                );
                return Ok(());
            }
            other => other?,
        };
        own_at(at, name, entry)?;
        if entry.mode & 0o7000 != 0 {
            // SAFETY: as above; a node just made, not a symlink.
            check(unsafe { fchmodat(at, name.as_ptr(), entry.mode, 0) })?;
        }
        // SAFETY: as above, and a valid `[timespec; 2]`.
        check(unsafe { utimensat(at, name.as_ptr(), &times(entry.mtime), AT_SYMLINK_NOFOLLOW) })
    }

    /// Owner, xattrs and mode of an open file or directory, in the order
    /// that keeps each: a change of owner clears setuid, setgid and the
    /// capability xattr.
    fn attributes(&self, fd: i32, entry: &Entry) -> Result<(), Failure> {
        let failed = |e: io::Error| create_error(&self.archive_name(&entry.path), &e);
        // SAFETY: an open descriptor.
        if unsafe { fchown(fd, entry.uid as c_uint, entry.gid as c_uint) } != 0 {
            return Err(failed(io::Error::last_os_error()));
        }
        for (key, value) in &entry.xattrs {
            let key = c_string(key).map_err(failed)?;
            // SAFETY: a NUL-terminated name, and a value readable for its
            // length.
            let set = unsafe { fsetxattr(fd, key.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
            if set != 0 {
                let e = io::Error::last_os_error();
                // As the Engine: an xattr the file system or the helper's
                // privileges refuse is left out, and said.
                if !matches!(e.raw_os_error(), Some(ENOTSUP) | Some(EPERM)) {
                    return Err(failed(e));
                }
                left_out(
                    &self.archive_name(&entry.path),
                    &format!("its xattr {}: {e}", String::from_utf8_lossy(key.as_bytes())),
                );
            }
        }
        let created = entry.mode & 0o777;
        if entry.mode != created || entry.kind == EntryKind::Dir {
            // SAFETY: an open descriptor.
            if unsafe { fchmod(fd, entry.mode) } != 0 {
                return Err(failed(io::Error::last_os_error()));
            }
        }
        Ok(())
    }
}

/// How making one entry failed: a system call (named with the entry by
/// the caller), or a failure already worded.
enum Made {
    Io(io::Error),
    Failure(Failure),
}

impl From<io::Error> for Made {
    fn from(e: io::Error) -> Made {
        Made::Io(e)
    }
}

/// Runs `make` (which returns a descriptor or 0, or -1 with errno set);
/// where the name is taken (a tar with an entry twice), removes what is
/// there and runs `make` once more, as the Engine replaces what is in the
/// way.
fn retry_if_taken(at: i32, name: &CString, mut make: impl FnMut() -> c_int) -> Result<c_int, Made> {
    let made = make();
    if made >= 0 {
        return Ok(made);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() != Some(EEXIST) {
        return Err(Made::Io(e));
    }
    unlink(at, name)?;
    let made = make();
    if made < 0 {
        return Err(Made::Io(io::Error::last_os_error()));
    }
    Ok(made)
}

/// Removes what is at `name`: a directory with all it holds, as the Engine
/// removes it.
fn unlink(at: i32, name: &CString) -> Result<(), Made> {
    // SAFETY: a NUL-terminated name in an open directory.
    if unsafe { unlinkat(at, name.as_ptr(), 0) } == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(EISDIR) {
        return remove_tree(at, name).map_err(Made::Io);
    }
    Err(Made::Io(e))
}

/// Removes directory `name` of `at` and everything under it, each entry
/// from its directory held open.
fn remove_tree(at: i32, name: &CString) -> io::Result<()> {
    let dir = open_dir(at, name)?;
    let listing = format!("/proc/self/fd/{}", dir.as_raw_fd());
    for child in std::fs::read_dir(listing)? {
        let child = child?;
        let c_child = c_string(std::os::unix::ffi::OsStrExt::as_bytes(
            child.file_name().as_os_str(),
        ))?;
        if child.file_type()?.is_dir() {
            remove_tree(dir.as_raw_fd(), &c_child)?;
        // SAFETY: a NUL-terminated name in an open directory.
        } else if unsafe { unlinkat(dir.as_raw_fd(), c_child.as_ptr(), 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    drop(dir);
    // SAFETY: as above.
    if unsafe { unlinkat(at, name.as_ptr(), AT_REMOVEDIR) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The owner of a name that may be a symlink, not what it points to.
fn own_at(at: i32, name: &CString, entry: &Entry) -> Result<(), Made> {
    // SAFETY: a NUL-terminated name in an open directory.
    check(unsafe {
        fchownat(
            at,
            name.as_ptr(),
            entry.uid as c_uint,
            entry.gid as c_uint,
            AT_SYMLINK_NOFOLLOW,
        )
    })
}

fn check(result: c_int) -> Result<(), Made> {
    if result < 0 {
        return Err(Made::Io(io::Error::last_os_error()));
    }
    Ok(())
}

/// Opens directory `name` of `at`, not through a symlink.
fn open_dir(at: i32, name: &CString) -> io::Result<File> {
    super::open_at(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
}

/// Another descriptor of the open directory `at`.
fn dup_dir(at: i32) -> io::Result<File> {
    open_dir(at, &c_string(b".")?)
}

/// Says on standard error (which volsafe shows as a warning) that part of
/// an entry was left out.
fn left_out(name: &[u8], what: &str) {
    eprintln!("volsafe-tar: left out {what} of {}", show(name));
}

/// Whether this process runs in a user namespace: its uid map is not the
/// whole range onto itself.
fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .is_ok_and(|map| map.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
}

/// atime and mtime both set to `mtime`, whole seconds.
fn times(mtime: i64) -> [i64; 4] {
    [mtime, 0, mtime, 0]
}

/// glibc's `makedev`.
fn make_dev(major: u32, minor: u32) -> u64 {
    let (major, minor) = (u64::from(major), u64::from(minor));
    ((major & 0xffff_f000) << 32)
        | ((major & 0xfff) << 8)
        | ((minor & 0xffff_ff00) << 12)
        | (minor & 0xff)
}

fn create_error(path: &[u8], e: &io::Error) -> Failure {
    Failure::Create(format!("cannot create {}: {e}", show(path)))
}

#[cfg(test)]
mod tests;
