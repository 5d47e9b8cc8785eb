//! The workload's `outband.dev/*` annotations, read and validated. Every refusal names the
//! annotation so the team knows what to fix.

use std::collections::BTreeMap;

use outband_crds::KeyType;
use outband_crds::annotations as ann;

use outband_crds::route_scopes::parse_route_scopes;

/// A workload's `outband.dev/*` annotations, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadAnnotations {
    /// `outband.dev/api`.
    pub api: String,
    /// `outband.dev/key-type`: `PRODUCTION` (the default) or `SANDBOX`.
    pub key_type: KeyType,
    /// `outband.dev/key-managers`; empty means every enabled KeyManager.
    pub key_managers: Vec<String>,
    /// `outband.dev/upstream-port`, when given.
    pub upstream_port: Option<PortRef>,
    /// `outband.dev/route-scopes` as written (checked with the sidecar's own parser), when it
    /// holds at least one rule.
    pub route_scopes: Option<String>,
    /// `outband.dev/allowed-subscriber-namespaces`; empty means only the API's own namespace.
    pub allowed_subscriber_namespaces: Vec<String>,
}

/// A container port, by name or number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortRef {
    /// An IANA service name, as in `containerPort.name`.
    Name(String),
    /// A port number.
    Number(u16),
}

/// An annotation with a bad (or missing) value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("annotation {annotation}: {problem}")]
pub struct AnnotationError {
    /// The annotation key, e.g. `outband.dev/api`.
    pub annotation: &'static str,
    /// What is wrong, and what is expected.
    pub problem: String,
}

fn bad(annotation: &'static str, problem: impl Into<String>) -> AnnotationError {
    AnnotationError {
        annotation,
        problem: problem.into(),
    }
}

/// Reads the annotations of a pod (or pod template).
pub fn parse(
    annotations: &BTreeMap<String, String>,
) -> Result<WorkloadAnnotations, AnnotationError> {
    let get = |key: &str| annotations.get(key).map(|v| v.trim());

    let api = match get(ann::API) {
        None | Some("") => {
            return Err(bad(
                ann::API,
                "is required: the name of the API this workload serves (a DNS label, e.g. orders)",
            ));
        }
        // ConfigMap names `outband-api-<api>-<i>` must stay within 253 characters; a DNS
        // label (at most 63) always does.
        Some(api) if is_dns_label(api) => api.to_string(),
        Some(api) => {
            return Err(bad(
                ann::API,
                format!(
                    "{api:?} is not a valid API name: use at most 63 lowercase letters, digits \
                     and '-', starting and ending with a letter or digit"
                ),
            ));
        }
    };

    let key_type = match get(ann::KEY_TYPE) {
        None | Some("PRODUCTION") => KeyType::Production,
        Some("SANDBOX") => KeyType::Sandbox,
        Some(other) => {
            return Err(bad(
                ann::KEY_TYPE,
                format!("{other:?} is not a key type: use PRODUCTION or SANDBOX"),
            ));
        }
    };

    let key_managers = match get(ann::KEY_MANAGERS) {
        None => Vec::new(),
        Some(list) => name_list(ann::KEY_MANAGERS, list, "KeyManager name", is_dns_subdomain)?,
    };

    let upstream_port = get(ann::UPSTREAM_PORT)
        .map(|value| parse_port(value).map_err(|problem| bad(ann::UPSTREAM_PORT, problem)))
        .transpose()?;

    let route_scopes = match get(ann::ROUTE_SCOPES) {
        None => None,
        Some(value) => match parse_route_scopes(value) {
            Ok(rules) if rules.rules.is_empty() => None,
            Ok(_) => Some(value.to_string()),
            Err(error) => return Err(bad(ann::ROUTE_SCOPES, error.to_string())),
        },
    };

    let allowed_subscriber_namespaces = match get(ann::ALLOWED_SUBSCRIBER_NAMESPACES) {
        None => Vec::new(),
        Some("*") => vec!["*".to_string()],
        Some(list) => name_list(
            ann::ALLOWED_SUBSCRIBER_NAMESPACES,
            list,
            "namespace name (or a lone *)",
            is_dns_label,
        )?,
    };

    Ok(WorkloadAnnotations {
        api,
        key_type,
        key_managers,
        upstream_port,
        route_scopes,
        allowed_subscriber_namespaces,
    })
}

/// A comma-separated list of names, each checked by `valid`; no empty entries, no repeats.
fn name_list(
    annotation: &'static str,
    list: &str,
    what: &str,
    valid: fn(&str) -> bool,
) -> Result<Vec<String>, AnnotationError> {
    let mut names: Vec<String> = Vec::new();
    for item in list.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(bad(
                annotation,
                format!("{list:?} has an empty entry: use a comma-separated list of names"),
            ));
        }
        if !valid(item) {
            return Err(bad(annotation, format!("{item:?} is not a valid {what}")));
        }
        if names.iter().any(|n| n == item) {
            return Err(bad(annotation, format!("{item:?} is listed twice")));
        }
        names.push(item.to_string());
    }
    Ok(names)
}

