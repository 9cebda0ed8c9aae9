//! Operations: the callback data the double builds, the pre- and post-operation callbacks
//! it calls, and the routines that are about an operation — `FltGetFileNameInformation`,
//! `FltGetDestinationFileNameInformation`, `FltGetTunneledName`,
//! `FltGetRequestorProcessId`, `FltCancelFileOpen` — plus `IRP_MJ_SHUTDOWN` through the
//! filter.
//!
//! Each worker thread ([`device`](crate::device)) owns one [`Frame`]: `FLT_CALLBACK_DATA`
//! (windows-sys's, which matches the WDK), an `FLT_IO_PARAMETER_BLOCK` in the WDK's layout
//! ([`layout::Iopb`](crate::layout::Iopb)), related objects, an `IO_SECURITY_CONTEXT`, a
//! `FILE_OBJECT` whose `FileName` is the opened name, and the information buffer of a
//! set-information operation in memory that ends against an inaccessible page (as Driver
//! Verifier's special pool does: a read past `Length`, rounded up to 16 bytes, faults).
//!
//! An operation on a volume goes through the filter's attached instances from the highest
//! altitude down (Microsoft Learn, "PFLT_PRE_OPERATION_CALLBACK"): `FLT_PREOP_COMPLETE`
//! stops it there with the callback's `IoStatus` (only instances above get their post
//! callback); otherwise the "file system" completes it with the record's status, and the
//! post-operation callbacks that were asked for (`FLT_PREOP_SUCCESS_WITH_CALLBACK`,
//! `FLT_PREOP_SYNCHRONIZE`) run from the lowest instance up, on the same thread ("Post-create
//! callback routines are guaranteed to be called at IRQL PASSIVE_LEVEL, in the context of
//! the thread that originated the IRP_MJ_CREATE operation"). With
//! [`op_flag::DRAIN`](crate::proto::op_flag::DRAIN) the operation waits between pre and post
//! until its instance is torn down and gets `FLTFL_POST_OPERATION_DRAINING` with a copy of
//! the callback data ("PFLT_POST_OPERATION_CALLBACK").
//!
//! Checked ([`verify`](crate::verify)): pre-operation statuses (`FLT_PREOP_PENDING` is
//! refused as not implemented here; `DISALLOW_FASTIO` for an IRP, `DISALLOW_FSFILTER_IO`
//! outside QueryOpen are errors), `STATUS_PENDING` with `FLT_PREOP_COMPLETE`, a completion
//! context with a status that takes none, a post callback asked for and not registered,
//! post-operation statuses, `FltCancelFileOpen` outside post-create or after a failed
//! create and a success status left after it, `FltGetTunneledName` outside a post
//! callback, name options, callback data that is not a live operation's, names leaked by an
//! operation.

use core::ffi::c_void;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};

use windows_sys::Wdk::Foundation::{FILE_OBJECT, IO_SECURITY_CONTEXT};
use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
    FLT_CALLBACK_DATA, FLT_FILE_NAME_INFORMATION, FLT_FILE_NAME_NORMALIZED, FLT_FILE_NAME_OPENED,
    FLT_FILE_NAME_SHORT, FLT_POSTOP_FINISHED_PROCESSING, FLT_PREOP_COMPLETE,
    FLT_PREOP_SUCCESS_NO_CALLBACK, FLT_PREOP_SUCCESS_WITH_CALLBACK, FLT_PREOP_SYNCHRONIZE,
    FLT_RELATED_OBJECTS, FLTFL_CALLBACK_DATA_FAST_IO_OPERATION, FLTFL_CALLBACK_DATA_IRP_OPERATION,
    FLTFL_OPERATION_REGISTRATION_SKIP_PAGING_IO, FLTFL_POST_OPERATION_DRAINING, PFLT_INSTANCE,
};
use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_FLT_INVALID_NAME_REQUEST, STATUS_INVALID_PARAMETER,
    STATUS_OBJECT_NAME_INVALID, STATUS_PENDING, STATUS_SUCCESS, UNICODE_STRING,
};
use windows_sys::Win32::System::IO::{IO_STATUS_BLOCK, IO_STATUS_BLOCK_0};

use crate::filter::{self, state as fstate};
use crate::kit::{self, Racy};
use crate::layout::{CreateParams, Iopb, Params, SetInfoParams, wdk};
use crate::names::{self, Name};
use crate::proto::{OpRecord, OpResult, op_flag, result_flag};
use crate::verify::{self, Code, violation};
use crate::volumes::{self, Instance};

/// Worker threads (and frames).
pub const WORKERS: usize = 8;
/// Largest set-information buffer an operation may carry.
pub const INFO_MAX: usize = 0x1_0000;

/// `IRP_PAGING_IO` (wdm.h).
const IRP_PAGING_IO: u32 = 0x2;
/// `FO_FILE_OPEN_CANCELLED` (wdm.h), set by `FltCancelFileOpen` ("FltCancelFileOpen
/// function", Remarks).
const FO_FILE_OPEN_CANCELLED: u32 = 0x0020_0000;
/// `FILE_ATTRIBUTE_NORMAL`, `FILE_SHARE_READ | WRITE | DELETE`.
const ATTRIBUTE_NORMAL: u16 = 0x80;
const SHARE_ALL: u16 = 7;

