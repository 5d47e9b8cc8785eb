//! The operator → sidecar config: the wire format, defined once and used by both sides.
//!
//! The operator compiles, for each API (namespace + name), one [`SidecarConfig`]: the
//! KeyManagers whose tokens the API may accept, with their public keys inlined, and the
//! subscriptions keyed by (KeyManager, consumer key). See `docs/sidecar-config.md`.
//!
//! On the wire the config is a *bundle* (see [`bundle`]): canonical JSON, gzip-compressed,
//! cut into shards that each fit in one ConfigMap, plus a manifest with the SHA-256 of every
//! shard and of the whole document, so the sidecar can tell a torn set from a good one.

pub mod bundle;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

pub use crate::jwk::PublicJwk;
use crate::{JwsAlgorithm, KeyType, SubscriptionState};

/// The format identifier of [`SidecarConfig`]. Bumped only for a change a reader of the
/// previous format could misread (see [`SUPPORTED_CRITICAL`] and `docs/sidecar-config.md`).
pub const CONFIG_FORMAT: &str = "outband.dev/sidecar-config/v1";

/// The members this reader understands when a document lists them in
/// [`SidecarConfig::critical`]. A document naming any other member is refused: a member is
/// listed as critical when ignoring it would let a reader accept what its writer refuses.
pub const SUPPORTED_CRITICAL: &[&str] = &[];

/// Everything one API's sidecars need to decide on a request.
///
/// How the format evolves (see `docs/sidecar-config.md`): a reader ignores members it does
/// not know, skips entries of `keyManagers`, `keys`, `algorithms` and `subscriptions` it
/// cannot read (each skip can only refuse more tokens), and refuses a document whose
/// [`critical`](SidecarConfig::critical) list names a member it does not understand.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SidecarConfig {
    /// Always [`CONFIG_FORMAT`].
    pub format: String,
    /// Members this document uses that a reader must understand rather than ignore, as
    /// dotted paths without indices (e.g. `keyManagers.requiredClaims`). Empty in every
    /// document this version writes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub critical: Vec<String>,
    /// The API this config is for.
    pub api: ApiRef,
    /// KeyManagers whose tokens may be accepted, sorted by name.
    #[serde(deserialize_with = "readable_entries")]
    pub key_managers: Vec<KeyManagerConfig>,
    /// Subscriptions to this API, sorted by (keyManager, consumerKey).
    #[serde(deserialize_with = "readable_entries")]
    pub subscriptions: Vec<SubscriptionConfig>,
}

/// An API: the `outband.dev/api` annotation of its workloads, in their namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiRef {
    /// Namespace of the workloads serving the API.
    pub namespace: String,
    /// Name of the API.
    pub name: String,
}

impl std::fmt::Display for ApiRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One KeyManager as the sidecar needs it: everything to validate its tokens locally.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct KeyManagerConfig {
    /// `metadata.name` of the KeyManager.
    pub name: String,
    /// Compared exactly with the token's `iss`.
    pub issuer: String,
    /// Claim holding the client id.
    pub consumer_key_claim: String,
    /// Claim holding the scopes (space-separated string or array of strings).
    pub scopes_claim: String,
    /// Accepted JWS algorithms.
    #[serde(deserialize_with = "readable_entries")]
    pub algorithms: Vec<JwsAlgorithm>,
    /// Allowed clock skew in seconds.
    pub clock_skew_seconds: u32,
    /// When not empty, `aud` must contain one of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    /// When set, the JOSE `typ` header must match (see the KeyManager's `requiredType`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_type: Option<String>,
    /// The public keys, inlined by the operator.
    #[serde(deserialize_with = "readable_entries")]
    pub keys: Vec<PublicJwk>,
    /// Where the sidecar may fetch keys itself when a token names a `kid` it does not know.
    /// Taken from the KeyManager, never from a token. Absent for PEM KeyManagers: their keys
    /// are *pinned* (published without `kid`), and a token whose `kid` names none of the
    /// keys is tried against the keys without `kid` that fit its `alg` (a few at most; see
    /// `docs/sidecar-config.md`). Present for every KeyManager whose keys come from a JWKS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_refresh: Option<JwksRefresh>,
}

/// The sidecar's own, rate-limited JWKS fetch for unknown key ids.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct JwksRefresh {
    /// The JWKS URL resolved by the operator.
    pub url: String,
    /// Extra trusted CA certificates (PEM), in addition to the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
    /// Whether the URL may resolve to loopback.
    #[serde(default)]
    pub allow_loopback: bool,
    /// Request timeout in seconds.
    pub timeout_seconds: u32,
}

/// One subscription to this API.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionConfig {
    /// The KeyManager the consumer key belongs to.
    pub key_manager: String,
    /// The client id, as found in the KeyManager's consumer-key claim.
    pub consumer_key: String,
    /// The binding's key type.
    pub key_type: KeyType,
    /// Application name (forwarded as an identity header).
    pub application: String,
    /// `namespace/name` of the OAuthAppBinding (for logs and `explain`).
    pub binding: String,
    /// Tier (forwarded as an identity header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Subscription state.
    pub state: SubscriptionState,
}

