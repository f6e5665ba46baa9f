//! The crate's error type.

/// Why signing, verifying or loading keys failed.
///
/// Messages never contain key secrets. Verification errors that quote token content (only
/// [`TokenError::UnknownKey`]) quote bytes already checked to be `[A-Za-z0-9_-]`, so they are safe
/// to log.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum TokenError {
    /// The token is not a well-formed token of a supported version (bad base64url, too short,
    /// bad key id bytes, truncated or trailing fields, invalid UTF-8 ...).
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The token is longer than [`crate::MAX_TOKEN_LEN`] characters; it was not decoded.
    #[error("token too long: {len} characters (max {max})")]
    TooLong {
        /// Length of the offered token, in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The tag does not match: the token was tampered with, or signed by a different secret
    /// under the same key id.
    #[error("bad token signature")]
    BadSignature,
    /// The token names a key id this keyring does not hold (never held, or dropped by rotation).
    #[error("unknown signing key id {0:?}")]
    UnknownKey(String),
    /// Signing for a tenant that has no keys of its own, with no global keyring
    /// ([`crate::KeyStore`]).
    #[error("no signing key for this tenant")]
    NoTenantKey,
    /// The token's version byte is not one this build understands.
    #[error("unsupported token version {0}")]
    UnsupportedVersion(u8),
    /// A click destination is not an absolute http(s) URL acceptable for a redirect.
    #[error("invalid destination URL: {0}")]
    InvalidDestination(&'static str),
    /// A claim field is longer than the format allows (checked when signing).
    #[error("{field} too long: {len} bytes (max {max})")]
    FieldTooLong {
        /// The claim field name (`tenant_id`, `url`, ...).
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// Claims that cannot be signed as given, e.g. an open carrying a `link_id` or `url`.
    #[error("invalid claims: {0}")]
    InvalidClaims(&'static str),
    /// A key is unusable: bad id, short secret, duplicate id in a keyring.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// A keyring spec string (`"k2:SECRET,k1:SECRET"`) could not be parsed.
    #[error("invalid keyring spec: {0}")]
    InvalidSpec(String),
    /// Reading or writing a keyring file failed.
    #[error("keyring file i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl TokenError {
    /// Whether retrying the same operation could succeed. Always `false`.
    ///
    /// Signing and verifying are pure functions of their input and the keyring: a token that
    /// failed to verify fails again, and claims that could not be signed are a caller bug. The only
    /// environmental failure, [`TokenError::Io`], comes from loading a keyring file at start-up,
    /// where the right response is to fix the file or its permissions, not to loop.
    pub fn is_retryable(&self) -> bool {
        false
    }

    /// A short, stable, bounded label for this error, suitable as a metric label value:
    /// one of `malformed`, `too_long`, `bad_signature`, `unknown_key`, `no_tenant_key`, `unsupported_version`,
    /// `invalid_destination`, `field_too_long`, `invalid_claims`, `invalid_key`, `invalid_spec`,
    /// `io`.
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::Malformed(_) => "malformed",
            TokenError::TooLong { .. } => "too_long",
            TokenError::BadSignature => "bad_signature",
            TokenError::UnknownKey(_) => "unknown_key",
            TokenError::NoTenantKey => "no_tenant_key",
            TokenError::UnsupportedVersion(_) => "unsupported_version",
            TokenError::InvalidDestination(_) => "invalid_destination",
            TokenError::FieldTooLong { .. } => "field_too_long",
            TokenError::InvalidClaims(_) => "invalid_claims",
            TokenError::InvalidKey(_) => "invalid_key",
            TokenError::InvalidSpec(_) => "invalid_spec",
            TokenError::Io(_) => "io",
        }
    }
}
