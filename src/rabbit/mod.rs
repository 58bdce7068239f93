//! Talking to RabbitMQ: where it is ([`endpoints`]: URL lists, credentials, vhost), the
//! management HTTP API ([`management`]), AMQP ([`amqp`]) and its headers, and moving between
//! the nodes of a cluster ([`rotation`]).

pub mod amqp;
pub mod endpoints;
pub mod headers;
pub mod management;
pub mod rotation;
pub mod settings;
