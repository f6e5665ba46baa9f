//! One pass of `lol_html` over the source: where the links, their marker attributes, the
//! `<base href>` and `</body>` are, as byte ranges of the source. Nothing is rewritten here.

use std::cell::{Cell, RefCell};
use std::ops::Range;
use std::rc::Rc;

use lol_html::html_content::{Comment, Element};
use lol_html::{element, HtmlRewriter, Settings};

use crate::RewriteError;

/// How the source quoted an attribute value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Quote {
    /// `"..."` or `'...'`.
    Quoted,
    /// `href=value`.
    Unquoted,
}

/// One link element (an element with `href` that the rewriter considers).
#[derive(Debug)]
pub(crate) struct Site {
    /// Lower-cased tag name.
    pub tag: String,
    /// The raw (entity-encoded) `href` value.
    pub raw_href: String,
    /// Where that value sits in the source; `None` for `href` without a value.
    pub value: Option<(Range<usize>, Quote)>,
    /// The raw `data-link-id` value, if any.
    pub link_id: Option<String>,
    /// `data-notrack` present.
    pub notrack: bool,
    /// `data-unsubscribe` present.
    pub unsubscribe: bool,
    /// `data-honeypot` present.
    pub honeypot: bool,
    /// Marker attributes to remove (with the whitespace before them).
    pub removals: Vec<Range<usize>>,
}

/// What one pass found.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Links in document order.
    pub sites: Vec<Site>,
    /// The raw `href` of the first `<base>` outside conditional comments.
    pub base: Option<String>,
    /// Where the first `</body>` outside conditional comments starts.
    pub body_end: Option<usize>,
}

/// Marker attributes: instructions to the rewriter, removed from the output.
const LINK_ID: &str = "data-link-id";
const NOTRACK: &str = "data-notrack";
const UNSUBSCRIBE: &str = "data-unsubscribe";
const HONEYPOT: &str = "data-honeypot";

/// Scans the whole document.
pub(crate) fn scan(source: &str) -> Result<Scan, RewriteError> {
    let state = RefCell::new(Scan::default());
    scan_fragment(source, source, 0, &state, true)?;
    Ok(state.into_inner())
}

/// Scans `fragment`, which starts at byte `offset` of `source`. `outer`: the document itself,
/// not the inside of a conditional comment.
fn scan_fragment(
    source: &str,
    fragment: &str,
    offset: usize,
    state: &RefCell<Scan>,
    outer: bool,
) -> Result<(), RewriteError> {
    let body_end: Rc<Cell<Option<usize>>> = Rc::new(Cell::new(None));
    let nested_error: RefCell<Option<RewriteError>> = RefCell::new(None);
    let mut settings = Settings::new()
        .with_strict(false)
        .append_element_content_handler(element!("*[href]", |el: &mut Element<'_, '_>| {
            on_element(source, offset, el, state, outer);
            Ok(())
        }))
        .append_document_content_handler(lol_html::doc_comments!(|c: &mut Comment<'_>| {
            if let Err(e) = on_comment(source, offset, c, state) {
                nested_error.borrow_mut().get_or_insert(e);
            }
            Ok(())
        }));
    if outer {
        let body_end = Rc::clone(&body_end);
        settings =
            settings.append_element_content_handler(element!("body", move |el: &mut Element<
                '_,
                '_,
            >| {
                let body_end = Rc::clone(&body_end);
                // A `<body>` without an end tag keeps `body_end` unset: the pixel goes last.
                let _ = el.on_end_tag(Box::new(move |end| {
                    if body_end.get().is_none() {
                        body_end.set(Some(end.source_location().bytes().start));
                    }
                    Ok(())
                }));
                Ok(())
            }));
    }
    let mut rewriter = HtmlRewriter::new(settings, |_: &[u8]| {});
    rewriter
        .write(fragment.as_bytes())
        .map_err(|e| RewriteError::Parse(e.to_string()))?;
    rewriter
        .end()
        .map_err(|e| RewriteError::Parse(e.to_string()))?;
    if let Some(e) = nested_error.into_inner() {
        return Err(e);
    }
    if outer {
        if let Some(at) = body_end.get() {
            let mut st = state.borrow_mut();
            if st.body_end.is_none() {
                st.body_end = Some(offset + at);
            }
        }
    }
    Ok(())
}

