//! Evaluation. The anchor literals that hold in the event are found by walks of the tries
//! (forward from the start of a field, backward from its end) and a scan of the automaton
//! over the fields that need one; each literal found has
//! its runs of candidate rules checked at once, in ascending order, cut at the best match
//! so far; then the rules with no anchor. First match in file order wins. Criteria are
//! checked directly, except `contains` values with a membership literal: those are looked
//! up among the membership literals one scan of the field found, made the first time a
//! candidate needs it. The name, extension and parent are positions in the path when the
//! sensor derived them from it (`text::split_path`), so one walk serves several fields.
//! Allocates nothing; its state is under a kilobyte of stack.

use super::index::{CCrit, CSet, Kind, RuleSet, TypeIndex};
use super::{MAX_FIELDS, NO_ANCHOR, NONE, idx};
use crate::eval::{Event, Input, Match};
use crate::schema::{Action, Op};
use crate::text;

/// Membership literals one event may hold before its membership tests compare directly.
const MAX_HITS: usize = 32;
/// Anchor literals remembered as done per event (a literal found again past this is
/// checked again: same verdict, more work).
const MAX_SEEN: usize = 24;
const NO_OWNER: u8 = u8::MAX;

fn bit(f: u8) -> u32 {
    1u32.checked_shl(u32::from(f)).unwrap_or(0)
}

/// The fields of a mask, lowest first.
fn fields(mut m: u32) -> impl Iterator<Item = u8> {
    core::iter::from_fn(move || {
        if m == 0 {
            return None;
        }
        let f = u8::try_from(m.trailing_zeros()).unwrap_or(u8::MAX);
        m &= m.wrapping_sub(1);
        Some(f)
    })
}

/// A small set of literal ids with a 256-bit filter in front of it.
struct Set<const N: usize> {
    ids: [u32; N],
    n: usize,
    filter: [u64; 4],
    /// An id did not fit.
    overflow: bool,
}

impl<const N: usize> Set<N> {
    fn new() -> Self {
        Set {
            ids: [0; N],
            n: 0,
            filter: [0; 4],
            overflow: false,
        }
    }

    #[inline]
    fn bit(l: u32) -> (usize, u64) {
        let h = l.wrapping_mul(0x9E37_79B1) >> 24;
        (idx(h >> 6) & 3, 1u64.checked_shl(h & 63).unwrap_or(0))
    }

    #[inline]
    fn contains(&self, l: u32) -> bool {
        let (w, m) = Self::bit(l);
        self.filter.get(w).is_some_and(|x| x & m != 0)
            && self.ids.get(..self.n).unwrap_or(&[]).contains(&l)
    }

    /// Adds `l`; false when it was there already.
    #[inline]
    fn insert(&mut self, l: u32) -> bool {
        if self.contains(l) {
            return false;
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
        true
    }
}

/// Where a field's input lies in the input it is read from: code units `start..end`.
#[derive(Clone, Copy)]
struct Reg {
    start: usize,
    end: usize,
}

/// The state of one evaluation.
struct Cx<'a, 'e> {
    ev: &'a Event<'e>,
    /// Best (lowest) matching rule so far, `NONE` for none.
    best: u32,
    /// Per field: the field whose input holds it (itself, or the path it was derived
    /// from), `NO_OWNER` when it is not a string input.
    owner: [u8; MAX_FIELDS],
    /// Where the derived inputs the path holds lie in it: (field, region), `NO_OWNER` for
    /// none. A field that holds its own input spans all of it (not stored: the state
    /// stays small on the kernel callbacks' stack).
    parts: [(u8, Reg); 3],
    /// Fields held by the path's input (derived ones and the path itself).
    in_path: u32,
    path: u8,
    /// Anchor literals done, and membership literals found. Inline, not made when first
    /// needed: an `Option` of each cost the kernel's callbacks a copy of it on the stack.
    seen: Set<MAX_SEEN>,
    member: Set<MAX_HITS>,
    /// Bit `o`: the input of field `o` was scanned for membership literals.
    mscanned: u32,
}

impl<'a, 'e> Cx<'a, 'e> {
    fn new(ev: &'a Event<'e>) -> Self {
        Cx {
            ev,
            best: NONE,
            owner: [NO_OWNER; MAX_FIELDS],
            parts: [(NO_OWNER, Reg { start: 0, end: 0 }); 3],
            in_path: 0,
            path: NO_OWNER,
            seen: Set::new(),
            member: Set::new(),
            mscanned: 0,
        }
    }

