//! Command line and environment: every flag has an `OUTBAND_*` variable, so the injection
//! webhook can set either. See `docs/sidecar.md` for the reference.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use std::collections::BTreeSet;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::routes::RouteRules;
use crate::settings::Settings;
use crate::token::shape::Limits;

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

/// `PRODUCTION` or `SANDBOX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KeyTypeArg {
    /// Production keys.
    Production,
    /// Sandbox keys.
    Sandbox,
}

impl From<KeyTypeArg> for outband_crds::KeyType {
    fn from(value: KeyTypeArg) -> Self {
        match value {
            KeyTypeArg::Production => outband_crds::KeyType::Production,
            KeyTypeArg::Sandbox => outband_crds::KeyType::Sandbox,
        }
    }
}

/// How the sidecar talks to the app.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum UpstreamProtocol {
    /// HTTP/1.1 (HTTP/2 clients are translated).
    Http1,
    /// HTTP/2 without TLS, prior knowledge (gRPC apps).
    H2c,
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable.
    Text,
    /// One JSON object per line.
    Json,
}

/// Settings that decide on requests (shared by the proxy and `explain`).
#[derive(Debug, Args, Clone)]
pub struct DecisionArgs {
    /// The API this pod serves (the `outband.dev/api` annotation).
    #[arg(long, env = "OUTBAND_API")]
    pub api: Option<String>,
    /// The API's namespace (the pod's namespace). When absent, the config's is accepted.
    #[arg(long, env = "OUTBAND_API_NAMESPACE")]
    pub api_namespace: Option<String>,
    /// Which keys this deployment accepts.
    #[arg(
        long,
        env = "OUTBAND_KEY_TYPE",
        value_enum,
        default_value = "PRODUCTION"
    )]
    pub key_type: KeyTypeArg,
    /// Comma-separated KeyManager names to accept (default: every KeyManager in the config).
    #[arg(long, env = "OUTBAND_KEY_MANAGERS", value_delimiter = ',')]
    pub key_managers: Vec<String>,
    /// Per-route scope rules, e.g. `GET /orders/* orders:read; POST /orders orders:write`.
    #[arg(long, env = "OUTBAND_ROUTE_SCOPES", default_value = "")]
    pub route_scopes: String,
    /// Longest accepted token, in bytes.
    #[arg(long, env = "OUTBAND_MAX_TOKEN_BYTES", default_value_t = 16 * 1024)]
    pub max_token_bytes: usize,
}

/// The proxy's settings.
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Address the proxy listens on.
    #[arg(long, env = "OUTBAND_LISTEN", default_value = "0.0.0.0:15080")]
    pub listen: SocketAddr,
    /// Address of `/livez`, `/readyz` and `/metrics`.
    #[arg(long, env = "OUTBAND_ADMIN_LISTEN", default_value = "0.0.0.0:15090")]
    pub admin_listen: SocketAddr,
    /// The app, as `http://host:port` (normally loopback).
    #[arg(
        long,
        env = "OUTBAND_UPSTREAM",
        default_value = "http://127.0.0.1:8080"
    )]
    pub upstream: String,
    /// Protocol towards the app.
    #[arg(
        long,
        env = "OUTBAND_UPSTREAM_PROTOCOL",
        value_enum,
        default_value = "http1"
    )]
    pub upstream_protocol: UpstreamProtocol,
    /// The mounted config volume.
    #[arg(
        long,
        env = "OUTBAND_CONFIG_DIR",
        default_value = "/etc/outband/config"
    )]
    pub config_dir: PathBuf,
    /// Decision settings.
    #[command(flatten)]
    pub decision: DecisionArgs,
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
    /// Log format.
    #[arg(long, env = "OUTBAND_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log filter, tracing `EnvFilter` syntax: `info`, `debug`, `info,outband_sidecar=debug`
    /// (refusals are logged at debug). Given twice, the last one wins.
    #[arg(
        long,
        env = "OUTBAND_LOG",
        default_value = "info",
        value_parser = parse_log_filter,
        overrides_with = "log_level"
    )]
    pub log_level: String,
}

