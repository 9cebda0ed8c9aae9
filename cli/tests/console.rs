//! The responder's console across real processes (issue 15, items 4-11): store checks,
//! the store lock under concurrent writers, confirmations and dry runs, errors a
//! responder can act on, an unreadable record and its rebuild, starts the record does not
//! show, the health check's canary, write filters, and the drill's self-check.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use assert_cmd::Command;
use failsafe_loader::state::record::decode_record;
use failsafe_loader::state::{Loaded, Phase, QuarantineReason, State};
use predicates::str::contains;
use serde_json::Value;

fn ctl() -> Command {
    Command::cargo_bin("failsafectl").unwrap()
}

fn exe() -> PathBuf {
    assert_cmd::cargo::cargo_bin("failsafectl")
}

fn json_of(out: &[u8]) -> Value {
    serde_json::from_slice(out)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(out)))
}

fn first_json(out: &[u8]) -> Value {
    let text = String::from_utf8_lossy(out);
    serde_json::from_str(text.lines().next().unwrap_or("")).unwrap()
}

/// The development key the tests sign with, generated once per test run by `failsafectl
/// keygen` (outside every store); boots trust its public half as a test key with test
/// signing on, as a test machine's driver does.
fn dev_key() -> &'static (PathBuf, PathBuf) {
    static KEY: std::sync::OnceLock<(PathBuf, PathBuf)> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let key = dir.join("dev.key");
        ctl().arg("keygen").arg("-o").arg(&key).assert().success();
        (key.clone(), key.with_extension("pub"))
    })
}

/// The keys the boots trust, for the commands that preview the next start.
fn host_keys() -> [std::ffi::OsString; 3] {
    [
        "--test-signing".into(),
        "--test-key".into(),
        dev_key().1.clone().into_os_string(),
    ]
}

/// A store with content versions compiled from the sample and signed with [`dev_key`]
/// (`bad`: garbage files).
fn store_with(dir: &Path, good: &[u64], bad: &[u64]) {
    std::fs::create_dir_all(dir.join("content")).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../content/sample.toml");
    for v in good {
        ctl()
            .arg("compile")
            .arg(&src)
            .arg("-o")
            .arg(dir.join("content").join(format!("{v}.fsc")))
            .args(["--version", &v.to_string()])
            .arg("--sign")
            .arg(&dev_key().0)
            .assert()
            .success();
    }
    for v in bad {
        std::fs::write(
            dir.join("content").join(format!("{v}.fsc")),
            b"\x89FSC\r\n\x1a\nnot content",
        )
        .unwrap();
    }
}

fn boot(dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(exe())
        .args(["boot", "--json", "--healthy-after", "0", "--store"])
        .arg(dir)
        .arg("--test-signing")
        .arg("--test-key")
        .arg(&dev_key().1)
        .args(args)
        .output()
        .unwrap()
}

fn state(dir: &Path) -> State {
    match decode_record(&std::fs::read(dir.join("state.bin")).unwrap()) {
        Loaded::Ok(s) => s.state,
        other => panic!("record not valid: {other:?}"),
    }
}

/// v1 healthy, then v2 crash-loops until quarantined.
fn crash_looped(dir: &Path) {
    store_with(dir, &[1], &[]);
    assert!(boot(dir, &["--then", "healthy"]).status.success());
    store_with(dir, &[2], &[]);
    for _ in 0..3 {
        assert!(!boot(dir, &["--then", "crash"]).status.success());
    }
    assert!(boot(dir, &["--then", "clean-shutdown"]).status.success());
    let q = *state(dir).quarantined(2).unwrap();
    assert_eq!((q.reason, q.detail), (QuarantineReason::CrashLoop, 3));
}

// ---- Item 6: a mistyped store.

