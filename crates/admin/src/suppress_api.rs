//! The suppression admin API, on the admin listener.
//!
//! - `PUT /v1/suppressions/{tenant}/{contact}[?reason=opt_out]`: suppress a contact (the reason
//!   may also come as a JSON body `{"reason":"erase"}`; default `opt_out`).
//! - `DELETE /v1/suppressions/{tenant}/{contact}`: lift it.
//! - `GET /v1/suppressions/{tenant}/{contact}`: this replica's view (`200` suppressed with its
//!   reason, `404` not).
//! - The same three on `/v1/suppressions/{tenant}` (a whole tenant) and
//!   `/v1/suppressions/{tenant}?campaign={campaign}` (one campaign).
//! - `POST /v1/suppressions/batch`: NDJSON, one change per line:
//!   `{"tenant":"t","contact":"c","action":"add","reason":"bounce"}` (`action` defaults to `add`;
//!   omit `contact` for a tenant, give `campaign` instead for a campaign). Every line is
//!   validated first: one bad line publishes nothing (`400` names the line).
//!
//! Path segments are percent-decoded (a contact id may contain `/` as `%2F`).
//!
//! Every route needs `Authorization: Bearer <token>`; the token is compared in constant time
//! (SHA-256 of both sides, then `subtle`). Without a configured token the API refuses to run
//! (`403`); a missing or wrong token gets `401` and nothing is read or written.
//!
//! Writes go through a [`SuppressionWriter`] (in production the compacted Kafka topic) and answer
//! once it acknowledged them; this replica, like every other, applies them when its follower
//! reads them back. Nothing here holds a lock: the handler awaits only the acknowledgement.
//! Batch lines are parsed by the one suppression-input parser ([`openclick_suppress::parse`]).

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use openclick_common::now_ms;
use openclick_http::Body;
use openclick_suppress::blocks::BlockList;
use openclick_suppress::parse::parse_json_line;
use openclick_suppress::{Change, Reason, Scope, SuppressError, SuppressionSet, SuppressionWriter};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Route prefix.
pub const PREFIX: &str = "/v1/suppressions";
/// Largest batch body accepted.
pub const MAX_BATCH_BYTES: usize = 32 << 20;
/// Largest number of changes in one batch.
pub const MAX_BATCH_LINES: usize = 100_000;
const MAX_SINGLE_BODY: usize = 4096;

/// The admin API's bearer token, shared with whoever may replace it (`serve` re-reads
/// `--admin-token-file` on SIGHUP). Only its SHA-256 is kept.
#[derive(Clone, Default)]
pub struct BearerToken(Arc<arc_swap::ArcSwapOption<[u8; 32]>>);

impl BearerToken {
    /// `None` or empty: no token (the API refuses every request).
    pub fn new(token: Option<&str>) -> BearerToken {
        let t = BearerToken::default();
        t.set(token);
        t
    }

    /// Replaces the token (`None` or empty: the API refuses every request from now on).
    pub fn set(&self, token: Option<&str>) {
        self.0
            .store(token.filter(|t| !t.is_empty()).map(|t| Arc::new(sha256(t))));
    }

    /// Whether a token is configured.
    pub fn is_configured(&self) -> bool {
        self.0.load().is_some()
    }
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerToken")
            .field("configured", &self.is_configured())
            .finish()
    }
}

/// The API's state: the token, the set and block list it reads, the writer it publishes
/// through.
pub struct SuppressApi {
    token: BearerToken,
    set: Arc<SuppressionSet>,
    writer: Option<Arc<dyn SuppressionWriter>>,
    pub(crate) blocks: Arc<BlockList>,
}

impl std::fmt::Debug for SuppressApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SuppressApi")
            .field("token_configured", &self.token.is_configured())
            .finish_non_exhaustive()
    }
}

impl SuppressApi {
    /// `token`: the bearer token (`None` or empty: the API refuses every request). `writer`:
    /// where writes go (`None`: writes answer 503).
    pub fn new(
        token: Option<&str>,
        set: Arc<SuppressionSet>,
        writer: Option<Arc<dyn SuppressionWriter>>,
    ) -> Self {
        SuppressApi {
            token: BearerToken::new(token),
            set,
            writer,
            blocks: Arc::new(BlockList::new()),
        }
    }

