//! Comparing two streams of entry records in one pass: the manifest an
//! archive carries, and a fresh read of a volume through the Engine.
//!
//! Both come in the Engine's walk order (names sorted component by
//! component, as `docker cp` walks a tree), so a merge of the two sorted
//! streams finds every entry that differs, is missing or was added, with
//! memory bounded by one manifest chunk and one copy buffer.

use std::io::Read;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::archive::manifest::{walk_order, Record};
use crate::archive::names;
use crate::archive::tarstream::{EntryKind, TarReader};
use crate::archive::{ArchiveReader, EntryData};

/// How many differences a report names; the rest are counted.
pub const NAMED: usize = 10;

/// A source of records in walk order.
pub trait Records {
    fn next_record(&mut self) -> Result<Option<Record>>;
}

/// The manifest of an archive, chunk by chunk.
pub struct Manifest {
    reader: ArchiveReader,
    /// Names the archive in messages.
    label: String,
    chunk: std::vec::IntoIter<Record>,
}

impl Manifest {
    pub fn new(reader: ArchiveReader, label: &str) -> Self {
        Manifest {
            reader,
            label: label.to_owned(),
            chunk: Vec::new().into_iter(),
        }
    }

    fn fill(&mut self) -> Result<bool> {
        match self
            .reader
            .next_manifest()
            .with_context(|| format!("{}: reading its manifest", self.label))?
        {
            Some(records) => {
                self.chunk = records.into_iter();
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

impl Records for Manifest {
    fn next_record(&mut self) -> Result<Option<Record>> {
        loop {
            if let Some(r) = self.chunk.next() {
                return Ok(Some(r));
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }
}

/// The records of a volume read through the Engine (`docker cp` of the
/// helper's mount directory), each file's content hashed.
pub struct Volume<R: Read> {
    tar: TarReader<R>,
    buf: Vec<u8>,
    /// Bytes of file content hashed so far.
    pub bytes: u64,
}

impl<R: Read> Volume<R> {
    pub fn new(input: R) -> Self {
        Volume {
            tar: TarReader::new(input),
            buf: vec![0; 256 * 1024],
            bytes: 0,
        }
    }
}

impl<R: Read> Records for Volume<R> {
    fn next_record(&mut self) -> Result<Option<Record>> {
        let Some(mut entry) = self
            .tar
            .next_entry()
            .context("reading the volume from the daemon")?
        else {
            return Ok(None);
        };
        let Some(path) = names::engine_to_archive(&entry.path) else {
            bail!(
                "the daemon sent an entry outside the volume: {:?}",
                entry.path_lossy()
            );
        };
        entry.path = path;
        if entry.kind == EntryKind::HardLink {
            if let Some(link) = entry.link.as_deref().and_then(names::engine_to_archive) {
                entry.link = Some(link);
            }
        }
        let digest = if entry.kind == EntryKind::File {
            let mut hasher = blake3::Hasher::new();
            let mut data = EntryData(&mut self.tar);
            loop {
                let n = data
                    .read(&mut self.buf)
                    .with_context(|| format!("reading {:?}", entry.path_lossy()))?;
                if n == 0 {
                    break;
                }
                hasher.update(&self.buf[..n]);
                self.bytes += n as u64;
            }
            Some(hasher.finalize())
        } else {
            None
        };
        Ok(Some(Record::of(&entry, digest)))
    }
}

/// One entry that differs.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Difference {
    pub path: String,
    pub problem: String,
}

/// What a comparison found. `expected` is the side compared against (the
/// manifest): entries it has that `found` lacks are `missing`.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Outcome {
    /// Entries of the expected side, all of which were looked at.
    pub entries: u64,
    pub missing: u64,
    pub added: u64,
    pub changed: u64,
    /// The first [`NAMED`] differences, in walk order.
    pub first: Vec<Difference>,
    /// Entries whose mtime the Engine cannot set (see [`engine_clamps`]),
    /// found at 1970-01-01 and so not compared by mtime.
    pub clamped_mtimes: u64,
}

/// Whether the Engine sets this mtime as 0 when it extracts: it refuses
/// times before 1970 and after 2262-04-11 (Go's nanosecond range) and puts
/// in the epoch instead.
pub fn engine_clamps(mtime: i64) -> bool {
    const MAX: i64 = i64::MAX / 1_000_000_000;
    !(0..=MAX).contains(&mtime)
}

impl Outcome {
    pub fn differences(&self) -> u64 {
        self.missing + self.added + self.changed
    }

    fn note(&mut self, path: String, problem: String) {
        if self.first.len() < NAMED {
            self.first.push(Difference { path, problem });
        }
    }
}

/// Words for the two sides in the problems a comparison names.
pub struct Wording {
    pub missing: &'static str,
    pub added: &'static str,
}

/// Checks that a side comes in walk order, which the merge relies on.
struct Ordered {
    last: Option<Vec<u8>>,
    side: &'static str,
}

impl Ordered {
    fn check(&mut self, r: &Option<Record>) -> Result<()> {
        let Some(r) = r else { return Ok(()) };
        let path = r.path.to_bytes();
        if let Some(last) = &self.last {
            if walk_order(last, &path) != std::cmp::Ordering::Less {
                bail!(
                    "{} is not in name order at {:?}; volsafe cannot compare it in one pass",
                    self.side,
                    r.path.lossy()
                );
            }
        }
        self.last = Some(path);
        Ok(())
    }
}

/// Merges the two sorted streams and reports every difference.
pub fn compare(
    expected: &mut dyn Records,
    found: &mut dyn Records,
    words: &Wording,
) -> Result<Outcome> {
    let mut out = Outcome::default();
    let mut order_e = Ordered {
        last: None,
        side: "the manifest",
    };
    let mut order_f = Ordered {
        last: None,
        side: "the daemon's stream",
    };
    let mut e = expected.next_record()?;
    order_e.check(&e)?;
    let mut f = found.next_record()?;
    order_f.check(&f)?;
    loop {
        let step = match (&e, &f) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => walk_order(&x.path.to_bytes(), &y.path.to_bytes()),
        };
        match step {
            std::cmp::Ordering::Less => {
                let x = e.take().expect("expected side present");
                out.entries += 1;
                out.missing += 1;
                out.note(x.path.lossy(), words.missing.to_owned());
                e = expected.next_record()?;
                order_e.check(&e)?;
            }
            std::cmp::Ordering::Greater => {
                let y = f.take().expect("found side present");
                out.added += 1;
                out.note(y.path.lossy(), words.added.to_owned());
                f = found.next_record()?;
                order_f.check(&f)?;
            }
            std::cmp::Ordering::Equal => {
                let (x, y) = (e.take(), f.take());
                let (x, mut y) = (x.expect("both present"), y.expect("both present"));
                out.entries += 1;
                if engine_clamps(x.mtime) && y.mtime == 0 {
                    y.mtime = x.mtime;
                    out.clamped_mtimes += 1;
                }
                let diffs = x.differences(&y);
                if !diffs.is_empty() {
                    out.changed += 1;
                    out.note(x.path.lossy(), diffs.join(", "));
                }
                e = expected.next_record()?;
                order_e.check(&e)?;
                f = found.next_record()?;
                order_f.check(&f)?;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::manifest::Name;

    struct List(std::vec::IntoIter<Record>);

    impl Records for List {
        fn next_record(&mut self) -> Result<Option<Record>> {
            Ok(self.0.next())
        }
    }

    fn rec(path: &str, content: &str) -> Record {
        Record {
            path: Name::Text(path.to_owned()),
            kind: if path.ends_with('/') { "dir" } else { "file" }.to_owned(),
            uid: 0,
            gid: 0,
            mode: 0o644,
            size: content.len() as u64,
            mtime: 1,
            link: None,
            dev: None,
            blake3: Some(blake3::hash(content.as_bytes()).to_hex().to_string()),
        }
    }

    const WORDS: Wording = Wording {
        missing: "missing",
        added: "added",
    };

    fn run(a: Vec<Record>, b: Vec<Record>) -> Result<Outcome> {
        compare(&mut List(a.into_iter()), &mut List(b.into_iter()), &WORDS)
    }

    #[test]
    fn equal_streams_have_no_differences() {
        let a = vec![
            rec("./", ""),
            rec("./a/", ""),
            rec("./a/x", "1"),
            rec("./a-b", "2"),
        ];
        let out = run(a.clone(), a).unwrap();
        assert_eq!((out.entries, out.differences()), (4, 0));
    }

    #[test]
    fn missing_added_and_changed_are_named() {
        let a = vec![
            rec("./", ""),
            rec("./a", "1"),
            rec("./b", "2"),
            rec("./d", "4"),
        ];
        let b = vec![
            rec("./", ""),
            rec("./b", "X"),
            rec("./c", "3"),
            rec("./d", "4"),
        ];
        let out = run(a, b).unwrap();
        assert_eq!((out.missing, out.added, out.changed), (1, 1, 1));
        assert_eq!(out.entries, 4);
        let named: Vec<_> = out
            .first
            .iter()
            .map(|d| (d.path.as_str(), d.problem.as_str()))
            .collect();
        assert_eq!(
            named,
            [("./a", "missing"), ("./b", "content"), ("./c", "added")]
        );
    }

    #[test]
    fn the_last_entry_is_compared() {
        let mut a: Vec<_> = (0..1000).map(|i| rec(&format!("./f{i:04}"), "x")).collect();
        let mut b = a.clone();
        b.last_mut().unwrap().mtime = 2;
        a.insert(0, rec("./", ""));
        b.insert(0, rec("./", ""));
        let out = run(a, b).unwrap();
        assert_eq!(out.changed, 1);
        assert_eq!(out.first[0].path, "./f0999");
        assert_eq!(out.first[0].problem, "mtime 1 -> 2");
    }

    #[test]
    fn mtimes_the_engine_cannot_set_are_not_mismatches() {
        let mut old = rec("./old", "x");
        old.mtime = -315_619_200;
        let mut future = rec("./z", "x");
        future.mtime = 10_413_792_000;
        let expected = vec![rec("./", ""), old.clone(), future.clone()];
        let mut found = expected.clone();
        found[1].mtime = 0;
        found[2].mtime = 0;
        let out = run(expected.clone(), found).unwrap();
        assert_eq!((out.differences(), out.clamped_mtimes), (0, 2));
        // Any other mtime is still a mismatch.
        let mut found = expected.clone();
        found[1].mtime = 5;
        assert_eq!(run(expected, found).unwrap().changed, 1);
    }

    #[test]
    fn an_unsorted_side_is_an_error_not_a_pass() {
        let a = vec![rec("./", ""), rec("./b", "1"), rec("./a", "1")];
        let err = run(a.clone(), a).unwrap_err();
        assert!(format!("{err:#}").contains("not in name order"), "{err:#}");
    }
}
