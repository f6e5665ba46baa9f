// Tests of openclick_signer against the shared token v1 vectors (node:test, node:assert).
// Run: bash .ci/signers (compiles with tsc into dist/, then node --test dist/).
// The vector file defaults to crates/token/tests/vectors/token-v1.json; OPENCLICK_VECTORS overrides.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import * as oc from "./openclick_signer";

interface JsonClaims {
  kind: oc.Kind;
  channel: oc.ChannelName;
  tenant_id: string;
  campaign_id: string;
  message_id: string;
  contact_id: string;
  issued_at_ms: string;
  link_id: string;
  url: string;
  honeypot?: boolean;
  list_id?: string;
  undo?: boolean;
}

const vectorsPath =
  process.env.OPENCLICK_VECTORS ?? resolve(__dirname, "..", "..", "..", "crates", "token", "tests", "vectors", "token-v1.json");
const V = JSON.parse(readFileSync(vectorsPath, "utf8")) as {
  format: string;
  keys: { id: string; secret: string }[];
  keyring_spec: string;
  valid: { name: string; key_id: string; claims: JsonClaims; token: string; payload_hex: string }[];
  invalid: { name: string; token: string; error: string; route?: oc.Kind }[];
  web_valid: {
    name: string; key_id: string; claims: JsonWebClaims; verify_at_ms: string; token: string; payload_hex: string;
  }[];
  web_invalid: { name: string; token: string; verify_at_ms: string; error: string }[];
};

interface JsonWebClaims {
  tenant_id: string;
  campaign_id: string;
  contact_id: string;
  issued_at_ms: string;
  expires_at_ms: string;
}
const webClaimsOf = (c: JsonWebClaims): oc.VerifiedWebClaims => ({
  ...c,
  issued_at_ms: BigInt(c.issued_at_ms),
  expires_at_ms: BigInt(c.expires_at_ms),
});

const secret = (b64: string): Buffer => {
  const b = oc.b64decodeStrict(b64);
  assert.ok(b);
  return b;
};
const KEYS: [string, Buffer][] = V.keys.map((k) => [k.id, secret(k.secret)]);
const SECRET = new Map(KEYS);
const claimsOf = (c: JsonClaims): oc.VerifiedClaims => ({
  ...c,
  issued_at_ms: BigInt(c.issued_at_ms),
  honeypot: c.honeypot ?? false,
  list_id: c.list_id ?? "",
  undo: c.undo ?? false,
});

function reasonOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof oc.TokenError, String(e));
    return e.reason;
  }
  assert.fail("did not throw");
}

test("vector file shape", () => {
  assert.equal(V.format, "openclick-token/v1 test vectors");
  assert.ok(V.valid.length >= 10 && V.invalid.length >= 20);
});

test("keyring spec matches the keys", () => {
  const kr = oc.Keyring.fromSpec(V.keyring_spec);
  assert.deepEqual(kr.keys, KEYS);
  assert.equal(kr.signingKeyId, V.keys[0].id);
});

test("signing gives the expected tokens", () => {
  for (const c of V.valid) {
    const token = oc.sign(c.key_id, SECRET.get(c.key_id)!, claimsOf(c.claims));
    assert.equal(token, c.token, c.name);
    assert.equal(secret(token).toString("hex"), c.payload_hex, c.name);
  }
});

test("valid tokens verify", () => {
  const kr = new oc.Keyring(KEYS);
  for (const c of V.valid) {
    const got = kr.verify(c.token, c.claims.kind);
    assert.deepEqual(got.claims, claimsOf(c.claims), c.name);
    assert.equal(got.keyId, c.key_id, c.name);
  }
});

test("tampered tokens fail with their class", () => {
  const kr = new oc.Keyring(KEYS);
  for (const c of V.invalid) {
    assert.equal(reasonOf(() => kr.verify(c.token, c.route)), c.error, c.name);
  }
});

test("round trip under every key", () => {
  const kr = new oc.Keyring(KEYS);
  for (const [id, s] of KEYS) {
    for (const c of V.valid) {
      const got = kr.verify(oc.sign(id, s, claimsOf(c.claims)));
      assert.deepEqual(got, { claims: claimsOf(c.claims), keyId: id });
    }
  }
});

