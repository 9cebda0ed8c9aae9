//! The `IRP_MJ_CREATE` callbacks. Pre-create runs at PASSIVE_LEVEL; post-create at
//! PASSIVE_LEVEL too, in the thread that issued the create (Microsoft Learn,
//! "FltCancelFileOpen": "post-create callback routines are guaranteed to be called at IRQL
//! PASSIVE_LEVEL, in the context of the thread that originated the IRP_MJ_CREATE request").
//!
//! Most creates are decided in pre-create, on the normalized name. Post-create is asked
//! for only where pre-create cannot know the name the rules must see (issue 19, section 4):
//! - an open by file ID (`FILE_OPEN_BY_FILE_ID`), or any create whose name query failed in
//!   pre-create: decided in post-create on the name of the file the file system opened,
//!   and refused with `FltCancelFileOpen` (Microsoft's `scanner` sample does the same);
//! - a create that may make a file under an 8.3-looking name: the file system may tunnel
//!   a long name onto it (`FltGetTunneledName`), decided again on that name.
//!
//! A create with `FILE_DELETE_ON_CLOSE` or the `FILE_SUPERSEDE` disposition deletes a
//! file: besides its `file-create` event it is evaluated as a `file-set-info` event with
//! `is-delete`, class `FileDispositionInformation`, so delete rules see it. By file ID such a
//! create cannot be stopped after the open (cancelling it closes the file below the
//! filter, which deletes it), so a user-mode open by file ID with `FILE_DELETE_ON_CLOSE` is
//! refused while content is active.

use core::ffi::c_void;
use core::sync::atomic::{AtomicU64, Ordering};

use failsafe_loader::EventType;
use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
    FLT_CALLBACK_DATA, FLT_POSTOP_CALLBACK_STATUS, FLT_POSTOP_FINISHED_PROCESSING,
    FLT_PREOP_CALLBACK_STATUS, FLT_PREOP_SUCCESS_NO_CALLBACK, FLT_PREOP_SUCCESS_WITH_CALLBACK,
    FLT_RELATED_OBJECTS, FLTFL_POST_OPERATION_DRAINING, FltCancelFileOpen,
};
use windows_sys::Wdk::System::SystemServices::{SL_OPEN_PAGING_FILE, SL_OPEN_TARGET_DIRECTORY};
use windows_sys::Win32::Foundation::{STATUS_ACCESS_DENIED, STATUS_REPARSE};

use super::Host;
use super::instance::dos_path;
use super::names::{NameInfo, name_of};
use super::process::process_image;
use super::scratch::{self, ENTRY_MIN, SKIPPED_LOW_STACK};
use super::verdict::{
    Outcome, Requestor, deny_pre, judge, poke_volumes, prologue, with_rules_held,
};
use crate::event::{
    CreateFacts, FILE_DELETE_ON_CLOSE, FILE_DISPOSITION_INFORMATION as CLASS_DISPOSITION,
    FILE_OPEN_BY_FILE_ID, SetInfoFacts, create_deletes, create_inputs, create_may_create, event,
    set_info_inputs, short_name_candidate,
};

/// `FO_HANDLE_CREATED` (wdm.h `FILE_OBJECT.Flags`): a handle exists, so the open can no
/// longer be cancelled (Microsoft Learn, "FltCancelFileOpen").
const FO_HANDLE_CREATED: u32 = 0x0004_0000;

/// User-mode opens by file ID with `FILE_DELETE_ON_CLOSE`, refused while content is active.
pub static REFUSED_DELETE_BY_ID: AtomicU64 = AtomicU64::new(0);

/// What a create asks for, from its parameters.
#[derive(Clone, Copy)]
struct Ask {
    /// `Parameters.Create.SecurityContext->DesiredAccess`.
    desired_access: u32,
    /// `Parameters.Create.Options`: disposition in the high 8 bits, options in the low 24.
    options: u32,
}

