//! Where the callbacks' path buffers live, and how much stack a callback may use (issue
//! 19, finding 6). IRQL ≤ APC_LEVEL (the callbacks).
//!
//! The callbacks run on their caller's stack: the SMB server's, a nested create of another
//! filter's, anything's. So:
//! - at entry a callback checks `IoGetRemainingStackSize` (wdm.h: an inline routine over
//!   `IoGetStackLimits`, written out here) and passes the operation unevaluated below
//!   [`ENTRY_MIN`] bytes, counted in [`SKIPPED_LOW_STACK`];
//! - the converted path, the rename or link target and the process image (2.5 KiB) are
//!   written into a [`Scratch`] taken from a pool allocated once at `DriverEntry`
//!   ([`init`]: four slots per processor, at least 64), each slot taken with one atomic
//!   bit operation and released on drop, inside a critical region so that a suspended
//!   thread cannot hold one;
//! - only when every slot is taken (a pool starved by preempted holders) is a scratch
//!   placed on the stack, in a frame of its own, and only with [`FALLBACK_MIN`] bytes to
//!   spare; otherwise the operation passes unevaluated, counted in [`SKIPPED_LOW_STACK`].
//!
//! The PE test (tests/tests/pe.rs) holds the callbacks' own chains to `CALLBACK_DEPTH`
//! without the on-stack fallback's frame and to `FALLBACK_DEPTH` with it; the two
//! thresholds below leave those plus the file system's share of the stack.

use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, Ordering};

// wdm.h (IoGetStackLimits: `(PULONG_PTR LowLimit, PULONG_PTR HighLimit)`, IRQL ≤ APC_LEVEL;
// KeQueryActiveProcessorCountEx: `ULONG (USHORT GroupNumber)`), both checked against the
// WDK 10.0.22621 km/wdm.h; windows-sys 0.61.2 Wdk::System::SystemServices.
use windows_sys::Wdk::System::SystemServices::{
    IoGetStackLimits, KeEnterCriticalRegion, KeLeaveCriticalRegion, KeQueryActiveProcessorCountEx,
};

use crate::active::Published;
use crate::proctable::MAX_UNITS;
use crate::volumes::MAX_PATH_UNITS;

/// Least remaining stack for a callback to evaluate at all (bytes): its own deepest chain
/// (at most 3 KiB, the PE test's `CALLBACK_DEPTH`) plus 5 KiB for what it calls below it:
/// the Filter Manager's name query, which may go down into the file system (whose own
/// recursion guards post work to a worker when less than 3.5 KiB remain: FastFat's
/// `OVERFLOW_READ_THRESHHOLD`, 0xE00, Windows-driver-samples `filesys/fastfat`). The x64
/// kernel stack is 24 KiB (`KERNEL_STACK_SIZE`, wdm.h), so a callback gives up only on a
/// caller that already used two thirds of it.
pub(super) const ENTRY_MIN: usize = 8 * 1024;
/// Least remaining stack to place a scratch on the stack when the pool is exhausted:
/// [`ENTRY_MIN`] plus the fallback frame (the PE test's `FALLBACK_DEPTH` less
/// `CALLBACK_DEPTH`: 3 KiB).
pub(super) const FALLBACK_MIN: usize = ENTRY_MIN + 3 * 1024;

/// Operations passed unevaluated for want of stack (entry below [`ENTRY_MIN`], or a full
/// pool with less than [`FALLBACK_MIN`]).
pub static SKIPPED_LOW_STACK: AtomicU64 = AtomicU64::new(0);
/// Operations evaluated with a scratch on the stack (the pool was exhausted).
pub static SCRATCH_ON_STACK: AtomicU64 = AtomicU64::new(0);

/// Units of one operation's buffers: the path and the rename or link target (both in the
/// form the rules see, `text::rule_form`) and the process image.
const SLOT_UNITS: usize = MAX_PATH_UNITS + MAX_PATH_UNITS + MAX_UNITS;

/// One operation's buffers, carved out of a slot.
pub(super) struct Scratch<'a> {
    pub(super) path: &'a mut [u16],
    pub(super) target: &'a mut [u16],
    pub(super) image: &'a mut [u16],
}

impl<'a> Scratch<'a> {
    fn of(slot: &'a mut [u16]) -> Self {
        let (path, rest) = slot.split_at_mut(MAX_PATH_UNITS.min(slot.len()));
        let (target, image) = rest.split_at_mut(MAX_PATH_UNITS.min(rest.len()));
        Scratch {
            path,
            target,
            image,
        }
    }
}

/// The slots (one allocation of `SLOT_UNITS` units each) and their busy bits (64 a word).
struct Pool {
    units: UnsafeCell<Vec<u16>>,
    busy: Vec<AtomicU64>,
}

// SAFETY: a slot's units are reached only while its busy bit is set by the one `with` call
// that set it (`take`), through a slice of that slot alone; the vector itself is never
// resized or moved after `init`.
unsafe impl Sync for Pool {}
// SAFETY: the pool owns plain buffers; freed by whichever thread unloads.
unsafe impl Send for Pool {}

static POOL: Published<Pool> = Published::new();

