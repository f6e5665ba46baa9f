//! Unit tests of the whole crate.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use proptest::prelude::*;

use crate::codec::{self, VERSION};
use crate::*;

fn key(id: &str, fill: u8) -> Key {
    Key::new(id, &[fill; 32]).unwrap()
}

fn ring(id: &str, fill: u8) -> Keyring {
    Keyring::new(key(id, fill), vec![]).unwrap()
}

fn open_claims() -> Claims {
    Claims {
        kind: TokenKind::Open,
        tenant_id: "tenant-1".into(),
        campaign_id: "camp-2024-05".into(),
        message_id: "01HZX3K4M5N6P7Q8R9S0T1V2W3".into(),
        contact_id: "contact-12345".into(),
        channel: Channel::Email,
        issued_at_ms: 1_717_000_000_000,
        link_id: String::new(),
        url: String::new(),
        honeypot: false,
        list_id: String::new(),
        undo: false,
    }
}

fn click_claims(url: &str) -> Claims {
    Claims {
        kind: TokenKind::Click,
        link_id: "cta-1".into(),
        url: url.into(),
        ..open_claims()
    }
}

fn honeypot_claims(url: &str) -> Claims {
    Claims {
        honeypot: true,
        list_id: String::new(),
        undo: false,
        ..click_claims(url)
    }
}

fn decode(token: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(token).unwrap()
}

fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Builds a raw payload (header + body) for `claims` under the ring's signing key and tags it.
fn forge_raw(kr: &Keyring, body: &[u8]) -> String {
    let k = kr.signing_key();
    let mut buf = vec![VERSION, k.id().len() as u8];
    buf.extend_from_slice(k.id().as_bytes());
    buf.extend_from_slice(body);
    k.append_tag(&mut buf);
    encode(&buf)
}

const BAD_DESTINATIONS: &[&str] = &[
    "",
    // A percent-escape in the host: browsers decode it (`ex%61mple.com` is `example.com`).
    "https://ex%61mple.com/",
    "https://%65vil.example/",
    "javascript:alert(1)",
    "JavaScript://example.com/%0aalert(1)",
    "data:text/html,<script>alert(1)</script>",
    "ftp://example.com/file",
    "file:///etc/passwd",
    "//evil.example.com/path",
    "/relative/path",
    "relative/path",
    "example.com",
    "https:example.com",
    "https:/example.com",
    "https://",
    "https:///path",
    "https://?q=1",
    "https://:443/",
    "https://user:pass@example.com/",
    "https://good.example.com@evil.example.com/",
    "https://good.example.com\\@evil.example.com/",
    "https:\\\\evil.example.com",
    "https://exa mple.com/",
    "https://example.com/ path",
    "https://example.com/\tx",
    "https://example.com/\r\nLocation: x",
    "https://example.com/\u{0}",
    "https://example.com/caf\u{e9}",
    " https://example.com/",
    "https://example.com:/",
    "https://example.com:0/",
    "https://example.com:99999/",
    "https://example.com:8o/",
    "https://[::1/",
    "https://[zz::1]/",
    "https://[::1]x/",
    "https://ex<ample.com/",
    "https://.../",
    "http",
    "https",
];

const GOOD_DESTINATIONS: &[&str] = &[
    "https://example.com",
    "http://example.com/",
    "HTTPS://Example.COM/Path?q=1&r=%20#frag",
    "https://shop.example.co.uk:8443/a/b/c?utm_source=mail&x={y}|z",
    "http://127.0.0.1:8080/x",
    "https://[2001:db8::1]/",
    "https://[::ffff:192.0.2.1]:443/p",
    "https://xn--caf-dma.example/menu",
    "https://example.com?x=https://other.example/",
    "https://example.com#/route",
];

#[test]
fn round_trip_open_and_click() {
    let kr = ring("k1", 1);
    for claims in [
        open_claims(),
        click_claims("https://example.com/landing?a=1"),
        honeypot_claims("https://example.com/landing?a=1"),
    ] {
        let token = kr.sign(&claims).unwrap();
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let v = kr.verify(&token).unwrap();
        assert_eq!(v.claims, claims);
        assert_eq!(v.key_id, "k1");
    }
    // The format is as documented: version, key id, kind/channel byte.
    let raw = decode(&kr.sign(&open_claims()).unwrap());
    assert_eq!(&raw[..4], &[1, 2, b'k', b'1']);
    assert_eq!(raw[4], 0x11);
}

#[test]
fn open_token_is_compact() {
    let token = ring("k1", 1).sign(&open_claims()).unwrap();
    assert!(token.len() < 130, "{} chars: {token}", token.len());
}

