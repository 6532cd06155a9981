//! `volsafe check`, and the same checks before a backup.
//!
//! A live check reads the host once ([`collect`]), runs the rules, applies
//! the ignore file and prints one report. A compose check needs no daemon.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Result;
use time::OffsetDateTime;

use crate::check::collect::{self, Scope};
use crate::check::ignore::Ignores;
use crate::check::report::{self, Report};
use crate::check::rules::{self, BackupAge, Context};
use crate::check::{compose, Finding, Severity};
use crate::cli::CheckFormat as Format;
use crate::engine::{self, Engine};
use crate::error::{Exit, Kind, UserError};
use crate::store;

/// A checked `volsafe check` request.
pub struct Plan {
    /// Empty: the whole host.
    pub volumes: Vec<String>,
    /// Compose files: checked without a daemon.
    pub compose: Vec<PathBuf>,
    pub format: Format,
    pub fail_on: Option<Severity>,
    pub ignores: Ignores,
    pub show_suppressed: bool,
    /// BAK004: the backup directory and the age limits.
    pub backups: Option<(PathBuf, BackupAge)>,
}

pub async fn run(plan: Plan) -> Result<Exit> {
    let (mut findings, scope) = if plan.compose.is_empty() {
        let engine = engine::connect().await?;
        let scope = if plan.volumes.is_empty() {
            Scope::All
        } else {
            Scope::Volumes(&plan.volumes)
        };
        let host = collect::collect(&engine, scope).await?;
        let mut findings = rules::evaluate(&host, &Context::default());
        locate_in_compose_files(&host, &mut findings);
        if let Some((dir, limits)) = &plan.backups {
            let newest = newest_archives(dir, &engine.name)?;
            findings.extend(rules::backup_age(
                &host.volumes,
                &newest,
                OffsetDateTime::now_utc(),
                *limits,
                dir,
            ));
        }
        let what = if plan.volumes.is_empty() {
            format!("docker daemon {} at {}", engine.name, engine.host)
        } else {
            format!(
                "volume{} {} on docker daemon {}",
                if plan.volumes.len() == 1 { "" } else { "s" },
                plan.volumes.join(", "),
                engine.name
            )
        };
        (findings, what)
    } else {
        let mut findings = Vec::new();
        for file in &plan.compose {
            let host = compose::load(file)?;
            findings.extend(rules::evaluate(&host, &Context::default()));
        }
        let files: Vec<String> = plan
            .compose
            .iter()
            .map(|f| f.display().to_string())
            .collect();
        (findings, format!("compose file {}", files.join(", ")))
    };

    let today = OffsetDateTime::now_utc().date();
    let mut notes = plan.ignores.apply(&mut findings, today);
    // Only a whole-host check sees everything an entry could match.
    if !plan.ignores.is_empty() && plan.volumes.is_empty() && plan.compose.is_empty() {
        notes.extend(plan.ignores.unused(&findings, today));
    }
    for note in &notes {
        tracing::warn!("{note}");
    }
    let blocking = over_threshold(&findings, plan.fail_on);
    let report = Report {
        findings,
        notes,
        scope,
    };
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let out = match plan.format {
        Format::Text => report::text(&report, plan.show_suppressed, color),
        Format::Json => pretty(&report::json(&report, plan.show_suppressed)),
        Format::Sarif => pretty(&report::sarif(&report, plan.show_suppressed)),
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(crate::StdoutError)?;
    Ok(if blocking > 0 {
        Exit::Findings
    } else {
        Exit::Success
    })
}

/// Points findings about containers that docker compose created at the
/// service in its compose file (labels `com.docker.compose.project.config_files`
/// and `com.docker.compose.service`), when that file is readable here.
fn locate_in_compose_files(host: &crate::check::model::Host, findings: &mut [Finding]) {
    let mut files: BTreeMap<PathBuf, Option<crate::check::model::Host>> = BTreeMap::new();
    for f in findings.iter_mut().filter(|f| f.location.is_none()) {
        let Some(c) = f
            .container
            .as_ref()
            .and_then(|name| host.containers.iter().find(|c| &c.name == name))
        else {
            continue;
        };
        let (Some(configs), Some(service)) = (
            c.labels.get("com.docker.compose.project.config_files"),
            c.labels.get("com.docker.compose.service"),
        ) else {
            continue;
        };
        for file in configs.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let parsed = files.entry(PathBuf::from(file)).or_insert_with(|| {
                let path = std::path::Path::new(file);
                if !path.is_file() {
                    return None;
                }
                compose::load(path)
                    .map_err(|e| tracing::debug!(file, error = %format!("{e:#}"), "cannot read compose file"))
                    .ok()
            });
            let Some(svc) = parsed
                .as_ref()
                .and_then(|h| h.containers.iter().find(|s| &s.name == service))
            else {
                continue;
            };
            let mount = f.destination.as_ref().and_then(|d| {
                svc.mounts
                    .iter()
                    .find(|m| crate::check::paths::normalize(&m.destination) == *d)
            });
            f.location = mount
                .and_then(|m| m.location.clone())
                .or_else(|| svc.location.clone());
            break;
        }
    }
}

