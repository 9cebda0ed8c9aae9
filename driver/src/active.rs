//! Values the callbacks read without a lock, valid at any IRQL they run at:
//!
//! - [`Published`]: published once before filtering starts, taken back only after the
//!   Filter Manager has drained every callback (`FltUnregisterFilter` returned): the
//!   driver's own directory.
//! - [`Swappable`]: the active rule set, which a live activation replaces while callbacks
//!   run. Readers never wait and never allocate; the writer (PASSIVE_LEVEL, one at a time)
//!   swaps the pointer and frees the old value only after every reader that could have
//!   seen it has left (docs/windows.md, "Live activation: the swap").

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

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
pub type Active = Swappable<RuleSet>;

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

/// A value readers use without a lock while a writer may replace it: a two-epoch reader
/// count (the scheme of sleepable RCU, reduced to one writer at a time).
///
/// A reader announces itself in the counter of the current epoch's parity, re-checks that
/// the epoch did not move (else it withdraws and retries), loads the pointer, uses it and
/// withdraws. All operations are sequentially consistent, which the argument needs.
///
/// The writer runs a full grace period over both parities (`replace`): it swaps the
/// pointer, waits until the parity the current epoch does *not* use is empty, advances
/// the epoch (new readers now announce in that emptied parity), and waits until the parity
/// it left is empty. Every reader that could have loaded the old pointer loaded it before
/// the swap and is still counted in one of the two parities (its counter is raised before
/// its load and lowered after its last use), and each parity is seen empty at some moment
/// after the swap: so none is left. Waiting on one parity only is not enough: a reader
/// whose earlier swap gave up on it (parked) stays counted in that swap's parity and may
/// by then hold the value the *next* swap replaces (it loaded after that swap, or between
/// its pointer swap and its epoch advance): the first wait catches it (issue 19, the
/// kernel review's use-after-free).
///
/// The counters are spread over [`SHARDS`] cache lines, chosen by the reader's processor,
/// so that callbacks on different processors do not contend for one line (the writer sums
/// them). A reader decrements the shard it incremented, wherever it runs by then; each
/// shard's counter is never negative, so a sum of zero means no reader was inside for the
/// whole of the scan.
#[derive(Debug)]
pub struct Swappable<T> {
    ptr: AtomicPtr<T>,
    epoch: AtomicUsize,
    /// Reader counts per shard, even and odd epochs.
    shards: [Shard; SHARDS],
    /// Old values whose readers did not leave in time, freed at unload.
    parked: [AtomicPtr<T>; PARKED],
}

/// Old rule sets a swap may leave behind (see [`Swappable::replace`]).
pub const PARKED: usize = 4;

/// Reader-count shards of a [`Swappable`] (one cache line each).
pub const SHARDS: usize = 16;

/// Stands in for a shard that cannot be missing (`counter`'s index is below [`SHARDS`]).
static NO_SHARD: AtomicUsize = AtomicUsize::new(0);

/// One shard's reader counts, alone on its cache line.
#[derive(Debug)]
#[repr(align(64))]
struct Shard {
    /// Readers announced in even epochs.
    even: AtomicUsize,
    /// Readers announced in odd epochs.
    odd: AtomicUsize,
}

impl Shard {
    fn side(&self, epoch: usize) -> &AtomicUsize {
        if epoch & 1 == 0 {
            &self.even
        } else {
            &self.odd
        }
    }
}

impl<T: Send + Sync> Swappable<T> {
    /// Nothing published.
    pub const fn new() -> Self {
        Swappable {
            ptr: AtomicPtr::new(core::ptr::null_mut()),
            epoch: AtomicUsize::new(0),
            shards: [const {
                Shard {
                    even: AtomicUsize::new(0),
                    odd: AtomicUsize::new(0),
                }
            }; SHARDS],
            parked: [const { AtomicPtr::new(core::ptr::null_mut()) }; PARKED],
        }
    }

    fn counter(&self, epoch: usize, shard: usize) -> &AtomicUsize {
        let i = shard.checked_rem(SHARDS).unwrap_or(0);
        // `i < SHARDS`: the fallback is never taken.
        self.shards.get(i).map_or(&NO_SHARD, |s| s.side(epoch))
    }

