//! Link settings of the double (`fltmgr.sys`): a native-subsystem image like the driver's
//! (driver/build.rs), linked with rust-lld against the import libraries that
//! `driver/kcheck/run.sh` copies from MinGW-w64 (`FAILSAFE_KLIB_DIR`: `ntoskrnl.lib`,
//! `hal.lib`). Without `FAILSAFE_KLIB_DIR` (or for another target) nothing is linked: the
//! crate is then only type-checked.

fn main() {
    println!("cargo::rerun-if-env-changed=FAILSAFE_KLIB_DIR");
    let windows = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "windows");
    let Some(lib_dir) = std::env::var_os("FAILSAFE_KLIB_DIR").filter(|_| windows) else {
        return;
    };
    println!(
        "cargo::rustc-link-search=native={}",
        std::path::Path::new(&lib_dir).display()
    );
    println!("cargo::rustc-link-lib=ntoskrnl");
    println!("cargo::rustc-link-lib=hal");
    // As the driver: a driver image whose entry is DriverEntry (Wine's services start it as
    // the FltMgr service, the minifilter then imports it). No /INTEGRITYCHECK: it registers
    // no notify routine of its own.
    for arg in [
        "/DRIVER",
        "/NODEFAULTLIB",
        "/SUBSYSTEM:NATIVE",
        "/ENTRY:DriverEntry",
        "/NXCOMPAT",
        "/DYNAMICBASE",
        "/OPT:REF,ICF",
        "/MANIFEST:NO",
        "/MAP",
    ] {
        println!("cargo::rustc-cdylib-link-arg={arg}");
    }
}
