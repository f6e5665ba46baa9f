//! Which address a hit came from.
//!
//! The socket peer, unless the peer is a configured trusted proxy (a load balancer in front of
//! the edge). Then exactly one forwarding header is believed: the one the operator names
//! ([`ClientIpConfig::header`], `--client-ip-header`), because that is the one the proxy
//! writes; any other forwarding header a client sent passes through the proxy untouched and
//! is ignored.
//!
//! - `x-forwarded-for` (default) and `forwarded` (`for=`, RFC 7239) hold a list of hops; the
//!   walk goes from the right (the hop nearest the edge), skipping trusted proxies, and the
//!   first untrusted hop is the client. The walk **stops at the first hop it cannot parse**
//!   (`unknown`, an obfuscated identifier, garbage) and answers the last trusted address it
//!   passed: hops to the left of an unparsable one were written by someone we cannot vouch
//!   for. If every hop is trusted, the left-most is the best we know.
//! - Any other header name (`x-real-ip`, `cf-connecting-ip`, `true-client-ip`, ...) holds one
//!   address, written by the proxy.
//!
//! Trusting `0.0.0.0/0` or `::/0` would let every client choose its address: refused. Very wide
//! networks (wider than /8 for IPv4, /32 for IPv6) are allowed but listed by
//! [`ClientIpConfig::wide_networks`] so that `serve` warns at start.

use std::net::IpAddr;

use http::header::HeaderName;
use ipnet::IpNet;

use crate::headers::{visible_str, HeaderSource};

/// Which header the trusted proxy writes the client address into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientIpHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`.
    XForwardedFor,
    /// `Forwarded: for=client;proto=https, for=proxy1` (RFC 7239).
    Forwarded,
    /// A header holding one address (`X-Real-IP`, `CF-Connecting-IP`, ...).
    Single(HeaderName),
}

impl std::str::FromStr for ClientIpHeader {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim().to_ascii_lowercase();
        Ok(match name.as_str() {
            "x-forwarded-for" => ClientIpHeader::XForwardedFor,
            "forwarded" => ClientIpHeader::Forwarded,
            _ => ClientIpHeader::Single(
                HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| format!("{s:?} is not a header name"))?,
            ),
        })
    }
}

/// Trusted proxies and the header they write.
#[derive(Clone, Debug)]
pub struct ClientIpConfig {
    trusted: Vec<IpNet>,
    header: ClientIpHeader,
}

impl Default for ClientIpConfig {
    fn default() -> Self {
        ClientIpConfig {
            trusted: Vec::new(),
            header: ClientIpHeader::XForwardedFor,
        }
    }
}

impl ClientIpConfig {
    /// Trusts `trusted` to write `header`. Refuses a network of prefix length 0.
    pub fn new(trusted: Vec<IpNet>, header: ClientIpHeader) -> Result<ClientIpConfig, String> {
        if let Some(n) = trusted.iter().find(|n| n.prefix_len() == 0) {
            return Err(format!(
                "trusted proxy network {n} would let every client choose its address"
            ));
        }
        Ok(ClientIpConfig { trusted, header })
    }

    /// The header believed.
    pub fn header(&self) -> &ClientIpHeader {
        &self.header
    }

    /// The trusted networks.
    pub fn trusted(&self) -> &[IpNet] {
        &self.trusted
    }

    /// Trusted networks wider than /8 (IPv4) or /32 (IPv6): worth a warning.
    pub fn wide_networks(&self) -> Vec<IpNet> {
        self.trusted
            .iter()
            .filter(|n| match n {
                IpNet::V4(v4) => v4.prefix_len() < 8,
                IpNet::V6(v6) => v6.prefix_len() < 32,
            })
            .copied()
            .collect()
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(&ip))
    }
}

