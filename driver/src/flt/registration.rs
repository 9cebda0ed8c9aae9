//! The registration: the operation table, `FLT_REGISTRATION`, the filter unload callback,
//! the shutdown pre-operation callback, and unregistering the filter at teardown.
//! PASSIVE_LEVEL.

use core::sync::atomic::Ordering;

use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
    FLT_CALLBACK_DATA, FLT_PREOP_CALLBACK_STATUS, FLT_PREOP_SUCCESS_NO_CALLBACK,
    FLT_RELATED_OBJECTS,
};
use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
    FLT_OPERATION_REGISTRATION, FLT_REGISTRATION, FLT_REGISTRATION_VERSION,
    FLTFL_OPERATION_REGISTRATION_SKIP_PAGING_IO, FltUnregisterFilter, IRP_MJ_OPERATION_END,
    PFLT_FILTER,
};
use windows_sys::Wdk::System::SystemServices::{
    IRP_MJ_CREATE, IRP_MJ_SET_INFORMATION, IRP_MJ_SHUTDOWN,
};
use windows_sys::Win32::Foundation::NTSTATUS;

use super::create::{post_create, pre_create};
use super::instance::{instance_query_teardown, instance_setup, instance_teardown_complete};
use super::setinfo::pre_set_information;
use super::{ACTIVE, FILTER, Host, OWN_DIR};

/// Unregisters the filter (waits for every outstanding callback) and frees the rule set.
/// PASSIVE_LEVEL, from the unload path.
pub fn unregister_and_free() {
    let f: PFLT_FILTER = FILTER.swap(0, Ordering::AcqRel);
    if f != 0 {
        // SAFETY: `f` came from FltRegisterFilter and is unregistered exactly once (swap).
        unsafe { FltUnregisterFilter(f) };
    }
    // SAFETY: FltUnregisterFilter returned: no callback is running or will start.
    drop(unsafe { ACTIVE.take() });
    // SAFETY: FltUnregisterFilter returned, and the callbacks were its only readers: no
    // `with` runs or will start.
    drop(unsafe { OWN_DIR.take() });
    // SAFETY: as above: the callbacks were the scratch pool's only users.
    unsafe { super::scratch::free() };
}

/// Filter unload. IRQL: PASSIVE_LEVEL.
///
/// # Safety
/// Called by the Filter Manager (`PFLT_FILTER_UNLOAD_CALLBACK`).
pub unsafe extern "system" fn filter_unload<H: Host>(flags: u32) -> NTSTATUS {
    H::unload(flags)
}

/// Pre-operation callback for `IRP_MJ_SHUTDOWN` (PASSIVE_LEVEL): the system shuts down;
/// the Filter Manager calls it for each attached instance before the file system handles
/// the shutdown (a post-operation callback is not allowed for it: Microsoft Learn,
/// "Filtering I/O Operations in a Minifilter Driver"). This replaces a device of the
/// driver's own registered with `IoRegisterShutdownNotification` (issue 19, finding 8).
///
/// # Safety
/// Called by the Filter Manager (fltkernel.h `PFLT_PRE_OPERATION_CALLBACK`).
pub unsafe extern "system" fn pre_shutdown<H: Host>(
    _data: *mut FLT_CALLBACK_DATA,
    _objects: *const FLT_RELATED_OBJECTS,
    _context: *mut *mut core::ffi::c_void,
) -> FLT_PREOP_CALLBACK_STATUS {
    H::shutdown();
    FLT_PREOP_SUCCESS_NO_CALLBACK
}

/// A `u32` constant as the UCHAR/USHORT a registration field holds. `as` because
/// `TryFrom` is not `const`; every use is checked at compile time to fit.
#[allow(
    clippy::as_conversions,
    reason = "const context; fit asserted at compile time"
)]
const fn narrow_u8(v: u32) -> u8 {
    assert!(v <= 0xFF);
    v as u8
}
#[allow(
    clippy::as_conversions,
    reason = "const context; fit asserted at compile time"
)]
const fn narrow_u16(v: u32) -> u16 {
    assert!(v <= 0xFFFF);
    v as u16
}
#[allow(
    clippy::as_conversions,
    reason = "const context; fit asserted at compile time"
)]
pub(super) const fn size_u16(v: usize) -> u16 {
    assert!(v <= 0xFFFF);
    v as u16
}

