//! The sidecar binary in front of a real HTTP app, called over real sockets with tokens from
//! the real OpenID provider: the outcomes of docs/architecture.md's request path, forged tokens,
//! key rotation, route scopes, streaming, upgrades, h2c, readiness and graceful drain.

mod sidecar_common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use outband_tests::kubelet::AtomicVolume;
use outband_tests::oidc::{OidcProvider, decode_unverified};
use serde_json::{Value, json};
use sidecar_common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Provider, app, config volume and sidecar, ready.
struct Fixture {
    provider: OidcProvider,
    app: TestApp,
    _dir: tempfile::TempDir,
    volume: AtomicVolume,
    sidecar: Sidecar,
    client: reqwest::Client,
}

impl Fixture {
    async fn start(extra: &[&str]) -> Fixture {
        let provider = provider().await;
        let app = TestApp::start().await;
        let (dir, volume) = volume_with(&config_for(&provider).await);
        let sidecar = Sidecar::start(dir.path(), app.port(), extra).await;
        sidecar.wait_ready().await.unwrap();
        Fixture {
            provider,
            app,
            _dir: dir,
            volume,
            sidecar,
            client: reqwest::Client::new(),
        }
    }

    async fn call(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        status_and_json(get(&self.client, &self.sidecar.url(path), token).await).await
    }

    async fn token(&self, client: &str) -> String {
        token(&self.provider, client, "orders:read").await
    }
}

fn replace_header(token: &str, header: Value) -> String {
    let rest = &token[token.find('.').unwrap() + 1..];
    format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header.to_string()))
}

#[tokio::test]
async fn a_subscribed_client_reaches_the_app_with_identity_headers() {
    let f = Fixture::start(&[]).await;
    let token = f.token(PROD).await;
    let response = f
        .client
        .get(f.sidecar.url("/orders/42?x=1"))
        .bearer_auth(&token)
        .header("X-Outband-Client-Id", "spoofed")
        .header("x-outband-tier", "Platinum")
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["path"], "/orders/42?x=1");
    let identity = &body["identity"];
    assert_eq!(identity["x-outband-client-id"], PROD);
    assert_eq!(identity["x-outband-application"], format!("{PROD}-app"));
    assert_eq!(identity["x-outband-key-type"], "PRODUCTION");
    assert_eq!(identity["x-outband-tier"], "Gold");
    assert_eq!(identity["x-outband-key-manager"], KEY_MANAGER);
    assert_eq!(identity["x-outband-scopes"], "orders:read");
    assert!(identity["x-outband-subject"].is_string());
    assert_eq!(body["authorization"], true);
    assert_eq!(body["forwardedFor"], "127.0.0.1");
}

#[tokio::test]
async fn an_es256_token_is_accepted_too() {
    let f = Fixture::start(&[]).await;
    let token = f.token(EC_CLIENT).await;
    let (header, _) = decode_unverified(&token).unwrap();
    assert_eq!(header["alg"], "ES256");
    assert_eq!(f.call("/", Some(&token)).await.0, 200);
}

#[tokio::test]
async fn an_unsubscribed_client_is_refused_with_403() {
    let f = Fixture::start(&[]).await;
    let (status, body) = f.call("/orders", Some(&f.token(STRANGER).await)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("not_subscribed"))
    );
}

#[tokio::test]
async fn a_sandbox_key_on_a_production_api_is_refused_with_403() {
    let f = Fixture::start(&[]).await;
    let (status, body) = f.call("/orders", Some(&f.token(SANDBOX).await)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("key_type_not_allowed"))
    );
}

#[tokio::test]
async fn a_sandbox_deployment_accepts_sandbox_keys_only() {
    let f = Fixture::start(&["--key-type", "SANDBOX"]).await;
    assert_eq!(f.call("/", Some(&f.token(SANDBOX).await)).await.0, 200);
    assert_eq!(f.call("/", Some(&f.token(PROD).await)).await.0, 403);
}