/// Phases of an operation (what a routine called with its callback data may do).
mod phase {
    pub const NONE: u32 = 0;
    pub const PRE: u32 = 1;
    pub const POST: u32 = 2;
}

/// A worker's operation state. `data` is first: `&data` is the `PFLT_CALLBACK_DATA`.
#[repr(C)]
pub struct Frame {
    data: FLT_CALLBACK_DATA,
    iopb: Iopb,
    objects: [FLT_RELATED_OBJECTS; 2],
    drain_copy: FLT_CALLBACK_DATA,
    security: IO_SECURITY_CONTEXT,
    file: FILE_OBJECT,
    serial: u64,
    major: u8,
    volume: usize,
    pid: u32,
    flags: u32,
    name_status: i32,
    dest_status: i32,
    hold_name_ms: u16,
    held: bool,
    cancelled: bool,
    fs_succeeded: bool,
    names_acquired: u32,
    name: (*const u16, usize),
    opened: (*const u16, usize),
    dest: (*const u16, usize),
    tunnel: (*const u16, usize),
    info: (*mut u8, usize),
}

// SAFETY: a frame is used by its worker thread only (and by routines the driver calls
// from that thread during the operation, which `frame_of` checks); its raw pointers point
// into the worker's own request buffer and information buffer.
unsafe impl Send for Frame {}

impl core::fmt::Debug for Frame {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Frame(..)")
    }
}

/// One worker's frame and what routines may ask of it.
struct Slot {
    frame: Racy<Frame>,
    /// The frame's operation is running: `&frame.data` is a live callback data.
    live: AtomicU32,
    phase: AtomicU32,
    /// The worker's thread object (routines must be called on it).
    thread: AtomicPtr<c_void>,
    /// The guarded information buffer (its end is followed by an inaccessible page).
    info_base: AtomicPtr<u8>,
}

static SLOTS: [Slot; WORKERS] = [const {
    Slot {
        // SAFETY: every field of Frame is an integer, a pointer, a bool, an Option of a
        // function pointer or a union/struct of those, for which all-zero is valid.
        frame: Racy::new(unsafe { core::mem::zeroed() }),
        live: AtomicU32::new(0),
        phase: AtomicU32::new(phase::NONE),
        thread: AtomicPtr::new(core::ptr::null_mut()),
        info_base: AtomicPtr::new(core::ptr::null_mut()),
    }
}; WORKERS];

/// A static fallback information buffer per worker when no guarded one could be made.
static FALLBACK_INFO: [Racy<[u8; INFO_MAX]>; WORKERS] =
    [const { Racy::new([0; INFO_MAX]) }; WORKERS];

static SERIAL: AtomicU64 = AtomicU64::new(0);
/// Operations run, pre-operation and post-operation callbacks made, name queries answered.
pub static OPS: AtomicU64 = AtomicU64::new(0);
/// See [`OPS`].
pub static PRE_CALLS: AtomicU64 = AtomicU64::new(0);
/// See [`OPS`].
pub static POST_CALLS: AtomicU64 = AtomicU64::new(0);
/// See [`OPS`].
pub static NAME_QUERIES: AtomicU64 = AtomicU64::new(0);

/// Prepares worker `w` (its own thread, at start): records the thread, and maps the
/// guarded information buffer (`ZwAllocateVirtualMemory` + `ZwProtectVirtualMemory`, which
/// Wine's ntoskrnl exports; a static buffer without a guard page otherwise).
pub fn init_worker(w: usize) {
    let Some(s) = SLOTS.get(w) else {
        return;
    };
    // SAFETY: no arguments.
    s.thread.store(
        unsafe { crate::ffi::KeGetCurrentThread() },
        Ordering::Release,
    );
    let base = crate::interpose::guarded_region(INFO_MAX);
    if base.is_null() {
        kit::log(c"no guarded information buffer for worker", kit::n(w));
        if let Some(f) = FALLBACK_INFO.get(w) {
            s.info_base.store(f.get().cast(), Ordering::Release);
        }
    } else {
        s.info_base.store(base, Ordering::Release);
    }
}

/// The worker slot whose frame's callback data is `data`, if that operation is live and
/// this is its worker's thread.
fn slot_of_data(data: *const FLT_CALLBACK_DATA) -> Option<&'static Slot> {
    let s = SLOTS
        .iter()
        .find(|s| s.frame.get().cast::<FLT_CALLBACK_DATA>().cast_const() == data)?;
    live_on_this_thread(s).then_some(s)
}

fn slot_of_file(file: *const FILE_OBJECT) -> Option<&'static Slot> {
    // SAFETY: only the address of the field is computed (no read).
    let s = SLOTS
        .iter()
        .find(|s| unsafe { core::ptr::addr_of!((*s.frame.get()).file) } == file)?;
    live_on_this_thread(s).then_some(s)
}

fn live_on_this_thread(s: &Slot) -> bool {
    // SAFETY: no arguments.
    let me = unsafe { crate::ffi::KeGetCurrentThread() };
    s.live.load(Ordering::Acquire) != 0 && s.thread.load(Ordering::Acquire) == me
}

