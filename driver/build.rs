//! On Windows with the WDK: windows-drivers-rs's binary configuration (linker flags, WDK
//! paths, `/DRIVER`). Elsewhere there is no WDK; two checks run instead:
//!
//! - `--cfg failsafe_fltcheck`: the Filter Manager layer alone, nothing to configure;
//! - `--cfg failsafe_kcheck` (`cargo make kcheck`): the whole driver against bindings
//!   generated from a header set (`FAILSAFE_KBIND`), and, when `FAILSAFE_KLIB_DIR` names a
//!   directory with `ntoskrnl.lib` and `hal.lib` import libraries, a real link of
//!   `failsafeflt.sys` with `rust-lld` and the linker arguments wdk-build 0.6 passes for a
//!   WDM driver (`crates/wdk-build/src/lib.rs`, `configure_binary_build`).

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// The build identity (issue 20; docs/boot-safety.md, "The driver build"): the crate's
/// version and a SHA-256 over what determines the image's code, written to
/// `$OUT_DIR/build_id.rs` for `src/build_id.rs`. Hashed, in this order, each under a label
/// with its length: the Rust sources and manifests of the driver, the core and the vendored
/// ed25519-compact (paths relative to the workspace, sorted; CR LF read as LF, so a Windows
/// checkout hashes as a Linux one); the workspace `Cargo.lock` (every dependency's exact
/// version); `rustc -vV` of the compiler building it; the target, profile, enabled features
/// and `CARGO_ENCODED_RUSTFLAGS`; the kernel check's generated bindings (`FAILSAFE_KBIND`,
/// by content); `FAILSAFE_BUILD_NOTE` (optional, a label a builder may add). Not hashed: the
/// WDK's headers and libraries (a rebuild of the same sources against another WDK keeps the
/// identity). The same script runs under `cargo make` / `cargo wdk build` on Windows, so
/// every image gets one. Not the image's own hash: an image cannot contain its own digest.
fn write_build_id() -> Result<(), String> {
    let manifest =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").ok_or("no CARGO_MANIFEST_DIR")?);
    let root = manifest
        .parent()
        .ok_or("the driver has no workspace")?
        .to_path_buf();
    let mut h = Sha256::new();
    let mut put = |label: &str, bytes: &[u8]| {
        h.update(label.as_bytes());
        h.update([0]);
        h.update(u64::try_from(bytes.len()).unwrap_or(u64::MAX).to_le_bytes());
        h.update(bytes);
    };
    let mut files = Vec::new();
    for dir in ["driver/src", "loader/src", "vendor/ed25519-compact/src"] {
        collect(&root.join(dir), &mut files)?;
        println!("cargo::rerun-if-changed={}", root.join(dir).display());
    }
    for f in [
        "driver/Cargo.toml",
        "driver/build.rs",
        "loader/Cargo.toml",
        "vendor/ed25519-compact/Cargo.toml",
        "Cargo.lock",
    ] {
        files.push(root.join(f));
        println!("cargo::rerun-if-changed={}", root.join(f).display());
    }
    files.sort();
    for f in &files {
        let rel = f.strip_prefix(&root).map_err(|e| e.to_string())?;
        let name: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let text = std::fs::read(f).map_err(|e| format!("{}: {e}", f.display()))?;
        put(&format!("file {}", name.join("/")), &lf(&text));
    }
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let v = std::process::Command::new(rustc)
        .arg("-vV")
        .output()
        .map_err(|e| format!("rustc -vV: {e}"))?;
    put("rustc -vV", &v.stdout);
    let mut features: Vec<String> = std::env::vars()
        .filter_map(|(k, _)| k.strip_prefix("CARGO_FEATURE_").map(str::to_owned))
        .collect();
    features.sort();
    put("features", features.join(",").as_bytes());
    for var in [
        "TARGET",
        "PROFILE",
        "CARGO_ENCODED_RUSTFLAGS",
        "FAILSAFE_BUILD_NOTE",
    ] {
        put(var, std::env::var(var).unwrap_or_default().as_bytes());
        println!("cargo::rerun-if-env-changed={var}");
    }
    if let Some(kbind) = std::env::var_os("FAILSAFE_KBIND") {
        let b = std::fs::read(&kbind).map_err(|e| format!("FAILSAFE_KBIND: {e}"))?;
        put("bindings", &b);
    }
    let digest: [u8; 32] = h.finalize().into();
    let part = |k: &str| -> Result<u64, String> {
        std::env::var(k)
            .map_err(|e| e.to_string())?
            .parse::<u16>()
            .map(u64::from)
            .map_err(|e| format!("{k}: {e}"))
    };
    let version = (part("CARGO_PKG_VERSION_MAJOR")? << 32)
        | (part("CARGO_PKG_VERSION_MINOR")? << 16)
        | part("CARGO_PKG_VERSION_PATCH")?;
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let list = |b: &[u8]| {
        b.iter()
            .map(|x| format!("{x:#04x}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let marker: Vec<u8> = b"FSBUILD1"
        .iter()
        .copied()
        .chain(version.to_le_bytes())
        .chain(digest)
        .collect();
    let out = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("no OUT_DIR")?).join("build_id.rs");
    let code = format!(
        "// Generated by driver/build.rs: {}.{}.{}+{hex}\n\
         /// `major << 32 | minor << 16 | patch` of this crate's version.\n\
         pub const VERSION: u64 = {version:#x};\n\
         /// SHA-256 of the build's inputs (build.rs says which).\n\
         pub const DIGEST: [u8; 32] = [{}];\n\
         /// `FSBUILD1`, the version (u64, little-endian) and the digest: the identity as\n\
         /// bytes in the image, where a tool finds it without running the driver.\n\
         pub const MARKER: [u8; 48] = [{}];\n",
        version >> 32,
        (version >> 16) & 0xFFFF,
        version & 0xFFFF,
        list(&digest),
        list(&marker),
    );
    std::fs::write(&out, code).map_err(|e| format!("{}: {e}", out.display()))
}

/// Every file under `dir`, recursively.
fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    for e in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let p = e.map_err(|e| e.to_string())?.path();
        if p.is_dir() {
            collect(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

/// `bytes` with every CR LF as LF.
fn lf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut it = bytes.iter().peekable();
    while let Some(&b) = it.next() {
        if b == b'\r' && it.peek() == Some(&&b'\n') {
            continue;
        }
        out.push(b);
    }
    out
}

#[cfg(all(windows, not(failsafe_fltcheck)))]
fn main() -> Result<(), wdk_build::ConfigError> {
    if let Err(e) = write_build_id() {
        println!("cargo::error=the build identity: {e}");
    }
    // PsSetCreateProcessNotifyRoutineEx refuses images linked without /INTEGRITYCHECK
    // (Microsoft Learn, "PsSetCreateProcessNotifyRoutineEx", Remarks). wdk-build 0.6 passes
    // it too; kept so the requirement is written where the driver states its needs.
    println!("cargo::rustc-cdylib-link-arg=/INTEGRITYCHECK");
    wdk_build::configure_wdk_binary_build()
}

#[cfg(not(all(windows, not(failsafe_fltcheck))))]
fn main() {
    if let Err(e) = write_build_id() {
        println!("cargo::error=the build identity: {e}");
    }
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
