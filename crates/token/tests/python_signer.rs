//! Cross-check: tokens signed by the Python reference signer (`signers/python`, written from
//! `docs/token-v1.md`) verify with this crate's [`Keyring`] and carry exactly the claims given.
//!
//! Needs `python3` on `PATH` (or `OPENCLICK_PYTHON`); without it the test fails, loudly, rather
//! than passing without having checked anything.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;
use openclick_token::{Channel, Claims, Key, Keyring, TokenKind, MAX_ID_LEN};
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
        }
    }
}

#[test]
fn python_signed_tokens_verify_in_rust() {
    let python = std::env::var("OPENCLICK_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let script = repo_root().join("signers/python/openclick_signer.py");
    assert!(script.exists(), "missing {}", script.display());

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
        let mut child = Command::new(&python)
            .arg(&script)
            .arg("sign-batch")
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
        child
            .stdin
            .take()
            .unwrap()
            .write_all(request.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "python signer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
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
