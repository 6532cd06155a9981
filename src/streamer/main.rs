//! volsafe-tar: the program a streaming helper container runs.
//!
//! It writes the tree under ROOT as a tar stream into OUTPUT (the FIFO that
//! volsafe reads on the host), with every name under NAME, in the form the
//! Engine's archive endpoint gives for the same directory: the root entry
//! first, then each directory's entries in byte order of their names, each
//! directory before what it holds; names of directories end in `/`; owners
//! as numbers (no names: volsafe keeps none); mtimes in whole seconds; a
//! file with several links once as a file and then as hard links to its
//! first name; only the `security.capability` xattr; sockets left out. volsafe re-frames this
//! stream exactly as it re-frames the endpoint's.
//!
//! Unlike the endpoint, which leaves out a file it cannot read with only a
//! line in the daemon's log, it stops at the first such file and says which
//! one. An entry removed while the tree is walked is left out, as GNU tar
//! does. A file that shrinks while it is read ends the stream early (exit
//! 4), as the endpoint does, so that volsafe reads the volume again.
//!
//! With `--extract ROOT NAME INPUT` it works the other way, for a restore:
//! see `extract.rs`.
//!
//! Built by build.rs with std alone and linked statically: the helper image
//! holds no libc. Exit codes: 0 done, 1 a file or directory could not be
//! read, 2 usage, 3 OUTPUT cannot be opened (nothing was written), 4 a file
//! shrank or an entry changed kind while it was read, 5 writing to OUTPUT
//! failed (volsafe stopped reading), 6 OUTPUT is inside the tree (the
//! image's layout put the staging mount in the volume's place).

mod extract;
mod tarstream;

use std::collections::HashMap;
use std::ffi::{CString, OsString};
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, BufWriter, ErrorKind, Write};
use std::os::fd::AsRawFd;
use std::os::raw::{c_char, c_int, c_void};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tarstream::{Entry, EntryKind, TarWriter};

/// The one xattr the endpoint keeps.
const CAPABILITY: &str = "security.capability";

/// Writes to the FIFO go out in pieces this large.
const OUT_BUF: usize = 1 << 20;

/// Linux's open(2) flags that std does not name and that differ between
/// architectures. (build.rs builds volsafe-tar only for 64-bit ones: on
/// 32-bit glibc, `openat` without `O_LARGEFILE` refuses files of 2 GiB.)
#[cfg(any(
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "powerpc",
    target_arch = "powerpc64"
))]
mod arch {
    pub const O_NOFOLLOW: i32 = 0o100000;
    pub const O_DIRECTORY: i32 = 0o40000;
}
#[cfg(not(any(
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "powerpc",
    target_arch = "powerpc64"
)))]
mod arch {
    pub const O_NOFOLLOW: i32 = 0o400000;
    pub const O_DIRECTORY: i32 = 0o200000;
}
use arch::{O_DIRECTORY, O_NOFOLLOW};

const O_RDONLY: i32 = 0;
const O_NONBLOCK: i32 = 0o4000;
const O_CLOEXEC: i32 = 0o2000000;
const F_GETFL: i32 = 3;
const F_SETFL: i32 = 4;
const RLIMIT_NOFILE: i32 = 7;
/// `AT_FDCWD`: a path given to an `*at` call is looked up as usual.
const AT_FDCWD: i32 = -100;
const ENOTDIR: i32 = 20;
const EINVAL: i32 = 22;
const ELOOP: i32 = 40;
const ENODATA: i32 = 61;
const ENOTSUP: i32 = 95;
const ERANGE: i32 = 34;

