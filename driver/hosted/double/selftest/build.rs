//! Link settings of the self-test filter (`fltselftest.sys`): as the double's build.rs (a
//! native-subsystem driver image linked with rust-lld against MinGW-w64's `ntoskrnl.lib`
//! from `FAILSAFE_KLIB_DIR`); FLTMGR.SYS imports come from windows-sys (raw-dylib). Without
//! `FAILSAFE_KLIB_DIR` or for another target nothing is linked.

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
    for arg in [
        "/DRIVER",
        "/NODEFAULTLIB",
        "/SUBSYSTEM:NATIVE",
        "/ENTRY:DriverEntry",
        "/NXCOMPAT",
        "/DYNAMICBASE",
        "/OPT:REF,ICF",
        "/MANIFEST:NO",
    ] {
        println!("cargo::rustc-cdylib-link-arg={arg}");
    }
}
