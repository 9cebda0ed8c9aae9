//! The health timer, its DPC and work item, the canary, and the shutdown notification.
//!
//! Protocol (documented in docs/windows.md, "Health"):
//! - `arm` (PASSIVE, `DriverEntry` after filtering started): `HEALTH` idle → armed,
//!   `WORK_IDLE` reset, one-shot `KTIMER` set for `healthy_after` seconds.
//! - `health_dpc` (DISPATCH): armed → queued, then `IoQueueWorkItem` (the work item holds a
//!   reference on our device object, so the image stays loaded until it returns).
//! - `health_work` (PASSIVE, system worker thread): the canary (a create, write and close
//!   of `<dir>\health.canary` through the whole file-system stack, our own filter
//!   included: a filter that hangs creates never completes it), then, with the canary's
//!   result as evidence, the core's `healthy` event under `STATE_LOCK`; finally
//!   `WORK_IDLE` is set.
//! - `quiesce` (teardown, PASSIVE): `KeCancelTimer`, `KeFlushQueuedDpcs` (the DPC either
//!   ran to completion or never will), armed → idle if the DPC never ran (then nobody else
//!   sets `WORK_IDLE`, so set it here), and wait for `WORK_IDLE`. Only then may the work
//!   item be freed. This does not rely on `KeCancelTimer`'s result, which Wine reports
//!   differently from Windows for an expired one-shot timer.

use core::ffi::c_void;
use core::sync::atomic::Ordering;

use failsafe_loader::state::Durable;
use failsafe_loader::state::machine::{clean_shutdown, healthy};

use super::ffi::{
    _KWAIT_REASON, _WORK_QUEUE_TYPE, DEVICE_OBJECT, FILE_NON_DIRECTORY_FILE, FILE_OVERWRITE_IF,
    FILE_WRITE_THROUGH, GENERIC_WRITE, IRP, IoQueueWorkItem, IofCompleteRequest, KDPC, KERNEL_MODE,
    KeCancelTimer, KeFlushQueuedDpcs, KeResetEvent, KeSetEvent, KeSetTimer, KeWaitForSingleObject,
    LARGE_INTEGER, NTSTATUS, PDEVICE_OBJECT, STATUS_SUCCESS,
};
use super::globals::{
    DIR, DPC, HEALTH, HEALTH_ARMED, HEALTH_IDLE, HEALTH_QUEUED, STATE, STATE_LOCK, TIMER,
    WORK_IDLE, WORK_ITEM,
};
use super::medium::KernelMedium;
use super::nt::{Wide, debug_assert_passive, open, write_at};

/// Runs `f` on the durable record with `STATE_LOCK` held. PASSIVE_LEVEL.
pub fn with_state<R>(f: impl FnOnce(&mut Option<Durable<KernelMedium>>) -> R) -> R {
    debug_assert_passive!();
    wait_forever(STATE_LOCK.ptr().cast());
    // SAFETY: STATE_LOCK is a synchronization event used as a mutex: while this thread
    // holds it, this is the only reference to STATE.
    let r = f(unsafe { &mut *STATE.0.get() });
    // SAFETY: initialized in DriverEntry; releases the next waiter.
    let _ = unsafe { KeSetEvent(STATE_LOCK.ptr(), 0, 0) };
    r
}

/// `KeWaitForSingleObject` without timeout, kernel mode, not alertable. PASSIVE_LEVEL.
fn wait_forever(object: *mut c_void) {
    // SAFETY: `object` is an initialized dispatcher object in static storage; waiting
    // without a timeout is allowed at PASSIVE_LEVEL.
    let _ = unsafe {
        KeWaitForSingleObject(
            object,
            _KWAIT_REASON::Executive,
            KERNEL_MODE,
            0,
            core::ptr::null_mut(),
        )
    };
}

/// Arms the one-shot health timer. PASSIVE_LEVEL, once, after filtering started.
pub fn arm(healthy_after_secs: u32) {
    debug_assert_passive!();
    if WORK_ITEM.load(Ordering::Acquire).is_null() {
        return;
    }
    HEALTH.store(HEALTH_ARMED, Ordering::Release);
    // SAFETY: initialized notification event; reset before the timer can fire.
    let _ = unsafe { KeResetEvent(WORK_IDLE.ptr()) };
    let due = LARGE_INTEGER {
        QuadPart: i64::from(healthy_after_secs).saturating_mul(-10_000_000),
    };
    // SAFETY: initialized timer and DPC in static storage; a negative due time is relative,
    // in 100 ns units.
    let _ = unsafe { KeSetTimer(TIMER.ptr(), due, DPC.ptr()) };
}

