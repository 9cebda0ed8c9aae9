//! Synthetic volumes and the filter's instances on them.
//!
//! A volume is a device name (`\Device\HarddiskVolume3`), a device type and a file-system
//! type, a disk device object (a real, unnamed device object the double creates, so that
//! references on it are real references), and the answer the mount manager gives for it
//! (`interpose::io_volume_device_to_dos_name`: a drive letter, a folder, a volume GUID
//! name, or failures first). [`DEFAULTS`] is the table at start; the client redefines and
//! configures volumes with volume commands ([`proto`](crate::proto)).
//!
//! Instances follow Microsoft Learn: `PFLT_INSTANCE_SETUP_CALLBACK` (attach: automatic at
//! `FltStartFiltering`, manual on request; a failure status means "not attached"),
//! `PFLT_INSTANCE_QUERY_TEARDOWN_CALLBACK` (manual detach only; without one, a manual detach
//! is refused), `PFLT_INSTANCE_TEARDOWN_CALLBACK` (start, then the instance's operations
//! drain, post-operation callbacks of paused operations are called with
//! `FLTFL_POST_OPERATION_DRAINING`, then complete), `FltGetVolumeName`,
//! `FltGetDiskDeviceObject`, `FltObjectReference` / `FltObjectDereference`,
//! `FltGetVolumeFromInstance`. Several instances of the filter
//! may sit on one volume at different altitudes; operations go through them from the
//! highest altitude down.
//!
//! Not implemented (the driver uses none): contexts (`FltAllocateContext`,
//! `FltGetInstanceContext`, ...), `FltAttachVolume` / `FltDetachVolume` called by the
//! driver, volume GUID names from `FltGetVolumeGuidName`.

use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicPtr, AtomicU32, Ordering};

use windows_sys::Wdk::Foundation::DEVICE_OBJECT;
use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
    FLT_RELATED_OBJECTS, FLTFL_INSTANCE_TEARDOWN_MANUAL, PFLT_FILTER, PFLT_INSTANCE, PFLT_VOLUME,
};
use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_BUFFER_TOO_SMALL, STATUS_FLT_DO_NOT_DETACH, STATUS_FLT_NO_DEVICE_OBJECT,
    STATUS_INVALID_PARAMETER, STATUS_SUCCESS, UNICODE_STRING,
};
use windows_sys::Win32::Storage::InstallableFileSystems::{
    FLT_FSTYPE_FAT, FLT_FSTYPE_MUP, FLT_FSTYPE_NTFS,
};

use crate::ffi;
use crate::filter;
use crate::kit::{self, Racy};
use crate::verify::{Code, violation};

/// Volumes the double can hold.
pub const VOLUMES: usize = 8;
/// Instances the double can hold.
pub const INSTANCES: usize = 16;
/// Longest device name or DOS answer (units).
pub const NAME_UNITS: usize = 128;
/// The altitude the INF gives the driver's default instance (inf/failsafeflt.inx).
pub const DEFAULT_ALTITUDE: u32 = 328_770;

/// What the mount manager answers for a volume (`IoVolumeDeviceToDosName`).
pub mod dos {
    /// A drive letter or folder (the volume's `dos` text).
    pub const NAME: u32 = 0;
    /// A volume GUID name (`\\?\Volume{...}\`): a volume without a letter.
    pub const GUID: u32 = 1;
    /// Always fails.
    pub const NONE: u32 = 2;
}

/// Volume flags.
pub mod flag {
    /// Attached when filtering starts (the INF's default instance).
    pub const AUTO: u32 = 1;
    /// `FltGetVolumeName` fails with `STATUS_BUFFER_TOO_SMALL` while one of the volume's
    /// instances is inside a teardown callback (injected; the only failures Microsoft
    /// documents are that and `STATUS_INVALID_PARAMETER`).
    pub const NAME_FAILS_IN_TEARDOWN: u32 = 2;
}

