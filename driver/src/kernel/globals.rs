//! Every global of the driver, in one place, with who writes it, who reads it and at which
//! IRQL. (The Filter Manager layer's own two, the filter handle and the active rule set,
//! live in `flt/` because the callbacks that read them are generic over the host.)
//!
//! | global | written | read | IRQL |
//! |---|---|---|---|
//! | `TIMER`, `DPC` | `DriverEntry` (init, arm), teardown (cancel) | the kernel | PASSIVE; DPC at DISPATCH |
//! | `HEALTH` | arm (PASSIVE), DPC (DISPATCH) | teardown | any |
//! | `WORK_IDLE` | arm (reset), health check / teardown (set) | teardown (wait) | PASSIVE; set at DISPATCH allowed |
//! | `STATE_LOCK`, `STATE` | `DriverEntry`, the driver's thread (health check, control requests, power jobs), shutdown, teardown | same | PASSIVE |
//! | `PROCESS_NOTIFY` | `DriverEntry`, teardown | teardown | PASSIVE |
//! | `POWER_DONE` | power callback (reset), the driver's thread (set) | power callback (wait) | ≤ DISPATCH; wait PASSIVE |
//! | `worker::{JOBS, WAKE, THREAD}` (in `worker.rs`) | `DriverEntry` (start), producers (post), teardown (stop) | the driver's thread | post ≤ DISPATCH |
//! | `power::{OBJECT, REGISTRATION}` (in `power.rs`) | `DriverEntry`, teardown | teardown | PASSIVE |
//! | `storedir::STORE_DIR` (in `storedir.rs`) | `DriverEntry` (once, before any reader), teardown (closed last) | the record, the store, the canary (handle copies) | PASSIVE |
//! | `LAST_REPORT` | callbacks | callbacks | ≤ APC |
//! | `control::{CONTROL, LINKED, GATE, BUSY, SLOT}` (in `control.rs`) | `DriverEntry` (create), dispatch (one request in), the driver's thread (served), teardown (remove) | control dispatch routines, the driver's thread | PASSIVE |
//! | `flt::{ACTIVE}` | `DriverEntry` (publish), live swap under `STATE_LOCK` (replace), unload (take) | callbacks (`with_on`, no lock) | ≤ APC; the swap PASSIVE |
//! | `flt::{EVENTS, EVENTS_BUSY}` | callbacks (try only), control requests, teardown | control requests | ≤ APC |
//! | `VOLUME_WORK`, `VOLUME_IDLE` | `dosnames::queue` (≤ APC), volume-name round, teardown | same | ≤ APC; PASSIVE for the wait |
//! | `LAST_VOLUME_TRY` | volume-name round | `dosnames::queue` | ≤ APC |
//!
//! Kernel objects (`KTIMER`, `KDPC`, `KEVENT`) live in the image's data section, which is
//! non-paged, as objects used at DISPATCH_LEVEL must be.

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64};

use super::ffi::{KDPC, KEVENT, KTIMER};
use super::medium::KernelMedium;
use super::store::KernelStore;

/// A kernel object in static storage, initialized in `DriverEntry` before any use.
pub struct Kobj<T>(UnsafeCell<MaybeUninit<T>>);

// SAFETY: kernel objects are only used through the kernel routines that synchronize them
// (KeSetTimer, KeSetEvent, KeWaitForSingleObject…), never read or written as Rust values.
unsafe impl<T> Sync for Kobj<T> {}

impl<T> Kobj<T> {
    pub const fn new() -> Self {
        Kobj(UnsafeCell::new(MaybeUninit::uninit()))
    }
    /// The object's address, for the kernel routines.
    pub fn ptr(&self) -> *mut T {
        self.0.get().cast()
    }
}

/// The health timer and its DPC.
pub static TIMER: Kobj<KTIMER> = Kobj::new();
pub static DPC: Kobj<KDPC> = Kobj::new();

/// Health work: not armed, armed (timer set), queued (the DPC posted the health check, which
/// has not finished), stopped (teardown: nothing may be armed or queued again). The DPC
/// moves armed → queued at most once per arming; the health check may move queued → armed
/// (re-armed after sleep) unless teardown stopped it first.
pub static HEALTH: AtomicU8 = AtomicU8::new(HEALTH_IDLE);
pub const HEALTH_IDLE: u8 = 0;
pub const HEALTH_ARMED: u8 = 1;
pub const HEALTH_QUEUED: u8 = 2;
pub const HEALTH_STOPPED: u8 = 3;

/// Notification event, signaled whenever no health check is queued or running: reset
/// when the timer is armed; set by the health check when it ends, or by teardown when the
/// timer was cancelled before its DPC ran.
pub static WORK_IDLE: Kobj<KEVENT> = Kobj::new();

/// Synchronization event used as a mutex around `STATE` (record writes from `DriverEntry`,
/// the driver's thread, the shutdown callback and teardown). PASSIVE_LEVEL only.
pub static STATE_LOCK: Kobj<KEVENT> = Kobj::new();

/// What the health, shutdown and control events need after the start (`crate::running`,
/// portable and unit-tested).
pub type Running = crate::running::Running<KernelMedium, KernelStore>;

/// The record after the start, for the health and shutdown events.
pub struct StateSlot(pub UnsafeCell<Option<Running>>);
// SAFETY: only touched with STATE_LOCK held (`super::health::with_state`).
unsafe impl Sync for StateSlot {}
pub static STATE: StateSlot = StateSlot(UnsafeCell::new(None));

/// The process-notify routine is registered.
pub static PROCESS_NOTIFY: AtomicBool = AtomicBool::new(false);

/// Notification event: the driver's thread finished a power job (`health::power`); the
/// power callback waits for it before a sleep (`power.rs`).
pub static POWER_DONE: Kobj<KEVENT> = Kobj::new();

/// Interrupt time (100 ns) of the last audit line, for rate limiting.
pub static LAST_REPORT: AtomicU64 = AtomicU64::new(0);

/// The volume-name round (`dosnames`, a job of the driver's thread): idle, queued (queued
/// or running), stopped (teardown).
pub static VOLUME_WORK: AtomicU8 = AtomicU8::new(VOLUME_WORK_IDLE);
pub const VOLUME_WORK_IDLE: u8 = 0;
pub const VOLUME_WORK_QUEUED: u8 = 1;
pub const VOLUME_WORK_STOPPED: u8 = 2;
/// Notification event, signaled whenever the volume-name round is neither queued nor
/// running (reset when it is queued, set by it as it ends).
pub static VOLUME_IDLE: Kobj<KEVENT> = Kobj::new();
/// Interrupt time (100 ns) when the volume-name round last ran; 0: never.
pub static LAST_VOLUME_TRY: AtomicU64 = AtomicU64::new(0);
