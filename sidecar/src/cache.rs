//! The verified-token cache: tokens whose signature and claims were verified, keyed by the
//! SHA-256 of the whole token (never by a part of it, so a re-encoded or high-S twin is a
//! different entry that must be verified on its own). Bounded in size; an entry lives until
//! the earliest of the token's `exp` and a maximum TTL, and is ignored once the key sets
//! or config change (its `epoch` no longer matches). Expiry and the subscription are
//! re-checked on every hit by the caller.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;
use sha2::{Digest, Sha256};

use crate::decision::Verified;

/// SHA-256 of a token.
pub type TokenHash = [u8; 32];

/// Hashes a token for the cache (and for logs: see [`short_hash`]).
pub fn token_hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// The first 12 hex digits of a token's SHA-256: what logs may show of a token.
pub fn short_hash(hash: &TokenHash) -> String {
    hex::encode(&hash[..6])
}

/// A cached verification.
#[derive(Debug)]
pub struct CachedToken {
    /// What was verified (with its identity header values).
    pub verified: Arc<Verified>,
    /// The config/key-set epoch it was verified under.
    pub epoch: u64,
    ttl: Duration,
}

struct UntilExpiry;

impl Expiry<TokenHash, Arc<CachedToken>> for UntilExpiry {
    fn expire_after_create(
        &self,
        _key: &TokenHash,
        value: &Arc<CachedToken>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// The bounded cache.
#[derive(Clone)]
pub struct TokenCache {
    inner: Option<Cache<TokenHash, Arc<CachedToken>>>,
    max_ttl: Duration,
}

impl TokenCache {
    /// A cache of at most `capacity` tokens (0 disables caching), each kept at most `max_ttl`.
    pub fn new(capacity: u64, max_ttl: Duration) -> TokenCache {
        let inner = (capacity > 0 && !max_ttl.is_zero()).then(|| {
            Cache::builder()
                .max_capacity(capacity)
                .expire_after(UntilExpiry)
                .build()
        });
        TokenCache { inner, max_ttl }
    }

    /// The entry for `hash` if it was verified under `epoch`; entries of other epochs are
    /// dropped.
    pub fn get(&self, hash: &TokenHash, epoch: u64) -> Option<Arc<CachedToken>> {
        let cache = self.inner.as_ref()?;
        let entry = cache.get(hash)?;
        if entry.epoch == epoch {
            Some(entry)
        } else {
            cache.invalidate(hash);
            None
        }
    }

    /// Caches a verification made under `epoch` at unix time `now`.
    pub fn insert(&self, hash: TokenHash, verified: Arc<Verified>, epoch: u64, now: i64) {
        let Some(cache) = &self.inner else { return };
        let Some(ttl) = time_to_live(verified.claims.expires_at, now, self.max_ttl) else {
            return;
        };
        cache.insert(
            hash,
            Arc::new(CachedToken {
                verified,
                epoch,
                ttl,
            }),
        );
    }

    /// Approximate number of entries.
    pub fn len(&self) -> u64 {
        self.inner.as_ref().map_or(0, |cache| {
            cache.run_pending_tasks();
            cache.entry_count()
        })
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How long a token expiring at `expires_at` may stay cached at `now`: until `exp`, at most
/// `max_ttl`; `None` when it is already expired.
pub fn time_to_live(expires_at: i64, now: i64, max_ttl: Duration) -> Option<Duration> {
    let remaining = u64::try_from(expires_at.saturating_sub(now)).ok()?;
    (remaining > 0).then(|| max_ttl.min(Duration::from_secs(remaining)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::ClaimHeaders;
    use crate::token::claims::Claims;

    fn verified(expires_at: i64) -> Arc<Verified> {
        let claims = Claims {
            client_id: "c".into(),
            subject: None,
            scopes: vec![],
            expires_at,
        };
        Arc::new(Verified {
            key_manager: 0,
            claim_headers: ClaimHeaders::new(&claims).unwrap(),
            claims,
        })
    }

    fn insert(cache: &TokenCache, token: &str, expires_at: i64, epoch: u64, now: i64) {
        cache.insert(token_hash(token), verified(expires_at), epoch, now);
    }

    #[test]
    fn hits_only_within_the_same_epoch() {
        let cache = TokenCache::new(10, Duration::from_secs(60));
        let hash = token_hash("a.b.c");
        insert(&cache, "a.b.c", 2_000, 1, 1_000);
        assert!(cache.get(&hash, 1).is_some());
        assert!(cache.get(&hash, 2).is_none());
        assert!(cache.get(&hash, 1).is_none(), "a stale entry is dropped");
    }

    #[test]
    fn keys_are_hashes_of_the_whole_token() {
        let cache = TokenCache::new(10, Duration::from_secs(60));
        insert(&cache, "a.b.c", 2_000, 1, 1_000);
        assert!(cache.get(&token_hash("a.b.d"), 1).is_none());
        assert!(cache.get(&token_hash("a.b.c"), 1).is_some());
    }

    #[test]
    fn expired_tokens_are_not_cached() {
        let cache = TokenCache::new(10, Duration::from_secs(60));
        insert(&cache, "x", 1_000, 1, 1_000);
        insert(&cache, "y", 900, 1, 1_000);
        assert!(cache.get(&token_hash("x"), 1).is_none());
        assert!(cache.get(&token_hash("y"), 1).is_none());
    }

    #[test]
    fn entries_live_until_exp_or_the_maximum_ttl() {
        let max = Duration::from_secs(300);
        assert_eq!(
            time_to_live(1_060, 1_000, max),
            Some(Duration::from_secs(60))
        );
        assert_eq!(time_to_live(9_000, 1_000, max), Some(max));
        assert_eq!(time_to_live(1_000, 1_000, max), None);
        assert_eq!(time_to_live(-5, 1_000, max), None);
    }

    #[test]
    fn capacity_bounds_the_cache() {
        let cache = TokenCache::new(100, Duration::from_secs(60));
        for i in 0..1_000 {
            insert(&cache, &format!("t{i}"), 2_000, 1, 1_000);
        }
        assert!(cache.len() <= 100, "{}", cache.len());
    }

    #[test]
    fn capacity_zero_disables_caching() {
        let cache = TokenCache::new(0, Duration::from_secs(60));
        insert(&cache, "x", 2_000, 1, 1_000);
        assert!(cache.get(&token_hash("x"), 1).is_none());
    }

    #[test]
    fn short_hashes_are_12_hex_digits() {
        let short = short_hash(&token_hash("a.b.c"));
        assert_eq!(short.len(), 12);
        assert!(short.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
