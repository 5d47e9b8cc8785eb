//! Fetching discovery documents and JWKS from authorization servers, safely.
//!
//! - [`address`]: the SSRF guard's policy (pure).
//! - [`cache_control`]: when to fetch again (pure).
//! - [`client`]: the HTTP client: TLS with system roots plus the KeyManager's CA bundle,
//!   connect and total timeouts, a response size cap, redirects only within the same
//!   origin, no proxies, and the address policy applied after DNS resolution.

pub mod address;
pub mod cache_control;
pub mod client;

pub use client::{FetchError, FetchSettings, Fetched, Fetcher, Target};
