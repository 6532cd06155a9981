//! `volsafe prune`: deletes the archives a retention policy does not keep,
//! per daemon and volume, from their sidecars alone (no key, no daemon
//! needed once the daemon's name is known).
//!
//! What must stay true: only committed volsafe archives of the volume (a
//! matching name and a valid sidecar) and their sidecars are ever deleted;
//! the sidecar goes first and is made durable before the archive goes, so a
//! crash leaves at worst an uncommitted archive, never a sidecar without its
//! data; the newest archive is never deleted, nor all of them. Incomplete
//! archives, partial files and anything else in DIR are left alone, and
//! `rollback/` is pruned only when asked for, and then alone.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use anyhow::Result;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::cli::{OutputFormat, PruneArgs};
use crate::engine;
use crate::error::{failed, usage, Exit};
use crate::progress::human;
use crate::retention::{self, Policy, Reason};
use crate::store;

/// What `prune` was asked to do, checked.
pub struct Plan {
    pub dir: PathBuf,
    /// `None`: the local daemon's name, asked from the daemon.
    pub daemon: Option<String>,
    pub volume: Option<String>,
    pub policy: Policy,
    pub tz: Tz,
    pub rollback: bool,
    pub dry_run: bool,
    pub format: OutputFormat,
}

/// What happened to one archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Action {
    #[serde(rename = "keep")]
    Keep,
    #[serde(rename = "delete")]
    Delete,
    #[serde(rename = "would delete")]
    WouldDelete,
    /// It was to be deleted and could not be (see `error`).
    #[serde(rename = "failed")]
    Failed,
}

impl Action {
    fn word(self) -> &'static str {
        match self {
            Action::Keep => "keep",
            Action::Delete => "delete",
            Action::WouldDelete => "would delete",
            Action::Failed => "failed",
        }
    }
}

/// One committed archive and the decision about it.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveOutcome {
    pub path: PathBuf,
    /// The volume recorded in the sidecar; shown for rollback archives,
    /// which may belong to another volume than the directory's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
    /// From the sidecar: RFC 3339, UTC.
    pub created: String,
    /// Bytes of the archive file.
    pub size: u64,
    pub action: Action,
    /// The rules that keep it; empty for a deleted archive.
    pub reasons: Vec<Reason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What prune did, or would do, in one volume's directory.
#[derive(Debug, Clone, Serialize)]
pub struct VolumeOutcome {
    pub volume: String,
    pub rollback: bool,
    /// Committed archives, newest first.
    pub archives: Vec<ArchiveOutcome>,
    /// Archives left alone: no valid sidecar, or an unreadable time.
    pub skipped: Vec<PathBuf>,
    /// The policy would have deleted every archive, so none was.
    pub guarded: bool,
    pub kept: usize,
    /// Deleted, or with `--dry-run` to be deleted.
    pub deleted: usize,
    /// Bytes of the archives deleted (or to be deleted).
    pub freed_bytes: u64,
    /// Archives that could not be deleted.
    pub failed: usize,
}

impl VolumeOutcome {
    /// The archives that could not be deleted, with their errors.
    pub fn failures(&self) -> impl Iterator<Item = &ArchiveOutcome> {
        self.archives.iter().filter(|a| a.action == Action::Failed)
    }
}

#[derive(Serialize)]
struct Totals {
    volumes: usize,
    kept: usize,
    deleted: usize,
    freed_bytes: u64,
    failed: usize,
}

#[derive(Serialize)]
struct VolumeError {
    volume: String,
    error: String,
}

#[derive(Serialize)]
struct Out<'a> {
    dir: &'a Path,
    daemon: &'a str,
    timezone: &'a str,
    dry_run: bool,
    rollback: bool,
    volumes: &'a [VolumeOutcome],
    errors: &'a [VolumeError],
    totals: Totals,
}

