//! The 80-byte header: its layout (written once, in [`field`]), its reader with the
//! checks in header order, the tables it describes, and the file digest.

use super::reader::Rd;
use super::{digest_of, err, n64, us};
use crate::content::limits;
use crate::error::{ContentError, ErrorKind, Location};
use crate::schema::SCHEMA_VERSION;

/// First eight bytes of every content file (PNG-style: catches text-mode transfers).
pub const MAGIC: [u8; 8] = [0x89, b'F', b'S', b'C', b'\r', b'\n', 0x1A, b'\n'];
/// Format version this build reads and writes.
pub const FORMAT_VERSION: u16 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = field::DIGEST.end;
pub(super) const HEADER_LEN32: u32 = 80;
/// Bytes of the header covered by the digest (everything before the digest itself).
pub(super) const DIGESTED_HEADER: usize = field::DIGEST.start;
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

/// The rule and string tables of a file whose header `read_header` accepted.
pub(super) fn tables<'a>(bytes: &'a [u8], header: &Header) -> &'a [u8] {
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
