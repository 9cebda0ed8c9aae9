//! Binary content format v1 (documented byte by byte in `docs/content-format.md`):
//! an 80-byte header, a rule table, a UTF-16LE string table. Little-endian throughout.
//!
//! The validator is a single forward pass: header, sizes, digest, then a recursive descent
//! over the rule table in which every count is checked against the bytes that remain before
//! anything is allocated, and every allocation is fallible.

use alloc::vec::Vec;
use sha2::{Digest as _, Sha256};

use crate::content::{Content, Criterion, Rule, Values, limits};
use crate::error::{ContentError, ErrorKind, Location};
use crate::schema::{Action, EventType, FieldKind, Op, SCHEMA_VERSION};

/// First eight bytes of every content file (PNG-style: catches text-mode transfers).
pub const MAGIC: [u8; 8] = [0x89, b'F', b'S', b'C', b'\r', b'\n', 0x1A, b'\n'];
/// Format version this build reads and writes.
pub const FORMAT_VERSION: u16 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 80;
/// Bytes of the header covered by the digest (everything before the digest itself).
const DIGESTED_HEADER: usize = 48;

const RULE_FIXED: usize = 8; // id u32, event u8, action u8, criteria u8, exception sets u8
const CRIT_FIXED: usize = 4; // field u8, op u8, flags u8, value count u8
const SET_FIXED: usize = 1; // criteria count u8
const STR_REF: usize = 6; // offset u32 (code units), length u16 (code units)
const FLAG_NEGATE: u8 = 0x01;

/// The header fields of a content file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Format version.
    pub format: u16,
    /// Event schema version.
    pub schema: u16,
    /// Content version.
    pub version: u64,
    /// Rules declared.
    pub rule_count: u32,
    /// Rule table bytes.
    pub rules_len: u32,
    /// String table bytes.
    pub strings_len: u32,
    /// SHA-256 over header bytes 0..48 and the body.
    pub digest: [u8; 32],
}

/// Content that passed validation, with its header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validated {
    /// Header (digest verified).
    pub header: Header,
    /// Decoded rules.
    pub content: Content,
}

/// Why the encoder refused to encode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// A count or length does not fit the format or exceeds a limit.
    Limit {
        /// Rule index (file order), if the problem is inside a rule.
        rule_index: Option<usize>,
        /// What.
        what: &'static str,
        /// The limit.
        limit: usize,
        /// Found.
        found: usize,
    },
    /// The values do not have the shape the operator needs.
    ValuesShape {
        /// Rule index.
        rule_index: usize,
        /// Operator.
        op: Op,
    },
    /// Out of memory.
    OutOfMemory,
}

impl core::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            EncodeError::Limit {
                rule_index: Some(i),
                what,
                limit,
                found,
            } => {
                write!(f, "rule #{i}: {what}: {found} exceeds the limit of {limit}")
            }
            EncodeError::Limit {
                rule_index: None,
                what,
                limit,
                found,
            } => {
                write!(f, "{what}: {found} exceeds the limit of {limit}")
            }
            EncodeError::ValuesShape { rule_index, op } => {
                write!(f, "rule #{rule_index}: values do not fit operator {op}")
            }
            EncodeError::OutOfMemory => f.write_str("out of memory"),
        }
    }
}

impl core::error::Error for EncodeError {}

fn digest_of(header48: &[u8], body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(header48);
    h.update(body);
    h.finalize().into()
}

// ---------------------------------------------------------------------------------------
// Encoder

fn limit(rule_index: Option<usize>, what: &'static str, lim: usize, found: usize) -> EncodeError {
    EncodeError::Limit {
        rule_index,
        what,
        limit: lim,
        found,
    }
}

fn count_u8(rule: usize, what: &'static str, lim: usize, n: usize) -> Result<u8, EncodeError> {
    if n > lim {
        return Err(limit(Some(rule), what, lim, n));
    }
    u8::try_from(n).map_err(|_| limit(Some(rule), what, usize::from(u8::MAX), n))
}

