//! README promise: "Logs carry no tokens, contact ids, URLs or IPs" (and no secrets).
//!
//! Runs the real binary (`openclick serve` on its embedded broker, JSON logs at `debug`, so
//! more is logged than in production), drives every path that handles personal data (opens
//! and clicks with client addresses forwarded by a trusted proxy, tampered tokens, a contact
//! suppressed through the admin API, admin writes refused for a bad token or a bad batch
//! line, removals), stops it with SIGTERM and searches all of its stderr for every token,
//! contact id, destination URL (and its host and path), forwarded client address, the admin
//! token and the signing secret that were used. None may appear.
//!
//! The search is shown not to be vacuous: the same stderr must hold the `openclick serving`
//! line with the listen address, a debug line, and the shutdown lines; and the metrics show
//! the hits were really processed (tracked, suppressed, invalid).

mod common;

use std::time::{Duration, Instant};

use common::{serve_command, sign_click, sign_open, try_http, try_http_full, Server, KEY_SECRET};

const ADMIN_TOKEN: &str = "adm-9f3e7c1d5b";
const TRACKED_OPEN: &str = "pii-contact-open-3f9a";
const TRACKED_CLICK: &str = "pii-contact-click-8c2e";
const OPTED_OUT: &str = "pii-optout-4d1c";
const UNAUTHORISED: &str = "pii-unauth-77e2";
const BATCH: &str = "pii-batch-0a6b";
const BAD_LINE: &str = "pii-badline-5e90";
const DEST_HOST: &str = "pii-destination.example.net";
const DEST_PATH: &str = "private-landing-a81c";
const CLIENT_IPS: [&str; 4] = [
    "198.51.100.77",
    "198.51.100.78",
    "2001:db8:5:6::77",
    "203.0.113.199",
];

