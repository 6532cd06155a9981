//! The scheduler's TOML file (docs/schedule.md): top-level settings, a
//! `[defaults]` table and `[[job]]` entries, turned into checked jobs.
//!
//! What must stay true: an unknown key is an error naming the file and the
//! line, so a typo never silently drops a setting (a misspelt `keep_daily`
//! would otherwise keep everything, a misspelt `stop_containers` back up a
//! live database); every check a run would fail on (recipients, ignore
//! file, timezone, cron, a drill's key) is made here, at start and at
//! reload, not at 3 a.m.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use chrono_tz::Tz;
use serde::Deserialize;
use toml::Spanned;

mod drill;

pub use drill::DrillSpec;

use super::timing::Schedule;
use crate::check::ignore::{self, Ignores};
use crate::check::Severity;
use crate::error::usage;
use crate::retention::Policy;

/// The default grace period for running backups after SIGTERM.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(300);
const HINT: &str = "see docs/schedule.md for the keys and a complete example";
const CRON_HINT: &str =
    "write 5 fields (minute hour day month weekday) or 6 with seconds first, such as \"30 2 * * *\"";

/// The whole file, checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    /// How many jobs may run at once.
    pub parallel: usize,
    /// How long running backups may go on after SIGTERM/SIGINT.
    pub grace: Duration,
    pub jobs: Vec<Job>,
}

/// One job with the defaults applied.
#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    /// Volumes named in the file.
    pub volumes: Vec<String>,
    /// A label selector (`key` or `key=value`), resolved at each run.
    pub selector: Option<String>,
    pub schedule: Schedule,
    pub to: PathBuf,
    pub encryption: EncryptionSpec,
    pub policy: Policy,
    pub stop_containers: bool,
    /// `None`: no pre-backup check (`skip_check = true`).
    pub check: Option<CheckSpec>,
    pub level: i32,
    pub allow_empty: bool,
    pub lock_wait: Duration,
    pub notify_url: Option<String>,
    /// `None`: the job's archives are never drilled.
    pub drill: Option<DrillSpec>,
}

/// How a job's archives are encrypted, as named in the file. The keys are
/// read again at each run (a rotated recipients file is picked up); they
/// were read once here, so a broken file fails at start.
#[derive(Debug, Clone, Default)]
pub struct EncryptionSpec {
    pub recipients: Vec<String>,
    pub recipients_files: Vec<PathBuf>,
    pub passphrase_file: Option<PathBuf>,
    pub no_encryption: bool,
}

impl EncryptionSpec {
    pub fn build(&self) -> Result<crate::archive::crypto::Encryption> {
        crate::archive::crypto::encryption_from_args(
            &self.recipients,
            &self.recipients_files,
            self.passphrase_file.as_deref(),
            self.no_encryption,
        )
    }
}

#[derive(Debug, Clone)]
pub struct CheckSpec {
    pub fail_on: Option<Severity>,
    pub ignores: Ignores,
}

impl Job {
    /// What the job backs up, for messages: `pgdata, label volsafe.backup=true`.
    pub fn describe_volumes(&self) -> String {
        let mut parts = self.volumes.clone();
        if let Some(s) = &self.selector {
            parts.push(format!("label {s}"));
        }
        parts.join(", ")
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    parallel: Option<Spanned<i64>>,
    grace: Option<Spanned<String>>,
    #[serde(default)]
    defaults: RawJob,
    #[serde(default)]
    job: Vec<Spanned<RawJob>>,
}

/// A string or a list of strings.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// A job or the defaults: every key optional here.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct RawJob {
    name: Option<Spanned<String>>,
    volumes: Option<Spanned<Vec<String>>>,
    selector: Option<Spanned<String>>,
    cron: Option<Spanned<String>>,
    timezone: Option<Spanned<String>>,
    to: Option<Spanned<String>>,
    recipients: Option<Vec<String>>,
    recipients_file: Option<OneOrMany>,
    passphrase_file: Option<String>,
    no_encryption: Option<bool>,
    keep_last: Option<u32>,
    keep_hourly: Option<u32>,
    keep_daily: Option<u32>,
    keep_weekly: Option<u32>,
    keep_monthly: Option<u32>,
    keep_yearly: Option<u32>,
    keep_within: Option<Spanned<String>>,
    stop_containers: Option<bool>,
    check_fail_on: Option<Spanned<String>>,
    ignore: Option<Spanned<String>>,
    skip_check: Option<bool>,
    level: Option<Spanned<i64>>,
    allow_empty: Option<bool>,
    lock_wait: Option<Spanned<String>>,
    notify_url: Option<Spanned<String>>,
    drill: Option<Spanned<bool>>,
    drill_cron: Option<Spanned<String>>,
    drill_identity: Option<Spanned<OneOrMany>>,
    drill_max_age: Option<Spanned<String>>,
}

