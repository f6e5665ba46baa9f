//! `openclick sign --batch`, black box, against the token vectors (`crates/token/tests/vectors/
//! token-v1.json`, which the Python and TypeScript signers also reproduce): every valid vector's
//! claims, fed as NDJSON under the vector's key, come back as exactly the vector's token, in
//! input order (honeypot clicks included: their claims carry `"honeypot":true`). Vectors whose
//! ids the id rule refuses (`sign` never makes a token the edge would not track) come back as
//! empty lines and are reported on stderr, and the batch exits 65.
//! Writing stdout failing (a full device) exits 74, with the line signed but not written.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use openclick_common::ids::{check_id, IdKind};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_openclick");
const BASE: &str = "https://t.example.com";

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../token/tests/vectors/token-v1.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Runs `sign --batch --keep-going` with `keys` on `input`: (exit code, stdout lines, stderr).
fn batch(keys: &str, input: &str) -> (i32, Vec<String>, String) {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["sign", "--batch", "--keep-going", "--base-url", BASE])
        .args(["--keys", keys, "--data-dir", data.path().to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn trackable(claims: &Value) -> bool {
    let id = |k: &str| claims[k].as_str().unwrap();
    check_id(IdKind::Tenant, id("tenant_id")).is_ok()
        && check_id(IdKind::Campaign, id("campaign_id")).is_ok()
        && check_id(IdKind::Contact, id("contact_id")).is_ok()
}

#[test]
fn batch_reproduces_every_vector_token_in_order() {
    let v = vectors();
    let secrets: BTreeMap<&str, &str> = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["id"].as_str().unwrap(), k["secret"].as_str().unwrap()))
        .collect();
    // One batch per signing key, in vector order.
    let mut by_key: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for vector in v["valid"].as_array().unwrap() {
        // `sign --batch` signs tracking URLs (opens and clicks); unsubscribe URLs come from
        // `sign unsubscribe` (tests/unsubscribe.rs), so the unsubscribe vectors are not fed here.
        if vector["claims"]["kind"] == "unsubscribe" {
            continue;
        }
        by_key
            .entry(vector["key_id"].as_str().unwrap())
            .or_default()
            .push(vector);
    }
    let (mut matched, mut refused, mut honeypots) = (0, 0, 0);
    for (key_id, vectors) in by_key {
        let input: String = vectors
            .iter()
            .map(|v| format!("{}\n", v["claims"]))
            .collect();
        let (code, lines, stderr) = batch(&format!("{key_id}:{}", secrets[key_id]), &input);
        assert_eq!(
            lines.len(),
            vectors.len(),
            "one line out per line in: {stderr}"
        );
        let mut any_refused = false;
        for (vector, line) in vectors.iter().zip(&lines) {
            let name = vector["name"].as_str().unwrap();
            if !trackable(&vector["claims"]) {
                assert_eq!(line, "", "{name}: an id nobody could opt out by was signed");
                any_refused = true;
                refused += 1;
                continue;
            }
            let token = vector["token"].as_str().unwrap();
            let want = match vector["claims"]["kind"].as_str().unwrap() {
                "open" => format!("{BASE}/o/{token}.gif"),
                _ => format!("{BASE}/c/{token}"),
            };
            assert_eq!(line, &want, "{name}: {stderr}");
            matched += 1;
            if vector["claims"]["honeypot"] == true {
                honeypots += 1;
            }
        }
        assert_eq!(code, if any_refused { 65 } else { 0 }, "{stderr}");
    }
    assert!(matched >= 10, "only {matched} vectors reproduced");
    assert!(
        honeypots >= 2,
        "only {honeypots} honeypot vectors reproduced"
    );
    eprintln!("{matched} vector tokens reproduced, {refused} refused by the id rule");
}

#[test]
fn without_keep_going_a_bad_line_stops_the_batch_with_exit_65_and_its_line_number() {
    let data = tempfile::tempdir().unwrap();
    let ok =
        r#"{"kind":"open","tenant_id":"t","campaign_id":"c","message_id":"m","contact_id":"x"}"#;
    let mut child = Command::new(BIN)
        .args([
            "sign",
            "--batch",
            "--keys",
            "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
        ])
        .args(["--data-dir", data.path().to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{ok}\n{{\"kind\":\"open\"}}\n{ok}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{stderr}");
    assert!(stderr.contains("line 2"), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
}

#[test]
fn a_full_stdout_exits_74() {
    let data = tempfile::tempdir().unwrap();
    let ok =
        r#"{"kind":"open","tenant_id":"t","campaign_id":"c","message_id":"m","contact_id":"x"}"#;
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let mut child = Command::new(BIN)
        .args([
            "sign",
            "--batch",
            "--keys",
            "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
        ])
        .args(["--data-dir", data.path().to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(full)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{ok}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(74), "{stderr}");
    assert!(stderr.contains("writing stdout"), "{stderr}");
}
