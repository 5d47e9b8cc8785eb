//! The decision on one request, as one pure function: [`decide`]. The proxy (through
//! [`crate::auth`], which adds only the verified-token cache, the JWKS fetch and one retry),
//! `explain`, the attack catalogue and the benchmarks all call it, so what the tests prove
//! is what production runs.
//!
//! The steps of `docs/design/jwt-threats.md`, in this order:
//!
//! - step 1, shape ([`crate::token::shape`]);
//! - steps 2–3, strict header: `alg`, `crit`, nesting;
//! - step 4, KeyManager by exact `iss`, key by `kid` (for pinned keys, the few without a
//!   `kid` that fit `alg` when the `kid` names none);
//! - step 6, typed claims;
//! - step 7, subscription and scopes ([`crate::policy`]), then the identity headers;
//! - step 5, the signature, last, so floods of tokens that could never pass cost no
//!   signature verification (and no JWKS fetch). A decision to allow is only ever made
//!   after step 5, or for a token the cache holds as verified under the same keys.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::{CompiledConfig, IssuerMatch};
use crate::denial::Denial;
use crate::identity::{ClaimHeaders, Identity};
use crate::keys::{KeySet, Lookup, VerificationKey};
use crate::policy::{self, Route};
use crate::settings::Settings;
use crate::token::claims::{self, Claims};
use crate::token::header::{self, JoseHeader};
use crate::token::json;
use crate::token::shape::{self, Limits, Segments};

/// What [`decide`] concludes.
// `Allow` (the identity headers) is the common outcome and is moved once per request;
// boxing it would cost an allocation per request instead.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Decision {
    /// Every check passed: forward, with these identity headers.
    Allow(Allowed),
    /// Refused, and why.
    Deny(Denial),
    /// Every check but the signature passed, and the token's `kid` names no key the config
    /// or earlier fetches hold, for a KeyManager with a JWKS source: fetch its keys, then
    /// decide again. (Without a JWKS source the token is denied as `unknown_kid`.)
    NeedKeys {
        /// Index of the token's KeyManager in the config.
        key_manager: usize,
        /// The token's `kid`, if any.
        kid: Option<String>,
    },
}

impl Decision {
    /// The decision when no keys can be fetched (offline, or nothing new came back):
    /// [`Decision::NeedKeys`] becomes `unknown_kid`.
    pub fn into_result(self) -> Result<Allowed, Denial> {
        match self {
            Decision::Allow(allowed) => Ok(allowed),
            Decision::Deny(denial) => Err(denial),
            Decision::NeedKeys { .. } => Err(Denial::UnknownKid),
        }
    }
}

/// An allowed request.
#[derive(Debug)]
pub struct Allowed {
    /// The identity headers for the app.
    pub identity: Identity,
    /// The verified token (what the cache keeps).
    pub verified: Arc<Verified>,
}

/// A token that passed every check, signature included.
#[derive(Debug)]
pub struct Verified {
    /// Index of its KeyManager in the config it was verified under.
    pub key_manager: usize,
    /// Its claims.
    pub claims: Claims,
    /// The identity header values derived from its claims.
    pub claim_headers: ClaimHeaders,
}

/// The unix time in seconds now: the `now` of a decision made at this moment.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Decides on a request bearing `token` (on `route`, when route rules apply) at unix time
/// `now`, against the config and the keys the sidecar fetched itself. Pure.
///
/// `verified_before` is the verification of this exact token (the cache looks it up by the
/// SHA-256 of the whole token) under the same config and keys: then only what can change
/// after a verification is checked again — expiry, the subscription, the route's scopes.
pub fn decide(
    config: &CompiledConfig,
    fetched: &FetchedKeys,
    settings: &Settings,
    token: &str,
    route: Option<Route<'_>>,
    now: i64,
    verified_before: Option<&Arc<Verified>>,
) -> Decision {
    let decided = match verified_before {
        Some(verified) => decide_verified(config, settings, verified, route, now),
        None => decide_token(config, fetched, settings, token, route, now),
    };
    decided.unwrap_or_else(Decision::Deny)
}

