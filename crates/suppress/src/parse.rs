//! One parser for suppression input, wherever it comes from: the snapshot file `serve` loads
//! at start, the file `openclick suppress import` sends, and the admin API's batch route.
//!
//! Two formats:
//! - **NDJSON**, one [`ChangeLine`] per line:
//!   `{"tenant":"t","contact":"c","action":"add","reason":"bounce","at_ms":1700000000000}`.
//!   `action` is `add` (default) or `remove`; omit `contact` for a whole tenant, give
//!   `campaign` instead for one campaign; `reason` defaults to `opt_out`; `at_ms` to now.
//!   Unknown fields are refused.
//! - **CSV** (RFC 4180 quoting, split by `csv_core`, so quoted fields may hold commas):
//!   `tenant,contact[,reason]`, one record per line, an optional `tenant,contact...` header
//!   as the first line, `#` comments.
//!
//! The format is decided per line (a line starting with `{` is NDJSON), so a file may mix
//! them. Every change is validated ([`Scope::validate`]) before it is returned, so one rule decides
//! what an id may be for every input path.

use std::io::BufRead;

use crate::{Change, Reason, Scope, SuppressError};

/// One NDJSON line of a suppression batch or snapshot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeLine {
    /// Tenant id.
    pub tenant: String,
    /// Contact id (a contact scope).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// Campaign id (a campaign scope).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    /// List id: with `contact`, a contact-in-list scope (a list unsubscribe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<String>,
    /// `add` (default) or `remove`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// A [`Reason`] name (default `opt_out`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the change was made, ms since the Unix epoch (default: now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<i64>,
}

impl ChangeLine {
    /// The change this line describes, validated; `now_ms` stands in for a missing `at_ms`.
    pub fn into_change(self, now_ms: i64) -> Result<Change, SuppressError> {
        let scope = match (self.contact, self.campaign) {
            (Some(contact), None) if self.list.is_some() => Scope::ContactInList {
                tenant: self.tenant,
                list: self.list.unwrap_or_default(),
                contact,
            },
            _ if self.list.is_some() => {
                return Err(SuppressError::Invalid(
                    "list needs contact (and no campaign)".into(),
                ))
            }
            (Some(contact), None) => Scope::Contact {
                tenant: self.tenant,
                contact,
            },
            (None, Some(campaign)) => Scope::Campaign {
                tenant: self.tenant,
                campaign,
            },
            (None, None) => Scope::Tenant {
                tenant: self.tenant,
            },
            (Some(_), Some(_)) => {
                return Err(SuppressError::Invalid(
                    "give contact or campaign, not both".into(),
                ))
            }
        };
        scope.validate()?;
        let reason = match self.action.as_deref().unwrap_or("add") {
            "add" => Some(
                self.reason
                    .as_deref()
                    .unwrap_or("opt_out")
                    .parse::<Reason>()?,
            ),
            "remove" => None,
            other => {
                return Err(SuppressError::Parse(format!(
                    "unknown action {other:?} (add or remove)"
                )))
            }
        };
        Ok(Change {
            scope,
            reason,
            at_ms: crate::clamp_at_ms(self.at_ms.unwrap_or(now_ms), now_ms),
        })
    }
}

impl From<&Change> for ChangeLine {
    fn from(c: &Change) -> Self {
        let (tenant, contact, campaign, list) = match &c.scope {
            Scope::Contact { tenant, contact } => (tenant, Some(contact.clone()), None, None),
            Scope::Tenant { tenant } => (tenant, None, None, None),
            Scope::Campaign { tenant, campaign } => (tenant, None, Some(campaign.clone()), None),
            Scope::ContactInList {
                tenant,
                list,
                contact,
            } => (tenant, Some(contact.clone()), None, Some(list.clone())),
        };
        ChangeLine {
            tenant: tenant.clone(),
            contact,
            campaign,
            list,
            action: c.reason.is_none().then(|| "remove".to_string()),
            reason: c.reason.map(|r| r.as_str().to_string()),
            at_ms: Some(c.at_ms),
        }
    }
}

/// Parses one NDJSON line (the batch API's format).
pub fn parse_json_line(line: &str, now_ms: i64) -> Result<Change, SuppressError> {
    let l: ChangeLine =
        serde_json::from_str(line).map_err(|e| SuppressError::Parse(e.to_string()))?;
    l.into_change(now_ms)
}

/// A bad line of an input file: its 1-based number and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {error}")]
pub struct LineError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    #[source]
    pub error: SuppressError,
}

impl From<LineError> for SuppressError {
    fn from(e: LineError) -> Self {
        match e.error {
            io @ SuppressError::Io { .. } => io,
            other => SuppressError::Parse(format!("line {}: {other}", e.line)),
        }
    }
}

