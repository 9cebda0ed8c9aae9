//! The double's own driver: `DriverEntry` (the `FltMgr` service), its device
//! `\Device\FltMgrDouble` (`\\.\FltMgrDouble`), the requests the test client sends
//! ([`proto`]), and the worker threads that run operations.
//!
//! Operation and shutdown requests are pended (`IoMarkIrpPending`, `STATUS_PENDING`) and
//! run on the worker the request names — a system thread of the double
//! (`PsCreateSystemThread`), so the callbacks run on a thread of the client's choosing and
//! several clients' operations run at once; the worker completes the IRP. Volume, process
//! and report requests run on the thread that dispatches them. A worker takes one request
//! at a time; another request for a busy worker is refused with `STATUS_DEVICE_BUSY`.

use core::ffi::c_void;
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use windows_sys::Wdk::Foundation::{DEVICE_OBJECT, DRIVER_OBJECT, IRP, KEVENT};
use windows_sys::Win32::Foundation::{
    HANDLE, NTSTATUS, STATUS_BUFFER_TOO_SMALL, STATUS_DEVICE_BUSY, STATUS_INVALID_DEVICE_REQUEST,
    STATUS_INVALID_PARAMETER, STATUS_PENDING, STATUS_SUCCESS, UNICODE_STRING,
};
use windows_sys::Win32::System::IO::{IO_STATUS_BLOCK, IO_STATUS_BLOCK_0};

use crate::ffi;
use crate::filter;
use crate::interpose;
use crate::kit::{self, Racy};
use crate::layout::wdk;
use crate::names;
use crate::ops::{self, WORKERS};
use crate::proto::{self, Header, Malformed, RESULT_SIZE};
use crate::pushlock;
use crate::verify::{self, RECORDS};
use crate::volumes;

/// Largest request or response (bytes).
pub const MESSAGE: usize = proto::MAX_MESSAGE;

struct Worker {
    event: Racy<KEVENT>,
    irp: AtomicPtr<IRP>,
    buf: Racy<[u64; MESSAGE / 8]>,
}

static WORKER: [Worker; WORKERS] = [const {
    Worker {
        // SAFETY: KEVENT is plain data; KeInitializeEvent sets it in DriverEntry.
        event: Racy::new(unsafe { core::mem::zeroed() }),
        irp: AtomicPtr::new(core::ptr::null_mut()),
        buf: Racy::new([0; MESSAGE / 8]),
    }
}; WORKERS];

/// The dispatch thread's request copy (volume, process, report requests, one at a time).
static CONTROL_BUF: Racy<[u64; MESSAGE / 8]> = Racy::new([0; MESSAGE / 8]);
/// Serializes control requests (Wine dispatches IRPs from one thread; this makes it so on
/// any host).
static CONTROL_BUSY: AtomicU64 = AtomicU64::new(0);

static TSC0: AtomicU64 = AtomicU64::new(0);
static QPC0: AtomicU64 = AtomicU64::new(0);

const DEVICE_NAME: [u16; 20] = kit::wide("\\Device\\FltMgrDouble");
const LINK_NAME: [u16; 24] = kit::wide("\\DosDevices\\FltMgrDouble");

