//! `failsafectl fleet ...`: phased rollout to a fleet (docs/fleet.md). The repository,
//! plans, agent, controller and reports are the `failsafe-fleet` crate's; this file holds
//! the command line and the output, [`super::fleet_machine`] the machine the agent runs on.

use std::path::PathBuf;
use std::time::Duration;

use failsafe_fleet::broker::Broker;
use failsafe_fleet::repo::client::Remote;
use failsafe_fleet::repo::keys::{Expiry, KeyDir};
use failsafe_fleet::time::{parse_duration, show_duration};
use failsafe_fleet::{agent, controller, ops, plan, status};
use serde_json::json;

use super::fleet_machine::{Console, os_machine_id};
use crate::fail::Fail;
use crate::report;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
    /// JSON output (one object per result; `agent --follow` and `advance --follow` print
    /// one line per pass).
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(clap::Args, Clone)]
struct RepoArgs {
    /// The repository directory (what the web server serves: metadata/, targets/).
    #[arg(long, value_name = "DIR")]
    repo: PathBuf,
    /// The keys directory (never served; the root key may be kept offline).
    #[arg(long = "keys", id = "key_dir", value_name = "DIR")]
    key_dir: PathBuf,
}

#[derive(clap::Args, Clone)]
struct BrokerArgs {
    /// The MQTT broker: mqtt://[user:pass@]host[:port] or mqtts://...
    #[arg(long, value_name = "URL")]
    broker: Option<String>,
    /// The fleet's name (the topic prefix failsafe/NAME/).
    #[arg(long, value_name = "NAME", default_value = "default")]
    fleet: String,
    /// CA certificate (PEM) for mqtts://.
    #[arg(long, value_name = "PEM")]
    broker_ca: Option<PathBuf>,
    /// Client certificate and key (PEM) for mqtts:// client authentication.
    #[arg(long, value_names = ["CERT", "KEY"], num_args = 2)]
    broker_cert: Option<Vec<PathBuf>>,
}

