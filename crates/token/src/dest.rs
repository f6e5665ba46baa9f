//! Validation of click destinations.

use crate::{TokenError, MAX_URL_LEN};

/// Checks that `url` is an acceptable redirect destination: an absolute `http` or `https` URL
/// with a host.
///
/// Rules (deliberately stricter than RFC 3986, so that every browser parses the URL the way we
/// do and the redirect cannot be bent elsewhere):
/// - 1..=[`MAX_URL_LEN`] bytes, visible ASCII only (`0x21..=0x7E`): no whitespace, no control
///   characters, no raw non-ASCII (percent-encode it; IDN hosts in punycode);
/// - no backslash anywhere (browsers treat `\` as `/` in http URLs);
/// - scheme `http` or `https` (any letter case) followed by `://`: this rejects `javascript:`,
///   `data:`, `ftp:`, relative paths and scheme-relative `//host` URLs;
/// - no userinfo (`user@host`), a non-empty host of `[A-Za-z0-9._~-]` or a bracketed IPv6
///   literal that parses, an optional numeric port `1..=65535`. No `%` in the host: browsers
///   decode percent-escapes in hosts (`ex%61mple.com` is `example.com`), so a blocked host could
///   be reached by spelling it differently;
/// - a host whose last label is a number (digits, or `0x` and hex digits: the WHATWG URL
///   Standard's "ends in a number") is a dotted-decimal IPv4 address `a.b.c.d` (each part
///   `0..=255`, no leading zeros, no trailing dot), for the same reason: browsers read
///   `http://0x7f.1`, `http://2130706433` and `http://127.1` all as 127.0.0.1.
pub fn validate_destination(url: &str) -> Result<(), TokenError> {
    use TokenError::InvalidDestination as Bad;
    if url.is_empty() {
        return Err(Bad("empty"));
    }
    if url.len() > MAX_URL_LEN {
        return Err(Bad("longer than 2048 bytes"));
    }
    for b in url.bytes() {
        if !(0x21..=0x7e).contains(&b) {
            return Err(Bad(
                "contains whitespace, control or non-ASCII characters (percent-encode them)",
            ));
        }
        if b == b'\\' {
            return Err(Bad("contains a backslash"));
        }
    }
    let Some((scheme, rest)) = url.split_once(':') else {
        return Err(Bad("not an absolute URL (no scheme)"));
    };
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return Err(Bad("scheme must be http or https"));
    }
    let Some(rest) = rest.strip_prefix("//") else {
        return Err(Bad("missing //host after the scheme"));
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if authority.contains('@') {
        return Err(Bad("user info (user@host) is not allowed"));
    }
    let port = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((literal, after)) = bracketed.split_once(']') else {
            return Err(Bad("unterminated IPv6 literal"));
        };
        // Characters first (so the spec's rule reads the same in every implementation), then
        // the address itself: `[1::2::3]` or `[1.2.3.4:]` would not parse in a browser.
        let ok = literal.contains(':')
            && literal
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            && literal.parse::<std::net::Ipv6Addr>().is_ok();
        if !ok {
            return Err(Bad("bad IPv6 literal"));
        }
        if after.is_empty() {
            None
        } else {
            match after.strip_prefix(':') {
                Some(p) => Some(p),
                None => return Err(Bad("unexpected characters after IPv6 literal")),
            }
        }
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        if host.is_empty() {
            return Err(Bad("missing host"));
        }
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~'))
        {
            // `%` included: browsers percent-decode hosts (`ex%61mple.com` is `example.com`).
            return Err(Bad("host contains characters not allowed in a host name"));
        }
        if !host.bytes().any(|b| b.is_ascii_alphanumeric()) {
            return Err(Bad("missing host"));
        }
        if ends_in_a_number(host) && host.parse::<std::net::Ipv4Addr>().is_err() {
            // Browsers read such a host as an IPv4 address in any of its number forms
            // (`0x7f.1`, `2130706433`, `127.1`, `010.0.0.1` are all 127.0.0.1 or 8.0.0.1), and
            // reject it when it is out of range (`999.1.1.1`, `example.123`).
            return Err(Bad(
                "a host ending in a number must be a dotted-decimal IPv4 address",
            ));
        }
        port
    };
    if let Some(port) = port {
        let valid = !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok_and(|p| p != 0);
        if !valid {
            return Err(Bad("bad port"));
        }
    }
    Ok(())
}

/// The WHATWG URL Standard's "ends in a number checker": whether a browser parses this host as
/// an IPv4 address (in any of its number forms). Its last label (one trailing empty label
/// ignored) is all decimal digits, or `0x`/`0X` followed by hex digits.
fn ends_in_a_number(host: &str) -> bool {
    let mut labels = host.rsplit('.');
    let mut last = labels.next().unwrap_or_default();
    if last.is_empty() {
        match labels.next() {
            Some(l) => last = l,
            None => return false,
        }
    }
    if !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    last.strip_prefix("0x")
        .or_else(|| last.strip_prefix("0X"))
        .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
}
