//! The config file's checks: defaults, line numbers, unknown keys, and
//! the example in docs/schedule.md.

use super::*;

fn parse_text(text: &str) -> Result<Config> {
    parse(Path::new("/etc/volsafe/schedule.toml"), text)
}

fn message(text: &str) -> String {
    format!("{:#}", parse_text(text).unwrap_err())
}

const GOOD: &str = r#"
parallel = 2
grace = "2m"

[defaults]
to = "/backups"
no_encryption = true
timezone = "Europe/Berlin"
keep_daily = 7
keep_weekly = 4
check_fail_on = "high"

[[job]]
name = "db"
volumes = ["pgdata"]
cron = "30 2 * * *"
stop_containers = true
keep_daily = 14

[[job]]
name = "labelled"
selector = "volsafe.backup=true"
cron = "*/10 * * * * *"
timezone = "UTC"
to = "archives"
skip_check = true
"#;

#[test]
fn defaults_are_merged_key_by_key() {
    let c = parse_text(GOOD).unwrap();
    assert_eq!(c.parallel, 2);
    assert_eq!(c.grace, Duration::from_secs(120));
    let db = &c.jobs[0];
    assert_eq!(db.volumes, ["pgdata"]);
    assert_eq!(db.schedule.tz, chrono_tz::Europe::Berlin);
    assert_eq!(db.policy.daily, 14);
    assert_eq!(db.policy.weekly, 4);
    assert!(db.stop_containers);
    assert_eq!(db.check.as_ref().unwrap().fail_on, Some(Severity::High));
    assert_eq!(db.to, PathBuf::from("/backups"));
    let l = &c.jobs[1];
    assert_eq!(l.selector.as_deref(), Some("volsafe.backup=true"));
    assert_eq!(l.schedule.tz, Tz::UTC);
    assert!(l.check.is_none());
    assert!(!l.stop_containers);
    // Relative to the config file.
    assert_eq!(l.to, PathBuf::from("/etc/volsafe/archives"));
}

#[test]
fn defaults_apply_when_top_level_is_absent() {
    let c = parse_text(
        "[[job]]\nname = \"a\"\nvolumes = [\"vol\"]\ncron = \"0 3 * * *\"\nto = \"/b\"\nno_encryption = true\n",
    )
    .unwrap();
    assert_eq!(c.parallel, 1);
    assert_eq!(c.grace, DEFAULT_GRACE);
    assert!(c.jobs[0].policy.is_empty());
}

#[test]
fn unknown_keys_name_the_file_and_line() {
    let text = GOOD.replace("stop_containers = true", "stop_container = true");
    let m = message(&text);
    assert!(m.contains("/etc/volsafe/schedule.toml, line 17"), "{m}");
    assert!(m.contains("stop_container"), "{m}");
    let m = message(&GOOD.replace("[defaults]", "[default]"));
    assert!(m.contains("line 5"), "{m}");
}

#[test]
fn bad_cron_and_timezone_name_their_line() {
    let m = message(&GOOD.replace("30 2 * * *", "30 2 * *"));
    assert!(m.contains("line 16") && m.contains("job db: cron"), "{m}");
    let m = message(&GOOD.replace("\"Europe/Berlin\"", "\"Europe/Berlim\""));
    assert!(m.contains("line 8") && m.contains("Europe/Berlim"), "{m}");
    let m = message(&GOOD.replace("\"high\"", "\"severe\""));
    assert!(m.contains("line 11") && m.contains("severe"), "{m}");
}

#[test]
fn incomplete_jobs_are_refused() {
    let m =
        message("[[job]]\nname = \"a\"\ncron = \"0 3 * * *\"\nto = \"/b\"\nno_encryption = true\n");
    assert!(
        m.contains("line 1") && m.contains("no volumes and no selector"),
        "{m}"
    );
    let m =
        message("[[job]]\nname = \"a\"\nvolumes = [\"vol\"]\nto = \"/b\"\nno_encryption = true\n");
    assert!(m.contains("no cron"), "{m}");
    let m =
        message("[[job]]\nname = \"a\"\nvolumes = [\"vol\"]\ncron = \"0 3 * * *\"\nto = \"/b\"\n");
    assert!(m.contains("no recipient"), "{m}");
    let m = message("parallel = 0\n[[job]]\nname = \"a\"\n");
    assert!(m.contains("parallel = 0"), "{m}");
    assert!(message("").contains("no [[job]]"));
    let dup = format!("{GOOD}\n[[job]]\nname = \"db\"\nvolumes = [\"x\"]\ncron = \"0 3 * * *\"\n");
    assert!(message(&dup).contains("used twice"));
}