impl BrokerArgs {
    fn get(&self) -> Result<Option<Broker>, Fail> {
        let Some(url) = &self.broker else {
            return Ok(None);
        };
        let mut b = Broker::parse(url, &self.fleet).map_err(fail)?;
        b.ca.clone_from(&self.broker_ca);
        if let Some([c, k]) = self.broker_cert.as_deref() {
            b.client_cert = Some((c.clone(), k.clone()));
        }
        Ok(Some(b))
    }
    fn need(&self) -> Result<Broker, Fail> {
        self.get()?.ok_or_else(|| {
            Fail::usage("--broker URL is required (the reports come from the broker)".into())
        })
    }
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Create a repository: four Ed25519 role keys (root, targets, snapshot, timestamp)
    /// and the first metadata; prints the root file every agent must ship with.
    Init {
        #[command(flatten)]
        repo: RepoArgs,
        /// Root metadata expiry.
        #[arg(long, default_value = "365d")]
        root_expiry: String,
        /// Targets metadata expiry (re-signed at every change).
        #[arg(long, default_value = "30d")]
        targets_expiry: String,
        /// Snapshot metadata expiry.
        #[arg(long, default_value = "7d")]
        snapshot_expiry: String,
        /// Timestamp expiry: how long a frozen repository is believed.
        #[arg(long, default_value = "1d")]
        timestamp_expiry: String,
    },
    /// Publish a signed content file as a release with a rollout plan (ring 0 opens now).
    #[command(
        after_help = "Example:\n  failsafectl fleet publish 42.fsc --plan rollout.toml --repo /srv/fleet --keys /etc/fleet-keys --key release.pub"
    )]
    Publish {
        /// The content file (signed with the content key; checked here as the driver will).
        file: PathBuf,
        /// The plan (TOML; docs/fleet.md, "The plan").
        #[arg(long, value_name = "PLAN.toml")]
        plan: PathBuf,
        #[command(flatten)]
        repo: RepoArgs,
        #[command(flatten)]
        keys: super::verify::KeyArgs,
    },
    /// The agent: load the repository, take what this machine's ring may take, report.
    Agent {
        /// The repository's base URL (holding metadata/ and targets/).
        #[arg(long, value_name = "URL")]
        repo_url: String,
        /// The trust anchor: the root metadata `fleet init` wrote (1.root.json).
        #[arg(long, value_name = "ROOT.json")]
        root: PathBuf,
        /// This machine's id (default: /etc/machine-id, Windows MachineGuid).
        #[arg(long, value_name = "ID")]
        machine_id: Option<String>,
        /// Put this machine in ring N of every release (its own pin).
        #[arg(long, value_name = "N")]
        ring: Option<usize>,
        /// The agent's files: ledger and TUF datastore (default STORE/fleet).
        #[arg(long, value_name = "DIR")]
        state: Option<PathBuf>,
        #[command(flatten)]
        store: crate::StoreArg,
        #[command(flatten)]
        socket: crate::SocketArg,
        #[command(flatten)]
        broker: BrokerArgs,
        #[command(flatten)]
        keys: super::verify::KeyArgs,
        /// Keep running: one pass every --interval.
        #[arg(long)]
        follow: bool,
        /// Time between passes with --follow.
        #[arg(long, default_value = "5m")]
        interval: String,
        /// Stop --follow after this many passes (tests, drills).
        #[arg(long, value_name = "N")]
        passes: Option<u64>,
    },
    /// The controller: from the reports, open the next ring, complete, or halt and roll back.
    Advance {
        #[command(flatten)]
        repo: RepoArgs,
        #[command(flatten)]
        broker: BrokerArgs,
        /// Keep running: one pass every --interval.
        #[arg(long)]
        follow: bool,
        /// Time between passes with --follow.
        #[arg(long, default_value = "1m")]
        interval: String,
        /// Stop --follow after this many passes.
        #[arg(long, value_name = "N")]
        passes: Option<u64>,
    },
    /// Per release and ring: machines, on the version, healthy, quarantined, silent; the
    /// plan's state and the halt reason.
    Status {
        #[command(flatten)]
        repo: RepoArgs,
        #[command(flatten)]
        broker: BrokerArgs,
        /// Releases to show (newest first).
        #[arg(long, default_value_t = 3)]
        last: usize,
    },
    /// Stop a rollout: no machine takes the version any more (new signed metadata).
    Halt {
        #[command(flatten)]
        repo: RepoArgs,
        /// The release (default: the rolling one, else the newest).
        #[arg(long, value_parser = crate::parse_version)]
        version: Option<u64>,
        /// Why (recorded in the metadata).
        #[arg(long)]
        reason: String,
    },
    /// Continue a halted rollout at its open ring (its bake time starts again).
    Resume {
        #[command(flatten)]
        repo: RepoArgs,
        #[arg(long, value_parser = crate::parse_version)]
        version: Option<u64>,
        #[arg(long)]
        reason: String,
    },
    /// Halt and roll back: machines running the version return to last-known-good.
    Rollback {
        #[command(flatten)]
        repo: RepoArgs,
        #[arg(long, value_parser = crate::parse_version)]
        version: Option<u64>,
        #[arg(long)]
        reason: String,
    },
    /// Hold a machine or a ring at a version (or clear the pin).
    Pin {
        #[command(flatten)]
        repo: RepoArgs,
        /// A machine id.
        #[arg(long, conflicts_with = "ring", required_unless_present = "ring")]
        machine: Option<String>,
        /// A ring index.
        #[arg(long)]
        ring: Option<usize>,
        /// The version (2 or v2).
        #[arg(long, value_parser = crate::parse_version, conflicts_with = "clear", required_unless_present = "clear")]
        version: Option<u64>,
        /// Remove the pin.
        #[arg(long)]
        clear: bool,
    },
    /// Re-sign the metadata with fresh expiry now (the controller does it by itself).
    Refresh {
        #[command(flatten)]
        repo: RepoArgs,
    },
}

fn fail(e: failsafe_fleet::Error) -> Fail {
    Fail::new(e.exit, e.code, e.msg)
}

fn dur(field: &str, s: &str) -> Result<u64, Fail> {
    parse_duration(field, s).map_err(|e| Fail::usage(e.msg))
}