#[test]
fn a_missing_store_is_refused_unless_init() {
    let d = tempfile::tempdir().unwrap();
    let typo = d.path().join("typo");
    let abs = std::path::absolute(&typo).unwrap();
    ctl()
        .arg("status")
        .arg("--store")
        .arg(&typo)
        .assert()
        .code(2)
        .stderr(contains(format!(
            "no store at {} (no such directory)",
            abs.display()
        )));
    let a = ctl()
        .args(["recover", "force-safe-mode", "on", "--json", "--store"])
        .arg(&typo)
        .assert()
        .code(2);
    let j = json_of(&a.get_output().stdout);
    assert_eq!(j["error"]["code"], "store-missing");
    assert_eq!(j["error"]["exit"], 2);
    assert!(!typo.exists(), "nothing was created");
    // An existing directory that is not a store.
    std::fs::create_dir(&typo).unwrap();
    ctl()
        .args(["boot", "--store"])
        .arg(&typo)
        .assert()
        .code(2)
        .stderr(contains("is not a Failsafe store"));
    // --init creates it; every command prints the absolute store path.
    ctl()
        .args(["recover", "force-safe-mode", "on", "--init", "--store"])
        .arg(&typo)
        .assert()
        .success()
        .stdout(contains(format!("store: {}", abs.display())))
        .stdout(contains("next start: safe mode (force-safe-mode)"));
    ctl()
        .arg("status")
        .arg("--store")
        .arg(&typo)
        .assert()
        .success()
        .stdout(contains(format!("store: {}", abs.display())));
}

// ---- Item 7: the store lock.

