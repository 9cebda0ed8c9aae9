//! Instance setup and teardown (PASSIVE_LEVEL) and the volume table they fill: volume
//! device name -> DOS name (ADR 0013), read by the callbacks and the process-notify routine
//! (≤ APC_LEVEL, shared push lock) and completed by the kernel layer's volume-name work
//! item (PASSIVE_LEVEL).

use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, Ordering};

use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
    FLT_RELATED_OBJECTS, FltGetDiskDeviceObject, FltGetVolumeName, PFLT_INSTANCE, PFLT_VOLUME,
};
use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_FLT_DO_NOT_ATTACH, STATUS_SUCCESS, UNICODE_STRING,
};
use windows_sys::Win32::Storage::InstallableFileSystems::{
    FLT_FILESYSTEM_TYPE, FLT_FSTYPE_MUP, FLT_FSTYPE_NTFS, FLT_FSTYPE_REFS,
};
use windows_sys::Win32::System::Ioctl::{
    FILE_DEVICE_DISK_FILE_SYSTEM, FILE_DEVICE_NETWORK_FILE_SYSTEM,
};

use super::Host;
use super::lock::{PushLock, Read};
use super::registration::size_u16;
use crate::volumes::{MAX_DEVICE_UNITS, Pending, VolumeTable};

/// Volume device name -> DOS name (ADR 0013): filled by instance setup (pending) and the
/// kernel layer's volume-name round (DOS name), emptied by instance teardown, read by the
/// callbacks and the process-notify routine.
static VOLUMES: PushLock<VolumeTable> = PushLock::new();
/// Some volume of the table is pending (`VolumeTable::has_pending`), so that the callbacks
/// ask for a round with one atomic read, without the lock.
pub(super) static VOLUMES_PENDING: AtomicBool = AtomicBool::new(false);

/// Installs the volume table (PASSIVE_LEVEL, `DriverEntry`, before `FltStartFiltering`:
/// instance setup runs only after it).
///
/// # Safety
/// Called once, before any other function of this module touches the volume table.
pub unsafe fn volumes_init(table: VolumeTable) {
    // SAFETY: once, first (contract above).
    unsafe { VOLUMES.init(table) };
}

/// Frees the volume table (unload, after the filter is unregistered and the kernel
/// layer's volume-name rounds have finished).
///
/// # Safety
/// No callback, notify routine or volume-name round may use the table concurrently or afterwards.
pub unsafe fn volumes_free() {
    VOLUMES_PENDING.store(false, Ordering::Release);
    // SAFETY: contract above.
    unsafe { VOLUMES.free() };
}

/// Runs `f` on the volume table with the lock held exclusively, then refreshes
/// `VOLUMES_PENDING`. IRQL ≤ APC_LEVEL.
fn with_volumes<R>(f: impl FnOnce(&mut VolumeTable) -> R) -> Option<R> {
    let mut guard = VOLUMES.write()?;
    let t = guard.get()?;
    let r = f(t);
    VOLUMES_PENDING.store(t.has_pending(), Ordering::Release);
    Some(r)
}

/// The path as authors write it (`C:\...`, ADR 0013) in `out`, or the path itself where
/// the volume's DOS name is unknown or the result would not fit; `\??\C:\x` loses its
/// prefix in any case. IRQL ≤ APC_LEVEL (shared push lock).
pub(super) fn dos_path<'a>(path: &'a [u16], out: &'a mut [u16]) -> &'a [u16] {
    let guard = VOLUMES.read();
    match guard.as_ref().and_then(Read::get) {
        Some(t) => t.dos_path(path, out),
        None => failsafe_loader::text::without_dos_device_prefix(path),
    }
}

/// A disk device object as the volume table's token, and back (the table is portable and
/// holds it as an integer; the provenance is exposed and taken back, never invented).
fn disk_token(disk: *mut c_void) -> usize {
    disk.expose_provenance()
}
fn disk_from(token: usize) -> *mut c_void {
    core::ptr::with_exposed_provenance_mut(token)
}

/// An instance as the volume table's key (`PFLT_INSTANCE` is an `isize` in windows-sys;
/// the Filter Manager's pointer, unique while the instance lives, and its teardown removes
/// the entry before the instance is freed).
fn instance_key(instance: PFLT_INSTANCE) -> usize {
    instance.cast_unsigned()
}

