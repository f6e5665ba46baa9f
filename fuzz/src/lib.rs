//! Helpers shared by the fuzz targets: the fixed keyring, and a line-based text form of a
//! request (so seed corpora are readable and libFuzzer's mutations stay meaningful).

pub mod spool_model;

use std::net::{IpAddr, Ipv4Addr};

use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use ipnet::IpNet;
use openclick_edge::client_ip::{ClientIpConfig, ClientIpHeader};
use openclick_token::{Key, Keyring};

/// Signing key of the fixed keyring: id `k1`, 32 bytes of `0x42`.
pub const K1_SECRET: [u8; 32] = [0x42; 32];
/// Verify-only key of the fixed keyring: id `old`, 48 bytes of `0x17`.
pub const OLD_SECRET: [u8; 48] = [0x17; 48];

/// The fixed keyring every target uses: `k1` signs, `old` only verifies. Seeds in
/// `fuzz/corpus/` are signed with it (`k1:QkJC...`, see `fuzz/README.md`).
pub fn keyring() -> Keyring {
    Keyring::new(
        Key::new("k1", &K1_SECRET).unwrap(),
        vec![Key::new("old", &OLD_SECRET).unwrap()],
    )
    .unwrap()
}

/// The same keys with `old` signing (to re-sign what `old` verified).
pub fn keyring_old_first() -> Keyring {
    Keyring::new(
        Key::new("old", &OLD_SECRET).unwrap(),
        vec![Key::new("k1", &K1_SECRET).unwrap()],
    )
    .unwrap()
}

/// Headers, socket peer and trusted proxies read from text lines:
///
/// - `@peer ADDR`: the socket peer (default `10.0.0.1`);
/// - `@trust NET`: a trusted proxy network (repeatable; an unparsable one is skipped); with no
///   `@trust` line at all the default is `10.0.0.0/8` and `::1/128`;
/// - `@header NAME`: the forwarding header the trusted proxies write (default
///   `x-forwarded-for`; `forwarded`, or any header name for a single address);
/// - anything else, `NAME: VALUE` (split at the first `:`; one leading space of the value is
///   dropped): a header, appended; invalid names or values are skipped.
#[derive(Debug)]
pub struct TextHeaders {
    /// The headers, in order.
    pub headers: HeaderMap,
    /// The socket peer.
    pub peer: IpAddr,
    /// Trusted proxy networks.
    pub trusted: Vec<IpNet>,
    /// The forwarding header believed.
    pub header: ClientIpHeader,
}

impl TextHeaders {
    /// The client address configuration; `None` when `ClientIpConfig::new` refuses it (a
    /// trusted network of prefix length 0).
    pub fn client_ip_config(&self) -> Option<ClientIpConfig> {
        ClientIpConfig::new(self.trusted.clone(), self.header.clone()).ok()
    }
}

/// Parses the lines of [`TextHeaders`].
pub fn parse_headers<'a>(lines: impl Iterator<Item = &'a [u8]>) -> TextHeaders {
    let mut headers = HeaderMap::new();
    let mut peer = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let mut trusted = Vec::new();
    let mut saw_trust = false;
    let mut header = ClientIpHeader::XForwardedFor;
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(rest) = line.strip_prefix(b"@peer ") {
            if let Some(ip) = std::str::from_utf8(rest).ok().and_then(|s| s.parse().ok()) {
                peer = ip;
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix(b"@trust ") {
            saw_trust = true;
            if let Some(net) = std::str::from_utf8(rest).ok().and_then(|s| s.parse().ok()) {
                trusted.push(net);
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix(b"@header ") {
            if let Some(h) = std::str::from_utf8(rest).ok().and_then(|s| s.parse().ok()) {
                header = h;
            }
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let value = value.strip_prefix(b" ").unwrap_or(value);
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        else {
            continue;
        };
        headers.append(name, value);
    }
    if !saw_trust {
        trusted = vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
    }
    TextHeaders {
        headers,
        peer,
        trusted,
        header,
    }
}

/// Splits fuzz input into lines (`\n`).
pub fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split(|&b| b == b'\n')
}
