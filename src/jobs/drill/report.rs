//! What a drill found, per volume and in all, and how it is printed.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use super::Difference;
use crate::check::secrets;
use crate::error::{find_user_error, Exit, Kind};
use crate::progress::human;

/// The result of one volume's drill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Restored and matched its manifest (or, without one, restored intact).
    Pass,
    /// The proof failed: no archive, too old, damaged, or a mismatch.
    Fail,
    /// The drill could not be carried out (daemon, disk, keys).
    Error,
}

/// What a drill found for one volume.
#[derive(Debug, Clone, Serialize)]
pub struct VolumeReport {
    pub volume: String,
    pub result: Verdict,
    pub archive: Option<PathBuf>,
    /// When the archive was made (RFC 3339).
    pub created: Option<String>,
    /// Recovery point: the archive's age when the drill started.
    pub rpo_seconds: Option<f64>,
    /// Recovery time: how long the restore into the scratch volume took.
    pub rto_seconds: Option<f64>,
    /// Whether the archive carries a per-entry manifest.
    pub manifest: Option<bool>,
    pub entries_checked: u64,
    pub bytes_checked: u64,
    pub mismatches: u64,
    /// The first few mismatches, in name order.
    pub first_mismatches: Vec<Difference>,
    /// Why the volume failed or could not be drilled.
    pub problems: Vec<String>,
    /// Information: no manifest, settings that differ from the live
    /// volume, newer archives without a valid sidecar, clamped mtimes.
    pub notes: Vec<String>,
    /// With `--compare-live`: what changed in the live volume since the backup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<LiveChanges>,
    /// The scratch volume, when it was kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scratch: Option<String>,
}

/// Differences between the live volume and the backup (information only).
#[derive(Debug, Clone, Serialize)]
pub struct LiveChanges {
    pub added: u64,
    pub removed: u64,
    pub changed: u64,
    pub first: Vec<Difference>,
}

impl VolumeReport {
    pub(super) fn new(volume: &str) -> Self {
        VolumeReport {
            volume: volume.to_owned(),
            result: Verdict::Pass,
            archive: None,
            created: None,
            rpo_seconds: None,
            rto_seconds: None,
            manifest: None,
            entries_checked: 0,
            bytes_checked: 0,
            mismatches: 0,
            first_mismatches: Vec::new(),
            problems: Vec::new(),
            notes: Vec::new(),
            live: None,
            scratch: None,
        }
    }

    pub(super) fn fail(&mut self, problem: impl Into<String>) {
        self.problems.push(problem.into());
        if self.result == Verdict::Pass {
            self.result = Verdict::Fail;
        }
    }

    pub(super) fn error(&mut self, problem: impl Into<String>) {
        self.problems.push(problem.into());
        self.result = Verdict::Error;
    }

    /// Records a step's error as a failed proof (the archive does not
    /// restore) or as an error of the drill itself (daemon, keys, disk).
    pub(super) fn step_failed(&mut self, e: &anyhow::Error) {
        let mut text = secrets::scrub(&format!("{e:#}"));
        let user = find_user_error(e);
        if let Some(hint) = user.and_then(|u| u.hint.as_deref()) {
            text = format!("{text} (hint: {hint})");
        }
        match user.map(|u| u.kind) {
            Some(Kind::Integrity) => self.fail(text),
            _ => self.error(text),
        }
    }
}

/// The drill of every selected volume.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub daemon: String,
    pub dir: PathBuf,
    pub volumes: Vec<VolumeReport>,
    pub passed: usize,
    pub failed: usize,
    pub errors: usize,
}

impl Report {
    /// 0 when every volume passed; 3 when any failed its proof; 1 when the
    /// rest passed but a drill could not be carried out.
    pub fn exit(&self) -> Exit {
        if self.failed > 0 {
            Exit::Integrity
        } else if self.errors > 0 {
            Exit::Failed
        } else {
            Exit::Success
        }
    }
}

fn seconds(s: Option<f64>) -> String {
    match s {
        Some(s) if s >= 60.0 => {
            humantime::format_duration(Duration::from_secs(s as u64)).to_string()
        }
        Some(s) => format!("{s:.1}s"),
        None => "-".to_owned(),
    }
}

pub(super) fn print_text(report: &Report) -> Result<()> {
    for v in &report.volumes {
        let word = match v.result {
            Verdict::Pass => "pass ",
            Verdict::Fail => "FAIL ",
            Verdict::Error => "ERROR",
        };
        let checked = match v.manifest {
            Some(true) => format!(
                "{} entries, {} checked",
                v.entries_checked,
                human(v.bytes_checked)
            ),
            Some(false) => "no manifest".to_owned(),
            None => "not restored".to_owned(),
        };
        crate::out_line(format!(
            "{word} {}: RTO {}, RPO {}, {checked}",
            v.volume,
            seconds(v.rto_seconds),
            seconds(v.rpo_seconds)
        ))?;
        if let Some(a) = &v.archive {
            crate::out_line(format!("      archive {}", a.display()))?;
        }
        for p in &v.problems {
            crate::out_line(format!("      problem: {p}"))?;
        }
        for d in &v.first_mismatches {
            crate::out_line(format!("      {}: {}", d.path, d.problem))?;
        }
        if v.mismatches > v.first_mismatches.len() as u64 {
            crate::out_line(format!(
                "      … and {} more",
                v.mismatches - v.first_mismatches.len() as u64
            ))?;
        }
        for n in &v.notes {
            crate::out_line(format!("      note: {n}"))?;
        }
        if let Some(l) = &v.live {
            crate::out_line(format!(
                "      live volume since the backup: {} added, {} removed, {} changed",
                l.added, l.removed, l.changed
            ))?;
            for d in &l.first {
                crate::out_line(format!("        {}: {}", d.path, d.problem))?;
            }
        }
        if let Some(s) = &v.scratch {
            crate::out_line(format!("      scratch volume kept: {s}"))?;
        }
    }
    crate::out_line(format!(
        "{} passed, {} failed, {} errors",
        report.passed, report.failed, report.errors
    ))
}
