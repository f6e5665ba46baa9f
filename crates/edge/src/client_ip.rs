//! Which address a hit came from.
//!
//! The socket peer, unless the peer is a configured trusted proxy (a load balancer in front of
//! the edge): then the forwarding headers are believed, walking `X-Forwarded-For` (or, when it is
//! absent, `Forwarded: for=`) from the right and skipping trusted hops, so a client cannot forge
//! its address by sending its own header through the balancer.

use std::net::IpAddr;

use http::header::HeaderName;
use http::HeaderMap;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
use ipnet::IpNet;

/// The client address for geo lookups and the event.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = canonical(peer);
    if trusted.is_empty() || !is_trusted(peer, trusted) {
        return peer;
    }
    let xff = headers.get_all(&X_FORWARDED_FOR);
    let mut values = xff.iter();
    let first = values.next();
    if let (Some(only), None) = (first, values.next()) {
        // One header line (the usual case): walk its hops from the right without collecting.
        let hops = only.to_str().ok().into_iter().flat_map(|s| s.rsplit(','));
        return rightmost_untrusted_rev(hops.filter_map(parse_xff_hop), trusted).unwrap_or(peer);
    }
    if first.is_some() {
        let hops: Vec<IpAddr> = xff
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|s| s.split(','))
            .filter_map(parse_xff_hop)
            .collect();
        return rightmost_untrusted(&hops, trusted).unwrap_or(peer);
    }
    let hops: Vec<IpAddr> = headers
        .get_all(&http::header::FORWARDED)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .filter_map(parse_forwarded_for)
        .collect();
    if !hops.is_empty() {
        return rightmost_untrusted(&hops, trusted).unwrap_or(peer);
    }
    peer
}

fn rightmost_untrusted(hops: &[IpAddr], trusted: &[IpNet]) -> Option<IpAddr> {
    rightmost_untrusted_rev(hops.iter().rev().copied(), trusted)
}

/// `hops_from_right`: the hops, right-most (nearest) first.
fn rightmost_untrusted_rev(
    hops_from_right: impl Iterator<Item = IpAddr>,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let mut last = None;
    for ip in hops_from_right {
        last = Some(ip);
        if !is_trusted(ip, trusted) {
            return Some(ip);
        }
    }
    // Every hop is trusted: the left-most is the best we know.
    last
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|n| n.contains(&ip))
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

    fn nets(s: &[&str]) -> Vec<IpNet> {
        s.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn untrusted_peer_headers_are_ignored() {
        let peer: IpAddr = "198.51.100.7".parse().unwrap();
        let hm = h(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(client_ip(peer, &hm, &nets(&["10.0.0.0/8"])), peer);
        assert_eq!(client_ip(peer, &hm, &[]), peer);
    }

    #[test]
    fn trusted_peer_rightmost_untrusted_hop_wins() {
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        let t = nets(&["10.0.0.0/8"]);
        // The client forged 6.6.6.6; the balancer appended the real 1.2.3.4.
        let hm = h(&[("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.0.0.9")]);
        assert_eq!(
            client_ip(peer, &hm, &t),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn forwarded_header_and_ipv6() {
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        let t = nets(&["10.0.0.0/8"]);
        let hm = h(&[("forwarded", r#"for="[2001:db8::7]:443";proto=https"#)]);
        assert_eq!(
            client_ip(peer, &hm, &t),
            "2001:db8::7".parse::<IpAddr>().unwrap()
        );
        let hm = h(&[("forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43")]);
        assert_eq!(
            client_ip(peer, &hm, &t),
            "192.0.2.60".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn mapped_v6_peer_is_v4() {
        let peer: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(
            client_ip(peer, &HeaderMap::new(), &[]),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn garbage_falls_back_to_peer() {
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        let hm = h(&[("x-forwarded-for", "not-an-ip, also bad")]);
        assert_eq!(client_ip(peer, &hm, &nets(&["10.0.0.0/8"])), peer);
    }
}
