//! Kernel routines the double calls, declared here (not taken from windows-sys, which binds
//! some of them to ntdll.dll, REFERENCES.md's trap) and resolved at link time against
//! MinGW-w64's `libntoskrnl.a` / `libhal.a` (build.rs). Signatures from the WDK's wdm.h /
//! ntddk.h / ntifs.h (10.0.22621) and the Microsoft Learn page of each routine; Wine 8.0
//! implements every one of them (its `ntoskrnl.exe.spec`: none is a stub).
//!
//! `ZwProtectVirtualMemory` and `ZwAllocateVirtualMemory`, which Windows' ntoskrnl does not
//! export to drivers but Wine's does, are resolved at run time ([`system_routine`]).

#![allow(non_snake_case, reason = "kernel routine names")]

use core::ffi::c_void;

use windows_sys::Wdk::Foundation::{DEVICE_OBJECT, DRIVER_OBJECT, IRP, KEVENT};
use windows_sys::Win32::Foundation::{HANDLE, NTSTATUS, UNICODE_STRING};

/// `KernelMode` (wdm.h `MODE`).
pub const KERNEL_MODE: i8 = 0;
/// `Executive` (wdm.h `KWAIT_REASON`).
pub const EXECUTIVE: u32 = 0;
/// `NotificationEvent` / `SynchronizationEvent` (wdm.h `EVENT_TYPE`).
pub const NOTIFICATION_EVENT: u32 = 0;
/// See [`NOTIFICATION_EVENT`].
pub const SYNCHRONIZATION_EVENT: u32 = 1;
/// `PagedPool` / `NonPagedPoolNx` (wdm.h `POOL_TYPE`).
pub const PAGED_POOL: u32 = 1;
/// See [`PAGED_POOL`].
pub const NON_PAGED_POOL_NX: u32 = 512;
/// `FILE_DEVICE_UNKNOWN`, `FILE_DEVICE_DISK` (wdm.h).
pub const FILE_DEVICE_UNKNOWN: u32 = 0x22;
/// See [`FILE_DEVICE_UNKNOWN`].
pub const FILE_DEVICE_DISK: u32 = 0x07;
/// `THREAD_ALL_ACCESS` as `PsCreateSystemThread` callers pass it (0x1F03FF).
pub const THREAD_ALL_ACCESS: u32 = 0x001F_03FF;
/// `PAGE_READWRITE`, `PAGE_NOACCESS`, `MEM_COMMIT | MEM_RESERVE` (winnt.h / wdm.h).
pub const PAGE_READWRITE: u32 = 0x04;
/// See [`PAGE_READWRITE`].
pub const PAGE_NOACCESS: u32 = 0x01;
/// See [`PAGE_READWRITE`].
pub const MEM_COMMIT_RESERVE: u32 = 0x3000;
/// `SL_PENDING_RETURNED` (wdm.h), set in the current stack location by `IoMarkIrpPending`.
pub const SL_PENDING_RETURNED: u8 = 0x01;
/// `IRP_MJ_*` the double dispatches on its own device (wdm.h).
pub const IRP_MJ_CREATE: usize = 0x00;
/// See [`IRP_MJ_CREATE`].
pub const IRP_MJ_CLOSE: usize = 0x02;
/// See [`IRP_MJ_CREATE`].
pub const IRP_MJ_DEVICE_CONTROL: usize = 0x0e;
/// See [`IRP_MJ_CREATE`].
pub const IRP_MJ_CLEANUP: usize = 0x12;
/// `IRP_MJ_SHUTDOWN` (wdm.h).
pub const IRP_MJ_SHUTDOWN: u32 = 0x10;

/// `KSTART_ROUTINE` (wdm.h).
pub type StartRoutine = unsafe extern "system" fn(context: *mut c_void);
/// `ZwProtectVirtualMemory` as Wine exports it (ntdll's `NtProtectVirtualMemory`).
pub type ProtectFn = unsafe extern "system" fn(
    process: HANDLE,
    base: *mut *mut c_void,
    size: *mut usize,
    new: u32,
    old: *mut u32,
) -> NTSTATUS;
/// `ZwAllocateVirtualMemory` (ntifs.h).
pub type AllocateFn = unsafe extern "system" fn(
    process: HANDLE,
    base: *mut *mut c_void,
    zero_bits: usize,
    size: *mut usize,
    kind: u32,
    protect: u32,
) -> NTSTATUS;

unsafe extern "C" {
    /// wdm.h `ULONG DbgPrint(PCSTR Format, ...)`.
    pub fn DbgPrint(format: *const u8, ...) -> u32;
}

