//! The binary payload: writer and reader. No keys here; see `keyring.rs` for the MAC.

use crate::{Channel, Claims, ClaimsRef, TokenError, TokenKind, MAX_ID_LEN, MAX_URL_LEN};

/// Format version written in byte 0.
pub(crate) const VERSION: u8 = 1;
/// Bytes of truncated HMAC-SHA256 appended to the payload.
pub(crate) const TAG_LEN: usize = 16;
/// Absorbed into the MAC before the payload (domain separation from any other use of a
/// secret). Exactly one SHA-256 block, so it is compressed once when the key is loaded and
/// costs nothing per token.
pub(crate) const MAC_CONTEXT: &[u8; 64] =
    b"openclick-token v1 HMAC-SHA256 tag for open/click tracking\0\0\0\0\0\0";
/// Smallest body: kind/channel byte, 1-byte varint time, four 1-byte zero lengths.
pub(crate) const MIN_BODY_LEN: usize = 6;
/// Click flags (the trailing flags extension, docs/token-v1.md §2): bit 0, a honeypot link.
pub(crate) const FLAG_HONEYPOT: u64 = 1;
/// Every flag bit this build knows; a token with any other bit set is refused.
pub(crate) const KNOWN_FLAGS: u64 = FLAG_HONEYPOT;
/// Unsubscribe flags (docs/token-v1.md §2): bit 0, an undo token minted by the edge.
pub(crate) const FLAG_UNDO: u64 = 1;
/// Every unsubscribe flag bit this build knows.
pub(crate) const KNOWN_UNSUBSCRIBE_FLAGS: u64 = FLAG_UNDO;

fn malformed(why: &'static str) -> TokenError {
    TokenError::Malformed(why)
}

pub(crate) fn kind_channel_byte(kind: TokenKind, channel: Channel) -> u8 {
    let k = match kind {
        TokenKind::Open => 1,
        TokenKind::Click => 2,
        TokenKind::Unsubscribe => 3,
    };
    (k << 4) | channel.code()
}

pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(crate) fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Upper bound of the encoded body length, for `Vec::with_capacity`.
pub(crate) fn body_len_hint(c: &Claims) -> usize {
    1 + 10
        + 2 * 6
        + 1
        + c.tenant_id.len()
        + c.campaign_id.len()
        + c.message_id.len()
        + c.contact_id.len()
        + c.link_id.len()
        + c.url.len()
        + c.list_id.len()
}

/// Appends the body (everything after the key id, before the tag). No validation here: the
/// flags are written after the last field of either kind when non-zero (so tests can forge an
/// open carrying them; `sign` refuses that).
pub(crate) fn encode_body(out: &mut Vec<u8>, c: &Claims) {
    out.push(kind_channel_byte(c.kind, c.channel));
    put_varint(out, zigzag(c.issued_at_ms));
    put_bytes(out, c.tenant_id.as_bytes());
    put_bytes(out, c.campaign_id.as_bytes());
    put_bytes(out, c.message_id.as_bytes());
    put_bytes(out, c.contact_id.as_bytes());
    match c.kind {
        TokenKind::Click => {
            put_bytes(out, c.link_id.as_bytes());
            put_bytes(out, c.url.as_bytes());
        }
        TokenKind::Unsubscribe => put_bytes(out, c.list_id.as_bytes()),
        TokenKind::Open => {}
    }
    let flags = match c.kind {
        TokenKind::Unsubscribe => {
            if c.undo {
                FLAG_UNDO
            } else {
                0
            }
        }
        _ => {
            if c.honeypot {
                FLAG_HONEYPOT
            } else {
                0
            }
        }
    };
    if flags != 0 {
        put_varint(out, flags);
    }
}

pub(crate) struct Reader<'a> {
    pub(crate) buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn byte(&mut self) -> Result<u8, TokenError> {
        let (&b, rest) = self
            .buf
            .split_first()
            .ok_or_else(|| malformed("truncated"))?;
        self.buf = rest;
        Ok(b)
    }

    /// LEB128, at most 10 bytes, minimal encoding only.
    pub(crate) fn varint(&mut self) -> Result<u64, TokenError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.byte()?;
            if i == 9 && b > 1 {
                return Err(malformed("varint overflow"));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                if i > 0 && b == 0 {
                    return Err(malformed("non-minimal varint"));
                }
                return Ok(v);
            }
        }
        Err(malformed("varint overflow"))
    }

    /// A length-prefixed UTF-8 field of at most `max` bytes, borrowed from the body.
    pub(crate) fn str(&mut self, max: usize) -> Result<&'a str, TokenError> {
        let s = self.bytes(max)?;
        std::str::from_utf8(s).map_err(|_| malformed("field is not UTF-8"))
    }

    fn bytes(&mut self, max: usize) -> Result<&'a [u8], TokenError> {
        let len = self.varint()?;
        if len > max as u64 {
            return Err(malformed("field too long"));
        }
        let len = len as usize;
        if len > self.buf.len() {
            return Err(malformed("truncated"));
        }
        let (s, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(s)
    }
}