#[tokio::test]
async fn blocked_subscriptions_are_refused_with_403() {
    let f = Fixture::start(&[]).await;
    for client in [BLOCKED, PROD_ONLY_BLOCKED] {
        let (status, body) = f.call("/orders", Some(&f.token(client).await)).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some("subscription_blocked")),
            "{client}"
        );
    }
}

#[tokio::test]
async fn a_missing_token_gets_a_bearer_challenge() {
    let f = Fixture::start(&[]).await;
    let response = get(&f.client, &f.sidecar.url("/orders"), None).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        format!("Bearer realm=\"{NAMESPACE}/{API}\"")
    );
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "missing_token"
    );
}

#[tokio::test]
async fn an_expired_token_is_refused_with_401() {
    let f = Fixture::start(&[]).await;
    let token = f.token(SHORT_LIVED).await;
    let (_, claims) = decode_unverified(&token).unwrap();
    let exp = claims["exp"].as_u64().unwrap();
    // Wait for the provider's one-second token to expire (real time, not a timing target).
    while SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        < exp
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let response = get(&f.client, &f.sidecar.url("/orders"), Some(&token)).await;
    assert_eq!(response.status(), 401);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "token_expired"
    );
}

#[tokio::test]
async fn a_forged_token_is_refused_with_401() {
    let f = Fixture::start(&[]).await;
    let token = f.token(STRANGER).await;
    let (_, mut claims) = decode_unverified(&token).unwrap();
    claims["client_id"] = json!(PROD);
    let parts: Vec<&str> = token.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    let (status, body) = f.call("/orders", Some(&forged)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_token"))
    );
}

#[tokio::test]
async fn a_token_of_another_issuer_is_refused_with_401() {
    let f = Fixture::start(&[]).await;
    let other = provider().await;
    let token = token(&other, PROD, "orders:read").await;
    let (status, body) = f.call("/orders", Some(&token)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_token"))
    );
    assert_eq!(
        f.sidecar
            .metric("outband_sidecar_decisions_total{outcome=\"deny\",reason=\"unknown_issuer\"}")
            .await,
        1.0
    );
}

#[tokio::test]
async fn alg_none_is_refused_with_401() {
    let f = Fixture::start(&[]).await;
    let token = f.token(PROD).await;
    let (header, _) = decode_unverified(&token).unwrap();
    for alg in ["none", "None", "NONE"] {
        let forged = replace_header(
            &token,
            json!({"alg": alg, "typ": "at+jwt", "kid": header["kid"]}),
        );
        let unsigned = format!("{}.", &forged[..forged.rfind('.').unwrap()]);
        assert_eq!(f.call("/orders", Some(&forged)).await.0, 401, "{alg}");
        assert_eq!(
            f.call("/orders", Some(&unsigned)).await.0,
            401,
            "{alg} unsigned"
        );
    }
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused_with_401() {
    let f = Fixture::start(&[]).await;
    let token = f.token(PROD).await;
    let (header, _) = decode_unverified(&token).unwrap();
    let jwks = f.provider.jwks().await.unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .unwrap()
        .clone();
    let modulus = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    for secret in [jwk.to_string().into_bytes(), modulus] {
        let forged = replace_header(
            &token,
            json!({"alg": "HS256", "typ": "at+jwt", "kid": header["kid"]}),
        );
        let message = &forged[..forged.rfind('.').unwrap()];
        let signature = jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &jsonwebtoken::EncodingKey::from_secret(&secret).unwrap(),
            jsonwebtoken::Algorithm::HS256,
        )
        .unwrap();
        let (status, body) = f
            .call("/orders", Some(&format!("{message}.{signature}")))
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("invalid_token"))
        );
    }
}