macro_rules! merge {
    ($job:ident, $defaults:ident, $($field:ident),*) => {
        $( if $job.$field.is_none() { $job.$field = $defaults.$field.clone(); } )*
    };
}

impl RawJob {
    /// Fills every key the job leaves out from the defaults.
    fn with_defaults(mut self, d: &RawJob) -> RawJob {
        merge!(
            self,
            d,
            volumes,
            selector,
            cron,
            timezone,
            to,
            recipients,
            recipients_file,
            passphrase_file,
            no_encryption,
            keep_last,
            keep_hourly,
            keep_daily,
            keep_weekly,
            keep_monthly,
            keep_yearly,
            keep_within,
            stop_containers,
            check_fail_on,
            ignore,
            skip_check,
            level,
            allow_empty,
            lock_wait,
            notify_url,
            drill,
            drill_cron,
            drill_identity,
            drill_max_age
        );
        self
    }
}

/// Reads and checks the config file.
pub fn load(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        usage(
            format!("schedule config {}: cannot read ({e})", path.display()),
            "check the path given to --config",
        )
    })?;
    parse(path, &text)
}

/// Checks the text of the config file named `path`.
pub fn parse(path: &Path, text: &str) -> Result<Config> {
    let file = path.display().to_string();
    let line_of = |offset: usize| crate::error::line_of(text, offset);
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        crate::error::toml_syntax(&format!("schedule config {file}"), text, &e, HINT)
    })?;
    let err = |span: Range<usize>, what: String, hint: &str| {
        usage(
            format!(
                "schedule config {file}, line {}: {what}",
                line_of(span.start)
            ),
            hint,
        )
    };
    // Relative paths in the file are relative to the file, not to wherever
    // the scheduler was started.
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let base = absolute.parent().unwrap_or(Path::new("/"));
    let resolve = |p: &str| -> PathBuf {
        let p = PathBuf::from(p);
        if p.is_absolute() {
            p
        } else {
            base.join(p)
        }
    };

    let parallel = match raw.parallel {
        Some(p) if !(1..=64).contains(p.get_ref()) => {
            return Err(err(
                p.span(),
                format!("parallel = {}: must be 1 to 64", p.get_ref()),
                "parallel is how many jobs may run at once; 1 runs them one after another",
            ))
        }
        Some(p) => *p.get_ref() as usize,
        None => 1,
    };
    let grace = match raw.grace {
        Some(g) => humantime::parse_duration(g.get_ref()).map_err(|e| {
            err(
                g.span(),
                format!("grace {:?}: {e}", g.get_ref()),
                "write a duration such as \"5m\" or \"90s\"",
            )
        })?,
        None => DEFAULT_GRACE,
    };
    if raw.defaults.name.as_ref().is_some() {
        let span = raw
            .defaults
            .name
            .as_ref()
            .map(|n| n.span())
            .unwrap_or_default();
        return Err(err(
            span,
            "[defaults] cannot have a name".to_owned(),
            "name each [[job]] instead",
        ));
    }
    if raw.job.is_empty() {
        return Err(usage(
            format!("schedule config {file}: no [[job]]"),
            "add at least one [[job]] with name, cron and volumes or selector (docs/schedule.md)",
        ));
    }

    let mut names = BTreeSet::new();
    let mut jobs = Vec::new();
    for spanned in raw.job {
        let job_span = spanned.span();
        let job = spanned.into_inner().with_defaults(&raw.defaults);
        let Some(name) = job.name.clone() else {
            return Err(err(
                job_span,
                "a [[job]] without a name".to_owned(),
                "add name = \"…\" (letters, digits, '.', '_', '-'); it labels logs and metrics",
            ));
        };
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if name.get_ref().is_empty() || !name.get_ref().chars().all(valid) {
            return Err(err(
                name.span(),
                format!(
                    "job name {:?}: use letters, digits, '.', '_' and '-'",
                    name.get_ref()
                ),
                "the name labels logs and metrics",
            ));
        }
        if !names.insert(name.get_ref().clone()) {
            return Err(err(
                name.span(),
                format!("job {}: the name is used twice", name.get_ref()),
                "give each [[job]] its own name",
            ));
        }
        jobs.push(check_job(
            job,
            &raw.defaults,
            name,
            job_span,
            &err,
            &resolve,
        )?);
    }
    Ok(Config {
        file: path.to_path_buf(),
        parallel,
        grace,
        jobs,
    })
}

