//! Reading a bearer token without trusting it: extraction from the request, shape and
//! encoding checks, strict JSON, and typed header and claims.
//!
//! Nothing here verifies a signature or consults the config; see [`crate::pipeline`].

pub mod bearer;
pub mod claims;
pub mod header;
pub mod json;
pub mod shape;
