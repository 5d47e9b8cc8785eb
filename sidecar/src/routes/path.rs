//! Normalising a request path before route rules see it (RFC 3986 §6.2.2): valid
//! percent-escapes only, unreserved characters decoded, dot segments resolved, repeated
//! slashes merged. Paths that different servers read differently — an encoded `/` or `\`,
//! a raw `\`, control characters, `..` above the root, `..;` — are refused.
//!
//! When route rules are configured the normalised path is what gets forwarded, so the app
//! sees exactly the path that was authorised.

use crate::denial::Denial;

/// A path after normalisation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NormalizedPath {
    /// The path to forward: normalised, still percent-encoded where needed.
    pub forward: String,
    /// Fully decoded segments, for matching (no empty segments).
    pub segments: Vec<String>,
}

/// Normalises `raw` (the path of the request target, without the query).
///
/// With `strict` false (no route rules), only the matching form is computed and ambiguous
/// encodings are tolerated; the forward form is then `raw` itself.
pub fn normalize(raw: &str, strict: bool) -> Result<NormalizedPath, Denial> {
    if !raw.starts_with('/') {
        return Err(Denial::InvalidPath("not an absolute path"));
    }
    if raw.contains('#') {
        return Err(Denial::InvalidPath("fragment in the request target"));
    }
    let mut forward_segments: Vec<String> = Vec::new();
    let mut segments: Vec<String> = Vec::new();
    let mut parts = raw[1..].split('/').peekable();
    let mut trailing_slash = false;
    while let Some(part) = parts.next() {
        let last = parts.peek().is_none();
        let (forward, decoded) = normalize_segment(part, strict)?;
        let dot_candidate = match decoded.split_once(';') {
            Some((before, _)) if strict => before.to_string(),
            _ => decoded.clone(),
        };
        match dot_candidate.as_str() {
            "" => {
                if last {
                    trailing_slash = true;
                }
            }
            "." | ".." if decoded != dot_candidate => {
                return Err(Denial::InvalidPath("dot segment with parameters"));
            }
            "." => trailing_slash = last,
            ".." => {
                if segments.pop().is_none() && strict {
                    return Err(Denial::InvalidPath("'..' above the root"));
                }
                forward_segments.pop();
                trailing_slash = last;
            }
            _ => {
                forward_segments.push(forward);
                segments.push(decoded);
                trailing_slash = false;
            }
        }
    }
    let forward = if strict {
        let mut forward = String::with_capacity(raw.len());
        for segment in &forward_segments {
            forward.push('/');
            forward.push_str(segment);
        }
        if forward.is_empty() || trailing_slash {
            forward.push('/');
        }
        forward
    } else {
        raw.to_string()
    };
    Ok(NormalizedPath { forward, segments })
}

/// One segment: its forward form (unreserved escapes decoded, other escapes upper-cased) and
/// its fully decoded form.
fn normalize_segment(part: &str, strict: bool) -> Result<(String, String), Denial> {
    let bytes = part.as_bytes();
    let mut forward = String::with_capacity(part.len());
    let mut decoded: Vec<u8> = Vec::with_capacity(part.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte == b'%' {
            let value = bytes
                .get(i + 1..i + 3)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or(Denial::InvalidPath("invalid percent-encoding"))?;
            if strict && (value == b'/' || value == b'\\') {
                return Err(Denial::InvalidPath("encoded slash or backslash"));
            }
            if strict && (value < 0x20 || value == 0x7f) {
                return Err(Denial::InvalidPath("encoded control character"));
            }
            if is_unreserved(value) {
                forward.push(value as char);
            } else {
                forward.push_str(&format!("%{value:02X}"));
            }
            decoded.push(value);
            i += 3;
        } else {
            if strict && byte == b'\\' {
                return Err(Denial::InvalidPath("backslash"));
            }
            if byte < 0x20 || byte == 0x7f {
                return Err(Denial::InvalidPath("control character"));
            }
            forward.push(byte as char);
            decoded.push(byte);
            i += 1;
        }
    }
    Ok((forward, String::from_utf8_lossy(&decoded).into_owned()))
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict(raw: &str) -> Result<(String, Vec<String>), Denial> {
        normalize(raw, true).map(|p| (p.forward, p.segments))
    }

    #[test]
    fn normal_forms() {
        let cases: &[(&str, &str, &[&str])] = &[
            ("/", "/", &[]),
            ("//", "/", &[]),
            ("/orders", "/orders", &["orders"]),
            ("/orders/", "/orders/", &["orders"]),
            ("/orders//42", "/orders/42", &["orders", "42"]),
            ("/a/./b", "/a/b", &["a", "b"]),
            ("/a/../b", "/b", &["b"]),
            ("/a/b/..", "/a/", &["a"]),
            ("/a/%2e%2E/b", "/b", &["b"]),
            ("/%7Euser/%61", "/~user/a", &["~user", "a"]),
            ("/caf%c3%a9", "/caf%C3%A9", &["café"]),
            ("/a%20b", "/a%20b", &["a b"]),
            ("/q%3fx", "/q%3Fx", &["q?x"]),
            ("/a;x=1/b", "/a;x=1/b", &["a;x=1", "b"]),
        ];
        for (raw, forward, segments) in cases {
            let (got_forward, got_segments) = strict(raw).unwrap();
            assert_eq!(&got_forward, forward, "{raw}");
            assert_eq!(got_segments, segments.to_vec(), "{raw}");
        }
    }

    #[test]
    fn ambiguous_paths_are_refused_when_rules_apply() {
        for raw in [
            "/a%2Fb", "/a%2fb", "/a%5Cb", "/a\\b", "/a%00", "/a%0a", "/..", "/a/../..", "/%2e%2e",
            "/a/..;/b", "/a/.;x/b", "/a%zz", "/a%4", "/a#b", "a/b", "*",
        ] {
            assert!(matches!(strict(raw), Err(Denial::InvalidPath(_))), "{raw}");
        }
    }

    #[test]
    fn without_rules_the_path_is_forwarded_as_received() {
        let path = normalize("/a%2Fb//c/../d", false).unwrap();
        assert_eq!(path.forward, "/a%2Fb//c/../d");
        assert_eq!(path.segments, vec!["a/b", "d"]);
    }
}