#[tokio::test]
async fn a_rotated_key_is_fetched_from_the_key_managers_jwks_url() {
    let f = Fixture::start(&[]).await;
    let before = f.token(PROD).await;
    assert_eq!(f.call("/", Some(&before)).await.0, 200);
    f.provider.rotate_keys(false).await.unwrap();
    let after = f.token(PROD).await;
    let kid = |t: &str| decode_unverified(t).unwrap().0["kid"].clone();
    assert_ne!(kid(&before), kid(&after));
    let (status, body) = f.call("/", Some(&after)).await;
    assert_eq!(status, 200, "{body}\n{}", f.sidecar.log());
    assert_eq!(f.sidecar.metric(&format!("outband_sidecar_jwks_fetches_total{{key_manager=\"{KEY_MANAGER}\",result=\"success\"}}")).await, 1.0);
    // Invented key ids never reach the provider again while the first is remembered.
    let invented = replace_header(
        &after,
        json!({"alg": "RS256", "typ": "at+jwt", "kid": "invented"}),
    );
    for _ in 0..20 {
        assert_eq!(f.call("/", Some(&invented)).await.0, 401);
    }
    let fetches = f.sidecar.metrics().await;
    let total: f64 = fetches
        .lines()
        .filter(|l| {
            l.starts_with("outband_sidecar_jwks_fetches_total{") && !l.contains("rate_limited")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(total <= 2.0, "{fetches}");
}

#[tokio::test]
async fn the_verified_token_cache_answers_repeated_calls_and_rechecks_subscriptions() {
    let f = Fixture::start(&[]).await;
    let token = f.token(PROD).await;
    for _ in 0..5 {
        assert_eq!(f.call("/", Some(&token)).await.0, 200);
    }
    assert_eq!(
        f.sidecar
            .metric("outband_sidecar_token_cache_lookups_total{result=\"hit\"}")
            .await,
        4.0
    );
    // Block the subscription: the cached token is refused at once after the swap.
    let mut config = config_for(&f.provider).await;
    for sub in &mut config.subscriptions {
        if sub.consumer_key == PROD {
            sub.state = outband_crds::SubscriptionState::Blocked;
        }
    }
    let wanted = generation(&config);
    f.volume.write(&bundle_files(&config)).unwrap();
    let sample = format!("outband_sidecar_config_info{{sha256=\"{wanted}\"}}");
    for _ in 0..400 {
        if f.sidecar.metric(&sample).await == 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, body) = f.call("/", Some(&token)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("subscription_blocked"))
    );
}

#[tokio::test]
async fn route_scopes_are_enforced_on_the_normalised_path() {
    let f = Fixture::start(&[
        "--route-scopes",
        "GET /orders/* orders:read; POST /orders orders:write; * /admin/** admin",
    ])
    .await;
    let reader = f.token(PROD).await;
    assert_eq!(f.call("/orders/1", Some(&reader)).await.0, 200);
    for path in [
        "/admin",
        "/admin/users",
        "//admin/users",
        "/ADMIN/users",
        "/x/../admin",
        "/%61dmin",
        "/admin;a=b/x",
    ] {
        let response = get(&f.client, &f.sidecar.url(path), Some(&reader)).await;
        assert_eq!(response.status(), 403, "{path}");
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            challenge.contains("error=\"insufficient_scope\"")
                && challenge.contains("scope=\"admin\""),
            "{challenge}"
        );
    }
    for path in ["/admin%2Fusers", "/x/..%2Fadmin", "/admin%5C"] {
        assert_eq!(f.call(path, Some(&reader)).await.0, 400, "{path}");
    }
    // HTTP clients resolve dot segments themselves; send these as written.
    for (path, expected) in [
        ("/x/../admin", 403),
        ("/x/%2e%2e/admin", 403),
        ("/..", 400),
        ("/x/..;/admin", 400),
    ] {
        assert_eq!(
            raw_get(f.sidecar.port, path, &reader).await,
            expected,
            "{path}"
        );
    }
    let writer = token(&f.provider, PROD, "orders:write").await;
    let (status, body) = status_and_json(
        f.client
            .post(f.sidecar.url("/orders"))
            .bearer_auth(&writer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["path"], "/orders");
    let (status, body) = status_and_json(
        f.client
            .post(f.sidecar.url("//orders/"))
            .bearer_auth(&reader)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("insufficient_scope"))
    );
    let (status, body) = f.call("/orders//1/./", Some(&reader)).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["path"], "/orders/1/",
        "the app sees the path that was authorised"
    );
}

