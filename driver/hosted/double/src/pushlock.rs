//! Push locks: `FltInitializePushLock`, `FltAcquirePushLockShared`,
//! `FltAcquirePushLockExclusive`, `FltReleasePushLock`, `FltDeletePushLock` (Microsoft
//! Learn, each "... function (fltkernel.h)"). Wine's versions are stubs and
//! `FltAcquirePushLockShared` is not exported at all (docs/windows.md, "What Wine 8.0 lacks").
//!
//! The lock lives in the caller's `EX_PUSH_LOCK` (one pointer-sized word): bits 0–31 count
//! shared owners, bits 32–47 count threads waiting for exclusive access, bit 63 marks an
//! exclusive owner. As documented: shared access is granted at once unless the lock is
//! owned exclusively or an exclusive waiter exists; exclusive access waits for every
//! owner; locks are not recursive ("If the caller already has acquired the push lock for
//! exclusive or shared access, the thread will hang" — the double reports the attempt and
//! then hangs as documented). Waiting yields the processor (PASSIVE_LEVEL under Wine).
//!
//! Verifier checks: use before `FltInitializePushLock` or after `FltDeletePushLock`,
//! release of a lock not held, delete of a held lock, a second initialize; at the driver's
//! unload, any lock inside its image still initialized (`filter::unload_check`).

use core::ffi::c_void;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::ffi;
use crate::kit;
use crate::verify::{Code, violation};

const EXCLUSIVE: usize = 1 << 63;
const WAITER: usize = 1 << 32;
const WAITERS: usize = 0xFFFF << 32;
const READERS: usize = 0xFFFF_FFFF;

/// Locks initialized and not deleted (their addresses), with their exclusive owner.
const TRACKED: usize = 64;
struct Tracked {
    addr: AtomicUsize,
    owner: AtomicUsize,
}
static LOCKS: [Tracked; TRACKED] = [const {
    Tracked {
        addr: AtomicUsize::new(0),
        owner: AtomicUsize::new(0),
    }
}; TRACKED];

fn tracked(lock: *mut usize) -> Option<&'static Tracked> {
    let a = lock.addr();
    LOCKS
        .iter()
        .find(|t| a != 0 && t.addr.load(Ordering::Acquire) == a)
}

fn word<'a>(lock: *mut usize) -> Option<&'a AtomicUsize> {
    if lock.is_null() || !lock.is_aligned() {
        return None;
    }
    // SAFETY: the caller's EX_PUSH_LOCK, a pointer-sized, aligned word it owns for the
    // lock's lifetime (FltInitializePushLock's contract); only push-lock routines touch
    // it, always atomically.
    Some(unsafe { AtomicUsize::from_ptr(lock) })
}

fn current_thread() -> usize {
    // SAFETY: no arguments; returns the current thread object.
    unsafe { ffi::KeGetCurrentThread() }.addr()
}

/// `FltInitializePushLock` (fltKernel.h: `VOID (PEX_PUSH_LOCK)`).
///
/// # Safety
/// Called by the driver with its lock word.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn FltInitializePushLock(lock: *mut usize) {
    let Some(w) = word(lock) else {
        violation(Code::PushLockUninitialized, [kit::n(lock.addr()), 0, 0]);
        return;
    };
    if tracked(lock).is_some() {
        violation(Code::PushLockReinitialized, [kit::n(lock.addr()), 0, 0]);
        return;
    }
    w.store(0, Ordering::Release);
    let a = lock.addr();
    if !LOCKS.iter().any(|t| {
        t.addr
            .compare_exchange(0, a, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }) {
        kit::log(c"push lock table full; not tracked:", kit::n(a));
    }
}

/// `FltDeletePushLock` (fltKernel.h: `VOID (PEX_PUSH_LOCK)`).
///
/// # Safety
/// Called by the driver with its lock word.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn FltDeletePushLock(lock: *mut usize) {
    let Some(t) = tracked(lock) else {
        violation(Code::PushLockUninitialized, [kit::n(lock.addr()), 1, 0]);
        return;
    };
    if let Some(w) = word(lock) {
        let v = w.load(Ordering::Acquire);
        if v != 0 {
            violation(
                Code::PushLockDeletedHeld,
                [kit::n(lock.addr()), kit::n(v), 0],
            );
        }
    }
    t.owner.store(0, Ordering::Release);
    t.addr.store(0, Ordering::Release);
}

