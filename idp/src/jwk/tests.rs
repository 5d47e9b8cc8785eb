use super::*;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
};
use serde_json::json;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn odd_modulus(bits: usize) -> Vec<u8> {
    let mut n = vec![0xa5u8; bits.div_ceil(8)];
    let top = bits % 8;
    n[0] = if top == 0 {
        0x80 | n[0]
    } else {
        1 << (top - 1)
    };
    *n.last_mut().unwrap() |= 1;
    n
}

fn rsa(bits: usize) -> Value {
    json!({"kty": "RSA", "kid": format!("rsa-{bits}"), "n": b64(&odd_modulus(bits)), "e": "AQAB", "use": "sig", "alg": "RS256"})
}

/// A real P-256 public key (the point is on the curve).
fn p256() -> Value {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let point = pair.public_key().as_ref();
    json!({"kty": "EC", "kid": "ec", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..])})
}

fn ed25519() -> Value {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    json!({"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": b64(pair.public_key().as_ref()), "alg": "EdDSA"})
}

fn read(jwk: Value) -> Result<PublicJwk, KeyRejection> {
    from_json(jwk.as_object().unwrap())
}

fn rejection_of(jwk: Value) -> KeyRejection {
    read(jwk).expect_err("the key must be refused")
}

#[test]
fn accepts_rsa_from_2048_to_16384_bits_real_ec_points_and_ed25519() {
    for bits in [2048, 3072, 4096, 8192, 8200, 9216, 16384] {
        let key = read(rsa(bits)).unwrap();
        assert_eq!(KeyKind::of(&key), KeyKind::Rsa { bits }, "{bits}");
    }
    assert_eq!(KeyKind::of(&read(p256()).unwrap()), KeyKind::P256);
    assert_eq!(KeyKind::of(&read(ed25519()).unwrap()), KeyKind::Ed25519);
}

#[test]
fn refuses_rsa_outside_the_limits() {
    assert_eq!(rejection_of(rsa(1024)), KeyRejection::WeakRsaModulus(1024));
    assert_eq!(rejection_of(rsa(2047)), KeyRejection::WeakRsaModulus(2047));
    assert_eq!(
        rejection_of(rsa(16392)),
        KeyRejection::HugeRsaModulus(16392)
    );
}

#[test]
fn rsa_leading_zero_bytes_do_not_inflate_the_size_and_are_dropped() {
    let mut n = vec![0, 0];
    n.extend(odd_modulus(1024));
    let mut key = rsa(2048);
    key["n"] = json!(b64(&n));
    assert_eq!(rejection_of(key), KeyRejection::WeakRsaModulus(1024));
    let mut n = vec![0];
    n.extend(odd_modulus(2048));
    let mut key = rsa(2048);
    key["n"] = json!(b64(&n));
    let PublicJwk::Rsa(read) = read(key).unwrap() else {
        panic!("an RSA key")
    };
    assert_eq!(read.n.as_bytes(), odd_modulus(2048));
}

#[test]
fn refuses_even_moduli() {
    let mut n = odd_modulus(2048);
    *n.last_mut().unwrap() &= 0xfe;
    let mut key = rsa(2048);
    key["n"] = json!(b64(&n));
    assert_eq!(rejection_of(key), KeyRejection::EvenRsaModulus);
}

#[test]
fn refuses_rsa_exponents_one_even_or_huge() {
    for e in [
        vec![1],
        vec![0, 1],
        vec![2],
        vec![1, 0, 0],
        vec![1, 0, 0, 0, 1],
        vec![0],
    ] {
        let mut key = rsa(2048);
        key["e"] = json!(b64(&e));
        assert_eq!(rejection_of(key), KeyRejection::BadRsaExponent, "{e:?}");
    }
    let mut key = rsa(2048);
    key["e"] = json!(b64(&[3]));
    assert!(read(key).is_ok());
}

