//! Literals and what finds them. Every value of an anchor criterion becomes an anchor
//! literal `(field, kind, folded string)` that lists its candidate rules; per event type, prefix literals go into a forward trie, suffix and equality
//! literals into a backward trie (each walked once from where the field starts or ends),
//! `contains` literals into an automaton (one pass over the fields that have them). The values of `contains` criteria that
//! are not anchors become membership literals, in one more automaton scanned only when a
//! candidate needs it. Each structure of a type holds at most the string table's units
//! plus [`EXTRA_LITERAL_UNITS`]: literals past that are compared directly (membership) or
//! leave their rule unanchored (anchors), so a file that references overlapping parts of
//! one long string many times cannot make them large.

use alloc::vec::Vec;

use super::automaton::Automaton;
use super::index::{Kind, Lit, RuleSet};
use super::map::Map;
use super::trie::{Levels, Pat, Trie};
use super::{MAX_FIELDS, NO_ANCHOR, NONE, idx, u32_of};
use crate::error::AllocError;
use crate::mem::{self, push};
use crate::schema::{EventType, Op};
use crate::text::longest_literal;

/// Literal units a structure may hold beyond the string table's size.
pub(super) const EXTRA_LITERAL_UNITS: usize = 4096;
/// Bytes of dense automaton rows every automaton gets, beyond two per literal unit.
const DENSE_BYTES: usize = 16 * 1024;

/// Where a literal is looked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Home {
    Fwd,
    Bwd,
    Ac,
    Member,
}

impl Home {
    fn at(self) -> usize {
        match self {
            Home::Fwd => 0,
            Home::Bwd => 1,
            Home::Ac => 2,
            Home::Member => 3,
        }
    }
}

pub(super) fn key(slot: usize, field: u8, kind: Kind, off: u32, len: u16) -> u64 {
    (u64::try_from(slot).unwrap_or(0) << 58)
        | (u64::from(field) << 50)
        | (u64::from(kind.code()) << 48)
        | (u64::from(len) << 32)
        | u64::from(off)
}

fn bit(field: u8) -> u32 {
    1u32.checked_shl(u32::from(field)).unwrap_or(0)
}

/// Patterns per event type and home, within the budget.
struct Homes {
    /// (type slot, home, field, pattern).
    pats: Vec<(u8, Home, u8, Pat)>,
    used: [[usize; 4]; 2],
    cap: usize,
}

impl Homes {
    /// Adds a pattern unless its home is full; false when it did not fit.
    fn add(&mut self, slot: usize, home: Home, field: u8, pat: Pat) -> Result<bool, AllocError> {
        let Some(used) = self.used.get_mut(slot).and_then(|u| u.get_mut(home.at())) else {
            return Ok(false);
        };
        let after = used.saturating_add(usize::from(pat.len));
        if after > self.cap {
            return Ok(false);
        }
        *used = after;
        push(
            &mut self.pats,
            (u8::try_from(slot).unwrap_or(u8::MAX), home, field, pat),
        )?;
        Ok(true)
    }

    /// The patterns of one home of one type (of one field, when given).
    fn pats(&self, slot: usize, home: Home, field: Option<u8>) -> Result<Vec<Pat>, AllocError> {
        let mut pats: Vec<Pat> = Vec::new();
        for &(s, h, f, p) in &self.pats {
            if usize::from(s) == slot && h == home && field.is_none_or(|x| x == f) {
                push(&mut pats, p)?;
            }
        }
        Ok(pats)
    }

    /// The walkable trie of one home of one type, `None` when it is empty.
    fn trie(&self, strings: &[u16], slot: usize, home: Home) -> Result<Option<Trie>, AllocError> {
        let pats = self.pats(slot, home, None)?;
        if pats.is_empty() {
            return Ok(None);
        }
        let levels = Levels::build(strings, &pats, false)?;
        Trie::new(&levels, &pats, home == Home::Bwd).map(Some)
    }

