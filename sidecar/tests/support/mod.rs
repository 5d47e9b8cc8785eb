//! Test support shared by the unit tests, the attack catalogue and the benchmarks: signing
//! keys generated in the test, token minting (honest and forged), and small configs.
//!
//! It depends only on `outband-crds` and crypto crates, so it can be compiled into the
//! library's unit tests (`#[path]`) as well as into the integration tests and benches.
#![allow(dead_code)]

use std::sync::OnceLock;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P256_SHA256_FIXED_SIGNING,
    ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair,
    RsaPublicKeyComponents,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use outband_crds::jwk::{EcCurve, EcJwk, OkpCurve, OkpJwk, RsaJwk};
use outband_crds::sidecar_config::{
    ApiRef, KeyManagerConfig, PublicJwk, SidecarConfig, SubscriptionConfig,
};
use outband_crds::{JwsAlgorithm, KeyType, SubscriptionState};
use serde_json::{Value, json};

/// The issuer of the test KeyManager.
pub const ISSUER: &str = "https://idp.example.test/";
/// The test KeyManager's name.
pub const KEY_MANAGER: &str = "idp";
/// A subscribed production client.
pub const CLIENT: &str = "client-prod";
/// The test API.
pub const API: &str = "orders";
/// The test API's namespace.
pub const NAMESPACE: &str = "shop";
/// A fixed "now" for pure tests.
pub const NOW: i64 = 1_800_000_000;

/// Unpadded base64url.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A signing key generated for the test.
pub enum Signer {
    /// RSA (RS* and PS*).
    Rsa(RsaKeyPair),
    /// P-256.
    P256(EcdsaKeyPair, Vec<u8>),
    /// P-384.
    P384(EcdsaKeyPair),
    /// Ed25519.
    Ed25519(Ed25519KeyPair),
}

/// A key with its kid and the algorithm it signs with by default.
pub struct TestKey {
    /// Key id.
    pub kid: String,
    /// Default algorithm.
    pub alg: JwsAlgorithm,
    /// The private key.
    pub signer: Signer,
}

fn rsa_pair(bits: KeySize) -> RsaKeyPair {
    RsaKeyPair::generate(bits).expect("RSA key generation")
}

impl TestKey {
    /// A fresh RSA-2048 key.
    pub fn rsa(kid: &str, alg: JwsAlgorithm) -> TestKey {
        TestKey {
            kid: kid.into(),
            alg,
            signer: Signer::Rsa(rsa_pair(KeySize::Rsa2048)),
        }
    }

