//! Learning each volume's DOS name (`C:`) for the path form of ADR 0013, outside the mount
//! path: instance setup only records the volume as pending (`flt::instance_setup`); this
//! module's round, a job of the driver's thread (`worker`), asks the mount manager
//! (`IoVolumeDeviceToDosName`) at PASSIVE_LEVEL, and asks again, at most every `volumes::RETRY_INTERVAL`, while a
//! volume is pending and file operations arrive (at boot the mount manager may not have
//! assigned letters when the volume is mounted). A volume is given up after
//! `volumes::MAX_ATTEMPTS` failed attempts: its paths stay in device form.
//!
//! Protocol (the health check's, docs/windows.md "Health", simplified):
//! - `queue` (callbacks, instance setup; IRQL ≤ APC): `VOLUME_WORK` idle → queued,
//!   `VOLUME_IDLE` reset, the job posted. At most one round queued or running.
//! - `round` (PASSIVE, the driver's thread): every pending volume once; then `VOLUME_IDLE`
//!   set, and queued → idle (in that order, so that a new queueing, which can only follow
//!   the second step, never finds the event set for a round still to run).
//! - `quiesce` (teardown, PASSIVE, after `FltUnregisterFilter`: no callback or instance
//!   setup can queue any more; before the thread stops): stopped, then wait for
//!   `VOLUME_IDLE`. Only then is the table freed.

use core::ffi::c_void;
use core::sync::atomic::Ordering;

use super::ffi::{
    ExFreePool, IoVolumeDeviceToDosName, KeResetEvent, KeSetEvent, ObfDereferenceObject,
    UNICODE_STRING,
};
use super::globals::{
    LAST_VOLUME_TRY, VOLUME_IDLE, VOLUME_WORK, VOLUME_WORK_IDLE, VOLUME_WORK_QUEUED,
    VOLUME_WORK_STOPPED,
};
use super::health::{now, wait_forever};
use super::nt::debug_assert_passive;
use super::worker;
use crate::flt;
use crate::volumes::{MAX_DEVICE_UNITS, retry_due};

/// Posts a round unless one is queued or running, or (unless `now`) the last round was
/// less than `volumes::RETRY_INTERVAL` ago. IRQL ≤ APC_LEVEL (callbacks); never blocks.
pub fn queue(now_: bool) {
    if !worker::running() {
        return; // no thread: names are never learnt, paths stay in device form
    }
    if !now_ {
        let last = LAST_VOLUME_TRY.load(Ordering::Acquire);
        if !retry_due(now(), (last != 0).then_some(last)) {
            return;
        }
    }
    if VOLUME_WORK
        .compare_exchange(
            VOLUME_WORK_IDLE,
            VOLUME_WORK_QUEUED,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_err()
    {
        return;
    }
    // SAFETY: initialized notification event (DriverEntry); reset before the round can run.
    let _ = unsafe { KeResetEvent(VOLUME_IDLE.ptr()) };
    worker::post(worker::VOLUMES);
}

/// Releases a reference on a disk device object (`ObDereferenceObject`, a macro of wdm.h
/// for `ObfDereferenceObject`; IRQL ≤ DISPATCH_LEVEL).
pub fn release(disk: *mut c_void) {
    if !disk.is_null() {
        // SAFETY: a reference FltGetDiskDeviceObject added and whose owner hands it here
        // exactly once (the volume table's token protocol, `volumes.rs`).
        let _ = unsafe { ObfDereferenceObject(disk) };
    }
}

/// One round: every pending volume once. PASSIVE_LEVEL (the driver's thread).
pub fn round() {
    debug_assert_passive!();
    LAST_VOLUME_TRY.store(now().max(1), Ordering::Release);
    let mut name = [0u16; MAX_DEVICE_UNITS];
    let mut from = 0usize;
    while let Some((p, disk)) = flt::take_pending_volume(from, &mut name) {
        from = p.index.saturating_add(1);
        let back = with_dos_name(disk, |dos| flt::volume_attempted(p.instance, disk, dos));
        if let Some(disk) = back {
            release(disk);
        }
    }
    // SAFETY: initialized notification event; set before the state returns to idle (see
    // the module's protocol).
    let _ = unsafe { KeSetEvent(VOLUME_IDLE.ptr(), 0, 0) };
    let _ = VOLUME_WORK.compare_exchange(
        VOLUME_WORK_QUEUED,
        VOLUME_WORK_IDLE,
        Ordering::AcqRel,
        Ordering::Acquire,
    );
}

/// Asks the mount manager for the DOS name of a volume's disk device object and gives it
/// to `f` (`None` on failure); the buffer the routine allocated is freed afterwards.
///
/// `IoVolumeDeviceToDosName` (ntddk.h: `NTSTATUS (PVOID VolumeDeviceObject, PUNICODE_STRING
/// DosName)`, declared identically by the WDK 10.0.22621 and MinGW-w64 ntddk.h, and checked
/// by the kernel check's bindings): PASSIVE_LEVEL, APCs not disabled (the driver's
/// thread), "a caller of this routine should call the ExFreePool routine to free the
/// buffer" (Microsoft Learn, "IoVolumeDeviceToDosName function (ntddk.h)"). `ExFreePool`
/// (wdm.h, both header sets: `VOID (PVOID P)`).
fn with_dos_name<R>(disk: *mut c_void, f: impl FnOnce(Option<&[u16]>) -> R) -> R {
    debug_assert_passive!();
    let mut dos = UNICODE_STRING::default();
    // SAFETY: PASSIVE_LEVEL in the driver's thread (APCs enabled); `disk` is a referenced
    // disk device object (the caller owns the reference for the call); `dos` is a live
    // local the routine fills.
    let status = unsafe { IoVolumeDeviceToDosName(disk, &mut dos) };
    if status < 0 || dos.Buffer.is_null() {
        return f(None);
    }
    // SAFETY: on success `Buffer` holds `Length` bytes of UTF-16, allocated by the routine
    // and valid until freed below.
    let units = unsafe { core::slice::from_raw_parts(dos.Buffer, usize::from(dos.Length) / 2) };
    let r = f(Some(units));
    // SAFETY: the buffer IoVolumeDeviceToDosName allocated, freed once, after its last use.
    unsafe { ExFreePool(dos.Buffer.cast()) };
    r
}

/// Stops the rounds for good and waits until the last has finished (teardown,
/// PASSIVE_LEVEL, after `FltUnregisterFilter`, before the thread stops). Nothing can queue
/// one again: the callbacks and instance setup, its only queuers, have all returned, and
/// the state is now stopped.
pub fn quiesce() {
    debug_assert_passive!();
    VOLUME_WORK.store(VOLUME_WORK_STOPPED, Ordering::Release);
    // Signaled unless an item is queued or running (reset only when one is queued, set by
    // that item as it ends); initialized in DriverEntry before anything can fail.
    wait_forever(VOLUME_IDLE.ptr().cast());
}
