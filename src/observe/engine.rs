//! The Docker engine connection (bollard), with the API version negotiated so that Debian's
//! 20.10 engine (API 1.41) and current engines both work.

use bollard::Docker;

use crate::error::{GodError, Result};

/// Where the engine is, as shown to the user.
pub fn engine_address() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string())
}

/// Connects (DOCKER_HOST or the default socket), checks that the engine answers, and negotiates
/// the API version.
pub async fn connect() -> Result<Docker> {
    let docker = Docker::connect_with_local_defaults().map_err(unreachable)?;
    let docker = docker.negotiate_version().await.map_err(unreachable)?;
    docker.ping().await.map_err(unreachable)?;
    Ok(docker)
}

/// The error for an engine that cannot be reached.
pub fn unreachable(error: bollard::errors::Error) -> GodError {
    GodError::EngineUnreachable {
        endpoint: engine_address(),
        reason: error.to_string(),
    }
}

/// Any other engine error, naming the operation.
pub fn failed(operation: &str, error: bollard::errors::Error) -> GodError {
    GodError::Other(format!(
        "the Docker engine at {} refused {operation}: {error}",
        engine_address()
    ))
}

/// Whether the engine answered that the object (container, image) does not exist.
pub fn is_not_found(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}