    /// Serves the redirect block routes (`/v1/blocks/...`) over this list (the one the
    /// pipeline checks and the follower fills).
    pub fn with_blocks(mut self, blocks: Arc<BlockList>) -> Self {
        self.blocks = blocks;
        self
    }

    /// The token handle: [`BearerToken::set`] replaces the token of this API.
    pub fn bearer_token(&self) -> BearerToken {
        self.token.clone()
    }

    /// The writer, if any.
    pub(crate) fn writer(&self) -> Option<&Arc<dyn SuppressionWriter>> {
        self.writer.as_ref()
    }

    pub(crate) fn authorized(&self, req: &Request<Incoming>) -> Result<(), Box<Response<Body>>> {
        let want = self.token.0.load_full();
        let Some(want) = want.as_deref() else {
            return Err(Box::new(json(
                StatusCode::FORBIDDEN,
                r#"{"error":"no admin token configured (--admin-token / OPENCLICK_ADMIN_TOKEN): the suppression API is disabled"}"#.into(),
            )));
        };
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(|t| sha256(t.trim()));
        match given {
            Some(g) if bool::from(g.ct_eq(want)) => Ok(()),
            _ => {
                let mut r = json(
                    StatusCode::UNAUTHORIZED,
                    r#"{"error":"missing or wrong bearer token"}"#.into(),
                );
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"openclick-admin\""),
                );
                Err(Box::new(r))
            }
        }
    }
}

fn sha256(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

pub(crate) fn json(status: StatusCode, body: String) -> Response<Body> {
    openclick_http::json(status, body)
}

pub(crate) fn error(status: StatusCode, msg: &str) -> Response<Body> {
    json(status, serde_json::json!({ "error": msg }).to_string())
}

/// Answers one request under [`PREFIX`]. `api` is `None` when the edge runs without one.
pub async fn handle(api: Option<&SuppressApi>, req: Request<Incoming>) -> Response<Body> {
    let Some(api) = api else {
        return error(
            StatusCode::NOT_FOUND,
            "the suppression API is not enabled on this edge",
        );
    };
    if let Err(r) = api.authorized(&req) {
        return *r;
    }
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let rest = path
        .strip_prefix(PREFIX)
        .and_then(|r| r.strip_prefix('/'))
        .unwrap_or("");
    if rest == "batch" {
        if req.method() != Method::POST {
            return error(StatusCode::METHOD_NOT_ALLOWED, "use POST for a batch");
        }
        return batch(api, req).await;
    }
    let scope = match scope_from_path(rest, &query) {
        Ok(s) => s,
        Err(msg) => return error(StatusCode::BAD_REQUEST, &msg),
    };
    if let Err(e) = scope.validate() {
        return error(StatusCode::BAD_REQUEST, &e.to_string());
    }
    match *req.method() {
        Method::GET | Method::HEAD => {
            let body = match api.set.get(&scope) {
                Some(r) => (
                    StatusCode::OK,
                    serde_json::json!({"suppressed": true, "reason": r.as_str(),
                        "caught_up": api.set.is_caught_up()}),
                ),
                None => (
                    StatusCode::NOT_FOUND,
                    serde_json::json!({"suppressed": false, "caught_up": api.set.is_caught_up()}),
                ),
            };
            json(body.0, body.1.to_string())
        }
        Method::PUT => {
            let mut reason = query_param(&query, "reason");
            if reason.is_none() {
                match read_body(req, MAX_SINGLE_BODY).await {
                    Ok(b) if b.iter().all(u8::is_ascii_whitespace) => {}
                    Ok(b) => match serde_json::from_slice::<PutBody>(&b) {
                        Ok(p) => reason = p.reason,
                        Err(e) => {
                            return error(StatusCode::BAD_REQUEST, &format!("body: {e}"));
                        }
                    },
                    Err(r) => return *r,
                }
            }
            let reason = match reason.as_deref().unwrap_or("opt_out").parse::<Reason>() {
                Ok(r) => r,
                Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
            };
            write(
                api,
                vec![Change {
                    scope,
                    reason: Some(reason),
                    at_ms: now_ms(),
                }],
            )
            .await
        }
        Method::DELETE => {
            write(
                api,
                vec![Change {
                    scope,
                    reason: None,
                    at_ms: now_ms(),
                }],
            )
            .await
        }
        _ => error(StatusCode::METHOD_NOT_ALLOWED, "use GET, PUT or DELETE"),
    }
}

#[derive(serde::Deserialize)]
struct PutBody {
    #[serde(default)]
    reason: Option<String>,
}

async fn batch(api: &SuppressApi, req: Request<Incoming>) -> Response<Body> {
    let body = match read_body(req, MAX_BATCH_BYTES).await {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return error(StatusCode::BAD_REQUEST, "body is not UTF-8");
    };
    let now = now_ms();
    let mut changes = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if changes.len() == MAX_BATCH_LINES {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("at most {MAX_BATCH_LINES} changes per batch"),
            );
        }
        match parse_json_line(line, now) {
            Ok(c) => changes.push(c),
            Err(e) => {
                return error(StatusCode::BAD_REQUEST, &format!("line {}: {e}", i + 1));
            }
        }
    }
    write(api, changes).await
}

