//! Human-authored content (TOML) to `Content` and back. Fields are named, not numbered:
//! the field index the kernel sees is looked up in the sensor's own schema, so a source can
//! never name a field its event type does not have.

use std::fmt::Write as _;

use failsafe_loader::{Action, Content, Criterion, EventType, FieldKind, Op, Rule, Values};
use serde::Deserialize;
use toml::Spanned;

/// A compile error with its place in the source.
#[derive(Debug)]
pub struct SourceError {
    /// 1-based line and column, when known.
    pub line_col: Option<(usize, usize)>,
    /// Rule id (or index) the error belongs to, when known.
    pub rule: Option<String>,
    /// What is wrong, expected vs found.
    pub message: String,
}

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some((l, c)) = self.line_col {
            write!(f, "line {l}, column {c}: ")?;
        }
        if let Some(r) = &self.rule {
            write!(f, "rule {r}: ")?;
        }
        f.write_str(&self.message)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Src {
    version: Option<Spanned<i64>>,
    #[serde(default)]
    rule: Vec<Spanned<SrcRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SrcRule {
    id: Spanned<i64>,
    event: Spanned<String>,
    action: Spanned<String>,
    #[serde(rename = "match")]
    criteria: Spanned<Vec<Spanned<SrcCrit>>>,
    #[serde(default)]
    except: Vec<Spanned<Vec<Spanned<SrcCrit>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SrcCrit {
    field: Spanned<String>,
    op: Spanned<String>,
    value: Option<Spanned<toml::Value>>,
    #[serde(default)]
    negate: bool,
}

fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = src.get(..offset).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

struct Ctx<'a> {
    src: &'a str,
}

impl Ctx<'_> {
    fn err<T>(
        &self,
        span: std::ops::Range<usize>,
        rule: Option<&str>,
        message: String,
    ) -> Result<T, SourceError> {
        Err(SourceError {
            line_col: Some(line_col(self.src, span.start)),
            rule: rule.map(str::to_owned),
            message,
        })
    }
}

/// Compiles a TOML source. `version` overrides the source's `version`.
pub fn compile(src: &str, version: Option<u64>) -> Result<Content, SourceError> {
    let parsed: Src = toml::from_str(src).map_err(|e| SourceError {
        line_col: e.span().map(|s| line_col(src, s.start)),
        rule: None,
        message: e.message().trim_end().to_owned(),
    })?;
    let cx = Ctx { src };
    let version = match (version, &parsed.version) {
        (Some(v), _) => v,
        (None, Some(v)) if *v.get_ref() >= 1 => *v.get_ref() as u64,
        (None, Some(v)) => {
            return cx.err(
                v.span(),
                None,
                format!("version must be >= 1, found {}", v.get_ref()),
            );
        }
        (None, None) => {
            return Err(SourceError {
                line_col: None,
                rule: None,
                message: "no content version: add `version = N` at the top or pass --version N"
                    .into(),
            });
        }
    };
    let mut rules = Vec::with_capacity(parsed.rule.len());
    // Rule id -> byte offset of its first use; the line is worked out only for an error,
    // so compiling stays linear in the source.
    let mut seen: std::collections::HashMap<u32, usize> =
        std::collections::HashMap::with_capacity(parsed.rule.len());
    let mut progress = Progress::new(parsed.rule.len());
    for (i, r) in parsed.rule.iter().enumerate() {
        progress.at(i);
        let r = r.get_ref();
        let id_raw = *r.id.get_ref();
        let Ok(id) = u32::try_from(id_raw) else {
            return cx.err(
                r.id.span(),
                None,
                format!("rule id must be 0..=4294967295, found {id_raw}"),
            );
        };
        let rid = id.to_string();
        let rid = Some(rid.as_str());
        if let Some(&first) = seen.get(&id) {
            let line = line_col(src, first).0;
            return cx.err(
                r.id.span(),
                rid,
                format!("duplicate rule id {id} (first used on line {line})"),
            );
        }
        seen.insert(id, r.id.span().start);
        let Some(event) = EventType::from_name(r.event.get_ref()) else {
            let valid: Vec<_> = EventType::ALL.iter().map(|t| t.name()).collect();
            return cx.err(
                r.event.span(),
                rid,
                format!(
                    "unknown event type `{}` (expected one of: {})",
                    r.event.get_ref(),
                    valid.join(", ")
                ),
            );
        };
        let Some(action) = Action::from_name(r.action.get_ref()) else {
            return cx.err(
                r.action.span(),
                rid,
                format!(
                    "unknown action `{}` (expected allow, audit or block)",
                    r.action.get_ref()
                ),
            );
        };
        if r.criteria.get_ref().is_empty() {
            return cx.err(r.criteria.span(), rid, "`match` is empty (expected at least one criterion; an empty rule would match everything)".into());
        }
        let criteria = r
            .criteria
            .get_ref()
            .iter()
            .map(|c| cx.criterion(event, c, rid))
            .collect::<Result<Vec<_>, _>>()?;
        let mut exceptions = Vec::new();
        for set in &r.except {
            if set.get_ref().is_empty() {
                return cx.err(
                    set.span(),
                    rid,
                    "empty exception set (expected at least one criterion)".into(),
                );
            }
            exceptions.push(
                set.get_ref()
                    .iter()
                    .map(|c| cx.criterion(event, c, rid))
                    .collect::<Result<Vec<_>, _>>()?,
            );
        }
        rules.push(Rule {
            id,
            event,
            action,
            criteria,
            exceptions,
        });
    }
    progress.done();
    Ok(Content { version, rules })
}

