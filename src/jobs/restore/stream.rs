//! The streams of a restore: reading and checking an archive, looking into a
//! volume, and extracting an archive into a volume through a helper: a
//! streaming one that extracts from a FIFO on a local daemon, else through
//! the Engine's archive endpoint.
//!
//! The end-of-archive marker is written only after the whole archive
//! checked out (age chunks, zstd checksums, tar structure, trailer);
//! anything else ends the upload with an error, or closes the FIFO
//! without it, so a damaged archive is never extracted as if it were
//! complete.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use bollard::query_parameters::UploadToContainerOptions;
use tokio::sync::mpsc;

use super::{Ctx, Keys};
use crate::archive::names::{self, MOUNT_DIR};
use crate::archive::tarstream::{Entry, EntryKind, TarReader, TarWriter};
use crate::archive::{walk, ArchiveReader, Summary};
use crate::engine::helper::{self, Access};
use crate::engine::message_of;
use crate::engine::streamer;
use crate::error::{failed, interrupted};
use crate::jobs::bridge::{self, ChannelWriter, DEPTH};
use crate::progress::Progress;
use crate::shutdown::Shutdown;

/// Writes to an extracting helper's FIFO go out in pieces this large.
const FIFO_BUF: usize = 1 << 20;

/// Opens an archive file for reading, counting the raw bytes read.
pub fn open_archive(
    path: &Path,
    keys: &Keys,
    label: &str,
    counter: Option<Arc<AtomicU64>>,
) -> Result<ArchiveReader> {
    let file = File::open(path).map_err(|e| failed(format!("{label}: {e}"), "check the path"))?;
    let raw: Box<dyn Read + Send> = match counter {
        Some(c) => Box::new(Counting {
            inner: file,
            counter: c,
        }),
        None => Box::new(file),
    };
    ArchiveReader::open(raw, &keys.load()?, label)
}

