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
    let (_, recipient) = crate::archive::crypto::new_identity();
    std::fs::write(dir.path().join("recipients"), recipient).unwrap();
    std::fs::write(dir.path().join("ignore.toml"), "").unwrap();
    let text = example
        .replace(
            "/etc/volsafe/recipients",
            &dir.path().join("recipients").display().to_string(),
        )
        .replace(
            "/etc/volsafe/ignore.toml",
            &dir.path().join("ignore.toml").display().to_string(),
        );
    let c = parse(&dir.path().join("schedule.toml"), &text).unwrap();
    assert_eq!(c.jobs.len(), 3);
    assert_eq!(c.jobs[0].policy.daily, 14);
    assert_eq!(c.jobs[0].policy.weekly, 4);
    assert_eq!(c.jobs[1].selector.as_deref(), Some("volsafe.backup=true"));
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
