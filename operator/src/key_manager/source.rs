//! Where a KeyManager's discovery document and keys come from, and fetching them.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client};
use outband_crds::{KeyManagerSpec, PemSourceKind};

use crate::discovery::{self, DiscoveryDocument, DiscoveryError, Resolution};
use outband_idp::fetch::{FetchError, Fetcher, Target};
use outband_idp::jwks::{self, JwksError};
use outband_idp::pem::PemError;

use super::state::{Fetched, KeyOrigin};

/// Why a KeyManager's discovery document or keys could not be obtained.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// Fetching the discovery document failed.
    #[error("discovery failed: {0}")]
    Discovery(FetchError),
    /// The discovery document is unusable.
    #[error("{0}")]
    DiscoveryDocument(DiscoveryError),
    /// No JWKS URL is known.
    #[error(
        "no JWKS URL: set spec.certificates.jwksUrl or spec.endpoints.jwks, or a spec.wellKnownUrl whose document has a jwks_uri"
    )]
    NoJwksUrl,
    /// Fetching the JWKS failed.
    #[error("JWKS fetch failed: {0}")]
    Jwks(FetchError),
    /// The JWKS is unusable.
    #[error("{0}")]
    JwksDocument(JwksError),
    /// The PEM is unusable.
    #[error("spec.certificates: {0}")]
    Pem(PemError),
    /// The Secret or ConfigMap holding the PEM cannot be read.
    #[error("spec.certificates.pemFrom: {0}")]
    PemSource(String),
    /// Every key was refused.
    #[error("no usable key: {}", .0.join("; "))]
    NoUsableKeys(Vec<String>),
}

impl SourceError {
    /// Stable CamelCase reason (conditions, Events).
    pub fn reason(&self) -> &'static str {
        match self {
            SourceError::Discovery(_) => "DiscoveryFailed",
            SourceError::DiscoveryDocument(_) => "InvalidDiscoveryDocument",
            SourceError::NoJwksUrl => "NoJwksUrl",
            SourceError::Jwks(_) => "JwksFetchFailed",
            SourceError::JwksDocument(_) => "InvalidJwks",
            SourceError::Pem(_) => "InvalidPem",
            SourceError::PemSource(_) => "PemSourceUnavailable",
            SourceError::NoUsableKeys(_) => "NoUsableKeys",
        }
    }

    /// The `result` label of the fetch metrics: the transport reason for fetch failures.
    pub fn metric_result(&self) -> &'static str {
        match self {
            SourceError::Discovery(e) | SourceError::Jwks(e) => e.reason(),
            other => other.reason(),
        }
    }

    /// Every `result` of `jwks_fetches_total` a KeyManager's key refreshes can report:
    /// `success` and the failures of its source (PEM, or discovery and JWKS).
    pub fn key_results(pem: bool) -> Vec<&'static str> {
        let mut results = vec!["success"];
        if pem {
            results.extend(["InvalidPem", "PemSourceUnavailable"]);
        } else {
            results.extend(FetchError::REASONS);
            results.extend(["InvalidDiscoveryDocument", "NoJwksUrl", "InvalidJwks"]);
        }
        results.push("NoUsableKeys");
        results
    }

    /// Every `result` of `discovery_fetches_total`.
    pub fn discovery_results() -> Vec<&'static str> {
        let mut results = vec!["success"];
        results.extend(FetchError::REASONS);
        results.push("InvalidDiscoveryDocument");
        results
    }
}

/// Fetches discovery documents and keys for KeyManagers.
#[derive(Clone)]
pub struct Sources {
    fetcher: Fetcher,
    client: Client,
}

/// The request settings of a KeyManager for `url`.
pub fn target(spec: &KeyManagerSpec, url: &str) -> Target {
    Target {
        url: url.to_string(),
        ca_bundle: spec.connection.ca_bundle.clone(),
        allow_loopback: spec.connection.allow_loopback,
        timeout: Duration::from_secs(u64::from(spec.connection.timeout_seconds.clamp(1, 60))),
    }
}

