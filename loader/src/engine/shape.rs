//! What rules share: equal criteria get one predicate id and equal exception sets one set
//! id, so that a run of candidate rules checks a criterion or a set they all have once
//! (its *guard*); and a rule whose criteria and exception sets equal an earlier rule's
//! never decides (the earlier one matches first) and is left out of the index. Equality is
//! exact (values by their place in the string table); hashes only find what to compare.

use alloc::vec::Vec;

use super::index::{CCrit, CRule, RuleSet};
use super::map::Map;
use super::{NONE, idx, u32_of};
use crate::error::AllocError;
use crate::mem::{self, push};
use crate::schema::{FieldKind, Op};

fn mix(h: u64, x: u64) -> u64 {
    (h.rotate_left(5) ^ x).wrapping_mul(0x517C_C1B7_2722_0A95)
}

impl RuleSet {
    fn rvals_of(&self, c: &CCrit) -> &[(u64, u64)] {
        let v = idx(c.vals);
        self.rvals
            .get(v..v.saturating_add(usize::from(c.n)))
            .unwrap_or(&[])
    }

    fn crit_hash(&self, c: &CCrit) -> u64 {
        let head = u64::from(c.field)
            | (u64::from(c.op.code()) << 8)
            | (u64::from(c.negate) << 16)
            | (u64::from(c.n) << 24);
        let mut h = mix(0, head);
        match c.op.kind() {
            FieldKind::Str => {
                for s in self.svals_of(c) {
                    h = mix(h, (u64::from(s.off) << 16) | u64::from(s.len));
                }
            }
            FieldKind::Int if c.op == Op::Range => {
                for &(lo, hi) in self.rvals_of(c) {
                    h = mix(mix(h, lo), hi);
                }
            }
            FieldKind::Int => {
                for &x in self.ints(idx(c.vals), usize::from(c.n)) {
                    h = mix(h, x);
                }
            }
            FieldKind::Flag => {}
        }
        h
    }

    fn crit_eq(&self, a: &CCrit, b: &CCrit) -> bool {
        if (a.field, a.op, a.negate, a.n) != (b.field, b.op, b.negate, b.n) {
            return false;
        }
        match a.op.kind() {
            FieldKind::Str => {
                let (x, y) = (self.svals_of(a), self.svals_of(b));
                x.len() == y.len()
                    && x.iter()
                        .zip(y)
                        .all(|(p, q)| p.off == q.off && p.len == q.len)
            }
            FieldKind::Int if a.op == Op::Range => self.rvals_of(a) == self.rvals_of(b),
            FieldKind::Int => {
                let n = usize::from(a.n);
                self.ints(idx(a.vals), n) == self.ints(idx(b.vals), n)
            }
            FieldKind::Flag => true,
        }
    }

    fn rule_hash(&self, r: &CRule) -> u64 {
        let head =
            u64::from(r.event.code()) | (u64::from(r.ncrit) << 8) | (u64::from(r.nsets) << 16);
        let mut h = mix(0, head);
        for c in self.crits_at(r.crit, r.ncrit) {
            h = mix(h, u64::from(c.pred));
        }
        for s in self.sets_of(r) {
            h = mix(h, u64::from(s.id));
        }
        h
    }

    fn rule_eq(&self, a: &CRule, b: &CRule) -> bool {
        if (a.event, a.ncrit, a.nsets) != (b.event, b.ncrit, b.nsets) {
            return false;
        }
        let (ca, cb) = (
            self.crits_at(a.crit, a.ncrit),
            self.crits_at(b.crit, b.ncrit),
        );
        let (sa, sb) = (self.sets_of(a), self.sets_of(b));
        ca.len() == cb.len()
            && sa.len() == sb.len()
            && ca.iter().zip(cb).all(|(x, y)| x.pred == y.pred)
            && sa.iter().zip(sb).all(|(x, y)| x.id == y.id)
    }
}