#[test]
fn refuses_unknown_curves_wrong_lengths_and_points_off_the_curve() {
    let mut key = p256();
    key["crv"] = json!("P-521");
    assert_eq!(
        rejection_of(key),
        KeyRejection::UnsupportedCurve("P-521".into())
    );
    let mut key = p256();
    key["crv"] = json!("secp256k1");
    assert!(matches!(
        rejection_of(key),
        KeyRejection::UnsupportedCurve(_)
    ));
    let mut key = p256();
    key["x"] = json!(b64(&[1; 31]));
    assert_eq!(rejection_of(key), KeyRejection::BadCoordinate("x"));
    let mut key = p256();
    key["y"] = json!(b64(&[7; 32]));
    assert_eq!(rejection_of(key), KeyRejection::PointNotOnCurve);
    let mut key = p256();
    key["crv"] = json!("P-384");
    assert_eq!(rejection_of(key), KeyRejection::BadCoordinate("x"));
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
    let mut key = rsa(2048);
    key["key_ops"] = json!(["verify"]);
    assert!(read(key).is_ok());
}

#[test]
fn refuses_private_and_symmetric_keys() {
    let mut key = rsa(2048);
    key["d"] = json!("secret");
    assert_eq!(rejection_of(key), KeyRejection::PrivateMaterial("d"));
    assert_eq!(
        rejection_of(json!({"kty": "oct", "k": "c2VjcmV0"})),
        KeyRejection::PrivateMaterial("k")
    );
    assert_eq!(
        rejection_of(json!({"kty": "oct", "n": "AQAB"})),
        KeyRejection::UnsupportedKeyType("oct".into())
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
    let mut key = p256();
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
fn refuses_non_string_empty_and_huge_kids() {
    for kid in [json!(42), json!(""), json!("k".repeat(1000))] {
        let mut key = rsa(2048);
        key["kid"] = kid.clone();
        assert!(
            matches!(rejection_of(key), KeyRejection::Malformed(_)),
            "{kid}"
        );
    }
}

#[test]
fn refuses_padded_or_standard_alphabet_base64() {
    let mut key = p256();
    let x = key["x"].as_str().unwrap().to_string();
    key["x"] = json!(format!("{x}="));
    assert!(matches!(rejection_of(key), KeyRejection::Malformed(_)));
    let mut key = rsa(2048);
    key["n"] = json!(b64(&odd_modulus(2048)).replace('-', "+").replace('_', "/") + "+");
    assert!(matches!(rejection_of(key), KeyRejection::Malformed(_)));
}

#[test]
fn keeps_only_public_members() {
    let mut key = rsa(2048);
    key["x5c"] = json!(["MIIB..."]);
    key["ext"] = json!(true);
    let read = read(key).unwrap();
    assert_eq!(read.alg(), Some(JwsAlgorithm::RS256));
    let text = serde_json::to_value(&read).unwrap();
    let mut members: Vec<&str> = text
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    members.sort();
    assert_eq!(members, ["alg", "e", "kid", "kty", "n"]);
}

#[test]
fn the_typed_check_applies_the_same_rules() {
    let mut weak = read(rsa(2048)).unwrap();
    if let PublicJwk::Rsa(key) = &mut weak {
        key.n = odd_modulus(1024).into();
    }
    assert_eq!(check(&weak), Err(KeyRejection::WeakRsaModulus(1024)));
    let mut off_curve = read(p256()).unwrap();
    if let PublicJwk::Ec(key) = &mut off_curve {
        key.y = vec![7; 32].into();
    }
    assert_eq!(check(&off_curve), Err(KeyRejection::PointNotOnCurve));
}

#[test]
fn one_key_one_algorithm_family() {
    let rsa = KeyKind::Rsa { bits: 2048 };
    assert!(rsa.fits(JwsAlgorithm::RS256) && rsa.fits(JwsAlgorithm::PS512));
    assert!(!rsa.fits(JwsAlgorithm::ES256));
    assert!(KeyKind::P256.fits(JwsAlgorithm::ES256) && !KeyKind::P256.fits(JwsAlgorithm::ES384));
    assert!(!KeyKind::P384.fits(JwsAlgorithm::ES256));
    assert!(KeyKind::Ed25519.fits(JwsAlgorithm::EdDSA));
    assert_eq!(KeyKind::Rsa { bits: 9216 }.signature_len(), 1152);
}

#[test]
fn modulus_bits_ignores_leading_zero_bytes() {
    assert_eq!(modulus_bits(&[0, 0, 0x80, 0]), 16);
    assert_eq!(modulus_bits(&[0x01]), 1);
    assert_eq!(modulus_bits(&[]), 0);
}

#[test]
fn thumbprint_matches_the_rfc7638_example() {
    let jwk: PublicJwk = serde_json::from_value(json!({
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
    }))
    .unwrap();
    assert_eq!(
        thumbprint(&jwk),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
}
