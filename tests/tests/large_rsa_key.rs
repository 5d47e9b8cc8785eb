//! A KeyManager whose provider signs with a 9216-bit RSA key, end to end: the real OpenID
//! provider publishes it, the real operator reads it (discovery, JWKS) and reports it Ready,
//! and the real sidecar, reading exactly the operator's ConfigMaps, accepts the provider's
//! tokens and refuses a forged one. (RSA above 8192 bits is past aws-lc-rs's verifier; the
//! operator and the sidecar share one key validator, so what one publishes the other uses.)
//!
//! The key is a test fixture (`tests/fixtures/rsa-9216.private.jwk.json`): generating one
//! takes half a minute.

mod operator_common;
mod sidecar_common;

use operator_common::{Cluster, Operator, binding_spec, discovery_spec, has_condition};
use outband_tests::oidc::{OidcOptions, OidcProvider};
use serde_json::Value;

const CLIENT: &str = "test-client";

fn fixture_key() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/rsa-9216.private.jwk.json"
    ))
    .expect("the 9216-bit test key");
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn tokens_signed_with_a_9216_bit_rsa_key_are_accepted_end_to_end() {
    let cluster = Cluster::start().await.unwrap();
    cluster.namespace(sidecar_common::NAMESPACE).await.unwrap();
    let idp = OidcProvider::start(OidcOptions {
        rs256_key: Some(fixture_key()),
        ..OidcOptions::default()
    })
    .await
    .unwrap();
    let operator = Operator::start(&cluster.plane, "operator", &[])
        .await
        .unwrap();
    cluster
        .apply_key_manager("big-rsa", discovery_spec(&idp))
        .await
        .unwrap();
    cluster
        .create_pod(
            sidecar_common::NAMESPACE,
            "orders-1",
            sidecar_common::API,
            &[],
        )
        .await
        .unwrap();
    cluster
        .apply_binding(
            sidecar_common::NAMESPACE,
            "big-rsa-app",
            binding_spec("big-rsa", CLIENT, &[sidecar_common::API]),
        )
        .await
        .unwrap();

    let km = cluster
        .wait_for_key_manager("big-rsa", "Ready", "True", None)
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log()));
    let status = km.status.unwrap();
    assert!(has_condition(
        &status.conditions,
        "KeysLoaded",
        "True",
        None
    ));
    let types: Vec<&str> = status.keys.iter().map(|k| k.key_type.as_str()).collect();
    assert_eq!(types, ["RSA-9216"], "{status:?}");

    cluster
        .wait_for_config(
            sidecar_common::NAMESPACE,
            sidecar_common::API,
            "the 9216-bit key and the subscription",
            |c| {
                c.key_managers.len() == 1
                    && c.key_managers[0].keys.len() == 1
                    && c.subscriptions.len() == 1
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log()));
    let dir = tempfile::tempdir().unwrap();
    cluster
        .write_config_volume(sidecar_common::NAMESPACE, sidecar_common::API, dir.path())
        .await
        .unwrap();
    let app = sidecar_common::TestApp::start().await;
    let sidecar = sidecar_common::Sidecar::start(dir.path(), app.port(), &[]).await;
    sidecar.wait_ready().await.unwrap();
    let client = reqwest::Client::new();
    let url = sidecar.url("/orders");

    let token = idp
        .client_credentials_token(CLIENT, "test-secret", Some("api:read"))
        .await
        .unwrap();
    let (status, body) =
        sidecar_common::status_and_json(sidecar_common::get(&client, &url, Some(&token)).await)
            .await;
    assert_eq!(status, 200, "{body}\n{}", sidecar.log());
    assert_eq!(body["identity"]["x-outband-client-id"], CLIENT, "{body}");
    assert_eq!(
        body["identity"]["x-outband-key-manager"], "big-rsa",
        "{body}"
    );

    // The same token with one bit of its signature flipped is refused.
    let (input, signature) = token.rsplit_once('.').unwrap();
    let mut forged_signature = signature.as_bytes().to_vec();
    forged_signature[10] = if forged_signature[10] == b'A' {
        b'B'
    } else {
        b'A'
    };
    let forged = format!("{input}.{}", String::from_utf8(forged_signature).unwrap());
    let (status, body) =
        sidecar_common::status_and_json(sidecar_common::get(&client, &url, Some(&forged)).await)
            .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        sidecar
            .metric("outband_sidecar_decisions_total{outcome=\"deny\",reason=\"bad_signature\"}")
            .await,
        1.0
    );
    assert_eq!(
        sidecar
            .metric("outband_sidecar_decisions_total{outcome=\"allow\",reason=\"ok\"}")
            .await,
        1.0
    );
}
