//! The alerting rules of docs/alerts/outband-rules.yaml (described in docs/metrics.md):
//! `promtool check rules` accepts them, their unit tests (docs/alerts/outband-rules.test.yaml)
//! show the alerts firing on synthetic series and staying quiet otherwise, every metric,
//! label and label value they use exists in the code (and, for the sidecar, in a real
//! `/metrics`), and the chart's PrometheusRule holds exactly the same groups.
//!
//! promtool comes from Debian's `prometheus` package (`make tools`) and Helm from `make helm`;
//! without them these tests fail naming the target.

mod sidecar_common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use outband_tests::paths;
use sidecar_common::*;
use yaml_serde::Value;

const RULES: &str = "docs/alerts/outband-rules.yaml";
const RULE_TESTS: &str = "docs/alerts/outband-rules.test.yaml";
const TOOLS_TARGET: &str = "make tools";

/// promtool on `path` (a PATH-style list), else an error naming the make target.
fn promtool_on(path: &OsStr) -> anyhow::Result<PathBuf> {
    std::env::split_paths(path)
        .map(|dir| dir.join("promtool"))
        .find(|candidate| candidate.is_file())
        .with_context(|| {
            format!(
                "`promtool` not found on PATH: run `{TOOLS_TARGET}` to install it (Debian's prometheus package)"
            )
        })
}

fn promtool() -> PathBuf {
    promtool_on(&std::env::var_os("PATH").unwrap_or_default()).unwrap()
}

/// Runs promtool with `args` in the repository root; its output, or a failure with it.
fn run_promtool(args: &[&str]) -> String {
    let output = Command::new(promtool())
        .args(args)
        .current_dir(paths::repo_root())
        .output()
        .expect("promtool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "promtool {} failed:\n{text}",
        args.join(" ")
    );
    text
}

