//! Where keys come from and when the operator refuses them: PEM in a Secret or inline,
//! the SSRF guard on loopback endpoints, and keys kept across an operator restart while
//! the provider is down.

mod operator_common;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use operator_common::*;
use rcgen::{
    CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P521_SHA512, SignatureAlgorithm,
};
use serde_json::json;

fn certificate() -> String {
    certificate_with(&PKCS_ECDSA_P256_SHA256)
}

fn certificate_with(algorithm: &'static SignatureAlgorithm) -> String {
    let key = KeyPair::generate_for(algorithm).unwrap();
    CertificateParams::new(vec!["idp.example".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap()
        .pem()
}

async fn put_secret(cluster: &Cluster, pem: &str) {
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "idp-signing", "namespace": "outband-system"},
        "stringData": {"tls.crt": pem},
    }))
    .unwrap();
    Api::<Secret>::namespaced(cluster.client.clone(), "outband-system")
        .patch(
            "idp-signing",
            &PatchParams::apply("outband-tests").force(),
            &Patch::Apply(&secret),
        )
        .await
        .unwrap();
}

fn pem_spec(certificates: serde_json::Value) -> serde_json::Value {
    json!({
        "displayName": "PEM IdP",
        "issuer": "https://pem.example",
        "endpoints": {"token": "https://pem.example/oauth2/token"},
        "certificates": certificates,
    })
}

#[tokio::test]
async fn pem_certificates_inline_or_in_a_secret_become_keys() {
    let cluster = Cluster::start().await.unwrap();
    cluster.namespace("shop").await.unwrap();
    cluster.namespace("outband-system").await.unwrap();
    let operator = Operator::start(&cluster.plane, "operator", &[])
        .await
        .unwrap();
    put_secret(&cluster, &certificate()).await;
    cluster
        .apply_key_manager(
            "from-secret",
            pem_spec(
                json!({"type": "PEM", "pemFrom": {"kind": "Secret", "name": "idp-signing",
                            "namespace": "outband-system", "key": "tls.crt"}}),
            ),
        )
        .await
        .unwrap();
    cluster
        .apply_key_manager(
            "inline",
            pem_spec(json!({"type": "PEM", "pem": certificate()})),
        )
        .await
        .unwrap();
    cluster
        .create_pod("shop", "orders-1", "orders", &[])
        .await
        .unwrap();

    for name in ["from-secret", "inline"] {
        let km = cluster
            .wait_for_key_manager(name, "KeysLoaded", "True", Some("PemConverted"))
            .await
            .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log()));
        let status = km.status.unwrap();
        assert!(has_condition(
            &status.conditions,
            "Ready",
            "True",
            Some("Ready")
        ));
        assert_eq!(status.keys.len(), 1);
        assert_eq!(status.keys[0].key_type, "EC-P-256");
        // The status names the key by its RFC 7638 thumbprint (43 base64url characters).
        assert_eq!(status.keys[0].kid.as_deref().map(str::len), Some(43));
    }
    let config = cluster
        .wait_for_config("shop", "orders", "both PEM KeyManagers", |c| {
            c.key_managers.len() == 2 && c.key_managers.iter().all(|k| k.keys.len() == 1)
        })
        .await
        .unwrap();
    // Pinned keys: no JWKS source, and no kid (the issuer's tokens carry their own).
    assert!(config.key_managers.iter().all(|k| k.jwks_refresh.is_none()));
    assert!(
        config
            .key_managers
            .iter()
            .all(|k| k.keys.iter().all(|key| key.kid().is_none())),
        "{config:?}"
    );
    let keys_of = |c: &outband_crds::sidecar_config::SidecarConfig| {
        c.key_managers
            .iter()
            .find(|k| k.name == "from-secret")
            .map(|k| k.keys.clone())
            .unwrap_or_default()
    };
    let before = keys_of(&config);

    // A new certificate in the Secret replaces the key at the next refresh.
    put_secret(&cluster, &certificate()).await;
    cluster
        .wait_for_config("shop", "orders", "the new certificate's key", |c| {
            let now = keys_of(c);
            !now.is_empty() && now != before
        })
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log()));
}

