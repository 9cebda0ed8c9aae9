//! A Filter Manager push lock guarding a value (`FltInitializePushLock`,
//! `FltAcquirePushLockShared` / `Exclusive`, `FltReleasePushLock`, `FltDeletePushLock`):
//! the lock the volume and process tables are kept under. IRQL ≤ APC_LEVEL.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
    FltAcquirePushLockExclusive, FltAcquirePushLockShared, FltDeletePushLock,
    FltInitializePushLock, FltReleasePushLock,
};

/// A Filter Manager push lock guarding a value: readers share it (`&T`), a writer has it
/// alone (`&mut T`); each guard releases the lock when dropped. Push locks may be
/// acquired at IRQL ≤ APC_LEVEL (Microsoft Learn, "FltAcquirePushLockShared"), which is
/// where every user of this lock runs.
pub(super) struct PushLock<T> {
    lock: UnsafeCell<usize>,
    value: UnsafeCell<Option<T>>,
    /// `init` ran and `free` has not: the lock may be used.
    ready: AtomicBool,
}

// SAFETY: `value` is only reached through a guard, and guards exist only while the push
// lock is held (shared for `Read`, exclusive for `Write`); the lock word itself is only
// used through the FltXxxPushLock routines. `T: Send + Sync` because readers on several
// threads share it and the writer may be any thread.
unsafe impl<T: Send + Sync> Sync for PushLock<T> {}

/// Shared access; releases the push lock on drop.
pub(super) struct Read<'a, T>(&'a PushLock<T>);
/// Exclusive access; releases the push lock on drop.
pub(super) struct Write<'a, T>(&'a PushLock<T>);

impl<T> PushLock<T> {
    pub(super) const fn new() -> Self {
        PushLock {
            lock: UnsafeCell::new(0),
            value: UnsafeCell::new(None),
            ready: AtomicBool::new(false),
        }
    }

    /// Initializes the lock and installs the value.
    ///
    /// # Safety
    /// Once, before any other use of this lock.
    pub(super) unsafe fn init(&self, value: T) {
        // SAFETY: the lock word is static and not yet in use (contract above).
        unsafe { FltInitializePushLock(self.lock.get()) };
        // SAFETY: no guard exists yet (contract above), so this is the only access.
        unsafe { *self.value.get() = Some(value) };
        self.ready.store(true, Ordering::Release);
    }

    /// Shared access (`None` before `init`). IRQL ≤ APC_LEVEL.
    pub(super) fn read(&self) -> Option<Read<'_, T>> {
        if !self.ready.load(Ordering::Acquire) {
            return None;
        }
        // SAFETY: initialized lock (`ready`); callers run at IRQL ≤ APC_LEVEL.
        unsafe { FltAcquirePushLockShared(self.lock.get()) };
        Some(Read(self))
    }

    /// Exclusive access (`None` before `init`). IRQL ≤ APC_LEVEL.
    pub(super) fn write(&self) -> Option<Write<'_, T>> {
        if !self.ready.load(Ordering::Acquire) {
            return None;
        }
        // SAFETY: initialized lock (`ready`); callers run at IRQL ≤ APC_LEVEL.
        unsafe { FltAcquirePushLockExclusive(self.lock.get()) };
        Some(Write(self))
    }

    /// Drops the value and deletes the lock (nothing if `init` never ran).
    ///
    /// # Safety
    /// No guard exists and no thread will take one again.
    pub(super) unsafe fn free(&self) {
        if !self.ready.swap(false, Ordering::AcqRel) {
            return;
        }
        // SAFETY: no guard exists (contract above): this is the only access.
        unsafe { *self.value.get() = None };
        // SAFETY: the lock is initialized and nobody holds or will take it.
        unsafe { FltDeletePushLock(self.lock.get()) };
    }
}

impl<T> Read<'_, T> {
    pub(super) fn get(&self) -> Option<&T> {
        // SAFETY: the shared lock is held for the guard's lifetime: no writer exists.
        unsafe { (*self.0.value.get()).as_ref() }
    }
}

impl<T> Write<'_, T> {
    pub(super) fn get(&mut self) -> Option<&mut T> {
        // SAFETY: the exclusive lock is held for the guard's lifetime: no other access.
        unsafe { (*self.0.value.get()).as_mut() }
    }
}

impl<T> Drop for Read<'_, T> {
    fn drop(&mut self) {
        // SAFETY: acquired (shared) when this guard was made, released once here.
        unsafe { FltReleasePushLock(self.0.lock.get()) };
    }
}

impl<T> Drop for Write<'_, T> {
    fn drop(&mut self) {
        // SAFETY: acquired (exclusive) when this guard was made, released once here.
        unsafe { FltReleasePushLock(self.0.lock.get()) };
    }
}
