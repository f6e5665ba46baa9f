//! The sending API, black box: `openclick serve --sending-listen` with tenants' own keys and a
//! bearer token per tenant, driven over HTTP as a sending service would.
//!
//! Checked against independent parts of the system, not the API's own output:
//! - URLs from `POST /v1/sign` are answered by the public edge (pixel for opens, 302 to the
//!   signed destination, query intact, for clicks), which verifies with acme's own key;
//! - `POST /v1/rewrite` for many recipients gives the same records as `openclick rewrite
//!   --recipients` with the same keys and send time, and its click URLs redirect to the
//!   template's destinations with entities decoded;
//! - a caller signs only for its own tenant: a line naming another tenant is 403 with its line
//!   number, a tenant without keys (no global keyring) is 403, no or a wrong token is 401;
//! - a token added to the tokens file works within seconds, without a signal;
//! - the requests are counted in `/metrics`.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{openclick, path_of, try_http, try_http_full, try_post, Server, KEY_SECRET};

const ACME: &str = "acme-token-4f1c0a9be2d3";
const GLOBEX: &str = "globex-token-9d2e7a1c0b44";
const ACME_NEW: &str = "acme-token-new-7e3b1d90";
const SENT_AT: &str = "1717000000000";

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn post(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    let auth = token.map(bearer);
    let mut headers = vec![];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    let (status, h, b) = try_post(addr, path, &headers, body.as_bytes()).expect("connection");
    (status, h, String::from_utf8(b).unwrap())
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

const TEMPLATE: &str = r#"<!doctype html><html><body><table><tr><td>
<a href="https://shop.example.com/p?a=1&amp;b=dec%2025" data-link-id="buy">Buy</a>
<a href="mailto:help@example.com">Help</a></td></tr></table></body></html>"#;

#[test]
fn the_sending_api_signs_and_rewrites_for_the_callers_tenant_only() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, format!("acme/a1:{KEY_SECRET}\n")).unwrap();
    let tokens = dir.path().join("sending-tokens");
    std::fs::write(&tokens, format!("acme:{ACME}\nglobex:{GLOBEX}\n")).unwrap();
    let mut cmd = openclick();
    cmd.args(["--log", "info", "--log-json", "serve"])
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(["--sending-listen", "127.0.0.1:0", "--min-delay-ms", "0"])
        .arg("--keys-file")
        .arg(&keys)
        .arg("--sending-tokens-file")
        .arg(&tokens)
        .arg("--data-dir")
        .arg(dir.path().join("data"));
    let server = Server::spawn(cmd);
    let api: SocketAddr = server.info()["sending_listen"]
        .as_str()
        .expect("sending_listen in /info")
        .parse()
        .unwrap();
    let base = format!("http://{}", server.listen);
    let sign_path = format!("/v1/sign?base_url={base}");

    // Sign: a line may omit its tenant or repeat it.
    let url = "https://shop.example.com/sale?utm=mail&x=%2F";
    let body = format!(
        "{{\"kind\":\"open\",\"campaign_id\":\"spring\",\"message_id\":\"m-1\",\"contact_id\":\"c-1\"}}\n\n\
         {{\"kind\":\"click\",\"tenant_id\":\"acme\",\"campaign_id\":\"spring\",\"message_id\":\"m-1\",\"contact_id\":\"c-1\",\"link_id\":\"hero\",\"url\":\"{url}\"}}\n"
    );
    let (status, h, out) = post(api, &sign_path, Some(ACME), &body);
    assert_eq!(status, 200, "{out}");
    assert_eq!(
        header(&h, "content-type"),
        Some("text/plain; charset=utf-8")
    );
    let urls: Vec<&str> = out.lines().collect();
    assert_eq!(urls.len(), 2, "{out}");
    assert!(urls[0].starts_with(&format!("{base}/o/")) && urls[0].ends_with(".gif"));
    let (s, h, _) = try_http_full(server.listen, "GET", &path_of(urls[0]), &[]).unwrap();
    assert_eq!((s, header(&h, "content-type")), (200, Some("image/gif")));
    let (s, h, _) = try_http_full(server.listen, "GET", &path_of(urls[1]), &[]).unwrap();
    assert_eq!((s, header(&h, "location")), (302, Some(url)));

    // Another tenant's line: refused whole, with its line number.
    let other = body.replace("\"tenant_id\":\"acme\"", "\"tenant_id\":\"globex\"");
    let (status, _, out) = post(api, &sign_path, Some(ACME), &other);
    assert_eq!(status, 403, "{out}");
    let e: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(e["line"], 3, "{out}");
    // A destination the token rules refuse: 422, its line.
    let bad = body.replace(url, "javascript:alert(1)");
    let (status, _, out) = post(api, &sign_path, Some(ACME), &bad);
    assert_eq!(status, 422, "{out}");
    // globex has a token but no keys of its own, and there is no global keyring.
    let (status, _, out) = post(
        api,
        &sign_path,
        Some(GLOBEX),
        &body.replace("acme", "globex"),
    );
    assert_eq!(status, 403, "{out}");
    assert!(out.contains("no signing key"), "{out}");
    // No token, a wrong token, the new token not yet in the file.
    for t in [None, Some("acme-token-wrong-00000000"), Some(ACME_NEW)] {
        let (status, h, _) = post(api, &sign_path, t, &body);
        assert_eq!(status, 401);
        assert!(header(&h, "www-authenticate").is_some());
    }
    let (status, _) =
        try_http(api, "GET", "/v1/sign", &[("Authorization", &bearer(ACME))]).unwrap();
    assert_eq!(status, 405);
    let (status, _, _) = post(api, "/v1/sign", Some(ACME), &body);
    assert_eq!(status, 400, "no base_url and no --sending-base-url");

    // Rewrite, one recipient: tracked HTML whose link redirects to the decoded destination.
    let req = serde_json::json!({
        "campaign_id": "spring", "contact_id": "c-9", "message_id": "m-9", "html": TEMPLATE,
    });
    let (status, h, html) = post(
        api,
        &format!("/v1/rewrite?base_url={base}"),
        Some(ACME),
        &req.to_string(),
    );
    assert_eq!(status, 200, "{html}");
    assert_eq!(header(&h, "content-type"), Some("text/html; charset=utf-8"));
    assert!(html.contains("href=\"mailto:help@example.com\""), "{html}");
    let click = html
        .split("href=\"")
        .skip(1)
        .map(|s| &s[..s.find('"').unwrap()])
        .find(|u| u.starts_with(&format!("{base}/c/")))
        .expect("a click URL");
    let (s, h, _) = try_http_full(server.listen, "GET", &path_of(click), &[]).unwrap();
    assert_eq!(
        (s, header(&h, "location")),
        (302, Some("https://shop.example.com/p?a=1&b=dec%2025"))
    );
    assert!(html.contains(&format!("{base}/o/")), "pixel: {html}");

    // Rewrite, many recipients: the records `openclick rewrite --recipients` writes.
    let req = serde_json::json!({
        "campaign_id": "spring", "html": TEMPLATE, "sent_at_ms": SENT_AT.parse::<i64>().unwrap(),
        "recipients": [
            {"contact_id": "c-1", "message_id": "m-1"},
            {"contact_id": "c-2", "message_id": "m-2"},
        ],
    });
    let (status, h, ndjson) = post(
        api,
        &format!("/v1/rewrite?base_url={base}"),
        Some(ACME),
        &req.to_string(),
    );
    assert_eq!(status, 200, "{ndjson}");
    assert_eq!(header(&h, "content-type"), Some("application/x-ndjson"));
    let csv = dir.path().join("recipients.csv");
    std::fs::write(&csv, "contact,message\nc-1,m-1\nc-2,m-2\n").unwrap();
    let template = dir.path().join("template.html");
    std::fs::write(&template, TEMPLATE).unwrap();
    let cli = openclick()
        .args(["rewrite", "--tenant", "acme", "--campaign", "spring"])
        .args(["--base-url", &base, "--sent-at-ms", SENT_AT])
        .arg("--keys-file")
        .arg(&keys)
        .arg("--recipients")
        .arg(&csv)
        .arg("--input")
        .arg(&template)
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let parse = |text: &str| -> Vec<serde_json::Value> {
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let want = parse(&String::from_utf8(cli.stdout).unwrap());
    assert_eq!(want.len(), 2);
    assert_eq!(parse(&ndjson), want);

    // A new token in the file works within seconds, without a signal.
    std::fs::write(
        &tokens,
        format!("acme:{ACME}\nacme:{ACME_NEW}\nglobex:{GLOBEX}\n"),
    )
    .unwrap();
    wait_for("the new sending token", || {
        post(api, &sign_path, Some(ACME_NEW), &body).0 == 200
    });

    let (status, metrics) = try_http(server.admin, "GET", "/metrics", &[]).unwrap();
    assert_eq!(status, 200);
    let metrics = String::from_utf8(metrics).unwrap();
    // Three rewritten messages, each with one tracked link and a pixel.
    assert!(
        metrics.contains("openclick_sending_tokens_total{route=\"rewrite\"} 6\n"),
        "{metrics}"
    );
    for series in [
        r#"openclick_sending_requests_total{route="sign",result="ok"}"#,
        r#"openclick_sending_requests_total{route="sign",result="unauthorized"}"#,
        r#"openclick_sending_requests_total{route="rewrite",result="ok"}"#,
        r#"openclick_sending_tokens_total{route="sign"}"#,
    ] {
        assert!(metrics.contains(series), "{series} missing");
    }
    server.sigterm();
    let lines = server.wait().join("\n");
    for secret in [
        ACME,
        GLOBEX,
        ACME_NEW,
        KEY_SECRET,
        "c-9",
        "shop.example.com",
    ] {
        assert!(!lines.contains(secret), "{secret:?} in the logs");
    }
}
