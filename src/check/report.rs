//! Showing findings: text for an operator, JSON for scripts, SARIF 2.1.0
//! for code-scanning tools (GitHub code scanning among them).
//!
//! Findings arrive already redacted by the rules; nothing here adds a value
//! that a finding does not already carry.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Component, Path};

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::{Finding, Location, Severity, RULES};

/// What one `volsafe check` found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
    /// Things the operator should know that are not findings (expired
    /// ignore entries, for example).
    pub notes: Vec<String>,
    /// What was checked: `docker daemon at unix:///var/run/docker.sock`,
    /// `compose file compose.yml`.
    pub scope: String,
}

/// Most severe first.
const ORDER: [Severity; 5] = [
    Severity::Critical,
    Severity::High,
    Severity::Medium,
    Severity::Low,
    Severity::Info,
];

impl Report {
    fn active(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.suppressed.is_none())
    }

    fn suppressed(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.suppressed.is_some())
    }

    fn count(&self, severity: Severity) -> usize {
        self.active().filter(|f| f.severity == severity).count()
    }
}

/// Findings in a stable order: by rule, then what they are about.
fn sorted<'a>(findings: impl Iterator<Item = &'a Finding>) -> Vec<&'a Finding> {
    let mut v: Vec<&Finding> = findings.collect();
    v.sort_by(|a, b| {
        (
            a.rule.id,
            &a.container,
            &a.volumes,
            &a.source,
            &a.destination,
        )
            .cmp(&(
                b.rule.id,
                &b.container,
                &b.volumes,
                &b.source,
                &b.destination,
            ))
    });
    v
}

// ---------------------------------------------------------------- text

/// Control characters (a path in a compose file may hold any) are shown
/// escaped so they cannot drive the terminal.
pub fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn paint(s: &str, severity: Severity, color: bool) -> String {
    if !color {
        return s.to_owned();
    }
    let code = match severity {
        Severity::Critical => "1;31",
        Severity::High => "31",
        Severity::Medium => "33",
        Severity::Low => "36",
        Severity::Info => "2",
    };
    format!("\x1b[{code}m{s}\x1b[0m")
}

