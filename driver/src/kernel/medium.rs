//! The state medium: `state.bin` in the store's directory (opened relative to the
//! directory the driver holds, following no reparse point: `storedir`, `nt::open_at`), two
//! slots written in place with `FILE_WRITE_THROUGH` and flushed with `ZwFlushBuffersFile`
//! before `write_slot` returns (ADR 0002, docs/boot-safety.md "Durability"). PASSIVE_LEVEL.

use alloc::vec::Vec;

use failsafe_loader::state::record::{RECORD_LEN, SLOT_LEN};
use failsafe_loader::state::{IoError, StateMedium};

use super::ffi::{
    FILE_CREATE, FILE_NON_DIRECTORY_FILE, FILE_OPEN, FILE_WRITE_THROUGH, GENERIC_READ,
    GENERIC_WRITE, NTSTATUS, STATUS_INSUFFICIENT_RESOURCES, STATUS_OBJECT_NAME_NOT_FOUND,
};
use super::nt::{Handle, Wide, flush, io, open_at, read_at, write_at};
use super::storedir;
use crate::reparse::Child;

/// The record file. Its name is built once, at `DriverEntry`.
#[derive(Debug)]
pub struct KernelMedium {
    name: Wide,
}

impl KernelMedium {
    /// `state.bin` in the store's directory.
    pub fn new() -> Option<Self> {
        Wide::from_str("state.bin").map(|name| KernelMedium { name })
    }

    fn open(&mut self, access: u32, disposition: u32, options: u32) -> Result<Handle, NTSTATUS> {
        open_at(
            storedir::handle(),
            &mut self.name,
            Child::Record,
            access,
            disposition,
            options,
        )
    }
}

impl StateMedium for KernelMedium {
    fn read(&mut self, buf: &mut [u8; RECORD_LEN]) -> Result<bool, IoError> {
        let h = match self.open(GENERIC_READ, FILE_OPEN, FILE_NON_DIRECTORY_FILE) {
            Ok(h) => h,
            Err(STATUS_OBJECT_NAME_NOT_FOUND) => return Ok(false),
            Err(s) => return Err(io(s)),
        };
        // A short or empty record leaves the rest zero (its slots then fail their
        // checksum: "state lost", and a fresh record is written).
        read_at(&h, 0, buf).map(|_| true).map_err(io)
    }

    fn write_slot(&mut self, slot: usize, bytes: &[u8; SLOT_LEN]) -> Result<(), IoError> {
        let opts = FILE_NON_DIRECTORY_FILE | FILE_WRITE_THROUGH;
        let at = slot
            .checked_mul(SLOT_LEN)
            .ok_or(io(STATUS_INSUFFICIENT_RESOURCES))?;
        match self.open(GENERIC_WRITE, FILE_OPEN, opts) {
            Ok(h) => {
                write_at(&h, u64::try_from(at).unwrap_or(u64::MAX), bytes).map_err(io)?;
                flush(&h).map_err(io)
            }
            // First record: create the file with both slots (zeros and this one), so that
            // later slot writes never extend it. The 2 KiB image is built in pool memory.
            Err(STATUS_OBJECT_NAME_NOT_FOUND) => {
                let h = self.open(GENERIC_WRITE, FILE_CREATE, opts).map_err(io)?;
                let mut record = Vec::new();
                record
                    .try_reserve_exact(RECORD_LEN)
                    .map_err(|_| io(STATUS_INSUFFICIENT_RESOURCES))?;
                record.resize(RECORD_LEN, 0);
                if let Some(dst) = record.get_mut(at..) {
                    let _ = crate::wire::copy_prefix(dst, bytes);
                }
                write_at(&h, 0, &record).map_err(io)?;
                flush(&h).map_err(io)
            }
            Err(s) => Err(io(s)),
        }
    }
}
