//! `failsafectl`: compile, validate, inspect and test content; stage it into a store; read
//! and override the boot-attempt state; simulate driver starts and run crash-loop drills.
//! Every decision is made by `failsafe-loader`, the code the kernel runs.

/// `println!` that never panics: a closed pipe (`failsafectl inspect f | head`) ends the
/// process quietly with 141, as a shell reports a SIGPIPE death; other errors exit 2.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let r = writeln!(std::io::stdout(), $($t)*);
        $crate::stdout_result(r);
    }};
}

/// `print!` that never panics (see `outln!`).
macro_rules! outp {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let r = write!(std::io::stdout(), $($t)*);
        $crate::stdout_result(r);
    }};
}

fn stdout_result(r: std::io::Result<()>) {
    if let Err(e) = r {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(2);
    }
}

mod drill;
mod events;
mod host;
mod report;
mod source;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use failsafe_loader::format::read_header;
use failsafe_loader::state::machine::{self, Config, Env};
use failsafe_loader::state::start::file_digest;
use failsafe_loader::state::{Durable, Prior, start};
use failsafe_loader::{RuleSet, check, encode, validate};
use serde_json::json;

use host::{CrashAt, DirStore, FileMedium};
use report::{Fail, hex, out};

const AFTER_HELP: &str = "\
Exit codes: 0 success / valid, 1 invalid content, refused or failed expectation,
            2 usage or I/O error.
Store:      --store DIR, else $FAILSAFE_STORE, else /var/lib/failsafe
            (Windows: %SystemRoot%\\Failsafe). Layout: DIR/state.bin, DIR/content/<N>.fsc.
Docs:       docs/cli.md";

#[derive(Parser)]
#[command(name = "failsafectl", version, about = "Content toolchain and responder's console for the Failsafe minifilter", after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct StoreArg {
    /// Store directory (state record and content/).
    #[arg(long, value_name = "DIR", global = true)]
    store: Option<PathBuf>,
}

impl StoreArg {
    fn dir(&self) -> PathBuf {
        self.store
            .clone()
            .or_else(|| std::env::var_os("FAILSAFE_STORE").map(PathBuf::from))
            .unwrap_or_else(default_store)
    }
}

fn default_store() -> PathBuf {
    #[cfg(windows)]
    {
        let root = std::env::var_os("SystemRoot")
            .map_or_else(|| PathBuf::from(r"C:\Windows"), PathBuf::from);
        root.join("Failsafe")
    }
    #[cfg(not(windows))]
    {
        PathBuf::from("/var/lib/failsafe")
    }
}

#[derive(clap::Args, Clone, Copy)]
struct Tuning {
    /// Unclean starts of one version before it is quarantined (1..=16).
    #[arg(long, global = true, default_value_t = Config::DEFAULT_THRESHOLD, value_parser = clap::value_parser!(u8).range(1..=16))]
    threshold: u8,
}

