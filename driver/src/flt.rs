//! The Filter Manager layer: registration table, pre-operation callbacks, instance setup,
//! name-information handling. FFI from `windows-sys` 0.61.2
//! (`Wdk::Storage::FileSystem::Minifilters`, linked to `fltmgr.sys`); wdk-sys 0.5 has no
//! Filter Manager bindings. Every declaration used here was checked against
//! `windows-sys-0.61.2/src/Windows/Wdk/Storage/FileSystem/Minifilters/mod.rs` and the
//! header it is generated from, `fltkernel.h` (Microsoft Learn, "fltkernel.h header"),
//! and the layouts against clang's offsets over the WDK's headers: where windows-sys
//! differs (`FLT_PARAMETERS` for create and set-information), `crate::fltwdk` reads them.
//!
//! Generic over [`Host`], which the wdk-sys layer (`kernel.rs`) implements. That keeps this
//! file free of wdk-sys, so it is type-checked on Linux:
//! `RUSTFLAGS="--cfg failsafe_fltcheck" cargo check -p failsafeflt --target x86_64-pc-windows-msvc`.
//!
//! Nothing here allocates: names come from the Filter Manager's name cache (released on
//! every path by [`NameInfo`]'s `Drop`), the process image is copied to the stack, and the
//! rule set is read through [`Active`] without a lock.

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, Ordering};

use failsafe_loader::{Action, EventType, Match};
use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
    FLT_CALLBACK_DATA, FLT_FILE_NAME_INFORMATION, FLT_FILE_NAME_NORMALIZED,
    FLT_FILE_NAME_QUERY_DEFAULT, FLT_IO_PARAMETER_BLOCK, FLT_OPERATION_REGISTRATION,
    FLT_PREOP_CALLBACK_STATUS, FLT_PREOP_COMPLETE, FLT_PREOP_SUCCESS_NO_CALLBACK, FLT_REGISTRATION,
    FLT_REGISTRATION_VERSION, FLT_RELATED_OBJECTS, FLTFL_CALLBACK_DATA_IRP_OPERATION,
    FLTFL_OPERATION_REGISTRATION_SKIP_PAGING_IO, FltAcquirePushLockExclusive,
    FltAcquirePushLockShared, FltDeletePushLock, FltGetDestinationFileNameInformation,
    FltGetDiskDeviceObject, FltGetFileNameInformation, FltGetRequestorProcessId, FltGetVolumeName,
    FltInitializePushLock, FltParseFileNameInformation, FltReleaseFileNameInformation,
    FltReleasePushLock, FltUnregisterFilter, IRP_MJ_OPERATION_END, PFLT_FILTER, PFLT_VOLUME,
};
use windows_sys::Wdk::Storage::FileSystem::{
    FILE_DISPOSITION_INFORMATION, FILE_DISPOSITION_INFORMATION_EX, FILE_RENAME_INFORMATION,
};
use windows_sys::Wdk::System::SystemServices::{
    IRP_MJ_CREATE, IRP_MJ_SET_INFORMATION, SL_OPEN_PAGING_FILE, SL_OPEN_TARGET_DIRECTORY,
};
use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_ACCESS_DENIED, STATUS_FLT_DO_NOT_ATTACH, STATUS_SUCCESS, UNICODE_STRING,
};
use windows_sys::Win32::Storage::InstallableFileSystems::{
    FLT_FILESYSTEM_TYPE, FLT_FSTYPE_NTFS, FLT_FSTYPE_REFS,
};
use windows_sys::Win32::System::Ioctl::FILE_DEVICE_DISK_FILE_SYSTEM;

use failsafe_loader::control::{AuditEvent, EventRing, WriteError};
// wdm.h / ntddk.h; windows-sys 0.61.2 Wdk::System::SystemServices (ntoskrnl.exe exports).
use windows_sys::Wdk::System::SystemServices::{
    KeEnterCriticalRegion, KeGetCurrentProcessorNumberEx, KeLeaveCriticalRegion,
};

use crate::active::{Active, Published, TryLock};
use crate::event::{
    CreateFacts, FILE_DISPOSITION_DELETE, FILE_DISPOSITION_INFORMATION as CLASS_DISPOSITION,
    FILE_DISPOSITION_INFORMATION_EX as CLASS_DISPOSITION_EX, SetInfoFacts, create_inputs, event,
    set_info_class_of_interest, set_info_inputs, without_stream,
};
use crate::guard::OwnDir;
use crate::proctable::{MAX_UNITS, ProcessTable};
use crate::volumes::{MAX_DEVICE_UNITS, MAX_PATH_UNITS, VolumeTable};

