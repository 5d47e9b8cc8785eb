//! A KeyManager with `certificates.type: PEM`, end to end: the real operator compiles it into
//! an API's ConfigMaps, and the real sidecar, reading exactly those ConfigMaps' files, accepts
//! the issuer's tokens whatever `kid` they carry (a certificate names no key id) and refuses
//! tokens signed by any other key.

mod operator_common;
mod sidecar_common;

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use operator_common::{Cluster, Operator, binding_spec};
use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256};
use serde_json::json;

const ISSUER: &str = "https://pem.example";
const CLIENT: &str = "pem-client";

/// A signing key and its self-signed certificate (PEM).
fn signing_key() -> (KeyPair, String) {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let certificate = CertificateParams::new(vec!["pem.example".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap()
        .pem();
    (key, certificate)
}

/// An ES256 access token of `ISSUER` for `CLIENT`, signed with `key`, with `kid` (or none).
fn token(key: &KeyPair, kid: Option<&str>) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = kid.map(str::to_string);
    let claims = json!({
        "iss": ISSUER, "sub": CLIENT, "client_id": CLIENT, "scope": "orders:read",
        "iat": now, "exp": now + 600,
    });
    let key = EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

#[tokio::test]
async fn the_issuers_tokens_are_accepted_whatever_their_kid_and_no_other_key_is() {
    let cluster = Cluster::start().await.unwrap();
    cluster.namespace(sidecar_common::NAMESPACE).await.unwrap();
    let operator = Operator::start(&cluster.plane, "operator", &[])
        .await
        .unwrap();
    let (key, certificate) = signing_key();
    cluster
        .apply_key_manager(
            "pem-idp",
            json!({
                "displayName": "PEM IdP",
                "issuer": ISSUER,
                "endpoints": {"token": "https://pem.example/oauth2/token"},
                "certificates": {"type": "PEM", "pem": certificate},
            }),
        )
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
            "pem-app",
            binding_spec("pem-idp", CLIENT, &[sidecar_common::API]),
        )
        .await
        .unwrap();
    let config = cluster
        .wait_for_config(
            sidecar_common::NAMESPACE,
            sidecar_common::API,
            "the PEM key and the subscription",
            |c| {
                c.key_managers.len() == 1
                    && c.key_managers[0].keys.len() == 1
                    && c.subscriptions.len() == 1
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log()));
    let published = &config.key_managers[0];
    assert_eq!(published.keys[0].kid(), None, "pinned: no kid");
    assert_eq!(published.jwks_refresh, None, "pinned: no JWKS source");

    // The ConfigMaps' files, as the kubelet lays them out in the pod's volume.
    let dir = tempfile::tempdir().unwrap();
    cluster
        .write_config_volume(sidecar_common::NAMESPACE, sidecar_common::API, dir.path())
        .await
        .unwrap();
    let app = sidecar_common::TestApp::start().await;
    let sidecar = sidecar_common::Sidecar::start(dir.path(), app.port(), &[]).await;
    sidecar.wait_ready().await.unwrap();
    let client = reqwest::Client::new();
    let call = |token: String| {
        let client = client.clone();
        let url = sidecar.url("/orders");
        async move {
            sidecar_common::status_and_json(sidecar_common::get(&client, &url, Some(&token)).await)
                .await
        }
    };

    for kid in [Some("pem-idp-signing-2024"), Some("x5t-like-AbC123"), None] {
        let (status, body) = call(token(&key, kid)).await;
        assert_eq!(status, 200, "kid {kid:?}: {body}\n{}", sidecar.log());
        assert_eq!(body["identity"]["x-outband-client-id"], CLIENT, "{body}");
        assert_eq!(
            body["identity"]["x-outband-key-manager"], "pem-idp",
            "{body}"
        );
    }

    let (other, _) = signing_key();
    for kid in [Some("pem-idp-signing-2024"), None] {
        let (status, body) = call(token(&other, kid)).await;
        assert_eq!(status, 401, "kid {kid:?}: {body}");
        assert_eq!(body["code"], "invalid_token", "{body}");
    }
    assert_eq!(
        sidecar
            .metric("outband_sidecar_decisions_total{outcome=\"deny\",reason=\"bad_signature\"}")
            .await,
        2.0
    );
    assert_eq!(
        sidecar
            .metric("outband_sidecar_decisions_total{outcome=\"allow\",reason=\"ok\"}")
            .await,
        3.0
    );

    // `explain` decides the same way, offline, and says why the kid does not matter.
    let explain =
        std::process::Command::new(outband_tests::paths::binary("outband-sidecar").unwrap())
            .args(["explain", "--config"])
            .arg(dir.path())
            .args([
                "--api",
                sidecar_common::API,
                "--api-namespace",
                sidecar_common::NAMESPACE,
            ])
            .args(["--token", &token(&key, Some("pem-idp-signing-2024"))])
            .output()
            .unwrap();
    let text = String::from_utf8_lossy(&explain.stdout);
    assert!(
        explain.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&explain.stderr)
    );
    assert!(text.contains("no kid: pinned"), "{text}");
    assert!(text.contains("Decision ALLOW"), "{text}");
}
