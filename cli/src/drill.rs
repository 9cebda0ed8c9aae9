//! `failsafectl drill`: crash-loop scenarios played across real child processes. Each boot
//! is `failsafectl boot` run as a child against a scratch store; "crash" is a real
//! `abort()` (or a death in the middle of the state write), so nothing in the parent can
//! paper over what a real crash loses.

use std::path::Path;
use std::process::Command;

use failsafe_loader::{Action, Content, Criterion, EventType, Op, Rule, Values, encode};
use serde_json::{Value, json};

use crate::host::{self, DirStore};
use crate::report::Fail;

/// The built-in sample content (also `content/sample.toml`).
pub const SAMPLE: &str = include_str!("../../content/sample.toml");

#[derive(Clone, Copy)]
enum Step {
    /// The update channel drops a good version into the store.
    Good(u64),
    /// The update channel drops a version with the 2024 mistake: a file-set-info rule
    /// naming field 10 of a type that has 10 fields.
    Bad(u64),
    /// A boot: how it ends, and extra `boot` arguments.
    Boot(&'static str, &'static [&'static str]),
    /// Both slots of the state record overwritten with garbage.
    Corrupt,
    /// A responder's command (`failsafectl recover ...`).
    Recover(&'static [&'static str]),
}

use Step::{Boot, Corrupt, Good, Recover};

const CRASH: Step = Boot("crash", &[]);
const HEALTHY: Step = Boot("healthy", &[]);
const CLEAN: Step = Boot("clean-shutdown", &[]);

struct Scenario {
    number: u32,
    name: &'static str,
    title: &'static str,
    steps: &'static [Step],
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        number: 1,
        name: "crash-loop",
        title: "v2 crashes the machine at every boot",
        steps: &[
            Good(1),
            HEALTHY,
            Good(2),
            CRASH,
            CRASH,
            CRASH,
            HEALTHY,
            CLEAN,
        ],
    },
    Scenario {
        number: 2,
        name: "unrelated-crash",
        title: "one unrelated crash, then healthy: no quarantine",
        steps: &[Good(1), HEALTHY, Good(2), CRASH, HEALTHY, CLEAN],
    },
    Scenario {
        number: 3,
        name: "lkg-crashes",
        title: "v2 and last-known-good v1 both crash: no content",
        steps: &[
            Good(1),
            HEALTHY,
            Good(2),
            CRASH,
            CRASH,
            CRASH,
            CRASH,
            CRASH,
            CRASH,
            CLEAN,
            CLEAN,
        ],
    },
    Scenario {
        number: 4,
        name: "newer-after-quarantine",
        title: "v3 staged after v2 was quarantined is tried",
        steps: &[
            Good(1),
            HEALTHY,
            Good(2),
            CRASH,
            CRASH,
            CRASH,
            CLEAN,
            Good(3),
            HEALTHY,
        ],
    },
    Scenario {
        number: 5,
        name: "torn-write",
        title: "killed in the middle of the state write: the previous record survives",
        steps: &[
            Good(1),
            HEALTHY,
            Good(2),
            Boot("clean-shutdown", &["--crash-at", "state-write:0"]),
            Boot("clean-shutdown", &["--crash-at", "state-write:1"]),
            Boot("clean-shutdown", &["--crash-at", "state-write:512"]),
            Boot("clean-shutdown", &["--crash-at", "state-write:1023"]),
            Boot("clean-shutdown", &["--crash-at", "after-state-write"]),
            HEALTHY,
        ],
    },
    Scenario {
        number: 6,
        name: "clean-reboots",
        title: "clean reboots before healthy never quarantine",
        steps: &[
            Good(1),
            HEALTHY,
            Good(2),
            CLEAN,
            CLEAN,
            CLEAN,
            CLEAN,
            CLEAN,
            HEALTHY,
        ],
    },
    Scenario {
        number: 7,
        name: "safe-mode",
        title: "force-safe-mode and Windows Safe Mode activate nothing; switch off, normal again",
        steps: &[
            Good(1),
            HEALTHY,
            Good(2),
            Boot("crash", &["--force-safe-mode"]),
            Boot("crash", &["--windows-safe-mode"]),
            Recover(&["force-safe-mode", "on"]),
            CRASH,
            Recover(&["force-safe-mode", "off"]),
            HEALTHY,
        ],
    },
    Scenario {
        number: 8,
        name: "state-lost",
        title: "corrupt state record: nothing new activated, reason state-lost",
        steps: &[Good(1), HEALTHY, Corrupt, CLEAN, HEALTHY],
    },
    Scenario {
        number: 9,
        name: "invalid-content",
        title: "content that fails validation (the 21-vs-20 mistake) is quarantined at once",
        steps: &[Good(1), HEALTHY, Step::Bad(2), CLEAN, CLEAN],
    },
];

