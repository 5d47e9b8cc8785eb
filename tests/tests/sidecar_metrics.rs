//! The sidecar's `/metrics` after real traffic is accepted by `promtool check metrics`
//! (Debian's `prometheus` package, installed by `make tools`), and its labels stay bounded.

mod sidecar_common;

use std::io::Write;
use std::process::{Command, Stdio};

use outband_tests::paths;
use sidecar_common::*;

#[tokio::test]
async fn promtool_accepts_the_metrics_after_traffic() {
    let promtool = paths::tool_on_path("promtool", "make tools").unwrap();
    let provider = provider().await;
    let app = TestApp::start().await;
    let (dir, _volume) = volume_with(&config_for(&provider).await);
    let sidecar = Sidecar::start(
        dir.path(),
        app.port(),
        &["--route-scopes", "POST /orders orders:write"],
    )
    .await;
    sidecar.wait_ready().await.unwrap();
    let client = reqwest::Client::new();
    let good = token(&provider, PROD, "orders:read").await;
    for (path, token) in [
        ("/", Some(good.as_str())),
        ("/", Some(good.as_str())),
        ("/", None),
        ("/", Some("not-a-token")),
        (
            "/",
            Some(token(&provider, STRANGER, "orders:read").await.as_str()),
        ),
        ("/%2F", Some(good.as_str())),
    ] {
        get(&client, &sidecar.url(path), token).await;
    }
    client
        .post(sidecar.url("/orders"))
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();

    let text = sidecar.metrics().await;
    for family in [
        "outband_sidecar_decisions_total",
        "outband_sidecar_auth_duration_seconds",
        "outband_sidecar_upstream_duration_seconds",
        "outband_sidecar_config_generation",
        "outband_sidecar_config_reloads_total",
        "outband_sidecar_token_cache_lookups_total",
        "outband_sidecar_jwks_fetches_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} missing:\n{text}"
        );
    }
    assert_eq!(
        metric_value(
            &text,
            "outband_sidecar_decisions_total{outcome=\"allow\",reason=\"ok\"}"
        ),
        2.0
    );
    assert_eq!(
        metric_value(
            &text,
            "outband_sidecar_decisions_total{outcome=\"deny\",reason=\"missing_token\"}"
        ),
        1.0
    );
    assert_eq!(
        metric_value(
            &text,
            "outband_sidecar_decisions_total{outcome=\"deny\",reason=\"malformed_token\"}"
        ),
        1.0
    );
    assert_eq!(
        metric_value(
            &text,
            "outband_sidecar_decisions_total{outcome=\"deny\",reason=\"not_subscribed\"}"
        ),
        1.0
    );
    assert_eq!(
        metric_value(
            &text,
            "outband_sidecar_decisions_total{outcome=\"deny\",reason=\"invalid_path\"}"
        ),
        1.0
    );
    assert_eq!(
        metric_value(
            &text,
            "outband_sidecar_decisions_total{outcome=\"deny\",reason=\"insufficient_scope\"}"
        ),
        1.0
    );
    assert_eq!(
        metric_value(
            &text,
            "outband_sidecar_token_cache_lookups_total{result=\"hit\"}"
        ),
        2.0
    );
    assert_eq!(metric_value(&text, "outband_sidecar_config_loaded"), 1.0);
    assert!(!text.contains(&good), "no token in the metrics");

    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics refused /metrics:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
