//! Configuration: the service's `Parameters` key (the pattern of Windows-driver-samples
//! `filesys/miniFilter/NameChanger/ncinit.c` `NcOpenServiceParametersKey`, ZwOpenKey on
//! `<RegistryPath>\Parameters`), and whether Windows booted in Safe Mode. PASSIVE_LEVEL,
//! `DriverEntry` only.

use alloc::vec::Vec;

use super::ffi::{
    _KEY_VALUE_INFORMATION_CLASS, HANDLE, InitSafeBootMode, KEY_READ, KEY_SET_VALUE, NTSTATUS,
    PCUNICODE_STRING, STATUS_BUFFER_OVERFLOW, STATUS_BUFFER_TOO_SMALL,
    STATUS_OBJECT_NAME_NOT_FOUND, ZwOpenKey, ZwQueryValueKey, ZwSetValueKey,
};
use super::nt::{Handle, Wide, debug_assert_passive, object_attributes};
use crate::config::{DEFAULT_DIR, RegistryValues};
use crate::wire::{REG_BINARY, key_value_partial, number_value, string_value};
use failsafe_loader::trust::{KeyKind, Trust};

/// Largest value read: a `KEY_VALUE_PARTIAL_INFORMATION` header and 512 UTF-16 units.
const VALUE_BYTES: usize = 12 + 1024;

/// What `DriverEntry` reads from `Parameters`.
#[derive(Debug)]
pub struct Parameters {
    pub values: RegistryValues,
    /// `DrillCrashVersion`: read by drill builds only (a release image does not even
    /// contain the name; tests/tests/pe.rs checks).
    pub drill_version: Option<u64>,
    /// `DrillStoreAclReportOnly` (non-zero): drill builds only, for hosts that do not
    /// emulate file security (`storedir::Policy`).
    pub drill_store_acl_report_only: bool,
    /// `DrillSetupFault` = 1: the drill build faults in its own setup (issue 20), after the
    /// build's attempt is durable. Read by drill builds only.
    pub drill_setup_fault: bool,
    /// `ContentDirectory`, or the default when absent; `None` when present but unusable
    /// (the driver then refuses to start rather than count attempts in another store than
    /// the one the operator configured).
    pub dir: Option<Wide>,
    /// The service key (the registry path DriverEntry was given), for `LastStart`.
    pub service: Wide,
    /// Content signing keys: the release keys compiled into the core, plus, only when
    /// test signing is on, the test keys of `TestSigningKeys` (docs/boot-safety.md, trust).
    pub trust: Trust,
}

/// Largest value read at all (a `ContentDirectory` path of up to 32 767 units).
const MAX_VALUE_BYTES: usize = 12 + 0x1_0000;

/// What a value query found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Query {
    /// In `buf`.
    Read,
    /// No such value.
    Absent,
    /// There, but it could not be read (too large, out of memory, another error).
    Failed,
}

/// One value's raw `KEY_VALUE_PARTIAL_INFORMATION` into `buf` (pool memory), which grows
/// once to the size the first call reported when the value is larger (`ResultLength` on
/// `STATUS_BUFFER_OVERFLOW` / `STATUS_BUFFER_TOO_SMALL`; Microsoft Learn, "ZwQueryValueKey").
fn query(key: &Handle, name: &str, buf: &mut Vec<u8>) -> Query {
    debug_assert_passive!();
    let Some(mut n) = Wide::from_str(name) else {
        return Query::Failed;
    };
    for _ in 0..2 {
        match query_once(key, &mut n, buf) {
            Ok(()) => return Query::Read,
            Err(STATUS_OBJECT_NAME_NOT_FOUND) => return Query::Absent,
            Err(s) if s == STATUS_BUFFER_OVERFLOW || s == STATUS_BUFFER_TOO_SMALL => {}
            Err(_) => return Query::Failed,
        }
    }
    Query::Failed
}

/// One `ZwQueryValueKey`; on a too-small buffer, grows `buf` to the size reported.
fn query_once(key: &Handle, n: &mut Wide, buf: &mut Vec<u8>) -> Result<(), NTSTATUS> {
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
    if status == STATUS_BUFFER_OVERFLOW || status == STATUS_BUFFER_TOO_SMALL {
        let need = usize::try_from(got).unwrap_or(usize::MAX);
        if need > buf.len()
            && need <= MAX_VALUE_BYTES
            && buf
                .try_reserve_exact(need.saturating_sub(buf.len()))
                .is_ok()
        {
            buf.resize(need, 0);
        }
        return Err(status);
    }
    if status < 0 { Err(status) } else { Ok(()) }
}