/// Takes the next instance waiting for its volume's DOS name at table index `from` or
/// later ([`Pending`]: its index, its key, its device name's length in `out`), and its
/// disk device object with the table's reference, which the caller now owns and hands to
/// [`volume_attempted`]. Kernel layer's volume-name round, PASSIVE_LEVEL.
pub fn take_pending_volume(
    from: usize,
    out: &mut [u16; MAX_DEVICE_UNITS],
) -> Option<(Pending, *mut c_void)> {
    with_volumes(|t| t.take_pending(from, out))
        .flatten()
        .map(|p| (p, disk_from(p.disk)))
}

/// The outcome of asking the mount manager about an instance's volume taken with
/// [`take_pending_volume`] (`instance`: its [`Pending::instance`]): its DOS name, or
/// `None` on failure. Returns the disk device object when its reference is now the
/// caller's to release (resolved, gone, given up), `None` when the table kept it for
/// another attempt.
pub fn volume_attempted(
    instance: usize,
    disk: *mut c_void,
    dos: Option<&[u16]>,
) -> Option<*mut c_void> {
    let token = disk_token(disk);
    match with_volumes(|t| match dos {
        Some(dos) if t.resolve(instance, dos) => Some(token),
        _ => t.failed(instance, token),
    }) {
        Some(back) => back.map(disk_from),
        None => Some(disk), // no table: the reference stays with the caller
    }
}

/// Takes a disk device object still held by the volume table (unload, after the filter is
/// unregistered and the volume-name rounds finished: every instance was torn down, so
/// normally none), for the caller to release.
pub fn take_volume_reference() -> Option<*mut c_void> {
    with_volumes(VolumeTable::take_any_token)
        .flatten()
        .map(disk_from)
}

/// The volume's device name (`\Device\HarddiskVolume3`) into `out`; `None` when it is
/// longer than `out` (`STATUS_BUFFER_TOO_SMALL`: that volume's paths stay in device form).
/// `FltGetVolumeName` (fltKernel.h; IRQL ≤ APC_LEVEL; checked against the WDK 10.0.22621
/// fltKernel.h and windows-sys 0.61.2: `(PFLT_VOLUME, PUNICODE_STRING, PULONG)`).
fn volume_name(volume: PFLT_VOLUME, out: &mut [u16; MAX_DEVICE_UNITS]) -> Option<usize> {
    let mut name = UNICODE_STRING {
        Length: 0,
        MaximumLength: size_u16(MAX_DEVICE_UNITS.saturating_mul(2)),
        Buffer: out.as_mut_ptr(),
    };
    let mut needed = 0u32;
    // SAFETY: a volume the Filter Manager passed to the current callback; `name` describes
    // `out` (live, MaximumLength bytes); `needed` is a live local.
    let status = unsafe { FltGetVolumeName(volume, &mut name, &mut needed) };
    if status < 0 {
        return None;
    }
    Some((usize::from(name.Length) / 2).min(MAX_DEVICE_UNITS))
}

/// Attach to NTFS and ReFS volumes on disks, recording each instance in the volume table as
/// waiting for its volume's DOS name (ADR 0013), and to the multiple UNC provider
/// (`FLT_FSTYPE_MUP` on a `FILE_DEVICE_NETWORK_FILE_SYSTEM` volume: network files, named
/// `\Device\Mup\server\share\...` and seen by the rules as `\\server\share\...`; issue
/// 19, section 4: a block rule must not be walked around by copying a file to a share).
/// IRQL: PASSIVE_LEVEL.
///
/// The mount manager is *not* asked here: instance setup runs inside the volume's mount
/// (and, at boot, before the mount manager has assigned drive letters), so a synchronous
/// `IoVolumeDeviceToDosName` here could fail or wait on the mount that is waiting for this
/// callback. The kernel layer's volume-name round asks later (`Host::learn_volume_names`). Nothing
/// here can refuse the attach: on any failure the volume's paths stay in device form.
///
/// # Safety
/// Called by the Filter Manager (fltkernel.h `PFLT_INSTANCE_SETUP_CALLBACK`).
pub unsafe extern "system" fn instance_setup<H: Host>(
    objects: *const FLT_RELATED_OBJECTS,
    _flags: u32,
    volume_device_type: u32,
    file_system: FLT_FILESYSTEM_TYPE,
) -> NTSTATUS {
    if volume_device_type == FILE_DEVICE_NETWORK_FILE_SYSTEM && file_system == FLT_FSTYPE_MUP {
        return STATUS_SUCCESS; // no DOS name to learn: the rules see UNC paths
    }
    if volume_device_type != FILE_DEVICE_DISK_FILE_SYSTEM
        || (file_system != FLT_FSTYPE_NTFS && file_system != FLT_FSTYPE_REFS)
    {
        return STATUS_FLT_DO_NOT_ATTACH;
    }
    // SAFETY: the Filter Manager passes valid related objects for the call.
    if let Some(o) = unsafe { objects.as_ref() } {
        note_volume::<H>(o.Instance, o.Volume);
    }
    STATUS_SUCCESS
}

