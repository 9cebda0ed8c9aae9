//! The drill's scenarios, run in order on one fleet (each starts from where the last
//! left the fleet, as a real fleet would): July 2024 at fleet scale, silent canaries, a
//! good release ring by ring, then the attacks and faults.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use failsafe_fleet::bucket::ring_of;
use failsafe_fleet::plan::Plan;
use failsafe_fleet::plan::state::Phase;
use failsafe_fleet::release::Release;
use failsafe_fleet::repo::edit;
use failsafe_fleet::repo::keys::KeyDir;

use crate::infra::{self, Server};
use crate::machines::{Machine, Setup, Shared, World};
use crate::{Checks, Opts, ctl, state_of, wait_for};

/// Everything the scenarios share.
struct Fleet {
    o: Opts,
    dir: PathBuf,
    repo: PathBuf,
    keys: PathBuf,
    setup: Setup,
    world: Shared,
    machines: Vec<Machine>,
    nginx: Server,
    broker: Server,
    controller: Option<std::process::Child>,
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn lock(w: &Shared) -> std::sync::MutexGuard<'_, World> {
    w.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Fleet {
    fn ctl(&self, args: &[&str]) -> Result<String, String> {
        let (code, out, err) = ctl(&self.o.exe, args);
        if code == 0 {
            Ok(out)
        } else {
            Err(format!(
                "failsafectl {} (exit {code}): {}{}",
                args.join(" "),
                err.trim(),
                out.trim()
            ))
        }
    }

    fn release(&self, version: u64) -> Option<Release> {
        edit::load(&self.repo)
            .ok()?
            .releases
            .by_version(version)
            .map(|(_, r)| r.clone())
    }

    fn publish(&self, version: u64, plan: &str) -> Result<Instant, String> {
        let p = self.dir.join(format!("plan-{version}.toml"));
        std::fs::write(&p, plan).map_err(|e| e.to_string())?;
        let t = Instant::now();
        self.ctl(&[
            "fleet",
            "publish",
            &s(&self.dir.join(format!("{version}.fsc"))),
            "--plan",
            &s(&p),
            "--repo",
            &s(&self.repo),
            "--keys",
            &s(&self.keys),
            "--test-signing",
            "--test-key",
            &s(&self.setup.pubkey),
        ])?;
        Ok(t)
    }

    fn start_controller(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("controller.log"))
            .map_err(|e| e.to_string())?;
        let c = std::process::Command::new(&self.o.exe)
            .args([
                "fleet",
                "advance",
                "--follow",
                "--interval",
                "1s",
                "--repo",
                &s(&self.repo),
            ])
            .args(["--keys", &s(&self.keys), "--broker", &self.setup.broker_url])
            .stdout(log)
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the controller: {e}"))?;
        self.controller = Some(c);
        Ok(())
    }

