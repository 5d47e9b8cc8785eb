//! Step 2–3 (header part): the JOSE header, typed. `crit`, `b64` and every JWE or nesting
//! member is refused; key-carrying members (`jwk`, `jku`, `x5u`, `x5c`, `x5t`) are never
//! read, so they can neither supply a key nor trigger a fetch.

use outband_crds::JwsAlgorithm;
use serde_json::Value;

use super::json;
use crate::denial::Denial;

/// Longest accepted `kid`, in bytes. A `kid` is only ever a lookup key.
pub const MAX_KID_BYTES: usize = 256;

/// The header members we act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoseHeader {
    /// The signature algorithm.
    pub alg: JwsAlgorithm,
    /// The key id, if any.
    pub kid: Option<String>,
    /// The media type of the token, if any.
    pub typ: Option<String>,
}

/// Members that make a token encrypted (JWE) or otherwise not a plain JWS we understand.
const NESTING_MEMBERS: [&str; 9] = ["enc", "zip", "p2c", "p2s", "epk", "apu", "apv", "iv", "tag"];

/// Parses a decoded JOSE header.
pub fn parse(bytes: &[u8]) -> Result<JoseHeader, Denial> {
    let map = json::parse_object(bytes)?;
    let alg = match map.get("alg") {
        Some(Value::String(alg)) => alg,
        _ => return Err(Denial::BadHeader("alg")),
    };
    if alg.eq_ignore_ascii_case("none") {
        return Err(Denial::AlgNone);
    }
    let alg = JwsAlgorithm::parse(alg).ok_or(Denial::UnsupportedAlg)?;
    if map.contains_key("crit") || map.contains_key("b64") {
        return Err(Denial::CriticalHeader);
    }
    if NESTING_MEMBERS
        .iter()
        .any(|member| map.contains_key(*member))
    {
        return Err(Denial::NestedToken);
    }
    match map.get("cty") {
        None => {}
        Some(Value::String(cty)) if is_jwt_media_type(cty) => return Err(Denial::NestedToken),
        Some(Value::String(_)) => {}
        Some(_) => return Err(Denial::BadHeader("cty")),
    }
    let kid = match map.get("kid") {
        None => None,
        Some(Value::String(kid)) if !kid.is_empty() && kid.len() <= MAX_KID_BYTES => {
            Some(kid.clone())
        }
        Some(_) => return Err(Denial::BadHeader("kid")),
    };
    let typ = match map.get("typ") {
        None => None,
        Some(Value::String(typ)) => Some(typ.clone()),
        Some(_) => return Err(Denial::BadHeader("typ")),
    };
    Ok(JoseHeader { alg, kid, typ })
}

fn is_jwt_media_type(value: &str) -> bool {
    let value = strip_application(value);
    value.eq_ignore_ascii_case("jwt") || value.eq_ignore_ascii_case("jose")
}

fn strip_application(value: &str) -> &str {
    match value.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &value[12..],
        _ => value,
    }
}

