//! The routes: authentication, body limits, and the two handlers. Handlers run on tokio's
//! blocking pool (signing and HTML rewriting are CPU work).

use std::fmt::Write as _;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use openclick_http::Body;
use openclick_rewrite::{Message, Template};
use openclick_token::{Channel, KeyStore};
use serde::Deserialize;

use crate::claims::{check_recipient, parse_line, tracked_url, ClaimsError, TenantRule};
use crate::{SendingApi, MAX_BODY_BYTES, MAX_SIGN_LINES};

/// Counter: requests by route and result.
pub const REQUESTS: &str = "openclick_sending_requests_total";
/// Counter: tokens minted, by route.
pub const TOKENS: &str = "openclick_sending_tokens_total";

/// An answer with the result label it is counted under.
struct Answer {
    response: Response<Body>,
    result: &'static str,
}

fn error(status: StatusCode, message: &str, line: Option<usize>) -> Answer {
    let mut body = serde_json::json!({ "error": message });
    if let Some(n) = line {
        body["line"] = n.into();
    }
    let result = match status {
        StatusCode::BAD_REQUEST | StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_FOUND => {
            "bad_request"
        }
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        _ => "error",
    };
    let mut response = openclick_http::json(status, body.to_string());
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"openclick-sending\""),
        );
    }
    Answer { response, result }
}

fn ok(content_type: &'static str, body: impl Into<Bytes>) -> Answer {
    let mut response = Response::new(Body::new(body.into()));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Answer {
        response,
        result: "ok",
    }
}

/// Answers one request.
pub async fn handle(api: &std::sync::Arc<SendingApi>, req: Request<Incoming>) -> Response<Body> {
    let route = match req.uri().path() {
        "/v1/sign" => "sign",
        "/v1/rewrite" => "rewrite",
        _ => "other",
    };
    let answer = answer(api, route, req).await;
    api.counters.request(route, answer.result);
    answer.response
}

async fn answer(
    api: &std::sync::Arc<SendingApi>,
    route: &'static str,
    req: Request<Incoming>,
) -> Answer {
    if route == "other" {
        return error(
            StatusCode::NOT_FOUND,
            "no such route: POST /v1/sign or /v1/rewrite",
            None,
        );
    }
    if req.method() != Method::POST {
        let mut a = error(StatusCode::METHOD_NOT_ALLOWED, "use POST", None);
        a.response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return a;
    }
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(tenant) = bearer.and_then(|t| api.tokens.tenant(t)) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "missing or unknown bearer token",
            None,
        );
    };
    let base_url = form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "base_url")
        .map(|(_, v)| v.into_owned())
        .or_else(|| api.base_url.clone());
    let Some(base_url) = base_url else {
        return error(
            StatusCode::BAD_REQUEST,
            "no base_url: give ?base_url=https://your-tracking-domain",
            None,
        );
    };
    let body = match openclick_http::read_body(req.into_body(), MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(e) => return error(e.status(), &e.to_string(), None),
    };
    let keys = (api.keys)();
    let now_ms = (api.now_ms)();
    let counters = api.counters.clone();
    let work = move || {
        let mut minted = 0;
        let answer = match route {
            "sign" => sign(&keys, &tenant, &base_url, &body, now_ms, &mut minted),
            _ => rewrite(&keys, &tenant, &base_url, &body, now_ms, &mut minted),
        };
        counters.tokens(route, minted);
        answer
    };
    match tokio::task::spawn_blocking(work).await {
        Ok(a) => a,
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal error", None),
    }
}

fn claims_status(e: &ClaimsError) -> StatusCode {
    match e {
        ClaimsError::OtherTenant => StatusCode::FORBIDDEN,
        ClaimsError::Token(openclick_token::TokenError::NoTenantKey) => StatusCode::FORBIDDEN,
        ClaimsError::Json(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// `POST /v1/sign`: every line or none (the first bad line is the answer, with its number).
fn sign(
    keys: &KeyStore,
    tenant: &str,
    base_url: &str,
    body: &[u8],
    now_ms: i64,
    minted: &mut u64,
) -> Answer {
    let Ok(text) = std::str::from_utf8(body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "the body must be UTF-8 NDJSON",
            None,
        );
    };
    if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
        return error(
            StatusCode::BAD_REQUEST,
            "base_url must be an absolute http(s) URL",
            None,
        );
    }
    let Some(keyring) = keys.keyring_for(tenant) else {
        return error(
            StatusCode::FORBIDDEN,
            "no signing key for this tenant",
            None,
        );
    };
    let mut out = String::with_capacity(text.len());
    let mut signed = 0u64;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if signed as usize >= MAX_SIGN_LINES {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("more than {MAX_SIGN_LINES} lines"),
                Some(i + 1),
            );
        }
        let signed_line = parse_line(line, TenantRule::Is(tenant), now_ms)
            .and_then(|c| Ok((c.kind, keyring.sign(&c)?)));
        match signed_line {
            Ok((kind, token)) => {
                let _ = writeln!(out, "{}", tracked_url(base_url, kind, &token));
                signed += 1;
            }
            Err(e) => return error(claims_status(&e), &e.to_string(), Some(i + 1)),
        }
    }
    *minted = signed;
    ok("text/plain; charset=utf-8", out)
}