/// The status of a GET of `path` sent byte for byte over a new connection.
async fn raw_get(port: u16, path: &str, token: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: orders\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.unwrap();
    std::str::from_utf8(&head[9..12]).unwrap().parse().unwrap()
}

#[tokio::test]
async fn bodies_stream_both_ways() {
    let f = Fixture::start(&[]).await;
    let token = f.token(PROD).await;
    // Upload 8 MiB: the app counts what it received.
    let upload = vec![7u8; 8 * 1024 * 1024];
    let response = f
        .client
        .post(f.sidecar.url("/upload"))
        .bearer_auth(&token)
        .body(upload)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.json::<Value>().await.unwrap()["bodyBytes"],
        8 * 1024 * 1024
    );
    // Download 8 MiB.
    let response = get(&f.client, &f.sidecar.url("/bytes?n=8388608"), Some(&token)).await;
    assert_eq!(response.bytes().await.unwrap().len(), 8 * 1024 * 1024);
    // The first chunk arrives while the app still holds the rest: nothing is buffered.
    let mut held = get(&f.client, &f.sidecar.url("/hold"), Some(&token)).await;
    assert_eq!(held.status(), 200);
    assert_eq!(
        held.chunk().await.unwrap().unwrap(),
        Bytes::from_static(b"first\n")
    );
    f.app.release();
    assert_eq!(
        held.chunk().await.unwrap().unwrap(),
        Bytes::from_static(b"last\n")
    );
}

#[tokio::test]
async fn an_upgrade_is_tunnelled_to_the_app() {
    let f = Fixture::start(&[]).await;
    let token = f.token(PROD).await;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", f.sidecar.port))
        .await
        .unwrap();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: orders\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    stream.write_all(b"ping through the tunnel").await.unwrap();
    let mut echo = [0u8; 23];
    stream.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"ping through the tunnel");
}

#[tokio::test]
async fn an_upgrade_without_a_valid_token_is_refused() {
    let f = Fixture::start(&[]).await;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", f.sidecar.port))
        .await
        .unwrap();
    stream
        .write_all(b"GET /ws HTTP/1.1\r\nHost: orders\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 401");
}

#[tokio::test]
async fn h2c_clients_are_served() {
    let f = Fixture::start(&[]).await;
    let token = f.token(PROD).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Empty<Bytes>>();
    for i in 0..10 {
        let request = http::Request::get(f.sidecar.url(&format!("/h2/{i}")))
            .header("authorization", format!("Bearer {token}"))
            .header("x-outband-client-id", "spoofed")
            .body(Empty::new())
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.version(), http::Version::HTTP_2);
        assert_eq!(response.status(), 200);
        let body: Value =
            serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes())
                .unwrap();
        assert_eq!(body["path"], format!("/h2/{i}"));
        assert_eq!(body["identity"]["x-outband-client-id"], PROD);
        assert_eq!(body["host"], format!("127.0.0.1:{}", f.sidecar.port));
    }
}