/// Reads changes from a snapshot or import file (NDJSON or CSV lines, see the module docs),
/// calling `f` with each change and its 1-based line number. Returns how many changes were
/// read. Stops at the first bad line with an error naming it; `f` may stop the read by
/// returning an error (reported at its line). Allocates per line only what the change holds.
pub fn read_changes<R: BufRead>(
    mut input: R,
    now_ms: i64,
    mut f: impl FnMut(usize, Change) -> Result<(), SuppressError>,
) -> Result<usize, LineError> {
    let at = |line: usize, error: SuppressError| LineError { line, error };
    let mut line = String::new();
    // Built on the first CSV line: building the comma DFA costs more than parsing a short file.
    let mut csv: Option<CsvLine> = None;
    let mut lineno = 0usize;
    let mut seen_data = false;
    let mut n = 0usize;
    loop {
        line.clear();
        let read = input.read_line(&mut line).map_err(|e| {
            at(
                lineno + 1,
                SuppressError::Io {
                    path: "input".into(),
                    source: e,
                },
            )
        })?;
        if read == 0 {
            return Ok(n);
        }
        lineno += 1;
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let first = !seen_data;
        seen_data = true;
        let change = if t.starts_with('{') {
            parse_json_line(t, now_ms)
        } else {
            let fields = csv
                .get_or_insert_with(CsvLine::default)
                .split(t)
                .map_err(|e| at(lineno, e))?;
            if first && fields.first() == Some(&"tenant") {
                continue; // header line
            }
            csv_change(&fields, now_ms)
        }
        .map_err(|e| at(lineno, e))?;
        f(lineno, change).map_err(|e| at(lineno, e))?;
        n += 1;
    }
}

/// Splits one CSV line (RFC 4180 quoting) with `csv_core`, reusing its buffers across lines.
struct CsvLine {
    reader: csv_core::Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
}

impl Default for CsvLine {
    fn default() -> Self {
        // Not `csv_core::Reader::default()`: only `new` builds the comma-delimited DFA.
        CsvLine {
            reader: csv_core::Reader::new(),
            out: Vec::new(),
            ends: Vec::new(),
        }
    }
}

impl CsvLine {
    fn split<'a>(&'a mut self, line: &str) -> Result<Vec<&'a str>, SuppressError> {
        use csv_core::ReadFieldResult;
        self.reader.reset();
        self.out.clear();
        self.out.resize(line.len() + 1, 0);
        self.ends.clear();
        let mut input = line.as_bytes();
        let mut written = 0;
        loop {
            let (res, nin, nout) = self.reader.read_field(input, &mut self.out[written..]);
            input = &input[nin..];
            written += nout;
            match res {
                ReadFieldResult::Field { record_end } => {
                    self.ends.push(written);
                    if record_end {
                        break;
                    }
                }
                ReadFieldResult::InputEmpty => {
                    if input.is_empty() {
                        // Signal the end of the line: the last field is returned next.
                        let (res, _, nout) = self.reader.read_field(&[], &mut self.out[written..]);
                        written += nout;
                        if let ReadFieldResult::Field { .. } = res {
                            self.ends.push(written);
                        }
                        break;
                    }
                }
                ReadFieldResult::OutputFull => {
                    return Err(SuppressError::Parse("CSV field too long".into()))
                }
                ReadFieldResult::End => break,
            }
        }
        let mut fields = Vec::with_capacity(self.ends.len());
        let mut start = 0;
        for &end in &self.ends {
            let field = std::str::from_utf8(&self.out[start..end])
                .map_err(|_| SuppressError::Parse("CSV field is not UTF-8".into()))?;
            fields.push(field.trim());
            start = end;
        }
        Ok(fields)
    }
}

