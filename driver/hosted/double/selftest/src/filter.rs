//! The self-test filter's registration and callbacks (see the crate documentation for what
//! each action checks). All callbacks run at PASSIVE_LEVEL on the double's worker threads
//! (or Wine's driver thread for setup and unload).

#![allow(non_snake_case, reason = "kernel routine names")]

use core::ffi::c_void;
use core::sync::atomic::{AtomicIsize, AtomicU32, AtomicUsize, Ordering};

use windows_sys::Wdk::Foundation::DRIVER_OBJECT;
use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
    FLT_CALLBACK_DATA, FLT_FILE_NAME_INFORMATION, FLT_FILE_NAME_NORMALIZED,
    FLT_FILE_NAME_QUERY_DEFAULT, FLT_OPERATION_REGISTRATION, FLT_POSTOP_FINISHED_PROCESSING,
    FLT_POSTOP_MORE_PROCESSING_REQUIRED, FLT_PREOP_COMPLETE, FLT_PREOP_SUCCESS_NO_CALLBACK,
    FLT_PREOP_SUCCESS_WITH_CALLBACK, FLT_REGISTRATION, FLT_REGISTRATION_VERSION,
    FLT_RELATED_OBJECTS, FLTFL_POST_OPERATION_DRAINING, FltCancelFileOpen,
    FltGetFileNameInformation, FltGetRequestorProcessId, FltGetTunneledName, FltInitializePushLock,
    FltRegisterFilter, FltReleaseFileNameInformation, FltReleasePushLock, FltStartFiltering,
    FltUnregisterFilter, PFLT_FILTER,
};
use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_ACCESS_DENIED, STATUS_PENDING, STATUS_SUCCESS, UNICODE_STRING,
};
use windows_sys::Win32::System::IO::{IO_STATUS_BLOCK, IO_STATUS_BLOCK_0};

use crate::action::{self, MARK};
use crate::{NO_TUNNEL, SEEN};

#[link(name = "ntoskrnl")]
unsafe extern "C" {
    /// `DbgPrint` (wdm.h; Microsoft Learn "DbgPrint function"), ntoskrnl's (windows-sys
    /// binds it to ntdll.dll).
    fn DbgPrint(format: *const u8, ...) -> u32;
}

#[link(name = "ntoskrnl")]
unsafe extern "system" {
    /// `KeBugCheckEx` (wdm.h).
    pub fn KeBugCheckEx(code: u32, p1: usize, p2: usize, p3: usize, p4: usize) -> !;
}

/// `IRP_MJ_CREATE`, `IRP_MJ_SET_INFORMATION`, `IRP_MJ_SHUTDOWN`, `IRP_MJ_OPERATION_END`
/// (wdm.h, fltKernel.h).
const IRP_MJ_CREATE: u8 = 0x00;
const IRP_MJ_SET_INFORMATION: u8 = 0x06;
const IRP_MJ_SHUTDOWN: u8 = 0x10;
const IRP_MJ_OPERATION_END: u8 = 0x80;

static FILTER: AtomicIsize = AtomicIsize::new(0);
static SETUPS: AtomicU32 = AtomicU32::new(0);
static QUERY_TEARDOWNS: AtomicU32 = AtomicU32::new(0);
static TEARDOWN_STARTS: AtomicU32 = AtomicU32::new(0);
static TEARDOWN_COMPLETES: AtomicU32 = AtomicU32::new(0);
static DRAINED: AtomicU32 = AtomicU32::new(0);
static SHUTDOWNS: AtomicU32 = AtomicU32::new(0);
/// Operations between a pre callback that asked for a post callback and that post
/// callback: "PFLT_INSTANCE_TEARDOWN_CALLBACK": teardown-complete comes after every
/// operation of the instance has completed or drained, so this is 0 there.
static PENDING_POSTS: AtomicU32 = AtomicU32::new(0);
static PENDING_AT_COMPLETE: AtomicU32 = AtomicU32::new(0);
/// A push lock (an `EX_PUSH_LOCK` word) action 13 leaves initialized on purpose.
static LEFT_LOCK: AtomicUsize = AtomicUsize::new(0);

/// The completion context the pre callback hands to its post callback.
static CONTEXT: u32 = 0x5E1F_C0DE;

fn context() -> *mut c_void {
    core::ptr::from_ref(&CONTEXT).cast_mut().cast()
}

/// The operation table (read-only; windows-sys's structure holds a raw pointer, so a
/// wrapper says it may be shared).
#[repr(transparent)]
struct Table([FLT_OPERATION_REGISTRATION; 4]);

// SAFETY: never written; its only pointers are null.
unsafe impl Sync for Table {}