fn decide_token(
    config: &CompiledConfig,
    fetched: &FetchedKeys,
    settings: &Settings,
    token: &str,
    route: Option<Route<'_>>,
    now: i64,
) -> Result<Decision, Denial> {
    let inspected = inspect(config, fetched, token, settings.limits, now)?;
    let grant = policy::authorize(
        config,
        settings,
        inspected.key_manager,
        &inspected.claims,
        route,
    )?;
    let claim_headers = ClaimHeaders::new(&inspected.claims)?;
    if inspected.keys.is_empty() {
        let km = &config.key_managers[inspected.key_manager];
        return match &km.jwks_refresh {
            Some(_) => Ok(Decision::NeedKeys {
                key_manager: inspected.key_manager,
                kid: inspected.header.kid.clone(),
            }),
            None => Err(Denial::UnknownKid),
        };
    }
    verify_signature(&inspected)?;
    let identity = Identity::new(&grant, claim_headers.clone());
    Ok(Decision::Allow(Allowed {
        identity,
        verified: Arc::new(Verified {
            key_manager: inspected.key_manager,
            claims: inspected.claims,
            claim_headers,
        }),
    }))
}

/// A token verified before: `exp` against `now`, then the subscription and the route,
/// against the current config.
fn decide_verified(
    config: &CompiledConfig,
    settings: &Settings,
    verified: &Arc<Verified>,
    route: Option<Route<'_>>,
    now: i64,
) -> Result<Decision, Denial> {
    let km = &config.key_managers[verified.key_manager];
    if !claims::unexpired(verified.claims.expires_at, now, km.claims.clock_skew) {
        return Err(Denial::Expired);
    }
    let grant = policy::authorize(
        config,
        settings,
        verified.key_manager,
        &verified.claims,
        route,
    )?;
    Ok(Decision::Allow(Allowed {
        identity: Identity::new(&grant, verified.claim_headers.clone()),
        verified: verified.clone(),
    }))
}

/// Keys the sidecar fetched itself, per KeyManager name, consulted for `kid`s that the
/// config does not know, each set until its expiry time.
#[derive(Clone, Debug, Default)]
pub struct FetchedKeys {
    by_key_manager: HashMap<String, (Arc<KeySet>, i64)>,
}

impl FetchedKeys {
    /// Fetched keys of `key_manager` still valid at `now`.
    pub fn get(&self, key_manager: &str, now: i64) -> Option<&Arc<KeySet>> {
        self.by_key_manager
            .get(key_manager)
            .filter(|(_, expires_at)| now < *expires_at)
            .map(|(keys, _)| keys)
    }

    /// Fetched keys of `key_manager`, expired or not.
    pub fn latest(&self, key_manager: &str) -> Option<&Arc<KeySet>> {
        self.by_key_manager.get(key_manager).map(|(keys, _)| keys)
    }

    /// A copy with `key_manager`'s keys replaced, valid until `expires_at`.
    pub fn with(&self, key_manager: &str, keys: Arc<KeySet>, expires_at: i64) -> FetchedKeys {
        let mut by_key_manager = self.by_key_manager.clone();
        by_key_manager.insert(key_manager.to_string(), (keys, expires_at));
        FetchedKeys { by_key_manager }
    }

    /// A copy keeping only the KeyManagers for which `keep` is true.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) -> FetchedKeys {
        FetchedKeys {
            by_key_manager: self
                .by_key_manager
                .iter()
                .filter(|(name, _)| keep(name))
                .map(|(name, entry)| (name.clone(), entry.clone()))
                .collect(),
        }
    }
}

/// A token that passed every check but the signature.
#[derive(Debug)]
struct Inspected<'t> {
    /// The JOSE header.
    header: JoseHeader,
    /// Index of the token's KeyManager in the config.
    key_manager: usize,
    /// The checked claims.
    claims: Claims,
    /// The keys to verify the signature with: the one named by `kid`, or for a KeyManager
    /// with pinned keys that `kid` does not name, its keys without a `kid` that fit `alg`.
    /// Empty when neither the config nor fetched keys know the `kid`.
    keys: Vec<Arc<VerificationKey>>,
    segments: Segments<'t>,
}