    /// A fresh P-256 key.
    pub fn p256(kid: &str) -> TestKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        TestKey {
            kid: kid.into(),
            alg: JwsAlgorithm::ES256,
            signer: Signer::P256(pair, pkcs8.as_ref().to_vec()),
        }
    }

    /// A fresh P-384 key.
    pub fn p384(kid: &str) -> TestKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        TestKey {
            kid: kid.into(),
            alg: JwsAlgorithm::ES384,
            signer: Signer::P384(pair),
        }
    }

    /// A fresh Ed25519 key.
    pub fn ed25519(kid: &str) -> TestKey {
        let pair = Ed25519KeyPair::generate().unwrap();
        TestKey {
            kid: kid.into(),
            alg: JwsAlgorithm::EdDSA,
            signer: Signer::Ed25519(pair),
        }
    }

    /// The public JWK, with `alg` pinned when `pin` is true.
    pub fn jwk(&self, pin: bool) -> PublicJwk {
        let alg = pin.then_some(self.alg);
        let kid = Some(self.kid.clone());
        match &self.signer {
            Signer::Rsa(pair) => {
                let components = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                PublicJwk::Rsa(RsaJwk {
                    kid,
                    alg,
                    n: components.n.into(),
                    e: components.e.into(),
                })
            }
            Signer::P256(pair, _) => ec_jwk(kid, alg, EcCurve::P256, pair.public_key().as_ref()),
            Signer::P384(pair) => ec_jwk(kid, alg, EcCurve::P384, pair.public_key().as_ref()),
            Signer::Ed25519(pair) => PublicJwk::Okp(OkpJwk {
                kid,
                alg,
                crv: OkpCurve::Ed25519,
                x: pair.public_key().as_ref().into(),
            }),
        }
    }

    /// The public key as SubjectPublicKeyInfo DER (what a PEM certificate would hold).
    pub fn public_der(&self) -> Vec<u8> {
        match &self.signer {
            Signer::Rsa(pair) => pair.public_key().as_der().unwrap().as_ref().to_vec(),
            Signer::P256(pair, _) => pair.public_key().as_der().unwrap().as_ref().to_vec(),
            Signer::P384(pair) => pair.public_key().as_der().unwrap().as_ref().to_vec(),
            Signer::Ed25519(pair) => pair.public_key().as_der().unwrap().as_ref().to_vec(),
        }
    }

    /// The raw public key bytes (RSA: PKCS#1 DER; EC: uncompressed point; Ed25519: x).
    pub fn public_raw(&self) -> Vec<u8> {
        match &self.signer {
            Signer::Rsa(pair) => pair.public_key().as_ref().to_vec(),
            Signer::P256(pair, _) => pair.public_key().as_ref().to_vec(),
            Signer::P384(pair) => pair.public_key().as_ref().to_vec(),
            Signer::Ed25519(pair) => pair.public_key().as_ref().to_vec(),
        }
    }

    /// Signs `message` with `alg` (which must fit the key).
    pub fn sign_with(&self, alg: JwsAlgorithm, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Rsa(pair) => {
                let padding: &'static dyn signature::RsaEncoding = match alg {
                    JwsAlgorithm::RS256 => &signature::RSA_PKCS1_SHA256,
                    JwsAlgorithm::RS384 => &signature::RSA_PKCS1_SHA384,
                    JwsAlgorithm::RS512 => &signature::RSA_PKCS1_SHA512,
                    JwsAlgorithm::PS256 => &signature::RSA_PSS_SHA256,
                    JwsAlgorithm::PS384 => &signature::RSA_PSS_SHA384,
                    JwsAlgorithm::PS512 => &signature::RSA_PSS_SHA512,
                    other => panic!("{other:?} is not an RSA algorithm"),
                };
                let mut sig = vec![0; pair.public_modulus_len()];
                pair.sign(padding, &rng, message, &mut sig).unwrap();
                sig
            }
            Signer::P256(pair, _) => pair.sign(&rng, message).unwrap().as_ref().to_vec(),
            Signer::P384(pair) => pair.sign(&rng, message).unwrap().as_ref().to_vec(),
            Signer::Ed25519(pair) => pair.sign(message).as_ref().to_vec(),
        }
    }

    /// A DER (ASN.1) ECDSA signature instead of the JOSE R‖S form (P-256 keys only).
    pub fn sign_der(&self, message: &[u8]) -> Vec<u8> {
        let Signer::P256(_, pkcs8) = &self.signer else {
            panic!("P-256 only")
        };
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8).unwrap();
        pair.sign(&SystemRandom::new(), message)
            .unwrap()
            .as_ref()
            .to_vec()
    }
}

fn ec_jwk(kid: Option<String>, alg: Option<JwsAlgorithm>, crv: EcCurve, point: &[u8]) -> PublicJwk {
    let len = crv.coordinate_len();
    PublicJwk::Ec(EcJwk {
        kid,
        alg,
        crv,
        x: point[1..1 + len].into(),
        y: point[1 + len..].into(),
    })
}

/// Keys generated once per test process (RSA generation is slow in debug builds).
pub struct Keys {
    /// RS256, kid `rsa-1`.
    pub rsa: TestKey,
    /// PS256 pinned RSA key, kid `rsa-pss`.
    pub rsa_pss: TestKey,
    /// ES256, kid `ec-1`.
    pub p256: TestKey,
    /// ES384, kid `ec-384`.
    pub p384: TestKey,
    /// EdDSA, kid `ed-1`.
    pub ed25519: TestKey,
    /// A key the config does not know (an attacker's), kid `rsa-1` too.
    pub attacker_rsa: TestKey,
    /// An attacker's P-256 key, kid `ec-1` too.
    pub attacker_p256: TestKey,
}

/// The shared test keys.
pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        rsa: TestKey::rsa("rsa-1", JwsAlgorithm::RS256),
        rsa_pss: TestKey::rsa("rsa-pss", JwsAlgorithm::PS256),
        p256: TestKey::p256("ec-1"),
        p384: TestKey::p384("ec-384"),
        ed25519: TestKey::ed25519("ed-1"),
        attacker_rsa: TestKey::rsa("rsa-1", JwsAlgorithm::RS256),
        attacker_p256: TestKey::p256("ec-1"),
    })
}

/// Encodes a JSON value as a token segment.
pub fn segment(value: &Value) -> String {
    b64(serde_json::to_string(value).unwrap().as_bytes())
}

/// A token with the given header and claims, signed by `key` with `alg`.
pub fn sign(header: &Value, claims: &Value, key: &TestKey, alg: JwsAlgorithm) -> String {
    sign_raw(&segment(header), &segment(claims), key, alg)
}

