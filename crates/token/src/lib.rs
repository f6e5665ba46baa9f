//! Signed open/click tracking tokens for openclick.
//!
//! An email carries `https://t.example.com/o/TOKEN.gif` (open pixel) and
//! `https://t.example.com/c/TOKEN` (tracked link). `TOKEN` is produced by [`Keyring::sign`] and
//! checked by [`Keyring::verify`]; it says who was sent what, when, and for clicks where to
//! redirect, and nobody without a signing secret can mint or alter one.
//!
//! ```
//! use openclick_token::{Channel, Claims, Key, Keyring, TokenKind};
//!
//! let keyring = Keyring::new(Key::new("k1", &[7u8; 32])?, vec![])?;
//! let claims = Claims {
//!     kind: TokenKind::Click,
//!     tenant_id: "acme".into(),
//!     campaign_id: "spring-sale".into(),
//!     message_id: "m-42".into(),
//!     contact_id: "c-7".into(),
//!     channel: Channel::Email,
//!     issued_at_ms: 1_700_000_000_000,
//!     link_id: "hero".into(),
//!     url: "https://shop.example.com/sale?utm=mail".into(),
//!     honeypot: false,
//!     list_id: String::new(),
//!     undo: false,
//! };
//! let token = keyring.sign(&claims)?;
//! assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
//! let verified = keyring.verify(&token)?;
//! assert_eq!(verified.claims, claims);
//! assert_eq!(verified.key_id, "k1");
//! # Ok::<(), openclick_token::TokenError>(())
//! ```
//!
//! # Token format (version 1)
//!
//! The normative description, including the verification order, the rule for growing the
//! format and the test vectors (`tests/vectors/token-v1.json`), is `docs/token-v1.md` at the
//! repository root; reference signers in Python and TypeScript are in `signers/`. In short:
//!
//! The token is the base64url encoding, without padding (alphabet `A-Z a-z 0-9 - _`, so never
//! a `.`, `/`, `+` or `=`), of these bytes:
//!
//! | bytes      | field                                                                     |
//! |------------|---------------------------------------------------------------------------|
//! | 1          | version, `0x01`                                                           |
//! | 1          | key id length `n`, 1..=16                                                 |
//! | n          | key id, ASCII `[A-Za-z0-9_-]`                                             |
//! | 1          | `kind << 4 \| channel`: kind 1 open, 2 click, 3 unsubscribe; channel 1 email, 2 sms, 3 push, 4 web (the proto enum numbers) |
//! | 1..=10     | `issued_at_ms`, zigzag-encoded LEB128 varint                              |
//! | var        | `tenant_id`, `campaign_id`, `message_id`, `contact_id`: each a varint byte length then UTF-8 bytes (<= 255) |
//! | var        | clicks only: `link_id` (<= 255 bytes) then `url` (<= 2048 bytes), same encoding |
//! | 0 or 1..=10 | clicks only: flags, a minimal varint present only when non-zero; bit 0 = [`Claims::honeypot`]; other bits are refused |
//! | var        | unsubscribes only (instead of the click fields): `list_id` (<= 255 bytes, empty: the whole tenant), then flags as above with bit 0 = [`Claims::undo`] |
//! | 16         | tag: HMAC-SHA256 under the key's secret of a fixed 64-byte context block (`"openclick-token v1 HMAC-SHA256 tag for open/click tracking"`, NUL-padded) followed by every preceding byte, truncated to its first 16 bytes (128 bits) |
//!
//! Decoding is strict: varints must be minimal, lengths must fit, strings must be UTF-8, flags
//! only on clicks, non-zero and with known bits only, no trailing bytes, and tokens over
//! [`MAX_TOKEN_LEN`] characters are refused before decoding. An open token with 4 short ids is
//! about 100 characters.
//!
//! # Key rotation
//!
//! A [`Keyring`] holds one signing key and any number of verify-only keys, each under a short
//! id that every token carries in clear, so verification picks the right secret directly. In
//! config it is a spec string, `"k2:SECRET,k1:SECRET"` ([`Keyring::from_spec`]): the first key
//! signs, the rest only verify. To rotate:
//!
//! 1. deploy `k1:OLD` everywhere (k1 signs);
//! 2. add the new key as verify-only, `k1:OLD,k2:NEW`, everywhere, so every verifier knows k2
//!    before any token signed with it exists;
//! 3. promote it: `k2:NEW,k1:OLD` (k2 signs, tokens already in inboxes still verify under k1);
//! 4. once tokens signed by k1 are old enough not to matter, drop it: `k2:NEW`. Its tokens then
//!    fail with [`TokenError::UnknownKey`].
//!
//! # Security properties
//!
//! - **Integrity.** Every byte of the payload, the version and key id included, is covered by
//!   the 128-bit tag, which is compared in constant time. A tampered, truncated or extended
//!   token never verifies; forging one means forging HMAC-SHA256.
//! - **No open redirect.** A click's destination is inside the signed payload, so the edge only
//!   ever redirects to a URL the sender signed, and it must be an absolute `http`/`https` URL
//!   ([`validate_destination`]), checked at sign time and again at verify time (so a token
//!   minted by an older or buggy signer still cannot redirect to `javascript:`, `data:` or a
//!   scheme-relative URL).
//! - **Not secret.** Claims are signed, not encrypted: anyone holding a token can decode its ids.
//!   Put no personal data in them.
//! - **Not single-use.** A token verifies every time; deduplication is the consumers' job.
//! - Secrets never appear in `Debug` output or error messages.
//!
//! Verification of an open token costs one base64 decode into a stack buffer, one clone of a
//! pre-keyed HMAC state (the key pads and the context block are compressed once, when the key
//! is loaded), three SHA-256 compressions for payloads up to 119 bytes, and the allocation of
//! the claim strings.

