//! The content store: `content\<N>.fsc` in the store's directory (opened relative to the
//! directory the driver holds, following no reparse point: `storedir`, `nt::open_at`),
//! listed with `ZwQueryDirectoryFile` and read whole into a bounded, fallibly allocated
//! buffer. PASSIVE_LEVEL.

use alloc::vec::Vec;

use failsafe_loader::state::{ContentStore, IoError};

use super::ffi::{
    FILE_DIRECTORY_FILE, FILE_LIST_DIRECTORY, FILE_NON_DIRECTORY_FILE, FILE_OPEN, GENERIC_READ,
    STATUS_INSUFFICIENT_RESOURCES, STATUS_OBJECT_NAME_NOT_FOUND, STATUS_OBJECT_PATH_NOT_FOUND,
};
use super::nt::{Wide, file_size, io, list_batch, open_at, read_at};
use super::storedir;
use crate::config::{content_file_name, parse_content_name};
use crate::reparse::Child;
use crate::wire::{file_names, utf16_into};

/// Directory listing buffer (pool, not stack) and the most entries looked at.
const LIST_BYTES: usize = 4096;
const MAX_BATCHES: usize = 4096;

/// `content` in the store's directory; its name built once at `DriverEntry`.
#[derive(Debug)]
pub struct KernelStore {
    dir: Wide,
}

impl KernelStore {
    /// The store in the store's directory.
    pub fn new() -> Option<Self> {
        Wide::from_str("content").map(|dir| KernelStore { dir })
    }
}

impl ContentStore for KernelStore {
    fn versions(&mut self, out: &mut Vec<u64>) -> Result<(), IoError> {
        let h = match open_at(
            storedir::handle(),
            &mut self.dir,
            Child::ContentFolder,
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
            if !list_batch(&h, &mut buf, i == 0).map_err(io)? {
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
        let h = open_at(
            storedir::handle(),
            &mut path,
            Child::Content,
            GENERIC_READ,
            FILE_OPEN,
            FILE_NON_DIRECTORY_FILE,
        )
        .map_err(io)?;
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
