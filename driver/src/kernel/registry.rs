//! Configuration: the service's `Parameters` key (the pattern of Windows-driver-samples
//! `filesys/miniFilter/NameChanger/ncinit.c` `NcOpenServiceParametersKey`, ZwOpenKey on
//! `<RegistryPath>\Parameters`), and whether Windows booted in Safe Mode. PASSIVE_LEVEL,
//! `DriverEntry` only.

use alloc::vec::Vec;

use super::ffi::{
    _KEY_VALUE_INFORMATION_CLASS, HANDLE, InitSafeBootMode, KEY_READ, PCUNICODE_STRING,
    STATUS_BUFFER_OVERFLOW, ZwOpenKey, ZwQueryValueKey,
};
use super::nt::{Handle, Wide, debug_assert_passive, object_attributes};
use crate::config::{DEFAULT_DIR, RegistryValues};
use crate::wire::{key_value_partial, number_value, string_value};

/// Largest value read: a `KEY_VALUE_PARTIAL_INFORMATION` header and 512 UTF-16 units.
const VALUE_BYTES: usize = 12 + 1024;

/// What `DriverEntry` reads from `Parameters`.
#[derive(Debug)]
pub struct Parameters {
    pub values: RegistryValues,
    /// `DrillCrashVersion`: read by drill builds only (a release image does not even
    /// contain the name; tests/tests/pe.rs checks).
    pub drill_version: Option<u64>,
    /// `ContentDirectory`, or the default.
    pub dir: Wide,
}

/// One value's raw `KEY_VALUE_PARTIAL_INFORMATION` into `buf` (pool memory); `false` when
/// absent, unreadable or larger than `buf`.
fn query(key: &Handle, name: &str, buf: &mut Vec<u8>) -> bool {
    debug_assert_passive!();
    let Some(mut n) = Wide::from_str(name) else {
        return false;
    };
    let mut us = n.unicode();
    let mut got = 0u32;
    let len = u32::try_from(buf.len()).unwrap_or(0);
    // SAFETY: live key handle; `us` points into `n`, alive for the call; `buf` is live and
    // `len` bytes long; `got` is a live local.
    let status = unsafe {
        ZwQueryValueKey(
            key.0,
            &mut us,
            _KEY_VALUE_INFORMATION_CLASS::KeyValuePartialInformation,
            buf.as_mut_ptr().cast(),
            len,
            &mut got,
        )
    };
    status >= 0 && status != STATUS_BUFFER_OVERFLOW
}

/// A `REG_DWORD` / `REG_QWORD` value (tests/tests/inf.rs finds the names the driver reads
/// by this function's name).
fn read_dword(key: &Handle, name: &str, buf: &mut Vec<u8>) -> Option<u64> {
    if !query(key, name, buf) {
        return None;
    }
    key_value_partial(buf).and_then(|(kind, data)| number_value(kind, data))
}

/// A `REG_SZ` value into `out`; `false` when absent, mistyped or empty.
fn read_string(key: &Handle, name: &str, buf: &mut Vec<u8>, out: &mut Vec<u16>) -> bool {
    query(key, name, buf)
        && key_value_partial(buf)
            .and_then(|(kind, data)| string_value(kind, data, out))
            .is_some()
}

/// Reads `<RegistryPath>\Parameters`. Absent or mistyped values take their defaults.
pub fn read_parameters(registry_path: PCUNICODE_STRING) -> Option<Parameters> {
    debug_assert_passive!();
    let mut buf = Vec::new();
    buf.try_reserve_exact(VALUE_BYTES).ok()?;
    buf.resize(VALUE_BYTES, 0u8);
    // SAFETY: the registry path passed to DriverEntry is a valid UNICODE_STRING for the
    // duration of DriverEntry (or null, handled by as_ref).
    let rp = unsafe { registry_path.as_ref() };
    let service: &[u16] = match rp {
        Some(r) if !r.Buffer.is_null() => {
            // SAFETY: `Length` bytes of UTF-16 at `Buffer`, valid during DriverEntry.
            unsafe { core::slice::from_raw_parts(r.Buffer, usize::from(r.Length) / 2) }
        }
        _ => &[],
    };
    let default_dir = || Wide::from_str(DEFAULT_DIR);
    let mut path = Wide::join(service, "\\Parameters")?;
    let mut name = path.unicode();
    let mut attrs = object_attributes(&mut name);
    let mut raw: HANDLE = core::ptr::null_mut();
    // SAFETY: `attrs` points at `name`, which points into `path`; all are live locals;
    // PASSIVE_LEVEL.
    if unsafe { ZwOpenKey(&mut raw, KEY_READ, &mut attrs) } < 0 {
        return Some(Parameters {
            values: RegistryValues::default(),
            drill_version: None,
            dir: default_dir()?,
        });
    }
    let key = Handle(raw);
    let to_u32 = |v: Option<u64>| v.and_then(|v| u32::try_from(v).ok());
    let values = RegistryValues {
        threshold: to_u32(read_dword(&key, "Threshold", &mut buf)),
        healthy_after_secs: to_u32(read_dword(&key, "HealthyAfterSeconds", &mut buf)),
        force_safe_mode: to_u32(read_dword(&key, "ForceSafeMode", &mut buf)),
    };
    #[cfg(feature = "drill")]
    let drill_version = read_dword(&key, "DrillCrashVersion", &mut buf);
    #[cfg(not(feature = "drill"))]
    let drill_version = None;
    let mut units = Vec::new();
    let dir = if read_string(&key, "ContentDirectory", &mut buf, &mut units) {
        Wide::join_units(&units, &[])?
    } else {
        default_dir()?
    };
    Some(Parameters {
        values,
        drill_version,
        dir,
    })
}

/// Windows booted in Safe Mode (`InitSafeBootMode != 0`).
pub fn windows_safe_mode() -> u32 {
    // SAFETY: a ULONG exported by ntoskrnl for the lifetime of the system; read through
    // the import slot (see `ffi::InitSafeBootMode`); never written by the kernel after boot
    // initialization.
    unsafe { core::ptr::read_volatile(&raw const InitSafeBootMode) }
}
