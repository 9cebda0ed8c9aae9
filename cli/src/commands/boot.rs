//! `failsafectl boot`: one simulated driver start against a store, then the rest of the
//! boot as the driver lives it: a health check (uptime, then a canary file operation
//! through the "filter") and a shutdown notification, or a crash or a hang.
//!
//! The host model of the filter stack: every file operation that goes "through the filter"
//! takes `FILTER`, a lock standing for the filter's I/O path. `--then hang` models a filter
//! that deadlocks: the boot's main thread takes `FILTER` and never lets go. The health
//! check runs on its own thread, as the driver's timer DPC and work item do (they keep
//! running when file I/O is stuck); its canary (create, write, flush, read back and delete
//! `DIR/.canary`) needs `FILTER`, so in a hang it never completes and nothing is marked
//! healthy. Uptime alone would have marked it healthy.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use failsafe_loader::state::machine::{Activation, BuildActivation, Config, Env, HealthEvidence};
use failsafe_loader::state::{BuildId, Durable, HealthCheck, IoError, begin_start, finish_start};
use serde_json::json;

use crate::fail::Fail;
use crate::fail::{io_code, os_error};
use crate::host::{CrashAt, DirStore, FileMedium};
use crate::report;
use crate::store::{self, StoreLock, Use};

/// The filter's I/O path (see the module doc).
static FILTER: Mutex<()> = Mutex::new(());

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Then {
    Healthy,
    CleanShutdown,
    Crash,
    Hang,
}

pub struct Args<'a> {
    pub store: &'a Path,
    pub init: bool,
    pub then: Then,
    pub crash_at: Option<CrashAt>,
    pub cfg: Config,
    pub env: Env,
    pub fail_writes: bool,
    /// The driver's trusted keys and test-signing switch.
    pub keys: super::verify::KeyArgs,
    pub json: bool,
}

/// The canary: a real file operation in the store directory, through the filter.
pub(crate) fn canary(dir: &Path) -> Result<(), IoError> {
    let _through_filter = FILTER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let e = |e: std::io::Error| IoError { code: io_code(&e) };
    let path = dir.join(".canary");
    let data = b"failsafe canary: create, write, flush, read, delete\n";
    {
        let mut f = std::fs::File::create(&path).map_err(e)?;
        f.write_all(data).map_err(e)?;
        f.sync_all().map_err(e)?;
    }
    let mut back = Vec::new();
    std::fs::File::open(&path)
        .map_err(e)?
        .read_to_end(&mut back)
        .map_err(e)?;
    std::fs::remove_file(&path).map_err(e)?;
    if back != data {
        return Err(IoError { code: 5 }); // EIO: what was written did not come back
    }
    Ok(())
}

/// The driver build a host start runs as when `--build` is not given: this tool's version
/// and the SHA-256 of a fixed text naming it (stable across runs, so a store keeps one
/// build's history as a machine with one installed driver does).
pub fn host_build() -> BuildId {
    let part = |s: &str| s.parse::<u16>().unwrap_or(0);
    BuildId {
        version: BuildId::pack(
            part(env!("CARGO_PKG_VERSION_MAJOR")),
            part(env!("CARGO_PKG_VERSION_MINOR")),
            part(env!("CARGO_PKG_VERSION_PATCH")),
        ),
        digest: failsafe_loader::state::start::file_digest(
            concat!("failsafectl host build ", env!("CARGO_PKG_VERSION")).as_bytes(),
        ),
    }
}

/// A build identity as `status` prints it: `MAJOR.MINOR.PATCH+<64 hex digits>`.
pub fn parse_build(s: &str) -> Result<BuildId, String> {
    let bad = || {
        format!(
            "invalid build `{s}`: expected MAJOR.MINOR.PATCH+<64 hex digits> (each part 0..=65535), as `failsafectl status` prints it"
        )
    };
    let (version, hex) = s.split_once('+').ok_or_else(bad)?;
    let parts: Vec<u16> = version
        .split('.')
        .map(str::parse::<u16>)
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let [major, minor, patch] = parts[..] else {
        return Err(bad());
    };
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut digest = [0u8; 32];
    for (d, pair) in digest.iter_mut().zip(hex.as_bytes().chunks(2)) {
        let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
        *d = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
    }
    Ok(BuildId {
        version: BuildId::pack(major, minor, patch),
        digest,
    })
}

