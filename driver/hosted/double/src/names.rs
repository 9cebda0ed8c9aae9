//! Name information: the `FLT_FILE_NAME_INFORMATION` structures the double hands out, and
//! `FltParseFileNameInformation`, `FltReferenceFileNameInformation`,
//! `FltReleaseFileNameInformation` (Microsoft Learn: "FLT_FILE_NAME_INFORMATION structure",
//! and each routine's page). The queries themselves (`FltGetFileNameInformation`,
//! `FltGetDestinationFileNameInformation`, `FltGetTunneledName`) are in
//! [`ops`](crate::ops), which knows the operation they are about.
//!
//! Each structure lives in one of [`SLOTS`] static slots with its own name buffer (up to
//! [`UNITS`] code units, the longest `UNICODE_STRING`), is answered from memory, and is
//! reference counted: `FltGetXxx` gives one reference, `FltReferenceFileNameInformation`
//! adds one, `FltReleaseFileNameInformation` drops one; at zero the slot is free. The
//! verifier flags a release or reference of a structure not handed out (or already
//! free), a structure an operation acquired and still held after it completed, and any
//! still held at the driver's unload.
//!
//! Parsing (the page's examples): `Volume` is the volume's device name (for
//! `\Device\Mup\server\share\...`, `\Device\Mup`, and `Share` is `\server\share`);
//! `ParentDir` is the path from the volume to the last separator, separator included;
//! `FinalComponent` is the rest, stream included; `Stream` is the final component from its
//! first `:`; `Extension` is what follows the last `.` of the final component without its
//! stream. Short-format names parse to nothing.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
    FLT_FILE_NAME_INFORMATION, FLT_FILE_NAME_SHORT, FLTFL_FILE_NAME_PARSED_EXTENSION,
    FLTFL_FILE_NAME_PARSED_FINAL_COMPONENT, FLTFL_FILE_NAME_PARSED_PARENT_DIR,
    FLTFL_FILE_NAME_PARSED_STREAM,
};
use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_PARAMETER, STATUS_SUCCESS,
    UNICODE_STRING,
};

use crate::kit::{self, Racy};
use crate::verify::{Code, violation};

/// Name structures the double can have out at once.
pub const SLOTS: usize = 64;
/// Longest name (code units): a `UNICODE_STRING` holds at most 32 767.
pub const UNITS: usize = 32_767;

const FREE: u32 = 0;
const FILLING: u32 = 1;
const LIVE: u32 = 2;

#[repr(C)]
struct Data {
    info: FLT_FILE_NAME_INFORMATION,
    buf: [u16; UNITS],
}

static DATA: [Racy<Data>; SLOTS] = [const {
    Racy::new(Data {
        info: FLT_FILE_NAME_INFORMATION {
            Size: 0,
            NamesParsed: 0,
            Format: 0,
            Name: EMPTY,
            Volume: EMPTY,
            Share: EMPTY,
            Extension: EMPTY,
            Stream: EMPTY,
            FinalComponent: EMPTY,
            ParentDir: EMPTY,
        },
        buf: [0; UNITS],
    })
}; SLOTS];
static STATE: [AtomicU32; SLOTS] = [const { AtomicU32::new(FREE) }; SLOTS];
static REFS: [AtomicU32; SLOTS] = [const { AtomicU32::new(0) }; SLOTS];
static PARSED: [AtomicU32; SLOTS] = [const { AtomicU32::new(0) }; SLOTS];
/// The operation (its serial number) that acquired the slot; 0 outside operations.
static OWNER: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
/// Structures handed out so far.
pub static HANDED_OUT: AtomicU64 = AtomicU64::new(0);

const EMPTY: UNICODE_STRING = UNICODE_STRING {
    Length: 0,
    MaximumLength: 0,
    Buffer: core::ptr::null_mut(),
};

/// What the structure describes.
#[derive(Clone, Copy, Debug)]
pub struct Name<'a> {
    /// The whole name.
    pub text: &'a [u16],
    /// `FLT_FILE_NAME_NORMALIZED`, `_OPENED` or `_SHORT`.
    pub format: u32,
    /// Units of `text` that are the volume's device name.
    pub volume_units: usize,
    /// Units after the volume that are the share (`\server\share`), network names only.
    pub share_units: usize,
}

