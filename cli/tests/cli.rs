//! Every subcommand run as the built binary, including its error paths.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;
use predicates::str::contains;
use serde_json::Value;

fn ctl() -> Command {
    Command::cargo_bin("failsafectl").unwrap()
}

fn sample_toml() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../content/sample.toml")
}

/// The signing key of the tests in `dir` (`dir/dev.key`, `dir/dev.pub`): made by
/// `failsafectl keygen` at test time; boots trust `dev.pub`.
fn dev_key(dir: &Path) -> PathBuf {
    let key = dir.join("dev.key");
    if !key.exists() {
        ctl().arg("keygen").arg("-o").arg(&key).assert().success();
    }
    key
}

fn compile_sample(dir: &Path, version: u64) -> PathBuf {
    let out = dir.join(format!("s{version}.fsc"));
    ctl()
        .arg("compile")
        .arg(sample_toml())
        .arg("-o")
        .arg(&out)
        .args(["--version", &version.to_string()])
        .assert()
        .success();
    out
}

/// The sample compiled as `version` and signed with `dir`'s development key (what a
/// driver start activates).
fn compile_signed(dir: &Path, version: u64) -> PathBuf {
    let out = dir.join(format!("s{version}.fsc"));
    ctl()
        .arg("compile")
        .arg(sample_toml())
        .arg("-o")
        .arg(&out)
        .args(["--version", &version.to_string()])
        .arg("--sign")
        .arg(dev_key(dir))
        .assert()
        .success();
    out
}

fn json_of(out: &[u8]) -> Value {
    serde_json::from_slice(out)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(out)))
}

/// No run of the tool may panic or print a backtrace, whatever the input.
fn no_panic(a: &assert_cmd::assert::Assert) {
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
}

#[test]
fn compile_is_deterministic_and_version_overridable() {
    let d = tempfile::tempdir().unwrap();
    let a = compile_sample(d.path(), 5);
    let b = d.path().join("again.fsc");
    ctl()
        .arg("compile")
        .arg(sample_toml())
        .arg("-o")
        .arg(&b)
        .args(["--version", "5"])
        .assert()
        .success();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let a = ctl()
        .arg("compile")
        .arg(sample_toml())
        .arg("-o")
        .arg(d.path().join("v1.fsc"))
        .arg("--json")
        .assert()
        .success();
    let j = json_of(&a.get_output().stdout);
    assert_eq!(j["version"], 1);
    assert_eq!(j["rules"], 8);
}

#[test]
fn compile_errors_point_at_line_and_column() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("bad.toml");
    let out = d.path().join("o.fsc");
    std::fs::write(&src, "version = 1\n[[rule]]\nid = 1\nevent = \"file-set-info\"\naction = \"block\"\nmatch = [\n  { field = \"disposition\", op = \"equals\", value = 1 },\n]\n").unwrap();
    let a = ctl().arg("compile").arg(&src).arg("-o").arg(&out).assert().code(1).stderr(
        contains("line 7, column 13: rule #0 (id 1): event type file-set-info has no field `disposition` (valid: path, name, extension, parent, process, pid, info-class, target-path, is-delete, kernel-mode)"),
    );
    no_panic(&a);
    assert!(!out.exists(), "nothing written on error");

    std::fs::write(&src, "version = 1\n[[rule]]\nid = 1\nevent = \"file-create\"\naction = \"deny\"\nmatch = [{ field = \"pid\", op = \"equals\", value = 4 }]\n").unwrap();
    ctl()
        .arg("compile")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .assert()
        .code(1)
        .stderr(contains(
            "line 5, column 10: rule #0 (id 1): unknown action `deny` (expected allow, audit or block)",
        ));

    std::fs::write(&src, "version = 1\n[[rule]]\nid = 1\nevent = \"file-create\"\naction = \"block\"\nmatch = [{ field = \"pid\", op = \"contains\", value = 4 }]\n").unwrap();
    ctl().arg("compile").arg(&src).arg("-o").arg(&out).assert().code(1).stderr(contains("operator `contains` does not apply to integer field `pid` (valid: equals, any-bits, all-bits, range)"));

    std::fs::write(&src, "version = 1\n[[rule]\n").unwrap();
    ctl()
        .arg("compile")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .assert()
        .code(1)
        .stderr(contains("line 2, column"));

    std::fs::write(&src, "[[rule]]\nid = 1\nevent = \"file-create\"\naction = \"block\"\nmatch = [{ field = \"pid\", op = \"equals\", value = 4 }]\n").unwrap();
    ctl()
        .arg("compile")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .assert()
        .code(1)
        .stderr(contains("no content version"));

    std::fs::write(&src, "version = 1\ncolour = \"red\"\n").unwrap();
    ctl()
        .arg("compile")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .assert()
        .code(1)
        .stderr(contains("unknown field `colour`"));

    std::fs::write(&src, "version = 1\n[[rule]]\nid = 1\nevent = \"file-create\"\naction = \"block\"\nmatch = [{ field = \"pid\", op = \"range\", value = [9, 3] }]\n").unwrap();
    ctl()
        .arg("compile")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .assert()
        .code(1)
        .stderr(contains("empty range [9, 3]"));
}

