//! The one validator of public signature keys, with one set of limits. The operator runs it
//! before it publishes a key, the sidecar before it uses one (inlined by the operator, or
//! fetched itself): a key is accepted by both or by neither.
//!
//! Accepted: RSA moduli of [`MIN_RSA_BITS`] to [`MAX_RSA_BITS`] bits (odd, with an odd
//! exponent from 3 to 2³²−1), ECDSA on P-256 and P-384 with the point on its curve, Ed25519
//! with a valid point, a `kid` of at most [`MAX_KID_BYTES`], and an `alg` (when the JWK pins
//! one) of the key's family. From a raw JWK (a JWKS document), also: `use` = `sig` and
//! `key_ops` with `verify` when present, a supported `alg`, and no private members.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ED25519};
use aws_lc_rs::signature::{ParsedPublicKey, VerificationAlgorithm};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use outband_crds::jwk::{Base64Url, EcCurve, EcJwk, OkpCurve, OkpJwk, PublicJwk, RsaJwk};
use outband_crds::{JwsAlgorithm, LoadedKey};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Smallest accepted RSA modulus.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest accepted RSA modulus (as OpenSSL's limit; the sidecar verifies up to it).
pub const MAX_RSA_BITS: usize = 16384;
/// Longest accepted `kid`, in bytes.
pub const MAX_KID_BYTES: usize = 256;

/// Members that only private keys (or symmetric keys) have.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Why a key is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyRejection {
    /// `kty` is not `RSA`, `EC` or `OKP`.
    #[error("unsupported key type {0:?}")]
    UnsupportedKeyType(String),
    /// RSA modulus under [`MIN_RSA_BITS`].
    #[error("RSA modulus of {0} bits; at least {MIN_RSA_BITS} are required")]
    WeakRsaModulus(usize),
    /// RSA modulus above [`MAX_RSA_BITS`].
    #[error("RSA modulus of {0} bits is larger than the supported {MAX_RSA_BITS}")]
    HugeRsaModulus(usize),
    /// An even RSA modulus (never the product of two odd primes).
    #[error("RSA modulus is even")]
    EvenRsaModulus,
    /// RSA exponent of 1, even, or too large.
    #[error("RSA public exponent is not an odd number between 3 and 2^32")]
    BadRsaExponent,
    /// EC or OKP curve not supported.
    #[error("unsupported curve {0:?} (P-256, P-384 and Ed25519 are supported)")]
    UnsupportedCurve(String),
    /// Coordinates of the wrong length for the curve.
    #[error("{0} has the wrong length for the curve")]
    BadCoordinate(&'static str),
    /// The point is not on the curve.
    #[error("the public point is not on the curve")]
    PointNotOnCurve,
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
    /// A stable, machine-readable name (Events, metrics, logs).
    pub fn reason(&self) -> &'static str {
        match self {
            KeyRejection::UnsupportedKeyType(_) => "UnsupportedKeyType",
            KeyRejection::WeakRsaModulus(_) => "WeakRsaModulus",
            KeyRejection::HugeRsaModulus(_) => "HugeRsaModulus",
            KeyRejection::EvenRsaModulus => "EvenRsaModulus",
            KeyRejection::BadRsaExponent => "BadRsaExponent",
            KeyRejection::UnsupportedCurve(_) => "UnsupportedCurve",
            KeyRejection::BadCoordinate(_) => "BadCoordinate",
            KeyRejection::PointNotOnCurve => "PointNotOnCurve",
            KeyRejection::NotForSignatures(_) => "NotForSignatures",
            KeyRejection::UnsupportedAlgorithm(_) => "UnsupportedAlgorithm",
            KeyRejection::AlgorithmMismatch { .. } => "AlgorithmMismatch",
            KeyRejection::PrivateMaterial(_) => "PrivateMaterial",
            KeyRejection::DuplicateKid => "DuplicateKid",
            KeyRejection::Malformed(_) => "Malformed",
        }
    }
}

/// What a key is, which decides the algorithms it can verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA with a modulus of this many bits.
    Rsa {
        /// Modulus size.
        bits: usize,
    },
    /// ECDSA on P-256.
    P256,
    /// ECDSA on P-384.
    P384,
    /// Ed25519.
    Ed25519,
}

impl KeyKind {
    /// The kind of `jwk`.
    pub fn of(jwk: &PublicJwk) -> KeyKind {
        match jwk {
            PublicJwk::Rsa(key) => KeyKind::Rsa {
                bits: modulus_bits(key.n.as_bytes()),
            },
            PublicJwk::Ec(key) => match key.crv {
                EcCurve::P256 => KeyKind::P256,
                EcCurve::P384 => KeyKind::P384,
            },
            PublicJwk::Okp(key) => match key.crv {
                OkpCurve::Ed25519 => KeyKind::Ed25519,
            },
        }
    }