fn parse_port(value: &str) -> Result<PortRef, String> {
    if value.bytes().all(|b| b.is_ascii_digit()) && !value.is_empty() {
        return match value.parse::<u16>() {
            Ok(port) if port > 0 => Ok(PortRef::Number(port)),
            _ => Err(format!(
                "{value:?} is not a port number between 1 and 65535"
            )),
        };
    }
    if is_port_name(value) {
        Ok(PortRef::Name(value.to_string()))
    } else {
        Err(format!(
            "{value:?} is neither a port number (1-65535) nor a container port name \
             (at most 15 lowercase letters, digits and '-', with at least one letter)"
        ))
    }
}

/// RFC 1123 label: what Kubernetes accepts as a namespace name.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 subdomain: what Kubernetes accepts as most object names.
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// IANA service name, as Kubernetes validates `containerPort.name`.
pub fn is_port_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.bytes().any(|b| b.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn refused(pairs: &[(&str, &str)]) -> AnnotationError {
        parse(&annotations(pairs)).unwrap_err()
    }

    #[test]
    fn only_the_api_is_required() {
        let settings = parse(&annotations(&[(ann::API, "orders")])).unwrap();
        assert_eq!(settings.api, "orders");
        assert_eq!(settings.key_type, KeyType::Production);
        assert!(settings.key_managers.is_empty());
        assert_eq!(settings.upstream_port, None);
        assert_eq!(settings.route_scopes, None);
    }

    #[test]
    fn every_annotation_is_read() {
        let settings = parse(&annotations(&[
            (ann::API, "orders"),
            (ann::KEY_TYPE, "SANDBOX"),
            (ann::KEY_MANAGERS, "auth0, entra"),
            (ann::UPSTREAM_PORT, "8080"),
            (
                ann::ROUTE_SCOPES,
                "GET /orders/* orders:read;POST /orders orders:write",
            ),
            (ann::ALLOWED_SUBSCRIBER_NAMESPACES, "shop,billing"),
        ]))
        .unwrap();
        assert_eq!(settings.key_type, KeyType::Sandbox);
        assert_eq!(settings.key_managers, ["auth0", "entra"]);
        assert_eq!(settings.upstream_port, Some(PortRef::Number(8080)));
        assert_eq!(
            settings.route_scopes.as_deref(),
            Some("GET /orders/* orders:read;POST /orders orders:write")
        );
        assert_eq!(settings.allowed_subscriber_namespaces, ["shop", "billing"]);
    }

    #[test]
    fn a_missing_api_names_the_annotation() {
        let err = refused(&[]);
        assert_eq!(err.annotation, ann::API);
        assert!(
            err.to_string()
                .starts_with("annotation outband.dev/api: is required")
        );
    }

    #[test]
    fn an_invalid_api_name_is_refused() {
        for api in ["Orders", "-orders", "orders_v1", "a.b", &"x".repeat(64)] {
            assert_eq!(refused(&[(ann::API, api)]).annotation, ann::API, "{api}");
        }
    }

    #[test]
    fn an_unknown_key_type_is_refused() {
        for key_type in ["production", "PROD", ""] {
            let err = refused(&[(ann::API, "orders"), (ann::KEY_TYPE, key_type)]);
            assert_eq!(err.annotation, ann::KEY_TYPE, "{key_type}");
        }
    }

    #[test]
    fn bad_upstream_ports_are_refused() {
        for port in [
            "0",
            "65536",
            "99999999999",
            "Http",
            "-http",
            "a-very-long-port-name",
            "12-34",
            "web--api",
        ] {
            let err = refused(&[(ann::API, "orders"), (ann::UPSTREAM_PORT, port)]);
            assert_eq!(err.annotation, ann::UPSTREAM_PORT, "{port}");
        }
    }

    #[test]
    fn bad_key_manager_lists_are_refused() {
        for list in ["", "a,,b", "Auth0", "a,a", "a b"] {
            let err = refused(&[(ann::API, "orders"), (ann::KEY_MANAGERS, list)]);
            assert_eq!(err.annotation, ann::KEY_MANAGERS, "{list:?}");
        }
    }

    #[test]
    fn bad_allowed_namespaces_are_refused() {
        for list in ["", "shop,", "Shop", "a.b", "*,shop", "shop,shop"] {
            let err = refused(&[
                (ann::API, "orders"),
                (ann::ALLOWED_SUBSCRIBER_NAMESPACES, list),
            ]);
            assert_eq!(
                err.annotation,
                ann::ALLOWED_SUBSCRIBER_NAMESPACES,
                "{list:?}"
            );
        }
    }

    #[test]
    fn any_namespace_is_a_lone_star() {
        let settings = parse(&annotations(&[
            (ann::API, "orders"),
            (ann::ALLOWED_SUBSCRIBER_NAMESPACES, "*"),
        ]))
        .unwrap();
        assert_eq!(settings.allowed_subscriber_namespaces, ["*"]);
    }

    #[test]
    fn bad_route_scopes_are_refused() {
        let err = refused(&[(ann::API, "orders"), (ann::ROUTE_SCOPES, "GET orders read")]);
        assert_eq!(err.annotation, ann::ROUTE_SCOPES);
    }
}