/// What the kernel layer provides to the callbacks.
pub trait Host: 'static {
    /// Records an audited or blocked operation (rate-limited `DbgPrintEx` in the driver).
    /// `vetoed`: a `block` that was not applied because the operation is inside the
    /// driver's own directory. Called at the callback's IRQL (PASSIVE_LEVEL or
    /// APC_LEVEL); must not block.
    fn report(m: &Match, kind: EventType, path: &[u16], pid: u64, vetoed: bool);
    /// The filter unload callback (PASSIVE_LEVEL): tear everything down, in order.
    fn unload(flags: u32) -> NTSTATUS;
    /// Some volume's DOS name is not known yet: have the kernel layer ask the mount
    /// manager, at PASSIVE_LEVEL outside this thread (its work item), at most once per
    /// `volumes::RETRY_INTERVAL` unless `now` (a volume just attached). Called at the
    /// callback's IRQL (≤ APC_LEVEL); must not block.
    fn learn_volume_names(now: bool);
    /// Releases the reference on a disk device object that `FltGetDiskDeviceObject`
    /// returned (`ObDereferenceObject`). IRQL ≤ DISPATCH_LEVEL.
    fn release_disk(disk: *mut c_void);
}

/// `KernelMode` (wdm.h `MODE`): the value of `FLT_CALLBACK_DATA::RequestorMode` for
/// kernel-mode requests.
const KERNEL_MODE: i8 = 0;
/// The System process id. Its kernel-mode requests are evaluated like any other (the SMB
/// server issues them for remote clients); only if the driver's own directory could not
/// be resolved are they exempt from `block`, so that content can still never block the
/// driver's own record writes.
const SYSTEM_PID: u64 = 4;
const NAME_OPTIONS: u32 = FLT_FILE_NAME_NORMALIZED | FLT_FILE_NAME_QUERY_DEFAULT;

/// The filter handle from `FltRegisterFilter` (`PFLT_FILTER` is `isize` in windows-sys).
pub static FILTER: AtomicIsize = AtomicIsize::new(0);
/// The active rule set.
pub static ACTIVE: Active = Active::new();
/// The driver's own directory, where `block` is never applied (`crate::guard`).
pub static OWN_DIR: Published<OwnDir> = Published::new();

/// A Filter Manager push lock guarding a value: readers share it (`&T`), a writer has it
/// alone (`&mut T`); each guard releases the lock when dropped. Push locks may be
/// acquired at IRQL ≤ APC_LEVEL (Microsoft Learn, "FltAcquirePushLockShared"), which is
/// where every user of this lock runs.
struct PushLock<T> {
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
struct Read<'a, T>(&'a PushLock<T>);
/// Exclusive access; releases the push lock on drop.
struct Write<'a, T>(&'a PushLock<T>);

impl<T> PushLock<T> {
    const fn new() -> Self {
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
    unsafe fn init(&self, value: T) {
        // SAFETY: the lock word is static and not yet in use (contract above).
        unsafe { FltInitializePushLock(self.lock.get()) };
        // SAFETY: no guard exists yet (contract above), so this is the only access.
        unsafe { *self.value.get() = Some(value) };
        self.ready.store(true, Ordering::Release);
    }

    /// Shared access (`None` before `init`). IRQL ≤ APC_LEVEL.
    fn read(&self) -> Option<Read<'_, T>> {
        if !self.ready.load(Ordering::Acquire) {
            return None;
        }
        // SAFETY: initialized lock (`ready`); callers run at IRQL ≤ APC_LEVEL.
        unsafe { FltAcquirePushLockShared(self.lock.get()) };
        Some(Read(self))
    }