/// Steps 1–4 and 6: everything about the token itself except the signature.
fn inspect<'t>(
    config: &CompiledConfig,
    fetched: &FetchedKeys,
    token: &'t str,
    limits: Limits,
    now: i64,
) -> Result<Inspected<'t>, Denial> {
    let segments = shape::split(token, limits)?;
    let header = header::parse(&shape::decode_segment(segments.header)?)?;
    let payload = json::parse_object(&shape::decode_segment(segments.payload)?)?;

    let key_manager = match config.issuer(claims::issuer(&payload)?) {
        None => return Err(Denial::UnknownIssuer),
        Some(IssuerMatch::NotAllowed(name)) => {
            return Err(Denial::KeyManagerNotAllowed(name.clone()));
        }
        Some(IssuerMatch::Ambiguous) => return Err(Denial::AmbiguousIssuer),
        Some(IssuerMatch::Allowed(index)) => *index,
    };
    let km = &config.key_managers[key_manager];
    if !km.algorithms.contains(&header.alg) {
        return Err(Denial::AlgNotAllowed(header.alg.as_str()));
    }
    if let Some(required) = &km.required_type
        && !header::type_matches(header.typ.as_deref(), required)
    {
        return Err(Denial::TypeMismatch);
    }
    let pinned = km.keys_are_pinned();
    let found = find_key(
        &km.keys,
        fetched.get(&km.name, now),
        header.kid.as_deref(),
        pinned,
    )?;
    let keys = match found {
        Some(key) if !key.allows(header.alg) => {
            return Err(Denial::KeyAlgMismatch(header.alg.as_str()));
        }
        Some(key) => vec![key],
        None if pinned => pinned_keys(&km.keys, &header)?,
        None => Vec::new(),
    };
    let claims = claims::check(&payload, &km.claims, now)?;
    Ok(Inspected {
        header,
        key_manager,
        claims,
        keys,
        segments,
    })
}

/// The key named by `kid` (or the only key, for a token without `kid`). `None` when no key
/// has the `kid`, and when a token without `kid` may be verified with one of several pinned
/// keys.
fn find_key(
    configured: &KeySet,
    fetched: Option<&Arc<KeySet>>,
    kid: Option<&str>,
    pinned: bool,
) -> Result<Option<Arc<VerificationKey>>, Denial> {
    match configured.lookup(kid) {
        Lookup::Found(key) => return Ok(Some(key.clone())),
        Lookup::Ambiguous => return Err(Denial::AmbiguousKid),
        Lookup::NoKid if pinned && configured.has_unlabelled() => return Ok(None),
        Lookup::NoKid => return Err(Denial::MissingKid),
        Lookup::Unknown => {}
    }
    match fetched.map(|keys| keys.lookup(kid)) {
        Some(Lookup::Found(key)) => Ok(Some(key.clone())),
        Some(Lookup::Ambiguous) => Err(Denial::AmbiguousKid),
        Some(Lookup::NoKid) if kid.is_none() => Err(Denial::MissingKid),
        _ => Ok(None),
    }
}

/// The keys to try for a token of a KeyManager with pinned keys whose `kid` (or lack of one)
/// names none of its keys: its keys without a `kid` that fit `alg`, at most
/// [`MAX_PINNED_CANDIDATES`](crate::keys::MAX_PINNED_CANDIDATES). Empty when it has no key
/// without a `kid` (then the token is refused as `unknown_kid`).
fn pinned_keys(keys: &KeySet, header: &JoseHeader) -> Result<Vec<Arc<VerificationKey>>, Denial> {
    match keys.pinned_candidates(header.alg) {
        None if header.kid.is_some() => Err(Denial::UnknownKid),
        None => Err(Denial::MissingKid),
        Some(candidates) if candidates.is_empty() && keys.has_unlabelled() => {
            Err(Denial::KeyAlgMismatch(header.alg.as_str()))
        }
        Some(candidates) => Ok(candidates),
    }
}

/// Step 5: the signature, over the bytes as received, with each key to try; one that
/// verifies is enough.
fn verify_signature(inspected: &Inspected<'_>) -> Result<(), Denial> {
    if inspected.keys.is_empty() {
        return Err(Denial::UnknownKid);
    }
    let signature = shape::decode_segment(inspected.segments.signature)?;
    let verifies = |key: &Arc<VerificationKey>| {
        key.verify(
            inspected.header.alg,
            inspected.segments.signing_input.as_bytes(),
            &signature,
            inspected.segments.signature,
        )
    };
    if inspected.keys.iter().any(verifies) {
        Ok(())
    } else {
        Err(Denial::BadSignature)
    }
}

#[cfg(test)]
mod tests;
