//! Binary content format v1 (documented byte by byte in `docs/content-format.md`):
//! an 80-byte header, a rule table, a UTF-16LE string table, and an optional 64-byte
//! Ed25519 signature block (verified by [`crate::trust::verify`]). Little-endian throughout.
//!
//! The validator is a single forward pass: header, sizes, digest, then a recursive descent
//! over the rule table in which every count is checked against the bytes that remain before
//! anything is allocated, and every allocation is fallible.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use sha2::{Digest as _, Sha256};

use crate::content::{Content, Criterion, Rule, Values, limits};
use crate::error::{AllocError, ContentError, ErrorKind, Location};
use crate::mem;
use crate::schema::{Action, EventType, FieldKind, Op, SCHEMA_VERSION};

/// First eight bytes of every content file (PNG-style: catches text-mode transfers).
pub const MAGIC: [u8; 8] = [0x89, b'F', b'S', b'C', b'\r', b'\n', 0x1A, b'\n'];
/// Format version this build reads and writes.
pub const FORMAT_VERSION: u16 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = field::DIGEST.end;
const HEADER_LEN32: u32 = 80;
/// Bytes of the header covered by the digest (everything before the digest itself).
const DIGESTED_HEADER: usize = field::DIGEST.start;
/// Length of a signature block: one Ed25519 signature (the only length v1 reads besides 0).
pub const SIGNATURE_BLOCK_LEN: u32 = 64;

/// The header's layout, written once: the encoder, the validator's error offsets and the
/// table in docs/content-format.md all follow it.
pub mod field {
    use core::ops::Range;
    /// `\x89FSC\r\n\x1a\n`.
    pub const MAGIC: Range<usize> = 0..8;
    /// Format version (u16).
    pub const FORMAT: Range<usize> = 8..10;
    /// Event schema version (u16).
    pub const SCHEMA: Range<usize> = 10..12;
    /// Header length (u32, 80).
    pub const HEADER_LEN: Range<usize> = 12..16;
    /// Content version (u64, >= 1).
    pub const VERSION: Range<usize> = 16..24;
    /// Rule count (u32).
    pub const RULE_COUNT: Range<usize> = 24..28;
    /// Rule table length in bytes (u32).
    pub const RULES_LEN: Range<usize> = 28..32;
    /// String table length in bytes (u32, even).
    pub const STRINGS_LEN: Range<usize> = 32..36;
    /// Signature block length (u32): 0 unsigned, 64 one Ed25519 signature after the
    /// string table.
    pub const SIGNATURE_LEN: Range<usize> = 36..40;
    /// Key id of the signing key (8 bytes; all 0 in an unsigned file): the first 8 bytes of
    /// SHA-256 over a context string and the public key (`trust::key_id`).
    pub const KEY_ID: Range<usize> = 40..48;
    /// SHA-256 over bytes `0..48` and the rule and string tables (not the signature block).
    pub const DIGEST: Range<usize> = 48..80;
}
const _: () = assert!(
    field::FORMAT.start == field::MAGIC.end
        && field::SCHEMA.start == field::FORMAT.end
        && field::HEADER_LEN.start == field::SCHEMA.end
        && field::VERSION.start == field::HEADER_LEN.end
        && field::RULE_COUNT.start == field::VERSION.end
        && field::RULES_LEN.start == field::RULE_COUNT.end
        && field::STRINGS_LEN.start == field::RULES_LEN.end
        && field::SIGNATURE_LEN.start == field::STRINGS_LEN.end
        && field::KEY_ID.start == field::SIGNATURE_LEN.end
        && field::DIGEST.start == field::KEY_ID.end
        && field::DIGEST.end == 80
);

const RULE_FIXED: usize = 8; // id u32, event u8, action u8, criteria u8, exception sets u8
const CRIT_FIXED: usize = 4; // field u8, op u8, flags u8, value count u8
const SET_FIXED: usize = 1; // criteria count u8
const STR_REF: usize = 6; // offset u32 (code units), length u16 (code units)
const FLAG_NEGATE: u8 = 0x01;
/// Smallest exception set: its count byte and one criterion.
const MIN_SET: usize = SET_FIXED + CRIT_FIXED;

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
    /// Signature block bytes: 0 (unsigned) or [`SIGNATURE_BLOCK_LEN`].
    pub signature_len: u32,
    /// Key id of the signing key (all 0 when unsigned).
    pub key_id: [u8; 8],
    /// File digest: SHA-256 over header bytes 0..48 and the rule and string tables.
    pub digest: [u8; 32],
}

