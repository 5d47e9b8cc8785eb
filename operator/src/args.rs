//! Command-line flags (each with an environment variable). Documented in `docs/operator.md`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{ArgAction, Parser};
pub use outband_crds::command_line::LogFormat;
use outband_crds::command_line::{LogFilter, parse_duration};

/// Reconciles KeyManagers and OAuthAppBindings into the ConfigMaps that Outband's sidecars
/// read. Connects to the cluster from KUBECONFIG or the in-cluster service account.
#[derive(Parser, Clone, Debug)]
#[command(name = "outband-operator", version, about)]
pub struct Args {
    /// Admin server.
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
    /// Leader election.
    #[command(flatten)]
    pub leader: LeaderArgs,
    /// Controllers.
    #[command(flatten)]
    pub controllers: ControllerArgs,
    /// The sidecar injection webhook.
    #[command(flatten)]
    pub webhook: crate::webhook::WebhookArgs,
    /// How long to wait for tasks to finish after SIGTERM before exiting anyway.
    #[arg(long, env = "OUTBAND_SHUTDOWN_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
}

/// Admin server flags.
#[derive(clap::Args, Clone, Debug)]
#[command(next_help_heading = "Admin server")]
pub struct AdminArgs {
    /// Address of the admin server (`/livez`, `/readyz`, `/metrics`).
    #[arg(long, env = "OUTBAND_ADMIN_LISTEN", default_value = "0.0.0.0:8080")]
    pub admin_listen: SocketAddr,
}

/// Logging flags.
#[derive(clap::Args, Clone, Debug)]
#[command(next_help_heading = "Logging")]
pub struct LogArgs {
    /// Log format.
    #[arg(long, env = "OUTBAND_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log filter in `tracing` syntax, e.g. `info` or `info,outband_operator=debug`.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log_filter: LogFilter,
}

/// Leader election flags.
#[derive(clap::Args, Clone, Debug)]
#[command(next_help_heading = "Leader election")]
pub struct LeaderArgs {
    /// Elect a leader through a coordination.k8s.io Lease; only the leader writes. Turn off
    /// only when exactly one replica runs.
    #[arg(long, env = "OUTBAND_LEADER_ELECTION", default_value_t = true, action = ArgAction::Set)]
    pub leader_election: bool,
    /// Name of the Lease.
    #[arg(long, env = "OUTBAND_LEASE_NAME", default_value = "outband-operator")]
    pub lease_name: String,
    /// Namespace of the Lease (the operator's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// How long a lease is valid without renewal, in whole seconds.
    #[arg(long, env = "OUTBAND_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// How long before expiry the holder renews, in whole seconds (also the clock skew
    /// tolerated between replicas).
    #[arg(long, env = "OUTBAND_LEASE_RENEW_BEFORE", default_value = "5s", value_parser = parse_duration)]
    pub lease_renew_before: Duration,
    /// This replica's identity in the Lease and in Events (default: hostname and process
    /// id).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
}

/// Controller flags.
#[derive(clap::Args, Clone, Debug)]
#[command(next_help_heading = "Controllers")]
pub struct ControllerArgs {
    /// Recompile every API and recheck every binding this often after its last
    /// reconcile, even without changes (writes happen only when something differs).
    #[arg(long, env = "OUTBAND_RESYNC_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub resync_interval: Duration,
    /// Wait this long after a change before compiling, to batch bursts of changes.
    #[arg(long, env = "OUTBAND_CONFIG_DEBOUNCE", default_value = "200ms", value_parser = parse_duration)]
    pub config_debounce: Duration,
    /// Never wait longer than this between two key refreshes of a KeyManager, whatever its
    /// spec and Cache-Control say.
    #[arg(long, env = "OUTBAND_MAX_REFRESH_INTERVAL", value_parser = parse_duration)]
    pub max_refresh_interval: Option<Duration>,
    /// First retry delay after a failure (a key refresh or a Kubernetes request), doubling
    /// per consecutive failure.
    #[arg(long, alias = "refresh-backoff-initial", env = "OUTBAND_BACKOFF_INITIAL", default_value = "2s", value_parser = parse_duration)]
    pub backoff_initial: Duration,
    /// Longest retry delay after consecutive failures.
    #[arg(long, alias = "refresh-backoff-max", env = "OUTBAND_BACKOFF_MAX", default_value = "5m", value_parser = parse_duration)]
    pub backoff_max: Duration,
    /// Largest discovery document or JWKS accepted, in bytes.
    #[arg(long, env = "OUTBAND_MAX_RESPONSE_BYTES", default_value_t = 1024 * 1024)]
    pub max_response_bytes: usize,
    /// Connect timeout of discovery and JWKS requests (the KeyManager's
    /// `spec.connection.timeoutSeconds` bounds the whole request).
    #[arg(long, env = "OUTBAND_CONNECT_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// KeyManagers refreshed at the same time.
    #[arg(long, env = "OUTBAND_KEY_MANAGER_CONCURRENCY", default_value_t = 4)]
    pub key_manager_concurrency: u16,
    /// Binding statuses written at the same time.
    #[arg(long, env = "OUTBAND_BINDING_CONCURRENCY", default_value_t = 8)]
    pub binding_concurrency: u16,
    /// APIs whose config is compiled and written at the same time.
    #[arg(long, env = "OUTBAND_CONFIG_CONCURRENCY", default_value_t = 4)]
    pub config_concurrency: u16,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_use_the_shared_parser() {
        let args = Args::try_parse_from(["outband-operator", "--config-debounce=1.5s"]).unwrap();
        assert_eq!(
            args.controllers.config_debounce,
            Duration::from_millis(1500)
        );
        assert!(Args::try_parse_from(["outband-operator", "--config-debounce=5 days"]).is_err());
    }

    #[test]
    fn defaults_parse() {
        let args = Args::try_parse_from(["outband-operator"]).unwrap();
        assert!(args.leader.leader_election);
        assert_eq!(args.controllers.resync_interval, Duration::from_secs(600));
        assert_eq!(args.controllers.max_refresh_interval, None);
    }

    #[test]
    fn the_sidecar_log_level_is_checked_and_passed_to_the_sidecar() {
        let args = Args::try_parse_from(["outband-operator"]).unwrap();
        assert_eq!(args.webhook.settings().log_level.as_str(), "info");
        let args = Args::try_parse_from([
            "outband-operator",
            "--sidecar-log-level=info,outband_sidecar=debug",
        ])
        .unwrap();
        assert_eq!(
            args.webhook.settings().log_level.as_str(),
            "info,outband_sidecar=debug"
        );
        let error = Args::try_parse_from([
            "outband-operator",
            "--sidecar-log-level=outband_sidecar=loud",
        ])
        .unwrap_err();
        assert!(error.to_string().contains("not a log filter"), "{error}");
    }

    #[test]
    fn the_backoff_flags_keep_their_former_names() {
        let args = Args::try_parse_from([
            "outband-operator",
            "--refresh-backoff-initial=200ms",
            "--backoff-max=1s",
        ])
        .unwrap();
        assert_eq!(args.controllers.backoff_initial, Duration::from_millis(200));
        assert_eq!(args.controllers.backoff_max, Duration::from_secs(1));
    }

    #[test]
    fn leader_election_can_be_turned_off() {
        let args = Args::try_parse_from(["outband-operator", "--leader-election=false"]).unwrap();
        assert!(!args.leader.leader_election);
    }
}
