//! Tests of the tar reader and writer: round trips through both, and
//! the writer's behaviour. `strict` pins what the reader refuses,
//! `formats` what it takes from other tars, `interop` GNU tar itself.

use std::io::{self, Read, Write};

use super::header::*;
use super::write::pax_header_name;
use super::*;

mod formats;
mod interop;
mod strict;

const MTIME: i64 = 1_700_000_000;

fn entry(path: &[u8], kind: EntryKind) -> Entry {
    Entry {
        path: path.to_vec(),
        kind,
        mode: if kind == EntryKind::Dir { 0o755 } else { 0o644 },
        uid: 0,
        gid: 0,
        uname: b"root".to_vec(),
        gname: b"root".to_vec(),
        mtime: MTIME,
        size: 0,
        link: None,
        dev_major: 0,
        dev_minor: 0,
        xattrs: Vec::new(),
    }
}

fn file(path: &[u8], data: &[u8]) -> (Entry, Vec<u8>) {
    let mut e = entry(path, EntryKind::File);
    e.size = data.len() as u64;
    (e, data.to_vec())
}

fn link(path: &[u8], kind: EntryKind, target: &[u8]) -> (Entry, Vec<u8>) {
    let mut e = entry(path, kind);
    e.link = Some(target.to_vec());
    (e, Vec::new())
}

fn write_archive(entries: &[(Entry, Vec<u8>)]) -> Vec<u8> {
    let mut w = TarWriter::new(Vec::new());
    for (e, data) in entries {
        w.append(e, &mut &data[..]).unwrap();
    }
    w.finish().unwrap()
}

type ReadResult = Result<Vec<(Entry, Vec<u8>)>, TarError>;

/// Reads every entry and its data, as a restore does.
fn read_archive(bytes: &[u8]) -> ReadResult {
    let mut r = TarReader::new(bytes);
    let mut out = Vec::new();
    while let Some(e) = r.next_entry()? {
        let mut data = Vec::new();
        r.copy_data(&mut data)?;
        out.push((e, data));
    }
    Ok(out)
}

/// Reads only the headers, leaving the reader to skip the data.
fn read_headers(bytes: &[u8]) -> Result<Vec<Entry>, TarError> {
    let mut r = TarReader::new(bytes);
    let mut out = Vec::new();
    while let Some(e) = r.next_entry()? {
        out.push(e);
    }
    Ok(out)
}

fn assert_round_trip(entries: &[(Entry, Vec<u8>)]) -> Vec<u8> {
    let bytes = write_archive(entries);
    assert_eq!(bytes.len() % BLOCK, 0);
    let back = read_archive(&bytes).unwrap();
    assert_eq!(back, entries);
    bytes
}

/// The small archive the cut tests chop up: every kind of data layout.
fn sample() -> Vec<(Entry, Vec<u8>)> {
    let long = [&b"./"[..], &[b'n'; 150], b"/long-name.txt"].concat();
    vec![
        (entry(b"./", EntryKind::Dir), Vec::new()),
        file(b"./data.bin", &[7u8; 700]),
        link(b"./latest", EntryKind::Symlink, b"data.bin"),
        link(b"./again.bin", EntryKind::HardLink, b"./data.bin"),
        file(&long, b"a file with a pax header"),
    ]
}

