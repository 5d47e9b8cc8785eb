//! The attack catalogue of `docs/design/jwt-threats.md`: one named test per class and case, each a token
//! (or request) that must be refused. Forged tokens are signed with keys generated here —
//! that is the attack. Every verdict is [`decide`]'s, the function the proxy decides with.

mod support;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use http::{HeaderMap, HeaderName, HeaderValue};
use outband_crds::JwsAlgorithm;
use outband_crds::jwk::RsaJwk;
use outband_crds::sidecar_config::{PublicJwk, SidecarConfig};
use outband_sidecar::config::CompiledConfig;
use outband_sidecar::decision::{FetchedKeys, Verified, decide};
use outband_sidecar::denial::Denial;
use outband_sidecar::keys::KeySet;
use outband_sidecar::policy::Route;
use outband_sidecar::routes::{RouteRules, normalize};
use outband_sidecar::settings::Settings;
use serde_json::{Value, json};
use support::*;

fn settings() -> Settings {
    Settings::new(API)
}

/// The proxy's decision, offline: no cached verification, and no JWKS fetch (a fetch could
/// only add the keys the IdP publishes, never an attacker's).
fn evaluate(
    config: &CompiledConfig,
    settings: &Settings,
    fetched: &FetchedKeys,
    token: &str,
    route: Option<Route<'_>>,
    now: i64,
) -> Result<Arc<Verified>, Denial> {
    decide(config, fetched, settings, token, route, now, None)
        .into_result()
        .map(|allowed| allowed.verified)
}

fn verdict_with(
    config: &SidecarConfig,
    settings: &Settings,
    token: &str,
) -> Result<Arc<Verified>, Denial> {
    let compiled = CompiledConfig::compile(config, "attack", settings).unwrap();
    evaluate(
        &compiled,
        settings,
        &FetchedKeys::default(),
        token,
        None,
        NOW,
    )
}

fn verdict(token: &str) -> Result<Arc<Verified>, Denial> {
    verdict_with(&config(), &settings(), token)
}

#[track_caller]
fn refused(token: &str) -> Denial {
    verdict(token).expect_err("the token must be refused")
}

fn good_claims() -> Value {
    claims_for(CLIENT, NOW)
}

fn unsigned(header: &Value, claims: &Value, signature: &str) -> String {
    format!("{}.{}.{signature}", segment(header), segment(claims))
}

#[test]
fn control_a_well_formed_token_is_accepted() {
    let k = keys();
    assert!(verdict(&token_for(&k.p256, CLIENT, NOW)).is_ok());
}

// ---- alg: none -------------------------------------------------------------------------

#[test]
fn alg_none_without_signature() {
    let token = format!(
        "{}.{}.",
        segment(&json!({"alg": "none"})),
        segment(&good_claims())
    );
    assert_eq!(refused(&token), Denial::MalformedToken);
    let token = unsigned(&json!({"alg": "none"}), &good_claims(), "AA");
    assert_eq!(refused(&token), Denial::AlgNone);
}

#[test]
fn alg_none_with_a_signature_copied_from_a_valid_token() {
    let k = keys();
    let genuine = token_for(&k.p256, CLIENT, NOW);
    let signature = genuine.rsplit('.').next().unwrap();
    let token = unsigned(
        &json!({"alg": "none", "kid": "ec-1", "typ": "at+jwt"}),
        &good_claims(),
        signature,
    );
    assert_eq!(refused(&token), Denial::AlgNone);
}

#[test]
fn alg_none_in_every_spelling() {
    for alg in ["none", "None", "NONE", "nOnE", "NoNe"] {
        let token = unsigned(&json!({"alg": alg, "typ": "at+jwt"}), &good_claims(), "AA");
        assert_eq!(refused(&token), Denial::AlgNone, "{alg}");
    }
}

// ---- algorithm confusion: HMAC keyed with the public key -------------------------------

fn hmac_forgery(bits: u16, kid: &str, secret: &[u8]) -> String {
    let header = segment(&json!({"alg": format!("HS{bits}"), "kid": kid, "typ": "at+jwt"}));
    let payload = segment(&good_claims());
    let input = format!("{header}.{payload}");
    format!("{input}.{}", b64(&hmac(bits, secret, input.as_bytes())))
}

#[test]
fn hs256_keyed_with_the_rsa_public_key_as_pem() {
    let pem = pem("PUBLIC KEY", &keys().rsa.public_der());
    assert_eq!(
        refused(&hmac_forgery(256, "rsa-1", pem.as_bytes())),
        Denial::UnsupportedAlg
    );
}

#[test]
fn hs256_keyed_with_the_rsa_public_key_as_pkcs1_pem() {
    let pem = pem("RSA PUBLIC KEY", &keys().rsa.public_raw());
    assert_eq!(
        refused(&hmac_forgery(256, "rsa-1", pem.as_bytes())),
        Denial::UnsupportedAlg
    );
}

#[test]
fn hs256_keyed_with_the_rsa_public_key_as_der() {
    assert_eq!(
        refused(&hmac_forgery(256, "rsa-1", &keys().rsa.public_der())),
        Denial::UnsupportedAlg
    );
    assert_eq!(
        refused(&hmac_forgery(256, "rsa-1", &keys().rsa.public_raw())),
        Denial::UnsupportedAlg
    );
}

