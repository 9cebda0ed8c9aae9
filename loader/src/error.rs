//! Validation errors: what went wrong, where (byte offset, rule, criterion), expected vs found.

use core::fmt;

use crate::schema::{EventType, FieldKind, Op};

/// Where in the content an error was found, as far as it is known.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Location {
    /// Byte offset into the file.
    pub offset: usize,
    /// Index of the rule in file order.
    pub rule_index: Option<u32>,
    /// The rule's id, once it was read.
    pub rule_id: Option<u32>,
    /// Exception set index, when the criterion belongs to one.
    pub exception: Option<u8>,
    /// Criterion index within the rule (or within the exception set).
    pub criterion: Option<u8>,
    /// Value index within the criterion's list.
    pub value: Option<u8>,
}

/// What was wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file is shorter than its header, or than a header field says.
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes needed.
        needed: u64,
        /// Bytes that remain.
        remaining: u64,
    },
    /// The file is longer than its header says.
    TrailingBytes {
        /// Extra bytes.
        count: u64,
    },
    /// Not a content file.
    BadMagic {
        /// First eight bytes found.
        found: [u8; 8],
    },
    /// Format version this build does not read.
    UnsupportedFormat {
        /// Supported version.
        expected: u16,
        /// Version in the file.
        found: u16,
    },
    /// Content built for another event schema.
    UnsupportedSchema {
        /// Schema of this sensor.
        expected: u16,
        /// Schema in the file.
        found: u16,
    },
    /// The header length field is not the v1 header length.
    BadHeaderLength {
        /// Expected.
        expected: u32,
        /// Found.
        found: u32,
    },
    /// A reserved field or bit is not zero.
    ReservedNonZero {
        /// Which one.
        what: &'static str,
        /// Value found.
        found: u64,
    },
    /// A signature block length other than 0 (unsigned) or 64 (one Ed25519 signature).
    SignatureUnsupported {
        /// Declared length.
        found: u32,
    },
    /// The file or a table exceeds a hard limit.
    LimitExceeded {
        /// Which limit.
        what: &'static str,
        /// The limit.
        limit: u64,
        /// Found.
        found: u64,
    },
    /// The file digest (SHA-256 over header bytes 0..48 and the body) does not match.
    DigestMismatch {
        /// Digest in the header.
        declared: [u8; 32],
        /// Digest of the bytes.
        computed: [u8; 32],
    },
    /// Content version 0 is reserved for "no content".
    ZeroContentVersion,
    /// Rule table ended before the declared rule count was read, or has bytes after it.
    RuleTableLength {
        /// Rules declared in the header.
        declared_rules: u32,
        /// Bytes of rule table not consumed (0 if it ran out).
        unread_bytes: u64,
    },
    /// Unknown event type code.
    UnknownEventType {
        /// Code found.
        found: u8,
    },
    /// Unknown action code.
    UnknownAction {
        /// Code found.
        found: u8,
    },
    /// Unknown operator code.
    UnknownOperator {
        /// Code found.
        found: u8,
    },
    /// A rule or exception set without criteria (it would match everything).
    NoCriteria,
    /// A field index at or beyond the arity of the rule's event type.
    FieldOutOfRange {
        /// The rule's event type.
        event: EventType,
        /// Field index found.
        field: u8,
        /// Number of fields of that type (valid indices are below it).
        arity: u8,
    },
    /// The operator does not apply to the field's type.
    OperatorMismatch {
        /// Event type.
        event: EventType,
        /// Field index.
        field: u8,
        /// Field's type.
        expected: FieldKind,
        /// Operator found.
        op: Op,
    },
    /// An operator that takes values has an empty list.
    EmptyList,
    /// `is-true` / `is-false` carry values.
    UnexpectedValues {
        /// Count found.
        found: u8,
    },
    /// A string reference points outside the string table.
    StringOutOfRange {
        /// Offset in code units.
        offset: u32,
        /// Length in code units.
        len: u16,
        /// String table length in code units.
        table_units: u64,
    },
    /// Empty string value.
    EmptyString,
    /// An unpaired UTF-16 surrogate.
    InvalidUtf16 {
        /// Index of the code unit within the string.
        index: u32,
        /// The code unit.
        unit: u16,
    },
    /// A NUL code unit in a string (no Windows name contains one).
    NulInString {
        /// Index of the code unit within the string.
        index: u32,
    },
    /// A range with `lo > hi`.
    EmptyRange {
        /// Lower bound.
        lo: u64,
        /// Upper bound.
        hi: u64,
    },
    /// Two rules share an id.
    DuplicateRuleId {
        /// The id.
        id: u32,
        /// Index of the first rule that has it.
        first_index: u32,
    },
    /// The string table length is odd (it holds UTF-16 code units).
    OddStringTable {
        /// Its length in bytes.
        len: u32,
    },
    /// Memory could not be reserved for the decoded content.
    OutOfMemory,
    /// The store holds the file under another version than its header declares.
    VersionMismatch {
        /// Version the store names it by.
        expected: u64,
        /// Version in the header.
        found: u64,
    },
    /// The file carries no signature (signature length 0): the kernel runs signed content
    /// only.
    Unsigned,
    /// The file is signed by a key that is not trusted.
    UnknownKey {
        /// Key id in the header.
        id: [u8; 8],
    },
    /// The file is signed by a test key and test signing is off.
    TestSigningOff {
        /// Key id in the header.
        id: [u8; 8],
    },
    /// The signature does not verify with the trusted key its key id names: the header
    /// or the signature was changed after signing, or another key signed it.
    BadSignature {
        /// Key id in the header.
        id: [u8; 8],
    },
}

