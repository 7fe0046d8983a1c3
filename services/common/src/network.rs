//! Blocks of IP addresses (`10.0.0.0/8`, `fc00::/7`): the ranges outbound calls refuse, the
//! networks an operator opens to them, and the proxies trusted to name a client.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// A block of addresses: an address and how many leading bits of it are fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNetwork {
    address: IpAddr,
    prefix: u8,
}

impl IpNetwork {
    /// `None` when `prefix` is longer than the address or `address` has bits set past it
    /// (`10.0.0.1/8` is more likely a typing error than a way to write 10.0.0.0/8).
    pub fn new(address: IpAddr, prefix: u8) -> Option<IpNetwork> {
        let address = address.to_canonical();
        let network = IpNetwork { address, prefix };
        let bits = match address {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        (prefix <= bits && network.first() == address).then_some(network)
    }

    pub(crate) const fn v4(address: Ipv4Addr, prefix: u8) -> IpNetwork {
        IpNetwork {
            address: IpAddr::V4(address),
            prefix,
        }
    }

    pub(crate) const fn v6(address: Ipv6Addr, prefix: u8) -> IpNetwork {
        IpNetwork {
            address: IpAddr::V6(address),
            prefix,
        }
    }

    /// Whether `ip` is in the block; an IPv4-mapped IPv6 address counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip.to_canonical()) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(network) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(network) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }

    /// The block's first address.
    fn first(&self) -> IpAddr {
        match self.address {
            IpAddr::V4(address) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(address) & mask))
            }
            IpAddr::V6(address) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(address) & mask))
            }
        }
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

impl FromStr for IpNetwork {
    type Err = String;

    /// `address/prefix`, or an address alone (a block of one).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address.parse().map_err(|_| {
            format!("`{text}` is not an IP address or a network such as 10.0.0.0/8")
        })?;
        let bits = if address.to_canonical().is_ipv4() {
            32
        } else {
            128
        };
        let prefix = match prefix {
            None => bits,
            Some(prefix) => prefix
                .parse::<u8>()
                .map_err(|_| format!("`{text}`: the prefix length must be 0 to {bits}"))?,
        };
        IpNetwork::new(address, prefix).ok_or_else(|| {
            format!(
                "`{text}` is not a network: the prefix is longer than the address, or the address has bits set beyond it"
            )
        })
    }
}

impl<'de> Deserialize<'de> for IpNetwork {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> IpNetwork {
        text.parse().unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn networks_contain_their_addresses_and_no_others() {
        let private = net("10.0.0.0/8");
        assert!(private.contains(ip("10.200.3.4")));
        assert!(private.contains(ip("::ffff:10.0.0.1")));
        assert!(!private.contains(ip("11.0.0.1")));
        assert!(!private.contains(ip("::1")));
        let host = net("192.0.2.7");
        assert!(host.contains(ip("192.0.2.7")));
        assert!(!host.contains(ip("192.0.2.8")));
        let v6 = net("2001:db8:1::/48");
        assert!(v6.contains(ip("2001:db8:1:ffff::9")));
        assert!(!v6.contains(ip("2001:db8:2::1")));
        assert!(net("0.0.0.0/0").contains(ip("203.0.113.1")));
        assert!(net("::/0").contains(ip("2001:db8::1")));
    }

    #[test]
    fn malformed_networks_are_refused() {
        for bad in [
            "10.0.0.0/33",
            "2001:db8::/129",
            "10.0.0/8",
            "proxy",
            "10.0.0.0/x",
            "10.0.0.1/8",
            "",
        ] {
            assert!(bad.parse::<IpNetwork>().is_err(), "{bad}");
        }
    }
}
