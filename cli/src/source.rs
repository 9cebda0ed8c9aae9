//! Human-authored content (TOML) to `Content` and back. Fields are named, not numbered:
//! the field index the kernel sees is looked up in the sensor's own schema, so a source can
//! never name a field its event type does not have.

use std::fmt::Write as _;

use failsafe_loader::{Action, Content, Criterion, EventType, FieldKind, Op, Rule, Values};
use serde::Deserialize;
use toml::Spanned;

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// The source does not compile.
    Error,
    /// The source compiles, but probably not to what its author meant (a lint).
    Warning,
}

/// A compile error or a lint, with its place in the source.
#[derive(Debug, Clone)]
pub struct Diag {
    /// Error or warning.
    pub severity: Severity,
    /// Stable code (`docs/cli.md`): `syntax`, `unknown-field`, ..., `shadowed-rule`.
    pub code: &'static str,
    /// 1-based line and column, when known.
    pub line_col: Option<(usize, usize)>,
    /// The rule, named as everywhere: `rule #3 (id 500)` (file index, then id).
    pub rule: Option<String>,
    /// What is wrong, expected vs found, and what was probably meant.
    pub message: String,
}

impl Diag {
    /// As JSON (`compile --json`).
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "severity": match self.severity { Severity::Error => "error", Severity::Warning => "warning" },
            "code": self.code,
            "line": self.line_col.map(|l| l.0),
            "column": self.line_col.map(|l| l.1),
            "rule": self.rule,
            "message": self.message,
        })
    }
}

impl std::fmt::Display for Diag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some((l, c)) = self.line_col {
            write!(f, "line {l}, column {c}: ")?;
        }
        if let Some(r) = &self.rule {
            write!(f, "{r}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Every diagnostic of a source that did not compile.
#[derive(Debug)]
pub struct Diags(pub Vec<Diag>);

impl std::fmt::Display for Diags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let errors: Vec<String> = self
            .0
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(ToString::to_string)
            .collect();
        f.write_str(&errors.join("; "))
    }
}

/// The name of rule `index` with id `id`, as every message of the tool writes it.
pub fn rule_name(index: usize, id: u32) -> String {
    format!("rule #{index} (id {id})")
}

/// A compiled source: the content, its warnings, and where each rule starts.
#[derive(Debug)]
pub struct Compiled {
    pub content: Content,
    pub warnings: Vec<Diag>,
    /// Byte offset of each compiled rule's `[[rule]]` table in the source, in rule order.
    pub rule_offsets: Vec<usize>,
    /// Byte offsets of each rule's criteria and exception criteria (for lints).
    pub spans: Vec<RuleSpans>,
}

/// Where the parts of one rule are in the source.
#[derive(Debug, Clone, Default)]
pub struct RuleSpans {
    pub criteria: Vec<usize>,
    pub exceptions: Vec<Vec<usize>>,
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
    /// Free-form metadata (`title`, `sigma-id`, `level`, `source`, ...): kept in the source
    /// only, never compiled into content.
    #[serde(default)]
    #[allow(
        dead_code,
        reason = "metadata is for the source's readers, not the encoder"
    )]
    meta: Option<toml::Table>,
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

/// The start of every line of a source: line and column of many offsets in O(log n) each
/// (a diagnostic per rule of 100k rules, each located by a scan from the start, made
/// `compile` quadratic: minutes).
pub struct Lines<'a> {
    src: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    pub fn new(src: &'a str) -> Self {
        let starts = std::iter::once(0)
            .chain(src.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Lines { src, starts }
    }

    /// 1-based line and column of a byte offset (the end of the source when it is not a
    /// character boundary in it), as [`line_col`].
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = if self.src.is_char_boundary(offset) {
            offset
        } else {
            self.src.len()
        };
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        let col = self.src.get(start..offset).map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = src.get(..offset).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Levenshtein distance (names are short).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `did you mean `x`?` for the closest of `valid`, when it is close enough to be a typo.
pub fn did_you_mean<'a>(found: &str, valid: impl IntoIterator<Item = &'a str>) -> String {
    let best = valid
        .into_iter()
        .map(|v| (distance(&found.to_lowercase(), v), v))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((d, v)) if d <= (found.chars().count() / 3).max(2) => {
            format!("did you mean `{v}`? ")
        }
        _ => String::new(),
    }
}