fn crit_size(c: &Criterion) -> usize {
    let each = match c.values {
        Values::Strs(_) => STR_REF,
        Values::Ints(_) => 8,
        Values::Ranges(_) => 16,
        Values::None => 0,
    };
    CRIT_FIXED.saturating_add(each.saturating_mul(c.values.len()))
}

fn crit_units(c: &Criterion) -> usize {
    match &c.values {
        Values::Strs(v) => v.iter().map(Vec::len).fold(0usize, usize::saturating_add),
        _ => 0,
    }
}

/// Encodes content into format v1. The encoder checks only what the format can express
/// (counts, lengths, value shapes); semantic checks (field arity, operator types, ids) are
/// the validator's, so tests can build every kind of invalid content with it.
pub fn encode(content: &Content) -> Result<Vec<u8>, EncodeError> {
    if content.rules.len() > limits::MAX_RULES {
        return Err(limit(None, "rules", limits::MAX_RULES, content.rules.len()));
    }
    let mut rules_len = 0usize;
    let mut units = 0usize;
    for r in &content.rules {
        let sets = r.exceptions.iter().map(|s| {
            SET_FIXED.saturating_add(s.iter().map(crit_size).fold(0, usize::saturating_add))
        });
        let crits = r
            .criteria
            .iter()
            .map(crit_size)
            .fold(0usize, usize::saturating_add);
        rules_len = rules_len
            .saturating_add(RULE_FIXED)
            .saturating_add(crits)
            .saturating_add(sets.fold(0, usize::saturating_add));
        let all = r.criteria.iter().chain(r.exceptions.iter().flatten());
        units = units.saturating_add(all.map(crit_units).fold(0, usize::saturating_add));
    }
    let strings_len = units.saturating_mul(2);
    let total = HEADER_LEN
        .saturating_add(rules_len)
        .saturating_add(strings_len);
    if total > limits::MAX_FILE_BYTES {
        return Err(limit(None, "file size", limits::MAX_FILE_BYTES, total));
    }
    let too_big = |_| {
        limit(
            None,
            "table size",
            usize::try_from(u32::MAX).unwrap_or(usize::MAX),
            total,
        )
    };
    let rules_len32 = u32::try_from(rules_len).map_err(too_big)?;
    let strings_len32 = u32::try_from(strings_len).map_err(too_big)?;
    let rule_count = u32::try_from(content.rules.len()).map_err(too_big)?;

    let mut rt: Vec<u8> = Vec::new();
    rt.try_reserve_exact(rules_len)
        .map_err(|_| EncodeError::OutOfMemory)?;
    let mut st: Vec<u8> = Vec::new();
    st.try_reserve_exact(strings_len)
        .map_err(|_| EncodeError::OutOfMemory)?;
    for (i, r) in content.rules.iter().enumerate() {
        rt.extend_from_slice(&r.id.to_le_bytes());
        rt.push(r.event.code());
        rt.push(r.action.code());
        rt.push(count_u8(
            i,
            "criteria",
            limits::MAX_CRITERIA,
            r.criteria.len(),
        )?);
        rt.push(count_u8(
            i,
            "exception sets",
            limits::MAX_EXCEPTION_SETS,
            r.exceptions.len(),
        )?);
        for c in &r.criteria {
            put_criterion(&mut rt, &mut st, i, c)?;
        }
        for set in &r.exceptions {
            rt.push(count_u8(
                i,
                "criteria in exception set",
                limits::MAX_CRITERIA,
                set.len(),
            )?);
            for c in set {
                put_criterion(&mut rt, &mut st, i, c)?;
            }
        }
    }

    let mut out: Vec<u8> = Vec::new();
    out.try_reserve_exact(total)
        .map_err(|_| EncodeError::OutOfMemory)?;
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&SCHEMA_VERSION.to_le_bytes());
    out.extend_from_slice(&80u32.to_le_bytes());
    out.extend_from_slice(&content.version.to_le_bytes());
    out.extend_from_slice(&rule_count.to_le_bytes());
    out.extend_from_slice(&rules_len32.to_le_bytes());
    out.extend_from_slice(&strings_len32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes()); // signature length: none in v1
    out.extend_from_slice(&0u64.to_le_bytes()); // reserved
    let mut h = Sha256::new();
    h.update(&out);
    h.update(&rt);
    h.update(&st);
    let d: [u8; 32] = h.finalize().into();
    out.extend_from_slice(&d);
    out.extend_from_slice(&rt);
    out.extend_from_slice(&st);
    Ok(out)
}