mod b64;
mod codec;
mod dest;
mod error;
mod keyring;
mod web;

#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

pub use dest::validate_destination;
pub use error::TokenError;
pub use keyring::{Key, KeyStore, Keyring, Verified, VerifiedRef};
pub use web::{WebClaims, WebTokenError, WebVerified, MAX_WEB_LIFETIME_MS, WEB_KIND};

/// Longest token accepted by [`Keyring::verify`], in characters (checked before decoding).
/// 4.5 KiB: just above the longest token [`Keyring::sign`] can produce (every id at
/// [`MAX_ID_LEN`], a [`MAX_URL_LEN`] URL, a 16-character key id), so every signable token
/// verifies. Typical tokens are 100 to 300 characters.
pub const MAX_TOKEN_LEN: usize = 4608;
/// Longest id (`tenant_id`, `campaign_id`, `message_id`, `contact_id`, `link_id`), in bytes.
pub const MAX_ID_LEN: usize = 255;
/// Longest click destination URL, in bytes.
pub const MAX_URL_LEN: usize = 2048;
/// Longest key id, in characters.
pub const MAX_KEY_ID_LEN: usize = 16;

/// Longest payload `sign` can produce: header, kind/channel, 10-byte time varint, five ids
/// with 2-byte length varints, the URL with its 2-byte length, the 1-byte flags, the tag. (An
/// unsubscribe's body, five ids and a 1-byte flags varint, is shorter.)
const MAX_PAYLOAD_LEN: usize =
    2 + MAX_KEY_ID_LEN + 1 + 10 + 5 * (2 + MAX_ID_LEN) + (2 + MAX_URL_LEN) + 1 + codec::TAG_LEN;
const _: () = assert!(MAX_PAYLOAD_LEN.div_ceil(3) * 4 <= MAX_TOKEN_LEN);

/// What a token tracks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// The open pixel (`/o/TOKEN.gif`).
    Open,
    /// A tracked link (`/c/TOKEN`).
    Click,
    /// A one-click unsubscribe link (`/u/TOKEN`, RFC 8058): the contact opts out of the tenant's
    /// mail, or of one list ([`Claims::list_id`]). Kind nibble 3 (docs/token-v1.md §2).
    Unsubscribe,
}

