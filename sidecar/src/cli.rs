//! Command line and environment: every flag has an `OUTBAND_*` variable. The flags the
//! injection webhook writes are `outband_crds::command_line`'s groups ([`PodArgs`],
//! [`WorkloadArgs`], [`LogArgs`]), the same types the webhook renders; the proxy's tuning
//! flags are here. See `docs/sidecar.md` for the reference.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use outband_crds::command_line::parse_duration;
pub use outband_crds::command_line::{LogArgs, LogFormat, PodArgs, WorkloadArgs};

/// Outband's sidecar: validates JWT access tokens and enforces subscriptions in front of one
/// API's app.
#[derive(Debug, Parser)]
#[command(
    name = "outband-sidecar",
    version,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// A tool instead of the proxy.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The proxy's settings (when no subcommand is given).
    #[command(flatten)]
    pub run: RunArgs,
}

/// Tools.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Decode a token and show the decision this API's sidecar would make, with its reason.
    Explain(ExplainArgs),
}

/// How the sidecar talks to the app.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum UpstreamProtocol {
    /// HTTP/1.1 (HTTP/2 clients are translated).
    Http1,
    /// HTTP/2 without TLS, prior knowledge (gRPC apps).
    H2c,
}

/// The proxy's settings.
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Ports, the app and the config directory.
    #[command(flatten)]
    pub pod: PodArgs,
    /// Protocol towards the app.
    #[arg(
        long,
        env = "OUTBAND_UPSTREAM_PROTOCOL",
        value_enum,
        default_value = "http1"
    )]
    pub upstream_protocol: UpstreamProtocol,
    /// Decision settings.
    #[command(flatten)]
    pub decision: WorkloadArgs,
    /// Realm of `WWW-Authenticate` challenges (default: `<namespace>/<api>`).
    #[arg(long, env = "OUTBAND_REALM")]
    pub realm: Option<String>,
    /// Largest request header block, in bytes.
    #[arg(long, env = "OUTBAND_MAX_HEADER_BYTES", default_value_t = 64 * 1024)]
    pub max_header_bytes: usize,
    /// Most request headers.
    #[arg(long, env = "OUTBAND_MAX_HEADERS", default_value_t = 100)]
    pub max_headers: usize,
    /// Most concurrent streams per HTTP/2 connection.
    #[arg(long, env = "OUTBAND_MAX_CONCURRENT_STREAMS", default_value_t = 256)]
    pub max_concurrent_streams: u32,
    /// Longest time to receive request headers.
    #[arg(long, env = "OUTBAND_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,
    /// Close client connections idle this long.
    #[arg(long, env = "OUTBAND_IDLE_TIMEOUT", default_value = "120s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// Longest wait for the app's response headers (0: none).
    #[arg(long, env = "OUTBAND_UPSTREAM_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub upstream_timeout: Duration,
    /// Longest wait to connect to the app.
    #[arg(long, env = "OUTBAND_UPSTREAM_CONNECT_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub upstream_connect_timeout: Duration,
    /// Remove the `Authorization` header before forwarding to the app.
    #[arg(long, env = "OUTBAND_STRIP_AUTHORIZATION")]
    pub strip_authorization: bool,
    /// After SIGTERM, keep serving (not ready) this long before draining, so endpoints can
    /// stop routing here.
    #[arg(long, env = "OUTBAND_SHUTDOWN_DELAY", default_value = "0s", value_parser = parse_duration)]
    pub shutdown_delay: Duration,
    /// Longest wait for in-flight requests and tunnels when draining.
    #[arg(long, env = "OUTBAND_DRAIN_TIMEOUT", default_value = "25s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// Most verified tokens cached (0 disables the cache).
    #[arg(long, env = "OUTBAND_TOKEN_CACHE_SIZE", default_value_t = 50_000)]
    pub token_cache_size: u64,
    /// Longest time a verified token stays cached.
    #[arg(long, env = "OUTBAND_TOKEN_CACHE_TTL", default_value = "300s", value_parser = parse_duration)]
    pub token_cache_ttl: Duration,
    /// Least time between two JWKS fetches of one KeyManager.
    #[arg(long, env = "OUTBAND_JWKS_MIN_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub jwks_min_interval: Duration,
    /// How long an unknown key id is remembered.
    #[arg(long, env = "OUTBAND_JWKS_NEGATIVE_TTL", default_value = "300s", value_parser = parse_duration)]
    pub jwks_negative_ttl: Duration,
    /// How long keys fetched by the sidecar are used (the operator's inlined keys take over).
    #[arg(long, env = "OUTBAND_JWKS_KEYS_TTL", default_value = "15m", value_parser = parse_duration)]
    pub jwks_keys_ttl: Duration,
    /// Safety-net poll of the config directory (changes are normally seen at once).
    #[arg(long, env = "OUTBAND_CONFIG_POLL_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub config_poll_interval: Duration,
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
}

