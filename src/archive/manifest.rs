//! The per-entry manifest: what every entry of an archive was when it was
//! backed up (path, type, owner, mode, size, mtime, link target, device
//! numbers, BLAKE3 of the content), so a drill can prove that a restored
//! volume holds exactly that.
//!
//! The writer keeps at most one chunk of records in memory and hands it out
//! as a kind-3 frame once it reaches [`CHUNK_BYTES`] of JSON; the reader
//! gets one chunk at a time. Memory stays bounded however many entries.

use std::io;

use serde::{Deserialize, Serialize};

use super::tarstream::{Entry, EntryKind};

/// A chunk is closed once its JSON reaches this size.
pub const CHUNK_BYTES: usize = 1 << 20;
/// The most JSON a reader takes from one chunk (a chunk is closed after the
/// record that reaches [`CHUNK_BYTES`]; one record is at most a few MiB).
const MAX_CHUNK_JSON: usize = 16 << 20;
/// zstd level of the chunks. Level 1 compresses records of small files,
/// whose 64 hex digits of BLAKE3 zstd cannot shrink much, twice as fast as
/// level 3 and about 12% smaller (docs/performance.md).
const CHUNK_LEVEL: i32 = 1;

/// A name or link target: text when it is UTF-8, hex bytes otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Name {
    Text(String),
    Bytes { hex: String },
}

impl Name {
    pub fn from_bytes(raw: &[u8]) -> Name {
        match std::str::from_utf8(raw) {
            Ok(s) => Name::Text(s.to_owned()),
            Err(_) => Name::Bytes {
                hex: hex::encode(raw),
            },
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Name::Text(s) => s.as_bytes().to_vec(),
            Name::Bytes { hex } => hex::decode(hex).unwrap_or_else(|_| hex.as_bytes().to_vec()),
        }
    }

    /// For messages.
    pub fn lossy(&self) -> String {
        String::from_utf8_lossy(&self.to_bytes()).into_owned()
    }
}

/// One entry as it was backed up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub path: Name,
    #[serde(rename = "type")]
    pub kind: String,
    pub uid: u64,
    pub gid: u64,
    pub mode: u32,
    #[serde(default)]
    pub size: u64,
    pub mtime: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<Name>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<[u32; 2]>,
    /// BLAKE3 of a regular file's content, lower-case hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
}

pub fn kind_name(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::File => "file",
        EntryKind::Dir => "dir",
        EntryKind::Symlink => "symlink",
        EntryKind::HardLink => "hardlink",
        EntryKind::Fifo => "fifo",
        EntryKind::CharDevice => "char",
        EntryKind::BlockDevice => "block",
    }
}

impl Record {
    /// The record of `entry`; `digest` is the content's BLAKE3 for a file.
    pub fn of(entry: &Entry, digest: Option<blake3::Hash>) -> Record {
        let hex = digest.map(|h| h.to_hex());
        RecordView::of(entry, hex.as_ref().map(|h| h.as_str())).to_owned()
    }

    /// What differs between the record of the backup (`self`) and `other`,
    /// as short phrases; empty when they are the same.
    pub fn differences(&self, other: &Record) -> Vec<String> {
        let mut out = Vec::new();
        if self.kind != other.kind {
            out.push(format!("type {} -> {}", self.kind, other.kind));
            return out;
        }
        if (self.uid, self.gid) != (other.uid, other.gid) {
            out.push(format!(
                "owner {}:{} -> {}:{}",
                self.uid, self.gid, other.uid, other.gid
            ));
        }
        if self.mode != other.mode {
            out.push(format!("mode {:04o} -> {:04o}", self.mode, other.mode));
        }
        if self.size != other.size {
            out.push(format!("size {} -> {}", self.size, other.size));
        }
        if self.blake3 != other.blake3 && self.size == other.size {
            out.push("content".to_owned());
        }
        if self.mtime != other.mtime {
            out.push(format!("mtime {} -> {}", self.mtime, other.mtime));
        }
        if self.link != other.link {
            let show = |l: &Option<Name>| l.as_ref().map(Name::lossy).unwrap_or_default();
            out.push(format!(
                "link {:?} -> {:?}",
                show(&self.link),
                show(&other.link)
            ));
        }
        if self.dev != other.dev {
            out.push("device numbers".to_owned());
        }
        out
    }
}