/// A `REG_DWORD` / `REG_QWORD` value (tests/tests/inf.rs finds the names the driver reads
/// by this function's name).
fn read_dword(key: &Handle, name: &str, buf: &mut Vec<u8>) -> Option<u64> {
    if query(key, name, buf) != Query::Read {
        return None;
    }
    key_value_partial(buf).and_then(|(kind, data)| number_value(kind, data))
}

/// A string value into `out`: `Ok(false)` when absent, `Err(())` when present but not a
/// usable path (wrong type, empty, unreadable, or a `REG_EXPAND_SZ` with a `%` variable,
/// which a driver cannot expand).
fn read_string(
    key: &Handle,
    name: &str,
    buf: &mut Vec<u8>,
    out: &mut Vec<u16>,
) -> Result<bool, ()> {
    match query(key, name, buf) {
        Query::Absent => return Ok(false),
        Query::Failed => return Err(()),
        Query::Read => {}
    }
    key_value_partial(buf)
        .and_then(|(kind, data)| string_value(kind, data, out))
        .ok_or(())?;
    if out.contains(&u16::from(b'%')) {
        return Err(());
    }
    Ok(true)
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
    let Some(key) = open_key(&mut path, KEY_READ) else {
        return Some(Parameters {
            values: RegistryValues::default(),
            drill_version: None,
            drill_store_acl_report_only: false,
            drill_setup_fault: false,
            dir: Some(default_dir()?),
            service: Wide::join(service, "")?,
            trust: Trust::builtin(),
        });
    };
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
    #[cfg(feature = "drill")]
    let drill_store_acl_report_only =
        read_test_value(&key, "DrillStoreAclReportOnly", &mut buf).is_some_and(|v| v != 0);
    #[cfg(not(feature = "drill"))]
    let drill_store_acl_report_only = false;
    #[cfg(feature = "drill")]
    let drill_setup_fault = read_test_value(&key, "DrillSetupFault", &mut buf) == Some(1);
    #[cfg(not(feature = "drill"))]
    let drill_setup_fault = false;
    let mut units = Vec::new();
    let dir = match read_string(&key, "ContentDirectory", &mut buf, &mut units) {
        Ok(true) => Some(Wide::join_units(&units, &[])?),
        Ok(false) => Some(default_dir()?),
        Err(()) => None,
    };
    let trust = read_trust(&key, &mut buf);
    Some(Parameters {
        values,
        drill_version,
        drill_store_acl_report_only,
        drill_setup_fault,
        dir,
        service: Wide::join(service, "")?,
        trust,
    })
}

/// The trusted content keys: the core's compiled-in release keys; the test keys of
/// `TestSigningKeys` (REG_BINARY, n × 32-byte Ed25519 public keys) count only when
/// `TestSigning` is 1 **and** Windows itself booted with test signing (its boot options,
/// `SystemStartOptions`, name `TESTSIGNING`), so that a registry value alone can never make
/// a production machine trust a development key. Test-only values, set by hand or by a
/// test package, never by the release INF. PASSIVE_LEVEL.
fn read_trust(key: &Handle, buf: &mut Vec<u8>) -> Trust {
    let mut trust = Trust::builtin();
    let switch = read_test_value(key, "TestSigning", buf) == Some(1);
    let on = switch && windows_test_signing(buf);
    trust.set_test_signing(on);
    if on
        && query(key, "TestSigningKeys", buf) == Query::Read
        && let Some((REG_BINARY, blob)) = key_value_partial(buf)
    {
        // A malformed list adds nothing (and the start then refuses test-signed content
        // with `unknown-key`, visible in `status`).
        let _ = trust.add_keys(blob, KeyKind::Test);
    }
    trust
}

/// A number from a test-only value (not in the INF, so not `read_dword`, whose names the
/// INF test requires the INF to set).
fn read_test_value(key: &Handle, name: &str, buf: &mut Vec<u8>) -> Option<u64> {
    if query(key, name, buf) != Query::Read {
        return None;
    }
    key_value_partial(buf).and_then(|(kind, data)| number_value(kind, data))
}

