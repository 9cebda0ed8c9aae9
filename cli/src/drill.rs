//! `failsafectl drill`: crash-loop scenarios played across real child processes. Each boot
//! is `failsafectl boot` run as a child against a scratch store; "crash" is a real
//! `abort()` (or a death in the middle of the state write), so nothing in the parent can
//! paper over what a real crash loses.

use std::path::Path;
use std::process::Command;

use failsafe_loader::{Action, Content, Criterion, EventType, Op, Rule, Values, encode};
use serde_json::{Value, json};

use crate::fail::Fail;
use crate::host::{self, DirStore};

/// The built-in sample content (also `content/sample.toml`).
pub const SAMPLE: &str = include_str!("../../content/sample.toml");

/// What a boot of a scenario must decide, and how it must end: the drill checks its own
/// timeline against these and exits 1 on any difference.
#[derive(Clone, Copy)]
struct Expect {
    /// Version activated (0: none).
    version: u64,
    mode: &'static str,
    reason: &'static str,
    outcome: &'static str,
}

const fn x(
    version: u64,
    mode: &'static str,
    reason: &'static str,
    outcome: &'static str,
) -> Expect {
    Expect {
        version,
        mode,
        reason,
        outcome,
    }
}

#[derive(Clone, Copy)]
enum Step {
    /// The update channel drops a good version into the store.
    Good(u64),
    /// The update channel drops a version with the 2024 mistake: a file-set-info rule
    /// naming field 10 of a type that has 10 fields.
    Bad(u64),
    /// A boot: how it ends, extra `boot` arguments, and what it must decide.
    Boot(&'static str, &'static [&'static str], Expect),
    /// A boot whose filter deadlocks (`--then hang`): killed once its health check has
    /// started (and blocked on the canary).
    Hang(Expect),
    /// The update channel drops an unsigned file (compiled, never signed).
    Unsigned(u64),
    /// Someone drops a file signed by a key the machine does not trust.
    Foreign(u64),
    /// Both slots of the state record overwritten with garbage.
    Corrupt,
    /// A responder's command (`failsafectl recover ...`).
    Recover(&'static [&'static str]),
    /// A start of the long-running host (`failsafectl serve`, healthy after 1 s): its
    /// decision must be the expected one; its outcome ("killed", "clean-shutdown") is
    /// filled in by the `Kill` or `Stop` that ends it.
    Serve(Expect),
    /// Wait (at most 15 s) until the running host reports `version` active and healthy,
    /// with last-known-good `lkg` (`failsafectl status --json` through the socket).
    WaitHealthy { version: u64, lkg: u64 },
    /// The update channel pushes a good `version` live: `failsafectl stage FILE --live`.
    Live(u64),
    /// A live push of a version already in the store that the host must refuse with the
    /// named refusal (`failsafectl stage --live N`).
    LiveRefused(u64, &'static str),
    /// SIGKILL to the running host: the crash.
    Kill,
    /// SIGTERM to the running host: the shutdown notification.
    Stop,
}

use Step::{Boot, Corrupt, Good, Hang, Kill, Live, LiveRefused, Recover, Serve, Stop, WaitHealthy};

const N: &str = "normal";
const F: &str = "fallback";
const S: &str = "safe";
const NEW: &str = "newest-content";
const NQ: &str = "newer-quarantined";

const fn healthy(v: u64, mode: &'static str, reason: &'static str) -> Step {
    Boot("healthy", &[], x(v, mode, reason, "healthy"))
}
const fn crash(v: u64, mode: &'static str, reason: &'static str) -> Step {
    Boot("crash", &[], x(v, mode, reason, "crashed"))
}
const fn clean(v: u64, mode: &'static str, reason: &'static str) -> Step {
    Boot("clean-shutdown", &[], x(v, mode, reason, "clean-shutdown"))
}
const fn torn(at: &'static [&'static str], outcome: &'static str) -> Step {
    Boot("clean-shutdown", at, x(0, "-", "-", outcome))
}

struct Scenario {
    /// Needs `failsafectl serve` (Unix sockets): not played on Windows.
    live: bool,
    number: u32,
    name: &'static str,
    title: &'static str,
    steps: &'static [Step],
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        live: false,
        number: 1,
        name: "crash-loop",
        title: "v2 crashes the machine at every boot",
        steps: &[
            Good(1),
            healthy(1, N, NEW),
            Good(2),
            crash(2, N, NEW),
            crash(2, N, NEW),
            crash(2, N, NEW),
            healthy(1, F, NQ),
            clean(1, F, NQ),
        ],
    },
    Scenario {
        live: false,
        number: 2,
        name: "unrelated-crash",
        title: "one unrelated crash, then healthy: no quarantine",
        steps: &[
            Good(1),
            healthy(1, N, NEW),
            Good(2),
            crash(2, N, NEW),
            healthy(2, N, NEW),
            clean(2, N, NEW),
        ],
    },
    Scenario {
        live: false,
        number: 3,
        name: "lkg-crashes",
        title: "v2 and last-known-good v1 both crash: no content",
        steps: &[
            Good(1),
            healthy(1, N, NEW),
            Good(2),
            crash(2, N, NEW),
            crash(2, N, NEW),
            crash(2, N, NEW),
            crash(1, F, NQ),
            crash(1, F, NQ),
            crash(1, F, NQ),
            clean(0, F, "nothing-usable"),
            clean(0, F, "nothing-usable"),
        ],
    },
    Scenario {
        live: false,
        number: 4,
        name: "newer-after-quarantine",
        title: "v3 staged after v2 was quarantined is tried",
        steps: &[
            Good(1),
            healthy(1, N, NEW),
            Good(2),
            crash(2, N, NEW),
            crash(2, N, NEW),
            crash(2, N, NEW),
            clean(1, F, NQ),
            Good(3),
            healthy(3, N, NEW),
        ],
    },
    Scenario {
        live: false,
        number: 5,
        name: "torn-write",
        title: "killed in the middle of the state write: the previous record survives",
        steps: &[
            Good(1),
            healthy(1, N, NEW),
            Good(2),
            torn(&["--crash-at", "state-write:0"], "crashed at state-write:0"),
            torn(&["--crash-at", "state-write:1"], "crashed at state-write:1"),
            torn(
                &["--crash-at", "state-write:512"],
                "crashed at state-write:512",
            ),
            torn(
                &["--crash-at", "state-write:2047"],
                "crashed at state-write:2047",
            ),
            torn(
                &["--crash-at", "after-state-write"],
                "crashed at after-state-write",
            ),
            healthy(2, N, NEW),
        ],
    },
    Scenario {
        live: false,
        number: 6,
        name: "clean-reboots",
        title: "clean reboots before healthy never quarantine",
        steps: &[
            Good(1),
            healthy(1, N, NEW),
            Good(2),
            clean(2, N, NEW),
            clean(2, N, NEW),
            clean(2, N, NEW),
            clean(2, N, NEW),
            clean(2, N, NEW),
            healthy(2, N, NEW),
        ],
    },
    Scenario {
        live: false,
        number: 7,
        name: "safe-mode",
        title: "force-safe-mode and Windows Safe Mode activate nothing; switch off, normal again",
        steps: &[
            Good(1),
            healthy(1, N, NEW),
            Good(2),
            Boot(
                "crash",
                &["--force-safe-mode"],
                x(0, S, "force-safe-mode", "crashed"),
            ),
            Boot(
                "crash",
                &["--windows-safe-mode"],
                x(0, S, "windows-safe-mode", "crashed"),
            ),
            Recover(&["force-safe-mode", "on"]),
            crash(0, S, "force-safe-mode"),
            Recover(&["force-safe-mode", "off"]),
            healthy(2, N, NEW),
        ],
    },
    Scenario {
        live: false,
        number: 8,
        name: "state-lost",
        title: "corrupt state record: nothing new activated, reason state-lost",
        steps: &[
            Good(1),
            healthy(1, N, NEW),
            Corrupt,
            clean(0, S, "state-lost"),
            healthy(1, N, NEW),
        ],
    },
    Scenario {
        live: false,
        number: 9,
        name: "invalid-content",
        title: "content that fails validation (the 21-vs-20 mistake) is quarantined at once",
        steps: &[
            Good(1),
            healthy(1, N, NEW),
            Step::Bad(2),
            clean(1, F, NQ),
            clean(1, F, NQ),
        ],
    },
    Scenario {
        live: false,
        number: 10,
        name: "safe-mode-look",
        title: "crash, a Safe Mode boot to look around, crash, crash: quarantined after the third crash",
        steps: &[
            Good(1),
            healthy(1, N, NEW),
            Good(2),
            crash(2, N, NEW),
            Boot(
                "clean-shutdown",
                &["--windows-safe-mode"],
                x(0, S, "windows-safe-mode", "clean-shutdown"),
            ),
            crash(2, N, NEW),
            crash(2, N, NEW),
            healthy(1, F, NQ),
        ],
    },
    Scenario {
        live: false,
        number: 11,
        name: "hang",
        title: "v2 deadlocks the filter: uptime passes, the canary never completes, never healthy",
        steps: &[
            Good(1),
            healthy(1, N, NEW),
            Good(2),
            Hang(x(2, N, NEW, "hung (killed)")),
            Hang(x(2, N, NEW, "hung (killed)")),
            Hang(x(2, N, NEW, "hung (killed)")),
            healthy(1, F, NQ),
        ],
    },
    Scenario {
        live: false,
        number: 12,
        name: "unsigned-content",
        title: "an unsigned v2 and a v3 signed by an unknown key are quarantined at once; v1 runs",
        steps: &[
            Good(1),
            healthy(1, N, NEW),
            Step::Unsigned(2),
            healthy(1, F, NQ),
            Step::Foreign(3),
            clean(1, F, NQ),
            Good(4),
            healthy(4, N, NEW),
        ],
    },
    // The counting: with threshold 3, the boot on which v2 arrived live is v2's first
    // attempt (its live attempt is durable before v2 is parsed), and the two restarts on
    // v2 are the second and third: 1 + 2 = 3 boots on v2 crash. The fourth start charges
    // the third crash, quarantines v2 (crash-loop) and runs v1.
    Scenario {
        live: true,
        number: 13,
        name: "july-2024",
        title: "July 2024: v2 pushed live to a healthy v1 crashes within a second; 3 boots on v2 crash (the live one + 2 restarts = threshold 3); the 4th start runs v1, v2 quarantined; v3 pushed live becomes last-known-good",
        steps: &[
            Good(1),
            Serve(x(1, N, NEW, "killed")),
            WaitHealthy { version: 1, lkg: 1 },
            Live(2),
            Kill,
            Serve(x(2, N, NEW, "killed")),
            Kill,
            Serve(x(2, N, NEW, "killed")),
            Kill,
            Serve(x(1, F, NQ, "clean-shutdown")),
            LiveRefused(2, "quarantined"),
            LiveRefused(1, "already-active"),
            Live(3),
            WaitHealthy { version: 3, lkg: 3 },
            Stop,
        ],
    },
];

