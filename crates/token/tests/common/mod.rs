//! Shared helpers of the token integration tests: the vector file, claims <-> JSON, and an
//! encoder written from `docs/token-v1.md` alone (not from `src/`), used to build and
//! cross-check tokens independently of the crate's own codec.

#![allow(dead_code)]

use std::path::PathBuf;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use openclick_token::{Channel, Claims, Key, Keyring, TokenError, TokenKind, WebClaims};
use serde_json::{json, Value};
use sha2::Sha256;

/// `crates/token/tests/vectors/token-v1.json`.
pub fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/token-v1.json")
}

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The committed vector file, parsed.
pub fn load_vectors() -> Value {
    let path = vectors_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A string field of a JSON object (panics with the field name if absent).
pub fn s<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("missing string field {field:?} in {v}"))
}

/// Decodes an unpadded base64url secret.
pub fn secret_bytes(b64: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(b64).expect("secret is base64url")
}

/// `(id, secret)` of every key in the vector file, the signing key first.
pub fn vector_keys(v: &Value) -> Vec<(String, Vec<u8>)> {
    v["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| (s(k, "id").to_owned(), secret_bytes(s(k, "secret"))))
        .collect()
}

/// A keyring holding only the key `id` of the vector file (so it signs with it).
pub fn single_key_ring(v: &Value, id: &str) -> Keyring {
    let (_, secret) = vector_keys(v)
        .into_iter()
        .find(|(k, _)| k == id)
        .unwrap_or_else(|| panic!("no key {id:?} in the vector file"));
    Keyring::new(Key::new(id, &secret).unwrap(), vec![]).unwrap()
}

pub fn kind_from_str(s: &str) -> TokenKind {
    match s {
        "open" => TokenKind::Open,
        "click" => TokenKind::Click,
        "unsubscribe" => TokenKind::Unsubscribe,
        other => panic!("unknown kind {other:?}"),
    }
}

/// Claims from their JSON form (`issued_at_ms` is a decimal string, see the spec; `honeypot`
/// is optional, a boolean, absent meaning `false`).
pub fn claims_from_json(c: &Value) -> Claims {
    Claims {
        kind: kind_from_str(s(c, "kind")),
        tenant_id: s(c, "tenant_id").to_owned(),
        campaign_id: s(c, "campaign_id").to_owned(),
        message_id: s(c, "message_id").to_owned(),
        contact_id: s(c, "contact_id").to_owned(),
        channel: s(c, "channel").parse().unwrap(),
        issued_at_ms: s(c, "issued_at_ms").parse().unwrap(),
        link_id: s(c, "link_id").to_owned(),
        url: s(c, "url").to_owned(),
        honeypot: match &c["honeypot"] {
            Value::Null => false,
            Value::Bool(b) => *b,
            other => panic!("honeypot must be a boolean, not {other}"),
        },
        list_id: c["list_id"].as_str().unwrap_or_default().to_owned(),
        undo: match &c["undo"] {
            Value::Null => false,
            Value::Bool(b) => *b,
            other => panic!("undo must be a boolean, not {other}"),
        },
    }
}

/// The JSON form of claims, as in the vector file: `honeypot` only when set, so claims without
/// it keep the form they had before the flags extension.
pub fn claims_to_json(c: &Claims) -> Value {
    let mut v = json!({
        "kind": c.kind.as_str(),
        "channel": c.channel.as_str(),
        "tenant_id": c.tenant_id,
        "campaign_id": c.campaign_id,
        "message_id": c.message_id,
        "contact_id": c.contact_id,
        "issued_at_ms": c.issued_at_ms.to_string(),
        "link_id": c.link_id,
        "url": c.url,
    });
    if c.honeypot {
        v["honeypot"] = json!(true);
    }
    if c.kind == TokenKind::Unsubscribe {
        v["list_id"] = json!(c.list_id);
    }
    if c.undo {
        v["undo"] = json!(true);
    }
    v
}

/// Web hand-off claims from their JSON form in the vector file (`web_valid`): the three ids,
/// `issued_at_ms` and `expires_at_ms` as decimal strings.
pub fn web_claims_from_json(c: &Value) -> WebClaims {
    WebClaims {
        tenant_id: s(c, "tenant_id").to_owned(),
        campaign_id: s(c, "campaign_id").to_owned(),
        contact_id: s(c, "contact_id").to_owned(),
        issued_at_ms: s(c, "issued_at_ms").parse().unwrap(),
        expires_at_ms: s(c, "expires_at_ms").parse().unwrap(),
    }
}

/// The JSON form of web hand-off claims, as in the vector file.
pub fn web_claims_to_json(c: &WebClaims) -> Value {
    json!({
        "tenant_id": c.tenant_id,
        "campaign_id": c.campaign_id,
        "contact_id": c.contact_id,
        "issued_at_ms": c.issued_at_ms.to_string(),
        "expires_at_ms": c.expires_at_ms.to_string(),
    })
}

/// The error class of a verification failure: `TokenError::reason()`.
pub fn class(e: &TokenError) -> &'static str {
    e.reason()
}