    /// Where each string input lies; the derived ones in the path when the sensor
    /// derived them from it.
    fn layout(&mut self, ti: &TypeIndex) {
        let ev = self.ev;
        // Only fields with literals are looked up by position.
        let used = ti.fwd_start | ti.bwd_end | ti.ac_fields | ti.member_fields;
        for f in fields(used) {
            if let (Some(Input::Str(_)), Some(o)) =
                (ev.input(f), self.owner.get_mut(usize::from(f)))
            {
                *o = f;
            }
        }
        let Some([fp, fname, fext, fparent]) = ti.derived else {
            return;
        };
        let Some(Input::Str(path)) = ev.input(fp) else {
            return;
        };
        let (parent, name, ext) = text::split_path(path);
        let len = path.len();
        self.path = fp;
        self.in_path = bit(fp);
        let parts = [
            (fname, len.saturating_sub(name.len()), name),
            (fext, len.saturating_sub(ext.len()), ext),
            (fparent, 0, parent),
        ];
        for (k, (f, start, part)) in parts.into_iter().enumerate() {
            let same = match ev.input(f) {
                Some(Input::Str(s)) => core::ptr::eq(s, part) || s == part,
                _ => false,
            };
            if let (true, Some(o), Some(p)) = (
                same && f != fp,
                self.owner.get_mut(usize::from(f)),
                self.parts.get_mut(k),
            ) {
                *o = fp;
                *p = (
                    f,
                    Reg {
                        start,
                        end: start.saturating_add(part.len()),
                    },
                );
                self.in_path |= bit(f);
            }
        }
    }

    /// The fields whose input is field `o`'s.
    fn served(&self, o: u8) -> u32 {
        if o == self.path { self.in_path } else { bit(o) }
    }

    fn owner(&self, f: u8) -> u8 {
        self.owner.get(usize::from(f)).copied().unwrap_or(NO_OWNER)
    }

    /// Where field `f` lies in its owner's input (an empty, impossible region when it has
    /// no string input).
    fn reg(&self, f: u8) -> Reg {
        let none = Reg { start: 1, end: 0 };
        let o = self.owner(f);
        if o != f {
            return match self.parts.iter().find(|p| p.0 == f) {
                Some(&(_, r)) if o != NO_OWNER => r,
                _ => none,
            };
        }
        match self.ev.input(f) {
            Some(Input::Str(s)) => Reg {
                start: 0,
                end: s.len(),
            },
            _ => none,
        }
    }

    /// The smallest region holding the regions of `fields`.
    fn span(&self, fields_: u32) -> (usize, usize) {
        fields(fields_).fold((usize::MAX, 0), |(lo, hi), f| {
            let r = self.reg(f);
            (lo.min(r.start), hi.max(r.end))
        })
    }
}

impl RuleSet {
    /// Decides an event: the first rule in file order that matches, or `None` (pass).
    /// Allocates nothing; reads inputs only through [`Event::input`].
    pub fn evaluate(&self, ev: &Event<'_>) -> Option<Match> {
        let ti = self.index.get(ev.kind.slot())?;
        let mut cx = Cx::new(ev);
        cx.layout(ti);
        self.find(ti, &mut cx);
        self.candidates(ti, &mut cx, &ti.always, false);
        let r = self.rules.get(idx(cx.best))?;
        Some(Match {
            action: r.action,
            rule_id: r.id,
            rule_index: cx.best,
        })
    }

    /// The decided action of a match, or `None` for pass (convenience for callers).
    pub fn action(&self, ev: &Event<'_>) -> Option<Action> {
        self.evaluate(ev).map(|m| m.action)
    }