/// A token from already encoded segments, signed by `key` with `alg`.
pub fn sign_raw(header: &str, payload: &str, key: &TestKey, alg: JwsAlgorithm) -> String {
    let input = format!("{header}.{payload}");
    let signature = key.sign_with(alg, input.as_bytes());
    format!("{input}.{}", b64(&signature))
}

/// The standard header for `key`.
pub fn header_for(key: &TestKey) -> Value {
    json!({"alg": key.alg.as_str(), "kid": key.kid, "typ": "at+jwt"})
}

/// Standard claims for `client`, valid at [`NOW`] for an hour.
pub fn claims_for(client: &str, now: i64) -> Value {
    json!({
        "iss": ISSUER,
        "sub": format!("sub-{client}"),
        "client_id": client,
        "aud": "orders-api",
        "scope": "orders:read profile",
        "iat": now - 10,
        "exp": now + 3600,
        "jti": "j-1",
    })
}

/// A good token signed by `key` for `client`.
pub fn token_for(key: &TestKey, client: &str, now: i64) -> String {
    sign(&header_for(key), &claims_for(client, now), key, key.alg)
}

/// A subscription.
pub fn subscription(
    client: &str,
    key_type: KeyType,
    state: SubscriptionState,
) -> SubscriptionConfig {
    SubscriptionConfig {
        key_manager: KEY_MANAGER.into(),
        consumer_key: client.into(),
        key_type,
        application: format!("app-{client}"),
        binding: format!("{NAMESPACE}/binding-{client}"),
        tier: Some("Gold".into()),
        state,
    }
}

/// The test KeyManager with every shared key (the attacker keys excluded).
pub fn key_manager() -> KeyManagerConfig {
    let k = keys();
    KeyManagerConfig {
        name: KEY_MANAGER.into(),
        issuer: ISSUER.into(),
        consumer_key_claim: "client_id".into(),
        scopes_claim: "scope".into(),
        algorithms: vec![
            JwsAlgorithm::RS256,
            JwsAlgorithm::PS256,
            JwsAlgorithm::ES256,
            JwsAlgorithm::ES384,
            JwsAlgorithm::EdDSA,
        ],
        clock_skew_seconds: 0,
        audiences: vec!["orders-api".into()],
        required_type: Some("at+jwt".into()),
        keys: vec![
            k.rsa.jwk(false),
            k.rsa_pss.jwk(true),
            k.p256.jwk(true),
            k.p384.jwk(true),
            k.ed25519.jwk(true),
        ],
        jwks_refresh: None,
    }
}

/// A config for `shop/orders` with the test KeyManager and these subscriptions:
/// `client-prod` (production, active), `client-sandbox` (sandbox, active), `client-blocked`
/// (production, blocked), `client-prod-only-blocked` (production, ProductionOnlyBlocked) and
/// `client-sandbox-pob` (sandbox, ProductionOnlyBlocked).
pub fn config() -> SidecarConfig {
    SidecarConfig {
        format: outband_crds::sidecar_config::CONFIG_FORMAT.into(),
        critical: Vec::new(),
        api: ApiRef {
            namespace: NAMESPACE.into(),
            name: API.into(),
        },
        key_managers: vec![key_manager()],
        subscriptions: vec![
            subscription(
                "client-blocked",
                KeyType::Production,
                SubscriptionState::Blocked,
            ),
            subscription(CLIENT, KeyType::Production, SubscriptionState::Active),
            subscription(
                "client-prod-only-blocked",
                KeyType::Production,
                SubscriptionState::ProductionOnlyBlocked,
            ),
            subscription(
                "client-sandbox",
                KeyType::Sandbox,
                SubscriptionState::Active,
            ),
            subscription(
                "client-sandbox-pob",
                KeyType::Sandbox,
                SubscriptionState::ProductionOnlyBlocked,
            ),
        ],
    }
}

/// Replaces the signature segment of `token`.
pub fn with_signature(token: &str, signature: &[u8]) -> String {
    let input = &token[..token.rfind('.').unwrap()];
    format!("{input}.{}", b64(signature))
}

/// HMAC-SHA-`bits` of `message` keyed with `secret`: the algorithm-confusion forgery.
pub fn hmac(bits: u16, secret: &[u8], message: &[u8]) -> Vec<u8> {
    use aws_lc_rs::hmac;
    let algorithm = match bits {
        256 => hmac::HMAC_SHA256,
        384 => hmac::HMAC_SHA384,
        _ => hmac::HMAC_SHA512,
    };
    hmac::sign(&hmac::Key::new(algorithm, secret), message)
        .as_ref()
        .to_vec()
}

/// A PEM block of `der` with `label`.
pub fn pem(label: &str, der: &[u8]) -> String {
    use base64::engine::general_purpose::STANDARD;
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}
