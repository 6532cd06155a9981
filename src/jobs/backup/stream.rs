//! Reading a volume's tar out of its helper, from a streaming helper's
//! FIFO or through the Engine's archive endpoint, and re-framing it as a
//! volsafe archive.

use std::io;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use anyhow::{Context, Result};

use super::{explain_dest, NewArchive, Output};
use crate::archive::names::{self, MOUNT_DIR};
use crate::archive::tarstream::{EntryKind, TarReader};
use crate::archive::{ArchiveWriter, EntryData, Written};
use crate::engine::helper::Helper;
use crate::engine::streamer;
use crate::engine::Engine;
use crate::error::failed;
use crate::jobs::bridge;

/// Streams the volume mounted in `helper` into an archive written to `out`:
/// from the helper's FIFO when it streams, else through the archive
/// endpoint.
pub async fn stream_volume(
    engine: &Engine,
    helper: &Helper,
    out: Output,
    job: NewArchive,
    counter: Arc<AtomicU64>,
) -> Result<Written<()>> {
    let volume = helper.volume.clone();
    let written = match &helper.staging {
        Some(staging) if streamer::wanted(engine) => {
            match streamer::start(engine, &helper.id, staging, counter.clone()).await {
                Ok(Some(streaming)) => from_fifo(streaming, out, job).await,
                Ok(None) => from_endpoint(engine, helper, out, job, counter).await,
                Err(e) => {
                    streamer::turn_down(&format!("cannot read a streaming helper's FIFO: {e}"));
                    from_endpoint(engine, helper, out, job, counter).await
                }
            }
        }
        _ => from_endpoint(engine, helper, out, job, counter).await,
    };
    written
        .map_err(explain_mount)
        .with_context(|| format!("volume {volume}"))
}

async fn from_endpoint(
    engine: &Engine,
    helper: &Helper,
    out: Output,
    job: NewArchive,
    counter: Arc<AtomicU64>,
) -> Result<Written<()>> {
    let (pump, input) =
        bridge::download(engine, &helper.id, &format!("/{MOUNT_DIR}"), Some(counter));
    // A task of its own, so that it moves bytes while this task waits on
    // the writer; it ends once the reader is gone.
    let pump = tokio::spawn(pump);
    let work = tokio::task::spawn_blocking(move || {
        reframe(input, "the daemon", out, job).map_err(explain_dest)
    });
    let (_, joined) = tokio::join!(pump, work);
    joined.context("the archive writer stopped unexpectedly")?
}

/// The hint for what volsafe-tar could not read: root refused (NFS with
/// root_squash, FUSE), or the file system failing.
fn unreadable_hint(said: &str) -> String {
    let env = streamer::ENV;
    if said.contains("Permission denied") || said.contains("Operation not permitted") {
        format!(
            "the helper reads the volume as root with no other privilege (root may be \
             refused on NFS or FUSE); to back it up without such files, through the \
             Engine's archive endpoint, set {env}=endpoint"
        )
    } else {
        format!(
            "check the volume's file system (the daemon's log, `dmesg`); {env}=endpoint \
             reads it through the Engine's archive endpoint, which leaves out what it \
             cannot read"
        )
    }
}

