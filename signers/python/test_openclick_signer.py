"""Tests of openclick_signer against the shared token v1 vectors.

Run: python3 -m unittest -v test_openclick_signer   (from signers/python)
The vector file defaults to crates/token/tests/vectors/token-v1.json; OPENCLICK_VECTORS overrides.
"""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import unittest

import openclick_signer as oc

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.environ.get("OPENCLICK_VECTORS") or os.path.join(
    HERE, "..", "..", "crates", "token", "tests", "vectors", "token-v1.json")

with open(VECTORS, encoding="utf-8") as f:
    V = json.load(f)
KEYS = [(k["id"], oc.b64decode_strict(k["secret"])) for k in V["keys"]]
SECRET = dict(KEYS)


class Vectors(unittest.TestCase):
    def test_file_shape(self):
        self.assertEqual(V["format"], "openclick-token/v1 test vectors")
        self.assertGreaterEqual(len(V["valid"]), 10)
        self.assertGreaterEqual(len(V["invalid"]), 20)

    def test_keyring_spec_matches_keys(self):
        kr = oc.Keyring.from_spec(V["keyring_spec"])
        self.assertEqual(kr.keys, KEYS)
        self.assertEqual(kr.signing_key_id, V["keys"][0]["id"])

    def test_sign_gives_expected_token(self):
        for case in V["valid"]:
            with self.subTest(case["name"]):
                token = oc.sign(case["key_id"], SECRET[case["key_id"]], case["claims"])
                self.assertEqual(token, case["token"])
                self.assertEqual(oc.b64decode_strict(token).hex(), case["payload_hex"])

    def test_verify_valid(self):
        kr = oc.Keyring(KEYS)
        for case in V["valid"]:
            with self.subTest(case["name"]):
                claims, key_id = kr.verify(case["token"])
                self.assertEqual(claims, oc.Claims.from_dict(case["claims"]))
                self.assertEqual(key_id, case["key_id"])
                kr.verify(case["token"], expect_kind=claims.kind)

    def test_tampered_fail_with_their_class(self):
        kr = oc.Keyring(KEYS)
        for case in V["invalid"]:
            with self.subTest(case["name"]):
                with self.assertRaises(oc.TokenError) as cm:
                    kr.verify(case["token"], expect_kind=case.get("route"))
                self.assertEqual(cm.exception.reason, case["error"], str(cm.exception))

    def test_round_trip_every_key(self):
        kr = oc.Keyring(KEYS)
        for key_id, secret in KEYS:
            for case in V["valid"]:
                token = oc.sign(key_id, secret, case["claims"])
                self.assertEqual(kr.verify(token), (oc.Claims.from_dict(case["claims"]), key_id))