fn on_element(
    source: &str,
    offset: usize,
    el: &mut Element<'_, '_>,
    state: &RefCell<Scan>,
    outer: bool,
) {
    let tag = el.tag_name();
    if tag == "base" {
        if outer {
            let mut st = state.borrow_mut();
            if st.base.is_none() {
                st.base = el.get_attribute("href");
            }
        }
        return;
    }
    if !(tag == "a" || tag == "area" || tag.contains(':')) {
        return;
    }
    let mut site = Site {
        tag,
        raw_href: String::new(),
        value: None,
        link_id: None,
        notrack: false,
        unsubscribe: false,
        honeypot: false,
        removals: Vec::new(),
    };
    let mut seen_href = false;
    for attr in el.attributes() {
        let name = attr.name();
        let value_at = attr
            .value_source_location()
            .map(|l| shift(l.bytes(), offset));
        match name.as_str() {
            // A browser uses an attribute's first occurrence.
            "href" if !seen_href => {
                seen_href = true;
                site.raw_href = attr.value();
                site.value = value_at.map(|r| {
                    let quote = match source.as_bytes().get(r.start.wrapping_sub(1)) {
                        Some(b'"' | b'\'') => Quote::Quoted,
                        _ => Quote::Unquoted,
                    };
                    (r, quote)
                });
            }
            LINK_ID | NOTRACK | UNSUBSCRIBE | HONEYPOT => {
                match name.as_str() {
                    LINK_ID => {
                        site.link_id.get_or_insert_with(|| attr.value());
                    }
                    NOTRACK => site.notrack = true,
                    HONEYPOT => site.honeypot = true,
                    _ => site.unsubscribe = true,
                }
                if let Some(name_at) = attr.name_source_location() {
                    site.removals.push(attribute_span(
                        source,
                        shift(name_at.bytes(), offset),
                        value_at,
                    ));
                }
            }
            _ => {}
        }
    }
    state.borrow_mut().sites.push(site);
}

/// A conditional comment (`<!--[if ...]>...<![endif]-->`): its inner HTML is scanned with the
/// same rules, in place.
fn on_comment(
    source: &str,
    offset: usize,
    c: &mut Comment<'_>,
    state: &RefCell<Scan>,
) -> Result<(), RewriteError> {
    let text = c.text();
    if !text
        .trim_start()
        .get(..3)
        .is_some_and(|p| p.eq_ignore_ascii_case("[if"))
        || !text.contains('<')
    {
        return Ok(());
    }
    let at = shift(c.source_location().bytes(), offset);
    // Only a well-formed `<!--TEXT-->` whose text is the source verbatim is rewritten in place.
    let inner = (at.start + 4)..at.end.saturating_sub(3);
    if source.get(at.start..at.start + 4) != Some("<!--")
        || source.get(inner.end..at.end) != Some("-->")
        || source.get(inner.clone()) != Some(text.as_str())
    {
        return Ok(());
    }
    scan_fragment(source, &source[inner.clone()], inner.start, state, false)
}

fn shift(r: Range<usize>, by: usize) -> Range<usize> {
    (r.start + by)..(r.end + by)
}

/// The bytes an attribute occupies: the ASCII whitespace before its name, the name, and its
/// value with any closing quote.
fn attribute_span(source: &str, name: Range<usize>, value: Option<Range<usize>>) -> Range<usize> {
    let bytes = source.as_bytes();
    let mut start = name.start;
    while start > 0 && matches!(bytes[start - 1], b' ' | b'\t' | b'\n' | b'\r' | b'\x0c') {
        start -= 1;
    }
    let end = match value {
        Some(v) => match bytes.get(v.end) {
            Some(b'"' | b'\'') if v.start > 0 && bytes.get(v.start - 1) == bytes.get(v.end) => {
                v.end + 1
            }
            _ => v.end,
        },
        None => name.end,
    };
    start..end
}
