//! Web hand-off tokens (docs/token-v1.md §11): the signed identity a tracked click hands to the
//! sender's own website (`?oc_id=TOKEN`), which the site's snippet keeps in a first-party cookie
//! and sends back with each page view (`/w/TOKEN`).
//!
//! Same version, header, MAC and keys as tracking tokens ([`KeyStore`]), with a kind of its own
//! (8, channel `web`), so a web token is never accepted as an open or a click (a v1 tracking
//! verifier rejects kind 8 as `malformed` after the tag) and a tracking token is never accepted
//! here ([`WebTokenError::WrongKind`]). Unlike tracking tokens it expires: the expiry is signed
//! in, and [`KeyStore::verify_web`] checks it against the clock it is handed.
//!
//! ```
//! use openclick_token::{Key, KeyStore, Keyring, WebClaims};
//! let keys = KeyStore::global(Keyring::new(Key::new("k1", &[7u8; 32])?, vec![])?);
//! let claims = WebClaims {
//!     tenant_id: "acme".into(),
//!     campaign_id: "spring".into(),
//!     contact_id: "c-7".into(),
//!     issued_at_ms: 1_700_000_000_000,
//!     expires_at_ms: 1_700_000_000_000 + 30 * 86_400_000,
//! };
//! let token = keys.sign_web(&claims)?;
//! assert_eq!(keys.verify_web(&token, 1_700_000_000_001).unwrap().claims, claims);
//! assert!(keys.verify_web(&token, claims.expires_at_ms).is_err()); // expired
//! assert!(keys.verify(&token).is_err()); // never an open or a click
//! # Ok::<(), openclick_token::TokenError>(())
//! ```

use crate::codec::{put_bytes, put_varint, unzigzag, zigzag, Reader};
use crate::{KeyStore, TokenError, MAX_ID_LEN};

/// The kind nibble of a web hand-off token. Kinds 3..=7 are kept for email-side tokens
/// (unsubscribe and what may follow it); see docs/token-v1.md §7 and §11.
pub const WEB_KIND: u8 = 8;
/// The channel nibble of a web hand-off token: `web` (the proto `CHANNEL_WEB` number).
const WEB_CHANNEL: u8 = 4;
/// The kind/channel byte of every web token: `0x84`.
const WEB_KIND_CHANNEL: u8 = (WEB_KIND << 4) | WEB_CHANNEL;
/// Longest lifetime a web token may be signed with: 400 days (browsers cap cookies there too).
pub const MAX_WEB_LIFETIME_MS: i64 = 400 * 86_400_000;

/// What a web hand-off token says: who, from which campaign, when it was handed over and until
/// when it may be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebClaims {
    /// The tenant whose site the contact is visiting.
    pub tenant_id: String,
    /// The campaign whose click handed the identity over.
    pub campaign_id: String,
    /// The contact.
    pub contact_id: String,
    /// When the click handed it over, ms since the Unix epoch.
    pub issued_at_ms: i64,
    /// First instant it is no longer valid, ms since the Unix epoch; after `issued_at_ms`, at
    /// most [`MAX_WEB_LIFETIME_MS`] later.
    pub expires_at_ms: i64,
}

/// A verified web token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebVerified {
    /// Its claims.
    pub claims: WebClaims,
    /// The key that signed it.
    pub key_id: String,
}

/// Why a web token was refused.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum WebTokenError {
    /// It failed the checks every token passes (encoding, key, tag, body).
    #[error(transparent)]
    Token(#[from] TokenError),
    /// A validly signed token of another kind (an open or a click).
    #[error("not a web token")]
    WrongKind,
    /// Past its expiry (or issued in the future beyond the allowed skew).
    #[error("web token expired")]
    Expired,
}

impl WebTokenError {
    /// A short, bounded label: the [`TokenError::reason`], `wrong_kind` or `expired`.
    pub fn reason(&self) -> &'static str {
        match self {
            WebTokenError::Token(e) => e.reason(),
            WebTokenError::WrongKind => "wrong_kind",
            WebTokenError::Expired => "expired",
        }
    }
}

fn check(c: &WebClaims) -> Result<(), TokenError> {
    for (field, value) in [
        ("tenant_id", &c.tenant_id),
        ("campaign_id", &c.campaign_id),
        ("contact_id", &c.contact_id),
    ] {
        if value.len() > MAX_ID_LEN {
            return Err(TokenError::FieldTooLong {
                field,
                len: value.len(),
                max: MAX_ID_LEN,
            });
        }
    }
    let life = c.expires_at_ms.checked_sub(c.issued_at_ms);
    if !life.is_some_and(|l| l > 0 && l <= MAX_WEB_LIFETIME_MS) {
        return Err(TokenError::InvalidClaims(
            "a web token expires after it is issued, within 400 days",
        ));
    }
    Ok(())
}

