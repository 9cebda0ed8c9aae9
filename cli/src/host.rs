//! Host implementations of the loader's traits: the state record in a file written slot by
//! slot with `fsync`, and a content store that is a directory of `<version>.fsc` files.
//! The CLI, the drills and the tests all use these; the driver has kernel equivalents.
//!
//! Store layout (`--store DIR`):
//!   DIR/state.bin            the two-slot state record (2048 bytes)
//!   DIR/content/<N>.fsc      content version N

use crate::fail::io_code;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use failsafe_loader::state::record::{RECORD_LEN, SLOT_LEN};
use failsafe_loader::state::{ContentStore, IoError, StateMedium};

/// Where a drill makes the process die.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashAt {
    /// Right after the record was read, before anything is written.
    StateRead,
    /// In the first state write of this start, after `n` bytes of the slot reached the file.
    StateWrite(usize),
    /// After the first state write is durable, before the content is validated.
    AfterStateWrite,
    /// In the driver's own setup: after this start's attempt of the driver build is
    /// durable, before content is chosen (a build that faults in its setup).
    DriverSetup,
    /// After content was activated (the decision is printed first).
    AfterActivate,
}

impl std::str::FromStr for CrashAt {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "state-read" => Ok(CrashAt::StateRead),
            "after-state-write" => Ok(CrashAt::AfterStateWrite),
            "after-activate" => Ok(CrashAt::AfterActivate),
            "driver-setup" => Ok(CrashAt::DriverSetup),
            _ => match s.strip_prefix("state-write:").map(str::parse::<usize>) {
                Some(Ok(n)) if n < SLOT_LEN => Ok(CrashAt::StateWrite(n)),
                Some(_) => Err(format!(
                    "state-write:N needs 0 <= N < {SLOT_LEN}, found `{s}`"
                )),
                None => Err(format!(
                    "unknown crash point `{s}` (expected state-read, state-write:N, after-state-write, driver-setup or after-activate)"
                )),
            },
        }
    }
}

fn die() -> ! {
    // A real crash: no destructors, no flushing beyond what was synced.
    std::process::abort()
}

/// Syncs a directory so a rename or create in it is durable (no-op where unsupported).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Writes `bytes` to `path` atomically: temporary file, fsync, rename, fsync of the
/// directory. On failure (a full disk) the temporary file is removed: nothing is left but
/// what was there before.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let written = File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

/// The state record in a file.
#[derive(Debug)]
pub struct FileMedium {
    path: PathBuf,
    crash: Option<CrashAt>,
    writes: usize,
    /// Simulate a volume that refuses writes: every slot write fails with ENOSPC.
    pub fail_writes: bool,
}

impl FileMedium {
    /// The record of store `dir`.
    pub fn new(dir: &Path, crash: Option<CrashAt>) -> Self {
        FileMedium {
            path: dir.join("state.bin"),
            crash,
            writes: 0,
            fail_writes: false,
        }
    }
}

impl FileMedium {
    /// No more crash points: a host process that outlives its start writes whole slots.
    #[cfg(unix)]
    pub fn disarm(&mut self) {
        self.crash = None;
    }
}

impl StateMedium for FileMedium {
    fn read(&mut self, buf: &mut [u8; RECORD_LEN]) -> Result<bool, IoError> {
        let mut f = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(IoError { code: io_code(&e) }),
        };
        let mut got = Vec::with_capacity(RECORD_LEN);
        (&mut f)
            .take(RECORD_LEN as u64)
            .read_to_end(&mut got)
            .map_err(|e| IoError { code: io_code(&e) })?;
        buf[..got.len()].copy_from_slice(&got);
        if self.crash == Some(CrashAt::StateRead) {
            die();
        }
        Ok(true)
    }

    fn write_slot(&mut self, slot: usize, bytes: &[u8; SLOT_LEN]) -> Result<(), IoError> {
        if self.fail_writes {
            return Err(IoError { code: 28 }); // ENOSPC
        }
        let first = self.writes == 0;
        self.writes += 1;
        let at = slot * SLOT_LEN;
        let e = |e: io::Error| IoError { code: io_code(&e) };
        if !self.path.exists() {
            // First record: appears whole or not at all.
            let mut rec = vec![0u8; RECORD_LEN];
            rec[at..at + SLOT_LEN].copy_from_slice(bytes);
            if first && let Some(CrashAt::StateWrite(n)) = self.crash {
                // Torn creation: what `write_atomic` leaves when it dies mid-write is a
                // partial temporary file and no record.
                let mut f = File::create(self.path.with_file_name(".state.bin.tmp")).map_err(e)?;
                f.write_all(&rec[..at + n]).map_err(e)?;
                f.sync_all().map_err(e)?;
                die();
            }
            write_atomic(&self.path, &rec).map_err(e)?;
        } else {
            use std::io::{Seek, SeekFrom};
            let mut f = OpenOptions::new().write(true).open(&self.path).map_err(e)?;
            f.seek(SeekFrom::Start(at as u64)).map_err(e)?;
            if first && let Some(CrashAt::StateWrite(n)) = self.crash {
                f.write_all(&bytes[..n]).map_err(e)?;
                f.sync_data().map_err(e)?;
                die();
            }
            f.write_all(bytes).map_err(e)?;
            f.sync_data().map_err(e)?;
        }
        if first && self.crash == Some(CrashAt::AfterStateWrite) {
            die();
        }
        Ok(())
    }
}

