//! What the scheduler knows about its jobs, and `/healthz` and `/metrics`
//! (Prometheus text format) on `--status-addr`.
//!
//! The numbers live in one small map behind a mutex: one entry per job and
//! per (job, volume) seen, replaced in place at each run, so memory stays
//! flat however long the scheduler runs. Jobs removed by a reload are
//! dropped from it.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};

use crate::error::failed;

/// The last outcome of one volume in one job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VolumeStats {
    /// Unix time of the last success.
    pub last_success: Option<f64>,
    /// Seconds the last run of this volume took, success or not.
    pub last_duration: f64,
    /// Bytes of the last archive written.
    pub last_bytes: Option<u64>,
    pub consecutive_failures: u64,
}

/// The last drill of one volume's newest archive in one job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DrillStats {
    /// Unix time the drill finished.
    pub finished: f64,
    /// Restored and matched what the archive recorded.
    pub passed: bool,
    /// Seconds the restore took, in the last drill that got that far.
    pub rto: Option<f64>,
}

#[derive(Debug, Clone, Default)]
pub struct JobStats {
    pub next_run: Option<f64>,
    /// Seconds containers were stopped in the last run.
    pub stop_window: f64,
    pub volumes: BTreeMap<String, VolumeStats>,
    /// Kept apart from `volumes`: a volume drilled before this scheduler
    /// backed it up has no backup numbers.
    pub drills: BTreeMap<String, DrillStats>,
}

/// Every job's numbers; cloneable handle.
#[derive(Debug, Clone, Default)]
pub struct Metrics(Arc<Mutex<BTreeMap<String, JobStats>>>);

impl Metrics {
    /// Changes one job's entry.
    pub fn update(&self, job: &str, f: impl FnOnce(&mut JobStats)) {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(all.entry(job.to_owned()).or_default());
    }

    /// Keeps only these jobs (after a reload).
    pub fn retain(&self, jobs: &BTreeSet<String>) {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|name, _| jobs.contains(name));
    }

    /// The Prometheus text exposition of everything.
    pub fn render(&self) -> String {
        let all = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut out = String::new();
        let mut family = |name: &str, help: &str, rows: Vec<(String, f64)>| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            for (labels, value) in rows {
                let _ = writeln!(out, "{name}{{{labels}}} {}", number(value));
            }
        };
        let per_volume = |pick: fn(&VolumeStats) -> Option<f64>| rows(&all, |s| &s.volumes, pick);
        let per_drill = |pick: fn(&DrillStats) -> Option<f64>| rows(&all, |s| &s.drills, pick);
        family(
            "volsafe_last_success_timestamp_seconds",
            "Unix time of the last successful backup of the volume by the job.",
            per_volume(|v| v.last_success),
        );
        family(
            "volsafe_last_duration_seconds",
            "How long the last backup of the volume took, successful or not.",
            per_volume(|v| Some(v.last_duration)),
        );
        family(
            "volsafe_last_archive_bytes",
            "Size of the last archive written for the volume.",
            per_volume(|v| v.last_bytes.map(|b| b as f64)),
        );
        family(
            "volsafe_consecutive_failures",
            "Failed backups of the volume since its last success.",
            per_volume(|v| Some(v.consecutive_failures as f64)),
        );
        family(
            "volsafe_drill_last_timestamp_seconds",
            "Unix time the last drill of the volume's newest archive finished.",
            per_drill(|d| Some(d.finished)),
        );
        family(
            "volsafe_drill_success",
            "1 if the last drill restored the volume's newest archive and it matched what was backed up, else 0.",
            per_drill(|d| Some(if d.passed { 1.0 } else { 0.0 })),
        );
        family(
            "volsafe_drill_rto_seconds",
            "How long the restore took in the last drill of the volume that got as far as restoring.",
            per_drill(|d| d.rto),
        );
        let per_job = |pick: &dyn Fn(&JobStats) -> Option<f64>| {
            all.iter()
                .filter_map(|(job, s)| pick(s).map(|x| (format!("job=\"{}\"", escape(job)), x)))
                .collect::<Vec<_>>()
        };
        family(
            "volsafe_stop_window_seconds",
            "How long containers were stopped during the job's last run.",
            per_job(&|s| Some(s.stop_window)),
        );
        family(
            "volsafe_next_run_timestamp_seconds",
            "Unix time of the job's next scheduled run.",
            per_job(&|s| s.next_run),
        );
        out
    }
}

