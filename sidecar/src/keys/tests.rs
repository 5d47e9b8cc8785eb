use super::*;
use crate::test_support::{b64, keys};

#[test]
fn accepts_every_supported_key_kind() {
    let k = keys();
    let kinds: Vec<KeyKind> = [&k.rsa, &k.p256, &k.p384, &k.ed25519]
        .iter()
        .map(|key| VerificationKey::from_jwk(&key.jwk(true)).unwrap().kind)
        .collect();
    assert_eq!(
        kinds,
        vec![
            KeyKind::Rsa { bits: 2048 },
            KeyKind::P256,
            KeyKind::P384,
            KeyKind::Ed25519
        ]
    );
}

#[test]
fn keys_the_shared_validator_refuses_are_refused() {
    let mut weak = keys().rsa.jwk(false);
    if let PublicJwk::Rsa(key) = &mut weak {
        key.n = vec![0xc5; 128].into();
    }
    assert_eq!(
        VerificationKey::from_jwk(&weak).unwrap_err(),
        KeyRejection::WeakRsaModulus(1024)
    );
    let mut off_curve = keys().p256.jwk(false);
    if let PublicJwk::Ec(key) = &mut off_curve {
        key.y = vec![7; 32].into();
    }
    assert_eq!(
        VerificationKey::from_jwk(&off_curve).unwrap_err(),
        KeyRejection::PointNotOnCurve
    );
    let mut mismatch = keys().p256.jwk(false);
    if let PublicJwk::Ec(key) = &mut mismatch {
        key.alg = Some(JwsAlgorithm::RS256);
    }
    assert!(matches!(
        VerificationKey::from_jwk(&mismatch).unwrap_err(),
        KeyRejection::AlgorithmMismatch { .. }
    ));
}

#[test]
fn one_key_one_algorithm() {
    let k = keys();
    let pss = VerificationKey::from_jwk(&k.rsa_pss.jwk(true)).unwrap();
    assert!(pss.allows(JwsAlgorithm::PS256));
    assert!(!pss.allows(JwsAlgorithm::RS256));
    let unpinned = VerificationKey::from_jwk(&k.rsa.jwk(false)).unwrap();
    assert!(unpinned.allows(JwsAlgorithm::RS256) && unpinned.allows(JwsAlgorithm::PS512));
    assert!(!unpinned.allows(JwsAlgorithm::ES256));
    let ec = VerificationKey::from_jwk(&k.p256.jwk(false)).unwrap();
    assert!(ec.allows(JwsAlgorithm::ES256) && !ec.allows(JwsAlgorithm::ES384));
    assert!(!ec.allows(JwsAlgorithm::EdDSA));
}

#[test]
fn verifies_signatures_of_every_algorithm() {
    let k = keys();
    for (key, alg) in [
        (&k.rsa, JwsAlgorithm::RS256),
        (&k.rsa, JwsAlgorithm::RS384),
        (&k.rsa, JwsAlgorithm::RS512),
        (&k.rsa, JwsAlgorithm::PS256),
        (&k.rsa, JwsAlgorithm::PS384),
        (&k.rsa, JwsAlgorithm::PS512),
        (&k.p256, JwsAlgorithm::ES256),
        (&k.p384, JwsAlgorithm::ES384),
        (&k.ed25519, JwsAlgorithm::EdDSA),
    ] {
        let verifier = VerificationKey::from_jwk(&key.jwk(false)).unwrap();
        let signature = key.sign_with(alg, b"a.b");
        let encoded = b64(&signature);
        assert!(
            verifier.verify(alg, b"a.b", &signature, &encoded),
            "{alg:?}"
        );
        assert!(
            !verifier.verify(alg, b"a.c", &signature, &encoded),
            "{alg:?}"
        );
    }
}