extern "C" {
    fn openat(dirfd: c_int, path: *const c_char, flags: c_int, ...) -> c_int;
    fn readlinkat(dirfd: c_int, path: *const c_char, buf: *mut c_char, size: usize) -> isize;
    fn fgetxattr(fd: c_int, name: *const c_char, value: *mut c_void, size: usize) -> isize;
    fn fcntl(fd: c_int, cmd: c_int, ...) -> c_int;
    fn getrlimit(resource: c_int, rlim: *mut [u64; 2]) -> c_int;
    fn setrlimit(resource: c_int, rlim: *const [u64; 2]) -> c_int;
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    if let [_, mode, root, name, input] = &args[..] {
        if mode == "--extract" {
            return extract::main(Path::new(root), name.as_bytes(), Path::new(input));
        }
    }
    let [_, root, name, output] = &args[..] else {
        eprintln!(
            "usage: volsafe-tar ROOT NAME OUTPUT\n       volsafe-tar --extract ROOT NAME INPUT"
        );
        return ExitCode::from(2);
    };
    // Without blocking: where no reader has the FIFO open, this is another
    // kernel's FIFO (the daemon in a VM that shares the directory), and
    // volsafe, which opened its end first, reads the endpoint instead.
    let out = match OpenOptions::new()
        .write(true)
        .custom_flags(O_NONBLOCK | O_CLOEXEC)
        .open(output)
        .and_then(|f| set_blocking(&f).map(|()| f))
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!(
                "volsafe-tar: cannot open {}: {e}",
                Path::new(output).display()
            );
            return ExitCode::from(3);
        }
    };
    raise_open_files_limit();
    let output_id = match out.metadata() {
        Ok(m) => (m.dev(), m.ino()),
        Err(e) => {
            eprintln!("volsafe-tar: {}: {e}", Path::new(output).display());
            return ExitCode::from(3);
        }
    };
    let mut walk = Walk {
        tar: TarWriter::new(BufWriter::with_capacity(OUT_BUF, out)),
        links: HashMap::new(),
        output_id,
    };
    let done = walk.tree(Path::new(root), name.as_bytes()).and_then(|()| {
        walk.tar
            .finish()
            .and_then(|mut out| out.flush())
            .map_err(Failure::Write)
    });
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Shrank(msg)) => {
            eprintln!("volsafe-tar: {msg}");
            ExitCode::from(4)
        }
        Err(Failure::Read(msg)) => {
            eprintln!("volsafe-tar: {msg}");
            ExitCode::from(1)
        }
        Err(Failure::Write(e)) => {
            eprintln!("volsafe-tar: writing the stream: {e}");
            ExitCode::from(5)
        }
        Err(Failure::Misplaced(msg)) => {
            eprintln!("volsafe-tar: {msg}");
            ExitCode::from(6)
        }
    }
}

/// The walk holds two descriptors per directory level: a deep tree needs
/// more than the soft limit that some daemons give containers (1024), and
/// the hard limit is there to take.
fn raise_open_files_limit() {
    let mut limit = [0u64; 2];
    // SAFETY: `limit` is a `struct rlimit` (two 64-bit values on the
    // architectures build.rs builds for).
    unsafe {
        if getrlimit(RLIMIT_NOFILE, &mut limit) == 0 && limit[0] < limit[1] {
            limit[0] = limit[1];
            setrlimit(RLIMIT_NOFILE, &limit);
        }
    }
}

enum Failure {
    /// A file or directory that cannot be read; the message names it.
    Read(String),
    /// A file that ended before its size, or an entry that changed kind.
    Shrank(String),
    /// The stream itself (volsafe stopped reading).
    Write(io::Error),
    /// The tree holds OUTPUT: it is not the volume.
    Misplaced(String),
}

struct Walk {
    tar: TarWriter<BufWriter<File>>,
    /// (device, inode) of each file with several links, and its first name.
    links: HashMap<(u64, u64), Vec<u8>>,
    /// (device, inode) of OUTPUT, which must not be met in the tree.
    output_id: (u64, u64),
}

