//! Conformance of the crate to the committed token v1 test vectors
//! (`tests/vectors/token-v1.json`, format described in `docs/token-v1.md`).
//!
//! The normal tests only read the committed file: every valid vector must sign to exactly its
//! token (signing is deterministic) and verify back to its claims and key id, and every
//! tampered vector must fail with its error class. The Python and TypeScript reference signers
//! (`signers/`) check themselves against the same file.
//!
//! The file was produced once by the ignored test [`generate_vectors`]:
//!
//! ```text
//! CARGO_TARGET_DIR=... cargo test -p openclick-token --test vectors -- --ignored generate_vectors
//! ```
//!
//! which builds every token with an encoder written from the spec (`common::spec_*`), checks
//! that the crate signs the same bytes and that the crate's verifier returns the error class
//! written by hand next to each tampered case, then rewrites the file. Regenerating must not
//! change it (`git diff` is empty) unless the format itself changed.

mod common;

use base64::Engine;
use common::*;
use openclick_token::{Claims, Key, KeyStore, Keyring, TokenKind, WebClaims, MAX_TOKEN_LEN};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Class a route check reports when a token of the other kind is presented on it.
const WRONG_KIND: &str = "wrong_kind";

fn full_keyring(v: &Value) -> Keyring {
    Keyring::from_spec(s(v, "keyring_spec")).unwrap()
}

/// Verifies as the edge does: token, then (when a route is given) the kind the route expects.
fn verify_class(
    kr: &Keyring,
    token: &str,
    route: Option<&str>,
) -> Result<(Claims, String), String> {
    match kr.verify(token) {
        Err(e) => Err(class(&e).to_owned()),
        Ok(ok) => match route {
            Some(r) if kind_from_str(r) != ok.claims.kind => Err(WRONG_KIND.to_owned()),
            _ => Ok((ok.claims, ok.key_id.to_owned())),
        },
    }
}

#[test]
fn vector_file_is_consistent() {
    let v = load_vectors();
    assert_eq!(s(&v, "format"), "openclick-token/v1 test vectors");
    let keys = vector_keys(&v);
    assert!(keys.len() >= 2);
    let kr = full_keyring(&v);
    let ids: Vec<_> = keys.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(kr.key_ids().collect::<Vec<_>>(), ids);
    for (id, secret) in &keys {
        Key::new(id, secret).unwrap();
    }
    assert!(v["valid"].as_array().unwrap().len() >= 10);
    assert!(v["invalid"].as_array().unwrap().len() >= 20);
}

#[test]
fn valid_vectors_sign_to_the_expected_token() {
    let v = load_vectors();
    for case in v["valid"].as_array().unwrap() {
        let name = s(case, "name");
        let claims = claims_from_json(&case["claims"]);
        let kr = single_key_ring(&v, s(case, "key_id"));
        let token = kr.sign(&claims).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(token, s(case, "token"), "{name}: sign");
        assert_eq!(
            hex(&unb64(&token)),
            s(case, "payload_hex"),
            "{name}: payload"
        );
        // Deterministic: signing again gives the same token.
        assert_eq!(kr.sign(&claims).unwrap(), token, "{name}: determinism");
    }
}

#[test]
fn valid_vectors_verify() {
    let v = load_vectors();
    let kr = full_keyring(&v);
    for case in v["valid"].as_array().unwrap() {
        let name = s(case, "name");
        let claims = claims_from_json(&case["claims"]);
        let token = s(case, "token");
        let got = kr.verify(token).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got.claims, claims, "{name}");
        assert_eq!(got.key_id, s(case, "key_id"), "{name}");
        // The route of its own kind accepts it.
        let route = claims.kind.as_str();
        assert!(verify_class(&kr, token, Some(route)).is_ok(), "{name}");
        // A keyring holding only that key verifies it too; one without it does not.
        let single = single_key_ring(&v, s(case, "key_id"));
        assert!(single.verify(token).is_ok(), "{name}");
        let other = vector_keys(&v)
            .into_iter()
            .find(|(id, _)| id != s(case, "key_id"))
            .unwrap();
        let without = single_key_ring(&v, &other.0);
        assert_eq!(
            without.verify(token).map(|_| ()).map_err(|e| class(&e)),
            Err("unknown_key"),
            "{name}"
        );
    }
}

#[test]
fn valid_claims_round_trip_under_every_key() {
    let v = load_vectors();
    let all = full_keyring(&v);
    for (id, _) in vector_keys(&v) {
        let kr = single_key_ring(&v, &id);
        for case in v["valid"].as_array().unwrap() {
            let claims = claims_from_json(&case["claims"]);
            let token = kr.sign(&claims).unwrap();
            let got = all.verify(&token).unwrap();
            assert_eq!((got.claims, got.key_id), (claims, id.as_str()));
        }
    }
}

#[test]
fn tampered_vectors_fail_with_their_class() {
    let v = load_vectors();
    let kr = full_keyring(&v);
    let cases = v["invalid"].as_array().unwrap();
    for case in cases {
        let name = s(case, "name");
        let want = s(case, "error");
        let route = case["route"].as_str();
        match verify_class(&kr, s(case, "token"), route) {
            Ok(ok) => panic!("{name}: verified as {ok:?}, expected {want}"),
            Err(got) => assert_eq!(got, want, "{name}"),
        }
    }
    // Every class the spec lists for verification appears at least once.
    for class in [
        "malformed",
        "too_long",
        "bad_signature",
        "unknown_key",
        "unsupported_version",
        "invalid_destination",
        WRONG_KIND,
    ] {
        assert!(
            cases.iter().any(|c| s(c, "error") == class),
            "no tampered vector of class {class}"
        );
    }
}

/// The click flags extension in the vectors: every honeypot vector is a click whose signed bytes
/// are those of the same click without the flag plus the flags varint `0x01`, and the flag comes
/// back from verification; no vector without it carries any flags byte.
#[test]
fn honeypot_vectors_are_the_plain_click_plus_the_flags_byte() {
    let v = load_vectors();
    let kr = full_keyring(&v);
    let mut honeypots = 0;
    for case in v["valid"].as_array().unwrap() {
        let name = s(case, "name");
        let claims = claims_from_json(&case["claims"]);
        let raw = unb64(s(case, "token"));
        let signed = &raw[..raw.len() - 16];
        let key_id = s(case, "key_id");
        let header = 2 + key_id.len();
        let plain = spec_body(&Claims {
            honeypot: false,
            undo: false,
            ..claims.clone()
        });
        if claims.undo {
            // The unsubscribe flags (bit 0, undo): the same rule as a click's.
            assert_eq!(claims.kind, TokenKind::Unsubscribe, "{name}");
            assert_eq!(&signed[header..], [&plain[..], &[0x01]].concat(), "{name}");
            assert!(kr.verify(s(case, "token")).unwrap().claims.undo, "{name}");
        } else if claims.honeypot {
            honeypots += 1;
            assert_eq!(claims.kind, TokenKind::Click, "{name}");
            assert_eq!(case["claims"]["honeypot"], json!(true), "{name}");
            assert_eq!(&signed[header..], [&plain[..], &[0x01]].concat(), "{name}");
            assert!(
                kr.verify(s(case, "token")).unwrap().claims.honeypot,
                "{name}"
            );
        } else {
            assert!(case["claims"].get("honeypot").is_none(), "{name}");
            assert_eq!(&signed[header..], &plain[..], "{name}");
        }
    }
    assert!(honeypots >= 3, "{honeypots} honeypot vectors");
}