    /// Finds the anchor literals that hold, input by input, and checks their candidates.
    fn find(&self, ti: &TypeIndex, cx: &mut Cx<'_, '_>) {
        let want = ti.fwd_start | ti.bwd_end | ti.ac_fields;
        let mut done = 0u32;
        for f in fields(want) {
            let o = cx.owner(f);
            if o == NO_OWNER || done & bit(o) != 0 {
                continue;
            }
            done |= bit(o);
            let served = cx.served(o) & want;
            if let Some(Input::Str(buf)) = cx.ev.input(o) {
                self.find_in(ti, cx, o, buf, served);
            }
        }
    }

    /// The walks and the scan over one input, for the `fields` it holds.
    fn find_in(&self, ti: &TypeIndex, cx: &mut Cx<'_, '_>, o: u8, buf: &[u16], fields_: u32) {
        if let Some(bwd) = &ti.bwd {
            let mut ends = [usize::MAX; 4];
            for (k, f) in fields(fields_ & ti.bwd_end).enumerate() {
                let e = cx.reg(f).end;
                if ends.contains(&e) {
                    continue;
                }
                if let Some(slot) = ends.get_mut(k) {
                    *slot = e;
                }
                bwd.walk_bwd(&self.strings, buf, e, |l, s| {
                    self.found(ti, cx, o, l, s, e);
                });
            }
        }
        if let Some(fwd) = &ti.fwd {
            let mut starts = [usize::MAX; 4];
            for (k, f) in fields(fields_ & ti.fwd_start).enumerate() {
                let s = cx.reg(f).start;
                if starts.contains(&s) {
                    continue;
                }
                if let Some(slot) = starts.get_mut(k) {
                    *slot = s;
                }
                fwd.walk_fwd(&self.strings, buf, s, |l, e| {
                    self.found(ti, cx, o, l, s, e);
                });
            }
        }
        for (f, ac) in &ti.ac {
            if fields_ & bit(*f) == 0 {
                continue;
            }
            let r = cx.reg(*f);
            let lo = r.start;
            ac.scan(buf.get(lo..r.end).unwrap_or(&[]), |l, end| {
                let e = lo.saturating_add(end);
                let len = self.lits.get(idx(l)).map_or(0, |x| usize::from(x.len));
                self.found(ti, cx, o, l, e.saturating_sub(len), e);
            });
        }
    }

    /// Literal `l` occurs at `s..e` of field `o`'s input: if that is where its field says
    /// it must be, its candidates are checked.
    #[inline]
    fn found(&self, ti: &TypeIndex, cx: &mut Cx<'_, '_>, o: u8, l: u32, s: usize, e: usize) {
        let Some(lit) = self.lits.get(idx(l)) else {
            return;
        };
        if cx.owner(lit.field) != o {
            return;
        }
        let r = cx.reg(lit.field);
        let holds = match lit.kind {
            Kind::Prefix => s == r.start && e <= r.end,
            Kind::Suffix => e == r.end && s >= r.start,
            Kind::Equals => s == r.start && e == r.end,
            Kind::Contains => s >= r.start && e <= r.end,
        };
        if holds && cx.seen.insert(l) {
            let a = self.post_start.get(idx(l)).copied().unwrap_or(0);
            let b = self
                .post_start
                .get(idx(l).saturating_add(1))
                .copied()
                .unwrap_or(a);
            let rules = self.postings.get(idx(a)..idx(b)).unwrap_or(&[]);
            self.candidates(ti, cx, rules, true);
        }
    }