    fn stop_controller(&mut self) {
        if let Some(mut c) = self.controller.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn ids(&self) -> Vec<String> {
        self.machines.iter().map(|m| m.id.clone()).collect()
    }

    /// Machines whose host activated `v` (the blast radius).
    fn activated(&self, v: u64) -> BTreeSet<String> {
        lock(&self.world)
            .seen
            .iter()
            .filter(|(_, x)| x.activations.contains_key(&v))
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn reboots(&self) -> u32 {
        lock(&self.world).seen.values().map(|x| x.reboots).sum()
    }

    /// Machines whose store holds `v` now.
    fn staged(&self, v: u64) -> BTreeSet<String> {
        self.machines
            .iter()
            .filter(|m| m.store.join("content").join(format!("{v}.fsc")).exists())
            .map(|m| m.id.clone())
            .collect()
    }

    fn states(&self) -> Vec<(String, Option<failsafe_fleet::report::MachineState>)> {
        self.machines
            .iter()
            .map(|m| (m.id.clone(), state_of(&self.o.exe, &m.store)))
            .collect()
    }

    fn agent_log(&self, id: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{id}.agent.log"))).unwrap_or_default()
    }
}

/// A plan: ring 0 the two canaries by name, then `mid`% and the rest by share.
fn plan(bake: &str, silent_after: &str, mid: u8) -> String {
    format!(
        "silent_after = \"{silent_after}\"\n\
         [[ring]]\nname = \"canary\"\nmachines = [\"m00\", \"m01\"]\nbake = \"{bake}\"\nmin_reports = 2\n\
         [[ring]]\nname = \"early\"\npercent = {mid}\nbake = \"{bake}\"\nmax_failure_percent = 5\nmin_reports = 1\n\
         [[ring]]\nname = \"broad\"\npercent = 100\nbake = \"{bake}\"\nmax_failure_percent = 5\nmin_reports = 3\n"
    )
}

pub fn run_all(o: &Opts, dir: &Path, c: &mut Checks) -> Result<(), String> {
    let mut f = setup(o, dir)?;
    let r = (|| {
        july(&mut f, c)?;
        silent(&mut f, c)?;
        good(&mut f, c)?;
        attacks(&mut f, c)?;
        Ok::<(), String>(())
    })();
    println!("\n== shutdown: every host gets SIGTERM (clean shutdown); servers stopped");
    f.stop_controller();
    for m in &mut f.machines {
        m.shutdown(&f.world);
    }
    f.nginx.stop();
    f.broker.stop();
    r
}

fn setup(o: &Opts, dir: &Path) -> Result<Fleet, String> {
    let exe = &o.exe;
    println!(
        "== setup: {} machines, nginx, mosquitto, controller (all on 127.0.0.1) in {}",
        o.machines,
        dir.display()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        // nginx's worker reads the repository as an unprivileged user.
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
    }
    let d = |n: &str| dir.join(n);
    let run = |args: &[&str]| -> Result<(), String> {
        let (code, out, err) = ctl(exe, args);
        if code == 0 {
            Ok(())
        } else {
            Err(format!("failsafectl {}: {}{}", args.join(" "), out, err))
        }
    };
    run(&["keygen", "-o", &s(&d("content.key"))])?;
    run(&["keygen", "-o", &s(&d("attacker.key"))])?;
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../content/sample.toml");
    for v in 1..=9u64 {
        let key = if v == 5 {
            "attacker.key"
        } else {
            "content.key"
        };
        run(&[
            "compile",
            &s(&sample),
            "-o",
            &s(&d(&format!("{v}.fsc"))),
            "--version",
            &v.to_string(),
            "--sign",
            &s(&d(key)),
        ])?;
    }
    let repo = d("repo");
    let keys = d("keys");
    run(&["fleet", "init", "--repo", &s(&repo), "--keys", &s(&keys)])?;
    let nginx = infra::nginx(dir, &repo)?;
    let broker = infra::mosquitto(dir)?;
    let setup = Setup {
        exe: exe.clone(),
        dir: dir.to_path_buf(),
        pubkey: d("content.pub"),
        root: repo.join("metadata/1.root.json"),
        repo_url: format!("http://127.0.0.1:{}/", nginx.port),
        broker_url: format!("mqtt://127.0.0.1:{}", broker.port),
        interval: o.interval.clone(),
        healthy_after: 2,
    };
    // The fleet runs v1, published and complete.
    run(&[
        "fleet",
        "publish",
        &s(&d("1.fsc")),
        "--plan",
        &s(&write(
            dir,
            "plan-1.toml",
            "[[ring]]\nname = \"all\"\npercent = 100\n",
        )?),
        "--repo",
        &s(&repo),
        "--keys",
        &s(&keys),
        "--test-signing",
        "--test-key",
        &s(&setup.pubkey),
    ])?;
    let world: Shared = Arc::new(Mutex::new(World::default()));
    let mut machines = Vec::new();
    for i in 0..o.machines {
        machines.push(Machine::start(
            &format!("m{i:02}"),
            &setup,
            &d("1.fsc"),
            &world,
        )?);
    }
    let mut f = Fleet {
        o: o.clone(),
        dir: dir.to_path_buf(),
        repo,
        keys,
        setup,
        world,
        machines,
        nginx,
        broker,
        controller: None,
    };
    f.start_controller()?;
    let n = f.machines.len();
    let up = wait_for(Duration::from_secs(180), || {
        f.states()
            .iter()
            .all(|(_, s)| s.as_ref().is_some_and(|s| s.active == Some(1) && s.healthy))
            && f.release(1)
                .is_some_and(|r| r.state.phase == Phase::Complete)
    });
    println!(
        "  fleet up: all {n} machines run v1, healthy; release v1 complete ({:.1} s)",
        up.map_or(f64::NAN, |d| d.as_secs_f64())
    );
    if up.is_none() {
        return Err(format!(
            "the fleet of {n} did not come up on v1 within 180 s (see controller.log and the agent logs)"
        ));
    }
    Ok(f)
}

fn write(dir: &Path, name: &str, text: &str) -> Result<PathBuf, String> {
    let p = dir.join(name);
    std::fs::write(&p, text).map_err(|e| e.to_string())?;
    Ok(p)
}

fn july(f: &mut Fleet, c: &mut Checks) -> Result<(), String> {
    println!(
        "\n== July 2024 at fleet scale: v2 crashes every machine that activates it; ring 0 = m00, m01, ring 1 = 10%, ring 2 = the rest"
    );
    lock(&f.world).crash.insert(2);
    let reboots0 = f.reboots();
    let t0 = f.publish(2, &plan("5s", "10s", 10))?;
    let halted = wait_for(Duration::from_secs(120), || {
        f.release(2)
            .is_some_and(|r| r.state.phase == Phase::RolledBack)
    });
    let r = f.release(2).ok_or("v2 is not listed")?;
    let halt = r.state.halt.clone();
    c.check(
        halted.is_some() && halt.as_ref().is_some_and(|h| h.by == "controller"),
        format!(
            "the controller halted v2 and published the rollback: {}",
            halt.as_ref().map_or("no halt".into(), |h| h.reason.clone())
        ),
    );
    c.check(
        r.state.open_ring == 0,
        format!("ring 1 never opened (open ring {})", r.state.open_ring),
    );
    // The canaries' own counters: v2 quarantined, v1 running.
    let back = wait_for(Duration::from_secs(90), || {
        ["m00", "m01"].iter().all(|id| {
            f.machines
                .iter()
                .find(|m| m.id == *id)
                .and_then(|m| state_of(&f.o.exe, &m.store))
                .is_some_and(|s| s.quarantine(2).is_some() && s.active == Some(1) && s.running)
        })
    });
    let q: Vec<String> = f
        .machines
        .iter()
        .take(2)
        .filter_map(|m| {
            state_of(&f.o.exe, &m.store).map(|s| {
                format!(
                    "{} v2 {}",
                    m.id,
                    s.quarantine(2)
                        .map_or("not quarantined".into(), |q| format!(
                            "{} ({})",
                            q.reason,
                            q.detail.clone().unwrap_or_default()
                        ))
                )
            })
        })
        .collect();
    c.check(
        back.is_some(),
        format!("ring 0 quarantined v2 and runs v1 again: {}", q.join("; ")),
    );
    let blast = f.activated(2);
    let expect: BTreeSet<String> = ["m00".to_owned(), "m01".to_owned()].into();
    c.check(
        blast == expect,
        format!(
            "blast radius: {} of {} machines activated v2 ({blast:?})",
            blast.len(),
            f.machines.len()
        ),
    );
    let staged: BTreeSet<String> = f.staged(2).difference(&expect).cloned().collect();
    let took: Vec<String> = f
        .ids()
        .into_iter()
        .filter(|id| !expect.contains(id) && f.agent_log(id).contains("v2 fetched"))
        .collect();
    c.check(
        staged.is_empty() && took.is_empty(),
        format!(
            "no machine outside ring 0 ever staged v2 (stores: {staged:?}, agent logs: {took:?})"
        ),
    );
    let spent = f.reboots().saturating_sub(reboots0);
    let to_halt = halt
        .as_ref()
        .map(|h| (h.at.as_millisecond() - r.published_at.as_millisecond()) as f64 / 1000.0);
    println!(
        "  report: blast radius {} machine(s) of {}; reboots spent fleet-wide {spent}; publish -> halt {:.1} s (published {} , halted {}); harness saw the rollback {:.1} s after publish",
        blast.len(),
        f.machines.len(),
        to_halt.unwrap_or(f64::NAN),
        r.published_at,
        halt.as_ref().map_or("-".into(), |h| h.at.to_string()),
        halted.map_or(f64::NAN, |_| t0.elapsed().as_secs_f64())
    );
    lock(&f.world).crash.remove(&2);
    Ok(())
}

fn silent(f: &mut Fleet, c: &mut Checks) -> Result<(), String> {
    println!(
        "\n== silent canaries: ring 0 machines take v3, hang (no health check passes; a watchdog resets them) and their agents stop reporting"
    );
    lock(&f.world).silent.insert(3);
    f.publish(3, &plan("5s", "8s", 10))?;
    let halted = wait_for(Duration::from_secs(120), || {
        f.release(3)
            .is_some_and(|r| r.state.phase == Phase::RolledBack)
    });
    let r = f.release(3).ok_or("v3 is not listed")?;
    let why = r
        .state
        .halt
        .as_ref()
        .map_or("no halt".into(), |h| h.reason.clone());
    c.check(
        halted.is_some() && (why.contains("silent") || why.contains("insufficient data")),
        format!("silence halted v3 and rolled it back: {why}"),
    );
    let blast = f.activated(3);
    c.check(
        blast.iter().all(|m| m == "m00" || m == "m01"),
        format!("only ring 0 activated v3 ({blast:?})"),
    );
    // The hung canaries' own counters end the hang loop; then their agents come back.
    let back = wait_for(Duration::from_secs(90), || {
        f.machines.iter().take(2).all(|m| {
            state_of(&f.o.exe, &m.store)
                .is_some_and(|s| s.running && s.active == Some(1) && s.quarantine(3).is_some())
        })
    });
    lock(&f.world).silent.remove(&3);
    let q: Vec<String> = f
        .machines
        .iter()
        .take(2)
        .filter_map(|m| {
            state_of(&f.o.exe, &m.store).map(|s| {
                format!(
                    "{} v3 {}",
                    m.id,
                    s.quarantine(3)
                        .map_or("not quarantined".into(), |q| format!(
                            "{} ({})",
                            q.reason,
                            q.detail.clone().unwrap_or_default()
                        ))
                )
            })
        })
        .collect();
    c.check(
        back.is_some(),
        format!(
            "the hung canaries' counters quarantined v3 and they run v1: {}",
            q.join("; ")
        ),
    );
    let setup = f.setup.clone();
    for m in f.machines.iter_mut().take(2) {
        m.revive(&setup, &f.world)?;
    }
    Ok(())
}

fn good(f: &mut Fleet, c: &mut Checks) -> Result<(), String> {
    println!("\n== a good release: v4 through every ring, each only after its bake time");
    let bake = 4u64;
    f.publish(4, &plan(&format!("{bake}s"), "15s", 10))?;
    let done = wait_for(Duration::from_secs(240), || {
        f.release(4)
            .is_some_and(|r| r.state.phase == Phase::Complete)
    });
    let r = f.release(4).ok_or("v4 is not listed")?;
    c.check(
        done.is_some(),
        format!(
            "v4 complete in {:.1} s: {}",
            done.map_or(f64::NAN, |d| d.as_secs_f64()),
            r.state
                .history
                .iter()
                .map(|e| e.what.clone())
                .collect::<Vec<_>>()
                .join(" | ")
        ),
    );
    let all = wait_for(Duration::from_secs(60), || {
        f.states()
            .iter()
            .all(|(_, s)| s.as_ref().is_some_and(|s| s.active == Some(4)))
    });
    c.check(
        all.is_some(),
        format!("all {} machines run v4", f.machines.len()),
    );
    let opened = &r.state.opened_at;
    let gaps: Vec<i64> = opened
        .windows(2)
        .map(|w| (w[1].as_millisecond() - w[0].as_millisecond()) / 1000)
        .collect();
    c.check(
        opened.len() == 3 && gaps.iter().all(|g| *g >= bake as i64),
        format!("each ring opened at least {bake} s after the one before (gaps {gaps:?} s)"),
    );
    // Every machine activated v4 only after its own ring opened.
    let w = lock(&f.world);
    let plan = r.plan.clone();
    let now_i = Instant::now();
    let now_t = failsafe_fleet::time::now();
    let mut early = Vec::new();
    for (id, x) in &w.seen {
        let ring = ring_of(&plan, id, r.serial, None).unwrap_or(0);
        let (Some(first), Some(open)) = (
            x.activations.get(&4).and_then(|v| v.first()),
            opened.get(ring),
        ) else {
            continue;
        };
        let ago = now_i.duration_since(*first).as_millis() as i64;
        let at = now_t.as_millisecond() - ago;
        if at + 500 < open.as_millisecond() {
            early.push(id.clone());
        }
    }
    drop(w);
    c.check(
        early.is_empty(),
        format!("no machine activated v4 before its ring opened ({early:?})"),
    );
    Ok(())
}

fn agent_logs_contain(f: &Fleet, ids: &[&str], what: &str, since: usize) -> bool {
    ids.iter().all(|id| {
        f.agent_log(id)
            .get(since..)
            .is_some_and(|t| t.contains(what))
    })
}

fn log_len(f: &Fleet, id: &str) -> usize {
    f.agent_log(id).len()
}

fn attacks(f: &mut Fleet, c: &mut Checks) -> Result<(), String> {
    let interval =
        failsafe_fleet::time::parse_duration("--interval", &f.o.interval).map_err(|e| e.msg)?;
    let passes = Duration::from_secs(interval * 3 + 2);
    let keys = KeyDir::new(&f.keys);
    let canaries = ["m00", "m01"];

    println!(
        "\n== attack: content signed by the content key but not listed in TUF (v9 placed in targets/)"
    );
    let nine = std::fs::read(f.dir.join("9.fsc")).map_err(|e| e.to_string())?;
    std::fs::write(f.repo.join("targets/9.fsc"), &nine).map_err(|e| e.to_string())?;
    std::thread::sleep(passes);
    let fetched = std::fs::read_to_string(f.dir.join("nginx/logs/access.log"))
        .unwrap_or_default()
        .contains("9.fsc");
    c.check(
        f.staged(9).is_empty() && !fetched,
        "no agent fetched or staged v9 (nginx's access log has no request for it)",
    );

    println!(
        "\n== attack: a TUF-listed file whose content signature fails (v5, signed by another key, published with the TUF keys)"
    );
    let five = std::fs::read(f.dir.join("5.fsc")).map_err(|e| e.to_string())?;
    let p = Plan::from_toml(&plan("5s", "15s", 10)).map_err(|e| e.msg)?;
    let marks: Vec<usize> = canaries.iter().map(|id| log_len(f, id)).collect();
    failsafe_fleet::ops::publish(&f.repo, &keys, five, 5, p).map_err(|e| e.msg)?;
    let seen = wait_for(passes, || {
        canaries
            .iter()
            .zip(&marks)
            .all(|(id, m)| agent_logs_contain(f, &[id], "content signature", *m))
    });
    c.check(
        seen.is_some() && f.staged(5).is_empty() && f.activated(5).is_empty(),
        "ring 0 agents fetched v5 (TUF hash fine) and refused it: content signature failed; nothing staged",
    );
    f.ctl(&[
        "fleet",
        "rollback",
        "--version",
        "5",
        "--reason",
        "drill: bad content signature",
        "--repo",
        &s(&f.repo),
        "--keys",
        &s(&f.keys),
    ])?;

    println!(
        "\n== attack: a listed target whose bytes differ from the signed hash and length (v6)"
    );
    let six = std::fs::read(f.dir.join("6.fsc")).map_err(|e| e.to_string())?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &six);
    let mut evil = std::fs::read(f.dir.join("7.fsc")).map_err(|e| e.to_string())?;
    evil.extend_from_slice(b"appended");
    // The canaries' agents pause while v6 is published and its file on the mirror is
    // swapped, so none fetches the genuine file first.
    for m in f.machines.iter_mut().take(2) {
        m.stop_agent();
    }
    let marks: Vec<usize> = canaries.iter().map(|id| log_len(f, id)).collect();
    let p = Plan::from_toml(&plan("5s", "15s", 10)).map_err(|e| e.msg)?;
    failsafe_fleet::ops::publish(&f.repo, &keys, six, 6, p).map_err(|e| e.msg)?;
    std::fs::write(
        f.repo
            .join(format!("targets/{}.6.fsc", edit::hex(digest.as_ref()))),
        &evil,
    )
    .map_err(|e| e.to_string())?;
    let setup = f.setup.clone();
    for m in f.machines.iter_mut().take(2) {
        m.start_agent(&setup, &f.world)?;
    }
    let seen = wait_for(passes, || {
        canaries
            .iter()
            .zip(&marks)
            .all(|(id, m)| agent_logs_contain(f, &[id], "REFUSED v6", *m))
    });
    let log = f.agent_log("m00");
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("REFUSED v6"))
        .unwrap_or("")
        .to_owned();
    c.check(
        seen.is_some() && f.staged(6).is_empty(),
        format!("ring 0 agents refused v6: {line}"),
    );
    f.ctl(&[
        "fleet",
        "rollback",
        "--version",
        "6",
        "--reason",
        "drill: tampered target",
        "--repo",
        &s(&f.repo),
        "--keys",
        &s(&f.keys),
    ])?;

