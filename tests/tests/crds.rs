//! The CRDs on a real kube-apiserver: they become Established, the samples are accepted,
//! invalid objects are refused at admission with a message naming the field, and
//! `kubectl explain` teaches the fields.

use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use outband_tests::control_plane::ControlPlane;
use serde_json::{Value, json};

fn key_manager_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "outband.dev",
        "v1alpha1",
        "KeyManager",
    ))
}

fn binding_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "outband.dev",
        "v1alpha1",
        "OAuthAppBinding",
    ))
}

/// A KeyManager spec that is valid; each case breaks one thing.
fn valid_key_manager_spec() -> Value {
    json!({
        "displayName": "Test IdP",
        "type": "Custom",
        "issuer": "https://idp.example.com",
        "endpoints": {"token": "https://idp.example.com/token", "jwks": "https://idp.example.com/jwks"},
    })
}

fn valid_binding_spec() -> Value {
    json!({
        "application": {"name": "mobile-app"},
        "keyManager": "idp",
        "keyType": "PRODUCTION",
        "consumerKey": "client-1",
        "subscriptions": [{"api": "orders"}],
    })
}

/// Sets `path` (dot-separated; numeric segments index arrays) in `value`; `Value::Null`
/// removes the member.
fn with(mut value: Value, path: &str, new: Value) -> Value {
    let mut cursor = &mut value;
    let segments: Vec<&str> = path.split('.').collect();
    for segment in &segments[..segments.len() - 1] {
        cursor = match segment.parse::<usize>() {
            Ok(i) => &mut cursor[i],
            Err(_) => {
                if cursor.get(segment).is_none() {
                    cursor[*segment] = json!({});
                }
                &mut cursor[*segment]
            }
        };
    }
    let last = segments[segments.len() - 1];
    if new.is_null() {
        cursor.as_object_mut().unwrap().remove(last);
    } else {
        cursor[last] = new;
    }
    value
}

