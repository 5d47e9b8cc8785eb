//! Prometheus metrics of the operator, served on the admin port at `/metrics`.
//!
//! Every label has a bounded set of values: controller names, stable error reasons,
//! KeyManager names, API names (one per served API) and binding states.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::error::Error;
use crate::index::ObjectKey;
use crate::key_manager::source::SourceError;

const NAMESPACE: &str = "outband_operator";

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Outcomes of `config_compilations_total`.
pub const COMPILATION_OUTCOMES: [&str; 5] =
    ["changed", "unchanged", "deferred", "not_served", "error"];

/// The `reason`s each controller's reconciles can fail with.
fn reconcile_error_reasons() -> [(&'static str, Vec<&'static str>); 3] {
    let mut api = Error::API_REASONS.to_vec();
    api.push(Error::Panicked.reason());
    let with = |extra: &[&'static str]| api.iter().chain(extra).copied().collect::<Vec<_>>();
    [
        (crate::key_manager::controller::CONTROLLER, with(&[])),
        (crate::binding::controller::CONTROLLER, with(&[])),
        (
            crate::config::controller::CONTROLLER,
            with(&Error::CONFIG_REASONS),
        ),
    ]
}

/// The operator's metrics. Other parts of the binary (the injection webhook) register
/// theirs in [`Metrics::registry`].
pub struct Metrics {
    registry: Registry,
    reconciles: IntCounterVec,
    reconcile_errors: IntCounterVec,
    reconcile_duration: HistogramVec,
    /// JWKS fetches by KeyManager and result (`success` or a failure reason).
    pub jwks_fetches: IntCounterVec,
    /// Discovery document fetches by KeyManager and result.
    pub discovery_fetches: IntCounterVec,
    /// Keys in use per KeyManager.
    pub keys_loaded: IntGaugeVec,
    /// Time of the last successful key refresh per KeyManager (seconds since the epoch).
    pub last_refresh_success: GaugeVec,
    /// Failed refreshes since the last success per KeyManager.
    pub consecutive_failures: IntGaugeVec,
    /// Whether each KeyManager is Ready (1) or not (0).
    pub key_manager_ready: IntGaugeVec,
    /// ConfigMap writes by operation (`apply`, `delete`) and result (`success`, `error`).
    pub configmap_writes: IntCounterVec,
    /// Config compilations by outcome (`changed`, `unchanged`, `deferred`, `not_served`).
    pub compilations: IntCounterVec,
    /// Compressed size of each API's config.
    pub config_bytes: IntGaugeVec,
    /// Subscriptions in each API's config.
    pub config_subscriptions: IntGaugeVec,
    bindings: IntGaugeVec,
    binding_states: Mutex<HashMap<ObjectKey, String>>,
    /// 1 while this replica holds the leader lease.
    pub leader: IntGauge,
    /// Watch events by resource.
    pub watch_events: IntCounterVec,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help).namespace(NAMESPACE), labels)
        .expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g =
        IntGaugeVec::new(Opts::new(name, help).namespace(NAMESPACE), labels).expect("valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("unique metric");
    g
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric in a new registry.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let reconcile_duration = HistogramVec::new(
            HistogramOpts::new(
                "reconcile_duration_seconds",
                "Time spent in one reconcile, by controller.",
            )
            .namespace(NAMESPACE)
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["controller"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(reconcile_duration.clone()))
            .expect("unique metric");
        let last_refresh_success = GaugeVec::new(
            Opts::new(
                "keys_last_refresh_success_timestamp_seconds",
                "Time of the last successful key refresh of each KeyManager.",
            )
            .namespace(NAMESPACE),
            &["key_manager"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(last_refresh_success.clone()))
            .expect("unique metric");
        let leader = IntGauge::with_opts(
            Opts::new(
                "leader",
                "1 while this replica holds the leader lease, else 0.",
            )
            .namespace(NAMESPACE),
        )
        .expect("valid metric");
        registry
            .register(Box::new(leader.clone()))
            .expect("unique metric");
        let metrics = Metrics {
            reconciles: counter(
                &registry,
                "reconciles_total",
                "Reconciles, by controller.",
                &["controller"],
            ),
            reconcile_errors: counter(
                &registry,
                "reconcile_errors_total",
                "Failed reconciles, by controller and stable error reason.",
                &["controller", "reason"],
            ),
            reconcile_duration,
            jwks_fetches: counter(
                &registry,
                "jwks_fetches_total",
                "JWKS (or PEM) key refreshes, by KeyManager and result (success or a failure reason).",
                &["key_manager", "result"],
            ),
            discovery_fetches: counter(
                &registry,
                "discovery_fetches_total",
                "OpenID discovery document fetches, by KeyManager and result.",
                &["key_manager", "result"],
            ),
            keys_loaded: gauge(
                &registry,
                "keys_loaded",
                "Public keys in use, by KeyManager.",
                &["key_manager"],
            ),
            last_refresh_success,
            consecutive_failures: gauge(
                &registry,
                "key_refresh_consecutive_failures",
                "Failed key refreshes since the last success, by KeyManager.",
                &["key_manager"],
            ),
            key_manager_ready: gauge(
                &registry,
                "key_manager_ready",
                "1 when the KeyManager is Ready, else 0.",
                &["key_manager"],
            ),
            configmap_writes: counter(
                &registry,
                "configmap_writes_total",
                "Writes of sidecar ConfigMaps, by operation (apply, delete) and result (success, error).",
                &["operation", "result"],
            ),
            compilations: counter(
                &registry,
                "config_compilations_total",
                "Sidecar config compilations, by outcome (changed, unchanged, deferred, not_served, error: the config cannot be encoded).",
                &["outcome"],
            ),
            config_bytes: gauge(
                &registry,
                "config_compressed_bytes",
                "Compressed size of each API's sidecar config.",
                &["namespace", "api"],
            ),
            config_subscriptions: gauge(
                &registry,
                "config_subscriptions",
                "Subscriptions in each API's sidecar config.",
                &["namespace", "api"],
            ),
            bindings: gauge(
                &registry,
                "bindings",
                "OAuthAppBindings by state (Bound or the reason they are not Ready).",
                &["state"],
            ),
            binding_states: Mutex::default(),
            leader,
            watch_events: counter(
                &registry,
                "watch_events_total",
                "Watch events received, by resource.",
                &["resource"],
            ),
            registry,
        };
        metrics.prime();
        metrics
    }

    /// Creates the series whose label values are known at start-up, at 0, so that
    /// `increase()` and `rate()` see their first event.
    fn prime(&self) {
        for (controller, reasons) in reconcile_error_reasons() {
            for reason in reasons {
                self.reconcile_errors
                    .with_label_values(&[controller, reason]);
            }
        }
        for operation in ["apply", "delete"] {
            for result in ["success", "error"] {
                self.configmap_writes
                    .with_label_values(&[operation, result]);
            }
        }
        for outcome in COMPILATION_OUTCOMES {
            self.compilations.with_label_values(&[outcome]);
        }
    }

    /// Creates KeyManager `name`'s fetch series at 0: every key refresh result of its
    /// source (`pem` or JWKS) and, when it uses discovery, every discovery result.
    /// Idempotent; called on every reconcile, so the first one creates them.
    pub fn prime_key_manager(&self, name: &str, pem: bool, discovery: bool) {
        for result in SourceError::key_results(pem) {
            self.jwks_fetches.with_label_values(&[name, result]);
        }
        if discovery {
            for result in SourceError::discovery_results() {
                self.discovery_fetches.with_label_values(&[name, result]);
            }
        }
    }

    /// The registry, for other components of the binary to add their metrics to.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Counts a reconcile of `controller` and times it until the guard is dropped.
    pub fn reconcile(&self, controller: &'static str) -> ReconcileGuard<'_> {
        self.reconciles.with_label_values(&[controller]).inc();
        ReconcileGuard {
            timer: Some(
                self.reconcile_duration
                    .with_label_values(&[controller])
                    .start_timer(),
            ),
            _metrics: std::marker::PhantomData,
        }
    }

    /// Counts a failed reconcile.
    pub fn reconcile_failed(&self, controller: &'static str, reason: &str) {
        self.reconcile_errors
            .with_label_values(&[controller, reason])
            .inc();
    }

    /// Failed reconciles of `controller` with `reason` so far.
    #[cfg(test)]
    pub fn reconcile_errors_of(&self, controller: &str, reason: &str) -> u64 {
        self.reconcile_errors
            .with_label_values(&[controller, reason])
            .get()
    }

    /// Records binding `key`'s state (`None` when it is gone).
    pub fn set_binding_state(&self, key: &ObjectKey, state: Option<&str>) {
        let mut states = self
            .binding_states
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let old = match state {
            Some(state) => states.insert(key.clone(), state.to_string()),
            None => states.remove(key),
        };
        if old.as_deref() == state {
            return;
        }
        if let Some(old) = old {
            self.bindings.with_label_values(&[old.as_str()]).dec();
        }
        if let Some(state) = state {
            self.bindings.with_label_values(&[state]).inc();
        }
    }

    /// Drops the series of a deleted KeyManager.
    pub fn forget_key_manager(&self, name: &str) {
        for vec in [
            &self.keys_loaded,
            &self.consecutive_failures,
            &self.key_manager_ready,
        ] {
            let _ = vec.remove_label_values(&[name]);
        }
        let _ = self.last_refresh_success.remove_label_values(&[name]);
        let results: BTreeSet<&str> = SourceError::key_results(true)
            .into_iter()
            .chain(SourceError::key_results(false))
            .collect();
        for result in results {
            let _ = self.jwks_fetches.remove_label_values(&[name, result]);
        }
        for result in SourceError::discovery_results() {
            let _ = self.discovery_fetches.remove_label_values(&[name, result]);
        }
    }

    /// Drops the series of an API that is no longer served.
    pub fn forget_api(&self, namespace: &str, api: &str) {
        let _ = self.config_bytes.remove_label_values(&[namespace, api]);
        let _ = self
            .config_subscriptions
            .remove_label_values(&[namespace, api]);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding cannot fail");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}

/// Times a reconcile; records the duration when dropped.
pub struct ReconcileGuard<'a> {
    timer: Option<prometheus::HistogramTimer>,
    _metrics: std::marker::PhantomData<&'a Metrics>,
}

impl Drop for ReconcileGuard<'_> {
    fn drop(&mut self) {
        if let Some(timer) = self.timer.take() {
            timer.observe_duration();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_states_are_counted_once_per_binding() {
        let metrics = Metrics::new();
        let a = ObjectKey::new("ns", "a");
        metrics.set_binding_state(&a, Some("Bound"));
        metrics.set_binding_state(&a, Some("Bound"));
        metrics.set_binding_state(&ObjectKey::new("ns", "b"), Some("DuplicateConsumerKey"));
        assert_eq!(metrics.bindings.with_label_values(&["Bound"]).get(), 1);
        metrics.set_binding_state(&a, Some("KeyManagerNotReady"));
        assert_eq!(metrics.bindings.with_label_values(&["Bound"]).get(), 0);
        metrics.set_binding_state(&a, None);
        assert_eq!(
            metrics
                .bindings
                .with_label_values(&["KeyManagerNotReady"])
                .get(),
            0
        );
    }

    #[test]
    fn bounded_series_exist_from_start_up_at_zero() {
        let metrics = Metrics::new();
        let text = metrics.render();
        for series in [
            "outband_operator_reconcile_errors_total{controller=\"keymanager\",reason=\"Forbidden\"} 0",
            "outband_operator_reconcile_errors_total{controller=\"oauthappbinding\",reason=\"Conflict\"} 0",
            "outband_operator_reconcile_errors_total{controller=\"config\",reason=\"ConfigTooLarge\"} 0",
            "outband_operator_configmap_writes_total{operation=\"apply\",result=\"error\"} 0",
            "outband_operator_configmap_writes_total{operation=\"delete\",result=\"success\"} 0",
            "outband_operator_config_compilations_total{outcome=\"error\"} 0",
        ] {
            assert!(text.contains(series), "{series} missing:\n{text}");
        }
    }

    #[test]
    fn key_manager_fetch_series_are_created_when_first_seen_and_dropped_when_gone() {
        let metrics = Metrics::new();
        metrics.prime_key_manager("okta", false, true);
        metrics.prime_key_manager("pem", true, false);
        let text = metrics.render();
        for series in [
            "outband_operator_jwks_fetches_total{key_manager=\"okta\",result=\"success\"} 0",
            "outband_operator_jwks_fetches_total{key_manager=\"okta\",result=\"Timeout\"} 0",
            "outband_operator_jwks_fetches_total{key_manager=\"okta\",result=\"NoUsableKeys\"} 0",
            "outband_operator_discovery_fetches_total{key_manager=\"okta\",result=\"DnsFailed\"} 0",
            "outband_operator_jwks_fetches_total{key_manager=\"pem\",result=\"InvalidPem\"} 0",
        ] {
            assert!(text.contains(series), "{series} missing:\n{text}");
        }
        assert!(!text.contains("key_manager=\"pem\",result=\"Timeout\""));
        assert!(!text.contains("discovery_fetches_total{key_manager=\"pem\""));
        metrics.forget_key_manager("okta");
        let text = metrics.render();
        assert!(!text.contains("key_manager=\"okta\""), "{text}");
        assert!(text.contains("key_manager=\"pem\""));
    }

    #[test]
    fn renders_the_text_format() {
        let metrics = Metrics::new();
        drop(metrics.reconcile("keymanager"));
        let text = metrics.render();
        assert!(text.contains("outband_operator_reconciles_total{controller=\"keymanager\"} 1"));
        assert!(text.contains("# TYPE outband_operator_reconcile_duration_seconds histogram"));
    }
}