/// One kind-3 frame's JSON.
#[derive(Debug, Serialize, Deserialize)]
pub struct Chunk {
    pub entries: Vec<Record>,
}

/// Reads one frame's payload back into records.
pub fn decode(payload: &[u8]) -> io::Result<Vec<Record>> {
    let json = zstd::bulk::decompress(payload, MAX_CHUNK_JSON)?;
    let chunk: Chunk =
        serde_json::from_slice(&json).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(chunk.entries)
}

/// What the trailer says about the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Records in all kind-3 frames; equals the trailer's `entries`.
    pub entries: u64,
    pub frames: u64,
    /// BLAKE3 of the kind-3 frames' payloads (after the kind byte),
    /// concatenated in order.
    pub blake3: String,
}

/// Builds chunks of JSON records, one at a time.
pub struct Builder {
    json: Vec<u8>,
    in_chunk: u64,
    /// Records of the open chunk whose digest is not set yet.
    unfilled: usize,
    entries: u64,
    frames: u64,
    hasher: blake3::Hasher,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            json: Vec::with_capacity(CHUNK_BYTES + 4096),
            in_chunk: 0,
            unfilled: 0,
            entries: 0,
            frames: 0,
            hasher: blake3::Hasher::new(),
        }
    }
}

/// A [`Record`] that borrows from its entry: the writer serializes one per
/// entry, and building owned strings for each cost more than the JSON. It
/// must serialize exactly as [`Record`] does (a test holds them together).
#[derive(Serialize)]
struct RecordView<'a> {
    path: NameView<'a>,
    #[serde(rename = "type")]
    kind: &'static str,
    uid: u64,
    gid: u64,
    mode: u32,
    size: u64,
    mtime: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    link: Option<NameView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dev: Option<[u32; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    blake3: Option<&'a str>,
}

/// [`Name`], borrowed when it is text.
#[derive(Serialize)]
#[serde(untagged)]
enum NameView<'a> {
    Text(&'a str),
    Bytes { hex: String },
}

impl<'a> RecordView<'a> {
    /// The one mapping from an entry to its record; `blake3` is the hex
    /// digest of a file's content.
    fn of(entry: &'a Entry, blake3: Option<&'a str>) -> Self {
        let device = matches!(entry.kind, EntryKind::CharDevice | EntryKind::BlockDevice);
        RecordView {
            path: NameView::of(&entry.path),
            kind: kind_name(entry.kind),
            uid: entry.uid,
            gid: entry.gid,
            mode: entry.mode,
            size: entry.size,
            mtime: entry.mtime,
            link: entry.link.as_deref().map(NameView::of),
            dev: device.then_some([entry.dev_major, entry.dev_minor]),
            blake3,
        }
    }

    fn to_owned(&self) -> Record {
        Record {
            path: self.path.to_owned(),
            kind: self.kind.to_owned(),
            uid: self.uid,
            gid: self.gid,
            mode: self.mode,
            size: self.size,
            mtime: self.mtime,
            link: self.link.as_ref().map(NameView::to_owned),
            dev: self.dev,
            blake3: self.blake3.map(str::to_owned),
        }
    }
}

impl<'a> NameView<'a> {
    fn to_owned(&self) -> Name {
        match self {
            NameView::Text(s) => Name::Text((*s).to_owned()),
            NameView::Bytes { hex } => Name::Bytes { hex: hex.clone() },
        }
    }

    fn of(raw: &'a [u8]) -> Self {
        match std::str::from_utf8(raw) {
            Ok(s) => NameView::Text(s),
            Err(_) => NameView::Bytes {
                hex: hex::encode(raw),
            },
        }
    }
}

