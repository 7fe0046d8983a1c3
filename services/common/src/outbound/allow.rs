//! The entries of `outbound.allow_hosts`: what an operator opens, inside a private deployment,
//! to the URLs tenants choose.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use serde::Deserialize;

use crate::network::IpNetwork;

/// One entry of `outbound.allow_hosts`, written `hooks.internal.example`,
/// `hooks.internal.example:9000`, `10.1.2.3`, `10.1.2.3:9000`, `[fd00::5]:9000` or
/// `10.20.0.0/16`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum AllowedHost {
    /// A host name, on one port or on every port: a URL naming it is called whatever the name
    /// resolves to, so only list names whose DNS the operator controls.
    Name { name: String, port: Option<u16> },
    /// One address, on one port or on every port. With a port it matches only URLs that name
    /// the address itself: a name is resolved without knowing the port it will be called on.
    Address { address: IpAddr, port: Option<u16> },
    /// A block of addresses on every port, whether a URL names them or a name resolves to them.
    Network(IpNetwork),
}

impl FromStr for AllowedHost {
    type Err = String;

    fn from_str(entry: &str) -> Result<Self, String> {
        let entry = entry.trim();
        if entry.is_empty() {
            return Err("an entry must not be empty".into());
        }
        if entry.contains("://") {
            return Err(format!(
                "`{entry}`: write the host alone, without a scheme or path"
            ));
        }
        if let Some((address, prefix)) = entry.split_once('/') {
            let not_a_network = || {
                format!(
                    "`{entry}` is not a network; write an address and a prefix length, such as 10.20.0.0/16"
                )
            };
            let address: IpAddr = address.parse().map_err(|_| not_a_network())?;
            let prefix: u8 = prefix.parse().map_err(|_| not_a_network())?;
            return IpNetwork::new(address, prefix)
                .map(AllowedHost::Network)
                .ok_or_else(|| {
                    format!(
                        "`{entry}` is not a network: the prefix is longer than the address, or the address has bits set beyond it"
                    )
                });
        }
        if let Ok(address) = entry.parse::<IpAddr>() {
            return Ok(AllowedHost::Address {
                address: address.to_canonical(),
                port: None,
            });
        }
        if let Ok(socket) = entry.parse::<SocketAddr>() {
            return Ok(AllowedHost::Address {
                address: socket.ip().to_canonical(),
                port: Some(nonzero_port(entry, socket.port())?),
            });
        }
        if let Some(inner) = entry.strip_prefix('[') {
            let address = inner
                .strip_suffix(']')
                .and_then(|a| a.parse::<IpAddr>().ok());
            return match address {
                Some(address) => Ok(AllowedHost::Address {
                    address: address.to_canonical(),
                    port: None,
                }),
                None => Err(format!(
                    "`{entry}` is not an IPv6 address in brackets, with or without a port"
                )),
            };
        }
        let (name, port) = match entry.rsplit_once(':') {
            Some((name, port)) => {
                let port = port
                    .parse::<u16>()
                    .map_err(|_| format!("`{entry}`: the port must be a number from 1 to 65535"))?;
                (name, Some(nonzero_port(entry, port)?))
            }
            None => (entry, None),
        };
        Ok(AllowedHost::Name {
            name: host_name(entry, name)?,
            port,
        })
    }
}

impl TryFrom<String> for AllowedHost {
    type Error = String;

    fn try_from(entry: String) -> Result<Self, String> {
        entry.parse()
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllowedHost::Name { name, port: None } => f.write_str(name),
            AllowedHost::Name {
                name,
                port: Some(port),
            } => write!(f, "{name}:{port}"),
            AllowedHost::Address {
                address,
                port: None,
            } => write!(f, "{address}"),
            AllowedHost::Address {
                address,
                port: Some(port),
            } => write!(f, "{}", SocketAddr::new(*address, *port)),
            AllowedHost::Network(network) => write!(f, "{network}"),
        }
    }
}

