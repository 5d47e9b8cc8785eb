//! The guarded HTTP client the operator and the sidecar use to reach identity providers.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect;
use url::{Host, Url};

use super::address::{self, Refusal};

/// Most redirects followed (same origin only).
pub const MAX_REDIRECTS: usize = 3;

/// Process-wide settings of every fetch.
#[derive(Clone, Debug)]
pub struct FetchSettings {
    /// Largest response body accepted (after decompression).
    pub max_response_bytes: usize,
    /// Longest time to establish a connection (capped by the KeyManager's timeout).
    pub connect_timeout: Duration,
    /// The `User-Agent` of every request, e.g. `outband-operator/0.1.0`.
    pub user_agent: String,
}

/// What to fetch and how, from one KeyManager's `spec.connection`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    /// The URL (https, or http to a loopback host when loopback is allowed).
    pub url: String,
    /// Extra trusted CA certificates (PEM).
    pub ca_bundle: Option<String>,
    /// Whether loopback addresses are allowed.
    pub allow_loopback: bool,
    /// Total timeout of the request.
    pub timeout: Duration,
}

/// A successful response.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// The body (at most [`FetchSettings::max_response_bytes`]).
    pub body: Vec<u8>,
    /// The `Cache-Control` header.
    pub cache_control: Option<String>,
    /// The `Age` header.
    pub age: Option<String>,
}

/// Why a fetch failed. [`FetchError::reason`] is stable (metrics, conditions, Events).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The URL does not parse or has no host.
    #[error("invalid URL {url:?}: {message}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// Plain http to a host that is not loopback, or loopback not allowed.
    #[error(
        "{url} is refused: only https is allowed (plain http only to loopback hosts with spec.connection.allowLoopback)"
    )]
    SchemeRefused {
        /// The URL.
        url: String,
    },
    /// The host resolves only to refused addresses (SSRF guard).
    #[error("{host} is refused: it resolves to {refusal}")]
    AddressRefused {
        /// The host.
        host: String,
        /// Why.
        refusal: String,
    },
    /// The CA bundle is not valid PEM.
    #[error("spec.connection.caBundle is not valid PEM: {0}")]
    InvalidCaBundle(String),
    /// Name resolution failed.
    #[error("cannot resolve {host}: {message}")]
    Dns {
        /// The host.
        host: String,
        /// Why.
        message: String,
    },
    /// Connecting (TCP or TLS) failed.
    #[error("cannot connect to {url}: {message}")]
    Connect {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// The request took longer than the timeout.
    #[error("{url} did not answer within {timeout:?}")]
    Timeout {
        /// The URL.
        url: String,
        /// The timeout.
        timeout: Duration,
    },
    /// A redirect to another origin, or too many redirects.
    #[error("{url}: redirect refused: {message}")]
    Redirect {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// A non-2xx status.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The body exceeds the size cap.
    #[error("{url}: the response is larger than {limit} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The cap.
        limit: usize,
    },
    /// Reading the body failed.
    #[error("{url}: reading the response failed: {message}")]
    Body {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
}

impl FetchError {
    /// Every value [`FetchError::reason`] returns (the fetch metrics create these series
    /// at 0).
    pub const REASONS: [&'static str; 11] = [
        "InvalidUrl",
        "SchemeRefused",
        "AddressRefused",
        "InvalidCaBundle",
        "DnsFailed",
        "ConnectFailed",
        "Timeout",
        "RedirectRefused",
        "HttpStatus",
        "ResponseTooLarge",
        "BodyFailed",
    ];

    /// A stable, machine-readable name.
    pub fn reason(&self) -> &'static str {
        match self {
            FetchError::InvalidUrl { .. } => "InvalidUrl",
            FetchError::SchemeRefused { .. } => "SchemeRefused",
            FetchError::AddressRefused { .. } => "AddressRefused",
            FetchError::InvalidCaBundle(_) => "InvalidCaBundle",
            FetchError::Dns { .. } => "DnsFailed",
            FetchError::Connect { .. } => "ConnectFailed",
            FetchError::Timeout { .. } => "Timeout",
            FetchError::Redirect { .. } => "RedirectRefused",
            FetchError::Status { .. } => "HttpStatus",
            FetchError::TooLarge { .. } => "ResponseTooLarge",
            FetchError::Body { .. } => "BodyFailed",
        }
    }
}

