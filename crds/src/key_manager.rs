//! `KeyManager`: one external OAuth 2.0 authorization server, registered by a cluster admin.
//!
//! The spec is the "Add Key Manager" form of an API manager in out-of-band mode, field for
//! field. Validation that can be decided from the object alone is done at admission by the
//! apiserver (schema constraints and CEL rules); the operator reports the rest as conditions.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// CEL: a URL that is https, or plain http to a loopback host only.
const HTTPS_OR_LOOPBACK: &str = "self.startsWith('https://') || self.matches('^http://(localhost|127\\\\.[0-9]+\\\\.[0-9]+\\\\.[0-9]+|\\\\[::1\\\\])(:[0-9]+)?(/.*)?$')";

/// An external OAuth 2.0 / OpenID Connect authorization server whose JWT access tokens
/// Outband self-validates. Tokens are issued there, never by Outband.
// Several printer columns share `type_ = "string"`, which clippy mistakes for repetition.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "outband.dev",
    version = "v1alpha1",
    kind = "KeyManager",
    plural = "keymanagers",
    singular = "keymanager",
    shortname = "km",
    status = "KeyManagerStatus",
    category = "outband",
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type"),
    printcolumn(name = "Issuer", type_ = "string", json_path = ".status.endpoints.issuer"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 63").message("metadata.name: at most 63 characters")
)]
#[x_kube(
    validation = Rule::new("has(self.issuer) || has(self.wellKnownUrl)").message("spec.issuer is required unless spec.wellKnownUrl is set (discovery supplies it)"),
    validation = Rule::new("(has(self.endpoints) && has(self.endpoints.token)) || has(self.wellKnownUrl)").message("spec.endpoints.token is required unless spec.wellKnownUrl is set (discovery supplies it)")
)]
#[serde(rename_all = "camelCase")]
pub struct KeyManagerSpec {
    /// User-friendly name shown to application developers ("Display Name" in the form).
    #[x_kube(validation = Rule::new("size(self) > 0").message("spec.displayName must not be empty"))]
    #[schemars(length(max = 256))]
    pub display_name: String,

    /// Free-text description of this authorization server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,

    /// Key Manager Type. `Custom` for any OAuth 2.0 / OIDC server; a preset only supplies
    /// defaults (consumer-key and scopes claims, audience quirks).
    #[serde(rename = "type", default)]
    pub type_: KeyManagerType,

    /// Whether tokens of this authorization server are accepted. A disabled KeyManager
    /// validates nothing: every API stops accepting its tokens.
    #[serde(default = "default_true")]
    pub enabled: bool,

    /// OpenID Connect discovery URL (`.../.well-known/openid-configuration`). When set, the
    /// operator fills every endpoint and the issuer that are not given explicitly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(HTTPS_OR_LOOPBACK).message("spec.wellKnownUrl must be an https URL (plain http only for loopback hosts)"))]
    #[schemars(length(max = 2048))]
    pub well_known_url: Option<String>,

    /// Token issuer identifier, compared exactly (byte for byte) with the `iss` claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("size(self) > 0").message("spec.issuer must not be empty"))]
    #[schemars(length(max = 2048))]
    pub issuer: Option<String>,

    /// OAuth 2.0 endpoints of the authorization server. Explicit values win over discovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Endpoints>,

    /// Claim URIs: where the client id and the scopes are found in the JWT.
    /// Defaults depend on `type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<ClaimMapping>,

    /// Where the token-signing public keys come from: a JWKS endpoint, or PEM certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates: Option<Certificates>,

    /// How tokens are validated. Only self-validation of JWTs is supported.
    #[serde(default)]
    pub token_validation: TokenValidation,

    /// The form's advanced settings. Out-of-band mode requires token generation and OAuth
    /// app creation off and out-of-band provisioning on.
    #[serde(default)]
    pub advanced: AdvancedSettings,

    /// How the operator (and, for unknown key ids, the sidecar) reaches this server.
    #[serde(default)]
    pub connection: Connection,
}

fn default_true() -> bool {
    true
}

