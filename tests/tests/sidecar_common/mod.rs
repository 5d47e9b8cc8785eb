//! Shared by the `sidecar_*` integration tests: the real sidecar binary started as a process,
//! a real HTTP app behind it, the real OpenID provider, and configs written the kubelet way.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use outband_crds::sidecar_config::bundle::{self, MANIFEST_FILE};
use outband_crds::sidecar_config::{
    ApiRef, CONFIG_FORMAT, JwksRefresh, KeyManagerConfig, PublicJwk, SidecarConfig,
    SubscriptionConfig,
};
use outband_crds::{JwsAlgorithm, KeyType, SubscriptionState};
use outband_tests::kubelet::AtomicVolume;
use outband_tests::oidc::{OidcClient, OidcOptions, OidcProvider};
use outband_tests::paths;
use outband_tests::ports::free_port;
use outband_tests::process::ManagedProcess;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

pub const API: &str = "orders";
pub const NAMESPACE: &str = "shop";
pub const KEY_MANAGER: &str = "test-idp";
pub const SECRET: &str = "s3cret";
/// Subscribed with a production key, active.
pub const PROD: &str = "orders-prod";
/// Subscribed with a sandbox key.
pub const SANDBOX: &str = "orders-sandbox";
/// Subscribed, Blocked.
pub const BLOCKED: &str = "orders-blocked";
/// Subscribed with a production key, ProductionOnlyBlocked.
pub const PROD_ONLY_BLOCKED: &str = "orders-pob";
/// Registered at the provider, not subscribed.
pub const STRANGER: &str = "stranger";
/// Tokens of this client live one second.
pub const SHORT_LIVED: &str = "orders-short";
/// Signed with ES256.
pub const EC_CLIENT: &str = "orders-ec";

/// The provider with every test client.
pub async fn provider() -> OidcProvider {
    let scopes = ["orders:read", "orders:write", "admin"];
    let clients = [
        PROD,
        SANDBOX,
        BLOCKED,
        PROD_ONLY_BLOCKED,
        STRANGER,
        EC_CLIENT,
    ]
    .iter()
    .map(|id| OidcClient::new(id, SECRET, &scopes))
    .chain([OidcClient::new(SHORT_LIVED, SECRET, &scopes).with_token_ttl(1)])
    .collect();
    OidcProvider::start(OidcOptions {
        clients,
        ec_key: true,
        es256_clients: vec![EC_CLIENT.to_string()],
        ..OidcOptions::default()
    })
    .await
    .expect("the OpenID provider starts (run `make oidc-provider` if it is missing)")
}

/// A token for `client` with `scope`.
pub async fn token(provider: &OidcProvider, client: &str, scope: &str) -> String {
    provider
        .client_credentials_token(client, SECRET, Some(scope))
        .await
        .expect("the provider issues a token")
}

/// The provider's JWKS as the operator inlines it: read by the one JWKS parser.
pub fn public_jwks(jwks: &Value) -> Vec<PublicJwk> {
    let set = outband_idp::jwks::parse(&serde_json::to_vec(jwks).unwrap()).expect("a JWKS");
    assert!(set.rejected.is_empty(), "{:?}", set.rejected);
    set.keys
}

/// The sidecar config for `shop/orders` trusting `provider`, with its current keys inlined.
pub async fn config_for(provider: &OidcProvider) -> SidecarConfig {
    let jwks = provider
        .jwks()
        .await
        .expect("the provider publishes a JWKS");
    SidecarConfig {
        format: CONFIG_FORMAT.into(),
        critical: Vec::new(),
        api: ApiRef {
            namespace: NAMESPACE.into(),
            name: API.into(),
        },
        key_managers: vec![KeyManagerConfig {
            name: KEY_MANAGER.into(),
            issuer: provider.issuer().into(),
            consumer_key_claim: "client_id".into(),
            scopes_claim: "scope".into(),
            algorithms: vec![JwsAlgorithm::RS256, JwsAlgorithm::ES256],
            clock_skew_seconds: 0,
            audiences: vec![provider.audience().into()],
            required_type: Some("at+jwt".into()),
            keys: public_jwks(&jwks),
            jwks_refresh: Some(JwksRefresh {
                url: provider.jwks_url(),
                ca_bundle: None,
                allow_loopback: true,
                timeout_seconds: 5,
            }),
        }],
        subscriptions: vec![
            subscription(BLOCKED, KeyType::Production, SubscriptionState::Blocked),
            subscription(EC_CLIENT, KeyType::Production, SubscriptionState::Active),
            subscription(
                PROD_ONLY_BLOCKED,
                KeyType::Production,
                SubscriptionState::ProductionOnlyBlocked,
            ),
            subscription(PROD, KeyType::Production, SubscriptionState::Active),
            subscription(SHORT_LIVED, KeyType::Production, SubscriptionState::Active),
            subscription(SANDBOX, KeyType::Sandbox, SubscriptionState::Active),
        ],
    }
}

