//! What `god new service` writes: the service added to registry.yaml in place ([`service`]),
//! and a consumer that runs against the topology god applies ([`consumer`]).

pub mod consumer;
pub mod service;
