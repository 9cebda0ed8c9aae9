//! The store's directory (`ContentDirectory`): opened once in `DriverEntry`, checked, and
//! held until teardown; the record, the content files and the canary are opened relative
//! to this handle, never by path (issue 19, findings 3 and 4). PASSIVE_LEVEL.
//!
//! At the start:
//! 1. The directory is opened (created if missing, with the store's DACL) with
//!    `FILE_OPEN_REPARSE_POINT`: a junction or symbolic link there is opened itself and
//!    refused (`FileAttributeTagInformation` or `ZwQueryFullAttributesFile` shows
//!    `FILE_ATTRIBUTE_REPARSE_POINT`; the flags and the rule: `crate::reparse`). The
//!    handle does not share delete, so the directory cannot be renamed or replaced while
//!    the driver runs; its files can (the console's atomic replace renames them).
//! 2. Its owner and DACL (`ZwQuerySecurityObject`) are judged by `crate::dacl::judge`:
//!    someone other than SYSTEM, Administrators or TrustedInstaller may write or owns it:
//!    refused (files such a writer put there, hard links included, cannot be made safe by
//!    a new DACL); others may only read, or the DACL inherits: the driver applies
//!    `D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)` (`ZwSetSecurityObject`) and judges again, and
//!    refuses the directory unless it is then strict.
//! 3. The same for every entry of the directory and of its `content` folder (files
//!    created earlier inherited the parent's old ACL: the kernel does not propagate a new
//!    one); an entry that cannot be made strict refuses the directory.
//!
//! A refusal ends `DriverEntry` before the start decision: nothing is charged, and the
//! debugger line says what was found (which ACE, which SID, which rights).

use alloc::vec::Vec;
use core::ffi::c_void;
use core::fmt::Write as _;
use core::sync::atomic::{AtomicPtr, Ordering};

use super::ffi::{
    _FILE_INFORMATION_CLASS, DACL_SECURITY_INFORMATION, DPFLTR_IHVDRIVER_ID, DPFLTR_WARNING_LEVEL,
    DbgPrintEx, FILE_DIRECTORY_FILE, FILE_LIST_DIRECTORY, FILE_OPEN, FILE_OPEN_IF, FILE_SHARE_READ,
    FILE_SHARE_WRITE, FILE_TRAVERSE, HANDLE, IO_STATUS_BLOCK, NTSTATUS, OWNER_SECURITY_INFORMATION,
    READ_CONTROL, STATUS_ACCESS_DENIED, STATUS_BUFFER_TOO_SMALL, STATUS_INSUFFICIENT_RESOURCES,
    STATUS_OBJECT_NAME_NOT_FOUND, STATUS_REPARSE_POINT_ENCOUNTERED, WRITE_DAC, ZwClose,
    ZwQueryFullAttributesFile, ZwQueryInformationFile, ZwQuerySecurityObject, ZwSetSecurityObject,
};
use super::nt::{Handle, Line, Wide, create_shared, debug_assert_passive, list_batch, open_at};
use crate::dacl::{STORE_DESCRIPTOR, Unsafe, Verdict, judge};
use crate::reparse::{self, Child};
use crate::wire::{file_names, utf16_into};

/// The store's directory handle (a kernel handle), null when none is held. Written in
/// `DriverEntry` before any reader exists and closed by teardown after the last one (the
/// driver's thread) has stopped.
static STORE_DIR: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());

/// The store's descriptor, aligned as a `SECURITY_DESCRIPTOR_RELATIVE` is.
#[repr(C, align(8))]
struct Aligned([u8; STORE_DESCRIPTOR.len()]);
static DESCRIPTOR: Aligned = Aligned(STORE_DESCRIPTOR);

/// Entries looked at per directory, and the listing buffer (pool, not stack).
const MAX_BATCHES: usize = 4096;
const LIST_BYTES: usize = 4096;
/// A security descriptor larger than this is not read (a store's has two ACEs).
const MAX_DESCRIPTOR: u32 = 0x1_0000;

/// The held directory handle (null before `open` and after `close`).
pub fn handle() -> HANDLE {
    STORE_DIR.load(Ordering::Acquire)
}