#[test]
fn every_single_byte_change_fails() {
    let kr = ring("k1", 1);
    for claims in [
        open_claims(),
        click_claims("https://example.com/x"),
        honeypot_claims("https://example.com/x"),
    ] {
        let raw = decode(&kr.sign(&claims).unwrap());
        for i in 0..raw.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut t = raw.clone();
                t[i] ^= mask;
                let err = kr.verify(&encode(&t)).unwrap_err();
                // Only the header bytes may fail before the MAC; everything else is a bad tag.
                if i >= 4 {
                    assert!(
                        matches!(err, TokenError::BadSignature),
                        "byte {i} mask {mask:#x}: {err:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn tampered_tag_and_wrong_secret_fail() {
    let kr = ring("k1", 1);
    let raw = decode(&kr.sign(&open_claims()).unwrap());
    let n = raw.len();
    let mut zero_tag = raw.clone();
    zero_tag[n - 16..].fill(0);
    assert!(matches!(
        kr.verify(&encode(&zero_tag)),
        Err(TokenError::BadSignature)
    ));
    // Same key id, different secret.
    let other = ring("k1", 2);
    let token = other.sign(&open_claims()).unwrap();
    assert!(matches!(kr.verify(&token), Err(TokenError::BadSignature)));
}

#[test]
fn unknown_key_id() {
    let signer = ring("k9", 1);
    let verifier = ring("k1", 1);
    let token = signer.sign(&open_claims()).unwrap();
    match verifier.verify(&token) {
        Err(TokenError::UnknownKey(id)) => assert_eq!(id, "k9"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn truncation_and_extension_fail() {
    let kr = ring("k1", 1);
    for claims in [
        open_claims(),
        click_claims("https://example.com/x"),
        honeypot_claims("https://example.com/x"),
    ] {
        let token = kr.sign(&claims).unwrap();
        for len in 0..token.len() {
            assert!(kr.verify(&token[..len]).is_err(), "prefix {len} verified");
        }
        let raw = decode(&token);
        for len in 0..raw.len() {
            assert!(kr.verify(&encode(&raw[..len])).is_err(), "raw prefix {len}");
        }
        let mut longer = raw.clone();
        longer.push(0);
        assert!(kr.verify(&encode(&longer)).is_err());
        assert!(kr.verify(&format!("{token}A")).is_err());
        assert!(kr.verify(&format!("{token}.gif")).is_err());
    }
}

#[test]
fn non_base64url_and_oversized_tokens() {
    let kr = ring("k1", 1);
    let token = kr.sign(&open_claims()).unwrap();
    let std_b64 = token.replace('-', "+").replace('_', "/");
    if std_b64 != token {
        assert!(matches!(kr.verify(&std_b64), Err(TokenError::Malformed(_))));
    }
    assert!(matches!(
        kr.verify(&format!("{token}==")),
        Err(TokenError::Malformed(_))
    ));
    assert!(matches!(kr.verify(""), Err(TokenError::Malformed(_))));
    assert!(matches!(kr.verify("a.b/c"), Err(TokenError::Malformed(_))));
    let huge = "A".repeat(MAX_TOKEN_LEN + 1);
    assert!(matches!(
        kr.verify(&huge),
        Err(TokenError::TooLong { len, max: MAX_TOKEN_LEN }) if len == MAX_TOKEN_LEN + 1
    ));
    // The heap decode path (long click URL) works and rejects garbage.
    let long_url = format!("https://example.com/{}", "a".repeat(1500));
    let t = kr.sign(&click_claims(&long_url)).unwrap();
    assert!(t.len() > 1024);
    assert_eq!(kr.verify(&t).unwrap().claims.url, long_url);
    assert!(kr.verify(&"A".repeat(MAX_TOKEN_LEN)).is_err());
}

#[test]
fn unsupported_version() {
    let kr = ring("k1", 1);
    let mut raw = decode(&kr.sign(&open_claims()).unwrap());
    raw[0] = 2;
    assert!(matches!(
        kr.verify(&encode(&raw)),
        Err(TokenError::UnsupportedVersion(2))
    ));
}

#[test]
fn validly_signed_but_malformed_bodies_are_rejected() {
    let kr = ring("k1", 1);
    let mut good = Vec::new();
    codec::encode_body(&mut good, &open_claims());
    assert!(kr.verify(&forge_raw(&kr, &good)).is_ok());

    let mut trailing = good.clone();
    trailing.push(0);
    let mut bad_kind = good.clone();
    bad_kind[0] = 0x31;
    let mut bad_channel = good.clone();
    bad_channel[0] = 0x15;
    let mut zero_channel = good.clone();
    zero_channel[0] = 0x10;
    let non_minimal = [0x11, 0x80, 0x00, 0, 0, 0, 0];
    let bad_utf8 = [0x11, 0x00, 1, 0xff, 0, 0, 0];
    let short_field = [0x11, 0x00, 9, b'a', 0, 0, 0];
    for body in [
        &trailing[..],
        &bad_kind,
        &bad_channel,
        &zero_channel,
        &non_minimal,
        &bad_utf8,
        &short_field,
    ] {
        assert!(
            matches!(
                kr.verify(&forge_raw(&kr, body)),
                Err(TokenError::Malformed(_))
            ),
            "{body:?}"
        );
    }
    // Smallest valid body: all ids empty.
    let empty = [0x11, 0x00, 0, 0, 0, 0];
    let v = kr.verify(&forge_raw(&kr, &empty)).unwrap();
    assert_eq!(v.claims.issued_at_ms, 0);
    assert_eq!(v.claims.tenant_id, "");
}

/// The click flags extension (docs/token-v1.md §2): after `url`, one minimal non-zero varint of
/// known flag bits (bit 0 = honeypot), present only when non-zero.
#[test]
fn honeypot_flag_extension() {
    let kr = ring("k1", 1);
    let url = "https://example.com/x";
    let plain = decode(&kr.sign(&click_claims(url)).unwrap());
    let honeypot = kr.sign(&honeypot_claims(url)).unwrap();
    let raw = decode(&honeypot);
    // The same bytes as the plain click, plus the flags byte 0x01 before the tag.
    let n = plain.len() - 16;
    assert_eq!(raw.len(), plain.len() + 1);
    assert_eq!(&raw[..n], &plain[..n]);
    assert_eq!(raw[n], 0x01);
    let v = kr.verify(&honeypot).unwrap();
    assert!(v.claims.honeypot);
    assert_eq!(v.claims, honeypot_claims(url));
    assert!(!kr.verify(&encode(&plain)).unwrap().claims.honeypot);

    // The tag covers the flags: adding or stripping the byte under the old tag fails.
    let mut stripped = raw.clone();
    stripped.remove(n);
    assert!(matches!(
        kr.verify(&encode(&stripped)),
        Err(TokenError::BadSignature)
    ));
    let mut added = plain.clone();
    added.insert(n, 0x01);
    assert!(matches!(
        kr.verify(&encode(&added)),
        Err(TokenError::BadSignature)
    ));

    // Validly tagged bodies the extension forbids.
    let mut click = Vec::new();
    codec::encode_body(&mut click, &click_claims(url));
    let mut open = Vec::new();
    codec::encode_body(&mut open, &open_claims());
    let with = |body: &[u8], tail: &[u8]| forge_raw(&kr, &[body, tail].concat());
    let cases: &[(&[u8], &[u8], &str)] = &[
        (&click, &[0x00], "zero flags"),
        (&click, &[0x02], "unknown flag bits"),
        (&click, &[0x03], "unknown flag bits"),
        (&click, &[0x80, 0x01], "unknown flag bits"),
        (
            &click,
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            "unknown flag bits",
        ),
        (&click, &[0x81, 0x00], "non-minimal varint"),
        (&click, &[0x81], "truncated"),
        (&click, &[0x01, 0x00], "trailing bytes"),
        (&click, &[0x01, 0x01], "trailing bytes"),
        (&open, &[0x01], "trailing bytes"),
        (&open, &[0x00], "trailing bytes"),
    ];
    for (body, tail, why) in cases {
        match kr.verify(&with(body, tail)) {
            Err(TokenError::Malformed(got)) => assert_eq!(got, *why, "{tail:?}"),
            other => panic!("{tail:?}: {other:?}"),
        }
    }
    assert!(kr.verify(&with(&click, &[0x01])).unwrap().claims.honeypot);

    // The body is parsed, flags included, before the destination is judged.
    let mut js = Vec::new();
    codec::encode_body(&mut js, &honeypot_claims("javascript:alert(1)"));
    assert!(matches!(
        kr.verify(&forge_raw(&kr, &js)),
        Err(TokenError::InvalidDestination(_))
    ));
    js.pop();
    assert!(matches!(
        kr.verify(&with(&js, &[0x00])),
        Err(TokenError::Malformed("zero flags"))
    ));

    // Signing: an open cannot carry the flag; a bad destination is refused with or without it.
    let open_honeypot = Claims {
        honeypot: true,
        list_id: String::new(),
        undo: false,
        ..open_claims()
    };
    assert!(matches!(
        kr.sign(&open_honeypot),
        Err(TokenError::InvalidClaims(_))
    ));
    assert!(matches!(
        kr.sign(&honeypot_claims("javascript:alert(1)")),
        Err(TokenError::InvalidDestination(_))
    ));
}

#[test]
fn destination_validation() {
    for url in BAD_DESTINATIONS {
        assert!(
            matches!(
                validate_destination(url),
                Err(TokenError::InvalidDestination(_))
            ),
            "accepted {url:?}"
        );
    }
    for url in GOOD_DESTINATIONS {
        assert!(validate_destination(url).is_ok(), "rejected {url:?}");
    }
    assert!(validate_destination(&format!("https://e.com/{}", "a".repeat(2048))).is_err());
}

/// Destinations the `destination` fuzz target (fuzz/) found accepted although a browser (the
/// `url` crate, WHATWG parsing) reads another host than the one written, or no URL at all.
/// Each with what the browser reads.
const HOST_CONFUSIONS: &[(&str, &str)] = &[
    ("http://0x7f.1/", "127.0.0.1"),
    ("http://2130706433/", "127.0.0.1"),
    ("http://127.1/", "127.0.0.1"),
    ("http://010.0.0.1/", "8.0.0.1 (octal)"),
    ("http://1.2.3.04/", "1.2.3.4"),
    ("http://1.2.3.4./", "1.2.3.4"),
    ("http://0x/", "0.0.0.0"),
    ("http://a.0XfF/", "nothing: invalid IPv4"),
    ("http://999.1.1.1/", "nothing: invalid IPv4"),
    ("http://example.123/", "nothing: invalid IPv4"),
    ("http://ex%61mple.com/", "example.com"),
    ("http://%31%32%37.0.0.1/", "127.0.0.1"),
    ("http://[1::2::3]/", "nothing: invalid IPv6"),
    ("http://[1.2.3.4:]/", "nothing: invalid IPv6"),
    ("http://[:]/", "nothing: invalid IPv6"),
];

#[test]
fn destinations_a_browser_reads_differently_are_rejected() {
    let kr = ring("k1", 1);
    for (url, browser) in HOST_CONFUSIONS {
        assert!(
            matches!(
                validate_destination(url),
                Err(TokenError::InvalidDestination(_))
            ),
            "accepted {url:?} (a browser reads {browser})"
        );
        let forged = kr.seal(kr.signing_key(), &click_claims(url));
        assert!(
            matches!(kr.verify(&forged), Err(TokenError::InvalidDestination(_))),
            "verified {url:?}"
        );
    }
    // Hosts that only look numeric, and the dotted-decimal form itself, are fine.
    for url in [
        "http://1.2.3.4/",
        "http://0.0.0.0:8080/",
        "http://255.255.255.255/",
        "http://123abc.example/",
        "http://example.0x1g/",
        "http://0xample.com/",
        "http://a1.b2c/",
        "http://example.com./",
        "https://[::ffff:1.2.3.4]/",
        "https://[1:2:3:4:5:6:7:8]:8443/",
    ] {
        assert!(validate_destination(url).is_ok(), "rejected {url:?}");
    }
}

#[test]
fn bad_destinations_rejected_at_sign_and_at_verify() {
    let kr = ring("k1", 1);
    for url in BAD_DESTINATIONS {
        let claims = click_claims(url);
        let err = kr.sign(&claims).unwrap_err();
        assert_eq!(err.reason(), "invalid_destination", "{url:?}: {err}");
        // A validly signed token carrying the same URL (an older or buggy signer).
        let forged = kr.seal(kr.signing_key(), &claims);
        assert!(
            matches!(kr.verify(&forged), Err(TokenError::InvalidDestination(_))),
            "verified {url:?}"
        );
    }
    for url in GOOD_DESTINATIONS {
        let t = kr.sign(&click_claims(url)).unwrap();
        assert_eq!(kr.verify(&t).unwrap().claims.url, *url);
    }
}

#[test]
fn claim_limits_at_sign() {
    let kr = ring("k1", 1);
    let mut c = open_claims();
    c.contact_id = "x".repeat(MAX_ID_LEN);
    assert!(kr.sign(&c).is_ok());
    c.contact_id.push('x');
    match kr.sign(&c) {
        Err(TokenError::FieldTooLong { field, len, max }) => {
            assert_eq!((field, len, max), ("contact_id", 256, 255));
        }
        other => panic!("{other:?}"),
    }
    let mut c = click_claims("https://example.com/");
    c.link_id = "l".repeat(300);
    assert!(matches!(
        kr.sign(&c),
        Err(TokenError::FieldTooLong {
            field: "link_id",
            ..
        })
    ));
    let long = format!("https://example.com/{}", "p".repeat(MAX_URL_LEN));
    assert!(matches!(
        kr.sign(&click_claims(&long)),
        Err(TokenError::FieldTooLong { field: "url", .. })
    ));
    let max_url = format!("https://example.com/{}", "p".repeat(MAX_URL_LEN - 20));
    assert_eq!(max_url.len(), MAX_URL_LEN);
    let t = kr.sign(&click_claims(&max_url)).unwrap();
    assert!(t.len() <= MAX_TOKEN_LEN);
    assert!(kr.verify(&t).is_ok());
    // Largest possible token still fits the verify bound.
    let mut big = click_claims(&max_url);
    for f in [
        &mut big.tenant_id,
        &mut big.campaign_id,
        &mut big.message_id,
        &mut big.contact_id,
        &mut big.link_id,
    ] {
        *f = "i".repeat(MAX_ID_LEN);
    }
    let t = Keyring::new(key("kkkkkkkkkkkkkkkk", 3), vec![])
        .unwrap()
        .sign(&big)
        .unwrap();
    assert!(t.len() <= MAX_TOKEN_LEN, "{}", t.len());
    assert_eq!(
        Keyring::new(key("kkkkkkkkkkkkkkkk", 3), vec![])
            .unwrap()
            .verify(&t)
            .unwrap()
            .claims,
        big
    );
    // With the longest time varint and the honeypot flag too: the longest signable token.
    big.issued_at_ms = i64::MIN;
    big.honeypot = true;
    let longest = Keyring::new(key("kkkkkkkkkkkkkkkk", 3), vec![]).unwrap();
    let t = longest.sign(&big).unwrap();
    assert_eq!(t.len(), 4508);
    assert!(t.len() <= MAX_TOKEN_LEN);
    assert_eq!(longest.verify(&t).unwrap().claims, big);

    let mut open_with_url = open_claims();
    open_with_url.url = "https://example.com/".into();
    assert!(matches!(
        kr.sign(&open_with_url),
        Err(TokenError::InvalidClaims(_))
    ));
    let mut open_with_link = open_claims();
    open_with_link.link_id = "l".into();
    assert!(kr.sign(&open_with_link).is_err());
}

#[test]
fn rotation() {
    let old = key("k1", 1);
    let new = key("k2", 2);
    let before = Keyring::new(old.clone(), vec![]).unwrap();
    let old_token = before.sign(&open_claims()).unwrap();

    // Stage 2: new key verify-only.
    let staged = Keyring::new(old.clone(), vec![new.clone()]).unwrap();
    assert_eq!(staged.signing_key_id(), "k1");
    // Stage 3: new key signs, old verifies.
    let rotated = Keyring::new(new.clone(), vec![old.clone()]).unwrap();
    assert_eq!(rotated.signing_key_id(), "k2");
    assert_eq!(rotated.key_ids().collect::<Vec<_>>(), ["k2", "k1"]);
    let new_token = rotated.sign(&open_claims()).unwrap();
    assert_eq!(rotated.verify(&old_token).unwrap().key_id, "k1");
    assert_eq!(rotated.verify(&new_token).unwrap().key_id, "k2");
    assert_eq!(staged.verify(&new_token).unwrap().key_id, "k2");
    // Stage 4: old key dropped.
    let after = Keyring::new(new, vec![]).unwrap();
    assert!(after.verify(&new_token).is_ok());
    assert!(matches!(
        after.verify(&old_token),
        Err(TokenError::UnknownKey(id)) if id == "k1"
    ));
    // Duplicate ids are refused.
    assert!(matches!(
        Keyring::new(old.clone(), vec![key("k1", 9)]),
        Err(TokenError::InvalidKey(_))
    ));
}

#[test]
fn keys() {
    for bad in ["", "k.1", "k/1", "k 1", "k:1", "abcdefghijklmnopq", "ké"] {
        assert!(Key::new(bad, &[0; 32]).is_err(), "{bad:?}");
    }
    assert!(Key::new("abcdefghijklmnop", &[0; 32]).is_ok());
    assert!(Key::new("A_z-9", &[0; 32]).is_ok());
    assert!(matches!(
        Key::new("k1", &[0; 31]),
        Err(TokenError::InvalidKey(_))
    ));
    let secret = [0xabu8; 40];
    let k = Key::new("k1", &secret).unwrap();
    let dbg = format!("{k:?}");
    assert!(dbg.contains("k1") && dbg.contains("redacted"), "{dbg}");
    assert!(!dbg.contains("171") && !dbg.contains("ab, ab"), "{dbg}");
    let g1 = Key::generate("g").unwrap();
    let g2 = Key::generate("g").unwrap();
    let kr1 = Keyring::new(g1, vec![]).unwrap();
    let kr2 = Keyring::new(g2, vec![]).unwrap();
    assert_ne!(kr1.to_spec(), kr2.to_spec());
    let kr = Keyring::new(k, vec![]).unwrap();
    let dbg = format!("{kr:?}");
    assert!(!dbg.contains(&URL_SAFE_NO_PAD.encode(secret)), "{dbg}");
    assert!(!format!("{:?}", kr.verify("x")).contains("abab"));
}

#[test]
fn spec_round_trip() {
    let kr = Keyring::new(key("k2", 2), vec![key("k1", 1), key("old-0", 7)]).unwrap();
    let spec = kr.to_spec();
    assert!(spec.starts_with("k2:"));
    assert_eq!(spec.matches(',').count(), 2);
    let back = Keyring::from_spec(&spec).unwrap();
    assert_eq!(back.to_spec(), spec);
    assert_eq!(back.key_ids().collect::<Vec<_>>(), ["k2", "k1", "old-0"]);
    let t = kr.sign(&open_claims()).unwrap();
    assert_eq!(back.verify(&t).unwrap().key_id, "k2");
    let t1 = Keyring::new(key("k1", 1), vec![])
        .unwrap()
        .sign(&open_claims())
        .unwrap();
    assert_eq!(back.verify(&t1).unwrap().key_id, "k1");

    // Whitespace, a trailing newline and padding are tolerated.
    let s = URL_SAFE_NO_PAD.encode([5u8; 32]);
    let lenient = format!("  a:{s}= ,\n b:{s}\n");
    let kr = Keyring::from_spec(&lenient).unwrap();
    assert_eq!(kr.key_ids().collect::<Vec<_>>(), ["a", "b"]);
}

#[test]
fn bad_specs() {
    let s = URL_SAFE_NO_PAD.encode([5u8; 32]);
    let short = URL_SAFE_NO_PAD.encode([5u8; 16]);
    let cases = [
        String::new(),
        "   ".into(),
        s.clone(),
        format!("k1:{s},"),
        format!(",k1:{s}"),
        format!("k1:{s},,k2:{s}"),
        format!(":{s}"),
        format!("bad.id:{s}"),
        format!("k1:{s},k1:{s}"),
        format!("k1:{short}"),
        "k1:not base64!".into(),
        format!("k1:{}", s.replace('-', "+").replace('_', "/") + "+/"),
        "k1:".into(),
    ];
    for spec in &cases {
        match Keyring::from_spec(spec) {
            Err(e) => {
                assert!(
                    matches!(e.reason(), "invalid_spec" | "invalid_key"),
                    "{spec:?}: {e}"
                );
                assert!(!e.to_string().contains(&s), "secret leaked: {e}");
            }
            Ok(_) => panic!("accepted {spec:?}"),
        }
    }
}

#[test]
fn dev_keyring_create_then_reload() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/dir/dev-keys");
    let (kr, created) = Keyring::load_or_create_dev(&path).unwrap();
    assert!(created);
    assert_eq!(kr.signing_key_id(), "dev1");
    let (again, created) = Keyring::load_or_create_dev(&path).unwrap();
    assert!(!created);
    assert_eq!(again.to_spec(), kr.to_spec());
    let t = kr.sign(&open_claims()).unwrap();
    assert!(again.verify(&t).is_ok());
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text, format!("{}\n", kr.to_spec()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // No temporary files left behind.
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");

    // A corrupt file is an error, not silently replaced.
    std::fs::write(&path, "garbage").unwrap();
    assert!(matches!(
        Keyring::load_or_create_dev(&path),
        Err(TokenError::InvalidSpec(_))
    ));
    // A directory where the file should be is an i/o error.
    assert!(matches!(
        Keyring::load_or_create_dev(dir.path()),
        Err(TokenError::Io(_))
    ));
}

#[test]
fn errors_reason_and_retry() {
    let errs = [
        TokenError::Malformed("x"),
        TokenError::TooLong { len: 1, max: 0 },
        TokenError::BadSignature,
        TokenError::UnknownKey("k".into()),
        TokenError::UnsupportedVersion(9),
        TokenError::InvalidDestination("x"),
        TokenError::FieldTooLong {
            field: "url",
            len: 1,
            max: 0,
        },
        TokenError::InvalidClaims("x"),
        TokenError::InvalidKey("x".into()),
        TokenError::InvalidSpec("x".into()),
        TokenError::Io(std::io::Error::other("x")),
    ];
    let mut reasons: Vec<_> = errs.iter().map(TokenError::reason).collect();
    for e in &errs {
        assert!(!e.is_retryable());
        assert!(e
            .reason()
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_'));
    }
    reasons.sort_unstable();
    reasons.dedup();
    assert_eq!(reasons.len(), errs.len());
}

#[test]
fn channel_and_kind_text() {
    for c in Channel::ALL {
        assert_eq!(c.to_string().parse::<Channel>().unwrap(), c);
        assert_eq!(Channel::from_code(c.code()), Some(c));
    }
    assert_eq!("sms".parse::<Channel>().unwrap(), Channel::Sms);
    assert!("EMAIL".parse::<Channel>().is_err());
    assert!("".parse::<Channel>().is_err());
    assert_eq!(TokenKind::Click.to_string(), "click");
    assert_eq!(TokenKind::Open.as_str(), "open");
}

#[test]
fn keyring_is_clone_send_sync() {
    fn assert_traits<T: Clone + Send + Sync + 'static>() {}
    assert_traits::<Keyring>();
    assert_traits::<Key>();
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<TokenError>();
    let kr = ring("k1", 1);
    let t = kr.sign(&open_claims()).unwrap();
    let kr2 = kr.clone();
    std::thread::spawn(move || assert!(kr2.verify(&t).is_ok()))
        .join()
        .unwrap();
}

fn id_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_.:/-]{0,40}",
        any::<String>(),
        "\\PC{0,80}",
        Just(String::new()),
    ]
    .prop_map(|mut s| {
        while s.len() > MAX_ID_LEN {
            s.pop();
        }
        s
    })
}

fn url_strategy() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("http"), Just("https"), Just("HTTPS"), Just("Http")],
        prop_oneof![
            // The last label starts and ends with a letter: one ending in a number is IPv4.
            "([a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?\\.){0,4}[a-z]([a-z0-9-]{0,10}[a-z])?",
            any::<[u8; 4]>().prop_map(|a| std::net::Ipv4Addr::from(a).to_string()),
            Just("[2001:db8::7]".to_owned()),
        ],
        proptest::option::of(1u16..=65535),
        "(/[A-Za-z0-9._~%!$&'()*+,;=:@-]{0,12}){0,5}",
        proptest::option::of("[A-Za-z0-9=&%._~/?:@+-]{0,40}"),
        proptest::option::of("[A-Za-z0-9/._-]{0,20}"),
    )
        .prop_map(|(scheme, host, port, path, query, frag)| {
            let mut u = format!("{scheme}://{host}");
            if let Some(p) = port {
                u.push_str(&format!(":{p}"));
            }
            u.push_str(&path);
            if let Some(q) = query {
                u.push('?');
                u.push_str(&q);
            }
            if let Some(f) = frag {
                u.push('#');
                u.push_str(&f);
            }
            u
        })
}

fn claims_strategy() -> impl Strategy<Value = Claims> {
    (
        any::<bool>(),
        (id_strategy(), id_strategy(), id_strategy(), id_strategy()),
        proptest::sample::select(Channel::ALL.to_vec()),
        any::<i64>(),
        id_strategy(),
        url_strategy(),
        any::<bool>(),
    )
        .prop_map(
            |(
                click,
                (tenant_id, campaign_id, message_id, contact_id),
                channel,
                ts,
                link,
                url,
                honeypot,
            )| {
                Claims {
                    kind: if click {
                        TokenKind::Click
                    } else {
                        TokenKind::Open
                    },
                    tenant_id,
                    campaign_id,
                    message_id,
                    contact_id,
                    channel,
                    issued_at_ms: ts,
                    link_id: if click { link } else { String::new() },
                    url: if click { url } else { String::new() },
                    honeypot: click && honeypot,
                    list_id: String::new(),
                    undo: false,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn prop_round_trip(claims in claims_strategy()) {
        let kr = Keyring::new(key("k2", 2), vec![key("k1", 1)]).unwrap();
        let token = kr.sign(&claims).unwrap();
        prop_assert!(token.len() <= MAX_TOKEN_LEN);
        prop_assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let v = kr.verify(&token).unwrap();
        prop_assert_eq!(v.key_id, "k2");
        prop_assert_eq!(&v.claims, &claims);
        // The borrowed form (the edge's hot path) reads the same claims, from a key store too.
        let same = |v: VerifiedRef<'_, '_>| v.key_id == "k2" && v.claims == claims.view();
        prop_assert!(kr.verify_then(&token, same).unwrap());
        prop_assert!(KeyStore::from(kr.clone()).verify_then(&token, same).unwrap());
        prop_assert_eq!(claims.view().to_owned(), claims);
    }

    #[test]
    fn prop_generated_urls_are_valid(url in url_strategy()) {
        prop_assert!(validate_destination(&url).is_ok(), "{}", url);
    }

    #[test]
    fn prop_verify_never_panics_on_text(s in "\\PC{0,300}|[A-Za-z0-9_-]{0,300}") {
        let kr = ring("k1", 1);
        prop_assert!(kr.verify(&s).is_err());
    }

    #[test]
    fn prop_verify_never_panics_on_bytes(
        body in proptest::collection::vec(any::<u8>(), 0..200),
        with_header in any::<bool>(),
        mac in any::<bool>(),
    ) {
        let kr = ring("k1", 1);
        let token = if mac {
            forge_raw(&kr, &body)
        } else {
            let mut raw = if with_header { vec![1, 2, b'k', b'1'] } else { Vec::new() };
            raw.extend_from_slice(&body);
            encode(&raw)
        };
        // With a valid tag the body may happen to parse; it must never panic either way.
        let _ = kr.verify(&token);
    }

    #[test]
    fn prop_validate_destination_never_panics(s in "\\PC{0,100}") {
        let _ = validate_destination(&s);
    }

    #[test]
    fn prop_single_char_substitution_fails(claims in claims_strategy(), pos in any::<prop::sample::Index>(), c in "[A-Za-z0-9_-]") {
        let kr = ring("k1", 1);
        let token = kr.sign(&claims).unwrap();
        let i = pos.index(token.len());
        let mut t = token.clone().into_bytes();
        let new = c.as_bytes()[0];
        prop_assume!(t[i] != new);
        t[i] = new;
        let t = String::from_utf8(t).unwrap();
        prop_assert!(kr.verify(&t).is_err());
    }
}

fn unsubscribe_claims(list: &str) -> Claims {
    Claims {
        kind: TokenKind::Unsubscribe,
        list_id: list.into(),
        ..open_claims()
    }
}

#[test]
fn unsubscribe_tokens_round_trip_with_and_without_a_list_and_undo() {
    let kr = ring("k1", 3);
    for c in [
        unsubscribe_claims(""),
        unsubscribe_claims("weekly"),
        Claims {
            undo: true,
            ..unsubscribe_claims("weekly")
        },
    ] {
        let t = kr.sign(&c).unwrap();
        assert_eq!(kr.verify(&t).unwrap().claims, c);
    }
}

#[test]
fn unsubscribe_layout_is_the_spec_s() {
    // docs/token-v1.md §2: kind nibble 3, then the four ids, then list_id, then (undo only)
    // the flags byte 0x01.
    let kr = ring("k1", 3);
    let raw = decode(&kr.sign(&unsubscribe_claims("ab")).unwrap());
    let body = &raw[4..raw.len() - 16];
    assert_eq!(body[0], 0x31);
    assert_eq!(&body[body.len() - 3..], &[2, b'a', b'b']);
    let undo = decode(
        &kr.sign(&Claims {
            undo: true,
            ..unsubscribe_claims("ab")
        })
        .unwrap(),
    );
    let ubody = &undo[4..undo.len() - 16];
    assert_eq!(ubody, [body, &[0x01]].concat());
}

#[test]
fn signing_refuses_mixed_kinds_fields() {
    let kr = ring("k1", 3);
    let refused = |c: Claims| {
        assert!(
            matches!(kr.sign(&c), Err(TokenError::InvalidClaims(_))),
            "{c:?}"
        )
    };
    refused(Claims {
        list_id: "l".into(),
        ..open_claims()
    });
    refused(Claims {
        undo: true,
        ..open_claims()
    });
    refused(Claims {
        list_id: "l".into(),
        ..click_claims("https://e.com/")
    });
    refused(Claims {
        url: "https://e.com/".into(),
        ..unsubscribe_claims("")
    });
    refused(Claims {
        honeypot: true,
        ..unsubscribe_claims("")
    });
    assert!(matches!(
        kr.sign(&unsubscribe_claims(&"l".repeat(256))),
        Err(TokenError::FieldTooLong {
            field: "list_id",
            ..
        })
    ));
}