fn nonzero_port(entry: &str, port: u16) -> Result<u16, String> {
    if port == 0 {
        Err(format!(
            "`{entry}`: the port must be a number from 1 to 65535"
        ))
    } else {
        Ok(port)
    }
}

/// `name` in the form URLs carry it: lower case, without a final dot.
fn host_name(entry: &str, name: &str) -> Result<String, String> {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if name.contains('*') {
        return Err(format!(
            "`{entry}`: wildcards are not supported; list each name, or the network its addresses are in"
        ));
    }
    if !name.is_ascii() {
        return Err(format!(
            "`{entry}`: write an international name in its xn-- form"
        ));
    }
    let labels: Vec<&str> = name.split('.').collect();
    let valid_label = |label: &&str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if name.len() > 253 || !labels.iter().all(valid_label) {
        return Err(format!(
            "`{entry}` is not a host name, an address, an address with a port, or a network"
        ));
    }
    // URL parsers read a name ending in a number as an IPv4 address (`2130706433`, `0x7f.1`),
    // so such an entry would never match the name a URL carries.
    if labels
        .last()
        .is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit()) || last.starts_with("0x"))
    {
        return Err(format!(
            "`{entry}` reads as an IPv4 address; write the address in dotted decimal"
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(entry: &str) -> Result<AllowedHost, String> {
        entry.parse()
    }

    #[test]
    fn every_form_of_entry_parses() {
        assert_eq!(
            parse("Hooks.Internal.Example.").unwrap(),
            AllowedHost::Name {
                name: "hooks.internal.example".into(),
                port: None
            }
        );
        assert_eq!(
            parse("hooks.internal.example:9000").unwrap(),
            AllowedHost::Name {
                name: "hooks.internal.example".into(),
                port: Some(9000)
            }
        );
        assert_eq!(
            parse("127.0.0.1:9000").unwrap(),
            AllowedHost::Address {
                address: "127.0.0.1".parse().unwrap(),
                port: Some(9000)
            }
        );
        assert_eq!(
            parse("10.1.2.3").unwrap(),
            AllowedHost::Address {
                address: "10.1.2.3".parse().unwrap(),
                port: None
            }
        );
        assert_eq!(
            parse("[fd00::5]:9000").unwrap(),
            AllowedHost::Address {
                address: "fd00::5".parse().unwrap(),
                port: Some(9000)
            }
        );
        assert_eq!(
            parse("[fd00::5]").unwrap(),
            AllowedHost::Address {
                address: "fd00::5".parse().unwrap(),
                port: None
            }
        );
        assert_eq!(
            parse("::ffff:10.0.0.1").unwrap(),
            AllowedHost::Address {
                address: "10.0.0.1".parse().unwrap(),
                port: None
            },
            "IPv4-mapped addresses are kept as the IPv4 address they are"
        );
        let network = parse("10.20.0.0/16").unwrap();
        assert_eq!(network.to_string(), "10.20.0.0/16");
        assert_eq!(parse("fd00::/8").unwrap().to_string(), "fd00::/8");
    }

    #[test]
    fn malformed_entries_say_what_is_wrong() {
        for (entry, says) in [
            ("", "empty"),
            ("10.20.0.1/16", "bits set"),
            ("10.0.0.0/33", "prefix"),
            ("10.0.0.0/x", "prefix length"),
            ("hooks.example:0", "1 to 65535"),
            ("hooks.example:http", "1 to 65535"),
            ("127.0.0.1:0", "1 to 65535"),
            ("[fd00::5", "brackets"),
            ("*.internal.example", "wildcards"),
            ("hooks..example", "not a host name"),
            ("-hooks.example", "not a host name"),
            ("http://hooks.example", "without a scheme"),
            ("2130706433", "IPv4"),
            ("0x7f.1", "IPv4"),
            ("hôte.example", "xn--"),
        ] {
            let err = parse(entry).unwrap_err();
            assert!(err.contains(says), "{entry}: {err}");
        }
    }
}
