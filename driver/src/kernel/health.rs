//! The health timer, its DPC and the health check on the driver's thread, the canary, the
//! shutdown and power transitions.
//!
//! Protocol (documented in docs/windows.md, "Health"):
//! - `arm` (PASSIVE, `DriverEntry` after filtering started): `HEALTH` idle → armed,
//!   `WORK_IDLE` reset, one-shot `KTIMER` set for `healthy_after` seconds.
//! - `health_dpc` (DISPATCH): armed → queued, then posts the health job to the driver's
//!   thread (`worker`; the image stays loaded until teardown has waited for the thread).
//! - `work` (PASSIVE, the driver's thread): if less uptime than `healthy_after`
//!   has passed (a relative timer that fell due during sleep fires at once on wake, while
//!   the unbiased uptime excludes the sleep), the timer is set again for the rest and the
//!   state moves queued → armed, unless teardown stopped it. Otherwise the canary (create,
//!   write, flush, read back and delete-on-close of `<dir>\canary.tmp` through the whole
//!   file-system stack, this filter included: a filter that hangs creates never completes
//!   it), then, with its result as evidence, the core's health event under `STATE_LOCK`
//!   (the record re-read first); then, with the lock still held, queued → idle and
//!   `WORK_IDLE` set.
//! - `rearm_locked` (a live swap, PASSIVE, record lock held): idle → armed and the timer
//!   set; armed: the timer set again for the whole window; queued: nothing (the health check
//!   re-arms itself for the new content).
//! - `quiesce` (teardown, PASSIVE): the state becomes stopped (so neither the DPC nor the
//!   health check arms or queues again), `KeCancelTimer`, `KeFlushQueuedDpcs` (the DPC either
//!   ran to completion or never will); if it was armed, nobody else will set `WORK_IDLE`, so
//!   set it here; then wait for `WORK_IDLE`. Only then may the thread stop. This does
//!   not rely on `KeCancelTimer`'s result, which Wine reports differently from Windows for
//!   an expired one-shot timer. The thread must still run then: teardown stops it after.

use core::ffi::c_void;
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use failsafe_loader::state::machine::HealthEvidence;

use super::ffi::{
    _KWAIT_REASON, DELETE, FILE_DELETE_ON_CLOSE, FILE_NON_DIRECTORY_FILE, FILE_OVERWRITE_IF,
    FILE_WRITE_THROUGH, GENERIC_READ, GENERIC_WRITE, KDPC, KERNEL_MODE, KeCancelTimer,
    KeFlushQueuedDpcs, KeResetEvent, KeSetEvent, KeSetTimer, KeWaitForSingleObject, LARGE_INTEGER,
    NTSTATUS, STATUS_DATA_ERROR, STATUS_INSUFFICIENT_RESOURCES, TickCountFn, TimeIncrementFn,
    UnbiasedInterruptTimeFn,
};
use super::globals::{
    DPC, HEALTH, HEALTH_ARMED, HEALTH_IDLE, HEALTH_QUEUED, HEALTH_STOPPED, POWER_DONE, Running,
    STATE, STATE_LOCK, TIMER, WORK_IDLE,
};
use super::nt::{
    Wide, debug_assert_passive, flush, io, open_at, read_at, system_routine, write_at,
};
use super::storedir;
use super::worker;
use crate::reparse::Child;
use crate::running::{Close, Power};

