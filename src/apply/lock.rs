//! The apply locks. The vhost's: an exclusive queue. RabbitMQ lets only one connection
//! declare it, and removes it when that connection ends (even when god is killed), so two
//! applies on the same vhost never interleave and a crashed apply never leaves a stale lock.
//! The container project's: a file lock (see [`ProjectLock`]).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;

use crate::error::{GodError, Result};
use crate::model::APPLY_LOCK_QUEUE;
use crate::rabbit::amqp::{AmqpSession, process_label, reply_code};
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
                        scope: format!("vhost \"{}\"", api.vhost()),
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

/// The apply lock of a container project: an exclusive `flock` on a file named after the
/// project in the temporary directory. The engine has no lock of its own; this serializes the
/// applies of one project on this machine, and the OS releases it when god ends, even when
/// killed. Held as long as this value lives.
pub struct ProjectLock {
    _file: File,
}

/// Takes the project's apply lock, waiting up to `timeout` for another apply to finish.
pub async fn acquire_project(project: &str, timeout: Duration) -> Result<ProjectLock> {
    let path = project_lock_path(project);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| {
            GodError::Other(format!("cannot open the lock file {}: {e}", path.display()))
        })?;
    let started = Instant::now();
    let mut told = false;
    loop {
        match file.try_lock() {
            Ok(()) => {
                // Who holds it, for the applies that will wait (best effort).
                let _ = file.set_len(0);
                let _ = file.write_all(process_label("apply").as_bytes());
                return Ok(ProjectLock { _file: file });
            }
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path)
                    .ok()
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| format!("a process holding {}", path.display()));
                if started.elapsed() >= timeout {
                    return Err(GodError::Locked {
                        scope: format!("container project \"{project}\""),
                        holder,
                        waited_secs: started.elapsed().as_secs(),
                    });
                }
                if !told {
                    eprintln!(
                        "Waiting for the apply lock of container project \"{project}\": held by {holder} (up to {}s)...",
                        timeout.as_secs()
                    );
                    told = true;
                }
                tokio::time::sleep(RETRY_EVERY).await;
            }
            Err(TryLockError::Error(e)) => {
                return Err(GodError::Other(format!(
                    "cannot lock {}: {e}",
                    path.display()
                )));
            }
        }
    }
}

/// Where the lock file of a project is.
pub fn project_lock_path(project: &str) -> PathBuf {
    std::env::temp_dir().join(format!("god-apply-{project}.lock"))
}
