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

mod color;
mod commands;
mod control;
mod drill;
mod events;
mod fail;
mod host;
mod lint;
mod preview;
#[cfg(windows)]
mod registry;
mod report;
mod sigma;
mod source;
mod state_mirror;
mod store;
mod stream;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand, ValueEnum};
use failsafe_loader::check;
use failsafe_loader::state::machine::{Config, Env};
use failsafe_loader::state::start::file_digest;
use serde_json::json;

use fail::Fail;
use host::CrashAt;
use report::hex;

/// `--version`: the tool, and the content format, event schema and JSON it reads and
/// writes.
fn long_version() -> &'static str {
    static V: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "{} (content format v{}, event schema v{}, JSON v{})",
            env!("CARGO_PKG_VERSION"),
            failsafe_loader::format::FORMAT_VERSION,
            failsafe_loader::schema::SCHEMA_VERSION,
            fail::JSON_VERSION
        )
    });
    V.as_str()
}

const AFTER_HELP: &str = "\
Exit codes: 0 success / valid, 1 invalid content, refused, failed expectation or
            (diff) rules differ, 2 usage or I/O error, 3 state record unreadable
            (status: state unknown), 141 standard output closed early (| head).
            Under --json, errors are one JSON line on stdout: {\"error\": {\"code\", ...}}.
Colour:     only on a terminal, never with NO_COLOR set.
Store:      --store DIR, else $FAILSAFE_STORE, else /var/lib/failsafe
            (Windows: %SystemRoot%\\Failsafe). Layout: DIR/state.bin, DIR/content/<N>.fsc.
            A missing store is refused unless --init.
Docs:       docs/cli.md";

#[derive(Parser)]
#[command(name = "failsafectl", version = long_version(), about = "Content toolchain and responder's console for the Failsafe minifilter", after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
pub(crate) struct StoreArg {
    /// Store directory (state record and content/).
    #[arg(long, value_name = "DIR", global = true)]
    store: Option<PathBuf>,
    /// Create the store if it does not exist (without it, a missing store is an error).
    #[arg(long, global = true)]
    init: bool,
}

impl StoreArg {
    pub(crate) fn dir(&self) -> PathBuf {
        self.store
            .clone()
            .or_else(|| std::env::var_os("FAILSAFE_STORE").map(PathBuf::from))
            .unwrap_or_else(default_store)
    }
}

pub(crate) fn default_store() -> PathBuf {
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

#[derive(clap::Args, Clone)]
pub(crate) struct SocketArg {
    /// The host process's control socket (Linux; default STORE/control.sock). On Windows
    /// the console talks to the driver's control device instead.
    #[arg(long, value_name = "PATH", global = true)]
    pub(crate) socket: Option<PathBuf>,
}

impl SocketArg {
    fn endpoint(&self, store: &StoreArg) -> control::Endpoint {
        control::Endpoint::resolve(self.socket.as_deref(), &store.dir())
    }
}

#[derive(clap::Args, Clone, Copy)]
struct Tuning {
    /// Unclean starts of one version before it is quarantined (1..=16; default 3, or the
    /// registry's Threshold on Windows).
    #[arg(long, global = true, value_parser = clap::value_parser!(u8).range(1..=16))]
    threshold: Option<u8>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Compile a TOML source into binary content (every error and lint in one run).
    Compile(commands::compile::Args),
    /// Validate content files with the kernel's validator.
    #[command(after_help = "Example:\n  failsafectl validate 41.fsc 42.fsc --json")]
    Validate {
        /// Content files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// With keys, the signature is verified first, as the driver does.
        #[command(flatten)]
        keys: commands::verify::KeyArgs,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Show a content file: header, digest, every rule decoded.
    Inspect(commands::inspect::Args),
    /// Evaluate events against content: verdict, deciding rule, vetoing exceptions.
    Test(commands::test::Args),
    /// Rules added, removed, changed and moved between two content files.
    Diff(commands::diff::Args),
    /// Convert rules of another ecosystem (Sigma) to Failsafe TOML.
    Import(commands::import::Args),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completions(commands::completions::Args),
    /// Print the man page (roff) generated from this command line.
    Man(commands::completions::ManArgs),
    /// Validate content and install it into a store atomically; with --live, then have the
    /// running host (driver, or `failsafectl serve`) activate it now.
    #[command(
        after_help = "Examples:\n  failsafectl stage 42.fsc --store /var/lib/failsafe\n  failsafectl stage 42.fsc --live          (stage, then activate live)\n  failsafectl stage --live v42              (activate a version already in the store)"
    )]
    Stage {
        /// Content file; with --live, also a version already in the store (`42` or `v42`,
        /// when no file of that name exists).
        #[arg(value_name = "FILE|VERSION")]
        file: PathBuf,
        /// Activate the version live through the control channel (Linux: the host
        /// process's socket; Windows: the driver's control device), through the same
        /// boot-attempt rules as a start. A refusal exits 1 with the host's code and reason.
        #[arg(long)]
        live: bool,
        #[command(flatten)]
        socket: SocketArg,
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
        /// Show what would be installed and removed, and the next start; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// The host's trusted keys: content they do not verify is refused (it would be
        /// quarantined at the next start). Default: on Windows for this system's store, the
        /// driver's; else the compiled-in release keys (then a signed file is staged with a
        /// warning, an unsigned one refused).
        #[command(flatten)]
        keys: commands::verify::KeyArgs,
        /// Stage content the host's keys refuse anyway (it is quarantined at the next start).
        #[arg(long)]
        allow_untrusted: bool,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Show the boot-attempt state, the store, and what the next start will do; when a host
    /// (driver or `failsafectl serve`) is running, its live state first.
    Status {
        #[command(flatten)]
        store: StoreArg,
        #[command(flatten)]
        socket: SocketArg,
        #[command(flatten)]
        tuning: Tuning,
        /// The host's trusted keys, for the next start's preview (default: on Windows for
        /// this system's store, the driver's; else the compiled-in release keys).
        #[command(flatten)]
        keys: commands::verify::KeyArgs,
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
        /// A running host applies the change (Linux: its socket; Windows: the driver).
        #[command(flatten)]
        socket: SocketArg,
        #[command(flatten)]
        tuning: Tuning,
        /// The host's trusted keys, for the next start's preview.
        #[command(flatten)]
        keys: commands::verify::KeyArgs,
        /// Confirm an action that re-enables a version quarantined for crash-looping.
        #[arg(long, global = true)]
        yes: bool,
        /// Show what the action would do and the next start; write nothing.
        #[arg(long, global = true)]
        dry_run: bool,
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
        /// Die at this step: state-read, state-write:N, after-state-write, driver-setup,
        /// after-activate.
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
        /// Simulate a volume that refuses writes: every state-record write fails with
        /// "No space left on device" (the start report is still written).
        #[arg(long)]
        fail_writes: bool,
        /// Behave as if the OS reported a write filter (UWF) on the record's volume.
        #[arg(long)]
        write_filter: bool,
        /// The driver build this start runs as, `MAJOR.MINOR.PATCH+<64 hex digits>` (as
        /// `status` prints it); default: this tool's own host build. A new build gets fresh
        /// tries; a dormant one starts nothing.
        #[arg(long, value_name = "ID", value_parser = commands::boot::parse_build)]
        build: Option<failsafe_loader::state::BuildId>,
        /// The driver's trusted keys: content must be signed by one of them.
        #[command(flatten)]
        keys: commands::verify::KeyArgs,
        /// JSON output (the decision as one line, printed before the boot ends; then one
        /// line per health check step and one for how the boot ended).
        #[arg(long)]
        json: bool,
    },
    /// The Linux host of the live path: one start, then the control protocol on a Unix
    /// socket (0600) with a health timer, until SIGTERM/SIGINT (clean shutdown).
    #[cfg(unix)]
    #[command(
        after_help = "Example:\n  failsafectl serve --store s --healthy-after 30 --test-signing --test-key dev.pub &\n  failsafectl stage 3.fsc --live --store s\n  kill -TERM %1"
    )]
    Serve {
        #[command(flatten)]
        store: StoreArg,
        #[command(flatten)]
        socket: SocketArg,
        /// Die at this step of the start: state-read, state-write:N, after-state-write,
        /// driver-setup, after-activate.
        #[arg(long, value_name = "STEP")]
        crash_at: Option<CrashAt>,
        #[command(flatten)]
        tuning: Tuning,
        /// Seconds of uptime (since the content was activated or swapped in) before the
        /// health check.
        #[arg(long, default_value_t = Config::DEFAULT_HEALTHY_AFTER)]
        healthy_after: u32,
        /// Behave as if Windows booted in Safe Mode.
        #[arg(long)]
        windows_safe_mode: bool,
        /// Force safe mode (the configuration switch).
        #[arg(long)]
        force_safe_mode: bool,
        /// Every state-record write fails with "No space left on device".
        #[arg(long)]
        fail_writes: bool,
        /// Behave as if the OS reported a write filter (UWF) on the record's volume.
        #[arg(long)]
        write_filter: bool,
        /// The driver build this start runs as (see `boot --build`).
        #[arg(long, value_name = "ID", value_parser = commands::boot::parse_build)]
        build: Option<failsafe_loader::state::BuildId>,
        /// Test events (JSON lines, the `test --events` format), evaluated by the active
        /// rules at every activation; matches that are not allow go to the audit queue.
        #[arg(long, value_name = "FILE")]
        events: Option<PathBuf>,
        #[command(flatten)]
        keys: commands::verify::KeyArgs,
        /// JSON lines: the decision, then one line per live change, health check and end.
        #[arg(long)]
        json: bool,
    },
    /// Have the running host return to last-known-good now (the version rolled back from
    /// is quarantined, reason rolled-back).
    Rollback {
        #[command(flatten)]
        store: StoreArg,
        #[command(flatten)]
        socket: SocketArg,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Print the running host's audit events (text, or JSON lines with --json).
    #[command(after_help = "Example:\n  failsafectl watch --follow --json")]
    Watch {
        #[command(flatten)]
        store: StoreArg,
        #[command(flatten)]
        socket: SocketArg,
        /// Stop after this many events.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Keep polling for new events (until --count, or interrupted).
        #[arg(long)]
        follow: bool,
        /// JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Create a content signing key pair: NAME.key (private, 0600) and NAME.pub.
    #[command(after_help = "Example:\n  failsafectl keygen -o release-2027.key")]
    Keygen {
        /// Private key file to create (the public key goes beside it as .pub).
        #[arg(short, long, value_name = "KEY")]
        output: PathBuf,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Sign a content file with a private key.
    #[command(
        after_help = "Example:\n  failsafectl sign 42.fsc -k release-2027.key -o 42.signed.fsc"
    )]
    Sign {
        /// Content file.
        input: PathBuf,
        /// Private key file.
        #[arg(short, long, value_name = "KEY")]
        key: PathBuf,
        /// Output file.
        #[arg(short, long, value_name = "OUT.fsc")]
        output: PathBuf,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Check content signatures as the driver does (signature by a trusted key, digest).
    #[command(after_help = "Example:\n  failsafectl verify 42.fsc --key release-2027.pub")]
    Verify {
        /// Content files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        keys: commands::verify::KeyArgs,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Phased rollout to a fleet: TUF repository, plans, agent, controller (docs/fleet.md).
    #[cfg(feature = "fleet")]
    Fleet(Box<commands::fleet::Args>),
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
        /// Threshold given to every boot. The expected decisions assume the default (3):
        /// with another value the drill shows where the timeline departs and exits 1.
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=16))]
        threshold: Option<u8>,
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
    /// Forget attempt counts, quarantine and last-known-good (needs --yes when that
    /// re-enables a crash-looping version).
    Reset,
    /// Lift the quarantine of a version (it gets fresh attempts; --yes for a crash loop).
    Unquarantine {
        /// Version: 2 or v2.
        #[arg(value_parser = parse_version)]
        version: u64,
    },
    /// Wake the dormant driver build: it gets fresh tries (needs --yes: it may crash the
    /// machine up to threshold more times).
    Wake,
    /// Replace an unreadable or corrupt record with a fresh one in which every stored
    /// version has one try left (docs/boot-safety.md). Needs --yes.
    Rebuild {
        /// The operator's force-safe-mode switch in the new record.
        #[arg(long, value_enum, default_value_t = OnOff::Off)]
        force_safe_mode: OnOff,
    },
}

