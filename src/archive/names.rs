//! Entry names: from the Engine's stream to the archive, and from the
//! archive to the stream the Engine extracts.
//!
//! Archives hold relative names (`./`, `./a/b`) with the volume root first.
//! The Engine sees the volume under one mount directory, and extracting into
//! that directory's parent with names starting with it is the only way the
//! root's own owner and mode, and relative symlinks that climb out of the
//! volume, come back exactly (DESIGN.md). A name that would climb out of the
//! volume (`..`) is refused, never rewritten.

/// The directory where helper containers mount the volume, without slashes.
pub const MOUNT_DIR: &str = "volume";

/// Turns a name from the Engine's stream (`volume/a/b`) into an archive name
/// (`./a/b`). `None` when the name is not under the mount directory.
pub fn engine_to_archive(name: &[u8]) -> Option<Vec<u8>> {
    let rest = name.strip_prefix(MOUNT_DIR.as_bytes())?;
    if rest.is_empty() || rest == b"/" {
        return Some(b"./".to_vec());
    }
    let rest = rest.strip_prefix(b"/")?;
    let mut out = b"./".to_vec();
    out.extend_from_slice(rest);
    Some(out)
}

/// Why an archive name cannot be restored.
#[derive(Debug, PartialEq, Eq)]
pub enum NameError {
    /// A `..` component: the entry would land outside the volume.
    ClimbsOut,
}

/// Turns an archive name (`./a`, `a`, `/a`, `.`) into the name the Engine
/// extracts (`volume/a`). The root becomes `volume/`.
pub fn archive_to_engine(name: &[u8]) -> Result<Vec<u8>, NameError> {
    let rel = relative(name)?;
    let mut out = MOUNT_DIR.as_bytes().to_vec();
    out.push(b'/');
    out.extend_from_slice(&rel);
    Ok(out)
}

/// The name relative to the volume root, without `./` or `/` in front; empty
/// for the root itself. A trailing slash is kept.
pub fn relative(name: &[u8]) -> Result<Vec<u8>, NameError> {
    let mut rest = name;
    loop {
        if let Some(r) = rest.strip_prefix(b"/") {
            rest = r;
        } else if let Some(r) = rest.strip_prefix(b"./") {
            rest = r;
        } else if rest == b"." {
            rest = b"";
        } else {
            break;
        }
    }
    let mut out = Vec::with_capacity(rest.len());
    for part in rest.split(|&b| b == b'/') {
        match part {
            b".." => return Err(NameError::ClimbsOut),
            b"." | b"" => continue,
            _ => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(part);
            }
        }
    }
    if rest.ends_with(b"/") && !out.is_empty() {
        out.push(b'/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_names_become_relative() {
        assert_eq!(engine_to_archive(b"volume/").unwrap(), b"./");
        assert_eq!(engine_to_archive(b"volume").unwrap(), b"./");
        assert_eq!(engine_to_archive(b"volume/a/b").unwrap(), b"./a/b");
        assert_eq!(engine_to_archive(b"volume/d/").unwrap(), b"./d/");
        assert_eq!(engine_to_archive(b"volumes/x"), None);
        assert_eq!(engine_to_archive(b"other/x"), None);
    }

    #[test]
    fn archive_names_land_under_the_mount() {
        assert_eq!(archive_to_engine(b"./").unwrap(), b"volume/");
        assert_eq!(archive_to_engine(b".").unwrap(), b"volume/");
        assert_eq!(archive_to_engine(b"./a/b").unwrap(), b"volume/a/b");
        assert_eq!(archive_to_engine(b"a/b/").unwrap(), b"volume/a/b/");
        assert_eq!(archive_to_engine(b"/abs/x").unwrap(), b"volume/abs/x");
        assert_eq!(archive_to_engine(b"./a//./b").unwrap(), b"volume/a/b");
    }

    #[test]
    fn names_that_climb_out_are_refused() {
        assert_eq!(archive_to_engine(b"../x"), Err(NameError::ClimbsOut));
        assert_eq!(archive_to_engine(b"./a/../../x"), Err(NameError::ClimbsOut));
        // A name that merely contains dots is fine.
        assert_eq!(archive_to_engine(b"./..a").unwrap(), b"volume/..a");
    }
}
