//! The whole archive pipeline without Docker: writer to reader, and every
//! way an archive can be damaged.

use std::io::Read;

use sha2::Digest as _;

use super::crypto::{Decryption, Encryption};
use super::digest::Algorithm;
use super::meta::{Header, FORMAT_VERSION};
use super::tarstream::{Entry, EntryKind};
use super::{walk, ArchiveReader, ArchiveWriter};

fn header() -> Header {
    header_of(FORMAT_VERSION)
}

fn header_of(format: u32) -> Header {
    Header {
        format,
        volume: "v".into(),
        labels: Default::default(),
        driver: "local".into(),
        driver_options: Default::default(),
        daemon: "d".into(),
        created: "2026-12-04T00:00:00.000Z".into(),
        tool: "test".into(),
    }
}

fn entry(path: &str, kind: EntryKind, size: u64) -> Entry {
    Entry {
        path: path.as_bytes().to_vec(),
        kind,
        mode: 0o644,
        uid: 999,
        gid: 999,
        uname: Vec::new(),
        gname: Vec::new(),
        mtime: 1_700_000_000,
        size,
        link: None,
        dev_major: 0,
        dev_minor: 0,
        xattrs: Vec::new(),
    }
}

fn keys() -> (age::x25519::Identity, Decryption) {
    let id = age::x25519::Identity::generate();
    let dec = Decryption {
        identities: vec![Box::new(id.clone())],
        passphrase: None,
        own_recipients: Vec::new(),
        without_recipient: Vec::new(),
    };
    (id, dec)
}

fn archive(enc: &Encryption) -> Vec<u8> {
    archive_of(enc, &header())
}

fn archive_of(enc: &Encryption, header: &Header) -> Vec<u8> {
    let mut w = ArchiveWriter::new(Vec::new(), enc.encryptor().unwrap(), header, 3, 0).unwrap();
    w.append(&entry("./", EntryKind::Dir, 0), &mut std::io::empty())
        .unwrap();
    let data: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    w.append(
        &entry("./data", EntryKind::File, data.len() as u64),
        &mut &data[..],
    )
    .unwrap();
    w.finish().unwrap().inner
}

/// Reading `bytes` must fail as an integrity failure whose message holds `says`.
fn assert_damaged(bytes: Vec<u8>, says: &str) {
    let (_, dec) = keys();
    let err = read_all(bytes, &dec).unwrap_err();
    assert_eq!(crate::error::exit_for(&err), crate::error::Exit::Integrity);
    assert!(format!("{err:#}").contains(says), "{err:#}");
}

fn read_all(bytes: Vec<u8>, dec: &Decryption) -> anyhow::Result<super::Summary> {
    let r = ArchiveReader::open(Box::new(std::io::Cursor::new(bytes)), dec, "test")?;
    walk(r, |_, data| {
        std::io::copy(data, &mut std::io::sink())?;
        Ok(())
    })
}

#[test]
fn encrypted_archive_round_trips_with_header_and_trailer() {
    let (id, dec) = keys();
    let bytes = archive(&Encryption::Recipients(vec![Box::new(id.to_public())]));
    let s = read_all(bytes, &dec).unwrap();
    assert_eq!(s.entries, 2);
    assert_eq!(s.data_bytes, 300_000);
    assert_eq!(s.header.unwrap().volume, "v");
    assert_eq!(s.tar_digest.algorithm, Algorithm::Blake3);
    let trailer = s.trailer.unwrap();
    assert_eq!(
        trailer.tar_blake3.as_deref(),
        Some(s.tar_digest.hex.as_str())
    );
    assert_eq!(trailer.tar_sha256, None);
}

/// Archives written before format 2 carry the tar's SHA-256, and are read
/// and checked as they were.
#[test]
fn format_1_archives_are_checked_with_sha256() {
    let bytes = archive_of(&Encryption::None, &header_of(1));
    let (_, dec) = keys();
    let s = read_all(bytes.clone(), &dec).unwrap();
    assert_eq!(s.tar_digest.algorithm, Algorithm::Sha256);
    let trailer = s.trailer.clone().unwrap();
    assert_eq!(
        trailer.tar_sha256.as_deref(),
        Some(s.tar_digest.hex.as_str())
    );
    assert_eq!(trailer.tar_blake3, None);
    // zstd -d | sha256sum prints it.
    let tar = zstd::decode_all(&bytes[..]).unwrap();
    assert_eq!(s.tar_digest.hex, hex::encode(sha2::Sha256::digest(&tar)));

    let mut damaged = bytes;
    let pos = damaged
        .windows(10)
        .rposition(|w| w == b"tar_sha256")
        .unwrap();
    damaged[pos + 13] = if damaged[pos + 13] == b'0' {
        b'1'
    } else {
        b'0'
    };
    let err = read_all(damaged, &dec).unwrap_err();
    assert_eq!(crate::error::exit_for(&err), crate::error::Exit::Integrity);
}