#[tokio::test]
async fn oversized_request_headers_are_refused() {
    let f = Fixture::start(&["--max-header-bytes", "16384"]).await;
    let response = f
        .client
        .get(f.sidecar.url("/"))
        .header("x-big", "a".repeat(32 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 431);
}

#[tokio::test]
async fn not_ready_and_refusing_until_a_valid_config_arrives() {
    let provider = provider().await;
    let app = TestApp::start().await;
    let dir = tempfile::tempdir().unwrap();
    let sidecar = Sidecar::start(dir.path(), app.port(), &[]).await;
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(sidecar.admin_url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    let token = token(&provider, PROD, "orders:read").await;
    let (status, body) = status_and_json(get(&client, &sidecar.url("/"), Some(&token)).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("config_unavailable"))
    );
    let volume = AtomicVolume::new(dir.path()).unwrap();
    let mut torn = bundle_files(&config_for(&provider).await);
    torn.insert("config-0.json.gz".into(), b"torn".to_vec());
    volume.write(&torn).unwrap();
    volume
        .write(&bundle_files(&config_for(&provider).await))
        .unwrap();
    sidecar.wait_ready().await.unwrap();
    assert_eq!(
        get(&client, &sidecar.url("/"), Some(&token)).await.status(),
        200
    );
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_before_exiting() {
    let mut f = Fixture::start(&["--drain-timeout", "20s"]).await;
    let token = f.token(PROD).await;
    let mut held = get(&f.client, &f.sidecar.url("/hold"), Some(&token)).await;
    assert_eq!(
        held.chunk().await.unwrap().unwrap(),
        Bytes::from_static(b"first\n")
    );
    f.sidecar.terminate().unwrap();
    let mut not_ready = false;
    for _ in 0..200 {
        let ready = f.client.get(f.sidecar.admin_url("/readyz")).send().await;
        if ready.is_ok_and(|r| r.status() == 503) {
            not_ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(not_ready, "the sidecar stays ready while draining");
    assert!(
        f.sidecar.process.exited().is_none(),
        "the sidecar waits for the in-flight request"
    );
    f.app.release();
    assert_eq!(
        held.chunk().await.unwrap().unwrap(),
        Bytes::from_static(b"last\n")
    );
    assert!(held.chunk().await.unwrap().is_none());
    let mut status = None;
    for _ in 0..400 {
        status = f.sidecar.process.exited();
        if status.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        status.map(|s| s.success()),
        Some(true),
        "{}",
        f.sidecar.log()
    );
    assert!(f.sidecar.log().contains("drained"));
}

#[tokio::test]
async fn an_h2c_app_is_reached_over_http2() {
    let f = Fixture::start(&["--upstream-protocol", "h2c"]).await;
    let (status, body) = f.call("/grpc-like", Some(&f.token(PROD).await)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], "HTTP/2.0");
    assert_eq!(body["identity"]["x-outband-client-id"], PROD);
}

/// Reads until the peer closes; `None` if it is still open after `limit`.
async fn closed_within(stream: &mut tokio::net::TcpStream, limit: Duration) -> Option<Duration> {
    let started = std::time::Instant::now();
    let mut buffer = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

#[tokio::test]
async fn a_connection_that_never_sends_its_headers_is_closed() {
    let f = Fixture::start(&["--header-read-timeout", "1s"]).await;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", f.sidecar.port))
        .await
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert!(
        closed_within(&mut stream, Duration::from_secs(10))
            .await
            .is_some(),
        "the half-sent request was not cut off"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let f = Fixture::start(&["--idle-timeout", "1s"]).await;
    let token = f.token(PROD).await;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", f.sidecar.port))
        .await
        .unwrap();
    let request = format!("GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    assert!(
        closed_within(&mut stream, Duration::from_secs(10))
            .await
            .is_some(),
        "the idle connection stayed open"
    );
}

#[tokio::test]
async fn the_log_level_flag_overrides_the_environment() {
    // The harness sets OUTBAND_LOG=info,outband_sidecar=debug; the flag wins.
    let quiet = Fixture::start(&["--log-level", "warn"]).await;
    let (status, _) =
        status_and_json(get(&quiet.client, &quiet.sidecar.url("/"), None).await).await;
    assert_eq!(status, 401);
    let log = quiet.sidecar.log();
    assert!(
        !log.contains("config loaded"),
        "info logged at warn:\n{log}"
    );
    assert!(!log.contains("refused"), "debug logged at warn:\n{log}");

    let verbose = Fixture::start(&["--log-level", "outband_sidecar=debug"]).await;
    get(&verbose.client, &verbose.sidecar.url("/"), None).await;
    let log = verbose.sidecar.log();
    assert!(log.contains("config loaded"), "{log}");
    assert!(
        log.contains("missing_token"),
        "the refusal is logged at debug:\n{log}"
    );
}

#[tokio::test]
async fn a_bad_log_level_stops_the_sidecar_with_a_message() {
    let binary = outband_tests::paths::binary("outband-sidecar").unwrap();
    let output = std::process::Command::new(binary)
        .args(["--api", API, "--log-level", "outband_sidecar=loud"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--log-level") && stderr.contains("not a log filter"),
        "{stderr}"
    );
}
