//! On Windows with the WDK: windows-drivers-rs's binary configuration (linker flags, WDK
//! paths, `/DRIVER`). Elsewhere there is no WDK; two checks run instead:
//!
//! - `--cfg failsafe_fltcheck`: the Filter Manager layer alone, nothing to configure;
//! - `--cfg failsafe_kcheck` (`cargo make kcheck`): the whole driver against bindings
//!   generated from a header set (`FAILSAFE_KBIND`), and, when `FAILSAFE_KLIB_DIR` names a
//!   directory with `ntoskrnl.lib` and `hal.lib` import libraries, a real link of
//!   `failsafeflt.sys` with `rust-lld` and the linker arguments wdk-build 0.6 passes for a
//!   WDM driver (`crates/wdk-build/src/lib.rs`, `configure_binary_build`).

#[cfg(all(windows, not(failsafe_fltcheck)))]
fn main() -> Result<(), wdk_build::ConfigError> {
    // PsSetCreateProcessNotifyRoutineEx refuses images linked without /INTEGRITYCHECK
    // (Microsoft Learn, "PsSetCreateProcessNotifyRoutineEx", Remarks). wdk-build 0.6 passes
    // it too; kept so the requirement is written where the driver states its needs.
    println!("cargo::rustc-cdylib-link-arg=/INTEGRITYCHECK");
    wdk_build::configure_wdk_binary_build()
}

#[cfg(not(all(windows, not(failsafe_fltcheck))))]
fn main() {
    println!("cargo::rustc-check-cfg=cfg(failsafe_fltcheck)");
    println!("cargo::rustc-check-cfg=cfg(failsafe_kcheck)");
    println!("cargo::rerun-if-env-changed=FAILSAFE_KBIND");
    println!("cargo::rerun-if-env-changed=FAILSAFE_KLIB_DIR");
    if std::env::var_os("CARGO_CFG_FAILSAFE_KCHECK").is_none() {
        return;
    }
    let Some(lib_dir) = std::env::var_os("FAILSAFE_KLIB_DIR") else {
        return; // type-check only
    };
    println!(
        "cargo::rustc-link-search=native={}",
        std::path::Path::new(&lib_dir).display()
    );
    // wdk-build links BufferOverflowFastFailK, ntoskrnl, hal and wmilib; this driver uses
    // no routine from BufferOverflowFastFailK (no /GS: rustc emits no security cookies)
    // or wmilib, so the check links the two it does use and the PE test lists them.
    println!("cargo::rustc-link-lib=ntoskrnl");
    println!("cargo::rustc-link-lib=hal");
    // ntoskrnl's exports that MinGW-w64's import library lacks (driver/kcheck/run.sh makes
    // it from driver/kcheck/ntoskrnl-extra.def): EtwSetInformation.
    println!("cargo::rustc-link-lib=ntoskrnl-extra");
    // wdk-build 0.6 for WDM, minus what lld-link lacks: /KERNEL (an MSVC check that every
    // object was compiled with /kernel; rustc cannot, hence wdk-build's /IGNORE:4257) and
    // /MAPINFO:EXPORTS. The map (`failsafeflt.map` beside the image) names the functions
    // the PE test reports.
    for arg in [
        "/DRIVER",
        "/NODEFAULTLIB",
        "/SUBSYSTEM:NATIVE",
        "/ENTRY:DriverEntry",
        "/NXCOMPAT",
        "/DYNAMICBASE",
        "/OPT:REF,ICF",
        "/INTEGRITYCHECK",
        "/MANIFEST:NO",
        "/MAP",
    ] {
        println!("cargo::rustc-cdylib-link-arg={arg}");
    }
}
