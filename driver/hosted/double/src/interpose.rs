//! Kernel routines the double answers in the driver's place of Wine's — a test double of
//! parts of ntoskrnl, NOT a change to the driver's code: at `FltRegisterFilter` the double
//! rewrites six entries of the driver image's import address table (the image's own code
//! and data are untouched, and the image on disk is the one the kernel check linked).
//!
//! | routine | why | what the double does |
//! |---|---|---|
//! | `IoVolumeDeviceToDosName` | a stub in Wine 8.0 (`@ stub`: the first call ends the host) | answers for the double's disk device objects as the volume table says (letter, folder, GUID name, failures first); the buffer comes from `ExAllocatePoolWithTag` for the caller to free with `ExFreePool` (Microsoft Learn, "IoVolumeDeviceToDosName function (ntddk.h)") |
//! | `ExFreePool` | to see those buffers freed | forgets the buffer, then calls Wine's |
//! | `ObfDereferenceObject` | to see disk references dropped | counts dereferences of the double's disk device objects, then calls Wine's |
//! | `PsSetCreateProcessNotifyRoutineEx` | a stub in Wine (success, routine never called) | keeps the routine; the client's process records call it ("PsSetCreateProcessNotifyRoutineEx function (ntddk.h)": `STATUS_INVALID_PARAMETER` for a routine already registered, `STATUS_PROCEDURE_NOT_FOUND` when removing one that is not) |
//! | `IoRegisterShutdownNotification`, `IoUnregisterShutdownNotification` | stubs in Wine (no `IRP_MJ_SHUTDOWN` is ever sent) | keep the device; the shutdown request sends it `IRP_MJ_SHUTDOWN` (`IoBuildSynchronousFsdRequest`, `IoCallDriver`) |
//!
//! The table entries are found by walking the image's import directory (PE/COFF
//! specification: the import directory table, the import lookup table by name); the page
//! is made writable for the write with `ZwProtectVirtualMemory`, which Wine exports.

use core::ffi::c_void;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};

use windows_sys::Wdk::Foundation::{DEVICE_OBJECT, DRIVER_OBJECT, KEVENT};
use windows_sys::Wdk::System::SystemServices::PS_CREATE_NOTIFY_INFO;
use windows_sys::Win32::Foundation::{
    HANDLE, NTSTATUS, STATUS_INVALID_PARAMETER, STATUS_NOT_IMPLEMENTED, STATUS_PENDING,
    STATUS_PROCEDURE_NOT_FOUND, STATUS_SUCCESS, STATUS_UNSUCCESSFUL, UNICODE_STRING,
};
use windows_sys::Win32::System::IO::IO_STATUS_BLOCK;

use crate::ffi::{self, AllocateFn, ProtectFn};
use crate::kit::{self, Racy};
use crate::verify::{Code, violation};
use crate::volumes;

/// `PCREATE_PROCESS_NOTIFY_ROUTINE_EX` (ntddk.h).
type NotifyFn =
    unsafe extern "system" fn(process: *mut c_void, pid: HANDLE, info: *mut PS_CREATE_NOTIFY_INFO);

/// Originals (Wine's) of the routines that forward.
static ORIGINAL_EX_FREE_POOL: AtomicUsize = AtomicUsize::new(0);
static ORIGINAL_DEREFERENCE: AtomicUsize = AtomicUsize::new(0);

/// The driver's process notify routine (0: none) and calls into it in progress.
static NOTIFY: AtomicUsize = AtomicUsize::new(0);
static NOTIFY_IN_FLIGHT: AtomicU32 = AtomicU32::new(0);
/// The device registered for the shutdown notification.
static SHUTDOWN_DEVICE: AtomicPtr<DEVICE_OBJECT> = AtomicPtr::new(core::ptr::null_mut());
/// Entries rewritten at the last install.
pub static PATCHED: AtomicU32 = AtomicU32::new(0);

