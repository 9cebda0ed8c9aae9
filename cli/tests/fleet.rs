//! `failsafectl fleet` as the built binary, without servers: a repository on disk read
//! through `file://`, a store with no host running (so the agent stages for the next
//! start). Shows the console's side of the agent — `status --json`, `stage`, removal of a
//! rolled-back version — and the refusals an operator meets first. The same with real
//! servers, live activation and crashes: the fleet drill (`fleet/drill/run.sh`).
#![cfg(feature = "fleet")]

use std::path::Path;

use assert_cmd::Command;
use predicates::str::contains;

fn ctl(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("failsafectl").unwrap();
    c.current_dir(dir);
    c
}

const CANARY: &str = "[[ring]]\nname = \"canary\"\nmachines = [\"m1\"]\n[[ring]]\npercent = 100\n";

fn setup() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    ctl(p).args(["keygen", "-o", "dev.key"]).assert().success();
    ctl(p)
        .args(["keygen", "-o", "other.key"])
        .assert()
        .success();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../content/sample.toml");
    for (v, key) in [("1", "dev.key"), ("2", "dev.key"), ("3", "other.key")] {
        ctl(p)
            .arg("compile")
            .arg(&sample)
            .args(["-o", &format!("{v}.fsc"), "--version", v, "--sign", key])
            .assert()
            .success();
    }
    std::fs::write(p.join("canary.toml"), CANARY).unwrap();
    std::fs::write(
        p.join("bad.toml"),
        "[[ring]]\npercent = 20\n[[ring]]\npercent = 10\n",
    )
    .unwrap();
    ctl(p)
        .args(["stage", "1.fsc", "--store", "s", "--init"])
        .assert()
        .success();
    ctl(p)
        .args(["fleet", "init", "--repo", "repo", "--keys", "keys"])
        .assert()
        .success()
        .stdout(contains(
            "trust anchor for every agent (--root): repo/metadata/1.root.json",
        ));
    d
}

fn publish(p: &Path, file: &str, plan: &str) -> assert_cmd::assert::Assert {
    ctl(p)
        .args([
            "fleet", "publish", file, "--plan", plan, "--repo", "repo", "--keys", "keys",
        ])
        .args(["--test-signing", "--test-key", "dev.pub"])
        .assert()
}

fn agent(p: &Path, id: &str) -> assert_cmd::assert::Assert {
    let url = url_of(&p.join("repo"));
    ctl(p)
        .args([
            "fleet",
            "agent",
            "--repo-url",
            &url,
            "--root",
            "repo/metadata/1.root.json",
        ])
        .args([
            "--store",
            "s",
            "--machine-id",
            id,
            "--test-signing",
            "--test-key",
            "dev.pub",
        ])
        .assert()
}

fn url_of(dir: &Path) -> String {
    format!("file://{}/", std::fs::canonicalize(dir).unwrap().display())
}

#[test]
fn the_agent_stages_for_the_next_start_and_removes_a_rolled_back_version() {
    let d = setup();
    let p = d.path();
    publish(p, "1.fsc", "canary.toml").success();
    publish(p, "2.fsc", "canary.toml")
        .success()
        .stdout(contains("published v2 as release serial 2"))
        .stdout(contains("v1's rollout stopped: superseded by v2"));
    // Not in ring 0: waits.
    agent(p, "m9")
        .success()
        .stdout(contains("this machine is in ring 1"));
    assert!(!p.join("s/content/2.fsc").exists());
    // The canary: fetched, checked, staged (no host runs, so for the next start).
    agent(p, "m1")
        .success()
        .stdout(contains("v2 fetched (1289 bytes, TUF length and SHA-256 verified), content signature verified, staged for the next start"));
    assert!(p.join("s/content/2.fsc").exists());
    ctl(p)
        .args([
            "fleet", "rollback", "--reason", "test", "--repo", "repo", "--keys", "keys",
        ])
        .assert()
        .success()
        .stdout(contains("v2 rolled back (previous release v1): test"));
    agent(p, "m1")
        .success()
        .stdout(contains("removed from the store before any start used it"));
    assert!(!p.join("s/content/2.fsc").exists());
    // The ledger and the datastore live beside the store.
    assert!(p.join("s/fleet/agent.json").is_file());
    assert!(p.join("s/fleet/tuf/timestamp.json").is_file());
}

#[test]
fn refusals_say_what_and_why() {
    let d = setup();
    let p = d.path();
    publish(p, "1.fsc", "bad.toml").code(1).stderr(contains(
        "plan ring 1 (`ring1`): percent 10 is not above ring 0's 20",
    ));
    publish(p, "3.fsc", "canary.toml")
        .code(1)
        .stderr(contains("3.fsc: refused: content signature"));
    publish(p, "1.fsc", "canary.toml").success();
    publish(p, "1.fsc", "canary.toml")
        .code(1)
        .stderr(contains("v1 is already published"));
    ctl(p)
        .args([
            "fleet", "resume", "--reason", "x", "--repo", "repo", "--keys", "keys",
        ])
        .assert()
        .code(1)
        .stderr(contains("v1 is rolling (expected halted)"));
    ctl(p)
        .args([
            "fleet",
            "pin",
            "--ring",
            "1",
            "--version",
            "7",
            "--repo",
            "repo",
            "--keys",
            "keys",
        ])
        .assert()
        .code(1)
        .stderr(contains("v7 is not a published release"));
    // An unreachable repository: the pass completes, keeps what the machine has, exit 2.
    ctl(p)
        .args([
            "fleet",
            "agent",
            "--repo-url",
            "http://127.0.0.1:1/",
            "--root",
            "repo/metadata/1.root.json",
        ])
        .args([
            "--store",
            "s",
            "--machine-id",
            "m1",
            "--key",
            "dev.pub",
            "--json",
        ])
        .assert()
        .code(2)
        .stdout(contains("\"code\":\"repo-unreachable\""))
        .stdout(contains("keeping what the machine has"));
    // A broker URL that is not one.
    ctl(p)
        .args([
            "fleet", "status", "--repo", "repo", "--keys", "keys", "--broker", "http://x",
        ])
        .assert()
        .code(1)
        .stderr(contains("broker URL `http://x`: scheme `http`"));
}
