"""openclick token v1 reference signer and verifier (Python 3.8+, standard library only).

Implements docs/token-v1.md: it signs the open/click tokens the openclick edge verifies,
byte for byte the tokens the Rust crate `openclick-token` produces, and verifies them with
the same error classes. Copy this one file into a sender; it needs no packages.

Build tracking URLs::

    from openclick_signer import Claims, Keyring

    # Same spec string as the edge's keyring: first key signs, "KEY_ID:BASE64URL_SECRET".
    keyring = Keyring.from_spec(os.environ["OPENCLICK_KEYS"])
    base = "https://t.example.com"
    common = dict(tenant_id="acme", campaign_id="spring-sale", message_id="m-42",
                  contact_id="c-7", channel="email", issued_at_ms=int(time.time() * 1000))
    pixel = keyring.open_url(base, Claims(kind="open", **common))
    # -> https://t.example.com/o/<token>.gif
    link = keyring.click_url(base, Claims(kind="click", link_id="hero",
                                          url="https://shop.example.com/sale", **common))
    # -> https://t.example.com/c/<token>
    # A honeypot link (hidden where no person clicks; a hit on it is a machine). Only once
    # every edge verifying your tokens knows the flags extension (docs/token-v1.md section 7).
    trap = keyring.click_url(base, Claims(kind="click", link_id="hp", honeypot=True,
                                          url="https://shop.example.com/", **common))

    # Verify (e.g. in tests): claims, key_id = keyring.verify(token, expect_kind="click")

On the sender's website, the `oc_id` cookie (a web hand-off token the edge adds to a click's
redirect, spec section 11) can be checked server-side with the edge's keyring::

    web, key_id = keyring.verify_web(cookie_value, now_ms=int(time.time() * 1000))
    # -> WebClaims(tenant_id, campaign_id, contact_id, issued_at_ms, expires_at_ms)

Errors raise TokenError whose .reason is the spec's class: malformed, too_long,
bad_signature, unknown_key, unsupported_version, invalid_destination, wrong_kind (verify);
the same up to the tag, then wrong_kind, malformed, expired (verify_web);
field_too_long, invalid_claims, invalid_destination, invalid_key (sign, sign_web); invalid_spec.

Command line (used by the Rust cross-check test)::

    python3 openclick_signer.py sign-batch < request.json
        request: {"key_id": ..., "secret": BASE64URL, "claims": [CLAIMS, ...]}
        output: one token per line
    python3 openclick_signer.py verify-batch < request.json
        request: {"keyring_spec": SPEC, "tokens": [TOKEN, ...]}
        output: one JSON object per line, {"claims": CLAIMS, "key_id": ...} or {"error": CLASS}
    python3 openclick_signer.py verify-web-batch < request.json
        request: {"keyring_spec": SPEC, "checks": [{"token": TOKEN, "verify_at_ms": MS}, ...]}
        output: one JSON object per line, {"claims": WEB_CLAIMS, "key_id": ...} or {"error": CLASS}
    python3 openclick_signer.py sign --keys SPEC --kind click --tenant-id ... --url ... [--honeypot]
        output: the token, then the tracking URL (--base, default https://t.example.com)

CLAIMS is the vector file's JSON form; "honeypot": true (clicks only) is written only when set.
WEB_CLAIMS is the form of its web_valid vectors (times as decimal strings); MS may be either.
"""

import base64
import hashlib
import hmac
import ipaddress
import json
import sys
from dataclasses import dataclass

VERSION = 1
TAG_LEN = 16
MAX_TOKEN_LEN = 4608
MAX_ID_LEN = 255
MAX_URL_LEN = 2048
MAX_KEY_ID_LEN = 16
MIN_SECRET_LEN = 32
MAX_SECRET_LEN = 1024
MIN_BODY_LEN = 6
# Click flags (the trailing flags extension, spec section 2): bit 0, a honeypot link.
FLAG_HONEYPOT = 1
KNOWN_FLAGS = FLAG_HONEYPOT
# Unsubscribe flags (spec section 2, "Unsubscribe"): bit 0, an undo minted by the edge.
FLAG_UNDO = 1
KNOWN_UNSUBSCRIBE_FLAGS = FLAG_UNDO
# Web hand-off tokens (spec section 11): kind 8 (web hand-off) << 4 | channel 4 (web), a
# lifetime of 1 ms to 400 days, and a minute of clock skew allowed before issued_at_ms.
WEB_KIND_CHANNEL = 0x84
MAX_WEB_LIFETIME_MS = 400 * 86_400_000
WEB_CLOCK_SKEW_MS = 60_000
# One 64-byte block: the text, NUL-padded. MACed before the token bytes.
MAC_CONTEXT = b"openclick-token v1 HMAC-SHA256 tag for open/click tracking".ljust(64, b"\0")

