//! Public keys, checked and pre-parsed once when a config or JWKS is loaded, never per request.
//!
//! Checks that `jsonwebtoken` does not make: RSA moduli of at least 2048 bits and a sane
//! exponent, supported curves with points on the curve, one algorithm family per key (and
//! exactly one algorithm when the JWK pins `alg`), `use`/`key_ops` of signature keys only,
//! and duplicate `kid`s, which make the `kid` unusable rather than picking one.

pub mod jwks;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Once};

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ED25519, ParsedPublicKey,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use outband_crds::JwsAlgorithm;
use outband_crds::sidecar_config::PublicJwk;
use sha2::{Digest, Sha256};

use crate::token::shape::decode_segment;

/// Most keys tried for one token of a KeyManager with pinned keys (PEM: no `kid`, no JWKS
/// source) when its `kid` names none of them: one normally, two during a certificate
/// rollover.
pub const MAX_PINNED_CANDIDATES: usize = 3;

/// Smallest accepted RSA modulus.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest accepted RSA modulus.
pub const MAX_RSA_BITS: usize = 8192;

/// Why a key was not loaded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// `kty` is not RSA, EC or OKP (symmetric keys are never accepted).
    #[error("key type {0:?} is not supported")]
    UnsupportedType(String),
    /// A required member is missing or not strict base64url.
    #[error("member {0} is missing or not base64url")]
    BadMember(&'static str),
    /// A member that does not belong to this key type is present.
    #[error("member {0} does not belong to a {1} key")]
    ForeignMember(&'static str, &'static str),
    /// The RSA modulus is too small or too large.
    #[error("RSA modulus of {0} bits; {MIN_RSA_BITS} to {MAX_RSA_BITS} are accepted")]
    RsaSize(usize),
    /// The RSA exponent is even, 1, or too large.
    #[error("RSA exponent is not an odd number from 3 to 2^32")]
    RsaExponent,
    /// A curve we do not support.
    #[error("curve {0:?} is not supported (P-256, P-384, Ed25519)")]
    UnsupportedCurve(String),
    /// The point is not on the curve, or coordinates have the wrong length.
    #[error("the public point is invalid for its curve")]
    BadPoint,
    /// The JWK pins an algorithm of another family.
    #[error("alg {0} does not fit the key type")]
    AlgMismatch(&'static str),
    /// The JWK is for encryption, not signatures.
    #[error("the key is not a signature key (use/key_ops)")]
    NotForSignatures,
}

impl KeyError {
    /// A stable name for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            KeyError::UnsupportedType(_) => "unsupported_type",
            KeyError::BadMember(_) => "bad_member",
            KeyError::ForeignMember(..) => "foreign_member",
            KeyError::RsaSize(_) => "rsa_size",
            KeyError::RsaExponent => "rsa_exponent",
            KeyError::UnsupportedCurve(_) => "unsupported_curve",
            KeyError::BadPoint => "bad_point",
            KeyError::AlgMismatch(_) => "alg_mismatch",
            KeyError::NotForSignatures => "not_for_signatures",
        }
    }
}

/// What a key is, which decides the algorithms it can verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA with a modulus of this many bits.
    Rsa {
        /// Modulus size.
        bits: usize,
    },
    /// ECDSA on P-256.
    P256,
    /// ECDSA on P-384.
    P384,
    /// Ed25519.
    Ed25519,
}

impl KeyKind {
    /// Whether this kind of key can verify `alg`.
    pub fn fits(self, alg: JwsAlgorithm) -> bool {
        use JwsAlgorithm::*;
        match self {
            KeyKind::Rsa { .. } => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            KeyKind::P256 => alg == ES256,
            KeyKind::P384 => alg == ES384,
            KeyKind::Ed25519 => alg == EdDSA,
        }
    }

    /// The exact signature length for this key.
    pub fn signature_len(self) -> usize {
        match self {
            KeyKind::Rsa { bits } => bits.div_ceil(8),
            KeyKind::P256 | KeyKind::Ed25519 => 64,
            KeyKind::P384 => 96,
        }
    }

    /// A short description for `explain` and logs.
    pub fn describe(self) -> String {
        match self {
            KeyKind::Rsa { bits } => format!("RSA-{bits}"),
            KeyKind::P256 => "EC P-256".into(),
            KeyKind::P384 => "EC P-384".into(),
            KeyKind::Ed25519 => "OKP Ed25519".into(),
        }
    }
}

/// A checked, pre-parsed public key.
#[derive(Debug)]
pub struct VerificationKey {
    /// The key id, if the JWK has one.
    pub kid: Option<String>,
    /// The kind of key.
    pub kind: KeyKind,
    /// The one algorithm the JWK allows, if it pins one.
    pub pinned_alg: Option<JwsAlgorithm>,
    decoding: DecodingKey,
}

