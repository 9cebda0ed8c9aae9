//! `failsafe-kbind`: generates Rust bindings for the kernel check from a WDK-style include
//! directory, with the settings windows-drivers-rs's wdk-build 0.6 uses for a WDM driver
//! (`crates/wdk-build/src/bindgen.rs` `BuilderExt::wdk_default`, `crates/wdk-build/src/lib.rs`
//! `preprocessor_definitions` / `wdk_bindgen_compiler_flags` / `base_headers`):
//! headers `ntifs.h`, `ntddk.h`, `ntstrsafe.h`; `use_core`; `derive_default`; enum style
//! `ModuleConsts`; the same blocklist; `-D_WIN64 -D_AMD64_ -DAMD64 -D_KERNEL_MODE`; the
//! same clang flags. Two layouts are accepted:
//!
//! - a WDK `Include\<version>` directory (`km/`, `km/crt/`, `shared/`), e.g. from an
//!   extracted eWDK: case-fixing symlinks are made for includes spelled in another case
//!   than the file (`DriverSpecs.h`, `PSHPACK1.H`) on case-sensitive file systems;
//! - MinGW-w64's headers (`/usr/share/mingw-w64/include` with its `ddk/`), as Debian's
//!   `mingw-w64-x86-64-dev` ships them, which CI uses. MinGW targets NTDDI for Windows 10
//!   explicitly (its `sdkddkver.h` defaults lower).
//!
//! Usage: `failsafe-kbind --include DIR --out FILE.rs`. The output is never committed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug)]
enum Layout {
    Wdk,
    Mingw,
}

fn usage() -> ExitCode {
    eprintln!("usage: failsafe-kbind --include DIR --out FILE.rs");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut include = None;
    let mut out = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--include" => include = args.next().map(PathBuf::from),
            "--out" => out = args.next().map(PathBuf::from),
            _ => return usage(),
        }
    }
    let (Some(include), Some(out)) = (include, out) else {
        return usage();
    };
    match run(&include, &out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("failsafe-kbind: {e}");
            ExitCode::FAILURE
        }
    }
}

fn detect(include: &Path) -> Result<(Layout, Vec<PathBuf>), String> {
    if include.join("km").join("ntifs.h").is_file() {
        let dirs = vec![
            include.join("km"),
            include.join("km").join("crt"),
            include.join("shared"),
        ];
        Ok((Layout::Wdk, dirs))
    } else if include.join("ddk").join("ntifs.h").is_file() {
        Ok((Layout::Mingw, vec![include.join("ddk"), include.to_path_buf()]))
    } else {
        Err(format!(
            "{}: not a WDK include directory (expected km/ntifs.h) nor MinGW's (expected ddk/ntifs.h)",
            include.display()
        ))
    }
}

/// Every `#include "x"` / `#include <x>` name in the headers under `dirs`.
fn included_names(dirs: &[PathBuf]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(d) else { continue };
        for e in rd.flatten() {
            let Ok(bytes) = std::fs::read(e.path()) else { continue };
            for line in String::from_utf8_lossy(&bytes).lines() {
                let l = line.trim_start();
                let Some(rest) = l.strip_prefix('#') else { continue };
                let Some(rest) = rest.trim_start().strip_prefix("include") else { continue };
                let rest = rest.trim();
                let name = rest
                    .strip_prefix('"')
                    .and_then(|r| r.split('"').next())
                    .or_else(|| rest.strip_prefix('<').and_then(|r| r.split('>').next()));
                if let Some(n) = name.filter(|n| !n.contains('/') && !n.contains('\\')) {
                    names.insert(n.to_string());
                }
            }
        }
    }
    names
}

/// A directory of symlinks named as the headers include them, for names that exist only in
/// another case (the WDK is written for case-insensitive file systems).
fn casefix(dirs: &[PathBuf], out_dir: &Path) -> Result<Vec<String>, String> {
    let mut by_lower: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut exact: BTreeSet<String> = BTreeSet::new();
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(d) else { continue };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            by_lower.entry(name.to_lowercase()).or_insert_with(|| e.path());
            exact.insert(name);
        }
    }
    let _ = std::fs::remove_dir_all(out_dir);
    std::fs::create_dir_all(out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let mut made = Vec::new();
    for n in included_names(dirs) {
        if exact.contains(&n) {
            continue;
        }
        if let Some(target) = by_lower.get(&n.to_lowercase()) {
            #[cfg(unix)]
            std::os::unix::fs::symlink(target, out_dir.join(&n))
                .map_err(|e| format!("symlink {n}: {e}"))?;
            made.push(n);
        }
    }
    Ok(made)
}

/// `KBIND_CLANG_INCLUDE`, else the newest `/usr/lib/llvm-*/lib/clang/*/include`.
fn clang_builtin_include() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("KBIND_CLANG_INCLUDE") {
        return Some(PathBuf::from(d));
    }
    let mut found = Vec::new();
    for llvm in std::fs::read_dir("/usr/lib").ok()?.flatten() {
        if !llvm.file_name().to_string_lossy().starts_with("llvm-") {
            continue;
        }
        let Ok(versions) = std::fs::read_dir(llvm.path().join("lib").join("clang")) else {
            continue;
        };
        for v in versions.flatten() {
            let inc = v.path().join("include");
            if inc.join("mmintrin.h").is_file() {
                found.push(inc);
            }
        }
    }
    found.sort();
    found.pop()
}