#[test]
fn hs256_keyed_with_the_public_jwk_json() {
    let jwk = serde_json::to_vec(&keys().rsa.jwk(false)).unwrap();
    assert_eq!(
        refused(&hmac_forgery(256, "rsa-1", &jwk)),
        Denial::UnsupportedAlg
    );
}

#[test]
fn hs256_keyed_with_the_raw_rsa_modulus() {
    let PublicJwk::Rsa(jwk) = keys().rsa.jwk(false) else {
        panic!("an RSA key")
    };
    let raw = jwk.n.as_bytes().to_vec();
    assert_eq!(
        refused(&hmac_forgery(256, "rsa-1", &raw)),
        Denial::UnsupportedAlg
    );
}

#[test]
fn hs384_and_hs512_keyed_with_the_public_key() {
    let pem = pem("PUBLIC KEY", &keys().rsa.public_der());
    assert_eq!(
        refused(&hmac_forgery(384, "rsa-1", pem.as_bytes())),
        Denial::UnsupportedAlg
    );
    assert_eq!(
        refused(&hmac_forgery(512, "rsa-1", pem.as_bytes())),
        Denial::UnsupportedAlg
    );
}

#[test]
fn hs256_keyed_with_the_ec_public_key() {
    let pem = pem("PUBLIC KEY", &keys().p256.public_der());
    assert_eq!(
        refused(&hmac_forgery(256, "ec-1", pem.as_bytes())),
        Denial::UnsupportedAlg
    );
    assert_eq!(
        refused(&hmac_forgery(256, "ec-1", &keys().p256.public_raw())),
        Denial::UnsupportedAlg
    );
}

// ---- key/alg mismatch (RFC 8725 §3.1: one key, one algorithm) --------------------------

fn with_header(header: Value, key: &TestKey, alg: JwsAlgorithm) -> String {
    sign(&header, &good_claims(), key, alg)
}

#[test]
fn es256_header_on_an_rsa_kid() {
    let k = keys();
    let token = with_header(
        json!({"alg": "ES256", "kid": "rsa-1", "typ": "at+jwt"}),
        &k.p256,
        JwsAlgorithm::ES256,
    );
    assert_eq!(refused(&token), Denial::KeyAlgMismatch("ES256"));
}

#[test]
fn eddsa_header_on_an_ec_kid() {
    let k = keys();
    let token = with_header(
        json!({"alg": "EdDSA", "kid": "ec-1", "typ": "at+jwt"}),
        &k.ed25519,
        JwsAlgorithm::EdDSA,
    );
    assert_eq!(refused(&token), Denial::KeyAlgMismatch("EdDSA"));
}

#[test]
fn es384_header_on_a_p256_kid() {
    let k = keys();
    let token = with_header(
        json!({"alg": "ES384", "kid": "ec-1", "typ": "at+jwt"}),
        &k.p384,
        JwsAlgorithm::ES384,
    );
    assert_eq!(refused(&token), Denial::KeyAlgMismatch("ES384"));
}

#[test]
fn ps256_on_a_key_whose_jwk_pins_rs256() {
    let k = keys();
    let mut config = config();
    let PublicJwk::Rsa(key) = &mut config.key_managers[0].keys[0] else {
        panic!("an RSA key")
    };
    key.alg = Some(JwsAlgorithm::RS256);
    let token = with_header(
        json!({"alg": "PS256", "kid": "rsa-1", "typ": "at+jwt"}),
        &k.rsa,
        JwsAlgorithm::PS256,
    );
    assert_eq!(
        verdict_with(&config, &settings(), &token).unwrap_err(),
        Denial::KeyAlgMismatch("PS256")
    );
}

#[test]
fn rs256_on_a_key_whose_jwk_pins_ps256() {
    let k = keys();
    let token = with_header(
        json!({"alg": "RS256", "kid": "rsa-pss", "typ": "at+jwt"}),
        &k.rsa_pss,
        JwsAlgorithm::RS256,
    );
    assert_eq!(refused(&token), Denial::KeyAlgMismatch("RS256"));
}

#[test]
fn an_algorithm_outside_the_key_managers_allow_list() {
    let k = keys();
    let token = with_header(
        json!({"alg": "RS512", "kid": "rsa-1", "typ": "at+jwt"}),
        &k.rsa,
        JwsAlgorithm::RS512,
    );
    assert_eq!(refused(&token), Denial::AlgNotAllowed("RS512"));
}

// ---- header-supplied keys --------------------------------------------------------------

#[test]
fn an_embedded_jwk_header_is_not_trusted() {
    let k = keys();
    let attacker_jwk = serde_json::to_value(k.attacker_p256.jwk(true)).unwrap();
    let header = json!({"alg": "ES256", "kid": "ec-1", "typ": "at+jwt", "jwk": attacker_jwk});
    assert_eq!(
        refused(&with_header(header, &k.attacker_p256, JwsAlgorithm::ES256)),
        Denial::BadSignature
    );
    let header = json!({"alg": "ES256", "typ": "at+jwt", "jwk": serde_json::to_value(TestKey::p256("own").jwk(true)).unwrap()});
    assert_eq!(
        refused(&with_header(header, &k.attacker_p256, JwsAlgorithm::ES256)),
        Denial::MissingKid
    );
}

#[test]
fn a_jku_header_is_never_fetched() {
    let k = keys();
    let header = json!({"alg": "ES256", "kid": "attacker-kid", "typ": "at+jwt", "jku": "https://attacker.example/jwks.json"});
    assert_eq!(
        refused(&with_header(header, &k.attacker_p256, JwsAlgorithm::ES256)),
        Denial::UnknownKid
    );
}

