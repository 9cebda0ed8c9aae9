//! Thin, checked wrappers over the `Zw*` file routines: names, handles, synchronous reads
//! and writes. All of it runs at PASSIVE_LEVEL (the `Zw*` file routines require it;
//! Microsoft Learn, "ZwCreateFile function (wdm.h)", Requirements) and asserts so.

use alloc::vec::Vec;

use super::ffi::{
    _FILE_INFORMATION_CLASS, FILE_ATTRIBUTE_NORMAL, FILE_SHARE_DELETE, FILE_SHARE_READ,
    FILE_SHARE_WRITE, FILE_SYNCHRONOUS_IO_NONALERT, HANDLE, IO_STATUS_BLOCK, LARGE_INTEGER,
    MmGetSystemRoutineAddress, NTSTATUS, OBJ_CASE_INSENSITIVE, OBJ_KERNEL_HANDLE,
    OBJECT_ATTRIBUTES, STATUS_END_OF_FILE, STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_PARAMETER,
    STATUS_NAME_TOO_LONG, STATUS_NO_MORE_FILES, SYNCHRONIZE, UNICODE_STRING, ZwClose, ZwCreateFile,
    ZwFlushBuffersFile, ZwQueryDirectoryFile, ZwQueryInformationFile, ZwReadFile, ZwWriteFile,
};
use failsafe_loader::mem;
use failsafe_loader::state::IoError;

use crate::reparse::Child;

/// The current IRQL.
///
/// x64: the WDK's own inline `KeGetCurrentIrql` for AMD64 (wdm.h, the
/// `NT_INLINE_GET_CURRENT_IRQL` form: `return (KIRQL)ReadCR8();`, `ReadCR8()` being
/// `__readcr8()`, "CR8 is the APIC TPR register"; the same header's `KeRaiseIrql` /
/// `KeLowerIrql` write the IRQL with `WriteCR8`). Read inline rather than imported because
/// Wine's ntoskrnl (the hosted drill, docs/windows.md) does not export `KeGetCurrentIrql`
/// for x64; it emulates the privileged `mov r64, cr8` instead (its `instr.c`), always
/// reading 0. Other architectures: the exported routine (Microsoft Learn,
/// "KeGetCurrentIrql").
#[cfg(target_arch = "x86_64")]
pub fn irql() -> u8 {
    let cr8: u64;
    // SAFETY: reading CR8 is allowed at CPL 0 (kernel mode), at any IRQL; it touches no
    // memory, no stack and no flags.
    unsafe {
        core::arch::asm!("mov {}, cr8", out(reg) cr8, options(nomem, nostack, preserves_flags));
    }
    // The IRQL is CR8's low 4 bits (the rest is reserved, read as zero).
    u8::try_from(cr8 & 0xF).unwrap_or(u8::MAX)
}

/// The current IRQL (`KeGetCurrentIrql`).
#[cfg(not(target_arch = "x86_64"))]
pub fn irql() -> u8 {
    // SAFETY: callable at any IRQL, no arguments (Microsoft Learn, "KeGetCurrentIrql").
    unsafe { super::ffi::KeGetCurrentIrql() }
}

/// States a routine's IRQL requirement in code: checked in debug builds (Driver Verifier
/// test builds), free in release builds.
macro_rules! debug_assert_passive {
    () => {
        debug_assert_eq!(
            $crate::kernel::nt::irql(),
            $crate::kernel::ffi::PASSIVE_LEVEL
        )
    };
}
pub(crate) use debug_assert_passive;

/// A routine exported by the kernel or the HAL, by name, or null where this kernel has no
/// such routine (`MmGetSystemRoutineAddress`; Microsoft Learn, "MmGetSystemRoutineAddress
/// function (wdm.h)"). PASSIVE_LEVEL.
pub fn system_routine(name: &str) -> *mut core::ffi::c_void {
    debug_assert_passive!();
    let Some(mut name) = Wide::from_str(name) else {
        return core::ptr::null_mut();
    };
    let mut us = name.unicode();
    // SAFETY: PASSIVE_LEVEL; `us` points into `name`, alive for the call.
    unsafe { MmGetSystemRoutineAddress(&mut us) }
}

/// A UTF-16 name in pool memory (never on the kernel stack), built fallibly.
#[derive(Debug, Default)]
pub struct Wide(Vec<u16>);

