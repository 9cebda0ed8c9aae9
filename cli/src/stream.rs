//! Output that streams, for `inspect` and `test` on content that may be hostile: a rule is
//! written criterion by criterion and a value list value by value, each string decoded
//! from the file's string table only while it is written (`failsafe_loader::view`), so
//! memory stays bounded by the file however large the output is (issue 20: 1,040x the file
//! before). JSON is written by hand around `serde_json` for the small parts; strings are
//! escaped as they go.

use std::borrow::Cow;
use std::fmt;
use std::io::{BufWriter, StdoutLock, Write};

use failsafe_loader::EventType;
use failsafe_loader::view::{CritRef, RuleRef, ValuesRef, View};
use serde_json::Value;

use crate::source::{Val, write_criterion};

/// Standard output, buffered (or, in tests, any writer); a write error ends the process as
/// `outln!` does (141 on a closed pipe).
pub struct Out<W: Write = BufWriter<StdoutLock<'static>>>(W);

impl Out {
    pub fn new() -> Self {
        Out(BufWriter::with_capacity(
            64 * 1024,
            std::io::stdout().lock(),
        ))
    }
}

impl<W: Write> Out<W> {
    /// Output into `w` (tests).
    #[cfg(test)]
    pub fn to(w: W) -> Self {
        Out(w)
    }

    /// The writer (tests).
    #[cfg(test)]
    pub fn into_inner(self) -> W {
        self.0
    }

    /// Raw text.
    pub fn s(&mut self, text: &str) {
        crate::stdout_result(self.0.write_all(text.as_bytes()));
    }

    /// A small JSON value.
    pub fn json(&mut self, v: &Value) {
        let r = serde_json::to_writer(&mut self.0, v).map_err(std::io::Error::from);
        crate::stdout_result(r);
    }

    /// A JSON string whose content `f` writes piece by piece (escaped as it goes).
    pub fn json_text(&mut self, f: impl FnOnce(&mut dyn fmt::Write) -> fmt::Result) {
        self.s("\"");
        let _ = f(&mut Escaped(self));
        self.s("\"");
    }

    /// Flushes (the end of a command's output).
    pub fn flush(&mut self) {
        crate::stdout_result(self.0.flush());
    }
}

impl<W: Write> fmt::Write for Out<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.s(s);
        Ok(())
    }
}

/// Escapes for the inside of a JSON string (RFC 8259, section 7: quote, backslash and
/// control characters), as `serde_json` writes them.
struct Escaped<'o, W: Write>(&'o mut Out<W>);

impl<W: Write> fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Byte by byte: every byte to escape is ASCII, and a UTF-8 sequence's bytes are all
        // above 0x7F, so the cuts fall on character boundaries.
        let b = s.as_bytes();
        let mut from = 0;
        for (i, &c) in b.iter().enumerate() {
            let esc: Cow<'static, str> = match c {
                b'"' => "\\\"".into(),
                b'\\' => "\\\\".into(),
                b'\n' => "\\n".into(),
                b'\r' => "\\r".into(),
                b'\t' => "\\t".into(),
                0x08 => "\\b".into(),
                0x0c => "\\f".into(),
                c if c < 0x20 => format!("\\u{c:04x}").into(),
                _ => continue,
            };
            self.0.s(s.get(from..i).unwrap_or(""));
            self.0.s(&esc);
            from = i + 1;
        }
        self.0.s(s.get(from..).unwrap_or(""));
        Ok(())
    }
}

/// A criterion's values from the view, one at a time (strings decoded as they come).
pub fn values<'v>(
    view: &'v View<'_>,
    c: &CritRef,
) -> (usize, Box<dyn Iterator<Item = Val<'v>> + 'v>) {
    match view.values(c) {
        ValuesRef::Strs(refs) => (
            refs.len(),
            Box::new(
                refs.iter()
                    .map(|&r| Val::Str(Cow::Owned(view.units(r).collect()))),
            ),
        ),
        ValuesRef::Ints(v) => (v.len(), Box::new(v.iter().map(|&x| Val::Int(x)))),
        ValuesRef::Ranges(v) => (
            v.len(),
            Box::new(v.iter().map(|&(lo, hi)| Val::Range(lo, hi))),
        ),
        ValuesRef::None => (0, Box::new(std::iter::empty())),
    }
}

/// The readable form of a criterion of the view (`source::describe_criterion`'s).
pub fn criterion_text(
    w: &mut dyn fmt::Write,
    view: &View<'_>,
    event: EventType,
    c: &CritRef,
) -> fmt::Result {
    let (n, v) = values(view, c);
    write_criterion(w, event, (c.field, c.op, c.negate), n, v)
}