/// A synthetic volume.
pub struct Volume {
    defined: AtomicBool,
    name: Racy<[u16; NAME_UNITS]>,
    name_len: AtomicU32,
    fs_type: AtomicU32,
    device_type: AtomicU32,
    dos_kind: AtomicU32,
    dos: Racy<[u16; NAME_UNITS]>,
    dos_len: AtomicU32,
    /// `IoVolumeDeviceToDosName` fails this many more times before it answers.
    pub dos_fail_remaining: AtomicU32,
    flags: AtomicU32,
    disk: AtomicPtr<DEVICE_OBJECT>,
    /// References `FltGetDiskDeviceObject` handed out minus the dereferences seen.
    pub disk_refs: AtomicI64,
    /// `FltObjectReference` / `FltGetVolumeFromInstance` references held.
    pub refs: AtomicI64,
    /// `IoVolumeDeviceToDosName` calls for this volume.
    pub dos_calls: AtomicU32,
    /// `FltGetVolumeName` calls for this volume.
    pub name_calls: AtomicU32,
}

impl core::fmt::Debug for Volume {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Volume(..)")
    }
}

/// Instance states.
pub mod state {
    /// Slot free.
    pub const FREE: u32 = 0;
    /// `InstanceSetupCallback` running.
    pub const SETUP: u32 = 1;
    /// Attached: operations go through it.
    pub const ATTACHED: u32 = 2;
    /// Teardown started: no new operations; paused ones drain.
    pub const TEARING_DOWN: u32 = 3;
}

/// An instance of the filter on a volume.
#[derive(Debug)]
pub struct Instance {
    /// [`state`].
    pub state: AtomicU32,
    /// Index of its volume.
    pub volume: AtomicU32,
    /// Its altitude (a number; the INF's strings are decimal numbers).
    pub altitude: AtomicU32,
    /// Operations inside its callbacks or between its pre- and post-operation callback.
    pub in_flight: AtomicU32,
    /// `FltObjectReference` references held.
    pub refs: AtomicI64,
    /// Inside a teardown callback (for [`flag::NAME_FAILS_IN_TEARDOWN`]).
    pub in_teardown_callback: AtomicBool,
}

static VOLUME_TABLE: [Volume; VOLUMES] = [const {
    Volume {
        defined: AtomicBool::new(false),
        name: Racy::new([0; NAME_UNITS]),
        name_len: AtomicU32::new(0),
        fs_type: AtomicU32::new(0),
        device_type: AtomicU32::new(0),
        dos_kind: AtomicU32::new(dos::NONE),
        dos: Racy::new([0; NAME_UNITS]),
        dos_len: AtomicU32::new(0),
        dos_fail_remaining: AtomicU32::new(0),
        flags: AtomicU32::new(0),
        disk: AtomicPtr::new(core::ptr::null_mut()),
        disk_refs: AtomicI64::new(0),
        refs: AtomicI64::new(0),
        dos_calls: AtomicU32::new(0),
        name_calls: AtomicU32::new(0),
    }
}; VOLUMES];

static INSTANCE_TABLE: [Instance; INSTANCES] = [const {
    Instance {
        state: AtomicU32::new(state::FREE),
        volume: AtomicU32::new(0),
        altitude: AtomicU32::new(0),
        in_flight: AtomicU32::new(0),
        refs: AtomicI64::new(0),
        in_teardown_callback: AtomicBool::new(false),
    }
}; INSTANCES];

/// A default volume: device name, file-system type, device type, DOS answer, flags.
#[derive(Debug)]
pub struct Default {
    /// Device name.
    pub name: &'static str,
    /// `FLT_FILESYSTEM_TYPE`.
    pub fs_type: i32,
    /// `FILE_DEVICE_*` of the volume's file system.
    pub device_type: u32,
    /// [`dos`] kind.
    pub dos_kind: u32,
    /// Its DOS name when `dos_kind` is [`dos::NAME`].
    pub dos: &'static str,
    /// [`flag`]s.
    pub flags: u32,
}

