//! The SSRF guard for the sidecar's own JWKS fetches: which URLs and resolved addresses it may
//! contact. Link-local and cloud metadata addresses are always refused, loopback only when the
//! KeyManager allows it, and plain `http` only towards loopback. Pure.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// Why a JWKS URL may not be fetched.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// Not a valid absolute URL.
    #[error("not a valid URL")]
    InvalidUrl,
    /// A scheme other than https (or http towards an allowed loopback host).
    #[error("scheme {0:?} is not allowed (https, or http to loopback when allowLoopback)")]
    Scheme(String),
    /// The URL carries credentials.
    #[error("URLs with credentials are not allowed")]
    Credentials,
    /// The address is refused.
    #[error("address {0} is not allowed")]
    Address(IpAddr),
}

/// Whether the sidecar may connect to `ip`.
pub fn address_allowed(ip: IpAddr, allow_loopback: bool) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    if ip.is_loopback() {
        return allow_loopback;
    }
    match ip {
        IpAddr::V4(v4) => v4_allowed(v4),
        IpAddr::V6(v6) => v6_allowed(v6),
    }
}

fn v4_allowed(ip: Ipv4Addr) -> bool {
    !(ip.is_unspecified()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.octets()[0] == 0
        // Cloud metadata services outside 169.254/16: Alibaba, Oracle.
        || ip == Ipv4Addr::new(100, 100, 100, 200)
        || ip == Ipv4Addr::new(192, 0, 0, 192))
}

fn v6_allowed(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_multicast()
        // fe80::/10 link-local
        || (first & 0xffc0) == 0xfe80
        // AWS IMDS over IPv6
        || ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254))
}

/// Checks a JWKS URL before any request: scheme, credentials, and the host when it is an IP
/// literal (names are checked after resolution, see [`address_allowed`]).
pub fn check_url(raw: &str, allow_loopback: bool) -> Result<Url, GuardError> {
    let url = Url::parse(raw).map_err(|_| GuardError::InvalidUrl)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(GuardError::Credentials);
    }
    let literal = match url.host() {
        Some(Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
        Some(Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
        Some(Host::Domain(_)) => None,
        None => return Err(GuardError::InvalidUrl),
    };
    if let Some(ip) = literal
        && !address_allowed(ip, allow_loopback)
    {
        return Err(GuardError::Address(ip));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if allow_loopback && is_loopback_host(&url) => Ok(url),
        other => Err(GuardError::Scheme(other.to_string())),
    }
}

fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(v4)) => v4.is_loopback(),
        Some(Host::Ipv6(v6)) => v6.is_loopback(),
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_table() {
        let cases = [
            ("10.1.2.3", false, true),
            ("192.168.1.1", false, true),
            ("8.8.8.8", false, true),
            ("127.0.0.1", false, false),
            ("127.0.0.1", true, true),
            ("::1", true, true),
            ("::1", false, false),
            ("::ffff:127.0.0.1", false, false),
            ("169.254.169.254", true, false),
            ("::ffff:169.254.169.254", true, false),
            ("169.254.1.1", false, false),
            ("fe80::1", false, false),
            ("fd00:ec2::254", false, false),
            ("100.100.100.200", false, false),
            ("192.0.0.192", false, false),
            ("0.0.0.0", true, false),
            ("::", true, false),
            ("224.0.0.1", false, false),
            ("255.255.255.255", false, false),
            ("2001:db8::1", false, true),
        ];
        for (ip, allow_loopback, expected) in cases {
            assert_eq!(
                address_allowed(ip.parse().unwrap(), allow_loopback),
                expected,
                "{ip} loopback={allow_loopback}"
            );
        }
    }

    #[test]
    fn url_table() {
        assert!(check_url("https://idp.example/jwks", false).is_ok());
        assert!(check_url("http://127.0.0.1:8080/jwks", true).is_ok());
        assert!(check_url("http://localhost:8080/jwks", true).is_ok());
        assert_eq!(
            check_url("http://idp.example/jwks", true).unwrap_err(),
            GuardError::Scheme("http".into())
        );
        assert_eq!(
            check_url("http://127.0.0.1/jwks", false).unwrap_err(),
            GuardError::Address("127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            check_url("https://169.254.169.254/latest/meta-data", true).unwrap_err(),
            GuardError::Address("169.254.169.254".parse().unwrap())
        );
        assert_eq!(
            check_url("https://[fd00:ec2::254]/", false).unwrap_err(),
            GuardError::Address("fd00:ec2::254".parse().unwrap())
        );
        assert_eq!(
            check_url("https://user:pw@idp.example/", false).unwrap_err(),
            GuardError::Credentials
        );
        assert_eq!(
            check_url("file:///etc/passwd", true).unwrap_err(),
            GuardError::InvalidUrl
        );
        assert_eq!(
            check_url("gopher://idp.example/", true).unwrap_err(),
            GuardError::Scheme("gopher".into())
        );
        assert_eq!(
            check_url("not a url", true).unwrap_err(),
            GuardError::InvalidUrl
        );
    }
}
