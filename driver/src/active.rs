//! Values the callbacks read, published once before filtering starts and taken back only
//! after the Filter Manager has drained every callback (`FltUnregisterFilter` returned):
//! the active rule set and the driver's own directory. Between the two they are
//! immutable, so callbacks read them through a plain atomic pointer: no lock, nothing that
//! blocks, valid at any IRQL the callbacks run at.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicPtr, Ordering};

use failsafe_loader::RuleSet;

/// Boxes a value without an infallible allocation (an allocation failure in the kernel
/// must not become a panic, which would be a bugcheck).
pub fn try_box<T>(value: T) -> Result<Box<T>, T> {
    let mut v: Vec<T> = Vec::new();
    if v.try_reserve_exact(1).is_err() {
        return Err(value);
    }
    v.push(value);
    let slice: Box<[T]> = v.into_boxed_slice();
    let raw = Box::into_raw(slice).cast::<T>();
    // SAFETY: `raw` owns an allocation of exactly one `T` (length 1, capacity 1, the
    // layout of `T`), which is what `Box<T>` requires.
    Ok(unsafe { Box::from_raw(raw) })
}

/// Holder of a value published once (see the module documentation).
#[derive(Debug)]
pub struct Published<T> {
    ptr: AtomicPtr<T>,
}

/// The active rule set: none means everything passes.
pub type Active = Published<RuleSet>;

// Callbacks on many threads share the value: it must be Sync (and Send, to be freed by
// whichever thread unloads).
impl<T: Send + Sync> Published<T> {
    /// Nothing published.
    pub const fn new() -> Self {
        Published {
            ptr: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// Publishes `rules`. Returns them back if a value is already published.
    pub fn publish(&self, rules: Box<T>) -> Result<(), Box<T>> {
        let raw = Box::into_raw(rules);
        match self.ptr.compare_exchange(
            core::ptr::null_mut(),
            raw,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => Ok(()),
            // SAFETY: `raw` came from `Box::into_raw` above and was not published.
            Err(_) => Err(unsafe { Box::from_raw(raw) }),
        }
    }

    /// Runs `f` with the published value, if there is one.
    pub fn with<R>(&self, f: impl FnOnce(&T) -> R) -> Option<R> {
        let raw = self.ptr.load(Ordering::Acquire);
        // SAFETY: a non-null pointer was published from a Box and is only freed by `take`,
        // whose contract is that no `with` runs concurrently or afterwards.
        unsafe { raw.as_ref() }.map(f)
    }

    /// Takes the value back (to free it).
    ///
    /// # Safety
    /// No call to [`Published::with`] may be running or start afterwards: in the driver,
    /// call this only after `FltUnregisterFilter` has returned.
    pub unsafe fn take(&self) -> Option<Box<T>> {
        let raw = self.ptr.swap(core::ptr::null_mut(), Ordering::AcqRel);
        // SAFETY: non-null pointers in `ptr` come from `Box::into_raw` in `publish`, and
        // the swap made this the only owner.
        (!raw.is_null()).then(|| unsafe { Box::from_raw(raw) })
    }
}

impl<T: Send + Sync> Default for Published<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
#[allow(
    clippy::unreachable,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests: a failed expectation is a test failure"
)]
mod tests {
    use super::*;
    use failsafe_loader::{Content, encode};

    fn empty_rules() -> RuleSet {
        RuleSet::load(
            &encode(&Content {
                version: 3,
                rules: alloc::vec![],
            })
            .unwrap_or_default(),
        )
        .unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn publish_with_take() {
        let a = Active::new();
        assert_eq!(a.with(|r| r.version()), None);
        let b = try_box(empty_rules()).unwrap_or_else(|_| unreachable!());
        assert!(a.publish(b).is_ok());
        assert_eq!(a.with(|r| r.version()), Some(3));
        let again = try_box(empty_rules()).unwrap_or_else(|_| unreachable!());
        assert!(a.publish(again).is_err(), "a second publish is refused");
        // SAFETY: no `with` runs concurrently in this test.
        let back = unsafe { a.take() };
        assert_eq!(back.map(|r| r.version()), Some(3));
        assert_eq!(a.with(|r| r.version()), None);
    }
}
