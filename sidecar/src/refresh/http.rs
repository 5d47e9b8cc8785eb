//! The HTTP GET of a JWKS document: TLS verified against the system roots plus the
//! KeyManager's CA bundle, no proxy, no redirects, one timeout for the whole exchange, a size
//! cap, and every resolved address passed through the SSRF guard before connecting.

use std::net::SocketAddr;
use std::sync::{Arc, Once};
use std::time::Duration;

use outband_crds::sidecar_config::JwksRefresh;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::guard;

/// Largest JWKS document accepted.
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL is refused by the guard.
    #[error("{0}")]
    Guard(#[from] guard::GuardError),
    /// The CA bundle is not valid PEM.
    #[error("the KeyManager's CA bundle is not valid PEM: {0}")]
    CaBundle(reqwest::Error),
    /// The request failed (connect, TLS, timeout, refused address…).
    #[error("request failed: {0}")]
    Request(reqwest::Error),
    /// A status other than 200.
    #[error("HTTP status {0}")]
    Status(u16),
    /// The document exceeds [`MAX_JWKS_BYTES`].
    #[error("the document exceeds {MAX_JWKS_BYTES} bytes")]
    TooLarge,
}

impl FetchError {
    /// Every value [`FetchError::reason`] returns.
    pub const REASONS: [&'static str; 6] = [
        "refused_url",
        "bad_ca_bundle",
        "timeout",
        "request_failed",
        "bad_status",
        "too_large",
    ];

    /// A stable name for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            FetchError::Guard(_) => "refused_url",
            FetchError::CaBundle(_) => "bad_ca_bundle",
            FetchError::Request(err) if err.is_timeout() => "timeout",
            FetchError::Request(_) => "request_failed",
            FetchError::Status(_) => "bad_status",
            FetchError::TooLarge => "too_large",
        }
    }
}

/// Resolves names and drops every address the guard refuses.
struct GuardedResolver {
    allow_loopback: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_loopback = self.allow_loopback;
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let allowed: Vec<SocketAddr> = resolved
                .filter(|addr| guard::address_allowed(addr.ip(), allow_loopback))
                .collect();
            if allowed.is_empty() {
                return Err(format!(
                    "{} resolves only to addresses the SSRF guard refuses",
                    name.as_str()
                )
                .into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

fn ensure_tls_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

/// Fetches the JWKS document of `refresh`.
pub async fn fetch(refresh: &JwksRefresh) -> Result<Vec<u8>, FetchError> {
    let url = guard::check_url(&refresh.url, refresh.allow_loopback)?;
    ensure_tls_provider();
    let timeout = Duration::from_secs(u64::from(refresh.timeout_seconds.clamp(1, 60)));
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("outband-sidecar/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(GuardedResolver {
            allow_loopback: refresh.allow_loopback,
        }));
    if let Some(pem) = &refresh.ca_bundle {
        for certificate in
            reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(FetchError::CaBundle)?
        {
            builder = builder.add_root_certificate(certificate);
        }
    }
    let client = builder.build().map_err(FetchError::Request)?;
    let mut response = client
        .get(url)
        .header(
            http::header::ACCEPT,
            "application/jwk-set+json, application/json",
        )
        .send()
        .await
        .map_err(FetchError::Request)?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(FetchError::Status(response.status().as_u16()));
    }
    if response
        .content_length()
        .is_some_and(|len| len > MAX_JWKS_BYTES as u64)
    {
        return Err(FetchError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(FetchError::Request)? {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(FetchError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