impl Walk {
    /// The root, then everything under it, depth first in byte order.
    fn tree(&mut self, root: &Path, name: &[u8]) -> Result<(), Failure> {
        let meta = fs::symlink_metadata(root).map_err(|e| read_error(name, &e))?;
        if !meta.is_dir() {
            return Err(Failure::Read(format!("{}: not a directory", show(name))));
        }
        let c_root = c_string(root.as_os_str().as_bytes()).map_err(|e| read_error(name, &e))?;
        let dir = match Dir::open(AT_FDCWD, &c_root, &meta) {
            Ok(Some(dir)) => dir,
            Ok(None) => return Err(changed(name)),
            Err(e) => return Err(read_error(name, &e)),
        };
        let mut root_name = name.to_vec();
        root_name.push(b'/');
        self.append_other(entry_of(root_name, &meta))?;
        // Each level: the directory, its name in the stream, and its
        // children still to visit, last first.
        let children = dir.children(name)?;
        let mut stack = vec![(dir, name.to_vec(), children)];
        while let Some((dir, dir_name, children)) = stack.last_mut() {
            let Some(child) = children.pop() else {
                stack.pop();
                continue;
            };
            let mut child_name = dir_name.clone();
            child_name.push(b'/');
            child_name.extend_from_slice(child.file_name().as_bytes());
            // fstatat on the listed directory, not following a link.
            let meta = match child.metadata() {
                Ok(m) => m,
                // Removed since the directory was listed.
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(read_error(&child_name, &e)),
            };
            let c_name =
                c_string(child.file_name().as_bytes()).map_err(|e| read_error(&child_name, &e))?;
            if (meta.dev(), meta.ino()) == self.output_id {
                return Err(Failure::Misplaced(format!(
                    "{} is the stream itself: the tree is not the volume",
                    show(&child_name)
                )));
            }
            let kind = meta.file_type();
            if kind.is_file() {
                self.append_file(dir, &c_name, entry_of(child_name, &meta))?;
            } else if kind.is_dir() {
                let sub = match Dir::open(dir.fd(), &c_name, &meta) {
                    Ok(Some(sub)) => sub,
                    Ok(None) => return Err(changed(&child_name)),
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) if swapped(&e) => return Err(changed(&child_name)),
                    Err(e) => return Err(read_error(&child_name, &e)),
                };
                let mut entry_name = child_name.clone();
                entry_name.push(b'/');
                self.append_other(entry_of(entry_name, &meta))?;
                let grandchildren = sub.children(&child_name)?;
                stack.push((sub, child_name, grandchildren));
            } else if kind.is_symlink() {
                let mut entry = entry_of(child_name, &meta);
                entry.link = match read_link_at(dir.fd(), &c_name) {
                    Ok(target) => Some(target),
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    // No longer a symlink.
                    Err(e) if e.raw_os_error() == Some(EINVAL) => return Err(changed(&entry.path)),
                    Err(e) => return Err(read_error(&entry.path, &e)),
                };
                self.append_linked(entry, &meta)?;
            } else if !kind.is_socket() {
                self.append_linked(entry_of(child_name, &meta), &meta)?;
            }
        }
        Ok(())
    }

    fn append_other(&mut self, entry: Entry) -> Result<(), Failure> {
        self.tar
            .append(&entry, &mut io::empty())
            .map_err(|e| unwritable(&entry, e))
    }

    /// A non-directory without data (symlink, FIFO, device) that has several
    /// links is written once, then as hard links to its first name, as the
    /// Engine does.
    fn append_linked(&mut self, mut entry: Entry, meta: &Metadata) -> Result<(), Failure> {
        if let Some(first) = self.first_link(&entry, meta) {
            entry.kind = EntryKind::HardLink;
            entry.link = Some(first);
        }
        self.append_other(entry)
    }

    /// The first name of a file with several links that was already
    /// written; `None` (and the name noted) for the first of them.
    fn first_link(&mut self, entry: &Entry, meta: &Metadata) -> Option<Vec<u8>> {
        if meta.nlink() <= 1 {
            return None;
        }
        let key = (meta.dev(), meta.ino());
        if let Some(first) = self.links.get(&key) {
            return Some(first.clone());
        }
        self.links.insert(key, entry.path.clone());
        None
    }

    /// A file's header describes the file as opened here, and its data is
    /// read from it.
    fn append_file(&mut self, dir: &Dir, name: &CString, mut entry: Entry) -> Result<(), Failure> {
        // Without blocking, in case a FIFO took the file's place since
        // the listing.
        let flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
        let mut file = match open_at(dir.fd(), name, flags) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if swapped(&e) => return Err(changed(&entry.path)),
            Err(e) => return Err(read_error(&entry.path, &e)),
        };
        let meta = file.metadata().map_err(|e| read_error(&entry.path, &e))?;
        if !meta.is_file() {
            // Replaced by something else since it was listed.
            return Err(changed(&entry.path));
        }
        set_blocking(&file).map_err(|e| read_error(&entry.path, &e))?;
        let path = std::mem::take(&mut entry.path);
        entry = entry_of(path, &meta);
        if let Some(cap) = capability(&file).map_err(|e| read_error(&entry.path, &e))? {
            entry.xattrs.push((CAPABILITY.as_bytes().to_vec(), cap));
        }
        if let Some(first) = self.first_link(&entry, &meta) {
            entry.kind = EntryKind::HardLink;
            entry.link = Some(first);
            entry.size = 0;
            return self.append_other(entry);
        }
        let mut data = Data { file: &mut file };
        match self.tar.append(&entry, &mut data) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => Err(Failure::Shrank(format!(
                "{} shrank while it was read",
                show(&entry.path)
            ))),
            Err(e) if e.get_ref().is_some_and(|r| r.is::<ReadFailed>()) => Err(Failure::Read(
                format!("cannot read {}: {}", show(&entry.path), e),
            )),
            Err(e) => Err(unwritable(&entry, e)),
        }
    }
}