impl Header {
    /// Whether the file carries a signature block (not whether it verifies).
    pub fn is_signed(&self) -> bool {
        self.signature_len != 0
    }

    /// Bytes of rule table and string table (what the digest covers after the header).
    pub fn tables_len(&self) -> usize {
        us(self.rules_len).saturating_add(us(self.strings_len))
    }
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

/// Encodes content into format v1. The encoder checks only what the format can express
/// (counts, lengths, value shapes); semantic checks (field arity, operator types, ids) are
/// the validator's, so tests can build every kind of invalid content with it.
pub fn encode(content: &Content) -> Result<Vec<u8>, EncodeError> {
    if content.rules.len() > limits::MAX_RULES {
        return Err(limit(None, "rules", limits::MAX_RULES, content.rules.len()));
    }
    let mut rules_len = 0usize;
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
    }
    // The string table holds each distinct string once, in order of first use; every
    // reference to an equal string shares it.
    let mut shared: BTreeMap<&[u16], u32> = BTreeMap::new();
    let mut st: Vec<u8> = Vec::new();
    for r in &content.rules {
        for c in r.criteria.iter().chain(r.exceptions.iter().flatten()) {
            if let Values::Strs(list) = &c.values {
                for s in list {
                    if shared.contains_key(s.as_slice()) {
                        continue;
                    }
                    let off = u32::try_from(st.len() / 2)
                        .map_err(|_| limit(None, "string table", usize::MAX, st.len()))?;
                    shared.insert(s, off);
                    for u in s {
                        st.extend_from_slice(&u.to_le_bytes());
                    }
                }
            }
        }
    }
    let strings_len = st.len();
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
            put_criterion(&mut rt, &shared, i, c)?;
        }
        for set in &r.exceptions {
            rt.push(count_u8(
                i,
                "criteria in exception set",
                limits::MAX_CRITERIA,
                set.len(),
            )?);
            for c in set {
                put_criterion(&mut rt, &shared, i, c)?;
            }
        }
    }

    let mut out: Vec<u8> = Vec::new();
    out.try_reserve_exact(total)
        .map_err(|_| EncodeError::OutOfMemory)?;
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&SCHEMA_VERSION.to_le_bytes());
    out.extend_from_slice(&HEADER_LEN32.to_le_bytes());
    out.extend_from_slice(&content.version.to_le_bytes());
    out.extend_from_slice(&rule_count.to_le_bytes());
    out.extend_from_slice(&rules_len32.to_le_bytes());
    out.extend_from_slice(&strings_len32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes()); // signature length: unsigned
    out.extend_from_slice(&[0u8; 8]); // key id: none
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

/// A copy of a content file (whose header [`read_header`] accepts) made ready to be signed
/// by `key_id`: header and tables, any old signature block dropped, signature length
/// [`SIGNATURE_BLOCK_LEN`], key id set and the digest recomputed. The signer appends the
/// 64-byte Ed25519 signature of `trust::signed_message` over its first 80 bytes.
pub fn prepare_signed(bytes: &[u8], key_id: [u8; 8]) -> Result<Vec<u8>, ContentError> {
    let h = read_header(bytes)?;
    let head = bytes.get(..DIGESTED_HEADER).unwrap_or(&[]);
    let body = tables(bytes, &h);
    let mut out: Vec<u8> =
        mem::with_capacity(HEADER_LEN.saturating_add(body.len()).saturating_add(64))
            .map_err(|AllocError| oom(&Location::default()))?;
    let push = |out: &mut Vec<u8>, b: &[u8]| {
        mem::extend_from_slice(out, b).map_err(|AllocError| oom(&Location::default()))
    };
    push(
        &mut out,
        head.get(..field::SIGNATURE_LEN.start).unwrap_or(&[]),
    )?;
    push(&mut out, &SIGNATURE_BLOCK_LEN.to_le_bytes())?;
    push(&mut out, &key_id)?;
    let d = digest_of(&out, body);
    push(&mut out, &d)?;
    push(&mut out, body)?;
    Ok(out)
}