pub fn run(a: &Args) -> Result<u8, Fail> {
    let json = a.json;
    match &a.cmd {
        Cmd::Init {
            repo,
            root_expiry,
            targets_expiry,
            snapshot_expiry,
            timestamp_expiry,
        } => {
            let expiry = Expiry {
                root: dur("--root-expiry", root_expiry)?,
                targets: dur("--targets-expiry", targets_expiry)?,
                snapshot: dur("--snapshot-expiry", snapshot_expiry)?,
                timestamp: dur("--timestamp-expiry", timestamp_expiry)?,
            };
            let keys = KeyDir::new(&repo.key_dir);
            let i = failsafe_fleet::repo::init::init(&repo.repo, &keys, expiry).map_err(fail)?;
            report::out(
                json,
                report::versioned(
                    json!({"repo": repo.repo, "keys": repo.key_dir, "root": i.root,
                    "key_ids": i.key_ids.iter().map(|(r, id)| json!({"role": r, "key_id": id})).collect::<Vec<_>>(),
                    "expiry": {"root": expiry.root, "targets": expiry.targets, "snapshot": expiry.snapshot, "timestamp": expiry.timestamp}}),
                ),
                format!(
                    "repository created in {} (serve this directory), keys in {} (never serve it)\ntrust anchor for every agent (--root): {}\nkeys: {}\nexpiry: root {}, targets {}, snapshot {}, timestamp {}\nthe root key ({}) signs only root metadata: move it offline now",
                    repo.repo.display(),
                    repo.key_dir.display(),
                    i.root.display(),
                    i.key_ids
                        .iter()
                        .map(|(r, id)| format!("{r} {}", id.get(..16).unwrap_or(id)))
                        .collect::<Vec<_>>()
                        .join(", "),
                    show_duration(expiry.root),
                    show_duration(expiry.targets),
                    show_duration(expiry.snapshot),
                    show_duration(expiry.timestamp),
                    keys.key_path("root").display()
                ),
            );
            Ok(0)
        }
        Cmd::Publish {
            file,
            plan,
            repo,
            keys,
        } => {
            let trust = keys.given()?.ok_or_else(|| {
                Fail::usage("publish needs the content keys the driver trusts (--key PUB, or --test-signing --test-key PUB): content is checked as the driver will check it before it is listed".into())
            })?;
            let text = std::fs::read_to_string(plan)
                .map_err(|e| Fail::io(format!("cannot read {}: {e}", plan.display())))?;
            let p = plan::Plan::from_toml(&text).map_err(|e| fail(e.context(plan.display())))?;
            let bytes = ops::read_content(file).map_err(fail)?;
            let version = check(&bytes, &trust).map_err(|e| {
                Fail::refused(
                    "content-refused",
                    format!("{}: refused: {e}", file.display()),
                )
            })?;
            let r = ops::publish(&repo.repo, &KeyDir::new(&repo.key_dir), bytes, version, p)
                .map_err(fail)?;
            let mut t = format!(
                "published v{version} as release serial {} (targets metadata version {}, timestamp expires {})\n",
                r.release.serial, r.committed.targets_version, r.committed.timestamp_expires
            );
            for l in r.release.plan.describe() {
                t += &format!("  {l}\n");
            }
            for v in &r.superseded {
                t += &format!("  v{v}'s rollout stopped: superseded by v{version}\n");
            }
            t += "ring 0 is open now";
            report::out(
                json,
                report::versioned(json!({"published": version, "serial": r.release.serial,
                    "targets_version": r.committed.targets_version, "superseded": r.superseded,
                    "plan": r.release.plan})),
                t,
            );
            Ok(0)
        }
        Cmd::Agent {
            repo_url,
            root,
            machine_id,
            ring,
            state,
            store,
            socket,
            broker,
            keys,
            follow,
            interval,
            passes,
        } => {
            let machine = match machine_id {
                Some(m) => m.clone(),
                None => os_machine_id().map_err(Fail::usage)?,
            };
            let root_bytes = std::fs::read(root).map_err(|e| {
                Fail::io(format!(
                    "cannot read the trust anchor {}: {e}",
                    root.display()
                ))
            })?;
            let store_dir = store.dir();
            let state_dir = state.clone().unwrap_or_else(|| store_dir.join("fleet"));
            let remote = Remote::new(repo_url, root_bytes, state_dir.join("tuf")).map_err(fail)?;
            let cfg = agent::Config {
                machine,
                ring_pin: *ring,
                remote,
                broker: broker.get()?,
                state_dir,
                driver_version: env!("CARGO_PKG_VERSION").to_owned(),
                agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            };
            let console = Console {
                exe: std::env::current_exe()
                    .map_err(|e| Fail::io(format!("cannot find this program's path: {e}")))?,
                store: store_dir,
                socket: socket.socket.clone(),
                trust: keys.trust()?,
            };
            let every = Duration::from_secs(dur("--interval", interval)?.max(1));
            let mut n = 0u64;
            loop {
                let code = agent_pass(&cfg, &console, json)?;
                n = n.saturating_add(1);
                if !follow || passes.is_some_and(|p| n >= p) {
                    return Ok(code);
                }
                std::thread::sleep(every);
            }
        }
        Cmd::Advance {
            repo,
            broker,
            follow,
            interval,
            passes,
        } => {
            let cfg = controller::Config {
                repo: repo.repo.clone(),
                keys: KeyDir::new(&repo.key_dir),
                broker: broker.need()?,
                quiet: Duration::from_millis(500),
            };
            let every = Duration::from_secs(dur("--interval", interval)?.max(1));
            let mut n = 0u64;
            loop {
                let code = advance_pass(&cfg, json)?;
                n = n.saturating_add(1);
                if !follow || passes.is_some_and(|p| n >= p) {
                    return Ok(code);
                }
                std::thread::sleep(every);
            }
        }
        Cmd::Status { repo, broker, last } => fleet_status(repo, broker, *last, json),
        Cmd::Halt {
            repo,
            version,
            reason,
        } => responder(
            json,
            ops::halt(&repo.repo, &KeyDir::new(&repo.key_dir), *version, reason),
        ),
        Cmd::Resume {
            repo,
            version,
            reason,
        } => responder(
            json,
            ops::resume(&repo.repo, &KeyDir::new(&repo.key_dir), *version, reason),
        ),
        Cmd::Rollback {
            repo,
            version,
            reason,
        } => responder(
            json,
            ops::rollback(&repo.repo, &KeyDir::new(&repo.key_dir), *version, reason),
        ),
        Cmd::Pin {
            repo,
            machine,
            ring,
            version,
            clear,
        } => {
            let who = match (machine, ring) {
                (Some(m), _) => ops::PinTarget::Machine(m.clone()),
                (None, Some(r)) => ops::PinTarget::Ring(*r),
                (None, None) => return Err(Fail::usage("give --machine ID or --ring N".into())),
            };
            let v = if *clear { None } else { *version };
            responder(
                json,
                ops::pin(&repo.repo, &KeyDir::new(&repo.key_dir), &who, v),
            )
        }
        Cmd::Refresh { repo } => {
            let c = ops::refresh(&repo.repo, &KeyDir::new(&repo.key_dir)).map_err(fail)?;
            report::out(
                json,
                report::versioned(
                    json!({"targets_version": c.targets_version, "timestamp_version": c.timestamp_version, "timestamp_expires": c.timestamp_expires}),
                ),
                format!(
                    "re-signed: targets version {}, timestamp version {} (expires {})",
                    c.targets_version, c.timestamp_version, c.timestamp_expires
                ),
            );
            Ok(0)
        }
    }
}