/// What a start's health check and shutdown close: the content's attempt (and the build's
/// with it), or, with no content active, the build's.
#[derive(Clone, Copy)]
pub enum Token {
    Content(Activation),
    Build(BuildActivation),
}

/// The token of a start: its content activation, else its build attempt.
pub fn token(s: &failsafe_loader::state::start::Started<FileMedium>) -> Option<Token> {
    s.activation
        .map(Token::Content)
        .or(s.build.map(Token::Build))
}

fn line(json: bool, v: serde_json::Value, text: String) {
    if json {
        outln!("{}", crate::report::versioned(v));
    } else {
        outln!("{text}");
    }
    let _ = std::io::stdout().flush();
}

/// The driver's start sequence on the store at `dir`, as `boot` and `serve` run it: under
/// the store lock (a responder's concurrent `recover` waits; a store whose lock cannot even
/// be created is read-only, and the start goes on to find out), the start report written,
/// the decision printed; `crash_at` may end the process right after activation.
pub fn start(
    dir: &Path,
    crash_at: Option<CrashAt>,
    fail_writes: bool,
    cfg: &Config,
    env: &Env,
    trust: &failsafe_loader::trust::Trust,
    json: bool,
) -> failsafe_loader::state::start::Started<FileMedium> {
    let lock = StoreLock::exclusive(dir).ok();
    let mut medium = FileMedium::new(dir, crash_at);
    medium.fail_writes = fail_writes;
    let mut s = begin_start(medium, cfg, env, trust);
    if crash_at == Some(CrashAt::DriverSetup)
        && let Some(b) = s.build
    {
        // The driver's own setup faults: its build attempt is durable, no content chosen.
        line(
            json,
            json!({"driver_setup": "crashed", "build": env.build.to_string(), "boot": b.boot}),
            format!(
                "boot {}: the driver's setup crashed (build {})",
                b.boot, env.build
            ),
        );
        std::process::abort();
    }
    finish_start(&mut s, &mut DirStore::new(dir), cfg, env, trust);
    let report_written = store::write_report(dir, &s.report());
    drop(lock);
    let mut line0 = report::started_json(&s);
    line0["store"] = json!(dir);
    if let Err(e) = &report_written {
        line0["report_error"] = json!(e.to_string());
    }
    if json {
        outln!("{line0}");
    } else {
        outln!("store: {}", dir.display());
        outp!("{}", report::started_text(&s));
    }
    let _ = std::io::stdout().flush();
    if crash_at == Some(CrashAt::AfterActivate) {
        std::process::abort();
    }
    s
}

