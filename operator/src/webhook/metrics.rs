//! Webhook metrics: `outband_webhook_injections_total{result}`.

use prometheus::{IntCounterVec, Opts, Registry};

/// What happened to one admission request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InjectionResult {
    /// The sidecar was injected.
    Injected,
    /// The pod already had the sidecar: unchanged.
    AlreadyInjected,
    /// The pod is not labelled `outband.dev/inject: enabled`: unchanged.
    NotSelected,
    /// The pod was refused (bad annotation, port conflict…).
    Refused,
    /// The request could not be read.
    Invalid,
}

impl InjectionResult {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            InjectionResult::Injected => "injected",
            InjectionResult::AlreadyInjected => "already_injected",
            InjectionResult::NotSelected => "not_selected",
            InjectionResult::Refused => "refused",
            InjectionResult::Invalid => "invalid",
        }
    }
}

/// The webhook's counters.
#[derive(Clone)]
pub struct WebhookMetrics {
    injections: IntCounterVec,
}

impl WebhookMetrics {
    /// Creates the counters and registers them in `registry`.
    pub fn new(registry: &Registry) -> prometheus::Result<WebhookMetrics> {
        let injections = IntCounterVec::new(
            Opts::new(
                "outband_webhook_injections_total",
                "Pod admission requests handled by the sidecar injector, by result.",
            ),
            &["result"],
        )?;
        registry.register(Box::new(injections.clone()))?;
        let metrics = WebhookMetrics { injections };
        for result in [
            InjectionResult::Injected,
            InjectionResult::AlreadyInjected,
            InjectionResult::NotSelected,
            InjectionResult::Refused,
            InjectionResult::Invalid,
        ] {
            metrics.injections.with_label_values(&[result.as_str()]);
        }
        Ok(metrics)
    }

    /// Counts one request.
    pub fn record(&self, result: InjectionResult) {
        self.injections.with_label_values(&[result.as_str()]).inc();
    }
}
