//! The Helm chart: `helm lint`, the webhook configuration it renders, and `helm template`
//! applied to a real kube-apiserver with a server-side dry run.
//!
//! Helm is built by `make helm` into the version-keyed cache; without it these tests fail
//! with a message naming that target.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use outband_tests::control_plane::ControlPlane;
use outband_tests::paths;
use yaml_serde::Value;

/// The Helm release `make helm` builds (the Makefile's `HELM_VERSION`).
const HELM_VERSION: &str = "v3.22.0";
const RELEASE_NAMESPACE: &str = "outband-system";

fn helm_in(cache_root: &Path) -> anyhow::Result<PathBuf> {
    paths::require(
        &cache_root.join(format!("helm-{HELM_VERSION}")).join("helm"),
        "make helm",
    )
}

fn helm() -> anyhow::Result<PathBuf> {
    helm_in(&paths::cache_root())
}

fn chart() -> PathBuf {
    paths::repo_root().join("charts/outband")
}

/// Runs helm with `args`; its stdout, or an error with its output.
fn run_helm(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(helm()?)
        .args(args)
        .output()
        .context("running helm")?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    if !output.status.success() {
        bail!(
            "helm {} failed ({}):\n{}{}",
            args.join(" "),
            output.status,
            text(&output.stdout),
            text(&output.stderr)
        );
    }
    Ok(text(&output.stdout))
}

fn template(extra: &[&str]) -> anyhow::Result<String> {
    let chart = chart();
    let mut args = vec![
        "template",
        "outband",
        chart.to_str().unwrap(),
        "--namespace",
        RELEASE_NAMESPACE,
    ];
    args.extend_from_slice(extra);
    run_helm(&args)
}

fn documents(rendered: &str) -> Vec<Value> {
    rendered
        .split("\n---")
        .filter_map(|doc| yaml_serde::from_str::<Value>(doc).ok())
        .filter(|doc| doc.get("kind").is_some())
        .collect()
}

fn kinds(rendered: &str) -> Vec<String> {
    documents(rendered)
        .iter()
        .map(|d| d["kind"].as_str().unwrap_or_default().to_string())
        .collect()
}

const ALL_OPTIONAL: &[&str] = &[
    "--set",
    "metrics.serviceMonitor.enabled=true",
    "--set",
    "metrics.sidecarPodMonitor.enabled=true",
    "--set",
    "grafanaDashboard.enabled=true",
];

#[test]
fn a_missing_helm_fails_naming_make_helm() {
    let empty = tempfile::tempdir().unwrap();
    let error = helm_in(empty.path()).unwrap_err().to_string();
    assert!(error.contains("make helm"), "{error}");
}

#[test]
fn the_tests_use_the_helm_version_that_make_builds() {
    let makefile = std::fs::read_to_string(paths::repo_root().join("Makefile")).unwrap();
    assert!(
        makefile.contains(&format!("HELM_VERSION ?= {HELM_VERSION}")),
        "Makefile and tests/tests/helm_chart.rs disagree on the Helm version"
    );
}

#[test]
fn helm_lint_passes_with_default_and_every_optional_value() {
    let chart = chart();
    let chart = chart.to_str().unwrap();
    let output = run_helm(&["lint", "--strict", chart]).unwrap();
    assert!(output.contains("0 chart(s) failed"), "{output}");
    let mut args = vec!["lint", "--strict", chart];
    args.extend_from_slice(ALL_OPTIONAL);
    args.extend_from_slice(&["--set", "webhook.certManager.enabled=true"]);
    let output = run_helm(&args).unwrap();
    assert!(output.contains("0 chart(s) failed"), "{output}");
}

#[test]
fn optional_objects_are_rendered_only_when_enabled() {
    let default = kinds(&template(&[]).unwrap());
    for kind in [
        "ServiceMonitor",
        "PodMonitor",
        "ConfigMap",
        "Certificate",
        "Issuer",
    ] {
        assert!(
            !default.contains(&kind.to_string()),
            "{kind} rendered by default"
        );
    }
    let mut args = ALL_OPTIONAL.to_vec();
    args.extend_from_slice(&["--set", "webhook.certManager.enabled=true"]);
    let all = kinds(&template(&args).unwrap());
    for kind in [
        "ServiceMonitor",
        "PodMonitor",
        "ConfigMap",
        "Certificate",
        "Issuer",
    ] {
        assert!(all.contains(&kind.to_string()), "{kind} missing: {all:?}");
    }
}

#[test]
fn the_grafana_dashboard_is_valid_json() {
    let rendered = template(&["--set", "grafanaDashboard.enabled=true"]).unwrap();
    let dashboard = documents(&rendered)
        .into_iter()
        .find(|d| d["kind"] == "ConfigMap")
        .expect("dashboard ConfigMap");
    let json = dashboard["data"]["outband.json"]
        .as_str()
        .expect("dashboard data");
    let parsed: serde_json::Value = serde_json::from_str(json).expect("dashboard is JSON");
    assert!(parsed["panels"].as_array().is_some_and(|p| !p.is_empty()));
}

