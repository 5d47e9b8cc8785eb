//! Command lines. The value types both binaries' flags use — durations and log filters, one
//! parser each — and the sidecar's command line as a typed contract: the injection webhook
//! builds a [`SidecarCommandLine`] and renders it ([`SidecarCommandLine::to_args`]); the
//! sidecar parses the same flag groups ([`PodArgs`], [`WorkloadArgs`], [`LogArgs`]) with
//! clap. A round trip through both is tested, so neither end can drift from the other.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::KeyType;

/// Parses a duration: a decimal number and a unit, `ms`, `s`, `m` or `h` (`250ms`, `1.5s`,
/// `5m`, `1h`), or a plain number of seconds. Exact: no floating point is involved.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let invalid = || format!("{text:?} is not a duration like 250ms, 1.5s, 5m or 1h");
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let nanos_per_unit: u128 = match unit {
        "ms" => 1_000_000,
        "" | "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return Err(invalid()),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty()
        || fraction.contains('.')
        || fraction.len() > 9
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return Err(invalid());
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| invalid())?
    };
    let fraction_value: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().map_err(|_| invalid())?
    };
    let scale = 10u128.pow(fraction.len() as u32);
    let nanos = whole
        .checked_mul(nanos_per_unit)
        .and_then(|n| n.checked_add(fraction_value * nanos_per_unit / scale))
        .ok_or_else(invalid)?;
    let seconds = u64::try_from(nanos / 1_000_000_000).map_err(|_| invalid())?;
    Ok(Duration::new(seconds, (nanos % 1_000_000_000) as u32))
}

/// A `tracing` log filter (`EnvFilter` syntax: `info`, `info,outband_sidecar=debug`),
/// checked when parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogFilter(String);

impl LogFilter {
    /// The filter as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for LogFilter {
    fn default() -> Self {
        LogFilter("info".into())
    }
}

impl FromStr for LogFilter {
    type Err = String;

    fn from_str(text: &str) -> Result<LogFilter, String> {
        tracing_subscriber::EnvFilter::try_new(text)
            .map(|_| LogFilter(text.to_string()))
            .map_err(|err| {
                format!(
                    "{text:?} is not a log filter like info or info,outband_sidecar=debug: {err}"
                )
            })
    }
}

impl fmt::Display for LogFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

fn parse_key_type(text: &str) -> Result<KeyType, String> {
    KeyType::parse(text).ok_or_else(|| format!("{text:?} is not a key type: PRODUCTION or SANDBOX"))
}

/// Where the sidecar listens, forwards and reads its config: how the webhook lays the pod
/// out.
#[derive(Args, Clone, Debug, PartialEq, Eq)]
pub struct PodArgs {
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
    /// The mounted config volume.
    #[arg(
        long,
        env = "OUTBAND_CONFIG_DIR",
        default_value = "/etc/outband/config"
    )]
    pub config_dir: PathBuf,
}

/// The longest accepted token by default, in bytes.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 16 * 1024;

/// What decides on requests — the workload's `outband.dev/*` annotations. Shared by the
/// proxy and `outband-sidecar explain`.
#[derive(Args, Clone, Debug, PartialEq, Eq)]
pub struct WorkloadArgs {
    /// The API this pod serves (the `outband.dev/api` annotation).
    #[arg(long, env = "OUTBAND_API")]
    pub api: Option<String>,
    /// The API's namespace (the pod's namespace). When absent, the config's is accepted.
    #[arg(long, env = "OUTBAND_API_NAMESPACE")]
    pub api_namespace: Option<String>,
    /// Which keys this deployment accepts: PRODUCTION or SANDBOX.
    #[arg(
        long,
        env = "OUTBAND_KEY_TYPE",
        default_value = "PRODUCTION",
        value_parser = parse_key_type
    )]
    pub key_type: KeyType,
    /// Comma-separated KeyManager names to accept (default: every KeyManager in the config).
    #[arg(long, env = "OUTBAND_KEY_MANAGERS", value_delimiter = ',')]
    pub key_managers: Vec<String>,
    /// Per-route scope rules, e.g. `GET /orders/* orders:read; POST /orders orders:write`.
    #[arg(long, env = "OUTBAND_ROUTE_SCOPES", default_value = "")]
    pub route_scopes: String,
    /// Longest accepted token, in bytes.
    #[arg(long, env = "OUTBAND_MAX_TOKEN_BYTES", default_value_t = DEFAULT_MAX_TOKEN_BYTES)]
    pub max_token_bytes: usize,
}

/// Logging.
#[derive(Args, Clone, Debug, PartialEq, Eq)]
pub struct LogArgs {
    /// Log format.
    #[arg(long, env = "OUTBAND_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log filter, tracing `EnvFilter` syntax: `info`, `debug`, `info,outband_sidecar=debug`
    /// (refusals are logged at debug). Given twice, the last one wins.
    #[arg(
        long,
        env = "OUTBAND_LOG",
        default_value = "info",
        overrides_with = "log_level"
    )]
    pub log_level: LogFilter,
}

/// The value of `--api-namespace` the webhook writes: the kubelet replaces it with the
/// pod's namespace (from the `POD_NAMESPACE` variable of the container).
pub const POD_NAMESPACE_REFERENCE: &str = "$(POD_NAMESPACE)";