/// The double's entry point: Wine's services start it as the `FltMgr` service (the
/// driver's service depends on it, as on Windows).
///
/// # Safety
/// Called by the I/O manager with the double's driver object.
#[unsafe(export_name = "DriverEntry")]
pub unsafe extern "system" fn driver_entry(
    driver: *mut DRIVER_OBJECT,
    _path: *const UNICODE_STRING,
) -> NTSTATUS {
    volumes::init_defaults();
    // SAFETY: the double's driver object, in its DriverEntry.
    unsafe { volumes::create_disks(driver) };
    let (q, _) = kit::qpc();
    TSC0.store(kit::tsc(), Ordering::Release);
    QPC0.store(u64::try_from(q).unwrap_or(0), Ordering::Release);
    let (Some(dev_name), Some(link)) = (kit::unicode(&DEVICE_NAME), kit::unicode(&LINK_NAME))
    else {
        return STATUS_INVALID_PARAMETER;
    };
    let mut dev: *mut DEVICE_OBJECT = core::ptr::null_mut();
    // SAFETY: the double's driver object; a named device, no extension; `dev` a local.
    let status = unsafe {
        ffi::IoCreateDevice(
            driver,
            0,
            &dev_name,
            ffi::FILE_DEVICE_UNKNOWN,
            0,
            0,
            &mut dev,
        )
    };
    if status < 0 {
        return status;
    }
    // SAFETY: both names live for the call.
    let _ = unsafe { ffi::IoCreateSymbolicLink(&link, &dev_name) };
    // SAFETY: the double's own driver object in its DriverEntry.
    let d = unsafe { &mut *driver };
    for mj in [ffi::IRP_MJ_CREATE, ffi::IRP_MJ_CLOSE, ffi::IRP_MJ_CLEANUP] {
        if let Some(slot) = d.MajorFunction.get_mut(mj) {
            *slot = Some(dispatch_open_close);
        }
    }
    if let Some(slot) = d.MajorFunction.get_mut(ffi::IRP_MJ_DEVICE_CONTROL) {
        *slot = Some(dispatch_control);
    }
    for (i, w) in WORKER.iter().enumerate() {
        // SAFETY: the worker's static event, initialized once here before its thread runs.
        unsafe { ffi::KeInitializeEvent(w.event.get(), ffi::SYNCHRONIZATION_EVENT, 0) };
        let mut h: HANDLE = core::ptr::null_mut();
        // SAFETY: a system thread running `worker_main` with its index as context.
        let st = unsafe {
            ffi::PsCreateSystemThread(
                &mut h,
                ffi::THREAD_ALL_ACCESS,
                core::ptr::null_mut(),
                core::ptr::null_mut(),
                core::ptr::null_mut(),
                worker_main,
                core::ptr::without_provenance_mut(i),
            )
        };
        if st >= 0 {
            // SAFETY: the handle PsCreateSystemThread returned; the thread keeps running.
            let _ = unsafe { ffi::ZwClose(h) };
        }
    }
    kit::log(
        c"started (test double of Filter Manager, hosted under Wine, NOT Windows); workers",
        kit::n(WORKERS),
    );
    STATUS_SUCCESS
}

unsafe extern "system" fn dispatch_open_close(
    _dev: *const DEVICE_OBJECT,
    irp: *mut IRP,
) -> NTSTATUS {
    complete(irp, STATUS_SUCCESS, 0);
    STATUS_SUCCESS
}

/// Completes `irp` with `status` and `information` bytes.
fn complete(irp: *mut IRP, status: NTSTATUS, information: usize) {
    let iosb = irp
        .cast::<u8>()
        .wrapping_add(wdk::IRP_IO_STATUS)
        .cast::<IO_STATUS_BLOCK>();
    // SAFETY: an IRP the I/O manager gave the double and that it has not completed yet;
    // `IoStatus` at the WDK's offset (layout.rs).
    unsafe {
        iosb.write_unaligned(IO_STATUS_BLOCK {
            Anonymous: IO_STATUS_BLOCK_0 { Status: status },
            Information: information,
        })
    };
    // SAFETY: as above; completed once.
    unsafe { ffi::IofCompleteRequest(irp, 0) };
}

/// The IRP's current stack location (`IoGetCurrentIrpStackLocation`: `Tail.Overlay.
/// CurrentStackLocation`, at the WDK's offset).
fn current_stack(irp: *mut IRP) -> *mut u8 {
    let slot = irp
        .cast::<u8>()
        .wrapping_add(wdk::IRP_CURRENT_STACK_LOCATION)
        .cast::<*mut u8>();
    // SAFETY: an IRP the I/O manager handed the double, still owned by it.
    unsafe { slot.read_unaligned() }
}

/// The current stack location's IOCTL parameters at the WDK's offsets (layout.rs: windows-
/// sys's IO_STACK_LOCATION lacks POINTER_ALIGNMENT there): code, input and output lengths.
fn ioctl_parameters(irp: *mut IRP) -> (u32, usize, usize) {
    let stack = current_stack(irp);
    let read = |off: usize| -> u32 {
        // SAFETY: inside the 72-byte stack location (offsets from layout::wdk).
        unsafe { stack.wrapping_add(off).cast::<u32>().read_unaligned() }
    };
    let code = read(wdk::STACK_IOCTL_CODE);
    let input = usize::try_from(read(wdk::STACK_IOCTL_INPUT_LENGTH)).unwrap_or(0);
    let output = usize::try_from(read(wdk::STACK_IOCTL_OUTPUT_LENGTH)).unwrap_or(0);
    (code, input, output)
}

