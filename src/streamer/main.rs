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
//! Built by build.rs with std alone and linked statically: the helper image
//! holds no libc. Exit codes: 0 done, 1 a file or directory could not be
//! read, 2 usage, 3 OUTPUT cannot be opened (nothing was written), 4 a file
//! shrank, 5 writing to OUTPUT failed (volsafe stopped reading).

mod tarstream;

use std::collections::HashMap;
use std::ffi::{CString, OsString};
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, BufWriter, ErrorKind, Write};
use std::os::raw::{c_char, c_void};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::process::ExitCode;

use tarstream::{Entry, EntryKind, TarWriter};

/// The one xattr the endpoint keeps.
const CAPABILITY: &str = "security.capability";

/// Writes to the FIFO go out in pieces this large.
const OUT_BUF: usize = 1 << 20;

const O_NOFOLLOW: i32 = 0o400000;
const ENODATA: i32 = 61;
const ENOTSUP: i32 = 95;
const ERANGE: i32 = 34;

extern "C" {
    fn lgetxattr(
        path: *const c_char,
        name: *const c_char,
        value: *mut c_void,
        size: usize,
    ) -> isize;
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let [_, root, name, output] = &args[..] else {
        eprintln!("usage: volsafe-tar ROOT NAME OUTPUT");
        return ExitCode::from(2);
    };
    let out = match OpenOptions::new().write(true).open(output) {
        Ok(f) => f,
        Err(e) => {
            eprintln!(
                "volsafe-tar: cannot open {}: {e}",
                Path::new(output).display()
            );
            return ExitCode::from(3);
        }
    };
    let mut walk = Walk {
        tar: TarWriter::new(BufWriter::with_capacity(OUT_BUF, out)),
        links: HashMap::new(),
    };
    let done = walk
        .tree(Path::new(root), name.as_bytes())
        .and_then(|()| walk.tar.finish()?.flush().map_err(Failure::Write));
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
    }
}

enum Failure {
    /// A file or directory that cannot be read; the message names it.
    Read(String),
    /// A file that ended before its size.
    Shrank(String),
    /// The stream itself (volsafe stopped reading).
    Write(io::Error),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Write(e)
    }
}

struct Walk {
    tar: TarWriter<BufWriter<File>>,
    /// (device, inode) of each file with several links, and its first name.
    links: HashMap<(u64, u64), Vec<u8>>,
}

