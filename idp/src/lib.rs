//! Trusting an identity provider (the authorization server behind a KeyManager) safely, the
//! same way in Outband's operator and sidecar:
//!
//! - [`jwk`]: the one validator of public signature keys, with one set of limits;
//! - [`jwks`]: reading a JWKS document key by key; [`pem`] (feature `pem`, the operator's):
//!   certificates and PEM public keys as keys;
//! - [`json`]: strict JSON (no duplicate members), for JWKS documents and tokens;
//! - [`fetch`]: the guarded HTTP client (SSRF address policy after DNS resolution, https
//!   only, TLS with the KeyManager's CA bundle, timeouts, size cap, same-origin redirects)
//!   and `Cache-Control`.
//!
//! Both ends call these functions, so a key the operator publishes is a key the sidecar
//! uses, and a URL the operator refuses is a URL the sidecar refuses.

pub mod fetch;
pub mod json;
pub mod jwk;
pub mod jwks;
#[cfg(feature = "pem")]
pub mod pem;