/// Key Manager Type: `Custom` or a preset for a well-known authorization server.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KeyManagerType {
    /// Any OAuth 2.0 / OpenID Connect compliant authorization server.
    #[default]
    Custom,
    /// Amazon Cognito user pools.
    Cognito,
    /// Auth0.
    Auth0,
    /// Microsoft Entra ID (formerly Azure AD).
    #[serde(rename = "EntraID")]
    EntraId,
    /// Okta.
    Okta,
    /// PingIdentity (PingFederate, PingOne).
    PingIdentity,
    /// Keycloak.
    Keycloak,
}

impl KeyManagerType {
    /// The claim that carries the client id (consumer key) in this server's access tokens.
    pub fn default_consumer_key_claim(self) -> &'static str {
        match self {
            KeyManagerType::Custom | KeyManagerType::Cognito | KeyManagerType::PingIdentity => {
                "client_id"
            }
            KeyManagerType::Auth0 => "azp",
            KeyManagerType::EntraId => "appid",
            KeyManagerType::Okta => "cid",
            KeyManagerType::Keycloak => "azp",
        }
    }

    /// The claim that carries the granted scopes in this server's access tokens.
    pub fn default_scopes_claim(self) -> &'static str {
        match self {
            KeyManagerType::EntraId | KeyManagerType::Okta => "scp",
            _ => "scope",
        }
    }
}

/// OAuth 2.0 endpoints of the authorization server.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    /// Token endpoint, where application developers obtain tokens (shown to them in the
    /// OAuthAppBinding status). Required unless discovered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(HTTPS_OR_LOOPBACK).message("spec.endpoints.token must be an https URL (plain http only for loopback hosts)"))]
    #[schemars(length(max = 2048))]
    pub token: Option<String>,

    /// Revoke endpoint (optional, informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(HTTPS_OR_LOOPBACK).message("spec.endpoints.revoke must be an https URL (plain http only for loopback hosts)"))]
    #[schemars(length(max = 2048))]
    pub revoke: Option<String>,

    /// JWKS endpoint with the token-signing public keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(HTTPS_OR_LOOPBACK).message("spec.endpoints.jwks must be an https URL (plain http only for loopback hosts)"))]
    #[schemars(length(max = 2048))]
    pub jwks: Option<String>,

    /// Introspection endpoint. Accepted for parity with the form, but introspection is not
    /// supported in out-of-band mode: it is reported in a condition and never called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub introspection: Option<String>,
}

/// Claim URIs (JSON member names) in the access token.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClaimMapping {
    /// Consumer Key Claim URI: the claim holding the client id, e.g. `client_id`, `azp`,
    /// `cid`, `appid`. Default by `type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("size(self) > 0").message("spec.claims.consumerKey must not be empty"))]
    #[schemars(length(max = 256))]
    pub consumer_key: Option<String>,

    /// Scopes Claim URI: the claim holding the granted scopes, e.g. `scope` (space-separated
    /// string) or `scp` (string or array). Default by `type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("size(self) > 0").message("spec.claims.scopes must not be empty"))]
    #[schemars(length(max = 256))]
    pub scopes: Option<String>,
}

/// Where the token-signing public keys come from.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(
    validation = Rule::new("self.type != 'PEM' || (has(self.pem) != has(self.pemFrom))").message("spec.certificates: type PEM needs exactly one of pem or pemFrom"),
    validation = Rule::new("self.type != 'JWKS' || (!has(self.pem) && !has(self.pemFrom))").message("spec.certificates: pem and pemFrom are only allowed with type PEM")
)]
#[serde(rename_all = "camelCase")]
pub struct Certificates {
    /// `JWKS` (fetch keys from `jwksUrl`, else `spec.endpoints.jwks`, else discovery) or
    /// `PEM` (public certificates or keys given here or in a Secret/ConfigMap).
    #[serde(rename = "type", default)]
    pub type_: CertificateSource,

    /// JWKS URL; overrides `spec.endpoints.jwks` and the discovered `jwks_uri`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(HTTPS_OR_LOOPBACK).message("spec.certificates.jwksUrl must be an https URL (plain http only for loopback hosts)"))]
    #[schemars(length(max = 2048))]
    pub jwks_url: Option<String>,

    /// Inline PEM: one or more X.509 certificates or public keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.contains('-----BEGIN ')").message("spec.certificates.pem must contain a PEM block"))]
    #[schemars(length(max = 65536))]
    pub pem: Option<String>,

    /// PEM read from a key of a Secret or ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pem_from: Option<PemSource>,
}

