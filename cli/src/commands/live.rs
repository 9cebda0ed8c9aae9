//! The console's live commands, through the control protocol ([`crate::control`]):
//! `stage --live`, `rollback`, `watch`, and the live section of `status`.

use std::path::Path;
use std::time::Duration;

use failsafe_loader::control::{
    EventRecord, Reply, Request, Status, mode_from_code, reason_from_code, status_flags,
};
use failsafe_loader::{Action, EventType};
use serde_json::{Value, json};

use crate::control::{CallError, Endpoint, answer, ask, refusal};
use crate::fail::Fail;
use crate::report;

/// Asks the responder to activate `version` live. Returns (JSON, text).
pub fn activate(ep: &Endpoint, version: u64) -> Result<(Value, String), Fail> {
    ask(ep, &Request::Activate { version }, |reply| match reply {
        Reply::Changed { version: v, boot } => Ok((
            json!({"activated": v, "boot": boot, "via": ep.describe()}),
            format!(
                "live: version {v} activated by {} (record boot {boot}); it becomes last-known-good once its health check passes",
                ep.describe()
            ),
        )),
        Reply::Refused { code, message } => Err(refusal(
            ep,
            &format!("live activation of version {version}"),
            code,
            message,
        )),
        other => Err(unexpected(ep, &other)),
    })?
}

/// `failsafectl rollback`.
pub fn rollback(ep: &Endpoint, json: bool) -> Result<u8, Fail> {
    let (v, t) = ask(ep, &Request::Rollback, |reply| match reply {
        Reply::Changed { version, boot } => Ok((
            json!({"rolled_back": true, "active": (version != 0).then_some(version), "boot": boot, "via": ep.describe()}),
            if version == 0 {
                format!(
                    "rolled back by {}: no last-known-good, no content is active now (record boot {boot})",
                    ep.describe()
                )
            } else {
                format!(
                    "rolled back by {}: last-known-good v{version} is active now; the version rolled back from is quarantined (rolled-back) (record boot {boot})",
                    ep.describe()
                )
            },
        )),
        Reply::Refused { code, message } => Err(refusal(ep, "rollback", code, message)),
        other => Err(unexpected(ep, &other)),
    })??;
    report::out(json, report::versioned(v), t);
    Ok(0)
}

fn unexpected(ep: &Endpoint, r: &Reply<'_>) -> Fail {
    Fail::io(format!("unexpected answer from {}: {r:?}", ep.describe()))
}

/// The live state, or `None` when nothing answers (no host process, no driver).
pub fn query(ep: &Endpoint) -> Result<Option<Status>, Fail> {
    match crate::control::exchange(ep, &Request::Query) {
        Err(CallError::NotRunning(_)) => Ok(None),
        Err(e) => Err(e.into_fail()),
        Ok(bytes) => answer(ep, &Request::Query, &bytes, |reply| match reply {
            Reply::Status(s) => Ok(Some(s)),
            Reply::Refused { code, message } => Err(refusal(ep, "query", code, message)),
            other => Err(unexpected(ep, &other)),
        })?,
    }
}

fn name_or<T>(v: Option<T>, name: impl Fn(T) -> &'static str, code: u8) -> String {
    v.map_or_else(
        || {
            if code == 0 {
                "-".into()
            } else {
                format!("code {code}")
            }
        },
        |x| name(x).to_owned(),
    )
}

/// The live state as JSON.
pub fn status_json(s: &Status, ep: &Endpoint) -> Value {
    let f = |bit| s.flags & bit != 0;
    json!({
        "via": ep.describe(),
        "active": (s.active != 0).then_some(s.active),
        "activated_live": f(status_flags::LIVE),
        "active_ms": s.active_ms,
        "healthy": f(status_flags::HEALTHY),
        "health_checked": f(status_flags::CHECKED),
        "health_uptime_secs": f(status_flags::CHECKED).then_some(s.health_uptime_secs),
        "canary_error": f(status_flags::CANARY_FAILED).then_some(s.canary_error),
        "force_safe": f(status_flags::FORCE_SAFE),
        "boot": s.boot,
        "last_known_good": (s.lkg != 0).then_some(s.lkg),
        "mode": name_or(mode_from_code(s.mode), |m| m.name(), s.mode),
        "reason": name_or(reason_from_code(s.reason), |r| r.name(), s.reason),
        "attempts": s.attempts,
        "events": {"queued": s.events_queued, "dropped": s.events_dropped},
    })
}

/// The live state as text (lines, each indented under `live:`).
pub fn status_text(s: &Status, ep: &Endpoint) -> String {
    let f = |bit| s.flags & bit != 0;
    let secs = s.active_ms as f64 / 1000.0;
    let running = if s.active == 0 {
        format!("no content active (for {secs:.1} s)")
    } else {
        format!(
            "v{} running for {secs:.1} s ({})",
            s.active,
            if f(status_flags::LIVE) {
                "activated live"
            } else {
                "activated at start"
            }
        )
    };
    let health = if s.active == 0 {
        "no health check (nothing active)".to_owned()
    } else if f(status_flags::HEALTHY) {
        format!(
            "healthy (checked at {} s uptime, canary ok)",
            s.health_uptime_secs
        )
    } else if f(status_flags::CANARY_FAILED) {
        format!(
            "NOT healthy: canary failed (OS error {}) at {} s uptime",
            s.canary_error, s.health_uptime_secs
        )
    } else if f(status_flags::CHECKED) {
        format!("NOT healthy at {} s uptime", s.health_uptime_secs)
    } else {
        "health check pending (uptime since activation not reached)".to_owned()
    };
    let mut out = format!("live ({}):\n", ep.describe());
    out.push_str(&format!("  {running}; {health}\n"));
    out.push_str(&format!(
        "  record boot {}, last-known-good {}, last decision {} ({}), {} unclean end(s) charged to the active version{}\n",
        s.boot,
        if s.lkg == 0 {
            "none".into()
        } else {
            format!("v{}", s.lkg)
        },
        name_or(mode_from_code(s.mode), |m| m.name(), s.mode),
        name_or(reason_from_code(s.reason), |r| r.name(), s.reason),
        s.attempts,
        if f(status_flags::FORCE_SAFE) {
            "; FORCE-SAFE switch on"
        } else {
            ""
        }
    ));
    out.push_str(&format!(
        "  audit events: {} queued, {} dropped\n",
        s.events_queued, s.events_dropped
    ));
    out
}

