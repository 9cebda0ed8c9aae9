//! Output: JSON and text renderings of content, state and starts (errors: `fail`; what
//! the next start would do: `preview`). Renders what it is given; reads nothing.

use failsafe_loader::error::code_of_ordinal;
use failsafe_loader::state::machine::PriorKind;
use failsafe_loader::state::record::QuarantineReason;
use failsafe_loader::state::record::StartReport;
use failsafe_loader::state::{Prior, Reason, Started, State};
use failsafe_loader::{ContentError, Rule};
use serde_json::{Value, json};

use crate::fail::{JSON_VERSION, os_error};
use crate::host::FileMedium;

/// `value` with `"json_version"` added, when it is an object.
pub fn versioned(mut value: Value) -> Value {
    if let Value::Object(m) = &mut value {
        m.insert("json_version".into(), json!(JSON_VERSION));
    }
    value
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Prints `value` as one JSON line, or `text`.
pub fn out(json: bool, value: Value, text: String) {
    if json {
        outln!("{}", versioned(value));
    } else {
        outln!("{text}");
    }
}

pub fn error_json(e: &ContentError) -> Value {
    json!({
        "code": e.code(),
        "message": e.kind.to_string(),
        "offset": e.at.offset,
        "rule_index": e.at.rule_index,
        "rule_id": e.at.rule_id,
        "exception": e.at.exception,
        "criterion": e.at.criterion,
        "value": e.at.value,
        "display": e.to_string(),
    })
}

/// A criterion's values as data: strings, integers, `[lo, hi]` pairs, or `null` for flag
/// operators.
pub fn values_json(v: &failsafe_loader::Values) -> Value {
    use failsafe_loader::Values;
    match v {
        Values::Strs(l) => json!(
            l.iter()
                .map(|s| String::from_utf16_lossy(s))
                .collect::<Vec<_>>()
        ),
        Values::Ints(l) => json!(l),
        Values::Ranges(l) => json!(l.iter().map(|&(a, b)| [a, b]).collect::<Vec<_>>()),
        Values::None => Value::Null,
    }
}

pub fn rule_json(index: usize, r: &Rule) -> Value {
    let crit = |c: &failsafe_loader::Criterion| {
        json!({"field": r.event.field(c.field).map(|f| f.name), "field_index": c.field, "op": c.op.name(),
               "negate": c.negate, "values": values_json(&c.values),
               "text": crate::source::describe_criterion(r.event, c)})
    };
    json!({
        "index": index, "id": r.id, "event": r.event.name(), "action": r.action.name(),
        "match": r.criteria.iter().map(crit).collect::<Vec<_>>(),
        "except": r.exceptions.iter().map(|s| s.iter().map(crit).collect::<Vec<_>>()).collect::<Vec<_>>(),
    })
}

pub fn prior_name(p: &Prior) -> &'static str {
    prior_kind_name(&p.split().0)
}

/// [`prior_name`] for what a start read.
pub fn prior_kind_name(p: &PriorKind) -> &'static str {
    match p {
        PriorKind::Unreadable(_) | PriorKind::NoMemory => "unknown",
        PriorKind::Fresh => "none (first install)",
        PriorKind::Lost => "lost (both slots invalid)",
        PriorKind::Ok { .. } => "ok",
    }
}

fn quarantine_detail(reason: QuarantineReason, detail: u32) -> String {
    match reason {
        QuarantineReason::CrashLoop => format!("{detail} unclean starts"),
        QuarantineReason::Invalid => code_of_ordinal(detail)
            .unwrap_or("unknown error")
            .to_owned(),
        QuarantineReason::RolledBack => "rolled back by the operator".to_owned(),
    }
}

pub fn state_json(prior: &Prior, s: &State) -> Value {
    if let Prior::Unreadable(e) = prior {
        return json!({"record": "unknown", "error": os_error(*e)});
    }
    json!({
        "record": prior_name(prior),
        "boot": s.boot,
        "force_safe_mode": s.force_safe,
        "attempt": s.attempt.map(|a| json!({"version": a.ver.version, "sha256": hex(&a.ver.digest), "phase": a.phase.name()})),
        "last_known_good": s.lkg.map(|l| json!({"version": l.version, "sha256": hex(&l.digest)})),
        "attempts": s.tracks.iter().flatten().map(|t| json!({"version": t.ver.version, "attempts": t.attempts, "sha256": hex(&t.ver.digest)})).collect::<Vec<_>>(),
        "quarantine": s.quarantine.iter().flatten().map(|q| json!({
            "version": q.ver.version, "sha256": hex(&q.ver.digest), "reason": q.reason.name(),
            "detail": quarantine_detail(q.reason, q.detail), "boot": q.boot})).collect::<Vec<_>>(),
        "floor": (s.floor != 0).then_some(s.floor),
        "last_decision": s.last.map(|d| json!({"mode": d.mode.name(), "reason": d.reason.name(),
            "version": (d.version != 0).then_some(d.version), "boot": d.boot,
            "writes_may_not_persist": d.writes_may_not_persist, "test_signing": d.test_signing})),
        "last_health_check": s.health.map(|h| json!({"version": h.version, "boot": h.boot,
            "uptime_secs": h.uptime_secs, "passed": h.passed,
            "canary": match h.canary { Ok(()) => "ok".to_owned(), Err(e) => os_error(e) }})),
    })
}

