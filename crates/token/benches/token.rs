//! Sign and verify throughput of open and click tokens.
#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use openclick_token::{Channel, Claims, Key, KeyStore, Keyring, TokenKind};

fn claims(kind: TokenKind) -> Claims {
    let click = kind == TokenKind::Click;
    Claims {
        kind,
        tenant_id: "tenant-4711".into(),
        campaign_id: "camp-2024-05-spring".into(),
        message_id: "01HZX3K4M5N6P7Q8R9S0T1V2W3".into(),
        contact_id: "contact-0001234567".into(),
        channel: Channel::Email,
        issued_at_ms: 1_717_000_000_000,
        link_id: if click {
            "hero-cta".into()
        } else {
            String::new()
        },
        url: if click {
            "https://shop.example.com/collections/spring-sale?utm_source=email&utm_medium=newsletter&utm_campaign=spring".into()
        } else {
            String::new()
        },
        honeypot: false,
        list_id: String::new(),
        undo: false,
    }
}

fn bench(c: &mut Criterion) {
    let keyring = Keyring::new(
        Key::new("k2", &[2u8; 32]).expect("key"),
        vec![Key::new("k1", &[1u8; 32]).expect("key")],
    )
    .expect("keyring");
    for kind in [TokenKind::Open, TokenKind::Click] {
        let cl = claims(kind);
        let token = keyring.sign(&cl).expect("sign");
        c.bench_function(&format!("sign_{kind}"), |b| {
            b.iter(|| keyring.sign(black_box(&cl)))
        });
        c.bench_function(&format!("verify_{kind} ({} chars)", token.len()), |b| {
            b.iter(|| keyring.verify(black_box(&token)))
        });
    }
    // A honeypot click (the click flags extension): the same click plus one flags byte.
    let honeypot = Claims {
        honeypot: true,
        list_id: String::new(),
        undo: false,
        ..claims(TokenKind::Click)
    };
    let token = keyring.sign(&honeypot).expect("sign");
    c.bench_function(
        &format!("verify_click_honeypot ({} chars)", token.len()),
        |b| b.iter(|| keyring.verify(black_box(&token))),
    );
    let bad = {
        let mut t = keyring.sign(&claims(TokenKind::Open)).expect("sign");
        let last = t.pop().expect("non-empty");
        t.push(if last == 'A' { 'B' } else { 'A' });
        t
    };
    c.bench_function("verify_bad_signature", |b| {
        b.iter(|| keyring.verify(black_box(&bad)))
    });

    // The same open token through a KeyStore: global only (the edge's default), and with
    // 10,000 tenants holding their own keys (the token's tenant among them): the extra cost is
    // reading the tenant id before the tag and one hash-map lookup.
    let open = keyring.sign(&claims(TokenKind::Open)).expect("sign");
    let global = KeyStore::global(keyring.clone());
    c.bench_function("keystore_global_verify_open", |b| {
        b.iter(|| global.verify(black_box(&open)))
    });
    let mut tenants: Vec<(String, Keyring)> = (0..10_000)
        .map(|i| {
            let k = Key::new("t1", &[(i % 251) as u8; 32]).expect("key");
            (
                format!("tenant-{i}"),
                Keyring::new(k, vec![]).expect("ring"),
            )
        })
        .collect();
    tenants.push(("tenant-4711".to_owned(), keyring.clone()));
    tenants.retain(|(t, k)| t != "tenant-4711" || k.signing_key_id() == "k2");
    let scoped = KeyStore::new(None, tenants).expect("store");
    c.bench_function("keystore_10k_tenants_verify_open", |b| {
        b.iter(|| scoped.verify(black_box(&open)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
