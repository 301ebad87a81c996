//! The client's address: the connection's peer, or — when the peer is a proxy the operator
//! trusts — the address that proxy reports in `X-Forwarded-For`. Without trusted proxies the
//! header is ignored, since any client can send one.

use std::net::IpAddr;
use std::str::FromStr;

use http::HeaderMap;
use ipnet::IpNet;

/// The proxies whose `X-Forwarded-For` is believed; empty by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl FromStr for TrustedProxies {
    type Err = String;

    /// Comma-separated addresses and CIDR ranges, e.g. `10.0.0.0/8, 192.0.2.7`; empty for none.
    fn from_str(list: &str) -> Result<Self, Self::Err> {
        let entries = list.split(',').map(str::trim).filter(|entry| !entry.is_empty());
        let parse = |entry: &str| {
            entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("`{entry}` is neither an IP address nor a CIDR range"))
        };
        entries.map(parse).collect::<Result<_, _>>().map(Self)
    }
}

impl TrustedProxies {
    fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|range| range.contains(&address))
    }

    /// The client behind a request from `peer`. Each proxy appends the address it received from
    /// to `X-Forwarded-For`, so the entries are read from the right, past trusted proxies; the
    /// first address not trusted is the client (entries further left are the client's own word).
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let forwarded: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in forwarded.into_iter().rev() {
            if !self.trusts(client) {
                break;
            }
            match hop.parse() {
                Ok(address) => client = address,
                Err(_) => break,
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn lists_of_addresses_and_ranges_parse_and_bad_entries_are_named() {
        assert_eq!("".parse::<TrustedProxies>().unwrap(), TrustedProxies::default());
        let proxies: TrustedProxies = "10.0.0.0/8, 192.0.2.7,::1".parse().unwrap();
        assert!(proxies.trusts(ip("10.1.2.3")) && proxies.trusts(ip("192.0.2.7")) && proxies.trusts(ip("::1")));
        assert!(!proxies.trusts(ip("192.0.2.8")));
        let error = "10.0.0.0/8, proxy.example".parse::<TrustedProxies>().unwrap_err();
        assert!(error.contains("proxy.example"), "{error}");
    }

    #[test]
    fn the_client_is_the_first_untrusted_address_from_the_right() {
        let proxies: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        let peer = ip("10.0.0.1");
        // A client-supplied entry on the left is not believed.
        let chain = headers(&["198.51.100.9, 203.0.113.5, 10.0.0.2"]);
        assert_eq!(proxies.client_address(peer, &chain), ip("203.0.113.5"));
        // Several headers are one list, in order.
        let split = headers(&["198.51.100.9", "203.0.113.5"]);
        assert_eq!(proxies.client_address(peer, &split), ip("203.0.113.5"));
        // No header, or garbage: the proxy itself is the client.
        assert_eq!(proxies.client_address(peer, &HeaderMap::new()), peer);
        assert_eq!(proxies.client_address(peer, &headers(&["not an address"])), peer);
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let proxies: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        assert_eq!(proxies.client_address(ip("203.0.113.5"), &headers(&["10.0.0.3"])), ip("203.0.113.5"));
        let nobody = TrustedProxies::default();
        assert_eq!(nobody.client_address(ip("127.0.0.1"), &headers(&["203.0.113.5"])), ip("127.0.0.1"));
    }
}
