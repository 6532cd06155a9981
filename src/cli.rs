//! The command line as the user typed it.
//!
//! Nothing here is checked beyond what clap does; `plan` turns these structs
//! into checked settings. Doc comments are the `--help` text.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum, ValueHint};

pub use crate::check::Severity;

/// Back up Docker named volumes into compressed, encrypted archives, and
/// restore them exactly.
///
/// Archives are age(zstd(tar)): standard `age`, `zstd` and `tar` can always
/// unpack them without volsafe. volsafe needs no image from a registry: it
/// imports its own tiny helper image on first use.
#[derive(Debug, Parser)]
#[command(name = "volsafe", version, propagate_version = true)]
#[command(
    after_help = "Exit status: 0 success, 1 failed, 2 usage error, 3 integrity failure, \
4 security findings, 5 partial (some volumes failed), 130/143 interrupted."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    #[command(flatten, next_help_heading = "Global options")]
    pub global: GlobalArgs,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Format of log lines on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Show no progress bar or progress lines.
    #[arg(long, global = true)]
    pub no_progress: bool,

    /// Print only errors on stderr (implies --no-progress).
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// More detail in the logs (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Image for helper containers instead of volsafe's own (never pulled).
    #[arg(
        long,
        global = true,
        env = "VOLSAFE_HELPER_IMAGE",
        value_name = "IMAGE"
    )]
    pub helper_image: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    Text,
    Json,
    /// SARIF 2.1.0, for code scanning (compose locations only).
    Sarif,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a new age X25519 identity (like age-keygen).
    Keygen(KeygenArgs),
    /// Back up named volumes into encrypted archives.
    Backup(BackupArgs),
    /// Restore an archive into a volume.
    Restore(RestoreArgs),
    /// List the committed archives in a backup directory.
    List(ListArgs),
    /// Check an archive: its checksum, and its whole content with a key (or when unencrypted).
    Verify(VerifyArgs),
    /// Check the security of the volume configuration (host or compose file).
    Check(CheckArgs),
    /// Delete old archives by a retention policy (restic-style --keep-* rules).
    Prune(PruneArgs),
    /// Run backups on a schedule from a config file, until stopped.
    Schedule(ScheduleArgs),
    /// Prove that the newest backups restore: restore each into a scratch
    /// volume and compare every entry with the archive's manifest.
    Drill(DrillArgs),
}

impl Cli {
    /// Threads for the async runtime. Commands that move one stream at a
    /// time get one: the async side only moves HTTP bodies and waits on the
    /// daemon, the CPU work has threads of its own, and a second worker
    /// made the wake-ups bounce between two threads (a backup of 1 GiB: 5%
    /// more CPU, docs/performance.md). The scheduler and `backup
    /// --parallel N` keep one per core.
    pub fn async_workers(&self) -> Option<usize> {
        match &self.command {
            Command::Schedule(_) => None,
            Command::Backup(b) if b.parallel > 1 => None,
            _ => Some(1),
        }
    }
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Write the identity to FILE (mode 0600, never overwritten) and print
    /// the public recipient on stdout.
    #[arg(short, long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub output: Option<PathBuf>,
}

/// How an archive is encrypted: the flags shared by backup and restore.
#[derive(Debug, Args, Default)]
pub struct RecipientArgs {
    /// Encrypt to this recipient: an age public key (age1…) or an SSH public
    /// key (ssh-ed25519, ssh-rsa). Repeatable.
    #[arg(short = 'r', long = "recipient", value_name = "RECIPIENT")]
    pub recipients: Vec<String>,

    /// Encrypt to the recipients listed in FILE, one per line. Repeatable.
    #[arg(short = 'R', long = "recipients-file", value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub recipients_files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Named volumes to back up; each gets its own archive.
    #[arg(value_name = "VOLUME", required = true)]
    pub volumes: Vec<String>,

    /// Backup directory, or `-` for stdout (one volume only).
    #[arg(long, value_name = "DEST", value_hint = ValueHint::DirPath)]
    pub to: PathBuf,

    #[command(flatten)]
    pub recipients: RecipientArgs,

