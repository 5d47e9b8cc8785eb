//! OpenID Connect discovery: reading the provider's metadata and merging it with the
//! KeyManager's explicit endpoints. Explicit values win; every disagreement is reported.

use outband_crds::{CertificateSource, KeyManagerSpec, ResolvedEndpoints};
use serde::Deserialize;

/// The members of an OpenID Provider Metadata document the operator uses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct DiscoveryDocument {
    /// `issuer`.
    pub issuer: String,
    /// `token_endpoint`.
    #[serde(default)]
    pub token_endpoint: Option<String>,
    /// `jwks_uri`.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// `revocation_endpoint`.
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    /// `introspection_endpoint`.
    #[serde(default)]
    pub introspection_endpoint: Option<String>,
}

/// Why a discovery document is unusable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    /// Not JSON, or members of the wrong type.
    #[error("the discovery document is not valid provider metadata: {0}")]
    Invalid(String),
    /// `issuer` is empty.
    #[error("the discovery document has an empty issuer")]
    EmptyIssuer,
}

/// Parses a discovery document.
pub fn parse(body: &[u8]) -> Result<DiscoveryDocument, DiscoveryError> {
    let document: DiscoveryDocument =
        serde_json::from_slice(body).map_err(|e| DiscoveryError::Invalid(e.to_string()))?;
    if document.issuer.is_empty() {
        return Err(DiscoveryError::EmptyIssuer);
    }
    Ok(document)
}

/// The endpoints in effect, and where explicit values and discovery disagree.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resolution {
    /// Endpoints in effect (explicit values win).
    pub endpoints: ResolvedEndpoints,
    /// Human-readable disagreements, e.g. `issuer: spec "a" vs discovered "b"`.
    pub disagreements: Vec<String>,
}

/// The JWKS URL given explicitly: `spec.certificates.jwksUrl`, else `spec.endpoints.jwks`.
pub fn explicit_jwks_url(spec: &KeyManagerSpec) -> Option<&str> {
    spec.certificates
        .as_ref()
        .and_then(|c| c.jwks_url.as_deref())
        .or_else(|| spec.endpoints.as_ref().and_then(|e| e.jwks.as_deref()))
}

/// Merges the spec's explicit endpoints with a discovery document (if any).
pub fn resolve(spec: &KeyManagerSpec, discovered: Option<&DiscoveryDocument>) -> Resolution {
    let explicit = spec.endpoints.clone().unwrap_or_default();
    let mut disagreements = Vec::new();
    let mut pick = |name: &str, explicit: Option<&str>, found: Option<&str>| {
        if let (Some(e), Some(f)) = (explicit, found)
            && e != f
        {
            disagreements.push(format!("{name}: spec {e:?} vs discovered {f:?}"));
        }
        explicit.or(found).map(str::to_string)
    };
    let endpoints = ResolvedEndpoints {
        issuer: pick(
            "issuer",
            spec.issuer.as_deref(),
            discovered.map(|d| d.issuer.as_str()),
        ),
        token: pick(
            "token endpoint",
            explicit.token.as_deref(),
            discovered.and_then(|d| d.token_endpoint.as_deref()),
        ),
        revoke: pick(
            "revoke endpoint",
            explicit.revoke.as_deref(),
            discovered.and_then(|d| d.revocation_endpoint.as_deref()),
        ),
        jwks: pick(
            "JWKS URL",
            explicit_jwks_url(spec),
            discovered.and_then(|d| d.jwks_uri.as_deref()),
        ),
        introspection: pick(
            "introspection endpoint",
            explicit.introspection.as_deref(),
            discovered.and_then(|d| d.introspection_endpoint.as_deref()),
        ),
    };
    Resolution {
        endpoints,
        disagreements,
    }
}

/// Whether the KeyManager's keys come from PEM rather than a JWKS.
pub fn uses_pem(spec: &KeyManagerSpec) -> bool {
    spec.certificates
        .as_ref()
        .is_some_and(|c| c.type_ == CertificateSource::Pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(value: serde_json::Value) -> KeyManagerSpec {
        serde_json::from_value(value).unwrap()
    }

    fn document() -> DiscoveryDocument {
        parse(
            br#"{"issuer":"https://idp.example","token_endpoint":"https://idp.example/token",
                "jwks_uri":"https://keys.idp.example/jwks","introspection_endpoint":"https://idp.example/introspect",
                "response_types_supported":["code"]}"#,
        )
        .unwrap()
    }

    #[test]
    fn discovery_fills_every_endpoint_not_given() {
        let spec = spec(
            serde_json::json!({"displayName": "IdP", "wellKnownUrl": "https://idp.example/.well-known/openid-configuration"}),
        );
        let resolution = resolve(&spec, Some(&document()));
        assert_eq!(
            resolution.endpoints,
            ResolvedEndpoints {
                issuer: Some("https://idp.example".into()),
                token: Some("https://idp.example/token".into()),
                revoke: None,
                jwks: Some("https://keys.idp.example/jwks".into()),
                introspection: Some("https://idp.example/introspect".into()),
            }
        );
        assert!(resolution.disagreements.is_empty());
    }

    #[test]
    fn explicit_values_win_and_disagreements_are_reported() {
        let spec = spec(serde_json::json!({
            "displayName": "IdP",
            "wellKnownUrl": "https://idp.example/.well-known/openid-configuration",
            "issuer": "https://idp.example/",
            "endpoints": {"token": "https://idp.example/token"},
            "certificates": {"type": "JWKS", "jwksUrl": "https://idp.example/other-jwks"}
        }));
        let resolution = resolve(&spec, Some(&document()));
        assert_eq!(
            resolution.endpoints.issuer.as_deref(),
            Some("https://idp.example/")
        );
        assert_eq!(
            resolution.endpoints.jwks.as_deref(),
            Some("https://idp.example/other-jwks")
        );
        assert_eq!(
            resolution.disagreements,
            vec![
                "issuer: spec \"https://idp.example/\" vs discovered \"https://idp.example\"",
                "JWKS URL: spec \"https://idp.example/other-jwks\" vs discovered \"https://keys.idp.example/jwks\"",
            ]
        );
    }

    #[test]
    fn without_discovery_only_explicit_values_are_used() {
        let spec = spec(serde_json::json!({
            "displayName": "IdP", "issuer": "https://idp.example",
            "endpoints": {"token": "https://idp.example/token", "jwks": "https://idp.example/jwks"}
        }));
        let resolution = resolve(&spec, None);
        assert_eq!(
            resolution.endpoints.jwks.as_deref(),
            Some("https://idp.example/jwks")
        );
        assert_eq!(
            resolution.endpoints.issuer.as_deref(),
            Some("https://idp.example")
        );
    }

    #[test]
    fn documents_without_an_issuer_are_refused() {
        assert!(matches!(
            parse(br#"{"jwks_uri":"https://x"}"#),
            Err(DiscoveryError::Invalid(_))
        ));
        assert_eq!(parse(br#"{"issuer":""}"#), Err(DiscoveryError::EmptyIssuer));
        assert!(matches!(
            parse(br#"{"issuer":"https://x","jwks_uri":42}"#),
            Err(DiscoveryError::Invalid(_))
        ));
    }
}