// `IRP_MJ_*` are u32 in windows-sys; the registration field is a UCHAR.
const MJ_CREATE: u8 = narrow_u8(IRP_MJ_CREATE);
const MJ_SET_INFORMATION: u8 = narrow_u8(IRP_MJ_SET_INFORMATION);
const MJ_SHUTDOWN: u8 = narrow_u8(IRP_MJ_SHUTDOWN);
// IRP_MJ_OPERATION_END is a u16 in windows-sys.
#[allow(
    clippy::as_conversions,
    reason = "const context; fit asserted at compile time"
)]
const MJ_END: u8 = {
    assert!(IRP_MJ_OPERATION_END <= 0xFF);
    IRP_MJ_OPERATION_END as u8
};
const REGISTRATION_SIZE: u16 = size_u16(size_of::<FLT_REGISTRATION>());
const REGISTRATION_VERSION: u16 = narrow_u16(FLT_REGISTRATION_VERSION);

/// Entries of the operation table, its terminator included.
pub const OPERATIONS: usize = 4;

/// The operation table: the create pre- and post-callbacks (post-create runs only when
/// pre-create asks for it), the set-information pre-callback (paging I/O skipped), the
/// shutdown pre-callback, terminated by `IRP_MJ_OPERATION_END`.
pub const fn operations<H: Host>() -> [FLT_OPERATION_REGISTRATION; OPERATIONS] {
    [
        FLT_OPERATION_REGISTRATION {
            MajorFunction: MJ_CREATE,
            Flags: 0,
            PreOperation: Some(pre_create::<H>),
            PostOperation: Some(post_create::<H>),
            Reserved1: core::ptr::null_mut(),
        },
        FLT_OPERATION_REGISTRATION {
            MajorFunction: MJ_SET_INFORMATION,
            Flags: FLTFL_OPERATION_REGISTRATION_SKIP_PAGING_IO,
            PreOperation: Some(pre_set_information::<H>),
            PostOperation: None,
            Reserved1: core::ptr::null_mut(),
        },
        FLT_OPERATION_REGISTRATION {
            MajorFunction: MJ_SHUTDOWN,
            Flags: 0,
            PreOperation: Some(pre_shutdown::<H>),
            PostOperation: None,
            Reserved1: core::ptr::null_mut(),
        },
        FLT_OPERATION_REGISTRATION {
            MajorFunction: MJ_END,
            Flags: 0,
            PreOperation: None,
            PostOperation: None,
            Reserved1: core::ptr::null_mut(),
        },
    ]
}

/// The registration structure (`FLT_REGISTRATION_VERSION` 0x203), pointing at `ops`.
pub const fn registration<H: Host>(ops: *const FLT_OPERATION_REGISTRATION) -> FLT_REGISTRATION {
    FLT_REGISTRATION {
        Size: REGISTRATION_SIZE,
        Version: REGISTRATION_VERSION,
        Flags: 0,
        ContextRegistration: core::ptr::null(),
        OperationRegistration: ops,
        FilterUnloadCallback: Some(filter_unload::<H>),
        InstanceSetupCallback: Some(instance_setup::<H>),
        InstanceQueryTeardownCallback: Some(instance_query_teardown),
        InstanceTeardownStartCallback: None,
        InstanceTeardownCompleteCallback: Some(instance_teardown_complete::<H>),
        GenerateFileNameCallback: None,
        NormalizeNameComponentCallback: None,
        NormalizeContextCleanupCallback: None,
        TransactionNotificationCallback: None,
        NormalizeNameComponentExCallback: None,
        SectionNotificationCallback: None,
    }
}

/// Read-only data that holds raw pointers, in a `static` (the registration table must
/// outlive the filter, as the C samples' global `const FLT_REGISTRATION`).
#[repr(transparent)]
pub struct Static<T>(pub T);

impl<T> core::fmt::Debug for Static<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Static(..)")
    }
}

// SAFETY: used only for tables that are never written after initialization.
unsafe impl<T> Sync for Static<T> {}
