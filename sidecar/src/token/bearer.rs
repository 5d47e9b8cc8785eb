//! Step 1a: exactly one `Authorization: Bearer <token>` header (RFC 6750 §2.1).

use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::denial::Denial;

/// The token of the request's single bearer `Authorization` header.
///
/// No header, or a header with another scheme, is a missing token; several `Authorization`
/// headers, or a bearer header without a token, are malformed.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, Denial> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(Denial::MissingToken);
    };
    if values.next().is_some() {
        return Err(Denial::MalformedAuthorization);
    }
    let value = value.to_str().map_err(|_| Denial::MalformedAuthorization)?;
    let Some((scheme, rest)) = value.split_once(' ') else {
        return Err(if value.eq_ignore_ascii_case("bearer") {
            Denial::MalformedAuthorization
        } else {
            Denial::MissingToken
        });
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Denial::MissingToken);
    }
    let token = rest.trim_start_matches(' ');
    if token.is_empty() || token.contains([' ', '\t']) {
        return Err(Denial::MalformedAuthorization);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn extracts_the_token_of_a_bearer_header() {
        assert_eq!(
            bearer_token(&headers(&["Bearer abc.def.ghi"])),
            Ok("abc.def.ghi")
        );
    }

    #[test]
    fn the_scheme_is_case_insensitive() {
        assert_eq!(bearer_token(&headers(&["bEaReR a.b.c"])), Ok("a.b.c"));
    }

    #[test]
    fn table_of_refusals() {
        let cases: &[(&[&str], Denial)] = &[
            (&[], Denial::MissingToken),
            (&["Basic dXNlcjpwYXNz"], Denial::MissingToken),
            (&["Bearer"], Denial::MalformedAuthorization),
            (&["Bearer "], Denial::MalformedAuthorization),
            (&["Bearer a.b.c d.e.f"], Denial::MalformedAuthorization),
            (&["Bearer a.b.c\t"], Denial::MalformedAuthorization),
            (
                &["Bearer a.b.c", "Bearer d.e.f"],
                Denial::MalformedAuthorization,
            ),
        ];
        for (values, expected) in cases {
            assert_eq!(
                bearer_token(&headers(values)),
                Err(expected.clone()),
                "{values:?}"
            );
        }
    }

    #[test]
    fn non_ascii_header_bytes_are_malformed() {
        let mut map = HeaderMap::new();
        map.insert(
            AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer \xffa.b.c").unwrap(),
        );
        assert_eq!(bearer_token(&map), Err(Denial::MalformedAuthorization));
    }
}
