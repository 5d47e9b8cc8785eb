//! What the operator learns from an injected pod: the API it serves and the settings that
//! shape the API's config (allowed KeyManagers, allowed subscriber namespaces).
//!
//! Pods are read metadata-only. The injection webhook refuses bad annotations at admission;
//! here they are read leniently, and a pod without a usable `outband.dev/api` is ignored.

use std::collections::{BTreeMap, BTreeSet};

use outband_crds::annotations;

/// A set that is either everything or an explicit list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Allow {
    /// Every value.
    Any,
    /// Only these values.
    Only(BTreeSet<String>),
}

impl Allow {
    /// Whether `value` is in the set.
    pub fn allows(&self, value: &str) -> bool {
        match self {
            Allow::Any => true,
            Allow::Only(values) => values.contains(value),
        }
    }

    /// The values in both sets.
    pub fn intersect(&self, other: &Allow) -> Allow {
        match (self, other) {
            (Allow::Any, x) | (x, Allow::Any) => x.clone(),
            (Allow::Only(a), Allow::Only(b)) => Allow::Only(a.intersection(b).cloned().collect()),
        }
    }

    /// Parses a comma-separated list; `*` means [`Allow::Any`].
    fn parse_list(value: &str) -> Allow {
        let items: BTreeSet<String> = value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if items.contains("*") {
            Allow::Any
        } else {
            Allow::Only(items)
        }
    }
}

/// The API one pod serves, and the settings it declares for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServedApi {
    /// `outband.dev/api`.
    pub api: String,
    /// The API's settings as this pod declares them.
    pub settings: ApiSettings,
}

/// The settings of an API, merged over all its pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiSettings {
    /// `outband.dev/key-managers`: KeyManagers whose tokens the API accepts (default all).
    pub key_managers: Allow,
    /// `outband.dev/allowed-subscriber-namespaces`: other namespaces whose bindings may
    /// subscribe (default none; the API's own namespace always may).
    pub subscriber_namespaces: Allow,
}

impl ApiSettings {
    /// Merges the settings of two pods of one API: the most restrictive wins, so narrowing a
    /// setting takes effect as soon as one pod has it, and widening once every pod has it.
    pub fn merge(&self, other: &ApiSettings) -> ApiSettings {
        ApiSettings {
            key_managers: self.key_managers.intersect(&other.key_managers),
            subscriber_namespaces: self
                .subscriber_namespaces
                .intersect(&other.subscriber_namespaces),
        }
    }
}

/// Reads a pod's labels and annotations; `None` when it is not an injected workload with
/// a valid API name.
pub fn from_metadata(
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> Option<ServedApi> {
    if labels.get(annotations::INJECT_LABEL).map(String::as_str)
        != Some(annotations::INJECT_ENABLED)
    {
        return None;
    }
    let api = annotations.get(annotations::API)?.trim();
    if !is_dns_label(api) {
        return None;
    }
    let key_managers = annotations
        .get(annotations::KEY_MANAGERS)
        .map(|v| Allow::parse_list(v))
        .filter(|a| *a != Allow::Only(BTreeSet::new()))
        .unwrap_or(Allow::Any);
    let subscriber_namespaces = annotations
        .get(annotations::ALLOWED_SUBSCRIBER_NAMESPACES)
        .map(|v| Allow::parse_list(v))
        .unwrap_or(Allow::Only(BTreeSet::new()));
    Some(ServedApi {
        api: api.to_string(),
        settings: ApiSettings {
            key_managers,
            subscriber_namespaces,
        },
    })
}

/// RFC 1123 label: what API names and namespaces are.
pub fn is_dns_label(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn injected() -> BTreeMap<String, String> {
        map(&[(annotations::INJECT_LABEL, annotations::INJECT_ENABLED)])
    }

    fn only(items: &[&str]) -> Allow {
        Allow::Only(items.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn reads_the_api_and_its_settings() {
        let settings = from_metadata(
            &injected(),
            &map(&[
                (annotations::API, "orders"),
                (annotations::KEY_MANAGERS, "okta, auth0"),
                (annotations::ALLOWED_SUBSCRIBER_NAMESPACES, "team-a,team-b"),
            ]),
        )
        .unwrap();
        assert_eq!(settings.api, "orders");
        assert_eq!(settings.settings.key_managers, only(&["auth0", "okta"]));
        assert_eq!(
            settings.settings.subscriber_namespaces,
            only(&["team-a", "team-b"])
        );
    }

    #[test]
    fn defaults_are_all_key_managers_and_no_other_namespace() {
        let settings = from_metadata(&injected(), &map(&[(annotations::API, "orders")])).unwrap();
        assert_eq!(settings.settings.key_managers, Allow::Any);
        assert_eq!(settings.settings.subscriber_namespaces, only(&[]));
    }

    #[test]
    fn star_allows_every_namespace() {
        let settings = from_metadata(
            &injected(),
            &map(&[
                (annotations::API, "orders"),
                (annotations::ALLOWED_SUBSCRIBER_NAMESPACES, "*"),
            ]),
        )
        .unwrap();
        assert_eq!(settings.settings.subscriber_namespaces, Allow::Any);
    }

    #[test]
    fn pods_without_the_label_or_a_valid_api_are_ignored() {
        assert!(from_metadata(&BTreeMap::new(), &map(&[(annotations::API, "orders")])).is_none());
        assert!(from_metadata(&injected(), &BTreeMap::new()).is_none());
        assert!(from_metadata(&injected(), &map(&[(annotations::API, "Orders!")])).is_none());
    }

    #[test]
    fn merging_keeps_the_most_restrictive_settings() {
        let a = ApiSettings {
            key_managers: Allow::Any,
            subscriber_namespaces: only(&["x", "y"]),
        };
        let b = ApiSettings {
            key_managers: only(&["okta"]),
            subscriber_namespaces: only(&["y"]),
        };
        assert_eq!(
            a.merge(&b),
            ApiSettings {
                key_managers: only(&["okta"]),
                subscriber_namespaces: only(&["y"]),
            }
        );
    }
}