KINDS = {"open": 1, "click": 2, "unsubscribe": 3}
CHANNELS = {"email": 1, "sms": 2, "push": 3, "web": 4}
_KIND_NAMES = {v: k for k, v in KINDS.items()}
_CHANNEL_NAMES = {v: k for k, v in CHANNELS.items()}
_B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_B64_VALUE = {c: i for i, c in enumerate(_B64_ALPHABET)}
_KEY_ID_CHARS = set(_B64_ALPHABET)
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


class TokenError(Exception):
    """A failure; .reason is the spec's error class."""

    def __init__(self, reason, detail=""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class Claims:
    """What a token says. Opens carry no link_id/url/honeypot.

    honeypot (clicks only): a link placed where no person sees it, so a hit on it is a
    machine. Do not sign one before every edge verifying your tokens knows the flags extension
    (older verifiers refuse such tokens as malformed).
    """

    kind: str  # "open" | "click" | "unsubscribe"
    tenant_id: str
    campaign_id: str
    message_id: str
    contact_id: str
    channel: str  # "email" | "sms" | "push" | "web"
    issued_at_ms: int  # ms since the Unix epoch, signed 64-bit
    link_id: str = ""
    url: str = ""
    honeypot: bool = False
    list_id: str = ""  # unsubscribes only: the list opted out of ("": the whole tenant)
    undo: bool = False  # unsubscribes only: an undo token (minted by the edge)

    @staticmethod
    def from_dict(d):
        """From the vector file's JSON form (issued_at_ms may be a string, honeypot absent)."""
        return Claims(kind=d["kind"], tenant_id=d["tenant_id"], campaign_id=d["campaign_id"],
                      message_id=d["message_id"], contact_id=d["contact_id"],
                      channel=d["channel"], issued_at_ms=int(d["issued_at_ms"]),
                      link_id=d.get("link_id", ""), url=d.get("url", ""),
                      honeypot=d.get("honeypot", False), list_id=d.get("list_id", ""),
                      undo=d.get("undo", False))

    def to_dict(self):
        """The vector file's JSON form: issued_at_ms as a string, honeypot only when set."""
        d = {k: getattr(self, k) for k in ("kind", "channel", "tenant_id", "campaign_id",
                                            "message_id", "contact_id", "issued_at_ms",
                                            "link_id", "url")}
        d["issued_at_ms"] = str(self.issued_at_ms)
        if self.honeypot:
            d["honeypot"] = True
        if self.kind == "unsubscribe":
            d["list_id"] = self.list_id
        if self.undo:
            d["undo"] = True
        return d


@dataclass(frozen=True)
class WebClaims:
    """What a web hand-off token says (spec section 11): the edge hands it to the sender's site
    on a click (`?oc_id=TOKEN`); the site may verify it with `verify_web`.
    """

    tenant_id: str
    campaign_id: str
    contact_id: str
    issued_at_ms: int  # when the click handed it over, ms since the Unix epoch
    expires_at_ms: int  # first instant it is no longer valid (issued_at_ms + lifetime)

    @staticmethod
    def from_dict(d):
        """From the vector file's JSON form (times as decimal strings or integers)."""
        return WebClaims(tenant_id=d["tenant_id"], campaign_id=d["campaign_id"],
                         contact_id=d["contact_id"], issued_at_ms=int(d["issued_at_ms"]),
                         expires_at_ms=int(d["expires_at_ms"]))

    def to_dict(self):
        """The vector file's JSON form: times as decimal strings."""
        return {"tenant_id": self.tenant_id, "campaign_id": self.campaign_id,
                "contact_id": self.contact_id, "issued_at_ms": str(self.issued_at_ms),
                "expires_at_ms": str(self.expires_at_ms)}


# ---- encoding -----------------------------------------------------------------------------

def _varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _zigzag(v):
    return v * 2 if v >= 0 else -v * 2 - 1


def _unzigzag(u):
    return u >> 1 if u & 1 == 0 else -(u >> 1) - 1


def _field(b):
    return _varint(len(b)) + b


def b64encode(raw):
    """base64url without padding."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64decode_strict(text):
    """Canonical unpadded base64url only (spec section "Text encoding"); None otherwise."""
    if len(text) % 4 == 1:
        return None
    bits = 0
    nbits = 0
    out = bytearray()
    for c in text:
        v = _B64_VALUE.get(c)
        if v is None:
            return None
        bits = (bits << 6) | v
        nbits += 6
        if nbits >= 8:
            nbits -= 8
            out.append((bits >> nbits) & 0xFF)
            bits &= (1 << nbits) - 1
    if bits != 0:  # unused low bits of the last character must be zero
        return None
    return bytes(out)


def _check_key(key_id, secret):
    if not (1 <= len(key_id) <= MAX_KEY_ID_LEN) or not set(key_id) <= _KEY_ID_CHARS:
        raise TokenError("invalid_key", "key id must be 1 to 16 characters of [A-Za-z0-9_-]")
    if not (MIN_SECRET_LEN <= len(secret) <= MAX_SECRET_LEN):
        raise TokenError("invalid_key", f"key {key_id!r}: secret must be 32 to 1024 bytes")


def _tag(secret, signed):
    return hmac.new(secret, MAC_CONTEXT + signed, hashlib.sha256).digest()[:TAG_LEN]


def sign(key_id, secret, claims):
    """The token for `claims` (Claims or dict) under key `key_id` with `secret` (bytes)."""
    if isinstance(claims, dict):
        claims = Claims.from_dict(claims)
    _check_key(key_id, secret)
    c = claims
    if c.kind not in KINDS:
        raise TokenError("invalid_claims", f"unknown kind {c.kind!r}")
    if c.channel not in CHANNELS:
        raise TokenError("invalid_claims", f"unknown channel {c.channel!r}")
    if not isinstance(c.issued_at_ms, int) or not _I64_MIN <= c.issued_at_ms <= _I64_MAX:
        raise TokenError("invalid_claims", "issued_at_ms must be a signed 64-bit integer")
    if not isinstance(c.honeypot, bool) or not isinstance(c.undo, bool):
        raise TokenError("invalid_claims", "honeypot and undo must be booleans")
    ids = {}
    for name in ("tenant_id", "campaign_id", "message_id", "contact_id", "link_id", "list_id"):
        ids[name] = getattr(c, name).encode("utf-8")
        if len(ids[name]) > MAX_ID_LEN:
            raise TokenError("field_too_long", f"{name}: {len(ids[name])} bytes (max 255)")
    body = bytearray([KINDS[c.kind] << 4 | CHANNELS[c.channel]])
    body += _varint(_zigzag(c.issued_at_ms))
    for name in ("tenant_id", "campaign_id", "message_id", "contact_id"):
        body += _field(ids[name])
    if c.kind != "unsubscribe" and (c.list_id or c.undo):
        raise TokenError("invalid_claims", "list_id and undo belong to unsubscribe tokens")
    if c.kind == "unsubscribe":
        if c.link_id or c.url or c.honeypot:
            raise TokenError("invalid_claims",
                             "unsubscribe tokens carry no link_id, url or honeypot")
        body += _field(ids["list_id"])
        if c.undo:  # flags present only when non-zero
            body += _varint(FLAG_UNDO)
    elif c.kind == "open":
        if c.link_id or c.url:
            raise TokenError("invalid_claims", "open tokens carry no link_id or url")
        if c.honeypot:
            raise TokenError("invalid_claims", "honeypot is a click flag; opens carry no flags")
    else:
        url = c.url.encode("utf-8")
        if len(url) > MAX_URL_LEN:
            raise TokenError("field_too_long", f"url: {len(url)} bytes (max 2048)")
        validate_destination(c.url)
        body += _field(ids["link_id"]) + _field(url)
        flags = FLAG_HONEYPOT if c.honeypot else 0
        if flags:  # present only when non-zero: a click without flags is unchanged
            body += _varint(flags)
    kid = key_id.encode("ascii")
    signed = bytes([VERSION, len(kid)]) + kid + bytes(body)
    return b64encode(signed + _tag(secret, signed))


def sign_web(key_id, secret, claims):
    """The web hand-off token for `claims` (WebClaims or dict) under key `key_id` with `secret`.

    Only the edge mints these (at a click); this is for tests and for checking a verifier.
    """
    if isinstance(claims, dict):
        claims = WebClaims.from_dict(claims)
    _check_key(key_id, secret)
    c = claims
    ids = {}
    for name in ("tenant_id", "campaign_id", "contact_id"):
        ids[name] = getattr(c, name).encode("utf-8")
        if len(ids[name]) > MAX_ID_LEN:
            raise TokenError("field_too_long", f"{name}: {len(ids[name])} bytes (max 255)")
    for t in (c.issued_at_ms, c.expires_at_ms):
        if not isinstance(t, int) or isinstance(t, bool) or not _I64_MIN <= t <= _I64_MAX:
            raise TokenError("invalid_claims", "times must be signed 64-bit integers")
    lifetime = c.expires_at_ms - c.issued_at_ms
    if not 1 <= lifetime <= MAX_WEB_LIFETIME_MS:
        raise TokenError("invalid_claims",
                         "a web token expires after it is issued, within 400 days")
    body = bytes([WEB_KIND_CHANNEL]) + _varint(_zigzag(c.issued_at_ms))
    body += _field(ids["tenant_id"]) + _field(ids["campaign_id"]) + _field(ids["contact_id"])
    body += _varint(lifetime)
    kid = key_id.encode("ascii")
    signed = bytes([VERSION, len(kid)]) + kid + body
    return b64encode(signed + _tag(secret, signed))


def open_url(base, token):
    """`{base}/o/{token}.gif`, the open pixel."""
    return f"{base.rstrip('/')}/o/{token}.gif"


def unsubscribe_url(base, token):
    """`{base}/u/{token}`, the List-Unsubscribe URI."""
    return f"{base.rstrip('/')}/u/{token}"


def click_url(base, token):
    """`{base}/c/{token}`, the tracked link."""
    return f"{base.rstrip('/')}/c/{token}"


# ---- destination rule (spec section "Click destinations") ---------------------------------

def validate_destination(url):
    """Raises TokenError("invalid_destination") unless `url` is an acceptable redirect."""
    def bad(why):
        raise TokenError("invalid_destination", why)

    if not url:
        bad("empty")
    if len(url.encode("utf-8")) > MAX_URL_LEN:
        bad("longer than 2048 bytes")
    if any(not 0x21 <= ord(ch) <= 0x7E for ch in url):
        bad("whitespace, control or non-ASCII characters")
    if "\\" in url:
        bad("backslash")
    scheme, sep, rest = url.partition(":")
    if not sep:
        bad("no scheme")
    if scheme.lower() not in ("http", "https"):
        bad("scheme must be http or https")
    if not rest.startswith("//"):
        bad("missing //host")
    rest = rest[2:]
    end = min([i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0],
              default=len(rest))
    authority = rest[:end]
    if "@" in authority:
        bad("user info")
    if authority.startswith("["):
        literal, sep, after = authority[1:].partition("]")
        if not sep:
            bad("unterminated IPv6 literal")
        if ":" not in literal or any(ch not in "0123456789abcdefABCDEF:." for ch in literal):
            bad("bad IPv6 literal")
        try:
            ipaddress.IPv6Address(literal)
        except ValueError:
            bad("bad IPv6 literal")
        if after == "":
            port = None
        elif after.startswith(":"):
            port = after[1:]
        else:
            bad("characters after IPv6 literal")
    else:
        host, sep, port = authority.partition(":")
        if not sep:
            port = None
        if not host or any(not (ch.isascii() and (ch.isalnum() or ch in "._~-")) for ch in host):
            bad("bad host")
        if not any(ch.isascii() and ch.isalnum() for ch in host):
            bad("missing host")
        if _ends_in_a_number(host):
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                bad("a host ending in a number must be a dotted-decimal IPv4 address")
    if port is not None:
        if not (1 <= len(port) <= 5 and all(ch in "0123456789" for ch in port)
                and 1 <= int(port) <= 65535):
            bad("bad port")


def _ends_in_a_number(host):
    """WHATWG URL "ends in a number": a browser reads this host as an IPv4 address."""
    labels = host.split(".")
    if labels[-1] == "" and len(labels) > 1:
        labels.pop()
    last = labels[-1]
    if last and all(ch in "0123456789" for ch in last):
        return True
    return last[:2] in ("0x", "0X") and all(ch in "0123456789abcdefABCDEF" for ch in last[2:])


# ---- verification (spec section "Verification") -------------------------------------------

class _Reader:
    def __init__(self, buf):
        self.buf = buf
        self.pos = 0

    def byte(self):
        if self.pos >= len(self.buf):
            raise TokenError("malformed", "truncated")
        b = self.buf[self.pos]
        self.pos += 1
        return b

    def varint(self):
        v = 0
        for i in range(10):
            b = self.byte()
            if i == 9 and b > 1:
                raise TokenError("malformed", "varint overflow")
            v |= (b & 0x7F) << (7 * i)
            if b & 0x80 == 0:
                if i > 0 and b == 0:
                    raise TokenError("malformed", "non-minimal varint")
                return v
        raise TokenError("malformed", "varint overflow")

    def string(self, max_len):
        n = self.varint()
        if n > max_len:
            raise TokenError("malformed", "field too long")
        if n > len(self.buf) - self.pos:
            raise TokenError("malformed", "truncated")
        raw = self.buf[self.pos:self.pos + n]
        self.pos += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise TokenError("malformed", "field is not UTF-8") from None


def _authenticate(token, keys):
    """Spec section 8, steps 1-8 (every kind): returns (key id, body) of a token whose tag is
    right under `keys` ({key_id: secret bytes})."""
    if len(token.encode("utf-8", "surrogatepass")) > MAX_TOKEN_LEN:
        raise TokenError("too_long")
    data = b64decode_strict(token)
    if data is None:
        raise TokenError("malformed", "not base64url")
    if not data:
        raise TokenError("malformed", "empty")
    if data[0] != VERSION:
        raise TokenError("unsupported_version", str(data[0]))
    if len(data) < 2:
        raise TokenError("malformed", "truncated")
    kid_len = data[1]
    if not 1 <= kid_len <= MAX_KEY_ID_LEN:
        raise TokenError("malformed", "bad key id length")
    if len(data) - 2 < kid_len + MIN_BODY_LEN + TAG_LEN:
        raise TokenError("malformed", "truncated")
    kid = data[2:2 + kid_len].decode("latin-1")
    if not set(kid) <= _KEY_ID_CHARS:
        raise TokenError("malformed", "bad key id")
    secret = keys.get(kid)
    if secret is None:
        raise TokenError("unknown_key", kid)
    signed, tag = data[:-TAG_LEN], data[-TAG_LEN:]
    if not hmac.compare_digest(_tag(secret, signed), tag):
        raise TokenError("bad_signature")
    return kid, signed[2 + kid_len:]


def verify(token, keys, expect_kind=None):
    """Verifies `token` against `keys` ({key_id: secret bytes}); returns (Claims, key_id).

    `expect_kind` ("open" for /o/, "click" for /c/) adds the route check (class wrong_kind).
    """
    kid, body = _authenticate(token, keys)
    r = _Reader(body)
    kc = r.byte()
    kind = _KIND_NAMES.get(kc >> 4)
    if kind is None:
        raise TokenError("malformed", "unknown kind")
    channel = _CHANNEL_NAMES.get(kc & 0x0F)
    if channel is None:
        raise TokenError("malformed", "unknown channel")
    issued_at_ms = _unzigzag(r.varint())
    ids = [r.string(MAX_ID_LEN) for _ in range(4)]
    link_id = url = list_id = ""
    honeypot = undo = False
    if kind == "unsubscribe":
        list_id = r.string(MAX_ID_LEN)
        if r.pos != len(r.buf):  # the flags: minimal varint, non-zero, known bits only
            flags = r.varint()
            if flags == 0:
                raise TokenError("malformed", "zero flags")
            if flags & ~KNOWN_UNSUBSCRIBE_FLAGS:
                raise TokenError("malformed", "unknown flag bits")
            undo = bool(flags & FLAG_UNDO)
    if kind == "click":
        link_id = r.string(MAX_ID_LEN)
        url = r.string(MAX_URL_LEN)
        if r.pos != len(r.buf):  # the flags: minimal varint, non-zero, known bits only
            flags = r.varint()
            if flags == 0:
                raise TokenError("malformed", "zero flags")
            if flags & ~KNOWN_FLAGS:
                raise TokenError("malformed", "unknown flag bits")
            honeypot = bool(flags & FLAG_HONEYPOT)
    if r.pos != len(r.buf):
        raise TokenError("malformed", "trailing bytes")
    if kind == "click":
        validate_destination(url)
    if expect_kind is not None and kind != expect_kind:
        raise TokenError("wrong_kind", f"{kind} token on the {expect_kind} route")
    claims = Claims(kind, ids[0], ids[1], ids[2], ids[3], channel, issued_at_ms, link_id, url,
                    honeypot, list_id, undo)
    return claims, kid


def verify_web(token, keys, now_ms):
    """Verifies a web hand-off token (spec section 11) at `now_ms` (ms since the Unix epoch, the
    verifier's clock) against `keys` ({key_id: secret bytes}); returns (WebClaims, key_id).

    Classes: those of `verify` up to the tag, then wrong_kind (a validly signed token of another
    kind: an open, click or unsubscribe), malformed (the body), expired (now_ms >= expires_at_ms,
    or now_ms more than a minute before issued_at_ms).
    """
    kid, body = _authenticate(token, keys)
    r = _Reader(body)
    if r.byte() != WEB_KIND_CHANNEL:
        raise TokenError("wrong_kind", "not a web token")
    issued_at_ms = _unzigzag(r.varint())
    ids = [r.string(MAX_ID_LEN) for _ in range(3)]
    lifetime = r.varint()
    if not 1 <= lifetime <= MAX_WEB_LIFETIME_MS:
        raise TokenError("malformed", "web token lifetime out of range")
    if r.pos != len(r.buf):
        raise TokenError("malformed", "trailing bytes")
    # In 64 bits, as the edge: an expiry past the largest time is that time.
    expires_at_ms = min(issued_at_ms + lifetime, _I64_MAX)
    if now_ms >= expires_at_ms or now_ms < issued_at_ms - WEB_CLOCK_SKEW_MS:
        raise TokenError("expired")
    return WebClaims(ids[0], ids[1], ids[2], issued_at_ms, expires_at_ms), kid


# ---- keyrings -----------------------------------------------------------------------------

class Keyring:
    """Keys by id; the first signs, all verify. Same spec string as the edge."""

    def __init__(self, keys):
        """`keys`: list of (key_id, secret bytes), the signing key first."""
        if not keys:
            raise TokenError("invalid_spec", "empty")
        seen = set()
        for key_id, secret in keys:
            _check_key(key_id, secret)
            if key_id in seen:
                raise TokenError("invalid_key", f"duplicate key id {key_id!r}")
            seen.add(key_id)
        self.keys = list(keys)
        self._by_id = dict(keys)

    @staticmethod
    def from_spec(spec):
        """Parses "k2:SECRET,k1:SECRET" (base64url secrets, padding optional)."""
        if not spec.strip():
            raise TokenError("invalid_spec", "empty")
        keys = []
        for n, entry in enumerate(spec.split(","), 1):
            entry = entry.strip()
            key_id, sep, secret = entry.partition(":")
            if not sep:
                raise TokenError("invalid_spec", f"entry {n}: expected KEY_ID:BASE64URL_SECRET")
            raw = b64decode_strict(secret.strip().rstrip("="))
            if raw is None:
                raise TokenError("invalid_spec", f"entry {n}: secret is not valid base64url")
            keys.append((key_id.strip(), raw))
        return Keyring(keys)

    @property
    def signing_key_id(self):
        return self.keys[0][0]

    def sign(self, claims):
        return sign(self.keys[0][0], self.keys[0][1], claims)

    def open_url(self, base, claims):
        if claims.kind != "open":
            raise TokenError("invalid_claims", "open_url needs an open")
        return open_url(base, self.sign(claims))

    def click_url(self, base, claims):
        if claims.kind != "click":
            raise TokenError("invalid_claims", "click_url needs a click")
        return click_url(base, self.sign(claims))

    def unsubscribe_url(self, base, claims):
        """`{base}/u/{token}`: the List-Unsubscribe URI (RFC 8058 one-click)."""
        if claims.kind != "unsubscribe":
            raise TokenError("invalid_claims", "unsubscribe_url needs an unsubscribe")
        return unsubscribe_url(base, self.sign(claims))

    def verify(self, token, expect_kind=None):
        return verify(token, self._by_id, expect_kind)

    def sign_web(self, claims):
        """A web hand-off token (only the edge mints them; for tests)."""
        return sign_web(self.keys[0][0], self.keys[0][1], claims)

    def verify_web(self, token, now_ms):
        """Verifies a web hand-off token (the site's `oc_id` cookie) at `now_ms`."""
        return verify_web(token, self._by_id, now_ms)


# ---- command line -------------------------------------------------------------------------

def _main(argv):
    import argparse

    p = argparse.ArgumentParser(description="openclick token v1 signer")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("sign-batch", help="JSON request on stdin, one token per line on stdout")
    sub.add_parser("verify-batch", help="JSON request on stdin, one JSON result per line")
    sub.add_parser("verify-web-batch",
                   help="web hand-off tokens: JSON request on stdin, one JSON result per line")
    one = sub.add_parser("sign", help="sign one token and print it and its URL")
    one.add_argument("--keys", required=True, help='keyring spec "KEY_ID:BASE64URL_SECRET,..."')
    one.add_argument("--base", default="https://t.example.com")
    one.add_argument("--kind", choices=sorted(KINDS), required=True)
    one.add_argument("--channel", choices=sorted(CHANNELS), default="email")
    for f in ("tenant-id", "campaign-id", "message-id", "contact-id"):
        one.add_argument("--" + f, required=True)
    one.add_argument("--issued-at-ms", type=int, required=True)
    one.add_argument("--link-id", default="")
    one.add_argument("--url", default="")
    one.add_argument("--honeypot", action="store_true", help="a honeypot click (clicks only)")
    one.add_argument("--list-id", default="", help="unsubscribes: the list (default: tenant)")
    a = p.parse_args(argv)
    if a.cmd == "sign-batch":
        req = json.load(sys.stdin)
        secret = b64decode_strict(req["secret"])
        for c in req["claims"]:
            print(sign(req["key_id"], secret, Claims.from_dict(c)))
        return 0
    if a.cmd == "verify-batch":
        req = json.load(sys.stdin)
        kr = Keyring.from_spec(req["keyring_spec"])
        for token in req["tokens"]:
            try:
                claims, key_id = kr.verify(token)
            except TokenError as e:
                print(json.dumps({"error": e.reason}))
                continue
            print(json.dumps({"claims": claims.to_dict(), "key_id": key_id}))
        return 0
    if a.cmd == "verify-web-batch":
        req = json.load(sys.stdin)
        kr = Keyring.from_spec(req["keyring_spec"])
        for check in req["checks"]:
            try:
                claims, key_id = kr.verify_web(check["token"], int(check["verify_at_ms"]))
            except TokenError as e:
                print(json.dumps({"error": e.reason}))
                continue
            print(json.dumps({"claims": claims.to_dict(), "key_id": key_id}))
        return 0
    kr = Keyring.from_spec(a.keys)
    c = Claims(a.kind, a.tenant_id, a.campaign_id, a.message_id, a.contact_id, a.channel,
               a.issued_at_ms, a.link_id, a.url, a.honeypot, a.list_id)
    token = kr.sign(c)
    print(token)
    url = {"open": open_url, "click": click_url, "unsubscribe": unsubscribe_url}[a.kind]
    print(url(a.base, token))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(_main(sys.argv[1:]))
    except TokenError as e:
        print(f"openclick_signer: {e}", file=sys.stderr)
        sys.exit(2)
