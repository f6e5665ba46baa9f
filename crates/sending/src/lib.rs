//! The sending side as a service: a sending pipeline signs tracking URLs and tracks HTML over
//! HTTP, without a subprocess per campaign, on an internal listener (`serve
//! --sending-listen`) apart from the public tracking listener and the admin plane.
//!
//! - `POST /v1/sign`: NDJSON claims in (the form of `openclick sign --batch`, [`claims`]; a
//!   line may omit `tenant_id`), one URL per line out, in order.
//! - `POST /v1/rewrite`: a JSON object with the HTML and the ids in, the tracked HTML out; with
//!   `recipients`, one NDJSON record per recipient (the `openclick rewrite --recipients` output).
//! - Both take `?base_url=` (the tracking domain, e.g. `https://t.example.com`), else the
//!   configured default.
//!
//! **Tenants.** Every request carries `Authorization: Bearer TOKEN`; the token says which tenant
//! the caller is ([`TenantTokens`], one token per tenant, only SHA-256 digests kept). A caller
//! signs only for its own tenant (a line naming another tenant is refused) and with that
//! tenant's own keys when it has some (`openclick_token::KeyStore`), so a sending service holds
//! one bearer token and never a key. The keys are read through a closure on every request, so
//! a rotation the edge sees applies here too.
//!
//! **Isolation.** The work runs on tokio's blocking pool, and [`server`] serves the listener on
//! a thread and runtime of its own: a large campaign does not delay tracking hits or health
//! checks. Bodies are capped at [`MAX_BODY_BYTES`], sign requests at [`MAX_SIGN_LINES`] lines.
//!
//! Errors are JSON `{"error": "...", "line": N}` (line only for sign), with 400 (bad request
//! shape), 401 (no or unknown bearer token), 403 (a line for another tenant, or no key for the
//! tenant), 413 (too large), 422 (claims the token rules refuse, with the line number). No id
//! or URL is ever logged.

pub mod claims;
pub mod routes;
pub mod server;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openclick_common::ids::{check_id, IdKind};
use openclick_token::KeyStore;
use sha2::{Digest, Sha256};

/// Largest request body.
pub const MAX_BODY_BYTES: usize = 16 << 20;
/// Most lines in one sign request.
pub const MAX_SIGN_LINES: usize = 100_000;
/// Shortest bearer token accepted in a tokens file.
pub const MIN_TOKEN_LEN: usize = 16;

/// Why a tokens file was refused. Never retryable (fix the file). Messages give line numbers,
/// never a token.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    /// A line that is not `TENANT:TOKEN`, or breaks a rule.
    #[error("line {line}: {why}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// No token at all.
    #[error("no tenant token")]
    Empty,
}

impl TokensError {
    /// Always `false`.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// Which tenant each bearer token stands for. Cheap to clone; [`TenantTokens::set`] replaces
/// the whole table for every holder (rotation without a restart).
#[derive(Clone, Default)]
pub struct TenantTokens(Arc<arc_swap::ArcSwap<HashMap<[u8; 32], Box<str>>>>);

impl std::fmt::Debug for TenantTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantTokens")
            .field("tenants", &self.0.load().len())
            .finish()
    }
}

