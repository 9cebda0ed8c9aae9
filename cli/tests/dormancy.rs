//! The driver build under the counter (issue 20) from the responder's side, across real
//! processes: a build that crashes with no content active goes dormant; `status` shows it
//! with its evidence (text and `--json`); `recover wake` needs `--yes`, shows itself with
//! `--dry-run` and refuses a build that is not dormant; `--build` is checked.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const EXE: &str = env!("CARGO_BIN_EXE_failsafectl");

fn run(args: &[&str], dir: &Path) -> Output {
    Command::new(EXE)
        .args(args)
        .arg("--store")
        .arg(dir)
        .output()
        .unwrap()
}

fn json(o: &Output) -> Value {
    let text = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(text.lines().last().unwrap_or("null")).unwrap()
}

/// Three starts that crash with an empty store (no content: the build's own), then the
/// fourth decides dormant.
fn dormant_store() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for i in 0..3 {
        let o = run(&["boot", "--init", "--then", "crash", "--json"], d.path());
        assert!(!o.status.success(), "boot {i} was to crash");
    }
    let o = run(&["boot", "--then", "healthy", "--json"], d.path());
    assert!(o.status.success());
    let first: Value =
        serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(
        (first["mode"].as_str(), first["reason"].as_str()),
        (Some("safe"), Some("driver-dormant"))
    );
    d
}

#[test]
fn status_shows_dormancy_with_its_evidence() {
    let d = dormant_store();
    let o = run(&["status", "--json"], d.path());
    assert!(o.status.success());
    let j = json(&o);
    let drv = &j["state"]["driver"];
    assert_eq!(drv["unclean_starts_without_content"], 3);
    assert_eq!(drv["dormant"]["since_boot"], 4);
    assert_eq!(drv["threshold"], 3);
    assert!(drv["build"].as_str().unwrap().starts_with("0.1.0+"));
    assert_eq!(j["next_start"]["reason"], "driver-dormant");
    assert_eq!(j["last_start"]["reason"], "driver-dormant");
    let o = run(&["status"], d.path());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("DORMANT since boot 4"), "{text}");
    assert!(
        text.contains("3 unclean starts in a row with no content active"),
        "{text}"
    );
    assert!(text.contains("recover wake --yes"), "{text}");
    assert!(
        text.contains("next start: safe mode (driver-dormant)"),
        "{text}"
    );
}

#[test]
fn recover_wake_needs_yes_shows_a_dry_run_and_refuses_a_build_not_dormant() {
    let d = dormant_store();
    let before = std::fs::read(d.path().join("state.bin")).unwrap();
    let o = run(&["recover", "wake", "--json"], d.path());
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json(&o)["error"]["code"], "needs-confirmation");
    let o = run(&["recover", "wake", "--dry-run", "--json"], d.path());
    assert!(o.status.success());
    let j = json(&o);
    assert_eq!(j["dry_run"], true);
    assert!(
        j["needs_yes"]
            .as_str()
            .unwrap()
            .contains("3 times in a row")
    );
    assert_eq!(j["next_start"]["reason"], "no-content-staged");
    assert_eq!(std::fs::read(d.path().join("state.bin")).unwrap(), before);
    let o = run(&["recover", "wake", "--yes", "--json"], d.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j = json(&o);
    assert!(j["done"].as_str().unwrap().contains("woken"));
    let st = json(&run(&["status", "--json"], d.path()));
    assert_eq!(st["state"]["driver"]["dormant"], Value::Null);
    assert_eq!(st["state"]["driver"]["unclean_starts_without_content"], 0);
    // Not dormant any more: refused, with what the record says.
    let o = run(&["recover", "wake", "--yes", "--json"], d.path());
    assert_eq!(o.status.code(), Some(1));
    let e = json(&o);
    assert_eq!(e["error"]["code"], "not-dormant");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("0 unclean start(s) without content"),
        "{e}"
    );
}

/// `wake` is the console's own write (a dormant build sets up no host); when a host
/// answers on the store's endpoint anyway (the record changed under the console), it
/// writes nothing beside it and says so.
#[cfg(unix)]
#[test]
fn recover_wake_is_refused_while_a_host_answers() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let d = dormant_store();
    let before = std::fs::read(d.path().join("state.bin")).unwrap();
    let other = tempfile::tempdir().unwrap();
    let mut host = Command::new(EXE)
        .args(["serve", "--init", "--json", "--store"])
        .arg(other.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut r = BufReader::new(host.stdout.take().unwrap());
    let mut l = String::new();
    while r.read_line(&mut l).unwrap() > 0 && !l.contains("\"listening\"") {
        l.clear();
    }
    assert!(l.contains("\"listening\""), "serve did not listen");
    std::thread::spawn(move || std::io::copy(&mut r, &mut std::io::sink()));
    let sock = other.path().join("control.sock");
    let o = Command::new(EXE)
        .args(["recover", "wake", "--yes", "--json", "--store"])
        .arg(d.path())
        .arg("--socket")
        .arg(&sock)
        .output()
        .unwrap();
    let _ = host.kill();
    let _ = host.wait();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let e = json(&o);
    assert_eq!(e["error"]["code"], "host-running", "{e}");
    assert_eq!(std::fs::read(d.path().join("state.bin")).unwrap(), before);
}

#[test]
fn a_malformed_build_is_refused_with_what_was_expected() {
    let d = tempfile::tempdir().unwrap();
    for bad in ["1.2+00", "1.2.3", "1.2.3+zz", "70000.0.0+00"] {
        let o = run(&["boot", "--init", "--build", bad], d.path());
        assert_eq!(o.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("expected MAJOR.MINOR.PATCH+<64 hex digits>"),
            "{bad}: {err}"
        );
    }
    let good = format!("1.2.3+{}", "ab".repeat(32));
    let o = run(&["boot", "--init", "--build", &good, "--json"], d.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let st = json(&run(&["status", "--json"], d.path()));
    assert_eq!(st["state"]["driver"]["build"], good.as_str());
}
