//! Which addresses and host names lie inside a network rather than on the public internet.
//!
//! Every range that is not globally reachable unicast is named here, from IANA's
//! special-purpose registries (<https://www.iana.org/assignments/iana-ipv4-special-registry>,
//! <https://www.iana.org/assignments/iana-ipv6-special-registry>), and IPv6 outside global
//! unicast (2000::/3) is refused whole, so that a range assigned later is refused until it is
//! listed. IPv6 forms that carry an IPv4 address (IPv4-mapped, NAT64, 6to4) are judged by the
//! address they carry, because a dual-stack socket or a translator delivers them there.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::network::IpNetwork;

/// Why an address is refused as a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// 0.0.0.0/8 and `::`; Linux connects 0.0.0.0 to the machine itself.
    Unspecified,
    Loopback,
    /// 10/8, 172.16/12, 192.168/16, and local-use NAT64 (64:ff9b:1::/48), which translates
    /// into them.
    Private,
    /// 100.64/10, carrier-grade NAT; Alibaba Cloud's metadata service is inside it.
    SharedAddressSpace,
    /// 169.254/16, fe80::/10.
    LinkLocal,
    /// The instance metadata services of the large clouds (all also inside a range above).
    CloudMetadata,
    Multicast,
    Broadcast,
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20.
    Documentation,
    /// 198.18/15.
    Benchmarking,
    /// 192.0.0/24 and 2001::/23 (Teredo, ORCHID, ...): protocol machinery, not servers.
    ProtocolAssignment,
    /// fc00::/7.
    UniqueLocal,
    /// fec0::/10, deprecated but still routed inside some networks.
    SiteLocal,
    /// ::/96, deprecated; nothing routes it to the IPv4 address it carries.
    Ipv4Compatible,
    /// 240/4, the 6to4 relay anycast 192.88.99/24, discard-only 100::/64 and every IPv6
    /// address outside global unicast.
    Reserved,
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressClass::Unspecified => "an unspecified address",
            AddressClass::Loopback => "a loopback address",
            AddressClass::Private => "a private address",
            AddressClass::SharedAddressSpace => "a carrier-grade NAT address",
            AddressClass::LinkLocal => "a link-local address",
            AddressClass::CloudMetadata => "a cloud metadata address",
            AddressClass::Multicast => "a multicast address",
            AddressClass::Broadcast => "the broadcast address",
            AddressClass::Documentation => "a documentation address",
            AddressClass::Benchmarking => "a benchmarking address",
            AddressClass::ProtocolAssignment => "a protocol assignment address",
            AddressClass::UniqueLocal => "a unique-local address",
            AddressClass::SiteLocal => "a site-local address",
            AddressClass::Ipv4Compatible => "an IPv4-compatible address",
            AddressClass::Reserved => "a reserved address",
        })
    }
}

/// The metadata services are inside refused ranges anyway; naming them makes the refusal say so.
const CLOUD_METADATA: [IpAddr; 5] = [
    // AWS, Google Cloud, Azure, OpenStack, DigitalOcean, and most others.
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    // AWS ECS task metadata.
    IpAddr::V4(Ipv4Addr::new(169, 254, 170, 2)),
    // Alibaba Cloud.
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
    // Oracle Cloud.
    IpAddr::V4(Ipv4Addr::new(192, 0, 0, 192)),
    // AWS over IPv6.
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)),
];

