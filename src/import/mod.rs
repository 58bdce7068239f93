//! Importers: god's input files written from what already exists, a live vhost
//! ([`registry`]) or a docker-compose.yml ([`compose`]).

pub mod compose;
pub mod registry;