/// A content version as a responder types it: `2` or `v2`.
pub(crate) fn parse_version(s: &str) -> Result<u64, String> {
    let digits = s.strip_prefix(['v', 'V']).unwrap_or(s);
    match digits.parse::<u64>() {
        Ok(v) if v > 0 => Ok(v),
        _ => Err(format!(
            "`{s}` is not a content version (expected a number such as 2 or v2)"
        )),
    }
}

#[derive(ValueEnum, Clone, Copy, PartialEq, Eq)]
enum OnOff {
    On,
    Off,
}

#[derive(ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
enum Then {
    /// Stay up `--healthy-after` seconds, run the health check (canary through the
    /// filter), record it, then shut down cleanly.
    Healthy,
    /// Record an orderly shutdown.
    CleanShutdown,
    /// abort(): the process dies without a clean shutdown.
    Crash,
    /// The filter deadlocks: file I/O through it never completes (the health check's
    /// canary blocks, so nothing is marked healthy); waits to be killed.
    Hang,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            let json = std::env::args().any(|a| a == "--json");
            if json && !matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let f = Fail::usage(e.render().to_string().trim().to_owned());
                outln!("{}", f.json());
                let _ = std::io::stdout().flush();
                return ExitCode::from(2);
            }
            e.exit()
        }
    };
    let json = cli.cmd.json();
    let r = match cli.cmd {
        Cmd::Compile(a) => commands::compile::run(&a),
        Cmd::Validate { files, keys, json } => validate_files(&files, &keys, json),
        Cmd::Inspect(a) => commands::inspect::run(&a),
        Cmd::Test(a) => commands::test::run(&a),
        Cmd::Diff(a) => commands::diff::run(&a),
        Cmd::Import(a) => commands::import::run(&a),
        Cmd::Completions(a) => commands::completions::run(&a, Cli::command()),
        Cmd::Man(a) => commands::completions::man(&a, Cli::command()),
        Cmd::Keygen { output, json } => commands::keygen::run(&output, json),
        Cmd::Sign {
            input,
            key,
            output,
            json,
        } => commands::sign::run(&input, &key, &output, json),
        Cmd::Verify { files, keys, json } => {
            commands::verify::run(&files, &keys.keys, &keys.test_keys, keys.test_signing, json)
        }
        Cmd::Stage {
            file,
            live,
            socket,
            store,
            force,
            keep,
            tuning,
            dry_run,
            keys,
            allow_untrusted,
            json,
        } => commands::stage::run(&commands::stage::Args {
            keys: &keys,
            allow_untrusted,
            live: live.then(|| socket.endpoint(&store)),
            file: &file,
            store: &store.dir(),
            init: store.init,
            force,
            keep,
            threshold: tuning.threshold,
            dry_run,
            json,
        }),
        Cmd::Status {
            store,
            socket,
            tuning,
            keys,
            json,
        } => commands::status::run(
            &store.dir(),
            store.init,
            &socket.endpoint(&store),
            tuning.threshold,
            &keys,
            json,
        ),
        #[cfg(unix)]
        Cmd::Serve {
            store,
            socket,
            crash_at,
            tuning,
            healthy_after,
            windows_safe_mode,
            force_safe_mode,
            fail_writes,
            write_filter,
            build,
            events,
            keys,
            json,
        } => commands::serve::run(&commands::serve::Args {
            store: &store.dir(),
            init: store.init,
            socket: socket.socket.as_deref(),
            events: events.as_deref(),
            crash_at,
            cfg: Config {
                threshold: tuning.threshold.unwrap_or(Config::DEFAULT_THRESHOLD),
                healthy_after_secs: healthy_after,
                force_safe_mode,
            },
            env: Env {
                windows_safe_mode,
                writes_may_not_persist: write_filter,
                build: build.unwrap_or_else(commands::boot::host_build),
            },
            fail_writes,
            keys,
            json,
        }),
        Cmd::Rollback {
            store,
            socket,
            json,
        } => commands::live::rollback(&socket.endpoint(&store), json),
        Cmd::Watch {
            store,
            socket,
            count,
            follow,
            json,
        } => commands::live::watch(&commands::live::WatchArgs {
            ep: &socket.endpoint(&store),
            json,
            count,
            follow,
        }),
        Cmd::Recover {
            action,
            store,
            socket,
            tuning,
            keys,
            yes,
            dry_run,
            json,
        } => {
            use commands::recover::Action;
            let action = match action {
                RecoverCmd::ForceSafeMode { state } => Action::ForceSafeMode(state == OnOff::On),
                RecoverCmd::Reset => Action::Reset,
                RecoverCmd::Unquarantine { version } => Action::Unquarantine(version),
                RecoverCmd::Wake => Action::Wake,
                RecoverCmd::Rebuild { force_safe_mode } => Action::Rebuild {
                    force_safe: force_safe_mode == OnOff::On,
                },
            };
            commands::recover::run(
                action,
                &commands::recover::Args {
                    store: &store.dir(),
                    init: store.init,
                    threshold: tuning.threshold,
                    yes,
                    dry_run,
                    json,
                    keys: &keys,
                    ep: &socket.endpoint(&store),
                },
            )
        }
        Cmd::Boot {
            store,
            then,
            crash_at,
            tuning,
            healthy_after,
            windows_safe_mode,
            force_safe_mode,
            fail_writes,
            write_filter,
            build,
            keys,
            json,
        } => commands::boot::run(&commands::boot::Args {
            store: &store.dir(),
            init: store.init,
            then: match then {
                Then::Healthy => commands::boot::Then::Healthy,
                Then::CleanShutdown => commands::boot::Then::CleanShutdown,
                Then::Crash => commands::boot::Then::Crash,
                Then::Hang => commands::boot::Then::Hang,
            },
            crash_at,
            cfg: Config {
                threshold: tuning.threshold.unwrap_or(Config::DEFAULT_THRESHOLD),
                healthy_after_secs: healthy_after,
                force_safe_mode,
            },
            env: Env {
                windows_safe_mode,
                writes_may_not_persist: write_filter,
                build: build.unwrap_or_else(commands::boot::host_build),
            },
            fail_writes,
            keys,
            json,
        }),
        #[cfg(feature = "fleet")]
        Cmd::Fleet(a) => commands::fleet::run(&a),
        Cmd::Drill {
            scenario,
            list,
            keep,
            threshold,
            json,
        } => drill::run(&scenario, list, keep.as_deref(), threshold, json),
    };
    match r {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            if json {
                outln!("{}", f.json());
            }
            let _ = std::io::stdout().flush();
            eprintln!("error: {}", f.msg);
            ExitCode::from(f.code)
        }
    }
}

