//! A JSON Web Key Set (RFC 7517 §5) from an authorization server, checked key by key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use outband_crds::JwsAlgorithm;
use outband_crds::sidecar_config::PublicJwk;
use serde_json::{Map, Value};

use super::{KeyRejection, KeySet, RejectedKey, finish};

/// Most keys accepted from one JWKS document.
pub const MAX_KEYS: usize = 100;
/// Longest `kid` accepted.
pub const MAX_KID_BYTES: usize = 256;

/// Members that only private keys (or symmetric keys) have.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Why a JWKS document as a whole is unusable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// Not JSON.
    #[error("the JWKS is not valid JSON: {0}")]
    NotJson(String),
    /// No `keys` array.
    #[error("the JWKS has no \"keys\" array")]
    NoKeys,
    /// More than [`MAX_KEYS`] keys.
    #[error("the JWKS has {0} keys; at most {MAX_KEYS} are accepted")]
    TooManyKeys(usize),
}

/// Parses a JWKS document and checks every key in it.
pub fn parse_jwks(body: &[u8]) -> Result<KeySet, JwksError> {
    let document: Value =
        serde_json::from_slice(body).map_err(|e| JwksError::NotJson(e.to_string()))?;
    let keys = document
        .get("keys")
        .and_then(Value::as_array)
        .ok_or(JwksError::NoKeys)?;
    if keys.len() > MAX_KEYS {
        return Err(JwksError::TooManyKeys(keys.len()));
    }
    let mut accepted = Vec::new();
    let mut rejected = Vec::new();
    for key in keys {
        match key.as_object() {
            Some(member) => match check_jwk(member) {
                Ok(jwk) => accepted.push(jwk),
                Err(rejection) => rejected.push(RejectedKey {
                    kid: usable_kid(member),
                    rejection,
                }),
            },
            None => rejected.push(RejectedKey {
                kid: None,
                rejection: KeyRejection::Malformed("a key is not a JSON object"),
            }),
        }
    }
    Ok(finish(accepted, rejected))
}

fn usable_kid(jwk: &Map<String, Value>) -> Option<String> {
    jwk.get("kid")
        .and_then(Value::as_str)
        .filter(|kid| kid.len() <= MAX_KID_BYTES)
        .map(str::to_string)
}

/// Checks one JWK and returns its public members.
pub fn check_jwk(jwk: &Map<String, Value>) -> Result<PublicJwk, KeyRejection> {
    if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| jwk.contains_key(**m)) {
        return Err(KeyRejection::PrivateMaterial(member));
    }
    let kty = string_member(jwk, "kty")?.ok_or(KeyRejection::Malformed("kty is missing"))?;
    let kid = match jwk.get("kid") {
        None => None,
        Some(Value::String(kid)) if !kid.is_empty() && kid.len() <= MAX_KID_BYTES => {
            Some(kid.clone())
        }
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
        "RSA" => {
            let n = b64_member(jwk, "n")?;
            let e = b64_member(jwk, "e")?;
            check_rsa(&n, &e)?;
            PublicJwk {
                kty: "RSA".into(),
                kid,
                alg,
                n: Some(URL_SAFE_NO_PAD.encode(strip_leading_zeros(&n))),
                e: Some(URL_SAFE_NO_PAD.encode(strip_leading_zeros(&e))),
                crv: None,
                x: None,
                y: None,
            }
        }
        "EC" => {
            let crv =
                string_member(jwk, "crv")?.ok_or(KeyRejection::Malformed("crv is missing"))?;
            let size = match crv {
                "P-256" => 32,
                "P-384" => 48,
                other => return Err(KeyRejection::UnsupportedCurve(other.to_string())),
            };
            let x = b64_member(jwk, "x")?;
            let y = b64_member(jwk, "y")?;
            if x.len() != size {
                return Err(KeyRejection::BadCoordinate("x"));
            }
            if y.len() != size {
                return Err(KeyRejection::BadCoordinate("y"));
            }
            PublicJwk {
                kty: "EC".into(),
                kid,
                alg,
                n: None,
                e: None,
                crv: Some(crv.to_string()),
                x: Some(URL_SAFE_NO_PAD.encode(x)),
                y: Some(URL_SAFE_NO_PAD.encode(y)),
            }
        }
        "OKP" => {
            let crv =
                string_member(jwk, "crv")?.ok_or(KeyRejection::Malformed("crv is missing"))?;
            if crv != "Ed25519" {
                return Err(KeyRejection::UnsupportedCurve(crv.to_string()));
            }
            let x = b64_member(jwk, "x")?;
            if x.len() != 32 {
                return Err(KeyRejection::BadCoordinate("x"));
            }
            PublicJwk {
                kty: "OKP".into(),
                kid,
                alg,
                n: None,
                e: None,
                crv: Some(crv.to_string()),
                x: Some(URL_SAFE_NO_PAD.encode(x)),
                y: None,
            }
        }
        other => return Err(KeyRejection::UnsupportedKeyType(other.to_string())),
    };
    check_alg_fits(&public)?;
    Ok(public)
}