test("tracking URLs", () => {
  const kr = new oc.Keyring(KEYS.slice(0, 1));
  const common = {
    tenant_id: "acme", campaign_id: "c", message_id: "m", contact_id: "u",
    channel: "email" as const, issued_at_ms: 1_700_000_000_000,
  };
  const o = kr.openUrl("https://t.example.com/", { kind: "open", ...common });
  assert.match(o, /^https:\/\/t\.example\.com\/o\/[A-Za-z0-9_-]+\.gif$/);
  const c = kr.clickUrl("https://t.example.com", { kind: "click", ...common, link_id: "l", url: "https://e.com/" });
  assert.match(c, /^https:\/\/t\.example\.com\/c\/[A-Za-z0-9_-]+$/);
  const token = c.slice(c.lastIndexOf("/") + 1);
  assert.equal(kr.verify(token, "click").claims.url, "https://e.com/");
  // A number and the same bigint sign identically.
  assert.equal(kr.sign({ kind: "open", ...common }), kr.sign({ kind: "open", ...common, issued_at_ms: 1_700_000_000_000n }));
});

test("honeypot links: the click flags extension", () => {
  const kr = new oc.Keyring(KEYS.slice(0, 1));
  const click = {
    kind: "click" as const, tenant_id: "acme", campaign_id: "c", message_id: "m", contact_id: "u",
    channel: "email" as const, issued_at_ms: 1_700_000_000_000, link_id: "hp", url: "https://e.com/",
  };
  const plain = secret(kr.sign(click));
  const token = kr.sign({ ...click, honeypot: true });
  const raw = secret(token);
  // The click's bytes, then the flags varint 0x01 (bit 0), then the tag.
  assert.deepEqual(raw.subarray(0, -16), Buffer.concat([plain.subarray(0, -16), Buffer.from([1])]));
  assert.equal(kr.verify(token, "click").claims.honeypot, true);
  assert.equal(kr.verify(kr.sign(click)).claims.honeypot, false);
  // honeypot: false signs exactly as no honeypot.
  assert.equal(kr.sign({ ...click, honeypot: false }), kr.sign(click));
  assert.equal(reasonOf(() => kr.verify(token, "open")), "wrong_kind");
  assert.ok(V.valid.some((c) => c.claims.honeypot === true));
  const [id, s] = KEYS[0];
  const open = { ...click, kind: "open" as const, link_id: "", url: "" };
  assert.equal(reasonOf(() => oc.sign(id, s, { ...open, honeypot: true })), "invalid_claims");
  assert.equal(reasonOf(() => oc.sign(id, s, { ...click, honeypot: 1 as unknown as boolean })), "invalid_claims");
  assert.equal(reasonOf(() => oc.sign(id, s, { ...click, honeypot: true, url: "javascript:alert(1)" })), "invalid_destination");
});

test("signing refusals", () => {
  const [id, s] = KEYS[0];
  const base = {
    kind: "open" as oc.Kind, tenant_id: "acme", campaign_id: "c", message_id: "m", contact_id: "u",
    channel: "email" as const, issued_at_ms: 1n,
  };
  assert.equal(reasonOf(() => oc.sign(id, s, { ...base, tenant_id: "x".repeat(256) })), "field_too_long");
  oc.sign(id, s, { ...base, tenant_id: "\u00e9".repeat(127) });
  assert.equal(reasonOf(() => oc.sign(id, s, { ...base, url: "https://e.com" })), "invalid_claims");
  assert.equal(reasonOf(() => oc.sign(id, s, { ...base, kind: "click", url: "javascript:alert(1)" })), "invalid_destination");
  assert.equal(reasonOf(() => oc.sign(id, s, { ...base, kind: "click", url: "https://e.com/" + "a".repeat(2048) })), "field_too_long");
  assert.equal(reasonOf(() => oc.sign(id, s, { ...base, issued_at_ms: 1n << 63n })), "invalid_claims");
  assert.equal(reasonOf(() => oc.sign(id, s, { ...base, issued_at_ms: 1.5 })), "invalid_claims");
  assert.equal(reasonOf(() => oc.sign(id, s, { ...base, kind: "fetch" as oc.Kind })), "invalid_claims");
  assert.equal(reasonOf(() => oc.sign("k.1", s, base)), "invalid_key");
  assert.equal(reasonOf(() => oc.sign(id, Buffer.alloc(31), base)), "invalid_key");
});

