//! Which client a request comes from, as the login throttle counts it.
//!
//! The client is the socket's peer, unless the peer is one of the deployment's trusted proxies
//! (`auth.trusted_proxies`): then it is the nearest address in `X-Forwarded-For` that is not a
//! trusted proxy itself. Read from the right, since each proxy appends the address it received
//! from; everything left of that is whatever the client chose to write.
//!
//! IPv6 clients are counted by /64: one subscriber usually holds a whole /64 and could
//! otherwise take a fresh address for every attempt.

use std::net::{IpAddr, SocketAddr};

use tollgate_common::config::IpNetwork;

/// The client's address, given the peer, the `X-Forwarded-For` values in the order they came,
/// and the trusted proxies.
pub fn client_address<'a>(
    peer: IpAddr,
    forwarded_for: impl IntoIterator<Item = &'a str>,
    trusted_proxies: &[IpNetwork],
) -> IpAddr {
    let trusted = |ip: IpAddr| trusted_proxies.iter().any(|network| network.contains(ip));
    let mut client = peer.to_canonical();
    if !trusted(client) {
        return client;
    }
    let hops: Vec<&str> = forwarded_for
        .into_iter()
        .flat_map(|value| value.split(','))
        .collect();
    for hop in hops.into_iter().rev() {
        // A hop that is not an address cannot be told from a client's invention: stop at the
        // last proxy that was trusted.
        let Some(ip) = parse_hop(hop) else {
            return client;
        };
        client = ip;
        if !trusted(ip) {
            return ip;
        }
    }
    client
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`192.0.2.1:4711`,
/// `[2001:db8::1]:4711`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|addr| addr.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

/// The throttle's name for a client: an IPv4 address as is, an IPv6 address by its /64.
pub fn throttle_client(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            format!(
                "{:x}:{:x}:{:x}:{:x}::/64",
                segments[0], segments[1], segments[2], segments[3]
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn proxies() -> Vec<IpNetwork> {
        vec![
            "10.0.0.0/8".parse().unwrap(),
            "2001:db8:ff::/48".parse().unwrap(),
        ]
    }

    #[test]
    fn forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() {
        let forged = ["198.51.100.1"];
        assert_eq!(
            client_address(ip("203.0.113.7"), forged, &proxies()),
            ip("203.0.113.7")
        );
        assert_eq!(
            client_address(ip("203.0.113.7"), forged, &[]),
            ip("203.0.113.7")
        );
        assert_eq!(
            client_address(ip("10.1.2.3"), forged, &proxies()),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn the_nearest_untrusted_hop_is_the_client_whatever_it_wrote_before() {
        // The client wrote 192.0.2.66 itself; the first proxy appended the real address, the
        // second proxy the first one's.
        let headers = ["192.0.2.66, 203.0.113.9", "10.0.0.5"];
        assert_eq!(
            client_address(ip("10.0.0.6"), headers, &proxies()),
            ip("203.0.113.9")
        );
        // ports and IPv6 brackets are understood
        assert_eq!(
            client_address(
                ip("10.0.0.6"),
                ["[2001:db8::1]:4711, 10.0.0.5:80"],
                &proxies()
            ),
            ip("2001:db8::1")
        );
        // garbage stops the walk at the last trusted proxy
        assert_eq!(
            client_address(ip("10.0.0.6"), ["203.0.113.9, unknown"], &proxies()),
            ip("10.0.0.6")
        );
        // only proxies: the farthest one
        assert_eq!(
            client_address(ip("10.0.0.6"), ["10.0.0.5"], &proxies()),
            ip("10.0.0.5")
        );
        // no header: the proxy itself
        assert_eq!(
            client_address(ip("10.0.0.6"), [], &proxies()),
            ip("10.0.0.6")
        );
        // a dual-stack listener's IPv4-mapped peer is the IPv4 address
        assert_eq!(
            client_address(ip("::ffff:10.0.0.6"), ["203.0.113.9"], &proxies()),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        assert_eq!(throttle_client(ip("2001:db8:1:2::1")), "2001:db8:1:2::/64");
        assert_eq!(
            throttle_client(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            "2001:db8:1:2::/64"
        );
        assert_ne!(
            throttle_client(ip("2001:db8:1:3::1")),
            throttle_client(ip("2001:db8:1:2::1"))
        );
        assert_eq!(throttle_client(ip("203.0.113.7")), "203.0.113.7");
        assert_eq!(throttle_client(ip("::ffff:203.0.113.7")), "203.0.113.7");
    }
}