impl Builder {
    /// Adds the record of `entry`; `digest` is the content's BLAKE3 for a
    /// file. Writes what `Record::of(entry, digest)` would serialize to.
    pub fn push(&mut self, entry: &Entry, digest: Option<blake3::Hash>) -> io::Result<()> {
        self.json.extend_from_slice(if self.in_chunk == 0 {
            b"{\"entries\":["
        } else {
            b","
        });
        let hex = digest.map(|h| h.to_hex());
        let record = RecordView::of(entry, hex.as_ref().map(|h| h.as_str()));
        serde_json::to_writer(&mut self.json, &record).map_err(io::Error::other)?;
        self.in_chunk += 1;
        self.entries += 1;
        Ok(())
    }

    /// Adds the record of a file whose digest is not known yet: its 64 hex
    /// digits are left as zeros, to be set by [`Builder::fill`] with the
    /// returned position before the chunk is taken.
    pub fn push_pending(&mut self, entry: &Entry) -> io::Result<usize> {
        self.push(entry, Some(blake3::Hash::from_bytes([0; 32])))?;
        // The record ends with `"blake3":"<64 digits>"}`.
        let at = self.json.len() - 66;
        debug_assert_eq!(&self.json[at - 1..at], b"\"");
        self.unfilled += 1;
        Ok(at)
    }

    /// Sets the digest of a record added by [`Builder::push_pending`].
    pub fn fill(&mut self, at: usize, digest: blake3::Hash) {
        self.json[at..at + 64].copy_from_slice(digest.to_hex().as_bytes());
        self.unfilled -= 1;
    }

    /// Whether the open chunk is big enough to be written.
    pub fn full(&self) -> bool {
        self.json.len() >= CHUNK_BYTES
    }

    /// Closes the open chunk and returns the frame's payload (the chunk's
    /// JSON, zstd-compressed); `None` when the chunk is empty.
    pub fn take(&mut self) -> io::Result<Option<Vec<u8>>> {
        if self.in_chunk == 0 {
            return Ok(None);
        }
        if self.unfilled != 0 {
            // A bug, never a manifest with made-up digests.
            return Err(io::Error::other(format!(
                "manifest: {} records still wait for their digest",
                self.unfilled
            )));
        }
        self.json.extend_from_slice(b"]}");
        let payload = zstd::bulk::compress(&self.json, CHUNK_LEVEL)?;
        self.hasher.update(&payload);
        self.json.clear();
        self.in_chunk = 0;
        self.frames += 1;
        Ok(Some(payload))
    }

    pub fn totals(&self) -> Totals {
        Totals {
            entries: self.entries,
            frames: self.frames,
            blake3: self.hasher.finalize().to_hex().to_string(),
        }
    }
}