    /// Readers announced in `epoch`'s side, over all shards.
    fn readers(&self, epoch: usize) -> usize {
        self.shards
            .iter()
            .map(|s| s.side(epoch).load(Ordering::SeqCst))
            .fold(0usize, usize::wrapping_add)
    }

    /// Runs `f` with the current value, if there is one. Never waits for a writer.
    pub fn with<R>(&self, f: impl FnOnce(&T) -> R) -> Option<R> {
        self.with_on(0, f)
    }

    /// [`Swappable::with`], counted in the shard of `cpu` (the current processor's number
    /// in the driver; any number is correct, a different one per processor is faster).
    pub fn with_on<R>(&self, cpu: usize, f: impl FnOnce(&T) -> R) -> Option<R> {
        self.with_on_paused(cpu, || (), f)
    }

    /// [`Swappable::with_on`], calling `pause` after the reader is counted and its epoch
    /// re-checked, before it loads the pointer: the window a writer's swap can fall into.
    /// A test hook (zero cost as `|| ()`): unit tests interleave a writer there, and the
    /// drill build holds a reader there on request (driver/src/drill.rs).
    pub fn with_on_paused<R>(
        &self,
        cpu: usize,
        pause: impl FnOnce(),
        f: impl FnOnce(&T) -> R,
    ) -> Option<R> {
        let epoch = loop {
            let e = self.epoch.load(Ordering::SeqCst);
            self.counter(e, cpu).fetch_add(1, Ordering::SeqCst);
            if self.epoch.load(Ordering::SeqCst) == e {
                break e;
            }
            // A writer advanced the epoch meanwhile: withdraw and announce in the new one.
            self.counter(e, cpu).fetch_sub(1, Ordering::SeqCst);
        };
        pause();
        let raw = self.ptr.load(Ordering::SeqCst);
        // SAFETY: announced in the current epoch's counter before loading the pointer: the
        // writer that swaps it out waits for this counter to drain before freeing it.
        let r = unsafe { raw.as_ref() }.map(f);
        self.counter(epoch, cpu).fetch_sub(1, Ordering::SeqCst);
        r
    }

    /// Replaces the value with `new` and returns the old one once no reader can still be
    /// using it (a full grace period, see the type's documentation); `wait` is called
    /// between checks while readers drain (the driver sleeps a millisecond). After
    /// `patience` calls of `wait` with readers still inside (a reader starved of CPU), the
    /// old value is parked instead, if one of the [`PARKED`] places is free, and freed only
    /// by [`Swappable::take`] at unload: `None` is then returned and the writer goes on.
    /// With every place taken it waits on: memory stays bounded.
    ///
    /// # Safety
    /// Writers are serialized (the driver holds its state lock), and `wait` may block:
    /// PASSIVE_LEVEL only. `with` must not call `replace` on the same value.
    pub unsafe fn replace(
        &self,
        new: Option<Box<T>>,
        mut wait: impl FnMut(),
        patience: u32,
    ) -> Option<Box<T>> {
        let raw = new.map_or(core::ptr::null_mut(), Box::into_raw);
        let old = self.ptr.swap(raw, Ordering::SeqCst);
        if old.is_null() {
            return None; // nothing that a reader could hold is freed
        }
        let mut waited: u32 = 0;
        let e = self.epoch.load(Ordering::SeqCst);
        // Stragglers of earlier swaps: only they can be counted in the parity the current
        // epoch does not use (a reader announcing there now fails its re-check).
        if !self.drain(e.wrapping_add(1), old, &mut wait, patience, &mut waited) {
            return None;
        }
        // New readers announce in the emptied parity; then wait for the one just left.
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if !self.drain(e, old, &mut wait, patience, &mut waited) {
            return None;
        }
        // SAFETY: non-null pointers in `ptr` come from `Box::into_raw`; the swap made this
        // the only owner, and both parities were seen empty after the swap: every reader
        // that could have loaded it has left.
        Some(unsafe { Box::from_raw(old) })
    }

    /// Waits until `epoch`'s parity has no reader: `true`. `false` when `old` was parked
    /// instead (after `patience` waits in all, counted in `waited`).
    fn drain(
        &self,
        epoch: usize,
        old: *mut T,
        wait: &mut impl FnMut(),
        patience: u32,
        waited: &mut u32,
    ) -> bool {
        while self.readers(epoch) != 0 {
            if *waited >= patience && self.park(old) {
                return false;
            }
            wait();
            *waited = waited.saturating_add(1);
        }
        true
    }