/// Turns what the user typed into a plan: a policy, a timezone, names
/// that are single path components.
pub fn plan(args: PruneArgs) -> Result<Plan> {
    let policy = Policy {
        last: args.keep_last.unwrap_or(0),
        hourly: args.keep_hourly.unwrap_or(0),
        daily: args.keep_daily.unwrap_or(0),
        weekly: args.keep_weekly.unwrap_or(0),
        monthly: args.keep_monthly.unwrap_or(0),
        yearly: args.keep_yearly.unwrap_or(0),
        within: args.keep_within,
    };
    if policy.is_empty() {
        return Err(usage(
            "prune: no retention rule (every --keep-* is missing or zero)",
            "pass at least one, e.g. --keep-daily 7 --keep-weekly 4",
        ));
    }
    let tz = match args.timezone.as_deref() {
        Some(name) => parse_timezone(name)?,
        None => system_timezone(),
    };
    if let Some(v) = &args.volume {
        engine::volume::check_name(v)?;
    }
    if let Some(d) = &args.daemon {
        check_daemon_name(d)?;
    }
    Ok(Plan {
        dir: args.dir,
        daemon: args.daemon,
        volume: args.volume,
        policy,
        tz,
        rollback: args.rollback,
        dry_run: args.dry_run,
        format: args.format,
    })
}

pub async fn run(args: PruneArgs) -> Result<Exit> {
    let plan = plan(args)?;
    if !plan.dir.is_dir() {
        return Err(failed(
            format!("backup directory {}: not a directory", plan.dir.display()),
            "check the path (the --to of your backups)",
        ));
    }
    let daemon = match &plan.daemon {
        Some(d) => d.clone(),
        None => local_daemon_name().await?,
    };
    let volumes = volumes_to_prune(&plan, &daemon)?;

    let mut outcomes = Vec::new();
    let mut errors = Vec::new();
    for volume in &volumes {
        match prune_volume(
            &plan.dir,
            &daemon,
            volume,
            &plan.policy,
            plan.tz,
            plan.rollback,
            plan.dry_run,
        ) {
            Ok(o) => {
                for f in o.failures() {
                    crate::report_error(&failed(
                        format!(
                            "archive {}: {}",
                            f.path.display(),
                            f.error.as_deref().unwrap_or("not deleted")
                        ),
                        "check the permissions of its directory; the other archives were pruned",
                    ));
                }
                // A directory with nothing of volsafe's in it (C09) is not
                // a volume worth a line, unless it was asked for.
                let empty = o.archives.is_empty() && o.skipped.is_empty();
                if !empty || plan.volume.is_some() {
                    outcomes.push(o);
                }
            }
            Err(e) => {
                crate::report_error(&e);
                errors.push(VolumeError {
                    volume: volume.clone(),
                    error: format!("{e:#}"),
                });
            }
        }
    }

    print(&plan, &daemon, &outcomes, &errors)?;
    let bad = errors.len() + outcomes.iter().filter(|o| o.failed > 0).count();
    Ok(match bad {
        0 => Exit::Success,
        n if n == outcomes.len() + errors.len() => Exit::Failed,
        _ => Exit::Partial,
    })
}

/// The daemon's name, which is the directory level under DIR. Prune needs
/// the daemon for nothing else, so an unreachable one only asks for the name.
async fn local_daemon_name() -> Result<String> {
    match engine::connect().await {
        Ok(engine) => Ok(engine.name),
        Err(e) => Err(failed(
            format!("{e:#}; prune needs it only for the local daemon's name"),
            "pass --daemon NAME (a directory in DIR; `volsafe list DIR` shows them)",
        )),
    }
}

/// The volumes to prune: `--volume`, or every directory of the daemon's.
fn volumes_to_prune(plan: &Plan, daemon: &str) -> Result<Vec<String>> {
    let daemon_dir = plan.dir.join(daemon);
    if !daemon_dir.is_dir() {
        return Err(failed(
            format!(
                "backup directory {}: no archives of daemon {daemon:?}",
                plan.dir.display()
            ),
            "pass --daemon NAME for another daemon's archives (`volsafe list DIR` shows them)",
        ));
    }
    if let Some(v) = &plan.volume {
        if !daemon_dir.join(v).is_dir() {
            return Err(failed(
                format!("volume {v}: no archives in {}", daemon_dir.display()),
                "check the name with `volsafe list DIR`",
            ));
        }
        return Ok(vec![v.clone()]);
    }
    let entries = fs::read_dir(&daemon_dir).map_err(|e| {
        failed(
            format!("backup directory {}: {e}", daemon_dir.display()),
            "check its permissions",
        )
    })?;
    let mut volumes: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .collect();
    volumes.sort();
    Ok(volumes)
}