/// Opens and checks the store's directory `path` and holds it (see the module
/// documentation). The status to end `DriverEntry` with when the directory is refused;
/// the reason is logged.
pub fn open(path: &Wide, policy: Policy) -> Result<(), NTSTATUS> {
    debug_assert_passive!();
    let mut name = Wide::join(path.units(), "").ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
    let o = reparse::directory(FILE_DIRECTORY_FILE);
    let dir = create_shared(
        core::ptr::null_mut(),
        &mut name,
        (o.attributes, Some(&DESCRIPTOR.0)),
        FILE_LIST_DIRECTORY | FILE_TRAVERSE | READ_CONTROL | WRITE_DAC,
        FILE_SHARE_READ | FILE_SHARE_WRITE,
        FILE_OPEN_IF,
        o.options,
    )
    .map_err(|s| refuse(s, format_args!("cannot be opened or created ({s:#010x})")))?;
    if reparse::refuses(attributes(&dir)?, attributes_by_name(&mut name)?) {
        return Err(refuse(
            STATUS_REPARSE_POINT_ENCOUNTERED,
            format_args!("is a junction or symbolic link (its target could be any directory)"),
        ));
    }
    secure(&dir, None, policy)?;
    secure_entries(&dir, None, policy)?;
    let mut content = Wide::from_str("content").ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
    match open_at(
        dir.0,
        &mut content,
        Child::ContentFolder,
        FILE_LIST_DIRECTORY | READ_CONTROL,
        FILE_OPEN,
        FILE_DIRECTORY_FILE,
    ) {
        Ok(c) => secure_entries(&c, Some("content\\"), policy)?,
        Err(STATUS_OBJECT_NAME_NOT_FOUND) => {}
        Err(s) => {
            return Err(refuse(
                s,
                format_args!("content\\ cannot be opened ({s:#010x})"),
            ));
        }
    }
    let raw = dir.0;
    core::mem::forget(dir); // owned by STORE_DIR from here on, closed by `close`
    STORE_DIR.store(raw, Ordering::Release);
    Ok(())
}

/// Closes the held directory. Teardown, PASSIVE_LEVEL, after the driver's thread stopped
/// and the record and store (which hold copies of the handle) were dropped.
pub fn close() {
    let h = STORE_DIR.swap(core::ptr::null_mut(), Ordering::AcqRel);
    if !h.is_null() {
        // SAFETY: the handle `open` stored, closed once (the swap).
        let _ = unsafe { ZwClose(h) };
    }
}

/// The object's attributes (`FILE_ATTRIBUTE_TAG_INFORMATION`, ntifs.h: `FileAttributes`
/// ULONG, `ReparseTag` ULONG).
fn attributes(h: &Handle) -> Result<u32, NTSTATUS> {
    let mut info = [0u32; 2];
    let mut iosb = IO_STATUS_BLOCK::default();
    // SAFETY: a live handle; `info` is a live local of 8 bytes, the structure's size.
    let status = unsafe {
        ZwQueryInformationFile(
            h.0,
            &mut iosb,
            info.as_mut_ptr().cast(),
            8,
            _FILE_INFORMATION_CLASS::FileAttributeTagInformation,
        )
    };
    if status < 0 {
        return Err(refuse(
            status,
            format_args!("attributes cannot be read ({status:#010x})"),
        ));
    }
    let [attributes, _tag] = info;
    Ok(attributes)
}

/// The same by name (`ZwQueryFullAttributesFile`, wdm.h: a `FILE_NETWORK_OPEN_INFORMATION`,
/// four times and two sizes of 8 bytes, then `FileAttributes` at byte 48): on Windows the
/// handle's answer above is the authority and this one agrees (the attributes of the link
/// itself); Wine 8.0 reports a symbolic link's reparse attribute only by name (probed:
/// `GetFileAttributesW` 0x410, the handle's `FileAttributeTagInformation` 0x10).
fn attributes_by_name(name: &mut Wide) -> Result<u32, NTSTATUS> {
    let mut us = name.unicode();
    let mut attrs = super::nt::object_attributes(&mut us);
    let mut info = [0u64; 7];
    // SAFETY: `attrs` names a live UNICODE_STRING over `name`; `info` is a live local of 56
    // bytes, the structure's size, 8-byte aligned; PASSIVE_LEVEL.
    let status = unsafe { ZwQueryFullAttributesFile(&mut attrs, info.as_mut_ptr().cast()) };
    if status < 0 {
        return Err(refuse(
            status,
            format_args!("attributes cannot be read by name ({status:#010x})"),
        ));
    }
    let [.., attributes_and_pad] = info;
    Ok(u32::try_from(attributes_and_pad & 0xFFFF_FFFF).unwrap_or(0))
}