/// The body of `POST /v1/rewrite`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RewriteRequest {
    /// Optional: must be the caller's tenant.
    #[serde(default)]
    tenant_id: Option<String>,
    campaign_id: String,
    html: String,
    #[serde(default)]
    message_id: Option<String>,
    #[serde(default)]
    contact_id: Option<String>,
    #[serde(default)]
    recipients: Option<Vec<Recipient>>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    sent_at_ms: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Recipient {
    contact_id: String,
    message_id: String,
}

/// `POST /v1/rewrite`: one recipient (HTML out) or many (NDJSON out, one record per recipient,
/// in order; the first bad recipient is the answer, with its 1-based index as `line`).
fn rewrite(
    keys: &KeyStore,
    tenant: &str,
    base_url: &str,
    body: &[u8],
    now_ms: i64,
    minted: &mut u64,
) -> Answer {
    let req: RewriteRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("not a rewrite request: {e}"),
                None,
            )
        }
    };
    if req.tenant_id.as_deref().is_some_and(|t| t != tenant) {
        return error(
            StatusCode::FORBIDDEN,
            "tenant_id is not the tenant of the bearer token",
            None,
        );
    }
    if let Err(e) =
        openclick_common::ids::check_id(openclick_common::ids::IdKind::Campaign, &req.campaign_id)
    {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("campaign: {e}"),
            None,
        );
    }
    let channel: Channel = match req.channel.as_deref().unwrap_or("email").parse() {
        Ok(c) => c,
        Err(e) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("channel: {}", e.0),
                None,
            )
        }
    };
    let Some(keyring) = keys.keyring_for(tenant) else {
        return error(
            StatusCode::FORBIDDEN,
            "no signing key for this tenant",
            None,
        );
    };
    let template = match Template::compile(&req.html, base_url) {
        Ok(t) => t,
        Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string(), None),
    };
    let per_message = template.summary().tracked as u64 + 1;
    let sent_at_ms = req.sent_at_ms.unwrap_or(now_ms);
    let message = |contact_id, message_id| Message {
        tenant_id: tenant,
        campaign_id: &req.campaign_id,
        message_id,
        contact_id,
        channel,
        sent_at_ms,
    };
    let Some(recipients) = &req.recipients else {
        let (contact, msg) = (
            req.contact_id.as_deref().unwrap_or_default(),
            req.message_id.as_deref().unwrap_or_default(),
        );
        if let Err(e) = check_recipient(contact, msg) {
            return error(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string(), None);
        }
        return match template.render(keyring, &message(contact, msg)) {
            Ok(html) => {
                *minted = per_message;
                ok("text/html; charset=utf-8", html)
            }
            Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string(), None),
        };
    };
    if req.contact_id.is_some() || req.message_id.is_some() {
        return error(
            StatusCode::BAD_REQUEST,
            "give contact_id and message_id, or recipients, not both",
            None,
        );
    }
    let mut out = Vec::with_capacity(recipients.len() * (req.html.len() + 256));
    let mut html = String::with_capacity(req.html.len() * 2);
    for (i, r) in recipients.iter().enumerate() {
        if let Err(e) = check_recipient(&r.contact_id, &r.message_id) {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                &e.to_string(),
                Some(i + 1),
            );
        }
        html.clear();
        if let Err(e) =
            template.render_into(keyring, &message(&r.contact_id, &r.message_id), &mut html)
        {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                &e.to_string(),
                Some(i + 1),
            );
        }
        // The `openclick rewrite --recipients` record, written field by field (no copy of
        // the HTML into a JSON value).
        out.extend_from_slice(b"{\"contact\":");
        let _ = serde_json::to_writer(&mut out, &r.contact_id);
        out.extend_from_slice(b",\"message\":");
        let _ = serde_json::to_writer(&mut out, &r.message_id);
        out.extend_from_slice(b",\"html\":");
        let _ = serde_json::to_writer(&mut out, html.as_str());
        out.push(b'}');
        out.push(b'\n');
    }
    *minted = per_message * recipients.len() as u64;
    ok("application/x-ndjson", out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openclick_token::{Key, Keyring};

    fn keys() -> KeyStore {
        KeyStore::new(
            None,
            [(
                "acme".to_owned(),
                Keyring::new(Key::new("a1", &[3u8; 32]).unwrap(), vec![]).unwrap(),
            )],
        )
        .unwrap()
    }

    #[test]
    fn sign_is_all_or_nothing_and_names_the_line() {
        let good = r#"{"kind":"open","campaign_id":"c","message_id":"m","contact_id":"x"}"#;
        let other = good.replace("{", r#"{"tenant_id":"globex","#);
        let base = "https://t.example";
        let m = &mut 0;
        let both = format!("{good}\n{other}\n");
        let a = sign(&keys(), "acme", base, both.as_bytes(), 0, m);
        assert_eq!(a.response.status(), StatusCode::FORBIDDEN);
        let a = sign(&keys(), "globex", base, good.as_bytes(), 0, m);
        assert_eq!(
            a.response.status(),
            StatusCode::FORBIDDEN,
            "no key for globex"
        );
        assert_eq!(*m, 0, "nothing minted");
        let two = format!("{good}\n\n{good}\n");
        let a = sign(&keys(), "acme", base, two.as_bytes(), 0, m);
        assert_eq!(a.response.status(), StatusCode::OK);
        assert_eq!(*m, 2);
    }
}