#[test]
fn an_x5u_header_is_never_fetched() {
    let k = keys();
    let header = json!({"alg": "RS256", "kid": "rsa-1", "typ": "at+jwt", "x5u": "http://169.254.169.254/cert.pem"});
    assert_eq!(
        refused(&with_header(header, &k.attacker_rsa, JwsAlgorithm::RS256)),
        Denial::BadSignature
    );
}

#[test]
fn an_x5c_header_is_not_trusted() {
    let k = keys();
    let header = json!({"alg": "RS256", "kid": "rsa-1", "typ": "at+jwt", "x5c": [STANDARD.encode(k.attacker_rsa.public_der())]});
    assert_eq!(
        refused(&with_header(header, &k.attacker_rsa, JwsAlgorithm::RS256)),
        Denial::BadSignature
    );
}

// ---- kid abuse -------------------------------------------------------------------------

fn kid_token(kid: Value) -> String {
    with_header(
        json!({"alg": "ES256", "kid": kid, "typ": "at+jwt"}),
        &keys().attacker_p256,
        JwsAlgorithm::ES256,
    )
}

#[test]
fn kid_path_traversal() {
    assert_eq!(
        refused(&kid_token(json!("../../../../dev/null"))),
        Denial::UnknownKid
    );
    assert_eq!(
        refused(&kid_token(json!("/proc/self/environ"))),
        Denial::UnknownKid
    );
}

#[test]
fn kid_sql_text() {
    assert_eq!(
        refused(&kid_token(json!("x' UNION SELECT 'secret' --"))),
        Denial::UnknownKid
    );
}

#[test]
fn kid_huge() {
    assert_eq!(
        refused(&kid_token(json!("k".repeat(3000)))),
        Denial::BadHeader("kid")
    );
}

#[test]
fn kid_not_a_string() {
    for kid in [
        json!(1),
        json!(["ec-1"]),
        json!({"kid": "ec-1"}),
        json!(null),
        json!(true),
    ] {
        assert_eq!(
            refused(&kid_token(kid.clone())),
            Denial::BadHeader("kid"),
            "{kid}"
        );
    }
}

#[test]
fn kid_unknown() {
    assert_eq!(
        refused(&kid_token(json!("rotated-away"))),
        Denial::UnknownKid
    );
}

#[test]
fn kid_that_differs_only_in_case() {
    assert_eq!(refused(&kid_token(json!("EC-1"))), Denial::UnknownKid);
}

// ---- kid abuse against pinned (PEM) keys: no kid, no JWKS source ----------------------

/// The test config with one pinned key: the P-256 key, without `kid` and `jwksRefresh`, as
/// the operator publishes a PEM certificate.
fn pinned_config() -> SidecarConfig {
    let mut config = config();
    let mut jwk = keys().p256.jwk(false);
    jwk.set_kid(None);
    config.key_managers[0].keys = vec![jwk];
    config.key_managers[0].jwks_refresh = None;
    config
}

fn pinned_verdict(token: &str) -> Result<Arc<Verified>, Denial> {
    verdict_with(&pinned_config(), &settings(), token)
}

#[test]
fn pinned_control_the_issuers_token_with_its_own_kid_is_accepted() {
    let token = with_header(
        json!({"alg": "ES256", "kid": "the-issuers-own-kid", "typ": "at+jwt"}),
        &keys().p256,
        JwsAlgorithm::ES256,
    );
    assert!(pinned_verdict(&token).is_ok());
}

#[test]
fn pinned_an_invented_kid_does_not_make_a_forgery_pass() {
    for kid in [
        json!("../../../../dev/null"),
        json!("ec-1"),
        json!("x' OR 1=1 --"),
    ] {
        let token = with_header(
            json!({"alg": "ES256", "kid": kid, "typ": "at+jwt"}),
            &keys().attacker_p256,
            JwsAlgorithm::ES256,
        );
        assert_eq!(pinned_verdict(&token).unwrap_err(), Denial::BadSignature);
    }
}

#[test]
fn pinned_hs256_keyed_with_the_pem_key() {
    let pem = pem("PUBLIC KEY", &keys().p256.public_der());
    let token = hmac_forgery(256, "any", pem.as_bytes());
    assert_eq!(pinned_verdict(&token).unwrap_err(), Denial::UnsupportedAlg);
}

#[test]
fn pinned_another_family_with_an_arbitrary_kid() {
    let token = with_header(
        json!({"alg": "RS256", "kid": "any", "typ": "at+jwt"}),
        &keys().attacker_rsa,
        JwsAlgorithm::RS256,
    );
    assert_eq!(
        pinned_verdict(&token).unwrap_err(),
        Denial::KeyAlgMismatch("RS256")
    );
}

#[test]
fn pinned_a_header_supplied_key_is_not_trusted() {
    let k = keys();
    let attacker_jwk = serde_json::to_value(k.attacker_p256.jwk(true)).unwrap();
    let token = with_header(
        json!({"alg": "ES256", "kid": "any", "typ": "at+jwt", "jwk": attacker_jwk}),
        &k.attacker_p256,
        JwsAlgorithm::ES256,
    );
    assert_eq!(pinned_verdict(&token).unwrap_err(), Denial::BadSignature);
}

// ---- crit ------------------------------------------------------------------------------