/// The body: kind/channel `0x84`, `issued_at_ms` (zigzag varint), `tenant_id`, `campaign_id`,
/// `contact_id` (strings), lifetime in ms (`expires_at_ms - issued_at_ms`, varint, 1..=400 days).
fn encode(c: &WebClaims) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        1 + 10 + 6 + c.tenant_id.len() + c.campaign_id.len() + c.contact_id.len() + 5,
    );
    out.push(WEB_KIND_CHANNEL);
    put_varint(&mut out, zigzag(c.issued_at_ms));
    put_bytes(&mut out, c.tenant_id.as_bytes());
    put_bytes(&mut out, c.campaign_id.as_bytes());
    put_bytes(&mut out, c.contact_id.as_bytes());
    put_varint(&mut out, (c.expires_at_ms - c.issued_at_ms) as u64);
    out
}

/// `Ok(None)`: an authenticated body of another kind.
fn decode(body: &[u8]) -> Result<Option<WebClaims>, TokenError> {
    let mut r = Reader { buf: body };
    if r.byte()? != WEB_KIND_CHANNEL {
        return Ok(None);
    }
    let issued_at_ms = unzigzag(r.varint()?);
    let tenant_id = r.str(MAX_ID_LEN)?.to_owned();
    let campaign_id = r.str(MAX_ID_LEN)?.to_owned();
    let contact_id = r.str(MAX_ID_LEN)?.to_owned();
    let life = r.varint()?;
    if life == 0 || life > MAX_WEB_LIFETIME_MS as u64 {
        return Err(TokenError::Malformed("web token lifetime out of range"));
    }
    if !r.buf.is_empty() {
        return Err(TokenError::Malformed("trailing bytes"));
    }
    Ok(Some(WebClaims {
        tenant_id,
        campaign_id,
        contact_id,
        issued_at_ms,
        expires_at_ms: issued_at_ms.saturating_add(life as i64),
    }))
}

impl KeyStore {
    /// Signs a web hand-off token with the signing key of the claims' tenant.
    pub fn sign_web(&self, claims: &WebClaims) -> Result<String, TokenError> {
        check(claims)?;
        let keyring = self
            .keyring_for(&claims.tenant_id)
            .ok_or(TokenError::NoTenantKey)?;
        Ok(keyring.seal_body(&encode(claims)))
    }

