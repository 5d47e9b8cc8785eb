use super::*;
use crate::routes::{RouteRules, normalize};
use crate::test_support::{self as ts, NOW, keys};
use serde_json::json;

fn config(settings: &Settings) -> CompiledConfig {
    CompiledConfig::compile(&ts::config(), "g", settings).unwrap()
}

fn run(token: &str) -> Result<Verified, Denial> {
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
fn recheck_applies_expiry_and_the_current_subscriptions() {
    let settings = Settings::new(ts::API);
    let verified = run(&ts::token_for(&keys().p256, ts::CLIENT, NOW)).unwrap();
    let config = config(&settings);
    assert!(recheck(&config, &settings, &verified, None, NOW).is_ok());
    assert_eq!(
        recheck(&config, &settings, &verified, None, NOW + 3600).unwrap_err(),
        Denial::Expired
    );
    let mut blocked = ts::config();
    blocked
        .subscriptions
        .retain(|s| s.consumer_key != ts::CLIENT);
    let blocked = CompiledConfig::compile(&blocked, "g2", &settings).unwrap();
    assert_eq!(
        recheck(&blocked, &settings, &verified, None, NOW).unwrap_err(),
        Denial::NotSubscribed
    );
}

#[test]
fn decode_unverified_shows_header_and_claims() {
    let token = ts::token_for(&keys().p256, ts::CLIENT, NOW);
    let (header, claims) = decode_unverified(&token, Limits::default()).unwrap();
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
