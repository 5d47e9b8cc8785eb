//! The sidecar's own JWKS refresh for a `kid` that neither the inlined keys nor earlier
//! fetches know (so a key rotation at the IdP does not wait for the operator).
//!
//! Only the KeyManager's configured `jwksRefresh.url` is ever fetched, never a URL from a
//! token. Per KeyManager, fetches are single-flight (concurrent requests wait for the one in
//! progress and use its result), rate-limited (at most one attempt per `min_interval`), and
//! unknown `kid`s are remembered for `negative_ttl` so a flood of invented `kid`s costs
//! nothing. Fetches go through `outband_idp`'s guarded client (the SSRF guard and TLS rules
//! the operator's fetches obey) and documents through its JWKS parser (the key checks the
//! operator applies before it publishes).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use outband_crds::sidecar_config::JwksRefresh;
use outband_idp::fetch::{FetchError, FetchSettings, Fetcher, Target};

use crate::keys::{KeySet, Lookup};
use crate::metrics::Metrics;

/// Most remembered unknown `kid`s per KeyManager.
pub const MAX_NEGATIVE_ENTRIES: usize = 4096;

/// Largest JWKS document accepted.
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Every `result` of `outband_sidecar_jwks_fetches_total`: `success`, the refusals before a
/// fetch (`rate_limited`), what a fetched document can be (`invalid_jwks`, `no_usable_keys`:
/// every key in it refused), and the transport failures ([`fetch_result`]).
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

/// The `result` label of a failed fetch (the metric's values predate the shared client's
/// reasons, and dashboards use them).
pub fn fetch_result(error: &FetchError) -> &'static str {
    match error {
        FetchError::InvalidUrl { .. }
        | FetchError::SchemeRefused { .. }
        | FetchError::AddressRefused { .. } => "refused_url",
        FetchError::InvalidCaBundle(_) => "bad_ca_bundle",
        FetchError::Timeout { .. } => "timeout",
        FetchError::Status { .. } => "bad_status",
        FetchError::TooLarge { .. } => "too_large",
        FetchError::Dns { .. }
        | FetchError::Connect { .. }
        | FetchError::Redirect { .. }
        | FetchError::Body { .. } => "request_failed",
    }
}

/// Where JWKS documents come from (HTTP in production; a fake in tests).
pub trait JwksSource: Send + Sync {
    /// Fetches the document at `refresh.url`.
    fn fetch<'a>(
        &'a self,
        refresh: &'a JwksRefresh,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, FetchError>> + Send + 'a>>;
}

/// Fetches over HTTP with the shared guarded client.
pub struct HttpSource {
    fetcher: Fetcher,
}

impl HttpSource {
    /// A source with the sidecar's limits: documents of at most [`MAX_JWKS_BYTES`].
    pub fn new() -> HttpSource {
        HttpSource {
            fetcher: Fetcher::new(FetchSettings {
                max_response_bytes: MAX_JWKS_BYTES,
                connect_timeout: Duration::from_secs(5),
                user_agent: concat!("outband-sidecar/", env!("CARGO_PKG_VERSION")).into(),
            }),
        }
    }
}

impl Default for HttpSource {
    fn default() -> Self {
        HttpSource::new()
    }
}

impl JwksSource for HttpSource {
    fn fetch<'a>(
        &'a self,
        refresh: &'a JwksRefresh,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, FetchError>> + Send + 'a>> {
        let target = Target {
            url: refresh.url.clone(),
            ca_bundle: refresh.ca_bundle.clone(),
            allow_loopback: refresh.allow_loopback,
            timeout: Duration::from_secs(u64::from(refresh.timeout_seconds.clamp(1, 60))),
        };
        Box::pin(async move { self.fetcher.get(&target).await.map(|fetched| fetched.body) })
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
                    .with_label_values(&[key_manager, fetch_result(&err)])
                    .inc();
                state.remember_unknown(kid_key, self.negative_ttl);
                return Refreshed::Nothing;
            }
        };
        let parsed = match outband_idp::jwks::parse(&document) {
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
        let skipped = parsed.rejected.iter().map(|r| (&r.kid, &r.rejection));
        let refused = keys.rejected().iter().map(|(kid, err)| (kid, err));
        for (skipped_kid, err) in skipped.chain(refused) {
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