/// `outband-sidecar explain`.
#[derive(Debug, Args, Clone)]
pub struct ExplainArgs {
    /// The config directory (a mounted volume or a copy of it).
    #[arg(long)]
    pub config: PathBuf,
    /// Decision settings (as on the proxy).
    #[command(flatten)]
    pub decision: DecisionArgs,
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

impl DecisionArgs {
    /// The workload settings these flags describe; errors name the flag.
    pub fn settings(&self) -> Result<Settings, String> {
        let api = self
            .api
            .clone()
            .filter(|api| !api.is_empty())
            .ok_or("--api (OUTBAND_API) is required: the API this pod serves")?;
        let routes = RouteRules::parse(&self.route_scopes).map_err(|err| {
            format!(
                "--route-scopes (OUTBAND_ROUTE_SCOPES, annotation {}) {err}",
                outband_crds::annotations::ROUTE_SCOPES
            )
        })?;
        let key_managers: BTreeSet<String> = self
            .key_managers
            .iter()
            .map(|name| name.trim().to_string())
            .filter(|name| !name.is_empty())
            .collect();
        if self.max_token_bytes < 64 {
            return Err("--max-token-bytes must be at least 64".into());
        }
        Ok(Settings {
            api_name: api,
            api_namespace: self.api_namespace.clone().filter(|ns| !ns.is_empty()),
            key_type: self.key_type.into(),
            allowed_key_managers: (!key_managers.is_empty()).then_some(key_managers),
            routes,
            limits: Limits {
                max_token_bytes: self.max_token_bytes,
                ..Limits::default()
            },
        })
    }
}

/// Checks a tracing `EnvFilter` (a level, or comma-separated `target=level` directives).
pub fn parse_log_filter(text: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(text)
        .map(|_| text.to_string())
        .map_err(|err| {
            format!("{text:?} is not a log filter like info or info,outband_sidecar=debug: {err}")
        })
}

/// Parses `250ms`, `10s`, `5m`, `1h` or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 250ms, 10s, 5m or 1h"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(value)),
        "" | "s" => Ok(Duration::from_secs(value)),
        "m" => Ok(Duration::from_secs(value * 60)),
        "h" => Ok(Duration::from_secs(value * 3600)),
        _ => Err(format!(
            "{text:?} is not a duration like 250ms, 10s, 5m or 1h"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("1d").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn the_log_level_is_a_flag_and_the_last_one_wins() {
        let parse = |extra: &[&str]| {
            let mut args = vec!["outband-sidecar", "--api", "orders"];
            args.extend_from_slice(extra);
            Cli::try_parse_from(args)
        };
        assert_eq!(parse(&[]).unwrap().run.log_level, "info");
        assert_eq!(
            parse(&["--log-level", "info,outband_sidecar=debug"])
                .unwrap()
                .run
                .log_level,
            "info,outband_sidecar=debug"
        );
        assert_eq!(
            parse(&["--log-level=info", "--log-level=warn"])
                .unwrap()
                .run
                .log_level,
            "warn"
        );
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
        assert_eq!(cli.run.decision.key_type, KeyTypeArg::Sandbox);
        assert_eq!(cli.run.decision.key_managers, vec!["a", "b"]);
        let settings = cli.run.decision.settings().unwrap();
        assert_eq!(settings.api_namespace.as_deref(), Some("shop"));
        assert!(settings.allows_key_manager("a") && !settings.allows_key_manager("c"));
        assert!(!settings.routes.is_empty());
    }

    #[test]
    fn settings_errors_name_the_flag() {
        let cli = Cli::try_parse_from(["outband-sidecar"]).unwrap();
        assert!(cli.run.decision.settings().unwrap_err().contains("--api"));
        let cli =
            Cli::try_parse_from(["outband-sidecar", "--api", "a", "--route-scopes", "GET /x"])
                .unwrap();
        let err = cli.run.decision.settings().unwrap_err();
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