struct Counting<R> {
    inner: R,
    counter: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A volume's root entry, and whether anything else is in it.
pub struct Look {
    pub root: Option<Entry>,
    pub empty: bool,
}

/// Looks into a volume: its root's owner and mode, and whether it is empty.
pub async fn look(ctx: &Ctx<'_>, name: &str) -> Result<Look> {
    let helper =
        helper::create(ctx.engine, ctx.image, name, Access::ReadOnly, &ctx.lease.id).await?;
    let (pump, input) = bridge::download(ctx.engine, &helper.id, &format!("/{MOUNT_DIR}"), None);
    let work = tokio::task::spawn_blocking(move || -> Result<Look> {
        let mut tar = TarReader::new(input);
        let mut root = tar.next_entry()?;
        let empty = root.is_some() && tar.next_entry()?.is_none();
        // Kept as an archive entry (`./`), the way `put_root` expects it.
        if let Some(r) = &mut root {
            r.path = names::engine_to_archive(&r.path).unwrap_or_else(|| b"./".to_vec());
        }
        Ok(Look { root, empty })
    });
    let ((), look) = tokio::join!(pump, work);
    helper.remove(ctx.engine).await;
    look?.with_context(|| format!("volume {name}: cannot read its content"))
}

/// Reads the whole archive and checks it, writing nothing.
pub async fn check_archive(ctx: &Ctx<'_>) -> Result<Summary> {
    let size = std::fs::metadata(ctx.archive).map(|m| m.len()).ok();
    let progress = Progress::start(
        ctx.plan.progress,
        &format!("check {}", file_name(ctx.archive)),
        size,
    );
    let (archive, keys, label, counter) = (
        ctx.archive.to_path_buf(),
        ctx.plan.keys.clone(),
        ctx.label.to_owned(),
        progress.counter(),
    );
    let summary = tokio::task::spawn_blocking(move || -> Result<Summary> {
        let reader = open_archive(&archive, &keys, &label, Some(counter))?;
        let mut confine = Confine::default();
        walk(reader, |entry, _| {
            confine.entry(entry)?;
            Ok(())
        })
        .with_context(|| format!("{label}: damaged; the volume was not touched"))
    })
    .await?;
    progress.finish();
    summary
}

fn climbs_out(name: &str) -> anyhow::Error {
    failed(
        format!("archive entry {name:?} climbs out of the volume (..)"),
        "this archive was not made from a volume; extract it by hand",
    )
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Turns archive entries into the entries the daemon extracts, refusing
/// those that would land outside the volume: `..` in a name, a hard link to
/// an absolute path, or an entry below a symlink of the archive (a symlink
/// is data, never a way out). Remembers the archive's symlinks to do so.
#[derive(Default)]
pub struct Confine {
    symlinks: std::collections::HashSet<Vec<u8>>,
}

impl Confine {
    pub fn entry(&mut self, entry: &Entry) -> Result<Entry> {
        let name = entry.path_lossy();
        let rel = names::relative(&entry.path).map_err(|_| climbs_out(&name))?;
        let rel = rel.strip_suffix(b"/").unwrap_or(&rel).to_vec();
        self.not_below_a_symlink(&name, "lies below", &rel)?;
        let mut e = entry.clone();
        e.path = names::archive_to_engine(&entry.path).map_err(|_| climbs_out(&name))?;
        match e.kind {
            EntryKind::Symlink => {
                self.symlinks.insert(rel);
            }
            EntryKind::HardLink => {
                let link = entry.link.as_deref().unwrap_or_default();
                if link.starts_with(b"/") {
                    return Err(failed(
                        format!(
                            "archive entry {name:?} is a hard link to {:?}, outside the volume",
                            String::from_utf8_lossy(link)
                        ),
                        "this archive was not made from a volume; extract it by hand",
                    ));
                }
                let target = names::relative(link).map_err(|_| climbs_out(&name))?;
                self.not_below_a_symlink(&name, "is a hard link below", &target)?;
                e.link = Some(names::archive_to_engine(link).map_err(|_| climbs_out(&name))?);
            }
            _ => {}
        }
        Ok(e)
    }

    /// Refuses a path (relative to the volume) that goes through a
    /// symlink of the archive.
    fn not_below_a_symlink(&self, name: &str, how: &str, rel: &[u8]) -> Result<()> {
        let mut prefix = Vec::new();
        for part in rel.split(|&b| b == b'/') {
            if !prefix.is_empty() && self.symlinks.contains(&prefix) {
                return Err(failed(
                    format!(
                        "archive entry {name:?} {how} the symlink {:?}",
                        String::from_utf8_lossy(&prefix)
                    ),
                    "this archive was not made from a volume; extract it by hand",
                ));
            }
            if !prefix.is_empty() {
                prefix.push(b'/');
            }
            prefix.extend_from_slice(part);
        }
        Ok(())
    }
}

/// Streams `archive` into `volume` through a read-write helper. With a
/// `shutdown`, a signal aborts the stream (the caller then puts the volume
/// back); without, the step runs to its end.
pub async fn extract(
    ctx: &Ctx<'_>,
    archive: &Path,
    label: &str,
    keys: Keys,
    volume: &str,
    shutdown: Option<&Shutdown>,
) -> Result<()> {
    extract_whole(ctx, archive, label, keys, volume, shutdown)
        .await
        .map(|_| ())
}

/// As [`extract`], and returns what the read of the archive found (its
/// header, trailer and manifest totals).
pub async fn extract_whole(
    ctx: &Ctx<'_>,
    archive: &Path,
    label: &str,
    keys: Keys,
    volume: &str,
    shutdown: Option<&Shutdown>,
) -> Result<Summary> {
    let size = std::fs::metadata(archive).map(|m| m.len()).ok();
    let progress = Progress::start(ctx.plan.progress, &format!("restore {volume}"), size);
    let (archive, label, counter) = (archive.to_path_buf(), label.to_owned(), progress.counter());
    let result = upload(ctx, volume, shutdown, true, move |out| {
        let reader = open_archive(&archive, &keys, &label, Some(counter))?;
        let mut confine = Confine::default();
        walk(reader, |entry, data| {
            out.append(&confine.entry(entry)?, data)
                .with_context(|| format!("entry {:?}", entry.path_lossy()))?;
            Ok(())
        })
        .with_context(|| label.clone())
    })
    .await;
    progress.finish();
    result
}

/// Puts a volume root's owner and mode back (an emptied volume is recreated
/// with Docker's defaults).
pub async fn put_root(ctx: &Ctx<'_>, volume: &str, root: &Entry) -> Result<()> {
    let root = root.clone();
    upload(ctx, volume, None, false, move |out| {
        out.append(&Confine::default().entry(&root)?, &mut io::empty())?;
        Ok(())
    })
    .await
}

/// Writes the tar that `produce` writes into `volume`: through an
/// extracting streaming helper when `stream` and the daemon allows it
/// ([`streamer`]), else uploaded to a helper through the archive endpoint.
/// The end marker follows only if `produce` succeeded.
async fn upload<F, T>(
    ctx: &Ctx<'_>,
    volume: &str,
    shutdown: Option<&Shutdown>,
    stream: bool,
    produce: F,
) -> Result<T>
where
    F: FnOnce(&mut TarWriter<Sink>) -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    let (engine, image, owner) = (ctx.engine, ctx.image, &ctx.lease.id);
    let mut helper = if stream {
        helper::create_for_restore(engine, image, volume, owner).await?
    } else {
        helper::create(engine, image, volume, Access::ReadWrite, owner).await?
    };
    if let Some(staging) = &helper.staging {
        match streamer::start_sink(engine, &helper.id, staging).await {
            Ok(Some(sinking)) => {
                let result = to_fifo(volume, shutdown, sinking, produce).await;
                helper.remove(engine).await;
                return result;
            }
            Ok(None) => {}
            Err(e) => streamer::turn_down(&format!("cannot write a streaming helper's FIFO: {e}")),
        }
        // It never read a byte: the volume is as it was.
        helper.remove(engine).await;
        helper = helper::create(engine, image, volume, Access::ReadWrite, owner).await?;
    }
    let result = to_endpoint(ctx, &helper, volume, shutdown, produce).await;
    helper.remove(engine).await;
    result
}

/// Where the tar goes: the endpoint's upload, or an extracting helper's
/// FIFO.
enum Sink {
    Endpoint(ChannelWriter),
    Fifo(Option<io::BufWriter<File>>),
}

impl Sink {
    /// Ends the stream so that the far side fails rather than sees a
    /// clean end: an error for the endpoint; for the FIFO, closing it
    /// without the end marker (nor what is still buffered).
    fn fail(&mut self) {
        match self {
            Sink::Endpoint(chan) => chan.fail(io::Error::other("archive rejected")),
            Sink::Fifo(fifo) => drop(fifo.take().map(io::BufWriter::into_parts)),
        }
    }

