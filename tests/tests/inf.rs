//! The minifilter INF's structure, and its consistency with what the driver reads, checked
//! on Linux (the WDK's stampinf / infverif run in the Windows workflow).
//!
//! The INF has two install forms (ADR 0010): one for Windows build 25952 and later
//! (driver store, `Parameters\Instances`) and one for earlier builds (System32\drivers,
//! `Instances` under the service key). Both must install the same service with the same
//! configuration; these tests hold them together.

use std::collections::BTreeMap;

use failsafe_loader::state::Config;
use failsafe_tests::root;

/// Sections in order, each a list of (key, value) lines (value empty for bare lines).
type Inf = BTreeMap<String, Vec<(String, String)>>;

fn raw_text() -> String {
    let raw = std::fs::read(root().join("../inf/failsafeflt.inx")).expect("inf/failsafeflt.inx");
    match raw.as_slice() {
        [0xFF, 0xFE, rest @ ..] => {
            let units: Vec<u16> = rest
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).expect("valid UTF-16")
        }
        other => String::from_utf8(other.to_vec()).expect("UTF-8 or UTF-16LE with BOM"),
    }
}

fn load() -> (Inf, BTreeMap<String, String>) {
    let text = raw_text();
    let mut inf = Inf::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.split(';').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.to_owned();
            assert!(
                inf.insert(current.clone(), vec![]).is_none(),
                "duplicate section [{current}]"
            );
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .map_or((line, ""), |(k, v)| (k.trim(), v.trim()));
        inf.get_mut(&current)
            .unwrap_or_else(|| panic!("line outside a section: {line}"))
            .push((k.to_owned(), v.to_owned()));
    }
    let strings = inf["Strings"]
        .iter()
        .map(|(k, v)| (k.clone(), v.trim_matches('"').to_owned()))
        .collect();
    (inf, strings)
}

fn get<'a>(inf: &'a Inf, section: &str, key: &str) -> &'a str {
    inf.get(section)
        .unwrap_or_else(|| panic!("missing section [{section}]"))
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("[{section}] has no {key}"))
}

fn expand(s: &str, strings: &BTreeMap<String, String>) -> String {
    let mut out = s.to_owned();
    for (k, v) in strings {
        out = out.replace(&format!("%{k}%"), v);
    }
    out
}

/// One install form of the INF: its entry section and what it must resolve to.
struct Form {
    install: &'static str,
    dirid: &'static str,
    /// Where Filter Manager reads the instance keys on the builds this form serves.
    instances: &'static str,
    /// Where `SupportedFeatures` goes (the samples put it next to the instances).
    features: &'static str,
}

const CURRENT: Form = Form {
    install: "DefaultInstall.NT$ARCH$.10.0...25952",
    dirid: "13",
    instances: "Parameters\\Instances",
    features: "Parameters",
};

const DOWNLEVEL: Form = Form {
    install: "DefaultInstall.NT$ARCH$",
    dirid: "12",
    instances: "Instances",
    features: "",
};

/// One `AddReg` line: root, subkey, value name, flags, value (strings expanded, quotes
/// removed).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Reg {
    root: String,
    subkey: String,
    name: String,
    flags: String,
    value: String,
}

fn reg_lines(inf: &Inf, strings: &BTreeMap<String, String>, section: &str) -> Vec<Reg> {
    inf.get(section)
        .unwrap_or_else(|| panic!("missing AddReg section [{section}]"))
        .iter()
        .map(|(k, v)| {
            let line = if v.is_empty() {
                k.clone()
            } else {
                format!("{k}={v}")
            };
            let f: Vec<String> = expand(&line, strings)
                .split(',')
                .map(|f| f.trim().replace('"', ""))
                .collect();
            assert_eq!(f.len(), 5, "AddReg line with other than 5 fields: {line}");
            Reg {
                root: f[0].clone(),
                subkey: f[1].clone(),
                name: f[2].clone(),
                flags: f[3].to_ascii_lowercase(),
                value: f[4].clone(),
            }
        })
        .collect()
}

fn list(s: &str) -> Vec<String> {
    s.split(',').map(|p| p.trim().to_owned()).collect()
}

/// What one form installs: service name, service section, every registry line.
struct Resolved {
    service_name: String,
    service: String,
    regs: Vec<Reg>,
}

