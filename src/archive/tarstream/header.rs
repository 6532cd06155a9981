//! The byte layout of tar: 512-byte header blocks (ustar, GNU and v7) and
//! pax extended header records, read and written.
//!
//! Header fields are parsed here rather than with `tar::Header`, whose
//! base-256 decoding ignores the sign (GNU tar writes a time before 1970 as
//! a negative base-256 number). Every parser returns an error, never
//! panics, whatever the bytes. std only: volsafe-tar (`src/streamer`)
//! builds this file too, with no other crate.

use std::ops::Range;

use super::{EntryKind, BLOCK};

// Field offsets in a header block. v7 has only the fields up to LINKNAME;
// GNU has no PREFIX but its atime and ctime there.
const NAME: Range<usize> = 0..100;
const MODE: Range<usize> = 100..108;
const UID: Range<usize> = 108..116;
const GID: Range<usize> = 116..124;
const SIZE: Range<usize> = 124..136;
const MTIME: Range<usize> = 136..148;
const CHKSUM: Range<usize> = 148..156;
const TYPEFLAG: usize = 156;
const LINKNAME: Range<usize> = 157..257;
const MAGIC: Range<usize> = 257..265;
const UNAME: Range<usize> = 265..297;
const GNAME: Range<usize> = 297..329;
const DEVMAJOR: Range<usize> = 329..337;
const DEVMINOR: Range<usize> = 337..345;
const PREFIX: Range<usize> = 345..500;
/// star's shorter prefix, marked by "tar\0" in the last four bytes.
const STAR_PREFIX: Range<usize> = 345..476;
const STAR_TRAILER: Range<usize> = 508..512;

const USTAR_MAGIC: &[u8] = b"ustar\x0000";
const GNU_MAGIC: &[u8] = b"ustar  \x00";

/// Largest values the 8- and 12-byte octal fields hold.
pub(super) const MAX_OCTAL_7: u64 = 0o7777777;
pub(super) const MAX_OCTAL_11: u64 = 0o77777777777;

/// Longest uname/gname that fits the 32-byte field with its NUL.
pub(super) const MAX_OWNER_NAME: usize = UNAME.end - UNAME.start - 1;

/// The longest name the NAME and LINKNAME fields hold.
pub(super) const MAX_NAME: usize = NAME.end - NAME.start;

pub(super) const XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";

pub(super) fn typeflag(kind: EntryKind) -> u8 {
    match kind {
        EntryKind::File => b'0',
        EntryKind::HardLink => b'1',
        EntryKind::Symlink => b'2',
        EntryKind::CharDevice => b'3',
        EntryKind::BlockDevice => b'4',
        EntryKind::Dir => b'5',
        EntryKind::Fifo => b'6',
    }
}

/// The fields of one header block, before pax and GNU records apply.
pub(super) struct RawHeader {
    pub typeflag: u8,
    pub name: Vec<u8>,
    pub link: Vec<u8>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: i64,
    pub uname: Vec<u8>,
    pub gname: Vec<u8>,
    pub dev_major: u32,
    pub dev_minor: u32,
}