    fn fifo(&mut self) -> io::Result<&mut io::BufWriter<File>> {
        match self {
            Sink::Fifo(Some(fifo)) => Ok(fifo),
            _ => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the stream was failed on purpose",
            )),
        }
    }
}

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Endpoint(chan) => chan.write(data),
            Sink::Fifo(_) => self.fifo()?.write(data),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Endpoint(chan) => chan.flush(),
            Sink::Fifo(_) => self.fifo()?.flush(),
        }
    }
}

/// Runs `produce` into `sink` on a blocking thread, and ends the stream:
/// with the end marker if it succeeded, failed if not.
fn produce_into<F, T>(sink: Sink, produce: F) -> tokio::task::JoinHandle<Result<T>>
where
    F: FnOnce(&mut TarWriter<Sink>) -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(move || -> Result<T> {
        let mut out = TarWriter::new(sink);
        match produce(&mut out) {
            Ok(value) => {
                let mut sink = out.finish()?;
                sink.flush()?;
                Ok(value)
            }
            Err(e) => {
                out.get_mut().fail();
                Err(e)
            }
        }
    })
}

/// Waits for `both` (the stream and its far side), or for a signal.
async fn unless_signalled<O>(
    shutdown: Option<&Shutdown>,
    both: impl std::future::Future<Output = O>,
) -> Result<O> {
    match shutdown {
        Some(sd) => tokio::select! {
            j = both => Ok(j),
            s = sd.wait() => Err(interrupted(s)),
        },
        None => Ok(both.await),
    }
}

async fn to_endpoint<F, T>(
    ctx: &Ctx<'_>,
    helper: &helper::Helper,
    volume: &str,
    shutdown: Option<&Shutdown>,
    produce: F,
) -> Result<T>
where
    F: FnOnce(&mut TarWriter<Sink>) -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = mpsc::channel(DEPTH);
    let work = produce_into(Sink::Endpoint(ChannelWriter::new(tx)), produce);
    let body =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    let opts = UploadToContainerOptions {
        path: "/".to_owned(),
        ..Default::default()
    };
    let upload = ctx.engine.transfer.upload_to_container(
        &helper.id,
        Some(opts),
        bollard::body_try_stream(body),
    );
    let (uploaded, worked) =
        unless_signalled(shutdown, async { tokio::join!(upload, work) }).await?;
    let daemon = uploaded.map_err(|e| {
        failed(
            format!(
                "volume {volume}: the daemon failed to extract the archive ({})",
                message_of(&e)
            ),
            "see the daemon's log; is the volume's storage full?",
        )
    });
    // The reader's error explains more than the daemon's, unless the reader
    // only failed because the daemon stopped reading.
    match worked.context("the archive reader stopped unexpectedly")? {
        Ok(value) => daemon.map(|()| value),
        Err(e) => match daemon {
            Err(d) if is_channel_closed(&e) => Err(d),
            _ => Err(e),
        },
    }
}

