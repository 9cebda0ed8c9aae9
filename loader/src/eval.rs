//! Events, and what it means for a criterion and a rule to match one. Defined once here and
//! used by both the indexed engine and the reference scan, so they can only disagree about
//! *which* rules they look at, never about what a rule means.

use crate::content::{Content, Criterion, Rule, Values};
use crate::error::AllocError;
use crate::schema::{Action, EventType, Op};
use crate::text;
use alloc::vec::Vec;

/// One input value supplied by the sensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input<'a> {
    /// UTF-16 text as the OS gave it (any case).
    Str(&'a [u16]),
    /// Integer.
    Int(u64),
    /// Flag.
    Flag(bool),
}

/// An event: its type and the inputs the sensor supplied, in field order. Nothing forces
/// `inputs` to have the type's arity: a sensor that supplies fewer inputs than a rule names
/// gets "no match" for that criterion, never an out-of-bounds read.
#[derive(Clone, Copy, Debug)]
pub struct Event<'a> {
    /// Event type.
    pub kind: EventType,
    inputs: &'a [Input<'a>],
}

impl<'a> Event<'a> {
    /// An event of `kind` with these inputs (any number).
    pub const fn new(kind: EventType, inputs: &'a [Input<'a>]) -> Self {
        Event { kind, inputs }
    }

    /// The input for field `index`, if the sensor supplied it. The only accessor.
    #[inline]
    pub fn input(&self, index: u8) -> Option<Input<'a>> {
        self.inputs.get(usize::from(index)).copied()
    }

    /// Number of inputs supplied.
    pub fn supplied(&self) -> usize {
        self.inputs.len()
    }
}

/// The rule that decided an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Match {
    /// Its action.
    pub action: Action,
    /// Its id.
    pub rule_id: u32,
    /// Its index in file order.
    pub rule_index: u32,
}

/// Does criterion `c` (strings folded) hold for `ev`? A missing input, or one of the wrong
/// type, makes the criterion false whether or not it is negated: a rule never fires (and an
/// exception never vetoes) on data the sensor did not supply.
#[inline]
pub fn criterion_holds(c: &Criterion, ev: &Event<'_>) -> bool {
    let Some(input) = ev.input(c.field) else {
        return false;
    };
    let hit = match (&c.values, input) {
        (Values::Strs(list), Input::Str(s)) => list.iter().any(|p| str_op(c.op, s, p)),
        (Values::Ints(list), Input::Int(x)) => list.iter().any(|&v| match c.op {
            Op::IntEquals => x == v,
            Op::AnyBits => x & v != 0,
            Op::AllBits => x & v == v,
            _ => false,
        }),
        (Values::Ranges(list), Input::Int(x)) => list.iter().any(|&(lo, hi)| lo <= x && x <= hi),
        (Values::None, Input::Flag(b)) => match c.op {
            Op::IsTrue => b,
            Op::IsFalse => !b,
            _ => return false,
        },
        _ => return false,
    };
    hit != c.negate
}

#[inline]
fn str_op(op: Op, input: &[u16], pat: &[u16]) -> bool {
    match op {
        Op::StrEquals => text::eq_folded(input, pat),
        Op::StartsWith => text::starts_with_folded(input, pat),
        Op::EndsWith => text::ends_with_folded(input, pat),
        Op::Contains => text::contains_folded(input, pat),
        Op::Wildcard => text::wildcard_folded(input, pat),
        _ => false,
    }
}

/// Does rule `r` (strings folded) match `ev`: right type, every criterion holds, and no
/// exception set holds entirely?
#[inline]
pub fn rule_matches(r: &Rule, ev: &Event<'_>) -> bool {
    r.event == ev.kind
        && r.criteria.iter().all(|c| criterion_holds(c, ev))
        && !r
            .exceptions
            .iter()
            .any(|set| set.iter().all(|c| criterion_holds(c, ev)))
}

/// A copy of `content` with every string value case-folded, as the evaluator compares them.
pub fn fold_content(content: &Content) -> Result<Content, AllocError> {
    fn fold_list(list: &[Criterion]) -> Result<Vec<Criterion>, AllocError> {
        let mut out = Vec::new();
        out.try_reserve_exact(list.len()).map_err(|_| AllocError)?;
        for c in list {
            let values = match &c.values {
                Values::Strs(v) => {
                    let mut strs: Vec<Vec<u16>> = Vec::new();
                    strs.try_reserve_exact(v.len()).map_err(|_| AllocError)?;
                    for s in v {
                        let mut f: Vec<u16> = Vec::new();
                        f.try_reserve_exact(s.len()).map_err(|_| AllocError)?;
                        for &u in s {
                            crate::mem::push(&mut f, text::fold(u))?;
                        }
                        crate::mem::push(&mut strs, f)?;
                    }
                    Values::Strs(strs)
                }
                Values::Ints(v) => {
                    let mut w = Vec::new();
                    w.try_reserve_exact(v.len()).map_err(|_| AllocError)?;
                    crate::mem::extend_from_slice(&mut w, v)?;
                    Values::Ints(w)
                }
                Values::Ranges(v) => {
                    let mut w = Vec::new();
                    w.try_reserve_exact(v.len()).map_err(|_| AllocError)?;
                    crate::mem::extend_from_slice(&mut w, v)?;
                    Values::Ranges(w)
                }
                Values::None => Values::None,
            };
            let folded = Criterion {
                field: c.field,
                op: c.op,
                negate: c.negate,
                values,
            };
            crate::mem::push(&mut out, folded)?;
        }
        Ok(out)
    }
    let mut rules = Vec::new();
    rules
        .try_reserve_exact(content.rules.len())
        .map_err(|_| AllocError)?;
    for r in &content.rules {
        let mut exceptions = Vec::new();
        exceptions
            .try_reserve_exact(r.exceptions.len())
            .map_err(|_| AllocError)?;
        for set in &r.exceptions {
            crate::mem::push(&mut exceptions, fold_list(set)?)?;
        }
        let rule = Rule {
            id: r.id,
            event: r.event,
            action: r.action,
            criteria: fold_list(&r.criteria)?,
            exceptions,
        };
        crate::mem::push(&mut rules, rule)?;
    }
    Ok(Content {
        version: content.version,
        rules,
    })
}

/// Reference evaluator: every rule in file order, first match wins. `folded` must come
/// from [`fold_content`]. Linear in the number of rules; the engine must agree with it.
pub fn evaluate_scan(folded: &Content, ev: &Event<'_>) -> Option<Match> {
    folded
        .rules
        .iter()
        .enumerate()
        .find(|(_, r)| rule_matches(r, ev))
        .map(|(i, r)| Match {
            action: r.action,
            rule_id: r.id,
            rule_index: u32::try_from(i).unwrap_or(u32::MAX),
        })
}