#[test]
fn crit_with_an_unknown_extension() {
    let k = keys();
    let header = json!({"alg": "ES256", "kid": "ec-1", "typ": "at+jwt", "crit": ["x-unknown"], "x-unknown": true});
    assert_eq!(
        refused(&with_header(header, &k.p256, JwsAlgorithm::ES256)),
        Denial::CriticalHeader
    );
}

#[test]
fn crit_empty_array() {
    let k = keys();
    let header = json!({"alg": "ES256", "kid": "ec-1", "typ": "at+jwt", "crit": []});
    assert_eq!(
        refused(&with_header(header, &k.p256, JwsAlgorithm::ES256)),
        Denial::CriticalHeader
    );
}

#[test]
fn b64_false_unencoded_payload() {
    let k = keys();
    let header =
        json!({"alg": "ES256", "kid": "ec-1", "typ": "at+jwt", "b64": false, "crit": ["b64"]});
    assert_eq!(
        refused(&with_header(header, &k.p256, JwsAlgorithm::ES256)),
        Denial::CriticalHeader
    );
}

// ---- nesting / JWE ---------------------------------------------------------------------

#[test]
fn cty_jwt_nested_token() {
    let k = keys();
    for cty in ["JWT", "jwt", "application/jwt"] {
        let header = json!({"alg": "ES256", "kid": "ec-1", "typ": "at+jwt", "cty": cty});
        assert_eq!(
            refused(&with_header(header, &k.p256, JwsAlgorithm::ES256)),
            Denial::NestedToken,
            "{cty}"
        );
    }
}

#[test]
fn five_segment_jwe() {
    let token = format!(
        "{}.AAAA.AAAA.AAAA.AAAA",
        segment(&json!({"alg": "RSA-OAEP", "enc": "A256GCM"}))
    );
    assert_eq!(refused(&token), Denial::MalformedToken);
}

#[test]
fn zip_header() {
    let k = keys();
    let header = json!({"alg": "ES256", "kid": "ec-1", "typ": "at+jwt", "zip": "DEF"});
    assert_eq!(
        refused(&with_header(header, &k.p256, JwsAlgorithm::ES256)),
        Denial::NestedToken
    );
}

#[test]
fn enc_header() {
    let k = keys();
    let header = json!({"alg": "ES256", "kid": "ec-1", "typ": "at+jwt", "enc": "A128CBC-HS256"});
    assert_eq!(
        refused(&with_header(header, &k.p256, JwsAlgorithm::ES256)),
        Denial::NestedToken
    );
}

#[test]
fn p2c_header_denial_of_service() {
    let k = keys();
    let header = json!({"alg": "ES256", "kid": "ec-1", "typ": "at+jwt", "p2c": 2_000_000_000u64, "p2s": "AAAA"});
    assert_eq!(
        refused(&with_header(header, &k.p256, JwsAlgorithm::ES256)),
        Denial::NestedToken
    );
}

// ---- ECDSA encodings -------------------------------------------------------------------

fn es256_with_signature(signature: &[u8]) -> String {
    with_signature(&token_for(&keys().p256, CLIENT, NOW), signature)
}

/// The order of P-256.
const P256_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

fn sub_be(a: &[u8; 32], b: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(a[i]) - i16::from(b[i]) - borrow;
        borrow = if d < 0 { 1 } else { 0 };
        if d < 0 {
            d += 256;
        }
        out[i] = d as u8;
    }
    out
}

#[test]
fn ecdsa_der_signature_instead_of_raw_r_s() {
    let k = keys();
    let token = token_for(&k.p256, CLIENT, NOW);
    let input = &token[..token.rfind('.').unwrap()];
    assert_eq!(
        refused(&with_signature(&token, &k.p256.sign_der(input.as_bytes()))),
        Denial::BadSignature
    );
}

#[test]
fn ecdsa_signature_padded_to_66_bytes() {
    let token = token_for(&keys().p256, CLIENT, NOW);
    let mut signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.rsplit('.').next().unwrap())
        .unwrap();
    signature.insert(0, 0);
    signature.insert(32, 0);
    assert_eq!(
        refused(&es256_with_signature(&signature)),
        Denial::BadSignature
    );
}

#[test]
fn ecdsa_truncated_signature() {
    let token = token_for(&keys().p256, CLIENT, NOW);
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.rsplit('.').next().unwrap())
        .unwrap();
    assert_eq!(
        refused(&es256_with_signature(&signature[..63])),
        Denial::BadSignature
    );
    assert_eq!(
        refused(&es256_with_signature(&signature[..32])),
        Denial::BadSignature
    );
}

#[test]
fn ecdsa_psychic_signature_r_and_s_zero() {
    assert_eq!(
        refused(&es256_with_signature(&[0u8; 64])),
        Denial::BadSignature
    );
}

#[test]
fn ecdsa_r_or_s_equal_to_the_curve_order() {
    let mut signature = P256_N.to_vec();
    signature.extend_from_slice(&P256_N);
    assert_eq!(
        refused(&es256_with_signature(&signature)),
        Denial::BadSignature
    );
    let mut above = [0xffu8; 64].to_vec();
    above[..32].copy_from_slice(&P256_N);
    assert_eq!(refused(&es256_with_signature(&above)), Denial::BadSignature);
}