static OPERATIONS: Table = Table([
    FLT_OPERATION_REGISTRATION {
        MajorFunction: IRP_MJ_CREATE,
        Flags: 0,
        PreOperation: Some(pre_create),
        PostOperation: Some(post_create),
        Reserved1: core::ptr::null_mut(),
    },
    FLT_OPERATION_REGISTRATION {
        MajorFunction: IRP_MJ_SET_INFORMATION,
        Flags: 0,
        PreOperation: Some(pre_set_information),
        PostOperation: None,
        Reserved1: core::ptr::null_mut(),
    },
    FLT_OPERATION_REGISTRATION {
        MajorFunction: IRP_MJ_SHUTDOWN,
        Flags: 0,
        PreOperation: Some(pre_shutdown),
        PostOperation: None,
        Reserved1: core::ptr::null_mut(),
    },
    FLT_OPERATION_REGISTRATION {
        MajorFunction: IRP_MJ_OPERATION_END,
        Flags: 0,
        PreOperation: None,
        PostOperation: None,
        Reserved1: core::ptr::null_mut(),
    },
]);

/// The registration (Filter Manager keeps a copy; the operation table stays static).
fn registration() -> FLT_REGISTRATION {
    FLT_REGISTRATION {
        Size: u16::try_from(core::mem::size_of::<FLT_REGISTRATION>()).unwrap_or(0),
        Version: u16::try_from(FLT_REGISTRATION_VERSION).unwrap_or(0),
        Flags: 0,
        ContextRegistration: core::ptr::null(),
        OperationRegistration: OPERATIONS.0.as_ptr(),
        FilterUnloadCallback: Some(filter_unload),
        InstanceSetupCallback: Some(instance_setup),
        InstanceQueryTeardownCallback: Some(instance_query_teardown),
        InstanceTeardownStartCallback: Some(instance_teardown_start),
        InstanceTeardownCompleteCallback: Some(instance_teardown_complete),
        GenerateFileNameCallback: None,
        NormalizeNameComponentCallback: None,
        NormalizeContextCleanupCallback: None,
        TransactionNotificationCallback: None,
        NormalizeNameComponentExCallback: None,
        SectionNotificationCallback: None,
    }
}

/// `DriverEntry`: registers and starts filtering.
///
/// # Safety
/// Called by the I/O manager with the driver's object.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn DriverEntry(
    driver: *mut DRIVER_OBJECT,
    _registry_path: *const UNICODE_STRING,
) -> NTSTATUS {
    let reg = registration();
    let mut filter: PFLT_FILTER = 0;
    // SAFETY: the driver's object, a registration whose operation table is static.
    let st = unsafe { FltRegisterFilter(driver, &reg, &mut filter) };
    if st < 0 {
        return st;
    }
    FILTER.store(filter, Ordering::Release);
    // SAFETY: the filter just registered.
    let st = unsafe { FltStartFiltering(filter) };
    if st < 0 {
        // SAFETY: as above ("FltUnregisterFilter": after a failed FltStartFiltering).
        unsafe { FltUnregisterFilter(filter) };
        return st;
    }
    // SAFETY: a format with one `%s` and a NUL-terminated string.
    let _ = unsafe { DbgPrint(c"fltselftest: %s\n".as_ptr().cast(), c"started".as_ptr()) };
    STATUS_SUCCESS
}

unsafe extern "system" fn filter_unload(_flags: u32) -> NTSTATUS {
    // SAFETY: the filter registered in DriverEntry; "Writing an Unload routine":
    // FltUnregisterFilter from the unload callback.
    unsafe { FltUnregisterFilter(FILTER.load(Ordering::Acquire)) };
    let n = |a: &AtomicU32| a.load(Ordering::Acquire);
    // SAFETY: the format's seven `%u` take seven u32.
    let _ = unsafe {
        DbgPrint(
            c"fltselftest: unload: setups %u, query-teardowns %u, teardown-starts %u, teardown-completes %u, drained posts %u, posts pending at teardown-complete %u, shutdown callbacks %u\n"
                .as_ptr()
                .cast(),
            n(&SETUPS),
            n(&QUERY_TEARDOWNS),
            n(&TEARDOWN_STARTS),
            n(&TEARDOWN_COMPLETES),
            n(&DRAINED),
            n(&PENDING_AT_COMPLETE),
            n(&SHUTDOWNS),
        )
    };
    STATUS_SUCCESS
}

unsafe extern "system" fn instance_setup(
    _objects: *const FLT_RELATED_OBJECTS,
    _flags: u32,
    _device_type: u32,
    _fs_type: i32,
) -> NTSTATUS {
    SETUPS.fetch_add(1, Ordering::AcqRel);
    STATUS_SUCCESS
}

