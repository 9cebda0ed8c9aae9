//! The driver's own system thread: every long job at PASSIVE_LEVEL runs here, one at a
//! time, instead of in the system's worker threads (Microsoft Learn, "System Worker
//! Threads": a driver that needs long processing, or may block, should create its own
//! thread; the shared `DelayedWorkQueue` threads are few). Its jobs:
//!
//! - a control request (`control::serve`): the one request in flight reads, hashes and
//!   verifies up to 32 MiB, writes the record and may wait about a second in the swap;
//! - the health check (`health::work`), posted by the timer DPC;
//! - a round of volume DOS names (`dosnames::round`), posted by the callbacks;
//! - a power transition (`health::power`), posted by the power-state callback.
//!
//! Protocol: a producer sets its job's bit in `JOBS` and signals `WAKE` (a synchronization
//! event; `KeSetEvent` at IRQL ≤ DISPATCH_LEVEL, so the DPC and the power callback may
//! post). The thread waits on `WAKE`, takes every bit at once and runs each job; a bit set
//! twice before the thread looks runs its job once (each job's owner keeps its own
//! idle/queued state, so none is lost). `stop` posts the stop bit after every producer is
//! gone (teardown order) and waits for the thread object to be signaled, i.e. for the
//! thread to have left the driver's code.

use core::ffi::c_void;
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

use super::ffi::KEVENT;
use super::ffi::{
    _EVENT_TYPE, _KWAIT_REASON, HANDLE, KERNEL_MODE, KeInitializeEvent, KeSetEvent,
    KeWaitForSingleObject, NTSTATUS, OBJ_KERNEL_HANDLE, OBJECT_ATTRIBUTES, PsCreateSystemThread,
    PsTerminateSystemThread, STATUS_SUCCESS, SYNCHRONIZE, ZwClose, ZwWaitForSingleObject,
};
use super::globals::Kobj;
use super::nt::debug_assert_passive;

/// A control request waits in `control`'s slot.
pub const CONTROL: u32 = 1 << 0;
/// The health timer fell due.
pub const HEALTH: u32 = 1 << 1;
/// A volume waits for its DOS name.
pub const VOLUMES: u32 = 1 << 2;
/// The system is about to sleep or hibernate (Fast Startup included).
pub const SUSPEND: u32 = 1 << 3;
/// The system is back in the working state.
pub const RESUME: u32 = 1 << 4;
/// Teardown: leave.
const STOP: u32 = 1 << 31;

/// Jobs posted and not yet taken.
static JOBS: AtomicU32 = AtomicU32::new(0);
/// Signaled when a job is posted (synchronization event: one waiter, auto-reset).
static WAKE: Kobj<KEVENT> = Kobj::new();
/// The thread's handle (a kernel handle), null when no thread runs.
static THREAD: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());

/// Starts the thread. `DriverEntry`, PASSIVE_LEVEL, before anything can post. Without it
/// the driver does not start (its health check and control requests need it), before
/// the start decision: nothing is charged.
///
/// `PsCreateSystemThread` (wdm.h; Microsoft Learn, "PsCreateSystemThread function
/// (wdm.h)"): a kernel handle (`OBJ_KERNEL_HANDLE`, as the page requires of drivers not
/// in the System process, harmless in it), no process handle (the system process), the
/// routine runs at PASSIVE_LEVEL.
pub fn start() -> Result<(), NTSTATUS> {
    debug_assert_passive!();
    // SAFETY: static storage, initialized once here before any post; not signaled.
    unsafe { KeInitializeEvent(WAKE.ptr(), _EVENT_TYPE::SynchronizationEvent, 0) };
    JOBS.store(0, Ordering::Release);
    let mut attrs = OBJECT_ATTRIBUTES {
        Length: u32::try_from(size_of::<OBJECT_ATTRIBUTES>()).unwrap_or(0),
        RootDirectory: core::ptr::null_mut(),
        ObjectName: core::ptr::null_mut(),
        Attributes: OBJ_KERNEL_HANDLE,
        SecurityDescriptor: core::ptr::null_mut(),
        SecurityQualityOfService: core::ptr::null_mut(),
    };
    let mut handle: HANDLE = core::ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL; `handle` and `attrs` are live locals; `run` has the
    // KSTART_ROUTINE signature and lives in this image, which the thread object keeps
    // loaded no longer than `stop` waits for it.
    let status = unsafe {
        PsCreateSystemThread(
            &mut handle,
            SYNCHRONIZE,
            &mut attrs,
            core::ptr::null_mut(),
            core::ptr::null_mut(),
            Some(run),
            core::ptr::null_mut(),
        )
    };
    if status < 0 {
        return Err(status);
    }
    THREAD.store(handle, Ordering::Release);
    Ok(())
}

