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
//! value only in the drill build; `InitSafeBootMode` read as the ULONG it is; and a stack
//! budget: every function's frame (from its x64 unwind information) under
//! `MAX_FRAME` bytes, and no call chain of the driver's own code from `DriverEntry` or from
//! a callback deeper than `MAX_DEPTH` bytes, with no recursion (x64 kernel stacks are 24
//! KiB, and the file-system stack below each `Zw*` call needs most of it).

use std::collections::BTreeSet;
use std::path::PathBuf;

use iced_x86::{Decoder, DecoderOptions, Instruction, MemorySize, OpKind, Register};
use object::LittleEndian as LE;
use object::pe;
use object::read::pe::{ImageNtHeaders, ImageOptionalHeader, PeFile64};

const KERNEL_MODULES: [&str; 3] = ["ntoskrnl.exe", "HAL.dll", "FLTMGR.SYS"];
/// The symbols the image may export: the entry point, and the two link-time symbols
/// wdk-sys itself defines (`_fltused`, `__CxxFrameHandler3`; the kernel check's stand-in,
/// driver/kshim).
const EXPORTS: [&str; 3] = ["DriverEntry", "_fltused", "__CxxFrameHandler3"];
const DRILL_BUGCHECK: u32 = 0x4653_4443;
/// Largest frame of any function (bytes, return address included). Below one page, so no
/// frame needs `__chkstk` probing (the link would fail without it anyway: MinGW's
/// ntoskrnl import library does not provide it).
const MAX_FRAME: u64 = 3072;
/// Deepest chain of the driver's own frames below an entry point (bytes). The rest of the
/// 24 KiB kernel stack belongs to the caller and to the I/O the driver issues.
const MAX_DEPTH: u64 = 8192;
/// Deepest chain below a file-system callback (pre-create, post-create,
/// pre-set-information, pre-shutdown), which runs on its caller's stack (issue 19, finding
/// 6; it was 5.1 KiB): its path buffers live in a preallocated pool, not on the stack.
/// `flt/scratch.rs`'s `ENTRY_MIN` (8 KiB) is this plus the file system's share.
const CALLBACK_DEPTH: u64 = 3072;
/// The same with the on-stack fallback (`scratch::on_stack`, taken only when the pool is
/// exhausted and `FALLBACK_MIN` = `ENTRY_MIN` + 3 KiB remain): its frame must fit in those
/// 3 KiB.
const FALLBACK_DEPTH: u64 = CALLBACK_DEPTH + 3072;

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