/// Signature by a trusted key, then the validator: what the driver will do.
fn check(bytes: &[u8], trust: &failsafe_loader::trust::Trust) -> Result<u64, String> {
    failsafe_loader::trust::verify(bytes, trust).map_err(|e| format!("content signature: {e}"))?;
    failsafe_loader::check(bytes)
        .map(|h| h.version)
        .map_err(|e| format!("invalid content: {e}"))
}

fn responder(
    json: bool,
    r: failsafe_fleet::Result<(
        failsafe_fleet::repo::edit::Committed,
        failsafe_fleet::release::Release,
        String,
    )>,
) -> Result<u8, Fail> {
    let (c, rel, what) = r.map_err(fail)?;
    report::out(
        json,
        report::versioned(
            json!({"done": what, "content_version": rel.content_version, "serial": rel.serial,
            "phase": rel.state.phase.name(), "targets_version": c.targets_version}),
        ),
        format!(
            "{what}\npublished as targets metadata version {}; agents see it at their next pass",
            c.targets_version
        ),
    );
    Ok(0)
}

fn agent_pass(cfg: &agent::Config, console: &Console, json: bool) -> Result<u8, Fail> {
    let p = agent::pass(cfg, console).map_err(fail)?;
    let code = match (&p.problem, &p.unsent) {
        (Some(e), _) => e.exit,
        (None, Some(_)) => 2,
        (None, None) => 0,
    };
    if json {
        outln!(
            "{}",
            report::versioned(json!({"pass": {"machine": cfg.machine, "lines": p.lines,
                "problem": p.problem.as_ref().map(|e| json!({"code": e.code, "message": e.msg})),
                "unsent": p.unsent.as_ref().map(|e| e.msg.clone()),
                "report": p.report}}))
        );
    } else {
        let m = &p.report.machine_state;
        outln!(
            "{} {}: runs {} ({}), last-known-good {}; {}",
            p.report.at,
            cfg.machine,
            m.active.map_or("nothing".to_owned(), |v| format!("v{v}")),
            if !m.running {
                "host not running"
            } else if m.healthy {
                "healthy"
            } else {
                "health pending"
            },
            m.last_known_good
                .map_or("none".to_owned(), |v| format!("v{v}")),
            p.lines.join("; ")
        );
    }
    let _ = std::io::Write::flush(&mut std::io::stdout());
    Ok(code)
}