#[test]
fn compile_io_errors_exit_2() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("o.fsc");
    let a = ctl()
        .arg("compile")
        .arg(d.path().join("missing.toml"))
        .arg("-o")
        .arg(&out)
        .assert()
        .code(2)
        .stderr(contains("cannot read"));
    no_panic(&a);
    ctl()
        .arg("compile")
        .arg(d.path())
        .arg("-o")
        .arg(&out)
        .assert()
        .code(2)
        .stderr(contains("cannot read"));
}

#[test]
fn validate_reports_ok_invalid_and_io_with_exit_codes() {
    let d = tempfile::tempdir().unwrap();
    let good = compile_sample(d.path(), 3);
    ctl()
        .arg("validate")
        .arg(&good)
        .assert()
        .success()
        .stdout(contains("OK: version 3, 8 rules, sha256 "));
    let bytes = std::fs::read(&good).unwrap();
    let cut = d.path().join("cut.fsc");
    std::fs::write(&cut, &bytes[..bytes.len() - 5]).unwrap();
    ctl()
        .arg("validate")
        .arg(&good)
        .arg(&cut)
        .assert()
        .code(1)
        .stdout(contains("INVALID: byte 80: truncated body"));
    let a = ctl()
        .arg("validate")
        .arg(&good)
        .arg(&cut)
        .arg(d.path().join("nope.fsc"))
        .arg("--json")
        .assert()
        .code(2);
    let j = json_of(&a.get_output().stdout);
    for f in j.as_array().unwrap() {
        assert_eq!(f["json_version"], 1);
    }
    assert_eq!(j[0]["status"], "valid");
    assert_eq!(j[1]["status"], "invalid");
    assert_eq!(j[1]["error"]["code"], "truncated");
    assert_eq!(j[1]["error"]["offset"], 80);
    assert_eq!(j[2]["status"], "io-error");
    let a = ctl().arg("validate").arg(d.path()).assert().code(2);
    no_panic(&a);
    ctl()
        .arg("validate")
        .assert()
        .code(2)
        .stderr(contains("required"));
}

