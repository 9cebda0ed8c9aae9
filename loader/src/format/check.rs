//! The validator's walk: header, digest, then one forward pass over the rule table in
//! which every count is checked against the bytes that remain before anything is
//! allocated, each checked item handed to a [`Sink`]; then the duplicate-id check.

use alloc::vec::Vec;

use super::header::{check_digest, tables};
use super::reader::Rd;
use super::strings::bad_units;
use super::{CRIT_FIXED, FLAG_NEGATE, HEADER_LEN, Header, MIN_SET, RULE_FIXED, STR_REF};
use super::{err, n64, oom, read_header, us};
use crate::content::limits;
use crate::error::{AllocError, ContentError, ErrorKind, Location};
use crate::mem;
use crate::schema::{Action, EventType, FieldKind, Op};

/// What the validator reads, handed over item by item in file order, each only after it
/// passed its checks. A rule is `rule`, then its criteria, then for each exception set
/// `set` and that set's criteria; each criterion is `criterion`, then its values.
/// [`check`] ignores everything; [`validate`] builds the owned [`Content`];
/// `RuleSet::load` builds its compact form without ever materializing `Content`.
pub(crate) trait Sink<'a> {
    /// The string table (raw UTF-16LE bytes), once, before the first rule.
    fn strings(&mut self, table: &'a [u8]) -> Result<(), AllocError>;
    /// A rule's fixed part.
    fn rule(
        &mut self,
        id: u32,
        event: EventType,
        action: Action,
        criteria: u8,
        sets: u8,
    ) -> Result<(), AllocError>;
    /// An exception set of `criteria` criteria begins.
    fn set(&mut self, criteria: u8) -> Result<(), AllocError>;
    /// A criterion's fixed part; `values` values follow.
    fn criterion(&mut self, field: u8, op: Op, negate: bool, values: u8) -> Result<(), AllocError>;
    /// A string value: `len` code units at code unit `offset` of the string table.
    fn string(&mut self, offset: u32, len: u16) -> Result<(), AllocError>;
    /// An integer value.
    fn int(&mut self, v: u64) -> Result<(), AllocError>;
    /// A range value.
    fn range(&mut self, lo: u64, hi: u64) -> Result<(), AllocError>;
}

/// The sink of [`check`]: keeps nothing.
struct Discard;

impl Sink<'_> for Discard {
    fn strings(&mut self, _: &[u8]) -> Result<(), AllocError> {
        Ok(())
    }
    fn rule(&mut self, _: u32, _: EventType, _: Action, _: u8, _: u8) -> Result<(), AllocError> {
        Ok(())
    }
    fn set(&mut self, _: u8) -> Result<(), AllocError> {
        Ok(())
    }
    fn criterion(&mut self, _: u8, _: Op, _: bool, _: u8) -> Result<(), AllocError> {
        Ok(())
    }
    fn string(&mut self, _: u32, _: u16) -> Result<(), AllocError> {
        Ok(())
    }
    fn int(&mut self, _: u64) -> Result<(), AllocError> {
        Ok(())
    }
    fn range(&mut self, _: u64, _: u64) -> Result<(), AllocError> {
        Ok(())
    }
}

/// Checks a content file completely without decoding it: every check [`validate`] makes,
/// in the same order, with the same errors. Allocates only the duplicate-id table (12
/// bytes per rule, and a rule takes at least 12 bytes) and a bitmap of the string table
/// (1 bit per code unit): peak memory is below 1.07x the file size, whatever the body.
pub fn check(bytes: &[u8]) -> Result<Header, ContentError> {
    walk(bytes, &mut Discard)
}

/// The validator: header, sizes, digest, then one forward pass over the rule table that
/// hands every checked item to `sink`, then the duplicate-id check.
pub(crate) fn walk<'a, S: Sink<'a>>(bytes: &'a [u8], sink: &mut S) -> Result<Header, ContentError> {
    let header = read_header(bytes)?;
    check_digest(bytes, &header)?;
    walk_tables(bytes, &header, sink)
}

/// The structural half of [`walk`], for a file whose header was read and whose digest was
/// checked (by [`walk`], or by `trust::verify` after the signature).
pub(crate) fn walk_tables<'a, S: Sink<'a>>(
    bytes: &'a [u8],
    header: &Header,
    sink: &mut S,
) -> Result<Header, ContentError> {
    let header = *header;
    let body = tables(bytes, &header);
    let (rules, strings) = body
        .split_at_checked(us(header.rules_len))
        .unwrap_or((body, &[]));
    let strings_at = HEADER_LEN.saturating_add(rules.len());
    let p = Parser {
        strings,
        strings_at,
        bad: bad_units(strings).map_err(|AllocError| oom(&Location::default()))?,
    };
    sink.strings(strings)
        .map_err(|AllocError| oom(&Location::default()))?;
    p.rules(&header, rules, sink)?;
    Ok(header)
}

