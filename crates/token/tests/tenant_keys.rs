//! Keys scoped to tenants (`KeyStore`, docs/token-v1.md section 6), checked with tokens made
//! by the encoder written from the spec (`common::spec_token`), not by the crate's signer:
//!
//! - a tenant's token verifies only with that tenant's keys: the same key id in another
//!   tenant is another key, and a sender holding one tenant's secret mints nothing for another;
//! - a tenant without keys of its own falls back to the global keyring, and without one is
//!   refused (`unknown_key`); a tenant with keys of its own never falls back;
//! - a store holding only a global keyring verifies every committed vector exactly as the
//!   keyring does (same claims, same key id, same error class);
//! - the spec grammar: `TENANT/KEY_ID:SECRET`, first entry per tenant signs.

mod common;

use common::*;
use openclick_token::{Channel, Claims, KeyStore, Keyring, TokenError, TokenKind};

fn secret(fill: u8) -> Vec<u8> {
    vec![fill; 32]
}

fn b64s(fill: u8) -> String {
    b64(&secret(fill))
}

fn claims(tenant: &str, kind: TokenKind) -> Claims {
    Claims {
        kind,
        tenant_id: tenant.into(),
        campaign_id: "spring".into(),
        message_id: "m-1".into(),
        contact_id: "c-1".into(),
        channel: Channel::Email,
        issued_at_ms: 1_717_000_000_000,
        link_id: if kind == TokenKind::Click {
            "cta".into()
        } else {
            String::new()
        },
        url: if kind == TokenKind::Click {
            "https://shop.example/sale?a=1&b=2".into()
        } else {
            String::new()
        },
        honeypot: false,
        list_id: String::new(),
        undo: false,
    }
}

fn class_of(store: &KeyStore, token: &str) -> Result<(Claims, String), &'static str> {
    store
        .verify(token)
        .map(|v| (v.claims, v.key_id.to_owned()))
        .map_err(|e| e.reason())
}

/// acme: k2 signs, k1 verifies; globex: its own k1; no global keyring.
fn two_tenants() -> KeyStore {
    KeyStore::from_spec(&format!(
        "acme/k2:{}, acme/k1:{}, globex/k1:{}",
        b64s(2),
        b64s(1),
        b64s(9)
    ))
    .unwrap()
}

#[test]
fn a_tenants_token_verifies_only_with_its_own_keys() {
    let store = two_tenants();
    for kind in [TokenKind::Open, TokenKind::Click] {
        let c = claims("acme", kind);
        // Either acme key verifies acme's tokens (k1 is verify-only).
        for (kid, fill) in [("k2", 2), ("k1", 1)] {
            let t = spec_token(kid, &secret(fill), &c);
            assert_eq!(class_of(&store, &t), Ok((c.clone(), kid.to_owned())));
        }
        // globex's k1 is another key than acme's k1.
        let g = claims("globex", kind);
        let t = spec_token("k1", &secret(9), &g);
        assert_eq!(class_of(&store, &t), Ok((g.clone(), "k1".to_owned())));
        assert_eq!(
            class_of(&store, &spec_token("k1", &secret(1), &g)),
            Err("bad_signature"),
            "acme's secret under globex's key id"
        );
        // acme's signing key id does not exist for globex.
        assert_eq!(
            class_of(&store, &spec_token("k2", &secret(2), &g)),
            Err("unknown_key")
        );
        // globex's secret cannot sign for acme, whatever id it claims.
        assert_eq!(
            class_of(&store, &spec_token("k1", &secret(9), &c)),
            Err("bad_signature")
        );
    }
}

