//! Cross-check: tokens signed by the Python reference signer (`signers/python`, written from
//! `docs/token-v1.md`) verify with this crate's [`Keyring`] and carry exactly the claims given.
//!
//! Needs `python3` on `PATH` (or `OPENCLICK_PYTHON`); without it the test fails, loudly, rather
//! than passing without having checked anything.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;
use openclick_token::{
    Channel, Claims, Key, KeyStore, Keyring, TokenKind, WebClaims, MAX_ID_LEN, MAX_WEB_LIFETIME_MS,
};
use serde_json::json;

/// xorshift64*: a fixed, seedable sequence, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn id(&mut self) -> String {
        const PIECES: &[&str] = &[
            "a", "Z", "0", "-", "_", ".", ":", "/", " ", "é", "ß", "キ", "📧", "\u{0}", "\"", "\\",
            "'", "\n", "%", "+",
        ];
        let len = match self.below(4) {
            0 => 0,
            1 => self.below(8),
            2 => self.below(64),
            _ => self.below(200),
        };
        let mut s = String::new();
        for _ in 0..len {
            let p = PIECES[self.below(PIECES.len())];
            if s.len() + p.len() > MAX_ID_LEN {
                break;
            }
            s.push_str(p);
        }
        s
    }

    fn url(&mut self) -> String {
        const BASES: &[&str] = &[
            "https://example.com",
            "http://shop.example.co.uk:8443",
            "HTTPS://Example.COM",
            "https://[2001:db8::7]",
            "http://127.0.0.1:8080",
            "https://xn--caf-dma.example",
        ];
        const PATH: &[u8] = b"abcXYZ019-._~!$&'()*+,;=:@%/?#";
        let mut u = BASES[self.below(BASES.len())].to_owned();
        if self.below(3) > 0 {
            u.push('/');
            for _ in 0..self.below(300) {
                u.push(PATH[self.below(PATH.len())] as char);
            }
        }
        u
    }

    fn claims(&mut self) -> Claims {
        let click = self.below(2) == 1;
        let t = match self.below(4) {
            0 => self.next() as i64,
            1 => 1_600_000_000_000 + self.below(200_000_000_000) as i64,
            2 => self.below(200) as i64 - 100,
            _ => [i64::MIN, i64::MAX, 0, -1][self.below(4)],
        };
        Claims {
            kind: if click {
                TokenKind::Click
            } else {
                TokenKind::Open
            },
            tenant_id: self.id(),
            campaign_id: self.id(),
            message_id: self.id(),
            contact_id: self.id(),
            channel: Channel::ALL[self.below(4)],
            issued_at_ms: t,
            link_id: if click { self.id() } else { String::new() },
            url: if click { self.url() } else { String::new() },
            honeypot: click && self.below(4) == 0,
            list_id: String::new(),
            undo: false,
        }
    }
}

