//! `volsafe prune` (in progress).

use anyhow::Result;

use crate::cli::PruneArgs;
use crate::error::{usage, Exit};

pub async fn run(_args: PruneArgs) -> Result<Exit> {
    Err(usage("prune: not implemented yet", "this build has no prune"))
}