pub struct WatchArgs<'a> {
    pub ep: &'a Endpoint,
    pub json: bool,
    pub count: Option<u64>,
    pub follow: bool,
}

fn utf16(b: &[u8]) -> String {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16_lossy(&units)
}

fn event_json(e: &EventRecord<'_>) -> Value {
    use failsafe_loader::control::ring::{FLAG_NOT_APPLIED, FLAG_PATH_CUT, FLAG_PROCESS_CUT};
    report::versioned(json!({
        "action": Action::from_code(e.action).map_or_else(|| format!("code {}", e.action), |a| a.name().to_owned()),
        "event": EventType::from_code(e.event_type).map_or_else(|| format!("code {}", e.event_type), |t| t.name().to_owned()),
        "rule": e.rule_id,
        "pid": e.pid,
        "path": utf16(e.path),
        "process": utf16(e.process),
        "not_applied": e.flags & FLAG_NOT_APPLIED != 0,
        "path_cut": e.flags & FLAG_PATH_CUT != 0,
        "process_cut": e.flags & FLAG_PROCESS_CUT != 0,
    }))
}

fn event_text(v: &Value) -> String {
    let mut s = format!(
        "{:<5} {:<16} rule {:<6} pid {:<6} {}",
        v["action"].as_str().unwrap_or("?"),
        v["event"].as_str().unwrap_or("?"),
        v["rule"],
        v["pid"],
        v["path"].as_str().unwrap_or("")
    );
    let p = v["process"].as_str().unwrap_or("");
    if !p.is_empty() {
        s.push_str(&format!(" (by {p})"));
    }
    if v["not_applied"] == true {
        s.push_str(" [block not applied: own directory]");
    }
    if v["path_cut"] == true || v["process_cut"] == true {
        s.push_str(" [cut]");
    }
    s
}

/// `failsafectl watch`: reads the audit queue, printing events as text or JSON lines.
/// Each read carries the cursor: the sequence number after the last event printed, so the
/// host drops only what was printed (a response lost on the way is read again; an event is
/// printed at least once). Without `--follow`, stops when the queue is empty; with it,
/// polls until `--count`. After `--count` events, one more read acknowledges them.
pub fn watch(a: &WatchArgs<'_>) -> Result<u8, Fail> {
    let mut shown: u64 = 0;
    let mut dropped_seen: Option<u64> = None;
    let mut cursor: u64 = 0;
    loop {
        let left = a.count.map_or(u64::MAX, |c| c.saturating_sub(shown));
        let (dropped, first, rows) = read_events(a.ep, cursor)?;
        if left == 0 {
            // That read acknowledged what was printed; nothing more to show.
            break;
        }
        // The drop counter, whenever it grows (the first time only when not zero).
        if dropped > dropped_seen.unwrap_or(0) {
            if a.json {
                outln!("{}", report::versioned(json!({"dropped": dropped})));
            } else {
                outln!("-- {dropped} event(s) dropped by the host so far (queue full)");
            }
        }
        dropped_seen = Some(dropped);
        let take = rows.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let empty = rows.is_empty();
        for r in rows.into_iter().take(take) {
            shown += 1;
            if a.json {
                outln!("{r}");
            } else {
                outln!("{}", event_text(&r));
            }
        }
        let _ = std::io::Write::flush(&mut std::io::stdout());
        cursor = first.saturating_add(u64::try_from(take).unwrap_or(u64::MAX));
        if empty {
            if !a.follow {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    if !a.json && !a.follow {
        let d = dropped_seen.unwrap_or(0);
        outln!(
            "-- {shown} event(s) read; {d} dropped by the host{}",
            if d > 0 { " (its queue was full)" } else { "" }
        );
    }
    Ok(0)
}

/// One read-events request: (dropped, first sequence number, the records as JSON).
fn read_events(ep: &Endpoint, cursor: u64) -> Result<(u64, u64, Vec<Value>), Fail> {
    ask(ep, &Request::ReadEvents { cursor }, |reply| match reply {
        Reply::Events(ev) => {
            let mut rows = Vec::new();
            for r in ev.iter() {
                match r {
                    Ok(e) => rows.push(event_json(&e)),
                    Err(e) => {
                        return Err(Fail::io(format!(
                            "malformed event from {}: {e}",
                            ep.describe()
                        )));
                    }
                }
            }
            Ok((ev.dropped, ev.first, rows))
        }
        Reply::Refused { code, message } => Err(refusal(ep, "read events", code, message)),
        other => Err(unexpected(ep, &other)),
    })?
}

/// `stage --live`'s target: a version already in the store (`2` or `v2`, when no such
/// file exists), or a file to stage first.
pub fn live_version_arg(target: &Path) -> Option<u64> {
    if target.exists() {
        return None;
    }
    let s = target.to_str()?;
    let digits = s.strip_prefix(['v', 'V']).unwrap_or(s);
    digits.parse::<u64>().ok().filter(|v| *v > 0)
}