/// Fetches documents from authorization servers. Cheap to clone; clients are cached per
/// (CA bundle, loopback, timeout).
#[derive(Clone)]
pub struct Fetcher {
    settings: FetchSettings,
    clients: Arc<Mutex<HashMap<ClientKey, reqwest::Client>>>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    ca_bundle: Option<String>,
    allow_loopback: bool,
    timeout: Duration,
}

/// Clients kept at most; the cache is emptied when it grows past this.
const MAX_CLIENTS: usize = 64;

impl Fetcher {
    /// A fetcher with `settings`.
    pub fn new(settings: FetchSettings) -> Fetcher {
        Fetcher {
            settings,
            clients: Arc::default(),
        }
    }

    /// GETs `target.url` under every rule of this module.
    pub async fn get(&self, target: &Target) -> Result<Fetched, FetchError> {
        let url = check_url(&target.url, target.allow_loopback)?;
        let client = self.client(target)?;
        let response = client
            .get(url.clone())
            .header(
                http::header::ACCEPT,
                "application/json, application/jwk-set+json",
            )
            .send()
            .await
            .map_err(|e| classify(&e, &target.url, target.timeout))?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status {
                url: target.url.clone(),
                status: status.as_u16(),
            });
        }
        let limit = self.settings.max_response_bytes;
        if response
            .content_length()
            .is_some_and(|len| len > limit as u64)
        {
            return Err(FetchError::TooLarge {
                url: target.url.clone(),
                limit,
            });
        }
        let header = |name: http::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let cache_control = header(http::header::CACHE_CONTROL);
        let age = header(http::header::AGE);
        let mut response = response;
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| classify(&e, &target.url, target.timeout))?
        {
            if body.len() + chunk.len() > limit {
                return Err(FetchError::TooLarge {
                    url: target.url.clone(),
                    limit,
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched {
            body,
            cache_control,
            age,
        })
    }

    fn client(&self, target: &Target) -> Result<reqwest::Client, FetchError> {
        let key = ClientKey {
            ca_bundle: target.ca_bundle.clone(),
            allow_loopback: target.allow_loopback,
            timeout: target.timeout,
        };
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let client = build_client(&self.settings, &key)?;
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        clients.insert(key, client.clone());
        Ok(client)
    }
}

fn build_client(settings: &FetchSettings, key: &ClientKey) -> Result<reqwest::Client, FetchError> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .https_only(false)
        .no_proxy()
        .user_agent(settings.user_agent.clone())
        .connect_timeout(settings.connect_timeout.min(key.timeout))
        .timeout(key.timeout)
        .redirect(same_origin_redirects())
        .dns_resolver(Arc::new(GuardedResolver {
            allow_loopback: key.allow_loopback,
        }));
    if let Some(bundle) = &key.ca_bundle {
        let certs = reqwest::Certificate::from_pem_bundle(bundle.as_bytes())
            .map_err(|e| FetchError::InvalidCaBundle(e.to_string()))?;
        if certs.is_empty() {
            return Err(FetchError::InvalidCaBundle("no certificate found".into()));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| FetchError::InvalidCaBundle(e.to_string()))
}

/// Installs aws-lc-rs as rustls's process-wide crypto provider (the one provider every TLS
/// client and server of Outband uses). Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Parses `raw` and applies the scheme rule and, for IP literals, the address policy
/// (names are checked by [`GuardedResolver`] after resolution).
pub fn check_url(raw: &str, allow_loopback: bool) -> Result<Url, FetchError> {
    let invalid = |message: &str| FetchError::InvalidUrl {
        url: raw.to_string(),
        message: message.to_string(),
    };
    let url = Url::parse(raw).map_err(|e| invalid(&e.to_string()))?;
    let host = url.host().ok_or_else(|| invalid("no host"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("credentials in URLs are not allowed"));
    }
    let loopback_host = match &host {
        Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback_host && allow_loopback => {}
        _ => {
            return Err(FetchError::SchemeRefused {
                url: raw.to_string(),
            });
        }
    }
    let literal: Option<IpAddr> = match host {
        Host::Ipv4(ip) => Some(ip.into()),
        Host::Ipv6(ip) => Some(ip.into()),
        Host::Domain(_) => None,
    };
    if let Some(ip) = literal {
        address::check(ip, allow_loopback).map_err(|refusal| FetchError::AddressRefused {
            host: ip.to_string(),
            refusal: refusal.to_string(),
        })?;
    }
    Ok(url)
}

fn same_origin_redirects() -> redirect::Policy {
    redirect::Policy::custom(|attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
        }
        let same_origin = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() == attempt.url().origin());
        if same_origin {
            attempt.follow()
        } else {
            let to = attempt.url().origin().ascii_serialization();
            attempt.error(format!("redirect to another origin ({to})"))
        }
    })
}

