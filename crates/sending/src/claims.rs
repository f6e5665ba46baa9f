//! Claims from their JSON form (one object per NDJSON line: `openclick sign --batch` and
//! `POST /v1/sign`), with the checks every way of signing applies, and the URL a token goes in.
//!
//! The form is the token vectors' claim form (docs/token-v1.md, `tests/vectors/token-v1.json`):
//!
//! ```json
//! {"kind":"click","tenant_id":"t1","campaign_id":"c1","message_id":"m1","contact_id":"x1",
//!  "channel":"email","issued_at_ms":1717000000000,"link_id":"l1","url":"https://shop.example/"}
//! ```
//!
//! `channel` defaults to `email`, `issued_at_ms` (a number or a decimal string) to now,
//! `link_id`/`url` to empty (opens), and `honeypot` to `false`: `"honeypot":true` makes a click a
//! honeypot link (docs/token-v1.md §2, click flags; an open with it is refused when signed).
//! Unknown fields are refused, so a misspelt claim is an error rather than a silently different
//! token. Ids follow the id rule (`openclick_common::ids`): an id nobody could be opted out by is
//! refused.

use std::borrow::Cow;

use openclick_common::ids::{check_id, IdError, IdKind};
use openclick_token::{Channel, Claims, TokenError, TokenKind, MAX_ID_LEN};
use serde::Deserialize;