/// The start report as JSON.
pub fn start_report_json(r: &StartReport) -> Value {
    json!({"boot": r.boot, "mode": r.mode.name(), "reason": r.reason.name(),
           "version": (r.version != 0).then_some(r.version), "record_written": !r.record_not_written,
           "error": r.error.map(os_error), "writes_may_not_persist": r.writes_may_not_persist,
           "test_signing": r.test_signing})
}

/// The start report in words, with what it means when the record does not show it.
pub fn start_report_text(r: &StartReport) -> String {
    let mut t = format!(
        "last start:          boot {}: {} mode ({}), content {}\n",
        r.boot,
        r.mode.name(),
        r.reason.name(),
        if r.version == 0 {
            "none".to_owned()
        } else {
            format!("v{}", r.version)
        }
    );
    if r.record_not_written {
        let why = r.error.map_or("unknown error".to_owned(), os_error);
        t += &match r.reason {
            Reason::StateUnwritable => format!(
                "  WARNING: that start ran WITHOUT CONTENT: the state record could not be written ({why}),\n  so nothing could be activated; the record below does not show that start.\n"
            ),
            Reason::StateUnreadable => format!(
                "  WARNING: that start ran WITHOUT CONTENT: the state record could not be read ({why}).\n"
            ),
            _ => format!(
                "  WARNING: that start's record write failed ({why}); the record below does not show it.\n"
            ),
        };
    }
    if r.writes_may_not_persist {
        t += "  WARNING: a write filter (UWF or similar) may discard writes at reboot: the boot counter may not advance.\n";
    }
    if r.test_signing {
        t += "  TEST SIGNING was on: content signed by development keys was accepted.\n";
    }
    t
}

pub fn state_text(prior: &Prior, s: &State) -> String {
    if let Prior::Unreadable(e) = prior {
        return format!(
            "state record: UNKNOWN: it cannot be read ({}).\n  Quarantine, counts and last-known-good are unknown; the driver runs without content\n  (state-unreadable) until the record is readable again or rebuilt: failsafectl recover rebuild.\n",
            os_error(*e)
        );
    }
    let mut t = format!("state record: {}\n", prior_name(prior));
    t += &format!("  boots counted:     {}\n", s.boot);
    t += &format!(
        "  force-safe-mode:   {}\n",
        if s.force_safe { "ON" } else { "off" }
    );
    t += &format!(
        "  last decision:     {}\n",
        s.last.map_or("none".into(), |d| format!(
            "{} mode, {}, content {} (boot {})",
            d.mode.name(),
            d.reason.name(),
            if d.version == 0 {
                "none".into()
            } else {
                format!("v{}", d.version)
            },
            d.boot
        ))
    );
    t += &format!(
        "  last attempt:      {}\n",
        s.attempt.map_or("none".into(), |a| format!(
            "v{} ({})",
            a.ver.version,
            a.phase.name()
        ))
    );
    t += &format!(
        "  last-known-good:   {}\n",
        s.lkg.map_or("none".into(), |l| format!("v{}", l.version))
    );
    let counts: Vec<_> = s
        .tracks
        .iter()
        .flatten()
        .map(|t| format!("v{}: {}", t.ver.version, t.attempts))
        .collect();
    t += &format!(
        "  unclean attempts:  {}\n",
        if counts.is_empty() {
            "none".into()
        } else {
            counts.join(", ")
        }
    );
    let q: Vec<_> = s
        .quarantine
        .iter()
        .flatten()
        .map(|q| {
            format!(
                "v{} ({}: {}, boot {})",
                q.ver.version,
                q.reason.name(),
                quarantine_detail(q.reason, q.detail),
                q.boot
            )
        })
        .collect();
    t += &format!(
        "  quarantined:       {}\n",
        if q.is_empty() {
            "none".into()
        } else {
            q.join("; ")
        }
    );
    if let Some(h) = s.health {
        t += &format!(
            "  last health check: v{} (boot {}), {} s uptime, canary {}: {}\n",
            h.version,
            h.boot,
            h.uptime_secs,
            match h.canary {
                Ok(()) => "ok".to_owned(),
                Err(e) => format!("FAILED ({})", os_error(e)),
            },
            if h.passed { "healthy" } else { "not healthy" }
        );
    }
    if s.last.is_some_and(|d| d.test_signing) {
        t += "  TEST SIGNING:      ON at the last start: content signed by development (test) keys is\n                     accepted; a production machine runs with it off.\n";
    }
    if s.last.is_some_and(|d| d.writes_may_not_persist) {
        t += "  WARNING: at the last start the OS reported a write filter (UWF or similar): writes to the\n  record's volume may be discarded at reboot, so the boot counter may never advance.\n";
    }
    if s.floor != 0 {
        t += &format!(
            "  floor:             v{} (a crash-looping version had to leave the full quarantine list; nothing at or below it but last-known-good is chosen automatically; `recover reset` clears it)\n",
            s.floor
        );
    }
    t
}