/// Whether `typ` satisfies a required type: equal without regard to ASCII case, with or
/// without the `application/` prefix (RFC 7515 §4.1.9).
pub fn type_matches(typ: Option<&str>, required: &str) -> bool {
    typ.is_some_and(|typ| strip_application(typ).eq_ignore_ascii_case(strip_application(required)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(json: &str) -> Result<JoseHeader, Denial> {
        parse(json.as_bytes())
    }

    #[test]
    fn parses_alg_kid_and_typ() {
        assert_eq!(
            header(r#"{"alg":"ES256","kid":"k1","typ":"at+jwt"}"#).unwrap(),
            JoseHeader {
                alg: JwsAlgorithm::ES256,
                kid: Some("k1".into()),
                typ: Some("at+jwt".into())
            }
        );
    }

    #[test]
    fn key_carrying_members_are_ignored() {
        let parsed = header(
            r#"{"alg":"RS256","jwk":{"kty":"oct","k":"AA"},"jku":"http://169.254.169.254/","x5u":"http://x","x5c":["AA"],"x5t":"AA"}"#,
        )
        .unwrap();
        assert_eq!(parsed.alg, JwsAlgorithm::RS256);
        assert_eq!(parsed.kid, None);
    }

    #[test]
    fn refusals() {
        let huge_kid = format!(
            r#"{{"alg":"RS256","kid":"{}"}}"#,
            "k".repeat(MAX_KID_BYTES + 1)
        );
        let cases: Vec<(&str, Denial)> = vec![
            (r#"{"alg":"none"}"#, Denial::AlgNone),
            (r#"{"alg":"None"}"#, Denial::AlgNone),
            (r#"{"alg":"NONE"}"#, Denial::AlgNone),
            (r#"{"alg":"nOnE"}"#, Denial::AlgNone),
            (r#"{"alg":"HS256"}"#, Denial::UnsupportedAlg),
            (r#"{"alg":"HS384"}"#, Denial::UnsupportedAlg),
            (r#"{"alg":"HS512"}"#, Denial::UnsupportedAlg),
            (r#"{"alg":"rs256"}"#, Denial::UnsupportedAlg),
            (r#"{"alg":"ES512"}"#, Denial::UnsupportedAlg),
            (r#"{"alg":"RSA-OAEP"}"#, Denial::UnsupportedAlg),
            (r#"{}"#, Denial::BadHeader("alg")),
            (r#"{"alg":["RS256"]}"#, Denial::BadHeader("alg")),
            (r#"{"alg":null}"#, Denial::BadHeader("alg")),
            (
                r#"{"alg":"RS256","crit":["x-unknown"],"x-unknown":1}"#,
                Denial::CriticalHeader,
            ),
            (r#"{"alg":"RS256","crit":[]}"#, Denial::CriticalHeader),
            (
                r#"{"alg":"RS256","b64":false,"crit":["b64"]}"#,
                Denial::CriticalHeader,
            ),
            (r#"{"alg":"RS256","b64":false}"#, Denial::CriticalHeader),
            (r#"{"alg":"RS256","cty":"JWT"}"#, Denial::NestedToken),
            (r#"{"alg":"RS256","cty":"jwt"}"#, Denial::NestedToken),
            (
                r#"{"alg":"RS256","cty":"application/JWT"}"#,
                Denial::NestedToken,
            ),
            (r#"{"alg":"RS256","cty":1}"#, Denial::BadHeader("cty")),
            (r#"{"alg":"RS256","enc":"A128GCM"}"#, Denial::NestedToken),
            (r#"{"alg":"RS256","zip":"DEF"}"#, Denial::NestedToken),
            (r#"{"alg":"RS256","p2c":1000000000}"#, Denial::NestedToken),
            (r#"{"alg":"RS256","kid":1}"#, Denial::BadHeader("kid")),
            (r#"{"alg":"RS256","kid":["a"]}"#, Denial::BadHeader("kid")),
            (r#"{"alg":"RS256","kid":null}"#, Denial::BadHeader("kid")),
            (r#"{"alg":"RS256","kid":""}"#, Denial::BadHeader("kid")),
            (&huge_kid, Denial::BadHeader("kid")),
            (r#"{"alg":"RS256","typ":1}"#, Denial::BadHeader("typ")),
            (
                r#"{"alg":"RS256","alg":"none"}"#,
                Denial::BadJson("duplicate member"),
            ),
        ];
        for (json, expected) in cases {
            assert_eq!(header(json), Err(expected), "{json:.80}");
        }
    }

    #[test]
    fn required_type_matching() {
        assert!(type_matches(Some("at+jwt"), "at+jwt"));
        assert!(type_matches(Some("AT+JWT"), "at+jwt"));
        assert!(type_matches(Some("application/at+jwt"), "at+jwt"));
        assert!(type_matches(Some("at+jwt"), "application/at+jwt"));
        assert!(!type_matches(Some("JWT"), "at+jwt"));
        assert!(!type_matches(None, "at+jwt"));
        assert!(!type_matches(Some("application/"), "at+jwt"));
    }
}
