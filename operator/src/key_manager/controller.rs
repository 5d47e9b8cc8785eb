//! The KeyManager reconcile: refresh discovery and keys, publish the result into the
//! index (which recompiles the APIs that use the KeyManager), write the status, emit Events
//! on transitions, and come back when the keys are due again (after a failed refresh, after
//! the operator's one backoff).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use outband_crds::{KeyManager, KeyManagerSpec, KeyManagerStatus};

use crate::conditions::{self, Observed, Status};
use crate::config::configmaps::decode_published;
use crate::context::{Context, apply_status, object_reference};
use crate::discovery::{self, DiscoveryDocument};
use crate::error::Error;
use crate::index::KeyManagerEntry;
use crate::runtime::queue::{Action, Reconciler, RetryPolicy};

use super::report::{self, INTROSPECTION_UNSUPPORTED, KEYS_LOADED, READY, Report};
use super::source::Sources;
use super::state::{Attempt, Freshness, KeyState, Timing, require_usable};

/// The controller's name in metrics.
pub const CONTROLLER: &str = "keymanager";

/// Operator-wide timing of refreshes.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The backoff after failed refreshes (the operator's one retry policy).
    pub retry: RetryPolicy,
    /// Cap on every refresh interval (`--max-refresh-interval`).
    pub refresh_cap: Option<Duration>,
}

/// The KeyManager controller.
pub struct KeyManagers {
    ctx: Arc<Context>,
    sources: Sources,
    settings: Settings,
    states: Mutex<HashMap<String, KeyState>>,
}

impl KeyManagers {
    /// A controller.
    pub fn new(ctx: Arc<Context>, sources: Sources, settings: Settings) -> KeyManagers {
        KeyManagers {
            ctx,
            sources,
            settings,
            states: Mutex::default(),
        }
    }

    fn timing(&self, spec: &KeyManagerSpec) -> Timing {
        let seconds = |s: u32| Duration::from_secs(u64::from(s));
        Timing {
            retry: self.settings.retry,
            min_refresh: seconds(spec.connection.min_refresh_seconds),
            max_refresh: seconds(spec.connection.max_refresh_seconds),
            refresh_cap: self.settings.refresh_cap,
            max_staleness: seconds(spec.connection.max_staleness_seconds),
        }
    }

    fn states(&self) -> std::sync::MutexGuard<'_, HashMap<String, KeyState>> {
        self.states.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refreshes one KeyManager.
    async fn refresh(
        &self,
        km: &KeyManagerEntry,
        name: &str,
        now: i64,
    ) -> (Report, Option<Duration>) {
        let spec = &km.spec;
        if !spec.enabled {
            self.states().remove(name);
            return (report::disabled(spec), None);
        }
        self.ctx.metrics.prime_key_manager(
            name,
            discovery::uses_pem(spec),
            spec.well_known_url.is_some(),
        );
        let timing = self.timing(spec);
        let mut state = self.states().get(name).cloned().unwrap_or_default();
        let new_generation = state.observe_generation(km.generation);

        let discovery = match spec.well_known_url.as_deref() {
            Some(url)
                if new_generation
                    || state.keys_error.is_some()
                    || state.discovery_due(now, timing.max_refresh) =>
            {
                let result = self.sources.discover(spec, url).await;
                let label = result
                    .as_ref()
                    .map_or_else(|e| e.metric_result(), |_| "success");
                self.ctx
                    .metrics
                    .discovery_fetches
                    .with_label_values(&[name, label])
                    .inc();
                Some(result)
            }
            _ => None,
        };
        let document = match &discovery {
            Some(Ok(document)) => Some(document.clone()),
            _ => state
                .discovery
                .as_ref()
                .map(|c| c.document.clone())
                .or_else(|| endpoints_in_status(km)),
        };
        let resolution = discovery::resolve(spec, document.as_ref());
        let keys = require_usable(match (&discovery, &resolution.endpoints.jwks) {
            // Without a JWKS URL, the discovery failure is the reason there are no keys.
            (Some(Err(error)), None) if !discovery::uses_pem(spec) => Err(error.clone()),
            _ => self.sources.keys(spec, &resolution).await,
        });
        let label = keys
            .as_ref()
            .map_or_else(|e| e.metric_result(), |_| "success");
        self.ctx
            .metrics
            .jwks_fetches
            .with_label_values(&[name, label])
            .inc();
        if let Err(error) = &keys {
            tracing::warn!(key_manager = name, reason = error.reason(), %error, "key refresh failed");
        }
        let mut delay = state.record(Attempt { discovery, keys }, now, &timing);

        if state.keys.is_none()
            && let Some(last) = km
                .status
                .as_deref()
                .and_then(|s| s.last_refresh_time.as_ref())
            && let Some((set, url)) = self.recover_published(name, discovery::uses_pem(spec))
        {
            tracing::info!(
                key_manager = name,
                keys = set.keys.len(),
                "keeping the keys of the published config until a refresh succeeds"
            );
            state.recover(set, last.0.as_second(), url);
        }
        if let Some((_, Freshness::Stale { until })) = state.usable(now, &timing) {
            let left = Duration::from_secs(u64::try_from(until - now).unwrap_or(0).max(1));
            delay = delay.min(left);
        }
        let report = report::report(spec, &state, &resolution, now, &timing);
        self.states().insert(name.to_string(), state);
        (report, Some(delay))
    }

