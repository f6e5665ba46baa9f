//! `client_ip::client_ip` with arbitrary `X-Forwarded-For` / `Forwarded` / single-address header
//! values, peer, trusted networks and configured header. Never panics; the result is the peer
//! (as IPv4 if it is IPv4-mapped), or an address written in the configured header; headers only
//! count when the peer is trusted.
//!
//! Input lines: `NAME: VALUE` headers, `@peer ADDR`, `@trust NET`, `@header NAME` (see
//! `openclick_fuzz::parse_headers`).
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use openclick_edge::client_ip::{client_ip, ClientIpHeader};
use openclick_fuzz::{lines, parse_headers};

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Every address written anywhere in these header values: a generous, independent reading
/// (split at every delimiter the formats use; `host:port` too).
fn addresses_in(values: &[&[u8]]) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for v in values {
        let text = String::from_utf8_lossy(v);
        for piece in text
            .split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '=' | '"' | '[' | ']'))
        {
            if let Ok(ip) = piece.parse::<IpAddr>() {
                out.push(canonical(ip));
            } else if let Some((host, _port)) = piece.rsplit_once(':') {
                if let Ok(ip) = host.parse::<IpAddr>() {
                    out.push(canonical(ip));
                }
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let h = parse_headers(lines(data));
    let Some(config) = h.client_ip_config() else {
        return;
    };
    let got = client_ip(h.peer, &h.headers, &config);
    let peer = canonical(h.peer);
    let peer_trusted = h.trusted.iter().any(|n| n.contains(&peer));
    if !peer_trusted {
        assert_eq!(got, peer, "untrusted peer, yet the headers were believed");
        return;
    }
    if got == peer {
        return;
    }
    let name = match config.header() {
        ClientIpHeader::XForwardedFor => http::header::HeaderName::from_static("x-forwarded-for"),
        ClientIpHeader::Forwarded => http::header::FORWARDED,
        ClientIpHeader::Single(name) => name.clone(),
    };
    let values: Vec<&[u8]> = h
        .headers
        .get_all(&name)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    let written = addresses_in(&values);
    assert!(
        written.contains(&got),
        "{got} is neither the peer {peer} nor in the {name} header {values:?}"
    );
});