impl VerificationKey {
    /// Checks and parses a JWK.
    pub fn from_jwk(jwk: &PublicJwk) -> Result<VerificationKey, KeyError> {
        ensure_crypto_provider();
        let (kind, decoding) = match jwk.kty.as_str() {
            "RSA" => rsa(jwk)?,
            "EC" => ec(jwk)?,
            "OKP" => okp(jwk)?,
            other => return Err(KeyError::UnsupportedType(other.to_string())),
        };
        if let Some(alg) = jwk.alg
            && !kind.fits(alg)
        {
            return Err(KeyError::AlgMismatch(alg.as_str()));
        }
        Ok(VerificationKey {
            kid: jwk.kid.clone(),
            kind,
            pinned_alg: jwk.alg,
            decoding,
        })
    }

    /// Whether a token signed with `alg` may be verified with this key (RFC 8725 §3.1).
    pub fn allows(&self, alg: JwsAlgorithm) -> bool {
        self.kind.fits(alg) && self.pinned_alg.is_none_or(|pinned| pinned == alg)
    }

    /// Verifies `signature` (already strictly decoded, `encoded` as received) over
    /// `signing_input`. The caller has checked [`VerificationKey::allows`].
    pub fn verify(
        &self,
        alg: JwsAlgorithm,
        signing_input: &[u8],
        signature: &[u8],
        encoded: &str,
    ) -> bool {
        if signature.len() != self.kind.signature_len() || !self.allows(alg) {
            return false;
        }
        jsonwebtoken::crypto::verify(encoded, signing_input, &self.decoding, to_jsonwebtoken(alg))
            .unwrap_or(false)
    }
}

fn to_jsonwebtoken(alg: JwsAlgorithm) -> Algorithm {
    match alg {
        JwsAlgorithm::RS256 => Algorithm::RS256,
        JwsAlgorithm::RS384 => Algorithm::RS384,
        JwsAlgorithm::RS512 => Algorithm::RS512,
        JwsAlgorithm::PS256 => Algorithm::PS256,
        JwsAlgorithm::PS384 => Algorithm::PS384,
        JwsAlgorithm::PS512 => Algorithm::PS512,
        JwsAlgorithm::ES256 => Algorithm::ES256,
        JwsAlgorithm::ES384 => Algorithm::ES384,
        JwsAlgorithm::EdDSA => Algorithm::EdDSA,
    }
}

/// Makes sure `jsonwebtoken` uses aws-lc-rs even if another crate in the build enables a
/// second backend (then no default is chosen automatically).
fn ensure_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if jsonwebtoken::crypto::CryptoProvider::try_get_default().is_none() {
            let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
        }
    });
}

fn member(value: &Option<String>, name: &'static str) -> Result<Vec<u8>, KeyError> {
    let encoded = value.as_deref().ok_or(KeyError::BadMember(name))?;
    let bytes = decode_segment(encoded).map_err(|_| KeyError::BadMember(name))?;
    if bytes.is_empty() {
        return Err(KeyError::BadMember(name));
    }
    Ok(bytes)
}

fn refuse_present(
    value: &Option<String>,
    name: &'static str,
    kty: &'static str,
) -> Result<(), KeyError> {
    match value {
        Some(_) => Err(KeyError::ForeignMember(name, kty)),
        None => Ok(()),
    }
}

fn rsa(jwk: &PublicJwk) -> Result<(KeyKind, DecodingKey), KeyError> {
    refuse_present(&jwk.crv, "crv", "RSA")?;
    refuse_present(&jwk.x, "x", "RSA")?;
    refuse_present(&jwk.y, "y", "RSA")?;
    let n = member(&jwk.n, "n")?;
    let e = member(&jwk.e, "e")?;
    let n = strip_leading_zeros(&n);
    let bits = n.len() * 8 - n[0].leading_zeros() as usize;
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err(KeyError::RsaSize(bits));
    }
    let e = strip_leading_zeros(&e);
    if e.len() > 5 {
        return Err(KeyError::RsaExponent);
    }
    let exponent = e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    if exponent < 3 || exponent % 2 == 0 || exponent > (1 << 32) {
        return Err(KeyError::RsaExponent);
    }
    Ok((
        KeyKind::Rsa { bits },
        DecodingKey::from_rsa_raw_components(n, e),
    ))
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    &bytes[first..]
}

fn ec(jwk: &PublicJwk) -> Result<(KeyKind, DecodingKey), KeyError> {
    refuse_present(&jwk.n, "n", "EC")?;
    refuse_present(&jwk.e, "e", "EC")?;
    let (kind, len, algorithm) = match jwk.crv.as_deref() {
        Some("P-256") => (KeyKind::P256, 32, &ECDSA_P256_SHA256_FIXED),
        Some("P-384") => (KeyKind::P384, 48, &ECDSA_P384_SHA384_FIXED),
        other => return Err(KeyError::UnsupportedCurve(other.unwrap_or("").to_string())),
    };
    let x = member(&jwk.x, "x")?;
    let y = member(&jwk.y, "y")?;
    if x.len() != len || y.len() != len {
        return Err(KeyError::BadPoint);
    }
    let mut point = Vec::with_capacity(1 + 2 * len);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    ParsedPublicKey::new(algorithm, &point).map_err(|_| KeyError::BadPoint)?;
    Ok((kind, DecodingKey::from_ec_der(&point)))
}

