//! `failsafectl serve`: the Linux host of the live path. A long-running process that runs
//! the portable start sequence once, as `failsafectl boot` does (same media, options and
//! crash points), then answers the control protocol on a Unix socket as the driver
//! answers its IOCTL: query, live activation, rollback, read audit events, and the
//! operator's changes of the record (`recover` while a host runs: the host is the record's
//! one writer, under the store lock, as the driver is on Windows). It runs the health check
//! on a timer (uptime since the content was activated or swapped in, then a canary file
//! operation in the store) and records a clean shutdown on SIGTERM or SIGINT, as the
//! driver's shutdown notification does. A SIGKILL or an abort is the crash: the
//! next `serve` (or `boot`) is the next start, and charges the attempt in progress.
//!
//! The socket (default `STORE/control.sock`) is created with mode 0600 under a umask of
//! 0177, so only its owner (root for the system store) may connect: the Linux analogue of
//! the driver's control device admitting Administrators and SYSTEM only. A stale socket
//! (nothing answers it) is replaced; a live one, or a path that is not a socket, is
//! refused.
//!
//! Audit events: `--events FILE` (JSON lines, the `failsafectl test` format). Each time
//! content is activated (at the start or live), every event in the file is evaluated by
//! the active rule set as the driver's callbacks would; each match that is not `allow` is
//! queued in the bounded [`EventRing`] the console drains with `failsafectl watch`.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use failsafe_loader::Action;
use failsafe_loader::control::{
    self, AuditEvent, Change, ChangeRefusal, EventRing, Request, Status, decode_request,
    encode_changed, encode_refused, encode_status, kind, status_flags,
};
use failsafe_loader::engine::RuleSet;
use failsafe_loader::state::machine::{Activation, BuildActivation, Config, Env, HealthEvidence};
use failsafe_loader::state::{Durable, HealthCheck, LiveRefusal};
use failsafe_loader::trust::Trust;
use serde_json::json;

use crate::events::{Owned, OwnedEvent, Volumes};
use crate::fail::Fail;
use crate::fail::os_error;
use crate::host::{CrashAt, DirStore, FileMedium};
use crate::report;
use crate::store::{self, StoreLock, Use};

pub struct Args<'a> {
    pub store: &'a Path,
    pub init: bool,
    pub socket: Option<&'a Path>,
    pub events: Option<&'a Path>,
    pub crash_at: Option<CrashAt>,
    pub cfg: Config,
    pub env: Env,
    pub fail_writes: bool,
    pub keys: super::verify::KeyArgs,
    pub json: bool,
}

/// Set by SIGTERM / SIGINT; the loop records a clean shutdown and exits.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn install_handlers() {
    let handler = on_signal as extern "C" fn(libc::c_int);
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe); installing it
        // has no other effect on this process.
        unsafe {
            libc::signal(sig, handler as libc::sighandler_t);
        }
    }
}

/// The running host: what the driver keeps in its device extension.
struct Host {
    dir: PathBuf,
    cfg: Config,
    env: Env,
    trust: Trust,
    json: bool,
    durable: Durable<FileMedium>,
    /// The content running and the attempt that activated it.
    active: Option<(Activation, RuleSet)>,
    /// This start's attempt of the driver build: closed by the health check and shutdown
    /// while no content is active.
    build: Option<BuildActivation>,
    /// The running content came from a live change (not from the start).
    live: bool,
    /// When the running content was activated: the health timer's start.
    since: Instant,
    /// This activation's health check, once it ran.
    health: Option<HealthCheck>,
    checked: bool,
    ring: EventRing,
    events: Vec<OwnedEvent>,
}

fn line(json: bool, v: serde_json::Value, text: String) {
    if json {
        outln!("{}", report::versioned(v));
    } else {
        outln!("{text}");
    }
    let _ = std::io::stdout().flush();
}

