//! Small helpers the double's files share: a static cell whose owner is documented where
//! it is used, counted UTF-16 strings, time, and the double's log lines (DbgPrint, which
//! Wine prints on its `debugstr` channel: the runner reads them).

use core::cell::UnsafeCell;
use core::ffi::CStr;

use windows_sys::Win32::Foundation::UNICODE_STRING;

use crate::ffi;

/// Static storage with interior mutability, for state whose owner (one thread, or a lock
/// of the double's) each use names in its `SAFETY:` comment.
#[derive(Debug)]
pub struct Racy<T>(UnsafeCell<T>);

// SAFETY: every access goes through `get`, whose callers state who owns the value at that
// moment (a worker thread for its own frame, the dispatch thread for control requests, an
// atomic state that hands a slot over). The values are kernel structures (raw pointers
// inside) that move between threads as the kernel's own do.
unsafe impl<T> Sync for Racy<T> {}

impl<T> Racy<T> {
    /// A cell holding `v`.
    pub const fn new(v: T) -> Self {
        Racy(UnsafeCell::new(v))
    }
    /// The value's address; dereferencing it needs the ownership the caller states.
    pub const fn get(&self) -> *mut T {
        self.0.get()
    }
}

/// UTF-16 of an ASCII string at compile time (`N` must be its length).
pub const fn wide<const N: usize>(s: &str) -> [u16; N] {
    let b = s.as_bytes();
    let mut out = [0u16; N];
    let mut i = 0;
    while i < N && i < b.len() {
        #[allow(
            clippy::indexing_slicing,
            clippy::as_conversions,
            clippy::arithmetic_side_effects,
            reason = "const fn (no From/get in const): i < N and i < len checked; u8 widens to u16"
        )]
        {
            out[i] = b[i] as u16;
            i += 1;
        }
    }
    out
}

/// A `UNICODE_STRING` describing `units` (borrowed: it must not outlive them); `None` when
/// longer than a `UNICODE_STRING` can say (32 767 units).
pub fn unicode(units: &[u16]) -> Option<UNICODE_STRING> {
    let bytes = u16::try_from(units.len().checked_mul(2)?).ok()?;
    Some(UNICODE_STRING {
        Length: bytes,
        MaximumLength: bytes,
        Buffer: units.as_ptr().cast_mut(),
    })
}

/// The units a `UNICODE_STRING` describes (empty for a null buffer).
///
/// # Safety
/// `s.Buffer` points to at least `s.Length` bytes valid for the returned lifetime.
pub unsafe fn units<'a>(s: &UNICODE_STRING) -> &'a [u16] {
    if s.Buffer.is_null() {
        return &[];
    }
    // SAFETY: the caller's contract.
    unsafe { core::slice::from_raw_parts(s.Buffer, usize::from(s.Length) / 2) }
}

/// The performance counter (hal.dll; Wine: 10 MHz from the host's monotonic clock) and its
/// frequency.
pub fn qpc() -> (i64, i64) {
    let mut f = 0i64;
    // SAFETY: `f` is a live local; any IRQL.
    let c = unsafe { ffi::KeQueryPerformanceCounter(&mut f) };
    (c, f)
}

/// The processor's time-stamp counter: the per-operation timer (the performance counter's
/// 100 ns step is too coarse for a pre-create); calibrated against [`qpc`] (see
/// `device::calibrate`).
pub fn tsc() -> u64 {
    // SAFETY: RDTSC reads a counter, changes no state; present on every x86-64 processor.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Sleeps at least `ms` milliseconds (PASSIVE_LEVEL; `KeDelayExecutionThread`, relative
/// time in 100 ns units).
pub fn sleep_ms(ms: u32) {
    let interval = i64::from(ms).saturating_mul(10_000).max(1).saturating_neg();
    // SAFETY: a live local; kernel mode, not alertable, at PASSIVE_LEVEL.
    let _ = unsafe { ffi::KeDelayExecutionThread(ffi::KERNEL_MODE, 0, &interval) };
}

/// Gives the processor to another thread (a zero-length relative wait).
pub fn yield_now() {
    let interval = 0i64;
    // SAFETY: as `sleep_ms`.
    let _ = unsafe { ffi::KeDelayExecutionThread(ffi::KERNEL_MODE, 0, &interval) };
}

/// A log line (`fltmgr-double: ...`) with one number.
pub fn log(what: &CStr, n: u64) {
    // SAFETY: "%s %I64u\n" takes a NUL-terminated string and a u64.
    let _ = unsafe {
        ffi::DbgPrint(
            c"fltmgr-double: %s %I64u\n".as_ptr().cast(),
            what.as_ptr(),
            n,
        )
    };
}

/// A log line with two numbers.
pub fn log2(what: &CStr, a: u64, b: u64) {
    // SAFETY: "%s %I64u %I64u\n" takes a NUL-terminated string and two u64.
    let _ = unsafe {
        ffi::DbgPrint(
            c"fltmgr-double: %s %I64u 0x%I64x\n".as_ptr().cast(),
            what.as_ptr(),
            a,
            b,
        )
    };
}

/// A `usize` (an address, a count) as the `u64` the report and log lines carry.
pub fn n(v: usize) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// Whether two UTF-16 strings are equal ignoring ASCII case (device and DOS names).
pub fn same_ascii_case(a: &[u16], b: &[u16]) -> bool {
    let fold = |c: u16| {
        if (0x61..=0x7A).contains(&c) {
            c & !0x20
        } else {
            c
        }
    };
    a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| fold(x) == fold(y))
}
