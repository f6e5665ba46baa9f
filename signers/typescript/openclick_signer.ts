/**
 * openclick token v1 reference signer and verifier (TypeScript for Node.js >= 16, no
 * dependencies: only `node:crypto`).
 *
 * Implements docs/token-v1.md: it signs the open/click tokens the openclick edge verifies,
 * byte for byte the tokens the Rust crate `openclick-token` produces, and verifies them with the
 * same error classes. Copy this one file into a sender.
 *
 * Build tracking URLs:
 *
 * ```ts
 * import { Keyring } from "./openclick_signer";
 *
 * // Same spec string as the edge's keyring: first key signs, "KEY_ID:BASE64URL_SECRET,...".
 * const keyring = Keyring.fromSpec(process.env.OPENCLICK_KEYS!);
 * const base = "https://t.example.com";
 * const common = {
 *   tenant_id: "acme", campaign_id: "spring-sale", message_id: "m-42", contact_id: "c-7",
 *   channel: "email" as const, issued_at_ms: Date.now(),
 * };
 * const pixel = keyring.openUrl(base, { kind: "open", ...common });
 * //  -> https://t.example.com/o/<token>.gif
 * const link = keyring.clickUrl(base, {
 *   kind: "click", ...common, link_id: "hero", url: "https://shop.example.com/sale",
 * });
 * //  -> https://t.example.com/c/<token>
 * // A honeypot link (hidden where no person clicks; a hit on it is a machine). Only once every
 * // edge verifying your tokens knows the flags extension (docs/token-v1.md section 7).
 * const trap = keyring.clickUrl(base, {
 *   kind: "click", ...common, link_id: "hp", url: "https://shop.example.com/", honeypot: true,
 * });
 *
 * // Verify (e.g. in tests): const { claims, keyId } = keyring.verify(token, "click");
 * ```
 *
 * On the sender's website, the `oc_id` cookie (a web hand-off token the edge adds to a click's
 * redirect, spec section 11) can be checked server-side with the edge's keyring:
 *
 * ```ts
 * const { claims, keyId } = keyring.verifyWeb(cookieValue, Date.now());
 * // claims: { tenant_id, campaign_id, contact_id, issued_at_ms, expires_at_ms } (bigint times)
 * ```
 *
 * `issued_at_ms` is a signed 64-bit integer: pass a `number` (safe up to 2^53) or a `bigint`;
 * `verify` returns a `bigint`. Errors throw `TokenError` whose `.reason` is the spec's class:
 * malformed, too_long, bad_signature, unknown_key, unsupported_version, invalid_destination,
 * wrong_kind (verify); the same up to the tag, then wrong_kind, malformed, expired (verifyWeb);
 * field_too_long, invalid_claims, invalid_destination, invalid_key (sign, signWeb); invalid_spec.
 */

import { createHmac, timingSafeEqual } from "node:crypto";
import { isIPv4, isIPv6 } from "node:net";

export const VERSION = 1;
export const TAG_LEN = 16;
export const MAX_TOKEN_LEN = 4608;
export const MAX_ID_LEN = 255;
export const MAX_URL_LEN = 2048;
export const MAX_KEY_ID_LEN = 16;
export const MIN_SECRET_LEN = 32;
export const MAX_SECRET_LEN = 1024;
const MIN_BODY_LEN = 6;
/** Click flags (the trailing flags extension, spec section 2): bit 0, a honeypot link. */
const FLAG_HONEYPOT = 1n;
const KNOWN_FLAGS = FLAG_HONEYPOT;
/** Unsubscribe flags (spec section 2, "Unsubscribe"): bit 0, an undo minted by the edge. */
const FLAG_UNDO = 1n;
const KNOWN_UNSUBSCRIBE_FLAGS = FLAG_UNDO;

/**
 * Web hand-off tokens (spec section 11): kind 8 (web hand-off) << 4 | channel 4 (web), a
 * lifetime of 1 ms to 400 days, and a minute of clock skew allowed before issued_at_ms.
 */
