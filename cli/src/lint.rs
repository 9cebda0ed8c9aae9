//! Lints at compile time: rules that compile and can never do what their author meant.
//! Each is a warning (`compile --deny-warnings` makes them fail the build), with a stable
//! code listed in docs/cli.md:
//!
//! - `leading-dot-extension`: `extension` values have no dot (`.locky` never matches);
//! - `forward-slash`: the sensor reports `\`, never `/`;
//! - `unmatchable-pattern`: a value no reported input can have (a relative path where
//!   paths are absolute, a `\` in a name, a `.` inside an extension, a trailing `\` on a
//!   parent, a disposition above 5, ...);
//! - `device-path`: `\Device\HarddiskVolumeN\...` (the number differs between machines;
//!   the sensor reports `C:\...` where the volume has a drive letter, ADR 0013);
//! - `empty-rule-set`: no rules at all;
//! - `shadowed-rule`: every event the rule matches is decided first by an earlier rule
//!   without exceptions;
//! - `dead-exception`: an exception set that can never hold together with its rule's
//!   criteria (so it never vetoes), or one that always holds (so the rule never fires).

use failsafe_loader::text::{
    contains_folded, ends_with_folded, eq_folded, fold, has_drive_letter, starts_with_folded,
    wildcard_folded,
};
use failsafe_loader::{Content, Criterion, EventType, Input, Op, Rule, Values};

use crate::source::{Compiled, Diag, Lines, Severity, rule_name};

/// Pairs of rules the shadowing check compares at most; beyond that (very large sets) it
/// stops and says so, so compile time stays linear.
const MAX_PAIRS: usize = 4_000_000;

const PATH_FIELDS: [&str; 4] = ["path", "parent", "target-path", "process"];

fn field_name(event: EventType, c: &Criterion) -> &'static str {
    event.field(c.field).map_or("?", |f| f.name)
}

fn s(units: &[u16]) -> String {
    String::from_utf16_lossy(units)
}

struct Linter<'a> {
    lines: Lines<'a>,
    out: Vec<Diag>,
}

impl Linter<'_> {
    fn warn(
        &mut self,
        code: &'static str,
        at: Option<usize>,
        rule: Option<String>,
        message: String,
    ) {
        self.out.push(Diag {
            severity: Severity::Warning,
            code,
            line_col: at.map(|o| self.lines.line_col(o)),
            rule,
            message,
        });
    }
}

/// Why no reported input of the field can have value `v` under operator `op`, if so.
fn unmatchable(field: &str, op: Op, v: &[u16]) -> Option<(&'static str, String)> {
    let text = s(v);
    if field == "extension" && v.first() == Some(&0x2E) {
        let bare = text.trim_start_matches('.');
        return Some((
            "leading-dot-extension",
            format!(
                "extension \"{text}\" never matches: the sensor reports extensions without the dot; write \"{bare}\""
            ),
        ));
    }
    if v.contains(&0x2F) && (PATH_FIELDS.contains(&field) || field == "name") {
        return Some((
            "forward-slash",
            format!(
                "\"{text}\" contains `/`, which never appears in a path the sensor reports (it uses `\\`); write \"{}\"",
                text.replace('/', "\\")
            ),
        ));
    }
    if matches!(field, "name" | "extension") && v.contains(&0x5C) {
        return Some((
            "unmatchable-pattern",
            format!(
                "{field} \"{text}\" contains `\\`; a {field} never does (match on path or parent instead)"
            ),
        ));
    }
    if field == "extension" && v.contains(&0x2E) && op != Op::Wildcard {
        return Some((
            "unmatchable-pattern",
            format!(
                "extension \"{text}\" contains `.`; the extension is what follows the last dot (match on name with ends-with \".{text}\")"
            ),
        ));
    }
    if PATH_FIELDS.contains(&field) {
        let upper = text.to_uppercase();
        if upper.starts_with("\\DEVICE\\HARDDISKVOLUME") {
            return Some((
                "device-path",
                format!(
                    "\"{text}\" is a device path: the volume number differs between machines, and the sensor reports C:\\... wherever the volume has a drive letter (ADR 0013); write the drive-letter form, or match what follows the volume with contains/ends-with"
                ),
            ));
        }
        let anchored = matches!(op, Op::StrEquals | Op::StartsWith)
            || (op == Op::Wildcard && !matches!(v.first(), Some(&0x2A | &0x3F)));
        if anchored && !(v.first() == Some(&0x5C) || has_drive_letter(v)) {
            return Some((
                "unmatchable-pattern",
                format!(
                    "{field} {op} \"{text}\" never matches: reported paths are absolute (C:\\... or \\Device\\...)"
                ),
            ));
        }
        if anchored && has_drive_letter(v) && v.get(2).is_some_and(|&u| u != 0x5C) {
            return Some((
                "unmatchable-pattern",
                format!(
                    "{field} {op} \"{text}\" never matches: after the drive letter comes `\\` (\"{}:\\{}\")",
                    &text[..1],
                    &text[2..]
                ),
            ));
        }
        if field == "parent"
            && matches!(op, Op::StrEquals | Op::EndsWith)
            && v.last() == Some(&0x5C)
        {
            return Some((
                "unmatchable-pattern",
                format!("parent {op} \"{text}\" never matches: parent has no trailing `\\`"),
            ));
        }
    }
    None
}