impl TokenKind {
    /// `"open"` or `"click"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Open => "open",
            TokenKind::Click => "click",
            TokenKind::Unsubscribe => "unsubscribe",
        }
    }
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The channel a tracked message was sent on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Email.
    Email,
    /// SMS / text message.
    Sms,
    /// Mobile push notification.
    Push,
    /// A web page or in-app message.
    Web,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Channel; 4] = [Channel::Email, Channel::Sms, Channel::Push, Channel::Web];

    /// `"email"`, `"sms"`, `"push"` or `"web"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Push => "push",
            Channel::Web => "web",
        }
    }

    /// The wire code, equal to the `openclick.v1.Channel` proto enum number (1..=4).
    pub fn code(self) -> u8 {
        match self {
            Channel::Email => 1,
            Channel::Sms => 2,
            Channel::Push => 3,
            Channel::Web => 4,
        }
    }

    /// The channel with this wire / proto code, if any.
    pub fn from_code(code: u8) -> Option<Channel> {
        match code {
            1 => Some(Channel::Email),
            2 => Some(Channel::Sms),
            3 => Some(Channel::Push),
            4 => Some(Channel::Web),
            _ => None,
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A channel name other than `email`, `sms`, `push` or `web`.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("unknown channel {0:?} (expected email, sms, push or web)")]
pub struct ParseChannelError(pub String);

impl FromStr for Channel {
    type Err = ParseChannelError;

    /// Parses `email`, `sms`, `push` or `web` (exact, lower case).
    fn from_str(s: &str) -> Result<Channel, ParseChannelError> {
        match s {
            "email" => Ok(Channel::Email),
            "sms" => Ok(Channel::Sms),
            "push" => Ok(Channel::Push),
            "web" => Ok(Channel::Web),
            _ => Err(ParseChannelError(s.chars().take(32).collect())),
        }
    }
}

/// What a token says, borrowed from the decoded token: [`Claims`] without an allocation.
/// [`KeyStore::verify_then`] hands one to its closure; [`ClaimsRef::to_owned`] makes the
/// owned form, [`Claims::view`] borrows one back. Field meanings are [`Claims`]'.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClaimsRef<'a> {
    /// Open, click or unsubscribe.
    pub kind: TokenKind,
    /// The sender's tenant (account) id.
    pub tenant_id: &'a str,
    /// The campaign id.
    pub campaign_id: &'a str,
    /// The message id.
    pub message_id: &'a str,
    /// The contact id.
    pub contact_id: &'a str,
    /// The channel the message was sent on.
    pub channel: Channel,
    /// When the message was sent, milliseconds since the Unix epoch (UTC).
    pub issued_at_ms: i64,
    /// Clicks: the link's id. Empty otherwise.
    pub link_id: &'a str,
    /// Clicks: the destination. Empty otherwise.
    pub url: &'a str,
    /// Clicks: a honeypot link.
    pub honeypot: bool,
    /// Unsubscribes: the list. Empty otherwise.
    pub list_id: &'a str,
    /// Unsubscribes: an undo token.
    pub undo: bool,
}

impl ClaimsRef<'_> {
    /// The owned claims.
    pub fn to_owned(&self) -> Claims {
        Claims {
            kind: self.kind,
            tenant_id: self.tenant_id.to_owned(),
            campaign_id: self.campaign_id.to_owned(),
            message_id: self.message_id.to_owned(),
            contact_id: self.contact_id.to_owned(),
            channel: self.channel,
            issued_at_ms: self.issued_at_ms,
            link_id: self.link_id.to_owned(),
            url: self.url.to_owned(),
            honeypot: self.honeypot,
            list_id: self.list_id.to_owned(),
            undo: self.undo,
        }
    }
}

impl Claims {
    /// These claims, borrowed.
    pub fn view(&self) -> ClaimsRef<'_> {
        ClaimsRef {
            kind: self.kind,
            tenant_id: &self.tenant_id,
            campaign_id: &self.campaign_id,
            message_id: &self.message_id,
            contact_id: &self.contact_id,
            channel: self.channel,
            issued_at_ms: self.issued_at_ms,
            link_id: &self.link_id,
            url: &self.url,
            honeypot: self.honeypot,
            list_id: &self.list_id,
            undo: self.undo,
        }
    }
}

/// What a token says. Ids are opaque UTF-8 of at most [`MAX_ID_LEN`] bytes (empty allowed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// Open or click.
    pub kind: TokenKind,
    /// The sender's tenant (account) id.
    pub tenant_id: String,
    /// The campaign id.
    pub campaign_id: String,
    /// The message (one send to one contact) id.
    pub message_id: String,
    /// The contact (recipient) id.
    pub contact_id: String,
    /// The channel the message was sent on.
    pub channel: Channel,
    /// When the message was sent, milliseconds since the Unix epoch (UTC).
    pub issued_at_ms: i64,
    /// Clicks: the link's id within the message. Empty for opens.
    pub link_id: String,
    /// Clicks: the destination, an absolute http(s) URL (see [`validate_destination`]).
    /// Empty for opens.
    pub url: String,
    /// Clicks: a honeypot link, placed where no person sees or clicks it (hidden in the
    /// message's HTML), so a hit on it is a machine following every link. Carried by the click's
    /// flags extension (docs/token-v1.md §2: bit 0 of a flags varint after `url`); a click
    /// without it encodes exactly as before the extension. Always `false` for opens: signing an
    /// open with it is refused and an open token carrying flags is `malformed`.
    ///
    /// Senders must not emit honeypot links until every verifier that may see them runs a
    /// version that knows the extension: older verifiers reject them as malformed.
    pub honeypot: bool,
    /// Unsubscribes: the list the contact opts out of; empty means every mail of the tenant
    /// (the contact across the tenant). Empty for opens and clicks. At most [`MAX_ID_LEN`]
    /// bytes.
    pub list_id: String,
    /// Unsubscribes: an *undo* token, minted by the edge after an unsubscribe (its
    /// `issued_at_ms` is the time of that unsubscribe) so the person can re-subscribe for a
    /// short window. Bit 0 of an unsubscribe's flags (docs/token-v1.md §2). Always `false` for
    /// opens and clicks.
    pub undo: bool,
}
