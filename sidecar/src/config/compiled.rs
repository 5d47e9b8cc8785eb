//! Compiling a [`SidecarConfig`] for one workload: KeyManagers indexed by exact issuer (with
//! the workload's allow-list applied), keys checked and pre-parsed, subscriptions indexed by
//! (KeyManager, consumer key), identity header values prepared. Pure; done once per reload.

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderValue;
use outband_crds::sidecar_config::{ApiRef, JwksRefresh, SidecarConfig};
use outband_crds::{JwsAlgorithm, KeyType, SubscriptionState};

use crate::keys::{KeySet, MAX_PINNED_CANDIDATES};
use crate::settings::Settings;
use crate::token::claims::ClaimRules;

/// Why a config cannot be used by this workload at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// The config is for another API.
    #[error("the config is for API {found} but this sidecar serves {expected}")]
    WrongApi {
        /// The API in the config.
        found: ApiRef,
        /// This workload's API.
        expected: String,
    },
}

impl CompileError {
    /// Every value [`CompileError::reason`] returns.
    pub const REASONS: [&'static str; 1] = ["wrong_api"];

    /// A stable name for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            CompileError::WrongApi { .. } => "wrong_api",
        }
    }
}

/// One KeyManager, ready for validation.
#[derive(Debug)]
pub struct CompiledKeyManager {
    /// Its name.
    pub name: String,
    /// Its exact issuer.
    pub issuer: String,
    /// Accepted algorithms.
    pub algorithms: Vec<JwsAlgorithm>,
    /// Claim names, skew and audiences.
    pub claims: ClaimRules,
    /// Required `typ`, if any.
    pub required_type: Option<String>,
    /// Its checked, pre-parsed keys.
    pub keys: Arc<KeySet>,
    /// Where unknown `kid`s may be looked up.
    pub jwks_refresh: Option<JwksRefresh>,
    /// Header value of its name.
    pub name_header: HeaderValue,
}

impl CompiledKeyManager {
    /// Whether its keys are pinned: no JWKS source (`jwksRefresh` absent, as for PEM), so a
    /// token whose `kid` names none of its keys is tried against its keys without a `kid`
    /// that fit the token's `alg` (at most [`MAX_PINNED_CANDIDATES`]). Keys with a `kid` are
    /// only ever used for that `kid`.
    pub fn keys_are_pinned(&self) -> bool {
        self.jwks_refresh.is_none()
    }
}

/// One subscription, with its identity header values prepared.
#[derive(Debug)]
pub struct Subscription {
    /// The binding's key type.
    pub key_type: KeyType,
    /// The subscription state.
    pub state: SubscriptionState,
    /// The application name.
    pub application: String,
    /// The tier, if any.
    pub tier: Option<String>,
    /// `namespace/name` of the binding.
    pub binding: String,
    /// Header value of the application name.
    pub application_header: HeaderValue,
    /// Header value of the tier.
    pub tier_header: Option<HeaderValue>,
}

/// What a token's issuer maps to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IssuerMatch {
    /// An allowed KeyManager (its index).
    Allowed(usize),
    /// A KeyManager of this API that the workload does not allow.
    NotAllowed(String),
    /// Several allowed KeyManagers share the issuer.
    Ambiguous,
}

/// A config compiled for one workload.
#[derive(Debug)]
pub struct CompiledConfig {
    /// SHA-256 of the config document (the manifest's), identifying this generation.
    pub generation: String,
    /// The API.
    pub api: ApiRef,
    /// The allowed KeyManagers.
    pub key_managers: Vec<CompiledKeyManager>,
    issuers: HashMap<String, IssuerMatch>,
    subscriptions: HashMap<String, HashMap<String, Subscription>>,
    subscription_count: usize,
    /// Problems that did not prevent loading (dropped keys, duplicate subscriptions…).
    pub warnings: Vec<String>,
}