/// Applies `policy` to one volume's committed archives in
/// `dir/<daemon>/<volume>/` (with `rollback`, only to those in its
/// `rollback/`, each recorded volume on its own) and deletes, unless
/// `dry_run`, the ones it does not keep.
///
/// Logs a warning for a volume whose policy would delete everything (then
/// nothing is deleted) and for archives without a valid sidecar (never
/// touched). A deletion that fails does not stop the others: it is in the
/// outcome, as [`Action::Failed`] with its error, for the caller to report.
/// `Err` only when the directory cannot be read.
pub fn prune_volume(
    dir: &Path,
    daemon: &str,
    volume: &str,
    policy: &Policy,
    tz: Tz,
    rollback: bool,
    dry_run: bool,
) -> Result<VolumeOutcome> {
    let mut vdir = store::volume_dir(dir, daemon, volume);
    if rollback {
        vdir.push(store::ROLLBACK_DIR);
    }
    let mut skipped = Vec::new();
    let found = committed(&vdir, volume, rollback, &mut skipped)?;

    // Each recorded volume on its own: in rollback/, the archives of two
    // volumes must not share one `last N`.
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, f) in found.iter().enumerate() {
        groups.entry(f.volume.as_str()).or_default().push(i);
    }
    let mut reasons = vec![Vec::new(); found.len()];
    let mut guarded = false;
    for (recorded, group) in groups {
        let times: Vec<DateTime<Utc>> = group.iter().map(|&i| found[i].created).collect();
        let verdict = retention::decide(&times, policy, tz);
        if verdict.guarded {
            guarded = true;
            let whose = if rollback {
                format!(" (rollback archives of {recorded})")
            } else {
                String::new()
            };
            tracing::warn!(
                volume = %volume,
                "volume {volume}{whose}: the policy would delete every archive; deleting none"
            );
        }
        for (i, r) in group.into_iter().zip(verdict.reasons) {
            reasons[i] = r;
        }
    }
    let mut archives: Vec<ArchiveOutcome> = found
        .into_iter()
        .zip(reasons)
        .map(|(f, reasons)| ArchiveOutcome {
            action: match (reasons.is_empty(), dry_run) {
                (false, _) => Action::Keep,
                (true, true) => Action::WouldDelete,
                (true, false) => Action::Delete,
            },
            path: f.path,
            volume: rollback.then_some(f.volume),
            created: f.created_text,
            size: f.size,
            reasons,
            error: None,
        })
        .collect();

    if !dry_run {
        delete(&vdir, &mut archives);
    }
    let gone = |a: &&ArchiveOutcome| matches!(a.action, Action::Delete | Action::WouldDelete);
    Ok(VolumeOutcome {
        volume: volume.to_owned(),
        rollback,
        kept: archives.iter().filter(|a| a.action == Action::Keep).count(),
        deleted: archives.iter().filter(gone).count(),
        freed_bytes: archives.iter().filter(gone).map(|a| a.size).sum(),
        failed: archives
            .iter()
            .filter(|a| a.action == Action::Failed)
            .count(),
        archives,
        skipped,
        guarded,
    })
}

/// A committed archive: its name is volsafe's for its volume and its
/// sidecar says so.
struct Found {
    path: PathBuf,
    /// The volume in the sidecar (the directory's, except in `rollback/`).
    volume: String,
    created: DateTime<Utc>,
    created_text: String,
    size: u64,
}

