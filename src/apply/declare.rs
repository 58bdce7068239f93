//! Additions over AMQP: exchanges, queues and bindings declared the way their clients declare
//! them, pipelined on several channels at once, where a definitions import is one serial
//! request. The caller declares in phases (exchanges, then queues with their bindings), so a
//! binding never comes before its source; within a phase, the declarations of one unit (a
//! queue and god's record of it) go in order on one channel, so an apply killed part-way never
//! leaves an object god made without its record, and a binding to a queue of the same phase
//! waits for that queue's declaration ([`Step::after`]) instead of for the whole phase.

use std::sync::Mutex;

use futures::channel::oneshot;
use futures::future::{FutureExt, Shared, join_all};
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

/// One declaration of a phase.
#[derive(Debug, Clone, Copy)]
pub struct Step<'a> {
    /// The declarations of a unit go in their order on one channel (unit modulo channels).
    pub unit: usize,
    /// What is declared.
    pub declaration: &'a Declaration,
    /// The step (an index into the same phase) that must have succeeded before this one is
    /// sent: a binding's queue declared on another channel. A step that waits must be the only
    /// one of its unit, or the last, so that it does not delay the rest of its unit.
    pub after: Option<usize>,
}

/// Declares one phase's steps on `channels`, pipelined: each channel sends its steps at once,
/// except those that wait for another step. Returns each step's result, in the order given;
/// None for a step not sent because the step it waited for failed.
pub async fn declare_all(
    session: &AmqpSession,
    steps: &[Step<'_>],
    channels: usize,
) -> Vec<Option<Result<(), String>>> {
    let lanes = channels.clamp(1, steps.len().max(1));
    let mut opened = Vec::with_capacity(lanes);
    for _ in 0..lanes {
        match session.channel().await {
            Ok(channel) => opened.push(channel),
            Err(e) => return vec![Some(Err(e.to_string())); steps.len()],
        }
    }
    let signals = Signals::new(steps);
    let signals = &signals;
    let lane_of = |unit: usize| unit % lanes;
    let lane_results = join_all(opened.iter().enumerate().map(|(lane, channel)| async move {
        let mine = steps
            .iter()
            .enumerate()
            .filter(|(_, step)| lane_of(step.unit) == lane);
        join_all(mine.map(|(i, step)| async move {
            if let Some(first) = step.after
                && !signals.succeeded(first).await
            {
                return (i, None);
            }
            let result = step.declaration.declare(channel).await;
            signals.tell(i, result.is_ok());
            (i, Some(result))
        }))
        .await
    }))
    .await;
    let mut results: Vec<Option<Result<(), String>>> = vec![None; steps.len()];
    for (i, outcome) in lane_results.into_iter().flatten() {
        results[i] = outcome.map(|r| r.map_err(|e| session.error(e, "declaring").to_string()));
    }
    for channel in opened {
        let _ = channel.close(200, "declared".into()).await;
    }
    results
}

/// How the steps that others wait for tell them whether they succeeded.
struct Signals {
    /// The sender of each awaited step, taken when it finishes (None for the others).
    senders: Vec<Mutex<Option<oneshot::Sender<bool>>>>,
    /// The receiver of each awaited step, shared by the steps that wait for it.
    receivers: Vec<Option<Shared<oneshot::Receiver<bool>>>>,
}

impl Signals {
    fn new(steps: &[Step<'_>]) -> Self {
        let mut awaited = vec![false; steps.len()];
        for first in steps.iter().filter_map(|step| step.after) {
            awaited[first] = true;
        }
        let (senders, receivers) = awaited
            .into_iter()
            .map(|awaited| {
                if awaited {
                    let (sender, receiver) = oneshot::channel();
                    (Mutex::new(Some(sender)), Some(receiver.shared()))
                } else {
                    (Mutex::new(None), None)
                }
            })
            .unzip();
        Self { senders, receivers }
    }

    /// Tells the steps waiting for step `index` how it ended.
    fn tell(&self, index: usize, succeeded: bool) {
        let sender = self.senders[index].lock().map(|mut s| s.take());
        if let Ok(Some(sender)) = sender {
            let _ = sender.send(succeeded);
        }
    }

    /// Waits for step `index`; whether it succeeded.
    async fn succeeded(&self, index: usize) -> bool {
        match &self.receivers[index] {
            Some(receiver) => receiver.clone().await == Ok(true),
            None => false,
        }
    }
}
