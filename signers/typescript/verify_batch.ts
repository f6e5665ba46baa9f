// verify-batch for the TypeScript signer, the same tool as `python3 openclick_signer.py
// verify-batch`: a JSON request {"keyring_spec": "...", "tokens": ["...", ...]} on stdin, one
// JSON line per token on stdout, {"claims": {...}, "key_id": "..."} (issued_at_ms as a decimal
// string, honeypot only when set) or {"error": "<spec error class>"}. Used by signers/check_readme.py to verify the
// README's Python example with this implementation. Build: bash ../../.ci/signers (dist/).

import { readFileSync } from "node:fs";
import { Keyring, TokenError } from "./openclick_signer";

const req = JSON.parse(readFileSync(0, "utf8")) as { keyring_spec: string; tokens: string[] };
const keyring = Keyring.fromSpec(req.keyring_spec);
for (const token of req.tokens) {
  try {
    const { claims, keyId } = keyring.verify(token);
    const { honeypot, list_id, undo, ...rest } = claims;
    const json = {
      ...rest,
      issued_at_ms: String(claims.issued_at_ms),
      ...(honeypot ? { honeypot } : {}),
      ...(claims.kind === "unsubscribe" ? { list_id } : {}),
      ...(undo ? { undo } : {}),
    };
    console.log(JSON.stringify({ claims: json, key_id: keyId }));
  } catch (e) {
    if (!(e instanceof TokenError)) throw e;
    console.log(JSON.stringify({ error: e.reason }));
  }
}
