//! The decoding validator: the checks of [`super::check`], with a sink that builds the
//! owned [`Content`] tools read.

use alloc::vec::Vec;

use super::check::{Sink, walk};
use super::{Validated, us};
use crate::content::{Content, Criterion, Rule, Values};
use crate::error::{AllocError, ContentError};
use crate::mem;
use crate::schema::{Action, EventType, FieldKind, Op};

/// Builds the owned [`Content`] for [`validate`].
struct Decoder<'a> {
    table: &'a [u8],
    rules: Vec<Rule>,
    in_set: bool,
}

impl Decoder<'_> {
    fn list(&mut self) -> Option<&mut Vec<Criterion>> {
        let r = self.rules.last_mut()?;
        if self.in_set {
            r.exceptions.last_mut()
        } else {
            Some(&mut r.criteria)
        }
    }
    fn values(&mut self) -> Option<&mut Values> {
        self.list()?.last_mut().map(|c| &mut c.values)
    }
}

impl<'a> Sink<'a> for Decoder<'a> {
    fn strings(&mut self, table: &'a [u8]) -> Result<(), AllocError> {
        self.table = table;
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
        let rule = Rule {
            id,
            event,
            action,
            criteria: mem::with_capacity(usize::from(criteria))?,
            exceptions: mem::with_capacity(usize::from(sets))?,
        };
        self.in_set = false;
        mem::push(&mut self.rules, rule)
    }
    fn set(&mut self, criteria: u8) -> Result<(), AllocError> {
        let set = mem::with_capacity(usize::from(criteria))?;
        let r = self.rules.last_mut().ok_or(AllocError)?;
        mem::push(&mut r.exceptions, set)?;
        self.in_set = true;
        Ok(())
    }
    fn criterion(&mut self, field: u8, op: Op, negate: bool, values: u8) -> Result<(), AllocError> {
        let n = usize::from(values);
        let values = match op.kind() {
            FieldKind::Str => Values::Strs(mem::with_capacity(n)?),
            FieldKind::Int if op == Op::Range => Values::Ranges(mem::with_capacity(n)?),
            FieldKind::Int => Values::Ints(mem::with_capacity(n)?),
            FieldKind::Flag => Values::None,
        };
        let c = Criterion {
            field,
            op,
            negate,
            values,
        };
        mem::push(self.list().ok_or(AllocError)?, c)
    }
    fn string(&mut self, offset: u32, len: u16) -> Result<(), AllocError> {
        let start = us(offset).saturating_mul(2);
        let end = start.saturating_add(usize::from(len).saturating_mul(2));
        let bytes = self.table.get(start..end).ok_or(AllocError)?;
        let mut units: Vec<u16> = mem::with_capacity(usize::from(len))?;
        for c in bytes.chunks_exact(2) {
            if let [a, b] = *c {
                mem::push(&mut units, u16::from_le_bytes([a, b]))?;
            }
        }
        match self.values() {
            Some(Values::Strs(v)) => mem::push(v, units),
            _ => Err(AllocError),
        }
    }
    fn int(&mut self, x: u64) -> Result<(), AllocError> {
        match self.values() {
            Some(Values::Ints(v)) => mem::push(v, x),
            _ => Err(AllocError),
        }
    }
    fn range(&mut self, lo: u64, hi: u64) -> Result<(), AllocError> {
        match self.values() {
            Some(Values::Ranges(v)) => mem::push(v, (lo, hi)),
            _ => Err(AllocError),
        }
    }
}

/// Validates a content file completely and decodes it into the owned [`Content`] that
/// tools (`failsafectl inspect`, tests) read. Makes exactly the checks of [`check`]. The
/// decoded form copies every string value, so its size follows the *decoded* content, not
/// the file: a file that references one long string many times decodes large. The kernel
/// path (`RuleSet::load`) never builds it.
pub fn validate(bytes: &[u8]) -> Result<Validated, ContentError> {
    let mut d = Decoder {
        table: &[],
        rules: Vec::new(),
        in_set: false,
    };
    let header = walk(bytes, &mut d)?;
    Ok(Validated {
        header,
        content: Content {
            version: header.version,
            rules: d.rules,
        },
    })
}