fn check(data: &[u8], drill: bool, map_var: &str) {
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

    // Long work runs on the driver's own system thread, not the system's worker threads
    // (issue 19 finding 5; Microsoft Learn, "System Worker Threads"), and shutdown arrives
    // through the filter's IRP_MJ_SHUTDOWN pre-operation, not a notification device
    // (finding 8). The image before those fixes imported IoQueueWorkItem,
    // IoAllocateWorkItem and IoRegisterShutdownNotification, and failed here.
    let imported: BTreeSet<&str> = imports.iter().map(|i| i.name.as_str()).collect();
    for gone in [
        "IoAllocateWorkItem",
        "IoQueueWorkItem",
        "IoQueueWorkItemEx",
        "ExQueueWorkItem",
        "IoRegisterShutdownNotification",
    ] {
        assert!(
            !imported.contains(gone),
            "imports {gone}: long work belongs on the driver's own thread, shutdown on the filter"
        );
    }
    for needed in ["PsCreateSystemThread", "PsTerminateSystemThread"] {
        assert!(
            imported.contains(needed),
            "does not import {needed}: no thread of its own"
        );
    }

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
    // The driver builds its UTF-16 names at run time from string literals: look for both.
    let drill_value =
        contains(data, b"DrillCrashVersion") || contains(data, &utf16("DrillCrashVersion"));
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
    // So is the drill build's report-only switch of the store's access-list check.
    let acl_switch = contains(data, b"DrillStoreAclReportOnly")
        || contains(data, &utf16("DrillStoreAclReportOnly"));
    assert_eq!(
        acl_switch, drill,
        "DrillStoreAclReportOnly string present: {acl_switch}"
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

    // The ETW provider's events, decoded from the TraceLogging metadata in the image and
    // compared with the documented list.
    check_etw(&pe, data);

    // Stack budget.
    check_stack(
        &pe,
        data,
        &insns,
        base + u64::from(oh.address_of_entry_point()),
        &names(map_var),
    );
}

/// One documented ETW event: name, level, keyword and fields (name, type), from the table
/// in docs/windows.md ("ETW events").
#[derive(Debug, PartialEq)]
struct EtwEvent {
    name: String,
    level: u8,
    keyword: u64,
    channel: u8,
    fields: Vec<(String, String)>,
}

/// The table between `<!-- etw-events -->` and `<!-- /etw-events -->` in docs/windows.md:
/// `| `Name` | level (n) | `0x…` | channel | `Field` type, … |`.
fn documented_events() -> Vec<EtwEvent> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/windows.md");
    let text = std::fs::read_to_string(&path).expect("docs/windows.md");
    let start = text
        .find("<!-- etw-events -->")
        .expect("the ETW event table's start marker");
    let end = text.find("<!-- /etw-events -->").expect("its end marker");
    let tick = |s: &str| s.trim().trim_matches('`').to_owned();
    text[start..end]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cols: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            assert_eq!(cols.len(), 5, "ETW table row: {l}");
            let level = cols[1]
                .rsplit_once('(')
                .and_then(|(_, n)| n.trim_end_matches(')').parse().ok())
                .unwrap_or_else(|| panic!("level of {l}"));
            let keyword = u64::from_str_radix(
                tick(cols[2])
                    .trim_start_matches("0x")
                    .replace('_', "")
                    .as_str(),
                16,
            )
            .unwrap_or_else(|e| panic!("keyword of {l}: {e}"));
            let channel = if cols[3].starts_with("Operational") {
                16
            } else {
                11
            };
            let fields = cols[4]
                .split(", ")
                .map(|f| {
                    let (name, ty) = f
                        .trim()
                        .rsplit_once(' ')
                        .unwrap_or_else(|| panic!("field {f}"));
                    (tick(name), ty.to_owned())
                })
                .collect();
            EtwEvent {
                name: tick(cols[0]),
                level,
                keyword,
                channel,
                fields,
            }
        })
        .collect()
}

/// A TraceLogging field type as the docs name it, from its in-type and out-type
/// (TraceLoggingProvider.h's `TlgIn*` / `TlgOut*`, the tracelogging crate's `InType` /
/// `OutType`).
fn field_type(in_type: u8, out_type: Option<u8>) -> String {
    match (in_type, out_type) {
        (4, None) => "u8",
        (4, Some(3)) => "bool8",
        (8, None) => "u32",
        (8, Some(5)) => "pid",
        (10, None) => "u64",
        (20, None) => "hex32",
        (22, None) => "str16",
        (23, Some(35)) => "str8",
        _ => return format!("in{in_type}/out{out_type:?}"),
    }
    .to_owned()
}

/// Decodes the event metadata blob at `at` (`UINT16 size; tags; name NUL; fields`, each
/// field `name NUL, in-type [| 0x80, out-type]`): the event name and its fields, if the
/// blob is well formed and exactly `size` bytes long.
fn decode_event_meta(bytes: &[u8], at: usize) -> Option<(String, Vec<(String, String)>)> {
    let size = usize::from(u16::from_le_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]));
    let blob = bytes.get(at..at + size)?;
    let mut pos = 2;
    // Tags: bytes with the high bit set continue.
    while blob.get(pos)? & 0x80 != 0 {
        pos += 1;
    }
    pos += 1;
    let cstr = |pos: &mut usize| -> Option<String> {
        let rest = blob.get(*pos..)?;
        let n = rest.iter().position(|&b| b == 0)?;
        let s = String::from_utf8(rest[..n].to_vec()).ok()?;
        *pos += n + 1;
        Some(s)
    };
    let name = cstr(&mut pos)?;
    let mut fields = Vec::new();
    while pos < size {
        let fname = cstr(&mut pos)?;
        let in_byte = *blob.get(pos)?;
        pos += 1;
        let out = if in_byte & 0x80 != 0 {
            let o = *blob.get(pos)?;
            pos += 1;
            if o & 0x80 != 0 {
                return None; // field tags: none used
            }
            Some(o)
        } else {
            None
        };
        if in_byte & 0x60 != 0 {
            return None; // arrays: none used
        }
        fields.push((fname, field_type(in_byte & 0x1f, out)));
    }
    (pos == size).then_some((name, fields))
}

