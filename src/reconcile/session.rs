//! An apply's hold on what it changes ([`Session`]): the vhost's apply lock on an AMQP
//! connection, the container project's lock, and letting go of the broker while its own
//! container is (re)started.

use std::time::Duration;

use crate::apply::lock;
use crate::error::{GodError, Result};
use crate::rabbit::amqp::AmqpSession;
use crate::rabbit::endpoints::BrokerEndpoints;
use crate::rabbit::management::ManagementApi;

/// An apply's hold on what it changes: the broker's management API and AMQP connection with
/// the vhost's apply lock, and the container project's lock.
pub struct Session {
    /// The broker part, when the apply covers the broker and it answers.
    pub broker: Option<BrokerSession>,
    _project_lock: Option<lock::ProjectLock>,
    lock_timeout: Duration,
}

/// The broker side of an apply: its API and the AMQP connection that holds the lock.
pub struct BrokerSession {
    /// The management API.
    pub api: ManagementApi,
    /// The connection holding the vhost's apply lock.
    pub amqp: AmqpSession,
}

impl BrokerSession {
    /// Checks the vhost, connects and takes the vhost's lock, waiting up to `timeout` for it.
    async fn open(endpoints: &BrokerEndpoints, timeout: Duration) -> Result<Self> {
        let api = ManagementApi::new(endpoints)?;
        api.check_vhost().await?;
        let amqp = AmqpSession::connect(endpoints, "apply").await?;
        lock::acquire(&amqp, &api, timeout).await?;
        Ok(Self { api, amqp })
    }
}

/// How the broker part of an apply is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerHold {
    /// The apply does not cover the broker.
    None,
    /// The broker must answer now.
    Now,
    /// components.toml runs the broker: when it does not answer, the apply goes on without
    /// it and connects once its container is up.
    WhenUp,
}

impl super::sources::Targets {
    /// How an apply of these targets holds the broker: not at all, at once, or once its
    /// container is up (components.toml runs it).
    pub fn broker_hold(&self) -> BrokerHold {
        let runs_broker = self
            .containers
            .as_ref()
            .is_some_and(|c| c.broker().is_some());
        match (self.broker.is_some(), runs_broker) {
            (false, _) => BrokerHold::None,
            (true, false) => BrokerHold::Now,
            (true, true) => BrokerHold::WhenUp,
        }
    }
}

impl Session {
    /// Checks the vhost, connects and takes the vhost's lock (as `hold` says), then the
    /// project's lock (when `project` is given), waiting up to `timeout` for each.
    pub async fn open(
        endpoints: &BrokerEndpoints,
        hold: BrokerHold,
        project: Option<&str>,
        timeout: Duration,
    ) -> Result<Self> {
        let broker = match hold {
            BrokerHold::None => None,
            BrokerHold::Now => Some(BrokerSession::open(endpoints, timeout).await?),
            BrokerHold::WhenUp => match BrokerSession::open(endpoints, timeout).await {
                Err(GodError::Unreachable { .. }) => None,
                other => Some(other?),
            },
        };
        let _project_lock = match project {
            Some(project) => Some(lock::acquire_project(project, timeout).await?),
            None => None,
        };
        Ok(Self {
            broker,
            _project_lock,
            lock_timeout: timeout,
        })
    }

    /// Lets go of the broker (its lock and connection): its container is about to be
    /// (re)started.
    pub async fn release_broker(&mut self) {
        if let Some(broker) = self.broker.take() {
            broker.amqp.close().await;
        }
    }

    /// Connects to the broker that was just started, trying until [`BROKER_START_TIMEOUT`]
    /// has passed, and takes the vhost's lock.
    pub async fn connect_broker(&mut self, endpoints: &BrokerEndpoints) -> Result<()> {
        let deadline = tokio::time::Instant::now() + BROKER_START_TIMEOUT;
        loop {
            match BrokerSession::open(endpoints, self.lock_timeout).await {
                Ok(broker) => {
                    self.broker = Some(broker);
                    return Ok(());
                }
                Err(GodError::Unreachable { .. }) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Releases the locks (the broker's connection is closed politely).
    pub async fn close(mut self) {
        self.release_broker().await;
    }

    /// The broker's AMQP connection, when the session has one.
    pub fn amqp(&self) -> Option<&AmqpSession> {
        self.broker.as_ref().map(|b| &b.amqp)
    }
}

/// How long god waits for a broker whose container it started to answer.
pub const BROKER_START_TIMEOUT: Duration = Duration::from_secs(120);
