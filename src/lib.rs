//! `god`: a declarative reconciler for the 33GOD event bus.
//!
//! The flow is one-directional: [`inputs`] turn `registry.yaml` and `components.toml` into a
//! desired state, [`observe`] reads the live broker and engine into an observed state of the
//! same types, [`plan`] diffs the two without any I/O (it and [`model`] are the `god-core`
//! crate, which has no I/O dependency), and [`apply`] executes a plan it is given;
//! [`reconcile`] strings these together for the commands.

pub use god_core::{model, plan};

pub mod apply;
pub mod cli;
pub mod commands;
pub mod contracts;
pub mod dlq;
pub mod doctor;
pub mod error;
pub mod import;
pub mod inputs;
pub mod logging;
pub mod observe;
pub mod rabbit;
pub mod reconcile;
pub mod scaffold;
pub mod services;

/// This machine's name from /etc/hostname, read once; None when it cannot be read.
pub fn host_name() -> Option<&'static str> {
    static NAME: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|s| s.trim().to_string())
    })
    .as_deref()
}
