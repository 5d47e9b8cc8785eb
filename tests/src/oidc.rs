//! A real OpenID provider for tests: the npm package `oidc-provider` (pinned by
//! `tests/oidc-provider/package-lock.json`, installed by `make oidc-provider`), run by
//! `tests/oidc-provider/server.mjs` on plain http on 127.0.0.1.
//!
//! It issues RFC 9068 JWT access tokens (`typ: at+jwt`) with the client_credentials grant,
//! signed with RS256 (and ES256 for chosen clients when an EC key is enabled), and can
//! rotate its signing keys, add or remove clients, stop and come back on the same port
//! with the same keys. The node process is killed when the [`OidcProvider`] is dropped
//! (also on panic), and exits by itself when the test process dies (its stdin closes).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

/// Audience (`aud`, the default resource indicator) of tokens unless configured otherwise.
pub const DEFAULT_AUDIENCE: &str = "https://api.outband.test";

/// Lifetime of access tokens unless configured otherwise (seconds).
pub const DEFAULT_TOKEN_TTL_SECS: u64 = 600;

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
const STDERR_TAIL_LINES: usize = 40;
const INSTALL_HINT: &str = "run `make oidc-provider`";

/// An OAuth client registered at the provider (confidential, client_credentials only,
/// authenticating with client_secret_basic or client_secret_post).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcClient {
    pub id: String,
    pub secret: String,
    /// Scopes this client may request. Requesting a scope allowed to another client but not
    /// to this one is refused (`invalid_scope`); scopes no client has are silently dropped.
    pub scopes: Vec<String>,
    /// Access token lifetime for this client; `None` uses [`OidcOptions::token_ttl_secs`].
    pub token_ttl_secs: Option<u64>,
}

impl OidcClient {
    /// A client with the provider's default token lifetime.
    pub fn new(id: &str, secret: &str, scopes: &[&str]) -> OidcClient {
        OidcClient {
            id: id.to_string(),
            secret: secret.to_string(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            token_ttl_secs: None,
        }
    }

    /// The same client with its own access token lifetime.
    pub fn with_token_ttl(mut self, secs: u64) -> OidcClient {
        self.token_ttl_secs = Some(secs);
        self
    }
}

/// How to start the provider. `Default` gives one client (`test-client` / `test-secret`,
/// scopes `api:read api:write`), audience [`DEFAULT_AUDIENCE`], RSA key only, any free port.
#[derive(Clone, Debug)]
pub struct OidcOptions {
    pub clients: Vec<OidcClient>,
    /// Default resource indicator, used as `aud` when a token request has no `resource`.
    pub audience: String,
    /// Also publish an EC P-256 signing key (ES256), used for [`Self::es256_clients`].
    pub ec_key: bool,
    /// Ids of clients whose tokens are signed with ES256 (needs `ec_key`); others get RS256.
    pub es256_clients: Vec<String>,
    /// Default access token lifetime in seconds.
    pub token_ttl_secs: u64,
    /// How long `rotate_keys(true)` keeps a rotated-out key in the JWKS (seconds);
    /// 0 keeps it until a `rotate_keys(false)`.
    pub old_key_retention_secs: u64,
    /// Port on 127.0.0.1; 0 picks a free one (kept across [`OidcProvider::restart`]).
    pub port: u16,
    /// One stderr line per HTTP request the provider serves (method, path, status).
    pub log_requests: bool,
    /// The RS256 signing key, as a private JWK (`n`, `e`, `d`, `p`, `q`, …); `None`
    /// generates an RSA-2048 key. For keys too slow to generate in a test (9216 bits).
    pub rs256_key: Option<Value>,
}

impl Default for OidcOptions {
    fn default() -> OidcOptions {
        OidcOptions {
            clients: vec![OidcClient::new(
                "test-client",
                "test-secret",
                &["api:read", "api:write"],
            )],
            audience: DEFAULT_AUDIENCE.to_string(),
            ec_key: false,
            es256_clients: Vec::new(),
            token_ttl_secs: DEFAULT_TOKEN_TTL_SECS,
            old_key_retention_secs: 0,
            port: 0,
            log_requests: false,
            rs256_key: None,
        }
    }
}

/// The signing keys the provider holds, as reported by its admin API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcKeys {
    /// `kid` that signs new RS256 tokens.
    pub rs256_kid: String,
    /// `kid` that signs new ES256 tokens, when the EC key is enabled.
    pub es256_kid: Option<String>,
    /// Every published `kid` (signing and retired), newest first.
    pub published_kids: Vec<String>,
}

