//! The failure notification: a JSON document POSTed to a job's
//! `notify_url` after a run or a drill that failed.
//!
//! A notification is a courtesy, never a reason to fail: an unreachable or
//! slow receiver is logged and the scheduler goes on. `http://` and
//! `https://` (rustls, with the system's CA certificates) are accepted.

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use serde::Serialize;

/// How long one notification may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(10);

/// What is sent.
#[derive(Debug, Serialize)]
pub struct Failure {
    pub job: String,
    /// What failed: `backup` (a run of the job) or `drill`.
    pub kind: &'static str,
    pub volumes: Vec<String>,
    pub errors: Vec<VolumeError>,
    /// RFC 3339, UTC.
    pub time: String,
    pub host: String,
    pub daemon: String,
}

#[derive(Debug, Serialize)]
pub struct VolumeError {
    /// `None` for an error of the whole job (no volume matched, the
    /// daemon was down, the check's threshold).
    pub volume: Option<String>,
    pub error: String,
}

/// A checked `http(s)://host[:port][/path]` URL, returned as given.
pub fn check_url(url: &str) -> Result<String, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err("not an http:// or https:// URL".to_owned());
    }
    Ok(url.to_owned())
}

/// The host name, for the notification and the logs.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "?".to_owned())
}

/// The URL as logs show it: scheme and host only. Webhook URLs often carry
/// their token in the path or the query.
pub fn shown(url: &str) -> String {
    match url.parse::<hyper::Uri>() {
        Ok(uri) => format!(
            "{}://{}/…",
            uri.scheme_str().unwrap_or("?"),
            uri.authority().map_or("?", |a| a.as_str())
        ),
        Err(_) => "(an invalid URL)".to_owned(),
    }
}

/// Sends `failure` to the job's URL, if it has one, and logs whether it
/// arrived; never fails.
pub async fn deliver(url: Option<&str>, failure: &Failure) {
    let Some(url) = url else {
        return;
    };
    match send(url, failure).await {
        Ok(()) => {
            tracing::info!(job = %failure.job, kind = failure.kind, "failure notification sent")
        }
        Err(e) => {
            tracing::warn!(job = %failure.job, kind = failure.kind, error = %format!("{e:#}"), "cannot send the failure notification")
        }
    }
}

/// POSTs `failure` to `url`; an error says why it did not arrive.
pub async fn send(url: &str, failure: &Failure) -> Result<()> {
    let body = serde_json::to_vec(failure).context("cannot encode the notification")?;
    let to = shown(url);
    tokio::time::timeout(TIMEOUT, post(url, body))
        .await
        .map_err(|_| {
            anyhow!(
                "notification to {to}: no answer within {}s",
                TIMEOUT.as_secs()
            )
        })?
        .with_context(|| format!("notification to {to}"))
}

async fn post(url: &str, body: Vec<u8>) -> Result<()> {
    let uri: hyper::Uri = url.parse()?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
        .context("cannot load the system's CA certificates")?
        .https_or_http()
        .enable_http1()
        .build();
    let client: hyper_util::client::legacy::Client<_, Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https);
    let req = Request::post(uri)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("volsafe/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(Bytes::from(body)))?;
    let res = client.request(req).await.map_err(|e| {
        // The cause (refused, TLS, DNS) is in the source chain.
        let mut msg = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            msg = format!("{msg}: {s}");
            source = s.source();
        }
        anyhow!("{msg}")
    })?;
    let status = res.status();
    // Read the (small) answer so the connection ends cleanly.
    let _ = res.into_body().collect().await;
    if !status.is_success() {
        return Err(anyhow!("the receiver answered {status}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_show_no_token() {
        assert_eq!(
            shown("https://hooks.example/services/T000/B000/XXXXSECRET?token=abc"),
            "https://hooks.example/…"
        );
        assert_eq!(shown("http://127.0.0.1:9000/x"), "http://127.0.0.1:9000/…");
    }

    #[test]
    fn urls() {
        assert!(check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(check_url("http://alerts.internal/volsafe?x=1").is_ok());
        assert!(check_url("https://alerts.internal/").is_ok());
        assert!(check_url("ftp://x/").is_err());
        assert!(check_url("not a url").is_err());
    }

    /// An https URL speaks TLS: against a plain-HTTP receiver on loopback
    /// the handshake fails with a clear error, quickly, and sends nothing.
    #[tokio::test]
    async fn https_urls_speak_tls() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut first = [0u8; 1];
            s.read_exact(&mut first).unwrap();
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\n");
            first[0]
        });
        let failure = Failure {
            job: "db".into(),
            kind: "backup",
            volumes: vec![],
            errors: vec![],
            time: "2026-01-01T00:00:00Z".into(),
            host: "h".into(),
            daemon: "d".into(),
        };
        let err = send(&format!("https://127.0.0.1:{port}/hook"), &failure)
            .await
            .unwrap_err();
        // 0x16: a TLS handshake record, not "POST".
        assert_eq!(server.join().unwrap(), 0x16);
        assert!(
            format!("{err:#}").contains("notification to https://127.0.0.1"),
            "{err:#}"
        );
    }

    #[tokio::test]
    async fn posts_json_to_a_local_receiver() {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut head = String::new();
            let mut len = 0;
            loop {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                head.push_str(&line);
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
            (head, String::from_utf8(body).unwrap())
        });
        let failure = Failure {
            job: "db".into(),
            kind: "backup",
            volumes: vec!["pgdata".into()],
            errors: vec![VolumeError {
                volume: Some("pgdata".into()),
                error: "boom".into(),
            }],
            time: "2026-01-01T00:00:00Z".into(),
            host: "h".into(),
            daemon: "d".into(),
        };
        send(&format!("http://127.0.0.1:{port}/hook"), &failure)
            .await
            .unwrap();
        let (head, body) = server.join().unwrap();
        assert!(head.starts_with("POST /hook HTTP/1.1"), "{head}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["job"], "db");
        assert_eq!(v["kind"], "backup");
        assert_eq!(v["errors"][0]["error"], "boom");
    }

    #[tokio::test]
    async fn an_unreachable_receiver_is_an_error_not_a_hang() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let failure = Failure {
            job: "j".into(),
            kind: "drill",
            volumes: vec![],
            errors: vec![],
            time: String::new(),
            host: String::new(),
            daemon: String::new(),
        };
        assert!(send(&format!("http://127.0.0.1:{port}/"), &failure)
            .await
            .is_err());
    }
}