/// The event an integer input, or a string input, would form: a one-input event at the
/// criterion's field, for asking whether a criterion holds on a literal value.
fn holds_on_str(c: &Criterion, event: EventType, value: &[u16]) -> bool {
    let mut inputs = Vec::with_capacity(event.arity());
    for (i, f) in event.fields().iter().enumerate() {
        inputs.push(if usize::from(c.field) == i {
            Input::Str(value)
        } else {
            match f.kind {
                failsafe_loader::FieldKind::Str => Input::Str(&[]),
                failsafe_loader::FieldKind::Int => Input::Int(0),
                failsafe_loader::FieldKind::Flag => Input::Flag(false),
            }
        });
    }
    let folded = fold_criterion(c);
    failsafe_loader::eval::criterion_holds(&folded, &failsafe_loader::Event::new(event, &inputs))
}

fn holds_on_int(c: &Criterion, event: EventType, value: u64) -> bool {
    let mut inputs = Vec::with_capacity(event.arity());
    for (i, f) in event.fields().iter().enumerate() {
        inputs.push(if usize::from(c.field) == i {
            Input::Int(value)
        } else {
            match f.kind {
                failsafe_loader::FieldKind::Str => Input::Str(&[]),
                failsafe_loader::FieldKind::Int => Input::Int(0),
                failsafe_loader::FieldKind::Flag => Input::Flag(false),
            }
        });
    }
    failsafe_loader::eval::criterion_holds(c, &failsafe_loader::Event::new(event, &inputs))
}

fn fold_criterion(c: &Criterion) -> Criterion {
    let mut c = c.clone();
    if let Values::Strs(list) = &mut c.values {
        for v in list {
            for u in v.iter_mut() {
                *u = fold(*u);
            }
        }
    }
    c
}

fn folded(v: &[u16]) -> Vec<u16> {
    v.iter().map(|&u| fold(u)).collect()
}

/// Does value `b` under `ob` imply value `a` under `oa` (any input that satisfies the
/// first satisfies the second)? Conservative: `false` when unsure.
fn str_implies(ob: Op, b: &[u16], oa: Op, a: &[u16]) -> bool {
    let (b, a) = (folded(b), folded(a));
    match (ob, oa) {
        (Op::StrEquals, Op::StrEquals) => b == a,
        (Op::StrEquals, Op::StartsWith) => starts_with_folded(&b, &a),
        (Op::StrEquals, Op::EndsWith) => ends_with_folded(&b, &a),
        (Op::StrEquals, Op::Contains) => contains_folded(&b, &a),
        (Op::StrEquals, Op::Wildcard) => wildcard_folded(&b, &a),
        (Op::StartsWith, Op::StartsWith) => starts_with_folded(&b, &a),
        (Op::EndsWith, Op::EndsWith) => ends_with_folded(&b, &a),
        (Op::StartsWith | Op::EndsWith | Op::Contains, Op::Contains) => contains_folded(&b, &a),
        (Op::Wildcard, Op::Wildcard) => eq_folded(&b, &a),
        _ => false,
    }
}

