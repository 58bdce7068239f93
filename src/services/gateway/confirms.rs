//! The publishes that wait for the broker's verdict on one confirming channel.
//!
//! The broker numbers a channel's publishes 1, 2, 3... (delivery tags) and answers each with an
//! ack or a nack, possibly several at once (`multiple`). A mandatory publish that no queue
//! takes is first returned (`basic.return`, which carries the message but no tag) and then
//! acked; the return is matched to its publish by message id, which the publisher keeps unique
//! among the publishes in flight ([`Confirms::is_in_flight`]).

use std::collections::BTreeMap;
use std::sync::Mutex;

use tokio::sync::{Notify, futures::Notified, oneshot};

/// What the broker said about one publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Acked, and routed to at least one queue.
    Confirmed,
    /// Acked after being returned: no queue is bound for its routing key.
    Returned,
    /// Nacked: the broker could not take it.
    Refused,
    /// The channel or connection went away before a verdict, and why.
    Lost(String),
}

struct Waiter {
    message_id: String,
    returned: bool,
    reply: oneshot::Sender<Verdict>,
}

/// The publishes in flight on one channel, by delivery tag.
#[derive(Default)]
pub struct Confirms {
    waiters: Mutex<BTreeMap<u64, Waiter>>,
    settled: Notify,
}

impl Confirms {
    /// Whether a publish with this message id is waiting for its verdict.
    pub fn is_in_flight(&self, message_id: &str) -> bool {
        self.lock().values().any(|w| w.message_id == message_id)
    }

    /// Resolves when any publish is settled; created before a check of [`Self::is_in_flight`],
    /// it cannot miss the settlement that follows the check.
    pub fn settled(&self) -> Notified<'_> {
        self.settled.notified()
    }

    /// Starts waiting for the verdict on publish number `tag`.
    pub fn register(&self, tag: u64, message_id: &str) -> oneshot::Receiver<Verdict> {
        let (reply, verdict) = oneshot::channel();
        let waiter = Waiter {
            message_id: message_id.to_string(),
            returned: false,
            reply,
        };
        self.lock().insert(tag, waiter);
        verdict
    }

    /// Forgets publish `tag`, which was never sent.
    pub fn forget(&self, tag: u64) {
        self.lock().remove(&tag);
    }

    /// The broker returned the message with this id: its ack will mean "unroutable".
    pub fn returned(&self, message_id: &str) {
        if let Some(waiter) = self
            .lock()
            .values_mut()
            .find(|w| w.message_id == message_id && !w.returned)
        {
            waiter.returned = true;
        }
    }

    /// The broker acked publish `tag` (and every earlier one, when `multiple`).
    pub fn acked(&self, tag: u64, multiple: bool) {
        self.settle(tag, multiple, |w| {
            if w.returned {
                Verdict::Returned
            } else {
                Verdict::Confirmed
            }
        });
    }

    /// The broker nacked publish `tag` (and every earlier one, when `multiple`).
    pub fn nacked(&self, tag: u64, multiple: bool) {
        self.settle(tag, multiple, |_| Verdict::Refused);
    }

    /// The channel is gone (`why`): every publish in flight is lost.
    pub fn lose_all(&self, why: &str) {
        let waiters = std::mem::take(&mut *self.lock());
        self.reply(waiters.into_values(), |_| Verdict::Lost(why.to_string()));
    }

    fn settle(&self, tag: u64, multiple: bool, verdict: impl Fn(&Waiter) -> Verdict) {
        let done: Vec<Waiter> = {
            let mut waiters = self.lock();
            if multiple {
                let later = waiters.split_off(&(tag + 1));
                std::mem::replace(&mut *waiters, later)
                    .into_values()
                    .collect()
            } else {
                waiters.remove(&tag).into_iter().collect()
            }
        };
        self.reply(done.into_iter(), verdict);
    }

    fn reply(&self, waiters: impl Iterator<Item = Waiter>, verdict: impl Fn(&Waiter) -> Verdict) {
        for waiter in waiters {
            let verdict = verdict(&waiter);
            // The publisher may have stopped waiting (its client went away): nothing to tell.
            let _ = waiter.reply.send(verdict);
        }
        self.settled.notify_waiters();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Waiter>> {
        self.waiters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict_now(mut receiver: oneshot::Receiver<Verdict>) -> Option<Verdict> {
        receiver.try_recv().ok()
    }

    #[test]
    fn an_ack_settles_only_its_own_tag() {
        let confirms = Confirms::default();
        let first = confirms.register(1, "a");
        let second = confirms.register(2, "b");
        confirms.acked(2, false);
        assert_eq!(verdict_now(second), Some(Verdict::Confirmed));
        assert_eq!(verdict_now(first), None);
        assert!(confirms.is_in_flight("a"));
        assert!(!confirms.is_in_flight("b"));
    }

    #[test]
    fn a_multiple_ack_settles_every_tag_up_to_it_and_no_later_one() {
        let confirms = Confirms::default();
        let receivers: Vec<_> = (1..=4)
            .map(|tag| confirms.register(tag, &format!("e{tag}")))
            .collect();
        confirms.acked(3, true);
        let verdicts: Vec<_> = receivers.into_iter().map(verdict_now).collect();
        assert_eq!(
            verdicts,
            vec![
                Some(Verdict::Confirmed),
                Some(Verdict::Confirmed),
                Some(Verdict::Confirmed),
                None
            ]
        );
        assert!(confirms.is_in_flight("e4"));
    }

    #[test]
    fn a_returned_message_is_reported_unroutable_at_its_ack_and_others_are_not() {
        let confirms = Confirms::default();
        let routed = confirms.register(1, "routed");
        let unroutable = confirms.register(2, "lost-in-space");
        confirms.returned("lost-in-space");
        confirms.acked(2, true);
        assert_eq!(verdict_now(routed), Some(Verdict::Confirmed));
        assert_eq!(verdict_now(unroutable), Some(Verdict::Returned));
    }

    #[test]
    fn a_nack_refuses_and_losing_the_channel_loses_everything_in_flight() {
        let confirms = Confirms::default();
        let nacked = confirms.register(1, "a");
        let pending = confirms.register(2, "b");
        confirms.nacked(1, false);
        assert_eq!(verdict_now(nacked), Some(Verdict::Refused));
        confirms.lose_all("gone");
        assert_eq!(
            verdict_now(pending),
            Some(Verdict::Lost("gone".to_string()))
        );
        assert!(!confirms.is_in_flight("b"));
    }

    #[test]
    fn a_forgotten_publish_is_no_longer_in_flight() {
        let confirms = Confirms::default();
        let _never_sent = confirms.register(7, "a");
        confirms.forget(7);
        assert!(!confirms.is_in_flight("a"));
    }

    #[tokio::test]
    async fn waiting_for_a_settlement_wakes_on_the_next_verdict() {
        let confirms = std::sync::Arc::new(Confirms::default());
        let _first = confirms.register(1, "a");
        let settled = confirms.settled();
        let acker = std::sync::Arc::clone(&confirms);
        tokio::spawn(async move { acker.acked(1, false) });
        tokio::time::timeout(std::time::Duration::from_secs(5), settled)
            .await
            .expect("a settlement wakes the waiter");
        assert!(!confirms.is_in_flight("a"));
    }
}
