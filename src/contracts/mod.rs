//! The platform's event contracts: Holyfields schema trees read and compiled offline
//! ([`tree`], with [`resolver`] for their `$ref`s), and the breaking changes between two
//! revisions of a tree ([`compare`], `god schema check`).

pub mod compare;
pub mod resolver;
pub mod tree;
