//! The driver's service `Parameters` key (see inf/failsafeflt.inx), as the responder's
//! console reads and writes it on Windows. Written from Microsoft's documentation and
//! type-checked for `x86_64-pc-windows-msvc` in CI; not run on Windows by us.

use std::path::Path;

use failsafe_loader::state::record::{REPORT_LEN, StartReport, decode_report};

/// The key, under `HKLM`.
pub const KEY: &str = r"SYSTEM\CurrentControlSet\Services\failsafeflt\Parameters";
/// Present in WinPE and WinRE only: there `HKLM\SYSTEM` is the recovery environment's own
/// hive, not the installed system's.
const MINI_NT: &str = r"SYSTEM\CurrentControlSet\Control\MiniNT";

/// The switches the driver reads at start (`None`: absent or not a `REG_DWORD`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Switches {
    /// `ForceSafeMode`.
    pub force_safe_mode: Option<u32>,
    /// `Threshold`.
    pub threshold: Option<u32>,
    /// `HealthyAfterSeconds`.
    pub healthy_after_secs: Option<u32>,
    /// `LastStart` (`REG_BINARY`): the driver's start report, written even when the
    /// state record cannot be.
    pub last_start: Option<StartReport>,
}

/// Whether this is WinPE / WinRE.
pub fn in_winre() -> bool {
    windows_registry::LOCAL_MACHINE.open(MINI_NT).is_ok()
}

/// Whether `dir` is this running system's own store (`%SystemRoot%\Failsafe`), so that
/// this system's registry is the one its driver reads.
pub fn is_live_store(dir: &Path) -> bool {
    let live = crate::default_store();
    let norm = |p: &Path| p.to_string_lossy().trim_end_matches('\\').to_lowercase();
    !in_winre() && norm(&live) == norm(dir)
}

/// Reads the switches; `Err` when the key cannot be opened (driver not installed).
pub fn read() -> Result<Switches, String> {
    let key = windows_registry::LOCAL_MACHINE
        .open(KEY)
        .map_err(|e| format!("cannot open HKLM\\{KEY}: {e}"))?;
    let last_start = key.get_value("LastStart").ok().and_then(|v| {
        let b: &[u8] = v.as_ref();
        b.get(..REPORT_LEN).and_then(decode_report)
    });
    Ok(Switches {
        force_safe_mode: key.get_u32("ForceSafeMode").ok(),
        threshold: key.get_u32("Threshold").ok(),
        healthy_after_secs: key.get_u32("HealthyAfterSeconds").ok(),
        last_start,
    })
}

/// Sets `ForceSafeMode` on this running system. Returns the value's full name.
pub fn set_force_safe(on: bool) -> Result<String, String> {
    let key = windows_registry::LOCAL_MACHINE
        .create(KEY)
        .map_err(|e| format!("cannot open HKLM\\{KEY}: {e}"))?;
    key.set_u32("ForceSafeMode", u32::from(on))
        .map_err(|e| format!("cannot set HKLM\\{KEY}\\ForceSafeMode: {e}"))?;
    Ok(format!("HKLM\\{KEY}\\ForceSafeMode = {}", u32::from(on)))
}

/// The keys the driver verifies content with, as it reads them at start
/// (`driver/src/kernel/registry.rs`, `read_trust`): the compiled-in release keys; the test
/// keys of `TestSigningKeys` (REG_BINARY, n x 32 bytes) only when `TestSigning` is 1 and
/// Windows booted with test signing (`TESTSIGNING` among `SystemStartOptions` under
/// `HKLM\SYSTEM\CurrentControlSet\Control`). `Err` when the driver's key cannot be opened.
pub fn driver_trust() -> Result<crate::preview::TrustView, String> {
    use failsafe_loader::trust::{KeyKind, Trust};
    let key = windows_registry::LOCAL_MACHINE
        .open(KEY)
        .map_err(|e| format!("cannot open HKLM\\{KEY}: {e}"))?;
    let mut trust = Trust::builtin();
    let release = trust.keys().count();
    let switch = key.get_u32("TestSigning").ok() == Some(1);
    let on = switch && windows_test_signing();
    trust.set_test_signing(on);
    let mut test = 0;
    if on && let Ok(v) = key.get_value("TestSigningKeys") {
        let blob: &[u8] = v.as_ref();
        if let Ok(n) = trust.add_keys(blob, KeyKind::Test) {
            test = n;
        }
    }
    Ok(crate::preview::TrustView {
        trust,
        known: true,
        source: format!(
            "the driver's ({release} compiled-in release key(s){})",
            if on {
                format!(", test signing on with {test} TestSigningKeys key(s)")
            } else if switch {
                ", TestSigning = 1 ignored: Windows did not boot with test signing".to_owned()
            } else {
                String::new()
            }
        ),
    })
}

/// Windows booted with test signing: `TESTSIGNING` among the boot options
/// (`SystemStartOptions`, e.g. `" TESTSIGNING  NOEXECUTE=OPTIN"`), as the driver checks.
fn windows_test_signing() -> bool {
    windows_registry::LOCAL_MACHINE
        .open(r"SYSTEM\CurrentControlSet\Control")
        .and_then(|k| k.get_string("SystemStartOptions"))
        .is_ok_and(|o| o.split(' ').any(|w| w.eq_ignore_ascii_case("TESTSIGNING")))
}
