//! `failsafectl test FILE --event SPEC | --events FILE.jsonl`: evaluates events with the
//! kernel's evaluator; shows the verdict, the deciding rule and every exception that vetoed
//! an earlier rule; checks expectations (per event or for all) and exits 1 for CI when one
//! fails. Memory is bounded by the file (the kernel's rule set, the file by reference, one
//! criterion decoded at a time) and the output streams, whatever the file references.

use std::path::{Path, PathBuf};

use failsafe_loader::RuleSet;
use failsafe_loader::eval::criterion_holds;
use failsafe_loader::view::{CritRef, View, view};
use serde_json::json;

use crate::events::{self, OwnedEvent, Volumes};
use crate::fail::Fail;
use crate::report::versioned;
use crate::source::rule_name;
use crate::stream::{self, Out};

#[derive(ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verdict {
    Allow,
    Audit,
    Block,
    Pass,
}

use clap::ValueEnum;

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Audit => "audit",
            Verdict::Block => "block",
            Verdict::Pass => "pass",
        }
    }
}

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  failsafectl test 42.fsc --event 'file-create path=\"C:\\Users\\a\\x.locky\" desired-access=0x2' --expect block\n  failsafectl test 42.fsc --event 'file-create path=\\Device\\HarddiskVolume3\\Users\\a\\x.locky'\n  failsafectl test 42.fsc --events events.jsonl --json\n\nEvents file: one JSON object per line, e.g.\n  {\"event\": \"file-create\", \"path\": \"C:\\\\Users\\\\a\\\\x.locky\", \"desired-access\": 2, \"expect\": \"block\"}"
)]
pub struct Args {
    /// Content file.
    pub file: PathBuf,
    /// Event: '<event-type> field=value ...' (repeatable).
    #[arg(long = "event", value_name = "SPEC")]
    pub event: Vec<String>,
    /// JSON-lines file of events ({"event": "file-create", "path": ..., "expect": "block"}).
    #[arg(long = "events", value_name = "FILE")]
    pub events_file: Option<PathBuf>,
    /// Fail (exit 1) unless every event gets this verdict (an event's own "expect" wins).
    #[arg(long, value_enum)]
    pub expect: Option<Verdict>,
    /// A volume's DOS name, for device paths in events: DEVICE=DOS (repeatable; default
    /// \Device\HarddiskVolume3=C:).
    #[arg(long = "volume", value_name = "DEVICE=DOS")]
    pub volume: Vec<String>,
    /// JSON lines: one object per event, then a summary.
    #[arg(long)]
    pub json: bool,
}

/// A rule before the deciding one whose criteria held but one of whose exception sets
/// vetoed it.
struct Veto {
    rule_index: usize,
    set: usize,
}

/// The rules before the deciding one (or all, if none decided) that an exception vetoed.
/// Only rules with exception sets can veto; their criteria are decoded (case-folded) one at
/// a time from the view, so memory stays bounded by one criterion (at most 255 values of
/// 1024 code units) beside the view.
fn vetoes(view: &View<'_>, e: &OwnedEvent, upto: Option<usize>) -> Result<Vec<Veto>, Fail> {
    let holds = |c: &CritRef, ev: &failsafe_loader::Event<'_>| {
        view.criterion(c, true)
            .map(|f| criterion_holds(&f, ev))
            .map_err(|_| Fail::io("out of memory decoding a criterion".into()))
    };
    e.with(|ev| {
        let mut out = Vec::new();
        for (i, r) in view.rules().iter().enumerate() {
            if upto.is_some_and(|u| i >= u) {
                break;
            }
            if r.event != ev.kind || view.exceptions(r).next().is_none() {
                continue;
            }
            let mut all = true;
            for c in view.criteria(r) {
                if !holds(c, ev)? {
                    all = false;
                    break;
                }
            }
            if !all {
                continue;
            }
            for (k, set) in view.exceptions(r).enumerate() {
                let mut vetoed = true;
                for c in set {
                    if !holds(c, ev)? {
                        vetoed = false;
                        break;
                    }
                }
                if vetoed {
                    out.push(Veto {
                        rule_index: i,
                        set: k,
                    });
                    break;
                }
            }
        }
        Ok(out)
    })
}

