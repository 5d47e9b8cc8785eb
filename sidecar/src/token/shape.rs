//! Step 1b: the compact JWS shape, checked before anything is decoded: a length cap, the
//! base64url alphabet, exactly two dots, and strict (canonical, unpadded) base64url.

use base64::Engine;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use crate::denial::Denial;

/// Size limits applied before any decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest token, in bytes.
    pub max_token_bytes: usize,
    /// Longest encoded JOSE header, in bytes.
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_token_bytes: 16 * 1024,
            max_header_bytes: 4 * 1024,
        }
    }
}

/// The three encoded segments of a compact JWS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segments<'a> {
    /// The encoded JOSE header.
    pub header: &'a str,
    /// The encoded payload.
    pub payload: &'a str,
    /// The encoded signature.
    pub signature: &'a str,
    /// `header.payload`: the bytes the signature covers, exactly as received.
    pub signing_input: &'a str,
}

/// Unpadded base64url with canonical trailing bits: the only encoding RFC 7515 allows.
const STRICT: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// Splits `token` into its segments after the size, alphabet and dot checks.
pub fn split(token: &str, limits: Limits) -> Result<Segments<'_>, Denial> {
    if token.len() > limits.max_token_bytes {
        return Err(Denial::TokenTooLarge(token.len()));
    }
    let mut dots = 0usize;
    for byte in token.bytes() {
        match byte {
            b'.' => dots += 1,
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => {}
            _ => return Err(Denial::MalformedToken),
        }
    }
    if dots != 2 {
        return Err(Denial::MalformedToken);
    }
    let (header, rest) = token.split_once('.').ok_or(Denial::MalformedToken)?;
    let (payload, signature) = rest.split_once('.').ok_or(Denial::MalformedToken)?;
    if header.is_empty() || payload.is_empty() || signature.is_empty() {
        return Err(Denial::MalformedToken);
    }
    if header.len() > limits.max_header_bytes {
        return Err(Denial::TokenTooLarge(token.len()));
    }
    Ok(Segments {
        header,
        payload,
        signature,
        signing_input: &token[..header.len() + 1 + payload.len()],
    })
}

/// Decodes one segment strictly.
pub fn decode_segment(segment: &str) -> Result<Vec<u8>, Denial> {
    STRICT.decode(segment).map_err(|_| Denial::BadEncoding)
}

/// Encodes bytes as unpadded base64url (for tests, tools and key material).
pub fn encode_segment(bytes: &[u8]) -> String {
    STRICT.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::default()
    }

    #[test]
    fn splits_a_well_formed_token() {
        let segments = split("aGVh.cGF5.c2ln", limits()).unwrap();
        assert_eq!(segments.header, "aGVh");
        assert_eq!(segments.payload, "cGF5");
        assert_eq!(segments.signature, "c2ln");
        assert_eq!(segments.signing_input, "aGVh.cGF5");
    }

    #[test]
    fn shape_refusals() {
        let too_long = "a".repeat(limits().max_token_bytes + 1);
        let big_header = format!("{}.b.c", "a".repeat(limits().max_header_bytes + 1));
        let many_dots = ".".repeat(5000);
        let cases: Vec<(&str, Denial)> = vec![
            ("", Denial::MalformedToken),
            ("abc", Denial::MalformedToken),
            ("a.b", Denial::MalformedToken),
            ("a.b.c.d", Denial::MalformedToken),
            ("a.b.c.d.e", Denial::MalformedToken),
            (&many_dots, Denial::MalformedToken),
            ("a..c", Denial::MalformedToken),
            ("a.b.", Denial::MalformedToken),
            (".b.c", Denial::MalformedToken),
            ("a=.b.c", Denial::MalformedToken),
            ("a+/.b.c", Denial::MalformedToken),
            ("a b.c.d", Denial::MalformedToken),
            ("a.b.c\n", Denial::MalformedToken),
            ("a.b.c%00", Denial::MalformedToken),
            (&too_long, Denial::TokenTooLarge(too_long.len())),
            (&big_header, Denial::TokenTooLarge(big_header.len())),
        ];
        for (token, expected) in cases {
            assert_eq!(split(token, limits()), Err(expected), "{:.40}", token);
        }
    }

    #[test]
    fn decodes_canonical_base64url() {
        assert_eq!(decode_segment("aGk").unwrap(), b"hi");
        assert_eq!(decode_segment("-_8").unwrap(), vec![0xfb, 0xff]);
    }

    #[test]
    fn refuses_non_canonical_encodings() {
        for segment in ["aGk=", "aGl", "a", "+/8", "aG k", "aGk\n"] {
            assert_eq!(
                decode_segment(segment),
                Err(Denial::BadEncoding),
                "{segment}"
            );
        }
    }
}
