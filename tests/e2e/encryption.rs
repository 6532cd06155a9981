//! The ways to encrypt that the issue names besides age X25519 keys: SSH
//! public keys (as the age CLI accepts them) and a passphrase from a file
//! or `VOLSAFE_PASSPHRASE`; and archives through stdout and stdin.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::{
    assert_no_leftovers, digest, fill, path_str, quote, run_volsafe, sh, volsafe, volsafe_command,
    AgeKey, Volume,
};

/// An SSH key pair made with `ssh-keygen`, no passphrase.
fn ssh_key(dir: &Path, kind: &str) -> (String, String) {
    let key = dir.join(format!("id_{kind}"));
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-C", "vstest", "-f"])
        .arg(&key)
        .stdin(Stdio::null())
        .output()
        .expect("ssh-keygen (apt-get install openssh-client)");
    assert!(out.status.success(), "ssh-keygen -t {kind} failed");
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    (path_str(&key).to_owned(), public.trim().to_owned())
}

#[test]
fn ssh_recipients_round_trip_and_age_reads_them() {
    let src = Volume::new("ssh");
    fill(&src, "echo secret > /v/s && mkdir /v/d && chown 999 /v/d");
    let before = digest(&src);
    let dir = tempfile::tempdir().unwrap();
    for kind in ["ed25519", "rsa"] {
        let (private, public) = ssh_key(dir.path(), kind);
        let dest = dir.path().join(format!("dest-{kind}"));
        let run = volsafe(&["backup", src.name(), "--to", path_str(&dest), "-r", &public]);
        run.assert_ok();
        let archive = run.first_line();

        let list = sh(&format!(
            "age -d -i {} {} | zstd -d -q | tar -t",
            quote(&private),
            quote(&archive)
        ));
        assert!(String::from_utf8_lossy(&list.stdout).contains("./s"));

        let target = Volume::reserve(&format!("ssh-{kind}-restored"));
        volsafe(&[
            "restore",
            &archive,
            "--volume",
            target.name(),
            "-i",
            &private,
        ])
        .assert_ok();
        before.assert_same(&digest(&target), &format!("restored with {kind} key"));
    }
}

#[test]
fn passphrase_from_file_and_environment() {
    let src = Volume::new("pass");
    fill(&src, "echo secret > /v/s");
    let before = digest(&src);
    let dir = tempfile::tempdir().unwrap();
    let pass = dir.path().join("pass");
    std::fs::write(&pass, "correct horse battery staple\n").unwrap();
    let dest = dir.path().join("dest");
    let run = volsafe(&[
        "backup",
        src.name(),
        "--to",
        path_str(&dest),
        "--passphrase-file",
        path_str(&pass),
    ]);
    run.assert_ok();
    assert!(
        !run.stderr.contains("correct horse"),
        "passphrase in output\n{run}"
    );
    let archive = run.first_line();

    let from_file = Volume::reserve("pass-file");
    volsafe(&[
        "restore",
        &archive,
        "--volume",
        from_file.name(),
        "--passphrase-file",
        path_str(&pass),
    ])
    .assert_ok();
    before.assert_same(&digest(&from_file), "restored with --passphrase-file");

    let from_env = Volume::reserve("pass-env");
    let args = ["restore", archive.as_str(), "--volume", from_env.name()];
    let mut cmd = volsafe_command(&args);
    cmd.env("VOLSAFE_PASSPHRASE", "correct horse battery staple");
    run_volsafe(cmd, &args).assert_ok();
    before.assert_same(&digest(&from_env), "restored with VOLSAFE_PASSPHRASE");

    let wrong = Volume::reserve("pass-wrong");
    let mut cmd = volsafe_command(&["restore", &archive, "--volume", wrong.name()]);
    cmd.env("VOLSAFE_PASSPHRASE", "wrong horse");
    let run = run_volsafe(cmd, &["restore (wrong passphrase)"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(!wrong.exists(), "wrong passphrase created {}", wrong.name());
    assert_no_leftovers(wrong.name());
}

/// `backup --to -` writes the archive to stdout; `restore -` reads it from
/// stdin; standard tools read the same bytes.
#[test]
fn archive_through_stdout_and_stdin() {
    let src = Volume::new("pipe");
    fill(&src, "echo piped > /v/p && ln -s p /v/l");
    let before = digest(&src);
    let key = AgeKey::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stream.tar.zst.age");

    let args = [
        "backup",
        src.name(),
        "--to",
        "-",
        "-r",
        key.recipient.as_str(),
    ];
    let mut cmd = volsafe_command(&args);
    cmd.stdout(File::create(&file).unwrap());
    run_volsafe(cmd, &args).assert_ok();
    assert_no_leftovers(src.name());
    let list = sh(&format!(
        "age -d -i {} {} | zstd -d -q | tar -t",
        quote(key.identity()),
        quote(path_str(&file))
    ));
    assert!(String::from_utf8_lossy(&list.stdout).contains("./p"));

    let target = Volume::reserve("pipe-restored");
    let args = [
        "restore",
        "-",
        "--volume",
        target.name(),
        "-i",
        key.identity(),
    ];
    let mut cmd = volsafe_command(&args);
    cmd.stdin(File::open(&file).unwrap());
    run_volsafe(cmd, &args).assert_ok();
    before.assert_same(&digest(&target), "restored from stdin");
}
