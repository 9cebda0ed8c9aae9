//! The long-running host's steps (`failsafectl serve`): Unix only.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::scenarios::Expect;
use super::{DevKey, boot_row, check, json_lines};
use crate::fail::Fail;

/// The running host, its output, its row in the timeline and what it must decide.
#[derive(Default)]
pub struct Host {
    running: Option<Running>,
    scratch: Option<tempfile::TempDir>,
}

struct Running {
    child: Child,
    out: BufReader<ChildStdout>,
    row: usize,
    want: Expect,
    lines: Vec<Value>,
    /// When the last live push succeeded (for "crash within N ms").
    pushed: Option<Instant>,
}

fn socket(dir: &Path) -> PathBuf {
    crate::control::default_socket(dir)
}

impl Host {
    pub fn serve(
        &mut self,
        exe: &Path,
        dir: &Path,
        threshold: &str,
        key: &DevKey,
        want: Expect,
        timeline: &mut Vec<Value>,
    ) -> Result<(), Fail> {
        if self.running.is_some() {
            return Err(Fail::usage("drill: a host is already running".into()));
        }
        let mut child = Command::new(exe)
            .args([
                "serve",
                "--json",
                "--healthy-after",
                "1",
                "--threshold",
                threshold,
                "--store",
            ])
            .arg(dir)
            .args(key.trust_args())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| Fail::io(format!("cannot start the host: {e}")))?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            return Err(Fail::io("the host has no standard output".into()));
        };
        let mut out = BufReader::new(stdout);
        let mut lines = Vec::new();
        let mut buf = String::new();
        // The decision, then "listening" once the socket answers.
        while out.read_line(&mut buf).map_or(0, |n| n) > 0 {
            let v: Value = serde_json::from_str(buf.trim()).unwrap_or(Value::Null);
            buf.clear();
            let listening = v.get("listening").is_some();
            lines.push(v);
            if listening {
                break;
            }
        }
        let row = boot_row(&["--serve"], "running".into(), &lines);
        timeline.push(row);
        if !lines.iter().any(|l| l.get("listening").is_some()) {
            let status = child.wait().ok();
            let idx = timeline.len() - 1;
            if let Some(r) = timeline.get_mut(idx) {
                r["outcome"] = json!(format!("exited before listening ({status:?})"));
                check(r, &want);
            }
            return Ok(());
        }
        self.running = Some(Running {
            child,
            out,
            row: timeline.len() - 1,
            want,
            lines,
            pushed: None,
        });
        Ok(())
    }

    /// Writes a pushed file into the drill's scratch directory (not the store).
    pub fn push_file(&mut self, version: u64, bytes: &[u8]) -> Result<PathBuf, Fail> {
        if self.scratch.is_none() {
            self.scratch = Some(
                tempfile::tempdir()
                    .map_err(|e| Fail::io(format!("cannot create a scratch directory: {e}")))?,
            );
        }
        let dir = self.scratch.as_ref().map(|d| d.path().to_path_buf());
        let path = dir.unwrap_or_default().join(format!("{version}.fsc"));
        std::fs::write(&path, bytes)
            .map_err(|e| Fail::io(format!("cannot write {}: {e}", path.display())))?;
        Ok(path)
    }

    pub fn live(
        &mut self,
        exe: &Path,
        dir: &Path,
        target: &str,
        version: u64,
        refusal: Option<&str>,
    ) -> Result<Value, Fail> {
        let started = Instant::now();
        let o = Command::new(exe)
            .args(["stage", target, "--live", "--json", "--store"])
            .arg(dir)
            .output()
            .map_err(|e| Fail::io(format!("cannot run stage --live: {e}")))?;
        let ms = started.elapsed().as_millis();
        let v: Value = json_lines(&o.stdout).pop().unwrap_or(Value::Null);
        let shown = if target.ends_with(".fsc") {
            format!("{version}.fsc")
        } else {
            version.to_string()
        };
        Ok(match refusal {
            None => {
                let ok = o.status.success() && v["live"]["activated"] == json!(version);
                if ok && let Some(r) = self.running.as_mut() {
                    r.pushed = Some(Instant::now());
                }
                let text = if ok {
                    format!(
                        "update channel: failsafectl stage {shown} --live: v{version} activated live ({ms} ms)"
                    )
                } else {
                    format!(
                        "failsafectl stage {shown} --live: expected v{version} activated, got: {}",
                        v["error"]["message"].as_str().unwrap_or(&v.to_string())
                    )
                };
                json!({"event": "live", "version": version, "ok": ok, "text": text, "answer": v})
            }
            Some(name) => {
                let message = v["error"]["refusal"]["message"].as_str().unwrap_or("");
                let ok = o.status.code() == Some(1) && message.starts_with(&format!("{name}:"));
                let text = if ok {
                    format!("failsafectl stage --live {shown}: refused as expected: {message}")
                } else {
                    format!(
                        "failsafectl stage --live {shown}: expected refusal {name}, got exit {:?}: {v}",
                        o.status.code()
                    )
                };
                json!({"event": "live-refused", "version": version, "expected": name, "ok": ok, "text": text, "answer": v})
            }
        })
    }

    pub fn wait_healthy(
        &mut self,
        exe: &Path,
        dir: &Path,
        version: u64,
        lkg: u64,
    ) -> Result<Value, Fail> {
        let started = Instant::now();
        let mut last = Value::Null;
        while started.elapsed() < Duration::from_secs(15) {
            let o = Command::new(exe)
                .args(["status", "--json", "--socket"])
                .arg(socket(dir))
                .arg("--store")
                .arg(dir)
                .output()
                .map_err(|e| Fail::io(format!("cannot run status: {e}")))?;
            let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
            last = v["live"].clone();
            if last["healthy"] == true && last["active"] == json!(version) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let ok = last["healthy"] == true
            && last["active"] == json!(version)
            && last["last_known_good"] == json!(lkg);
        let text = format!(
            "failsafectl status: v{} {}, last-known-good {} (after {} ms){}",
            last["active"],
            if last["healthy"] == true {
                "healthy"
            } else {
                "NOT healthy"
            },
            last["last_known_good"],
            started.elapsed().as_millis(),
            if ok {
                String::new()
            } else {
                format!("; expected v{version} healthy, last-known-good v{lkg}")
            }
        );
        Ok(
            json!({"event": "healthy", "version": version, "lkg": lkg, "ok": ok, "text": text, "live": last}),
        )
    }

    /// Ends the running host: SIGTERM (`clean`) or SIGKILL; fills in its row.
    pub fn end(&mut self, clean: bool, timeline: &mut Vec<Value>) -> Result<(), Fail> {
        let Some(mut r) = self.running.take() else {
            return Err(Fail::usage("drill: no host is running".into()));
        };
        let since_push = r.pushed.map(|p| p.elapsed().as_millis());
        if clean {
            #[cfg(unix)]
            {
                let pid = libc::pid_t::try_from(r.child.id()).unwrap_or(0);
                // SAFETY: kill(2) on our own child's pid, not yet reaped (so not reused).
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
            #[cfg(not(unix))]
            let _ = r.child.kill();
        } else {
            let _ = r.child.kill(); // SIGKILL
        }
        let status = r.child.wait().ok();
        let mut rest = Vec::new();
        let _ = r.out.read_to_end(&mut rest);
        r.lines.extend(json_lines(&rest));
        let ended = r.lines.iter().find_map(|l| l["ended"].as_str());
        let outcome = match (clean, status.is_some_and(|s| s.success()), ended) {
            (true, true, Some("clean shutdown")) => "clean-shutdown",
            (true, _, _) => "stop failed",
            (false, _, _) => "killed",
        };
        let lives: Vec<String> = r
            .lines
            .iter()
            .filter_map(|l| l["live"]["to"].as_u64().map(|v| format!("v{v} live")))
            .collect();
        if let Some(row) = timeline.get_mut(r.row) {
            row["outcome"] = json!(outcome);
            row["host_lines"] = json!(r.lines);
            if !lives.is_empty() {
                row["live"] = json!(lives);
            }
            if let (false, Some(ms)) = (clean, since_push) {
                row["killed_ms_after_live_push"] = json!(ms);
            }
            check(row, &r.want);
        }
        let text = match (clean, since_push) {
            (true, _) => format!("SIGTERM to the host: {outcome}"),
            (false, Some(ms)) => {
                format!("SIGKILL to the host {ms} ms after the live push: the crash")
            }
            (false, None) => "SIGKILL to the host: the crash".to_owned(),
        };
        timeline.push(
            json!({"event": "signal", "signal": if clean { "TERM" } else { "KILL" }, "text": text}),
        );
        Ok(())
    }

    /// A scenario that stopped early leaves no process behind.
    pub fn end_quietly(&mut self) {
        if let Some(mut r) = self.running.take() {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }
}
