use super::*;
use crate::routes::{RouteRules, normalize};
use crate::test_support::{self as ts, NOW, keys};
use serde_json::json;

fn config(settings: &Settings) -> CompiledConfig {
    CompiledConfig::compile(&ts::config(), "g", settings).unwrap()
}

/// [`decide`] without a cached verification, offline (`NeedKeys` is `unknown_kid`).
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

fn run(token: &str) -> Result<Arc<Verified>, Denial> {
    let settings = Settings::new(ts::API);
    evaluate(
        &config(&settings),
        &settings,
        &FetchedKeys::default(),
        token,
        None,
        NOW,
    )
}

#[test]
fn a_good_token_of_every_key_is_accepted() {
    let k = keys();
    for key in [&k.rsa, &k.rsa_pss, &k.p256, &k.p384, &k.ed25519] {
        let verified = run(&ts::token_for(key, ts::CLIENT, NOW)).unwrap();
        assert_eq!(verified.claims.client_id, ts::CLIENT, "{}", key.kid);
        assert_eq!(verified.claims.scopes, vec!["orders:read", "profile"]);
    }
}

#[test]
fn an_unsubscribed_client_is_refused_before_the_signature() {
    let token = ts::token_for(&keys().attacker_p256, "nobody", NOW);
    assert_eq!(run(&token).unwrap_err(), Denial::NotSubscribed);
}

#[test]
fn an_expired_token_is_refused_before_the_signature() {
    let token = ts::token_for(&keys().attacker_p256, ts::CLIENT, NOW - 7200);
    assert_eq!(run(&token).unwrap_err(), Denial::Expired);
}

#[test]
fn a_subscribed_client_with_a_foreign_signature_is_refused() {
    let token = ts::token_for(&keys().attacker_p256, ts::CLIENT, NOW);
    assert_eq!(run(&token).unwrap_err(), Denial::BadSignature);
}

#[test]
fn an_unknown_kid_without_fetched_keys_is_refused() {
    let key = ts::TestKey::p256("ec-unknown");
    let token = ts::token_for(&key, ts::CLIENT, NOW);
    assert_eq!(run(&token).unwrap_err(), Denial::UnknownKid);
}

#[test]
fn fetched_keys_serve_kids_the_config_lacks() {
    let key = ts::TestKey::p256("ec-rotated");
    let token = ts::token_for(&key, ts::CLIENT, NOW);
    let settings = Settings::new(ts::API);
    let config = config(&settings);
    let fetched = FetchedKeys::default().with(
        ts::KEY_MANAGER,
        Arc::new(KeySet::build([&key.jwk(true)])),
        NOW + 60,
    );
    assert!(evaluate(&config, &settings, &fetched, &token, None, NOW).is_ok());
}

#[test]
fn configured_keys_win_over_fetched_ones() {
    let k = keys();
    let token = ts::token_for(&k.attacker_p256, ts::CLIENT, NOW);
    let settings = Settings::new(ts::API);
    let config = config(&settings);
    let fetched = FetchedKeys::default().with(
        ts::KEY_MANAGER,
        Arc::new(KeySet::build([&k.attacker_p256.jwk(true)])),
        NOW + 60,
    );
    assert_eq!(
        evaluate(&config, &settings, &fetched, &token, None, NOW).unwrap_err(),
        Denial::BadSignature
    );
}

#[test]
fn checks_run_in_the_documented_order() {
    let k = keys();
    // A token that is wrong in every way reports the earliest step.
    let mut claims = ts::claims_for("nobody", NOW - 7200);
    claims["iss"] = json!("https://evil.test/");
    let header = json!({"alg": "ES256", "kid": "nope", "typ": "JWT"});
    let token = ts::sign(&header, &claims, &k.attacker_p256, k.p256.alg);
    assert_eq!(run(&token).unwrap_err(), Denial::UnknownIssuer);
    claims["iss"] = json!(ts::ISSUER);
    let token = ts::sign(
        &json!({"alg": "RS512", "kid": "nope", "typ": "JWT"}),
        &claims,
        &k.attacker_rsa,
        k.rsa.alg,
    );
    assert_eq!(run(&token).unwrap_err(), Denial::AlgNotAllowed("RS512"));
    let token = ts::sign(&header, &claims, &k.attacker_p256, k.p256.alg);
    assert_eq!(run(&token).unwrap_err(), Denial::TypeMismatch);
    let header = json!({"alg": "ES256", "kid": "ed-1", "typ": "at+jwt"});
    let token = ts::sign(&header, &claims, &k.attacker_p256, k.p256.alg);
    assert_eq!(run(&token).unwrap_err(), Denial::KeyAlgMismatch("ES256"));
    let header = json!({"alg": "ES256", "kid": "ec-1", "typ": "at+jwt"});
    let token = ts::sign(&header, &claims, &k.attacker_p256, k.p256.alg);
    assert_eq!(run(&token).unwrap_err(), Denial::Expired);
    let token = ts::sign(
        &header,
        &ts::claims_for("nobody", NOW),
        &k.attacker_p256,
        k.p256.alg,
    );
    assert_eq!(run(&token).unwrap_err(), Denial::NotSubscribed);
}

