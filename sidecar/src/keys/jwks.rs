//! Reading a JWKS document (RFC 7517 §5) fetched from a KeyManager: only public signature
//! keys of supported algorithms are kept; the rest are reported, not used.

use outband_crds::JwsAlgorithm;
use outband_crds::sidecar_config::PublicJwk;
use serde_json::{Map, Value};

use super::KeyError;
use crate::token::json;

/// Why a JWKS document is unusable as a whole.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// Not a JSON object with a `keys` array.
    #[error("not a JWKS document: {0}")]
    Shape(&'static str),
}

/// The keys of a JWKS document: usable JWKs, and skipped ones with why.
#[derive(Debug, Default)]
pub struct ParsedJwks {
    /// Signature keys, ready for [`super::KeySet::build`].
    pub keys: Vec<PublicJwk>,
    /// Keys that were skipped.
    pub skipped: Vec<(Option<String>, KeyError)>,
}

/// Parses a JWKS document strictly (duplicate members refused).
pub fn parse(bytes: &[u8]) -> Result<ParsedJwks, JwksError> {
    let document =
        json::parse_object(bytes).map_err(|_| JwksError::Shape("invalid JSON object"))?;
    let Some(Value::Array(items)) = document.get("keys") else {
        return Err(JwksError::Shape("no keys array"));
    };
    let mut parsed = ParsedJwks::default();
    for item in items {
        let Value::Object(member) = item else {
            parsed
                .skipped
                .push((None, KeyError::UnsupportedType("non-object".into())));
            continue;
        };
        match to_public_jwk(member) {
            Ok(jwk) => parsed.keys.push(jwk),
            Err(err) => parsed.skipped.push((string(member, "kid"), err)),
        }
    }
    Ok(parsed)
}

fn string(member: &Map<String, Value>, name: &str) -> Option<String> {
    member.get(name).and_then(Value::as_str).map(str::to_string)
}

fn to_public_jwk(member: &Map<String, Value>) -> Result<PublicJwk, KeyError> {
    match member.get("use") {
        None => {}
        Some(Value::String(usage)) if usage == "sig" => {}
        Some(_) => return Err(KeyError::NotForSignatures),
    }
    match member.get("key_ops") {
        None => {}
        Some(Value::Array(ops)) if ops.iter().any(|op| op == "verify") => {}
        Some(_) => return Err(KeyError::NotForSignatures),
    }
    let alg = match member.get("alg") {
        None => None,
        Some(Value::String(alg)) => {
            Some(JwsAlgorithm::parse(alg).ok_or(KeyError::NotForSignatures)?)
        }
        Some(_) => return Err(KeyError::BadMember("alg")),
    };
    let kty = match member.get("kty") {
        Some(Value::String(kty)) => kty.clone(),
        _ => return Err(KeyError::BadMember("kty")),
    };
    let text = |name: &'static str| -> Result<Option<String>, KeyError> {
        match member.get(name) {
            None => Ok(None),
            Some(Value::String(value)) => Ok(Some(value.clone())),
            Some(_) => Err(KeyError::BadMember(name)),
        }
    };
    Ok(PublicJwk {
        kty,
        kid: text("kid")?,
        alg,
        n: text("n")?,
        e: text("e")?,
        crv: text("crv")?,
        x: text("x")?,
        y: text("y")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_signature_keys_and_skips_the_rest() {
        let doc = br#"{"keys":[
            {"kty":"EC","kid":"sig","use":"sig","crv":"P-256","x":"AA","y":"AA"},
            {"kty":"RSA","kid":"enc","use":"enc","n":"AA","e":"AQAB"},
            {"kty":"RSA","kid":"oaep","alg":"RSA-OAEP","n":"AA","e":"AQAB"},
            {"kty":"RSA","kid":"wrap","key_ops":["wrapKey"],"n":"AA","e":"AQAB"},
            {"kty":"RSA","kid":"verify","key_ops":["verify"],"n":"AA","e":"AQAB"},
            {"kty":"oct","kid":"hmac","k":"c2VjcmV0"},
            7
        ]}"#;
        let parsed = parse(doc).unwrap();
        let kept: Vec<_> = parsed.keys.iter().map(|k| k.kid.clone().unwrap()).collect();
        assert_eq!(kept, vec!["sig", "verify", "hmac"]);
        let skipped: Vec<_> = parsed.skipped.iter().map(|(kid, _)| kid.clone()).collect();
        assert_eq!(
            skipped,
            vec![
                Some("enc".into()),
                Some("oaep".into()),
                Some("wrap".into()),
                None
            ]
        );
    }

    #[test]
    fn refuses_documents_without_keys() {
        assert!(parse(b"{}").is_err());
        assert!(parse(b"[]").is_err());
        assert!(parse(br#"{"keys":{}}"#).is_err());
        assert!(parse(br#"{"keys":[],"keys":[]}"#).is_err());
    }
}
