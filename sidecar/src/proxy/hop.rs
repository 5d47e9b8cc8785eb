//! Hop-by-hop headers (RFC 9110 §7.6.1): removed in both directions, including any header a
//! `Connection` header names. Upgrade requests keep `Connection: upgrade` and `Upgrade`.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Whether the headers ask for a protocol upgrade (HTTP/1.1 `Connection: upgrade`).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_has(headers, "upgrade")
}

fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}

/// Removes hop-by-hop headers. With `keep_upgrade`, `Upgrade` and `Connection: upgrade`
/// survive; `TE: trailers` survives when `keep_te_trailers` (HTTP/2 upstreams, gRPC).
pub fn strip(headers: &mut HeaderMap, keep_upgrade: bool, keep_te_trailers: bool) {
    let nominated: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|item| HeaderName::from_bytes(item.trim().as_bytes()).ok())
        .collect();
    let te_trailers = keep_te_trailers
        && headers
            .get_all(header::TE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|item| item.trim().eq_ignore_ascii_case("trailers"));
    for name in nominated {
        if !(keep_upgrade && name == header::UPGRADE) {
            headers.remove(&name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn removes_hop_by_hop_and_nominated_headers() {
        let mut headers = map(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("transfer-encoding", "chunked"),
            ("proxy-authorization", "Basic x"),
            ("upgrade", "websocket"),
            ("te", "gzip"),
            ("accept", "*/*"),
        ]);
        strip(&mut headers, false, false);
        let names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, vec!["accept"]);
    }

    #[test]
    fn an_upgrade_keeps_its_headers() {
        let mut headers = map(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "k"),
        ]);
        assert!(is_upgrade(&headers));
        strip(&mut headers, true, false);
        assert_eq!(headers["connection"], "upgrade");
        assert_eq!(headers["upgrade"], "websocket");
        assert_eq!(headers["sec-websocket-key"], "k");
    }

    #[test]
    fn te_trailers_survives_for_http2_upstreams() {
        let mut headers = map(&[("te", "trailers")]);
        strip(&mut headers, false, true);
        assert_eq!(headers["te"], "trailers");
        let mut headers = map(&[("te", "trailers")]);
        strip(&mut headers, false, false);
        assert!(headers.get("te").is_none());
    }

    #[test]
    fn a_connection_header_cannot_remove_identity_headers_set_later() {
        // The identity headers are inserted after stripping, so nominating them is harmless;
        // here we only check that nominating does remove the client's own copy.
        let mut headers = map(&[
            ("connection", "x-outband-client-id"),
            ("x-outband-client-id", "spoof"),
        ]);
        strip(&mut headers, false, false);
        assert!(headers.is_empty());
    }

    #[test]
    fn without_upgrade_header_it_is_not_an_upgrade() {
        assert!(!is_upgrade(&map(&[("connection", "upgrade")])));
        assert!(!is_upgrade(&map(&[("upgrade", "websocket")])));
    }
}
