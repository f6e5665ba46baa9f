//! The corpus (`tests/corpus/NAME.html`): real-world email shapes, each rewritten for two
//! recipients and checked three ways, none of which reads the rewriter's own link list:
//!
//! 1. against `NAME.expected.html`, written by hand: the input with each tracked `href` value
//!    replaced by `⟦click|LINK_ID|URL⟧` (`⟦honeypot|LINK_ID|URL⟧` for a token with the honeypot
//!    flag) and the pixel by `⟦pixel⟧`. Every click URL and the
//!    pixel of the output are verified with the keyring and replaced by the same notation from
//!    the *verified claims*; the result must equal the expectation byte for byte, which checks
//!    that the rest of the document (untouched links included) is unchanged;
//! 2. with a second, independent HTML parser (html5ever, through `scraper`): the links of input
//!    and output are paired in document order; a rewritten link's verified URL equals the
//!    input's `href` as a browser decodes it (entities, whitespace, `<base>`), an untouched
//!    link's decoded `href` is unchanged;
//! 3. the link ids of the two recipients' copies are equal, their tokens differ.

use std::path::{Path, PathBuf};

use openclick_rewrite::{Message, Skip, Template};
use openclick_token::{Channel, Claims, Key, Keyring, TokenKind};
use scraper::{Html, Node};

const BASE: &str = "https://t.example.com";

fn keyring() -> Keyring {
    Keyring::new(Key::generate("k1").unwrap(), vec![]).unwrap()
}

fn message(contact: &'static str, message: &'static str) -> Message<'static> {
    Message {
        tenant_id: "acme",
        campaign_id: "autumn-2026",
        message_id: message,
        contact_id: contact,
        channel: Channel::Email,
        sent_at_ms: 1_790_000_000_000,
    }
}

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.ends_with(".html") && !name.ends_with(".expected.html")
        })
        .collect();
    files.sort();
    assert!(files.len() >= 4, "corpus missing");
    files
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Verifies a token and checks the claims every token of `m` carries.
fn verify(keyring: &Keyring, token: &str, m: &Message<'_>, kind: TokenKind) -> Claims {
    let claims = keyring.verify(token).expect("token verifies").claims;
    assert_eq!(claims.kind, kind);
    assert_eq!(claims.tenant_id, m.tenant_id);
    assert_eq!(claims.campaign_id, m.campaign_id);
    assert_eq!(claims.message_id, m.message_id);
    assert_eq!(claims.contact_id, m.contact_id);
    assert_eq!(claims.channel, m.channel);
    assert_eq!(claims.issued_at_ms, m.sent_at_ms);
    claims
}

/// The output in the expectations' notation, and the link ids in order.
fn normalise(keyring: &Keyring, out: &str, m: &Message<'_>) -> (String, Vec<String>) {
    const PIXEL_START: &str = "<img src=\"https://t.example.com/o/";
    const PIXEL_END: &str = ".gif\" width=\"1\" height=\"1\" alt=\"\" style=\"display:block;width:1px;height:1px;border:0;margin:0;padding:0\">";
    let click = format!("{BASE}/c/");
    let mut s = String::new();
    let mut ids = Vec::new();
    let mut rest = out;
    let mut pixels = 0;
    loop {
        let next_click = rest.find(&click);
        let next_pixel = rest.find(PIXEL_START);
        match (next_click, next_pixel) {
            (None, None) => break,
            (Some(c), p) if p.is_none_or(|p| c < p) => {
                s.push_str(&rest[..c]);
                let after = &rest[c + click.len()..];
                let len = after.bytes().take_while(|&b| is_token_byte(b)).count();
                let token = &after[..len];
                if token.starts_with("AQNrMQ") {
                    // The corpus's fake "already tracked" link: kept as it is.
                    s.push_str(&click);
                    rest = after;
                    continue;
                }
                let claims = verify(keyring, token, m, TokenKind::Click);
                let kind = if claims.honeypot { "honeypot" } else { "click" };
                s.push_str(&format!("⟦{kind}|{}|{}⟧", claims.link_id, claims.url));
                ids.push(claims.link_id);
                rest = &after[len..];
            }
            (_, Some(p)) => {
                s.push_str(&rest[..p]);
                let after = &rest[p + PIXEL_START.len()..];
                let len = after.bytes().take_while(|&b| is_token_byte(b)).count();
                verify(keyring, &after[..len], m, TokenKind::Open);
                assert!(after[len..].starts_with(PIXEL_END), "pixel attributes");
                s.push_str("⟦pixel⟧");
                pixels += 1;
                rest = &after[len + PIXEL_END.len()..];
            }
            (Some(_), None) => unreachable!(),
        }
    }
    s.push_str(rest);
    assert_eq!(pixels, 1, "exactly one pixel");
    (s, ids)
}