fn resolve(inf: &Inf, strings: &BTreeMap<String, String>, form: &Form) -> Resolved {
    // Files: one copy section, landing in this form's DIRID, holding only the driver.
    let copy = get(inf, form.install, "CopyFiles");
    assert_eq!(
        get(inf, "DestinationDirs", copy),
        form.dirid,
        "[{}] copies to the wrong DIRID",
        form.install
    );
    let files: Vec<String> = inf[copy].iter().map(|(k, _)| expand(k, strings)).collect();
    assert_eq!(files, ["failsafeflt.sys"]);

    let services = format!("{}.Services", form.install);
    let add = list(get(inf, &services, "AddService"));
    assert_eq!(add.len(), 3, "AddService = name,flags,section");
    let service = add[2].clone();
    assert_eq!(
        expand(get(inf, &service, "ServiceBinary"), strings),
        format!("%{}%\\failsafeflt.sys", form.dirid),
        "[{service}] binary outside its form's DIRID"
    );
    let regs = list(get(inf, &service, "AddReg"))
        .iter()
        .flat_map(|s| reg_lines(inf, strings, s))
        .collect();
    Resolved {
        service_name: expand(&add[0], strings),
        service,
        regs,
    }
}

#[test]
fn version_section_per_minifilter_guidance() {
    let (inf, _) = load();
    assert_eq!(get(&inf, "Version", "Signature"), "\"$WINDOWS NT$\"");
    assert_eq!(get(&inf, "Version", "Class"), "\"AntiVirus\"");
    assert_eq!(
        get(&inf, "Version", "ClassGuid"),
        "{b1d1a169-c54f-4379-81db-bee7d88d7454}"
    );
    assert_eq!(get(&inf, "Version", "CatalogFile"), "failsafeflt.cat");
    assert_eq!(get(&inf, "Version", "PnpLockdown"), "1");
    assert_eq!(get(&inf, "DestinationDirs", "DefaultDestDir"), "13");
    assert!(
        !inf.contains_key("DefaultInstall") && !inf.contains_key("DefaultInstall.Services"),
        "primitive drivers need architecture-decorated DefaultInstall sections only"
    );
}

#[test]
fn both_install_forms_install_the_same_boot_loop_safe_minifilter() {
    let (inf, strings) = load();
    let current = resolve(&inf, &strings, &CURRENT);
    let downlevel = resolve(&inf, &strings, &DOWNLEVEL);
    assert_eq!(
        current.service_name, "failsafeflt",
        "service name = crate name = CLI's registry key"
    );
    assert_eq!(current.service_name, downlevel.service_name);
    assert_ne!(
        current.service, downlevel.service,
        "one service section per form"
    );

    // Every service setting but the binary's location is the same in both forms.
    let settings = |svc: &str| -> BTreeMap<String, String> {
        inf[svc]
            .iter()
            .filter(|(k, _)| !["ServiceBinary", "AddReg"].contains(&k.as_str()))
            .map(|(k, v)| (k.to_ascii_lowercase(), expand(v, &strings)))
            .collect()
    };
    assert_eq!(settings(&current.service), settings(&downlevel.service));
    for svc in [&current.service, &downlevel.service] {
        assert_eq!(get(&inf, svc, "ServiceType"), "2");
        assert_eq!(
            get(&inf, svc, "StartType"),
            "1",
            "system start: see ADR 0004"
        );
        assert_eq!(get(&inf, svc, "ErrorControl"), "1");
        assert_eq!(get(&inf, svc, "Dependencies"), "\"FltMgr\"");
        assert_eq!(get(&inf, svc, "LoadOrderGroup"), "\"FSFilter Anti-Virus\"");
    }
    assert!(
        inf["SourceDisksFiles"]
            .iter()
            .any(|(k, _)| k == "failsafeflt.sys")
    );
}