fn int_implies(ob: Op, b: u64, oa: Op, a: u64) -> bool {
    match (ob, oa) {
        (Op::IntEquals, Op::IntEquals) => b == a,
        (Op::IntEquals, Op::AnyBits) => b & a != 0,
        (Op::IntEquals, Op::AllBits) => b & a == a,
        (Op::AnyBits, Op::AnyBits) => b & !a == 0 && b != 0,
        (Op::AllBits, Op::AllBits) => b & a == a,
        _ => false,
    }
}

/// Every input satisfying `b` satisfies `a` (same field).
fn implies(b: &Criterion, a: &Criterion) -> bool {
    if b.field != a.field {
        return false;
    }
    if b.negate || a.negate {
        return b.negate && a.negate && b.op == a.op && same_values(&b.values, &a.values);
    }
    match (&b.values, &a.values) {
        (Values::Strs(bs), Values::Strs(as_)) => bs
            .iter()
            .all(|bv| as_.iter().any(|av| str_implies(b.op, bv, a.op, av))),
        (Values::Ints(bs), Values::Ints(as_)) => bs
            .iter()
            .all(|&bv| as_.iter().any(|&av| int_implies(b.op, bv, a.op, av))),
        (Values::Ints(bs), Values::Ranges(rs)) if b.op == Op::IntEquals => bs
            .iter()
            .all(|&bv| rs.iter().any(|&(lo, hi)| lo <= bv && bv <= hi)),
        (Values::Ranges(bs), Values::Ranges(rs)) => bs
            .iter()
            .all(|&(bl, bh)| rs.iter().any(|&(lo, hi)| lo <= bl && bh <= hi)),
        (Values::None, Values::None) => b.op == a.op,
        _ => false,
    }
}

fn same_values(a: &Values, b: &Values) -> bool {
    match (a, b) {
        (Values::Strs(x), Values::Strs(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| folded(p) == folded(q))
        }
        _ => a == b,
    }
}

/// A rule's criteria imply `set` entirely: `set` holds whenever the rule's criteria do.
fn all_implied(rule: &[Criterion], set: &[Criterion]) -> bool {
    set.iter().all(|a| rule.iter().any(|b| implies(b, a)))
}

/// Criterion `e` can never hold together with criterion `r` (same field).
fn contradicts(event: EventType, r: &Criterion, e: &Criterion) -> bool {
    if r.field != e.field || r.negate {
        return false;
    }
    match (&r.values, r.op) {
        // The rule pins the input to a list of values: `e` must hold on one of them.
        (Values::Strs(list), Op::StrEquals) => !list.iter().any(|v| holds_on_str(e, event, v)),
        (Values::Ints(list), Op::IntEquals) => !list.iter().any(|&v| holds_on_int(e, event, v)),
        (Values::None, op) => matches!(&e.values, Values::None) && ((op == e.op) == e.negate),
        _ => false,
    }
}

