//! When to fetch a JWKS again: the server's `Cache-Control` within the KeyManager's bounds.

use std::time::Duration;

/// The freshness lifetime the server gives in `Cache-Control` (`max-age`, minus `Age`), or
/// zero for `no-store`/`no-cache`; `None` when it says nothing.
pub fn freshness(cache_control: Option<&str>, age: Option<&str>) -> Option<Duration> {
    let header = cache_control?;
    let mut max_age = None;
    for directive in header.split(',') {
        let directive = directive.trim();
        let (name, value) = match directive.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (directive, None),
        };
        match name.to_ascii_lowercase().as_str() {
            "no-store" | "no-cache" => return Some(Duration::ZERO),
            "max-age" => max_age = value.and_then(|v| v.parse::<u64>().ok()),
            _ => {}
        }
    }
    let age = age.and_then(|a| a.trim().parse::<u64>().ok()).unwrap_or(0);
    max_age.map(|m| Duration::from_secs(m.saturating_sub(age)))
}

/// The next refresh interval: the server's freshness clamped to `[min, max]`, `max` when
/// the server gives none, and never more than the operator-wide `cap`.
pub fn refresh_interval(
    freshness: Option<Duration>,
    min: Duration,
    max: Duration,
    cap: Option<Duration>,
) -> Duration {
    let max = max.max(min);
    let interval = freshness.unwrap_or(max).clamp(min, max);
    match cap {
        Some(cap) => interval.min(cap),
        None => interval,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn reads_max_age_and_subtracts_age() {
        assert_eq!(freshness(Some("public, max-age=600"), None), Some(S(600)));
        assert_eq!(freshness(Some("max-age=600"), Some("100")), Some(S(500)));
        assert_eq!(freshness(Some("max-age=\"60\""), None), Some(S(60)));
    }

    #[test]
    fn no_cache_and_no_store_mean_now() {
        assert_eq!(freshness(Some("no-store"), None), Some(Duration::ZERO));
        assert_eq!(
            freshness(Some("max-age=600, no-cache"), None),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn silence_or_garbage_gives_none() {
        assert_eq!(freshness(None, None), None);
        assert_eq!(freshness(Some("public"), None), None);
        assert_eq!(freshness(Some("max-age=soon"), None), None);
    }

    #[test]
    fn interval_is_clamped_to_the_key_managers_bounds() {
        assert_eq!(refresh_interval(Some(S(10)), S(300), S(3600), None), S(300));
        assert_eq!(
            refresh_interval(Some(S(99999)), S(300), S(3600), None),
            S(3600)
        );
        assert_eq!(
            refresh_interval(Some(S(900)), S(300), S(3600), None),
            S(900)
        );
        assert_eq!(refresh_interval(None, S(300), S(3600), None), S(3600));
    }

    #[test]
    fn the_operator_wide_cap_wins() {
        assert_eq!(refresh_interval(None, S(300), S(3600), Some(S(2))), S(2));
    }
}
