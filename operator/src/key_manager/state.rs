//! Per-KeyManager memory between refreshes, and the timing rules: last-known-good keys
//! within the staleness budget, the operator's backoff after failures (bounded by the
//! KeyManager's refresh interval), Cache-Control-driven refresh after success. Pure: the
//! caller passes the clock.

use std::time::Duration;

use crate::discovery::DiscoveryDocument;
use crate::runtime::queue::RetryPolicy;
use outband_idp::jwks::KeySet;

use super::source::SourceError;

/// Where the current keys came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyOrigin {
    /// Fetched from the JWKS URL.
    Jwks,
    /// Converted from PEM.
    Pem,
    /// Recovered from the ConfigMaps this operator published before it restarted.
    Recovered,
}

/// Keys that passed the checks, and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoodKeys {
    /// The keys (and the ones refused with them).
    pub set: KeySet,
    /// When they were fetched (seconds since the epoch).
    pub fetched_at: i64,
    /// Where they came from.
    pub origin: KeyOrigin,
    /// The JWKS URL they came from.
    pub jwks_url: Option<String>,
}

/// A discovery document, and when it was fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedDiscovery {
    /// The document.
    pub document: DiscoveryDocument,
    /// When it was fetched (seconds since the epoch).
    pub fetched_at: i64,
}

/// The result of one refresh.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// Discovery: `None` when not configured (or not due), else the outcome.
    pub discovery: Option<Result<DiscoveryDocument, SourceError>>,
    /// The keys, or why there are none.
    pub keys: Result<Fetched, SourceError>,
}

/// Keys fetched in one refresh.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// The checked keys.
    pub set: KeySet,
    /// Where they came from.
    pub origin: KeyOrigin,
    /// The JWKS URL (for JWKS).
    pub jwks_url: Option<String>,
    /// The server's freshness lifetime (`Cache-Control`), if any.
    pub freshness: Option<Duration>,
}

/// A refresh whose keys were all refused is a failure: [`SourceError::NoUsableKeys`],
/// naming the refused keys.
pub fn require_usable(keys: Result<Fetched, SourceError>) -> Result<Fetched, SourceError> {
    keys.and_then(|fetched| {
        if fetched.set.keys.is_empty() {
            Err(SourceError::NoUsableKeys(
                fetched
                    .set
                    .rejected
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            ))
        } else {
            Ok(fetched)
        }
    })
}

/// What this process remembers about one KeyManager.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyState {
    /// The spec generation the state was built for.
    pub generation: Option<i64>,
    /// The last good discovery document.
    pub discovery: Option<CachedDiscovery>,
    /// Why the last discovery failed, if it did.
    pub discovery_error: Option<SourceError>,
    /// The last good keys.
    pub keys: Option<GoodKeys>,
    /// Why the last key refresh failed, if it did.
    pub keys_error: Option<SourceError>,
    /// Failed refreshes since the last success.
    pub consecutive_failures: u32,
}

/// The backoff and refresh bounds, from flags and the KeyManager's spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// The backoff after failures.
    pub retry: RetryPolicy,
    /// `spec.connection.minRefreshSeconds`.
    pub min_refresh: Duration,
    /// `spec.connection.maxRefreshSeconds`.
    pub max_refresh: Duration,
    /// Operator-wide cap on the refresh interval (`--max-refresh-interval`).
    pub refresh_cap: Option<Duration>,
    /// `spec.connection.maxStalenessSeconds`.
    pub max_staleness: Duration,
}

/// Whether the keys in use are fresh or last-known-good.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// The last refresh succeeded.
    Fresh,
    /// The last refresh failed; these are the last good keys, within the budget.
    Stale {
        /// Seconds since the epoch after which they are dropped.
        until: i64,
    },
}

impl KeyState {
    /// Starts over for a new spec generation (the discovery cache and keys are kept: they
    /// remain the best knowledge until the new spec's first refresh answers).
    pub fn observe_generation(&mut self, generation: Option<i64>) -> bool {
        if self.generation == generation {
            return false;
        }
        self.generation = generation;
        true
    }