    /// The keys of KeyManager `name` in a config this operator published before (after a
    /// restart, while the provider cannot be reached). PEM keys (`pem`), published without
    /// `kid`, get their thumbprint back, as after a conversion.
    fn recover_published(
        &self,
        name: &str,
        pem: bool,
    ) -> Option<(outband_idp::jwks::KeySet, Option<String>)> {
        let index = self.ctx.index();
        for api in index.all_apis() {
            let Some(config) = decode_published(&index.configmaps_of(&api)) else {
                continue;
            };
            let Some(km) = config.key_managers.into_iter().find(|k| k.name == name) else {
                continue;
            };
            let mut accepted = Vec::new();
            for mut jwk in km.keys {
                if outband_idp::jwk::check(&jwk).is_ok() {
                    if pem {
                        jwk.set_kid(Some(outband_idp::jwk::thumbprint(&jwk)));
                    }
                    accepted.push(jwk);
                }
            }
            let set = outband_idp::jwks::finish(accepted, Vec::new());
            return Some((set, km.jwks_refresh.map(|r| r.url)));
        }
        None
    }
}

/// The endpoints a previous run published in the status, as a stand-in for the discovery
/// document while the provider cannot be reached after a restart (only if they describe
/// the current spec generation).
fn endpoints_in_status(km: &KeyManagerEntry) -> Option<DiscoveryDocument> {
    let status = km.status.as_deref()?;
    if status.observed_generation != km.generation {
        return None;
    }
    let endpoints = status.endpoints.as_ref()?;
    Some(DiscoveryDocument {
        issuer: endpoints.issuer.clone()?,
        token_endpoint: endpoints.token.clone(),
        jwks_uri: endpoints.jwks.clone(),
        revocation_endpoint: endpoints.revoke.clone(),
        introspection_endpoint: endpoints.introspection.clone(),
    })
}

impl Reconciler for KeyManagers {
    type Key = String;
    const NAME: &'static str = CONTROLLER;

    fn context(&self) -> &Context {
        &self.ctx
    }

    async fn reconcile(self: Arc<Self>, name: String) -> Result<Action, Error> {
        reconcile(&self, &name).await
    }

    fn regarding(&self, name: &String) -> Option<ObjectReference> {
        let index = self.ctx.index();
        let entry = index.key_manager(name)?;
        Some(object_reference::<KeyManager>(
            name,
            None,
            entry.uid.as_deref(),
        ))
    }
}