    /// Keeps `old` (owned, possibly still read) until unload; `false` if no place is free.
    fn park(&self, old: *mut T) -> bool {
        self.parked.iter().any(|p| {
            p.compare_exchange(
                core::ptr::null_mut(),
                old,
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_ok()
        })
    }

    /// Values parked by [`Swappable::replace`] (diagnostics and tests).
    pub fn parked(&self) -> usize {
        self.parked
            .iter()
            .filter(|p| !p.load(Ordering::SeqCst).is_null())
            .count()
    }

    /// Installs the first value (nothing readers wait for: there is no old one).
    pub fn publish(&self, value: Box<T>) -> Result<(), Box<T>> {
        let raw = Box::into_raw(value);
        match self.ptr.compare_exchange(
            core::ptr::null_mut(),
            raw,
            Ordering::SeqCst,
            Ordering::SeqCst,
        ) {
            Ok(_) => Ok(()),
            // SAFETY: `raw` came from `Box::into_raw` above and was not published.
            Err(_) => Err(unsafe { Box::from_raw(raw) }),
        }
    }

    /// Takes the value back (to free it) with no reader running.
    ///
    /// # Safety
    /// No call to [`Swappable::with`] may be running or start afterwards: in the driver,
    /// only after `FltUnregisterFilter` has returned.
    /// Parked values are freed here too.
    pub unsafe fn take(&self) -> Option<Box<T>> {
        for p in &self.parked {
            let raw = p.swap(core::ptr::null_mut(), Ordering::SeqCst);
            if !raw.is_null() {
                // SAFETY: parked pointers came from `Box::into_raw` and were owned by the
                // parking place alone; no reader exists (contract above).
                drop(unsafe { Box::from_raw(raw) });
            }
        }
        let raw = self.ptr.swap(core::ptr::null_mut(), Ordering::SeqCst);
        // SAFETY: as in `replace`; no reader exists (contract above).
        (!raw.is_null()).then(|| unsafe { Box::from_raw(raw) })
    }
}

impl<T: Send + Sync> Default for Swappable<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Admission of work that a teardown must wait for: the role of `EX_RUNDOWN_REF`, kept
/// here because Wine 8.0's ntoskrnl does not implement the `Ex…RundownProtection` routines
/// and the hosted drill runs this code. Entering never waits; closing refuses every later
/// entry, then waits (by `wait`, at PASSIVE_LEVEL) until those inside have left.
#[derive(Debug)]
pub struct Gate {
    /// Bit 63: closed. Below: how many are inside.
    state: AtomicUsize,
}

const CLOSED: usize = 1 << (usize::BITS - 1);

impl Gate {
    /// Open, nobody inside.
    pub const fn new() -> Self {
        Gate {
            state: AtomicUsize::new(0),
        }
    }

