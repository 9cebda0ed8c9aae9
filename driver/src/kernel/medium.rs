//! The state medium: `<dir>\state.bin`, two slots written in place with `FILE_WRITE_THROUGH`
//! and flushed with `ZwFlushBuffersFile` before `write_slot` returns (ADR 0002,
//! docs/boot-safety.md "Durability"). PASSIVE_LEVEL.

use alloc::vec::Vec;

use failsafe_loader::state::record::{RECORD_LEN, SLOT_LEN};
use failsafe_loader::state::{IoError, StateMedium};

use super::ffi::{
    FILE_CREATE, FILE_NON_DIRECTORY_FILE, FILE_OPEN, FILE_WRITE_THROUGH, GENERIC_READ,
    GENERIC_WRITE, STATUS_INSUFFICIENT_RESOURCES, STATUS_OBJECT_NAME_NOT_FOUND,
};
use super::nt::{Wide, flush, io, open, read_at, write_at};

/// The record file. The path is built once, at `DriverEntry`.
#[derive(Debug)]
pub struct KernelMedium {
    path: Wide,
}

impl KernelMedium {
    /// `<dir>\state.bin`.
    pub fn new(dir: &[u16]) -> Option<Self> {
        Wide::join(dir, "\\state.bin").map(|path| KernelMedium { path })
    }
}

impl StateMedium for KernelMedium {
    fn read(&mut self, buf: &mut [u8; RECORD_LEN]) -> Result<bool, IoError> {
        let h = match open(
            &mut self.path,
            GENERIC_READ,
            FILE_OPEN,
            FILE_NON_DIRECTORY_FILE,
        ) {
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
        match open(&mut self.path, GENERIC_WRITE, FILE_OPEN, opts) {
            Ok(h) => {
                write_at(&h, u64::try_from(at).unwrap_or(u64::MAX), bytes).map_err(io)?;
                flush(&h).map_err(io)
            }
            // First record: create the file with both slots (zeros and this one), so that
            // later slot writes never extend it. The 2 KiB image is built in pool memory.
            Err(STATUS_OBJECT_NAME_NOT_FOUND) => {
                let h = open(&mut self.path, GENERIC_WRITE, FILE_CREATE, opts).map_err(io)?;
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