/// Rules compiled so far, on stderr, when stderr is a terminal and the source is long.
struct Progress {
    total: usize,
    on: bool,
}

impl Progress {
    /// Sources with fewer rules compile in well under a second: no progress for them.
    const MIN_RULES: usize = 20_000;
    const EVERY: usize = 5_000;

    fn new(total: usize) -> Self {
        use std::io::IsTerminal as _;
        Progress {
            total,
            on: total >= Self::MIN_RULES && std::io::stderr().is_terminal(),
        }
    }

    fn at(&mut self, i: usize) {
        if self.on && i.is_multiple_of(Self::EVERY) {
            eprint!("\rcompiling: {i} of {} rules", self.total);
        }
    }

    fn done(&mut self) {
        if self.on {
            eprintln!("\rcompiling: {} of {} rules", self.total, self.total);
        }
    }
}

impl Ctx<'_> {
    fn criterion(
        &self,
        event: EventType,
        c: &Spanned<SrcCrit>,
        rid: Option<&str>,
    ) -> Result<Criterion, SourceError> {
        let c = c.get_ref();
        let name = c.field.get_ref();
        let Some(field) = event.field_index(name) else {
            let valid: Vec<_> = event.fields().iter().map(|f| f.name).collect();
            return self.err(
                c.field.span(),
                rid,
                format!(
                    "event type {event} has no field `{name}` (valid: {})",
                    valid.join(", ")
                ),
            );
        };
        let kind = event.field(field).map_or(FieldKind::Str, |f| f.kind);
        let Some(op) = Op::from_name(c.op.get_ref(), kind) else {
            let valid: Vec<_> = Op::names_for(kind).collect();
            return self.err(
                c.op.span(),
                rid,
                format!(
                    "operator `{}` does not apply to {} field `{name}` (valid: {})",
                    c.op.get_ref(),
                    kind.name(),
                    valid.join(", ")
                ),
            );
        };
        let values = match (kind, &c.value) {
            (FieldKind::Flag, None) => Values::None,
            (FieldKind::Flag, Some(v)) => {
                return self.err(
                    v.span(),
                    rid,
                    format!("operator {op} takes no value (remove `value`)"),
                );
            }
            (_, None) => {
                return self.err(c.op.span(), rid, format!("operator {op} needs a `value`"));
            }
            (FieldKind::Str, Some(v)) => Values::Strs(self.list(v, rid, |x| match x {
                toml::Value::String(s) if s.is_empty() => {
                    Err("empty string (expected 1 or more characters)".to_owned())
                }
                toml::Value::String(s) if s.contains('\0') => Err("string contains NUL".to_owned()),
                toml::Value::String(s) => Ok(s.encode_utf16().collect()),
                other => Err(format!("expected a string, found {}", other.type_str())),
            })?),
            (FieldKind::Int, Some(v)) if op == Op::Range => Values::Ranges(self.ranges(v, rid)?),
            (FieldKind::Int, Some(v)) => Values::Ints(self.list(v, rid, int)?),
        };
        Ok(Criterion {
            field,
            op,
            negate: c.negate,
            values,
        })
    }

    fn list<T>(
        &self,
        v: &Spanned<toml::Value>,
        rid: Option<&str>,
        each: impl Fn(&toml::Value) -> Result<T, String>,
    ) -> Result<Vec<T>, SourceError> {
        let items: Vec<&toml::Value> = match v.get_ref() {
            toml::Value::Array(a) if a.is_empty() => {
                return self.err(
                    v.span(),
                    rid,
                    "empty list (expected at least one value)".into(),
                );
            }
            toml::Value::Array(a) => a.iter().collect(),
            one => vec![one],
        };
        items
            .into_iter()
            .enumerate()
            .map(|(i, x)| each(x).or_else(|m| self.err(v.span(), rid, format!("value {i}: {m}"))))
            .collect()
    }

    fn ranges(
        &self,
        v: &Spanned<toml::Value>,
        rid: Option<&str>,
    ) -> Result<Vec<(u64, u64)>, SourceError> {
        let pair = |x: &toml::Value| -> Result<(u64, u64), String> {
            match x {
                toml::Value::Array(p) if p.len() == 2 => {
                    let (lo, hi) = (int(&p[0])?, int(&p[1])?);
                    if lo > hi {
                        Err(format!(
                            "empty range [{lo}, {hi}] (lower bound > upper bound)"
                        ))
                    } else {
                        Ok((lo, hi))
                    }
                }
                other => Err(format!("expected a [low, high] pair, found {other}")),
            }
        };
        match v.get_ref() {
            // A single pair: `value = [0, 100]`.
            toml::Value::Array(a) if a.first().is_some_and(|x| !x.is_array()) => pair(v.get_ref())
                .map(|p| vec![p])
                .or_else(|m| self.err(v.span(), rid, m)),
            _ => self.list(v, rid, pair),
        }
    }
}

