//! `volsafe drill` against the real daemon: a good archive passes with RTO
//! and RPO, altered restored data fails naming the entry, `--compare-live`
//! lists changes, and no scratch volume or helper outlives a drill.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::{
    assert_no_leftovers, backup, docker_ok, fill, path_str, run_volsafe, scratch_volumes,
    test_image, volsafe, volsafe_command, AgeKey, Run, ScratchGuard, Volume,
};
use crate::fixtures;
use crate::lifecycle::wait_for;

fn assert_clean(volume: &str) {
    assert_eq!(
        scratch_volumes(volume),
        Vec::<String>::new(),
        "scratch volumes left"
    );
    assert_no_leftovers(volume);
    for s in scratch_volumes(volume) {
        assert_no_leftovers(&s);
    }
}

fn drill(dir: &Path, volume: &str, key: &AgeKey, extra: &[&str]) -> Run {
    let mut args = vec![
        "drill",
        path_str(dir),
        "--volume",
        volume,
        "-i",
        key.identity(),
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    volsafe(&args)
}

fn only_volume(run: &Run) -> serde_json::Value {
    let report: serde_json::Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("drill JSON: {e}\n{run}"));
    let volumes = report["volumes"].as_array().expect("volumes array");
    assert_eq!(volumes.len(), 1, "{run}");
    volumes[0].clone()
}

#[test]
fn drill_of_a_good_archive_passes_with_rto_and_rpo() {
    let source = Volume::new("drillok");
    let _guard = ScratchGuard(source.name().to_owned());
    fill(&source, &fixtures::special_entries());
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    backup(source.name(), dest.path(), &key, &[]);
    let run = drill(dest.path(), source.name(), &key, &[]);
    run.assert_ok();
    let v = only_volume(&run);
    assert_eq!(v["result"], "pass", "{run}");
    assert_eq!(v["manifest"], true, "{run}");
    assert!(v["rto_seconds"].as_f64().unwrap() > 0.0, "{run}");
    assert!(v["rpo_seconds"].as_f64().unwrap() >= 0.0, "{run}");
    assert!(v["entries_checked"].as_u64().unwrap() > 20, "{run}");
    assert_eq!(v["mismatches"], 0, "{run}");
    assert_clean(source.name());

    // The text report says the same in one line per volume.
    let text = volsafe(&[
        "drill",
        path_str(dest.path()),
        "--volume",
        source.name(),
        "-i",
        key.identity(),
    ]);
    text.assert_ok();
    assert!(
        text.stdout
            .starts_with(&format!("pass  {}: RTO ", source.name())),
        "{text}"
    );
    assert_clean(source.name());
}

