//! The gateway's metrics, exposed at `GET /metrics` in the OpenMetrics text format
//! (prometheus-client): events published, refused by reason, in flight, and the confirm latency.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds of the confirm-latency histogram, in seconds.
const BUCKETS: [f64; 11] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Why an event was refused: the label of `god_gateway_rejected_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Refusal {
    reason: &'static str,
}

/// The gateway's metrics, shared by the handlers.
pub struct Metrics {
    registry: Registry,
    published: Counter,
    rejected: Family<Refusal, Counter>,
    in_flight: Gauge,
    confirm: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let published = Counter::default();
        let rejected = Family::<Refusal, Counter>::default();
        let in_flight = Gauge::default();
        let confirm = Histogram::new(BUCKETS);
        let mut registry = Registry::with_prefix("god_gateway");
        registry.register(
            "published",
            "Events published and confirmed by the broker",
            published.clone(),
        );
        registry.register("rejected", "Events refused, by reason", rejected.clone());
        registry.register(
            "in_flight",
            "Publishes waiting for the broker's confirm",
            in_flight.clone(),
        );
        registry.register(
            "confirm_seconds",
            "Time from publish to the broker's confirm",
            confirm.clone(),
        );
        Self {
            registry,
            published,
            rejected,
            in_flight,
            confirm,
        }
    }
}

impl Metrics {
    /// An event confirmed by the broker, and how long the confirm took.
    pub fn published(&self, latency: Duration) {
        self.published.inc();
        self.confirm.observe(latency.as_secs_f64());
    }

    /// An event refused, by reason (invalid_json, schema, unroutable, unavailable, ...).
    pub fn rejected(&self, reason: &'static str) {
        self.rejected.get_or_create(&Refusal { reason }).inc();
    }

    /// A publish starts (+1) or ends (-1).
    pub fn in_flight(&self, delta: i64) {
        self.in_flight.inc_by(delta);
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        crate::services::metrics::render(&self.registry)
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
        metrics.rejected("unroutable");
        let text = metrics.render();
        for (bound, expected) in [
            ("0.001", 1),
            ("0.002", 1),
            ("0.005", 3),
            ("0.05", 4),
            ("5.0", 4),
            ("+Inf", 5),
        ] {
            let line = format!("god_gateway_confirm_seconds_bucket{{le=\"{bound}\"}} {expected}\n");
            assert!(text.contains(&line), "{line} in:\n{text}");
        }
        for line in [
            "god_gateway_confirm_seconds_count 5\n",
            "god_gateway_published_total 5\n",
            "god_gateway_rejected_total{reason=\"unroutable\"} 1\n",
            "god_gateway_in_flight 0\n",
        ] {
            assert!(text.contains(line), "{line} in:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