    /// Exclusive access (`None` before `init`). IRQL ≤ APC_LEVEL.
    fn write(&self) -> Option<Write<'_, T>> {
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
    unsafe fn free(&self) {
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
    fn get(&self) -> Option<&T> {
        // SAFETY: the shared lock is held for the guard's lifetime: no writer exists.
        unsafe { (*self.0.value.get()).as_ref() }
    }
}

impl<T> Write<'_, T> {
    fn get(&mut self) -> Option<&mut T> {
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

/// The process table, filled by the process-notify routine, read by the callbacks.
static PROCESSES: PushLock<ProcessTable> = PushLock::new();

/// Installs the process table (PASSIVE_LEVEL, `DriverEntry`, before the process-notify
/// routine is registered).
///
/// # Safety
/// Called once, before any other function of this module touches the process table.
pub unsafe fn processes_init(table: ProcessTable) {
    // SAFETY: once, first (contract above).
    unsafe { PROCESSES.init(table) };
}

/// A process started (process-notify routine, PASSIVE_LEVEL): its image (`\??\C:\x` or
/// device form) is recorded as authors write it (`C:\x`, ADR 0013). The volume table's
/// lock is released before the process table's is taken: never both at once.
pub fn process_started(pid: u64, image: &[u16]) {
    let mut buf = [0u16; MAX_PATH_UNITS];
    let image = dos_path(image, &mut buf);
    if let Some(t) = PROCESSES.write().as_mut().and_then(Write::get) {
        t.insert(pid, image);
    }
}

/// A process exited (process-notify routine, PASSIVE_LEVEL).
pub fn process_exited(pid: u64) {
    if let Some(t) = PROCESSES.write().as_mut().and_then(Write::get) {
        t.remove(pid);
    }
}

/// The image of process `pid` from the process table into `out` (its length; 0 when
/// unknown). IRQL ≤ APC_LEVEL (the table's push lock).
pub fn process_image(pid: u64, out: &mut [u16; MAX_UNITS]) -> usize {
    let guard = PROCESSES.read();
    guard
        .as_ref()
        .and_then(Read::get)
        .map_or(0, |t| t.get_into(pid, out))
}

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

/// Queues an audit event with the process's image (callbacks, IRQL ≤ APC_LEVEL), inside a
/// critical region so that the thread cannot be suspended holding the queue.
fn audit(ev: &AuditEvent, path: &[u16]) {
    let mut image = [0u16; MAX_UNITS];
    let n = process_image(ev.pid, &mut image);
    let process = image.get(..n).unwrap_or(&[]);
    // SAFETY: IRQL ≤ APC_LEVEL (callbacks); paired below.
    unsafe { KeEnterCriticalRegion() };
    let queued = EVENTS.try_with(|q| {
        if let Some(ring) = q.as_mut() {
            ring.push(ev, path, process);
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

/// Frees the process table (unload, after the notify routine was removed and the filter
/// unregistered).
///
/// # Safety
/// No callback or notify routine may run concurrently or afterwards.
pub unsafe fn processes_free() {
    // SAFETY: contract above.
    unsafe { PROCESSES.free() };
}

/// Volume device name -> DOS name (ADR 0013): filled by instance setup (pending) and the
/// kernel layer's work item (DOS name), emptied by instance teardown, read by the
/// callbacks and the process-notify routine.
static VOLUMES: PushLock<VolumeTable> = PushLock::new();
/// Some volume of the table is pending (`VolumeTable::has_pending`), so that the callbacks
/// ask for the work item with one atomic read, without the lock.
static VOLUMES_PENDING: AtomicBool = AtomicBool::new(false);

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
/// layer's volume work item has finished).
///
/// # Safety
/// No callback, notify routine or work item may use the table concurrently or afterwards.
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
fn dos_path<'a>(path: &'a [u16], out: &'a mut [u16]) -> &'a [u16] {
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

/// Takes the next volume waiting for its DOS name at table index `from` or later: its
/// index, its device name in `out`, and its disk device object with the table's
/// reference, which the caller now owns and hands to [`volume_attempted`]. Kernel layer's
/// work item, PASSIVE_LEVEL.
pub fn take_pending_volume(
    from: usize,
    out: &mut [u16; MAX_DEVICE_UNITS],
) -> Option<(usize, usize, *mut c_void)> {
    with_volumes(|t| t.take_pending(from, out))
        .flatten()
        .map(|(i, n, disk)| (i, n, disk_from(disk)))
}

/// The outcome of asking the mount manager about a volume taken with
/// [`take_pending_volume`]: its DOS name, or `None` on failure. Returns the disk device
/// object when its reference is now the caller's to release (resolved, gone, given up),
/// `None` when the table kept it for another attempt.
pub fn volume_attempted(
    device: &[u16],
    disk: *mut c_void,
    dos: Option<&[u16]>,
) -> Option<*mut c_void> {
    let token = disk_token(disk);
    match with_volumes(|t| match dos {
        Some(dos) if t.resolve(device, dos) => Some(token),
        _ => t.failed(device, token),
    }) {
        Some(back) => back.map(disk_from),
        None => Some(disk), // no table: the reference stays with the caller
    }
}

/// Takes a disk device object still held by the volume table (unload, after the filter is
/// unregistered and the volume work item finished: every instance was torn down, so
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

/// Unregisters the filter (waits for every outstanding callback) and frees the rule set.
/// PASSIVE_LEVEL, from the unload path.
pub fn unregister_and_free() {
    let f: PFLT_FILTER = FILTER.swap(0, Ordering::AcqRel);
    if f != 0 {
        // SAFETY: `f` came from FltRegisterFilter and is unregistered exactly once (swap).
        unsafe { FltUnregisterFilter(f) };
    }
    // SAFETY: FltUnregisterFilter returned: no callback is running or will start.
    drop(unsafe { ACTIVE.take() });
    // SAFETY: FltUnregisterFilter returned, and the callbacks were its only readers: no
    // `with` runs or will start.
    drop(unsafe { OWN_DIR.take() });
}

/// A name from the Filter Manager, released on drop.
struct NameInfo(*mut FLT_FILE_NAME_INFORMATION);

impl NameInfo {
    fn from_raw(status: NTSTATUS, p: *mut FLT_FILE_NAME_INFORMATION) -> Option<Self> {
        if status < 0 || p.is_null() {
            return None;
        }
        let n = NameInfo(p);
        // SAFETY: `p` is a valid name information structure from the Filter Manager. A
        // parse failure leaves the components empty; `path` then keeps the whole name.
        let _ = unsafe { FltParseFileNameInformation(p) };
        Some(n)
    }

    fn units(s: &UNICODE_STRING) -> &[u16] {
        if s.Buffer.is_null() {
            return &[];
        }
        // SAFETY: a UNICODE_STRING from the Filter Manager describes `Length` bytes at
        // `Buffer`, valid while the name information is referenced (until drop).
        unsafe { core::slice::from_raw_parts(s.Buffer, usize::from(s.Length) / 2) }
    }

    /// The normalized name without an alternate data stream suffix.
    fn path(&self) -> &[u16] {
        // SAFETY: non-null (checked in from_raw) and referenced until drop.
        let info = unsafe { &*self.0 };
        without_stream(Self::units(&info.Name), usize::from(info.Stream.Length) / 2)
    }
}

impl Drop for NameInfo {
    fn drop(&mut self) {
        // SAFETY: obtained from FltGet*FileNameInformation, released exactly once.
        unsafe { FltReleaseFileNameInformation(self.0) };
    }
}

fn complete_denied(data: &mut FLT_CALLBACK_DATA) -> FLT_PREOP_CALLBACK_STATUS {
    data.IoStatus.Anonymous.Status = STATUS_ACCESS_DENIED;
    data.IoStatus.Information = 0;
    FLT_PREOP_COMPLETE
}

/// Content never blocks the driver's own directory (the operation's file, or a rename or
/// link target); if that directory is unknown, it never blocks the System process's
/// kernel-mode requests, which include the driver's own.
fn block_vetoed(req: &Requestor, path: &[u16], target: &[u16]) -> bool {
    OWN_DIR
        .with(|own| own.contains(path) || own.contains(target))
        .unwrap_or(req.kernel_mode && req.pid == SYSTEM_PID)
}

/// Applies a verdict. `data` stays a raw pointer until here: a `&mut` to the callback
/// data is formed only to complete a denied operation, never while the Filter Manager's
/// routines are also given the pointer.
///
/// # Safety
/// `data` is the callback data of the current callback.
unsafe fn apply<H: Host>(
    data: *mut FLT_CALLBACK_DATA,
    m: Option<Match>,
    kind: EventType,
    (path, target): (&[u16], &[u16]),
    req: &Requestor,
) -> FLT_PREOP_CALLBACK_STATUS {
    let pid = req.pid;
    match m {
        Some(m) if m.action == Action::Block => {
            let vetoed = block_vetoed(req, path, target);
            audit(&audit_event(&m, kind, pid, vetoed), path);
            H::report(&m, kind, path, pid, vetoed);
            // SAFETY: valid callback data (contract above); no other reference to it is
            // live here.
            match unsafe { data.as_mut() } {
                Some(d) if !vetoed => complete_denied(d),
                _ => FLT_PREOP_SUCCESS_NO_CALLBACK,
            }
        }
        Some(m) if m.action == Action::Audit => {
            audit(&audit_event(&m, kind, pid, false), path);
            H::report(&m, kind, path, pid, false);
            FLT_PREOP_SUCCESS_NO_CALLBACK
        }
        _ => FLT_PREOP_SUCCESS_NO_CALLBACK,
    }
}

fn audit_event(m: &Match, kind: EventType, pid: u64, vetoed: bool) -> AuditEvent {
    AuditEvent {
        action: m.action,
        event_type: kind,
        not_applied: vetoed,
        rule_id: m.rule_id,
        pid,
    }
}

/// Common early exits: not an IRP operation, or no content active (pass-through without
/// a name lookup).
fn skip(data: &FLT_CALLBACK_DATA) -> bool {
    data.Flags & FLTFL_CALLBACK_DATA_IRP_OPERATION == 0 || with_rules(|_| ()).is_none()
}

/// Reads the active rule set inside a critical region: the callbacks run in the caller's
/// thread, where a normal kernel APC (a user-mode `SuspendThread`) could otherwise stop
/// the thread while it is counted as a reader, and a live swap would then wait for it
/// with the record lock held. IRQL ≤ APC_LEVEL (Microsoft Learn, "KeEnterCriticalRegion").
fn with_rules<R>(f: impl FnOnce(&failsafe_loader::RuleSet) -> R) -> Option<R> {
    with_rules_paused(|| (), f)
}

/// [`with_rules`] with `pause` between the reader's count and its load
/// (`active::Swappable::with_on_paused`): the drill build's held reader (crate::drill).
fn with_rules_paused<R>(
    pause: impl FnOnce(),
    f: impl FnOnce(&failsafe_loader::RuleSet) -> R,
) -> Option<R> {
    // SAFETY: callable at IRQL ≤ APC_LEVEL, where every callback runs; paired below.
    unsafe { KeEnterCriticalRegion() };
    // SAFETY: a null PROCESSOR_NUMBER pointer is allowed (only the number is returned);
    // any IRQL.
    let cpu = unsafe { KeGetCurrentProcessorNumberEx(core::ptr::null_mut()) };
    let r = ACTIVE.with_on_paused(usize::try_from(cpu).unwrap_or(0), pause, f);
    // SAFETY: entered above, on this thread.
    unsafe { KeLeaveCriticalRegion() };
    r
}

/// A volume still waits for its DOS name: have the kernel layer try again (it limits how
/// often). One atomic read when none does.
fn poke_volumes<H: Host>() {
    if VOLUMES_PENDING.load(Ordering::Acquire) {
        H::learn_volume_names(false);
    }
}

/// Who asked for the operation.
struct Requestor {
    pid: u64,
    /// `RequestorMode == KernelMode`.
    kernel_mode: bool,
}

/// What both pre-operation callbacks start from: the requestor and the parameter block;
/// `None` when the operation is not evaluated. Reads the callback data through a shared
/// reference that ends here.
///
/// # Safety
/// `data` is the callback data the Filter Manager passed to the current callback.
unsafe fn prologue<'a>(
    data: *mut FLT_CALLBACK_DATA,
) -> Option<(Requestor, &'a FLT_IO_PARAMETER_BLOCK)> {
    // SAFETY: valid callback data for the duration of the call (contract above).
    let d = unsafe { data.as_ref() }?;
    if skip(d) {
        return None;
    }
    let kernel_mode = d.RequestorMode == KERNEL_MODE;
    // SAFETY: Iopb points to the parameter block of this callback data (a structure apart
    // from FLT_CALLBACK_DATA), valid for the call.
    let iopb = unsafe { d.Iopb.as_ref() }?;
    // SAFETY: `data` is the valid callback data of the current callback.
    let pid = u64::from(unsafe { FltGetRequestorProcessId(data) });
    Some((Requestor { pid, kernel_mode }, iopb))
}

/// The operation's normalized name (released when the result is dropped).
fn name_of(data: *mut FLT_CALLBACK_DATA) -> Option<NameInfo> {
    let mut raw = core::ptr::null_mut();
    // SAFETY: valid callback data (the callers' contract); the out pointer is a local.
    let status = unsafe { FltGetFileNameInformation(data, NAME_OPTIONS, &mut raw) };
    NameInfo::from_raw(status, raw)
}

/// Pre-operation callback for `IRP_MJ_CREATE`. IRQL: PASSIVE_LEVEL.
///
/// # Safety
/// Called by the Filter Manager with valid `data` and `objects` (fltkernel.h
/// `PFLT_PRE_OPERATION_CALLBACK`).
pub unsafe extern "system" fn pre_create<H: Host>(
    data: *mut FLT_CALLBACK_DATA,
    _objects: *const FLT_RELATED_OBJECTS,
    _context: *mut *mut c_void,
) -> FLT_PREOP_CALLBACK_STATUS {
    poke_volumes::<H>();
    // SAFETY: `data` comes from the Filter Manager for this callback.
    let Some((req, iopb)) = (unsafe { prologue(data) }) else {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    };
    let pid = req.pid;
    let flags = u32::from(iopb.OperationFlags);
    if flags & SL_OPEN_PAGING_FILE != 0 {
        return FLT_PREOP_SUCCESS_NO_CALLBACK; // paging files are the memory manager's
    }
    if flags & SL_OPEN_TARGET_DIRECTORY != 0 {
        // The target-directory open of a rename or hard link: the Filter Manager names the
        // parent directory, with the rename's access. The operation itself is evaluated in
        // pre-set-information, where its source and target are known.
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    }
    // SAFETY: for IRP_MJ_CREATE the `Create` member of the parameter union is the valid one.
    let create = unsafe { iopb.Parameters.Create };
    // SAFETY: SecurityContext is valid for a create (or null, then no access is known).
    let desired_access = unsafe { create.SecurityContext.as_ref() }.map_or(0, |s| s.DesiredAccess);
    // No name, no evaluation: the operation passes (the sensor fails open, never closed).
    let Some(name) = name_of(data) else {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    };
    let mut image = [0u16; MAX_UNITS];
    let n = process_image(pid, &mut image);
    let facts = CreateFacts {
        path: name.path(),
        process: image.get(..n).unwrap_or(&[]),
        pid,
        desired_access,
        options: create.Options,
        kernel_mode: req.kernel_mode,
    };
    let verdict = evaluate_create(&facts);
    // SAFETY: `data` is this callback's data.
    unsafe {
        apply::<H>(
            data,
            verdict,
            EventType::FileCreate,
            (facts.path, &[]),
            &req,
        )
    }
}

/// Pre-operation callback for `IRP_MJ_SET_INFORMATION` (rename, delete). IRQL:
/// PASSIVE_LEVEL or APC_LEVEL.
///
/// # Safety
/// As [`pre_create`].
pub unsafe extern "system" fn pre_set_information<H: Host>(
    data: *mut FLT_CALLBACK_DATA,
    objects: *const FLT_RELATED_OBJECTS,
    _context: *mut *mut c_void,
) -> FLT_PREOP_CALLBACK_STATUS {
    poke_volumes::<H>();
    // SAFETY: `data` comes from the Filter Manager for this callback.
    let Some((req, iopb)) = (unsafe { prologue(data) }) else {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    };
    let pid = req.pid;
    // In the WDK's layout (crate::fltwdk: windows-sys's `SetFileInformation` puts the class
    // and the buffer at other offsets).
    let p = crate::fltwdk::set_information(iopb);
    if !set_info_class_of_interest(p.class) || p.info_buffer.is_null() {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    }
    let len = usize::try_from(p.length).unwrap_or(0);
    let (delete, target) = match p.class {
        CLASS_DISPOSITION if len >= size_of::<FILE_DISPOSITION_INFORMATION>() => {
            // `DeleteFile` is a BOOLEAN the caller wrote: any non-zero byte deletes (file
            // systems test it as such), so it is read as a byte, never as a Rust `bool`
            // (a value other than 0 or 1 would be undefined behaviour, and read as false).
            // SAFETY: InfoBuffer is the system buffer of at least `Length` bytes (checked),
            // and DeleteFile is its first byte.
            let delete = unsafe { p.info_buffer.cast::<u8>().read() } != 0;
            (delete, None)
        }
        CLASS_DISPOSITION_EX if len >= size_of::<FILE_DISPOSITION_INFORMATION_EX>() => {
            // SAFETY: InfoBuffer is the system buffer (pool memory, so aligned) of at least
            // `Length` bytes, checked to hold the whole structure; `Flags` is a ULONG, for
            // which every bit pattern is valid.
            let flags = unsafe { (*p.info_buffer.cast::<FILE_DISPOSITION_INFORMATION_EX>()).Flags };
            (flags & FILE_DISPOSITION_DELETE != 0, None)
        }
        CLASS_DISPOSITION | CLASS_DISPOSITION_EX => return FLT_PREOP_SUCCESS_NO_CALLBACK,
        _ => (false, rename_target(objects, p.info_buffer, len)),
    };
    let Some(name) = name_of(data) else {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    };
    let mut image = [0u16; MAX_UNITS];
    let n = process_image(pid, &mut image);
    let facts = SetInfoFacts {
        path: name.path(),
        process: image.get(..n).unwrap_or(&[]),
        pid,
        class: p.class,
        target: target.as_ref().map_or(&[], NameInfo::path),
        delete,
        kernel_mode: req.kernel_mode,
    };
    let verdict = evaluate_set_info(&facts);
    // SAFETY: `data` is this callback's data.
    unsafe {
        apply::<H>(
            data,
            verdict,
            EventType::FileSetInfo,
            (facts.path, facts.target),
            &req,
        )
    }
}

/// Evaluates a create with its path as authors write it (`C:\...`, ADR 0013); `facts`
/// keeps the device form, which the own-directory guard and the audit line use. Its own
/// frame holds the converted path (1 KiB), so the callback's frame stays within the
/// image's stack budget (tests/tests/pe.rs); nothing is allocated.
#[inline(never)]
fn evaluate_create(facts: &CreateFacts<'_>) -> Option<Match> {
    let mut path = [0u16; MAX_PATH_UNITS];
    let facts = CreateFacts {
        path: dos_path(facts.path, &mut path),
        ..*facts
    };
    let inputs = create_inputs(&facts);
    with_rules_paused(
        || drill_hold(facts.pid, true),
        |rs| {
            drill_hold(facts.pid, false);
            rs.evaluate(&event(EventType::FileCreate, &inputs))
        },
    )
    .flatten()
}

/// The drill build's held reader (crate::drill): before the load, or inside the read.
/// Nothing in a release build.
#[inline(always)]
fn drill_hold(pid: u64, before_load: bool) {
    #[cfg(feature = "drill")]
    crate::drill::hold(
        pid,
        if before_load {
            crate::drill::Place::BeforeLoad
        } else {
            crate::drill::Place::Inside
        },
    );
    #[cfg(not(feature = "drill"))]
    let _ = (pid, before_load);
}

/// As [`evaluate_create`], for set-information: the path and the rename or link target
/// (2 KiB in this frame).
#[inline(never)]
fn evaluate_set_info(facts: &SetInfoFacts<'_>) -> Option<Match> {
    let mut path = [0u16; MAX_PATH_UNITS];
    let mut target = [0u16; MAX_PATH_UNITS];
    let facts = SetInfoFacts {
        path: dos_path(facts.path, &mut path),
        target: dos_path(facts.target, &mut target),
        ..*facts
    };
    let inputs = set_info_inputs(&facts);
    with_rules_paused(
        || drill_hold(facts.pid, true),
        |rs| {
            drill_hold(facts.pid, false);
            rs.evaluate(&event(EventType::FileSetInfo, &inputs))
        },
    )
    .flatten()
}

/// The normalized destination of a rename (`FltGetDestinationFileNameInformation`).
fn rename_target(
    objects: *const FLT_RELATED_OBJECTS,
    buffer: *mut c_void,
    len: usize,
) -> Option<NameInfo> {
    // SAFETY: the Filter Manager passes valid related objects for the call.
    let o = unsafe { objects.as_ref() }?;
    let info = buffer.cast::<FILE_RENAME_INFORMATION>();
    let header = core::mem::offset_of!(FILE_RENAME_INFORMATION, FileName);
    if len < size_of::<FILE_RENAME_INFORMATION>() {
        return None; // a reference below covers the whole fixed structure
    }
    // SAFETY: the system buffer holds at least a whole FILE_RENAME_INFORMATION (checked).
    let fixed = unsafe { &*info };
    let (root, name_len) = (fixed.RootDirectory, fixed.FileNameLength);
    if usize::try_from(name_len).ok()?.checked_add(header)? > len {
        return None;
    }
    // SAFETY: FileName lies inside the checked buffer.
    let name = unsafe { core::ptr::addr_of!((*info).FileName) }.cast::<u16>();
    let mut raw = core::ptr::null_mut();
    // SAFETY: valid instance and file object from the related objects; name and length
    // describe memory inside the rename buffer.
    let status = unsafe {
        FltGetDestinationFileNameInformation(
            o.Instance,
            o.FileObject,
            root,
            name,
            name_len,
            NAME_OPTIONS,
            &mut raw,
        )
    };
    NameInfo::from_raw(status, raw)
}

/// Attach to NTFS and ReFS volumes on disks only, and record the volume in the volume
/// table as waiting for its DOS name (ADR 0013). IRQL: PASSIVE_LEVEL.
///
/// The mount manager is *not* asked here: instance setup runs inside the volume's mount
/// (and, at boot, before the mount manager has assigned drive letters), so a synchronous
/// `IoVolumeDeviceToDosName` here could fail or wait on the mount that is waiting for this
/// callback. The kernel layer's work item asks later (`Host::learn_volume_names`). Nothing
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
    if volume_device_type != FILE_DEVICE_DISK_FILE_SYSTEM
        || (file_system != FLT_FSTYPE_NTFS && file_system != FLT_FSTYPE_REFS)
    {
        return STATUS_FLT_DO_NOT_ATTACH;
    }
    // SAFETY: the Filter Manager passes valid related objects for the call.
    if let Some(o) = unsafe { objects.as_ref() } {
        note_volume::<H>(o.Volume);
    }
    STATUS_SUCCESS
}

/// Records a volume being attached: its device name and its disk device object
/// (`FltGetDiskDeviceObject`, fltKernel.h, IRQL ≤ DISPATCH_LEVEL: `(PFLT_VOLUME,
/// PDEVICE_OBJECT*)`, checked against the WDK 10.0.22621 fltKernel.h and windows-sys
/// 0.61.2; "adds a reference", released with `ObDereferenceObject`, Microsoft Learn
/// "FltGetDiskDeviceObject"), which the table keeps until the DOS name is known, the volume
/// is given up or torn down. PASSIVE_LEVEL.
fn note_volume<H: Host>(volume: PFLT_VOLUME) {
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
    match with_volumes(|t| t.add_pending(device, disk_token(disk))) {
        Some(Some(back)) => H::release_disk(disk_from(back)),
        Some(None) => H::learn_volume_names(true),
        None => H::release_disk(disk), // no table
    }
}

/// An instance is gone (detach, dismount, unload; after its last operation): the volume
/// leaves the volume table, and the disk device object it held is released. IRQL:
/// PASSIVE_LEVEL (fltkernel.h `PFLT_INSTANCE_TEARDOWN_CALLBACK`; Microsoft Learn,
/// "PFLT_INSTANCE_TEARDOWN_CALLBACK").
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
    let mut name = [0u16; MAX_DEVICE_UNITS];
    let Some(n) = volume_name(o.Volume, &mut name) else {
        return;
    };
    let device = name.get(..n).unwrap_or(&[]);
    if let Some(Some(back)) = with_volumes(|t| t.remove(device)) {
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

/// Filter unload. IRQL: PASSIVE_LEVEL.
///
/// # Safety
/// Called by the Filter Manager (`PFLT_FILTER_UNLOAD_CALLBACK`).
pub unsafe extern "system" fn filter_unload<H: Host>(flags: u32) -> NTSTATUS {
    H::unload(flags)
}

/// A `u32` constant as the UCHAR/USHORT a registration field holds. `as` because
/// `TryFrom` is not `const`; every use is checked at compile time to fit.
#[allow(
    clippy::as_conversions,
    reason = "const context; fit asserted at compile time"
)]
const fn narrow_u8(v: u32) -> u8 {
    assert!(v <= 0xFF);
    v as u8
}
#[allow(
    clippy::as_conversions,
    reason = "const context; fit asserted at compile time"
)]
const fn narrow_u16(v: u32) -> u16 {
    assert!(v <= 0xFFFF);
    v as u16
}
#[allow(
    clippy::as_conversions,
    reason = "const context; fit asserted at compile time"
)]
const fn size_u16(v: usize) -> u16 {
    assert!(v <= 0xFFFF);
    v as u16
}

