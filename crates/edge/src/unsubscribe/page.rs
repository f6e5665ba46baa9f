//! The HTML pages of `/u/` (plain HTML, no script, in the tenant's colours) and the HTTP
//! response every answer is built into.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use openclick_http::Body;

use super::{Brand, UnsubReply};

/// Escapes text for HTML content and double-quoted attributes.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Black or white, whichever reads better on `bg` (WCAG relative luminance).
pub(super) fn text_on(bg: &str) -> &'static str {
    let h = bg.trim_start_matches('#');
    let full: String = if h.len() == 3 {
        h.chars().flat_map(|c| [c, c]).collect()
    } else {
        h.to_owned()
    };
    let ch = |i: usize| {
        let v = f64::from(u8::from_str_radix(&full[i..i + 2], 16).unwrap_or(0)) / 255.0;
        if v <= 0.03928 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    };
    let l = 0.2126 * ch(0) + 0.7152 * ch(2) + 0.0722 * ch(4);
    // Contrast with white (1.05 / (l + 0.05)) against black ((l + 0.05) / 0.05).
    if 1.05 / (l + 0.05) >= (l + 0.05) / 0.05 {
        "#ffffff"
    } else {
        "#000000"
    }
}

fn page(brand: &Brand, title: &str, inner: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<meta name=\"robots\" content=\"noindex\"><title>{title} - {name}</title><style>\
body{{margin:0;background:{bg};color:#1b1b1b;font:1.0625rem/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif}}\
main{{max-width:30rem;margin:3rem auto;padding:2rem;background:#fff;border-radius:.5rem;box-shadow:0 1px 3px #0003}}\
h1{{font-size:1.25rem;margin:0 0 1rem}}h2{{font-size:1.5rem;margin:0 0 .5rem}}\
button{{font:inherit;font-weight:600;background:{accent};color:{on};border:0;border-radius:.375rem;padding:.75rem 1.5rem;cursor:pointer}}\
button:focus-visible{{outline:3px solid #1b1b1b;outline-offset:3px}}\
.secondary{{background:#fff;color:#1b1b1b;border:2px solid #1b1b1b}}p.small{{font-size:.9375rem;color:#4a4a4a}}\
</style></head><body><main><h1>{name}</h1>{inner}</main></body></html>\n",
        title = esc(title),
        name = esc(&brand.name),
        bg = brand.background,
        accent = brand.accent,
        on = text_on(&brand.accent),
        inner = inner,
    )
}

fn what(list_id: &str) -> String {
    if list_id.is_empty() {
        "all email from this sender".to_owned()
    } else {
        format!("the list \u{201c}{}\u{201d}", esc(list_id))
    }
}

/// The GET page: a question and a button that POSTs the one-click body (plus `via=page`).
pub fn confirm_page(brand: &Brand, token: &str, list_id: &str, already: bool) -> String {
    let note = if already {
        "<p class=\"small\">This address is already unsubscribed; confirming again changes nothing.</p>"
    } else {
        ""
    };
    page(
        brand,
        "Unsubscribe",
        &format!(
            "<h2>Unsubscribe?</h2><p>Stop receiving {what}.</p>{note}\
<form method=\"post\" action=\"/u/{token}\">\
<input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
<input type=\"hidden\" name=\"via\" value=\"page\">\
<button type=\"submit\">Unsubscribe</button></form>",
            what = what(list_id),
            token = esc(token),
        ),
    )
}

/// The page after the button: done, and an undo button while the window lasts.
pub fn done_page(brand: &Brand, list_id: &str, undo_token: Option<&str>) -> String {
    let undo = match undo_token {
        Some(t) => format!(
            "<form method=\"post\" action=\"/u/{}\"><input type=\"hidden\" name=\"action\" value=\"undo\">\
<p class=\"small\">Did not mean to? You can undo this for a short while.</p>\
<button type=\"submit\" class=\"secondary\">Undo</button></form>",
            esc(t)
        ),
        None => String::new(),
    };
    page(
        brand,
        "Unsubscribed",
        &format!(
            "<h2 role=\"status\">You are unsubscribed</h2><p>You will no longer receive {}.</p>{undo}",
            what(list_id)
        ),
    )
}

pub(super) fn resubscribed_page(brand: &Brand, list_id: &str) -> String {
    page(
        brand,
        "Subscribed again",
        &format!(
            "<h2 role=\"status\">You are subscribed again</h2><p>The unsubscribe from {} was undone.</p>",
            what(list_id)
        ),
    )
}

pub(super) fn message_page(brand: &Brand, title: &str, text: &str) -> String {
    page(
        brand,
        title,
        &format!("<h2>{}</h2><p>{}</p>", esc(title), esc(text)),
    )
}

/// Builds the HTTP response: no cookie, no redirect, never cached.
pub fn response(reply: UnsubReply) -> Response<Body> {
    let (status, ctype, body) = match reply {
        UnsubReply::Html(h) => (StatusCode::OK, "text/html; charset=utf-8", h),
        UnsubReply::OneClickOk => (
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "unsubscribed\n".to_owned(),
        ),
        UnsubReply::Refused(_, status, text) => {
            let ctype = if text.starts_with("<!doctype") {
                "text/html; charset=utf-8"
            } else {
                "text/plain; charset=utf-8"
            };
            (status, ctype, text)
        }
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        http::HeaderName::from_static("x-robots-tag"),
        HeaderValue::from_static("noindex"),
    );
    if status == StatusCode::METHOD_NOT_ALLOWED {
        h.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD, POST"));
    }
    r
}
