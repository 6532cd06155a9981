//! Files on disk (DESIGN.md): names, modes, the sidecar as commit marker,
//! `list`, and C17 (no archive is ever overwritten).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::common::{
    assert_no_leftovers, backup, daemon_name, fill, path_str, volsafe, AgeKey, Run, Volume,
};

fn sidecar(archive: &Path) -> PathBuf {
    PathBuf::from(format!("{}.json", archive.display()))
}

/// Archive and sidecar are 0600; the sidecar is JSON naming the volume and
/// the archive's SHA-256, and no secret.
#[test]
fn archive_and_sidecar_are_private_and_consistent() {
    let vol = Volume::new("sidecar");
    fill(&vol, "echo x > /v/x");
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let archive = backup(vol.name(), dest.path(), &key, &[]);

    for file in [archive.clone(), sidecar(&archive)] {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} has mode {mode:o}", file.display());
    }
    let text = std::fs::read_to_string(sidecar(&archive)).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).expect("sidecar is JSON");
    assert!(json.is_object(), "sidecar: {text}");
    assert!(
        text.contains(vol.name()),
        "sidecar lacks the volume: {text}"
    );
    assert!(
        text.contains(daemon_name()),
        "sidecar lacks the daemon: {text}"
    );
    let sha = hex::encode(Sha256::digest(std::fs::read(&archive).unwrap()));
    assert!(
        text.contains(&sha),
        "sidecar lacks the archive's sha256 {sha}: {text}"
    );
    let secret = std::fs::read_to_string(&key.identity).unwrap();
    let secret = secret
        .lines()
        .find(|l| l.starts_with("AGE-SECRET"))
        .unwrap();
    assert!(!text.contains(secret), "sidecar holds the identity");
}

/// C17: two backups in a row, and two at once, give distinct archives.
#[test]
fn c17_backups_never_overwrite() {
    let vol = Volume::new("c17");
    fill(&vol, "echo x > /v/x");
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let args = [
        "backup",
        vol.name(),
        "--to",
        path_str(dest.path()),
        "-r",
        key.recipient.as_str(),
    ];

    let mut archives = Vec::new();
    for _ in 0..2 {
        archives.push(backup(vol.name(), dest.path(), &key, &[]));
    }
    let runs: Vec<Run> = std::thread::scope(|s| {
        let both: Vec<_> = (0..2).map(|_| s.spawn(|| volsafe(&args))).collect();
        both.into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    for run in runs {
        run.assert_ok();
        archives.extend(run.stdout_lines().iter().map(PathBuf::from));
    }
    let mut unique = archives.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 4, "archives overwritten: {archives:?}");
    for a in &archives {
        assert!(
            a.is_file() && sidecar(a).is_file(),
            "{} incomplete",
            a.display()
        );
    }
    assert_no_leftovers(vol.name());
}

/// `list --format json` shows committed archives (newest first) and only
/// volsafe's: foreign files are ignored, an archive without its sidecar is
/// not listed as committed (C09 for list).
#[test]
fn list_shows_only_committed_archives() {
    let vol = Volume::new("list");
    fill(&vol, "echo x > /v/x");
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let first = backup(vol.name(), dest.path(), &key, &[]);
    let second = backup(vol.name(), dest.path(), &key, &[]);

    std::fs::write(dest.path().join("notes.txt"), "mine").unwrap();
    std::fs::create_dir(dest.path().join("other")).unwrap();
    std::fs::write(dest.path().join("other/x.tar.zst.age"), "not volsafe's").unwrap();
    let orphan = first.with_file_name(format!("{}-20000101T000000.000Z.tar.zst.age", vol.name()));
    std::fs::write(&orphan, "no sidecar").unwrap();

    let run = volsafe(&["list", path_str(dest.path()), "--format", "json"]);
    run.assert_ok();
    let json: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("list output is not JSON ({e})\n{run}"));
    let text = json.to_string();
    let name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
    let (first, second) = (name(&first), name(&second));
    let at = |n: &str| {
        text.find(n)
            .unwrap_or_else(|| panic!("{n} not listed\n{run}"))
    };
    assert!(at(&second) < at(&first), "not newest first\n{run}");
    for foreign in ["notes.txt", "other/x.tar.zst.age", "\"x.tar.zst.age\""] {
        assert!(!text.contains(foreign), "{foreign} listed\n{run}");
    }
    assert_eq!(
        std::fs::read_to_string(dest.path().join("notes.txt")).unwrap(),
        "mine"
    );
}