/// The drill's development key, generated for each run in its own scratch directory (never
/// in the store, never committed): every staged version is signed with it, and every boot
/// trusts it as a test key with test signing on, as a test machine's driver would.
struct DevKey {
    _dir: tempfile::TempDir,
    key: crate::commands::keygen::SigningKey,
    public: std::path::PathBuf,
}

impl DevKey {
    fn new() -> Result<Self, Fail> {
        let dir = tempfile::tempdir()
            .map_err(|e| Fail::io(format!("cannot create a scratch key directory: {e}")))?;
        let (key, public) = crate::commands::keygen::write_pair(&dir.path().join("drill-dev.key"))?;
        Ok(DevKey {
            _dir: dir,
            key,
            public,
        })
    }
    fn sign(&self, bytes: &[u8]) -> Result<Vec<u8>, Fail> {
        crate::commands::sign::sign_bytes(bytes, &self.key)
    }
    /// The `boot` arguments that make the driver trust the key.
    fn trust_args(&self) -> [&std::ffi::OsStr; 3] {
        [
            "--test-signing".as_ref(),
            "--test-key".as_ref(),
            self.public.as_os_str(),
        ]
    }
}

fn sample(version: u64) -> Result<Content, Fail> {
    crate::source::compile(SAMPLE, Some(version))
        .map_err(|e| Fail::invalid(format!("built-in sample content: {e}")))
}

