//! The compiled form: the flat arrays of rules, criteria, exception sets and values, the
//! literals and their postings, the per-event-type index, and the rule set's public
//! accessors.

use alloc::vec::Vec;

use super::automaton::Automaton;
use super::{NO_ANCHOR, idx};
use crate::schema::{Action, EventType, Op};

/// How a literal must sit in its field's input to hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Kind {
    Equals,
    Prefix,
    Suffix,
    Contains,
}

impl Kind {
    /// The literal kind an operator's values become; wildcards have none.
    pub(super) fn of(op: Op) -> Option<Kind> {
        match op {
            Op::StrEquals => Some(Kind::Equals),
            Op::StartsWith => Some(Kind::Prefix),
            Op::EndsWith => Some(Kind::Suffix),
            Op::Contains => Some(Kind::Contains),
            Op::Wildcard
            | Op::IntEquals
            | Op::AnyBits
            | Op::AllBits
            | Op::Range
            | Op::IsTrue
            | Op::IsFalse => None,
        }
    }
}

/// A distinct `(field, kind, folded string)` of one event type.
#[derive(Clone, Copy, Debug)]
pub(super) struct Lit {
    pub(super) field: u8,
    pub(super) kind: Kind,
    pub(super) len: u16,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct CRule {
    pub(super) id: u32,
    pub(super) crit: u32,
    pub(super) set: u32,
    pub(super) event: EventType,
    pub(super) action: Action,
    pub(super) ncrit: u8,
    pub(super) nsets: u8,
    /// Criterion the rule is anchored on, or `NO_ANCHOR`.
    pub(super) anchor: u8,
    /// The anchor holds whenever one of its literals does (not a wildcard): skip it.
    pub(super) anchor_exact: bool,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct CSet {
    pub(super) crit: u32,
    pub(super) n: u8,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct CCrit {
    /// First value in `svals` / `ivals` / `rvals`, by the operator's kind.
    pub(super) vals: u32,
    pub(super) field: u8,
    pub(super) op: Op,
    pub(super) negate: bool,
    pub(super) n: u8,
}

/// A string value: code units `off..off + len` of the folded string table, and its
/// literal (`NONE` for wildcards and literals left out of the automaton).
#[derive(Clone, Copy, Debug)]
pub(super) struct SVal {
    pub(super) off: u32,
    pub(super) lit: u32,
    pub(super) len: u16,
}

#[derive(Debug, Default)]
pub(super) struct TypeIndex {
    /// Rules of this type with no anchor, ascending: checked on every event.
    pub(super) always: Vec<u32>,
    /// Every rule of this type, ascending (the fallback when the hit set overflows).
    pub(super) all: Vec<u32>,
    /// One automaton over the literals of every field of this type.
    pub(super) ac: Option<Automaton>,
    /// Bit `f`: field `f` has literals.
    pub(super) fields: u32,
    /// Bit `f`: field `f` has literals that anchor rules; scanned for every event. The
    /// other fields' inputs are scanned only when a candidate needs them.
    pub(super) eager: u32,
    /// Indices of the derived inputs: path, name, extension, parent.
    pub(super) derived: Option<[u8; 4]>,
}

/// A validated, compiled rule set: what the driver activates.
#[derive(Debug)]
pub struct RuleSet {
    pub(super) version: u64,
    pub(super) digest: [u8; 32],
    /// The string table, case-folded.
    pub(super) strings: Vec<u16>,
    pub(super) rules: Vec<CRule>,
    pub(super) sets: Vec<CSet>,
    pub(super) crits: Vec<CCrit>,
    pub(super) svals: Vec<SVal>,
    pub(super) ivals: Vec<u64>,
    pub(super) rvals: Vec<(u64, u64)>,
    pub(super) lits: Vec<Lit>,
    /// Rules anchored on literal `l`: `postings[post_start[l]..post_start[l + 1]]`, ascending.
    pub(super) post_start: Vec<u32>,
    pub(super) postings: Vec<u32>,
    /// One per event type, by [`EventType::slot`]. On the heap, not inline: a type index
    /// is ~700 bytes, and a rule set is moved through several kernel stack frames on its
    /// way to activation (the kernel check's frame budget).
    pub(super) index: Vec<TypeIndex>,
}

impl RuleSet {
    pub(super) fn units(&self, off: u32, len: u16) -> &[u16] {
        let start = idx(off);
        self.strings
            .get(start..start.saturating_add(usize::from(len)))
            .unwrap_or(&[])
    }

    pub(super) fn crit(&self, r: &CRule, k: u8) -> Option<&CCrit> {
        self.crits.get(idx(r.crit).saturating_add(usize::from(k)))
    }

    pub(super) fn svals_of(&self, c: &CCrit) -> &[SVal] {
        let s = idx(c.vals);
        self.svals
            .get(s..s.saturating_add(usize::from(c.n)))
            .unwrap_or(&[])
    }

    pub(super) fn ints(&self, v: usize, n: usize) -> &[u64] {
        self.ivals.get(v..v.saturating_add(n)).unwrap_or(&[])
    }

    /// Content version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Digest from the content header.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when there are no rules (everything passes).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Rules checked on every event of `t` because they have no string anchor.
    pub fn unanchored(&self, t: EventType) -> usize {
        self.index.get(t.slot()).map_or(0, |ti| ti.always.len())
    }

    /// The criterion rule `index` is anchored on (its candidates come from that
    /// criterion's literals), or `None` when it is checked on every event.
    pub fn anchor(&self, index: u32) -> Option<u8> {
        self.rules
            .get(idx(index))
            .map(|r| r.anchor)
            .filter(|&a| a != NO_ANCHOR)
    }

    /// Literals in the automata (distinct field, kind and string).
    pub fn literals(&self) -> usize {
        self.lits.len()
    }

    /// Bytes held by the compiled form (arrays and automata, not counting spare capacity).
    pub fn heap_bytes(&self) -> usize {
        fn b<T>(v: &Vec<T>) -> usize {
            v.capacity().saturating_mul(core::mem::size_of::<T>())
        }
        let ac = self.index.iter().fold(0usize, |acc, ti| {
            let a = ti.ac.as_ref().map_or(0, Automaton::heap_bytes);
            acc.saturating_add(a)
                .saturating_add(b(&ti.all))
                .saturating_add(b(&ti.always))
        });
        [
            b(&self.strings),
            b(&self.rules),
            b(&self.sets),
            b(&self.crits),
            b(&self.svals),
            b(&self.ivals),
            b(&self.rvals),
            b(&self.lits),
            b(&self.post_start),
            b(&self.postings),
            ac,
        ]
        .into_iter()
        .fold(0, usize::saturating_add)
    }
}