/// A TOML/serde message with "did you mean" for an unknown key
/// (`unknown field `mach`, expected one of `id`, `match``).
fn syntax_hint(message: &str) -> String {
    let msg = message.trim_end().to_owned();
    let Some(rest) = msg.strip_prefix("unknown field `") else {
        return msg;
    };
    let Some((found, tail)) = rest.split_once('`') else {
        return msg;
    };
    let valid: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
    let hint = did_you_mean(found, valid.iter().copied());
    if hint.is_empty() {
        msg
    } else {
        format!("{msg}; {}", hint.trim_end())
    }
}

struct Ctx<'a> {
    lines: Lines<'a>,
    diags: Vec<Diag>,
}

impl Ctx<'_> {
    fn error(&mut self, code: &'static str, at: usize, rule: Option<&str>, message: String) {
        self.diags.push(Diag {
            severity: Severity::Error,
            code,
            line_col: Some(self.lines.line_col(at)),
            rule: rule.map(str::to_owned),
            message,
        });
    }
}

/// Compiles a TOML source (`version` overrides the source's). One error, joined with any
/// others, for callers that only need the content.
pub fn compile(src: &str, version: Option<u64>) -> Result<Content, Diags> {
    compile_all(src, version).map(|c| c.content)
}

/// Compiles a TOML source and reports every error and every lint of the file in one run.
/// `Err` holds the errors (and the warnings found before them).
pub fn compile_all(src: &str, version: Option<u64>) -> Result<Compiled, Diags> {
    let parsed: Src = toml::from_str(src).map_err(|e| {
        Diags(vec![Diag {
            severity: Severity::Error,
            code: "syntax",
            line_col: e.span().map(|s| line_col(src, s.start)),
            rule: None,
            message: syntax_hint(e.message()),
        }])
    })?;
    let mut cx = Ctx {
        lines: Lines::new(src),
        diags: Vec::new(),
    };
    let version = match (version, &parsed.version) {
        (Some(v), _) => v,
        (None, Some(v)) if *v.get_ref() >= 1 => *v.get_ref() as u64,
        (None, Some(v)) => {
            cx.error(
                "bad-version",
                v.span().start,
                None,
                format!("version must be >= 1, found {}", v.get_ref()),
            );
            1
        }
        (None, None) => {
            cx.diags.push(Diag {
                severity: Severity::Error,
                code: "no-version",
                line_col: None,
                rule: None,
                message: "no content version: add `version = N` at the top or pass --version N"
                    .into(),
            });
            1
        }
    };
    let mut rules = Vec::with_capacity(parsed.rule.len());
    let mut rule_offsets = Vec::with_capacity(parsed.rule.len());
    let mut spans = Vec::with_capacity(parsed.rule.len());
    // Rule id -> (index, byte offset) of its first use; the line is worked out only for an
    // error, so compiling stays linear in the source.
    let mut seen: std::collections::HashMap<u32, (usize, usize)> =
        std::collections::HashMap::with_capacity(parsed.rule.len());
    let mut progress = Progress::new(parsed.rule.len());
    for (i, spanned) in parsed.rule.iter().enumerate() {
        progress.at(i);
        let r = spanned.get_ref();
        let id_raw = *r.id.get_ref();
        let before = cx.diags.len();
        let (id, rid) = match u32::try_from(id_raw) {
            Ok(id) => (id, rule_name(i, id)),
            Err(_) => {
                cx.error(
                    "bad-rule-id",
                    r.id.span().start,
                    Some(&format!("rule #{i}")),
                    format!("rule id must be 0..=4294967295, found {id_raw}"),
                );
                (0, format!("rule #{i}"))
            }
        };
        let rid = Some(rid.as_str());
        if cx.diags.len() == before {
            if let Some(&(first_i, first)) = seen.get(&id) {
                let line = cx.lines.line_col(first).0;
                cx.error(
                    "duplicate-rule-id",
                    r.id.span().start,
                    rid,
                    format!(
                        "duplicate rule id {id} (first used by rule #{first_i} on line {line})"
                    ),
                );
            } else {
                seen.insert(id, (i, r.id.span().start));
            }
        }
        let event = EventType::from_name(r.event.get_ref());
        if event.is_none() {
            let valid: Vec<_> = EventType::ALL.iter().map(|t| t.name()).collect();
            cx.error(
                "unknown-event-type",
                r.event.span().start,
                rid,
                format!(
                    "unknown event type `{}` ({}expected one of: {})",
                    r.event.get_ref(),
                    did_you_mean(r.event.get_ref(), valid.iter().copied()),
                    valid.join(", ")
                ),
            );
        }
        let action = Action::from_name(r.action.get_ref());
        if action.is_none() {
            cx.error(
                "unknown-action",
                r.action.span().start,
                rid,
                format!(
                    "unknown action `{}` ({}expected allow, audit or block)",
                    r.action.get_ref(),
                    did_you_mean(r.action.get_ref(), Action::ALL.iter().map(|a| a.name()))
                ),
            );
        }
        if r.criteria.get_ref().is_empty() {
            cx.error("empty-match", r.criteria.span().start, rid, "`match` is empty (expected at least one criterion; an empty rule would match everything)".into());
        }
        let Some(event) = event else { continue };
        let mut sp = RuleSpans::default();
        let mut criteria = Vec::new();
        for c in r.criteria.get_ref() {
            sp.criteria.push(c.span().start);
            if let Some(c) = cx.criterion(event, c, rid) {
                criteria.push(c);
            }
        }
        let mut exceptions = Vec::new();
        for set in &r.except {
            if set.get_ref().is_empty() {
                cx.error(
                    "empty-exception",
                    set.span().start,
                    rid,
                    "empty exception set (expected at least one criterion)".into(),
                );
                continue;
            }
            let mut offs = Vec::new();
            let mut list = Vec::new();
            for c in set.get_ref() {
                offs.push(c.span().start);
                if let Some(c) = cx.criterion(event, c, rid) {
                    list.push(c);
                }
            }
            sp.exceptions.push(offs);
            exceptions.push(list);
        }
        if cx.diags.len() != before {
            continue;
        }
        let Some(action) = action else { continue };
        rules.push(Rule {
            id,
            event,
            action,
            criteria,
            exceptions,
        });
        rule_offsets.push(spanned.span().start);
        spans.push(sp);
    }
    progress.done();
    if !cx.diags.is_empty() {
        return Err(Diags(cx.diags));
    }
    Ok(Compiled {
        content: Content { version, rules },
        warnings: Vec::new(),
        rule_offsets,
        spans,
    })
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
        &mut self,
        event: EventType,
        c: &Spanned<SrcCrit>,
        rid: Option<&str>,
    ) -> Option<Criterion> {
        let c = c.get_ref();
        let name = c.field.get_ref();
        let Some(field) = event.field_index(name) else {
            let valid: Vec<_> = event.fields().iter().map(|f| f.name).collect();
            self.error(
                "unknown-field",
                c.field.span().start,
                rid,
                format!(
                    "event type {event} has no field `{name}` ({}valid: {})",
                    did_you_mean(name, valid.iter().copied()),
                    valid.join(", ")
                ),
            );
            return None;
        };
        let kind = event.field(field).map_or(FieldKind::Str, |f| f.kind);
        let Some(op) = Op::from_name(c.op.get_ref(), kind) else {
            let valid: Vec<_> = Op::names_for(kind).collect();
            self.error(
                "unknown-operator",
                c.op.span().start,
                rid,
                format!(
                    "operator `{}` does not apply to {} field `{name}` ({}valid: {})",
                    c.op.get_ref(),
                    kind.name(),
                    did_you_mean(c.op.get_ref(), valid.iter().copied()),
                    valid.join(", ")
                ),
            );
            return None;
        };
        let values = match (kind, &c.value) {
            (FieldKind::Flag, None) => Values::None,
            (FieldKind::Flag, Some(v)) => {
                self.error(
                    "bad-value",
                    v.span().start,
                    rid,
                    format!("operator {op} takes no value (remove `value`)"),
                );
                return None;
            }
            (_, None) => {
                self.error(
                    "bad-value",
                    c.op.span().start,
                    rid,
                    format!("operator {op} needs a `value`"),
                );
                return None;
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
        Some(Criterion {
            field,
            op,
            negate: c.negate,
            values,
        })
    }

    fn list<T>(
        &mut self,
        v: &Spanned<toml::Value>,
        rid: Option<&str>,
        each: impl Fn(&toml::Value) -> Result<T, String>,
    ) -> Option<Vec<T>> {
        let items: Vec<&toml::Value> = match v.get_ref() {
            toml::Value::Array(a) if a.is_empty() => {
                self.error(
                    "bad-value",
                    v.span().start,
                    rid,
                    "empty list (expected at least one value)".into(),
                );
                return None;
            }
            toml::Value::Array(a) => a.iter().collect(),
            one => vec![one],
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, x) in items.into_iter().enumerate() {
            match each(x) {
                Ok(t) => out.push(t),
                Err(m) => {
                    self.error("bad-value", v.span().start, rid, format!("value {i}: {m}"));
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    fn ranges(&mut self, v: &Spanned<toml::Value>, rid: Option<&str>) -> Option<Vec<(u64, u64)>> {
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
            toml::Value::Array(a) if a.first().is_some_and(|x| !x.is_array()) => {
                match pair(v.get_ref()) {
                    Ok(p) => Some(vec![p]),
                    Err(m) => {
                        self.error("bad-value", v.span().start, rid, m);
                        None
                    }
                }
            }
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

/// One value of a criterion, as the renderers take them: one at a time, so a tool facing a
/// hostile file never holds more than one decoded string (`failsafe_loader::view`).
pub enum Val<'a> {
    Str(std::borrow::Cow<'a, [u16]>),
    Int(u64),
    Range(u64, u64),
}

/// The values of an owned criterion, one at a time.
fn vals(c: &Criterion) -> (usize, Box<dyn Iterator<Item = Val<'_>> + '_>) {
    match &c.values {
        Values::Strs(v) => (
            v.len(),
            Box::new(v.iter().map(|s| Val::Str(std::borrow::Cow::Borrowed(s)))),
        ),
        Values::Ints(v) => (v.len(), Box::new(v.iter().map(|&x| Val::Int(x)))),
        Values::Ranges(v) => (
            v.len(),
            Box::new(v.iter().map(|&(lo, hi)| Val::Range(lo, hi))),
        ),
        Values::None => (0, Box::new(std::iter::empty())),
    }
}

/// Writes `n` values as the source and the readable forms show them: one value alone,
/// several in brackets; strings TOML-quoted; masks in hex; integers above i64 as quoted hex.
pub fn write_values<'v>(
    w: &mut dyn std::fmt::Write,
    op: Op,
    kind: FieldKind,
    n: usize,
    values: impl Iterator<Item = Val<'v>>,
) -> std::fmt::Result {
    let masks = matches!(op, Op::AnyBits | Op::AllBits);
    let int = |w: &mut dyn std::fmt::Write, v: u64| {
        if v > i64::MAX as u64 {
            write!(w, "\"{v:#x}\"")
        } else if masks && kind == FieldKind::Int {
            // Bit masks read better in hex.
            write!(w, "{v:#x}")
        } else {
            write!(w, "{v}")
        }
    };
    if n != 1 {
        w.write_char('[')?;
    }
    for (i, v) in values.enumerate() {
        if i > 0 {
            w.write_str(", ")?;
        }
        match v {
            Val::Str(s) => w.write_str(&quote(&s))?,
            Val::Int(x) => int(w, x)?,
            Val::Range(lo, hi) => {
                w.write_char('[')?;
                int(w, lo)?;
                w.write_str(", ")?;
                int(w, hi)?;
                w.write_char(']')?;
            }
        }
    }
    if n != 1 {
        w.write_char(']')?;
    }
    Ok(())
}

fn value_text(c: &Criterion, kind: FieldKind) -> Option<String> {
    let (n, v) = vals(c);
    if matches!(c.values, Values::None) {
        return None;
    }
    let mut out = String::new();
    let _ = write_values(&mut out, c.op, kind, n, v);
    Some(out)
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
    let (n, v) = vals(c);
    let mut out = String::new();
    let _ = write_criterion(&mut out, event, (c.field, c.op, c.negate), n, v);
    out
}

/// Writes the readable form of a criterion (`field`, `op`, `negate`) whose `n` values come
/// one at a time (none for a flag operator): `[not ]NAME OP VALUES`.
pub fn write_criterion<'v>(
    w: &mut dyn std::fmt::Write,
    event: EventType,
    (field, op, negate): (u8, Op, bool),
    n: usize,
    values: impl Iterator<Item = Val<'v>>,
) -> std::fmt::Result {
    let (name, kind) = event
        .field(field)
        .map_or(("?", FieldKind::Str), |f| (f.name, f.kind));
    if negate {
        w.write_str("not ")?;
    }
    write!(w, "{name} {}", op.name())?;
    if op.kind() != FieldKind::Flag {
        w.write_char(' ')?;
        write_values(w, op, kind, n, values)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_locate_every_offset_as_line_col_does() {
        let src = "version = 1\n[[rule]]\r\nid = \"é\u{1F600}\"\n\n  x\nlast";
        let lines = Lines::new(src);
        for o in 0..=src.len() + 2 {
            assert_eq!(lines.line_col(o), line_col(src, o), "offset {o}");
        }
        assert_eq!(lines.line_col(src.len()), (6, 5));
    }
}
