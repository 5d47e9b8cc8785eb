//! This workload's settings: what the injection webhook put on the command line (API, key
//! type, allowed KeyManagers, route rules, token limits). Pure data, shared by the request
//! path and `explain`.

use std::collections::BTreeSet;

use outband_crds::KeyType;

use crate::routes::RouteRules;
use crate::token::shape::Limits;

/// How this workload decides on a request.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The API this pod serves.
    pub api_name: String,
    /// Its namespace; `None` accepts the namespace the config names (for `explain`).
    pub api_namespace: Option<String>,
    /// The key type this deployment accepts.
    pub key_type: KeyType,
    /// KeyManagers this workload accepts; `None` for every KeyManager in the config.
    pub allowed_key_managers: Option<BTreeSet<String>>,
    /// Per-route scope rules.
    pub routes: RouteRules,
    /// Token size limits.
    pub limits: Limits,
}

impl Settings {
    /// Settings for `api_name` with defaults: production keys, every KeyManager, no route
    /// rules, default limits.
    pub fn new(api_name: impl Into<String>) -> Settings {
        Settings {
            api_name: api_name.into(),
            api_namespace: None,
            key_type: KeyType::Production,
            allowed_key_managers: None,
            routes: RouteRules::default(),
            limits: Limits::default(),
        }
    }

    /// Whether this workload accepts tokens of the KeyManager `name`.
    pub fn allows_key_manager(&self, name: &str) -> bool {
        self.allowed_key_managers
            .as_ref()
            .is_none_or(|allowed| allowed.contains(name))
    }
}