impl SidecarConfig {
    /// An empty config for `api`: every token is refused as not subscribed.
    pub fn empty(api: ApiRef) -> SidecarConfig {
        SidecarConfig {
            format: CONFIG_FORMAT.to_string(),
            critical: Vec::new(),
            api,
            key_managers: Vec::new(),
            subscriptions: Vec::new(),
        }
    }
}

impl SidecarConfig {
    /// The members in [`critical`](SidecarConfig::critical) that this reader does not
    /// understand; a document with any is refused.
    pub fn unsupported_critical(&self) -> Vec<&str> {
        self.critical
            .iter()
            .map(String::as_str)
            .filter(|name| !SUPPORTED_CRITICAL.contains(name))
            .collect()
    }
}

/// Reads a list, skipping the entries this reader cannot read: a key type, an algorithm or
/// a subscription state that a newer writer introduced. Skipping an entry only ever removes
/// something that would have been accepted, never adds to it. Each skip is logged.
fn readable_entries<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let entries = Vec::<serde_json::Value>::deserialize(deserializer)?;
    Ok(entries
        .into_iter()
        .filter_map(|entry| match serde_json::from_value(entry) {
            Ok(entry) => Some(entry),
            Err(error) => {
                tracing::warn!(
                    entry = std::any::type_name::<T>().rsplit("::").next().unwrap_or("entry"),
                    %error,
                    "a sidecar config entry this version cannot read is skipped"
                );
                None
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A document as a newer operator could write it: new members at every level, and
    /// entries of kinds this version does not know.
    fn from_a_newer_writer() -> serde_json::Value {
        json!({
            "format": CONFIG_FORMAT,
            "generatedBy": "outband-operator 9.9",
            "api": {"namespace": "shop", "name": "orders", "displayName": "Orders"},
            "keyManagers": [{
                "name": "idp",
                "issuer": "https://idp.example",
                "consumerKeyClaim": "client_id",
                "scopesClaim": "scope",
                "algorithms": ["ES256", "ML-DSA-44"],
                "clockSkewSeconds": 30,
                "keys": [
                    {"kty": "AKP", "alg": "ML-DSA-44", "pub": "AAAA"},
                    {"kty": "EC", "crv": "P-256", "kid": "k1", "x": "AQ", "y": "Ag", "x5t": "t"},
                    {"kty": "EC", "crv": "P-521", "kid": "k2", "x": "AQ", "y": "Ag"}
                ],
                "introspection": {"url": "https://idp.example/introspect"}
            }, {
                "name": "from-the-future",
                "issuerPattern": "https://*.idp.example"
            }],
            "subscriptions": [
                {"keyManager": "idp", "consumerKey": "a", "keyType": "PRODUCTION",
                 "application": "app", "binding": "team/a", "state": "Active", "quota": 10},
                {"keyManager": "idp", "consumerKey": "b", "keyType": "PRODUCTION",
                 "application": "app", "binding": "team/b", "state": "Throttled"},
                {"keyManager": "idp", "consumerKey": "c", "keyType": "STAGING",
                 "application": "app", "binding": "team/c", "state": "Active"}
            ]
        })
    }

    #[test]
    fn a_reader_ignores_new_members_and_skips_entries_it_cannot_read() {
        let config: SidecarConfig = serde_json::from_value(from_a_newer_writer()).unwrap();
        assert!(config.unsupported_critical().is_empty());
        assert_eq!(config.key_managers.len(), 1, "the entry without an issuer");
        let km = &config.key_managers[0];
        assert_eq!(km.algorithms, [JwsAlgorithm::ES256]);
        assert_eq!(km.keys.len(), 1);
        assert_eq!(km.keys[0].kid(), Some("k1"));
        let clients: Vec<&str> = config
            .subscriptions
            .iter()
            .map(|s| s.consumer_key.as_str())
            .collect();
        assert_eq!(
            clients,
            ["a"],
            "unknown states and key types are not subscribed"
        );
    }

    #[test]
    fn a_critical_member_this_reader_does_not_understand_is_reported() {
        let mut document = from_a_newer_writer();
        document["critical"] = json!(["keyManagers.requiredClaims"]);
        let config: SidecarConfig = serde_json::from_value(document).unwrap();
        assert_eq!(
            config.unsupported_critical(),
            ["keyManagers.requiredClaims"]
        );
    }

    #[test]
    fn this_version_writes_no_critical_member() {
        let text = serde_json::to_string(&SidecarConfig::empty(ApiRef {
            namespace: "shop".into(),
            name: "orders".into(),
        }))
        .unwrap();
        assert!(!text.contains("critical"), "{text}");
    }
}
