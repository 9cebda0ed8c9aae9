//! Compilation: the validator's sink that builds the flat arrays straight from the file
//! (or from owned content), the anchor choice ([`rarity`]), and the literals, postings and
//! automata built from them.

use alloc::vec::Vec;

use super::automaton::Automaton;
use super::index::{CCrit, CRule, CSet, Kind, Lit, RuleSet, SVal, TypeIndex};
use super::{NO_ANCHOR, NONE, idx, u32_of};
use crate::content::{Content, Values};
use crate::error::{AllocError, ContentError, ErrorKind, Location};
use crate::format::{Header, Sink, Validated, walk, walk_tables};
use crate::mem::{self, push};
use crate::schema::{Action, EventType, FieldKind, Op};
use crate::text::{fold, longest_literal};
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
        };
        push(&mut self.rs.rules, r)
    }
    fn set(&mut self, n: u8) -> Result<(), AllocError> {
        let crit = u32_of(self.rs.crits.len())?;
        push(&mut self.rs.sets, CSet { crit, n })
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

/// Estimated selectivity of one value as `-log2` of the chance that it holds on an event,
/// from the operator, the field's role and the value. Rough on purpose; what matters is the
/// order: a rare file name beats a common path prefix of any length, a file name beats a
/// directory fragment, a long suffix beats a short one.
fn rarity(role: Role, kind: Kind, v: &[u16]) -> u32 {
    let len = u32::try_from(v.len()).unwrap_or(u32::MAX);
    let has_sep = v.iter().any(|&u| u == 0x5C || u == 0x2F);
    let bits = match (kind, role) {
        (Kind::Equals, Role::Ext) => len.saturating_mul(2),
        (Kind::Equals, Role::Name) => len.saturating_add(8),
        (Kind::Equals, Role::Path) => len.saturating_add(16),
        // A machine runs a few hundred images, and the common ones write most files: a
        // value naming an image (`\winword.exe`) holds on a fair share of events whatever
        // its length.
        (Kind::Equals | Kind::Suffix, Role::Process) => len.min(6),
        (Kind::Suffix, _) => len,
        // Directory prefixes are shared by most events: only what follows the volume
        // prefix (`\Device\HarddiskVolumeN\`, 24 units) says anything.
        (Kind::Prefix, Role::Path | Role::Process) => len.saturating_sub(24) / 4,
        (Kind::Prefix, Role::Name | Role::Ext) => len,
        (Kind::Contains, _) if has_sep => len / 3,
        (Kind::Contains, _) => len,
    };
    bits.min(24)
}

/// What a string field holds, for [`rarity`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Path,
    Name,
    Ext,
    /// The image path of the requesting process.
    Process,
}

fn role(t: EventType, field: u8) -> Role {
    let name = t.field(field).map_or("", |f| f.name);
    match name {
        "name" => Role::Name,
        "extension" => Role::Ext,
        "process" => Role::Process,
        _ => Role::Path,
    }
}

