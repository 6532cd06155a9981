//! A digest of a volume's tree, made inside a container so it sees exactly
//! what the Engine sees: every path with its type, owner, mode, size,
//! mtime, link target, hard-link group and content hash.
//!
//! The listing is kept next to the hash so a failing comparison can show
//! the first differing lines instead of two opaque hex strings.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use super::{docker, test_image, Volume};

/// Sections of the container's output, separated by this line.
const SECTION: &str = "@@vstest-section@@";

/// `find` batches its execs (`{} +`), so 20,000 files take about a second.
const SCRIPT: &str = r#"set -e
cd /v
find . -exec stat -c '%f %u %g %s %Y %h %i %n' {} +
printf '\n@@vstest-section@@\n'
find . -type l -exec sh -c 'for f do printf "%s\0%s\0" "$f" "$(readlink "$f")"; done' sh {} +
printf '\n@@vstest-section@@\n'
find . -type f -exec sha256sum {} +
"#;

/// One line per path, sorted; see [`digest`].
#[derive(Clone, PartialEq, Eq)]
pub struct Tree {
    pub listing: String,
}

impl Tree {
    /// SHA-256 of the listing.
    pub fn sha256(&self) -> String {
        hex::encode(Sha256::digest(self.listing.as_bytes()))
    }

    /// The same tree without its sockets (the Engine never archives them).
    pub fn without_sockets(&self) -> Tree {
        self.filter(|l| !l.contains("\tsocket "))
    }

    /// Only the lines for which `keep` is true.
    pub fn filter(&self, keep: impl Fn(&str) -> bool) -> Tree {
        let mut listing = String::new();
        for line in self.listing.lines().filter(|l| keep(l)) {
            listing.push_str(line);
            listing.push('\n');
        }
        Tree { listing }
    }

    /// The line for `path` (as listed, e.g. `./a/b`).
    pub fn entry(&self, path: &str) -> Option<&str> {
        let prefix = format!("{path}\t");
        self.listing.lines().find(|l| l.starts_with(&prefix))
    }

    pub fn len(&self) -> usize {
        self.listing.lines().count()
    }

    /// Panics with the first differing lines unless the trees are equal.
    pub fn assert_same(&self, actual: &Tree, what: &str) {
        if self == actual {
            return;
        }
        let mut msg = format!(
            "{what}: trees differ ({} vs {} entries, sha256 {} vs {})\n",
            self.len(),
            actual.len(),
            self.sha256(),
            actual.sha256()
        );
        let expected: Vec<&str> = self.listing.lines().collect();
        let got: Vec<&str> = actual.listing.lines().collect();
        let only = |a: &[&str], b: &[&str]| -> Vec<String> {
            let b: std::collections::HashSet<&str> = b.iter().copied().collect();
            a.iter()
                .filter(|l| !b.contains(*l))
                .map(|l| l.to_string())
                .collect()
        };
        for (label, lines) in [
            ("- expected only", only(&expected, &got)),
            ("+ actual only", only(&got, &expected)),
        ] {
            let _ = writeln!(msg, "{label} ({} lines):", lines.len());
            for l in lines.iter().take(25) {
                let _ = writeln!(msg, "  {l}");
            }
            if lines.len() > 25 {
                let _ = writeln!(msg, "  …");
            }
        }
        // The whole listings, for a diff tool; only ever on failure.
        let stem = std::env::temp_dir().join(super::unique_name("listing"));
        let (left, right) = (
            stem.with_extension("expected"),
            stem.with_extension("actual"),
        );
        if std::fs::write(&left, &self.listing).is_ok()
            && std::fs::write(&right, &actual.listing).is_ok()
        {
            let _ = writeln!(
                msg,
                "full listings: diff {} {}",
                left.display(),
                right.display()
            );
        }
        panic!("{msg}");
    }
}

impl std::fmt::Debug for Tree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tree({} entries, {})", self.len(), self.sha256())
    }
}

/// The tree of `volume`, read in a container with the volume mounted
/// read-only.
pub fn digest(volume: &Volume) -> Tree {
    digest_mount(&format!("{}:/v:ro", volume.name()))
}

/// The tree of a host directory, read the same way through a bind mount,
/// so host-side extractions compare with volumes line by line.
pub fn digest_dir(dir: &Path) -> Tree {
    let dir = dir.canonicalize().expect("canonicalize");
    digest_mount(&format!("{}:/v:ro", dir.display()))
}