/// The volumes at start (docs/windows.md, "The Filter Manager test double").
pub const DEFAULTS: [Default; 6] = [
    Default {
        name: "\\Device\\HarddiskVolume3",
        fs_type: FLT_FSTYPE_NTFS,
        device_type: crate::layout::wdk::FILE_DEVICE_DISK_FILE_SYSTEM,
        dos_kind: dos::NAME,
        dos: "C:",
        flags: flag::AUTO,
    },
    Default {
        name: "\\Device\\HarddiskVolume5",
        fs_type: FLT_FSTYPE_NTFS,
        device_type: crate::layout::wdk::FILE_DEVICE_DISK_FILE_SYSTEM,
        dos_kind: dos::NAME,
        dos: "D:",
        flags: flag::AUTO,
    },
    Default {
        name: "\\Device\\HarddiskVolume7",
        fs_type: FLT_FSTYPE_NTFS,
        device_type: crate::layout::wdk::FILE_DEVICE_DISK_FILE_SYSTEM,
        dos_kind: dos::GUID,
        dos: "",
        flags: flag::AUTO,
    },
    Default {
        name: "\\Device\\HarddiskVolume9",
        fs_type: FLT_FSTYPE_NTFS,
        device_type: crate::layout::wdk::FILE_DEVICE_DISK_FILE_SYSTEM,
        dos_kind: dos::NAME,
        dos: "C:\\mnt\\data",
        flags: flag::AUTO,
    },
    Default {
        name: "\\Device\\HarddiskVolume11",
        fs_type: FLT_FSTYPE_FAT,
        device_type: crate::layout::wdk::FILE_DEVICE_DISK_FILE_SYSTEM,
        dos_kind: dos::NAME,
        dos: "E:",
        flags: flag::AUTO,
    },
    Default {
        name: "\\Device\\Mup",
        fs_type: FLT_FSTYPE_MUP,
        device_type: crate::layout::wdk::FILE_DEVICE_NETWORK_FILE_SYSTEM,
        dos_kind: dos::NONE,
        dos: "",
        flags: flag::AUTO,
    },
];

fn ascii_into(dst: &mut [u16; NAME_UNITS], s: &str) -> u32 {
    let mut n = 0u32;
    for (d, b) in dst.iter_mut().zip(s.bytes()) {
        *d = u16::from(b);
        n = n.saturating_add(1);
    }
    n
}

/// Defines the default volumes (DriverEntry, before any other use of the tables).
pub fn init_defaults() {
    for (i, d) in DEFAULTS.iter().enumerate() {
        let Some(v) = VOLUME_TABLE.get(i) else {
            continue;
        };
        // SAFETY: DriverEntry, before the device exists and before any filter: no other
        // thread reads the tables yet.
        let n = ascii_into(unsafe { &mut *v.name.get() }, d.name);
        v.name_len.store(n, Ordering::Release);
        // SAFETY: as above.
        let m = ascii_into(unsafe { &mut *v.dos.get() }, d.dos);
        v.dos_len.store(m, Ordering::Release);
        v.fs_type.store(
            u32::from_ne_bytes(d.fs_type.to_ne_bytes()),
            Ordering::Release,
        );
        v.device_type.store(d.device_type, Ordering::Release);
        v.dos_kind.store(d.dos_kind, Ordering::Release);
        v.flags.store(d.flags, Ordering::Release);
        v.defined.store(true, Ordering::Release);
    }
}

/// Creates the disk device objects (DriverEntry; `IoCreateDevice`, unnamed, on the
/// double's own driver object).
///
/// # Safety
/// `driver` is the double's driver object, in its DriverEntry.
pub unsafe fn create_disks(driver: *mut windows_sys::Wdk::Foundation::DRIVER_OBJECT) {
    for v in &VOLUME_TABLE {
        let mut dev: *mut DEVICE_OBJECT = core::ptr::null_mut();
        // SAFETY: the double's driver object (DriverEntry); no name, no extension; `dev` a
        // live local.
        let status = unsafe {
            ffi::IoCreateDevice(
                driver,
                0,
                core::ptr::null(),
                ffi::FILE_DEVICE_DISK,
                0,
                0,
                &mut dev,
            )
        };
        if status >= 0 {
            v.disk.store(dev, Ordering::Release);
        }
    }
}

/// The volume at `i`.
pub fn volume(i: usize) -> Option<&'static Volume> {
    VOLUME_TABLE
        .get(i)
        .filter(|v| v.defined.load(Ordering::Acquire))
}

