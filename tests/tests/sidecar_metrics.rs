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

/// Polls `/metrics` until `sample` has `value` (10 s at most).
async fn wait_for_metric(sidecar: &Sidecar, sample: &str, value: f64) {
    for _ in 0..200 {
        if sidecar.metric(sample).await == value {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "{sample} never reached {value}:\n{}\n{}",
        sidecar.metrics().await,
        sidecar.log()
    );
}

#[tokio::test]
async fn a_refused_update_is_pending_until_a_good_config_arrives() {
    let provider = provider().await;
    let app = TestApp::start().await;
    let config = config_for(&provider).await;
    let (dir, volume) = volume_with(&config);
    let sidecar = Sidecar::start(dir.path(), app.port(), &[]).await;
    sidecar.wait_ready().await.unwrap();
    let text = sidecar.metrics().await;
    for reason in ["missing", "torn", "unknown_format", "wrong_api"] {
        assert!(
            text.contains(&format!(
                "outband_sidecar_config_reload_failures_total{{reason=\"{reason}\"}} 0"
            )),
            "{reason} is not at 0 from start-up:\n{text}"
        );
    }
    assert!(text.contains(&format!(
        "outband_sidecar_jwks_fetches_total{{key_manager=\"{KEY_MANAGER}\",result=\"timeout\"}} 0"
    )));
    assert_eq!(
        metric_value(&text, "outband_sidecar_config_pending_failure"),
        0.0
    );

    // A new version whose shard does not match its manifest: refused, the old one serves.
    let mut changed = config.clone();
    changed.subscriptions.pop();
    let mut torn = bundle_files(&changed);
    torn.insert(
        outband_crds::sidecar_config::bundle::shard_file(0),
        b"not the shard".to_vec(),
    );
    volume.write(&torn).unwrap();
    wait_for_metric(&sidecar, "outband_sidecar_config_pending_failure", 1.0).await;
    assert_eq!(
        sidecar
            .metric("outband_sidecar_config_reload_failures_total{reason=\"torn\"}")
            .await,
        1.0
    );
    assert_eq!(sidecar.metric("outband_sidecar_config_loaded").await, 1.0);

    volume.write(&bundle_files(&changed)).unwrap();
    wait_for_metric(&sidecar, "outband_sidecar_config_pending_failure", 0.0).await;
    assert_eq!(
        sidecar.metric("outband_sidecar_config_generation").await,
        2.0
    );
}