/// `zstd -d | b3sum` prints a format 2 archive's `tar_blake3`.
#[test]
fn tar_blake3_is_the_digest_of_the_decompressed_stream() {
    let bytes = archive(&Encryption::None);
    let (_, dec) = keys();
    let s = read_all(bytes.clone(), &dec).unwrap();
    let tar = zstd::decode_all(&bytes[..]).unwrap();
    assert_eq!(s.tar_digest.hex, blake3::hash(&tar).to_hex().as_str());
}

/// A trailer without the digest its archive's format calls for is damaged,
/// not a pass.
#[test]
fn a_trailer_without_the_tar_digest_is_an_integrity_error() {
    let mut bytes = archive(&Encryption::None);
    let pos = bytes.windows(10).rposition(|w| w == b"tar_blake3").unwrap();
    // Same length, a field this reader does not know.
    bytes[pos..pos + 10].copy_from_slice(b"tar_blakeX");
    let (_, dec) = keys();
    let err = read_all(bytes, &dec).unwrap_err();
    assert_eq!(crate::error::exit_for(&err), crate::error::Exit::Integrity);
    assert!(
        format!("{err:#}").contains("the trailer has no blake3 digest of the tar"),
        "{err:#}"
    );
}

#[test]
fn wrong_key_fails_at_open() {
    let (id, _) = keys();
    let (_, other) = keys();
    let bytes = archive(&Encryption::Recipients(vec![Box::new(id.to_public())]));
    let err = ArchiveReader::open(Box::new(std::io::Cursor::new(bytes)), &other, "test")
        .err()
        .unwrap();
    assert!(format!("{err:#}").contains("wrong key"), "{err:#}");
}

#[test]
fn damaged_last_chunk_is_an_error() {
    let (id, dec) = keys();
    let mut bytes = archive(&Encryption::Recipients(vec![Box::new(id.to_public())]));
    let n = bytes.len();
    bytes[n - 40] ^= 0x55;
    assert!(read_all(bytes, &dec).is_err());
}

#[test]
fn truncated_archives_are_errors_at_every_length() {
    let bytes = archive(&Encryption::None);
    let (_, dec) = keys();
    // Every cut, in steps that cross the frames' and the tar's boundaries.
    for cut in (0..bytes.len()).step_by(97).chain([bytes.len() - 1]) {
        let r = read_all(bytes[..cut].to_vec(), &dec);
        assert!(r.is_err(), "a cut at {cut} of {} was accepted", bytes.len());
    }
    assert!(read_all(bytes, &dec).is_ok());
}

#[test]
fn unencrypted_trailer_mismatch_is_an_integrity_error() {
    // Rewrite the trailer so its digest no longer matches the tar.
    let mut bytes = archive(&Encryption::None);
    let pos = bytes.windows(10).rposition(|w| w == b"tar_blake3").unwrap();
    let hex_start = pos + 13;
    bytes[hex_start] = if bytes[hex_start] == b'0' { b'1' } else { b'0' };
    assert_damaged(bytes, "trailer");
}

#[test]
fn standard_zstd_of_a_tar_without_frames_is_read() {
    // C16: what `tar | zstd` makes, several frames included.
    let mut tar = super::tarstream::TarWriter::new(Vec::new());
    tar.append(&entry("./", EntryKind::Dir, 0), &mut std::io::empty())
        .unwrap();
    tar.append(&entry("./x", EntryKind::File, 3), &mut &b"abc"[..])
        .unwrap();
    let tar = tar.finish().unwrap();
    let (a, b) = tar.split_at(700);
    let mut z = zstd::encode_all(a, 3).unwrap();
    z.extend(zstd::encode_all(b, 3).unwrap());
    let (_, dec) = keys();
    let s = read_all(z, &dec).unwrap();
    assert_eq!(s.entries, 2);
    assert!(s.header.is_none() && s.trailer.is_none());
}

