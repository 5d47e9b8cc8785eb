//! Strict JSON for token segments — `outband_idp::json`, the parser JWKS documents go through
//! too: one top-level object, no duplicate member names at any depth — with its refusals as
//! denials.

use outband_idp::json::JsonError;
use serde_json::{Map, Value};

use crate::denial::Denial;

/// Parses `bytes` as a JSON object, refusing duplicate members anywhere.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, Denial> {
    outband_idp::json::parse_object(bytes).map_err(|err| {
        Denial::BadJson(match err {
            JsonError::DuplicateMember => "duplicate member",
            JsonError::Invalid => "invalid JSON",
            JsonError::TrailingData => "trailing data",
            JsonError::NotAnObject => "not an object",
        })
    })
}
