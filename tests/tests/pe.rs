//! The linked driver image, as the kernel check links it on Linux (`cargo make kcheck`:
//! rust-lld with wdk-build 0.6's WDM linker arguments, against MinGW-w64's import
//! libraries). These tests read the `.sys` files named by `FAILSAFE_SYS` (release build)
//! and `FAILSAFE_SYS_DRILL` (drill build), and the ntoskrnl export list the check derives
//! from MinGW-w64's `libntoskrnl.a` (`FAILSAFE_EXPORTS`). They are `#[ignore]`d in a plain
//! `cargo test` (there is no image to read); `driver/kcheck/run.sh` runs them with
//! `--ignored` after linking, and `.ci/run` runs that script.
//!
//! What an image must be: an AMD64 native-subsystem driver whose entry point is
//! `DriverEntry`; `FORCE_INTEGRITY` set (`PsSetCreateProcessNotifyRoutineEx` refuses images
//! without it), NX and ASLR compatible; every import from ntoskrnl.exe, HAL.dll or
//! FLTMGR.SYS, each a name that module really exports; no TLS; no section both writable
//! and executable; no trace of the standard library; the drill's bugcheck and registry
//! value only in the drill build; and `InitSafeBootMode` read as the ULONG it is.

use std::collections::BTreeSet;
use std::path::PathBuf;

use iced_x86::{Decoder, DecoderOptions, Instruction, MemorySize, OpKind, Register};
use object::LittleEndian as LE;
use object::pe;
use object::read::pe::{ImageNtHeaders, ImageOptionalHeader, PeFile64};

const KERNEL_MODULES: [&str; 3] = ["ntoskrnl.exe", "HAL.dll", "FLTMGR.SYS"];
/// The symbols the image may export: the entry point, and the two link-time symbols
/// wdk-sys itself defines (`_fltused`, `__CxxFrameHandler3`; driver/src/kernel/crt.rs).
const EXPORTS: [&str; 3] = ["DriverEntry", "_fltused", "__CxxFrameHandler3"];
const DRILL_BUGCHECK: u32 = 0x4653_4443;