/// Signed content that fails validation: the signature vouches for origin, not
/// correctness, so the validator still refuses it.
fn bad(version: u64, key: &DevKey) -> Result<Vec<u8>, Fail> {
    let mut c = sample(version)?;
    let arity = EventType::FileSetInfo.arity();
    c.rules.push(Rule {
        id: 9_999,
        event: EventType::FileSetInfo,
        action: Action::Block,
        criteria: vec![Criterion {
            field: u8::try_from(arity).unwrap_or(u8::MAX),
            op: Op::IsTrue,
            negate: false,
            values: Values::None,
        }],
        exceptions: vec![],
    });
    let bytes = encode(&c).map_err(|e| Fail::invalid(e.to_string()))?;
    // `sign_bytes` refuses invalid content: sign it the way a broken pipeline would.
    let mut signed = failsafe_loader::format::prepare_signed(&bytes, key.key.id)
        .map_err(|e| Fail::invalid(e.to_string()))?;
    let header = signed.get(..80).unwrap_or(&[]).to_vec();
    let sig = key
        .key
        .pair
        .sk
        .sign([failsafe_loader::trust::CONTEXT, &header].concat(), None);
    signed.extend_from_slice(&sig[..]);
    Ok(signed)
}

fn drop_in(dir: &Path, version: u64, bytes: &[u8]) -> Result<(), Fail> {
    let store = DirStore::new(dir);
    std::fs::create_dir_all(store.dir())
        .map_err(|e| Fail::io(format!("cannot create {}: {e}", store.dir().display())))?;
    host::write_atomic(&store.path(version), bytes)
        .map_err(|e| Fail::io(format!("cannot write content: {e}")))
}

fn find(which: &str) -> Option<&'static Scenario> {
    SCENARIOS
        .iter()
        .find(|s| s.name == which || s.number.to_string() == which)
}