/// The committed archives in `vdir`. Anything else is not looked at, except
/// archives without a valid sidecar, which go to `skipped` with a warning.
fn committed(
    vdir: &Path,
    volume: &str,
    rollback: bool,
    skipped: &mut Vec<PathBuf>,
) -> Result<Vec<Found>> {
    let entries = match fs::read_dir(vdir) {
        Ok(e) => e,
        // A volume that never had a restore --replace has no rollback/.
        Err(e) if rollback && e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(failed(
                format!("volume {volume}: {}: {e}", vdir.display()),
                "check the directory and its permissions",
            ))
        }
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let path = entry.path();
        let is_archive_name = |v: &str| store::archive_name_matches(&name, v);
        let sidecar = if rollback {
            // Rollback archives are named after the volume that was
            // replaced, which may be another one than this directory's.
            let s = store::read_sidecar(&path);
            match s {
                Some(s) if is_archive_name(&s.volume) => Some(s),
                _ if is_archive_name(volume) => None,
                _ => continue,
            }
        } else if is_archive_name(volume) {
            store::read_sidecar(&path).filter(|s| s.volume == volume)
        } else {
            continue;
        };
        let regular = |p: &Path| fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_file());
        let sidecar = sidecar.filter(|s| {
            s.archive == name && regular(&path) && regular(&store::sidecar_path(&path))
        });
        let Some(sidecar) = sidecar else {
            tracing::warn!(path = %path.display(), volume = %volume, "incomplete backup (no valid sidecar); not pruned");
            skipped.push(path);
            continue;
        };
        let Ok(created) = DateTime::parse_from_rfc3339(&sidecar.created) else {
            tracing::warn!(path = %path.display(), created = %sidecar.created, "archive with an unreadable creation time; not pruned");
            skipped.push(path);
            continue;
        };
        let size = fs::symlink_metadata(&path).map(|m| m.len()).unwrap_or(0);
        found.push(Found {
            path,
            volume: sidecar.volume,
            created: created.with_timezone(&Utc),
            created_text: sidecar.created,
            size,
        });
    }
    // Newest first; of two equal times, the later name (a `-2` clash) is newer.
    found.sort_by(|a, b| (b.created, &b.path).cmp(&(a.created, &a.path)));
    Ok(found)
}

/// Deletes the archives marked [`Action::Delete`]: every sidecar first, a
/// directory sync, then the archives and another sync. A crash in between
/// leaves uncommitted archives, which list shows as incomplete and the next
/// backup of the volume removes.
fn delete(vdir: &Path, archives: &mut [ArchiveOutcome]) {
    let mut uncommitted = Vec::new();
    for (i, a) in archives.iter_mut().enumerate() {
        if a.action != Action::Delete {
            continue;
        }
        match remove(&store::sidecar_path(&a.path)) {
            Ok(()) => uncommitted.push(i),
            Err(e) => fail(a, format!("cannot delete its sidecar: {e}")),
        }
    }
    if uncommitted.is_empty() {
        return;
    }
    if let Err(e) = sync_dir(vdir) {
        // Without a durable un-commit, removing the data could leave a
        // sidecar without its archive after a crash.
        for &i in &uncommitted {
            fail(
                &mut archives[i],
                format!(
                    "sidecar deleted, archive left in place ({}: cannot sync: {e}); the next backup removes it",
                    vdir.display()
                ),
            );
        }
        return;
    }
    for &i in &uncommitted {
        if let Err(e) = remove(&archives[i].path) {
            fail(
                &mut archives[i],
                format!("sidecar deleted, archive not: {e}; the next backup removes it"),
            );
        }
    }
    if let Err(e) = sync_dir(vdir) {
        tracing::warn!(dir = %vdir.display(), error = %e, "cannot sync the directory after pruning");
    }
}

fn fail(a: &mut ArchiveOutcome, error: String) {
    a.action = Action::Failed;
    a.error = Some(error);
}

/// Removes a file; one that is already gone counts as removed.
fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn check_daemon_name(name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(usage(
            format!("daemon name {name:?}: not a directory name"),
            "pass the daemon's name as it appears under DIR (`volsafe list DIR` shows them)",
        ));
    }
    Ok(())
}

/// An IANA timezone name (`Europe/Berlin`, `UTC`).
pub fn parse_timezone(name: &str) -> Result<Tz> {
    name.parse::<Tz>().map_err(|_| {
        usage(
            format!("timezone {name:?}: not an IANA timezone name"),
            "use a name like Europe/Berlin or UTC (the files under /usr/share/zoneinfo)",
        )
    })
}

/// The timezone periods are read in when none is given: `TZ` if it names a
/// zone (`Europe/Berlin`, `:Europe/Berlin`, a path into zoneinfo), else the
/// zone `/etc/localtime` links to, else the one in `/etc/timezone`, else UTC.
pub fn system_timezone() -> Tz {
    let from_env = std::env::var("TZ").ok().and_then(|v| zone_named(&v));
    let from_link = || {
        fs::read_link("/etc/localtime")
            .ok()
            .and_then(|p| p.to_str().and_then(zone_named))
    };
    let from_file = || {
        fs::read_to_string("/etc/timezone")
            .ok()
            .and_then(|s| s.lines().next().and_then(zone_named))
    };
    let tz = from_env
        .or_else(from_link)
        .or_else(from_file)
        .unwrap_or(Tz::UTC);
    tracing::debug!(timezone = %tz.name(), "periods read in the system's timezone");
    tz
}

