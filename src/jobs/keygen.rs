//! `volsafe keygen`: a new age X25519 identity, written as age-keygen does.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use age::secrecy::ExposeSecret;
use anyhow::Result;

use crate::archive::crypto::new_identity;
use crate::error::{failed, Exit};
use crate::StdoutError;

pub fn run(output: Option<&Path>) -> Result<Exit> {
    let (identity, public) = new_identity();
    match output {
        Some(path) => {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| {
                    let hint = if e.kind() == io::ErrorKind::AlreadyExists {
                        "volsafe never overwrites a key: choose another file name"
                    } else {
                        "check the path and its directory's permissions"
                    };
                    failed(format!("identity file {}: {e}", path.display()), hint)
                })?;
            f.write_all(identity.expose_secret().as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| {
                    failed(
                        format!("identity file {}: {e}", path.display()),
                        "check free space",
                    )
                })?;
            crate::out_line(&public)?;
        }
        None => {
            let mut stdout = io::stdout().lock();
            stdout
                .write_all(identity.expose_secret().as_bytes())
                .and_then(|()| stdout.flush())
                .map_err(StdoutError)?;
            eprintln!("Public key: {public}");
        }
    }
    Ok(Exit::Success)
}