/// The client address for geo lookups and the event.
pub fn client_ip<H: HeaderSource + ?Sized>(
    peer: IpAddr,
    headers: &H,
    config: &ClientIpConfig,
) -> IpAddr {
    let peer = canonical(peer);
    if config.trusted.is_empty() || !config.is_trusted(peer) {
        return peer;
    }
    fn text(v: &[u8]) -> &str {
        visible_str(v).unwrap_or("?")
    }
    match &config.header {
        ClientIpHeader::XForwardedFor => {
            let mut it = headers.values(&X_FORWARDED_FOR);
            match (it.next(), it.next()) {
                (None, _) => peer,
                // One header line (the usual case): walk its hops from the right, no allocation.
                (Some(only), None) => match visible_str(only) {
                    Some(s) => walk(s.rsplit(',').map(parse_xff_hop), peer, config),
                    None => peer,
                },
                // Several lines form one list, in order.
                _ => {
                    let lines: Vec<&str> = headers.values(&X_FORWARDED_FOR).map(text).collect();
                    let hops = lines.iter().rev().flat_map(|l| l.rsplit(','));
                    walk(hops.map(parse_xff_hop), peer, config)
                }
            }
        }
        ClientIpHeader::Forwarded => {
            let lines: Vec<&str> = headers.values(&http::header::FORWARDED).map(text).collect();
            let hops = lines.iter().rev().flat_map(|l| l.rsplit(','));
            walk(hops.map(parse_forwarded_for), peer, config)
        }
        ClientIpHeader::Single(name) => {
            let mut values = headers.values(name);
            match (values.next(), values.next()) {
                // Exactly one value; two would mean the client smuggled its own in.
                (Some(v), None) => visible_str(v)
                    .and_then(|s| parse_host(s.trim()))
                    .unwrap_or(peer),
                _ => peer,
            }
        }
    }
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// `hops`: parsed hops, nearest first (`None`: unparsable). `last`: the nearest trusted
/// address so far (the peer).
fn walk(
    hops: impl Iterator<Item = Option<IpAddr>>,
    mut last: IpAddr,
    config: &ClientIpConfig,
) -> IpAddr {
    for hop in hops {
        let Some(ip) = hop else {
            return last;
        };
        if !config.is_trusted(ip) {
            return ip;
        }
        last = ip;
    }
    last
}

/// `::ffff:a.b.c.d` becomes `a.b.c.d`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

fn parse_xff_hop(s: &str) -> Option<IpAddr> {
    parse_host(s.trim())
}

/// The `for=` of one `Forwarded` element; `None` if it has none or it is not an address.
fn parse_forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("for") {
            return None;
        }
        parse_host(v.trim().trim_matches('"'))
    })
}

