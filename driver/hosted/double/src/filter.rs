//! The filter: `FltRegisterFilter`, `FltStartFiltering`, `FltUnregisterFilter`, and the
//! unload path, from Microsoft Learn's "FLT_REGISTRATION structure", "FltRegisterFilter
//! function", "FltStartFiltering function", "FltUnregisterFilter function",
//! "PFLT_FILTER_UNLOAD_CALLBACK", "Writing an Unload Routine for a Minifilter Driver" and
//! "When the FilterUnloadCallback Routine Is Called".
//!
//! - `FltRegisterFilter` checks the registration (size 112 and version 0x203 of the WDK,
//!   known flags, an operation table of valid and distinct major functions ending in
//!   `IRP_MJ_OPERATION_END`; contexts, name providers, transaction and section callbacks
//!   are refused as not implemented here), keeps a copy, and, when the filter has a
//!   `FilterUnloadCallback` and does not set `FLTFL_REGISTRATION_DO_NOT_SUPPORT_SERVICE_STOP`,
//!   points the driver object's `DriverUnload` at [`driver_unload`]: a service stop
//!   (`net stop`, Wine's `ZwUnloadDriver`) is then a mandatory unload through the
//!   filter's unload callback, as Windows does. It also installs the interposed kernel
//!   routines ([`interpose`](crate::interpose)) in the driver's image.
//! - `FltStartFiltering` attaches the automatic volumes ([`volumes::attach_automatic`]).
//! - `FltUnregisterFilter` stops new callbacks, tears every instance down
//!   (`FLTFL_INSTANCE_TEARDOWN_FILTER_UNLOAD`, plus `..._MANDATORY_FILTER_UNLOAD` in a
//!   mandatory unload), and waits for every callback in flight before it returns.
//! - [`driver_unload`] calls `FilterUnloadCallback(FLTFL_FILTER_UNLOAD_MANDATORY)`, then
//!   checks that nothing of the driver is left ([`unload_check`]).

use core::ffi::c_void;
use core::sync::atomic::{AtomicI64, AtomicPtr, AtomicU32, AtomicU64, Ordering};

use windows_sys::Wdk::Foundation::DRIVER_OBJECT;
use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
    FLT_OPERATION_REGISTRATION, FLT_REGISTRATION, FLT_REGISTRATION_VERSION,
    FLTFL_FILTER_UNLOAD_MANDATORY, FLTFL_INSTANCE_TEARDOWN_FILTER_UNLOAD,
    FLTFL_INSTANCE_TEARDOWN_MANDATORY_FILTER_UNLOAD,
    FLTFL_REGISTRATION_DO_NOT_SUPPORT_SERVICE_STOP, IRP_MJ_OPERATION_END, PFLT_FILTER,
    PFLT_POST_OPERATION_CALLBACK, PFLT_PRE_OPERATION_CALLBACK,
};
use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_FLT_DO_NOT_DETACH, STATUS_INVALID_PARAMETER, STATUS_OBJECT_NAME_COLLISION,
    STATUS_SUCCESS,
};

use crate::kit::{self, Racy};
use crate::verify::{Code, violation};
use crate::volumes::{self, Instance};
use crate::{interpose, names, pushlock};

/// Filter states.
pub mod state {
    /// No filter registered.
    pub const NONE: u32 = 0;
    /// Registered, not started: instance setup and callbacks not yet.
    pub const REGISTERED: u32 = 1;
    /// Filtering.
    pub const STARTED: u32 = 2;
    /// `FltUnregisterFilter` running: no new pre-operation callback.
    pub const UNREGISTERING: u32 = 3;
}

/// Entries of the operation table the double keeps.
pub const OPERATIONS: usize = 32;

struct Filter {
    state: AtomicU32,
    driver: AtomicPtr<DRIVER_OBJECT>,
    registration: Racy<Option<FLT_REGISTRATION>>,
    operations: Racy<[Option<FLT_OPERATION_REGISTRATION>; OPERATIONS]>,
    /// Callbacks running (setup, teardown, pre, post) and operations between pre and post.
    in_flight: AtomicU32,
    refs: AtomicI64,
    mandatory: AtomicU32,
}

static FILTER: Filter = Filter {
    state: AtomicU32::new(state::NONE),
    driver: AtomicPtr::new(core::ptr::null_mut()),
    registration: Racy::new(None),
    operations: Racy::new([None; OPERATIONS]),
    in_flight: AtomicU32::new(0),
    refs: AtomicI64::new(0),
    mandatory: AtomicU32::new(0),
};

