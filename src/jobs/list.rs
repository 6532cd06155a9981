//! `volsafe list`: the committed archives in a backup directory, from their
//! sidecars alone (no key needed).

use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

use crate::cli::OutputFormat;
use crate::error::Exit;
use crate::progress::human;
use crate::store::{self, Incomplete, Listed};

pub struct Plan {
    pub dir: PathBuf,
    pub volume: Option<String>,
    pub daemon: Option<String>,
    pub format: OutputFormat,
}

#[derive(Serialize)]
struct Out<'a> {
    archives: &'a [Listed],
    incomplete: &'a [Incomplete],
}

pub fn run(plan: Plan) -> Result<Exit> {
    let (listed, incomplete) =
        store::scan(&plan.dir, plan.daemon.as_deref(), plan.volume.as_deref())?;
    for i in &incomplete {
        tracing::warn!(path = %i.path.display(), volume = %i.volume, "incomplete backup (no sidecar); ignored");
    }
    match plan.format {
        OutputFormat::Json => {
            let out = Out {
                archives: &listed,
                incomplete: &incomplete,
            };
            crate::out_line(serde_json::to_string_pretty(&out)?)?;
        }
        OutputFormat::Text => {
            if !listed.is_empty() {
                crate::out_line(format!(
                    "{:<20} {:<24} {:<25} {:>10}  PATH",
                    "DAEMON", "VOLUME", "CREATED", "SIZE"
                ))?;
            }
            for l in &listed {
                crate::out_line(format!(
                    "{:<20} {:<24} {:<25} {:>10}  {}",
                    l.daemon,
                    l.volume,
                    l.created,
                    human(l.size),
                    l.path.display()
                ))?;
            }
            for i in &incomplete {
                crate::out_line(format!(
                    "{:<20} {:<24} {:<25} {:>10}  {}",
                    i.daemon,
                    i.volume,
                    "incomplete",
                    "-",
                    i.path.display()
                ))?;
            }
        }
    }
    Ok(Exit::Success)
}