/// A block with its checksum made right again after a test edited it.
fn fix_checksum(block: &mut [u8]) {
    block[148..156].fill(b' ');
    let sum: u64 = block.iter().map(|&b| u64::from(b)).sum();
    block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

fn header(name: &[u8], typeflag: u8, size: u64) -> [u8; BLOCK] {
    let mut h = UstarFields::new(name.to_vec(), typeflag);
    h.mode = 0o644;
    h.size = size;
    h.encode()
}

fn end_marker() -> Vec<u8> {
    vec![0u8; 2 * BLOCK]
}

fn corrupt_reason(result: Result<Vec<Entry>, TarError>) -> String {
    match result {
        Err(TarError::Corrupt { reason, .. }) => reason,
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

fn assert_truncated<T: std::fmt::Debug>(result: Result<T, TarError>, what: &str) {
    match result {
        Err(TarError::Truncated { .. }) => {}
        other => panic!("{what}: expected Truncated, got {other:?}"),
    }
}

#[test]
fn round_trip_of_every_kind() {
    let mut fifo = entry(b"./run/pipe", EntryKind::Fifo);
    fifo.mode = 0o600;
    let mut null = entry(b"./dev/null", EntryKind::CharDevice);
    (null.dev_major, null.dev_minor) = (1, 3);
    let mut disk = entry(b"./dev/sda1", EntryKind::BlockDevice);
    (disk.dev_major, disk.dev_minor) = (8, 1);
    let mut tmp = entry(b"./tmp/", EntryKind::Dir);
    tmp.mode = 0o1777;
    let (mut suid, data) = file(b"./bin/tool", b"#!/bin/sh\n");
    (suid.mode, suid.uid, suid.gid) = (0o6755, 999, 998);
    (suid.uname, suid.gname) = (b"postgres".to_vec(), b"".to_vec());
    assert_round_trip(&[
        (entry(b"./", EntryKind::Dir), Vec::new()),
        (tmp, Vec::new()),
        file(b"./empty", b""),
        file(b"./exact", &[1u8; 1024]),
        file(b"./odd", &[2u8; 1000]),
        (suid, data),
        link(b"./abs", EntryKind::Symlink, b"/etc/passwd"),
        link(b"./up", EntryKind::Symlink, b"../../var/log/app"),
        link(b"./dangling", EntryKind::Symlink, b"-1"),
        link(b"./hard", EntryKind::HardLink, b"./odd"),
        (fifo, Vec::new()),
        (null, Vec::new()),
        (disk, Vec::new()),
    ]);
}

#[test]
fn round_trip_of_long_and_non_utf8_names() {
    let name = |len: usize| {
        let mut p = b"./".to_vec();
        p.resize(len, b'x');
        p
    };
    let entries = vec![
        file(&name(100), b"fits ustar"),
        file(&name(101), b"needs pax"),
        file(&name(200), b"200 bytes"),
        file(&name(5000), b"longer than PATH_MAX"),
        (
            entry(&[&name(150)[..], b"/"].concat(), EntryKind::Dir),
            Vec::new(),
        ),
        file(b"./caf\xe9", b"latin-1 name"),
        file(b"./\xff\xfe", b"not utf-8"),
        file("./ünïcödé".as_bytes(), b"utf-8 name"),
        file(&[&name(120)[..], b"\xe9"].concat(), b"long and not utf-8"),
        link(b"./s", EntryKind::Symlink, &[b'y'; 250]),
        link(b"./h", EntryKind::HardLink, &name(200)),
        link(&name(300), EntryKind::Symlink, b"t\xe9"),
    ];
    let bytes = assert_round_trip(&entries);
    // Only names that do not fit get a pax header: 100 ASCII bytes fit.
    assert_eq!(&bytes[..100], &name(100)[..]);
    assert_eq!(bytes[156], b'0');
}

#[test]
fn round_trip_of_values_beyond_ustar() {
    let (mut old, data) = file(b"./old", b"1969");
    old.mtime = -1;
    let (mut older, _) = file(b"./older", b"");
    older.mtime = -315_619_200;
    let (mut future, _) = file(b"./future", b"");
    future.mtime = MAX_OCTAL_11 as i64 + 1;
    let (mut ids, _) = file(b"./ids", b"");
    (ids.uid, ids.gid) = (1 << 40, MAX_OCTAL_7 + 1);
    let (mut edge, _) = file(b"./edge", b"");
    (edge.uid, edge.gid, edge.mtime) = (MAX_OCTAL_7, MAX_OCTAL_7, MAX_OCTAL_11 as i64);
    let (mut names, _) = file(b"./names", b"");
    (names.uname, names.gname) = (vec![b'u'; 40], "grüppe".as_bytes().to_vec());
    let mut xattrs = entry(b"./", EntryKind::Dir);
    xattrs.xattrs = vec![
        (
            b"security.capability".to_vec(),
            vec![1, 0, 0, 2, b'\n', 0, b'='],
        ),
        (b"user.empty".to_vec(), Vec::new()),
        (b"user.long".to_vec(), vec![b'v'; 3000]),
    ];
    assert_round_trip(&[
        (xattrs, Vec::new()),
        (old, data),
        (older, Vec::new()),
        (future, Vec::new()),
        (ids, Vec::new()),
        (edge, Vec::new()),
        (names, Vec::new()),
    ]);
}

/// Keeps the start and the end of a stream, counting what is between.
#[derive(Default)]
struct HeadTail {
    head: Vec<u8>,
    tail: Vec<u8>,
    len: u64,
}

impl Write for HeadTail {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = 4 * BLOCK - self.head.len().min(4 * BLOCK);
        self.head.extend_from_slice(&buf[..buf.len().min(room)]);
        self.tail.extend_from_slice(buf);
        let excess = self.tail.len().saturating_sub(4 * BLOCK);
        self.tail.drain(..excess);
        self.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn file_over_8_gib_round_trips_with_a_pax_size() {
    let size = (8u64 << 30) + 1;
    let (mut big, _) = file(b"./big.img", b"");
    big.size = size;
    let mut w = TarWriter::new(HeadTail::default());
    w.append(&big, &mut io::repeat(0xab).take(size)).unwrap();
    w.append(&entry(b"./after/", EntryKind::Dir), &mut io::empty())
        .unwrap();
    let out = w.finish().unwrap();
    assert_eq!(out.len, 3 * 512 + size + 511 + 512 + 1024);
    assert!(out.head.windows(16).any(|w| w == b"19 size=85899345"));
    assert_eq!(
        &out.head[512 + 512 + 124..512 + 512 + 136],
        b"00000000000\0"
    );

    let middle = out.len - out.head.len() as u64 - out.tail.len() as u64;
    let stream = (&out.head[..])
        .chain(io::repeat(0xab).take(middle))
        .chain(&out.tail[..]);
    let mut r = TarReader::new(stream);
    let got = r.next_entry().unwrap().unwrap();
    assert_eq!(got, big);
    assert_eq!(r.copy_data(&mut io::sink()).unwrap(), size);
    assert_eq!(r.next_entry().unwrap().unwrap().path, b"./after/");
    assert!(r.next_entry().unwrap().is_none());
    assert_eq!(r.bytes_read(), out.len);
}

#[test]
fn pax_record_length_counts_itself() {
    for len in 0..1200 {
        let value = vec![b'v'; len];
        let mut record = Vec::new();
        pax_record(&mut record, b"path", &value);
        let space = record.iter().position(|&b| b == b' ').unwrap();
        let stated: usize = std::str::from_utf8(&record[..space])
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(stated, record.len(), "value of {len} bytes");
        assert_eq!(parse_pax(&record).unwrap(), vec![(b"path".to_vec(), value)]);
    }
}

fn pax_archive(records: &[u8], typeflag: u8) -> Vec<u8> {
    let mut bytes = header(b"PaxHeaders/a", typeflag, records.len() as u64).to_vec();
    bytes.extend_from_slice(records);
    bytes.resize(bytes.len().next_multiple_of(BLOCK), 0);
    bytes.extend_from_slice(&header(b"./a", b'0', 0));
    bytes.extend_from_slice(&end_marker());
    bytes
}

#[test]
fn reader_keeps_failing_after_an_error() {
    let bytes = write_archive(&sample());
    let mut r = TarReader::new(&bytes[..2 * BLOCK + 300]);
    r.next_entry().unwrap();
    r.next_entry().unwrap();
    let mut buf = [0u8; 1000];
    let n = r.read_data(&mut buf).unwrap();
    assert!(n < 700);
    assert_truncated(r.copy_data(&mut io::sink()), "copy_data");
    assert_truncated(r.next_entry(), "next_entry");
    assert_truncated(r.read_data(&mut buf), "read_data");
    let err = io::Read::read(&mut r, &mut buf).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
}

#[test]
fn partly_read_data_is_skipped_by_next_entry() {
    let entries = sample();
    let bytes = write_archive(&entries);
    let mut r = TarReader::new(&bytes[..]);
    r.next_entry().unwrap();
    assert_eq!(r.next_entry().unwrap().unwrap().path, b"./data.bin");
    let mut buf = [0u8; 100];
    assert_eq!(r.read_data(&mut buf).unwrap(), 100);
    assert_eq!(r.next_entry().unwrap().unwrap().path, b"./latest");
    assert_eq!(r.read_data(&mut buf).unwrap(), 0);
    while r.next_entry().unwrap().is_some() {}
    assert_eq!(r.entries_read(), entries.len() as u64);
    assert!(r.next_entry().unwrap().is_none());
}

#[test]
fn reader_stops_at_the_end_marker_and_leaves_the_rest() {
    let mut bytes = write_archive(&sample());
    let tar_len = bytes.len() as u64;
    bytes.extend_from_slice(b"zstd trailer frame");
    let mut r = TarReader::new(&bytes[..]);
    while r.next_entry().unwrap().is_some() {}
    assert_eq!(r.bytes_read(), tar_len);
    assert_eq!(r.into_inner(), b"zstd trailer frame");
}

#[test]
fn writer_counts_entries_and_bytes() {
    let entries = sample();
    let mut w = TarWriter::new(Vec::new());
    for (e, data) in &entries {
        w.append(e, &mut &data[..]).unwrap();
    }
    assert_eq!(w.entries_written(), entries.len() as u64);
    let before_end = w.bytes_written();
    assert_eq!(before_end, w.get_mut().len() as u64);
    assert_eq!(w.finish().unwrap().len() as u64, before_end + 1024);
}

#[test]
fn writer_refuses_data_shorter_than_the_entry_size() {
    let (mut e, _) = file(b"./shrunk", b"");
    e.size = 100_000;
    let mut w = TarWriter::new(Vec::new());
    let err = w.append(&e, &mut &[1u8; 70_000][..]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    assert_eq!(
        err.to_string(),
        "tar entry \"./shrunk\": data ended after 70000 of 100000 bytes"
    );
    // The stream now holds a short entry: it must never be finished.
    assert!(w
        .append(&entry(b"./d/", EntryKind::Dir), &mut io::empty())
        .is_err());
    assert!(w.finish().is_err());
}

#[test]
fn writer_reads_exactly_size_bytes_and_no_data_for_other_kinds() {
    let (e, _) = file(b"./grew", b"abc");
    let mut source = &b"abcdef"[..];
    let mut w = TarWriter::new(Vec::new());
    w.append(&e, &mut source).unwrap();
    assert_eq!(source, b"def");
    let mut d = entry(b"./d/", EntryKind::Dir);
    d.size = 10;
    w.append(&d, &mut source).unwrap();
    assert_eq!(source, b"def");
    let back = read_archive(&w.finish().unwrap()).unwrap();
    assert_eq!(back[1].0.size, 0);
}

#[test]
fn writer_rejects_invalid_entries_without_writing() {
    let mut no_target = entry(b"./l", EntryKind::Symlink);
    let nul = entry(b"./a\0b", EntryKind::File);
    let mut bad_xattr = entry(b"./x", EntryKind::File);
    bad_xattr.xattrs = vec![(b"user.a=b".to_vec(), Vec::new())];
    let mut huge_dev = entry(b"./dev", EntryKind::CharDevice);
    huge_dev.dev_major = 1 << 24;
    let mut huge_xattr = entry(b"./x", EntryKind::File);
    huge_xattr.xattrs = vec![(b"user.a".to_vec(), vec![0; 2 << 20])];
    let empty = entry(b"", EntryKind::Dir);
    let mut w = TarWriter::new(Vec::new());
    for e in [&no_target, &nul, &bad_xattr, &huge_dev, &huge_xattr, &empty] {
        let err = w.append(e, &mut io::empty()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    }
    no_target.link = Some(Vec::new());
    assert!(w.append(&no_target, &mut io::empty()).is_err());
    assert_eq!(w.bytes_written(), 0);
    assert!(read_archive(&w.finish().unwrap()).unwrap().is_empty());
}

#[test]
fn pax_header_names_are_short_ascii() {
    assert_eq!(pax_header_name(b"./"), b"PaxHeaders/_");
    assert_eq!(pax_header_name(b"./a/caf\xe9 b/"), b"PaxHeaders/caf__b");
    let long = pax_header_name(&[b'z'; 300]);
    assert_eq!(long.len(), 100);
    assert!(long.is_ascii());
}