const WEB_KIND_CHANNEL = 0x84;
export const MAX_WEB_LIFETIME_MS = 400n * 86_400_000n;
const WEB_CLOCK_SKEW_MS = 60_000n;

/** One 64-byte block: the text, NUL-padded. MACed before the token bytes. */
const MAC_CONTEXT = (() => {
  const b = Buffer.alloc(64);
  b.write("openclick-token v1 HMAC-SHA256 tag for open/click tracking", "latin1");
  return b;
})();

export type Kind = "open" | "click" | "unsubscribe";
export type ChannelName = "email" | "sms" | "push" | "web";
const KINDS: Record<Kind, number> = { open: 1, click: 2, unsubscribe: 3 };
const CHANNELS: Record<ChannelName, number> = { email: 1, sms: 2, push: 3, web: 4 };
const KIND_NAMES: Record<number, Kind> = { 1: "open", 2: "click", 3: "unsubscribe" };
const CHANNEL_NAMES: Record<number, ChannelName> = { 1: "email", 2: "sms", 3: "push", 4: "web" };

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const B64_VALUE = new Map<string, number>([...ALPHABET].map((c, i) => [c, i]));
const KEY_ID_RE = /^[A-Za-z0-9_-]{1,16}$/;
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;

/** What a token says. Opens carry no link_id/url/honeypot (omit them or leave them empty). */
export interface Claims {
  kind: Kind;
  tenant_id: string;
  campaign_id: string;
  message_id: string;
  contact_id: string;
  channel: ChannelName;
  /** Milliseconds since the Unix epoch, signed 64-bit. */
  issued_at_ms: number | bigint;
  link_id?: string;
  url?: string;
  /**
   * Clicks only: a honeypot link, placed where no person sees it, so a hit on it is a machine.
   * Do not sign one before every edge verifying your tokens knows the flags extension (older
   * verifiers refuse such tokens as malformed).
   */
  honeypot?: boolean;
  /** Unsubscribes only: the list opted out of ("" or absent: the contact across the tenant). */
  list_id?: string;
  /** Unsubscribes only: an undo token (minted by the edge, not by senders). */
  undo?: boolean;
}

/** Claims as `verify` returns them. */
export interface VerifiedClaims extends Claims {
  issued_at_ms: bigint;
  link_id: string;
  url: string;
  honeypot: boolean;
  list_id: string;
  undo: boolean;
}

/**
 * What a web hand-off token says (spec section 11): the edge hands it to the sender's site on a
 * click (`?oc_id=TOKEN`); the site may verify it with `verifyWeb`.
 */
export interface WebClaims {
  tenant_id: string;
  campaign_id: string;
  contact_id: string;
  /** When the click handed it over, ms since the Unix epoch. */
  issued_at_ms: number | bigint;
  /** First instant it is no longer valid (issued_at_ms + lifetime). */
  expires_at_ms: number | bigint;
}

/** Web claims as `verifyWeb` returns them. */
export interface VerifiedWebClaims extends WebClaims {
  issued_at_ms: bigint;
  expires_at_ms: bigint;
}

/** A failure; `reason` is the spec's error class. */
export class TokenError extends Error {
  constructor(
    public readonly reason: string,
    detail = "",
  ) {
    super(detail ? `${reason}: ${detail}` : reason);
    this.name = "TokenError";
  }
}

// ---- encoding -------------------------------------------------------------------------------

function varint(v: bigint): number[] {
  const out: number[] = [];
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return out;
}

function zigzag(v: bigint): bigint {
  return v >= 0n ? v * 2n : -v * 2n - 1n;
}

function unzigzag(u: bigint): bigint {
  return (u & 1n) === 0n ? u >> 1n : -(u >> 1n) - 1n;
}

function field(b: Buffer): Buffer {
  return Buffer.concat([Buffer.from(varint(BigInt(b.length))), b]);
}

/** base64url without padding. */
export function b64encode(raw: Uint8Array): string {
  return Buffer.from(raw).toString("base64url");
}