/// Criteria joined with " and ".
pub fn criteria_text(
    w: &mut dyn fmt::Write,
    view: &View<'_>,
    event: EventType,
    list: &[CritRef],
) -> fmt::Result {
    for (i, c) in list.iter().enumerate() {
        if i > 0 {
            w.write_str(" and ")?;
        }
        criterion_text(w, view, event, c)?;
    }
    Ok(())
}

/// A criterion as `inspect --json` shows it: `field`, `field_index`, `op`, `negate`,
/// `values` (strings, integers, `[lo, hi]` pairs, or null) and `text`.
fn criterion_json<W: Write>(out: &mut Out<W>, view: &View<'_>, event: EventType, c: &CritRef) {
    let field = event.field(c.field).map(|f| f.name);
    out.s("{\"field\":");
    out.json(&serde_json::json!(field));
    out.s(&format!(
        ",\"field_index\":{},\"op\":\"{}\",\"negate\":{},\"values\":",
        c.field,
        c.op.name(),
        c.negate
    ));
    match view.values(c) {
        ValuesRef::None => out.s("null"),
        ValuesRef::Strs(refs) => {
            out.s("[");
            for (i, &r) in refs.iter().enumerate() {
                if i > 0 {
                    out.s(",");
                }
                let units: Vec<u16> = view.units(r).collect();
                out.json_text(|w| w.write_str(&String::from_utf16_lossy(&units)));
            }
            out.s("]");
        }
        ValuesRef::Ints(v) => out.json(&serde_json::json!(v)),
        ValuesRef::Ranges(v) => out.json(&serde_json::json!(
            v.iter().map(|&(a, b)| [a, b]).collect::<Vec<_>>()
        )),
    }
    out.s(",\"text\":");
    out.json_text(|w| criterion_text(w, view, event, c));
    out.s("}");
}

/// A rule as `inspect --json` shows it: `index`, `id`, `event`, `action`, `match` (its
/// criteria) and `except` (its exception sets).
pub fn rule_json<W: Write>(out: &mut Out<W>, view: &View<'_>, index: usize, r: &RuleRef) {
    out.s(&format!(
        "{{\"index\":{index},\"id\":{},\"event\":\"{}\",\"action\":\"{}\",\"match\":[",
        r.id,
        r.event.name(),
        r.action.name()
    ));
    for (i, c) in view.criteria(r).iter().enumerate() {
        if i > 0 {
            out.s(",");
        }
        criterion_json(out, view, r.event, c);
    }
    out.s("],\"except\":[");
    for (k, set) in view.exceptions(r).enumerate() {
        if k > 0 {
            out.s(",");
        }
        out.s("[");
        for (i, c) in set.iter().enumerate() {
            if i > 0 {
                out.s(",");
            }
            criterion_json(out, view, r.event, c);
        }
        out.s("]");
    }
    out.s("]}");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The streamed rules are the JSON the owned content renders (`report::rule_json`,
    /// which `diff` uses), for content with every operator, value kind, negation and
    /// exception sets, and strings that need escaping.
    #[test]
    fn streamed_rules_are_the_owned_renderings() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut sources = vec![
            std::fs::read_to_string(dir.join("content/sample.toml")).unwrap(),
            std::fs::read_to_string(dir.join("tests/golden/every-operator.toml")).unwrap(),
        ];
        sources.push(
            "version = 3\n[[rule]]\nid = 1\nevent = \"file-create\"\naction = \"audit\"\nmatch = [{ field = \"path\", op = \"contains\", value = [\"a\\\"q\\\\b\", \"tab\\there\", \"\\u0001x\\u00e9\u{1F600}\"] }]\n".into(),
        );
        for src in sources {
            let c = crate::source::compile(&src, None).unwrap();
            let bytes = failsafe_loader::encode(&c).unwrap();
            let v = failsafe_loader::view::view(&bytes).unwrap();
            let owned = failsafe_loader::validate(&bytes).unwrap().content;
            for (i, r) in v.rules().iter().enumerate() {
                let mut out = Out::to(Vec::new());
                rule_json(&mut out, &v, i, r);
                let got: Value = serde_json::from_slice(&out.into_inner()).unwrap();
                assert_eq!(
                    got,
                    crate::report::rule_json(i, &owned.rules[i]),
                    "rule {i}"
                );
            }
        }
    }
}
