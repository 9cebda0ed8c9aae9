//! Every global of the driver, in one place, with who writes it, who reads it and at which
//! IRQL. (The Filter Manager layer's own two, the filter handle and the active rule set,
//! live in `flt.rs` because the callbacks that read them are generic over the host.)
//!
//! | global | written | read | IRQL |
//! |---|---|---|---|
//! | `TIMER`, `DPC` | `DriverEntry` (init, arm), teardown (cancel) | the kernel | PASSIVE; DPC at DISPATCH |
//! | `HEALTH` | arm (PASSIVE), DPC (DISPATCH) | teardown | any |
//! | `WORK_IDLE` | arm (reset), work item / teardown (set) | teardown (wait) | PASSIVE; set at DISPATCH allowed |
//! | `STATE_LOCK`, `STATE` | `DriverEntry`, health work item, shutdown, control requests, teardown | same | PASSIVE (control requests inside a critical region) |
//! | `DEVICE`, `WORK_ITEM`, `SHUTDOWN_REGISTERED`, `PROCESS_NOTIFY` | `DriverEntry`, teardown | DPC (`WORK_ITEM`), teardown | PASSIVE; DPC reads `WORK_ITEM` at DISPATCH |
//! | `DIR` | `DriverEntry` (once, before any reader) | health work item | PASSIVE |
//! | `LAST_REPORT` | callbacks | callbacks | ≤ APC |
//! | `control::{CONTROL, LINKED, GATE}` (in `control.rs`) | `DriverEntry` (create), teardown (remove) | control dispatch routines | PASSIVE |
//! | `flt::{ACTIVE}` | `DriverEntry` (publish), live swap under `STATE_LOCK` (replace), unload (take) | callbacks (`with_on`, no lock) | ≤ APC; the swap PASSIVE |
//! | `flt::{EVENTS, EVENTS_BUSY}` | callbacks (try only), control requests, teardown | control requests | ≤ APC |
//! | `VOLUME_ITEM` | `DriverEntry` (setup), teardown | callbacks, instance setup (`dosnames::queue`) | ≤ APC |
//! | `VOLUME_WORK`, `VOLUME_IDLE` | `dosnames::queue` (≤ APC), volume work item, teardown | same | ≤ APC; PASSIVE for the wait |
//! | `LAST_VOLUME_TRY` | volume work item | `dosnames::queue` | ≤ APC |
//!
//! Kernel objects (`KTIMER`, `KDPC`, `KEVENT`) live in the image's data section, which is
//! non-paged, as objects used at DISPATCH_LEVEL must be.

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicU64};

use failsafe_loader::state::machine::{Activation, BuildActivation, Env};
use failsafe_loader::state::{Config, Durable};
use failsafe_loader::trust::Trust;

use super::ffi::{DEVICE_OBJECT, KDPC, KEVENT, KTIMER};
use super::medium::KernelMedium;
use super::nt::Wide;
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

/// Health work: not armed, armed (timer set), queued (the DPC queued the work item, which
/// has not finished), stopped (teardown: nothing may be armed or queued again). The DPC
/// moves armed → queued at most once per arming; the work item may move queued → armed
/// (re-armed after sleep) unless teardown stopped it first.
pub static HEALTH: AtomicU8 = AtomicU8::new(HEALTH_IDLE);
pub const HEALTH_IDLE: u8 = 0;
pub const HEALTH_ARMED: u8 = 1;
pub const HEALTH_QUEUED: u8 = 2;
pub const HEALTH_STOPPED: u8 = 3;

/// Notification event, signaled whenever no health work item is queued or running: reset
/// when the timer is armed; set by the work item when it ends, or by teardown when the
/// timer was cancelled before its DPC ran.
pub static WORK_IDLE: Kobj<KEVENT> = Kobj::new();

/// Synchronization event used as a mutex around `STATE` (record writes from `DriverEntry`,
/// the health work item, the shutdown notification and teardown). PASSIVE_LEVEL only.
pub static STATE_LOCK: Kobj<KEVENT> = Kobj::new();

/// What the health and shutdown events need after the start.
#[derive(Debug)]
pub struct Running {
    /// The durable record.
    pub durable: Durable<KernelMedium>,
    /// The attempt this start activated: the only one its health check and shutdown may
    /// close (`None`: nothing active; then `build` is what they close).
    pub activation: Option<Activation>,
    /// This start's attempt of the driver build (issue 20): closed by the health check and
    /// shutdown while no content is active (`None`: a safe start, which made none).
    pub build: Option<BuildActivation>,
    /// The configuration the start used.
    pub cfg: Config,
    /// Interrupt time (100 ns) when the content became active (at the start or at a live
    /// swap), for the uptime evidence.
    pub active_since: u64,
    /// The content store, for live activations.
    pub store: KernelStore,
    /// The environment of this start (Safe Mode, write filters), for live activations.
    pub env: Env,
    /// The keys content must be signed with (as read at the start).
    pub trust: Trust,
    /// The active content came through the control channel, not the start.
    pub live: bool,
    /// The attempt was closed for an orderly stop (unload, shutdown): no live change may
    /// open another.
    pub closing: bool,
}

/// The record after the start, for the health and shutdown events.
pub struct StateSlot(pub UnsafeCell<Option<Running>>);
// SAFETY: only touched with STATE_LOCK held (`super::health::with_state`).
unsafe impl Sync for StateSlot {}
pub static STATE: StateSlot = StateSlot(UnsafeCell::new(None));

/// The control device (shutdown notification, work item owner) and the work item.
pub static DEVICE: AtomicPtr<DEVICE_OBJECT> = AtomicPtr::new(core::ptr::null_mut());
pub static WORK_ITEM: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());
pub static SHUTDOWN_REGISTERED: AtomicBool = AtomicBool::new(false);
pub static PROCESS_NOTIFY: AtomicBool = AtomicBool::new(false);

/// The driver's directory as configured (`ContentDirectory`), for the health canary.
pub struct DirSlot(pub UnsafeCell<Option<Wide>>);
// SAFETY: written once in `DriverEntry` before the timer is armed (the only reader is the
// health work item, which the timer starts) and cleared by teardown after the work item
// has finished.
unsafe impl Sync for DirSlot {}
pub static DIR: DirSlot = DirSlot(UnsafeCell::new(None));

/// Interrupt time (100 ns) of the last audit line, for rate limiting.
pub static LAST_REPORT: AtomicU64 = AtomicU64::new(0);

/// The work item that learns volumes' DOS names (`dosnames`), allocated for `DEVICE`.
/// Null when its allocation failed: paths then stay in device form.
pub static VOLUME_ITEM: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());
/// That work item: idle, queued (queued or running), stopped (teardown).
pub static VOLUME_WORK: AtomicU8 = AtomicU8::new(VOLUME_WORK_IDLE);
pub const VOLUME_WORK_IDLE: u8 = 0;
pub const VOLUME_WORK_QUEUED: u8 = 1;
pub const VOLUME_WORK_STOPPED: u8 = 2;
/// Notification event, signaled whenever the volume work item is neither queued nor
/// running (reset when it is queued, set by it as it ends).
pub static VOLUME_IDLE: Kobj<KEVENT> = Kobj::new();
/// Interrupt time (100 ns) when the volume work item last ran; 0: never.
pub static LAST_VOLUME_TRY: AtomicU64 = AtomicU64::new(0);
