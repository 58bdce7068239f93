//! Dead letters: which queues hold them, reading them without consuming, and replaying them
//! to where they came from.

pub mod letters;
