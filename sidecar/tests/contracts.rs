//! Properties of the two contracts between the operator and the sidecar, over generated
//! inputs:
//!
//! - every key the operator publishes (its JWKS reading, then the config's wire format) is
//!   a key the sidecar uses, with the algorithms it was published for;
//! - every command line the injection webhook writes is read back by the sidecar as written.

mod support;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
    KeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Parser;
use outband_crds::KeyType;
use outband_crds::command_line::{
    LogFilter, POD_NAMESPACE_REFERENCE, PodArgs, SidecarCommandLine, WorkloadArgs,
};
use outband_crds::sidecar_config::bundle;
use outband_sidecar::cli::Cli;
use outband_sidecar::keys::KeySet;
use proptest::prelude::*;
use serde_json::{Value, json};

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Real public points of each curve (a point off its curve is one of the mutations).
fn real_points() -> Vec<(&'static str, Vec<u8>)> {
    let rng = SystemRandom::new();
    let mut points = Vec::new();
    for _ in 0..3 {
        for (crv, alg) in [
            ("P-256", &ECDSA_P256_SHA256_FIXED_SIGNING),
            ("P-384", &ECDSA_P384_SHA384_FIXED_SIGNING),
        ] {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
            let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref()).unwrap();
            points.push((crv, pair.public_key().as_ref().to_vec()));
        }
        let pair = Ed25519KeyPair::generate().unwrap();
        points.push(("Ed25519", pair.public_key().as_ref().to_vec()));
    }
    points
}

/// An RSA modulus of `bits` bits (top bit set), odd or even, with filler bytes.
fn modulus(bits: usize, fill: u8, odd: bool) -> Vec<u8> {
    let mut n = vec![fill | 1; bits.div_ceil(8)];
    let top = bits % 8;
    n[0] = if top == 0 {
        0x80 | fill
    } else {
        1 << (top - 1)
    };
    let last = n.len() - 1;
    n[last] = if odd { n[last] | 1 } else { n[last] & 0xfe };
    n
}

fn optional<T: std::fmt::Debug + Clone + 'static>(
    values: Vec<T>,
) -> impl Strategy<Value = Option<T>> {
    prop_oneof![Just(None), prop::sample::select(values).prop_map(Some)]
}