/// Reconciles KeyManager `name`.
pub async fn reconcile(this: &KeyManagers, name: &str) -> Result<Action, Error> {
    let ctx = &this.ctx;
    let Some(km) = ctx.index().key_manager(name).cloned() else {
        // Deleted: forget what this process remembered of it.
        this.states().remove(name);
        return Ok(Action::await_change());
    };
    let now =
        Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_else(|_| Timestamp::now());
    let (report, requeue) = this.refresh(&km, name, now.as_second()).await;

    let token = report.token_endpoint();
    let observed = report.observed.clone();
    ctx.update(|index| index.set_observed(name, token, observed));

    let previous = km.status.as_deref().cloned().unwrap_or_default();
    let status = KeyManagerStatus {
        observed_generation: km.generation,
        conditions: conditions::merge(
            &Observed::all(&previous.conditions),
            report.conditions.clone(),
            km.generation,
            now,
        ),
        endpoints: report.endpoints.clone(),
        keys: report.keys.clone(),
        last_refresh_time: report
            .last_refresh
            .and_then(|s| Timestamp::from_second(s).ok())
            .map(Time),
        consecutive_failures: report.consecutive_failures,
    };
    if km.status.as_deref() != Some(&status) {
        let api = Api::<KeyManager>::all(ctx.client.clone());
        let written = match apply_status(&api, name, &status).await {
            Ok(written) => written,
            Err(error) if error.is_not_found() => return Ok(Action::await_change()),
            Err(error) => return Err(error),
        };
        ctx.index()
            .record_key_manager_status(name, written.status.unwrap_or_else(|| status.clone()));
    }
    record_metrics(ctx, name, &report);
    let reference = object_reference::<KeyManager>(name, None, km.uid.as_deref());
    emit_events(ctx, &reference, &previous, &status, &report).await;
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

fn record_metrics(ctx: &Context, name: &str, report: &Report) {
    let metrics = &ctx.metrics;
    metrics
        .keys_loaded
        .with_label_values(&[name])
        .set(report.keys.len() as i64);
    metrics
        .consecutive_failures
        .with_label_values(&[name])
        .set(i64::from(report.consecutive_failures));
    let ready = report
        .conditions
        .iter()
        .any(|c| c.type_ == READY && c.status == Status::True);
    metrics
        .key_manager_ready
        .with_label_values(&[name])
        .set(i64::from(ready));
    if let Some(last) = report.last_refresh
        && report.consecutive_failures == 0
    {
        metrics
            .last_refresh_success
            .with_label_values(&[name])
            .set(last as f64);
    }
}

async fn emit_events(
    ctx: &Context,
    reference: &ObjectReference,
    previous: &KeyManagerStatus,
    status: &KeyManagerStatus,
    report: &Report,
) {
    let before = Observed::all(&previous.conditions);
    for condition in conditions::transitions(&before, &status.conditions) {
        // Every condition is good news when True, except that introspection is unused.
        let healthy =
            condition.type_ != INTROSPECTION_UNSUPPORTED && Status::of(condition) == Status::True;
        ctx.event(
            reference,
            !healthy,
            &condition.reason,
            format!("{}: {}", condition.type_, condition.message),
        )
        .await;
    }
    let kids = |keys: &[outband_crds::LoadedKey]| -> BTreeSet<String> {
        keys.iter()
            .map(|k| k.kid.clone().unwrap_or_else(|| "(no kid)".into()))
            .collect()
    };
    let (before, after) = (kids(&previous.keys), kids(&status.keys));
    if !before.is_empty() && !after.is_empty() && before != after {
        let added: Vec<_> = after.difference(&before).cloned().collect();
        let removed: Vec<_> = before.difference(&after).cloned().collect();
        ctx.event(
            reference,
            false,
            "KeysRotated",
            format!("keys added: {added:?}; removed: {removed:?}"),
        )
        .await;
    }
    let keys_message = |s: &KeyManagerStatus| {
        conditions::find(&s.conditions, KEYS_LOADED).map(|c| c.message.clone())
    };
    if !report.rejected.is_empty() && keys_message(previous) != keys_message(status) {
        let refused: Vec<String> = report.rejected.iter().map(ToString::to_string).collect();
        ctx.event(reference, true, "KeysRefused", refused.join("; "))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::fixtures::{self, ApiServerVerifier};
    use crate::index::Observed as Conclusion;
    use crate::index::tests::key_manager;
    use outband_idp::fetch::{FetchSettings, Fetcher};

    fn pem() -> String {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        rcgen::CertificateParams::new(vec!["idp.example".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem()
    }

    /// A KeyManager whose keys are inline PEM: its refresh needs no network.
    fn pem_key_manager() -> KeyManager {
        let mut km = key_manager(
            "pem",
            json!({"issuer": "https://pem.example", "endpoints": {"token": "https://pem.example/token"},
                   "certificates": {"type": "PEM", "pem": pem()}}),
        );
        km.metadata.uid = Some("uid-pem".into());
        km
    }

    fn controller() -> (Arc<KeyManagers>, ApiServerVerifier) {
        let (ctx, server) = fixtures::context();
        let sources = Sources::new(
            Fetcher::new(FetchSettings {
                max_response_bytes: 1024 * 1024,
                connect_timeout: Duration::from_secs(1),
                user_agent: "outband-operator-test".into(),
            }),
            ctx.client.clone(),
        );
        let settings = Settings {
            retry: RetryPolicy {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(60),
            },
            refresh_cap: None,
        };
        (Arc::new(KeyManagers::new(ctx, sources, settings)), server)
    }

    #[tokio::test]
    async fn a_ready_key_manager_is_published_its_status_written_and_its_transitions_told() {
        let (controller, server) = controller();
        let km = pem_key_manager();
        controller.ctx.update(|index| index.apply_key_manager(&km));
        let (action, (server, status, events)) = fixtures::run(
            {
                let km = km.clone();
                async move {
                    let mut server = server;
                    let status = server.apply_status(&km).await;
                    let mut events = Vec::new();
                    for _ in 0..3 {
                        events.push(server.event().await);
                    }
                    (server, status, events)
                }
            },
            reconcile(&controller, "pem"),
        )
        .await;
        // Keys from PEM are due again after spec.connection.maxRefreshSeconds.
        assert_eq!(action.unwrap(), Action::requeue(Duration::from_secs(3600)));
        let ready = &status["conditions"][0];
        assert_eq!(
            (&ready["type"], &ready["status"]),
            (&json!("Ready"), &json!("True"))
        );
        assert_eq!(status["keys"].as_array().unwrap().len(), 1);
        assert_eq!(status["observedGeneration"], 1);
        let reasons: Vec<_> = events.iter().map(|e| e["reason"].clone()).collect();
        assert_eq!(
            reasons,
            [
                json!("Ready"),
                json!("NotConfigured"),
                json!("PemConverted")
            ]
        );
        assert!(events.iter().all(|e| e["type"] == "Normal"));
        assert!(events.iter().all(|e| e["regarding"]["uid"] == "uid-pem"));
        {
            let index = controller.ctx.index();
            let entry = index.key_manager("pem").unwrap();
            assert!(matches!(entry.observed, Conclusion::Ready(_)));
            assert_eq!(
                entry.token_endpoint.as_deref(),
                Some("https://pem.example/token")
            );
        }

        // Nothing changed: the status is not written again and no Event is told.
        let (action, server) =
            fixtures::run(async move { server }, reconcile(&controller, "pem")).await;
        assert!(action.unwrap().requeue_after().is_some());
        drop(controller);
        server.done().await;
    }

    #[tokio::test]
    async fn a_failed_status_write_is_a_failure_named_by_its_cause() {
        let (controller, server) = controller();
        let km = pem_key_manager();
        controller.ctx.update(|index| index.apply_key_manager(&km));
        let (result, server) = fixtures::run(
            async move {
                let mut server = server;
                server.refuse_status(&km, 503).await;
                server
            },
            reconcile(&controller, "pem"),
        )
        .await;
        assert_eq!(result.unwrap_err().reason(), "ApiServerError");
        // The keys are published all the same: the sidecars do not wait for the status.
        assert!(matches!(
            controller.ctx.index().key_manager("pem").unwrap().observed,
            Conclusion::Ready(_)
        ));
        drop(controller);
        server.done().await;
    }

    #[tokio::test]
    async fn a_deleted_key_manager_is_forgotten_without_a_request() {
        let (controller, server) = controller();
        let km = pem_key_manager();
        controller.ctx.update(|index| index.apply_key_manager(&km));
        controller.states().insert("pem".into(), Default::default());
        let changes = controller.ctx.index().delete_key_manager("pem");
        assert!(changes.key_managers.contains("pem"));
        let (action, server) =
            fixtures::run(async move { server }, reconcile(&controller, "pem")).await;
        assert_eq!(action.unwrap(), Action::await_change());
        assert!(controller.states().is_empty());
        drop(controller);
        server.done().await;
    }
}
