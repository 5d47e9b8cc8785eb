//! The I/O shell around [`decision::decide`]: the config in effect (hot-swapped), the
//! verified-token cache, the JWKS fetch for an unknown `kid` and one retry of the decision,
//! metrics and logs. One call per request: [`Authenticator::authorize`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use http::HeaderMap;

use crate::cache::{TokenCache, short_hash, token_hash};
use crate::config::CompiledConfig;
use crate::decision::{self, Decision, FetchedKeys};
use crate::denial::Denial;
use crate::identity::Identity;
use crate::metrics::Metrics;
use crate::policy::Route;
use crate::refresh::{JwksRefresher, Refreshed};
use crate::settings::Settings;
use crate::token::bearer::bearer_token;

/// The state a decision is made against; replaced as a whole on every change.
#[derive(Debug)]
pub struct Snapshot {
    /// The config in effect.
    pub config: Arc<CompiledConfig>,
    /// Keys fetched by the sidecar itself.
    pub fetched: FetchedKeys,
    /// Changes whenever the config or any key set changes; cache entries of older epochs
    /// are ignored.
    pub epoch: u64,
}

/// Decides on requests.
pub struct Authenticator {
    snapshot: ArcSwapOption<Snapshot>,
    settings: Arc<Settings>,
    cache: TokenCache,
    refresher: JwksRefresher,
    metrics: Metrics,
    fetched_ttl: Duration,
    epochs: AtomicU64,
}

impl Authenticator {
    /// An authenticator with no config yet (every request gets `config_unavailable`).
    pub fn new(
        settings: Arc<Settings>,
        cache: TokenCache,
        refresher: JwksRefresher,
        metrics: Metrics,
        fetched_ttl: Duration,
    ) -> Authenticator {
        Authenticator {
            snapshot: ArcSwapOption::empty(),
            settings,
            cache,
            refresher,
            metrics,
            fetched_ttl,
            epochs: AtomicU64::new(0),
        }
    }

    /// The workload settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The snapshot in effect, if a config has been loaded.
    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.snapshot.load_full()
    }

    /// Whether a valid config is loaded.
    pub fn is_ready(&self) -> bool {
        self.snapshot.load().is_some()
    }

    /// The verified-token cache.
    pub fn cache(&self) -> &TokenCache {
        &self.cache
    }

    fn next_epoch(&self) -> u64 {
        self.epochs.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Puts a new config in effect. Fetched keys are kept for KeyManagers that still exist
    /// with the same JWKS URL.
    pub fn install_config(&self, config: CompiledConfig) {
        let config = Arc::new(config);
        self.snapshot.rcu(|current| {
            let fetched = current
                .as_ref()
                .map_or_else(FetchedKeys::default, |snapshot| {
                    snapshot.fetched.retain(|name| {
                        let url = |c: &CompiledConfig| {
                            c.key_managers
                                .iter()
                                .find(|km| km.name == name)
                                .and_then(|km| km.jwks_refresh.as_ref().map(|r| r.url.clone()))
                        };
                        let now = url(&config);
                        now.is_some() && now == url(&snapshot.config)
                    })
                });
            Some(Arc::new(Snapshot {
                config: config.clone(),
                fetched,
                epoch: self.next_epoch(),
            }))
        });
    }

    fn install_fetched(&self, key_manager: &str, keys: Arc<crate::keys::KeySet>) {
        let expires_at = decision::now().saturating_add(self.fetched_ttl.as_secs() as i64);
        self.snapshot.rcu(|current| {
            current.as_ref().map(|snapshot| {
                // The same keys again only extend their life: cached tokens stay valid.
                let unchanged = snapshot
                    .fetched
                    .latest(key_manager)
                    .is_some_and(|previous| previous.fingerprint() == keys.fingerprint());
                Arc::new(Snapshot {
                    config: snapshot.config.clone(),
                    fetched: snapshot.fetched.with(key_manager, keys.clone(), expires_at),
                    epoch: if unchanged {
                        snapshot.epoch
                    } else {
                        self.next_epoch()
                    },
                })
            })
        });
    }

    /// Decides on a request: `Ok` with the caller's identity, or why not. Records the
    /// decision in the metrics and, at debug level, in the log (with a hash prefix of the
    /// token, never the token).
    pub async fn authorize(
        &self,
        headers: &HeaderMap,
        route: Option<Route<'_>>,
    ) -> Result<Identity, Denial> {
        let started = Instant::now();
        let mut cache_hit = false;
        let result = self.decide_request(headers, route, &mut cache_hit).await;
        self.metrics
            .auth_time(cache_hit, started.elapsed().as_secs_f64());
        match &result {
            Ok(_) => self.metrics.allowed(),
            Err(denial) => {
                self.metrics.denied(denial);
                let token = bearer_token(headers)
                    .ok()
                    .map(|token| short_hash(&token_hash(token)));
                tracing::debug!(
                    reason = denial.reason(),
                    token_sha256 = token.as_deref().unwrap_or("-"),
                    "refused: {denial}"
                );
            }
        }
        result
    }

    async fn decide_request(
        &self,
        headers: &HeaderMap,
        route: Option<Route<'_>>,
        cache_hit: &mut bool,
    ) -> Result<Identity, Denial> {
        let Some(snapshot) = self.snapshot.load_full() else {
            return Err(Denial::ConfigUnavailable);
        };
        let token = bearer_token(headers)?;
        let hash = token_hash(token);
        let now = decision::now();
        let cached = self.cache.get(&hash, snapshot.epoch);
        *cache_hit = cached.is_some();
        self.metrics.cache_lookup(*cache_hit);
        let decide = |snapshot: &Snapshot| {
            decision::decide(
                &snapshot.config,
                &snapshot.fetched,
                &self.settings,
                token,
                route,
                now,
                cached.as_ref().map(|entry| &entry.verified),
            )
        };
        let (decided, snapshot) = match decide(&snapshot) {
            Decision::NeedKeys { key_manager, kid } => {
                let km = &snapshot.config.key_managers[key_manager];
                let Some(refresh) = &km.jwks_refresh else {
                    return Err(Denial::UnknownKid);
                };
                let outcome = self
                    .refresher
                    .refresh(&km.name, refresh, kid.as_deref(), |keys| {
                        self.install_fetched(&km.name, keys)
                    })
                    .await;
                if matches!(outcome, Refreshed::Nothing) {
                    return Err(Denial::UnknownKid);
                }
                let snapshot = self.snapshot.load_full().ok_or(Denial::ConfigUnavailable)?;
                (decide(&snapshot), snapshot)
            }
            decided => (decided, snapshot),
        };
        let allowed = decided.into_result()?;
        if !*cache_hit {
            self.cache
                .insert(hash, allowed.verified.clone(), snapshot.epoch, now);
        }
        Ok(allowed.identity)
    }
}
