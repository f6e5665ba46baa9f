//! Configuration, black box: the real binary with a TOML file, `OPENCLICK_*` variables and
//! flags.
//!
//! - Precedence flags > environment > file > defaults, read back from `check-config`'s
//!   effective configuration (value and source per key) and from a running `serve`'s `/info`.
//! - Exit codes: 64 for every kind of bad configuration (flag, variable, file value, unknown
//!   key, unreadable file, bad keys, bad Kafka property), before the embedded broker starts or
//!   a port is bound; 0 for `--help` and `--version`.
//! - Secrets from files rotate on SIGHUP: a token signed with a key added to `--keys-file`
//!   verifies after SIGHUP and not before; a new `--admin-token-file` replaces the old token; a
//!   bad file keeps the secrets in force and logs an error. No secret (keys, tokens, a Kafka
//!   password, the bad file's content) appears in any output or in `/info`.
//! - Logs: no ESC byte when stderr is a pipe (`auto` and `text`); with `json`, every line is a
//!   JSON object. `sign` warns about the development keyring only when it generates it.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{openclick, try_http, Server, KEY_SECRET};

const EX_USAGE: i32 = 64;
/// A second key (k2) and its secret.
const K2_SECRET: &str = "AQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
const OLD_TOKEN: &str = "adm-old-6a1f0c33";
const NEW_TOKEN: &str = "adm-new-b7e29d41";
const BAD_KEY_CONTENT: &str = "k3:BADSECRETc0ntent!!";
const KAFKA_PASSWORD: &str = "kafka-pw-5d8e1b";

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// Stdout and stderr of a finished command, as text.
fn output_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `check-config`'s effective-configuration line for `key`.
fn setting<'a>(text: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key} = ");
    text.lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {key} in {text}"))
}