/** Canonical unpadded base64url only (spec "Text encoding"); null otherwise. */
export function b64decodeStrict(text: string): Buffer | null {
  if (text.length % 4 === 1) return null;
  const out: number[] = [];
  let bits = 0;
  let nbits = 0;
  for (const c of text) {
    const v = B64_VALUE.get(c);
    if (v === undefined) return null;
    bits = (bits << 6) | v;
    nbits += 6;
    if (nbits >= 8) {
      nbits -= 8;
      out.push((bits >> nbits) & 0xff);
      bits &= (1 << nbits) - 1;
    }
  }
  if (bits !== 0) return null; // unused low bits of the last character must be zero
  return Buffer.from(out);
}

function checkKey(keyId: string, secret: Uint8Array): void {
  if (!KEY_ID_RE.test(keyId)) {
    throw new TokenError("invalid_key", "key id must be 1 to 16 characters of [A-Za-z0-9_-]");
  }
  if (secret.length < MIN_SECRET_LEN || secret.length > MAX_SECRET_LEN) {
    throw new TokenError("invalid_key", `key ${keyId}: secret must be 32 to 1024 bytes`);
  }
}

function tag(secret: Uint8Array, signed: Uint8Array): Buffer {
  return createHmac("sha256", secret).update(MAC_CONTEXT).update(signed).digest().subarray(0, TAG_LEN);
}

/** The token for `claims` under key `keyId` with `secret`. */
export function sign(keyId: string, secret: Uint8Array, c: Claims): string {
  checkKey(keyId, secret);
  if (!Object.prototype.hasOwnProperty.call(KINDS, c.kind)) {
    throw new TokenError("invalid_claims", `unknown kind ${String(c.kind)}`);
  }
  if (!Object.prototype.hasOwnProperty.call(CHANNELS, c.channel)) {
    throw new TokenError("invalid_claims", `unknown channel ${String(c.channel)}`);
  }
  let t: bigint;
  try {
    t = BigInt(c.issued_at_ms);
  } catch {
    throw new TokenError("invalid_claims", "issued_at_ms must be an integer");
  }
  if (t < I64_MIN || t > I64_MAX) {
    throw new TokenError("invalid_claims", "issued_at_ms must be a signed 64-bit integer");
  }
  const linkId = c.link_id ?? "";
  const url = c.url ?? "";
  const honeypot = c.honeypot ?? false;
  if (typeof honeypot !== "boolean") throw new TokenError("invalid_claims", "honeypot must be a boolean");
  const listId = c.list_id ?? "";
  const undo = c.undo ?? false;
  if (typeof undo !== "boolean") throw new TokenError("invalid_claims", "undo must be a boolean");
  const ids: Record<string, Buffer> = {};
  for (const [name, value] of [
    ["tenant_id", c.tenant_id],
    ["campaign_id", c.campaign_id],
    ["message_id", c.message_id],
    ["contact_id", c.contact_id],
    ["link_id", linkId],
    ["list_id", listId],
  ] as const) {
    const b = Buffer.from(value, "utf8");
    if (b.length > MAX_ID_LEN) {
      throw new TokenError("field_too_long", `${name}: ${b.length} bytes (max 255)`);
    }
    ids[name] = b;
  }
  const parts: Buffer[] = [
    Buffer.from([(KINDS[c.kind] << 4) | CHANNELS[c.channel], ...varint(zigzag(t))]),
    field(ids.tenant_id),
    field(ids.campaign_id),
    field(ids.message_id),
    field(ids.contact_id),
  ];
  if (c.kind !== "unsubscribe" && (listId !== "" || undo)) {
    throw new TokenError("invalid_claims", "list_id and undo belong to unsubscribe tokens");
  }
  if (c.kind === "unsubscribe") {
    if (linkId !== "" || url !== "" || honeypot) {
      throw new TokenError("invalid_claims", "unsubscribe tokens carry no link_id, url or honeypot");
    }
    parts.push(field(ids.list_id));
    if (undo) parts.push(Buffer.from(varint(FLAG_UNDO)));
  } else if (c.kind === "open") {
    if (linkId !== "" || url !== "") {
      throw new TokenError("invalid_claims", "open tokens carry no link_id or url");
    }
    if (honeypot) throw new TokenError("invalid_claims", "honeypot is a click flag; opens carry no flags");
  } else {
    const u = Buffer.from(url, "utf8");
    if (u.length > MAX_URL_LEN) throw new TokenError("field_too_long", `url: ${u.length} bytes (max 2048)`);
    validateDestination(url);
    parts.push(field(ids.link_id), field(u));
    // Flags: present only when non-zero, so a click without them is unchanged.
    const flags = honeypot ? FLAG_HONEYPOT : 0n;
    if (flags !== 0n) parts.push(Buffer.from(varint(flags)));
  }
  const kid = Buffer.from(keyId, "ascii");
  const signed = Buffer.concat([Buffer.from([VERSION, kid.length]), kid, ...parts]);
  return b64encode(Buffer.concat([signed, tag(secret, signed)]));
}