/// The thread runs (jobs may be posted).
pub fn running() -> bool {
    !THREAD.load(Ordering::Acquire).is_null()
}

/// Posts `job`. Any IRQL ≤ DISPATCH_LEVEL (`KeSetEvent` with `Wait` FALSE); never blocks.
/// Without a thread the job is dropped: its owner checks [`running`] first.
pub fn post(job: u32) {
    if !running() {
        return;
    }
    JOBS.fetch_or(job, Ordering::AcqRel);
    // SAFETY: initialized in `start` (THREAD is set only after); callable at ≤ DISPATCH.
    let _ = unsafe { KeSetEvent(WAKE.ptr(), 0, 0) };
}

/// Stops the thread and waits until it has left the driver's code. Teardown,
/// PASSIVE_LEVEL, after every producer is gone (the control gate closed, the health and
/// volume machinery quiesced, the power callback unregistered, the filter unregistered).
pub fn stop() {
    debug_assert_passive!();
    let handle = THREAD.load(Ordering::Acquire);
    if handle.is_null() {
        return;
    }
    post(STOP);
    // SAFETY: our kernel handle to the thread (SYNCHRONIZE access); an untimed, kernel-mode,
    // non-alertable wait at PASSIVE_LEVEL. The thread object is signaled when the thread
    // has terminated (Microsoft Learn, "ZwWaitForSingleObject"; thread objects).
    let _ = unsafe { ZwWaitForSingleObject(handle, 0, core::ptr::null_mut()) };
    THREAD.store(core::ptr::null_mut(), Ordering::Release);
    // SAFETY: the handle from PsCreateSystemThread, closed once.
    let _ = unsafe { ZwClose(handle) };
}

/// The thread (PASSIVE_LEVEL, System process): waits for jobs and runs them.
unsafe extern "C" fn run(_context: *mut c_void) {
    loop {
        // SAFETY: the event initialized in `start`; an untimed kernel-mode wait at
        // PASSIVE_LEVEL (this thread's stack may be paged out meanwhile: nothing on it is
        // shared with another thread).
        let _ = unsafe {
            KeWaitForSingleObject(
                WAKE.ptr().cast(),
                _KWAIT_REASON::Executive,
                KERNEL_MODE,
                0,
                core::ptr::null_mut(),
            )
        };
        let jobs = JOBS.swap(0, Ordering::AcqRel);
        if jobs & CONTROL != 0 {
            super::control::serve();
        }
        if jobs & SUSPEND != 0 {
            super::health::power(false);
        }
        if jobs & RESUME != 0 {
            super::health::power(true);
        }
        if jobs & HEALTH != 0 {
            super::health::work();
        }
        if jobs & VOLUMES != 0 {
            super::dosnames::round();
        }
        if jobs & STOP != 0 {
            break;
        }
    }
    // SAFETY: a system thread ends itself with this routine (Microsoft Learn,
    // "PsTerminateSystemThread": called by the system thread itself, PASSIVE_LEVEL); it
    // does not return.
    let _ = unsafe { PsTerminateSystemThread(STATUS_SUCCESS) };
}
