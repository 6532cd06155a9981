//! The ignore file: findings someone has looked at and accepted, each with a
//! reason and, optionally, an expiry date.
//!
//! ```toml
//! [[ignore]]
//! id = "VOL001"                       # required, a rule ID
//! container = "volsafe-scheduler"     # optional, exact container/service name
//! volume = "pgdata"                   # optional, one of the finding's volumes
//! path = "/var/run/docker.sock"       # optional, the mount's source or destination
//! reason = "the scheduler needs the Docker API"   # required
//! expires = "2027-06-30"              # optional; suppresses through that day (UTC)
//! ```
//!
//! Every given key must match. Unknown keys are an error, so a typo never
//! turns an entry into one that silently suppresses nothing (or everything).
//! An expired entry stops suppressing and says so.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde::Deserialize;
use time::Date;

use super::{paths, Finding, RULES};
use crate::error::usage;

/// The parsed ignore file.
#[derive(Debug, Clone, Default)]
pub struct Ignores {
    /// The file, as named on the command line, for notes.
    file: String,
    entries: Vec<Entry>,
}

/// One `[[ignore]]` entry, checked.
#[derive(Debug, Clone)]
struct Entry {
    id: &'static str,
    container: Option<String>,
    volume: Option<String>,
    /// Normalized.
    path: Option<String>,
    reason: String,
    /// Last day (UTC) on which the entry suppresses.
    expires: Option<Date>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    ignore: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    id: toml::Spanned<String>,
    container: Option<toml::Spanned<String>>,
    volume: Option<toml::Spanned<String>>,
    path: Option<toml::Spanned<String>>,
    reason: toml::Spanned<String>,
    /// A string `"2027-06-30"` or a TOML date `2027-06-30`.
    expires: Option<toml::Spanned<toml::Value>>,
}

const HINT: &str = "each [[ignore]] entry takes id, reason, and optionally container, volume, path and expires = \"YYYY-MM-DD\" (see docs/checks.md)";

/// Reads and checks an ignore file.
pub fn load(path: &Path) -> Result<Ignores> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        usage(
            format!("cannot read ignore file {file}: {e}"),
            "check the path of the ignore file",
        )
    })?;
    parse(&file, &text)
}

/// Parses the text of an ignore file named `file`.
fn parse(file: &str, text: &str) -> Result<Ignores> {
    let line_of = |offset: usize| crate::error::line_of(text, offset);
    let raw: RawFile = toml::from_str(text)
        .map_err(|e| crate::error::toml_syntax(&format!("ignore file {file}"), text, &e, HINT))?;
    let err = |span: std::ops::Range<usize>, what: String, hint: &str| {
        usage(
            format!("ignore file {file}, line {}: {what}", line_of(span.start)),
            hint,
        )
    };
    let non_empty = |key: &str, value: Option<toml::Spanned<String>>| -> Result<Option<String>> {
        match value {
            Some(v) if v.get_ref().trim().is_empty() => Err(err(
                v.span(),
                format!("{key} is empty"),
                "give a value or remove the key",
            )),
            Some(v) => Ok(Some(v.into_inner())),
            None => Ok(None),
        }
    };

    let mut entries = Vec::new();
    for raw in raw.ignore {
        let id = match RULES.iter().find(|r| r.id == raw.id.get_ref().as_str()) {
            Some(rule) => rule.id,
            None => {
                let given = raw.id.get_ref();
                let hint = match RULES
                    .iter()
                    .find(|r| r.id.eq_ignore_ascii_case(given.trim()))
                {
                    Some(rule) => format!("did you mean {}?", rule.id),
                    None => "use a check ID from docs/checks.md, such as VOL001".to_owned(),
                };
                return Err(err(
                    raw.id.span(),
                    format!("unknown check ID {given:?}"),
                    &hint,
                ));
            }
        };
        if raw.reason.get_ref().trim().is_empty() {
            return Err(err(
                raw.reason.span(),
                "reason is empty".to_owned(),
                "say why the finding is accepted, for whoever reads this file next",
            ));
        }
        let expires = match raw.expires {
            Some(v) => Some(parse_date(v.get_ref()).ok_or_else(|| {
                err(
                    v.span(),
                    format!("expires is not a date: {}", v.get_ref()),
                    "write the date as \"YYYY-MM-DD\", such as \"2027-06-30\"",
                )
            })?),
            None => None,
        };
        entries.push(Entry {
            id,
            container: non_empty("container", raw.container)?,
            volume: non_empty("volume", raw.volume)?,
            path: non_empty("path", raw.path)?.map(|p| paths::normalize(&p)),
            reason: raw.reason.into_inner().trim().to_owned(),
            expires,
        });
    }
    Ok(Ignores {
        file: file.to_owned(),
        entries,
    })
}

