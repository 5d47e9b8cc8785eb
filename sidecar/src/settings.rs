//! This workload's settings: what the injection webhook put on the command line (API, key
//! type, allowed KeyManagers, route rules, token limits). Pure data, shared by the request
//! path and `explain`.

use std::collections::BTreeSet;

use outband_crds::KeyType;
use outband_crds::command_line::WorkloadArgs;

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

    /// The settings the workload's flags describe; errors name the flag.
    pub fn from_args(args: &WorkloadArgs) -> Result<Settings, String> {
        let api = args
            .api
            .clone()
            .filter(|api| !api.is_empty())
            .ok_or("--api (OUTBAND_API) is required: the API this pod serves")?;
        let routes = RouteRules::parse(&args.route_scopes).map_err(|err| {
            format!(
                "--route-scopes (OUTBAND_ROUTE_SCOPES, annotation {}) {err}",
                outband_crds::annotations::ROUTE_SCOPES
            )
        })?;
        let key_managers: BTreeSet<String> = args
            .key_managers
            .iter()
            .map(|name| name.trim().to_string())
            .filter(|name| !name.is_empty())
            .collect();
        if args.max_token_bytes < 64 {
            return Err("--max-token-bytes must be at least 64".into());
        }
        Ok(Settings {
            api_name: api,
            api_namespace: args.api_namespace.clone().filter(|ns| !ns.is_empty()),
            key_type: args.key_type,
            allowed_key_managers: (!key_managers.is_empty()).then_some(key_managers),
            routes,
            limits: Limits {
                max_token_bytes: args.max_token_bytes,
                ..Limits::default()
            },
        })
    }

    /// Whether this workload accepts tokens of the KeyManager `name`.
    pub fn allows_key_manager(&self, name: &str) -> bool {
        self.allowed_key_managers
            .as_ref()
            .is_none_or(|allowed| allowed.contains(name))
    }
}
