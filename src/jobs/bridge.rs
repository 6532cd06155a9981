//! Byte channels between the async side (the Engine's HTTP streams) and the
//! blocking side (tar, zstd, age, files).
//!
//! Channels are bounded, so memory stays bounded whatever the volume size:
//! a slow disk slows the daemon's stream down instead of filling RAM. An
//! error travels through the channel as an error, never as a clean end, so
//! a stream cut short can't pass for a complete one.

use std::collections::VecDeque;
use std::io::{self, Read, Write};

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

/// Chunks in flight per channel.
pub const DEPTH: usize = 16;
/// Size of the chunks a [`ChannelWriter`] sends.
pub const CHUNK: usize = 256 * 1024;

pub type Chunk = io::Result<Bytes>;

/// The daemon's stream arrives in HTTP chunks of about 32 KiB (one per
/// write on its side). They are passed on in batches of at least this many
/// bytes, as they came (no copy): one hand-off and one wake-up of the
/// reading thread per batch instead of per chunk.
const BATCH: usize = 256 * 1024;
/// Batches in flight per download.
const BATCH_DEPTH: usize = 4;

type Batch = io::Result<Vec<Bytes>>;

/// Reads what the async side sends; the sender's drop is the end of stream.
pub struct ChannelReader {
    rx: mpsc::Receiver<Batch>,
    pending: VecDeque<Bytes>,
    /// An error that arrived while a read already held data: the next
    /// read returns it.
    failed: Option<io::Error>,
}

impl ChannelReader {
    fn new(rx: mpsc::Receiver<Batch>) -> Self {
        ChannelReader {
            rx,
            pending: VecDeque::new(),
            failed: None,
        }
    }

    /// The next batch: waits for it while `wait`, else only takes one that
    /// has arrived. `Ok(false)` is the end of the stream, or nothing yet.
    fn next_batch(&mut self, wait: bool) -> io::Result<bool> {
        let next = if wait {
            self.rx.blocking_recv()
        } else {
            self.rx.try_recv().ok()
        };
        match next {
            Some(Ok(batch)) => {
                self.pending.extend(batch);
                Ok(true)
            }
            Some(Err(e)) => Err(e),
            None => Ok(false),
        }
    }
}

impl Read for ChannelReader {
    /// Fills `buf` with what has arrived; waits only while it holds
    /// nothing. Full reads keep each file's BLAKE3 updates large.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let mut n = 0;
        while n < buf.len() {
            let Some(current) = self.pending.front_mut() else {
                match self.next_batch(n == 0) {
                    Ok(true) => continue,
                    Ok(false) => break,
                    // Data first: the error comes with the next read.
                    Err(e) if n > 0 => {
                        self.failed = Some(e);
                        break;
                    }
                    Err(e) => return Err(e),
                }
            };
            let take = current.len().min(buf.len() - n);
            buf[n..n + take].copy_from_slice(&current[..take]);
            let _ = current.split_to(take);
            n += take;
            if current.is_empty() {
                self.pending.pop_front();
            }
        }
        Ok(n)
    }
}

/// Sends what is written to the async side in large chunks.
pub struct ChannelWriter {
    tx: mpsc::Sender<Chunk>,
    buf: BytesMut,
    failed: bool,
}

