//! The `IRP_MJ_SET_INFORMATION` pre-operation callback: rename, hard link and disposition
//! (delete) classes. IRQL: PASSIVE_LEVEL or APC_LEVEL.

use core::ffi::c_void;

use failsafe_loader::EventType;
use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
    FLT_CALLBACK_DATA, FLT_PREOP_CALLBACK_STATUS, FLT_PREOP_SUCCESS_NO_CALLBACK,
    FLT_RELATED_OBJECTS, FltGetDestinationFileNameInformation,
};
use windows_sys::Wdk::Storage::FileSystem::{
    FILE_DISPOSITION_INFORMATION, FILE_DISPOSITION_INFORMATION_EX, FILE_RENAME_INFORMATION,
};

use core::sync::atomic::Ordering;

use super::Host;
use super::instance::dos_path;
use super::names::{NAME_OPTIONS, NameInfo, name_of};
use super::process::process_image;
use super::scratch::{self, ENTRY_MIN, SKIPPED_LOW_STACK};
use super::verdict::{Outcome, deny_pre, judge, poke_volumes, prologue, with_rules_held};
use crate::event::{
    FILE_DISPOSITION_DELETE, FILE_DISPOSITION_INFORMATION as CLASS_DISPOSITION,
    FILE_DISPOSITION_INFORMATION_EX as CLASS_DISPOSITION_EX, SetInfoFacts, event,
    set_info_class_of_interest, set_info_inputs,
};

/// Pre-operation callback for `IRP_MJ_SET_INFORMATION` (rename, delete). IRQL:
/// PASSIVE_LEVEL or APC_LEVEL.
///
/// # Safety
/// As [`pre_create`].
pub unsafe extern "system" fn pre_set_information<H: Host>(
    data: *mut FLT_CALLBACK_DATA,
    objects: *const FLT_RELATED_OBJECTS,
    _context: *mut *mut c_void,
) -> FLT_PREOP_CALLBACK_STATUS {
    poke_volumes::<H>();
    // SAFETY: `data` comes from the Filter Manager for this callback.
    let Some((req, iopb)) = (unsafe { prologue(data) }) else {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    };
    if scratch::remaining() < ENTRY_MIN {
        SKIPPED_LOW_STACK.fetch_add(1, Ordering::Relaxed);
        return FLT_PREOP_SUCCESS_NO_CALLBACK; // fail open rather than overflow the stack
    }
    let pid = req.pid;
    // In the WDK's layout (crate::fltwdk: windows-sys's `SetFileInformation` puts the class
    // and the buffer at other offsets).
    let p = crate::fltwdk::set_information(iopb);
    if !set_info_class_of_interest(p.class) || p.info_buffer.is_null() {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    }
    let len = usize::try_from(p.length).unwrap_or(0);
    let (delete, target) = match p.class {
        CLASS_DISPOSITION if len >= size_of::<FILE_DISPOSITION_INFORMATION>() => {
            // `DeleteFile` is a BOOLEAN the caller wrote: any non-zero byte deletes (file
            // systems test it as such), so it is read as a byte, never as a Rust `bool`
            // (a value other than 0 or 1 would be undefined behaviour, and read as false).
            // SAFETY: InfoBuffer is the system buffer of at least `Length` bytes (checked),
            // and DeleteFile is its first byte.
            let delete = unsafe { p.info_buffer.cast::<u8>().read() } != 0;
            (delete, None)
        }
        CLASS_DISPOSITION_EX if len >= size_of::<FILE_DISPOSITION_INFORMATION_EX>() => {
            // SAFETY: InfoBuffer is the system buffer (pool memory, so aligned) of at least
            // `Length` bytes, checked to hold the whole structure; `Flags` is a ULONG, for
            // which every bit pattern is valid.
            let flags = unsafe { (*p.info_buffer.cast::<FILE_DISPOSITION_INFORMATION_EX>()).Flags };
            (flags & FILE_DISPOSITION_DELETE != 0, None)
        }
        CLASS_DISPOSITION | CLASS_DISPOSITION_EX => return FLT_PREOP_SUCCESS_NO_CALLBACK,
        _ => (false, rename_target(objects, p.info_buffer, len)),
    };
    let Some(name) = name_of(data) else {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    };
    let target = target.as_ref().map_or(&[][..], NameInfo::path);
    let outcome = scratch::with(req.cpu, |s| {
        let n = process_image(pid, s.image);
        let image = s.image.get(..n).unwrap_or(&[]);
        let facts = SetInfoFacts {
            path: dos_path(name.path(), s.path),
            process: image,
            pid,
            class: p.class,
            target: dos_path(target, s.target),
            delete,
            kernel_mode: req.kernel_mode,
        };
        let m = with_rules_held(pid, |rs| {
            rs.evaluate(&event(EventType::FileSetInfo, &set_info_inputs(&facts)))
        })
        .flatten();
        judge::<H>(
            m,
            EventType::FileSetInfo,
            (name.path(), target),
            &req,
            image,
        )
    });
    if outcome == Some(Outcome::Deny) {
        // SAFETY: `data` is this callback's data.
        return unsafe { deny_pre(data) };
    }
    FLT_PREOP_SUCCESS_NO_CALLBACK
}

/// The normalized destination of a rename (`FltGetDestinationFileNameInformation`).
fn rename_target(
    objects: *const FLT_RELATED_OBJECTS,
    buffer: *mut c_void,
    len: usize,
) -> Option<NameInfo> {
    // SAFETY: the Filter Manager passes valid related objects for the call.
    let o = unsafe { objects.as_ref() }?;
    let info = buffer.cast::<FILE_RENAME_INFORMATION>();
    let header = core::mem::offset_of!(FILE_RENAME_INFORMATION, FileName);
    if len < size_of::<FILE_RENAME_INFORMATION>() {
        return None; // a reference below covers the whole fixed structure
    }
    // SAFETY: the system buffer holds at least a whole FILE_RENAME_INFORMATION (checked).
    let fixed = unsafe { &*info };
    let (root, name_len) = (fixed.RootDirectory, fixed.FileNameLength);
    if usize::try_from(name_len).ok()?.checked_add(header)? > len {
        return None;
    }
    // SAFETY: FileName lies inside the checked buffer.
    let name = unsafe { core::ptr::addr_of!((*info).FileName) }.cast::<u16>();
    let mut raw = core::ptr::null_mut();
    // SAFETY: valid instance and file object from the related objects; name and length
    // describe memory inside the rename buffer.
    let status = unsafe {
        FltGetDestinationFileNameInformation(
            o.Instance,
            o.FileObject,
            root,
            name,
            name_len,
            NAME_OPTIONS,
            &mut raw,
        )
    };
    NameInfo::from_raw(status, raw)
}