    /// Encrypt with the passphrase in FILE (first line) instead of keys;
    /// the VOLSAFE_PASSPHRASE environment variable works too.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub passphrase_file: Option<PathBuf>,

    /// zstd compression level (1-19).
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(i32).range(1..=19))]
    pub level: i32,

    /// Back up a volume even when it is empty.
    #[arg(long)]
    pub allow_empty: bool,

    /// Write an unencrypted archive (.tar.zst).
    #[arg(long, conflicts_with_all = ["recipients", "recipients_files", "passphrase_file"])]
    pub no_encryption: bool,

    /// Ignore file for the pre-backup security check (see `volsafe check`).
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub ignore: Option<PathBuf>,

    /// Back up nothing (exit 4) when the pre-backup check finds something
    /// at or above SEVERITY. Default: report findings, never abort.
    #[arg(long, value_name = "SEVERITY", value_enum)]
    pub check_fail_on: Option<Severity>,

    /// Stop every running container that mounts a volume being backed up,
    /// and start them again afterwards (also on errors and signals).
    #[arg(long)]
    pub stop_containers: bool,

    /// Do not run the pre-backup security check.
    #[arg(long, conflicts_with_all = ["check_fail_on", "ignore"])]
    pub skip_check: bool,

    /// Back up up to N volumes at once (they share one stop window).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub parallel: u32,

    /// How long to wait for another backup of the same volume to finish.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub lock_wait: u64,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// An archive, a backup directory (with --volume), or `-` for stdin.
    #[arg(value_name = "ARCHIVE|DIR|-", value_hint = ValueHint::AnyPath)]
    pub source: PathBuf,

    /// Volume to restore into (default: the name recorded in the archive).
    #[arg(long, value_name = "NAME")]
    pub volume: Option<String>,

    /// Identity file to decrypt with (age or SSH private key). Repeatable.
    #[arg(short = 'i', long = "identity", value_name = "IDENTITY", value_hint = ValueHint::FilePath)]
    pub identities: Vec<PathBuf>,

    /// Decrypt with the passphrase in FILE (first line); the
    /// VOLSAFE_PASSPHRASE environment variable works too.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub passphrase_file: Option<PathBuf>,

    /// Replace the content of a non-empty volume (a rollback archive of the
    /// current content is written first).
    #[arg(long)]
    pub replace: bool,

    /// Where to write the rollback archive (default: `rollback/` next to the
    /// archive; required when reading stdin).
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub rollback_to: Option<PathBuf>,

    /// Also encrypt the rollback archive to this recipient (age1… or an SSH
    /// public key). Repeatable.
    #[arg(short = 'r', long = "recipient", value_name = "RECIPIENT")]
    pub recipients: Vec<String>,

    /// Also encrypt the rollback archive to the recipients in FILE.
    #[arg(short = 'R', long = "recipients-file", value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub recipients_files: Vec<PathBuf>,

    /// Write the rollback archive of an unencrypted archive unencrypted.
    #[arg(long)]
    pub no_encryption: bool,

    /// Apply saved driver options that point outside Docker (device, o=bind,
    /// type=nfs/cifs) when creating the volume.
    #[arg(long)]
    pub driver_options: bool,

    /// With a DIR, pick archives of this daemon (default: the local one).
    #[arg(long, value_name = "NAME")]
    pub daemon: Option<String>,
}

#[derive(Debug, Args)]
pub struct DrillArgs {
    /// Backup directory.
    #[arg(value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub dir: PathBuf,

    /// Drill this volume (repeatable; default: every volume of the daemon
    /// with committed archives in DIR).
    #[arg(long = "volume", value_name = "NAME")]
    pub volumes: Vec<String>,

    /// Archives of this daemon (default: the one volsafe talks to).
    #[arg(long, value_name = "NAME")]
    pub daemon: Option<String>,

    /// Identity file to decrypt with. Repeatable.
    #[arg(short = 'i', long = "identity", value_name = "IDENTITY", value_hint = ValueHint::FilePath)]
    pub identities: Vec<PathBuf>,

    /// Decrypt with the passphrase in FILE (first line).
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub passphrase_file: Option<PathBuf>,

