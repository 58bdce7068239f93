//! Dead letters: which queues hold them ([`routes`]), what they hold, read without consuming
//! ([`letters`]), and moving them back where they came from or purging them ([`replay`]).

pub mod letters;
pub mod replay;
pub mod routes;
