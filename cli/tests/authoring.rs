//! Issue 12, across the built binary: paths as authors write them, lints, every error in
//! one run, `test` expectations and vetoes, `diff`, overwrite refusal, `import sigma` on
//! Sigma rules written for these tests, and the console conventions.

use assert_cmd::Command;
use predicates::str::contains;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn ctl() -> Command {
    let mut c = Command::cargo_bin("failsafectl").unwrap();
    c.env_remove("NO_COLOR");
    c
}

fn json_lines(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn compile(dir: &Path, name: &str, text: &str) -> PathBuf {
    let src = write(dir, &format!("{name}.toml"), text);
    let out = dir.join(format!("{name}.fsc"));
    ctl()
        .arg("compile")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .assert()
        .success();
    out
}

const DRIVERS: &str = r#"version = 3
[[rule]]
id = 700
event = "file-create"
action = "block"
match = [
  { field = "path", op = "wildcard", value = "C:\\Windows\\System32\\drivers\\*.sys" },
  { field = "disposition", op = "equals", value = [2, 5] },
]
except = [[{ field = "process", op = "equals", value = "C:\\Windows\\System32\\TiWorker.exe" }]]
"#;

#[test]
fn drive_letter_and_device_paths_both_match_a_c_drive_rule() {
    let d = tempfile::tempdir().unwrap();
    let f = compile(d.path(), "drivers", DRIVERS);
    for path in [
        r"C:\Windows\System32\drivers\evil.sys",
        r"\Device\HarddiskVolume3\Windows\System32\drivers\evil.sys",
        r"\??\C:\Windows\System32\drivers\evil.sys",
    ] {
        ctl()
            .arg("test")
            .arg(&f)
            .args([
                "--event",
                &format!("file-create path=\"{path}\" disposition=2"),
            ])
            .args(["--expect", "block"])
            .assert()
            .success()
            .stdout(contains(r#"path="C:\Windows\System32\drivers\evil.sys""#))
            .stdout(contains("rule #0 (id 700)"));
    }
    // Another volume number is another drive, unless told.
    let other = r#"file-create path="\Device\HarddiskVolume2\Windows\System32\drivers\evil.sys" disposition=2"#;
    ctl()
        .arg("test")
        .arg(&f)
        .args(["--event", other, "--expect", "pass"])
        .assert()
        .success();
    ctl()
        .arg("test")
        .arg(&f)
        .args(["--event", other, "--expect", "block"])
        .args(["--volume", r"\Device\HarddiskVolume2=C:"])
        .assert()
        .success();
}

#[test]
fn test_says_which_exception_vetoed_which_rule() {
    let d = tempfile::tempdir().unwrap();
    let f = compile(d.path(), "drivers", DRIVERS);
    ctl()
        .arg("test")
        .arg(&f)
        .args(["--event", r#"file-create path=C:\Windows\System32\drivers\x.sys disposition=2 process=\Device\HarddiskVolume3\Windows\System32\TiWorker.exe"#])
        .assert()
        .success()
        .stdout(contains("=> pass (no rule decided)"))
        .stdout(contains("rule #0 (id 700) matched, but its except[0] vetoed it: process equals"));
    let a = ctl()
        .arg("test")
        .arg(&f)
        .args(["--event", r#"file-create path=C:\Windows\System32\drivers\x.sys disposition=2 process=C:\Windows\System32\TiWorker.exe"#])
        .arg("--json")
        .assert()
        .success();
    let l = json_lines(&a.get_output().stdout);
    assert_eq!(l[0]["vetoed"][0]["rule_id"], 700);
    assert_eq!(l[0]["vetoed"][0]["exception"], 0);
    assert_eq!(l[0]["event"]["type"], "file-create");
    assert_eq!(l[0]["json_version"], 1);
}

#[test]
fn per_event_expectations_summary_and_exit_code() {
    let d = tempfile::tempdir().unwrap();
    let f = compile(d.path(), "drivers", DRIVERS);
    let ev = write(
        d.path(),
        "ev.jsonl",
        concat!(
            r#"{"event":"file-create","path":"C:\\Windows\\System32\\drivers\\a.sys","disposition":2,"expect":"block"}"#,
            "\n",
            r#"{"event":"file-create","path":"C:\\Windows\\notepad.exe","expect":"pass"}"#,
            "\n",
            r#"{"event":"file-create","path":"C:\\Windows\\System32\\drivers\\b.sys","disposition":1,"expect":"block"}"#,
            "\n"
        ),
    );
    let a = ctl()
        .arg("test")
        .arg(&f)
        .arg("--events")
        .arg(&ev)
        .assert()
        .code(1);
    let out = String::from_utf8_lossy(&a.get_output().stdout).into_owned();
    assert!(out.contains("<-- UNEXPECTED (expected block)"), "{out}");
    assert!(
        out.contains("3 events, 3 with an expectation, 2 as expected, 1 unexpected"),
        "{out}"
    );
    let a = ctl()
        .arg("test")
        .arg(&f)
        .arg("--events")
        .arg(&ev)
        .arg("--json")
        .assert()
        .code(1);
    let l = json_lines(&a.get_output().stdout);
    assert_eq!(l[3]["summary"]["unexpected"], 1);
    assert_eq!(l[2]["ok"], false);
    // An empty events file is 0 events, not a usage error.
    let empty = write(d.path(), "empty.jsonl", "\n");
    ctl()
        .arg("test")
        .arg(&f)
        .arg("--events")
        .arg(&empty)
        .assert()
        .success()
        .stdout(contains("0 events"));
}

#[test]
fn event_parsing_is_strict() {
    let d = tempfile::tempdir().unwrap();
    let f = compile(d.path(), "drivers", DRIVERS);
    for (line, msg) in [
        (
            r#"{"event":"file-create","path":5}"#,
            "field `path`: expected a string",
        ),
        (
            r#"{"event":"file-create","path":"a","path":"b"}"#,
            "field `path` given twice",
        ),
        (
            r#"{"event":"file-create","is-directory":1}"#,
            "expected true or false",
        ),
        (r#"{"event":"file-create","pid":"12"}"#, "expected a number"),
        (
            r#"{"event":"file-create","paht":"x"}"#,
            "did you mean `path`?",
        ),
        (
            r#"{"event":"file-create","expect":"denied"}"#,
            "is not a verdict",
        ),
    ] {
        let ev = write(d.path(), "bad.jsonl", &format!("{line}\n"));
        ctl()
            .arg("test")
            .arg(&f)
            .arg("--events")
            .arg(&ev)
            .assert()
            .code(2)
            .stderr(contains(msg));
    }
    ctl()
        .arg("test")
        .arg(&f)
        .args(["--event", "file-create is-directory=yes"])
        .assert()
        .code(2)
        .stderr(contains("expected true or false"));
}

const LINTED: &str = r#"version = 1
[[rule]]
id = 10
event = "file-create"
action = "block"
match = [{ field = "extension", op = "equals", value = [".locky", "exe"] }]

[[rule]]
id = 11
event = "file-create"
action = "audit"
match = [
  { field = "extension", op = "equals", value = "exe" },
  { field = "path", op = "starts-with", value = "C:/Users/" },
]
except = [[{ field = "extension", op = "equals", value = "dll" }]]

[[rule]]
id = 12
event = "file-create"
action = "audit"
match = [
  { field = "path", op = "starts-with", value = "\\Device\\HarddiskVolume3\\Windows" },
  { field = "parent", op = "equals", value = "Windows\\System32" },
]
"#;

#[test]
fn lints_warn_and_deny_warnings_fails() {
    let d = tempfile::tempdir().unwrap();
    let src = write(d.path(), "l.toml", LINTED);
    let a = ctl()
        .arg("compile")
        .arg(&src)
        .arg("-o")
        .arg(d.path().join("l.fsc"))
        .assert()
        .success();
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    for needle in [
        "l.toml:6:",
        "warning[leading-dot-extension]: rule #0 (id 10): extension \".locky\" never matches",
        "warning[forward-slash]: rule #1 (id 11)",
        "warning[dead-exception]: rule #1 (id 11): except[0] can never veto",
        "warning[shadowed-rule]: rule #1 (id 11): never decides",
        "warning[device-path]: rule #2 (id 12)",
        "warning[unmatchable-pattern]: rule #2 (id 12): parent equals \"Windows\\System32\" never matches",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    ctl()
        .arg("compile")
        .arg(&src)
        .arg("-o")
        .arg(d.path().join("l2.fsc"))
        .arg("--deny-warnings")
        .assert()
        .code(1)
        .stderr(contains("--deny-warnings: nothing written"));
    assert!(!d.path().join("l2.fsc").exists());
    // An empty rule set, and an exception that always holds.
    let e = write(d.path(), "e.toml", "version = 1\n");
    ctl()
        .args(["compile"])
        .arg(&e)
        .arg("-o")
        .arg(d.path().join("e.fsc"))
        .assert()
        .success()
        .stderr(contains("warning[empty-rule-set]"));
    let always = write(
        d.path(),
        "a.toml",
        r#"version = 1
[[rule]]
id = 1
event = "file-create"
action = "block"
match = [{ field = "name", op = "equals", value = "a.txt" }]
except = [[{ field = "name", op = "ends-with", value = ".txt" }]]
"#,
    );
    let a = ctl()
        .arg("compile")
        .arg(&always)
        .arg("-o")
        .arg(d.path().join("a.fsc"))
        .arg("--json")
        .assert()
        .success();
    let j = &json_lines(&a.get_output().stdout)[0];
    assert_eq!(j["warnings"][0]["code"], "dead-exception");
    assert_eq!(j["warnings"][0]["line"], 7);
}

#[test]
fn every_error_of_a_file_in_one_run_with_did_you_mean() {
    let d = tempfile::tempdir().unwrap();
    let src = write(
        d.path(),
        "bad.toml",
        r#"version = 1
[[rule]]
id = 1
event = "file-create"
action = "blok"
match = [
  { field = "extention", op = "equals", value = "exe" },
  { field = "path", op = "startswith", value = "C:\\x" },
]

[[rule]]
id = 2
event = "file-creat"
action = "audit"
match = [{ field = "name", op = "equals", value = "a" }]
"#,
    );
    let a = ctl()
        .arg("compile")
        .arg(&src)
        .arg("-o")
        .arg(d.path().join("b.fsc"))
        .arg("--json")
        .assert()
        .code(1);
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    for needle in [
        "bad.toml:5:10: error[unknown-action]: rule #0 (id 1): unknown action `blok` (did you mean `block`?",
        "bad.toml:7:",
        "did you mean `extension`?",
        "did you mean `starts-with`?",
        "bad.toml:13:9: error[unknown-event-type]: rule #1 (id 2): unknown event type `file-creat` (did you mean `file-create`?",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    let j = &json_lines(&a.get_output().stdout)[0];
    assert_eq!(j["error"]["code"], "invalid-content");
    assert_eq!(j["error"]["diagnostics"].as_array().unwrap().len(), 4);
    assert_eq!(j["json_version"], 1);
    // A misspelt key: TOML's own error, with the suggestion.
    let k = write(
        d.path(),
        "k.toml",
        "version = 1\n[[rule]]\nid = 1\nevent = \"file-create\"\naction = \"audit\"\nmach = []\n",
    );
    ctl()
        .arg("compile")
        .arg(&k)
        .arg("-o")
        .arg(d.path().join("k.fsc"))
        .assert()
        .code(1)
        .stderr(contains("did you mean `match`?"));
}

#[test]
fn validator_errors_point_at_the_toml_line() {
    let d = tempfile::tempdir().unwrap();
    let long = "x".repeat(1100);
    let src = write(
        d.path(),
        "long.toml",
        &format!(
            "version = 1\n\n[[rule]]\nid = 1\nevent = \"file-create\"\naction = \"audit\"\nmatch = [{{ field = \"name\", op = \"equals\", value = \"a\" }}]\n\n[[rule]]\nid = 5\nevent = \"file-create\"\naction = \"audit\"\nmatch = [{{ field = \"name\", op = \"equals\", value = \"{long}\" }}]\n"
        ),
    );
    ctl()
        .arg("compile")
        .arg(&src)
        .arg("-o")
        .arg(d.path().join("long.fsc"))
        .assert()
        .code(1)
        .stderr(contains(
            "line 9, column 1: compiled content fails validation",
        ))
        .stderr(contains("rule #1 (id 5)"));
}

#[test]
fn compile_refuses_to_overwrite_its_source_or_a_non_content_file() {
    let d = tempfile::tempdir().unwrap();
    let src = write(d.path(), "d.toml", DRIVERS);
    ctl()
        .arg("compile")
        .arg(&src)
        .arg("-o")
        .arg(&src)
        .assert()
        .code(1)
        .stderr(contains("refusing to overwrite the source"));
    assert_eq!(std::fs::read_to_string(&src).unwrap(), DRIVERS);
    let notes = write(d.path(), "notes.txt", "important\n");
    ctl()
        .arg("compile")
        .arg(&src)
        .arg("-o")
        .arg(&notes)
        .arg("--json")
        .assert()
        .code(1)
        .stdout(contains("\"code\":\"would-overwrite\""));
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "important\n");
    // Existing content is replaced; --force overrides the refusal.
    let out = d.path().join("d.fsc");
    for _ in 0..2 {
        ctl()
            .arg("compile")
            .arg(&src)
            .arg("-o")
            .arg(&out)
            .assert()
            .success();
    }
    ctl()
        .arg("compile")
        .arg(&src)
        .arg("-o")
        .arg(&notes)
        .arg("--force")
        .assert()
        .success();
}

#[test]
fn diff_lists_added_removed_changed_and_moved_rules() {
    let d = tempfile::tempdir().unwrap();
    let old = compile(
        d.path(),
        "old",
        r#"version = 1
[[rule]]
id = 1
event = "file-create"
action = "audit"
match = [{ field = "extension", op = "equals", value = "exe" }]
[[rule]]
id = 2
event = "file-create"
action = "block"
match = [{ field = "extension", op = "equals", value = "locky" }]
[[rule]]
id = 3
event = "file-create"
action = "audit"
match = [{ field = "name", op = "equals", value = "x" }]
"#,
    );
    let new = compile(
        d.path(),
        "new",
        r#"version = 2
[[rule]]
id = 2
event = "file-create"
action = "block"
match = [{ field = "extension", op = "equals", value = ["locky", "wncry"] }]
[[rule]]
id = 1
event = "file-create"
action = "audit"
match = [{ field = "extension", op = "equals", value = "exe" }]
[[rule]]
id = 4
event = "file-set-info"
action = "block"
match = [{ field = "is-delete", op = "is-true" }]
"#,
    );
    let a = ctl().arg("diff").arg(&old).arg(&new).assert().code(1);
    let out = String::from_utf8_lossy(&a.get_output().stdout).into_owned();
    for needle in [
        "added   rule #2 (id 4)",
        "+ block on file-set-info",
        "removed rule #2 (id 3)",
        "changed rule #1 -> #0 (id 2)",
        "- match extension equals \"locky\"",
        "+ match extension equals [\"locky\", \"wncry\"]",
        "moved   rule id 2: #1 -> #0",
        "1 added, 1 removed, 1 changed, 2 moved",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    let a = ctl()
        .arg("diff")
        .arg(&old)
        .arg(&old)
        .arg("--json")
        .assert()
        .success();
    let j = &json_lines(&a.get_output().stdout)[0];
    assert_eq!(j["differs"], false);
}

#[test]
fn inspect_json_gives_values_as_data() {
    let d = tempfile::tempdir().unwrap();
    let f = compile(d.path(), "drivers", DRIVERS);
    let a = ctl()
        .arg("inspect")
        .arg(&f)
        .arg("--json")
        .assert()
        .success();
    let j = &json_lines(&a.get_output().stdout)[0];
    let m = &j["rules"][0]["match"];
    assert_eq!(m[0]["values"][0], "C:\\Windows\\System32\\drivers\\*.sys");
    assert_eq!(m[1]["values"], serde_json::json!([2, 5]));
    assert_eq!(j["json_version"], 1);
}

#[test]
fn version_completions_man_and_colour() {
    ctl()
        .arg("--version")
        .assert()
        .success()
        .stdout(contains("content format v1, event schema v1, JSON v1"));
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        ctl()
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(contains("failsafectl"));
    }
    ctl()
        .arg("man")
        .assert()
        .success()
        .stdout(contains(".TH failsafectl"));
    // Not a terminal (a pipe): no escape sequences, whatever NO_COLOR says.
    let d = tempfile::tempdir().unwrap();
    let src = write(d.path(), "l.toml", LINTED);
    let a = ctl()
        .arg("compile")
        .arg(&src)
        .arg("-o")
        .arg(d.path().join("l.fsc"))
        .assert()
        .success();
    assert!(!a.get_output().stderr.contains(&0x1b));
    // Usage errors under --json are JSON.
    ctl()
        .args(["diff", "--json"])
        .assert()
        .code(2)
        .stdout(contains("\"code\":\"usage\""));
}

/// Sigma rules written for this test (none copied from a public rule set), covering every
/// supported modifier and condition form, and the unsupported ones.
const SIGMA: &[(&str, &str)] = &[
    (
        "plain.yml",
        r#"title: Driver dropped into System32\drivers
id: 11111111-0000-0000-0000-000000000001
status: test
level: high
logsource:
    product: windows
    category: file_event
detection:
    selection:
        TargetFilename|startswith: 'C:\Windows\System32\drivers\'
        TargetFilename|endswith: '.sys'
        Image|endswith:
            - '\powershell.exe'
            - '\cmd.exe'
    condition: selection
"#,
    ),
    (
        "of.yml",
        r#"title: Script in Startup or Temp
id: 11111111-0000-0000-0000-000000000002
level: medium
logsource:
    product: windows
    category: file_event
detection:
    selection_startup:
        TargetFilename|contains: '\Start Menu\Programs\Startup\'
    selection_temp:
        TargetFilename|contains|all:
            - '\AppData\Local\Temp\'
            - '.ps1'
    filter_main_defender:
        Image|startswith: 'C:\ProgramData\Microsoft\Windows Defender\'
    filter_optional_vscode:
        Image|endswith: '\Code.exe'
        ProcessId: 1234
    condition: 1 of selection_* and not 1 of filter_*
"#,
    ),
    (
        "wild.yml",
        r#"title: Wildcards, escapes, neq, all of, brackets
id: 11111111-0000-0000-0000-000000000003
level: low
logsource:
    product: windows
    category: file_delete
detection:
    sel_a:
        TargetFilename: 'C:\Users\\*\Documents\\*.docx'
    sel_b:
        TargetFilename|endswith: '.docx'
        Image|neq: 'C:\Program Files\Microsoft Office\root\Office16\WINWORD.EXE'
    filter:
        - Image: 'C:\Windows\explorer.exe'
        - Image|endswith: '\OneDrive.exe'
    condition: (all of sel_*) and not filter
"#,
    ),
    (
        "rename.yml",
        r#"title: Rename to a ransomware extension
id: 11111111-0000-0000-0000-000000000004
level: critical
logsource:
    product: windows
    category: file_rename
detection:
    selection:
        SourceFilename|contains: '\Users\'
        TargetFilename|endswith:
            - '.locky'
            - '.wncry'
    condition: selection
"#,
    ),
    (
        "access.yml",
        r#"title: Credential file read
id: 11111111-0000-0000-0000-000000000005
level: medium
logsource:
    product: windows
    category: file_access
detection:
    selection:
        FileName|endswith: '\Microsoft\Protect\CREDHIST'
    selection_or:
        - FileName|contains: '\Credentials\'
    condition: selection or selection_or
"#,
    ),
    (
        "unsupported.yml",
        r#"title: Everything Failsafe cannot express
id: 11111111-0000-0000-0000-000000000006
level: high
logsource:
    product: windows
    category: file_event
detection:
    selection:
        TargetFilename|re: '.*\.exe$'
        CommandLine|contains: 'x'
        ParentImage|endswith: '\winword.exe'
        Image|fieldref: ParentImage
    condition: selection
"#,
    ),
    (
        "keywords.yml",
        r#"title: Keywords
id: 11111111-0000-0000-0000-000000000007
logsource:
    product: windows
    category: file_event
detection:
    keywords:
        - 'mimikatz'
    condition: keywords
---
title: Another category
logsource:
    product: windows
    category: process_creation
detection:
    selection:
        Image|endswith: '\\x.exe'
    condition: selection
"#,
    ),
    (
        "negonly.yml",
        r#"title: Only a filter
id: 11111111-0000-0000-0000-000000000008
logsource:
    product: windows
    category: file_event
detection:
    filter:
        Image|endswith: '\a.exe'
    condition: not filter
"#,
    ),
];

#[test]
fn import_sigma_converts_what_it_can_and_reports_the_rest_per_rule() {
    let d = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = SIGMA.iter().map(|(n, t)| write(d.path(), n, t)).collect();
    let out = d.path().join("sigma.toml");
    let a = ctl()
        .args(["import", "sigma"])
        .args(&files)
        .arg("-o")
        .arg(&out)
        .args(["--action", "block", "--first-id", "500"])
        .assert()
        .code(1);
    let text = String::from_utf8_lossy(&a.get_output().stdout).into_owned();
    for needle in [
        "imported      ",
        "plain.yml: Driver dropped into System32\\drivers -> rule id 500",
        "of.yml: Script in Startup or Temp -> rule id 501, 502",
        "access.yml: Credential file read -> rule id 505, 506",
        "NOT imported  ",
        "modifier `|re` (on TargetFilename) is not supported",
        "field `CommandLine` has no Failsafe equivalent",
        "field `ParentImage` has no Failsafe equivalent",
        "modifier `|fieldref` (on Image) is not supported",
        "`keywords` is a keyword list",
        "logsource category `process_creation` is not a file category",
        "no positive selection",
        "5 of 9 Sigma rules imported fully (7 Failsafe rules)",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    let toml = std::fs::read_to_string(&out).unwrap();
    for needle in [
        // file_event: creating dispositions; startswith/endswith; a value list is OR.
        r#"{ field = "disposition", op = "equals", value = [0, 2, 3, 4, 5] }"#,
        r#"{ field = "path", op = "starts-with", value = 'C:\Windows\System32\drivers\' }"#,
        r#"{ field = "process", op = "ends-with", value = ['\powershell.exe', '\cmd.exe'] }"#,
        r#"sigma-id = "11111111-0000-0000-0000-000000000001", level = "high""#,
        // |all: one criterion per value; 1 of filter_*: one exception set each.
        r#"{ field = "path", op = "contains", value = ".ps1" }"#,
        r#"[{ field = "process", op = "ends-with", value = '\Code.exe' }, { field = "pid", op = "equals", value = 1234 }],"#,
        // Escaped backslash before a wildcard; neq; a list of maps in a filter.
        r#"{ field = "path", op = "wildcard", value = 'C:\Users\*\Documents\*.docx' }"#,
        r#"{ field = "process", op = "equals", value = 'C:\Program Files\Microsoft Office\root\Office16\WINWORD.EXE', negate = true }"#,
        r#"[{ field = "process", op = "equals", value = 'C:\Windows\explorer.exe' }],"#,
        r#"{ field = "is-delete", op = "is-true" }"#,
        // Renames: SourceFilename is the path, TargetFilename the target.
        r#"{ field = "target-path", op = "ends-with", value = [".locky", ".wncry"] }"#,
        r#"action = "block""#,
    ] {
        assert!(toml.contains(needle), "missing {needle} in:\n{toml}");
    }
    // Nothing of the unsupported rules was half-imported.
    assert!(!toml.contains("Everything Failsafe cannot express"));
    // The output compiles, and the imported rule blocks what the Sigma rule describes.
    let fsc = d.path().join("sigma.fsc");
    ctl()
        .arg("compile")
        .arg(&out)
        .arg("-o")
        .arg(&fsc)
        .assert()
        .success();
    ctl()
        .arg("test")
        .arg(&fsc)
        .args(["--event", r#"file-create path=\Device\HarddiskVolume3\Windows\System32\drivers\x.sys process=C:\Windows\System32\cmd.exe disposition=2"#])
        .args(["--expect", "block"])
        .assert()
        .success();
    // Refuses to overwrite without --force; JSON report.
    ctl()
        .args(["import", "sigma"])
        .arg(&files[0])
        .arg("-o")
        .arg(&out)
        .assert()
        .code(1)
        .stderr(contains("refusing to overwrite"));
    let a = ctl()
        .args(["import", "sigma"])
        .args(&files)
        .arg("-o")
        .arg(&out)
        .args(["--force", "--json"])
        .assert()
        .code(1);
    let j = &json_lines(&a.get_output().stdout)[0];
    assert_eq!(j["imported"], 5);
    assert_eq!(j["not_imported"], 4);
}

/// Many warnings of one kind (a generated source in device form): the first 20 are
/// printed with their place, the rest counted in one line; `--json` lists every one.
#[test]
fn repeated_warnings_are_counted_after_twenty_and_json_keeps_all() {
    let d = tempfile::tempdir().unwrap();
    let mut text = String::from("version = 1\n");
    for i in 0..25 {
        text.push_str(&format!(
            "[[rule]]\nid = {i}\nevent = \"file-create\"\naction = \"audit\"\nmatch = [{{ field = \"path\", op = \"starts-with\", value = \"\\\\Device\\\\HarddiskVolume3\\\\d{i}\\\\\" }}]\n"
        ));
    }
    let src = write(d.path(), "many.toml", &text);
    let a = ctl()
        .arg("compile")
        .arg(&src)
        .arg("-o")
        .arg(d.path().join("many.fsc"))
        .assert()
        .success();
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert_eq!(
        err.matches("warning[device-path]: rule #").count(),
        20,
        "{err}"
    );
    assert!(
        err.contains("warning[device-path]: rule #19 (id 19)"),
        "{err}"
    );
    assert!(!err.contains("rule #20 (id 20)"), "{err}");
    assert!(
        err.contains(
            "many.toml: 5 more warning[device-path] not shown (25 in all; --json lists every one)"
        ),
        "{err}"
    );
    let j = ctl()
        .arg("compile")
        .arg(&src)
        .arg("-o")
        .arg(d.path().join("many2.fsc"))
        .arg("--json")
        .assert()
        .success();
    let v = json_lines(&j.get_output().stdout);
    let warnings = v[0]["warnings"].as_array().unwrap();
    assert_eq!(
        warnings
            .iter()
            .filter(|w| w["code"] == "device-path")
            .count(),
        25
    );
}