/// The volume a `PFLT_VOLUME` names (the double's handles are its table's addresses).
pub fn from_handle(h: PFLT_VOLUME) -> Option<(usize, &'static Volume)> {
    VOLUME_TABLE
        .iter()
        .enumerate()
        .find(|(_, v)| core::ptr::from_ref(*v).addr() == h.unsigned_abs())
}

/// The handle of volume `v`.
pub fn handle(v: &'static Volume) -> PFLT_VOLUME {
    handle_of(v)
}

fn handle_of<T>(p: &'static T) -> isize {
    isize::try_from(core::ptr::from_ref(p).addr()).unwrap_or(0)
}

/// The instance a `PFLT_INSTANCE` names.
pub fn instance_from_handle(h: PFLT_INSTANCE) -> Option<&'static Instance> {
    INSTANCE_TABLE
        .iter()
        .find(|i| core::ptr::from_ref(*i).addr() == h.unsigned_abs())
}

/// The handle of instance `i`.
pub fn instance_handle(i: &'static Instance) -> PFLT_INSTANCE {
    handle_of(i)
}

impl Volume {
    /// Its device name.
    pub fn name(&self) -> &[u16] {
        let n = usize::try_from(self.name_len.load(Ordering::Acquire)).unwrap_or(0);
        // SAFETY: written only while the volume is undefined or has no instance (define),
        // by the dispatch thread; readers see a completed name (Release/Acquire on len).
        unsafe { &*self.name.get() }.get(..n).unwrap_or(&[])
    }
    /// Its DOS answer text.
    pub fn dos(&self) -> &[u16] {
        let n = usize::try_from(self.dos_len.load(Ordering::Acquire)).unwrap_or(0);
        // SAFETY: as `name`.
        unsafe { &*self.dos.get() }.get(..n).unwrap_or(&[])
    }
    /// [`dos`] kind.
    pub fn dos_kind(&self) -> u32 {
        self.dos_kind.load(Ordering::Acquire)
    }
    /// Its disk device object.
    pub fn disk(&self) -> *mut DEVICE_OBJECT {
        self.disk.load(Ordering::Acquire)
    }
    /// [`flag`]s.
    pub fn flags(&self) -> u32 {
        self.flags.load(Ordering::Acquire)
    }
    fn types(&self) -> (u32, i32) {
        (
            self.device_type.load(Ordering::Acquire),
            i32::from_ne_bytes(self.fs_type.load(Ordering::Acquire).to_ne_bytes()),
        )
    }
}

/// Redefines volume `i` (name, types, DOS answer, flags): refused while it has instances.
pub fn define(
    i: usize,
    name: &[u16],
    fs_type: u32,
    device_type: u32,
    dos_text: &[u16],
    dos_kind: u32,
    flags: u32,
) -> NTSTATUS {
    let Some(v) = VOLUME_TABLE.get(i) else {
        return STATUS_INVALID_PARAMETER;
    };
    if name.len() > NAME_UNITS || dos_text.len() > NAME_UNITS || instances_on(i).next().is_some() {
        return STATUS_INVALID_PARAMETER;
    }
    v.defined.store(false, Ordering::Release);
    // SAFETY: the dispatch thread (control requests are handled one at a time there), the
    // volume undefined and without instances: nobody reads the text.
    let dst = unsafe { &mut *v.name.get() };
    for (d, &s) in dst.iter_mut().zip(name) {
        *d = s;
    }
    // SAFETY: as above.
    let dd = unsafe { &mut *v.dos.get() };
    for (d, &s) in dd.iter_mut().zip(dos_text) {
        *d = s;
    }
    v.name_len
        .store(u32::try_from(name.len()).unwrap_or(0), Ordering::Release);
    v.dos_len.store(
        u32::try_from(dos_text.len()).unwrap_or(0),
        Ordering::Release,
    );
    v.fs_type.store(fs_type, Ordering::Release);
    v.device_type.store(device_type, Ordering::Release);
    v.dos_kind.store(dos_kind, Ordering::Release);
    v.flags.store(flags, Ordering::Release);
    v.defined.store(!name.is_empty(), Ordering::Release);
    STATUS_SUCCESS
}