async fn write(api: &SuppressApi, changes: Vec<Change>) -> Response<Body> {
    let Some(writer) = &api.writer else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "this edge has no suppression writer",
        );
    };
    match writer.write(&changes, "admin-api").await {
        Ok(()) => json(
            StatusCode::OK,
            serde_json::json!({ "published": changes.len() }).to_string(),
        ),
        Err(e) => {
            // The error names no contact: Kafka errors and validation messages only.
            tracing::warn!(error = %e, changes = changes.len(), "suppression write failed");
            let status = match &e {
                SuppressError::Invalid(_) | SuppressError::Parse(_) => StatusCode::BAD_REQUEST,
                e if e.is_retryable() => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error(status, &e.to_string())
        }
    }
}

async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, Box<Response<Body>>> {
    openclick_http::read_body(req.into_body(), limit)
        .await
        .map_err(|e| Box::new(error(e.status(), &e.to_string())))
}

/// `{tenant}` or `{tenant}/{contact}` (percent-decoded), plus `?campaign=` on a tenant.
fn scope_from_path(rest: &str, query: &str) -> Result<Scope, String> {
    let (tenant, contact) = match rest.split_once('/') {
        Some((t, c)) => (t, Some(c)),
        None => (rest, None),
    };
    let tenant = pct_decode(tenant).ok_or("bad percent-encoding in the tenant id")?;
    let campaign = query_param(query, "campaign");
    Ok(match (contact, campaign) {
        (Some(c), None) => Scope::Contact {
            tenant,
            contact: pct_decode(c).ok_or("bad percent-encoding in the contact id")?,
        },
        (None, Some(campaign)) => Scope::Campaign { tenant, campaign },
        (None, None) => Scope::Tenant { tenant },
        (Some(_), Some(_)) => return Err("a campaign applies to a tenant path only".into()),
    })
}

pub(crate) fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Decodes `%XX` escapes of a path segment; `None` on a malformed escape (a `%` not followed
/// by two hex digits, which `percent-encoding` would keep as it is) or a result that is not
/// UTF-8.
pub fn pct_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let malformed = b.iter().enumerate().any(|(i, &c)| {
        c == b'%'
            && !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    });
    if malformed {
        return None;
    }
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_to_scopes() {
        assert_eq!(
            scope_from_path("acme/a%2Fb%40x.com", "").unwrap(),
            Scope::Contact {
                tenant: "acme".into(),
                contact: "a/b@x.com".into()
            }
        );
        assert_eq!(
            scope_from_path("acme", "").unwrap(),
            Scope::Tenant {
                tenant: "acme".into()
            }
        );
        assert_eq!(
            scope_from_path("acme", "campaign=spring%201").unwrap(),
            Scope::Campaign {
                tenant: "acme".into(),
                campaign: "spring 1".into()
            }
        );
        assert!(scope_from_path("acme/c", "campaign=x").is_err());
        assert!(scope_from_path("acme/%zz", "").is_err());
    }
}