/// The store of the whole vector keyring (every key global), as an edge without tenant keys.
fn full_store(v: &Value) -> KeyStore {
    KeyStore::from_spec(s(v, "keyring_spec")).unwrap()
}

fn time(case: &Value, field: &str) -> i64 {
    s(case, field).parse().unwrap()
}

#[test]
fn web_valid_vectors_sign_and_verify() {
    let v = load_vectors();
    let store = full_store(&v);
    let tracking = full_keyring(&v);
    let cases = v["web_valid"].as_array().unwrap();
    assert!(cases.len() >= 5);
    for case in cases {
        let name = s(case, "name");
        let claims = web_claims_from_json(&case["claims"]);
        let token = s(case, "token");
        let at = time(case, "verify_at_ms");
        // Signing is deterministic: the vector's key signs the claims to exactly the token.
        let own = KeyStore::global(single_key_ring(&v, s(case, "key_id")));
        assert_eq!(own.sign_web(&claims).unwrap(), token, "{name}: sign");
        assert_eq!(
            hex(&unb64(token)),
            s(case, "payload_hex"),
            "{name}: payload"
        );
        // Verified at its time, with the whole keyring.
        let got = store
            .verify_web(token, at)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got.claims, claims, "{name}");
        assert_eq!(got.key_id, s(case, "key_id"), "{name}");
        // The expiry rule at its two edges, and never an open, click or unsubscribe.
        let reason = |at| store.verify_web(token, at).unwrap_err().reason();
        assert_eq!(reason(claims.expires_at_ms), "expired", "{name}");
        if let Some(early) = claims.issued_at_ms.checked_sub(60_001) {
            assert_eq!(reason(early), "expired", "{name}");
        }
        assert!(store.verify_web(token, claims.expires_at_ms - 1).is_ok());
        assert_eq!(
            tracking.verify(token).map(|_| ()).map_err(|e| class(&e)),
            Err("malformed"),
            "{name}"
        );
    }
}

#[test]
fn web_invalid_vectors_fail_with_their_class() {
    let v = load_vectors();
    let store = full_store(&v);
    let cases = v["web_invalid"].as_array().unwrap();
    for case in cases {
        let name = s(case, "name");
        let want = s(case, "error");
        match store.verify_web(s(case, "token"), time(case, "verify_at_ms")) {
            Ok(ok) => panic!("{name}: verified as {ok:?}, expected {want}"),
            Err(e) => assert_eq!(e.reason(), want, "{name}"),
        }
    }
    for class in [
        "malformed",
        "too_long",
        "bad_signature",
        "unknown_key",
        "unsupported_version",
        "wrong_kind",
        "expired",
    ] {
        assert!(
            cases.iter().any(|c| s(c, "error") == class),
            "no web_invalid vector of class {class}"
        );
    }
}

/// The first web vector, assembled byte by byte from the table of docs/token-v1.md §11 (not
/// with the spec encoder of `common`, nor the crate's codec), and its tag computed with the
/// `hmac` crate over the §3 context block. The spec's own worked example (§11) shows the same
/// bytes and token.
#[test]
fn web_handoff_vector_assembled_by_hand() {
    let v = load_vectors();
    let case = &v["web_valid"][0];
    assert_eq!(s(case, "name"), "web-handoff");
    let mut raw: Vec<u8> = Vec::new();
    raw.extend_from_slice(&[0x01]); // 1 version
    raw.extend_from_slice(&[0x02, b'k', b'2']); // 2, 3 key id length, key id "k2"
    raw.extend_from_slice(&[0x84]); // 4 kind 8 (web hand-off) << 4 | channel 4 (web)
                                    // 5 issued_at_ms 1717000000000: zigzag 3434000000000, LEB128 (as in the §9 example)
    raw.extend_from_slice(&[0x80, 0xc8, 0xe6, 0xd2, 0xf8, 0x63]);
    raw.push(8); // 6 tenant_id
    raw.extend_from_slice(b"tenant-1");
    raw.push(12); // 7 campaign_id
    raw.extend_from_slice(b"camp-2024-05");
    raw.push(13); // 8 contact_id
    raw.extend_from_slice(b"contact-12345");
    // 9 lifetime 30 days = 2592000000 ms = 0b1001_1010_0111_1110_1100_1000_0000_0000, 7 bits a byte
    // from the least significant: 0000000, 0010000, 1111011, 1010011, 1001 -> 80 90 fb d3 09
    let lifetime = [0x80u8, 0x90, 0xfb, 0xd3, 0x09];
    raw.extend_from_slice(&lifetime);
    let groups = lifetime.iter().enumerate();
    let value: u64 = groups.map(|(i, b)| u64::from(b & 0x7f) << (7 * i)).sum();
    assert_eq!(value, 30 * 86_400_000);
    // 10 tag: HMAC-SHA256(secret, context block || the bytes above), first 16 bytes.
    let secret = &vector_keys(&v)[0];
    assert_eq!(secret.0, "k2");
    let mut block = [0u8; 64];
    block[..58].copy_from_slice(b"openclick-token v1 HMAC-SHA256 tag for open/click tracking");
    let mut mac = <hmac::Hmac<Sha256> as hmac::Mac>::new_from_slice(&secret.1).unwrap();
    hmac::Mac::update(&mut mac, &block);
    hmac::Mac::update(&mut mac, &raw);
    let full = hmac::Mac::finalize(mac).into_bytes();
    raw.extend_from_slice(&full[..16]);

    assert_eq!(hex(&raw), s(case, "payload_hex"));
    let token = b64(&raw);
    assert_eq!(token, s(case, "token"));
    assert_eq!(token.len(), 91);
    let c = &case["claims"];
    assert_eq!(
        (s(c, "issued_at_ms"), s(c, "expires_at_ms")),
        ("1717000000000", "1719592000000")
    );
    // The worked example of the spec is this vector.
    let spec = std::fs::read_to_string(repo_root().join("docs/token-v1.md")).unwrap();
    assert!(
        spec.contains(&token),
        "docs/token-v1.md §11 shows another token"
    );
    assert!(
        spec.contains(&hex(&full[..8])),
        "docs/token-v1.md §11 shows another tag"
    );
}

// ---------------------------------------------------------------------------------------------
// Generator (run once, by hand; see the module docs).