/// The owner and DACL of `h` as a self-relative descriptor, in pool memory.
fn descriptor(h: &Handle) -> Result<Vec<u8>, NTSTATUS> {
    let mut len = 256u32;
    for _ in 0..2 {
        let mut buf: Vec<u64> = Vec::new();
        let words = usize::try_from(len / 8).map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
        buf.try_reserve_exact(words)
            .map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
        buf.resize(words, 0);
        let mut needed = 0u32;
        // SAFETY: a live handle opened with READ_CONTROL; `buf` is live, `len` bytes,
        // 8-byte aligned; `needed` is a live local.
        let status = unsafe {
            ZwQuerySecurityObject(
                h.0,
                OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION,
                buf.as_mut_ptr().cast(),
                len,
                &mut needed,
            )
        };
        if status == STATUS_BUFFER_TOO_SMALL && needed > len && needed <= MAX_DESCRIPTOR {
            len = needed.saturating_add(7) & !7;
            continue;
        }
        if status < 0 {
            return Err(status);
        }
        let n = usize::try_from(needed.min(len)).unwrap_or(0);
        let mut bytes = Vec::new();
        bytes
            .try_reserve_exact(n)
            .map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
        bytes.resize(n, 0u8);
        for (d, s) in bytes
            .iter_mut()
            .zip(buf.iter().flat_map(|w| w.to_le_bytes()))
        {
            *d = s;
        }
        return Ok(bytes);
    }
    Err(STATUS_BUFFER_TOO_SMALL)
}

/// How a finding about the store's access list ends the start.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// The drill build's test-only `DrillStoreAclReportOnly`: log an access-list finding
    /// and go on. For hosts that do not emulate file security (Wine 8.0: every file is
    /// owned by the Wine user and readable by Everyone, and `ZwSetSecurityObject` succeeds
    /// without changing either; probed, docs/windows.md). A release image never reads it.
    pub report_only: bool,
}

impl Policy {
    /// Refuses (logs, returns `status`) or, report-only, logs and goes on.
    fn fail(
        self,
        status: NTSTATUS,
        entry: Option<(&str, &[u16])>,
        why: core::fmt::Arguments<'_>,
    ) -> Result<(), NTSTATUS> {
        if self.report_only {
            log(c"store access list (report only, drill build)", entry, why);
            return Ok(());
        }
        Err(refuse_entry(status, entry, why))
    }
}