fn image(var: &str) -> Vec<u8> {
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        panic!("{var} is not set: run driver/kcheck/run.sh (cargo make kcheck)")
    });
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn export_list(path: PathBuf) -> BTreeSet<String> {
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

fn known_exports(module: &str) -> BTreeSet<String> {
    match module.to_ascii_lowercase().as_str() {
        "fltmgr.sys" => {
            export_list(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/fltmgr-exports.txt"))
        }
        "ntoskrnl.exe" | "hal.dll" => {
            let dir = std::env::var_os("FAILSAFE_EXPORTS")
                .map(PathBuf::from)
                .unwrap_or_else(|| panic!("FAILSAFE_EXPORTS is not set"));
            export_list(dir.join(format!("{}.txt", module.to_ascii_lowercase())))
        }
        other => panic!("import from {other}: not a kernel module"),
    }
}

/// One import: module, name, and the RVA of its IAT slot.
struct Import {
    module: String,
    name: String,
    slot: u32,
}

fn imports(pe: &PeFile64<'_>) -> Vec<Import> {
    let table = pe.import_table().expect("import table").expect("imports");
    let mut descs = table.descriptors().expect("descriptors");
    let mut out = Vec::new();
    while let Some(d) = descs.next().expect("descriptor") {
        let module =
            String::from_utf8_lossy(table.name(d.name.get(LE)).expect("name")).into_owned();
        let first = d.first_thunk.get(LE);
        let lookup = match d.original_first_thunk.get(LE) {
            0 => first,
            rva => rva,
        };
        let mut thunks = table.thunks(lookup).expect("thunks");
        let mut i = 0u32;
        while let Some(t) = thunks.next::<pe::ImageNtHeaders64>().expect("thunk") {
            use object::read::pe::ImageThunkData;
            let name = if t.is_ordinal() {
                format!("#{}", t.ordinal())
            } else {
                let (_, n) = table.hint_name(t.address()).expect("hint/name");
                String::from_utf8_lossy(n).into_owned()
            };
            out.push(Import {
                module: module.clone(),
                name,
                slot: first + i * 8,
            });
            i += 1;
        }
    }
    out
}

fn exports(pe: &PeFile64<'_>) -> Vec<(String, u32)> {
    let table = pe.export_table().expect("export table").expect("exports");
    table
        .exports()
        .expect("export list")
        .into_iter()
        .map(|e| {
            let name = String::from_utf8_lossy(e.name.unwrap_or_default()).into_owned();
            let rva = match e.target {
                object::read::pe::ExportTarget::Address(a) => a,
                _ => 0,
            };
            (name, rva)
        })
        .collect()
}

/// The executable sections' instructions, with their addresses.
fn code(pe: &PeFile64<'_>, data: &[u8]) -> Vec<Instruction> {
    let base = pe.nt_headers().optional_header().image_base();
    let mut out = Vec::new();
    for s in pe.section_table().iter() {
        if s.characteristics.get(LE) & pe::IMAGE_SCN_MEM_EXECUTE == 0 {
            continue;
        }
        let bytes = s.pe_data(data).expect("section data");
        let ip = base + u64::from(s.virtual_address.get(LE));
        let mut d = Decoder::with_ip(64, bytes, ip, DecoderOptions::NONE);
        out.extend(d.iter());
    }
    out
}

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn check(data: &[u8], drill: bool) {
    let pe = PeFile64::parse(data).expect("a PE32+ image");
    let nt = pe.nt_headers();
    let oh = nt.optional_header();
    assert_eq!(
        nt.file_header().machine.get(LE),
        pe::IMAGE_FILE_MACHINE_AMD64,
        "machine"
    );
    assert_eq!(oh.subsystem(), pe::IMAGE_SUBSYSTEM_NATIVE, "subsystem");
    let dllc = oh.dll_characteristics();
    for (bit, name) in [
        (
            pe::IMAGE_DLLCHARACTERISTICS_FORCE_INTEGRITY,
            "FORCE_INTEGRITY",
        ),
        (pe::IMAGE_DLLCHARACTERISTICS_NX_COMPAT, "NX_COMPAT"),
        (pe::IMAGE_DLLCHARACTERISTICS_DYNAMIC_BASE, "DYNAMIC_BASE"),
    ] {
        assert!(dllc & bit != 0, "DllCharacteristics {dllc:#x} lacks {name}");
    }

    // Entry point and exports.
    let exports = exports(&pe);
    println!("exports:");
    for (n, rva) in &exports {
        println!("  {rva:#010x} {n}");
    }
    let entry = exports
        .iter()
        .find(|(n, _)| n == "DriverEntry")
        .map(|&(_, r)| r);
    assert_eq!(
        Some(oh.address_of_entry_point()),
        entry,
        "entry point is DriverEntry"
    );
    for (n, _) in &exports {
        assert!(EXPORTS.contains(&n.as_str()), "unexpected export {n}");
    }

    // Imports: kernel modules only, and only names they export.
    let imports = imports(&pe);
    println!("imports ({}):", imports.len());
    let mut missing = Vec::new();
    for m in KERNEL_MODULES {
        let of_m: Vec<&Import> = imports
            .iter()
            .filter(|i| i.module.eq_ignore_ascii_case(m))
            .collect();
        if of_m.is_empty() {
            continue;
        }
        let known = known_exports(m);
        for i in of_m {
            println!("  {:<14} {}", i.module, i.name);
            if !known.contains(&i.name) {
                missing.push(format!("{}!{}", i.module, i.name));
            }
        }
    }
    for i in &imports {
        assert!(
            KERNEL_MODULES
                .iter()
                .any(|m| i.module.eq_ignore_ascii_case(m)),
            "import {}!{} is not from a kernel module",
            i.module,
            i.name
        );
    }
    assert!(missing.is_empty(), "imports no module exports: {missing:?}");

    // No TLS; no section both writable and executable.
    let tls_dir = pe.data_directory(pe::IMAGE_DIRECTORY_ENTRY_TLS);
    assert!(
        tls_dir.is_none_or(|d| d.size.get(LE) == 0),
        "a TLS directory"
    );
    for s in pe.section_table().iter() {
        let c = s.characteristics.get(LE);
        let name = String::from_utf8_lossy(s.raw_name()).into_owned();
        assert!(
            c & pe::IMAGE_SCN_MEM_WRITE == 0 || c & pe::IMAGE_SCN_MEM_EXECUTE == 0,
            "section {name} is writable and executable"
        );
    }

    // No trace of the standard library (std panics, backtraces, the CRT).
    for needle in [
        "library/std/",
        "RUST_BACKTRACE",
        "msvcrt",
        "vcruntime",
        "ucrtbase",
    ] {
        assert!(
            !contains(data, needle.as_bytes()),
            "image contains {needle:?}"
        );
    }

    // The drill: its registry value and its bugcheck code only in the drill build.
    let insns = code(&pe, data);
    let drill_value = contains(data, &utf16("DrillCrashVersion"));
    let drill_code = insns.iter().any(|i| {
        (0..i.op_count()).any(|k| {
            matches!(i.op_kind(k), OpKind::Immediate32 | OpKind::Immediate32to64)
                && i.immediate(k) as u32 == DRILL_BUGCHECK
        })
    });
    assert_eq!(
        drill_value, drill,
        "DrillCrashVersion string present: {drill_value}"
    );
    assert_eq!(
        drill_code, drill,
        "FSDC bugcheck code present: {drill_code}"
    );

    // InitSafeBootMode: the IAT slot holds the address of the kernel's ULONG. Every load of
    // the slot must be followed by a 32-bit read through that register (the ULONG), never
    // a 64-bit one (which would treat the ULONG as a pointer: the defect fixed in ffi.rs).
    let base = oh.image_base();
    let slot = imports
        .iter()
        .find(|i| i.name == "InitSafeBootMode")
        .map(|i| base + u64::from(i.slot))
        .expect("InitSafeBootMode is imported");
    let mut loads = 0;
    for (k, ins) in insns.iter().enumerate() {
        let reads_slot = ins.op_count() == 2
            && ins.op1_kind() == OpKind::Memory
            && ins.is_ip_rel_memory_operand()
            && ins.ip_rel_memory_address() == slot;
        if !reads_slot {
            continue;
        }
        let reg = ins.op0_register();
        let window: Vec<&Instruction> = insns.iter().skip(k).take(6).collect();
        println!(
            "InitSafeBootMode read ({} instructions from {:#x}):",
            window.len(),
            ins.ip()
        );
        for w in &window {
            println!("  {:#x}  {w}", w.ip());
        }
        let deref = insns
            .iter()
            .skip(k + 1)
            .take(8)
            .find(|n| {
                (0..n.op_count()).any(|o| n.op_kind(o) == OpKind::Memory) && n.memory_base() == reg
            })
            .expect("the slot's value is dereferenced");
        assert_eq!(
            deref.memory_size(),
            MemorySize::UInt32,
            "InitSafeBootMode must be read as a ULONG through its import slot: `{deref}`"
        );
        assert_ne!(reg, Register::None);
        loads += 1;
    }
    assert!(loads > 0, "no read of InitSafeBootMode's import slot found");
}

#[test]
#[ignore = "needs the image linked by the kernel check (driver/kcheck/run.sh sets FAILSAFE_SYS)"]
fn release_image() {
    check(&image("FAILSAFE_SYS"), false);
}

#[test]
#[ignore = "needs the image linked by the kernel check (driver/kcheck/run.sh sets FAILSAFE_SYS_DRILL)"]
fn drill_image() {
    check(&image("FAILSAFE_SYS_DRILL"), true);
}
