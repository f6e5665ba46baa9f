#!/usr/bin/env python3
"""Checks the signing examples of README.md (run by .ci/signers; standard library only).

The subsection "### Signing URLs from your own stack" of README.md holds a ```python and a ```ts
block, each on the line right below the marker <!-- tested by .ci/signers -->.

  check_readme.py extract LANG
      Prints the marked ```LANG block (python or ts). Exit 1 if the subsection is missing, or
      has no marked block of that language, or more than one, or a marker not right above a block.

  check_readme.py check LANG SNIPPET OUTPUT
      SNIPPET is the extracted LANG block and OUTPUT what it printed, run with OPENCLICK_KEYS set
      to the sender's keyring spec. Exit 1 unless:
      - OUTPUT is two lines, BASE/o/TOKEN.gif then BASE/c/TOKEN, BASE being the snippet's `base`;
      - the *other* language's verifier (verify-batch of signers/python/openclick_signer.py for
        ts; of signers/typescript/dist/verify_batch.js for python), holding the keyring
        OPENCLICK_VERIFY_KEYS (the edge's; default OPENCLICK_KEYS), accepts both tokens, under the
        key id OPENCLICK_KEYS signs with, as an open and a click;
      - the verified claims are those the snippet states as string literals (tenant_id, which
        must be "acme", campaign_id, message_id, contact_id, channel; link_id and url for the
        click), and issued_at_ms is within 10 minutes of now (milliseconds, not seconds);
      - control: with that key id bound to another secret, both tokens fail with bad_signature.
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
HEADING = "### Signing URLs from your own stack"
MARK = "<!-- tested by .ci/signers -->"
LANGS = {"python": "Python", "ts": "TypeScript"}
TENANT = "acme"  # the README's prose promises URLs for tenant acme
STATED = ("tenant_id", "campaign_id", "message_id", "contact_id", "channel", "link_id", "url")


def die(msg):
    print(f"check_readme: FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def marked_blocks():
    """[(lang, text)] of the marked fenced blocks of the subsection."""
    lines = README.read_text(encoding="utf-8").splitlines()
    if HEADING not in lines:
        die(f"README.md has no line {HEADING!r}")
    out, fence, marked, body = [], None, False, []
    for n, line in enumerate(lines[lines.index(HEADING) + 1:], lines.index(HEADING) + 2):
        if fence is not None:  # inside a fenced block: only its end matters
            if line.strip() == "```":
                if marked:
                    out.append((fence, "\n".join(body) + "\n"))
                fence, marked, body = None, False, []
            else:
                body.append(line)
        elif re.match(r"#{1,3} ", line):  # the next section
            break
        elif line.startswith("```"):
            fence = line[3:].strip()
        elif marked:
            die(f"README.md:{n - 1}: {MARK} is not right above a fenced block")
        else:
            marked = line.strip() == MARK
    if fence is not None:
        die(f"README.md: unterminated ```{fence} block in {HEADING!r}")
    return out


def extract(lang):
    found = [text for fence, text in marked_blocks() if fence == lang]
    if len(found) != 1:
        die(f"README.md {HEADING!r}: {len(found)} ```{lang} blocks marked {MARK}, expected 1")
    sys.stdout.write(found[0])


def stated(snippet, name):
    values = set(re.findall(r"\b%s\s*[=:]\s*\"([^\"]*)\"" % name, snippet))
    if len(values) != 1:
        die(f"the snippet does not state {name} as one string literal (found {sorted(values)})")
    return values.pop()


def verify(lang, spec, tokens):
    """Verifies with the implementation other than `lang`: [{"claims":..} or {"error":..}]."""
    if lang == "python":
        js = ROOT / "signers/typescript/dist/verify_batch.js"
        if not js.exists():
            die(f"{js} is not built (bash .ci/signers builds it)")
        cmd = ["node", str(js)]
    else:
        cmd = [sys.executable, str(ROOT / "signers/python/openclick_signer.py"), "verify-batch"]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    req = json.dumps({"keyring_spec": spec, "tokens": tokens})
    p = subprocess.run(cmd, input=req, capture_output=True, text=True, env=env)
    results = [json.loads(line) for line in p.stdout.splitlines()]
    if p.returncode != 0 or len(results) != len(tokens):
        die(f"{' '.join(cmd)} failed (exit {p.returncode}): {p.stderr.strip()}")
    return results


def check(lang, snippet_path, output_path):
    snippet = Path(snippet_path).read_text(encoding="utf-8")
    lines = Path(output_path).read_text(encoding="utf-8").splitlines()
    who, other = LANGS[lang], LANGS["ts" if lang == "python" else "python"]
    sender = os.environ["OPENCLICK_KEYS"]
    edge = os.environ.get("OPENCLICK_VERIFY_KEYS", sender)
    key_id, _, secret = sender.split(",")[0].strip().partition(":")
    base = stated(snippet, "base").rstrip("/")
    want = {name: stated(snippet, name) for name in STATED}
    if want["tenant_id"] != TENANT:
        die(f"the {who} example signs for tenant {want['tenant_id']!r}, the README says {TENANT!r}")
    routes = [re.escape(base) + r"/o/([A-Za-z0-9_-]+)\.gif", re.escape(base) + r"/c/([A-Za-z0-9_-]+)"]
    if len(lines) != 2 or not all(re.fullmatch(r, l) for r, l in zip(routes, lines)):
        die(f"the {who} example printed {lines!r}, expected {base}/o/TOKEN.gif then {base}/c/TOKEN")
    tokens = [re.fullmatch(r, l).group(1) for r, l in zip(routes, lines)]

    now_ms = time.time() * 1000
    for kind, url, res in zip(("open", "click"), lines, verify(lang, edge, tokens)):
        if "error" in res:
            die(f"the {other} verifier refuses the {who} example's {kind} URL {url}: {res['error']}")
        c = dict(res["claims"], issued_at_ms=int(res["claims"]["issued_at_ms"]))
        expect = dict(want, kind=kind, **({} if kind == "click" else {"link_id": "", "url": ""}))
        wrong = {k: (c.get(k), v) for k, v in expect.items() if c.get(k) != v}
        if res["key_id"] != key_id:
            wrong["key_id"] = (res["key_id"], key_id)
        if abs(c["issued_at_ms"] - now_ms) > 600_000:
            wrong["issued_at_ms"] = (c["issued_at_ms"], f"within 10 min of {int(now_ms)}")
        if wrong:
            die(f"the {who} example's {kind} URL {url} says, per the {other} verifier, "
                + ", ".join(f"{k}={got!r} (expected {exp!r})" for k, (got, exp) in wrong.items()))

    other_secret = "A" * 43 if secret.rstrip("=") != "A" * 43 else "B" * 42 + "A"
    control = verify(lang, f"{key_id}:{other_secret}", tokens)
    if any(r.get("error") != "bad_signature" for r in control):
        die(f"control: with {key_id} bound to another secret the {other} verifier said {control}")
    print(f"README {who} example: open + click URLs verified by the {other} verifier (key {key_id}): "
          f"tenant {want['tenant_id']}, campaign {want['campaign_id']}, message {want['message_id']}, "
          f"contact {want['contact_id']}, {want['channel']}, link {want['link_id']} -> {want['url']}; "
          f"under another secret for {key_id}: bad_signature")


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) == 2 and args[0] == "extract" and args[1] in LANGS:
        extract(args[1])
    elif len(args) == 4 and args[0] == "check" and args[1] in LANGS:
        check(*args[1:])
    else:
        die("usage: check_readme.py extract python|ts | check python|ts SNIPPET OUTPUT")