/// How many criteria share each predicate id, and how many exception sets each set id.
#[derive(Debug)]
pub(super) struct Shares {
    pub(super) preds: Vec<u32>,
    pub(super) sets: Vec<u32>,
}

/// Gives every criterion its predicate id and every exception set its set id.
#[inline(never)]
pub(super) fn share(rs: &mut RuleSet) -> Result<Shares, AllocError> {
    let mut map = Map::new();
    // Predicate id -> the first criterion with it and its event type: a field index means
    // different inputs in different types, and membership literals are per type.
    let mut rep: Vec<(u32, u8)> = Vec::new();
    let mut preds: Vec<u32> = Vec::new();
    for ri in 0..rs.rules.len() {
        let Some(r) = rs.rules.get(ri).copied() else {
            break;
        };
        // A rule's criteria and its sets' criteria are consecutive, up to the next rule's.
        let end = rs
            .rules
            .get(ri.saturating_add(1))
            .map_or(rs.crits.len(), |n| idx(n.crit));
        let ev = r.event.code();
        for i in idx(r.crit)..end {
            let Some(c) = rs.crits.get(i).copied() else {
                break;
            };
            let new = u32_of(rep.len())?;
            let h = mix(rs.crit_hash(&c), u64::from(ev));
            let id = map.get_or_insert(h, new, |p| {
                rep.get(idx(p)).is_some_and(|&(o, oev)| {
                    oev == ev && rs.crits.get(idx(o)).is_some_and(|o| rs.crit_eq(o, &c))
                })
            })?;
            if id == new {
                push(&mut rep, (u32_of(i)?, ev))?;
                push(&mut preds, 0)?;
            }
            if let Some(n) = preds.get_mut(idx(id)) {
                *n = n.saturating_add(1);
            }
            if let Some(cm) = rs.crits.get_mut(i) {
                cm.pred = id;
            }
        }
    }
    drop(map);
    drop(rep);
    let mut map = Map::new();
    let mut rep: Vec<u32> = Vec::new();
    let mut sets: Vec<u32> = Vec::new();
    let preds_of = |rs: &RuleSet, first: u32, n: u8| {
        rs.crits_at(first, n)
            .iter()
            .fold(mix(0, u64::from(n)), |h, c| mix(h, u64::from(c.pred)))
    };
    for i in 0..rs.sets.len() {
        let Some(s) = rs.sets.get(i).copied() else {
            break;
        };
        let new = u32_of(rep.len())?;
        let mine = rs.crits_at(s.crit, s.n);
        let id = map.get_or_insert(preds_of(rs, s.crit, s.n), new, |p| {
            rep.get(idx(p))
                .and_then(|&r| rs.sets.get(idx(r)))
                .is_some_and(|o| {
                    let theirs = rs.crits_at(o.crit, o.n);
                    theirs.len() == mine.len()
                        && theirs.iter().zip(mine).all(|(a, b)| a.pred == b.pred)
                })
        })?;
        if id == new {
            push(&mut rep, u32_of(i)?)?;
            push(&mut sets, 0)?;
        }
        if let Some(n) = sets.get_mut(idx(id)) {
            *n = n.saturating_add(1);
        }
        if let Some(sm) = rs.sets.get_mut(i) {
            sm.id = id;
        }
    }
    Ok(Shares { preds, sets })
}

/// Rules that never decide: equal (same event type, criteria and exception sets, in the
/// same order) to an earlier rule. Needs the ids from [`share`].
#[inline(never)]
pub(super) fn duplicates(rs: &RuleSet) -> Result<Vec<bool>, AllocError> {
    let mut dup: Vec<bool> = mem::with_capacity(rs.rules.len())?;
    let mut map = Map::new();
    for (i, r) in rs.rules.iter().enumerate() {
        let new = u32_of(i)?;
        let first = map.get_or_insert(rs.rule_hash(r), new, |p| {
            rs.rules.get(idx(p)).is_some_and(|o| rs.rule_eq(o, r))
        })?;
        push(&mut dup, first != new)?;
    }
    Ok(dup)
}

