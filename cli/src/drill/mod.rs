//! `failsafectl drill`: crash-loop scenarios played across real child processes. Each boot
//! is `failsafectl boot` run as a child against a scratch store; "crash" is a real
//! `abort()` (or a death in the middle of the state write), so nothing in the parent can
//! paper over what a real crash loses.

mod live;
mod scenarios;

use std::path::Path;
use std::process::Command;

use failsafe_loader::{Action, Content, Criterion, EventType, Op, Rule, Values, encode};
use serde_json::{Value, json};

use crate::fail::Fail;
use crate::host::{self, DirStore};

use scenarios::{
    Boot, Corrupt, Expect, Good, Hang, Kill, Live, LiveRefused, Recover, SCENARIOS, Scenario,
    Serve, Step, Stop, WaitHealthy,
};

/// The built-in sample content (also `content/sample.toml`).
pub const SAMPLE: &str = include_str!("../../../content/sample.toml");
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
        if let Some(b) = lines
            .iter()
            .find_map(|l| l["driver_setup"].as_str().map(|_| l))
        {
            row["note"] = json!(format!(
                "the driver's setup crashed after its build attempt (boot {}) was durable",
                b["boot"]
            ));
        }
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
                    (true, _, Some(e)) if e.starts_with("dormant") => "dormant".to_owned(),
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
                        "{:<5} {:<8} {:<9} {:<19} {:<28} {}",
                        "-",
                        "-",
                        "-",
                        "-",
                        row["outcome"].as_str().unwrap_or(""),
                        row["note"].as_str().unwrap_or("died before deciding")
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