/// Writes the tar into an extracting helper's FIFO, then learns how the
/// helper ended. As for the endpoint, the reader's error comes first
/// unless it only failed because the helper stopped reading.
async fn to_fifo<F, T>(
    volume: &str,
    shutdown: Option<&Shutdown>,
    sinking: streamer::Sinking,
    produce: F,
) -> Result<T>
where
    F: FnOnce(&mut TarWriter<Sink>) -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    use streamer::Extracted;
    tracing::debug!("writing to the streaming helper's FIFO");
    let streamer::Sinking { writer, exit } = sinking;
    let fifo = io::BufWriter::with_capacity(FIFO_BUF, writer);
    let work = produce_into(Sink::Fifo(Some(fifo)), produce);
    // The helper ends once the stream is closed, so its exit comes second.
    let both = async {
        let worked = work.await;
        (worked, exit.extracted().await)
    };
    let (worked, ended) = unless_signalled(shutdown, both).await?;
    let worked = worked.context("the archive reader stopped unexpectedly")?;
    let env = streamer::ENV;
    let helper_error = match ended {
        Extracted::Done(left_out) => {
            for line in left_out {
                tracing::warn!(volume, "{line}");
            }
            None
        }
        Extracted::Cut(said) => Some(failed(
            format!("volume {volume}: the streaming helper stopped reading: {said}"),
            format!(
                "run the restore again; if it keeps failing, {env}=endpoint restores \
                 through the Engine's archive endpoint"
            ),
        )),
        Extracted::Refused(said) => {
            let full = said.contains("No space left") || said.contains("quota");
            let hint = if full {
                format!("free space in the volume's storage, or restore into another volume; {env}=endpoint restores through the Engine's archive endpoint")
            } else {
                format!("the volume cannot take this entry; {env}=endpoint restores through the Engine's archive endpoint")
            };
            Some(failed(format!("volume {volume}: {said}"), hint))
        }
        Extracted::Failed(said) => Some(failed(
            format!("volume {volume}: {said}"),
            "run the restore again; if it keeps failing, look at the daemon's log",
        )),
        Extracted::Lost(said) => Some(failed(
            said,
            "check that the daemon is running (`docker info`); a later run removes the \
             helper this one leaves once its lease expires",
        )),
    };
    // The reader's error explains more than the helper's, unless the
    // reader only failed because the helper stopped reading.
    match (worked, helper_error) {
        (Err(e), Some(helper)) if is_channel_closed(&e) => Err(helper),
        (Err(e), _) => Err(e),
        (Ok(_), Some(helper)) => Err(helper),
        (Ok(value), None) => Ok(value),
    }
}

fn is_channel_closed(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: EntryKind, link: Option<&str>) -> Entry {
        Entry {
            path: path.as_bytes().to_vec(),
            kind,
            mode: 0o755,
            uid: 0,
            gid: 0,
            uname: Vec::new(),
            gname: Vec::new(),
            mtime: 0,
            size: 0,
            link: link.map(|l| l.as_bytes().to_vec()),
            dev_major: 0,
            dev_minor: 0,
            xattrs: Vec::new(),
        }
    }

    #[test]
    fn entries_below_a_symlink_are_refused() {
        let mut c = Confine::default();
        c.entry(&entry("./", EntryKind::Dir, None)).unwrap();
        c.entry(&entry("./esc", EntryKind::Symlink, Some("/")))
            .unwrap();
        assert!(c
            .entry(&entry("./esc/pwned", EntryKind::File, None))
            .is_err());
        // A name that only starts like the symlink is fine.
        c.entry(&entry("./escape/x", EntryKind::File, None))
            .unwrap();
    }

    #[test]
    fn hard_links_through_a_symlink_are_refused() {
        let mut c = Confine::default();
        c.entry(&entry("./esc", EntryKind::Symlink, Some("real")))
            .unwrap();
        assert!(c
            .entry(&entry("./h", EntryKind::HardLink, Some("./esc/f")))
            .is_err());
        // A hard link to the symlink itself is fine.
        c.entry(&entry("./h2", EntryKind::HardLink, Some("./esc")))
            .unwrap();
    }

    #[test]
    fn hard_links_outside_the_volume_are_refused() {
        let mut c = Confine::default();
        assert!(c
            .entry(&entry("./h", EntryKind::HardLink, Some("/etc/passwd")))
            .is_err());
        assert!(c
            .entry(&entry("./h", EntryKind::HardLink, Some("../x")))
            .is_err());
        let e = c
            .entry(&entry("./h", EntryKind::HardLink, Some("./a/f")))
            .unwrap();
        assert_eq!(e.link.unwrap(), b"volume/a/f");
        assert_eq!(e.path, b"volume/h");
    }

    #[test]
    fn the_root_maps_to_the_mount_directory() {
        let e = Confine::default()
            .entry(&entry("./", EntryKind::Dir, None))
            .unwrap();
        assert_eq!(e.path, b"volume/");
    }
}