#[test]
fn flags_beat_environment_beats_file_beats_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("openclick.toml");
    write(
        &cfg,
        r#"
listen = "127.0.0.1:1111"
admin-listen = "127.0.0.1:2222"
topic = "file-topic"
workers = 3
kafka-linger-ms = 7
http2 = true
kafka-property = ["socket.keepalive.enable=true", "client.rack=file-rack"]
"#,
    );
    let out = openclick()
        .args(["--config", cfg.to_str().unwrap(), "check-config"])
        .args(["--data-dir", dir.path().join("d").to_str().unwrap()])
        .args(["--topic", "flag-topic", "--workers", "5"])
        .env("OPENCLICK_ADMIN_LISTEN", "127.0.0.1:3333")
        .env("OPENCLICK_TOPIC", "env-topic")
        .env("OPENCLICK_WORKERS", "4")
        .output()
        .unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for (key, want) in [
        ("listen", r#"listen = "127.0.0.1:1111"  # file"#),
        (
            "admin-listen",
            r#"admin-listen = "127.0.0.1:3333"  # env OPENCLICK_ADMIN_LISTEN"#,
        ),
        ("topic", r#"topic = "flag-topic"  # flag"#),
        ("workers", "workers = 5  # flag"),
        ("kafka-linger-ms", "kafka-linger-ms = 7  # file"),
        ("http2", "http2 = true  # file"),
        (
            "kafka-property",
            r#"kafka-property = ["socket.keepalive.enable=true", "client.rack=file-rack"]  # file"#,
        ),
        ("embedded-partitions", "embedded-partitions = 3  # default"),
        (
            "max-clock-skew-secs",
            "max-clock-skew-secs = 3600  # default",
        ),
    ] {
        assert_eq!(setting(&text, key), want, "{text}");
    }
    // The summary shows the values in force, not just their sources.
    assert!(text.contains("listen:           127.0.0.1:1111"), "{text}");
    assert!(text.contains("topic:            flag-topic"), "{text}");

    // The file is also found through OPENCLICK_CONFIG, and environment beats it.
    let out = openclick()
        .arg("check-config")
        .args(["--data-dir", dir.path().join("d").to_str().unwrap()])
        .env("OPENCLICK_CONFIG", &cfg)
        .env("OPENCLICK_TOPIC", "env-topic")
        .output()
        .unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(
        setting(&text, "topic"),
        r#"topic = "env-topic"  # env OPENCLICK_TOPIC"#
    );
    assert_eq!(setting(&text, "workers"), "workers = 3  # file");
}

#[test]
fn every_kind_of_bad_configuration_exits_64_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("d");
    let d = d.to_str().unwrap();
    let keys = dir.path().join("keys");
    write(&keys, &format!("k1:{KEY_SECRET}\n"));
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        write(&p, text);
        p.to_str().unwrap().to_owned()
    };
    let unknown = file(
        "unknown.toml",
        "listen = \"127.0.0.1:0\"\nlisten-adress = 1\n",
    );
    let snake = file("snake.toml", "admin_listen = \"127.0.0.1:0\"\n");
    let unknown_in_table = file("table.toml", "[tail]\nfrom-beginnin = true\n");
    let bad_value = file("value.toml", "workers = \"many\"\n");
    let not_toml = file("syntax.toml", "listen = \n");
    let missing = dir.path().join("missing.toml");
    let missing = missing.to_str().unwrap();
    let k = keys.to_str().unwrap();
    // Network files with a bad line 2 (Apple's egress list; the gateway list).
    let bad_egress = file("egress.csv", "104.28.12.0/24,US,,\n104.28.12.0/99,US,,\n");
    let bad_gateways = file(
        "gateways.csv",
        "10.0.0.0/8,acme,both,x\n10.0.0.0/8,acme,never,x\n",
    );
    type Case<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            "bad flag value",
            vec!["--listen", "nope"],
            vec![],
            "--listen",
        ),
        ("unknown flag", vec!["--lissen", "x"], vec![], "--lissen"),
        (
            "bad variable",
            vec![],
            vec![("OPENCLICK_WORKERS", "abc")],
            "--workers",
        ),
        (
            "bad log filter",
            vec!["--log", "foo=notalevel"],
            vec![],
            "--log",
        ),
        (
            "bad log format",
            vec![],
            vec![("OPENCLICK_LOG_FORMAT", "xml")],
            "xml",
        ),
        (
            "unknown key",
            vec!["--config", &unknown],
            vec![],
            "`listen-adress`",
        ),
        (
            "snake_case key",
            vec!["--config", &snake],
            vec![],
            "`admin-listen`",
        ),
        (
            "unknown key in a table",
            vec!["--config", &unknown_in_table],
            vec![],
            "[tail] from-beginnin",
        ),
        (
            "bad file value",
            vec!["--config", &bad_value],
            vec![],
            "`workers`",
        ),
        ("not TOML", vec!["--config", &not_toml], vec![], "line 1"),
        (
            "missing file",
            vec![],
            vec![("OPENCLICK_CONFIG", missing)],
            "missing.toml",
        ),
        ("bad keys", vec!["--keys", "k1:short"], vec![], "--keys"),
        (
            "missing keys file",
            vec!["--keys-file", missing],
            vec![],
            "--keys-file",
        ),
        (
            "keys and keys file from one source",
            vec!["--keys-file", k, "--keys", "k1:x"],
            vec![],
            "set one",
        ),
        (
            "bad kafka property",
            vec!["--kafka-property", "no.such.property=1"],
            vec![],
            "Kafka",
        ),
        (
            "missing suppression file",
            vec!["--suppression-file", missing],
            vec![],
            "--suppression-file",
        ),
        (
            "trusted proxies everywhere",
            vec!["--trusted-proxies", "0.0.0.0/0"],
            vec![],
            "--trusted-proxies",
        ),
        (
            "bad Apple egress list",
            vec!["--apple-egress-ranges", &bad_egress],
            vec![],
            "line 2",
        ),
        (
            "bad gateway networks file",
            vec![],
            vec![("OPENCLICK_GATEWAY_NETWORKS", &bad_gateways)],
            "gateway networks file",
        ),
    ];
    for (what, args, env, names) in &cases {
        for sub in ["serve", "check-config"] {
            let mut cmd = openclick();
            // Global and subcommand flags both go after the subcommand.
            cmd.args([sub, "--data-dir", d])
                .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
                .args(args);
            if args.first() == Some(&"--config") {
                // --config is global: also accepted before the subcommand.
                cmd = openclick();
                cmd.args(args).args([sub, "--data-dir", d]);
            }
            for (k, v) in env {
                cmd.env(k, v);
            }
            let started = Instant::now();
            let out = cmd.output().unwrap();
            let text = output_text(&out);
            assert_eq!(out.status.code(), Some(EX_USAGE), "{sub}, {what}: {text}");
            assert!(
                text.contains(names),
                "{sub}, {what}: {names:?} not in {text}"
            );
            for started_something in ["embedded in-process Kafka broker", "openclick serving"] {
                assert!(!text.contains(started_something), "{sub}, {what}: {text}");
            }
            assert!(!text.contains("configuration ok"), "{sub}, {what}: {text}");
            assert!(started.elapsed() < Duration::from_secs(20), "{sub}, {what}");
        }
    }
    for ok in [&["--help"][..], &["--version"], &["serve", "--help"]] {
        let out = openclick().args(ok).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{ok:?}: {}", output_text(&out));
    }
    let out = openclick().output().unwrap();
    assert_eq!(out.status.code(), Some(EX_USAGE), "no subcommand");
}

