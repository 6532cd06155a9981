//! Unit tests of the tar reader and writer against themselves and against
//! hand-made headers; `interop` checks both against GNU tar.

use super::*;

mod interop;

const MTIME: i64 = 1_700_000_000;

pub(super) fn entry(path: &[u8], kind: EntryKind) -> Entry {
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

pub(super) fn file(path: &[u8], data: &[u8]) -> (Entry, Vec<u8>) {
    let mut e = entry(path, EntryKind::File);
    e.size = data.len() as u64;
    (e, data.to_vec())
}

pub(super) fn link(path: &[u8], kind: EntryKind, target: &[u8]) -> (Entry, Vec<u8>) {
    let mut e = entry(path, kind);
    e.link = Some(target.to_vec());
    (e, Vec::new())
}

pub(super) fn write_archive(entries: &[(Entry, Vec<u8>)]) -> Vec<u8> {
    let mut w = TarWriter::new(Vec::new());
    for (e, data) in entries {
        w.append(e, &mut &data[..]).unwrap();
    }
    w.finish().unwrap()
}

type ReadResult = Result<Vec<(Entry, Vec<u8>)>, TarError>;

/// Reads every entry and its data, as a restore does.
pub(super) fn read_archive(bytes: &[u8]) -> ReadResult {
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
pub(super) fn fix_checksum(block: &mut [u8]) {
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

#[test]
fn stream_cut_at_every_byte_is_an_error() {
    let bytes = write_archive(&sample());
    read_archive(&bytes).unwrap();
    for cut in 0..bytes.len() {
        assert_truncated(read_archive(&bytes[..cut]), &format!("cut at {cut}"));
    }
}

#[test]
fn stream_cut_at_every_byte_is_an_error_when_data_is_skipped() {
    let bytes = write_archive(&sample());
    assert_eq!(read_headers(&bytes).unwrap().len(), sample().len());
    for cut in 0..bytes.len() {
        assert_truncated(read_headers(&bytes[..cut]), &format!("cut at {cut}"));
    }
}

#[test]
fn stream_cut_at_block_boundary_before_end_marker_is_truncated() {
    let bytes = write_archive(&sample());
    let cut = &bytes[..bytes.len() - 2 * BLOCK];
    let err = read_archive(cut).unwrap_err();
    let long = sample()[4].0.path_lossy();
    assert!(matches!(
        &err,
        TarError::Truncated { last_entry: Some(last), during: "before the end-of-archive marker" }
            if *last == long
    ));
    assert_eq!(
        err.to_string(),
        format!("tar stream ended early before the end-of-archive marker (last entry {long:?})")
    );
}

#[test]
fn stream_with_half_an_end_marker_is_truncated() {
    let bytes = write_archive(&sample());
    let err = read_headers(&bytes[..bytes.len() - BLOCK]).unwrap_err();
    assert!(matches!(
        err,
        TarError::Truncated {
            during: "inside the end-of-archive marker",
            ..
        }
    ));
}

#[test]
fn stream_cut_in_data_names_the_entry() {
    let bytes = write_archive(&[file(b"./db/base/1234", &[0u8; 5000])]);
    let err = read_archive(&bytes[..3000]).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"tar stream ended early in the data of "./db/base/1234""#
    );
    let err = read_headers(&bytes[..512 + 5000 + 10]).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"tar stream ended early in the padding of "./db/base/1234""#
    );
    let io_err = io::Error::from(err);
    assert_eq!(io_err.kind(), io::ErrorKind::UnexpectedEof);
}

#[test]
fn empty_stream_is_truncated() {
    let err = read_headers(b"").unwrap_err();
    assert_eq!(
        err.to_string(),
        "tar stream ended early before the end-of-archive marker (before any entry)"
    );
}

#[test]
fn lone_zero_block_is_corrupt() {
    let mut bytes = vec![0u8; BLOCK];
    bytes.extend_from_slice(&write_archive(&[file(b"./a", b"x")]));
    assert_eq!(corrupt_reason(read_headers(&bytes)), "lone zero block");
}

#[test]
fn end_marker_after_an_extension_header_is_corrupt() {
    let mut bytes = write_archive(&[file(&[b'a'; 300], b"x")]);
    bytes.drain(2 * BLOCK..4 * BLOCK);
    let reason = corrupt_reason(read_headers(&bytes));
    assert!(reason.contains("after an extension header"), "{reason}");
}

#[test]
fn bad_checksum_is_corrupt() {
    let mut bytes = write_archive(&[file(b"./a", b"x")]);
    bytes[0] = b'b';
    assert_eq!(corrupt_reason(read_headers(&bytes)), "bad header checksum");
    bytes[148..156].copy_from_slice(b"zzzzzzzz");
    assert_eq!(
        corrupt_reason(read_headers(&bytes)),
        "bad header checksum field"
    );
}

#[test]
fn signed_checksum_of_old_tars_is_accepted() {
    let mut block = header(b"caf\xe9", b'0', 0);
    let signed: i64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                i64::from(b as i8)
            }
        })
        .sum();
    block[148..156].copy_from_slice(format!("{signed:06o}\0 ").as_bytes());
    let bytes = [&block[..], &end_marker()].concat();
    assert_eq!(read_headers(&bytes).unwrap()[0].path, b"caf\xe9");
}