/// `container "web", volume "data", mount /a -> /b`; the title when the
/// finding is about none of these.
fn subject(f: &Finding) -> String {
    let mut parts = Vec::new();
    if let Some(c) = &f.container {
        parts.push(format!("container \"{}\"", clean(c)));
    }
    match f.volumes.as_slice() {
        [] => {}
        [v] => parts.push(format!("volume \"{}\"", clean(v))),
        vs => parts.push(format!(
            "volumes {}",
            vs.iter()
                .map(|v| format!("\"{}\"", clean(v)))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
    let src = f.source.as_deref().filter(|s| !s.is_empty());
    let dst = f.destination.as_deref().filter(|s| !s.is_empty());
    match (src, dst) {
        (Some(s), Some(d)) => parts.push(format!("mount {} -> {}", clean(s), clean(d))),
        (Some(s), None) => parts.push(format!("mount {}", clean(s))),
        (None, Some(d)) => parts.push(format!("mount at {}", clean(d))),
        (None, None) => {}
    }
    if parts.is_empty() {
        f.rule.title.to_owned()
    } else {
        parts.join(", ")
    }
}

fn text_finding(out: &mut String, f: &Finding, color: bool) {
    let _ = writeln!(
        out,
        "  {} {}  {}",
        f.rule.id,
        paint(f.severity.as_str(), f.severity, color),
        subject(f)
    );
    let _ = writeln!(out, "      {}", clean(&f.message));
    let _ = writeln!(out, "      fix: {}", clean(&f.remediation));
    if let Some(l) = &f.location {
        let _ = writeln!(
            out,
            "      at {}:{}",
            clean(&l.file.display().to_string()),
            l.line
        );
    }
    if let Some(reason) = &f.suppressed {
        let _ = writeln!(out, "      suppressed: {}", clean(reason));
    }
}

/// From this many low or info findings of one rule on, the text report
/// shows them as one entry (JSON and SARIF list each), unless they point
/// into a compose file: then each keeps its line.
const GROUP_AT: usize = 4;

/// One entry for many low-severity findings of one rule: the title, the
/// containers (or volumes) they are about, and the fix.
fn text_grouped(out: &mut String, group: &[&Finding], color: bool) {
    let first = group[0];
    let mut subjects: Vec<String> = group
        .iter()
        .map(|f| match (&f.container, f.volumes.first()) {
            (Some(c), _) => c.clone(),
            (None, Some(v)) => format!("volume {v}"),
            (None, None) => f.rule.title.to_owned(),
        })
        .collect();
    subjects.dedup();
    const SHOWN: usize = 8;
    let more = subjects.len().saturating_sub(SHOWN);
    subjects.truncate(SHOWN);
    let mut list = subjects.join(", ");
    if more > 0 {
        let _ = write!(list, " and {more} more");
    }
    let _ = writeln!(
        out,
        "  {} {}  {} ({} findings)",
        first.rule.id,
        paint(first.severity.as_str(), first.severity, color),
        first.rule.title,
        group.len()
    );
    let _ = writeln!(out, "      {}", clean(&list));
    let _ = writeln!(out, "      fix: {}", clean(first.rule.remediation));
    let _ = writeln!(out, "      (each is listed with --format json)");
}

/// The report for a terminal or a log: findings grouped by severity, most
/// severe first, then a summary line. ANSI colour only when `color`. Many
/// low or info findings of one rule are shown as one entry.
pub fn text(report: &Report, show_suppressed: bool, color: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "volsafe check: {}", clean(&report.scope));
    for severity in ORDER {
        let group = sorted(report.active().filter(|f| f.severity == severity));
        if group.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "\n{} ({})",
            paint(&severity.as_str().to_uppercase(), severity, color),
            group.len()
        );
        let mut i = 0;
        while i < group.len() {
            let same = group[i..]
                .iter()
                .take_while(|f| f.rule.id == group[i].rule.id)
                .count();
            let unlocated = group[i..i + same].iter().all(|f| f.location.is_none());
            if severity <= Severity::Low && same >= GROUP_AT && unlocated {
                text_grouped(&mut out, &group[i..i + same], color);
            } else {
                for f in &group[i..i + same] {
                    text_finding(&mut out, f, color);
                }
            }
            i += same;
        }
    }
    let suppressed = sorted(report.suppressed());
    if show_suppressed && !suppressed.is_empty() {
        let _ = writeln!(out, "\nSUPPRESSED ({})", suppressed.len());
        for f in &suppressed {
            text_finding(&mut out, f, color);
        }
    }
    if !report.notes.is_empty() {
        out.push('\n');
        for note in &report.notes {
            let _ = writeln!(out, "note: {}", clean(note));
        }
    }
    out.push('\n');
    let total = report.active().count();
    if total == 0 {
        out.push_str("no findings");
    } else {
        let counts: Vec<String> = ORDER
            .iter()
            .map(|&s| format!("{} {}", report.count(s), s.as_str()))
            .collect();
        let _ = write!(
            out,
            "{total} finding{}: {}",
            if total == 1 { "" } else { "s" },
            counts.join(", ")
        );
    }
    if !suppressed.is_empty() {
        let _ = write!(out, "; {} suppressed", suppressed.len());
        if !show_suppressed {
            out.push_str(" (shown with --show-suppressed)");
        }
    }
    out.push('\n');
    out
}

// ---------------------------------------------------------------- JSON

fn location_json(l: &Location) -> Value {
    json!({
        "file": l.file.display().to_string(),
        "line": l.line,
        "column": l.column,
    })
}

fn finding_json(f: &Finding) -> Value {
    let mut v = json!({
        "id": f.rule.id,
        "severity": f.severity.as_str(),
        "title": f.rule.title,
        "container": f.container,
        "volume": if f.volumes.is_empty() { None } else { Some(f.volumes.join(", ")) },
        "volumes": f.volumes,
        "source": f.source,
        "destination": f.destination,
        "message": f.message,
        "remediation": f.remediation,
        "reference": f.rule.reference,
        "location": f.location.as_ref().map(location_json),
    });
    if let Some(reason) = &f.suppressed {
        v["suppressed"] = json!(reason);
    }
    v
}

/// The report as one JSON object: `scope`, `findings`, `suppressed` (the
/// findings with `show_suppressed`, else their count), `summary`, `notes`.
pub fn json(report: &Report, show_suppressed: bool) -> Value {
    let findings: Vec<Value> = ORDER
        .iter()
        .flat_map(|&s| sorted(report.active().filter(move |f| f.severity == s)))
        .map(finding_json)
        .collect();
    let suppressed = sorted(report.suppressed());
    let mut summary = Map::new();
    for s in ORDER {
        summary.insert(s.as_str().to_owned(), json!(report.count(s)));
    }
    summary.insert("suppressed".to_owned(), json!(suppressed.len()));
    json!({
        "scope": report.scope,
        "findings": findings,
        "suppressed": if show_suppressed {
            Value::Array(suppressed.into_iter().map(finding_json).collect())
        } else {
            json!(suppressed.len())
        },
        "summary": summary,
        "notes": report.notes,
    })
}

// ---------------------------------------------------------------- SARIF

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    }
}

