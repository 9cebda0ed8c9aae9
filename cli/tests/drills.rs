//! Drills with real crashes: every boot is a `failsafectl boot` child process that reaches
//! healthy, shuts down cleanly, abort()s, hangs until SIGKILLed from here, or dies in the
//! middle of writing the state record. Each scenario asserts the exact decision sequence.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use failsafe_loader::state::record::{RECORD_LEN, SLOT_LEN, decode_record};
use failsafe_loader::state::{Loaded, Phase, State};
use serde_json::Value;

const EXE: &str = env!("CARGO_BIN_EXE_failsafectl");

/// (version, mode, reason, outcome) of every boot in a scenario's timeline.
fn drill(n: u32) -> Vec<(Option<u64>, String, String, String)> {
    let o = Command::new(EXE)
        .args(["drill", &n.to_string(), "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    j["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["event"] == "boot")
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or("-").to_owned();
            (r["version"].as_u64(), s("mode"), s("reason"), s("outcome"))
        })
        .collect()
}

fn row(
    v: Option<u64>,
    mode: &str,
    reason: &str,
    outcome: &str,
) -> (Option<u64>, String, String, String) {
    (v, mode.into(), reason.into(), outcome.into())
}

const N: &str = "normal";
const F: &str = "fallback";
const S: &str = "safe";
const NEW: &str = "newest-content";
const NQ: &str = "newer-quarantined";

#[test]
fn scenario_1_crash_loop_falls_back_on_boot_5_and_never_retries() {
    assert_eq!(
        drill(1),
        [
            row(Some(1), N, NEW, "healthy"),
            row(Some(2), N, NEW, "crashed"),
            row(Some(2), N, NEW, "crashed"),
            row(Some(2), N, NEW, "crashed"),
            row(Some(1), F, NQ, "healthy"),
            row(Some(1), F, NQ, "clean-shutdown"),
        ]
    );
}

/// Issue 20: a driver build that faults in its own setup. Each fault comes after the build's
/// attempt is durable and before content is chosen: three are charged to the build, the
/// fourth start is dormant (also in Safe Mode, where a crash then charges nothing), and a
/// new build runs v1 again.
#[test]
fn scenario_14_a_driver_setup_fault_ends_dormant_and_a_new_build_runs() {
    let setup = row(None, "-", "-", "crashed at driver-setup");
    let dormant = |outcome| row(None, S, "driver-dormant", outcome);
    assert_eq!(
        drill(14),
        [
            row(Some(1), N, NEW, "healthy"),
            setup.clone(),
            setup.clone(),
            setup,
            dormant("dormant"),
            dormant("crashed"),
            dormant("dormant"),
            row(Some(1), N, NEW, "healthy"),
        ]
    );
}

/// The worst case docs/boot-safety.md states: threshold x (versions tried + 1) = 3 x 3 = 9
/// unclean starts, then dormant; `recover wake --yes` gives 3 more; a new build runs.
#[test]
fn scenario_15_worst_case_is_threshold_times_versions_tried_plus_one() {
    let t = drill(15);
    let crashes = t
        .iter()
        .take_while(|r| r.2 != "driver-dormant")
        .filter(|r| r.3 == "crashed")
        .count();
    assert_eq!(crashes, 9, "{t:?}");
    let nu = |outcome| row(None, F, "nothing-usable", outcome);
    assert_eq!(
        t[1..],
        [
            vec![row(Some(2), N, NEW, "crashed"); 3],
            vec![row(Some(1), F, NQ, "crashed"); 3],
            vec![nu("crashed"); 3],
            vec![row(None, S, "driver-dormant", "crashed")],
            vec![nu("crashed"); 3],
            vec![row(None, S, "driver-dormant", "dormant"), nu("healthy")],
        ]
        .concat()
    );
}