/// Token endpoint answer: HTTP status and JSON body (for tests of error responses).
#[derive(Clone, Debug)]
pub struct TokenResponse {
    pub status: u16,
    pub body: Value,
}

/// A running (or stopped) OpenID provider process. See the module documentation.
pub struct OidcProvider {
    node: PathBuf,
    project: PathBuf,
    // Holds clients.json and keys.json; keys.json survives restarts.
    state: tempfile::TempDir,
    options: OidcOptions,
    clients: Mutex<Vec<OidcClient>>,
    issuer: String,
    port: u16,
    process: Option<Running>,
    http: reqwest::Client,
}

struct Running {
    child: Child,
    // Kept open: the server exits when it closes (also when this test process dies).
    _stdin: ChildStdin,
}

impl OidcProvider {
    /// Starts the provider and waits until it serves (about half a second).
    ///
    /// Fails with "run `make oidc-provider`" when node or the npm dependencies are missing.
    pub async fn start(options: OidcOptions) -> anyhow::Result<OidcProvider> {
        validate(&options)?;
        let node = find_node()?;
        let project = project_dir()?;
        let state = tempfile::Builder::new()
            .prefix("outband-oidc-")
            .tempdir()
            .context("creating the OpenID provider's state directory")?;
        let mut provider = OidcProvider {
            node,
            project,
            state,
            clients: Mutex::new(options.clients.clone()),
            issuer: String::new(),
            port: options.port,
            options,
            process: None,
            http: http_client()?,
        };
        if let Some(jwk) = &provider.options.rs256_key {
            write_signing_key(provider.state.path(), jwk)?;
        }
        provider.launch().await?;
        Ok(provider)
    }