/// Timer DPC (DISPATCH_LEVEL): hands the health check to a work item at PASSIVE_LEVEL.
pub unsafe extern "C" fn health_dpc(
    _dpc: *mut KDPC,
    _ctx: *mut c_void,
    _a: *mut c_void,
    _b: *mut c_void,
) {
    let item = WORK_ITEM.load(Ordering::Acquire);
    if item.is_null()
        || HEALTH
            .compare_exchange(
                HEALTH_ARMED,
                HEALTH_QUEUED,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
    {
        return;
    }
    // SAFETY: a work item allocated for our device, queued at most once per arming (the
    // compare-exchange above); IoQueueWorkItem may be called at DISPATCH_LEVEL.
    unsafe {
        IoQueueWorkItem(
            item.cast(),
            Some(health_work),
            _WORK_QUEUE_TYPE::DelayedWorkQueue,
            core::ptr::null_mut(),
        )
    };
}

/// The canary: evidence that a create and a write through the file-system stack, this
/// filter included, complete. `<dir>\health.canary` is inside the driver's own directory,
/// which content can audit but never block (`crate::guard`). PASSIVE_LEVEL.
fn canary() -> Result<(), NTSTATUS> {
    debug_assert_passive!();
    // SAFETY: DIR is written once before the timer is armed and cleared only after the
    // work item finished (globals.rs); this is a shared read.
    let dir = unsafe { &*DIR.0.get() };
    let Some(dir) = dir.as_ref() else {
        return Err(super::ffi::STATUS_INSUFFICIENT_RESOURCES);
    };
    let mut path = Wide::join(dir.units(), "\\health.canary")
        .ok_or(super::ffi::STATUS_INSUFFICIENT_RESOURCES)?;
    let h = open(
        &mut path,
        GENERIC_WRITE,
        FILE_OVERWRITE_IF,
        FILE_NON_DIRECTORY_FILE | FILE_WRITE_THROUGH,
    )?;
    write_at(&h, 0, b"failsafe canary\n")
}

/// Work item (PASSIVE_LEVEL): content stayed up `healthy_after` seconds; if the canary
/// completes too, the start is healthy.
unsafe extern "C" fn health_work(_device: PDEVICE_OBJECT, _ctx: *mut c_void) {
    let evidence = canary();
    if evidence.is_ok() {
        with_state(|s| {
            if let Some(d) = s.as_mut() {
                let _ = d.apply(healthy);
            }
        });
    }
    // SAFETY: initialized notification event in static storage.
    let _ = unsafe { KeSetEvent(WORK_IDLE.ptr(), 0, 0) };
}

/// Stops the health machinery so that the work item can be freed. PASSIVE_LEVEL.
pub fn quiesce() {
    debug_assert_passive!();
    // SAFETY: initialized timer (DriverEntry initializes it before anything can fail);
    // cancelling a timer that is not set is harmless.
    let _ = unsafe { KeCancelTimer(TIMER.ptr()) };
    // SAFETY: PASSIVE_LEVEL; waits until every queued DPC, ours included, has run.
    unsafe { KeFlushQueuedDpcs() };
    if HEALTH
        .compare_exchange(
            HEALTH_ARMED,
            HEALTH_IDLE,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_ok()
    {
        // The DPC never ran and never will: nobody else signals the event.
        // SAFETY: initialized notification event.
        let _ = unsafe { KeSetEvent(WORK_IDLE.ptr(), 0, 0) };
    }
    // Signaled unless a work item is queued or running; then wait for it to end.
    wait_forever(WORK_IDLE.ptr().cast());
}

/// IRP_MJ_SHUTDOWN (PASSIVE_LEVEL): an orderly shutdown before healthy is not charged.
pub unsafe extern "C" fn dispatch_shutdown(_device: *mut DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    with_state(|s| {
        if let Some(d) = s.as_mut() {
            let _ = d.apply(clean_shutdown);
        }
    });
    // SAFETY: the I/O manager passes a valid IRP that this routine owns until completed.
    if let Some(i) = unsafe { irp.as_mut() } {
        i.IoStatus.__bindgen_anon_1.Status = STATUS_SUCCESS;
        i.IoStatus.Information = 0;
    }
    // SAFETY: completing the IRP we were given, exactly once, with no priority boost.
    unsafe { IofCompleteRequest(irp, 0) };
    STATUS_SUCCESS
}