#[test]
fn inspect_text_json_and_source_round_trip() {
    let d = tempfile::tempdir().unwrap();
    let f = compile_sample(d.path(), 9);
    ctl()
        .arg("inspect")
        .arg(&f)
        .assert()
        .success()
        .stdout(contains("rule #1 (id 200): block on file-set-info"))
        .stdout(contains("except[0]: process ends-with"));
    let a = ctl()
        .arg("inspect")
        .arg(&f)
        .arg("--json")
        .assert()
        .success();
    let j = json_of(&a.get_output().stdout);
    assert_eq!(j["version"], 9);
    assert_eq!(j["rules"][2]["id"], 210);
    assert_eq!(j["rules"][2]["match"][0]["field"], "extension");
    let a = ctl()
        .arg("inspect")
        .arg(&f)
        .arg("--source")
        .assert()
        .success();
    let src = d.path().join("back.toml");
    std::fs::write(&src, &a.get_output().stdout).unwrap();
    let back = d.path().join("back.fsc");
    ctl()
        .arg("compile")
        .arg(&src)
        .arg("-o")
        .arg(&back)
        .assert()
        .success();
    assert_eq!(
        std::fs::read(&f).unwrap(),
        std::fs::read(&back).unwrap(),
        "inspect --source compiles back to the same bytes"
    );
    // A file whose header reads but whose body is corrupt: header shown in the error.
    let mut bytes = std::fs::read(&f).unwrap();
    let n = bytes.len();
    bytes[n - 2] ^= 1;
    std::fs::write(&f, &bytes).unwrap();
    ctl()
        .arg("inspect")
        .arg(&f)
        .assert()
        .code(1)
        .stderr(contains("file digest mismatch"));
    std::fs::write(&f, b"hello").unwrap();
    ctl()
        .arg("inspect")
        .arg(&f)
        .assert()
        .code(1)
        .stderr(contains("truncated magic"));
}

