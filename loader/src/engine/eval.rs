//! Evaluation: one scan of the event's string inputs collects the literals that hold
//! into a small set on the stack, then the candidate rules those literals list are checked
//! in file order, the first match deciding. Allocates nothing.

use super::automaton::Automaton;
use super::index::{CCrit, Kind, RuleSet, TypeIndex};
use super::{NO_ANCHOR, NONE, idx};
use crate::eval::{Event, Input, Match};
use crate::schema::{Action, Op};
use crate::text;

/// Fields per event type the index can address (the schema has at most 11).
const MAX_FIELDS: usize = 16;
/// Literals that may hold in one event before evaluation falls back to direct checks.
const MAX_HITS: usize = 64;

impl RuleSet {
    /// Decides an event: the first rule in file order that matches, or `None` (pass).
    /// Allocates nothing; reads inputs only through [`Event::input`].
    pub fn evaluate(&self, ev: &Event<'_>) -> Option<Match> {
        let ti = self.index.get(ev.kind.slot())?;
        let mut hits = Hits::new();
        self.scan(ti, ev, &mut hits, ti.eager);
        let mut best = NONE;
        if hits.overflow {
            best = ti
                .all
                .iter()
                .copied()
                .find(|&r| self.matches(ti, r, NO_ANCHOR, ev, &mut hits))
                .unwrap_or(NONE);
        } else {
            // Candidates come from the eagerly scanned literals only (fields scanned later
            // hold no anchors), so the literals found so far are all that can list rules.
            let n0 = hits.n;
            for i in 0..n0 {
                let Some(&lit) = hits.ids.get(i) else { break };
                let s = self.post_start.get(idx(lit)).copied().unwrap_or(0);
                let e = self
                    .post_start
                    .get(idx(lit).saturating_add(1))
                    .copied()
                    .unwrap_or(0);
                for &r in self.postings.get(idx(s)..idx(e)).unwrap_or(&[]) {
                    if r >= best {
                        break;
                    }
                    let skip = self.rules.get(idx(r)).map_or(NO_ANCHOR, |x| {
                        if x.anchor_exact { x.anchor } else { NO_ANCHOR }
                    });
                    if self.matches(ti, r, skip, ev, &mut hits) {
                        best = r;
                        break;
                    }
                }
            }
            for &r in &ti.always {
                if r >= best {
                    break;
                }
                if self.matches(ti, r, NO_ANCHOR, ev, &mut hits) {
                    best = r;
                    break;
                }
            }
        }
        let r = self.rules.get(idx(best))?;
        Some(Match {
            action: r.action,
            rule_id: r.id,
            rule_index: best,
        })
    }

    /// Runs the automaton over the string inputs of the fields in `want` not scanned yet,
    /// and records every literal that holds, with its field's position in the input. The
    /// path, name, extension and parent go in one pass over the path when the sensor
    /// derived them from it.
    fn scan(&self, ti: &TypeIndex, ev: &Event<'_>, hits: &mut Hits, want: u32) {
        let Some(ac) = &ti.ac else { return };
        let want = want & ti.fields & !hits.scanned;
        if want == 0 {
            return;
        }
        let bit = |f: u8| 1u32.checked_shl(u32::from(f)).unwrap_or(0);
        if let Some([fp, fname, fext, fparent]) = ti.derived
            && want & (bit(fp) | bit(fname) | bit(fext) | bit(fparent)) != 0
            && let Some(Input::Str(path)) = ev.input(fp)
        {
            let (parent, name, ext) = text::split_path(path);
            let same = |f: u8, part: &[u16]| match ev.input(f) {
                Some(Input::Str(s)) => core::ptr::eq(s, part) || s == part,
                _ => false,
            };
            let mut regions = [None; MAX_FIELDS];
            let len = path.len();
            let mut done = bit(fp);
            set_region(&mut regions, fp, 0, len);
            if same(fname, name) {
                set_region(&mut regions, fname, len.saturating_sub(name.len()), len);
                done |= bit(fname);
            }
            if same(fext, ext) {
                set_region(&mut regions, fext, len.saturating_sub(ext.len()), len);
                done |= bit(fext);
            }
            if same(fparent, parent) {
                set_region(&mut regions, fparent, 0, parent.len());
                done |= bit(fparent);
            }
            self.scan_one(ac, path, &regions, hits);
            hits.scanned |= done;
        }
        for f in 0..u8::try_from(MAX_FIELDS).unwrap_or(0) {
            if want & bit(f) == 0 || hits.scanned & bit(f) != 0 {
                continue;
            }
            if let Some(Input::Str(s)) = ev.input(f) {
                let mut regions = [None; MAX_FIELDS];
                set_region(&mut regions, f, 0, s.len());
                self.scan_one(ac, s, &regions, hits);
            }
            hits.scanned |= bit(f);
        }
    }