/// The manifest says one thing, the restored data another: the drill
/// fails and names each entry. The manifest is rewritten here as if it had
/// been recorded over different content; the archive stays whole.
#[test]
fn drill_fails_naming_the_entries_that_differ_from_the_manifest() {
    let source = Volume::new("drillbad");
    let _guard = ScratchGuard(source.name().to_owned());
    fill(&source, &fixtures::special_entries());
    fill(&source, "echo 'the original' > /v/victim.txt");
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let archive = backup(source.name(), dest.path(), &key, &[]);
    rewrite_manifest(&archive, &key, |record| match record["path"].as_str() {
        Some("./victim.txt") => {
            record["blake3"] = blake3::hash(b"not original\n").to_hex().to_string().into();
        }
        Some("./empty/dir/") => record["mode"] = 0o700.into(),
        _ => {}
    });
    let run = drill(dest.path(), source.name(), &key, &[]);
    assert_eq!(
        run.code,
        Some(3),
        "a drill that finds differences must fail\n{run}"
    );
    let v = only_volume(&run);
    assert_eq!(v["result"], "fail", "{run}");
    assert_eq!(v["mismatches"], 2, "{run}");
    let named: Vec<(String, String)> = v["first_mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["path"].as_str().unwrap().to_owned(),
                d["problem"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        named,
        [
            ("./empty/dir/".to_owned(), "mode 0700 -> 0755".to_owned()),
            ("./victim.txt".to_owned(), "content".to_owned()),
        ],
        "{run}"
    );
    assert_clean(source.name());
}

#[test]
fn compare_live_lists_a_file_added_and_a_file_changed() {
    let source = Volume::new("drilllive");
    let _guard = ScratchGuard(source.name().to_owned());
    fill(
        &source,
        "echo one > /v/changed.txt && echo two > /v/kept.txt",
    );
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    backup(source.name(), dest.path(), &key, &[]);
    fill(
        &source,
        "echo ONE > /v/changed.txt && echo new > /v/added.txt",
    );
    let run = drill(dest.path(), source.name(), &key, &["--compare-live"]);
    run.assert_ok();
    let v = only_volume(&run);
    assert_eq!(
        v["result"], "pass",
        "changes in the live volume are not a failure\n{run}"
    );
    let live = &v["live"];
    assert_eq!(live["added"], 1, "{run}");
    assert_eq!(live["removed"], 0, "{run}");
    let first = live["first"].as_array().unwrap();
    let problem_of = |path: &str| {
        first
            .iter()
            .find(|d| d["path"] == path)
            .map(|d| d["problem"].as_str().unwrap().to_owned())
    };
    assert_eq!(
        problem_of("./added.txt").as_deref(),
        Some("added since the backup"),
        "{run}"
    );
    assert!(
        problem_of("./changed.txt").is_some_and(|p| p.contains("content")),
        "{run}"
    );
    assert!(problem_of("./kept.txt").is_none(), "{run}");
    assert_clean(source.name());
}

#[test]
fn drill_over_10000_files_checks_the_last_one() {
    let source = Volume::new("drillmany");
    let _guard = ScratchGuard(source.name().to_owned());
    fill(&source, &fixtures::many_files(10_000));
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let archive = backup(source.name(), dest.path(), &key, &[]);

    let clean = drill(dest.path(), source.name(), &key, &[]);
    clean.assert_ok();
    let v = only_volume(&clean);
    // The root, many/, 100 directories and 10,000 files.
    assert_eq!(v["entries_checked"], 10_102, "{clean}");

    // In name order the last entry is many/d99/f9999: record it as holding
    // other bytes of the same size.
    rewrite_manifest(&archive, &key, |record| {
        if record["path"] == "./many/d99/f9999" {
            record["blake3"] = blake3::hash(b"small file 999X\n")
                .to_hex()
                .to_string()
                .into();
        }
    });
    let started = std::time::Instant::now();
    let run = drill(dest.path(), source.name(), &key, &[]);
    eprintln!("drill of 10,102 entries: {:?}", started.elapsed());
    assert_eq!(run.code, Some(3), "{run}");
    let v = only_volume(&run);
    assert_eq!(v["mismatches"], 1, "{run}");
    assert_eq!(
        v["first_mismatches"][0]["path"], "./many/d99/f9999",
        "{run}"
    );
    assert!(
        v["first_mismatches"][0]["problem"]
            .as_str()
            .unwrap()
            .contains("content"),
        "{run}"
    );
    assert_clean(source.name());
}

#[test]
fn max_age_fails_an_archive_that_is_too_old() {
    let source = Volume::new("drillage");
    let _guard = ScratchGuard(source.name().to_owned());
    fill(&source, "echo x > /v/x");
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    backup(source.name(), dest.path(), &key, &[]);
    std::thread::sleep(Duration::from_millis(1500));
    let run = drill(dest.path(), source.name(), &key, &["--max-age", "1s"]);
    assert_eq!(run.code, Some(3), "{run}");
    let v = only_volume(&run);
    assert_eq!(v["result"], "fail");
    assert!(
        v["problems"][0].as_str().unwrap().contains("--max-age 1s"),
        "{run}"
    );
    // The restore was still proven.
    assert_eq!(v["mismatches"], 0, "{run}");
    assert_clean(source.name());
}

#[test]
fn a_volume_without_archives_fails_and_a_dir_without_any_is_an_error() {
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let run = volsafe(&["drill", path_str(dest.path()), "-i", key.identity()]);
    run.assert_fails(1, "no committed archive");
    let run = drill(dest.path(), "vstest-never-backed-up", &key, &[]);
    assert_eq!(run.code, Some(3), "{run}");
    assert!(
        run.stdout.contains("no committed archive of volume"),
        "{run}"
    );
}

#[test]
fn ctrl_c_mid_drill_leaves_no_scratch_volume() {
    let source = Volume::new("drillint");
    let _guard = ScratchGuard(source.name().to_owned());
    fill(&source, &fixtures::random_file(300));
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    backup(source.name(), dest.path(), &key, &[]);
    for delay in [0u64, 1500] {
        let child = volsafe_command(&[
            "drill",
            path_str(dest.path()),
            "--volume",
            source.name(),
            "-i",
            key.identity(),
        ])
        .spawn()
        .unwrap();
        let pid = child.id();
        wait_for(60, "the scratch volume", || {
            !scratch_volumes(source.name()).is_empty()
        });
        std::thread::sleep(Duration::from_millis(delay));
        Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() == Some(0) {
            // The drill won the race; it must still have cleaned up.
            assert_clean(source.name());
            continue;
        }
        assert_eq!(out.status.code(), Some(130), "{stderr}");
        assert_clean(source.name());
    }
}

/// An archive made before volsafe wrote manifests still restores and
/// drills, with a note.
#[test]
fn an_archive_without_a_manifest_drills_with_a_note() {
    let source = Volume::new("drillold");
    let _guard = ScratchGuard(source.name().to_owned());
    fill(&source, &fixtures::special_entries());
    let dest = tempfile::tempdir().unwrap();
    let run = volsafe(&[
        "backup",
        source.name(),
        "--to",
        path_str(dest.path()),
        "--no-encryption",
    ]);
    run.assert_ok();
    let archive = std::path::PathBuf::from(run.first_line());
    strip_manifest(&archive);
    let key = AgeKey::new();
    let run = drill(dest.path(), source.name(), &key, &[]);
    run.assert_ok();
    let v = only_volume(&run);
    assert_eq!(v["result"], "pass", "{run}");
    assert_eq!(v["manifest"], false, "{run}");
    assert!(
        v["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("no per-entry manifest")),
        "{run}"
    );
    assert_clean(source.name());
}

/// A newer backup whose sidecar is gone (it never finished, or was
/// tampered with) is not drilled, and the report says so: the drill must
/// not pass quietly on an older archive than the operator expects.
#[test]
fn a_newer_archive_without_its_sidecar_is_named_in_a_note() {
    let source = Volume::new("drillnosidecar");
    let _guard = ScratchGuard(source.name().to_owned());
    fill(&source, &fixtures::special_entries());
    let dest = tempfile::tempdir().unwrap();
    let backup = || {
        let run = volsafe(&[
            "backup",
            source.name(),
            "--to",
            path_str(dest.path()),
            "--no-encryption",
        ]);
        run.assert_ok();
        std::path::PathBuf::from(run.first_line())
    };
    let older = backup();
    let newer = backup();
    let mut sidecar = newer.clone().into_os_string();
    sidecar.push(".json");
    std::fs::remove_file(&sidecar).unwrap();
    let key = AgeKey::new();
    let run = drill(dest.path(), source.name(), &key, &[]);
    run.assert_ok();
    let v = only_volume(&run);
    assert_eq!(v["result"], "pass", "{run}");
    assert_eq!(v["archive"], path_str(&older), "{run}");
    let newer_name = newer.file_name().unwrap().to_str().unwrap();
    assert!(
        v["notes"].as_array().unwrap().iter().any(|n| {
            let n = n.as_str().unwrap();
            n.contains(newer_name) && n.contains("no valid sidecar")
        }),
        "{run}"
    );
    assert!(run.stderr.contains("not drilled"), "{run}");
    assert_clean(source.name());
}

/// Rewrites an unencrypted archive as an older volsafe wrote it: no
/// manifest frames, no manifest in the trailer; the sidecar follows.
fn strip_manifest(archive: &Path) {
    use sha2::Digest;
    let data = std::fs::read(archive).unwrap();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut dropped = 0;
    while pos < data.len() {
        let magic = u32::from_le_bytes(data[pos..pos + 4].try_into().unwrap());
        if magic & 0xFFFF_FFF0 == 0x184D_2A50 {
            let len = u32::from_le_bytes(data[pos + 4..pos + 8].try_into().unwrap()) as usize;
            let payload = &data[pos + 8..pos + 8 + len];
            let next = pos + 8 + len;
            match payload.get(8) {
                Some(3) => dropped += 1,
                Some(2) => {
                    let mut trailer: serde_json::Value =
                        serde_json::from_slice(&payload[9..]).unwrap();
                    trailer.as_object_mut().unwrap().remove("manifest");
                    let json = serde_json::to_vec(&trailer).unwrap();
                    out.extend(0x184D_2A5E_u32.to_le_bytes());
                    out.extend(((9 + json.len()) as u32).to_le_bytes());
                    out.extend(&payload[..9]);
                    out.extend(json);
                }
                _ => out.extend(&data[pos..next]),
            }
            pos = next;
        } else {
            let size = zstd::zstd_safe::find_frame_compressed_size(&data[pos..]).unwrap();
            out.extend(&data[pos..pos + size]);
            pos += size;
        }
    }
    assert!(dropped > 0, "the archive had no manifest frame");
    std::fs::write(archive, &out).unwrap();
    let sidecar = std::path::PathBuf::from(format!("{}.json", archive.display()));
    let mut side: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&sidecar).unwrap()).unwrap();
    side["size"] = out.len().into();
    side["sha256"] = hex::encode(sha2::Sha256::digest(&out)).into();
    std::fs::write(&sidecar, serde_json::to_vec(&side).unwrap()).unwrap();
}