/// Why claims were refused. Never retryable: the same input fails again. Messages name the
/// field, never an id's value (contact ids are personal data).
#[derive(Debug, thiserror::Error)]
pub enum ClaimsError {
    /// Not a JSON object of the claim form (unknown field, wrong type, missing field).
    #[error("not a claims object: {0}")]
    Json(#[from] serde_json::Error),
    /// `kind` is not `open` or `click`.
    #[error("kind must be open or click")]
    Kind,
    /// `channel` is not one the format knows.
    #[error("channel: {0}")]
    Channel(String),
    /// `issued_at_ms` given as a string that is not a decimal integer.
    #[error("issued_at_ms must be an integer")]
    IssuedAt,
    /// An id breaks the id rule.
    #[error("{field}: {source}")]
    Id {
        /// Which claim.
        field: &'static str,
        /// The rule broken.
        source: IdError,
    },
    /// No `tenant_id`, and none implied (the CLI needs one on every line).
    #[error("missing field `tenant_id`")]
    NoTenant,
    /// `tenant_id` differs from the tenant the caller is authenticated as.
    #[error("tenant_id is not the tenant of the bearer token")]
    OtherTenant,
    /// The token rules refuse the claims (a destination, a length).
    #[error(transparent)]
    Token(#[from] TokenError),
}

impl ClaimsError {
    /// Always `false`: claims that were refused are refused again.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// The claims of one line. Strings borrow from the line unless they hold escapes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line<'a> {
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    tenant_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    campaign_id: Cow<'a, str>,
    #[serde(borrow)]
    message_id: Cow<'a, str>,
    #[serde(borrow)]
    contact_id: Cow<'a, str>,
    #[serde(borrow, default)]
    channel: Option<Cow<'a, str>>,
    #[serde(default)]
    issued_at_ms: Option<Millis>,
    #[serde(borrow, default)]
    link_id: Cow<'a, str>,
    #[serde(borrow, default)]
    url: Cow<'a, str>,
    #[serde(default)]
    honeypot: bool,
}

/// `issued_at_ms` as a JSON number or a decimal string (JavaScript senders past 2^53 ms).
#[derive(Deserialize)]
#[serde(untagged)]
enum Millis {
    Number(i64),
    Text(String),
}

/// Whose claims a line may carry.
#[derive(Clone, Copy, Debug)]
pub enum TenantRule<'a> {
    /// Every line names its tenant (the CLI, holding the keys itself).
    Required,
    /// The caller is this tenant: a line may omit `tenant_id` or repeat it, never name another.
    Is(&'a str),
}

/// Parses and checks one JSON line of claims. `now_ms` is the issue time of a line without one.
pub fn parse_line(text: &str, tenant: TenantRule<'_>, now_ms: i64) -> Result<Claims, ClaimsError> {
    let l: Line<'_> = serde_json::from_str(text)?;
    let kind = match &*l.kind {
        "open" => TokenKind::Open,
        "click" => TokenKind::Click,
        _ => return Err(ClaimsError::Kind),
    };
    let tenant_id = match (tenant, l.tenant_id) {
        (TenantRule::Required, Some(t)) => t.into_owned(),
        (TenantRule::Required, None) => return Err(ClaimsError::NoTenant),
        (TenantRule::Is(me), None) => me.to_owned(),
        (TenantRule::Is(me), Some(t)) if t == me => t.into_owned(),
        (TenantRule::Is(_), Some(_)) => return Err(ClaimsError::OtherTenant),
    };
    let issued_at_ms = match l.issued_at_ms {
        None => now_ms,
        Some(Millis::Number(n)) => n,
        Some(Millis::Text(s)) => s.parse().map_err(|_| ClaimsError::IssuedAt)?,
    };
    let mut claims = checked_claims(
        kind,
        tenant_id,
        l.campaign_id.into_owned(),
        l.message_id.into_owned(),
        l.contact_id.into_owned(),
        l.channel.as_deref(),
        issued_at_ms,
        l.link_id.into_owned(),
        l.url.into_owned(),
    )?;
    claims.honeypot = l.honeypot;
    Ok(claims)
}

fn id(kind: IdKind, field: &'static str, value: &str) -> Result<(), ClaimsError> {
    check_id(kind, value).map_err(|source| ClaimsError::Id { field, source })
}

/// The claims of one URL, with the checks every way of signing applies: ids follow the id rule
/// (`openclick_common::ids`: an id nobody could be opted out by is refused, as the edge would
/// never track it), and the channel is one the format knows (default `email`). The token rules
/// (destination, lengths, an open with `honeypot`) are checked when signing. The claims are not
/// a honeypot link: set [`Claims::honeypot`] on a click for one.
#[allow(clippy::too_many_arguments)]
pub fn checked_claims(
    kind: TokenKind,
    tenant_id: String,
    campaign_id: String,
    message_id: String,
    contact_id: String,
    channel: Option<&str>,
    issued_at_ms: i64,
    link_id: String,
    url: String,
) -> Result<Claims, ClaimsError> {
    id(IdKind::Tenant, "tenant", &tenant_id)?;
    id(IdKind::Contact, "contact", &contact_id)?;
    id(IdKind::Campaign, "campaign", &campaign_id)?;
    let channel: Channel = match channel {
        None => Channel::Email,
        Some(c) => c
            .parse()
            .map_err(|e: openclick_token::ParseChannelError| ClaimsError::Channel(e.0))?,
    };
    Ok(Claims {
        kind,
        tenant_id,
        campaign_id,
        message_id,
        contact_id,
        channel,
        issued_at_ms,
        link_id,
        url,
        honeypot: false,
        list_id: String::new(),
        undo: false,
    })
}

/// A recipient of a rewritten email: the contact follows the id rule, the message id is 1 to
/// 255 bytes.
pub fn check_recipient(contact_id: &str, message_id: &str) -> Result<(), ClaimsError> {
    id(IdKind::Contact, "contact", contact_id)?;
    if message_id.is_empty() || message_id.len() > MAX_ID_LEN {
        return Err(ClaimsError::Token(TokenError::InvalidClaims(
            "message id must be 1..=255 bytes",
        )));
    }
    Ok(())
}

/// `BASE/o/TOKEN.gif` for an open, `BASE/c/TOKEN` for a click (a trailing `/` on the base is
/// dropped). A `Display`, so a batch writes it without building a `String` per URL.
pub fn tracked_url<'a>(
    base_url: &'a str,
    kind: TokenKind,
    token: &'a str,
) -> impl std::fmt::Display + 'a {
    struct Url<'a>(&'a str, TokenKind, &'a str);
    impl std::fmt::Display for Url<'_> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            let base = self.0.trim_end_matches('/');
            match self.1 {
                TokenKind::Open => write!(f, "{base}/o/{}.gif", self.2),
                TokenKind::Click => write!(f, "{base}/c/{}", self.2),
                TokenKind::Unsubscribe => write!(f, "{base}/u/{}", self.2),
            }
        }
    }
    Url(base_url, kind, token)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: &str = r#"{"kind":"open","campaign_id":"c","message_id":"m","contact_id":"x"}"#;

    #[test]
    fn the_tenant_rule() {
        let now = 1_700_000_000_000;
        assert!(matches!(
            parse_line(OPEN, TenantRule::Required, now),
            Err(ClaimsError::NoTenant)
        ));
        let c = parse_line(OPEN, TenantRule::Is("acme"), now).unwrap();
        assert_eq!((c.tenant_id.as_str(), c.issued_at_ms), ("acme", now));
        let named = OPEN.replace("{", r#"{"tenant_id":"acme","#);
        parse_line(&named, TenantRule::Is("acme"), now).unwrap();
        parse_line(&named, TenantRule::Required, now).unwrap();
        assert!(matches!(
            parse_line(&named, TenantRule::Is("globex"), now),
            Err(ClaimsError::OtherTenant)
        ));
    }

    #[test]
    fn honeypot_is_an_optional_boolean() {
        let click = r#"{"kind":"click","campaign_id":"c","message_id":"m","contact_id":"x","link_id":"hp","url":"https://e.com/"}"#;
        let plain = parse_line(click, TenantRule::Is("acme"), 0).unwrap();
        assert!(!plain.honeypot);
        let with = |v: &str| click.replace(r#""url""#, &format!(r#""honeypot":{v},"url""#));
        let trap = parse_line(&with("true"), TenantRule::Is("acme"), 0).unwrap();
        assert!(trap.honeypot);
        assert_eq!(
            trap,
            Claims {
                honeypot: true,
                list_id: String::new(),
                undo: false,
                ..plain.clone()
            }
        );
        assert_eq!(
            parse_line(&with("false"), TenantRule::Is("acme"), 0).unwrap(),
            plain
        );
        for bad in ["1", r#""true""#, "null"] {
            assert!(
                matches!(
                    parse_line(&with(bad), TenantRule::Is("acme"), 0),
                    Err(ClaimsError::Json(_))
                ),
                "{bad}"
            );
        }
        // An open may say it; signing refuses it (opens carry no flags).
        let open = parse_line(
            &OPEN.replace("{", r#"{"honeypot":true,"#),
            TenantRule::Is("acme"),
            0,
        )
        .unwrap();
        let keyring = openclick_token::Keyring::new(
            openclick_token::Key::new("k1", &[7; 32]).unwrap(),
            vec![],
        )
        .unwrap();
        assert!(matches!(
            keyring.sign(&open),
            Err(TokenError::InvalidClaims(_))
        ));
        let token = keyring.sign(&trap).unwrap();
        assert!(keyring.verify(&token).unwrap().claims.honeypot);
    }

    #[test]
    fn refusals_name_the_field_not_the_value() {
        let e = parse_line(
            &OPEN.replace(r#""x""#, r#""bad\u0007contact""#),
            TenantRule::Is("acme"),
            0,
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("contact:"), "{text}");
        assert!(!text.contains("bad"), "{text}");
        assert!(matches!(
            parse_line(&OPEN.replace("open", "view"), TenantRule::Is("a"), 0),
            Err(ClaimsError::Kind)
        ));
        assert!(matches!(
            parse_line(&OPEN.replace("kind", "knid"), TenantRule::Is("a"), 0),
            Err(ClaimsError::Json(_))
        ));
    }
}