fn okp(jwk: &PublicJwk) -> Result<(KeyKind, DecodingKey), KeyError> {
    refuse_present(&jwk.n, "n", "OKP")?;
    refuse_present(&jwk.e, "e", "OKP")?;
    refuse_present(&jwk.y, "y", "OKP")?;
    match jwk.crv.as_deref() {
        Some("Ed25519") => {}
        other => return Err(KeyError::UnsupportedCurve(other.unwrap_or("").to_string())),
    }
    let x = member(&jwk.x, "x")?;
    if x.len() != 32 {
        return Err(KeyError::BadPoint);
    }
    ParsedPublicKey::new(&ED25519, &x).map_err(|_| KeyError::BadPoint)?;
    Ok((KeyKind::Ed25519, DecodingKey::from_ed_der(&x)))
}

/// The outcome of looking a token's `kid` up.
#[derive(Debug)]
pub enum Lookup<'a> {
    /// Exactly one key.
    Found(&'a Arc<VerificationKey>),
    /// No key has this `kid`.
    Unknown,
    /// Several keys have this `kid`.
    Ambiguous,
    /// The token has no `kid` and there is more than one key.
    NoKid,
}

/// The usable keys of one KeyManager.
#[derive(Debug, Default)]
pub struct KeySet {
    by_kid: HashMap<String, Arc<VerificationKey>>,
    ambiguous: HashSet<String>,
    all: Vec<Arc<VerificationKey>>,
    unlabelled: Vec<Arc<VerificationKey>>,
    rejected: Vec<(Option<String>, KeyError)>,
    fingerprint: [u8; 32],
}

impl KeySet {
    /// Builds a key set, dropping (and recording) keys that fail the checks, and making
    /// every duplicated `kid` unusable.
    pub fn build<'a>(jwks: impl IntoIterator<Item = &'a PublicJwk>) -> KeySet {
        let mut set = KeySet::default();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut keys = Vec::new();
        let mut digest = Sha256::new();
        for jwk in jwks {
            digest.update(serde_json::to_vec(jwk).expect("a JWK serializes"));
            digest.update([0]);
            if let Some(kid) = &jwk.kid {
                *seen.entry(kid.clone()).or_default() += 1;
            }
            match VerificationKey::from_jwk(jwk) {
                Ok(key) => keys.push(Arc::new(key)),
                Err(err) => set.rejected.push((jwk.kid.clone(), err)),
            }
        }
        for key in keys {
            match &key.kid {
                Some(kid) if seen[kid] > 1 => {
                    set.ambiguous.insert(kid.clone());
                    continue;
                }
                Some(kid) => {
                    set.by_kid.insert(kid.clone(), key.clone());
                }
                None => set.unlabelled.push(key.clone()),
            }
            set.all.push(key);
        }
        set.fingerprint = digest.finalize().into();
        set
    }

    /// SHA-256 over the JWKs the set was built from: equal for the same keys.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// Finds the key for a token's `kid`.
    pub fn lookup(&self, kid: Option<&str>) -> Lookup<'_> {
        match kid {
            Some(kid) if self.ambiguous.contains(kid) => Lookup::Ambiguous,
            Some(kid) => self.by_kid.get(kid).map_or(Lookup::Unknown, Lookup::Found),
            None if self.ambiguous.is_empty() && self.all.len() == 1 => Lookup::Found(&self.all[0]),
            None if self.all.is_empty() && self.ambiguous.is_empty() => Lookup::Unknown,
            None => Lookup::NoKid,
        }
    }

    /// The keys without a `kid` that may verify a token signed with `alg`: the candidates
    /// of a KeyManager with pinned keys. `None` when more than [`MAX_PINNED_CANDIDATES`] fit
    /// (none is tried then).
    pub fn pinned_candidates(&self, alg: JwsAlgorithm) -> Option<Vec<Arc<VerificationKey>>> {
        let candidates: Vec<_> = self
            .unlabelled
            .iter()
            .filter(|key| key.allows(alg))
            .cloned()
            .collect();
        (candidates.len() <= MAX_PINNED_CANDIDATES).then_some(candidates)
    }

    /// Whether some key has no `kid`.
    pub fn has_unlabelled(&self) -> bool {
        !self.unlabelled.is_empty()
    }

    /// Usable keys.
    pub fn len(&self) -> usize {
        self.all.len()
    }

    /// Whether no key is usable.
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// `kid`s that were dropped because they appear more than once.
    pub fn ambiguous_kids(&self) -> impl Iterator<Item = &str> {
        self.ambiguous.iter().map(String::as_str)
    }

    /// Keys that failed the checks, with why.
    pub fn rejected(&self) -> &[(Option<String>, KeyError)] {
        &self.rejected
    }

    /// Usable keys, for `explain` and status.
    pub fn keys(&self) -> &[Arc<VerificationKey>] {
        &self.all
    }
}

#[cfg(test)]
mod tests;