fn advance_pass(cfg: &controller::Config, json: bool) -> Result<u8, Fail> {
    let o = controller::advance(cfg).map_err(fail)?;
    let decision = o.decision.as_ref().map(|(serial, v, d)| {
        let (kind, why) = match d {
            controller::Decision::Wait(w) => ("wait", w),
            controller::Decision::Advance(w) => ("advance", w),
            controller::Decision::Complete(w) => ("complete", w),
            controller::Decision::Halt(w) => ("halt", w),
        };
        (*serial, *v, kind, why.clone())
    });
    if json {
        outln!(
            "{}",
            report::versioned(
                json!({"advance": {"at": failsafe_fleet::time::now(), "machines": o.machines,
                "decision": decision.as_ref().map(|(s, v, k, w)| json!({"serial": s, "version": v, "kind": k, "why": w})),
                "published": o.published.map(|c| c.targets_version),
                "broker_error": o.broker_error.as_ref().map(|e| e.msg.clone()),
                "bad_reports": o.bad_reports}})
            )
        );
    } else {
        let now = failsafe_fleet::time::now();
        if let Some(e) = &o.broker_error {
            outln!("{now} broker: {e}: not advancing without data");
        }
        for b in &o.bad_reports {
            outln!("{now} ignored report: {b}");
        }
        match &decision {
            Some((_, v, kind, why)) => outln!("{now} v{v}: {}: {why}", kind.to_uppercase()),
            None if o.broker_error.is_none() => outln!(
                "{now} nothing is rolling ({} machine(s) reporting)",
                o.machines
            ),
            None => {}
        }
        if let Some(c) = &o.published {
            outln!(
                "{now} published targets metadata version {}",
                c.targets_version
            );
        }
    }
    let _ = std::io::Write::flush(&mut std::io::stdout());
    Ok(if o.broker_error.is_some() { 2 } else { 0 })
}

fn fleet_status(repo: &RepoArgs, broker: &BrokerArgs, last: usize, json: bool) -> Result<u8, Fail> {
    let local = failsafe_fleet::repo::edit::load(&repo.repo).map_err(fail)?;
    let b = broker.need()?;
    let keys = KeyDir::new(&repo.key_dir);
    let (reports, bad, berr) = match controller::read_reports(&b, Duration::from_millis(500)) {
        Ok((r, bad)) => (r, bad, None),
        Err(e) => (Default::default(), Vec::new(), Some(e)),
    };
    let now = failsafe_fleet::time::now();
    let from = controller::silence_origin(&keys).unwrap_or(now);
    let list = status::build(&local.releases, &reports, now, from, last.max(1));
    let expires = local.repo.timestamp().signed.expires;
    if json {
        outln!(
            "{}",
            report::versioned(
                json!({"repo": repo.repo, "targets_version": local.targets_version(),
                "timestamp_expires": expires, "machines": reports.len(),
                "broker": berr.as_ref().map_or(json!({"ok": true, "url": b.describe()}), |e| json!({"ok": false, "error": e.msg})),
                "bad_reports": bad, "invalid_releases": local.releases.invalid, "releases": list})
            )
        );
        return Ok(if berr.is_some() { 2 } else { 0 });
    }
    outln!(
        "repository {}: targets version {}, timestamp expires {}{}",
        repo.repo.display(),
        local.targets_version(),
        expires,
        if expires < now {
            " (EXPIRED: agents refuse it; run the controller or `fleet refresh`)"
        } else {
            ""
        }
    );
    match &berr {
        Some(e) => outln!("broker: {e}: machine counts below are empty"),
        None => outln!(
            "broker {}: {} machine(s) reporting",
            b.describe(),
            reports.len()
        ),
    }
    for x in &bad {
        outln!("ignored report: {x}");
    }
    for x in &local.releases.invalid {
        outln!("ignored release: {x}");
    }
    outp!("{}", status::text(&list));
    Ok(if berr.is_some() { 2 } else { 0 })
}

/// For `--json` detection in main.
pub fn wants_json(a: &Args) -> bool {
    a.json
}