impl Sources {
    /// Sources using `fetcher` for HTTP and `client` for Secrets and ConfigMaps.
    pub fn new(fetcher: Fetcher, client: Client) -> Sources {
        Sources { fetcher, client }
    }

    /// Fetches and parses the discovery document at `url`.
    pub async fn discover(
        &self,
        spec: &KeyManagerSpec,
        url: &str,
    ) -> Result<DiscoveryDocument, SourceError> {
        let fetched = self
            .fetcher
            .get(&target(spec, url))
            .await
            .map_err(SourceError::Discovery)?;
        discovery::parse(&fetched.body).map_err(SourceError::DiscoveryDocument)
    }

    /// Obtains the keys: PEM (inline or from a Secret/ConfigMap) or the JWKS URL in effect.
    pub async fn keys(
        &self,
        spec: &KeyManagerSpec,
        resolution: &Resolution,
    ) -> Result<Fetched, SourceError> {
        if discovery::uses_pem(spec) {
            let certificates = spec.certificates.as_ref();
            let pem = match (
                certificates.and_then(|c| c.pem.clone()),
                certificates.and_then(|c| c.pem_from.clone()),
            ) {
                (Some(pem), _) => pem,
                (None, Some(from)) => self.read_pem(&from).await?,
                (None, None) => return Err(SourceError::Pem(PemError::Empty)),
            };
            let set = outband_idp::pem::parse(&pem).map_err(SourceError::Pem)?;
            return Ok(Fetched {
                set,
                origin: KeyOrigin::Pem,
                jwks_url: None,
                freshness: None,
            });
        }
        let url = resolution
            .endpoints
            .jwks
            .clone()
            .ok_or(SourceError::NoJwksUrl)?;
        let fetched = self
            .fetcher
            .get(&target(spec, &url))
            .await
            .map_err(SourceError::Jwks)?;
        let set = jwks::parse(&fetched.body).map_err(SourceError::JwksDocument)?;
        Ok(Fetched {
            set,
            origin: KeyOrigin::Jwks,
            jwks_url: Some(url),
            freshness: outband_idp::fetch::cache_control::freshness(
                fetched.cache_control.as_deref(),
                fetched.age.as_deref(),
            ),
        })
    }

    async fn read_pem(&self, from: &outband_crds::PemSource) -> Result<String, SourceError> {
        let what = format!("{:?} {}/{}", from.kind, from.namespace, from.name);
        let missing_key = || SourceError::PemSource(format!("{what} has no key {:?}", from.key));
        let unreadable =
            |e: kube::Error| SourceError::PemSource(format!("cannot read {what}: {e}"));
        let bytes = match from.kind {
            PemSourceKind::Secret => {
                let secret = Api::<Secret>::namespaced(self.client.clone(), &from.namespace)
                    .get(&from.name)
                    .await
                    .map_err(unreadable)?;
                secret
                    .data
                    .and_then(|mut d| d.remove(&from.key))
                    .map(|b| b.0)
                    .ok_or_else(missing_key)?
            }
            PemSourceKind::ConfigMap => {
                let cm = Api::<ConfigMap>::namespaced(self.client.clone(), &from.namespace)
                    .get(&from.name)
                    .await
                    .map_err(unreadable)?;
                match cm.data.and_then(|mut d| d.remove(&from.key)) {
                    Some(text) => text.into_bytes(),
                    None => cm
                        .binary_data
                        .and_then(|mut d| d.remove(&from.key))
                        .map(|b| b.0)
                        .ok_or_else(missing_key)?,
                }
            }
        };
        String::from_utf8(bytes).map_err(|_| {
            SourceError::PemSource(format!("{what} key {:?} is not UTF-8 PEM", from.key))
        })
    }
}