// `IRP_MJ_*` are u32 in windows-sys; the registration field is a UCHAR.
const MJ_CREATE: u8 = narrow_u8(IRP_MJ_CREATE);
const MJ_SET_INFORMATION: u8 = narrow_u8(IRP_MJ_SET_INFORMATION);
// IRP_MJ_OPERATION_END is a u16 in windows-sys.
#[allow(
    clippy::as_conversions,
    reason = "const context; fit asserted at compile time"
)]
const MJ_END: u8 = {
    assert!(IRP_MJ_OPERATION_END <= 0xFF);
    IRP_MJ_OPERATION_END as u8
};
const REGISTRATION_SIZE: u16 = size_u16(size_of::<FLT_REGISTRATION>());
const REGISTRATION_VERSION: u16 = narrow_u16(FLT_REGISTRATION_VERSION);

/// The operation table: create and set-information pre-callbacks, paging I/O skipped,
/// terminated by `IRP_MJ_OPERATION_END`.
pub const fn operations<H: Host>() -> [FLT_OPERATION_REGISTRATION; 3] {
    [
        FLT_OPERATION_REGISTRATION {
            MajorFunction: MJ_CREATE,
            Flags: 0,
            PreOperation: Some(pre_create::<H>),
            PostOperation: None,
            Reserved1: core::ptr::null_mut(),
        },
        FLT_OPERATION_REGISTRATION {
            MajorFunction: MJ_SET_INFORMATION,
            Flags: FLTFL_OPERATION_REGISTRATION_SKIP_PAGING_IO,
            PreOperation: Some(pre_set_information::<H>),
            PostOperation: None,
            Reserved1: core::ptr::null_mut(),
        },
        FLT_OPERATION_REGISTRATION {
            MajorFunction: MJ_END,
            Flags: 0,
            PreOperation: None,
            PostOperation: None,
            Reserved1: core::ptr::null_mut(),
        },
    ]
}