    /// Issuer, `http://127.0.0.1:PORT` (no trailing slash), as in `iss`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The OpenID discovery document's URL.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer)
    }

    /// The token endpoint (as published in discovery).
    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.issuer)
    }

    /// The JWKS endpoint (as published in discovery).
    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.issuer)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The default audience of tokens.
    pub fn audience(&self) -> &str {
        &self.options.audience
    }

    /// Whether the node process is running (not stopped, not crashed).
    pub fn is_running(&mut self) -> bool {
        match self.process.as_mut() {
            Some(running) => matches!(running.child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// An access token (a JWT) for `client_id` with the client_credentials grant, for the
    /// default audience. `scope` is space-separated; `None` sends no scope (then the token
    /// has no `scope` claim).
    pub async fn client_credentials_token(
        &self,
        client_id: &str,
        secret: &str,
        scope: Option<&str>,
    ) -> anyhow::Result<String> {
        self.client_credentials_token_for(client_id, secret, scope, None)
            .await
    }

    /// Like [`Self::client_credentials_token`], with an explicit `resource` indicator
    /// (RFC 8707), which becomes the token's `aud`.
    pub async fn client_credentials_token_for(
        &self,
        client_id: &str,
        secret: &str,
        scope: Option<&str>,
        resource: Option<&str>,
    ) -> anyhow::Result<String> {
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend(scope.map(|s| ("scope", s)));
        form.extend(resource.map(|r| ("resource", r)));
        let response = self.token_request(client_id, secret, &form).await?;
        if response.status != 200 {
            bail!(
                "token request for client {client_id} refused: HTTP {} {} ({})",
                response.status,
                response.body["error"].as_str().unwrap_or("?"),
                response.body["error_description"].as_str().unwrap_or(""),
            );
        }
        response.body["access_token"]
            .as_str()
            .map(str::to_string)
            .context("token response without access_token")
    }

    /// Posts `form` to the token endpoint with HTTP Basic client authentication
    /// (RFC 6749 §2.3.1) and returns the status and JSON body, whatever they are.
    pub async fn token_request(
        &self,
        client_id: &str,
        secret: &str,
        form: &[(&str, &str)],
    ) -> anyhow::Result<TokenResponse> {
        let response = self
            .http
            .post(self.token_endpoint())
            .header(
                reqwest::header::AUTHORIZATION,
                basic_credentials(client_id, secret),
            )
            .form(form)
            .send()
            .await
            .with_context(|| format!("POST {}", self.token_endpoint()))?;
        let status = response.status().as_u16();
        let body = response
            .json::<Value>()
            .await
            .context("token endpoint answered with something that is not JSON")?;
        Ok(TokenResponse { status, body })
    }

    /// The discovery document as published.
    pub async fn discovery(&self) -> anyhow::Result<Value> {
        self.get_json(&self.discovery_url()).await
    }

    /// The JWKS as published (public keys only).
    pub async fn jwks(&self) -> anyhow::Result<Value> {
        self.get_json(&self.jwks_url()).await
    }

    /// The provider's signing keys (which `kid` signs, which are published).
    pub async fn keys(&self) -> anyhow::Result<OidcKeys> {
        let report = self.admin(reqwest::Method::GET, "keys", None).await?;
        parse_keys(&report)
    }

    /// Rotates the signing keys: new keys with new `kid`s sign from now on and are
    /// published. With `keep_old` the previous keys stay in the JWKS (for
    /// [`OidcOptions::old_key_retention_secs`], or until a rotation without `keep_old`);
    /// without it every older key leaves the JWKS at once.
    pub async fn rotate_keys(&self, keep_old: bool) -> anyhow::Result<()> {
        self.admin(
            reqwest::Method::POST,
            "rotate-keys",
            Some(json!({ "keep_old": keep_old })),
        )
        .await
        .map(drop)
    }

    /// Rotates the signing keys, keeping the old ones published for `secs` seconds only.
    pub async fn rotate_keys_retaining(&self, secs: u64) -> anyhow::Result<()> {
        self.admin(
            reqwest::Method::POST,
            "rotate-keys",
            Some(json!({ "keep_old": true, "retain_secs": secs })),
        )
        .await
        .map(drop)
    }

    /// Registers a client (or replaces the one with the same id) while running; it
    /// survives [`Self::restart`].
    pub async fn add_client(&self, client: &OidcClient) -> anyhow::Result<()> {
        let body = client_json(client, &self.options);
        self.admin(reqwest::Method::POST, "clients", Some(body))
            .await?;
        let mut clients = lock(&self.clients);
        clients.retain(|c| c.id != client.id);
        clients.push(client.clone());
        write_clients(self.state.path(), &clients, &self.options)
    }

    /// Removes a client while running; it stays removed after [`Self::restart`].
    pub async fn remove_client(&self, client_id: &str) -> anyhow::Result<()> {
        let path = format!(
            "clients/{}",
            url::form_urlencoded::byte_serialize(client_id.as_bytes()).collect::<String>()
        );
        self.admin(reqwest::Method::DELETE, &path, None).await?;
        let mut clients = lock(&self.clients);
        clients.retain(|c| c.id != client_id);
        write_clients(self.state.path(), &clients, &self.options)
    }

    /// Kills the provider: its port refuses connections until [`Self::restart`].
    pub async fn stop(&mut self) {
        if let Some(mut running) = self.process.take() {
            let _ = running.child.kill().await;
        }
    }

    /// Starts the provider again (stopping it first if needed) on the same port, with the
    /// same issuer, clients and signing keys, as a real IdP coming back after an outage.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await;
        self.launch().await
    }

    async fn launch(&mut self) -> anyhow::Result<()> {
        let clients = lock(&self.clients).clone();
        write_clients(self.state.path(), &clients, &self.options)?;
        // A restart on a fixed port may race the kernel releasing it; retry briefly.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.spawn_and_wait().await {
                Ok(()) => return Ok(()),
                Err(err)
                    if self.port != 0
                        && attempt < 10
                        && format!("{err:#}").contains("EADDRINUSE") =>
                {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Err(err) => return Err(err),
            }
        }
    }

    async fn spawn_and_wait(&mut self) -> anyhow::Result<()> {
        let state = self.state.path();
        let mut command = Command::new(&self.node);
        command
            .current_dir(&self.project)
            .arg("server.mjs")
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--audience")
            .arg(&self.options.audience)
            .arg("--clients-file")
            .arg(state.join("clients.json"))
            .arg("--keys-file")
            .arg(state.join("keys.json"))
            .arg("--token-ttl")
            .arg(self.options.token_ttl_secs.to_string())
            .arg("--old-key-retention")
            .arg(self.options.old_key_retention_secs.to_string())
            .arg("--exit-on-stdin-eof")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if self.options.ec_key {
            command.arg("--ec-key");
        }
        if self.options.log_requests {
            command.arg("--log-requests");
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", self.node.display()))?;
        let stdin = child.stdin.take().context("node's stdin")?;
        let stdout = child.stdout.take().context("node's stdout")?;
        let stderr = child.stderr.take().context("node's stderr")?;

        let tail = Arc::new(Mutex::new(VecDeque::new()));
        tokio::spawn(forward_stderr(stderr, tail.clone()));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(drain_stdout(stdout, ready_tx));

        let ready = tokio::select! {
            ready = tokio::time::timeout(READY_TIMEOUT, ready_rx) => ready,
            status = child.wait() => {
                // Give the stderr forwarder a moment to collect the reason.
                tokio::time::sleep(Duration::from_millis(100)).await;
                bail!(
                    "the OpenID provider exited during start-up ({}):\n{}",
                    status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
                    stderr_tail(&tail),
                );
            }
        };
        let ready: Value = match ready {
            Ok(Ok(ready)) => ready,
            Ok(Err(_)) => {
                let _ = child.kill().await;
                bail!(
                    "the OpenID provider closed stdout before it was ready:\n{}",
                    stderr_tail(&tail)
                );
            }
            Err(_) => {
                let _ = child.kill().await;
                bail!(
                    "the OpenID provider was not ready within {READY_TIMEOUT:?}:\n{}",
                    stderr_tail(&tail)
                );
            }
        };
        let issuer = ready["issuer"]
            .as_str()
            .context("ready line without issuer")?
            .to_string();
        let port = ready["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .context("ready line without port")?;
        self.issuer = issuer;
        self.port = port;
        self.process = Some(Running {
            child,
            _stdin: stdin,
        });
        Ok(())
    }

    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}/_admin/{path}", self.issuer);
        let mut request = self.http.request(method.clone(), &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .with_context(|| format!("{method} {url}: answer is not JSON"))?;
        if !status.is_success() {
            bail!(
                "{method} {url}: HTTP {status}: {}",
                body["error"].as_str().unwrap_or("")
            );
        }
        Ok(body)
    }

    async fn get_json(&self, url: &str) -> anyhow::Result<Value> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?
            .error_for_status()
            .with_context(|| format!("GET {url}"))?;
        response
            .json()
            .await
            .with_context(|| format!("GET {url}: answer is not JSON"))
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        if let Some(running) = self.process.as_mut() {
            // SIGKILL now; tokio reaps the child in the background.
            let _ = running.child.start_kill();
        }
    }
}