/// Checked in order: the broadcast address before the reserved block holding it.
const V4_RANGES: [(IpNetwork, AddressClass); 16] = [
    (
        IpNetwork::v4(Ipv4Addr::new(0, 0, 0, 0), 8),
        AddressClass::Unspecified,
    ),
    (
        IpNetwork::v4(Ipv4Addr::new(10, 0, 0, 0), 8),
        AddressClass::Private,
    ),
    (
        IpNetwork::v4(Ipv4Addr::new(100, 64, 0, 0), 10),
        AddressClass::SharedAddressSpace,
    ),
    (
        IpNetwork::v4(Ipv4Addr::new(127, 0, 0, 0), 8),
        AddressClass::Loopback,
    ),
    (
        IpNetwork::v4(Ipv4Addr::new(169, 254, 0, 0), 16),
        AddressClass::LinkLocal,
    ),
    (
        IpNetwork::v4(Ipv4Addr::new(172, 16, 0, 0), 12),
        AddressClass::Private,
    ),
    (
        IpNetwork::v4(Ipv4Addr::new(192, 0, 0, 0), 24),
        AddressClass::ProtocolAssignment,
    ),
    (
        IpNetwork::v4(Ipv4Addr::new(192, 0, 2, 0), 24),
        AddressClass::Documentation,
    ),
    (
        IpNetwork::v4(Ipv4Addr::new(192, 88, 99, 0), 24),
        AddressClass::Reserved,
    ),
    (
        IpNetwork::v4(Ipv4Addr::new(192, 168, 0, 0), 16),
        AddressClass::Private,
    ),
    (
        IpNetwork::v4(Ipv4Addr::new(198, 18, 0, 0), 15),
        AddressClass::Benchmarking,
    ),
    (
        IpNetwork::v4(Ipv4Addr::new(198, 51, 100, 0), 24),
        AddressClass::Documentation,
    ),
    (
        IpNetwork::v4(Ipv4Addr::new(203, 0, 113, 0), 24),
        AddressClass::Documentation,
    ),
    (
        IpNetwork::v4(Ipv4Addr::new(224, 0, 0, 0), 4),
        AddressClass::Multicast,
    ),
    (
        IpNetwork::v4(Ipv4Addr::new(255, 255, 255, 255), 32),
        AddressClass::Broadcast,
    ),
    (
        IpNetwork::v4(Ipv4Addr::new(240, 0, 0, 0), 4),
        AddressClass::Reserved,
    ),
];

/// Checked in order, after the forms that carry an IPv4 address; `::` and `::1` before the
/// IPv4-compatible block holding them.
const V6_RANGES: [(IpNetwork, AddressClass); 12] = [
    (
        IpNetwork::v6(Ipv6Addr::UNSPECIFIED, 128),
        AddressClass::Unspecified,
    ),
    (
        IpNetwork::v6(Ipv6Addr::LOCALHOST, 128),
        AddressClass::Loopback,
    ),
    (
        IpNetwork::v6(Ipv6Addr::UNSPECIFIED, 96),
        AddressClass::Ipv4Compatible,
    ),
    (
        IpNetwork::v6(Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48),
        AddressClass::Private,
    ),
    (
        IpNetwork::v6(Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64),
        AddressClass::Reserved,
    ),
    (
        IpNetwork::v6(Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23),
        AddressClass::ProtocolAssignment,
    ),
    (
        IpNetwork::v6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32),
        AddressClass::Documentation,
    ),
    (
        IpNetwork::v6(Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20),
        AddressClass::Documentation,
    ),
    (
        IpNetwork::v6(Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7),
        AddressClass::UniqueLocal,
    ),
    (
        IpNetwork::v6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10),
        AddressClass::LinkLocal,
    ),
    (
        IpNetwork::v6(Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10),
        AddressClass::SiteLocal,
    ),
    (
        IpNetwork::v6(Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8),
        AddressClass::Multicast,
    ),
];

/// Global unicast: the only IPv6 block that reaches the internet.
const V6_GLOBAL: IpNetwork = IpNetwork::v6(Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3);

/// Why `ip` may not be called, or `None` for a public address.
pub fn classify(ip: IpAddr) -> Option<AddressClass> {
    let ip = match ip {
        IpAddr::V6(v6) => carried_ipv4(v6).map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    };
    if CLOUD_METADATA.contains(&ip) {
        return Some(AddressClass::CloudMetadata);
    }
    let ranges: &[(IpNetwork, AddressClass)] = match ip {
        IpAddr::V4(_) => &V4_RANGES,
        IpAddr::V6(_) => &V6_RANGES,
    };
    if let Some((_, class)) = ranges.iter().find(|(network, _)| network.contains(ip)) {
        return Some(*class);
    }
    (ip.is_ipv6() && !V6_GLOBAL.contains(ip)).then_some(AddressClass::Reserved)
}