/// `IoVolumeDeviceToDosName` buffers handed out and not yet freed.
const BUFFERS: usize = 64;
static DOS_BUFFERS: [AtomicUsize; BUFFERS] = [const { AtomicUsize::new(0) }; BUFFERS];
/// Pool tag of those buffers ("FDdn").
const DOS_TAG: u32 = u32::from_le_bytes(*b"FDdn");

fn n(v: usize) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// Reads a `T` at `off` of the image, bounds-checked against its size.
///
/// # Safety
/// `base` is a mapped image of `size` bytes.
unsafe fn at<T: Copy>(base: *const u8, size: usize, off: usize) -> Option<T> {
    let end = off.checked_add(core::mem::size_of::<T>())?;
    if end > size {
        return None;
    }
    let p = base.wrapping_add(off).cast::<T>();
    // SAFETY: inside the image (checked), unaligned read of plain data.
    Some(unsafe { p.read_unaligned() })
}

/// Whether the NUL-terminated ASCII name at `off` equals `want` (ASCII case ignored).
///
/// # Safety
/// As [`at`].
unsafe fn name_is(base: *const u8, size: usize, off: usize, want: &[u8]) -> bool {
    for (i, &w) in want.iter().chain(core::iter::once(&0u8)).enumerate() {
        // SAFETY: the caller's contract; `at` checks bounds.
        let Some(c) = (unsafe { at::<u8>(base, size, off.saturating_add(i)) }) else {
            return false;
        };
        if !c.eq_ignore_ascii_case(&w) {
            return false;
        }
    }
    true
}

/// The routines rewritten, by the name the driver imports them under from ntoskrnl.exe:
/// the address of the double's replacement.
#[allow(
    clippy::as_conversions,
    reason = "a function's address for an import table entry"
)]
fn replacement(name: &[u8]) -> Option<usize> {
    let f: *const () = match name {
        b"IoVolumeDeviceToDosName" => io_volume_device_to_dos_name as *const (),
        b"ExFreePool" => ex_free_pool as *const (),
        b"ObfDereferenceObject" => obf_dereference_object as *const (),
        b"PsSetCreateProcessNotifyRoutineEx" => {
            ps_set_create_process_notify_routine_ex as *const ()
        }
        b"IoRegisterShutdownNotification" => io_register_shutdown_notification as *const (),
        b"IoUnregisterShutdownNotification" => io_unregister_shutdown_notification as *const (),
        _ => return None,
    };
    Some(f.addr())
}

const NAMES: [&[u8]; 6] = [
    b"IoVolumeDeviceToDosName",
    b"ExFreePool",
    b"ObfDereferenceObject",
    b"PsSetCreateProcessNotifyRoutineEx",
    b"IoRegisterShutdownNotification",
    b"IoUnregisterShutdownNotification",
];

/// Rewrites the driver's import entries (FltRegisterFilter, the driver's DriverEntry
/// thread, before it calls any of them: every one is called after its registration).
///
/// # Safety
/// `driver` is null or the driver object of a loaded image (`DriverStart`, `DriverSize`).
pub unsafe fn install(driver: *mut DRIVER_OBJECT) {
    // SAFETY: the driver object passed to FltRegisterFilter, valid during DriverEntry.
    let Some(d) = (unsafe { driver.as_ref() }) else {
        return;
    };
    let base = d.DriverStart.cast::<u8>().cast_const();
    let size = usize::try_from(d.DriverSize).unwrap_or(0);
    if base.is_null() || size == 0 {
        kit::log(c"interpose: driver image unknown (DriverStart null)", 0);
        return;
    }
    let protect = ffi::system_routine(&kit::wide::<22>("ZwProtectVirtualMemory"));
    if protect.is_null() {
        kit::log(
            c"interpose: ZwProtectVirtualMemory not exported; nothing rewritten",
            0,
        );
        return;
    }
    // SAFETY: the routine Wine exports under this name, with ProtectFn's signature
    // (ntdll's NtProtectVirtualMemory).
    let protect: ProtectFn = unsafe { core::mem::transmute::<*mut c_void, ProtectFn>(protect) };
    // SAFETY: `base` is the driver's mapped image of `size` bytes (DriverStart/DriverSize).
    let found = unsafe { walk_imports(base, size, protect) };
    PATCHED.store(found, Ordering::Release);
    kit::log(c"interpose: import entries rewritten:", u64::from(found));
}