/// The zone a `TZ` value or a zoneinfo path names, if any.
fn zone_named(s: &str) -> Option<Tz> {
    let s = s.trim();
    let s = s.strip_prefix(':').unwrap_or(s);
    let s = match s.rfind("zoneinfo/") {
        Some(i) => &s[i + "zoneinfo/".len()..],
        None => s,
    };
    s.parse().ok()
}

fn print(
    plan: &Plan,
    daemon: &str,
    outcomes: &[VolumeOutcome],
    errors: &[VolumeError],
) -> Result<()> {
    let totals = Totals {
        volumes: outcomes.len() + errors.len(),
        kept: outcomes.iter().map(|o| o.kept).sum(),
        deleted: outcomes.iter().map(|o| o.deleted).sum(),
        freed_bytes: outcomes.iter().map(|o| o.freed_bytes).sum(),
        failed: outcomes.iter().map(|o| o.failed).sum(),
    };
    if plan.format == OutputFormat::Json {
        let out = Out {
            dir: &plan.dir,
            daemon,
            timezone: plan.tz.name(),
            dry_run: plan.dry_run,
            rollback: plan.rollback,
            volumes: outcomes,
            errors,
            totals,
        };
        return crate::out_line(serde_json::to_string_pretty(&out)?);
    }

    let (deleted, freed) = if plan.dry_run {
        ("would be deleted", "would be freed")
    } else {
        ("deleted", "freed")
    };
    for o in outcomes {
        for a in &o.archives {
            let reasons: Vec<String> = a.reasons.iter().map(ToString::to_string).collect();
            let line = format!(
                "{:<12}  {:<24}  {:>10}  {}  {}",
                a.action.word(),
                a.created,
                human(a.size),
                a.path.display(),
                reasons.join(", ")
            );
            crate::out_line(line.trim_end())?;
        }
        let mut line = format!(
            "{}{}: {} kept, {} {deleted} ({} {freed})",
            o.volume,
            if o.rollback { " (rollback)" } else { "" },
            o.kept,
            o.deleted,
            human(o.freed_bytes)
        );
        if o.failed > 0 {
            line += &format!(", {} failed", o.failed);
        }
        if o.guarded {
            line += "; the policy would delete every archive, so none was";
        }
        crate::out_line(line)?;
    }
    let mut line = format!(
        "total: {} volume(s) of daemon {daemon}, {} kept, {} {deleted} ({} {freed}), periods in {}",
        totals.volumes,
        totals.kept,
        totals.deleted,
        human(totals.freed_bytes),
        plan.tz.name()
    );
    if totals.failed + errors.len() > 0 {
        line += &format!(
            ", {} archive(s) and {} volume(s) failed",
            totals.failed,
            errors.len()
        );
    }
    crate::out_line(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tz_values_name_zones() {
        let berlin = Some(chrono_tz::Europe::Berlin);
        assert_eq!(zone_named("Europe/Berlin"), berlin);
        assert_eq!(zone_named(":Europe/Berlin"), berlin);
        assert_eq!(zone_named("/usr/share/zoneinfo/Europe/Berlin"), berlin);
        assert_eq!(zone_named("../usr/share/zoneinfo/Europe/Berlin\n"), berlin);
        assert_eq!(zone_named("UTC"), Some(Tz::UTC));
        assert_eq!(zone_named("CET-1CEST,M3.5.0,M10.5.0/3"), None);
        assert_eq!(zone_named(""), None);
    }

    #[test]
    fn bad_timezone_is_a_usage_error() {
        let e = parse_timezone("Mars/Olympus").unwrap_err();
        assert_eq!(crate::error::exit_for(&e), Exit::Usage);
        assert!(format!("{e:#}").contains("Mars/Olympus"));
    }

    #[test]
    fn daemon_names_are_one_path_component() {
        for bad in ["", ".", "..", "a/b", "../x"] {
            assert!(check_daemon_name(bad).is_err(), "{bad}");
        }
        assert!(check_daemon_name("host-1.example").is_ok());
    }
}