#[test]
fn concurrent_writers_lose_no_update() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    store_with(dir, &[1], &[2, 3, 4, 5, 6, 7, 8, 9]);
    assert!(boot(dir, &["--then", "clean-shutdown"]).status.success());
    let s = state(dir);
    for v in 2..=9 {
        assert_eq!(s.quarantined(v).unwrap().reason, QuarantineReason::Invalid);
    }
    for round in 0..3 {
        // Eight responders release eight versions at once, while starts run.
        let mut kids: Vec<_> = (2..=9)
            .map(|v| {
                std::process::Command::new(exe())
                    .args(["recover", "unquarantine", &format!("v{v}"), "--store"])
                    .arg(dir)
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for _ in 0..2 {
            kids.push(
                std::process::Command::new(exe())
                    .args(["recover", "force-safe-mode", "on", "--store"])
                    .arg(dir)
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap(),
            );
        }
        for k in kids {
            let o = k.wait_with_output().unwrap();
            assert!(
                o.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        let s = state(dir);
        for v in 2..=9 {
            assert!(
                s.quarantined(v).is_none(),
                "round {round}: v{v} release lost"
            );
        }
        assert!(s.force_safe);
        // Quarantine them again for the next round.
        ctl()
            .args(["recover", "force-safe-mode", "off", "--store"])
            .arg(dir)
            .assert()
            .success();
        assert!(boot(dir, &["--then", "clean-shutdown"]).status.success());
    }
    // Concurrent stages of different versions all land.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../content/sample.toml");
    let files: Vec<PathBuf> = (20..26)
        .map(|v| {
            let f = dir.join(format!("in{v}.fsc"));
            ctl()
                .arg("compile")
                .arg(&src)
                .arg("-o")
                .arg(&f)
                .args(["--version", &v.to_string()])
                .assert()
                .success();
            f
        })
        .collect();
    let kids: Vec<_> = files
        .iter()
        .map(|f| {
            std::process::Command::new(exe())
                .arg("stage")
                .arg(f)
                // Unsigned: the test is of the lock, not of trust.
                .args(["--force", "--keep", "20", "--allow-untrusted", "--store"])
                .arg(dir)
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for k in kids {
        assert!(k.wait_with_output().unwrap().status.success());
    }
    for v in 20..26 {
        assert!(dir.join("content").join(format!("{v}.fsc")).exists());
    }
}

// ---- Item 8: confirmations and dry runs.

#[test]
fn releasing_a_crash_loop_needs_yes_and_dry_run_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    crash_looped(dir);
    let before = std::fs::read(dir.join("state.bin")).unwrap();
    ctl()
        .args(["recover", "unquarantine", "v2", "--store"])
        .arg(dir)
        .args(host_keys())
        .assert()
        .code(1)
        .stderr(contains("refused without --yes"))
        .stderr(contains(
            "v2 was quarantined at boot 5 after 3 unclean starts",
        ))
        .stderr(contains(
            "next start would be: normal mode (newest-content): tries v2, start 1 of 3",
        ));
    let a = ctl()
        .args(["recover", "reset", "--json", "--store"])
        .arg(dir)
        .assert()
        .code(1);
    assert_eq!(
        json_of(&a.get_output().stdout)["error"]["code"],
        "needs-confirmation"
    );
    for action in [
        &["unquarantine", "2"][..],
        &["reset"],
        &["force-safe-mode", "on"],
    ] {
        ctl()
            .arg("recover")
            .args(action)
            .args(["--dry-run", "--store"])
            .arg(dir)
            .assert()
            .success()
            .stdout(contains("dry run: would"))
            .stdout(contains("nothing was written"));
    }
    assert_eq!(std::fs::read(dir.join("state.bin")).unwrap(), before);
    let f = dir.join("content").join("2.fsc");
    ctl()
        .arg("stage")
        .arg(&f)
        .args(["--force", "--dry-run", "--store"])
        .arg(dir)
        .assert()
        .success()
        .stdout(contains("dry run: would stage version 2"));
    assert_eq!(std::fs::read(dir.join("state.bin")).unwrap(), before);
    ctl()
        .args(["recover", "unquarantine", "v2", "--yes", "--store"])
        .arg(dir)
        .assert()
        .success()
        .stdout(contains("version 2 released from quarantine"));
    assert!(state(dir).quarantined(2).is_none());
    // An invalid-content quarantine is released without --yes (it is never activated).
    let d2 = tempfile::tempdir().unwrap();
    store_with(d2.path(), &[1], &[2]);
    assert!(
        boot(d2.path(), &["--then", "clean-shutdown"])
            .status
            .success()
    );
    ctl()
        .args(["recover", "unquarantine", "2", "--store"])
        .arg(d2.path())
        .assert()
        .success()
        .stdout(contains("rejects it and quarantines it again"));
}

// ---- Item 9: errors a responder can act on.

#[test]
fn errors_name_the_problem() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    crash_looped(dir);
    ctl()
        .args(["recover", "unquarantine", "v99", "--store"])
        .arg(dir)
        .assert()
        .code(1)
        .stderr(contains("version 99 does not exist"));
    ctl()
        .args(["recover", "unquarantine", "1", "--store"])
        .arg(dir)
        .assert()
        .code(1)
        .stderr(contains("version 1 is not quarantined (quarantined: [2])"));
    let a = ctl()
        .args(["recover", "unquarantine", "99", "--json", "--store"])
        .arg(dir)
        .assert()
        .code(1);
    let j = json_of(&a.get_output().stdout);
    assert_eq!(j["error"]["code"], "no-such-version");
    let a = ctl()
        .args(["recover", "unquarantine", "x2", "--json", "--store"])
        .arg(dir)
        .assert()
        .code(2);
    assert_eq!(json_of(&a.get_output().stdout)["error"]["code"], "usage");
    // An OS error in words: a full disk at start.
    let o = boot(dir, &["--then", "clean-shutdown", "--fail-writes"]);
    assert!(o.status.success());
    let j = first_json(&o.stdout);
    assert_eq!(j["reason"], "state-unwritable");
    assert_eq!(j["persist_error"], "No space left on device (os error 28)");
}

// ---- Items 4 and 5: an unreadable record; a start the record does not show.

#[test]
fn an_unreadable_record_is_unknown_and_can_be_rebuilt() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    crash_looped(dir);
    // Unreadable (root reads through permissions, so: a directory where the file was).
    std::fs::remove_file(dir.join("state.bin")).unwrap();
    std::fs::create_dir(dir.join("state.bin")).unwrap();
    ctl()
        .arg("status")
        .arg("--store")
        .arg(dir)
        .assert()
        .code(3)
        .stdout(contains(
            "state record: UNKNOWN: it cannot be read (Is a directory (os error 21))",
        ))
        .stdout(contains("next start: safe mode (state-unreadable)"))
        .stdout(contains("last-known-good:").not())
        .stdout(contains("quarantined:").not());
    let a = ctl()
        .args(["status", "--json", "--store"])
        .arg(dir)
        .assert()
        .code(3);
    let j = json_of(&a.get_output().stdout);
    assert_eq!(j["state"]["record"], "unknown");
    assert_eq!(j["state"]["error"], "Is a directory (os error 21)");
    assert!(j["state"].get("quarantine").is_none());
    ctl()
        .args(["recover", "reset", "--yes", "--store"])
        .arg(dir)
        .assert()
        .code(3)
        .stderr(contains("recover rebuild"));
    ctl()
        .args(["recover", "rebuild", "--store"])
        .arg(dir)
        .assert()
        .code(1)
        .stderr(contains("refused without --yes"));
    ctl()
        .args(["recover", "rebuild", "--yes", "--store"])
        .arg(dir)
        .args(host_keys())
        .assert()
        .success()
        .stdout(contains("state record rebuilt"))
        .stdout(contains("old record kept as"))
        .stdout(contains(
            "next start: normal mode (newest-content): tries v2, start 3 of 3",
        ));
    let s = state(dir);
    assert_eq!((s.attempts(1), s.attempts(2), s.lkg), (2, 2, None));
    // One more crash of v2 quarantines it; v1 runs.
    assert!(!boot(dir, &["--then", "crash"]).status.success());
    let o = boot(dir, &["--then", "healthy"]);
    let j = first_json(&o.stdout);
    assert_eq!(
        (j["version"].as_u64(), j["reason"].as_str()),
        (Some(1), Some("newer-quarantined"))
    );
    ctl()
        .args(["recover", "rebuild", "--yes", "--store"])
        .arg(dir)
        .assert()
        .code(1)
        .stderr(contains("is readable"));
}

use predicates::prelude::PredicateBooleanExt;

#[test]
fn status_shows_a_start_that_ran_without_content() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    store_with(dir, &[1], &[]);
    assert!(boot(dir, &["--then", "healthy"]).status.success());
    assert!(
        boot(dir, &["--then", "clean-shutdown", "--fail-writes"])
            .status
            .success()
    );
    ctl()
        .arg("status")
        .arg("--store")
        .arg(dir)
        .assert()
        .success()
        .stdout(contains("last start:          boot 2: safe mode (state-unwritable), content none"))
        .stdout(contains("that start ran WITHOUT CONTENT: the state record could not be written (No space left on device (os error 28))"));
    let a = ctl()
        .args(["status", "--json", "--store"])
        .arg(dir)
        .assert()
        .success();
    let j = json_of(&a.get_output().stdout);
    assert_eq!(j["last_start"]["reason"], "state-unwritable");
    assert_eq!(j["last_start"]["record_written"], false);
    // The next good start supersedes the warning.
    assert!(boot(dir, &["--then", "clean-shutdown"]).status.success());
    ctl()
        .arg("status")
        .arg("--store")
        .arg(dir)
        .assert()
        .success()
        .stdout(contains("WITHOUT CONTENT").not());
}

#[test]
fn a_write_filter_is_reported() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    store_with(dir, &[1], &[]);
    let o = boot(dir, &["--then", "clean-shutdown", "--write-filter"]);
    assert_eq!(first_json(&o.stdout)["writes_may_not_persist"], true);
    ctl()
        .arg("status")
        .arg("--store")
        .arg(dir)
        .assert()
        .success()
        .stdout(contains("write filter (UWF or similar)"));
    let a = ctl()
        .args(["status", "--json", "--store"])
        .arg(dir)
        .assert()
        .success();
    let j = json_of(&a.get_output().stdout);
    assert_eq!(j["state"]["last_decision"]["writes_may_not_persist"], true);
}