/// `outband-sidecar explain`.
#[derive(Debug, Args, Clone)]
pub struct ExplainArgs {
    /// The config directory (a mounted volume or a copy of it).
    #[arg(long)]
    pub config: PathBuf,
    /// Decision settings (as on the proxy).
    #[command(flatten)]
    pub decision: WorkloadArgs,
    /// The token; `-` reads it from standard input.
    #[arg(long, env = "OUTBAND_TOKEN", hide_env_values = true)]
    pub token: String,
    /// The request method, for route rules.
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// The request path, for route rules.
    #[arg(long, default_value = "/")]
    pub path: String,
    /// Decide as of this unix time (default: now).
    #[arg(long)]
    pub now: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_use_the_shared_parser() {
        let cli = Cli::try_parse_from([
            "outband-sidecar",
            "--idle-timeout=1.5s",
            "--drain-timeout=250ms",
        ])
        .unwrap();
        assert_eq!(cli.run.idle_timeout, Duration::from_millis(1500));
        assert_eq!(cli.run.drain_timeout, Duration::from_millis(250));
        assert!(Cli::try_parse_from(["outband-sidecar", "--idle-timeout=1d"]).is_err());
    }

    #[test]
    fn the_log_level_is_a_flag_and_the_last_one_wins() {
        let parse = |extra: &[&str]| {
            let mut args = vec!["outband-sidecar", "--api", "orders"];
            args.extend_from_slice(extra);
            Cli::try_parse_from(args)
        };
        let level = |extra: &[&str]| parse(extra).unwrap().run.log.log_level.to_string();
        assert_eq!(level(&[]), "info");
        assert_eq!(
            level(&["--log-level", "info,outband_sidecar=debug"]),
            "info,outband_sidecar=debug"
        );
        assert_eq!(level(&["--log-level=info", "--log-level=warn"]), "warn");
        let error = parse(&["--log-level", "outband_sidecar=loud"]).unwrap_err();
        assert!(error.to_string().contains("not a log filter"), "{error}");
    }

    #[test]
    fn proxy_flags_parse() {
        let cli = Cli::try_parse_from([
            "outband-sidecar",
            "--api",
            "orders",
            "--api-namespace",
            "shop",
            "--key-type",
            "SANDBOX",
            "--key-managers",
            "a,b",
            "--route-scopes",
            "GET /orders/* orders:read",
            "--upstream",
            "http://127.0.0.1:9000",
        ])
        .unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.run.decision.api.as_deref(), Some("orders"));
        assert_eq!(cli.run.decision.key_type, outband_crds::KeyType::Sandbox);
        assert_eq!(cli.run.decision.key_managers, vec!["a", "b"]);
        let settings = Settings::from_args(&cli.run.decision).unwrap();
        assert_eq!(settings.api_namespace.as_deref(), Some("shop"));
        assert!(settings.allows_key_manager("a") && !settings.allows_key_manager("c"));
        assert!(!settings.routes.is_empty());
    }

    #[test]
    fn settings_errors_name_the_flag() {
        let cli = Cli::try_parse_from(["outband-sidecar"]).unwrap();
        assert!(
            Settings::from_args(&cli.run.decision)
                .unwrap_err()
                .contains("--api")
        );
        let cli =
            Cli::try_parse_from(["outband-sidecar", "--api", "a", "--route-scopes", "GET /x"])
                .unwrap();
        let err = Settings::from_args(&cli.run.decision).unwrap_err();
        assert!(
            err.contains("--route-scopes") && err.contains("outband.dev/route-scopes"),
            "{err}"
        );
    }

    #[test]
    fn explain_parses() {
        let cli = Cli::try_parse_from([
            "outband-sidecar",
            "explain",
            "--config",
            "/tmp/c",
            "--api",
            "orders",
            "--token",
            "a.b.c",
        ])
        .unwrap();
        assert!(matches!(cli.command, Some(Command::Explain(_))));
    }
}
