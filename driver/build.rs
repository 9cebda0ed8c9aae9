//! On Windows with the WDK: windows-drivers-rs's binary configuration (linker flags, WDK
//! paths, `/DRIVER`). Elsewhere, and for the Linux type-check of the Filter Manager layer
//! (`--cfg failsafe_fltcheck`), there is nothing to configure.

#[cfg(all(windows, not(failsafe_fltcheck)))]
fn main() -> Result<(), wdk_build::ConfigError> {
    // PsSetCreateProcessNotifyRoutineEx refuses images linked without /INTEGRITYCHECK
    // (Microsoft Learn, "PsSetCreateProcessNotifyRoutineEx", Remarks).
    println!("cargo::rustc-cdylib-link-arg=/INTEGRITYCHECK");
    wdk_build::configure_wdk_binary_build()
}

#[cfg(not(all(windows, not(failsafe_fltcheck))))]
fn main() {
    println!("cargo::rustc-check-cfg=cfg(failsafe_fltcheck)");
}