/// Mtimes the Engine cannot restore (before 1970, after 2262): the
/// extracting helper restores them, and they are compared; through the
/// archive endpoint they come back as 1970-01-01, which is noted, never a
/// failed proof.
#[test]
fn mtimes_the_engine_cannot_restore_are_noted_not_failed() {
    let source = Volume::new("drillepoch");
    let _guard = ScratchGuard(source.name().to_owned());
    fill(
        &source,
        "echo x > /v/old && touch -d '1960-01-01 00:00:00' /v/old && echo y > /v/new",
    );
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    backup(source.name(), dest.path(), &key, &[]);
    let notes = |run: &Run| -> Vec<String> {
        run.assert_ok();
        only_volume(run)["notes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().to_owned())
            .collect()
    };
    let clamped = |n: &String| n.starts_with("1 entries have an mtime before 1970");

    let streamed = drill(dest.path(), source.name(), &key, &[]);
    assert!(!notes(&streamed).iter().any(clamped), "{streamed}");

    let args = [
        "drill",
        path_str(dest.path()),
        "--volume",
        source.name(),
        "-i",
        key.identity(),
        "--format",
        "json",
    ];
    let mut cmd = volsafe_command(&args);
    cmd.env("VOLSAFE_STREAM", "endpoint");
    let endpoint = run_volsafe(cmd, &args);
    assert!(notes(&endpoint).iter().any(clamped), "{endpoint}");
    assert_clean(source.name());
}

/// A kept scratch volume survives later runs (their sweep of leftovers),
/// holds the restored data, and a changed sidecar time fails the proof.
#[test]
fn kept_scratch_survives_and_a_forged_sidecar_time_fails() {
    let source = Volume::new("drillkeep");
    let _guard = ScratchGuard(source.name().to_owned());
    fill(&source, "echo kept > /v/file");
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let archive = backup(source.name(), dest.path(), &key, &[]);
    let run = drill(dest.path(), source.name(), &key, &["--keep-scratch"]);
    run.assert_ok();
    let kept = only_volume(&run)["scratch"].as_str().unwrap().to_owned();
    // Another drill sweeps leftovers first; the kept volume stays.
    drill(dest.path(), source.name(), &key, &[]).assert_ok();
    let mount = format!("{kept}:/v");
    let out = docker_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &mount,
        test_image(),
        "cat",
        "/v/file",
    ]);
    assert_eq!(out.trim(), "kept");
    crate::common::remove_containers_of(&kept);
    docker_ok(&["volume", "rm", &kept]);

    // A sidecar claiming a newer archive cannot pass --max-age.
    let sidecar = std::path::PathBuf::from(format!("{}.json", archive.display()));
    let text = std::fs::read_to_string(&sidecar).unwrap();
    let mut side: serde_json::Value = serde_json::from_str(&text).unwrap();
    side["created"] = "2099-01-01T00:00:00.000Z".into();
    std::fs::write(&sidecar, serde_json::to_vec(&side).unwrap()).unwrap();
    let run = drill(dest.path(), source.name(), &key, &["--max-age", "1h"]);
    assert_eq!(run.code, Some(3), "{run}");
    assert!(run.stdout.contains("the sidecar was changed"), "{run}");
    assert_clean(source.name());
}

