//! The registry mirror of the record (`<service>\Parameters\State`, values from
//! `failsafe_loader::state::mirror`; docs/windows.md, "State for fleet tools"): written
//! after every change of the record the driver makes (the start, a health check, a live
//! change, a clean shutdown), for fleet tools that read the registry. Visibility only: the
//! record file is what counts, registry writes at boot are lazily flushed (ADR 0002), and
//! nothing reads these values back.
//!
//! The key is created (or opened) once in `DriverEntry` and its kernel handle kept in
//! `KEY` until teardown. Writes run at PASSIVE_LEVEL with `STATE_LOCK` held (or in
//! `DriverEntry` before anything else runs), so they never interleave. Each write takes
//! two pool buffers (the text and its UTF-16 form, 3 KiB) and frees them.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ffi::c_void;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicPtr, Ordering};

use failsafe_loader::state::State;
use failsafe_loader::state::mirror::{self, SUBKEY, TEXT_MAX, Text, Value};

use super::ffi::{HANDLE, KEY_SET_VALUE, ZwClose, ZwCreateKey, ZwSetValueKey};
use super::globals::Running;
use super::nt::{Wide, debug_assert_passive, object_attributes};
use crate::active::try_box;
use crate::wire::{REG_DWORD, REG_SZ};

/// The `State` key, opened for setting values (null: none; nothing is mirrored).
static KEY: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());

/// `REG_OPTION_NON_VOLATILE` (wdm.h): the key survives a reboot, so a fleet tool reading
/// it before the driver's next start sees the last state.
const REG_OPTION_NON_VOLATILE: u32 = 0;

/// Creates or opens `<service>\Parameters\State`. `DriverEntry`, PASSIVE_LEVEL. Without it
/// the driver runs and mirrors nothing.
#[inline(never)]
pub fn open(service: &Wide) -> bool {
    debug_assert_passive!();
    let Some(mut path) =
        Wide::join(service.units(), "\\Parameters\\").and_then(|p| Wide::join(p.units(), SUBKEY))
    else {
        return false;
    };
    let mut name = path.unicode();
    let mut attrs = object_attributes(&mut name);
    let mut raw: HANDLE = core::ptr::null_mut();
    let mut disposition = 0u32;
    // SAFETY: `attrs` points at `name`, which points into `path`; all are live locals; no
    // class; PASSIVE_LEVEL (Microsoft Learn, "ZwCreateKey function (wdm.h)").
    let status = unsafe {
        ZwCreateKey(
            &mut raw,
            KEY_SET_VALUE,
            &mut attrs,
            0,
            core::ptr::null_mut(),
            REG_OPTION_NON_VOLATILE,
            &mut disposition,
        )
    };
    if status < 0 {
        return false;
    }
    let old = KEY.swap(raw, Ordering::AcqRel);
    if !old.is_null() {
        // SAFETY: a key handle this module opened and no longer publishes.
        let _ = unsafe { ZwClose(old) };
    }
    true
}

/// Closes the key. Teardown, PASSIVE_LEVEL, after the health work item, control requests
/// and the shutdown path can no longer write.
pub fn close() {
    let key = KEY.swap(core::ptr::null_mut(), Ordering::AcqRel);
    if !key.is_null() {
        // SAFETY: the handle `open` created; nothing else uses it any more.
        let _ = unsafe { ZwClose(key) };
    }
}

/// Mirrors the record as `r` holds it. With `STATE_LOCK` held (`health::with_state`).
pub fn write_locked(r: &Running) {
    write(r.durable.state(), r.durable.seq());
}

/// Writes every value of the mirror of `state` (record slot `seq`). PASSIVE_LEVEL, writers
/// serialized by the caller. A value that cannot be written is skipped (the console's
/// `status` then reports the disagreement).
#[inline(never)]
pub fn write(state: &State, seq: u64) {
    debug_assert_passive!();
    let key = KEY.load(Ordering::Acquire);
    if key.is_null() {
        return;
    }
    let Ok(mut text) = try_box(Text::new()) else {
        return;
    };
    let mut wide: Vec<u16> = Vec::new();
    if wide.try_reserve_exact(WIDE_UNITS).is_err() {
        return;
    }
    let spare = wide.spare_capacity_mut();
    // `RecordSequence` goes last and only when every other value was written: a reader
    // judges the mirror by it, so a partly failed update must not carry the new one.
    let mut all = true;
    mirror::each(state, seq, &mut text, |name, value| {
        if name != SEQUENCE {
            all &= set(key, name, value, spare);
        }
    });
    if all {
        mirror::each(state, seq, &mut text, |name, value| {
            if name == SEQUENCE {
                let _ = set(key, name, value, spare);
            }
        });
    }
    drop::<Box<Text>>(text);
}

/// The value a reader judges the mirror's age by (docs/windows.md, "State for fleet tools").
const SEQUENCE: &str = "RecordSequence";

/// Mirrors a record the driver wrote before (or without) its running state: a dormant
/// start or one whose own setup failed. Opens the key, writes, closes it. `DriverEntry`,
/// PASSIVE_LEVEL, nothing else running.
pub fn write_once(service: &Wide, state: &State, seq: u64) {
    if open(service) {
        write(state, seq);
        close();
    }
}

/// A text value's UTF-16 form and its terminating NUL.
const WIDE_UNITS: usize = TEXT_MAX + 1;

/// One `ZwSetValueKey`: a `REG_DWORD`, or a `REG_SZ` as UTF-16 with its terminating NUL
/// (built in `wide`, pool memory reserved for `WIDE_UNITS`).
/// Whether the value was written.
fn set(key: HANDLE, name: &str, value: Value<'_>, wide: &mut [MaybeUninit<u16>]) -> bool {
    let Some(mut n) = Wide::from_str(name) else {
        return false;
    };
    let mut us = n.unicode();
    let dword: [u8; 4];
    let (kind, data, len) = match value {
        Value::Dword(d) => {
            dword = d.to_le_bytes();
            (REG_DWORD, dword.as_ptr().cast::<c_void>(), 4u32)
        }
        Value::Sz(s) => {
            // ASCII (the core's texts are): one unit per byte; at most TEXT_MAX of them,
            // so the NUL fits the WIDE_UNITS reserved (checked, not assumed).
            let units = s.len().min(TEXT_MAX);
            let Some(nul) = wide.get_mut(units) else {
                return false;
            };
            nul.write(0);
            for (d, b) in wide.iter_mut().zip(s.bytes().take(units)) {
                d.write(u16::from(b));
            }
            let Ok(bytes) = u32::try_from(units.saturating_add(1).saturating_mul(2)) else {
                return false;
            };
            (REG_SZ, wide.as_ptr().cast::<c_void>(), bytes)
        }
    };
    // SAFETY: `key` is the live handle opened with KEY_SET_VALUE; `us` points into `n`;
    // `data` points at `len` bytes, all written above, that stay alive for the call (the
    // kernel copies them).
    let status = unsafe { ZwSetValueKey(key, &mut us, 0, kind, data.cast_mut(), len) };
    status >= 0
}