function time64(v: number | bigint, name: string): bigint {
  let t: bigint;
  try {
    t = BigInt(v);
  } catch {
    throw new TokenError("invalid_claims", `${name} must be an integer`);
  }
  if (t < I64_MIN || t > I64_MAX) throw new TokenError("invalid_claims", `${name} must be a signed 64-bit integer`);
  return t;
}

/**
 * The web hand-off token for `c` under key `keyId` with `secret`. Only the edge mints these (at
 * a click); this is for tests and for checking a verifier.
 */
export function signWeb(keyId: string, secret: Uint8Array, c: WebClaims): string {
  checkKey(keyId, secret);
  const ids: Buffer[] = [];
  for (const [name, value] of [
    ["tenant_id", c.tenant_id],
    ["campaign_id", c.campaign_id],
    ["contact_id", c.contact_id],
  ] as const) {
    const b = Buffer.from(value, "utf8");
    if (b.length > MAX_ID_LEN) throw new TokenError("field_too_long", `${name}: ${b.length} bytes (max 255)`);
    ids.push(b);
  }
  const issued = time64(c.issued_at_ms, "issued_at_ms");
  const lifetime = time64(c.expires_at_ms, "expires_at_ms") - issued;
  if (lifetime < 1n || lifetime > MAX_WEB_LIFETIME_MS) {
    throw new TokenError("invalid_claims", "a web token expires after it is issued, within 400 days");
  }
  const kid = Buffer.from(keyId, "ascii");
  const signed = Buffer.concat([
    Buffer.from([VERSION, kid.length]),
    kid,
    Buffer.from([WEB_KIND_CHANNEL, ...varint(zigzag(issued))]),
    ...ids.map(field),
    Buffer.from(varint(lifetime)),
  ]);
  return b64encode(Buffer.concat([signed, tag(secret, signed)]));
}

/** `${base}/u/${token}`, the List-Unsubscribe URI (RFC 8058 one-click). */
export function unsubscribeUrl(base: string, token: string): string {
  return `${base.replace(/\/+$/, "")}/u/${token}`;
}

/** `${base}/o/${token}.gif`, the open pixel. */
export function openUrl(base: string, token: string): string {
  return `${base.replace(/\/+$/, "")}/o/${token}.gif`;
}

/** `${base}/c/${token}`, the tracked link. */
export function clickUrl(base: string, token: string): string {
  return `${base.replace(/\/+$/, "")}/c/${token}`;
}

// ---- destination rule (spec "Click destinations") -------------------------------------------

