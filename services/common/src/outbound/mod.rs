//! Calls to URLs that tenants choose (budget alert webhooks) must not reach inside the
//! platform's network.
//!
//! A tenant who could aim such a call at 127.0.0.1, a private address or a cloud's metadata
//! service would have the platform read or poke services that only it can reach. Every such
//! URL is checked twice:
//!
//! 1. when it is set ([`OutboundPolicy::check_url_and_resolve`]): http or https only, no user
//!    name or password, port 80, 443 or 1024 and above, no internal host name or address, and
//!    every address the name resolves to must be public. A name that does not resolve at that
//!    moment is accepted: a receiver may be configured before its DNS record exists, and the
//!    second check is the one that protects;
//! 2. on every connection ([`OutboundClient`]): the same checks of the URL, then a DNS resolver
//!    that drops internal addresses and fails when none remain, so that a name which resolved
//!    to a public address when it was set and resolves to 127.0.0.1 now (DNS rebinding), or a
//!    URL stored before these checks existed, is still refused. Redirects are not followed and
//!    no proxy is used, since either would reach an address nobody checked.
//!
//! What counts as internal is in [`address`]. `outbound.allow_hosts` ([`AllowedHost`]) opens
//! chosen names, addresses and networks for private deployments.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;

mod address;
mod allow;
mod client;

pub use address::{AddressClass, NameClass, classify, classify_name};
pub use allow::AllowedHost;
pub use client::OutboundClient;

use crate::config::OutboundConfig;

/// How long a URL's host name may take to resolve when the URL is set.
const SET_TIME_LOOKUP: Duration = Duration::from_secs(5);

/// Ports open without an allow-list entry: HTTP's own, and the unprivileged range where
/// receivers listen. The other privileged ports are mail, SSH and the like, which a request
/// body could be smuggled into.
fn default_port_allowed(port: u16) -> bool {
    port == 80 || port == 443 || port >= 1024
}

/// Why a URL may not be called.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundRefusal {
    #[error("it is not an absolute URL with a host")]
    NotAUrl,
    #[error("the scheme `{0}` is not allowed; use http or https")]
    Scheme(String),
    #[error("a user name or password in the URL is not allowed")]
    Credentials,
    #[error("port {0} is not allowed; use 80, 443 or 1024 to 65535")]
    Port(u16),
    #[error("`{host}` is not open on port {port}")]
    PortNotOpen { host: String, port: u16 },
    #[error("`{host}` {class}")]
    Name { host: String, class: NameClass },
    #[error("{address} is {class}")]
    Address {
        address: IpAddr,
        class: AddressClass,
    },
    #[error("`{host}` resolves to {address}, {class}")]
    ResolvesTo {
        host: String,
        address: IpAddr,
        class: AddressClass,
    },
    #[error("`{host}` resolves to no address that may be called ({refused})")]
    NoAllowedAddress {
        host: String,
        refused: RefusedAddresses,
    },
}

/// The addresses a name resolved to, each with why it was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedAddresses(pub Vec<(IpAddr, AddressClass)>);

impl fmt::Display for RefusedAddresses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("it resolves to none");
        }
        for (i, (address, class)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{address} is {class}")?;
        }
        Ok(())
    }
}

/// Which URLs tenants may have the platform call: public ones, and those the operator opened.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    allowed: Arc<[AllowedHost]>,
}

/// A URL's host, as the URL parser left it.
enum Host {
    /// Lower case, without a final dot.
    Name(String),
    Address(IpAddr),
}

/// The ports the allow-list opens on a host name.
enum NamePorts {
    Every,
    Only(Vec<u16>),
}

impl OutboundPolicy {
    pub fn new(config: &OutboundConfig) -> Self {
        OutboundPolicy {
            allowed: config.allow_hosts.iter().cloned().collect(),
        }
    }

    /// The checks that need no DNS: scheme, credentials, port, and a host that is neither an
    /// internal name nor an internal address. Returns the parsed URL, which is what must be
    /// called: parsing again elsewhere could read it differently.
    pub fn check_url(&self, url: &str) -> Result<Url, OutboundRefusal> {
        self.check(url).map(|(url, _)| url)
    }

    /// [`check_url`](Self::check_url), then every address the host name resolves to must be
    /// public (or opened by the allow-list). For the moment a URL is set.
    pub async fn check_url_and_resolve(&self, url: &str) -> Result<Url, OutboundRefusal> {
        self.check_url_and_resolve_with(url, lookup).await
    }