/// Literals of more than this many code units in total (per rule set, beyond the string
/// table's own size) stay out of the automata and are checked directly: it bounds the
/// automata by the file size even when a file references overlapping substrings of one
/// long string many times.
const EXTRA_LITERAL_UNITS: usize = 4096;
/// Bytes of dense automaton rows every event type gets, beyond two per literal unit.
const DENSE_BYTES: usize = 16 * 1024;

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
        })
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
        })
    }

    /// Compiles validated content (already decoded by [`crate::validate`]).
    pub fn compile(v: &Validated) -> Result<RuleSet, AllocError> {
        let mut b = Builder {
            raw: &[],
            rs: RuleSet::empty(),
        };
        replay(&v.content, &mut b)?;
        b.rs.finish(&v.header)
    }

    fn empty() -> RuleSet {
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
            index: Vec::new(),
        }
    }

    /// Anchors, literals, postings and automata, once the flat arrays are complete.
    fn finish(mut self, h: &Header) -> Result<RuleSet, AllocError> {
        self.version = h.version;
        self.digest = h.digest;
        // 1. Anchor every rule on the non-negated string criterion that makes it a
        // candidate least often: estimated chance of each value holding, times the number
        // of rules whose criteria share that value (all of them would be candidates with
        // it, so a prefix or process filter common to many rules is a poor anchor).
        let mut shared: Vec<(u8, u8, Kind, u32, u16)> = Vec::new();
        for r in &self.rules {
            for k in 0..r.ncrit {
                let Some(c) = self.crit(r, k) else { break };
                let Some(kind) = Kind::of(c.op) else { continue };
                if c.negate {
                    continue;
                }
                let slot = u8::try_from(r.event.slot()).unwrap_or(u8::MAX);
                for v in self.svals_of(c) {
                    push(&mut shared, (slot, c.field, kind, v.off, v.len))?;
                }
            }
        }
        mem::heapsort_by(&mut shared, |a, b| a < b);
        let sharing = |key: (u8, u8, Kind, u32, u16)| -> u32 {
            let lo = shared.partition_point(|x| *x < key);
            let hi = shared.partition_point(|x| *x <= key);
            u32::try_from(hi.saturating_sub(lo))
                .unwrap_or(u32::MAX)
                .max(1)
        };
        for i in 0..self.rules.len() {
            let Some(r) = self.rules.get(i).copied() else {
                break;
            };
            let mut best: Option<(u32, u8, bool)> = None;
            for k in 0..r.ncrit {
                let Some(c) = self.crit(&r, k) else { break };
                if c.negate || c.op.kind() != FieldKind::Str {
                    continue;
                }
                let rl = role(r.event, c.field);
                let mut p = 0u32;
                let mut ok = true;
                for v in self.svals_of(c) {
                    let s = self.units(v.off, v.len);
                    let (kind, pat) = match Kind::of(c.op) {
                        Some(kind) => (kind, s),
                        None => (Kind::Contains, longest_literal(s)),
                    };
                    if pat.is_empty() {
                        ok = false;
                        break;
                    }
                    let bits = rarity(rl, kind, pat);
                    let slot = u8::try_from(r.event.slot()).unwrap_or(u8::MAX);
                    let n = match Kind::of(c.op) {
                        Some(kind) => sharing((slot, c.field, kind, v.off, v.len)),
                        None => 1,
                    };
                    let each = (1u32 << 24).checked_shr(bits).unwrap_or(0).max(1);
                    p = p.saturating_add(each.saturating_mul(n));
                }
                if ok && best.is_none_or(|(bp, _, _)| p < bp) {
                    best = Some((p, k, Kind::of(c.op).is_some()));
                }
            }
            if let (Some((_, k, exact)), Some(slot)) = (best, self.rules.get_mut(i)) {
                slot.anchor = k;
                slot.anchor_exact = exact;
            }
        }
        drop(shared);
        // 2. Literal keys: every value of an exact string criterion (membership), and the
        // longest literal run of every wildcard anchor value (candidates only).
        // (type slot, field, kind, offset, length, tag): tag < svals.len() is a value;
        // otherwise `tag - svals.len()` is the rule whose wildcard anchor this run is.
        let mut keys: Vec<(u8, u8, Kind, u32, u16, u32)> = Vec::new();
        let nvals = self.svals.len();
        for (ri, r) in self.rules.iter().enumerate() {
            let slot = u8::try_from(r.event.slot()).unwrap_or(u8::MAX);
            let all = u32::from(r.ncrit).saturating_add(
                self.sets
                    .get(idx(r.set)..idx(r.set).saturating_add(usize::from(r.nsets)))
                    .unwrap_or(&[])
                    .iter()
                    .map(|s| u32::from(s.n))
                    .fold(0, u32::saturating_add),
            );
            for k in 0..all {
                let Some(c) = self.crits.get(idx(r.crit).saturating_add(idx(k))) else {
                    break;
                };
                if c.op.kind() != FieldKind::Str {
                    continue;
                }
                let kind = Kind::of(c.op);
                for (j, v) in self.svals_of(c).iter().enumerate() {
                    let tag = idx(c.vals).saturating_add(j);
                    match kind {
                        Some(kind) => {
                            push(&mut keys, (slot, c.field, kind, v.off, v.len, u32_of(tag)?))?
                        }
                        None if u32::from(r.anchor) == k => {
                            let s = self.units(v.off, v.len);
                            let run = longest_literal(s);
                            let at = s.len().saturating_sub(run.len());
                            // Offset of the run: find it at its position in `s`.
                            let lead = (0..=at)
                                .find(|&o| s.get(o..o.saturating_add(run.len())) == Some(run))
                                .unwrap_or(0);
                            let off = v.off.saturating_add(u32_of(lead)?);
                            let len = u16::try_from(run.len()).unwrap_or(0);
                            let tag = u32_of(nvals.saturating_add(ri))?;
                            push(&mut keys, (slot, c.field, Kind::Contains, off, len, tag))?;
                        }
                        None => {}
                    }
                }
            }
        }
        mem::heapsort_by(&mut keys, |a, b| {
            (a.0, a.1, a.2, a.3, a.4) < (b.0, b.1, b.2, b.3, b.4)
        });
        // 3. Distinct keys become literals, within the unit budget.
        let budget = self.strings.len().saturating_add(EXTRA_LITERAL_UNITS);
        let mut used = 0usize;
        let mut wild: Vec<(u32, u32)> = Vec::new(); // (literal, rule) of wildcard anchors
        let mut lit_slot: Vec<u8> = Vec::new();
        let mut lit_off: Vec<u32> = Vec::new();
        let mut prev: Option<(u8, u8, Kind, u32, u16)> = None;
        let mut cur = NONE;
        for &(slot, field, kind, off, len, tag) in &keys {
            let key = (slot, field, kind, off, len);
            if prev != Some(key) {
                prev = Some(key);
                used = used.saturating_add(usize::from(len));
                if used > budget {
                    cur = NONE;
                } else {
                    cur = u32_of(self.lits.len())?;
                    push(&mut self.lits, Lit { field, kind, len })?;
                    push(&mut lit_slot, slot)?;
                    push(&mut lit_off, off)?;
                }
            }
            match self.svals.get_mut(idx(tag)) {
                Some(v) => v.lit = cur,
                None if cur != NONE => push(&mut wild, (cur, tag.saturating_sub(u32_of(nvals)?)))?,
                None => {}
            }
        }
        drop(keys);
        // 4. Postings: (literal, rule) for every anchored rule whose anchor is indexed.
        let mut pairs: Vec<(u32, u32)> = wild;
        for (ri, r) in self.rules.iter_mut().enumerate() {
            let ri = u32_of(ri)?;
            let Some(c) = self
                .crits
                .get(idx(r.crit).saturating_add(usize::from(r.anchor)))
            else {
                continue;
            };
            if r.anchor == NO_ANCHOR || !r.anchor_exact {
                continue;
            }
            let s = idx(c.vals);
            let vals = self
                .svals
                .get(s..s.saturating_add(usize::from(c.n)))
                .unwrap_or(&[]);
            if vals.iter().any(|v| v.lit == NONE) {
                r.anchor = NO_ANCHOR; // over the budget: checked on every event
                continue;
            }
            for v in vals {
                push(&mut pairs, (v.lit, ri))?;
            }
        }
        // A wildcard anchor whose run was left out of the automata anchors nothing.
        for i in 0..self.rules.len() {
            let ri = u32_of(i)?;
            if let Some(r) = self.rules.get_mut(i)
                && r.anchor != NO_ANCHOR
                && !r.anchor_exact
                && !pairs.iter().any(|&(_, x)| x == ri)
            {
                r.anchor = NO_ANCHOR;
            }
        }
        mem::heapsort_by(&mut pairs, |a, b| a < b);
        self.post_start = mem::with_capacity(self.lits.len().saturating_add(1))?;
        self.postings = mem::with_capacity(pairs.len())?;
        let mut p = 0usize;
        for l in 0..self.lits.len() {
            push(&mut self.post_start, u32_of(self.postings.len())?)?;
            let l = u32_of(l)?;
            while let Some(&(pl, r)) = pairs.get(p) {
                if pl != l {
                    break;
                }
                if self.postings.last() != Some(&r)
                    || self.postings.len() == idx(*self.post_start.last().unwrap_or(&0))
                {
                    push(&mut self.postings, r)?;
                }
                p = p.saturating_add(1);
            }
        }
        push(&mut self.post_start, u32_of(self.postings.len())?)?;
        drop(pairs);
        // 5. Per event type: rule lists, fields with literals, one automaton.
        self.index = mem::with_capacity(EventType::ALL.len())?;
        for _ in EventType::ALL {
            push(&mut self.index, TypeIndex::default())?;
        }
        for t in EventType::ALL {
            let slot = t.slot();
            // Built in place: a type index is ~700 bytes, too big to assemble in a kernel
            // stack frame and move.
            let Some(ti) = self.index.get_mut(slot) else {
                continue;
            };
            for (i, r) in self.rules.iter().enumerate().filter(|(_, r)| r.event == t) {
                push(&mut ti.all, u32_of(i)?)?;
                if r.anchor == NO_ANCHOR {
                    push(&mut ti.always, u32_of(i)?)?;
                }
            }
            let slot8 = u8::try_from(slot).unwrap_or(u8::MAX);
            let mut pats: Vec<(&[u16], u32)> = Vec::new();
            for (l, lit) in self.lits.iter().enumerate() {
                if lit_slot.get(l) != Some(&slot8) {
                    continue;
                }
                let off = lit_off.get(l).copied().unwrap_or(0);
                let start = idx(off);
                let s = self
                    .strings
                    .get(start..start.saturating_add(usize::from(lit.len)))
                    .unwrap_or(&[]);
                push(&mut pats, (s, u32_of(l)?))?;
                let bit = 1u32.checked_shl(u32::from(lit.field)).unwrap_or(0);
                ti.fields |= bit;
                let ps = self.post_start.get(l).copied().unwrap_or(0);
                let pe = self
                    .post_start
                    .get(l.saturating_add(1))
                    .copied()
                    .unwrap_or(0);
                if pe > ps {
                    ti.eager |= bit;
                }
            }
            mem::heapsort_by(&mut pats, |a, b| a < b);
            if !pats.is_empty() {
                // Dense rows: a constant plus two bytes per literal unit of this type, so
                // the rows grow no faster than the literals (bounded by the string table
                // and `EXTRA_LITERAL_UNITS`).
                let units = pats
                    .iter()
                    .map(|(p, _)| p.len())
                    .fold(0, usize::saturating_add);
                let dense = DENSE_BYTES.saturating_add(units.saturating_mul(2));
                ti.ac = Some(Automaton::build(&pats, dense)?);
            }
            let f = |n: &str| t.field_index(n);
            ti.derived = match (f("path"), f("name"), f("extension"), f("parent")) {
                (Some(a), Some(b), Some(c), Some(d)) => Some([a, b, c, d]),
                _ => None,
            };
        }
        Ok(self)
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
