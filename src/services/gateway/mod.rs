//! `god gateway`: HTTP → RabbitMQ. Clients POST events; the gateway validates them, publishes
//! them persistent and mandatory with publisher confirms, and answers 202 only once the broker
//! confirmed. Upstream-compatible routes and wire format (see the README).

pub mod confirms;
pub mod envelope;
pub mod metrics;
pub mod publish;
pub mod publisher;
pub mod server;
pub mod upstream;

pub use publish::Gateway;
pub use server::{DEFAULT_BODY_LIMIT, router, serve};
