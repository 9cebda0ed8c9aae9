//! The compiled rule set and its evaluator.
//!
//! **Compile.** `RuleSet::load` runs the validator with a sink that builds a compact,
//! flat form straight from the file (it never builds the owned `Content`): one folded copy
//! of the string table, and arrays of rules, criteria, exception sets and values that
//! refer to it by offset. Equal criteria get one predicate id and equal exception sets one
//! set id; a rule equal to an earlier one never decides and is left out. Each rule is
//! *anchored* on the non-negated string criterion that makes it a candidate least often
//! (the chance of each value holding, from the operator, the field and the value, times
//! the number of rules with that criterion; see [`anchor::rarity`]). Each value of an
//! anchor is an *anchor literal* `(field, kind, string)` listing its rules, in runs that
//! share a *guard* (the criterion and the exception set they share most). Per event type,
//! prefix literals go into a forward trie, suffix and equality literals into a backward
//! trie, `contains` literals into one Aho-Corasick automaton per field; the `contains`
//! values of other criteria into a membership automaton. Every structure is bounded by the
//! string table's size plus a constant, and built in linear time (tries level by level
//! with radix sorts, hash maps with a bounded probe).
//!
//! **Evaluate.** Walks of the tries from where a field starts and ends, and a pass of each
//! field's automaton (which skips, at its root, what begins no literal), find the anchor
//! literals that hold; name, extension and parent are positions in the path when the
//! sensor derived them with `split_path`, so one walk serves several fields. Each literal
//! found has its runs checked at once, in ascending order, cut at the best match so far; a
//! run whose guard fails is passed over whole (variants of one rule shape share their
//! process filter and exception sets). Then the rules with no anchor, in runs too. A
//! candidate's criteria are checked directly, its anchor skipped; `contains` values are
//! looked up among the membership literals one scan of the field found, made the first
//! time a candidate needs it. First match in file order wins. Evaluation allocates nothing
//! and costs the same whatever the number of rules, as long as candidates stay rare.
//!
//! **Files.** `index.rs`: the compiled form and its accessors; `build.rs`: the sink and
//! the order of the passes; `shape.rs`: what rules share; `anchor.rs`: the anchor choice;
//! `lits.rs`: literals, runs and structures; `trie.rs`, `automaton.rs`, `map.rs`: the
//! data structures; `eval.rs`: evaluation. This file: what they share.

mod anchor;
mod automaton;
mod build;
mod eval;
mod index;
mod lits;
mod map;
mod shape;
mod trie;

pub use index::RuleSet;

use crate::error::AllocError;

/// The anchor of a rule checked on every event.
const NO_ANCHOR: u8 = u8::MAX;
/// No literal, no state, no rule.
const NONE: u32 = u32::MAX;
/// Fields per event type the index can address (the schema has at most 11).
const MAX_FIELDS: usize = 16;

fn idx(x: u32) -> usize {
    usize::try_from(x).unwrap_or(usize::MAX)
}

fn u32_of(x: usize) -> Result<u32, AllocError> {
    u32::try_from(x).map_err(|_| AllocError)
}