/// The sidecar's command line as the injection webhook writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SidecarCommandLine {
    /// Ports and paths.
    pub pod: PodArgs,
    /// The workload's settings.
    pub workload: WorkloadArgs,
    /// The sidecar's log filter.
    pub log_level: LogFilter,
    /// Further arguments from the cluster operator (chart values), appended last so that
    /// they win where a flag is given twice.
    pub extra: Vec<String>,
}

impl SidecarCommandLine {
    /// The arguments, in a stable order; optional settings only when set.
    pub fn to_args(&self) -> Vec<String> {
        let (pod, workload) = (&self.pod, &self.workload);
        let mut args = vec![
            format!("--listen={}", pod.listen),
            format!("--upstream={}", pod.upstream),
            format!("--admin-listen={}", pod.admin_listen),
            format!("--config-dir={}", pod.config_dir.display()),
        ];
        if let Some(api) = &workload.api {
            args.push(format!("--api={api}"));
        }
        if let Some(namespace) = &workload.api_namespace {
            args.push(format!("--api-namespace={namespace}"));
        }
        args.push(format!("--key-type={}", workload.key_type.as_str()));
        if !workload.key_managers.is_empty() {
            args.push(format!(
                "--key-managers={}",
                workload.key_managers.join(",")
            ));
        }
        if !workload.route_scopes.is_empty() {
            args.push(format!("--route-scopes={}", workload.route_scopes));
        }
        if workload.max_token_bytes != DEFAULT_MAX_TOKEN_BYTES {
            args.push(format!("--max-token-bytes={}", workload.max_token_bytes));
        }
        args.push(format!("--log-level={}", self.log_level));
        args.extend(self.extra.iter().cloned());
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// The flag groups as the sidecar flattens them.
    #[derive(Parser, Debug)]
    struct Sidecar {
        #[command(flatten)]
        pod: PodArgs,
        #[command(flatten)]
        workload: WorkloadArgs,
        #[command(flatten)]
        log: LogArgs,
    }

    fn command_line() -> SidecarCommandLine {
        SidecarCommandLine {
            pod: PodArgs {
                listen: "0.0.0.0:15080".parse().unwrap(),
                admin_listen: "0.0.0.0:15090".parse().unwrap(),
                upstream: "http://127.0.0.1:8080".into(),
                config_dir: "/etc/outband/config".into(),
            },
            workload: WorkloadArgs {
                api: Some("orders".into()),
                api_namespace: Some(POD_NAMESPACE_REFERENCE.into()),
                key_type: KeyType::Sandbox,
                key_managers: vec!["okta".into(), "keycloak".into()],
                route_scopes: "GET /orders/* orders:read; POST /orders orders:write".into(),
                max_token_bytes: 8192,
            },
            log_level: "info,outband_sidecar=debug".parse().unwrap(),
            extra: Vec::new(),
        }
    }

    fn parse(line: &SidecarCommandLine) -> Sidecar {
        let mut argv = vec!["outband-sidecar".to_string()];
        argv.extend(line.to_args());
        Sidecar::try_parse_from(argv).unwrap()
    }

    #[test]
    fn what_the_webhook_writes_the_sidecar_reads() {
        let line = command_line();
        let parsed = parse(&line);
        assert_eq!(parsed.pod, line.pod);
        assert_eq!(parsed.workload, line.workload);
        assert_eq!(parsed.log.log_level, line.log_level);
    }

    #[test]
    fn unset_settings_are_not_written_and_read_back_as_defaults() {
        let mut line = command_line();
        line.workload.key_managers.clear();
        line.workload.route_scopes.clear();
        line.workload.max_token_bytes = DEFAULT_MAX_TOKEN_BYTES;
        let args = line.to_args().join(" ");
        assert!(!args.contains("--key-managers"), "{args}");
        assert!(!args.contains("--route-scopes"), "{args}");
        assert!(!args.contains("--max-token-bytes"), "{args}");
        assert_eq!(parse(&line).workload, line.workload);
    }

    #[test]
    fn extra_arguments_come_last_and_win() {
        let mut line = command_line();
        line.extra = vec!["--log-level=warn".into()];
        assert_eq!(parse(&line).log.log_level.as_str(), "warn");
    }

    #[test]
    fn durations() {
        let ok = |text: &str, expected: Duration| assert_eq!(parse_duration(text), Ok(expected));
        ok("250ms", Duration::from_millis(250));
        ok("10s", Duration::from_secs(10));
        ok("10", Duration::from_secs(10));
        ok("1.5s", Duration::from_millis(1500));
        ok("0.1s", Duration::from_millis(100));
        ok(".5m", Duration::from_secs(30));
        ok("5m", Duration::from_secs(300));
        ok("1h", Duration::from_secs(3600));
        ok("1.000000001s", Duration::new(1, 1));
        for bad in [
            "",
            "s",
            ".",
            "1d",
            "-1s",
            "1.2.3s",
            "5 days",
            "1e3s",
            "1.0000000001s",
            "+1s",
            "99999999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn log_filters_are_checked() {
        assert!("info,outband_sidecar=debug".parse::<LogFilter>().is_ok());
        let error = "outband_sidecar=loud".parse::<LogFilter>().unwrap_err();
        assert!(error.contains("not a log filter"), "{error}");
    }
}
