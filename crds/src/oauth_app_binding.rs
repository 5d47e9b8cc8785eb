//! `OAuthAppBinding`: "Provide Existing OAuth Keys" plus the application's subscriptions.
//!
//! One binding is one existing OAuth client (its client id, never its secret) of one
//! KeyManager, for one key type, belonging to one application, subscribed to APIs.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// CEL: a DNS-1123 label (Kubernetes object names used as API names and namespaces).
const DNS_LABEL: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// An application's existing OAuth client at an external authorization server, and the APIs
/// that the application is subscribed to.
// Several printer columns share `type_ = "string"`, which clippy mistakes for repetition.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "outband.dev",
    version = "v1alpha1",
    kind = "OAuthAppBinding",
    plural = "oauthappbindings",
    singular = "oauthappbinding",
    shortname = "oab",
    namespaced,
    status = "OAuthAppBindingStatus",
    category = "outband",
    printcolumn(
        name = "Application",
        type_ = "string",
        json_path = ".spec.application.name"
    ),
    printcolumn(name = "Key Manager", type_ = "string", json_path = ".spec.keyManager"),
    printcolumn(name = "Key Type", type_ = "string", json_path = ".spec.keyType"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct OAuthAppBindingSpec {
    /// The application (as in the developer portal) that owns this OAuth client.
    pub application: Application,

    /// Name of the KeyManager (the authorization server) where the OAuth client exists.
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("spec.keyManager must be the name of a KeyManager (a DNS label)"))]
    #[schemars(length(min = 1, max = 63))]
    pub key_manager: String,

    /// `PRODUCTION` or `SANDBOX` keys. A sandbox key is refused by production APIs and the
    /// other way round.
    pub key_type: KeyType,

    /// Consumer Key: the client id created at the authorization server. No secret is ever
    /// given to Outband. Unique per KeyManager across the cluster.
    #[x_kube(validation = Rule::new("self.trim() == self && size(self) > 0").message("spec.consumerKey must be a non-empty client id without surrounding spaces"))]
    #[schemars(length(min = 1, max = 512))]
    pub consumer_key: String,

    /// APIs this application is subscribed to with this key (at most 256).
    #[serde(default)]
    #[schemars(length(max = 256))]
    #[x_kube(validation = Rule::new("self.all(s, self.exists_one(t, t.api == s.api && (has(t.__namespace__) ? t.__namespace__ : '') == (has(s.__namespace__) ? s.__namespace__ : '')))").message("spec.subscriptions must not list the same api (and namespace) twice"))]
    pub subscriptions: Vec<Subscription>,
}

/// The application that owns the OAuth client.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    /// Application name, unique within the namespace; forwarded to the API as an identity
    /// header.
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9][A-Za-z0-9._-]*$')").message("spec.application.name must start with a letter or digit and contain only letters, digits, '.', '_' and '-'"))]
    #[schemars(length(min = 1, max = 253))]
    pub name: String,

    /// Human-friendly application name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub display_name: Option<String>,

    /// Owner (team or person) of the application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub owner: Option<String>,
}

/// Which environment a key belongs to.
#[derive(
    JsonSchema,
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KeyType {
    /// Production keys.
    #[default]
    Production,
    /// Sandbox keys.
    Sandbox,
}

impl KeyType {
    /// The wire name (`PRODUCTION`, `SANDBOX`).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Production => "PRODUCTION",
            KeyType::Sandbox => "SANDBOX",
        }
    }

    /// Parses the wire name, exactly.
    pub fn parse(value: &str) -> Option<KeyType> {
        match value {
            "PRODUCTION" => Some(KeyType::Production),
            "SANDBOX" => Some(KeyType::Sandbox),
            _ => None,
        }
    }
}

/// A subscription of the application to one API.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// The API's name: the `outband.dev/api` annotation of the workloads that serve it.
    #[x_kube(validation = Rule::new(format!("self.matches('{DNS_LABEL}')")).message("spec.subscriptions[].api must be a DNS label (lowercase letters, digits, '-')"))]
    #[schemars(length(min = 1, max = 63))]
    pub api: String,

    /// Namespace of the API; defaults to the binding's namespace. A cross-namespace
    /// subscription takes effect only when the API's owners allow this binding's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(format!("self.matches('{DNS_LABEL}')")).message("spec.subscriptions[].namespace must be a namespace name"))]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,

    /// Business plan / tier, forwarded to the API as an identity header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub tier: Option<String>,

    /// `Active`, `Blocked` (all calls refused) or `ProductionOnlyBlocked` (production keys
    /// refused, sandbox keys allowed).
    #[serde(default)]
    pub state: SubscriptionState,
}

/// Subscription state, as in the API manager's subscription management.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SubscriptionState {
    /// Calls are allowed.
    #[default]
    Active,
    /// All calls are refused.
    Blocked,
    /// Calls with production keys are refused; sandbox keys are allowed.
    ProductionOnlyBlocked,
}

impl SubscriptionState {
    /// Whether a call with a key of `key_type` is allowed in this state.
    pub fn allows(self, key_type: KeyType) -> bool {
        match self {
            SubscriptionState::Active => true,
            SubscriptionState::Blocked => false,
            SubscriptionState::ProductionOnlyBlocked => key_type == KeyType::Sandbox,
        }
    }
}

/// Observed state of a binding.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OAuthAppBindingStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready` (with reasons such as `KeyManagerNotFound`, `KeyManagerNotReady`,
    /// `DuplicateConsumerKey`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// The KeyManager's token endpoint: where the application obtains its tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,

    /// Per subscription: whether it is in effect.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscriptions: Vec<SubscriptionStatus>,
}

/// Whether one subscription is in effect.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionStatus {
    /// The API's name.
    pub api: String,
    /// The API's namespace.
    pub namespace: String,
    /// Whether a workload serving this API is known to the operator.
    pub api_known: bool,
    /// Whether the subscription is compiled into the API's sidecar config.
    pub effective: bool,
    /// Why the subscription is not effective, if it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