/// Records an instance being attached, keyed by the instance: its volume's device name
/// and the volume's disk device object
/// (`FltGetDiskDeviceObject`, fltKernel.h, IRQL ≤ DISPATCH_LEVEL: `(PFLT_VOLUME,
/// PDEVICE_OBJECT*)`, checked against the WDK 10.0.22621 fltKernel.h and windows-sys
/// 0.61.2; "adds a reference", released with `ObDereferenceObject`, Microsoft Learn
/// "FltGetDiskDeviceObject"), which the table keeps until the DOS name is known, the
/// instance is given up or torn down. PASSIVE_LEVEL.
fn note_volume<H: Host>(instance: PFLT_INSTANCE, volume: PFLT_VOLUME) {
    let mut name = [0u16; MAX_DEVICE_UNITS];
    let Some(n) = volume_name(volume, &mut name) else {
        return;
    };
    let mut disk = core::ptr::null_mut();
    // SAFETY: the volume of the current instance setup; `disk` is a live local.
    let status = unsafe { FltGetDiskDeviceObject(volume, &mut disk) };
    if status < 0 || disk.is_null() {
        return; // no disk device (not a disk volume): device form
    }
    let disk: *mut c_void = disk.cast();
    let device = name.get(..n).unwrap_or(&[]);
    match with_volumes(|t| t.add_pending(instance_key(instance), device, disk_token(disk))) {
        Some(Some(back)) => H::release_disk(disk_from(back)),
        Some(None) => H::learn_volume_names(true),
        None => H::release_disk(disk), // no table
    }
}

/// An instance is gone (detach, dismount, unload; after its last operation): its entry,
/// and only its entry, leaves the volume table (another instance on the same volume keeps
/// its own), and the disk device object it held is released. Keyed by the instance: no
/// name query here, so a failing `FltGetVolumeName` cannot leave the entry or its
/// reference behind. IRQL: PASSIVE_LEVEL (fltkernel.h `PFLT_INSTANCE_TEARDOWN_CALLBACK`;
/// Microsoft Learn, "PFLT_INSTANCE_TEARDOWN_CALLBACK").
///
/// # Safety
/// Called by the Filter Manager with valid `objects`.
pub unsafe extern "system" fn instance_teardown_complete<H: Host>(
    objects: *const FLT_RELATED_OBJECTS,
    _reason: u32,
) {
    // SAFETY: the Filter Manager passes valid related objects for the call.
    let Some(o) = (unsafe { objects.as_ref() }) else {
        return;
    };
    if let Some(Some(back)) = with_volumes(|t| t.remove(instance_key(o.Instance))) {
        H::release_disk(disk_from(back));
    }
}

/// Manual detach (`fltmc detach`) is allowed: test VMs need it. IRQL: PASSIVE_LEVEL.
///
/// # Safety
/// Called by the Filter Manager (`PFLT_INSTANCE_QUERY_TEARDOWN_CALLBACK`).
pub unsafe extern "system" fn instance_query_teardown(
    _objects: *const FLT_RELATED_OBJECTS,
    _flags: u32,
) -> NTSTATUS {
    STATUS_SUCCESS
}