#[test]
fn duplicate_kids_make_the_kid_unusable() {
    let k = keys();
    let mut twin = k.attacker_p256.jwk(true);
    twin.set_kid(Some("ec-1".into()));
    let set = KeySet::build([&k.p256.jwk(true), &twin, &k.ed25519.jwk(true)]);
    assert!(matches!(set.lookup(Some("ec-1")), Lookup::Ambiguous));
    assert!(matches!(set.lookup(Some("ed-1")), Lookup::Found(_)));
    assert_eq!(set.ambiguous_kids().collect::<Vec<_>>(), vec!["ec-1"]);
    assert!(matches!(set.lookup(None), Lookup::NoKid));
}

#[test]
fn a_duplicate_kid_stays_ambiguous_even_when_one_copy_is_invalid() {
    let k = keys();
    let mut broken = k.p256.jwk(true);
    if let PublicJwk::Ec(key) = &mut broken {
        key.y = vec![7; 32].into();
    }
    let set = KeySet::build([&k.p256.jwk(true), &broken]);
    assert!(matches!(set.lookup(Some("ec-1")), Lookup::Ambiguous));
    assert_eq!(set.rejected().len(), 1);
}

#[test]
fn a_token_without_kid_uses_the_only_key() {
    let k = keys();
    let set = KeySet::build([&k.p256.jwk(true)]);
    assert!(matches!(set.lookup(None), Lookup::Found(_)));
    let set = KeySet::build([&k.p256.jwk(true), &k.ed25519.jwk(true)]);
    assert!(matches!(set.lookup(None), Lookup::NoKid));
    assert!(matches!(KeySet::build([]).lookup(None), Lookup::Unknown));
}

#[test]
fn unknown_kids_are_unknown() {
    let set = KeySet::build([&keys().p256.jwk(true)]);
    for kid in ["ec-2", "../../etc/passwd", "' OR 1=1 --", "EC-1"] {
        assert!(matches!(set.lookup(Some(kid)), Lookup::Unknown), "{kid}");
    }
}

#[test]
fn fingerprints_tell_key_sets_apart() {
    let k = keys();
    let one = KeySet::build([&k.p256.jwk(true), &k.ed25519.jwk(true)]);
    let same = KeySet::build([&k.p256.jwk(true), &k.ed25519.jwk(true)]);
    let other = KeySet::build([&k.p256.jwk(true)]);
    assert_eq!(one.fingerprint(), same.fingerprint());
    assert_ne!(one.fingerprint(), other.fingerprint());
}

/// The 9216-bit RSA key of the fixtures (a test key; generating one takes half a minute).
fn rsa_9216() -> (rsa::RsaPrivateKey, PublicJwk) {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/rsa-9216.private.jwk.json"
    ))
    .unwrap();
    let jwk: serde_json::Value = serde_json::from_str(&text).unwrap();
    let int = |name: &str| {
        let bytes = outband_crds::jwk::Base64Url::decode(jwk[name].as_str().unwrap()).unwrap();
        rsa::BigUint::from_bytes_be(bytes.as_bytes())
    };
    let private =
        rsa::RsaPrivateKey::from_components(int("n"), int("e"), int("d"), vec![int("p"), int("q")])
            .unwrap();
    let public = outband_idp::jwk::from_json(
        serde_json::json!({"kty": "RSA", "kid": "big", "n": jwk["n"], "e": jwk["e"]})
            .as_object()
            .unwrap(),
    )
    .unwrap();
    (private, public)
}

#[test]
fn rsa_keys_above_8192_bits_verify_their_signatures() {
    let (private, public) = rsa_9216();
    let key = VerificationKey::from_jwk(&public).unwrap();
    assert_eq!(key.kind, KeyKind::Rsa { bits: 9216 });
    let message = b"header.payload";
    let signature = private
        .sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(message))
        .unwrap();
    let encoded = b64(&signature);
    assert!(key.verify(JwsAlgorithm::RS256, message, &signature, &encoded));
    assert!(!key.verify(JwsAlgorithm::RS256, b"header.other", &signature, &encoded));
    assert!(!key.verify(JwsAlgorithm::RS384, message, &signature, &encoded));
    assert!(!key.verify(JwsAlgorithm::PS256, message, &signature, &encoded));
    let mut forged = signature.clone();
    forged[100] ^= 1;
    assert!(!key.verify(JwsAlgorithm::RS256, message, &forged, &b64(&forged)));
}
