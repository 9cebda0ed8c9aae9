//! The kernel check lints the release build's item set (issue 20, section 3). The check
//! (`cargo make kcheck`, `--cfg failsafe_kcheck`) builds `driver/` without the WDK; any
//! item compiled only there, or only in release, makes its lints differ from what a
//! Windows developer's `cargo make` sees (the `unused import: KeBugCheckEx` a real wdk-sys
//! build reported, which the check's own panic handler hid). So `failsafe_kcheck` may only
//! choose where the bindings come from and which crate supplies the panic handler and the
//! two link-time symbols (wdk-panic / wdk-sys, or their stand-in `driver/kshim`).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

/// The items `failsafe_kcheck` may switch, as the line after the attribute reads.
const ALLOWED: [&str; 5] = [
    "mod kbind;",
    "pub(crate) use crate::kbind as wdk_sys;",
    "pub(crate) use ::wdk_sys;",
    "extern crate wdk_panic;",
    "extern crate failsafe_kshim;",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn failsafe_kcheck_switches_nothing_but_the_bindings_and_the_panic_crate() {
    let src = failsafe_tests::root().join("../driver/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(
        files.len() > 10,
        "driver/src not found at {}",
        src.display()
    );
    let mut bad = Vec::new();
    let mut seen = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let t = l.trim_start();
            if !(t.starts_with("#[") || t.starts_with("#![")) || !t.contains("failsafe_kcheck") {
                continue;
            }
            seen += 1;
            let item = lines.get(i + 1).map_or("", |n| n.trim());
            if t.starts_with("#![") || t.contains("cfg_attr") || !ALLOWED.contains(&item) {
                bad.push(format!(
                    "{}:{}: {t} / {item}",
                    f.strip_prefix(&src).unwrap().display(),
                    i + 1
                ));
            }
        }
    }
    assert!(
        seen >= 4,
        "expected the binding and panic-crate switches, found {seen}"
    );
    assert!(
        bad.is_empty(),
        "items compiled only with or only without failsafe_kcheck (the kernel check would lint another item set than the release build):\n{}",
        bad.join("\n")
    );
}