unsafe extern "system" fn instance_query_teardown(
    _objects: *const FLT_RELATED_OBJECTS,
    _flags: u32,
) -> NTSTATUS {
    QUERY_TEARDOWNS.fetch_add(1, Ordering::AcqRel);
    STATUS_SUCCESS
}

unsafe extern "system" fn instance_teardown_start(
    _objects: *const FLT_RELATED_OBJECTS,
    _reason: u32,
) {
    TEARDOWN_STARTS.fetch_add(1, Ordering::AcqRel);
}

unsafe extern "system" fn instance_teardown_complete(
    _objects: *const FLT_RELATED_OBJECTS,
    _reason: u32,
) {
    TEARDOWN_COMPLETES.fetch_add(1, Ordering::AcqRel);
    PENDING_AT_COMPLETE.fetch_add(PENDING_POSTS.load(Ordering::Acquire), Ordering::AcqRel);
}

/// The action a requestor id asks for (0: none).
fn action_of(data: *mut FLT_CALLBACK_DATA) -> u32 {
    // SAFETY: the operation's live callback data.
    let pid = unsafe { FltGetRequestorProcessId(data) };
    if pid & 0xFFFF_0000 == MARK {
        pid & 0xFFFF
    } else {
        0
    }
}

fn set_status(data: *mut FLT_CALLBACK_DATA, status: NTSTATUS, information: usize) {
    let io = IO_STATUS_BLOCK {
        Anonymous: IO_STATUS_BLOCK_0 { Status: status },
        Information: information,
    };
    // SAFETY: the operation's callback data, whose IoStatus the filter may write.
    unsafe { (*data).IoStatus = io };
}

/// `FltCancelFileOpen` on the operation's instance and file object.
fn cancel_open(objects: *const FLT_RELATED_OBJECTS) {
    // SAFETY: the related objects Filter Manager passed to the callback.
    let o = unsafe { &*objects };
    // SAFETY: the operation's instance and file object.
    unsafe { FltCancelFileOpen(o.Instance, o.FileObject) };
}

fn name_query(data: *mut FLT_CALLBACK_DATA) -> Option<*mut FLT_FILE_NAME_INFORMATION> {
    let mut info: *mut FLT_FILE_NAME_INFORMATION = core::ptr::null_mut();
    // SAFETY: live callback data, documented options, an out pointer.
    let st = unsafe {
        FltGetFileNameInformation(
            data,
            FLT_FILE_NAME_NORMALIZED | FLT_FILE_NAME_QUERY_DEFAULT,
            &mut info,
        )
    };
    (st >= 0 && !info.is_null()).then_some(info)
}

unsafe extern "system" fn pre_create(
    data: *mut FLT_CALLBACK_DATA,
    objects: *const FLT_RELATED_OBJECTS,
    context_out: *mut *mut c_void,
) -> i32 {
    let with_post = |ctx: *mut c_void| {
        // SAFETY: the completion-context slot Filter Manager passes.
        unsafe { *context_out = ctx };
        PENDING_POSTS.fetch_add(1, Ordering::AcqRel);
        FLT_PREOP_SUCCESS_WITH_CALLBACK
    };
    match action_of(data) {
        action::POST
        | action::CANCEL
        | action::CANCEL_KEEP_SUCCESS
        | action::TUNNEL
        | action::POST_MORE_PROCESSING
        | action::CANCEL_FAILED_CREATE => with_post(context()),
        action::TUNNEL_IN_PRE => {
            if let Some(info) = name_query(data) {
                let mut tunneled: *mut FLT_FILE_NAME_INFORMATION = core::ptr::null_mut();
                // SAFETY: live data and name; refused by the double (code 17).
                let _ = unsafe { FltGetTunneledName(data, info, &mut tunneled) };
                // SAFETY: the name the query handed out.
                unsafe { FltReleaseFileNameInformation(info) };
            }
            FLT_PREOP_SUCCESS_NO_CALLBACK
        }
        action::CANCEL_IN_PRE => {
            cancel_open(objects); // refused by the double in a pre callback (code 15)
            FLT_PREOP_SUCCESS_NO_CALLBACK
        }
        action::BAD_PRE_STATUS => 0x77,
        action::COMPLETE_PENDING => {
            set_status(data, STATUS_PENDING, 0);
            FLT_PREOP_COMPLETE
        }
        action::CONTEXT_NO_CALLBACK => {
            // SAFETY: the completion-context slot.
            unsafe { *context_out = context() };
            FLT_PREOP_SUCCESS_NO_CALLBACK
        }
        action::LEAK_NAME => {
            let _ = name_query(data);
            FLT_PREOP_SUCCESS_NO_CALLBACK
        }
        action::DOUBLE_RELEASE => {
            if let Some(info) = name_query(data) {
                // SAFETY: the name the query handed out.
                unsafe { FltReleaseFileNameInformation(info) };
                // SAFETY: released already: the double must refuse it (code 7), never
                // touch it.
                unsafe { FltReleaseFileNameInformation(info) };
            }
            FLT_PREOP_SUCCESS_NO_CALLBACK
        }
        action::PUSH_LOCK_NOT_HELD => {
            let lock = LEFT_LOCK.as_ptr();
            // SAFETY: a static pointer-sized word ("FltInitializePushLock"); then a
            // release of the lock not held (code 12). Left initialized on purpose.
            unsafe { FltInitializePushLock(lock) };
            // SAFETY: as above.
            unsafe { FltReleasePushLock(lock) };
            FLT_PREOP_SUCCESS_NO_CALLBACK
        }
        action::DENY => {
            set_status(data, STATUS_ACCESS_DENIED, 0);
            FLT_PREOP_COMPLETE
        }
        _ => FLT_PREOP_SUCCESS_NO_CALLBACK,
    }
}