/// Deterministic test secret: SHA-256("openclick-token v1 test key " || id || [i]) for
/// i = 0, 1, ..., concatenated and cut to `len` bytes.
fn test_secret(id: &str, len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0u8;
    while out.len() < len {
        let mut h = Sha256::new();
        h.update(b"openclick-token v1 test key ");
        h.update(id.as_bytes());
        h.update([i]);
        out.extend_from_slice(&h.finalize());
        i += 1;
    }
    out.truncate(len);
    out
}

fn claims(kind: TokenKind, channel: &str, ids: [&str; 4], t: i64, link: &str, url: &str) -> Claims {
    Claims {
        kind,
        tenant_id: ids[0].into(),
        campaign_id: ids[1].into(),
        message_id: ids[2].into(),
        contact_id: ids[3].into(),
        channel: channel.parse().unwrap(),
        issued_at_ms: t,
        link_id: link.into(),
        url: url.into(),
        honeypot: false,
        list_id: String::new(),
        undo: false,
    }
}

/// An unsubscribe for `ids` (list `list`, empty: the whole tenant).
fn unsub(channel: &str, ids: [&str; 4], t: i64, list: &str, undo: bool) -> Claims {
    Claims {
        list_id: list.into(),
        undo,
        ..claims(TokenKind::Unsubscribe, channel, ids, t, "", "")
    }
}

/// `c` as a honeypot link (the click flags extension, bit 0).
fn honeypot(mut c: Claims) -> Claims {
    c.honeypot = true;
    c
}

/// Replaces byte `i` (negative: from the end) of the decoded token.
fn with_byte(token: &str, i: isize, f: impl Fn(u8) -> u8) -> String {
    let mut raw = unb64(token);
    let i = if i < 0 {
        raw.len() - i.unsigned_abs()
    } else {
        i as usize
    };
    raw[i] = f(raw[i]);
    b64(&raw)
}