/// What the last unload found (the report reads these).
pub static UNLOADS: AtomicU32 = AtomicU32::new(0);
/// The last `FilterUnloadCallback` status.
pub static LAST_UNLOAD_STATUS: AtomicU32 = AtomicU32::new(0);
/// The last unload's leftover bits ([`leftover`]).
pub static LAST_LEFTOVERS: AtomicU32 = AtomicU32::new(0);
/// Registrations accepted so far.
pub static REGISTRATIONS: AtomicU64 = AtomicU64::new(0);

/// Bits of what was left when the driver's unload finished.
pub mod leftover {
    /// The filter was never unregistered.
    pub const FILTER: u32 = 1;
    /// Instances still attached.
    pub const INSTANCES: u32 = 2;
    /// Name information still referenced.
    pub const NAMES: u32 = 4;
    /// Push locks inside the image still initialized.
    pub const PUSH_LOCKS: u32 = 8;
    /// Disk device references not dropped.
    pub const DISK_REFERENCES: u32 = 16;
    /// `IoVolumeDeviceToDosName` buffers not freed.
    pub const DOS_NAME_BUFFERS: u32 = 32;
    /// A process notify routine still registered.
    pub const NOTIFY_ROUTINE: u32 = 64;
    /// A shutdown notification still registered.
    pub const SHUTDOWN_NOTIFICATION: u32 = 128;
    /// Device objects of the driver still exist.
    pub const DEVICES: u32 = 256;
    /// Volume, instance or filter references (`FltObjectReference`) still held.
    pub const OBJECT_REFERENCES: u32 = 512;
}

/// The filter's handle.
pub fn handle() -> PFLT_FILTER {
    isize::try_from(core::ptr::from_ref(&FILTER).addr()).unwrap_or(0)
}

/// The filter's state ([`state`]).
pub fn current_state() -> u32 {
    FILTER.state.load(Ordering::Acquire)
}

/// The driver object of the registered filter (null without one).
pub fn driver() -> *mut DRIVER_OBJECT {
    FILTER.driver.load(Ordering::Acquire)
}

/// `FltObjectReference` on the filter.
pub fn reference(h: PFLT_FILTER) -> NTSTATUS {
    if h != handle() || current_state() == state::NONE {
        violation(Code::ObjectUnknown, [kit::n(h.unsigned_abs()), 5, 0]);
        return STATUS_INVALID_PARAMETER;
    }
    FILTER.refs.fetch_add(1, Ordering::AcqRel);
    STATUS_SUCCESS
}

/// The filter's reference counter, if `h` is the filter.
pub fn refs_of(h: PFLT_FILTER) -> Option<&'static AtomicI64> {
    (h == handle()).then_some(&FILTER.refs)
}

/// A callback may start (the filter is past `floor`): counted in flight until the guard
/// drops, so that `FltUnregisterFilter` waits for it.
pub struct InFlight(());

impl Drop for InFlight {
    fn drop(&mut self) {
        FILTER.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl core::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("InFlight")
    }
}

/// Enters a callback if the filter is in one of `allowed` states.
pub fn enter(allowed: &[u32]) -> Option<InFlight> {
    FILTER.in_flight.fetch_add(1, Ordering::AcqRel);
    if allowed.contains(&current_state()) {
        Some(InFlight(()))
    } else {
        FILTER.in_flight.fetch_sub(1, Ordering::AcqRel);
        None
    }
}

fn registration() -> Option<FLT_REGISTRATION> {
    // SAFETY: written by FltRegisterFilter before the state leaves NONE (Release) and
    // cleared only after it returns to NONE with nothing in flight; callers are in flight
    // (`enter`) or the unregister path itself.
    unsafe { *FILTER.registration.get() }
}

/// The pre- and post-operation callbacks registered for `major`, and the entry's flags
/// (`FLTFL_OPERATION_REGISTRATION_SKIP_PAGING_IO` and the other `SKIP_*`).
pub fn callbacks(
    major: u8,
) -> (
    PFLT_PRE_OPERATION_CALLBACK,
    PFLT_POST_OPERATION_CALLBACK,
    u32,
) {
    // SAFETY: as `registration`.
    let ops = unsafe { &*FILTER.operations.get() };
    ops.iter()
        .flatten()
        .find(|o| o.MajorFunction == major)
        .map_or((None, None, 0), |o| {
            (o.PreOperation, o.PostOperation, o.Flags)
        })
}