/// The IPv4 address an IPv6 address is delivered to: IPv4-mapped (::ffff:0:0/96), NAT64's
/// well-known prefix (64:ff9b::/96) and 6to4 (2002::/16).
fn carried_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let from = |high: u16, low: u16| Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
    match s {
        [0x64, 0xff9b, 0, 0, 0, 0, high, low] => Some(from(high, low)),
        [0x2002, high, low, ..] => Some(from(high, low)),
        _ => None,
    }
}

/// Why a host name may not be called whatever it resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameClass {
    /// `localhost` and its subdomains (RFC 6761).
    Localhost,
    /// A cloud's metadata service by name.
    CloudMetadata,
    /// `.local`, `.internal`, `.home.arpa` and the like: names only a private network resolves.
    PrivateUse,
    /// A name without a dot: the resolver's search domains decide what it means.
    Unqualified,
}

impl fmt::Display for NameClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameClass::Localhost => "names this machine",
            NameClass::CloudMetadata => "is a cloud metadata service",
            NameClass::PrivateUse => "is in a private-use domain",
            NameClass::Unqualified => "is not a fully qualified domain name",
        })
    }
}

const CLOUD_METADATA_NAMES: [&str; 4] = [
    "metadata.google.internal",
    "metadata.goog",
    "instance-data.ec2.internal",
    "metadata.tencentyun.com",
];

/// Suffixes reserved for, or conventionally used by, private networks (RFC 6762 appendix G,
/// RFC 8375, ICANN's `.internal`).
const PRIVATE_USE_SUFFIXES: [&str; 9] = [
    "local",
    "localdomain",
    "internal",
    "intranet",
    "private",
    "corp",
    "home",
    "lan",
    "home.arpa",
];