fn read(relative: &str) -> String {
    let path = paths::repo_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(relative: &str) -> Value {
    yaml_serde::from_str(&read(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// Every rule of the rules file.
fn rules() -> Vec<Value> {
    yaml(RULES)["groups"]
        .as_sequence()
        .expect("groups")
        .iter()
        .flat_map(|group| group["rules"].as_sequence().expect("rules").clone())
        .collect()
}

#[test]
fn a_missing_promtool_fails_naming_the_make_target() {
    let empty = tempfile::tempdir().unwrap();
    let error = promtool_on(empty.path().as_os_str())
        .unwrap_err()
        .to_string();
    assert!(error.contains(TOOLS_TARGET), "{error}");
    let target = TOOLS_TARGET.trim_start_matches("make ");
    assert!(
        read("Makefile").contains(&format!("\n{target}:")),
        "the Makefile has no `{target}` target"
    );
}

#[test]
fn promtool_accepts_the_rules() {
    let output = run_promtool(&["check", "rules", RULES]);
    assert!(output.contains("SUCCESS"), "{output}");
}

#[test]
fn the_rule_unit_tests_fire_and_stay_quiet() {
    let output = run_promtool(&["test", "rules", RULE_TESTS]);
    assert!(output.contains("SUCCESS"), "{output}");

    // The JWKS-stale and deny-spike alerts are shown both firing and quiet.
    let mut firing = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for case in yaml(RULE_TESTS)["tests"].as_sequence().expect("tests") {
        for check in case["alert_rule_test"].as_sequence().into_iter().flatten() {
            let name = check["alertname"].as_str().expect("alertname").to_string();
            match check["exp_alerts"].as_sequence() {
                Some(alerts) if !alerts.is_empty() => firing.insert(name),
                _ => quiet.insert(name),
            };
        }
    }
    for alert in ["OutbandJwksStale", "OutbandSidecarDenyRateHigh"] {
        assert!(firing.contains(alert), "no test shows {alert} firing");
        assert!(quiet.contains(alert), "no test shows {alert} quiet");
    }
    // Every alert the unit tests name exists.
    let names: BTreeSet<String> = rules()
        .iter()
        .filter_map(|rule| rule["alert"].as_str().map(str::to_string))
        .collect();
    for name in firing.union(&quiet) {
        assert!(names.contains(name), "the unit tests name {name}, no rule");
    }
}

/// A selector in a PromQL expression: the metric name and its label matchers
/// (label, operator, value).
#[derive(Debug)]
struct Selector {
    name: String,
    matchers: Vec<(String, String, String)>,
}

/// The metric selectors named `outband_*` in `expr`.
fn selectors(expr: &str) -> Vec<Selector> {
    let bytes = expr.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !ident(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && ident(bytes[i]) {
            i += 1;
        }
        let name = &expr[start..i];
        if !name.starts_with("outband_") {
            continue;
        }
        let mut matchers = Vec::new();
        if bytes.get(i) == Some(&b'{') {
            let end = expr[i..].find('}').expect("a closing brace") + i;
            for matcher in expr[i + 1..end].split(',').map(str::trim) {
                if matcher.is_empty() {
                    continue;
                }
                let op_at = matcher.find(['=', '!']).expect("a matcher operator");
                let op_len =
                    if matcher[op_at..].starts_with('=') && !matcher[op_at..].starts_with("=~") {
                        1
                    } else {
                        2
                    };
                let label = matcher[..op_at].trim().to_string();
                let op = matcher[op_at..op_at + op_len].to_string();
                let value = matcher[op_at + op_len..]
                    .trim()
                    .trim_matches('"')
                    .to_string();
                matchers.push((label, op, value));
            }
            i = end + 1;
        }
        found.push(Selector {
            name: name.to_string(),
            matchers,
        });
    }
    found
}

/// Every `outband_*_*` word in `text`: metric names (prefixes such as `outband_sidecar_` and
/// crate names such as `outband_sidecar` aside).
fn metric_words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| {
            word.starts_with("outband_") && !word.ends_with('_') && word.matches('_').count() >= 2
        })
        .map(str::to_string)
        .collect()
}

/// A metric family defined in the code.
#[derive(Debug)]
struct Family {
    histogram: bool,
    /// The file that registers it.
    file: &'static str,
    /// The crate's sources, where its label values come from.
    crate_dir: &'static str,
}

/// The string literal after every occurrence of `prefix` in `text` (whitespace collapsed).
fn literals_after(text: &str, prefix: &str) -> Vec<String> {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    flat.match_indices(prefix)
        .filter_map(|(at, _)| {
            let rest = flat[at + prefix.len()..].trim_start();
            let rest = rest.strip_prefix('"')?;
            Some(rest[..rest.find('"')?].to_string())
        })
        .collect()
}

/// The metric families the operator, its webhook and the sidecar register, read from their
/// sources: the operator prefixes its names with `NAMESPACE`; the others spell them out.
fn families() -> BTreeMap<String, Family> {
    let mut families = BTreeMap::new();
    let operator_file = "operator/src/metrics.rs";
    let operator = read(operator_file);
    let namespace = literals_after(&operator, "const NAMESPACE: &str =")
        .pop()
        .expect("the operator's metric namespace");
    let histograms: BTreeSet<String> = literals_after(&operator, "HistogramOpts::new(")
        .into_iter()
        .collect();
    for name in literals_after(&operator, "&registry,")
        .into_iter()
        .chain(literals_after(&operator, "Opts::new("))
    {
        families.insert(
            format!("{namespace}_{name}"),
            Family {
                histogram: histograms.contains(&name),
                file: operator_file,
                crate_dir: "operator/src",
            },
        );
    }
    for (file, crate_dir) in [
        ("operator/src/webhook/metrics.rs", "operator/src"),
        ("sidecar/src/metrics.rs", "sidecar/src"),
    ] {
        let text = read(file);
        let histograms: BTreeSet<String> = literals_after(&text, "HistogramOpts::new(")
            .into_iter()
            .collect();
        for name in literals_after(&text, "Opts::new(")
            .into_iter()
            .chain(literals_after(&text, "IntGauge::new("))
            .chain(literals_after(&text, "Gauge::new("))
            .chain(literals_after(&text, "IntCounter::new("))
        {
            families.insert(
                name.clone(),
                Family {
                    histogram: histograms.contains(&name),
                    file,
                    crate_dir,
                },
            );
        }
    }
    families
}

/// The family a sample name belongs to (`x_bucket` → histogram `x`).
fn family_of<'a>(
    families: &'a BTreeMap<String, Family>,
    name: &str,
) -> Option<(&'a str, &'a Family)> {
    if let Some((family, found)) = families.get_key_value(name) {
        return Some((family.as_str(), found));
    }
    ["_bucket", "_count", "_sum"].iter().find_map(|suffix| {
        let base = name.strip_suffix(suffix)?;
        families
            .get_key_value(base)
            .filter(|(_, family)| family.histogram)
            .map(|(family, found)| (family.as_str(), found))
    })
}

/// Every `.rs` file's text under `dir`.
fn sources(dir: &Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            text.push_str(&sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            text.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
    text
}

/// The plain label values a matcher names (`a|b` gives both).
fn matcher_values(value: &str) -> Vec<&str> {
    value
        .split('|')
        .filter(|v| !v.is_empty())
        .filter(|v| v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .collect()
}

#[test]
fn every_metric_label_and_value_in_the_rules_exists_in_the_code() {
    let families = families();
    for expected in [
        "outband_operator_reconcile_errors_total",
        "outband_webhook_injections_total",
        "outband_sidecar_decisions_total",
    ] {
        assert!(
            families.contains_key(expected),
            "reading the sources found no {expected}: {:?}",
            families.keys()
        );
    }
    let mut crate_sources: BTreeMap<&str, String> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    for rule in rules() {
        let name = rule["alert"].as_str().unwrap_or("?");
        let expr = rule["expr"].as_str().expect("expr");
        for selector in selectors(expr) {
            let Some((family_name, family)) = family_of(&families, &selector.name) else {
                problems.push(format!("{name}: no metric {} in the code", selector.name));
                continue;
            };
            used.insert(family_name.to_string());
            let defining = read(family.file);
            let crate_text = crate_sources
                .entry(family.crate_dir)
                .or_insert_with(|| sources(&paths::repo_root().join(family.crate_dir)));
            for (label, _, value) in &selector.matchers {
                if label != "le" && !defining.contains(&format!("\"{label}\"")) {
                    problems.push(format!(
                        "{name}: {} has no label {label} in {}",
                        selector.name, family.file
                    ));
                }
                for value in matcher_values(value) {
                    if !crate_text.contains(&format!("\"{value}\"")) {
                        problems.push(format!(
                            "{name}: {label}=\"{value}\" of {} appears nowhere in {}",
                            selector.name, family.crate_dir
                        ));
                    }
                }
            }
        }
        for annotation in rule["annotations"].as_mapping().into_iter().flatten() {
            for word in metric_words(annotation.1.as_str().unwrap_or_default()) {
                if family_of(&families, &word).is_none() {
                    problems.push(format!("{name}: its annotation names {word}, no metric"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    println!("the rules use {} metric families: {used:?}", used.len());
}

#[test]
fn the_docs_name_every_metric_and_only_real_ones() {
    let families = families();
    let reference = read("docs/metrics.md");
    let undocumented: Vec<&String> = families
        .keys()
        .filter(|name| {
            let short = ["outband_operator_", "outband_sidecar_"]
                .iter()
                .find_map(|prefix| name.strip_prefix(prefix))
                .unwrap_or(name);
            !reference.contains(&format!("`{short}`")) && !reference.contains(&format!("`{name}`"))
        })
        .collect();
    assert!(
        undocumented.is_empty(),
        "docs/metrics.md does not describe {undocumented:?}"
    );
    for doc in ["docs/metrics.md", "docs/troubleshooting.md"] {
        let unknown: BTreeSet<String> = metric_words(&read(doc))
            .into_iter()
            .filter(|word| family_of(&families, word).is_none())
            .collect();
        assert!(
            unknown.is_empty(),
            "{doc} names metrics the code does not have: {unknown:?}"
        );
    }
}

/// The type of every family in a text exposition.
fn exposed_types(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| {
            let (name, kind) = rest.split_once(' ')?;
            Some((name.to_string(), kind.trim().to_string()))
        })
        .collect()
}

#[tokio::test]
async fn a_real_sidecar_serves_every_sidecar_metric_and_label_value_the_rules_use() {
    let provider = provider().await;
    let app = TestApp::start().await;
    let (dir, _volume) = volume_with(&config_for(&provider).await);
    let sidecar = Sidecar::start(dir.path(), app.port(), &[]).await;
    sidecar.wait_ready().await.unwrap();
    let client = reqwest::Client::new();
    let good = token(&provider, PROD, "orders:read").await;
    assert_eq!(
        get(&client, &sidecar.url("/"), Some(&good)).await.status(),
        200
    );
    assert_eq!(get(&client, &sidecar.url("/"), None).await.status(), 401);
    let text = sidecar.metrics().await;
    let types = exposed_types(&text);

    let mut problems = Vec::new();
    for rule in rules() {
        let name = rule["alert"].as_str().unwrap_or("?");
        for selector in selectors(rule["expr"].as_str().expect("expr")) {
            if !selector.name.starts_with("outband_sidecar_") {
                continue;
            }
            let (family, sample_name) = match ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|suffix| selector.name.strip_suffix(suffix))
            {
                Some(base) if types.get(base).is_some_and(|t| t == "histogram") => {
                    (base.to_string(), selector.name.clone())
                }
                _ => (selector.name.clone(), selector.name.clone()),
            };
            if !types.contains_key(&family) {
                problems.push(format!("{name}: /metrics has no family {family}"));
                continue;
            }
            let samples: Vec<&str> = text
                .lines()
                .filter(|line| {
                    line.strip_prefix(&sample_name)
                        .is_some_and(|rest| rest.starts_with(['{', ' ']))
                })
                .collect();
            for (label, op, value) in &selector.matchers {
                if op == "="
                    && !samples
                        .iter()
                        .any(|s| s.contains(&format!("{label}=\"{value}\"")))
                {
                    problems.push(format!(
                        "{name}: no {sample_name} sample with {label}=\"{value}\" in /metrics"
                    ));
                }
                if op != "=" && !samples.iter().any(|s| s.contains(&format!("{label}=\""))) {
                    problems.push(format!("{name}: no {sample_name} sample has label {label}"));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n/metrics:\n{text}",
        problems.join("\n")
    );
}

/// Helm as `make helm` builds it (the version is the Makefile's).
fn helm() -> anyhow::Result<PathBuf> {
    let makefile = read("Makefile");
    let version = makefile
        .lines()
        .find_map(|line| line.strip_prefix("HELM_VERSION ?= "))
        .context("HELM_VERSION in the Makefile")?
        .trim();
    paths::require(
        &paths::cache_root()
            .join(format!("helm-{version}"))
            .join("helm"),
        "make helm",
    )
}

fn run_helm(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(helm()?)
        .args(args)
        .current_dir(paths::repo_root())
        .output()
        .context("running helm")?;
    if !output.status.success() {
        bail!(
            "helm {} failed:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn rendered_prometheus_rules(extra: &[&str]) -> Vec<Value> {
    let mut args = vec![
        "template",
        "outband",
        "charts/outband",
        "--namespace",
        "outband-system",
    ];
    args.extend_from_slice(extra);
    run_helm(&args)
        .unwrap()
        .split("\n---")
        .filter_map(|doc| yaml_serde::from_str::<Value>(doc).ok())
        .filter(|doc| doc["kind"] == "PrometheusRule")
        .collect()
}

#[test]
fn the_chart_renders_the_same_rule_groups_when_prometheus_rule_is_enabled() {
    assert!(
        rendered_prometheus_rules(&[]).is_empty(),
        "a PrometheusRule is rendered by default"
    );
    let rendered = rendered_prometheus_rules(&[
        "--set",
        "prometheusRule.enabled=true",
        "--set",
        "prometheusRule.labels.release=monitoring",
    ]);
    assert_eq!(rendered.len(), 1, "one PrometheusRule");
    let rule = &rendered[0];
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["metadata"]["namespace"], "outband-system");
    assert_eq!(rule["metadata"]["labels"]["release"], "monitoring");
    let docs = yaml(RULES);
    assert!(
        rule["spec"]["groups"] == docs["groups"],
        "charts/outband/templates/prometheusrule.yaml and {RULES} differ; the template is the \
         docs file's groups with each {{{{ … }}}} written as {{{{`{{{{ … }}}}`}}}}"
    );

    let output = run_helm(&[
        "lint",
        "--strict",
        "charts/outband",
        "--set",
        "prometheusRule.enabled=true",
    ])
    .unwrap();
    assert!(output.contains("0 chart(s) failed"), "{output}");
}