/// Calls `InstanceSetupCallback` (PFLT_INSTANCE_SETUP_CALLBACK); without one, attaches.
pub fn instance_setup(
    inst: &'static Instance,
    flags: u32,
    device_type: u32,
    fs_type: i32,
) -> NTSTATUS {
    let Some(_g) = enter(&[state::STARTED]) else {
        return windows_sys::Win32::Foundation::STATUS_FLT_NOT_INITIALIZED;
    };
    let objects = volumes::related(handle(), inst);
    match registration().and_then(|r| r.InstanceSetupCallback) {
        // SAFETY: the driver's registered callback with its documented arguments;
        // `objects` lives for the call.
        Some(f) => unsafe { f(&objects, flags, device_type, fs_type) },
        None => STATUS_SUCCESS,
    }
}

/// Calls `InstanceQueryTeardownCallback`; without one a manual detach is refused.
pub fn instance_query_teardown(inst: &'static Instance) -> NTSTATUS {
    let Some(_g) = enter(&[state::STARTED]) else {
        return STATUS_FLT_DO_NOT_DETACH;
    };
    let objects = volumes::related(handle(), inst);
    match registration().and_then(|r| r.InstanceQueryTeardownCallback) {
        // SAFETY: as `instance_setup`; no flags are defined (Microsoft Learn).
        Some(f) => unsafe { f(&objects, 0) },
        None => STATUS_FLT_DO_NOT_DETACH,
    }
}

/// Calls `InstanceTeardownStartCallback` or (`complete`) `InstanceTeardownCompleteCallback`.
pub fn instance_teardown(inst: &'static Instance, reason: u32, complete: bool) {
    let Some(_g) = enter(&[state::STARTED, state::UNREGISTERING]) else {
        return;
    };
    let objects = volumes::related(handle(), inst);
    let f = registration().and_then(|r| {
        if complete {
            r.InstanceTeardownCompleteCallback
        } else {
            r.InstanceTeardownStartCallback
        }
    });
    if let Some(f) = f {
        // SAFETY: as `instance_setup`.
        unsafe { f(&objects, reason) };
    }
}

fn valid_major(m: u8) -> bool {
    // IRP_MJ_CREATE..=IRP_MJ_PNP (0x1B), and Filter Manager's own negative codes
    // (IRP_MJ_ACQUIRE_FOR_SECTION_SYNCHRONIZATION = (UCHAR)-1 ... down to -22, fltKernel.h).
    m <= 0x1B || m >= 0xEA
}

/// Checks a registration (see the module documentation); `Err` names the field.
///
/// # Safety
/// `reg.OperationRegistration` is null or an array ending in `IRP_MJ_OPERATION_END`.
unsafe fn check(
    reg: &FLT_REGISTRATION,
    ops: &mut [Option<FLT_OPERATION_REGISTRATION>; OPERATIONS],
) -> Result<(), u64> {
    if usize::from(reg.Size) != core::mem::size_of::<FLT_REGISTRATION>() {
        return Err(1);
    }
    if u32::from(reg.Version) != FLT_REGISTRATION_VERSION {
        return Err(2);
    }
    if reg.Flags & !0xF != 0 {
        return Err(3);
    }
    if !reg.ContextRegistration.is_null() {
        return Err(4);
    }
    if reg.GenerateFileNameCallback.is_some()
        || reg.NormalizeNameComponentCallback.is_some()
        || reg.NormalizeContextCleanupCallback.is_some()
        || reg.NormalizeNameComponentExCallback.is_some()
        || reg.TransactionNotificationCallback.is_some()
        || reg.SectionNotificationCallback.is_some()
    {
        return Err(5);
    }
    let mut p = reg.OperationRegistration;
    let mut n = 0usize;
    loop {
        if p.is_null() {
            return Ok(());
        }
        // SAFETY: the function's contract: each entry up to the end marker is readable.
        let o = unsafe { *p };
        if u16::from(o.MajorFunction) == IRP_MJ_OPERATION_END {
            return Ok(());
        }
        if !valid_major(o.MajorFunction) || o.Flags & !0xF != 0 {
            return Err(6);
        }
        if ops
            .iter()
            .flatten()
            .any(|e| e.MajorFunction == o.MajorFunction)
        {
            return Err(7);
        }
        let Some(slot) = ops.get_mut(n) else {
            return Err(8);
        };
        *slot = Some(o);
        n = n.saturating_add(1);
        p = p.wrapping_add(1);
    }
}

