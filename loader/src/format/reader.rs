//! The validator's cursor: a positioned reader over one region of the file on top of
//! `untrusted::Reader`, whose every read that runs out is a `Truncated` error at its
//! offset.

use super::n64;
use crate::error::{ContentError, ErrorKind, Location};

/// A positioned reader over one region of the file, on top of `untrusted::Reader`.
pub(super) struct Rd<'a> {
    r: untrusted::Reader<'a>,
    pub(super) pos: usize,
    end: usize,
}

impl<'a> Rd<'a> {
    pub(super) fn new(bytes: &'a [u8], start: usize) -> Self {
        Rd {
            r: untrusted::Reader::new(untrusted::Input::from(bytes)),
            pos: start,
            end: start.saturating_add(bytes.len()),
        }
    }
    pub(super) fn remaining(&self) -> usize {
        self.end.saturating_sub(self.pos)
    }
    #[inline]
    pub(super) fn take<const N: usize>(
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
    pub(super) fn u8(&mut self, at: &Location, what: &'static str) -> Result<u8, ContentError> {
        self.take::<1>(at, what).map(|[b]| b)
    }
    pub(super) fn u16(&mut self, at: &Location, what: &'static str) -> Result<u16, ContentError> {
        self.take(at, what).map(u16::from_le_bytes)
    }
    pub(super) fn u32(&mut self, at: &Location, what: &'static str) -> Result<u32, ContentError> {
        self.take(at, what).map(u32::from_le_bytes)
    }
    pub(super) fn u64(&mut self, at: &Location, what: &'static str) -> Result<u64, ContentError> {
        self.take(at, what).map(u64::from_le_bytes)
    }
}
