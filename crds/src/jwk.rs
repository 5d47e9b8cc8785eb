//! A public JSON Web Key (RFC 7517) as the operator publishes it and the sidecar reads it:
//! typed by `kty`, with its members decoded, so neither end handles key material as loose
//! strings. Only the *shape* is enforced here (a known key type and curve, strict base64url
//! members); whether a key is acceptable — sizes, exponent, the point on its curve, `alg`
//! fitting the key — is decided by one validator, `outband_idp::jwk::check`, which both the
//! operator and the sidecar call.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::JwsAlgorithm;

/// A public signature key, by key type. Serialized with `kty` first, then the members of
/// its type (`{"kty":"RSA","kid":…,"alg":…,"n":…,"e":…}`); members of other key types, and
/// members the reader does not know, are ignored when reading.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(tag = "kty")]
pub enum PublicJwk {
    /// An RSA public key.
    #[serde(rename = "RSA")]
    Rsa(RsaJwk),
    /// An elliptic-curve public key (ECDSA).
    #[serde(rename = "EC")]
    Ec(EcJwk),
    /// An octet key pair public key (EdDSA).
    #[serde(rename = "OKP")]
    Okp(OkpJwk),
}

/// The members of an RSA key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub struct RsaJwk {
    /// Key id, as the JWKS gives it. Absent for PEM keys and for JWKS keys without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// The one algorithm the key may be used with (RFC 8725 §3.1); absent: any allowed
    /// algorithm of its family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<JwsAlgorithm>,
    /// The modulus, big-endian, without leading zero bytes.
    pub n: Base64Url,
    /// The public exponent, big-endian, without leading zero bytes.
    pub e: Base64Url,
}

/// The members of an elliptic-curve key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub struct EcJwk {
    /// Key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// The one algorithm the key may be used with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<JwsAlgorithm>,
    /// The curve.
    pub crv: EcCurve,
    /// The x coordinate.
    pub x: Base64Url,
    /// The y coordinate.
    pub y: Base64Url,
}

/// The members of an octet key pair (Ed25519) key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub struct OkpJwk {
    /// Key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// The one algorithm the key may be used with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<JwsAlgorithm>,
    /// The curve.
    pub crv: OkpCurve,
    /// The public key.
    pub x: Base64Url,
}

/// A curve of ECDSA keys.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EcCurve {
    /// NIST P-256 (ES256).
    #[serde(rename = "P-256")]
    P256,
    /// NIST P-384 (ES384).
    #[serde(rename = "P-384")]
    P384,
}

impl EcCurve {
    /// The JWK `crv` value.
    pub fn as_str(self) -> &'static str {
        match self {
            EcCurve::P256 => "P-256",
            EcCurve::P384 => "P-384",
        }
    }

    /// Length of one coordinate, in bytes.
    pub fn coordinate_len(self) -> usize {
        match self {
            EcCurve::P256 => 32,
            EcCurve::P384 => 48,
        }
    }
}

/// A curve of octet key pair keys.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OkpCurve {
    /// Ed25519 (EdDSA).
    Ed25519,
}

impl OkpCurve {
    /// The JWK `crv` value.
    pub fn as_str(self) -> &'static str {
        match self {
            OkpCurve::Ed25519 => "Ed25519",
        }
    }
}