#[test]
fn ecdsa_high_s_twin_is_verified_on_its_own_and_never_shares_a_cache_key() {
    let token = token_for(&keys().p256, CLIENT, NOW);
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.rsplit('.').next().unwrap())
        .unwrap();
    let twin_s = sub_be(&P256_N, &signature[32..]);
    let mut twin = signature[..32].to_vec();
    twin.extend_from_slice(&twin_s);
    let twin_token = es256_with_signature(&twin);
    // Both encodings are valid ECDSA; what matters is that they are different cache keys and
    // each is verified: a tampered twin is refused.
    assert_ne!(
        outband_sidecar::cache::token_hash(&token),
        outband_sidecar::cache::token_hash(&twin_token)
    );
    assert!(
        verdict(&twin_token).is_ok(),
        "the high-S twin is a valid signature"
    );
    let mut tampered = twin.clone();
    tampered[63] ^= 1;
    assert_eq!(
        refused(&es256_with_signature(&tampered)),
        Denial::BadSignature
    );
}

// ---- weak keys -------------------------------------------------------------------------

fn config_with_extra_key(jwk: PublicJwk) -> SidecarConfig {
    let mut config = config();
    config.key_managers[0].keys.push(jwk);
    config
}

/// The test config with a key the config reader cannot even represent (an unknown curve,
/// say), as a writer could put it in the document.
fn config_with_extra_raw_key(jwk: Value) -> SidecarConfig {
    let mut document = serde_json::to_value(config()).unwrap();
    document["keyManagers"][0]["keys"]
        .as_array_mut()
        .unwrap()
        .push(jwk);
    serde_json::from_value(document).unwrap()
}

fn rsa_jwk(kid: &str, n: Vec<u8>, e: Vec<u8>) -> PublicJwk {
    PublicJwk::Rsa(RsaJwk {
        kid: Some(kid.into()),
        alg: None,
        n: n.into(),
        e: e.into(),
    })
}

#[test]
fn rsa_key_below_2048_bits_is_never_used() {
    let mut n = vec![0xd3u8; 128];
    n[127] |= 1;
    let config = config_with_extra_key(rsa_jwk("weak-1024", n, vec![1, 0, 1]));
    let token = with_header(
        json!({"alg": "RS256", "kid": "weak-1024", "typ": "at+jwt"}),
        &keys().attacker_rsa,
        JwsAlgorithm::RS256,
    );
    assert_eq!(
        verdict_with(&config, &settings(), &token).unwrap_err(),
        Denial::UnknownKid
    );
}

#[test]
fn rsa_key_with_exponent_one_is_never_used() {
    // With e = 1 the "signature" of a message is the padded message itself.
    let mut n = vec![0xd3u8; 256];
    n[255] |= 1;
    let config = config_with_extra_key(rsa_jwk("e-one", n, vec![1]));
    let token = unsigned(
        &json!({"alg": "RS256", "kid": "e-one", "typ": "at+jwt"}),
        &good_claims(),
        &b64(&[0x01; 256]),
    );
    assert_eq!(
        verdict_with(&config, &settings(), &token).unwrap_err(),
        Denial::UnknownKid
    );
}

#[test]
fn ec_key_on_a_wrong_curve_is_never_used() {
    let mut jwk = serde_json::to_value(TestKey::p256("k1-curve").jwk(false)).unwrap();
    jwk["crv"] = json!("secp256k1");
    let config = config_with_extra_raw_key(jwk);
    assert_eq!(
        config.key_managers[0].keys.len(),
        support::config().key_managers[0].keys.len(),
        "the reader skips a key it cannot represent"
    );
    let token = with_header(
        json!({"alg": "ES256", "kid": "k1-curve", "typ": "at+jwt"}),
        &keys().attacker_p256,
        JwsAlgorithm::ES256,
    );
    assert_eq!(
        verdict_with(&config, &settings(), &token).unwrap_err(),
        Denial::UnknownKid
    );
}

#[test]
fn encryption_keys_in_a_jwks_are_never_used() {
    let attacker = TestKey::p256("enc-key");
    let mut document = serde_json::to_value(json!({"keys": [attacker.jwk(false)]})).unwrap();
    document["keys"][0]["use"] = json!("enc");
    let parsed = outband_idp::jwks::parse(&serde_json::to_vec(&document).unwrap()).unwrap();
    assert!(parsed.keys.is_empty());
    let fetched =
        FetchedKeys::default().with(KEY_MANAGER, Arc::new(KeySet::build(&parsed.keys)), NOW + 60);
    let compiled = CompiledConfig::compile(&config(), "g", &settings()).unwrap();
    let token = with_header(
        json!({"alg": "ES256", "kid": "enc-key", "typ": "at+jwt"}),
        &attacker,
        JwsAlgorithm::ES256,
    );
    assert_eq!(
        evaluate(&compiled, &settings(), &fetched, &token, None, NOW).unwrap_err(),
        Denial::UnknownKid
    );
}

#[test]
fn duplicate_kid_in_a_jwks() {
    let k = keys();
    let mut twin = k.attacker_p256.jwk(true);
    twin.set_kid(Some("ec-1".into()));
    let config = config_with_extra_key(twin);
    let genuine = token_for(&k.p256, CLIENT, NOW);
    assert_eq!(
        verdict_with(&config, &settings(), &genuine).unwrap_err(),
        Denial::AmbiguousKid
    );
    let forged = token_for(&k.attacker_p256, CLIENT, NOW);
    assert_eq!(
        verdict_with(&config, &settings(), &forged).unwrap_err(),
        Denial::AmbiguousKid
    );
}

