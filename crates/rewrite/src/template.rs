//! A compiled template: the source cut into literal pieces and the places to fill in.

use std::fmt;
use std::ops::Range;

use openclick_token::{validate_destination, Channel, Claims, Keyring, TokenKind, MAX_ID_LEN};

use crate::scan::{self, Quote, Site};
use crate::RewriteError;

/// Why a link is left as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Skip {
    /// `href` without a value, or only whitespace.
    Empty,
    /// `#fragment`: a place in the message itself.
    Anchor,
    /// `mailto:`.
    Mailto,
    /// `tel:`.
    Tel,
    /// `sms:` or `smsto:`.
    Sms,
    /// Any other scheme (`javascript:`, `data:`, `ftp:`, a merge tag such as `{{x}}:`...).
    OtherScheme,
    /// A relative link in a document without `<base href>` (merge tags like `{{url}}` too).
    Relative,
    /// Marked `data-notrack` (the attribute is removed).
    NoTrack,
    /// An unsubscribe link: marked `data-unsubscribe` (the attribute is removed), or its
    /// decoded `href` contains `unsubscribe` in any letter case. Unsubscribing must work
    /// without the tracker, and is never counted as a click.
    Unsubscribe,
    /// Already a tracking URL of this edge (`BASE/c/...` or `BASE/o/...`, over http or https).
    AlreadyTracked,
    /// An http(s) destination the token rules refuse (see
    /// [`openclick_token::validate_destination`]): whitespace, non-ASCII, user info, a
    /// numeric host that is not dotted-decimal IPv4, longer than 2048 bytes...
    Refused,
}

impl Skip {
    /// A short name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::Empty => "empty",
            Skip::Anchor => "anchor",
            Skip::Mailto => "mailto",
            Skip::Tel => "tel",
            Skip::Sms => "sms",
            Skip::OtherScheme => "other_scheme",
            Skip::Relative => "relative",
            Skip::NoTrack => "notrack",
            Skip::Unsubscribe => "unsubscribe",
            Skip::AlreadyTracked => "already_tracked",
            Skip::Refused => "refused",
        }
    }
}

/// What happens to a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Rewritten to a click URL whose token carries `url`.
    Tracked {
        /// The decoded (and, with `<base>`, resolved) destination.
        url: String,
    },
    /// Left as it is.
    Skipped(Skip),
}

/// One link of the template, in document order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// Its link id (`data-link-id`, or `lN` for the Nth link).
    pub id: String,
    /// Lower-cased tag name (`a`, `area`, `v:roundrect`...).
    pub tag: String,
    /// Tracked or why not.
    pub outcome: Outcome,
    /// Marked `data-honeypot`: its click tokens carry the honeypot flag (always tracked:
    /// [`Template::compile`] refuses a honeypot link it would leave as it is).
    pub honeypot: bool,
}

/// One recipient's message: the claims every token of it carries.
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    /// Tenant id.
    pub tenant_id: &'a str,
    /// Campaign id.
    pub campaign_id: &'a str,
    /// Message id.
    pub message_id: &'a str,
    /// Contact id.
    pub contact_id: &'a str,
    /// Channel.
    pub channel: Channel,
    /// When the message is sent, ms since the Unix epoch.
    pub sent_at_ms: i64,
}

#[derive(Clone, Debug)]
enum Piece {
    /// Source bytes, copied.
    Literal(Range<usize>),
    /// A tracked link's new `href` value; unquoted in the source gets quotes.
    Click { link: usize, quote: Quote },
    /// The open pixel.
    Pixel,
}

/// Counts of a template's links, for reports (no URL in it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Links found.
    pub links: usize,
    /// Links rewritten.
    pub tracked: usize,
    /// Of the links rewritten, those marked `data-honeypot`.
    pub honeypot: usize,
    /// Links left as they are, by reason (sorted).
    pub skipped: Vec<(Skip, usize)>,
}

impl Summary {
    /// How many links were skipped for `reason`.
    pub fn skipped(&self, reason: Skip) -> usize {
        self.skipped
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} links, {} tracked", self.links, self.tracked)?;
        if self.honeypot > 0 {
            write!(f, " ({} honeypot)", self.honeypot)?;
        }
        for (i, (reason, n)) in self.skipped.iter().enumerate() {
            let sep = if i == 0 { "; left as they are: " } else { ", " };
            write!(f, "{sep}{n} {}", reason.as_str())?;
        }
        Ok(())
    }
}

/// A template compiled once, rendered per recipient.
#[derive(Clone, Debug)]
pub struct Template {
    source: String,
    pieces: Vec<Piece>,
    links: Vec<Link>,
    /// `BASE/c/`, attribute-escaped.
    click_prefix: String,
    /// `<img src="BASE/o/`, attribute-escaped.
    pixel_prefix: String,
}

/// The pixel's attributes after its URL.
const PIXEL_SUFFIX: &str = ".gif\" width=\"1\" height=\"1\" alt=\"\" style=\"display:block;width:1px;height:1px;border:0;margin:0;padding:0\">";