impl ChannelWriter {
    pub fn new(tx: mpsc::Sender<Chunk>) -> Self {
        ChannelWriter {
            tx,
            buf: BytesMut::with_capacity(CHUNK),
            failed: false,
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the stream was failed on purpose",
            ));
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the daemon stopped reading the stream",
            )
        })
    }

    /// Sends an error instead of the rest of the stream, so the receiving
    /// side fails rather than seeing a clean end.
    pub fn fail(&mut self, e: io::Error) {
        if !self.failed {
            self.failed = true;
            self.buf.clear();
            let _ = self.tx.blocking_send(Err(e));
        }
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// Streams `path` out of a helper container into a bounded channel. The
/// returned future must be polled (joined with the reader's work) for bytes
/// to flow; a daemon error arrives as an error, never as a clean end.
pub fn download(
    engine: &crate::engine::Engine,
    container: &str,
    path: &str,
    counter: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
) -> (impl std::future::Future<Output = ()>, ChannelReader) {
    use futures_util::StreamExt;
    let (tx, rx) = mpsc::channel(BATCH_DEPTH);
    let opts = bollard::query_parameters::DownloadFromContainerOptions {
        path: path.to_owned(),
    };
    let mut stream = engine
        .transfer
        .download_from_container(container, Some(opts));
    let pump = async move {
        let mut batch = Vec::new();
        let mut size = 0;
        loop {
            let failure = match stream.next().await {
                Some(Ok(bytes)) => {
                    if let Some(c) = &counter {
                        c.fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    }
                    size += bytes.len();
                    batch.push(bytes);
                    if size < BATCH {
                        continue;
                    }
                    None
                }
                Some(Err(e)) => Some(io::Error::other(format!(
                    "the daemon's stream failed: {}",
                    crate::engine::message_of(&e)
                ))),
                None => {
                    if !batch.is_empty() {
                        let _ = tx.send(Ok(batch)).await;
                    }
                    break;
                }
            };
            // What came before a failure goes first, so the reader fails
            // where the stream did.
            if !batch.is_empty() && tx.send(Ok(std::mem::take(&mut batch))).await.is_err() {
                break;
            }
            size = 0;
            if let Some(e) = failure {
                let _ = tx.send(Err(e)).await;
                break;
            }
        }
    };
    (pump, ChannelReader::new(rx))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(parts: &[&'static [u8]]) -> Batch {
        Ok(parts.iter().map(|p| Bytes::from_static(p)).collect())
    }

    #[test]
    fn channel_reader_fills_from_chunks_at_hand_without_waiting() {
        let (tx, rx) = mpsc::channel(4);
        let mut reader = ChannelReader::new(rx);
        tx.blocking_send(batch(&[b"abc", b"", b"defg"])).unwrap();
        let mut buf = [0u8; 8];
        // The sender is still open: a read that waited for a full buffer
        // would never return.
        assert_eq!(reader.read(&mut buf).unwrap(), 7);
        assert_eq!(&buf[..7], b"abcdefg");

        tx.blocking_send(batch(&[b"hijkl", b"mn"])).unwrap();
        let mut small = [0u8; 3];
        assert_eq!(reader.read(&mut small).unwrap(), 3);
        assert_eq!(&small, b"hij");
        assert_eq!(reader.read(&mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], b"klmn");

        drop(tx);
        assert_eq!(reader.read(&mut buf).unwrap(), 0);
    }

    #[test]
    fn channel_reader_hands_out_data_before_the_error_behind_it() {
        let (tx, rx) = mpsc::channel(4);
        let mut reader = ChannelReader::new(rx);
        tx.blocking_send(batch(&[b"ab"])).unwrap();
        tx.blocking_send(Err(io::Error::other("stream cut")))
            .unwrap();
        drop(tx);
        let mut buf = [0u8; 8];
        assert_eq!(reader.read(&mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], b"ab");
        let err = reader.read(&mut buf).unwrap_err();
        assert_eq!(err.to_string(), "stream cut");
    }

    #[test]
    fn channel_reader_takes_batches_that_have_arrived() {
        let (tx, rx) = mpsc::channel(4);
        let mut reader = ChannelReader::new(rx);
        tx.blocking_send(batch(&[b"abc"])).unwrap();
        tx.blocking_send(batch(&[b"", b"def"])).unwrap();
        tx.blocking_send(batch(&[b"gh"])).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(reader.read(&mut buf).unwrap(), 8);
        assert_eq!(&buf[..8], b"abcdefgh");
        drop(tx);
        assert_eq!(reader.read(&mut buf).unwrap(), 0);
        assert_eq!(reader.read(&mut buf).unwrap(), 0);
    }
}
