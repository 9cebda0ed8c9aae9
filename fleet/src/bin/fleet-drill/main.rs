//! The fleet drill (`cargo make fleet-drill`; a smaller fleet in `.ci/run` through
//! `fleet/drill/run.sh`): a fleet of real `failsafectl serve` hosts, each with its own
//! store and its own `failsafectl fleet agent` process, a real nginx serving the TUF
//! repository, a real Mosquitto broker and the controller (`fleet advance --follow`), all
//! on loopback, all started here. Scenarios: July 2024 at fleet scale, silent machines, a
//! good release ring by ring, and the attacks and faults of docs/fleet.md. Each check
//! prints what it saw; the drill exits 1 if any failed.

mod infra;
mod machines;
mod scenarios;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use failsafe_fleet::report::MachineState;

/// The drill's settings (command line).
#[derive(Debug, Clone)]
pub struct Opts {
    pub machines: usize,
    pub keep: Option<PathBuf>,
    pub exe: PathBuf,
    pub interval: String,
}

fn usage() -> String {
    "usage: fleet-drill [--machines N (default 50, at least 10)] [--interval 2s] [--keep DIR] [--failsafectl PATH]".into()
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        machines: 50,
        keep: None,
        exe: std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("failsafectl"),
        interval: "2s".into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .ok_or_else(|| format!("{a} needs a value; {}", usage()))
        };
        match a.as_str() {
            "--machines" => {
                o.machines = val()?
                    .parse()
                    .map_err(|_| format!("--machines: a number; {}", usage()))?;
            }
            "--keep" => o.keep = Some(PathBuf::from(val()?)),
            "--failsafectl" => o.exe = PathBuf::from(val()?),
            "--interval" => o.interval = val()?,
            _ => return Err(usage()),
        }
    }
    if o.machines < 10 {
        return Err(format!(
            "--machines {}: at least 10 (two canaries and rings behind them)",
            o.machines
        ));
    }
    if !o.exe.is_file() {
        return Err(format!(
            "{} not found: build it first (cargo build -p failsafectl) or give --failsafectl PATH",
            o.exe.display()
        ));
    }
    Ok(o)
}

/// Pass/fail bookkeeping and the drill's output.
#[derive(Debug, Default)]
pub struct Checks {
    pub passed: u32,
    pub failed: Vec<String>,
}

impl Checks {
    pub fn check(&mut self, ok: bool, what: impl Into<String>) {
        let what = what.into();
        if ok {
            self.passed += 1;
            println!("  ok    {what}");
        } else {
            println!("  FAIL  {what}");
            self.failed.push(what);
        }
    }
}

/// Runs `failsafectl ARGS`; returns (exit code, stdout, stderr).
pub fn ctl(exe: &Path, args: &[&str]) -> (i32, String, String) {
    match Command::new(exe).args(args).stdin(Stdio::null()).output() {
        Ok(o) => (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        ),
        Err(e) => (-1, String::new(), e.to_string()),
    }
}

/// A machine's state as `failsafectl status --json` shows it.
pub fn state_of(exe: &Path, store: &Path) -> Option<MachineState> {
    let s = store.display().to_string();
    let (_, out, _) = ctl(exe, &["status", "--store", &s, "--json"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).ok()?;
    MachineState::from_status(&v).ok()
}

/// Polls `f` every 250 ms until it holds or `limit` passes; returns the time taken.
pub fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if f() {
            return Some(t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    None
}

fn main() -> ExitCode {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let tmp;
    let dir = match &o.keep {
        Some(d) => {
            if let Err(e) = std::fs::create_dir_all(d) {
                eprintln!("error: cannot create {}: {e}", d.display());
                return ExitCode::from(2);
            }
            d.clone()
        }
        None => match tempfile::Builder::new().prefix("fleet-drill").tempdir() {
            Ok(t) => {
                tmp = t;
                tmp.path().to_path_buf()
            }
            Err(e) => {
                eprintln!("error: cannot create a scratch directory: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let started = Instant::now();
    let mut checks = Checks::default();
    if let Err(e) = scenarios::run_all(&o, &dir, &mut checks) {
        println!("  FAIL  the drill stopped: {e}");
        checks.failed.push(e);
    }
    println!(
        "\nfleet drill ({} machines, {:.0} s): {} passed, {} failed",
        o.machines,
        started.elapsed().as_secs_f64(),
        checks.passed,
        checks.failed.len()
    );
    for f in &checks.failed {
        println!("  failed: {f}");
    }
    if checks.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
