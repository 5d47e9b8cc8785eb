//! Prometheus metrics of the sidecar. Every label has a bounded set of values: outcomes and
//! denial reasons are fixed lists, status classes are `1xx`…`5xx`, KeyManager names come
//! from the config (a handful per API).

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use crate::config::compiled::CompileError;
use crate::config::source::LoadError;
use crate::denial::Denial;

/// The sidecar's metrics and their registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Decisions by `outcome` (`allow`/`deny`) and `reason`.
    pub decisions: IntCounterVec,
    /// Time to decide, by `cache` (`hit`/`miss`).
    pub auth_duration: HistogramVec,
    /// Time to the upstream's response headers, by `status_class`.
    pub upstream_duration: HistogramVec,
    /// Upstream failures by `kind` (`connect`, `timeout`, `protocol`).
    pub upstream_errors: IntCounterVec,
    /// Successful config loads since start; the config's generation as a number.
    pub config_generation: IntGauge,
    /// 1, labelled with the SHA-256 of the config in effect.
    pub config_info: IntGaugeVec,
    /// Whether a valid config is loaded.
    pub config_loaded: IntGauge,
    /// Reload attempts by `result` (`success`/`failure`).
    pub config_reloads: IntCounterVec,
    /// Failed reloads by `reason`.
    pub config_reload_failures: IntCounterVec,
    /// 1 while the newest config on disk is refused and the last good one serves.
    pub config_pending_failure: IntGauge,
    /// Unix time of the last successful load.
    pub config_last_success: Gauge,
    /// Subscriptions in the config in effect.
    pub config_subscriptions: IntGauge,
    /// Usable keys in the config in effect.
    pub config_keys: IntGauge,
    /// Verified-token cache lookups by `result` (`hit`/`miss`).
    pub cache_lookups: IntCounterVec,
    /// Entries in the verified-token cache.
    pub cache_entries: IntGauge,
    /// JWKS fetches by `key_manager` and `result`.
    pub jwks_fetches: IntCounterVec,
    /// Requests being served.
    pub requests_in_flight: IntGauge,
    /// Client connections open.
    pub connections_open: IntGauge,
    /// Client connections accepted.
    pub connections_total: IntCounter,
    hot: HotPath,
}