#[derive(Subcommand)]
enum Cmd {
    /// Compile a TOML source into binary content.
    #[command(
        after_help = "Example:\n  failsafectl compile content/sample.toml -o sample.fsc --version 42"
    )]
    Compile {
        /// TOML source.
        src: PathBuf,
        /// Output file.
        #[arg(short, long, value_name = "OUT.fsc")]
        output: PathBuf,
        /// Content version (overrides `version` in the source).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        version: Option<u64>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Validate content files with the kernel's validator.
    #[command(after_help = "Example:\n  failsafectl validate 41.fsc 42.fsc --json")]
    Validate {
        /// Content files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Show a content file: header, digest, every rule decoded.
    #[command(
        after_help = "Examples:\n  failsafectl inspect 42.fsc\n  failsafectl inspect 42.fsc --source > 42.toml"
    )]
    Inspect {
        /// Content file.
        file: PathBuf,
        /// Print TOML that compiles back to the same bytes.
        #[arg(long, conflicts_with = "json")]
        source: bool,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Evaluate events against content and show the verdict and the deciding rule.
    #[command(
        after_help = "Examples:\n  failsafectl test 42.fsc --event 'file-create path=\"C:\\Users\\a\\x.locky\" process=C:\\evil.exe'\n  failsafectl test 42.fsc --events events.jsonl --json"
    )]
    Test {
        /// Content file.
        file: PathBuf,
        /// Event: '<event-type> field=value ...' (repeatable).
        #[arg(long = "event", value_name = "SPEC")]
        event: Vec<String>,
        /// JSON-lines file of events ({"event": "file-create", "path": ...}).
        #[arg(long = "events", value_name = "FILE")]
        events_file: Option<PathBuf>,
        /// Fail (exit 1) unless every event gets this verdict.
        #[arg(long, value_enum)]
        expect: Option<Verdict>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Validate content and install it into a store atomically.
    #[command(after_help = "Example:\n  failsafectl stage 42.fsc --store /var/lib/failsafe")]
    Stage {
        /// Content file.
        file: PathBuf,
        #[command(flatten)]
        store: StoreArg,
        /// Install even if the version is not newer than the store's newest.
        #[arg(long)]
        force: bool,
        /// Older versions to keep besides last-known-good and newer ones.
        #[arg(long, default_value_t = 3)]
        keep: usize,
        #[command(flatten)]
        tuning: Tuning,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Show the boot-attempt state, the store, and what the next start will do.
    Status {
        #[command(flatten)]
        store: StoreArg,
        #[command(flatten)]
        tuning: Tuning,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Responder's overrides, written through the same state code the driver uses.
    Recover {
        #[command(subcommand)]
        action: RecoverCmd,
        #[command(flatten)]
        store: StoreArg,
        #[command(flatten)]
        tuning: Tuning,
        /// JSON output.
        #[arg(long, global = true)]
        json: bool,
    },
    /// One simulated driver start against a store: the driver's start sequence.
    #[command(
        after_help = "Examples:\n  failsafectl boot --store s --then crash\n  failsafectl boot --store s --crash-at state-write:100"
    )]
    Boot {
        #[command(flatten)]
        store: StoreArg,
        /// How this boot ends.
        #[arg(long, value_enum, default_value_t = Then::CleanShutdown)]
        then: Then,
        /// Die at this step: state-read, state-write:N, after-state-write, after-activate.
        #[arg(long, value_name = "STEP")]
        crash_at: Option<CrashAt>,
        #[command(flatten)]
        tuning: Tuning,
        /// Seconds of uptime before `--then healthy` records healthy.
        #[arg(long, default_value_t = Config::DEFAULT_HEALTHY_AFTER)]
        healthy_after: u32,
        /// Behave as if Windows booted in Safe Mode.
        #[arg(long)]
        windows_safe_mode: bool,
        /// Force safe mode (the configuration switch).
        #[arg(long)]
        force_safe_mode: bool,
        /// JSON output (one line, printed before the boot ends).
        #[arg(long)]
        json: bool,
    },
    /// Run a crash-loop scenario across real child processes on built-in sample content.
    Drill {
        /// Scenario number or name (see --list).
        #[arg(default_value = "1")]
        scenario: String,
        /// List scenarios.
        #[arg(long)]
        list: bool,
        /// Keep the store in this directory (default: a temporary one, removed).
        #[arg(long, value_name = "DIR")]
        keep: Option<PathBuf>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Clone)]
enum RecoverCmd {
    /// Turn the force-safe-mode switch on or off.
    ForceSafeMode {
        #[arg(value_enum)]
        state: OnOff,
    },
    /// Forget attempt counts, quarantine and last-known-good.
    Reset,
    /// Lift the quarantine of a version (it gets fresh attempts).
    Unquarantine {
        /// Version.
        version: u64,
    },
}

#[derive(ValueEnum, Clone, Copy, PartialEq, Eq)]
enum OnOff {
    On,
    Off,
}

#[derive(ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
enum Then {
    /// Stay up `--healthy-after` seconds, record healthy, then shut down cleanly.
    Healthy,
    /// Record an orderly shutdown.
    CleanShutdown,
    /// abort(): the process dies without a clean shutdown.
    Crash,
    /// Hang until killed (for external SIGKILL).
    Hang,
}

#[derive(ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
enum Verdict {
    Allow,
    Audit,
    Block,
    Pass,
}

