//! Golden-file tests of the injection patch: `golden/<case>.in.yaml` is a Pod,
//! `golden/<case>.out.yaml` what the webhook does with it — the JSON patch and the pod it
//! yields, or the refusal. Regenerate with `UPDATE_GOLDEN=1 cargo test -p outband-operator
//! --test webhook_golden` and review the diff.
//!
//! Every case also checks that injecting the patched pod again changes nothing.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::Pod;
use outband_operator::webhook::{InjectorSettings, inject, settings};
use serde_json::{Value, json};

fn settings() -> InjectorSettings {
    InjectorSettings {
        image: "registry.example/outband-sidecar:1.2.3".into(),
        injector_version: "0.1.0".into(),
        resources: settings::resources("50m", "64Mi", None, Some("128Mi")),
        ..InjectorSettings::default()
    }
}

fn run(case: &str, settings: &InjectorSettings) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let input_path = dir.join(format!("{case}.in.yaml"));
    let input_text = std::fs::read_to_string(&input_path)
        .unwrap_or_else(|e| panic!("{}: {e}", input_path.display()));
    let input: Value = yaml_serde::from_str(&input_text).expect("input is YAML");
    let pod: Pod = serde_json::from_value(input.clone()).expect("input is a Pod");

    let actual = match inject(&pod, settings) {
        Ok(patch) => {
            let mut patched = input.clone();
            json_patch::patch(&mut patched, &patch).expect("the patch applies to the input");
            let again: Pod = serde_json::from_value(patched.clone()).expect("still a Pod");
            let second = inject(&again, settings).expect("a patched pod is accepted");
            assert!(
                second.is_empty(),
                "{case}: second pass is not a no-op: {second:?}"
            );
            json!({ "patch": patch, "pod": patched })
        }
        Err(error) => {
            json!({ "refused": { "reason": error.reason(), "message": error.to_string() } })
        }
    };
    let actual = yaml_serde::to_string(&actual).expect("serializable");

    let output_path = dir.join(format!("{case}.out.yaml"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&output_path, &actual).expect("writing the golden file");
        return;
    }
    let expected = std::fs::read_to_string(&output_path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            output_path.display()
        )
    });
    assert!(
        expected == actual,
        "{case}: output differs from {} (run with UPDATE_GOLDEN=1 and review the diff)\n--- expected\n{expected}\n--- actual\n{actual}",
        output_path.display()
    );
}

macro_rules! golden {
    ($($case:ident),* $(,)?) => {
        mod webhook_golden {
            $(
                #[test]
                fn $case() {
                    super::run(stringify!($case), &super::settings());
                }
            )*
        }
    };
}

golden!(
    named_port,
    numeric_port,
    undeclared_numeric_port,
    default_single_port,
    several_app_containers,
    existing_volumes,
    init_container,
    probes_on_named_port,
    already_injected,
    not_labelled,
    missing_api,
    invalid_api,
    bad_key_type,
    bad_upstream_port,
    unknown_port_name,
    ambiguous_default_port,
    bad_route_scopes,
    bad_key_managers,
    bad_allowed_namespaces,
    port_conflict,
    host_network,
);

#[test]
fn webhook_golden_regular_container_mode() {
    let settings = InjectorSettings {
        native_sidecar: false,
        ..settings()
    };
    run("regular_container", &settings);
}

#[test]
fn the_sidecar_log_level_comes_before_the_extra_arguments() {
    let settings = InjectorSettings {
        log_level: "info,outband_sidecar=debug".parse().unwrap(),
        extra_args: vec!["--log-format=json".into()],
        ..settings()
    };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let input = std::fs::read_to_string(dir.join("named_port.in.yaml")).unwrap();
    let pod: Pod = yaml_serde::from_str(&input).unwrap();
    let patch = serde_json::to_value(inject(&pod, &settings).unwrap()).unwrap();
    let args: Vec<String> = patch
        .as_array()
        .unwrap()
        .iter()
        .find_map(|op| op["value"][0]["args"].as_array().cloned())
        .expect("the sidecar container's args")
        .into_iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let tail = &args[args.len() - 2..];
    assert_eq!(
        tail,
        [
            "--log-level=info,outband_sidecar=debug",
            "--log-format=json"
        ]
    );
}