#[test]
#[ignore = "generator: rewrites tests/vectors/token-v1.json"]
fn generate_vectors() {
    use TokenKind::{Click, Open};
    let unsub_ids = ["acme", "", "", "c-42"];

    // Keys: (id, secret length). k2 signs, the others verify only.
    let key_specs: [(&str, usize); 5] = [
        ("k2", 32),
        ("k1", 48),
        ("2019-rot_A", 100), // longer than the 64-byte SHA-256 block: HMAC hashes it first
        ("abcdefghijklmnop", 1024), // longest id, longest secret
        ("x", 33),
    ];
    let keys: Vec<(String, Vec<u8>)> = key_specs
        .iter()
        .map(|&(id, len)| (id.to_owned(), test_secret(id, len)))
        .collect();
    let secret_of = |id: &str| keys.iter().find(|(k, _)| k == id).unwrap().1.clone();
    let spec = keys
        .iter()
        .map(|(id, sec)| format!("{id}:{}", b64(sec)))
        .collect::<Vec<_>>()
        .join(",");
    let kr = Keyring::from_spec(&spec).unwrap();

    let ids = [
        "tenant-1",
        "camp-2024-05",
        "01HZX3K4M5N6P7Q8R9S0T1V2W3",
        "contact-12345",
    ];
    let long_url = format!(
        "https://cdn.example.com/{}?utm_source=mail",
        "p".repeat(260)
    );
    let i255 = "i".repeat(255);
    let max_url = format!("https://example.com/{}", "u".repeat(2048 - 20));
    let id127 = "a".repeat(127);
    let id128 = "b".repeat(128);
    let valid: Vec<(&str, &str, Claims)> = vec![
        (
            "open-email",
            "k2",
            claims(Open, "email", ids, 1_717_000_000_000, "", ""),
        ),
        (
            "click-email",
            "k2",
            claims(
                Click,
                "email",
                ids,
                1_717_000_000_000,
                "cta-1",
                "https://shop.example.com/sale?utm_source=mail&utm_campaign=spring#top",
            ),
        ),
        (
            "open-sms-verify-only-key",
            "k1",
            claims(
                Open,
                "sms",
                ["acme", "c-1", "m-1", "u-1"],
                1_700_000_000_123,
                "",
                "",
            ),
        ),
        (
            "click-push-long-secret",
            "2019-rot_A",
            claims(
                Click,
                "push",
                ["acme", "c-1", "m-2", "u-1"],
                1_700_000_000_000,
                "deep-link",
                "http://127.0.0.1:8080/x",
            ),
        ),
        (
            "open-web-empty-ids-time-zero",
            "x",
            claims(Open, "web", ["", "", "", ""], 0, "", ""),
        ),
        (
            "open-negative-time",
            "k2",
            claims(Open, "email", ids, -1, "", ""),
        ),
        (
            "open-time-63",
            "k2",
            claims(Open, "email", ["t", "c", "m", "u"], 63, "", ""),
        ),
        (
            "open-time-64-two-byte-varint",
            "k2",
            claims(Open, "email", ["t", "c", "m", "u"], 64, "", ""),
        ),
        (
            "open-time-minus-64",
            "k2",
            claims(Open, "email", ["t", "c", "m", "u"], -64, "", ""),
        ),
        (
            "open-time-i64-max",
            "k1",
            claims(Open, "push", ids, i64::MAX, "", ""),
        ),
        (
            "click-time-i64-min",
            "k1",
            claims(Click, "sms", ids, i64::MIN, "l", "https://example.com"),
        ),
        (
            "open-unicode-ids",
            "k2",
            claims(
                Open,
                "email",
                [
                    "t\u{e9}nant-\u{fc}",
                    "\u{30ad}\u{30e3}\u{30f3}\u{30da}\u{30fc}\u{30f3}",
                    "msg-\u{1f4e7}",
                    "\u{0}nul",
                ],
                1_717_000_000_000,
                "",
                "",
            ),
        ),
        (
            "open-id-127-and-128-bytes",
            "k2",
            claims(
                Open,
                "email",
                [&id127, &id128, "m", "u"],
                1_717_000_000_000,
                "",
                "",
            ),
        ),
        (
            "click-ipv6-port-empty-link-id",
            "k2",
            claims(
                Click,
                "web",
                ids,
                1_717_000_000_000,
                "",
                "https://[2001:db8::1]:8443/p?q=1",
            ),
        ),
        (
            "click-url-over-127-bytes",
            "k2",
            claims(Click, "email", ids, 1_717_000_000_000, "hero", &long_url),
        ),
        // The click flags extension: bit 0, a honeypot link. Same bytes as the click without
        // it, plus the flags varint 0x01 before the tag.
        (
            "click-email-honeypot",
            "k2",
            honeypot(claims(
                Click,
                "email",
                ids,
                1_717_000_000_000,
                "cta-1",
                "https://shop.example.com/sale?utm_source=mail&utm_campaign=spring#top",
            )),
        ),
        (
            "click-sms-honeypot-verify-only-key-time-i64-min",
            "k1",
            honeypot(claims(
                Click,
                "sms",
                ["acme", "c-1", "m-3", "u-1"],
                i64::MIN,
                "",
                "http://127.0.0.1:8080/x",
            )),
        ),
        (
            "click-longest-possible-token-honeypot",
            "abcdefghijklmnop",
            honeypot(claims(
                Click,
                "email",
                [&i255, &i255, &i255, &i255],
                i64::MIN,
                &i255,
                &max_url,
            )),
        ),
        (
            "click-largest-token",
            "abcdefghijklmnop",
            claims(
                Click,
                "email",
                [&i255, &i255, &i255, &i255],
                1_717_000_000_000,
                &i255,
                &max_url,
            ),
        ),
        // Kind 3, unsubscribe (RFC 8058 one-click): the five ids, then list_id (empty: the
        // contact across the tenant), then flags (bit 0: an undo minted by the edge).
        (
            "unsubscribe-email-tenant-wide",
            "k2",
            unsub("email", unsub_ids, 1_717_000_000_000, "", false),
        ),
        (
            "unsubscribe-email-one-list",
            "k2",
            unsub("email", ids, 1_717_000_000_000, "newsletter-weekly", false),
        ),
        (
            "unsubscribe-undo-verify-only-key",
            "k1",
            unsub("email", unsub_ids, 1_717_000_000_456, "news", true),
        ),
    ];

    let longest = valid
        .iter()
        .find(|v| v.0 == "click-longest-possible-token-honeypot")
        .unwrap();
    assert_eq!(
        spec_token(longest.1, &secret_of(longest.1), &longest.2).len(),
        4508,
        "the longest token a signer can produce"
    );

    let mut valid_json = Vec::new();
    for (name, key_id, c) in &valid {
        let secret = secret_of(key_id);
        let token = spec_token(key_id, &secret, c);
        let crate_token = Keyring::new(Key::new(key_id, &secret).unwrap(), vec![])
            .unwrap()
            .sign(c)
            .unwrap();
        assert_eq!(token, crate_token, "{name}: spec encoder and crate differ");
        assert!(token.len() <= MAX_TOKEN_LEN);
        let got = kr.verify(&token).unwrap();
        assert_eq!((&got.claims, got.key_id), (c, *key_id));
        valid_json.push(json!({
            "name": name,
            "key_id": key_id,
            "claims": claims_to_json(c),
            "payload_hex": hex(&unb64(&token)),
            "token": token,
        }));
    }

    // Tampered and otherwise invalid tokens: (name, token, route, expected class, description).
    let k2 = secret_of("k2");
    let open = spec_token("k2", &k2, &valid[0].2);
    let click = spec_token("k2", &k2, &valid[1].2);
    let open_raw = unb64(&open);
    let open_body = spec_body(&valid[0].2);
    let click_body = spec_body(&valid[1].2);
    // Validly tagged under k2, any version byte and body.
    let forged = |version: u8, body: &[u8]| b64(&spec_raw(version, b"k2", &k2, body));
    // Open body with its kind/channel byte replaced.
    let open_kc = |kc: u8| {
        let mut b = open_body.clone();
        b[0] = kc;
        b
    };
    let click_with_url = |url: &str| {
        let mut c = valid[1].2.clone();
        c.url = url.into();
        spec_body(&c)
    };
    // Byte offsets in the open token: 0 version, 1 key id length, 2..4 "k2", 4 kind/channel,
    // 5.. time varint (6 bytes for 1717000000000), then tenant_id's length and bytes.
    let tenant_at = 4 + 1 + 6 + 1;
    assert_eq!(&open_raw[tenant_at..tenant_at + 8], b"tenant-1");
    // A token whose base64url length is 2 mod 4 (one byte in the last group): low 4 bits of the
    // last character are zero in the canonical form.
    let mut odd = open.clone();
    let mut pad = 0;
    while odd.len() % 4 != 2 {
        pad += 1;
        let mut c = valid[0].2.clone();
        c.contact_id = format!("contact-12345{}", "z".repeat(pad));
        odd = spec_token("k2", &k2, &c);
    }
    let non_canonical = {
        let mut t = odd.clone().into_bytes();
        let last = t.last_mut().unwrap();
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let pos = ALPHABET.iter().position(|c| c == last).unwrap();
        assert_eq!(pos & 0x0f, 0);
        *last = ALPHABET[pos + 1];
        String::from_utf8(t).unwrap()
    };
    assert!(kr.verify(&odd).is_ok());
    let other_secret = test_secret("k2-but-another-secret", 32);
    let unknown = spec_token("k9", &test_secret("k9", 32), &valid[0].2);
    let wrong_secret = spec_token("k2", &other_secret, &valid[0].2);
    let k1_header = {
        let mut raw = open_raw.clone();
        raw[3] = b'1';
        b64(&raw)
    };
    let std_alphabet = {
        let mut t = open.clone().into_bytes();
        t[0] = b'+';
        String::from_utf8(t).unwrap()
    };
    // Removing the last character leaves a string that either is no canonical base64url
    // (length 1 mod 4, or non-zero unused bits) or decodes to a token whose tag is wrong.
    let truncated_class =
        match base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&open[..open.len() - 1]) {
            Err(_) => "malformed",
            Ok(_) => "bad_signature",
        };
    // The honeypot click: valid since the flags extension. Before it, this very token was the
    // invalid vector "signed-click-trailing-byte" (a click with the byte 0x01 after url), which
    // is why the extension needs every verifier to know it before any signer emits it.
    let honeypot_click = spec_token("k2", &k2, &honeypot(valid[1].2.clone()));
    assert_eq!(
        honeypot_click,
        forged(1, &[&click_body[..], &[0x01]].concat())
    );
    assert_eq!(
        valid
            .iter()
            .find(|v| v.0 == "click-email-honeypot")
            .unwrap()
            .2,
        honeypot(valid[1].2.clone())
    );
    let click_flags = |flags: &[u8]| forged(1, &[&click_body[..], flags].concat());
    let mut overflow_time = vec![0x11];
    overflow_time.extend_from_slice(&[0xff; 9]);
    overflow_time.extend_from_slice(&[0x02, 0, 0, 0, 0]);

    let mut invalid: Vec<(&str, String, Option<&str>, &str, &str)> = Vec::new();
    let mut add = |name, token: String, route, class, description| {
        invalid.push((name, token, route, class, description));
    };
    add(
        "tag-last-byte-flipped",
        with_byte(&open, -1, |b| b ^ 0x01),
        None,
        "bad_signature",
        "last byte of the tag xor 0x01",
    );
    add(
        "tag-first-byte-flipped",
        with_byte(&open, -16, |b| b ^ 0x80),
        None,
        "bad_signature",
        "first byte of the tag xor 0x80",
    );
    add(
        "tag-zeroed",
        {
            let mut r = open_raw.clone();
            let n = r.len();
            r[n - 16..].fill(0);
            b64(&r)
        },
        None,
        "bad_signature",
        "all 16 tag bytes zero",
    );
    add(
        "payload-tenant-byte-changed",
        with_byte(&open, tenant_at as isize, |_| b'T'),
        None,
        "bad_signature",
        "tenant-1 -> Tenant-1, tag unchanged",
    );
    add(
        "payload-kind-open-to-click",
        with_byte(&open, 4, |_| 0x21),
        None,
        "bad_signature",
        "kind/channel byte 0x11 -> 0x21, tag unchanged",
    );
    add(
        "payload-channel-changed",
        with_byte(&open, 4, |_| 0x12),
        None,
        "bad_signature",
        "channel email -> sms, tag unchanged",
    );
    add(
        "payload-time-changed",
        with_byte(&open, 5, |b| b ^ 0x02),
        None,
        "bad_signature",
        "issued_at_ms varint changed, tag unchanged",
    );
    add(
        "payload-url-changed",
        {
            let raw = unb64(&click);
            let i = raw.len() - 16 - 4;
            with_byte(&click, i as isize, |b| b ^ 0x20)
        },
        None,
        "bad_signature",
        "a letter of the click URL's fragment changes case, tag unchanged",
    );
    add(
        "key-id-rewritten-to-other-known-key",
        k1_header,
        None,
        "bad_signature",
        "key id k2 -> k1 (known key, different secret)",
    );
    add(
        "same-key-id-other-secret",
        wrong_secret,
        None,
        "bad_signature",
        "signed under key id k2 with a secret the keyring does not hold",
    );
    add(
        "unknown-key-id",
        unknown,
        None,
        "unknown_key",
        "signed under key id k9, not in the keyring (e.g. dropped by rotation)",
    );
    add(
        "truncated-last-byte",
        b64(&open_raw[..open_raw.len() - 1]),
        None,
        "bad_signature",
        "last decoded byte removed, re-encoded",
    );
    add(
        "truncated-tag-removed",
        b64(&open_raw[..open_raw.len() - 16]),
        None,
        "bad_signature",
        "the whole tag removed: the last 16 body bytes are read as the tag",
    );
    add(
        "truncated-to-header",
        b64(&open_raw[..10]),
        None,
        "malformed",
        "shorter than key id + 6-byte minimal body + tag",
    );
    add(
        "truncated-last-char",
        open[..open.len() - 1].to_owned(),
        None,
        truncated_class,
        "last base64url character removed",
    );
    add(
        "extended-one-byte",
        {
            let mut r = open_raw.clone();
            r.push(0);
            b64(&r)
        },
        None,
        "bad_signature",
        "a zero byte appended after the tag",
    );
    add("empty", String::new(), None, "malformed", "empty string");
    add(
        "bad-base64-standard-alphabet",
        std_alphabet,
        None,
        "malformed",
        "first character replaced by '+' (standard base64 alphabet)",
    );
    add(
        "bad-base64-padded",
        format!("{open}=="),
        None,
        "malformed",
        "'=' padding appended",
    );
    add(
        "bad-base64-gif-suffix",
        format!("{open}.gif"),
        None,
        "malformed",
        "the route's .gif suffix left on the token",
    );
    add(
        "bad-base64-trailing-newline",
        format!("{open}\n"),
        None,
        "malformed",
        "trailing newline",
    );
    add(
        "bad-base64-length-1-mod-4",
        format!(
            "{open}{}",
            "A".repeat(if open.len().is_multiple_of(4) {
                1
            } else {
                5 - open.len() % 4
            })
        ),
        None,
        "malformed",
        "length 1 mod 4 (no byte string encodes to it)",
    );
    add(
        "bad-base64-non-canonical-trailing-bits",
        non_canonical,
        None,
        "malformed",
        "last character's unused low bits set: decodes leniently to a valid token, must be refused",
    );
    add(
        "too-long",
        "A".repeat(MAX_TOKEN_LEN + 1),
        None,
        "too_long",
        "4609 characters: refused before decoding",
    );
    add(
        "longest-accepted-length-version-0",
        "A".repeat(MAX_TOKEN_LEN),
        None,
        "unsupported_version",
        "4608 characters is not too long; it decodes to zero bytes, version 0",
    );
    add(
        "unsupported-version-0",
        with_byte(&open, 0, |_| 0),
        None,
        "unsupported_version",
        "version byte 0",
    );
    add(
        "unsupported-version-2",
        with_byte(&open, 0, |_| 2),
        None,
        "unsupported_version",
        "version byte 2, tag unchanged",
    );
    add(
        "unsupported-version-2-retagged",
        forged(2, &open_body),
        None,
        "unsupported_version",
        "version byte 2 with a valid v1-style tag: versions are checked before the tag",
    );
    add(
        "key-id-length-0",
        with_byte(&open, 1, |_| 0),
        None,
        "malformed",
        "key id length 0",
    );
    add(
        "key-id-length-17",
        with_byte(&open, 1, |_| 17),
        None,
        "malformed",
        "key id length 17",
    );
    add(
        "key-id-bad-character",
        with_byte(&open, 2, |_| b'.'),
        None,
        "malformed",
        "key id 'k2' -> '.2' (outside [A-Za-z0-9_-])",
    );
    add(
        "signed-body-too-short",
        forged(1, &open_body[..5]),
        None,
        "malformed",
        "validly tagged, body of 5 bytes (minimum 6): refused before the tag check",
    );
    add(
        "signed-unknown-kind-3",
        forged(1, &open_kc(0x31)),
        None,
        "malformed",
        "validly tagged, kind 3 (unsubscribe) with an open's body: its list_id is missing (truncated)",
    );
    add(
        "signed-unknown-kind-0",
        forged(1, &open_kc(0x01)),
        None,
        "malformed",
        "validly tagged, kind 0",
    );
    add(
        "signed-unknown-kind-15",
        forged(1, &open_kc(0xf1)),
        None,
        "malformed",
        "validly tagged, kind 15",
    );
    add(
        "signed-unknown-channel-0",
        forged(1, &open_kc(0x10)),
        None,
        "malformed",
        "validly tagged, channel 0",
    );
    add(
        "signed-unknown-channel-5",
        forged(1, &open_kc(0x15)),
        None,
        "malformed",
        "validly tagged, channel 5",
    );
    add(
        "signed-open-trailing-byte",
        forged(1, &[&open_body[..], &[0x01]].concat()),
        None,
        "malformed",
        "validly tagged open with one extra byte after contact_id (e.g. a future flags field)",
    );
    add(
        "signed-click-without-link-and-url",
        forged(1, &open_kc(0x21)),
        None,
        "malformed",
        "validly tagged, kind click but the body ends after contact_id",
    );
    add(
        "signed-non-minimal-varint",
        forged(1, &[0x11, 0x80, 0x00, 0, 0, 0, 0]),
        None,
        "malformed",
        "validly tagged, issued_at_ms 0 written as 0x80 0x00",
    );
    add(
        "signed-varint-overflow",
        forged(1, &overflow_time),
        None,
        "malformed",
        "validly tagged, 10-byte varint over 64 bits",
    );
    add(
        "signed-field-not-utf8",
        forged(1, &[0x11, 0x00, 1, 0xff, 0, 0, 0]),
        None,
        "malformed",
        "validly tagged, tenant_id is the byte 0xff",
    );
    add(
        "signed-field-past-end",
        forged(1, &[0x11, 0x00, 9, b'a', 0, 0, 0]),
        None,
        "malformed",
        "validly tagged, tenant_id length 9 with 4 bytes left",
    );
    add(
        "signed-id-256-bytes",
        forged(1, &{
            let mut b = vec![0x11, 0x00, 0x80, 0x02];
            b.extend_from_slice(&[b'a'; 256]);
            b.extend_from_slice(&[0, 0, 0]);
            b
        }),
        None,
        "malformed",
        "validly tagged, tenant_id of 256 bytes",
    );
    add(
        "signed-url-2049-bytes",
        forged(
            1,
            &click_with_url(&format!("https://example.com/{}", "u".repeat(2029))),
        ),
        None,
        "malformed",
        "validly tagged, 2049-byte url",
    );
    add(
        "signed-click-javascript-url",
        forged(1, &click_with_url("javascript:alert(1)")),
        None,
        "invalid_destination",
        "validly tagged click to javascript:",
    );
    add(
        "signed-click-scheme-relative-url",
        forged(1, &click_with_url("//evil.example.com/")),
        None,
        "invalid_destination",
        "validly tagged click to a scheme-relative URL",
    );
    add(
        "signed-click-userinfo-url",
        forged(
            1,
            &click_with_url("https://good.example.com@evil.example.com/"),
        ),
        None,
        "invalid_destination",
        "validly tagged click with user info",
    );
    add(
        "signed-click-empty-url",
        forged(1, &click_with_url("")),
        None,
        "invalid_destination",
        "validly tagged click with an empty url",
    );
    // The click flags extension (bit 0 = honeypot): what it forbids.
    add(
        "signed-click-flags-zero",
        click_flags(&[0x00]),
        None,
        "malformed",
        "validly tagged click with flags present but zero (absent is the only encoding of no flags)",
    );
    add(
        "signed-click-flags-unknown-bit-1",
        click_flags(&[0x02]),
        None,
        "malformed",
        "validly tagged click with flag bit 1 (not defined)",
    );
    add(
        "signed-click-flags-honeypot-and-unknown-bit",
        click_flags(&[0x03]),
        None,
        "malformed",
        "validly tagged click with flag bits 0 (honeypot) and 1 (not defined)",
    );
    add(
        "signed-click-flags-unknown-bit-7",
        click_flags(&[0x80, 0x01]),
        None,
        "malformed",
        "validly tagged click with flag bit 7 (a two-byte flags varint, not defined)",
    );
    add(
        "signed-click-flags-non-minimal",
        click_flags(&[0x81, 0x00]),
        None,
        "malformed",
        "validly tagged click with the honeypot flag written as the non-minimal varint 0x81 0x00",
    );
    add(
        "signed-click-flags-truncated",
        click_flags(&[0x81]),
        None,
        "malformed",
        "validly tagged click whose flags varint has a continuation bit and no next byte",
    );
    add(
        "signed-click-flags-then-trailing-byte",
        click_flags(&[0x01, 0x01]),
        None,
        "malformed",
        "validly tagged honeypot click with one more byte after the flags",
    );
    add(
        "signed-open-honeypot-flag",
        forged(1, &spec_body(&honeypot(valid[2].2.clone()))),
        None,
        "malformed",
        "validly tagged sms open with the flags byte 0x01 (honeypot) after contact_id: opens carry no flags",
    );
    add(
        "signed-open-flags-zero",
        forged(1, &[&open_body[..], &[0x00]].concat()),
        None,
        "malformed",
        "validly tagged open with a zero flags byte after contact_id",
    );
    add(
        "payload-honeypot-flag-stripped",
        {
            let mut raw = unb64(&honeypot_click);
            let at = raw.len() - 17;
            assert_eq!(raw.remove(at), 0x01);
            b64(&raw)
        },
        None,
        "bad_signature",
        "the honeypot click with its flags byte removed, tag unchanged",
    );
    add(
        "payload-honeypot-flag-added",
        {
            let mut raw = unb64(&click);
            let at = raw.len() - 16;
            raw.insert(at, 0x01);
            b64(&raw)
        },
        None,
        "bad_signature",
        "the plain click with the flags byte 0x01 inserted before the tag, tag unchanged",
    );
    add(
        "signed-click-honeypot-javascript-url",
        forged(1, &{
            let mut c = honeypot(valid[1].2.clone());
            c.url = "javascript:alert(1)".into();
            spec_body(&c)
        }),
        None,
        "invalid_destination",
        "validly tagged honeypot click to javascript:",
    );
    add(
        "signed-click-javascript-url-flags-zero",
        forged(
            1,
            &[&click_with_url("javascript:alert(1)")[..], &[0x00]].concat(),
        ),
        None,
        "malformed",
        "validly tagged click to javascript: with zero flags: the body is parsed (malformed) before the destination is judged",
    );
    let unsub_plain = unsub("email", unsub_ids, 1_717_000_000_000, "", false);
    let unsub_token = spec_token("k2", &k2, &unsub_plain);
    let unsub_body = spec_body(&unsub_plain);
    let unsub_flags = |flags: &[u8]| forged(1, &[&unsub_body[..], flags].concat());
    add(
        "signed-unsubscribe-zero-flags",
        unsub_flags(&[0x00]),
        None,
        "malformed",
        "validly tagged unsubscribe whose flags are present but zero",
    );
    add(
        "signed-unsubscribe-unknown-flag-bit-1",
        unsub_flags(&[0x02]),
        None,
        "malformed",
        "validly tagged unsubscribe with flag bit 1 (undefined for unsubscribes)",
    );
    add(
        "signed-unsubscribe-undo-then-byte",
        unsub_flags(&[0x01, 0x00]),
        None,
        "malformed",
        "validly tagged undo followed by a byte",
    );
    add(
        "unsubscribe-undo-flag-added-old-tag",
        {
            let mut raw = unb64(&unsub_token);
            let tag = raw.split_off(raw.len() - 16);
            raw.push(0x01);
            raw.extend_from_slice(&tag);
            b64(&raw)
        },
        None,
        "bad_signature",
        "the undo flag added to an unsubscribe under its old tag",
    );
    add(
        "unsubscribe-token-on-click-route",
        unsub_token.clone(),
        Some("click"),
        WRONG_KIND,
        "valid unsubscribe token presented on /c/",
    );
    add(
        "click-token-on-unsubscribe-route",
        click.clone(),
        Some("unsubscribe"),
        WRONG_KIND,
        "valid click token presented on /u/",
    );
    add(
        "honeypot-click-token-on-open-route",
        honeypot_click.clone(),
        Some("open"),
        WRONG_KIND,
        "valid honeypot click token presented on /o/",
    );
    add(
        "open-token-on-click-route",
        open.clone(),
        Some("click"),
        WRONG_KIND,
        "valid open token presented on /c/",
    );
    add(
        "click-token-on-open-route",
        click.clone(),
        Some("open"),
        WRONG_KIND,
        "valid click token presented on /o/",
    );
    // Web hand-off tokens (docs/token-v1.md §11) on the tracking routes: kind 8 is no kind an
    // open/click/unsubscribe verifier knows, so the body is malformed (after the tag check).
    let web = spec_web_token("k2", &k2, &web_handoff_claims());
    for (name, route, description) in [
        (
            "web-token-on-open-route",
            "open",
            "valid web hand-off token (kind 8, docs/token-v1.md section 11) presented on /o/",
        ),
        (
            "web-token-on-click-route",
            "click",
            "valid web hand-off token presented on /c/",
        ),
        (
            "web-token-on-unsubscribe-route",
            "unsubscribe",
            "valid web hand-off token presented on /u/",
        ),
    ] {
        add(name, web.clone(), Some(route), "malformed", description);
    }

    let mut invalid_json = Vec::new();
    for (name, token, route, want, description) in &invalid {
        match verify_class(&kr, token, *route) {
            Ok(ok) => panic!("{name}: verified as {ok:?}"),
            Err(got) => assert_eq!(&got, want, "{name}"),
        }
        let mut case = json!({
            "name": name,
            "description": description,
            "token": token,
            "error": want,
        });
        if let Some(r) = route {
            case["route"] = json!(r);
        }
        invalid_json.push(case);
    }

    let (web_valid, web_invalid) = web_vectors(&spec, &secret_of, [&open, &click, &unsub_token]);

    let file = json!({
        "format": "openclick-token/v1 test vectors",
        "spec": "docs/token-v1.md",
        "generated_by": "cargo test -p openclick-token --test vectors -- --ignored generate_vectors",
        "notes": [
            "keys[0] signs; all keys verify. keyring_spec is the same keyring as a Keyring::from_spec string.",
            "Secrets are unpadded base64url. Test secret i of key ID: SHA-256('openclick-token v1 test key ' || ID || byte(i)) blocks, concatenated, cut to length.",
            "issued_at_ms is a decimal string (it is a signed 64-bit integer; JSON numbers lose precision past 2^53).",
            "honeypot (clicks only: the click flags extension, bit 0) is present, as true, only when set; absent means false.",
            "list_id is present only on unsubscribe claims (empty: the contact across the tenant); undo (unsubscribes only, flag bit 0) is present, as true, only when set.",
            "valid: signing claims with key_id gives exactly token (signing is deterministic); verifying token with the whole keyring gives claims and key_id. payload_hex is the decoded token.",
            "invalid: verifying token with the whole keyring fails with error; when route is present the token is presented on that route (open = /o/, click = /c/, unsubscribe = /u/) and a token of the other kind fails with wrong_kind.",
            "web_valid, web_invalid: web hand-off tokens (docs/token-v1.md section 11), verified at verify_at_ms (a decimal string, the verifier's clock). web_valid: signing claims with key_id gives exactly token; verifying token with the whole keyring at verify_at_ms gives claims (expires_at_ms a decimal string) and key_id. web_invalid: verifying token at verify_at_ms fails with error (wrong_kind: a validly signed token whose kind/channel byte is not 0x84; expired: verify_at_ms >= expires_at_ms, or verify_at_ms < issued_at_ms - 60000).",
        ],
        "keys": keys.iter().map(|(id, sec)| json!({"id": id, "secret": b64(sec)})).collect::<Vec<_>>(),
        "keyring_spec": spec,
        "valid": valid_json,
        "invalid": invalid_json,
        "web_valid": web_valid,
        "web_invalid": web_invalid,
    });
    let text = serde_json::to_string_pretty(&file).unwrap() + "\n";
    std::fs::create_dir_all(vectors_path().parent().unwrap()).unwrap();
    std::fs::write(vectors_path(), text).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Web hand-off tokens (docs/token-v1.md §11): `web_valid` and `web_invalid`.