/// The record in memory: a copy read once (`status`, previews). Reads return the copy;
/// writes change the copy only, so the start sequence can run on it to show what a start
/// would do without touching the file.
#[derive(Clone, Debug)]
pub struct MemMedium {
    record: Result<Option<Box<[u8; RECORD_LEN]>>, IoError>,
    /// Every write fails with this error (the file could not be written now).
    pub fail_writes: Option<IoError>,
}

impl MemMedium {
    /// A copy of a record as read (`Ok(None)`: no record; `Err`: the read failed).
    pub fn new(record: Result<Option<Box<[u8; RECORD_LEN]>>, IoError>) -> Self {
        MemMedium {
            record,
            fail_writes: None,
        }
    }
}

impl StateMedium for MemMedium {
    fn read(&mut self, buf: &mut [u8; RECORD_LEN]) -> Result<bool, IoError> {
        match &self.record {
            Err(e) => Err(*e),
            Ok(None) => Ok(false),
            Ok(Some(r)) => {
                buf.copy_from_slice(&r[..]);
                Ok(true)
            }
        }
    }

    fn write_slot(&mut self, slot: usize, bytes: &[u8; SLOT_LEN]) -> Result<(), IoError> {
        if let Some(e) = self.fail_writes {
            return Err(e);
        }
        // No record yet (a first install): the first write creates it, as on the file.
        if !matches!(self.record, Ok(Some(_))) {
            self.record = Ok(Some(Box::new([0u8; RECORD_LEN])));
        }
        if let Ok(Some(rec)) = &mut self.record {
            let at = slot * SLOT_LEN;
            rec[at..at + SLOT_LEN].copy_from_slice(bytes);
        }
        Ok(())
    }
}

/// A directory of `<version>.fsc` files.
#[derive(Debug)]
pub struct DirStore {
    dir: PathBuf,
}

/// The file name of a version in the store.
pub fn file_name(version: u64) -> String {
    format!("{version}.fsc")
}

/// The version a store file name stands for (`<N>.fsc`, N >= 1, no leading zeros).
pub fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".fsc")?;
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl DirStore {
    /// The content directory of store `dir`.
    pub fn new(dir: &Path) -> Self {
        DirStore {
            dir: dir.join("content"),
        }
    }

    /// Path of a version's file.
    pub fn path(&self, version: u64) -> PathBuf {
        self.dir.join(file_name(version))
    }

    /// The content directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Versions present, ascending.
    pub fn list(&self) -> io::Result<Vec<u64>> {
        let mut out = Vec::new();
        match fs::read_dir(&self.dir) {
            Ok(rd) => {
                for entry in rd {
                    if let Some(v) = entry?.file_name().to_str().and_then(parse_name) {
                        out.push(v);
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        out.sort_unstable();
        Ok(out)
    }
}

impl ContentStore for DirStore {
    fn versions(&mut self, out: &mut Vec<u64>) -> Result<(), IoError> {
        out.extend(self.list().map_err(|e| IoError { code: io_code(&e) })?);
        Ok(())
    }

    fn read(&mut self, version: u64, limit: usize, buf: &mut Vec<u8>) -> Result<(), IoError> {
        buf.clear();
        let f = File::open(self.path(version)).map_err(|e| IoError { code: io_code(&e) })?;
        f.take(limit as u64)
            .read_to_end(buf)
            .map_err(|e| IoError { code: io_code(&e) })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_names() {
        assert_eq!(parse_name("12.fsc"), Some(12));
        assert_eq!(parse_name("012.fsc"), None);
        assert_eq!(parse_name("0.fsc"), None);
        assert_eq!(parse_name(".12.fsc.tmp"), None);
        assert_eq!(parse_name("12.fsc.bak"), None);
        assert_eq!(parse_name("x.fsc"), None);
        assert_eq!(file_name(7), "7.fsc");
    }

    #[test]
    fn crash_points_parse() {
        assert_eq!(
            "state-write:17".parse::<CrashAt>(),
            Ok(CrashAt::StateWrite(17))
        );
        assert!(
            "state-write:5000"
                .parse::<CrashAt>()
                .unwrap_err()
                .contains("0 <= N < 2048")
        );
        assert!(
            "bogus"
                .parse::<CrashAt>()
                .unwrap_err()
                .contains("unknown crash point")
        );
    }
}
