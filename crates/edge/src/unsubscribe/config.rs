//! The routes' settings: [`UnsubscribeConfig`], and each tenant's [`Brand`] (its
//! `--unsubscribe-brand` parsing and colour check).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// A tenant's look on the confirmation page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Brand {
    /// The sender's name, shown as the page's heading.
    pub name: String,
    /// The button's colour, `#rgb` or `#rrggbb`.
    pub accent: String,
    /// The page's background colour, `#rgb` or `#rrggbb`.
    pub background: String,
}

impl Default for Brand {
    fn default() -> Self {
        Brand {
            name: "Email preferences".into(),
            accent: "#1f5fbf".into(),
            background: "#f4f5f7".into(),
        }
    }
}

/// A `--unsubscribe-brand` value that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "unsubscribe brand: {0} (expected TENANT=NAME|#ACCENT|#BACKGROUND, colours #rgb or #rrggbb)"
)]
pub struct BrandError(&'static str);

impl Brand {
    /// Parses `TENANT=NAME|#ACCENT|#BACKGROUND` (the colours optional, the defaults').
    pub fn parse(spec: &str) -> Result<(String, Brand), BrandError> {
        let (tenant, rest) = spec.split_once('=').ok_or(BrandError("no '='"))?;
        openclick_common::ids::check_id(openclick_common::ids::IdKind::Tenant, tenant.trim())
            .map_err(|_| BrandError("bad tenant id"))?;
        let mut parts = rest.split('|');
        let name = parts.next().unwrap_or_default().trim();
        if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
            return Err(BrandError(
                "the name must be 1..=100 bytes without control characters",
            ));
        }
        let d = Brand::default();
        let colour = |c: Option<&str>, default: String| match c.map(str::trim) {
            None | Some("") => Ok(default),
            Some(c) if is_colour(c) => Ok(c.to_ascii_lowercase()),
            Some(_) => Err(BrandError("bad colour")),
        };
        let accent = colour(parts.next(), d.accent)?;
        let background = colour(parts.next(), d.background)?;
        if parts.next().is_some() {
            return Err(BrandError("too many '|' parts"));
        }
        Ok((
            tenant.trim().to_owned(),
            Brand {
                name: name.to_owned(),
                accent,
                background,
            },
        ))
    }
}

fn is_colour(c: &str) -> bool {
    c.strip_prefix('#')
        .is_some_and(|h| matches!(h.len(), 3 | 6) && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Settings of the unsubscribe routes.
#[derive(Clone, Debug)]
pub struct UnsubscribeConfig {
    /// How long after an unsubscribe its undo works (default 15 minutes).
    pub undo_window_ms: i64,
    /// How long a POST waits for the writer's acknowledgement before spooling (default 2 s).
    pub ack_timeout: Duration,
    /// The spool file (see the module docs).
    pub spool_path: PathBuf,
    /// Each tenant's page look.
    pub brands: HashMap<String, Brand>,
    /// The look of tenants without one.
    pub default_brand: Brand,
}

impl UnsubscribeConfig {
    /// Defaults, spooling to `spool_path`.
    pub fn new(spool_path: PathBuf) -> Self {
        UnsubscribeConfig {
            undo_window_ms: 15 * 60 * 1000,
            ack_timeout: Duration::from_secs(2),
            spool_path,
            brands: HashMap::new(),
            default_brand: Brand::default(),
        }
    }
}