/// Walks the import directory of the image and rewrites the entries named in [`NAMES`].
///
/// # Safety
/// `base` is a mapped PE32+ image of `size` bytes.
unsafe fn walk_imports(base: *const u8, size: usize, protect: ProtectFn) -> u32 {
    // SAFETY: the function's contract; `at` checks bounds (so below).
    let Some(pe) = (unsafe { at::<u32>(base, size, 0x3C) }) else {
        return 0;
    };
    let opt = usize::try_from(pe).unwrap_or(usize::MAX).saturating_add(24);
    // PE32+ optional header: data directory 1 (imports) at offset 120.
    // SAFETY: as above.
    let Some(imports) = (unsafe { at::<u32>(base, size, opt.saturating_add(120)) }) else {
        return 0;
    };
    let mut desc = usize::try_from(imports).unwrap_or(usize::MAX);
    let mut found = 0u32;
    loop {
        // Import directory entry: OriginalFirstThunk, TimeDateStamp, ForwarderChain, Name,
        // FirstThunk (five u32, 20 bytes), zero entry last.
        // SAFETY: as above.
        let (Some(lookup), Some(name), Some(iat)) = (
            unsafe { at::<u32>(base, size, desc) },
            unsafe { at::<u32>(base, size, desc.saturating_add(12)) },
            unsafe { at::<u32>(base, size, desc.saturating_add(16)) },
        ) else {
            return found;
        };
        if lookup == 0 && name == 0 {
            return found;
        }
        let name = usize::try_from(name).unwrap_or(usize::MAX);
        // SAFETY: as above.
        if unsafe { name_is(base, size, name, b"ntoskrnl.exe") } {
            // SAFETY: as above.
            found = found.saturating_add(unsafe { rewrite(base, size, lookup, iat, protect) });
        }
        desc = desc.saturating_add(20);
    }
}

/// Rewrites the matching entries of one module's import address table.
///
/// # Safety
/// As [`walk_imports`].
unsafe fn rewrite(base: *const u8, size: usize, lookup: u32, iat: u32, protect: ProtectFn) -> u32 {
    let lookup = usize::try_from(lookup).unwrap_or(usize::MAX);
    let iat = usize::try_from(iat).unwrap_or(usize::MAX);
    let mut found = 0u32;
    for i in 0..4096usize {
        let off = i.saturating_mul(8);
        // SAFETY: the contract; `at` checks bounds.
        let Some(entry) = (unsafe { at::<u64>(base, size, lookup.saturating_add(off)) }) else {
            return found;
        };
        if entry == 0 {
            return found;
        }
        if entry & (1 << 63) != 0 {
            continue; // by ordinal
        }
        // Hint/name table entry: u16 hint, then the name.
        let name_at = usize::try_from(entry & 0x7FFF_FFFF)
            .unwrap_or(usize::MAX)
            .saturating_add(2);
        for want in NAMES {
            // SAFETY: the contract.
            if !unsafe { name_is(base, size, name_at, want) } {
                continue;
            }
            let slot_off = iat.saturating_add(off);
            if slot_off.saturating_add(8) > size {
                continue;
            }
            let slot = base.wrapping_add(slot_off).cast_mut().cast::<usize>();
            // SAFETY: the import address table entry, aligned (8-byte entries of an
            // 8-aligned table in a PE32+ image).
            let original = unsafe { slot.read_volatile() };
            match want {
                b"ExFreePool" => ORIGINAL_EX_FREE_POOL.store(original, Ordering::Release),
                b"ObfDereferenceObject" => ORIGINAL_DEREFERENCE.store(original, Ordering::Release),
                _ => {}
            }
            let Some(new) = replacement(want) else {
                continue;
            };
            // SAFETY: `slot` is inside the image; ZwProtectVirtualMemory on it.
            if unsafe { write_protected(slot, new, protect) } {
                found = found.saturating_add(1);
            }
        }
    }
    found
}