impl CompiledConfig {
    /// Compiles `config` (whose document hash is `generation`) for the workload `settings`.
    pub fn compile(
        config: &SidecarConfig,
        generation: impl Into<String>,
        settings: &Settings,
    ) -> Result<CompiledConfig, CompileError> {
        let namespace_ok = settings
            .api_namespace
            .as_ref()
            .is_none_or(|ns| *ns == config.api.namespace);
        if config.api.name != settings.api_name || !namespace_ok {
            return Err(CompileError::WrongApi {
                found: config.api.clone(),
                expected: match &settings.api_namespace {
                    Some(ns) => format!("{ns}/{}", settings.api_name),
                    None => settings.api_name.clone(),
                },
            });
        }
        let mut warnings = Vec::new();
        let mut key_managers = Vec::new();
        let mut issuers: HashMap<String, IssuerMatch> = HashMap::new();
        for km in &config.key_managers {
            if !settings.allows_key_manager(&km.name) {
                issuers
                    .entry(km.issuer.clone())
                    .or_insert_with(|| IssuerMatch::NotAllowed(km.name.clone()));
                continue;
            }
            let Ok(name_header) = HeaderValue::from_str(&km.name) else {
                warnings.push(format!(
                    "key manager {:?}: name is not header-safe; skipped",
                    km.name
                ));
                continue;
            };
            let keys = KeySet::build(&km.keys);
            for (kid, err) in keys.rejected() {
                warnings.push(format!(
                    "key manager {}: key {kid:?} dropped: {err}",
                    km.name
                ));
            }
            for kid in keys.ambiguous_kids() {
                warnings.push(format!(
                    "key manager {}: kid {kid:?} appears more than once; tokens naming it are refused",
                    km.name
                ));
            }
            if km.jwks_refresh.is_none() {
                for alg in &km.algorithms {
                    if keys.pinned_candidates(*alg).is_none() {
                        warnings.push(format!(
                            "key manager {}: more than {MAX_PINNED_CANDIDATES} keys without a kid fit {}; {} tokens whose kid names no key are refused",
                            km.name,
                            alg.as_str(),
                            alg.as_str()
                        ));
                    }
                }
            }
            let index = key_managers.len();
            match issuers.get(&km.issuer) {
                Some(IssuerMatch::Allowed(_)) | Some(IssuerMatch::Ambiguous) => {
                    warnings.push(format!(
                        "issuer {:?} is shared by several allowed key managers; its tokens are refused",
                        km.issuer
                    ));
                    issuers.insert(km.issuer.clone(), IssuerMatch::Ambiguous);
                }
                _ => {
                    issuers.insert(km.issuer.clone(), IssuerMatch::Allowed(index));
                }
            }
            key_managers.push(CompiledKeyManager {
                name: km.name.clone(),
                issuer: km.issuer.clone(),
                algorithms: km.algorithms.clone(),
                claims: ClaimRules {
                    consumer_key_claim: km.consumer_key_claim.clone(),
                    scopes_claim: km.scopes_claim.clone(),
                    clock_skew: i64::from(km.clock_skew_seconds),
                    audiences: km.audiences.clone(),
                },
                required_type: km.required_type.clone(),
                keys: Arc::new(keys),
                jwks_refresh: km.jwks_refresh.clone(),
                name_header,
            });
        }

        let mut subscriptions: HashMap<String, HashMap<String, Subscription>> = HashMap::new();
        let mut duplicates: Vec<(String, String)> = Vec::new();
        for sub in &config.subscriptions {
            if !key_managers.iter().any(|km| km.name == sub.key_manager) {
                continue;
            }
            let (Ok(application_header), Ok(tier_header)) = (
                HeaderValue::from_str(&sub.application),
                sub.tier.as_deref().map(HeaderValue::from_str).transpose(),
            ) else {
                warnings.push(format!(
                    "subscription {}: application or tier is not header-safe; skipped",
                    sub.binding
                ));
                continue;
            };
            let per_km = subscriptions.entry(sub.key_manager.clone()).or_default();
            if per_km.contains_key(&sub.consumer_key) {
                duplicates.push((sub.key_manager.clone(), sub.consumer_key.clone()));
                continue;
            }
            per_km.insert(
                sub.consumer_key.clone(),
                Subscription {
                    key_type: sub.key_type,
                    state: sub.state,
                    application: sub.application.clone(),
                    tier: sub.tier.clone(),
                    binding: sub.binding.clone(),
                    application_header,
                    tier_header,
                },
            );
        }
        for (km, consumer_key) in duplicates {
            if let Some(per_km) = subscriptions.get_mut(&km) {
                per_km.remove(&consumer_key);
            }
            warnings.push(format!(
                "consumer key {consumer_key:?} of key manager {km} is listed more than once; it is treated as not subscribed"
            ));
        }
        let subscription_count = subscriptions.values().map(HashMap::len).sum();
        Ok(CompiledConfig {
            generation: generation.into(),
            api: config.api.clone(),
            key_managers,
            issuers,
            subscriptions,
            subscription_count,
            warnings,
        })
    }