impl Verdict {
    fn name(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Audit => "audit",
            Verdict::Block => "block",
            Verdict::Pass => "pass",
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Compile {
            src,
            output,
            version,
            json,
        } => compile(&src, &output, version, json),
        Cmd::Validate { files, json } => validate_files(&files, json),
        Cmd::Inspect { file, source, json } => inspect(&file, source, json),
        Cmd::Test {
            file,
            event,
            events_file,
            expect,
            json,
        } => test(&file, &event, events_file.as_deref(), expect, json),
        Cmd::Stage {
            file,
            store,
            force,
            keep,
            tuning,
            json,
        } => stage(&file, &store.dir(), force, keep, tuning, json),
        Cmd::Status {
            store,
            tuning,
            json,
        } => status(&store.dir(), tuning, json),
        Cmd::Recover {
            action,
            store,
            tuning,
            json,
        } => recover(&action, &store.dir(), tuning, json),
        Cmd::Boot {
            store,
            then,
            crash_at,
            tuning,
            healthy_after,
            windows_safe_mode,
            force_safe_mode,
            json,
        } => {
            let cfg = Config {
                threshold: tuning.threshold,
                healthy_after_secs: healthy_after,
                force_safe_mode,
            };
            boot(
                &store.dir(),
                then,
                crash_at,
                cfg,
                Env { windows_safe_mode },
                json,
            )
        }
        Cmd::Drill {
            scenario,
            list,
            keep,
            json,
        } => drill::run(&scenario, list, keep.as_deref(), json),
    };
    match r {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            let _ = std::io::stdout().flush();
            eprintln!("error: {}", f.msg);
            ExitCode::from(f.code)
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, Fail> {
    read_capped(path).map_err(|e| Fail::io(format!("cannot read {}: {e}", path.display())))
}

/// Reads a content file as the driver does: at most one byte more than the largest file
/// the validator accepts, so an oversized file is refused (`limit-exceeded`) without being
/// read whole.
fn read_capped(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let cap = failsafe_loader::content::limits::MAX_FILE_BYTES as u64 + 1;
    let f = std::fs::File::open(path)?;
    let len = f.metadata()?.len().min(cap);
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    f.take(cap).read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn compile(src: &Path, output: &Path, version: Option<u64>, json: bool) -> Result<u8, Fail> {
    let text = std::fs::read_to_string(src)
        .map_err(|e| Fail::io(format!("cannot read {}: {e}", src.display())))?;
    let content = source::compile(&text, version)
        .map_err(|e| Fail::invalid(format!("{}: {e}", src.display())))?;
    let bytes = encode(&content).map_err(|e| Fail::invalid(format!("{}: {e}", src.display())))?;
    // The kernel's own validator has the last word on what gets written.
    let v = validate(&bytes).map_err(|e| {
        Fail::invalid(format!(
            "{}: compiled content fails validation: {e}",
            src.display()
        ))
    })?;
    host::write_atomic(output, &bytes)
        .map_err(|e| Fail::io(format!("cannot write {}: {e}", output.display())))?;
    let digest = hex(&file_digest(&bytes));
    out(
        json,
        json!({"output": output, "version": v.header.version, "rules": v.content.rules.len(), "bytes": bytes.len(), "sha256": digest}),
        format!(
            "compiled {} -> {}: version {}, {} rules, {} bytes, sha256 {digest}",
            src.display(),
            output.display(),
            v.header.version,
            v.content.rules.len(),
            bytes.len()
        ),
    );
    Ok(0)
}

fn validate_files(files: &[PathBuf], json: bool) -> Result<u8, Fail> {
    let mut worst = 0u8;
    let mut results = Vec::new();
    for f in files {
        let (code, value, text) = match read_capped(f) {
            Err(e) => (
                2,
                json!({"file": f, "status": "io-error", "error": e.to_string()}),
                format!("{}: cannot read: {e}", f.display()),
            ),
            Ok(bytes) => match check(&bytes) {
                Ok(v) => {
                    let d = hex(&file_digest(&bytes));
                    (
                        0,
                        json!({"file": f, "status": "valid", "version": v.version, "rules": v.rule_count, "sha256": d}),
                        format!(
                            "{}: OK: version {}, {} rules, sha256 {d}",
                            f.display(),
                            v.version,
                            v.rule_count
                        ),
                    )
                }
                Err(e) => (
                    1,
                    json!({"file": f, "status": "invalid", "error": report::error_json(&e)}),
                    format!("{}: INVALID: {e}", f.display()),
                ),
            },
        };
        worst = worst.max(code);
        if !json {
            outln!("{text}");
        }
        results.push(value);
    }
    if json {
        outln!("{}", serde_json::Value::Array(results));
    }
    Ok(worst)
}

fn inspect(file: &Path, as_source: bool, json: bool) -> Result<u8, Fail> {
    let bytes = read(file)?;
    let header =
        read_header(&bytes).map_err(|e| Fail::invalid(format!("{}: {e}", file.display())))?;
    let v = validate(&bytes).map_err(|e| {
        Fail::invalid(format!(
            "{}: header read, but the file is invalid: {e}",
            file.display()
        ))
    })?;
    if as_source {
        outp!("{}", source::to_source(&v.content));
        return Ok(0);
    }
    let d = hex(&file_digest(&bytes));
    if json {
        let rules: Vec<_> = v
            .content
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| report::rule_json(i, r))
            .collect();
        outln!(
            "{}",
            json!({"file": file, "format": header.format, "schema": header.schema, "version": header.version,
                   "rules": rules, "rule_count": header.rule_count, "rule_table_bytes": header.rules_len,
                   "string_table_bytes": header.strings_len, "body_sha256": hex(&header.digest), "sha256": d, "bytes": bytes.len()})
        );
        return Ok(0);
    }
    outln!("file:          {}", file.display());
    outln!(
        "format:        v{} (event schema {})",
        header.format,
        header.schema
    );
    outln!("version:       {}", header.version);
    outln!(
        "size:          {} bytes (rule table {}, string table {})",
        bytes.len(),
        header.rules_len,
        header.strings_len
    );
    outln!("sha256:        {d}");
    outln!("file digest:   {} (verified)", hex(&header.digest));
    outln!("rules:         {}", header.rule_count);
    for (i, r) in v.content.rules.iter().enumerate() {
        outln!("  #{i} id {} {} on {}:", r.id, r.action, r.event);
        for c in &r.criteria {
            outln!("      {}", source::describe_criterion(r.event, c));
        }
        for (k, set) in r.exceptions.iter().enumerate() {
            let parts: Vec<_> = set
                .iter()
                .map(|c| source::describe_criterion(r.event, c))
                .collect();
            outln!("      except[{k}]: {}", parts.join(" and "));
        }
    }
    Ok(0)
}

fn test(
    file: &Path,
    specs: &[String],
    events_file: Option<&Path>,
    expect: Option<Verdict>,
    json: bool,
) -> Result<u8, Fail> {
    let bytes = read(file)?;
    let v = validate(&bytes).map_err(|e| Fail::invalid(format!("{}: {e}", file.display())))?;
    let rs = RuleSet::compile(&v).map_err(|e| Fail::io(format!("{}: {e}", file.display())))?;
    let mut evs = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        evs.push(
            events::parse_spec(s).map_err(|e| Fail::usage(format!("--event #{}: {e}", i + 1)))?,
        );
    }
    if let Some(p) = events_file {
        let text = std::fs::read_to_string(p)
            .map_err(|e| Fail::io(format!("cannot read {}: {e}", p.display())))?;
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            evs.push(
                events::parse_json(line)
                    .map_err(|e| Fail::usage(format!("{}:{}: {e}", p.display(), n + 1)))?,
            );
        }
    }
    if evs.is_empty() {
        return Err(Fail::usage(
            "no events: give --event SPEC or --events FILE".into(),
        ));
    }
    let mut code = 0;
    let mut rows = Vec::new();
    for e in &evs {
        let m = e.with(|ev| rs.evaluate(ev));
        let verdict = m.map_or("pass", |m| m.action.name());
        let ok = expect.is_none_or(|x| x.name() == verdict);
        if !ok {
            code = 1;
        }
        let rule = m.and_then(|m| {
            v.content
                .rules
                .get(usize::try_from(m.rule_index).ok()?)
                .map(|r| (m, r))
        });
        if json {
            rows.push(json!({"event": e.describe(), "verdict": verdict, "rule_id": m.map(|m| m.rule_id),
                             "rule_index": m.map(|m| m.rule_index), "expected": expect.map(Verdict::name), "ok": ok}));
        } else {
            let why = match rule {
                Some((m, r)) => {
                    let parts: Vec<_> = r
                        .criteria
                        .iter()
                        .map(|c| source::describe_criterion(r.event, c))
                        .collect();
                    format!(
                        " by rule id {} (#{}): {}",
                        m.rule_id,
                        m.rule_index,
                        parts.join(" and ")
                    )
                }
                None => " (no rule matched)".into(),
            };
            let flag = if ok { "" } else { "  <-- UNEXPECTED" };
            outln!("{}\n  => {verdict}{why}{flag}", e.describe());
        }
    }
    if json {
        outln!("{}", serde_json::Value::Array(rows));
    }
    Ok(code)
}