    /// Also read the live volume (read-only) and list what changed since
    /// the backup; information, never a failure.
    #[arg(long)]
    pub compare_live: bool,

    /// Keep the scratch volumes (named in the report) for inspection.
    #[arg(long)]
    pub keep_scratch: bool,

    /// Fail a volume whose newest archive is older than this (e.g. 26h, 7d).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub max_age: Option<std::time::Duration>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Backup directory.
    #[arg(value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub dir: PathBuf,

    /// Only archives of this volume.
    #[arg(long, value_name = "NAME")]
    pub volume: Option<String>,

    /// Only archives of this daemon (default: every daemon's).
    #[arg(long, value_name = "NAME")]
    pub daemon: Option<String>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The archive to check.
    #[arg(value_name = "ARCHIVE", value_hint = ValueHint::FilePath)]
    pub archive: PathBuf,

    /// Identity file: with one, the whole archive is decrypted and checked.
    #[arg(short = 'i', long = "identity", value_name = "IDENTITY", value_hint = ValueHint::FilePath)]
    pub identities: Vec<PathBuf>,

    /// Decrypt with the passphrase in FILE (first line).
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub passphrase_file: Option<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Check these volumes and the containers that mount them (default:
    /// every volume and container on the host).
    #[arg(value_name = "VOLUME", conflicts_with = "compose")]
    pub volumes: Vec<String>,

    /// Check a compose file instead of the host; no daemon is needed.
    /// Repeatable; each file is checked on its own.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub compose: Vec<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = CheckFormat::Text)]
    pub format: CheckFormat,

    /// Exit 4 when a finding at or above SEVERITY remains (default: report only).
    #[arg(long, value_name = "SEVERITY", value_enum)]
    pub fail_on: Option<Severity>,

    /// Ignore file: findings to suppress, each with a reason.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub ignore: Option<PathBuf>,

    /// Show suppressed findings too, with their reasons.
    #[arg(long)]
    pub show_suppressed: bool,

    /// Backup directory: report volumes without a recent backup (BAK004).
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath, conflicts_with = "compose")]
    pub backups: Option<PathBuf>,

    /// BAK004 is medium for a newest backup older than this.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = humantime::parse_duration)]
    pub backup_age_medium: Duration,

    /// BAK004 is high for a newest backup older than this, or none.
    #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = humantime::parse_duration)]
    pub backup_age_high: Duration,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Backup directory.
    #[arg(value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub dir: PathBuf,

    /// Only this volume's archives (default: every volume of the daemon).
    #[arg(long, value_name = "NAME")]
    pub volume: Option<String>,

    /// Archives of this daemon (default: the local daemon's name).
    #[arg(long, value_name = "NAME")]
    pub daemon: Option<String>,

    /// Keep the N newest archives.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,

    /// Keep the newest archive of each of the last N hours that have one.
    #[arg(long, value_name = "N")]
    pub keep_hourly: Option<u32>,

    /// Keep the newest archive of each of the last N days that have one.
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,

    /// Keep the newest archive of each of the last N weeks that have one.
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,

    /// Keep the newest archive of each of the last N months that have one.
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,

    /// Keep the newest archive of each of the last N years that have one.
    #[arg(long, value_name = "N")]
    pub keep_yearly: Option<u32>,

    /// Keep every archive younger than DURATION (relative to the newest).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub keep_within: Option<Duration>,

    /// Timezone of the periods (IANA name; default: the system's, else UTC).
    #[arg(long, value_name = "TZ")]
    pub timezone: Option<String>,

    /// Prune the rollback archives of restores (`rollback/`) instead.
    #[arg(long)]
    pub rollback: bool,

    /// Say what would be deleted; delete nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,

    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// The schedule: a TOML file (docs/schedule.md).
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub config: PathBuf,

    /// Validate the config, print each job's next backup and drill times, and exit.
    #[arg(long)]
    pub check_config: bool,

    /// Serve /healthz and /metrics (Prometheus) on this address, e.g. 127.0.0.1:9850.
    #[arg(long, value_name = "ADDR")]
    pub status_addr: Option<std::net::SocketAddr>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_debug_assert() {
        Cli::command().debug_assert();
    }
}