/// `FltRegisterFilter` (fltKernel.h: `NTSTATUS (PDRIVER_OBJECT, const FLT_REGISTRATION*,
/// PFLT_FILTER*)`).
///
/// # Safety
/// Called by the driver from `DriverEntry` with its driver object and registration.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn FltRegisterFilter(
    driver: *mut DRIVER_OBJECT,
    registration: *const FLT_REGISTRATION,
    ret: *mut PFLT_FILTER,
) -> NTSTATUS {
    // SAFETY: null or the driver's registration (static in the driver).
    let (Some(reg), false, false) = (
        unsafe { registration.as_ref() },
        driver.is_null(),
        ret.is_null(),
    ) else {
        violation(Code::Registration, [0, 0, 0]);
        return STATUS_INVALID_PARAMETER;
    };
    if FILTER
        .state
        .compare_exchange(
            state::NONE,
            state::REGISTERED,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_err()
    {
        violation(Code::FilterHandle, [1, 0, 0]);
        return STATUS_OBJECT_NAME_COLLISION;
    }
    let mut ops = [None; OPERATIONS];
    // SAFETY: the table's contract (FLT_REGISTRATION: terminated by IRP_MJ_OPERATION_END).
    if let Err(field) = unsafe { check(reg, &mut ops) } {
        violation(Code::Registration, [field, 0, 0]);
        FILTER.state.store(state::NONE, Ordering::Release);
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: state was NONE and is now REGISTERED by this thread: nobody else reads the
    // registration until `*ret` is returned.
    unsafe {
        *FILTER.registration.get() = Some(*reg);
    }
    // SAFETY: as above.
    unsafe {
        *FILTER.operations.get() = ops;
    }
    FILTER.driver.store(driver, Ordering::Release);
    FILTER.refs.store(0, Ordering::Release);
    FILTER.mandatory.store(0, Ordering::Release);
    if reg.FilterUnloadCallback.is_some()
        && reg.Flags & FLTFL_REGISTRATION_DO_NOT_SUPPORT_SERVICE_STOP == 0
    {
        // SAFETY: the driver's own driver object, in its DriverEntry.
        unsafe { (*driver).DriverUnload = Some(driver_unload) };
    }
    // SAFETY: the driver's object, in its DriverEntry.
    unsafe { interpose::install(driver) };
    REGISTRATIONS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the caller's out pointer (checked non-null).
    unsafe { *ret = handle() };
    STATUS_SUCCESS
}

/// `FltStartFiltering` (fltKernel.h: `NTSTATUS (PFLT_FILTER)`).
///
/// # Safety
/// Called by the driver.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn FltStartFiltering(filter: PFLT_FILTER) -> NTSTATUS {
    if filter != handle()
        || FILTER
            .state
            .compare_exchange(
                state::REGISTERED,
                state::STARTED,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
    {
        violation(Code::FilterHandle, [2, kit::n(filter.unsigned_abs()), 0]);
        return STATUS_INVALID_PARAMETER;
    }
    volumes::attach_automatic();
    STATUS_SUCCESS
}

/// `FltUnregisterFilter` (fltKernel.h: `VOID (PFLT_FILTER)`).
///
/// # Safety
/// Called by the driver (its unload callback, or a failed `DriverEntry`).
#[unsafe(no_mangle)]
pub unsafe extern "system" fn FltUnregisterFilter(filter: PFLT_FILTER) {
    let s = current_state();
    if filter != handle() || (s != state::REGISTERED && s != state::STARTED) {
        violation(
            Code::FilterHandle,
            [3, kit::n(filter.unsigned_abs()), u64::from(s)],
        );
        return;
    }
    FILTER.state.store(state::UNREGISTERING, Ordering::Release);
    let reason = FLTFL_INSTANCE_TEARDOWN_FILTER_UNLOAD
        | if FILTER.mandatory.load(Ordering::Acquire) != 0 {
            FLTFL_INSTANCE_TEARDOWN_MANDATORY_FILTER_UNLOAD
        } else {
            0
        };
    while let Some(inst) = volumes::live_instances().next() {
        volumes::teardown(inst, reason);
    }
    while FILTER.in_flight.load(Ordering::Acquire) != 0 {
        kit::sleep_ms(1);
    }
    FILTER.state.store(state::NONE, Ordering::Release);
}

/// The driver's `DriverUnload` while a filter is registered: a mandatory unload through its
/// `FilterUnloadCallback` ("When the FilterUnloadCallback Routine Is Called": `net stop` is
/// mandatory), then [`unload_check`].
///
/// # Safety
/// Called by the I/O manager (Wine's `unload_driver`) with the driver's object.
pub unsafe extern "system" fn driver_unload(driver: *const DRIVER_OBJECT) {
    FILTER.mandatory.store(1, Ordering::Release);
    let status = match registration().and_then(|r| r.FilterUnloadCallback) {
        // SAFETY: the registered unload callback, PASSIVE_LEVEL, documented flag.
        Some(f) => unsafe { f(FLTFL_FILTER_UNLOAD_MANDATORY) },
        None => STATUS_SUCCESS,
    };
    LAST_UNLOAD_STATUS.store(u32::from_ne_bytes(status.to_ne_bytes()), Ordering::Release);
    // SAFETY: the driver object Wine passes to its DriverUnload.
    let bits = unsafe { unload_check(driver) };
    LAST_LEFTOVERS.store(bits, Ordering::Release);
    UNLOADS.fetch_add(1, Ordering::AcqRel);
    kit::log2(
        c"driver unloaded: FilterUnloadCallback status, leftovers",
        u64::from(u32::from_ne_bytes(status.to_ne_bytes())),
        u64::from(bits),
    );
    if bits != 0 {
        violation(Code::UnloadLeftover, [u64::from(bits), 0, 0]);
    }
    // The image goes away now: forget the filter whatever it left (no callback into it
    // can be made any more).
    if current_state() != state::NONE {
        FILTER.state.store(state::UNREGISTERING, Ordering::Release);
        while let Some(inst) = volumes::live_instances().next() {
            inst.state.store(volumes::state::FREE, Ordering::Release);
        }
        FILTER.state.store(state::NONE, Ordering::Release);
    }
    // SAFETY: state NONE and nothing in flight (FltUnregisterFilter waited, or the filter
    // was forgotten above): nobody reads the registration.
    unsafe {
        *FILTER.registration.get() = None;
    }
    // SAFETY: as above.
    unsafe {
        *FILTER.operations.get() = [None; OPERATIONS];
    }
    FILTER
        .driver
        .store(core::ptr::null_mut(), Ordering::Release);
    interpose::forget();
}

/// What of the driver is left after its unload callback returned ([`leftover`] bits).
///
/// # Safety
/// `driver` is null or the driver object being unloaded.
pub unsafe fn unload_check(driver: *const DRIVER_OBJECT) -> u32 {
    let mut bits = 0;
    if current_state() != state::NONE {
        bits |= leftover::FILTER;
    }
    if volumes::live_instances().next().is_some() {
        bits |= leftover::INSTANCES;
    }
    if names::live() != 0 {
        bits |= leftover::NAMES;
    }
    // SAFETY: the driver object Wine passes to DriverUnload is valid during the call.
    let (start, size, devices) =
        unsafe { driver.as_ref() }.map_or((core::ptr::null_mut(), 0, false), |d| {
            (
                d.DriverStart,
                usize::try_from(d.DriverSize).unwrap_or(0),
                !d.DeviceObject.is_null(),
            )
        });
    if pushlock::live_in(start.cast::<c_void>(), size) != 0 {
        bits |= leftover::PUSH_LOCKS;
    }
    if volumes::disk_refs_out() != 0 {
        bits |= leftover::DISK_REFERENCES;
    }
    if interpose::dos_buffers_out() != 0 {
        bits |= leftover::DOS_NAME_BUFFERS;
    }
    if interpose::notify_registered() {
        bits |= leftover::NOTIFY_ROUTINE;
    }
    if interpose::shutdown_registered() {
        bits |= leftover::SHUTDOWN_NOTIFICATION;
    }
    if devices {
        bits |= leftover::DEVICES;
    }
    if volumes::volume_refs_out() != 0 || FILTER.refs.load(Ordering::Acquire) != 0 {
        bits |= leftover::OBJECT_REFERENCES;
    }
    bits
}