/// Rewrites the manifest of an encrypted archive as if it had been
/// recorded over different content: `edit` changes each record (JSON). The
/// trailer's record of the manifest and the sidecar follow, so the archive
/// itself is whole and only its manifest disagrees with its data.
fn rewrite_manifest(archive: &Path, key: &AgeKey, edit: impl Fn(&mut serde_json::Value)) {
    use sha2::Digest;
    let out = Command::new("age")
        .args(["-d", "-i", key.identity()])
        .arg(archive)
        .output()
        .expect("age -d");
    assert!(out.status.success(), "age -d failed");
    let data = out.stdout;
    let (mut payload, mut trailer) = (Vec::new(), None);
    let mut hasher = blake3::Hasher::new();
    let mut pos = 0;
    while pos < data.len() {
        let magic = u32::from_le_bytes(data[pos..pos + 4].try_into().unwrap());
        if magic & 0xFFFF_FFF0 != 0x184D_2A50 {
            let size = zstd::zstd_safe::find_frame_compressed_size(&data[pos..]).unwrap();
            payload.extend(&data[pos..pos + size]);
            pos += size;
            continue;
        }
        let len = u32::from_le_bytes(data[pos + 4..pos + 8].try_into().unwrap()) as usize;
        let frame = &data[pos + 8..pos + 8 + len];
        pos += 8 + len;
        match frame[8] {
            3 => {
                let mut chunk: serde_json::Value =
                    serde_json::from_slice(&zstd::decode_all(&frame[9..]).unwrap()).unwrap();
                for record in chunk["entries"].as_array_mut().unwrap() {
                    edit(record);
                }
                let body = zstd::encode_all(&serde_json::to_vec(&chunk).unwrap()[..], 3).unwrap();
                hasher.update(&body);
                push_frame(&mut payload, 3, &body);
            }
            2 => trailer = Some(serde_json::from_slice::<serde_json::Value>(&frame[9..]).unwrap()),
            _ => payload.extend(&data[pos - 8 - len..pos]),
        }
    }
    let mut trailer = trailer.expect("a trailer");
    trailer["manifest"]["blake3"] = hasher.finalize().to_hex().to_string().into();
    push_frame(&mut payload, 2, &serde_json::to_vec(&trailer).unwrap());

    let mut age = Command::new("age")
        .args(["-r", key.recipient.as_str(), "-o"])
        .arg(archive)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("age -r");
    std::io::Write::write_all(age.stdin.as_mut().unwrap(), &payload).unwrap();
    drop(age.stdin.take());
    assert!(age.wait().unwrap().success(), "age -r failed");
    let file = std::fs::read(archive).unwrap();
    let sidecar = std::path::PathBuf::from(format!("{}.json", archive.display()));
    let mut side: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&sidecar).unwrap()).unwrap();
    side["size"] = file.len().into();
    side["sha256"] = hex::encode(sha2::Sha256::digest(&file)).into();
    std::fs::write(&sidecar, serde_json::to_vec(&side).unwrap()).unwrap();
}

/// Appends a volsafe skippable frame of `kind` holding `body`.
fn push_frame(out: &mut Vec<u8>, kind: u8, body: &[u8]) {
    out.extend(0x184D_2A5E_u32.to_le_bytes());
    out.extend(((9 + body.len()) as u32).to_le_bytes());
    out.extend(b"volsafe\0");
    out.push(kind);
    out.extend(body);
}