/** Throws TokenError("invalid_destination") unless `url` is an acceptable redirect. */
export function validateDestination(url: string): void {
  const bad = (why: string): never => {
    throw new TokenError("invalid_destination", why);
  };
  if (url === "") bad("empty");
  if (Buffer.byteLength(url, "utf8") > MAX_URL_LEN) bad("longer than 2048 bytes");
  for (let i = 0; i < url.length; i++) {
    const c = url.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) bad("whitespace, control or non-ASCII characters");
  }
  if (url.includes("\\")) bad("backslash");
  const colon = url.indexOf(":");
  if (colon < 0) bad("no scheme");
  const scheme = url.slice(0, colon).toLowerCase();
  if (scheme !== "http" && scheme !== "https") bad("scheme must be http or https");
  let rest = url.slice(colon + 1);
  if (!rest.startsWith("//")) bad("missing //host");
  rest = rest.slice(2);
  const m = rest.search(/[/?#]/);
  const authority = m < 0 ? rest : rest.slice(0, m);
  if (authority.includes("@")) bad("user info");
  let port: string | null = null;
  if (authority.startsWith("[")) {
    const close = authority.indexOf("]");
    if (close < 0) bad("unterminated IPv6 literal");
    const literal = authority.slice(1, close);
    if (!literal.includes(":") || !/^[0-9A-Fa-f:.]*$/.test(literal) || !isIPv6(literal)) {
      bad("bad IPv6 literal");
    }
    const after = authority.slice(close + 1);
    if (after !== "") {
      if (!after.startsWith(":")) bad("characters after IPv6 literal");
      port = after.slice(1);
    }
  } else {
    const c = authority.indexOf(":");
    const host = c < 0 ? authority : authority.slice(0, c);
    if (c >= 0) port = authority.slice(c + 1);
    if (host === "" || !/^[A-Za-z0-9._~-]+$/.test(host)) bad("bad host");
    if (!/[A-Za-z0-9]/.test(host)) bad("missing host");
    if (endsInANumber(host) && !isIPv4(host)) {
      bad("a host ending in a number must be a dotted-decimal IPv4 address");
    }
  }
  if (port !== null) {
    if (!/^[0-9]{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) bad("bad port");
  }
}

/** WHATWG URL "ends in a number": a browser reads this host as an IPv4 address. */
function endsInANumber(host: string): boolean {
  const labels = host.split(".");
  if (labels[labels.length - 1] === "" && labels.length > 1) labels.pop();
  const last = labels[labels.length - 1];
  return /^[0-9]+$/.test(last) || /^0[xX][0-9A-Fa-f]*$/.test(last);
}

// ---- verification (spec "Verification") -----------------------------------------------------

const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

class Reader {
  pos = 0;
  constructor(private readonly buf: Buffer) {}

  get done(): boolean {
    return this.pos === this.buf.length;
  }

  byte(): number {
    if (this.pos >= this.buf.length) throw new TokenError("malformed", "truncated");
    return this.buf[this.pos++];
  }

  varint(): bigint {
    let v = 0n;
    for (let i = 0; i < 10; i++) {
      const b = this.byte();
      if (i === 9 && b > 1) throw new TokenError("malformed", "varint overflow");
      v |= BigInt(b & 0x7f) << BigInt(7 * i);
      if ((b & 0x80) === 0) {
        if (i > 0 && b === 0) throw new TokenError("malformed", "non-minimal varint");
        return v;
      }
    }
    throw new TokenError("malformed", "varint overflow");
  }

  string(max: number): string {
    const n = this.varint();
    if (n > BigInt(max)) throw new TokenError("malformed", "field too long");
    const len = Number(n);
    if (len > this.buf.length - this.pos) throw new TokenError("malformed", "truncated");
    const raw = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    try {
      return UTF8.decode(raw);
    } catch {
      throw new TokenError("malformed", "field is not UTF-8");
    }
  }
}

/** Spec section 8, steps 1-8 (every kind): the key id and body of a token whose tag is right. */
function authenticate(token: string, keys: ReadonlyMap<string, Uint8Array>): { kid: string; body: Buffer } {
  if (Buffer.byteLength(token, "utf8") > MAX_TOKEN_LEN) throw new TokenError("too_long");
  const data = b64decodeStrict(token);
  if (data === null) throw new TokenError("malformed", "not base64url");
  if (data.length === 0) throw new TokenError("malformed", "empty");
  if (data[0] !== VERSION) throw new TokenError("unsupported_version", String(data[0]));
  if (data.length < 2) throw new TokenError("malformed", "truncated");
  const kidLen = data[1];
  if (kidLen < 1 || kidLen > MAX_KEY_ID_LEN) throw new TokenError("malformed", "bad key id length");
  if (data.length - 2 < kidLen + MIN_BODY_LEN + TAG_LEN) throw new TokenError("malformed", "truncated");
  const kid = data.subarray(2, 2 + kidLen).toString("latin1");
  if (!KEY_ID_RE.test(kid)) throw new TokenError("malformed", "bad key id");
  const secret = keys.get(kid);
  if (secret === undefined) throw new TokenError("unknown_key", kid);
  const signed = data.subarray(0, data.length - TAG_LEN);
  if (!timingSafeEqual(tag(secret, signed), data.subarray(data.length - TAG_LEN))) {
    throw new TokenError("bad_signature");
  }
  return { kid, body: signed.subarray(2 + kidLen) };
}

/**
 * Verifies `token` against `keys` (key id -> secret); returns the claims and the key id.
 * `expectKind` ("open" for /o/, "click" for /c/) adds the route check (class wrong_kind).
 */
export function verify(
  token: string,
  keys: ReadonlyMap<string, Uint8Array>,
  expectKind?: Kind,
): { claims: VerifiedClaims; keyId: string } {
  const { kid, body } = authenticate(token, keys);
  const r = new Reader(body);
  const kc = r.byte();
  const kind = KIND_NAMES[kc >> 4];
  if (kind === undefined) throw new TokenError("malformed", "unknown kind");
  const channel = CHANNEL_NAMES[kc & 0x0f];
  if (channel === undefined) throw new TokenError("malformed", "unknown channel");
  const issued_at_ms = unzigzag(r.varint());
  const [tenant_id, campaign_id, message_id, contact_id] = [0, 1, 2, 3].map(() => r.string(MAX_ID_LEN));
  let link_id = "";
  let url = "";
  let honeypot = false;
  let list_id = "";
  let undo = false;
  if (kind === "unsubscribe") {
    list_id = r.string(MAX_ID_LEN);
    if (!r.done) {
      const flags = r.varint();
      if (flags === 0n) throw new TokenError("malformed", "zero flags");
      if ((flags & ~KNOWN_UNSUBSCRIBE_FLAGS) !== 0n) throw new TokenError("malformed", "unknown flag bits");
      undo = (flags & FLAG_UNDO) !== 0n;
    }
  }
  if (kind === "click") {
    link_id = r.string(MAX_ID_LEN);
    url = r.string(MAX_URL_LEN);
    if (!r.done) {
      // The flags: minimal varint, non-zero, known bits only.
      const flags = r.varint();
      if (flags === 0n) throw new TokenError("malformed", "zero flags");
      if ((flags & ~KNOWN_FLAGS) !== 0n) throw new TokenError("malformed", "unknown flag bits");
      honeypot = (flags & FLAG_HONEYPOT) !== 0n;
    }
  }
  if (!r.done) throw new TokenError("malformed", "trailing bytes");
  if (kind === "click") validateDestination(url);
  if (expectKind !== undefined && kind !== expectKind) {
    throw new TokenError("wrong_kind", `${kind} token on the ${expectKind} route`);
  }
  const claims = {
    kind, tenant_id, campaign_id, message_id, contact_id, channel, issued_at_ms, link_id, url, honeypot,
    list_id, undo,
  };
  return { claims, keyId: kid };
}

/**
 * Verifies a web hand-off token (spec section 11) at `nowMs` (ms since the Unix epoch, the
 * verifier's clock) against `keys`; returns the claims and the key id. Classes: those of `verify`
 * up to the tag, then wrong_kind (a validly signed token of another kind: an open, click or
 * unsubscribe), malformed (the body), expired (nowMs >= expires_at_ms, or nowMs more than a
 * minute before issued_at_ms).
 */
export function verifyWeb(
  token: string,
  keys: ReadonlyMap<string, Uint8Array>,
  nowMs: number | bigint,
): { claims: VerifiedWebClaims; keyId: string } {
  const { kid, body } = authenticate(token, keys);
  const r = new Reader(body);
  if (r.byte() !== WEB_KIND_CHANNEL) throw new TokenError("wrong_kind", "not a web token");
  const issued_at_ms = unzigzag(r.varint());
  const [tenant_id, campaign_id, contact_id] = [0, 1, 2].map(() => r.string(MAX_ID_LEN));
  const lifetime = r.varint();
  if (lifetime < 1n || lifetime > MAX_WEB_LIFETIME_MS) throw new TokenError("malformed", "web token lifetime out of range");
  if (!r.done) throw new TokenError("malformed", "trailing bytes");
  // In 64 bits, as the edge: an expiry past the largest time is that time.
  const sum = issued_at_ms + lifetime;
  const expires_at_ms = sum > I64_MAX ? I64_MAX : sum;
  const now = BigInt(nowMs);
  if (now >= expires_at_ms || now < issued_at_ms - WEB_CLOCK_SKEW_MS) throw new TokenError("expired");
  return { claims: { tenant_id, campaign_id, contact_id, issued_at_ms, expires_at_ms }, keyId: kid };
}

// ---- keyrings -------------------------------------------------------------------------------

/** Keys by id; the first signs, all verify. Same spec string as the edge. */
export class Keyring {
  readonly keys: ReadonlyArray<readonly [string, Buffer]>;
  private readonly byId: Map<string, Buffer>;

  /** `keys`: [keyId, secret] pairs, the signing key first. */
  constructor(keys: ReadonlyArray<readonly [string, Uint8Array]>) {
    if (keys.length === 0) throw new TokenError("invalid_spec", "empty");
    this.byId = new Map();
    for (const [id, secret] of keys) {
      checkKey(id, secret);
      if (this.byId.has(id)) throw new TokenError("invalid_key", `duplicate key id ${id}`);
      this.byId.set(id, Buffer.from(secret));
    }
    this.keys = keys.map(([id, s]) => [id, Buffer.from(s)] as const);
  }

  /** Parses "k2:SECRET,k1:SECRET" (base64url secrets, padding optional). */
  static fromSpec(spec: string): Keyring {
    if (spec.trim() === "") throw new TokenError("invalid_spec", "empty");
    const keys: [string, Buffer][] = [];
    spec.split(",").forEach((entry, i) => {
      const e = entry.trim();
      const colon = e.indexOf(":");
      if (colon < 0) throw new TokenError("invalid_spec", `entry ${i + 1}: expected KEY_ID:BASE64URL_SECRET`);
      const raw = b64decodeStrict(e.slice(colon + 1).trim().replace(/=+$/, ""));
      if (raw === null) throw new TokenError("invalid_spec", `entry ${i + 1}: secret is not valid base64url`);
      keys.push([e.slice(0, colon).trim(), raw]);
    });
    return new Keyring(keys);
  }

  get signingKeyId(): string {
    return this.keys[0][0];
  }

  sign(claims: Claims): string {
    return sign(this.keys[0][0], this.keys[0][1], claims);
  }

  openUrl(base: string, claims: Claims): string {
    if (claims.kind !== "open") throw new TokenError("invalid_claims", "openUrl needs an open");
    return openUrl(base, this.sign(claims));
  }

  clickUrl(base: string, claims: Claims): string {
    if (claims.kind !== "click") throw new TokenError("invalid_claims", "clickUrl needs a click");
    return clickUrl(base, this.sign(claims));
  }

  unsubscribeUrl(base: string, claims: Claims): string {
    if (claims.kind !== "unsubscribe") throw new TokenError("invalid_claims", "unsubscribeUrl needs an unsubscribe");
    return unsubscribeUrl(base, this.sign(claims));
  }

  verify(token: string, expectKind?: Kind): { claims: VerifiedClaims; keyId: string } {
    return verify(token, this.byId, expectKind);
  }

  /** A web hand-off token (only the edge mints them; for tests). */
  signWeb(claims: WebClaims): string {
    return signWeb(this.keys[0][0], this.keys[0][1], claims);
  }

  /** Verifies a web hand-off token (the site's `oc_id` cookie) at `nowMs`. */
  verifyWeb(token: string, nowMs: number | bigint): { claims: VerifiedWebClaims; keyId: string } {
    return verifyWeb(token, this.byId, nowMs);
  }
}
