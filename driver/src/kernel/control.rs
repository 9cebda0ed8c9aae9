//! The control channel: IOCTLs on `\Device\FailsafeFlt` (`\\.\FailsafeFlt`), one request
//! and one response each, in the core's protocol (`failsafe_loader::control`,
//! docs/control-protocol.md). ADR 0014 says why a device and not a Filter Manager port.
//!
//! - Who may open it: the device's DACL grants LocalSystem and Administrators all access
//!   and nobody else anything (set before `DriverEntry` returns, while the I/O manager still
//!   refuses opens of a device being initialized); `FILE_DEVICE_SECURE_OPEN` applies it to
//!   every open, the device namespace included. Two IOCTLs: `IOCTL_CONTROL_READ`
//!   (`FILE_READ_DATA`) for query and read events, which a handle opened for reading may
//!   send (least privilege for `status` and `watch`); `IOCTL_CONTROL` (`FILE_READ_DATA |
//!   FILE_WRITE_DATA`) for everything. The I/O manager checks the handle's access against
//!   the IOCTL's before the dispatch routine runs; the dispatch refuses a change that
//!   arrives on the read IOCTL (`STATUS_ACCESS_DENIED`, `control::admitted`).
//! - What requests do: query, read events (acknowledged by the console's cursor), live
//!   activation and rollback (`Durable::live_activate`, `rollback`), and the operator's
//!   changes of the record (`failsafectl recover force-safe-mode | reset | unquarantine`,
//!   `control::operator::apply`), all under the record lock: while the driver runs, it is
//!   the record's one writer, so no change is lost between its re-read and its write.
//! - What is read from user mode: nothing directly. `METHOD_BUFFERED`: the I/O manager
//!   copies the input into `SystemBuffer` and copies the output back; both lengths come
//!   from the stack location and bound every slice made here. The request is decoded (and
//!   copied out) before the same buffer is written with the response.
//! - Lifetime: every dispatch holds the gate (`crate::active::Gate`, the role of rundown
//!   protection, which Wine 8.0's ntoskrnl lacks); teardown closes it and waits for
//!   requests in flight before anything a request uses is torn down; new requests fail with
//!   `STATUS_DELETE_PENDING`.
//! - IRQL and thread: dispatch runs at PASSIVE_LEVEL in the caller's thread, admits one
//!   request at a time (a second while one is in flight fails at once with
//!   `STATUS_DEVICE_BUSY`: the console retries), marks it pending and hands it to the
//!   driver's own thread (`worker`, issue 19 finding 5), which answers and completes it:
//!   the record and store are opened in the system's context (global DOS devices, no
//!   impersonation), on that thread's stack, by a thread no user can suspend, and no
//!   system worker thread is held for the seconds a request can take. The caller's thread
//!   is not held in the driver at all. The pended IRP has no cancel routine: it is in
//!   progress and completes within the request's bounded work (at most a 32 MiB read and
//!   about a second of swap), as Microsoft Learn, "Cancel-Safe IRP Queues", allows for
//!   IRPs a driver does not queue.

use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicU64, Ordering};

use failsafe_loader::control::wire::{
    CONTROL_DEVICE, IOCTL_CONTROL, IOCTL_CONTROL_READ, MIN_RESPONSE, mode_code, reason_code,
};
use failsafe_loader::control::{
    Change, ChangeRefusal, Request, Status, admitted, decode_request, encode_changed,
    encode_refused, encode_status, kind, status_flags,
};
use failsafe_loader::state::machine::LiveRefusal;
use failsafe_loader::state::record::Phase;

