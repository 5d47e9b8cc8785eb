//! Token-signing public keys: reading a JWKS or PEM into checked [`PublicJwk`]s.
//!
//! Everything here is pure: bytes in, keys (and the reasons some were refused) out. The
//! checks are the ones `docs/design/jwt-threats.md` asks of the operator: RSA of at least 2048 bits with
//! a sane exponent, EC on P-256 or P-384, Ed25519, `use` = `sig`, no private material, an
//! `alg` consistent with the key, and no duplicate `kid`.
//!
//! [`PublicJwk`]: outband_crds::sidecar_config::PublicJwk

pub mod jwks;
pub mod pem;

use outband_crds::LoadedKey;
use outband_crds::sidecar_config::PublicJwk;

pub use jwks::{JwksError, parse_jwks};
pub use pem::{PemError, parse_pem};

/// Keys that passed every check, and the ones that did not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeySet {
    /// Usable keys, sorted by (kid, kty, modulus or x) so equal sets compare equal.
    pub keys: Vec<PublicJwk>,
    /// Keys that were refused, in document order.
    pub rejected: Vec<RejectedKey>,
}

/// A key that was refused, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedKey {
    /// Its `kid`, if it had a usable one.
    pub kid: Option<String>,
    /// Why it was refused.
    pub rejection: KeyRejection,
}

impl std::fmt::Display for RejectedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kid {
            Some(kid) => write!(f, "kid {kid:?}: {}", self.rejection),
            None => write!(f, "key without kid: {}", self.rejection),
        }
    }
}

/// Why a key was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyRejection {
    /// `kty` is not `RSA`, `EC` or `OKP`.
    #[error("unsupported key type {0:?}")]
    UnsupportedKeyType(String),
    /// RSA modulus under 2048 bits (or absurdly large).
    #[error("RSA modulus of {0} bits; at least 2048 are required")]
    WeakRsaModulus(usize),
    /// RSA modulus above the supported maximum.
    #[error("RSA modulus of {0} bits is larger than the supported 16384")]
    HugeRsaModulus(usize),
    /// RSA exponent of 1, even, or too large.
    #[error("RSA public exponent is not an odd number between 3 and 2^32")]
    BadRsaExponent,
    /// EC or OKP curve not supported.
    #[error("unsupported curve {0:?} (P-256, P-384 and Ed25519 are supported)")]
    UnsupportedCurve(String),
    /// Coordinates of the wrong length for the curve.
    #[error("{0} has the wrong length for the curve")]
    BadCoordinate(&'static str),
    /// `use` is not `sig`, or `key_ops` does not allow `verify`.
    #[error("key is not for signatures ({0})")]
    NotForSignatures(String),
    /// `alg` names an algorithm outside the supported asymmetric set.
    #[error("unsupported algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// `alg` does not fit the key (e.g. ES256 on an RSA key).
    #[error("algorithm {alg} does not fit a {key} key")]
    AlgorithmMismatch {
        /// The key's `alg`.
        alg: String,
        /// The key's type and size or curve.
        key: String,
    },
    /// The JWK carries private key members.
    #[error("the key set publishes private key material ({0}); the key is refused")]
    PrivateMaterial(&'static str),
    /// Another key in the set has the same `kid`.
    #[error("another key has the same kid; all keys with this kid are refused")]
    DuplicateKid,
    /// A member is missing, of the wrong type or not valid base64url.
    #[error("malformed key: {0}")]
    Malformed(&'static str),
}

impl KeyRejection {
    /// A stable, machine-readable name (for Events and metrics).
    pub fn reason(&self) -> &'static str {
        match self {
            KeyRejection::UnsupportedKeyType(_) => "UnsupportedKeyType",
            KeyRejection::WeakRsaModulus(_) => "WeakRsaModulus",
            KeyRejection::HugeRsaModulus(_) => "HugeRsaModulus",
            KeyRejection::BadRsaExponent => "BadRsaExponent",
            KeyRejection::UnsupportedCurve(_) => "UnsupportedCurve",
            KeyRejection::BadCoordinate(_) => "BadCoordinate",
            KeyRejection::NotForSignatures(_) => "NotForSignatures",
            KeyRejection::UnsupportedAlgorithm(_) => "UnsupportedAlgorithm",
            KeyRejection::AlgorithmMismatch { .. } => "AlgorithmMismatch",
            KeyRejection::PrivateMaterial(_) => "PrivateMaterial",
            KeyRejection::DuplicateKid => "DuplicateKid",
            KeyRejection::Malformed(_) => "Malformed",
        }
    }
}

/// The status entry for a key: its id, algorithm and type, never its material.
pub fn describe(jwk: &PublicJwk) -> LoadedKey {
    LoadedKey {
        kid: jwk.kid.clone(),
        alg: jwk.alg.map(|a| a.as_str().to_string()),
        key_type: key_type(jwk),
    }
}

/// `RSA-2048`, `EC-P-256`, `OKP-Ed25519`.
pub fn key_type(jwk: &PublicJwk) -> String {
    match jwk.kty.as_str() {
        "RSA" => {
            let bits = jwk
                .n
                .as_deref()
                .and_then(|n| jwks::decode_b64url(n).ok())
                .map(|n| jwks::modulus_bits(&n))
                .unwrap_or(0);
            format!("RSA-{bits}")
        }
        kty => format!("{kty}-{}", jwk.crv.as_deref().unwrap_or("?")),
    }
}

/// Sorts keys into their canonical order and refuses every key whose `kid` is shared.
pub fn finish(mut keys: Vec<PublicJwk>, mut rejected: Vec<RejectedKey>) -> KeySet {
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for kid in keys.iter().filter_map(|k| k.kid.as_deref()) {
        *counts.entry(kid).or_default() += 1;
    }
    let duplicated: std::collections::BTreeSet<String> = counts
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(kid, _)| kid.to_string())
        .collect();
    if !duplicated.is_empty() {
        keys.retain(|key| !key.kid.as_ref().is_some_and(|kid| duplicated.contains(kid)));
        rejected.extend(duplicated.into_iter().map(|kid| RejectedKey {
            kid: Some(kid),
            rejection: KeyRejection::DuplicateKid,
        }));
    }
    keys.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
    keys.dedup();
    KeySet { keys, rejected }
}