/// Writes `value` to the read-only `slot`, lifting the page's protection for the write.
///
/// # Safety
/// `slot` is a mapped, aligned word of the current process.
unsafe fn write_protected(slot: *mut usize, value: usize, protect: ProtectFn) -> bool {
    let process: HANDLE = core::ptr::without_provenance_mut(usize::MAX); // NtCurrentProcess()
    let mut page: *mut c_void = slot.cast();
    let mut len = 8usize;
    let mut old = 0u32;
    // SAFETY: the current process's mapped page; out parameters are live locals.
    if unsafe { protect(process, &mut page, &mut len, ffi::PAGE_READWRITE, &mut old) } < 0 {
        return false;
    }
    // SAFETY: the page is writable now; `slot` is aligned and mapped.
    unsafe { slot.write_volatile(value) };
    let mut back = 0u32;
    let mut page: *mut c_void = slot.cast();
    let mut len = 8usize;
    // SAFETY: as above, restoring the previous protection.
    let _ = unsafe { protect(process, &mut page, &mut len, old, &mut back) };
    true
}

/// `size` bytes of read-write memory followed by an inaccessible page (null on failure):
/// `ZwAllocateVirtualMemory` then `ZwProtectVirtualMemory` on the last page.
pub fn guarded_region(size: usize) -> *mut u8 {
    let alloc = ffi::system_routine(&kit::wide::<23>("ZwAllocateVirtualMemory"));
    let protect = ffi::system_routine(&kit::wide::<22>("ZwProtectVirtualMemory"));
    if alloc.is_null() || protect.is_null() {
        return core::ptr::null_mut();
    }
    // SAFETY: Wine's exports with these signatures (ntdll's Nt* routines).
    let alloc: AllocateFn = unsafe { core::mem::transmute::<*mut c_void, AllocateFn>(alloc) };
    // SAFETY: as above.
    let protect: ProtectFn = unsafe { core::mem::transmute::<*mut c_void, ProtectFn>(protect) };
    let process: HANDLE = core::ptr::without_provenance_mut(usize::MAX);
    let mut base: *mut c_void = core::ptr::null_mut();
    let mut total = size.saturating_add(4096);
    // SAFETY: allocation in the current process; out parameters are live locals.
    if unsafe {
        alloc(
            process,
            &mut base,
            0,
            &mut total,
            ffi::MEM_COMMIT_RESERVE,
            ffi::PAGE_READWRITE,
        )
    } < 0
        || base.is_null()
    {
        return core::ptr::null_mut();
    }
    let mut guard: *mut c_void = base.cast::<u8>().wrapping_add(size).cast();
    let mut len = 4096usize;
    let mut old = 0u32;
    // SAFETY: the page just allocated.
    if unsafe { protect(process, &mut guard, &mut len, ffi::PAGE_NOACCESS, &mut old) } < 0 {
        return core::ptr::null_mut();
    }
    base.cast()
}

/// Forgets the driver (its image is going away); what it left was recorded before.
pub fn forget() {
    NOTIFY.store(0, Ordering::Release);
    SHUTDOWN_DEVICE.store(core::ptr::null_mut(), Ordering::Release);
    for b in &DOS_BUFFERS {
        b.store(0, Ordering::Release);
    }
}