/// The complete example in docs/schedule.md is valid.
#[test]
fn the_documented_example_parses() {
    let doc = include_str!("../../../docs/schedule.md");
    let example = doc
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a toml block in docs/schedule.md");
    let dir = tempfile::tempdir().unwrap();
    let recipient = identity(dir.path(), "identity");
    std::fs::write(dir.path().join("recipients"), recipient).unwrap();
    std::fs::write(dir.path().join("ignore.toml"), "").unwrap();
    let mut text = example.to_owned();
    for file in ["recipients", "identity", "ignore.toml"] {
        let path = dir.path().join(file).display().to_string();
        text = text.replace(&format!("/etc/volsafe/{file}"), &path);
    }
    let c = parse(&dir.path().join("schedule.toml"), &text).unwrap();
    assert_eq!(c.jobs.len(), 3);
    assert_eq!(c.jobs[0].policy.daily, 14);
    assert_eq!(c.jobs[0].policy.weekly, 4);
    assert!(c.jobs[0].drill.as_ref().is_some_and(|d| d.after_backup));
    assert_eq!(c.jobs[1].selector.as_deref(), Some("volsafe.backup=true"));
    let weekly = c.jobs[1].drill.as_ref().and_then(|d| d.schedule.as_ref());
    assert_eq!(weekly.map(|s| s.expr.as_str()), Some("0 4 * * 0"));
    assert!(c.jobs[2].drill.is_none());
}

#[test]
fn a_notification_url_must_be_http_or_https() {
    let text = GOOD.replace(
        "check_fail_on",
        "notify_url = \"ftp://example.invalid/x\"\ncheck_fail_on",
    );
    let m = message(&text);
    assert!(m.contains("notify_url") && m.contains("ftp"), "{m}");
}

/// Writes a new age identity to `dir/file`; returns its recipient.
fn identity(dir: &Path, file: &str) -> String {
    use age::secrecy::ExposeSecret;
    let (secret, recipient) = crate::archive::crypto::new_identity();
    std::fs::write(dir.join(file), secret.expose_secret()).unwrap();
    recipient
}

/// One job, encrypted to `recipient`, with `extra` lines from line 7 on.
fn drill_job(recipient: &str, extra: &str) -> String {
    format!(
        "[[job]]\nname = \"db\"\nvolumes = [\"pgdata\"]\ncron = \"30 2 * * *\"\nto = \"/b\"\nrecipients = [\"{recipient}\"]\n{extra}"
    )
}

#[test]
fn drill_keys_are_merged_key_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let recipient = identity(dir.path(), "key.txt");
    let text = format!(
        r#"
[defaults]
to = "/backups"
recipients = ["{recipient}"]
drill_identity = "key.txt"
drill_cron = "0 4 * * 0"
drill_max_age = "26h"
timezone = "Europe/Berlin"

[[job]]
name = "db"
volumes = ["pgdata"]
cron = "30 2 * * *"
drill = true

[[job]]
name = "files"
volumes = ["files"]
cron = "0 3 * * *"
drill_cron = ""

[[job]]
name = "plain"
volumes = ["plain"]
cron = "0 5 * * *"
no_encryption = true
timezone = "UTC"
drill_cron = "0 6 * * *"
drill_max_age = "8days"
"#
    );
    let c = parse(&dir.path().join("schedule.toml"), &text).unwrap();
    let db = c.jobs[0].drill.as_ref().expect("db drills");
    assert!(db.after_backup);
    let s = db
        .schedule
        .as_ref()
        .expect("a drill schedule from [defaults]");
    assert_eq!(
        (s.expr.as_str(), s.tz),
        ("0 4 * * 0", chrono_tz::Europe::Berlin)
    );
    // Relative to the config file.
    assert_eq!(db.identity_files, [dir.path().join("key.txt")]);
    assert_eq!(db.max_age, Some(Duration::from_secs(26 * 3600)));
    // An empty drill_cron turns the default off; drill is off by default.
    assert!(c.jobs[1].drill.is_none());
    let plain = c.jobs[2].drill.as_ref().expect("plain drills");
    assert!(!plain.after_backup);
    let s = plain.schedule.as_ref().unwrap();
    assert_eq!((s.expr.as_str(), s.tz), ("0 6 * * *", Tz::UTC));
    assert_eq!(plain.max_age, Some(Duration::from_secs(8 * 86400)));
    // Jobs without drills: nothing to decrypt, nothing checked.
    assert!(parse_text(GOOD)
        .unwrap()
        .jobs
        .iter()
        .all(|j| j.drill.is_none()));
}

