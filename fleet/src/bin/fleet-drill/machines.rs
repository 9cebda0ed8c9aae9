//! The machines: each a real `failsafectl serve` host with its own store, and its own
//! `failsafectl fleet agent --follow` process. A watcher per host reads the host's JSON
//! lines; when the host activates a version the scenario marks as crashing, the watcher
//! kills it (SIGKILL: the bugcheck) and starts it again (the reboot), so the host's own
//! boot-attempt counter does the rest. A version marked silent hangs the host (SIGSTOP)
//! and kills its agent a second later: the machine took it and stopped reporting.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the harness saw of one machine.
#[derive(Debug, Default)]
pub struct Seen {
    /// Activations per version (start decisions and live changes) with when.
    pub activations: BTreeMap<u64, Vec<Instant>>,
    /// Kills by the harness (crashes) and the restarts that followed.
    pub reboots: u32,
    /// The host's pid now.
    pub pid: Option<u32>,
    /// Its agent was silenced by the current scenario.
    pub silenced: bool,
}

/// The world the watchers share.
#[derive(Debug, Default)]
pub struct World {
    pub seen: BTreeMap<String, Seen>,
    /// Versions that crash the machine that activates them.
    pub crash: BTreeSet<u64>,
    /// Versions that hang the machine and silence its agent.
    pub silent: BTreeSet<u64>,
    /// Hosts not restarted after they end (shut down).
    pub hold: BTreeSet<String>,
    /// Agent pids (the silent behaviour kills them).
    pub agents: BTreeMap<String, u32>,
}

pub type Shared = Arc<Mutex<World>>;

/// Everything a machine needs to start.
#[derive(Debug, Clone)]
pub struct Setup {
    pub exe: PathBuf,
    pub dir: PathBuf,
    pub pubkey: PathBuf,
    pub root: PathBuf,
    pub repo_url: String,
    pub broker_url: String,
    pub interval: String,
    pub healthy_after: u32,
}

/// One machine.
#[derive(Debug)]
pub struct Machine {
    pub id: String,
    pub store: PathBuf,
    agent: Option<Child>,
    watcher: Option<std::thread::JoinHandle<()>>,
}

fn signal(sig: &str, pid: u32) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

fn lock(w: &Shared) -> std::sync::MutexGuard<'_, World> {
    w.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The version a host line says was activated, if it says one was.
fn activated(line: &serde_json::Value) -> Option<u64> {
    if let Some(l) = line.get("live") {
        return l.get("to").and_then(serde_json::Value::as_u64);
    }
    if line.get("mode").is_some() && line.get("reason").is_some() && line.get("listening").is_none()
    {
        return line.get("version").and_then(serde_json::Value::as_u64);
    }
    None
}

impl Machine {
    /// Creates the store with `first` staged and starts host and agent.
    pub fn start(id: &str, s: &Setup, first: &Path, world: &Shared) -> Result<Machine, String> {
        let store = s.dir.join(id);
        let st = Command::new(&s.exe)
            .args(["stage"])
            .arg(first)
            .arg("--store")
            .arg(&store)
            .args(["--init", "--json"])
            .stdout(Stdio::null())
            .status()
            .map_err(|e| e.to_string())?;
        if !st.success() {
            return Err(format!("{id}: cannot stage the first content"));
        }
        lock(world).seen.insert(id.to_owned(), Seen::default());
        let mut m = Machine {
            id: id.to_owned(),
            store,
            agent: None,
            watcher: None,
        };
        m.watcher = Some(host_loop(
            id.to_owned(),
            s.clone(),
            m.store.clone(),
            world.clone(),
        ));
        m.start_agent(s, world)?;
        Ok(m)
    }

    /// (Re)starts the agent.
    pub fn start_agent(&mut self, s: &Setup, world: &Shared) -> Result<(), String> {
        self.stop_agent();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(s.dir.join(format!("{}.agent.log", self.id)))
            .map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let c = Command::new(&s.exe)
            .args(["fleet", "agent", "--follow", "--interval", &s.interval])
            .args(["--repo-url", &s.repo_url, "--broker", &s.broker_url])
            .arg("--root")
            .arg(&s.root)
            .arg("--store")
            .arg(&self.store)
            .args(["--machine-id", &self.id, "--test-signing", "--test-key"])
            .arg(&s.pubkey)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start the agent of {}: {e}", self.id))?;
        lock(world).agents.insert(self.id.clone(), c.id());
        self.agent = Some(c);
        Ok(())
    }

