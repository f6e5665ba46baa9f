//! Rewriting a typical newsletter (`benches/typical.html`: 30 KB, table layout, a VML button in
//! conditional comments, 23 links of which 20 are tracked):
//!
//! - `compile`: parsing the template once (lol_html) and classifying its links;
//! - `render`: one recipient's copy from the compiled template (21 HMAC signatures and the copy);
//! - `compile_and_render`: what a recipient would cost if the template were parsed each time;
//! - `ndjson_10k`: 10,000 recipients rendered into NDJSON records (`{"contact":..,
//!   "message":..,"html":..}`, JSON-escaped by serde_json) into one reused buffer, as
//!   `openclick rewrite --recipients` streams them, without the CSV reading and the pipe.
//!
//! `cargo bench -p openclick-rewrite --bench rewrite`; one core (criterion runs one thread).

#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use openclick_rewrite::{Message, Template};
use openclick_token::{Channel, Key, Keyring};

const TYPICAL: &str = include_str!("typical.html");
const BASE: &str = "https://t.example.com";

fn message() -> Message<'static> {
    Message {
        tenant_id: "acme",
        campaign_id: "autumn-2026",
        message_id: "msg-000123456",
        contact_id: "contact-0000987654",
        channel: Channel::Email,
        sent_at_ms: 1_790_000_000_000,
    }
}

fn bench(c: &mut Criterion) {
    let keyring = Keyring::new(Key::generate("k1").unwrap(), vec![]).unwrap();
    let template = Template::compile(TYPICAL, BASE).unwrap();
    assert_eq!(template.summary().tracked, 20, "{}", template.summary());
    let m = message();
    let mut g = c.benchmark_group("rewrite_30k_20_links");
    g.throughput(Throughput::Elements(1));
    g.bench_function("compile", |b| {
        b.iter(|| Template::compile(std::hint::black_box(TYPICAL), BASE).unwrap())
    });
    let mut out = String::with_capacity(64 * 1024);
    g.bench_function("render", |b| {
        b.iter(|| {
            out.clear();
            template.render_into(&keyring, &m, &mut out).unwrap();
            out.len()
        })
    });
    g.bench_function("compile_and_render", |b| {
        b.iter(|| {
            let t = Template::compile(std::hint::black_box(TYPICAL), BASE).unwrap();
            t.render(&keyring, &m).unwrap().len()
        })
    });
    g.finish();

    let ids: Vec<(String, String)> = (0..10_000)
        .map(|i| (format!("contact-{i:010}"), format!("msg-{i:09}")))
        .collect();
    let mut g = c.benchmark_group("ndjson");
    g.throughput(Throughput::Elements(ids.len() as u64));
    g.sample_size(10);
    let mut html = String::with_capacity(64 * 1024);
    let mut ndjson: Vec<u8> = Vec::with_capacity(128 * 1024);
    g.bench_function("ndjson_10k", |b| {
        b.iter(|| {
            let mut bytes = 0;
            for (contact, msg) in &ids {
                html.clear();
                ndjson.clear();
                let m = Message {
                    contact_id: contact,
                    message_id: msg,
                    ..message()
                };
                template.render_into(&keyring, &m, &mut html).unwrap();
                ndjson.extend_from_slice(b"{\"contact\":");
                serde_json::to_writer(&mut ndjson, contact).unwrap();
                ndjson.extend_from_slice(b",\"message\":");
                serde_json::to_writer(&mut ndjson, msg).unwrap();
                ndjson.extend_from_slice(b",\"html\":");
                serde_json::to_writer(&mut ndjson, html.as_str()).unwrap();
                ndjson.extend_from_slice(b"}\n");
                bytes += std::hint::black_box(&ndjson).len();
            }
            bytes
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
