//! The KeyManager reconcile loop: refresh discovery and keys, publish the result into the
//! index (which recompiles the APIs that use the KeyManager), write the status, emit Events
//! on transitions, and come back when the keys are due again.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use outband_crds::{KeyManager, KeyManagerSpec, KeyManagerStatus};
use serde_json::json;

use crate::conditions::{self, Status};
use crate::config::configmaps::decode_published;
use crate::context::{Context, FIELD_MANAGER};
use crate::discovery::{self, DiscoveryDocument};
use crate::error::Error;

use super::report::{self, KEYS_LOADED, READY, Report};
use super::source::Sources;
use super::state::{Attempt, Freshness, KeyState, Timing, require_usable};

/// The controller's name in metrics.
pub const CONTROLLER: &str = "keymanager";

/// Operator-wide timing of refreshes.
#[derive(Clone, Debug)]
pub struct Settings {
    /// First retry delay after a failed refresh.
    pub backoff_initial: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// Cap on every refresh interval (`--max-refresh-interval`).
    pub refresh_cap: Option<Duration>,
}

/// The KeyManager controller.
pub struct KeyManagerController {
    ctx: Arc<Context>,
    sources: Sources,
    settings: Settings,
    states: Mutex<HashMap<String, KeyState>>,
}

impl KeyManagerController {
    /// A controller.
    pub fn new(ctx: Arc<Context>, sources: Sources, settings: Settings) -> KeyManagerController {
        KeyManagerController {
            ctx,
            sources,
            settings,
            states: Mutex::default(),
        }
    }

    fn timing(&self, spec: &KeyManagerSpec) -> Timing {
        let seconds = |s: u32| Duration::from_secs(u64::from(s));
        Timing {
            backoff_initial: self.settings.backoff_initial,
            backoff_max: self.settings.backoff_max,
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
    async fn refresh(&self, km: &KeyManager, name: &str, now: i64) -> (Report, Option<Duration>) {
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
        let new_generation = state.observe_generation(km.metadata.generation);

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
                .as_ref()
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
fn endpoints_in_status(km: &KeyManager) -> Option<DiscoveryDocument> {
    let status = km.status.as_ref()?;
    if status.observed_generation != km.metadata.generation {
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

/// Reconciles one KeyManager.
pub async fn reconcile(
    km: Arc<KeyManager>,
    this: Arc<KeyManagerController>,
) -> Result<Action, Error> {
    let ctx = &this.ctx;
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let name = km
        .metadata
        .name
        .clone()
        .ok_or(Error::MissingField("metadata.name"))?;
    let now =
        Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_else(|_| Timestamp::now());
    let (report, requeue) = this.refresh(&km, &name, now.as_second()).await;

    let token = report.token_endpoint();
    let observed = report.observed.clone();
    ctx.update(|index| index.set_observed(&name, token, observed));
    {
        let index = ctx.index();
        this.states().retain(|k, _| index.key_manager(k).is_some());
    }

    let previous = km.status.clone().unwrap_or_default();
    let status = KeyManagerStatus {
        observed_generation: km.metadata.generation,
        conditions: conditions::merge(
            &previous.conditions,
            report.conditions.clone(),
            km.metadata.generation,
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
    if km.status.as_ref() != Some(&status) {
        let patch = json!({
            "apiVersion": "outband.dev/v1alpha1",
            "kind": "KeyManager",
            "status": status,
        });
        Api::<KeyManager>::all(ctx.client.clone())
            .patch_status(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await?;
    }
    record_metrics(ctx, &name, &report);
    emit_events(ctx, &km, &previous, &status, &report).await;
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

/// What to do after a failed reconcile (a Kubernetes API error).
pub fn error_policy(km: Arc<KeyManager>, error: &Error, this: Arc<KeyManagerController>) -> Action {
    this.ctx
        .metrics
        .reconcile_failed(CONTROLLER, error.reason());
    tracing::warn!(key_manager = km.name_any(), reason = error.reason(), %error, "reconcile failed");
    Action::requeue(Duration::from_secs(5))
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
    km: &KeyManager,
    previous: &KeyManagerStatus,
    status: &KeyManagerStatus,
    report: &Report,
) {
    let reference = km.object_ref(&());
    for condition in conditions::transitions(&previous.conditions, &status.conditions) {
        let healthy = match condition.type_.as_str() {
            "IntrospectionUnsupported" => false,
            _ => condition.status == "True",
        };
        ctx.event(
            &reference,
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
            &reference,
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
        ctx.event(&reference, true, "KeysRefused", refused.join("; "))
            .await;
    }
}
