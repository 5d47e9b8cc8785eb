//! Verification keys: each public key of the config (or of a JWKS the sidecar fetched)
//! checked by `outband_idp::jwk::check` — the one validator the operator also runs before it
//! publishes a key — and parsed once for verification, when the config or JWKS is loaded,
//! never per request. Duplicate `kid`s make the `kid` unusable rather than picking one.
//!
//! Signatures are verified with aws-lc-rs (through `jsonwebtoken`), except for RSA moduli
//! above the 8192 bits aws-lc-rs verifies, up to the 16384 the validator accepts: those use
//! the RustCrypto `rsa` crate (a public-key operation on public data: no secret to leak).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Once};

use jsonwebtoken::{Algorithm, DecodingKey};
use outband_crds::JwsAlgorithm;
use outband_crds::jwk::PublicJwk;
use outband_idp::jwk::{self, KeyKind, KeyRejection};
use sha2::{Digest, Sha256, Sha384, Sha512};

/// Most keys tried for one token of a KeyManager with pinned keys (PEM: no `kid`, no JWKS
/// source) when its `kid` names none of them: one normally, two during a certificate
/// rollover.
pub const MAX_PINNED_CANDIDATES: usize = 3;

/// Largest RSA modulus aws-lc-rs verifies; larger ones (up to
/// [`jwk::MAX_RSA_BITS`]) are verified with the `rsa` crate.
const AWS_LC_MAX_RSA_BITS: usize = 8192;

/// A checked public key, parsed once for verification.
#[derive(Debug)]
pub struct VerificationKey {
    /// The key id, if the JWK has one.
    pub kid: Option<String>,
    /// The kind of key.
    pub kind: KeyKind,
    /// The one algorithm the JWK allows, if it pins one.
    pub pinned_alg: Option<JwsAlgorithm>,
    verifier: Verifier,
}

/// A key parsed for one verification back end.
enum Verifier {
    /// aws-lc-rs, through `jsonwebtoken`.
    AwsLc(DecodingKey),
    /// RSA moduli of 8193 to 16384 bits.
    LargeRsa(Box<rsa::RsaPublicKey>),
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verifier::AwsLc(_) => "AwsLc",
            Verifier::LargeRsa(_) => "LargeRsa",
        })
    }
}

impl VerificationKey {
    /// Checks a key with the shared validator and parses it.
    pub fn from_jwk(jwk: &PublicJwk) -> Result<VerificationKey, KeyRejection> {
        ensure_crypto_provider();
        jwk::check(jwk)?;
        let kind = KeyKind::of(jwk);
        let verifier = match jwk {
            PublicJwk::Rsa(key) if matches!(kind, KeyKind::Rsa { bits } if bits > AWS_LC_MAX_RSA_BITS) =>
            {
                let n = rsa::BigUint::from_bytes_be(key.n.as_bytes());
                let e = rsa::BigUint::from_bytes_be(key.e.as_bytes());
                let key = rsa::RsaPublicKey::new_with_max_size(n, e, jwk::MAX_RSA_BITS)
                    .map_err(|_| KeyRejection::Malformed("the RSA key cannot be used"))?;
                Verifier::LargeRsa(Box::new(key))
            }
            PublicJwk::Rsa(key) => Verifier::AwsLc(DecodingKey::from_rsa_raw_components(
                key.n.as_bytes(),
                key.e.as_bytes(),
            )),
            PublicJwk::Ec(key) => Verifier::AwsLc(DecodingKey::from_ec_der(&jwk::ec_point(key))),
            PublicJwk::Okp(key) => Verifier::AwsLc(DecodingKey::from_ed_der(key.x.as_bytes())),
        };
        Ok(VerificationKey {
            kid: jwk.kid().map(str::to_string),
            kind,
            pinned_alg: jwk.alg(),
            verifier,
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
        match &self.verifier {
            Verifier::AwsLc(key) => {
                jsonwebtoken::crypto::verify(encoded, signing_input, key, to_jsonwebtoken(alg))
                    .unwrap_or(false)
            }
            Verifier::LargeRsa(key) => verify_large_rsa(key, alg, signing_input, signature),
        }
    }
}

fn verify_large_rsa(
    key: &rsa::RsaPublicKey,
    alg: JwsAlgorithm,
    signing_input: &[u8],
    signature: &[u8],
) -> bool {
    use rsa::{Pkcs1v15Sign, Pss};
    let result = match alg {
        JwsAlgorithm::RS256 => key.verify(
            Pkcs1v15Sign::new::<Sha256>(),
            &Sha256::digest(signing_input),
            signature,
        ),
        JwsAlgorithm::RS384 => key.verify(
            Pkcs1v15Sign::new::<Sha384>(),
            &Sha384::digest(signing_input),
            signature,
        ),
        JwsAlgorithm::RS512 => key.verify(
            Pkcs1v15Sign::new::<Sha512>(),
            &Sha512::digest(signing_input),
            signature,
        ),
        JwsAlgorithm::PS256 => key.verify(
            Pss::new::<Sha256>(),
            &Sha256::digest(signing_input),
            signature,
        ),
        JwsAlgorithm::PS384 => key.verify(
            Pss::new::<Sha384>(),
            &Sha384::digest(signing_input),
            signature,
        ),
        JwsAlgorithm::PS512 => key.verify(
            Pss::new::<Sha512>(),
            &Sha512::digest(signing_input),
            signature,
        ),
        JwsAlgorithm::ES256 | JwsAlgorithm::ES384 | JwsAlgorithm::EdDSA => return false,
    };
    result.is_ok()
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
    rejected: Vec<(Option<String>, KeyRejection)>,
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
            if let Some(kid) = jwk.kid() {
                *seen.entry(kid.to_string()).or_default() += 1;
            }
            match VerificationKey::from_jwk(jwk) {
                Ok(key) => keys.push(Arc::new(key)),
                Err(err) => set.rejected.push((jwk.kid().map(str::to_string), err)),
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
    pub fn rejected(&self) -> &[(Option<String>, KeyRejection)] {
        &self.rejected
    }

    /// Usable keys, for `explain` and status.
    pub fn keys(&self) -> &[Arc<VerificationKey>] {
        &self.all
    }
}

#[cfg(test)]
mod tests;