/// One subscription to `shop/orders`.
pub fn subscription(
    client: &str,
    key_type: KeyType,
    state: SubscriptionState,
) -> SubscriptionConfig {
    SubscriptionConfig {
        key_manager: KEY_MANAGER.into(),
        consumer_key: client.into(),
        key_type,
        application: format!("{client}-app"),
        binding: format!("{NAMESPACE}/{client}"),
        tier: Some("Gold".into()),
        state,
    }
}

/// The files of `config`'s bundle, as the projected volume shows them.
pub fn bundle_files(config: &SidecarConfig) -> BTreeMap<String, Vec<u8>> {
    let bundle = bundle::encode(config).expect("the config fits");
    let mut files = BTreeMap::new();
    files.insert(
        MANIFEST_FILE.to_string(),
        serde_json::to_vec(&bundle.manifest).unwrap(),
    );
    for (i, shard) in bundle.shards.into_iter().enumerate() {
        files.insert(bundle::shard_file(i), shard);
    }
    files
}

/// The SHA-256 that identifies `config` (its generation).
pub fn generation(config: &SidecarConfig) -> String {
    bundle::encode(config).unwrap().manifest.sha256
}

/// A real HTTP app for the sidecar to forward to. Every response echoes what the app saw;
/// `/hold` streams a first chunk and the rest only after [`TestApp::release`]; `/bytes?n=N`
/// streams N bytes; an `Upgrade` request is switched and echoed byte for byte.
pub struct TestApp {
    addr: SocketAddr,
    release: Arc<Notify>,
    task: JoinHandle<()>,
}

impl TestApp {
    /// Starts the app on a free loopback port.
    pub async fn start() -> TestApp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let release = Arc::new(Notify::new());
        let shared = release.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let release = shared.clone();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |request| answer(request, release.clone()));
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        TestApp {
            addr,
            release,
            task,
        }
    }

    /// The app's port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Lets every held `/hold` response finish.
    pub fn release(&self) {
        self.release.notify_waiters();
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type AppBody = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

async fn answer(
    mut request: Request<Incoming>,
    release: Arc<Notify>,
) -> Result<Response<AppBody>, Infallible> {
    if request.headers().contains_key(http::header::UPGRADE) {
        let upgrade = hyper::upgrade::on(&mut request);
        tokio::spawn(async move {
            if let Ok(upgraded) = upgrade.await {
                let (mut reader, mut writer) = tokio::io::split(TokioIo::new(upgraded));
                let _ = tokio::io::copy(&mut reader, &mut writer).await;
            }
        });
        return Ok(Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(http::header::CONNECTION, "upgrade")
            .header(http::header::UPGRADE, "websocket")
            .body(Full::new(Bytes::new()).boxed_unsync())
            .unwrap());
    }
    let path = request.uri().path().to_string();
    if path == "/hold" {
        let (tx, rx) = tokio::sync::mpsc::channel::<Frame<Bytes>>(2);
        tokio::spawn(async move {
            let notified = release.notified();
            let _ = tx.send(Frame::data(Bytes::from_static(b"first\n"))).await;
            notified.await;
            let _ = tx.send(Frame::data(Bytes::from_static(b"last\n"))).await;
        });
        return Ok(Response::new(ChannelBody(rx).boxed_unsync()));
    }
    if path == "/bytes" {
        let n: usize = request
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("n="))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let (tx, rx) = tokio::sync::mpsc::channel::<Frame<Bytes>>(4);
        tokio::spawn(async move {
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            let mut left = n;
            while left > 0 {
                let size = left.min(chunk.len());
                if tx.send(Frame::data(chunk.slice(..size))).await.is_err() {
                    return;
                }
                left -= size;
            }
        });
        return Ok(Response::new(ChannelBody(rx).boxed_unsync()));
    }
    let identity: serde_json::Map<String, Value> = request
        .headers()
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("x-outband-"))
        .map(|(name, value)| {
            (
                name.to_string(),
                json!(value.to_str().unwrap_or("<binary>")),
            )
        })
        .collect();
    let reply = json!({
        "method": request.method().as_str(),
        "path": request.uri().path_and_query().map(|p| p.as_str()).unwrap_or(""),
        "version": format!("{:?}", request.version()),
        "host": request.headers().get(http::header::HOST).and_then(|v| v.to_str().ok()),
        "forwardedFor": request.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok()),
        "authorization": request.headers().contains_key(http::header::AUTHORIZATION),
        "identity": identity,
        "bodyBytes": request.into_body().collect().await.map(|b| b.to_bytes().len()).unwrap_or(0),
    });
    Ok(Response::builder()
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(reply.to_string())).boxed_unsync())
        .unwrap())
}

