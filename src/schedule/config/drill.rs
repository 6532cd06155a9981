//! The drill keys of a job: `drill`, `drill_cron`, `drill_identity` and
//! `drill_max_age`.
//!
//! What must stay true: a job that drills archives it could not decrypt is
//! refused at start and at reload, naming the line. The keys are tried on
//! a small message encrypted to the job's recipients, so an identity of
//! the wrong key is caught as surely as a missing one.

use std::io::Write;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use chrono_tz::Tz;

use super::{EncryptionSpec, ErrFn, RawJob, CRON_HINT};
use crate::archive::crypto::{Decryption, Encryption};
use crate::schedule::timing::Schedule;

/// When and how a job's archives are drilled (`volsafe drill` of the
/// newest archive of each volume in the job's `to`).
#[derive(Debug, Clone)]
pub struct DrillSpec {
    /// Drill the volumes a run just backed up, after the run (`drill`).
    pub after_backup: bool,
    /// Drills on their own cron, in the job's timezone (`drill_cron`).
    pub schedule: Option<Schedule>,
    pub identity_files: Vec<PathBuf>,
    /// The job's passphrase file (`None`: `VOLSAFE_PASSPHRASE`, if set).
    pub passphrase_file: Option<PathBuf>,
    pub max_age: Option<Duration>,
}

impl DrillSpec {
    /// The keys, read again at each drill (a rotated file is picked up).
    pub fn keys(&self) -> crate::jobs::restore::Keys {
        crate::jobs::restore::Keys {
            identity_files: self.identity_files.clone(),
            passphrase_file: self.passphrase_file.clone(),
            inline: None,
        }
    }
}

/// Refuses a drill key written in a job that never drills (one inherited
/// from `defaults` is fine): it says drills were expected, and saying
/// nothing would hide that none run.
pub(super) fn check_unused(
    job: &RawJob,
    defaults: &RawJob,
    n: &str,
    err: &ErrFn<'_>,
) -> Result<()> {
    if job.drill.as_ref().is_some_and(|d| *d.get_ref())
        || job
            .drill_cron
            .as_ref()
            .is_some_and(|c| !c.get_ref().trim().is_empty())
    {
        return Ok(());
    }
    // Merged keys keep their spans: one equal to the default's came from it.
    let own = |key: Option<Range<usize>>, default: Option<Range<usize>>| {
        key.filter(|k| Some(k) != default.as_ref())
    };
    let lone = own(
        job.drill_max_age.as_ref().map(|a| a.span()),
        defaults.drill_max_age.as_ref().map(|a| a.span()),
    )
    .map(|s| ("drill_max_age", s))
    .or_else(|| {
        own(
            job.drill_identity.as_ref().map(|i| i.span()),
            defaults.drill_identity.as_ref().map(|i| i.span()),
        )
        .map(|s| ("drill_identity", s))
    });
    match lone {
        Some((key, span)) => Err(err(
            span,
            format!("job {n}: {key} is set, but the job never drills"),
            "add drill = true (after each backup) or drill_cron = \"…\", or remove the line",
        )),
        None => Ok(()),
    }
}

/// Checks the drill keys of one job whose defaults are applied. `None`:
/// the job never drills. `written` is what the job's backups write.
pub(super) fn check(
    job: &RawJob,
    n: &str,
    tz: Tz,
    encryption: &EncryptionSpec,
    written: &Encryption,
    err: &ErrFn<'_>,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Result<Option<DrillSpec>> {
    let after_backup = job.drill.as_ref().is_some_and(|d| *d.get_ref());
    let schedule = match &job.drill_cron {
        // An empty cron turns off one taken from [defaults].
        Some(c) if c.get_ref().trim().is_empty() => None,
        Some(c) => Some(Schedule::parse(c.get_ref(), tz).map_err(|e| {
            err(
                c.span(),
                format!("job {n}: drill_cron {:?}: {e}", c.get_ref()),
                CRON_HINT,
            )
        })?),
        None => None,
    };
    let max_age = match &job.drill_max_age {
        Some(a) => Some(humantime::parse_duration(a.get_ref()).map_err(|e| {
            err(
                a.span(),
                format!("job {n}: drill_max_age {:?}: {e}", a.get_ref()),
                "write a duration such as \"26h\" or \"8days\" (m means minutes)",
            )
        })?),
        None => None,
    };
    if !after_backup && schedule.is_none() {
        return Ok(None);
    }
    let spec = DrillSpec {
        after_backup,
        schedule,
        identity_files: job
            .drill_identity
            .as_ref()
            .map(|i| i.get_ref().clone().into_vec())
            .unwrap_or_default()
            .iter()
            .map(|p| resolve(p))
            .collect(),
        passphrase_file: encryption.passphrase_file.clone(),
        max_age,
    };

    // The line that asked for drills, or the one naming the keys.
    let asked = match &job.drill {
        Some(d) if *d.get_ref() => d.span(),
        _ => job
            .drill_cron
            .as_ref()
            .map(|c| c.span())
            .unwrap_or_default(),
    };
    let keys_line = job
        .drill_identity
        .as_ref()
        .map_or(asked.clone(), |i| i.span());
    let keys = spec.keys().load().map_err(|e| {
        err(
            keys_line.clone(),
            format!("job {n}: {e:#}"),
            "drill_identity names age identity files or unencrypted SSH private keys",
        )
    })?;
    if let Encryption::Recipients(recipients) = written {
        if spec.identity_files.is_empty() {
            return Err(err(
                asked,
                format!("job {n}: drills need a key, and the job's archives are encrypted to recipients"),
                "add drill_identity = \"/etc/volsafe/identity\", the identity file of one of the recipients",
            ));
        }
        let opened = opens(recipients, &keys).map_err(|e| {
            err(
                keys_line.clone(),
                format!("job {n}: cannot try drill_identity on the job's recipients: {e:#}"),
                "a recipient cannot be encrypted to (the job's backups would fail the same way): fix or remove it in recipients",
            )
        })?;
        if !opened {
            return Err(err(
                keys_line,
                format!("job {n}: drill_identity matches none of the job's recipients"),
                "name the identity file of one of the recipients (age-keygen -y FILE shows its recipient)",
            ));
        }
    }
    Ok(Some(spec))
}

/// Whether `keys` decrypt what is encrypted to `recipients`: a small
/// message round-trips, whatever the kinds of keys (age, SSH). An error
/// means the message could not be encrypted, which says nothing of the keys.
fn opens(recipients: &[Box<dyn age::Recipient + Send + Sync>], keys: &Decryption) -> Result<bool> {
    let encryptor = age::Encryptor::with_recipients(recipients.iter().map(|r| r.as_ref() as _))?;
    let mut w = encryptor.wrap_output(Vec::new())?;
    w.write_all(b"volsafe drill")?;
    let sealed = w.finish()?;
    Ok(age::Decryptor::new(&sealed[..])
        .and_then(|d| d.decrypt(keys.identities.iter().map(|i| i.as_ref())))
        .is_ok())
}