fn open_state(dir: &Path) -> (Prior, Durable<FileMedium>) {
    Durable::open(FileMedium::new(dir, None))
}

fn stage(
    file: &Path,
    dir: &Path,
    force: bool,
    keep: usize,
    tuning: Tuning,
    json: bool,
) -> Result<u8, Fail> {
    let bytes = read(file)?;
    let v = validate(&bytes)
        .map_err(|e| Fail::invalid(format!("{}: refused, invalid content: {e}", file.display())))?;
    let version = v.header.version;
    let store = DirStore::new(dir);
    let present = store
        .list()
        .map_err(|e| Fail::io(format!("cannot list {}: {e}", store.dir().display())))?;
    if let Some(&newest) = present.iter().max()
        && newest >= version
        && !force
    {
        return Err(Fail::invalid(format!(
            "refused: version {version} is not newer than version {newest} already in {} (--force to install anyway)",
            store.dir().display()
        )));
    }
    std::fs::create_dir_all(store.dir())
        .map_err(|e| Fail::io(format!("cannot create {}: {e}", store.dir().display())))?;
    let target = store.path(version);
    host::write_atomic(&target, &bytes)
        .map_err(|e| Fail::io(format!("cannot write {}: {e}", target.display())))?;
    // Keep: everything at or above last-known-good, the version of the last attempt, and
    // the `keep` newest of the rest.
    let (_, durable) = open_state(dir);
    let st = *durable.state();
    let lkg = st.lkg.map_or(0, |l| l.version);
    let pinned = |v: u64| {
        v >= lkg && lkg != 0 || st.attempt.is_some_and(|a| a.ver.version == v) || v >= version
    };
    let mut older: Vec<u64> = store
        .list()
        .unwrap_or_default()
        .into_iter()
        .filter(|&v| !pinned(v))
        .collect();
    older.sort_unstable_by(|a, b| b.cmp(a));
    let mut removed = Vec::new();
    for v in older.into_iter().skip(keep) {
        if std::fs::remove_file(store.path(v)).is_ok() {
            removed.push(v);
        }
    }
    let _ = host::sync_dir(store.dir());
    let next = report::preview(dir, tuning.threshold);
    out(
        json,
        json!({"staged": version, "path": target, "sha256": hex(&file_digest(&bytes)), "removed": removed, "next_start": next.0}),
        format!(
            "staged version {version} ({} rules) as {}{}\nnext start: {}",
            v.content.rules.len(),
            target.display(),
            if removed.is_empty() {
                String::new()
            } else {
                format!("\nremoved old versions: {removed:?}")
            },
            next.1
        ),
    );
    Ok(0)
}

