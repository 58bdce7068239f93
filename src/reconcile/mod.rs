//! Reconciling, as a library: where the inputs and the broker are ([`sources`]), observing
//! and planning what a run covers ([`planning`]), the locks an apply holds ([`session`]),
//! carrying out a plan ([`execute`]) and plans saved on disk ([`saved`]). `commands/` parse,
//! call these, print and choose the exit code.

pub mod execute;
pub mod planning;
pub mod project;
pub mod saved;
pub mod session;
pub mod sources;