fn pretty(v: &serde_json::Value) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("a JSON value always serializes");
    s.push('\n');
    s
}

/// How many findings, not suppressed, are at or above `fail_on`.
fn over_threshold(findings: &[Finding], fail_on: Option<Severity>) -> usize {
    fail_on.map_or(0, |min| {
        findings
            .iter()
            .filter(|f| f.suppressed.is_none() && f.severity >= min)
            .count()
    })
}

/// The creation time of each volume's newest committed archive of daemon
/// `daemon` in `dir`.
fn newest_archives(
    dir: &std::path::Path,
    daemon: &str,
) -> Result<BTreeMap<String, OffsetDateTime>> {
    let mut newest = BTreeMap::new();
    if !dir.join(daemon).is_dir() {
        if !dir.is_dir() {
            return Err(UserError::new(
                Kind::Failed,
                format!("backup directory {}: not found", dir.display()),
            )
            .hint("give --backups the directory volsafe backs up into")
            .into());
        }
        return Ok(newest);
    }
    let (listed, _) = store::scan(dir, Some(daemon), None)?;
    for archive in listed {
        let Ok(created) = OffsetDateTime::parse(
            &archive.created,
            &time::format_description::well_known::Rfc3339,
        ) else {
            continue;
        };
        newest
            .entry(archive.volume)
            .and_modify(|t: &mut OffsetDateTime| *t = (*t).max(created))
            .or_insert(created);
    }
    Ok(newest)
}

/// What `volsafe backup` checks first.
pub struct BeforeBackup<'a> {
    pub volumes: &'a [String],
    pub ignores: &'a Ignores,
    pub fail_on: Option<Severity>,
    /// Containers the backup stops first (BAK005).
    pub stopping: BTreeSet<String>,
}

/// Runs the checks for the volumes about to be backed up and prints the
/// findings to stderr. An error with exit 4 when any reaches `fail_on`:
/// then nothing has been read yet. Volumes that do not exist are left to
/// the backup, which reports them.
pub async fn before_backup(engine: &Engine, req: BeforeBackup<'_>) -> Result<()> {
    let mut present = Vec::new();
    for name in req.volumes {
        if engine::volume::inspect_full(engine, name).await?.is_some() {
            present.push(name.clone());
        }
    }
    if present.is_empty() {
        return Ok(());
    }
    let host = collect::collect(engine, Scope::Volumes(&present)).await?;
    let ctx = Context {
        pre_backup: true,
        stopping: req.stopping,
    };
    let mut findings = rules::evaluate(&host, &ctx);
    let notes = req
        .ignores
        .apply(&mut findings, OffsetDateTime::now_utc().date());
    for note in &notes {
        tracing::warn!("{note}");
    }
    let shown = findings.iter().filter(|f| f.suppressed.is_none()).count();
    let blocking = over_threshold(&findings, req.fail_on);
    if shown > 0 {
        // One line per finding that needs attention, a count for the rest:
        // a nightly cron mail stays short. Warnings: `-q` hides them, and
        // `--log-format json` carries them.
        let loud = req
            .fail_on
            .map_or(Severity::Medium, |s| s.min(Severity::Medium));
        findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
        let mut quiet = 0;
        for f in findings.iter().filter(|f| f.suppressed.is_none()) {
            if f.severity < loud {
                quiet += 1;
                continue;
            }
            tracing::warn!(
                "check: {} {}: {}",
                f.rule.id,
                f.severity,
                report::clean(&f.message)
            );
        }
        if quiet > 0 {
            tracing::warn!(
                "check: {quiet} more finding{} below {loud}; `volsafe check {}` shows each and how to fix it",
                if quiet == 1 { "" } else { "s" },
                present.join(" ")
            );
        }
    } else {
        tracing::debug!(volumes = %present.join(", "), "security check: no findings");
    }
    if blocking > 0 {
        let min = req.fail_on.map(|s| s.as_str()).unwrap_or_default();
        return Err(UserError::new(
            Kind::Findings,
            format!(
                "security check: {blocking} finding{} at or above {min} for volume{} {}; nothing was backed up",
                if blocking == 1 { "" } else { "s" },
                if present.len() == 1 { "" } else { "s" },
                present.join(", ")
            ),
        )
        .hint("fix them, or suppress each with a reason in an ignore file (--ignore FILE); --check-fail-on sets the threshold, --skip-check turns the check off")
        .into());
    }
    Ok(())
}