/// The kind of certificate source.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CertificateSource {
    /// A JSON Web Key Set fetched over HTTPS.
    #[default]
    #[serde(rename = "JWKS")]
    Jwks,
    /// PEM-encoded certificates or public keys.
    #[serde(rename = "PEM")]
    Pem,
}

/// A key of a Secret or ConfigMap holding PEM.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PemSource {
    /// `Secret` or `ConfigMap`.
    pub kind: PemSourceKind,
    /// Name of the object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the object (KeyManagers are cluster-scoped, so it is required).
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    /// Key within the object's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Kind of object a PEM is read from.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PemSourceKind {
    /// A core/v1 Secret.
    Secret,
    /// A core/v1 ConfigMap.
    ConfigMap,
}

/// Token validation settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("self.algorithms.all(a, self.algorithms.exists_one(b, a == b))").message("spec.tokenValidation.algorithms must not repeat an algorithm")
)]
#[serde(rename_all = "camelCase")]
pub struct TokenValidation {
    /// Token Validation Method. Only `SelfValidateJWT` is supported in out-of-band mode.
    #[serde(default)]
    pub method: TokenValidationMethod,

    /// JWS algorithms accepted from this server. `none` and HMAC algorithms are never
    /// accepted.
    #[serde(default = "default_algorithms")]
    #[schemars(length(min = 1, max = 9))]
    pub algorithms: Vec<JwsAlgorithm>,

    /// Allowed clock skew, in seconds, when checking `exp`, `nbf` and `iat` (0 to 300).
    #[serde(default = "default_clock_skew")]
    #[schemars(range(min = 0, max = 300))]
    pub clock_skew_seconds: u32,

    /// When not empty, the token's `aud` must contain at least one of these values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.all(a, size(a) > 0)").message("spec.tokenValidation.audiences must not contain empty strings"))]
    pub audiences: Vec<String>,

    /// When set, the JOSE header `typ` must equal this value (case-insensitively, with or
    /// without the `application/` prefix), e.g. `at+jwt` for RFC 9068 access tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub required_type: Option<String>,
}

impl Default for TokenValidation {
    fn default() -> Self {
        TokenValidation {
            method: TokenValidationMethod::default(),
            algorithms: default_algorithms(),
            clock_skew_seconds: default_clock_skew(),
            audiences: Vec::new(),
            required_type: None,
        }
    }
}

fn default_algorithms() -> Vec<JwsAlgorithm> {
    vec![JwsAlgorithm::RS256, JwsAlgorithm::ES256]
}

fn default_clock_skew() -> u32 {
    60
}

/// Token Validation Method.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TokenValidationMethod {
    /// Validate JWTs locally with the server's public keys.
    #[default]
    #[serde(rename = "SelfValidateJWT")]
    SelfValidateJwt,
}

/// An asymmetric JWS algorithm (RFC 7518). `none` and `HS*` are deliberately absent.
#[allow(clippy::upper_case_acronyms)]
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
pub enum JwsAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// ECDSA P-384 with SHA-384.
    ES384,
    /// Ed25519.
    EdDSA,
}

impl JwsAlgorithm {
    /// Every supported algorithm.
    pub const ALL: [JwsAlgorithm; 9] = [
        JwsAlgorithm::RS256,
        JwsAlgorithm::RS384,
        JwsAlgorithm::RS512,
        JwsAlgorithm::PS256,
        JwsAlgorithm::PS384,
        JwsAlgorithm::PS512,
        JwsAlgorithm::ES256,
        JwsAlgorithm::ES384,
        JwsAlgorithm::EdDSA,
    ];

    /// The `alg` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            JwsAlgorithm::RS256 => "RS256",
            JwsAlgorithm::RS384 => "RS384",
            JwsAlgorithm::RS512 => "RS512",
            JwsAlgorithm::PS256 => "PS256",
            JwsAlgorithm::PS384 => "PS384",
            JwsAlgorithm::PS512 => "PS512",
            JwsAlgorithm::ES256 => "ES256",
            JwsAlgorithm::ES384 => "ES384",
            JwsAlgorithm::EdDSA => "EdDSA",
        }
    }

    /// Parses an `alg` header value, exactly (case-sensitive, as RFC 7515 requires).
    pub fn parse(alg: &str) -> Option<JwsAlgorithm> {
        JwsAlgorithm::ALL.into_iter().find(|a| a.as_str() == alg)
    }
}

