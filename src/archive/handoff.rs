//! Hands bytes over to a thread of their own in large buffers, so that
//! work on them (encryption, digests, writes) runs beside the caller's.

use std::io::{self, Write};

/// Bytes handed to the thread at a time, and how many such buffers may
/// wait for it.
pub const HANDOFF: usize = 512 * 1024;
const HANDOFF_DEPTH: usize = 3;

/// Hands bytes to a thread of their own, which writes them to `W` (for
/// the archive writer: encrypts, hashes and writes the compressed frames;
/// for a digest: hashes): that work overlaps with the caller's instead of
/// taking turns with it. Buffers go back to be reused. A failed write ends
/// the thread; its error surfaces on the next hand-off or at
/// [`Handoff::finish`].
pub struct Handoff<W: Write + Send + 'static> {
    buf: Vec<u8>,
    tx: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
    thread: Option<std::thread::JoinHandle<io::Result<W>>>,
    /// The thread's name, for messages.
    name: String,
}

impl<W: Write + Send + 'static> Handoff<W> {
    pub fn new(mut sink: W, name: &str) -> io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(HANDOFF_DEPTH);
        let (spare_tx, spare) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                for mut buf in rx {
                    sink.write_all(&buf)?;
                    buf.clear();
                    let _ = spare_tx.send(buf);
                }
                Ok(sink)
            })?;
        Ok(Handoff {
            buf: Vec::with_capacity(HANDOFF),
            tx: Some(tx),
            spare,
            thread: Some(thread),
            name: name.to_owned(),
        })
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let full = std::mem::take(&mut self.buf);
        self.buf = self.send_buf(full)?;
        Ok(())
    }

    /// Hands `full` to the thread; returns an empty buffer to fill next.
    pub fn send_buf(&mut self, full: Vec<u8>) -> io::Result<Vec<u8>> {
        let sent = self.tx.as_ref().map(|tx| tx.send(full));
        match sent {
            Some(Ok(())) => Ok(self
                .spare
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(HANDOFF))),
            _ => Err(self
                .join()
                .err()
                .unwrap_or_else(|| io::Error::other(format!("thread {} stopped", self.name)))),
        }
    }

    /// Lets `fill` append to the buffer in place (no copy), with at least
    /// `room` bytes of spare capacity; a fuller buffer is handed over first.
    pub fn fill_with<T>(
        &mut self,
        room: usize,
        fill: impl FnOnce(&mut Vec<u8>) -> io::Result<T>,
    ) -> io::Result<T> {
        if self.buf.capacity() - self.buf.len() < room {
            self.send()?;
            self.buf.reserve(room);
        }
        fill(&mut self.buf)
    }

    /// Ends the thread and returns what it returned.
    fn join(&mut self) -> io::Result<W> {
        drop(self.tx.take());
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other(format!("thread {} panicked", self.name))),
            None => Err(io::Error::other(format!(
                "thread {} already ended",
                self.name
            ))),
        }
    }

    /// Writes what is left and returns the sink, every byte written to it.
    pub fn finish(mut self) -> io::Result<W> {
        self.send()?;
        self.join()
    }
}

impl<W: Write + Send + 'static> Write for Handoff<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > HANDOFF {
            self.send()?;
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write + Send + 'static> Drop for Handoff<W> {
    /// On an error path, waits for the thread so nothing writes to the
    /// destination after the archive was given up.
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.join();
        }
    }
}