// ---- Encoder written from docs/token-v1.md ----

/// Section "MAC": the 64-byte context block.
pub const SPEC_CONTEXT: &[u8] = b"openclick-token v1 HMAC-SHA256 tag for open/click tracking";

/// LEB128 of an unsigned value, minimal.
pub fn spec_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// Zigzag of a signed 64-bit value: 0, -1, 1, -2 ... -> 0, 1, 2, 3 ...
pub fn spec_zigzag(v: i64) -> u64 {
    if v >= 0 {
        (v as u64) * 2
    } else {
        (!(v as u64)) * 2 + 1
    }
}

pub fn spec_string(out: &mut Vec<u8>, s: &[u8]) {
    spec_varint(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// Section 2, "Flags": the flag bits of claims (clicks: bit 0, honeypot; unsubscribes: bit 0,
/// undo).
pub fn spec_flags(c: &Claims) -> u64 {
    u64::from(c.honeypot) | u64::from(c.undo)
}

/// The body bytes of claims (kind/channel byte through the last field, then the flags varint
/// when the flags are not zero). Claims the spec forbids are encoded all the same (an open with
/// `honeypot` gets the flags byte after `contact_id`), so tests can forge such tokens.
pub fn spec_body(c: &Claims) -> Vec<u8> {
    let kind: u8 = match c.kind {
        TokenKind::Open => 1,
        TokenKind::Click => 2,
        TokenKind::Unsubscribe => 3,
    };
    let channel: u8 = match c.channel {
        Channel::Email => 1,
        Channel::Sms => 2,
        Channel::Push => 3,
        Channel::Web => 4,
    };
    let mut out = vec![kind * 16 + channel];
    spec_varint(&mut out, spec_zigzag(c.issued_at_ms));
    for f in [&c.tenant_id, &c.campaign_id, &c.message_id, &c.contact_id] {
        spec_string(&mut out, f.as_bytes());
    }
    if c.kind == TokenKind::Click {
        spec_string(&mut out, c.link_id.as_bytes());
        spec_string(&mut out, c.url.as_bytes());
    }
    if c.kind == TokenKind::Unsubscribe {
        spec_string(&mut out, c.list_id.as_bytes());
    }
    let flags = spec_flags(c);
    if flags != 0 {
        spec_varint(&mut out, flags);
    }
    out
}

/// HMAC-SHA256(secret, context block || signed)[..16].
pub fn spec_tag(secret: &[u8], signed: &[u8]) -> [u8; 16] {
    let mut block = [0u8; 64];
    block[..SPEC_CONTEXT.len()].copy_from_slice(SPEC_CONTEXT);
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(&block);
    mac.update(signed);
    let full = mac.finalize().into_bytes();
    let mut tag = [0u8; 16];
    tag.copy_from_slice(&full[..16]);
    tag
}

/// The raw bytes of a token: `version, len(key_id), key_id, body, tag` (tag over all before it).
pub fn spec_raw(version: u8, key_id: &[u8], secret: &[u8], body: &[u8]) -> Vec<u8> {
    let mut raw = vec![version, key_id.len() as u8];
    raw.extend_from_slice(key_id);
    raw.extend_from_slice(body);
    let tag = spec_tag(secret, &raw);
    raw.extend_from_slice(&tag);
    raw
}

pub fn b64(raw: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(raw)
}

pub fn unb64(token: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(token).unwrap()
}

/// The token for `claims` under `(key_id, secret)`, built from the spec only.
pub fn spec_token(key_id: &str, secret: &[u8], c: &Claims) -> String {
    b64(&spec_raw(1, key_id.as_bytes(), secret, &spec_body(c)))
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Section 11, the body of a web hand-off token: the kind/channel byte `0x84`, `issued_at_ms`
/// (zigzag varint), `tenant_id`, `campaign_id`, `contact_id` (strings), then the lifetime in ms
/// (varint). Any lifetime is encoded, 0 and over 400 days included, so tests can forge them.
pub fn spec_web_body(ids: [&str; 3], issued_at_ms: i64, lifetime_ms: u64) -> Vec<u8> {
    let mut out = vec![8 * 16 + 4];
    spec_varint(&mut out, spec_zigzag(issued_at_ms));
    for f in ids {
        spec_string(&mut out, f.as_bytes());
    }
    spec_varint(&mut out, lifetime_ms);
    out
}

/// The web hand-off token for `c` under `(key_id, secret)`, built from the spec only.
pub fn spec_web_token(key_id: &str, secret: &[u8], c: &WebClaims) -> String {
    let lifetime = u64::try_from(c.expires_at_ms - c.issued_at_ms).unwrap();
    let body = spec_web_body(
        [&c.tenant_id, &c.campaign_id, &c.contact_id],
        c.issued_at_ms,
        lifetime,
    );
    b64(&spec_raw(1, key_id.as_bytes(), secret, &body))
}