/// Reads volsafe-tar's stream. What it says when it fails comes first: the
/// stream it cut short says only that it ended early.
async fn from_fifo(
    streaming: streamer::Streaming,
    out: Output,
    job: NewArchive,
) -> Result<Written<()>> {
    let streamer::Streaming { reader, exit } = streaming;
    tracing::debug!("reading the streaming helper's FIFO");
    let work = tokio::task::spawn_blocking(move || {
        reframe(reader, "the streaming helper", out, job).map_err(explain_dest)
    });
    let joined = work
        .await
        .context("the archive writer stopped unexpectedly")?;
    // volsafe's own failure (the destination full, the volume empty) comes
    // first: the helper's, if any, follows from it.
    if let Err(e) = &joined {
        if crate::error::find_user_error(e).is_some() {
            return joined;
        }
    }
    match (exit.ended().await, joined) {
        (streamer::Ended::Done, written) => written,
        (streamer::Ended::Unread, Err(e)) => Err(e),
        (streamer::Ended::Unread, Ok(_)) => Err(failed(
            "the streaming helper could not write its whole stream",
            "run the backup again; if it keeps failing, look at the daemon's log",
        )),
        // Still the cut stream underneath, so the backup is tried again.
        (streamer::Ended::Shrank(said), Err(e)) => Err(e.context(said)),
        (streamer::Ended::Shrank(said), Ok(_)) => Err(failed(
            said,
            "run the backup again, or stop what writes to the volume (--stop-containers)",
        )),
        (streamer::Ended::Unreadable(said), _) => {
            let hint = unreadable_hint(&said);
            Err(failed(said, hint))
        }
        (streamer::Ended::Misplaced(said), _) => Err(failed(
            said,
            "the helper image's layout (a symlink at /volume or on the way to it) moved \
             the mounts: use an image without one, or leave out --helper-image",
        )),
        (streamer::Ended::Lost(said), _) => Err(failed(
            said,
            "check that the daemon is running (`docker info`); a later run removes the \
             helper this one leaves once its lease expires",
        )),
        (streamer::Ended::Failed(said), _) => Err(failed(
            said,
            "run the backup again; if it keeps failing, look at the daemon's log",
        )),
    }
}

/// The daemon mounts a volume when the helper's archive is read: a driver
/// that cannot (a CIFS share away, wrong options) fails the stream with the
/// mount's message. Gives it a hint.
fn explain_mount(e: anyhow::Error) -> anyhow::Error {
    let text = format!("{e:#}");
    if crate::error::find_user_error(&e).is_some() || !text.contains("error while mounting volume")
    {
        return e;
    }
    crate::error::UserError::new(crate::error::Kind::Failed, crate::check::secrets::scrub(&text))
        .hint("the daemon could not mount the volume: check its driver and options with `docker volume inspect` and the daemon's log")
        .into()
}

/// Reads the volume's tar as the Engine writes it (from `source`: the
/// daemon or the streaming helper), renames each entry relative to the
/// volume root, and writes the archive. Runs on a blocking thread.
fn reframe(
    input: impl io::Read,
    source: &str,
    out: Output,
    job: NewArchive,
) -> Result<Written<()>> {
    let settings = job.settings;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1);
    let mut writer = ArchiveWriter::new(out, job.encryptor, &job.header, settings.level, threads)?;
    let mut tar = TarReader::new(input);
    while let Some(mut entry) = tar
        .next_entry()
        .with_context(|| format!("reading the volume from {source}"))?
    {
        let Some(path) = names::engine_to_archive(&entry.path) else {
            anyhow::bail!(
                "{source} sent an entry outside the volume: {:?}",
                entry.path_lossy()
            );
        };
        let first = tar.entries_read() == 1;
        if first != (path == b"./") || (first && entry.kind != EntryKind::Dir) {
            anyhow::bail!(
                "the stream from {source} does not start with the volume root ({:?})",
                entry.path_lossy()
            );
        }
        entry.path = path;
        // Owners are kept as numbers only (docs/format.md).
        entry.uname.clear();
        entry.gname.clear();
        if entry.kind == EntryKind::HardLink {
            if let Some(link) = entry.link.as_deref().and_then(names::engine_to_archive) {
                entry.link = Some(link);
            }
        }
        writer
            .append(&entry, &mut EntryData(&mut tar))
            .with_context(|| format!("reading {:?} from {source}", entry.path_lossy()))?;
    }
    if tar.entries_read() == 0 {
        anyhow::bail!("the stream from {source} held no entries");
    }
    if tar.entries_read() == 1 && !settings.allow_empty {
        return Err(failed(
            "the volume is empty; nothing was backed up",
            "pass --allow-empty to keep an archive of the empty volume (its root's owner and mode)",
        ));
    }
    let written = writer.finish()?;
    let (out, written) = written.split();
    out.finish()?;
    Ok(written)
}