    /// Enters unless closed (`false`: closed, do nothing). Any IRQL.
    pub fn enter(&self) -> bool {
        let mut s = self.state.load(Ordering::SeqCst);
        loop {
            if s & CLOSED != 0 {
                return false;
            }
            let Some(n) = s.checked_add(1).filter(|n| n & CLOSED == 0) else {
                return false;
            };
            match self
                .state
                .compare_exchange(s, n, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
    }

    /// Leaves (after a successful [`Gate::enter`]).
    pub fn leave(&self) {
        self.state.fetch_sub(1, Ordering::SeqCst);
    }

    /// Closes the gate and returns once nobody is inside. Idempotent.
    pub fn close_and_wait(&self, mut wait: impl FnMut()) {
        self.state.fetch_or(CLOSED, Ordering::SeqCst);
        while self.state.load(Ordering::SeqCst) & !CLOSED != 0 {
            wait();
        }
    }
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

/// A lock that is only ever tried, never waited for: the audit-event queue's. A callback
/// that finds it taken drops its event (and counts it) instead of waiting, so a file
/// operation never waits for the console; the console's reader retries (PASSIVE_LEVEL).
/// Ours, not a Filter Manager push lock, because Wine 8.0's fltmgr.sys implements push
/// locks as stubs and the hosted drill runs this code.
#[derive(Debug)]
pub struct TryLock<T> {
    busy: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: `value` is reached only inside `try_with`, which holds `busy` exclusively for the
// closure's duration; `T: Send` because whichever thread takes the lock uses it.
unsafe impl<T: Send> Sync for TryLock<T> {}

impl<T> TryLock<T> {
    /// Unlocked, holding `value`.
    pub const fn new(value: T) -> Self {
        TryLock {
            busy: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Runs `f` with the value if the lock is free; `None` (nothing run) if it is taken.
    pub fn try_with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        if self
            .busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return None;
        }
        // SAFETY: `busy` was false and is now ours: no other reference to the value exists
        // until the store below.
        let r = f(unsafe { &mut *self.value.get() });
        self.busy.store(false, Ordering::Release);
        Some(r)
    }

    /// [`TryLock::try_with`], retrying with `wait` between tries until the lock is free.
    pub fn with<R>(&self, mut f: impl FnMut(&mut T) -> R, mut wait: impl FnMut()) -> R {
        loop {
            if let Some(r) = self.try_with(&mut f) {
                return r;
            }
            wait();
        }
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

    /// Values that flag their own drop in a table outside themselves, so a reader can see
    /// whether the value it is using was freed under it.
    static FREED: [core::sync::atomic::AtomicBool; 4096] =
        [const { core::sync::atomic::AtomicBool::new(false) }; 4096];

    struct Tracked(usize);
    impl Drop for Tracked {
        fn drop(&mut self) {
            FREED[self.0].store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn swap_waits_for_readers_of_the_old_value() {
        use std::sync::Arc;
        use std::sync::atomic::AtomicBool;
        let s: Arc<Swappable<Tracked>> = Arc::new(Swappable::new());
        assert!(s.publish(Box::new(Tracked(0))).is_ok());
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(core::sync::atomic::AtomicU64::new(0));
        let readers: Vec<_> = (0..2usize)
            .map(|shard| {
                let (s, stop, reads) = (Arc::clone(&s), Arc::clone(&stop), Arc::clone(&reads));
                std::thread::spawn(move || {
                    let mut seen = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        s.with_on(shard * 7, |t| {
                            // Stay a while inside, re-checking: the value must not be
                            // freed while this reader holds it.
                            for _ in 0..20 {
                                assert!(!FREED[t.0].load(Ordering::SeqCst), "freed under a reader");
                                std::hint::spin_loop();
                            }
                        });
                        seen += 1;
                        reads.fetch_add(1, Ordering::SeqCst);
                    }
                    seen
                })
            })
            .collect();
        for id in 1..600 {
            // Keep the readers in the race: at least one read per swap.
            while reads.load(Ordering::SeqCst) < id as u64 {
                std::thread::yield_now();
            }
            // SAFETY: one writer (this thread); `wait` yields.
            let old = unsafe {
                s.replace(
                    Some(Box::new(Tracked(id))),
                    std::thread::yield_now,
                    u32::MAX,
                )
            };
            assert_eq!(old.as_ref().map(|t| t.0), Some(id - 1));
            drop(old);
            assert!(FREED[id - 1].load(Ordering::SeqCst));
        }
        stop.store(true, Ordering::SeqCst);
        let total: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
        assert!(total > 0, "readers ran");
        // SAFETY: readers joined.
        assert_eq!(unsafe { s.take() }.map(|t| t.0), Some(599));
        // Replacing with nothing: readers then see no value.
        let e: Swappable<Tracked> = Swappable::new();
        // SAFETY: one writer.
        assert!(unsafe { e.replace(None, || (), u32::MAX) }.is_none());
        assert_eq!(e.with(|_| 1), None);
    }

    #[test]
    fn the_pause_falls_between_the_count_and_the_load() {
        let s: Swappable<Tracked> = Swappable::new();
        assert!(s.publish(Box::new(Tracked(3000))).is_ok());
        // A writer in the pause window finds the reader counted (it parks the old value
        // rather than free it, having no patience), and the reader then loads the new one.
        let seen = s.with_on_paused(
            5,
            || {
                // SAFETY: one writer; the reader is this thread, counted, not yet loaded.
                let old = unsafe { s.replace(Some(Box::new(Tracked(3001))), || (), 0) };
                assert!(old.is_none(), "freed while a reader was counted");
                assert_eq!(s.parked(), 1);
            },
            |t| t.0,
        );
        assert_eq!(seen, Some(3001));
        assert!(!FREED[3000].load(Ordering::SeqCst));
        // SAFETY: no reader runs.
        drop(unsafe { s.take() });
        assert!(FREED[3000].load(Ordering::SeqCst) && FREED[3001].load(Ordering::SeqCst));
    }

    #[test]
    fn gate_refuses_after_close_and_waits_for_those_inside() {
        use std::sync::Arc;
        use std::sync::atomic::AtomicBool;
        let g = Arc::new(Gate::new());
        assert!(g.enter());
        let inside = Arc::new(AtomicBool::new(true));
        let (g2, inside2) = (Arc::clone(&g), Arc::clone(&inside));
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            inside2.store(false, Ordering::SeqCst);
            g2.leave();
        });
        g.close_and_wait(std::thread::yield_now);
        assert!(
            !inside.load(Ordering::SeqCst),
            "closed while someone was inside"
        );
        assert!(!g.enter(), "entered a closed gate");
        g.close_and_wait(|| unreachable!("nobody inside: no wait"));
        t.join().unwrap();
    }

    #[test]
    fn try_lock_never_waits_and_excludes() {
        use std::sync::Arc;
        let l = Arc::new(TryLock::new(0u64));
        let inner = l.try_with(|v| {
            *v += 1;
            // Taken: a second try runs nothing.
            l.try_with(|_| unreachable!("ran while taken"))
        });
        assert_eq!(inner, Some(None));
        // Many threads: every increment that ran is counted exactly once.
        let ran: u64 = (0..4)
            .map(|_| {
                let l = Arc::clone(&l);
                std::thread::spawn(move || {
                    (0..10_000)
                        .filter(|_| l.try_with(|v| *v += 1).is_some())
                        .count() as u64
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .sum();
        assert_eq!(l.with(|v| *v, std::thread::yield_now), ran + 1);
    }

    /// The review's use-after-free (issue 19, finding 1): a reader passes its epoch
    /// re-check, is held there while a swap gives up waiting for it and parks the old
    /// value, then loads the *new* value, which its count (in the old parity) does not
    /// protect against the next swap. The next swap must not free it while it is read.
    #[test]
    fn a_straggler_that_loads_after_a_parked_swap_keeps_what_it_loaded() {
        use std::sync::Arc;
        use std::sync::mpsc;
        let s: Arc<Swappable<Tracked>> = Arc::new(Swappable::new());
        assert!(s.publish(Box::new(Tracked(4010))).is_ok());
        let (at_pause_tx, at_pause_rx) = mpsc::channel::<()>();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let (loaded_tx, loaded_rx) = mpsc::channel();
        let (leave_tx, leave_rx) = mpsc::channel::<()>();
        let s2 = Arc::clone(&s);
        let reader = std::thread::spawn(move || {
            s2.with_on_paused(
                0,
                move || {
                    at_pause_tx.send(()).unwrap();
                    go_rx.recv().unwrap();
                },
                |t| {
                    loaded_tx.send(t.0).unwrap();
                    leave_rx.recv().unwrap();
                    !FREED[t.0].load(Ordering::SeqCst)
                },
            )
        });
        // The reader is counted and past its re-check, before its load.
        at_pause_rx.recv().unwrap();
        // First swap: the reader does not leave within patience; the old value is parked.
        // SAFETY: one writer.
        let old = unsafe { s.replace(Some(Box::new(Tracked(4011))), || (), 3) };
        assert!(old.is_none(), "the first swap parks what it replaced");
        assert_eq!(s.parked(), 1);
        // The reader now loads: the new value.
        go_tx.send(()).unwrap();
        assert_eq!(loaded_rx.recv().unwrap(), 4011);
        // Second swap (an activation or rollback seconds later): the reader still holds
        // 4011, so 4011 may not come back to be freed.
        // SAFETY: one writer.
        let old = unsafe { s.replace(Some(Box::new(Tracked(4012))), || (), 3) };
        let returned = old.as_ref().map(|t| t.0);
        drop(old);
        assert_eq!(
            returned, None,
            "the second swap handed back the value a reader still uses"
        );
        assert!(!FREED[4011].load(Ordering::SeqCst));
        assert_eq!(s.parked(), 2);
        leave_tx.send(()).unwrap();
        assert_eq!(reader.join().unwrap(), Some(true), "freed under its reader");
        // Unload frees everything parked with the current value.
        // SAFETY: no reader runs.
        assert_eq!(unsafe { s.take() }.map(|t| t.0), Some(4012));
        assert!(FREED[4010].load(Ordering::SeqCst) && FREED[4011].load(Ordering::SeqCst));
    }

    /// Many swaps that give up on slow readers quickly (patience 1): parked places fill
    /// and later swaps wait, but no reader ever sees its value freed.
    #[test]
    fn parked_swaps_under_slow_readers_never_free_a_value_in_use() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicU64};
        let s: Arc<Swappable<Tracked>> = Arc::new(Swappable::new());
        assert!(s.publish(Box::new(Tracked(1000))).is_ok());
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicU64::new(0));
        let readers: Vec<_> = (0..3usize)
            .map(|k| {
                let (s, stop, reads) = (Arc::clone(&s), Arc::clone(&stop), Arc::clone(&reads));
                std::thread::spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        s.with_on(k, |t| {
                            assert!(!FREED[t.0].load(Ordering::SeqCst), "freed under a reader");
                            if n % 7 == k as u64 {
                                std::thread::sleep(std::time::Duration::from_micros(300));
                            }
                            assert!(!FREED[t.0].load(Ordering::SeqCst), "freed under a reader");
                        });
                        n += 1;
                        reads.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        let mut freed = 0;
        for id in 1001..1300 {
            // Keep the readers in the race: at least one read per swap.
            let seen = reads.load(Ordering::SeqCst);
            while reads.load(Ordering::SeqCst) == seen {
                std::thread::yield_now();
            }
            // SAFETY: one writer (this thread).
            let old = unsafe { s.replace(Some(Box::new(Tracked(id))), std::thread::yield_now, 1) };
            freed += usize::from(old.is_some());
        }
        stop.store(true, Ordering::SeqCst);
        for r in readers {
            r.join().unwrap();
        }
        assert!(s.parked() <= PARKED);
        assert_eq!(
            freed + s.parked(),
            299,
            "every replaced value freed or parked"
        );
        // SAFETY: readers joined.
        assert_eq!(unsafe { s.take() }.map(|t| t.0), Some(1299));
        assert!((1000..1300).all(|i| FREED[i].load(Ordering::SeqCst)));
    }

    #[test]
    fn a_starved_reader_gets_the_old_value_parked_not_freed() {
        use std::sync::Arc;
        use std::sync::mpsc;
        let s: Arc<Swappable<Tracked>> = Arc::new(Swappable::new());
        assert!(s.publish(Box::new(Tracked(4000))).is_ok());
        // A reader that stays inside until told to leave.
        let (inside_tx, inside_rx) = mpsc::channel();
        let (leave_tx, leave_rx) = mpsc::channel::<()>();
        let s2 = Arc::clone(&s);
        let reader = std::thread::spawn(move || {
            s2.with(|t| {
                inside_tx.send(t.0).unwrap();
                leave_rx.recv().unwrap();
                assert!(!FREED[t.0].load(Ordering::SeqCst), "freed under a reader");
            })
        });
        assert_eq!(inside_rx.recv().unwrap(), 4000);
        // The writer gives up after 3 waits: the old value is parked, not freed.
        // SAFETY: one writer.
        let old = unsafe { s.replace(Some(Box::new(Tracked(4001))), || (), 3) };
        assert!(old.is_none());
        assert_eq!(s.parked(), 1);
        assert!(!FREED[4000].load(Ordering::SeqCst));
        assert_eq!(s.with(|t| t.0), Some(4001), "new readers see the new value");
        leave_tx.send(()).unwrap();
        reader.join().unwrap();
        // Unload frees the parked value with the current one.
        // SAFETY: no reader runs.
        assert_eq!(unsafe { s.take() }.map(|t| t.0), Some(4001));
        assert!(FREED[4000].load(Ordering::SeqCst));
        assert_eq!(s.parked(), 0);
    }
}
