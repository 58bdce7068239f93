//! Reading the live systems into observed state. Read-only, and in bulk.

pub mod docker;
pub mod rabbit;