impl Wide {
    /// Longest name a `UNICODE_STRING` can describe (its lengths are u16 byte counts).
    const MAX_UNITS: usize = 0x7FFF;

    /// The units of `s` followed by `more`, or `None` when memory is short or the result
    /// is too long for a `UNICODE_STRING`.
    pub fn join(s: &[u16], more: &str) -> Option<Wide> {
        let extra = more.encode_utf16().count();
        let n = s.len().checked_add(extra)?;
        if n > Self::MAX_UNITS {
            return None;
        }
        // Capacity-checked pushes: `Vec::extend*` keeps a growth path (and with it a
        // capacity-overflow panic) the compiler cannot remove; the PE test checks.
        let mut v = Vec::new();
        v.try_reserve_exact(n).ok()?;
        for &u in s {
            mem::push(&mut v, u).ok()?;
        }
        for u in more.encode_utf16() {
            mem::push(&mut v, u).ok()?;
        }
        Some(Wide(v))
    }

    /// A copy of `s` followed by `more` (UTF-16 units).
    pub fn join_units(s: &[u16], more: &[u16]) -> Option<Wide> {
        let n = s.len().checked_add(more.len())?;
        if n > Self::MAX_UNITS {
            return None;
        }
        let mut v = Vec::new();
        v.try_reserve_exact(n).ok()?;
        for &u in s.iter().chain(more) {
            mem::push(&mut v, u).ok()?;
        }
        Some(Wide(v))
    }

    /// From a Rust string.
    pub fn from_str(s: &str) -> Option<Wide> {
        Self::join(&[], s)
    }

    /// The code units.
    pub fn units(&self) -> &[u16] {
        &self.0
    }

    /// A `UNICODE_STRING` over the buffer, valid while `self` is alive and unchanged.
    pub fn unicode(&mut self) -> UNICODE_STRING {
        // MAX_UNITS keeps the byte count within u16 (checked on construction).
        let bytes = u16::try_from(self.0.len().saturating_mul(2)).unwrap_or(0);
        UNICODE_STRING {
            Length: bytes,
            MaximumLength: bytes,
            Buffer: self.0.as_mut_ptr(),
        }
    }
}

/// `InitializeObjectAttributes` (a macro in ntdef.h, so never in any binding): a kernel
/// handle, case-insensitive. `name` must outlive every use of the attributes.
pub fn object_attributes(name: &mut UNICODE_STRING) -> OBJECT_ATTRIBUTES {
    OBJECT_ATTRIBUTES {
        Length: u32::try_from(size_of::<OBJECT_ATTRIBUTES>()).unwrap_or(0),
        RootDirectory: core::ptr::null_mut(),
        ObjectName: name,
        Attributes: OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE,
        SecurityDescriptor: core::ptr::null_mut(),
        SecurityQualityOfService: core::ptr::null_mut(),
    }
}

/// A kernel handle, closed on drop.
#[derive(Debug)]
pub struct Handle(pub HANDLE);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: a handle from ZwCreateFile / ZwOpenKey that this value owns; closed once.
        let _ = unsafe { ZwClose(self.0) };
    }
}

/// An `IoError` for the core from an NTSTATUS.
pub fn io(status: NTSTATUS) -> IoError {
    IoError {
        code: i64::from(status),
    }
}

fn ok(status: NTSTATUS) -> Result<(), NTSTATUS> {
    if status < 0 { Err(status) } else { Ok(()) }
}

fn offset(at: u64) -> LARGE_INTEGER {
    LARGE_INTEGER {
        QuadPart: i64::try_from(at).unwrap_or(i64::MAX),
    }
}

