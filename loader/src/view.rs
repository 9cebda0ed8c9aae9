//! Content decoded by reference, for the tools that show or test a file that may be hostile
//! (`failsafectl inspect`, `failsafectl test`). [`crate::validate`] copies every string
//! value into the owned [`Content`](crate::Content), so a file that references one long
//! string many times decodes to about a thousand times its size (issue 20: 3.4 GB for a
//! 3.3 MB file). A [`View`] makes exactly the validator's checks (the same walk, the same
//! errors) and keeps each string as a reference into the file's string table: its size
//! follows the file, about twice it at most. A tool then decodes one criterion at a time
//! ([`View::criterion`], at most 255 values of at most 1024 code units) or streams one
//! string at a time ([`View::units`]).
//!
//! Layout: flat tables in file order (rules, exception sets, criteria, and one table per
//! value kind), each item naming where its children start.

use alloc::vec::Vec;

use crate::content::{Criterion, Values};
use crate::error::{AllocError, ContentError};
use crate::format::{Header, Sink, walk, walk_tables};
use crate::mem;
use crate::schema::{Action, EventType, FieldKind, Op};

/// A rule: its fixed part and where its criteria and exception sets are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleRef {
    /// Author's id.
    pub id: u32,
    /// Event type.
    pub event: EventType,
    /// Action.
    pub action: Action,
    first_crit: u32,
    ncrit: u8,
    first_set: u32,
    nsets: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SetRef {
    first_crit: u32,
    ncrit: u8,
}

/// A criterion: its fixed part and where its values are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CritRef {
    /// Field index into the rule's event type.
    pub field: u8,
    /// Operator.
    pub op: Op,
    /// Negated.
    pub negate: bool,
    first: u32,
    n: u8,
}

/// A criterion's values, by reference.
#[derive(Clone, Copy, Debug)]
pub enum ValuesRef<'v> {
    /// Strings: (code unit offset, length in units) into the string table.
    Strs(&'v [(u32, u16)]),
    /// Integers.
    Ints(&'v [u64]),
    /// Inclusive ranges.
    Ranges(&'v [(u64, u64)]),
    /// No value (flag operators).
    None,
}

/// A validated content file whose strings stay in the file (see the module doc).
#[derive(Debug)]
pub struct View<'a> {
    /// The file's header.
    pub header: Header,
    t: Tables<'a>,
}

/// The tables a walk fills.
#[derive(Debug)]
struct Tables<'a> {
    strings: &'a [u8],
    rules: Vec<RuleRef>,
    sets: Vec<SetRef>,
    crits: Vec<CritRef>,
    strs: Vec<(u32, u16)>,
    ints: Vec<u64>,
    ranges: Vec<(u64, u64)>,
}

/// Validates `bytes` as [`crate::validate`] does (the same checks in the same order, the
/// same errors) and returns the file by reference. Two passes: the validator's walk
/// counting the items, then the structural half again into tables of exactly that size
/// (growing them would double their peak).
pub fn view(bytes: &[u8]) -> Result<View<'_>, ContentError> {
    let mut n = Counts::default();
    let header = walk(bytes, &mut n)?;
    let oom = |_| ContentError {
        at: crate::error::Location::default(),
        kind: crate::error::ErrorKind::OutOfMemory,
    };
    let mut t = Tables {
        strings: &[],
        rules: mem::with_capacity(n.rules).map_err(oom)?,
        sets: mem::with_capacity(n.sets).map_err(oom)?,
        crits: mem::with_capacity(n.crits).map_err(oom)?,
        strs: mem::with_capacity(n.strs).map_err(oom)?,
        ints: mem::with_capacity(n.ints).map_err(oom)?,
        ranges: mem::with_capacity(n.ranges).map_err(oom)?,
    };
    walk_tables(bytes, &header, &mut t)?;
    Ok(View { header, t })
}

/// The first pass: how many of each item.
#[derive(Default)]
struct Counts {
    rules: usize,
    sets: usize,
    crits: usize,
    strs: usize,
    ints: usize,
    ranges: usize,
}

impl Sink<'_> for Counts {
    fn strings(&mut self, _: &[u8]) -> Result<(), AllocError> {
        Ok(())
    }
    fn rule(&mut self, _: u32, _: EventType, _: Action, _: u8, _: u8) -> Result<(), AllocError> {
        self.rules = self.rules.saturating_add(1);
        Ok(())
    }
    fn set(&mut self, _: u8) -> Result<(), AllocError> {
        self.sets = self.sets.saturating_add(1);
        Ok(())
    }
    fn criterion(&mut self, _: u8, _: Op, _: bool, _: u8) -> Result<(), AllocError> {
        self.crits = self.crits.saturating_add(1);
        Ok(())
    }
    fn string(&mut self, _: u32, _: u16) -> Result<(), AllocError> {
        self.strs = self.strs.saturating_add(1);
        Ok(())
    }
    fn int(&mut self, _: u64) -> Result<(), AllocError> {
        self.ints = self.ints.saturating_add(1);
        Ok(())
    }
    fn range(&mut self, _: u64, _: u64) -> Result<(), AllocError> {
        self.ranges = self.ranges.saturating_add(1);
        Ok(())
    }
}

fn index(n: usize) -> Result<u32, AllocError> {
    u32::try_from(n).map_err(|_| AllocError)
}

