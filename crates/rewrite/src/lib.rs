//! Tracks a campaign's HTML: every trackable link becomes a signed click URL
//! (`BASE/c/TOKEN`) and an open pixel (`BASE/o/TOKEN.gif`) goes before `</body>`, per recipient.
//!
//! The work is split in two so that one template serves any number of recipients:
//!
//! 1. [`Template::compile`] parses the HTML once with Cloudflare's streaming parser
//!    ([`lol_html`]), records where every link's `href` value, every marker attribute and the
//!    `</body>` tag sit in the source, and decides for each link whether it is tracked (see
//!    [`Skip`] for the rules) and under which link id.
//! 2. [`Template::render`] writes one recipient's copy: the source bytes between those places are
//!    copied as they are, each tracked `href` value becomes a click URL signed with the
//!    [`Keyring`](openclick_token::Keyring), and the pixel is inserted.
//!
//! Because the output is spliced from the source, everything outside the rewritten `href`
//! values, the removed marker attributes and the pixel is byte-identical to the input: quoting,
//! letter case, whitespace, entities and comments are untouched.
//!
//! # What is a link
//!
//! An element with an `href` attribute that is `<a>`, `<area>`, or a prefixed (namespaced)
//! element such as VML's `<v:roundrect>` (Outlook's bulletproof buttons). `<base>`, `<link>`
//! and other elements are never rewritten. Links inside Outlook conditional comments
//! (`<!--[if mso]> ... <![endif]-->`) count too: the comment's inner HTML is parsed with the
//! same rules, in document order.
//!
//! # Link ids
//!
//! A link's id is the value of its `data-link-id` attribute (entities decoded; the attribute is
//! removed from the output) or else `lN`, where N is the link's 1-based position among all the
//! links of the template in document order (links inside conditional comments included),
//! counting every link whether it is tracked or not. Ids depend on the template only, never on
//! the recipient, so every recipient's click on the same link carries the same id; marking a
//! link `data-notrack` does not renumber the others.
//!
//! # Honeypot links
//!
//! A link marked `data-honeypot` (the attribute is removed from the output) is a honeypot: the
//! sender hid it where no person sees or clicks it, so a hit on it is a machine. Its click
//! tokens carry the honeypot flag ([`Claims::honeypot`](openclick_token::Claims::honeypot),
//! docs/token-v1.md "Click flags"); otherwise it is tracked like any link (same id rules, same
//! destination rules). A honeypot link the rules would leave as it is (`mailto:`,
//! `data-notrack`, an unsubscribe link, a refused destination...) is an error
//! ([`RewriteError::Honeypot`]), not a silently missing honeypot. Edges that predate the flag
//! answer such tokens with 404: mark links only once every edge knows it.
//!
//! # Destinations
//!
//! The `href` value is decoded as a browser decodes an attribute value (character references,
//! with the HTML rule for legacy references without `;` in attributes), stripped of leading and
//! trailing ASCII whitespace, and resolved against the first `<base href>` of the document when
//! it has one (with the `url` crate, as a browser would). The result is what the click token
//! carries; the edge redirects to it.

mod error;
mod scan;
mod template;

pub use error::RewriteError;
pub use template::{Link, Message, Outcome, Skip, Summary, Template};
