//! Step 6: typed claims. A registered claim of the wrong type is a refusal, never "absent";
//! `exp` is required and `now` must be strictly before it (plus skew); `nbf`, `iat` and the
//! audience are checked; the client id and scopes come from the KeyManager's claim names.

use outband_crds::route_scopes::is_scope_token;
use serde_json::{Map, Value};

use crate::denial::Denial;

/// Longest accepted client id, in bytes (the CRD's limit on `consumerKey`).
pub const MAX_CLIENT_ID_BYTES: usize = 512;
/// Most scopes read from a token.
pub const MAX_SCOPES: usize = 256;

/// How one KeyManager's tokens are read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimRules {
    /// The claim holding the client id.
    pub consumer_key_claim: String,
    /// The claim holding the scopes.
    pub scopes_claim: String,
    /// Allowed clock skew, in seconds.
    pub clock_skew: i64,
    /// When not empty, `aud` must contain one of these.
    pub audiences: Vec<String>,
}

/// What a token says about its caller, once its claims have been checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// The client id (consumer key).
    pub client_id: String,
    /// `sub`, if present.
    pub subject: Option<String>,
    /// The granted scopes.
    pub scopes: Vec<String>,
    /// `exp`, rounded down to whole seconds.
    pub expires_at: i64,
}

/// The `iss` claim.
pub fn issuer(claims: &Map<String, Value>) -> Result<&str, Denial> {
    match claims.get("iss") {
        Some(Value::String(iss)) => Ok(iss),
        _ => Err(Denial::MissingIssuer),
    }
}

/// Whether a token expiring at `expires_at` is still valid at `now`: RFC 7519 §4.1.4 says
/// `now` must be *before* `exp`, so `exp == now` is expired.
pub fn unexpired(expires_at: i64, now: i64, clock_skew: i64) -> bool {
    now < expires_at.saturating_add(clock_skew)
}

/// Checks the registered claims and extracts the caller's identity.
pub fn check(claims: &Map<String, Value>, rules: &ClaimRules, now: i64) -> Result<Claims, Denial> {
    let expires_at = match claims.get("exp") {
        None => return Err(Denial::MissingExp),
        Some(value) => numeric_date(value, "exp", f64::floor)?,
    };
    if !unexpired(expires_at, now, rules.clock_skew) {
        return Err(Denial::Expired);
    }
    if let Some(value) = claims.get("nbf") {
        let not_before = numeric_date(value, "nbf", f64::ceil)?;
        if now.saturating_add(rules.clock_skew) < not_before {
            return Err(Denial::NotYetValid);
        }
    }
    if let Some(value) = claims.get("iat") {
        let issued_at = numeric_date(value, "iat", f64::ceil)?;
        if issued_at > now.saturating_add(rules.clock_skew) {
            return Err(Denial::IssuedInFuture);
        }
    }
    check_audience(claims.get("aud"), &rules.audiences)?;
    let subject = match claims.get("sub") {
        None => None,
        Some(Value::String(sub)) if is_header_safe(sub) => Some(sub.clone()),
        Some(_) => return Err(Denial::BadClaimType("sub".into())),
    };
    let client_id = match claims.get(&rules.consumer_key_claim) {
        None | Some(Value::Null) => {
            return Err(Denial::MissingClientId(rules.consumer_key_claim.clone()));
        }
        Some(Value::String(id))
            if !id.is_empty() && id.len() <= MAX_CLIENT_ID_BYTES && is_header_safe(id) =>
        {
            id.clone()
        }
        Some(_) => return Err(Denial::BadClientId(rules.consumer_key_claim.clone())),
    };
    let scopes = scopes(claims.get(&rules.scopes_claim), &rules.scopes_claim)?;
    Ok(Claims {
        client_id,
        subject,
        scopes,
        expires_at,
    })
}