impl RawHeader {
    /// Parses a block that is not all zeros; the error is a reason for
    /// [`super::TarError::Corrupt`].
    pub fn parse(block: &[u8; BLOCK]) -> Result<RawHeader, String> {
        check_checksum(block)?;

        let ustar = &block[MAGIC] == USTAR_MAGIC;
        let gnu = &block[MAGIC] == GNU_MAGIC;
        let mut name = until_nul(&block[NAME]).to_vec();
        if ustar {
            let star = &block[STAR_TRAILER] == b"tar\0";
            let prefix = until_nul(&block[if star { STAR_PREFIX } else { PREFIX }]);
            if !prefix.is_empty() {
                name = [prefix, b"/", &name].concat();
            }
        }
        let typeflag = block[TYPEFLAG];
        let bad = |what: &str| {
            let name = String::from_utf8_lossy(&name);
            format!("bad {what} field in the header of {name:?}")
        };
        let number =
            |field: Range<usize>, what: &str| parse_numeric(&block[field]).ok_or_else(|| bad(what));
        let unsigned = |field: Range<usize>, what: &str| {
            number(field, what).and_then(|n| u64::try_from(n).map_err(|_| bad(what)))
        };
        // Other kinds leave these fields blank or hold anything there.
        let device = |field: Range<usize>, what: &str| {
            if !(ustar || gnu) || !matches!(typeflag, b'3' | b'4') {
                return Ok(0);
            }
            unsigned(field, what).and_then(|n| u32::try_from(n).map_err(|_| bad(what)))
        };
        let owner = |field: Range<usize>| {
            if ustar || gnu {
                until_nul(&block[field]).to_vec()
            } else {
                Vec::new()
            }
        };
        Ok(RawHeader {
            typeflag,
            link: until_nul(&block[LINKNAME]).to_vec(),
            // Some tars keep the file type bits in the mode too.
            mode: (unsigned(MODE, "mode")? & 0o7777) as u32,
            uid: unsigned(UID, "uid")?,
            gid: unsigned(GID, "gid")?,
            size: unsigned(SIZE, "size")?,
            mtime: number(MTIME, "mtime")?,
            uname: owner(UNAME),
            gname: owner(GNAME),
            dev_major: device(DEVMAJOR, "device major")?,
            dev_minor: device(DEVMINOR, "device minor")?,
            name,
        })
    }

    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// Accepts the unsigned sum POSIX asks for, and the signed one that some
/// old tars wrote.
fn check_checksum(block: &[u8; BLOCK]) -> Result<(), String> {
    let stored = parse_numeric(&block[CHKSUM]).ok_or("bad header checksum field")?;
    // The sums count the checksum field as eight spaces. Summing the whole
    // block and then swapping the field's bytes for spaces keeps the loops
    // free of branches, which the compiler turns into vector code.
    let unsigned_of = |bytes: &[u8]| bytes.iter().map(|&b| i64::from(b)).sum::<i64>();
    let signed_of = |bytes: &[u8]| bytes.iter().map(|&b| i64::from(b as i8)).sum::<i64>();
    let field = &block[CHKSUM];
    let spaces = 8 * i64::from(b' ');
    let unsigned = unsigned_of(block) - unsigned_of(field) + spaces;
    let signed = signed_of(block) - signed_of(field) + spaces;
    if stored != unsigned && stored != signed {
        return Err("bad header checksum".into());
    }
    Ok(())
}

/// A numeric header field: octal text padded with spaces or NULs (blank
/// is 0, as in Go's reader), or GNU base-256 when the high bit of the
/// first byte is set.
pub(super) fn parse_numeric(field: &[u8]) -> Option<i64> {
    let first = *field.first()?;
    if first & 0x80 != 0 {
        // Two's complement; bit 0x40 of the first byte is the sign.
        let flip = if first & 0x40 != 0 { 0xff } else { 0 };
        let mut n: u64 = 0;
        for (i, &b) in field.iter().enumerate() {
            let b = if i == 0 { (b ^ flip) & 0x7f } else { b ^ flip };
            if n >> 56 != 0 {
                return None;
            }
            n = n << 8 | u64::from(b);
        }
        let n = i64::try_from(n).ok()?;
        return Some(if flip != 0 { !n } else { n });
    }
    let pad = |b: &u8| *b == b' ' || *b == 0;
    let start = field.iter().position(|b| !pad(b)).unwrap_or(field.len());
    let end = field.iter().rposition(|b| !pad(b)).map_or(start, |i| i + 1);
    field[start..end].iter().try_fold(0i64, |n, &d| match d {
        b'0'..=b'7' => n.checked_mul(8)?.checked_add(i64::from(d - b'0')),
        _ => None,
    })
}

pub(super) fn until_nul(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(end) => &bytes[..end],
        None => bytes,
    }
}

/// The fields the writer sets in a ustar header. Values must fit their
/// field, except names, which are cut to it (the pax header holding them
/// whole).
pub(super) struct UstarFields {
    pub name: Vec<u8>,
    pub typeflag: u8,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: u64,
    pub link: Vec<u8>,
    pub uname: Vec<u8>,
    pub gname: Vec<u8>,
    pub dev: (u64, u64),
}

impl UstarFields {
    pub fn new(name: Vec<u8>, typeflag: u8) -> Self {
        UstarFields {
            name,
            typeflag,
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 0,
            link: Vec::new(),
            uname: Vec::new(),
            gname: Vec::new(),
            dev: (0, 0),
        }
    }

    pub fn encode(&self) -> [u8; BLOCK] {
        let mut b = [0u8; BLOCK];
        put_bytes(&mut b[NAME], &self.name);
        put_octal(&mut b[MODE], u64::from(self.mode));
        put_octal(&mut b[UID], self.uid);
        put_octal(&mut b[GID], self.gid);
        put_octal(&mut b[SIZE], self.size);
        put_octal(&mut b[MTIME], self.mtime);
        b[TYPEFLAG] = self.typeflag;
        put_bytes(&mut b[LINKNAME], &self.link);
        b[MAGIC].copy_from_slice(USTAR_MAGIC);
        put_bytes(&mut b[UNAME.start..UNAME.end - 1], &self.uname);
        put_bytes(&mut b[GNAME.start..GNAME.end - 1], &self.gname);
        put_octal(&mut b[DEVMAJOR], self.dev.0);
        put_octal(&mut b[DEVMINOR], self.dev.1);
        b[CHKSUM].fill(b' ');
        let sum: u64 = b.iter().map(|&x| u64::from(x)).sum();
        // Six digits, a NUL and the space that was summed.
        put_octal(&mut b[CHKSUM.start..CHKSUM.end - 1], sum);
        b
    }
}

