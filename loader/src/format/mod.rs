//! Binary content format v1 (documented byte by byte in `docs/content-format.md`):
//! an 80-byte header, a rule table, a UTF-16LE string table, and an optional 64-byte
//! Ed25519 signature block (verified by [`crate::trust::verify`]). Little-endian throughout.
//!
//! The validator is a single forward pass: header, sizes, digest, then a recursive descent
//! over the rule table in which every count is checked against the bytes that remain before
//! anything is allocated, and every allocation is fallible.
//!
//! **Files.** `header.rs`: the header's layout, its reader and the digest; `encode.rs`:
//! the encoder and the re-digest for signing; `reader.rs`: the bounds-checked cursor;
//! `check.rs`: the validator's walk over the rule table and the sink it feeds;
//! `strings.rs`: string references and the string table's bitmap; `decode.rs`: the
//! decoding validator. This file: the rule table's layout and what the others share.

mod check;
mod decode;
mod encode;
mod header;
mod reader;
mod strings;

pub use check::check;
pub(crate) use check::{Sink, walk, walk_tables};
pub use decode::validate;
pub use encode::{EncodeError, encode, prepare_signed};
pub(crate) use header::check_digest;
pub use header::{
    FORMAT_VERSION, HEADER_LEN, Header, MAGIC, SIGNATURE_BLOCK_LEN, field, read_header,
};

use sha2::{Digest as _, Sha256};

use crate::content::Content;
use crate::error::{ContentError, ErrorKind, Location};

// The rule table's layout (docs/content-format.md): the fixed part of a rule, a criterion,
// an exception set and a string reference.
const RULE_FIXED: usize = 8; // id u32, event u8, action u8, criteria u8, exception sets u8
const CRIT_FIXED: usize = 4; // field u8, op u8, flags u8, value count u8
const SET_FIXED: usize = 1; // criteria count u8
const STR_REF: usize = 6; // offset u32 (code units), length u16 (code units)
const FLAG_NEGATE: u8 = 0x01;
/// Smallest exception set: its count byte and one criterion.
const MIN_SET: usize = SET_FIXED + CRIT_FIXED;

/// Content that passed validation, with its header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validated {
    /// Header (digest verified).
    pub header: Header,
    /// Decoded rules.
    pub content: Content,
}

fn digest_of(header48: &[u8], body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(header48);
    h.update(body);
    h.finalize().into()
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