/// Why the host name `name` may not be called, or `None`; `name` is lower case.
pub fn classify_name(name: &str) -> Option<NameClass> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let under = |suffix: &str| {
        name == suffix
            || name
                .strip_suffix(suffix)
                .is_some_and(|head| head.ends_with('.'))
    };
    if under("localhost") {
        Some(NameClass::Localhost)
    } else if CLOUD_METADATA_NAMES.contains(&name) {
        Some(NameClass::CloudMetadata)
    } else if PRIVATE_USE_SUFFIXES.iter().any(|suffix| under(suffix)) {
        Some(NameClass::PrivateUse)
    } else if !name.contains('.') {
        Some(NameClass::Unqualified)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(ip: &str) -> Option<AddressClass> {
        classify(ip.parse().unwrap())
    }

    #[test]
    fn every_internal_ipv4_range_is_refused() {
        use AddressClass::*;
        for (ip, expected) in [
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Unspecified),
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("10.0.0.1", Private),
            ("10.255.255.255", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.168.1.1", Private),
            ("100.64.0.1", SharedAddressSpace),
            ("100.127.255.255", SharedAddressSpace),
            ("169.254.0.1", LinkLocal),
            ("169.254.169.254", CloudMetadata),
            ("169.254.170.2", CloudMetadata),
            ("100.100.100.200", CloudMetadata),
            ("192.0.0.192", CloudMetadata),
            ("192.0.0.8", ProtocolAssignment),
            ("192.0.2.10", Documentation),
            ("198.51.100.7", Documentation),
            ("203.0.113.200", Documentation),
            ("198.18.0.1", Benchmarking),
            ("198.19.255.255", Benchmarking),
            ("192.88.99.1", Reserved),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("240.0.0.1", Reserved),
            ("255.255.255.254", Reserved),
            ("255.255.255.255", Broadcast),
        ] {
            assert_eq!(class(ip), Some(expected), "{ip}");
        }
    }

    #[test]
    fn public_ipv4_addresses_and_the_neighbours_of_internal_ranges_pass() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
        ] {
            assert_eq!(class(ip), None, "{ip}");
        }
    }

    #[test]
    fn every_internal_ipv6_range_is_refused() {
        use AddressClass::*;
        for (ip, expected) in [
            ("::", Unspecified),
            ("::1", Loopback),
            ("::127.0.0.1", Ipv4Compatible),
            ("::8.8.8.8", Ipv4Compatible),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("fec0::1", SiteLocal),
            ("fc00::1", UniqueLocal),
            ("fd12:3456::1", UniqueLocal),
            ("fd00:ec2::254", CloudMetadata),
            ("ff02::1", Multicast),
            ("2001:db8::1", Documentation),
            ("3fff::1", Documentation),
            ("2001::1", ProtocolAssignment),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", ProtocolAssignment),
            ("2001:2::1", ProtocolAssignment),
            ("100::1", Reserved),
            ("64:ff9b:1::a00:1", Private),
            ("5f00::1", Reserved),
            ("4000::1", Reserved),
            ("::2", Ipv4Compatible),
        ] {
            assert_eq!(class(ip), Some(expected), "{ip}");
        }
    }

    #[test]
    fn ipv6_forms_carrying_an_ipv4_address_are_judged_by_it() {
        use AddressClass::*;
        for (ip, expected) in [
            // IPv4-mapped, in both spellings
            ("::ffff:127.0.0.1", Some(Loopback)),
            ("::ffff:7f00:1", Some(Loopback)),
            ("::ffff:10.1.2.3", Some(Private)),
            ("::ffff:169.254.169.254", Some(CloudMetadata)),
            ("::ffff:0.0.0.0", Some(Unspecified)),
            ("::ffff:8.8.8.8", None),
            // NAT64, well-known prefix
            ("64:ff9b::127.0.0.1", Some(Loopback)),
            ("64:ff9b::a9fe:a9fe", Some(CloudMetadata)),
            ("64:ff9b::c0a8:101", Some(Private)),
            ("64:ff9b::808:808", None),
            // 6to4
            ("2002:7f00:1::1", Some(Loopback)),
            ("2002:a9fe:a9fe::", Some(CloudMetadata)),
            ("2002:c0a8:101::1", Some(Private)),
            ("2002:808:808::1", None),
        ] {
            assert_eq!(class(ip), expected, "{ip}");
        }
    }

    #[test]
    fn public_ipv6_addresses_pass() {
        for ip in [
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "2001:200::1",
        ] {
            assert_eq!(class(ip), None, "{ip}");
        }
    }

    #[test]
    fn internal_names_are_refused_whatever_they_resolve_to() {
        use NameClass::*;
        for (name, expected) in [
            ("localhost", Some(Localhost)),
            ("localhost.", Some(Localhost)),
            ("api.localhost", Some(Localhost)),
            ("metadata.google.internal", Some(CloudMetadata)),
            ("metadata.goog", Some(CloudMetadata)),
            ("instance-data.ec2.internal", Some(CloudMetadata)),
            ("printer.local", Some(PrivateUse)),
            ("db.internal", Some(PrivateUse)),
            ("router.home.arpa", Some(PrivateUse)),
            ("box.localdomain", Some(PrivateUse)),
            ("metadata", Some(Unqualified)),
            ("redis", Some(Unqualified)),
            ("hooks.example.com", None),
            ("notlocalhost.example", None),
            ("internal.example.com", None),
            ("example.com.", None),
        ] {
            assert_eq!(classify_name(name), expected, "{name}");
        }
    }

    #[test]
    fn networks_contain_their_addresses_and_refuse_set_host_bits() {
        let network = IpNetwork::new("10.20.0.0".parse().unwrap(), 16).unwrap();
        assert!(network.contains("10.20.255.1".parse().unwrap()));
        assert!(network.contains("::ffff:10.20.0.9".parse().unwrap()));
        assert!(!network.contains("10.21.0.1".parse().unwrap()));
        assert!(!network.contains("fd00::1".parse().unwrap()));
        assert_eq!(IpNetwork::new("10.20.0.1".parse().unwrap(), 16), None);
        assert_eq!(IpNetwork::new("10.0.0.0".parse().unwrap(), 33), None);
        let v6 = IpNetwork::new("fd00:1::".parse().unwrap(), 32).unwrap();
        assert!(v6.contains("fd00:1::5".parse().unwrap()));
        assert!(!v6.contains("fd00:2::5".parse().unwrap()));
        let everything = IpNetwork::new("0.0.0.0".parse().unwrap(), 0).unwrap();
        assert!(everything.contains("203.0.113.1".parse().unwrap()));
    }
}