    /// Checks candidate rules (ascending; through their anchor when `anchored`) until one
    /// matches or the best so far comes first. Consecutive candidates with the same guard
    /// check it once, and are passed over together when it fails.
    fn candidates(&self, ti: &TypeIndex, cx: &mut Cx<'_, '_>, rules: &[u32], anchored: bool) {
        let mut last = (NONE, NONE);
        let mut pass = false;
        for &r in rules {
            if r >= cx.best {
                return;
            }
            let Some(rule) = self.rules.get(idx(r)) else {
                continue;
            };
            let gc = self.crits.get(idx(rule.guard));
            let gs = self.sets.get(idx(rule.gset));
            let key = (gc.map_or(NONE, |c| c.pred), gs.map_or(NONE, |s| s.id));
            if key != last {
                last = key;
                pass = gc.is_some_and(|c| !self.holds(ti, cx, c))
                    || gs.is_some_and(|s| self.set_holds(ti, cx, s));
            }
            if !pass && self.matches(ti, cx, r, anchored, key.0, key.1) {
                cx.best = r;
                return;
            }
        }
    }

    /// Does rule `r` match? Its anchor (when `anchored`), the predicate `gp` and the set
    /// `gs` are known to hold and not to hold.
    fn matches(
        &self,
        ti: &TypeIndex,
        cx: &mut Cx<'_, '_>,
        r: u32,
        anchored: bool,
        gp: u32,
        gs: u32,
    ) -> bool {
        let Some(rule) = self.rules.get(idx(r)) else {
            return false;
        };
        if rule.event != cx.ev.kind {
            return false;
        }
        let skip = if anchored && rule.anchor_exact {
            usize::from(rule.anchor)
        } else {
            usize::from(NO_ANCHOR)
        };
        for (k, c) in self.crits_at(rule.crit, rule.ncrit).iter().enumerate() {
            if k != skip && c.pred != gp && !self.holds(ti, cx, c) {
                return false;
            }
        }
        !self
            .sets_of(rule)
            .iter()
            .any(|s| s.id != gs && self.set_holds(ti, cx, s))
    }

    fn set_holds(&self, ti: &TypeIndex, cx: &mut Cx<'_, '_>, s: &CSet) -> bool {
        self.crits_at(s.crit, s.n)
            .iter()
            .all(|c| self.holds(ti, cx, c))
    }

    /// Does criterion `c` hold? A missing input, or one of another type, makes it false
    /// whether or not it is negated (as [`crate::eval::criterion_holds`]).
    fn holds(&self, ti: &TypeIndex, cx: &mut Cx<'_, '_>, c: &CCrit) -> bool {
        let Some(input) = cx.ev.input(c.field) else {
            return false;
        };
        let n = usize::from(c.n);
        let v = idx(c.vals);
        let hit = match (c.op, input) {
            (
                Op::StrEquals | Op::StartsWith | Op::EndsWith | Op::Contains | Op::Wildcard,
                Input::Str(s),
            ) => self.svals_of(c).iter().any(|x| {
                if c.op == Op::Contains
                    && x.lit != NONE
                    && self.member_scan(ti, cx, c.field)
                    && !cx.member.overflow
                {
                    return cx.member.contains(x.lit);
                }
                str_op(c.op, s, self.units(x.off, x.len))
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

    /// Scans the input that holds field `f` for membership literals, once per event; false
    /// when `f` has none to be found in (its values are then compared directly).
    fn member_scan(&self, ti: &TypeIndex, cx: &mut Cx<'_, '_>, f: u8) -> bool {
        let o = cx.owner(f);
        let (Some(ac), Some(Input::Str(buf))) = (&ti.member, cx.ev.input(o)) else {
            return false;
        };
        if o == NO_OWNER || ti.member_fields & bit(f) == 0 {
            return false;
        }
        if cx.mscanned & bit(o) == 0 {
            cx.mscanned |= bit(o);
            let (lo, hi) = cx.span(cx.served(o) & ti.member_fields);
            ac.scan(buf.get(lo..hi).unwrap_or(&[]), |l, end| {
                let Some(lit) = self.mlits.get(idx(l)) else {
                    return;
                };
                let e = lo.saturating_add(end);
                let s = e.saturating_sub(usize::from(lit.len));
                let r = cx.reg(lit.field);
                if cx.owner(lit.field) == o && s >= r.start && e <= r.end {
                    cx.member.insert(l);
                }
            });
        }
        true
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