fn put_criterion(
    rt: &mut Vec<u8>,
    st: &mut Vec<u8>,
    rule: usize,
    c: &Criterion,
) -> Result<(), EncodeError> {
    rt.push(c.field);
    rt.push(c.op.code());
    rt.push(if c.negate { FLAG_NEGATE } else { 0 });
    rt.push(count_u8(
        rule,
        "values",
        limits::MAX_VALUES,
        c.values.len(),
    )?);
    match &c.values {
        Values::Strs(list) => {
            for s in list {
                let off = u32::try_from(st.len() / 2)
                    .map_err(|_| limit(Some(rule), "string table", usize::MAX, st.len()))?;
                let len = u16::try_from(s.len()).map_err(|_| {
                    limit(Some(rule), "string length", usize::from(u16::MAX), s.len())
                })?;
                rt.extend_from_slice(&off.to_le_bytes());
                rt.extend_from_slice(&len.to_le_bytes());
                for u in s {
                    st.extend_from_slice(&u.to_le_bytes());
                }
            }
        }
        Values::Ints(list) => list
            .iter()
            .for_each(|v| rt.extend_from_slice(&v.to_le_bytes())),
        Values::Ranges(list) => list.iter().for_each(|(lo, hi)| {
            rt.extend_from_slice(&lo.to_le_bytes());
            rt.extend_from_slice(&hi.to_le_bytes());
        }),
        Values::None => {}
    }
    let shape_ok = matches!(
        (&c.values, c.op.kind(), c.op),
        (Values::Strs(_), FieldKind::Str, _)
            | (Values::Ranges(_), _, Op::Range)
            | (Values::None, FieldKind::Flag, _)
    ) || matches!(
        (&c.values, c.op),
        (Values::Ints(_), Op::IntEquals | Op::AnyBits | Op::AllBits)
    );
    if shape_ok {
        Ok(())
    } else {
        Err(EncodeError::ValuesShape {
            rule_index: rule,
            op: c.op,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Validator

/// A positioned reader over one region of the file, on top of `untrusted::Reader`.
struct Rd<'a> {
    r: untrusted::Reader<'a>,
    pos: usize,
    end: usize,
}

impl<'a> Rd<'a> {
    fn new(bytes: &'a [u8], start: usize) -> Self {
        Rd {
            r: untrusted::Reader::new(untrusted::Input::from(bytes)),
            pos: start,
            end: start.saturating_add(bytes.len()),
        }
    }
    fn remaining(&self) -> usize {
        self.end.saturating_sub(self.pos)
    }
    fn take<const N: usize>(
        &mut self,
        at: &Location,
        what: &'static str,
    ) -> Result<[u8; N], ContentError> {
        let bytes = self.r.read_bytes(N).map_err(|_| ContentError {
            at: Location {
                offset: self.pos,
                ..*at
            },
            kind: ErrorKind::Truncated {
                what,
                needed: n64(N),
                remaining: n64(self.remaining()),
            },
        })?;
        self.pos = self.pos.saturating_add(N);
        let mut out = [0u8; N];
        out.copy_from_slice(bytes.as_slice_less_safe());
        Ok(out)
    }
    fn u8(&mut self, at: &Location, what: &'static str) -> Result<u8, ContentError> {
        self.take::<1>(at, what).map(|[b]| b)
    }
    fn u16(&mut self, at: &Location, what: &'static str) -> Result<u16, ContentError> {
        self.take(at, what).map(u16::from_le_bytes)
    }
    fn u32(&mut self, at: &Location, what: &'static str) -> Result<u32, ContentError> {
        self.take(at, what).map(u32::from_le_bytes)
    }
    fn u64(&mut self, at: &Location, what: &'static str) -> Result<u64, ContentError> {
        self.take(at, what).map(u64::from_le_bytes)
    }
}

fn n64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn us(n: u32) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn err(offset: usize, kind: ErrorKind) -> ContentError {
    ContentError {
        at: Location {
            offset,
            ..Location::default()
        },
        kind,
    }
}

fn oom(at: &Location) -> ContentError {
    ContentError {
        at: *at,
        kind: ErrorKind::OutOfMemory,
    }
}

/// Reads and checks the header and sizes only (no digest, no rules). `inspect` uses it to
/// describe files that fail later checks.
pub fn read_header(bytes: &[u8]) -> Result<Header, ContentError> {
    let len = bytes.len();
    let magic = bytes.get(..8).ok_or(err(
        0,
        ErrorKind::Truncated {
            what: "magic",
            needed: 8,
            remaining: n64(len),
        },
    ))?;
    if magic != MAGIC {
        let mut found = [0u8; 8];
        found.copy_from_slice(magic);
        return Err(err(0, ErrorKind::BadMagic { found }));
    }
    let head = bytes.get(..HEADER_LEN).ok_or(err(
        0,
        ErrorKind::Truncated {
            what: "header",
            needed: n64(HEADER_LEN),
            remaining: n64(len),
        },
    ))?;
    if len > limits::MAX_FILE_BYTES {
        return Err(err(
            0,
            ErrorKind::LimitExceeded {
                what: "file size",
                limit: n64(limits::MAX_FILE_BYTES),
                found: n64(len),
            },
        ));
    }
    let at = Location::default();
    let mut r = Rd::new(head, 0);
    r.take::<8>(&at, "magic")?;
    let format = r.u16(&at, "format version")?;
    if format != FORMAT_VERSION {
        return Err(err(
            8,
            ErrorKind::UnsupportedFormat {
                expected: FORMAT_VERSION,
                found: format,
            },
        ));
    }
    let schema = r.u16(&at, "schema version")?;
    if schema != SCHEMA_VERSION {
        return Err(err(
            10,
            ErrorKind::UnsupportedSchema {
                expected: SCHEMA_VERSION,
                found: schema,
            },
        ));
    }
    let header_len = r.u32(&at, "header length")?;
    if us(header_len) != HEADER_LEN {
        return Err(err(
            12,
            ErrorKind::BadHeaderLength {
                expected: 80,
                found: header_len,
            },
        ));
    }
    let version = r.u64(&at, "content version")?;
    if version == 0 {
        return Err(err(16, ErrorKind::ZeroContentVersion));
    }
    let rule_count = r.u32(&at, "rule count")?;
    if us(rule_count) > limits::MAX_RULES {
        return Err(err(
            24,
            ErrorKind::LimitExceeded {
                what: "rule count",
                limit: n64(limits::MAX_RULES),
                found: u64::from(rule_count),
            },
        ));
    }
    let rules_len = r.u32(&at, "rule table length")?;
    let strings_len = r.u32(&at, "string table length")?;
    if strings_len % 2 != 0 {
        return Err(err(32, ErrorKind::OddStringTable { len: strings_len }));
    }
    let sig = r.u32(&at, "signature length")?;
    if sig != 0 {
        return Err(err(36, ErrorKind::SignatureUnsupported { found: sig }));
    }
    let reserved = r.u64(&at, "reserved")?;
    if reserved != 0 {
        return Err(err(
            40,
            ErrorKind::ReservedNonZero {
                what: "header bytes 40..48",
                found: reserved,
            },
        ));
    }
    let digest = r.take::<32>(&at, "digest")?;
    let body = u64::from(rules_len).saturating_add(u64::from(strings_len));
    let have = n64(len.saturating_sub(HEADER_LEN));
    if body > have {
        return Err(err(
            HEADER_LEN,
            ErrorKind::Truncated {
                what: "body",
                needed: body,
                remaining: have,
            },
        ));
    }
    if body < have {
        let end = HEADER_LEN.saturating_add(usize::try_from(body).unwrap_or(usize::MAX));
        return Err(err(
            end,
            ErrorKind::TrailingBytes {
                count: have.saturating_sub(body),
            },
        ));
    }
    Ok(Header {
        format,
        schema,
        version,
        rule_count,
        rules_len,
        strings_len,
        digest,
    })
}

/// Validates a content file completely and decodes it. Runs in the kernel, in
/// `failsafectl validate` and in the tests alike.
pub fn validate(bytes: &[u8]) -> Result<Validated, ContentError> {
    let header = read_header(bytes)?;
    let body = bytes.get(HEADER_LEN..).unwrap_or(&[]);
    let computed = digest_of(bytes.get(..DIGESTED_HEADER).unwrap_or(&[]), body);
    if computed != header.digest {
        return Err(err(
            DIGESTED_HEADER,
            ErrorKind::DigestMismatch {
                declared: header.digest,
                computed,
            },
        ));
    }
    let (rules, strings) = body
        .split_at_checked(us(header.rules_len))
        .unwrap_or((body, &[]));
    let strings_at = HEADER_LEN.saturating_add(rules.len());
    let p = Parser {
        strings,
        strings_at,
    };
    let content = p.rules(&header, rules)?;
    Ok(Validated { header, content })
}

struct Parser<'a> {
    strings: &'a [u8],
    strings_at: usize,
}

const MIN_RULE: usize = RULE_FIXED + CRIT_FIXED;

impl Parser<'_> {
    fn rules(&self, h: &Header, table: &[u8]) -> Result<Content, ContentError> {
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
        let mut rules: Vec<Rule> = Vec::new();
        rules
            .try_reserve_exact(count)
            .map_err(|_| oom(&Location::default()))?;
        let mut ids: Vec<(u32, u32, usize)> = Vec::new();
        ids.try_reserve_exact(count)
            .map_err(|_| oom(&Location::default()))?;
        for index in 0..h.rule_count {
            let start = r.pos;
            let rule = self.rule(&mut r, index)?;
            crate::mem::push(&mut ids, (rule.id, index, start))
                .map_err(|_| oom(&Location::default()))?;
            crate::mem::push(&mut rules, rule).map_err(|_| oom(&Location::default()))?;
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
        crate::mem::heapsort_by(&mut ids, |a, b| a < b);
        for pair in ids.windows(2) {
            if let [(a, first_index, _), (b, index, offset)] = *pair
                && a == b
            {
                let at = Location {
                    offset,
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
        Ok(Content {
            version: h.version,
            rules,
        })
    }

    fn rule(&self, r: &mut Rd<'_>, index: u32) -> Result<Rule, ContentError> {
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
        let criteria = self.criteria(r, event, ncrit, crit_count_at)?;
        let mut exceptions: Vec<Vec<Criterion>> = Vec::new();
        if usize::from(nsets).saturating_mul(SET_FIXED.saturating_add(CRIT_FIXED)) > r.remaining() {
            return Err(ContentError {
                at: Location {
                    offset: r.pos,
                    ..at
                },
                kind: ErrorKind::RuleTableLength {
                    declared_rules: index.saturating_add(1),
                    unread_bytes: 0,
                },
            });
        }
        exceptions
            .try_reserve_exact(usize::from(nsets))
            .map_err(|_| oom(&at))?;
        for set in 0..nsets {
            let set_at = Location {
                offset: r.pos,
                exception: Some(set),
                ..at
            };
            let n = r.u8(&set_at, "exception criteria count")?;
            let set = self.criteria(r, event, n, set_at)?;
            crate::mem::push(&mut exceptions, set).map_err(|_| oom(&set_at))?;
        }
        Ok(Rule {
            id,
            event,
            action,
            criteria,
            exceptions,
        })
    }

    fn criteria(
        &self,
        r: &mut Rd<'_>,
        event: EventType,
        n: u8,
        at: Location,
    ) -> Result<Vec<Criterion>, ContentError> {
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
        let mut out: Vec<Criterion> = Vec::new();
        out.try_reserve_exact(usize::from(n))
            .map_err(|_| oom(&at))?;
        for i in 0..n {
            let at = Location {
                offset: r.pos,
                criterion: Some(i),
                ..at
            };
            let c = self.criterion(r, event, at)?;
            crate::mem::push(&mut out, c).map_err(|_| oom(&at))?;
        }
        Ok(out)
    }

    fn criterion(
        &self,
        r: &mut Rd<'_>,
        event: EventType,
        mut at: Location,
    ) -> Result<Criterion, ContentError> {
        let field = r.u8(&at, "field")?;
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
        let values = match op.kind() {
            FieldKind::Flag if n != 0 => {
                return Err(ContentError {
                    at,
                    kind: ErrorKind::UnexpectedValues { found: n },
                });
            }
            FieldKind::Flag => Values::None,
            _ if n == 0 => {
                return Err(ContentError {
                    at,
                    kind: ErrorKind::EmptyList,
                });
            }
            FieldKind::Str => {
                Values::Strs(self.list(r, n, STR_REF, at, |p, r, at| p.string(r, at))?)
            }
            FieldKind::Int if op == Op::Range => {
                Values::Ranges(self.list(r, n, 16, at, |_, r, at| {
                    let lo = r.u64(at, "range lower bound")?;
                    let hi = r.u64(at, "range upper bound")?;
                    if lo > hi {
                        Err(ContentError {
                            at: *at,
                            kind: ErrorKind::EmptyRange { lo, hi },
                        })
                    } else {
                        Ok((lo, hi))
                    }
                })?)
            }
            FieldKind::Int => {
                Values::Ints(self.list(r, n, 8, at, |_, r, at| r.u64(at, "integer value"))?)
            }
        };
        Ok(Criterion {
            field,
            op,
            negate: flags & FLAG_NEGATE != 0,
            values,
        })
    }

    fn list<T>(
        &self,
        r: &mut Rd<'_>,
        n: u8,
        size: usize,
        at: Location,
        mut each: impl FnMut(&Self, &mut Rd<'_>, &Location) -> Result<T, ContentError>,
    ) -> Result<Vec<T>, ContentError> {
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
        let mut out = Vec::new();
        out.try_reserve_exact(usize::from(n))
            .map_err(|_| oom(&at))?;
        for i in 0..n {
            let vat = Location {
                offset: r.pos,
                value: Some(i),
                ..at
            };
            let x = each(self, r, &vat)?;
            crate::mem::push(&mut out, x).map_err(|_| oom(&vat))?;
        }
        Ok(out)
    }

    fn string(&self, r: &mut Rd<'_>, at: &Location) -> Result<Vec<u16>, ContentError> {
        let offset = r.u32(at, "string offset")?;
        let len = r.u16(at, "string length")?;
        let e = |kind| ContentError { at: *at, kind };
        if len == 0 {
            return Err(e(ErrorKind::EmptyString));
        }
        if usize::from(len) > limits::MAX_STRING_UNITS {
            return Err(e(ErrorKind::LimitExceeded {
                what: "string length (code units)",
                limit: n64(limits::MAX_STRING_UNITS),
                found: u64::from(len),
            }));
        }
        let start = us(offset).saturating_mul(2);
        let bytes = start
            .checked_add(usize::from(len).saturating_mul(2))
            .and_then(|end| self.strings.get(start..end))
            .ok_or(e(ErrorKind::StringOutOfRange {
                offset,
                len,
                table_units: n64(self.strings.len() / 2),
            }))?;
        let mut units: Vec<u16> = Vec::new();
        units
            .try_reserve_exact(usize::from(len))
            .map_err(|_| oom(at))?;
        for c in bytes.chunks_exact(2) {
            let unit = u16::from_le_bytes([*c.first().unwrap_or(&0), *c.get(1).unwrap_or(&0)]);
            crate::mem::push(&mut units, unit).map_err(|_| oom(at))?;
        }
        let str_at = |i: usize| Location {
            offset: self
                .strings_at
                .saturating_add(start)
                .saturating_add(i.saturating_mul(2)),
            ..*at
        };
        if let Some(i) = units.iter().position(|&u| u == 0) {
            return Err(ContentError {
                at: str_at(i),
                kind: ErrorKind::NulInString {
                    index: u32::try_from(i).unwrap_or(u32::MAX),
                },
            });
        }
        if let Some((i, unit)) = crate::text::first_unpaired_surrogate(&units) {
            return Err(ContentError {
                at: str_at(i),
                kind: ErrorKind::InvalidUtf16 {
                    index: u32::try_from(i).unwrap_or(u32::MAX),
                    unit,
                },
            });
        }
        Ok(units)
    }
}
