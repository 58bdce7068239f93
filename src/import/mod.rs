//! Importers: god's input files written from what already exists, a live vhost
//! ([`registry`]) or a docker-compose.yml ([`compose`]), with the one YAML writer god has
//! ([`yaml_writer`], which `god render` uses too).

pub mod compose;
pub mod registry;
pub mod yaml_writer;
