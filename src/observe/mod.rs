//! Reading the live systems into observed state. Read-only, and in bulk: the broker
//! ([`rabbit`]) and the Docker engine ([`docker`], through the connection of [`engine`]).

pub mod docker;
pub mod engine;
pub mod rabbit;