#[test]
fn tenants_without_keys_use_the_global_keyring_or_are_refused() {
    let c = claims("initech", TokenKind::Open);
    let t = spec_token("g1", &secret(5), &c);
    // No global keyring: refused.
    assert_eq!(class_of(&two_tenants(), &t), Err("unknown_key"));
    assert!(matches!(
        two_tenants().sign(&c),
        Err(TokenError::NoTenantKey)
    ));
    // With one: the global key verifies tenants without keys of their own...
    let store = KeyStore::from_spec(&format!(
        "g1:{}, acme/k2:{}, acme/k1:{}",
        b64s(5),
        b64s(2),
        b64s(1)
    ))
    .unwrap();
    assert_eq!(class_of(&store, &t), Ok((c.clone(), "g1".to_owned())));
    // ...but never a tenant that has keys: the global key holder cannot sign for acme.
    let a = claims("acme", TokenKind::Click);
    assert_eq!(
        class_of(&store, &spec_token("g1", &secret(5), &a)),
        Err("unknown_key")
    );
    // The store signs with the tenant's first key, byte for byte as the spec encoder does.
    assert_eq!(store.sign(&a).unwrap(), spec_token("k2", &secret(2), &a));
    assert_eq!(store.sign(&c).unwrap(), spec_token("g1", &secret(5), &c));
}

#[test]
fn a_global_store_agrees_with_the_keyring_on_every_vector() {
    let v = load_vectors();
    let kr = Keyring::from_spec(s(&v, "keyring_spec")).unwrap();
    let store = KeyStore::from_spec(s(&v, "keyring_spec")).unwrap();
    let all = v["valid"]
        .as_array()
        .unwrap()
        .iter()
        .chain(v["invalid"].as_array().unwrap());
    let mut n = 0;
    for case in all {
        let token = s(case, "token");
        let a = kr.verify(token).map(|v| (v.claims, v.key_id.to_owned()));
        let b = store.verify(token).map(|v| (v.claims, v.key_id.to_owned()));
        match (a, b) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{}", s(case, "name")),
            (Err(a), Err(b)) => assert_eq!(a.reason(), b.reason(), "{}", s(case, "name")),
            (a, b) => panic!("{}: keyring {a:?}, store {b:?}", s(case, "name")),
        }
        n += 1;
    }
    assert!(n >= 30);
}

#[test]
fn with_tenant_keys_a_body_that_names_no_tenant_is_malformed() {
    let store = two_tenants();
    // Header fine, body cut inside the issued-at varint: no tenant to look up.
    let raw = spec_raw(1, b"k1", &secret(1), &[0x11, 0xff, 0xff, 0xff, 0xff, 0xff]);
    assert_eq!(class_of(&store, &b64(&raw)), Err("malformed"));
    // A tenant id that is not UTF-8.
    let mut body = vec![0x11, 0x00, 0x02, 0xc3, 0x28];
    body.extend_from_slice(&[0, 0, 0]);
    let raw = spec_raw(1, b"k1", &secret(1), &body);
    assert_eq!(class_of(&store, &b64(&raw)), Err("malformed"));
}

#[test]
fn the_spec_grammar() {
    let store = two_tenants();
    assert_eq!(store.tenant_count(), 2);
    assert!(store.global_keyring().is_none());
    let acme = store.keyring_for("acme").unwrap();
    assert_eq!(acme.key_ids().collect::<Vec<_>>(), ["k2", "k1"]);
    // A keyring refuses tenant entries; a store refuses what a keyring refuses.
    let e = Keyring::from_spec(&format!("acme/k1:{}", b64s(1))).unwrap_err();
    assert!(e.to_string().contains("TENANT/KEY_ID"), "{e}");
    for bad in [
        format!("/k1:{}", b64s(1)),                  // empty tenant
        format!("acme/k1:{0},acme/k1:{0}", b64s(1)), // duplicate id in a tenant
        format!("acme/:{}", b64s(1)),                // empty key id
        format!("a\u{7}b/k1:{}", b64s(1)),           // control character
        "acme/k1:short".to_owned(),                  // short secret
        String::new(),
    ] {
        let e = KeyStore::from_spec(&bad).unwrap_err();
        assert!(!e.to_string().contains(&b64s(1)), "secret in error: {e}");
    }
    // The same key id in two tenants and globally is fine.
    KeyStore::from_spec(&format!("k1:{},a/k1:{},b/k1:{}", b64s(1), b64s(2), b64s(3))).unwrap();
}