/// Runs `f` on the record and this start's activation with `STATE_LOCK` held.
/// PASSIVE_LEVEL.
pub fn with_state<R>(f: impl FnOnce(&mut Option<Running>) -> R) -> R {
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
pub(super) fn wait_forever(object: *mut c_void) {
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
    if !worker::running()
        || HEALTH
            .compare_exchange(
                HEALTH_IDLE,
                HEALTH_ARMED,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
    {
        return;
    }
    // SAFETY: initialized notification event; reset before the timer can fire.
    let _ = unsafe { KeResetEvent(WORK_IDLE.ptr()) };
    set_timer(u64::from(healthy_after_secs));
}

/// Sets the one-shot timer `secs` seconds from now.
fn set_timer(secs: u64) {
    let due = LARGE_INTEGER {
        QuadPart: i64::try_from(secs)
            .unwrap_or(i64::MAX)
            .saturating_mul(-10_000_000),
    };
    // SAFETY: initialized timer and DPC in static storage; a negative due time is relative,
    // in 100 ns units.
    let _ = unsafe { KeSetTimer(TIMER.ptr(), due, DPC.ptr()) };
}

/// Timer DPC (DISPATCH_LEVEL): hands the health check to the driver's thread at
/// PASSIVE_LEVEL, once per arming (the compare-exchange).
pub unsafe extern "C" fn health_dpc(
    _dpc: *mut KDPC,
    _ctx: *mut c_void,
    _a: *mut c_void,
    _b: *mut c_void,
) {
    if HEALTH
        .compare_exchange(
            HEALTH_ARMED,
            HEALTH_QUEUED,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_ok()
    {
        worker::post(worker::HEALTH);
    }
}

/// The clocks `now` reads, resolved by `init_clock`: `KeQueryUnbiasedInterruptTime`, else
/// `KeQueryTickCount` and the tick length `KeQueryTimeIncrement` returned.
static UNBIASED: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());
static TICKS: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());
static TICK_100NS: AtomicU64 = AtomicU64::new(0);

/// Resolves the clock (`MmGetSystemRoutineAddress`, as `pool::init` resolves
/// `ExAllocatePool2`): `KeQueryUnbiasedInterruptTime` (every Windows since 7, so on Windows
/// this is always the clock used); else the tick count times the tick length
/// (`KeQueryTickCount` × `KeQueryTimeIncrement`, Microsoft Learn "KeQueryTickCount") where
/// the kernel exports both as routines: Wine 8.0's ntoskrnl, which lacks the first (the
/// hosted drill, docs/windows.md; its `KeQueryInterruptTime` returns the tick count in
/// milliseconds, not 100 ns units, so it is not used). The fallback counts time asleep as
/// uptime; no supported Windows takes it. With no clock, `now` reads 0: no uptime ever
/// passes, so nothing is recorded healthy (never falsely healthy). PASSIVE_LEVEL,
/// `DriverEntry`, before any `now`.
pub fn init_clock() {
    let unbiased = system_routine("KeQueryUnbiasedInterruptTime");
    if !unbiased.is_null() {
        UNBIASED.store(unbiased, Ordering::Release);
        return;
    }
    let (ticks, increment) = (
        system_routine("KeQueryTickCount"),
        system_routine("KeQueryTimeIncrement"),
    );
    if ticks.is_null() || increment.is_null() {
        return;
    }
    // SAFETY: the kernel's KeQueryTimeIncrement, `ULONG (VOID)` (TimeIncrementFn, wdm.h); a
    // function pointer and a data pointer have the same size here.
    let increment: TimeIncrementFn =
        unsafe { core::mem::transmute::<*mut c_void, TimeIncrementFn>(increment) };
    // SAFETY: no arguments, PASSIVE_LEVEL (any IRQL ≤ DISPATCH, Microsoft Learn).
    TICK_100NS.store(u64::from(unsafe { increment() }), Ordering::Release);
    TICKS.store(ticks, Ordering::Release);
}

/// The (unbiased) interrupt time in 100 ns units (any IRQL ≤ DISPATCH_LEVEL); 0 without a
/// clock.
pub fn now() -> u64 {
    let f = UNBIASED.load(Ordering::Acquire);
    if !f.is_null() {
        // SAFETY: the kernel's KeQueryUnbiasedInterruptTime, `ULONGLONG (VOID)`
        // (UnbiasedInterruptTimeFn, wdm.h); pointers to data and code have the same size.
        let f: UnbiasedInterruptTimeFn =
            unsafe { core::mem::transmute::<*mut c_void, UnbiasedInterruptTimeFn>(f) };
        // SAFETY: callable at any IRQL, no arguments (Microsoft Learn,
        // "KeQueryUnbiasedInterruptTime").
        return unsafe { f() };
    }
    let f = TICKS.load(Ordering::Acquire);
    if f.is_null() {
        return 0;
    }
    // SAFETY: the kernel's KeQueryTickCount, `VOID (PLARGE_INTEGER)` (TickCountFn, wdm.h).
    let f: TickCountFn = unsafe { core::mem::transmute::<*mut c_void, TickCountFn>(f) };
    let mut count = LARGE_INTEGER::default();
    // SAFETY: `count` is a live local the routine writes; callable at any IRQL.
    unsafe { f(&mut count) };
    // SAFETY: the routine wrote the 64-bit count.
    let ticks = u64::try_from(unsafe { count.QuadPart }).unwrap_or(0);
    ticks.saturating_mul(TICK_100NS.load(Ordering::Acquire))
}

/// What the canary writes and reads back.
const CANARY: &[u8; 16] = b"failsafe canary\n";

/// The canary: evidence that a create, a write, a flush and a read through the whole
/// file-system stack, this filter included, complete. `canary.tmp`, deleted on close, is
/// inside the driver's own directory, which content can audit but never block
/// (`crate::guard`), and is opened relative to the directory the driver holds, following no
/// reparse point (`nt::open_at`: an overwrite and a delete-on-close as SYSTEM must never
/// reach another file). A filter that hangs creates never gets past the open, so the
/// health check never records healthy. PASSIVE_LEVEL.
fn canary() -> Result<(), NTSTATUS> {
    debug_assert_passive!();
    let mut name = Wide::from_str("canary.tmp").ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
    let h = open_at(
        storedir::handle(),
        &mut name,
        Child::Canary,
        GENERIC_READ | GENERIC_WRITE | DELETE,
        FILE_OVERWRITE_IF,
        FILE_NON_DIRECTORY_FILE | FILE_WRITE_THROUGH | FILE_DELETE_ON_CLOSE,
    )?;
    write_at(&h, 0, CANARY)?;
    flush(&h)?;
    let mut back = [0u8; 16];
    let n = read_at(&h, 0, &mut back)?;
    if n != back.len() || &back != CANARY {
        return Err(STATUS_DATA_ERROR);
    }
    Ok(())
}

/// Seconds of (unbiased) uptime since the content became active, and the window.
fn uptime() -> Option<(u64, u64)> {
    let at = now();
    with_state(|s| {
        s.as_ref().map(|r| {
            let up = at.saturating_sub(r.active_since) / 10_000_000;
            (up, u64::from(r.cfg.healthy_after_secs))
        })
    })
}

/// The health check (PASSIVE_LEVEL, the driver's thread): content stayed up
/// `healthy_after` seconds; the canary's result is the evidence, recorded either way;
/// healthy only if it passed.
pub fn work() {
    if let Some((up, window)) = uptime()
        && up < window
    {
        // Woken early (sleep), or content swapped in live since the timer was set: wait
        // for the rest of the active content's window.
        if rearm_rest(window.saturating_sub(up)) {
            return; // WORK_IDLE stays reset: the next run of this item sets it
        }
    } else {
        let canary = canary().map_err(io);
        let at = now();
        let rest = with_state(|s| {
            if let Some(r) = s.as_mut()
                && let Some(act) = r.activation
            {
                let uptime = at.saturating_sub(r.active_since) / 10_000_000;
                let window = u64::from(r.cfg.healthy_after_secs);
                if uptime < window {
                    // A live swap during the canary: the new content's window has not
                    // passed; this evidence was about the old content.
                    return Some(window.saturating_sub(uptime));
                }
                let evidence = HealthEvidence {
                    uptime_secs: u32::try_from(uptime).unwrap_or(u32::MAX),
                    canary,
                };
                // Built on the record as it is now (a responder may have changed it).
                if r.durable.refresh().is_ok()
                    && let Ok(Some(check)) = r.durable.health(&act, &evidence, &r.cfg)
                {
                    crate::etw::health_recorded(
                        check.version,
                        check.boot,
                        check.uptime_secs,
                        check.canary.map_err(|e| e.code),
                        check.passed,
                    );
                    super::mirror::write_locked(r);
                }
            } else if let Some(r) = s.as_mut()
                && let Some(b) = r.build
            {
                // No content active: the check is the build's own.
                let uptime = at.saturating_sub(r.active_since) / 10_000_000;
                let evidence = HealthEvidence {
                    uptime_secs: u32::try_from(uptime).unwrap_or(u32::MAX),
                    canary,
                };
                if r.durable.refresh().is_ok()
                    && let Ok(Some(check)) = r.durable.build_health(&b, &evidence, &r.cfg)
                {
                    crate::etw::health_recorded(
                        check.version,
                        check.boot,
                        check.uptime_secs,
                        check.canary.map_err(|e| e.code),
                        check.passed,
                    );
                    super::mirror::write_locked(r);
                }
            }
            // Done, with the record lock held: a live swap (which re-arms under the same
            // lock) sees either queued (and this item not yet here, so it re-arms itself
            // above) or idle with the event set (and arms afresh).
            let _ = HEALTH.compare_exchange(
                HEALTH_QUEUED,
                HEALTH_IDLE,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            // SAFETY: initialized notification event in static storage.
            let _ = unsafe { KeSetEvent(WORK_IDLE.ptr(), 0, 0) };
            None
        });
        match rest {
            None => return,
            Some(rest) if rearm_rest(rest) => return,
            Some(_) => {}
        }
    }
    // SAFETY: initialized notification event in static storage.
    let _ = unsafe { KeSetEvent(WORK_IDLE.ptr(), 0, 0) };
}

/// From the health check: sets the timer for the `rest` of the window and moves queued →
/// armed. `false` if teardown stopped the machinery meanwhile (the timer is then taken
/// back and its DPC flushed; the caller sets `WORK_IDLE`). The timer is set before the
/// state says armed, so teardown never sees armed without a timer it can cancel. (Should
/// the timer, a second or more away, fire before the compare-exchange, its DPC finds the
/// state queued and does nothing: this start then never records healthy, which costs it
/// nothing unless it later ends uncleanly.)
fn rearm_rest(rest: u64) -> bool {
    set_timer(rest.max(1));
    if HEALTH
        .compare_exchange(
            HEALTH_QUEUED,
            HEALTH_ARMED,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_ok()
    {
        return true;
    }
    // SAFETY: initialized timer; cancelling is harmless if it already fired (the DPC then
    // finds the state stopped and queues nothing).
    let _ = unsafe { KeCancelTimer(TIMER.ptr()) };
    // SAFETY: PASSIVE_LEVEL (the driver's thread); waits for a DPC of that timer, if queued.
    unsafe { KeFlushQueuedDpcs() };
    false
}

/// A live swap installed new content: its health window starts now. Called with the
/// record lock held (`with_state`), so the health check is idle (armed here), armed (the
/// timer is set again for the whole window), or queued and not yet in its final locked
/// step (it then finds the new content's window not passed and re-arms itself).
/// PASSIVE_LEVEL.
pub fn rearm_locked(healthy_after_secs: u32) {
    debug_assert_passive!();
    if !worker::running() {
        return;
    }
    match HEALTH.compare_exchange(
        HEALTH_IDLE,
        HEALTH_ARMED,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => {
            // SAFETY: initialized notification event; reset before the timer can fire.
            let _ = unsafe { KeResetEvent(WORK_IDLE.ptr()) };
            set_timer(u64::from(healthy_after_secs));
        }
        Err(HEALTH_ARMED) => set_timer(u64::from(healthy_after_secs)),
        Err(_) => {}
    }
}

/// Stops the health machinery: afterwards no health check is queued or running and none
/// will be. PASSIVE_LEVEL, before the driver's thread stops.
pub fn quiesce() {
    debug_assert_passive!();
    let was = HEALTH.swap(HEALTH_STOPPED, Ordering::AcqRel);
    // SAFETY: initialized timer (DriverEntry initializes it before anything can fail);
    // cancelling a timer that is not set is harmless.
    let _ = unsafe { KeCancelTimer(TIMER.ptr()) };
    // SAFETY: PASSIVE_LEVEL; waits until every queued DPC, ours included, has run.
    unsafe { KeFlushQueuedDpcs() };
    if was == HEALTH_ARMED {
        // No health check is queued (the DPC moves armed → queued before posting, and now
        // finds the state stopped; a re-arming health check set the timer before the state):
        // nobody else signals the event.
        // SAFETY: initialized notification event.
        let _ = unsafe { KeSetEvent(WORK_IDLE.ptr(), 0, 0) };
    }
    // Signaled unless a health check is queued or running; then wait for it to end.
    wait_forever(WORK_IDLE.ptr().cast());
}

/// Closes this start's attempt as clean: its content's (and build's with it), or, without
/// content, its build's; nothing for a safe start. For
/// `why` (`Close::Stop` also refuses later live changes). PASSIVE_LEVEL.
pub fn close_clean(why: Close) {
    with_state(|s| {
        if let Some(r) = s.as_mut()
            && r.close(why)
        {
            super::mirror::write_locked(r);
        }
    });
}

/// The system shuts down (the Filter Manager's `IRP_MJ_SHUTDOWN` pre-operation callback,
/// PASSIVE_LEVEL; once per attached volume: the first closes, the rest find nothing): an
/// orderly shutdown before healthy is not charged, and no live change follows it. Its own
/// frame: the record's write (and the registry mirror's) stays off the callback's.
#[inline(never)]
pub fn shutdown() {
    close_clean(Close::Stop);
}

/// A power transition, on the driver's thread (PASSIVE_LEVEL): `false`, a sleep or
/// hibernation is imminent (this start's attempt closed clean, remembered); `true`, back
/// in the working state (the attempt reopened and its health window armed afresh). See
/// `running::Running::power`. Signals `POWER_DONE` for a power callback waiting for it.
pub fn power(wake: bool) {
    let p = if wake { Power::Wake } else { Power::Sleep };
    with_state(|s| {
        if let Some(r) = s.as_mut() {
            let before = r.durable.seq();
            if r.power(p) {
                r.active_since = now();
                rearm_locked(r.cfg.healthy_after_secs);
            }
            // Sleep closes the attempt and wake reopens it: the record changed.
            if r.durable.seq() != before {
                super::mirror::write_locked(r);
            }
        }
    });
    // SAFETY: initialized notification event in static storage.
    let _ = unsafe { KeSetEvent(POWER_DONE.ptr(), 0, 0) };
}