fn check_etw(pe: &PeFile64<'_>, data: &[u8]) {
    let rdata: Vec<u8> = pe
        .section_table()
        .iter()
        .filter(|s| s.raw_name() == b".rdata")
        .flat_map(|s| s.pe_data(data).expect(".rdata").to_vec())
        .collect();
    // The provider: its metadata (`UINT16 size; name NUL`, no traits) and its GUID
    // (docs/windows.md; the name hash, checked against the crate by the driver's tests).
    let name = b"Failsafe-Minifilter\0";
    let mut provider = (name.len() as u16 + 2).to_le_bytes().to_vec();
    provider.extend_from_slice(name);
    assert!(
        contains(&rdata, &provider),
        "provider metadata for Failsafe-Minifilter"
    );
    let guid: [u8; 16] = [
        0xe2, 0x34, 0xf1, 0x2d, 0x35, 0xbe, 0xe1, 0x54, 0xe5, 0x4b, 0x6a, 0xcb, 0x49, 0x6a, 0x67,
        0x86,
    ];
    assert!(
        contains(data, &guid),
        "provider GUID 2df134e2-be35-54e1-e54b-6acb496a6786"
    );

    let documented = documented_events();
    assert!(
        documented.len() >= 15,
        "documented events: {}",
        documented.len()
    );
    println!("ETW events (TraceLogging metadata decoded from the image):");
    for ev in &documented {
        // The blob: size (2 bytes), tag byte 0, name, NUL.
        let mut needle = vec![0u8];
        needle.extend_from_slice(ev.name.as_bytes());
        needle.push(0);
        let found: Vec<(String, Vec<(String, String)>)> = rdata
            .windows(needle.len())
            .enumerate()
            .filter(|(i, w)| *w == needle.as_slice() && *i >= 2)
            .filter_map(|(i, _)| decode_event_meta(&rdata, i - 2))
            .collect();
        assert!(!found.is_empty(), "no metadata blob for event {}", ev.name);
        for (name, fields) in &found {
            assert_eq!(name, &ev.name);
            assert_eq!(fields, &ev.fields, "fields of {}", ev.name);
        }
        // Its descriptor: id 0, version 0, channel, level, opcode 0, task 0, keyword.
        let mut desc = vec![0, 0, 0, ev.channel, ev.level, 0, 0, 0];
        desc.extend_from_slice(&ev.keyword.to_le_bytes());
        let has_desc = contains(&rdata, &desc);
        println!(
            "  {:<15} level {} keyword {:#018x} channel {:>2} descriptor {} fields: {}",
            ev.name,
            ev.level,
            ev.keyword,
            ev.channel,
            if has_desc { "found" } else { "NOT FOUND" },
            ev.fields
                .iter()
                .map(|(n, t)| format!("{n}:{t}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        assert!(
            has_desc,
            "EVENT_DESCRIPTOR of {} (channel {}, level {}, keyword {:#x})",
            ev.name, ev.channel, ev.level, ev.keyword
        );
    }
    // No event in the image that the list does not document: every blob of the shape
    // `size, 0, Name NUL …` that decodes is a documented event.
    let names: BTreeSet<&str> = documented.iter().map(|e| e.name.as_str()).collect();
    let mut undocumented = BTreeSet::new();
    for i in 0..rdata.len().saturating_sub(4) {
        if rdata[i + 2] == 0
            && rdata[i + 3].is_ascii_uppercase()
            && let Some((name, fields)) = decode_event_meta(&rdata, i)
            && !fields.is_empty()
            && name.len() > 3
            && name.bytes().all(|b| b.is_ascii_alphanumeric())
            && !names.contains(name.as_str())
        {
            undocumented.insert(name);
        }
    }
    assert!(
        undocumented.is_empty(),
        "events in the image the docs do not list: {undocumented:?}"
    );
}

/// A function from `.pdata`: its address range and frame size (bytes).
#[derive(Clone, Copy, Debug)]
struct Func {
    begin: u64,
    end: u64,
    frame: u64,
}

/// Frame size from x64 unwind codes (Microsoft Learn, "x64 exception handling": UNWIND_INFO
/// and UNWIND_CODE): pushes and allocations, plus the return address; chained entries add
/// the primary's.
fn frame_size(pe: &PeFile64<'_>, data: &[u8], unwind_rva: u32, depth: u32) -> u64 {
    let Some(info) = rva_bytes(pe, data, unwind_rva) else {
        return 8;
    };
    let (flags, count) = (info[0] >> 3, usize::from(info[2]));
    let code = |i: usize| u16::from_le_bytes([info[4 + 2 * i], info[4 + 2 * i + 1]]);
    let mut size = 0u64;
    let mut i = 0;
    while i < count {
        let c = code(i);
        let (op, op_info) = ((c >> 8) & 0xF, c >> 12);
        match op {
            0 => size += 8, // UWOP_PUSH_NONVOL
            1 if op_info == 0 => {
                size += u64::from(code(i + 1)) * 8; // UWOP_ALLOC_LARGE, scaled
                i += 1;
            }
            1 => {
                size += u64::from(code(i + 1)) | (u64::from(code(i + 2)) << 16);
                i += 2;
            }
            2 => size += u64::from(op_info) * 8 + 8, // UWOP_ALLOC_SMALL
            4 | 8 => i += 1,                         // SAVE_NONVOL, SAVE_XMM128
            5 | 9 => i += 2,                         // their _FAR forms
            10 => size += if op_info == 0 { 40 } else { 48 }, // PUSH_MACHFRAME
            _ => {}                                  // SET_FPREG
        }
        i += 1;
    }
    if flags & 0x4 != 0 && depth < 8 {
        // UNW_FLAG_CHAININFO: a RUNTIME_FUNCTION follows the (even-padded) codes.
        let at = 4 + 2 * (count + (count & 1));
        let parent = u32::from_le_bytes([info[at + 8], info[at + 9], info[at + 10], info[at + 11]]);
        return size + frame_size(pe, data, parent, depth + 1);
    }
    size + 8
}

fn rva_bytes<'a>(pe: &PeFile64<'a>, data: &'a [u8], rva: u32) -> Option<&'a [u8]> {
    pe.section_table().iter().find_map(|s| {
        let va = s.virtual_address.get(LE);
        let len = s.virtual_size.get(LE).max(s.size_of_raw_data.get(LE));
        if rva < va || rva >= va + len {
            return None;
        }
        let bytes = s.pe_data(data).ok()?;
        bytes.get(usize::try_from(rva - va).ok()?..)
    })
}

/// Every function with unwind information (leaf functions have none and use no frame).
fn functions(pe: &PeFile64<'_>, data: &[u8]) -> Vec<Func> {
    let base = pe.nt_headers().optional_header().image_base();
    let dir = pe
        .data_directory(pe::IMAGE_DIRECTORY_ENTRY_EXCEPTION)
        .expect("an exception directory (.pdata)");
    let bytes = rva_bytes(pe, data, dir.virtual_address.get(LE)).expect(".pdata");
    let n = usize::try_from(dir.size.get(LE)).expect("size") / 12;
    let mut out: Vec<Func> = (0..n)
        .map(|k| {
            let w = |o: usize| {
                u32::from_le_bytes([
                    bytes[k * 12 + o],
                    bytes[k * 12 + o + 1],
                    bytes[k * 12 + o + 2],
                    bytes[k * 12 + o + 3],
                ])
            };
            Func {
                begin: base + u64::from(w(0)),
                end: base + u64::from(w(4)),
                frame: frame_size(pe, data, w(8), 0),
            }
        })
        .collect();
    out.sort_by_key(|f| f.begin);
    out
}

/// The deepest chain of frames from `root` along direct calls and tail jumps (its depth
/// and the callee it goes through), or the chain that recursed.
fn depth(
    root: usize,
    funcs: &[Func],
    calls: &[Vec<usize>],
    memo: &mut Vec<Option<(u64, Option<usize>)>>,
    path: &mut Vec<usize>,
) -> Result<u64, Vec<usize>> {
    if let Some((d, _)) = memo[root] {
        return Ok(d);
    }
    if path.contains(&root) {
        let mut cycle = path.clone();
        cycle.push(root);
        return Err(cycle);
    }
    path.push(root);
    let mut deepest = (0, None);
    for &c in &calls[root] {
        let d = depth(c, funcs, calls, memo, path)?;
        if d > deepest.0 {
            deepest = (d, Some(c));
        }
    }
    path.pop();
    let d = funcs[root].frame + deepest.0;
    memo[root] = Some((d, deepest.1));
    Ok(d)
}

/// Function names by address, from the linker's map (`/MAP`), when the check provides it.
fn names(var: &str) -> std::collections::HashMap<u64, String> {
    let Some(path) = std::env::var_os(var) else {
        return Default::default();
    };
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (name, addr) = (f.get(1)?, f.get(2)?);
            let addr = u64::from_str_radix(addr, 16)
                .ok()
                .filter(|_| addr.len() == 16)?;
            let name = format!("{:#}", rustc_demangle::demangle(name));
            Some((addr, name))
        })
        .collect()
}