/// Windows booted with test signing on: `TESTSIGNING` among the boot options the loader
/// passed (`HKLM\SYSTEM\CurrentControlSet\Control`, `SystemStartOptions`, REG_SZ, e.g.
/// `" TESTSIGNING  NOEXECUTE=OPTIN"`). PASSIVE_LEVEL.
fn windows_test_signing(buf: &mut Vec<u8>) -> bool {
    let Some(mut path) = Wide::from_str("\\Registry\\Machine\\SYSTEM\\CurrentControlSet\\Control")
    else {
        return false;
    };
    let Some(key) = open_key(&mut path, KEY_READ) else {
        return false;
    };
    let mut units = Vec::new();
    if query(&key, "SystemStartOptions", buf) != Query::Read
        || key_value_partial(buf)
            .and_then(|(kind, data)| string_value(kind, data, &mut units))
            .is_none()
    {
        return false;
    }
    crate::config::boot_options_test_signing(&units)
}

/// Opens a registry key by its full NT name. PASSIVE_LEVEL.
fn open_key(path: &mut Wide, access: u32) -> Option<Handle> {
    debug_assert_passive!();
    let mut name = path.unicode();
    let mut attrs = object_attributes(&mut name);
    let mut raw: HANDLE = core::ptr::null_mut();
    // SAFETY: `attrs` points at `name`, which points into `path`; all are live locals;
    // PASSIVE_LEVEL.
    let status = unsafe { ZwOpenKey(&mut raw, access, &mut attrs) };
    (status >= 0).then_some(Handle(raw))
}

/// Writes the start report (`record::encode_report`) to `Parameters\LastStart`
/// (REG_BINARY), where `failsafectl status` reads it: a start the record does not show (an
/// unwritable record) is still visible. Registry writes at boot are lazily flushed (ADR
/// 0002): this is for visibility, never for counting. PASSIVE_LEVEL.
pub fn write_last_start(service: &Wide, report: &[u8]) -> bool {
    let Some(mut path) = Wide::join(service.units(), "\\Parameters") else {
        return false;
    };
    let (Some(key), Some(mut name)) = (
        open_key(&mut path, KEY_SET_VALUE),
        Wide::from_str("LastStart"),
    ) else {
        return false;
    };
    let mut us = name.unicode();
    let Ok(len) = u32::try_from(report.len()) else {
        return false;
    };
    // SAFETY: live key handle opened for setting values; `us` points into `name` and
    // `report` is live for the call; the kernel copies the data.
    let status = unsafe {
        ZwSetValueKey(
            key.0,
            &mut us,
            0,
            REG_BINARY,
            report.as_ptr().cast_mut().cast(),
            len,
        )
    };
    status >= 0
}

/// Write filters that discard writes at reboot, by service name: Unified Write Filter
/// (`uwfvol`), Enhanced Write Filter (`ewf`), File-Based Write Filter (`fbwf`). Any of them
/// installed and not disabled (`Start` present and not 4, SERVICE_DISABLED) means the
/// record's writes *may* not persist (docs/boot-safety.md, "Write filters": whether the
/// record's volume is protected or excluded is not checked, so this errs towards saying
/// so). PASSIVE_LEVEL.
pub fn write_filter_present() -> bool {
    let mut buf = Vec::new();
    if buf.try_reserve_exact(VALUE_BYTES).is_err() {
        return false;
    }
    buf.resize(VALUE_BYTES, 0u8);
    ["uwfvol", "ewf", "fbwf"].iter().any(|svc| {
        let Some(mut path) =
            Wide::from_str("\\Registry\\Machine\\SYSTEM\\CurrentControlSet\\Services\\")
                .and_then(|p| Wide::join(p.units(), svc))
        else {
            return false;
        };
        open_key(&mut path, KEY_READ)
            .and_then(|key| service_start(&key, &mut buf))
            .is_some_and(|start| start != SERVICE_DISABLED)
    })
}

/// `SERVICE_DISABLED` (winnt.h), a service's `Start` value when it never loads.
const SERVICE_DISABLED: u64 = 4;

/// A service key's `Start` value.
fn service_start(key: &Handle, buf: &mut Vec<u8>) -> Option<u64> {
    if query(key, "Start", buf) != Query::Read {
        return None;
    }
    key_value_partial(buf).and_then(|(kind, data)| number_value(kind, data))
}

/// Windows booted in Safe Mode (`InitSafeBootMode != 0`).
pub fn windows_safe_mode() -> u32 {
    // SAFETY: a ULONG exported by ntoskrnl for the lifetime of the system; read through
    // the import slot (see `ffi::InitSafeBootMode`); never written by the kernel after boot
    // initialization.
    unsafe { core::ptr::read_volatile(&raw const InitSafeBootMode) }
}