/// Sets volume `i`'s DOS-name failures and flags (no instance restriction).
pub fn configure(i: usize, dos_failures: u32, dos_kind: Option<u32>, flags: u32) -> NTSTATUS {
    let Some(v) = volume(i) else {
        return STATUS_INVALID_PARAMETER;
    };
    v.dos_fail_remaining.store(dos_failures, Ordering::Release);
    if let Some(k) = dos_kind {
        v.dos_kind.store(k, Ordering::Release);
    }
    v.flags.store(flags, Ordering::Release);
    STATUS_SUCCESS
}

/// Live instances on volume `vol`, any state but free.
pub fn instances_on(vol: usize) -> impl Iterator<Item = &'static Instance> {
    let vol = u32::try_from(vol).unwrap_or(u32::MAX);
    INSTANCE_TABLE.iter().filter(move |i| {
        i.state.load(Ordering::Acquire) != state::FREE && i.volume.load(Ordering::Acquire) == vol
    })
}

/// Attached instances on volume `vol`, highest altitude first (at most two: the double
/// models up to two instances of the filter per volume in one operation).
pub fn attached_on(vol: usize) -> [Option<&'static Instance>; 2] {
    let mut out: [Option<&'static Instance>; 2] = [None, None];
    for i in instances_on(vol).filter(|i| i.state.load(Ordering::Acquire) == state::ATTACHED) {
        let alt = i.altitude.load(Ordering::Acquire);
        match out {
            [None, _] => out[0] = Some(i),
            [Some(a), None] => {
                if alt > a.altitude.load(Ordering::Acquire) {
                    out = [Some(i), Some(a)];
                } else {
                    out[1] = Some(i);
                }
            }
            [Some(a), Some(_)] => {
                if alt > a.altitude.load(Ordering::Acquire) {
                    out = [Some(i), Some(a)];
                }
            }
        }
    }
    out
}

/// Related objects for a callback on instance `inst` (no file object).
pub fn related(filter: PFLT_FILTER, inst: &'static Instance) -> FLT_RELATED_OBJECTS {
    let vol = usize::try_from(inst.volume.load(Ordering::Acquire)).unwrap_or(usize::MAX);
    FLT_RELATED_OBJECTS {
        Size: u16::try_from(core::mem::size_of::<FLT_RELATED_OBJECTS>()).unwrap_or(0),
        TransactionContext: 0,
        Filter: filter,
        Volume: VOLUME_TABLE.get(vol).map_or(0, handle_of),
        Instance: instance_handle(inst),
        FileObject: core::ptr::null(),
        Transaction: core::ptr::null(),
    }
}

/// Attaches the filter to volume `vol` at `altitude` (`InstanceSetupCallback` with
/// `flags`); returns the instance's index, or the setup callback's failure status.
pub fn attach(vol: usize, altitude: u32, flags: u32) -> Result<usize, NTSTATUS> {
    let Some(v) = volume(vol) else {
        return Err(STATUS_INVALID_PARAMETER);
    };
    if instances_on(vol).any(|i| i.altitude.load(Ordering::Acquire) == altitude) {
        return Err(windows_sys::Win32::Foundation::STATUS_FLT_INSTANCE_ALTITUDE_COLLISION);
    }
    let Some((idx, inst)) = INSTANCE_TABLE.iter().enumerate().find(|(_, i)| {
        i.state
            .compare_exchange(
                state::FREE,
                state::SETUP,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }) else {
        return Err(windows_sys::Win32::Foundation::STATUS_INSUFFICIENT_RESOURCES);
    };
    inst.volume
        .store(u32::try_from(vol).unwrap_or(u32::MAX), Ordering::Release);
    inst.altitude.store(altitude, Ordering::Release);
    inst.refs.store(0, Ordering::Release);
    inst.in_flight.store(0, Ordering::Release);
    let (device_type, fs_type) = v.types();
    let status = filter::instance_setup(inst, flags, device_type, fs_type);
    if status < 0 {
        inst.state.store(state::FREE, Ordering::Release);
        return Err(status);
    }
    inst.state.store(state::ATTACHED, Ordering::Release);
    Ok(idx)
}

/// Detaches instance `idx` by hand: `InstanceQueryTeardownCallback` first (refused
/// without one, as Microsoft Learn says), then the teardown.
pub fn detach(idx: usize) -> NTSTATUS {
    let Some(inst) = INSTANCE_TABLE.get(idx) else {
        return STATUS_INVALID_PARAMETER;
    };
    if inst.state.load(Ordering::Acquire) != state::ATTACHED {
        return STATUS_INVALID_PARAMETER;
    }
    let status = filter::instance_query_teardown(inst);
    if status < 0 {
        return status;
    }
    teardown(inst, FLTFL_INSTANCE_TEARDOWN_MANUAL);
    STATUS_SUCCESS
}

/// The instance at `idx`.
pub fn instance(idx: usize) -> Option<&'static Instance> {
    INSTANCE_TABLE.get(idx)
}

/// Index of an instance.
pub fn instance_index(inst: &'static Instance) -> usize {
    INSTANCE_TABLE
        .iter()
        .position(|i| core::ptr::eq(i, inst))
        .unwrap_or(usize::MAX)
}

/// Tears instance `inst` down with `reason` (manual detach, dismount, filter unload):
/// teardown-start, wait for its operations (paused ones are completed as draining), then
/// teardown-complete; references still held after that are a violation.
pub fn teardown(inst: &'static Instance, reason: u32) {
    if inst.state.swap(state::TEARING_DOWN, Ordering::AcqRel) == state::FREE {
        inst.state.store(state::FREE, Ordering::Release);
        return;
    }
    inst.in_teardown_callback.store(true, Ordering::Release);
    filter::instance_teardown(inst, reason, false);
    inst.in_teardown_callback.store(false, Ordering::Release);
    // Operations between pre and post notice TEARING_DOWN and finish as draining.
    let mut waited = 0u32;
    while inst.in_flight.load(Ordering::Acquire) != 0 {
        kit::sleep_ms(1);
        waited = waited.saturating_add(1);
        if waited == 30_000 {
            kit::log(
                c"teardown still waiting for operations of instance",
                kit::n(instance_index(inst)),
            );
        }
    }
    inst.in_teardown_callback.store(true, Ordering::Release);
    filter::instance_teardown(inst, reason, true);
    inst.in_teardown_callback.store(false, Ordering::Release);
    let held = inst.refs.load(Ordering::Acquire);
    if held != 0 {
        violation(
            Code::InstanceReferenceHeld,
            [
                kit::n(instance_index(inst)),
                held.unsigned_abs(),
                u64::from(reason),
            ],
        );
        inst.refs.store(0, Ordering::Release);
    }
    inst.state.store(state::FREE, Ordering::Release);
}

/// Tears down every instance on volume `vol` (a dismount).
pub fn dismount(vol: usize) -> u32 {
    let mut n = 0u32;
    for inst in INSTANCE_TABLE.iter() {
        if inst.state.load(Ordering::Acquire) == state::ATTACHED
            && usize::try_from(inst.volume.load(Ordering::Acquire)).ok() == Some(vol)
        {
            teardown(
                inst,
                windows_sys::Wdk::Storage::FileSystem::Minifilters::FLTFL_INSTANCE_TEARDOWN_VOLUME_DISMOUNT,
            );
            n = n.saturating_add(1);
        }
    }
    n
}

/// Every live instance (filter unload tears all of them down).
pub fn live_instances() -> impl Iterator<Item = &'static Instance> {
    INSTANCE_TABLE
        .iter()
        .filter(|i| i.state.load(Ordering::Acquire) != state::FREE)
}