    println!("\n== attack: replayed older metadata (yesterday's timestamp.json served again)");
    let ts = f.repo.join("metadata/timestamp.json");
    let old = std::fs::read(&ts).map_err(|e| e.to_string())?;
    f.ctl(&[
        "fleet",
        "refresh",
        "--repo",
        &s(&f.repo),
        "--keys",
        &s(&f.keys),
    ])?;
    std::thread::sleep(passes);
    let marks: Vec<usize> = canaries.iter().map(|id| log_len(f, id)).collect();
    f.stop_controller();
    let new = std::fs::read(&ts).map_err(|e| e.to_string())?;
    std::fs::write(&ts, &old).map_err(|e| e.to_string())?;
    let seen = wait_for(passes, || {
        canaries
            .iter()
            .zip(&marks)
            .all(|(id, m)| agent_logs_contain(f, &[id], "rollback protection", *m))
    });
    let still = f
        .states()
        .iter()
        .all(|(_, s)| s.as_ref().is_some_and(|s| s.active == Some(4)));
    c.check(
        seen.is_some() && still,
        "agents refused the older timestamp (rollback protection) and kept v4",
    );
    std::fs::write(&ts, &new).map_err(|e| e.to_string())?;

    println!(
        "\n== fault: an expired timestamp (the publisher stopped re-signing; expiry 2 s for the drill)"
    );
    let settings = f.keys.join("repo.json");
    let saved = std::fs::read(&settings).map_err(|e| e.to_string())?;
    let mut v: serde_json::Value = serde_json::from_slice(&saved).map_err(|e| e.to_string())?;
    v["expiry"]["timestamp"] = serde_json::json!(2);
    std::fs::write(&settings, v.to_string()).map_err(|e| e.to_string())?;
    f.ctl(&[
        "fleet",
        "refresh",
        "--repo",
        &s(&f.repo),
        "--keys",
        &s(&f.keys),
    ])?;
    std::thread::sleep(Duration::from_secs(3));
    let marks: Vec<usize> = canaries.iter().map(|id| log_len(f, id)).collect();
    let seen = wait_for(passes, || {
        canaries.iter().zip(&marks).all(|(id, m)| {
            agent_logs_contain(f, &[id], "metadata-expired", *m)
                || agent_logs_contain(f, &[id], "has expired", *m)
        })
    });
    let still = f
        .states()
        .iter()
        .all(|(_, s)| s.as_ref().is_some_and(|s| s.active == Some(4)));
    c.check(
        seen.is_some() && still,
        "agents refused the expired timestamp (freeze protection), said so, and kept v4",
    );
    std::fs::write(&settings, &saved).map_err(|e| e.to_string())?;
    f.ctl(&[
        "fleet",
        "refresh",
        "--repo",
        &s(&f.repo),
        "--keys",
        &s(&f.keys),
    ])?;
    f.start_controller()?;