/// Signed content: an unsigned update and one signed by a key nobody trusts are each
/// quarantined at their first start, with their reasons; the signed v1 runs, and a later
/// signed v4 is taken.
#[test]
fn scenario_12_unsigned_or_untrusted_content_is_quarantined_at_once() {
    assert_eq!(
        drill(12),
        [
            row(Some(1), N, NEW, "healthy"),
            row(Some(1), F, NQ, "healthy"),
            row(Some(1), F, NQ, "clean-shutdown"),
            row(Some(4), N, NEW, "healthy"),
        ]
    );
    let o = Command::new(EXE)
        .args(["drill", "12", "--json"])
        .output()
        .unwrap();
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    let codes: Vec<_> = j["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["rejected"][0]["error"]["code"].as_str())
        .collect();
    assert_eq!(codes, ["unsigned", "unknown-key"]);
}

#[test]
fn scenario_2_one_unrelated_crash_then_healthy() {
    assert_eq!(
        drill(2),
        [
            row(Some(1), N, NEW, "healthy"),
            row(Some(2), N, NEW, "crashed"),
            row(Some(2), N, NEW, "healthy"),
            row(Some(2), N, NEW, "clean-shutdown")
        ]
    );
}

#[test]
fn scenario_3_candidate_and_last_known_good_both_crash() {
    let mut want = vec![row(Some(1), N, NEW, "healthy")];
    want.extend(std::iter::repeat_n(row(Some(2), N, NEW, "crashed"), 3));
    want.extend(std::iter::repeat_n(row(Some(1), F, NQ, "crashed"), 3));
    want.extend(std::iter::repeat_n(
        row(None, F, "nothing-usable", "clean-shutdown"),
        2,
    ));
    assert_eq!(drill(3), want);
}

#[test]
fn scenario_4_newer_version_after_quarantine_is_tried() {
    let t = drill(4);
    assert_eq!(t[4], row(Some(1), F, NQ, "clean-shutdown"));
    assert_eq!(t[5], row(Some(3), N, NEW, "healthy"));
    assert_eq!(t.len(), 6);
}

#[test]
fn scenario_5_torn_writes_lose_only_the_record_being_written() {
    let t = drill(5);
    assert_eq!(t[0], row(Some(1), N, NEW, "healthy"));
    for (i, at) in [
        "state-write:0",
        "state-write:1",
        "state-write:512",
        "state-write:2047",
        "after-state-write",
    ]
    .iter()
    .enumerate()
    {
        assert_eq!(
            t[i + 1],
            (None, "-".into(), "-".into(), format!("crashed at {at}"))
        );
    }
    assert_eq!(t[6], row(Some(2), N, NEW, "healthy"));
}

#[test]
fn scenario_6_clean_reboots_never_quarantine() {
    let mut want = vec![row(Some(1), N, NEW, "healthy")];
    want.extend(std::iter::repeat_n(
        row(Some(2), N, NEW, "clean-shutdown"),
        5,
    ));
    want.push(row(Some(2), N, NEW, "healthy"));
    assert_eq!(drill(6), want);
}

#[test]
fn scenario_7_safe_mode_switches() {
    assert_eq!(
        drill(7),
        [
            row(Some(1), N, NEW, "healthy"),
            row(None, S, "force-safe-mode", "crashed"),
            row(None, S, "windows-safe-mode", "crashed"),
            row(None, S, "force-safe-mode", "crashed"),
            row(Some(2), N, NEW, "healthy"),
        ]
    );
}

#[test]
fn scenario_8_corrupt_state_activates_nothing_new() {
    assert_eq!(
        drill(8),
        [
            row(Some(1), N, NEW, "healthy"),
            row(None, S, "state-lost", "clean-shutdown"),
            row(Some(1), N, NEW, "healthy")
        ]
    );
}

#[test]
fn scenario_9_invalid_content_is_quarantined_at_once() {
    assert_eq!(
        drill(9),
        [
            row(Some(1), N, NEW, "healthy"),
            row(Some(1), F, NQ, "clean-shutdown"),
            row(Some(1), F, NQ, "clean-shutdown")
        ]
    );
    let o = Command::new(EXE)
        .args(["drill", "9", "--json"])
        .output()
        .unwrap();
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    let boot = &j["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["event"] == "boot")
        .nth(1)
        .unwrap()
        .clone();
    assert_eq!(boot["rejected"][0]["error"]["code"], "field-out-of-range");
    assert_eq!(boot["rejected"][0]["error"]["rule_id"], 9999);
    assert_eq!(boot["quarantined"][0]["reason"], "invalid-content");
}

/// Issue 15, item 1: a Safe Mode boot between crashes neither closes nor resets v2's
/// pending crash: the start after the third crash quarantines it.
#[test]
fn scenario_10_a_safe_mode_boot_gives_no_extra_try() {
    assert_eq!(
        drill(10),
        [
            row(Some(1), N, NEW, "healthy"),
            row(Some(2), N, NEW, "crashed"),
            row(None, S, "windows-safe-mode", "clean-shutdown"),
            row(Some(2), N, NEW, "crashed"),
            row(Some(2), N, NEW, "crashed"),
            row(Some(1), F, NQ, "healthy"),
        ]
    );
}

/// A filter that deadlocks is never healthy (its canary never completes): three hangs,
/// then quarantine and fallback.
#[test]
fn scenario_11_a_hang_is_never_healthy() {
    assert_eq!(
        drill(11),
        [
            row(Some(1), N, NEW, "healthy"),
            row(Some(2), N, NEW, "hung (killed)"),
            row(Some(2), N, NEW, "hung (killed)"),
            row(Some(2), N, NEW, "hung (killed)"),
            row(Some(1), F, NQ, "healthy"),
        ]
    );
}

// ---------------------------------------------------------------------------------------

/// The development key this test run signs with (`failsafectl keygen`, outside the store);
/// every boot trusts it as a test key with test signing on.
fn dev_key() -> &'static (PathBuf, PathBuf) {
    static KEY: std::sync::OnceLock<(PathBuf, PathBuf)> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let key = dir.join("dev.key");
        let o = Command::new(EXE)
            .arg("keygen")
            .arg("-o")
            .arg(&key)
            .output()
            .unwrap();
        assert!(o.status.success());
        (key.clone(), key.with_extension("pub"))
    })
}

