//! The apply lock: an exclusive queue on the vhost. RabbitMQ lets only one connection declare
//! it, and removes it when that connection ends (even when god is killed), so two applies on
//! the same vhost never interleave and a crashed apply never leaves a stale lock.

use std::time::{Duration, Instant};

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;

use crate::error::{GodError, Result};
use crate::model::APPLY_LOCK_QUEUE;
use crate::rabbit::amqp::{AmqpSession, reply_code};
use crate::rabbit::management::{ManagementApi, OwnerField};

/// How often a waiting apply tries the lock again.
const RETRY_EVERY: Duration = Duration::from_millis(200);

/// Takes the vhost's apply lock, waiting up to `timeout` for another apply to finish. The lock
/// is held as long as the session's connection lives.
pub async fn acquire(session: &AmqpSession, api: &ManagementApi, timeout: Duration) -> Result<()> {
    let started = Instant::now();
    let mut told = false;
    loop {
        let channel = session.channel().await?;
        let options = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..QueueDeclareOptions::default()
        };
        match channel
            .queue_declare(APPLY_LOCK_QUEUE.into(), options, FieldTable::default())
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if reply_code(&e) == Some(405) => {
                let holder = holder(api).await;
                if started.elapsed() >= timeout {
                    return Err(GodError::Locked {
                        vhost: api.vhost().to_string(),
                        holder,
                        waited_secs: started.elapsed().as_secs(),
                    });
                }
                if !told {
                    eprintln!(
                        "Waiting for the apply lock of vhost \"{}\": held by {holder} (up to {}s)...",
                        api.vhost(),
                        timeout.as_secs()
                    );
                    told = true;
                }
                tokio::time::sleep(RETRY_EVERY).await;
            }
            Err(e) => return Err(session.error(e, "taking the apply lock")),
        }
    }
}

/// Who holds the lock, as the broker tells it: the owning connection's name (god names its
/// connections `god apply (pid N on HOST)`) and address. The management API learns the owner
/// with its next statistics round (5 s by default); until then it is "another connection".
async fn holder(api: &ManagementApi) -> String {
    let owner = api
        .queue(APPLY_LOCK_QUEUE)
        .await
        .ok()
        .flatten()
        .and_then(|q| q.owner_pid_details);
    let address = match owner {
        Some(OwnerField::Known(details)) => details.name,
        _ => None,
    };
    match address {
        Some(address) => match api.connection_name(&address).await {
            Some(name) => format!("connection \"{name}\" from {address}"),
            None => format!("connection {address}"),
        },
        None => "another connection".to_string(),
    }
}