    println!("\n== fault: the repository unreachable (nginx stopped)");
    let marks: Vec<usize> = canaries.iter().map(|id| log_len(f, id)).collect();
    f.nginx.stop();
    let seen = wait_for(passes, || {
        canaries.iter().zip(&marks).all(|(id, m)| {
            agent_logs_contain(f, &[id], "repo-unreachable", *m)
                || agent_logs_contain(f, &[id], "cannot fetch", *m)
        })
    });
    let still = f
        .states()
        .iter()
        .all(|(_, s)| s.as_ref().is_some_and(|s| s.active == Some(4)));
    c.check(
        seen.is_some() && still,
        "agents said the repository is unreachable (repo-unreachable) and kept v4",
    );
    f.nginx.start()?;
    // nginx is back on the same port.

    println!(
        "\n== fault: the broker down during a rollout (v7): agents keep working, the controller does not advance"
    );
    f.broker.stop();
    f.publish(7, &plan("3s", "15s", 10))?;
    let took = wait_for(Duration::from_secs(60), || {
        f.machines
            .iter()
            .take(2)
            .all(|m| state_of(&f.o.exe, &m.store).is_some_and(|s| s.active == Some(7)))
    });
    std::thread::sleep(Duration::from_secs(8));
    let r = f.release(7).ok_or("v7 is not listed")?;
    let ctl_log = std::fs::read_to_string(f.dir.join("controller.log")).unwrap_or_default();
    c.check(
        took.is_some() && r.state.open_ring == 0 && r.state.phase == Phase::Rolling && ctl_log.contains("not advancing without data"),
        "with the broker down ring 0 took v7 and the controller held ring 0 (\"not advancing without data\")",
    );
    let unsent = agent_logs_contain(f, &canaries, "report: NOT sent", 0);
    c.check(
        unsent,
        "agents said their reports could not be sent and kept working",
    );
    f.broker.start()?;
    let adv = wait_for(Duration::from_secs(60), || {
        f.release(7).is_some_and(|r| r.state.open_ring >= 1)
    });
    c.check(
        adv.is_some(),
        format!(
            "broker back: reports arrived and the controller opened ring 1 after {:.1} s",
            adv.map_or(f64::NAN, |d| d.as_secs_f64())
        ),
    );
    Ok(())
}