fn string(buf: *mut u16, from: usize, units: usize) -> UNICODE_STRING {
    let bytes = u16::try_from(units.saturating_mul(2)).unwrap_or(0);
    UNICODE_STRING {
        Length: bytes,
        MaximumLength: bytes,
        Buffer: buf.wrapping_add(from),
    }
}

/// A new structure for `name`, owned by operation `op` (one reference), or the status
/// Filter Manager gives when it cannot allocate one.
pub fn acquire(op: u64, name: &Name<'_>) -> Result<*mut FLT_FILE_NAME_INFORMATION, NTSTATUS> {
    if name.text.len() > UNITS {
        return Err(STATUS_INVALID_PARAMETER);
    }
    let Some(i) = STATE.iter().position(|s| {
        s.compare_exchange(FREE, FILLING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }) else {
        kit::log(
            c"out of name slots; answering STATUS_INSUFFICIENT_RESOURCES, live",
            u64::from(live()),
        );
        return Err(STATUS_INSUFFICIENT_RESOURCES);
    };
    let Some(cell) = DATA.get(i) else {
        return Err(STATUS_INSUFFICIENT_RESOURCES);
    };
    // SAFETY: slot `i` is FILLING, claimed by this thread alone (compare-exchange above);
    // nobody else reads it until it is LIVE.
    let d = unsafe { &mut *cell.get() };
    for (dst, &src) in d.buf.iter_mut().zip(name.text) {
        *dst = src;
    }
    let base = d.buf.as_mut_ptr();
    let vol = name.volume_units.min(name.text.len());
    let share = name.share_units.min(name.text.len().saturating_sub(vol));
    d.info = FLT_FILE_NAME_INFORMATION {
        Size: u16::try_from(core::mem::size_of::<FLT_FILE_NAME_INFORMATION>()).unwrap_or(0),
        NamesParsed: 0,
        Format: name.format,
        Name: string(base, 0, name.text.len()),
        Volume: string(
            base,
            0,
            if name.format == FLT_FILE_NAME_SHORT {
                0
            } else {
                vol
            },
        ),
        Share: string(
            base,
            vol,
            if name.format == FLT_FILE_NAME_SHORT {
                0
            } else {
                share
            },
        ),
        Extension: EMPTY,
        Stream: EMPTY,
        FinalComponent: EMPTY,
        ParentDir: EMPTY,
    };
    if let (Some(r), Some(o), Some(p)) = (REFS.get(i), OWNER.get(i), PARSED.get(i)) {
        r.store(1, Ordering::Release);
        o.store(op, Ordering::Release);
        p.store(0, Ordering::Release);
    }
    if let Some(s) = STATE.get(i) {
        s.store(LIVE, Ordering::Release);
    }
    HANDED_OUT.fetch_add(1, Ordering::Relaxed);
    Ok(core::ptr::from_mut(&mut d.info))
}

/// The slot of a structure the double handed out.
fn slot_of(p: *const FLT_FILE_NAME_INFORMATION) -> Option<usize> {
    DATA.iter()
        .position(|c| c.get().cast::<FLT_FILE_NAME_INFORMATION>().cast_const() == p)
}

fn live_slot(p: *const FLT_FILE_NAME_INFORMATION, what: u64) -> Option<usize> {
    let i = slot_of(p).filter(|&i| {
        STATE
            .get(i)
            .is_some_and(|s| s.load(Ordering::Acquire) == LIVE)
    });
    if i.is_none() {
        violation(Code::NameUnknown, [kit::n(p.addr()), what, 0]);
    }
    i
}

/// `FltReleaseFileNameInformation` (fltKernel.h: `VOID (PFLT_FILE_NAME_INFORMATION)`).
///
/// # Safety
/// Called by the driver.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn FltReleaseFileNameInformation(info: *mut FLT_FILE_NAME_INFORMATION) {
    let Some(i) = live_slot(info, 1) else {
        return;
    };
    let Some(r) = REFS.get(i) else {
        return;
    };
    if r.fetch_sub(1, Ordering::AcqRel) == 1
        && let (Some(s), Some(o)) = (STATE.get(i), OWNER.get(i))
    {
        o.store(0, Ordering::Release);
        s.store(FREE, Ordering::Release);
    }
}