#[test]
fn a_file_configures_other_subcommands_through_tables_and_shared_variables() {
    // sign reads `keys-file` from the top level (it shares OPENCLICK_KEYS_FILE with serve)
    // and `base-url` from [sign]; the token verifies under exactly those keys.
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    write(&keys, &format!("k2:{K2_SECRET}\n"));
    let cfg = dir.path().join("c.toml");
    write(
        &cfg,
        &format!(
            "keys-file = {:?}\n[sign]\nbase-url = \"https://t.example.com\"\n",
            keys.to_str().unwrap()
        ),
    );
    let out = openclick()
        .args(["--config", cfg.to_str().unwrap(), "sign", "open"])
        .args(["--tenant", "acme", "--campaign", "c", "--message", "m"])
        .args(["--contact", "x", "--data-dir"])
        .arg(dir.path().join("d"))
        .output()
        .unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let url = String::from_utf8(out.stdout).unwrap();
    let token = url
        .trim()
        .strip_prefix("https://t.example.com/o/")
        .and_then(|t| t.strip_suffix(".gif"))
        .unwrap_or_else(|| panic!("{url}"));
    let k2 = openclick_token::Keyring::from_spec(&format!("k2:{K2_SECRET}")).unwrap();
    assert_eq!(k2.verify(token).unwrap().key_id, "k2");
    assert!(!text.contains("DEVELOPMENT KEYRING"), "{text}");
    assert!(!dir.path().join("d").join("dev-keyring").exists());
}

/// `openclick sign click` with the keys in `keys_file`: the URL's path.
fn sign_click_with(keys_file: &Path, base: &str, data: &Path) -> String {
    sign_click_for("acme", keys_file, base, data)
}

fn sign_click_for(tenant: &str, keys_file: &Path, base: &str, data: &Path) -> String {
    let out = openclick()
        .args(["sign", "click", "--tenant", tenant, "--campaign", "spring"])
        .args(["--message", "m-1", "--contact", "c-1", "--link-id", "hero"])
        .args(["--url", "https://shop.example.com/sale", "--base-url", base])
        .arg("--keys-file")
        .arg(keys_file)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    common::path_of(String::from_utf8(out.stdout).unwrap().trim())
}