pub fn run(
    which: &str,
    list: bool,
    keep: Option<&Path>,
    threshold: Option<u8>,
    json: bool,
) -> Result<u8, Fail> {
    if list {
        for s in SCENARIOS {
            outln!("{:>2}  {:<24} {}", s.number, s.name, s.title);
        }
        return Ok(0);
    }
    let todo: Vec<&Scenario> = if which == "all" {
        SCENARIOS.iter().filter(|s| cfg!(unix) || !s.live).collect()
    } else {
        vec![find(which).ok_or_else(|| {
            let names: Vec<_> = SCENARIOS
                .iter()
                .map(|s| format!("{} {}", s.number, s.name))
                .collect();
            Fail::usage(format!(
                "unknown scenario `{which}` (expected all or one of: {})",
                names.join(", ")
            ))
        })?]
    };
    if let Some(s) = todo.iter().find(|s| s.live && !cfg!(unix)) {
        return Err(Fail::usage(format!(
            "scenario {} needs `failsafectl serve`, the Linux host of the live path (on Windows the driver is the host)",
            s.number
        )));
    }
    if keep.is_some() && todo.len() > 1 {
        return Err(Fail::usage("--keep takes a single scenario".into()));
    }
    let mut all = Vec::new();
    let mut mismatches = 0usize;
    for s in todo {
        let tmp;
        let dir = match keep {
            Some(d) => {
                if d.exists()
                    && std::fs::read_dir(d)
                        .map(|mut r| r.next().is_some())
                        .unwrap_or(true)
                {
                    return Err(Fail::usage(format!(
                        "refused: {} exists and is not empty",
                        d.display()
                    )));
                }
                std::fs::create_dir_all(d)
                    .map_err(|e| Fail::io(format!("cannot create {}: {e}", d.display())))?;
                d.to_path_buf()
            }
            None => {
                tmp = tempfile::tempdir()
                    .map_err(|e| Fail::io(format!("cannot create a scratch store: {e}")))?;
                tmp.path().to_path_buf()
            }
        };
        let timeline = play(s, &dir, threshold)?;
        let bad = timeline.iter().filter(|r| r["ok"] == false).count();
        mismatches += bad;
        if json {
            all.push(json!({"scenario": s.number, "name": s.name, "title": s.title, "ok": bad == 0, "mismatches": bad, "timeline": timeline}));
        } else {
            print_timeline(s, &dir, keep.is_some(), &timeline);
            if bad == 0 {
                outln!("scenario {}: every boot decided as expected", s.number);
            } else {
                outln!(
                    "scenario {}: FAILED: {bad} boot(s) differ from the expected decisions (marked !!)",
                    s.number
                );
            }
            outln!();
        }
    }
    if json {
        outln!(
            "{}",
            if all.len() == 1 {
                crate::report::versioned(all.remove(0))
            } else {
                Value::Array(all)
            }
        );
    }
    if mismatches > 0 {
        eprintln!("error: drill failed: {mismatches} boot(s) differ from the expected decisions");
        return Ok(1);
    }
    Ok(0)
}

/// The row of a boot: its decision (first JSON line of the child), and the outcome.
fn boot_row(extra: &[&str], outcome: String, lines: &[Value]) -> Value {
    let decided = lines.first().filter(|d| d.get("mode").is_some());
    let mut row = json!({"event": "boot", "outcome": outcome, "flags": extra.iter().filter(|a| a.starts_with("--") && **a != "--crash-at").collect::<Vec<_>>()});
    if let Some(d) = decided {
        for k in [
            "boot",
            "version",
            "mode",
            "reason",
            "quarantined",
            "rejected",
            "attempts_before",
        ] {
            row[k] = d[k].clone();
        }
    } else {
        row["decision"] = Value::Null;
    }
    row
}

fn json_lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Compares a boot row with what the scenario expects; records the result in the row.
fn check(row: &mut Value, want: &Expect) -> bool {
    let got = (
        row["version"].as_u64().unwrap_or(0),
        row["mode"].as_str().unwrap_or("-").to_owned(),
        row["reason"].as_str().unwrap_or("-").to_owned(),
        row["outcome"].as_str().unwrap_or("").to_owned(),
    );
    let ok = got
        == (
            want.version,
            want.mode.to_owned(),
            want.reason.to_owned(),
            want.outcome.to_owned(),
        );
    row["expected"] = json!({"version": (want.version != 0).then_some(want.version), "mode": want.mode, "reason": want.reason, "outcome": want.outcome});
    row["ok"] = json!(ok);
    ok
}