// ---- encoding tricks -------------------------------------------------------------------

#[test]
fn padded_base64() {
    let token = token_for(&keys().p256, CLIENT, NOW);
    let parts: Vec<&str> = token.split('.').collect();
    let header = URL_SAFE.encode(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[0])
            .unwrap(),
    );
    assert!(
        header.ends_with('='),
        "pick a header whose encoding needs padding"
    );
    assert_eq!(
        refused(&format!("{header}.{}.{}", parts[1], parts[2])),
        Denial::MalformedToken
    );
}

#[test]
fn standard_alphabet_base64() {
    let token = token_for(&keys().p256, CLIENT, NOW);
    let standard = token.replace('-', "+").replace('_', "/");
    if standard != token {
        assert_eq!(refused(&standard), Denial::MalformedToken);
    }
    let header = STANDARD.encode(br#"{"alg":"ES256","kid":"ec-1","typ":"at+jwt","x":"??>"}"#);
    assert!(header.contains('+') || header.contains('/'));
    assert_eq!(
        refused(&format!(
            "{}.{}",
            header.trim_end_matches('='),
            &token[token.find('.').unwrap() + 1..]
        )),
        Denial::MalformedToken
    );
}

#[test]
fn whitespace_inside_the_token() {
    let token = token_for(&keys().p256, CLIENT, NOW);
    for (i, ws) in [(5, " "), (10, "\n"), (20, "\t"), (30, "\r\n")] {
        let spaced = format!("{}{ws}{}", &token[..i], &token[i..]);
        assert_eq!(refused(&spaced), Denial::MalformedToken, "{ws:?}");
    }
}

#[test]
fn non_canonical_trailing_bits() {
    let token = token_for(&keys().p256, CLIENT, NOW);
    // A 64-byte signature is 86 characters; the last carries 4 unused bits.
    let last = token.chars().last().unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let index = alphabet.find(last).unwrap();
    let twin = alphabet.chars().nth(index | 1).unwrap();
    assert_ne!(twin, last, "the original has zero trailing bits");
    let tweaked = format!("{}{twin}", &token[..token.len() - 1]);
    assert_eq!(refused(&tweaked), Denial::BadEncoding);
}

#[test]
fn extra_segments() {
    let token = token_for(&keys().p256, CLIENT, NOW);
    assert_eq!(refused(&format!("{token}.")), Denial::MalformedToken);
    assert_eq!(refused(&format!("{token}.AAAA")), Denial::MalformedToken);
    assert_eq!(refused(&format!("AAAA.{token}")), Denial::MalformedToken);
}

#[test]
fn thousands_of_dots() {
    assert_eq!(refused(&".".repeat(10_000)), Denial::MalformedToken);
    let token = token_for(&keys().p256, CLIENT, NOW);
    assert_eq!(
        refused(&format!("{token}{}", ".".repeat(5_000))),
        Denial::MalformedToken
    );
}

// ---- size ------------------------------------------------------------------------------

#[test]
fn oversized_token() {
    let mut claims = good_claims();
    claims["padding"] = json!("x".repeat(20_000));
    let token = sign(
        &header_for(&keys().p256),
        &claims,
        &keys().p256,
        JwsAlgorithm::ES256,
    );
    assert!(matches!(refused(&token), Denial::TokenTooLarge(_)));
}

#[test]
fn oversized_header() {
    let mut header = header_for(&keys().p256);
    header["padding"] = json!("x".repeat(5_000));
    let token = sign(&header, &good_claims(), &keys().p256, JwsAlgorithm::ES256);
    assert!(matches!(refused(&token), Denial::TokenTooLarge(_)));
}

// ---- time claims -----------------------------------------------------------------------

fn claims_token(claims: Value) -> String {
    sign(
        &header_for(&keys().p256),
        &claims,
        &keys().p256,
        JwsAlgorithm::ES256,
    )
}

fn with_claim(name: &str, value: Value) -> String {
    let mut claims = good_claims();
    claims[name] = value;
    claims_token(claims)
}

fn without_claim(name: &str) -> String {
    let mut claims = good_claims();
    claims.as_object_mut().unwrap().remove(name);
    claims_token(claims)
}

#[test]
fn expired() {
    assert_eq!(refused(&with_claim("exp", json!(NOW - 1))), Denial::Expired);
}

#[test]
fn exp_missing() {
    assert_eq!(refused(&without_claim("exp")), Denial::MissingExp);
}

#[test]
fn exp_as_a_string() {
    assert_eq!(
        refused(&with_claim("exp", json!((NOW + 3600).to_string()))),
        Denial::BadClaimType("exp".into())
    );
}

#[test]
fn exp_null() {
    assert_eq!(
        refused(&with_claim("exp", json!(null))),
        Denial::BadClaimType("exp".into())
    );
}

#[test]
fn exp_nan_or_infinite() {
    let k = keys();
    for literal in ["NaN", "Infinity", "-Infinity", "1e400"] {
        let payload = serde_json::to_string(&good_claims()).unwrap().replace(
            &format!("\"exp\":{}", NOW + 3600),
            &format!("\"exp\":{literal}"),
        );
        assert!(payload.contains(literal));
        let token = sign_raw(
            &segment(&header_for(&k.p256)),
            &b64(payload.as_bytes()),
            &k.p256,
            JwsAlgorithm::ES256,
        );
        assert!(
            matches!(
                refused(&token),
                Denial::BadJson(_) | Denial::BadClaimType(_)
            ),
            "{literal}"
        );
    }
}

#[test]
fn nbf_in_the_future() {
    assert_eq!(
        refused(&with_claim("nbf", json!(NOW + 1))),
        Denial::NotYetValid
    );
}

#[test]
fn nbf_of_the_wrong_type() {
    assert_eq!(
        refused(&with_claim("nbf", json!("0"))),
        Denial::BadClaimType("nbf".into())
    );
    assert_eq!(
        refused(&with_claim("nbf", json!(null))),
        Denial::BadClaimType("nbf".into())
    );
}

#[test]
fn exp_equal_to_now() {
    assert_eq!(refused(&with_claim("exp", json!(NOW))), Denial::Expired);
}

#[test]
fn iat_in_the_future() {
    assert_eq!(
        refused(&with_claim("iat", json!(NOW + 600))),
        Denial::IssuedInFuture
    );
}

// ---- issuer ----------------------------------------------------------------------------

#[test]
fn issuer_without_its_trailing_slash() {
    assert_eq!(
        refused(&with_claim("iss", json!(ISSUER.trim_end_matches('/')))),
        Denial::UnknownIssuer
    );
}

#[test]
fn issuer_with_an_extra_trailing_slash() {
    assert_eq!(
        refused(&with_claim("iss", json!(format!("{ISSUER}/")))),
        Denial::UnknownIssuer
    );
}

#[test]
fn issuer_in_another_case() {
    assert_eq!(
        refused(&with_claim("iss", json!(ISSUER.to_uppercase()))),
        Denial::UnknownIssuer
    );
}

#[test]
fn issuer_missing() {
    assert_eq!(refused(&without_claim("iss")), Denial::MissingIssuer);
}

#[test]
fn issuer_as_an_array() {
    assert_eq!(
        refused(&with_claim("iss", json!([ISSUER]))),
        Denial::MissingIssuer
    );
}

#[test]
fn issuer_of_a_key_manager_this_workload_does_not_allow() {
    let mut settings = settings();
    settings.allowed_key_managers = Some(["other".to_string()].into());
    let token = token_for(&keys().p256, CLIENT, NOW);
    assert_eq!(
        verdict_with(&config(), &settings, &token).unwrap_err(),
        Denial::KeyManagerNotAllowed(KEY_MANAGER.into())
    );
}

// ---- audience --------------------------------------------------------------------------

#[test]
fn audience_missing() {
    assert_eq!(refused(&without_claim("aud")), Denial::AudienceMismatch);
}

#[test]
fn audience_foreign() {
    assert_eq!(
        refused(&with_claim("aud", json!("payments-api"))),
        Denial::AudienceMismatch
    );
    assert_eq!(
        refused(&with_claim("aud", json!(["payments-api", "billing"]))),
        Denial::AudienceMismatch
    );
}

#[test]
fn audience_empty_array() {
    assert_eq!(
        refused(&with_claim("aud", json!([]))),
        Denial::AudienceMismatch
    );
}

// ---- type confusion (RFC 8725 §3.11) ----------------------------------------------------

#[test]
fn an_id_token_typ_where_access_tokens_are_required() {
    let k = keys();
    for typ in [json!("JWT"), json!("id_token+jwt"), json!(null)] {
        let mut header = header_for(&k.p256);
        if typ.is_null() {
            header.as_object_mut().unwrap().remove("typ");
        } else {
            header["typ"] = typ.clone();
        }
        assert_eq!(
            refused(&with_header(header, &k.p256, JwsAlgorithm::ES256)),
            Denial::TypeMismatch,
            "{typ}"
        );
    }
}

// ---- client claim ----------------------------------------------------------------------

#[test]
fn client_id_missing() {
    assert_eq!(
        refused(&without_claim("client_id")),
        Denial::MissingClientId("client_id".into())
    );
}

#[test]
fn client_id_as_an_array() {
    assert_eq!(
        refused(&with_claim("client_id", json!([CLIENT]))),
        Denial::BadClientId("client_id".into())
    );
}

#[test]
fn client_id_of_another_client() {
    assert_eq!(
        refused(&with_claim("client_id", json!("someone-else"))),
        Denial::NotSubscribed
    );
}

#[test]
fn client_id_with_a_nul_byte() {
    assert_eq!(
        refused(&with_claim("client_id", json!(format!("{CLIENT}\u{0}")))),
        Denial::BadClientId("client_id".into())
    );
}

#[test]
fn duplicate_json_members_in_the_payload() {
    let k = keys();
    for payload in [
        format!(
            r#"{{"iss":"{ISSUER}","exp":{},"aud":"orders-api","client_id":"nobody","client_id":"{CLIENT}"}}"#,
            NOW + 60
        ),
        format!(
            r#"{{"iss":"{ISSUER}","exp":{},"aud":"orders-api","client_id":"{CLIENT}","\u0063lient_id":"nobody"}}"#,
            NOW + 60
        ),
        format!(
            r#"{{"iss":"{ISSUER}","exp":{},"exp":{},"aud":"orders-api","client_id":"{CLIENT}"}}"#,
            NOW - 60,
            NOW + 60
        ),
    ] {
        let token = sign_raw(
            &segment(&header_for(&k.p256)),
            &b64(payload.as_bytes()),
            &k.p256,
            JwsAlgorithm::ES256,
        );
        assert_eq!(
            refused(&token),
            Denial::BadJson("duplicate member"),
            "{payload}"
        );
    }
}

#[test]
fn duplicate_json_members_in_the_header() {
    let k = keys();
    let header = br#"{"alg":"ES256","kid":"ec-1","typ":"at+jwt","kid":"rsa-1"}"#;
    let token = sign_raw(
        &b64(header),
        &segment(&good_claims()),
        &k.p256,
        JwsAlgorithm::ES256,
    );
    assert_eq!(refused(&token), Denial::BadJson("duplicate member"));
}

// ---- subscription state ----------------------------------------------------------------

#[test]
fn a_sandbox_key_on_a_production_api() {
    assert!(matches!(
        refused(&token_for(&keys().p256, "client-sandbox", NOW)),
        Denial::KeyTypeMismatch { .. }
    ));
}

#[test]
fn a_blocked_subscription() {
    assert_eq!(
        refused(&token_for(&keys().p256, "client-blocked", NOW)),
        Denial::SubscriptionBlocked("Blocked")
    );
}

#[test]
fn a_production_only_blocked_subscription_with_a_production_key() {
    assert_eq!(
        refused(&token_for(&keys().p256, "client-prod-only-blocked", NOW)),
        Denial::SubscriptionBlocked("ProductionOnlyBlocked")
    );
}

// ---- signature -------------------------------------------------------------------------

#[test]
fn a_token_signed_by_a_foreign_key_with_a_known_kid() {
    assert_eq!(
        refused(&token_for(&keys().attacker_rsa, CLIENT, NOW)),
        Denial::BadSignature
    );
}

#[test]
fn claims_changed_after_signing() {
    let token = token_for(&keys().p256, "client-sandbox", NOW);
    let parts: Vec<&str> = token.split('.').collect();
    let forged = format!("{}.{}.{}", parts[0], segment(&good_claims()), parts[2]);
    assert_eq!(refused(&forged), Denial::BadSignature);
}

#[test]
fn an_empty_signature() {
    let token = token_for(&keys().p256, CLIENT, NOW);
    let stripped = &token[..token.rfind('.').unwrap() + 1];
    assert_eq!(refused(stripped), Denial::MalformedToken);
}

// ---- path tricks on route rules (Istio CVE-2020-8595, CVE-2021-31920, CVE-2021-39156) ----

fn route_verdict(method: &str, raw_path: &str, scopes: &str) -> Result<Arc<Verified>, Denial> {
    let settings = Settings {
        routes: RouteRules::parse("* /admin/** admin; GET /orders/* orders:read").unwrap(),
        ..settings()
    };
    let compiled = CompiledConfig::compile(&config(), "g", &settings).unwrap();
    let mut claims = good_claims();
    claims["scope"] = json!(scopes);
    let token = claims_token(claims);
    let path = normalize(raw_path, true)?;
    evaluate(
        &compiled,
        &settings,
        &FetchedKeys::default(),
        &token,
        Some(Route {
            method,
            path: &path,
        }),
        NOW,
    )
}

#[track_caller]
fn route_refused(method: &str, raw_path: &str) {
    let denial = route_verdict(method, raw_path, "profile").expect_err(raw_path);
    assert!(
        matches!(
            denial,
            Denial::InsufficientScope(_) | Denial::InvalidPath(_)
        ),
        "{raw_path}: {denial:?}"
    );
}

#[test]
fn control_route_rules_allow_with_the_scope() {
    assert!(route_verdict("GET", "/admin/users", "admin").is_ok());
    assert!(route_verdict("GET", "/public", "profile").is_ok());
}

#[test]
fn path_with_double_slashes() {
    route_refused("GET", "//admin/users");
    route_refused("GET", "/admin//users");
}

#[test]
fn path_with_an_encoded_slash() {
    route_refused("GET", "/admin%2Fusers");
    route_refused("GET", "/public%2F..%2Fadmin");
    route_refused("GET", "/admin%5Cusers");
}

#[test]
fn path_with_dot_dot_segments() {
    route_refused("GET", "/public/../admin");
    route_refused("GET", "/public/%2e%2e/admin");
    route_refused("GET", "/public/..;/admin");
    route_refused("GET", "/public/./../admin/");
}

#[test]
fn path_with_a_query_string() {
    let uri: http::Uri = "/admin?/public".parse().unwrap();
    route_refused("GET", uri.path());
}

#[test]
fn path_with_a_fragment() {
    route_refused("GET", "/admin#/public");
}

#[test]
fn path_in_another_case() {
    route_refused("GET", "/ADMIN/users");
    route_refused("get", "/Admin");
    route_refused("HEAD", "/orders/1");
}

#[test]
fn path_with_matrix_parameters() {
    route_refused("GET", "/admin;x=1/users");
}

// ---- identity spoofing -----------------------------------------------------------------

#[test]
fn inbound_identity_headers_are_stripped() {
    let mut headers = HeaderMap::new();
    for name in [
        "X-Outband-Client-Id",
        "x-outband-application",
        "X-OUTBAND-KEY-TYPE",
        "x-Outband-Subject",
        "x-outband-scopes",
        "x-outband-tier",
        "x-outband-key-manager",
    ] {
        headers.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_static("spoofed"),
        );
    }
    outband_sidecar::identity::strip_inbound(&mut headers);
    assert!(headers.is_empty());
}