/// Attaches every volume flagged [`flag::AUTO`] (FltStartFiltering).
pub fn attach_automatic() {
    for (i, v) in VOLUME_TABLE.iter().enumerate() {
        if v.defined.load(Ordering::Acquire) && v.flags() & flag::AUTO != 0 {
            let _ = attach(
                i,
                DEFAULT_ALTITUDE,
                windows_sys::Wdk::Storage::FileSystem::Minifilters::FLTFL_INSTANCE_SETUP_AUTOMATIC_ATTACHMENT,
            );
        }
    }
}

/// Volume index of a disk device object the double created.
pub fn of_disk(dev: *mut c_void) -> Option<(usize, &'static Volume)> {
    if dev.is_null() {
        return None;
    }
    VOLUME_TABLE
        .iter()
        .enumerate()
        .find(|(_, v)| v.disk().cast::<c_void>() == dev)
}

/// Sum of disk references not dropped, over all volumes.
pub fn disk_refs_out() -> i64 {
    VOLUME_TABLE
        .iter()
        .map(|v| v.disk_refs.load(Ordering::Acquire))
        .fold(0, i64::saturating_add)
}

/// Sum of volume references (`FltObjectReference`, `FltGetVolumeFromInstance`) held.
pub fn volume_refs_out() -> i64 {
    VOLUME_TABLE
        .iter()
        .map(|v| v.refs.load(Ordering::Acquire))
        .fold(0, i64::saturating_add)
}