pub fn run(a: &Args) -> Result<u8, Fail> {
    let file = &a.file;
    let bytes = crate::read_capped(file)
        .map_err(|e| Fail::io(format!("cannot read {}: {e}", file.display())))?;
    // The file by reference (memory bounded by the file) for the rules' text and the
    // vetoes; the kernel's own rule set for the verdict.
    let v = view(&bytes).map_err(|e| Fail::invalid(format!("{}: {e}", file.display())))?;
    let rs = RuleSet::load(&bytes).map_err(|e| Fail::io(format!("{}: {e}", file.display())))?;
    let mut volumes = Volumes::default();
    for s in &a.volume {
        volumes.add(s).map_err(Fail::usage)?;
    }
    let mut evs: Vec<(String, OwnedEvent, Option<String>)> = Vec::new();
    for (i, s) in a.event.iter().enumerate() {
        let e = events::parse_spec(s, &volumes)
            .map_err(|e| Fail::usage(format!("--event #{}: {e}", i + 1)))?;
        evs.push((format!("--event #{}", i + 1), e, None));
    }
    if let Some(p) = &a.events_file {
        read_events(p, &volumes, &mut evs)?;
    }
    if a.event.is_empty() && a.events_file.is_none() {
        return Err(Fail::usage(
            "no events: give --event SPEC or --events FILE".into(),
        ));
    }
    let color = crate::color::stdout();
    let (mut checked, mut as_expected) = (0usize, 0usize);
    let mut out = Out::new();
    for (origin, e, own_expect) in &evs {
        let m = e.with(|ev| rs.evaluate(ev));
        let verdict = m.map_or("pass", |m| m.action.name());
        let expected = own_expect
            .clone()
            .or_else(|| a.expect.map(|x| x.name().to_owned()));
        let ok = expected.as_deref().is_none_or(|x| x == verdict);
        if expected.is_some() {
            checked += 1;
            as_expected += usize::from(ok);
        }
        let decided = m.and_then(|m| usize::try_from(m.rule_index).ok());
        let vetoed = vetoes(&v, e, decided)?;
        let rule = decided.and_then(|i| v.rules().get(i).map(|r| (i, r)));
        if a.json {
            // The event's line, its texts streamed.
            let mut head = versioned(json!({
                "source": origin,
                "event": e.json(),
                "verdict": verdict,
                "rule": rule.map(|(i, r)| json!({"index": i, "id": r.id, "action": r.action.name()})),
                "expected": expected,
                "ok": ok,
            }))
            .to_string();
            head.pop();
            out.s(&head);
            out.s(",\"vetoed\":[");
            for (n, x) in vetoed.iter().enumerate() {
                let Some(r) = v.rules().get(x.rule_index) else {
                    continue;
                };
                if n > 0 {
                    out.s(",");
                }
                out.s(&format!(
                    "{{\"rule_index\":{},\"rule_id\":{},\"exception\":{},\"text\":",
                    x.rule_index, r.id, x.set
                ));
                let set = v.exceptions(r).nth(x.set).unwrap_or(&[]);
                out.json_text(|w| stream::criteria_text(w, &v, r.event, set));
                out.s("}");
            }
            out.s("]}\n");
            continue;
        }
        let shown = if ok {
            verdict.to_owned()
        } else {
            color.paint(crate::color::RED, verdict)
        };
        let w: &mut dyn std::fmt::Write = &mut out;
        let _ = write!(w, "{}\n  => {shown}", e.describe());
        match rule {
            Some((i, r)) => {
                let _ = write!(w, " by {}: ", rule_name(i, r.id));
                let _ = stream::criteria_text(w, &v, r.event, v.criteria(r));
            }
            None if vetoed.is_empty() => {
                let _ = w.write_str(" (no rule matched)");
            }
            None => {
                let _ = w.write_str(" (no rule decided)");
            }
        }
        if let (Some(x), false) = (&expected, ok) {
            let _ = write!(w, "  <-- UNEXPECTED (expected {x})");
        }
        let _ = w.write_str("\n");
        for x in &vetoed {
            let Some(r) = v.rules().get(x.rule_index) else {
                continue;
            };
            let _ = write!(
                w,
                "     {} matched, but its except[{}] vetoed it: ",
                rule_name(x.rule_index, r.id),
                x.set
            );
            let set = v.exceptions(r).nth(x.set).unwrap_or(&[]);
            let _ = stream::criteria_text(w, &v, r.event, set);
            let _ = w.write_str("\n");
        }
    }
    out.flush();
    let failed = checked - as_expected;
    if a.json {
        outln!(
            "{}",
            versioned(
                json!({"summary": {"events": evs.len(), "checked": checked, "as_expected": as_expected, "unexpected": failed}})
            )
        );
    } else if evs.is_empty() {
        outln!("0 events");
    } else if checked > 0 {
        outln!(
            "{} event{}, {checked} with an expectation, {as_expected} as expected{}",
            evs.len(),
            if evs.len() == 1 { "" } else { "s" },
            if failed > 0 {
                format!(", {failed} unexpected")
            } else {
                String::new()
            }
        );
    } else {
        outln!(
            "{} event{}",
            evs.len(),
            if evs.len() == 1 { "" } else { "s" }
        );
    }
    Ok(u8::from(failed > 0))
}

fn read_events(
    p: &Path,
    volumes: &Volumes,
    evs: &mut Vec<(String, OwnedEvent, Option<String>)>,
) -> Result<(), Fail> {
    let text = std::fs::read_to_string(p)
        .map_err(|e| Fail::io(format!("cannot read {}: {e}", p.display())))?;
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let l = events::parse_json(line, volumes)
            .map_err(|e| Fail::usage(format!("{}:{}: {e}", p.display(), n + 1)))?;
        evs.push((format!("{}:{}", p.display(), n + 1), l.event, l.expect));
    }
    Ok(())
}