/// A precise validation error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentError {
    /// Where.
    pub at: Location,
    /// What.
    pub kind: ErrorKind,
}

impl ContentError {
    /// Short stable code for the kind (JSON, tests, state records via [`Self::ordinal`]).
    pub fn code(&self) -> &'static str {
        code_of_ordinal(self.ordinal()).unwrap_or("unknown")
    }

    /// Position of the kind in [`ERROR_CODES`] (kept in the state record's quarantine).
    pub const fn ordinal(&self) -> u32 {
        match self.kind {
            ErrorKind::Truncated { .. } => 0,
            ErrorKind::TrailingBytes { .. } => 1,
            ErrorKind::BadMagic { .. } => 2,
            ErrorKind::UnsupportedFormat { .. } => 3,
            ErrorKind::UnsupportedSchema { .. } => 4,
            ErrorKind::BadHeaderLength { .. } => 5,
            ErrorKind::ReservedNonZero { .. } => 6,
            ErrorKind::SignatureUnsupported { .. } => 7,
            ErrorKind::LimitExceeded { .. } => 8,
            ErrorKind::DigestMismatch { .. } => 9,
            ErrorKind::ZeroContentVersion => 10,
            ErrorKind::RuleTableLength { .. } => 11,
            ErrorKind::UnknownEventType { .. } => 12,
            ErrorKind::UnknownAction { .. } => 13,
            ErrorKind::UnknownOperator { .. } => 14,
            ErrorKind::NoCriteria => 15,
            ErrorKind::FieldOutOfRange { .. } => 16,
            ErrorKind::OperatorMismatch { .. } => 17,
            ErrorKind::EmptyList => 18,
            ErrorKind::UnexpectedValues { .. } => 19,
            ErrorKind::StringOutOfRange { .. } => 20,
            ErrorKind::EmptyString => 21,
            ErrorKind::InvalidUtf16 { .. } => 22,
            ErrorKind::NulInString { .. } => 23,
            ErrorKind::EmptyRange { .. } => 24,
            ErrorKind::DuplicateRuleId { .. } => 25,
            ErrorKind::OddStringTable { .. } => 26,
            ErrorKind::OutOfMemory => 27,
            ErrorKind::VersionMismatch { .. } => 28,
            ErrorKind::Unsigned => 29,
            ErrorKind::UnknownKey { .. } => 30,
            ErrorKind::TestSigningOff { .. } => 31,
            ErrorKind::BadSignature { .. } => 32,
        }
    }
}