pub(super) struct Parser<'a> {
    pub(super) strings: &'a [u8],
    pub(super) strings_at: usize,
    pub(super) bad: Vec<u64>,
}

const MIN_RULE: usize = RULE_FIXED + CRIT_FIXED;

impl<'a> Parser<'a> {
    fn rules<S: Sink<'a>>(
        &self,
        h: &Header,
        table: &[u8],
        sink: &mut S,
    ) -> Result<(), ContentError> {
        let count = us(h.rule_count);
        let mut r = Rd::new(table, HEADER_LEN);
        // Every rule needs at least MIN_RULE bytes: bound the count before allocating.
        if count.saturating_mul(MIN_RULE) > table.len() {
            return Err(err(
                HEADER_LEN,
                ErrorKind::Truncated {
                    what: "rule table",
                    needed: n64(count.saturating_mul(MIN_RULE)),
                    remaining: n64(table.len()),
                },
            ));
        }
        // (id, index, offset): 12 bytes per rule of at least 12 bytes.
        let mut ids: Vec<(u32, u32, u32)> =
            mem::with_capacity(count).map_err(|_| oom(&Location::default()))?;
        for index in 0..h.rule_count {
            let start = u32::try_from(r.pos).unwrap_or(u32::MAX);
            let id = self.rule(&mut r, index, sink)?;
            mem::push(&mut ids, (id, index, start)).map_err(|_| oom(&Location::default()))?;
        }
        if r.remaining() != 0 {
            return Err(err(
                r.pos,
                ErrorKind::RuleTableLength {
                    declared_rules: h.rule_count,
                    unread_bytes: n64(r.remaining()),
                },
            ));
        }
        // Ids in strictly ascending order (as compilers write them) are distinct: no sort.
        if ids
            .windows(2)
            .all(|p| matches!(*p, [(a, _, _), (b, _, _)] if a < b))
        {
            return Ok(());
        }
        mem::heapsort_by(&mut ids, |a, b| a < b);
        for pair in ids.windows(2) {
            if let [(a, first_index, _), (b, index, offset)] = *pair
                && a == b
            {
                let at = Location {
                    offset: us(offset),
                    rule_index: Some(index),
                    rule_id: Some(b),
                    ..Location::default()
                };
                return Err(ContentError {
                    at,
                    kind: ErrorKind::DuplicateRuleId { id: b, first_index },
                });
            }
        }
        Ok(())
    }

    fn rule<S: Sink<'a>>(
        &self,
        r: &mut Rd<'_>,
        index: u32,
        sink: &mut S,
    ) -> Result<u32, ContentError> {
        let mut at = Location {
            offset: r.pos,
            rule_index: Some(index),
            ..Location::default()
        };
        let id = r.u32(&at, "rule id")?;
        at.rule_id = Some(id);
        at.offset = r.pos;
        let code = r.u8(&at, "event type")?;
        let event = EventType::from_code(code).ok_or(ContentError {
            at,
            kind: ErrorKind::UnknownEventType { found: code },
        })?;
        at.offset = r.pos;
        let code = r.u8(&at, "action")?;
        let action = Action::from_code(code).ok_or(ContentError {
            at,
            kind: ErrorKind::UnknownAction { found: code },
        })?;
        at.offset = r.pos;
        let crit_count_at = at;
        let ncrit = r.u8(&at, "criteria count")?;
        at.offset = r.pos;
        let nsets = r.u8(&at, "exception set count")?;
        if usize::from(nsets) > limits::MAX_EXCEPTION_SETS {
            return Err(ContentError {
                at,
                kind: ErrorKind::LimitExceeded {
                    what: "exception sets",
                    limit: n64(limits::MAX_EXCEPTION_SETS),
                    found: u64::from(nsets),
                },
            });
        }
        sink.rule(id, event, action, ncrit, nsets)
            .map_err(|AllocError| oom(&at))?;
        self.criteria(r, event, ncrit, crit_count_at, sink)?;
        // Each exception set needs at least its count byte and one criterion.
        let need = usize::from(nsets).saturating_mul(MIN_SET);
        if need > r.remaining() {
            return Err(ContentError {
                at: Location {
                    offset: r.pos,
                    ..at
                },
                kind: ErrorKind::Truncated {
                    what: "exception sets",
                    needed: n64(need),
                    remaining: n64(r.remaining()),
                },
            });
        }
        for set in 0..nsets {
            let set_at = Location {
                offset: r.pos,
                exception: Some(set),
                ..at
            };
            let n = r.u8(&set_at, "exception criteria count")?;
            if n != 0 && usize::from(n) <= limits::MAX_CRITERIA {
                sink.set(n).map_err(|AllocError| oom(&set_at))?;
            }
            self.criteria(r, event, n, set_at, sink)?;
        }
        Ok(id)
    }

    fn criteria<S: Sink<'a>>(
        &self,
        r: &mut Rd<'_>,
        event: EventType,
        n: u8,
        at: Location,
        sink: &mut S,
    ) -> Result<(), ContentError> {
        if n == 0 {
            return Err(ContentError {
                at,
                kind: ErrorKind::NoCriteria,
            });
        }
        if usize::from(n) > limits::MAX_CRITERIA {
            return Err(ContentError {
                at,
                kind: ErrorKind::LimitExceeded {
                    what: "criteria",
                    limit: n64(limits::MAX_CRITERIA),
                    found: u64::from(n),
                },
            });
        }
        if usize::from(n).saturating_mul(CRIT_FIXED) > r.remaining() {
            return Err(ContentError {
                at: Location {
                    offset: r.pos,
                    ..at
                },
                kind: ErrorKind::Truncated {
                    what: "criteria",
                    needed: n64(usize::from(n).saturating_mul(CRIT_FIXED)),
                    remaining: n64(r.remaining()),
                },
            });
        }
        for i in 0..n {
            let at = Location {
                offset: r.pos,
                criterion: Some(i),
                ..at
            };
            self.criterion(r, event, at, sink)?;
        }
        Ok(())
    }

    fn criterion<S: Sink<'a>>(
        &self,
        r: &mut Rd<'_>,
        event: EventType,
        mut at: Location,
        sink: &mut S,
    ) -> Result<(), ContentError> {
        let field = r.u8(&at, "field index")?;
        let arity = u8::try_from(event.arity()).unwrap_or(u8::MAX);
        let Some(fdef) = event.field(field) else {
            return Err(ContentError {
                at,
                kind: ErrorKind::FieldOutOfRange {
                    event,
                    field,
                    arity,
                },
            });
        };
        at.offset = r.pos;
        let code = r.u8(&at, "operator")?;
        let op = Op::from_code(code).ok_or(ContentError {
            at,
            kind: ErrorKind::UnknownOperator { found: code },
        })?;
        if op.kind() != fdef.kind {
            return Err(ContentError {
                at,
                kind: ErrorKind::OperatorMismatch {
                    event,
                    field,
                    expected: fdef.kind,
                    op,
                },
            });
        }
        at.offset = r.pos;
        let flags = r.u8(&at, "flags")?;
        if flags & !FLAG_NEGATE != 0 {
            return Err(ContentError {
                at,
                kind: ErrorKind::ReservedNonZero {
                    what: "criterion flag bits",
                    found: u64::from(flags),
                },
            });
        }
        at.offset = r.pos;
        let n = r.u8(&at, "value count")?;
        let negate = flags & FLAG_NEGATE != 0;
        match op.kind() {
            FieldKind::Flag if n != 0 => {
                return Err(ContentError {
                    at,
                    kind: ErrorKind::UnexpectedValues { found: n },
                });
            }
            FieldKind::Flag => {
                return sink
                    .criterion(field, op, negate, 0)
                    .map_err(|AllocError| oom(&at));
            }
            FieldKind::Str | FieldKind::Int if n == 0 => {
                return Err(ContentError {
                    at,
                    kind: ErrorKind::EmptyList,
                });
            }
            FieldKind::Str | FieldKind::Int => {}
        }
        let size = match op.kind() {
            FieldKind::Str => STR_REF,
            FieldKind::Int if op == Op::Range => 16,
            FieldKind::Int => 8,
            FieldKind::Flag => 0,
        };
        let need = usize::from(n).saturating_mul(size);
        if need > r.remaining() {
            return Err(ContentError {
                at: Location {
                    offset: r.pos,
                    ..at
                },
                kind: ErrorKind::Truncated {
                    what: "values",
                    needed: n64(need),
                    remaining: n64(r.remaining()),
                },
            });
        }
        sink.criterion(field, op, negate, n)
            .map_err(|AllocError| oom(&at))?;
        for i in 0..n {
            let vat = Location {
                offset: r.pos,
                value: Some(i),
                ..at
            };
            match op.kind() {
                FieldKind::Str => {
                    let (offset, len) = self.string(r, &vat)?;
                    sink.string(offset, len)
                }
                FieldKind::Int if op == Op::Range => {
                    let lo = r.u64(&vat, "range lower bound")?;
                    let hi = r.u64(&vat, "range upper bound")?;
                    if lo > hi {
                        return Err(ContentError {
                            at: vat,
                            kind: ErrorKind::EmptyRange { lo, hi },
                        });
                    }
                    sink.range(lo, hi)
                }
                FieldKind::Int => {
                    let x = r.u64(&vat, "integer value")?;
                    sink.int(x)
                }
                FieldKind::Flag => Ok(()),
            }
            .map_err(|AllocError| oom(&vat))?;
        }
        Ok(())
    }
}