fn play(s: &Scenario, dir: &Path, threshold: Option<u8>) -> Result<Vec<Value>, Fail> {
    let t = threshold.unwrap_or(3).to_string();
    let exe = std::env::current_exe()
        .map_err(|e| Fail::io(format!("cannot find failsafectl itself: {e}")))?;
    let mut timeline = Vec::new();
    let key = DevKey::new()?;
    let mut host = live::Host::default();
    let unsigned = |v| encode(&sample(v)?).map_err(|e| Fail::invalid(e.to_string()));
    for step in s.steps {
        match *step {
            Good(v) => {
                drop_in(dir, v, &key.sign(&unsigned(v)?)?)?;
                timeline.push(json!({"event": "staged", "version": v}));
            }
            Step::Bad(v) => {
                drop_in(dir, v, &bad(v, &key)?)?;
                timeline.push(json!({"event": "staged", "version": v, "note": "rule 9999 names file-set-info field 10; the type has 10 fields"}));
            }
            Step::Unsigned(v) => {
                drop_in(dir, v, &unsigned(v)?)?;
                timeline.push(json!({"event": "staged", "version": v, "note": "unsigned"}));
            }
            Step::Foreign(v) => {
                let other = DevKey::new()?;
                drop_in(dir, v, &other.sign(&unsigned(v)?)?)?;
                timeline.push(json!({"event": "staged", "version": v, "note": "signed by a key the machine does not trust"}));
            }
            Corrupt => {
                std::fs::write(
                    dir.join("state.bin"),
                    vec![0xA5u8; failsafe_loader::state::record::RECORD_LEN],
                )
                .map_err(|e| Fail::io(format!("cannot corrupt the state record: {e}")))?;
                timeline.push(json!({"event": "state-corrupted"}));
            }
            Recover(args) => {
                let o = Command::new(&exe)
                    .arg("recover")
                    .args(args)
                    .args(["--store".as_ref(), dir.as_os_str(), "--json".as_ref()])
                    .output()
                    .map_err(|e| Fail::io(format!("cannot run recover: {e}")))?;
                if !o.status.success() {
                    return Err(Fail::io(format!(
                        "recover failed: {}",
                        String::from_utf8_lossy(&o.stderr)
                    )));
                }
                timeline.push(json!({"event": "recover", "command": args.join(" ")}));
            }
            Boot(then, extra, want) => {
                let o = Command::new(&exe)
                    .args([
                        "boot",
                        "--json",
                        "--healthy-after",
                        "0",
                        "--then",
                        then,
                        "--threshold",
                        &t,
                        "--store",
                    ])
                    .arg(dir)
                    .args(key.trust_args())
                    .args(extra)
                    .output()
                    .map_err(|e| Fail::io(format!("cannot start a boot: {e}")))?;
                let lines = json_lines(&o.stdout);
                let ended = lines
                    .iter()
                    .find_map(|l| l["ended"].as_str().map(str::to_owned));
                let crash_at = extra.iter().skip_while(|a| **a != "--crash-at").nth(1);
                let outcome = match (o.status.success(), crash_at, ended) {
                    (true, _, Some(e)) if e.starts_with("healthy") => "healthy".to_owned(),
                    (true, _, Some(e)) if e.starts_with("NOT healthy") => "not-healthy".to_owned(),
                    (true, _, _) => "clean-shutdown".to_owned(),
                    (false, Some(at), _) => format!("crashed at {at}"),
                    (false, None, _) => "crashed".to_owned(),
                };
                let mut row = boot_row(extra, outcome, &lines);
                check(&mut row, &want);
                timeline.push(row);
            }
            Hang(want) => {
                let mut row = hang(&exe, dir, &t, &key)?;
                check(&mut row, &want);
                timeline.push(row);
            }
            Serve(want) => host.serve(&exe, dir, &t, &key, want, &mut timeline)?,
            WaitHealthy { version, lkg } => {
                timeline.push(host.wait_healthy(&exe, dir, version, lkg)?);
            }
            Live(v) => {
                let file = host.push_file(v, &key.sign(&unsigned(v)?)?)?;
                timeline.push(host.live(&exe, dir, &file.to_string_lossy(), v, None)?);
            }
            LiveRefused(v, name) => {
                timeline.push(host.live(&exe, dir, &v.to_string(), v, Some(name))?);
            }
            Kill => host.end(false, &mut timeline)?,
            Stop => host.end(true, &mut timeline)?,
        }
    }
    host.end_quietly();
    Ok(timeline)
}