#[test]
fn the_rendered_webhook_never_lets_a_labelled_pod_start_unprotected() {
    let rendered = template(&[]).unwrap();
    let configuration = documents(&rendered)
        .into_iter()
        .find(|d| d["kind"] == "MutatingWebhookConfiguration")
        .expect("a MutatingWebhookConfiguration");
    let webhook = &configuration["webhooks"][0];
    assert_eq!(webhook["failurePolicy"], "Fail");
    assert_eq!(webhook["sideEffects"], "None");
    assert!(webhook["timeoutSeconds"].as_u64().unwrap() <= 10);
    assert_eq!(
        webhook["objectSelector"]["matchLabels"]["outband.dev/inject"],
        "enabled"
    );
    let excluded = &webhook["namespaceSelector"]["matchExpressions"][0];
    assert_eq!(excluded["key"], "kubernetes.io/metadata.name");
    assert_eq!(excluded["operator"], "NotIn");
    let values: Vec<&str> = excluded["values"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        values.contains(&"kube-system") && values.contains(&RELEASE_NAMESPACE),
        "{values:?}"
    );
    assert_eq!(webhook["rules"][0]["operations"][0], "CREATE");
    assert_eq!(webhook["rules"][0]["resources"][0], "pods");
    assert!(
        webhook["clientConfig"].get("caBundle").is_none(),
        "the caBundle belongs to the operator (or cert-manager), not to helm"
    );
}

#[test]
fn the_operator_deployment_runs_two_replicas_with_leader_election() {
    let rendered = template(&[]).unwrap();
    let deployment = documents(&rendered)
        .into_iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("a Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(args.contains(&"--leader-election=true"), "{args:?}");
    assert!(args.contains(&"--webhook-listen=0.0.0.0:9443"), "{args:?}");
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
}

#[tokio::test]
async fn helm_template_is_accepted_by_the_real_apiserver_in_a_server_side_dry_run() {
    let rendered = template(&["--include-crds", "--set", "grafanaDashboard.enabled=true"]).unwrap();
    let plane = ControlPlane::start().await.expect("control plane starts");
    plane.create_namespace(RELEASE_NAMESPACE).await.unwrap();
    let manifest = plane.scratch_dir().join("outband-chart.yaml");
    std::fs::write(&manifest, &rendered).unwrap();

    let output = plane
        .kubectl()
        .unwrap()
        .args([
            "apply",
            "--server-side",
            "--dry-run=server",
            "--field-manager=outband-tests",
            "-f",
        ])
        .arg(&manifest)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "kubectl apply failed:\n{stdout}\n{stderr}"
    );
    for kind in kinds(&rendered) {
        let kind = kind.to_lowercase();
        assert!(stdout.contains(&kind), "{kind} not applied:\n{stdout}");
    }
    println!("kube-apiserver {} accepted:\n{stdout}", plane.version());
}

#[test]
fn the_sidecar_log_level_value_becomes_the_operators_flag() {
    let args = |values: &[&str]| -> Vec<String> {
        let rendered = template(values).unwrap();
        let deployment = documents(&rendered)
            .into_iter()
            .find(|d| d["kind"] == "Deployment")
            .expect("a Deployment");
        deployment["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect()
    };
    assert!(args(&[]).contains(&"--sidecar-log-level=info".to_string()));
    assert!(
        args(&["--set", "sidecar.logLevel=info\\,outband_sidecar=debug"])
            .contains(&"--sidecar-log-level=info,outband_sidecar=debug".to_string())
    );
}

#[test]
fn the_operator_accepts_every_flag_the_chart_passes() {
    let operator = paths::binary("outband-operator").unwrap();
    let variants: [&[&str]; 3] = [
        &[],
        &[
            "--set",
            "webhook.certManager.enabled=true",
            "--set",
            "sidecar.extraArgs={--log-format=json}",
            "--set",
            "leaderElection.enabled=false",
            "--set",
            "sidecar.logLevel=info\\,outband_sidecar=debug",
        ],
        &[
            "--set",
            "webhook.enabled=false",
            "--set",
            "operator.logFormat=text",
        ],
    ];
    for values in variants {
        let rendered = template(values).unwrap();
        let deployment = documents(&rendered)
            .into_iter()
            .find(|d| d["kind"] == "Deployment")
            .expect("a Deployment");
        let args: Vec<String> = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        // clap checks every flag and value before it honours a trailing --help.
        let output = Command::new(&operator)
            .args(&args)
            .arg("--help")
            .env_clear()
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "outband-operator refused the chart's arguments {args:?}:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