fn sha256(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

impl TenantTokens {
    /// Parses a tokens file: `TENANT:TOKEN` per line (the first `:` ends the tenant id, which
    /// cannot hold one), blank and `#` lines ignored. A token is at least [`MIN_TOKEN_LEN`]
    /// characters with no whitespace, and belongs to one tenant; a tenant may have several
    /// (rotate by adding the new one, then removing the old).
    pub fn parse(text: &str) -> Result<TenantTokens, TokensError> {
        let mut map = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| TokensError::Line {
                line: i + 1,
                why: why.to_owned(),
            };
            let (tenant, token) = line
                .split_once(':')
                .ok_or_else(|| bad("expected TENANT:TOKEN"))?;
            let (tenant, token) = (tenant.trim(), token.trim());
            check_id(IdKind::Tenant, tenant).map_err(|e| bad(&e.to_string()))?;
            if token.chars().count() < MIN_TOKEN_LEN || token.contains(char::is_whitespace) {
                return Err(bad(&format!(
                    "the token must be at least {MIN_TOKEN_LEN} characters, without whitespace"
                )));
            }
            if map.insert(sha256(token), tenant.into()).is_some() {
                return Err(bad("this token is already given to a tenant"));
            }
        }
        if map.is_empty() {
            return Err(TokensError::Empty);
        }
        Ok(TenantTokens(Arc::new(arc_swap::ArcSwap::from_pointee(map))))
    }

    /// Makes `other`'s table the one every holder of `self` uses.
    pub fn set(&self, other: TenantTokens) {
        self.0.store(other.0.load_full());
    }

    /// How many tokens are configured.
    pub fn len(&self) -> usize {
        self.0.load().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The tenant a presented token stands for. The lookup is by SHA-256 digest, so its timing
    /// says nothing about any configured token.
    pub fn tenant(&self, token: &str) -> Option<Box<str>> {
        self.0.load().get(&sha256(token)).cloned()
    }
}

/// The keys in force, read on every request.
pub type KeySource = Arc<dyn Fn() -> Arc<KeyStore> + Send + Sync>;

/// Routes and results counted (bounded label values).
const ROUTES: [&str; 3] = ["sign", "rewrite", "other"];
const RESULTS: [&str; 7] = [
    "ok",
    "bad_request",
    "unauthorized",
    "forbidden",
    "too_large",
    "unprocessable",
    "error",
];

/// The API's counters, kept in atomics and exported at scrape time.
#[derive(Default)]
pub(crate) struct Counters {
    requests: [[AtomicU64; RESULTS.len()]; ROUTES.len()],
    tokens: [AtomicU64; ROUTES.len()],
}

fn index(all: &[&str], v: &str) -> usize {
    all.iter().position(|x| *x == v).unwrap_or(all.len() - 1)
}

impl Counters {
    pub(crate) fn request(&self, route: &str, result: &str) {
        self.requests[index(&ROUTES, route)][index(&RESULTS, result)]
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn tokens(&self, route: &str, n: u64) {
        self.tokens[index(&ROUTES, route)].fetch_add(n, Ordering::Relaxed);
    }
}

/// The API's state.
pub struct SendingApi {
    pub(crate) counters: Arc<Counters>,
    pub(crate) keys: KeySource,
    pub(crate) tokens: TenantTokens,
    pub(crate) base_url: Option<String>,
    pub(crate) now_ms: fn() -> i64,
}

impl std::fmt::Debug for SendingApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendingApi")
            .field("tokens", &self.tokens)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl SendingApi {
    /// An API signing with `keys`, authenticating with `tokens`; `base_url` is the tracking
    /// base used when a request gives none (`None`: requests must give `?base_url=`).
    pub fn new(keys: KeySource, tokens: TenantTokens, base_url: Option<String>) -> SendingApi {
        SendingApi {
            counters: Arc::default(),
            keys,
            tokens,
            base_url,
            now_ms: openclick_common::now_ms,
        }
    }
}

impl SendingApi {
    /// Emits the counters (`openclick_sending_*`) through the `metrics` macros.
    pub fn export_metrics(&self) {
        for (r, route) in ROUTES.iter().enumerate() {
            for (i, result) in RESULTS.iter().enumerate() {
                let n = self.counters.requests[r][i].load(Ordering::Relaxed);
                if n > 0 {
                    metrics::counter!(routes::REQUESTS, "route" => *route, "result" => *result)
                        .absolute(n);
                }
            }
            if r < 2 {
                metrics::counter!(routes::TOKENS, "route" => *route)
                    .absolute(self.counters.tokens[r].load(Ordering::Relaxed));
            }
        }
    }
}

/// Describes the series this crate emits (`# HELP`), once per process.
pub fn describe_metrics() {
    metrics::describe_counter!(
        routes::REQUESTS,
        "Sending API requests, by route (sign, rewrite, other) and result (ok, bad_request, \
         unauthorized, forbidden, too_large, unprocessable, error)."
    );
    metrics::describe_counter!(
        routes::TOKENS,
        "Tokens minted by the sending API, by route (sign: URLs; rewrite: links and pixels)."
    );
}
