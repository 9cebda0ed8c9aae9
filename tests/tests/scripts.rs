#![cfg(unix)]
//! Every script installs what it needs (issue 20, section 3): on a machine whose pinned
//! toolchain lacks a component or target and whose Debian lacks a package, each script
//! asks rustup and apt-get for exactly those before it uses them. The machine is simulated
//! with stand-ins for `rustup`, `rustc`, `cargo`, `dpkg` and `apt-get` first on `PATH`
//! (they log their arguments; the stand-in rustup reports the pinned toolchain installed
//! with nothing but rustc and cargo, no nightly); `FAILSAFE_NEEDS_ONLY=1` stops each script
//! once its needs are met, before any real work.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    failsafe_tests::root().join("..").canonicalize().unwrap()
}

fn stub(dir: &Path, name: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!("#!/bin/sh\necho \"{name} $*\" >> \"$STUB_LOG\"\n{body}\nexit 0\n"),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Runs `script` (bash source) in the simulated machine; returns the stand-ins' log.
fn run_bare(script: &str, args: &[&str]) -> String {
    let d = tempfile_dir();
    let bin = d.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    stub(
        &bin,
        "rustup",
        r#"case "$1 $2" in
  "toolchain list") echo "$PINNED-x86_64-unknown-linux-gnu (default)" ;;
  "component list") echo "cargo-x86_64-unknown-linux-gnu"; echo "rustc-x86_64-unknown-linux-gnu" ;;
  "target list") echo "x86_64-unknown-linux-gnu" ;;
esac"#,
    );
    stub(
        &bin,
        "rustc",
        r#"[ "$1" = "-vV" ] && echo "host: x86_64-unknown-linux-gnu""#,
    );
    stub(&bin, "cargo", "");
    stub(&bin, "dpkg", "exit 1");
    stub(&bin, "apt-get", "");
    stub(&bin, "sudo", r#""$@""#);
    let log = d.join("log");
    std::fs::write(&log, "").unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg("script")
        .args(args)
        .current_dir(repo())
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("STUB_LOG", &log)
        .env("FAILSAFE_NEEDS_ONLY", "1")
        .env("PINNED", pinned())
        .env_remove("WDK_INCLUDE")
        .output()
        .unwrap();
    let log = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_dir_all(&d);
    format!(
        "{log}--- exit {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn tempfile_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "failsafe-scripts-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The toolchain rust-toolchain.toml pins.
fn pinned() -> String {
    let t = std::fs::read_to_string(repo().join("rust-toolchain.toml")).unwrap();
    let line = t.lines().find(|l| l.starts_with("channel")).unwrap();
    line.split('"').nth(1).unwrap().to_owned()
}

#[track_caller]
fn wants(log: &str, lines: &[&str]) {
    for l in lines {
        let l = l.replace("PINNED", &pinned());
        assert!(log.contains(&l), "expected `{l}` in:\n{log}");
    }
    assert!(
        log.contains("--- exit Some(0)"),
        "the script failed:\n{log}"
    );
}

/// The inline script of a cargo-make task.
fn make_task(name: &str) -> String {
    let m = std::fs::read_to_string(repo().join("Makefile.toml")).unwrap();
    let at = m.find(&format!("[tasks.{name}]")).unwrap();
    let rest = &m[at..];
    let s = rest.find("script = '''").unwrap() + "script = '''".len();
    let e = rest[s..].find("'''").unwrap();
    rest[s..s + e].to_owned()
}

#[test]
fn kcheck_installs_what_it_needs() {
    let log = run_bare("exec driver/kcheck/run.sh \"$@\"", &[]);
    wants(
        &log,
        &[
            "rustup component add clippy --toolchain PINNED",
            "rustup component add llvm-tools --toolchain PINNED",
            "rustup target add x86_64-pc-windows-msvc --toolchain PINNED",
            "apt-get install -y -qq libclang-dev",
            "apt-get install -y -qq mingw-w64-x86-64-dev",
        ],
    );
}

#[test]
fn the_hosted_drill_installs_what_it_needs() {
    let log = run_bare("exec driver/hosted/run.sh \"$@\"", &["--no-build"]);
    wants(
        &log,
        &[
            "apt-get install -y -qq wine64 python3",
            "apt-get install -y -qq gcc-mingw-w64-x86-64 mingw-w64-x86-64-dev",
            "rustup component add clippy --toolchain PINNED",
            "rustup target add x86_64-pc-windows-msvc --toolchain PINNED",
        ],
    );
}

#[test]
fn the_proof_installs_what_it_needs() {
    let log = run_bare("exec proof/check.sh \"$@\"", &[]);
    wants(
        &log,
        &[
            "rustup component add llvm-tools --toolchain PINNED",
            "rustup target add x86_64-pc-windows-msvc --toolchain PINNED",
            "rustup target add aarch64-pc-windows-msvc --toolchain PINNED",
        ],
    );
}

#[test]
fn cargo_make_tasks_install_what_they_need() {
    let log = run_bare(&make_task("fuzz"), &[]);
    wants(
        &log,
        &[
            "rustup toolchain install nightly --profile minimal",
            "cargo install cargo-fuzz --locked",
        ],
    );
    let log = run_bare(&make_task("fltcheck"), &[]);
    wants(
        &log,
        &[
            "rustup component add clippy --toolchain PINNED",
            "rustup target add aarch64-pc-windows-msvc --toolchain PINNED",
        ],
    );
}
