//! The machine the fleet agent runs on, as the console sees it: the agent's questions
//! (`failsafe_fleet::agent::Machine`) answered by this very binary's `status --json`,
//! `stage`, `stage --live` and `rollback`, run as child processes — the commands an
//! operator runs, with the same checks, locks and output — and the content check by the
//! core's `trust::verify` and validator, the driver's own code.

use std::path::{Path, PathBuf};
use std::process::Command;

use failsafe_fleet::agent::Machine;
use failsafe_fleet::{Error, Result};
use failsafe_loader::trust::Trust;
use serde_json::Value;

/// This machine: its store, the host's socket, and the keys the driver trusts.
pub struct Console {
    pub exe: PathBuf,
    pub store: PathBuf,
    pub socket: Option<PathBuf>,
    pub trust: Trust,
}

impl Console {
    fn run(&self, what: &str, args: &[&std::ffi::OsStr], ok_codes: &[i32]) -> Result<Value> {
        let mut c = Command::new(&self.exe);
        c.args(args).arg("--store").arg(&self.store).arg("--json");
        if let Some(s) = &self.socket {
            c.arg("--socket").arg(s);
        }
        let out = c.output().map_err(|e| {
            Error::io(
                "machine",
                format!("cannot run {} {what}: {e}", self.exe.display()),
            )
        })?;
        let text = String::from_utf8_lossy(&out.stdout);
        let last = text
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .unwrap_or("");
        let v: Option<Value> = serde_json::from_str(last).ok();
        let code = out.status.code().unwrap_or(-1);
        if ok_codes.contains(&code)
            && let Some(v) = v
        {
            return Ok(v);
        }
        let why = v
            .as_ref()
            .and_then(|v| {
                v.pointer("/error/message")
                    .or_else(|| v.pointer("/error/msg"))
            })
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).trim().to_owned());
        Err(Error::refused(
            "machine-refused",
            format!("failsafectl {what} (exit {code}): {why}"),
        ))
    }
}

impl Machine for Console {
    fn status(&self) -> Result<Value> {
        // Exit 3: the record is unreadable; the JSON says so and is still the state.
        self.run("status", &["status".as_ref()], &[0, 3])
    }

    fn check_content(&self, bytes: &[u8]) -> Result<u64> {
        failsafe_loader::trust::verify(bytes, &self.trust)
            .map_err(|e| Error::refused("content-signature", format!("content signature: {e}")))?;
        let h = failsafe_loader::check(bytes)
            .map_err(|e| Error::refused("content-invalid", format!("invalid content: {e}")))?;
        Ok(h.version)
    }

    fn stage(&self, file: &Path, live: bool) -> Result<Value> {
        let mut args: Vec<&std::ffi::OsStr> = vec!["stage".as_ref(), file.as_os_str()];
        if live {
            args.push("--live".as_ref());
        }
        self.run(if live { "stage --live" } else { "stage" }, &args, &[0])
    }

    fn activate(&self, version: u64) -> Result<Value> {
        let v = version.to_string();
        self.run(
            "stage --live",
            &["stage".as_ref(), "--live".as_ref(), v.as_ref()],
            &[0],
        )
    }

    fn rollback(&self) -> Result<Value> {
        self.run("rollback", &["rollback".as_ref()], &[0])
    }

    fn unstage(&self, version: u64) -> Result<bool> {
        use failsafe_loader::state::Durable;
        let fail = |e: crate::fail::Fail| Error::io("machine", e.msg);
        let dir = crate::store::open(&self.store, false, crate::store::Use::Write).map_err(fail)?;
        let _lock = crate::store::StoreLock::exclusive(&dir).map_err(fail)?;
        let (_, durable) = Durable::open(crate::host::FileMedium::new(&dir, None));
        let st = durable.state();
        if st.attempt.is_some_and(|a| a.ver.version == version)
            || st.lkg.is_some_and(|l| l.version == version)
        {
            return Err(Error::refused(
                "in-use",
                format!(
                    "v{version} was started or is last-known-good: not removed (rollback handles it)"
                ),
            ));
        }
        let p = crate::host::DirStore::new(&dir).path(version);
        match std::fs::remove_file(&p) {
            Ok(()) => {
                let _ = crate::host::sync_dir(&dir.join("content"));
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(
                "machine",
                format!("cannot remove {}: {e}", p.display()),
            )),
        }
    }
}

/// The stable machine id: Linux `/etc/machine-id` (systemd), Windows
/// `HKLM\SOFTWARE\Microsoft\Cryptography\MachineGuid`.
pub fn os_machine_id() -> std::result::Result<String, String> {
    #[cfg(windows)]
    {
        windows_registry::LOCAL_MACHINE
            .open(r"SOFTWARE\Microsoft\Cryptography")
            .and_then(|k| k.get_string("MachineGuid"))
            .map(|s| s.trim().to_lowercase())
            .map_err(|e| format!("cannot read HKLM\\SOFTWARE\\Microsoft\\Cryptography\\MachineGuid: {e} (give --machine-id)"))
    }
    #[cfg(not(windows))]
    {
        std::fs::read_to_string("/etc/machine-id")
            .map(|s| s.trim().to_owned())
            .map_err(|e| format!("cannot read /etc/machine-id: {e} (give --machine-id)"))
    }
}