test("destinations", () => {
  for (const good of ["https://example.com", "HTTP://Example.COM:8080/a?b#c", "https://[2001:db8::1]/", "https://xn--caf-dma.example/menu",
    "http://1.2.3.4/", "http://0xample.com/", "http://example.0x1g/", "https://[::ffff:1.2.3.4]/"]) {
    oc.validateDestination(good);
  }
  for (const bad of ["", "javascript:alert(1)", "//evil.example/", "https://user@e.com/", "https://e.com/ x",
    "https://e.com\\@x/", "https://e.com:0/", "https://e.com:99999/", "https://[::1/", "ftp://e.com/",
    "https://caf\u00e9.fr/", "https://.../", "https://e.com:/",
    // A browser reads another host (or none): percent-encoded hosts, IPv4 number forms, bad IPv6.
    "http://ex%61mple.com/", "http://0x7f.1/", "http://127.1/", "http://2130706433/",
    "http://010.0.0.1/", "http://1.2.3.4./", "http://999.1.1.1/", "http://example.123/",
    "http://[1::2::3]/", "http://[:]/"]) {
    assert.equal(reasonOf(() => oc.validateDestination(bad)), "invalid_destination", bad);
  }
});

test("strict base64url", () => {
  for (const raw of ["", "f", "fo", "foo"].map((s) => Buffer.from(s)).concat([Buffer.from([...Array(256).keys()])])) {
    assert.deepEqual(oc.b64decodeStrict(oc.b64encode(raw)), raw);
  }
  for (const bad of ["Z", "Zh", "Zm9", "Zm9v=", "Zm+v", "Zm/v", "Zm.v", "Zm v"]) {
    assert.equal(oc.b64decodeStrict(bad), null, bad);
  }
});

test("bad keyring specs", () => {
  const s = Buffer.alloc(32, 5).toString("base64url");
  // `acme/k1:...`: a tenant-scoped entry is the edge's; its sender gets the plain `k1:...`
  for (const spec of ["", " ", s, `k1:${s},`, `k1:${s},k1:${s}`, "k1:not base64!", `bad.id:${s}`,
    `acme/k1:${s}`, `k1:${Buffer.alloc(16, 5).toString("base64url")}`]) {
    assert.throws(() => oc.Keyring.fromSpec(spec), oc.TokenError, spec);
  }
  assert.equal(oc.Keyring.fromSpec(` a:${s}= ,\n b:${s}\n`).keys[1][0], "b");
});

test("unsubscribe tokens: kind 3, list_id, the undo flag", () => {
  const kr = oc.Keyring.fromSpec(V.keyring_spec);
  const [id, s] = KEYS[0];
  const u = {
    kind: "unsubscribe" as const, tenant_id: "acme", campaign_id: "", message_id: "", contact_id: "c-42",
    channel: "email" as const, issued_at_ms: 1717000000000n,
  };
  assert.ok(V.valid.some((c) => c.claims.kind === "unsubscribe" && c.claims.undo === true));
  assert.equal(kr.verify(kr.sign({ ...u, list_id: "news" }), "unsubscribe").claims.list_id, "news");
  assert.equal(kr.verify(kr.sign({ ...u, undo: true })).claims.undo, true);
  assert.ok(kr.unsubscribeUrl("https://t.example.com/", u).startsWith("https://t.example.com/u/"));
  assert.equal(reasonOf(() => oc.sign(id, s, { ...u, url: "https://e.com/" })), "invalid_claims");
  assert.equal(reasonOf(() => oc.sign(id, s, { ...u, kind: "open", list_id: "l" })), "invalid_claims");
  assert.equal(reasonOf(() => oc.sign(id, s, { ...u, list_id: "l".repeat(256) })), "field_too_long");
});

test("web hand-off vectors: signing gives the expected tokens", () => {
  assert.ok(V.web_valid.length >= 5);
  for (const c of V.web_valid) {
    const token = oc.signWeb(c.key_id, SECRET.get(c.key_id)!, webClaimsOf(c.claims));
    assert.equal(token, c.token, c.name);
    assert.equal(secret(token).toString("hex"), c.payload_hex, c.name);
  }
});