#[test]
fn instance_keys_where_each_windows_build_reads_them() {
    let (inf, strings) = load();
    let mut altitudes = vec![];
    for form in [&CURRENT, &DOWNLEVEL] {
        let r = resolve(&inf, &strings, form);
        let value = |subkey: &str, name: &str| -> &Reg {
            let hits: Vec<&Reg> = r
                .regs
                .iter()
                .filter(|g| g.root == "HKR" && g.subkey == subkey && g.name == name)
                .collect();
            assert_eq!(hits.len(), 1, "{}: HKR,{subkey},{name}", form.install);
            hits[0]
        };
        let instance = value(form.instances, "DefaultInstance").value.clone();
        assert_eq!(instance, "Failsafe Instance");
        let key = format!("{}\\{instance}", form.instances);
        let altitude = value(&key, "Altitude");
        let flags = value(&key, "Flags");
        // Not NOCLOBBER: an altitude Microsoft assigns later must reach upgraded machines.
        assert_eq!(altitude.flags, "0x00000000", "Altitude is a plain REG_SZ");
        assert_eq!(flags.flags, "0x00010001", "Flags is a plain REG_DWORD");
        assert_eq!(flags.value, "0x0");
        let n: u32 = altitude.value.parse().expect("numeric altitude");
        assert!(
            (320_000..=329_999).contains(&n),
            "altitude {n} outside FSFilter Anti-Virus"
        );
        altitudes.push(n);
        assert_eq!(value(form.features, "SupportedFeatures").value, "0x3");

        // Nothing of the other form's layout leaks into this one.
        let other = if form.instances == CURRENT.instances {
            DOWNLEVEL.instances
        } else {
            CURRENT.instances
        };
        assert!(
            !r.regs
                .iter()
                .any(|g| g.subkey == other || g.subkey.starts_with(&format!("{other}\\"))),
            "{} writes instance keys under {other}",
            form.install
        );
    }
    assert_eq!(altitudes[0], altitudes[1], "same altitude in both forms");
}

/// The values an operator may change, and the registry type the driver reads them as.
const OPERATOR_VALUES: [(&str, &str); 4] = [
    ("Threshold", "dword"),
    ("HealthyAfterSeconds", "dword"),
    ("ForceSafeMode", "dword"),
    ("ContentDirectory", "sz"),
];

/// The `Parameters` configuration lines of one form (instances and features excluded).
fn configuration(regs: &[Reg]) -> Vec<Reg> {
    let mut c: Vec<Reg> = regs
        .iter()
        .filter(|g| g.subkey == "Parameters" && g.name != "SupportedFeatures")
        .cloned()
        .collect();
    c.sort();
    c
}

#[test]
fn operator_values_survive_upgrades_in_both_forms() {
    let (inf, strings) = load();
    let current = configuration(&resolve(&inf, &strings, &CURRENT).regs);
    let downlevel = configuration(&resolve(&inf, &strings, &DOWNLEVEL).regs);
    assert_eq!(current, downlevel, "same configuration in both forms");
    let names: Vec<&str> = current.iter().map(|g| g.name.as_str()).collect();
    let mut expected: Vec<&str> = OPERATOR_VALUES.iter().map(|(n, _)| *n).collect();
    expected.sort_unstable();
    assert_eq!(names, expected);
    for (name, ty) in OPERATOR_VALUES {
        let g = current.iter().find(|g| g.name == name).expect("present");
        // FLG_ADDREG_NOCLOBBER = 0x2 on top of the type flag.
        let want = match ty {
            "dword" => "0x00010003",
            _ => "0x00000002",
        };
        assert_eq!(g.root, "HKR");
        assert_eq!(
            g.flags, want,
            "{name}: an upgrade must never reset an operator's value (NOCLOBBER)"
        );
    }
}

