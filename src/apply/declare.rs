//! Additions over AMQP: exchanges, queues and bindings declared the way their clients declare
//! them, pipelined on several channels at once, where a definitions import is one serial
//! request. The caller declares in phases (exchanges, then queues, then bindings), so a binding
//! never comes before either of its ends; within a phase, the declarations of one unit (a
//! queue and god's record of it) go in order on one channel, so an apply killed part-way never
//! leaves an object god made without its record.

use futures::future::join_all;
use lapin::Channel;
use lapin::options::{ExchangeDeclareOptions, QueueDeclareOptions};

use crate::model::{BindingSpec, ExchangeSpec, QueueSpec};
use crate::rabbit::amqp::{AmqpSession, bind, field_table};

/// Channels the declarations are spread over: enough to keep both of the broker's schedulers
/// busy while each channel waits for its replies.
pub const DECLARE_CHANNELS: usize = 16;

/// One object to declare.
#[derive(Debug, Clone)]
pub enum Declaration {
    /// An exchange.
    Exchange(ExchangeSpec),
    /// A queue.
    Queue(QueueSpec),
    /// A binding (god's record bindings too).
    Binding(BindingSpec),
}

impl Declaration {
    async fn declare(&self, channel: &Channel) -> lapin::Result<()> {
        match self {
            Declaration::Exchange(e) => {
                let options = ExchangeDeclareOptions {
                    durable: e.durable,
                    auto_delete: e.auto_delete,
                    internal: e.internal,
                    ..ExchangeDeclareOptions::default()
                };
                let kind = lapin::ExchangeKind::Custom(e.kind.as_str().to_string());
                channel
                    .exchange_declare(
                        e.name.as_str().into(),
                        kind,
                        options,
                        field_table(&e.arguments),
                    )
                    .await
            }
            Declaration::Queue(q) => {
                let options = QueueDeclareOptions {
                    durable: q.durable,
                    auto_delete: q.auto_delete,
                    ..QueueDeclareOptions::default()
                };
                channel
                    .queue_declare(q.name.as_str().into(), options, field_table(&q.arguments))
                    .await
                    .map(|_| ())
            }
            Declaration::Binding(b) => bind(channel, b).await,
        }
    }
}

/// Declares one phase's objects on `channels`: each declaration comes with its unit, and the
/// declarations of a unit go in their order on one channel (unit modulo channels), pipelined.
/// Returns each declaration's result, in the order given.
pub async fn declare_all(
    session: &AmqpSession,
    declarations: &[(usize, &Declaration)],
    channels: usize,
) -> Vec<Result<(), String>> {
    let lanes = channels.clamp(1, declarations.len().max(1));
    let mut opened = Vec::with_capacity(lanes);
    for _ in 0..lanes {
        match session.channel().await {
            Ok(channel) => opened.push(channel),
            Err(e) => return vec![Err(e.to_string()); declarations.len()],
        }
    }
    let lane_of = |unit: usize| unit % lanes;
    let lane_results = join_all(opened.iter().enumerate().map(|(lane, channel)| async move {
        let mine = declarations
            .iter()
            .enumerate()
            .filter(|(_, (unit, _))| lane_of(*unit) == lane);
        join_all(mine.map(|(i, (_, d))| async move { (i, d.declare(channel).await) })).await
    }))
    .await;
    let mut results: Vec<Result<(), String>> = vec![Ok(()); declarations.len()];
    for (i, outcome) in lane_results.into_iter().flatten() {
        results[i] = outcome.map_err(|e| session.error(e, "declaring").to_string());
    }
    for channel in opened {
        let _ = channel.close(200, "declared".into()).await;
    }
    results
}