use super::ffi::{
    ACL_REVISION, DACL_SECURITY_INFORMATION, DEVICE_OBJECT, DRIVER_OBJECT, FILE_ALL_ACCESS,
    FILE_DEVICE_SECURE_OPEN, FILE_DEVICE_UNKNOWN, HANDLE, IRP, IRP_MJ_CLEANUP, IRP_MJ_CLOSE,
    IRP_MJ_CREATE, IRP_MJ_DEVICE_CONTROL, IoCreateDevice, IoCreateSymbolicLink, IoDeleteDevice,
    IoDeleteSymbolicLink, IofCompleteRequest, KERNEL_MODE, KeDelayExecutionThread, LARGE_INTEGER,
    NTSTATUS, OBJ_KERNEL_HANDLE, ObOpenObjectByPointer, PACL, PSECURITY_DESCRIPTOR, PSID,
    PsGetCurrentProcessId, RtlAddAccessAllowedAce, RtlCreateAcl, RtlCreateSecurityDescriptor,
    RtlSetDaclSecurityDescriptor, SECURITY_DESCRIPTOR, SECURITY_DESCRIPTOR_REVISION,
    SL_PENDING_RETURNED, STATUS_BUFFER_TOO_SMALL, STATUS_DELETE_PENDING, STATUS_DEVICE_BUSY,
    STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_DEVICE_REQUEST, STATUS_PENDING, STATUS_SUCCESS,
    WRITE_DAC, ZwClose, ZwSetSecurityObject,
};
use super::ffi::{IO_STACK_LOCATION, STATUS_ACCESS_DENIED};
use super::globals::Running;
use super::health;
use super::nt::{Wide, debug_assert_passive};
use crate::active::{Gate, try_box};
use crate::flt::{self, ACTIVE};
use crate::wire::{SID_ADMINISTRATORS, SID_LOCAL_SYSTEM};

/// The control device (null: none; the driver runs without a channel).
static CONTROL: AtomicPtr<DEVICE_OBJECT> = AtomicPtr::new(core::ptr::null_mut());
/// The symbolic link exists.
/// The symbolic link made, as an index into [`LINK_DIRS`] plus one (0: none).
static LINKED: AtomicU8 = AtomicU8::new(0);
/// Admission of requests: teardown closes it and waits for requests in flight
/// (`crate::active::Gate`, the role of rundown protection).
static GATE: Gate = Gate::new();
/// A request is in flight (admitted, not yet completed by the driver's thread).
static BUSY: AtomicBool = AtomicBool::new(false);
/// The request in flight, for the driver's thread to take (null: none waiting).
static SLOT: AtomicPtr<IRP> = AtomicPtr::new(core::ptr::null_mut());
/// The process that sent the request in `SLOT` (set with it by `dispatch_control`).
static PID: AtomicU64 = AtomicU64::new(0);

/// Where the link may go, in order: the global DOS device namespace by its own name (found
/// from any process: `remove` may run in another process's context), else `\DosDevices`
/// (the same directory when named from the System process, as `create` is; Wine 8.0 has no
/// `\GLOBAL??`).
const LINK_DIRS: [&str; 2] = ["\\GLOBAL??\\", "\\DosDevices\\"];