#[test]
fn parameters_defaults_equal_what_the_driver_reads() {
    let (inf, strings) = load();
    let regs = configuration(&resolve(&inf, &strings, &CURRENT).regs);
    let value = |name: &str| -> String {
        regs.iter()
            .find(|g| g.name == name)
            .map(|g| g.value.clone())
            .unwrap_or_else(|| panic!("no Parameters value {name}"))
    };
    assert_eq!(value("Threshold"), Config::DEFAULT_THRESHOLD.to_string());
    assert_eq!(
        value("HealthyAfterSeconds"),
        Config::DEFAULT_HEALTHY_AFTER.to_string()
    );
    assert_eq!(value("ForceSafeMode"), "0");
    assert_eq!(value("ContentDirectory"), default_dir());

    // Every value the driver reads has a default here, and nothing here goes unread (the
    // drill's DrillCrashVersion is test-only and set by hand, never by the INF).
    let mut read = driver_reads();
    read.retain(|n| n != "DrillCrashVersion");
    let mut in_inf: Vec<String> = regs.iter().map(|g| g.name.clone()).collect();
    in_inf.sort();
    assert_eq!(in_inf, read, "INF Parameters vs values the driver reads");
    // The CLI reads the switches from, and mirrors ForceSafeMode into, the same key.
    let cli = std::fs::read_to_string(root().join("../cli/src/registry.rs")).expect("registry.rs");
    assert!(cli.contains(r#"Services\failsafeflt\Parameters"#));
    for name in ["ForceSafeMode", "Threshold", "HealthyAfterSeconds"] {
        assert!(cli.contains(&format!("\"{name}\"")), "{name}");
    }
}

/// The driver's Rust sources, `driver/src` and its subdirectories.
fn driver_sources() -> Vec<std::path::PathBuf> {
    let mut todo = vec![root().join("../driver/src")];
    let mut files = vec![];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).expect("driver/src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// Registry value names the driver reads: the first string literal of every
/// `read_dword(` / `read_string(` call in `driver/src` (sorted, deduplicated).
fn driver_reads() -> Vec<String> {
    let mut names = vec![];
    for path in driver_sources() {
        let src = std::fs::read_to_string(&path).expect("source");
        for pat in ["read_dword(", "read_string("] {
            for (i, m) in src.match_indices(pat) {
                let call = &src[i + m.len()..];
                let call = &call[..call.find(')').unwrap_or(call.len())];
                let mut quoted = call.split('"');
                if let (Some(_), Some(name)) = (quoted.next(), quoted.next()) {
                    names.push(name.to_owned());
                }
            }
        }
    }
    names.sort();
    names.dedup();
    assert!(!names.is_empty(), "no registry reads found in driver/src");
    names
}

/// The driver's default store directory, as `driver/src/config.rs` states it.
fn default_dir() -> String {
    let config =
        std::fs::read_to_string(root().join("../driver/src/config.rs")).expect("config.rs");
    let line = config
        .lines()
        .find(|l| l.contains("pub const DEFAULT_DIR"))
        .expect("DEFAULT_DIR");
    let quoted = &line[line.find('"').expect("quote") + 1..line.rfind('"').expect("quote")];
    quoted.replace("\\\\", "\\")
}

#[test]
fn not_registered_for_safe_mode() {
    // ADR 0004: Windows starts in Safe Mode only services (or load order groups) listed
    // under HKLM\SYSTEM\CurrentControlSet\Control\SafeBoot\{Minimal,Network}. The package
    // must never add itself there: Safe Mode stays the way out even if the driver binary
    // itself is what crashes.
    let (inf, strings) = load();
    for (section, lines) in &inf {
        for (k, v) in lines {
            let line = expand(&format!("{k}={v}"), &strings).to_ascii_lowercase();
            assert!(
                !line.contains("safeboot"),
                "[{section}] touches the SafeBoot lists: {k}={v}"
            );
            if k.starts_with("HKLM") {
                panic!("[{section}] writes outside the service key: {k}={v}");
            }
        }
    }
}

#[test]
fn uninstall_sections_only_for_legacy_installers() {
    // Primitive drivers may carry DefaultUninstall only with LegacyUninstall=1 (ignored from
    // Windows 10 1903); it may delete only the down-level copy, never the driver store.
    let (inf, _) = load();
    for (name, lines) in &inf {
        if !name.starts_with("DefaultUninstall") || name.ends_with(".Services") {
            continue;
        }
        assert_eq!(get(&inf, name, "LegacyUninstall"), "1", "[{name}]");
        for (k, v) in lines {
            if k.eq_ignore_ascii_case("DelFiles") {
                for s in list(v) {
                    assert_eq!(get(&inf, "DestinationDirs", &s), DOWNLEVEL.dirid, "{s}");
                }
            }
        }
    }
}

#[test]
fn every_string_token_is_defined() {
    let text = raw_text();
    let (_, strings) = load();
    for token in text.split('%').skip(1).step_by(2) {
        if token.is_empty() || token.chars().all(|c| c.is_ascii_digit()) {
            continue; // %13% is a DIRID
        }
        assert!(
            strings.contains_key(token),
            "%{token}% is not defined in [Strings]"
        );
    }
}
