//! Fetching discovery documents and JWKS from identity providers, safely: the operator's
//! refreshes and the sidecar's own JWKS fetches for unknown key ids go through this one
//! client, so they obey one SSRF guard.
//!
//! - [`address`]: the SSRF guard's policy (pure).
//! - [`cache_control`]: when to fetch again (pure).
//! - [`client`]: the HTTP client: TLS with system roots plus the KeyManager's CA bundle,
//!   connect and total timeouts, a response size cap, redirects only within the same
//!   origin, no proxies, and the address policy applied after DNS resolution.

pub mod address;
pub mod cache_control;
pub mod client;

pub use client::{
    FetchError, FetchSettings, Fetched, Fetcher, Target, check_url, install_crypto_provider,
};