fn sample(version: u64) -> Result<Content, Fail> {
    crate::source::compile(SAMPLE, Some(version))
        .map_err(|e| Fail::invalid(format!("built-in sample content: {e}")))
}

fn bad(version: u64) -> Result<Vec<u8>, Fail> {
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
    encode(&c).map_err(|e| Fail::invalid(e.to_string()))
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

pub fn run(which: &str, list: bool, keep: Option<&Path>, json: bool) -> Result<u8, Fail> {
    if list {
        for s in SCENARIOS {
            outln!("{:>2}  {:<24} {}", s.number, s.name, s.title);
        }
        return Ok(0);
    }
    let todo: Vec<&Scenario> = if which == "all" {
        SCENARIOS.iter().collect()
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
    if keep.is_some() && todo.len() > 1 {
        return Err(Fail::usage("--keep takes a single scenario".into()));
    }
    let mut all = Vec::new();
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
        let timeline = play(s, &dir)?;
        if json {
            all.push(json!({"scenario": s.number, "name": s.name, "title": s.title, "timeline": timeline}));
        } else {
            print_timeline(s, &dir, keep.is_some(), &timeline);
        }
    }
    if json {
        outln!(
            "{}",
            if all.len() == 1 {
                all.remove(0)
            } else {
                Value::Array(all)
            }
        );
    }
    Ok(0)
}

fn play(s: &Scenario, dir: &Path) -> Result<Vec<Value>, Fail> {
    let exe = std::env::current_exe()
        .map_err(|e| Fail::io(format!("cannot find failsafectl itself: {e}")))?;
    let mut timeline = Vec::new();
    for step in s.steps {
        match *step {
            Good(v) => {
                drop_in(
                    dir,
                    v,
                    &encode(&sample(v)?).map_err(|e| Fail::invalid(e.to_string()))?,
                )?;
                timeline.push(json!({"event": "staged", "version": v}));
            }
            Step::Bad(v) => {
                drop_in(dir, v, &bad(v)?)?;
                timeline.push(json!({"event": "staged", "version": v, "note": "rule 9999 names file-set-info field 10; the type has 10 fields"}));
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
            Boot(then, extra) => {
                let o = Command::new(&exe)
                    .args([
                        "boot",
                        "--json",
                        "--healthy-after",
                        "0",
                        "--then",
                        then,
                        "--store",
                    ])
                    .arg(dir)
                    .args(extra)
                    .output()
                    .map_err(|e| Fail::io(format!("cannot start a boot: {e}")))?;
                let decided: Option<Value> = String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .and_then(|l| serde_json::from_str(l).ok());
                let crash_at = extra.iter().skip_while(|a| **a != "--crash-at").nth(1);
                let outcome = match (o.status.success(), crash_at) {
                    (true, _)
                        if then == "healthy"
                            && decided.as_ref().is_some_and(|d| !d["version"].is_null()) =>
                    {
                        "healthy".to_owned()
                    }
                    (true, _) => "clean-shutdown".to_owned(),
                    (false, Some(at)) => format!("crashed at {at}"),
                    (false, None) => "crashed".to_owned(),
                };
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
                timeline.push(row);
            }
        }
    }
    Ok(timeline)
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
            _ => {}
        }
    }
    outln!();
}