    async fn check_url_and_resolve_with<F, Fut>(
        &self,
        url: &str,
        lookup: F,
    ) -> Result<Url, OutboundRefusal>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = std::io::Result<Vec<IpAddr>>>,
    {
        let (url, host) = self.check(url)?;
        let Host::Name(name) = host else {
            return Ok(url);
        };
        if self.name_ports(&name).is_some() {
            return Ok(url);
        }
        // Not resolving (or too slowly) is accepted; every connection resolves and checks again.
        if let Ok(Ok(resolved)) = tokio::time::timeout(SET_TIME_LOOKUP, lookup(name.clone())).await
        {
            for address in resolved {
                if let Some(class) = self.resolved_refusal(address) {
                    return Err(OutboundRefusal::ResolvesTo {
                        host: name,
                        address,
                        class,
                    });
                }
            }
        }
        Ok(url)
    }

    fn check(&self, raw: &str) -> Result<(Url, Host), OutboundRefusal> {
        let url = Url::parse(raw).map_err(|_| OutboundRefusal::NotAUrl)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(OutboundRefusal::Scheme(url.scheme().to_owned()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(OutboundRefusal::Credentials);
        }
        let port = url
            .port_or_known_default()
            .ok_or(OutboundRefusal::NotAUrl)?;
        let host = host_of(&url).ok_or(OutboundRefusal::NotAUrl)?;
        match &host {
            Host::Address(address) => {
                if !self.address_listed(*address, Some(port)) {
                    if let Some(class) = classify(*address) {
                        return Err(OutboundRefusal::Address {
                            address: *address,
                            class,
                        });
                    }
                    if !default_port_allowed(port) {
                        return Err(OutboundRefusal::Port(port));
                    }
                }
            }
            Host::Name(name) => match self.name_ports(name) {
                Some(NamePorts::Every) => {}
                Some(NamePorts::Only(ports)) if ports.contains(&port) => {}
                // The resolver lets every address of a listed name through, whatever the port.
                Some(NamePorts::Only(_)) => {
                    return Err(OutboundRefusal::PortNotOpen {
                        host: name.clone(),
                        port,
                    });
                }
                None => {
                    if let Some(class) = classify_name(name) {
                        return Err(OutboundRefusal::Name {
                            host: name.clone(),
                            class,
                        });
                    }
                    if !default_port_allowed(port) {
                        return Err(OutboundRefusal::Port(port));
                    }
                }
            },
        }
        Ok((url, host))
    }

    /// The addresses `host` resolved to that may be called; an error naming them all when
    /// none may. For the connection itself, which knows the name but not the port.
    fn admit_resolved(
        &self,
        host: &str,
        resolved: Vec<IpAddr>,
    ) -> Result<Vec<IpAddr>, OutboundRefusal> {
        let name = normalized_name(host);
        if self.name_ports(&name).is_some() {
            return Ok(resolved);
        }
        let (mut admitted, mut refused) = (Vec::new(), Vec::new());
        for address in resolved {
            match self.resolved_refusal(address) {
                Some(class) => refused.push((address, class)),
                None => admitted.push(address),
            }
        }
        if admitted.is_empty() {
            Err(OutboundRefusal::NoAllowedAddress {
                host: name,
                refused: RefusedAddresses(refused),
            })
        } else {
            Ok(admitted)
        }
    }

    /// Why an address a name resolved to may not be called. Entries with a port do not count:
    /// the port is not known where names are resolved.
    fn resolved_refusal(&self, address: IpAddr) -> Option<AddressClass> {
        if self.address_listed(address, None) {
            None
        } else {
            classify(address)
        }
    }

    /// Whether the allow-list opens `address`, on `port` when it is known.
    fn address_listed(&self, address: IpAddr, port: Option<u16>) -> bool {
        let address = address.to_canonical();
        self.allowed.iter().any(|entry| match entry {
            AllowedHost::Address {
                address: listed,
                port: listed_port,
            } => {
                *listed == address
                    && match (listed_port, port) {
                        (None, _) => true,
                        (Some(listed), Some(port)) => *listed == port,
                        (Some(_), None) => false,
                    }
            }
            AllowedHost::Network(network) => network.contains(address),
            AllowedHost::Name { .. } => false,
        })
    }

    /// The ports the allow-list opens on host name `name`, or `None` when it does not list it.
    fn name_ports(&self, name: &str) -> Option<NamePorts> {
        let mut ports = Vec::new();
        let mut listed = false;
        for entry in self.allowed.iter() {
            if let AllowedHost::Name {
                name: listed_name,
                port,
            } = entry
                && listed_name == name
            {
                listed = true;
                match port {
                    None => return Some(NamePorts::Every),
                    Some(port) => ports.push(*port),
                }
            }
        }
        listed.then_some(NamePorts::Only(ports))
    }
}

/// The URL's host. The URL parser has already turned every IPv4 spelling (decimal
/// `2130706433`, octal `0177.0.0.1`, hexadecimal `0x7f.1`, shortened `127.1`) into dotted
/// decimal, so a host that does not read as one is a name.
fn host_of(url: &Url) -> Option<Host> {
    let host = url.host_str().filter(|host| !host.is_empty())?;
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6
            .parse::<Ipv6Addr>()
            .ok()
            .map(|v6| Host::Address(IpAddr::V6(v6)));
    }
    Some(match host.parse::<Ipv4Addr>() {
        Ok(v4) => Host::Address(IpAddr::V4(v4)),
        Err(_) => Host::Name(normalized_name(host)),
    })
}