/// Walk order of the Engine's tar streams: names compared component by
/// component (so `a/b` comes right after `a`, before `a-b`). A manifest and
/// a fresh read of a restored volume come in this order, which lets a drill
/// compare them in one pass.
pub fn walk_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let trim = |p: &[u8]| -> Vec<u8> {
        let p = p.strip_prefix(b"./").unwrap_or(p);
        p.strip_suffix(b"/").unwrap_or(p).to_vec()
    };
    let (a, b) = (trim(a), trim(b));
    a.split(|&c| c == b'/').cmp(b.split(|&c| c == b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    #[test]
    fn names_round_trip_utf8_and_not() {
        for raw in [&b"./caf\xc3\xa9"[..], &b"./bad\xff"[..]] {
            let name = Name::from_bytes(raw);
            let json = serde_json::to_string(&name).unwrap();
            let back: Name = serde_json::from_str(&json).unwrap();
            assert_eq!(back.to_bytes(), raw);
        }
        assert_eq!(
            serde_json::to_string(&Name::from_bytes(b"./bad\xff")).unwrap(),
            r#"{"hex":"2e2f626164ff"}"#
        );
    }

    #[test]
    fn walk_order_is_by_component() {
        assert_eq!(walk_order(b"./", b"./a"), Ordering::Less);
        assert_eq!(walk_order(b"./a/", b"./a/b"), Ordering::Less);
        assert_eq!(walk_order(b"./a/z", b"./a-b"), Ordering::Less);
        assert_eq!(walk_order(b"./a-b", b"./a/z"), Ordering::Greater);
        assert_eq!(walk_order(b"./b/", b"./b"), Ordering::Equal);
    }

    fn entry(path: &[u8], kind: EntryKind) -> Entry {
        Entry {
            path: path.to_vec(),
            kind,
            mode: 0o644,
            uid: 1,
            gid: 2,
            uname: b"u".to_vec(),
            gname: b"g".to_vec(),
            mtime: 4,
            size: 0,
            link: None,
            dev_major: 0,
            dev_minor: 0,
            xattrs: Vec::new(),
        }
    }

    #[test]
    fn builder_chunks_parse_back() {
        let mut b = Builder::default();
        let mut file = entry(b"./x", EntryKind::File);
        file.size = 3;
        let digest = Some(blake3::hash(b"abc"));
        b.push(&file, digest).unwrap();
        b.push(&file, digest).unwrap();
        let payload = b.take().unwrap().unwrap();
        let rec = Record {
            path: Name::from_bytes(b"./x"),
            kind: "file".into(),
            uid: 1,
            gid: 2,
            mode: 0o644,
            size: 3,
            mtime: 4,
            link: None,
            dev: None,
            blake3: Some(blake3::hash(b"abc").to_hex().to_string()),
        };
        assert_eq!(decode(&payload).unwrap(), vec![rec.clone(), rec]);
        assert!(b.take().unwrap().is_none());
        let t = b.totals();
        assert_eq!((t.entries, t.frames), (2, 1));
        assert_eq!(t.blake3, blake3::hash(&payload).to_hex().to_string());
    }

    /// The writer's borrowed records must come out byte for byte as the
    /// owned [`Record`] serializes: readers parse them into `Record`.
    #[test]
    fn borrowed_records_serialize_as_records_do() {
        let mut cases = Vec::new();
        let mut file = entry(b"./caf\xc3\xa9.txt", EntryKind::File);
        file.size = 5;
        cases.push((file, Some(blake3::hash(b"hello"))));
        cases.push((entry(b"./dir/", EntryKind::Dir), None));
        let mut link = entry(b"./bad\xffname", EntryKind::Symlink);
        link.link = Some(b"../t\xfe\"quoted\"\n".to_vec());
        cases.push((link, None));
        let mut hard = entry(b"./h", EntryKind::HardLink);
        hard.link = Some(b"./x".to_vec());
        cases.push((hard, None));
        let mut dev = entry(b"./null", EntryKind::CharDevice);
        (dev.dev_major, dev.dev_minor) = (1, 3);
        cases.push((dev, None));
        let mut block = entry(b"./sda", EntryKind::BlockDevice);
        (block.dev_major, block.dev_minor) = (8, 0);
        block.mtime = -2;
        block.uid = u64::MAX;
        cases.push((block, None));
        cases.push((entry(b"./fifo", EntryKind::Fifo), None));
        let mut empty = entry(b"./empty", EntryKind::File);
        empty.mode = 0o7777;
        cases.push((empty, Some(blake3::hash(b""))));
        for (e, digest) in cases {
            let mut b = Builder::default();
            b.push(&e, digest).unwrap();
            let want = format!(
                "{{\"entries\":[{}",
                serde_json::to_string(&Record::of(&e, digest)).unwrap()
            );
            assert_eq!(
                String::from_utf8(b.json).unwrap(),
                want,
                "{:?}",
                e.path_lossy()
            );
        }
    }

    /// A record whose digest comes later ends up as if it had been known:
    /// and a chunk is never handed out while a digest is missing.
    #[test]
    fn pending_records_are_filled_before_the_chunk_goes() {
        let mut file = entry(b"./f", EntryKind::File);
        file.size = 3;
        let digest = blake3::hash(b"abc");
        let mut known = Builder::default();
        known.push(&file, Some(digest)).unwrap();
        let mut later = Builder::default();
        let at = later.push_pending(&file).unwrap();
        assert!(
            later.take().is_err(),
            "a chunk went out with a digest missing"
        );
        later.fill(at, digest);
        assert_eq!(later.json, known.json);
        assert_eq!(later.take().unwrap(), known.take().unwrap());
    }
}