    /// Stops the agent (if the silent behaviour has not already).
    pub fn stop_agent(&mut self) {
        if let Some(mut c) = self.agent.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Brings a silenced machine's agent back (its host recovered by itself).
    pub fn revive(&mut self, s: &Setup, world: &Shared) -> Result<(), String> {
        if let Some(x) = lock(world).seen.get_mut(&self.id) {
            x.silenced = false;
        }
        self.start_agent(s, world)
    }

    /// Shuts the machine down cleanly (SIGTERM to the host).
    pub fn shutdown(&mut self, world: &Shared) {
        self.stop_agent();
        let pid = {
            let mut w = lock(world);
            w.hold.insert(self.id.clone());
            w.seen.get(&self.id).and_then(|x| x.pid)
        };
        if let Some(p) = pid {
            signal("CONT", p);
            signal("TERM", p);
        }
        if let Some(h) = self.watcher.take() {
            let _ = h.join();
        }
    }
}

/// The host's life: start `serve`, watch its lines, restart it after a crash.
fn host_loop(id: String, s: Setup, store: PathBuf, world: Shared) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        loop {
            let child = Command::new(&s.exe)
                .arg("serve")
                .arg("--store")
                .arg(&store)
                .args([
                    "--healthy-after",
                    &s.healthy_after.to_string(),
                    "--test-signing",
                    "--test-key",
                ])
                .arg(&s.pubkey)
                .arg("--json")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn();
            let Ok(mut child) = child else {
                return;
            };
            let pid = child.id();
            if let Some(x) = lock(&world).seen.get_mut(&id) {
                x.pid = Some(pid);
            }
            if let Some(out) = child.stdout.take() {
                for line in std::io::BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                        continue;
                    };
                    let Some(ver) = activated(&v) else { continue };
                    let mut w = lock(&world);
                    let crash = w.crash.contains(&ver);
                    let silent = w.silent.contains(&ver);
                    if let Some(x) = w.seen.get_mut(&id) {
                        x.activations.entry(ver).or_default().push(Instant::now());
                    }
                    if crash {
                        drop(w);
                        std::thread::sleep(Duration::from_millis(30));
                        signal("KILL", pid);
                    } else if silent {
                        // The version hangs the host: file I/O through the filter stops, so
                        // no health check passes. A moment later (time for the agent to
                        // report that it took the version) the host freezes (SIGSTOP); the
                        // agent dies (the machine went silent); a watchdog resets the
                        // frozen host after 3 s (SIGKILL: an unclean end), and the
                        // reboot activates the version again until the counter
                        // quarantines it.
                        let first = w.seen.get(&id).is_some_and(|x| !x.silenced);
                        if let Some(x) = w.seen.get_mut(&id) {
                            x.silenced = true;
                        }
                        let agent = w.agents.get(&id).copied();
                        drop(w);
                        std::thread::spawn(move || {
                            std::thread::sleep(Duration::from_millis(600));
                            signal("STOP", pid);
                            if first {
                                std::thread::sleep(Duration::from_millis(600));
                                if let Some(a) = agent {
                                    signal("KILL", a);
                                }
                            }
                            std::thread::sleep(Duration::from_millis(3000));
                            signal("KILL", pid);
                            signal("CONT", pid);
                        });
                    }
                }
            }
            let _ = child.wait();
            let mut w = lock(&world);
            if w.hold.contains(&id) {
                return;
            }
            // Every other end was a crash (the harness's SIGKILL): reboot.
            if let Some(x) = w.seen.get_mut(&id) {
                x.reboots = x.reboots.saturating_add(1);
            }
            drop(w);
            std::thread::sleep(Duration::from_millis(300));
        }
    })
}