/// An entry as the endpoint describes it; for a file, its size and no data.
fn entry_of(path: Vec<u8>, meta: &Metadata) -> Entry {
    let kind = meta.file_type();
    let (dev_major, dev_minor) = if kind.is_char_device() || kind.is_block_device() {
        split_dev(meta.rdev())
    } else {
        (0, 0)
    };
    Entry {
        path,
        kind: if kind.is_file() {
            EntryKind::File
        } else if kind.is_dir() {
            EntryKind::Dir
        } else if kind.is_symlink() {
            EntryKind::Symlink
        } else if kind.is_fifo() {
            EntryKind::Fifo
        } else if kind.is_char_device() {
            EntryKind::CharDevice
        } else {
            EntryKind::BlockDevice
        },
        mode: meta.mode() & 0o7777,
        uid: u64::from(meta.uid()),
        gid: u64::from(meta.gid()),
        uname: Vec::new(),
        gname: Vec::new(),
        mtime: meta.mtime(),
        size: if kind.is_file() { meta.len() } else { 0 },
        link: None,
        dev_major,
        dev_minor,
        xattrs: Vec::new(),
    }
}

/// A directory held open while what it holds is written. Everything under
/// it is looked up from it (`openat`, `fstatat`, `readlinkat`, and its
/// listing through `/proc/self/fd`), so a directory of the volume that is
/// swapped for a symlink while the walk is under it cannot lead the walk
/// out of the volume.
struct Dir {
    file: File,
    /// `/proc/self/fd/N`, to list it.
    listing: PathBuf,
}

impl Dir {
    /// Opens directory `name` of directory `at`, which must still be the
    /// one `expected` describes; `None` when it is not.
    fn open(at: i32, name: &CString, expected: &Metadata) -> io::Result<Option<Dir>> {
        let file = open_at(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)?;
        let meta = file.metadata()?;
        if (meta.dev(), meta.ino()) != (expected.dev(), expected.ino()) {
            return Ok(None);
        }
        // Listed through the open directory; without /proc there is no
        // such way, and a listing by name could follow a swapped symlink.
        let listing = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        if !listing.exists() {
            return Err(io::Error::new(
                ErrorKind::Unsupported,
                "no /proc/self/fd to list directories through",
            ));
        }
        Ok(Some(Dir { file, listing }))
    }

    fn fd(&self) -> i32 {
        self.file.as_raw_fd()
    }