/// One row per job and volume in the map `of` picks, where `pick` gives a
/// value.
fn rows<T>(
    all: &BTreeMap<String, JobStats>,
    of: fn(&JobStats) -> &BTreeMap<String, T>,
    pick: fn(&T) -> Option<f64>,
) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for (job, stats) in all {
        for (volume, v) in of(stats) {
            if let Some(x) = pick(v) {
                let labels = format!("job=\"{}\",volume=\"{}\"", escape(job), escape(volume));
                out.push((labels, x));
            }
        }
    }
    out
}

/// A sample value as Prometheus reads it: integers without a fraction.
fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// Escapes a label value: backslash, double quote and newline.
fn escape(s: &str) -> String {
    s.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Binds `addr` now (so a taken port fails at start), then serves until
/// the task is aborted.
pub async fn serve(addr: SocketAddr, metrics: Metrics) -> Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        failed(
            format!("status address {addr}: cannot listen ({e})"),
            "pick a free port, or leave --status-addr out",
        )
    })?;
    tracing::info!(addr = %addr, "serving /healthz and /metrics");
    Ok(tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait instead of spinning.
                    tracing::warn!(error = %e, "status server: cannot accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    continue;
                }
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let service = hyper::service::service_fn(move |req| {
                    let metrics = metrics.clone();
                    async move { Ok::<_, Infallible>(answer(&req, &metrics)) }
                });
                let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
                // A client that never finishes its request is cut off.
                let _ = tokio::time::timeout(std::time::Duration::from_secs(30), conn).await;
            });
        }
    }))
}

fn answer<B>(req: &Request<B>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let (status, kind, body) = match (req.method(), req.uri().path()) {
        (&hyper::Method::GET, "/healthz") => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        (&hyper::Method::GET, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render(),
        ),
        (&hyper::Method::GET, _) => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /healthz or /metrics\n".to_owned(),
        ),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".to_owned(),
        ),
    };
    let mut res = Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(kind) {
        res.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format() {
        let m = Metrics::default();
        m.update("db", |j| {
            j.next_run = Some(1_780_000_000.0);
            j.stop_window = 1.5;
            j.volumes.insert(
                "pg\"data".into(),
                VolumeStats {
                    last_success: Some(1_779_990_000.25),
                    last_duration: 12.0,
                    last_bytes: Some(4096),
                    consecutive_failures: 0,
                },
            );
        });
        m.update("never-ok", |j| {
            j.volumes.insert(
                "v".into(),
                VolumeStats {
                    last_success: None,
                    last_duration: 0.5,
                    last_bytes: None,
                    consecutive_failures: 3,
                },
            );
        });
        let text = m.render();
        let expected = [
            "# HELP volsafe_last_success_timestamp_seconds ",
            "# TYPE volsafe_last_success_timestamp_seconds gauge",
            r#"volsafe_last_success_timestamp_seconds{job="db",volume="pg\"data"} 1779990000.25"#,
            r#"volsafe_last_duration_seconds{job="db",volume="pg\"data"} 12"#,
            r#"volsafe_last_duration_seconds{job="never-ok",volume="v"} 0.5"#,
            r#"volsafe_last_archive_bytes{job="db",volume="pg\"data"} 4096"#,
            r#"volsafe_consecutive_failures{job="never-ok",volume="v"} 3"#,
            r#"volsafe_stop_window_seconds{job="db"} 1.5"#,
            r#"volsafe_next_run_timestamp_seconds{job="db"} 1780000000"#,
            "# TYPE volsafe_next_run_timestamp_seconds gauge",
        ];
        for line in expected {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
        // A volume that never succeeded has no success time (not 0).
        assert!(!text.contains(r#"volsafe_last_success_timestamp_seconds{job="never-ok""#));
        // Every sample line is `name{labels} value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            value.parse::<f64>().unwrap();
        }
        m.retain(&BTreeSet::from(["db".to_owned()]));
        assert!(!m.render().contains("never-ok"));
    }

    #[tokio::test]
    async fn serves_healthz_and_metrics() {
        let m = Metrics::default();
        m.update("j", |j| j.next_run = Some(5.0));
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let server = serve(addr, m).await.unwrap();
        let get = |path: &'static str| async move {
            tokio::task::spawn_blocking(move || {
                use std::io::{Read, Write};
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                write!(
                    s,
                    "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                )
                .unwrap();
                let mut out = String::new();
                s.read_to_string(&mut out).unwrap();
                out
            })
            .await
            .unwrap()
        };
        assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
        let metrics = get("/metrics").await;
        assert!(
            metrics.contains(r#"volsafe_next_run_timestamp_seconds{job="j"} 5"#),
            "{metrics}"
        );
        assert!(get("/nope").await.starts_with("HTTP/1.1 404"));
        server.abort();
    }
}