fn admin_status(s: &Server, token: &str) -> u16 {
    let auth = format!("Bearer {token}");
    try_http(
        s.admin,
        "GET",
        "/v1/suppressions/acme/c-1",
        &[("Authorization", &auth)],
    )
    .unwrap()
    .0
}

fn sighup(pid: u32) {
    let ok = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_reloads_the_network_files_on_sighup_and_keeps_them_when_a_new_one_is_bad() {
    let dir = tempfile::tempdir().unwrap();
    let egress = dir.path().join("egress-ip-ranges.csv");
    let gateways = dir.path().join("gateways.csv");
    // A small list in the shape of Apple's (generated), and an operator's gateway entry.
    let three = "172.224.226.0/27,GB,GB-EN,London,\n\
                 104.28.12.0/24,US,US-CA,Los Angeles,\n\
                 2a02:26f7:b3c0:4000::/64,DE,DE-BE,Berlin,\n";
    write(&egress, three);
    write(
        &gateways,
        "198.51.100.0/24,acme,both,https://example.test\n",
    );
    let mut cmd = openclick();
    cmd.args(["--log-format", "json", "serve", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .arg("--apple-egress-ranges")
        .arg(&egress)
        .arg("--gateway-networks")
        .arg(&gateways);
    let server = Server::spawn(cmd);
    let loaded = |lines: &[String], message: &str| {
        common::log_fields(lines, message)
            .iter()
            .map(|f| (f["egress_prefixes"].clone(), f["gateway_entries"].clone()))
            .collect::<Vec<_>>()
    };
    let shipped = openclick_enrich::default_gateways().len() as u64;
    assert_eq!(
        loaded(&server.lines(), "network files loaded"),
        vec![(3.into(), (shipped + 1).into())]
    );
    // A half-written or broken list: refused, the old one stays.
    write(&egress, &format!("{three}<!DOCTYPE html>\n"));
    sighup(server.pid());
    wait_for("the refused reload", || {
        server
            .lines()
            .iter()
            .any(|l| l.contains("reload failed; keeping the old ones") && l.contains("line 4"))
    });
    // Apple's next list: reloaded on SIGHUP (the poller may pick it up first, too).
    write(
        &egress,
        &format!("{three}146.75.146.0/28,FR,FR-IDF,Paris,\n"),
    );
    sighup(server.pid());
    wait_for("the SIGHUP reload", || {
        loaded(
            &server.lines(),
            "SIGHUP: GeoIP databases and network files reloaded",
        )
        .contains(&(4.into(), (shipped + 1).into()))
    });
    server.sigterm();
    server.wait();
}

#[test]
fn sighup_rotates_keys_and_admin_token_from_files_and_no_secret_is_ever_printed() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let token = dir.path().join("admin-token");
    let k1_only = dir.path().join("k1");
    let k2_only = dir.path().join("k2");
    write(
        &keys,
        &format!("# the signing key first\nk1:{KEY_SECRET}\n"),
    );
    write(&k1_only, &format!("k1:{KEY_SECRET}\n"));
    write(&k2_only, &format!("k2:{K2_SECRET}\n"));
    write(&token, &format!("{OLD_TOKEN}\n"));
    let cfg = dir.path().join("openclick.toml");
    write(
        &cfg,
        &format!(
            r#"log-format = "json"
listen = "127.0.0.1:0"
admin-listen = "127.0.0.1:0"
data-dir = {data:?}
keys-file = {keys:?}
admin-token-file = {token:?}
topic = "cfg-topic"
min-delay-ms = 0
drain-timeout-secs = 5
kafka-property = ["sasl.password={KAFKA_PASSWORD}"]
"#,
            data = dir.path().join("data").to_str().unwrap(),
            keys = keys.to_str().unwrap(),
            token = token.to_str().unwrap(),
        ),
    );
    let mut cmd = openclick();
    cmd.args(["--config", cfg.to_str().unwrap(), "serve"]);
    let server = Server::spawn(cmd);
    let info = server.info();
    assert_eq!(info["topic"], "cfg-topic", "{info}");
    let base = format!("http://{}", server.listen);
    let t1 = sign_click_with(&k1_only, &base, &dir.path().join("s1"));
    let t2 = sign_click_with(&k2_only, &base, &dir.path().join("s2"));
    let click = |path: &str| try_http(server.listen, "GET", path, &[]).unwrap().0;
    assert_eq!(click(&t1), 302);
    assert_eq!(click(&t2), 404, "k2 is not in the keys file yet");
    assert_eq!(
        admin_status(&server, OLD_TOKEN),
        404,
        "authorized, not suppressed"
    );
    assert_eq!(admin_status(&server, NEW_TOKEN), 401);

    // Rotation: k2 signs now, k1 still verifies; a new admin token.
    write(&keys, &format!("k2:{K2_SECRET}\nk1:{KEY_SECRET}\n"));
    write(&token, &format!("{NEW_TOKEN}\n"));
    sighup(server.pid());
    wait_for("k2 tokens to verify", || click(&t2) == 302);
    assert_eq!(click(&t1), 302, "k1 still verifies");
    wait_for("the new admin token", || {
        admin_status(&server, NEW_TOKEN) == 404
    });
    assert_eq!(
        admin_status(&server, OLD_TOKEN),
        401,
        "the old token is gone"
    );

    // Bad files: the secrets in force stay, an error is logged.
    write(&keys, &format!("{BAD_KEY_CONTENT}\n"));
    write(&token, "\n");
    sighup(server.pid());
    wait_for("the reload errors", || {
        let l = server.lines();
        l.iter().any(|l| l.contains("--keys-file not reloaded"))
            && l.iter()
                .any(|l| l.contains("--admin-token-file not reloaded"))
    });
    assert_eq!(click(&t2), 302);
    assert_eq!(click(&t1), 302);
    assert_eq!(admin_status(&server, NEW_TOKEN), 404);
    let info = serde_json::to_string(&server.info()).unwrap();

    server.sigterm();
    let lines = server.wait();
    // SIGHUP reloads, and so may the file watcher (it polls every 5 s): at least one reload,
    // and every one logged key ids only.
    let reloaded = common::log_fields(&lines, "keys reloaded from --keys-file");
    assert!(!reloaded.is_empty(), "{lines:#?}");
    assert!(
        reloaded.iter().any(|r| r["trigger"] == "SIGHUP"),
        "{reloaded:?}"
    );
    for r in &reloaded {
        assert_eq!(r["keys"], "global signing k2 (verify: k2, k1)", "{r}");
    }

    // check-config over the same file (and a secret on the command line, in a variable).
    write(&keys, &format!("k2:{K2_SECRET}\nk1:{KEY_SECRET}\n"));
    write(&token, &format!("{NEW_TOKEN}\n"));
    let out = openclick()
        .args(["--config", cfg.to_str().unwrap(), "check-config"])
        .output()
        .unwrap();
    let checked = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{checked}");
    assert!(checked.contains("signing k2 (verify: k2, k1)"), "{checked}");
    assert!(checked.contains("sasl.password=<redacted>"), "{checked}");
    let out = openclick()
        .args(["check-config", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--keys", &format!("k1:{KEY_SECRET}")])
        .env("OPENCLICK_ADMIN_TOKEN", OLD_TOKEN)
        .output()
        .unwrap();
    let inline = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{inline}");
    assert!(
        inline.contains(r#"keys = "<redacted>"  # flag"#),
        "{inline}"
    );
    assert!(
        inline.contains("--keys") && inline.contains("/proc/PID/cmdline"),
        "no warning about a secret in argv: {inline}"
    );
    assert!(
        inline.contains(r#"admin-token = "<redacted>"  # env"#),
        "{inline}"
    );

    let everything = format!("{}\n{info}\n{checked}\n{inline}", lines.join("\n"));
    for secret in [
        KEY_SECRET,
        K2_SECRET,
        OLD_TOKEN,
        NEW_TOKEN,
        "BADSECRET",
        KAFKA_PASSWORD,
    ] {
        assert!(
            !everything.contains(secret),
            "{secret} printed: {everything}"
        );
    }
}

/// The admin listener's address in a text (`admin=ADDR`) or JSON (`"admin":"ADDR"`) line.
fn admin_address(line: &str) -> std::net::SocketAddr {
    let rest = line
        .split_once("admin=")
        .or_else(|| line.split_once("\"admin\":\""))
        .unwrap_or_else(|| panic!("no admin address in {line}"))
        .1;
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
        .unwrap_or(rest.len());
    rest[..end].parse().unwrap()
}

/// Runs `serve` (port 0, embedded broker) with stderr on a pipe until it is serving, stops it
/// with SIGTERM and returns all of stderr.
fn serve_stderr(configure: impl FnOnce(&mut Command)) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = openclick();
    cmd.args(["--log", "debug", "serve"])
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.path());
    configure(&mut cmd);
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut all = Vec::new();
    let mut line = Vec::new();
    let mut signalled = false;
    loop {
        line.clear();
        if err.read_until(b'\n', &mut line).unwrap() == 0 {
            break;
        }
        all.extend_from_slice(&line);
        let text = String::from_utf8_lossy(&line);
        if !signalled && text.contains("openclick serving") {
            signalled = true;
            // SIGTERM is handled once the edge runs: wait until the admin plane says ready.
            let admin = admin_address(&text);
            wait_for("/readyz", || {
                try_http(admin, "GET", "/readyz", &[]).map(|r| r.0) == Some(200)
            });
            let ok = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap()
                .success();
            assert!(ok);
        }
    }
    let status = child.wait().unwrap();
    assert!(signalled, "{}", String::from_utf8_lossy(&all));
    assert!(status.success(), "{}", String::from_utf8_lossy(&all));
    all
}

/// Tenants' own keys on the edge (`TENANT/KEY_ID:SECRET` in `--keys-file`, no global key):
/// each sender holds only its own secret, under a plain `KEY_ID:SECRET` file, and signs with
/// `openclick sign`. A tenant's key signs for nobody else, even under the other tenant's key
/// id; a tenant with no keys is refused; a tenant's new key verifies once the file changes on
/// disk, with no SIGHUP and no restart.
#[test]
fn tenant_keys_isolate_tenants_and_rotate_when_the_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    // acme's a1 is KEY_SECRET, globex's g1 is K2_SECRET.
    write(
        &keys,
        &format!("acme/a1:{KEY_SECRET}\nglobex/g1:{K2_SECRET}\n"),
    );
    let sender = |name: &str, spec: &str| {
        let p = dir.path().join(name);
        write(&p, &format!("{spec}\n"));
        p
    };
    let acme_a1 = sender("acme-a1", &format!("a1:{KEY_SECRET}"));
    let acme_as_g1 = sender("acme-as-g1", &format!("g1:{KEY_SECRET}"));
    let globex_g1 = sender("globex-g1", &format!("g1:{K2_SECRET}"));
    // acme's next key: 32 bytes of 0x05.
    let a2_secret = "BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU";
    let acme_a2 = sender("acme-a2", &format!("a2:{a2_secret}"));

    let mut cmd = openclick();
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ])
    .args(["--log-format", "json", "--min-delay-ms", "0"])
    .arg("--keys-file")
    .arg(&keys)
    .arg("--data-dir")
    .arg(dir.path().join("data"));
    let server = Server::spawn(cmd);
    let base = format!("http://{}", server.listen);
    let data = dir.path().join("sender-data");
    let click = |path: &str| try_http(server.listen, "GET", path, &[]).unwrap().0;

    assert_eq!(click(&sign_click_for("acme", &acme_a1, &base, &data)), 302);
    assert_eq!(
        click(&sign_click_for("globex", &globex_g1, &base, &data)),
        302
    );
    assert_eq!(
        click(&sign_click_for("globex", &acme_a1, &base, &data)),
        404,
        "acme's key signs nothing for globex"
    );
    assert_eq!(
        click(&sign_click_for("globex", &acme_as_g1, &base, &data)),
        404,
        "acme's secret under globex's key id"
    );
    assert_eq!(
        click(&sign_click_for("initech", &acme_a1, &base, &data)),
        404,
        "a tenant with no keys, and no global keyring"
    );
    let a2_token = sign_click_for("acme", &acme_a2, &base, &data);
    assert_eq!(click(&a2_token), 404, "a2 is not in the file yet");

    // acme rotates: a2 first (signs), a1 still verifies. No signal.
    write(
        &keys,
        &format!("acme/a2:{a2_secret}\nacme/a1:{KEY_SECRET}\nglobex/g1:{K2_SECRET}\n"),
    );
    wait_for("acme's new key to verify after the file changed", || {
        click(&a2_token) == 302
    });
    assert_eq!(click(&sign_click_for("acme", &acme_a1, &base, &data)), 302);
    assert_eq!(
        click(&sign_click_for("globex", &acme_a2, &base, &data)),
        404,
        "acme's new key signs nothing for globex"
    );

    server.sigterm();
    let lines = server.wait();
    let reloaded = common::log_fields(&lines, "keys reloaded from --keys-file");
    assert!(
        reloaded.iter().any(|r| r["trigger"] == "file change"
            && r["keys"] == "no global keyring; 2 tenant(s) with their own keys"),
        "{reloaded:?}"
    );
    let all = lines.join("\n");
    for secret in [KEY_SECRET, K2_SECRET, a2_secret] {
        assert!(!all.contains(secret), "a secret in the logs");
    }
}

#[test]
fn logs_to_a_pipe_carry_no_escape_codes_and_json_lines_all_parse() {
    for format in ["auto", "text"] {
        let err = serve_stderr(|c| {
            c.env("OPENCLICK_LOG_FORMAT", format);
        });
        let text = String::from_utf8_lossy(&err);
        assert!(!err.contains(&0x1b), "{format}: ESC in {text}");
        // Not vacuous: the text lines are there, level and target included.
        assert!(
            text.contains(" INFO openclick::serve: openclick serving"),
            "{text}"
        );
        assert!(text.contains("DEBUG"), "{text}");
    }
    let err = serve_stderr(|c| {
        c.env("OPENCLICK_LOG_FORMAT", "json");
    });
    let text = String::from_utf8(err).unwrap();
    let mut messages = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        for field in ["timestamp", "level", "target"] {
            assert!(v[field].is_string(), "no {field}: {line}");
        }
        messages.push(v["fields"]["message"].as_str().unwrap().to_owned());
    }
    assert!(messages.iter().any(|m| m == "openclick serving"), "{text}");
    assert!(messages.len() >= 5, "{text}");
}

#[test]
fn sign_warns_about_the_development_keyring_only_when_it_generates_it() {
    let dir = tempfile::tempdir().unwrap();
    let sign = || {
        openclick()
            .args(["sign", "open", "--tenant", "acme", "--campaign", "c"])
            .args(["--message", "m", "--contact", "x", "--data-dir"])
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let first = sign();
    assert!(first.status.success());
    let err = String::from_utf8_lossy(&first.stderr);
    assert_eq!(err.matches("DEVELOPMENT KEYRING").count(), 1, "{err}");
    assert!(!first.stderr.contains(&0x1b), "{err}");
    assert!(dir.path().join("dev-keyring").exists());
    for _ in 0..2 {
        let again = sign();
        assert!(again.status.success());
        assert!(again.stderr.is_empty(), "{:?}", again);
    }
    // serve still announces it at every start (check-config shares its loader).
    let out = openclick()
        .arg("check-config")
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DEVELOPMENT KEYRING"));
}