/// A boot whose filter deadlocks: waits until the decision is printed and (when content is
/// active) the health check has started and had time to block, then kills the child.
fn hang(exe: &Path, dir: &Path, threshold: &str, key: &DevKey) -> Result<Value, Fail> {
    use std::io::{BufRead as _, BufReader, Read as _};
    let mut child = Command::new(exe)
        .args([
            "boot",
            "--json",
            "--healthy-after",
            "0",
            "--then",
            "hang",
            "--threshold",
            threshold,
            "--store",
        ])
        .arg(dir)
        .args(key.trust_args())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Fail::io(format!("cannot start a boot: {e}")))?;
    let mut lines = Vec::new();
    if let Some(out) = child.stdout.take() {
        let mut r = BufReader::new(out);
        let mut buf = String::new();
        while r.read_line(&mut buf).map_or(0, |n| n) > 0 {
            let v: Value = serde_json::from_str(buf.trim()).unwrap_or(Value::Null);
            buf.clear();
            let active = v.get("mode").is_some() && !v["version"].is_null();
            let stop = (v.get("mode").is_some() && !active) || v["health"] == "checking";
            lines.push(v);
            if stop {
                break;
            }
        }
        // Give a health check that would (wrongly) complete the time to write its result.
        std::thread::sleep(std::time::Duration::from_millis(300));
        let _ = child.kill();
        let _ = child.wait();
        let mut rest = Vec::new();
        let _ = r.read_to_end(&mut rest);
        lines.extend(json_lines(&rest));
    } else {
        let _ = child.kill();
        let _ = child.wait();
    }
    let passed = lines
        .iter()
        .any(|l| l["health"]["passed"].as_bool() == Some(true));
    let outcome = if passed { "healthy" } else { "hung (killed)" };
    Ok(boot_row(&[], outcome.to_owned(), &lines))
}

fn print_timeline(s: &Scenario, dir: &Path, kept: bool, timeline: &[Value]) {
    outln!("Scenario {} ({}): {}", s.number, s.name, s.title);
    outln!(
        "store: {}{}",
        dir.display(),
        if kept {
            ""
        } else {
            " (scratch, removed afterwards; --keep DIR keeps it)"
        }
    );
    outln!(
        "{:<5} {:<8} {:<9} {:<19} {:<28} note",
        "boot",
        "content",
        "mode",
        "reason",
        "outcome"
    );
    for row in timeline {
        match row["event"].as_str() {
            Some("boot") => {
                let version = row["version"]
                    .as_u64()
                    .map_or("none".to_owned(), |v| format!("v{v}"));
                let mut notes = Vec::new();
                for f in row["flags"].as_array().into_iter().flatten() {
                    notes.push(f.as_str().unwrap_or("").trim_start_matches("--").to_owned());
                }
                for q in row["quarantined"].as_array().into_iter().flatten() {
                    notes.push(format!(
                        "quarantined v{} ({}: {})",
                        q["version"],
                        q["reason"].as_str().unwrap_or(""),
                        q["detail"].as_str().unwrap_or("")
                    ));
                }
                for r in row["rejected"].as_array().into_iter().flatten() {
                    notes.push(format!(
                        "rejected v{}: {}",
                        r["version"],
                        r["error"]["display"].as_str().unwrap_or("")
                    ));
                }
                for l in row["live"].as_array().into_iter().flatten() {
                    notes.push(format!("then {}", l.as_str().unwrap_or("")));
                }
                if row["flags"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|x| x == "--serve"))
                    && let Some(n) = row["attempts_before"].as_u64()
                    && n > 0
                {
                    notes.push(format!("{n} unclean end(s) charged before this start"));
                }
                if row["decision"].is_null() && row.get("decision").is_some() {
                    outln!(
                        "{:<5} {:<8} {:<9} {:<19} {:<28} died before deciding",
                        "-",
                        "-",
                        "-",
                        "-",
                        row["outcome"].as_str().unwrap_or("")
                    );
                    continue;
                }
                if row["ok"] == false {
                    let e = &row["expected"];
                    notes.push(format!(
                        "!! expected {} {} {} {}",
                        e["version"]
                            .as_u64()
                            .map_or("none".to_owned(), |v| format!("v{v}")),
                        e["mode"].as_str().unwrap_or(""),
                        e["reason"].as_str().unwrap_or(""),
                        e["outcome"].as_str().unwrap_or("")
                    ));
                }
                outln!(
                    "{:<5} {:<8} {:<9} {:<19} {:<28} {}",
                    row["boot"].to_string(),
                    version,
                    row["mode"].as_str().unwrap_or(""),
                    row["reason"].as_str().unwrap_or(""),
                    row["outcome"].as_str().unwrap_or(""),
                    notes.join("; ")
                );
            }
            Some("staged") => outln!(
                "  -- update channel drops v{}{}",
                row["version"],
                row["note"]
                    .as_str()
                    .map_or(String::new(), |n| format!(" ({n})"))
            ),
            Some("recover") => outln!(
                "  -- responder: failsafectl recover {}",
                row["command"].as_str().unwrap_or("")
            ),
            Some("state-corrupted") => outln!("  -- state record overwritten with garbage"),
            Some("live" | "live-refused" | "healthy" | "signal") => {
                let bang = if row["ok"] == false { " !! " } else { "" };
                outln!("  -- {bang}{}", row["text"].as_str().unwrap_or(""));
            }
            _ => {}
        }
    }
}