/// Keys as a PEM KeyManager publishes them to the sidecars: without `kid`, in canonical
/// order. A certificate names no key id (the RFC 7638 thumbprint in the status is ours), and
/// the issuer's tokens carry a `kid` of their own, or an `x5t`, or none. Keys without a `kid`
/// of a KeyManager without `jwksRefresh` are pinned: the sidecar tries them whatever the
/// token's `kid` (see `docs/sidecar-config.md`).
pub fn pinned(keys: &[PublicJwk]) -> Vec<PublicJwk> {
    let mut keys: Vec<PublicJwk> = keys
        .iter()
        .cloned()
        .map(|mut key| {
            key.kid = None;
            key
        })
        .collect();
    keys.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
    keys.dedup();
    keys
}

fn sort_key(jwk: &PublicJwk) -> (Option<&str>, &str, Option<&str>, Option<&str>) {
    (
        jwk.kid.as_deref(),
        jwk.kty.as_str(),
        jwk.n.as_deref(),
        jwk.x.as_deref(),
    )
}

/// Key sets for tests elsewhere in the crate.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// A set of P-256 keys with these kids.
    pub fn key_set(kids: &[&str]) -> KeySet {
        let keys = kids
            .iter()
            .map(|kid| PublicJwk {
                kty: "EC".into(),
                kid: Some(kid.to_string()),
                alg: None,
                n: None,
                e: None,
                crv: Some("P-256".into()),
                x: Some("AQ".into()),
                y: Some("Ag".into()),
            })
            .collect();
        finish(keys, Vec::new())
    }
}