unsafe extern "system" fn post_create(
    data: *mut FLT_CALLBACK_DATA,
    objects: *const FLT_RELATED_OBJECTS,
    ctx: *const c_void,
    flags: u32,
) -> i32 {
    PENDING_POSTS.fetch_sub(1, Ordering::AcqRel);
    if flags & FLTFL_POST_OPERATION_DRAINING != 0 {
        // "The Data parameter points to a copy of the original callback data": clean up
        // only, no name query.
        DRAINED.fetch_add(1, Ordering::AcqRel);
        return FLT_POSTOP_FINISHED_PROCESSING;
    }
    let cancel = || cancel_open(objects);
    match action_of(data) {
        action::POST => {
            let mut seen = SEEN;
            if ctx == context().cast_const() {
                seen |= 1;
            }
            // SAFETY: live callback data.
            if unsafe { FltGetRequestorProcessId(data) } == MARK | action::POST {
                seen |= 2;
            }
            if let Some(info) = name_query(data) {
                // SAFETY: the name the query handed out.
                unsafe { FltReleaseFileNameInformation(info) };
                seen |= 4;
            }
            set_status(data, STATUS_SUCCESS, usize::try_from(seen).unwrap_or(0));
        }
        action::CANCEL => {
            cancel();
            set_status(data, STATUS_ACCESS_DENIED, 0);
        }
        action::CANCEL_KEEP_SUCCESS | action::CANCEL_FAILED_CREATE => cancel(),
        action::TUNNEL => {
            let mut answer = 0usize;
            if let Some(info) = name_query(data) {
                let mut tunneled: *mut FLT_FILE_NAME_INFORMATION = core::ptr::null_mut();
                // SAFETY: live data, a name of this operation, an out pointer.
                let st = unsafe { FltGetTunneledName(data, info, &mut tunneled) };
                answer = if st < 0 {
                    0
                } else if tunneled.is_null() {
                    usize::try_from(NO_TUNNEL).unwrap_or(0)
                } else {
                    // SAFETY: a name information the double handed out.
                    let len = usize::from(unsafe { (*tunneled).Name.Length });
                    // SAFETY: "the caller must release it" (FltGetTunneledName).
                    unsafe { FltReleaseFileNameInformation(tunneled) };
                    len
                };
                // SAFETY: the name the query handed out.
                unsafe { FltReleaseFileNameInformation(info) };
            }
            set_status(data, STATUS_SUCCESS, answer);
        }
        action::POST_MORE_PROCESSING => return FLT_POSTOP_MORE_PROCESSING_REQUIRED,
        _ => {}
    }
    FLT_POSTOP_FINISHED_PROCESSING
}

unsafe extern "system" fn pre_set_information(
    data: *mut FLT_CALLBACK_DATA,
    _objects: *const FLT_RELATED_OBJECTS,
    _context_out: *mut *mut c_void,
) -> i32 {
    if action_of(data) == action::WITH_CALLBACK_NO_POST {
        FLT_PREOP_SUCCESS_WITH_CALLBACK
    } else {
        FLT_PREOP_SUCCESS_NO_CALLBACK
    }
}

unsafe extern "system" fn pre_shutdown(
    data: *mut FLT_CALLBACK_DATA,
    _objects: *const FLT_RELATED_OBJECTS,
    _context_out: *mut *mut c_void,
) -> i32 {
    // SAFETY: the operation's callback data.
    let iopb = unsafe { (*data).Iopb };
    // SAFETY: its parameter block (the header fields, which windows-sys lays out as the WDK).
    let major = unsafe { (*iopb).MajorFunction };
    if major == IRP_MJ_SHUTDOWN {
        SHUTDOWNS.fetch_add(1, Ordering::AcqRel);
        FLT_PREOP_SUCCESS_NO_CALLBACK
    } else {
        0x77
    }
}