/// A raw JWK as an identity provider could publish it: mostly well formed, sometimes not.
fn raw_jwk(points: Vec<(&'static str, Vec<u8>)>) -> impl Strategy<Value = Value> {
    let algs = vec![
        "RS256", "RS384", "PS256", "PS512", "ES256", "ES384", "EdDSA", "HS256", "none", "ES512",
    ];
    let rsa = (
        prop_oneof![1000usize..2100, 2040usize..8300, 8100usize..16500, 16300usize..17000],
        any::<u8>(),
        prop::bool::weighted(0.9),
        prop::sample::select(vec![vec![1u8, 0, 1], vec![3], vec![1], vec![2], vec![1, 0, 0, 0, 1]]),
    )
        .prop_map(|(bits, fill, odd, e)| {
            json!({"kty": "RSA", "n": b64(&modulus(bits, fill, odd)), "e": b64(&e)})
        });
    let curve = (prop::sample::select(points), 0usize..4).prop_map(|((crv, point), mutation)| {
        let mut point = point;
        if mutation == 1 {
            let last = point.len() - 1;
            point[last] ^= 1; // off the curve (almost surely)
        }
        match crv {
            "Ed25519" => {
                json!({"kty": "OKP", "crv": crv, "x": b64(if mutation == 2 { &point[1..] } else { &point })})
            }
            _ => {
                let len = (point.len() - 1) / 2;
                let x = &point[1..1 + len];
                let y = &point[1 + len..];
                let crv = if mutation == 3 { "P-521" } else { crv };
                json!({"kty": "EC", "crv": crv, "x": b64(x), "y": b64(if mutation == 2 { &y[1..] } else { y })})
            }
        }
    });
    (
        prop_oneof![4 => rsa, 4 => curve, 1 => Just(json!({"kty": "oct", "k": "c2VjcmV0"}))],
        optional(algs),
        optional(vec!["sig", "enc"]),
        optional(vec!["kid-a", "kid-b", "", "k"]),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(mut jwk, alg, usage, kid, private)| {
            if let Some(alg) = alg {
                jwk["alg"] = json!(alg);
            }
            if let Some(usage) = usage {
                jwk["use"] = json!(usage);
            }
            if let Some(kid) = kid {
                jwk["kid"] = json!(kid);
            }
            if private {
                jwk["d"] = json!("AQAB");
            }
            jwk
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_key_the_operator_publishes_is_a_key_the_sidecar_uses(
        jwks in prop::collection::vec(raw_jwk(real_points()), 1..6),
        pem in any::<bool>(),
    ) {
        // The operator: the JWKS read by the one parser, published as PEM keys are (no kid)
        // or as they are, inside a config document that goes through the wire format.
        let document = serde_json::to_vec(&json!({ "keys": jwks })).unwrap();
        let checked = outband_idp::jwks::parse(&document).unwrap();
        let published = if pem {
            outband_idp::jwks::pinned(&checked.keys)
        } else {
            checked.keys.clone()
        };
        let mut config = support::config();
        config.key_managers[0].keys = published.clone();
        let encoded = bundle::encode(&config).unwrap();
        let read = bundle::decode(|name| {
            if name == bundle::MANIFEST_FILE {
                Ok(serde_json::to_vec(&encoded.manifest).unwrap())
            } else {
                Ok(encoded.shards[0].clone())
            }
        })
        .unwrap()
        .1;
        prop_assert_eq!(&read.key_managers[0].keys, &published);

        // The sidecar: every published key is usable, with the algorithms it was published
        // for.
        let keys = KeySet::build(&read.key_managers[0].keys);
        prop_assert!(keys.rejected().is_empty(), "refused: {:?}", keys.rejected());
        prop_assert_eq!(keys.keys().len(), published.len());
        for (key, jwk) in keys.keys().iter().zip(&published) {
            prop_assert_eq!(key.pinned_alg, jwk.alg());
        }

        // Nothing was lost on the way: each raw key was published or refused with a reason.
        prop_assert!(checked.keys.len() + checked.rejected.len() >= jwks.len());
    }

    #[test]
    fn every_command_line_the_webhook_writes_the_sidecar_reads(
        api in "[a-z]([a-z0-9-]{0,20}[a-z0-9])?",
        sandbox in any::<bool>(),
        key_managers in prop::collection::vec("[a-z][a-z0-9.-]{0,20}[a-z0-9]", 0..4),
        route_scopes in prop::sample::select(vec![
            "",
            "GET /orders/* orders:read",
            "GET /orders/* orders:read; POST /orders orders:write",
            "* /admin/** admin",
        ]),
        max_token_bytes in prop_oneof![Just(16 * 1024usize), 64usize..1_000_000],
        log_level in prop::sample::select(vec!["info", "debug", "info,outband_sidecar=debug", "warn,hyper=error"]),
        (proxy_port, admin_port, upstream_port) in (1u16.., 1u16.., 1u16..),
    ) {
        let line = SidecarCommandLine {
            pod: PodArgs {
                listen: ([0, 0, 0, 0], proxy_port).into(),
                admin_listen: ([0, 0, 0, 0], admin_port).into(),
                upstream: format!("http://127.0.0.1:{upstream_port}"),
                config_dir: "/etc/outband/config".into(),
            },
            workload: WorkloadArgs {
                api: Some(api),
                api_namespace: Some(POD_NAMESPACE_REFERENCE.into()),
                key_type: if sandbox { KeyType::Sandbox } else { KeyType::Production },
                key_managers,
                route_scopes: route_scopes.into(),
                max_token_bytes,
            },
            log_level: log_level.parse::<LogFilter>().unwrap(),
            extra: Vec::new(),
        };
        let mut argv = vec!["outband-sidecar".to_string()];
        argv.extend(line.to_args());
        let cli = Cli::try_parse_from(&argv).unwrap();
        prop_assert!(cli.command.is_none());
        prop_assert_eq!(&cli.run.pod, &line.pod);
        prop_assert_eq!(&cli.run.decision, &line.workload);
        prop_assert_eq!(&cli.run.log.log_level, &line.log_level);
        prop_assert!(outband_sidecar::settings::Settings::from_args(&cli.run.decision).is_ok());
    }
}