/// Makes `h` (the directory, or the entry `entry` of it) strict, or refuses: see the
/// module documentation. An entry's untrusted writer is replaced like a reader (the
/// directory, which admits no other writer, was judged first).
fn secure(h: &Handle, entry: Option<(&str, &[u16])>, policy: Policy) -> Result<(), NTSTATUS> {
    let sd = match descriptor(h) {
        Ok(sd) => sd,
        Err(s) => {
            return policy.fail(
                s,
                entry,
                format_args!("its security descriptor cannot be read ({s:#010x})"),
            );
        }
    };
    match judge(&sd) {
        Ok(Verdict::Strict) => return Ok(()),
        Ok(Verdict::Loose(_)) => {}
        // An entry's DACL is replaced below, then judged again; its owner cannot be.
        Err(Unsafe::Writer { .. } | Unsafe::UnknownGrant { .. } | Unsafe::NoDacl)
            if entry.is_some() => {}
        Err(e) => return policy.fail(STATUS_ACCESS_DENIED, entry, format_args!("{e}")),
    }
    // SAFETY: a live handle opened with WRITE_DAC; the descriptor is a valid self-relative
    // one (crate::dacl tests its bytes), static, and only read.
    let status = unsafe {
        ZwSetSecurityObject(
            h.0,
            DACL_SECURITY_INFORMATION,
            DESCRIPTOR.0.as_ptr().cast_mut().cast(),
        )
    };
    if status < 0 {
        return policy.fail(
            status,
            entry,
            format_args!(
                "its DACL cannot be set to SYSTEM and Administrators only ({status:#010x})"
            ),
        );
    }
    let sd = match descriptor(h) {
        Ok(sd) => sd,
        Err(s) => {
            return policy.fail(
                s,
                entry,
                format_args!("its security descriptor cannot be read back ({s:#010x})"),
            );
        }
    };
    match judge(&sd) {
        Ok(Verdict::Strict) => Ok(()),
        Ok(Verdict::Loose(l)) => policy.fail(
            STATUS_ACCESS_DENIED,
            entry,
            format_args!("still not strict after the DACL was set ({l:?})"),
        ),
        Err(e) => policy.fail(
            STATUS_ACCESS_DENIED,
            entry,
            format_args!("{e}, after the DACL was set"),
        ),
    }
}

/// [`secure`] for every entry of the directory `dir` (`prefix` names it in messages).
fn secure_entries(dir: &Handle, prefix: Option<&str>, policy: Policy) -> Result<(), NTSTATUS> {
    let mut buf = Vec::new();
    buf.try_reserve_exact(LIST_BYTES)
        .map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
    buf.resize(LIST_BYTES, 0u8);
    for i in 0..MAX_BATCHES {
        match list_batch(dir, &mut buf, i == 0) {
            Ok(true) => {}
            Ok(false) => break,
            Err(s) => return Err(refuse(s, format_args!("cannot be listed ({s:#010x})"))),
        }
        for name in file_names(&buf) {
            let mut units = [0u16; 256];
            let Some(dst) = units.get_mut(..name.len() / 2) else {
                continue; // longer than any NTFS name
            };
            if !utf16_into(name, dst) || dst == [0x2E] || dst == [0x2E, 0x2E] {
                continue; // "." and ".."
            }
            let mut child = Wide::join_units(dst, &[]).ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
            let what = Some((prefix.unwrap_or(""), &*dst));
            let h = open_at(
                dir.0,
                &mut child,
                Child::Entry,
                READ_CONTROL | WRITE_DAC,
                FILE_OPEN,
                0,
            )
            .map_err(|s| refuse_entry(s, what, format_args!("cannot be opened ({s:#010x})")))?;
            secure(&h, what, policy)?;
        }
    }
    Ok(())
}

/// Logs why the directory is refused and returns `status`.
fn refuse(status: NTSTATUS, why: core::fmt::Arguments<'_>) -> NTSTATUS {
    refuse_entry(status, None, why)
}

/// Logs why the directory (or its entry `entry`: folder prefix and name) is refused.
fn refuse_entry(
    status: NTSTATUS,
    entry: Option<(&str, &[u16])>,
    why: core::fmt::Arguments<'_>,
) -> NTSTATUS {
    log(c"not started", entry, why);
    status
}

/// One debugger line: `failsafeflt: <head>: ContentDirectory[ entry <name>]: <why>`.
fn log(head: &core::ffi::CStr, entry: Option<(&str, &[u16])>, why: core::fmt::Arguments<'_>) {
    let mut line = Line::new();
    let _ = line.write_str("ContentDirectory");
    if let Some((prefix, name)) = entry {
        let _ = write!(line, " entry {prefix}");
        line.push_units(name);
    }
    let _ = write!(line, ": {why}");
    // SAFETY: %s and %s take NUL-terminated strings: `head` and the buffer `line` keeps.
    let _ = unsafe {
        DbgPrintEx(
            DPFLTR_IHVDRIVER_ID,
            DPFLTR_WARNING_LEVEL,
            c"failsafeflt: %s: %s\n".as_ptr(),
            head.as_ptr(),
            line.as_ptr(),
        )
    };
}