/// The registration structure (`FLT_REGISTRATION_VERSION` 0x203), pointing at `ops`.
pub const fn registration<H: Host>(ops: *const FLT_OPERATION_REGISTRATION) -> FLT_REGISTRATION {
    FLT_REGISTRATION {
        Size: REGISTRATION_SIZE,
        Version: REGISTRATION_VERSION,
        Flags: 0,
        ContextRegistration: core::ptr::null(),
        OperationRegistration: ops,
        FilterUnloadCallback: Some(filter_unload::<H>),
        InstanceSetupCallback: Some(instance_setup::<H>),
        InstanceQueryTeardownCallback: Some(instance_query_teardown),
        InstanceTeardownStartCallback: None,
        InstanceTeardownCompleteCallback: Some(instance_teardown_complete::<H>),
        GenerateFileNameCallback: None,
        NormalizeNameComponentCallback: None,
        NormalizeContextCleanupCallback: None,
        TransactionNotificationCallback: None,
        NormalizeNameComponentExCallback: None,
        SectionNotificationCallback: None,
    }
}

/// Read-only data that holds raw pointers, in a `static` (the registration table must
/// outlive the filter, as the C samples' global `const FLT_REGISTRATION`).
#[repr(transparent)]
pub struct Static<T>(pub T);

impl<T> core::fmt::Debug for Static<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Static(..)")
    }
}

// SAFETY: used only for tables that are never written after initialization.
unsafe impl<T> Sync for Static<T> {}
