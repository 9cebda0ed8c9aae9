//! The content store: `<dir>\content\<N>.fsc`, listed with `ZwQueryDirectoryFile` and read
//! whole into a bounded, fallibly allocated buffer. PASSIVE_LEVEL.

use alloc::vec::Vec;

use failsafe_loader::state::{ContentStore, IoError};

use super::ffi::{
    _FILE_INFORMATION_CLASS, FILE_DIRECTORY_FILE, FILE_LIST_DIRECTORY, FILE_NON_DIRECTORY_FILE,
    FILE_OPEN, GENERIC_READ, IO_STATUS_BLOCK, STATUS_INSUFFICIENT_RESOURCES, STATUS_NO_MORE_FILES,
    STATUS_OBJECT_NAME_NOT_FOUND, STATUS_OBJECT_PATH_NOT_FOUND, ZwQueryDirectoryFile,
};
use super::nt::{Handle, Wide, debug_assert_passive, file_size, io, open, read_at};
use crate::config::{content_file_name, parse_content_name};
use crate::wire::{file_names, utf16_into};

/// Directory listing buffer (pool, not stack) and the most entries looked at.
const LIST_BYTES: usize = 4096;
const MAX_BATCHES: usize = 4096;

/// `<dir>\content`, built once at `DriverEntry`.
#[derive(Debug)]
pub struct KernelStore {
    dir: Wide,
}

impl KernelStore {
    /// The store under the driver's directory.
    pub fn new(dir: &[u16]) -> Option<Self> {
        Wide::join(dir, "\\content").map(|dir| KernelStore { dir })
    }

    /// One batch of `FILE_NAMES_INFORMATION` entries into `buf`; `false` at the end.
    fn batch(h: &Handle, buf: &mut [u8], restart: bool) -> Result<bool, IoError> {
        debug_assert_passive!();
        let mut iosb = IO_STATUS_BLOCK::default();
        let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        // SAFETY: synchronous directory query on a live directory handle into `buf`, which
        // is live and `len` bytes long; no event, APC, or file name filter.
        let status = unsafe {
            ZwQueryDirectoryFile(
                h.0,
                core::ptr::null_mut(),
                None,
                core::ptr::null_mut(),
                &mut iosb,
                buf.as_mut_ptr().cast(),
                len,
                _FILE_INFORMATION_CLASS::FileNamesInformation,
                0,
                core::ptr::null_mut(),
                u8::from(restart),
            )
        };
        match status {
            STATUS_NO_MORE_FILES => Ok(false),
            s if s < 0 => Err(io(s)),
            _ => Ok(true),
        }
    }
}

impl ContentStore for KernelStore {
    fn versions(&mut self, out: &mut Vec<u64>) -> Result<(), IoError> {
        let h = match open(
            &mut self.dir,
            FILE_LIST_DIRECTORY,
            FILE_OPEN,
            FILE_DIRECTORY_FILE,
        ) {
            Ok(h) => h,
            Err(STATUS_OBJECT_NAME_NOT_FOUND | STATUS_OBJECT_PATH_NOT_FOUND) => return Ok(()),
            Err(s) => return Err(io(s)),
        };
        let mut buf = Vec::new();
        buf.try_reserve_exact(LIST_BYTES)
            .map_err(|_| io(STATUS_INSUFFICIENT_RESOURCES))?;
        buf.resize(LIST_BYTES, 0u8);
        for i in 0..MAX_BATCHES {
            if !Self::batch(&h, &mut buf, i == 0)? {
                break;
            }
            for name in file_names(&buf) {
                let mut units = [0u16; 32];
                let n = name.len() / 2;
                let Some(dst) = units.get_mut(..n) else {
                    continue; // longer than any content file name
                };
                if utf16_into(name, dst)
                    && let Some(v) = parse_content_name(dst)
                {
                    failsafe_loader::mem::push(out, v)
                        .map_err(|_| io(STATUS_INSUFFICIENT_RESOURCES))?;
                }
            }
        }
        Ok(())
    }

    fn read(&mut self, version: u64, limit: usize, buf: &mut Vec<u8>) -> Result<(), IoError> {
        let mut name = [0u16; 24];
        let n = content_file_name(version, &mut name);
        let mut sep_name = [0u16; 25];
        if let Some((sep, rest)) = sep_name.split_first_mut() {
            *sep = u16::from(b'\\');
            let _ = crate::wire::copy_prefix(rest, name.get(..n).unwrap_or(&[]));
        }
        let mut path = Wide::join_units(
            self.dir.units(),
            sep_name.get(..n.saturating_add(1)).unwrap_or(&[]),
        )
        .ok_or(io(STATUS_INSUFFICIENT_RESOURCES))?;
        let h = open(&mut path, GENERIC_READ, FILE_OPEN, FILE_NON_DIRECTORY_FILE).map_err(io)?;
        // At most `limit` bytes (the core asks for one more than a file may have, so the
        // validator still says "too large"); a huge file is never read whole.
        let size = usize::try_from(file_size(&h).map_err(io)?)
            .unwrap_or(usize::MAX)
            .min(limit);
        buf.clear();
        buf.try_reserve_exact(size)
            .map_err(|_| io(STATUS_INSUFFICIENT_RESOURCES))?;
        buf.resize(size, 0);
        let got = read_at(&h, 0, buf).map_err(io)?;
        buf.truncate(got);
        Ok(())
    }
}
