//! Owned representation of content: what the validator produces and the encoder consumes.
//! Strings are kept as authored (UTF-16, original case) so that content round-trips.

use alloc::vec::Vec;

use crate::schema::{Action, EventType, Op};

/// Hard limits. The validator enforces them; the encoder refuses to exceed them.
pub mod limits {
    /// Largest content file accepted (bytes). Also the driver's read limit.
    pub const MAX_FILE_BYTES: usize = 32 * 1024 * 1024;
    /// Rules per file.
    pub const MAX_RULES: usize = 200_000;
    /// Criteria per rule, and per exception set.
    pub const MAX_CRITERIA: usize = 32;
    /// Exception sets per rule.
    pub const MAX_EXCEPTION_SETS: usize = 16;
    /// Values in one criterion's list.
    pub const MAX_VALUES: usize = 255;
    /// UTF-16 code units in one string value.
    pub const MAX_STRING_UNITS: usize = 1024;
}

/// A value list of one criterion; its variant follows from the operator's field kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Values {
    /// String operators: any of these (UTF-16, as authored).
    Strs(Vec<Vec<u16>>),
    /// `equals` / `any-bits` / `all-bits` on integers: any of these.
    Ints(Vec<u64>),
    /// `range`: any of these inclusive ranges.
    Ranges(Vec<(u64, u64)>),
    /// `is-true` / `is-false`: no value.
    None,
}

impl Values {
    /// Number of values in the list.
    pub fn len(&self) -> usize {
        match self {
            Values::Strs(v) => v.len(),
            Values::Ints(v) => v.len(),
            Values::Ranges(v) => v.len(),
            Values::None => 0,
        }
    }

    /// True when the list holds no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `(field, operator, values)`, optionally negated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Criterion {
    /// Field index into the rule's event type.
    pub field: u8,
    /// Operator.
    pub op: Op,
    /// Negated: the criterion holds when the operator does not.
    pub negate: bool,
    /// Values (any of).
    pub values: Values,
}

/// One rule (template instance).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Author's id, unique in the file.
    pub id: u32,
    /// Event type the rule applies to.
    pub event: EventType,
    /// Decision when it matches.
    pub action: Action,
    /// All must hold.
    pub criteria: Vec<Criterion>,
    /// Exception sets: if every criterion of any one set holds, the rule does not match.
    pub exceptions: Vec<Vec<Criterion>>,
}

/// A content file, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Content {
    /// Monotonic content version (>= 1).
    pub version: u64,
    /// Rules in file order; the first that matches decides.
    pub rules: Vec<Rule>,
}