/// A `YYYY-MM-DD` string or a TOML local date.
fn parse_date(value: &toml::Value) -> Option<Date> {
    match value {
        toml::Value::String(s) => {
            let format = time::macros::format_description!("[year]-[month]-[day]");
            Date::parse(s.trim(), format).ok()
        }
        toml::Value::Datetime(dt) if dt.time.is_none() && dt.offset.is_none() => {
            let d = dt.date?;
            let month = time::Month::try_from(d.month).ok()?;
            Date::from_calendar_date(i32::from(d.year), month, d.day).ok()
        }
        _ => None,
    }
}

impl Entry {
    fn matches(&self, f: &Finding) -> bool {
        f.rule.id == self.id
            && self
                .container
                .as_ref()
                .is_none_or(|c| f.container.as_ref() == Some(c))
            && self.volume.as_ref().is_none_or(|v| f.volumes.contains(v))
            && self.path.as_ref().is_none_or(|p| {
                [&f.source, &f.destination]
                    .into_iter()
                    .flatten()
                    .any(|s| paths::normalize(s) == *p)
            })
    }

    fn expired(&self, today: Date) -> bool {
        self.expires.is_some_and(|last| today > last)
    }

    /// `VOL001, container x, volume y, path /z`.
    fn describe(&self) -> String {
        let mut s = self.id.to_owned();
        if let Some(c) = &self.container {
            let _ = write!(s, ", container {c}");
        }
        if let Some(v) = &self.volume {
            let _ = write!(s, ", volume {v}");
        }
        if let Some(p) = &self.path {
            let _ = write!(s, ", path {p}");
        }
        s
    }
}

impl Ignores {
    /// No ignore file: nothing is suppressed.
    pub fn empty() -> Self {
        Ignores::default()
    }

    /// How many entries the file has.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Marks the findings that an entry in force matches as suppressed
    /// (with the first matching entry's reason), and returns one note per
    /// expired entry. An entry suppresses through its `expires` day.
    pub fn apply(&self, findings: &mut [Finding], today: Date) -> Vec<String> {
        for f in findings.iter_mut().filter(|f| f.suppressed.is_none()) {
            if let Some(e) = self
                .entries
                .iter()
                .find(|e| !e.expired(today) && e.matches(f))
            {
                f.suppressed = Some(e.reason.clone());
            }
        }
        let mut notes = Vec::new();
        for (n, e) in self.entries.iter().enumerate() {
            let Some(last) = e.expires.filter(|_| e.expired(today)) else {
                continue;
            };
            let hits = findings.iter().filter(|f| e.matches(f)).count();
            let mut note = format!(
                "ignore file {}: entry {} ({}) expired on {last} and no longer suppresses",
                self.file,
                n + 1,
                e.describe()
            );
            if hits > 0 {
                let _ = write!(
                    note,
                    " ({hits} finding{} shown again)",
                    if hits == 1 { "" } else { "s" }
                );
            }
            notes.push(note);
        }
        notes
    }