impl Template {
    /// Parses `html` once and decides every link's fate. `base_url` is the edge as recipients
    /// reach it (`https://t.example.com`, or with a path prefix; a trailing `/` is ignored).
    pub fn compile(html: &str, base_url: &str) -> Result<Template, RewriteError> {
        let base = check_base_url(base_url)?;
        let scan = scan::scan(html)?;
        let doc_base = scan
            .base
            .as_deref()
            .map(htmlize::unescape_attribute)
            .and_then(|b| url::Url::parse(b.trim_matches(is_ascii_ws)).ok())
            .filter(|u| matches!(u.scheme(), "http" | "https"));
        let click = format!("{base}/c/");
        let open = format!("{base}/o/");
        let mut links = Vec::with_capacity(scan.sites.len());
        // (range in the source, what replaces it), in source order once sorted.
        let mut edits: Vec<(Range<usize>, Option<Piece>)> = Vec::new();
        for (i, site) in scan.sites.iter().enumerate() {
            let position = i + 1;
            let id = match &site.link_id {
                Some(raw) => {
                    let id = htmlize::unescape_attribute(raw.as_str()).into_owned();
                    if id.is_empty() || id.len() > MAX_ID_LEN || id.chars().any(char::is_control) {
                        return Err(RewriteError::LinkId { position });
                    }
                    id
                }
                None => format!("l{position}"),
            };
            let outcome = match classify(site, doc_base.as_ref(), &click, &open) {
                Ok(url) => Outcome::Tracked { url },
                Err(skip) if site.honeypot => {
                    return Err(RewriteError::Honeypot {
                        position,
                        reason: skip.as_str(),
                    })
                }
                Err(skip) => Outcome::Skipped(skip),
            };
            if let (Outcome::Tracked { .. }, Some((range, quote))) = (&outcome, &site.value) {
                if html.get(range.clone()) != Some(site.raw_href.as_str()) {
                    return Err(RewriteError::Internal("href position"));
                }
                edits.push((
                    range.clone(),
                    Some(Piece::Click {
                        link: i,
                        quote: *quote,
                    }),
                ));
            }
            for r in &site.removals {
                edits.push((r.clone(), None));
            }
            links.push(Link {
                id,
                tag: site.tag.clone(),
                outcome,
                honeypot: site.honeypot,
            });
        }
        let pixel_at = scan.body_end.unwrap_or(html.len());
        edits.push((pixel_at..pixel_at, Some(Piece::Pixel)));
        edits.sort_by_key(|(r, p)| (r.start, r.end, matches!(p, Some(Piece::Pixel))));
        let mut pieces = Vec::with_capacity(edits.len() * 2 + 1);
        let mut at = 0;
        for (range, piece) in edits {
            if range.start < at || range.end > html.len() {
                return Err(RewriteError::Internal("overlapping edits"));
            }
            if range.start > at {
                pieces.push(Piece::Literal(at..range.start));
            }
            pieces.extend(piece);
            at = range.end;
        }
        if at < html.len() {
            pieces.push(Piece::Literal(at..html.len()));
        }
        Ok(Template {
            source: html.to_owned(),
            pieces,
            links,
            click_prefix: htmlize::escape_attribute(click).into_owned(),
            pixel_prefix: format!("<img src=\"{}", htmlize::escape_attribute(open)),
        })
    }

    /// The links, in document order.
    pub fn links(&self) -> &[Link] {
        &self.links
    }

    /// Counts by outcome.
    pub fn summary(&self) -> Summary {
        let mut s = Summary {
            links: self.links.len(),
            ..Summary::default()
        };
        let mut reasons = std::collections::BTreeMap::new();
        for l in &self.links {
            match l.outcome {
                Outcome::Tracked { .. } => {
                    s.tracked += 1;
                    s.honeypot += usize::from(l.honeypot);
                }
                Outcome::Skipped(r) => *reasons.entry(r).or_insert(0) += 1,
            }
        }
        s.skipped = reasons.into_iter().collect();
        s
    }

    /// One recipient's copy.
    pub fn render(&self, keyring: &Keyring, message: &Message<'_>) -> Result<String, RewriteError> {
        let mut out = String::with_capacity(self.source.len() + self.links.len() * 256 + 512);
        self.render_into(keyring, message, &mut out)?;
        Ok(out)
    }