#[test]
fn route_scopes_apply_to_the_normalised_path() {
    let settings = Settings {
        routes: RouteRules::parse("POST /orders orders:write").unwrap(),
        ..Settings::new(ts::API)
    };
    let config = config(&settings);
    let token = ts::token_for(&keys().p256, ts::CLIENT, NOW);
    let path = normalize("//ORDERS/", true).unwrap();
    let route = Route {
        method: "POST",
        path: &path,
    };
    assert_eq!(
        evaluate(
            &config,
            &settings,
            &FetchedKeys::default(),
            &token,
            Some(route),
            NOW
        )
        .unwrap_err(),
        Denial::InsufficientScope("orders:write".into())
    );
}

#[test]
fn a_verified_token_is_checked_again_for_expiry_and_the_current_subscriptions() {
    let settings = Settings::new(ts::API);
    let token = ts::token_for(&keys().p256, ts::CLIENT, NOW);
    let verified = run(&token).unwrap();
    let config = config(&settings);
    let again = |config: &CompiledConfig, now| {
        decide(
            config,
            &FetchedKeys::default(),
            &settings,
            &token,
            None,
            now,
            Some(&verified),
        )
        .into_result()
        .map(|_| ())
    };
    assert_eq!(again(&config, NOW), Ok(()));
    assert_eq!(again(&config, NOW + 3600), Err(Denial::Expired));
    let mut blocked = ts::config();
    blocked
        .subscriptions
        .retain(|s| s.consumer_key != ts::CLIENT);
    let blocked = CompiledConfig::compile(&blocked, "g2", &settings).unwrap();
    assert_eq!(again(&blocked, NOW), Err(Denial::NotSubscribed));
}

#[test]
fn an_allowed_token_carries_its_identity_headers() {
    let settings = Settings::new(ts::API);
    let token = ts::token_for(&keys().p256, ts::CLIENT, NOW);
    let Decision::Allow(allowed) = decide(
        &config(&settings),
        &FetchedKeys::default(),
        &settings,
        &token,
        None,
        NOW,
        None,
    ) else {
        panic!("allowed")
    };
    let mut headers = http::HeaderMap::new();
    allowed.identity.apply(&mut headers);
    assert_eq!(headers["x-outband-client-id"], ts::CLIENT);
    assert_eq!(headers["x-outband-key-manager"], ts::KEY_MANAGER);
    assert_eq!(headers["x-outband-key-type"], "PRODUCTION");
}