class WebVectors(unittest.TestCase):
    """Web hand-off tokens (spec section 11): web_valid and web_invalid."""

    kr = oc.Keyring(KEYS)

    def test_sign_gives_expected_token(self):
        self.assertGreaterEqual(len(V["web_valid"]), 5)
        for case in V["web_valid"]:
            with self.subTest(case["name"]):
                token = oc.sign_web(case["key_id"], SECRET[case["key_id"]], case["claims"])
                self.assertEqual(token, case["token"])
                self.assertEqual(oc.b64decode_strict(token).hex(), case["payload_hex"])

    def test_verify_valid(self):
        for case in V["web_valid"]:
            with self.subTest(case["name"]):
                claims, key_id = self.kr.verify_web(case["token"], int(case["verify_at_ms"]))
                self.assertEqual(claims, oc.WebClaims.from_dict(case["claims"]))
                self.assertEqual(claims.to_dict(), case["claims"])
                self.assertEqual(key_id, case["key_id"])
                # The expiry rule at its edges; never an open, click or unsubscribe.
                self.kr.verify_web(case["token"], claims.expires_at_ms - 1)
                for at in (claims.expires_at_ms, claims.issued_at_ms - 60_001):
                    with self.assertRaises(oc.TokenError) as cm:
                        self.kr.verify_web(case["token"], at)
                    self.assertEqual(cm.exception.reason, "expired")
                for route in (None, "open", "click", "unsubscribe"):
                    with self.assertRaises(oc.TokenError) as cm:
                        self.kr.verify(case["token"], expect_kind=route)
                    self.assertEqual(cm.exception.reason, "malformed")

    def test_invalid_fail_with_their_class(self):
        classes = set()
        for case in V["web_invalid"]:
            with self.subTest(case["name"]):
                with self.assertRaises(oc.TokenError) as cm:
                    self.kr.verify_web(case["token"], int(case["verify_at_ms"]))
                self.assertEqual(cm.exception.reason, case["error"], str(cm.exception))
                classes.add(case["error"])
        self.assertLessEqual({"malformed", "bad_signature", "unknown_key", "wrong_kind",
                              "expired"}, classes)

    def test_handoff_assembled_by_hand(self):
        """The first web vector, byte by byte from the section 11 table."""
        case = V["web_valid"][0]
        self.assertEqual(case["name"], "web-handoff")
        raw = bytes([0x01])                            # 1 version
        raw += bytes([2]) + b"k2"                      # 2, 3 key id
        raw += bytes([0x84])                           # 4 kind 8 << 4 | channel 4 (web)
        raw += bytes.fromhex("80c8e6d2f863")           # 5 zigzag(1717000000000), LEB128
        raw += bytes([8]) + b"tenant-1"                # 6 tenant_id
        raw += bytes([12]) + b"camp-2024-05"           # 7 campaign_id
        raw += bytes([13]) + b"contact-12345"          # 8 contact_id
        raw += bytes.fromhex("8090fbd309")             # 9 lifetime 2592000000 ms (30 days)
        self.assertEqual(0x00 | 0x10 << 7 | 0x7B << 14 | 0x53 << 21 | 0x09 << 28, 30 * 86_400_000)
        context = b"openclick-token v1 HMAC-SHA256 tag for open/click tracking" + bytes(6)
        raw += hmac.new(SECRET["k2"], context + raw, hashlib.sha256).digest()[:16]  # 10 tag
        self.assertEqual(raw.hex(), case["payload_hex"])
        self.assertEqual(base64.urlsafe_b64encode(raw).rstrip(b"=").decode(), case["token"])
        self.assertEqual(case["claims"]["expires_at_ms"], "1719592000000")

    def test_sign_refusals(self):
        [(key_id, secret)] = KEYS[:1]
        base = dict(tenant_id="acme", campaign_id="spring", contact_id="c-42",
                    issued_at_ms=1_700_000_000_000, expires_at_ms=1_700_000_000_000 + 1)

        def reason(**over):
            with self.assertRaises(oc.TokenError) as cm:
                oc.sign_web(key_id, secret, oc.WebClaims(**dict(base, **over)))
            return cm.exception.reason

        t = base["issued_at_ms"]
        self.assertEqual(reason(expires_at_ms=t), "invalid_claims")
        self.assertEqual(reason(expires_at_ms=t - 1), "invalid_claims")
        self.assertEqual(reason(expires_at_ms=t + 400 * 86_400_000 + 1), "invalid_claims")
        self.assertEqual(reason(issued_at_ms=(1 << 63) - 1, expires_at_ms=1 << 63),
                         "invalid_claims")
        self.assertEqual(reason(contact_id="x" * 256), "field_too_long")
        oc.sign_web(key_id, secret, oc.WebClaims(**dict(base, expires_at_ms=t + 400 * 86_400_000)))
        with self.assertRaises(oc.TokenError) as cm:
            oc.sign_web("k.1", secret, oc.WebClaims(**base))
        self.assertEqual(cm.exception.reason, "invalid_key")
        token = oc.Keyring(KEYS[:1]).sign_web(oc.WebClaims(**base))
        self.assertEqual(self.kr.verify_web(token, t)[0], oc.WebClaims(**base))

    def test_cli_verify_web_batch(self):
        script = os.path.join(HERE, "openclick_signer.py")
        cases = [V["web_valid"][0], V["web_invalid"][0]]
        req = json.dumps({"keyring_spec": V["keyring_spec"],
                          "checks": [{"token": c["token"], "verify_at_ms": c["verify_at_ms"]}
                                     for c in cases]})
        out = subprocess.run([sys.executable, script, "verify-web-batch"], input=req, text=True,
                             capture_output=True, check=True).stdout.splitlines()
        self.assertEqual([json.loads(l) for l in out],
                         [{"claims": cases[0]["claims"], "key_id": cases[0]["key_id"]},
                          {"error": cases[1]["error"]}])