type ErrFn<'a> = dyn Fn(Range<usize>, String, &str) -> anyhow::Error + 'a;

/// Checks one job whose defaults are applied.
fn check_job(
    job: RawJob,
    defaults: &RawJob,
    name: Spanned<String>,
    job_span: Range<usize>,
    err: &ErrFn<'_>,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Result<Job> {
    let n = name.get_ref().clone();
    let volumes = match &job.volumes {
        Some(v) => {
            for vol in v.get_ref() {
                crate::engine::volume::check_name(vol).map_err(|e| {
                    err(
                        v.span(),
                        format!("job {n}: {e:#}"),
                        "name existing Docker volumes",
                    )
                })?;
            }
            v.get_ref().clone()
        }
        None => Vec::new(),
    };
    let selector = match &job.selector {
        Some(s) => {
            let text = s.get_ref().trim();
            let key = text.split('=').next().unwrap_or("");
            if key.trim().is_empty() || key.contains(char::is_whitespace) {
                return Err(err(
                    s.span(),
                    format!("job {n}: selector {text:?} is not a label selector"),
                    "write key=value (or just key), such as selector = \"volsafe.backup=true\"",
                ));
            }
            Some(text.to_owned())
        }
        None => None,
    };
    if volumes.is_empty() && selector.is_none() {
        return Err(err(
            job_span,
            format!("job {n}: no volumes and no selector"),
            "add volumes = [\"…\"] or selector = \"volsafe.backup=true\"",
        ));
    }

    let tz = match &job.timezone {
        Some(t) => t.get_ref().parse::<Tz>().map_err(|_| {
            err(
                t.span(),
                format!(
                    "job {n}: timezone {:?} is not an IANA timezone name",
                    t.get_ref()
                ),
                "use a name like Europe/Berlin or UTC (the files under /usr/share/zoneinfo)",
            )
        })?,
        None => crate::jobs::prune::system_timezone(),
    };
    let Some(cron) = &job.cron else {
        return Err(err(
            job_span,
            format!("job {n}: no cron"),
            "add cron = \"30 2 * * *\" (minute hour day month weekday)",
        ));
    };
    let schedule = Schedule::parse(cron.get_ref(), tz).map_err(|e| {
        err(
            cron.span(),
            format!("job {n}: cron {:?}: {e}", cron.get_ref()),
            CRON_HINT,
        )
    })?;
    let Some(to) = &job.to else {
        return Err(err(
            job_span,
            format!("job {n}: no destination"),
            "add to = \"/backups\" here or in [defaults]",
        ));
    };
    if to.get_ref().trim().is_empty() || to.get_ref() == "-" {
        return Err(err(
            to.span(),
            format!("job {n}: to = {:?} is not a directory", to.get_ref()),
            "the scheduler writes into a backup directory, such as to = \"/backups\"",
        ));
    }

    let encryption = EncryptionSpec {
        recipients: job.recipients.clone().unwrap_or_default(),
        recipients_files: job
            .recipients_file
            .clone()
            .map(OneOrMany::into_vec)
            .unwrap_or_default()
            .iter()
            .map(|p| resolve(p))
            .collect(),
        passphrase_file: job.passphrase_file.as_deref().map(resolve),
        no_encryption: job.no_encryption.unwrap_or(false),
    };
    let written = encryption.build().map_err(|e| {
        err(
            job_span.clone(),
            format!("job {n}: {e:#}"),
            "set recipients, recipients_file, passphrase_file or no_encryption = true",
        )
    })?;

    let within = match &job.keep_within {
        Some(w) => Some(humantime::parse_duration(w.get_ref()).map_err(|e| {
            err(
                w.span(),
                format!("job {n}: keep_within {:?}: {e}", w.get_ref()),
                "write a duration such as \"30days\" (m means minutes)",
            )
        })?),
        None => None,
    };
    let policy = Policy {
        last: job.keep_last.unwrap_or(0),
        hourly: job.keep_hourly.unwrap_or(0),
        daily: job.keep_daily.unwrap_or(0),
        weekly: job.keep_weekly.unwrap_or(0),
        monthly: job.keep_monthly.unwrap_or(0),
        yearly: job.keep_yearly.unwrap_or(0),
        within,
    };

    let skip_check = job.skip_check.unwrap_or(false);
    let fail_on = match &job.check_fail_on {
        Some(s) => Some(
            <Severity as clap::ValueEnum>::from_str(s.get_ref(), true).map_err(|_| {
                err(
                    s.span(),
                    format!("job {n}: check_fail_on {:?} is not a severity", s.get_ref()),
                    "use info, low, medium, high or critical",
                )
            })?,
        ),
        None => None,
    };
    let ignores = match &job.ignore {
        Some(p) => ignore::load(&resolve(p.get_ref())).map_err(|e| {
            err(
                p.span(),
                format!("job {n}: {e:#}"),
                "fix the ignore file (docs/checks.md)",
            )
        })?,
        None => Ignores::empty(),
    };
    let level = match &job.level {
        Some(l) if !(1..=19).contains(l.get_ref()) => {
            return Err(err(
                l.span(),
                format!("job {n}: level {} is not 1 to 19", l.get_ref()),
                "zstd levels go from 1 (fast) to 19 (small); the default is 3",
            ))
        }
        Some(l) => *l.get_ref() as i32,
        None => 3,
    };
    let lock_wait = match &job.lock_wait {
        Some(w) => humantime::parse_duration(w.get_ref()).map_err(|e| {
            err(
                w.span(),
                format!("job {n}: lock_wait {:?}: {e}", w.get_ref()),
                "write a duration such as \"5m\"",
            )
        })?,
        None => Duration::from_secs(300),
    };
    let notify_url = match &job.notify_url {
        Some(u) => Some(super::notify::check_url(u.get_ref()).map_err(|e| {
            err(
                u.span(),
                format!("job {n}: notify_url {:?}: {e}", u.get_ref()),
                "write http(s)://host[:port]/path",
            )
        })?),
        None => None,
    };
    drill::check_unused(&job, defaults, &n, err)?;
    let drill = drill::check(&job, &n, tz, &encryption, &written, err, resolve)?;

    Ok(Job {
        name: n,
        volumes,
        selector,
        schedule,
        to: resolve(to.get_ref()),
        encryption,
        policy,
        stop_containers: job.stop_containers.unwrap_or(false),
        check: (!skip_check).then_some(CheckSpec { fail_on, ignores }),
        level,
        allow_empty: job.allow_empty.unwrap_or(false),
        lock_wait,
        notify_url,
        drill,
    })
}

#[cfg(test)]
mod tests;
