//! `outband-sidecar explain` on a real config volume and real tokens: it prints the decoded
//! header and claims and the decision with its reason, and its exit status says which.

mod sidecar_common;

use std::process::Command;

use outband_tests::paths;
use sidecar_common::*;

fn explain(dir: &std::path::Path, token: &str, extra: &[&str]) -> (i32, String) {
    let binary = paths::binary("outband-sidecar").unwrap();
    let output = Command::new(binary)
        .args(["explain", "--config"])
        .arg(dir)
        .args(["--api", API, "--token", token])
        .args(extra)
        .env_remove("OUTBAND_TOKEN")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn explains_an_allowed_token() {
    let provider = provider().await;
    let (dir, _volume) = volume_with(&config_for(&provider).await);
    let token = token(&provider, PROD, "orders:read").await;
    let (status, text) = explain(dir.path(), &token, &[]);
    assert_eq!(status, 0, "{text}");
    for expected in [
        "Decision ALLOW",
        "x-outband-client-id: orders-prod",
        "\"client_id\": \"orders-prod\"",
        "\"typ\": \"at+jwt\"",
        "Time     exp in",
        KEY_MANAGER,
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[tokio::test]
async fn explains_a_refusal_with_its_reason() {
    let provider = provider().await;
    let (dir, _volume) = volume_with(&config_for(&provider).await);
    let stranger = token(&provider, STRANGER, "orders:read").await;
    let (status, text) = explain(dir.path(), &stranger, &[]);
    assert_eq!(status, 2, "{text}");
    assert!(text.contains("Decision DENY 403 not_subscribed"), "{text}");
    assert!(text.contains("reason not_subscribed"), "{text}");

    let sandbox = token(&provider, SANDBOX, "orders:read").await;
    let (_, text) = explain(dir.path(), &sandbox, &[]);
    assert!(text.contains("key_type_not_allowed"), "{text}");

    let reader = token(&provider, PROD, "orders:read").await;
    let (status, text) = explain(
        dir.path(),
        &reader,
        &[
            "--route-scopes",
            "POST /orders orders:write",
            "--method",
            "POST",
            "--path",
            "//orders",
        ],
    );
    assert_eq!(status, 2, "{text}");
    assert!(
        text.contains("requires orders:write") && text.contains("insufficient_scope"),
        "{text}"
    );
}

#[tokio::test]
async fn explains_a_malformed_token_without_printing_secrets_it_cannot_decode() {
    let provider = provider().await;
    let (dir, _volume) = volume_with(&config_for(&provider).await);
    let (status, text) = explain(dir.path(), "abc.def", &[]);
    assert_eq!(status, 2, "{text}");
    assert!(
        text.contains("cannot decode the token") && text.contains("malformed_token"),
        "{text}"
    );
}

#[tokio::test]
async fn a_missing_config_is_an_error_naming_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (status, text) = explain(dir.path(), "a.b.c", &[]);
    assert_eq!(status, 1, "{text}");
    assert!(text.contains("cannot read a config from"), "{text}");
}