impl Walk {
    /// The root, then everything under it, depth first in byte order.
    fn tree(&mut self, root: &Path, name: &[u8]) -> Result<(), Failure> {
        let meta = fs::symlink_metadata(root).map_err(|e| read_error(name, &e))?;
        if !meta.is_dir() {
            return Err(Failure::Read(format!("{}: not a directory", show(name))));
        }
        let mut root_name = name.to_vec();
        root_name.push(b'/');
        self.append(root, root_name, &meta)?;
        // Each level: the directory's host path, its name in the stream,
        // and its children still to visit, last first.
        let mut stack = vec![(
            root.to_path_buf(),
            name.to_vec(),
            self.children(root, name)?,
        )];
        while let Some((dir, dir_name, children)) = stack.last_mut() {
            let Some(child) = children.pop() else {
                stack.pop();
                continue;
            };
            let path = dir.join(&child);
            let mut child_name = dir_name.clone();
            child_name.push(b'/');
            child_name.extend_from_slice(child.as_bytes());
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                // Removed since the directory was listed.
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(read_error(&child_name, &e)),
            };
            if meta.is_dir() {
                let mut entry_name = child_name.clone();
                entry_name.push(b'/');
                self.append(&path, entry_name, &meta)?;
                let grandchildren = match self.children(&path, &child_name) {
                    Ok(c) => c,
                    Err(Failure::Read(_)) if !path.exists() => continue,
                    Err(e) => return Err(e),
                };
                stack.push((path, child_name, grandchildren));
            } else {
                self.append(&path, child_name, &meta)?;
            }
        }
        Ok(())
    }

    /// A directory's entry names, sorted so that the last is the first to visit.
    fn children(&self, dir: &Path, name: &[u8]) -> Result<Vec<OsString>, Failure> {
        let listing = fs::read_dir(dir).map_err(|e| read_error(name, &e))?;
        let mut names = Vec::new();
        for entry in listing {
            names.push(entry.map_err(|e| read_error(name, &e))?.file_name());
        }
        names.sort_unstable_by(|a, b| b.as_bytes().cmp(a.as_bytes()));
        Ok(names)
    }

    /// Writes one entry; a file's data is read from the file opened here,
    /// and its header describes that open file.
    fn append(&mut self, path: &Path, name: Vec<u8>, meta: &Metadata) -> Result<(), Failure> {
        let kind = meta.file_type();
        let mut entry = Entry {
            path: name,
            kind: EntryKind::Dir,
            mode: meta.mode() & 0o7777,
            uid: u64::from(meta.uid()),
            gid: u64::from(meta.gid()),
            uname: Vec::new(),
            gname: Vec::new(),
            mtime: meta.mtime(),
            size: 0,
            link: None,
            dev_major: 0,
            dev_minor: 0,
            xattrs: Vec::new(),
        };
        if kind.is_socket() {
            return Ok(());
        }
        if let Some(cap) = capability(path).map_err(|e| read_error(&entry.path, &e))? {
            entry.xattrs.push((CAPABILITY.as_bytes().to_vec(), cap));
        }
        if kind.is_file() {
            return self.append_file(path, entry);
        }
        if kind.is_dir() {
            entry.kind = EntryKind::Dir;
        } else if kind.is_symlink() {
            entry.kind = EntryKind::Symlink;
            let target = fs::read_link(path).map_err(|e| read_error(&entry.path, &e))?;
            entry.link = Some(target.into_os_string().into_vec());
        } else if kind.is_fifo() {
            entry.kind = EntryKind::Fifo;
        } else if kind.is_char_device() || kind.is_block_device() {
            entry.kind = if kind.is_char_device() {
                EntryKind::CharDevice
            } else {
                EntryKind::BlockDevice
            };
            let (major, minor) = split_dev(meta.rdev());
            entry.dev_major = major;
            entry.dev_minor = minor;
        } else {
            return Ok(());
        }
        self.tar.append(&entry, &mut io::empty())?;
        Ok(())
    }

    fn append_file(&mut self, path: &Path, mut entry: Entry) -> Result<(), Failure> {
        let mut file = match OpenOptions::new()
            .read(true)
            .custom_flags(O_NOFOLLOW)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(read_error(&entry.path, &e)),
        };
        let meta = file.metadata().map_err(|e| read_error(&entry.path, &e))?;
        if !meta.is_file() {
            // Replaced by something else since it was listed.
            return Err(Failure::Shrank(format!(
                "{} changed while it was read",
                show(&entry.path)
            )));
        }
        entry.mode = meta.mode() & 0o7777;
        entry.uid = u64::from(meta.uid());
        entry.gid = u64::from(meta.gid());
        entry.mtime = meta.mtime();
        if meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.links.get(&key) {
                entry.kind = EntryKind::HardLink;
                entry.link = Some(first.clone());
                self.tar.append(&entry, &mut io::empty())?;
                return Ok(());
            }
            self.links.insert(key, entry.path.clone());
        }
        entry.kind = EntryKind::File;
        entry.size = meta.len();
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
            Err(e) => Err(Failure::Write(e)),
        }
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

/// The `security.capability` xattr of `path` itself (not of a link's target).
fn capability(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(ErrorKind::InvalidInput, e))?;
    let c_name = CString::new(CAPABILITY).expect("no NUL in the name");
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: both strings are NUL-terminated and `buf` is writable for its length.
        let n = unsafe {
            lgetxattr(
                c_path.as_ptr(),
                c_name.as_ptr(),
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
            _ if e.kind() == ErrorKind::NotFound => return Ok(None),
            _ => return Err(e),
        }
    }
}

/// glibc's `major` and `minor` of a device number.
fn split_dev(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major as u32, minor as u32)
}

fn read_error(name: &[u8], e: &io::Error) -> Failure {
    Failure::Read(format!("cannot read {}: {e}", show(name)))
}

fn show(name: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(name))
}