impl PublicJwk {
    /// The key type: `RSA`, `EC` or `OKP`.
    pub fn kty(&self) -> &'static str {
        match self {
            PublicJwk::Rsa(_) => "RSA",
            PublicJwk::Ec(_) => "EC",
            PublicJwk::Okp(_) => "OKP",
        }
    }

    /// The key id, if any.
    pub fn kid(&self) -> Option<&str> {
        match self {
            PublicJwk::Rsa(key) => key.kid.as_deref(),
            PublicJwk::Ec(key) => key.kid.as_deref(),
            PublicJwk::Okp(key) => key.kid.as_deref(),
        }
    }

    /// Sets or removes the key id.
    pub fn set_kid(&mut self, kid: Option<String>) {
        match self {
            PublicJwk::Rsa(key) => key.kid = kid,
            PublicJwk::Ec(key) => key.kid = kid,
            PublicJwk::Okp(key) => key.kid = kid,
        }
    }

    /// The algorithm the key is pinned to, if any.
    pub fn alg(&self) -> Option<JwsAlgorithm> {
        match self {
            PublicJwk::Rsa(key) => key.alg,
            PublicJwk::Ec(key) => key.alg,
            PublicJwk::Okp(key) => key.alg,
        }
    }

    /// The canonical order of keys in a config: by `kid`, then key type, then the modulus
    /// or the x coordinate, so equal key sets give equal bytes.
    pub fn canonical_order(&self) -> (Option<&str>, &'static str, &[u8]) {
        let material = match self {
            PublicJwk::Rsa(key) => key.n.as_bytes(),
            PublicJwk::Ec(key) => key.x.as_bytes(),
            PublicJwk::Okp(key) => key.x.as_bytes(),
        };
        (self.kid(), self.kty(), material)
    }
}

/// Bytes carried as base64url without padding (RFC 7515 §2), decoded strictly: padding, the
/// standard alphabet and non-zero trailing bits are refused.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Base64Url(pub Vec<u8>);

impl Base64Url {
    /// The decoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Decodes `text` strictly.
    pub fn decode(text: &str) -> Result<Base64Url, base64::DecodeError> {
        URL_SAFE_NO_PAD.decode(text).map(Base64Url)
    }

    /// The base64url text.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.0)
    }
}

impl From<Vec<u8>> for Base64Url {
    fn from(bytes: Vec<u8>) -> Base64Url {
        Base64Url(bytes)
    }
}

impl From<&[u8]> for Base64Url {
    fn from(bytes: &[u8]) -> Base64Url {
        Base64Url(bytes.to_vec())
    }
}

impl fmt::Debug for Base64Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Base64Url({})", self.encode())
    }
}

impl Serialize for Base64Url {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.encode())
    }
}

impl<'de> Deserialize<'de> for Base64Url {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Base64Url, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Base64Url::decode(&text)
            .map_err(|err| serde::de::Error::custom(format!("not strict base64url: {err}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn serializes_with_kty_first_and_only_its_members() {
        let key = PublicJwk::Ec(EcJwk {
            kid: Some("k1".into()),
            alg: Some(JwsAlgorithm::ES256),
            crv: EcCurve::P256,
            x: vec![1; 32].into(),
            y: vec![2; 32].into(),
        });
        let text = serde_json::to_string(&key).unwrap();
        assert!(text.starts_with(r#"{"kty":"EC","kid":"k1","alg":"ES256","crv":"P-256","x":"#));
        assert_eq!(serde_json::from_str::<PublicJwk>(&text).unwrap(), key);
    }

    #[test]
    fn unknown_key_types_and_curves_do_not_parse() {
        for jwk in [
            json!({"kty": "oct", "k": "c2VjcmV0"}),
            json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}),
            json!({"kty": "OKP", "crv": "X25519", "x": "AA"}),
            json!({"kty": "RSA", "n": "AQAB"}),
        ] {
            assert!(
                serde_json::from_value::<PublicJwk>(jwk.clone()).is_err(),
                "{jwk}"
            );
        }
    }

    #[test]
    fn members_must_be_strict_base64url() {
        for n in ["AQAB=", "AQ+B", "AQ/B", "AQ B"] {
            let jwk = json!({"kty": "RSA", "n": n, "e": "AQAB"});
            assert!(serde_json::from_value::<PublicJwk>(jwk).is_err(), "{n}");
        }
    }

    #[test]
    fn unknown_members_are_ignored() {
        let jwk: PublicJwk = serde_json::from_value(
            json!({"kty": "RSA", "n": "AQAB", "e": "AQAB", "x5t": "abc", "use": "sig"}),
        )
        .unwrap();
        assert_eq!(jwk.kty(), "RSA");
    }
}