/// Children of the label sets every request touches, resolved once (a label lookup hashes
/// the label values on every call).
#[derive(Clone)]
struct HotPath {
    allowed: IntCounter,
    auth_hit: prometheus::Histogram,
    auth_miss: prometheus::Histogram,
    cache_hit: IntCounter,
    cache_miss: IntCounter,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25,
];
const UPSTREAM_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let decisions = IntCounterVec::new(
            Opts::new(
                "outband_sidecar_decisions_total",
                "Authorization decisions by outcome and reason.",
            ),
            &["outcome", "reason"],
        )
        .unwrap();
        let auth_duration = HistogramVec::new(
            HistogramOpts::new(
                "outband_sidecar_auth_duration_seconds",
                "Time to decide on a request, by whether the verified-token cache answered.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["cache"],
        )
        .unwrap();
        let upstream_duration = HistogramVec::new(
            HistogramOpts::new(
                "outband_sidecar_upstream_duration_seconds",
                "Time from forwarding a request to the app's response headers.",
            )
            .buckets(UPSTREAM_BUCKETS.to_vec()),
            &["status_class"],
        )
        .unwrap();
        let upstream_errors = IntCounterVec::new(
            Opts::new(
                "outband_sidecar_upstream_errors_total",
                "Requests that could not be forwarded to the app, by kind.",
            ),
            &["kind"],
        )
        .unwrap();
        let config_generation = IntGauge::new(
            "outband_sidecar_config_generation",
            "Number of configs successfully loaded since start.",
        )
        .unwrap();
        let config_info = IntGaugeVec::new(
            Opts::new(
                "outband_sidecar_config_info",
                "The config in effect (value 1), labelled with its SHA-256.",
            ),
            &["sha256"],
        )
        .unwrap();
        let config_loaded = IntGauge::new(
            "outband_sidecar_config_loaded",
            "1 when a valid config is loaded (the sidecar is ready), else 0.",
        )
        .unwrap();
        let config_reloads = IntCounterVec::new(
            Opts::new(
                "outband_sidecar_config_reloads_total",
                "Config load attempts after a change, by result.",
            ),
            &["result"],
        )
        .unwrap();
        let config_reload_failures = IntCounterVec::new(
            Opts::new(
                "outband_sidecar_config_reload_failures_total",
                "Config loads refused (the last good config stays in effect), by reason.",
            ),
            &["reason"],
        )
        .unwrap();
        let config_pending_failure = IntGauge::new(
            "outband_sidecar_config_pending_failure",
            "1 while the newest config in the volume is refused and the last good config is in effect, else 0.",
        )
        .unwrap();
        let config_last_success = Gauge::new(
            "outband_sidecar_config_last_success_timestamp_seconds",
            "Unix time of the last successful config load.",
        )
        .unwrap();
        let config_subscriptions = IntGauge::new(
            "outband_sidecar_config_subscriptions",
            "Subscriptions in the config in effect.",
        )
        .unwrap();
        let config_keys = IntGauge::new(
            "outband_sidecar_config_keys",
            "Usable public keys in the config in effect.",
        )
        .unwrap();
        let cache_lookups = IntCounterVec::new(
            Opts::new(
                "outband_sidecar_token_cache_lookups_total",
                "Verified-token cache lookups, by result.",
            ),
            &["result"],
        )
        .unwrap();
        let cache_entries = IntGauge::new(
            "outband_sidecar_token_cache_entries",
            "Entries in the verified-token cache.",
        )
        .unwrap();
        let jwks_fetches = IntCounterVec::new(
            Opts::new(
                "outband_sidecar_jwks_fetches_total",
                "JWKS fetches made for unknown key ids, by key manager and result.",
            ),
            &["key_manager", "result"],
        )
        .unwrap();
        let requests_in_flight = IntGauge::new(
            "outband_sidecar_requests_in_flight",
            "Requests being served.",
        )
        .unwrap();
        let connections_open = IntGauge::new(
            "outband_sidecar_connections_open",
            "Client connections open.",
        )
        .unwrap();
        let connections_total = IntCounter::new(
            "outband_sidecar_connections_total",
            "Client connections accepted.",
        )
        .unwrap();

        let hot = HotPath {
            allowed: decisions.with_label_values(&["allow", "ok"]),
            auth_hit: auth_duration.with_label_values(&["hit"]),
            auth_miss: auth_duration.with_label_values(&["miss"]),
            cache_hit: cache_lookups.with_label_values(&["hit"]),
            cache_miss: cache_lookups.with_label_values(&["miss"]),
        };
        let metrics = Metrics {
            registry,
            decisions,
            auth_duration,
            upstream_duration,
            upstream_errors,
            config_generation,
            config_info,
            config_loaded,
            config_reloads,
            config_reload_failures,
            config_pending_failure,
            config_last_success,
            config_subscriptions,
            config_keys,
            cache_lookups,
            cache_entries,
            jwks_fetches,
            requests_in_flight,
            connections_open,
            connections_total,
            hot,
        };
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(metrics.decisions.clone()),
            Box::new(metrics.auth_duration.clone()),
            Box::new(metrics.upstream_duration.clone()),
            Box::new(metrics.upstream_errors.clone()),
            Box::new(metrics.config_generation.clone()),
            Box::new(metrics.config_info.clone()),
            Box::new(metrics.config_loaded.clone()),
            Box::new(metrics.config_reloads.clone()),
            Box::new(metrics.config_reload_failures.clone()),
            Box::new(metrics.config_pending_failure.clone()),
            Box::new(metrics.config_last_success.clone()),
            Box::new(metrics.config_subscriptions.clone()),
            Box::new(metrics.config_keys.clone()),
            Box::new(metrics.cache_lookups.clone()),
            Box::new(metrics.cache_entries.clone()),
            Box::new(metrics.jwks_fetches.clone()),
            Box::new(metrics.requests_in_flight.clone()),
            Box::new(metrics.connections_open.clone()),
            Box::new(metrics.connections_total.clone()),
        ];
        for collector in collectors {
            metrics.registry.register(collector).unwrap();
        }
        metrics.prime();
        metrics
    }

    /// Creates the series of every fixed label value, so dashboards and alerts see zeros
    /// instead of absent series.
    fn prime(&self) {
        self.decisions.with_label_values(&["allow", "ok"]);
        for reason in Denial::REASONS {
            self.decisions.with_label_values(&["deny", reason]);
        }
        for cache in ["hit", "miss"] {
            self.auth_duration.with_label_values(&[cache]);
            self.cache_lookups.with_label_values(&[cache]);
        }
        for result in ["success", "failure"] {
            self.config_reloads.with_label_values(&[result]);
        }
        for kind in ["connect", "timeout", "protocol"] {
            self.upstream_errors.with_label_values(&[kind]);
        }
        for reason in LoadError::REASONS.iter().chain(&CompileError::REASONS) {
            self.config_reload_failures.with_label_values(&[reason]);
        }
    }

    /// Creates KeyManager `key_manager`'s JWKS fetch series at 0 (a config that lets the
    /// sidecar fetch its keys lists it).
    pub fn prime_jwks_fetches(&self, key_manager: &str) {
        for result in crate::refresh::RESULTS {
            self.jwks_fetches.with_label_values(&[key_manager, result]);
        }
    }

    /// Records an allow decision.
    pub fn allowed(&self) {
        self.hot.allowed.inc();
    }

    /// Records a verified-token cache lookup.
    pub fn cache_lookup(&self, hit: bool) {
        if hit {
            self.hot.cache_hit.inc();
        } else {
            self.hot.cache_miss.inc();
        }
    }

    /// Records the time a decision took.
    pub fn auth_time(&self, cache_hit: bool, seconds: f64) {
        if cache_hit {
            self.hot.auth_hit.observe(seconds);
        } else {
            self.hot.auth_miss.observe(seconds);
        }
    }

    /// Records a deny decision.
    pub fn denied(&self, denial: &Denial) {
        self.decisions
            .with_label_values(&["deny", denial.reason()])
            .inc();
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encoding metrics into a Vec cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// `2xx` for 200 and so on.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_zeroed_series() {
        let metrics = Metrics::new();
        metrics.denied(&Denial::Expired);
        let text = String::from_utf8(metrics.render()).unwrap();
        assert!(
            text.contains("outband_sidecar_decisions_total{outcome=\"deny\",reason=\"expired\"} 1")
        );
        assert!(text.contains(
            "outband_sidecar_decisions_total{outcome=\"deny\",reason=\"bad_signature\"} 0"
        ));
        assert!(text.contains("# TYPE outband_sidecar_auth_duration_seconds histogram"));
        assert!(text.contains("outband_sidecar_config_loaded 0"));
        assert!(text.contains("outband_sidecar_config_pending_failure 0"));
    }

    #[test]
    fn bounded_counters_exist_at_zero() {
        let metrics = Metrics::new();
        metrics.prime_jwks_fetches("idp");
        let text = String::from_utf8(metrics.render()).unwrap();
        for series in [
            "outband_sidecar_config_reload_failures_total{reason=\"torn\"} 0",
            "outband_sidecar_config_reload_failures_total{reason=\"wrong_api\"} 0",
            "outband_sidecar_config_reload_failures_total{reason=\"missing\"} 0",
            "outband_sidecar_jwks_fetches_total{key_manager=\"idp\",result=\"success\"} 0",
            "outband_sidecar_jwks_fetches_total{key_manager=\"idp\",result=\"timeout\"} 0",
            "outband_sidecar_jwks_fetches_total{key_manager=\"idp\",result=\"no_usable_keys\"} 0",
        ] {
            assert!(text.contains(series), "{series} missing:\n{text}");
        }
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(101), "1xx");
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(404), "4xx");
        assert_eq!(status_class(503), "5xx");
    }
}
