//! Load figures of the sidecar binary on loopback, driven by `wrk` (run by `make load-sidecar`).
//!
//! Starts a minimal HTTP app, writes a config with 10,000 subscriptions, mints RS256 tokens
//! with a key generated here, starts the given `outband-sidecar` binary in front of the app,
//! and measures requests/s for: the app alone (baseline), one token (warm cache), 10,000
//! distinct tokens (one per client, round-robin), and 10,000 distinct tokens with the cache
//! disabled (a signature verification on every request).
//!
//! Usage: `load <path to outband-sidecar>`; `LOAD_DURATION` (default 10s), `LOAD_THREADS`
//! (2) and `LOAD_CONNECTIONS` (32) tune wrk.

#[path = "../tests/support/mod.rs"]
mod support;

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use outband_crds::sidecar_config::bundle::{self, MANIFEST_FILE};
use outband_crds::{JwsAlgorithm, KeyType, SubscriptionState};
use support::*;

const TOKENS: usize = 10_000;

fn main() -> anyhow::Result<()> {
    let sidecar_binary = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or_else(|| anyhow::anyhow!("usage: load <path to outband-sidecar>"))?,
    );
    let wrk = which("wrk").ok_or_else(|| anyhow::anyhow!("wrk not found: run `make tools`"))?;
    let duration = std::env::var("LOAD_DURATION").unwrap_or_else(|_| "10s".into());
    let threads = std::env::var("LOAD_THREADS").unwrap_or_else(|_| "2".into());
    let connections = std::env::var("LOAD_CONNECTIONS").unwrap_or_else(|_| "32".into());

    let work = tempfile::tempdir()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let app_port = runtime.block_on(start_app())?;

    eprintln!("minting {TOKENS} RS256 tokens and a config of {TOKENS} subscriptions…");
    let key = TestKey::rsa("load-key", JwsAlgorithm::RS256);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let mut config = config();
    config.key_managers[0].keys = vec![key.jwk(true)];
    let clients: Vec<String> = (0..TOKENS).map(|i| format!("load-{i:05}")).collect();
    for client in &clients {
        config.subscriptions.push(subscription(
            client,
            KeyType::Production,
            SubscriptionState::Active,
        ));
    }
    config
        .subscriptions
        .sort_by(|a, b| a.consumer_key.cmp(&b.consumer_key));
    let config_dir = work.path().join("config");
    std::fs::create_dir(&config_dir)?;
    let encoded = bundle::encode(&config)?;
    std::fs::write(
        config_dir.join(MANIFEST_FILE),
        serde_json::to_vec(&encoded.manifest)?,
    )?;
    for (i, shard) in encoded.shards.iter().enumerate() {
        std::fs::write(config_dir.join(bundle::shard_file(i)), shard)?;
    }
    let tokens: Vec<String> = clients
        .iter()
        .map(|client| token_for(&key, client, now))
        .collect();
    let tokens_file = work.path().join("tokens.txt");
    std::fs::write(&tokens_file, tokens.join("\n"))?;
    let one_file = work.path().join("one-token.txt");
    std::fs::write(&one_file, &tokens[0])?;
    let script = work.path().join("tokens.lua");
    std::fs::write(&script, LUA)?;

    let mut results = Vec::new();
    let app_url = format!("http://127.0.0.1:{app_port}/orders/1");
    results.push((
        "app alone (no sidecar)",
        run_wrk(
            &wrk,
            &threads,
            &connections,
            &duration,
            &app_url,
            &script,
            &one_file,
        )?,
    ));
    for (name, extra, file) in [
        ("sidecar, 1 token (warm cache)", vec![], &one_file),
        (
            "sidecar, 10,000 distinct tokens (cached after first use)",
            vec![],
            &tokens_file,
        ),
        (
            "sidecar, 10,000 distinct tokens, cache off (verify every request)",
            vec!["--token-cache-size", "0"],
            &tokens_file,
        ),
    ] {
        let (mut child, port, admin) =
            start_sidecar(&sidecar_binary, &config_dir, app_port, &extra)?;
        let url = format!("http://127.0.0.1:{port}/orders/1");
        let outcome = run_wrk(&wrk, &threads, &connections, &duration, &url, &script, file);
        let metrics = fetch(&format!("127.0.0.1:{admin}"), "/metrics").unwrap_or_default();
        let _ = child.kill();
        let _ = child.wait();
        let mut outcome = outcome?;
        outcome.detail = summarize(&metrics);
        results.push((name, outcome));
    }

    println!(
        "\nwrk -t{threads} -c{connections} -d{duration} on loopback, {} cores shared by wrk, the sidecar and the app:",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<68} {:>12} {:>10} {:>10}  sidecar",
        "scenario", "requests/s", "p50", "p99"
    );
    for (name, outcome) in &results {
        println!(
            "{name:<68} {:>12.0} {:>10} {:>10}  {}",
            outcome.rps, outcome.p50, outcome.p99, outcome.detail
        );
    }
    Ok(())
}