pub fn run(a: &Args<'_>) -> Result<u8, Fail> {
    let dir = store::open(a.store, a.init, Use::Write)?;
    // A start while a host runs on the same store would charge that host's attempt as a
    // crash (the same refusal as a second `serve`).
    if crate::control::host_answers(&crate::control::default_socket(&dir)) {
        return Err(Fail::refused(
            "already-running",
            format!(
                "refused: a host process (failsafectl serve) runs on {} (one start per store at a time: this one would charge the running host's attempt); stop it first",
                dir.display()
            ),
        ));
    }
    let trust = a.keys.trust()?;
    let booted = Instant::now();
    let s = start(
        &dir,
        a.crash_at,
        a.fail_writes,
        &a.cfg,
        &a.env,
        &trust,
        a.json,
    );
    let act = token(&s);
    let dormant = s.dormant();
    drop(s);
    if dormant && a.then == Then::Hang {
        // Nothing runs that could hang; the machine stays up until it is killed.
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    if dormant && a.then != Then::Crash {
        let ended = "dormant: the driver set nothing up (nothing to check or close)";
        line(a.json, json!({"ended": ended}), format!("ended: {ended}"));
        return Ok(0);
    }
    match a.then {
        Then::Crash => std::process::abort(),
        Then::Hang => {
            // The filter deadlocks: I/O through it never completes.
            let _stuck = FILTER
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(act) = act {
                let dir2 = dir.clone();
                let (cfg, json) = (a.cfg, a.json);
                std::thread::spawn(move || {
                    let _ = health(&dir2, &act, &cfg, booted, json);
                });
            }
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        Then::CleanShutdown => {
            let ended = shutdown(&dir, act)?;
            line(a.json, json!({"ended": ended}), format!("ended: {ended}"));
        }
        Then::Healthy => {
            let ended = match act {
                Some(act) => {
                    let dir2 = dir.clone();
                    let (cfg, json) = (a.cfg, a.json);
                    let check = std::thread::spawn(move || health(&dir2, &act, &cfg, booted, json))
                        .join()
                        .map_err(|_| Fail::io("the health check thread failed".into()))??;
                    shutdown(&dir, Some(act))?;
                    let what = match act {
                        Token::Content(_) => "",
                        Token::Build(_) => " (the driver build, no content)",
                    };
                    match check {
                        Some(h) if h.passed => format!("healthy{what}, then clean shutdown"),
                        Some(h) => format!(
                            "NOT healthy (canary {}), then clean shutdown",
                            h.canary.map_or_else(os_error, |()| "ok".into())
                        ),
                        None => "nothing to mark healthy; clean shutdown".to_owned(),
                    }
                }
                None => {
                    shutdown(&dir, None)?;
                    "no content active (nothing to mark healthy); clean shutdown".to_owned()
                }
            };
            line(a.json, json!({"ended": ended}), format!("ended: {ended}"));
        }
    }
    Ok(0)
}

/// The health work item: waits out `healthy_after`, runs the canary, records the check.
fn health(
    dir: &Path,
    act: &Token,
    cfg: &Config,
    booted: Instant,
    json: bool,
) -> Result<Option<HealthCheck>, Fail> {
    let due = Duration::from_secs(u64::from(cfg.healthy_after_secs));
    while booted.elapsed() < due {
        std::thread::sleep(Duration::from_millis(50).min(due));
    }
    line(
        json,
        json!({"health": "checking"}),
        "health: uptime reached; canary through the filter...".into(),
    );
    let result = canary(dir);
    let evidence = HealthEvidence {
        uptime_secs: u32::try_from(booted.elapsed().as_secs()).unwrap_or(u32::MAX),
        canary: result,
    };
    let _lock = StoreLock::exclusive(dir)?;
    let (_, mut durable) = Durable::open(FileMedium::new(dir, None));
    let check = match act {
        Token::Content(act) => durable.health(act, &evidence, cfg),
        Token::Build(b) => durable.build_health(b, &evidence, cfg),
    }
    .map_err(|e| Fail::io(format!("cannot write state: {}", os_error(e))))?;
    if let Some(h) = check {
        line(
            json,
            json!({"health": {"passed": h.passed, "uptime_secs": h.uptime_secs,
                              "canary": h.canary.map_or_else(os_error, |()| "ok".into())}}),
            format!(
                "health: {} s uptime, canary {}: {}",
                h.uptime_secs,
                h.canary.map_or_else(os_error, |()| "ok".into()),
                if h.passed { "healthy" } else { "NOT healthy" }
            ),
        );
    }
    Ok(check)
}

/// The shutdown notification: closes this start's attempt, if it is still in progress.
fn shutdown(dir: &Path, act: Option<Token>) -> Result<&'static str, Fail> {
    let Some(act) = act else {
        return Ok("clean shutdown (nothing of this start to close)");
    };
    let _lock = StoreLock::exclusive(dir)?;
    let (_, mut durable) = Durable::open(FileMedium::new(dir, None));
    match act {
        Token::Content(act) => {
            let closed = durable
                .clean_shutdown(&act)
                .map_err(|e| Fail::io(format!("cannot write state: {}", os_error(e))))?;
            Ok(shutdown_text(closed, durable.state(), &act))
        }
        Token::Build(b) => {
            durable
                .build_shutdown(&b)
                .map_err(|e| Fail::io(format!("cannot write state: {}", os_error(e))))?;
            Ok("clean shutdown (no content was active)")
        }
    }
}

/// What a clean shutdown did: closed this start's attempt, found it closed already
/// (healthy), or found another start's attempt in the record and closed nothing.
pub fn shutdown_text(
    closed: bool,
    st: &failsafe_loader::state::State,
    act: &failsafe_loader::state::machine::Activation,
) -> &'static str {
    let ours = st
        .attempt
        .is_some_and(|a| a.ver == act.ver && a.boot == act.boot);
    if closed || ours {
        "clean shutdown"
    } else {
        "clean shutdown (the record's attempt is another start's: nothing closed)"
    }
}