/// The form's advanced settings, fixed for out-of-band mode.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AdvancedSettings {
    /// Token Generation through the developer portal. Must be `false` in out-of-band mode:
    /// tokens are generated at the external server.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == false").message("spec.advanced.tokenGeneration must be false in out-of-band mode"))]
    pub token_generation: bool,

    /// OAuth App Creation through the developer portal. Must be `false` in out-of-band mode:
    /// OAuth clients are created at the external server.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == false").message("spec.advanced.oauthAppCreation must be false in out-of-band mode"))]
    pub oauth_app_creation: bool,

    /// Out Of Band Provisioning: existing OAuth clients are provided by their client id.
    /// Must be `true`.
    #[serde(default = "default_true")]
    #[x_kube(validation = Rule::new("self == true").message("spec.advanced.outOfBandProvisioning must be true"))]
    pub out_of_band_provisioning: bool,
}

impl Default for AdvancedSettings {
    fn default() -> Self {
        AdvancedSettings {
            token_generation: false,
            oauth_app_creation: false,
            out_of_band_provisioning: true,
        }
    }
}

/// Network settings for reaching the authorization server.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    /// Extra PEM CA certificates trusted for this server, in addition to the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.contains('-----BEGIN CERTIFICATE-----')").message("spec.connection.caBundle must contain PEM certificates"))]
    #[schemars(length(max = 65536))]
    pub ca_bundle: Option<String>,

    /// Allow endpoints that resolve to loopback addresses (for local development and tests).
    /// Link-local and cloud metadata addresses are always refused.
    #[serde(default)]
    pub allow_loopback: bool,

    /// Timeout for one discovery or JWKS request, in seconds (1 to 60).
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1, max = 60))]
    pub timeout_seconds: u32,

    /// Shortest interval between two JWKS refreshes, in seconds, whatever `Cache-Control`
    /// says (30 to 86400).
    #[serde(default = "default_min_refresh")]
    #[schemars(range(min = 30, max = 86400))]
    pub min_refresh_seconds: u32,

    /// Longest interval between two JWKS refreshes, in seconds (60 to 86400).
    #[serde(default = "default_max_refresh")]
    #[schemars(range(min = 60, max = 86400))]
    pub max_refresh_seconds: u32,

    /// How long the last good keys stay in use while the server cannot be reached, in
    /// seconds (0 to 30 days). After that the KeyManager's keys are dropped and its tokens
    /// refused.
    #[serde(default = "default_max_staleness")]
    #[schemars(range(min = 0, max = 2592000))]
    pub max_staleness_seconds: u32,
}

impl Default for Connection {
    fn default() -> Self {
        Connection {
            ca_bundle: None,
            allow_loopback: false,
            timeout_seconds: default_timeout(),
            min_refresh_seconds: default_min_refresh(),
            max_refresh_seconds: default_max_refresh(),
            max_staleness_seconds: default_max_staleness(),
        }
    }
}

fn default_timeout() -> u32 {
    10
}
fn default_min_refresh() -> u32 {
    300
}
fn default_max_refresh() -> u32 {
    3600
}
fn default_max_staleness() -> u32 {
    86400
}

/// Observed state of a KeyManager.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KeyManagerStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready`, `Discovered`, `KeysLoaded`, `IntrospectionUnsupported`, with reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// Endpoints in effect after discovery (explicit values win).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<ResolvedEndpoints>,

    /// The public keys in use: ids and algorithms, never key material.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<LoadedKey>,

    /// When the keys were last fetched successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refresh_time: Option<Time>,

    /// Failed refreshes since the last success.
    #[serde(default)]
    pub consecutive_failures: u32,
}

/// Endpoints in effect.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedEndpoints {
    /// Issuer compared with `iss`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Token endpoint shown to application developers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Revoke endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke: Option<String>,
    /// JWKS endpoint the keys come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<String>,
    /// Introspection endpoint (never used in out-of-band mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection: Option<String>,
}

/// A public key in use, without its material.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LoadedKey {
    /// Key id (`kid`), if the key has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Algorithm the key is used with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Key type (`RSA`, `EC`, `OKP`) and size or curve, e.g. `RSA-2048`, `EC-P-256`.
    pub key_type: String,
}