#[tokio::test]
async fn a_refresh_whose_keys_are_all_refused_is_counted_as_no_usable_keys() {
    let cluster = Cluster::start().await.unwrap();
    let operator = Operator::start(&cluster.plane, "operator", &[])
        .await
        .unwrap();
    // P-521 is refused (the wire format has no ES512): the PEM converts, no key is usable.
    cluster
        .apply_key_manager(
            "p521",
            pem_spec(json!({"type": "PEM", "pem": certificate_with(&PKCS_ECDSA_P521_SHA512)})),
        )
        .await
        .unwrap();
    cluster
        .wait_for_key_manager("p521", "KeysLoaded", "False", Some("NoUsableKeys"))
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log()));
    let metrics = operator.metrics().await.unwrap();
    let series = |result: &str| {
        format!("outband_operator_jwks_fetches_total{{key_manager=\"p521\",result=\"{result}\"}}")
    };
    let value = |result: &str| {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{} ", series(result))))
            .map(|v| v.trim().parse::<f64>().unwrap())
    };
    assert!(value("NoUsableKeys").unwrap_or(0.0) >= 1.0, "{metrics}");
    // Created at 0 when the KeyManager was first seen, and never counted.
    assert_eq!(value("success"), Some(0.0), "{metrics}");
    assert_eq!(value("InvalidPem"), Some(0.0), "{metrics}");
}

#[tokio::test]
async fn loopback_endpoints_are_refused_unless_the_key_manager_allows_them() {
    let cluster = Cluster::start().await.unwrap();
    let idp = provider(&[]).await.unwrap();
    let operator = Operator::start(&cluster.plane, "operator", &[])
        .await
        .unwrap();
    let mut spec = discovery_spec(&idp);
    spec["connection"]["allowLoopback"] = json!(false);
    cluster
        .apply_key_manager("idp", spec.clone())
        .await
        .unwrap();
    let km = cluster
        .wait_for_key_manager("idp", "Discovered", "False", Some("DiscoveryFailed"))
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log()));
    let status = km.status.unwrap();
    let discovered = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Discovered")
        .unwrap();
    assert!(
        discovered.message.contains("allowLoopback"),
        "{}",
        discovered.message
    );
    assert!(has_condition(&status.conditions, "Ready", "False", None));
    assert!(status.keys.is_empty());
    assert!(
        operator
            .metric(
                "outband_operator_discovery_fetches_total",
                "key_manager=\"idp\",result=\"SchemeRefused\""
            )
            .await
            .unwrap()
            >= 1.0
    );

    spec["connection"]["allowLoopback"] = json!(true);
    cluster.apply_key_manager("idp", spec).await.unwrap();
    cluster
        .wait_for_key_manager("idp", "Ready", "True", Some("Ready"))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_operator_restarted_while_the_provider_is_down_keeps_the_published_keys() {
    let cluster = Cluster::start().await.unwrap();
    let mut idp = provider(&[]).await.unwrap();
    cluster.namespace("shop").await.unwrap();
    let mut first = Operator::start(&cluster.plane, "operator-1", &[])
        .await
        .unwrap();
    cluster
        .apply_key_manager("idp", discovery_spec(&idp))
        .await
        .unwrap();
    cluster
        .create_pod("shop", "orders-1", "orders", &[])
        .await
        .unwrap();
    cluster
        .apply_binding("shop", "app", binding_spec("idp", "client-a", &["orders"]))
        .await
        .unwrap();
    let config = cluster
        .wait_for_config("shop", "orders", "keys and the subscription", |c| {
            !kids(c, "idp").is_empty() && c.subscriptions.len() == 1
        })
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", first.log()));
    let versions = resource_versions(&cluster, "shop", "orders").await.unwrap();

    first.process.kill();
    idp.stop().await;
    let second = Operator::start(&cluster.plane, "operator-2", &[])
        .await
        .unwrap();
    // The new leader cannot reach the provider: it keeps the keys it finds published.
    let km = cluster
        .wait_for_key_manager("idp", "Ready", "True", Some("ServingLastKnownGoodKeys"))
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", second.log()));
    let status = km.status.unwrap();
    let keys_loaded = status
        .conditions
        .iter()
        .find(|c| c.type_ == "KeysLoaded")
        .unwrap();
    assert!(
        keys_loaded
            .message
            .contains("recovered from the published config"),
        "{}",
        keys_loaded.message
    );
    // Three failed refreshes and a few resyncs later, the config is still the same.
    let unchanged = second.value(series::UNCHANGED).await;
    second
        .wait_for_increase(
            "failed refreshes and resyncs",
            &[
                (series::IDP_FAILURES, 0.0, 3.0),
                (series::UNCHANGED, unchanged, 2.0),
            ],
        )
        .await;
    let (_, now) = cluster
        .sidecar_config("shop", "orders")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now, config);
    assert_eq!(
        resource_versions(&cluster, "shop", "orders").await.unwrap(),
        versions
    );
    let binding = cluster.binding("shop", "app").await.unwrap();
    assert!(has_condition(
        &binding.status.unwrap().conditions,
        "Ready",
        "True",
        Some("Bound")
    ));
}