    /// The automaton of one home of one type (of one field, when given).
    fn automaton(
        &self,
        strings: &[u16],
        slot: usize,
        home: Home,
        field: Option<u8>,
    ) -> Result<Option<Automaton>, AllocError> {
        let pats = self.pats(slot, home, field)?;
        if pats.is_empty() {
            return Ok(None);
        }
        let levels = Levels::build(strings, &pats, true)?;
        drop(pats);
        // Dense rows: a constant plus two bytes per literal unit of this home, so the rows
        // grow no faster than the literals (bounded by the string table).
        let dense = DENSE_BYTES.saturating_add(self.units(slot, home).saturating_mul(2));
        Automaton::build(&levels, dense).map(Some)
    }

    fn units(&self, slot: usize, home: Home) -> usize {
        self.used
            .get(slot)
            .and_then(|u| u.get(home.at()))
            .copied()
            .unwrap_or(0)
    }
}

impl RuleSet {
    /// The anchor literal of a value `(off, len)` of an anchor criterion with operator
    /// `op`: the value itself, or for a wildcard its longest literal run, `contains`.
    pub(super) fn anchor_key(&self, op: Op, off: u32, len: u16) -> (Kind, u32, u16) {
        match Kind::of(op) {
            Some(kind) => (kind, off, len),
            None => {
                // A wildcard: its longest literal run, somewhere in the field.
                let s = self.units(off, len);
                let run = longest_literal(s);
                let lead = (0..=s.len().saturating_sub(run.len()))
                    .find(|&o| s.get(o..o.saturating_add(run.len())) == Some(run))
                    .unwrap_or(0);
                (
                    Kind::Contains,
                    off.saturating_add(u32::try_from(lead).unwrap_or(0)),
                    u16::try_from(run.len()).unwrap_or(0),
                )
            }
        }
    }
}

/// Builds the anchor literals, their candidate rules, the membership literals and the
/// per-type structures. Rules in `dup` never decide and are left out.
pub(super) fn build(rs: &mut RuleSet, dup: &[bool]) -> Result<(), AllocError> {
    let mut homes = Homes {
        pats: Vec::new(),
        used: [[0; 4]; 2],
        cap: rs.strings.len().saturating_add(EXTRA_LITERAL_UNITS),
    };
    literals(rs, dup, &mut homes)?;
    structures(rs, &homes)
}