/// Header and claims of a compact JWS, decoded without checking anything (for assertions).
pub fn decode_unverified(token: &str) -> anyhow::Result<(Value, Value)> {
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        bail!("not a compact JWS (three dot-separated parts)");
    };
    let decode = |part: &str, what: &str| -> anyhow::Result<Value> {
        let bytes = URL_SAFE_NO_PAD
            .decode(part)
            .with_context(|| format!("JWT {what} is not base64url"))?;
        serde_json::from_slice(&bytes).with_context(|| format!("JWT {what} is not JSON"))
    };
    Ok((decode(header, "header")?, decode(claims, "claims")?))
}

fn validate(options: &OidcOptions) -> anyhow::Result<()> {
    if !options.es256_clients.is_empty() && !options.ec_key {
        bail!("OidcOptions::es256_clients needs ec_key: true");
    }
    for id in &options.es256_clients {
        if !options.clients.iter().any(|c| &c.id == id) {
            bail!("OidcOptions::es256_clients names unknown client {id}");
        }
    }
    Ok(())
}

fn find_node() -> anyhow::Result<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("node"))
        .find(|candidate| candidate.is_file())
        .with_context(|| {
            format!(
                "`node` (Node.js 20+) not found on PATH for the OpenID provider: {INSTALL_HINT}"
            )
        })
}

/// `tests/oidc-provider`, after checking its npm dependencies are installed and current.
fn project_dir() -> anyhow::Result<PathBuf> {
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("oidc-provider");
    let installed = project.join("node_modules/.package-lock.json");
    if !project
        .join("node_modules/oidc-provider/package.json")
        .is_file()
        || !installed.is_file()
    {
        bail!(
            "the OpenID provider's npm dependencies are missing ({}): {INSTALL_HINT}",
            project.join("node_modules").display()
        );
    }
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    if let (Some(lock), Some(installed)) = (
        modified(&project.join("package-lock.json")),
        modified(&installed),
    ) && lock > installed
    {
        bail!(
            "the OpenID provider's npm dependencies are older than package-lock.json: {INSTALL_HINT}"
        );
    }
    Ok(project)
}