/// Runs every lint over a compiled source; the warnings are added to `compiled`.
pub fn lint(compiled: &mut Compiled, src: &str) {
    let mut l = Linter {
        lines: Lines::new(src),
        out: Vec::new(),
    };
    let content: &Content = &compiled.content;
    if content.rules.is_empty() {
        l.warn(
            "empty-rule-set",
            None,
            None,
            "the source has no rules: the content will pass every operation (add [[rule]] tables)"
                .into(),
        );
    }
    for (i, r) in content.rules.iter().enumerate() {
        let name = Some(rule_name(i, r.id));
        let spans = compiled.spans.get(i);
        let crit_at = |k: usize| spans.and_then(|s| s.criteria.get(k)).copied();
        let exc_at = |set: usize, k: usize| {
            spans
                .and_then(|s| s.exceptions.get(set))
                .and_then(|e| e.get(k))
                .copied()
        };
        for (k, c) in r.criteria.iter().enumerate() {
            value_lints(&mut l, r.event, c, crit_at(k), &name, "");
        }
        for (set, list) in r.exceptions.iter().enumerate() {
            for (k, c) in list.iter().enumerate() {
                value_lints(
                    &mut l,
                    r.event,
                    c,
                    exc_at(set, k),
                    &name,
                    &format!(" (except[{set}])"),
                );
            }
            let at = exc_at(set, 0);
            if let Some((e, rc)) = list.iter().find_map(|e| {
                r.criteria
                    .iter()
                    .find(|rc| contradicts(r.event, rc, e))
                    .map(|rc| (e, rc))
            }) {
                l.warn(
                    "dead-exception",
                    at,
                    name.clone(),
                    format!(
                        "except[{set}] can never veto: its `{}` cannot hold when the rule's `{}` does",
                        crate::source::describe_criterion(r.event, e),
                        crate::source::describe_criterion(r.event, rc)
                    ),
                );
            } else if all_implied(&r.criteria, list) {
                l.warn(
                    "dead-exception",
                    at,
                    name.clone(),
                    format!("except[{set}] holds whenever the rule's criteria do: the rule can never fire"),
                );
            }
        }
    }
    shadowing(&mut l, content, &compiled.rule_offsets);
    compiled.warnings.append(&mut l.out);
}

fn value_lints(
    l: &mut Linter<'_>,
    event: EventType,
    c: &Criterion,
    at: Option<usize>,
    name: &Option<String>,
    where_: &str,
) {
    let field = field_name(event, c);
    match &c.values {
        Values::Strs(list) => {
            for v in list {
                if let Some((code, msg)) = unmatchable(field, c.op, v) {
                    let msg = if c.negate {
                        format!("{msg}{where_}; negated, this criterion always holds")
                    } else {
                        format!("{msg}{where_}")
                    };
                    l.warn(code, at, name.clone(), msg);
                }
            }
        }
        Values::Ints(list) if field == "disposition" && c.op == Op::IntEquals => {
            for &v in list.iter().filter(|&&v| v > 5) {
                l.warn(
                    "unmatchable-pattern",
                    at,
                    name.clone(),
                    format!("disposition {v} never occurs (FILE_SUPERSEDE=0 .. FILE_OVERWRITE_IF=5){where_}"),
                );
            }
        }
        _ => {}
    }
}

fn shadowing(l: &mut Linter<'_>, content: &Content, offsets: &[usize]) {
    let mut pairs = 0usize;
    // Earlier rules without exceptions, per event type: the only ones that can shadow.
    let mut shadows: Vec<(usize, &Rule)> = Vec::new();
    for (i, b) in content.rules.iter().enumerate() {
        for &(j, a) in &shadows {
            pairs += 1;
            if pairs > MAX_PAIRS {
                l.warn(
                    "shadowed-rule",
                    None,
                    None,
                    format!(
                        "shadowing checked only up to {MAX_PAIRS} rule pairs (this set is larger)"
                    ),
                );
                return;
            }
            if a.event == b.event && all_implied(&b.criteria, &a.criteria) {
                l.warn(
                    "shadowed-rule",
                    offsets.get(i).copied(),
                    Some(rule_name(i, b.id)),
                    format!(
                        "never decides: every event it matches is matched first by {} ({} on line {}), which has no exceptions",
                        rule_name(j, a.id),
                        a.action,
                        offsets.get(j).map_or(0, |&o| l.lines.line_col(o).0)
                    ),
                );
                break;
            }
        }
        if b.exceptions.is_empty() {
            shadows.push((i, b));
        }
    }
}
