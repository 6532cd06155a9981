//! Headers the writer never produces but other tars do: pax global
//! records, GNU long names and base-256 numbers, ustar prefixes, v7, and
//! the field parsers on their own.

use super::*;

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