#[test]
fn passphrase_archives_need_the_passphrase() {
    let pass = age::secrecy::SecretString::from("correct horse".to_owned());
    let bytes = archive(&Encryption::Passphrase(pass.clone()));
    let (_, none) = keys();
    let err = ArchiveReader::open(Box::new(std::io::Cursor::new(bytes.clone())), &none, "t")
        .err()
        .unwrap();
    assert!(format!("{err:#}").contains("passphrase"));
    let with = Decryption {
        identities: Vec::new(),
        passphrase: Some(pass),
        own_recipients: Vec::new(),
        without_recipient: Vec::new(),
    };
    let mut r = ArchiveReader::open(Box::new(std::io::Cursor::new(bytes)), &with, "t").unwrap();
    let mut sink = Vec::new();
    r.read_to_end(&mut sink).unwrap();
    assert!(!sink.is_empty());
}

/// An unencrypted archive of `files` small files, so that the manifest
/// spans several frames.
fn many_entries(files: u32) -> (Vec<u8>, Vec<super::manifest::Record>) {
    use super::manifest::Record;
    let mut w = ArchiveWriter::new(Vec::new(), None, &header(), 3, 0).unwrap();
    let root = entry("./", EntryKind::Dir, 0);
    w.append(&root, &mut std::io::empty()).unwrap();
    let mut records = vec![Record::of(&root, None)];
    for i in 0..files {
        // Mostly small files; some empty, and some larger than the batches
        // the digest thread gets, so that files straddle them.
        let data = match i % 997 {
            0 => (0..700_000u32).map(|n| (n ^ i) as u8).collect(),
            n if n % 13 == 0 => Vec::new(),
            _ => format!("file number {i}\n").into_bytes(),
        };
        let mut e = entry(&format!("./f{i:06}"), EntryKind::File, data.len() as u64);
        e.mtime += i64::from(i);
        w.append(&e, &mut &data[..]).unwrap();
        records.push(Record::of(&e, Some(blake3::hash(&data))));
        if i % 1000 == 500 {
            let mut link = entry(&format!("./l{i:06}"), EntryKind::Symlink, 0);
            link.link = Some(b"f000000".to_vec());
            w.append(&link, &mut std::io::empty()).unwrap();
            records.push(Record::of(&link, None));
        }
    }
    let written = w.finish().unwrap();
    let manifest = written.trailer.manifest.clone().unwrap();
    assert_eq!(manifest.entries, records.len() as u64);
    (written.inner, records)
}

fn manifest_of(bytes: Vec<u8>) -> std::io::Result<Vec<super::manifest::Record>> {
    let mut r =
        ArchiveReader::open(Box::new(std::io::Cursor::new(bytes)), &keys().1, "test").unwrap();
    let mut all = Vec::new();
    while let Some(chunk) = r.next_manifest()? {
        all.extend(chunk);
    }
    Ok(all)
}

#[test]
fn the_manifest_records_every_entry_across_several_frames() {
    let (bytes, records) = many_entries(20_000);
    // 20,021 records of about 180 bytes of JSON: several 1 MiB chunks,
    // each after the data frame holding its entries.
    let frames = bytes
        .windows(9)
        .filter(|w| w[..4] == 0x184D_2A5Eu32.to_le_bytes())
        .count();
    assert!(frames >= 5, "{frames} volsafe frames");
    assert_eq!(manifest_of(bytes.clone()).unwrap(), records);
    // The tar is still the concatenation of the data frames, for zstd -d
    // and for volsafe.
    let s = read_all(bytes.clone(), &keys().1).unwrap();
    assert_eq!(s.entries, records.len() as u64);
    let tar = zstd::decode_all(&bytes[..]).unwrap();
    assert_eq!(tar.len() as u64, s.tar_bytes);
}

#[test]
fn a_changed_manifest_frame_is_damage() {
    let (mut bytes, _) = many_entries(50);
    // Change one byte inside the (only) manifest frame.
    let needle = b"volsafe\0\x03";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("a manifest frame");
    bytes[at + needle.len() + 20] ^= 0x01;
    let err = read_all(bytes.clone(), &keys().1).unwrap_err();
    assert!(
        format!("{err:#}").contains("manifest frames differ"),
        "{err:#}"
    );
    // Read on its own, the frame no longer decodes, or no longer matches.
    assert!(manifest_of(bytes).is_err());
}