/// Steps 1-6: the literals, postings and homes (a frame of its own, as [`structures`]).
#[inline(never)]
fn literals(rs: &mut RuleSet, dup: &[bool], homes: &mut Homes) -> Result<(), AllocError> {
    // 1. Anchor literals, and the literal of every anchor value: rule `i`'s are
    // `vlit[vstart[i]..]`, one per value of its anchor criterion.
    let mut map = Map::new();
    let mut lit_key: Vec<(u8, u32)> = Vec::new(); // (slot, offset) per literal
    let mut vlit: Vec<u32> = Vec::new();
    let mut vstart: Vec<u32> = mem::with_capacity(rs.rules.len())?;
    for i in 0..rs.rules.len() {
        push(&mut vstart, u32_of(vlit.len())?)?;
        let Some(r) = rs.rules.get(i).copied() else {
            break;
        };
        if r.anchor == NO_ANCHOR {
            continue;
        }
        let slot = r.event.slot();
        let Some(c) = rs
            .crits_at(r.crit, r.ncrit)
            .get(usize::from(r.anchor))
            .copied()
        else {
            continue;
        };
        for j in 0..usize::from(c.n) {
            let Some(v) = rs.svals.get(idx(c.vals).saturating_add(j)).copied() else {
                break;
            };
            let (kind, off, len) = rs.anchor_key(c.op, v.off, v.len);
            let new = u32_of(rs.lits.len())?;
            let l = map.get_or_insert(key(slot, c.field, kind, off, len), new, |_| true)?;
            if l == new {
                push(
                    &mut rs.lits,
                    Lit {
                        field: c.field,
                        kind,
                        len,
                    },
                )?;
                push(&mut lit_key, (u8::try_from(slot).unwrap_or(u8::MAX), off))?;
            }
            push(&mut vlit, l)?;
        }
    }
    drop(map);
    // 2. Homes.
    let mut alive: Vec<bool> = mem::with_capacity(rs.lits.len())?;
    for (l, lit) in rs.lits.iter().enumerate() {
        let (slot, off) = lit_key.get(l).copied().unwrap_or((u8::MAX, 0));
        let slot = usize::from(slot);
        let home = match lit.kind {
            Kind::Prefix => Home::Fwd,
            Kind::Suffix | Kind::Equals => Home::Bwd,
            Kind::Contains => Home::Ac,
        };
        let pat = Pat {
            off,
            len: lit.len,
            rev: home == Home::Bwd,
            out: u32_of(l)?,
        };
        let ok = usize::from(lit.field) < MAX_FIELDS
            && lit.len > 0
            && homes.add(slot, home, lit.field, pat)?;
        push(&mut alive, ok)?;
        if let (true, Some(ti)) = (ok, rs.index.get_mut(slot)) {
            let b = bit(lit.field);
            match home {
                Home::Fwd => ti.fwd_start |= b,
                Home::Bwd => ti.bwd_end |= b,
                Home::Ac | Home::Member => ti.ac_fields |= b,
            }
        }
    }
    drop(lit_key);
    // 3. A rule with a literal left out is checked on every event.
    for i in 0..rs.rules.len() {
        let Some(r) = rs.rules.get(i).copied() else {
            break;
        };
        if r.anchor == NO_ANCHOR {
            continue;
        }
        let dead = anchor_lits(rs, &vlit, &vstart, i)
            .iter()
            .any(|&l| !alive.get(idx(l)).copied().unwrap_or(false));
        if let (true, Some(slot)) = (dead, rs.rules.get_mut(i)) {
            slot.anchor = NO_ANCHOR;
            slot.anchor_exact = false;
        }
    }
    drop(alive);
    // 4. Postings by counting, in rule order (so ascending within a literal).
    rs.post_start = mem::with_capacity(rs.lits.len().saturating_add(1))?;
    for _ in 0..=rs.lits.len() {
        push(&mut rs.post_start, 0)?;
    }
    for i in 0..rs.rules.len() {
        if rs.rules.get(i).is_some_and(|r| r.anchor != NO_ANCHOR) {
            for &l in anchor_lits(rs, &vlit, &vstart, i) {
                if let Some(c) = rs.post_start.get_mut(idx(l).saturating_add(1)) {
                    *c = c.saturating_add(1);
                }
            }
        }
    }
    let mut sum = 0u32;
    for c in rs.post_start.iter_mut() {
        sum = sum.saturating_add(*c);
        *c = sum;
    }
    let total = idx(sum);
    rs.postings = mem::with_capacity(total)?;
    for _ in 0..total {
        push(&mut rs.postings, NONE)?;
    }
    let mut fill: Vec<u32> = mem::with_capacity(rs.post_start.len())?;
    mem::extend_from_slice(&mut fill, &rs.post_start)?;
    for i in 0..rs.rules.len() {
        if rs.rules.get(i).is_none_or(|r| r.anchor == NO_ANCHOR) {
            continue;
        }
        let ri = u32_of(i)?;
        for &l in anchor_lits(rs, &vlit, &vstart, i) {
            let Some(at) = fill.get_mut(idx(l)) else {
                continue;
            };
            if let Some(slot) = rs.postings.get_mut(idx(*at)) {
                *slot = ri;
            }
            *at = at.saturating_add(1);
        }
    }
    drop(fill);
    drop(vlit);
    drop(vstart);
    // 5. Rules with no anchor, per type, in file order.
    for t in EventType::ALL {
        let mut always: Vec<u32> = Vec::new();
        for (i, r) in rs.rules.iter().enumerate() {
            if r.event == t && r.anchor == NO_ANCHOR && !dup.get(i).copied().unwrap_or(true) {
                push(&mut always, u32_of(i)?)?;
            }
        }
        if let Some(ti) = rs.index.get_mut(t.slot()) {
            ti.always = always;
        }
    }
    // 6. Membership literals: the values of `contains` criteria a check may test.
    let mut map = Map::new();
    for i in 0..rs.rules.len() {
        let Some(r) = rs.rules.get(i).copied() else {
            break;
        };
        if dup.get(i).copied().unwrap_or(true) {
            continue;
        }
        let slot = r.event.slot();
        let nset: usize = rs
            .sets_of(&r)
            .iter()
            .map(|s| usize::from(s.n))
            .fold(0, usize::saturating_add);
        // A rule's criteria and its sets' criteria are consecutive.
        let all = usize::from(r.ncrit).saturating_add(nset);
        for k in 0..all {
            let ci = idx(r.crit).saturating_add(k);
            let Some(c) = rs.crits.get(ci).copied() else {
                break;
            };
            if c.op != Op::Contains || (r.anchor_exact && k == usize::from(r.anchor)) {
                continue;
            }
            for j in 0..usize::from(c.n) {
                let vi = idx(c.vals).saturating_add(j);
                let Some(v) = rs.svals.get(vi).copied() else {
                    break;
                };
                let new = u32_of(rs.mlits.len())?;
                let mk = key(slot, c.field, Kind::Contains, v.off, v.len);
                let m = map.get_or_insert(mk, new, |_| true)?;
                let lit = if m != new {
                    m
                } else {
                    let pat = Pat {
                        off: v.off,
                        len: v.len,
                        rev: false,
                        out: new,
                    };
                    let fits = usize::from(c.field) < MAX_FIELDS
                        && v.len > 0
                        && homes.add(slot, Home::Member, c.field, pat)?;
                    push(
                        &mut rs.mlits,
                        Lit {
                            field: c.field,
                            kind: Kind::Contains,
                            len: if fits { v.len } else { 0 },
                        },
                    )?;
                    if let (true, Some(ti)) = (fits, rs.index.get_mut(slot)) {
                        ti.member_fields |= bit(c.field);
                    }
                    new
                };
                let fits = rs.mlits.get(idx(lit)).is_some_and(|l| l.len > 0);
                if let Some(sv) = rs.svals.get_mut(vi) {
                    sv.lit = if fits { lit } else { NONE };
                }
            }
        }
    }
    drop(map);
    Ok(())
}