/// A host name as it is compared: lower case, without a final dot.
fn normalized_name(host: &str) -> String {
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

/// The addresses `name` resolves to, through the system's resolver.
async fn lookup(name: String) -> std::io::Result<Vec<IpAddr>> {
    Ok(tokio::net::lookup_host((name.as_str(), 0))
        .await?
        .map(|socket| socket.ip())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str]) -> OutboundPolicy {
        OutboundPolicy::new(&OutboundConfig {
            allow_hosts: allow.iter().map(|entry| entry.parse().unwrap()).collect(),
        })
    }

    fn refusal(policy: &OutboundPolicy, url: &str) -> OutboundRefusal {
        match policy.check_url(url) {
            Ok(_) => panic!("{url} was accepted"),
            Err(refusal) => refusal,
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn every_spelling_of_an_internal_address_is_refused() {
        let strict = policy(&[]);
        for (url, address, class) in [
            ("http://127.0.0.1/", "127.0.0.1", AddressClass::Loopback),
            ("http://2130706433/", "127.0.0.1", AddressClass::Loopback),
            ("http://0177.0.0.1/", "127.0.0.1", AddressClass::Loopback),
            ("http://0x7f.0.0.1/", "127.0.0.1", AddressClass::Loopback),
            ("http://0x7f000001/", "127.0.0.1", AddressClass::Loopback),
            ("http://017700000001/", "127.0.0.1", AddressClass::Loopback),
            ("http://127.1/", "127.0.0.1", AddressClass::Loopback),
            ("http://127.0.0.1./", "127.0.0.1", AddressClass::Loopback),
            (
                "http://%31%32%37.0.0.1/",
                "127.0.0.1",
                AddressClass::Loopback,
            ),
            ("http://0/", "0.0.0.0", AddressClass::Unspecified),
            ("http://[::1]/", "::1", AddressClass::Loopback),
            ("http://[::]/", "::", AddressClass::Unspecified),
            (
                "http://[::ffff:127.0.0.1]/",
                "::ffff:127.0.0.1",
                AddressClass::Loopback,
            ),
            (
                "http://[::ffff:7f00:1]/",
                "::ffff:127.0.0.1",
                AddressClass::Loopback,
            ),
            (
                "http://[0:0:0:0:0:ffff:a9fe:a9fe]/",
                "::ffff:169.254.169.254",
                AddressClass::CloudMetadata,
            ),
            (
                "http://[64:ff9b::7f00:1]/",
                "64:ff9b::7f00:1",
                AddressClass::Loopback,
            ),
            (
                "http://[2002:a9fe:a9fe::1]/",
                "2002:a9fe:a9fe::1",
                AddressClass::CloudMetadata,
            ),
            (
                "http://[::127.0.0.1]/",
                "::127.0.0.1",
                AddressClass::Ipv4Compatible,
            ),
            (
                "http://169.254.169.254/latest/meta-data",
                "169.254.169.254",
                AddressClass::CloudMetadata,
            ),
            (
                "http://0xa9fea9fe/",
                "169.254.169.254",
                AddressClass::CloudMetadata,
            ),
            (
                "http://[fd00:ec2::254]/",
                "fd00:ec2::254",
                AddressClass::CloudMetadata,
            ),
            ("https://10.0.0.1/", "10.0.0.1", AddressClass::Private),
            (
                "https://172.16.5.4:8443/",
                "172.16.5.4",
                AddressClass::Private,
            ),
            ("https://192.168.0.1/", "192.168.0.1", AddressClass::Private),
            (
                "https://100.64.0.1/",
                "100.64.0.1",
                AddressClass::SharedAddressSpace,
            ),
            ("https://[fe80::1]/", "fe80::1", AddressClass::LinkLocal),
            ("https://[fc00::1]/", "fc00::1", AddressClass::UniqueLocal),
            ("https://224.0.0.1/", "224.0.0.1", AddressClass::Multicast),
            (
                "https://255.255.255.255/",
                "255.255.255.255",
                AddressClass::Broadcast,
            ),
            (
                "https://192.0.2.1/",
                "192.0.2.1",
                AddressClass::Documentation,
            ),
            (
                "https://[2001:db8::1]/",
                "2001:db8::1",
                AddressClass::Documentation,
            ),
            ("https://240.0.0.1/", "240.0.0.1", AddressClass::Reserved),
        ] {
            assert_eq!(
                refusal(&strict, url),
                OutboundRefusal::Address {
                    address: ip(address),
                    class
                },
                "{url}"
            );
        }
    }

    #[test]
    fn internal_names_other_schemes_credentials_and_odd_ports_are_refused() {
        let strict = policy(&[]);
        for (url, expected) in [
            (
                "http://localhost/",
                OutboundRefusal::Name {
                    host: "localhost".into(),
                    class: NameClass::Localhost,
                },
            ),
            (
                "http://LOCALHOST.:8080/",
                OutboundRefusal::Name {
                    host: "localhost".into(),
                    class: NameClass::Localhost,
                },
            ),
            (
                "http://metadata.google.internal/computeMetadata/v1/",
                OutboundRefusal::Name {
                    host: "metadata.google.internal".into(),
                    class: NameClass::CloudMetadata,
                },
            ),
            (
                "http://ⓛⓞⓒⓐⓛⓗⓞⓢⓣ/",
                OutboundRefusal::Name {
                    host: "localhost".into(),
                    class: NameClass::Localhost,
                },
            ),
            (
                "http://metadata/",
                OutboundRefusal::Name {
                    host: "metadata".into(),
                    class: NameClass::Unqualified,
                },
            ),
            (
                "ftp://hooks.example.com/",
                OutboundRefusal::Scheme("ftp".into()),
            ),
            ("file:///etc/passwd", OutboundRefusal::Scheme("file".into())),
            (
                "gopher://hooks.example.com/",
                OutboundRefusal::Scheme("gopher".into()),
            ),
            (
                "ws://hooks.example.com/",
                OutboundRefusal::Scheme("ws".into()),
            ),
            (
                "https://user:pass@hooks.example.com/",
                OutboundRefusal::Credentials,
            ),
            (
                "https://user@hooks.example.com/",
                OutboundRefusal::Credentials,
            ),
            (
                "https://hooks.example.com@127.0.0.1/",
                OutboundRefusal::Credentials,
            ),
            ("http://hooks.example.com:25/", OutboundRefusal::Port(25)),
            ("http://hooks.example.com:22/", OutboundRefusal::Port(22)),
            ("https://8.8.8.8:445/", OutboundRefusal::Port(445)),
            ("not a url", OutboundRefusal::NotAUrl),
            ("http://", OutboundRefusal::NotAUrl),
            ("/relative/path", OutboundRefusal::NotAUrl),
        ] {
            assert_eq!(refusal(&strict, url), expected, "{url}");
        }
    }

    #[test]
    fn public_urls_pass() {
        let strict = policy(&[]);
        for url in [
            "https://hooks.example.com/tollgate",
            "http://hooks.example.com:8080/x?y=1",
            "https://hooks.example.com:8443/",
            "http://8.8.8.8/",
            "https://[2606:4700:4700::1111]/",
            "http://[::ffff:8.8.8.8]:1024/",
        ] {
            assert!(strict.check_url(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn the_allow_list_opens_exactly_what_it_names() {
        let open = policy(&[
            "127.0.0.1:9000",
            "hooks.internal.example:8080",
            "10.20.0.0/16",
            "fd00::5",
            "relay.corp",
        ]);
        for url in [
            "http://127.0.0.1:9000/hook",
            "http://[::ffff:127.0.0.1]:9000/hook",
            "http://hooks.internal.example:8080/",
            "http://10.20.3.4:22/",
            "http://[fd00::5]:7000/",
            "http://relay.corp:25/",
        ] {
            assert!(open.check_url(url).is_ok(), "{url}");
        }
        assert_eq!(
            refusal(&open, "http://127.0.0.1:9001/"),
            OutboundRefusal::Address {
                address: ip("127.0.0.1"),
                class: AddressClass::Loopback
            }
        );
        assert_eq!(
            refusal(&open, "http://hooks.internal.example:8081/"),
            OutboundRefusal::PortNotOpen {
                host: "hooks.internal.example".into(),
                port: 8081
            }
        );
        assert!(matches!(
            refusal(&open, "http://10.21.0.1/"),
            OutboundRefusal::Address { .. }
        ));
        assert!(matches!(
            refusal(&open, "http://[fd00::6]/"),
            OutboundRefusal::Address { .. }
        ));
    }

    #[test]
    fn resolved_addresses_are_filtered_and_a_name_with_none_left_fails() {
        let open = policy(&["127.0.0.1:9000", "10.20.0.0/16", "hooks.internal.example"]);
        assert_eq!(
            open.admit_resolved("evil.example", vec![ip("127.0.0.1"), ip("8.8.8.8")]),
            Ok(vec![ip("8.8.8.8")])
        );
        assert_eq!(
            open.admit_resolved(
                "evil.example",
                vec![ip("127.0.0.1"), ip("::ffff:169.254.169.254")]
            ),
            Err(OutboundRefusal::NoAllowedAddress {
                host: "evil.example".into(),
                refused: RefusedAddresses(vec![
                    (ip("127.0.0.1"), AddressClass::Loopback),
                    (ip("::ffff:169.254.169.254"), AddressClass::CloudMetadata),
                ]),
            }),
            "an address opened only on a port is not opened to names"
        );
        assert_eq!(
            open.admit_resolved("evil.example", vec![ip("10.20.0.7")]),
            Ok(vec![ip("10.20.0.7")])
        );
        assert_eq!(
            open.admit_resolved("Hooks.Internal.Example.", vec![ip("192.168.1.1")]),
            Ok(vec![ip("192.168.1.1")])
        );
        let message = open
            .admit_resolved("evil.example", vec![ip("127.0.0.1")])
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "`evil.example` resolves to no address that may be called (127.0.0.1 is a loopback address)"
        );
    }

    #[tokio::test]
    async fn at_set_time_every_resolved_address_must_be_public() {
        let strict = policy(&[]);
        let resolving_to = |addresses: Vec<IpAddr>| {
            move |_: String| std::future::ready(Ok::<_, std::io::Error>(addresses))
        };
        assert_eq!(
            strict
                .check_url_and_resolve_with(
                    "https://rebind.example.com/",
                    resolving_to(vec![ip("8.8.8.8"), ip("10.0.0.1")])
                )
                .await,
            Err(OutboundRefusal::ResolvesTo {
                host: "rebind.example.com".into(),
                address: ip("10.0.0.1"),
                class: AddressClass::Private
            })
        );
        assert!(
            strict
                .check_url_and_resolve_with(
                    "https://hooks.example.com/",
                    resolving_to(vec![ip("8.8.8.8")])
                )
                .await
                .is_ok()
        );
        let unresolvable = |_: String| {
            std::future::ready(Err::<Vec<IpAddr>, _>(std::io::Error::other("NXDOMAIN")))
        };
        assert!(
            strict
                .check_url_and_resolve_with("https://not-yet.example.com/", unresolvable)
                .await
                .is_ok(),
            "a name that does not resolve yet is checked when it is called"
        );
        let listed = policy(&["hooks.internal.example"]);
        assert!(
            listed
                .check_url_and_resolve_with(
                    "https://hooks.internal.example/",
                    resolving_to(vec![ip("10.0.0.1")])
                )
                .await
                .is_ok()
        );
        assert!(matches!(
            strict.check_url_and_resolve("http://localhost:8080/").await,
            Err(OutboundRefusal::Name { .. })
        ));
    }
}