#[test]
fn an_unknown_kid_of_a_jwks_source_asks_for_keys_only_for_a_subscribed_caller() {
    let mut wire = ts::config();
    wire.key_managers[0].jwks_refresh = Some(outband_crds::sidecar_config::JwksRefresh {
        url: "https://idp.example.test/jwks".into(),
        ca_bundle: None,
        allow_loopback: false,
        timeout_seconds: 5,
    });
    let settings = Settings::new(ts::API);
    let config = CompiledConfig::compile(&wire, "g", &settings).unwrap();
    let rotated = ts::TestKey::p256("ec-rotated");
    let decide_for = |client: &str| {
        decide(
            &config,
            &FetchedKeys::default(),
            &settings,
            &ts::token_for(&rotated, client, NOW),
            None,
            NOW,
            None,
        )
    };
    match decide_for(ts::CLIENT) {
        Decision::NeedKeys { key_manager, kid } => {
            assert_eq!(key_manager, 0);
            assert_eq!(kid.as_deref(), Some("ec-rotated"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        decide_for("nobody"),
        Decision::Deny(Denial::NotSubscribed)
    ));
}

#[test]
fn decode_unverified_shows_header_and_claims() {
    let token = ts::token_for(&keys().p256, ts::CLIENT, NOW);
    let (header, claims) = crate::token::decode_unverified(&token, Limits::default()).unwrap();
    assert_eq!(header["kid"], "ec-1");
    assert_eq!(claims["client_id"], ts::CLIENT);
}

#[test]
fn fetched_keys_expire() {
    let key = ts::TestKey::p256("ec-rotated");
    let token = ts::token_for(&key, ts::CLIENT, NOW);
    let settings = Settings::new(ts::API);
    let config = config(&settings);
    let fetched = FetchedKeys::default().with(
        ts::KEY_MANAGER,
        Arc::new(KeySet::build([&key.jwk(true)])),
        NOW,
    );
    assert_eq!(
        evaluate(&config, &settings, &fetched, &token, None, NOW).unwrap_err(),
        Denial::UnknownKid
    );
}

/// The test config with its KeyManager's keys replaced by `keys` published without a `kid`,
/// and `jwks_refresh` as given (`None`: pinned keys, as the operator publishes PEM).
fn pinned_config(
    keys: &[&ts::TestKey],
    jwks_refresh: Option<outband_crds::sidecar_config::JwksRefresh>,
) -> CompiledConfig {
    let mut config = ts::config();
    config.key_managers[0].keys = keys
        .iter()
        .map(|key| {
            let mut jwk = key.jwk(false);
            jwk.set_kid(None);
            jwk
        })
        .collect();
    config.key_managers[0].jwks_refresh = jwks_refresh;
    CompiledConfig::compile(&config, "pinned", &Settings::new(ts::API)).unwrap()
}

fn run_on(config: &CompiledConfig, token: &str) -> Result<Arc<Verified>, Denial> {
    let settings = Settings::new(ts::API);
    evaluate(config, &settings, &FetchedKeys::default(), token, None, NOW)
}

/// A token of `key` whose header carries `kid` (or none).
fn token_with_kid(key: &ts::TestKey, kid: Option<&str>) -> String {
    let mut header = ts::header_for(key);
    match kid {
        Some(kid) => header["kid"] = json!(kid),
        None => {
            header.as_object_mut().unwrap().remove("kid");
        }
    }
    ts::sign(&header, &ts::claims_for(ts::CLIENT, NOW), key, key.alg)
}

#[test]
fn a_pinned_key_verifies_tokens_whatever_their_kid() {
    let k = keys();
    let config = pinned_config(&[&k.p256], None);
    for kid in [Some("issuer-key-2024"), Some("ec-1"), None] {
        let verified = run_on(&config, &token_with_kid(&k.p256, kid));
        assert!(verified.is_ok(), "kid {kid:?}: {verified:?}");
    }
}

#[test]
fn a_token_signed_by_another_key_is_refused_by_pinned_keys() {
    let k = keys();
    let config = pinned_config(&[&k.p256], None);
    for kid in [Some("issuer-key-2024"), None] {
        assert_eq!(
            run_on(&config, &token_with_kid(&k.attacker_p256, kid)).unwrap_err(),
            Denial::BadSignature
        );
    }
}

#[test]
fn pinned_keys_are_tried_only_for_their_algorithm() {
    let k = keys();
    let config = pinned_config(&[&k.p256], None);
    // An RSA signature with an arbitrary kid: the only pinned key is EC.
    assert_eq!(
        run_on(&config, &token_with_kid(&k.rsa, Some("any"))).unwrap_err(),
        Denial::KeyAlgMismatch("RS256")
    );
}

#[test]
fn every_pinned_key_of_a_rollover_is_tried() {
    let k = keys();
    let next = ts::TestKey::p256("next");
    let config = pinned_config(&[&k.p256, &next], None);
    for key in [&k.p256, &next] {
        assert!(run_on(&config, &token_with_kid(key, Some("rotated"))).is_ok());
        assert!(run_on(&config, &token_with_kid(key, None)).is_ok());
    }
}

#[test]
fn more_pinned_candidates_than_the_limit_are_not_tried() {
    let keys: Vec<ts::TestKey> = (0..=crate::keys::MAX_PINNED_CANDIDATES)
        .map(|i| ts::TestKey::p256(&format!("k{i}")))
        .collect();
    let config = pinned_config(&keys.iter().collect::<Vec<_>>(), None);
    assert!(
        config.warnings.iter().any(|w| w.contains("ES256")),
        "{:?}",
        config.warnings
    );
    assert_eq!(
        run_on(&config, &token_with_kid(&keys[0], Some("any"))).unwrap_err(),
        Denial::UnknownKid
    );
    assert_eq!(
        run_on(&config, &token_with_kid(&keys[0], None)).unwrap_err(),
        Denial::MissingKid
    );
}

#[test]
fn keys_of_a_jwks_source_are_never_tried_for_an_unknown_kid() {
    let k = keys();
    let refresh = outband_crds::sidecar_config::JwksRefresh {
        url: "https://idp.example.test/jwks".into(),
        ca_bundle: None,
        allow_loopback: false,
        timeout_seconds: 5,
    };
    let config = pinned_config(&[&k.p256, &k.p384], Some(refresh));
    assert_eq!(
        run_on(&config, &token_with_kid(&k.p256, Some("issuer-key-2024"))).unwrap_err(),
        Denial::UnknownKid
    );
    assert_eq!(
        run_on(&config, &token_with_kid(&k.p256, None)).unwrap_err(),
        Denial::MissingKid
    );
}

#[test]
fn keys_with_a_kid_are_used_only_for_that_kid_even_without_a_jwks_source() {
    // The shared test config: keys with kids, no jwksRefresh.
    let token = token_with_kid(&keys().p256, Some("issuer-key-2024"));
    assert_eq!(run(&token).unwrap_err(), Denial::UnknownKid);
}

#[test]
fn pinned_keys_are_tried_only_after_the_subscription_check() {
    let k = keys();
    let config = pinned_config(&[&k.p256], None);
    let mut header = ts::header_for(&k.attacker_p256);
    header["kid"] = json!("any");
    let token = ts::sign(
        &header,
        &ts::claims_for("nobody", NOW),
        &k.attacker_p256,
        k.p256.alg,
    );
    assert_eq!(run_on(&config, &token).unwrap_err(), Denial::NotSubscribed);
}