/// `FltAcquirePushLockShared` (fltKernel.h: `VOID (PEX_PUSH_LOCK)`).
///
/// # Safety
/// Called by the driver with its lock word.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn FltAcquirePushLockShared(lock: *mut usize) {
    let (Some(w), t) = (word(lock), tracked(lock)) else {
        violation(Code::PushLockUninitialized, [kit::n(lock.addr()), 2, 0]);
        return;
    };
    if t.is_none() {
        violation(Code::PushLockUninitialized, [kit::n(lock.addr()), 2, 0]);
    }
    if t.is_some_and(|t| t.owner.load(Ordering::Acquire) == current_thread()) {
        violation(Code::PushLockRecursive, [kit::n(lock.addr()), 0, 0]);
    }
    let mut spins = 0u32;
    loop {
        let v = w.load(Ordering::Acquire);
        if v & (EXCLUSIVE | WAITERS) == 0
            && v & READERS < READERS
            && w.compare_exchange_weak(v, v.wrapping_add(1), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            return;
        }
        spins = backoff(spins);
    }
}

/// `FltAcquirePushLockExclusive` (fltKernel.h: `VOID (PEX_PUSH_LOCK)`).
///
/// # Safety
/// Called by the driver with its lock word.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn FltAcquirePushLockExclusive(lock: *mut usize) {
    let (Some(w), t) = (word(lock), tracked(lock)) else {
        violation(Code::PushLockUninitialized, [kit::n(lock.addr()), 3, 0]);
        return;
    };
    if t.is_none() {
        violation(Code::PushLockUninitialized, [kit::n(lock.addr()), 3, 0]);
    }
    let me = current_thread();
    if t.is_some_and(|t| t.owner.load(Ordering::Acquire) == me) {
        violation(Code::PushLockRecursive, [kit::n(lock.addr()), 1, 0]);
    }
    w.fetch_add(WAITER, Ordering::AcqRel);
    let mut spins = 0u32;
    loop {
        let v = w.load(Ordering::Acquire);
        if v & (EXCLUSIVE | READERS) == 0
            && w.compare_exchange_weak(
                v,
                (v.wrapping_sub(WAITER)) | EXCLUSIVE,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            if let Some(t) = t {
                t.owner.store(me, Ordering::Release);
            }
            return;
        }
        spins = backoff(spins);
    }
}

/// `FltReleasePushLock` (fltKernel.h: `VOID (PEX_PUSH_LOCK)`): releases shared or exclusive
/// access, whichever the caller holds.
///
/// # Safety
/// Called by the driver with its lock word.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn FltReleasePushLock(lock: *mut usize) {
    let (Some(w), t) = (word(lock), tracked(lock)) else {
        violation(Code::PushLockUninitialized, [kit::n(lock.addr()), 4, 0]);
        return;
    };
    loop {
        let v = w.load(Ordering::Acquire);
        let next = if v & EXCLUSIVE != 0 {
            v & !EXCLUSIVE
        } else if v & READERS != 0 {
            v.wrapping_sub(1)
        } else {
            violation(Code::PushLockNotHeld, [kit::n(lock.addr()), kit::n(v), 0]);
            return;
        };
        if v & EXCLUSIVE != 0
            && let Some(t) = t
        {
            t.owner.store(0, Ordering::Release);
        }
        if w.compare_exchange_weak(v, next, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return;
        }
    }
}

/// Spins a little, then yields: waiting threads run at PASSIVE_LEVEL in Wine.
fn backoff(spins: u32) -> u32 {
    if spins < 64 {
        core::hint::spin_loop();
    } else {
        kit::yield_now();
    }
    spins.saturating_add(1)
}

/// Push locks still initialized whose word lies in `[start, start + size)` (the driver's
/// image at unload: its static locks must all have been deleted).
pub fn live_in(start: *mut c_void, size: usize) -> u32 {
    let lo = start.addr();
    let hi = lo.saturating_add(size);
    let n = LOCKS
        .iter()
        .filter(|t| {
            let a = t.addr.load(Ordering::Acquire);
            a != 0 && a >= lo && a < hi
        })
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Every push lock still initialized.
pub fn live() -> u32 {
    let n = LOCKS
        .iter()
        .filter(|t| t.addr.load(Ordering::Acquire) != 0)
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}