const DAY_MS: i64 = 86_400_000;

/// The first web vector ("web-handoff"), the one the tests also assemble by hand: the ids of the
/// worked example (§9) without the message, handed over at 1717000000000 for 30 days.
fn web_handoff_claims() -> WebClaims {
    WebClaims {
        tenant_id: "tenant-1".into(),
        campaign_id: "camp-2024-05".into(),
        contact_id: "contact-12345".into(),
        issued_at_ms: 1_717_000_000_000,
        expires_at_ms: 1_717_000_000_000 + 30 * DAY_MS,
    }
}

fn web_claims(ids: [&str; 3], issued_at_ms: i64, lifetime_ms: i64) -> WebClaims {
    WebClaims {
        tenant_id: ids[0].into(),
        campaign_id: ids[1].into(),
        contact_id: ids[2].into(),
        issued_at_ms,
        expires_at_ms: issued_at_ms + lifetime_ms,
    }
}

/// The `web_valid` and `web_invalid` vectors: built with the spec encoder (`common::spec_web_*`),
/// checked against the crate's `KeyStore::sign_web` and `verify_web` (each invalid case against
/// the class written by hand next to it). `tracking`: the open, click and unsubscribe tokens of
/// the tracking vectors, for kind confusion.
fn web_vectors(
    spec: &str,
    secret_of: &dyn Fn(&str) -> Vec<u8>,
    tracking: [&str; 3],
) -> (Vec<Value>, Vec<Value>) {
    let store = KeyStore::from_spec(spec).unwrap();
    let handoff = web_handoff_claims();
    let (issued, expires) = (handoff.issued_at_ms, handoff.expires_at_ms);
    let b255 = "b".repeat(128);
    let i255 = "i".repeat(255);
    // (name, key id, claims, verify_at_ms)
    let valid: Vec<(&str, &str, WebClaims, i64)> = vec![
        ("web-handoff", "k2", handoff.clone(), issued + DAY_MS),
        (
            "web-handoff-last-valid-ms",
            "k2",
            handoff.clone(),
            expires - 1,
        ),
        (
            "web-handoff-issued-60s-in-the-future",
            "k2",
            handoff.clone(),
            issued - 60_000,
        ),
        (
            "web-longest-lifetime-verify-only-key",
            "k1",
            web_claims(["acme", "spring", "c-42"], 1_700_000_000_000, 400 * DAY_MS),
            1_700_000_000_000 + 400 * DAY_MS - 1,
        ),
        (
            "web-lifetime-1ms-time-64",
            "x",
            web_claims(["t", "c", "u"], 64, 1),
            64,
        ),
        (
            "web-empty-ids-time-zero-long-secret",
            "2019-rot_A",
            web_claims(["", "", ""], 0, DAY_MS),
            -60_000,
        ),
        (
            "web-unicode-ids-time-i64-min",
            "abcdefghijklmnop",
            web_claims(
                ["t\u{e9}nant-\u{fc}", &b255, "\u{0}nul-\u{1f4e7}"],
                i64::MIN,
                7 * DAY_MS,
            ),
            i64::MIN,
        ),
        (
            "web-ids-255-bytes-negative-time",
            "k2",
            web_claims([&i255, &i255, &i255], -1, 1000),
            500,
        ),
    ];
    let mut valid_json = Vec::new();
    for (name, key_id, c, at) in &valid {
        let secret = secret_of(key_id);
        let token = spec_web_token(key_id, &secret, c);
        let own =
            KeyStore::global(Keyring::new(Key::new(key_id, &secret).unwrap(), vec![]).unwrap());
        assert_eq!(
            own.sign_web(c).unwrap(),
            token,
            "{name}: spec encoder and crate differ"
        );
        let got = store
            .verify_web(&token, *at)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((&got.claims, got.key_id.as_str()), (c, *key_id), "{name}");
        valid_json.push(json!({
            "name": name,
            "key_id": key_id,
            "claims": web_claims_to_json(c),
            "verify_at_ms": at.to_string(),
            "payload_hex": hex(&unb64(&token)),
            "token": token,
        }));
    }

    let k2 = secret_of("k2");
    let token = spec_web_token("k2", &k2, &handoff);
    let ids = ["tenant-1", "camp-2024-05", "contact-12345"];
    let life = (expires - issued) as u64;
    let body = spec_web_body(ids, issued, life);
    let forged = |body: &[u8]| b64(&spec_raw(1, b"k2", &k2, body));
    let at = issued + DAY_MS;
    // (name, token, verify_at_ms, class, description)
    let mut invalid: Vec<(&str, String, i64, &str, &str)> =
        vec![
        (
            "web-expired-at-expires-at",
            token.clone(),
            expires,
            "expired",
            "web-handoff verified at exactly its expires_at_ms (issued_at_ms + lifetime)",
        ),
        (
            "web-expired-a-day-later",
            token.clone(),
            expires + DAY_MS,
            "expired",
            "web-handoff verified a day after it expired",
        ),
        (
            "web-issued-over-60s-in-the-future",
            token.clone(),
            issued - 60_001,
            "expired",
            "web-handoff verified 60.001 s before its issued_at_ms (beyond a minute of clock skew)",
        ),
        (
            "web-signed-trailing-byte-after-lifetime",
            forged(&[&body[..], &[0x00]].concat()),
            at,
            "malformed",
            "validly tagged web body with one byte after the lifetime",
        ),
        (
            "web-signed-lifetime-0",
            forged(&spec_web_body(ids, issued, 0)),
            at,
            "malformed",
            "validly tagged web body with lifetime 0",
        ),
        (
            "web-signed-lifetime-over-400-days",
            forged(&spec_web_body(ids, issued, 400 * DAY_MS as u64 + 1)),
            at,
            "malformed",
            "validly tagged web body with lifetime 34560000001 ms (400 days + 1 ms)",
        ),
        (
            "web-signed-lifetime-non-minimal",
            forged(&{
                let mut b = spec_web_body(ids, issued, 1);
                let n = b.len();
                b[n - 1] = 0x81;
                b.push(0x00);
                b
            }),
            at,
            "malformed",
            "validly tagged web body with lifetime 1 written as the non-minimal varint 0x81 0x00",
        ),
        (
            "web-signed-lifetime-missing",
            forged(&body[..body.len() - 5]),
            at,
            "malformed",
            "validly tagged web body that ends after contact_id",
        ),
        (
            "web-signed-contact-256-bytes",
            forged(&spec_web_body(["tenant-1", "camp-2024-05", &"c".repeat(256)], issued, life)),
            at,
            "malformed",
            "validly tagged web body with a 256-byte contact_id",
        ),
        (
            "web-signed-malformed-and-expired",
            forged(&[&body[..], &[0x00]].concat()),
            expires + DAY_MS,
            "malformed",
            "the trailing-byte body verified after its expiry: the body is judged before the time",
        ),
        (
            "web-signed-kind-8-channel-email",
            forged(&{
                let mut b = body.clone();
                b[0] = 0x81;
                b
            }),
            at,
            "wrong_kind",
            "validly tagged web body under kind/channel 0x81 (kind 8, channel email): not 0x84",
        ),
        (
            "web-open-token",
            tracking[0].to_owned(),
            at,
            "wrong_kind",
            "the valid open token open-email presented as a web token",
        ),
        (
            "web-click-token",
            tracking[1].to_owned(),
            at,
            "wrong_kind",
            "the valid click token click-email presented as a web token",
        ),
        (
            "web-unsubscribe-token",
            tracking[2].to_owned(),
            at,
            "wrong_kind",
            "a valid unsubscribe token presented as a web token",
        ),
        (
            "web-tag-last-byte-flipped",
            with_byte(&token, -1, |b| b ^ 0x01),
            at,
            "bad_signature",
            "web-handoff with the last tag byte xor 0x01",
        ),
        (
            "web-payload-contact-byte-changed",
            with_byte(&token, 4 + 1 + 6 + 1 + 8 + 1 + 12 + 1, |_| b'C'),
            at,
            "bad_signature",
            "web-handoff with contact-12345 -> Contact-12345, tag unchanged",
        ),
        (
            "web-payload-lifetime-extended",
            with_byte(&token, -17, |b| b + 1),
            at,
            "bad_signature",
            "web-handoff with the last lifetime byte incremented (a longer life), tag unchanged",
        ),
        (
            "web-tampered-and-expired",
            with_byte(&token, -1, |b| b ^ 0x01),
            expires,
            "bad_signature",
            "a tampered web-handoff verified at its expiry: the tag is judged before the time",
        ),
        (
            "web-unknown-key",
            spec_web_token("k9", &test_secret("k9", 32), &handoff),
            at,
            "unknown_key",
            "web-handoff signed under key id k9, not in the keyring",
        ),
        (
            "web-version-2",
            b64(&spec_raw(2, b"k2", &k2, &body)),
            at,
            "unsupported_version",
            "web-handoff's body under version byte 2, validly tagged",
        ),
        (
            "web-bad-base64-padded",
            format!("{token}=="),
            at,
            "malformed",
            "web-handoff with '=' padding appended",
        ),
    ];
    invalid.push((
        "web-too-long",
        "A".repeat(MAX_TOKEN_LEN + 1),
        at,
        "too_long",
        "4609 characters: refused before decoding",
    ));
    // The contact id starts where the comment of web-payload-contact-byte-changed says.
    assert_eq!(
        &unb64(&token)[4 + 1 + 6 + 1 + 8 + 1 + 12 + 1..][..13],
        b"contact-12345"
    );
    let mut invalid_json = Vec::new();
    for (name, token, at, want, description) in &invalid {
        match store.verify_web(token, *at) {
            Ok(ok) => panic!("{name}: verified as {ok:?}"),
            Err(e) => assert_eq!(e.reason(), *want, "{name}"),
        }
        invalid_json.push(json!({
            "name": name,
            "description": description,
            "token": token,
            "verify_at_ms": at.to_string(),
            "error": want,
        }));
    }
    (valid_json, invalid_json)
}