/// Opens `name`, the store's child `child`, relative to the directory `root` (a handle the
/// driver holds), without following any reparse point (issue 19, finding 4: the store's
/// files are opened in the system's context, so a junction or symbolic link in the path
/// would redirect an overwrite or a delete-on-close to any file): the object attributes
/// and create options are [`Child::open`]'s (`OBJ_DONT_REPARSE`, `FILE_OPEN_REPARSE_POINT`
/// and `options`). A Windows that predates `OBJ_DONT_REPARSE` refuses the unknown
/// attribute with `STATUS_INVALID_PARAMETER`: the open is then repeated as
/// [`Child::open_without_dont_reparse`] says. Shares as [`create`]. PASSIVE_LEVEL.
pub fn open_at(
    root: HANDLE,
    name: &mut Wide,
    child: Child,
    access: u32,
    disposition: u32,
    options: u32,
) -> Result<Handle, NTSTATUS> {
    let o = child.open(options);
    match create(
        root,
        name,
        o.attributes,
        access,
        disposition,
        o.options,
        None,
    ) {
        Err(STATUS_INVALID_PARAMETER) => {
            let o = child.open_without_dont_reparse(options);
            create(
                root,
                name,
                o.attributes,
                access,
                disposition,
                o.options,
                None,
            )
        }
        r => r,
    }
}

/// `ZwCreateFile` of `name` (relative to `root` unless null) with extra object attributes
/// `attributes` and, for an object it creates, the self-relative security descriptor
/// `descriptor` (Microsoft Learn "ZwCreateFile function (wdm.h)"), synchronous I/O.
/// PASSIVE_LEVEL.
///
/// Every open shares read, write and delete: the driver never needs to keep others out
/// (the record survives torn and concurrent slot writes by its checksums and sequence
/// numbers), and must not make `failsafectl` fail (its atomic replace renames over the
/// driver's files), nor fail itself because a responder's tool, a backup agent or an
/// antivirus has one of its files open (a failed clean-shutdown write would be charged as
/// a crash). The one exception is the store's directory itself (`storedir`), held without
/// delete sharing so it cannot be renamed or replaced while the driver runs.
pub fn create(
    root: HANDLE,
    name: &mut Wide,
    attributes: u32,
    access: u32,
    disposition: u32,
    options: u32,
    descriptor: Option<&'static [u8]>,
) -> Result<Handle, NTSTATUS> {
    create_shared(
        root,
        name,
        (attributes, descriptor),
        access,
        FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
        disposition,
        options,
    )
}

/// [`create`] with the share access `share`.
pub fn create_shared(
    root: HANDLE,
    name: &mut Wide,
    (attributes, descriptor): (u32, Option<&'static [u8]>),
    access: u32,
    share: u32,
    disposition: u32,
    options: u32,
) -> Result<Handle, NTSTATUS> {
    debug_assert_passive!();
    let mut us = name.unicode();
    if us.Length == 0 {
        return Err(STATUS_NAME_TOO_LONG);
    }
    let mut attrs = object_attributes(&mut us);
    attrs.RootDirectory = root;
    attrs.Attributes |= attributes;
    // The kernel only reads (captures) the descriptor.
    attrs.SecurityDescriptor =
        descriptor.map_or(core::ptr::null_mut(), |d| d.as_ptr().cast_mut().cast());
    let mut iosb = IO_STATUS_BLOCK::default();
    let mut h: HANDLE = core::ptr::null_mut();
    // SAFETY: every pointer is to a live local; `us` (and the buffer it points into, owned
    // by `name`) and the descriptor (static) outlive the call; `root` is null or a live
    // directory handle of ours; PASSIVE_LEVEL; no EA buffer.
    let status = unsafe {
        ZwCreateFile(
            &mut h,
            access | SYNCHRONIZE,
            &mut attrs,
            &mut iosb,
            core::ptr::null_mut(),
            FILE_ATTRIBUTE_NORMAL,
            share,
            disposition,
            options | FILE_SYNCHRONOUS_IO_NONALERT,
            core::ptr::null_mut(),
            0,
        )
    };
    ok(status).map(|()| Handle(h))
}

/// One batch of `FILE_NAMES_INFORMATION` entries of the directory `h` into `buf`
/// (`ZwQueryDirectoryFile`, ntifs.h; synchronous); `false` at the end. PASSIVE_LEVEL.
pub fn list_batch(h: &Handle, buf: &mut [u8], restart: bool) -> Result<bool, NTSTATUS> {
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
        s if s < 0 => Err(s),
        _ => Ok(true),
    }
}

/// A line for the debugger: ASCII text in a fixed buffer (anything else as `?`),
/// NUL-terminated, truncated at 255 bytes; for `DbgPrintEx`'s `%s`, which is valid at any
/// IRQL (`%wZ` is not).
#[derive(Debug)]
pub struct Line {
    buf: [u8; 256],
    len: usize,
}

