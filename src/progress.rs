//! Progress for long transfers, and the log writer that never tears it.
//!
//! On a terminal: an indicatif bar (bytes, rate, and ETA when the total is
//! known). Otherwise: a log line every few seconds, so cron mail and
//! `docker logs` show that a long backup is moving. `--no-progress` and `-q`
//! turn both off. Work threads only bump an atomic counter.

use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Bar,
    Lines,
    Off,
}

impl Mode {
    /// The mode for this process: a bar on a terminal, lines otherwise.
    pub fn detect(disabled: bool) -> Mode {
        if disabled {
            Mode::Off
        } else if io::stderr().is_terminal() {
            Mode::Bar
        } else {
            Mode::Lines
        }
    }
}

const LINE_EVERY: Duration = Duration::from_secs(5);

fn bars() -> &'static MultiProgress {
    static BARS: OnceLock<MultiProgress> = OnceLock::new();
    BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}

/// A stderr writer for tracing that hides bars while a line is written.
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        bars().suspend(|| io::stderr().write_all(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// The progress of one transfer.
pub struct Progress {
    done: Arc<AtomicU64>,
    ticker: Option<tokio::task::JoinHandle<()>>,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Starts showing progress of `what` (a volume or archive name).
    pub fn start(mode: Mode, what: &str, total: Option<u64>) -> Progress {
        let done = Arc::new(AtomicU64::new(0));
        let mut progress = Progress {
            done: done.clone(),
            ticker: None,
            bar: None,
        };
        match mode {
            Mode::Off => {}
            Mode::Bar => {
                let bar = bars().add(match total {
                    Some(t) => ProgressBar::new(t),
                    None => ProgressBar::no_length(),
                });
                let template = if total.is_some() {
                    "{prefix} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}"
                } else {
                    "{prefix} {spinner} {bytes} {binary_bytes_per_sec} {elapsed}"
                };
                if let Ok(style) = ProgressStyle::with_template(template) {
                    bar.set_style(style.progress_chars("=> "));
                }
                bar.set_prefix(what.to_owned());
                let ticking = bar.clone();
                progress.ticker = Some(tokio::spawn(async move {
                    loop {
                        ticking.set_position(done.load(Ordering::Relaxed));
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }));
                progress.bar = Some(bar);
            }
            Mode::Lines => {
                let what = what.to_owned();
                progress.ticker = Some(tokio::spawn(async move {
                    let start = tokio::time::Instant::now();
                    loop {
                        tokio::time::sleep(LINE_EVERY).await;
                        let n = done.load(Ordering::Relaxed);
                        let secs = start.elapsed().as_secs_f64().max(0.001);
                        let rate = (n as f64 / secs) as u64;
                        match total {
                            Some(t) => tracing::info!(target: "volsafe::progress", %what,
                                done = %human(n), total = %human(t), rate = %format!("{}/s", human(rate)), "progress"),
                            None => tracing::info!(target: "volsafe::progress", %what,
                                done = %human(n), rate = %format!("{}/s", human(rate)), "progress"),
                        }
                    }
                }));
            }
        }
        progress
    }

    /// The counter the worker adds bytes to.
    pub fn counter(&self) -> Arc<AtomicU64> {
        self.done.clone()
    }

    /// Stops showing progress.
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(t) = self.ticker.take() {
            t.abort();
        }
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
            bars().remove(&bar);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Bytes as people read them: `1.5 GiB`.
pub fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