/// Runs `openclick_signer.py SUBCOMMAND` with `request` on stdin; its stdout.
fn run_python(subcommand: &str, request: &serde_json::Value) -> String {
    let python = std::env::var("OPENCLICK_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let script = repo_root().join("signers/python/openclick_signer.py");
    assert!(script.exists(), "missing {}", script.display());
    let mut child = Command::new(&python)
        .arg(&script)
        .arg(subcommand)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "FAILED TO RUN {python:?} ({e}): this test needs python3 (or OPENCLICK_PYTHON) \
                 to cross-check the Python reference signer"
            )
        });
    let mut stdin = child.stdin.take().unwrap();
    let body = request.to_string();
    // Written from a thread: the child may fill its stdout pipe before reading all of stdin.
    let writer = std::thread::spawn(move || stdin.write_all(body.as_bytes()).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(
        out.status.success(),
        "python signer {subcommand} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn python_signed_tokens_verify_in_rust() {
    let v = load_vectors();
    let keys = vector_keys(&v);
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let claims: Vec<Claims> = (0..300).map(|_| rng.claims()).collect();
    // The signing key of the vectors and one verify-only key (a >64-byte secret).
    for (key_id, secret) in [&keys[0], &keys[2]] {
        let request = json!({
            "key_id": key_id,
            "secret": b64(secret),
            "claims": claims.iter().map(claims_to_json).collect::<Vec<_>>(),
        });
        let stdout = run_python("sign-batch", &request);
        let tokens: Vec<&str> = stdout.lines().collect();
        assert_eq!(tokens.len(), claims.len());

        let all = Keyring::from_spec(s(&v, "keyring_spec")).unwrap();
        let own = Keyring::new(Key::new(key_id, secret).unwrap(), vec![]).unwrap();
        for (c, token) in claims.iter().zip(&tokens) {
            let got = all
                .verify(token)
                .unwrap_or_else(|e| panic!("python token for {c:?} refused: {e}"));
            assert_eq!(&got.claims, c);
            assert_eq!(got.key_id, key_id);
            // Deterministic: the crate signs the same claims to the same token.
            assert_eq!(own.sign(c).unwrap(), *token, "{c:?}");
        }
    }
}

/// A validly tagged (under `secret`) token with a random, often invalid, body: exercises every
/// branch of the body parser and the destination rule behind the tag check.
fn forged_token(rng: &mut Rng, key_id: &[u8], secret: &[u8]) -> String {
    const URLS: &[&str] = &[
        "https://example.com/x",
        "javascript:alert(1)",
        "//evil.example.com/",
        "https://user@example.com/",
        "https://example.com:0/",
        "https://[::1]:65535/",
        "https://[::1/",
        "http://exa mple.com/",
        "https://caf\u{e9}.example/",
        "https://example.com\\@x/",
        "HTTP://A.B",
        "https://.../",
        "",
    ];
    let mut body = Vec::new();
    body.push(match rng.below(6) {
        0 => rng.next() as u8,
        _ => [0x11, 0x12, 0x13, 0x14, 0x21, 0x22, 0x23, 0x24][rng.below(8)],
    });
    match rng.below(5) {
        0 => (0..rng.below(12)).for_each(|_| body.push(rng.next() as u8)),
        _ => spec_varint(&mut body, rng.next() >> rng.below(64)),
    }
    let fields = [4, 6, 6, 5, 7][rng.below(5)];
    for f in 0..fields {
        let content: Vec<u8> = match rng.below(8) {
            0 => (0..rng.below(6)).map(|_| rng.next() as u8).collect(),
            1 => vec![b'a'; [255, 256, 2048, 2049][rng.below(4)]],
            _ if f == 5 => URLS[rng.below(URLS.len())].as_bytes().to_vec(),
            _ => rng.id().into_bytes(),
        };
        let len = match rng.below(12) {
            0 => content.len() as u64 + 1 + rng.below(3) as u64,
            _ => content.len() as u64,
        };
        spec_varint(&mut body, len);
        body.extend_from_slice(&content);
    }
    // A trailing flags extension (docs/token-v1.md §2), valid or not, after any of the above.
    if rng.below(3) == 0 {
        const FLAGS: &[&[u8]] = &[
            &[0x01],
            &[0x01],
            &[0x00],
            &[0x02],
            &[0x03],
            &[0x80, 0x01],
            &[0x81, 0x00],
            &[0x81],
            &[0x01, 0x01],
        ];
        body.extend_from_slice(FLAGS[rng.below(FLAGS.len())]);
    }
    if rng.below(8) == 0 {
        body.truncate(rng.below(body.len() + 1));
    }
    let mut raw = spec_raw(1, key_id, secret, &body);
    if rng.below(10) == 0 {
        let i = rng.below(raw.len());
        raw[i] ^= 1 << rng.below(8);
    }
    b64(&raw)
}

#[test]
fn rust_and_python_verifiers_agree() {
    let v = load_vectors();
    let spec = s(&v, "keyring_spec");
    let kr = Keyring::from_spec(spec).unwrap();
    let keys = vector_keys(&v);
    let mut rng = Rng(0x005e_ed0f_c0ff_ee00);
    let mut tokens: Vec<String> = Vec::new();
    for case in v["invalid"].as_array().unwrap() {
        tokens.push(s(case, "token").to_owned());
    }
    for _ in 0..3000 {
        let (id, secret) = &keys[rng.below(keys.len())];
        let token = match rng.below(4) {
            0 => Keyring::new(Key::new(id, secret).unwrap(), vec![])
                .unwrap()
                .sign(&rng.claims())
                .unwrap(),
            1 => {
                // A valid token with one character replaced, removed or added.
                let t = kr.sign(&rng.claims()).unwrap();
                let mut b = t.into_bytes();
                let i = rng.below(b.len());
                const CHARS: &[u8] = b"AZaz09-_+/=. ";
                match rng.below(3) {
                    0 => b[i] = CHARS[rng.below(CHARS.len())],
                    1 => {
                        b.remove(i);
                    }
                    _ => b.insert(i, CHARS[rng.below(CHARS.len())]),
                }
                String::from_utf8(b).unwrap()
            }
            2 => {
                let kid: &[u8] = match rng.below(10) {
                    0 => b"k9",
                    1 => b"k.",
                    _ => id.as_bytes(),
                };
                forged_token(&mut rng, kid, secret)
            }
            _ => {
                // Header variations with a valid tag.
                let version = [1, 1, 1, 0, 2, 255][rng.below(6)];
                let kid: Vec<u8> = match rng.below(4) {
                    0 => vec![],
                    1 => vec![b'k'; 17],
                    _ => id.as_bytes().to_vec(),
                };
                let body = spec_body(&rng.claims());
                let cut = rng.below(body.len() + 1);
                b64(&spec_raw(version, &kid, secret, &body[..cut]))
            }
        };
        tokens.push(token);
    }

    let out = run_python(
        "verify-batch",
        &json!({ "keyring_spec": spec, "tokens": tokens }),
    );
    let results: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), tokens.len());
    let mut by_class = std::collections::BTreeMap::<String, usize>::new();
    for (token, py) in tokens.iter().zip(&results) {
        let rust = match kr.verify(token) {
            Ok(ok) => json!({ "claims": claims_to_json(&ok.claims), "key_id": ok.key_id }),
            Err(e) => json!({ "error": class(&e) }),
        };
        assert_eq!(&rust, py, "token {token:?}");
        let c = rust["error"].as_str().unwrap_or("ok").to_owned();
        *by_class.entry(c).or_default() += 1;
    }
    // The random tokens reach every outcome.
    for c in [
        "ok",
        "malformed",
        "bad_signature",
        "unknown_key",
        "unsupported_version",
        "invalid_destination",
    ] {
        assert!(by_class.get(c).copied().unwrap_or(0) >= 5, "{by_class:?}");
    }
    eprintln!(
        "rust and python agree on {} tokens: {by_class:?}",
        tokens.len()
    );
}