fn newly_quarantined(s: &Started<FileMedium>) -> Vec<Value> {
    // A quarantine entry carries the boot of the start that made it; only a start that
    // wrote the record made any.
    let read_seq = match s.prior {
        PriorKind::Ok { seq, .. } => seq,
        _ => 0,
    };
    let st = s.durable.state();
    let wrote = s.durable.seq() > read_seq;
    st.quarantine
        .iter()
        .flatten()
        .filter(|q| wrote && q.boot == st.boot)
        .map(|q| json!({"version": q.ver.version, "reason": q.reason.name(), "detail": quarantine_detail(q.reason, q.detail)}))
        .collect()
}

pub fn started_json(s: &Started<FileMedium>) -> Value {
    let st = s.durable.state();
    json!({
        // The start report's number: the record's, or the next one when the record could
        // not be written (what `status` shows as the last start).
        "boot": s.report().boot,
        "mode": s.choice.mode.name(),
        "reason": s.choice.reason.name(),
        "version": s.active.as_ref().map(|(v, _)| v.version),
        "sha256": s.active.as_ref().map(|(v, _)| hex(&v.digest)),
        "rules": s.active.as_ref().map(|(_, r)| r.len()),
        "attempts_before": s.active.as_ref().map(|(v, _)| st.attempts(v.version)),
        "quarantined": newly_quarantined(s),
        "rejected": s.rejected.iter().map(|r| json!({"version": r.ver.version, "error": error_json(&r.error)})).collect::<Vec<_>>(),
        "unreadable": s.unreadable,
        "persist_failed": s.persist_error.is_some(),
        "persist_error": s.persist_error.map(os_error),
        "record": prior_kind_name(&s.prior),
        "writes_may_not_persist": s.env.writes_may_not_persist,
        "test_signing": s.test_signing,
    })
}

pub fn started_text(s: &Started<FileMedium>) -> String {
    let st = s.durable.state();
    let mut t = format!(
        "boot {}: {} mode ({})\n",
        s.report().boot,
        s.choice.mode.name(),
        s.choice.reason.name()
    );
    match &s.active {
        Some((v, r)) => {
            t += &format!(
                "  activated v{} ({} rules, sha256 {}), unclean starts so far: {}\n",
                v.version,
                r.len(),
                hex(&v.digest),
                st.attempts(v.version)
            )
        }
        None => t += "  no content active (pass-through)\n",
    }
    if s.test_signing {
        t += "  TEST SIGNING on: development keys are trusted\n";
    }
    for r in &s.rejected {
        t += &format!("  rejected v{}: {}\n", r.ver.version, r.error);
    }
    for v in &s.unreadable {
        t += &format!("  could not read v{v} (not quarantined)\n");
    }
    for q in newly_quarantined(s) {
        t += &format!(
            "  quarantined v{} ({}: {})\n",
            q["version"],
            q["reason"].as_str().unwrap_or(""),
            q["detail"].as_str().unwrap_or("")
        );
    }
    if let Some(e) = s.persist_error {
        t += &format!(
            "  WARNING: the state record could not be written: {}\n",
            os_error(e)
        );
    }
    if let PriorKind::Unreadable(e) = s.prior {
        t += &format!("  the state record could not be read: {}\n", os_error(e));
    }
    t
}