/// Stable error codes, indexed by [`ContentError::ordinal`].
pub const ERROR_CODES: [&str; 33] = [
    "truncated",
    "trailing-bytes",
    "bad-magic",
    "unsupported-format",
    "unsupported-schema",
    "bad-header-length",
    "reserved-nonzero",
    "signature-unsupported",
    "limit-exceeded",
    "digest-mismatch",
    "zero-content-version",
    "rule-table-length",
    "unknown-event-type",
    "unknown-action",
    "unknown-operator",
    "no-criteria",
    "field-out-of-range",
    "operator-mismatch",
    "empty-list",
    "unexpected-values",
    "string-out-of-range",
    "empty-string",
    "invalid-utf16",
    "nul-in-string",
    "empty-range",
    "duplicate-rule-id",
    "odd-string-table",
    "out-of-memory",
    "version-mismatch",
    "unsigned",
    "unknown-key",
    "test-signing-off",
    "bad-signature",
];

/// The code for an ordinal read back from a state record.
pub fn code_of_ordinal(ordinal: u32) -> Option<&'static str> {
    ERROR_CODES.get(usize::try_from(ordinal).ok()?).copied()
}

fn plural(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

struct Hex<'a>(&'a [u8]);
impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "byte {}", self.offset)?;
        if let Some(i) = self.rule_index {
            write!(f, ", rule #{i}")?;
        }
        if let Some(id) = self.rule_id {
            write!(f, " (id {id})")?;
        }
        if let Some(e) = self.exception {
            write!(f, ", exception set {e}")?;
        }
        if let Some(c) = self.criterion {
            write!(f, ", criterion {c}")?;
        }
        if let Some(v) = self.value {
            write!(f, ", value {v}")?;
        }
        Ok(())
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ErrorKind::Truncated {
                what,
                needed,
                remaining,
            } => {
                write!(
                    f,
                    "truncated {what}: needs {needed} {}, {remaining} {} left",
                    plural(needed, "byte", "bytes"),
                    plural(remaining, "byte", "bytes"),
                )
            }
            ErrorKind::TrailingBytes { count } => {
                write!(
                    f,
                    "{count} trailing bytes after the declared end of the file"
                )
            }
            ErrorKind::BadMagic { found } => {
                write!(
                    f,
                    "not a Failsafe content file: magic {} found",
                    Hex(&found)
                )
            }
            ErrorKind::UnsupportedFormat { expected, found } => {
                write!(
                    f,
                    "format version {found} is not supported (expected {expected})"
                )
            }
            ErrorKind::UnsupportedSchema { expected, found } => write!(
                f,
                "content built for event schema {found}; this sensor has schema {expected}"
            ),
            ErrorKind::BadHeaderLength { expected, found } => {
                write!(f, "header length {found} (expected {expected})")
            }
            ErrorKind::ReservedNonZero { what, found } => {
                write!(f, "reserved {what} must be 0, found {found:#x}")
            }
            ErrorKind::SignatureUnsupported { found } => write!(
                f,
                "signature block of {found} bytes declared (expected 64, one Ed25519 signature, or 0)"
            ),
            ErrorKind::LimitExceeded { what, limit, found } => {
                write!(f, "{what}: {found} exceeds the limit of {limit}")
            }
            ErrorKind::DigestMismatch { declared, computed } => write!(
                f,
                "file digest mismatch: header says {}, bytes hash to {}",
                Hex(&declared),
                Hex(&computed)
            ),
            ErrorKind::ZeroContentVersion => {
                f.write_str("content version 0 is reserved (expected >= 1)")
            }
            ErrorKind::RuleTableLength {
                declared_rules,
                unread_bytes,
            } => {
                if unread_bytes == 0 {
                    write!(
                        f,
                        "rule table ended before the {declared_rules} declared rules"
                    )
                } else {
                    write!(
                        f,
                        "rule table has {unread_bytes} bytes after the {declared_rules} declared rules"
                    )
                }
            }
            ErrorKind::UnknownEventType { found } => {
                write!(
                    f,
                    "unknown event type code {found} (expected 1 file-create or 2 file-set-info)"
                )
            }
            ErrorKind::UnknownAction { found } => {
                write!(
                    f,
                    "unknown action code {found} (expected 1 allow, 2 audit or 3 block)"
                )
            }
            ErrorKind::UnknownOperator { found } => {
                write!(f, "unknown operator code {found} (expected ")?;
                for (i, op) in Op::ALL.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(
                        f,
                        "{sep}{} {} on {}",
                        op.code(),
                        op.name(),
                        op.kind().name()
                    )?;
                }
                f.write_str(")")
            }
            ErrorKind::NoCriteria => f.write_str(
                "no criteria (expected at least 1; an empty set would match everything)",
            ),
            ErrorKind::FieldOutOfRange {
                event,
                field,
                arity,
            } => write!(
                f,
                "field index {field} out of range for event type {event}: it has {arity} fields (0..={})",
                arity.saturating_sub(1)
            ),
            ErrorKind::OperatorMismatch {
                event,
                field,
                expected,
                op,
            } => {
                let name = event.field(field).map_or("?", |fl| fl.name);
                write!(
                    f,
                    "operator {op} ({}) does not apply to {event} field {field} `{name}` ({})",
                    op.kind().name(),
                    expected.name()
                )
            }
            ErrorKind::EmptyList => f.write_str("empty value list (expected at least 1 value)"),
            ErrorKind::UnexpectedValues { found } => {
                write!(f, "flag operators take no values, found {found}")
            }
            ErrorKind::StringOutOfRange {
                offset,
                len,
                table_units,
            } => write!(
                f,
                "string at code unit {offset} of length {len} lies outside the string table ({table_units} code units)"
            ),
            ErrorKind::EmptyString => {
                f.write_str("empty string value (expected 1 or more code units)")
            }
            ErrorKind::InvalidUtf16 { index, unit } => {
                write!(
                    f,
                    "invalid UTF-16: unpaired surrogate {unit:#06x} at code unit {index}"
                )
            }
            ErrorKind::NulInString { index } => write!(f, "NUL code unit at index {index}"),
            ErrorKind::EmptyRange { lo, hi } => {
                write!(f, "empty range: lower bound {lo} > upper bound {hi}")
            }
            ErrorKind::DuplicateRuleId { id, first_index } => {
                write!(
                    f,
                    "duplicate rule id {id} (first used by rule #{first_index})"
                )
            }
            ErrorKind::OddStringTable { len } => {
                write!(
                    f,
                    "string table length {len} is odd (expected UTF-16 code units)"
                )
            }
            ErrorKind::OutOfMemory => f.write_str("out of memory while decoding"),
            ErrorKind::VersionMismatch { expected, found } => write!(
                f,
                "header declares content version {found}, but the store holds it as version {expected}"
            ),
            ErrorKind::Unsigned => f.write_str(
                "content is not signed (signature length 0): only content signed by a trusted key is activated",
            ),
            ErrorKind::UnknownKey { id } => write!(
                f,
                "signed by key {} which is not trusted (not a release key, not a configured test key)",
                Hex(&id)
            ),
            ErrorKind::TestSigningOff { id } => write!(
                f,
                "signed by test key {}, but test signing is off",
                Hex(&id)
            ),
            ErrorKind::BadSignature { id } => write!(
                f,
                "signature does not verify with trusted key {}: the header or the signature changed after signing, or another key signed it",
                Hex(&id)
            ),
        }
    }
}

impl fmt::Display for ContentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.kind)
    }
}

impl core::error::Error for ContentError {}

/// Allocation failed while building a structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocError;

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("out of memory")
    }
}

impl core::error::Error for AllocError {}