/// Flips one character in the middle of a token in `path` (`/o/TOKEN.gif` or `/c/TOKEN`).
fn tamper(path: &str) -> String {
    let mut b = path.as_bytes().to_vec();
    let i = 3 + (b.len() - 3) / 2;
    b[i] = if b[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(b).unwrap()
}

fn token_of(path: &str) -> &str {
    let t = &path[3..];
    t.strip_suffix(".gif").unwrap_or(t)
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

#[test]
fn logs_hold_no_token_contact_url_ip_or_secret() {
    let data = tempfile::tempdir().unwrap();
    let mut cmd = serve_command(data.path());
    cmd.args(["--log", "debug", "--trusted-proxies", "127.0.0.1/32"])
        .args(["--admin-token", ADMIN_TOKEN]);
    let server = Server::spawn(cmd);
    let (edge, admin) = (server.listen, server.admin);
    let dest = format!("https://{DEST_HOST}/{DEST_PATH}?email=jane%40example.org");

    let open = sign_open(TRACKED_OPEN);
    let click = sign_click(TRACKED_CLICK, &dest);
    let opted_open = sign_open(OPTED_OUT);
    let opted_click = sign_click(OPTED_OUT, &dest);
    let (bad_open, bad_click) = (tamper(&open), tamper(&click));
    let mut secrets: Vec<String> = vec![
        TRACKED_OPEN.into(),
        TRACKED_CLICK.into(),
        OPTED_OUT.into(),
        UNAUTHORISED.into(),
        BATCH.into(),
        BAD_LINE.into(),
        dest.clone(),
        DEST_HOST.into(),
        DEST_PATH.into(),
        ADMIN_TOKEN.into(),
        KEY_SECRET.into(),
    ];
    for p in [
        &open,
        &click,
        &opted_open,
        &opted_click,
        &bad_open,
        &bad_click,
    ] {
        secrets.push(token_of(p).to_string());
    }
    secrets.extend(CLIENT_IPS.iter().map(|s| s.to_string()));

    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let auth = [("Authorization", bearer.as_str())];
    let admin_call = |method: &str, path: &str, headers: &[(&str, &str)], body: &str| {
        let mut s = std::net::TcpStream::connect(admin).unwrap();
        use std::io::{Read, Write};
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        s.write_all(req.as_bytes()).unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        raw.split(' ').nth(1).unwrap().parse::<u16>().unwrap()
    };

    // Admin writes: an opt-out, a refused write, a batch, a refused batch, a removal.
    let put = format!("/v1/suppressions/acme/{OPTED_OUT}?reason=opt_out");
    assert_eq!(admin_call("PUT", &put, &auth, ""), 200);
    let unauth = format!("/v1/suppressions/acme/{UNAUTHORISED}");
    assert_eq!(
        admin_call("PUT", &unauth, &[("Authorization", "Bearer wrong")], ""),
        401
    );
    let batch = format!("{{\"tenant\":\"acme\",\"contact\":\"{BATCH}\"}}\n");
    assert_eq!(
        admin_call("POST", "/v1/suppressions/batch", &auth, &batch),
        200
    );
    let bad_batch = format!("{{\"tenant\":\"ac/me\",\"contact\":\"{BAD_LINE}\"}}\n");
    assert_eq!(
        admin_call("POST", "/v1/suppressions/batch", &auth, &bad_batch),
        400
    );
    let del = format!("/v1/suppressions/acme/{BATCH}");
    assert_eq!(admin_call("DELETE", &del, &auth, ""), 200);
    let get = format!("/v1/suppressions/acme/{OPTED_OUT}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while admin_call("GET", &get, &auth, "") != 200 {
        assert!(Instant::now() < deadline, "the opt-out never applied");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Hits, each from a client address a trusted proxy forwards.
    let xff = |ip: &'static str| [("X-Forwarded-For", ip)];
    assert_eq!(
        try_http(edge, "GET", &open, &xff(CLIENT_IPS[0])).unwrap().0,
        200
    );
    let (status, headers, _) = try_http_full(edge, "GET", &click, &xff(CLIENT_IPS[1])).unwrap();
    assert_eq!(status, 302);
    assert!(headers.iter().any(|(k, v)| k == "location" && *v == dest));
    assert_eq!(
        try_http(edge, "HEAD", &click, &xff(CLIENT_IPS[2]))
            .unwrap()
            .0,
        302
    );
    for p in [&opted_open, &bad_open] {
        assert_eq!(
            try_http(edge, "GET", p, &xff(CLIENT_IPS[3])).unwrap().0,
            200
        );
    }
    assert_eq!(
        try_http(edge, "GET", &opted_click, &xff(CLIENT_IPS[3]))
            .unwrap()
            .0,
        302
    );
    assert_eq!(
        try_http(edge, "GET", &bad_click, &xff(CLIENT_IPS[3]))
            .unwrap()
            .0,
        404
    );
    let bad_method = try_http(edge, "POST", &open, &xff(CLIENT_IPS[3]))
        .unwrap()
        .0;
    assert_eq!(bad_method, 405);
    let unknown = format!("/x/{TRACKED_OPEN}");
    assert_eq!(
        try_http(edge, "GET", &unknown, &xff(CLIENT_IPS[3]))
            .unwrap()
            .0,
        404
    );

    // They were processed for real: tracked, suppressed and invalid hits counted. Opens are
    // processed after their answer (`--defer-opens-us`, up to a few intervals on an idle
    // edge), so the counts are awaited.
    let wants = [
        (r#"openclick_hits_total{route="open",outcome="tracked"}"#, 1),
        (
            r#"openclick_hits_total{route="click",outcome="tracked"}"#,
            2,
        ),
        (
            r#"openclick_hits_total{route="open",outcome="suppressed"}"#,
            1,
        ),
        (
            r#"openclick_hits_total{route="click",outcome="suppressed"}"#,
            1,
        ),
        (
            r#"openclick_hits_total{route="open",outcome="invalid_token"}"#,
            1,
        ),
        (
            r#"openclick_hits_total{route="click",outcome="invalid_token"}"#,
            1,
        ),
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    let m = loop {
        let m = String::from_utf8(try_http(admin, "GET", "/metrics", &[]).unwrap().1).unwrap();
        if wants.iter().all(|(s, want)| metric(&m, s) == *want) || Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    for (series, want) in wants {
        assert_eq!(metric(&m, series), want, "{series}: {m}");
    }

    server.sigterm();
    let lines = server.wait();

    // The search is over the real log: the serving line, debug lines, the shutdown.
    let all = lines.join("\n");
    assert!(all.contains("openclick serving"), "{all}");
    assert!(
        all.contains(&edge.to_string()),
        "listen address not logged: {all}"
    );
    assert!(all.contains("\"level\":\"DEBUG\""), "no debug line: {all}");
    assert!(all.contains("SIGTERM received"), "{all}");
    assert!(all.contains("kafka sink flushed"), "{all}");

    let leaks: Vec<(String, &String)> = secrets
        .iter()
        .flat_map(|s| {
            lines
                .iter()
                .filter(move |l| l.contains(s.as_str()))
                .map(move |l| (s.clone(), l))
        })
        .collect();
    assert!(
        leaks.is_empty(),
        "personal data or secrets in the log: {leaks:#?}"
    );
}