/// A web hand-off body (docs/token-v1.md §11), valid or not: mostly kind/channel `0x84`, times
/// near the ends of the range, lifetimes at and past their limits, sometimes a byte too many or
/// too few.
fn web_body(rng: &mut Rng) -> (Vec<u8>, i64) {
    let issued = match rng.below(5) {
        0 => rng.next() as i64,
        1 => i64::MAX - rng.below(100_000_000_000) as i64,
        2 => i64::MIN + rng.below(100_000) as i64,
        _ => 1_700_000_000_000 + rng.below(100_000_000) as i64,
    };
    let lifetime: u64 = match rng.below(6) {
        0 => 0,
        1 => MAX_WEB_LIFETIME_MS as u64 + rng.below(2) as u64,
        2 => rng.next(),
        _ => 1 + rng.below(30 * 86_400_000) as u64,
    };
    let mut body = spec_web_body([&rng.id(), &rng.id(), &rng.id()], issued, lifetime);
    match rng.below(12) {
        0 => body[0] = [0x81, 0x85, 0x74, 0x04, 0x11, 0x24][rng.below(6)],
        1 => body.push(rng.next() as u8),
        2 => body.truncate(rng.below(body.len() + 1)),
        _ => {}
    }
    (body, issued)
}

#[test]
fn rust_and_python_web_verifiers_agree() {
    let v = load_vectors();
    let spec = s(&v, "keyring_spec");
    let store = KeyStore::from_spec(spec).unwrap();
    let keys = vector_keys(&v);
    let mut rng = Rng(0x0077_ebee_f00d_1234);
    // (token, verify_at_ms)
    let mut checks: Vec<(String, i64)> = Vec::new();
    for case in v["web_invalid"].as_array().unwrap() {
        checks.push((
            s(case, "token").to_owned(),
            s(case, "verify_at_ms").parse().unwrap(),
        ));
    }
    for _ in 0..3000 {
        let (id, secret) = &keys[rng.below(keys.len())];
        let (token, issued, expires) = match rng.below(4) {
            0 | 1 => {
                let issued = 1_600_000_000_000 + rng.below(200_000_000_000) as i64;
                let c = WebClaims {
                    tenant_id: rng.id(),
                    campaign_id: rng.id(),
                    contact_id: rng.id(),
                    issued_at_ms: issued,
                    expires_at_ms: issued + 1 + rng.below(MAX_WEB_LIFETIME_MS as usize) as i64,
                };
                let own =
                    KeyStore::global(Keyring::new(Key::new(id, secret).unwrap(), vec![]).unwrap());
                let mut t = own.sign_web(&c).unwrap();
                if rng.below(4) == 0 {
                    // One character replaced.
                    let mut b = t.into_bytes();
                    let i = rng.below(b.len());
                    b[i] = b"AZaz09-_"[rng.below(8)];
                    t = String::from_utf8(b).unwrap();
                }
                (t, issued, c.expires_at_ms)
            }
            2 => {
                let (body, issued) = web_body(&mut rng);
                let t = b64(&spec_raw(1, id.as_bytes(), secret, &body));
                (t, issued, issued.saturating_add(30 * 86_400_000))
            }
            _ => {
                // An open, click or unsubscribe token.
                let c = rng.claims();
                let t = Keyring::new(Key::new(id, secret).unwrap(), vec![])
                    .unwrap()
                    .sign(&c)
                    .unwrap();
                (t, c.issued_at_ms, c.issued_at_ms.saturating_add(1))
            }
        };
        // The clock: around the token's start and end, or anywhere.
        let at = match rng.below(7) {
            0 => issued.saturating_sub(60_000),
            1 => issued.saturating_sub(60_001),
            2 => expires,
            3 => expires.saturating_sub(1),
            4 => rng.next() as i64,
            _ => issued.saturating_add(rng.below(86_400_000) as i64),
        };
        checks.push((token, at));
    }

    let out = run_python(
        "verify-web-batch",
        &json!({
            "keyring_spec": spec,
            "checks": checks.iter().map(|(t, at)| json!({"token": t, "verify_at_ms": at.to_string()})).collect::<Vec<_>>(),
        }),
    );
    let results: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), checks.len());
    let mut by_class = std::collections::BTreeMap::<String, usize>::new();
    for ((token, at), py) in checks.iter().zip(&results) {
        let rust = match store.verify_web(token, *at) {
            Ok(ok) => json!({ "claims": web_claims_to_json(&ok.claims), "key_id": ok.key_id }),
            Err(e) => json!({ "error": e.reason() }),
        };
        assert_eq!(&rust, py, "token {token:?} at {at}");
        let c = rust["error"].as_str().unwrap_or("ok").to_owned();
        *by_class.entry(c).or_default() += 1;
    }
    for c in ["ok", "malformed", "bad_signature", "wrong_kind", "expired"] {
        assert!(by_class.get(c).copied().unwrap_or(0) >= 5, "{by_class:?}");
    }
    eprintln!(
        "rust and python agree on {} web tokens: {by_class:?}",
        checks.len()
    );
}