/// The create's parameters (a copy of the union member; `Iopb` of its callback data).
fn ask(iopb: &windows_sys::Wdk::Storage::FileSystem::Minifilters::FLT_IO_PARAMETER_BLOCK) -> Ask {
    // SAFETY: for IRP_MJ_CREATE the `Create` member of the parameter union is the valid one.
    let create = unsafe { iopb.Parameters.Create };
    // SAFETY: SecurityContext is valid for a create (or null, then no access is known).
    let desired_access = unsafe { create.SecurityContext.as_ref() }.map_or(0, |s| s.DesiredAccess);
    Ask {
        desired_access,
        options: create.Options,
    }
}

/// Pre-operation callback for `IRP_MJ_CREATE`. IRQL: PASSIVE_LEVEL.
///
/// # Safety
/// Called by the Filter Manager with valid `data` and `objects` (fltkernel.h
/// `PFLT_PRE_OPERATION_CALLBACK`); `context` receives the completion context.
pub unsafe extern "system" fn pre_create<H: Host>(
    data: *mut FLT_CALLBACK_DATA,
    _objects: *const FLT_RELATED_OBJECTS,
    context: *mut *mut c_void,
) -> FLT_PREOP_CALLBACK_STATUS {
    poke_volumes::<H>();
    // SAFETY: `data` comes from the Filter Manager for this callback.
    let Some((req, iopb)) = (unsafe { prologue(data) }) else {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    };
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
    if scratch::remaining() < ENTRY_MIN {
        SKIPPED_LOW_STACK.fetch_add(1, Ordering::Relaxed);
        return FLT_PREOP_SUCCESS_NO_CALLBACK; // fail open rather than overflow the stack
    }
    let ask = ask(iopb);
    if ask.options & FILE_OPEN_BY_FILE_ID != 0 {
        if ask.options & FILE_DELETE_ON_CLOSE != 0 && !req.kernel_mode {
            REFUSED_DELETE_BY_ID.fetch_add(1, Ordering::Relaxed);
            // SAFETY: this callback's data.
            return unsafe { deny_pre(data) };
        }
        return FLT_PREOP_SUCCESS_WITH_CALLBACK; // named by the file system, decided after
    }
    // No name yet (the query failed): decided in post-create on the opened file's name.
    let Some(name) = name_of(data) else {
        return FLT_PREOP_SUCCESS_WITH_CALLBACK;
    };
    if decide::<H>(name.path(), &req, ask, true) == Outcome::Deny {
        // SAFETY: this callback's data.
        return unsafe { deny_pre(data) };
    }
    if create_may_create(ask.options) && short_name_candidate(name.path()) {
        // Post-create asks whether the file system tunneled a long name onto this one; it
        // releases the name.
        if let Some(c) = (!context.is_null()).then_some(context) {
            // SAFETY: the Filter Manager's completion-context slot for this callback.
            unsafe { *c = name.into_context() };
            return FLT_PREOP_SUCCESS_WITH_CALLBACK;
        }
    }
    FLT_PREOP_SUCCESS_NO_CALLBACK
}