fn digest_mount(mount: &str) -> Tree {
    let out = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        mount,
        test_image(),
        "sh",
        "-c",
        SCRIPT,
    ]);
    assert!(
        out.status.success(),
        "digest of {mount}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    parse(&out.stdout)
}

struct Entry {
    kind: &'static str,
    uid: String,
    gid: String,
    mode: u32,
    size: String,
    mtime: String,
    nlink: u64,
    inode: String,
}

fn parse(out: &[u8]) -> Tree {
    let marker = format!("\n{SECTION}\n");
    let parts = split_bytes(out, marker.as_bytes());
    assert_eq!(parts.len(), 3, "digest output has no three sections");

    let mut entries: BTreeMap<Vec<u8>, Entry> = BTreeMap::new();
    for line in parts[0].split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let fields: Vec<&[u8]> = line.splitn(8, |&b| b == b' ').collect();
        assert_eq!(fields.len(), 8, "stat line {:?}", escape(line));
        let text = |i: usize| String::from_utf8_lossy(fields[i]).into_owned();
        let raw = u32::from_str_radix(&text(0), 16).expect("hex mode");
        entries.insert(
            fields[7].to_vec(),
            Entry {
                kind: kind(raw),
                uid: text(1),
                gid: text(2),
                mode: raw & 0o7777,
                size: text(3),
                mtime: text(4),
                nlink: text(5).parse().expect("nlink"),
                inode: text(6),
            },
        );
    }

    let mut targets: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut fields = parts[1].split(|&b| b == 0);
    while let (Some(path), Some(target)) = (fields.next(), fields.next()) {
        targets.insert(path.to_vec(), target.to_vec());
    }

    let mut hashes: HashMap<Vec<u8>, String> = HashMap::new();
    for line in parts[2].split(|&b| b == b'\n').filter(|l| l.len() > 66) {
        let hash = String::from_utf8_lossy(&line[..64]).into_owned();
        hashes.insert(line[66..].to_vec(), hash);
    }

    // A hard-link group is named by its first path, so the listing does
    // not depend on inode numbers.
    let mut groups: HashMap<&str, &[u8]> = HashMap::new();
    for (path, e) in &entries {
        if e.kind != "dir" && e.nlink > 1 {
            groups.entry(e.inode.as_str()).or_insert(path.as_slice());
        }
    }

    let mut listing = String::new();
    for (path, e) in &entries {
        let _ = write!(
            listing,
            "{}\t{} uid={} gid={} mode={:04o} mtime={}",
            escape(path),
            e.kind,
            e.uid,
            e.gid,
            e.mode,
            e.mtime
        );
        if e.kind == "file" {
            let _ = write!(listing, " size={}", e.size);
            let hash = hashes.get(path).map_or("?", String::as_str);
            let _ = write!(listing, " sha256={hash}");
        }
        if e.kind != "dir" {
            let _ = write!(listing, " nlink={}", e.nlink);
        }
        if let Some(first) = groups.get(e.inode.as_str()).filter(|_| e.nlink > 1) {
            let _ = write!(listing, " linkgroup={}", escape(first));
        }
        if let Some(target) = targets.get(path) {
            let _ = write!(listing, " -> {}", escape(target));
        }
        listing.push('\n');
    }
    Tree { listing }
}

fn kind(raw_mode: u32) -> &'static str {
    match raw_mode & 0o170000 {
        0o140000 => "socket",
        0o120000 => "symlink",
        0o100000 => "file",
        0o060000 => "block",
        0o040000 => "dir",
        0o020000 => "char",
        0o010000 => "fifo",
        _ => "unknown",
    }
}

fn split_bytes<'a>(haystack: &'a [u8], needle: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + needle.len() <= haystack.len() {
        if &haystack[i..i + needle.len()] == needle {
            parts.push(&haystack[start..i]);
            i += needle.len();
            start = i;
        } else {
            i += 1;
        }
    }
    parts.push(&haystack[start..]);
    parts
}

/// UTF-8 as is; backslash, tab, newline and invalid bytes escaped, so
/// distinct names never print the same.
fn escape(bytes: &[u8]) -> String {
    let mut s = String::new();
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                '\t' => s.push_str("\\t"),
                '\n' => s.push_str("\\n"),
                c => s.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(s, "\\x{b:02x}");
        }
    }
    s
}
