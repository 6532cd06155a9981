//! Ctrl-C and SIGTERM as a value that work can wait on.
//!
//! Commands `select!` their work against [`Shutdown::wait`]; the losing work
//! future is dropped and the command then runs its cleanup (helpers removed,
//! partial files deleted, locks released) before exiting 130 or 143.
//!
//! A second signal during that cleanup ends the process at once, with the
//! second signal's code: cleanup waiting on a daemon that has gone away
//! could otherwise never be cut short. What it leaves behind (helpers, a
//! lock, `.partial` files) is what a later run sweeps up, as after a kill.
//! Except while a volume is being written or put back ([`Shutdown::protect`]):
//! stopping then would leave a half-restored volume, so further signals are
//! ignored until that step is done.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

use crate::error::Signal;

/// A cloneable handle that resolves once a signal arrived.
#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<Option<Signal>>,
    protected: Arc<AtomicUsize>,
}

/// Fires a [`Shutdown`] made by [`Shutdown::linked`]; cloneable.
#[derive(Clone)]
pub struct Trigger(Arc<watch::Sender<Option<Signal>>>);

impl Trigger {
    /// Makes the linked handle resolve with `signal`; later calls do nothing.
    pub fn fire(&self, signal: Signal) {
        self.0.send_if_modified(|s| {
            let first = s.is_none();
            if first {
                *s = Some(signal);
            }
            first
        });
    }
}

/// While alive, a second signal does not end the process.
pub struct Protected(Arc<AtomicUsize>);

impl Drop for Protected {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Shutdown {
    /// Installs the signal handlers. Call inside the runtime.
    pub fn install() -> Shutdown {
        let (tx, rx) = watch::channel(None);
        let protected = Arc::new(AtomicUsize::new(0));
        let busy = protected.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                tracing::warn!("cannot install signal handlers");
                return;
            };
            let got = tokio::select! {
                _ = int.recv() => Signal::Int,
                _ = term.recv() => Signal::Term,
            };
            tracing::warn!(signal = ?got, "stopping: cleaning up");
            let _ = tx.send(Some(got));
            // A second signal: the user would rather stop than wait for
            // cleanup, unless stopping would leave a volume half-written.
            loop {
                let again = tokio::select! {
                    _ = int.recv() => Signal::Int,
                    _ = term.recv() => Signal::Term,
                };
                if busy.load(Ordering::SeqCst) > 0 {
                    tracing::warn!("a volume is being written; finishing that first so it is not left half-restored");
                    continue;
                }
                tracing::error!(signal = ?again, "second signal: exiting without finishing cleanup");
                std::process::exit(crate::error::Exit::Interrupted(again).code());
            }
        });
        Shutdown { rx, protected }
    }

    /// Marks a step that must not be cut short by a second signal.
    pub fn protect(&self) -> Protected {
        self.protected.fetch_add(1, Ordering::SeqCst);
        Protected(self.protected.clone())
    }

    /// A handle that never fires, for tests and library callers.
    pub fn never() -> Shutdown {
        let (tx, rx) = watch::channel(None);
        std::mem::forget(tx);
        Shutdown {
            rx,
            protected: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A handle that fires only when its [`Trigger`] is pulled, for work
    /// that outlives the first signal (the scheduler's grace period). It
    /// shares this handle's protection: a second signal still does not cut
    /// short a step marked with [`Shutdown::protect`] on either of them.
    pub fn linked(&self) -> (Shutdown, Trigger) {
        let (tx, rx) = watch::channel(None);
        let linked = Shutdown {
            rx,
            protected: self.protected.clone(),
        };
        (linked, Trigger(Arc::new(tx)))
    }

    /// A handle fired by hand, with nothing else behind it (tests).
    pub fn manual() -> (Shutdown, Trigger) {
        Shutdown::never().linked()
    }

    /// The signal received so far, if any.
    pub fn signal(&self) -> Option<Signal> {
        *self.rx.borrow()
    }

    /// Resolves with the signal once one has arrived.
    pub async fn wait(&self) -> Signal {
        let mut rx = self.rx.clone();
        loop {
            if let Some(s) = *rx.borrow_and_update() {
                return s;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}
