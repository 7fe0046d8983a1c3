//! The HTTP client for URLs tenants choose, which checks each destination as it connects.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::{OutboundPolicy, OutboundRefusal, lookup};

/// Calls tenant-chosen URLs under an [`OutboundPolicy`]: a request can only be built from a URL
/// that passes it, and every name is checked again as it resolves.
#[derive(Clone)]
pub struct OutboundClient {
    policy: OutboundPolicy,
    client: reqwest::Client,
}

impl OutboundClient {
    /// `timeout` bounds each whole call.
    pub fn new(policy: &OutboundPolicy, timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .dns_resolver(PolicyResolver {
                policy: policy.clone(),
            })
            // A redirect is a second URL that nobody checked (and that the resolver would not
            // see if it named an address); a receiver that moved fails until it is set again.
            .redirect(reqwest::redirect::Policy::none())
            // A proxy resolves names itself, past the resolver; the environment's
            // HTTP_PROXY must not undo the policy.
            .no_proxy()
            .timeout(timeout)
            .tcp_nodelay(true)
            .build()?;
        Ok(OutboundClient {
            policy: policy.clone(),
            client,
        })
    }

    /// A POST to `url` once it passes the policy. Addresses written in the URL are checked
    /// here, because the client resolves only names.
    pub fn post(&self, url: &str) -> Result<reqwest::RequestBuilder, OutboundRefusal> {
        Ok(self.client.post(self.policy.check_url(url)?))
    }
}

/// Resolves through the system, then keeps only the addresses the policy allows.
struct PolicyResolver {
    policy: OutboundPolicy,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved = lookup(host.clone()).await?;
            let admitted = policy.admit_resolved(&host, resolved)?;
            let addrs: Addrs = Box::new(
                admitted
                    .into_iter()
                    .map(|address| SocketAddr::new(address, 0)),
            );
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::config::OutboundConfig;

    fn policy(allow: &[&str]) -> OutboundPolicy {
        OutboundPolicy::new(&OutboundConfig {
            allow_hosts: allow.iter().map(|entry| entry.parse().unwrap()).collect(),
        })
    }

    /// Every message in an error's chain, outermost first.
    fn chain(error: &(dyn std::error::Error + 'static)) -> String {
        let mut text = error.to_string();
        let mut source = error.source();
        while let Some(inner) = source {
            text.push_str(": ");
            text.push_str(&inner.to_string());
            source = inner.source();
        }
        text
    }

    #[tokio::test]
    async fn names_resolving_inside_the_network_resolve_to_nothing() {
        let resolver = PolicyResolver {
            policy: policy(&[]),
        };
        let error = match resolver.resolve("localhost".parse().unwrap()).await {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(error) => error,
        };
        assert!(
            error.to_string().contains("is a loopback address"),
            "{error}"
        );
        let listed = PolicyResolver {
            policy: policy(&["localhost"]),
        };
        let addrs: Vec<SocketAddr> = listed
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
    }

    /// What DNS rebinding amounts to: a name that passed when it was set now resolves to a
    /// listening loopback service. The connection is refused without reaching it.
    #[tokio::test]
    async fn the_client_never_connects_where_a_name_now_resolves_inside() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let outbound = OutboundClient::new(&policy(&[]), Duration::from_secs(5)).unwrap();
        // Past `post`'s own check, which would refuse the name `localhost` outright.
        let error = outbound
            .client
            .post(format!("http://localhost:{port}/hook"))
            .send()
            .await
            .unwrap_err();
        assert!(
            chain(&error).contains("resolves to no address that may be called"),
            "{}",
            chain(&error)
        );
        let accepted = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
        assert!(accepted.is_err(), "the loopback service was reached");
    }

    #[tokio::test]
    async fn addresses_in_the_url_are_refused_before_anything_is_sent() {
        let outbound = OutboundClient::new(&policy(&[]), Duration::from_secs(5)).unwrap();
        assert!(matches!(
            outbound.post("http://[::ffff:127.0.0.1]:9000/"),
            Err(OutboundRefusal::Address { .. })
        ));
    }

    #[tokio::test]
    async fn redirects_are_answers_not_instructions() {
        let inside = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let inside_port = inside.local_addr().unwrap().port();
        let receiver = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver_port = receiver.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut socket, _) = receiver.accept().await.unwrap();
            // Read the whole request first: closing on unread bytes would reset the connection.
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.ends_with(b"{}") {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let answer = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:{inside_port}/\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            let _ = socket.write_all(answer.as_bytes()).await;
        });
        let open = policy(&[format!("127.0.0.1:{receiver_port}").as_str()]);
        let outbound = OutboundClient::new(&open, Duration::from_secs(5)).unwrap();
        let response = outbound
            .post(&format!("http://127.0.0.1:{receiver_port}/hook"))
            .unwrap()
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 307);
        let followed = tokio::time::timeout(Duration::from_millis(300), inside.accept()).await;
        assert!(followed.is_err(), "the redirect was followed");
    }
}
