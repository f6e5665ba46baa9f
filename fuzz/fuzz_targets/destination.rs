//! Click destination validation (`openclick_token::validate_destination`) against the `url`
//! crate, which parses as browsers do (WHATWG URL Standard). For every input the validator
//! accepts: `url` accepts it too, the scheme is http or https, there is no user info, and the
//! host and port `url` reads are the ones written in the authority (the host the validator
//! checked): no `%`-decoding, IPv4 number forms (`0x7f.1`), IDNA mapping or IPv6 rewriting may
//! make a browser go elsewhere than the URL says. And the redirect kill switch sees that host:
//! a block on the host a browser reads blocks the URL.
#![no_main]

use std::net::Ipv6Addr;

use libfuzzer_sys::fuzz_target;
use openclick_suppress::blocks::{Block, BlockChange, BlockList, BlockScope};
use openclick_token::validate_destination;

/// The host and port as written: docs/token-v1.md §5 rules 3, 5 and 6, read independently.
#[derive(Debug, PartialEq, Eq)]
enum Written {
    /// A host name (or dotted IPv4), ASCII-lowercased.
    Name(String),
    /// An IPv6 literal that parses.
    V6(Ipv6Addr),
    /// A bracketed literal that does not parse as IPv6.
    BadV6(String),
}

fn written(url: &str) -> (Written, Option<u16>) {
    let (_, rest) = url.split_once(':').unwrap();
    let rest = rest.strip_prefix("//").unwrap();
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let (host, port) = if let Some(b) = authority.strip_prefix('[') {
        let (lit, after) = b.split_once(']').unwrap();
        let host = match lit.parse::<Ipv6Addr>() {
            Ok(a) => Written::V6(a),
            Err(_) => Written::BadV6(lit.to_owned()),
        };
        (host, after.strip_prefix(':'))
    } else {
        let (h, p) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        (Written::Name(h.to_ascii_lowercase()), p)
    };
    (host, port.map(|p| p.parse().unwrap()))
}

fn has_punycode_label(url: &str) -> bool {
    match written(url).0 {
        Written::Name(host) => host.split('.').any(|l| l.starts_with("xn--")),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if validate_destination(s).is_err() {
        return;
    }
    let u = match url::Url::parse(s) {
        Ok(u) => u,
        // Known and accepted (reported on issue #12): a punycode label (`xn--...`) that does not
        // decode to a valid IDN label. The validator does not decode punycode; a browser
        // refuses such a URL outright, so the redirect goes nowhere rather than elsewhere.
        Err(url::ParseError::IdnaError) if has_punycode_label(s) => return,
        Err(e) => panic!("validator accepts, url rejects ({e}): {s:?}"),
    };
    assert!(
        matches!(u.scheme(), "http" | "https"),
        "scheme {:?}: {s:?}",
        u.scheme()
    );
    assert!(
        u.username().is_empty() && u.password().is_none(),
        "user info: {s:?}"
    );
    let (host, port) = written(s);
    let read = match u.host() {
        Some(url::Host::Domain(d)) => Written::Name(d.to_owned()),
        Some(url::Host::Ipv4(a)) => Written::Name(a.to_string()),
        Some(url::Host::Ipv6(a)) => Written::V6(a),
        None => panic!("url reads no host: {s:?}"),
    };
    assert_eq!(read, host, "host differs: {s:?}");
    // A block on the host the browser reads (as an operator would type it) blocks this URL.
    if let Ok(scope) = (BlockScope::Host {
        host: u.host_str().unwrap().to_owned(),
    })
    .validated()
    {
        let blocks = BlockList::new();
        blocks.apply(&BlockChange {
            scope,
            block: Some(Block {
                reason: "fuzz".into(),
                at_ms: 1,
            }),
        });
        assert!(
            blocks.check("t", "c", "l", s).is_some(),
            "a block on {:?} does not block {s:?}",
            u.host_str()
        );
    }
    let default = if u.scheme() == "https" { 443 } else { 80 };
    assert_eq!(
        u.port_or_known_default(),
        Some(port.unwrap_or(default)),
        "port differs: {s:?}"
    );
});
