//! HTTP load as the benchmarks generate it: closed-loop clients on keep-alive connections,
//! each request's latency kept, and the figures made of them.

use std::time::{Duration, Instant};

/// One measurement: the latency of every request, and how long the measurement took.
pub struct Sample {
    pub latencies: Vec<Duration>,
    pub elapsed: Duration,
}

impl Sample {
    /// Requests per second.
    pub fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// The median of the rounds' events/s.
pub fn median_rate(samples: &[Sample]) -> f64 {
    median(samples.iter().map(Sample::rate).collect())
}

/// The median of some values.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// p50 and p99 of every request of every round, in milliseconds.
pub fn percentiles(samples: &[Sample]) -> (f64, f64) {
    let mut all: Vec<Duration> = samples
        .iter()
        .flat_map(|s| s.latencies.iter().copied())
        .collect();
    all.sort();
    let at = |q: f64| all[((all.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1000.0;
    (at(0.50), at(0.99))
}

/// `clients` tasks run side by side until `seconds` have passed; each returns the latency of
/// every request it made, one after the other.
pub async fn closed_loop<F, Fut>(clients: usize, seconds: u64, client: F) -> Sample
where
    F: Fn(Instant) -> Fut,
    Fut: std::future::Future<Output = Vec<Duration>> + Send + 'static,
{
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| tokio::spawn(client(deadline)))
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    Sample {
        latencies: all,
        elapsed: started.elapsed(),
    }
}

/// A minimal HTTP/1.1 keep-alive client posting one fixed request, like wrk: the load generator
/// shares the two cores with the gateway and the broker, so it must cost as little as possible.
pub struct KeepAlive {
    stream: tokio::net::TcpStream,
    request: Vec<u8>,
    response: Vec<u8>,
}

impl KeepAlive {
    /// Connects to the loopback port.
    pub async fn connect(port: u16, request: &Request) -> Self {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        stream.set_nodelay(true).unwrap();
        let request = match request {
            Request::Post { path, body } => format!(
                "POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            ),
            Request::Get { path } => {
                format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\r\n")
            }
        };
        Self {
            stream,
            request: request.into_bytes(),
            response: Vec::with_capacity(1024),
        }
    }

    /// Sends the request and reads the whole response; returns its status.
    pub async fn send(&mut self) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        self.stream.write_all(&self.request).await.unwrap();
        self.response.clear();
        loop {
            assert!(
                self.stream.read_buf(&mut self.response).await.unwrap() > 0,
                "the gateway closed the connection"
            );
            let Some(head_end) = self.response.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = std::str::from_utf8(&self.response[..head_end])
                .unwrap()
                .to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            while self.response.len() < head_end + 4 + length {
                assert!(self.stream.read_buf(&mut self.response).await.unwrap() > 0);
            }
            return head[9..12].parse().unwrap();
        }
    }
}

/// The one request a load generator's clients send over and over.
#[derive(Clone, Copy)]
pub enum Request {
    Post {
        path: &'static str,
        body: &'static str,
    },
    Get {
        path: &'static str,
    },
}

/// The benchmark's event, posted as a bare payload.
pub const EVENT: Request = Request::Post {
    path: "/events/bench.load",
    body: r#"{"n": 1, "text": "benchmark"}"#,
};

/// HTTP alone: the gateway's liveness route, which touches neither JSON nor the broker.
pub const LIVENESS: Request = Request::Get { path: "/health" };

pub async fn http_load(
    port: u16,
    request: Request,
    expect: u16,
    clients: usize,
    seconds: u64,
) -> Sample {
    closed_loop(clients, seconds, move |deadline| async move {
        let mut client = KeepAlive::connect(port, &request).await;
        let mut latencies = Vec::new();
        while Instant::now() < deadline {
            let t = Instant::now();
            assert_eq!(client.send().await, expect);
            latencies.push(t.elapsed());
        }
        latencies
    })
    .await
}