/// Drills of archives encrypted to recipients need an identity: refused
/// at start, naming the line that asked for drills.
#[test]
fn a_drill_without_a_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let recipient = identity(dir.path(), "key.txt");
    let m = message(&drill_job(&recipient, "drill = true\n"));
    assert!(
        m.contains("/etc/volsafe/schedule.toml, line 7") && m.contains("job db: drills need a key"),
        "{m}"
    );
    let m = message(&drill_job(
        &recipient,
        "skip_check = true\ndrill_cron = \"0 4 * * *\"\n",
    ));
    assert!(
        m.contains("line 8") && m.contains("drills need a key"),
        "{m}"
    );
    // drill = false asks for nothing.
    parse_text(&drill_job(&recipient, "drill = false\n")).unwrap();

    // A passphrase job drills with its passphrase; an unencrypted one
    // needs no key.
    std::fs::write(dir.path().join("pass"), "correct horse\n").unwrap();
    let text = "[[job]]\nname = \"p\"\nvolumes = [\"vol\"]\ncron = \"0 3 * * *\"\nto = \"/b\"\n\
                passphrase_file = \"pass\"\ndrill = true\n";
    let c = parse(&dir.path().join("schedule.toml"), text).unwrap();
    let d = c.jobs[0].drill.as_ref().unwrap();
    assert_eq!(d.passphrase_file, Some(dir.path().join("pass")));
    let text = text.replace("passphrase_file = \"pass\"", "no_encryption = true");
    parse(&dir.path().join("schedule.toml"), &text).unwrap();
}

/// An identity of another key, or one that cannot be read, is refused at
/// its own line; a list works when one of its identities fits.
#[test]
fn a_drill_identity_must_open_the_archives() {
    let dir = tempfile::tempdir().unwrap();
    let recipient = identity(dir.path(), "key.txt");
    identity(dir.path(), "other.txt");
    let config = dir.path().join("schedule.toml");
    let with = |extra: &str| parse(&config, &drill_job(&recipient, extra));
    let m = format!(
        "{:#}",
        with("drill = true\ndrill_identity = \"other.txt\"\n").unwrap_err()
    );
    assert!(
        m.contains("line 8") && m.contains("matches none of the job's recipients"),
        "{m}"
    );
    let m = format!(
        "{:#}",
        with("drill = true\ndrill_identity = \"missing.txt\"\n").unwrap_err()
    );
    assert!(m.contains("line 8") && m.contains("missing.txt"), "{m}");
    let c = with("drill = true\ndrill_identity = [\"other.txt\", \"key.txt\"]\n").unwrap();
    assert_eq!(c.jobs[0].drill.as_ref().unwrap().identity_files.len(), 2);
}

#[test]
fn bad_drill_values_name_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let recipient = identity(dir.path(), "key.txt");
    let config = dir.path().join("schedule.toml");
    let m = |extra: &str| {
        format!(
            "{:#}",
            parse(&config, &drill_job(&recipient, extra)).unwrap_err()
        )
    };
    let keys = "drill_identity = \"key.txt\"\n";
    let e = m(&format!("{keys}drill_cron = \"0 4 * *\"\n"));
    assert!(
        e.contains("line 8") && e.contains("job db: drill_cron"),
        "{e}"
    );
    let e = m(&format!("{keys}drill = true\ndrill_max_age = \"soon\"\n"));
    assert!(e.contains("line 9") && e.contains("drill_max_age"), "{e}");
    let e = m(&format!("{keys}drill = \"yes\"\n"));
    assert!(e.contains("line 8"), "{e}");
    // The key is drill_cron, like cron; a near miss is named.
    let e = m(&format!("{keys}drill_schedule = \"0 4 * * *\"\n"));
    assert!(e.contains("line 8") && e.contains("drill_schedule"), "{e}");
    let e = m("drill_identities = [\"key.txt\"]\n");
    assert!(
        e.contains("line 7") && e.contains("drill_identities"),
        "{e}"
    );
}

/// A drill key written in a job that never drills is refused at its line;
/// the same keys inherited from [defaults] by such a job are fine (see
/// `drill_keys_are_merged_key_by_key`).
#[test]
fn drill_keys_without_drills_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let recipient = identity(dir.path(), "key.txt");
    let config = dir.path().join("schedule.toml");
    let m = |extra: &str| {
        format!(
            "{:#}",
            parse(&config, &drill_job(&recipient, extra)).unwrap_err()
        )
    };
    let e = m("drill_max_age = \"26h\"\n");
    assert!(
        e.contains("line 7")
            && e.contains("job db: drill_max_age is set, but the job never drills"),
        "{e}"
    );
    let e = m("drill = false\ndrill_identity = \"key.txt\"\n");
    assert!(
        e.contains("line 8") && e.contains("drill_identity is set, but the job never drills"),
        "{e}"
    );
}