/// Replaces the trailer (the last frame of an unencrypted archive) with
/// what `edit` makes of its JSON.
fn rewrite_trailer(bytes: &mut Vec<u8>, edit: impl FnOnce(&mut serde_json::Value)) {
    let magic = super::meta::SKIPPABLE_MAGIC.to_le_bytes();
    let at = bytes.windows(4).rposition(|w| w == magic).unwrap();
    let payload = &bytes[at + 8..];
    assert_eq!(
        &payload[..9],
        b"volsafe\0\x02",
        "the last frame is the trailer"
    );
    let mut json: serde_json::Value = serde_json::from_slice(&payload[9..]).unwrap();
    edit(&mut json);
    bytes.truncate(at);
    let json = serde_json::to_vec(&json).unwrap();
    super::meta::write_frame(bytes, super::meta::FrameKind::Trailer, &json).unwrap();
}

#[test]
fn a_trailer_with_the_other_formats_digest_is_an_integrity_error() {
    let mut bytes = archive(&Encryption::None);
    rewrite_trailer(&mut bytes, |t| {
        t["tar_sha256"] = serde_json::Value::String("0".repeat(64));
    });
    assert_damaged(bytes, "a sha256 digest");
}

#[test]
fn a_trailer_without_a_header_is_an_integrity_error() {
    let mut bytes = archive(&Encryption::None);
    // The header is the first frame: magic, length, payload.
    let len = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
    bytes.drain(..8 + len);
    assert_damaged(bytes, "no header");
}

/// With workers, two archives written at once both come back whole, and
/// zstd's workers run at a lower priority than the thread writing.
#[test]
fn archives_written_with_workers_round_trip_and_workers_are_nicer() {
    let data_of = |seed: u32| -> Vec<u8> {
        // Several of zstd's 2 MiB jobs, text-like so they compress.
        (0..9_000_000u32)
            .map(|i| b"abcdefgh"[((i ^ seed).wrapping_mul(2_654_435_761) >> 29) as usize])
            .collect()
    };
    let write = |data: &[u8]| {
        let mut w = ArchiveWriter::new(Vec::new(), None, &header(), 3, 2).unwrap();
        w.append(&entry("./", EntryKind::Dir, 0), &mut std::io::empty())
            .unwrap();
        w.append(
            &entry("./data", EntryKind::File, data.len() as u64),
            &mut &data[..],
        )
        .unwrap();
        w
    };
    let (a, b) = (data_of(1), data_of(2));
    let (wa, wb) = std::thread::scope(|s| {
        let wa = s.spawn(|| write(&a));
        let wb = s.spawn(|| write(&b));
        (wa.join().unwrap(), wb.join().unwrap())
    });

    // Both writers' workers are alive until they finish.
    #[cfg(target_os = "linux")]
    {
        // SAFETY: reads the calling thread's nice value.
        let own = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let mut workers = 0;
        for task in std::fs::read_dir("/proc/self/task").unwrap() {
            let task = task.unwrap().path();
            let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
            if comm.trim_end() != "volsafe-zstd" {
                continue;
            }
            let Ok(stat) = std::fs::read_to_string(task.join("stat")) else {
                continue; // another test's worker that just ended
            };
            // Fields after the parenthesised name; nice is field 19.
            let after = &stat[stat.rfind(')').unwrap() + 2..];
            let nice: i32 = after.split(' ').nth(16).unwrap().parse().unwrap();
            assert_eq!(nice, (own + 5).min(19), "{}", task.display());
            workers += 1;
        }
        assert!(
            workers >= 4,
            "{workers} zstd worker threads found, not 2 per writer"
        );
    }

    let (_, dec) = keys();
    for (w, data) in [(wa, a), (wb, b)] {
        let bytes = w.finish().unwrap().inner;
        let r = ArchiveReader::open(Box::new(std::io::Cursor::new(bytes)), &dec, "test").unwrap();
        let mut back = Vec::new();
        let s = walk(r, |_, d| {
            d.read_to_end(&mut back)?;
            Ok(())
        })
        .unwrap();
        assert_eq!(s.entries, 2);
        assert!(back == data, "the content came back changed");
    }
}