impl Cmd {
    /// Whether the command was asked for JSON output (errors then go to stdout as JSON).
    fn json(&self) -> bool {
        match self {
            Cmd::Compile(commands::compile::Args { json, .. })
            | Cmd::Inspect(commands::inspect::Args { json, .. })
            | Cmd::Test(commands::test::Args { json, .. })
            | Cmd::Diff(commands::diff::Args { json, .. })
            | Cmd::Import(commands::import::Args { json, .. })
            | Cmd::Validate { json, .. }
            | Cmd::Stage { json, .. }
            | Cmd::Status { json, .. }
            | Cmd::Recover { json, .. }
            | Cmd::Boot { json, .. }
            | Cmd::Keygen { json, .. }
            | Cmd::Sign { json, .. }
            | Cmd::Verify { json, .. }
            | Cmd::Drill { json, .. }
            | Cmd::Rollback { json, .. }
            | Cmd::Watch { json, .. } => *json,
            #[cfg(unix)]
            Cmd::Serve { json, .. } => *json,
            #[cfg(feature = "fleet")]
            Cmd::Fleet(a) => commands::fleet::wants_json(a),
            Cmd::Completions(_) | Cmd::Man(_) => false,
        }
    }
}

/// Reads a content file as the driver does: at most one byte more than the largest file
/// the validator accepts, so an oversized file is refused (`limit-exceeded`) without being
/// read whole.
pub(crate) fn read_capped(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let cap = failsafe_loader::content::limits::MAX_FILE_BYTES as u64 + 1;
    let f = std::fs::File::open(path)?;
    let len = f.metadata()?.len().min(cap);
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    f.take(cap).read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn validate_files(
    files: &[PathBuf],
    keys: &commands::verify::KeyArgs,
    json: bool,
) -> Result<u8, Fail> {
    let trust = keys.given()?;
    let mut worst = 0u8;
    let mut results = Vec::new();
    for f in files {
        let (code, value, text) = match read_capped(f) {
            Err(e) => (
                2,
                json!({"file": f, "status": "io-error", "error": e.to_string()}),
                format!("{}: cannot read: {e}", f.display()),
            ),
            Ok(bytes) => match trust
                .as_ref()
                .map_or(Ok(()), |t| {
                    failsafe_loader::trust::verify(&bytes, t).map(|_| ())
                })
                .and_then(|()| check(&bytes))
            {
                Ok(v) => {
                    let d = hex(&file_digest(&bytes));
                    let (sig, sig_text) = commands::verify::describe(&bytes, &v, trust.as_ref());
                    (
                        0,
                        json!({"file": f, "status": "valid", "version": v.version, "rules": v.rule_count, "sha256": d, "signature": sig}),
                        format!(
                            "{}: OK: version {}, {} rules, sha256 {d}, signature {sig_text}",
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
        // The array is the output's top level; each file's object carries the version, as
        // every JSON line of `test` and `boot` does (docs/cli.md, "JSON").
        results.push(report::versioned(value));
    }
    if json {
        outln!("{}", serde_json::Value::Array(results));
    }
    Ok(worst)
}