test("web hand-off vectors verify at their time, and expire at the edges of the rule", () => {
  const kr = new oc.Keyring(KEYS);
  for (const c of V.web_valid) {
    const claims = webClaimsOf(c.claims);
    assert.deepEqual(kr.verifyWeb(c.token, BigInt(c.verify_at_ms)), { claims, keyId: c.key_id }, c.name);
    kr.verifyWeb(c.token, claims.expires_at_ms - 1n);
    assert.equal(reasonOf(() => kr.verifyWeb(c.token, claims.expires_at_ms)), "expired", c.name);
    assert.equal(reasonOf(() => kr.verifyWeb(c.token, claims.issued_at_ms - 60_001n)), "expired", c.name);
    for (const route of [undefined, "open", "click", "unsubscribe"] as const) {
      assert.equal(reasonOf(() => kr.verify(c.token, route)), "malformed", c.name);
    }
  }
});

test("web hand-off invalid vectors fail with their class", () => {
  const kr = new oc.Keyring(KEYS);
  const classes = new Set<string>();
  for (const c of V.web_invalid) {
    assert.equal(reasonOf(() => kr.verifyWeb(c.token, BigInt(c.verify_at_ms))), c.error, c.name);
    classes.add(c.error);
  }
  for (const c of ["malformed", "bad_signature", "unknown_key", "wrong_kind", "expired"]) assert.ok(classes.has(c), c);
});

test("web hand-off vector assembled by hand from the section 11 table", () => {
  const c = V.web_valid[0];
  assert.equal(c.name, "web-handoff");
  const signed = Buffer.concat([
    Buffer.from([0x01]), // 1 version
    Buffer.from([2]), Buffer.from("k2"), // 2, 3 key id
    Buffer.from([0x84]), // 4 kind 8 << 4 | channel 4 (web)
    Buffer.from("80c8e6d2f863", "hex"), // 5 zigzag(1717000000000), LEB128
    Buffer.from([8]), Buffer.from("tenant-1"), // 6 tenant_id
    Buffer.from([12]), Buffer.from("camp-2024-05"), // 7 campaign_id
    Buffer.from([13]), Buffer.from("contact-12345"), // 8 contact_id
    Buffer.from("8090fbd309", "hex"), // 9 lifetime 2592000000 ms (30 days)
  ]);
  assert.equal(0x00 + 0x10 * 2 ** 7 + 0x7b * 2 ** 14 + 0x53 * 2 ** 21 + 0x09 * 2 ** 28, 30 * 86_400_000);
  const context = Buffer.alloc(64);
  context.write("openclick-token v1 HMAC-SHA256 tag for open/click tracking", "latin1");
  const mac = createHmac("sha256", SECRET.get("k2")!).update(context).update(signed).digest();
  const raw = Buffer.concat([signed, mac.subarray(0, 16)]); // 10 tag
  assert.equal(raw.toString("hex"), c.payload_hex);
  assert.equal(raw.toString("base64url"), c.token);
  assert.equal(c.claims.expires_at_ms, "1719592000000");
});

test("web hand-off signing refusals", () => {
  const [id, s] = KEYS[0];
  const t = 1_700_000_000_000n;
  const base = { tenant_id: "acme", campaign_id: "spring", contact_id: "c-42", issued_at_ms: t, expires_at_ms: t + 1n };
  const day = 86_400_000n;
  assert.equal(reasonOf(() => oc.signWeb(id, s, { ...base, expires_at_ms: t })), "invalid_claims");
  assert.equal(reasonOf(() => oc.signWeb(id, s, { ...base, expires_at_ms: t - 1n })), "invalid_claims");
  assert.equal(reasonOf(() => oc.signWeb(id, s, { ...base, expires_at_ms: t + 400n * day + 1n })), "invalid_claims");
  assert.equal(reasonOf(() => oc.signWeb(id, s, { ...base, issued_at_ms: (1n << 63n) - 1n, expires_at_ms: 1n << 63n })), "invalid_claims");
  assert.equal(reasonOf(() => oc.signWeb(id, s, { ...base, issued_at_ms: 1.5 })), "invalid_claims");
  assert.equal(reasonOf(() => oc.signWeb(id, s, { ...base, contact_id: "x".repeat(256) })), "field_too_long");
  assert.equal(reasonOf(() => oc.signWeb("k.1", s, base)), "invalid_key");
  oc.signWeb(id, s, { ...base, expires_at_ms: t + 400n * day });
  const kr = new oc.Keyring(KEYS.slice(0, 1));
  // A number and the same bigint sign identically.
  const token = kr.signWeb(base);
  assert.equal(kr.signWeb({ ...base, issued_at_ms: Number(t), expires_at_ms: Number(t) + 1 }), token);
  assert.deepEqual(kr.verifyWeb(token, Number(t)).claims, base);
});