/// The `tenant_id` of a body, read before the tag is checked so that a [`crate::KeyStore`]
/// can pick the tenant's keys. Reads only as far as the tenant (the kind/channel byte is
/// skipped, not judged: that stays after the tag check); the same strict varint and length
/// rules as [`decode_body`].
pub(crate) fn peek_tenant(body: &[u8]) -> Result<&str, TokenError> {
    let mut r = Reader { buf: body };
    r.byte()?;
    r.varint()?;
    r.str(MAX_ID_LEN)
}

/// Parses a body written by [`encode_body`]. Strict: unknown kind/channel codes, truncation,
/// overlong varints and trailing bytes are errors. After a click's `url` may come its flags
/// (one minimal varint, non-zero, known bits only); an open has none. The ids and the URL are
/// borrowed from `body`: nothing is allocated.
pub(crate) fn decode_body(body: &[u8]) -> Result<ClaimsRef<'_>, TokenError> {
    let mut r = Reader { buf: body };
    let kc = r.byte()?;
    let kind = match kc >> 4 {
        1 => TokenKind::Open,
        2 => TokenKind::Click,
        3 => TokenKind::Unsubscribe,
        _ => return Err(malformed("unknown kind")),
    };
    let channel = Channel::from_code(kc & 0x0f).ok_or_else(|| malformed("unknown channel"))?;
    let issued_at_ms = unzigzag(r.varint()?);
    let tenant_id = r.str(MAX_ID_LEN)?;
    let campaign_id = r.str(MAX_ID_LEN)?;
    let message_id = r.str(MAX_ID_LEN)?;
    let contact_id = r.str(MAX_ID_LEN)?;
    let (link_id, url, list_id) = match kind {
        TokenKind::Click => (r.str(MAX_ID_LEN)?, r.str(MAX_URL_LEN)?, ""),
        TokenKind::Unsubscribe => ("", "", r.str(MAX_ID_LEN)?),
        TokenKind::Open => ("", "", ""),
    };
    // Without flags, the body ends here: the same one test as before the extension.
    let (mut honeypot, mut undo) = (false, false);
    if !r.buf.is_empty() {
        match kind {
            TokenKind::Click => honeypot = read_flags(&mut r, KNOWN_FLAGS)? & FLAG_HONEYPOT != 0,
            TokenKind::Unsubscribe => {
                undo = read_flags(&mut r, KNOWN_UNSUBSCRIBE_FLAGS)? & FLAG_UNDO != 0
            }
            TokenKind::Open => return Err(malformed("trailing bytes")),
        }
    }
    Ok(ClaimsRef {
        kind,
        tenant_id,
        campaign_id,
        message_id,
        contact_id,
        channel,
        issued_at_ms,
        link_id,
        url,
        honeypot,
        list_id,
        undo,
    })
}

/// The flags of a click or an unsubscribe, present because bytes follow its last field: one
/// minimal varint, non-zero (a present zero would be a second encoding of "no flags"), no bit
/// outside `known`, and the end of the body. Returns the flags. Out of line: tokens without
/// flags never call it.
#[cold]
#[inline(never)]
fn read_flags(r: &mut Reader<'_>, known: u64) -> Result<u64, TokenError> {
    let flags = r.varint()?;
    if flags == 0 {
        return Err(malformed("zero flags"));
    }
    if flags & !known != 0 {
        return Err(malformed("unknown flag bits"));
    }
    if !r.buf.is_empty() {
        return Err(malformed("trailing bytes"));
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_round_trips_extremes() {
        for v in [0, 1, -1, 63, -64, i64::MAX, i64::MIN, 1_700_000_000_000] {
            assert_eq!(unzigzag(zigzag(v)), v);
            let mut out = Vec::new();
            put_varint(&mut out, zigzag(v));
            assert!(out.len() <= 10);
            let mut r = Reader { buf: &out };
            assert_eq!(unzigzag(r.varint().unwrap()), v);
            assert!(r.buf.is_empty());
        }
    }

    #[test]
    fn varint_rejects_non_minimal_and_overflow() {
        assert!(Reader { buf: &[0x80, 0x00] }.varint().is_err());
        assert!(Reader { buf: &[0xff; 10] }.varint().is_err());
        let mut eleven = [0xffu8; 11];
        eleven[10] = 0;
        assert!(Reader { buf: &eleven }.varint().is_err());
        let mut max = [0xffu8; 10];
        max[9] = 0x01;
        assert_eq!(Reader { buf: &max }.varint().unwrap(), u64::MAX);
        assert!(Reader { buf: &[0x80] }.varint().is_err());
    }
}