    #[inline]
    fn scan_one(
        &self,
        ac: &Automaton,
        input: &[u16],
        regions: &[Option<(usize, usize)>; MAX_FIELDS],
        hits: &mut Hits,
    ) {
        ac.scan(input, |l, end| {
            let Some(lit) = self.lits.get(idx(l)) else {
                return;
            };
            let Some(Some((rs, re))) = regions.get(usize::from(lit.field)) else {
                return;
            };
            let start = end.saturating_sub(usize::from(lit.len));
            if start < *rs || end > *re {
                return;
            }
            let ok = match lit.kind {
                Kind::Contains => true,
                Kind::Prefix => start == *rs,
                Kind::Suffix => end == *re,
                Kind::Equals => start == *rs && end == *re,
            };
            if ok {
                hits.add(l);
            }
        });
    }

    /// Does rule `r` match, given the literals that hold? Criterion `skip` is known to hold.
    fn matches(&self, ti: &TypeIndex, r: u32, skip: u8, ev: &Event<'_>, hits: &mut Hits) -> bool {
        let Some(rule) = self.rules.get(idx(r)) else {
            return false;
        };
        if rule.event != ev.kind {
            return false;
        }
        let base = idx(rule.crit);
        let crits = self
            .crits
            .get(base..base.saturating_add(usize::from(rule.ncrit)))
            .unwrap_or(&[]);
        for (k, c) in crits.iter().enumerate() {
            if usize::from(skip) != k && !self.holds(ti, c, ev, hits) {
                return false;
            }
        }
        let sets = self
            .sets
            .get(idx(rule.set)..idx(rule.set).saturating_add(usize::from(rule.nsets)))
            .unwrap_or(&[]);
        !sets.iter().any(|s| {
            let b = idx(s.crit);
            self.crits
                .get(b..b.saturating_add(usize::from(s.n)))
                .unwrap_or(&[])
                .iter()
                .all(|c| self.holds(ti, c, ev, hits))
        })
    }