fn put_bytes(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// Zero-padded octal and a NUL. The caller makes sure the value fits
/// (larger ones go in pax records). Written digit by digit: a header has
/// eight such fields, and formatting each through a `String` cost more
/// than the rest of encoding the header.
fn put_octal(field: &mut [u8], value: u64) {
    let (nul, digits) = field.split_last_mut().expect("a tar number field");
    *nul = 0;
    let mut rest = value;
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (rest & 7) as u8;
        rest >>= 3;
    }
    debug_assert!(rest == 0, "{value} does not fit a tar field");
}

/// Appends "<len> <key>=<value>\n", where len counts itself too.
pub(super) fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = key.len() + value.len() + 3;
    // Adding the length's own digits can add a digit to it: settle it.
    let mut len = rest;
    loop {
        let next = rest + len.to_string().len();
        if next == len {
            break;
        }
        len = next;
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// One pax record.
pub(super) type Record = (Vec<u8>, Vec<u8>);

/// Splits pax extended header data into `(key, value)` records of the form
/// "<len> <key>=<value>\n".
pub(super) fn parse_pax(mut data: &[u8]) -> Result<Vec<Record>, String> {
    let mut records = Vec::new();
    while !data.is_empty() {
        let bad = || {
            let shown = String::from_utf8_lossy(&data[..data.len().min(40)]);
            format!("bad pax record {shown:?}")
        };
        let space = data.iter().position(|&b| b == b' ').ok_or_else(bad)?;
        let len = parse_decimal(&data[..space]).ok_or_else(bad)?;
        let len = usize::try_from(len).map_err(|_| bad())?;
        if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err(bad());
        }
        let record = &data[space + 1..len - 1];
        let eq = record.iter().position(|&b| b == b'=').ok_or_else(bad)?;
        if eq == 0 {
            return Err(bad());
        }
        records.push((record[..eq].to_vec(), record[eq + 1..].to_vec()));
        data = &data[len..];
    }
    Ok(records)
}

/// Digits only: no sign, no spaces, nothing that overflows.
pub(super) fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| match d {
        b'0'..=b'9' => n.checked_mul(10)?.checked_add(u64::from(d - b'0')),
        _ => None,
    })
}

/// A pax time, `[-]seconds[.fraction]`, rounded down to whole seconds.
pub(super) fn parse_pax_time(value: &[u8]) -> Option<i64> {
    let (negative, value) = match value.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, value),
    };
    let (whole, fraction) = match value.iter().position(|&b| b == b'.') {
        Some(dot) => (&value[..dot], &value[dot + 1..]),
        None => (value, &b""[..]),
    };
    if !fraction.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let seconds = i64::try_from(parse_decimal(whole)?).ok()?;
    if !negative {
        return Some(seconds);
    }
    let below = fraction.iter().any(|&d| d != b'0');
    (-seconds).checked_sub(i64::from(below))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_fields_are_zero_padded_digits_and_a_nul() {
        for width in [8, 12] {
            let digits = width - 1;
            let largest = (1u64 << (3 * digits)) - 1;
            for value in [0, 1, 7, 8, 0o644, 0o7777, 1_700_000_000, largest] {
                if value > largest {
                    continue;
                }
                let mut field = vec![0xAA; width];
                put_octal(&mut field, value);
                let want = format!("{value:0digits$o}\0");
                assert_eq!(field, want.as_bytes(), "{value} in {width} bytes");
            }
        }
    }

    #[test]
    fn encoded_headers_carry_a_checksum_the_parser_accepts() {
        let mut fields = UstarFields::new(b"data/file.txt".to_vec(), b'0');
        fields.mode = 0o640;
        fields.uid = 999;
        fields.gid = 65534;
        fields.size = 4096;
        fields.mtime = 1_700_000_000;
        let block = fields.encode();
        assert_eq!(&block[CHKSUM.end - 2..CHKSUM.end], b"\0 ");
        let parsed = RawHeader::parse(&block).unwrap();
        assert_eq!(
            (
                parsed.mode,
                parsed.uid,
                parsed.gid,
                parsed.size,
                parsed.mtime
            ),
            (0o640, 999, 65534, 4096, 1_700_000_000)
        );
        assert_eq!(parsed.name, b"data/file.txt");
    }
}