fn trust_args() -> [&'static std::ffi::OsStr; 3] {
    [
        "--test-signing".as_ref(),
        "--test-key".as_ref(),
        dev_key().1.as_os_str(),
    ]
}

fn compile(dir: &Path, version: u64) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../content/sample.toml");
    let out = dir.join("content").join(format!("{version}.fsc"));
    std::fs::create_dir_all(dir.join("content")).unwrap();
    let o = Command::new(EXE)
        .arg("compile")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .args(["--version", &version.to_string()])
        .arg("--sign")
        .arg(&dev_key().0)
        .output()
        .unwrap();
    assert!(o.status.success());
}

fn boot(dir: &Path, args: &[&str]) -> (bool, Option<Value>) {
    let o = Command::new(EXE)
        .args(["boot", "--json", "--healthy-after", "0", "--store"])
        .arg(dir)
        .args(trust_args())
        .args(args)
        .output()
        .unwrap();
    let first = String::from_utf8_lossy(&o.stdout)
        .lines()
        .next()
        .and_then(|l| serde_json::from_str(l).ok());
    (o.status.success(), first)
}

fn read_state(dir: &Path) -> (Loaded, Vec<u8>) {
    let bytes = std::fs::read(dir.join("state.bin")).unwrap();
    assert_eq!(bytes.len(), RECORD_LEN);
    (decode_record(&bytes), bytes)
}

fn state(dir: &Path) -> State {
    match read_state(dir).0 {
        Loaded::Ok(s) => s.state,
        other => panic!("state record not valid: {other:?}"),
    }
}

/// A kill at every byte offset of a state write leaves the previous record, intact and
/// chosen, and the other slot untouched; nothing is charged for a start that never made
/// its attempt durable.
#[test]
fn torn_write_at_every_byte_offset() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    compile(dir, 1);
    assert!(boot(dir, &["--then", "healthy"]).0);
    compile(dir, 2);
    let (before, before_bytes) = read_state(dir);
    let Loaded::Ok(prev) = before else {
        panic!("no state")
    };
    for n in 0..SLOT_LEN {
        let (ok, decided) = boot(dir, &["--crash-at", &format!("state-write:{n}")]);
        assert!(
            !ok && decided.is_none(),
            "byte {n}: the child must die inside the write"
        );
        let (after, bytes) = read_state(dir);
        assert_eq!(
            after,
            Loaded::Ok(prev),
            "byte {n}: previous record must survive and be chosen"
        );
        let keep = prev.slot * SLOT_LEN..(prev.slot + 1) * SLOT_LEN;
        assert_eq!(
            bytes[keep.clone()],
            before_bytes[keep],
            "byte {n}: the newest slot was touched"
        );
    }
    // Nothing was charged: v2 starts with no unclean attempts.
    let (ok, d2) = boot(dir, &["--then", "clean-shutdown"]);
    let d2 = d2.unwrap();
    assert!(ok);
    assert_eq!(
        (d2["version"].as_u64(), d2["attempts_before"].as_u64()),
        (Some(2), Some(0))
    );
}

/// The very first record is created atomically: a crash while creating it leaves no
/// record (first install again), never a half record.
#[test]
fn torn_first_record_is_a_first_install_again() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    compile(dir, 1);
    for n in [0, 1, 100, SLOT_LEN - 1] {
        let (ok, _) = boot(dir, &["--crash-at", &format!("state-write:{n}")]);
        assert!(!ok);
        assert!(!dir.join("state.bin").exists());
    }
    let (_, dec) = boot(dir, &["--then", "clean-shutdown"]);
    assert_eq!(dec.unwrap()["record"], "none (first install)");
}