fn status(dir: &Path, tuning: Tuning, json: bool) -> Result<u8, Fail> {
    let (prior, durable) = open_state(dir);
    let store = DirStore::new(dir);
    let versions = store
        .list()
        .map_err(|e| Fail::io(format!("cannot list {}: {e}", store.dir().display())))?;
    let next = report::preview(dir, tuning.threshold);
    let files: Vec<_> = versions
        .iter()
        .map(|&v| {
            let p = store.path(v);
            match read_capped(&p) {
                Ok(b) => match check(&b) {
                    Ok(x) if x.version == v => json!({"version": v, "sha256": hex(&file_digest(&b)), "valid": true, "rules": x.rule_count}),
                    Ok(x) => json!({"version": v, "sha256": hex(&file_digest(&b)), "valid": false, "error": format!("header declares version {}", x.version)}),
                    Err(e) => json!({"version": v, "sha256": hex(&file_digest(&b)), "valid": false, "error": e.to_string()}),
                },
                Err(e) => json!({"version": v, "valid": false, "error": format!("cannot read: {e}")}),
            }
        })
        .collect();
    let st = report::state_json(&prior, durable.state());
    if json {
        outln!(
            "{}",
            json!({"store": dir, "state": st, "content": files, "next_start": next.0})
        );
    } else {
        outln!("store: {}", dir.display());
        outp!("{}", report::state_text(&prior, durable.state()));
        outln!("content:");
        if files.is_empty() {
            outln!("  (none)");
        }
        for f in &files {
            let v = f["version"].as_u64().unwrap_or(0);
            let mut tags = Vec::new();
            if durable.state().lkg.is_some_and(|l| l.version == v) {
                tags.push("last-known-good".to_owned());
            }
            if let Some(q) = durable.state().quarantined(v) {
                tags.push(format!("QUARANTINED ({})", q.reason.name()));
            }
            let validity = if f["valid"].as_bool() == Some(true) {
                format!("valid, {} rules", f["rules"])
            } else {
                format!("INVALID: {}", f["error"].as_str().unwrap_or("?"))
            };
            outln!(
                "  v{v}: {validity}; sha256 {} {}",
                f["sha256"].as_str().unwrap_or("-"),
                tags.join(" ")
            );
        }
        outln!("next start: {}", next.1);
    }
    Ok(0)
}