    /// Whether this kind of key can verify `alg` (RFC 8725 §3.1: one family per key).
    pub fn fits(self, alg: JwsAlgorithm) -> bool {
        use JwsAlgorithm::*;
        match self {
            KeyKind::Rsa { .. } => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            KeyKind::P256 => alg == ES256,
            KeyKind::P384 => alg == ES384,
            KeyKind::Ed25519 => alg == EdDSA,
        }
    }

    /// The exact length of a signature by this key.
    pub fn signature_len(self) -> usize {
        match self {
            KeyKind::Rsa { bits } => bits.div_ceil(8),
            KeyKind::P256 | KeyKind::Ed25519 => 64,
            KeyKind::P384 => 96,
        }
    }

    /// `RSA-2048`, `EC-P-256`, `OKP-Ed25519`: how the KeyManager's status and `explain`
    /// name it.
    pub fn label(self) -> String {
        match self {
            KeyKind::Rsa { bits } => format!("RSA-{bits}"),
            KeyKind::P256 => "EC-P-256".into(),
            KeyKind::P384 => "EC-P-384".into(),
            KeyKind::Ed25519 => "OKP-Ed25519".into(),
        }
    }
}

/// Checks a typed key against every rule of this module. Pure; the EC and Ed25519 points
/// are parsed (with aws-lc-rs) to prove they are on their curve.
pub fn check(jwk: &PublicJwk) -> Result<(), KeyRejection> {
    if let Some(kid) = jwk.kid()
        && (kid.is_empty() || kid.len() > MAX_KID_BYTES)
    {
        return Err(KeyRejection::Malformed(
            "kid is not a string of 1 to 256 bytes",
        ));
    }
    match jwk {
        PublicJwk::Rsa(key) => check_rsa(key.n.as_bytes(), key.e.as_bytes())?,
        PublicJwk::Ec(key) => {
            let len = key.crv.coordinate_len();
            if key.x.as_bytes().len() != len {
                return Err(KeyRejection::BadCoordinate("x"));
            }
            if key.y.as_bytes().len() != len {
                return Err(KeyRejection::BadCoordinate("y"));
            }
            let algorithm: &'static dyn VerificationAlgorithm = match key.crv {
                EcCurve::P256 => &ECDSA_P256_SHA256_FIXED,
                EcCurve::P384 => &ECDSA_P384_SHA384_FIXED,
            };
            ParsedPublicKey::new(algorithm, ec_point(key))
                .map_err(|_| KeyRejection::PointNotOnCurve)?;
        }
        PublicJwk::Okp(key) => {
            if key.x.as_bytes().len() != 32 {
                return Err(KeyRejection::BadCoordinate("x"));
            }
            ParsedPublicKey::new(&ED25519, key.x.as_bytes())
                .map_err(|_| KeyRejection::PointNotOnCurve)?;
        }
    }
    if let Some(alg) = jwk.alg() {
        let kind = KeyKind::of(jwk);
        if !kind.fits(alg) {
            return Err(KeyRejection::AlgorithmMismatch {
                alg: alg.as_str().to_string(),
                key: kind.label(),
            });
        }
    }
    Ok(())
}

/// The uncompressed SEC1 point `0x04 || x || y` of an EC key.
pub fn ec_point(key: &EcJwk) -> Vec<u8> {
    let mut point = Vec::with_capacity(1 + key.x.as_bytes().len() + key.y.as_bytes().len());
    point.push(0x04);
    point.extend_from_slice(key.x.as_bytes());
    point.extend_from_slice(key.y.as_bytes());
    point
}

/// Checks an RSA modulus and exponent (big-endian bytes).
pub fn check_rsa(n: &[u8], e: &[u8]) -> Result<(), KeyRejection> {
    let bits = modulus_bits(n);
    if bits < MIN_RSA_BITS {
        return Err(KeyRejection::WeakRsaModulus(bits));
    }
    if bits > MAX_RSA_BITS {
        return Err(KeyRejection::HugeRsaModulus(bits));
    }
    if n.last().is_some_and(|low| low % 2 == 0) {
        return Err(KeyRejection::EvenRsaModulus);
    }
    let e = strip_leading_zeros(e);
    if e.is_empty() || e.len() > 4 {
        return Err(KeyRejection::BadRsaExponent);
    }
    let value = e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    if value < 3 || value % 2 == 0 {
        return Err(KeyRejection::BadRsaExponent);
    }
    Ok(())
}

