//! Everything that talks to the Docker Engine API.
//!
//! volsafe connects like the docker CLI (`DOCKER_HOST`, `DOCKER_TLS_VERIFY`,
//! `DOCKER_CERT_PATH`, the default socket otherwise) and negotiates the API
//! version, so it works on 20.10 (API 1.41) and on current engines. Two
//! clients share one connection setup: control calls keep bollard's timeout,
//! transfers get none that a long stream could hit.
//!
//! One difference from bollard: an empty `DOCKER_TLS_VERIFY` means unset, as
//! for the docker CLI, where bollard would turn TLS on for any value.

pub mod helper;
pub mod hooks;
pub mod lease;
pub mod stop;
pub mod streamer;
pub mod volume;

use std::ffi::OsStr;
use std::time::Duration;

use anyhow::Result;
use bollard::Docker;

use crate::error::failed;

/// Timeout for short control calls (inspect, create, remove).
const CONTROL_TIMEOUT: Duration = Duration::from_secs(120);
/// bollard's timeout (120 s by default) bounds a whole request, and a
/// streamed transfer is one request that lasts as long as the volume takes:
/// so transfers get a timeout long enough never to fire. It guards against
/// nothing; a transfer that hangs is not cut short here.
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
    /// The daemon is on this host and may run streaming helpers
    /// ([`streamer`]).
    pub local: bool,
}

/// The address volsafe connects to, as the docker CLI would pick it.
pub fn docker_host() -> String {
    match std::env::var("DOCKER_HOST") {
        Ok(h) if !h.is_empty() => h,
        _ => "unix:///var/run/docker.sock".to_owned(),
    }
}

/// Whether to reach a TCP host without TLS although `DOCKER_TLS_VERIFY` is
/// set: it is empty, which the docker CLI treats as unset but bollard's
/// `connect_with_host` as "use TLS". The environment is left as it is.
fn plain_http(host: &str, tls_verify: Option<&OsStr>) -> bool {
    let tcp = host.starts_with("tcp://") || host.starts_with("http://");
    tcp && tls_verify.is_some_and(|v| v.is_empty())
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
    let tls_verify = std::env::var_os("DOCKER_TLS_VERIFY");
    let docker = if plain_http(&host, tls_verify.as_deref()) {
        Docker::connect_with_http(
            &host,
            CONTROL_TIMEOUT.as_secs(),
            bollard::API_DEFAULT_VERSION,
        )
    } else {
        Docker::connect_with_host(&host)
    }
    .map_err(|e| unreachable(&e))?;
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
    let local = streamer::suits(&host, info.security_options.as_deref().unwrap_or_default());
    let transfer = docker.clone().with_timeout(TRANSFER_TIMEOUT);
    Ok(Engine {
        docker,
        transfer,
        name,
        host,
        local,
    })
}

/// The HTTP status of an Engine error response, if it is one.
pub fn status_of(e: &bollard::errors::Error) -> Option<u16> {
    match e {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// The message of an Engine error, without bollard's wrapping, and with
/// any credential it quotes (a volume's mount options) redacted.
pub fn message_of(e: &bollard::errors::Error) -> String {
    let message = match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    };
    crate::check::secrets::scrub(&message)
}

/// Every container, running or not, that matches one `docker ps` filter.
pub async fn containers_where(
    engine: &Engine,
    key: &str,
    value: &str,
) -> Result<Vec<bollard::models::ContainerSummary>, bollard::errors::Error> {
    let filters = std::collections::HashMap::from([(key.to_owned(), vec![value.to_owned()])]);
    let options = bollard::query_parameters::ListContainersOptions {
        all: true,
        filters: Some(filters),
        ..Default::default()
    };
    engine.docker.list_containers(Some(options)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `DOCKER_TLS_VERIFY=` (empty) once made volsafe speak TLS to a plain
    /// TCP daemon, where the docker CLI does not.
    #[test]
    fn empty_tls_verify_means_plain_tcp() {
        let empty = Some(OsStr::new(""));
        assert!(plain_http("tcp://127.0.0.1:2375", empty));
        assert!(plain_http("http://127.0.0.1:2375", empty));
        assert!(!plain_http("tcp://127.0.0.1:2376", Some(OsStr::new("1"))));
        assert!(!plain_http("tcp://127.0.0.1:2375", None));
        assert!(!plain_http("unix:///var/run/docker.sock", empty));
    }
}
