//! The audit-event queue: the pre-operation callbacks push (≤ APC_LEVEL, a lock only
//! tried), the control channel drains and counts (PASSIVE_LEVEL), teardown frees it.

use core::sync::atomic::{AtomicU64, Ordering};

use failsafe_loader::control::{AuditEvent, EventRing, WriteError};
// wdm.h / ntddk.h; windows-sys 0.61.2 Wdk::System::SystemServices (ntoskrnl.exe exports).
use windows_sys::Wdk::System::SystemServices::{KeEnterCriticalRegion, KeLeaveCriticalRegion};

use crate::active::TryLock;

/// The audit-event queue the console reads through the control channel (fixed capacity,
/// allocated once at `DriverEntry`; full: dropped and counted). Behind a lock that
/// callbacks only try (`active::TryLock`): a callback never waits for the console.
static EVENTS: TryLock<Option<EventRing>> = TryLock::new(None);
/// Events dropped because a callback found the queue's lock taken (moved into the queue's
/// own count whenever the console reads it).
static EVENTS_BUSY: AtomicU64 = AtomicU64::new(0);

/// Installs the event queue (PASSIVE_LEVEL, `DriverEntry`, before filtering starts and
/// before the control channel exists: nobody else holds the lock).
pub fn events_init(ring: EventRing) {
    let _ = EVENTS.try_with(|q| *q = Some(ring));
}

/// Queues an audit event with the process's image `image` (callbacks, IRQL ≤ APC_LEVEL),
/// inside a critical region so that the thread cannot be suspended holding the queue.
pub(super) fn audit(ev: &AuditEvent, path: &[u16], image: &[u16]) {
    // SAFETY: IRQL ≤ APC_LEVEL (callbacks); paired below.
    unsafe { KeEnterCriticalRegion() };
    let queued = EVENTS.try_with(|q| {
        if let Some(ring) = q.as_mut() {
            ring.push(ev, path, image);
        }
    });
    // SAFETY: entered above, on this thread.
    unsafe { KeLeaveCriticalRegion() };
    if queued.is_none() {
        EVENTS_BUSY.fetch_add(1, Ordering::Relaxed);
    }
}

/// Answers a read-events request with `cursor` in `out`: events below the cursor were
/// received by the console and leave the queue; the rest are copied into the response and
/// stay queued until a later cursor passes them, so a response the I/O manager never
/// copies out loses nothing (control request, PASSIVE_LEVEL: `wait` may sleep).
pub fn events_read(out: &mut [u8], cursor: u64, wait: impl FnMut()) -> Result<usize, WriteError> {
    EVENTS.with(
        |q| {
            let busy = EVENTS_BUSY.swap(0, Ordering::Relaxed);
            match q.as_mut() {
                Some(ring) => {
                    ring.add_dropped(busy);
                    ring.read_into(out, cursor)
                }
                None => {
                    let mut none = EventRing::disabled();
                    none.add_dropped(busy);
                    none.read_into(out, cursor)
                }
            }
        },
        wait,
    )
}

/// Events queued and dropped so far (PASSIVE_LEVEL: `wait` may sleep).
pub fn events_counts(wait: impl FnMut()) -> (u32, u64) {
    EVENTS.with(
        |q| {
            let busy = EVENTS_BUSY.load(Ordering::Relaxed);
            q.as_ref().map_or((0, busy), |r| {
                (
                    u32::try_from(r.len()).unwrap_or(u32::MAX),
                    r.dropped().saturating_add(busy),
                )
            })
        },
        wait,
    )
}

/// Frees the event queue (teardown, PASSIVE_LEVEL, after the filter is unregistered and the
/// control channel removed: nobody else takes the lock any more).
pub fn events_free(wait: impl FnMut()) {
    EVENTS.with(|q| *q = None, wait);
}