fn http_client() -> anyhow::Result<reqwest::Client> {
    // reqwest is built without a default TLS crypto provider; install aws-lc-rs once.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(HTTP_TIMEOUT)
        .build()
        .context("building the HTTP client")
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))`, as RFC 6749 §2.3.1 asks.
fn basic_credentials(client_id: &str, secret: &str) -> String {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", encode(client_id), encode(secret));
    format!("Basic {}", STANDARD.encode(pair))
}

fn client_json(client: &OidcClient, options: &OidcOptions) -> Value {
    let alg = if options.es256_clients.contains(&client.id) {
        "ES256"
    } else {
        "RS256"
    };
    json!({
        "client_id": client.id,
        "client_secret": client.secret,
        "scopes": client.scopes,
        "token_ttl_secs": client.token_ttl_secs,
        "token_alg": alg,
    })
}

fn write_clients(dir: &Path, clients: &[OidcClient], options: &OidcOptions) -> anyhow::Result<()> {
    let list: Vec<Value> = clients.iter().map(|c| client_json(c, options)).collect();
    let path = dir.join("clients.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&list)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// Writes `keys.json` with `jwk` (a private RSA JWK) as the RS256 signing key, under its
/// RFC 7638 thumbprint as `kid` (what the provider itself would use).
fn write_signing_key(dir: &Path, jwk: &Value) -> anyhow::Result<()> {
    use sha2::Digest;
    let member = |name: &str| {
        jwk[name]
            .as_str()
            .with_context(|| format!("OidcOptions::rs256_key has no {name:?}"))
    };
    let canonical = format!(
        r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
        member("e")?,
        member("n")?
    );
    let kid = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(canonical.as_bytes()));
    let mut key = jwk.clone();
    key["kty"] = json!("RSA");
    key["kid"] = json!(kid);
    key["alg"] = json!("RS256");
    key["use"] = json!("sig");
    let keys = json!({"keys": [{"jwk": key, "status": "signing", "retired_at": null, "expires_at": null}]});
    let path = dir.join("keys.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&keys)?)
        .with_context(|| format!("writing {}", path.display()))
}

fn parse_keys(report: &Value) -> anyhow::Result<OidcKeys> {
    let rs256_kid = report["signing"]["RS256"]
        .as_str()
        .context("no RS256 signing key reported")?
        .to_string();
    let es256_kid = report["signing"]["ES256"].as_str().map(str::to_string);
    let published_kids = report["keys"]
        .as_array()
        .context("no key list reported")?
        .iter()
        .filter_map(|k| k["kid"].as_str().map(str::to_string))
        .collect();
    Ok(OidcKeys {
        rs256_kid,
        es256_kid,
        published_kids,
    })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads stdout until the ready line, hands it over, then keeps draining (forwarding any
/// stray output to stderr) so the pipe never fills.
async fn drain_stdout(
    stdout: tokio::process::ChildStdout,
    ready: tokio::sync::oneshot::Sender<Value>,
) {
    let mut lines = BufReader::new(stdout).lines();
    let mut ready = Some(ready);
    while let Ok(Some(line)) = lines.next_line().await {
        if ready.is_some()
            && let Ok(value) = serde_json::from_str::<Value>(&line)
            && value["ready"] == Value::Bool(true)
        {
            if let Some(tx) = ready.take() {
                let _ = tx.send(value);
            }
            continue;
        }
        eprintln!("oidc-provider (stdout): {line}");
    }
}

/// Forwards the server's stderr to the test's stderr, keeping a tail for error messages.
async fn forward_stderr(stderr: tokio::process::ChildStderr, tail: Arc<Mutex<VecDeque<String>>>) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        eprintln!("{line}");
        let mut tail = lock(&tail);
        if tail.len() == STDERR_TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}

fn stderr_tail(tail: &Mutex<VecDeque<String>>) -> String {
    let lines: Vec<String> = lock(tail).iter().cloned().collect();
    if lines.is_empty() {
        "(no output)".to_string()
    } else {
        lines.join("\n")
    }
}
