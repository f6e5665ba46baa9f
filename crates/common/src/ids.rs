//! The one rule for ids a person can be opted out by: tenant, campaign and contact ids.
//!
//! Tokens may carry any UTF-8 id up to 255 bytes (`docs/token-v1.md`), but an id the
//! suppression set cannot hold is an id nobody can opt out: so the same rule is checked when
//! the suppression set or its admin API takes an id, when `openclick sign` mints a token, and
//! when the edge reads a verified token (a token whose ids break it produces no event).
//!
//! The rule: 1 to 255 bytes, no control characters; a tenant id also holds no `/` or `:`,
//! which delimit suppression record keys.

/// Longest id, in bytes (the token format's limit).
pub const MAX_ID_LEN: usize = 255;

/// Which id is checked (the tenant's rule is stricter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdKind {
    /// A tenant id.
    Tenant,
    /// A campaign id.
    Campaign,
    /// A contact id.
    Contact,
    /// A list id (a mailing list of a tenant: the scope of a list unsubscribe). No `/`: it
    /// delimits the contact-in-list record key.
    List,
}

impl IdKind {
    fn name(self) -> &'static str {
        match self {
            IdKind::Tenant => "tenant id",
            IdKind::Campaign => "campaign id",
            IdKind::Contact => "contact id",
            IdKind::List => "list id",
        }
    }
}

/// Why an id breaks the rule. The message names the kind of id, never the id itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdError(String);

impl std::fmt::Display for IdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for IdError {}

/// Checks one id against the rule.
#[inline]
pub fn check_id(kind: IdKind, id: &str) -> Result<(), IdError> {
    if id.is_empty() || id.len() > MAX_ID_LEN || id.chars().any(char::is_control) {
        return Err(IdError(format!(
            "{} must be 1..={MAX_ID_LEN} bytes without control characters",
            kind.name()
        )));
    }
    if kind == IdKind::Tenant && id.contains(['/', ':']) {
        return Err(IdError(format!(
            "{} must not contain '/' or ':'",
            kind.name()
        )));
    }
    if kind == IdKind::List && id.contains('/') {
        return Err(IdError(format!("{} must not contain '/'", kind.name())));
    }
    Ok(())
}

/// Whether a verified token's ids can be opted out by: tenant and contact pass the rule, and
/// the campaign does when it is not empty (a message outside any campaign has none).
#[inline]
pub fn opt_out_able(tenant: &str, campaign: &str, contact: &str) -> bool {
    check_id(IdKind::Tenant, tenant).is_ok()
        && check_id(IdKind::Contact, contact).is_ok()
        && (campaign.is_empty() || check_id(IdKind::Campaign, campaign).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule() {
        assert!(check_id(IdKind::Contact, "c-42@example.com/x").is_ok());
        assert!(check_id(IdKind::Contact, &"é".repeat(127)).is_ok()); // 254 bytes
        assert!(check_id(IdKind::Contact, &"x".repeat(255)).is_ok());
        assert!(check_id(IdKind::Contact, &"x".repeat(256)).is_err());
        assert!(check_id(IdKind::Contact, "").is_err());
        assert!(check_id(IdKind::Contact, "a\0b").is_err());
        assert!(check_id(IdKind::Contact, "a\u{85}b").is_err(), "C1 control");
        assert!(check_id(IdKind::Tenant, "acme/eu").is_err());
        assert!(check_id(IdKind::Tenant, "acme:eu").is_err());
        assert!(check_id(IdKind::Campaign, "spring/1:a").is_ok());
        let e = check_id(IdKind::Contact, "secret\n")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn opt_out_ability() {
        assert!(opt_out_able("acme", "", "c1"));
        assert!(opt_out_able("acme", "spring", "c1"));
        assert!(!opt_out_able("acme", "spring", ""));
        assert!(!opt_out_able("", "spring", "c1"));
        assert!(!opt_out_able("acme", "spr\ting", "c1"));
    }
}