pub fn run(a: &Args<'_>) -> Result<u8, Fail> {
    let dir = store::open(a.store, a.init, Use::Write)?;
    let trust = a.keys.trust()?;
    let events = match a.events {
        Some(p) => read_events(p)?,
        None => Vec::new(),
    };
    let socket = a
        .socket
        .map_or_else(|| crate::control::default_socket(&dir), Path::to_path_buf);
    // Refuse a second host before the start: it would charge this host's attempt.
    check_socket(&socket)?;
    let s = super::boot::start(
        &dir,
        a.crash_at,
        a.fail_writes,
        &a.cfg,
        &a.env,
        &trust,
        a.json,
    );
    if s.dormant() {
        // The driver returns from DriverEntry without setting anything up: no host runs.
        let ended = "dormant: the driver set nothing up (no control socket, no health check)";
        line(a.json, json!({"ended": ended}), format!("ended: {ended}"));
        return Ok(0);
    }
    let build = s.build;
    let mut durable = s.durable;
    // Crash points are the start's; the live path's writes are not torn on purpose.
    durable.medium_mut().disarm();
    let active = s.activation.zip(s.active.map(|(_, rs)| rs));
    let mut host = Host {
        dir: dir.clone(),
        cfg: a.cfg,
        env: a.env,
        trust,
        json: a.json,
        durable,
        active,
        build,
        live: false,
        since: Instant::now(),
        health: None,
        checked: false,
        ring: EventRing::with_capacity(control::ring::DEFAULT_CAPACITY)
            .unwrap_or_else(|_| EventRing::disabled()),
        events,
    };
    host.feed_events();
    install_handlers();
    let listener = bind(&socket)?;
    line(
        a.json,
        json!({"listening": socket}),
        format!("listening on {} (mode 0600)", socket.display()),
    );
    let r = host.serve(&listener);
    let _ = std::fs::remove_file(&socket);
    r
}

/// Refuses a socket path a live host answers, or that is not a socket; removes a stale one.
fn check_socket(path: &Path) -> Result<(), Fail> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Err(Fail::usage(format!(
            "refused: {} exists and is not a socket (expected a socket path; give another with --socket)",
            path.display()
        )));
    }
    if UnixStream::connect(path).is_ok() {
        return Err(Fail::refused(
            "already-running",
            format!(
                "refused: a host process already answers at {} (one host per store: a second start would charge the running one's attempt)",
                path.display()
            ),
        ));
    }
    std::fs::remove_file(path).map_err(|e| {
        Fail::io(format!(
            "cannot remove the stale socket {}: {e}",
            path.display()
        ))
    })
}