/// A NumericDate (RFC 7519 §2): a finite JSON number; fractions are rounded the strict way.
fn numeric_date(value: &Value, claim: &str, round: fn(f64) -> f64) -> Result<i64, Denial> {
    let Value::Number(number) = value else {
        return Err(Denial::BadClaimType(claim.into()));
    };
    if let Some(int) = number.as_i64() {
        return Ok(int);
    }
    match number.as_f64() {
        // `as` saturates for values beyond i64, which is the intent.
        Some(float) if float.is_finite() => Ok(round(float) as i64),
        _ => Err(Denial::BadClaimType(claim.into())),
    }
}

fn check_audience(aud: Option<&Value>, expected: &[String]) -> Result<(), Denial> {
    let found: Vec<&str> = match aud {
        None => Vec::new(),
        Some(Value::String(aud)) => vec![aud.as_str()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().ok_or(Denial::BadClaimType("aud".into())))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(Denial::BadClaimType("aud".into())),
    };
    if expected.is_empty() || found.iter().any(|aud| expected.iter().any(|e| e == aud)) {
        Ok(())
    } else {
        Err(Denial::AudienceMismatch)
    }
}

fn scopes(value: Option<&Value>, claim: &str) -> Result<Vec<String>, Denial> {
    let scopes: Vec<String> = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(text)) => text.split_ascii_whitespace().map(str::to_string).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| Denial::BadClaimType(claim.into()))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(Denial::BadClaimType(claim.into())),
    };
    if scopes.len() > MAX_SCOPES || !scopes.iter().all(|s| is_scope_token(s)) {
        return Err(Denial::BadClaimType(claim.into()));
    }
    Ok(scopes)
}