    /// Verifies a web hand-off token at `now_ms`: the checks of [`KeyStore::verify`] (the
    /// tenant's keys, the tag), then the kind (an open or click token is
    /// [`WebTokenError::WrongKind`]), then the time: valid from `issued_at_ms` (less one minute
    /// of clock skew) until before `expires_at_ms`.
    pub fn verify_web(&self, token: &str, now_ms: i64) -> Result<WebVerified, WebTokenError> {
        const SKEW_MS: i64 = 60_000;
        let found = self.open_body(token, |body, kid| {
            Ok(decode(body)?.map(|claims| WebVerified {
                claims,
                key_id: kid.to_owned(),
            }))
        })?;
        let v = found.ok_or(WebTokenError::WrongKind)?;
        if now_ms >= v.claims.expires_at_ms
            || now_ms < v.claims.issued_at_ms.saturating_sub(SKEW_MS)
        {
            return Err(WebTokenError::Expired);
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Channel, Claims, Key, Keyring, TokenKind};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    const NOW: i64 = 1_700_000_000_000;
    const DAY: i64 = 86_400_000;

    fn store() -> KeyStore {
        KeyStore::global(Keyring::new(Key::new("k1", &[7u8; 32]).unwrap(), vec![]).unwrap())
    }

    fn claims() -> WebClaims {
        WebClaims {
            tenant_id: "acme".into(),
            campaign_id: "spring".into(),
            contact_id: "c-42".into(),
            issued_at_ms: NOW,
            expires_at_ms: NOW + 30 * DAY,
        }
    }

    #[test]
    fn round_trip_and_short() {
        let k = store();
        let t = k.sign_web(&claims()).unwrap();
        let v = k.verify_web(&t, NOW + DAY).unwrap();
        assert_eq!(v.claims, claims());
        assert_eq!(v.key_id, "k1");
        // header 4, kind 1, time 6, ids 5 + 7 + 5, lifetime 5, tag 16: 49 bytes, 66 characters.
        assert_eq!(t.len(), 66);
        let raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
        assert_eq!(raw[4], 0x84, "kind 8, channel web");
    }

    #[test]
    fn expiry_is_checked_with_the_clock_passed_in() {
        let k = store();
        let t = k.sign_web(&claims()).unwrap();
        let exp = claims().expires_at_ms;
        assert!(k.verify_web(&t, exp - 1).is_ok());
        assert_eq!(k.verify_web(&t, exp).unwrap_err().reason(), "expired");
        assert_eq!(k.verify_web(&t, exp + DAY).unwrap_err().reason(), "expired");
        // Issued in the future beyond a minute of skew.
        assert!(k.verify_web(&t, NOW - 59_000).is_ok());
        assert_eq!(
            k.verify_web(&t, NOW - 61_000).unwrap_err().reason(),
            "expired"
        );
    }

    #[test]
    fn every_tampered_bit_is_refused() {
        let k = store();
        let t = k.sign_web(&claims()).unwrap();
        let raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
        for i in 0..raw.len() {
            for bit in 0..8 {
                let mut b = raw.clone();
                b[i] ^= 1 << bit;
                let forged = URL_SAFE_NO_PAD.encode(&b);
                assert!(k.verify_web(&forged, NOW).is_err(), "byte {i} bit {bit}");
            }
        }
        // Truncated, extended, another secret under the same key id.
        assert!(k.verify_web(&t[..t.len() - 1], NOW).is_err());
        assert!(k.verify_web(&format!("{t}A"), NOW).is_err());
        let other =
            KeyStore::global(Keyring::new(Key::new("k1", &[8u8; 32]).unwrap(), vec![]).unwrap());
        assert_eq!(
            other.verify_web(&t, NOW).unwrap_err().reason(),
            "bad_signature"
        );
    }

    #[test]
    fn kinds_are_never_confused() {
        let k = store();
        let web = k.sign_web(&claims()).unwrap();
        // A web token is not an open or a click ...
        assert_eq!(k.verify(&web).unwrap_err().reason(), "malformed");
        // ... and an open, a click or an unsubscribe is not a web token, though validly signed.
        for kind in [TokenKind::Open, TokenKind::Click, TokenKind::Unsubscribe] {
            let (link_id, url) = match kind {
                TokenKind::Click => ("l".into(), "https://shop.example.com/".into()),
                TokenKind::Open | TokenKind::Unsubscribe => (String::new(), String::new()),
            };
            let t = k
                .sign(&Claims {
                    kind,
                    tenant_id: "acme".into(),
                    campaign_id: "spring".into(),
                    message_id: "m".into(),
                    contact_id: "c-42".into(),
                    channel: Channel::Web,
                    issued_at_ms: NOW,
                    link_id,
                    url,
                    honeypot: false,
                    list_id: String::new(),
                    undo: false,
                })
                .unwrap();
            assert_eq!(k.verify_web(&t, NOW).unwrap_err().reason(), "wrong_kind");
        }
    }

    #[test]
    fn tenant_keys_scope_web_tokens() {
        let (a, b) = ("A".repeat(43), format!("{}A", "B".repeat(42)));
        let k = KeyStore::from_spec(&format!("acme/k1:{a},globex/k1:{b}")).unwrap();
        let t = k.sign_web(&claims()).unwrap();
        assert!(k.verify_web(&t, NOW).is_ok());
        let only_globex = KeyStore::from_spec(&format!("globex/k1:{b}")).unwrap();
        assert!(only_globex.verify_web(&t, NOW).is_err());
    }

    #[test]
    fn bad_claims_and_lifetimes_are_refused() {
        let k = store();
        for (issued, expires) in [(NOW, NOW), (NOW, NOW - 1), (NOW, NOW + 401 * DAY)] {
            let c = WebClaims {
                issued_at_ms: issued,
                expires_at_ms: expires,
                ..claims()
            };
            assert_eq!(k.sign_web(&c).unwrap_err().reason(), "invalid_claims");
        }
        let c = WebClaims {
            contact_id: "x".repeat(256),
            ..claims()
        };
        assert_eq!(k.sign_web(&c).unwrap_err().reason(), "field_too_long");
        // A validly tagged body with a zero lifetime or a trailing byte.
        let ring = k.global_keyring().unwrap();
        let mut body = encode(&claims());
        body.push(0);
        assert_eq!(
            k.verify_web(&ring.seal_body(&body), NOW)
                .unwrap_err()
                .reason(),
            "malformed"
        );
        let mut body = encode(&claims());
        let n = body.len();
        body.truncate(n - 5); // drop the 5-byte lifetime varint of 30 days
        body.push(0);
        assert_eq!(
            k.verify_web(&ring.seal_body(&body), NOW)
                .unwrap_err()
                .reason(),
            "malformed"
        );
    }

    #[test]
    fn garbage_never_panics() {
        let k = store();
        for s in ["", "A", "AAAA", "%%%", "ab.cd", &"A".repeat(5000)] {
            assert!(k.verify_web(s, NOW).is_err());
        }
    }
}