    /// One note per entry in force that matches none of `findings`. Only
    /// meaningful when every check ran on everything (`volsafe check`, not
    /// the checks before a backup).
    pub fn unused(&self, findings: &[Finding], today: Date) -> Vec<String> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.expired(today) && !findings.iter().any(|f| e.matches(f)))
            .map(|(n, e)| {
                format!(
                    "ignore file {}: entry {} ({}) matches no finding; remove it if the problem is gone",
                    self.file,
                    n + 1,
                    e.describe()
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Severity;
    use crate::error::{find_user_error, Kind};
    use time::macros::date;

    fn finding(id: &str, container: &str, volumes: &[&str], src: &str, dst: &str) -> Finding {
        let mut f = Finding::new(id, Severity::High, "m");
        f.container = Some(container.to_owned());
        f.volumes = volumes.iter().map(|v| v.to_string()).collect();
        f.source = Some(src.to_owned());
        f.destination = Some(dst.to_owned());
        f
    }

    fn findings() -> Vec<Finding> {
        vec![
            finding(
                "VOL001",
                "volsafe-scheduler",
                &["state"],
                "/var/run/docker.sock",
                "/var/run/docker.sock",
            ),
            finding("VOL001", "web", &["data"], "/run/docker.sock", "/sock"),
            finding("VOL002", "db", &["pgdata"], "/etc", "/host/etc"),
            finding("RUN006", "db", &["pgdata", "logs"], "", ""),
        ]
    }

    fn suppressed(text: &str, today: Date) -> (Vec<bool>, Vec<String>) {
        let ig = parse("ignore.toml", text).unwrap();
        let mut fs = findings();
        let notes = ig.apply(&mut fs, today);
        (fs.iter().map(|f| f.suppressed.is_some()).collect(), notes)
    }

    fn usage_message(text: &str) -> String {
        let err = parse("ignore.toml", text).unwrap_err();
        let user = find_user_error(&err).expect("a UserError");
        assert_eq!(user.kind, Kind::Usage);
        assert!(user.hint.is_some());
        user.message.clone()
    }

    const TODAY: Date = date!(2026 - 03 - 01);

    #[test]
    fn id_alone_matches_every_finding_of_that_rule() {
        let (s, notes) = suppressed("[[ignore]]\nid = \"VOL001\"\nreason = \"r\"\n", TODAY);
        assert_eq!(s, [true, true, false, false]);
        assert!(notes.is_empty());
    }

    #[test]
    fn match_by_container() {
        let text = "[[ignore]]\nid = \"VOL001\"\ncontainer = \"volsafe-scheduler\"\nreason = \"needs the API\"\n";
        let ig = parse("ignore.toml", text).unwrap();
        let mut fs = findings();
        ig.apply(&mut fs, TODAY);
        assert_eq!(fs[0].suppressed.as_deref(), Some("needs the API"));
        assert!(fs[1].suppressed.is_none());
        // Exact names only.
        let (s, _) = suppressed(
            "[[ignore]]\nid = \"VOL001\"\ncontainer = \"volsafe\"\nreason = \"r\"\n",
            TODAY,
        );
        assert_eq!(s, [false; 4]);
    }

    #[test]
    fn match_by_volume() {
        let (s, _) = suppressed(
            "[[ignore]]\nid = \"RUN006\"\nvolume = \"logs\"\nreason = \"r\"\n",
            TODAY,
        );
        assert_eq!(s, [false, false, false, true]);
        let (s, _) = suppressed(
            "[[ignore]]\nid = \"VOL002\"\nvolume = \"logs\"\nreason = \"r\"\n",
            TODAY,
        );
        assert_eq!(s, [false; 4]);
    }

    #[test]
    fn match_by_path_source_or_destination_normalized() {
        let (s, _) = suppressed(
            "[[ignore]]\nid = \"VOL001\"\npath = \"/var/run/./docker.sock/\"\nreason = \"r\"\n",
            TODAY,
        );
        assert_eq!(s, [true, false, false, false]);
        let (s, _) = suppressed(
            "[[ignore]]\nid = \"VOL002\"\npath = \"/host/etc\"\nreason = \"r\"\n",
            TODAY,
        );
        assert_eq!(s, [false, false, true, false]);
        // Whole paths, not prefixes.
        let (s, _) = suppressed(
            "[[ignore]]\nid = \"VOL002\"\npath = \"/et\"\nreason = \"r\"\n",
            TODAY,
        );
        assert_eq!(s, [false; 4]);
    }

    #[test]
    fn every_key_given_must_match() {
        let (s, _) = suppressed(
            "[[ignore]]\nid = \"VOL001\"\ncontainer = \"web\"\nvolume = \"state\"\nreason = \"r\"\n",
            TODAY,
        );
        assert_eq!(s, [false; 4]);
    }

    #[test]
    fn expiry_day_itself_still_suppresses() {
        let text = "[[ignore]]\nid = \"VOL002\"\nreason = \"r\"\nexpires = \"2026-03-01\"\n";
        let (s, notes) = suppressed(text, date!(2026 - 03 - 01));
        assert_eq!(s, [false, false, true, false]);
        assert!(notes.is_empty());
        let (s, _) = suppressed(text, date!(2026 - 02 - 01));
        assert_eq!(s, [false, false, true, false]);
    }

    #[test]
    fn expired_entry_stops_suppressing_and_says_so() {
        let text = "[[ignore]]\nid = \"VOL001\"\nreason = \"r\"\n\n[[ignore]]\nid = \"VOL002\"\ncontainer = \"db\"\nreason = \"r\"\nexpires = \"2026-01-01\"\n";
        let (s, notes) = suppressed(text, date!(2026 - 01 - 02));
        assert_eq!(s, [true, true, false, false]);
        assert_eq!(
            notes,
            ["ignore file ignore.toml: entry 2 (VOL002, container db) expired on 2026-01-01 and no longer suppresses (1 finding shown again)"]
        );
    }

    #[test]
    fn toml_date_is_accepted_too() {
        let text = "[[ignore]]\nid = \"VOL002\"\nreason = \"r\"\nexpires = 2026-01-01\n";
        let (s, notes) = suppressed(text, date!(2026 - 01 - 02));
        assert_eq!(s, [false; 4]);
        assert_eq!(notes.len(), 1);
    }

    #[test]
    fn unused_entries_are_named() {
        let text = "[[ignore]]\nid = \"VOL001\"\nreason = \"r\"\n\n[[ignore]]\nid = \"NET001\"\nreason = \"r\"\n";
        let ig = parse("i.toml", text).unwrap();
        let notes = ig.unused(&findings(), TODAY);
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("entry 2 (NET001)"), "{notes:?}");
    }

    #[test]
    fn empty_file_and_empty() {
        assert!(parse("i.toml", "").unwrap().is_empty());
        let mut fs = findings();
        assert!(Ignores::empty().apply(&mut fs, TODAY).is_empty());
        assert!(fs.iter().all(|f| f.suppressed.is_none()));
    }

    #[test]
    fn unknown_id_is_an_error() {
        let m = usage_message("[[ignore]]\nid = \"VOL999\"\nreason = \"r\"\n");
        assert!(
            m.contains("ignore.toml, line 2") && m.contains("VOL999"),
            "{m}"
        );
        let err = parse("i.toml", "[[ignore]]\nid = \"vol001\"\nreason = \"r\"\n").unwrap_err();
        let hint = find_user_error(&err).unwrap().hint.clone().unwrap();
        assert!(hint.contains("VOL001"), "{hint}");
    }

    #[test]
    fn unknown_key_is_an_error() {
        let m = usage_message("[[ignore]]\nid = \"VOL001\"\ncontainr = \"x\"\nreason = \"r\"\n");
        assert!(
            m.contains("ignore.toml, line 3") && m.contains("containr"),
            "{m}"
        );
        let m = usage_message("[[ignores]]\nid = \"VOL001\"\nreason = \"r\"\n");
        assert!(m.contains("ignores"), "{m}");
    }

    #[test]
    fn missing_or_empty_reason_is_an_error() {
        let m = usage_message("[[ignore]]\nid = \"VOL001\"\nreason = \"  \"\n");
        assert!(m.contains("line 3") && m.contains("reason"), "{m}");
        let m = usage_message("[[ignore]]\nid = \"VOL001\"\n");
        assert!(m.contains("reason"), "{m}");
    }

    #[test]
    fn empty_matcher_is_an_error() {
        let m = usage_message("[[ignore]]\nid = \"VOL001\"\ncontainer = \"\"\nreason = \"r\"\n");
        assert!(m.contains("container is empty"), "{m}");
    }

    #[test]
    fn bad_date_is_an_error() {
        for bad in [
            "\"2026-13-01\"",
            "\"30.06.2027\"",
            "\"2027-06-31\"",
            "\"tomorrow\"",
            "2027-06-30T10:00:00Z",
            "1",
        ] {
            let m = usage_message(&format!(
                "[[ignore]]\nid = \"VOL001\"\nreason = \"r\"\nexpires = {bad}\n"
            ));
            assert!(m.contains("line 4") && m.contains("expires"), "{bad}: {m}");
        }
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let m = usage_message("[[ignore]]\nid = \"VOL001\"\nreason = r\n");
        assert!(m.starts_with("ignore file ignore.toml, line 3:"), "{m}");
    }

    #[test]
    fn load_reads_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ignore.toml");
        std::fs::write(&p, "[[ignore]]\nid = \"VOL001\"\nreason = \"r\"\n").unwrap();
        assert_eq!(load(&p).unwrap().len(), 1);
        let err = load(&dir.path().join("missing.toml")).unwrap_err();
        assert_eq!(find_user_error(&err).unwrap().kind, Kind::Usage);
    }
}
