//! The failure notification: a JSON document POSTed to a job's
//! `notify_url` after a run that failed.
//!
//! A notification is a courtesy, never a reason to fail: an unreachable or
//! slow receiver is logged and the scheduler goes on. Plain HTTP only: the
//! receiver is usually a local relay (a webhook bridge, Alertmanager's
//! neighbour); https URLs are refused when the config is read, so nobody
//! believes a notification went out encrypted.

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

/// A checked `http://host[:port][/path]` URL, returned as given.
pub fn check_url(url: &str) -> Result<String, String> {
    if url.starts_with("https://") {
        return Err("https is not supported".to_owned());
    }
    let uri: hyper::Uri = url.parse().map_err(|e| format!("not a URL ({e})"))?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() {
        return Err("not an http:// URL".to_owned());
    }
    Ok(url.to_owned())
}

/// The host name, for the notification and the logs.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "?".to_owned())
}

/// POSTs `failure` to `url`; an error says why it did not arrive.
pub async fn send(url: &str, failure: &Failure) -> Result<()> {
    let body = serde_json::to_vec(failure).context("cannot encode the notification")?;
    tokio::time::timeout(TIMEOUT, post(url, body))
        .await
        .map_err(|_| {
            anyhow!(
                "notification to {url}: no answer within {}s",
                TIMEOUT.as_secs()
            )
        })?
        .with_context(|| format!("notification to {url}"))
}

async fn post(url: &str, body: Vec<u8>) -> Result<()> {
    let uri: hyper::Uri = url.parse()?;
    let host = uri.host().ok_or_else(|| anyhow!("no host"))?.to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let connect_to = format!(
        "{}:{port}",
        host.trim_start_matches('[').trim_end_matches(']')
    );
    let stream = tokio::net::TcpStream::connect(&connect_to)
        .await
        .context("cannot connect")?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    let conn = tokio::spawn(conn);
    let authority = uri.authority().map(|a| a.to_string()).unwrap_or(host);
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let req = Request::post(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("volsafe/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(Bytes::from(body)))?;
    let res = sender.send_request(req).await.context("no response")?;
    let status = res.status();
    // Read the (small) answer so the connection ends cleanly.
    let _ = res.into_body().collect().await;
    conn.abort();
    if !status.is_success() {
        return Err(anyhow!("the receiver answered {status}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(check_url("http://alerts.internal/volsafe?x=1").is_ok());
        assert!(check_url("https://alerts.internal/")
            .unwrap_err()
            .contains("https"));
        assert!(check_url("ftp://x/").is_err());
        assert!(check_url("not a url").is_err());
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
        assert_eq!(v["errors"][0]["error"], "boom");
    }

    #[tokio::test]
    async fn an_unreachable_receiver_is_an_error_not_a_hang() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let failure = Failure {
            job: "j".into(),
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
