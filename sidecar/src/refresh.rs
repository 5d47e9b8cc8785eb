//! The sidecar's own JWKS refresh for a `kid` that neither the inlined keys nor earlier
//! fetches know (so a key rotation at the IdP does not wait for the operator).
//!
//! Only the KeyManager's configured `jwksRefresh.url` is ever fetched, never a URL from a
//! token. Per KeyManager, fetches are single-flight (concurrent requests wait for the one in
//! progress and use its result), rate-limited (at most one attempt per `min_interval`), and
//! unknown `kid`s are remembered for `negative_ttl` so a flood of invented `kid`s costs
//! nothing.

pub mod guard;
pub mod http;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use outband_crds::sidecar_config::JwksRefresh;

use crate::keys::{KeySet, Lookup, jwks};
use crate::metrics::Metrics;

/// Most remembered unknown `kid`s per KeyManager.
pub const MAX_NEGATIVE_ENTRIES: usize = 4096;

/// Every `result` of `outband_sidecar_jwks_fetches_total`: `success`, the refusals before a
/// fetch (`rate_limited`), what a fetched document can be (`invalid_jwks`, `no_usable_keys`:
/// every key in it refused), and the transport failures of [`http::FetchError`].
pub const RESULTS: [&str; 10] = [
    "success",
    "rate_limited",
    "invalid_jwks",
    "no_usable_keys",
    "refused_url",
    "bad_ca_bundle",
    "timeout",
    "request_failed",
    "bad_status",
    "too_large",
];

/// Where JWKS documents come from (HTTP in production; a fake in tests).
pub trait JwksSource: Send + Sync {
    /// Fetches the document at `refresh.url`.
    fn fetch<'a>(
        &'a self,
        refresh: &'a JwksRefresh,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, http::FetchError>> + Send + 'a>>;
}

/// Fetches over HTTP with [`http::fetch`].
pub struct HttpSource;

impl JwksSource for HttpSource {
    fn fetch<'a>(
        &'a self,
        refresh: &'a JwksRefresh,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, http::FetchError>> + Send + 'a>> {
        Box::pin(http::fetch(refresh))
    }
}

/// What a refresh attempt produced.
#[derive(Debug)]
pub enum Refreshed {
    /// This call fetched a new key set (already installed through the callback).
    Fetched(Arc<KeySet>),
    /// Another request fetched while this one waited: look the key up again.
    ByOther,
    /// Nothing new: rate-limited, remembered as unknown, or the fetch failed.
    Nothing,
}

#[derive(Default)]
struct KeyManagerState {
    attempt: tokio::sync::Mutex<Option<Instant>>,
    generation: AtomicU64,
    unknown: Mutex<HashMap<String, Instant>>,
}

impl KeyManagerState {
    fn is_known_unknown(&self, kid: &str) -> bool {
        let unknown = self.unknown.lock().unwrap();
        unknown
            .get(kid)
            .is_some_and(|until| *until > Instant::now())
    }

    fn remember_unknown(&self, kid: &str, ttl: Duration) {
        let mut unknown = self.unknown.lock().unwrap();
        let now = Instant::now();
        if unknown.len() >= MAX_NEGATIVE_ENTRIES {
            unknown.retain(|_, until| *until > now);
            if unknown.len() >= MAX_NEGATIVE_ENTRIES {
                unknown.clear();
            }
        }
        unknown.insert(kid.to_string(), now + ttl);
    }
}

/// Refreshes JWKS per KeyManager.
pub struct JwksRefresher {
    states: Mutex<HashMap<String, Arc<KeyManagerState>>>,
    source: Arc<dyn JwksSource>,
    min_interval: Duration,
    negative_ttl: Duration,
    metrics: Metrics,
}

impl JwksRefresher {
    /// A refresher fetching from `source`.
    pub fn new(
        source: Arc<dyn JwksSource>,
        min_interval: Duration,
        negative_ttl: Duration,
        metrics: Metrics,
    ) -> JwksRefresher {
        JwksRefresher {
            states: Mutex::new(HashMap::new()),
            source,
            min_interval,
            negative_ttl,
            metrics,
        }
    }

    fn state(&self, key_manager: &str) -> Arc<KeyManagerState> {
        self.states
            .lock()
            .unwrap()
            .entry(key_manager.to_string())
            .or_default()
            .clone()
    }

    /// Tries to learn the key `kid` of `key_manager`. A newly fetched key set is passed to
    /// `install` before any waiting request is released.
    pub async fn refresh(
        &self,
        key_manager: &str,
        refresh: &JwksRefresh,
        kid: Option<&str>,
        install: impl FnOnce(Arc<KeySet>),
    ) -> Refreshed {
        let state = self.state(key_manager);
        let kid_key = kid.unwrap_or("");
        if state.is_known_unknown(kid_key) {
            return Refreshed::Nothing;
        }
        let seen = state.generation.load(Ordering::Acquire);
        let mut last_attempt = state.attempt.lock().await;
        if state.generation.load(Ordering::Acquire) != seen {
            return Refreshed::ByOther;
        }
        if last_attempt.is_some_and(|at| at.elapsed() < self.min_interval) {
            self.metrics
                .jwks_fetches
                .with_label_values(&[key_manager, "rate_limited"])
                .inc();
            state.remember_unknown(kid_key, self.negative_ttl.min(self.min_interval));
            return Refreshed::Nothing;
        }
        *last_attempt = Some(Instant::now());
        let result = self.source.fetch(refresh).await;
        let document = match result {
            Ok(document) => document,
            Err(err) => {
                tracing::warn!(key_manager, url = %refresh.url, error = %err, "JWKS refresh failed");
                self.metrics
                    .jwks_fetches
                    .with_label_values(&[key_manager, err.reason()])
                    .inc();
                state.remember_unknown(kid_key, self.negative_ttl);
                return Refreshed::Nothing;
            }
        };
        let parsed = match jwks::parse(&document) {
            Ok(parsed) => parsed,
            Err(err) => {
                tracing::warn!(key_manager, url = %refresh.url, error = %err, "JWKS refresh returned an unusable document");
                self.metrics
                    .jwks_fetches
                    .with_label_values(&[key_manager, "invalid_jwks"])
                    .inc();
                state.remember_unknown(kid_key, self.negative_ttl);
                return Refreshed::Nothing;
            }
        };
        let keys = Arc::new(KeySet::build(&parsed.keys));
        for (skipped_kid, err) in parsed.skipped.iter().chain(keys.rejected()) {
            tracing::info!(key_manager, kid = ?skipped_kid, reason = err.reason(), "JWKS key not used: {err}");
        }
        if keys.is_empty() {
            tracing::warn!(key_manager, url = %refresh.url, "JWKS refresh returned no usable key");
            self.metrics
                .jwks_fetches
                .with_label_values(&[key_manager, "no_usable_keys"])
                .inc();
            state.remember_unknown(kid_key, self.negative_ttl);
            return Refreshed::Nothing;
        }
        self.metrics
            .jwks_fetches
            .with_label_values(&[key_manager, "success"])
            .inc();
        tracing::info!(
            key_manager,
            keys = keys.len(),
            "JWKS refreshed for an unknown key id"
        );
        if !matches!(keys.lookup(kid), Lookup::Found(_)) {
            state.remember_unknown(kid_key, self.negative_ttl);
        }
        install(keys.clone());
        state.generation.fetch_add(1, Ordering::AcqRel);
        drop(last_attempt);
        Refreshed::Fetched(keys)
    }
}

#[cfg(test)]
mod tests;