/// Link elements' `href` values as html5ever decodes them, in document order, the inside of
/// conditional comments included; and the first `<base href>`.
fn links_by_html5ever(html: &str) -> (Vec<String>, Option<String>) {
    fn walk(doc: &Html, out: &mut Vec<String>, base: &mut Option<String>, outer: bool) {
        for node in doc.tree.root().descendants() {
            match node.value() {
                Node::Element(e) => {
                    let name = e.name();
                    if name == "base" && outer && base.is_none() {
                        *base = e.attr("href").map(str::to_owned);
                    }
                    if name == "a" || name == "area" || name.contains(':') {
                        if let Some(href) = e.attr("href") {
                            out.push(href.to_owned());
                        }
                    }
                }
                Node::Comment(c) if c.trim_start().starts_with("[if") => {
                    walk(&Html::parse_fragment(c), out, base, false);
                }
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    let mut base = None;
    walk(&Html::parse_document(html), &mut out, &mut base, true);
    (out, base)
}

/// Where a browser goes for this decoded `href`.
fn browser_destination(href: &str, base: Option<&url::Url>) -> String {
    let href = href.trim_matches(|c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c'));
    let has_scheme = href
        .split_once(':')
        .is_some_and(|(s, _)| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphabetic()));
    match base {
        Some(b) if !has_scheme => b.join(href).unwrap().to_string(),
        _ => href.to_owned(),
    }
}

#[test]
fn corpus_matches_expectations_and_a_second_parser() {
    let keyring = keyring();
    let a = message("contact-1", "msg-1");
    let b = message("contact-2", "msg-2");
    for path in corpus() {
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let input = std::fs::read_to_string(&path).unwrap();
        let expected =
            std::fs::read_to_string(path.with_file_name(name.replace(".html", ".expected.html")))
                .unwrap();
        let template = Template::compile(&input, BASE).unwrap();
        let out_a = template.render(&keyring, &a).unwrap();
        let out_b = template.render(&keyring, &b).unwrap();

        // 1. Byte for byte against the hand-written expectation.
        let (norm_a, ids_a) = normalise(&keyring, &out_a, &a);
        let (norm_b, ids_b) = normalise(&keyring, &out_b, &b);
        assert_eq!(norm_a, expected, "{name}: recipient a");
        assert_eq!(norm_b, expected, "{name}: recipient b");
        // 3. Same link ids, different tokens.
        assert!(!ids_a.is_empty(), "{name}: no tracked link");
        assert_eq!(ids_a, ids_b, "{name}: link ids differ across recipients");
        assert_ne!(out_a, out_b, "{name}");

        // 2. A second parser.
        let (links_in, base) = links_by_html5ever(&input);
        let (links_out, _) = links_by_html5ever(&out_a);
        assert_eq!(links_in.len(), links_out.len(), "{name}: link count");
        let base = base.and_then(|b| url::Url::parse(b.trim()).ok());
        let mut rewritten = 0;
        for (i, (before, after)) in links_in.iter().zip(&links_out).enumerate() {
            match after.strip_prefix(&format!("{BASE}/c/")) {
                Some(token) if !token.starts_with("AQNrMQ") => {
                    let claims = verify(&keyring, token, &a, TokenKind::Click);
                    assert_eq!(
                        claims.url,
                        browser_destination(before, base.as_ref()),
                        "{name}: link {}",
                        i + 1
                    );
                    rewritten += 1;
                }
                _ => assert_eq!(before, after, "{name}: untouched link {} changed", i + 1),
            }
        }
        assert_eq!(rewritten, ids_a.len(), "{name}");
        assert_eq!(template.summary().tracked, rewritten, "{name}");
    }
}

#[test]
fn skip_reasons_are_counted() {
    let input = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/fragment.html"),
    )
    .unwrap();
    let s = Template::compile(&input, BASE).unwrap().summary();
    assert_eq!(s.links, 10);
    assert_eq!(s.tracked, 2);
    assert_eq!(s.skipped(Skip::Refused), 2);
    assert_eq!(s.skipped(Skip::Sms), 1);
    assert_eq!(s.skipped(Skip::OtherScheme), 1);
    assert_eq!(s.skipped(Skip::Relative), 1);
    assert_eq!(s.skipped(Skip::Unsubscribe), 1);
    assert_eq!(s.skipped(Skip::Empty), 1);
    assert_eq!(s.skipped(Skip::AlreadyTracked), 1);
    assert_eq!(
        s.to_string(),
        "10 links, 2 tracked; left as they are: 1 empty, 1 sms, 1 other_scheme, 1 relative, \
         1 unsubscribe, 1 already_tracked, 2 refused"
    );
}

#[test]
fn no_body_puts_the_pixel_last_and_body_puts_it_before_the_end_tag() {
    let keyring = keyring();
    let m = message("c", "m");
    let out = Template::compile("<p>hi</p>", BASE)
        .unwrap()
        .render(&keyring, &m)
        .unwrap();
    assert!(out.starts_with("<p>hi</p><img src=\"https://t.example.com/o/"));
    let out = Template::compile("<body><p>hi</p></BODY >\n", BASE)
        .unwrap()
        .render(&keyring, &m)
        .unwrap();
    assert!(out.starts_with("<body><p>hi</p><img src="));
    assert!(out.ends_with("padding:0\"></BODY >\n"), "{out}");
}

#[test]
fn bad_link_ids_and_base_urls_are_refused() {
    assert!(matches!(
        Template::compile("<a href='https://x.example/' data-link-id=''>x</a>", BASE),
        Err(openclick_rewrite::RewriteError::LinkId { position: 1 })
    ));
    assert!(Template::compile("<p></p>", "not a url").is_err());
    assert!(Template::compile("<p></p>", "https://t.example.com/?q").is_err());
}

/// The click tokens in `out`, in order, verified and decoded (found by their URL prefix, not
/// through the rewriter's link list).
fn click_claims(keyring: &Keyring, out: &str, m: &Message<'_>) -> Vec<Claims> {
    let click = format!("{BASE}/c/");
    out.match_indices(&click)
        .map(|(at, _)| {
            let after = &out[at + click.len()..];
            let len = after.bytes().take_while(|&b| is_token_byte(b)).count();
            verify(keyring, &after[..len], m, TokenKind::Click)
        })
        .collect()
}

#[test]
fn honeypot_marker_signs_the_flag_and_is_removed() {
    let keyring = keyring();
    let m = message("c", "m");
    let html = "<body><a href=\"https://shop.example.com/a\">A</a>\n\
                <a data-honeypot href='https://shop.example.com/trap?x=1&amp;y=2' tabindex=\"-1\">&#8203;</a>\n\
                <!--[if mso]><v:roundrect href=\"https://shop.example.com/b\" DATA-HONEYPOT=\"\"></v:roundrect><![endif]-->\n\
                <a href=\"https://shop.example.com/c\" data-link-id=\"c\">C</a></body>";
    let template = Template::compile(html, BASE).unwrap();
    let out = template.render(&keyring, &m).unwrap();
    let got: Vec<(String, String, bool)> = click_claims(&keyring, &out, &m)
        .into_iter()
        .map(|c| (c.link_id, c.url, c.honeypot))
        .collect();
    let want = [
        ("l1", "https://shop.example.com/a", false),
        ("l2", "https://shop.example.com/trap?x=1&y=2", true),
        ("l3", "https://shop.example.com/b", true),
        ("c", "https://shop.example.com/c", false),
    ]
    .map(|(i, u, h)| (i.to_owned(), u.to_owned(), h));
    assert_eq!(got, want);
    // The marker is an instruction to the rewriter: gone from the output, nothing else is.
    assert!(!out.to_ascii_lowercase().contains("data-honeypot"), "{out}");
    assert!(out.contains("<a href=\"https://t.example.com/c/"), "{out}");
    assert!(out.contains("' tabindex=\"-1\">&#8203;</a>"), "{out}");
    let s = template.summary();
    assert_eq!((s.links, s.tracked, s.honeypot), (4, 4, 2));
    assert_eq!(s.to_string(), "4 links, 4 tracked (2 honeypot)");
}

#[test]
fn a_honeypot_link_that_would_not_be_tracked_is_refused() {
    for (html, position, reason) in [
        ("<a href='mailto:a@example.com' data-honeypot>x</a>", 1, "mailto"),
        (
            "<a href='https://x.example/'>x</a><a href='https://x.example/t' data-honeypot data-notrack>x</a>",
            2,
            "notrack",
        ),
        ("<a href='https://x.example/unsubscribe' data-honeypot>x</a>", 1, "unsubscribe"),
        ("<a href='/relative' data-honeypot>x</a>", 1, "relative"),
    ] {
        match Template::compile(html, BASE) {
            Err(openclick_rewrite::RewriteError::Honeypot { position: p, reason: r }) => {
                assert_eq!((p, r), (position, reason), "{html}")
            }
            other => panic!("{html}: {other:?}"),
        }
    }
}