fn check_stack(
    pe: &PeFile64<'_>,
    data: &[u8],
    insns: &[Instruction],
    entry: u64,
    names: &std::collections::HashMap<u64, String>,
) {
    let name = |a: u64| {
        names
            .get(&a)
            .map_or_else(|| format!("{a:#x}"), Clone::clone)
    };
    let funcs = functions(pe, data);
    let find = |addr: u64| funcs.iter().position(|f| f.begin <= addr && addr < f.end);
    let mut calls = vec![Vec::new(); funcs.len()];
    for ins in insns {
        let direct = matches!(ins.op0_kind(), OpKind::NearBranch64)
            && (ins.is_call_near() || ins.is_jmp_near());
        if !direct {
            continue;
        }
        if let (Some(from), Some(to)) = (find(ins.ip()), find(ins.near_branch_target()))
            && from != to
            && !calls[from].contains(&to)
        {
            calls[from].push(to);
        }
    }
    let mut by_size: Vec<&Func> = funcs.iter().collect();
    by_size.sort_by_key(|f| std::cmp::Reverse(f.frame));
    println!("largest frames (bytes, return address included):");
    for f in by_size.iter().take(
        std::env::var("FAILSAFE_FRAMES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(6),
    ) {
        println!("  {:6} {}", f.frame, name(f.begin));
    }
    let big: Vec<String> = funcs
        .iter()
        .filter(|f| f.frame > MAX_FRAME)
        .map(|f| format!("{}: {} bytes", name(f.begin), f.frame))
        .collect();
    assert!(big.is_empty(), "frames over {MAX_FRAME} bytes: {big:?}");
    // Roots: every function no other calls directly. DriverEntry, and the routines the
    // kernel calls through pointers (Filter Manager callbacks, DPC, work item, shutdown
    // dispatch, process notify, the unload callback).
    let called: std::collections::HashSet<usize> = calls.iter().flatten().copied().collect();
    let mut memo = vec![None; funcs.len()];
    let mut chains: Vec<(u64, u64, usize)> = Vec::new();
    for root in (0..funcs.len()).filter(|r| !called.contains(r)) {
        let d = depth(root, &funcs, &calls, &mut memo, &mut Vec::new()).unwrap_or_else(|cycle| {
            let at: Vec<String> = cycle
                .iter()
                .map(|&c| format!("{:#x}", funcs[c].begin))
                .collect();
            panic!("recursion: {at:?}")
        });
        chains.push((d, funcs[root].begin, root));
    }
    chains.sort_unstable_by_key(|&(d, _, _)| std::cmp::Reverse(d));
    println!("deepest chains of own frames (bytes), from roots of the call graph:");
    for (d, at, _) in chains.iter().take(6) {
        println!("  {d:6} from {}", name(*at));
    }
    // The deepest chain of DriverEntry and of the routines on the file-system path (the
    // pre-operation callbacks, whose frames hold the path buffers; instance setup and
    // teardown; unload; the process notify routine, the volume-name work and the driver's
    // own thread, which runs control requests, live loads included; ADR 0013), frame by
    // frame.
    let shown = |at: u64| {
        at == entry
            || name(at).contains("::pre_create")
            || name(at).contains("::pre_set_information")
            || name(at).contains("flt::instance::instance_")
            || name(at).contains("::filter_unload")
            || name(at).contains("process_notify")
            || name(at).contains("dosnames::volume_work")
            || name(at).contains("kernel::worker::run")
    };
    for &(d, at, root) in chains.iter().filter(|(_, at, _)| shown(*at)) {
        println!("{}'s deepest chain ({d} bytes):", name(at));
        let mut at = Some(root);
        while let Some(i) = at {
            println!("  {:6} {}", funcs[i].frame, name(funcs[i].begin));
            at = memo[i].and_then(|(_, next)| next);
        }
    }
    // Panic reachability along direct calls (with the map's names): which roots reach the
    // panic handler or core's panic entry points, and by which chain.
    let is_panic = |i: usize| {
        names
            .get(&funcs[i].begin)
            .is_some_and(|n| n.contains("rust_begin_unwind") || n.starts_with("core::panicking::"))
    };
    let mut reach: Vec<Option<Option<usize>>> = vec![None; funcs.len()];
    fn panics(
        i: usize,
        calls: &[Vec<usize>],
        is_panic: &dyn Fn(usize) -> bool,
        reach: &mut Vec<Option<Option<usize>>>,
        seen: &mut Vec<bool>,
    ) -> bool {
        if let Some(r) = reach[i] {
            return r.is_some() || is_panic(i);
        }
        if is_panic(i) {
            reach[i] = Some(Some(i));
            return true;
        }
        if seen[i] {
            return false;
        }
        seen[i] = true;
        for &c in &calls[i] {
            if panics(c, calls, is_panic, reach, seen) {
                reach[i] = Some(Some(c));
                return true;
            }
        }
        reach[i] = Some(None);
        false
    }
    let mut seen = vec![false; funcs.len()];
    let mut panicking = Vec::new();
    for &(_, at, root) in &chains {
        if !names.is_empty() && panics(root, &calls, &is_panic, &mut reach, &mut seen) {
            let mut path = vec![name(at)];
            let mut i = root;
            while let Some(Some(n)) = reach[i] {
                if n == i {
                    break;
                }
                path.push(name(funcs[n].begin));
                i = n;
            }
            panicking.push(path.join(" -> "));
        }
    }
    println!(
        "roots that reach a panic along direct calls: {}",
        panicking.len()
    );
    for p in &panicking {
        println!("  {p}");
    }
    // The link-time panic proof of the core (proof/), extended to the driver: no routine of
    // ours reaches a panic through direct calls. (Roots that are core's own landing pads or
    // its default allocation-error handler are reached by no code of ours: every
    // allocation is fallible.)
    let ours: Vec<&String> = panicking
        .iter()
        .filter(|p| p.starts_with("DriverEntry") || p.starts_with("failsafe"))
        .collect();
    if !names.is_empty() {
        assert!(
            ours.is_empty(),
            "panics reachable from the driver's own routines: {ours:#?}"
        );
    }
    // The file-system callbacks: their own budget, without and with the on-stack scratch.
    if !names.is_empty() {
        let callback = |at: u64| {
            let n = name(at);
            [
                "::pre_create",
                "::post_create",
                "::pre_set_information",
                "::pre_shutdown",
            ]
            .iter()
            .any(|c| n.contains(c))
        };
        let fallback = |i: usize| name(funcs[i].begin).contains("scratch::on_stack");
        let common: Vec<Vec<usize>> = calls
            .iter()
            .map(|cs| cs.iter().copied().filter(|&c| !fallback(c)).collect())
            .collect();
        let mut memo_common = vec![None; funcs.len()];
        let roots: Vec<&(u64, u64, usize)> =
            chains.iter().filter(|(_, at, _)| callback(*at)).collect();
        assert!(
            roots.len() >= 4,
            "the four callbacks are roots of the call graph: {:?}",
            roots.iter().map(|r| name(r.1)).collect::<Vec<_>>()
        );
        println!("callbacks (own stack, bytes): without the on-stack scratch / with it");
        for &&(d_all, at, root) in &roots {
            let d =
                depth(root, &funcs, &common, &mut memo_common, &mut Vec::new()).unwrap_or(u64::MAX);
            println!("  {d:6} / {d_all:6} {}", name(at));
            assert!(
                d <= CALLBACK_DEPTH,
                "{}: {d} bytes of own stack, over the callbacks' {CALLBACK_DEPTH}",
                name(at)
            );
            assert!(
                d_all <= FALLBACK_DEPTH,
                "{}: {d_all} bytes with the on-stack scratch, over {FALLBACK_DEPTH}",
                name(at)
            );
        }
    }
    let over: Vec<String> = chains
        .iter()
        .filter(|(d, _, _)| *d > MAX_DEPTH)
        .map(|(d, at, _)| format!("{}: {d}", name(*at)))
        .collect();
    assert!(
        over.is_empty(),
        "own stack over {MAX_DEPTH} bytes: {over:?}"
    );
}

#[test]
#[ignore = "needs the image linked by the kernel check (driver/kcheck/run.sh sets FAILSAFE_SYS)"]
fn release_image() {
    check(&image("FAILSAFE_SYS"), false, "FAILSAFE_SYS_MAP");
}

#[test]
#[ignore = "needs the image linked by the kernel check (driver/kcheck/run.sh sets FAILSAFE_SYS_DRILL)"]
fn drill_image() {
    check(&image("FAILSAFE_SYS_DRILL"), true, "FAILSAFE_SYS_DRILL_MAP");
}
