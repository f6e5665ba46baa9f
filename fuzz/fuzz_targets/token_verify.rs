//! `Keyring::verify` on arbitrary input. Never panics; whatever verifies re-signs (with the key
//! that verified it) to the very same token, since v1 has exactly one encoding per claims and
//! key (docs/token-v1.md §3, "signing is deterministic").
//!
//! Input: a token as text; or `!` followed by raw signed bytes (header and body), to which
//! the target appends a correct tag (under `old`'s secret if the key id is `old`, else `k1`'s)
//! before encoding: this drives the body decoder past the MAC, where random text never gets.
#![no_main]

use std::sync::LazyLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use openclick_fuzz::{keyring, keyring_old_first, K1_SECRET, OLD_SECRET};
use openclick_token::{Keyring, TokenError, TokenKind};
use sha2::Sha256;

static KEYRING: LazyLock<Keyring> = LazyLock::new(keyring);
static KEYRING_OLD: LazyLock<Keyring> = LazyLock::new(keyring_old_first);

/// The MAC context block of docs/token-v1.md §3.
const CONTEXT: &[u8; 64] =
    b"openclick-token v1 HMAC-SHA256 tag for open/click tracking\0\0\0\0\0\0";

fn tag(secret: &[u8], signed: &[u8]) -> [u8; 16] {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(CONTEXT);
    mac.update(signed);
    let full = mac.finalize().into_bytes();
    let mut t = [0u8; 16];
    t.copy_from_slice(&full[..16]);
    t
}

/// Verifies `token`; returns the error, after checking the re-sign property on success.
fn check(token: &str) -> Option<TokenError> {
    match KEYRING.verify(token) {
        Ok(v) => {
            let signer: &Keyring = match v.key_id {
                "k1" => &KEYRING,
                "old" => &KEYRING_OLD,
                other => panic!("verified under a key id not in the keyring: {other:?}"),
            };
            match v.claims.kind {
                TokenKind::Open => {
                    assert!(v.claims.link_id.is_empty() && v.claims.url.is_empty());
                    assert!(!v.claims.honeypot, "an open verified with flags");
                }
                TokenKind::Click => {
                    assert!(openclick_token::validate_destination(&v.claims.url).is_ok());
                    assert!(v.claims.list_id.is_empty() && !v.claims.undo);
                }
                TokenKind::Unsubscribe => {
                    assert!(v.claims.link_id.is_empty() && v.claims.url.is_empty());
                    assert!(!v.claims.honeypot, "an unsubscribe verified with a click flag");
                }
            }
            let resigned = signer
                .sign(&v.claims)
                .unwrap_or_else(|e| panic!("verified claims do not sign: {e}: {:?}", v.claims));
            assert_eq!(resigned, token, "re-signed token differs: {:?}", v.claims);
            None
        }
        Err(e) => {
            // Error formatting must not panic either.
            let _ = (e.reason(), e.to_string(), e.is_retryable());
            Some(e)
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Some(signed) = data.strip_prefix(b"!") {
        let kid_is_old = signed.get(1) == Some(&3) && signed.get(2..5) == Some(b"old");
        let secret: &[u8] = if kid_is_old { &OLD_SECRET } else { &K1_SECRET };
        let mut bytes = signed.to_vec();
        bytes.extend_from_slice(&tag(secret, signed));
        let token = URL_SAFE_NO_PAD.encode(&bytes);
        if let Some(e) = check(&token) {
            assert!(
                !matches!(e, TokenError::BadSignature),
                "a correctly tagged token failed its tag check"
            );
        }
    } else {
        check(&String::from_utf8_lossy(data));
    }
});