/// Sets every rule's guard: the criterion and the exception set it shares with the most
/// other criteria and sets (`NONE` where it shares none). The anchor is left out (a
/// candidate's anchor is known to hold).
#[inline(never)]
pub(super) fn guards(rs: &mut RuleSet, sh: &Shares) -> Result<(), AllocError> {
    for i in 0..rs.rules.len() {
        let Some(r) = rs.rules.get(i).copied() else {
            break;
        };
        let mut crit = (1u32, NONE);
        for (k, c) in rs.crits_at(r.crit, r.ncrit).iter().enumerate() {
            let n = sh.preds.get(idx(c.pred)).copied().unwrap_or(0);
            if usize::from(r.anchor) != k && n > crit.0 {
                crit = (n, r.crit.saturating_add(u32_of(k)?));
            }
        }
        let mut set = (1u32, NONE);
        for (k, s) in rs.sets_of(&r).iter().enumerate() {
            let n = sh.sets.get(idx(s.id)).copied().unwrap_or(0);
            if n > set.0 {
                set = (n, r.set.saturating_add(u32_of(k)?));
            }
        }
        if let Some(slot) = rs.rules.get_mut(i) {
            slot.guard = crit.1;
            slot.gset = set.1;
        }
    }
    Ok(())
}

/// Equal criteria share one copy of their values: the first keeps its values (moved
/// down over the copies removed before it), the others point at them. Realistic sets
/// repeat long lists (the same 40 process filters in many exception sets).
#[inline(never)]
pub(super) fn compact(rs: &mut RuleSet, sh: &Shares) -> Result<(), AllocError> {
    let mut at: Vec<u32> = mem::with_capacity(sh.preds.len())?;
    for _ in 0..sh.preds.len() {
        push(&mut at, NONE)?;
    }
    let (mut ws, mut wi, mut wr) = (0usize, 0usize, 0usize);
    for i in 0..rs.crits.len() {
        let Some(c) = rs.crits.get(i).copied() else {
            break;
        };
        let Some(slot) = at.get_mut(idx(c.pred)) else {
            continue;
        };
        let vals = if *slot != NONE {
            *slot
        } else {
            let n = usize::from(c.n);
            let from = idx(c.vals);
            let to = match c.op.kind() {
                FieldKind::Str => move_down(&mut rs.svals, from, n, &mut ws),
                FieldKind::Int if c.op == Op::Range => move_down(&mut rs.rvals, from, n, &mut wr),
                FieldKind::Int => move_down(&mut rs.ivals, from, n, &mut wi),
                FieldKind::Flag => 0,
            };
            *slot = u32_of(to)?;
            *slot
        };
        if let Some(cm) = rs.crits.get_mut(i) {
            cm.vals = vals;
        }
    }
    drop(at);
    shrink(&mut rs.svals, ws)?;
    shrink(&mut rs.ivals, wi)?;
    shrink(&mut rs.rvals, wr)?;
    Ok(())
}

/// Moves `v[from..from + n]` to `v[*w..]` (`*w <= from`) and advances `*w`; returns where
/// they went.
fn move_down<T: Copy>(v: &mut [T], from: usize, n: usize, w: &mut usize) -> usize {
    let to = *w;
    for k in 0..n {
        if let Some(x) = v.get(from.saturating_add(k)).copied()
            && let Some(slot) = v.get_mut(to.saturating_add(k))
        {
            *slot = x;
        }
    }
    *w = to.saturating_add(n);
    to
}

/// Keeps the first `n` elements, in an allocation of their size.
fn shrink<T: Copy>(v: &mut Vec<T>, n: usize) -> Result<(), AllocError> {
    let mut out: Vec<T> = mem::with_capacity(n)?;
    mem::extend_from_slice(&mut out, v.get(..n).unwrap_or(&[]))?;
    *v = out;
    Ok(())
}