fn bind(path: &Path) -> Result<UnixListener, Fail> {
    // SAFETY: umask only changes this process's file-creation mask; it is restored below.
    let old = unsafe { libc::umask(0o177) };
    let l = UnixListener::bind(path);
    // SAFETY: as above.
    unsafe {
        libc::umask(old);
    }
    let l = l.map_err(|e| {
        Fail::io(format!(
            "cannot listen on {} ({e}; a socket path must be shorter than 108 bytes)",
            path.display()
        ))
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Fail::io(format!("cannot restrict {}: {e}", path.display())))?;
    l.set_nonblocking(true)
        .map_err(|e| Fail::io(format!("cannot listen on {}: {e}", path.display())))?;
    Ok(l)
}

fn read_events(p: &Path) -> Result<Vec<OwnedEvent>, Fail> {
    let text = std::fs::read_to_string(p)
        .map_err(|e| Fail::io(format!("cannot read {}: {e}", p.display())))?;
    let mut out = Vec::new();
    for (n, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let e = crate::events::parse_json(l, &Volumes::default())
            .map_err(|e| Fail::usage(format!("{}:{}: {e}", p.display(), n + 1)))?;
        out.push(e.event);
    }
    Ok(out)
}

impl Host {
    fn serve(&mut self, listener: &UnixListener) -> Result<u8, Fail> {
        loop {
            if STOP.load(Ordering::SeqCst) {
                return self.shutdown();
            }
            self.health_due();
            match listener.accept() {
                Ok((stream, _)) => self.answer(stream),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Fail::io(format!("cannot accept a connection: {e}"))),
            }
        }
    }

    /// One connection, one request, one response.
    fn answer(&mut self, mut stream: UnixStream) {
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut req = Vec::with_capacity(control::wire::REQUEST_LEN + 1);
        // One byte more than a request, so a longer message is a length error.
        let cap = control::wire::REQUEST_LEN as u64 + 1;
        let _ = (&mut stream).take(cap).read_to_end(&mut req);
        let mut buf = vec![0u8; control::MAX_RESPONSE];
        let n = match decode_request(&req) {
            Ok(r) => self.handle(r, &mut buf),
            Err(e) => encode_refused(&mut buf, 0, e.code(), &e),
        };
        if let Ok(n) = n {
            let _ = stream.write_all(buf.get(..n).unwrap_or(&[]));
        }
    }

    fn handle(&mut self, req: Request, buf: &mut [u8]) -> Result<usize, control::WriteError> {
        match req {
            Request::Query => {
                let s = self.status();
                encode_status(buf, &s)
            }
            Request::Activate { version } => match self.activate(version) {
                Ok(()) => encode_changed(buf, kind::ACTIVATE, version, self.durable.state().boot),
                Err(r) => self.refused(buf, kind::ACTIVATE, &r, json!({"activate": version})),
            },
            Request::Rollback => match self.rollback() {
                Ok(v) => encode_changed(buf, kind::ROLLBACK, v, self.durable.state().boot),
                Err(r) => self.refused(buf, kind::ROLLBACK, &r, json!({"rollback": true})),
            },
            Request::ReadEvents { cursor } => self.ring.read_into(buf, cursor),
            Request::ForceSafeMode { on } => {
                self.change(buf, req.kind(), Change::ForceSafeMode(on), false)
            }
            Request::Reset { confirmed } => self.change(buf, req.kind(), Change::Reset, confirmed),
            Request::Unquarantine { version, confirmed } => {
                self.change(buf, req.kind(), Change::Unquarantine(version), confirmed)
            }
        }
    }

    /// An operator's change of the record for the console (`recover` while this host
    /// runs), under the store lock, decided on the record as re-read now: the host is the
    /// record's one writer while it runs, as the driver is on Windows.
    fn change(
        &mut self,
        buf: &mut [u8],
        k: u16,
        change: Change,
        confirmed: bool,
    ) -> Result<usize, control::WriteError> {
        let done = match StoreLock::exclusive(&self.dir) {
            Ok(_lock) => control::operator::apply(&mut self.durable, change, confirmed),
            Err(_) => Err(ChangeRefusal::StateUnwritable {
                error: failsafe_loader::state::IoError { code: 37 }, // ENOLCK
            }),
        };
        let what = json!({"change": format!("{change:?}"), "confirmed": confirmed});
        match done {
            Ok(()) => {
                let boot = self.durable.state().boot;
                line(
                    self.json,
                    json!({"operator": what, "boot": boot}),
                    format!("operator: {change:?} applied (record boot {boot})"),
                );
                let active = self.active.as_ref().map_or(0, |(a, _)| a.ver.version);
                encode_changed(buf, k, active, boot)
            }
            Err(r) => {
                let text = match r {
                    ChangeRefusal::StateUnwritable { error } => format!(
                        "the state record could not be re-read or written ({}): nothing was changed",
                        os_error(error)
                    ),
                    _ => r.to_string(),
                };
                line(
                    self.json,
                    json!({"operator": what, "refused": r.name(), "code": r.code(), "message": text}),
                    format!(
                        "operator: {change:?} refused ({}, code {}): {text}",
                        r.name(),
                        r.code()
                    ),
                );
                encode_refused(buf, k, r.code(), &format!("{}: {text}", r.name()))
            }
        }
    }

    fn refused(
        &self,
        buf: &mut [u8],
        k: u16,
        r: &LiveRefusal,
        what: serde_json::Value,
    ) -> Result<usize, control::WriteError> {
        let text = refusal_text(r);
        line(
            self.json,
            json!({"live": {"request": what, "refused": r.name(), "code": r.code(), "message": text}}),
            format!("live: refused ({}, code {}): {text}", r.name(), r.code()),
        );
        let msg = format!("{}: {text}", r.name());
        encode_refused(buf, k, r.code(), &msg)
    }

    fn activate(&mut self, version: u64) -> Result<(), LiveRefusal> {
        let _lock = StoreLock::exclusive(&self.dir).map_err(|_| LiveRefusal::StateUnwritable {
            error: failsafe_loader::state::IoError { code: 37 }, // ENOLCK
        })?;
        let (act, rs) = self.durable.live_activate(
            self.active.as_ref().map(|(a, _)| a),
            &mut DirStore::new(&self.dir),
            version,
            &self.cfg,
            &self.env,
            &self.trust,
        )?;
        self.swapped(Some((act, rs)), "live-update");
        Ok(())
    }

    fn rollback(&mut self) -> Result<u64, LiveRefusal> {
        let _lock = StoreLock::exclusive(&self.dir).map_err(|_| LiveRefusal::StateUnwritable {
            error: failsafe_loader::state::IoError { code: 37 },
        })?;
        let to = self.durable.rollback(
            self.active.as_ref().map(|(a, _)| a),
            &mut DirStore::new(&self.dir),
            &self.cfg,
            &self.env,
            &self.trust,
        )?;
        let v = to.as_ref().map_or(0, |(a, _)| a.ver.version);
        self.swapped(to, "live-rollback");
        Ok(v)
    }

    /// The swap: the new content runs from now; the health timer restarts.
    fn swapped(&mut self, to: Option<(Activation, RuleSet)>, why: &str) {
        let from = self.active.as_ref().map(|(a, _)| a.ver.version);
        let now = to.as_ref().map(|(a, _)| a.ver.version);
        self.active = to;
        self.live = true;
        self.since = Instant::now();
        self.health = None;
        self.checked = false;
        line(
            self.json,
            json!({"live": {"reason": why, "from": from, "to": now, "boot": self.durable.state().boot}}),
            format!(
                "live: {why}: {} -> {} (health timer re-armed)",
                from.map_or("none".into(), |v| format!("v{v}")),
                now.map_or("none".into(), |v| format!("v{v}"))
            ),
        );
        self.feed_events();
    }

    /// Evaluates the `--events` file with the active rules; queues every match that is not
    /// `allow`, as the driver's callbacks queue audit and block events.
    fn feed_events(&mut self) {
        let Some((_, rs)) = &self.active else {
            return;
        };
        for e in &self.events {
            let Some(m) = e.with(|ev| rs.evaluate(ev)) else {
                continue;
            };
            if m.action == Action::Allow {
                continue;
            }
            let text = |name: &str| match e
                .kind
                .field_index(name)
                .map(|i| e.values.get(usize::from(i)))
            {
                Some(Some(Owned::S(s))) => s.clone(),
                _ => Vec::new(),
            };
            let pid = match e
                .kind
                .field_index("pid")
                .map(|i| e.values.get(usize::from(i)))
            {
                Some(Some(Owned::I(p))) => *p,
                _ => 0,
            };
            let ev = AuditEvent {
                action: m.action,
                event_type: e.kind,
                not_applied: false,
                rule_id: m.rule_id,
                pid,
            };
            self.ring.push(&ev, &text("path"), &text("process"));
        }
    }

    fn status(&mut self) -> Status {
        if let Some(_l) = StoreLock::shared(&self.dir) {
            // The record as it is now (a responder's `recover` may have changed it); on
            // failure, as last read.
            let _ = self.durable.refresh();
        }
        let st = *self.durable.state();
        let version = self.active.as_ref().map_or(0, |(a, _)| a.ver.version);
        let mut flags = 0u8;
        let mut set = |on: bool, bit: u8| {
            if on {
                flags |= bit;
            }
        };
        set(self.live, status_flags::LIVE);
        set(self.health.is_some_and(|h| h.passed), status_flags::HEALTHY);
        set(
            self.cfg.force_safe_mode || st.force_safe,
            status_flags::FORCE_SAFE,
        );
        set(self.health.is_some(), status_flags::CHECKED);
        set(
            self.health.is_some_and(|h| h.canary.is_err()),
            status_flags::CANARY_FAILED,
        );
        Status {
            active: version,
            boot: st.boot,
            lkg: st.lkg.map_or(0, |l| l.version),
            active_ms: u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX),
            events_dropped: self.ring.dropped(),
            events_queued: u32::try_from(self.ring.len()).unwrap_or(u32::MAX),
            health_uptime_secs: self.health.map_or(0, |h| h.uptime_secs),
            mode: st.last.map_or(0, |d| control::mode_code(d.mode)),
            reason: st.last.map_or(0, |d| control::reason_code(d.reason)),
            attempts: if version == 0 {
                0
            } else {
                st.attempts(version)
            },
            flags,
            canary_error: self
                .health
                .and_then(|h| h.canary.err())
                .map_or(0, |e| e.code),
        }
    }

    /// The health work item: once per activation, when the uptime since the swap is reached.
    fn health_due(&mut self) {
        let Some((act, _)) = &self.active else {
            self.build_health_due();
            return;
        };
        let due = Duration::from_secs(u64::from(self.cfg.healthy_after_secs));
        if self.checked || self.since.elapsed() < due {
            return;
        }
        self.checked = true;
        let act = *act;
        let result = super::boot::canary(&self.dir);
        let evidence = HealthEvidence {
            uptime_secs: u32::try_from(self.since.elapsed().as_secs()).unwrap_or(u32::MAX),
            canary: result,
        };
        let written = StoreLock::exclusive(&self.dir).and_then(|_lock| {
            let _ = self.durable.refresh();
            self.durable
                .health(&act, &evidence, &self.cfg)
                .map_err(|e| Fail::io(format!("cannot write state: {}", os_error(e))))
        });
        match written {
            Ok(Some(h)) => {
                self.health = Some(h);
                line(
                    self.json,
                    json!({"health": {"version": act.ver.version, "passed": h.passed, "uptime_secs": h.uptime_secs,
                                      "canary": h.canary.map_or_else(os_error, |()| "ok".into())}}),
                    format!(
                        "health: v{} {} s uptime, canary {}: {}",
                        act.ver.version,
                        h.uptime_secs,
                        h.canary.map_or_else(os_error, |()| "ok".into()),
                        if h.passed { "healthy" } else { "NOT healthy" }
                    ),
                );
            }
            Ok(None) => line(
                self.json,
                json!({"health": {"version": act.ver.version, "recorded": false}}),
                format!(
                    "health: v{}'s attempt is no longer the one in progress: nothing recorded",
                    act.ver.version
                ),
            ),
            Err(e) => line(
                self.json,
                json!({"health": {"version": act.ver.version, "error": e.msg}}),
                format!("health: {}", e.msg),
            ),
        }
    }

    /// The health check of a start with no content active: the driver build's, once.
    fn build_health_due(&mut self) {
        let Some(b) = self.build else {
            return;
        };
        let due = Duration::from_secs(u64::from(self.cfg.healthy_after_secs));
        if self.checked || self.since.elapsed() < due {
            return;
        }
        self.checked = true;
        let evidence = HealthEvidence {
            uptime_secs: u32::try_from(self.since.elapsed().as_secs()).unwrap_or(u32::MAX),
            canary: super::boot::canary(&self.dir),
        };
        let written = StoreLock::exclusive(&self.dir).and_then(|_lock| {
            let _ = self.durable.refresh();
            self.durable
                .build_health(&b, &evidence, &self.cfg)
                .map_err(|e| Fail::io(format!("cannot write state: {}", os_error(e))))
        });
        if let Ok(Some(h)) = written {
            self.health = Some(h);
        }
        let v = match written {
            Ok(Some(h)) => {
                json!({"build": self.env.build.to_string(), "passed": h.passed, "uptime_secs": h.uptime_secs,
                                  "canary": h.canary.map_or_else(os_error, |()| "ok".into())})
            }
            Ok(None) => json!({"build": self.env.build.to_string(), "recorded": false}),
            Err(e) => json!({"build": self.env.build.to_string(), "error": e.msg}),
        };
        line(
            self.json,
            json!({"health": v}),
            format!("health (driver build, no content): {v}"),
        );
    }

    /// SIGTERM / SIGINT: the shutdown notification closes the running attempt.
    fn shutdown(&mut self) -> Result<u8, Fail> {
        let ended = match &self.active {
            Some((act, _)) => {
                let act = *act;
                let _lock = StoreLock::exclusive(&self.dir)?;
                let _ = self.durable.refresh();
                let closed = self
                    .durable
                    .clean_shutdown(&act)
                    .map_err(|e| Fail::io(format!("cannot write state: {}", os_error(e))))?;
                super::boot::shutdown_text(closed, self.durable.state(), &act)
            }
            None => match self.build {
                Some(b) => {
                    let _lock = StoreLock::exclusive(&self.dir)?;
                    let _ = self.durable.refresh();
                    self.durable
                        .build_shutdown(&b)
                        .map_err(|e| Fail::io(format!("cannot write state: {}", os_error(e))))?;
                    "clean shutdown (no content was active)"
                }
                None => "clean shutdown (nothing of this start to close)",
            },
        };
        line(
            self.json,
            json!({"ended": ended}),
            format!("ended: {ended}"),
        );
        Ok(0)
    }
}

/// A refusal's sentence with its OS error in words, as everything the console prints (the
/// core cannot name OS errors; the driver, which has no words for an NTSTATUS, sends the
/// core's sentence with the code).
fn refusal_text(r: &LiveRefusal) -> String {
    match *r {
        LiveRefusal::Unreadable { version, error } => {
            format!("version {version} could not be read: {}", os_error(error))
        }
        LiveRefusal::StateUnwritable { error } => format!(
            "the state record could not be read or written ({}): nothing was swapped",
            os_error(error)
        ),
        _ => r.to_string(),
    }
}