impl<'a> Sink<'a> for Tables<'a> {
    fn strings(&mut self, table: &'a [u8]) -> Result<(), AllocError> {
        self.strings = table;
        Ok(())
    }
    fn rule(
        &mut self,
        id: u32,
        event: EventType,
        action: Action,
        criteria: u8,
        sets: u8,
    ) -> Result<(), AllocError> {
        let r = RuleRef {
            id,
            event,
            action,
            first_crit: index(self.crits.len())?,
            ncrit: criteria,
            first_set: index(self.sets.len())?,
            nsets: sets,
        };
        mem::push(&mut self.rules, r)
    }
    fn set(&mut self, criteria: u8) -> Result<(), AllocError> {
        let s = SetRef {
            first_crit: index(self.crits.len())?,
            ncrit: criteria,
        };
        mem::push(&mut self.sets, s)
    }
    fn criterion(&mut self, field: u8, op: Op, negate: bool, values: u8) -> Result<(), AllocError> {
        let first = match op.kind() {
            FieldKind::Str => self.strs.len(),
            FieldKind::Int if op == Op::Range => self.ranges.len(),
            FieldKind::Int => self.ints.len(),
            FieldKind::Flag => 0,
        };
        let c = CritRef {
            field,
            op,
            negate,
            first: index(first)?,
            n: values,
        };
        mem::push(&mut self.crits, c)
    }
    fn string(&mut self, offset: u32, len: u16) -> Result<(), AllocError> {
        mem::push(&mut self.strs, (offset, len))
    }
    fn int(&mut self, v: u64) -> Result<(), AllocError> {
        mem::push(&mut self.ints, v)
    }
    fn range(&mut self, lo: u64, hi: u64) -> Result<(), AllocError> {
        mem::push(&mut self.ranges, (lo, hi))
    }
}

/// `len` items of `table` from `first` (empty when out of range, which a walk that
/// filled the tables rules out).
fn part<T>(table: &[T], first: u32, len: u8) -> &[T] {
    let start = usize::try_from(first).unwrap_or(usize::MAX);
    let end = start.saturating_add(usize::from(len));
    table.get(start..end).unwrap_or(&[])
}

impl<'a> View<'a> {
    /// The rules, in file order.
    pub fn rules(&self) -> &[RuleRef] {
        &self.t.rules
    }

    /// A rule's criteria.
    pub fn criteria(&self, r: &RuleRef) -> &[CritRef] {
        part(&self.t.crits, r.first_crit, r.ncrit)
    }

    /// A rule's exception sets, each a list of criteria.
    pub fn exceptions(&self, r: &RuleRef) -> impl Iterator<Item = &[CritRef]> + '_ {
        part(&self.t.sets, r.first_set, r.nsets)
            .iter()
            .map(|s| part(&self.t.crits, s.first_crit, s.ncrit))
    }

    /// A criterion's values, by reference.
    pub fn values(&self, c: &CritRef) -> ValuesRef<'_> {
        match c.op.kind() {
            FieldKind::Str => ValuesRef::Strs(part(&self.t.strs, c.first, c.n)),
            FieldKind::Int if c.op == Op::Range => {
                ValuesRef::Ranges(part(&self.t.ranges, c.first, c.n))
            }
            FieldKind::Int => ValuesRef::Ints(part(&self.t.ints, c.first, c.n)),
            FieldKind::Flag => ValuesRef::None,
        }
    }

    /// The code units of a string value (a reference from [`ValuesRef::Strs`]).
    pub fn units(&self, s: (u32, u16)) -> impl Iterator<Item = u16> + 'a {
        let start = usize::try_from(s.0).unwrap_or(usize::MAX).saturating_mul(2);
        let end = start.saturating_add(usize::from(s.1).saturating_mul(2));
        self.t
            .strings
            .get(start..end)
            .unwrap_or(&[])
            .chunks_exact(2)
            .map(|b| match *b {
                [lo, hi] => u16::from_le_bytes([lo, hi]),
                _ => 0,
            })
    }

    /// One criterion decoded, its strings as authored (`fold`: case-folded, as the
    /// evaluator compares them). At most 255 values of at most 1024 code units.
    pub fn criterion(&self, c: &CritRef, fold: bool) -> Result<Criterion, AllocError> {
        let values = match self.values(c) {
            ValuesRef::Strs(refs) => {
                let mut list: Vec<Vec<u16>> = mem::with_capacity(refs.len())?;
                for &s in refs {
                    let mut u: Vec<u16> = mem::with_capacity(usize::from(s.1))?;
                    for x in self.units(s) {
                        mem::push(&mut u, if fold { crate::text::fold(x) } else { x })?;
                    }
                    mem::push(&mut list, u)?;
                }
                Values::Strs(list)
            }
            ValuesRef::Ints(v) => {
                let mut w = mem::with_capacity(v.len())?;
                mem::extend_from_slice(&mut w, v)?;
                Values::Ints(w)
            }
            ValuesRef::Ranges(v) => {
                let mut w = mem::with_capacity(v.len())?;
                mem::extend_from_slice(&mut w, v)?;
                Values::Ranges(w)
            }
            ValuesRef::None => Values::None,
        };
        Ok(Criterion {
            field: c.field,
            op: c.op,
            negate: c.negate,
            values,
        })
    }
}
