//! A KeyManager's status and its entry in the index, from what this process knows. Pure.

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use outband_crds::{KeyManagerSpec, LoadedKey, ResolvedEndpoints};

use crate::conditions::{Desired, Status};
use crate::discovery::{self, Resolution};
use crate::index::{Observed, Published};
use outband_idp::jwk::describe;
use outband_idp::jwks::{self, RejectedKey};

use super::state::{Freshness, KeyOrigin, KeyState, Timing};

/// Condition types.
pub const READY: &str = "Ready";
/// Condition type: discovery.
pub const DISCOVERED: &str = "Discovered";
/// Condition type: keys.
pub const KEYS_LOADED: &str = "KeysLoaded";
/// Condition type: an introspection endpoint is configured but never used.
pub const INTROSPECTION_UNSUPPORTED: &str = "IntrospectionUnsupported";

/// Everything the controller publishes about one KeyManager.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Conditions, before times are filled in.
    pub conditions: Vec<Desired>,
    /// Endpoints in effect.
    pub endpoints: Option<ResolvedEndpoints>,
    /// Keys in use (no material).
    pub keys: Vec<LoadedKey>,
    /// Keys refused in the last successful fetch.
    pub rejected: Vec<RejectedKey>,
    /// When the keys in use were fetched (seconds since the epoch).
    pub last_refresh: Option<i64>,
    /// Failed refreshes since the last success.
    pub consecutive_failures: u32,
    /// What the index (and so the config compiler) learns.
    pub observed: Observed,
}

impl Report {
    /// The token endpoint in effect.
    pub fn token_endpoint(&self) -> Option<String> {
        self.endpoints.as_ref().and_then(|e| e.token.clone())
    }
}

fn time(seconds: i64) -> String {
    Timestamp::from_second(seconds)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| seconds.to_string())
}

/// The report of a disabled KeyManager: it validates nothing.
pub fn disabled(spec: &KeyManagerSpec) -> Report {
    let resolution = discovery::resolve(spec, None);
    let mut conditions = vec![
        Desired::new(
            READY,
            Status::False,
            "Disabled",
            "spec.enabled is false: every API refuses this KeyManager's tokens",
        ),
        Desired::new(
            DISCOVERED,
            Status::Unknown,
            "Disabled",
            "not attempted while disabled",
        ),
        Desired::new(
            KEYS_LOADED,
            Status::Unknown,
            "Disabled",
            "not attempted while disabled",
        ),
    ];
    conditions.extend(introspection(spec));
    Report {
        conditions,
        endpoints: Some(resolution.endpoints),
        keys: Vec::new(),
        rejected: Vec::new(),
        last_refresh: None,
        consecutive_failures: 0,
        observed: Observed::NotReady {
            reason: "Disabled".into(),
        },
    }
}

fn introspection(spec: &KeyManagerSpec) -> Option<Desired> {
    spec.endpoints
        .as_ref()
        .and_then(|e| e.introspection.as_ref())
        .map(|_| {
            Desired::new(
                INTROSPECTION_UNSUPPORTED,
                Status::True,
                "IntrospectionNotUsed",
                "introspection is not supported in out-of-band mode: spec.endpoints.introspection is ignored and tokens are self-validated",
            )
        })
}

