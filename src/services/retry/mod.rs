//! `god retry`: the mover that sends each rejected message of a service with `retry:` to its
//! next delay stage, and after the last to its dead-letter queue.

pub mod mover;
