//! Everything that talks to the Docker Engine API.
//!
//! volsafe connects like the docker CLI (`DOCKER_HOST`, `DOCKER_TLS_VERIFY`,
//! `DOCKER_CERT_PATH`, the default socket otherwise) and negotiates the API
//! version, so it works on 20.10 (API 1.41) and on current engines. Two
//! clients share one connection setup: control calls keep bollard's timeout,
//! transfers get none that a long stream could hit.

pub mod helper;
pub mod lease;
pub mod volume;

use std::time::Duration;

use anyhow::Result;
use bollard::Docker;

use crate::error::failed;

/// Timeout for short control calls (inspect, create, remove).
const CONTROL_TIMEOUT: Duration = Duration::from_secs(120);
/// A transfer may take as long as it takes; this only guards against a
/// connection that hangs for ever.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// A connected, version-negotiated Docker Engine.
#[derive(Clone)]
pub struct Engine {
    /// For control calls.
    pub docker: Docker,
    /// For archive streams.
    pub transfer: Docker,
    /// The Engine's `Name` from `GET /info`: the daemon's name in backup paths.
    pub name: String,
    /// Where the daemon was reached, for messages.
    pub host: String,
}

/// The address volsafe connects to, as the docker CLI would pick it.
pub fn docker_host() -> String {
    match std::env::var("DOCKER_HOST") {
        Ok(h) if !h.is_empty() => h,
        _ => "unix:///var/run/docker.sock".to_owned(),
    }
}

/// Connects, negotiates the API version and reads the daemon's name.
pub async fn connect() -> Result<Engine> {
    let host = docker_host();
    let unreachable = |e: &dyn std::fmt::Display| {
        failed(
            format!("docker daemon at {host}: cannot connect ({e})"),
            "is the daemon running and may this user use it? Set DOCKER_HOST to reach another one",
        )
    };
    let docker = Docker::connect_with_host(&host).map_err(|e| unreachable(&e))?;
    let docker = docker
        .with_timeout(CONTROL_TIMEOUT)
        .negotiate_version()
        .await
        .map_err(|e| unreachable(&e))?;
    let info = docker.info().await.map_err(|e| unreachable(&e))?;
    let name = info
        .name
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "docker".to_owned());
    tracing::debug!(host = %host, daemon = %name, api = ?docker.client_version(), "connected");
    let transfer = docker.clone().with_timeout(TRANSFER_TIMEOUT);
    Ok(Engine {
        docker,
        transfer,
        name,
        host,
    })
}

/// The HTTP status of an Engine error response, if it is one.
pub fn status_of(e: &bollard::errors::Error) -> Option<u16> {
    match e {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// The message of an Engine error, without bollard's wrapping.
pub fn message_of(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}
