//! Talking to RabbitMQ: the management HTTP API ([`management`]) and AMQP ([`amqp`]).

pub mod amqp;
pub mod headers;
pub mod management;
pub mod rotation;