/// Resolves names with the system resolver and drops every refused address; fails when
/// none is left.
struct GuardedResolver {
    allow_loopback: bool,
}

/// The resolver's error when a name cannot be resolved.
#[derive(Debug, thiserror::Error)]
#[error("cannot resolve {host}: {source}")]
struct NameNotResolved {
    host: String,
    source: std::io::Error,
}

/// The resolver's error when every address of a name is refused.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves only to refused addresses ({refusal})")]
struct AddressRefused {
    host: String,
    refusal: Refusal,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_loopback = self.allow_loopback;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((host.clone(), 0)).await;
            let addrs: Vec<SocketAddr> = match resolved {
                Ok(addrs) => addrs.collect(),
                Err(source) => return Err(Box::new(NameNotResolved { host, source }) as _),
            };
            let mut refusal = None;
            let allowed: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|addr| match address::check(addr.ip(), allow_loopback) {
                    Ok(()) => true,
                    Err(r) => {
                        refusal.get_or_insert(r);
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), refusal) {
                (true, Some(refusal)) => Err(Box::new(AddressRefused { host, refusal }) as _),
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

fn classify(error: &reqwest::Error, url: &str, timeout: Duration) -> FetchError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<AddressRefused>() {
            return FetchError::AddressRefused {
                host: refused.host.clone(),
                refusal: refused.refusal.to_string(),
            };
        }
        if let Some(unresolved) = cause.downcast_ref::<NameNotResolved>() {
            return FetchError::Dns {
                host: unresolved.host.clone(),
                message: unresolved.source.to_string(),
            };
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return FetchError::Timeout {
                url: url.to_string(),
                timeout,
            };
        }
        source = cause.source();
    }
    let message = error_chain(error);
    if error.is_timeout() {
        FetchError::Timeout {
            url: url.to_string(),
            timeout,
        }
    } else if error.is_redirect() {
        FetchError::Redirect {
            url: url.to_string(),
            message,
        }
    } else if error.is_connect() {
        FetchError::Connect {
            url: url.to_string(),
            message,
        }
    } else if error.is_body() || error.is_decode() {
        FetchError::Body {
            url: url.to_string(),
            message,
        }
    } else {
        FetchError::Connect {
            url: url.to_string(),
            message,
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    fn fetcher(max: usize) -> Fetcher {
        Fetcher::new(FetchSettings {
            max_response_bytes: max,
            connect_timeout: Duration::from_secs(2),
            user_agent: "outband-test".into(),
        })
    }

    fn target(url: String, allow_loopback: bool) -> Target {
        Target {
            url,
            ca_bundle: None,
            allow_loopback,
            timeout: Duration::from_secs(2),
        }
    }

    /// A one-shot HTTP server on loopback answering each connection with `responses[i]`.
    fn serve(responses: Vec<String>) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for response in responses {
                let Ok((mut stream, _)) = listener.accept() else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(response.as_bytes());
            }
        });
        port
    }

    fn ok(body: &str, extra: &str) -> String {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
            body.len()
        )
    }

    #[test]
    fn every_reason_is_listed() {
        let text = |s: &str| s.to_string();
        let errors = [
            FetchError::InvalidUrl {
                url: text("u"),
                message: text("m"),
            },
            FetchError::SchemeRefused { url: text("u") },
            FetchError::AddressRefused {
                host: text("h"),
                refusal: text("r"),
            },
            FetchError::InvalidCaBundle(text("c")),
            FetchError::Dns {
                host: text("h"),
                message: text("m"),
            },
            FetchError::Connect {
                url: text("u"),
                message: text("m"),
            },
            FetchError::Timeout {
                url: text("u"),
                timeout: Duration::from_secs(1),
            },
            FetchError::Redirect {
                url: text("u"),
                message: text("m"),
            },
            FetchError::Status {
                url: text("u"),
                status: 500,
            },
            FetchError::TooLarge {
                url: text("u"),
                limit: 1,
            },
            FetchError::Body {
                url: text("u"),
                message: text("m"),
            },
        ];
        let reasons: Vec<&str> = errors.iter().map(FetchError::reason).collect();
        assert_eq!(reasons, FetchError::REASONS);
    }

    #[test]
    fn https_is_required_except_for_allowed_loopback() {
        assert!(check_url("https://idp.example/jwks", false).is_ok());
        assert!(matches!(
            check_url("http://idp.example/jwks", true),
            Err(FetchError::SchemeRefused { .. })
        ));
        assert!(matches!(
            check_url("http://127.0.0.1:8080/jwks", false),
            Err(FetchError::SchemeRefused { .. })
        ));
        assert!(check_url("http://127.0.0.1:8080/jwks", true).is_ok());
        assert!(check_url("http://localhost:8080/jwks", true).is_ok());
        assert!(matches!(
            check_url("ftp://idp.example/jwks", true),
            Err(FetchError::SchemeRefused { .. })
        ));
    }

    #[test]
    fn ip_literals_are_checked_before_any_connection() {
        assert!(matches!(
            check_url("https://169.254.169.254/latest/meta-data", true),
            Err(FetchError::AddressRefused { .. })
        ));
        assert!(matches!(
            check_url("https://[fe80::1]/jwks", true),
            Err(FetchError::AddressRefused { .. })
        ));
        assert!(matches!(
            check_url("https://127.0.0.1/jwks", false),
            Err(FetchError::AddressRefused { .. })
        ));
    }

    #[test]
    fn urls_without_a_host_or_with_another_scheme_are_refused() {
        assert!(matches!(
            check_url("file:///etc/passwd", true),
            Err(FetchError::InvalidUrl { .. })
        ));
        assert!(matches!(
            check_url("not a url", true),
            Err(FetchError::InvalidUrl { .. })
        ));
        assert!(matches!(
            check_url("gopher://idp.example/", true),
            Err(FetchError::SchemeRefused { .. })
        ));
        assert!(matches!(
            check_url("https://[fd00:ec2::254]/", false),
            Err(FetchError::AddressRefused { .. })
        ));
    }

    #[test]
    fn credentials_in_urls_are_refused() {
        assert!(matches!(
            check_url("https://user:pw@idp.example/jwks", false),
            Err(FetchError::InvalidUrl { .. })
        ));
    }

    #[tokio::test]
    async fn fetches_a_body_with_its_cache_headers() {
        let port = serve(vec![ok(
            "{\"keys\":[]}",
            "Cache-Control: max-age=60\r\nAge: 5\r\n",
        )]);
        let fetched = fetcher(1024)
            .get(&target(format!("http://127.0.0.1:{port}/jwks"), true))
            .await
            .unwrap();
        assert_eq!(fetched.body, b"{\"keys\":[]}");
        assert_eq!(fetched.cache_control.as_deref(), Some("max-age=60"));
        assert_eq!(fetched.age.as_deref(), Some("5"));
    }

    #[tokio::test]
    async fn names_resolving_to_loopback_are_refused_without_allow_loopback() {
        // `localhost` passes the scheme rule only with loopback allowed, so use https to
        // reach the resolver: the guard refuses before any connection.
        let error = fetcher(1024)
            .get(&target("https://localhost:1/jwks".into(), false))
            .await
            .unwrap_err();
        assert_eq!(error.reason(), "AddressRefused", "{error}");
    }

    #[tokio::test]
    async fn names_that_do_not_resolve_are_dns_failures() {
        // `.invalid` never resolves (RFC 6761).
        let error = fetcher(1024)
            .get(&target("https://outband-test.invalid/jwks".into(), false))
            .await
            .unwrap_err();
        assert_eq!(error.reason(), "DnsFailed", "{error}");
        assert!(
            error.to_string().contains("outband-test.invalid"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn responses_over_the_size_cap_are_refused() {
        let big = "x".repeat(2048);
        let port = serve(vec![ok(&big, "")]);
        let error = fetcher(1024)
            .get(&target(format!("http://127.0.0.1:{port}/jwks"), true))
            .await
            .unwrap_err();
        assert_eq!(error.reason(), "ResponseTooLarge", "{error}");
    }

    #[tokio::test]
    async fn chunked_responses_over_the_size_cap_are_refused() {
        let chunk = "x".repeat(800);
        let body = format!("320\r\n{chunk}\r\n320\r\n{chunk}\r\n0\r\n\r\n");
        let response = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{body}"
        );
        let port = serve(vec![response]);
        let error = fetcher(1024)
            .get(&target(format!("http://127.0.0.1:{port}/jwks"), true))
            .await
            .unwrap_err();
        assert_eq!(error.reason(), "ResponseTooLarge", "{error}");
    }

    #[tokio::test]
    async fn redirects_to_another_origin_are_refused() {
        let port = serve(vec![
            "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.2:9/jwks\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
        ]);
        let error = fetcher(1024)
            .get(&target(format!("http://127.0.0.1:{port}/jwks"), true))
            .await
            .unwrap_err();
        assert_eq!(error.reason(), "RedirectRefused", "{error}");
    }

    #[tokio::test]
    async fn redirects_within_the_origin_are_followed() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let responses = [
                format!(
                    "HTTP/1.1 301 Moved\r\nLocation: http://127.0.0.1:{port}/v2/jwks\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                ),
                ok("{}", ""),
            ];
            for response in responses {
                let (mut stream, _) = listener.accept().unwrap();
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(response.as_bytes());
            }
        });
        let fetched = fetcher(1024)
            .get(&target(format!("http://127.0.0.1:{port}/jwks"), true))
            .await
            .unwrap();
        assert_eq!(fetched.body, b"{}");
    }

    #[tokio::test]
    async fn error_statuses_are_reported() {
        let port = serve(vec![
            "HTTP/1.1 503 Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
        ]);
        let error = fetcher(1024)
            .get(&target(format!("http://127.0.0.1:{port}/jwks"), true))
            .await
            .unwrap_err();
        assert_eq!(
            error,
            FetchError::Status {
                url: format!("http://127.0.0.1:{port}/jwks"),
                status: 503
            }
        );
    }

    #[tokio::test]
    async fn slow_servers_time_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (_stream, _) = listener.accept().unwrap();
            std::thread::sleep(Duration::from_secs(3));
        });
        let mut target = target(format!("http://127.0.0.1:{port}/jwks"), true);
        target.timeout = Duration::from_millis(300);
        let error = fetcher(1024).get(&target).await.unwrap_err();
        assert_eq!(error.reason(), "Timeout", "{error}");
    }

    /// An HTTPS server on 127.0.0.1 with a certificate for `localhost` from a fresh CA;
    /// answers every connection that completes the handshake. Returns the port and the CA.
    async fn tls_server() -> (u16, String) {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        install_crypto_provider();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let server_key = rcgen::KeyPair::generate().unwrap();
        let server = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&server_key, &issuer)
            .unwrap();
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(server.pem().as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
        let key = PrivateKeyDer::from_pem_slice(server_key.serialize_pem().as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let mut buf = [0u8; 4096];
                    let _ = tls.read(&mut buf).await;
                    let _ = tls.write_all(ok("{\"keys\":[]}", "").as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        (port, ca.pem())
    }

    #[tokio::test]
    async fn tls_is_verified_with_the_ca_bundle() {
        let (port, ca) = tls_server().await;
        let mut target = target(format!("https://localhost:{port}/jwks"), true);
        let error = fetcher(1024).get(&target).await.unwrap_err();
        assert_eq!(error.reason(), "ConnectFailed", "{error}");
        assert!(error.to_string().contains("certificate"), "{error}");

        target.ca_bundle = Some(ca);
        let fetched = fetcher(1024).get(&target).await.unwrap();
        assert_eq!(fetched.body, b"{\"keys\":[]}");
    }

    #[tokio::test]
    async fn an_invalid_ca_bundle_is_reported() {
        let mut target = target("https://idp.example/jwks".into(), false);
        target.ca_bundle =
            Some("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n".into());
        let error = fetcher(1024).get(&target).await.unwrap_err();
        assert_eq!(error.reason(), "InvalidCaBundle", "{error}");
    }
}
