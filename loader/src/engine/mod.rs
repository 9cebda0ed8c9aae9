//! The compiled rule set and its evaluator.
//!
//! **Compile.** `RuleSet::load` runs the validator with a sink that builds a compact,
//! flat form straight from the file (it never builds the owned `Content`): one folded copy
//! of the string table, and arrays of rules, criteria, exception sets and values that
//! refer to it by offset. Every distinct string value of an `equals`, `starts-with`,
//! `ends-with` or `contains` criterion becomes a *literal* `(field, kind, string)`; per
//! event type, one Aho-Corasick automaton holds every literal of every field (its shallow
//! states have dense rows over the ASCII classes the literals use, within a budget of two
//! bytes per literal unit plus 16 KiB; see [`automaton::Automaton`]). Each rule is
//! *anchored* on the non-negated string criterion least likely to hold (estimated from the
//! operator, the field and the value; see [`build::rarity`]), and each literal of that criterion
//! lists the rule.
//!
//! **Evaluate.** One pass of the automaton over the path finds every literal of the path,
//! name, extension and parent fields at once (the derived inputs are positions in the path
//! when the sensor derived them with `split_path`; otherwise each is scanned alone), one
//! more pass per other string input. The literals that hold go into a small set on the
//! stack. Candidates are the rules listed by those literals, in ascending order, cut at
//! the best match so far. A candidate's other string criteria are membership tests in that
//! set (no text is searched again, the anchor is not re-checked); wildcards, integers and
//! flags are checked directly. First match in file order wins. Evaluation allocates
//! nothing; an event that makes more literals hold than the set has room for is decided by
//! checking every rule directly (correct, slower; never seen on realistic content).
//!
//! **Files.** `index.rs`: the compiled form and its accessors; `build.rs`: compilation
//! (the validator's sink, anchors, literals, postings); `automaton.rs`: the automaton;
//! `eval.rs`: evaluation. This file: what they share.

mod automaton;
mod build;
mod eval;
mod index;

pub use index::RuleSet;

use crate::error::AllocError;

/// The anchor of a rule checked on every event.
const NO_ANCHOR: u8 = u8::MAX;
/// No literal, no state, no rule.
const NONE: u32 = u32::MAX;

fn idx(x: u32) -> usize {
    usize::try_from(x).unwrap_or(usize::MAX)
}

fn u32_of(x: usize) -> Result<u32, AllocError> {
    u32::try_from(x).map_err(|_| AllocError)
}