/// `runtime socket mounted into a container` → `RuntimeSocketMountedIntoAContainer`.
fn camel(title: &str) -> String {
    title
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut cs = w.chars();
            let first = cs.next().map(|c| c.to_ascii_uppercase());
            first.into_iter().chain(cs).collect::<String>()
        })
        .collect()
}

fn sarif_rule(rule: &super::Rule) -> Value {
    let full = if rule.reference == "-" {
        format!("{}.", capitalize(rule.title))
    } else {
        format!("{}. Reference: {}.", capitalize(rule.title), rule.reference)
    };
    json!({
        "id": rule.id,
        "name": camel(rule.title),
        "shortDescription": { "text": rule.title },
        "fullDescription": { "text": full },
        "help": { "text": rule.remediation },
        "defaultConfiguration": { "level": level(rule.max) },
        "properties": {
            "security-severity": rule.max.score(),
            "tags": ["security"],
        },
    })
}

fn capitalize(s: &str) -> String {
    let mut cs = s.chars();
    match cs.next() {
        Some(c) => c.to_uppercase().chain(cs).collect(),
        None => String::new(),
    }
}

/// Percent-encodes everything but unreserved characters and `/`, so the
/// result is a valid URI path (and a relative one never looks like it has
/// a scheme).
fn encode_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Joins path components with `/`; `None` if one is not plain.
fn slash_join(path: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => parts.push("..".to_owned()),
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

/// The file's URI for SARIF: relative to `cwd` (with `/` separators) when
/// it is relative or under `cwd`, else a `file://` URI of the absolute path.
fn artifact_uri(file: &Path, cwd: Option<&Path>) -> String {
    let relative = if file.is_absolute() {
        cwd.and_then(|cwd| file.strip_prefix(cwd).ok())
            .and_then(slash_join)
    } else {
        slash_join(file)
    };
    match relative {
        Some(r) if !r.is_empty() => encode_path(&r),
        _ => {
            let absolute = match cwd {
                Some(cwd) if !file.is_absolute() => cwd.join(file),
                _ => file.to_path_buf(),
            };
            let path = absolute.to_string_lossy().replace('\\', "/");
            let path = if path.starts_with('/') {
                path
            } else {
                format!("/{path}")
            };
            format!("file://{}", encode_path(&path))
        }
    }
}

/// A hash of what a finding is about, stable across runs and line moves.
fn fingerprint(f: &Finding) -> String {
    let mut h = Sha256::new();
    for part in [
        Some(f.rule.id),
        f.container.as_deref(),
        f.source.as_deref(),
        f.destination.as_deref(),
    ] {
        // A tag per field keeps `None` and `""` apart.
        match part {
            Some(s) => {
                h.update([1u8]);
                h.update((s.len() as u64).to_le_bytes());
                h.update(s.as_bytes());
            }
            None => h.update([0u8]),
        }
    }
    hex::encode(h.finalize())
}

/// The report as a SARIF 2.1.0 log with one run. Only findings with a
/// place in a compose file become results; suppressed ones only with
/// `show_suppressed`, marked as externally suppressed.
pub fn sarif(report: &Report, show_suppressed: bool) -> Value {
    let cwd = std::env::current_dir().ok();
    sarif_in(report, show_suppressed, cwd.as_deref())
}

fn sarif_in(report: &Report, show_suppressed: bool, cwd: Option<&Path>) -> Value {
    let rules: Vec<Value> = RULES.iter().map(sarif_rule).collect();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut results = Vec::new();
    let shown = ORDER.iter().flat_map(|&s| {
        sorted(
            report
                .findings
                .iter()
                .filter(move |f| f.severity == s)
                .filter(|f| show_suppressed || f.suppressed.is_none()),
        )
    });
    for f in shown {
        let Some(loc) = &f.location else {
            continue;
        };
        let index = RULES
            .iter()
            .position(|r| r.id == f.rule.id)
            .expect("a finding's rule is in the catalogue");
        let mut text = f.message.clone();
        if f.remediation != f.rule.remediation {
            let _ = write!(text, "\nFix: {}", f.remediation);
        }
        // Two findings about the same thing keep distinct fingerprints.
        let mut print = fingerprint(f);
        let n = seen.entry(print.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            let _ = write!(print, "/{n}");
        }
        let mut region = Map::new();
        region.insert("startLine".to_owned(), json!(loc.line.max(1)));
        if loc.column >= 1 {
            region.insert("startColumn".to_owned(), json!(loc.column));
        }
        let mut result = json!({
            "ruleId": f.rule.id,
            "ruleIndex": index,
            "level": level(f.severity),
            "message": { "text": text },
            "locations": [{
                "physicalLocation": {
                    "artifactLocation": { "uri": artifact_uri(&loc.file, cwd) },
                    "region": region,
                },
            }],
            "partialFingerprints": { "volsafeFinding/v1": print },
            "properties": { "severity": f.severity.as_str() },
        });
        if let Some(reason) = &f.suppressed {
            result["suppressions"] = json!([{ "kind": "external", "justification": reason }]);
        }
        results.push(result);
    }
    let notifications: Vec<Value> = report
        .notes
        .iter()
        .map(|n| json!({ "level": "warning", "message": { "text": n } }))
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "volsafe",
                    "version": env!("CARGO_PKG_VERSION"),
                    "informationUri": "https://github.com/volsafe/volsafe",
                    "rules": rules,
                },
            },
            "invocations": [{
                "executionSuccessful": true,
                "toolExecutionNotifications": notifications,
            }],
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::PathBuf;

    fn at(file: &str, line: usize, column: usize) -> Option<Location> {
        Some(Location {
            file: PathBuf::from(file),
            line,
            column,
        })
    }

    fn sample() -> Report {
        let mut sock = Finding::new(
            "VOL001",
            Severity::Critical,
            "service \"web\" mounts the Docker socket /var/run/docker.sock",
        );
        sock.container = Some("web".into());
        sock.volumes = vec!["data".into()];
        sock.source = Some("/var/run/docker.sock".into());
        sock.destination = Some("/var/run/docker.sock".into());
        sock.location = at("compose.yml", 12, 9);

        let mut rw = Finding::new(
            "RUN006",
            Severity::Low,
            "service \"db\" has a writable root filesystem",
        );
        rw.container = Some("db".into());
        rw.volumes = vec!["pgdata".into(), "logs".into()];
        rw.location = at("compose.yml", 20, 3);

        let mut nfs = Finding::new(
            "VOL008",
            Severity::Medium,
            "volume \"share\" is NFS without encryption (o=addr=10.0.0.2,password=<redacted>)",
        );
        nfs.volumes = vec!["share".into()];
        nfs.source = Some("share".into());
        nfs.location = at("compose.yml", 40, 3);

        // A live-host finding: no place in a file.
        let mut eng = Finding::new(
            "ENG001",
            Severity::Critical,
            "DOCKER_HOST is tcp:// without TLS",
        );
        eng.remediation = "use unix:// or TLS".into();

        let mut etc = Finding::new(
            "VOL002",
            Severity::High,
            "service \"db\" binds /etc read-write",
        );
        etc.container = Some("db".into());
        etc.source = Some("/etc".into());
        etc.destination = Some("/host/etc".into());
        etc.location = at("compose.yml", 22, 9);

        let mut sched = sock.clone();
        sched.container = Some("volsafe-scheduler".into());
        sched.location = at("compose.yml", 30, 9);
        sched.suppressed = Some("the scheduler needs the Docker API".into());

        Report {
            findings: vec![rw, nfs, sock, eng, etc, sched],
            notes: vec!["ignore file i.toml: entry 2 (VOL002) expired on 2026-01-01 and no longer suppresses".into()],
            scope: "compose file compose.yml".into(),
        }
    }

    #[test]
    fn text_groups_by_severity_most_severe_first() {
        let t = text(&sample(), false, false);
        let pos = |s: &str| t.find(s).unwrap_or_else(|| panic!("{s:?} not in\n{t}"));
        assert!(t.starts_with("volsafe check: compose file compose.yml\n"));
        assert!(pos("CRITICAL (2)") < pos("HIGH (1)"));
        assert!(pos("HIGH (1)") < pos("MEDIUM (1)"));
        assert!(pos("MEDIUM (1)") < pos("LOW (1)"));
        assert!(!t.contains("INFO ("));
        assert!(pos("ENG001") < pos("HIGH (1)") && pos("VOL001") < pos("HIGH (1)"));
        assert!(t.contains(
            "  VOL001 critical  container \"web\", volume \"data\", mount /var/run/docker.sock -> /var/run/docker.sock\n"
        ));
        assert!(t.contains("  RUN006 low  container \"db\", volumes \"pgdata\", \"logs\"\n"));
        assert!(t.contains("  ENG001 critical  Docker API over plain TCP\n"));
        assert!(t.contains("      fix: use unix:// or TLS\n"));
        assert!(t.contains("      at compose.yml:12\n"));
        assert!(t.contains("note: ignore file i.toml"));
        assert!(t.ends_with(
            "5 findings: 2 critical, 1 high, 1 medium, 1 low, 0 info; 1 suppressed (shown with --show-suppressed)\n"
        ));
        assert!(!t.contains("volsafe-scheduler"));
        assert!(!t.contains('\x1b'));
    }

    #[test]
    fn text_shows_suppressed_on_request() {
        let t = text(&sample(), true, false);
        let s = t.find("SUPPRESSED (1)").unwrap();
        assert!(t[s..].contains("container \"volsafe-scheduler\""));
        assert!(t[s..].contains("suppressed: the scheduler needs the Docker API"));
        assert!(t.ends_with("; 1 suppressed\n"));
    }

    #[test]
    fn text_colour_only_when_asked() {
        let t = text(&sample(), false, true);
        assert!(t.contains("\x1b[1;31mcritical\x1b[0m"));
        assert!(t.contains("\x1b[33mMEDIUM\x1b[0m"));
    }

    #[test]
    fn text_no_findings_and_control_characters() {
        let empty = Report {
            scope: "docker daemon at unix:///var/run/docker.sock".into(),
            ..Report::default()
        };
        assert_eq!(
            text(&empty, false, false),
            "volsafe check: docker daemon at unix:///var/run/docker.sock\n\nno findings\n"
        );
        let mut f = Finding::new("VOL002", Severity::Info, "m");
        f.source = Some("/srv/\x1b[2Jx".into());
        let t = text(
            &Report {
                findings: vec![f],
                ..Report::default()
            },
            false,
            false,
        );
        assert!(!t.contains('\x1b') && t.contains("/srv/\\u{1b}[2Jx"), "{t}");
    }

    #[test]
    fn json_carries_every_field() {
        let j = json(&sample(), false);
        assert_eq!(j["scope"], "compose file compose.yml");
        let findings = j["findings"].as_array().unwrap();
        assert_eq!(findings.len(), 5);
        for f in findings {
            for key in [
                "id",
                "severity",
                "title",
                "container",
                "volume",
                "volumes",
                "source",
                "destination",
                "message",
                "remediation",
                "reference",
                "location",
            ] {
                assert!(f.get(key).is_some(), "{key} missing in {f}");
            }
            assert!(f.get("suppressed").is_none());
        }
        assert_eq!(findings[0]["severity"], "critical");
        let sock = findings.iter().find(|f| f["id"] == "VOL001").unwrap();
        assert_eq!(sock["container"], "web");
        assert_eq!(sock["volume"], "data");
        assert_eq!(
            sock["location"],
            json!({"file": "compose.yml", "line": 12, "column": 9})
        );
        let rw = findings.iter().find(|f| f["id"] == "RUN006").unwrap();
        assert_eq!(rw["volume"], "pgdata, logs");
        assert_eq!(rw["volumes"], json!(["pgdata", "logs"]));
        assert_eq!(rw["source"], Value::Null);
        let eng = findings.iter().find(|f| f["id"] == "ENG001").unwrap();
        assert_eq!(eng["container"], Value::Null);
        assert_eq!(eng["volume"], Value::Null);
        assert_eq!(eng["location"], Value::Null);
        assert_eq!(j["suppressed"], 1);
        assert_eq!(
            j["summary"],
            json!({"critical": 2, "high": 1, "medium": 1, "low": 1, "info": 0, "suppressed": 1})
        );
        assert_eq!(j["notes"].as_array().unwrap().len(), 1);

        let j = json(&sample(), true);
        let s = j["suppressed"].as_array().unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0]["container"], "volsafe-scheduler");
        assert_eq!(s[0]["suppressed"], "the scheduler needs the Docker API");
    }

    fn validate(log: &Value) {
        let mut schema: Value =
            serde_json::from_str(include_str!("../../tests/data/sarif-schema-2.1.0.json")).unwrap();
        // The published 2.1.0 schema has a stray `]` in the pattern of
        // `run.language` and `toolComponent.language`
        // (oasis-tcs/sarif-spec#488, fixed in the errata): an invalid
        // ECMA-262 regex that the validator refuses to compile. The file
        // stays as published; the two patterns get the errata's intent here.
        // volsafe never writes `language`, so this changes nothing its
        // output is checked against.
        for owner in ["run", "toolComponent"] {
            let pattern = &mut schema["definitions"][owner]["properties"]["language"]["pattern"];
            assert_eq!(pattern, "^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$");
            *pattern = json!("^[a-zA-Z]{2}(-[a-zA-Z]{2})?$");
        }
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .expect("the SARIF schema compiles");
        let errors: Vec<String> = validator
            .iter_errors(log)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "SARIF log does not validate:\n{}",
            errors.join("\n")
        );
    }

    #[test]
    fn sarif_validates_against_the_schema() {
        let cwd = Path::new("/srv/app");
        let mut report = sample();
        report.findings[1].location = at("/srv/app/sub dir/compose.yml", 3, 1);
        report.findings[4].location = at("/elsewhere/compose.yml", 7, 1);
        for show in [false, true] {
            let log = sarif_in(&report, show, Some(cwd));
            let results = log["runs"][0]["results"].as_array().unwrap();
            assert!(!results.is_empty());
            for r in results {
                let loc = &r["locations"][0]["physicalLocation"];
                assert!(loc["artifactLocation"]["uri"].is_string(), "{r}");
                assert!(loc["region"]["startLine"].as_u64().unwrap() >= 1, "{r}");
            }
            validate(&log);
        }
        // The real current directory too.
        validate(&sarif(&sample(), true));
    }

    #[test]
    fn schema_check_is_not_vacuous() {
        let mut log = sarif_in(&sample(), false, None);
        log["runs"][0]["results"][0]["level"] = json!("fatal");
        let result = std::panic::catch_unwind(|| validate(&log));
        assert!(
            result.is_err(),
            "a level outside the enum must not validate"
        );
    }

    #[test]
    fn sarif_rules_and_results() {
        let log = sarif_in(&sample(), false, Some(Path::new("/srv/app")));
        assert_eq!(log["version"], "2.1.0");
        let run = &log["runs"][0];
        let driver = &run["tool"]["driver"];
        assert_eq!(driver["name"], "volsafe");
        assert_eq!(driver["version"], env!("CARGO_PKG_VERSION"));
        let rules = driver["rules"].as_array().unwrap();
        assert_eq!(rules.len(), RULES.len());
        let vol001 = &rules[0];
        assert_eq!(vol001["id"], "VOL001");
        assert_eq!(vol001["name"], "RuntimeSocketMountedIntoAContainer");
        assert_eq!(vol001["properties"]["security-severity"], "9.5");
        assert_eq!(vol001["defaultConfiguration"]["level"], "error");

        let results = run["results"].as_array().unwrap();
        // ENG001 has no location; the suppressed one is not shown.
        let ids: BTreeSet<&str> = results
            .iter()
            .map(|r| r["ruleId"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            BTreeSet::from(["VOL001", "VOL002", "VOL008", "RUN006"])
        );
        assert_eq!(results.len(), 4);
        for r in results {
            let i = r["ruleIndex"].as_u64().unwrap() as usize;
            assert_eq!(rules[i]["id"], r["ruleId"]);
            assert!(r.get("suppressions").is_none());
        }
        let run006 = results.iter().find(|r| r["ruleId"] == "RUN006").unwrap();
        assert_eq!(run006["level"], "note");
        assert_eq!(run006["properties"]["severity"], "low");
        assert_eq!(
            run006["locations"][0]["physicalLocation"],
            json!({"artifactLocation": {"uri": "compose.yml"}, "region": {"startLine": 20, "startColumn": 3}})
        );
        let vol008 = results.iter().find(|r| r["ruleId"] == "VOL008").unwrap();
        assert_eq!(vol008["level"], "warning");
        assert_eq!(
            run["invocations"][0]["toolExecutionNotifications"][0]["message"]["text"],
            sample().notes[0]
        );

        let log = sarif_in(&sample(), true, None);
        let results = log["runs"][0]["results"].as_array().unwrap();
        assert_eq!(results.len(), 5);
        let s: Vec<&Value> = results
            .iter()
            .filter(|r| r.get("suppressions").is_some())
            .collect();
        assert_eq!(s.len(), 1);
        assert_eq!(
            s[0]["suppressions"],
            json!([{"kind": "external", "justification": "the scheduler needs the Docker API"}])
        );
    }

    #[test]
    fn sarif_fingerprints_are_stable_and_distinct() {
        let a = sarif_in(&sample(), true, None);
        let mut moved = sample();
        for f in &mut moved.findings {
            if let Some(l) = &mut f.location {
                l.line += 5;
            }
        }
        moved.findings.reverse();
        let b = sarif_in(&moved, true, None);
        let prints = |log: &Value| -> BTreeSet<(String, String)> {
            log["runs"][0]["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r["ruleId"].as_str().unwrap().to_owned(),
                        r["partialFingerprints"]["volsafeFinding/v1"]
                            .as_str()
                            .unwrap()
                            .to_owned(),
                    )
                })
                .collect()
        };
        assert_eq!(prints(&a), prints(&b));
        assert_eq!(prints(&a).len(), 5);
    }

    #[test]
    fn artifact_uris() {
        let cwd = Some(Path::new("/srv/app"));
        assert_eq!(artifact_uri(Path::new("compose.yml"), cwd), "compose.yml");
        assert_eq!(
            artifact_uri(Path::new("./deploy/compose.yml"), cwd),
            "deploy/compose.yml"
        );
        assert_eq!(
            artifact_uri(Path::new("/srv/app/deploy/compose.yml"), cwd),
            "deploy/compose.yml"
        );
        assert_eq!(
            artifact_uri(Path::new("/srv/app2/compose.yml"), cwd),
            "file:///srv/app2/compose.yml"
        );
        assert_eq!(
            artifact_uri(Path::new("/srv/a b/c:d.yml"), None),
            "file:///srv/a%20b/c%3Ad.yml"
        );
        assert_eq!(artifact_uri(Path::new("c:d.yml"), cwd), "c%3Ad.yml");
        assert_eq!(artifact_uri(Path::new("../x.yml"), cwd), "../x.yml");
    }

    /// Every string the formats print comes from a finding, a rule, the
    /// report or a fixed vocabulary: nothing here can leak an option value.
    #[test]
    fn outputs_add_no_values() {
        let report = sample();
        let mut allowed: BTreeSet<String> = BTreeSet::new();
        for f in &report.findings {
            allowed.extend(
                [
                    f.container.clone(),
                    f.source.clone(),
                    f.destination.clone(),
                    f.suppressed.clone(),
                    Some(f.message.clone()),
                    Some(f.remediation.clone()),
                    Some(f.volumes.join(", ")),
                    Some(f.severity.as_str().to_owned()),
                ]
                .into_iter()
                .flatten(),
            );
            allowed.extend(f.volumes.iter().cloned());
            if let Some(l) = &f.location {
                allowed.insert(l.file.display().to_string());
            }
            if f.remediation != f.rule.remediation {
                allowed.insert(format!("{}\nFix: {}", f.message, f.remediation));
            }
        }
        for r in RULES {
            allowed.extend([r.id, r.title, r.remediation, r.reference].map(str::to_owned));
            allowed.insert(camel(r.title));
            allowed.insert(format!("{}.", capitalize(r.title)));
            allowed.insert(format!(
                "{}. Reference: {}.",
                capitalize(r.title),
                r.reference
            ));
        }
        allowed.extend(report.notes.iter().cloned());
        allowed.insert(report.scope.clone());
        for fixed in [
            "https://json.schemastore.org/sarif-2.1.0.json",
            "2.1.0",
            "volsafe",
            env!("CARGO_PKG_VERSION"),
            "https://github.com/volsafe/volsafe",
            "security",
            "error",
            "warning",
            "note",
            "external",
            "unicodeCodePoints",
            "compose.yml",
        ] {
            allowed.insert(fixed.to_owned());
        }
        for s in [
            Severity::Info,
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ] {
            allowed.insert(s.score().to_owned());
        }
        fn strings<'a>(v: &'a Value, key: &str, out: &mut Vec<(String, &'a str)>) {
            match v {
                Value::String(s) => out.push((key.to_owned(), s)),
                Value::Array(a) => a.iter().for_each(|x| strings(x, key, out)),
                Value::Object(m) => m.iter().for_each(|(k, x)| strings(x, k, out)),
                _ => {}
            }
        }
        let mut seen = Vec::new();
        let j = json(&report, true);
        let s = sarif_in(&report, true, None);
        strings(&j, "", &mut seen);
        strings(&s, "", &mut seen);
        for (key, value) in seen {
            if key == "volsafeFinding/v1" {
                continue;
            }
            assert!(
                allowed.contains(value),
                "{key}: {value:?} is not from the findings"
            );
        }
        let t = text(&report, true, false);
        assert!(t.contains("password=<redacted>"));
    }
}
