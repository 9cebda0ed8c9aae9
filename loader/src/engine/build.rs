//! Compilation: the validator's sink that builds the flat arrays straight from the file
//! (or from owned content), and the passes that turn them into the index: what rules
//! share (`shape.rs`), the anchors (`anchor.rs`), the literals and their structures
//! (`lits.rs`).

use alloc::vec::Vec;

use super::index::{CCrit, CRule, CSet, RuleSet, SVal, TypeIndex};
use super::{NO_ANCHOR, NONE, anchor, lits, shape, u32_of};
use crate::content::{Content, Values};
use crate::error::{AllocError, ContentError, ErrorKind, Location};
use crate::format::{Header, Sink, Validated, walk, walk_tables};
use crate::mem::{self, push};
use crate::schema::{Action, EventType, FieldKind, Op};
use crate::text::fold;
use crate::trust::Trust;

/// Builds the flat arrays from the validator's items (or from owned content).
struct Builder<'a> {
    raw: &'a [u8],
    rs: RuleSet,
}

impl<'a> Sink<'a> for Builder<'a> {
    fn strings(&mut self, table: &'a [u8]) -> Result<(), AllocError> {
        self.raw = table;
        self.rs.strings = mem::with_capacity(table.len() / 2)?;
        for c in table.chunks_exact(2) {
            if let [lo, hi] = *c {
                push(&mut self.rs.strings, fold(u16::from_le_bytes([lo, hi])))?;
            }
        }
        Ok(())
    }
    fn rule(
        &mut self,
        id: u32,
        event: EventType,
        action: Action,
        ncrit: u8,
        nsets: u8,
    ) -> Result<(), AllocError> {
        let r = CRule {
            id,
            crit: u32_of(self.rs.crits.len())?,
            set: u32_of(self.rs.sets.len())?,
            event,
            action,
            ncrit,
            nsets,
            anchor: NO_ANCHOR,
            anchor_exact: false,
            guard: NONE,
            gset: NONE,
        };
        push(&mut self.rs.rules, r)
    }
    fn set(&mut self, n: u8) -> Result<(), AllocError> {
        let crit = u32_of(self.rs.crits.len())?;
        push(&mut self.rs.sets, CSet { crit, id: NONE, n })
    }
    fn criterion(&mut self, field: u8, op: Op, negate: bool, n: u8) -> Result<(), AllocError> {
        let vals = match op.kind() {
            FieldKind::Str => self.rs.svals.len(),
            FieldKind::Int if op == Op::Range => self.rs.rvals.len(),
            FieldKind::Int => self.rs.ivals.len(),
            FieldKind::Flag => 0,
        };
        let c = CCrit {
            vals: u32_of(vals)?,
            pred: NONE,
            field,
            op,
            negate,
            n,
        };
        push(&mut self.rs.crits, c)
    }
    fn string(&mut self, off: u32, len: u16) -> Result<(), AllocError> {
        push(
            &mut self.rs.svals,
            SVal {
                off,
                lit: NONE,
                len,
            },
        )
    }
    fn int(&mut self, v: u64) -> Result<(), AllocError> {
        push(&mut self.rs.ivals, v)
    }
    fn range(&mut self, lo: u64, hi: u64) -> Result<(), AllocError> {
        push(&mut self.rs.rvals, (lo, hi))
    }
}

impl RuleSet {
    /// Validates and compiles content bytes (structure and digest; no signature check: the
    /// kernel's start uses [`RuleSet::load_trusted`]). Never builds the owned `Content`;
    /// see docs/performance.md for the memory bound.
    pub fn load(bytes: &[u8]) -> Result<RuleSet, ContentError> {
        let mut b = Builder {
            raw: &[],
            rs: RuleSet::empty(),
        };
        let header = walk(bytes, &mut b)?;
        let _ = b.raw;
        b.rs.finish(&header).map_err(|AllocError| ContentError {
            at: Location::default(),
            kind: ErrorKind::OutOfMemory,
        })?;
        Ok(b.rs)
    }

