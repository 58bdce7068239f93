//! `god tail`: print the events a relay sends, as a dashboard would see them.

use futures::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use super::{Exit, runtime};
use crate::error::{GodError, Result};

/// Connects to the relay at `url` (with `filter` patterns) and prints `count` event frames,
/// one JSON document a line; waits at most `timeout` for them.
pub fn run(
    url: &str,
    filter: Option<&str>,
    count: usize,
    timeout: std::time::Duration,
) -> Result<Exit> {
    let address = match filter {
        Some(f) => format!("{url}?filter={f}"),
        None => url.to_string(),
    };
    runtime()?.block_on(async {
        let (mut socket, _) = tokio_tungstenite::connect_async(&address)
            .await
            .map_err(|e| GodError::Other(format!("cannot connect to the relay at {address}: {e}\nhint: is `god relay` running there?")))?;
        let mut seen = 0;
        let read = async {
            while let Some(Ok(message)) = socket.next().await {
                if let Message::Text(text) = message
                    && text.contains("\"type\":\"event\"")
                {
                    println!("{text}");
                    seen += 1;
                    if seen == count {
                        return;
                    }
                }
            }
        };
        let _ = tokio::time::timeout(timeout, read).await;
        if seen < count {
            return Err(GodError::Other(format!("got {seen} of {count} events from {address} within {}s", timeout.as_secs())));
        }
        Ok(Exit::Success)
    })
}