const LUA: &str = r#"
local tokens = {}
local i = 0
function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  i = math.random(#tokens)
end
function request()
  i = i % #tokens + 1
  return wrk.format("GET", nil, {["Authorization"] = "Bearer " .. tokens[i]})
end
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout
  io.write(string.format("OUTBAND rps=%.1f p50=%.3fms p99=%.3fms errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000, errors))
end
"#;

struct Outcome {
    rps: f64,
    p50: String,
    p99: String,
    detail: String,
}

fn run_wrk(
    wrk: &Path,
    threads: &str,
    connections: &str,
    duration: &str,
    url: &str,
    script: &Path,
    tokens: &Path,
) -> anyhow::Result<Outcome> {
    eprintln!("wrk {url} ({})…", tokens.display());
    let output = Command::new(wrk)
        .args([
            "-t",
            threads,
            "-c",
            connections,
            "-d",
            duration,
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(url)
        .arg("--")
        .arg(tokens)
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let line = text
        .lines()
        .find(|l| l.starts_with("OUTBAND "))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "wrk failed:\n{text}{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|part| part.strip_prefix(&format!("{name}=")))
            .unwrap_or("?")
            .to_string()
    };
    let errors: u64 = field("errors").parse().unwrap_or(u64::MAX);
    if errors != 0 {
        anyhow::bail!("wrk saw {errors} errors (non-2xx or socket errors) against {url}:\n{text}");
    }
    Ok(Outcome {
        rps: field("rps").parse().unwrap_or(0.0),
        p50: field("p50"),
        p99: field("p99"),
        detail: String::new(),
    })
}

fn start_sidecar(
    binary: &Path,
    config: &Path,
    app_port: u16,
    extra: &[&str],
) -> anyhow::Result<(Child, u16, u16)> {
    let port = free_port()?;
    let admin = free_port()?;
    let child = Command::new(binary)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin-listen",
            &format!("127.0.0.1:{admin}"),
        ])
        .args(["--upstream", &format!("http://127.0.0.1:{app_port}")])
        .arg("--config-dir")
        .arg(config)
        .args(["--api", API, "--api-namespace", NAMESPACE])
        .args(extra)
        .env("OUTBAND_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()?;
    for _ in 0..400 {
        if fetch(&format!("127.0.0.1:{admin}"), "/readyz").is_ok_and(|body| body.starts_with("ok"))
        {
            return Ok((child, port, admin));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    anyhow::bail!("the sidecar did not become ready")
}

fn summarize(metrics: &str) -> String {
    let value = |sample: &str| {
        metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix(sample)
                    .and_then(|r| r.trim().parse::<f64>().ok())
            })
            .unwrap_or(0.0)
    };
    format!(
        "allowed {:.0}, cache hits {:.0}, misses {:.0}",
        value("outband_sidecar_decisions_total{outcome=\"allow\",reason=\"ok\"}"),
        value("outband_sidecar_token_cache_lookups_total{result=\"hit\"}"),
        value("outband_sidecar_token_cache_lookups_total{result=\"miss\"}"),
    )
}

fn fetch(addr: &str, path: &str) -> anyhow::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    Ok(text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

async fn start_app() -> anyhow::Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_request: Request<Incoming>| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                        b"{\"ok\":true}",
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(port)
}