    /// What the kernel activates: checks the file's authenticity first
    /// ([`crate::trust::verify`]: signature by a trusted key, then the digest) and only then
    /// parses and compiles it, as [`RuleSet::load`] does (without hashing the tables twice).
    pub fn load_trusted(bytes: &[u8], trust: &Trust) -> Result<RuleSet, ContentError> {
        // Verification first, from this small frame; the builder lives in the next one,
        // so the two never share the stack (kernel stacks are 24 KiB).
        let verified = crate::trust::verify(bytes, trust)?;
        Self::load_verified(bytes, &verified.header)
    }

    /// Parses and compiles a file whose signature and digest `trust::verify` checked.
    #[inline(never)]
    fn load_verified(bytes: &[u8], header: &Header) -> Result<RuleSet, ContentError> {
        let mut b = Builder {
            raw: &[],
            rs: RuleSet::empty(),
        };
        let header = walk_tables(bytes, header, &mut b)?;
        let _ = b.raw;
        b.rs.finish(&header).map_err(|AllocError| ContentError {
            at: Location::default(),
            kind: ErrorKind::OutOfMemory,
        })?;
        Ok(b.rs)
    }

    /// Compiles validated content (already decoded by [`crate::validate`]).
    pub fn compile(v: &Validated) -> Result<RuleSet, AllocError> {
        let mut b = Builder {
            raw: &[],
            rs: RuleSet::empty(),
        };
        replay(&v.content, &mut b)?;
        b.rs.finish(&v.header)?;
        Ok(b.rs)
    }

    /// The index, once the flat arrays are complete. In place, and each pass in a frame of
    /// its own: the kernel check's stack budget counts the deepest chain through here.
    fn finish(&mut self, h: &Header) -> Result<(), AllocError> {
        self.version = h.version;
        self.digest = h.digest;
        self.index = mem::with_capacity(EventType::ALL.len())?;
        for _ in EventType::ALL {
            push(&mut self.index, TypeIndex::default())?;
        }
        let shares = shape::share(self)?;
        shape::compact(self, &shares)?;
        let dup = shape::duplicates(self)?;
        anchor::choose(self, &dup)?;
        shape::guards(self, &shares)?;
        drop(shares);
        lits::build(self, &dup)
    }
}

/// Feeds owned content to a sink as if it had been read from a file.
fn replay<'a>(c: &Content, b: &mut Builder<'a>) -> Result<(), AllocError> {
    use crate::content::Criterion;
    let units: usize = c
        .rules
        .iter()
        .flat_map(|r| r.criteria.iter().chain(r.exceptions.iter().flatten()))
        .map(|c| match &c.values {
            Values::Strs(v) => v.iter().map(Vec::len).fold(0, usize::saturating_add),
            Values::Ints(_) | Values::Ranges(_) | Values::None => 0,
        })
        .fold(0, usize::saturating_add);
    b.rs.strings = mem::with_capacity(units)?;
    let crit = |b: &mut Builder<'a>, c: &Criterion| -> Result<(), AllocError> {
        let n = u8::try_from(c.values.len()).map_err(|_| AllocError)?;
        b.criterion(c.field, c.op, c.negate, n)?;
        match &c.values {
            Values::Strs(v) => {
                for s in v {
                    let off = u32_of(b.rs.strings.len())?;
                    for &u in s {
                        push(&mut b.rs.strings, fold(u))?;
                    }
                    b.string(off, u16::try_from(s.len()).map_err(|_| AllocError)?)?;
                }
            }
            Values::Ints(v) => v.iter().try_for_each(|&x| b.int(x))?,
            Values::Ranges(v) => v.iter().try_for_each(|&(lo, hi)| b.range(lo, hi))?,
            Values::None => {}
        }
        Ok(())
    };
    for r in &c.rules {
        let n = u8::try_from(r.criteria.len()).map_err(|_| AllocError)?;
        let s = u8::try_from(r.exceptions.len()).map_err(|_| AllocError)?;
        b.rule(r.id, r.event, r.action, n, s)?;
        for c in &r.criteria {
            crit(b, c)?;
        }
        for set in &r.exceptions {
            b.set(u8::try_from(set.len()).map_err(|_| AllocError)?)?;
            for c in set {
                crit(b, c)?;
            }
        }
    }
    Ok(())
}