/// Allocates the pool. `DriverEntry`, PASSIVE_LEVEL, before `FltStartFiltering`. Without
/// memory there is no pool and every operation takes the on-stack path (with its stack
/// check).
pub fn init() {
    // ALL_PROCESSOR_GROUPS (0xFFFF, wdm.h): every active processor of every group.
    // SAFETY: no pointer arguments; any IRQL.
    let cpus = usize::try_from(unsafe { KeQueryActiveProcessorCountEx(0xFFFF) }).unwrap_or(1);
    let n = cpus.saturating_mul(4).clamp(64, 1024);
    let (mut units, mut busy) = (Vec::new(), Vec::new());
    let total = n.saturating_mul(SLOT_UNITS);
    if units.try_reserve_exact(total).is_err() || busy.try_reserve_exact(n.div_ceil(64)).is_err() {
        return;
    }
    units.resize(total, 0u16);
    busy.resize_with(n.div_ceil(64), || AtomicU64::new(0));
    if let Ok(pool) = crate::active::try_box(Pool {
        units: UnsafeCell::new(units),
        busy,
    }) {
        let _ = POOL.publish(pool);
    }
}

/// Frees the pool (teardown, after `FltUnregisterFilter`).
///
/// # Safety
/// No callback runs or will run.
pub unsafe fn free() {
    // SAFETY: contract above: no `with` of the pool runs or starts.
    drop(unsafe { POOL.take() });
}

/// Bytes of stack left below the current frame (`IoGetRemainingStackSize`, wdm.h: the
/// address of a local less the stack's low limit).
pub(super) fn remaining() -> usize {
    let (mut low, mut high) = (0usize, 0usize);
    // SAFETY: two live locals the routine writes; IRQL ≤ APC_LEVEL (the callbacks).
    unsafe { IoGetStackLimits(&mut low, &mut high) };
    let here = core::ptr::from_ref(&low).addr();
    here.saturating_sub(low)
}

/// Runs `f` with a scratch: a slot of the pool (tried from `cpu`'s place), else one on the
/// stack if [`FALLBACK_MIN`] bytes remain; `None` (and counted) when neither. The slot is
/// held inside a critical region: a thread suspended by user mode cannot hold one.
pub(super) fn with<R>(cpu: usize, f: impl FnOnce(&mut Scratch<'_>) -> R) -> Option<R> {
    let mut f = Some(f);
    // SAFETY: IRQL ≤ APC_LEVEL (the callbacks); paired below.
    unsafe { KeEnterCriticalRegion() };
    let pooled = POOL.with(|pool| {
        let i = take(pool, cpu)?;
        let start = i.checked_mul(SLOT_UNITS)?;
        // SAFETY: `units` is never resized after `init`; the pointer is only offset within
        // its `busy.len() * 64 >= slots` slots.
        let base = unsafe { (*pool.units.get()).as_mut_ptr() };
        let r = if start.checked_add(SLOT_UNITS)? <= slot_capacity(pool) {
            // SAFETY: slot `i` lies inside the allocation (checked) and its busy bit was set
            // by `take` for this call alone: this slice is the only reference to it until
            // `release` below.
            let slot =
                unsafe { core::slice::from_raw_parts_mut(base.wrapping_add(start), SLOT_UNITS) };
            f.take().map(|f| f(&mut Scratch::of(slot)))
        } else {
            None
        };
        release(pool, i);
        r
    });
    // SAFETY: entered above, on this thread.
    unsafe { KeLeaveCriticalRegion() };
    if let Some(r) = pooled.flatten() {
        return Some(r);
    }
    let f = f.take()?;
    if remaining() < FALLBACK_MIN {
        SKIPPED_LOW_STACK.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    SCRATCH_ON_STACK.fetch_add(1, Ordering::Relaxed);
    Some(on_stack(f))
}

/// Units the pool's allocation holds.
fn slot_capacity(pool: &Pool) -> usize {
    // SAFETY: a shared read of the vector's length, which no one changes after `init`.
    unsafe { (*pool.units.get()).len() }
}

/// The on-stack scratch, in a frame of its own (the PE test measures it apart).
#[inline(never)]
fn on_stack<R>(f: impl FnOnce(&mut Scratch<'_>) -> R) -> R {
    let mut units = [0u16; SLOT_UNITS];
    f(&mut Scratch::of(&mut units))
}

/// Sets a free slot's busy bit, searching from `cpu`'s four slots on; its index.
fn take(pool: &Pool, cpu: usize) -> Option<usize> {
    let n = slot_capacity(pool).checked_div(SLOT_UNITS)?;
    let start = cpu.saturating_mul(4).checked_rem(n)?;
    (0..n).find_map(|k| {
        let i = start.checked_add(k)?.checked_rem(n)?;
        let word = pool.busy.get(i.checked_div(64)?)?;
        let bit = 1u64.checked_shl(u32::try_from(i.checked_rem(64)?).ok()?)?;
        (word.fetch_or(bit, Ordering::Acquire) & bit == 0).then_some(i)
    })
}

/// Clears slot `i`'s busy bit.
fn release(pool: &Pool, i: usize) {
    let word = i.checked_div(64).and_then(|w| pool.busy.get(w));
    let bit = i
        .checked_rem(64)
        .and_then(|b| u32::try_from(b).ok())
        .and_then(|b| 1u64.checked_shl(b));
    if let (Some(word), Some(bit)) = (word, bit) {
        word.fetch_and(!bit, Ordering::Release);
    }
}
