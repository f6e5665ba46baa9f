#!/usr/bin/env python3
"""Writes the seed corpora fuzz/corpus/<target>/ (small, readable where possible).

Tokens are signed with the fuzz targets' fixed keyring (fuzz/src/lib.rs: `k1` = 32 bytes of
0x42 signs, `old` = 48 bytes of 0x17 verifies) by the reference Python signer
(signers/python), so the seeds do not come from the code under test. Re-run after changing
the keyring: python3 fuzz/scripts/make_seeds.py
"""

import json
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "signers", "python"))
import openclick_signer as s  # noqa: E402

K1 = ("k1", bytes([0x42]) * 32)
OLD = ("old", bytes([0x17]) * 48)
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def claims(kind, **kw):
    c = dict(kind=kind, tenant_id="acme", campaign_id="spring", message_id="m-1",
             contact_id="c-7", channel="email", issued_at_ms=1717000000000)
    if kind == "click":
        c.update(link_id="hero", url="https://shop.example.com/sale?utm=mail")
    c.update(kw)
    return s.Claims.from_dict(c)


def signed_bytes(token):
    raw = s.b64decode_strict(token)
    return raw[:-s.TAG_LEN]


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


open_tok = s.sign(*K1, claims("open"))
click_tok = s.sign(*K1, claims("click"))
old_tok = s.sign(*OLD, claims("open", channel="sms", contact_id="ü\u0000x", issued_at_ms=-1))
v6_tok = s.sign(*K1, claims("click", channel="web", url="http://[2001:db8::1]:8080/p", link_id=""))
supp_tok = s.sign(*K1, claims("open", contact_id="suppressed"))
honeypot_tok = s.sign(*K1, claims("click", honeypot=True))

# token_verify: tokens as text, and `!` + signed bytes (the target appends the tag).
write("token_verify", "open", open_tok)
write("token_verify", "click", click_tok)
write("token_verify", "old-key", old_tok)
write("token_verify", "click-v6", v6_tok)
write("token_verify", "bad-tag", open_tok[:-2] + "AA")
vectors = json.load(open(os.path.join(ROOT, "crates/token/tests/vectors/token-v1.json")))
write("token_verify", "vector-unknown-key", vectors["valid"][0]["token"])
write("token_verify", "raw-open", b"!" + signed_bytes(open_tok))
write("token_verify", "raw-click", b"!" + signed_bytes(click_tok))
write("token_verify", "raw-old", b"!" + signed_bytes(old_tok))
# The click flags extension (docs/token-v1.md section 2): a honeypot click, and as raw bytes.
write("token_verify", "click-honeypot", honeypot_tok)
write("token_verify", "raw-click-honeypot", b"!" + signed_bytes(honeypot_tok))

# route: method, path, header lines (fuzz/src/lib.rs, parse_headers).
ua = "user-agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"
write("route", "open", f"GET\n/o/{open_tok}.gif\n{ua}\nx-forwarded-for: 203.0.113.9, 10.0.0.3\n")
write("route", "click", f"GET\n/c/{click_tok}\n{ua}\n@peer 198.51.100.2\n")
write("route", "click-v6-head", f"HEAD\n/c/{v6_tok}\npurpose: prefetch\nsec-gpc: 1\n")
write("route", "suppressed", f"GET\n/o/{supp_tok}\n@peer ::1\nforwarded: for=\"[2001:db8::7]:443\"\n")
write("route", "sign-click", "GET\n/c/!https://example.com/a?b=c#d\ndnt: 1\n")
write("route", "sign-open", "GET\n/o/!contact-42\nuser-agent: Microsoft Outlook 16.0\n")
write("route", "post", f"POST\n/c/{click_tok}\n")
write("route", "click-honeypot", f"GET\n/c/{honeypot_tok}\n{ua}\n")
write("route", "not-found", "GET\n/x/abc\n")
write("route", "blocked-host", "GET\n/c/!https://login.blocked.example./x\n@header x-real-ip\nx-real-ip: 10.0.0.9\n")
write("route", "open-empty", "GET\n/o/\n")