/// `IoVolumeDeviceToDosName` buffers not freed.
pub fn dos_buffers_out() -> u32 {
    let k = DOS_BUFFERS
        .iter()
        .filter(|b| b.load(Ordering::Acquire) != 0)
        .count();
    u32::try_from(k).unwrap_or(u32::MAX)
}

/// A process notify routine is registered.
pub fn notify_registered() -> bool {
    NOTIFY.load(Ordering::Acquire) != 0
}

/// A shutdown notification is registered.
pub fn shutdown_registered() -> bool {
    !SHUTDOWN_DEVICE.load(Ordering::Acquire).is_null()
}

/// Calls the driver's process notify routine for a start (`image` given) or an exit
/// (PASSIVE_LEVEL, the dispatch thread); `STATUS_NOT_FOUND`-like failure when none.
pub fn deliver_process(pid: u32, image: Option<&[u16]>) -> NTSTATUS {
    NOTIFY_IN_FLIGHT.fetch_add(1, Ordering::AcqRel);
    let f = NOTIFY.load(Ordering::Acquire);
    let status = if f == 0 {
        STATUS_PROCEDURE_NOT_FOUND
    } else {
        // SAFETY: a routine the driver registered with this signature
        // (PCREATE_PROCESS_NOTIFY_ROUTINE_EX); removal waits for NOTIFY_IN_FLIGHT.
        let f: NotifyFn = unsafe { core::mem::transmute::<usize, NotifyFn>(f) };
        let pid_handle: HANDLE =
            core::ptr::without_provenance_mut(usize::try_from(pid).unwrap_or(0));
        // SAFETY: no arguments; Wine's current process object (the notify routine's
        // Process parameter: an EPROCESS).
        let process = unsafe { ffi::IoGetCurrentProcess() };
        match image {
            Some(img) => {
                let Some(mut name) = kit::unicode(img) else {
                    NOTIFY_IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
                    return STATUS_INVALID_PARAMETER;
                };
                // SAFETY: all-zero is valid for PS_CREATE_NOTIFY_INFO (integers, pointers).
                let mut info: PS_CREATE_NOTIFY_INFO = unsafe { core::mem::zeroed() };
                info.Size = core::mem::size_of::<PS_CREATE_NOTIFY_INFO>();
                info.ImageFileName = &mut name;
                // SAFETY: the driver's routine with a process, its id and creation
                // information valid for the call (PCREATE_PROCESS_NOTIFY_ROUTINE_EX).
                unsafe { f(process, pid_handle, &mut info) };
            }
            // SAFETY: an exit: CreateInfo is NULL (the same page).
            None => unsafe { f(process, pid_handle, core::ptr::null_mut()) },
        }
        STATUS_SUCCESS
    };
    NOTIFY_IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
    status
}

/// Sends `IRP_MJ_SHUTDOWN` to the device the driver registered for the shutdown
/// notification and waits for it (PASSIVE_LEVEL).
pub fn deliver_shutdown_notification() -> NTSTATUS {
    let dev = SHUTDOWN_DEVICE.load(Ordering::Acquire);
    if dev.is_null() {
        return STATUS_PROCEDURE_NOT_FOUND;
    }
    static EVENT: Racy<KEVENT> = Racy::new(KEVENT_ZERO);
    let mut iosb = IO_STATUS_BLOCK::default();
    // SAFETY: the double's static event, used by this request only (control requests are
    // handled one at a time); a notification event, not signalled.
    unsafe { ffi::KeInitializeEvent(EVENT.get(), ffi::NOTIFICATION_EVENT, 0) };
    // SAFETY: a device the driver registered and still owns; no buffer; the event and the
    // status block outlive the request (waited for below).
    let irp = unsafe {
        ffi::IoBuildSynchronousFsdRequest(
            ffi::IRP_MJ_SHUTDOWN,
            dev,
            core::ptr::null_mut(),
            0,
            core::ptr::null_mut(),
            EVENT.get(),
            &mut iosb,
        )
    };
    if irp.is_null() {
        return windows_sys::Win32::Foundation::STATUS_INSUFFICIENT_RESOURCES;
    }
    // SAFETY: the IRP just built for this device.
    let status = unsafe { ffi::IofCallDriver(dev, irp) };
    if status == STATUS_PENDING {
        // SAFETY: the event the I/O manager sets when the IRP completes.
        let _ = unsafe {
            ffi::KeWaitForSingleObject(
                EVENT.get().cast(),
                ffi::EXECUTIVE,
                ffi::KERNEL_MODE,
                0,
                core::ptr::null(),
            )
        };
        // SAFETY: the status the I/O manager copied on completion.
        return unsafe { iosb.Anonymous.Status };
    }
    status
}