/// Accepts `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:443`.
fn parse_host(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        return rest[..end].parse().ok().map(canonical);
    }
    let (host, _port) = s.rsplit_once(':')?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    fn cfg(nets: &[&str], header: &str) -> ClientIpConfig {
        ClientIpConfig::new(
            nets.iter().map(|n| n.parse().unwrap()).collect(),
            header.parse().unwrap(),
        )
        .unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peer_headers_are_ignored() {
        let peer = ip("198.51.100.7");
        let hm = h(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(
            client_ip(peer, &hm, &cfg(&["10.0.0.0/8"], "x-forwarded-for")),
            peer
        );
        assert_eq!(client_ip(peer, &hm, &ClientIpConfig::default()), peer);
    }

    #[test]
    fn trusted_peer_rightmost_untrusted_hop_wins() {
        let peer = ip("10.0.0.2");
        let c = cfg(&["10.0.0.0/8"], "x-forwarded-for");
        // The client forged 6.6.6.6; the balancer appended the real 1.2.3.4.
        let hm = h(&[("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.0.0.9")]);
        assert_eq!(client_ip(peer, &hm, &c), ip("1.2.3.4"));
        // Two header lines are one list.
        let hm = h(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "1.2.3.4, 10.0.0.9"),
        ]);
        assert_eq!(client_ip(peer, &hm, &c), ip("1.2.3.4"));
    }

    #[test]
    fn the_walk_stops_at_the_first_unparsable_hop() {
        let peer = ip("10.0.0.2");
        let c = cfg(&["10.0.0.0/8"], "x-forwarded-for");
        // The issue's case: `6.6.6.6, unknown` must not yield the client-written 6.6.6.6.
        let hm = h(&[("x-forwarded-for", "6.6.6.6, unknown")]);
        assert_eq!(client_ip(peer, &hm, &c), peer);
        // ... and the last trusted hop passed is the answer.
        let hm = h(&[("x-forwarded-for", "6.6.6.6, garbage, 10.0.0.9")]);
        assert_eq!(client_ip(peer, &hm, &c), ip("10.0.0.9"));
        let hm = h(&[("x-forwarded-for", "not-an-ip, also bad")]);
        assert_eq!(client_ip(peer, &hm, &c), peer);
    }

    #[test]
    fn only_the_named_header_is_believed() {
        let peer = ip("10.0.0.2");
        // The proxy writes Forwarded; a client-written X-Forwarded-For passes through it.
        let c = cfg(&["10.0.0.0/8"], "forwarded");
        let hm = h(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43"),
        ]);
        assert_eq!(client_ip(peer, &hm, &c), ip("192.0.2.60"));
        let hm = h(&[("x-forwarded-for", "6.6.6.6")]);
        assert_eq!(client_ip(peer, &hm, &c), peer);
        // And the other way round.
        let c = cfg(&["10.0.0.0/8"], "x-forwarded-for");
        let hm = h(&[("forwarded", "for=6.6.6.6")]);
        assert_eq!(client_ip(peer, &hm, &c), peer);
    }

    #[test]
    fn forwarded_header_and_ipv6() {
        let peer = ip("10.0.0.2");
        let c = cfg(&["10.0.0.0/8"], "forwarded");
        let hm = h(&[("forwarded", r#"for="[2001:db8::7]:443";proto=https"#)]);
        assert_eq!(client_ip(peer, &hm, &c), ip("2001:db8::7"));
        // An obfuscated identifier (RFC 7239 section 6.3) stops the walk.
        let hm = h(&[("forwarded", "for=6.6.6.6, for=_hidden, for=10.0.0.5")]);
        assert_eq!(client_ip(peer, &hm, &c), ip("10.0.0.5"));
    }

    #[test]
    fn single_address_headers() {
        let peer = ip("10.0.0.2");
        let c = cfg(&["10.0.0.0/8"], "X-Real-IP");
        assert_eq!(
            client_ip(peer, &h(&[("x-real-ip", "203.0.113.5")]), &c),
            ip("203.0.113.5")
        );
        assert_eq!(
            client_ip(
                peer,
                &h(&[("x-real-ip", "1.1.1.1"), ("x-real-ip", "2.2.2.2")]),
                &c
            ),
            peer,
            "two values: one was smuggled"
        );
        assert_eq!(client_ip(peer, &h(&[("x-real-ip", "nope")]), &c), peer);
    }

    #[test]
    fn mapped_v6_peer_is_v4() {
        let peer = ip("::ffff:192.0.2.1");
        assert_eq!(
            client_ip(peer, &HeaderMap::new(), &ClientIpConfig::default()),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn everything_trusted_is_refused_and_wide_is_listed() {
        assert!(ClientIpConfig::new(
            vec!["0.0.0.0/0".parse().unwrap()],
            ClientIpHeader::XForwardedFor
        )
        .is_err());
        assert!(
            ClientIpConfig::new(vec!["::/0".parse().unwrap()], ClientIpHeader::XForwardedFor)
                .is_err()
        );
        let c = cfg(
            &["10.0.0.0/8", "0.0.0.0/4", "2001:db8::/16", "fd00::/64"],
            "x-forwarded-for",
        );
        let wide: Vec<String> = c.wide_networks().iter().map(|n| n.to_string()).collect();
        assert_eq!(wide, vec!["0.0.0.0/4", "2001:db8::/16"]);
    }
}