/// Reads one raw JWK of a JWKS document into a typed key, and [`check`]s it. Only public
/// members are kept; RSA integers lose their leading zero bytes.
pub fn from_json(jwk: &Map<String, Value>) -> Result<PublicJwk, KeyRejection> {
    if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| jwk.contains_key(**m)) {
        return Err(KeyRejection::PrivateMaterial(member));
    }
    let kty = string_member(jwk, "kty")?.ok_or(KeyRejection::Malformed("kty is missing"))?;
    let kid = match jwk.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => {
            return Err(KeyRejection::Malformed(
                "kid is not a string of 1 to 256 bytes",
            ));
        }
    };
    if let Some(use_) = string_member(jwk, "use")?
        && use_ != "sig"
    {
        return Err(KeyRejection::NotForSignatures(format!("use {use_:?}")));
    }
    if let Some(ops) = jwk.get("key_ops") {
        let allows_verify = ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")));
        if !allows_verify {
            return Err(KeyRejection::NotForSignatures(
                "key_ops without \"verify\"".into(),
            ));
        }
    }
    let alg = match string_member(jwk, "alg")? {
        None => None,
        Some(alg) => Some(
            JwsAlgorithm::parse(alg)
                .ok_or_else(|| KeyRejection::UnsupportedAlgorithm(alg.to_string()))?,
        ),
    };
    let public = match kty {
        "RSA" => PublicJwk::Rsa(RsaJwk {
            kid,
            alg,
            n: strip_leading_zeros(&b64_member(jwk, "n")?).into(),
            e: strip_leading_zeros(&b64_member(jwk, "e")?).into(),
        }),
        "EC" => {
            let crv = match string_member(jwk, "crv")? {
                Some("P-256") => EcCurve::P256,
                Some("P-384") => EcCurve::P384,
                Some(other) => return Err(KeyRejection::UnsupportedCurve(other.to_string())),
                None => return Err(KeyRejection::Malformed("crv is missing")),
            };
            PublicJwk::Ec(EcJwk {
                kid,
                alg,
                crv,
                x: b64_member(jwk, "x")?.into(),
                y: b64_member(jwk, "y")?.into(),
            })
        }
        "OKP" => {
            match string_member(jwk, "crv")? {
                Some("Ed25519") => {}
                Some(other) => return Err(KeyRejection::UnsupportedCurve(other.to_string())),
                None => return Err(KeyRejection::Malformed("crv is missing")),
            }
            PublicJwk::Okp(OkpJwk {
                kid,
                alg,
                crv: OkpCurve::Ed25519,
                x: b64_member(jwk, "x")?.into(),
            })
        }
        other => return Err(KeyRejection::UnsupportedKeyType(other.to_string())),
    };
    check(&public)?;
    Ok(public)
}

/// Number of significant bits of a big-endian unsigned integer.
pub fn modulus_bits(n: &[u8]) -> usize {
    let n = strip_leading_zeros(n);
    match n.first() {
        None => 0,
        Some(first) => (n.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
    }
}

/// `bytes` without leading zero bytes.
pub fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// The RFC 7638 JWK thumbprint (SHA-256 over the required members in lexicographic order,
/// base64url).
pub fn thumbprint(jwk: &PublicJwk) -> String {
    let canonical = match jwk {
        PublicJwk::Rsa(key) => format!(
            r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
            key.e.encode(),
            key.n.encode()
        ),
        PublicJwk::Ec(key) => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            key.crv.as_str(),
            key.x.encode(),
            key.y.encode()
        ),
        PublicJwk::Okp(key) => format!(
            r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#,
            key.crv.as_str(),
            key.x.encode()
        ),
    };
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The status entry for a key: its id, algorithm and type, never its material.
pub fn describe(jwk: &PublicJwk) -> LoadedKey {
    LoadedKey {
        kid: jwk.kid().map(str::to_string),
        alg: jwk.alg().map(|a| a.as_str().to_string()),
        key_type: KeyKind::of(jwk).label(),
    }
}

fn string_member<'a>(
    jwk: &'a Map<String, Value>,
    name: &'static str,
) -> Result<Option<&'a str>, KeyRejection> {
    match jwk.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(KeyRejection::Malformed(match name {
            "kty" => "kty is not a string",
            "use" => "use is not a string",
            "alg" => "alg is not a string",
            "crv" => "crv is not a string",
            _ => "a member is not a string",
        })),
    }
}

fn b64_member(jwk: &Map<String, Value>, name: &'static str) -> Result<Vec<u8>, KeyRejection> {
    let value = string_member(jwk, name)?.ok_or(KeyRejection::Malformed(match name {
        "n" => "n is missing",
        "e" => "e is missing",
        "x" => "x is missing",
        "y" => "y is missing",
        _ => "a key member is missing",
    }))?;
    Base64Url::decode(value).map(|b| b.0).map_err(|_| {
        KeyRejection::Malformed(match name {
            "n" => "n is not base64url",
            "e" => "e is not base64url",
            "x" => "x is not base64url",
            "y" => "y is not base64url",
            _ => "a key member is not base64url",
        })
    })
}

#[cfg(test)]
mod tests;
