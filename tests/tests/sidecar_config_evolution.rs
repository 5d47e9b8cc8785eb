//! The config format survives an upgrade (`docs/sidecar-config.md`, "How the format
//! evolves"): the real sidecar reads a document written by a newer operator — members it
//! does not know at every level, a key type, an algorithm, a subscription state and a
//! KeyManager entry it cannot read — and decides exactly as before on what it knows, while
//! a document that marks a member it does not understand as critical is refused (the last
//! good config keeps serving).

mod sidecar_common;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use flate2::{Compression, GzBuilder};
use outband_crds::sidecar_config::bundle::{self, BUNDLE_FORMAT, MANIFEST_FILE};
use outband_tests::control_plane::wait_until;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sidecar_common::*;

/// The files of a bundle holding `document` as is (not through this version's types).
fn raw_bundle(document: &Value) -> BTreeMap<String, Vec<u8>> {
    let sha256 = |bytes: &[u8]| {
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let bytes = serde_json::to_vec(document).unwrap();
    let mut gzip = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::best());
    gzip.write_all(&bytes).unwrap();
    let shard = gzip.finish().unwrap();
    let manifest = json!({
        "format": BUNDLE_FORMAT,
        "api": document["api"],
        "sha256": sha256(&bytes),
        "size": bytes.len(),
        "subscriptions": document["subscriptions"].as_array().map_or(0, Vec::len),
        "shards": [{"file": bundle::shard_file(0), "size": shard.len(), "sha256": sha256(&shard)}],
        "signedBy": "a future integrity scheme",
    });
    BTreeMap::from([
        (
            MANIFEST_FILE.to_string(),
            serde_json::to_vec(&manifest).unwrap(),
        ),
        (bundle::shard_file(0), shard),
    ])
}

/// `config` as a newer operator could write it.
fn from_a_newer_operator(config: &outband_crds::sidecar_config::SidecarConfig) -> Value {
    let mut document = serde_json::to_value(config).unwrap();
    document["generatedBy"] = json!("outband-operator 9.9.9");
    document["api"]["displayName"] = json!("Orders");
    let km = &mut document["keyManagers"][0];
    km["introspection"] = json!({"url": "https://idp.example/introspect"});
    km["algorithms"]
        .as_array_mut()
        .unwrap()
        .push(json!("ML-DSA-44"));
    let keys = km["keys"].as_array_mut().unwrap();
    for key in keys.iter_mut() {
        key["x5t#S256"] = json!("not-yet-read");
    }
    keys.push(json!({"kty": "AKP", "alg": "ML-DSA-44", "kid": "pq-1", "pub": "AAAA"}));
    document["keyManagers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "next", "issuerPattern": "https://*.idp.example"}));
    for subscription in document["subscriptions"].as_array_mut().unwrap() {
        subscription["quota"] = json!({"perMinute": 100});
        if subscription["consumerKey"] == EC_CLIENT {
            subscription["state"] = json!("Throttled");
        }
    }
    document
}

#[tokio::test]
async fn a_config_from_a_newer_operator_is_read_and_decides_as_before() {
    let provider = provider().await;
    let app = TestApp::start().await;
    let config = config_for(&provider).await;
    let dir = tempfile::tempdir().unwrap();
    let volume = outband_tests::kubelet::AtomicVolume::new(dir.path()).unwrap();
    volume
        .write(&raw_bundle(&from_a_newer_operator(&config)))
        .unwrap();
    let sidecar = Sidecar::start(dir.path(), app.port(), &[]).await;
    sidecar.wait_ready().await.unwrap();
    let client = reqwest::Client::new();
    let url = sidecar.url("/orders");
    let call = |client_id: &'static str| {
        let (client, url, provider) = (client.clone(), url.clone(), &provider);
        async move {
            let token = token(provider, client_id, "orders:read").await;
            status_and_json(get(&client, &url, Some(&token)).await).await
        }
    };

    let (status, body) = call(PROD).await;
    assert_eq!(status, 200, "{body}\n{}", sidecar.log());
    assert_eq!(body["identity"]["x-outband-client-id"], PROD, "{body}");
    // A subscription in a state this version does not know is not in effect.
    let (status, body) = call(EC_CLIENT).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "not_subscribed", "{body}");
    let (status, _) = call(BLOCKED).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_critical_member_this_sidecar_does_not_understand_is_refused() {
    let provider = provider().await;
    let app = TestApp::start().await;
    let config = config_for(&provider).await;
    let (dir, volume) = volume_with(&config);
    let sidecar = Sidecar::start(dir.path(), app.port(), &[]).await;
    sidecar.wait_ready().await.unwrap();

    let mut document = from_a_newer_operator(&config);
    document["critical"] = json!(["keyManagers.requiredClaims"]);
    document["keyManagers"][0]["requiredClaims"] = json!({"acr": "mfa"});
    volume.write(&raw_bundle(&document)).unwrap();
    let refused = "outband_sidecar_config_reload_failures_total{reason=\"unknown_format\"}";
    wait_until(
        Duration::from_secs(20),
        "the refusal of the document",
        || {
            let sidecar = &sidecar;
            async move { Ok(sidecar.metric(refused).await >= 1.0) }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", sidecar.log()));
    assert!(
        sidecar.log().contains("keyManagers.requiredClaims"),
        "{}",
        sidecar.log()
    );
    assert_eq!(
        sidecar
            .metric("outband_sidecar_config_pending_failure")
            .await,
        1.0
    );

    // The last good config still decides.
    let token = token(&provider, PROD, "orders:read").await;
    let (status, body) = status_and_json(
        get(
            &reqwest::Client::new(),
            &sidecar.url("/orders"),
            Some(&token),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
}