/// `FltReferenceFileNameInformation` (fltKernel.h: `VOID (PFLT_FILE_NAME_INFORMATION)`).
///
/// # Safety
/// Called by the driver.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn FltReferenceFileNameInformation(
    info: *mut FLT_FILE_NAME_INFORMATION,
) {
    if let Some(r) = live_slot(info, 2).and_then(|i| REFS.get(i)) {
        r.fetch_add(1, Ordering::AcqRel);
    }
}

/// `FltParseFileNameInformation` (fltKernel.h: `NTSTATUS (PFLT_FILE_NAME_INFORMATION)`):
/// fills `Extension`, `Stream`, `FinalComponent`, `ParentDir` and `NamesParsed` (see the
/// module documentation). The first call on a structure writes them; later calls find them.
///
/// # Safety
/// Called by the driver.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn FltParseFileNameInformation(
    info: *mut FLT_FILE_NAME_INFORMATION,
) -> NTSTATUS {
    let Some(i) = live_slot(info, 3) else {
        return STATUS_INVALID_PARAMETER;
    };
    let (Some(cell), Some(parsed)) = (DATA.get(i), PARSED.get(i)) else {
        return STATUS_INVALID_PARAMETER;
    };
    if parsed
        .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return STATUS_SUCCESS;
    }
    // SAFETY: the slot is LIVE (the driver holds a reference) and only this first parse
    // writes its component fields; the name text is not written while LIVE.
    let d = unsafe { &mut *cell.get() };
    let info = &mut d.info;
    info.NamesParsed = u16::try_from(
        FLTFL_FILE_NAME_PARSED_FINAL_COMPONENT
            | FLTFL_FILE_NAME_PARSED_EXTENSION
            | FLTFL_FILE_NAME_PARSED_STREAM
            | FLTFL_FILE_NAME_PARSED_PARENT_DIR,
    )
    .unwrap_or(0);
    if info.Format == FLT_FILE_NAME_SHORT {
        return STATUS_SUCCESS;
    }
    let base = d.buf.as_mut_ptr();
    let total = usize::from(info.Name.Length) / 2;
    let start = usize::from(info.Volume.Length).saturating_add(usize::from(info.Share.Length)) / 2;
    let text = d.buf.get(..total).unwrap_or(&[]);
    let rest = text.get(start..).unwrap_or(&[]);
    let sep = rest.iter().rposition(|&c| c == u16::from(b'\\'));
    let final_from = sep.map_or(0, |s| s.saturating_add(1));
    let final_part = rest.get(final_from..).unwrap_or(&[]);
    let stream_at = final_part.iter().position(|&c| c == u16::from(b':'));
    let stem = stream_at.map_or(final_part, |s| final_part.get(..s).unwrap_or(&[]));
    let dot = stem.iter().rposition(|&c| c == u16::from(b'.'));
    info.ParentDir = string(base, start, sep.map_or(0, |s| s.saturating_add(1)));
    info.FinalComponent = string(base, start.saturating_add(final_from), final_part.len());
    info.Stream = match stream_at {
        Some(s) => string(
            base,
            start.saturating_add(final_from).saturating_add(s),
            final_part.len().saturating_sub(s),
        ),
        None => EMPTY,
    };
    info.Extension = match dot {
        Some(p) => string(
            base,
            start
                .saturating_add(final_from)
                .saturating_add(p)
                .saturating_add(1),
            stem.len().saturating_sub(p).saturating_sub(1),
        ),
        None => EMPTY,
    };
    STATUS_SUCCESS
}

/// Structures currently handed out.
pub fn live() -> u32 {
    let n = STATE
        .iter()
        .filter(|s| s.load(Ordering::Acquire) == LIVE)
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Structures operation `op` acquired that are still referenced.
pub fn held_by(op: u64) -> u32 {
    let n = STATE
        .iter()
        .zip(OWNER.iter())
        .filter(|(s, o)| s.load(Ordering::Acquire) == LIVE && o.load(Ordering::Acquire) == op)
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Forgets operation `op`'s ownership of its structures still held (after the leak was
/// reported), so that they are not reported again for the next operation.
pub fn disown(op: u64) {
    for o in &OWNER {
        let _ = o.compare_exchange(op, u64::MAX, Ordering::AcqRel, Ordering::Acquire);
    }
}
