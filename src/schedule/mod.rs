//! `volsafe schedule` (in progress).

use anyhow::Result;

use crate::cli::ScheduleArgs;
use crate::error::{usage, Exit};
use crate::shutdown::Shutdown;

pub async fn run(_args: ScheduleArgs, _shutdown: Shutdown) -> Result<Exit> {
    Err(usage("schedule: not implemented yet", "this build has no scheduler"))
}
