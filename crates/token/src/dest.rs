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
///   literal, an optional numeric port `1..=65535`. No `%` in the host: browsers decode
///   percent-escapes in hosts (`ex%61mple.com` is `example.com`), so a blocked host could be
///   reached by spelling it differently.
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
        let ok = literal.contains(':')
            && literal
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
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
            return Err(Bad("host contains characters not allowed in a host name"));
        }
        if !host.bytes().any(|b| b.is_ascii_alphanumeric()) {
            return Err(Bad("missing host"));
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