fn int(x: &toml::Value) -> Result<u64, String> {
    match x {
        toml::Value::Integer(i) => {
            u64::try_from(*i).map_err(|_| format!("expected a non-negative integer, found {i}"))
        }
        toml::Value::String(s) => {
            let t = s.replace('_', "");
            let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => t.parse::<u64>(),
            };
            parsed.map_err(|_| format!("expected an integer (decimal or 0x hex), found \"{s}\""))
        }
        other => Err(format!("expected an integer, found {}", other.type_str())),
    }
}

fn quote(units: &[u16]) -> String {
    let s = String::from_utf16_lossy(units);
    toml::Value::String(s).to_string()
}

fn value_text(c: &Criterion, kind: FieldKind) -> Option<String> {
    let many = |items: Vec<String>| {
        if items.len() == 1 {
            items.into_iter().next().unwrap_or_default()
        } else {
            format!("[{}]", items.join(", "))
        }
    };
    let masks = matches!(c.op, Op::AnyBits | Op::AllBits);
    let int = |v: u64| {
        if v > i64::MAX as u64 {
            format!("\"{v:#x}\"")
        } else if masks && kind == FieldKind::Int {
            // Bit masks read better in hex.
            format!("{v:#x}")
        } else {
            v.to_string()
        }
    };
    match &c.values {
        Values::Strs(v) => Some(many(v.iter().map(|s| quote(s)).collect())),
        Values::Ints(v) => Some(many(v.iter().map(|&x| int(x)).collect())),
        Values::Ranges(v) if v.len() == 1 => v
            .first()
            .map(|&(lo, hi)| format!("[{}, {}]", int(lo), int(hi))),
        Values::Ranges(v) => Some(format!(
            "[{}]",
            v.iter()
                .map(|&(lo, hi)| format!("[{}, {}]", int(lo), int(hi)))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Values::None => None,
    }
}

fn criterion_text(event: EventType, c: &Criterion) -> String {
    let (name, kind) = event
        .field(c.field)
        .map_or(("?", FieldKind::Str), |f| (f.name, f.kind));
    let mut s = format!("{{ field = \"{name}\", op = \"{}\"", c.op.name());
    if let Some(v) = value_text(c, kind) {
        let _ = write!(s, ", value = {v}");
    }
    if c.negate {
        s.push_str(", negate = true");
    }
    s.push_str(" }");
    s
}

/// TOML that compiles back to the same content (and so to the same bytes).
pub fn to_source(c: &Content) -> String {
    let mut out = format!(
        "# Failsafe content, decompiled by failsafectl inspect --source\nversion = {}\n",
        c.version
    );
    for r in &c.rules {
        let _ = write!(
            out,
            "\n[[rule]]\nid = {}\nevent = \"{}\"\naction = \"{}\"\nmatch = [\n",
            r.id,
            r.event.name(),
            r.action.name()
        );
        for crit in &r.criteria {
            let _ = writeln!(out, "  {},", criterion_text(r.event, crit));
        }
        out.push_str("]\n");
        if !r.exceptions.is_empty() {
            out.push_str("except = [\n");
            for set in &r.exceptions {
                let parts: Vec<_> = set.iter().map(|c| criterion_text(r.event, c)).collect();
                let _ = writeln!(out, "  [{}],", parts.join(", "));
            }
            out.push_str("]\n");
        }
    }
    out
}

/// Readable one-line form of a criterion (inspect, test).
pub fn describe_criterion(event: EventType, c: &Criterion) -> String {
    let (name, kind) = event
        .field(c.field)
        .map_or(("?", FieldKind::Str), |f| (f.name, f.kind));
    let not = if c.negate { "not " } else { "" };
    match value_text(c, kind) {
        Some(v) => format!("{not}{name} {} {v}", c.op.name()),
        None => format!("{not}{name} {}", c.op.name()),
    }
}
