//! A JSON Web Key Set (RFC 7517 §5) from an identity provider, checked key by key with
//! [`jwk::from_json`]: what the operator publishes and what the sidecar fetches itself are
//! read by this one parser.

use outband_crds::jwk::PublicJwk;
use serde_json::{Map, Value};

use crate::json;
use crate::jwk::{self, KeyRejection, MAX_KID_BYTES};

/// Most keys accepted from one JWKS document.
pub const MAX_KEYS: usize = 100;

/// Why a JWKS document as a whole is unusable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// Not a strict JSON object (duplicate members are refused).
    #[error("the JWKS is not a valid JSON object: {0}")]
    NotJson(json::JsonError),
    /// No `keys` array.
    #[error("the JWKS has no \"keys\" array")]
    NoKeys,
    /// More than [`MAX_KEYS`] keys.
    #[error("the JWKS has {0} keys; at most {MAX_KEYS} are accepted")]
    TooManyKeys(usize),
}

/// Keys that passed every check, and the ones that did not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeySet {
    /// Usable keys, in canonical order ([`PublicJwk::canonical_order`]) so equal sets
    /// compare equal.
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

/// Parses a JWKS document and checks every key in it.
pub fn parse(body: &[u8]) -> Result<KeySet, JwksError> {
    let document = json::parse_object(body).map_err(JwksError::NotJson)?;
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
            Some(member) => match jwk::from_json(member) {
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

/// Sorts keys into their canonical order and refuses every key whose `kid` is shared
/// (a `kid` that names two keys names none).
pub fn finish(mut keys: Vec<PublicJwk>, mut rejected: Vec<RejectedKey>) -> KeySet {
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for kid in keys.iter().filter_map(PublicJwk::kid) {
        *counts.entry(kid).or_default() += 1;
    }
    let duplicated: std::collections::BTreeSet<String> = counts
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(kid, _)| kid.to_string())
        .collect();
    if !duplicated.is_empty() {
        keys.retain(|key| !key.kid().is_some_and(|kid| duplicated.contains(kid)));
        rejected.extend(duplicated.into_iter().map(|kid| RejectedKey {
            kid: Some(kid),
            rejection: KeyRejection::DuplicateKid,
        }));
    }
    keys.sort_by(|a, b| a.canonical_order().cmp(&b.canonical_order()));
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
            key.set_kid(None);
            key
        })
        .collect();
    keys.sort_by(|a, b| a.canonical_order().cmp(&b.canonical_order()));
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn rsa(bits: usize) -> Value {
        let mut n = vec![0xC5u8; bits / 8];
        n[0] = 0xC5;
        json!({"kty": "RSA", "kid": format!("rsa-{bits}"), "n": b64(&n), "e": "AQAB", "use": "sig", "alg": "RS256"})
    }

    fn set(keys: Vec<Value>) -> KeySet {
        parse(json!({ "keys": keys }).to_string().as_bytes()).unwrap()
    }

    #[test]
    fn keeps_signature_keys_and_reports_the_rest() {
        let mut enc = rsa(2048);
        enc["kid"] = json!("enc");
        enc["use"] = json!("enc");
        let result = set(vec![
            rsa(2048),
            enc,
            json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}),
            json!(7),
        ]);
        let kept: Vec<_> = result.keys.iter().map(|k| k.kid().unwrap()).collect();
        assert_eq!(kept, ["rsa-2048"]);
        let rejected: Vec<_> = result
            .rejected
            .iter()
            .map(|r| (r.kid.as_deref(), r.rejection.reason()))
            .collect();
        assert_eq!(
            rejected,
            [
                (Some("enc"), "NotForSignatures"),
                (Some("hmac"), "PrivateMaterial"),
                (None, "Malformed"),
            ]
        );
    }

    #[test]
    fn refuses_every_key_of_a_duplicated_kid() {
        let mut twin = rsa(2048);
        twin["n"] = json!(b64(&[0xC7; 256]));
        let other = rsa(4096);
        let result = set(vec![rsa(2048), twin, other]);
        assert_eq!(result.keys.len(), 1);
        assert_eq!(result.keys[0].kid(), Some("rsa-4096"));
        assert_eq!(
            result.rejected,
            vec![RejectedKey {
                kid: Some("rsa-2048".into()),
                rejection: KeyRejection::DuplicateKid
            }]
        );
    }

    #[test]
    fn order_of_keys_does_not_change_the_result() {
        assert_eq!(
            set(vec![rsa(2048), rsa(3072)]),
            set(vec![rsa(3072), rsa(2048)])
        );
    }

    #[test]
    fn documents_without_keys_with_duplicate_members_or_too_many_keys_are_refused() {
        assert_eq!(parse(b"{}"), Err(JwksError::NoKeys));
        assert_eq!(parse(br#"{"keys":{}}"#), Err(JwksError::NoKeys));
        assert!(matches!(parse(b"<html>"), Err(JwksError::NotJson(_))));
        assert!(matches!(parse(b"[]"), Err(JwksError::NotJson(_))));
        assert!(matches!(
            parse(br#"{"keys":[],"keys":[]}"#),
            Err(JwksError::NotJson(json::JsonError::DuplicateMember))
        ));
        let many: Vec<Value> = (0..=MAX_KEYS).map(|_| rsa(2048)).collect();
        assert_eq!(
            parse(json!({ "keys": many }).to_string().as_bytes()),
            Err(JwksError::TooManyKeys(MAX_KEYS + 1))
        );
    }

    #[test]
    fn pinned_keys_have_no_kid() {
        let result = set(vec![rsa(2048), rsa(3072)]);
        let pinned = pinned(&result.keys);
        assert_eq!(pinned.len(), 2);
        assert!(pinned.iter().all(|k| k.kid().is_none()));
    }
}
