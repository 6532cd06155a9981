//! The commands. Each takes a checked plan and returns an exit status.

pub mod backup;
pub mod bridge;
pub mod check;
pub mod drill;
pub mod keygen;
pub mod list;
pub mod prune;
pub mod restore;
pub mod verify;
