//! Turning a client's request into the request for the app: the app's address in the URI,
//! the authorised (normalised) path when route rules apply, `Host` kept, hop-by-hop headers
//! removed, `X-Forwarded-For` appended, and the identity headers set.

use std::net::SocketAddr;

use http::header::{AUTHORIZATION, HOST};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Uri, Version};

use super::{ForwardSettings, hop};
use crate::identity::Identity;

/// Where the app listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    /// Always `http` (the app is on localhost).
    pub scheme: Scheme,
    /// Host and port.
    pub authority: Authority,
    /// Whether to speak HTTP/2 without TLS to the app (e.g. gRPC) instead of HTTP/1.1.
    pub h2c: bool,
}

impl Upstream {
    /// Parses `http://host:port`.
    pub fn parse(url: &str, h2c: bool) -> Result<Upstream, String> {
        let uri: Uri = url
            .parse()
            .map_err(|err| format!("--upstream {url:?} is not a URL: {err}"))?;
        if uri.scheme() != Some(&Scheme::HTTP) {
            return Err(format!("--upstream {url:?} must be an http:// URL"));
        }
        if uri.path_and_query().is_some_and(|pq| pq.as_str() != "/") {
            return Err(format!("--upstream {url:?} must not have a path"));
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| format!("--upstream {url:?} has no host"))?;
        Ok(Upstream {
            scheme: Scheme::HTTP,
            authority,
            h2c,
        })
    }
}

/// Rewrites `request` for the app.
pub fn upstream_request<B>(
    request: Request<B>,
    settings: &ForwardSettings,
    normalized_path: Option<String>,
    peer: SocketAddr,
    identity: Identity,
    upgrade: bool,
) -> Request<B> {
    let (mut parts, body) = request.into_parts();
    let query = parts.uri.query();
    let path = normalized_path
        .as_deref()
        .unwrap_or_else(|| parts.uri.path());
    let path_and_query = match query {
        Some(query) => format!("{path}?{query}"),
        None => path.to_string(),
    };
    let path_and_query =
        PathAndQuery::try_from(path_and_query).unwrap_or_else(|_| PathAndQuery::from_static("/"));
    if !parts.headers.contains_key(HOST)
        && let Some(authority) = parts.uri.authority()
        && let Ok(host) = HeaderValue::from_str(authority.as_str())
    {
        parts.headers.insert(HOST, host);
    }
    let mut uri = Uri::builder()
        .scheme(settings.upstream.scheme.clone())
        .authority(settings.upstream.authority.clone())
        .path_and_query(path_and_query)
        .build()
        .expect("scheme, authority and path are valid");
    std::mem::swap(&mut parts.uri, &mut uri);

    hop::strip(&mut parts.headers, upgrade, settings.upstream.h2c);
    let forwarded_for = match parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
    {
        Some(previous) => format!("{previous}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
        parts.headers.insert("x-forwarded-for", value);
    }
    if settings.strip_authorization {
        parts.headers.remove(AUTHORIZATION);
    }
    identity.apply(&mut parts.headers);
    parts.version = if settings.upstream.h2c {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    Request::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upstreams() {
        let upstream = Upstream::parse("http://127.0.0.1:8080", false).unwrap();
        assert_eq!(upstream.authority.as_str(), "127.0.0.1:8080");
        assert!(Upstream::parse("https://127.0.0.1:8080", false).is_err());
        assert!(Upstream::parse("http://127.0.0.1:8080/app", false).is_err());
        assert!(Upstream::parse("127.0.0.1:8080", false).is_err());
    }
}
