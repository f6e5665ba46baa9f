//! Properties of `client_ip` (the fuzz target `client_ip` explores the same ground far longer;
//! see fuzz/): headers count only behind a trusted peer, and the answer is always the peer or an
//! address written in the configured forwarding header.

use std::net::IpAddr;

use http::{HeaderMap, HeaderValue};
use ipnet::IpNet;
use openclick_edge::client_ip::{client_ip, ClientIpConfig, ClientIpHeader};
use proptest::prelude::*;

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Addresses from a few networks, so that trusted ones come up often.
fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (0u8..4, any::<u8>()).prop_map(|(c, d)| IpAddr::from([10, 0, c, d])),
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<u16>().prop_map(|x| IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, x])),
        any::<[u8; 4]>().prop_map(|v4| IpAddr::V6(std::net::Ipv4Addr::from(v4).to_ipv6_mapped())),
    ]
}

/// One hop as a proxy might write it, or junk.
fn hop() -> impl Strategy<Value = (String, Option<IpAddr>)> {
    prop_oneof![
        ip().prop_map(|a| (a.to_string(), Some(canonical(a)))),
        (ip(), any::<u16>()).prop_map(|(a, p)| match a {
            IpAddr::V4(_) => (format!("{a}:{p}"), Some(a)),
            IpAddr::V6(_) => (format!("[{a}]:{p}"), Some(canonical(a))),
        }),
        "[g-z !]{0,10}".prop_map(|s| (s, None)),
    ]
}

fn trusted() -> impl Strategy<Value = Vec<IpNet>> {
    prop::sample::subsequence(
        vec!["10.0.0.0/8", "10.0.1.0/24", "2001:db8::/112", "192.0.0.0/2"],
        0..=2,
    )
    .prop_map(|v| v.into_iter().map(|n| n.parse().unwrap()).collect())
}

fn header() -> impl Strategy<Value = ClientIpHeader> {
    prop_oneof![
        Just(ClientIpHeader::XForwardedFor),
        Just(ClientIpHeader::Forwarded),
        Just(ClientIpHeader::Single(http::HeaderName::from_static(
            "x-real-ip"
        ))),
    ]
}

proptest! {
    #[test]
    fn result_is_the_peer_or_a_written_hop(
        peer in ip(),
        trusted in trusted(),
        which in header(),
        xff in prop::collection::vec(prop::collection::vec(hop(), 0..4), 0..3),
        fwd in prop::collection::vec(hop(), 0..3),
        real in hop(),
    ) {
        let mut headers = HeaderMap::new();
        let (mut in_xff, mut in_fwd, mut in_real) = (Vec::new(), Vec::new(), Vec::new());
        for line in &xff {
            let text: Vec<&str> = line.iter().map(|(s, _)| s.as_str()).collect();
            if let Ok(v) = HeaderValue::from_str(&text.join(", ")) {
                headers.append("x-forwarded-for", v);
                in_xff.extend(line.iter().filter_map(|(_, a)| *a));
            }
        }
        let fwd_text: Vec<String> = fwd.iter().map(|(s, _)| format!("for=\"{s}\"")).collect();
        if let Ok(v) = HeaderValue::from_str(&fwd_text.join(", ")) {
            headers.append("forwarded", v);
            in_fwd.extend(fwd.iter().filter_map(|(_, a)| *a));
        }
        if let Ok(v) = HeaderValue::from_str(&real.0) {
            headers.append("x-real-ip", v);
            in_real.extend(real.1);
        }
        let written = match which {
            ClientIpHeader::XForwardedFor => in_xff,
            ClientIpHeader::Forwarded => in_fwd,
            ClientIpHeader::Single(_) => in_real,
        };
        let config = ClientIpConfig::new(trusted.clone(), which).unwrap();
        let got = client_ip(peer, &headers, &config);
        let peer = canonical(peer);
        if !trusted.iter().any(|n| n.contains(&peer)) {
            prop_assert_eq!(got, peer);
        } else {
            prop_assert!(got == peer || written.contains(&got), "{got} not in {written:?}");
        }
    }
}
