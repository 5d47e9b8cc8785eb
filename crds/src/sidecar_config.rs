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

use serde::{Deserialize, Serialize};

use crate::{JwsAlgorithm, KeyType, SubscriptionState};

/// The format identifier of [`SidecarConfig`]; bumped on any incompatible change.
pub const CONFIG_FORMAT: &str = "outband.dev/sidecar-config/v1";

/// Everything one API's sidecars need to decide on a request.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SidecarConfig {
    /// Always [`CONFIG_FORMAT`].
    pub format: String,
    /// The API this config is for.
    pub api: ApiRef,
    /// KeyManagers whose tokens may be accepted, sorted by name.
    pub key_managers: Vec<KeyManagerConfig>,
    /// Subscriptions to this API, sorted by (keyManager, consumerKey).
    pub subscriptions: Vec<SubscriptionConfig>,
}

/// An API: the `outband.dev/api` annotation of its workloads, in their namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(deny_unknown_fields)]
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
#[serde(rename_all = "camelCase", deny_unknown_fields)]
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
#[serde(rename_all = "camelCase", deny_unknown_fields)]
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

/// A public JSON Web Key (RFC 7517) with only the public members.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PublicJwk {
    /// `RSA`, `EC` or `OKP`.
    pub kty: String,
    /// Key id, as the JWKS gives it. Absent for PEM keys (a certificate names no key id),
    /// and for JWKS keys without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// The one algorithm this key may be used with (RFC 8725 §3.1). When absent, any
    /// allowed algorithm of the key's family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<JwsAlgorithm>,
    /// RSA modulus (base64url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA exponent (base64url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// Curve: `P-256`, `P-384` or `Ed25519`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// EC x coordinate or Ed25519 public key (base64url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// EC y coordinate (base64url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
}

/// One subscription to this API.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
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
            api,
            key_managers: Vec::new(),
            subscriptions: Vec::new(),
        }
    }
}
