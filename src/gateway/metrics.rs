//! The gateway's counters, rendered in Prometheus' text format at `GET /metrics`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the confirm-latency histogram, in seconds.
const BUCKETS: [f64; 11] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Counters shared by the handlers.
#[derive(Default)]
pub struct Metrics {
    published: AtomicU64,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    in_flight: AtomicI64,
    /// Confirms per latency bucket, each counted once (in the first bucket it fits); the
    /// exposition sums them into Prometheus' cumulative buckets.
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
}

impl Metrics {
    /// An event confirmed by the broker, and how long the confirm took.
    pub fn published(&self, latency: Duration) {
        self.published.fetch_add(1, Ordering::Relaxed);
        let secs = latency.as_secs_f64();
        if let Some(bucket) = BUCKETS.iter().position(|bound| secs <= *bound) {
            self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros
            .fetch_add(latency.as_micros() as u64, Ordering::Relaxed);
    }

    /// An event refused, by reason (invalid_json, schema, unroutable, unavailable, ...).
    pub fn rejected(&self, reason: &'static str) {
        *self
            .rejected
            .lock()
            .expect("metrics lock")
            .entry(reason)
            .or_default() += 1;
    }

    /// A publish starts (+1) or ends (-1).
    pub fn in_flight(&self, delta: i64) {
        self.in_flight.fetch_add(delta, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP god_gateway_published_total Events published and confirmed by the broker.\n# TYPE god_gateway_published_total counter\n");
        out.push_str(&format!(
            "god_gateway_published_total {}\n",
            self.published.load(Ordering::Relaxed)
        ));
        out.push_str("# HELP god_gateway_rejected_total Events refused, by reason.\n# TYPE god_gateway_rejected_total counter\n");
        for (reason, n) in self.rejected.lock().expect("metrics lock").iter() {
            out.push_str(&format!(
                "god_gateway_rejected_total{{reason=\"{reason}\"}} {n}\n"
            ));
        }
        out.push_str("# HELP god_gateway_in_flight Publishes waiting for the broker's confirm.\n# TYPE god_gateway_in_flight gauge\n");
        out.push_str(&format!(
            "god_gateway_in_flight {}\n",
            self.in_flight.load(Ordering::Relaxed)
        ));
        out.push_str("# HELP god_gateway_confirm_seconds Time from publish to the broker's confirm.\n# TYPE god_gateway_confirm_seconds histogram\n");
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&self.latency_buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            out.push_str(&format!(
                "god_gateway_confirm_seconds_bucket{{le=\"{bound}\"}} {cumulative}\n"
            ));
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        out.push_str(&format!(
            "god_gateway_confirm_seconds_bucket{{le=\"+Inf\"}} {count}\n"
        ));
        let sum = self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        out.push_str(&format!(
            "god_gateway_confirm_seconds_sum {sum}\ngod_gateway_confirm_seconds_count {count}\n"
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latency_histogram_is_cumulative_and_ends_with_every_confirm() {
        let metrics = Metrics::default();
        for millis in [1, 3, 3, 40, 9000] {
            metrics.published(Duration::from_millis(millis));
        }
        let text = metrics.render();
        for (bound, expected) in [
            ("0.001", 1),
            ("0.002", 1),
            ("0.005", 3),
            ("0.05", 4),
            ("5", 4),
        ] {
            let line = format!("god_gateway_confirm_seconds_bucket{{le=\"{bound}\"}} {expected}\n");
            assert!(text.contains(&line), "{line} in:\n{text}");
        }
        assert!(text.contains("god_gateway_confirm_seconds_bucket{le=\"+Inf\"} 5\n"));
        assert!(text.contains("god_gateway_confirm_seconds_count 5\n"));
        assert!(text.contains("god_gateway_published_total 5\n"));
    }
}
