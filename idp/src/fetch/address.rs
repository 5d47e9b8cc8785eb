//! The SSRF guard's address policy: which resolved addresses the operator may connect to.
//!
//! Applied after DNS resolution (so a name cannot smuggle a forbidden address) and to IP
//! literals in URLs. Private ranges stay allowed: an in-cluster Keycloak is a normal setup.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 169.254.0.0/16, fe80::/10.
    LinkLocal,
    /// A cloud metadata service address.
    Metadata,
    /// 127.0.0.0/8 or ::1 without `allowLoopback`.
    Loopback,
    /// 0.0.0.0, ::, multicast, broadcast and other addresses that are never a server.
    NotUnicast,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::LinkLocal => "a link-local address",
            Refusal::Metadata => "a cloud metadata address",
            Refusal::Loopback => {
                "a loopback address (set spec.connection.allowLoopback to allow it)"
            }
            Refusal::NotUnicast => "not a unicast address",
        })
    }
}

/// Well-known metadata endpoints outside the link-local ranges.
const METADATA_V4: [Ipv4Addr; 2] = [
    Ipv4Addr::new(100, 100, 100, 200), // Alibaba Cloud
    Ipv4Addr::new(192, 0, 0, 192),     // Oracle Cloud
];
/// AWS's IPv6 instance metadata address.
const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

/// Whether the operator may connect to `ip`.
pub fn check(ip: IpAddr, allow_loopback: bool) -> Result<(), Refusal> {
    match ip {
        IpAddr::V4(v4) => check_v4(v4, allow_loopback),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return check_v4(v4, allow_loopback);
            }
            if v6 == METADATA_V6 {
                Err(Refusal::Metadata)
            } else if v6.is_loopback() {
                if allow_loopback {
                    Ok(())
                } else {
                    Err(Refusal::Loopback)
                }
            } else if v6.is_unicast_link_local() {
                Err(Refusal::LinkLocal)
            } else if v6.is_unspecified() || v6.is_multicast() {
                Err(Refusal::NotUnicast)
            } else {
                Ok(())
            }
        }
    }
}

fn check_v4(v4: Ipv4Addr, allow_loopback: bool) -> Result<(), Refusal> {
    if v4 == Ipv4Addr::new(169, 254, 169, 254) || METADATA_V4.contains(&v4) {
        Err(Refusal::Metadata)
    } else if v4.is_link_local() {
        Err(Refusal::LinkLocal)
    } else if v4.is_loopback() {
        if allow_loopback {
            Ok(())
        } else {
            Err(Refusal::Loopback)
        }
    } else if v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast() || v4.octets()[0] == 0 {
        Err(Refusal::NotUnicast)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn refuses_cloud_metadata_addresses_even_with_loopback_allowed() {
        for addr in [
            "169.254.169.254",
            "fd00:ec2::254",
            "100.100.100.200",
            "192.0.0.192",
            "::ffff:169.254.169.254",
        ] {
            assert_eq!(check(ip(addr), true), Err(Refusal::Metadata), "{addr}");
        }
    }

    #[test]
    fn refuses_link_local_addresses() {
        for addr in ["169.254.1.1", "fe80::1", "::ffff:169.254.3.4"] {
            assert_eq!(check(ip(addr), true), Err(Refusal::LinkLocal), "{addr}");
        }
    }

    #[test]
    fn loopback_only_when_allowed() {
        for addr in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(check(ip(addr), false), Err(Refusal::Loopback), "{addr}");
            assert_eq!(check(ip(addr), true), Ok(()), "{addr}");
        }
    }

    #[test]
    fn refuses_unspecified_multicast_and_broadcast() {
        for addr in [
            "0.0.0.0",
            "0.1.2.3",
            "::",
            "224.0.0.1",
            "255.255.255.255",
            "ff02::1",
        ] {
            assert_eq!(check(ip(addr), true), Err(Refusal::NotUnicast), "{addr}");
        }
    }

    #[test]
    fn allows_public_and_private_unicast() {
        for addr in [
            "8.8.8.8",
            "10.0.0.5",
            "192.168.1.10",
            "2001:db8::1",
            "fd12::1",
        ] {
            assert_eq!(check(ip(addr), false), Ok(()), "{addr}");
        }
    }
}
