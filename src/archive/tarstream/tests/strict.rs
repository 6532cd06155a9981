//! What the reader refuses: streams cut anywhere, corrupt headers and
//! records, oversized extension headers; and that no input makes it panic.

use super::*;

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
fn entry_with_an_empty_name_is_corrupt() {
    let bytes = [&header(b"", b'0', 0)[..], &end_marker()].concat();
    assert_eq!(
        corrupt_reason(read_headers(&bytes)),
        "entry with an empty name"
    );
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