/// The long-running host's steps (`failsafectl serve`): Unix only.
mod live {
    use std::io::{BufRead as _, BufReader, Read as _};
    use std::path::{Path, PathBuf};
    use std::process::{Child, ChildStdout, Command, Stdio};
    use std::time::{Duration, Instant};

    use serde_json::{Value, json};

    use super::{DevKey, Expect, boot_row, check, json_lines};
    use crate::fail::Fail;

    /// The running host, its output, its row in the timeline and what it must decide.
    #[derive(Default)]
    pub struct Host {
        running: Option<Running>,
        scratch: Option<tempfile::TempDir>,
    }

    struct Running {
        child: Child,
        out: BufReader<ChildStdout>,
        row: usize,
        want: Expect,
        lines: Vec<Value>,
        /// When the last live push succeeded (for "crash within N ms").
        pushed: Option<Instant>,
    }

    fn socket(dir: &Path) -> PathBuf {
        crate::control::default_socket(dir)
    }

    impl Host {
        pub fn serve(
            &mut self,
            exe: &Path,
            dir: &Path,
            threshold: &str,
            key: &DevKey,
            want: Expect,
            timeline: &mut Vec<Value>,
        ) -> Result<(), Fail> {
            if self.running.is_some() {
                return Err(Fail::usage("drill: a host is already running".into()));
            }
            let mut child = Command::new(exe)
                .args([
                    "serve",
                    "--json",
                    "--healthy-after",
                    "1",
                    "--threshold",
                    threshold,
                    "--store",
                ])
                .arg(dir)
                .args(key.trust_args())
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| Fail::io(format!("cannot start the host: {e}")))?;
            let Some(stdout) = child.stdout.take() else {
                let _ = child.kill();
                return Err(Fail::io("the host has no standard output".into()));
            };
            let mut out = BufReader::new(stdout);
            let mut lines = Vec::new();
            let mut buf = String::new();
            // The decision, then "listening" once the socket answers.
            while out.read_line(&mut buf).map_or(0, |n| n) > 0 {
                let v: Value = serde_json::from_str(buf.trim()).unwrap_or(Value::Null);
                buf.clear();
                let listening = v.get("listening").is_some();
                lines.push(v);
                if listening {
                    break;
                }
            }
            let row = boot_row(&["--serve"], "running".into(), &lines);
            timeline.push(row);
            if !lines.iter().any(|l| l.get("listening").is_some()) {
                let status = child.wait().ok();
                let idx = timeline.len() - 1;
                if let Some(r) = timeline.get_mut(idx) {
                    r["outcome"] = json!(format!("exited before listening ({status:?})"));
                    check(r, &want);
                }
                return Ok(());
            }
            self.running = Some(Running {
                child,
                out,
                row: timeline.len() - 1,
                want,
                lines,
                pushed: None,
            });
            Ok(())
        }

        /// Writes a pushed file into the drill's scratch directory (not the store).
        pub fn push_file(&mut self, version: u64, bytes: &[u8]) -> Result<PathBuf, Fail> {
            if self.scratch.is_none() {
                self.scratch =
                    Some(tempfile::tempdir().map_err(|e| {
                        Fail::io(format!("cannot create a scratch directory: {e}"))
                    })?);
            }
            let dir = self.scratch.as_ref().map(|d| d.path().to_path_buf());
            let path = dir.unwrap_or_default().join(format!("{version}.fsc"));
            std::fs::write(&path, bytes)
                .map_err(|e| Fail::io(format!("cannot write {}: {e}", path.display())))?;
            Ok(path)
        }

        pub fn live(
            &mut self,
            exe: &Path,
            dir: &Path,
            target: &str,
            version: u64,
            refusal: Option<&str>,
        ) -> Result<Value, Fail> {
            let started = Instant::now();
            let o = Command::new(exe)
                .args(["stage", target, "--live", "--json", "--store"])
                .arg(dir)
                .output()
                .map_err(|e| Fail::io(format!("cannot run stage --live: {e}")))?;
            let ms = started.elapsed().as_millis();
            let v: Value = json_lines(&o.stdout).pop().unwrap_or(Value::Null);
            let shown = if target.ends_with(".fsc") {
                format!("{version}.fsc")
            } else {
                version.to_string()
            };
            Ok(match refusal {
                None => {
                    let ok = o.status.success() && v["live"]["activated"] == json!(version);
                    if ok && let Some(r) = self.running.as_mut() {
                        r.pushed = Some(Instant::now());
                    }
                    let text = if ok {
                        format!(
                            "update channel: failsafectl stage {shown} --live: v{version} activated live ({ms} ms)"
                        )
                    } else {
                        format!(
                            "failsafectl stage {shown} --live: expected v{version} activated, got: {}",
                            v["error"]["message"].as_str().unwrap_or(&v.to_string())
                        )
                    };
                    json!({"event": "live", "version": version, "ok": ok, "text": text, "answer": v})
                }
                Some(name) => {
                    let message = v["error"]["refusal"]["message"].as_str().unwrap_or("");
                    let ok = o.status.code() == Some(1) && message.starts_with(&format!("{name}:"));
                    let text = if ok {
                        format!("failsafectl stage --live {shown}: refused as expected: {message}")
                    } else {
                        format!(
                            "failsafectl stage --live {shown}: expected refusal {name}, got exit {:?}: {v}",
                            o.status.code()
                        )
                    };
                    json!({"event": "live-refused", "version": version, "expected": name, "ok": ok, "text": text, "answer": v})
                }
            })
        }