/// Post-operation callback for `IRP_MJ_CREATE` (asked for by pre-create only; see the
/// module documentation). IRQL: PASSIVE_LEVEL.
///
/// # Safety
/// Called by the Filter Manager with valid `data` and `objects` (fltkernel.h
/// `PFLT_POST_OPERATION_CALLBACK`); `context` is what pre-create set (null, or a name).
pub unsafe extern "system" fn post_create<H: Host>(
    data: *mut FLT_CALLBACK_DATA,
    objects: *const FLT_RELATED_OBJECTS,
    context: *const c_void,
    flags: u32,
) -> FLT_POSTOP_CALLBACK_STATUS {
    // SAFETY: null, or the name pre-create handed over for this operation, taken back once.
    let pre_name = unsafe { NameInfo::from_context(context) };
    if flags & FLTFL_POST_OPERATION_DRAINING != 0 {
        return FLT_POSTOP_FINISHED_PROCESSING; // the instance is going: release only
    }
    // SAFETY: valid callback data for the call; after the operation `IoStatus` holds its
    // status (the `Status` member of the union).
    let status = unsafe { data.as_ref() }.map_or(-1, |d| unsafe { d.IoStatus.Anonymous.Status });
    if status < 0 || status == STATUS_REPARSE {
        return FLT_POSTOP_FINISHED_PROCESSING; // nothing was opened
    }
    // SAFETY: the Filter Manager passes valid related objects for the call.
    let Some(o) = (unsafe { objects.as_ref() }) else {
        return FLT_POSTOP_FINISHED_PROCESSING;
    };
    // SAFETY: the file object of this create, valid for the call.
    let handle_made =
        unsafe { o.FileObject.as_ref() }.is_none_or(|f| f.Flags & FO_HANDLE_CREATED != 0);
    if handle_made || scratch::remaining() < ENTRY_MIN {
        if !handle_made {
            SKIPPED_LOW_STACK.fetch_add(1, Ordering::Relaxed);
        }
        return FLT_POSTOP_FINISHED_PROCESSING; // cannot be cancelled, or no stack to decide
    }
    // SAFETY: `data` comes from the Filter Manager for this callback.
    let Some((req, iopb)) = (unsafe { prologue(data) }) else {
        return FLT_POSTOP_FINISHED_PROCESSING;
    };
    let name = match pre_name {
        // Decided in pre-create on this name: only a tunneled one is new.
        Some(pre) => match pre.tunneled(data) {
            Some(t) => t,
            None => return FLT_POSTOP_FINISHED_PROCESSING,
        },
        None => match name_of(data) {
            Some(n) => n,
            None => return FLT_POSTOP_FINISHED_PROCESSING,
        },
    };
    if decide::<H>(name.path(), &req, ask(iopb), false) == Outcome::Deny {
        // SAFETY: the instance and the file object of this successful create, before any
        // handle exists (checked); PASSIVE_LEVEL (post-create).
        unsafe { FltCancelFileOpen(o.Instance, o.FileObject) };
        // SAFETY: valid callback data; no other reference to it is live here.
        if let Some(d) = unsafe { data.as_mut() } {
            d.IoStatus.Anonymous.Status = STATUS_ACCESS_DENIED;
            d.IoStatus.Information = 0;
        }
    }
    FLT_POSTOP_FINISHED_PROCESSING
}

/// Evaluates a create on `path` (the Filter Manager's normalized name): its `file-create`
/// event and, when it deletes (and `with_delete`: pre-create, where a delete can still be
/// stopped), its `file-set-info` delete event. Fails open (`Pass`) without a scratch.
fn decide<H: Host>(path: &[u16], req: &Requestor, ask: Ask, with_delete: bool) -> Outcome {
    scratch::with(req.cpu, |s| {
        let rule_path = dos_path(path, s.path);
        let n = process_image(req.pid, s.image);
        let image = s.image.get(..n).unwrap_or(&[]);
        let facts = CreateFacts {
            path: rule_path,
            process: image,
            pid: req.pid,
            desired_access: ask.desired_access,
            options: ask.options,
            kernel_mode: req.kernel_mode,
        };
        let m = with_rules_held(req.pid, |rs| {
            rs.evaluate(&event(EventType::FileCreate, &create_inputs(&facts)))
        })
        .flatten();
        if judge::<H>(m, EventType::FileCreate, (path, &[]), req, image) == Outcome::Deny {
            return Outcome::Deny;
        }
        if !(with_delete && create_deletes(ask.options)) {
            return Outcome::Pass;
        }
        let facts = SetInfoFacts {
            path: rule_path,
            process: image,
            pid: req.pid,
            class: CLASS_DISPOSITION,
            target: &[],
            delete: true,
            kernel_mode: req.kernel_mode,
        };
        let m = with_rules_held(req.pid, |rs| {
            rs.evaluate(&event(EventType::FileSetInfo, &set_info_inputs(&facts)))
        })
        .flatten();
        judge::<H>(m, EventType::FileSetInfo, (path, &[]), req, image)
    })
    .unwrap_or(Outcome::Pass)
}