#[test]
fn unsupported_entry_types_are_corrupt() {
    for (flag, shown) in [
        (b'S', "'S'"),
        (b'V', "'V'"),
        (b'M', "'M'"),
        (b'D', "'D'"),
        (0x85, "0x85"),
    ] {
        let bytes = [&header(b"./sparse", flag, 0)[..], &end_marker()].concat();
        assert_eq!(
            corrupt_reason(read_headers(&bytes)),
            format!("unsupported entry type {shown} for \"./sparse\"")
        );
    }
}

#[test]
fn bad_numeric_fields_are_corrupt() {
    for (range, text, field) in [
        (124..136, &b"0000000008\0\0"[..], "size"),
        (100..108, b"-000644\0", "mode"),
        (136..148, b"12 34\0\0\0\0\0\0\0", "mtime"),
    ] {
        let mut block = header(b"./a", b'0', 0);
        block[range].copy_from_slice(text);
        fix_checksum(&mut block);
        let bytes = [&block[..], &end_marker()].concat();
        let reason = corrupt_reason(read_headers(&bytes));
        assert_eq!(
            reason,
            format!("bad {field} field in the header of \"./a\"")
        );
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
fn bad_pax_records_are_corrupt() {
    for records in [
        &b"11 path=a\n"[..],
        b"9 path=a\n\n",
        b"x path=ab\n",
        b"9 patha\n",
        b"6 =ab\n",
        b"9 path=ab",
        b"3 \n",
        b"11 size=1x\n",
        b"12 mtime=-x\n",
        b"28 uid=99999999999999999999\n",
    ] {
        let reason = corrupt_reason(read_headers(&pax_archive(records, b'x')));
        assert!(reason.starts_with("bad pax"), "{records:?}: {reason}");
    }
}

#[test]
fn pax_sparse_files_are_refused() {
    let bytes = pax_archive(b"22 GNU.sparse.major=1\n", b'x');
    assert_eq!(
        corrupt_reason(read_headers(&bytes)),
        "unsupported sparse file \"./a\""
    );
}

#[test]
fn oversized_extension_header_is_corrupt_before_it_is_read() {
    for flag in [b'x', b'g', b'L', b'K'] {
        let mut bytes = header(b"PaxHeaders/a", flag, MAX_EXTENSION + 1).to_vec();
        bytes.extend_from_slice(&vec![b'a'; 2 << 20]);
        let mut r = TarReader::new(&bytes[..]);
        assert!(matches!(r.next_entry(), Err(TarError::Corrupt { .. })));
        assert_eq!(r.bytes_read(), BLOCK as u64);
    }
}

#[test]
fn a_run_of_extension_headers_cannot_grow_memory() {
    let record = {
        let mut r = Vec::new();
        pax_record(&mut r, b"comment", &vec![b'c'; 600_000]);
        r
    };
    let one = pax_archive(&record, b'x');
    let pax_len = one.len() - 3 * BLOCK;
    let mut bytes = one[..pax_len].repeat(2);
    bytes.extend_from_slice(&one[pax_len..]);
    let reason = corrupt_reason(read_headers(&bytes));
    assert!(reason.contains("exceed"), "{reason}");
    // One of them alone is fine.
    assert_eq!(read_headers(&one).unwrap().len(), 1);
}

#[test]
fn global_pax_records_apply_to_later_entries() {
    let mut bytes = header(b"PaxHeaders/g", b'g', 0).to_vec();
    let mut records = Vec::new();
    pax_record(&mut records, b"uname", b"global");
    pax_record(&mut records, b"mtime", b"5");
    pax_record(&mut records, b"atime", b"6.5");
    bytes[..BLOCK].copy_from_slice(&header(b"PaxHeaders/g", b'g', records.len() as u64));
    bytes.extend_from_slice(&records);
    bytes.resize(2 * BLOCK, 0);
    bytes.extend_from_slice(&pax_archive(b"9 uname=\n", b'x')[..3 * BLOCK]);
    bytes.extend_from_slice(&header(b"./b", b'0', 0));
    bytes.extend_from_slice(&end_marker());

    let entries = read_headers(&bytes).unwrap();
    // An empty value in an entry's record brings back the header's own.
    assert_eq!(
        (entries[0].uname.as_slice(), entries[0].mtime),
        (&b""[..], 5)
    );
    assert_eq!(
        (entries[1].uname.as_slice(), entries[1].mtime),
        (&b"global"[..], 5)
    );
}

#[test]
fn pax_values_override_header_and_gnu_names() {
    let mut records = Vec::new();
    for (k, v) in [
        (&b"path"[..], &b"./from-pax"[..]),
        (b"size", b"3"),
        (b"uid", b"4294967296"),
        (b"mtime", b"-1.25"),
        (b"ctime", b"1.5"),
        (b"SCHILY.xattr.user.a", b"1"),
        (b"SCHILY.xattr.user.a", b"2"),
    ] {
        pax_record(&mut records, k, v);
    }
    let mut bytes = header(b"././@LongLink", b'L', 9).to_vec();
    bytes.extend_from_slice(b"./gnu-nm\0");
    bytes.resize(2 * BLOCK, 0);
    bytes.extend_from_slice(&pax_archive(&records, b'x'));
    bytes.truncate(bytes.len() - 3 * BLOCK);
    bytes.extend_from_slice(&header(b"./a", b'0', 999));
    bytes.extend_from_slice(b"abc");
    bytes.resize(bytes.len().next_multiple_of(BLOCK), 0);
    bytes.extend_from_slice(&end_marker());

    let (e, data) = read_archive(&bytes).unwrap().remove(0);
    assert_eq!(
        (e.path.as_slice(), e.size, data.as_slice()),
        (&b"./from-pax"[..], 3, &b"abc"[..])
    );
    assert_eq!((e.uid, e.mtime), (1 << 32, -2));
    assert_eq!(e.xattrs, vec![(b"user.a".to_vec(), b"2".to_vec())]);
}

#[test]
fn gnu_long_names_and_base256_numbers_are_read() {
    let mut h = tar::Header::new_gnu();
    h.set_path("lnk").unwrap();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(9 << 30);
    h.set_uid(1 << 30);
    h.set_mode(0o100777);
    h.as_gnu_mut().unwrap().mtime = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    ];
    h.set_cksum();
    let mut long_link = header(b"././@LongLink", b'K', 301).to_vec();
    long_link.extend_from_slice(&[b'k'; 300]);
    long_link.push(0);
    long_link.resize(2 * BLOCK, 0);
    let bytes = [&long_link[..], h.as_bytes(), &end_marker()].concat();

    let e = read_headers(&bytes).unwrap().remove(0);
    assert_eq!(
        (e.kind, e.size, e.uid, e.mtime, e.mode),
        (EntryKind::Symlink, 0, 1 << 30, -2, 0o777)
    );
    assert_eq!(e.link, Some(vec![b'k'; 300]));
}

#[test]
fn ustar_prefix_is_joined_to_the_name() {
    // Go's archive/tar, and so the Docker Engine, splits names up to 256
    // bytes between prefix and name instead of writing pax.
    let mut block = header(b"file.txt", b'0', 0);
    block[345..345 + 11].copy_from_slice(b"./some/dir\0");
    fix_checksum(&mut block);
    let bytes = [&block[..], &end_marker()].concat();
    assert_eq!(
        read_headers(&bytes).unwrap()[0].path,
        b"./some/dir/file.txt"
    );
}

#[test]
fn v7_headers_and_old_style_directories_are_read() {
    let mut bytes = Vec::new();
    for (name, flag) in [(&b"dir/"[..], 0u8), (b"dir/file", 0), (b"dir/f7", b'7')] {
        let mut block = header(name, flag, 0);
        block[257..BLOCK].fill(0);
        fix_checksum(&mut block);
        bytes.extend_from_slice(&block);
    }
    bytes.extend_from_slice(&end_marker());
    let kinds: Vec<_> = read_headers(&bytes)
        .unwrap()
        .iter()
        .map(|e| (e.kind, e.uname.len()))
        .collect();
    assert_eq!(
        kinds,
        [
            (EntryKind::Dir, 0),
            (EntryKind::File, 0),
            (EntryKind::File, 0)
        ]
    );
}

#[test]
fn only_regular_files_have_data() {
    // A size on a link, directory or device header carries no data, as
    // in Go's archive/tar.
    let mut bytes = Vec::new();
    for (flag, size) in [(b'1', 700), (b'2', 10), (b'3', 1), (b'5', 4096), (b'6', 1)] {
        let mut block = header(b"./x", flag, size);
        block[157] = b't';
        fix_checksum(&mut block);
        bytes.extend_from_slice(&block);
    }
    bytes.extend_from_slice(&end_marker());
    for e in read_headers(&bytes).unwrap() {
        assert_eq!(e.size, 0);
        assert_eq!(
            e.link.is_some(),
            matches!(e.kind, EntryKind::HardLink | EntryKind::Symlink)
        );
    }
}

#[test]
fn entry_with_an_empty_name_is_corrupt() {
    let bytes = [&header(b"", b'0', 0)[..], &end_marker()].concat();
    assert_eq!(
        corrupt_reason(read_headers(&bytes)),
        "entry with an empty name"
    );
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

#[test]
fn numeric_fields_parse_octal_and_base256() {
    assert_eq!(parse_numeric(b"0000644\0"), Some(0o644));
    assert_eq!(parse_numeric(b"  644 \0\0"), Some(0o644));
    assert_eq!(parse_numeric(b"\0\0\0\0\0\0\0\0"), Some(0));
    assert_eq!(parse_numeric(b"0000648\0"), None);
    assert_eq!(parse_numeric(b"77777777777777777777777"), None);
    assert_eq!(parse_numeric(&[0x80, 0, 0, 0, 0, 0, 1, 0]), Some(256));
    assert_eq!(parse_numeric(&[0xff; 12]), Some(-1));
    assert_eq!(
        parse_numeric(&[0x80, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0]),
        None
    );
    assert_eq!(parse_numeric(b""), None);
}

#[test]
fn pax_times_round_down_to_whole_seconds() {
    for (text, want) in [
        (&b"1350244992.023960108"[..], Some(1_350_244_992)),
        (b"12", Some(12)),
        (b"12.", Some(12)),
        (b"-1", Some(-1)),
        (b"-1.0", Some(-1)),
        (b"-1.5", Some(-2)),
        (b"-0.1", Some(-1)),
        (b"", None),
        (b"-", None),
        (b"1e3", None),
        (b"1.5x", None),
        (b"+1", None),
        (b"99999999999999999999", None),
    ] {
        assert_eq!(
            parse_pax_time(text),
            want,
            "{}",
            String::from_utf8_lossy(text)
        );
    }
}

/// A small deterministic generator, so a failure can be replayed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn flipped_header_bytes_are_an_error_or_ok_never_a_panic() {
    let mut entries = sample();
    let mut dev = entry(b"./dev/null", EntryKind::CharDevice);
    (dev.dev_major, dev.dev_minor) = (1, 3);
    let mut ids = entry(b"./ids", EntryKind::Dir);
    (ids.uid, ids.mtime) = (1 << 40, -5);
    entries.extend([(dev, Vec::new()), (ids, Vec::new())]);
    let clean = write_archive(&entries);
    // Header and pax blocks: everything but file data.
    let headers: Vec<usize> = (0..clean.len() / BLOCK)
        .filter(|&i| clean[i * BLOCK..(i + 1) * BLOCK].iter().any(|&b| b != 7))
        .collect();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for round in 0..20_000 {
        let mut bytes = clean.clone();
        for _ in 0..1 + rng.below(4) {
            let at = headers[rng.below(headers.len())] * BLOCK + rng.below(BLOCK);
            bytes[at] = rng.next() as u8;
        }
        // Fixing the checksum lets the flips reach the field parsers.
        if round % 2 == 0 {
            for &i in &headers {
                let block = &mut bytes[i * BLOCK..(i + 1) * BLOCK];
                if block.iter().any(|&b| b != 0) {
                    fix_checksum(block);
                }
            }
        }
        let _ = read_archive(&bytes);
    }
}

#[test]
fn random_streams_are_an_error_never_a_panic() {
    let mut rng = XorShift(42);
    for _ in 0..2_000 {
        let mut bytes: Vec<u8> = (0..rng.below(4 * BLOCK))
            .map(|_| rng.next() as u8)
            .collect();
        if bytes.len() >= BLOCK && rng.below(2) == 0 {
            fix_checksum(&mut bytes[..BLOCK]);
        }
        assert!(read_archive(&bytes).is_err());
    }
}