# client_ip: header lines, @peer, @trust.
write("client_ip", "xff", "@peer 10.0.0.2\n@trust 10.0.0.0/8\nx-forwarded-for: 6.6.6.6, 1.2.3.4, 10.0.0.9\n")
write("client_ip", "forwarded", "@peer 10.0.0.2\nforwarded: for=\"[2001:db8::7]:443\";proto=https, for=192.0.2.60\n")
write("client_ip", "two-lines", "@peer ::ffff:10.1.2.3\nx-forwarded-for: 1.2.3.4:5678\nx-forwarded-for: [2001:db8::1]:80\n")
write("client_ip", "untrusted", "@peer 198.51.100.7\n@trust 10.0.0.0/8\nx-forwarded-for: 1.2.3.4\n")
write("client_ip", "forwarded-header", "@header forwarded\n@peer 10.0.0.2\nforwarded: for=192.0.2.1, for=unknown, for=10.0.0.7\n")
write("client_ip", "single-header", "@header x-real-ip\n@peer 10.0.0.2\nx-real-ip: 203.0.113.5\n")
write("client_ip", "all-trusted", "@peer 10.0.0.2\n@trust 10.0.0.0/8\n@trust 2001:db8::/32\nx-forwarded-for: 10.9.9.9, 2001:db8::5\n")

# suppress_parse: NDJSON and CSV.
write("suppress_parse", "ndjson",
      '{"tenant":"t","contact":"c","action":"add","reason":"bounce","at_ms":1700000000000}\n'
      '{"tenant":"t","campaign":"s"}\n{"tenant":"t","contact":"c","action":"remove"}\n')
write("suppress_parse", "csv", "# opt-outs\n\ntenant,contact,reason\nacme,c-1\nacme,\"c,2\", bounce\n\"acme\" , c-3,\n")
write("suppress_parse", "mixed", 'acme,c-1,erase\n{"tenant":"t"}\n')
write("suppress_parse", "bad", '{"tenant":"t/x","contact":"c"}\n')


# suppress_record: timestamp LE, flags (bit 0: value present), key length, key, value.
def pb_varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_str(field, text):
    b = text.encode()
    return pb_varint(field << 3 | 2) + pb_varint(len(b)) + b


def pb_int(field, v):
    return pb_varint(field << 3) + pb_varint(v & (2**64 - 1))


def record(ts, key, value):
    k = key.encode()
    flags = 0 if value is None else 1
    return struct.pack("<qBB", ts, flags, len(k)) + k + (value or b"")


add = pb_str(1, "acme") + pb_str(2, "c-42") + pb_int(3, 1) + pb_int(4, 3) + pb_int(5, 1700000000000) + pb_int(6, 1)
write("suppress_record", "contact-add", record(1700000000001, "acme/c-42", add))
write("suppress_record", "tombstone", record(1700000000001, "acme/c-42", None))
write("suppress_record", "campaign", record(5, "campaign:acme/spring", pb_str(1, "acme") + pb_str(7, "spring") + pb_int(3, 1) + pb_int(6, 3)))
write("suppress_record", "tenant-remove", record(-5, "acme", pb_int(3, 2)))
write("suppress_record", "unknown-action", record(0, "acme/x", pb_int(3, 7) + pb_int(4, 99)))


# spool_segment: flags (bit 0: add a header, bit 1: fix CRCs), then the segment bytes.
def frame(ts, key, payload):
    body = struct.pack("<qH", ts, len(key)) + key + payload
    return struct.pack("<II", len(body), 0) + body  # CRC fixed by the target (flag bit 1)


frames = [frame(1700000000000 + i, b"k%d" % i, b"payload-%d" % i) for i in range(3)]
write("spool_segment", "three-records", bytes([3]) + b"".join(frames))
write("spool_segment", "torn-tail", bytes([3]) + b"".join(frames)[:-4])
write("spool_segment", "bad-crc", bytes([1]) + b"".join(frames))
write("spool_segment", "foreign", bytes([0]) + b"NOPE\x01\x00\x00\x00" + bytes(8) + frames[0])
write("spool_segment", "absurd-length", bytes([3]) + frames[0] + b"\xff\xff\xff\x7f" + bytes(12))

# destination: URLs.
for i, u in enumerate([
    "https://shop.example.com/sale?utm=mail",
    "http://[2001:db8::1]:8080/p",
    "HTTPS://Example.COM:443/#frag",
    "http://127.0.0.1/",
    "http://a_b~c-d.example/x%20y",
    "https://xn--bcher-kva.example/",
    "http://0x7f.1/",
    "http://ex%61mple.com/",
    "https://evil.example./",
    "http://[2001:DB8:0::1]:8080/",
]):
    write("destination", f"url-{i}", u)