/// `FltGetVolumeName` (fltKernel.h: `NTSTATUS (PFLT_VOLUME, PUNICODE_STRING, PULONG)`,
/// Microsoft Learn "FltGetVolumeName function"): the volume's device name; both
/// arguments null is `STATUS_INVALID_PARAMETER`; a buffer too small is
/// `STATUS_BUFFER_TOO_SMALL` with the size needed.
///
/// # Safety
/// Called by the driver; `name` and `needed` are null or valid.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn FltGetVolumeName(
    volume: PFLT_VOLUME,
    name: *mut UNICODE_STRING,
    needed: *mut u32,
) -> NTSTATUS {
    let Some((vi, v)) = from_handle(volume) else {
        violation(Code::ObjectUnknown, [kit::n(volume.unsigned_abs()), 1, 0]);
        return STATUS_INVALID_PARAMETER;
    };
    v.name_calls.fetch_add(1, Ordering::Relaxed);
    if name.is_null() && needed.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    let src = v.name();
    let bytes = u32::try_from(src.len().saturating_mul(2)).unwrap_or(u32::MAX);
    // SAFETY: null or the caller's ULONG.
    if let Some(n) = unsafe { needed.as_mut() } {
        *n = bytes;
    }
    let failing = v.flags() & flag::NAME_FAILS_IN_TEARDOWN != 0
        && instances_on(vi).any(|i| i.in_teardown_callback.load(Ordering::Acquire));
    // SAFETY: null or the caller's UNICODE_STRING.
    let Some(out) = (unsafe { name.as_mut() }) else {
        return STATUS_BUFFER_TOO_SMALL;
    };
    if failing || u32::from(out.MaximumLength) < bytes || out.Buffer.is_null() {
        return STATUS_BUFFER_TOO_SMALL;
    }
    // SAFETY: the caller's buffer holds MaximumLength ≥ `bytes` bytes (checked).
    let dst = unsafe { core::slice::from_raw_parts_mut(out.Buffer, src.len()) };
    dst.copy_from_slice(src);
    out.Length = u16::try_from(bytes).unwrap_or(0);
    STATUS_SUCCESS
}

/// `FltGetDiskDeviceObject` (fltKernel.h: `NTSTATUS (PFLT_VOLUME, PDEVICE_OBJECT*)`,
/// Microsoft Learn "FltGetDiskDeviceObject function"): the volume's disk device object with
/// a reference the caller drops with `ObDereferenceObject` (counted through
/// [`interpose`](crate::interpose)); a volume without one (the network volume) is
/// `STATUS_FLT_NO_DEVICE_OBJECT`.
///
/// # Safety
/// Called by the driver; `out` valid.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn FltGetDiskDeviceObject(
    volume: PFLT_VOLUME,
    out: *mut *mut DEVICE_OBJECT,
) -> NTSTATUS {
    let Some((_, v)) = from_handle(volume) else {
        violation(Code::ObjectUnknown, [kit::n(volume.unsigned_abs()), 2, 0]);
        return STATUS_INVALID_PARAMETER;
    };
    // SAFETY: the caller's out pointer (required, per the page).
    let Some(out) = (unsafe { out.as_mut() }) else {
        return STATUS_INVALID_PARAMETER;
    };
    let disk = v.disk();
    let (device_type, _) = v.types();
    if disk.is_null() || device_type == crate::layout::wdk::FILE_DEVICE_NETWORK_FILE_SYSTEM {
        return STATUS_FLT_NO_DEVICE_OBJECT;
    }
    // SAFETY: a device object the double created and still owns.
    let _ = unsafe { ffi::ObfReferenceObject(disk.cast()) };
    v.disk_refs.fetch_add(1, Ordering::AcqRel);
    *out = disk;
    STATUS_SUCCESS
}

