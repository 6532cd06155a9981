//! `volsafe keygen`: identities that Debian's `age` accepts, written
//! safely.

use std::os::unix::fs::PermissionsExt;

use crate::common::{path_str, sh, volsafe};

#[test]
fn keygen_output_is_0600_and_works_with_age() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.txt");
    let run = volsafe(&["keygen", "--output", path_str(&key)]);
    run.assert_ok();
    let recipient = run.stdout.trim().to_owned();
    assert!(recipient.starts_with("age1"), "recipient on stdout\n{run}");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "key file mode {mode:o}");

    let out = sh(&format!(
        "echo sealed | age -r {recipient} | age -d -i {}",
        path_str(&key)
    ));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "sealed\n");
}

#[test]
fn keygen_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.txt");
    std::fs::write(&key, "precious").unwrap();
    let run = volsafe(&["keygen", "--output", path_str(&key)]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains(path_str(&key)), "path not named\n{run}");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), "precious");
}

/// Without `--output`: the identity on stdout, the recipient on stderr,
/// as `age-keygen` does.
#[test]
fn keygen_to_stdout_like_age_keygen() {
    let run = volsafe(&["keygen"]);
    run.assert_ok();
    assert!(
        run.stdout.contains("AGE-SECRET-KEY-1"),
        "identity on stdout\n{run}"
    );
    assert!(run.stderr.contains("age1"), "recipient on stderr\n{run}");
}