async fn create(
    api: &Api<DynamicObject>,
    kind: &str,
    name: &str,
    spec: Value,
) -> Result<(), String> {
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "outband.dev/v1alpha1", "kind": kind,
        "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap();
    api.create(&PostParams::default(), &object)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn crds_validate_at_admission_and_accept_the_samples() {
    let plane = ControlPlane::start().await.expect("control plane starts");
    eprintln!("testing against kube-apiserver {}", plane.version());
    plane.install_crds().await.expect("CRDs become Established");
    let client = plane.client().await.unwrap();

    // Every sample is accepted, applied the way an admin would.
    for namespace in ["shop", "catalog"] {
        plane.create_namespace(namespace).await.unwrap();
    }
    let samples = outband_tests::paths::repo_root().join("samples");
    let output = plane
        .kubectl()
        .unwrap()
        .args(["apply", "--server-side", "-f"])
        .arg(&samples)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "samples refused:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let applied = String::from_utf8_lossy(&output.stdout);
    assert_eq!(applied.lines().count(), 8, "{applied}");

    // Defaults are filled in by the apiserver.
    let key_managers: Api<DynamicObject> = Api::all_with(client.clone(), &key_manager_resource());
    let cognito = key_managers.get("cognito").await.unwrap();
    assert_eq!(cognito.data["spec"]["enabled"], json!(true));
    assert_eq!(
        cognito.data["spec"]["advanced"]["outOfBandProvisioning"],
        json!(true)
    );
    assert_eq!(
        cognito.data["spec"]["tokenValidation"]["method"],
        json!("SelfValidateJWT")
    );
    assert_eq!(
        cognito.data["spec"]["tokenValidation"]["clockSkewSeconds"],
        json!(60)
    );

    let km = valid_key_manager_spec;
    let key_manager_cases: Vec<(&str, Value, &str)> = vec![
        (
            "token-generation-on",
            with(km(), "advanced.tokenGeneration", json!(true)),
            "spec.advanced.tokenGeneration must be false",
        ),
        (
            "app-creation-on",
            with(km(), "advanced.oauthAppCreation", json!(true)),
            "spec.advanced.oauthAppCreation must be false",
        ),
        (
            "oob-off",
            with(km(), "advanced.outOfBandProvisioning", json!(false)),
            "spec.advanced.outOfBandProvisioning must be true",
        ),
        (
            "no-issuer",
            with(km(), "issuer", Value::Null),
            "spec.issuer is required unless spec.wellKnownUrl is set",
        ),
        (
            "no-token-endpoint",
            with(km(), "endpoints.token", Value::Null),
            "spec.endpoints.token is required unless spec.wellKnownUrl is set",
        ),
        (
            "plain-http-discovery",
            with(
                km(),
                "wellKnownUrl",
                json!("http://idp.example.com/.well-known/openid-configuration"),
            ),
            "spec.wellKnownUrl must be an https URL",
        ),
        (
            "plain-http-jwks",
            with(km(), "endpoints.jwks", json!("http://10.1.2.3/jwks")),
            "spec.endpoints.jwks must be an https URL",
        ),
        (
            "unknown-type",
            with(km(), "type", json!("Google")),
            "spec.type",
        ),
        (
            "hmac-algorithm",
            with(km(), "tokenValidation.algorithms", json!(["HS256"])),
            "spec.tokenValidation.algorithms[0]",
        ),
        (
            "none-algorithm",
            with(km(), "tokenValidation.algorithms", json!(["none"])),
            "spec.tokenValidation.algorithms[0]",
        ),
        (
            "repeated-algorithm",
            with(
                km(),
                "tokenValidation.algorithms",
                json!(["RS256", "RS256"]),
            ),
            "spec.tokenValidation.algorithms must not repeat",
        ),
        (
            "no-algorithm",
            with(km(), "tokenValidation.algorithms", json!([])),
            "spec.tokenValidation.algorithms",
        ),
        (
            "skew-too-large",
            with(km(), "tokenValidation.clockSkewSeconds", json!(3600)),
            "spec.tokenValidation.clockSkewSeconds",
        ),
        (
            "introspection-method",
            with(km(), "tokenValidation.method", json!("Introspect")),
            "spec.tokenValidation.method",
        ),
        (
            "empty-display-name",
            with(km(), "displayName", json!("")),
            "spec.displayName must not be empty",
        ),
        (
            "pem-without-pem",
            with(km(), "certificates", json!({"type": "PEM"})),
            "spec.certificates: type PEM needs exactly one of pem or pemFrom",
        ),
        (
            "pem-not-pem",
            with(km(), "certificates", json!({"type": "PEM", "pem": "hello"})),
            "spec.certificates.pem must contain a PEM block",
        ),
        (
            "empty-claim",
            with(km(), "claims.consumerKey", json!("")),
            "spec.claims.consumerKey must not be empty",
        ),
    ];
    let mut refused = 0;
    for (name, spec, expected) in key_manager_cases {
        let error = create(&key_managers, "KeyManager", name, spec)
            .await
            .expect_err(&format!("KeyManager {name} must be refused"));
        assert!(
            error.contains(expected),
            "KeyManager {name}: expected {expected:?} in {error}"
        );
        refused += 1;
    }

    let bindings: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "shop", &binding_resource());
    let b = valid_binding_spec;
    let binding_cases: Vec<(&str, Value, &str)> = vec![
        (
            "bad-key-type",
            with(b(), "keyType", json!("DEV")),
            "spec.keyType",
        ),
        (
            "empty-consumer-key",
            with(b(), "consumerKey", json!("")),
            "spec.consumerKey",
        ),
        (
            "padded-consumer-key",
            with(b(), "consumerKey", json!(" client-1")),
            "spec.consumerKey must be a non-empty client id",
        ),
        (
            "duplicate-subscription",
            with(
                b(),
                "subscriptions",
                json!([{"api": "orders"}, {"api": "orders", "tier": "Gold"}]),
            ),
            "spec.subscriptions must not list the same api",
        ),
        (
            "bad-state",
            with(b(), "subscriptions.0.state", json!("Paused")),
            "spec.subscriptions[0].state",
        ),
        (
            "bad-api-name",
            with(b(), "subscriptions.0.api", json!("Orders_API")),
            "spec.subscriptions[].api must be a DNS label",
        ),
        (
            "no-key-manager",
            with(b(), "keyManager", Value::Null),
            "spec.keyManager",
        ),
        (
            "bad-application",
            with(b(), "application.name", json!("-x")),
            "spec.application.name must start with a letter or digit",
        ),
    ];
    for (name, spec, expected) in binding_cases {
        let error = create(&bindings, "OAuthAppBinding", name, spec)
            .await
            .expect_err(&format!("OAuthAppBinding {name} must be refused"));
        assert!(
            error.contains(expected),
            "binding {name}: expected {expected:?} in {error}"
        );
        refused += 1;
    }
    eprintln!("{refused} invalid objects refused at admission");

    // Same-api subscriptions in different namespaces are distinct and accepted.
    let cross = with(
        b(),
        "subscriptions",
        json!([{"api": "orders"}, {"api": "orders", "namespace": "catalog"}]),
    );
    create(&bindings, "OAuthAppBinding", "cross-namespace", cross)
        .await
        .unwrap();

    // `kubectl explain` teaches the fields from the doc comments.
    let output = plane
        .kubectl()
        .unwrap()
        .args(["explain", "keymanager.spec"])
        .output()
        .unwrap();
    let explain = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        explain.contains("Consumer Key Claim URI") || explain.contains("claims"),
        "{explain}"
    );
    assert!(explain.contains("wellKnownUrl"), "{explain}");
    assert!(
        explain.contains("OpenID Connect discovery URL"),
        "{explain}"
    );
    let output = plane
        .kubectl()
        .unwrap()
        .args(["explain", "oab.spec.consumerKey"])
        .output()
        .unwrap();
    let explain = String::from_utf8_lossy(&output.stdout);
    assert!(
        explain.contains("Unique per KeyManager across the cluster"),
        "{explain}"
    );
}