/// The device's name and the link's in `dir`, from the name user mode opens.
fn names(dir: &str) -> Option<(Wide, Wide)> {
    let leaf = CONTROL_DEVICE.strip_prefix(r"\\.\")?;
    Some((
        Wide::join(&[], "\\Device\\").and_then(|w| Wide::join(w.units(), leaf))?,
        Wide::join(&[], dir).and_then(|w| Wide::join(w.units(), leaf))?,
    ))
}

/// Links `device_name` into the first of [`LINK_DIRS`] that takes it; returns its index.
fn link(device_name: &mut Wide) -> Result<usize, NTSTATUS> {
    let mut status = STATUS_INSUFFICIENT_RESOURCES;
    for (i, dir) in LINK_DIRS.iter().enumerate() {
        let Some((_, mut link_name)) = names(dir) else {
            continue;
        };
        let (mut link_us, mut device_us) = (link_name.unicode(), device_name.unicode());
        // SAFETY: both names are live UNICODE_STRINGs over our buffers.
        status = unsafe { IoCreateSymbolicLink(&mut link_us, &mut device_us) };
        if status >= 0 {
            return Ok(i);
        }
    }
    Err(status)
}

/// Creates the control device, restricts it to LocalSystem and Administrators, links it
/// into the DOS device namespace and installs the dispatch routines. `DriverEntry`,
/// PASSIVE_LEVEL. On failure nothing of it remains and the driver runs without a channel
/// (the console then reads the record file): a control channel is never a reason to
/// refuse a start. Its own frame (not `DriverEntry`'s, which is on the start's deep chain).
#[inline(never)]
pub fn create(driver: &mut DRIVER_OBJECT) -> Result<(), NTSTATUS> {
    debug_assert_passive!();
    let (mut device_name, _) = names("").ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
    let mut device_name_us = device_name.unicode();
    let mut device: *mut DEVICE_OBJECT = core::ptr::null_mut();
    // SAFETY: valid driver object; a named device without extension; the name and the out
    // pointer are live locals. Not exclusive: the console may hold several handles.
    let status = unsafe {
        IoCreateDevice(
            driver,
            0,
            &mut device_name_us,
            FILE_DEVICE_UNKNOWN,
            FILE_DEVICE_SECURE_OPEN,
            0,
            &mut device,
        )
    };
    if status < 0 {
        return Err(status);
    }
    if let Err(status) = restrict(device) {
        // SAFETY: created above, never opened (still initializing), no link yet.
        unsafe { IoDeleteDevice(device) };
        return Err(status);
    }
    match link(&mut device_name) {
        Ok(i) => LINKED.store(
            u8::try_from(i).map_or(0, |i| i.saturating_add(1)),
            Ordering::Release,
        ),
        Err(status) => {
            // SAFETY: as above.
            unsafe { IoDeleteDevice(device) };
            return Err(status);
        }
    }
    if let Some(slot) = driver.MajorFunction.get_mut(IRP_MJ_CREATE) {
        *slot = Some(dispatch_create);
    }
    for mj in [IRP_MJ_CLEANUP, IRP_MJ_CLOSE] {
        if let Some(slot) = driver.MajorFunction.get_mut(mj) {
            *slot = Some(dispatch_close);
        }
    }
    if let Some(slot) = driver.MajorFunction.get_mut(IRP_MJ_DEVICE_CONTROL) {
        *slot = Some(dispatch_control);
    }
    CONTROL.store(device, Ordering::Release);
    Ok(())
}

/// Sets the device's DACL to LocalSystem and Administrators, `FILE_ALL_ACCESS` each, no
/// other entry (SDDL `D:(A;;FA;;;SY)(A;;FA;;;BA)`: the access `SDDL_DEVOBJ_SYS_ALL_ADM_ALL`
/// grants, without its protected flag `P`). `IoCreateDeviceSecure` would do this, but it lives in wdmsec.lib, a static
/// library of the WDK that no import library here provides; the routines below are
/// ntoskrnl exports (ntifs.h; Microsoft Learn "RtlCreateSecurityDescriptor",
/// "RtlCreateAcl", "RtlAddAccessAllowedAce", "RtlSetDaclSecurityDescriptor",
/// "ObOpenObjectByPointer", "ZwSetSecurityObject"). PASSIVE_LEVEL.
#[inline(never)]
fn restrict(device: *mut DEVICE_OBJECT) -> Result<(), NTSTATUS> {
    let mut sd = SECURITY_DESCRIPTOR {
        Revision: 0,
        Sbz1: 0,
        Control: 0,
        Owner: core::ptr::null_mut(),
        Group: core::ptr::null_mut(),
        Sacl: core::ptr::null_mut(),
        Dacl: core::ptr::null_mut(),
    };
    let psd: PSECURITY_DESCRIPTOR = core::ptr::from_mut(&mut sd).cast();
    // An ACL of two ACEs: header 8 + 2 × (ACE header 8 + SID ≤ 16) ≤ 56 bytes; ULONG
    // alignment, as ACLs need.
    let mut acl_words = [0u32; 32];
    let acl: PACL = acl_words.as_mut_ptr().cast();
    let acl_len = u32::try_from(core::mem::size_of_val(&acl_words)).unwrap_or(0);
    // Copies with the SIDs' ULONG alignment; the routines only read them.
    let (mut system, mut admins) = (SID_LOCAL_SYSTEM, SID_ADMINISTRATORS);
    let ok = |s: NTSTATUS| if s < 0 { Err(s) } else { Ok(()) };
    // SAFETY: `sd` is a live absolute security descriptor of the right size.
    ok(unsafe { RtlCreateSecurityDescriptor(psd, SECURITY_DESCRIPTOR_REVISION) })?;
    // SAFETY: `acl` points to `acl_len` writable, ULONG-aligned bytes.
    ok(unsafe { RtlCreateAcl(acl, acl_len, ACL_REVISION) })?;
    let sids: [PSID; 2] = [system.as_mut_ptr().cast(), admins.as_mut_ptr().cast()];
    for sid in sids {
        // SAFETY: an initialized ACL with room; a valid, aligned SID (crate::wire tests
        // its bytes against the documented layout).
        ok(unsafe { RtlAddAccessAllowedAce(acl, ACL_REVISION, FILE_ALL_ACCESS, sid) })?;
    }
    // SAFETY: `sd` initialized above; `acl` outlives its use (ZwSetSecurityObject below
    // captures a copy).
    ok(unsafe { RtlSetDaclSecurityDescriptor(psd, 1, acl, 0) })?;
    let mut handle: HANDLE = core::ptr::null_mut();
    // SAFETY: `device` is our referenced device object; kernel handle, kernel mode, no
    // object type check (optional in kernel mode), WRITE_DAC only.
    ok(unsafe {
        ObOpenObjectByPointer(
            device.cast(),
            OBJ_KERNEL_HANDLE,
            core::ptr::null_mut(),
            WRITE_DAC,
            core::ptr::null_mut(),
            KERNEL_MODE,
            &mut handle,
        )
    })?;
    // SAFETY: a handle just opened with WRITE_DAC; `sd` is a valid absolute descriptor.
    let status = unsafe { ZwSetSecurityObject(handle, DACL_SECURITY_INFORMATION, psd) };
    // SAFETY: the kernel handle opened above, closed once.
    let _ = unsafe { ZwClose(handle) };
    ok(status)
}

/// Removes the channel: new requests are refused, requests in flight finish, then the
/// link and the device go. Teardown, PASSIVE_LEVEL, before anything a request uses.
pub fn remove() {
    debug_assert_passive!();
    GATE.close_and_wait(sleep_1ms);
    let linked = usize::from(LINKED.swap(0, Ordering::AcqRel));
    if let Some(dir) = linked.checked_sub(1).and_then(|i| LINK_DIRS.get(i))
        && let Some((_, mut link)) = names(dir)
    {
        let mut link_us = link.unicode();
        // SAFETY: the link created in `create`.
        let _ = unsafe { IoDeleteSymbolicLink(&mut link_us) };
    }
    let device = CONTROL.swap(core::ptr::null_mut(), Ordering::AcqRel);
    if !device.is_null() {
        // SAFETY: created in `create`; open handles keep the object until they close,
        // and every dispatch now fails at the gate.
        unsafe { IoDeleteDevice(device) };
    }
}

/// Completes `irp` with `status` and `information` bytes. The I/O manager's IRP, ours
/// until this call.
fn complete(irp: *mut IRP, status: NTSTATUS, information: usize) -> NTSTATUS {
    if irp.is_null() {
        return status;
    }
    // SAFETY: the IRP the dispatch routine was given, ours until completed; a raw place,
    // so no reference to the whole IRP (whose `Cancel` another thread may set).
    let io = unsafe { core::ptr::addr_of_mut!((*irp).IoStatus) };
    // SAFETY: `io` points into that IRP; nothing else writes its status block.
    if let Some(io) = unsafe { io.as_mut() } {
        io.__bindgen_anon_1.Status = status;
        io.Information = u64::try_from(information).unwrap_or(0);
    }
    // SAFETY: completing the IRP we were given, exactly once, with no priority boost.
    unsafe { IofCompleteRequest(irp, 0) };
    status
}

/// The IRP's current stack location (`IoGetCurrentIrpStackLocation`, an inline function
/// of wdm.h that no binding has: the pointer in the IRP's tail overlay).
///
/// # Safety
/// `irp` is a non-null IRP in dispatch (not completed).
unsafe fn current_stack(irp: *mut IRP) -> *mut IO_STACK_LOCATION {
    // SAFETY: contract above; the tail union copied out through a raw place.
    let tail = unsafe { (*irp).Tail };
    // SAFETY: for an IRP in dispatch, `Tail` is the overlay.
    let overlay = unsafe { tail.Overlay };
    // SAFETY: and in the overlay, this member is the current stack location.
    unsafe {
        overlay
            .__bindgen_anon_2
            .__bindgen_anon_1
            .CurrentStackLocation
    }
}

/// IRP_MJ_CREATE (PASSIVE_LEVEL): only the control device opens (the shutdown device has
/// no name, and after `remove` the control device opens no more).
/// Opens below the device's name (`\\.\FailsafeFlt\x`) are refused as well: the device has
/// no namespace, and `FILE_DEVICE_SECURE_OPEN` already applies its DACL to them; this is
/// defence in depth (Microsoft Learn, "Controlling Device Namespace Access").
unsafe extern "C" fn dispatch_create(device: *mut DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    let ours = !device.is_null() && device == CONTROL.load(Ordering::Acquire);
    if !ours || irp.is_null() {
        return complete(irp, STATUS_INVALID_DEVICE_REQUEST, 0);
    }
    // SAFETY: a non-null IRP in dispatch.
    let stack = unsafe { current_stack(irp) };
    // SAFETY: the I/O manager's stack location for this create.
    let st = unsafe { stack.as_ref() };
    let file = st.map_or(core::ptr::null_mut(), |st| st.FileObject);
    // SAFETY: the file object being opened, if any; `FileName` is its name below the
    // device.
    let below = unsafe { file.as_ref() }.is_some_and(|fo| fo.FileName.Length != 0);
    complete(
        irp,
        if below {
            STATUS_ACCESS_DENIED
        } else {
            STATUS_SUCCESS
        },
        0,
    )
}

/// IRP_MJ_CLEANUP / CLOSE (PASSIVE_LEVEL): always succeed; a handle opened before `remove`
/// still closes after it.
unsafe extern "C" fn dispatch_close(_device: *mut DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    complete(irp, STATUS_SUCCESS, 0)
}

/// IRP_MJ_DEVICE_CONTROL (PASSIVE_LEVEL, the caller's thread): admits the request (one at a
/// time), marks it pending and hands it to the driver's thread, which completes it
/// (`serve`).
unsafe extern "C" fn dispatch_control(device: *mut DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    if device.is_null() || device != CONTROL.load(Ordering::Acquire) || irp.is_null() {
        return complete(irp, STATUS_INVALID_DEVICE_REQUEST, 0);
    }
    if !GATE.enter() {
        return complete(irp, STATUS_DELETE_PENDING, 0);
    }
    if !super::worker::running()
        || BUSY
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
    {
        GATE.leave();
        return complete(irp, STATUS_DEVICE_BUSY, 0);
    }
    // `IoMarkIrpPending` (a wdm.h macro): SL_PENDING_RETURNED in the current stack
    // location, before the IRP can be completed by another thread.
    // SAFETY: a non-null IRP in dispatch, ours until completed.
    let stack = unsafe { current_stack(irp) };
    // SAFETY: the I/O manager's stack location for this dispatch; a raw place, no
    // reference to the whole IRP.
    if let Some(st) = unsafe { stack.as_mut() } {
        st.Control |= SL_PENDING_RETURNED;
    }
    // The requestor, for the `ControlRequest` event: the dispatch runs in the calling
    // thread (a top-level driver's IRP_MJ_DEVICE_CONTROL; Microsoft Learn, "Dispatch
    // routine contexts"), the driver's thread does not.
    // SAFETY: no arguments; any IRQL ≤ DISPATCH_LEVEL (ntddk.h).
    let pid = u64::try_from(unsafe { PsGetCurrentProcessId() }.addr()).unwrap_or(0);
    PID.store(pid, Ordering::Release);
    SLOT.store(irp, Ordering::Release);
    super::worker::post(super::worker::CONTROL);
    // The IRP and the gate now belong to the driver's thread (`serve`).
    STATUS_PENDING
}

/// Answers the request in flight and completes it (the driver's thread, PASSIVE_LEVEL).
pub fn serve() {
    let irp = SLOT.swap(core::ptr::null_mut(), Ordering::AcqRel);
    if irp.is_null() {
        return;
    }
    let pid = PID.load(Ordering::Acquire);
    // SAFETY: the IRP admitted by `dispatch_control`, pending and ours until completed.
    let (status, n) = unsafe { control_irp(irp, pid) };
    // Free for the next request before the caller wakes: a console that sends its next
    // request at once (`watch`) must not find the last one still counted.
    BUSY.store(false, Ordering::Release);
    let _ = complete(irp, status, n);
    GATE.leave();
}

/// Decodes the request in the IRP's system buffer and writes the response over it.
///
/// # Safety
/// `irp` is an IRP_MJ_DEVICE_CONTROL IRP of the control device, admitted and not completed.
unsafe fn control_irp(irp: *mut IRP, pid: u64) -> (NTSTATUS, usize) {
    if irp.is_null() {
        return (STATUS_INVALID_DEVICE_REQUEST, 0);
    }
    // SAFETY: contract above; a non-null IRP in dispatch.
    let stack = unsafe { current_stack(irp) };
    // SAFETY: the I/O manager set up the current stack location for this dispatch.
    let Some(stack) = (unsafe { stack.as_ref() }) else {
        return (STATUS_INVALID_DEVICE_REQUEST, 0);
    };
    // SAFETY: an IRP_MJ_DEVICE_CONTROL stack location: DeviceIoControl is the member set.
    let p = unsafe { stack.Parameters.DeviceIoControl };
    if p.IoControlCode != IOCTL_CONTROL && p.IoControlCode != IOCTL_CONTROL_READ {
        return (STATUS_INVALID_DEVICE_REQUEST, 0);
    }
    let in_len = usize::try_from(p.InputBufferLength).unwrap_or(0);
    let out_len = usize::try_from(p.OutputBufferLength).unwrap_or(0);
    // SAFETY: the union of the IRP's associated buffer, copied out through a raw place
    // (no reference to the IRP).
    let assoc = unsafe { (*irp).AssociatedIrp };
    // SAFETY: METHOD_BUFFERED: SystemBuffer is the member in use.
    let buf = unsafe { assoc.SystemBuffer }.cast::<u8>();
    if buf.is_null() || out_len < MIN_RESPONSE {
        return (STATUS_BUFFER_TOO_SMALL, 0);
    }
    let req = {
        // SAFETY: METHOD_BUFFERED: SystemBuffer holds max(in, out) bytes of nonpaged pool
        // owned by this IRP, the first `in_len` copied from the caller. The slice lives
        // only in this block, before the output slice over the same bytes is made.
        let input = unsafe { core::slice::from_raw_parts(buf, in_len) };
        decode_request(input)
    };
    // The I/O manager checked the handle against the IOCTL; a change on the read IOCTL
    // (a handle without write access) is refused here.
    if let Ok(r) = &req
        && !admitted(p.IoControlCode, r)
    {
        return (STATUS_ACCESS_DENIED, 0);
    }
    // SAFETY: METHOD_BUFFERED: SystemBuffer holds max(in, out) bytes owned by this IRP
    // until it is completed, which is after this slice's last use.
    let out = unsafe { core::slice::from_raw_parts_mut(buf, out_len) };
    (STATUS_SUCCESS, respond(req, pid, out))
}

/// The response to one request, written into `out` (at least `MIN_RESPONSE` bytes).
/// Returns its length (0 only if even a refusal did not fit, which `MIN_RESPONSE` rules
/// out).
fn respond(
    req: Result<Request, failsafe_loader::control::ProtoError>,
    pid: u64,
    out: &mut [u8],
) -> usize {
    use crate::etw::control_request as event;
    let written = match req {
        Err(e) => {
            event("malformed", pid, 0, "protocol-error", u32::from(e.code()));
            encode_refused(out, 0, e.code(), &e)
        }
        Ok(Request::Query) => {
            let s = health::with_state(|s| status(s.as_ref()));
            event("query", pid, 0, "ok", 0);
            encode_status(out, &s)
        }
        Ok(Request::Activate { version }) => match health::with_state(|s| activate(s, version)) {
            Ok((v, boot)) => {
                crate::etw::live_activated(v, boot);
                event("activate", pid, version, "ok", 0);
                encode_changed(out, kind::ACTIVATE, v, boot)
            }
            Err(r) => {
                crate::etw::live_refused("activate", version, &r);
                event("activate", pid, version, "refused", u32::from(r.code()));
                encode_refused(out, kind::ACTIVATE, r.code(), &r)
            }
        },
        Ok(Request::Rollback) => match health::with_state(rollback) {
            Ok((v, boot)) => {
                event("rollback", pid, v, "ok", 0);
                encode_changed(out, kind::ROLLBACK, v, boot)
            }
            Err(r) => {
                crate::etw::live_refused("rollback", 0, &r);
                event("rollback", pid, 0, "refused", u32::from(r.code()));
                encode_refused(out, kind::ROLLBACK, r.code(), &r)
            }
        },
        Ok(Request::ReadEvents { cursor }) => {
            event("read-events", pid, 0, "ok", 0);
            flt::events_read(out, cursor, sleep_1ms)
        }
        Ok(Request::ForceSafeMode { on }) => changed(
            out,
            pid,
            kind::FORCE_SAFE_MODE,
            Change::ForceSafeMode(on),
            false,
        ),
        Ok(Request::Reset { confirmed }) => {
            changed(out, pid, kind::RESET, Change::Reset, confirmed)
        }
        Ok(r @ Request::Unquarantine { version, confirmed }) => {
            changed(out, pid, r.kind(), Change::Unquarantine(version), confirmed)
        }
    };
    if let Ok(
        Request::Activate { .. }
        | Request::Rollback
        | Request::ForceSafeMode { .. }
        | Request::Reset { .. }
        | Request::Unquarantine { .. },
    ) = req
    {
        // A live change or an operator's change, or a refusal after which the core may
        // have written the record back (docs/boot-safety.md, "Live activation"): mirror
        // the record as it is now.
        health::with_state(|s| s.as_ref().map(super::mirror::write_locked));
    }
    written.unwrap_or(0)
}

/// The response to an operator's change (request kind `k`).
fn changed(
    out: &mut [u8],
    pid: u64,
    k: u16,
    change: Change,
    confirmed: bool,
) -> Result<usize, failsafe_loader::control::WriteError> {
    let (name, version) = match change {
        Change::ForceSafeMode(_) => ("force-safe-mode", 0),
        Change::Reset => ("reset", 0),
        Change::Unquarantine(v) => ("unquarantine", v),
    };
    match health::with_state(|s| operator(s, change, confirmed)) {
        Ok((v, boot)) => {
            crate::etw::control_request(name, pid, version, "ok", 0);
            encode_changed(out, k, v, boot)
        }
        Err(e) => {
            crate::etw::control_request(name, pid, version, "refused", u32::from(e.code()));
            encode_refused(out, k, e.code(), &e)
        }
    }
}

/// An operator's change of the record for the console (record lock held): decided on the
/// record as re-read now and written by this, its one writer while the driver runs. The
/// running content and the health timer are untouched (the change acts at the next start
/// and on the next live request). Returns the active version and the record's boot.
fn operator(
    s: &mut Option<Running>,
    change: Change,
    confirmed: bool,
) -> Result<(u64, u64), ChangeRefusal> {
    let r = s.as_mut().ok_or(ChangeRefusal::ShuttingDown)?;
    if r.closing {
        return Err(ChangeRefusal::ShuttingDown);
    }
    failsafe_loader::control::operator::apply(&mut r.durable, change, confirmed)?;
    Ok((
        r.activation.map_or(0, |a| a.ver.version),
        r.durable.state().boot,
    ))
}

/// The live state for a query.
fn status(r: Option<&Running>) -> Status {
    let (queued, dropped) = flt::events_counts(sleep_1ms);
    let mut s = Status {
        events_queued: queued,
        events_dropped: dropped,
        ..Status::default()
    };
    let Some(r) = r else {
        return s;
    };
    let st = r.durable.state();
    s.boot = st.boot;
    s.lkg = st.lkg.map_or(0, |l| l.version);
    if let Some(last) = st.last {
        s.mode = mode_code(last.mode);
        s.reason = reason_code(last.reason);
    }
    let mut flags = 0;
    if st.force_safe || r.cfg.force_safe_mode {
        flags |= status_flags::FORCE_SAFE;
    }
    if let Some(act) = r.activation {
        s.active = act.ver.version;
        s.active_ms = health::now().saturating_sub(r.active_since) / 10_000;
        s.attempts = st.attempts(act.ver.version);
        if r.live {
            flags |= status_flags::LIVE;
        }
        if st
            .attempt
            .is_some_and(|a| a.ver == act.ver && a.boot == act.boot && a.phase == Phase::Healthy)
        {
            flags |= status_flags::HEALTHY;
        }
        if let Some(h) = st
            .health
            .filter(|h| h.version == act.ver.version && h.boot == act.boot)
        {
            flags |= status_flags::CHECKED;
            s.health_uptime_secs = h.uptime_secs;
            if let Err(e) = h.canary {
                flags |= status_flags::CANARY_FAILED;
                s.canary_error = e.code;
            }
        }
    }
    s.flags = flags;
    s
}

/// Sleeps a millisecond while readers of an old rule set drain. PASSIVE_LEVEL.
pub fn sleep_1ms() {
    let mut interval = LARGE_INTEGER {
        QuadPart: -10_000, // relative, 100 ns units
    };
    // SAFETY: PASSIVE_LEVEL, kernel mode, not alertable, a live interval.
    let _ = unsafe { KeDelayExecutionThread(KERNEL_MODE, 0, &mut interval) };
}

/// Sleeps a swap waits for readers before it parks the old rule set (each at least 1 ms,
/// about 15.6 ms at the default timer resolution).
const SWAP_PATIENCE: u32 = 64;

/// Installs `rules` (or nothing) as the active rule set; the old one is freed once no
/// callback uses it. With the record lock held (writers serialized). PASSIVE_LEVEL.
fn swap_in(rules: Option<alloc::boxed::Box<failsafe_loader::RuleSet>>) {
    #[cfg(feature = "drill")]
    let parked_before = ACTIVE.parked();
    // SAFETY: the record lock serializes writers; PASSIVE_LEVEL, so `sleep_1ms` may wait.
    // Readers are inside a critical region and evaluate in microseconds; one starved of CPU
    // for longer than about a second leaves the old set parked until unload (at most
    // `active::PARKED` of them) rather than holding the record lock.
    let old = unsafe { ACTIVE.replace(rules, sleep_1ms, SWAP_PATIENCE) };
    #[cfg(feature = "drill")]
    drill_swap_line(old.is_some(), ACTIVE.parked() > parked_before);
    drop(old);
}

/// Drill build: one line per swap saying what became of the old rule set (the hosted
/// drill counts them: every old set freed now or parked, parked ones freed at unload).
#[cfg(feature = "drill")]
fn drill_swap_line(freed: bool, parked: bool) {
    let what = match (freed, parked) {
        (true, _) => c"freed",
        (false, true) => c"parked",
        (false, false) => c"none (nothing was active)",
    };
    // SAFETY: %s takes a NUL-terminated static string.
    let _ = unsafe {
        super::ffi::DbgPrintEx(
            super::ffi::DPFLTR_IHVDRIVER_ID,
            super::ffi::DPFLTR_WARNING_LEVEL,
            c"failsafeflt: drill: swap: old rule set %s\n".as_ptr(),
            what.as_ptr(),
        )
    };
}

/// A live activation of `version` (record lock held). Its own frame, not the worker
/// loop's, which otherwise tops the deepest chain (kernel check: 8000 -> 7936 bytes).
#[inline(never)]
fn activate(s: &mut Option<Running>, version: u64) -> Result<(u64, u64), LiveRefusal> {
    let r = s.as_mut().ok_or(LiveRefusal::OutOfMemory)?;
    if r.closing {
        return Err(LiveRefusal::ShuttingDown);
    }
    let (act, rules) = r.durable.live_activate(
        r.activation.as_ref(),
        &mut r.store,
        version,
        &r.cfg,
        &r.env,
        &r.trust,
    )?;
    install(r, act, rules)?;
    Ok((version, r.durable.state().boot))
}

/// Return to last-known-good (record lock held): its version, or 0 with nothing active.
#[inline(never)]
fn rollback(s: &mut Option<Running>) -> Result<(u64, u64), LiveRefusal> {
    let r = s.as_mut().ok_or(LiveRefusal::OutOfMemory)?;
    if r.closing {
        return Err(LiveRefusal::ShuttingDown);
    }
    let from = r.activation.map_or(0, |a| a.ver.version);
    let to = r.durable.rollback(
        r.activation.as_ref(),
        &mut r.store,
        &r.cfg,
        &r.env,
        &r.trust,
    )?;
    let version = match to {
        Some((act, rules)) => {
            install(r, act, rules)?;
            act.ver.version
        }
        None => {
            swap_in(None);
            r.activation = None;
            r.live = true;
            0
        }
    };
    let boot = r.durable.state().boot;
    crate::etw::live_rolled_back(version, from, boot);
    for q in r.durable.state().quarantine.iter().flatten() {
        if q.boot == boot && q.ver.version == from {
            crate::etw::quarantine(q);
        }
    }
    Ok((version, boot))
}

/// Swaps in a rule set whose attempt is durable, and starts its health window.
fn install(
    r: &mut Running,
    act: failsafe_loader::state::machine::Activation,
    rules: failsafe_loader::RuleSet,
) -> Result<(), LiveRefusal> {
    let Ok(b) = try_box(rules) else {
        // The attempt is durable but the content will not run: close it as clean so it
        // is not charged; the running content stays.
        let _ = r.durable.clean_shutdown(&act);
        return Err(LiveRefusal::OutOfMemory);
    };
    swap_in(Some(b));
    r.activation = Some(act);
    r.active_since = health::now();
    r.live = true;
    health::rearm_locked(r.cfg.healthy_after_secs);
    Ok(())
}
