//! The `IRP_MJ_CREATE` pre-operation callback. IRQL: PASSIVE_LEVEL.

use core::ffi::c_void;

use failsafe_loader::{EventType, Match};
use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
    FLT_CALLBACK_DATA, FLT_PREOP_CALLBACK_STATUS, FLT_PREOP_SUCCESS_NO_CALLBACK,
    FLT_RELATED_OBJECTS,
};
use windows_sys::Wdk::System::SystemServices::{SL_OPEN_PAGING_FILE, SL_OPEN_TARGET_DIRECTORY};

use super::Host;
use super::instance::dos_path;
use super::names::name_of;
use super::process::process_image;
use super::verdict::{apply, poke_volumes, prologue, with_rules};
use crate::event::{CreateFacts, create_inputs, event};
use crate::proctable::MAX_UNITS;
use crate::volumes::MAX_PATH_UNITS;

/// Pre-operation callback for `IRP_MJ_CREATE`. IRQL: PASSIVE_LEVEL.
///
/// # Safety
/// Called by the Filter Manager with valid `data` and `objects` (fltkernel.h
/// `PFLT_PRE_OPERATION_CALLBACK`).
pub unsafe extern "system" fn pre_create<H: Host>(
    data: *mut FLT_CALLBACK_DATA,
    _objects: *const FLT_RELATED_OBJECTS,
    _context: *mut *mut c_void,
) -> FLT_PREOP_CALLBACK_STATUS {
    poke_volumes::<H>();
    // SAFETY: `data` comes from the Filter Manager for this callback.
    let Some((req, iopb)) = (unsafe { prologue(data) }) else {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    };
    let pid = req.pid;
    let flags = u32::from(iopb.OperationFlags);
    if flags & SL_OPEN_PAGING_FILE != 0 {
        return FLT_PREOP_SUCCESS_NO_CALLBACK; // paging files are the memory manager's
    }
    if flags & SL_OPEN_TARGET_DIRECTORY != 0 {
        // The target-directory open of a rename or hard link: the Filter Manager names the
        // parent directory, with the rename's access. The operation itself is evaluated in
        // pre-set-information, where its source and target are known.
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    }
    // SAFETY: for IRP_MJ_CREATE the `Create` member of the parameter union is the valid one.
    let create = unsafe { iopb.Parameters.Create };
    // SAFETY: SecurityContext is valid for a create (or null, then no access is known).
    let desired_access = unsafe { create.SecurityContext.as_ref() }.map_or(0, |s| s.DesiredAccess);
    // No name, no evaluation: the operation passes (the sensor fails open, never closed).
    let Some(name) = name_of(data) else {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    };
    let mut image = [0u16; MAX_UNITS];
    let n = process_image(pid, &mut image);
    let facts = CreateFacts {
        path: name.path(),
        process: image.get(..n).unwrap_or(&[]),
        pid,
        desired_access,
        options: create.Options,
        kernel_mode: req.kernel_mode,
    };
    let verdict = evaluate_create(&facts);
    // SAFETY: `data` is this callback's data.
    unsafe {
        apply::<H>(
            data,
            verdict,
            EventType::FileCreate,
            (facts.path, &[]),
            &req,
        )
    }
}

/// Evaluates a create with its path as authors write it (`C:\...`, ADR 0013); `facts`
/// keeps the device form, which the own-directory guard and the audit line use. Its own
/// frame holds the converted path (1 KiB), so the callback's frame stays within the
/// image's stack budget (tests/tests/pe.rs); nothing is allocated.
#[inline(never)]
pub(super) fn evaluate_create(facts: &CreateFacts<'_>) -> Option<Match> {
    let mut path = [0u16; MAX_PATH_UNITS];
    let facts = CreateFacts {
        path: dos_path(facts.path, &mut path),
        ..*facts
    };
    let inputs = create_inputs(&facts);
    with_rules(|rs| rs.evaluate(&event(EventType::FileCreate, &inputs))).flatten()
}
