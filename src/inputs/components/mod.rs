//! `components.toml`: the platform's component manifest, read as the upstream writes it
//! (`{ path, kind, enabled }`, which plans nothing), plus god's extension: a component with an
//! `image` is a container, described with Docker Compose's key names. The file as written
//! ([`file`]), loading and checking it ([`loaded`]), its start order ([`order`]) and the
//! desired containers it resolves to ([`spec`]).

mod build_context;
mod fields;
pub mod file;
pub mod loaded;
mod order;
mod spec;
#[cfg(test)]
mod tests;

pub use build_context::context_digest;
pub use fields::parse_port;
pub use file::*;
pub use loaded::{LoadedComponents, load_components};
pub use spec::{default_project, is_host_path};
