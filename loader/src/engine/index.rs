//! The compiled form: the flat arrays of rules, criteria, exception sets and values (all
//! referring to one folded string table by offset), the anchor literals with the
//! candidate rules each one lists, the per-event-type structures that find literals, and
//! the rule set's public accessors.

use alloc::vec::Vec;

use super::automaton::Automaton;
use super::trie::Trie;
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

    pub(super) fn code(self) -> u8 {
        match self {
            Kind::Equals => 0,
            Kind::Prefix => 1,
            Kind::Suffix => 2,
            Kind::Contains => 3,
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
    /// Its *guard*: the criterion (index in `crits`) and the exception set (index in
    /// `sets`) it shares with the most others, `NONE` where it shares none. Consecutive
    /// candidates with the same guard are passed over together when the criterion fails
    /// or the set holds.
    pub(super) guard: u32,
    pub(super) gset: u32,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct CSet {
    pub(super) crit: u32,
    /// Equal ids, equal sets (same criteria in the same order).
    pub(super) id: u32,
    pub(super) n: u8,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct CCrit {
    /// First value in `svals` / `ivals` / `rvals`, by the operator's kind.
    pub(super) vals: u32,
    /// Equal predicates, equal criteria (field, operator, negation and values).
    pub(super) pred: u32,
    pub(super) field: u8,
    pub(super) op: Op,
    pub(super) negate: bool,
    pub(super) n: u8,
}

/// A string value: code units `off..off + len` of the folded string table, and its
/// membership literal for `contains` (`NONE` otherwise, and for literals over the budget:
/// those are compared directly).
#[derive(Clone, Copy, Debug)]
pub(super) struct SVal {
    pub(super) off: u32,
    pub(super) lit: u32,
    pub(super) len: u16,
}

/// What finds the anchor literals of one event type, and what it finds them in.
#[derive(Debug, Default)]
pub(super) struct TypeIndex {
    /// The rules of this type with no anchor, ascending: checked on every event.
    pub(super) always: Vec<u32>,
    /// Prefix literals: walked from the start of their field.
    pub(super) fwd: Option<Trie>,
    /// Suffix and equality literals, reversed: walked back from the end of their field.
    pub(super) bwd: Option<Trie>,
    /// `contains` literals (and the literal runs of wildcard anchors), one automaton per
    /// field: one pass over each field that has them.
    pub(super) ac: Vec<(u8, Automaton)>,
    /// Bit `f`: field `f` has prefix literals in `fwd`.
    pub(super) fwd_start: u32,
    /// Bit `f`: field `f` has literals in `bwd`.
    pub(super) bwd_end: u32,
    /// Bit `f`: field `f` has literals in `ac`.
    pub(super) ac_fields: u32,
    /// Membership literals (`contains` values of criteria that are not anchors), scanned
    /// only when a candidate needs one.
    pub(super) member: Option<Automaton>,
    /// Bit `f`: field `f` has membership literals.
    pub(super) member_fields: u32,
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
    /// Anchor literals; literal `l` lists `postings[post_start[l]..post_start[l + 1]]`.
    pub(super) lits: Vec<Lit>,
    pub(super) post_start: Vec<u32>,
    /// Rule indices, ascending per literal.
    pub(super) postings: Vec<u32>,
    /// Membership literals.
    pub(super) mlits: Vec<Lit>,
    /// One per event type, by [`EventType::slot`]. On the heap, not inline: a rule set is
    /// moved through several kernel stack frames on its way to activation (the kernel
    /// check's frame budget).
    pub(super) index: Vec<TypeIndex>,
}

impl RuleSet {
    pub(super) fn empty() -> RuleSet {
        RuleSet {
            version: 0,
            digest: [0; 32],
            strings: Vec::new(),
            rules: Vec::new(),
            sets: Vec::new(),
            crits: Vec::new(),
            svals: Vec::new(),
            ivals: Vec::new(),
            rvals: Vec::new(),
            lits: Vec::new(),
            post_start: Vec::new(),
            postings: Vec::new(),
            mlits: Vec::new(),
            index: Vec::new(),
        }
    }

    pub(super) fn units(&self, off: u32, len: u16) -> &[u16] {
        let start = idx(off);
        self.strings
            .get(start..start.saturating_add(usize::from(len)))
            .unwrap_or(&[])
    }

    /// The criteria of a rule (`ncrit` from `crit`) or of an exception set.
    pub(super) fn crits_at(&self, first: u32, n: u8) -> &[CCrit] {
        let s = idx(first);
        self.crits
            .get(s..s.saturating_add(usize::from(n)))
            .unwrap_or(&[])
    }

    pub(super) fn sets_of(&self, r: &CRule) -> &[CSet] {
        let s = idx(r.set);
        self.sets
            .get(s..s.saturating_add(usize::from(r.nsets)))
            .unwrap_or(&[])
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

    /// Literals the evaluator looks for: anchor literals and membership literals.
    pub fn literals(&self) -> usize {
        self.lits.len().saturating_add(self.mlits.len())
    }

    /// Bytes held by the compiled form (arrays, tries and automata, spare capacity
    /// included).
    pub fn heap_bytes(&self) -> usize {
        use crate::mem::heap_bytes as b;
        let structures = self.index.iter().fold(0usize, |acc, ti| {
            acc.saturating_add(ti.fwd.as_ref().map_or(0, Trie::heap_bytes))
                .saturating_add(ti.bwd.as_ref().map_or(0, Trie::heap_bytes))
                .saturating_add(
                    ti.ac
                        .iter()
                        .map(|(_, a)| a.heap_bytes())
                        .fold(0, usize::saturating_add),
                )
                .saturating_add(ti.member.as_ref().map_or(0, Automaton::heap_bytes))
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
            b(&self.mlits),
            b(&self.index),
            structures,
        ]
        .into_iter()
        .fold(0, usize::saturating_add)
    }
}
