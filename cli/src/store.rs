//! The store as the console commands that read or change state see it: existence checks
//! (a mistyped `--store` must not look like a healthy first install), the absolute path
//! every command prints, the exclusive lock every writer holds around its
//! read-modify-write, OS errors in words, and the start report a start leaves beside the
//! record.
//!
//! Layout: `DIR/state.bin` (record), `DIR/content/<N>.fsc`, `DIR/last-start.bin` (the last
//! start's report, written even when the record cannot be), `DIR/.lock` (the lock file).

use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use failsafe_loader::state::IoError;
use failsafe_loader::state::record::{
    RECORD_LEN, REPORT_LEN, StartReport, decode_report, encode_report,
};

use crate::fail::{Fail, io_code};

/// What a command is about to do with the store.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Read only (status): never creates anything.
    Read,
    /// Write (stage, recover, boot): creates the store only with `--init`.
    Write,
}

/// Resolves and checks the store directory: absolute path; refuses a directory that does
/// not exist or holds neither `state.bin` nor `content/`, unless `init` (then a writer
/// creates `content/`; a reader reports an empty store).
pub fn open(dir: &Path, init: bool, how: Use) -> Result<PathBuf, Fail> {
    let abs = std::path::absolute(dir).map_err(|e| {
        Fail::new(
            2,
            "store-missing",
            format!("cannot resolve store path {}: {e}", dir.display()),
        )
    })?;
    let hint = "check --store or $FAILSAFE_STORE (in WinRE the Windows volume is often not C:), or pass --init to create a new store";
    match std::fs::metadata(&abs) {
        Ok(m) if !m.is_dir() => {
            return Err(Fail::new(
                2,
                "store-missing",
                format!("store {} is not a directory", abs.display()),
            ));
        }
        Ok(_) => {
            let has_record = abs.join("state.bin").exists();
            let has_content = abs.join("content").is_dir();
            if !has_record && !has_content && !init {
                return Err(Fail::new(
                    2,
                    "store-missing",
                    format!(
                        "{} is not a Failsafe store (no state.bin, no content directory); {hint}",
                        abs.display()
                    ),
                ));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if !init {
                return Err(Fail::new(
                    2,
                    "store-missing",
                    format!("no store at {} (no such directory); {hint}", abs.display()),
                ));
            }
        }
        Err(e) => {
            return Err(Fail::new(
                2,
                "io-error",
                format!("cannot open store {}: {e}", abs.display()),
            ));
        }
    }
    if init && how == Use::Write {
        #[cfg(windows)]
        protected::secure(&abs).map_err(|e| {
            Fail::new(
                2,
                "io-error",
                format!(
                    "cannot create store {} with its access list (SYSTEM and Administrators only): {e}",
                    abs.display()
                ),
            )
        })?;
        std::fs::create_dir_all(abs.join("content")).map_err(|e| {
            Fail::new(
                2,
                "io-error",
                format!("cannot create store {}: {e}", abs.display()),
            )
        })?;
        reserve_report(&abs);
    }
    Ok(abs)
}

/// The store's exclusive lock, held for a whole read-modify-write of the record or the
/// store; released on drop. `flock` on Unix and `LockFileEx` on Windows (through
/// `std::fs::File::lock`), on `DIR/.lock`, a file that is never replaced (the record is,
/// by `rebuild`).
#[derive(Debug)]
pub struct StoreLock {
    file: File,
}

impl StoreLock {
    /// Waits for the exclusive lock of store `dir`.
    pub fn exclusive(dir: &Path) -> Result<Self, Fail> {
        let path = dir.join(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| {
                Fail::new(
                    2,
                    "io-error",
                    format!("cannot open the store lock {}: {e}", path.display()),
                )
            })?;
        file.lock().map_err(|e| {
            Fail::new(
                2,
                "io-error",
                format!("cannot lock {}: {e}", path.display()),
            )
        })?;
        Ok(StoreLock { file })
    }

    /// Waits for a shared lock (readers: a consistent view while no writer is in the
    /// middle of its update). `None` when the lock file cannot be opened (a read-only
    /// store can still be read).
    pub fn shared(dir: &Path) -> Option<Self> {
        let file = File::open(dir.join(".lock")).ok()?;
        file.lock_shared().ok()?;
        Some(StoreLock { file })
    }
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// Path of the start report.
pub fn report_path(dir: &Path) -> PathBuf {
    dir.join("last-start.bin")
}

/// Writes the start report beside the record: in place when it exists (no new space
/// needed, so it still works on a full disk), else created. Best effort by design: the
/// result says whether it worked.
pub fn write_report(dir: &Path, r: &StartReport) -> io::Result<()> {
    let bytes = encode_report(r);
    let path = report_path(dir);
    match OpenOptions::new().write(true).open(&path) {
        Ok(mut f) => {
            f.seek(SeekFrom::Start(0))?;
            f.write_all(&bytes)?;
            f.sync_data()
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => crate::host::write_atomic(&path, &bytes),
        Err(e) => Err(e),
    }
}

/// Makes room for the start report ahead of the starts: an empty report file (zeros, which
/// read as no report) of the report's length, created where none exists, so that a start
/// on a disk that filled up since writes its report in place and leaves a trace (a full
/// disk cannot take a new file; an existing one takes its bytes). Best effort: called when
/// content is staged or a store created, while there is room.
pub fn reserve_report(dir: &Path) {
    let path = report_path(dir);
    if path.exists() {
        return;
    }
    if crate::host::write_atomic(&path, &[0u8; REPORT_LEN]).is_err() {
        let _ = std::fs::remove_file(&path);
    }
}

/// Reads the start report; `None` when there is none or it is not valid.
pub fn read_report(dir: &Path) -> Option<StartReport> {
    let mut buf = Vec::with_capacity(REPORT_LEN);
    File::open(report_path(dir))
        .ok()?
        .take(u64::try_from(REPORT_LEN).unwrap_or(0))
        .read_to_end(&mut buf)
        .ok()?;
    decode_report(&buf)
}

/// The record as one read of `DIR/state.bin` finds it, and whether a start could write it.
#[derive(Debug)]
pub struct RecordFile {
    /// The record's bytes (a short file zero-padded, as the host medium reads it); `None`:
    /// no record (first install); `Err`: the read failed.
    pub bytes: Result<Option<Box<[u8; RECORD_LEN]>>, IoError>,
    /// `Err` with the OS error ("Read-only file system", "No space left on device") when a
    /// start could not write the record now.
    pub writable: io::Result<()>,
}

/// Reads the record once: opened for reading and writing (which also says whether a start
/// could write it), else for reading only. Without a record, whether one could be created
/// is probed as a start creates it: [`RECORD_LEN`] bytes written, synced and removed (an
/// empty file still fits on a full disk; a record does not).
pub fn read_record(dir: &Path) -> RecordFile {
    let path = dir.join("state.bin");
    let code = |e: &io::Error| IoError { code: io_code(e) };
    let (file, writable) = match OpenOptions::new().read(true).write(true).open(&path) {
        Ok(f) => (f, Ok(())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return RecordFile {
                bytes: Ok(None),
                writable: probe_create(dir),
            };
        }
        Err(e) => match File::open(&path) {
            Ok(f) => (f, Err(e)),
            Err(read) => {
                return RecordFile {
                    bytes: Err(code(&read)),
                    writable: Err(e),
                };
            }
        },
    };
    let mut got = Vec::with_capacity(RECORD_LEN);
    let bytes = file
        .take(u64::try_from(RECORD_LEN).unwrap_or(0))
        .read_to_end(&mut got)
        .map_err(|e| code(&e))
        .map(|_| {
            let mut b = Box::new([0u8; RECORD_LEN]);
            if let Some(dst) = b.get_mut(..got.len()) {
                dst.copy_from_slice(&got);
            }
            Some(b)
        });
    RecordFile { bytes, writable }
}

/// Whether a record of [`RECORD_LEN`] bytes could be created in `dir` now.
fn probe_create(dir: &Path) -> io::Result<()> {
    let probe = dir.join(".write-probe");
    let r = File::create(&probe).and_then(|mut f| {
        f.write_all(&[0u8; RECORD_LEN])?;
        f.sync_all()
    });
    let _ = std::fs::remove_file(&probe);
    r
}

/// The store's access list on Windows (issue 19, finding 3): the directory the driver
/// reads its record and rules from grants SYSTEM and Administrators everything and nobody
/// else anything, protected from its parent's inheritable ACEs. The driver checks the same
/// at every start (`driver/src/kernel/storedir.rs`) and refuses a store others may write.
#[cfg(windows)]
mod protected {
    use std::io;
    use std::os::windows::ffi::OsStrExt;
    use std::path::Path;

    use windows_sys::Win32::Foundation::{ERROR_SUCCESS, LocalFree};
    use windows_sys::Win32::Security::Authorization::{
        ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1, SE_FILE_OBJECT,
        SetNamedSecurityInfoW,
    };
    use windows_sys::Win32::Security::{
        ACL, DACL_SECURITY_INFORMATION, GetSecurityDescriptorDacl,
        PROTECTED_DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, SECURITY_ATTRIBUTES,
    };
    use windows_sys::Win32::Storage::FileSystem::CreateDirectoryW;

    /// The driver's `dacl::STORE_DESCRIPTOR`, in SDDL.
    const SDDL: &str = "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)";

    /// A security descriptor from `ConvertStringSecurityDescriptorToSecurityDescriptorW`,
    /// freed with `LocalFree` (Microsoft Learn, the function's page).
    struct Descriptor(PSECURITY_DESCRIPTOR);

    impl Drop for Descriptor {
        fn drop(&mut self) {
            // SAFETY: allocated by the conversion below (LocalAlloc), freed once.
            unsafe { LocalFree(self.0) };
        }
    }

    fn wide(s: &std::ffi::OsStr) -> Vec<u16> {
        s.encode_wide().chain(Some(0)).collect()
    }

    /// Creates `dir` (its parents as usual) with the store's DACL, or applies the DACL to
    /// an existing `dir` (`SetNamedSecurityInfoW` also gives its existing files and folders
    /// the new inheritable ACEs).
    pub fn secure(dir: &Path) -> io::Result<()> {
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let sddl = wide(SDDL.as_ref());
        let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        // SAFETY: a NUL-terminated string; `sd` receives a LocalAlloc'd descriptor.
        let ok = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                sddl.as_ptr(),
                SDDL_REVISION_1,
                &mut sd,
                std::ptr::null_mut(),
            )
        };
        if ok == 0 {
            return Err(io::Error::last_os_error());
        }
        let sd = Descriptor(sd);
        let path = wide(dir.as_os_str());
        if !dir.exists() {
            let sa = SECURITY_ATTRIBUTES {
                nLength: u32::try_from(size_of::<SECURITY_ATTRIBUTES>()).unwrap_or(0),
                lpSecurityDescriptor: sd.0,
                bInheritHandle: 0,
            };
            // SAFETY: a NUL-terminated path; `sa` and the descriptor it points to are live.
            if unsafe { CreateDirectoryW(path.as_ptr(), &sa) } == 0 {
                return Err(io::Error::last_os_error());
            }
            return Ok(());
        }
        let (mut present, mut defaulted) = (0, 0);
        let mut dacl: *mut ACL = std::ptr::null_mut();
        // SAFETY: a valid descriptor; the out pointers are live locals; `dacl` points into
        // `sd`, which outlives its use.
        let ok =
            unsafe { GetSecurityDescriptorDacl(sd.0, &mut present, &mut dacl, &mut defaulted) };
        if ok == 0 || present == 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a NUL-terminated path; the DACL is valid (from the descriptor above); no
        // owner, group or SACL is changed.
        let e = unsafe {
            SetNamedSecurityInfoW(
                path.as_ptr(),
                SE_FILE_OBJECT,
                DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                dacl,
                std::ptr::null(),
            )
        };
        if e != ERROR_SUCCESS {
            return Err(io::Error::from_raw_os_error(
                i32::try_from(e).unwrap_or(i32::MAX),
            ));
        }
        Ok(())
    }
}