impl Line {
    /// Empty.
    pub fn new() -> Self {
        Line {
            buf: [0; 256],
            len: 0,
        }
    }

    fn push(&mut self, b: u8) {
        // The last byte stays NUL.
        if self.len < self.buf.len().saturating_sub(1)
            && let Some(slot) = self.buf.get_mut(self.len)
        {
            *slot = if (0x20..0x7F).contains(&b) { b } else { b'?' };
            self.len = self.len.saturating_add(1);
        }
    }

    /// Appends UTF-16 text (non-ASCII as `?`).
    pub fn push_units(&mut self, units: &[u16]) {
        for &u in units {
            self.push(u8::try_from(u).unwrap_or(b'?'));
        }
    }

    /// The NUL-terminated text.
    pub fn as_ptr(&self) -> *const core::ffi::c_char {
        self.buf.as_ptr().cast()
    }
}

impl Default for Line {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            self.push(b);
        }
        Ok(())
    }
}

/// Synchronous read at `at` into `buf`; the number of bytes read (0 at end of file).
pub fn read_at(h: &Handle, at: u64, buf: &mut [u8]) -> Result<usize, NTSTATUS> {
    debug_assert_passive!();
    let mut iosb = IO_STATUS_BLOCK::default();
    let mut pos = offset(at);
    let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
    // SAFETY: synchronous read of at most `len` bytes into `buf`, which is live and at least
    // that long, on a handle opened for synchronous I/O; no event, APC or key.
    let status = unsafe {
        ZwReadFile(
            h.0,
            core::ptr::null_mut(),
            None,
            core::ptr::null_mut(),
            &mut iosb,
            buf.as_mut_ptr().cast(),
            len,
            &mut pos,
            core::ptr::null_mut(),
        )
    };
    match status {
        STATUS_END_OF_FILE => Ok(0),
        s if s < 0 => Err(s),
        // ULONG_PTR: u64 in the bindings (the defect the kernel check found first).
        _ => Ok(usize::try_from(iosb.Information)
            .unwrap_or(usize::MAX)
            .min(buf.len())),
    }
}

/// Synchronous write of all of `data` at `at`.
pub fn write_at(h: &Handle, at: u64, data: &[u8]) -> Result<(), NTSTATUS> {
    debug_assert_passive!();
    let mut iosb = IO_STATUS_BLOCK::default();
    let mut pos = offset(at);
    let len = u32::try_from(data.len()).map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
    // SAFETY: synchronous write of `len` bytes from `data` (live, that long) on a handle
    // opened for writing; the kernel only reads the buffer.
    let status = unsafe {
        ZwWriteFile(
            h.0,
            core::ptr::null_mut(),
            None,
            core::ptr::null_mut(),
            &mut iosb,
            data.as_ptr().cast_mut().cast(),
            len,
            &mut pos,
            core::ptr::null_mut(),
        )
    };
    ok(status)
}

/// Flushes file data and metadata to the device (Microsoft Learn, "ZwFlushBuffersFile
/// function (ntifs.h)").
pub fn flush(h: &Handle) -> Result<(), NTSTATUS> {
    debug_assert_passive!();
    let mut iosb = IO_STATUS_BLOCK::default();
    // SAFETY: live handle opened for writing; `iosb` is a live local.
    ok(unsafe { ZwFlushBuffersFile(h.0, &mut iosb) })
}

/// The file's size (`FileStandardInformation`: AllocationSize i64, EndOfFile i64,
/// NumberOfLinks u32, DeletePending u8, Directory u8; wdm.h).
pub fn file_size(h: &Handle) -> Result<u64, NTSTATUS> {
    debug_assert_passive!();
    let mut info = [0u64; 3];
    let mut iosb = IO_STATUS_BLOCK::default();
    // SAFETY: live handle; `info` is a live local of 24 bytes, the structure's size, passed
    // with that length.
    let status = unsafe {
        ZwQueryInformationFile(
            h.0,
            &mut iosb,
            info.as_mut_ptr().cast(),
            24,
            _FILE_INFORMATION_CLASS::FileStandardInformation,
        )
    };
    ok(status)?;
    let [_, end_of_file, _] = info;
    Ok(end_of_file)
}