/// One CSV record, `tenant,contact[,reason]`.
fn csv_change(r: &[&str], now_ms: i64) -> Result<Change, SuppressError> {
    let (Some(tenant), Some(contact)) = (r.first(), r.get(1)) else {
        return Err(SuppressError::Parse(
            "expected `tenant,contact[,reason]`".into(),
        ));
    };
    if r.len() > 3 {
        return Err(SuppressError::Parse(format!(
            "expected `tenant,contact[,reason]`, got {} fields",
            r.len()
        )));
    }
    let reason = match r.get(2) {
        Some(s) if !s.is_empty() => s.parse()?,
        _ => Reason::OptOut,
    };
    let scope = Scope::Contact {
        tenant: tenant.to_string(),
        contact: contact.to_string(),
    };
    scope.validate()?;
    Ok(Change {
        scope,
        reason: Some(reason),
        at_ms: now_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str) -> Result<Vec<(usize, Change)>, LineError> {
        let mut out = Vec::new();
        read_changes(text.as_bytes(), 9, |n, c| {
            out.push((n, c));
            Ok(())
        })?;
        Ok(out)
    }

    fn contact(t: &str, c: &str, r: Reason) -> Change {
        Change {
            scope: Scope::Contact {
                tenant: t.into(),
                contact: c.into(),
            },
            reason: Some(r),
            at_ms: 9,
        }
    }

    #[test]
    fn batch_lines() {
        let c = parse_json_line(r#"{"tenant":"t","contact":"c","reason":"erase"}"#, 9).unwrap();
        assert_eq!(c, contact("t", "c", Reason::Erase));
        let c = parse_json_line(r#"{"tenant":"t","contact":"c","action":"remove"}"#, 9).unwrap();
        assert_eq!(c.reason, None);
        let c = parse_json_line(r#"{"tenant":"t"}"#, 9).unwrap();
        assert_eq!(c.scope, Scope::Tenant { tenant: "t".into() });
        let c = parse_json_line(r#"{"tenant":"t","campaign":"s","at_ms":5}"#, 9).unwrap();
        assert_eq!(c.at_ms, 5);
        // A time far in the future is brought back into the window; a negative one to 0.
        let line = format!(r#"{{"tenant":"t","contact":"c","at_ms":{}}}"#, i64::MAX);
        assert_eq!(
            parse_json_line(&line, 9).unwrap().at_ms,
            9 + crate::MAX_FUTURE_AT_MS
        );
        let c = parse_json_line(r#"{"tenant":"t","contact":"c","at_ms":-7}"#, 9).unwrap();
        assert_eq!(c.at_ms, 0);
        for bad in [
            r#"{"tenant":"t/x","contact":"c"}"#,
            r#"{"tenant":"t","contact":"c","action":"nuke"}"#,
            r#"{"tenant":"t","contact":"c","reason":"x"}"#,
            r#"{"tenant":"t","contact":"c","extra":1}"#,
            r#"{"tenant":"t","contact":"c","campaign":"s"}"#,
            r#"{"tenant":"","contact":"c"}"#,
            r#"{"tenant":"t","contact":"a\u0001b"}"#,
        ] {
            assert!(parse_json_line(bad, 9).is_err(), "{bad}");
        }
    }

    #[test]
    fn csv_with_header_comments_quotes_and_reasons() {
        let got = all("# opt-outs\n\ntenant,contact,reason\nacme,c-1\nacme,\"c,2\", bounce\n\"acme\" , c-3,\n").unwrap();
        assert_eq!(
            got,
            vec![
                (4, contact("acme", "c-1", Reason::OptOut)),
                (5, contact("acme", "c,2", Reason::Bounce)),
                (6, contact("acme", "c-3", Reason::OptOut)),
            ]
        );
    }

    #[test]
    fn bad_lines_are_named() {
        let e = all("acme,c-1\nacme\n").unwrap_err().to_string();
        assert!(e.starts_with("line 2:"), "{e}");
        let e = all("acme,c-1,nope\n").unwrap_err().to_string();
        assert!(e.contains("line 1:") && e.contains("nope"), "{e}");
        let e = all("acme,c,opt_out,extra\n").unwrap_err().to_string();
        assert!(e.contains("4 fields"), "{e}");
        let e = all("{\"tenant\":\"t\",\"contact\":\"c\"}\n\n{\"tenant\":1}\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("line 3:"), "{e}");
    }

    #[test]
    fn ndjson_files() {
        let got = all("# x\n{\"tenant\":\"t\",\"contact\":\"c\"}\n{\"tenant\":\"t\",\"contact\":\"d\",\"reason\":\"manual\"}\n").unwrap();
        assert_eq!(
            got,
            vec![
                (2, contact("t", "c", Reason::OptOut)),
                (3, contact("t", "d", Reason::Manual))
            ]
        );
        assert!(all("").unwrap().is_empty());
        assert!(all("# only\n\n").unwrap().is_empty());
    }

    #[test]
    fn lines_round_trip_through_change_line() {
        for c in [
            contact("t", "c", Reason::Erase),
            Change {
                scope: Scope::Campaign {
                    tenant: "t".into(),
                    campaign: "s".into(),
                },
                reason: None,
                at_ms: 3,
            },
        ] {
            let line = serde_json::to_string(&ChangeLine::from(&c)).unwrap();
            assert_eq!(parse_json_line(&line, 0).unwrap(), c, "{line}");
        }
    }
}