/// A response body fed from a channel, frame by frame.
struct ChannelBody(tokio::sync::mpsc::Receiver<Frame<Bytes>>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|frame| frame.map(Ok))
    }
}

/// The sidecar binary running as a process.
pub struct Sidecar {
    pub process: ManagedProcess,
    pub port: u16,
    pub admin_port: u16,
    _logs: tempfile::TempDir,
}

impl Sidecar {
    /// Starts the sidecar for `shop/orders` in front of `app_port`, reading `config_dir`,
    /// with `extra` flags, and waits until it is live (not necessarily ready).
    pub async fn start(config_dir: &Path, app_port: u16, extra: &[&str]) -> Sidecar {
        let binary = paths::binary("outband-sidecar").expect("the sidecar builds");
        let logs = tempfile::tempdir().unwrap();
        for attempt in 0..3 {
            let port = free_port();
            let admin_port = free_port();
            let mut args: Vec<String> = [
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--admin-listen",
                &format!("127.0.0.1:{admin_port}"),
                "--upstream",
                &format!("http://127.0.0.1:{app_port}"),
                "--config-dir",
                &config_dir.display().to_string(),
                "--api",
                API,
                "--api-namespace",
                NAMESPACE,
                "--jwks-min-interval",
                "1s",
                "--config-poll-interval",
                "1s",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            args.extend(extra.iter().map(|s| s.to_string()));
            let log = logs.path().join(format!("sidecar-{attempt}.log"));
            let mut process = ManagedProcess::spawn(
                "outband-sidecar",
                &binary,
                &args,
                &[("OUTBAND_LOG", "info,outband_sidecar=debug")],
                &log,
            )
            .expect("the sidecar starts");
            let client = reqwest::Client::new();
            for _ in 0..400 {
                if let Some(status) = process.exited() {
                    eprintln!("sidecar exited ({status}): {}", process.log_tail(20));
                    break;
                }
                let live = client
                    .get(format!("http://127.0.0.1:{admin_port}/livez"))
                    .send()
                    .await;
                if live.is_ok_and(|r| r.status() == 200) {
                    return Sidecar {
                        process,
                        port,
                        admin_port,
                        _logs: logs,
                    };
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
        panic!("the sidecar did not become live");
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `http://127.0.0.1:<admin port><path>`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        for _ in 0..400 {
            if let Ok(response) = client.get(self.admin_url("/readyz")).send().await
                && response.status() == 200
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        bail!(
            "the sidecar did not become ready:\n{}",
            self.process.log_tail(30)
        )
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        reqwest::get(self.admin_url("/metrics"))
            .await
            .expect("/metrics answers")
            .text()
            .await
            .unwrap()
    }

    /// The value of the sample `name{labels}` in `/metrics` (0 when absent).
    pub async fn metric(&self, sample: &str) -> f64 {
        metric_value(&self.metrics().await, sample)
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) -> anyhow::Result<()> {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.process.pid().to_string()])
            .status()
            .context("running kill")?;
        if !status.success() {
            bail!("kill -TERM failed");
        }
        Ok(())
    }

    /// The sidecar's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.process.log_path()).unwrap_or_default()
    }
}

/// The value of the sample `sample` (exact name and labels) in a metrics text.
pub fn metric_value(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(sample)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|value| value.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

/// A config volume written the kubelet way, with `config` in it.
pub fn volume_with(config: &SidecarConfig) -> (tempfile::TempDir, AtomicVolume) {
    let dir = tempfile::tempdir().unwrap();
    let volume = AtomicVolume::new(dir.path()).unwrap();
    volume.write(&bundle_files(config)).unwrap();
    (dir, volume)
}

/// A GET with a bearer token.
pub async fn get(client: &reqwest::Client, url: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("the sidecar answers")
}

/// Status and JSON body.
pub async fn status_and_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}