fn put_criterion(
    rt: &mut Vec<u8>,
    shared: &BTreeMap<&[u16], u32>,
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
                let off = shared.get(s.as_slice()).copied().unwrap_or(0);
                let len = u16::try_from(s.len()).map_err(|_| {
                    limit(Some(rule), "string length", usize::from(u16::MAX), s.len())
                })?;
                rt.extend_from_slice(&off.to_le_bytes());
                rt.extend_from_slice(&len.to_le_bytes());
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
    #[inline]
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
/// describe files that fail later checks. The checks run in header order, so the first
/// bad field is the one reported (see docs/content-format.md, "Order of checks").
pub fn read_header(bytes: &[u8]) -> Result<Header, ContentError> {
    let len = bytes.len();
    let magic = bytes.get(field::MAGIC).ok_or(err(
        field::MAGIC.start,
        ErrorKind::Truncated {
            what: "magic",
            needed: n64(field::MAGIC.len()),
            remaining: n64(len),
        },
    ))?;
    if magic != MAGIC {
        let mut found = [0u8; 8];
        found.copy_from_slice(magic);
        return Err(err(field::MAGIC.start, ErrorKind::BadMagic { found }));
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
            field::FORMAT.start,
            ErrorKind::UnsupportedFormat {
                expected: FORMAT_VERSION,
                found: format,
            },
        ));
    }
    let schema = r.u16(&at, "schema version")?;
    if schema != SCHEMA_VERSION {
        return Err(err(
            field::SCHEMA.start,
            ErrorKind::UnsupportedSchema {
                expected: SCHEMA_VERSION,
                found: schema,
            },
        ));
    }
    let header_len = r.u32(&at, "header length")?;
    if us(header_len) != HEADER_LEN {
        return Err(err(
            field::HEADER_LEN.start,
            ErrorKind::BadHeaderLength {
                expected: HEADER_LEN32,
                found: header_len,
            },
        ));
    }
    let version = r.u64(&at, "content version")?;
    if version == 0 {
        return Err(err(field::VERSION.start, ErrorKind::ZeroContentVersion));
    }
    let rule_count = r.u32(&at, "rule count")?;
    if us(rule_count) > limits::MAX_RULES {
        return Err(err(
            field::RULE_COUNT.start,
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
        return Err(err(
            field::STRINGS_LEN.start,
            ErrorKind::OddStringTable { len: strings_len },
        ));
    }
    let signature_len = r.u32(&at, "signature length")?;
    if signature_len != 0 && signature_len != SIGNATURE_BLOCK_LEN {
        return Err(err(
            field::SIGNATURE_LEN.start,
            ErrorKind::SignatureUnsupported {
                found: signature_len,
            },
        ));
    }
    let key_id = r.take::<8>(&at, "key id")?;
    if signature_len == 0 && key_id != [0; 8] {
        return Err(err(
            field::KEY_ID.start,
            ErrorKind::ReservedNonZero {
                what: "key id of an unsigned file",
                found: u64::from_le_bytes(key_id),
            },
        ));
    }
    let digest = r.take::<32>(&at, "digest")?;
    let tables = u64::from(rules_len).saturating_add(u64::from(strings_len));
    let body = tables.saturating_add(u64::from(signature_len));
    let have = n64(len.saturating_sub(HEADER_LEN));
    if tables > have {
        return Err(err(
            HEADER_LEN,
            ErrorKind::Truncated {
                what: "body",
                needed: tables,
                remaining: have,
            },
        ));
    }
    if body > have {
        // The tables are all there; the signature block is cut short.
        let at = HEADER_LEN.saturating_add(usize::try_from(tables).unwrap_or(usize::MAX));
        return Err(err(
            at,
            ErrorKind::Truncated {
                what: "signature block",
                needed: u64::from(signature_len),
                remaining: have.saturating_sub(tables),
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
        signature_len,
        key_id,
        digest,
    })
}

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

/// Checks a content file completely without decoding it: every check [`validate`] makes,
/// in the same order, with the same errors. Allocates only the duplicate-id table (12
/// bytes per rule, and a rule takes at least 12 bytes) and a bitmap of the string table
/// (1 bit per code unit): peak memory is below 1.07x the file size, whatever the body.
pub fn check(bytes: &[u8]) -> Result<Header, ContentError> {
    walk(bytes, &mut Discard)
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

/// The validator: header, sizes, digest, then one forward pass over the rule table that
/// hands every checked item to `sink`, then the duplicate-id check.
pub(crate) fn walk<'a, S: Sink<'a>>(bytes: &'a [u8], sink: &mut S) -> Result<Header, ContentError> {
    let header = read_header(bytes)?;
    check_digest(bytes, &header)?;
    walk_tables(bytes, &header, sink)
}

/// The rule and string tables of a file whose header `read_header` accepted.
fn tables<'a>(bytes: &'a [u8], header: &Header) -> &'a [u8] {
    let end = HEADER_LEN.saturating_add(header.tables_len());
    bytes.get(HEADER_LEN..end).unwrap_or(&[])
}

/// Checks the file digest (SHA-256 over header bytes 0..48 and the tables) of a file whose
/// header `read_header` returned.
pub(crate) fn check_digest(bytes: &[u8], header: &Header) -> Result<(), ContentError> {
    let computed = digest_of(
        bytes.get(..DIGESTED_HEADER).unwrap_or(&[]),
        tables(bytes, header),
    );
    if computed != header.digest {
        return Err(err(
            field::DIGEST.start,
            ErrorKind::DigestMismatch {
                declared: header.digest,
                computed,
            },
        ));
    }
    Ok(())
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

/// Bitmap over the string table's code units: bit set for a NUL and for a surrogate that
/// is unpaired in the table. A reference `[s, e)` holds a well-formed string exactly when
/// no bit in it is set, unit `s` is not a low surrogate and unit `e - 1` is not a high one
/// (pairing is decided by the neighbours alone). So each reference is checked in
/// `len / 64` word tests, however often the same bytes are referenced.
fn bad_units(table: &[u8]) -> Result<Vec<u64>, AllocError> {
    let units = table.len() / 2;
    let mut bits: Vec<u64> = mem::with_capacity(units.div_ceil(64))?;
    let unit = |i: usize| -> u16 {
        let b = i.saturating_mul(2);
        match table.get(b..b.saturating_add(2)) {
            Some(&[lo, hi]) => u16::from_le_bytes([lo, hi]),
            _ => 0xFFFF,
        }
    };
    let is_high = |u: u16| (0xD800..=0xDBFF).contains(&u);
    let is_low = |u: u16| (0xDC00..=0xDFFF).contains(&u);
    let whole = table.get(..units.saturating_mul(2)).unwrap_or(&[]);
    // Four units at a time: is any of them NUL or a surrogate?
    const LANES_LO: u64 = 0x0001_0001_0001_0001;
    const LANES_HI: u64 = 0x8000_8000_8000_8000;
    let zero_lane = |x: u64| x.wrapping_sub(LANES_LO) & !x & LANES_HI != 0;
    let suspect =
        |x: u64| zero_lane(x) || zero_lane((x & 0xF800_F800_F800_F800) ^ 0xD800_D800_D800_D800);
    // 64 units per word; four units that are neither NUL nor surrogates (nearly all) cost
    // one test, the others are looked at one by one, with their neighbours.
    for (w, block) in whole.chunks(128).enumerate() {
        let mut word = 0u64;
        let base = w.saturating_mul(64);
        let quads = block.chunks_exact(8);
        let tail_at = block.len().saturating_sub(quads.remainder().len());
        let mut look: u64 = 0; // bit q: quad q needs a closer look
        for (q, quad) in quads.enumerate() {
            let x = u64::from_le_bytes(quad.try_into().unwrap_or([0; 8]));
            if suspect(x) {
                look |= 1u64
                    .checked_shl(u32::try_from(q).unwrap_or(64))
                    .unwrap_or(0);
            }
        }
        if look == 0 && tail_at == block.len() {
            mem::push(&mut bits, word)?;
            continue;
        }
        for (j, pair) in block.chunks_exact(2).enumerate() {
            let in_tail = j.saturating_mul(2) >= tail_at;
            let quad_bit = 1u64
                .checked_shl(u32::try_from(j / 4).unwrap_or(64))
                .unwrap_or(0);
            if !in_tail && look & quad_bit == 0 {
                continue;
            }
            let &[lo, hi] = pair else { continue };
            let u = u16::from_le_bytes([lo, hi]);
            if u != 0 && u & 0xF800 != 0xD800 {
                continue;
            }
            let i = base.saturating_add(j);
            let bad = u == 0
                || (is_high(u) && !is_low(unit(i.saturating_add(1))))
                || (is_low(u) && (i == 0 || !is_high(unit(i.saturating_sub(1)))));
            if bad {
                word |= 1u64
                    .checked_shl(u32::try_from(j).unwrap_or(64))
                    .unwrap_or(0);
            }
        }
        mem::push(&mut bits, word)?;
    }
    Ok(bits)
}

/// Mask of bits `lo..hi` of a word (`lo <= hi <= 64`).
fn bit_range(lo: usize, hi: usize) -> u64 {
    let n = u32::try_from(hi.saturating_sub(lo)).unwrap_or(64);
    let ones = u64::MAX.checked_shr(64u32.saturating_sub(n)).unwrap_or(0);
    let ones = if n == 0 { 0 } else { ones };
    ones.checked_shl(u32::try_from(lo).unwrap_or(64))
        .unwrap_or(0)
}

struct Parser<'a> {
    strings: &'a [u8],
    strings_at: usize,
    bad: Vec<u64>,
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

    /// Checks one string reference; reports at the reference for a bad length or range,
    /// and at the offending code unit for a NUL or an unpaired surrogate.
    fn string(&self, r: &mut Rd<'_>, at: &Location) -> Result<(u32, u16), ContentError> {
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
        let start = us(offset);
        let end = start.saturating_add(usize::from(len));
        if start >= end || end > self.strings.len() / 2 {
            return Err(e(ErrorKind::StringOutOfRange {
                offset,
                len,
                table_units: n64(self.strings.len() / 2),
            }));
        }
        if self.well_formed(start, end) {
            return Ok((offset, len));
        }
        Err(self.string_error(start, end, at))
    }

    fn unit(&self, i: usize) -> u16 {
        let b = i.saturating_mul(2);
        match self.strings.get(b..b.saturating_add(2)) {
            Some(&[lo, hi]) => u16::from_le_bytes([lo, hi]),
            _ => 0,
        }
    }

    /// No NUL, no unpaired surrogate in units `start..end` (non-empty, inside the table).
    #[inline]
    fn well_formed(&self, start: usize, end: usize) -> bool {
        if (0xDC00..=0xDFFF).contains(&self.unit(start))
            || (0xD800..=0xDBFF).contains(&self.unit(end.saturating_sub(1)))
        {
            return false;
        }
        let (first, last) = (start / 64, end.saturating_sub(1) / 64);
        (first..=last).all(|w| {
            let base = w.saturating_mul(64);
            let lo = start.max(base).saturating_sub(base);
            let hi = end.min(base.saturating_add(64)).saturating_sub(base);
            self.bad
                .get(w)
                .is_some_and(|&word| word & bit_range(lo, hi) == 0)
        })
    }

    /// The precise error for a string that is not well formed: the first NUL, else the
    /// first unpaired surrogate, at the offending code unit.
    fn string_error(&self, start: usize, end: usize, at: &Location) -> ContentError {
        let str_at = |i: usize| Location {
            offset: self
                .strings_at
                .saturating_add(start.saturating_add(i).saturating_mul(2)),
            ..*at
        };
        let units = (start..end).map(|i| self.unit(i));
        if let Some(i) = units.clone().position(|u| u == 0) {
            return ContentError {
                at: str_at(i),
                kind: ErrorKind::NulInString {
                    index: u32::try_from(i).unwrap_or(u32::MAX),
                },
            };
        }
        let (i, unit) = crate::text::first_unpaired_surrogate_in(units).unwrap_or((0, 0));
        ContentError {
            at: str_at(i),
            kind: ErrorKind::InvalidUtf16 {
                index: u32::try_from(i).unwrap_or(u32::MAX),
                unit,
            },
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::as_conversions
)]
mod tests {
    use super::*;

    /// The word-at-a-time bitmap marks exactly the units a unit-by-unit definition does:
    /// NULs, high surrogates not followed by a low one, low ones not preceded by a high
    /// one; tables of every length (odd byte counts too) around the 64-unit word edges.
    #[test]
    fn bad_units_matches_the_unit_by_unit_definition() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let pool: [u16; 7] = [0x41, 0x0000, 0xD800, 0xDBFF, 0xDC00, 0xDFFF, 0x00E9];
        for round in 0..2000 {
            let len = (next() % 300) as usize;
            let sparse = round % 3 != 0; // mostly ordinary text, sometimes dense with bad units
            let table: Vec<u8> = (0..len)
                .flat_map(|_| {
                    let r = next();
                    let u = if sparse && r % 16 != 0 {
                        0x61 + (r % 26) as u16
                    } else {
                        pool[(r % pool.len() as u64) as usize]
                    };
                    u.to_le_bytes()
                })
                .chain((round % 2 == 1).then_some(0x41u8))
                .collect();
            let units: Vec<u16> = table
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            let high = |u: u16| (0xD800..=0xDBFF).contains(&u);
            let low = |u: u16| (0xDC00..=0xDFFF).contains(&u);
            let mut want = alloc::vec![0u64; units.len().div_ceil(64)];
            for (i, &u) in units.iter().enumerate() {
                let bad = u == 0
                    || (high(u) && !units.get(i + 1).is_some_and(|&n| low(n)))
                    || (low(u) && !(i > 0 && high(units[i - 1])));
                if bad {
                    want[i / 64] |= 1 << (i % 64);
                }
            }
            assert_eq!(
                bad_units(&table).unwrap(),
                want,
                "round {round}: {units:x?}"
            );
        }
    }
}