// ---- The health signal.

#[test]
fn a_hang_never_ends_healthy() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    store_with(dir, &[1], &[]);
    let mut child = std::process::Command::new(exe())
        .args([
            "boot",
            "--json",
            "--healthy-after",
            "0",
            "--then",
            "hang",
            "--store",
        ])
        .arg(dir)
        .arg("--test-signing")
        .arg("--test-key")
        .arg(&dev_key().1)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut r = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert_eq!(serde_json::from_str::<Value>(&line).unwrap()["version"], 1);
    line.clear();
    r.read_line(&mut line).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&line).unwrap()["health"],
        "checking"
    );
    // Uptime is long past; the health check is blocked on its canary.
    std::thread::sleep(std::time::Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    let s = state(dir);
    assert_eq!(s.attempt.unwrap().phase, Phase::InProgress);
    assert_eq!((s.lkg, s.health), (None, None));
    // The next start charges it.
    assert!(boot(dir, &["--then", "clean-shutdown"]).status.success());
    assert_eq!(state(dir).attempts(1), 1);
}

#[test]
fn a_failed_canary_is_recorded_and_not_healthy() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    store_with(dir, &[1], &[]);
    std::fs::create_dir(dir.join(".canary")).unwrap(); // the canary's create fails
    let o = boot(dir, &["--then", "healthy"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains(r#""passed":false"#), "{out}");
    assert!(
        out.contains("NOT healthy (canary Is a directory (os error 21))"),
        "{out}"
    );
    let s = state(dir);
    let h = s.health.unwrap();
    assert!(!h.passed && h.canary.is_err());
    assert_eq!(s.lkg, None);
    assert_eq!(s.attempt.unwrap().phase, Phase::Clean);
    ctl()
        .arg("status")
        .arg("--store")
        .arg(dir)
        .assert()
        .success()
        .stdout(contains(
            "canary FAILED (Is a directory (os error 21)): not healthy",
        ));
    std::fs::remove_dir(dir.join(".canary")).unwrap();
    let o = boot(dir, &["--then", "healthy"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("healthy, then clean shutdown"));
    assert_eq!(state(dir).lkg.map(|l| l.version), Some(1));
}

// ---- Item 10: the drill checks itself.

#[test]
fn the_drill_fails_on_a_different_timeline() {
    let a = ctl().args(["drill", "1", "--json"]).assert().success();
    let j = json_of(&a.get_output().stdout);
    assert_eq!(
        (j["ok"].as_bool(), j["mismatches"].as_u64()),
        (Some(true), Some(0))
    );
    // Threshold 4: v2 is still tried at boot 5, where the scenario expects the fallback.
    let a = ctl()
        .args(["drill", "1", "--threshold", "4", "--json"])
        .assert()
        .code(1)
        .stderr(contains("2 boot(s) differ"));
    let j = json_of(&a.get_output().stdout);
    assert_eq!(j["ok"], false);
    let rows: Vec<&Value> = j["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["ok"] == false)
        .collect();
    assert_eq!(rows[0]["boot"], 5);
    assert_eq!(rows[0]["expected"]["version"], 1);
    assert_eq!(rows[0]["version"], 2);
    ctl()
        .args(["drill", "1", "--threshold", "4"])
        .assert()
        .code(1)
        .stdout(contains(
            "!! expected v1 fallback newer-quarantined healthy",
        ));
}

/// `recover` (but `rebuild`) on a record whose two slots are both invalid changes nothing
/// and exits 3 (docs/cli.md, exit codes); `status` shows it as lost and exits 0.
#[test]
fn recover_on_a_corrupt_record_exits_3() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    store_with(dir, &[1], &[]);
    let junk = vec![0x5Au8; 4096];
    std::fs::write(dir.join("state.bin"), &junk).unwrap();
    for action in [
        &["reset"][..],
        &["force-safe-mode", "on"],
        &["unquarantine", "1"],
    ] {
        let a = ctl()
            .arg("recover")
            .args(action)
            .args(["--json", "--store"])
            .arg(dir)
            .assert()
            .code(3)
            .stderr(contains("both slots invalid"));
        assert_eq!(
            json_of(&a.get_output().stdout)["error"]["code"],
            "state-unknown"
        );
    }
    assert_eq!(std::fs::read(dir.join("state.bin")).unwrap(), junk);
    ctl()
        .args(["status", "--store"])
        .arg(dir)
        .assert()
        .success()
        .stdout(contains("state record: lost (both slots invalid)"));
}

/// A version rolled back by the operator is released without `--yes` (docs/cli.md).
#[test]
fn unquarantine_of_a_rolled_back_version_needs_no_yes() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    store_with(dir, &[1], &[]);
    ctl()
        .args(["recover", "force-safe-mode", "off", "--store"])
        .arg(dir)
        .assert()
        .success();
    let mut s = state(dir);
    s.quarantine[0] = Some(failsafe_loader::state::QEntry {
        ver: failsafe_loader::state::Ver {
            version: 1,
            digest: [1; 32],
        },
        reason: QuarantineReason::RolledBack,
        detail: 0,
        boot: 1,
    });
    let slot = failsafe_loader::state::record::encode_slot(&s, 50);
    std::fs::write(dir.join("state.bin"), [slot, [0; 2048]].concat()).unwrap();
    ctl()
        .args(["recover", "unquarantine", "1", "--store"])
        .arg(dir)
        .assert()
        .success()
        .stdout(contains("version 1 released from quarantine"));
    assert!(state(dir).quarantined(1).is_none());
}

/// A first start on a full disk (a real one: a 256 KiB tmpfs in a private mount namespace,
/// filled up after the content was put there) runs without content (`state-unwritable`),
/// leaves no temporary file, and leaves a trace: in a store whose content was staged, the
/// start report (room for it was made by `stage`); in one whose content was copied in by
/// hand, `status` says that whether any start ran cannot be known.
#[cfg(target_os = "linux")]
#[test]
fn a_first_start_on_a_full_disk_leaves_a_trace() {
    let d = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../content/sample.toml");
    let content = d.path().join("1.fsc");
    ctl()
        .arg("compile")
        .arg(&src)
        .arg("-o")
        .arg(&content)
        .args(["--version", "1", "--sign"])
        .arg(&dev_key().0)
        .assert()
        .success();
    let (mnt, out) = (d.path().join("mnt"), d.path().join("out"));
    std::fs::create_dir_all(&mnt).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let script = r#"set -e
mount -t tmpfs -o size=256k tmpfs "$MNT"
"$CTL" stage "$CONTENT" --store "$MNT/a" --init > "$OUT/a.stage"
mkdir -p "$MNT/b/content"
cp "$CONTENT" "$MNT/b/content/1.fsc"
dd if=/dev/zero of="$MNT/fill" bs=4k > /dev/null 2>&1 || true
for s in a b; do
  "$CTL" boot --store "$MNT/$s" --json --test-signing --test-key "$KEY" > "$OUT/$s.boot" 2>&1 || true
  ls -A "$MNT/$s" > "$OUT/$s.ls"
  "$CTL" status --store "$MNT/$s" --json > "$OUT/$s.json" 2> /dev/null || true
  "$CTL" status --store "$MNT/$s" > "$OUT/$s.txt" 2>&1 || true
done
"#;
    // A private mount namespace (and user namespace, so it works without root too): the
    // tmpfs disappears with the script.
    let run = std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "bash", "-c", script])
        .env("MNT", &mnt)
        .env("OUT", &out)
        .env("CTL", exe())
        .env("CONTENT", &content)
        .env("KEY", &dev_key().1)
        .output()
        .expect("unshare(1) (util-linux) runs the full-disk scenario");
    assert!(
        run.status.success(),
        "the full-disk scenario needs a private mount namespace (unshare --user --mount): {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let read = |n: &str| std::fs::read_to_string(out.join(n)).unwrap_or_default();
    for s in ["a", "b"] {
        let boot = first_json(read(&format!("{s}.boot")).as_bytes());
        assert_eq!(boot["reason"], "state-unwritable", "{s}: {boot}");
        assert_eq!(boot["version"], Value::Null);
        let ls = read(&format!("{s}.ls"));
        assert!(!ls.contains(".tmp"), "{s}: temporary files left: {ls}");
        assert!(!ls.contains("state.bin"), "{s}: {ls}");
    }
    // Staged store: the report was written in place.
    assert!(read("a.ls").contains("last-start.bin"));
    let a = json_of(read("a.json").as_bytes());
    assert_eq!(a["last_start"]["reason"], "state-unwritable", "{a}");
    assert_eq!(a["last_start"]["record_written"], false);
    assert_eq!(a["last_start_known"], true);
    assert!(
        read("a.txt").contains("WARNING: that start ran WITHOUT CONTENT"),
        "{}",
        read("a.txt")
    );
    // Hand-made store: no report, and status says it cannot know.
    let b = json_of(read("b.json").as_bytes());
    assert_eq!(b["last_start"], Value::Null, "{b}");
    assert_eq!(b["last_start_known"], false, "{b}");
    assert!(
        read("b.txt")
            .contains("last start:          UNKNOWN: there is no state record and no start report"),
        "{}",
        read("b.txt")
    );
    assert!(read("b.txt").contains("No space left on device"));
}