fn recover(action: &RecoverCmd, dir: &Path, tuning: Tuning, json: bool) -> Result<u8, Fail> {
    let (prior, mut durable) = open_state(dir);
    if matches!(prior, Prior::Unreadable) {
        return Err(Fail::io(format!(
            "cannot read the state record in {}",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| Fail::io(format!("cannot create {}: {e}", dir.display())))?;
    let what = match *action {
        RecoverCmd::ForceSafeMode { state } => {
            let on = state == OnOff::On;
            durable
                .persist(&machine::set_force_safe(durable.state(), on))
                .map_err(|e| Fail::io(format!("cannot write state: {e}")))?;
            #[cfg(windows)]
            report::windows::set_force_safe_registry(on).map_err(Fail::io)?;
            format!("force-safe-mode {}", if on { "on" } else { "off" })
        }
        RecoverCmd::Reset => {
            durable
                .persist(&machine::reset(durable.state()))
                .map_err(|e| Fail::io(format!("cannot write state: {e}")))?;
            "state reset: attempt counts, quarantine and last-known-good forgotten".to_owned()
        }
        RecoverCmd::Unquarantine { version } => {
            let Some(n) = machine::unquarantine(durable.state(), version) else {
                let q: Vec<_> = durable
                    .state()
                    .quarantine
                    .iter()
                    .flatten()
                    .map(|q| q.ver.version)
                    .collect();
                return Err(Fail::invalid(format!(
                    "version {version} is not quarantined (quarantined: {q:?})"
                )));
            };
            durable
                .persist(&n)
                .map_err(|e| Fail::io(format!("cannot write state: {e}")))?;
            format!("version {version} released from quarantine with fresh attempts")
        }
    };
    let next = report::preview(dir, tuning.threshold);
    out(
        json,
        json!({"done": what, "next_start": next.0}),
        format!("{what}\nnext start: {}", next.1),
    );
    Ok(0)
}

struct SysClock(std::time::Instant);

impl failsafe_loader::state::Clock for SysClock {
    fn now_ms(&mut self) -> u64 {
        u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

fn boot(
    dir: &Path,
    then: Then,
    crash_at: Option<CrashAt>,
    cfg: Config,
    env: Env,
    json: bool,
) -> Result<u8, Fail> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Fail::io(format!("cannot create {}: {e}", dir.display())))?;
    let mut clock = SysClock(std::time::Instant::now());
    let mut store = DirStore::new(dir);
    let mut s = start(FileMedium::new(dir, crash_at), &mut store, &cfg, &env);
    let line = report::started_json(&s);
    if json {
        outln!("{line}");
    } else {
        outp!("{}", report::started_text(&s));
    }
    let _ = std::io::stdout().flush();
    if crash_at == Some(CrashAt::AfterActivate) {
        std::process::abort();
    }
    let persist = |r: Result<bool, failsafe_loader::state::IoError>| {
        r.map_err(|e| Fail::io(format!("cannot write state: {e}")))
    };
    match then {
        Then::Crash => std::process::abort(),
        Then::Hang => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
        Then::CleanShutdown => {
            persist(s.durable.apply(machine::clean_shutdown))?;
        }
        Then::Healthy => {
            if s.active.is_some() {
                let timer = failsafe_loader::state::HealthTimer::arm(&mut clock, &cfg);
                while !timer.due(&mut clock) {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                persist(s.durable.apply(machine::healthy))?;
            }
            persist(s.durable.apply(machine::clean_shutdown))?;
        }
    }
    if !json {
        outln!(
            "ended: {}",
            match then {
                Then::Healthy if s.active.is_some() => "healthy, then clean shutdown",
                Then::Healthy => "no content active (nothing to mark healthy); clean shutdown",
                _ => "clean shutdown",
            }
        );
    }
    Ok(0)
}