/// `FltObjectReference` (fltKernel.h: `NTSTATUS (PVOID FltObject)`, Microsoft Learn
/// "FltObjectReference function"): a rundown reference on a filter, volume or instance.
///
/// # Safety
/// Called by the driver.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn FltObjectReference(object: *mut c_void) -> NTSTATUS {
    let h = isize::try_from(object.addr()).unwrap_or(0);
    if let Some(i) = instance_from_handle(h) {
        if i.state.load(Ordering::Acquire) != state::ATTACHED {
            return windows_sys::Win32::Foundation::STATUS_FLT_DELETING_OBJECT;
        }
        i.refs.fetch_add(1, Ordering::AcqRel);
        return STATUS_SUCCESS;
    }
    if let Some((_, v)) = from_handle(h) {
        v.refs.fetch_add(1, Ordering::AcqRel);
        return STATUS_SUCCESS;
    }
    filter::reference(h)
}

/// `FltObjectDereference` (fltKernel.h: `VOID (PVOID FltObject)`).
///
/// # Safety
/// Called by the driver.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn FltObjectDereference(object: *mut c_void) {
    let h = isize::try_from(object.addr()).unwrap_or(0);
    let counter = instance_from_handle(h)
        .map(|i| &i.refs)
        .or_else(|| from_handle(h).map(|(_, v)| &v.refs))
        .or_else(|| filter::refs_of(h));
    match counter {
        Some(c) => {
            if c.fetch_sub(1, Ordering::AcqRel) <= 0 {
                c.fetch_add(1, Ordering::AcqRel);
                violation(
                    Code::ObjectReferenceUnderflow,
                    [kit::n(h.unsigned_abs()), 0, 0],
                );
            }
        }
        None => violation(Code::ObjectUnknown, [kit::n(h.unsigned_abs()), 3, 0]),
    }
}

/// `FltGetVolumeFromInstance` (fltKernel.h: `NTSTATUS (PFLT_INSTANCE, PFLT_VOLUME*)`):
/// the instance's volume with a reference (`FltObjectDereference` drops it).
///
/// # Safety
/// Called by the driver; `out` valid.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn FltGetVolumeFromInstance(
    instance: PFLT_INSTANCE,
    out: *mut PFLT_VOLUME,
) -> NTSTATUS {
    let Some(i) = instance_from_handle(instance) else {
        violation(Code::ObjectUnknown, [kit::n(instance.unsigned_abs()), 4, 0]);
        return STATUS_INVALID_PARAMETER;
    };
    // SAFETY: the caller's out pointer.
    let Some(out) = (unsafe { out.as_mut() }) else {
        return STATUS_INVALID_PARAMETER;
    };
    if i.state.load(Ordering::Acquire) == state::FREE {
        return windows_sys::Win32::Foundation::STATUS_FLT_DELETING_OBJECT;
    }
    let vol = usize::try_from(i.volume.load(Ordering::Acquire)).unwrap_or(usize::MAX);
    let Some(v) = VOLUME_TABLE.get(vol) else {
        return STATUS_INVALID_PARAMETER;
    };
    v.refs.fetch_add(1, Ordering::AcqRel);
    *out = handle_of(v);
    STATUS_SUCCESS
}

/// A manual detach refused (no query-teardown callback, per Microsoft Learn).
pub const DETACH_REFUSED: NTSTATUS = STATUS_FLT_DO_NOT_DETACH;