class Signing(unittest.TestCase):
    kr = oc.Keyring(KEYS[:1])
    base = dict(tenant_id="acme", campaign_id="c", message_id="m", contact_id="u",
                channel="email", issued_at_ms=1_700_000_000_000)

    def reason(self, claims):
        with self.assertRaises(oc.TokenError) as cm:
            self.kr.sign(claims)
        return cm.exception.reason

    def test_urls(self):
        o = self.kr.open_url("https://t.example.com/", oc.Claims(kind="open", **self.base))
        self.assertTrue(o.startswith("https://t.example.com/o/") and o.endswith(".gif"))
        c = self.kr.click_url("https://t.example.com",
                              oc.Claims(kind="click", link_id="l", url="https://e.com/", **self.base))
        self.assertTrue(c.startswith("https://t.example.com/c/"))
        token = c.rsplit("/", 1)[1]
        self.assertEqual(self.kr.verify(token, expect_kind="click")[0].url, "https://e.com/")

    def test_destinations_a_browser_reads_differently(self):
        for bad in ["http://ex%61mple.com/", "http://0x7f.1/", "http://127.1/",
                    "http://2130706433/", "http://010.0.0.1/", "http://1.2.3.4./",
                    "http://999.1.1.1/", "http://example.123/", "http://[1::2::3]/",
                    "http://[:]/"]:
            with self.assertRaises(oc.TokenError, msg=bad) as cm:
                oc.validate_destination(bad)
            self.assertEqual(cm.exception.reason, "invalid_destination")
        for good in ["http://1.2.3.4/", "http://0xample.com/", "http://example.0x1g/",
                     "https://[::ffff:1.2.3.4]/", "http://example.com./"]:
            oc.validate_destination(good)

    def test_refusals(self):
        long_id = dict(self.base, tenant_id="x" * 256)
        self.assertEqual(self.reason(oc.Claims(kind="open", **long_id)), "field_too_long")
        ok_id = dict(self.base, tenant_id="\u00e9" * 127)  # 254 bytes
        self.kr.sign(oc.Claims(kind="open", **ok_id))
        self.assertEqual(self.reason(oc.Claims(kind="open", url="https://e.com", **self.base)),
                         "invalid_claims")
        self.assertEqual(self.reason(oc.Claims(kind="click", url="javascript:alert(1)", **self.base)),
                         "invalid_destination")
        self.assertEqual(self.reason(oc.Claims(kind="click", url="https://e.com/" + "a" * 2048,
                                               **self.base)), "field_too_long")
        self.assertEqual(self.reason(oc.Claims(kind="fetch", **self.base)), "invalid_claims")
        self.assertEqual(self.reason(oc.Claims(kind="open", **dict(self.base, issued_at_ms=1 << 63))),
                         "invalid_claims")
        with self.assertRaises(oc.TokenError) as cm:
            oc.sign("k.1", b"\0" * 32, oc.Claims(kind="open", **self.base))
        self.assertEqual(cm.exception.reason, "invalid_key")
        with self.assertRaises(oc.TokenError) as cm:
            oc.sign("k1", b"\0" * 31, oc.Claims(kind="open", **self.base))
        self.assertEqual(cm.exception.reason, "invalid_key")

    def test_unsubscribe(self):
        u = oc.Claims(kind="unsubscribe", tenant_id="acme", campaign_id="", message_id="",
                      contact_id="c-42", channel="email", issued_at_ms=1717000000000,
                      list_id="news")
        claims, _ = self.kr.verify(self.kr.sign(u), expect_kind="unsubscribe")
        self.assertEqual(claims, u)
        undo = oc.Claims(**{**u.__dict__, "undo": True})
        self.assertTrue(self.kr.verify(self.kr.sign(undo))[0].undo)
        self.assertEqual(u.to_dict()["list_id"], "news")
        self.assertTrue(self.kr.unsubscribe_url("https://t.example.com", u)
                        .startswith("https://t.example.com/u/"))
        for bad in ({"url": "https://e.com/"}, {"honeypot": True}):
            with self.assertRaises(oc.TokenError) as e:
                self.kr.sign(oc.Claims(**{**u.__dict__, **bad}))
            self.assertEqual(e.exception.reason, "invalid_claims")
        with self.assertRaises(oc.TokenError) as e:
            self.kr.sign(oc.Claims(**{**u.__dict__, "kind": "open"}))
        self.assertEqual(e.exception.reason, "invalid_claims")

    def test_honeypot(self):
        click = oc.Claims(kind="click", link_id="hp", url="https://e.com/", **self.base)
        trap = oc.Claims(kind="click", link_id="hp", url="https://e.com/", honeypot=True,
                         **self.base)
        plain_raw = oc.b64decode_strict(self.kr.sign(click))
        token = self.kr.sign(trap)
        raw = oc.b64decode_strict(token)
        # The click's bytes, then the flags varint 0x01 (bit 0), then the tag.
        self.assertEqual(raw[:-16], plain_raw[:-16] + b"\x01")
        claims, _ = self.kr.verify(token, expect_kind="click")
        self.assertTrue(claims.honeypot)
        self.assertEqual(claims, trap)
        self.assertFalse(self.kr.verify(self.kr.sign(click))[0].honeypot)
        self.assertEqual(trap.to_dict()["honeypot"], True)
        self.assertNotIn("honeypot", click.to_dict())
        self.assertEqual(oc.Claims.from_dict(trap.to_dict()), trap)
        self.assertEqual(self.reason(oc.Claims(kind="open", honeypot=True, **self.base)),
                         "invalid_claims")
        self.assertEqual(self.reason(oc.Claims(kind="click", link_id="hp", url="https://e.com/",
                                               honeypot=1, **self.base)), "invalid_claims")
        self.assertEqual(self.reason(oc.Claims(kind="click", url="javascript:alert(1)",
                                               honeypot=True, **self.base)),
                         "invalid_destination")
        self.assertTrue(any(c["claims"].get("honeypot") for c in V["valid"]))

    def test_destinations(self):
        for good in ["https://example.com", "HTTP://Example.COM:8080/a?b#c",
                     "https://[2001:db8::1]/", "https://xn--caf-dma.example/menu"]:
            oc.validate_destination(good)
        for bad in ["", "javascript:alert(1)", "//evil.example/", "https://user@e.com/",
                    "https://e.com/ x", "https://e.com\\@x/", "https://e.com:0/",
                    "https://e.com:99999/", "https://[::1/", "ftp://e.com/", "https://caf\u00e9.fr/",
                    "https://.../", "https://e.com:/"]:
            with self.assertRaises(oc.TokenError, msg=bad):
                oc.validate_destination(bad)

    def test_strict_base64(self):
        for raw in [b"", b"f", b"fo", b"foo", bytes(range(256))]:
            self.assertEqual(oc.b64decode_strict(oc.b64encode(raw)), raw)
        for bad in ["Z", "Zh", "Zm9", "Zm9v=", "Zm+v", "Zm/v", "Zm.v", "Zm v"]:
            self.assertIsNone(oc.b64decode_strict(bad), bad)

    def test_bad_specs(self):
        s = base64.urlsafe_b64encode(b"\5" * 32).decode().rstrip("=")
        # "acme/k1:...": a tenant-scoped entry is the edge's; its sender gets the plain "k1:..."
        for spec in ["", " ", s, f"k1:{s},", f"k1:{s},k1:{s}", "k1:not base64!", "bad.id:" + s,
                     "acme/k1:" + s, "k1:" + base64.urlsafe_b64encode(b"\5" * 16).decode()]:
            with self.assertRaises(oc.TokenError, msg=spec):
                oc.Keyring.from_spec(spec)
        self.assertEqual(oc.Keyring.from_spec(f" a:{s}= ,\n b:{s}\n").keys[1][0], "b")

    def test_cli(self):
        script = os.path.join(HERE, "openclick_signer.py")
        case = V["valid"][1]
        req = json.dumps({"key_id": case["key_id"], "secret": V["keys"][0]["secret"],
                          "claims": [case["claims"]]})
        self.assertEqual(case["key_id"], V["keys"][0]["id"])
        out = subprocess.run([sys.executable, script, "sign-batch"], input=req, text=True,
                             capture_output=True, check=True).stdout
        self.assertEqual(out, case["token"] + "\n")
        c = case["claims"]
        out = subprocess.run(
            [sys.executable, script, "sign", "--keys", V["keyring_spec"], "--kind", c["kind"],
             "--channel", c["channel"], "--tenant-id", c["tenant_id"], "--campaign-id",
             c["campaign_id"], "--message-id", c["message_id"], "--contact-id", c["contact_id"],
             "--issued-at-ms", c["issued_at_ms"], "--link-id", c["link_id"], "--url", c["url"]],
            text=True, capture_output=True, check=True).stdout.split("\n")
        self.assertEqual(out[:2], [case["token"], "https://t.example.com/c/" + case["token"]])
        # --honeypot gives the vector of the same click with the flag.
        hp = next(v for v in V["valid"] if v["name"] == "click-email-honeypot")
        self.assertEqual(dict(hp["claims"], honeypot=False), dict(c, honeypot=False))
        out = subprocess.run(
            [sys.executable, script, "sign", "--keys", V["keyring_spec"], "--kind", c["kind"],
             "--channel", c["channel"], "--tenant-id", c["tenant_id"], "--campaign-id",
             c["campaign_id"], "--message-id", c["message_id"], "--contact-id", c["contact_id"],
             "--issued-at-ms", c["issued_at_ms"], "--link-id", c["link_id"], "--url", c["url"],
             "--honeypot"],
            text=True, capture_output=True, check=True).stdout.split("\n")
        self.assertEqual(out[0], hp["token"])
        req = json.dumps({"keyring_spec": V["keyring_spec"], "tokens": [hp["token"], case["token"]]})
        out = subprocess.run([sys.executable, script, "verify-batch"], input=req, text=True,
                             capture_output=True, check=True).stdout.splitlines()
        self.assertEqual([json.loads(l)["claims"] for l in out], [hp["claims"], c])


if __name__ == "__main__":
    unittest.main()
