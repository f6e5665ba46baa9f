//! Errors of compiling and rendering a template.

use openclick_token::TokenError;

/// Why a template could not be compiled or rendered. Messages never carry a recipient's ids.
#[derive(thiserror::Error, Debug)]
pub enum RewriteError {
    /// The base URL is not an absolute http(s) URL without query or fragment.
    #[error("base URL: {0}")]
    BaseUrl(String),
    /// The HTML parser gave up (it accepts any input; this is a resource limit).
    #[error("HTML parser: {0}")]
    Parse(String),
    /// A `data-link-id` is empty, longer than 255 bytes or holds control characters.
    #[error("link {position}: data-link-id must be 1..=255 bytes without control characters")]
    LinkId {
        /// The link's 1-based position in document order.
        position: usize,
    },
    /// A link marked `data-honeypot` is not tracked (a `mailto:`, `data-notrack`, an
    /// unsubscribe link, a refused destination...): the honeypot would not exist.
    #[error("link {position}: marked data-honeypot but not tracked ({reason})")]
    Honeypot {
        /// The link's 1-based position in document order.
        position: usize,
        /// Why the link is left as it is ([`Skip::as_str`](crate::Skip::as_str)).
        reason: &'static str,
    },
    /// The token crate refused the claims (an id too long).
    #[error("signing: {0}")]
    Sign(#[from] TokenError),
    /// A parser position did not match the source (a bug; nothing is written).
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl RewriteError {
    /// Whether trying again with the same input may succeed (never: every error is about the
    /// input or the settings).
    pub fn is_retryable(&self) -> bool {
        false
    }
}