/// Printable text that can be forwarded in an HTTP header: no control characters.
fn is_header_safe(text: &str) -> bool {
    !text.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    fn rules() -> ClaimRules {
        ClaimRules {
            consumer_key_claim: "client_id".into(),
            scopes_claim: "scope".into(),
            clock_skew: 0,
            audiences: Vec::new(),
        }
    }

    fn base() -> Value {
        json!({"iss": "https://idp", "exp": NOW + 60, "client_id": "c1", "sub": "s", "scope": "a b"})
    }

    fn with(changes: Value) -> Map<String, Value> {
        let mut claims = base().as_object().unwrap().clone();
        for (key, value) in changes.as_object().unwrap() {
            if value == &json!("<remove>") {
                claims.remove(key);
            } else {
                claims.insert(key.clone(), value.clone());
            }
        }
        claims
    }

    #[test]
    fn extracts_the_caller() {
        let claims = check(&with(json!({})), &rules(), NOW).unwrap();
        assert_eq!(
            claims,
            Claims {
                client_id: "c1".into(),
                subject: Some("s".into()),
                scopes: vec!["a".into(), "b".into()],
                expires_at: NOW + 60,
            }
        );
    }

    #[test]
    fn scopes_may_be_an_array() {
        let claims = check(&with(json!({"scope": ["x", "y"]})), &rules(), NOW).unwrap();
        assert_eq!(claims.scopes, vec!["x", "y"]);
    }

    #[test]
    fn exp_equal_to_now_is_expired() {
        assert_eq!(
            check(&with(json!({"exp": NOW})), &rules(), NOW),
            Err(Denial::Expired)
        );
        assert!(check(&with(json!({"exp": NOW + 1})), &rules(), NOW).is_ok());
    }

    #[test]
    fn skew_extends_exp_and_nbf_symmetrically() {
        let skewed = ClaimRules {
            clock_skew: 30,
            ..rules()
        };
        assert!(check(&with(json!({"exp": NOW - 29})), &skewed, NOW).is_ok());
        assert_eq!(
            check(&with(json!({"exp": NOW - 30})), &skewed, NOW),
            Err(Denial::Expired)
        );
        assert!(check(&with(json!({"nbf": NOW + 30})), &skewed, NOW).is_ok());
        assert_eq!(
            check(&with(json!({"nbf": NOW + 31})), &skewed, NOW),
            Err(Denial::NotYetValid)
        );
    }

    #[test]
    fn fractional_dates_round_the_strict_way() {
        assert_eq!(
            check(&with(json!({"exp": NOW as f64 + 0.9})), &rules(), NOW),
            Err(Denial::Expired)
        );
        assert_eq!(
            check(&with(json!({"nbf": NOW as f64 + 0.1})), &rules(), NOW),
            Err(Denial::NotYetValid)
        );
    }

    #[test]
    fn refusals() {
        let type_error = |claim: &str| Denial::BadClaimType(claim.into());
        let cases: Vec<(Value, Denial)> = vec![
            (json!({"exp": "<remove>"}), Denial::MissingExp),
            (json!({"exp": NOW - 1}), Denial::Expired),
            (json!({"exp": "1900000000"}), type_error("exp")),
            (json!({"exp": null}), type_error("exp")),
            (json!({"exp": true}), type_error("exp")),
            (json!({"exp": [NOW + 60]}), type_error("exp")),
            (json!({"exp": {"n": 1}}), type_error("exp")),
            (json!({"nbf": NOW + 1}), Denial::NotYetValid),
            (json!({"nbf": "0"}), type_error("nbf")),
            (json!({"nbf": null}), type_error("nbf")),
            (json!({"iat": NOW + 1}), Denial::IssuedInFuture),
            (json!({"iat": "x"}), type_error("iat")),
            (json!({"sub": 1}), type_error("sub")),
            (json!({"sub": "a\u{0}b"}), type_error("sub")),
            (json!({"aud": 1}), type_error("aud")),
            (json!({"aud": [1]}), type_error("aud")),
            (
                json!({"client_id": "<remove>"}),
                Denial::MissingClientId("client_id".into()),
            ),
            (
                json!({"client_id": null}),
                Denial::MissingClientId("client_id".into()),
            ),
            (
                json!({"client_id": ["c1"]}),
                Denial::BadClientId("client_id".into()),
            ),
            (
                json!({"client_id": 7}),
                Denial::BadClientId("client_id".into()),
            ),
            (
                json!({"client_id": ""}),
                Denial::BadClientId("client_id".into()),
            ),
            (
                json!({"client_id": "c1\u{0}"}),
                Denial::BadClientId("client_id".into()),
            ),
            (
                json!({"client_id": "c1\r\nx-outband-tier: gold"}),
                Denial::BadClientId("client_id".into()),
            ),
            (
                json!({"client_id": "c".repeat(MAX_CLIENT_ID_BYTES + 1)}),
                Denial::BadClientId("client_id".into()),
            ),
            (json!({"scope": 1}), type_error("scope")),
            (json!({"scope": [1]}), type_error("scope")),
            (json!({"scope": "a \"b"}), type_error("scope")),
        ];
        for (changes, expected) in cases {
            assert_eq!(
                check(&with(changes.clone()), &rules(), NOW),
                Err(expected),
                "{changes}"
            );
        }
    }

    #[test]
    fn audience_rules() {
        let strict = ClaimRules {
            audiences: vec!["api://orders".into(), "orders".into()],
            ..rules()
        };
        assert!(check(&with(json!({"aud": "orders"})), &strict, NOW).is_ok());
        assert!(check(&with(json!({"aud": ["x", "api://orders"]})), &strict, NOW).is_ok());
        for aud in [
            json!("<remove>"),
            json!("other"),
            json!([]),
            json!(["other"]),
            json!("Orders"),
        ] {
            assert_eq!(
                check(&with(json!({"aud": aud.clone()})), &strict, NOW),
                Err(Denial::AudienceMismatch),
                "{aud}"
            );
        }
        assert!(check(&with(json!({"aud": "anything"})), &rules(), NOW).is_ok());
    }

    #[test]
    fn issuer_must_be_a_string() {
        assert_eq!(issuer(&with(json!({}))), Ok("https://idp"));
        for iss in [
            json!("<remove>"),
            json!(["https://idp"]),
            json!(1),
            json!(null),
        ] {
            assert_eq!(
                issuer(&with(json!({"iss": iss.clone()}))),
                Err(Denial::MissingIssuer),
                "{iss}"
            );
        }
    }
}