    /// The entries, sorted so that the last is the first to visit. Each
    /// keeps the listing's directory open, and its metadata is looked up
    /// from there.
    fn children(&self, name: &[u8]) -> Result<Vec<fs::DirEntry>, Failure> {
        let listing = fs::read_dir(&self.listing).map_err(|e| read_error(name, &e))?;
        let mut entries = Vec::new();
        for entry in listing {
            entries.push(entry.map_err(|e| read_error(name, &e))?);
        }
        entries.sort_unstable_by(|a, b| b.file_name().as_bytes().cmp(a.file_name().as_bytes()));
        Ok(entries)
    }
}

/// A file's data, its read errors told apart from the stream's write errors.
struct Data<'a> {
    file: &'a mut File,
}

#[derive(Debug)]
struct ReadFailed(io::Error);

impl std::fmt::Display for ReadFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for ReadFailed {}

impl io::Read for Data<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.file.read(buf) {
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(io::Error::other(ReadFailed(e))),
                Ok(n) => return Ok(n),
            }
        }
    }
}

/// The `security.capability` xattr of an open file.
fn capability(file: &File) -> io::Result<Option<Vec<u8>>> {
    let name = c_string(CAPABILITY.as_bytes())?;
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: `name` is NUL-terminated and `buf` is writable for its length.
        let n = unsafe {
            fgetxattr(
                file.as_raw_fd(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok(Some(buf));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(ENODATA) | Some(ENOTSUP) => return Ok(None),
            Some(ERANGE) if buf.len() < 1 << 16 => buf.resize(buf.len() * 4, 0),
            _ => return Err(e),
        }
    }
}

fn open_at(at: i32, name: &CString, flags: i32) -> io::Result<File> {
    // SAFETY: `name` is NUL-terminated; no mode is needed without O_CREAT.
    let fd = unsafe { openat(at, name.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor openat just returned, owned by nothing else.
    Ok(unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

fn read_link_at(at: i32, name: &CString) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: `name` is NUL-terminated and `buf` is writable for its length.
        let n = unsafe { readlinkat(at, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if (n as usize) < buf.len() {
            buf.truncate(n as usize);
            return Ok(buf);
        }
        buf.resize(buf.len() * 2, 0);
    }
}

/// Clears `O_NONBLOCK`.
fn set_blocking(file: &File) -> io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: F_GETFL and F_SETFL on an open descriptor.
    let flags = unsafe { fcntl(fd, F_GETFL) };
    if flags < 0 || unsafe { fcntl(fd, F_SETFL, flags & !O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// An error of a lookup that found another kind of entry than the listing
/// did: a directory or file swapped for a symlink, or the reverse.
fn swapped(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(ELOOP) | Some(ENOTDIR))
}

/// The tar writer refused an entry (a device number too large for tar):
/// a failure naming it, not the stream's.
fn unwritable(entry: &Entry, e: io::Error) -> Failure {
    if e.kind() == ErrorKind::InvalidInput {
        Failure::Read(format!("cannot write {} as tar: {e}", show(&entry.path)))
    } else {
        Failure::Write(e)
    }
}

fn c_string(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|e| io::Error::new(ErrorKind::InvalidInput, e))
}

/// glibc's `major` and `minor` of a device number.
fn split_dev(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major as u32, minor as u32)
}

/// An entry replaced by another kind while the walk passed it: as for a
/// file that shrank, reading again may succeed.
fn changed(name: &[u8]) -> Failure {
    Failure::Shrank(format!("{} changed while it was read", show(name)))
}

fn read_error(name: &[u8], e: &io::Error) -> Failure {
    Failure::Read(format!("cannot read {}: {e}", show(name)))
}

fn show(name: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::tarstream::{EntryKind as Kind, TarReader};

    fn walker(out: &tempfile::NamedTempFile) -> Walk {
        let meta = out.as_file().metadata().unwrap();
        Walk {
            tar: TarWriter::new(BufWriter::new(out.reopen().unwrap())),
            links: HashMap::new(),
            output_id: (meta.dev(), meta.ino()),
        }
    }

    /// An image whose layout mounts the staging directory in the volume's
    /// place: the walk meets its own output, and stops.
    #[test]
    fn a_tree_that_holds_the_output_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), b"data").unwrap();
        let out = tempfile::NamedTempFile::new_in(dir.path()).unwrap();
        let mut walk = walker(&out);
        assert!(matches!(
            walk.tree(dir.path(), b"volume"),
            Err(Failure::Misplaced(_))
        ));
    }

    /// The walk's stream, read back: (name, kind, link) of every entry.
    fn walk(root: &Path) -> Vec<(String, Kind, Option<String>)> {
        let out = tempfile::NamedTempFile::new().unwrap();
        let mut walk = walker(&out);
        assert!(walk.tree(root, b"volume").is_ok());
        walk.tar.finish().unwrap().flush().unwrap();
        let mut tar = TarReader::new(File::open(out.path()).unwrap());
        let mut seen = Vec::new();
        while let Some(entry) = tar.next_entry().unwrap() {
            let link = entry
                .link
                .as_ref()
                .map(|l| String::from_utf8_lossy(l).into_owned());
            seen.push((entry.path_lossy(), entry.kind, link));
        }
        seen
    }

    #[test]
    fn writes_the_tree_in_the_endpoints_order_and_forms() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("b/sub")).unwrap();
        fs::create_dir(root.join("a")).unwrap();
        fs::write(root.join("b/file"), b"data").unwrap();
        fs::hard_link(root.join("b/file"), root.join("a/again")).unwrap();
        std::os::unix::fs::symlink("../b/file", root.join("b/link")).unwrap();
        fs::hard_link(root.join("b/link"), root.join("c-link-again")).unwrap();
        let fifo = c_string(root.join("fifo").as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        fs::hard_link(root.join("fifo"), root.join("fifo2")).unwrap();
        let _socket = std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();

        let file = |p: &str| (p.to_owned(), Kind::File, None);
        let dir_ = |p: &str| (p.to_owned(), Kind::Dir, None);
        let hard = |p: &str, to: &str| (p.to_owned(), Kind::HardLink, Some(to.to_owned()));
        assert_eq!(
            walk(root),
            vec![
                dir_("volume/"),
                dir_("volume/a/"),
                file("volume/a/again"),
                dir_("volume/b/"),
                hard("volume/b/file", "volume/a/again"),
                (
                    "volume/b/link".to_owned(),
                    Kind::Symlink,
                    Some("../b/file".to_owned())
                ),
                dir_("volume/b/sub/"),
                hard("volume/c-link-again", "volume/b/link"),
                ("volume/fifo".to_owned(), Kind::Fifo, None),
                hard("volume/fifo2", "volume/fifo"),
            ]
        );
    }

    #[test]
    fn a_directory_swapped_for_a_symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), b"s").unwrap();
        fs::create_dir(dir.path().join("d")).unwrap();
        let meta = fs::symlink_metadata(dir.path().join("d")).unwrap();
        // The listing saw a directory; by the time it is opened, it is a
        // symlink to a directory outside.
        fs::remove_dir(dir.path().join("d")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("d")).unwrap();
        let parent = c_string(dir.path().as_os_str().as_bytes()).unwrap();
        let root_meta = fs::symlink_metadata(dir.path()).unwrap();
        let parent = Dir::open(AT_FDCWD, &parent, &root_meta).unwrap().unwrap();
        let name = c_string(b"d").unwrap();
        let err = Dir::open(parent.fd(), &name, &meta)
            .err()
            .expect("a symlink is not opened as a directory");
        assert!(swapped(&err), "{err}");
    }

    #[test]
    fn device_numbers_split_as_glibc_does() {
        assert_eq!(split_dev(0x0107), (1, 7));
        // makedev(259, 0x12345): the minor's high bits sit above the major's.
        assert_eq!(split_dev(0x1231_0345), (259, 0x12345));
    }
}
