//! Kafka secrets given in `--kafka-properties-file` (and, against advice, `--kafka-property`)
//! never appear in `check-config`'s output, `--help`, the logs (at `debug`) or `/info`; the
//! command line overrides the file per key; a secret on the command line draws a warning that
//! names the key, not the value.
//!
//! The searches are shown not to be vacuous: the same outputs carry the non-secret values of
//! the same file (the username, the protocol), and the warning line is there.

mod common;

use common::{log_fields, openclick, serve_command, Server, KEYS};

const FILE_PASSWORD: &str = "file-pw-7d1e0b";
const ARGV_PASSWORD: &str = "argv-pw-93c4aa";
const KEY_PASSWORD: &str = "keypass-5f2b61";
const KEYSTORE_PASSWORD: &str = "keystore-pw-c0ffee";
const JAAS_PASSWORD: &str = "jaas-pw-11aa22";
const SECRETS: [&str; 5] = [
    FILE_PASSWORD,
    ARGV_PASSWORD,
    KEY_PASSWORD,
    KEYSTORE_PASSWORD,
    JAAS_PASSWORD,
];

fn no_secret_in(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} shows a secret ({s}):\n{text}");
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn check_config_merges_the_file_under_argv_and_prints_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("client.properties");
    std::fs::write(
        &file,
        format!(
            "# as a managed Kafka hands it out\n\
             bootstrap.servers=broker-from-file.example:9093\n\
             security.protocol=SASL_SSL\n\
             sasl.mechanism=SCRAM-SHA-512\n\
             sasl.username=svc-openclick\n\
             sasl.password={FILE_PASSWORD}\n\
             ssl.key.password={KEY_PASSWORD}\n\
             client.dns.lookup=use_all_dns_ips\n\
             linger.ms=7\n"
        ),
    )
    .unwrap();
    let out = openclick()
        .args(["check-config", "--keys", KEYS, "--data-dir"])
        .arg(dir.path())
        .arg("--kafka-properties-file")
        .arg(&file)
        .args([
            "--kafka-property",
            &format!("sasl.password={ARGV_PASSWORD}"),
        ])
        .args(["--kafka-property", "linger.ms=9"])
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    no_secret_in("check-config stdout", &stdout);
    no_secret_in("check-config stderr", &stderr);
    // Not vacuous: the file was read, merged and reported.
    assert!(
        stdout.contains("kafka:            broker-from-file.example:9093"),
        "{stdout}"
    );
    assert!(stdout.contains("security.protocol=SASL_SSL"), "{stdout}");
    assert!(stdout.contains("sasl.username=svc-openclick"), "{stdout}");
    // The summary lists the merged properties: one sasl.password, the command line's (the
    // effective-configuration listing after it repeats the argv values, redacted too).
    let summary = stdout.split("# effective configuration").next().unwrap();
    assert_eq!(
        summary.matches("sasl.password=<redacted>").count(),
        1,
        "one sasl.password, the command line's: {stdout}"
    );
    assert!(stdout.contains("linger.ms=9") && !stdout.contains("linger.ms=7"));
    assert!(!stdout.contains("client.dns.lookup"), "{stdout}");
    // The warnings: the secret on argv by key, the Java-only key by name.
    assert!(
        stderr.contains("a secret Kafka property came from --kafka-property")
            && stderr.contains("sasl.password"),
        "{stderr}"
    );
    assert!(stderr.contains("client.dns.lookup"), "{stderr}");
}

#[test]
fn a_bad_properties_file_is_refused_without_quoting_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("client.properties");
    std::fs::write(
        &file,
        format!("security.protocol=SSL\nsasl.password {FILE_PASSWORD}\n"),
    )
    .unwrap();
    let out = openclick()
        .args(["check-config", "--keys", KEYS, "--data-dir"])
        .arg(dir.path())
        .arg("--kafka-properties-file")
        .arg(&file)
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("--kafka-properties-file"), "{stderr}");
    assert!(stderr.contains("line 2"), "{stderr}");
    no_secret_in("the error", &stderr);
}

#[test]
fn help_does_not_show_the_properties_variable() {
    let out = openclick()
        .args(["serve", "--help"])
        .env(
            "OPENCLICK_KAFKA_PROPERTIES",
            format!("sasl.password={ARGV_PASSWORD}"),
        )
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success());
    assert!(stdout.contains("--kafka-properties-file"), "{stdout}");
    no_secret_in("serve --help", &stdout);
}

#[test]
fn serve_keeps_secrets_out_of_logs_and_info() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("client.properties");
    // Properties the embedded (plaintext) broker tolerates: SASL settings are unused without a
    // sasl_* protocol, but every client is still configured with them.
    std::fs::write(
        &file,
        format!(
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \
             username=\"svc-openclick\" password=\"{JAAS_PASSWORD}\";\n\
             ssl.key.password={KEY_PASSWORD}\n"
        ),
    )
    .unwrap();
    let mut cmd = serve_command(dir.path());
    cmd.args(["--log", "debug"])
        .arg("--kafka-properties-file")
        .arg(&file)
        .args([
            "--kafka-property",
            &format!("ssl.keystore.password={KEYSTORE_PASSWORD}"),
        ]);
    let server = Server::spawn(cmd);
    let info = server.info().to_string();
    server.sigterm();
    let lines = server.wait();
    let all = lines.join("\n");
    no_secret_in("/info", &info);
    no_secret_in("serve's logs", &all);
    assert!(!log_fields(&lines, "openclick serving").is_empty(), "{all}");
    assert!(
        all.contains("ssl.keystore.password"),
        "the argv warning: {all}"
    );
    assert!(info.contains("kafka_bootstrap_servers"), "{info}");
}