unsafe extern "system" {
    /// wdm.h; never returns (Microsoft Learn, "KeBugCheckEx").
    pub fn KeBugCheckEx(code: u32, p1: usize, p2: usize, p3: usize, p4: usize) -> !;
    /// wdm.h `IoCreateDevice`.
    pub fn IoCreateDevice(
        driver: *mut DRIVER_OBJECT,
        extension_size: u32,
        name: *const UNICODE_STRING,
        device_type: u32,
        characteristics: u32,
        exclusive: u8,
        device: *mut *mut DEVICE_OBJECT,
    ) -> NTSTATUS;
    /// wdm.h `IoDeleteDevice`.
    pub fn IoDeleteDevice(device: *mut DEVICE_OBJECT);
    /// wdm.h `IoCreateSymbolicLink`.
    pub fn IoCreateSymbolicLink(
        link: *const UNICODE_STRING,
        device: *const UNICODE_STRING,
    ) -> NTSTATUS;
    /// wdm.h `IoDeleteSymbolicLink`.
    pub fn IoDeleteSymbolicLink(link: *const UNICODE_STRING) -> NTSTATUS;
    /// wdm.h `IofCompleteRequest` (`IoCompleteRequest` is its macro).
    pub fn IofCompleteRequest(irp: *mut IRP, boost: i8);
    /// wdm.h `IofCallDriver` (`IoCallDriver` is its macro).
    pub fn IofCallDriver(device: *mut DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS;
    /// wdm.h `IoBuildSynchronousFsdRequest`.
    pub fn IoBuildSynchronousFsdRequest(
        major: u32,
        device: *mut DEVICE_OBJECT,
        buffer: *mut c_void,
        length: u32,
        offset: *mut i64,
        event: *mut KEVENT,
        iosb: *mut windows_sys::Win32::System::IO::IO_STATUS_BLOCK,
    ) -> *mut IRP;
    /// wdm.h `PsCreateSystemThread`.
    pub fn PsCreateSystemThread(
        handle: *mut HANDLE,
        access: u32,
        attributes: *mut c_void,
        process: HANDLE,
        client: *mut c_void,
        start: StartRoutine,
        context: *mut c_void,
    ) -> NTSTATUS;
    /// wdm.h `ObReferenceObjectByHandle`.
    pub fn ObReferenceObjectByHandle(
        handle: HANDLE,
        access: u32,
        object_type: *mut c_void,
        mode: i8,
        object: *mut *mut c_void,
        info: *mut c_void,
    ) -> NTSTATUS;
    /// wdm.h `ZwClose`.
    pub fn ZwClose(handle: HANDLE) -> NTSTATUS;
    /// wdm.h `KeInitializeEvent`.
    pub fn KeInitializeEvent(event: *mut KEVENT, event_type: u32, state: u8);
    /// wdm.h `KeSetEvent`.
    pub fn KeSetEvent(event: *mut KEVENT, increment: i32, wait: u8) -> i32;
    /// wdm.h `KeWaitForSingleObject`.
    pub fn KeWaitForSingleObject(
        object: *mut c_void,
        reason: u32,
        mode: i8,
        alertable: u8,
        timeout: *const i64,
    ) -> NTSTATUS;
    /// wdm.h `KeDelayExecutionThread`.
    pub fn KeDelayExecutionThread(mode: i8, alertable: u8, interval: *const i64) -> NTSTATUS;
    /// wdm.h `ExAllocatePoolWithTag`.
    pub fn ExAllocatePoolWithTag(pool: u32, size: usize, tag: u32) -> *mut c_void;
    /// wdm.h `ExFreePoolWithTag`.
    pub fn ExFreePoolWithTag(p: *mut c_void, tag: u32);
    /// wdm.h `ObfReferenceObject` (`ObReferenceObject` is its macro).
    pub fn ObfReferenceObject(object: *mut c_void) -> isize;
    /// wdm.h `ObfDereferenceObject` (`ObDereferenceObject` is its macro).
    pub fn ObfDereferenceObject(object: *mut c_void) -> isize;
    /// wdm.h `MmGetSystemRoutineAddress`.
    pub fn MmGetSystemRoutineAddress(name: *const UNICODE_STRING) -> *mut c_void;
    /// wdm.h `KeGetCurrentThread` (x64: exported by Wine and Windows).
    pub fn KeGetCurrentThread() -> *mut c_void;
    /// wdm.h `PsTerminateSystemThread`.
    pub fn PsTerminateSystemThread(status: NTSTATUS) -> NTSTATUS;
    /// wdm.h `IoGetCurrentProcess`.
    pub fn IoGetCurrentProcess() -> *mut c_void;
    /// ntddk.h `KeQueryPerformanceCounter` (hal.dll).
    pub fn KeQueryPerformanceCounter(frequency: *mut i64) -> i64;
}

/// A routine of the kernel by name (`MmGetSystemRoutineAddress`, PASSIVE_LEVEL); null when
/// absent.
pub fn system_routine(name: &[u16]) -> *mut c_void {
    let Some(s) = crate::kit::unicode(name) else {
        return core::ptr::null_mut();
    };
    // SAFETY: `s` describes `name`, alive for the call.
    unsafe { MmGetSystemRoutineAddress(&s) }
}