/// The report of an enabled KeyManager after a refresh.
pub fn report(
    spec: &KeyManagerSpec,
    state: &KeyState,
    resolution: &Resolution,
    now: i64,
    timing: &Timing,
) -> Report {
    let discovered = discovered_condition(spec, state, resolution);
    let usable = state.usable(now, timing);
    let error = state
        .keys_error
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let error_reason = state
        .keys_error
        .as_ref()
        .map(|e| e.reason())
        .unwrap_or("Pending");

    let keys_loaded = match usable {
        Some((keys, Freshness::Fresh)) => Desired::new(
            KEYS_LOADED,
            Status::True,
            match keys.origin {
                KeyOrigin::Pem => "PemConverted",
                _ => "KeysFetched",
            },
            describe_keys(&keys.set.keys, &keys.set.rejected),
        ),
        Some((keys, Freshness::Stale { until })) => Desired::new(
            KEYS_LOADED,
            Status::False,
            "RefreshFailed",
            format!(
                "{error}; keeping {} last-known-good keys {} at {} until {}",
                keys.set.keys.len(),
                if keys.origin == KeyOrigin::Recovered {
                    "recovered from the published config, fetched"
                } else {
                    "fetched"
                },
                time(keys.fetched_at),
                time(until)
            ),
        ),
        None => match &state.keys {
            Some(old) => Desired::new(
                KEYS_LOADED,
                Status::False,
                "KeysExpired",
                format!(
                    "{error}; the last good keys (fetched at {}) are older than spec.connection.maxStalenessSeconds ({}s) and were dropped",
                    time(old.fetched_at),
                    timing.max_staleness.as_secs()
                ),
            ),
            None => Desired::new(KEYS_LOADED, Status::False, error_reason, error.clone()),
        },
    };

    let issuer = resolution.endpoints.issuer.clone();
    let ready = match (&issuer, usable) {
        (None, _) => Desired::new(
            READY,
            Status::False,
            "IssuerUnknown",
            "spec.issuer is not set and discovery has not supplied an issuer",
        ),
        (Some(issuer), Some((keys, Freshness::Fresh))) => Desired::new(
            READY,
            Status::True,
            "Ready",
            format!(
                "tokens of {issuer} are validated with {} keys",
                keys.set.keys.len()
            ),
        ),
        (Some(_), Some((_, Freshness::Stale { until }))) => Desired::new(
            READY,
            Status::True,
            "ServingLastKnownGoodKeys",
            format!(
                "the last key refresh failed; tokens are validated with the last-known-good keys until {}",
                time(until)
            ),
        ),
        (Some(_), None) => Desired::new(
            READY,
            Status::False,
            keys_loaded.reason.clone(),
            format!("no usable keys: {}", keys_loaded.message),
        ),
    };

    let observed = match (&issuer, usable) {
        (Some(issuer), Some((keys, _))) => Observed::Ready(Arc::new(Published {
            issuer: issuer.clone(),
            jwks_url: if discovery::uses_pem(spec) {
                None
            } else {
                resolution
                    .endpoints
                    .jwks
                    .clone()
                    .or_else(|| keys.jwks_url.clone())
            },
            keys: if discovery::uses_pem(spec) {
                jwks::pinned(&keys.set.keys)
            } else {
                keys.set.keys.clone()
            },
        })),
        _ => Observed::NotReady {
            reason: ready.reason.clone(),
        },
    };

    let mut conditions = vec![ready, discovered, keys_loaded];
    conditions.extend(introspection(spec));
    Report {
        conditions,
        endpoints: Some(resolution.endpoints.clone()),
        keys: usable
            .map(|(k, _)| k.set.keys.iter().map(describe).collect())
            .unwrap_or_default(),
        rejected: usable
            .map(|(k, _)| k.set.rejected.clone())
            .unwrap_or_default(),
        last_refresh: state.keys.as_ref().map(|k| k.fetched_at),
        consecutive_failures: state.consecutive_failures,
        observed,
    }
}

fn discovered_condition(
    spec: &KeyManagerSpec,
    state: &KeyState,
    resolution: &Resolution,
) -> Desired {
    let Some(url) = spec.well_known_url.as_deref() else {
        return Desired::new(
            DISCOVERED,
            Status::True,
            "NotConfigured",
            "spec.wellKnownUrl is not set: endpoints come from the spec",
        );
    };
    match (&state.discovery_error, &state.discovery) {
        (Some(error), Some(cached)) => Desired::new(
            DISCOVERED,
            Status::False,
            error.reason(),
            format!(
                "{error}; using the document fetched at {}",
                time(cached.fetched_at)
            ),
        ),
        (Some(error), None) => {
            Desired::new(DISCOVERED, Status::False, error.reason(), error.to_string())
        }
        (None, Some(_)) if !resolution.disagreements.is_empty() => Desired::new(
            DISCOVERED,
            Status::True,
            "ExplicitValuesDiffer",
            format!(
                "discovered from {url}; explicit values win where they differ: {}",
                resolution.disagreements.join("; ")
            ),
        ),
        (None, Some(_)) => Desired::new(
            DISCOVERED,
            Status::True,
            "DiscoverySucceeded",
            format!("endpoints discovered from {url}"),
        ),
        (None, None) => Desired::new(
            DISCOVERED,
            Status::Unknown,
            "Pending",
            "discovery has not run yet",
        ),
    }
}

