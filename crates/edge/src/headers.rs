//! The request headers the pipeline reads, from a whole request ([`HeaderMap`]) or from what a
//! deferred open kept of one ([`Headers::Kept`]).
//!
//! Why not always a `HeaderMap`: a deferred open ([`crate::defer`]) keeps a handful of header
//! values in a byte buffer. Rebuilding a `HeaderMap` from them for each open (validating each
//! value, hashing each name, then hashing again on every lookup) cost the worker about 0.3 us
//! a request at saturation, a fifth of the handler (BENCHMARKS.md, session 18). A kept value is
//! found by the index of its name among a few, in request order.

use http::header::{HeaderName, ValueIter};
use http::{HeaderMap, HeaderValue};

/// Something header values can be read from by name.
pub trait HeaderSource {
    /// The values of `name`, in request order, as raw bytes.
    fn values(&self, name: &HeaderName) -> Values<'_>;

    /// The first value of `name` as text, if it is visible ASCII (what
    /// [`HeaderValue::to_str`] accepts).
    fn first_str(&self, name: &HeaderName) -> Option<&str> {
        self.values(name).next().and_then(visible_str)
    }
}

/// `bytes` as text if every byte is visible ASCII or a tab ([`HeaderValue::to_str`]'s rule).
pub fn visible_str(bytes: &[u8]) -> Option<&str> {
    // A fold without an early exit, so that the compiler checks many bytes at a time (a user
    // agent is about 100 bytes, read once per hit); a value that fails is rare.
    let visible = bytes.iter().fold(true, |ok, &b| {
        ok & ((b.wrapping_sub(32) < 95) | (b == b'\t'))
    });
    if visible {
        std::str::from_utf8(bytes).ok()
    } else {
        None
    }
}

/// The headers of one request, as the pipeline sees them.
#[derive(Clone, Copy, Debug)]
pub enum Headers<'a> {
    /// A whole request's headers.
    Map(&'a HeaderMap),
    /// What a deferred open kept: each value with the index of its name in `names`, in
    /// request order. Every value came from a [`HeaderValue`].
    Kept {
        /// The names kept, by index.
        names: &'a [HeaderName],
        /// `(index of the name, value)` pairs.
        values: &'a [(u8, &'a [u8])],
    },
}

impl Headers<'_> {
    /// Calls `f` with every header, name and value, in the order kept.
    pub fn for_each(&self, mut f: impl FnMut(&HeaderName, &[u8])) {
        match *self {
            Headers::Map(map) => map.iter().for_each(|(n, v)| f(n, v.as_bytes())),
            Headers::Kept { names, values } => {
                for (i, v) in values {
                    f(&names[usize::from(*i)], v);
                }
            }
        }
    }
}

impl<'a> From<&'a HeaderMap> for Headers<'a> {
    fn from(map: &'a HeaderMap) -> Self {
        Headers::Map(map)
    }
}

impl HeaderSource for Headers<'_> {
    fn values(&self, name: &HeaderName) -> Values<'_> {
        match *self {
            Headers::Map(map) => HeaderSource::values(map, name),
            Headers::Kept { names, values } => match names.iter().position(|n| n == name) {
                Some(index) => Values(Inner::Kept {
                    index,
                    rest: values.iter(),
                }),
                None => Values(Inner::Empty),
            },
        }
    }

    fn first_str(&self, name: &HeaderName) -> Option<&str> {
        match *self {
            Headers::Map(map) => map.first_str(name),
            Headers::Kept { .. } => self.values(name).next().and_then(visible_str),
        }
    }
}

impl HeaderSource for HeaderMap {
    fn values(&self, name: &HeaderName) -> Values<'_> {
        Values(Inner::Map(self.get_all(name).into_iter()))
    }

    /// `http`'s own check, in one pass.
    fn first_str(&self, name: &HeaderName) -> Option<&str> {
        self.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The values of one header name (see [`HeaderSource::values`]).
pub struct Values<'a>(Inner<'a>);

enum Inner<'a> {
    Map(ValueIter<'a, HeaderValue>),
    Kept {
        index: usize,
        rest: std::slice::Iter<'a, (u8, &'a [u8])>,
    },
    Empty,
}

impl<'a> Iterator for Values<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        match &mut self.0 {
            Inner::Map(it) => it.next().map(HeaderValue::as_bytes),
            Inner::Kept { index, rest } => rest
                .find(|(i, _)| usize::from(*i) == *index)
                .map(|(_, v)| *v),
            Inner::Empty => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::USER_AGENT;
    const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

    #[test]
    fn kept_values_read_as_the_map_they_came_from() {
        let mut map = HeaderMap::new();
        map.append(USER_AGENT, HeaderValue::from_static("Mozilla/5.0"));
        map.append(X_FORWARDED_FOR, HeaderValue::from_static("1.2.3.4"));
        map.append(
            X_FORWARDED_FOR,
            HeaderValue::from_static("5.6.7.8, 9.9.9.9"),
        );
        map.append(
            "x-odd",
            HeaderValue::from_bytes(b"caf\xc3\xa9").expect("obs-text is allowed"),
        );
        let odd = HeaderName::from_static("x-odd");
        let names = [USER_AGENT, X_FORWARDED_FOR, odd.clone()];
        let values: Vec<(u8, &[u8])> = map
            .iter()
            .map(|(n, v)| {
                let i = names.iter().position(|k| k == n).unwrap();
                (i as u8, v.as_bytes())
            })
            .collect();
        let kept = Headers::Kept {
            names: &names,
            values: &values,
        };
        let whole = Headers::Map(&map);
        for name in [&USER_AGENT, &X_FORWARDED_FOR, &odd, &http::header::DNT] {
            let a: Vec<&[u8]> = kept.values(name).collect();
            let b: Vec<&[u8]> = whole.values(name).collect();
            assert_eq!(a, b, "{name}");
            // Text as `HeaderValue::to_str` gives it (none for the non-ASCII value).
            let want = map.get(name).and_then(|v| v.to_str().ok());
            assert_eq!(kept.first_str(name), want, "{name}");
            assert_eq!(whole.first_str(name), want, "{name}");
        }
        assert_eq!(kept.first_str(&odd), None);
        assert_eq!(kept.values(&X_FORWARDED_FOR).count(), 2);
    }

    #[test]
    fn visible_str_is_to_strs_rule() {
        for b in 0u8..=255 {
            let v = [b'a', b];
            let want = HeaderValue::from_bytes(&v).ok().map(|h| h.to_str().is_ok());
            if let Some(want) = want {
                assert_eq!(visible_str(&v).is_some(), want, "byte {b}");
            }
        }
    }
}
