//! god's bundled services, one folder each, and what they share: the HTTP event gateway
//! ([`gateway`]), the WebSocket relay ([`relay`]), the retry mover ([`retry`]), the drift watch ([`watch`]),
//! how they run as containers ([`builtin`]) and their `/metrics` text ([`metrics`]). They do not depend on the
//! planner, and the planner does not depend on them.

pub mod builtin;
pub mod gateway;
pub mod metrics;
pub mod relay;
pub mod retry;
pub mod watch;
