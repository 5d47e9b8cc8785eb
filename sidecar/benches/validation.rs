//! `make bench-sidecar`: the cost of a decision, measured on `decision::decide` — the
//! function the proxy decides with. Decode + verify per algorithm (every step, signature
//! included), the verified-token cache hit path (hash, lookup, re-checks, identity headers),
//! and the subscription lookup in a config of 10,000.

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};
use outband_crds::{JwsAlgorithm, KeyType, SubscriptionState};
use outband_sidecar::auth::Authenticator;
use outband_sidecar::cache::TokenCache;
use outband_sidecar::config::CompiledConfig;
use outband_sidecar::decision::{Decision, FetchedKeys, decide, now as unix_now};
use outband_sidecar::metrics::Metrics;
use outband_sidecar::policy::authorize;
use outband_sidecar::refresh::{HttpSource, JwksRefresher};
use outband_sidecar::routes::{RouteRules, normalize};
use outband_sidecar::settings::Settings;
use support::*;

fn big_config() -> outband_crds::sidecar_config::SidecarConfig {
    let mut config = config();
    for i in 0..10_000 {
        config.subscriptions.push(subscription(
            &format!("client-{i:05}"),
            KeyType::Production,
            SubscriptionState::Active,
        ));
    }
    config
}

fn decode_and_verify(c: &mut Criterion) {
    let settings = Settings::new(API);
    let compiled = CompiledConfig::compile(&big_config(), "bench", &settings).unwrap();
    let fetched = FetchedKeys::default();
    let now = unix_now();
    let k = keys();
    let mut group = c.benchmark_group("decode_verify");
    for (name, key, alg) in [
        ("RS256", &k.rsa, JwsAlgorithm::RS256),
        ("PS256", &k.rsa_pss, JwsAlgorithm::PS256),
        ("ES256", &k.p256, JwsAlgorithm::ES256),
        ("ES384", &k.p384, JwsAlgorithm::ES384),
        ("EdDSA", &k.ed25519, JwsAlgorithm::EdDSA),
    ] {
        let mut header = header_for(key);
        header["alg"] = alg.as_str().into();
        let token = sign(&header, &claims_for(CLIENT, now), key, alg);
        let decision = decide(&compiled, &fetched, &settings, &token, None, now, None);
        assert!(matches!(decision, Decision::Allow(_)), "{decision:?}");
        group.bench_function(name, |b| {
            b.iter(|| {
                decide(
                    &compiled,
                    &fetched,
                    &settings,
                    black_box(&token),
                    None,
                    now,
                    None,
                )
            })
        });
    }
    let forged = token_for(&k.attacker_p256, "nobody", now);
    group.bench_function("unsubscribed forgery (refused before the signature)", |b| {
        b.iter(|| {
            decide(
                &compiled,
                &fetched,
                &settings,
                black_box(&forged),
                None,
                now,
                None,
            )
        })
    });
    group.finish();
}

/// The signature alone: `jsonwebtoken` with a `DecodingKey` held per kid (what the sidecar
/// does; aws-lc still parses the public key inside each call) against aws-lc's
/// `ParsedPublicKey`, parsed once.
fn signature_only(c: &mut Criterion) {
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256,
    };
    use base64::Engine;
    let k = keys();
    let mut group = c.benchmark_group("signature_only");
    let message = b"header.payload";
    for (name, key, alg, parsed) in [
        (
            "RS256",
            &k.rsa,
            JwsAlgorithm::RS256,
            ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, k.rsa.public_der()).unwrap(),
        ),
        (
            "ES256",
            &k.p256,
            JwsAlgorithm::ES256,
            ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, k.p256.public_raw()).unwrap(),
        ),
    ] {
        let signature = key.sign_with(alg, message);
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&signature);
        let verifier = outband_sidecar::keys::VerificationKey::from_jwk(&key.jwk(true)).unwrap();
        assert!(verifier.verify(alg, message, &signature, &encoded));
        group.bench_function(format!("{name} jsonwebtoken, DecodingKey per kid"), |b| {
            b.iter(|| verifier.verify(alg, black_box(message), &signature, &encoded))
        });
        assert!(parsed.verify_sig(message, &signature).is_ok());
        group.bench_function(
            format!("{name} aws-lc ParsedPublicKey (for comparison)"),
            |b| b.iter(|| parsed.verify_sig(black_box(message), &signature).is_ok()),
        );
    }
    group.finish();
}

fn cache_hit(c: &mut Criterion) {
    let settings = Arc::new(Settings::new(API));
    let metrics = Metrics::new();
    let auth = Authenticator::new(
        settings.clone(),
        TokenCache::new(100_000, Duration::from_secs(300)),
        JwksRefresher::new(
            Arc::new(HttpSource::new()),
            Duration::from_secs(30),
            Duration::from_secs(300),
            metrics.clone(),
        ),
        metrics,
        Duration::from_secs(900),
    );
    auth.install_config(CompiledConfig::compile(&big_config(), "bench", &settings).unwrap());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let now = unix_now();
    let mut headers = HeaderMap::new();
    let token = token_for(&keys().rsa, CLIENT, now);
    headers.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    assert!(runtime.block_on(auth.authorize(&headers, None)).is_ok());
    let mut group = c.benchmark_group("cache");
    group.bench_function(
        "hit (hash, lookup, exp + subscription re-check, identity)",
        |b| {
            b.iter(|| {
                runtime
                    .block_on(auth.authorize(black_box(&headers), None))
                    .unwrap()
            })
        },
    );
    let snapshot = auth.snapshot().unwrap();
    let verified = decide(
        &snapshot.config,
        &snapshot.fetched,
        &settings,
        &token,
        None,
        now,
        None,
    )
    .into_result()
    .unwrap()
    .verified;
    group.bench_function("re-check only (decide with a cached verification)", |b| {
        b.iter(|| {
            decide(
                &snapshot.config,
                &snapshot.fetched,
                &settings,
                &token,
                None,
                now,
                Some(black_box(&verified)),
            )
        })
    });
    group.finish();
}

fn subscription_lookup(c: &mut Criterion) {
    let settings = Settings::new(API);
    let compiled = CompiledConfig::compile(&big_config(), "bench", &settings).unwrap();
    let now = unix_now();
    let verified = decide(
        &compiled,
        &FetchedKeys::default(),
        &settings,
        &token_for(&keys().p256, "client-07777", now),
        None,
        now,
        None,
    )
    .into_result()
    .unwrap()
    .verified;
    let mut group = c.benchmark_group("subscription");
    group.bench_function("lookup in 10,000", |b| {
        b.iter(|| {
            compiled
                .subscription(KEY_MANAGER, black_box("client-07777"))
                .unwrap()
        })
    });
    group.bench_function("authorize (lookup, key type, state)", |b| {
        b.iter(|| authorize(&compiled, &settings, 0, black_box(&verified.claims), None).unwrap())
    });
    let routed = Settings {
        routes: RouteRules::parse(
            "GET /orders/* orders:read; POST /orders orders:write; * /admin/** admin",
        )
        .unwrap(),
        ..Settings::new(API)
    };
    group.bench_function("normalise path + 3 route rules", |b| {
        b.iter(|| {
            let path = normalize(black_box("/orders//42/./"), true).unwrap();
            routed.routes.required_scopes("GET", &path).len()
        })
    });
    group.bench_function("compile a config of 10,000", |b| {
        let config = big_config();
        b.iter(|| CompiledConfig::compile(black_box(&config), "bench", &settings).unwrap())
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = decode_and_verify, signature_only, cache_hit, subscription_lookup
}
criterion_main!(benches);
