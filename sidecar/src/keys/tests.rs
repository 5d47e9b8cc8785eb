use super::*;
use crate::test_support::{b64, keys};

fn rsa_jwk(n: Vec<u8>, e: Vec<u8>) -> PublicJwk {
    PublicJwk {
        kty: "RSA".into(),
        kid: Some("k".into()),
        alg: None,
        n: Some(b64(&n)),
        e: Some(b64(&e)),
        crv: None,
        x: None,
        y: None,
    }
}

fn odd_modulus(bits: usize) -> Vec<u8> {
    let mut n = vec![0xa5u8; bits / 8];
    n[0] |= 0x80;
    *n.last_mut().unwrap() |= 1;
    n
}

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
fn rsa_below_2048_bits_is_refused() {
    let err = VerificationKey::from_jwk(&rsa_jwk(odd_modulus(1024), vec![1, 0, 1])).unwrap_err();
    assert_eq!(err, KeyError::RsaSize(1024));
    let err = VerificationKey::from_jwk(&rsa_jwk(odd_modulus(2040), vec![1, 0, 1])).unwrap_err();
    assert_eq!(err, KeyError::RsaSize(2040));
}

#[test]
fn rsa_leading_zero_bytes_do_not_inflate_the_size() {
    let mut n = vec![0, 0];
    n.extend(odd_modulus(1024));
    assert_eq!(
        VerificationKey::from_jwk(&rsa_jwk(n, vec![1, 0, 1])).unwrap_err(),
        KeyError::RsaSize(1024)
    );
}

#[test]
fn rsa_exponents_one_even_or_huge_are_refused() {
    for e in [
        vec![1],
        vec![0, 1],
        vec![2],
        vec![1, 0, 0],
        vec![1, 0, 0, 0, 0, 1],
        vec![0],
    ] {
        assert_eq!(
            VerificationKey::from_jwk(&rsa_jwk(odd_modulus(2048), e.clone())).unwrap_err(),
            KeyError::RsaExponent,
            "{e:?}"
        );
    }
    assert!(VerificationKey::from_jwk(&rsa_jwk(odd_modulus(2048), vec![3])).is_ok());
}

#[test]
fn symmetric_and_unknown_key_types_are_refused() {
    let mut jwk = keys().rsa.jwk(false);
    jwk.kty = "oct".into();
    assert_eq!(
        VerificationKey::from_jwk(&jwk).unwrap_err(),
        KeyError::UnsupportedType("oct".into())
    );
}

#[test]
fn unsupported_curves_and_off_curve_points_are_refused() {
    let mut jwk = keys().p256.jwk(false);
    jwk.crv = Some("secp256k1".into());
    assert!(matches!(
        VerificationKey::from_jwk(&jwk).unwrap_err(),
        KeyError::UnsupportedCurve(_)
    ));
    let mut jwk = keys().p256.jwk(false);
    jwk.y = Some(b64(&[7u8; 32]));
    assert_eq!(
        VerificationKey::from_jwk(&jwk).unwrap_err(),
        KeyError::BadPoint
    );
    let mut jwk = keys().p256.jwk(false);
    jwk.crv = Some("P-384".into());
    assert_eq!(
        VerificationKey::from_jwk(&jwk).unwrap_err(),
        KeyError::BadPoint
    );
}

#[test]
fn a_pinned_alg_of_another_family_is_refused() {
    let mut jwk = keys().p256.jwk(false);
    jwk.alg = Some(JwsAlgorithm::RS256);
    assert_eq!(
        VerificationKey::from_jwk(&jwk).unwrap_err(),
        KeyError::AlgMismatch("RS256")
    );
    let mut jwk = keys().p384.jwk(false);
    jwk.alg = Some(JwsAlgorithm::ES256);
    assert_eq!(
        VerificationKey::from_jwk(&jwk).unwrap_err(),
        KeyError::AlgMismatch("ES256")
    );
}

#[test]
fn members_of_other_key_types_are_refused() {
    let mut jwk = keys().rsa.jwk(false);
    jwk.crv = Some("P-256".into());
    assert_eq!(
        VerificationKey::from_jwk(&jwk).unwrap_err(),
        KeyError::ForeignMember("crv", "RSA")
    );
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
    let mut twin = k.p256.jwk(true);
    twin.x = k.attacker_p256.jwk(true).x;
    twin.y = k.attacker_p256.jwk(true).y;
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
    broken.y = Some(b64(&[7u8; 32]));
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
