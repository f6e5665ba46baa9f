//! The redirect kill switch's admin routes, beside the suppression API and behind the same
//! bearer token:
//!
//! - `GET /v1/blocks`: every block in force on this replica (JSON array);
//! - `PUT /v1/blocks/tenant/{tenant}[/campaign/{campaign}|/link/{link_id}]?reason=...`;
//! - `PUT /v1/blocks/host/{host}?reason=...` (every tenant, the host and its subdomains);
//! - `GET` and `DELETE` on the same paths: this replica's view, and lifting the block.
//!
//! A `reason` is required (a ticket or report reference; never personal data); the time is
//! the request's. Writes go through the [`openclick_suppress::SuppressionWriter`] to the
//! replicated control topic and answer once acknowledged; every replica, this one included,
//! applies them when its follower reads them back (within the same propagation delay as an
//! opt-out).

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use openclick_http::Body;
use openclick_suppress::blocks::{Block, BlockChange, BlockScope};

use crate::suppress_api::{error, json, pct_decode, query_param, SuppressApi};

/// Route prefix.
pub const PREFIX: &str = "/v1/blocks";

/// Answers one request under [`PREFIX`].
pub async fn handle(api: Option<&SuppressApi>, req: Request<Incoming>) -> Response<Body> {
    let Some(api) = api else {
        return error(
            StatusCode::NOT_FOUND,
            "the admin API is not enabled on this edge",
        );
    };
    if let Err(r) = api.authorized(&req) {
        return *r;
    }
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let rest = path.strip_prefix(PREFIX).unwrap_or("");
    if rest.is_empty() || rest == "/" {
        if req.method() != Method::GET {
            return error(StatusCode::METHOD_NOT_ALLOWED, "use GET to list blocks");
        }
        let list: Vec<serde_json::Value> = api
            .blocks
            .list()
            .iter()
            .map(|(scope, b)| describe(scope, b))
            .collect();
        return json(StatusCode::OK, serde_json::Value::from(list).to_string());
    }
    let scope = match scope_from_path(rest.trim_start_matches('/'))
        .and_then(|s| s.validated().map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(msg) => return error(StatusCode::BAD_REQUEST, &msg),
    };
    match *req.method() {
        Method::GET | Method::HEAD => match api.blocks.get(&scope) {
            Some(b) => json(StatusCode::OK, describe(&scope, &b).to_string()),
            None => json(
                StatusCode::NOT_FOUND,
                serde_json::json!({"blocked": false}).to_string(),
            ),
        },
        Method::PUT => {
            let Some(reason) = query_param(&query, "reason").filter(|r| !r.trim().is_empty())
            else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "a block needs a reason (?reason=...)",
                );
            };
            if reason.len() > 512 || reason.chars().any(char::is_control) {
                return error(
                    StatusCode::BAD_REQUEST,
                    "reason: at most 512 bytes, no control characters",
                );
            }
            let block = Block {
                reason,
                at_ms: openclick_common::now_ms(),
            };
            write(
                api,
                BlockChange {
                    scope,
                    block: Some(block),
                },
            )
            .await
        }
        Method::DELETE => write(api, BlockChange { scope, block: None }).await,
        _ => error(StatusCode::METHOD_NOT_ALLOWED, "use GET, PUT or DELETE"),
    }
}

async fn write(api: &SuppressApi, change: BlockChange) -> Response<Body> {
    let Some(writer) = api.writer() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "this edge has no control-topic writer",
        );
    };
    match writer
        .write_blocks(std::slice::from_ref(&change), "admin-api")
        .await
    {
        Ok(()) => json(
            StatusCode::OK,
            serde_json::json!({ "published": 1 }).to_string(),
        ),
        Err(e) => {
            tracing::warn!(error = %e, kind = change.scope.kind(), "redirect block write failed");
            let status = if e.is_retryable() {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::BAD_REQUEST
            };
            error(status, &e.to_string())
        }
    }
}

/// `tenant/{t}`, `tenant/{t}/campaign/{c}`, `tenant/{t}/link/{l}`, `host/{h}`, segments
/// percent-decoded.
fn scope_from_path(rest: &str) -> Result<BlockScope, String> {
    let seg: Vec<&str> = rest.split('/').collect();
    let dec = |s: &str| pct_decode(s).ok_or_else(|| "bad percent-encoding".to_string());
    Ok(match seg.as_slice() {
        ["tenant", t] => BlockScope::Tenant { tenant: dec(t)? },
        ["tenant", t, "campaign", c] => BlockScope::Campaign {
            tenant: dec(t)?,
            campaign: dec(c)?,
        },
        ["tenant", t, "link", l] => BlockScope::Link {
            tenant: dec(t)?,
            link: dec(l)?,
        },
        ["host", h] => BlockScope::Host { host: dec(h)? },
        _ => return Err("expected tenant/{t}[/campaign/{c}|/link/{l}] or host/{host}".to_string()),
    })
}

fn describe(scope: &BlockScope, b: &Block) -> serde_json::Value {
    let mut v = serde_json::json!({
        "blocked": true,
        "kind": scope.kind(),
        "reason": b.reason,
        "at_ms": b.at_ms,
    });
    match scope {
        BlockScope::Tenant { tenant } => v["tenant"] = tenant.as_str().into(),
        BlockScope::Campaign { tenant, campaign } => {
            v["tenant"] = tenant.as_str().into();
            v["campaign"] = campaign.as_str().into();
        }
        BlockScope::Link { tenant, link } => {
            v["tenant"] = tenant.as_str().into();
            v["link"] = link.as_str().into();
        }
        BlockScope::Host { host } => v["host"] = host.as_str().into(),
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_to_scopes() {
        assert_eq!(
            scope_from_path("tenant/acme/link/hero").unwrap(),
            BlockScope::Link {
                tenant: "acme".into(),
                link: "hero".into()
            }
        );
        assert_eq!(
            scope_from_path("host/Evil.Example")
                .unwrap()
                .validated()
                .unwrap(),
            BlockScope::Host {
                host: "evil.example".into()
            }
        );
        assert_eq!(
            scope_from_path("tenant/acme/campaign/spring%201").unwrap(),
            BlockScope::Campaign {
                tenant: "acme".into(),
                campaign: "spring 1".into()
            }
        );
        for bad in [
            "",
            "tenant",
            "tenant/a/b",
            "host/a/b",
            "tenant/a/link",
            "x/y",
        ] {
            assert!(scope_from_path(bad).is_err(), "{bad}");
        }
    }
}