    /// Does criterion `c` hold? A missing input, or one of another type, makes it false
    /// whether or not it is negated (as [`crate::eval::criterion_holds`]).
    #[inline]
    fn holds(&self, ti: &TypeIndex, c: &CCrit, ev: &Event<'_>, hits: &mut Hits) -> bool {
        let Some(input) = ev.input(c.field) else {
            return false;
        };
        let bit = 1u32.checked_shl(u32::from(c.field)).unwrap_or(0);
        if hits.scanned & bit == 0 && Kind::of(c.op).is_some() {
            self.scan(ti, ev, hits, bit);
        }
        let hits: &Hits = hits;
        let n = usize::from(c.n);
        let v = idx(c.vals);
        let hit = match (c.op, input) {
            (
                Op::StrEquals | Op::StartsWith | Op::EndsWith | Op::Contains | Op::Wildcard,
                Input::Str(s),
            ) => self.svals_of(c).iter().any(|x| {
                if x.lit != NONE && !hits.overflow {
                    hits.contains(x.lit)
                } else {
                    str_op(c.op, s, self.units(x.off, x.len))
                }
            }),
            (Op::IntEquals, Input::Int(x)) => self.ints(v, n).contains(&x),
            (Op::AnyBits, Input::Int(x)) => self.ints(v, n).iter().any(|&y| x & y != 0),
            (Op::AllBits, Input::Int(x)) => self.ints(v, n).iter().any(|&y| y & !x == 0),
            (Op::Range, Input::Int(x)) => self
                .rvals
                .get(v..v.saturating_add(n))
                .unwrap_or(&[])
                .iter()
                .any(|&(lo, hi)| lo <= x && x <= hi),
            (Op::IsTrue, Input::Flag(b)) => b,
            (Op::IsFalse, Input::Flag(b)) => !b,
            (
                Op::StrEquals
                | Op::StartsWith
                | Op::EndsWith
                | Op::Contains
                | Op::Wildcard
                | Op::IntEquals
                | Op::AnyBits
                | Op::AllBits
                | Op::Range
                | Op::IsTrue
                | Op::IsFalse,
                Input::Str(_) | Input::Int(_) | Input::Flag(_),
            ) => return false,
        };
        hit != c.negate
    }

    /// The decided action of a match, or `None` for pass (convenience for callers).
    pub fn action(&self, ev: &Event<'_>) -> Option<Action> {
        self.evaluate(ev).map(|m| m.action)
    }
}

fn set_region(r: &mut [Option<(usize, usize)>; MAX_FIELDS], f: u8, start: usize, end: usize) {
    if let Some(slot) = r.get_mut(usize::from(f)) {
        *slot = Some((start, end));
    }
}

#[inline]
fn str_op(op: Op, input: &[u16], pat: &[u16]) -> bool {
    match op {
        Op::StrEquals => text::eq_folded(input, pat),
        Op::StartsWith => text::starts_with_folded(input, pat),
        Op::EndsWith => text::ends_with_folded(input, pat),
        Op::Contains => text::contains_folded(input, pat),
        Op::Wildcard => text::wildcard_folded(input, pat),
        Op::IntEquals | Op::AnyBits | Op::AllBits | Op::Range | Op::IsTrue | Op::IsFalse => false,
    }
}

/// Literals that hold in the current event: a small set on the stack with a 256-bit filter
/// in front of it.
struct Hits {
    ids: [u32; MAX_HITS],
    n: usize,
    filter: [u64; 4],
    overflow: bool,
    /// Bit `f`: the literals of field `f` are recorded.
    scanned: u32,
}

impl Hits {
    fn new() -> Self {
        Hits {
            ids: [0; MAX_HITS],
            n: 0,
            filter: [0; 4],
            overflow: false,
            scanned: 0,
        }
    }

    #[inline]
    fn bit(l: u32) -> (usize, u64) {
        let h = l.wrapping_mul(0x9E37_79B1) >> 24;
        (idx(h >> 6) & 3, 1u64.checked_shl(h & 63).unwrap_or(0))
    }

    fn ids(&self) -> &[u32] {
        self.ids.get(..self.n).unwrap_or(&[])
    }

    #[inline]
    fn contains(&self, l: u32) -> bool {
        let (w, m) = Self::bit(l);
        self.filter.get(w).is_some_and(|x| x & m != 0) && self.ids().contains(&l)
    }

    #[inline]
    fn add(&mut self, l: u32) {
        if self.contains(l) {
            return;
        }
        match self.ids.get_mut(self.n) {
            Some(slot) => {
                *slot = l;
                self.n = self.n.saturating_add(1);
                let (w, m) = Self::bit(l);
                if let Some(x) = self.filter.get_mut(w) {
                    *x |= m;
                }
            }
            None => self.overflow = true,
        }
    }
}