/// Seeded, reproducible: hundreds of boots with random outcomes, including external
/// SIGKILLs at random moments, with the invariants checked after every boot.
#[test]
fn randomized_drill() {
    let seed: u64 = std::env::var("FAILSAFE_DRILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_2024_0719);
    let boots: usize = std::env::var("FAILSAFE_DRILL_BOOTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let mut rng = seed;
    let mut next = move |m: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % m
    };
    let threshold = 3u64;
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let mut newest = 1u64;
    compile(dir, newest);
    let mut consecutive: std::collections::HashMap<u64, u64> = Default::default();
    let mut best_lkg = 0u64;
    let mut counts = [0usize; 8];
    let mut quarantined_seen = std::collections::BTreeSet::new();
    // The driver build: a dormant one is replaced by a new build (an update of the driver),
    // which gets fresh tries.
    let mut builds = 1u8;
    let mut dormant_seen = 0usize;
    let build_of = |n: u8| format!("0.1.{n}+{}", format!("{n:02x}").repeat(32));
    for i in 0..boots {
        let ctx = format!("seed {seed:#x}, boot {i}");
        let build = build_of(builds);
        match next(20) {
            0 | 1 => {
                newest += 1;
                compile(dir, newest);
            }
            2 => {
                // A bad update: garbage under the next version's name.
                newest += 1;
                std::fs::write(
                    dir.join("content").join(format!("{newest}.fsc")),
                    b"\x89FSC\r\n\x1a\nnot content",
                )
                .unwrap();
            }
            _ => {}
        }
        let before = if dir.join("state.bin").exists() {
            Some(state(dir))
        } else {
            None
        };
        let pick = next(100);
        let (kind, activated, unclean) = if pick < 12 {
            // External SIGKILL: after the decision, or at a random moment.
            counts[0] += 1;
            let mut child = Command::new(EXE)
                .args([
                    "boot", "--json", "--then", "hang", "--build", &build, "--store",
                ])
                .arg(dir)
                .args(trust_args())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut decided = None;
            if next(2) == 0 {
                let mut line = String::new();
                BufReader::new(child.stdout.take().unwrap())
                    .read_line(&mut line)
                    .unwrap();
                decided = serde_json::from_str::<Value>(&line).ok();
            } else {
                std::thread::sleep(std::time::Duration::from_micros(next(3000)));
            }
            child.kill().unwrap();
            assert!(!child.wait().unwrap().success());
            ("kill", decided.and_then(|d| d["version"].as_u64()), true)
        } else if pick < 22 {
            counts[1] += 1;
            let (ok, dec) = boot(
                dir,
                &[
                    "--build",
                    &build,
                    "--crash-at",
                    &format!("state-write:{}", next(SLOT_LEN as u64)),
                ],
            );
            assert!(!ok, "{ctx}");
            ("torn", dec.and_then(|d| d["version"].as_u64()), true)
        } else if pick < 27 {
            counts[2] += 1;
            let (ok, dec) = boot(dir, &["--build", &build, "--crash-at", "after-state-write"]);
            assert!(!ok, "{ctx}");
            (
                "after-state-write",
                dec.and_then(|d| d["version"].as_u64()),
                true,
            )
        } else {
            let then = match pick {
                27..=64 => "crash",
                65..=82 => "healthy",
                _ => "clean-shutdown",
            };
            counts[if then == "crash" {
                3
            } else if then == "healthy" {
                4
            } else {
                5
            }] += 1;
            let (ok, dec) = boot(dir, &["--build", &build, "--then", then]);
            assert_eq!(ok, then != "crash", "{ctx}");
            if dec
                .as_ref()
                .is_some_and(|d| d["reason"] == "driver-dormant")
            {
                // Invariant: a dormant start activates nothing.
                assert_eq!(dec.as_ref().unwrap()["version"], Value::Null, "{ctx}");
            }
            (
                then,
                dec.as_ref().and_then(|d| d["version"].as_u64()),
                then == "crash",
            )
        };
        if !dir.join("state.bin").exists() {
            continue; // killed before the first record existed
        }
        let after = state(dir);
        // Which version did this boot attempt? The printed decision, or (when the child
        // died before printing) the attempt the record says is in progress.
        let attempted = activated.or_else(|| {
            let fresh = before.map_or(0, |b| b.boot) < after.boot;
            after
                .attempt
                .filter(|a| fresh && a.phase == Phase::InProgress)
                .map(|a| a.ver.version)
        });
        if let Some(v) = attempted {
            // Invariant: a version quarantined before this boot is never activated.
            if let Some(b) = before {
                assert!(
                    b.quarantined(v).is_none(),
                    "{ctx}: quarantined v{v} was activated"
                );
            }
            let c = consecutive.entry(v).or_insert(0);
            match kind {
                "healthy" => *c = 0,
                "clean-shutdown" => {}
                _ if unclean => *c += 1,
                _ => {}
            }
            // Invariant: never more than `threshold` consecutive unclean attempts.
            assert!(
                *c <= threshold,
                "{ctx}: v{v} has {c} consecutive unclean attempts"
            );
        }
        // Invariant: a build goes dormant only at `threshold` unclean starts without
        // content; then the next boots run a new build.
        if let Some(d) = after.driver
            && d.dormant.is_some()
        {
            assert_eq!(u64::from(d.unclean), threshold, "{ctx}");
            dormant_seen += 1;
            builds = builds.wrapping_add(1);
        }
        // Invariant: last-known-good is never lost and never goes backwards.
        let lkg = after.lkg.map_or(0, |l| l.version);
        assert!(
            lkg >= best_lkg,
            "{ctx}: last-known-good went from v{best_lkg} to v{lkg}"
        );
        best_lkg = lkg;
        // Invariant: quarantined versions have no attempt count left running.
        for q in after.quarantine.iter().flatten() {
            assert_eq!(after.attempts(q.ver.version), 0, "{ctx}");
            quarantined_seen.insert((q.ver.version, q.reason.name()));
        }
    }
    eprintln!(
        "randomized drill: seed {seed:#x}, {boots} boots, kills {}, torn {}, after-write {}, crash {}, healthy {}, clean {}; newest v{newest}, lkg v{best_lkg}; quarantined {quarantined_seen:?}; builds dormant {dormant_seen}, builds run {builds}",
        counts[0], counts[1], counts[2], counts[3], counts[4], counts[5]
    );
    assert!(
        counts.iter().take(6).all(|&c| c > 0),
        "every kind of boot ran: {counts:?}"
    );
    assert!(dormant_seen > 0, "the drill never saw a dormant build");
    for reason in ["crash-loop", "invalid-content"] {
        assert!(
            quarantined_seen.iter().any(|q| q.1 == reason),
            "the drill never quarantined for {reason}"
        );
    }
}

/// The live path across real processes (`failsafectl serve` is the Linux host).
#[cfg(unix)]
mod live {
    use super::*;

    /// July 2024 across real processes: `serve` hosts, `stage --live` pushes through the
    /// socket, SIGKILL crashes. Threshold 3: the boot v2 arrived on live and two restarts on
    /// v2 are its three unclean ends; the fourth start runs v1 with v2 quarantined.
    #[test]
    fn scenario_13_july_2024_live_push_crash_loop() {
        let o = Command::new(EXE)
            .args(["drill", "july-2024", "--json"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
        let j: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(j["ok"], true);
        let t = j["timeline"].as_array().unwrap();
        let boots: Vec<_> = t
            .iter()
            .filter(|r| r["event"] == "boot")
            .map(|r| {
                let s = |k: &str| r[k].as_str().unwrap_or("-").to_owned();
                (r["version"].as_u64(), s("mode"), s("reason"), s("outcome"))
            })
            .collect();
        assert_eq!(
            boots,
            [
                row(Some(1), N, NEW, "killed"),
                row(Some(2), N, NEW, "killed"),
                row(Some(2), N, NEW, "killed"),
                row(Some(1), F, NQ, "clean-shutdown"),
            ]
        );
        // The first host ran v2 live when it was killed; the fourth quarantined v2.
        let b: Vec<&Value> = t.iter().filter(|r| r["event"] == "boot").collect();
        assert_eq!(b[0]["live"], serde_json::json!(["v2 live"]));
        assert_eq!(b[3]["quarantined"][0]["version"], 2);
        assert_eq!(b[3]["quarantined"][0]["reason"], "crash-loop");
        // Every live step as expected; the last status: v3 healthy and last-known-good.
        assert!(t.iter().all(|r| r["ok"] != false));
        let last = t.iter().rev().find(|r| r["event"] == "healthy").unwrap();
        assert_eq!(last["live"]["active"], 3);
        assert_eq!(last["live"]["last_known_good"], 3);
        assert_eq!(last["live"]["healthy"], true);
    }

    /// A host process on `dir` (healthy after 1 s), killed on drop.
    struct Serve(std::process::Child);

    impl Drop for Serve {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn serve(dir: &Path) -> Serve {
        let mut c = Command::new(EXE)
            .args(["serve", "--json", "--healthy-after", "1", "--store"])
            .arg(dir)
            .args(trust_args())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut r = BufReader::new(c.stdout.take().unwrap());
        let mut l = String::new();
        while r.read_line(&mut l).unwrap() > 0 {
            if l.contains("\"listening\"") {
                // Keep draining in the background so the host never blocks on its pipe.
                std::thread::spawn(move || std::io::copy(&mut r, &mut std::io::sink()));
                return Serve(c);
            }
            l.clear();
        }
        let status = c.wait();
        panic!("serve exited before listening: {status:?}");
    }

    fn live_status(dir: &Path) -> Value {
        let o = Command::new(EXE)
            .args(["status", "--json", "--store"])
            .arg(dir)
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&o.stdout).unwrap()["live"].clone()
    }

    fn wait_healthy(dir: &Path, version: u64) {
        for _ in 0..150 {
            let l = live_status(dir);
            if l["active"] == version && l["healthy"] == true {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("v{version} never became healthy: {}", live_status(dir));
    }

    /// `stage ARGS --live --json`: (exit code, the refusal message).
    fn stage_live(dir: &Path, target: &str) -> (Option<i32>, String, String) {
        let o = Command::new(EXE)
            .args(["stage", target, "--live", "--store"])
            .arg(dir)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    /// From an independent model of the docs driven through the CLI: a `boot` while a host
    /// runs on the store would charge the host's attempt (refused, as a second `serve`); an
    /// unreadable file's refusal gives the OS error in words; a start whose record write
    /// fails prints the start report's boot number, which `status` shows.
    #[test]
    fn boot_refused_while_hosted_errors_in_words_and_unwritten_boot_numbers() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        compile(dir, 1);
        let host = serve(dir);
        let before = std::fs::read(dir.join("state.bin")).unwrap();
        let o = Command::new(EXE)
            .args(["boot", "--then", "crash", "--store"])
            .arg(dir)
            .args(trust_args())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("a host process (failsafectl serve) runs on"),
            "{err}"
        );
        assert_eq!(
            std::fs::read(dir.join("state.bin")).unwrap(),
            before,
            "nothing charged"
        );

        // A "version" the store cannot read (a directory named like content).
        std::fs::create_dir(dir.join("content").join("2.fsc")).unwrap();
        let (code, _, err) = stage_live(dir, "2");
        assert_eq!(code, Some(1), "{err}");
        assert!(
            err.contains("unreadable: version 2 could not be read: Is a directory (os error 21)"),
            "{err}"
        );
        drop(host);
        std::fs::remove_dir(dir.join("content").join("2.fsc")).unwrap();

        // The record cannot be written: the start prints the number `status` shows.
        let o = Command::new(EXE)
            .args([
                "boot",
                "--json",
                "--fail-writes",
                "--then",
                "clean-shutdown",
                "--store",
            ])
            .arg(dir)
            .args(trust_args())
            .output()
            .unwrap();
        let line: Value =
            serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().next().unwrap())
                .unwrap();
        assert_eq!(line["reason"], "state-unwritable");
        let st = Command::new(EXE)
            .args(["status", "--json", "--store"])
            .arg(dir)
            .output()
            .unwrap();
        let st: Value = serde_json::from_slice(&st.stdout).unwrap();
        assert_eq!(line["boot"], 2, "{line}");
        assert_eq!(st["last_start"]["boot"], line["boot"], "{st}");
    }

    /// A refused live push changes nothing: the record's bytes stay identical (quarantined,
    /// older than last-known-good: nothing is written), or for content rejected after its
    /// attempt was made durable the record's state is restored exactly; the running content
    /// stays; the console prints the host's specific refusal and exits 1.
    #[test]
    fn refused_live_pushes_change_nothing() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        compile(dir, 1);
        assert!(boot(dir, &["--then", "healthy"]).0);
        compile(dir, 2);
        for _ in 0..3 {
            assert!(!boot(dir, &["--then", "crash"]).0);
        }
        let (_, first) = boot(dir, &["--then", "clean-shutdown"]);
        assert_eq!(first.unwrap()["reason"], NQ);
        compile(dir, 3);
        let _host = serve(dir);
        wait_healthy(dir, 3);

        for (target, code, name) in [
            ("2", 3, "quarantined: version 2 is quarantined (crash-loop)"),
            (
                "v1",
                4,
                "older-than-last-known-good: version 1 is older than last-known-good 3",
            ),
            (
                "3",
                2,
                "already-active: version 3 is already the active content",
            ),
            (
                "9",
                7,
                "not-in-store: version 9 is not in the content store",
            ),
        ] {
            let before = std::fs::read(dir.join("state.bin")).unwrap();
            let (exit, _, err) = stage_live(dir, target);
            assert_eq!(exit, Some(1), "{target}: {err}");
            assert!(
                err.contains(&format!("(code {code}): {name}")),
                "{target}: {err}"
            );
            assert_eq!(
                std::fs::read(dir.join("state.bin")).unwrap(),
                before,
                "{target}"
            );
        }

        // Content that fails verification (unsigned v4): its attempt was durable before it was
        // parsed, then the state before was written back.
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../content/sample.toml");
        let o = Command::new(EXE)
            .arg("compile")
            .arg(&src)
            .arg("-o")
            .arg(dir.join("content/4.fsc"))
            .args(["--version", "4"])
            .output()
            .unwrap();
        assert!(o.status.success());
        let before = state(dir);
        let (exit, _, err) = stage_live(dir, "4");
        assert_eq!(exit, Some(1), "{err}");
        assert!(
            err.contains("(code 9): invalid-content: version 4 was rejected"),
            "{err}"
        );
        assert_eq!(state(dir), before);
        assert!(state(dir).quarantined(4).is_none());
        let l = live_status(dir);
        assert_eq!(
            (l["active"].as_u64(), l["healthy"].as_bool()),
            (Some(3), Some(true))
        );

        // --json: the refusal as one JSON line with the host's code and message.
        let o = Command::new(EXE)
            .args(["stage", "2", "--live", "--json", "--store"])
            .arg(dir)
            .output()
            .unwrap();
        let j: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(j["error"]["code"], "live-refused");
        assert_eq!(j["error"]["refusal"]["code"], 3);
        assert_eq!(j["json_version"], 1);
    }

    /// Rollback, watch and a clean stop through the socket; a second host on the same store is
    /// refused; the socket is 0600.
    #[test]
    fn rollback_watch_and_stop() {
        use std::os::unix::fs::PermissionsExt as _;
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        compile(dir, 1);
        assert!(boot(dir, &["--then", "healthy"]).0);
        let events = dir.join("events.jsonl");
        std::fs::write(
            &events,
            "{\"event\": \"file-create\", \"path\": \"C:\\\\Users\\\\a\\\\x.locky\", \"desired-access\": 2, \"pid\": 7, \"process\": \"C:\\\\evil.exe\"}\n\
             {\"event\": \"file-create\", \"path\": \"C:\\\\Users\\\\a\\\\notes.txt\"}\n",
        )
        .unwrap();
        let mut c = Command::new(EXE)
            .args(["serve", "--json", "--healthy-after", "1", "--events"])
            .arg(&events)
            .arg("--store")
            .arg(dir)
            .args(trust_args())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(c.stdout.take().unwrap());
        let mut l = String::new();
        while out.read_line(&mut l).unwrap() > 0 && !l.contains("listening") {
            l.clear();
        }
        let sock = dir.join("control.sock");
        let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // One host per store.
        let o = Command::new(EXE)
            .args(["serve", "--store"])
            .arg(dir)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&o.stderr).contains("already answers"));

        // The audit queue: one block from rule 210; the .txt matched nothing.
        let o = Command::new(EXE)
            .args(["watch", "--json", "--store"])
            .arg(dir)
            .output()
            .unwrap();
        let lines: Vec<Value> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["action"], "block");
        assert_eq!(lines[0]["rule"], 210);
        assert_eq!(lines[0]["path"], "C:\\Users\\a\\x.locky");
        assert_eq!(lines[0]["pid"], 7);

        compile(dir, 2);
        let (exit, out2, err) = stage_live(dir, "2");
        assert_eq!(exit, Some(0), "{out2}{err}");
        assert!(out2.contains("version 2 activated"), "{out2}");
        // Rollback to last-known-good v1; v2 is quarantined rolled-back.
        let o = Command::new(EXE)
            .args(["rollback", "--json", "--store"])
            .arg(dir)
            .output()
            .unwrap();
        let j: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(j["active"], 1, "{j}");
        let q = state(dir).quarantined(2).copied().unwrap();
        assert_eq!(q.reason.name(), "rolled-back");
        // Nothing left to roll back to: refused, nothing written.
        let before = std::fs::read(dir.join("state.bin")).unwrap();
        let o = Command::new(EXE)
            .args(["rollback", "--store"])
            .arg(dir)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&o.stderr).contains("already-active"));
        assert_eq!(std::fs::read(dir.join("state.bin")).unwrap(), before);

        // SIGTERM: the shutdown notification closes v1's attempt; the socket is removed.
        let pid = c.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        assert!(c.wait().unwrap().success());
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
        assert!(rest.contains("\"ended\":\"clean shutdown\""), "{rest}");
        assert!(!sock.exists());
        assert_ne!(state(dir).attempt.unwrap().phase, Phase::InProgress);
        // With no host, status says so and shows the record.
        let o = Command::new(EXE)
            .args(["status", "--store"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&o.stdout).contains("live: nothing answers"));
    }

    /// The host decodes what it is sent with the core's bounds-checked decoder: a short,
    /// a long and a wrong-kind message each get a protocol error (1000 and up), and the
    /// host keeps serving; a client without a host gets a clear error.
    #[test]
    fn malformed_requests_get_protocol_errors() {
        use failsafe_loader::control::{Reply, decode_response};
        use std::io::{Read as _, Write as _};
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        let o = Command::new(EXE)
            .args(["watch", "--store"])
            .arg(dir)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("no host process listens at"),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let (exit, _, err) = stage_live(dir, "v0");
        assert_eq!(exit, Some(2));
        assert!(
            err.contains("stage --live v0: no such file, and not a content version"),
            "{err}"
        );
        compile(dir, 1);
        let _host = serve(dir);
        let mut good =
            failsafe_loader::control::encode_request(&failsafe_loader::control::Request::Query)
                .to_vec();
        good[6] = 9; // kind 9
        for (msg, code) in [
            (b"FSCQ\x01".to_vec(), 1001),
            (vec![0u8; 17], 1001),
            (good, 1004),
        ] {
            let mut s = std::os::unix::net::UnixStream::connect(dir.join("control.sock")).unwrap();
            s.write_all(&msg).unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            let mut back = Vec::new();
            s.read_to_end(&mut back).unwrap();
            match decode_response(&back).unwrap().reply {
                Reply::Refused { code: c, message } => assert_eq!(c, code, "{message}"),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(live_status(dir)["active"], 1);
    }
    /// `recover` while a host runs goes through the host, which applies the change under
    /// its lock as the record's one writer (issue 20: the driver's writes did not take the
    /// console's lock, so a change between its re-read and its write was lost). The
    /// console says who applied it; `--dry-run` says who would.
    #[test]
    fn recover_goes_through_the_running_host() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        compile(dir, 1);
        let _host = serve(dir);
        let sock = dir.join("control.sock");
        let o = Command::new(EXE)
            .args(["recover", "force-safe-mode", "on", "--dry-run", "--store"])
            .arg(dir)
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains(&format!(
                "(through the host process at {}, which runs)",
                sock.display()
            )),
            "{out}"
        );
        assert!(!state(dir).force_safe);
        let o = Command::new(EXE)
            .args(["recover", "force-safe-mode", "on", "--json", "--store"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let j: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(
            j["via"],
            format!("the host process at {}", sock.display()),
            "{j}"
        );
        assert!(state(dir).force_safe);
        // The host refuses live changes now, as a start would run nothing.
        compile(dir, 2);
        let (exit, _, err) = stage_live(dir, "2");
        assert_eq!(exit, Some(1), "{err}");
        assert!(err.contains("safe-mode"), "{err}");
        // And the host's own refusal comes back in the console's terms.
        let o = Command::new(EXE)
            .args(["recover", "force-safe-mode", "off", "--store"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(o.status.success());
        assert!(String::from_utf8_lossy(&o.stdout).contains("applied by the host process at"));
        assert!(!state(dir).force_safe);
    }

    /// The console and the host racing across real processes: eight `recover
    /// unquarantine` against four live pushes (each a record write by the host, with a
    /// health check a second after each swap): no change of either side is lost. (On Linux the host also took the store lock before, so this guards
    /// the one-writer path rather than reproducing the Windows loss; the hosted drill runs
    /// the same against the driver.)
    #[test]
    fn the_console_and_the_host_racing_lose_no_update() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        compile(dir, 1);
        for v in 2..=9 {
            std::fs::write(
                dir.join("content").join(format!("{v}.fsc")),
                b"\x89FSC\r\n\x1a\nbad",
            )
            .unwrap();
        }
        assert!(boot(dir, &["--then", "healthy"]).0);
        for v in 2..=9 {
            assert!(state(dir).quarantined(v).is_some(), "v{v}");
        }
        for v in 10..=13 {
            compile(dir, v);
        }
        let host = serve(dir);
        let kids: Vec<std::process::Child> = (2..=9)
            .map(|v| {
                Command::new(EXE)
                    .args(["recover", "unquarantine", &v.to_string(), "--store"])
                    .arg(dir)
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let pushes = std::thread::spawn({
            let dir = dir.to_path_buf();
            move || {
                (10..=13)
                    .map(|v| stage_live(&dir, &v.to_string()))
                    .collect::<Vec<_>>()
            }
        });
        for k in kids {
            let o = k.wait_with_output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        let pushed = pushes.join().unwrap();
        let s = state(dir);
        for v in 2..=9 {
            assert!(s.quarantined(v).is_none(), "v{v}'s release was lost");
        }
        // Every push was accepted and is in the record: its attempt is the one the host
        // runs, the last pushed.
        let live = live_status(dir);
        let active = live["active"].as_u64().unwrap();
        assert!(pushed.iter().all(|(c, _, _)| *c == Some(0)), "{pushed:?}");
        assert_eq!(active, 13);
        assert_eq!(s.attempt.map(|a| a.ver.version), Some(active), "{live}");
        drop(host);
    }

    /// Read-events leaves events queued until the console's cursor passes them: a response
    /// read and lost is read again; `watch` then acknowledges what it printed.
    #[test]
    fn audit_events_survive_a_lost_response() {
        use failsafe_loader::control::{Reply, Request, decode_response, encode_request};
        use std::io::{Read as _, Write as _};
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        compile(dir, 1);
        let events = dir.join("events.jsonl");
        std::fs::write(
            &events,
            "{\"event\": \"file-create\", \"path\": \"C:\\\\Users\\\\a\\\\x.locky\", \"desired-access\": 2}\n",
        )
        .unwrap();
        let mut c = Command::new(EXE)
            .args(["serve", "--json", "--events"])
            .arg(&events)
            .arg("--store")
            .arg(dir)
            .args(trust_args())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(c.stdout.take().unwrap());
        let mut l = String::new();
        while out.read_line(&mut l).unwrap() > 0 && !l.contains("listening") {
            l.clear();
        }
        let read = |cursor: u64| {
            let mut s = std::os::unix::net::UnixStream::connect(dir.join("control.sock")).unwrap();
            s.write_all(&encode_request(&Request::ReadEvents { cursor }))
                .unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            let mut back = Vec::new();
            s.read_to_end(&mut back).unwrap();
            match decode_response(&back).unwrap().reply {
                Reply::Events(e) => (e.first, e.count),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(read(0), (0, 1));
        // That response is "lost": the event is still there.
        assert_eq!(read(0), (0, 1));
        let o = Command::new(EXE)
            .args(["watch", "--json", "--store"])
            .arg(dir)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 1);
        // watch's last read acknowledged it.
        assert_eq!(read(1), (1, 0));
        let _ = c.kill();
        let _ = c.wait();
    }
}