fn run(include: &Path, out: &Path) -> Result<(), String> {
    let (layout, mut dirs) = detect(include)?;
    let mut fixed = Vec::new();
    if matches!(layout, Layout::Wdk) {
        let fix_dir = out.with_extension("casefix");
        fixed = casefix(&dirs, &fix_dir)?;
        dirs.push(fix_dir);
    }
    // wdk-build's preprocessor definitions for AMD64 + WDM.
    let mut defines = vec!["_WIN64", "_AMD64_", "AMD64", "_KERNEL_MODE"];
    if matches!(layout, Layout::Mingw) {
        // MinGW's sdkddkver.h defaults below Windows 10; the WDK's defaults to its own
        // release. Windows 10 is this driver's floor (docs/windows.md).
        defines.extend(["NTDDI_VERSION=0x0A000000", "_WIN32_WINNT=0x0A00"]);
    }
    // wdk-build's flags. MinGW's headers are written for GCC: under -fms-compatibility
    // clang stops defining __GNUC__ and they refuse to compile, so only the WDK gets it.
    let ms_compat: &[&str] = match layout {
        Layout::Wdk => &["-fms-compatibility", "-fdelayed-template-parsing"],
        Layout::Mingw => &[],
    };
    let flags = [
        "-fms-extensions",
        "--warn-=no-nonportable-include-path",
        "--warn-=no-pragma-pack",
        "--warn-=no-ignored-attributes",
        "--warn-=no-ignored-pragma-intrinsic",
        "--warn-=no-visibility",
        "--warn-=no-switch",
        "--warn-=no-comment",
        "--warn-=no-deprecated-declarations",
        "--warn-=no-invalid-token-paste",
        "--warn-=no-microsoft",
    ];
    // clang's own headers (intrinsics): libclang does not always find its resource directory
    // when loaded from a distribution's library path.
    let builtin = clang_builtin_include();
    let header = "#include <ntifs.h>\n#include <ntddk.h>\n#include <ntstrsafe.h>\n";
    let builder = bindgen::Builder::default()
        .header_contents("failsafe-kbind.h", header)
        .use_core()
        .derive_default(true)
        .generate_cstr(true)
        .detect_include_paths(false)
        .clang_arg(match layout {
            // MinGW's headers take `_MSC_VER` to mean "not GCC" and drop `__attribute__`s
            // that clang's own intrinsics headers need; its GNU target has the same LLP64
            // data model and struct layout rules as MSVC for these headers.
            Layout::Mingw => "--target=x86_64-w64-mingw32",
            Layout::Wdk => "--target=x86_64-pc-windows-msvc",
        })
        .clang_args(dirs.iter().map(|d| format!("--include-directory={}", d.display())))
        .clang_args(defines.iter().map(|d| format!("--define-macro={d}")))
        .clang_args(ms_compat)
        .clang_args(flags)
        .clang_args(builtin.iter().flat_map(|d| ["-idirafter".to_string(), d.display().to_string()]))
        .blocklist_item("ExAllocatePoolWithTag")
        .blocklist_item("ExAllocatePoolWithQuotaTag")
        .blocklist_item("ExAllocatePoolWithTagPriority")
        .blocklist_item("ExAllocatePool")
        // clang 14+ intrinsics headers (AMX tiles): a packed and aligned struct that Rust
        // rejects; not part of any kernel API.
        .blocklist_item("__tile1024i.*")
        .blocklist_item("_tile1024i.*")
        .blocklist_item(".*MCG_CAP(?:__bindgen.*)?")
        .blocklist_item(".*WHEA_XPF_MCA_SECTION")
        .blocklist_item(".*WHEA_ARM_BUS_ERROR(?:__bindgen.*)?")
        .blocklist_item(".*WHEA_ARM_PROCESSOR_ERROR")
        .blocklist_item(".*WHEA_ARM_CACHE_ERROR")
        .no_default(".*tagMONITORINFOEXA")
        .must_use_type("NTSTATUS")
        .must_use_type("HRESULT")
        .default_enum_style(bindgen::EnumVariation::ModuleConsts);
    let bindings = builder
        .generate()
        .map_err(|e| format!("bindgen failed on {}: {e}", include.display()))?;
    let mut text = format!(
        "// Generated by failsafe-kbind from {} ({layout:?} layout) with wdk-build 0.6's WDM\n\
         // settings. Not committed; regenerated by `cargo make kcheck`.\n",
        include.display()
    );
    text.push_str(&bindings.to_string());
    std::fs::write(out, text).map_err(|e| format!("{}: {e}", out.display()))?;
    eprintln!(
        "failsafe-kbind: {} ({layout:?}) -> {} ({} bytes{})",
        include.display(),
        out.display(),
        std::fs::metadata(out).map(|m| m.len()).unwrap_or(0),
        if fixed.is_empty() {
            String::new()
        } else {
            format!("; case-fixing links: {}", fixed.join(", "))
        }
    );
    Ok(())
}