    /// Appends one recipient's copy to `out` (reuse `out` across recipients to save
    /// allocations). On error `out` may hold part of the copy.
    pub fn render_into(
        &self,
        keyring: &Keyring,
        message: &Message<'_>,
        out: &mut String,
    ) -> Result<(), RewriteError> {
        let mut claims = Claims {
            kind: TokenKind::Open,
            tenant_id: message.tenant_id.to_owned(),
            campaign_id: message.campaign_id.to_owned(),
            message_id: message.message_id.to_owned(),
            contact_id: message.contact_id.to_owned(),
            channel: message.channel,
            issued_at_ms: message.sent_at_ms,
            link_id: String::new(),
            url: String::new(),
            honeypot: false,
            list_id: String::new(),
            undo: false,
        };
        let open_token = keyring.sign(&claims)?;
        claims.kind = TokenKind::Click;
        for piece in &self.pieces {
            match piece {
                Piece::Literal(r) => out.push_str(&self.source[r.clone()]),
                Piece::Click { link, quote } => {
                    let link = &self.links[*link];
                    let Outcome::Tracked { url } = &link.outcome else {
                        return Err(RewriteError::Internal("untracked link in a click piece"));
                    };
                    claims.link_id.clone_from(&link.id);
                    claims.url.clone_from(url);
                    claims.honeypot = link.honeypot;
                    let token = keyring.sign(&claims)?;
                    let q = if *quote == Quote::Unquoted { "\"" } else { "" };
                    out.push_str(q);
                    out.push_str(&self.click_prefix);
                    out.push_str(&token);
                    out.push_str(q);
                }
                Piece::Pixel => {
                    out.push_str(&self.pixel_prefix);
                    out.push_str(&open_token);
                    out.push_str(PIXEL_SUFFIX);
                }
            }
        }
        Ok(())
    }
}

fn is_ascii_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c')
}

/// `base_url` without its trailing `/`, checked: the click URLs it makes must pass the token
/// rules, and there is no query or fragment to append paths to.
fn check_base_url(base_url: &str) -> Result<&str, RewriteError> {
    let base = base_url.trim_end_matches('/');
    if base.contains(['?', '#']) {
        return Err(RewriteError::BaseUrl(
            "must not have a query or fragment".to_owned(),
        ));
    }
    validate_destination(&format!("{base}/c/x"))
        .map_err(|e| RewriteError::BaseUrl(e.to_string()))?;
    Ok(base)
}

/// The destination a tracked link carries, or why it stays as it is.
fn classify(site: &Site, base: Option<&url::Url>, click: &str, open: &str) -> Result<String, Skip> {
    if site.notrack {
        return Err(Skip::NoTrack);
    }
    if site.unsubscribe {
        return Err(Skip::Unsubscribe);
    }
    let decoded = htmlize::unescape_attribute(site.raw_href.as_str());
    let href = decoded.trim_matches(is_ascii_ws);
    if href.is_empty() {
        return Err(Skip::Empty);
    }
    if href.starts_with('#') {
        return Err(Skip::Anchor);
    }
    let dest = match scheme(href) {
        Some(s) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") => {
            href.to_owned()
        }
        Some(s) if s.eq_ignore_ascii_case("mailto") => return Err(Skip::Mailto),
        Some(s) if s.eq_ignore_ascii_case("tel") => return Err(Skip::Tel),
        Some(s) if s.eq_ignore_ascii_case("sms") || s.eq_ignore_ascii_case("smsto") => {
            return Err(Skip::Sms)
        }
        Some(_) => return Err(Skip::OtherScheme),
        None => {
            let Some(base) = base else {
                return Err(Skip::Relative);
            };
            match base.join(href) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => u.into(),
                _ => return Err(Skip::Relative),
            }
        }
    };
    // `http://` and `https://` links to the edge are both its own.
    let rest = after_scheme(&dest);
    if starts_with_ignore_case(rest, after_scheme(click))
        || starts_with_ignore_case(rest, after_scheme(open))
    {
        return Err(Skip::AlreadyTracked);
    }
    if dest.to_ascii_lowercase().contains("unsubscribe") {
        return Err(Skip::Unsubscribe);
    }
    if validate_destination(&dest).is_err() {
        return Err(Skip::Refused);
    }
    Ok(dest)
}

/// The URL scheme of `s` (RFC 3986: a letter, then letters, digits, `+`, `-`, `.`, then `:`).
fn scheme(s: &str) -> Option<&str> {
    let (scheme, _) = s.split_once(':')?;
    let mut bytes = scheme.bytes();
    let first = bytes.next()?;
    (first.is_ascii_alphabetic()
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
    .then_some(scheme)
}

fn after_scheme(url: &str) -> &str {
    url.split_once("://").map_or(url, |(_, rest)| rest)
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes() {
        assert_eq!(scheme("https://x"), Some("https"));
        assert_eq!(scheme("mailto:a@b"), Some("mailto"));
        assert_eq!(scheme("/a:b"), None);
        assert_eq!(scheme("{{x}}:y"), None);
        assert_eq!(scheme("page"), None);
    }

    #[test]
    fn base_urls() {
        assert_eq!(
            check_base_url("https://t.example.com/").unwrap(),
            "https://t.example.com"
        );
        assert_eq!(
            check_base_url("https://e.com/track").unwrap(),
            "https://e.com/track"
        );
        assert!(check_base_url("https://e.com/?a").is_err());
        assert!(check_base_url("ftp://e.com").is_err());
        assert!(check_base_url("t.example.com").is_err());
    }
}