/// The frame of a slot; a reference to it may be formed only by its worker's thread while
/// no other is in use (`run` keeps none across the driver's callbacks).
fn frame(s: &Slot) -> *mut Frame {
    s.frame.get()
}

fn units<'a>((p, n): (*const u16, usize)) -> &'a [u16] {
    if p.is_null() {
        return &[];
    }
    // SAFETY: pointer and length of a slice of the worker's request buffer, which stays
    // unchanged while the operation runs.
    unsafe { core::slice::from_raw_parts(p, n) }
}

fn raw(s: &[u16]) -> (*const u16, usize) {
    (s.as_ptr(), s.len())
}

/// Runs operation `r` (the `index`th of its batch) on worker `w` and returns its result.
///
/// The frame is reached through a raw pointer for the whole operation, and references to
/// it live only within one statement: the routines the driver calls back during its
/// callbacks form their own (`frame`), which must not overlap one held here.
pub fn run(w: usize, index: u32, r: &OpRecord<'_>) -> OpResult {
    let mut res = OpResult {
        index,
        pre_status: [-1, -1],
        post_status: [-1, -1],
        ..OpResult::default()
    };
    let Some(s) = SLOTS.get(w) else {
        res.flags = result_flag::MALFORMED;
        res.io_status = STATUS_INVALID_PARAMETER;
        return res;
    };
    OPS.fetch_add(1, Ordering::Relaxed);
    let violations_before = verify::total();
    let serial = SERIAL.fetch_add(1, Ordering::AcqRel).saturating_add(1);
    let vol = usize::from(r.volume);
    let instances = volumes::attached_on(vol);
    if filter::current_state() != fstate::STARTED || instances.iter().all(Option::is_none) {
        res.flags = result_flag::UNFILTERED;
        res.io_status = r.fs_status;
        return res;
    }
    let info = place_info(s.info_base.load(Ordering::Acquire), r.buffer);
    let fp = s.frame.get();
    // SAFETY: this is worker `w`'s thread and no operation is live on the slot (one at a
    // time per worker): nobody else uses the frame.
    unsafe { build(fp, serial, vol, r, info) };
    s.live.store(1, Ordering::Release);
    // SAFETY: pointers to fields of the frame, computed without forming references.
    let data_ptr = unsafe { &raw mut (*fp).data };
    // SAFETY: as above.
    let drain_ptr = unsafe { &raw mut (*fp).drain_copy };
    // SAFETY: as above.
    let file_ptr = unsafe { &raw const (*fp).file };
    // SAFETY: as above.
    let objects_base = unsafe { &raw mut (*fp).objects }.cast::<FLT_RELATED_OBJECTS>();

    let major = r.major;
    let (pre, post, reg_flags) = filter::callbacks(major);
    // FLT_OPERATION_REGISTRATION: "FLTFL_OPERATION_REGISTRATION_SKIP_PAGING_IO: the
    // minifilter's callbacks are not called for paging I/O".
    let (pre, post) = if r.flags & op_flag::PAGING_IO != 0
        && reg_flags & FLTFL_OPERATION_REGISTRATION_SKIP_PAGING_IO != 0
    {
        (None, None)
    } else {
        (pre, post)
    };
    let mut need_post: [Option<(&'static Instance, *mut c_void)>; 2] = [None, None];
    let mut completed = false;
    for (k, inst) in instances.iter().enumerate() {
        let Some(inst) = *inst else { continue };
        let Some(_g) = filter::enter(&[fstate::STARTED]) else {
            break;
        };
        let Some(pre) =
            pre.filter(|_| inst.state.load(Ordering::Acquire) == volumes::state::ATTACHED)
        else {
            continue;
        };
        inst.in_flight.fetch_add(1, Ordering::AcqRel);
        let objects_ptr = objects_base.wrapping_add(k);
        let mut objects = volumes::related(filter::handle(), inst);
        objects.FileObject = file_ptr;
        // SAFETY: `k < 2` (two instances at most), inside the frame's array; no reference
        // to the frame is live.
        unsafe { objects_ptr.write(objects) };
        // SAFETY: the frame's parameter block, written through the raw pointer.
        unsafe { (*fp).iopb.target_instance = volumes::instance_handle(inst) };
        let mut ctx: *mut c_void = core::ptr::null_mut();
        s.phase.store(phase::PRE, Ordering::Release);
        let t0 = kit::tsc();
        // SAFETY: the driver's registered pre-operation callback with the frame's live
        // callback data, related objects and a completion-context slot, on this thread.
        let st = unsafe { pre(data_ptr, objects_ptr, &mut ctx) };
        let t1 = kit::tsc();
        s.phase.store(phase::NONE, Ordering::Release);
        PRE_CALLS.fetch_add(1, Ordering::Relaxed);
        if res.pre_called == 0 {
            res.pre_ticks = t1.wrapping_sub(t0);
        }
        res.pre_called = res.pre_called.saturating_add(1);
        if let Some(p) = res.pre_status.get_mut(k) {
            *p = st;
        }
        check_pre(serial, major, st, ctx, post.is_some(), status_of(data_ptr));
        match st {
            FLT_PREOP_COMPLETE => {
                inst.in_flight.fetch_sub(1, Ordering::AcqRel);
                completed = true;
                res.flags |= result_flag::COMPLETED;
                break;
            }
            FLT_PREOP_SUCCESS_WITH_CALLBACK | FLT_PREOP_SYNCHRONIZE if post.is_some() => {
                if let Some(n) = need_post.get_mut(k) {
                    *n = Some((inst, ctx));
                }
            }
            _ => {
                inst.in_flight.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
    if !completed {
        let iosb = IO_STATUS_BLOCK {
            Anonymous: IO_STATUS_BLOCK_0 {
                Status: r.fs_status,
            },
            Information: usize::try_from(r.fs_information).unwrap_or(0),
        };
        // SAFETY: the frame's callback data, written through the raw pointer.
        unsafe { (*data_ptr).IoStatus = iosb };
    }
    // SAFETY: as above.
    unsafe { (*fp).fs_succeeded = !completed && r.fs_status >= 0 };
    for k in (0..need_post.len()).rev() {
        let Some(Some((inst, ctx))) = need_post.get(k).copied() else {
            continue;
        };
        let Some(post) = post else { continue };
        let Some(_g) = filter::enter(&[fstate::STARTED, fstate::UNREGISTERING]) else {
            inst.in_flight.fetch_sub(1, Ordering::AcqRel);
            continue;
        };
        if r.flags & op_flag::DRAIN != 0 {
            wait_for_teardown(inst, r.hold_name_ms);
        }
        let draining = inst.state.load(Ordering::Acquire) == volumes::state::TEARING_DOWN;
        let flags = if draining {
            FLTFL_POST_OPERATION_DRAINING
        } else {
            0
        };
        let arg = if draining {
            // "If this flag is set, the Data parameter points to a copy of the original
            // callback data structure" (PFLT_POST_OPERATION_CALLBACK).
            // SAFETY: inside the frame; no reference to it is live.
            let copy = unsafe { data_ptr.read() };
            // SAFETY: as above.
            unsafe { drain_ptr.write(copy) };
            res.flags |= result_flag::DRAINED;
            drain_ptr
        } else {
            data_ptr
        };
        // SAFETY: the frame's flag, written through the raw pointer.
        unsafe { (*fp).cancelled = false };
        s.phase.store(phase::POST, Ordering::Release);
        // SAFETY: the driver's registered post-operation callback with the callback data (or
        // its copy when draining), the related objects, the context its pre callback
        // returned, and documented flags.
        let st = unsafe { post(arg, objects_base.wrapping_add(k), ctx.cast_const(), flags) };
        s.phase.store(phase::NONE, Ordering::Release);
        POST_CALLS.fetch_add(1, Ordering::Relaxed);
        res.post_called = res.post_called.saturating_add(1);
        if let Some(p) = res.post_status.get_mut(k) {
            *p = st;
        }
        if st != FLT_POSTOP_FINISHED_PROCESSING {
            violation(
                Code::PostopStatus,
                [serial, u64::from(st.unsigned_abs()), u64::from(flags)],
            );
        }
        // SAFETY: the frame's flag, read through the raw pointer.
        if unsafe { (*fp).cancelled } {
            res.flags |= result_flag::CANCELLED;
            if status_of(data_ptr) >= 0 {
                violation(Code::CancelWithoutFailure, [serial, 0, 0]);
            }
        }
        inst.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
    res.io_status = status_of(data_ptr);
    // SAFETY: the frame's callback data, read by value through the raw pointer.
    res.information = u64::try_from(unsafe { (*data_ptr).IoStatus.Information }).unwrap_or(0);
    // SAFETY: the frame's counter, read through the raw pointer.
    res.names_acquired = unsafe { (*fp).names_acquired };
    s.live.store(0, Ordering::Release);
    let leaked = names::held_by(serial);
    if leaked != 0 {
        violation(Code::NameLeak, [serial, u64::from(leaked), 0]);
        names::disown(serial);
    }
    res.names_leaked = leaked;
    res.violations = verify::total().saturating_sub(violations_before);
    res
}

/// The `IoStatus.Status` of callback data the double built.
fn status_of(data: *const FLT_CALLBACK_DATA) -> NTSTATUS {
    // SAFETY: a frame's callback data; read by value, no reference kept.
    let io = unsafe { (*data).IoStatus };
    // SAFETY: `Status` is the member the double and the driver write (IO_STATUS_BLOCK's
    // union of NTSTATUS and PVOID; the double zeroes it first).
    unsafe { io.Anonymous.Status }
}

/// Copies `buffer` so that it ends as close to the inaccessible page as 16-byte alignment
/// allows (special pool's placement); returns its address and length.
fn place_info(base: *mut u8, buffer: &[u8]) -> (*mut u8, usize) {
    if base.is_null() || buffer.len() > INFO_MAX {
        return (core::ptr::null_mut(), 0);
    }
    let start = INFO_MAX.saturating_sub(buffer.len()) & !15;
    let dst = base.wrapping_add(start);
    // SAFETY: `base` is this worker's INFO_MAX-byte buffer; `start + len ≤ INFO_MAX`.
    unsafe { core::ptr::copy_nonoverlapping(buffer.as_ptr(), dst, buffer.len()) };
    (dst, buffer.len())
}

/// Fills the frame for `r`.
///
/// # Safety
/// `fp` is a worker's frame that no one else uses during the call.
unsafe fn build(fp: *mut Frame, serial: u64, vol: usize, r: &OpRecord<'_>, info: (*mut u8, usize)) {
    // SAFETY: the caller's contract; pointers into the frame computed from `fp` keep their
    // validity when the frame is later reached through `fp` again.
    let security_ptr = unsafe { &raw mut (*fp).security };
    // SAFETY: as above.
    let file_ptr = unsafe { &raw mut (*fp).file };
    // SAFETY: as above.
    let iopb_ptr = unsafe { &raw const (*fp).iopb };
    // SAFETY: the caller's contract; this reference ends with this function, before the
    // frame is used by anyone else.
    let f = unsafe { &mut *fp };
    f.serial = serial;
    f.major = r.major;
    f.volume = vol;
    f.pid = r.pid;
    f.flags = r.flags;
    f.name_status = r.name_status;
    f.dest_status = r.dest_status;
    f.hold_name_ms = r.hold_name_ms;
    f.held = false;
    f.cancelled = false;
    f.fs_succeeded = false;
    f.names_acquired = 0;
    f.name = raw(r.name);
    f.opened = raw(if r.opened.is_empty() {
        r.name
    } else {
        r.opened
    });
    f.dest = raw(r.dest);
    f.tunnel = raw(r.tunnel);
    f.info = info;
    // SAFETY: all-zero is valid for these plain structures (see SLOTS).
    f.security = unsafe { core::mem::zeroed() };
    f.security.DesiredAccess = r.desired_access;
    f.security.FullCreateOptions = r.create_options & 0x00FF_FFFF;
    // SAFETY: as above.
    f.file = unsafe { core::mem::zeroed() };
    f.file.Type = 5; // IO_TYPE_FILE
    f.file.Size = i16::try_from(core::mem::size_of::<FILE_OBJECT>()).unwrap_or(0);
    f.file.FileName = kit::unicode(units(f.opened)).unwrap_or(UNICODE_STRING {
        Length: 0,
        MaximumLength: 0,
        Buffer: core::ptr::null_mut(),
    });
    f.file.DeviceObject = volumes::volume(vol).map_or(core::ptr::null_mut(), |v| v.disk());
    let params = match r.major {
        0 => Params {
            create: CreateParams {
                security_context: if r.flags & op_flag::NO_SECURITY_CONTEXT != 0 {
                    core::ptr::null_mut()
                } else {
                    security_ptr
                },
                options: r.create_options,
                pad0: 0,
                file_attributes: ATTRIBUTE_NORMAL,
                share_access: SHARE_ALL,
                pad1: 0,
                ea_length: 0,
                pad2: 0,
                ea_buffer: core::ptr::null_mut(),
                allocation_size: 0,
            },
        },
        6 => Params {
            set_info: SetInfoParams {
                length: r.info_length,
                pad0: 0,
                class: i32::from_ne_bytes(r.info_class.to_ne_bytes()),
                pad1: 0,
                parent_of_target: core::ptr::null_mut(),
                replace_or_handle: 0,
                info_buffer: info.0.cast(),
            },
        },
        _ => Params { raw: [0; 6] },
    };
    f.iopb = Iopb {
        irp_flags: if r.flags & op_flag::PAGING_IO != 0 {
            IRP_PAGING_IO
        } else {
            0
        },
        major: r.major,
        minor: 0,
        operation_flags: r.operation_flags,
        reserved: 0,
        target_file_object: file_ptr,
        target_instance: 0,
        params,
    };
    // SAFETY: as above.
    f.data = unsafe { core::mem::zeroed() };
    f.data.Flags = if r.flags & op_flag::FAST_IO != 0 {
        FLTFL_CALLBACK_DATA_FAST_IO_OPERATION
    } else {
        FLTFL_CALLBACK_DATA_IRP_OPERATION
    };
    // SAFETY: no arguments.
    f.data.Thread =
        isize::try_from(unsafe { crate::ffi::KeGetCurrentThread() }.addr()).unwrap_or(0);
    // The WDK-layout block in the place of windows-sys's (same size, see layout.rs).
    f.data.Iopb = iopb_ptr.cast();
    f.data.RequestorMode = i8::try_from(r.requestor_mode).unwrap_or(1);
}

/// Checks a pre-operation status against "PFLT_PRE_OPERATION_CALLBACK".
fn check_pre(
    serial: u64,
    major: u8,
    st: i32,
    ctx: *mut c_void,
    has_post: bool,
    io_status: NTSTATUS,
) {
    let v = |c| violation(c, [serial, u64::from(major), u64::from(st.unsigned_abs())]);
    match st {
        FLT_PREOP_SUCCESS_NO_CALLBACK => {}
        FLT_PREOP_COMPLETE => {
            if io_status == STATUS_PENDING {
                v(Code::CompletePending);
            }
        }
        FLT_PREOP_SUCCESS_WITH_CALLBACK | FLT_PREOP_SYNCHRONIZE => {
            if !has_post {
                v(Code::NoPostCallback);
            }
            if major == 0x10 {
                v(Code::NoPostCallback); // IRP_MJ_SHUTDOWN has no post-operation callback
            }
        }
        2 => v(Code::Unsupported), // FLT_PREOP_PENDING: FltCompletePendedPreOperation is not here
        _ => v(Code::PreopStatus),
    }
    if !ctx.is_null() && st != FLT_PREOP_SUCCESS_WITH_CALLBACK && st != FLT_PREOP_SYNCHRONIZE {
        v(Code::CompletionContext);
    }
}

/// Waits (up to `ms`, or 30 s) until `inst` is being torn down.
fn wait_for_teardown(inst: &Instance, ms: u16) {
    let limit = if ms == 0 { 30_000 } else { u32::from(ms) };
    let mut waited = 0u32;
    while waited < limit && inst.state.load(Ordering::Acquire) != volumes::state::TEARING_DOWN {
        kit::sleep_ms(1);
        waited = waited.saturating_add(1);
    }
}

fn check_options(serial: u64, options: u32) -> Result<u32, NTSTATUS> {
    let format = options & 0xFF;
    let query = options & 0xFF00;
    let ok_format = [
        FLT_FILE_NAME_NORMALIZED,
        FLT_FILE_NAME_OPENED,
        FLT_FILE_NAME_SHORT,
    ]
    .contains(&format);
    let ok_query = [0x100, 0x200, 0x300, 0x400].contains(&query);
    if ok_format && ok_query {
        Ok(format)
    } else {
        violation(Code::NameOptions, [serial, u64::from(options), 0]);
        Err(STATUS_INVALID_PARAMETER)
    }
}

/// Volume and share lengths of `name` on volume `vol`.
fn volume_parts(vol: usize, name: &[u16]) -> (usize, usize) {
    let v = volumes::volume(vol).map_or(&[][..], |v| v.name());
    let vol_units =
        if name.len() >= v.len() && kit::same_ascii_case(name.get(..v.len()).unwrap_or(&[]), v) {
            v.len()
        } else {
            0
        };
    let network = volumes::volume(vol)
        .is_some_and(|v| kit::same_ascii_case(v.name(), &kit::wide::<11>("\\Device\\Mup")));
    if !network {
        return (vol_units, 0);
    }
    // `\server\share`: the two components after the volume.
    let rest = name.get(vol_units..).unwrap_or(&[]);
    let mut seps = rest
        .iter()
        .enumerate()
        .filter(|(_, c)| **c == u16::from(b'\\'))
        .map(|(i, _)| i);
    let _first = seps.next();
    let _second = seps.next();
    let share = seps.next().unwrap_or(rest.len());
    (vol_units, share)
}

fn give(
    s: &Slot,
    f: &mut Frame,
    text: &[u16],
    format: u32,
    out: *mut *mut FLT_FILE_NAME_INFORMATION,
) -> NTSTATUS {
    let (volume_units, share_units) = volume_parts(f.volume, text);
    let name = Name {
        text,
        format,
        volume_units,
        share_units,
    };
    let _ = s;
    match names::acquire(f.serial, &name) {
        Ok(p) => {
            f.names_acquired = f.names_acquired.saturating_add(1);
            // SAFETY: the caller's out pointer (checked non-null by the caller).
            unsafe { *out = p };
            STATUS_SUCCESS
        }
        Err(e) => e,
    }
}

/// `FltGetFileNameInformation` (fltKernel.h: `NTSTATUS (PFLT_CALLBACK_DATA,
/// FLT_FILE_NAME_OPTIONS, PFLT_FILE_NAME_INFORMATION*)`, Microsoft Learn
/// "FltGetFileNameInformation function"): the operation's normalized or opened name;
/// failures as the page lists them (paging I/O and a short name in pre-create:
/// `STATUS_FLT_INVALID_NAME_REQUEST`; an injected status from the record, e.g.
/// `STATUS_INSUFFICIENT_RESOURCES`), an open by file ID in pre-create as Microsoft's
/// documentation repository reports it for an ID Filter Manager does not resolve
/// (MicrosoftDocs/windows-driver-docs-ddi#434: `STATUS_FLT_INVALID_NAME_REQUEST`);
/// `SL_OPEN_TARGET_DIRECTORY` in pre-create names the parent directory (Remarks).
///
/// # Safety
/// Called by the driver.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn FltGetFileNameInformation(
    data: *mut FLT_CALLBACK_DATA,
    options: u32,
    out: *mut *mut FLT_FILE_NAME_INFORMATION,
) -> NTSTATUS {
    NAME_QUERIES.fetch_add(1, Ordering::Relaxed);
    let Some(s) = slot_of_data(data) else {
        violation(Code::CallbackData, [kit::n(data.addr()), 1, 0]);
        return STATUS_INVALID_PARAMETER;
    };
    if out.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: `s` is live on this thread (slot_of_data).
    let f = unsafe { &mut *frame(s) };
    let ph = s.phase.load(Ordering::Acquire);
    if ph == phase::NONE {
        violation(Code::NameAfterOperation, [f.serial, 0, 0]);
        return STATUS_INVALID_PARAMETER;
    }
    let format = match check_options(f.serial, options) {
        Ok(fm) => fm,
        Err(e) => return e,
    };
    if !f.held && f.hold_name_ms != 0 && f.flags & op_flag::DRAIN == 0 {
        f.held = true;
        kit::sleep_ms(u32::from(f.hold_name_ms));
    }
    let pre_create = ph == phase::PRE && f.major == 0;
    if f.flags & op_flag::PAGING_IO != 0 || (pre_create && format == FLT_FILE_NAME_SHORT) {
        return STATUS_FLT_INVALID_NAME_REQUEST;
    }
    if f.name_status != 0 {
        return f.name_status;
    }
    // SAFETY: the create parameters the frame built, read on this thread.
    let options_of_create = unsafe { f.iopb.params.create.options };
    if pre_create
        && options_of_create & wdk::FILE_OPEN_BY_FILE_ID != 0
        && f.flags & op_flag::OPEN_BY_ID_RESOLVES == 0
    {
        return STATUS_FLT_INVALID_NAME_REQUEST;
    }
    let full = units(if format == FLT_FILE_NAME_OPENED {
        f.opened
    } else {
        f.name
    });
    let text = if format == FLT_FILE_NAME_SHORT {
        let cut = full
            .iter()
            .rposition(|&c| c == u16::from(b'\\'))
            .map_or(0, |i| i.saturating_add(1));
        full.get(cut..).unwrap_or(&[])
    } else if pre_create && f.iopb.operation_flags & wdk::SL_OPEN_TARGET_DIRECTORY != 0 {
        let cut = full
            .iter()
            .rposition(|&c| c == u16::from(b'\\'))
            .unwrap_or(full.len());
        full.get(..cut).unwrap_or(full)
    } else {
        full
    };
    give(s, f, text, format, out)
}

/// `FltGetDestinationFileNameInformation` (fltKernel.h: `NTSTATUS (PFLT_INSTANCE,
/// PFILE_OBJECT, HANDLE RootDirectory, PWSTR FileName, ULONG FileNameLength,
/// FLT_FILE_NAME_OPTIONS, PFLT_FILE_NAME_INFORMATION*)`, Microsoft Learn
/// "FltGetDestinationFileNameInformation function"): the destination's normalized name.
/// The name the caller passes must lie inside the operation's information buffer (it is
/// the rename/link structure's `FileName`); the double reads it to check that, then
/// answers the destination the record gives.
///
/// # Safety
/// Called by the driver.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn FltGetDestinationFileNameInformation(
    _instance: PFLT_INSTANCE,
    file: *mut FILE_OBJECT,
    _root: *mut c_void,
    file_name: *const u16,
    file_name_length: u32,
    options: u32,
    out: *mut *mut FLT_FILE_NAME_INFORMATION,
) -> NTSTATUS {
    NAME_QUERIES.fetch_add(1, Ordering::Relaxed);
    let Some(s) = slot_of_file(file) else {
        violation(Code::CallbackData, [kit::n(file.addr()), 2, 0]);
        return STATUS_INVALID_PARAMETER;
    };
    if out.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: live on this thread.
    let f = unsafe { &mut *frame(s) };
    if s.phase.load(Ordering::Acquire) == phase::NONE {
        violation(Code::NameAfterOperation, [f.serial, 1, 0]);
        return STATUS_INVALID_PARAMETER;
    }
    let format = match check_options(f.serial, options) {
        Ok(fm) => fm,
        Err(e) => return e,
    };
    let (buf, len) = f.info;
    let lo = buf.addr();
    let hi = lo.saturating_add(len);
    let start = file_name.addr();
    let end = start.checked_add(usize::try_from(file_name_length).unwrap_or(usize::MAX));
    if buf.is_null() || start < lo || end.is_none_or(|e| e > hi) {
        violation(
            Code::DestinationOutsideBuffer,
            [f.serial, u64::from(file_name_length), 0],
        );
        return STATUS_INVALID_PARAMETER;
    }
    // Read what the caller passed (inside the buffer, checked): a read past the buffer
    // would fault against the guard page.
    let mut sum = 0u16;
    for i in 0..usize::try_from(file_name_length / 2).unwrap_or(0) {
        // SAFETY: inside [lo, hi) (checked above); u16 reads of any alignment.
        sum = sum.wrapping_add(unsafe { file_name.wrapping_add(i).read_unaligned() });
    }
    core::hint::black_box(sum);
    if f.dest_status != 0 {
        return f.dest_status;
    }
    let dest = units(f.dest);
    if dest.is_empty() {
        return STATUS_OBJECT_NAME_INVALID;
    }
    give(s, f, dest, format, out)
}

/// `FltGetTunneledName` (fltKernel.h: `NTSTATUS (PFLT_CALLBACK_DATA,
/// PFLT_FILE_NAME_INFORMATION, PFLT_FILE_NAME_INFORMATION*)`, Microsoft Learn
/// "FltGetTunneledName function"): only in a post-create / post-set-information callback;
/// the record's tunneled name as a new structure, or NULL when there is none.
///
/// # Safety
/// Called by the driver.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn FltGetTunneledName(
    data: *mut FLT_CALLBACK_DATA,
    info: *mut FLT_FILE_NAME_INFORMATION,
    out: *mut *mut FLT_FILE_NAME_INFORMATION,
) -> NTSTATUS {
    let Some(s) = slot_of_data(data) else {
        violation(Code::CallbackData, [kit::n(data.addr()), 3, 0]);
        return STATUS_INVALID_PARAMETER;
    };
    // SAFETY: live on this thread.
    let f = unsafe { &mut *frame(s) };
    if s.phase.load(Ordering::Acquire) != phase::POST || (f.major != 0 && f.major != 6) {
        violation(Code::TunnelOutsidePost, [f.serial, u64::from(f.major), 0]);
        return STATUS_INVALID_PARAMETER;
    }
    if out.is_null() || info.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    let tunnel = units(f.tunnel);
    if tunnel.is_empty() {
        // SAFETY: the caller's out pointer.
        unsafe { *out = core::ptr::null_mut() };
        return STATUS_SUCCESS;
    }
    give(s, f, tunnel, FLT_FILE_NAME_NORMALIZED, out)
}

/// `FltGetRequestorProcessId` (fltKernel.h: `ULONG (PFLT_CALLBACK_DATA)`): the record's
/// process id.
///
/// # Safety
/// Called by the driver.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn FltGetRequestorProcessId(data: *mut FLT_CALLBACK_DATA) -> u32 {
    match slot_of_data(data) {
        // SAFETY: live on this thread.
        Some(s) => unsafe { (*frame(s)).pid },
        None => {
            violation(Code::CallbackData, [kit::n(data.addr()), 4, 0]);
            0
        }
    }
}

/// `FltCancelFileOpen` (fltKernel.h: `VOID (PFLT_INSTANCE, PFILE_OBJECT)`, Microsoft Learn
/// "FltCancelFileOpen function"): only from a post-create callback after the file system
/// succeeded; sets `FO_FILE_OPEN_CANCELLED`. The callback must then fail the operation
/// (checked when it returns).
///
/// # Safety
/// Called by the driver.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn FltCancelFileOpen(_instance: PFLT_INSTANCE, file: *mut FILE_OBJECT) {
    let Some(s) = slot_of_file(file) else {
        violation(Code::CallbackData, [kit::n(file.addr()), 5, 0]);
        return;
    };
    // SAFETY: live on this thread.
    let f = unsafe { &mut *frame(s) };
    if s.phase.load(Ordering::Acquire) != phase::POST || f.major != 0 || !f.fs_succeeded {
        violation(
            Code::CancelOutsidePostCreate,
            [f.serial, u64::from(f.major), 0],
        );
        return;
    }
    f.cancelled = true;
    f.file.Flags |= FO_FILE_OPEN_CANCELLED;
}

/// `IRP_MJ_SHUTDOWN` through the filter: the pre-operation callback of every attached
/// instance that registered one ("IRP_MJ_SHUTDOWN" has no post-operation callback), on
/// worker `w`. Returns the callbacks made.
pub fn shutdown_through_filter(w: usize) -> u32 {
    let (pre, _, _) = filter::callbacks(0x10);
    let Some(pre) = pre else {
        return 0;
    };
    let Some(s) = SLOTS.get(w) else {
        return 0;
    };
    let mut n = 0u32;
    for vol in 0..volumes::VOLUMES {
        for inst in volumes::attached_on(vol).into_iter().flatten() {
            let Some(_g) = filter::enter(&[fstate::STARTED]) else {
                return n;
            };
            let serial = SERIAL.fetch_add(1, Ordering::AcqRel).saturating_add(1);
            let r = OpRecord {
                major: 0x10,
                volume: u8::try_from(vol).unwrap_or(0),
                pid: 4,
                flags: 0,
                desired_access: 0,
                create_options: 0,
                operation_flags: 0,
                requestor_mode: 0,
                name_status: 0,
                dest_status: 0,
                fs_status: 0,
                info_class: 0,
                info_length: 0,
                hold_name_ms: 0,
                fs_information: 0,
                name: &[],
                opened: &[],
                dest: &[],
                tunnel: &[],
                buffer: &[],
            };
            let fp = s.frame.get();
            // SAFETY: worker `w`'s thread; no operation live on the slot.
            unsafe { build(fp, serial, vol, &r, (core::ptr::null_mut(), 0)) };
            // SAFETY: the frame's parameter block, written through the raw pointer.
            unsafe { (*fp).iopb.target_instance = volumes::instance_handle(inst) };
            // SAFETY: a field pointer computed from `fp`.
            let file_ptr = unsafe { &raw const (*fp).file };
            // SAFETY: as above.
            let data_ptr = unsafe { &raw mut (*fp).data };
            let mut objects = volumes::related(filter::handle(), inst);
            objects.FileObject = file_ptr;
            let mut ctx: *mut c_void = core::ptr::null_mut();
            s.live.store(1, Ordering::Release);
            s.phase.store(phase::PRE, Ordering::Release);
            // SAFETY: the registered IRP_MJ_SHUTDOWN pre-operation callback, live data.
            let st = unsafe { pre(data_ptr, &objects, &mut ctx) };
            s.phase.store(phase::NONE, Ordering::Release);
            s.live.store(0, Ordering::Release);
            check_pre(serial, 0x10, st, ctx, false, status_of(data_ptr));
            n = n.saturating_add(1);
        }
    }
    n
}
