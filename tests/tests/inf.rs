//! The minifilter INF's structure, and its consistency with what the driver reads, checked
//! on Linux (the WDK's infverif runs in the Windows workflow).

use std::collections::BTreeMap;

use failsafe_loader::state::Config;
use failsafe_tests::root;

/// Sections in order, each a list of (key, value) lines (value empty for bare lines).
type Inf = BTreeMap<String, Vec<(String, String)>>;

fn load() -> (Inf, BTreeMap<String, String>) {
    let raw = std::fs::read(root().join("../inf/failsafeflt.inx")).expect("inf/failsafeflt.inx");
    let text = match raw.as_slice() {
        [0xFF, 0xFE, rest @ ..] => {
            let units: Vec<u16> = rest
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).expect("valid UTF-16")
        }
        other => String::from_utf8(other.to_vec()).expect("UTF-8 or UTF-16LE with BOM"),
    };
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
        !inf.contains_key("DefaultUninstall"),
        "DefaultUninstall needs LegacyUninstall=1"
    );
}

#[test]
fn service_install_is_a_boot_loop_safe_minifilter() {
    let (inf, strings) = load();
    let add = get(&inf, "DefaultInstall.NT$ARCH$.Services", "AddService");
    let parts: Vec<&str> = add.split(',').map(str::trim).collect();
    assert_eq!(
        expand(parts[0], &strings),
        "failsafeflt",
        "service name = crate name = CLI's registry key"
    );
    let svc = parts[2];
    assert_eq!(get(&inf, svc, "ServiceType"), "2");
    assert_eq!(
        get(&inf, svc, "StartType"),
        "1",
        "system start: see ADR 0004"
    );
    assert_eq!(get(&inf, svc, "ErrorControl"), "1");
    assert_eq!(get(&inf, svc, "Dependencies"), "\"FltMgr\"");
    assert_eq!(get(&inf, svc, "LoadOrderGroup"), "\"FSFilter Anti-Virus\"");
    assert_eq!(
        expand(get(&inf, svc, "ServiceBinary"), &strings),
        "%13%\\failsafeflt.sys"
    );
    let copy = get(&inf, "DefaultInstall.NT$ARCH$", "CopyFiles");
    assert_eq!(expand(&inf[copy][0].0, &strings), "failsafeflt.sys");
    assert!(
        inf["SourceDisksFiles"]
            .iter()
            .any(|(k, _)| k == "failsafeflt.sys")
    );
}

#[test]
fn instance_and_parameters_match_what_the_driver_reads() {
    let (inf, strings) = load();
    let reg_section = get(&inf, "MiniFilter.Service", "AddReg");
    let regs: Vec<Vec<String>> = inf[reg_section]
        .iter()
        .map(|(k, v)| {
            let line = if v.is_empty() {
                k.clone()
            } else {
                format!("{k}={v}")
            };
            expand(&line, &strings)
                .split(',')
                .map(|f| f.trim().replace('"', ""))
                .collect()
        })
        .collect();
    let value = |key: &str, name: &str| -> String {
        regs.iter()
            .find(|r| r[1].trim_matches('"') == key && r[2] == name)
            .map(|r| r[4].clone())
            .unwrap_or_else(|| panic!("no HKR,{key},{name}"))
    };
    let instance = value("Parameters\\Instances", "DefaultInstance");
    let altitude: u32 = value(&format!("Parameters\\Instances\\{instance}"), "Altitude")
        .parse()
        .expect("numeric altitude");
    assert!(
        (320_000..=329_999).contains(&altitude),
        "altitude {altitude} outside FSFilter Anti-Virus"
    );
    assert_eq!(
        value(&format!("Parameters\\Instances\\{instance}"), "Flags"),
        "0x0"
    );
    assert_eq!(
        value("Parameters", "Threshold"),
        Config::DEFAULT_THRESHOLD.to_string()
    );
    assert_eq!(
        value("Parameters", "HealthyAfterSeconds"),
        Config::DEFAULT_HEALTHY_AFTER.to_string()
    );
    assert_eq!(value("Parameters", "ForceSafeMode"), "0");

    // Every value the driver reads has a default here, and nothing here goes unread (the
    // drill's DrillCrashVersion is test-only and set by hand, never by the INF).
    let kernel =
        std::fs::read_to_string(root().join("../driver/src/kernel.rs")).expect("kernel.rs");
    let read: Vec<&str> = ["read_dword(key.0, \"", "read_string(key.0, \""]
        .iter()
        .flat_map(|pat| {
            kernel.match_indices(pat).map(|(i, m)| {
                let rest = &kernel[i + m.len()..];
                &rest[..rest.find('"').unwrap_or(0)]
            })
        })
        .collect();
    assert_eq!(value("Parameters", "ContentDirectory"), default_dir());
    let mut in_inf: Vec<String> = regs
        .iter()
        .filter(|r| r[1] == "Parameters" && r[2] != "SupportedFeatures")
        .map(|r| r[2].clone())
        .collect();
    in_inf.sort();
    let mut read_sorted: Vec<String> = read
        .iter()
        .filter(|n| **n != "DrillCrashVersion")
        .map(|s| (*s).to_owned())
        .collect();
    read_sorted.sort();
    assert_eq!(
        in_inf, read_sorted,
        "INF Parameters vs values kernel.rs reads"
    );
    // The CLI reads the switches from, and mirrors ForceSafeMode into, the same key.
    let cli = std::fs::read_to_string(root().join("../cli/src/registry.rs")).expect("registry.rs");
    assert!(cli.contains(r#"Services\failsafeflt\Parameters"#));
    for name in ["ForceSafeMode", "Threshold", "HealthyAfterSeconds"] {
        assert!(cli.contains(&format!("\"{name}\"")), "{name}");
    }
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
fn every_string_token_is_defined() {
    let raw = std::fs::read(root().join("../inf/failsafeflt.inx")).expect("inx");
    let (_, strings) = load();
    let text = String::from_utf16_lossy(
        &raw.chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect::<Vec<_>>(),
    );
    let text = if raw.starts_with(&[0xFF, 0xFE]) {
        text
    } else {
        String::from_utf8_lossy(&raw).into_owned()
    };
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