        pub fn wait_healthy(
            &mut self,
            exe: &Path,
            dir: &Path,
            version: u64,
            lkg: u64,
        ) -> Result<Value, Fail> {
            let started = Instant::now();
            let mut last = Value::Null;
            while started.elapsed() < Duration::from_secs(15) {
                let o = Command::new(exe)
                    .args(["status", "--json", "--socket"])
                    .arg(socket(dir))
                    .arg("--store")
                    .arg(dir)
                    .output()
                    .map_err(|e| Fail::io(format!("cannot run status: {e}")))?;
                let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
                last = v["live"].clone();
                if last["healthy"] == true && last["active"] == json!(version) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let ok = last["healthy"] == true
                && last["active"] == json!(version)
                && last["last_known_good"] == json!(lkg);
            let text = format!(
                "failsafectl status: v{} {}, last-known-good {} (after {} ms){}",
                last["active"],
                if last["healthy"] == true {
                    "healthy"
                } else {
                    "NOT healthy"
                },
                last["last_known_good"],
                started.elapsed().as_millis(),
                if ok {
                    String::new()
                } else {
                    format!("; expected v{version} healthy, last-known-good v{lkg}")
                }
            );
            Ok(
                json!({"event": "healthy", "version": version, "lkg": lkg, "ok": ok, "text": text, "live": last}),
            )
        }

        /// Ends the running host: SIGTERM (`clean`) or SIGKILL; fills in its row.
        pub fn end(&mut self, clean: bool, timeline: &mut Vec<Value>) -> Result<(), Fail> {
            let Some(mut r) = self.running.take() else {
                return Err(Fail::usage("drill: no host is running".into()));
            };
            let since_push = r.pushed.map(|p| p.elapsed().as_millis());
            if clean {
                #[cfg(unix)]
                {
                    let pid = libc::pid_t::try_from(r.child.id()).unwrap_or(0);
                    // SAFETY: kill(2) on our own child's pid, not yet reaped (so not reused).
                    unsafe {
                        libc::kill(pid, libc::SIGTERM);
                    }
                }
                #[cfg(not(unix))]
                let _ = r.child.kill();
            } else {
                let _ = r.child.kill(); // SIGKILL
            }
            let status = r.child.wait().ok();
            let mut rest = Vec::new();
            let _ = r.out.read_to_end(&mut rest);
            r.lines.extend(json_lines(&rest));
            let ended = r.lines.iter().find_map(|l| l["ended"].as_str());
            let outcome = match (clean, status.is_some_and(|s| s.success()), ended) {
                (true, true, Some("clean shutdown")) => "clean-shutdown",
                (true, _, _) => "stop failed",
                (false, _, _) => "killed",
            };
            let lives: Vec<String> = r
                .lines
                .iter()
                .filter_map(|l| l["live"]["to"].as_u64().map(|v| format!("v{v} live")))
                .collect();
            if let Some(row) = timeline.get_mut(r.row) {
                row["outcome"] = json!(outcome);
                row["host_lines"] = json!(r.lines);
                if !lives.is_empty() {
                    row["live"] = json!(lives);
                }
                if let (false, Some(ms)) = (clean, since_push) {
                    row["killed_ms_after_live_push"] = json!(ms);
                }
                check(row, &r.want);
            }
            let text = match (clean, since_push) {
                (true, _) => format!("SIGTERM to the host: {outcome}"),
                (false, Some(ms)) => {
                    format!("SIGKILL to the host {ms} ms after the live push: the crash")
                }
                (false, None) => "SIGKILL to the host: the crash".to_owned(),
            };
            timeline.push(json!({"event": "signal", "signal": if clean { "TERM" } else { "KILL" }, "text": text}));
            Ok(())
        }

        /// A scenario that stopped early leaves no process behind.
        pub fn end_quietly(&mut self) {
            if let Some(mut r) = self.running.take() {
                let _ = r.child.kill();
                let _ = r.child.wait();
            }
        }
    }
}