/// Whether the key's `alg` (if any) belongs to its family (RFC 8725 §3.1).
pub(crate) fn check_alg_fits(jwk: &PublicJwk) -> Result<(), KeyRejection> {
    let Some(alg) = jwk.alg else { return Ok(()) };
    let fits = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("RSA", _) => matches!(
            alg,
            JwsAlgorithm::RS256
                | JwsAlgorithm::RS384
                | JwsAlgorithm::RS512
                | JwsAlgorithm::PS256
                | JwsAlgorithm::PS384
                | JwsAlgorithm::PS512
        ),
        ("EC", Some("P-256")) => alg == JwsAlgorithm::ES256,
        ("EC", Some("P-384")) => alg == JwsAlgorithm::ES384,
        ("OKP", Some("Ed25519")) => alg == JwsAlgorithm::EdDSA,
        _ => false,
    };
    if fits {
        Ok(())
    } else {
        Err(KeyRejection::AlgorithmMismatch {
            alg: alg.as_str().to_string(),
            key: super::key_type(jwk),
        })
    }
}

/// Checks an RSA modulus and exponent (big-endian bytes).
pub(crate) fn check_rsa(n: &[u8], e: &[u8]) -> Result<(), KeyRejection> {
    let bits = modulus_bits(n);
    if bits < 2048 {
        return Err(KeyRejection::WeakRsaModulus(bits));
    }
    if bits > 16384 {
        return Err(KeyRejection::HugeRsaModulus(bits));
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

/// Number of significant bits of a big-endian unsigned integer.
pub(crate) fn modulus_bits(n: &[u8]) -> usize {
    let n = strip_leading_zeros(n);
    match n.first() {
        None => 0,
        Some(first) => (n.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
    }
}

pub(crate) fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// Strict base64url without padding (RFC 7515 §2), as JWK members must be.
pub(crate) fn decode_b64url(value: &str) -> Result<Vec<u8>, base64::DecodeError> {
    URL_SAFE_NO_PAD.decode(value)
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
    decode_b64url(value).map_err(|_| {
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
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn rsa(bits: usize) -> Value {
        let mut n = vec![0xC5u8; bits / 8];
        n[0] = 0xC5;
        json!({"kty": "RSA", "kid": format!("rsa-{bits}"), "n": b64(&n), "e": "AQAB", "use": "sig", "alg": "RS256"})
    }

    fn ec(crv: &str, size: usize) -> Value {
        json!({"kty": "EC", "kid": format!("ec-{crv}"), "crv": crv, "x": b64(&vec![1; size]), "y": b64(&vec![2; size])})
    }

    fn set(keys: Vec<Value>) -> KeySet {
        parse_jwks(json!({ "keys": keys }).to_string().as_bytes()).unwrap()
    }

    fn rejection_of(key: Value) -> KeyRejection {
        let result = set(vec![key]);
        assert!(result.keys.is_empty(), "{result:?}");
        result.rejected[0].rejection.clone()
    }

    #[test]
    fn accepts_rsa_2048_ec_p256_p384_and_ed25519() {
        let result = set(vec![
            rsa(2048),
            ec("P-256", 32),
            ec("P-384", 48),
            json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": b64(&[7; 32]), "alg": "EdDSA"}),
        ]);
        assert!(result.rejected.is_empty(), "{:?}", result.rejected);
        let kids: Vec<_> = result.keys.iter().map(|k| k.kid.clone().unwrap()).collect();
        assert_eq!(kids, ["ec-P-256", "ec-P-384", "ed", "rsa-2048"]);
    }

    #[test]
    fn refuses_rsa_under_2048_bits() {
        assert_eq!(rejection_of(rsa(1024)), KeyRejection::WeakRsaModulus(1024));
    }

    #[test]
    fn refuses_rsa_exponent_one_and_even_exponents() {
        let mut key = rsa(2048);
        key["e"] = json!(b64(&[1]));
        assert_eq!(rejection_of(key.clone()), KeyRejection::BadRsaExponent);
        key["e"] = json!(b64(&[1, 0, 0]));
        assert_eq!(rejection_of(key), KeyRejection::BadRsaExponent);
    }

    #[test]
    fn refuses_p521_and_unknown_curves() {
        assert_eq!(
            rejection_of(ec("P-521", 66)),
            KeyRejection::UnsupportedCurve("P-521".into())
        );
        assert_eq!(
            rejection_of(ec("secp256k1", 32)),
            KeyRejection::UnsupportedCurve("secp256k1".into())
        );
    }

    #[test]
    fn refuses_coordinates_of_the_wrong_length() {
        assert_eq!(
            rejection_of(ec("P-256", 31)),
            KeyRejection::BadCoordinate("x")
        );
    }

    #[test]
    fn refuses_encryption_keys() {
        let mut key = rsa(2048);
        key["use"] = json!("enc");
        assert_eq!(
            rejection_of(key),
            KeyRejection::NotForSignatures("use \"enc\"".into())
        );
        let mut key = rsa(2048);
        key["key_ops"] = json!(["encrypt"]);
        assert!(matches!(
            rejection_of(key),
            KeyRejection::NotForSignatures(_)
        ));
    }

    #[test]
    fn refuses_private_keys_and_symmetric_keys() {
        let mut key = rsa(2048);
        key["d"] = json!("secret");
        assert_eq!(rejection_of(key), KeyRejection::PrivateMaterial("d"));
        assert_eq!(
            rejection_of(json!({"kty": "oct", "k": "c2VjcmV0"})),
            KeyRejection::PrivateMaterial("k")
        );
    }

    #[test]
    fn refuses_an_algorithm_that_does_not_fit_the_key() {
        let mut key = rsa(2048);
        key["alg"] = json!("ES256");
        assert!(matches!(
            rejection_of(key),
            KeyRejection::AlgorithmMismatch { .. }
        ));
        let mut key = ec("P-256", 32);
        key["alg"] = json!("ES384");
        assert!(matches!(
            rejection_of(key),
            KeyRejection::AlgorithmMismatch { .. }
        ));
    }

    #[test]
    fn refuses_hmac_none_and_unknown_algorithms() {
        for alg in ["HS256", "none", "ES512", "RSA-OAEP"] {
            let mut key = rsa(2048);
            key["alg"] = json!(alg);
            assert_eq!(
                rejection_of(key),
                KeyRejection::UnsupportedAlgorithm(alg.into())
            );
        }
    }

    #[test]
    fn refuses_every_key_of_a_duplicated_kid() {
        let mut other = ec("P-256", 32);
        other["kid"] = json!("rsa-2048");
        let result = set(vec![rsa(2048), other, ec("P-384", 48)]);
        assert_eq!(result.keys.len(), 1);
        assert_eq!(result.keys[0].kid.as_deref(), Some("ec-P-384"));
        assert_eq!(
            result.rejected,
            vec![RejectedKey {
                kid: Some("rsa-2048".into()),
                rejection: KeyRejection::DuplicateKid
            }]
        );
    }

    #[test]
    fn refuses_non_string_and_huge_kids() {
        let mut key = rsa(2048);
        key["kid"] = json!(42);
        assert!(matches!(rejection_of(key), KeyRejection::Malformed(_)));
        let mut key = rsa(2048);
        key["kid"] = json!("k".repeat(1000));
        assert!(matches!(rejection_of(key), KeyRejection::Malformed(_)));
    }

    #[test]
    fn refuses_padded_or_standard_alphabet_base64() {
        let mut key = ec("P-256", 32);
        key["x"] = json!(format!("{}=", b64(&[1; 32])));
        assert!(matches!(rejection_of(key), KeyRejection::Malformed(_)));
    }

    #[test]
    fn keeps_only_public_members() {
        let mut key = rsa(2048);
        key["x5c"] = json!(["MIIB..."]);
        key["ext"] = json!(true);
        let result = set(vec![key]);
        let jwk = &result.keys[0];
        assert_eq!(jwk.alg, Some(JwsAlgorithm::RS256));
        assert!(jwk.crv.is_none() && jwk.x.is_none());
    }

    #[test]
    fn order_of_keys_does_not_change_the_result() {
        let a = set(vec![rsa(2048), ec("P-256", 32)]);
        let b = set(vec![ec("P-256", 32), rsa(2048)]);
        assert_eq!(a, b);
    }

    #[test]
    fn documents_without_keys_or_with_too_many_are_refused() {
        assert_eq!(parse_jwks(b"{}"), Err(JwksError::NoKeys));
        assert!(matches!(parse_jwks(b"<html>"), Err(JwksError::NotJson(_))));
        let many: Vec<Value> = (0..=MAX_KEYS).map(|_| rsa(2048)).collect();
        assert_eq!(
            parse_jwks(json!({ "keys": many }).to_string().as_bytes()),
            Err(JwksError::TooManyKeys(MAX_KEYS + 1))
        );
    }

    #[test]
    fn modulus_bits_ignores_leading_zero_bytes() {
        assert_eq!(modulus_bits(&[0, 0, 0x80, 0]), 16);
        assert_eq!(modulus_bits(&[0x01]), 1);
        assert_eq!(modulus_bits(&[]), 0);
    }
}