/// Step 7: the structures of each type, built in place. A frame of its own (as steps 1-6
/// have): the kernel check's stack budget counts the deepest chain, and a trie or an
/// automaton held in a shared frame would add to every chain through it.
#[inline(never)]
fn structures(rs: &mut RuleSet, homes: &Homes) -> Result<(), AllocError> {
    let RuleSet { strings, index, .. } = rs;
    for t in EventType::ALL {
        let slot = t.slot();
        let Some(ti) = index.get_mut(slot) else {
            continue;
        };
        ti.fwd = homes.trie(strings, slot, Home::Fwd)?;
        ti.bwd = homes.trie(strings, slot, Home::Bwd)?;
        ti.member = homes.automaton(strings, slot, Home::Member, None)?;
        // One automaton per field: each scans only its field, and skips at its root what
        // begins none of its literals (the path's literals mostly begin with `\`).
        ti.ac = Vec::new();
        for f in 0..u8::try_from(MAX_FIELDS).unwrap_or(0) {
            if ti.ac_fields & bit(f) == 0 {
                continue;
            }
            if let Some(a) = homes.automaton(strings, slot, Home::Ac, Some(f))? {
                push(&mut ti.ac, (f, a))?;
            }
        }
        let f = |n: &str| t.field_index(n);
        ti.derived = match (f("path"), f("name"), f("extension"), f("parent")) {
            (Some(a), Some(b), Some(c), Some(d)) => Some([a, b, c, d]),
            _ => None,
        };
    }
    Ok(())
}

/// The anchor literals of rule `i` (one per value of its anchor criterion).
fn anchor_lits<'v>(rs: &RuleSet, vlit: &'v [u32], vstart: &[u32], i: usize) -> &'v [u32] {
    let Some(r) = rs.rules.get(i) else {
        return &[];
    };
    let n = rs
        .crits_at(r.crit, r.ncrit)
        .get(usize::from(r.anchor))
        .map_or(0, |c| usize::from(c.n));
    let s = vstart.get(i).map_or(0, |&s| idx(s));
    vlit.get(s..s.saturating_add(n)).unwrap_or(&[])
}