    /// Whether the cached discovery document is older than `max_age` (or missing).
    pub fn discovery_due(&self, now: i64, max_age: Duration) -> bool {
        match &self.discovery {
            None => true,
            Some(cached) => now - cached.fetched_at >= max_age.as_secs() as i64,
        }
    }

    /// Records a refresh and returns the delay until the next one.
    pub fn record(&mut self, attempt: Attempt, now: i64, timing: &Timing) -> Duration {
        match attempt.discovery {
            Some(Ok(document)) => {
                self.discovery = Some(CachedDiscovery {
                    document,
                    fetched_at: now,
                });
                self.discovery_error = None;
            }
            Some(Err(error)) => self.discovery_error = Some(error),
            None => {}
        }
        match require_usable(attempt.keys) {
            Ok(fetched) => {
                self.keys = Some(GoodKeys {
                    set: fetched.set,
                    fetched_at: now,
                    origin: fetched.origin,
                    jwks_url: fetched.jwks_url,
                });
                self.keys_error = None;
                self.consecutive_failures = 0;
                outband_idp::fetch::cache_control::refresh_interval(
                    fetched.freshness,
                    timing.min_refresh,
                    timing.max_refresh,
                    timing.refresh_cap,
                )
            }
            Err(error) => {
                self.keys_error = Some(error);
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                self.backoff(timing)
            }
        }
    }

    /// Adopts keys recovered from published ConfigMaps when nothing better is known.
    pub fn recover(&mut self, set: KeySet, fetched_at: i64, jwks_url: Option<String>) {
        if self.keys.is_none() && !set.keys.is_empty() {
            self.keys = Some(GoodKeys {
                set,
                fetched_at,
                origin: KeyOrigin::Recovered,
                jwks_url,
            });
        }
    }

    /// The delay before the next try after `consecutive_failures` failures: the
    /// operator's retry policy, never longer than the refresh interval would be.
    pub fn backoff(&self, timing: &Timing) -> Duration {
        let mut ceiling = timing.max_refresh.max(timing.min_refresh);
        if let Some(cap) = timing.refresh_cap {
            ceiling = ceiling.min(cap.max(timing.retry.initial));
        }
        timing
            .retry
            .delay(self.consecutive_failures)
            .min(ceiling)
            .max(Duration::from_millis(100))
    }

