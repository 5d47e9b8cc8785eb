//! End to end: the demo's story, headless, with every outcome asserted. A real control
//! plane (with kube-controller-manager), the real OpenID provider, the operator binary with
//! its webhook, a Deployment whose pod is injected by the real webhook, and the injected
//! sidecar's exact command run in front of a sample app.

use outband_tests::demo;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_story_from_key_manager_to_blocked_subscription() {
    let (report, stack) = demo::run(false).await.expect("the demo runs");
    let by_scenario = |name: &str| {
        report
            .outcomes
            .iter()
            .find(|o| o.scenario.starts_with(name))
            .unwrap_or_else(|| panic!("no outcome {name}: {:?}", report.outcomes))
    };

    let ok = by_scenario("subscribed production key");
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(
        ok.body["identity"]["x-outband-client-id"], "mobile-app-prod",
        "{ok:?}"
    );
    assert_eq!(
        ok.body["identity"]["x-outband-application"], "mobile-app",
        "{ok:?}"
    );
    assert_eq!(
        ok.body["identity"]["x-outband-key-type"], "PRODUCTION",
        "{ok:?}"
    );
    assert_eq!(ok.body["authorizationHeaderSeen"], true, "{ok:?}");

    let refusal = |name: &str, status: u16, code: &str| {
        let outcome = by_scenario(name);
        assert_eq!(outcome.status, status, "{outcome:?}");
        assert_eq!(outcome.body["code"], code, "{outcome:?}");
        outcome
    };
    let unsubscribed = refusal("client not subscribed", 403, "not_subscribed");
    let sandbox = refusal(
        "sandbox key on the production API",
        403,
        "key_type_not_allowed",
    );
    let tampered = refusal("tampered token", 401, "invalid_token");
    let missing = refusal("no token", 401, "missing_token");
    let blocked = refusal(
        "same production key, subscription Blocked",
        403,
        "subscription_blocked",
    );
    let challenge = tampered.www_authenticate.as_deref().unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer") && challenge.contains("error=\"invalid_token\""),
        "{challenge}"
    );
    for refused in [unsubscribed, sandbox, tampered, missing, blocked] {
        assert!(
            refused.body["message"].is_string(),
            "JSON error body: {refused:?}"
        );
        let text = refused.body.to_string();
        assert!(
            !text.contains("eyJ"),
            "no token content in error bodies: {text}"
        );
    }
    assert_ne!(
        unsubscribed.body["error"],
        sandbox.body["error"]
            .as_str()
            .map(|_| "x")
            .unwrap_or_default()
    );

    // The sidecar ran with the pod's own arguments (only paths and ports mapped).
    let argv = report.sidecar_argv.join(" ");
    assert!(argv.contains("--api=orders"), "{argv}");
    assert!(argv.contains("--api-namespace=shop"), "{argv}");
    assert!(argv.contains("--key-type=PRODUCTION"), "{argv}");

    // SREs see the decisions.
    assert!(
        report.sidecar_metrics.contains("outband_sidecar_"),
        "{}",
        report.sidecar_metrics
    );
    assert!(
        report.operator_metrics.contains("outband_operator_"),
        "{}",
        report.operator_metrics
    );
    drop(stack);
}