fn describe_keys(
    keys: &[outband_crds::sidecar_config::PublicJwk],
    rejected: &[RejectedKey],
) -> String {
    let listed: Vec<String> = keys
        .iter()
        .map(|k| {
            let described = describe(k);
            format!(
                "{} ({}{})",
                described.kid.as_deref().unwrap_or("no kid"),
                described.key_type,
                described.alg.map(|a| format!(", {a}")).unwrap_or_default()
            )
        })
        .collect();
    let mut message = format!("{} keys: {}", keys.len(), listed.join(", "));
    if !rejected.is_empty() {
        let refused: Vec<String> = rejected.iter().map(ToString::to_string).collect();
        message.push_str(&format!(
            "; refused {}: {}",
            rejected.len(),
            refused.join("; ")
        ));
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::DiscoveryDocument;
    use crate::key_manager::source::SourceError;
    use crate::key_manager::state::{Attempt, Fetched};
    use crate::key_manager::tests_support::key_set;
    use outband_idp::fetch::FetchError;
    use std::time::Duration;

    fn spec(value: serde_json::Value) -> KeyManagerSpec {
        serde_json::from_value(value).unwrap()
    }

    fn discovery_spec() -> KeyManagerSpec {
        spec(
            serde_json::json!({"displayName": "IdP", "wellKnownUrl": "https://idp.example/.well-known/openid-configuration"}),
        )
    }

    fn timing() -> Timing {
        Timing {
            retry: crate::runtime::queue::RetryPolicy {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(60),
            },
            min_refresh: Duration::from_secs(300),
            max_refresh: Duration::from_secs(3600),
            refresh_cap: None,
            max_staleness: Duration::from_secs(1000),
        }
    }

    fn document() -> DiscoveryDocument {
        DiscoveryDocument {
            issuer: "https://idp.example".into(),
            token_endpoint: Some("https://idp.example/token".into()),
            jwks_uri: Some("https://idp.example/jwks".into()),
            ..DiscoveryDocument::default()
        }
    }

    fn ok_attempt(kids: &[&str]) -> Attempt {
        Attempt {
            discovery: Some(Ok(document())),
            keys: Ok(Fetched {
                set: key_set(kids),
                origin: KeyOrigin::Jwks,
                jwks_url: Some("https://idp.example/jwks".into()),
                freshness: None,
            }),
        }
    }

    fn down() -> Attempt {
        let error = FetchError::Connect {
            url: "https://idp.example".into(),
            message: "connection refused".into(),
        };
        Attempt {
            discovery: Some(Err(SourceError::Discovery(error.clone()))),
            keys: Err(SourceError::Jwks(error)),
        }
    }

    fn condition<'a>(report: &'a Report, type_: &str) -> &'a Desired {
        report.conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    fn run(state: &mut KeyState, attempt: Attempt, now: i64) -> Report {
        let spec = discovery_spec();
        state.record(attempt, now, &timing());
        let document = state.discovery.as_ref().map(|c| c.document.clone());
        let resolution = discovery::resolve(&spec, document.as_ref());
        report(&spec, state, &resolution, now, &timing())
    }

    #[test]
    fn a_discovered_key_manager_with_keys_is_ready() {
        let mut state = KeyState::default();
        let report = run(&mut state, ok_attempt(&["a", "b"]), 100);
        assert_eq!(condition(&report, READY).status, Status::True);
        assert_eq!(condition(&report, DISCOVERED).reason, "DiscoverySucceeded");
        assert_eq!(condition(&report, KEYS_LOADED).reason, "KeysFetched");
        assert_eq!(report.keys.len(), 2);
        assert_eq!(
            report.token_endpoint().as_deref(),
            Some("https://idp.example/token")
        );
        match &report.observed {
            Observed::Ready(published) => {
                assert_eq!(published.issuer, "https://idp.example");
                assert_eq!(
                    published.jwks_url.as_deref(),
                    Some("https://idp.example/jwks")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pem_keys_are_published_without_kid_and_the_status_keeps_their_thumbprints() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let pem = rcgen::CertificateParams::new(vec!["idp.example".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem();
        let spec = spec(serde_json::json!({
            "displayName": "PEM IdP",
            "issuer": "https://pem.example",
            "certificates": {"type": "PEM", "pem": pem},
        }));
        let mut state = KeyState::default();
        state.record(
            Attempt {
                discovery: None,
                keys: Ok(Fetched {
                    set: outband_idp::pem::parse(&pem).unwrap(),
                    origin: KeyOrigin::Pem,
                    jwks_url: None,
                    freshness: None,
                }),
            },
            100,
            &timing(),
        );
        let resolution = discovery::resolve(&spec, None);
        let report = report(&spec, &state, &resolution, 100, &timing());
        let Observed::Ready(published) = &report.observed else {
            panic!("{:?}", report.observed);
        };
        assert_eq!(published.jwks_url, None);
        assert_eq!(published.keys.len(), 1);
        assert_eq!(published.keys[0].kid(), None);
        let thumbprint = outband_idp::jwk::thumbprint(&published.keys[0]);
        assert_eq!(report.keys[0].kid.as_deref(), Some(thumbprint.as_str()));
    }

    #[test]
    fn an_unreachable_provider_degrades_the_conditions_but_keeps_the_keys() {
        let mut state = KeyState::default();
        run(&mut state, ok_attempt(&["a"]), 100);
        let report = run(&mut state, down(), 200);
        assert_eq!(condition(&report, KEYS_LOADED).status, Status::False);
        assert_eq!(condition(&report, KEYS_LOADED).reason, "RefreshFailed");
        assert_eq!(condition(&report, DISCOVERED).reason, "DiscoveryFailed");
        assert_eq!(condition(&report, READY).reason, "ServingLastKnownGoodKeys");
        assert_eq!(report.keys.len(), 1);
        assert_eq!(report.consecutive_failures, 1);
        assert!(matches!(report.observed, Observed::Ready(_)));
    }

    #[test]
    fn keys_older_than_the_staleness_budget_are_dropped() {
        let mut state = KeyState::default();
        run(&mut state, ok_attempt(&["a"]), 100);
        let report = run(&mut state, down(), 1200);
        assert_eq!(condition(&report, KEYS_LOADED).reason, "KeysExpired");
        assert_eq!(condition(&report, READY).status, Status::False);
        assert!(report.keys.is_empty());
        assert!(matches!(report.observed, Observed::NotReady { .. }));
    }

    #[test]
    fn a_provider_never_reached_is_not_ready_with_the_reason() {
        let mut state = KeyState::default();
        let report = run(&mut state, down(), 100);
        assert_eq!(condition(&report, READY).status, Status::False);
        assert_eq!(condition(&report, READY).reason, "IssuerUnknown");
        assert_eq!(condition(&report, KEYS_LOADED).reason, "JwksFetchFailed");
    }

    #[test]
    fn disabled_key_managers_are_reported_as_such() {
        let report = disabled(&discovery_spec());
        assert_eq!(condition(&report, READY).reason, "Disabled");
        assert_eq!(
            report.observed,
            Observed::NotReady {
                reason: "Disabled".into()
            }
        );
    }

    #[test]
    fn an_introspection_endpoint_is_reported_as_unsupported() {
        let spec = spec(
            serde_json::json!({"displayName": "IdP", "issuer": "https://idp.example",
            "endpoints": {"token": "https://idp.example/token", "introspection": "https://idp.example/introspect"}}),
        );
        let report = disabled(&spec);
        assert_eq!(
            condition(&report, INTROSPECTION_UNSUPPORTED).status,
            Status::True
        );
    }

    #[test]
    fn key_messages_name_refused_keys() {
        let mut set = key_set(&["a"]);
        set.rejected.push(RejectedKey {
            kid: Some("weak".into()),
            rejection: outband_idp::jwk::KeyRejection::WeakRsaModulus(1024),
        });
        let message = describe_keys(&set.keys, &set.rejected);
        assert!(message.contains("1 keys: a (EC-P-256)"), "{message}");
        assert!(
            message.contains("refused 1: kid \"weak\": RSA modulus of 1024 bits"),
            "{message}"
        );
    }
}
