//! Reading a bearer token without trusting it: extraction from the request, shape and
//! encoding checks, strict JSON, and typed header and claims.
//!
//! Nothing here verifies a signature or consults the config; see [`crate::decision`].

pub mod bearer;
pub mod claims;
pub mod header;
pub mod json;
pub mod shape;

use serde_json::{Map, Value};

use crate::denial::Denial;

/// A decoded JSON object of a token (header or payload).
pub type JsonObject = Map<String, Value>;

/// Decodes header and payload without checking anything but the encoding (for `explain`).
pub fn decode_unverified(
    token: &str,
    limits: shape::Limits,
) -> Result<(JsonObject, JsonObject), Denial> {
    let segments = shape::split(token, limits)?;
    let header = json::parse_object(&shape::decode_segment(segments.header)?)?;
    let payload = json::parse_object(&shape::decode_segment(segments.payload)?)?;
    Ok((header, payload))
}