    /// The KeyManager for an exact issuer.
    pub fn issuer(&self, iss: &str) -> Option<&IssuerMatch> {
        self.issuers.get(iss)
    }

    /// The subscription of `consumer_key` of the KeyManager `key_manager`.
    pub fn subscription(&self, key_manager: &str, consumer_key: &str) -> Option<&Subscription> {
        self.subscriptions.get(key_manager)?.get(consumer_key)
    }

    /// Number of subscriptions in effect.
    pub fn subscription_count(&self) -> usize {
        self.subscription_count
    }

    /// Number of usable keys across KeyManagers.
    pub fn key_count(&self) -> usize {
        self.key_managers.iter().map(|km| km.keys.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{self, ISSUER, KEY_MANAGER};
    use std::collections::BTreeSet;

    fn settings() -> Settings {
        Settings::new(test_support::API)
    }

    #[test]
    fn indexes_key_managers_by_exact_issuer() {
        let compiled = CompiledConfig::compile(&test_support::config(), "g1", &settings()).unwrap();
        assert_eq!(compiled.issuer(ISSUER), Some(&IssuerMatch::Allowed(0)));
        assert_eq!(compiled.issuer("https://idp.example.test"), None);
        assert_eq!(compiled.issuer("HTTPS://IDP.EXAMPLE.TEST/"), None);
        assert_eq!(compiled.key_count(), 5);
        assert_eq!(compiled.subscription_count(), 5);
    }

    #[test]
    fn refuses_a_config_for_another_api() {
        let mut settings = settings();
        settings.api_name = "payments".into();
        let err = CompiledConfig::compile(&test_support::config(), "g1", &settings).unwrap_err();
        assert_eq!(err.reason(), "wrong_api");
        let mut settings = self::settings();
        settings.api_namespace = Some("other".into());
        assert!(CompiledConfig::compile(&test_support::config(), "g1", &settings).is_err());
    }

    #[test]
    fn key_managers_outside_the_allow_list_are_known_but_not_allowed() {
        let mut settings = settings();
        settings.allowed_key_managers = Some(BTreeSet::from(["other".to_string()]));
        let compiled = CompiledConfig::compile(&test_support::config(), "g1", &settings).unwrap();
        assert_eq!(
            compiled.issuer(ISSUER),
            Some(&IssuerMatch::NotAllowed(KEY_MANAGER.into()))
        );
        assert!(
            compiled
                .subscription(KEY_MANAGER, test_support::CLIENT)
                .is_none()
        );
    }

    #[test]
    fn a_shared_issuer_is_ambiguous() {
        let mut config = test_support::config();
        let mut twin = config.key_managers[0].clone();
        twin.name = "idp-2".into();
        config.key_managers.push(twin);
        let compiled = CompiledConfig::compile(&config, "g1", &settings()).unwrap();
        assert_eq!(compiled.issuer(ISSUER), Some(&IssuerMatch::Ambiguous));
        assert!(!compiled.warnings.is_empty());
    }

    #[test]
    fn duplicate_subscriptions_count_as_not_subscribed() {
        let mut config = test_support::config();
        let mut twin = config.subscriptions[1].clone();
        twin.state = SubscriptionState::Blocked;
        config.subscriptions.push(twin);
        let compiled = CompiledConfig::compile(&config, "g1", &settings()).unwrap();
        assert!(
            compiled
                .subscription(KEY_MANAGER, test_support::CLIENT)
                .is_none()
        );
        assert!(
            compiled
                .warnings
                .iter()
                .any(|w| w.contains("more than once"))
        );
    }

    #[test]
    fn weak_keys_are_dropped_with_a_warning() {
        let mut config = test_support::config();
        if let outband_crds::jwk::PublicJwk::Rsa(key) = &mut config.key_managers[0].keys[0] {
            key.n = vec![0xc5; 128].into();
        }
        let compiled = CompiledConfig::compile(&config, "g1", &settings()).unwrap();
        assert_eq!(compiled.key_count(), 4);
        assert!(
            compiled.warnings.iter().any(|w| w.contains("1024 bits")),
            "{:?}",
            compiled.warnings
        );
    }
}