    /// The keys in use now, if any: fresh after a success, last-known-good within
    /// `max_staleness` after failures.
    pub fn usable(&self, now: i64, timing: &Timing) -> Option<(&GoodKeys, Freshness)> {
        let keys = self.keys.as_ref()?;
        if self.consecutive_failures == 0 && keys.origin != KeyOrigin::Recovered {
            return Some((keys, Freshness::Fresh));
        }
        let until = keys.fetched_at + timing.max_staleness.as_secs() as i64;
        (now <= until).then_some((keys, Freshness::Stale { until }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key_manager::tests_support::key_set;
    use outband_idp::fetch::FetchError;

    fn timing() -> Timing {
        Timing {
            retry: RetryPolicy {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(300),
            },
            min_refresh: Duration::from_secs(300),
            max_refresh: Duration::from_secs(3600),
            refresh_cap: None,
            max_staleness: Duration::from_secs(86400),
        }
    }

    fn success(kids: &[&str], freshness: Option<u64>) -> Attempt {
        Attempt {
            discovery: None,
            keys: Ok(Fetched {
                set: key_set(kids),
                origin: KeyOrigin::Jwks,
                jwks_url: Some("https://idp.example/jwks".into()),
                freshness: freshness.map(Duration::from_secs),
            }),
        }
    }

    fn failure() -> Attempt {
        Attempt {
            discovery: None,
            keys: Err(SourceError::Jwks(FetchError::Timeout {
                url: "https://idp.example/jwks".into(),
                timeout: Duration::from_secs(10),
            })),
        }
    }

    #[test]
    fn success_schedules_the_next_refresh_from_cache_control() {
        let mut state = KeyState::default();
        assert_eq!(
            state.record(success(&["a"], Some(900)), 0, &timing()),
            Duration::from_secs(900)
        );
        assert_eq!(
            state.record(success(&["a"], Some(5)), 0, &timing()),
            Duration::from_secs(300)
        );
        assert_eq!(
            state.record(success(&["a"], None), 0, &timing()),
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn failures_back_off_exponentially_up_to_the_maximum() {
        let mut state = KeyState::default();
        let delays: Vec<u64> = (0..11)
            .map(|_| state.record(failure(), 0, &timing()).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(state.consecutive_failures, 11);
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let mut state = KeyState::default();
        state.record(failure(), 0, &timing());
        state.record(failure(), 0, &timing());
        state.record(success(&["a"], None), 0, &timing());
        assert_eq!(state.consecutive_failures, 0);
        assert!(state.keys_error.is_none());
    }

    #[test]
    fn last_known_good_keys_are_kept_within_the_staleness_budget() {
        let mut state = KeyState::default();
        state.record(success(&["a"], None), 1000, &timing());
        state.record(failure(), 2000, &timing());
        let (keys, freshness) = state.usable(2000, &timing()).unwrap();
        assert_eq!(keys.set.keys[0].kid(), Some("a"));
        assert_eq!(
            freshness,
            Freshness::Stale {
                until: 1000 + 86400
            }
        );
        assert!(state.usable(1000 + 86401, &timing()).is_none());
    }

    #[test]
    fn a_key_set_with_no_usable_key_is_a_failure_that_keeps_the_old_keys() {
        let mut state = KeyState::default();
        state.record(success(&["a"], None), 0, &timing());
        state.record(success(&[], None), 10, &timing());
        assert_eq!(state.consecutive_failures, 1);
        assert!(matches!(
            state.keys_error,
            Some(SourceError::NoUsableKeys(_))
        ));
        assert!(state.usable(10, &timing()).is_some());
    }

    #[test]
    fn a_key_set_with_no_usable_key_is_counted_as_no_usable_keys() {
        let Attempt { keys, .. } = success(&[], None);
        let error = require_usable(keys).unwrap_err();
        assert_eq!(error.metric_result(), "NoUsableKeys");
        assert!(SourceError::key_results(true).contains(&"NoUsableKeys"));
        assert!(SourceError::key_results(false).contains(&"NoUsableKeys"));
        let Attempt { keys, .. } = success(&["a"], None);
        assert!(require_usable(keys).is_ok());
    }

    #[test]
    fn the_operator_wide_cap_shortens_refresh_and_backoff() {
        let mut timing = timing();
        timing.refresh_cap = Some(Duration::from_secs(2));
        let mut state = KeyState::default();
        assert_eq!(
            state.record(success(&["a"], None), 0, &timing),
            Duration::from_secs(2)
        );
        for _ in 0..5 {
            state.record(failure(), 0, &timing);
        }
        assert_eq!(state.backoff(&timing), Duration::from_secs(2));
    }

    #[test]
    fn recovered_keys_count_as_stale_until_a_refresh_succeeds() {
        let mut state = KeyState::default();
        state.recover(key_set(&["a"]), 100, None);
        assert_eq!(
            state.usable(200, &timing()).unwrap().1,
            Freshness::Stale { until: 100 + 86400 }
        );
        state.record(success(&["b"], None), 300, &timing());
        assert_eq!(state.usable(300, &timing()).unwrap().1, Freshness::Fresh);
    }

    #[test]
    fn discovery_is_due_when_missing_or_old() {
        let mut state = KeyState::default();
        assert!(state.discovery_due(0, Duration::from_secs(60)));
        state.record(
            Attempt {
                discovery: Some(Ok(DiscoveryDocument {
                    issuer: "https://idp.example".into(),
                    ..DiscoveryDocument::default()
                })),
                keys: Err(SourceError::NoJwksUrl),
            },
            100,
            &timing(),
        );
        assert!(!state.discovery_due(120, Duration::from_secs(60)));
        assert!(state.discovery_due(160, Duration::from_secs(60)));
    }
}