#[test]
fn test_shows_verdicts_and_checks_expectations() {
    let d = tempfile::tempdir().unwrap();
    let f = compile_sample(d.path(), 1);
    ctl()
        .arg("test")
        .arg(&f)
        .args(["--event", r#"file-create path="\Device\HarddiskVolume3\Users\bob\Documents\q3.xlsx.locky" process=\Device\HarddiskVolume3\Temp\x.exe desired-access=0x2"#])
        .args(["--expect", "block"])
        .assert()
        .success()
        .stdout(contains("=> block by rule #2 (id 210): extension equals"));
    let a = ctl()
        .arg("test")
        .arg(&f)
        .args(["--event", r#"file-create path="\Device\HarddiskVolume3\Users\bob\Documents\q3.xlsx" desired-access=0x2"#])
        .args(["--expect", "block"])
        .assert()
        .code(1);
    assert!(
        String::from_utf8_lossy(&a.get_output().stdout)
            .contains("=> pass (no rule matched)  <-- UNEXPECTED")
    );
    let ev = d.path().join("ev.jsonl");
    std::fs::write(
        &ev,
        "{\"event\":\"file-set-info\",\"path\":\"\\\\Device\\\\HarddiskVolume3\\\\Windows\\\\Failsafe\\\\content\\\\7.fsc\",\"process\":\"C:\\\\evil.exe\",\"is-delete\":true}\n\n{\"event\":\"file-create\",\"path\":\"C:\\\\Windows\\\\Temp\\\\lsass_1.dmp\"}\n",
    )
    .unwrap();
    let a = ctl()
        .arg("test")
        .arg(&f)
        .arg("--events")
        .arg(&ev)
        .arg("--json")
        .assert()
        .success();
    // JSON lines: one object per event (the event itself as an object), then a summary.
    let lines: Vec<Value> = String::from_utf8_lossy(&a.get_output().stdout)
        .lines()
        .map(|l| json_of(l.as_bytes()))
        .collect();
    assert_eq!(lines[0]["verdict"], "block");
    assert_eq!(lines[0]["rule"]["id"], 100);
    assert_eq!(
        lines[0]["event"]["path"],
        "C:\\Windows\\Failsafe\\content\\7.fsc"
    );
    assert_eq!(lines[1]["verdict"], "audit");
    assert_eq!(lines[1]["rule"]["id"], 300);
    assert_eq!(lines[2]["summary"]["events"], 2);
    ctl()
        .arg("test")
        .arg(&f)
        .args(["--event", "file-create pid=x"])
        .assert()
        .code(2)
        .stderr(contains("--event #1: field `pid`: expected an integer"));
    ctl()
        .arg("test")
        .arg(&f)
        .assert()
        .code(2)
        .stderr(contains("no events"));
    std::fs::write(&ev, "{\"event\": 3}\n").unwrap();
    ctl()
        .arg("test")
        .arg(&f)
        .arg("--events")
        .arg(&ev)
        .assert()
        .code(2)
        .stderr(contains(":1: \"event\" must be a string"));
}

#[test]
fn stage_status_and_recover() {
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("store");
    let s = |c: &mut Command| {
        c.arg("--store").arg(&store);
    };
    for v in [1, 2, 3, 4, 5, 6] {
        let f = compile_signed(d.path(), v);
        let mut c = ctl();
        c.arg("stage").arg(&f).arg("--init");
        s(&mut c);
        c.args(["--keep", "2"])
            .assert()
            .success()
            .stdout(contains(format!("staged version {v}")));
    }
    // keep 2 older below the newest, none is last-known-good yet: 4, 5 kept with 6.
    let mut names: Vec<_> = std::fs::read_dir(store.join("content"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["4.fsc", "5.fsc", "6.fsc"]);
    // Not newer: refused, unless forced.
    let old = compile_signed(d.path(), 5);
    let mut c = ctl();
    c.arg("stage").arg(&old);
    s(&mut c);
    c.assert()
        .code(1)
        .stderr(contains("refused: version 5 is not newer than version 6"));
    let mut c = ctl();
    c.arg("stage").arg(&old).arg("--force");
    s(&mut c);
    c.assert().success();
    // Invalid content: refused, nothing written.
    let bad = d.path().join("bad.fsc");
    std::fs::write(&bad, b"\x89FSC\r\n\x1a\nrest").unwrap();
    let mut c = ctl();
    c.arg("stage").arg(&bad);
    s(&mut c);
    c.assert()
        .code(1)
        .stderr(contains("refused, invalid content"));

    // A boot, then status.
    let mut c = ctl();
    c.args(["boot", "--then", "crash", "--key"])
        .arg(d.path().join("dev.pub"));
    s(&mut c);
    c.assert().failure();
    // Previews verify with the host's keys, as the boot above did.
    let k = |c: &mut Command| {
        c.arg("--key").arg(d.path().join("dev.pub"));
    };
    let mut c = ctl();
    c.arg("status").arg("--json");
    s(&mut c);
    k(&mut c);
    let j = json_of(&c.assert().success().get_output().stdout);
    assert_eq!(j["state"]["attempt"]["version"], 6);
    assert_eq!(j["state"]["attempt"]["phase"], "in-progress");
    assert_eq!(j["content"].as_array().unwrap().len(), 3);
    assert_eq!(j["next_start"]["version"], 6);
    let mut c = ctl();
    c.arg("status");
    s(&mut c);
    k(&mut c);
    c.assert().success().stdout(contains(
        "next start: normal mode (newest-content): tries v6, start 2 of 3",
    ));

    // Responder's overrides.
    let mut c = ctl();
    c.args(["recover", "force-safe-mode", "on"]);
    s(&mut c);
    c.assert().success().stdout(contains(
        "next start: safe mode (force-safe-mode), no content",
    ));
    let mut c = ctl();
    c.args(["recover", "unquarantine", "6"]);
    s(&mut c);
    c.assert()
        .code(1)
        .stderr(contains("version 6 is not quarantined"));
    let mut c = ctl();
    c.args(["recover", "force-safe-mode", "off", "--json"]);
    s(&mut c);
    k(&mut c);
    let j = json_of(&c.assert().success().get_output().stdout);
    assert_eq!(j["next_start"]["version"], 6);
    let mut c = ctl();
    c.args(["recover", "reset"]);
    s(&mut c);
    c.assert().success().stdout(contains("state reset"));
}

#[test]
fn boot_prints_its_decision_before_it_dies() {
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("s");
    let f = compile_signed(d.path(), 2);
    ctl()
        .arg("stage")
        .arg(&f)
        .arg("--init")
        .arg("--store")
        .arg(&store)
        .assert()
        .success();
    let key: [std::ffi::OsString; 2] = ["--key".into(), d.path().join("dev.pub").into_os_string()];
    let a = ctl()
        .args(["boot", "--json", "--then", "crash", "--store"])
        .arg(&store)
        .args(&key)
        .assert()
        .failure();
    let j = json_of(&a.get_output().stdout);
    assert_eq!(
        (
            j["boot"].as_u64(),
            j["version"].as_u64(),
            j["mode"].as_str()
        ),
        (Some(1), Some(2), Some("normal"))
    );
    ctl()
        .args(["boot", "--crash-at", "bogus", "--store"])
        .arg(&store)
        .assert()
        .code(2)
        .stderr(contains("unknown crash point"));
    ctl()
        .args(["boot", "--threshold", "0", "--store"])
        .arg(&store)
        .assert()
        .code(2);
    ctl()
        .args([
            "boot",
            "--then",
            "healthy",
            "--healthy-after",
            "0",
            "--store",
        ])
        .arg(&store)
        .args(&key)
        .assert()
        .success()
        .stdout(contains("boot 2: normal mode (newest-content)"))
        .stdout(contains("unclean starts so far: 1"))
        .stdout(contains("ended: healthy, then clean shutdown"));
}

#[test]
fn drill_list_and_unknown() {
    ctl()
        .args(["drill", "--list"])
        .assert()
        .success()
        .stdout(contains(" 1  crash-loop"))
        .stdout(contains(" 9  invalid-content"));
    ctl()
        .args(["drill", "42"])
        .assert()
        .code(2)
        .stderr(contains("unknown scenario `42`"));
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("x"), b"x").unwrap();
    ctl()
        .args(["drill", "1", "--keep"])
        .arg(d.path())
        .assert()
        .code(2)
        .stderr(contains("not empty"));
}

#[test]
fn usage_errors_exit_2_without_panics() {
    let a = ctl().arg("frobnicate").assert().code(2);
    no_panic(&a);
    ctl().assert().code(2);
    ctl()
        .arg("--help")
        .assert()
        .success()
        .stdout(contains("Exit codes"));
    ctl()
        .args(["compile", "x.toml"])
        .assert()
        .code(2)
        .stderr(contains("--output"));
    ctl()
        .args(["recover", "unquarantine", "abc"])
        .assert()
        .code(2);
    ctl()
        .args(["test", "/nonexistent.fsc", "--event", "file-create"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot read"));
}

#[test]
fn output_file_without_a_directory_part() {
    let d = tempfile::tempdir().unwrap();
    ctl()
        .current_dir(d.path())
        .arg("compile")
        .arg(sample_toml())
        .args(["-o", "plain.fsc"])
        .assert()
        .success()
        .stderr("");
    assert!(d.path().join("plain.fsc").exists());
}

#[test]
fn a_closed_pipe_ends_quietly_without_a_panic() {
    use std::io::Read;
    use std::process::Stdio;
    let d = tempfile::tempdir().unwrap();
    let mut src = String::from("version = 1\n");
    for i in 0..3000 {
        src += &format!(
            "[[rule]]\nid = {i}\nevent = \"file-create\"\naction = \"audit\"\nmatch = [{{ field = \"name\", op = \"equals\", value = \"file-{i}.txt\" }}]\n"
        );
    }
    let toml = d.path().join("big.toml");
    std::fs::write(&toml, src).unwrap();
    let fsc = d.path().join("big.fsc");
    ctl()
        .arg("compile")
        .arg(&toml)
        .arg("-o")
        .arg(&fsc)
        .assert()
        .success();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("failsafectl"))
        .arg("inspect")
        .arg(&fsc)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap(); // then the pipe closes
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(141));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