/// `AssociatedIrp.SystemBuffer` (METHOD_BUFFERED: max(input, output) bytes).
fn system_buffer(irp: *mut IRP) -> *mut u8 {
    let slot = irp
        .cast::<u8>()
        .wrapping_add(wdk::IRP_ASSOCIATED_IRP)
        .cast::<*mut u8>();
    // SAFETY: an IRP the I/O manager handed the double, still owned by it.
    unsafe { slot.read_unaligned() }
}

unsafe extern "system" fn dispatch_control(_dev: *const DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    let (code, input, output) = ioctl_parameters(irp);
    let buf = system_buffer(irp);
    if code != proto::IOCTL || buf.is_null() || input > MESSAGE || output < proto::HEADER {
        complete(irp, STATUS_INVALID_DEVICE_REQUEST, 0);
        return STATUS_INVALID_DEVICE_REQUEST;
    }
    // SAFETY: `input` bytes of the system buffer.
    let bytes = unsafe { core::slice::from_raw_parts(buf, input) };
    let hdr = match proto::header(bytes) {
        Ok(h) => h,
        Err(e) => return refuse(irp, output, e),
    };
    match hdr.kind {
        proto::KIND_OPS | proto::KIND_SHUTDOWN => {
            let Some(w) = WORKER.get(usize::from(hdr.worker)) else {
                return refuse(irp, output, Malformed::Record(u32::MAX));
            };
            // IoMarkIrpPending: SL_PENDING_RETURNED in the current stack location's
            // `Control` (offset 3, wdm.h).
            let control = current_stack(irp).wrapping_add(3);
            // SAFETY: the current stack location of an IRP the double owns.
            unsafe { *control |= ffi::SL_PENDING_RETURNED };
            if w.irp
                .compare_exchange(
                    core::ptr::null_mut(),
                    irp,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_err()
            {
                // One sender per worker: a refusal here is a harness bug, said in the log.
                kit::log(
                    c"worker busy, request refused: worker",
                    u64::from(hdr.worker),
                );
                complete(irp, STATUS_DEVICE_BUSY, 0);
                return STATUS_PENDING;
            }
            // SAFETY: the worker's initialized event.
            let _ = unsafe { ffi::KeSetEvent(w.event.get(), 0, 0) };
            STATUS_PENDING
        }
        _ => {
            if CONTROL_BUSY.swap(1, Ordering::AcqRel) != 0 {
                kit::log(
                    c"control request refused, another running: kind",
                    u64::from(hdr.kind),
                );
                complete(irp, STATUS_DEVICE_BUSY, 0);
                return STATUS_DEVICE_BUSY;
            }
            let n = handle(None, irp, &hdr, input, output);
            CONTROL_BUSY.store(0, Ordering::Release);
            n
        }
    }
}

fn refuse(irp: *mut IRP, output: usize, why: Malformed) -> NTSTATUS {
    kit::log(
        c"malformed request",
        match why {
            Malformed::Short => 1,
            Malformed::Magic => 2,
            Malformed::Reserved => 3,
            Malformed::Record(n) => 0x1_0000_0000 | u64::from(n),
            Malformed::Trailing => 4,
        },
    );
    let h = proto::response_header(0, STATUS_INVALID_PARAMETER, 0);
    let buf = system_buffer(irp);
    if output >= h.len() && !buf.is_null() {
        // SAFETY: the system buffer holds at least `output` ≥ 16 bytes.
        unsafe { core::ptr::copy_nonoverlapping(h.as_ptr(), buf, h.len()) };
        complete(irp, STATUS_SUCCESS, h.len());
        STATUS_SUCCESS
    } else {
        // The dispatch routine returns the status it completed with ("Completing IRPs",
        // Microsoft Learn).
        complete(irp, STATUS_INVALID_PARAMETER, 0);
        STATUS_INVALID_PARAMETER
    }
}

/// A worker thread: waits for its request, runs it, completes it.
unsafe extern "system" fn worker_main(context: *mut c_void) {
    let w = context.addr();
    ops::init_worker(w);
    let Some(me) = WORKER.get(w) else {
        return;
    };
    loop {
        // SAFETY: the worker's initialized event; kernel-mode, non-alertable wait.
        let _ = unsafe {
            ffi::KeWaitForSingleObject(
                me.event.get().cast(),
                ffi::EXECUTIVE,
                ffi::KERNEL_MODE,
                0,
                core::ptr::null(),
            )
        };
        // Taken out of the slot before it is completed: the client's next request for this
        // worker may arrive as soon as this one completes, and must find the slot free.
        let irp = me.irp.swap(core::ptr::null_mut(), Ordering::AcqRel);
        if irp.is_null() {
            continue;
        }
        let (_, input, output) = ioctl_parameters(irp);
        let buf = system_buffer(irp);
        // SAFETY: `input` bytes of the system buffer (checked ≤ MESSAGE at dispatch).
        let hdr = proto::header(unsafe { core::slice::from_raw_parts(buf, input) });
        match hdr {
            Ok(h) => {
                let _ = handle(Some(w), irp, &h, input, output);
            }
            Err(e) => {
                let _ = refuse(irp, output, e);
            }
        }
    }
}

/// Runs a request whose header is `hdr` and completes its IRP. `worker`: the worker thread
/// running it (operations, shutdown), `None` on the dispatch thread.
fn handle(
    worker: Option<usize>,
    irp: *mut IRP,
    hdr: &Header,
    input: usize,
    output: usize,
) -> NTSTATUS {
    let buf = system_buffer(irp);
    let copy = match worker.and_then(|w| WORKER.get(w)) {
        Some(w) => w.buf.get(),
        None => CONTROL_BUF.get(),
    };
    // SAFETY: the copy belongs to this worker (one request at a time per worker) or to
    // the dispatch thread (CONTROL_BUSY); `input` ≤ MESSAGE bytes.
    let req: &mut [u8] = unsafe { core::slice::from_raw_parts_mut(copy.cast::<u8>(), MESSAGE) };
    let Some(req) = req.get_mut(..input) else {
        complete(irp, STATUS_INVALID_PARAMETER, 0);
        return STATUS_INVALID_PARAMETER;
    };
    // SAFETY: `input` bytes of the system buffer into the copy.
    unsafe { core::ptr::copy_nonoverlapping(buf, req.as_mut_ptr(), input) };
    let req: &[u8] = req;
    // SAFETY: the system buffer holds `output` bytes for the response (METHOD_BUFFERED).
    let out = unsafe { core::slice::from_raw_parts_mut(buf, output) };
    let (status, body) = match hdr.kind {
        proto::KIND_OPS => run_ops(worker.unwrap_or(0), req, hdr.count, out),
        proto::KIND_VOLUME => run_volumes(req, hdr.count, out),
        proto::KIND_PROCESS => run_processes(req, hdr.count, out),
        proto::KIND_REPORT => (
            STATUS_SUCCESS,
            report(out.get_mut(proto::HEADER..).unwrap_or(&mut [])),
        ),
        proto::KIND_SHUTDOWN => run_shutdown(worker.unwrap_or(0), hdr.count, out),
        _ => (STATUS_INVALID_PARAMETER, Some(0)),
    };
    let Some(body) = body else {
        complete(irp, STATUS_BUFFER_TOO_SMALL, 0);
        return STATUS_BUFFER_TOO_SMALL;
    };
    let h = proto::response_header(hdr.kind, status, u32::try_from(body).unwrap_or(0));
    if let Some(dst) = out.get_mut(..proto::HEADER) {
        dst.copy_from_slice(&h);
    }
    complete(irp, STATUS_SUCCESS, proto::HEADER.saturating_add(body));
    STATUS_SUCCESS
}

/// Writes `bytes` at `at` of the response body; `None` when it does not fit.
fn put(out: &mut [u8], at: usize, bytes: &[u8]) -> Option<()> {
    let start = proto::HEADER.checked_add(at)?;
    out.get_mut(start..start.checked_add(bytes.len())?)?
        .copy_from_slice(bytes);
    Some(())
}

fn run_ops(w: usize, req: &[u8], count: u32, out: &mut [u8]) -> (NTSTATUS, Option<usize>) {
    let need = usize::try_from(count)
        .unwrap_or(usize::MAX)
        .saturating_mul(RESULT_SIZE);
    if need > out.len().saturating_sub(proto::HEADER) {
        return (STATUS_BUFFER_TOO_SMALL, None);
    }
    let mut at = proto::HEADER;
    for i in 0..count {
        let res = match proto::op(req, at, i) {
            Ok((r, next)) => {
                at = next;
                ops::run(w, i, &r)
            }
            Err(_) => {
                kit::log(c"malformed operation record", u64::from(i));
                return (STATUS_INVALID_PARAMETER, Some(0));
            }
        };
        let off = usize::try_from(i).unwrap_or(0).saturating_mul(RESULT_SIZE);
        if put(out, off, &res.encode()).is_none() {
            return (STATUS_BUFFER_TOO_SMALL, None);
        }
    }
    if at != req.len() {
        return (STATUS_INVALID_PARAMETER, Some(0));
    }
    (STATUS_SUCCESS, Some(need))
}

fn run_volumes(req: &[u8], count: u32, out: &mut [u8]) -> (NTSTATUS, Option<usize>) {
    let mut at = proto::HEADER;
    let mut body = 0usize;
    for i in 0..count {
        let Ok((c, next)) = proto::volume(req, at, i) else {
            return (STATUS_INVALID_PARAMETER, Some(body));
        };
        at = next;
        let v = usize::from(c.volume);
        let (status, value): (NTSTATUS, u32) = match c.action {
            proto::volume_action::ATTACH => match volumes::attach(v, c.altitude, windows_sys::Wdk::Storage::FileSystem::Minifilters::FLTFL_INSTANCE_SETUP_MANUAL_ATTACHMENT) {
                Ok(idx) => (STATUS_SUCCESS, u32::try_from(idx).unwrap_or(u32::MAX)),
                Err(e) => (e, u32::MAX),
            },
            proto::volume_action::DETACH => {
                let idx = volumes::instances_on(v)
                    .find(|i| i.altitude.load(Ordering::Acquire) == c.altitude)
                    .map(volumes::instance_index);
                match idx {
                    Some(idx) => (volumes::detach(idx), u32::try_from(idx).unwrap_or(u32::MAX)),
                    None => (windows_sys::Win32::Foundation::STATUS_FLT_INSTANCE_NOT_FOUND, u32::MAX),
                }
            }
            proto::volume_action::DISMOUNT => (STATUS_SUCCESS, volumes::dismount(v)),
            proto::volume_action::DEFINE => (
                volumes::define(v, c.name, c.fs_type, c.device_type, c.dos, c.dos_kind, c.flags),
                0,
            ),
            proto::volume_action::CONFIGURE => (
                volumes::configure(v, c.dos_failures, (c.dos_kind != 0xFF).then_some(c.dos_kind), c.flags),
                0,
            ),
            _ => (STATUS_INVALID_PARAMETER, 0),
        };
        if put(out, body, &status.to_le_bytes()).is_none()
            || put(out, body.saturating_add(4), &value.to_le_bytes()).is_none()
        {
            return (STATUS_BUFFER_TOO_SMALL, None);
        }
        body = body.saturating_add(8);
    }
    (STATUS_SUCCESS, Some(body))
}

fn run_processes(req: &[u8], count: u32, out: &mut [u8]) -> (NTSTATUS, Option<usize>) {
    let mut at = proto::HEADER;
    let mut body = 0usize;
    for i in 0..count {
        let Ok((p, next)) = proto::process(req, at, i) else {
            return (STATUS_INVALID_PARAMETER, Some(body));
        };
        at = next;
        let status = interpose::deliver_process(p.pid, (p.action == 1).then_some(p.image));
        if put(out, body, &status.to_le_bytes()).is_none() {
            return (STATUS_BUFFER_TOO_SMALL, None);
        }
        body = body.saturating_add(4);
    }
    (STATUS_SUCCESS, Some(body))
}

fn run_shutdown(w: usize, flags: u32, out: &mut [u8]) -> (NTSTATUS, Option<usize>) {
    let mut callbacks = 0u32;
    let mut status = STATUS_SUCCESS;
    if flags & 1 != 0 {
        callbacks = ops::shutdown_through_filter(w);
    }
    if flags & 2 != 0 {
        status = interpose::deliver_shutdown_notification();
    }
    if put(out, 0, &status.to_le_bytes()).is_none()
        || put(out, 4, &callbacks.to_le_bytes()).is_none()
    {
        return (STATUS_BUFFER_TOO_SMALL, None);
    }
    (STATUS_SUCCESS, Some(8))
}

/// Time-stamp-counter ticks per millisecond, measured against the performance counter
/// since DriverEntry.
fn tsc_per_ms() -> u64 {
    let (q, f) = kit::qpc();
    let dq = u64::try_from(q)
        .unwrap_or(0)
        .saturating_sub(QPC0.load(Ordering::Acquire));
    let dt = kit::tsc().saturating_sub(TSC0.load(Ordering::Acquire));
    let f = u64::try_from(f).unwrap_or(0);
    if dq == 0 || f == 0 {
        return 0;
    }
    // ticks / (dq / f seconds) / 1000 = ticks * f / (dq * 1000)
    let num = u128::from(dt).saturating_mul(u128::from(f));
    let den = u128::from(dq).saturating_mul(1000);
    u64::try_from(num.checked_div(den).unwrap_or(0)).unwrap_or(u64::MAX)
}

/// The report body (docs/windows.md, "The double's protocol"); `None` if `out` is short.
fn report(out: &mut [u8]) -> Option<usize> {
    let mut b = Body { out, at: 0 };
    b.u32(1)?;
    b.u32(verify::total())?;
    b.u32(filter::current_state())?;
    b.u32(u32::try_from(volumes::live_instances().count()).unwrap_or(u32::MAX))?;
    b.u32(names::live())?;
    b.u32(pushlock::live())?;
    b.i32(i32::try_from(volumes::disk_refs_out()).unwrap_or(i32::MAX))?;
    b.u32(interpose::dos_buffers_out())?;
    b.u32(u32::from(interpose::notify_registered()))?;
    b.u32(u32::from(interpose::shutdown_registered()))?;
    b.u64(ops::OPS.load(Ordering::Relaxed))?;
    b.u64(ops::PRE_CALLS.load(Ordering::Relaxed))?;
    b.u64(ops::POST_CALLS.load(Ordering::Relaxed))?;
    b.u64(ops::NAME_QUERIES.load(Ordering::Relaxed))?;
    b.u64(names::HANDED_OUT.load(Ordering::Relaxed))?;
    b.u64(tsc_per_ms())?;
    b.u32(filter::UNLOADS.load(Ordering::Acquire))?;
    b.u32(filter::LAST_UNLOAD_STATUS.load(Ordering::Acquire))?;
    b.u32(filter::LAST_LEFTOVERS.load(Ordering::Acquire))?;
    b.u32(u32::try_from(filter::REGISTRATIONS.load(Ordering::Acquire)).unwrap_or(u32::MAX))?;
    b.u32(interpose::PATCHED.load(Ordering::Acquire))?;
    let mut recs = [verify::Record::default(); RECORDS];
    let n = verify::records(&mut recs);
    b.u32(u32::try_from(n).unwrap_or(0))?;
    for i in 0..volumes::VOLUMES {
        let (dos, name, disk) = volumes::volume(i).map_or((0, 0, 0), |v| {
            (
                v.dos_calls.load(Ordering::Relaxed),
                v.name_calls.load(Ordering::Relaxed),
                v.disk_refs.load(Ordering::Acquire),
            )
        });
        b.u32(dos)?;
        b.u32(name)?;
        b.i32(i32::try_from(disk).unwrap_or(i32::MAX))?;
        b.u32(u32::try_from(volumes::instances_on(i).count()).unwrap_or(0))?;
    }
    for i in 0..volumes::INSTANCES {
        let (st, vol, alt, refs) = volumes::instance(i).map_or((0, 0, 0, 0), |x| {
            (
                x.state.load(Ordering::Acquire),
                x.volume.load(Ordering::Acquire),
                x.altitude.load(Ordering::Acquire),
                x.refs.load(Ordering::Acquire),
            )
        });
        b.u32(st)?;
        b.u32(vol)?;
        b.u32(alt)?;
        b.i32(i32::try_from(refs).unwrap_or(i32::MAX))?;
    }
    for r in recs.iter().take(n) {
        b.u32(r.code)?;
        b.u32(r.seq)?;
        for v in r.values {
            b.u64(v)?;
        }
    }
    Some(b.at)
}

struct Body<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl Body<'_> {
    fn bytes(&mut self, v: &[u8]) -> Option<()> {
        let end = self.at.checked_add(v.len())?;
        self.out.get_mut(self.at..end)?.copy_from_slice(v);
        self.at = end;
        Some(())
    }
    fn u32(&mut self, v: u32) -> Option<()> {
        self.bytes(&v.to_le_bytes())
    }
    fn i32(&mut self, v: i32) -> Option<()> {
        self.bytes(&v.to_le_bytes())
    }
    fn u64(&mut self, v: u64) -> Option<()> {
        self.bytes(&v.to_le_bytes())
    }
}