const KEVENT_ZERO: KEVENT = {
    // SAFETY: KEVENT is a plain structure (DISPATCHER_HEADER); KeInitializeEvent sets it.
    unsafe { core::mem::zeroed() }
};

/// `IoVolumeDeviceToDosName` (ntddk.h: `NTSTATUS (PVOID VolumeDeviceObject,
/// PUNICODE_STRING DosName)`), for the double's disk device objects.
unsafe extern "system" fn io_volume_device_to_dos_name(
    device: *mut c_void,
    dos: *mut UNICODE_STRING,
) -> NTSTATUS {
    let Some((i, v)) = volumes::of_disk(device) else {
        kit::log(
            c"IoVolumeDeviceToDosName for a device the double does not know",
            n(device.addr()),
        );
        return STATUS_NOT_IMPLEMENTED;
    };
    v.dos_calls.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the caller's UNICODE_STRING (required by the page).
    let Some(out) = (unsafe { dos.as_mut() }) else {
        return STATUS_INVALID_PARAMETER;
    };
    if v.dos_fail_remaining
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |k| k.checked_sub(1))
        .is_ok()
    {
        return STATUS_UNSUCCESSFUL; // the mount manager has no name for it yet
    }
    let mut text = [0u16; 64];
    let len = match v.dos_kind() {
        volumes::dos::NAME => {
            let t = v.dos();
            for (d, &s) in text.iter_mut().zip(t) {
                *d = s;
            }
            t.len().min(text.len())
        }
        volumes::dos::GUID => {
            let g = kit::wide::<49>("\\\\?\\Volume{0b1c5a4e-0000-0000-0000-10000000000X}\\");
            for (d, &s) in text.iter_mut().zip(g.iter()) {
                *d = s;
            }
            if let Some(x) = text.get_mut(46) {
                *x = 0x30u16.saturating_add(u16::try_from(i).unwrap_or(0));
            }
            g.len()
        }
        _ => return STATUS_UNSUCCESSFUL,
    };
    let bytes = len.saturating_mul(2);
    // SAFETY: paged pool at PASSIVE_LEVEL (the caller's work item), the documented source
    // of the buffer the caller frees with ExFreePool.
    let buf =
        unsafe { ffi::ExAllocatePoolWithTag(ffi::PAGED_POOL, bytes.max(2), DOS_TAG) }.cast::<u16>();
    if buf.is_null() {
        return windows_sys::Win32::Foundation::STATUS_INSUFFICIENT_RESOURCES;
    }
    // SAFETY: `buf` holds `bytes` bytes, `text` at least `len` units.
    unsafe { core::ptr::copy_nonoverlapping(text.as_ptr(), buf, len) };
    if !DOS_BUFFERS.iter().any(|b| {
        b.compare_exchange(0, buf.addr(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }) {
        kit::log(
            c"DOS-name buffer table full; buffer not tracked",
            n(buf.addr()),
        );
    }
    let b16 = u16::try_from(bytes).unwrap_or(0);
    *out = UNICODE_STRING {
        Length: b16,
        MaximumLength: b16,
        Buffer: buf,
    };
    STATUS_SUCCESS
}

/// `ExFreePool` (wdm.h: `VOID (PVOID)`): forgets a DOS-name buffer, then Wine's.
unsafe extern "system" fn ex_free_pool(p: *mut c_void) {
    let a = p.addr();
    if a != 0 {
        for b in &DOS_BUFFERS {
            if b.compare_exchange(a, 0, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                break;
            }
        }
    }
    let f = ORIGINAL_EX_FREE_POOL.load(Ordering::Acquire);
    if f != 0 {
        // SAFETY: Wine's ExFreePool, whose import entry this replaced.
        let f: unsafe extern "system" fn(*mut c_void) =
            unsafe { core::mem::transmute::<usize, unsafe extern "system" fn(*mut c_void)>(f) };
        // SAFETY: the driver's own call, forwarded unchanged.
        unsafe { f(p) };
    }
}

/// `ObfDereferenceObject` (wdm.h: `LONG_PTR FASTCALL (PVOID)`): counts dereferences of
/// the double's disk device objects, then Wine's.
unsafe extern "system" fn obf_dereference_object(object: *mut c_void) -> isize {
    if let Some((i, v)) = volumes::of_disk(object)
        && v.disk_refs.fetch_sub(1, Ordering::AcqRel) <= 0
    {
        v.disk_refs.fetch_add(1, Ordering::AcqRel);
        violation(Code::DiskReferenceUnderflow, [n(i), n(object.addr()), 0]);
        return 0; // not forwarded: it would free the double's device object
    }
    let f = ORIGINAL_DEREFERENCE.load(Ordering::Acquire);
    if f == 0 {
        return 0;
    }
    // SAFETY: Wine's ObfDereferenceObject, whose import entry this replaced.
    let f: unsafe extern "system" fn(*mut c_void) -> isize = unsafe {
        core::mem::transmute::<usize, unsafe extern "system" fn(*mut c_void) -> isize>(f)
    };
    // SAFETY: the driver's own call, forwarded unchanged.
    unsafe { f(object) }
}

/// `PsSetCreateProcessNotifyRoutineEx` (ntddk.h: `NTSTATUS (PCREATE_PROCESS_NOTIFY_ROUTINE_EX,
/// BOOLEAN Remove)`).
unsafe extern "system" fn ps_set_create_process_notify_routine_ex(
    routine: usize,
    remove: u8,
) -> NTSTATUS {
    if remove == 0 {
        if NOTIFY
            .compare_exchange(0, routine, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return STATUS_INVALID_PARAMETER;
        }
        return STATUS_SUCCESS;
    }
    if NOTIFY
        .compare_exchange(routine, 0, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        violation(Code::NotifyRemoveUnknown, [n(routine), 0, 0]);
        return STATUS_PROCEDURE_NOT_FOUND;
    }
    // Removal returns once no call into the routine is in progress.
    while NOTIFY_IN_FLIGHT.load(Ordering::Acquire) != 0 {
        kit::sleep_ms(1);
    }
    STATUS_SUCCESS
}

/// `IoRegisterShutdownNotification` (wdm.h: `NTSTATUS (PDEVICE_OBJECT)`).
unsafe extern "system" fn io_register_shutdown_notification(
    device: *mut DEVICE_OBJECT,
) -> NTSTATUS {
    if device.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    SHUTDOWN_DEVICE.store(device, Ordering::Release);
    STATUS_SUCCESS
}

/// `IoUnregisterShutdownNotification` (wdm.h: `VOID (PDEVICE_OBJECT)`).
unsafe extern "system" fn io_unregister_shutdown_notification(device: *mut DEVICE_OBJECT) {
    let _ = SHUTDOWN_DEVICE.compare_exchange(
        device,
        core::ptr::null_mut(),
        Ordering::AcqRel,
        Ordering::Acquire,
    );
}
